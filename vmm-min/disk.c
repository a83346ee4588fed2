/* The guest's disk: an imgfmt image, read-only unless writable, with guest
 * writes kept in a private copy-on-write overlay (a memfd, sparse, gone when
 * the run ends).  The overlay works in 4 KiB blocks; a bitmap says which
 * blocks live in the overlay. */
#include "vmm_internal.h"
#include "imgfmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OVERLAY_BLOCK_BYTES 4096u

struct vmm_disk {
	struct imgfmt_image *img;
	bool writable;
	uint64_t size_bytes;
	int overlay_fd;
	uint8_t *in_overlay;         /* bitmap, one bit per block */
	uint8_t block[OVERLAY_BLOCK_BYTES];
};

int vmm_disk_open(struct vmm_disk **out, const char *path, const char *format, bool writable,
		  const struct vmm_config *confine, char *err, size_t err_bytes)
{
	struct imgfmt_open_opts o = { .format = format,
				      .flags = writable ? IMGFMT_OPEN_RDWR : 0 };
	struct vmm_disk *d = calloc(1, sizeof(*d));
	uint64_t blocks;
	int ret;

	if (!d)
		return -ENOMEM;
	if (confine) {
		o.allow_backing = confine->allow_backing;
		o.n_allow_backing = confine->n_allow_backing;
		o.allow_symlinks = confine->allow_symlinks;
	}
	d->overlay_fd = -1;
	ret = imgfmt_open(&d->img, path, &o, err, err_bytes);
	if (ret < 0)
		goto fail_free;
	d->writable = writable;
	d->size_bytes = imgfmt_size_bytes(d->img);
	if (!writable) {
		blocks = d->size_bytes / OVERLAY_BLOCK_BYTES + 1;
		d->in_overlay = calloc(blocks / 8 + 1, 1);
		d->overlay_fd = memfd_create("vmm-overlay", MFD_CLOEXEC);
		if (!d->in_overlay || d->overlay_fd < 0) {
			ret = d->in_overlay ? -errno : -ENOMEM;
			snprintf(err, err_bytes, "%s: cannot create the write overlay: %s",
				 path, strerror(-ret));
			goto fail_close;
		}
	}
	*out = d;
	return 0;
fail_close:
	vmm_disk_close(d);
	return ret;
fail_free:
	free(d);
	return ret;
}

void vmm_disk_close(struct vmm_disk *d)
{
	if (!d)
		return;
	if (d->img)
		imgfmt_close(d->img);
	if (d->overlay_fd >= 0)
		close(d->overlay_fd);
	free(d->in_overlay);
	free(d);
}

uint64_t vmm_disk_size_bytes(const struct vmm_disk *d)
{
	return d->size_bytes;
}

static bool block_in_overlay(const struct vmm_disk *d, uint64_t block)
{
	return d->in_overlay[block / 8] & (1u << (block % 8));
}

static int range_ok(const struct vmm_disk *d, uint64_t len, uint64_t off)
{
	uint64_t end;
	if (__builtin_add_overflow(off, len, &end) || end > d->size_bytes)
		return -EINVAL;
	return 0;
}

static int overlay_pread(struct vmm_disk *d, uint8_t *buf, uint64_t len, uint64_t off)
{
	ssize_t n = pread(d->overlay_fd, buf, len, (off_t)off);
	if (n < 0)
		return -errno;
	if ((uint64_t)n < len) /* never written past the file's end: zeroes */
		memset(buf + n, 0, len - (uint64_t)n);
	return 0;
}

/* Bytes from off (at most len) whose blocks all live in the same place. */
static uint64_t same_place_run(const struct vmm_disk *d, uint64_t len, uint64_t off)
{
	uint64_t block = off / OVERLAY_BLOCK_BYTES;
	uint64_t n = OVERLAY_BLOCK_BYTES - off % OVERLAY_BLOCK_BYTES;
	bool first = block_in_overlay(d, block);

	while (n < len && block_in_overlay(d, ++block) == first)
		n += OVERLAY_BLOCK_BYTES;
	return n < len ? n : len;
}

int vmm_disk_read(struct vmm_disk *d, void *buf, uint64_t len_bytes, uint64_t off_bytes)
{
	uint8_t *p = buf;
	int ret = range_ok(d, len_bytes, off_bytes);

	if (ret < 0 || d->writable || len_bytes == 0)
		return ret < 0 ? ret : imgfmt_pread(d->img, buf, len_bytes, off_bytes);
	while (len_bytes > 0) {
		uint64_t n = same_place_run(d, len_bytes, off_bytes);

		ret = block_in_overlay(d, off_bytes / OVERLAY_BLOCK_BYTES)
			      ? overlay_pread(d, p, n, off_bytes)
			      : imgfmt_pread(d->img, p, n, off_bytes);
		if (ret < 0)
			return ret;
		p += n;
		off_bytes += n;
		len_bytes -= n;
	}
	return 0;
}

/* Bring one block into the overlay (copying the image's bytes) before a
 * partial write to it. */
static int overlay_fill_block(struct vmm_disk *d, uint64_t block)
{
	uint64_t off = block * OVERLAY_BLOCK_BYTES;
	uint64_t n = d->size_bytes - off < OVERLAY_BLOCK_BYTES ? d->size_bytes - off
							       : OVERLAY_BLOCK_BYTES;
	int ret = imgfmt_pread(d->img, d->block, n, off);

	if (ret < 0)
		return ret;
	if (pwrite(d->overlay_fd, d->block, n, (off_t)off) != (ssize_t)n)
		return -EIO;
	d->in_overlay[block / 8] |= (uint8_t)(1u << (block % 8));
	return 0;
}

int vmm_disk_write(struct vmm_disk *d, const void *buf, uint64_t len_bytes, uint64_t off_bytes)
{
	const uint8_t *p = buf;
	int ret = range_ok(d, len_bytes, off_bytes);

	if (ret < 0 || d->writable || len_bytes == 0)
		return ret < 0 ? ret : imgfmt_pwrite(d->img, buf, len_bytes, off_bytes);
	while (len_bytes > 0) {
		uint64_t block = off_bytes / OVERLAY_BLOCK_BYTES;
		uint64_t in_block = OVERLAY_BLOCK_BYTES - off_bytes % OVERLAY_BLOCK_BYTES;
		uint64_t n = in_block < len_bytes ? in_block : len_bytes;

		if (!block_in_overlay(d, block) && n < OVERLAY_BLOCK_BYTES) {
			ret = overlay_fill_block(d, block);
			if (ret < 0)
				return ret;
		}
		if (pwrite(d->overlay_fd, p, n, (off_t)off_bytes) != (ssize_t)n)
			return -EIO;
		d->in_overlay[block / 8] |= (uint8_t)(1u << (block % 8));
		p += n;
		off_bytes += n;
		len_bytes -= n;
	}
	return 0;
}

int vmm_disk_flush(struct vmm_disk *d)
{
	return d->writable ? imgfmt_flush(d->img) : 0;
}
