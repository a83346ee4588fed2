/* drvinject — make a captured operating system boot on virtio hardware.
 *
 * drvinject_run() opens a disk image with libguestfs, finds the OS by
 * inspection and
 *   - Linux: adds virtio_blk, virtio_scsi, virtio_pci, virtio_net and
 *     virtio_console to the initramfs of every installed kernel with the
 *     guest's own tool (initramfs-tools, dracut or mkinitcpio), and rewrites
 *     kernel device names (/dev/sda1, /dev/hda1, /dev/cciss/c0d0p1,
 *     /dev/nvme0n1p1) to UUID= in /etc/fstab, /etc/crypttab and the
 *     bootloader configuration;
 *   - Windows: copies viostor, vioscsi and netkvm from a virtio-win tree
 *     and registers the storage drivers as boot-start services in the
 *     SYSTEM hive.
 * Every changed file keeps a backup FILE.p2v-orig.  The text rewriting and
 * the registry editing are separate pure functions, testable without a
 * guest. */
#ifndef DRVINJECT_INJECT_H
#define DRVINJECT_INJECT_H

#include <stdbool.h>
#include <stddef.h>

/* ---- Whole-image injection (libguestfs) ---- */

struct drvinject_opts {
	const char *format;         /* QEMU format name: raw, qcow2, vpc, vhdx, vmdk */
	bool dry_run;               /* open read-only, report what would change */
	bool serial_console;        /* add console=tty0 console=ttyS0,115200 */
	const char *virtio_win_dir; /* virtio-win tree, needed for Windows */
	/* One line per step while working (may be NULL). */
	void (*log)(void *opaque, const char *msg);
	void *opaque;
};

enum { DRVINJECT_MAX_CHANGES = 64, DRVINJECT_MAX_KERNELS = 16 };

struct drvinject_change {
	char path[128];     /* guest path, or "initramfs:<version>", "registry:..." */
	char what[384];     /* one line describing the change */
};

struct drvinject_result {
	char os_type[16];   /* "linux", "windows" */
	char distro[32];
	int major_version, minor_version;
	char arch[16];
	char root[64];      /* the appliance's device of the root filesystem */
	char initramfs_tool[32];
	char kernels[DRVINJECT_MAX_KERNELS][64];
	unsigned nr_kernels;
	struct drvinject_change changes[DRVINJECT_MAX_CHANGES];
	unsigned nr_changes;
	bool kvm_software_nested; /* libguestfs was told to use TCG */
	char uefi_fallback[192];  /* UEFI: what became \EFI\BOOT\BOOTX64.EFI, "" without an ESP */
};

/* 0 on success (result filled), -errno with a message in err on failure. */
int drvinject_run(const char *path, const struct drvinject_opts *opts,
		  struct drvinject_result *res, char *err, size_t err_bytes);

/* True when /dev/kvm is missing or the CPU has no vmx/svm flag (KVM is
 * then software-nested and libguestfs must use TCG). */
bool drvinject_kvm_is_software(void);

/* The plug-in inject.so (plugin.c) exports one symbol of this type, named
 * DRVINJECT_PLUGIN_SYMBOL; p2v loads it with dlopen() when it injects, so
 * libguestfs is needed by inject and migrate only.  The sizes catch a
 * plug-in built from other sources than the p2v loading it. */
#define DRVINJECT_PLUGIN_ABI 1u
#define DRVINJECT_PLUGIN_SYMBOL "drvinject_plugin"
struct drvinject_plugin {
	unsigned abi;
	size_t opts_bytes, result_bytes;
	int (*run)(const char *path, const struct drvinject_opts *opts,
		   struct drvinject_result *res, char *err, size_t err_bytes);
	bool (*kvm_is_software)(void);
};
extern const struct drvinject_plugin drvinject_plugin;

/* ---- Text rewriting (pure functions on strings) ---- */

/* One guest filesystem: its device as the guest names it on the physical
 * machine's first disk ("/dev/sda1") and its UUID. */
struct drvinject_devmap {
	const char *device;
	const char *uuid;
};

enum drvinject_text_kind {
	DRVINJECT_FSTAB,         /* field 1 of each entry */
	DRVINJECT_CRYPTTAB,      /* field 2 of each entry */
	DRVINJECT_KERNEL_CMDLINE /* root=, resume= in grub.cfg, /etc/default/grub, syslinux */
};

/* Disk index and partition number of a kernel device name: /dev/sdb3 ->
 * (1, 3), /dev/hda1, /dev/vda1, /dev/xvda1, /dev/cciss/c0d1p2 -> (1, 2),
 * /dev/nvme0n1p2 -> (0, 2).  -EINVAL when the name is not one of those. */
int drvinject_parse_device(const char *dev, unsigned *disk_index, unsigned *partition);

/* The rewritten text in *out (malloc'd, always set on success, even when
 * nothing changed), the number of replaced names in *nr_changed.
 * Devices the map does not know are left as they are. */
int drvinject_rewrite_devices(const char *text, enum drvinject_text_kind kind,
			      const struct drvinject_devmap *map, size_t map_len,
			      char **out, unsigned *nr_changed);

/* Adds "console=tty0 console=ttyS0,115200" to each kernel command line
 * (GRUB_CMDLINE_LINUX= in /etc/default/grub, "linux" lines of grub.cfg,
 * "append" lines of syslinux) that has no console=ttyS0 yet. */
int drvinject_add_serial_console(const char *text, char **out, unsigned *nr_changed);

/* ---- UEFI fallback path (pure functions) ---- */

/* One copy inside the ESP, paths relative to its root with '/'. */
struct drvinject_efi_copy {
	char from[160];
	char to[64];
};

struct drvinject_efi_plan {
	char loader[32];                       /* "shim and GRUB", "GRUB", ... */
	struct drvinject_efi_copy copy[4];
	unsigned n;
	bool write_stub;                       /* GRUB without a grub.cfg beside it */
};

/* What makes \EFI\BOOT\BOOTX64.EFI from the files of one ESP directory
 * (dir: "EFI/debian"; files: its entries): shim + grubx64.efi + mmx64.efi
 * as `grub-install --removable` installs them (never fbx64.efi), GRUB
 * alone, systemd-boot, or (windows) bootmgfw.efi; grub.cfg copied beside
 * GRUB, or write_stub.  -ENOENT when none applies. */
int drvinject_efi_plan(bool windows, const char *dir, const char *const *files, size_t n_files,
		       struct drvinject_efi_plan *plan);
/* The grub.cfg stub for \EFI\BOOT: finds the filesystem with that UUID
 * and loads grub_dir/grub.cfg from it.  -EINVAL for a UUID that is not hex
 * and dashes. */
int drvinject_grub_stub(const char *uuid, const char *grub_dir, char *out, size_t out_bytes);

/* ---- Windows registry (hivex on a SYSTEM hive file) ---- */

/* Adds the viostor and vioscsi boot-start services to the current control
 * set of the SYSTEM hive at hive_path, with CriticalDeviceDatabase entries
 * for Windows before 8 (NT < 6.2) and DriverDatabase\DeviceIds entries for
 * 8 and later.  -ENOTSUP with a message for an unknown Windows version. */
int drvinject_win_registry_add_virtio(const char *hive_path, int major, int minor,
				      char *err, size_t err_bytes);

/* Writes a minimal valid, empty registry hive (root key only) to path. */
int drvinject_win_hive_create(const char *path, char *err, size_t err_bytes);

/* The virtio-win subdirectory for a Windows version ("w10", "2k12R2", ...);
 * NULL for an unknown version. */
const char *drvinject_win_dir_name(int major, int minor, bool server, const char *product_name);

#endif
