/* qcow2 metadata: the cluster-table cache (L2 tables, refcount blocks),
 * refcounts of any width, append-only cluster allocation, metadata flush,
 * and the consistency check. */
#include "qcow2.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- cache of cluster-sized tables ---- */

static int slot_write(struct imgfmt_image *img, struct qcow2_slot *sl)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (!sl->dirty)
		return 0;
	r = imgfmt_fd_pwrite(img->fd, sl->data, s->cluster_bytes, sl->offset);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing metadata at %llu: %s", img->path,
				  (unsigned long long)sl->offset, strerror(-r));
	if (sl->offset + s->cluster_bytes > s->file_bytes)
		s->file_bytes = sl->offset + s->cluster_bytes;
	sl->dirty = false;
	return 0;
}

static struct qcow2_slot *victim(struct qcow2_slot *cache)
{
	struct qcow2_slot *v = &cache[0];

	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++) {
		if (!cache[i].offset)
			return &cache[i];
		if (cache[i].used < v->used)
			v = &cache[i];
	}
	return v;
}

/* The words of a loaded table that may be non-zero: [lo, hi). */
static void slot_scan(const struct qcow2 *s, struct qcow2_slot *sl)
{
	const uint64_t *w = (const uint64_t *)(const void *)sl->data;
	uint32_t n = s->cluster_bytes / 8, lo = 0, hi = n;

	while (lo < n && !w[lo])
		lo++;
	while (hi > lo && !w[hi - 1])
		hi--;
	sl->nz_lo = lo;
	sl->nz_hi = hi;
}

/* Write ordering of an image changed in place (a created one is renamed
 * into place only when complete): a cluster is counted before an L2 table
 * points at it, and unreferenced before its count drops, so that an
 * interruption leaks clusters at worst.  Before L2 tables are written:
 * the refcounts (unless some were lowered), then a barrier. */
static bool ordered(const struct imgfmt_image *img)
{
	return !img->tmp_path;
}

static bool cache_dirty(const struct qcow2_slot *cache)
{
	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++)
		if (cache[i].offset && cache[i].dirty)
			return true;
	return false;
}

static int sync_meta(struct imgfmt_image *img)
{
	if (fdatasync(img->fd) < 0 && errno != EINVAL)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return 0;
}

static int write_refcounts(struct imgfmt_image *img);

static int before_l2(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (!ordered(img) || s->frees_pending || (!cache_dirty(s->ref_cache) && !s->reftable_dirty &&
						   s->reftable_entries <= s->reftable_disk_entries))
		return 0;
	r = write_refcounts(img);
	return r < 0 ? r : sync_meta(img);
}

/* Before refcount blocks are written with lowered counts: the L2 tables
 * and the L1 table that stopped pointing at the clusters, then a barrier. */
static int before_refcounts(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (!ordered(img) || !s->frees_pending)
		return 0;
	r = qcow2_cache_flush(img, s->l2_cache);
	if (r == 0 && s->l1_dirty && (r = qcow2_write_table_be64(img, s->l1, s->l1_size, s->l1_size,
								 s->h.l1_table_offset)) == 0)
		s->l1_dirty = false;
	return r < 0 ? r : sync_meta(img);
}

/* The slot of the table at host offset off (validated by the caller),
 * loaded from the file or, with load false, fresh zeroes. */
static int cache_slot(struct imgfmt_image *img, struct qcow2_slot *cache, uint64_t off, bool load,
		      struct qcow2_slot **out)
{
	struct qcow2 *s = qcow2_state(img);
	struct qcow2_slot *sl;
	int r;

	s->tick++;
	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++)
		if (cache[i].offset == off) {
			cache[i].used = s->tick;
			*out = &cache[i];
			return 0;
		}
	sl = victim(cache);
	if (sl->offset && sl->dirty &&
	    (r = cache == s->l2_cache ? before_l2(img) : before_refcounts(img)) < 0)
		return r;
	if ((r = slot_write(img, sl)) < 0)
		return r;
	if (!sl->data && !(sl->data = malloc(s->cluster_bytes)))
		return imgfmt_err(img, -ENOMEM, "out of memory for qcow2 tables");
	sl->offset = 0;
	if (load && (r = imgfmt_fd_pread_zfill(img->fd, sl->data, s->cluster_bytes, off)) < 0)
		return imgfmt_err(img, r, "%s: reading metadata at %llu: %s", img->path,
				  (unsigned long long)off, strerror(-r));
	if (load) {
		slot_scan(s, sl);
	} else {
		memset(sl->data, 0, s->cluster_bytes);
		sl->nz_lo = sl->nz_hi = 0;
	}
	sl->offset = off;
	sl->used = s->tick;
	sl->dirty = false;
	*out = sl;
	return 0;
}

int qcow2_cache_get(struct imgfmt_image *img, struct qcow2_slot *cache, uint64_t off,
		    bool load, uint8_t **data)
{
	struct qcow2_slot *sl;
	int r = cache_slot(img, cache, off, load, &sl);

	if (r == 0)
		*data = sl->data;
	return r;
}

int qcow2_cache_get_range(struct imgfmt_image *img, struct qcow2_slot *cache, uint64_t off,
			  uint8_t **data, uint32_t *nz_lo, uint32_t *nz_hi)
{
	struct qcow2_slot *sl;
	int r = cache_slot(img, cache, off, true, &sl);

	if (r == 0) {
		*data = sl->data;
		*nz_lo = sl->nz_lo;
		*nz_hi = sl->nz_hi;
	}
	return r;
}

void qcow2_cache_mark_dirty(struct qcow2_slot *cache, uint64_t off)
{
	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++)
		if (cache[i].offset == off) {
			struct qcow2_slot *sl = &cache[i];
			sl->dirty = true;
			sl->nz_lo = 0;
			sl->nz_hi = UINT32_MAX; /* clamped to the table by its readers */
		}
}

int qcow2_cache_flush(struct imgfmt_image *img, struct qcow2_slot *cache)
{
	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++) {
		int r = cache[i].offset ? slot_write(img, &cache[i]) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

void qcow2_cache_free(struct qcow2_slot *cache)
{
	for (unsigned i = 0; i < QCOW2_CACHE_SLOTS; i++) {
		free(cache[i].data);
		cache[i].data = NULL;
		cache[i].offset = 0;
	}
}

/* ---- refcounts ---- */

uint64_t qcow2_get_refcount_raw(const struct qcow2 *s, const uint8_t *block, uint64_t i)
{
	unsigned bits = s->refcount_bits;
	uint64_t v = 0;

	if (bits < 8)
		return (block[i * bits / 8] >> (i * bits % 8)) & ((1u << bits) - 1);
	for (unsigned b = 0; b < bits / 8; b++)
		v = v << 8 | block[i * (bits / 8) + b];
	return v;
}

void qcow2_put_refcount_raw(uint8_t *block, unsigned bits, uint64_t i, uint64_t v)
{
	if (bits < 8) {
		unsigned shift = (unsigned)(i * bits % 8);
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		block[i * bits / 8] = (uint8_t)((block[i * bits / 8] & ~mask) | (v << shift));
		return;
	}
	for (unsigned b = bits / 8; b-- > 0; v >>= 8)
		block[i * (bits / 8) + b] = (uint8_t)v;
}

static int reftable_grow(struct imgfmt_image *img, uint64_t idx)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t n = s->reftable_entries * 2 > idx + 1 ? s->reftable_entries * 2 : idx + 1;
	uint64_t *t;

	if (n > QCOW2_MAX_REFTABLE_BYTES / 8)
		return imgfmt_err(img, -EFBIG, "%s: refcount table would exceed %u bytes", img->path,
				  QCOW2_MAX_REFTABLE_BYTES);
	t = realloc(s->reftable, n * 8);
	if (!t)
		return imgfmt_err(img, -ENOMEM, "out of memory for the refcount table");
	memset(t + s->reftable_entries, 0, (n - s->reftable_entries) * 8);
	s->reftable = t;
	s->reftable_entries = n;
	return 0;
}

int qcow2_refcount_get(struct imgfmt_image *img, uint64_t host_cluster, uint64_t *ref)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t idx = host_cluster / s->refs_per_block;
	uint8_t *block;
	int r;

	*ref = 0;
	if (idx >= s->reftable_entries || !s->reftable[idx])
		return 0;
	r = qcow2_cache_get(img, s->ref_cache, s->reftable[idx], true, &block);
	if (r == 0)
		*ref = qcow2_get_refcount_raw(s, block, host_cluster % s->refs_per_block);
	return r;
}

/* The refcount block for table index idx, created (at the end of the file,
 * counting itself) when missing. */
static int refblock(struct imgfmt_image *img, uint64_t idx, uint8_t **block)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off;
	int r;

	if (idx >= s->reftable_entries && (r = reftable_grow(img, idx)) < 0)
		return r;
	if (s->reftable[idx])
		return qcow2_cache_get(img, s->ref_cache, s->reftable[idx], true, block);
	off = s->next_host;
	s->next_host += s->cluster_bytes;
	s->reftable[idx] = off;
	s->reftable_dirty = true;
	if ((r = qcow2_cache_get(img, s->ref_cache, off, false, block)) < 0)
		return r;
	qcow2_cache_mark_dirty(s->ref_cache, off);
	return qcow2_refcount_add(img, off, s->cluster_bytes, +1);
}

static int refcount_add_one(struct imgfmt_image *img, uint64_t c, int delta)
{
	struct qcow2 *s = qcow2_state(img);

	if (delta < 0)
		s->frees_pending = true;
	uint64_t max = s->refcount_bits == 64 ? UINT64_MAX : (1ull << s->refcount_bits) - 1;
	uint64_t idx = c / s->refs_per_block, v;
	uint8_t *block;
	int r = refblock(img, idx, &block);

	if (r < 0)
		return r;
	/* refblock() may have evicted and reloaded: fetch again to be sure */
	if ((r = qcow2_cache_get(img, s->ref_cache, s->reftable[idx], true, &block)) < 0)
		return r;
	v = qcow2_get_refcount_raw(s, block, c % s->refs_per_block);
	if ((delta < 0 && v == 0) || (delta > 0 && v == max))
		return imgfmt_err(img, -EIO, "%s: refcount of cluster %llu would %s", img->path,
				  (unsigned long long)c, delta < 0 ? "go below zero" : "overflow");
	qcow2_put_refcount_raw(block, s->refcount_bits, c % s->refs_per_block, delta < 0 ? v - 1 : v + 1);
	qcow2_cache_mark_dirty(s->ref_cache, s->reftable[idx]);
	return 0;
}

/* Add delta (+1/-1) to every host cluster touched by [host_off, +len). */
int qcow2_refcount_add(struct imgfmt_image *img, uint64_t host_off, uint64_t len, int delta)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t first = host_off >> s->cluster_bits;
	uint64_t last = (host_off + len - 1) >> s->cluster_bits;

	for (uint64_t c = first; c <= last; c++) {
		int r = refcount_add_one(img, c, delta);
		if (r < 0)
			return r;
	}
	return 0;
}

int qcow2_alloc_clusters(struct imgfmt_image *img, uint64_t n, uint64_t *host_off)
{
	struct qcow2 *s = qcow2_state(img);

	*host_off = s->next_host;
	s->next_host += n * s->cluster_bytes;
	return qcow2_refcount_add(img, *host_off, n * s->cluster_bytes, +1);
}

/* ---- flush ---- */

/* The refcount table outgrew its clusters: move it to the end of the file. */
static int reftable_relocate(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t old_off = s->h.refcount_table_offset;
	uint64_t old_clusters = s->h.refcount_table_clusters, need, off;
	int r;

	for (int tries = 0; tries < 8; tries++) {
		need = imgfmt_div_round_up(s->reftable_entries * 8, s->cluster_bytes);
		if ((r = qcow2_alloc_clusters(img, need, &off)) < 0)
			return r;
		if (imgfmt_div_round_up(s->reftable_entries * 8, s->cluster_bytes) <= need) {
			s->h.refcount_table_offset = off;
			s->h.refcount_table_clusters = (uint32_t)need;
			s->reftable_disk_entries = need * s->cluster_bytes / 8;
			s->header_dirty = s->reftable_dirty = true;
			return qcow2_refcount_add(img, old_off, old_clusters * s->cluster_bytes, -1);
		}
		if ((r = qcow2_refcount_add(img, off, need * s->cluster_bytes, -1)) < 0)
			return r;
	}
	return imgfmt_err(img, -EIO, "%s: refcount table relocation did not settle", img->path);
}

int qcow2_write_table_be64(struct imgfmt_image *img, const uint64_t *t, uint64_t n,
			    uint64_t room, uint64_t off)
{
	uint64_t *be = calloc(room ? room : 1, 8);
	int r;

	if (!be)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n && i < room; i++)
		be[i] = htobe64(t[i]);
	r = imgfmt_fd_pwrite(img->fd, be, room * 8, off);
	free(be);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing a table at %llu: %s", img->path,
				  (unsigned long long)off, strerror(-r));
	return 0;
}

/* The refcount blocks and table as they are in memory. */
static int write_refcounts(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	int r = 0;

	if (s->reftable_entries > s->reftable_disk_entries)
		r = reftable_relocate(img);
	if (r == 0)
		r = qcow2_cache_flush(img, s->ref_cache);
	if (r == 0 && s->reftable_dirty)
		r = qcow2_write_table_be64(img, s->reftable, s->reftable_entries, s->reftable_disk_entries,
				     s->h.refcount_table_offset);
	if (r == 0)
		s->reftable_dirty = false;
	return r;
}

int qcow2_flush_meta(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	int r = before_l2(img);

	if (r == 0 && s->reftable_entries > s->reftable_disk_entries)
		r = reftable_relocate(img);
	if (r == 0)
		r = qcow2_cache_flush(img, s->l2_cache);
	if (r == 0 && s->l1_dirty)
		r = qcow2_write_table_be64(img, s->l1, s->l1_size, s->l1_size, s->h.l1_table_offset);
	if (r == 0 && s->frees_pending && cache_dirty(s->ref_cache))
		r = before_refcounts(img);
	if (r == 0)
		r = write_refcounts(img);
	if (r == 0)
		s->frees_pending = false;
	if (r == 0 && s->header_area_dirty)
		r = qcow2_write_header_area(img);
	else if (r == 0 && s->header_dirty)
		r = qcow2_write_header(img);
	if (r == 0)
		s->l1_dirty = s->reftable_dirty = s->header_dirty = s->header_area_dirty = false;
	return r;
}

/* ---- check ---- */

struct qcow2_refs {
	uint32_t *n;
	uint64_t clusters;
	uint64_t errors;
	struct imgfmt_check *res;
	bool active;             /* counting the active L1 table: allocation facts */
	uint64_t next_contiguous; /* host offset right after the last data cluster */
};

static void problem(struct qcow2_refs *rf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct qcow2_refs *rf, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	rf->errors++;
	if (rf->res->report) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		rf->res->report(rf->res->report_opaque, msg);
	}
}

static void count(struct qcow2_refs *rf, uint64_t off, uint64_t len, uint32_t cbits)
{
	uint64_t last;

	if (len == 0)
		return;
	last = (off + len - 1) >> cbits;
	for (uint64_t c = off >> cbits; c <= last; c++) {
		if (c >= rf->clusters) {
			problem(rf, "ERROR reference to cluster %llu beyond the end of the file (%llu clusters)",
				(unsigned long long)c, (unsigned long long)rf->clusters);
			return;
		}
		rf->n[c]++;
	}
}

/* Allocation facts as qemu-img check counts them (active table only):
 * compressed clusters count as fragmented; a data cluster is fragmented
 * when it does not follow the one before it in the file. */
static void count_l2(struct imgfmt_image *img, struct qcow2_refs *rf, const uint8_t *l2,
		     uint32_t lo, uint32_t hi)
{
	struct qcow2 *s = qcow2_state(img);
	struct imgfmt_check *res = rf->res;

	/* entries outside [lo, hi) are zero: they reference nothing */
	for (uint32_t i = lo; i < hi && i < s->l2_entries; i++) {
		uint64_t e = imgfmt_get_be64(l2 + 8 * i);
		if (e & QCOW2_OFLAG_COMPRESSED) {
			uint64_t off = e & ((1ull << s->csize_shift) - 1) & ~QCOW2_OFLAG_COPIED;
			uint64_t sectors = ((e >> s->csize_shift) & s->csize_mask) + 1;
			count(rf, off, sectors * 512 - (off & 511), s->cluster_bits);
			if (rf->active) {
				res->allocated_clusters++;
				res->compressed_clusters++;
				res->fragmented_clusters++;
			}
		} else if (e & QCOW2_OFFSET_MASK) {
			uint64_t off = e & QCOW2_OFFSET_MASK;
			if (off & (s->cluster_bytes - 1))
				problem(rf, "ERROR data cluster offset %llu is not aligned (L2 entry %u)",
					(unsigned long long)off, i);
			count(rf, off, s->cluster_bytes, s->cluster_bits);
			if (rf->active) {
				res->allocated_clusters++;
				if (rf->next_contiguous && off != rf->next_contiguous)
					res->fragmented_clusters++;
				rf->next_contiguous = off + s->cluster_bytes;
			}
		}
	}
}

/* The L2 tables and data of one L1 table (active or a snapshot's).  The
 * tables come through the L2 cache keyed by offset: L1 entries sharing a
 * table read it once (each still counts its references, as qemu-img check
 * does), and an all-zero table costs no scan. */
static int count_l1(struct imgfmt_image *img, struct qcow2_refs *rf, const uint64_t *l1,
		    uint32_t l1_size)
{
	struct qcow2 *s = qcow2_state(img);

	for (uint32_t i = 0; i < l1_size; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
		uint32_t lo, hi;
		uint8_t *l2;
		int r;
		if (!off)
			continue;
		count(rf, off, s->cluster_bytes, s->cluster_bits);
		if ((r = qcow2_cache_get_range(img, s->l2_cache, off, &l2, &lo, &hi)) < 0)
			return r;
		count_l2(img, rf, l2, lo, hi);
	}
	return 0;
}

/* Internal snapshots: the table itself, each snapshot's L1 table and what
 * it references.  Entries: 40 fixed bytes, extra data, id, name, padded to 8. */
static int count_snapshots(struct imgfmt_image *img, struct qcow2_refs *rf)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off = s->h.snapshots_offset;
	uint8_t e[40];
	int r = 0;

	for (uint32_t i = 0; i < s->h.nb_snapshots && r == 0; i++) {
		uint64_t l1_off, len;
		uint32_t l1_size;
		uint64_t *l1;
		if ((r = imgfmt_fd_pread(img->fd, e, sizeof(e), off)) < 0)
			return r;
		l1_off = imgfmt_get_be64(e);
		l1_size = imgfmt_get_be32(e + 8);
		len = 40 + (uint64_t)imgfmt_get_be32(e + 36) + imgfmt_get_be16(e + 12) + imgfmt_get_be16(e + 14);
		off += (len + 7) & ~7ull;
		if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES || l1_off + (uint64_t)l1_size * 8 > s->next_host)
			return -EINVAL;
		count(rf, l1_off, (uint64_t)l1_size * 8, s->cluster_bits);
		if (!(l1 = malloc((uint64_t)l1_size * 8 + 8)))
			return -ENOMEM;
		r = imgfmt_fd_pread(img->fd, l1, (uint64_t)l1_size * 8, l1_off);
		for (uint32_t k = 0; r == 0 && k < l1_size; k++)
			l1[k] = be64toh(l1[k]);
		if (r == 0)
			r = count_l1(img, rf, l1, l1_size);
		free(l1);
	}
	if (s->h.nb_snapshots) /* the table itself, once */
		count(rf, s->h.snapshots_offset, off - s->h.snapshots_offset, s->cluster_bits);
	return r;
}

/* One bitmap's table and the data clusters it names.  Entry bits 9-55 are
 * a cluster offset (0: all zeroes or, with bit 0, all ones). */
static int count_bitmap_table(struct imgfmt_image *img, struct qcow2_refs *rf, uint64_t off,
			      uint32_t entries)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t bytes = (uint64_t)entries * 8;
	uint8_t *t;
	int r;

	if (bytes > QCOW2_MAX_L1_BYTES || off + bytes > s->next_host || off + bytes < off) {
		problem(rf, "ERROR bitmap table of %u entries at %llu lies outside the file", entries,
			(unsigned long long)off);
		return 0;
	}
	count(rf, off, bytes, s->cluster_bits);
	if (!(t = malloc(bytes + 8)))
		return -ENOMEM;
	r = imgfmt_fd_pread(img->fd, t, bytes, off);
	for (uint32_t k = 0; r == 0 && k < entries; k++) {
		uint64_t data = imgfmt_get_be64(t + 8 * k) & 0x00fffffffffffe00ull;
		if (data)
			count(rf, data, s->cluster_bytes, s->cluster_bits);
	}
	free(t);
	return r;
}

/* Persistent dirty bitmaps (when the autoclear bit says they are
 * consistent): the directory, each bitmap's table and its data.  Directory
 * entries: 24 fixed bytes, extra data, name, padded to 8. */
static int count_bitmaps(struct imgfmt_image *img, struct qcow2_refs *rf)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t pos = 0, len = s->bitmap_dir_bytes;
	uint8_t *dir;
	int r;

	if (!s->nb_bitmaps)
		return 0;
	if (len > QCOW2_MAX_L1_BYTES || s->bitmap_dir_offset + len > s->next_host || len < 24) {
		problem(rf, "ERROR bitmap directory of %llu bytes at %llu lies outside the file",
			(unsigned long long)len, (unsigned long long)s->bitmap_dir_offset);
		return 0;
	}
	count(rf, s->bitmap_dir_offset, len, s->cluster_bits);
	if (!(dir = malloc(len)))
		return -ENOMEM;
	r = imgfmt_fd_pread(img->fd, dir, len, s->bitmap_dir_offset);
	/* each entry advances pos by at least 24: the loop ends */
	for (uint32_t i = 0; r == 0 && i < s->nb_bitmaps && pos + 24 <= len; i++) {
		const uint8_t *e = dir + pos;
		uint64_t n = 24 + (uint64_t)imgfmt_get_be32(e + 20) + imgfmt_get_be16(e + 18);
		r = count_bitmap_table(img, rf, imgfmt_get_be64(e), imgfmt_get_be32(e + 8));
		pos += (n + 7) & ~7ull;
	}
	free(dir);
	return r;
}

static int count_tables(struct imgfmt_image *img, struct qcow2_refs *rf)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	count(rf, 0, s->cluster_bytes, s->cluster_bits);
	count(rf, s->h.refcount_table_offset, (uint64_t)s->h.refcount_table_clusters * s->cluster_bytes,
	      s->cluster_bits);
	count(rf, s->h.l1_table_offset, (uint64_t)s->l1_size * 8, s->cluster_bits);
	for (uint64_t i = 0; i < s->reftable_entries; i++)
		if (s->reftable[i])
			count(rf, s->reftable[i], s->cluster_bytes, s->cluster_bits);
	rf->active = true;
	r = count_l1(img, rf, s->l1, s->l1_size);
	rf->active = false;
	if (r == 0)
		r = count_snapshots(img, rf);
	if (r == 0)
		r = count_bitmaps(img, rf);
	return r;
}

/* Repair: the stored refcount of host cluster c becomes v (its refcount
 * block is created when missing). */
static int refcount_set(struct imgfmt_image *img, uint64_t c, uint64_t v)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t idx = c / s->refs_per_block;
	uint8_t *block;
	int r;

	if (v == 0 && (idx >= s->reftable_entries || !s->reftable[idx]))
		return 0;
	if ((r = refblock(img, idx, &block)) < 0)
		return r;
	if ((r = qcow2_cache_get(img, s->ref_cache, s->reftable[idx], true, &block)) < 0)
		return r;
	qcow2_put_refcount_raw(block, s->refcount_bits, c % s->refs_per_block, v);
	qcow2_cache_mark_dirty(s->ref_cache, s->reftable[idx]);
	return 0;
}

static void report(struct qcow2_refs *rf, const char *what, uint64_t c, uint64_t stored)
{
	char msg[120];

	if (!rf->res->report)
		return;
	snprintf(msg, sizeof(msg), "%s cluster %llu refcount=%llu reference=%u", what,
		 (unsigned long long)c, (unsigned long long)stored, rf->n[c]);
	rf->res->report(rf->res->report_opaque, msg);
}

/* Stored against counted refcounts, as qemu-img check words it: more
 * stored than used leaks, fewer is an error.  With repair, the stored
 * count becomes the counted one.  Also the image end offset: after the
 * last cluster either count says is used. */
static int compare_refcounts(struct imgfmt_image *img, struct qcow2_refs *rf)
{
	struct qcow2 *s = qcow2_state(img);
	struct imgfmt_check *res = rf->res;
	uint64_t max = s->refcount_bits == 64 ? UINT64_MAX : (1ull << s->refcount_bits) - 1;

	for (uint64_t c = 0; c < rf->clusters; c++) {
		uint64_t stored;
		bool fix;
		int r = qcow2_refcount_get(img, c, &stored);
		if (r < 0)
			return r;
		if (stored || rf->n[c])
			res->image_end_offset_bytes = (c + 1) << s->cluster_bits;
		if (stored == rf->n[c])
			continue;
		if (stored > rf->n[c])
			fix = res->repair & IMGFMT_REPAIR_LEAKS;
		else
			fix = (res->repair & IMGFMT_REPAIR_ERRORS) && rf->n[c] <= max;
		if (fix) {
			report(rf, "Repairing", c, stored);
			if ((r = refcount_set(img, c, rf->n[c])) < 0)
				return r;
			if (stored > rf->n[c])
				res->leaks_fixed++;
			else
				res->errors_fixed++;
		} else if (stored > rf->n[c]) {
			res->leaks++;
			report(rf, "Leaked", c, stored);
		} else {
			rf->errors++;
			report(rf, "ERROR", c, stored);
		}
	}
	return 0;
}

/* The COPIED flag of an active L1 or L2 entry says its cluster's refcount
 * is exactly 1 (writable in place); qemu-img check counts a mismatch as a
 * corruption and -r all fixes the flag.  A table that is not a valid
 * cluster of the file was reported while counting. */
static int copied_mismatch(struct imgfmt_image *img, struct qcow2_refs *rf, uint64_t *entry,
			   uint64_t cluster_off, bool l1, bool *fixed)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t ref;
	int r = qcow2_refcount_get(img, cluster_off >> s->cluster_bits, &ref);

	*fixed = false;
	if (r < 0 || (ref == 1) == !!(*entry & QCOW2_OFLAG_COPIED))
		return r;
	if (rf->res->report) {
		char msg[160];
		snprintf(msg, sizeof(msg), "%s OFLAG_COPIED %s: %s=%llx refcount=%llu",
			 (rf->res->repair & IMGFMT_REPAIR_ERRORS) ? "Repairing" : "ERROR",
			 l1 ? "L2 cluster" : "data cluster", l1 ? "l1_entry" : "l2_entry",
			 (unsigned long long)*entry, (unsigned long long)ref);
		rf->res->report(rf->res->report_opaque, msg);
	}
	if (!(rf->res->repair & IMGFMT_REPAIR_ERRORS)) {
		rf->errors++;
		return 0;
	}
	*entry = ref == 1 ? *entry | QCOW2_OFLAG_COPIED : *entry & ~QCOW2_OFLAG_COPIED;
	rf->res->errors_fixed++;
	*fixed = true;
	return 0;
}

static bool table_in_file(const struct qcow2 *s, uint64_t off)
{
	return off && !(off & (s->cluster_bytes - 1)) && off + s->cluster_bytes <= s->next_host;
}

static int check_copied(struct imgfmt_image *img, struct qcow2_refs *rf)
{
	struct qcow2 *s = qcow2_state(img);
	bool fixed;
	int r;

	for (uint32_t i = 0; i < s->l1_size; i++) {
		uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK;
		uint32_t lo, hi;
		uint8_t *l2;
		if (!table_in_file(s, l2_off))
			continue;
		if ((r = copied_mismatch(img, rf, &s->l1[i], l2_off, true, &fixed)) < 0)
			return r;
		s->l1_dirty |= fixed;
		/* the entries outside [lo, hi) are zero: nothing to check */
		if ((r = qcow2_cache_get_range(img, s->l2_cache, l2_off, &l2, &lo, &hi)) < 0)
			return r;
		for (uint32_t k = lo; k < hi && k < s->l2_entries; k++) {
			if ((r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
				return r;
			uint64_t e = imgfmt_get_be64(l2 + 8 * k), data = e & QCOW2_OFFSET_MASK;
			if ((e & QCOW2_OFLAG_COMPRESSED) || !data || (data & (s->cluster_bytes - 1)))
				continue;
			if ((r = copied_mismatch(img, rf, &e, data, false, &fixed)) < 0)
				return r;
			if (fixed) { /* the refcount lookup may have evicted the table */
				if ((r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
					return r;
				imgfmt_put_be64(l2 + 8 * k, e);
				qcow2_cache_mark_dirty(s->l2_cache, l2_off);
			}
		}
	}
	return 0;
}

/* After a repair that left nothing to fix: the header's dirty bit (stale
 * refcounts) goes, and with REPAIR_ERRORS its corrupt bit. */
static int repair_header(struct imgfmt_image *img, const struct imgfmt_check *res)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t old = s->h.incompatible_features;

	if (res->errors || res->leaks)
		return 0;
	s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
	if (res->repair & IMGFMT_REPAIR_ERRORS)
		s->h.incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
	if (s->h.incompatible_features != old)
		s->header_dirty = true;
	return qcow2_flush_meta(img);
}

int qcow2_check(struct imgfmt_image *img, struct imgfmt_check *res)
{
	struct qcow2 *s = qcow2_state(img);
	struct qcow2_refs rf = { .res = res };
	int r;

	if (img->writable && (r = qcow2_flush_meta(img)) < 0)
		return r;
	rf.clusters = imgfmt_div_round_up(s->file_bytes > s->next_host ? s->file_bytes : s->next_host,
					  s->cluster_bytes);
	if (rf.clusters > (1ull << 28))
		return imgfmt_err(img, -EFBIG, "%s: check supports files up to 2^28 clusters", img->path);
	rf.n = calloc(rf.clusters ? rf.clusters : 1, sizeof(*rf.n));
	if (!rf.n)
		return imgfmt_err(img, -ENOMEM, "out of memory for the check");
	r = count_tables(img, &rf);
	if (r == 0)
		r = compare_refcounts(img, &rf);
	if (r == 0)
		r = check_copied(img, &rf);
	free(rf.n);
	res->errors = rf.errors;
	res->total_clusters = imgfmt_div_round_up(img->size_bytes, s->cluster_bytes);
	if (r == 0 && res->repair)
		r = repair_header(img, res);
	return r < 0 ? imgfmt_err(img, r, "%s: check: %s", img->path, strerror(-r)) : 0;
}
