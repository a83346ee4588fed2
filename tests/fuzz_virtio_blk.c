/* Fuzz the virtio-blk queue processor: the input is guest memory (a
 * 64 KiB RAM region holding the rings and buffers at QUEUE_PFN 1, chosen by
 * the first byte), served against a 256 KiB raw disk with the write overlay.
 * Whatever the bytes, the device must either complete requests or mark
 * itself broken, touching nothing outside guest RAM (ASan checks). */
#include "vmm_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_BYTES 0x10000u
#define DISK_BYTES (256u * 1024)

static struct vmm_disk *fuzz_disk(void)
{
	static struct vmm_disk *disk;
	char path[64], err[256];
	int fd;

	if (disk)
		return disk;
	fd = memfd_create("fuzz-disk", 0);
	if (fd < 0 || ftruncate(fd, DISK_BYTES) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (vmm_disk_open(&disk, path, "raw", false, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return disk;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram[RAM_BYTES];
	struct vmm_mem mem = { .r = { { 0, RAM_BYTES, ram } }, .n = 1 };
	struct vmm_vblk v;
	uint8_t pfn = size ? data[0] % 20 : 1;

	memset(ram, 0, sizeof(ram));
	if (size > 1)
		memcpy(ram, data + 1, size - 1 < RAM_BYTES ? size - 1 : RAM_BYTES);
	vmm_vblk_init(&v, &mem, fuzz_disk(), NULL, NULL);
	v.irq_line = 11;
	v.vq.pfn = pfn;
	/* Two rounds: the second one sees whatever the first left behind. */
	vmm_vblk_process(&v);
	ram[0x1000 + 16 * VMM_VBLK_QUEUE_NUM + 2]++;
	vmm_vblk_process(&v);
	return 0;
}
