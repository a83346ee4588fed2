/* VMDK: VMware virtual disks (VMware Virtual Disk Format 1.1).
 *
 * An image is a list of extents (SPARSE, FLAT/VMFS, ZERO) laid end to end,
 * described by a text descriptor that is either a file of its own or
 * embedded in a sparse extent (monolithicSparse, streamOptimized).
 *
 * A sparse extent maps grains (64 KiB by default) through a grain directory
 * (GD) of grain tables (GT, 512 entries each).  All present GTs are loaded at
 * open; GT sectors are validated to lie inside the file and not to overlap,
 * so table memory is bounded by the file size.  GT entry 0 = unallocated,
 * 1 = zeroed grain when the header's zeroed-grain flag is set (else sector
 * 1, as QEMU and VMware read it), else the grain's sector (streamOptimized: the sector of a
 * grain marker {lba, size} followed by a zlib stream).
 *
 * Writing: monolithicSparse allocates grains at the end of the file and keeps
 * GTs in memory, writing them (both copies) at flush/finish.
 * streamOptimized appends compressed grains with markers; the GTs, the GD,
 * the footer (a header copy with the real gdOffset) and the end-of-stream
 * marker are written at finish (vmdk_stream.c). */
#include "vmdk_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the sparse header at one boundary ---- */

void vmdk_header_decode(const struct vmdk_header_disk *d, struct vmdk_header *h)
{
	h->magic = le32toh(d->magic);
	h->version = le32toh(d->version);
	h->flags = le32toh(d->flags);
	h->capacity_sectors = le64toh(d->capacity);
	h->grain_sectors = le64toh(d->grain_size);
	h->desc_sector = le64toh(d->desc_offset);
	h->desc_sectors = le64toh(d->desc_size);
	h->gtes_per_gt = le32toh(d->num_gtes_per_gt);
	h->rgd_sector = le64toh(d->rgd_offset);
	h->gd_sector = le64toh(d->gd_offset);
	h->overhead_sectors = le64toh(d->overhead);
	h->compress_algorithm = le16toh(d->compress_algorithm);
}

void vmdk_header_encode(const struct vmdk_header *h, struct vmdk_header_disk *d)
{
	memset(d, 0, sizeof(*d));
	d->magic = htole32(VMDK_MAGIC);
	d->version = htole32(h->version);
	d->flags = htole32(h->flags);
	d->capacity = htole64(h->capacity_sectors);
	d->grain_size = htole64(h->grain_sectors);
	d->desc_offset = htole64(h->desc_sector);
	d->desc_size = htole64(h->desc_sectors);
	d->num_gtes_per_gt = htole32(h->gtes_per_gt);
	d->rgd_offset = htole64(h->rgd_sector);
	d->gd_offset = htole64(h->gd_sector);
	d->overhead = htole64(h->overhead_sectors);
	d->single_eol = '\n';
	d->non_eol = ' ';
	d->double_eol1 = '\r';
	d->double_eol2 = '\n';
	d->compress_algorithm = htole16(h->compress_algorithm);
}

/* Header fields that do not depend on the file around them. */
static int header_check_fields(struct imgfmt_image *img, const char *name,
			       const struct vmdk_header *h)
{
	if (h->magic != VMDK_MAGIC)
		return imgfmt_err(img, -EINVAL, "%s: bad magic 0x%08x (not a VMDK sparse extent)",
				  name, h->magic);
	if (h->version < 1 || h->version > 3)
		return imgfmt_err(img, -ENOTSUP, "%s: sparse header version %u is not 1, 2 or 3",
				  name, h->version);
	if (h->grain_sectors < 1 || h->grain_sectors > VMDK_MAX_GRAIN_SECTORS ||
	    !imgfmt_is_pow2(h->grain_sectors))
		return imgfmt_err(img, -EINVAL,
				  "%s: grainSize %llu sectors is not a power of two in 1..%u",
				  name, (unsigned long long)h->grain_sectors, VMDK_MAX_GRAIN_SECTORS);
	if (h->gtes_per_gt != VMDK_GTES_PER_GT)
		return imgfmt_err(img, -EINVAL, "%s: numGTEsPerGT %u is not %u", name,
				  h->gtes_per_gt, VMDK_GTES_PER_GT);
	if (h->capacity_sectors == 0 || h->capacity_sectors > VMDK_MAX_SECTORS)
		return imgfmt_err(img, -EINVAL, "%s: capacity %llu sectors out of range (1..%llu)",
				  name, (unsigned long long)h->capacity_sectors,
				  (unsigned long long)VMDK_MAX_SECTORS);
	if ((h->flags & VMDK_FLAG_COMPRESSED) && h->compress_algorithm != VMDK_COMPRESS_DEFLATE)
		return imgfmt_err(img, -ENOTSUP, "%s: compressAlgorithm %u is not deflate (1)", name,
				  h->compress_algorithm);
	return 0;
}

/* [sector, sector + sectors) must lie inside a file of file_sectors. */
static bool inside(uint64_t sector, uint64_t sectors, uint64_t file_sectors)
{
	return sector <= file_sectors && sectors <= file_sectors - sector;
}

/* ---- grain tables ---- */

static int read_table(struct imgfmt_image *img, int fd, uint32_t *t, uint32_t n,
		      uint64_t sector, const char *what)
{
	int r = imgfmt_fd_pread(fd, t, (size_t)n * 4u, sector * IMGFMT_SECTOR_BYTES);

	if (r < 0)
		return imgfmt_err(img, r, "reading %s at sector %llu: %s", what,
				  (unsigned long long)sector, strerror(-r));
	for (uint32_t i = 0; i < n; i++)
		t[i] = le32toh(t[i]);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Present GTs must be inside the file and must not overlap each other. */
static int gd_check(struct imgfmt_image *img, const char *name, const uint32_t *gd,
		    uint32_t n, uint64_t file_sectors, uint32_t *present)
{
	uint32_t *sorted = malloc((size_t)n * 4u + 4u), k = 0;
	int r = 0;

	if (!sorted)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n && r == 0; i++) {
		if (gd[i] == 0)
			continue;
		if (!inside(gd[i], VMDK_GT_SECTORS, file_sectors))
			r = imgfmt_err(img, -EINVAL,
				       "%s: grain directory entry %u points to sector %u, past the end of the file (%llu sectors)",
				       name, i, gd[i], (unsigned long long)file_sectors);
		sorted[k++] = gd[i];
	}
	qsort(sorted, k, 4, cmp_u32);
	for (uint32_t i = 1; i < k && r == 0; i++)
		if (sorted[i] - sorted[i - 1] < VMDK_GT_SECTORS)
			r = imgfmt_err(img, -EINVAL,
				       "%s: grain tables at sectors %u and %u overlap (grain directory loop or duplicate)",
				       name, sorted[i - 1], sorted[i]);
	free(sorted);
	*present = k;
	return r;
}

/* Grain tables read per pread: runs of tables that follow each other in
 * the file (as qemu-img and VMware lay them out) take one read each. */
#define VMDK_GT_BATCH 256u

/* Where table i goes: writers' block, the shared zero table, or its own. */
static int keep_gt(struct imgfmt_image *img, struct vmdk_sparse *sp, uint32_t i,
		   const uint8_t *raw, uint32_t *k)
{
	uint32_t *t;

	if (sp->gt_mem) {
		t = sp->gt_mem + (size_t)(*k)++ * VMDK_GTES_PER_GT;
	} else {
		bool zero = true;
		for (uint32_t j = 0; j < VMDK_GT_BYTES && zero; j++)
			zero = raw[j] == 0;
		if (zero) {
			sp->gt[i] = sp->gt_zero;
			return 0;
		}
		if (!(t = malloc(VMDK_GT_BYTES)))
			return imgfmt_err(img, -ENOMEM, "out of memory for grain tables");
	}
	for (uint32_t j = 0; j < VMDK_GTES_PER_GT; j++)
		t[j] = imgfmt_get_le32(raw + 4 * j);
	sp->gt[i] = t;
	return 0;
}

static int sparse_load_gts(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	uint32_t present, k = 0;
	uint8_t *buf;
	int r = gd_check(img, e->name, sp->gd, sp->n_gts, sp->file_sectors, &present);

	if (r < 0)
		return r;
	sp->gt = calloc(sp->n_gts, sizeof(*sp->gt));
	sp->gt_dirty = calloc(sp->n_gts, 1);
	if (img->writable)
		sp->gt_mem = calloc((size_t)present + 1, VMDK_GT_BYTES);
	else
		sp->gt_zero = calloc(1, VMDK_GT_BYTES);
	buf = malloc((size_t)VMDK_GT_BATCH * VMDK_GT_BYTES);
	if (!sp->gt || !sp->gt_dirty || !(sp->gt_mem || sp->gt_zero) || !buf) {
		free(buf);
		return imgfmt_err(img, -ENOMEM, "out of memory for %u grain tables", present);
	}
	/* each pass consumes at least table i: the loop ends */
	for (uint32_t i = 0; i < sp->n_gts && r == 0;) {
		uint32_t n = 1;
		if (!sp->gd[i]) {
			i++;
			continue;
		}
		/* gd_check: gd[i] + VMDK_GT_SECTORS lies inside the file, no overflow */
		while (n < VMDK_GT_BATCH && i + n < sp->n_gts &&
		       sp->gd[i + n] == sp->gd[i + n - 1] + VMDK_GT_SECTORS)
			n++;
		r = imgfmt_fd_pread(e->fd, buf, (size_t)n * VMDK_GT_BYTES,
				    (uint64_t)sp->gd[i] * IMGFMT_SECTOR_BYTES);
		if (r < 0)
			r = imgfmt_err(img, r, "reading grain tables at sector %u: %s", sp->gd[i],
				       strerror(-r));
		for (uint32_t j = 0; j < n && r == 0; j++)
			r = keep_gt(img, sp, i + j, buf + (size_t)j * VMDK_GT_BYTES, &k);
		i += n;
	}
	free(buf);
	return r;
}

/* Redundant GD: read only for writers (they update both copies), so its
 * tables must not overlap each other nor the primary ones. */
static int sparse_load_rgd(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	uint32_t present, *both;
	int r;

	if (sp->n_gts > UINT32_MAX / 2)
		return imgfmt_err(img, -EFBIG, "%s: %u grain tables are too many to modify", e->name,
				  sp->n_gts);
	sp->rgd = calloc(sp->n_gts, 4);
	both = calloc(sp->n_gts, 8);
	if (!sp->rgd || !both) {
		free(both);
		return imgfmt_err(img, -ENOMEM, "out of memory");
	}
	r = read_table(img, e->fd, sp->rgd, sp->n_gts, sp->hdr.rgd_sector,
		       "the redundant grain directory");
	memcpy(both, sp->gd, (size_t)sp->n_gts * 4u);
	memcpy(both + sp->n_gts, sp->rgd, (size_t)sp->n_gts * 4u);
	if (r == 0)
		r = gd_check(img, e->name, both, 2 * sp->n_gts, sp->file_sectors, &present);
	free(both);
	return r;
}

/* ---- opening a sparse extent ---- */

uint32_t vmdk_n_gts(uint64_t capacity_sectors, uint32_t grain_sectors)
{
	uint64_t grains = imgfmt_div_round_up(capacity_sectors, grain_sectors);

	return (uint32_t)imgfmt_div_round_up(grains, VMDK_GTES_PER_GT);
}

static int read_marker(struct imgfmt_image *img, int fd, uint64_t sector, uint32_t type,
		       const char *name, uint64_t *num_sectors)
{
	struct vmdk_marker_disk m;
	int r = imgfmt_fd_pread(fd, &m, sizeof(m), sector * IMGFMT_SECTOR_BYTES);

	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the marker at sector %llu: %s", name,
				  (unsigned long long)sector, strerror(-r));
	if (le32toh(m.size) != 0 || le32toh(m.type) != type)
		return imgfmt_err(img, -EINVAL,
				  "%s: marker at sector %llu has size %u type %u, expected size 0 type %u",
				  name, (unsigned long long)sector, le32toh(m.size), le32toh(m.type), type);
	*num_sectors = le64toh(m.val);
	return 0;
}

/* streamOptimized with gdOffset = GD_AT_END: the footer near the end of the
 * file (footer marker, footer, end-of-stream marker) holds the real header. */
static int sparse_read_footer(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	struct vmdk_header_disk d;
	uint64_t n, fs = sp->file_sectors;
	int r;

	if (fs < 4)
		return imgfmt_err(img, -EINVAL, "%s: gdOffset is GD_AT_END but the file has no room for a footer",
				  e->name);
	r = read_marker(img, e->fd, fs - 3, VMDK_MARKER_FOOTER, e->name, &n);
	if (r == 0)
		r = read_marker(img, e->fd, fs - 1, VMDK_MARKER_EOS, e->name, &n);
	if (r == 0)
		r = imgfmt_fd_pread(e->fd, &d, sizeof(d), (fs - 2) * IMGFMT_SECTOR_BYTES);
	if (r < 0)
		return img->err[0] ? r : imgfmt_err(img, r, "%s: reading the footer: %s", e->name, strerror(-r));
	vmdk_header_decode(&d, &sp->hdr);
	r = header_check_fields(img, e->name, &sp->hdr);
	if (r == 0 && sp->hdr.gd_sector == VMDK_GD_AT_END)
		r = imgfmt_err(img, -EINVAL, "%s: footer gdOffset is GD_AT_END too", e->name);
	if (r == 0 && sp->hdr.gd_sector > 0)
		r = read_marker(img, e->fd, sp->hdr.gd_sector - 1, VMDK_MARKER_GD, e->name, &n);
	return r;
}

static int sparse_check_layout(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	const struct vmdk_header *h = &sp->hdr;
	uint64_t gd_sectors = imgfmt_div_round_up((uint64_t)sp->n_gts * 4u, IMGFMT_SECTOR_BYTES);

	if (h->gd_sector == 0 || !inside(h->gd_sector, gd_sectors, sp->file_sectors))
		return imgfmt_err(img, -EINVAL,
				  "%s: gdOffset %llu (grain directory of %u entries) is outside the file of %llu sectors",
				  e->name, (unsigned long long)h->gd_sector, sp->n_gts,
				  (unsigned long long)sp->file_sectors);
	if ((h->flags & VMDK_FLAG_RGD) && h->rgd_sector &&
	    !inside(h->rgd_sector, gd_sectors, sp->file_sectors))
		return imgfmt_err(img, -EINVAL,
				  "%s: rgdOffset %llu is outside the file of %llu sectors", e->name,
				  (unsigned long long)h->rgd_sector, (unsigned long long)sp->file_sectors);
	return 0;
}

static int sparse_open(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_header_disk d;
	struct vmdk_sparse *sp;
	uint64_t file_bytes;
	int r = imgfmt_fd_size(e->fd, &file_bytes);

	if (r == 0)
		r = imgfmt_fd_pread(e->fd, &d, sizeof(d), 0);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the sparse header: %s", e->name,
				  r == -EIO ? "file too short" : strerror(-r));
	sp = e->sp = calloc(1, sizeof(*sp));
	if (!sp)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	sp->file_sectors = imgfmt_div_round_up(file_bytes, IMGFMT_SECTOR_BYTES);
	vmdk_header_decode(&d, &sp->hdr);
	r = header_check_fields(img, e->name, &sp->hdr);
	if (r == 0 && sp->hdr.gd_sector == VMDK_GD_AT_END)
		r = sparse_read_footer(img, e);
	if (r < 0)
		return r;
	sp->grain_sectors = (uint32_t)sp->hdr.grain_sectors;
	sp->compressed = sp->hdr.flags & VMDK_FLAG_COMPRESSED;
	sp->markers = sp->compressed && (sp->hdr.flags & VMDK_FLAG_MARKERS);
	sp->n_gts = vmdk_n_gts(sp->hdr.capacity_sectors, sp->grain_sectors);
	sp->next_sector = sp->file_sectors;
	r = sparse_check_layout(img, e);
	if (r < 0)
		return r;
	sp->gd = calloc(sp->n_gts, 4);
	if (!sp->gd)
		return imgfmt_err(img, -ENOMEM, "out of memory for %u grain directory entries", sp->n_gts);
	r = read_table(img, e->fd, sp->gd, sp->n_gts, sp->hdr.gd_sector, "the grain directory");
	return r < 0 ? r : sparse_load_gts(img, e);
}

static void sparse_free(struct vmdk_sparse *sp)
{
	if (!sp)
		return;
	free(sp->gd);
	free(sp->rgd);
	for (uint32_t i = 0; sp->gt && !sp->gt_mem && i < sp->n_gts; i++)
		if (sp->gt[i] != sp->gt_zero)
			free(sp->gt[i]);
	free(sp->gt_zero);
	free(sp->gt);
	free(sp->gt_mem);
	free(sp->gt_dirty);
	free(sp);
}

/* ---- extents from a descriptor ---- */

/* An extent's file, confined to the descriptor's directory (confine.c). */
static int open_extent_file(struct imgfmt_image *img, struct vmdk_extent *e, const char *file)
{
	int r = imgfmt_confine_open(img, "extent file", file, img->writable, &e->fd, NULL, NULL);

	if (r < 0)
		return r;
	e->own_fd = true;
	return 0;
}

static int flat_check(struct imgfmt_image *img, struct vmdk_extent *e)
{
	uint64_t file_bytes, need;
	int r = imgfmt_fd_size(e->fd, &file_bytes);

	if (r < 0)
		return imgfmt_err(img, r, "%s: size: %s", e->name, strerror(-r));
	need = (e->file_offset_sectors + e->sectors) * IMGFMT_SECTOR_BYTES;
	if (file_bytes < need)
		return imgfmt_err(img, -EINVAL,
				  "extent file %s has %llu bytes, its descriptor line needs %llu",
				  e->name, (unsigned long long)file_bytes, (unsigned long long)need);
	return 0;
}

static int open_desc_extent(struct imgfmt_image *img, struct vmdk_extent *e,
			    const struct vmdk_desc_extent *de)
{
	int r;

	e->kind = de->kind;
	e->sectors = de->sectors;
	e->file_offset_sectors = de->offset_sectors;
	snprintf(e->name, sizeof(e->name), "%s", de->file ? de->file : "(zero)");
	if (de->access == VMDK_ACCESS_NOACCESS)
		return imgfmt_err(img, -EACCES, "extent %s is NOACCESS", e->name);
	if (de->kind == VMDK_EXTENT_ZERO)
		return 0;
	r = open_extent_file(img, e, de->file);
	if (r < 0)
		return r;
	if (de->kind == VMDK_EXTENT_FLAT)
		return flat_check(img, e);
	r = sparse_open(img, e);
	if (r == 0 && e->sp->hdr.capacity_sectors < e->sectors)
		r = imgfmt_err(img, -EINVAL,
			       "extent %s: descriptor says %llu sectors, its sparse header capacity is %llu",
			       e->name, (unsigned long long)e->sectors,
			       (unsigned long long)e->sp->hdr.capacity_sectors);
	return r;
}

static int open_extents(struct imgfmt_image *img, struct vmdk_state *st)
{
	uint64_t start = 0;
	int r = 0;

	st->ext = calloc(st->desc.n_ext, sizeof(*st->ext));
	if (!st->ext)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < st->desc.n_ext && r == 0; i++) {
		st->ext[i].fd = -1;
		st->ext[i].start_sectors = start;
		st->n_ext = i + 1;
		r = open_desc_extent(img, &st->ext[i], &st->desc.ext[i]);
		start += st->desc.ext[i].sectors;
	}
	return r;
}

/* ---- open ---- */

static int read_text(struct imgfmt_image *img, int fd, uint64_t off, uint64_t len, char **out)
{
	char *buf;
	int r;

	if (len > VMDK_DESC_MAX_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: descriptor of %llu bytes exceeds %u", img->path,
				  (unsigned long long)len, VMDK_DESC_MAX_BYTES);
	buf = malloc(len + 1);
	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = imgfmt_fd_pread(fd, buf, len, off);
	if (r < 0) {
		free(buf);
		return imgfmt_err(img, r, "%s: reading the descriptor: %s", img->path, strerror(-r));
	}
	buf[len] = 0;
	*out = buf;
	return 0;
}

static int parse_desc(struct imgfmt_image *img, struct vmdk_state *st, const char *text,
		      size_t len)
{
	char msg[IMGFMT_ERRMSG_BYTES - 64];
	int r = vmdk_desc_parse(text, len, &st->desc, msg, sizeof(msg));

	if (r < 0)
		return imgfmt_err(img, r, "%s: %s", img->path, msg);
	return 0;
}

/* monolithicSparse / streamOptimized: the file is the one extent; its
 * descriptor (if any) only describes it. */
static int open_embedded(struct imgfmt_image *img, struct vmdk_state *st)
{
	struct vmdk_extent *e;
	char *text = NULL;
	int r;

	st->embedded = true;
	st->ext = calloc(1, sizeof(*st->ext));
	if (!st->ext)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	st->n_ext = 1;
	e = &st->ext[0];
	e->kind = VMDK_EXTENT_SPARSE;
	e->fd = img->fd;
	snprintf(e->name, sizeof(e->name), "%s", img->path);
	r = sparse_open(img, e);
	if (r < 0)
		return r;
	e->sectors = e->sp->hdr.capacity_sectors;
	if (e->sp->hdr.desc_sector == 0 || e->sp->hdr.desc_sectors == 0)
		return 0;
	if (!inside(e->sp->hdr.desc_sector, e->sp->hdr.desc_sectors, e->sp->file_sectors))
		return imgfmt_err(img, -EINVAL,
				  "%s: descriptorOffset %llu + descriptorSize %llu is outside the file",
				  img->path, (unsigned long long)e->sp->hdr.desc_sector,
				  (unsigned long long)e->sp->hdr.desc_sectors);
	r = read_text(img, img->fd, e->sp->hdr.desc_sector * IMGFMT_SECTOR_BYTES,
		      e->sp->hdr.desc_sectors * IMGFMT_SECTOR_BYTES, &text);
	if (r == 0)
		r = parse_desc(img, st, text, e->sp->hdr.desc_sectors * IMGFMT_SECTOR_BYTES);
	free(text);
	return r;
}

static int open_descriptor_file(struct imgfmt_image *img, struct vmdk_state *st)
{
	uint64_t len;
	char *text = NULL;
	int r = imgfmt_fd_size(img->fd, &len);

	if (r < 0)
		return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	r = read_text(img, img->fd, 0, len, &text);
	if (r == 0)
		r = parse_desc(img, st, text, len);
	free(text);
	return r < 0 ? r : open_extents(img, st);
}

static int check_writable(struct imgfmt_image *img, struct vmdk_state *st)
{
	if (st->desc.parent_hint)
		return imgfmt_err(img, -EROFS, "%s: delta disks (parentFileNameHint) are read-only here",
				  img->path);
	for (unsigned i = 0; i < st->n_ext; i++) {
		struct vmdk_extent *e = &st->ext[i];
		if (e->kind == VMDK_EXTENT_ZERO)
			return imgfmt_err(img, -EROFS, "%s: ZERO extents cannot be written", img->path);
		if (!st->embedded && st->desc.ext[i].access != VMDK_ACCESS_RW)
			return imgfmt_err(img, -EROFS, "%s: extent %s is read-only (RDONLY)", img->path,
					  e->name);
		if (e->kind != VMDK_EXTENT_SPARSE)
			continue;
		if (e->sp->compressed)
			return imgfmt_err(img, -EROFS,
					  "%s: compressed (streamOptimized) extents cannot be modified; convert instead",
					  e->name);
		if ((e->sp->hdr.flags & VMDK_FLAG_RGD) && e->sp->hdr.rgd_sector) {
			int r = sparse_load_rgd(img, e);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void set_geometry(struct imgfmt_image *img, struct vmdk_state *st)
{
	img->size_bytes = 0;
	img->cluster_bytes = 4096;
	for (unsigned i = 0; i < st->n_ext; i++) {
		img->size_bytes += st->ext[i].sectors * IMGFMT_SECTOR_BYTES;
		if (st->ext[i].sp && img->cluster_bytes == 4096)
			img->cluster_bytes = st->ext[i].sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	}
	if (img->cluster_bytes < IMGFMT_SECTOR_BYTES)
		img->cluster_bytes = IMGFMT_SECTOR_BYTES;
}

static int vmdk_open(struct imgfmt_image *img)
{
	struct vmdk_state *st = calloc(1, sizeof(*st));
	uint8_t head[32] = { 0 };
	int r;

	if (!st)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = st;
	r = imgfmt_fd_pread_zfill(img->fd, head, sizeof(head), 0);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the header: %s", img->path, strerror(-r));
	if (!memcmp(head, "COWD", 4))
		return imgfmt_err(img, -ENOTSUP, "%s: VMDK3 (COWD) sparse extents are not supported",
				  img->path);
	if (imgfmt_get_le32(head) == VMDK_MAGIC)
		r = open_embedded(img, st);
	else
		r = open_descriptor_file(img, st);
	if (r == 0 && img->writable)
		r = check_writable(img, st);
	if (r < 0)
		return r;
	set_geometry(img, st);
	if (st->desc.parent_hint && !(img->flags & IMGFMT_OPEN_NO_BACKING))
		return imgfmt_open_backing(img, st->desc.parent_hint, NULL);
	return 0;
}

static int vmdk_probe(const struct imgfmt_probe_buf *pb)
{
	static const char desc_magic[] = "# Disk DescriptorFile";

	if (pb->head_bytes >= 4 && imgfmt_get_le32(pb->head) == VMDK_MAGIC)
		return 100;
	if (pb->head_bytes >= 4 && !memcmp(pb->head, "COWD", 4))
		return 100;
	if (pb->head_bytes >= sizeof(desc_magic) - 1 &&
	    !memcmp(pb->head, desc_magic, sizeof(desc_magic) - 1))
		return 100;
	return 0;
}

static void vmdk_close(struct imgfmt_image *img)
{
	struct vmdk_state *st = img->priv;

	for (unsigned i = 0; i < st->n_ext; i++) {
		if (st->ext[i].own_fd && st->ext[i].fd >= 0)
			close(st->ext[i].fd);
		sparse_free(st->ext[i].sp);
	}
	for (unsigned i = 0; st->info_paths && i < st->n_ext; i++)
		free(st->info_paths[i]);
	free(st->info_paths);
	free(st->info_files);
	free(st->ext);
	vmdk_desc_free(&st->desc);
	vmdk_stream_free(st);
	free(st->grain_buf);
	free(st->zbuf);
	free(st);
	img->priv = NULL;
}

/* ---- reading ---- */

/* The extent holding virtual sector s (binary search; extents are sorted). */
static struct vmdk_extent *find_extent(struct vmdk_state *st, uint64_t sector)
{
	unsigned lo = 0, hi = st->n_ext;

	while (hi - lo > 1) {
		unsigned mid = lo + (hi - lo) / 2;
		if (st->ext[mid].start_sectors <= sector)
			lo = mid;
		else
			hi = mid;
	}
	return &st->ext[lo];
}

uint32_t vmdk_gte(const struct vmdk_sparse *sp, uint64_t grain)
{
	const uint32_t *gt = sp->gt[grain / VMDK_GTES_PER_GT];

	return gt ? gt[grain % VMDK_GTES_PER_GT] : 0;
}

static int ensure_buffers(struct imgfmt_image *img, struct vmdk_state *st, uint32_t grain_bytes)
{
	size_t zcap = 2u * grain_bytes + 2u * IMGFMT_SECTOR_BYTES;

	if (st->grain_buf_bytes < grain_bytes) {
		free(st->grain_buf);
		st->grain_buf = malloc(grain_bytes);
		st->grain_buf_bytes = st->grain_buf ? grain_bytes : 0;
		st->cached_ext = NULL;
	}
	if (st->zbuf_bytes < zcap) {
		free(st->zbuf);
		st->zbuf = malloc(zcap);
		st->zbuf_bytes = st->zbuf ? zcap : 0;
	}
	if (!st->grain_buf || !st->zbuf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	return 0;
}

/* Read the compressed bytes of a grain into st->zbuf; returns their length. */
static long read_compressed(struct imgfmt_image *img, struct vmdk_state *st,
			    const struct vmdk_extent *e, uint64_t grain, uint32_t gte)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t off = (uint64_t)gte * IMGFMT_SECTOR_BYTES, file_bytes = sp->file_sectors * 512u;
	uint8_t hdr[VMDK_GRAIN_MARKER_BYTES];
	uint64_t lba, want = grain * sp->grain_sectors;
	uint32_t size;
	int r;

	if (!sp->markers) {
		size_t n = file_bytes - off < st->zbuf_bytes ? file_bytes - off : st->zbuf_bytes;
		r = imgfmt_fd_pread(e->fd, st->zbuf, n, off);
		return r < 0 ? imgfmt_err(img, r, "%s: reading grain %llu: %s", e->name,
					  (unsigned long long)grain, strerror(-r)) : (long)n;
	}
	r = imgfmt_fd_pread(e->fd, hdr, sizeof(hdr), off);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the grain marker at sector %u: %s", e->name,
				  gte, strerror(-r));
	lba = imgfmt_get_le64(hdr);
	size = imgfmt_get_le32(hdr + 8);
	if (lba != want)
		return imgfmt_err(img, -EINVAL, "%s: grain marker at sector %u has lba %llu, expected %llu",
				  e->name, gte, (unsigned long long)lba, (unsigned long long)want);
	if (size == 0 || size > st->zbuf_bytes)
		return imgfmt_err(img, -EINVAL, "%s: grain marker at sector %u has size %u (1..%zu)",
				  e->name, gte, size, st->zbuf_bytes);
	if (off + sizeof(hdr) + size > file_bytes)
		return imgfmt_err(img, -EINVAL,
				  "%s: compressed grain of %u bytes at sector %u runs past the end of the file",
				  e->name, size, gte);
	r = imgfmt_fd_pread(e->fd, st->zbuf, size, off + sizeof(hdr));
	return r < 0 ? imgfmt_err(img, r, "%s: reading grain %llu: %s", e->name,
				  (unsigned long long)grain, strerror(-r)) : (long)size;
}

/* Decompress a grain into st->grain_buf (a one-grain cache). */
static int load_compressed(struct imgfmt_image *img, struct vmdk_state *st,
			   const struct vmdk_extent *e, uint64_t grain, uint32_t gte)
{
	uint32_t grain_bytes = e->sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	long n, got;
	int r;

	if (st->cached_ext == e && st->cached_grain == grain)
		return 0;
	r = ensure_buffers(img, st, grain_bytes);
	if (r < 0)
		return r;
	n = read_compressed(img, st, e, grain, gte);
	if (n < 0)
		return (int)n;
	st->cached_ext = NULL;
	got = imgfmt_zlib_decompress(st->zbuf, (size_t)n, st->grain_buf, grain_bytes);
	if (got < 0)
		return imgfmt_err(img, -EIO, "%s: grain %llu at sector %u: corrupt compressed data",
				  e->name, (unsigned long long)grain, gte);
	memset(st->grain_buf + got, 0, grain_bytes - (size_t)got);
	st->cached_ext = e;
	st->cached_grain = grain;
	return 0;
}

static int read_grain_run(struct imgfmt_image *img, const struct vmdk_extent *e, uint8_t *buf,
			  uint64_t len, uint32_t gte, uint64_t in_grain)
{
	uint64_t off = (uint64_t)gte * IMGFMT_SECTOR_BYTES + in_grain;
	int r;

	if (gte >= e->sp->file_sectors && gte >= e->sp->next_sector)
		return imgfmt_err(img, -EINVAL,
				  "%s: grain table entry points to sector %u, past the end of the file (%llu sectors)",
				  e->name, gte, (unsigned long long)e->sp->file_sectors);
	r = imgfmt_fd_pread_zfill(e->fd, buf, len, off);
	if (r < 0)
		return imgfmt_err(img, r, "%s: read at %llu: %s", e->name, (unsigned long long)off,
				  strerror(-r));
	return 0;
}

/* Grains g.. that are allocated uncompressed and contiguous on disk. */
static uint64_t contiguous_bytes(const struct vmdk_sparse *sp, uint64_t grain, uint32_t gte,
				 uint64_t in_grain, uint64_t len)
{
	uint64_t grain_bytes = (uint64_t)sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t n = grain_bytes - in_grain;

	while (n < len && vmdk_gte(sp, grain + 1) == gte + sp->grain_sectors) {
		grain++;
		gte += sp->grain_sectors;
		n += grain_bytes;
	}
	return n < len ? n : len;
}

/* An unallocated range of a delta disk: the parent's data (zeroes past its end). */
static int read_backing(struct imgfmt_image *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t size = imgfmt_size_bytes(img->backing);
	uint64_t n = off >= size ? 0 : (size - off < len ? size - off : len);
	int r = n ? imgfmt_pread(img->backing, buf, n, off) : 0;

	if (r < 0)
		return imgfmt_err(img, r, "parent %s: %s", imgfmt_path(img->backing),
				  imgfmt_errmsg(img->backing));
	memset(buf + n, 0, len - n);
	return 0;
}

static int sparse_read(struct imgfmt_image *img, struct vmdk_state *st, const struct vmdk_extent *e,
		       uint8_t *buf, uint64_t len, uint64_t off)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t grain_bytes = (uint64_t)sp->grain_sectors * IMGFMT_SECTOR_BYTES;

	while (len > 0) {
		uint64_t grain = off / grain_bytes, in_grain = off % grain_bytes;
		uint64_t n = grain_bytes - in_grain < len ? grain_bytes - in_grain : len;
		uint32_t gte = vmdk_gte(sp, grain);
		int r = 0;
		if (vmdk_stream_staged(st, e, grain)) {
			memcpy(buf, vmdk_stream_stage(st) + in_grain, n);
		} else if (gte == VMDK_GTE_HOLE && img->backing) {
			r = read_backing(img, buf, n, e->start_sectors * IMGFMT_SECTOR_BYTES + off);
		} else if (!vmdk_gte_allocated(sp, gte)) {
			memset(buf, 0, n);
		} else if (sp->compressed) {
			r = load_compressed(img, st, e, grain, gte);
			if (r == 0)
				memcpy(buf, st->grain_buf + in_grain, n);
		} else {
			n = contiguous_bytes(sp, grain, gte, in_grain, len);
			r = read_grain_run(img, e, buf, n, gte, in_grain);
		}
		if (r < 0)
			return r;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int extent_read(struct imgfmt_image *img, struct vmdk_state *st, const struct vmdk_extent *e,
		       uint8_t *buf, uint64_t len, uint64_t off)
{
	int r;

	switch (e->kind) {
	case VMDK_EXTENT_ZERO:
		memset(buf, 0, len);
		return 0;
	case VMDK_EXTENT_FLAT:
		r = imgfmt_fd_pread(e->fd, buf, len, e->file_offset_sectors * IMGFMT_SECTOR_BYTES + off);
		if (r < 0)
			return imgfmt_err(img, r, "%s: read of %llu bytes at %llu: %s", e->name,
					  (unsigned long long)len, (unsigned long long)off, strerror(-r));
		return 0;
	case VMDK_EXTENT_SPARSE:
		return sparse_read(img, st, e, buf, len, off);
	}
	return -EINVAL;
}

/* Split a virtual request at extent boundaries and hand each piece to fn. */
typedef int (*extent_io_fn)(struct imgfmt_image *img, struct vmdk_state *st,
			    struct vmdk_extent *e, uint8_t *buf, uint64_t len, uint64_t off);

static int for_each_extent(struct imgfmt_image *img, uint8_t *buf, uint64_t len, uint64_t off,
			   extent_io_fn fn)
{
	struct vmdk_state *st = img->priv;

	while (len > 0) {
		struct vmdk_extent *e = find_extent(st, off / IMGFMT_SECTOR_BYTES);
		uint64_t e_off = off - e->start_sectors * IMGFMT_SECTOR_BYTES;
		uint64_t e_left = e->sectors * IMGFMT_SECTOR_BYTES - e_off;
		uint64_t n = len < e_left ? len : e_left;
		int r = fn(img, st, e, buf, n, e_off);
		if (r < 0)
			return r;
		if (buf)
			buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int read_fn(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		   uint8_t *buf, uint64_t len, uint64_t off)
{
	return extent_read(img, st, e, buf, len, off);
}

static int vmdk_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	return for_each_extent(img, buf, len, off, read_fn);
}

/* ---- block status ---- */

static enum imgfmt_extent_type gte_type(const struct vmdk_sparse *sp, uint32_t gte)
{
	if (gte == VMDK_GTE_HOLE)
		return IMGFMT_EXTENT_HOLE;
	return vmdk_gte_zeroed(sp, gte) ? IMGFMT_EXTENT_ZERO : IMGFMT_EXTENT_DATA;
}

static enum imgfmt_extent_type grain_type(struct vmdk_state *st, const struct vmdk_extent *e,
					  uint64_t grain)
{
	if (vmdk_stream_staged(st, e, grain))
		return IMGFMT_EXTENT_DATA;
	return gte_type(e->sp, vmdk_gte(e->sp, grain));
}

/* Sector of a grain's data as is in the extent file, or 0 (not data,
 * compressed, or not written yet). */
static uint64_t grain_host_sector(struct vmdk_state *st, const struct vmdk_extent *e,
				  uint64_t grain)
{
	uint32_t gte = vmdk_gte(e->sp, grain);

	if (e->sp->compressed || vmdk_stream_staged(st, e, grain) || gte_type(e->sp, gte) != IMGFMT_EXTENT_DATA)
		return 0;
	return gte;
}

/* Bytes from off (inside the extent) that share one type and, for data,
 * follow each other in the file, up to len; *host: where the first lies. */
static uint64_t sparse_status(struct vmdk_state *st, const struct vmdk_extent *e, uint64_t off,
			      uint64_t len, enum imgfmt_extent_type *type, uint64_t *host)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t grain_bytes = (uint64_t)sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t grain = off / grain_bytes, n = grain_bytes - off % grain_bytes;
	uint64_t last = (off + len - 1) / grain_bytes;
	uint64_t sector = grain_host_sector(st, e, grain);

	*type = grain_type(st, e, grain);
	*host = sector ? sector * IMGFMT_SECTOR_BYTES + off % grain_bytes : IMGFMT_NO_HOST_OFFSET;
	while (n < len && grain < last) {
		grain++;
		const uint32_t *gt = sp->gt[grain / VMDK_GTES_PER_GT];
		if ((!gt || gt == sp->gt_zero) && *type == IMGFMT_EXTENT_HOLE &&
		    grain % VMDK_GTES_PER_GT == 0 && !vmdk_stream_any_staged(st, e)) {
			n += grain_bytes * VMDK_GTES_PER_GT; /* a whole absent or zero table */
			grain += VMDK_GTES_PER_GT - 1;
			continue;
		}
		if (grain_type(st, e, grain) != *type)
			break;
		uint64_t next = grain_host_sector(st, e, grain);
		if (!sector != !next || (sector && next != sector + sp->grain_sectors))
			break;
		sector = next;
		n += grain_bytes;
	}
	return n < len ? n : len;
}

/* A hole of a delta disk: as the parent has it (zeroes past its end). */
static int parent_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			 struct imgfmt_extent *ext)
{
	uint64_t psize = imgfmt_size_bytes(img->backing);
	int r;

	if (off >= psize)
		return 0;
	r = imgfmt_block_status(img->backing, off, len < psize - off ? len : psize - off, ext);
	if (r < 0)
		return imgfmt_err(img, r, "parent %s: %s", imgfmt_path(img->backing),
				  imgfmt_errmsg(img->backing));
	ext->depth++;
	return 0;
}

static int vmdk_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			     struct imgfmt_extent *ext)
{
	struct vmdk_state *st = img->priv;
	struct vmdk_extent *e = find_extent(st, off / IMGFMT_SECTOR_BYTES);
	uint64_t e_off = off - e->start_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t e_left = e->sectors * IMGFMT_SECTOR_BYTES - e_off;
	uint64_t n = len < e_left ? len : e_left;

	ext->length_bytes = n;
	if (e->kind == VMDK_EXTENT_ZERO) {
		ext->type = IMGFMT_EXTENT_ZERO;
	} else if (e->kind == VMDK_EXTENT_FLAT) {
		ext->type = IMGFMT_EXTENT_DATA;
		ext->host_offset_bytes = e->file_offset_sectors * IMGFMT_SECTOR_BYTES + e_off;
	} else {
		ext->length_bytes = sparse_status(st, e, e_off, n, &ext->type, &ext->host_offset_bytes);
	}
	if (ext->type == IMGFMT_EXTENT_HOLE && img->backing) /* the parent decides */
		return parent_status(img, off, ext->length_bytes, ext);
	return 0;
}

/* ---- writing (monolithicSparse and flat extents) ---- */

/* Append k grains at the end of the extent file; returns the first sector. */
static int sparse_alloc(struct imgfmt_image *img, struct vmdk_extent *e, uint64_t k,
			uint32_t *sector)
{
	struct vmdk_sparse *sp = e->sp;
	uint64_t end = sp->next_sector + k * sp->grain_sectors;

	if (end > UINT32_MAX)
		return imgfmt_err(img, -EFBIG,
				  "%s: grain at sector %llu is past the 2 TiB limit of a sparse extent",
				  e->name, (unsigned long long)sp->next_sector);
	*sector = (uint32_t)sp->next_sector;
	sp->next_sector = end;
	return 0;
}

static int need_gt(struct imgfmt_image *img, struct vmdk_extent *e, uint64_t grain)
{
	struct vmdk_sparse *sp = e->sp;
	uint32_t gti = (uint32_t)(grain / VMDK_GTES_PER_GT);

	if (sp->gt[gti])
		return 0;
	return imgfmt_err(img, -ENOTSUP,
			  "%s: grain table %u is not allocated; writing here is not supported",
			  e->name, gti);
}

static void set_gte(struct vmdk_sparse *sp, uint64_t grain, uint32_t v)
{
	sp->gt[grain / VMDK_GTES_PER_GT][grain % VMDK_GTES_PER_GT] = v;
	sp->gt_dirty[grain / VMDK_GTES_PER_GT] = true;
}

/* Unallocated grains from grain on, covered by a write of len at in_grain. */
static uint64_t unallocated_run(const struct vmdk_sparse *sp, uint64_t grain, uint64_t in_grain,
				uint64_t len, uint64_t *n_bytes)
{
	uint64_t grain_bytes = (uint64_t)sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t n = grain_bytes - in_grain, k = 1;

	while (n < len && !vmdk_gte_allocated(sp, vmdk_gte(sp, grain + k)) &&
	       sp->gt[(grain + k) / VMDK_GTES_PER_GT]) {
		n += grain_bytes;
		k++;
	}
	*n_bytes = n < len ? n : len;
	return k;
}

static int write_at(struct imgfmt_image *img, const struct vmdk_extent *e, const void *buf,
		    uint64_t len, uint64_t off)
{
	int r = vmdk_data_pwrite(img, e, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: write of %llu bytes at %llu: %s", e->name,
				  (unsigned long long)len, (unsigned long long)off, strerror(-r));
	return 0;
}

/* One pwrite for a run of grains: either already allocated and contiguous,
 * or unallocated and allocated together at the end of the file. */
static int sparse_write_run(struct imgfmt_image *img, struct vmdk_extent *e, const uint8_t *buf,
			    uint64_t len, uint64_t off, uint64_t *done)
{
	struct vmdk_sparse *sp = e->sp;
	uint64_t grain_bytes = (uint64_t)sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t grain = off / grain_bytes, in_grain = off % grain_bytes, k;
	uint32_t gte = vmdk_gte(sp, grain);
	int r = need_gt(img, e, grain);

	if (r < 0)
		return r;
	if (vmdk_gte_allocated(sp, gte)) {
		*done = contiguous_bytes(sp, grain, gte, in_grain, len);
		return write_at(img, e, buf, *done, (uint64_t)gte * IMGFMT_SECTOR_BYTES + in_grain);
	}
	k = unallocated_run(sp, grain, in_grain, len, done);
	r = sparse_alloc(img, e, k, &gte);
	for (uint64_t i = 0; r == 0 && i < k; i++)
		set_gte(sp, grain + i, gte + (uint32_t)(i * sp->grain_sectors));
	return r < 0 ? r : write_at(img, e, buf, *done, (uint64_t)gte * IMGFMT_SECTOR_BYTES + in_grain);
}

static int write_fn(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		    uint8_t *buf, uint64_t len, uint64_t off)
{
	if (e->kind == VMDK_EXTENT_FLAT)
		return write_at(img, e, buf, len, e->file_offset_sectors * IMGFMT_SECTOR_BYTES + off);
	if (e->kind != VMDK_EXTENT_SPARSE)
		return imgfmt_err(img, -EROFS, "%s: extent cannot be written", e->name);
	if (e->sp->compressed)
		return vmdk_stream_write(img, st, e, buf, len, off);
	while (len > 0) {
		uint64_t n;
		int r = sparse_write_run(img, e, buf, len, off, &n);
		if (r < 0)
			return r;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vmdk_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	return for_each_extent(img, (uint8_t *)(uintptr_t)buf, len, off, write_fn);
}

/* Zeroes: unallocated grains stay unallocated; allocated ones get zero bytes. */
static int zero_fn(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		   uint8_t *buf, uint64_t len, uint64_t off)
{
	static const uint8_t zeroes[64 * 1024];
	uint64_t grain_bytes;

	(void)buf;
	if (e->kind == VMDK_EXTENT_SPARSE && e->sp->compressed)
		return vmdk_stream_zero(img, st, e, len, off);
	grain_bytes = e->kind == VMDK_EXTENT_SPARSE ? (uint64_t)e->sp->grain_sectors * 512u
						    : sizeof(zeroes);
	while (len > 0) {
		uint64_t n = grain_bytes - off % grain_bytes;
		int r = 0;
		n = n < len ? n : len;
		n = n < sizeof(zeroes) ? n : sizeof(zeroes);
		if (e->kind != VMDK_EXTENT_SPARSE || vmdk_gte_allocated(e->sp, vmdk_gte(e->sp, off / grain_bytes)))
			r = write_fn(img, st, e, (uint8_t *)(uintptr_t)zeroes, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int vmdk_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	return for_each_extent(img, NULL, len, off, zero_fn);
}

/* Write a table (little-endian) at sector. */
static int write_table(struct imgfmt_image *img, const struct vmdk_extent *e, const uint32_t *t,
		       uint32_t n, uint64_t sector)
{
	uint32_t *le = malloc((size_t)n * 4u);
	int r;

	if (!le)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		le[i] = htole32(t[i]);
	r = write_at(img, e, le, (size_t)n * 4u, sector * IMGFMT_SECTOR_BYTES);
	free(le);
	return r;
}

/* Dirty GTs go to both the GD's and the redundant GD's table. */
static int sparse_flush_tables(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	int r = 0;

	for (uint32_t i = 0; i < sp->n_gts && r == 0; i++) {
		if (!sp->gt_dirty[i])
			continue;
		r = write_table(img, e, sp->gt[i], VMDK_GTES_PER_GT, sp->gd[i]);
		if (r == 0 && sp->rgd && sp->rgd[i])
			r = write_table(img, e, sp->gt[i], VMDK_GTES_PER_GT, sp->rgd[i]);
		sp->gt_dirty[i] = r < 0;
	}
	if (r == 0 && sp->next_sector > sp->file_sectors) {
		if (ftruncate(e->fd, (off_t)(sp->next_sector * IMGFMT_SECTOR_BYTES)) < 0)
			return imgfmt_err(img, -errno, "%s: extending to %llu sectors: %s", e->name,
					  (unsigned long long)sp->next_sector, strerror(errno));
		sp->file_sectors = sp->next_sector;
	}
	return r;
}

static int sync_fd(struct imgfmt_image *img, const struct vmdk_extent *e)
{
	if (fdatasync(e->fd) < 0 && errno != EINVAL)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", e->name, strerror(errno));
	return 0;
}

static int flush_all(struct imgfmt_image *img, bool finishing)
{
	struct vmdk_state *st = img->priv;
	int r = 0;

	for (unsigned i = 0; i < st->n_ext && r == 0; i++) {
		struct vmdk_extent *e = &st->ext[i];
		if (e->kind == VMDK_EXTENT_ZERO)
			continue;
		if (e->sp && e->sp->compressed)
			r = finishing ? vmdk_stream_finish(img, st, e) : 0;
		else if (e->sp)
			r = sparse_flush_tables(img, e);
		if (r == 0)
			r = sync_fd(img, e);
	}
	return r;
}

static int vmdk_flush(struct imgfmt_image *img)
{
	return flush_all(img, false);
}

static int vmdk_finish(struct imgfmt_image *img)
{
	return flush_all(img, true);
}

static const char *const vmdk_magic[] = { "KDMV", "COWD", "# Disk DescriptorFile", NULL };

const struct imgfmt_driver imgfmt_vmdk_driver = {
	.name = "vmdk",
	.description = "VMware virtual disk (monolithicSparse, streamOptimized, flat, split)",
	.magic = vmdk_magic,
	.probe = vmdk_probe,
	.open = vmdk_open,
	.create_opts = vmdk_create_opts,
	.create = vmdk_create,
	.measure = vmdk_measure,
	.pread = vmdk_pread,
	.pwrite = vmdk_pwrite,
	.write_zeroes = vmdk_write_zeroes,
	.block_status = vmdk_block_status,
	.backing_format = true,
	.flush = vmdk_flush,
	.finish = vmdk_finish,
	.close = vmdk_close,
	.info = vmdk_info,
	.check = vmdk_check,
	.compress = vmdk_compress,
	.pwrite_compressed = vmdk_pwrite_compressed,
};
