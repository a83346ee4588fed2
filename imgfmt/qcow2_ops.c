/* qcow2 changes made in place: resize.
 *
 * Each change is ordered so that an interruption leaves a consistent image
 * (at worst with leaked clusters, which 'qemu-img check -r leaks' reclaims):
 * new structures are written and their refcounts flushed before the header
 * points at them, and old ones are freed only after it stopped pointing at
 * them.  The header's first sector is rewritten in one write. */
#include "qcow2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int qcow2_sync(struct imgfmt_image *img)
{
	if (fdatasync(img->fd) < 0 && errno != EINVAL)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return 0;
}

/* Metadata out, then a barrier: what follows may rely on it being on disk. */
int qcow2_flush_and_sync(struct imgfmt_image *img)
{
	int r = qcow2_flush_meta(img);

	return r < 0 ? r : qcow2_sync(img);
}

static uint64_t l1_entries_for(const struct qcow2 *s, uint64_t size)
{
	return imgfmt_div_round_up(size, (uint64_t)s->cluster_bytes * s->l2_entries);
}

/* ---- resize ---- */

static uint64_t l1_clusters(const struct qcow2 *s, uint64_t entries)
{
	return imgfmt_div_round_up(entries * 8, s->cluster_bytes);
}

/* A larger L1 table: in place when its clusters have room (the new entries
 * written as zeroes first), else in new clusters at the end of the file. */
static int grow_l1(struct imgfmt_image *img, uint64_t n, uint64_t *old_off, uint64_t *old_bytes)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t room = l1_clusters(s, s->l1_size) * s->cluster_bytes / 8;
	uint64_t *l1 = calloc(n, 8), off, clusters;
	int r;

	*old_off = *old_bytes = 0;
	if (!l1)
		return imgfmt_err(img, -ENOMEM, "out of memory for an L1 table of %llu entries",
				  (unsigned long long)n);
	memcpy(l1, s->l1, (size_t)s->l1_size * 8);
	if (n <= room && s->l1_size) {
		off = s->h.l1_table_offset;
		r = qcow2_write_table_be64(img, l1 + s->l1_size, n - s->l1_size, n - s->l1_size,
					   off + (uint64_t)s->l1_size * 8);
	} else {
		clusters = imgfmt_div_round_up(n * 8, s->cluster_bytes);
		r = qcow2_alloc_clusters(img, clusters, &off);
		if (r == 0)
			r = qcow2_write_table_be64(img, l1, n, clusters * s->cluster_bytes / 8, off);
		*old_off = s->l1_size ? s->h.l1_table_offset : 0;
		*old_bytes = l1_clusters(s, s->l1_size) * s->cluster_bytes;
	}
	if (r == 0)
		r = qcow2_flush_and_sync(img);
	if (r < 0) {
		free(l1);
		return r;
	}
	free(s->l1);
	s->l1 = l1;
	s->h.l1_table_offset = off;
	return 0;
}

/* The part of the old last cluster past the old size reads as zeroes once
 * the image grows (it may hold anything: QEMU zeroes it too). */
static int zero_old_tail(struct imgfmt_image *img, uint64_t old_size)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t end = imgfmt_div_round_up(old_size, s->cluster_bytes) * s->cluster_bytes, e;
	uint8_t zero[512] = { 0 };
	int r;

	if (end > img->size_bytes)
		end = img->size_bytes;
	if (end <= old_size || (r = qcow2_l2_entry(img, old_size, &e)) < 0)
		return 0;
	if (!(e & (QCOW2_OFFSET_MASK | QCOW2_OFLAG_COMPRESSED)))
		return 0;
	for (uint64_t off = old_size; off < end; off += sizeof(zero))
		if ((r = img->drv->pwrite(img, zero, end - off < sizeof(zero) ? end - off : sizeof(zero), off)) < 0)
			return r;
	return 0;
}

static int grow(struct imgfmt_image *img, uint64_t size)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t n = l1_entries_for(s, size), old_off = 0, old_bytes = 0, old_size = img->size_bytes;
	int r;

	if (n > s->l1_size && (r = grow_l1(img, n, &old_off, &old_bytes)) < 0)
		return r;
	if (n > s->l1_size)
		s->l1_size = (uint32_t)n;
	s->h.l1_size = s->l1_size;
	s->h.size = size;
	if ((r = qcow2_write_header(img)) < 0 || (r = qcow2_sync(img)) < 0)
		return r;
	img->size_bytes = size;
	if (old_bytes && (r = qcow2_refcount_add(img, old_off, old_bytes, -1)) < 0)
		return r;
	if ((r = zero_old_tail(img, old_size)) < 0)
		return r;
	return qcow2_flush_and_sync(img);
}

/* Drop every cluster an L2 table maps, then the table itself. */
static int drop_l2_table(struct imgfmt_image *img, uint64_t l2_off)
{
	struct qcow2 *s = qcow2_state(img);
	uint8_t *l2;
	int r = qcow2_check_table(img, "L2 table", l2_off, s->cluster_bytes);

	for (uint32_t i = 0; r == 0 && i < s->l2_entries; i++) {
		uint64_t e;
		if ((r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
			break;
		e = imgfmt_get_be64(l2 + 8 * i);
		r = qcow2_drop_entry(img, e);
	}
	return r < 0 ? r : qcow2_refcount_add(img, l2_off, s->cluster_bytes, -1);
}

/* The header shrinks first (what lies past the new end is then unreferenced:
 * leaks at worst), then the clusters past it are freed and the L1 entries
 * past the new table zeroed. */
static int shrink(struct imgfmt_image *img, uint64_t size)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t n = l1_entries_for(s, size), old_n = s->l1_size, old_size = img->size_bytes;
	uint64_t first = imgfmt_div_round_up(size, s->cluster_bytes) * s->cluster_bytes;
	uint64_t span = (uint64_t)s->cluster_bytes * s->l2_entries;
	int r;

	s->h.size = size;
	s->h.l1_size = (uint32_t)n;
	if ((r = qcow2_write_header(img)) < 0 || (r = qcow2_sync(img)) < 0)
		return r;
	img->size_bytes = size;
	/* the last L2 table that stays: its clusters past the end */
	for (uint64_t off = first; r == 0 && off < old_size && off < n * span; off += s->cluster_bytes) {
		uint64_t e;
		if ((r = qcow2_l2_entry(img, off, &e)) == 0 && e)
			r = qcow2_set_l2_entry(img, off, 0);
	}
	for (uint64_t i = n; r == 0 && i < old_n; i++) {
		uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK;
		if (l2_off)
			r = drop_l2_table(img, l2_off);
		s->l1[i] = 0;
	}
	if (r == 0 && old_n > n)
		r = qcow2_write_table_be64(img, s->l1 + n, old_n - n, old_n - n,
					   s->h.l1_table_offset + n * 8);
	s->l1_size = (uint32_t)n;
	/* the L1 table's clusters past what n entries need */
	if (r == 0 && l1_clusters(s, old_n) > l1_clusters(s, n))
		r = qcow2_refcount_add(img, s->h.l1_table_offset + l1_clusters(s, n) * s->cluster_bytes,
				       (l1_clusters(s, old_n) - l1_clusters(s, n)) * s->cluster_bytes, -1);
	return r < 0 ? r : qcow2_flush_and_sync(img);
}

int qcow2_resize(struct imgfmt_image *img, uint64_t size)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (s->h.nb_snapshots)
		return imgfmt_err(img, -ENOTSUP, "%s: the image has %u internal snapshot(s) of the old size; "
				  "delete them first (p2v snapshot -d)", img->path, s->h.nb_snapshots);
	size = imgfmt_div_round_up(size, 512) * 512; /* QEMU counts whole sectors */
	if (size > (1ull << 56) || l1_entries_for(s, size) * 8 > QCOW2_MAX_L1_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: %llu bytes is too large for qcow2 with %u-byte clusters",
				  img->path, (unsigned long long)size, s->cluster_bytes);
	/* start from metadata that is all on disk */
	if ((r = qcow2_flush_and_sync(img)) < 0)
		return r;
	return size >= img->size_bytes ? grow(img, size) : shrink(img, size);
}

/* ---- discard (commit's emptying) ---- */

/* The whole clusters of [off, off+len) become unallocated (they read from
 * the backing file again), their data clusters freed; the partial ones at
 * either end are left as they are. */
int qcow2_discard(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, end = off + len, c;
	int r = 0;

	if (end == img->size_bytes)
		end = imgfmt_div_round_up(end, cb) * cb; /* the image's last cluster is whole */
	for (c = imgfmt_div_round_up(off, cb) * cb; c + cb <= end && r == 0; c += cb) {
		uint64_t e;
		if ((r = qcow2_l2_entry(img, c, &e)) == 0 && e)
			r = qcow2_set_l2_entry(img, c, 0);
	}
	return r < 0 ? r : qcow2_flush_and_sync(img);
}
