/* Fuzz harness for the boot probe (GPT/MBR, the ESP's FAT directories).
 * An input that is a whole GPT disk (its sector 1 says "EFI PART") is read
 * as it is; any other input becomes the EFI system partition of a GPT disk
 * built here with correct CRCs, so the FAT directory walker is what the
 * fuzzer explores.  Every reported path must be a NUL-terminated \EFI path. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bootdisk.h"
#include "fuzz_bytes.h"

#define SECTOR 512u
#define ESP_LBA 64u

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

/* Protective MBR, GPT header at LBA 1, 128 entries at LBA 2, the ESP at LBA 64. */
static uint8_t *wrap_as_esp(const uint8_t *data, size_t size, size_t *disk_bytes)
{
	static const uint8_t esp_type[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
					      0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
	size_t esp_sectors = (size + SECTOR - 1) / SECTOR ? (size + SECTOR - 1) / SECTOR : 1;
	size_t total = (ESP_LBA + esp_sectors + 1) * SECTOR;
	uint8_t *d = calloc(1, total), *h, *e;

	if (!d)
		return NULL;
	memcpy(d + ESP_LBA * SECTOR, data, size);
	d[510] = 0x55;
	d[511] = 0xaa;
	d[446 + 4] = 0xee;
	e = d + 2 * SECTOR;
	memcpy(e, esp_type, 16);
	put64(e + 32, ESP_LBA);
	put64(e + 40, ESP_LBA + esp_sectors - 1);
	h = d + SECTOR;
	memcpy(h, "EFI PART", 8);
	put32(h + 8, 0x10000);
	put32(h + 12, 92);
	put64(h + 72, 2);
	put32(h + 80, 128);
	put32(h + 84, 128);
	put32(h + 88, (uint32_t)crc32(0, e, 128 * 128));
	put32(h + 16, (uint32_t)crc32(0, h, 92));
	*disk_bytes = total;
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2v_bootdisk b;
	struct fuzz_disk d = { data, size };
	uint8_t *wrapped = NULL;
	char line[4096];

	if (size > (4u << 20))
		return 0;
	if (!(size >= 2 * SECTOR && !memcmp(data + SECTOR, "EFI PART", 8))) {
		wrapped = wrap_as_esp(data, size, &d.size);
		if (!wrapped)
			return 0;
		d.b = wrapped;
	}
	if (p2v_bootdisk_probe(fuzz_read, &d, d.size, &b) == 0) {
		if (b.n_efi_files > P2V_ESP_MAX_FILES)
			abort();
		for (unsigned i = 0; i < b.n_efi_files; i++)
			if (!memchr(b.efi_files[i], 0, sizeof(b.efi_files[i])) || strncmp(b.efi_files[i], "\\EFI\\", 5))
				abort();
		p2v_bootdisk_summary(&b, line, sizeof(line));
	}
	free(wrapped);
	return 0;
}
