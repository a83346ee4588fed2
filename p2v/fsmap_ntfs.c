/* NTFS used clusters from $Bitmap, through libntfs-3g mounted read-only on
 * a device whose operations read the partition through our reader (so a
 * partition of a plain disk file works as well as a block device).  A volume
 * marked dirty or hibernated is not trusted. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <ntfs-3g/types.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/layout.h>

#define NTFS_BITMAP_CHUNK_BYTES (256u * 1024u)

struct ntfs_part_dev {
	struct p2v_fsmap_ctx *ctx;
	s64 pos;
};

static struct ntfs_part_dev *pdev(struct ntfs_device *dev)
{
	return dev->d_private;
}

static int nd_open(struct ntfs_device *dev, int flags)
{
	if ((flags & O_ACCMODE) != O_RDONLY) {
		errno = EROFS;
		return -1;
	}
	NDevSetOpen(dev);
	NDevSetReadOnly(dev);
	return 0;
}

static int nd_close(struct ntfs_device *dev)
{
	NDevClearOpen(dev);
	return 0;
}

static s64 nd_seek(struct ntfs_device *dev, s64 offset, int whence)
{
	struct ntfs_part_dev *p = pdev(dev);
	s64 base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? p->pos : (s64)p->ctx->part_bytes;

	if (offset < -base) {
		errno = EINVAL;
		return -1;
	}
	p->pos = base + offset;
	return p->pos;
}

static s64 nd_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset)
{
	struct p2v_fsmap_ctx *ctx = pdev(dev)->ctx;
	uint64_t n;
	int r;

	if (count < 0 || offset < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)offset >= ctx->part_bytes)
		return 0;
	n = ctx->part_bytes - (uint64_t)offset;
	if (n > (uint64_t)count)
		n = (uint64_t)count;
	r = ctx->read(ctx->read_opaque, buf, n, ctx->part_off_bytes + (uint64_t)offset);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return (s64)n;
}

static s64 nd_read(struct ntfs_device *dev, void *buf, s64 count)
{
	s64 n = nd_pread(dev, buf, count, pdev(dev)->pos);

	if (n > 0)
		pdev(dev)->pos += n;
	return n;
}

static s64 nd_write(struct ntfs_device *dev, const void *buf, s64 count)
{
	(void)dev, (void)buf, (void)count;
	errno = EROFS;
	return -1;
}

static s64 nd_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset)
{
	(void)offset;
	return nd_write(dev, buf, count);
}

static int nd_sync(struct ntfs_device *dev)
{
	(void)dev;
	return 0;
}

static int nd_stat(struct ntfs_device *dev, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0400;
	st->st_size = (off_t)pdev(dev)->ctx->part_bytes;
	return 0;
}

static int nd_ioctl(struct ntfs_device *dev, unsigned long request, void *argp)
{
	(void)dev, (void)request, (void)argp;
	errno = ENOTTY;
	return -1;
}

static struct ntfs_device_operations ntfs_part_ops = {
	.open = nd_open, .close = nd_close, .seek = nd_seek, .read = nd_read,
	.write = nd_write, .pread = nd_pread, .pwrite = nd_pwrite, .sync = nd_sync,
	.stat = nd_stat, .ioctl = nd_ioctl,
};

/* Adds runs of set bits of one chunk of $Bitmap (bit i = cluster first+i). */
static int ntfs_add_bits(struct p2v_fsmap_ctx *ctx, const uint8_t *bits, uint64_t first,
			 uint64_t n_bits, uint32_t cluster_bytes)
{
	uint64_t run = 0, run_start = 0;
	int r = 0;

	for (uint64_t i = 0; i <= n_bits && r == 0; i++) {
		bool set = i < n_bits && (bits[i / 8] >> (i % 8)) & 1;
		if (set && !run++)
			run_start = first + i;
		if (!set && run) {
			r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes + run_start * cluster_bytes,
					     run * cluster_bytes);
			ctx->used_bytes += run * cluster_bytes;
			run = 0;
		}
	}
	return r;
}

static int ntfs_map(struct p2v_fsmap_ctx *ctx, ntfs_volume *vol)
{
	uint64_t n_clusters = (uint64_t)vol->nr_clusters, fs_bytes;
	uint8_t *buf;
	int r = 0;

	if (vol->nr_clusters <= 0 ||
	    __builtin_mul_overflow(n_clusters, (uint64_t)vol->cluster_size, &fs_bytes) ||
	    fs_bytes > ctx->part_bytes) {
		snprintf(ctx->why, sizeof(ctx->why), "NTFS: %lld clusters of %u bytes exceed the partition",
			 (long long)vol->nr_clusters, vol->cluster_size);
		return -EINVAL;
	}
	buf = malloc(NTFS_BITMAP_CHUNK_BYTES);
	if (!buf)
		return -ENOMEM;
	for (uint64_t c = 0; c < n_clusters && r == 0; c += NTFS_BITMAP_CHUNK_BYTES * 8ull) {
		uint64_t n_bits = n_clusters - c < NTFS_BITMAP_CHUNK_BYTES * 8ull ? n_clusters - c : NTFS_BITMAP_CHUNK_BYTES * 8ull;
		s64 want = (s64)((n_bits + 7) / 8);
		if (ntfs_attr_pread(vol->lcnbmp_na, (s64)(c / 8), want, buf) != want) {
			snprintf(ctx->why, sizeof(ctx->why), "NTFS: $Bitmap shorter than %llu clusters",
				 (unsigned long long)n_clusters);
			r = -EIO;
			break;
		}
		r = ntfs_add_bits(ctx, buf, c, n_bits, vol->cluster_size);
	}
	free(buf);
	/* The backup boot sector lives after the last cluster. */
	if (r == 0)
		r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes + fs_bytes, ctx->part_bytes - fs_bytes);
	return r;
}

static int ntfs_trusted(struct p2v_fsmap_ctx *ctx, ntfs_volume *vol)
{
	if (vol->flags & VOLUME_IS_DIRTY) {
		snprintf(ctx->why, sizeof(ctx->why), "NTFS: volume is marked dirty (not cleanly unmounted)");
		return -EUCLEAN;
	}
	if (ntfs_volume_check_hiberfile(vol, 0) < 0) {
		snprintf(ctx->why, sizeof(ctx->why), "NTFS: volume is hibernated or hiberfil.sys is unreadable");
		return -EUCLEAN;
	}
	return 0;
}

int p2v_fsmap_ntfs(struct p2v_fsmap_ctx *ctx)
{
	struct ntfs_part_dev p = { .ctx = ctx };
	struct ntfs_device *dev;
	ntfs_volume *vol;
	int r;

	dev = ntfs_device_alloc(ctx->disk_path, 0, &ntfs_part_ops, &p);
	if (!dev)
		return -ENOMEM;
	vol = ntfs_device_mount(dev, NTFS_MNT_RDONLY);
	if (!vol) {
		r = errno ? -errno : -EINVAL;
		snprintf(ctx->why, sizeof(ctx->why), "NTFS: libntfs-3g cannot mount the volume (%s)",
			 strerror(-r));
		ntfs_device_free(dev);
		return r;
	}
	r = ntfs_trusted(ctx, vol);
	if (r == 0)
		r = ntfs_map(ctx, vol);
	ntfs_umount(vol, FALSE); /* also frees dev */
	return r;
}
