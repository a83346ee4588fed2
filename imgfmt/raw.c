/* raw: regular files and block devices, byte for byte. */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RAW_CLUSTER_BYTES 4096u

/* Raw has no probe: the core falls back to it for a file without any
 * image signature (probe.c), read-only, or takes it from -f raw. */
static int raw_open(struct imgfmt_image *img)
{
	int r = imgfmt_fd_size(img->fd, &img->size_bytes);

	if (r < 0)
		return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	img->cluster_bytes = RAW_CLUSTER_BYTES;
	img->priv = img; /* no private state; non-NULL marks "open" */
	return 0;
}

enum { R_PREALLOCATION };
static const char *const prealloc_choices[] = { "off", "falloc", "on", NULL };
static const struct imgfmt_opt_desc raw_create_opts[] = {
	[R_PREALLOCATION] = { "preallocation", IMGFMT_OPT_ENUM, "off",
			      "reserve the file's space at creation (falloc, or on: the same)",
			      .choices = prealloc_choices },
	{ 0 },
};

static int raw_create(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *ov)
{
	bool prealloc = ov[R_PREALLOCATION].u != 0;
	int r;

	img->cluster_bytes = RAW_CLUSTER_BYTES;
	img->priv = img;
	img->size_bytes = size_bytes;
	if (img->is_block_device) {
		uint64_t dev_bytes;
		r = imgfmt_fd_size(img->fd, &dev_bytes);
		if (r < 0)
			return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
		if (dev_bytes < size_bytes)
			return imgfmt_err(img, -ENOSPC, "%s: device of %llu bytes is smaller than %llu",
					  img->path, (unsigned long long)dev_bytes,
					  (unsigned long long)size_bytes);
		return 0;
	}
	if (ftruncate(img->fd, (off_t)size_bytes) < 0)
		return imgfmt_err(img, -errno, "%s: cannot size to %llu bytes: %s", img->path,
				  (unsigned long long)size_bytes, strerror(errno));
	if (prealloc && size_bytes && fallocate(img->fd, 0, 0, (off_t)size_bytes) < 0)
		return imgfmt_err(img, -errno, "%s: preallocation: %s", img->path, strerror(errno));
	return 0;
}

/* The file is the disk: as qemu-img measure, both are the size. */
static int raw_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
		       struct imgfmt_image *src, struct imgfmt_measure *m)
{
	(void)img;
	(void)ov;
	(void)src;
	m->required_bytes = m->fully_allocated_bytes = imgfmt_div_round_up(size, 512) * 512;
	return 0;
}

static int raw_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	int r = imgfmt_fd_pread(img->fd, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: read of %llu bytes at %llu: %s", img->path,
				  (unsigned long long)len, (unsigned long long)off,
				  r == -EIO ? "I/O error or short file" : strerror(-r));
	return 0;
}

static int raw_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	int r = imgfmt_data_pwrite(img, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: write of %llu bytes at %llu: %s", img->path,
				  (unsigned long long)len, (unsigned long long)off, strerror(-r));
	return 0;
}

static int raw_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	static const uint8_t zeroes[64 * 1024];

	if (img->is_block_device) {
		uint64_t range[2] = { off, len };
		if ((off | len) % 512 == 0 && ioctl(img->fd, BLKZEROOUT, range) == 0)
			return 0;
	} else if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			     (off_t)len) == 0) {
		return 0;
	}
	while (len > 0) {
		uint64_t n = len < sizeof(zeroes) ? len : sizeof(zeroes);
		int r = raw_pwrite(img, zeroes, n, off);
		if (r < 0)
			return r;
		len -= n;
		off += n;
	}
	return 0;
}

static int raw_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			    struct imgfmt_extent *ext)
{
	imgfmt_fd_block_status(img->fd, img->is_block_device, off, len, ext);
	ext->host_offset_bytes = off;
	return 0;
}

static int raw_resize(struct imgfmt_image *img, uint64_t size)
{
	if (img->is_block_device)
		return imgfmt_err(img, -ENOTSUP, "%s: a block device's size is its own", img->path);
	if (ftruncate(img->fd, (off_t)size) < 0 || fsync(img->fd) < 0)
		return imgfmt_err(img, -errno, "%s: cannot size to %llu bytes: %s", img->path,
				  (unsigned long long)size, strerror(errno));
	img->size_bytes = size;
	return 0;
}

static int raw_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	info->cluster_bytes = 0;
	if (img->is_block_device)
		snprintf(info->subformat, sizeof(info->subformat), "block device");
	return 0;
}

static void raw_close(struct imgfmt_image *img)
{
	img->priv = NULL;
}

const struct imgfmt_driver imgfmt_raw_driver = {
	.name = "raw",
	.description = "raw disk image or block device",
	.open = raw_open,
	.create_opts = raw_create_opts,
	.create = raw_create,
	.measure = raw_measure,
	.pread = raw_pread,
	.pwrite = raw_pwrite,
	.write_zeroes = raw_write_zeroes,
	.block_status = raw_block_status,
	.close = raw_close,
	.info = raw_info,
	.resize = raw_resize,
};
