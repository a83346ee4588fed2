/* Fuzz harness of the vpc (VHD) driver: the shared image exercise, then the
 * same bytes opened with backing files, so that differencing images decode
 * their parent locators and look for the parent (beside /proc/self/fd). */
#include "fuzz_image.h"

static void fuzz_open_with_parent(const uint8_t *data, size_t size)
{
	struct imgfmt_open_opts o = { .format = "vpc" };
	char path[64], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img;
	int fd = memfd_create("fuzz-vhd", 0);

	if (fd < 0)
		return;
	if (fuzz_write_all(fd, data, size) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (imgfmt_open(&img, path, &o, err, sizeof(err)) == 0) {
			fuzz_exercise(img);
			imgfmt_close(img);
		}
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_image(data, size, "vpc");
	/* only differencing disks (type 4 in the footer) have a parent */
	if (size >= 512 && data[size - 512 + 63] == 4)
		fuzz_open_with_parent(data, size);
	else if (size >= 512 && data[63] == 4)
		fuzz_open_with_parent(data, size);
	return 0;
}
