/* How a disk boots: the MBR's boot code, the GPT (header and entry array
 * CRC-checked, sizes and LBAs range-checked) or MBR partition entries, the
 * first EFI system partition, and the EFI binaries under its \EFI (three
 * levels: \EFI\debian\grubx64.efi, \EFI\Microsoft\Boot\bootmgfw.efi). */
#include "bootdisk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "driver.h"

#define SECTOR_BYTES 512u
#define GPT_MAX_ENTRIES 1024u
#define GPT_MAX_ARRAY_BYTES (1u << 20)
#define MBR_TYPE_ESP 0xef
#define EFI_SCAN_DEPTH 3           /* \EFI\a\b\file.efi at most */

/* Type GUIDs as stored on disk (first three fields little-endian). */
static const uint8_t guid_esp[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
				      0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
static const uint8_t guid_bios_boot[16] = { 'H', 'a', 'h', '!', 'I', 'd', 'o', 'n',
					    't', 'N', 'e', 'e', 'd', 'E', 'F', 'I' };

static void set_esp(struct p2v_bootdisk *b, int number, uint64_t start_lba, uint64_t lbas)
{
	if (b->esp_number)
		return; /* the first one, as a firmware scanning in order */
	b->esp_number = number;
	b->esp_start_bytes = start_lba * SECTOR_BYTES;
	b->esp_bytes = lbas * SECTOR_BYTES;
}

/* The partition entry array, read and CRC-checked; entries handed to one_entry. */
static int gpt_entries(imgfmt_read_fn read, void *opaque, uint64_t disk_lbas,
		       const uint8_t *hdr, struct p2v_bootdisk *b)
{
	uint64_t array_lba = imgfmt_get_le64(hdr + 72);
	uint32_t n = imgfmt_get_le32(hdr + 80), esize = imgfmt_get_le32(hdr + 84);
	uint64_t bytes = (uint64_t)n * esize;
	uint8_t *arr;
	int r;

	if (n > GPT_MAX_ENTRIES || esize < 128 || esize % 128 || bytes > GPT_MAX_ARRAY_BYTES ||
	    array_lba < 2 || array_lba >= disk_lbas || (bytes + SECTOR_BYTES - 1) / SECTOR_BYTES > disk_lbas - array_lba) {
		snprintf(b->esp_why, sizeof(b->esp_why),
			 "GPT: partition array (%u entries of %u bytes at LBA %llu) is out of range",
			 n, esize, (unsigned long long)array_lba);
		return 0;
	}
	if (!(arr = malloc(bytes ? bytes : 1)))
		return -ENOMEM;
	r = read(opaque, arr, bytes, array_lba * SECTOR_BYTES);
	if (r == 0 && (uint32_t)crc32(0, arr, (uInt)bytes) != imgfmt_get_le32(hdr + 88))
		snprintf(b->esp_why, sizeof(b->esp_why), "GPT: partition array CRC mismatch");
	for (uint32_t i = 0; r == 0 && !b->esp_why[0] && i < n; i++) {
		const uint8_t *e = arr + (size_t)i * esize;
		uint64_t first = imgfmt_get_le64(e + 32), last = imgfmt_get_le64(e + 40);
		if (first == 0 || last < first || last >= disk_lbas)
			continue; /* unused or outside the disk */
		if (!memcmp(e, guid_esp, 16))
			set_esp(b, (int)i + 1, first, last - first + 1);
		else if (!memcmp(e, guid_bios_boot, 16))
			b->bios_boot_partition = true;
	}
	free(arr);
	return r;
}

/* One GPT header: 0 valid, 1 no signature, 2 damaged (why set), -errno. */
static int gpt_header(imgfmt_read_fn read, void *opaque, uint64_t lba, uint8_t *hdr,
		      char *why, size_t why_bytes)
{
	uint32_t hsize, crc;
	int r = read(opaque, hdr, SECTOR_BYTES, lba * SECTOR_BYTES);

	if (r < 0)
		return r;
	if (memcmp(hdr, "EFI PART", 8) != 0)
		return 1;
	hsize = imgfmt_get_le32(hdr + 12);
	if (hsize < 92 || hsize > SECTOR_BYTES) {
		snprintf(why, why_bytes, "header size %u is not 92..512", hsize);
		return 2;
	}
	crc = imgfmt_get_le32(hdr + 16);
	memset(hdr + 16, 0, 4);
	if ((uint32_t)crc32(0, hdr, hsize) != crc) {
		snprintf(why, why_bytes, "header CRC mismatch");
		return 2;
	}
	return 0;
}

/* The primary header, else (as firmware does) the backup in the last sector. */
static int gpt_probe(imgfmt_read_fn read, void *opaque, uint64_t disk_bytes, struct p2v_bootdisk *b)
{
	uint8_t hdr[SECTOR_BYTES];
	char why[96] = "", why2[96] = "";
	uint64_t lbas = disk_bytes / SECTOR_BYTES;
	int r = gpt_header(read, opaque, 1, hdr, why, sizeof(why));

	if (r < 0 || r == 1)
		return r;
	snprintf(b->table, sizeof(b->table), "gpt");
	if (r == 2) {
		r = gpt_header(read, opaque, lbas - 1, hdr, why2, sizeof(why2));
		if (r < 0)
			return r;
		if (r != 0) {
			snprintf(b->table_problem, sizeof(b->table_problem),
				 "GPT: primary %.40s, backup %.40s", why, r == 1 ? "missing" : why2);
			snprintf(b->esp_why, sizeof(b->esp_why), "%s", b->table_problem);
			return 0;
		}
		snprintf(b->table_problem, sizeof(b->table_problem), "GPT: primary %.40s; the backup was read", why);
	}
	return gpt_entries(read, opaque, lbas, hdr, b);
}

static void mbr_probe(const uint8_t *mbr, uint64_t disk_bytes, struct p2v_bootdisk *b)
{
	snprintf(b->table, sizeof(b->table), "dos");
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;
		uint64_t start = imgfmt_get_le32(e + 8), lbas = imgfmt_get_le32(e + 12);
		if (e[4] == MBR_TYPE_ESP && start && lbas && start + lbas <= disk_bytes / SECTOR_BYTES)
			set_esp(b, i + 1, start, lbas);
	}
}

/* ---- the ESP's \EFI tree ---- */

struct efi_scan {
	struct p2v_fatvol *v;
	struct p2v_bootdisk *b;
	char dir[P2V_ESP_PATH_BYTES];   /* path of the directory being listed */
	unsigned depth;
	uint32_t subdirs[16];           /* its subdirectories, listed after it */
	char subnames[16][P2V_FAT_NAME_BYTES];
	unsigned n_subdirs;
};

static bool ends_with_efi(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && !strcasecmp(name + n - 4, ".efi");
}

static int efi_entry(void *opaque, const struct p2v_fat_dirent *e)
{
	struct efi_scan *s = opaque;
	struct p2v_bootdisk *b = s->b;

	if (e->is_dir) {
		if (s->depth < EFI_SCAN_DEPTH && s->n_subdirs < 16 && e->first_cluster) {
			s->subdirs[s->n_subdirs] = e->first_cluster;
			snprintf(s->subnames[s->n_subdirs++], P2V_FAT_NAME_BYTES, "%s", e->name);
		}
		return 0;
	}
	if (!ends_with_efi(e->name))
		return 0;
	if (b->n_efi_files == P2V_ESP_MAX_FILES) {
		b->efi_files_truncated = true;
		return 0;
	}
	snprintf(b->efi_files[b->n_efi_files++], P2V_ESP_PATH_BYTES, "%.80s\\%.70s", s->dir, e->name);
	if (s->depth == 2 && !strcasecmp(s->dir, "\\EFI\\BOOT") && !strcasecmp(e->name, "BOOTX64.EFI"))
		b->fallback = true;
	return 0;
}

/* Lists dir (at depth) and then, recursively, its subdirectories. */
static int efi_scan_dir(struct p2v_fatvol *v, struct p2v_bootdisk *b, const char *dir,
			uint32_t cluster, unsigned depth)
{
	struct efi_scan *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->v = v;
	s->b = b;
	s->depth = depth;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	r = p2v_fatvol_list(v, cluster, efi_entry, s);
	for (unsigned i = 0; r == 0 && i < s->n_subdirs; i++) {
		char sub[P2V_ESP_PATH_BYTES];
		snprintf(sub, sizeof(sub), "%.80s\\%.70s", dir, s->subnames[i]);
		r = efi_scan_dir(v, b, sub, s->subdirs[i], depth + 1);
	}
	free(s);
	return r;
}

static int esp_scan(imgfmt_read_fn read, void *opaque, struct p2v_bootdisk *b)
{
	struct p2v_fatvol v;
	struct p2v_fat_dirent efi;
	int r = p2v_fatvol_open(&v, read, opaque, b->esp_start_bytes, b->esp_bytes);

	if (r == 0)
		r = p2v_fatvol_find(&v, 0, "EFI", &efi);
	if (r == -ENOENT) {
		snprintf(b->esp_why, sizeof(b->esp_why), "no \\EFI directory on the ESP");
		return 0;
	}
	if (r == 0 && (!efi.is_dir || !efi.first_cluster)) {
		snprintf(b->esp_why, sizeof(b->esp_why), "\\EFI on the ESP is not a directory");
		return 0;
	}
	if (r == 0)
		r = efi_scan_dir(&v, b, "\\EFI", efi.first_cluster, 1);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		snprintf(b->esp_why, sizeof(b->esp_why), "%s", v.why[0] ? v.why : strerror(-r));
	return 0;
}

int p2v_bootdisk_probe(imgfmt_read_fn read, void *opaque, uint64_t disk_bytes,
		       struct p2v_bootdisk *b)
{
	uint8_t mbr[SECTOR_BYTES];
	int r;

	memset(b, 0, sizeof(*b));
	if (disk_bytes < 2 * SECTOR_BYTES)
		return 0;
	r = read(opaque, mbr, sizeof(mbr), 0);
	if (r < 0)
		return r;
	if (mbr[510] != 0x55 || mbr[511] != 0xaa)
		return 0;
	b->bios_code = !imgfmt_is_zero(mbr, 440);
	r = gpt_probe(read, opaque, disk_bytes, b);
	if (r < 0)
		return r;
	if (r == 1)
		mbr_probe(mbr, disk_bytes, b);
	if (b->esp_number && !b->esp_why[0])
		return esp_scan(read, opaque, b);
	return 0;
}

enum p2v_boot_kind p2v_bootdisk_kind(const struct p2v_bootdisk *b)
{
	bool uefi = b->esp_number && b->n_efi_files > 0;

	if (uefi && b->bios_code)
		return P2V_BOOT_HYBRID;
	return uefi ? P2V_BOOT_UEFI : b->bios_code ? P2V_BOOT_BIOS : P2V_BOOT_NONE;
}

const char *p2v_boot_kind_name(enum p2v_boot_kind k)
{
	static const char *const names[] = { "none", "bios", "uefi", "hybrid" };

	return (unsigned)k < 4 ? names[k] : "?";
}

void p2v_bootdisk_files(const struct p2v_bootdisk *b, char *out, size_t out_bytes)
{
	size_t o = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < b->n_efi_files && o < out_bytes; i++) {
		int n = snprintf(out + o, out_bytes - o, "%s%s", i ? ", " : "", b->efi_files[i]);
		if (n < 0)
			break;
		o += (size_t)n;
	}
	if (b->efi_files_truncated && o < out_bytes)
		snprintf(out + o, out_bytes - o, ", ...");
}

void p2v_bootdisk_summary(const struct p2v_bootdisk *b, char *out, size_t out_bytes)
{
	char files[1024];
	enum p2v_boot_kind k = p2v_bootdisk_kind(b);
	const char *bios = b->bios_code ? (b->bios_boot_partition ? "boot code in the MBR and a BIOS boot partition"
								  : "boot code in the MBR")
					: "no BIOS boot code";

	p2v_bootdisk_files(b, files, sizeof(files));
	if (b->table_problem[0] && !b->esp_number) {
		snprintf(out, out_bytes, "%s: %s; %s", k == P2V_BOOT_BIOS ? "BIOS" : "none", bios, b->table_problem);
		return;
	}
	if (!b->esp_number)
		snprintf(out, out_bytes, "%s: %s, no EFI system partition", k == P2V_BOOT_BIOS ? "BIOS" : "none", bios);
	else if (b->n_efi_files == 0)
		snprintf(out, out_bytes, "%s: %s; EFI system partition %d holds no EFI binary%s%s",
			 k == P2V_BOOT_BIOS ? "BIOS" : "none", bios, b->esp_number,
			 b->esp_why[0] ? ": " : "", b->esp_why);
	else
		snprintf(out, out_bytes, "%s: %s; EFI system partition %d holds %s; fallback %s %s",
			 k == P2V_BOOT_HYBRID ? "hybrid (BIOS and UEFI)" : "UEFI", bios, b->esp_number, files,
			 P2V_EFI_FALLBACK_PATH, b->fallback ? "present" : "absent");
}
