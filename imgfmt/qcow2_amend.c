/* qcow2 amend: the options qemu-img amend 7.2 changes in place (compat,
 * lazy_refcounts, size; refcount_bits, backing_file and backing_fmt only
 * to their current values), each change ordered so that an interruption
 * leaves a consistent image: the size first (qcow2_resize's order), then a
 * downgrade's zero clusters written out as data (an image still v3), then
 * the header switched by qcow2_switch_header (the one write that changes
 * the version and features). */
#include "qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { A_COMPAT, A_LAZY, A_REFCOUNT_BITS, A_SIZE, A_BACKING_FILE, A_BACKING_FMT, A_DATA_FILE,
       A_DATA_FILE_RAW };
static const char *const compat_choices[] = { "0.10", "1.1", "v2", "v3", NULL };

const struct imgfmt_opt_desc qcow2_amend_opts[] = {
	[A_COMPAT] = { "compat", IMGFMT_OPT_ENUM, NULL, "Compatibility level (v2 [0.10] or v3 [1.1])",
		       .choices = compat_choices },
	[A_LAZY] = { "lazy_refcounts", IMGFMT_OPT_BOOL, NULL, "Postpone refcount updates (v3 only)" },
	[A_REFCOUNT_BITS] = { "refcount_bits", IMGFMT_OPT_NUMBER, NULL,
			      "Width of a reference count entry in bits (p2v: only its current value)",
			      .min = 1, .max = 64, .pow2 = true },
	[A_SIZE] = { "size", IMGFMT_OPT_SIZE, NULL, "Virtual disk size (grows or shrinks, as resize)" },
	[A_BACKING_FILE] = { "backing_file", IMGFMT_OPT_STRING, NULL,
			     "File name of a base image (only its current value: 'p2v rebase' changes it)" },
	[A_BACKING_FMT] = { "backing_fmt", IMGFMT_OPT_STRING, NULL,
			    "Image format of the base image (only its current value)" },
	[A_DATA_FILE] = { "data_file", IMGFMT_OPT_STRING, NULL,
			  "File name of an external data file (not supported)" },
	[A_DATA_FILE_RAW] = { "data_file_raw", IMGFMT_OPT_BOOL, NULL,
			      "The external data file must stay valid as a raw image (not supported)" },
	{ 0 },
};

static unsigned new_version(const struct qcow2 *s, const struct imgfmt_optval *ov)
{
	if (!ov[A_COMPAT].set)
		return s->h.version;
	return ov[A_COMPAT].u == 0 || ov[A_COMPAT].u == 2 ? 2 : 3;
}

/* The options qemu-img refuses, in its words. */
static int check_fixed(struct imgfmt_image *img, const struct imgfmt_optval *ov)
{
	struct qcow2 *s = qcow2_state(img);

	if (ov[A_DATA_FILE].set)
		return imgfmt_err(img, -EINVAL, "data-file can only be set for images that use an external data file");
	if (ov[A_DATA_FILE_RAW].set)
		return imgfmt_err(img, -EINVAL, "data-file-raw can only be set for images that use an external data file");
	if ((ov[A_BACKING_FILE].set && strcmp(ov[A_BACKING_FILE].s, s->backing_name)) ||
	    (ov[A_BACKING_FMT].set && strcmp(ov[A_BACKING_FMT].s, s->backing_format)))
		return imgfmt_err(img, -EINVAL, "Cannot amend the backing file\n"
				  "You can use 'p2v rebase' instead.");
	return 0;
}

/* compat, lazy_refcounts and refcount_bits together, before any change. */
static int check_version(struct imgfmt_image *img, const struct imgfmt_optval *ov)
{
	struct qcow2 *s = qcow2_state(img);
	unsigned v = new_version(s, ov);

	if (ov[A_LAZY].set && ov[A_LAZY].u && v < 3)
		return imgfmt_err(img, -EINVAL, "Lazy refcounts only supported with compatibility level 1.1 "
				  "and above (use compat=1.1 or greater)");
	if (ov[A_REFCOUNT_BITS].set && ov[A_REFCOUNT_BITS].u != 16 && v < 3)
		return imgfmt_err(img, -EINVAL, "Refcount widths other than 16 bits require compatibility "
				  "level 1.1 or above (use compat=1.1 or greater)");
	if (ov[A_REFCOUNT_BITS].set && ov[A_REFCOUNT_BITS].u != s->refcount_bits)
		return imgfmt_err(img, -ENOTSUP, "%s: p2v amend cannot change refcount_bits (from %u to %llu): "
				  "'p2v convert -O qcow2 -o refcount_bits=%llu' writes a copy with them",
				  img->path, s->refcount_bits, (unsigned long long)ov[A_REFCOUNT_BITS].u,
				  (unsigned long long)ov[A_REFCOUNT_BITS].u);
	if (v >= s->h.version)
		return 0;
	/* a downgrade: v3-only features in use are refused, each named */
	if (s->refcount_bits != 16)
		return imgfmt_err(img, -ENOTSUP, "compat=0.10 requires refcount_bits=16 (%s has %u)",
				  img->path, s->refcount_bits);
	if (s->h.compression_type != QCOW2_COMP_ZLIB)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: the image uses "
				  "compression_type=zstd, a v3-only feature", img->path);
	if (s->bitmap_dir_offset)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: the image has "
				  "persistent bitmaps, a v3-only feature", img->path);
	if (s->h.nb_snapshots)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: p2v does not expand "
				  "the zero clusters (a v3-only feature) of its %u internal snapshots",
				  img->path, s->h.nb_snapshots);
	return 0;
}

/* A preallocated zero cluster (its host cluster kept): zeroes written
 * there now; the entry loses its zero flag in the second pass, after a
 * barrier.  Nothing is allocated or freed, so no refcount changes. */
static int zero_host_cluster(struct imgfmt_image *img, uint64_t e, uint64_t off, const uint8_t *zeroes)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t host = e & QCOW2_OFFSET_MASK;
	int r;

	if (host & (s->cluster_bytes - 1) || host + s->cluster_bytes > s->next_host)
		return imgfmt_err(img, -EIO, "%s: L2 entry for guest offset %llu points to %llu, outside the image",
				  img->path, (unsigned long long)off, (unsigned long long)host);
	r = imgfmt_fd_pwrite(img->fd, zeroes, s->cluster_bytes, host);
	return r < 0 ? imgfmt_err(img, r, "%s: write at %llu: %s", img->path, (unsigned long long)host,
				  strerror(-r)) : 0;
}

/* Its zero flag off (the zeroes are durable in its host cluster). */
static int unflag(struct imgfmt_image *img, uint32_t l1_index, uint64_t off, uint64_t e)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t l2_off = s->l1[l1_index] & QCOW2_OFFSET_MASK, ref;
	uint8_t *l2;
	int r;

	if ((r = qcow2_refcount_get(img, (e & QCOW2_OFFSET_MASK) >> s->cluster_bits, &ref)) < 0 ||
	    (r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
		return r;
	e &= ~(QCOW2_OFLAG_ZERO | QCOW2_OFLAG_COPIED);
	imgfmt_put_be64(l2 + 8 * ((off >> s->cluster_bits) % s->l2_entries), e | (ref == 1 ? QCOW2_OFLAG_COPIED : 0));
	qcow2_cache_mark_dirty(s->l2_cache, l2_off);
	return 0;
}

/* One pass over the zero clusters of the active table: pass 0 writes the
 * zeroes of the preallocated ones in place, pass 1 drops their zero flag
 * and writes the others as new clusters of zeroes (allocations only). */
static int zero_pass(struct imgfmt_image *img, int pass, const uint8_t *zeroes)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, per_l1 = (uint64_t)s->l2_entries * cb;
	int r = 0;

	for (uint32_t i = 0; r == 0 && i < s->l1_size; i++) {
		if (!(s->l1[i] & QCOW2_OFFSET_MASK))
			continue;
		for (uint64_t off = i * per_l1; r == 0 && off < (i + 1) * per_l1 && off < img->size_bytes;
		     off += cb) {
			uint64_t e, n = img->size_bytes - off < cb ? img->size_bytes - off : cb;
			if ((r = qcow2_l2_entry(img, off, &e)) < 0)
				break;
			if (!(e & QCOW2_OFLAG_ZERO) || (e & QCOW2_OFLAG_COMPRESSED))
				continue;
			if (e & QCOW2_OFFSET_MASK)
				r = pass == 0 ? zero_host_cluster(img, e, off, zeroes) : unflag(img, i, off, e);
			else if (pass == 1)
				r = imgfmt_pwrite(img, zeroes, n, off);
		}
	}
	return r < 0 ? r : qcow2_flush_and_sync(img);
}

/* Downgrade: every zero cluster of the active table becomes a data
 * cluster of zeroes (v2 has none), as QEMU's downgrade does; an
 * interruption leaves the v3 image reading the same. */
static int expand_zero_clusters(struct imgfmt_image *img)
{
	uint8_t *zeroes = calloc(1, qcow2_state(img)->cluster_bytes);
	int r = zeroes ? 0 : imgfmt_err(img, -ENOMEM, "out of memory");

	if (r == 0)
		r = zero_pass(img, 0, zeroes);
	if (r == 0)
		r = zero_pass(img, 1, zeroes);
	free(zeroes);
	return r;
}

/* The header the options ask for (*changed: it differs). */
static void amended_header(const struct qcow2 *s, const struct imgfmt_optval *ov,
			   struct qcow2_header *h, bool *changed)
{
	unsigned v = new_version(s, ov);

	*h = s->h;
	if (v < 3 && s->h.version >= 3) {
		h->version = 2;
		h->header_length = QCOW2_HEADER_V2_BYTES;
		h->incompatible_features = h->compatible_features = h->autoclear_features = 0;
		h->refcount_order = 4;
	} else if (v >= 3 && s->h.version < 3) {
		h->version = 3;
		h->header_length = QCOW2_HEADER_WRITE_BYTES;
		h->incompatible_features = h->compatible_features = h->autoclear_features = 0;
		h->refcount_order = 4;
		h->compression_type = QCOW2_COMP_ZLIB;
	}
	if (ov[A_LAZY].set && h->version >= 3) {
		if (ov[A_LAZY].u)
			h->compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
		else
			h->compatible_features &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
	}
	*changed = h->version != s->h.version || h->compatible_features != s->h.compatible_features;
}

int qcow2_amend(struct imgfmt_image *img, const struct imgfmt_optval *ov, bool check_only)
{
	struct qcow2 *s = qcow2_state(img);
	struct qcow2_header h;
	bool changed;
	int r;

	if ((r = check_fixed(img, ov)) < 0 || (r = check_version(img, ov)) < 0 || check_only)
		return r;
	if (ov[A_SIZE].set && ov[A_SIZE].u != img->size_bytes &&
	    (r = imgfmt_resize(img, ov[A_SIZE].u, true)) < 0)
		return r;
	if (new_version(s, ov) < s->h.version && (r = expand_zero_clusters(img)) < 0)
		return r;
	amended_header(s, ov, &h, &changed);
	if (!changed)
		return 0;
	return qcow2_switch_header(img, &h, s->backing_name, s->backing_format);
}
