/* qcow2 internal snapshots (qcow2.txt, "Snapshots"): list, create, apply,
 * delete.
 *
 * A snapshot is an L1 table of its own; the clusters it shares with the
 * active image are counted once per table that reaches them, and the
 * active tables' COPIED flags say "refcount 1: write in place".  Every
 * change writes new structures and flushes their refcounts before the
 * header points at them, and frees old ones after; COPIED flags are cleared
 * before anything becomes shared and set again only after, so an
 * interruption leaves leaked clusters or flags a writer ignores (it copies
 * instead of writing in place), never a cluster written under a snapshot.
 * Where refcounts and flags must change together, the dirty bit covers the
 * change (see set_dirty). */
#include "qcow2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SNAP_FIXED_BYTES 40u
#define SNAP_EXTRA_WRITE_BYTES 24u        /* vm_state_size_large, disk_size, icount */
#define SNAP_MAX_EXTRA_BYTES 1024u        /* as QEMU accepts */
#define SNAP_MAX_COUNT 65536u
#define SNAP_MAX_TABLE_BYTES (64u << 20)

struct snap {
	uint64_t l1_offset;
	uint32_t l1_size;
	char *id, *name;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint32_t vm_state_size32;
	uint32_t extra_bytes;
	uint8_t *extra;                   /* kept as found: rewritten unchanged */
};

struct table {
	struct snap *v;
	uint32_t n;
	uint64_t bytes;                   /* on disk, entries padded to 8 */
};

static void table_free(struct table *t)
{
	for (uint32_t i = 0; t->v && i < t->n; i++) {
		free(t->v[i].id);
		free(t->v[i].name);
		free(t->v[i].extra);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static uint64_t entry_bytes(const struct snap *sn)
{
	return (SNAP_FIXED_BYTES + sn->extra_bytes + strlen(sn->id) + strlen(sn->name) + 7) & ~7ull;
}

static uint64_t disk_size_of(struct imgfmt_image *img, const struct snap *sn)
{
	return sn->extra_bytes >= 16 ? imgfmt_get_be64(sn->extra + 8) : img->size_bytes;
}

/* ---- reading the table (hostile bytes) ---- */

static char *read_string(struct imgfmt_image *img, uint64_t off, uint32_t len, int *r)
{
	char *s = malloc((size_t)len + 1);

	if (!s) {
		*r = imgfmt_err(img, -ENOMEM, "out of memory");
		return NULL;
	}
	*r = imgfmt_fd_pread(img->fd, s, len, off);
	s[len] = 0;
	if (*r == 0 && strlen(s) != len)
		*r = imgfmt_err(img, -EINVAL, "%s: a snapshot ID or name at %llu contains a NUL byte", img->path,
				(unsigned long long)off);
	return s;
}

/* Entry k at table offset pos; *len: its padded length.  Each field is
 * checked against QEMU 7.2's limits (qcow2.h, qcow2-snapshot.c) and the
 * file's end, and a bad one named with its value. */
static int read_entry(struct imgfmt_image *img, uint32_t k, uint64_t pos, struct snap *sn, uint64_t *len)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t base = s->h.snapshots_offset + pos, fixed_end, id_end, end;
	uint8_t e[SNAP_FIXED_BYTES];
	uint32_t id_len, name_len;
	char what[64];
	int r;

	if (base + SNAP_FIXED_BYTES > s->file_bytes)
		return imgfmt_err(img, -EINVAL, "%s: snapshot table entry %u at %llu is past the end of the file (%llu bytes; nb_snapshots %u)",
				  img->path, k, (unsigned long long)base, (unsigned long long)s->file_bytes,
				  s->h.nb_snapshots);
	r = imgfmt_fd_pread(img->fd, e, sizeof(e), base);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the snapshot table at %llu: %s", img->path,
				  (unsigned long long)base, strerror(-r));
	sn->l1_offset = imgfmt_get_be64(e);
	sn->l1_size = imgfmt_get_be32(e + 8);
	id_len = imgfmt_get_be16(e + 12);
	name_len = imgfmt_get_be16(e + 14);
	sn->date_sec = imgfmt_get_be32(e + 16);
	sn->date_nsec = imgfmt_get_be32(e + 20);
	sn->vm_clock_nsec = imgfmt_get_be64(e + 24);
	sn->vm_state_size32 = imgfmt_get_be32(e + 32);
	sn->extra_bytes = imgfmt_get_be32(e + 36);
	if (sn->extra_bytes > SNAP_MAX_EXTRA_BYTES)
		return imgfmt_err(img, -EINVAL, "%s: snapshot table entry %u: extra_data_size %u exceeds %u",
				  img->path, k, sn->extra_bytes, SNAP_MAX_EXTRA_BYTES);
	if (id_len == 0)
		return imgfmt_err(img, -EINVAL, "%s: snapshot table entry %u: id_str_size is 0", img->path, k);
	fixed_end = base + SNAP_FIXED_BYTES + sn->extra_bytes;
	id_end = fixed_end + id_len;
	end = id_end + name_len;
	if (fixed_end > s->file_bytes || id_end > s->file_bytes || end > s->file_bytes)
		return imgfmt_err(img, -EINVAL, "%s: snapshot table entry %u: %s %u makes it end at %llu, past the end of the file (%llu bytes)",
				  img->path, k,
				  fixed_end > s->file_bytes ? "extra_data_size" : id_end > s->file_bytes ? "id_str_size" : "name_size",
				  fixed_end > s->file_bytes ? sn->extra_bytes : id_end > s->file_bytes ? id_len : name_len,
				  (unsigned long long)end, (unsigned long long)s->file_bytes);
	*len = (end - base + 7) & ~7ull;
	if (pos + *len > SNAP_MAX_TABLE_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: snapshot table entry %u ends %llu bytes into the table, beyond %u",
				  img->path, k, (unsigned long long)(pos + *len), SNAP_MAX_TABLE_BYTES);
	if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: snapshot table entry %u: l1_size %u exceeds %u entries",
				  img->path, k, sn->l1_size, QCOW2_MAX_L1_BYTES / 8);
	snprintf(what, sizeof(what), "snapshot table entry %u: L1 table", k);
	if (sn->l1_size && (r = qcow2_check_table(img, what, sn->l1_offset, (uint64_t)sn->l1_size * 8)) < 0)
		return r;
	sn->extra = calloc(1, sn->extra_bytes + 1);
	if (!sn->extra)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = imgfmt_fd_pread(img->fd, sn->extra, sn->extra_bytes, base + SNAP_FIXED_BYTES);
	if (r == 0)
		sn->id = read_string(img, base + SNAP_FIXED_BYTES + sn->extra_bytes, id_len, &r);
	if (r == 0)
		sn->name = read_string(img, base + SNAP_FIXED_BYTES + sn->extra_bytes + id_len, name_len, &r);
	return r < 0 ? (img->err[0] ? r : imgfmt_err(img, r, "%s: reading a snapshot: %s", img->path, strerror(-r))) : 0;
}

static int load_table(struct imgfmt_image *img, struct table *t)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t pos = 0, len = 0;
	int r = 0;

	memset(t, 0, sizeof(*t));
	if (s->h.nb_snapshots > SNAP_MAX_COUNT)
		return imgfmt_err(img, -EFBIG, "%s: nb_snapshots %u exceeds %u", img->path, s->h.nb_snapshots,
				  SNAP_MAX_COUNT);
	t->v = calloc(s->h.nb_snapshots + 1, sizeof(*t->v));
	if (!t->v)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	/* each entry advances pos by 40 or more, within 64 MiB: the loop ends */
	for (t->n = 0; t->n < s->h.nb_snapshots && r == 0; pos += len) {
		r = read_entry(img, t->n, pos, &t->v[t->n], &len);
		t->n++;
	}
	t->bytes = pos;
	if (r < 0)
		table_free(t);
	return r;
}

int qcow2_snapshot_check_table(struct imgfmt_image *img)
{
	struct table t;
	int r = load_table(img, &t);

	if (r == 0)
		table_free(&t);
	return r;
}

static int find(const struct table *t, const char *id_or_name)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].id, id_or_name))
			return (int)i;
	for (uint32_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, id_or_name))
			return (int)i;
	return -1;
}

/* ---- writing ---- */

/* The table (without entry skip, or -1) in new clusters at *off. */
static int write_table(struct imgfmt_image *img, const struct table *t, int skip, uint64_t *off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t bytes = 0, pos = 0;
	uint8_t *buf;
	int r;

	*off = 0;
	for (uint32_t i = 0; i < t->n; i++)
		bytes += (int)i == skip ? 0 : entry_bytes(&t->v[i]);
	if (!bytes)
		return 0;
	buf = calloc(1, bytes);
	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < t->n; i++) {
		const struct snap *sn = &t->v[i];
		uint8_t *e = buf + pos;
		if ((int)i == skip)
			continue;
		imgfmt_put_be64(e, sn->l1_offset);
		imgfmt_put_be32(e + 8, sn->l1_size);
		imgfmt_put_be16(e + 12, (uint16_t)strlen(sn->id));
		imgfmt_put_be16(e + 14, (uint16_t)strlen(sn->name));
		imgfmt_put_be32(e + 16, sn->date_sec);
		imgfmt_put_be32(e + 20, sn->date_nsec);
		imgfmt_put_be64(e + 24, sn->vm_clock_nsec);
		imgfmt_put_be32(e + 32, sn->vm_state_size32);
		imgfmt_put_be32(e + 36, sn->extra_bytes);
		memcpy(e + SNAP_FIXED_BYTES, sn->extra, sn->extra_bytes);
		memcpy(e + SNAP_FIXED_BYTES + sn->extra_bytes, sn->id, strlen(sn->id));
		memcpy(e + SNAP_FIXED_BYTES + sn->extra_bytes + strlen(sn->id), sn->name, strlen(sn->name));
		pos += entry_bytes(sn);
	}
	r = qcow2_alloc_clusters(img, imgfmt_div_round_up(bytes, s->cluster_bytes), off);
	if (r == 0 && (r = imgfmt_fd_pwrite(img->fd, buf, bytes, *off)) < 0)
		r = imgfmt_err(img, r, "%s: writing the snapshot table: %s", img->path, strerror(-r));
	if (r == 0 && *off + bytes > s->file_bytes)
		s->file_bytes = *off + bytes; /* read_entry checks entries against it */
	free(buf);
	return r;
}

/* The header names the new table: the one write that makes a change. */
static int point_header(struct imgfmt_image *img, uint64_t off, uint32_t n)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	s->h.snapshots_offset = off;
	s->h.nb_snapshots = n;
	r = qcow2_write_header(img);
	return r < 0 ? r : qcow2_sync(img);
}

static uint64_t clusters_bytes(const struct qcow2 *s, uint64_t bytes)
{
	return imgfmt_div_round_up(bytes, s->cluster_bytes) * s->cluster_bytes;
}

/* Free [off, off + bytes) rounded out to clusters (nothing for bytes 0). */
static int free_area(struct imgfmt_image *img, uint64_t off, uint64_t bytes)
{
	return bytes ? qcow2_refcount_add(img, off, clusters_bytes(qcow2_state(img), bytes), -1) : 0;
}

/* An L1 table (host order) of n entries from the file. */
static int read_l1(struct imgfmt_image *img, uint64_t off, uint32_t n, uint64_t **l1)
{
	int r;

	*l1 = calloc(n ? n : 1, 8);
	if (!*l1)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = imgfmt_fd_pread(img->fd, *l1, (uint64_t)n * 8, off);
	for (uint32_t i = 0; r == 0 && i < n; i++)
		(*l1)[i] = be64toh((*l1)[i]);
	if (r < 0) {
		free(*l1);
		*l1 = NULL;
		return imgfmt_err(img, r, "%s: reading an L1 table at %llu: %s", img->path,
				  (unsigned long long)off, strerror(-r));
	}
	return 0;
}

/* An L1 table (entries without COPIED) in new clusters at *off. */
static int write_l1_copy(struct imgfmt_image *img, const uint64_t *l1, uint32_t n, uint64_t *off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t clusters = imgfmt_div_round_up((uint64_t)n * 8, s->cluster_bytes);
	uint64_t *t = calloc(n ? n : 1, 8);
	int r;

	*off = 0;
	if (!t)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		t[i] = l1[i] & ~QCOW2_OFLAG_COPIED;
	r = clusters ? qcow2_alloc_clusters(img, clusters, off) : 0;
	if (r == 0 && clusters)
		r = qcow2_write_table_be64(img, t, n, clusters * s->cluster_bytes / 8, *off);
	free(t);
	return r;
}

/* delta on every cluster an L1 table reaches: its L2 tables and what their
 * entries reference (counted once per table that reaches them). */
static int tree_refcount(struct imgfmt_image *img, const uint64_t *l1, uint32_t n, int delta)
{
	struct qcow2 *s = qcow2_state(img);
	uint8_t *l2 = malloc(s->cluster_bytes);
	int r = l2 ? 0 : imgfmt_err(img, -ENOMEM, "out of memory");

	for (uint32_t i = 0; r == 0 && i < n; i++) {
		uint64_t off = l1[i] & QCOW2_OFFSET_MASK;
		if (!off)
			continue;
		if ((r = qcow2_check_table(img, "L2 table", off, s->cluster_bytes)) < 0)
			break;
		if ((r = imgfmt_fd_pread(img->fd, l2, s->cluster_bytes, off)) < 0) {
			r = imgfmt_err(img, r, "%s: reading an L2 table at %llu: %s", img->path,
				       (unsigned long long)off, strerror(-r));
			break;
		}
		r = qcow2_refcount_add(img, off, s->cluster_bytes, delta);
		for (uint32_t k = 0; r == 0 && k < s->l2_entries; k++)
			r = qcow2_entry_refcount(img, imgfmt_get_be64(l2 + 8 * k), delta);
	}
	free(l2);
	return r;
}

/* COPIED flags of the active tables: cleared (nothing is written in place
 * any more), or set again where the refcount is 1. */
static int active_flags(struct imgfmt_image *img, bool recompute)
{
	struct qcow2 *s = qcow2_state(img);
	int r = 0;

	for (uint32_t i = 0; r == 0 && i < s->l1_size; i++) {
		uint64_t off = s->l1[i] & QCOW2_OFFSET_MASK, ref = 0, e, want;
		uint8_t *l2;
		if (!off)
			continue;
		if (recompute && (r = qcow2_refcount_get(img, off >> s->cluster_bits, &ref)) < 0)
			break;
		want = ref == 1 ? (s->l1[i] | QCOW2_OFLAG_COPIED) : (s->l1[i] & ~QCOW2_OFLAG_COPIED);
		s->l1_dirty = s->l1_dirty || want != s->l1[i];
		s->l1[i] = want;
		if (recompute && ref != 1)
			continue; /* a shared table: its entries stay without COPIED */
		for (uint32_t k = 0; r == 0 && k < s->l2_entries; k++) {
			uint64_t cref = 0;
			if ((r = qcow2_cache_get(img, s->l2_cache, off, true, &l2)) < 0)
				break;
			e = imgfmt_get_be64(l2 + 8 * k);
			if ((e & QCOW2_OFLAG_COMPRESSED) || !(e & QCOW2_OFFSET_MASK))
				continue;
			if (recompute && (r = qcow2_refcount_get(img, (e & QCOW2_OFFSET_MASK) >> s->cluster_bits, &cref)) < 0)
				break;
			want = cref == 1 ? (e | QCOW2_OFLAG_COPIED) : (e & ~QCOW2_OFLAG_COPIED);
			if (want == e || (r = qcow2_cache_get(img, s->l2_cache, off, true, &l2)) < 0)
				continue;
			imgfmt_put_be64(l2 + 8 * k, want);
			qcow2_cache_mark_dirty(s->l2_cache, off);
		}
	}
	return r < 0 ? r : qcow2_flush_and_sync(img);
}

/* While refcounts and COPIED flags change together, the header's dirty bit
 * (v3) says "refcounts may be stale": an interruption then leaves an image
 * QEMU repairs when it next opens it for writing (qemu-img check -r all
 * does the same).  Version 2 has no such bit. */
static int set_dirty(struct imgfmt_image *img, bool dirty)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (s->h.version < 3)
		return 0;
	if (dirty)
		s->h.incompatible_features |= QCOW2_INCOMPAT_DIRTY;
	else
		s->h.incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
	r = qcow2_write_header(img);
	return r < 0 ? r : qcow2_sync(img);
}

/* ---- the operations ---- */

int qcow2_snapshot_list(struct imgfmt_image *img, struct imgfmt_snapshot **list, unsigned *n)
{
	struct table t;
	int r = load_table(img, &t);

	if (r < 0)
		return r;
	*list = calloc(t.n ? t.n : 1, sizeof(**list));
	if (!*list) {
		table_free(&t);
		return imgfmt_err(img, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < t.n; i++) {
		const struct snap *sn = &t.v[i];
		struct imgfmt_snapshot *o = &(*list)[i];
		snprintf(o->id, sizeof(o->id), "%s", sn->id);
		snprintf(o->name, sizeof(o->name), "%s", sn->name);
		o->vm_state_bytes = sn->extra_bytes >= 8 ? imgfmt_get_be64(sn->extra) : sn->vm_state_size32;
		o->disk_bytes = disk_size_of(img, sn);
		o->date_sec = sn->date_sec;
		o->date_nsec = sn->date_nsec;
		o->vm_clock_nsec = sn->vm_clock_nsec;
		o->icount = sn->extra_bytes >= 24 ? imgfmt_get_be64(sn->extra + 16) : UINT64_MAX;
	}
	*n = t.n;
	table_free(&t);
	return 0;
}

/* The entry of a new snapshot of the active image. */
static int new_entry(struct imgfmt_image *img, struct table *t, const char *name, uint64_t l1_off)
{
	struct qcow2 *s = qcow2_state(img);
	struct snap *sn = &t->v[t->n];
	unsigned long max_id = 0;
	struct timespec now;
	char id[24];

	for (uint32_t i = 0; i < t->n; i++) {
		char *end;
		unsigned long v = strtoul(t->v[i].id, &end, 10);
		if (!*end && v > max_id)
			max_id = v;
	}
	snprintf(id, sizeof(id), "%lu", max_id + 1);
	clock_gettime(CLOCK_REALTIME, &now);
	*sn = (struct snap){ .l1_offset = l1_off, .l1_size = s->l1_size, .date_sec = (uint32_t)now.tv_sec,
			     .date_nsec = (uint32_t)now.tv_nsec, .extra_bytes = SNAP_EXTRA_WRITE_BYTES };
	sn->id = strdup(id);
	sn->name = strdup(name);
	sn->extra = calloc(1, SNAP_EXTRA_WRITE_BYTES);
	t->n++;
	if (!sn->id || !sn->name || !sn->extra)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	imgfmt_put_be64(sn->extra + 8, img->size_bytes); /* disk size; VM state and icount 0 */
	return 0;
}

int qcow2_snapshot_create(struct imgfmt_image *img, const char *name)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t l1_off, tab_off, old_off = s->h.snapshots_offset;
	struct table t;
	int r;

	if (strlen(name) > 65535)
		return imgfmt_err(img, -EINVAL, "%s: a snapshot name is at most 65535 bytes", img->path);
	if ((r = load_table(img, &t)) < 0)
		return r;
	if (find(&t, name) >= 0)
		r = imgfmt_err(img, -EEXIST, "%s: a snapshot with ID or name '%s' exists", img->path, name);
	else if (t.n >= SNAP_MAX_COUNT)
		r = imgfmt_err(img, -EFBIG, "%s: already %u snapshots", img->path, t.n);
	/* nothing shared is written in place from here on */
	if (r == 0 && (r = qcow2_flush_and_sync(img)) == 0 && (r = set_dirty(img, true)) == 0)
		r = active_flags(img, false);
	if (r == 0)
		r = tree_refcount(img, s->l1, s->l1_size, +1);
	if (r == 0)
		r = write_l1_copy(img, s->l1, s->l1_size, &l1_off);
	if (r == 0)
		r = new_entry(img, &t, name, l1_off);
	if (r == 0)
		r = write_table(img, &t, -1, &tab_off);
	if (r == 0 && (r = qcow2_flush_and_sync(img)) == 0)
		r = point_header(img, tab_off, t.n);
	if (r == 0)
		r = free_area(img, old_off, t.bytes);
	table_free(&t);
	if (r == 0)
		r = qcow2_flush_and_sync(img);
	return r < 0 ? r : set_dirty(img, false);
}

/* The active tables become a copy of the snapshot's: its tree gains a
 * reference and a new L1 table, the header switches to it (and to the
 * snapshot's size), then the old tree loses one. */
int qcow2_snapshot_apply(struct imgfmt_image *img, const char *id_or_name)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t *l1 = NULL, new_off = 0, old_off = s->h.l1_table_offset, size;
	uint32_t old_n = s->l1_size;
	struct table t;
	struct snap *sn;
	int k, r;

	if ((r = load_table(img, &t)) < 0)
		return r;
	k = find(&t, id_or_name);
	if (k < 0) {
		table_free(&t);
		return imgfmt_err(img, -ENOENT, "%s: no snapshot with ID or name '%s'", img->path, id_or_name);
	}
	sn = &t.v[k];
	size = disk_size_of(img, sn);
	if (imgfmt_div_round_up(size, (uint64_t)s->cluster_bytes * s->l2_entries) > sn->l1_size || size > (1ull << 56))
		r = imgfmt_err(img, -EINVAL, "%s: snapshot %s: L1 table of %u entries is too small for %llu bytes",
			       img->path, sn->id, sn->l1_size, (unsigned long long)size);
	if (r == 0)
		r = qcow2_flush_and_sync(img);
	if (r == 0)
		r = read_l1(img, sn->l1_offset, sn->l1_size, &l1);
	if (r == 0)
		r = tree_refcount(img, l1, sn->l1_size, +1);
	if (r == 0)
		r = write_l1_copy(img, l1, sn->l1_size, &new_off);
	if (r == 0 && (r = qcow2_flush_and_sync(img)) == 0) {
		s->h.l1_table_offset = new_off;
		s->h.l1_size = sn->l1_size;
		s->h.size = size;
		if ((r = qcow2_write_header(img)) == 0)
			r = qcow2_sync(img);
	}
	table_free(&t);
	if (r < 0) {
		free(l1);
		return r;
	}
	/* the old active tree and table are no longer referenced */
	r = tree_refcount(img, s->l1, old_n, -1);
	if (r == 0)
		r = free_area(img, old_off, (uint64_t)old_n * 8);
	for (uint32_t i = 0; i < s->h.l1_size; i++)
		l1[i] &= ~QCOW2_OFLAG_COPIED;
	free(s->l1);
	s->l1 = l1;
	s->l1_size = s->h.l1_size;
	img->size_bytes = size;
	if (r == 0)
		r = qcow2_flush_and_sync(img);
	return r < 0 ? r : active_flags(img, true);
}

/* The table without the entry first (the snapshot is gone from then on),
 * then its tree and L1 table lose their reference. */
int qcow2_snapshot_delete(struct imgfmt_image *img, const char *id_or_name)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t *l1 = NULL, tab_off, old_off = s->h.snapshots_offset;
	struct table t;
	int k, r;

	if ((r = load_table(img, &t)) < 0)
		return r;
	k = find(&t, id_or_name);
	if (k < 0) {
		table_free(&t);
		return imgfmt_err(img, -ENOENT, "%s: no snapshot with ID or name '%s'", img->path, id_or_name);
	}
	r = qcow2_flush_and_sync(img);
	if (r == 0)
		r = read_l1(img, t.v[k].l1_offset, t.v[k].l1_size, &l1);
	if (r == 0)
		r = write_table(img, &t, k, &tab_off);
	if (r == 0 && (r = qcow2_flush_and_sync(img)) == 0)
		r = point_header(img, tab_off, t.n - 1);
	/* refcounts drop to 1 before the COPIED flags come back */
	if (r == 0)
		r = set_dirty(img, true);
	if (r == 0)
		r = tree_refcount(img, l1, t.v[k].l1_size, -1);
	if (r == 0)
		r = free_area(img, t.v[k].l1_offset, (uint64_t)t.v[k].l1_size * 8);
	if (r == 0)
		r = free_area(img, old_off, t.bytes);
	free(l1);
	table_free(&t);
	if (r == 0)
		r = qcow2_flush_and_sync(img);
	if (r == 0)
		r = active_flags(img, true);
	return r < 0 ? r : set_dirty(img, false);
}

/* Zero clusters (v3) in the L2 tables of the snapshots' L1 tables, counted
 * into *n (a downgrade cannot keep them). */
int qcow2_snapshot_zero_clusters(struct imgfmt_image *img, uint64_t *n)
{
	struct qcow2 *s = qcow2_state(img);
	struct table t;
	int r = load_table(img, &t);

	*n = 0;
	for (uint32_t i = 0; r == 0 && i < t.n; i++) {
		uint64_t *l1;
		if ((r = read_l1(img, t.v[i].l1_offset, t.v[i].l1_size, &l1)) < 0)
			break;
		for (uint32_t j = 0; r == 0 && j < t.v[i].l1_size; j++) {
			uint64_t l2_off = l1[j] & QCOW2_OFFSET_MASK;
			uint8_t *l2;
			if (!l2_off)
				continue;
			if ((r = qcow2_check_table(img, "L2 table", l2_off, s->cluster_bytes)) < 0 ||
			    (r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
				break;
			for (uint32_t k = 0; k < s->l2_entries; k++) {
				uint64_t e = imgfmt_get_be64(l2 + 8 * k);
				*n += (e & QCOW2_OFLAG_ZERO) && !(e & QCOW2_OFLAG_COMPRESSED);
			}
		}
		free(l1);
	}
	table_free(&t);
	return r;
}
