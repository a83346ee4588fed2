/* Fuzz harness for the vhdx driver.
 *
 * A valid VHDX needs at least 3 MiB (its regions are MiB-aligned and at
 * least 1 MiB long, after a 1 MiB header area), more than a fuzz input may
 * be.  Inputs longer than the 320 KiB header area are therefore "packed":
 *   [0, 320 KiB)           the header area, at file offset 0;
 *   16 bytes               map: piece k goes to file MiB map[k] (0: k + 1);
 *   80 KiB pieces (<= 16)  the first 80 KiB of those MiBs (log, region and
 *                          metadata tables with their items, BAT, block
 *                          starts); everything else reads as zeroes.
 * The file ends after the highest MiB used.  tests/gen_corpus_vhdx.sh packs
 * real images that way.  Shorter inputs are opened as they are.
 *
 * After the read-only pass the image is opened read-write and written to,
 * which exercises allocation and the BAT/header updates on hostile files. */
#include "fuzz_image.h"
#include "driver.h"

#include <fcntl.h>

#define HEAD_BYTES (320u * 1024u)
#define MAP_BYTES 16u
#define PIECE_BYTES (80u * 1024u)
#define MIB (1024u * 1024u)

static int unpack(int fd, const uint8_t *d, size_t n)
{
	const uint8_t *map = d + HEAD_BYTES;
	size_t off = HEAD_BYTES + MAP_BYTES;
	unsigned top = 0;

	if (n < off || imgfmt_fd_pwrite(fd, d, HEAD_BYTES, 0) < 0)
		return -1;
	for (unsigned k = 0; k < MAP_BYTES && off < n; k++, off += PIECE_BYTES) {
		size_t len = n - off < PIECE_BYTES ? n - off : PIECE_BYTES;
		unsigned mib = map[k] ? map[k] : k + 1;
		if (imgfmt_fd_pwrite(fd, d + off, len, (uint64_t)mib * MIB) < 0)
			return -1;
		top = mib > top ? mib : top;
	}
	return ftruncate(fd, (off_t)(top + 1) * MIB);
}

static void exercise_writes(const char *path)
{
	struct imgfmt_open_opts o = { .format = "vhdx",
				      .flags = IMGFMT_OPEN_RDWR | IMGFMT_OPEN_NO_BACKING };
	char err[IMGFMT_ERRMSG_BYTES];
	static uint8_t buf[8192];
	struct imgfmt_image *img;
	uint64_t size;

	if (imgfmt_open(&img, path, &o, err, sizeof(err)) < 0)
		return;
	size = imgfmt_size_bytes(img);
	memset(buf, 0xa5, sizeof(buf));
	if (size >= sizeof(buf)) {
		imgfmt_pwrite(img, buf, sizeof(buf), size / 2 - size / 2 % 512);
		imgfmt_pwrite(img, buf, 512, size - 512);
		imgfmt_write_zeroes(img, 4096, 0);
		imgfmt_flush(img);
		imgfmt_pread(img, buf, sizeof(buf), size / 2 - size / 2 % 512);
	}
	imgfmt_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct imgfmt_open_opts o = { .format = "vhdx", .flags = IMGFMT_OPEN_NO_BACKING };
	char path[64], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img;
	int fd;

	if (n <= HEAD_BYTES)
		return fuzz_image(d, n, "vhdx");
	fd = memfd_create("fuzz-vhdx", 0);
	if (fd < 0)
		return 0;
	if (unpack(fd, d, n) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (imgfmt_open(&img, path, &o, err, sizeof(err)) == 0) {
			fuzz_exercise(img);
			imgfmt_close(img);
			exercise_writes(path);
		}
	}
	close(fd);
	return 0;
}
