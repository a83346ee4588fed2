/* vmm-min: a minimal KVM virtual machine monitor that boots a disk image
 * (any imgfmt format, opened read-only, guest writes kept in a discarded
 * copy-on-write overlay) through real firmware (SeaBIOS) or directly into a
 * Linux kernel, with COM1 as the console.
 *
 * THIS FILE IS THE CONTRACT between the VMM (the vmm-min/ sources) and its users
 * (p2v boot / p2v verify, the verdict logic).  Additive changes only.
 */
#ifndef VMM_H
#define VMM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vmm_event_type {
	VMM_EV_FIRMWARE_START,  /* first instruction executed */
	VMM_EV_DISK_READ,       /* a virtio-blk read (offset/length valid) */
	VMM_EV_DISK_WRITE,      /* a virtio-blk write (offset/length valid) */
	VMM_EV_SHUTDOWN,        /* guest powered off (ACPI/port) */
	VMM_EV_RESET,           /* guest asked for a reset / reboot */
	VMM_EV_TRIPLE_FAULT,    /* KVM_EXIT_SHUTDOWN */
	VMM_EV_HALT,            /* halted with interrupts disabled: dead */
	VMM_EV_DEVICE_BROKEN,   /* a device rejected the guest (bad descriptor ...) */
};

struct vmm_event {
	enum vmm_event_type type;
	double t_s;              /* seconds since start */
	uint64_t offset_bytes;   /* disk events */
	uint64_t length_bytes;
	const char *detail;      /* optional text */
};

struct vmm_config {
	const char *disk_path;       /* image to boot (NULL: no disk) */
	const char *disk_format;     /* NULL: probe */
	/* imgfmt_open_opts' confinement of the files the disk names */
	const char *const *allow_backing;
	unsigned n_allow_backing;
	bool allow_symlinks;
	bool writable;               /* --writable: guest writes reach the image */
	uint64_t mem_bytes;          /* default 512 MiB when 0 */
	unsigned cpus;               /* default 1 when 0 */
	const char *firmware_path;   /* default /usr/share/seabios/bios.bin */
	/* UEFI: a variable store image (OVMF_VARS.fd) put below the code in
	 * the ROM, as OVMF.fd holds both; NULL for none.  The machine maps a
	 * private copy read-only: OVMF finds no flash and keeps its variables
	 * in RAM for this run, the file is never written. */
	const char *firmware_vars_path;
	const char *kernel_path;     /* direct Linux boot when set */
	const char *initrd_path;
	const char *append;
	const char *firmware_log_path; /* debug port 0x402 output, or NULL */
	/* COM1 output; called from the vCPU thread. */
	void (*console_out)(void *opaque, const uint8_t *buf, size_t len);
	void *console_opaque;
	/* The BIOS text screen (SeaBIOS's serial mirror of INT 10h output, on
	 * COM2 so that its lazily flushed text never lands inside the guest's
	 * own COM1 output), with console_opaque; NULL: to console_out. */
	void (*screen_out)(void *opaque, const uint8_t *buf, size_t len);
	int console_in_fd;           /* bytes to feed COM1 input, -1 for none */
	void (*event)(void *opaque, const struct vmm_event *ev);
	void *event_opaque;
	double timeout_s;            /* 0 = none */
	volatile sig_atomic_t *stop; /* set non-zero (by a watcher or signal) to stop */
	/* Firmware boots, one vCPU: a directory for POST snapshots (NULL: off).
	 * The machine state when the firmware first asks the disk for data (POST
	 * done, no disk content read yet) is saved there, keyed by everything it
	 * depends on (firmware bytes, RAM, CPUs, disk size, fw_cfg, host kernel);
	 * a later run with the same key resumes from it instead of re-running
	 * POST, replaying its console and firmware log. */
	const char *post_cache_dir;
};

enum vmm_exit {
	VMM_EXIT_SHUTDOWN,     /* guest powered off */
	VMM_EXIT_RESET,        /* guest rebooted (treated as the end of a run) */
	VMM_EXIT_STOPPED,      /* *stop was set */
	VMM_EXIT_TIMEOUT,
	VMM_EXIT_TRIPLE_FAULT,
	VMM_EXIT_HALTED,
	VMM_EXIT_INTERNAL_ERROR,
};

struct vmm_result {
	enum vmm_exit exit;
	double elapsed_s;
	uint64_t disk_reads, disk_writes;
	uint64_t guest_exits;        /* VM exits handled */
	char detail[256];
	bool post_restored;          /* POST came from post_cache_dir */
	bool post_saved;             /* this run saved a POST snapshot */
};

/* Boot and run until the guest stops, the timeout, or *stop.  0 on a run
 * that happened (see res->exit), -errno when it could not run (no /dev/kvm,
 * no firmware, bad image), with a one-line message in err. */
int vmm_run(const struct vmm_config *cfg, struct vmm_result *res, char *err, size_t err_bytes);

/* Guest instruction rate in millions per second, measured with a tiny
 * calibration guest (a few ms on real KVM).  Negative -errno when KVM is
 * unusable, with a message in err. */
double vmm_calibrate_mips(char *err, size_t err_bytes);

#endif
