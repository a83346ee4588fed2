/* qcow2: QEMU copy-on-write images, versions 2 and 3.
 *
 * Read: zero clusters, compressed clusters (zlib = raw deflate, zstd),
 * backing chains, cluster sizes 512 B-2 MiB, refcount widths 1-64 bits.
 * Write (v3 created by us, or existing images opened read-write): data
 * clusters appended at the end of the file, L1/L2/refcounts kept in memory
 * and written at flush.  Encryption, external data files, extended L2
 * entries and dirty/corrupt images are refused. */
#include "qcow2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static_assert(sizeof(((struct qcow2_header *)0)->compression_type) == 1, "one byte");

/* ---- header: the one endianness boundary ---- */

static void header_from_disk(struct qcow2_header *h, const uint8_t *b, size_t len)
{
	memset(h, 0, sizeof(*h));
	h->magic = imgfmt_get_be32(b);
	h->version = imgfmt_get_be32(b + 4);
	h->backing_file_offset = imgfmt_get_be64(b + 8);
	h->backing_file_size = imgfmt_get_be32(b + 16);
	h->cluster_bits = imgfmt_get_be32(b + 20);
	h->size = imgfmt_get_be64(b + 24);
	h->crypt_method = imgfmt_get_be32(b + 32);
	h->l1_size = imgfmt_get_be32(b + 36);
	h->l1_table_offset = imgfmt_get_be64(b + 40);
	h->refcount_table_offset = imgfmt_get_be64(b + 48);
	h->refcount_table_clusters = imgfmt_get_be32(b + 56);
	h->nb_snapshots = imgfmt_get_be32(b + 60);
	h->snapshots_offset = imgfmt_get_be64(b + 64);
	h->refcount_order = 4;
	h->header_length = QCOW2_HEADER_V2_BYTES;
	if (h->version < 3 || len < QCOW2_HEADER_V3_BYTES)
		return;
	h->incompatible_features = imgfmt_get_be64(b + 72);
	h->compatible_features = imgfmt_get_be64(b + 80);
	h->autoclear_features = imgfmt_get_be64(b + 88);
	h->refcount_order = imgfmt_get_be32(b + 96);
	h->header_length = imgfmt_get_be32(b + 100);
	if (h->header_length > 104 && len > 104)
		h->compression_type = b[104];
}

static size_t header_to_disk(const struct qcow2_header *h, uint8_t *b)
{
	imgfmt_put_be32(b, h->magic);
	imgfmt_put_be32(b + 4, h->version);
	imgfmt_put_be64(b + 8, h->backing_file_offset);
	imgfmt_put_be32(b + 16, h->backing_file_size);
	imgfmt_put_be32(b + 20, h->cluster_bits);
	imgfmt_put_be64(b + 24, h->size);
	imgfmt_put_be32(b + 32, h->crypt_method);
	imgfmt_put_be32(b + 36, h->l1_size);
	imgfmt_put_be64(b + 40, h->l1_table_offset);
	imgfmt_put_be64(b + 48, h->refcount_table_offset);
	imgfmt_put_be32(b + 56, h->refcount_table_clusters);
	imgfmt_put_be32(b + 60, h->nb_snapshots);
	imgfmt_put_be64(b + 64, h->snapshots_offset);
	if (h->version < 3)
		return QCOW2_HEADER_V2_BYTES;
	imgfmt_put_be64(b + 72, h->incompatible_features);
	imgfmt_put_be64(b + 80, h->compatible_features);
	imgfmt_put_be64(b + 88, h->autoclear_features);
	imgfmt_put_be32(b + 96, h->refcount_order);
	imgfmt_put_be32(b + 100, h->header_length);
	if (h->header_length < QCOW2_HEADER_WRITE_BYTES)
		return QCOW2_HEADER_V3_BYTES;
	memset(b + 104, 0, 8);
	b[104] = h->compression_type;
	return QCOW2_HEADER_WRITE_BYTES;
}

int qcow2_write_header(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	uint8_t b[QCOW2_HEADER_WRITE_BYTES];
	size_t n = header_to_disk(&s->h, b);
	int r = imgfmt_fd_pwrite(img->fd, b, n, 0);

	return r < 0 ? imgfmt_err(img, r, "%s: writing the header: %s", img->path, strerror(-r)) : 0;
}

/* Copy the extensions of the cluster-0 image c0 except the backing format
 * and the end marker to out[*n...]. */
static int keep_extensions(struct imgfmt_image *img, const uint8_t *c0, uint8_t *out, size_t *n)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off = s->h.header_length, end = s->cluster_bytes;

	if (s->h.backing_file_offset && s->h.backing_file_offset < end)
		end = s->h.backing_file_offset;
	/* open validated the chain; each extension advances off by 8 or more */
	while (off + 8 <= end) {
		uint32_t type = imgfmt_get_be32(c0 + off), len = imgfmt_get_be32(c0 + off + 4);
		uint64_t step = 8 + (((uint64_t)len + 7) & ~7ull);
		if (type == QCOW2_EXT_END || len > end - off - 8)
			break;
		if (type != QCOW2_EXT_BACKING_FORMAT) {
			if (*n + step > s->cluster_bytes)
				return imgfmt_err(img, -ENOSPC, "%s: header extensions do not fit in a cluster",
						  img->path);
			memcpy(out + *n, c0 + off, step);
			*n += step;
		}
		off += step;
	}
	return 0;
}

static void put_extension(uint8_t *out, size_t *n, uint32_t type, const void *data, uint32_t len)
{
	imgfmt_put_be32(out + *n, type);
	imgfmt_put_be32(out + *n + 4, len);
	memcpy(out + *n + 8, data, len);
	memset(out + *n + 8 + len, 0, ((len + 7) & ~7u) - len);
	*n += 8 + ((len + 7) & ~7u);
}

/* Start a new header cluster in out, for header h, from the one on disk
 * (read into c0): the extensions other than the backing format kept, then
 * the backing format fmt (if any) and the end marker; *n is where the name
 * may go.  Fails if a name of name_len bytes would not fit in the cluster. */
static int build_header_area(struct imgfmt_image *img, const struct qcow2_header *h, uint8_t *c0,
			     uint8_t *out, size_t *n, const char *fmt, size_t name_len)
{
	struct qcow2 *s = qcow2_state(img);
	size_t fmt_len = strlen(fmt);
	int r;

	*n = h->version < 3 ? QCOW2_HEADER_V2_BYTES : h->header_length;
	r = imgfmt_fd_pread_zfill(img->fd, c0, s->cluster_bytes, 0);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the header: %s", img->path, strerror(-r));
	if ((r = keep_extensions(img, c0, out, n)) < 0)
		return r;
	if (*n + 16 + ((fmt_len + 7) & ~7u) + name_len > s->cluster_bytes)
		return imgfmt_err(img, -ENAMETOOLONG, "%s: backing file name of %zu bytes does not fit in the header cluster",
				  img->path, name_len);
	if (fmt_len)
		put_extension(out, n, QCOW2_EXT_BACKING_FORMAT, fmt, (uint32_t)fmt_len);
	memset(out + *n, 0, 8); /* end of extensions */
	*n += 8;
	return 0;
}

int qcow2_write_header_area(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	size_t name_len = strlen(s->backing_name), n;
	uint8_t *c0 = calloc(2, s->cluster_bytes), *out;
	int r;

	if (!c0)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	out = c0 + s->cluster_bytes;
	r = build_header_area(img, &s->h, c0, out, &n, s->backing_format, name_len);
	if (r == 0) {
		memcpy(out + n, s->backing_name, name_len);
		s->h.backing_file_offset = name_len ? n : 0;
		s->h.backing_file_size = (uint32_t)name_len;
		header_to_disk(&s->h, out);
		r = imgfmt_fd_pwrite(img->fd, out, s->cluster_bytes, 0);
		if (r < 0)
			r = imgfmt_err(img, r, "%s: writing the header: %s", img->path, strerror(-r));
	}
	free(c0);
	return r;
}

/* End of what the header cluster c0 uses: the header, its extensions (up
 * to the end marker) and the backing file name. */
static uint64_t header_area_end(const struct qcow2 *s, const uint8_t *c0)
{
	uint64_t off = s->h.version < 3 ? QCOW2_HEADER_V2_BYTES : s->h.header_length;
	uint64_t end = s->cluster_bytes, used;

	if (s->h.backing_file_offset && s->h.backing_file_offset < end)
		end = s->h.backing_file_offset;
	while (off + 8 <= end) {
		uint32_t type = imgfmt_get_be32(c0 + off), len = imgfmt_get_be32(c0 + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END || len > end - off)
			break;
		off += ((uint64_t)len + 7) & ~7ull;
	}
	used = off < s->cluster_bytes ? off : s->cluster_bytes;
	if (s->h.backing_file_offset && s->h.backing_file_offset + s->h.backing_file_size > used)
		used = s->h.backing_file_offset + s->h.backing_file_size;
	return used;
}

/* Rebase: record another backing file name (or none) and format, crash-safe
 * as far as the format allows.  The name must lie in the header cluster, so
 * the new one is first written where nothing points (past all the cluster
 * uses now) and made durable; then one write of the header and its
 * extensions (one sector unless the extensions are long) switches to it;
 * then a barrier.  An interruption leaves the old name or the new one. */
int qcow2_set_backing(struct imgfmt_image *img, const char *name, const char *fmt)
{
	return qcow2_switch_header(img, &qcow2_state(img)->h, name, fmt);
}

/* The header becomes nh (its version may differ: the extensions move to
 * its end), naming name and fmt, by the steps qcow2_set_backing describes. */
int qcow2_switch_header(struct imgfmt_image *img, const struct qcow2_header *nh, const char *name,
			const char *fmt)
{
	struct qcow2 *s = qcow2_state(img);
	size_t fmt_len = strlen(fmt), name_len = strlen(name), n;
	uint8_t *c0, *out;
	uint64_t pos, used;
	struct qcow2_header h = *nh;
	bool apart;
	int r;

	if (name_len >= sizeof(s->backing_name) || fmt_len >= sizeof(s->backing_format))
		return imgfmt_err(img, -ENAMETOOLONG, "%s: backing file name or format is too long (at most %zu bytes)",
				  img->path, sizeof(s->backing_name) - 1);
	if ((r = qcow2_flush_and_sync(img)) < 0)
		return r;
	c0 = calloc(2, s->cluster_bytes);
	if (!c0)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	out = c0 + s->cluster_bytes;
	if ((r = build_header_area(img, nh, c0, out, &n, fmt, name_len)) < 0)
		goto out;
	/* the new name where neither the old header area nor the new one lies */
	used = header_area_end(s, c0);
	pos = used > n ? used : n;
	apart = pos + name_len <= s->cluster_bytes;
	if (!apart)
		pos = n; /* no room apart: the switch is one write of the cluster's head */
	h.backing_file_offset = name_len ? pos : 0;
	h.backing_file_size = (uint32_t)name_len;
	header_to_disk(&h, out);
	memcpy(out + pos, name, name_len);
	if (name_len && apart) { /* durable before the header points at it */
		r = imgfmt_fd_pwrite(img->fd, out + pos, name_len, pos);
		if (r == 0)
			r = qcow2_sync(img);
		if (r < 0)
			goto werr;
	}
	r = imgfmt_fd_pwrite(img->fd, out, apart ? n : n + name_len, 0);
	if (r < 0)
		goto werr;
	if ((r = qcow2_sync(img)) < 0)
		goto out;
	s->h = h;
	snprintf(s->backing_name, sizeof(s->backing_name), "%s", name);
	snprintf(s->backing_format, sizeof(s->backing_format), "%s", fmt);
	goto out;
werr:
	r = imgfmt_err(img, r, "%s: writing the header: %s", img->path, strerror(-r));
out:
	free(c0);
	return r;
}

static int qcow2_probe(const struct imgfmt_probe_buf *pb)
{
	/* version 1 is qcow, which p2v does not read (probe.c names it) */
	return pb->head_bytes >= 8 && imgfmt_get_be32(pb->head) == QCOW2_MAGIC &&
	       imgfmt_get_be32(pb->head + 4) != 1 ? 100 : 0;
}

/* ---- validating an opened header ---- */

static int check_features(struct imgfmt_image *img, const struct qcow2_header *h)
{
	uint64_t known = QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT;

	if (h->version != 2 && h->version != 3)
		return imgfmt_err(img, -ENOTSUP, "%s: qcow2 version %u is not supported (2 or 3)",
				  img->path, h->version);
	if (h->crypt_method)
		return imgfmt_err(img, -ENOTSUP, "%s: encrypted qcow2 (crypt_method %u) is not supported",
				  img->path, h->crypt_method);
	/* Stale refcounts (dirty) or a corrupt mark do not stop reading, as in
	 * QEMU; writing waits for a repair (check -r), which may open them. */
	if ((h->incompatible_features & QCOW2_INCOMPAT_DIRTY) && img->writable &&
	    !(img->flags & IMGFMT_OPEN_REPAIR))
		return imgfmt_err(img, -ENOTSUP, "%s: the dirty bit is set (refcounts may be stale); run 'p2v check -r all' first",
				  img->path);
	if ((h->incompatible_features & QCOW2_INCOMPAT_CORRUPT) && img->writable &&
	    !(img->flags & IMGFMT_OPEN_REPAIR))
		return imgfmt_err(img, -EIO, "%s: the image is marked corrupt (corrupt bit set); 'p2v check -r all' may repair it",
				  img->path);
	if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
		return imgfmt_err(img, -ENOTSUP, "%s: images with an external data file are not supported", img->path);
	if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2)
		return imgfmt_err(img, -ENOTSUP, "%s: extended L2 entries (subclusters) are not supported", img->path);
	if (h->incompatible_features & ~known)
		return imgfmt_err(img, -ENOTSUP, "%s: unknown incompatible feature bit %d (features 0x%llx)",
				  img->path, __builtin_ctzll(h->incompatible_features & ~known),
				  (unsigned long long)h->incompatible_features);
	if (h->compression_type > QCOW2_COMP_ZSTD)
		return imgfmt_err(img, -ENOTSUP, "%s: unknown compression type %u", img->path,
				  h->compression_type);
	if (!h->compression_type != !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION))
		return imgfmt_err(img, -EINVAL, "%s: compression_type %u disagrees with the compression feature bit",
				  img->path, h->compression_type);
	return 0;
}

/* A table of len bytes at off must be cluster-aligned, past the header and
 * inside the file. */
int qcow2_check_table(struct imgfmt_image *img, const char *what, uint64_t off, uint64_t len)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t end;

	if (off & (s->cluster_bytes - 1))
		return imgfmt_err(img, -EINVAL, "%s: %s offset %llu is not cluster-aligned", img->path,
				  what, (unsigned long long)off);
	if (off < s->cluster_bytes)
		return imgfmt_err(img, -EINVAL, "%s: %s at offset %llu overlaps the header", img->path,
				  what, (unsigned long long)off);
	/* next_host: the file's end rounded up to a cluster, or what we allocated */
	if (__builtin_add_overflow(off, len, &end) || end > s->next_host)
		return imgfmt_err(img, -EINVAL, "%s: %s of %llu bytes at %llu exceeds the file of %llu bytes",
				  img->path, what, (unsigned long long)len, (unsigned long long)off,
				  (unsigned long long)s->file_bytes);
	return 0;
}

static int check_geometry(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	struct qcow2_header *h = &s->h;
	uint64_t l2_span, need;

	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return imgfmt_err(img, -EINVAL, "%s: cluster_bits %u out of range (9-21)", img->path,
				  h->cluster_bits);
	if (h->refcount_order > 6)
		return imgfmt_err(img, -EINVAL, "%s: refcount_order %u out of range (0-6)", img->path,
				  h->refcount_order);
	if (h->version >= 3 && (h->header_length < QCOW2_HEADER_V3_BYTES || h->header_length % 8 ||
				h->header_length > (1u << h->cluster_bits)))
		return imgfmt_err(img, -EINVAL, "%s: header_length %u is invalid", img->path,
				  h->header_length);
	s->cluster_bits = h->cluster_bits;
	s->cluster_bytes = 1u << h->cluster_bits;
	s->l2_entries = s->cluster_bytes / 8;
	s->refcount_bits = 1u << h->refcount_order;
	s->refs_per_block = (uint64_t)s->cluster_bytes * 8 / s->refcount_bits;
	s->csize_shift = 62 - (s->cluster_bits - 8);
	s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
	l2_span = (uint64_t)s->cluster_bytes * s->l2_entries;
	need = imgfmt_div_round_up(h->size, l2_span);
	if (h->size > (1ull << 56) || need > h->l1_size)
		return imgfmt_err(img, -EINVAL, "%s: L1 table of %u entries is too small for %llu bytes",
				  img->path, h->l1_size, (unsigned long long)h->size);
	if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return imgfmt_err(img, -EINVAL, "%s: L1 table of %u entries exceeds the %u-byte limit",
				  img->path, h->l1_size, QCOW2_MAX_L1_BYTES);
	return 0;
}

/* ---- header extensions and backing name ---- */

static int read_extensions(struct imgfmt_image *img, const uint8_t *c0)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off = s->h.header_length, end = s->cluster_bytes;

	if (s->h.backing_file_offset && s->h.backing_file_offset < end)
		end = s->h.backing_file_offset;
	/* each extension advances off by at least 8: the loop ends */
	while (off + 8 <= end) {
		uint32_t type = imgfmt_get_be32(c0 + off), len = imgfmt_get_be32(c0 + off + 4);
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off - 8)
			return imgfmt_err(img, -EINVAL, "%s: header extension 0x%08x of %u bytes runs past the header cluster",
					  img->path, type, len);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (len >= sizeof(s->backing_format))
				return imgfmt_err(img, -EINVAL, "%s: backing format name of %u bytes is too long",
						  img->path, len);
			memcpy(s->backing_format, c0 + off + 8, len);
			s->backing_format[len] = 0;
		} else if (type == QCOW2_EXT_BITMAPS && len >= 24 &&
			   (s->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
			s->nb_bitmaps = imgfmt_get_be32(c0 + off + 8);
			s->bitmap_dir_bytes = imgfmt_get_be64(c0 + off + 16);
			s->bitmap_dir_offset = imgfmt_get_be64(c0 + off + 24);
		} else if (type == QCOW2_EXT_DATA_FILE || type == QCOW2_EXT_CRYPTO) {
			return imgfmt_err(img, -ENOTSUP, "%s: header extension 0x%08x (%s) is not supported",
					  img->path, type, type == QCOW2_EXT_CRYPTO ? "encryption" : "external data file");
		}
		off += 8 + (((uint64_t)len + 7) & ~7ull);
	}
	return 0;
}

static int read_backing_name(struct imgfmt_image *img, const uint8_t *c0)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off = s->h.backing_file_offset, len = s->h.backing_file_size;

	if (!off)
		return 0;
	if (len == 0 || len >= sizeof(s->backing_name) || off >= s->cluster_bytes ||
	    len > s->cluster_bytes - off)
		return imgfmt_err(img, -EINVAL, "%s: backing file name of %llu bytes at %llu is outside the header cluster",
				  img->path, (unsigned long long)len, (unsigned long long)off);
	memcpy(s->backing_name, c0 + off, len);
	s->backing_name[len] = 0;
	if (strlen(s->backing_name) != len)
		return imgfmt_err(img, -EINVAL, "%s: backing file name contains a NUL byte", img->path);
	return 0;
}

/* ---- open ---- */

/* Internal snapshots are not read, but their table must be sane, every
 * entry of it, as QEMU checks it at open (and more: an entry running past
 * the file, an L1 table too large or outside it, which QEMU finds later). */
static int check_snapshots(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);

	if (!s->h.nb_snapshots)
		return 0;
	if (s->h.nb_snapshots > 65536)
		return imgfmt_err(img, -EFBIG, "%s: nb_snapshots %u exceeds 65536 (QEMU's limit)", img->path,
				  s->h.nb_snapshots);
	char what[48];
	int r;

	snprintf(what, sizeof(what), "snapshot table (nb_snapshots %u)", s->h.nb_snapshots);
	r = qcow2_check_table(img, what, s->h.snapshots_offset, (uint64_t)s->h.nb_snapshots * 40);
	return r < 0 ? r : qcow2_snapshot_check_table(img);
}

static int load_tables(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t rt_bytes = (uint64_t)s->h.refcount_table_clusters * s->cluster_bytes;
	int r;

	if ((uint64_t)s->h.refcount_table_clusters * s->cluster_bytes > QCOW2_MAX_REFTABLE_BYTES ||
	    !s->h.refcount_table_clusters)
		return imgfmt_err(img, -EINVAL, "%s: refcount table of %u clusters is invalid", img->path,
				  s->h.refcount_table_clusters);
	if ((r = check_snapshots(img)) < 0 ||
	    (r = qcow2_check_table(img, "L1 table", s->h.l1_table_offset, (uint64_t)s->h.l1_size * 8)) < 0 ||
	    (r = qcow2_check_table(img, "refcount table", s->h.refcount_table_offset, rt_bytes)) < 0)
		return r;
	s->l1_size = s->h.l1_size;
	s->l1 = calloc(s->l1_size ? s->l1_size : 1, 8);
	s->reftable_entries = s->reftable_disk_entries = rt_bytes / 8;
	s->reftable = malloc(rt_bytes);
	if (!s->l1 || !s->reftable)
		return imgfmt_err(img, -ENOMEM, "out of memory for qcow2 tables");
	if ((r = imgfmt_fd_pread(img->fd, s->l1, (uint64_t)s->l1_size * 8, s->h.l1_table_offset)) < 0 ||
	    (r = imgfmt_fd_pread(img->fd, s->reftable, rt_bytes, s->h.refcount_table_offset)) < 0)
		return imgfmt_err(img, r, "%s: reading the L1/refcount tables: %s", img->path, strerror(-r));
	for (uint32_t i = 0; i < s->l1_size; i++)
		s->l1[i] = be64toh(s->l1[i]);
	for (uint64_t i = 0; i < s->reftable_entries; i++) {
		s->reftable[i] = be64toh(s->reftable[i]);
		if (s->reftable[i] && (r = qcow2_check_table(img, "refcount block", s->reftable[i], s->cluster_bytes)) < 0)
			return r;
	}
	return 0;
}

static int alloc_state(struct imgfmt_image *img)
{
	struct qcow2 *s = calloc(1, sizeof(*s));

	if (!s)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = s;
	return 0;
}

static int alloc_buffers(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);

	s->cluster_buf = malloc(s->cluster_bytes);
	s->cbuf = malloc(s->cluster_bytes + 512);
	if (!s->cluster_buf || !s->cbuf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	return 0;
}

/* A writer that does not maintain what an autoclear bit stands for (bitmaps
 * are the one QEMU uses) clears it before changing anything, as the spec
 * asks: the bitmaps are then known stale instead of silently wrong. */
static int clear_autoclear(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);

	s->h.autoclear_features = 0;
	s->nb_bitmaps = 0;
	imgfmt_warn(img, "%s: persistent bitmaps (if any) are now marked inconsistent: p2v does not update them",
		    img->path);
	return qcow2_write_header(img);
}

static int qcow2_open(struct imgfmt_image *img)
{
	uint8_t *c0 = NULL;
	struct qcow2 *s;
	int r;

	if ((r = alloc_state(img)) < 0)
		return r;
	s = qcow2_state(img);
	if ((r = imgfmt_fd_size(img->fd, &s->file_bytes)) < 0)
		return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	if (s->file_bytes < QCOW2_HEADER_V2_BYTES)
		return imgfmt_err(img, -EINVAL, "%s: file of %llu bytes is too short for a qcow2 header",
				  img->path, (unsigned long long)s->file_bytes);
	c0 = malloc(1u << QCOW2_MAX_CLUSTER_BITS);
	if (!c0)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = imgfmt_fd_pread_zfill(img->fd, c0, 1u << QCOW2_MAX_CLUSTER_BITS, 0);
	if (r < 0) {
		r = imgfmt_err(img, r, "%s: reading the header: %s", img->path, strerror(-r));
		goto free_c0;
	}
	header_from_disk(&s->h, c0, s->file_bytes);
	if ((r = check_features(img, &s->h)) < 0 || (r = check_geometry(img)) < 0)
		goto free_c0;
	s->next_host = imgfmt_div_round_up(s->file_bytes, s->cluster_bytes) * s->cluster_bytes;
	if ((r = read_extensions(img, c0)) < 0 || (r = read_backing_name(img, c0)) < 0 ||
	    (r = load_tables(img)) < 0 || (r = alloc_buffers(img)) < 0)
		goto free_c0;
	img->size_bytes = s->h.size;
	img->cluster_bytes = s->cluster_bytes;
	if (img->writable && s->h.autoclear_features && (r = clear_autoclear(img)) < 0)
		goto free_c0;
	if (s->backing_name[0] && !(img->flags & IMGFMT_OPEN_NO_BACKING))
		r = imgfmt_open_backing(img, s->backing_name, s->backing_format);
free_c0:
	free(c0);
	return r;
}

static void qcow2_close(struct imgfmt_image *img)
{
	struct qcow2 *s = qcow2_state(img);

	qcow2_cache_free(s->l2_cache);
	qcow2_cache_free(s->ref_cache);
	free(s->l1);
	free(s->reftable);
	free(s->cluster_buf);
	free(s->cbuf);
	free(s);
	img->priv = NULL;
}

/* ---- mapping guest clusters ---- */

/* The L2 entry for guest offset off (0 when no L2 table). */
int qcow2_l2_entry(struct imgfmt_image *img, uint64_t off, uint64_t *entry)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cl = off >> s->cluster_bits;
	uint64_t l1i = cl / s->l2_entries, l2_off;
	uint8_t *l2;
	int r;

	*entry = 0;
	l2_off = s->l1[l1i] & QCOW2_OFFSET_MASK;
	if (!l2_off)
		return 0;
	if ((r = qcow2_check_table(img, "L2 table", l2_off, s->cluster_bytes)) < 0)
		return r;
	if ((r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
		return r;
	*entry = imgfmt_get_be64(l2 + 8 * (cl % s->l2_entries));
	return 0;
}

enum kind { K_UNALLOC, K_ZERO, K_DATA, K_COMPRESSED };

static enum kind entry_kind(const struct qcow2 *s, uint64_t e)
{
	if (e & QCOW2_OFLAG_COMPRESSED)
		return K_COMPRESSED;
	if (s->h.version >= 3 && (e & QCOW2_OFLAG_ZERO))
		return K_ZERO;
	return (e & QCOW2_OFFSET_MASK) ? K_DATA : K_UNALLOC;
}

static int check_data_offset(struct imgfmt_image *img, uint64_t e, uint64_t guest_off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t host = e & QCOW2_OFFSET_MASK;

	if (host & (s->cluster_bytes - 1) || host + s->cluster_bytes > s->next_host)
		return imgfmt_err(img, -EIO, "%s: L2 entry for guest offset %llu points to %llu, %s",
				  img->path, (unsigned long long)guest_off, (unsigned long long)host,
				  host & (s->cluster_bytes - 1) ? "misaligned" : "past the end of the file");
	return 0;
}

/* ---- reading ---- */

static int read_compressed(struct imgfmt_image *img, uint64_t e, uint8_t *out, uint64_t guest_off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t off = e & ((1ull << s->csize_shift) - 1);
	uint64_t len = (((e >> s->csize_shift) & s->csize_mask) + 1) * 512 - (off & 511);
	uint8_t *in;
	int r;

	if (off >= s->file_bytes || off + len > ((s->file_bytes + 511) & ~511ull))
		return imgfmt_err(img, -EIO, "%s: compressed cluster for guest offset %llu (%llu bytes at %llu) runs past the end of the file",
				  img->path, (unsigned long long)guest_off, (unsigned long long)len,
				  (unsigned long long)off);
	if (off + len > s->file_bytes)
		len = s->file_bytes - off;
	in = malloc(len);
	if (!in)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = imgfmt_fd_pread(img->fd, in, len, off);
	if (r == 0)
		r = s->h.compression_type == QCOW2_COMP_ZSTD
			    ? imgfmt_zstd_decompress(in, len, out, s->cluster_bytes)
			    : imgfmt_inflate_raw(in, len, out, s->cluster_bytes);
	free(in);
	if (r < 0)
		return imgfmt_err(img, r, "%s: compressed cluster for guest offset %llu is corrupt",
				  img->path, (unsigned long long)guest_off);
	return 0;
}

static int read_backing(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	uint64_t bsize, n;
	int r;

	if (!img->backing) {
		memset(buf, 0, len);
		return 0;
	}
	bsize = imgfmt_size_bytes(img->backing);
	n = off >= bsize ? 0 : (len < bsize - off ? len : bsize - off);
	if (n && (r = imgfmt_pread(img->backing, buf, n, off)) < 0)
		return imgfmt_err(img, r, "%s", imgfmt_errmsg(img->backing));
	memset((uint8_t *)buf + n, 0, len - n);
	return 0;
}

/* Read [off, off+len) that lies inside one guest cluster. */
static int read_in_cluster(struct imgfmt_image *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t e, in = off & (s->cluster_bytes - 1);
	int r = qcow2_l2_entry(img, off, &e);

	if (r < 0)
		return r;
	switch (entry_kind(s, e)) {
	case K_UNALLOC:
		return read_backing(img, buf, len, off);
	case K_ZERO:
		memset(buf, 0, len);
		return 0;
	case K_COMPRESSED:
		if ((r = read_compressed(img, e, s->cluster_buf, off)) < 0)
			return r;
		memcpy(buf, s->cluster_buf + in, len);
		return 0;
	case K_DATA:
		break;
	}
	if ((r = check_data_offset(img, e, off)) < 0)
		return r;
	r = imgfmt_fd_pread_zfill(img->fd, buf, len, (e & QCOW2_OFFSET_MASK) + in);
	return r < 0 ? imgfmt_err(img, r, "%s: read at %llu: %s", img->path,
				  (unsigned long long)off, strerror(-r)) : 0;
}

/* Length of the run of guest clusters from off whose data is host-contiguous
 * (plain DATA clusters only), capped at len. */
static int data_run(struct imgfmt_image *img, uint64_t off, uint64_t len, uint64_t *host,
		    uint64_t *run)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t e, cb = s->cluster_bytes, in = off & (cb - 1);
	int r = qcow2_l2_entry(img, off, &e);

	*run = 0;
	if (r < 0 || entry_kind(s, e) != K_DATA)
		return r;
	if ((r = check_data_offset(img, e, off)) < 0)
		return r;
	*host = (e & QCOW2_OFFSET_MASK) + in;
	*run = cb - in < len ? cb - in : len;
	while (*run < len) {
		uint64_t e2, next = off + *run;
		if ((r = qcow2_l2_entry(img, next, &e2)) < 0)
			return r;
		if (entry_kind(s, e2) != K_DATA || (e2 & QCOW2_OFFSET_MASK) != *host + *run ||
		    check_data_offset(img, e2, next) < 0)
			break;
		*run += cb < len - *run ? cb : len - *run;
	}
	return 0;
}

static int qcow2_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t host, run, n;
		int r = data_run(img, off, len, &host, &run);
		if (r < 0)
			return r;
		if (run) {
			if ((r = imgfmt_fd_pread_zfill(img->fd, p, run, host)) < 0)
				return imgfmt_err(img, r, "%s: read at %llu: %s", img->path,
						  (unsigned long long)off, strerror(-r));
			n = run;
		} else {
			n = s->cluster_bytes - (off & (s->cluster_bytes - 1));
			n = n < len ? n : len;
			if ((r = read_in_cluster(img, p, n, off)) < 0)
				return r;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- block status ---- */

/* The extent one L2 entry makes of guest offset off (top layer only). */
static void entry_extent(struct imgfmt_image *img, uint64_t e, uint64_t off,
			 struct imgfmt_extent *x)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t in = off & (s->cluster_bytes - 1);

	x->depth = 0;
	x->host_offset_bytes = IMGFMT_NO_HOST_OFFSET;
	switch (entry_kind(s, e)) {
	case K_ZERO: /* preallocated zero clusters keep their offset, as QEMU shows */
		x->type = IMGFMT_EXTENT_ZERO;
		if ((e & QCOW2_OFFSET_MASK) && check_data_offset(img, e, off) == 0)
			x->host_offset_bytes = (e & QCOW2_OFFSET_MASK) + in;
		return;
	case K_DATA:
		x->type = IMGFMT_EXTENT_DATA;
		if (check_data_offset(img, e, off) == 0)
			x->host_offset_bytes = (e & QCOW2_OFFSET_MASK) + in;
		return;
	case K_COMPRESSED:
		x->type = IMGFMT_EXTENT_DATA;
		return;
	case K_UNALLOC:
		break;
	}
	x->type = IMGFMT_EXTENT_HOLE;
}

/* Whether next continues ext: same kind, same layer, and the bytes right
 * after ext's in the host file (or both lie nowhere). */
static bool continues(const struct imgfmt_extent *ext, const struct imgfmt_extent *next)
{
	if (next->type != ext->type || next->depth != ext->depth)
		return false;
	if (ext->host_offset_bytes == IMGFMT_NO_HOST_OFFSET)
		return next->host_offset_bytes == IMGFMT_NO_HOST_OFFSET;
	return next->host_offset_bytes == ext->host_offset_bytes + ext->length_bytes;
}

/* Append piece (its length_bytes set) to ext when it continues it (or ext
 * is still empty); false when the extent ends before piece. */
static bool extend(struct imgfmt_extent *ext, const struct imgfmt_extent *piece)
{
	if (ext->length_bytes == 0) {
		ext->type = piece->type;
		ext->depth = 0;
		ext->host_offset_bytes = piece->host_offset_bytes;
	} else if (!continues(ext, piece)) {
		return false;
	}
	ext->length_bytes += piece->length_bytes;
	return true;
}

/* The top layer's extent at off, at most len: walked by allocation.  A run
 * of L1 entries without an L2 table is one step, and so are the all-zero
 * words before and after the non-zero ones of a cached L2 table; only the
 * entries in between are looked at one by one.  Each L2 table comes from
 * the cache keyed by its offset, so L1 entries sharing a table read it once. */
static int top_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
		      struct imgfmt_extent *ext)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, pos = off, end = off + len;
	uint64_t span = cb * s->l2_entries; /* guest bytes per L1 entry */
	struct imgfmt_extent piece = { .depth = 0 };
	int r;

	ext->length_bytes = 0;
	ext->depth = 0;
	while (pos < end) {
		uint64_t l1i = pos / span, l2_off, k, stop;
		uint32_t i = (uint32_t)((pos >> s->cluster_bits) % s->l2_entries), lo, hi;
		uint8_t *l2;
		if (l1i >= s->l1_size)
			return imgfmt_err(img, -EIO, "%s: guest offset %llu lies past the L1 table", img->path,
					  (unsigned long long)pos);
		if (!(l2_off = s->l1[l1i] & QCOW2_OFFSET_MASK)) {
			/* end ≤ size ≤ l1_size * span: k * span cannot overflow */
			for (k = l1i + 1; k < s->l1_size && k * span < end; k++)
				if (s->l1[k] & QCOW2_OFFSET_MASK)
					break;
			piece.type = IMGFMT_EXTENT_HOLE;
			piece.host_offset_bytes = IMGFMT_NO_HOST_OFFSET;
			piece.length_bytes = (k * span < end ? k * span : end) - pos;
			if (!extend(ext, &piece))
				return 0;
			pos += piece.length_bytes;
			continue;
		}
		if ((r = qcow2_check_table(img, "L2 table", l2_off, cb)) < 0 ||
		    (r = qcow2_cache_get_range(img, s->l2_cache, l2_off, &l2, &lo, &hi)) < 0)
			return r;
		hi = hi < s->l2_entries ? hi : s->l2_entries;
		/* each pass advances pos and i; i stays below l2_entries */
		while (pos < end && i < s->l2_entries) {
			uint64_t in = pos & (cb - 1);
			if (i < lo || i >= hi) { /* zero words: unallocated up to lo or the table's end */
				stop = i < lo ? lo : s->l2_entries;
				piece.type = IMGFMT_EXTENT_HOLE;
				piece.host_offset_bytes = IMGFMT_NO_HOST_OFFSET;
				piece.length_bytes = (stop - i) * cb - in;
			} else {
				entry_extent(img, imgfmt_get_be64(l2 + 8 * (uint64_t)i), pos, &piece);
				piece.length_bytes = cb - in;
				stop = i + 1;
			}
			if (piece.length_bytes > end - pos)
				piece.length_bytes = end - pos;
			if (!extend(ext, &piece))
				return 0;
			pos += piece.length_bytes;
			i = (uint32_t)stop;
		}
	}
	return 0;
}

/* The top layer's extent; an unallocated one is the backing file's (a hole
 * past its end). */
static int qcow2_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			      struct imgfmt_extent *ext)
{
	struct imgfmt_extent b;
	uint64_t bsize;
	int r = top_status(img, off, len, ext);

	if (r < 0 || ext->type != IMGFMT_EXTENT_HOLE || !img->backing)
		return r;
	bsize = imgfmt_size_bytes(img->backing);
	if (off >= bsize)
		return 0;
	if ((r = imgfmt_block_status(img->backing, off,
				     ext->length_bytes < bsize - off ? ext->length_bytes : bsize - off, &b)) < 0)
		return imgfmt_err(img, r, "%s", imgfmt_errmsg(img->backing));
	ext->type = b.type;
	ext->length_bytes = b.length_bytes;
	ext->depth = b.depth + 1;
	ext->host_offset_bytes = b.host_offset_bytes;
	return 0;
}

/* ---- writing ---- */

/* The L2 table for guest offset off, allocated (zeroed) when missing. */
static int l2_table_for_write(struct imgfmt_image *img, uint64_t off, uint64_t *l2_off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t l1i = (off >> s->cluster_bits) / s->l2_entries, old, new_off;
	uint8_t *l2, *old_l2;
	int r;

	old = s->l1[l1i] & QCOW2_OFFSET_MASK;
	if (old && (s->l1[l1i] & QCOW2_OFLAG_COPIED)) {
		*l2_off = old;
		return qcow2_check_table(img, "L2 table", old, s->cluster_bytes);
	}
	if ((r = qcow2_alloc_clusters(img, 1, &new_off)) < 0)
		return r;
	if ((r = qcow2_cache_get(img, s->l2_cache, new_off, false, &l2)) < 0)
		return r;
	if (old) { /* shared with a snapshot: copy it, then drop our reference */
		if ((r = qcow2_check_table(img, "L2 table", old, s->cluster_bytes)) < 0 ||
		    (r = qcow2_cache_get(img, s->l2_cache, old, true, &old_l2)) < 0 ||
		    (r = qcow2_cache_get(img, s->l2_cache, new_off, false, &l2)) < 0)
			return r;
		memcpy(l2, old_l2, s->cluster_bytes);
		if ((r = qcow2_refcount_add(img, old, s->cluster_bytes, -1)) < 0)
			return r;
	}
	qcow2_cache_mark_dirty(s->l2_cache, new_off);
	s->l1[l1i] = new_off | QCOW2_OFLAG_COPIED;
	s->l1_dirty = true;
	*l2_off = new_off;
	return 0;
}

/* Add delta to the refcounts of what an L2 entry references (its data
 * cluster, or every cluster its compressed data touches). */
int qcow2_entry_refcount(struct imgfmt_image *img, uint64_t entry, int delta)
{
	struct qcow2 *s = qcow2_state(img);

	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint64_t o = entry & ((1ull << s->csize_shift) - 1);
		uint64_t n = (((entry >> s->csize_shift) & s->csize_mask) + 1) * 512 - (o & 511);
		return qcow2_refcount_add(img, o, n, delta);
	}
	if (entry & QCOW2_OFFSET_MASK)
		return qcow2_refcount_add(img, entry & QCOW2_OFFSET_MASK, s->cluster_bytes, delta);
	return 0;
}

int qcow2_drop_entry(struct imgfmt_image *img, uint64_t entry)
{
	return qcow2_entry_refcount(img, entry, -1);
}

/* Replace the L2 entry for off; drops the reference the old entry held. */
int qcow2_set_l2_entry(struct imgfmt_image *img, uint64_t off, uint64_t entry)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t l2_off, old, i = (off >> s->cluster_bits) % s->l2_entries;
	uint8_t *l2;
	int r;

	if ((r = l2_table_for_write(img, off, &l2_off)) < 0 ||
	    (r = qcow2_cache_get(img, s->l2_cache, l2_off, true, &l2)) < 0)
		return r;
	old = imgfmt_get_be64(l2 + 8 * i);
	imgfmt_put_be64(l2 + 8 * i, entry);
	qcow2_cache_mark_dirty(s->l2_cache, l2_off);
	if (!(old & QCOW2_OFLAG_COMPRESSED) && (old & QCOW2_OFFSET_MASK) == (entry & QCOW2_OFFSET_MASK))
		return 0; /* the same cluster (a flag changed) */
	return qcow2_drop_entry(img, old);
}

/* Host offset of the cluster at off if we may write it in place, else 0. */
static int writable_cluster(struct imgfmt_image *img, uint64_t off, uint64_t *host)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t e;
	int r = qcow2_l2_entry(img, off, &e);

	*host = 0;
	if (r < 0)
		return r;
	if (entry_kind(s, e) == K_DATA && (e & QCOW2_OFLAG_COPIED) &&
	    (r = check_data_offset(img, e, off)) == 0)
		*host = e & QCOW2_OFFSET_MASK;
	return r;
}

/* Write whole new clusters for [off, off+len) (cluster-aligned start; the
 * last cluster may be partial only at the end of the image), contiguously. */
static int write_new_clusters(struct imgfmt_image *img, const uint8_t *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t n = imgfmt_div_round_up(len, s->cluster_bytes), host, l2_off;
	int r;

	/* L2 tables first, so the data clusters come out contiguous */
	for (uint64_t i = 0; i < n; i += s->l2_entries - ((off >> s->cluster_bits) + i) % s->l2_entries)
		if ((r = l2_table_for_write(img, off + i * s->cluster_bytes, &l2_off)) < 0)
			return r;
	if ((r = l2_table_for_write(img, off + (n - 1) * s->cluster_bytes, &l2_off)) < 0 ||
	    (r = qcow2_alloc_clusters(img, n, &host)) < 0)
		return r;
	if ((r = imgfmt_data_pwrite(img, buf, len, host)) < 0)
		return imgfmt_err(img, r, "%s: write of %llu bytes at %llu: %s", img->path,
				  (unsigned long long)len, (unsigned long long)host, strerror(-r));
	if (host + len > s->file_bytes)
		s->file_bytes = host + len;
	for (uint64_t i = 0; i < n; i++)
		if ((r = qcow2_set_l2_entry(img, off + i * s->cluster_bytes,
				      (host + i * s->cluster_bytes) | QCOW2_OFLAG_COPIED)) < 0)
			return r;
	return 0;
}

/* A partial cluster, or one that cannot be written in place: merge with the
 * old content and write a new cluster. */
static int write_cow(struct imgfmt_image *img, const uint8_t *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t start = off & ~((uint64_t)s->cluster_bytes - 1);
	uint64_t clen = s->cluster_bytes < img->size_bytes - start ? s->cluster_bytes : img->size_bytes - start;
	uint8_t *c = s->cbuf;
	int r = qcow2_pread(img, c, clen, start);

	if (r < 0)
		return r;
	memcpy(c + (off - start), buf, len);
	return write_new_clusters(img, c, clen, start);
}

static int qcow2_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	const uint8_t *p = buf;
	uint64_t cb = s->cluster_bytes;

	while (len > 0) {
		uint64_t in = off & (cb - 1), host, n = cb - in < len ? cb - in : len;
		int r = writable_cluster(img, off, &host);
		if (r < 0)
			return r;
		if (host) {
			if ((r = imgfmt_data_pwrite(img, p, n, host + in)) < 0)
				return imgfmt_err(img, r, "%s: write at %llu: %s", img->path,
						  (unsigned long long)off, strerror(-r));
		} else if (in == 0 && (n == cb || off + n == img->size_bytes)) {
			/* whole new clusters: take as long a run as possible */
			uint64_t run = n;
			while (run < len && cb <= len - run) {
				uint64_t h2;
				if ((r = writable_cluster(img, off + run, &h2)) < 0)
					return r;
				if (h2)
					break;
				run += cb;
			}
			if (run < len && off + len == img->size_bytes && len - run < cb) {
				uint64_t h2;
				if ((r = writable_cluster(img, off + run, &h2)) < 0)
					return r;
				if (!h2)
					run = len; /* the partial last cluster of the image */
			}
			n = run;
			r = write_new_clusters(img, p, n, off);
		} else {
			r = write_cow(img, p, n, off);
		}
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int qcow2_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes;

	while (len > 0) {
		uint64_t in = off & (cb - 1), n = cb - in < len ? cb - in : len;
		bool whole = in == 0 && (n == cb || off + n == img->size_bytes);
		int r;
		if (whole && s->h.version >= 3)
			r = qcow2_set_l2_entry(img, off, QCOW2_OFLAG_ZERO);
		else {
			memset(s->cluster_buf, 0, n);
			r = qcow2_pwrite(img, s->cluster_buf, n, off);
		}
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- compression ---- */

static int qcow2_compress(const struct imgfmt_image *img, const void *in, size_t in_bytes,
			  void *out, size_t out_cap, size_t *out_bytes)
{
	const struct qcow2 *s = img->priv;
	size_t limit = in_bytes > 512 ? in_bytes - 512 : in_bytes; /* save a sector at least */
	long n;

	if (out_cap < limit)
		limit = out_cap;
	n = s->h.compression_type == QCOW2_COMP_ZSTD ? imgfmt_zstd_compress(in, in_bytes, out, limit)
						      : imgfmt_deflate_raw_4k(in, in_bytes, out, limit, s->deflate_level);
	if (n < 0)
		return (int)n;
	if ((size_t)n >= limit)
		return -ENOSPC;
	*out_bytes = (size_t)n;
	return 0;
}

/* Compressed data is packed byte by byte after the previous compressed
 * cluster while that one's host cluster is still the last one allocated;
 * each host cluster holds one reference per compressed cluster touching it. */
static int qcow2_pwrite_compressed(struct imgfmt_image *img, const void *buf, size_t len,
				   uint64_t off)
{
	struct qcow2 *s = qcow2_state(img);
	uint64_t cb = s->cluster_bytes, start = s->comp_next, end, host, nb_csectors;
	bool shared;
	int r = 0;

	if (len == 0 || len > cb)
		return imgfmt_err(img, -EINVAL, "compressed cluster of %zu bytes", len);
	shared = start > s->next_host - cb && start < s->next_host;
	if (shared) { /* narrow refcounts (1, 2 bits) fill up: then a new cluster */
		uint64_t ref, max = s->refcount_bits == 64 ? UINT64_MAX : (1ull << s->refcount_bits) - 1;
		if ((r = qcow2_refcount_get(img, start >> s->cluster_bits, &ref)) < 0)
			return r;
		shared = ref < max;
	}
	if (!shared)
		start = s->next_host;
	end = start + len;
	if (end > s->next_host)
		r = qcow2_alloc_clusters(img, imgfmt_div_round_up(end - s->next_host, cb), &host);
	if (r == 0 && shared)
		r = qcow2_refcount_add(img, start, 1, +1);
	if (r < 0)
		return r;
	if ((r = imgfmt_data_pwrite(img, buf, len, start)) < 0)
		return imgfmt_err(img, r, "%s: compressed write at %llu: %s", img->path,
				  (unsigned long long)start, strerror(-r));
	if (end > s->file_bytes)
		s->file_bytes = end;
	s->comp_next = end;
	nb_csectors = ((end - 1) >> 9) - (start >> 9);
	return qcow2_set_l2_entry(img, off, QCOW2_OFLAG_COMPRESSED | (nb_csectors << s->csize_shift) | start);
}

/* ---- create ---- */

/* The create options.  compression_level picks the zlib encoder: p2v's own
 * 4 KiB-window deflate (smaller than zlib level 6, about twice as fast),
 * fast (ISA-L: much faster, 6-8% larger) or 1-9 (zlib itself, 6 = QEMU's
 * own output). */
enum { Q_COMPAT, Q_CLUSTER_SIZE, Q_REFCOUNT_BITS, Q_COMPRESSION_TYPE, Q_COMPRESSION_LEVEL,
       Q_BACKING_FILE, Q_BACKING_FMT };
static const char *const compat_choices[] = { "0.10", "1.1", "v2", "v3", NULL };
static const char *const ctype_choices[] = { "zlib", "zstd", NULL };
static const char *const level_choices[] = { "p2v", "fast", "1", "2", "3", "4", "5", "6", "7", "8", "9", NULL };
static const struct imgfmt_opt_desc qcow2_create_opts[] = {
	[Q_COMPAT] = { "compat", IMGFMT_OPT_ENUM, "1.1",
		       "qcow2 version: 0.10 is v2 for old hypervisors (16-bit refcounts, zlib, no zero clusters), 1.1 is v3",
		       .choices = compat_choices },
	[Q_CLUSTER_SIZE] = { "cluster_size", IMGFMT_OPT_SIZE, "64K", "qcow2 cluster size",
			     .min = 512, .max = 2u << 20, .pow2 = true },
	[Q_REFCOUNT_BITS] = { "refcount_bits", IMGFMT_OPT_NUMBER, "16", "width of a reference count",
			      .min = 1, .max = 64, .pow2 = true },
	[Q_COMPRESSION_TYPE] = { "compression_type", IMGFMT_OPT_ENUM, "zlib",
				 "compression of compressed clusters (-c)", .choices = ctype_choices },
	[Q_COMPRESSION_LEVEL] = { "compression_level", IMGFMT_OPT_ENUM, "p2v",
				  "zlib encoder: p2v's own (smaller than zlib -6, faster), fast (ISA-L, 6-8% larger) or zlib level 1-9",
				  .choices = level_choices },
	[Q_BACKING_FILE] = { "backing_file", IMGFMT_OPT_STRING, NULL,
			     "file name of a base image (as recorded: relative to this image's directory)",
			     .choices = NULL },
	[Q_BACKING_FMT] = { "backing_fmt", IMGFMT_OPT_STRING, NULL, "format of the base image",
			    .choices = NULL },
	{ 0 },
};

static int create_options(struct imgfmt_image *img, const struct imgfmt_optval *ov,
			  uint32_t *cluster_bytes, uint32_t *ref_bits, uint8_t *comp, uint32_t *version)
{
	bool v2 = ov[Q_COMPAT].u == 0 || ov[Q_COMPAT].u == 2;

	*cluster_bytes = (uint32_t)ov[Q_CLUSTER_SIZE].u;
	*ref_bits = (uint32_t)ov[Q_REFCOUNT_BITS].u;
	*comp = ov[Q_COMPRESSION_TYPE].u == 1 ? QCOW2_COMP_ZSTD : QCOW2_COMP_ZLIB;
	*version = v2 ? 2 : 3;
	if (v2 && (*ref_bits != 16 || *comp != QCOW2_COMP_ZLIB))
		return imgfmt_err(img, -EINVAL, "compat=%s has 16-bit refcounts and zlib only "
				  "(refcount_bits=%u, compression_type=%s)", ov[Q_COMPAT].s, *ref_bits,
				  *comp == QCOW2_COMP_ZSTD ? "zstd" : "zlib");
	if (ov[Q_BACKING_FMT].s && !ov[Q_BACKING_FILE].s)
		return imgfmt_err(img, -EINVAL, "backing_fmt without backing_file");
	return 0;
}

static int level_of(const struct imgfmt_optval *ov)
{
	uint64_t i = ov[Q_COMPRESSION_LEVEL].u;

	return i == 0 ? IMGFMT_DEFLATE_P2V : i == 1 ? IMGFMT_DEFLATE_ISAL : (int)(i - 1);
}

/* Clusters the refcount table needs to cover an image of size bytes. */
static uint64_t reftable_clusters_for(uint64_t size, uint32_t cb, uint64_t refs_per_block)
{
	uint64_t data = imgfmt_div_round_up(size, cb);
	uint64_t l2 = imgfmt_div_round_up(data, cb / 8);
	uint64_t host = data + l2 + imgfmt_div_round_up(l2 * 8, cb) + 16, blocks, tc = 1;

	for (int i = 0; i < 8; i++) { /* the table and blocks count themselves */
		blocks = imgfmt_div_round_up(host + tc, refs_per_block) + 1;
		tc = imgfmt_div_round_up(blocks * 8, cb);
	}
	return tc;
}

/* Record and open the backing file of a new image (its partial clusters
 * are completed from it); its format is probed when not given. */
static int create_backing(struct imgfmt_image *img, const char *name, const char *fmt)
{
	struct qcow2 *s = qcow2_state(img);
	int r;

	if (!name)
		return 0;
	if (strlen(name) >= sizeof(s->backing_name) || (fmt && strlen(fmt) >= sizeof(s->backing_format)))
		return imgfmt_err(img, -ENAMETOOLONG, "%s: backing file name or format is too long", img->path);
	if ((r = imgfmt_open_backing(img, name, fmt)) < 0)
		return r;
	snprintf(s->backing_name, sizeof(s->backing_name), "%s", name);
	snprintf(s->backing_format, sizeof(s->backing_format), "%s", imgfmt_format(img->backing));
	s->header_area_dirty = true;
	img->fresh = false; /* unwritten clusters read from the backing file */
	return 0;
}

static int qcow2_create(struct imgfmt_image *img, uint64_t size, const struct imgfmt_optval *ov)
{
	uint32_t cb, ref_bits, version;
	uint8_t comp;
	struct qcow2 *s;
	uint64_t l1_size, rt_clusters, l1_clusters;
	int r;

	if ((r = create_options(img, ov, &cb, &ref_bits, &comp, &version)) < 0 ||
	    (r = alloc_state(img)) < 0)
		return r;
	s = qcow2_state(img);
	s->deflate_level = level_of(ov);
	size = (size + 511) & ~511ull; /* QEMU counts whole sectors */
	s->h = (struct qcow2_header){
		.magic = QCOW2_MAGIC, .version = version, .cluster_bits = (uint32_t)__builtin_ctz(cb),
		.size = size, .refcount_order = (uint32_t)__builtin_ctz(ref_bits),
		.header_length = version < 3 ? QCOW2_HEADER_V2_BYTES : QCOW2_HEADER_WRITE_BYTES,
		.compression_type = comp,
		.incompatible_features = comp ? QCOW2_INCOMPAT_COMPRESSION : 0,
	};
	l1_size = imgfmt_div_round_up(size, (uint64_t)cb * (cb / 8));
	if (size > (1ull << 56) || l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: %llu bytes is too large for qcow2 with %u-byte clusters",
				  img->path, (unsigned long long)size, cb);
	s->h.l1_size = (uint32_t)l1_size;
	if ((r = check_geometry(img)) < 0)
		return r;
	rt_clusters = reftable_clusters_for(size, cb, s->refs_per_block);
	l1_clusters = imgfmt_div_round_up(l1_size * 8, cb);
	s->h.refcount_table_offset = cb;
	s->h.refcount_table_clusters = (uint32_t)rt_clusters;
	s->h.l1_table_offset = cb * (1 + rt_clusters);
	s->l1_size = (uint32_t)l1_size;
	s->l1 = calloc(l1_size ? l1_size : 1, 8);
	s->reftable_entries = s->reftable_disk_entries = rt_clusters * cb / 8;
	s->reftable = calloc(s->reftable_entries, 8);
	if (!s->l1 || !s->reftable || (r = alloc_buffers(img)) < 0)
		return r < 0 ? r : imgfmt_err(img, -ENOMEM, "out of memory");
	s->next_host = s->h.l1_table_offset + l1_clusters * cb;
	s->file_bytes = s->next_host;
	img->size_bytes = size;
	img->cluster_bytes = cb;
	if ((r = qcow2_refcount_add(img, 0, s->next_host, +1)) < 0)
		return r;
	s->l1_dirty = s->reftable_dirty = s->header_dirty = true;
	if (ftruncate(img->fd, (off_t)s->next_host) < 0)
		return imgfmt_err(img, -errno, "%s: %s", img->path, strerror(errno));
	if ((r = create_backing(img, ov[Q_BACKING_FILE].s, ov[Q_BACKING_FMT].s)) < 0)
		return r;
	return qcow2_flush_meta(img);
}

/* ---- measure ---- */

/* Metadata of an image of size bytes (a whole number of clusters) with
 * every cluster allocated: the header cluster, L2 tables for the whole
 * size, the L1 table, and refcount blocks and table for all of them,
 * themselves included (found as the fixed point of the counts, which only
 * grow and are bounded, so the loop ends). */
static uint64_t meta_bytes(uint64_t size, uint32_t cb, uint32_t ref_bits)
{
	uint64_t clusters = size / cb;
	uint64_t l2 = imgfmt_div_round_up(clusters, cb / 8);
	uint64_t l1 = imgfmt_div_round_up(l2 * 8, cb);
	uint64_t per_block = (uint64_t)cb * 8 / ref_bits, blocks = 0, table = 0, prev;

	do {
		prev = blocks + table;
		blocks = imgfmt_div_round_up(1 + l2 + l1 + clusters + blocks + table, per_block);
		table = imgfmt_div_round_up(blocks * 8, cb);
	} while (blocks + table != prev);
	return (1 + l2 + l1 + blocks + table) * cb;
}

/* As qemu-img measure: all metadata for the whole size (what a fully
 * allocated image has), plus the source's data clusters; a new backing
 * file may share nothing with the source, so then every cluster counts. */
static int qcow2_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
			 struct imgfmt_image *src, struct imgfmt_measure *m)
{
	uint32_t cb, ref_bits, version;
	uint8_t comp;
	uint64_t data = 0, meta;
	int r = create_options(img, ov, &cb, &ref_bits, &comp, &version);

	if (r < 0)
		return r;
	size = imgfmt_div_round_up(size, cb) * cb;
	if (size > (1ull << 56))
		return imgfmt_err(img, -EFBIG, "%llu bytes is too large for qcow2", (unsigned long long)size);
	meta = meta_bytes(size, cb, ref_bits);
	if (ov[Q_BACKING_FILE].set && src)
		data = size;
	else if ((r = imgfmt_measure_data(img, src, cb, &data)) < 0)
		return r;
	m->fully_allocated_bytes = meta + size;
	m->required_bytes = meta + data;
	m->has_bitmaps = version >= 3 && src && !strcmp(imgfmt_format(src), "qcow2");
	return 0;
}

/* ---- flush, info, driver ---- */

static int qcow2_flush(struct imgfmt_image *img)
{
	int r = qcow2_flush_meta(img);

	if (r == 0 && fdatasync(img->fd) < 0)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return r;
}

static int qcow2_finish(struct imgfmt_image *img)
{
	return qcow2_flush_meta(img);
}

static int qcow2_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct qcow2 *s = qcow2_state(img);

	snprintf(info->subformat, sizeof(info->subformat), "v%u", s->h.version);
	snprintf(info->backing_file, sizeof(info->backing_file), "%s", s->backing_name);
	snprintf(info->backing_format, sizeof(info->backing_format), "%.15s", s->backing_format);
	info->dirty = s->h.incompatible_features & QCOW2_INCOMPAT_DIRTY;
	/* QEMU's keys in QEMU's order; then p2v's own */
	imgfmt_info_add(info, "compat", false, "%s", s->h.version >= 3 ? "1.1" : "0.10");
	imgfmt_info_add(info, "compression-type", false, "%s",
			s->h.compression_type == QCOW2_COMP_ZSTD ? "zstd" : "zlib");
	if (s->h.version >= 3)
		imgfmt_info_add(info, "lazy-refcounts", true, "%s",
				(s->h.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) ? "true" : "false");
	imgfmt_info_add(info, "refcount-bits", true, "%u", s->refcount_bits);
	if (s->h.version >= 3) {
		imgfmt_info_add(info, "corrupt", true, "%s",
				(s->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT) ? "true" : "false");
		imgfmt_info_add(info, "extended-l2", true, "false"); /* refused by open */
	}
	imgfmt_info_add(info, "l1-size", true, "%u", s->l1_size);
	imgfmt_info_add(info, "nb-snapshots", true, "%u", s->h.nb_snapshots);
	return 0;
}

static const char *const qcow2_magic[] = { "QFI\xfb", NULL };

const struct imgfmt_driver imgfmt_qcow2_driver = {
	.name = "qcow2",
	.description = "QEMU copy-on-write v2/v3",
	.magic = qcow2_magic,
	.probe = qcow2_probe,
	.open = qcow2_open,
	.create_opts = qcow2_create_opts,
	.create = qcow2_create,
	.measure = qcow2_measure,
	.pread = qcow2_pread,
	.pwrite = qcow2_pwrite,
	.write_zeroes = qcow2_write_zeroes,
	.block_status = qcow2_block_status,
	.flush = qcow2_flush,
	.finish = qcow2_finish,
	.close = qcow2_close,
	.info = qcow2_info,
	.resize = qcow2_resize,
	.set_backing = qcow2_set_backing,
	.amend_opts = qcow2_amend_opts,
	.amend = qcow2_amend,
	.discard = qcow2_discard,
	.snapshot_list = qcow2_snapshot_list,
	.snapshot_create = qcow2_snapshot_create,
	.snapshot_apply = qcow2_snapshot_apply,
	.snapshot_delete = qcow2_snapshot_delete,
	.check = qcow2_check,
	.repairs = true,
	.backing_format = true,
	.compress = qcow2_compress,
	.pwrite_compressed = qcow2_pwrite_compressed,
};
