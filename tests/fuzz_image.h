/* Shared body of the per-driver fuzz harnesses: open the bytes as an image
 * (through a memfd), then exercise info, check, block status and reads with
 * bounded work, and the in-place changes (snapshots, resize) read-write.  A harness is:
 *   #include "fuzz_image.h"
 *   int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_image(d, n, "qcow2"); }
 */
#ifndef P2V_FUZZ_IMAGE_H
#define P2V_FUZZ_IMAGE_H
#include "imgfmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_write_all(int fd, const uint8_t *data, size_t size)
{
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		if (n <= 0)
			return -1;
		data += n;
		size -= (size_t)n;
	}
	return 0;
}

static void fuzz_exercise(struct imgfmt_image *img)
{
	static uint8_t buf[256 * 1024];
	struct imgfmt_info info;
	struct imgfmt_check chk = { 0 };
	uint64_t size = imgfmt_size_bytes(img), off = 0;

	imgfmt_info(img, &info);
	imgfmt_check(img, &chk);
	for (int i = 0; i < 64 && off < size; i++) {
		struct imgfmt_extent e;
		uint64_t n;
		if (imgfmt_block_status(img, off, size - off, &e) < 0)
			break;
		n = e.length_bytes < sizeof(buf) ? e.length_bytes : sizeof(buf);
		if (e.type == IMGFMT_EXTENT_DATA)
			imgfmt_pread(img, buf, n, off);
		off += e.length_bytes;
	}
	/* Reads at unaligned places, including the very end. */
	if (size > 0) {
		imgfmt_pread(img, buf, size < 4097 ? size : 4097, 0);
		imgfmt_pread(img, buf, 1, size - 1);
		imgfmt_pread(img, buf, size < 70000 ? size / 2 : 70000, size / 3);
	}
}

/* In-place changes on the hostile image (opened read-write on the memfd):
 * snapshots where the format has them, a small grow. */
static void fuzz_exercise_writes(struct imgfmt_image *img)
{
	struct imgfmt_snapshot *list;
	unsigned n;

	if (imgfmt_snapshot_list(img, &list, &n) == 0) {
		if (n)
			imgfmt_snapshot_apply(img, list[0].id);
		free(list);
		imgfmt_snapshot_create(img, "fuzz");
		imgfmt_snapshot_delete(img, "fuzz");
	}
	imgfmt_resize(img, imgfmt_size_bytes(img) + 65536, false);
}

static inline int fuzz_image(const uint8_t *data, size_t size, const char *format)
{
	char path[64], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_open_opts o = { .format = format, .flags = IMGFMT_OPEN_NO_BACKING };
	struct imgfmt_image *img;
	int fd = memfd_create("fuzz-image", 0);

	if (fd < 0)
		return 0;
	if (fuzz_write_all(fd, data, size) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (imgfmt_open(&img, path, &o, err, sizeof(err)) == 0) {
			fuzz_exercise(img);
			imgfmt_close(img);
			o.flags |= IMGFMT_OPEN_RDWR;
			if (imgfmt_open(&img, path, &o, err, sizeof(err)) == 0) {
				fuzz_exercise_writes(img);
				imgfmt_close(img);
			}
		}
	}
	close(fd);
	return 0;
}
#endif
