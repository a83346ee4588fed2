/* How a disk boots, read from its partition table and its EFI system
 * partition through a read callback (a block device for p2v inspect, an
 * image through imgfmt for p2v verify): BIOS boot code in the MBR, an ESP
 * and the EFI binaries on it, the removable-media fallback path.  Shared by
 * inspect, verify's firmware choice and the report; every on-disk field is
 * hostile (bootdisk.c: GPT/MBR, fatdir.c: FAT directories). */
#ifndef P2V_BOOTDISK_H
#define P2V_BOOTDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "imgfmt.h"

/* ---- FAT directories (fatdir.c) ---- */

#define P2V_FAT_NAME_BYTES 256

struct p2v_fat_dirent {
	char name[P2V_FAT_NAME_BYTES]; /* long name (UTF-8) when present, else 8.3 */
	bool is_dir;
	uint32_t first_cluster;        /* 0: empty file, or the root (FAT12/16) */
	uint32_t size_bytes;
};

struct p2v_fatvol {
	imgfmt_read_fn read;
	void *opaque;
	uint64_t part_off_bytes, part_bytes;
	struct p2v_fat_geom g;
	uint64_t budget_entries;       /* directory entries left to read (loops end) */
	char why[192];                 /* why the last call failed */
};

/* 0, or -errno with v->why set (not FAT, unreadable). */
int p2v_fatvol_open(struct p2v_fatvol *v, imgfmt_read_fn read, void *opaque,
		    uint64_t part_off_bytes, uint64_t part_bytes);
/* Calls fn for each entry of the directory starting at dir_cluster (0: the
 * root), "." and ".." and volume labels left out.  fn returns 0 to go on,
 * > 0 to stop (returned), < 0 to fail (returned). */
typedef int (*p2v_fat_dirent_fn)(void *opaque, const struct p2v_fat_dirent *e);
int p2v_fatvol_list(struct p2v_fatvol *v, uint32_t dir_cluster, p2v_fat_dirent_fn fn, void *opaque);
/* The entry called name (ASCII case-insensitive) in a directory: 0, or
 * -ENOENT, or another -errno with v->why set. */
int p2v_fatvol_find(struct p2v_fatvol *v, uint32_t dir_cluster, const char *name,
		    struct p2v_fat_dirent *out);

/* ---- the boot probe (bootdisk.c) ---- */

#define P2V_ESP_MAX_FILES 32
#define P2V_ESP_PATH_BYTES 160

enum p2v_boot_kind {
	P2V_BOOT_NONE,     /* neither BIOS boot code nor an ESP with EFI binaries */
	P2V_BOOT_BIOS,     /* boot code in the MBR only */
	P2V_BOOT_UEFI,     /* an ESP with EFI binaries and no BIOS boot code */
	P2V_BOOT_HYBRID,   /* both */
};

struct p2v_bootdisk {
	char table[8];             /* "gpt", "dos", "" (none) */
	char table_problem[128];   /* e.g. a damaged primary GPT header, "" none */
	bool bios_code;            /* the MBR's first 440 bytes are not all zero */
	bool bios_boot_partition;  /* GPT: a BIOS boot partition (GRUB's core.img) */
	int esp_number;            /* partition number of the first ESP, 0: none */
	uint64_t esp_start_bytes, esp_bytes;
	char esp_why[192];         /* why the ESP could not be read, "" when it was */
	char efi_files[P2V_ESP_MAX_FILES][P2V_ESP_PATH_BYTES]; /* "\EFI\debian\grubx64.efi" */
	unsigned n_efi_files;
	bool efi_files_truncated;
	bool fallback;             /* \EFI\BOOT\BOOTX64.EFI is there */
};

/* 0 with b filled (an unreadable or unknown ESP is reported in esp_why, not
 * as an error); -errno when the first sectors cannot be read. */
int p2v_bootdisk_probe(imgfmt_read_fn read, void *opaque, uint64_t disk_bytes,
		       struct p2v_bootdisk *b);
enum p2v_boot_kind p2v_bootdisk_kind(const struct p2v_bootdisk *b);
const char *p2v_boot_kind_name(enum p2v_boot_kind k);
/* One line: "UEFI: ESP partition 1 holds \EFI\debian\grubx64.efi; no
 * fallback \EFI\BOOT\BOOTX64.EFI", "BIOS: boot code in the MBR", ... */
void p2v_bootdisk_summary(const struct p2v_bootdisk *b, char *out, size_t out_bytes);
/* The ESP's EFI binaries as one string: "\EFI\debian\grubx64.efi, ...". */
void p2v_bootdisk_files(const struct p2v_bootdisk *b, char *out, size_t out_bytes);

#define P2V_EFI_FALLBACK_PATH "\\EFI\\BOOT\\BOOTX64.EFI"

#endif
