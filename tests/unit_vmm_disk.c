/* The vmm-min disk: the copy-on-write overlay keeps guest writes (partial
 * blocks, writes across block edges, the short last block) while the image
 * stays untouched; reads mix overlay and image bytes; ranges past the end are
 * refused; writable mode writes through. */
#include "unit.h"
#include "vmm_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISK_BYTES (3 * 4096 + 1536) /* last 4 KiB block is short */

static uint8_t model[DISK_BYTES];

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 13);
}

static void check_all(struct vmm_disk *d)
{
	static uint8_t got[DISK_BYTES];

	CHECK_EQ(vmm_disk_read(d, got, DISK_BYTES, 0), 0);
	CHECK(memcmp(got, model, DISK_BYTES) == 0);
	/* odd-sized reads across block edges */
	CHECK_EQ(vmm_disk_read(d, got, 5000, 4000), 0);
	CHECK(memcmp(got, model + 4000, 5000) == 0);
}

static void write_both(struct vmm_disk *d, uint64_t off, size_t n, uint8_t seed)
{
	uint8_t buf[8192];

	fill(buf, n, seed);
	CHECK_EQ(vmm_disk_write(d, buf, n, off), 0);
	memcpy(model + off, buf, n);
}

int main(void)
{
	char path[] = "/tmp/unit_vmm_disk.XXXXXX", err[256];
	static uint8_t orig[DISK_BYTES], file[DISK_BYTES];
	struct vmm_disk *d;
	uint8_t buf[16];
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	fill(orig, DISK_BYTES, 1);
	CHECK_EQ(write(fd, orig, DISK_BYTES), DISK_BYTES);
	memcpy(model, orig, DISK_BYTES);

	CHECK_EQ(vmm_disk_open(&d, path, "raw", false, NULL, err, sizeof(err)), 0);
	CHECK_EQ(vmm_disk_size_bytes(d), DISK_BYTES);
	check_all(d);
	write_both(d, 100, 10, 50);              /* inside block 0 */
	write_both(d, 4096 - 3, 6000, 60);       /* spans blocks 0..2 */
	write_both(d, DISK_BYTES - 7, 7, 70);    /* the short last block */
	check_all(d);
	CHECK(vmm_disk_read(d, buf, 16, DISK_BYTES - 8) < 0);
	CHECK(vmm_disk_write(d, buf, 1, DISK_BYTES) < 0);
	CHECK(vmm_disk_read(d, buf, 16, UINT64_MAX - 4) < 0);
	CHECK_EQ(vmm_disk_flush(d), 0);
	CHECK_EQ(pread(fd, file, DISK_BYTES, 0), DISK_BYTES);
	CHECK(memcmp(file, orig, DISK_BYTES) == 0); /* image untouched */
	vmm_disk_close(d);

	/* a new run starts from the image again */
	memcpy(model, orig, DISK_BYTES);
	CHECK_EQ(vmm_disk_open(&d, path, "raw", false, NULL, err, sizeof(err)), 0);
	check_all(d);
	vmm_disk_close(d);

	/* writable: through to the image */
	CHECK_EQ(vmm_disk_open(&d, path, "raw", true, NULL, err, sizeof(err)), 0);
	write_both(d, 4000, 200, 90);
	CHECK_EQ(vmm_disk_flush(d), 0);
	vmm_disk_close(d);
	CHECK_EQ(pread(fd, file, DISK_BYTES, 0), DISK_BYTES);
	CHECK(memcmp(file, model, DISK_BYTES) == 0);

	CHECK(vmm_disk_open(&d, "/nonexistent/disk.img", NULL, false, NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "nonexistent") != NULL);
	close(fd);
	unlink(path);
	UNIT_DONE();
}
