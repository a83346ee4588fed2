/* qcow2 amend: the options qemu-img amend 7.2 changes in place (compat,
 * lazy_refcounts, size, refcount_bits; backing_file and backing_fmt only
 * to their current values), each change ordered so that an interruption
 * leaves a consistent image: the size first (qcow2_resize's order), then
 * the refcount width (new structures, then one header write), then a
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
	[A_LAZY] = { .name = "lazy_refcounts", .type = IMGFMT_OPT_BOOL,
		     .help = "Postpone refcount updates (v3 only)" },
	[A_REFCOUNT_BITS] = { "refcount_bits", IMGFMT_OPT_NUMBER, NULL,
			      "Width of a reference count entry in bits",
			      .min = 1, .max = 64, .pow2 = true },
	[A_SIZE] = { .name = "size", .type = IMGFMT_OPT_SIZE,
		     .help = "Virtual disk size (grows or shrinks, as resize)" },
	[A_BACKING_FILE] = { .name = "backing_file", .type = IMGFMT_OPT_STRING,
			     .help = "File name of a base image (only its current value: 'p2v rebase' changes it)" },
	[A_BACKING_FMT] = { .name = "backing_fmt", .type = IMGFMT_OPT_STRING,
			    .help = "Image format of the base image (only its current value)" },
	[A_DATA_FILE] = { .name = "data_file", .type = IMGFMT_OPT_STRING,
			  .help = "File name of an external data file (not supported)" },
	[A_DATA_FILE_RAW] = { .name = "data_file_raw", .type = IMGFMT_OPT_BOOL,
			      .help = "The external data file must stay valid as a raw image (not supported)" },
	{ 0 },
};

static unsigned new_version(const struct qcow2 *s, const struct imgfmt_optval *ov)
{
	if (!ov[A_COMPAT].set)
		return s->h.version;
	return ov[A_COMPAT].u == 0 || ov[A_COMPAT].u == 2 ? 2 : 3;
}

static unsigned new_bits(const struct qcow2 *s, const struct imgfmt_optval *ov)
{
	return ov[A_REFCOUNT_BITS].set ? (unsigned)ov[A_REFCOUNT_BITS].u : s->refcount_bits;
}

static uint64_t max_ref(unsigned bits)
{
	return bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
}

/* Every refcount of the image fits in bits (qemu-img's refusal). */
static int refcounts_fit(struct imgfmt_image *img, unsigned bits)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t n = imgfmt_div_round_up(s->file_bytes, s->cluster_bytes), ref;
	int r;

	for (uint64_t c = 0; c < n; c++) {
		if ((r = qcow2_refcount_get(img, c, &ref)) < 0)
			return r;
		if (ref > max_ref(bits))
			return imgfmt_err(img, -EINVAL, "%s: cluster %llu has refcount %llu, more than "
					  "refcount_bits=%u holds", img->path, (unsigned long long)c,
					  (unsigned long long)ref, bits);
	}
	return 0;
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
	uint64_t n_zero = 0;
	int r;

	if (ov[A_LAZY].set && ov[A_LAZY].u && v < 3)
		return imgfmt_err(img, -EINVAL, "Lazy refcounts only supported with compatibility level 1.1 "
				  "and above (use compat=1.1 or greater)");
	if (ov[A_REFCOUNT_BITS].set && ov[A_REFCOUNT_BITS].u != 16 && v < 3)
		return imgfmt_err(img, -EINVAL, "Refcount widths other than 16 bits require compatibility "
				  "level 1.1 or above (use compat=1.1 or greater)");
	if (ov[A_REFCOUNT_BITS].set && ov[A_REFCOUNT_BITS].u != s->refcount_bits &&
	    (r = refcounts_fit(img, (unsigned)ov[A_REFCOUNT_BITS].u)) < 0)
		return r;
	if (v >= s->h.version)
		return 0;
	/* a downgrade: v3-only features in use are refused, each named */
	if (new_bits(s, ov) != 16)
		return imgfmt_err(img, -ENOTSUP, "compat=0.10 requires refcount_bits=16 (%s has %u)",
				  img->path, s->refcount_bits);
	if (s->h.compression_type != QCOW2_COMP_ZLIB)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: the image uses "
				  "compression_type=zstd, a v3-only feature", img->path);
	if (s->bitmap_dir_offset)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: the image has "
				  "persistent bitmaps, a v3-only feature", img->path);
	if (s->h.nb_snapshots && (r = qcow2_snapshot_zero_clusters(img, &n_zero)) < 0)
		return r;
	if (n_zero)
		return imgfmt_err(img, -ENOTSUP, "%s: cannot downgrade to compat=0.10: its internal snapshots "
				  "hold %llu zero clusters (a v3-only feature), which p2v does not expand",
				  img->path, (unsigned long long)n_zero);
	return 0;
}

/* A preallocated zero cluster (its host cluster kept): zeroes written
 * there now; the entry loses its zero flag in the second pass, after a
 * barrier.  Nothing is allocated or freed, so no refcount changes. */
static int zero_host_cluster(struct imgfmt_image *img, uint64_t e, uint64_t off, const uint8_t *zeroes)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t host = e & QCOW2_OFFSET_MASK, ref;
	int r;

	if (host & (s->cluster_bytes - 1) || host + s->cluster_bytes > s->next_host)
		return imgfmt_err(img, -EIO, "%s: L2 entry for guest offset %llu points to %llu, outside the image",
				  img->path, (unsigned long long)off, (unsigned long long)host);
	/* shared (a snapshot's too): zeroes written there would show through
	 * it; QEMU never leaves a zero entry on a shared cluster */
	if ((r = qcow2_refcount_get(img, host >> s->cluster_bits, &ref)) < 0)
		return r;
	if (ref != 1)
		return imgfmt_err(img, -EIO, "%s: the zero cluster at guest offset %llu keeps host cluster %llu, "
				  "which has refcount %llu (1 expected); nothing was changed", img->path,
				  (unsigned long long)off, (unsigned long long)host, (unsigned long long)ref);
	r = imgfmt_fd_pwrite(img->fd, zeroes, s->cluster_bytes, host);
	return r < 0 ? imgfmt_err(img, r, "%s: write at %llu: %s", img->path, (unsigned long long)host,
				  strerror(-r)) : 0;
}

/* Its zero flag off (the zeroes are durable in its host cluster). */
static int unflag(struct imgfmt_image *img, uint32_t l1_index, uint64_t off, uint64_t e)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t l2_off = s->l1[l1_index] & QCOW2_OFFSET_MASK;
	uint8_t *l2;
	int r;

	/* pass 0 found the host cluster's refcount 1: COPIED holds */
	if ((r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
		return r;
	e &= ~(QCOW2_OFLAG_ZERO | QCOW2_OFLAG_COPIED);
	imgfmt_put_be64(l2 + 8 * ((off >> s->cluster_bits) % s->l2_entries), e | QCOW2_OFLAG_COPIED);
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

/* ---- refcount_bits: new refcount structures, then one header write ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The new layout: the n clusters in use, then the table (*t clusters),
 * then the blocks (*b), which count themselves and the table. */
static void width_layout(uint64_t n, uint64_t refs_per_block, uint32_t cb, uint64_t *t, uint64_t *b)
{
	uint64_t pb, pt;

	*t = *b = 0;
	do {
		pb = *b;
		pt = *t;
		*b = imgfmt_div_round_up(n + *b + *t, refs_per_block);
		*t = imgfmt_div_round_up(*b * 8, cb);
	} while (*b != pb || *t != pt);
}

/* The refcount of cluster c in the new structures: its count now, but 0
 * for the old table and blocks (free once the header points past them)
 * and 1 for the new ones (c >= n). */
static int new_ref(struct imgfmt_image *img, const uint64_t *old_blocks, size_t n_old, uint64_t n,
		   uint64_t c, uint64_t *ref)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t t0 = s->h.refcount_table_offset >> s->cluster_bits;

	*ref = 1;
	if (c >= n)
		return 0;
	*ref = 0;
	if ((c >= t0 && c < t0 + s->h.refcount_table_clusters) ||
	    bsearch(&c, old_blocks, n_old, sizeof(*old_blocks), cmp_u64))
		return 0;
	return qcow2_refcount_get(img, c, ref);
}

/* The old refcount blocks' cluster numbers, sorted (caller frees). */
static int old_block_list(struct imgfmt_image *img, uint64_t **out, size_t *n_out)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t *v = calloc(s->reftable_entries + 1, sizeof(*v));
	size_t n = 0;

	if (!v)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint64_t j = 0; j < s->reftable_entries; j++)
		if (s->reftable[j])
			v[n++] = s->reftable[j] >> s->cluster_bits;
	qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	*n_out = n;
	return 0;
}

/* Write the new blocks and table past the n clusters in use. */
static int write_width(struct imgfmt_image *img, unsigned bits, uint64_t n, uint64_t t, uint64_t b,
		       uint64_t *table)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, rpb = cb * 8 / bits, *old = NULL, ref;
	uint8_t *buf = malloc(cb);
	size_t n_old = 0;
	int r = buf ? old_block_list(img, &old, &n_old) : imgfmt_err(img, -ENOMEM, "out of memory");

	for (uint64_t j = 0; r == 0 && j < b; j++) {
		memset(buf, 0, cb);
		for (uint64_t i = 0; r == 0 && i < rpb && j * rpb + i < n + t + b; i++)
			if ((r = new_ref(img, old, n_old, n, j * rpb + i, &ref)) == 0)
				qcow2_put_refcount_raw(buf, bits, i, ref);
		table[j] = (n + t + j) * cb;
		if (r == 0 && (r = imgfmt_fd_pwrite(img->fd, buf, cb, table[j])) < 0)
			r = imgfmt_err(img, r, "%s: writing a refcount block: %s", img->path, strerror(-r));
	}
	if (r == 0)
		r = qcow2_write_table_be64(img, table, b, t * cb / 8, n * cb);
	free(buf);
	free(old);
	return r;
}

/* refcount_bits: new structures written where nothing points and made
 * durable; then one header write (refcount_order, table offset and size)
 * switches to them; the old ones are free in the new counts.  An
 * interruption leaves the old counts or the new ones. */
static int change_refcount_width(struct imgfmt_image *img, unsigned bits)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, n, t, b, *table;
	int r;

	if ((r = qcow2_flush_and_sync(img)) < 0)
		return r;
	n = imgfmt_div_round_up(s->next_host > s->file_bytes ? s->next_host : s->file_bytes, cb);
	width_layout(n, cb * 8 / bits, s->cluster_bytes, &t, &b);
	if (t * cb > QCOW2_MAX_REFTABLE_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: a refcount table of %llu bytes for refcount_bits=%u is too large",
				  img->path, (unsigned long long)(t * cb), bits);
	table = calloc(t * cb / 8, 8);
	if (!table)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = write_width(img, bits, n, t, b, table);
	if (r == 0)
		r = qcow2_sync(img);
	if (r < 0) {
		free(table);
		return r;
	}
	s->h.refcount_order = (uint32_t)__builtin_ctz(bits);
	s->h.refcount_table_offset = n * cb;
	s->h.refcount_table_clusters = (uint32_t)t;
	if ((r = qcow2_write_header(img)) == 0)
		r = qcow2_sync(img);
	/* the handle follows the header from here (the file has the new one
	 * or, after a failed write, may have) */
	qcow2_cache_free(s->ref_cache);
	free(s->reftable);
	s->reftable = table;
	s->reftable_entries = s->reftable_disk_entries = t * cb / 8;
	s->reftable_dirty = false;
	s->refcount_bits = bits;
	s->refs_per_block = cb * 8 / bits;
	s->next_host = s->file_bytes = (n + t + b) * cb;
	return r;
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
	if (new_bits(s, ov) != s->refcount_bits) {
		/* other widths need v3: an upgrade goes first */
		amended_header(s, ov, &h, &changed);
		if (s->h.version < 3 && (r = qcow2_switch_header(img, &h, s->backing_name, s->backing_format)) < 0)
			return r;
		if ((r = change_refcount_width(img, new_bits(s, ov))) < 0)
			return r;
	}
	if (new_version(s, ov) < s->h.version && (r = expand_zero_clusters(img)) < 0)
		return r;
	amended_header(s, ov, &h, &changed);
	if (!changed)
		return 0;
	return qcow2_switch_header(img, &h, s->backing_name, s->backing_format);
}
