/* VMDK creation (monolithicSparse, streamOptimized) and the streamOptimized
 * writer.
 *
 * monolithicSparse layout (as VMware and QEMU lay it out): header, embedded
 * descriptor (20 sectors), redundant GD, its GTs, GD, its GTs, then grains
 * from the first grain-aligned sector.  GTs are preallocated; the GD and RGD
 * are written at create, the GTs at flush/finish.
 *
 * streamOptimized: header (gdOffset = GD_AT_END), descriptor, then grains,
 * each "lba(8) size(4) zlib-stream" padded to a sector, appended in the order
 * they arrive (each grain once; all-zero grains are not written).  At finish:
 * GT marker + GT for every table holding a grain, GD marker + GD, footer
 * marker + footer (the header with the real gdOffset), end-of-stream marker. */
#include "vmdk_int.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define STREAM_TRAILER_BATCH 256u  /* GTs per trailer write */

struct vmdk_stream {
	uint8_t *stage;       /* a grain written in pieces */
	uint64_t stage_grain;
	bool staged;
	uint8_t *wbuf;        /* grain marker + compressed data */
	size_t wbuf_bytes;
	uint8_t *gtbuf;       /* GT marker + GT */
	uint32_t last_gt;     /* table of the last grain appended */
	bool finished;
};

struct create_opts {
	bool stream;
	const char *adapter;
	unsigned hw_version;
	uint32_t grain_sectors;
};

enum { K_SUBFORMAT, K_ADAPTER_TYPE, K_HWVERSION, K_GRAIN_SIZE };
static const char *const vmdk_subformats[] = { "monolithicSparse", "streamOptimized", NULL };
static const char *const adapters[] = { "ide", "lsilogic", "buslogic", "legacyESX", "pvscsi", NULL };
const struct imgfmt_opt_desc vmdk_create_opts[] = {
	[K_SUBFORMAT] = { "subformat", IMGFMT_OPT_ENUM, "monolithicSparse",
			  "VMDK type (streamOptimized: compressed grains, for OVA/OVF)",
			  .choices = vmdk_subformats },
	[K_ADAPTER_TYPE] = { "adapter_type", IMGFMT_OPT_ENUM, "ide",
			     "virtual adapter type recorded in the descriptor", .choices = adapters },
	[K_HWVERSION] = { "hwversion", IMGFMT_OPT_NUMBER, "4", "VMware virtual hardware version",
			  .min = 1, .max = 99 },
	[K_GRAIN_SIZE] = { "grain_size", IMGFMT_OPT_SIZE, "64K", "grain (allocation unit) size",
			   .min = 4096, .max = VMDK_MAX_GRAIN_SECTORS * IMGFMT_SECTOR_BYTES, .pow2 = true },
	{ 0 },
};

static void take_opts(const struct imgfmt_optval *ov, struct create_opts *co)
{
	co->stream = ov[K_SUBFORMAT].u == 1;
	co->adapter = adapters[ov[K_ADAPTER_TYPE].u];
	co->hw_version = (unsigned)ov[K_HWVERSION].u;
	co->grain_sectors = (uint32_t)(ov[K_GRAIN_SIZE].u / IMGFMT_SECTOR_BYTES);
}

/* ---- the fixed part: header and descriptor ---- */

static int write_head(struct imgfmt_image *img, const struct vmdk_header *h,
		      const struct create_opts *co)
{
	char *copy = strdup(img->path), *base;
	uint8_t *buf = calloc(1 + VMDK_DESC_SECTORS, IMGFMT_SECTOR_BYTES);
	struct vmdk_desc_params p = {
		.create_type = co->stream ? "streamOptimized" : "monolithicSparse",
		.sectors = h->capacity_sectors,
		.adapter_type = co->adapter,
		.hw_version = co->hw_version,
	};
	long n = -ENOMEM;
	int r;

	if (copy && buf) {
		base = basename(copy);
		p.file_name = base;
		n = strpbrk(base, "\"\n\r") ? -EINVAL
					    : vmdk_desc_format(&p, (char *)buf + IMGFMT_SECTOR_BYTES,
							       VMDK_DESC_SECTORS * IMGFMT_SECTOR_BYTES);
	}
	if (n >= 0) {
		vmdk_header_encode(h, (struct vmdk_header_disk *)buf);
		r = imgfmt_fd_pwrite(img->fd, buf, (1 + VMDK_DESC_SECTORS) * IMGFMT_SECTOR_BYTES, 0);
		n = r < 0 ? imgfmt_err(img, r, "%s: writing the header: %s", img->path, strerror(-r)) : 0;
	} else if (n == -EINVAL) {
		n = imgfmt_err(img, n, "%s: the file name cannot be put in a descriptor (quote or newline)",
			       img->path);
	} else {
		n = imgfmt_err(img, (int)n, "%s: cannot build the descriptor", img->path);
	}
	free(copy);
	free(buf);
	return (int)n;
}

/* ---- in-memory state of the one extent ---- */

static int new_state(struct imgfmt_image *img, const struct vmdk_header *h, bool stream)
{
	struct vmdk_state *st = calloc(1, sizeof(*st));
	struct vmdk_sparse *sp;
	struct vmdk_extent *e;

	img->priv = st;
	if (!st || !(st->ext = calloc(1, sizeof(*st->ext))) || !(sp = calloc(1, sizeof(*sp))))
		return imgfmt_err(img, -ENOMEM, "out of memory");
	st->n_ext = 1;
	st->embedded = true;
	e = &st->ext[0];
	e->kind = VMDK_EXTENT_SPARSE;
	e->sectors = h->capacity_sectors;
	e->fd = img->fd;
	e->sp = sp;
	snprintf(e->name, sizeof(e->name), "%s", img->path);
	sp->hdr = *h;
	sp->grain_sectors = (uint32_t)h->grain_sectors;
	sp->compressed = sp->markers = stream;
	sp->n_gts = vmdk_n_gts(h->capacity_sectors, sp->grain_sectors);
	sp->next_sector = sp->file_sectors = h->overhead_sectors;
	sp->gd = calloc(sp->n_gts, 4);
	sp->gt = calloc(sp->n_gts, sizeof(*sp->gt));
	sp->gt_dirty = calloc(sp->n_gts, 1);
	sp->gt_mem = calloc(sp->n_gts, VMDK_GT_BYTES);
	if (!sp->gd || !sp->gt || !sp->gt_dirty || !sp->gt_mem)
		return imgfmt_err(img, -ENOMEM, "out of memory for %u grain tables", sp->n_gts);
	for (uint32_t i = 0; i < sp->n_gts; i++)
		sp->gt[i] = sp->gt_mem + (size_t)i * VMDK_GTES_PER_GT;
	return 0;
}

static int write_le_table(struct imgfmt_image *img, const uint32_t *t, uint32_t n, uint64_t sector)
{
	uint32_t *le = malloc((size_t)n * 4u);
	int r;

	if (!le)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		le[i] = htole32(t[i]);
	r = imgfmt_fd_pwrite(img->fd, le, (size_t)n * 4u, sector * IMGFMT_SECTOR_BYTES);
	free(le);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing a grain directory: %s", img->path, strerror(-r));
	return 0;
}

static int size_file(struct imgfmt_image *img, uint64_t sectors)
{
	if (ftruncate(img->fd, (off_t)(sectors * IMGFMT_SECTOR_BYTES)) < 0)
		return imgfmt_err(img, -errno, "%s: cannot size to %llu sectors: %s", img->path,
				  (unsigned long long)sectors, strerror(errno));
	return 0;
}

/* RGD, its GTs, GD, its GTs; grains start grain-aligned after them. */
/* A monolithicSparse layout: header, descriptor, redundant GD, its GTs,
 * GD, GTs, then grains from overhead_sectors on (a whole grain). */
static void lay_out_sparse(struct vmdk_header *h, uint32_t grain_sectors, uint32_t n_gts)
{
	uint64_t gd_sectors = imgfmt_div_round_up((uint64_t)n_gts * 4u, IMGFMT_SECTOR_BYTES);
	uint64_t rgt = 1 + VMDK_DESC_SECTORS + gd_sectors;

	h->rgd_sector = 1 + VMDK_DESC_SECTORS;
	h->gd_sector = rgt + (uint64_t)n_gts * VMDK_GT_SECTORS;
	h->overhead_sectors = imgfmt_div_round_up(h->gd_sector + gd_sectors + (uint64_t)n_gts * VMDK_GT_SECTORS,
						  grain_sectors) * grain_sectors;
}

static int create_sparse(struct imgfmt_image *img, struct vmdk_header *h, const struct create_opts *co)
{
	uint32_t n_gts = vmdk_n_gts(h->capacity_sectors, co->grain_sectors);
	uint64_t gd_sectors = imgfmt_div_round_up((uint64_t)n_gts * 4u, IMGFMT_SECTOR_BYTES);
	uint64_t rgt = 1 + VMDK_DESC_SECTORS + gd_sectors, gt;
	struct vmdk_sparse *sp;
	int r;

	h->version = 1;
	h->flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD;
	lay_out_sparse(h, co->grain_sectors, n_gts);
	gt = h->gd_sector + gd_sectors;
	r = new_state(img, h, false);
	if (r < 0)
		return r;
	sp = ((struct vmdk_state *)img->priv)->ext[0].sp;
	sp->rgd = calloc(n_gts, 4);
	if (!sp->rgd)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n_gts; i++) {
		sp->gd[i] = (uint32_t)(gt + (uint64_t)i * VMDK_GT_SECTORS);
		sp->rgd[i] = (uint32_t)(rgt + (uint64_t)i * VMDK_GT_SECTORS);
	}
	r = write_head(img, h, co);
	if (r == 0)
		r = write_le_table(img, sp->rgd, n_gts, h->rgd_sector);
	if (r == 0)
		r = write_le_table(img, sp->gd, n_gts, h->gd_sector);
	return r < 0 ? r : size_file(img, h->overhead_sectors);
}

static uint64_t stream_overhead_sectors(uint32_t grain_sectors)
{
	return imgfmt_div_round_up(1 + VMDK_DESC_SECTORS, grain_sectors) * grain_sectors;
}

static int create_stream(struct imgfmt_image *img, struct vmdk_header *h, const struct create_opts *co)
{
	struct vmdk_state *st;
	uint32_t grain_bytes = co->grain_sectors * IMGFMT_SECTOR_BYTES;
	int r;

	h->version = 3;
	h->flags = VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS;
	h->compress_algorithm = VMDK_COMPRESS_DEFLATE;
	h->gd_sector = VMDK_GD_AT_END;
	h->overhead_sectors = stream_overhead_sectors(co->grain_sectors);
	r = new_state(img, h, true);
	if (r < 0)
		return r;
	st = img->priv;
	st->stream = calloc(1, sizeof(*st->stream));
	if (!st->stream)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	st->stream->wbuf_bytes = 2u * grain_bytes + 2u * IMGFMT_SECTOR_BYTES;
	st->stream->wbuf = malloc(st->stream->wbuf_bytes);
	st->stream->stage = malloc(grain_bytes);
	st->stream->gtbuf = malloc(IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES);
	if (!st->stream->wbuf || !st->stream->stage || !st->stream->gtbuf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = write_head(img, h, co);
	return r < 0 ? r : size_file(img, h->overhead_sectors);
}

/* ---- measure ---- */

/* zlib's bound for n bytes that do not compress (its compressBound). */
static uint64_t zlib_bound(uint64_t n)
{
	return n + (n >> 12) + (n >> 14) + (n >> 25) + 13;
}

/* Sparse: the layout above plus whole grains.  Stream: the head, a marker
 * and a compressed grain each (bounded by zlib's worst case), each grain
 * table with its marker, then the GD, footer and end-of-stream markers. */
int vmdk_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
		 struct imgfmt_image *src, struct imgfmt_measure *m)
{
	struct create_opts co;
	struct vmdk_header h = { 0 };
	uint64_t cap = imgfmt_div_round_up(size, IMGFMT_SECTOR_BYTES), grain, data, n_grains, used;
	uint64_t per_grain, gd_bytes, used_gts;
	uint32_t n_gts;
	int r;

	take_opts(ov, &co);
	if (cap == 0 || cap > UINT32_MAX)
		return imgfmt_err(img, -EFBIG, "VMDK size %llu bytes is not in 512..2 TiB", (unsigned long long)size);
	grain = (uint64_t)co.grain_sectors * IMGFMT_SECTOR_BYTES;
	n_gts = vmdk_n_gts(cap, co.grain_sectors);
	n_grains = imgfmt_div_round_up(cap, co.grain_sectors);
	if ((r = imgfmt_measure_data(img, src, grain, &data)) < 0)
		return r;
	used = data / grain;
	if (!co.stream) {
		lay_out_sparse(&h, co.grain_sectors, n_gts);
		m->required_bytes = h.overhead_sectors * IMGFMT_SECTOR_BYTES + used * grain;
		m->fully_allocated_bytes = h.overhead_sectors * IMGFMT_SECTOR_BYTES + n_grains * grain;
		return 0;
	}
	per_grain = imgfmt_div_round_up(VMDK_GRAIN_MARKER_BYTES + zlib_bound(grain), IMGFMT_SECTOR_BYTES) *
		    IMGFMT_SECTOR_BYTES;
	gd_bytes = imgfmt_div_round_up((uint64_t)n_gts * 4u, IMGFMT_SECTOR_BYTES) * IMGFMT_SECTOR_BYTES;
	used_gts = used < n_gts ? used : n_gts;
	m->required_bytes = stream_overhead_sectors(co.grain_sectors) * IMGFMT_SECTOR_BYTES + used * per_grain +
			    used_gts * (IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES) + IMGFMT_SECTOR_BYTES + gd_bytes +
			    3 * IMGFMT_SECTOR_BYTES;
	m->fully_allocated_bytes = m->required_bytes + (n_grains - used) * per_grain +
				   (n_gts - used_gts) * (IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES);
	return 0;
}

int vmdk_create(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *ov)
{
	struct create_opts co;
	struct vmdk_header h = { .magic = VMDK_MAGIC, .gtes_per_gt = VMDK_GTES_PER_GT,
				 .desc_sector = 1, .desc_sectors = VMDK_DESC_SECTORS };
	int r;

	take_opts(ov, &co);
	h.capacity_sectors = imgfmt_div_round_up(size_bytes, IMGFMT_SECTOR_BYTES);
	h.grain_sectors = co.grain_sectors;
	if (h.capacity_sectors == 0 || h.capacity_sectors > UINT32_MAX)
		return imgfmt_err(img, -EFBIG, "VMDK size %llu bytes is not in 512..2 TiB",
				  (unsigned long long)size_bytes);
	r = co.stream ? create_stream(img, &h, &co) : create_sparse(img, &h, &co);
	if (r < 0)
		return r;
	img->size_bytes = h.capacity_sectors * IMGFMT_SECTOR_BYTES;
	img->cluster_bytes = co.grain_sectors * IMGFMT_SECTOR_BYTES;
	return 0;
}

/* ---- the stream writer ---- */

bool vmdk_stream_staged(const struct vmdk_state *st, const struct vmdk_extent *e, uint64_t grain)
{
	return st->stream && st->stream->staged && st->stream->stage_grain == grain && e == st->ext;
}

bool vmdk_stream_any_staged(const struct vmdk_state *st, const struct vmdk_extent *e)
{
	return st->stream && st->stream->staged && e == st->ext;
}

const uint8_t *vmdk_stream_stage(const struct vmdk_state *st)
{
	return st->stream->stage;
}

void vmdk_stream_free(struct vmdk_state *st)
{
	if (!st->stream)
		return;
	free(st->stream->stage);
	free(st->stream->wbuf);
	free(st->stream->gtbuf);
	free(st->stream);
	st->stream = NULL;
}

static int refuse_rewrite(struct imgfmt_image *img, const struct vmdk_extent *e, uint64_t grain)
{
	if (vmdk_gte(e->sp, grain) == VMDK_GTE_HOLE)
		return 0;
	return imgfmt_err(img, -EINVAL,
			  "%s: grain %llu was already written; streamOptimized grains are written once",
			  e->name, (unsigned long long)grain);
}

static int emit_gt(struct imgfmt_image *img, struct vmdk_stream *s, struct vmdk_extent *e,
		   uint32_t gti);

/* Append wbuf = marker + size compressed bytes as grain `grain`.  Grains
 * come in order from the copy engine: when they move on to another table,
 * the previous one follows its grains (as VMware lays streams out). */
static int append_grain(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
			uint8_t *wbuf, size_t size, uint64_t grain)
{
	struct vmdk_sparse *sp = e->sp;
	struct vmdk_stream *s = st->stream;
	uint32_t gti = (uint32_t)(grain / VMDK_GTES_PER_GT);
	size_t total = VMDK_GRAIN_MARKER_BYTES + size;
	size_t padded = (total + IMGFMT_SECTOR_BYTES - 1) / IMGFMT_SECTOR_BYTES * IMGFMT_SECTOR_BYTES;
	uint64_t sector, end;
	int r = 0;

	if (s->last_gt != gti && sp->gt_dirty[s->last_gt])
		r = emit_gt(img, s, e, s->last_gt);
	if (r < 0)
		return r;
	sector = sp->next_sector;
	end = sector + padded / IMGFMT_SECTOR_BYTES;
	if (end > UINT32_MAX)
		return imgfmt_err(img, -EFBIG, "%s: stream passes the 2 TiB limit of grain offsets",
				  e->name);
	imgfmt_put_le64(wbuf, grain * sp->grain_sectors);
	imgfmt_put_le32(wbuf + 8, (uint32_t)size);
	memset(wbuf + total, 0, padded - total);
	r = vmdk_data_pwrite(img, e, wbuf, padded, sector * IMGFMT_SECTOR_BYTES);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing grain %llu: %s", e->name,
				  (unsigned long long)grain, strerror(-r));
	sp->gt[gti][grain % VMDK_GTES_PER_GT] = (uint32_t)sector;
	sp->gt_dirty[gti] = true;
	s->last_gt = gti;
	sp->next_sector = sp->file_sectors = end;
	return 0;
}

/* Compress one whole grain and append it (all-zero grains stay holes). */
static int put_grain(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		     uint64_t grain, const uint8_t *data, size_t grain_bytes)
{
	struct vmdk_stream *s = st->stream;
	long c;

	if (imgfmt_is_zero(data, grain_bytes))
		return 0;
	c = imgfmt_zlib_compress(data, grain_bytes, s->wbuf + VMDK_GRAIN_MARKER_BYTES,
				 s->wbuf_bytes - 2 * IMGFMT_SECTOR_BYTES);
	if (c < 0)
		return imgfmt_err(img, (int)c, "%s: compressing grain %llu failed", e->name,
				  (unsigned long long)grain);
	return append_grain(img, st, e, s->wbuf, (size_t)c, grain);
}

static int flush_stage(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e)
{
	struct vmdk_stream *s = st->stream;
	size_t grain_bytes = (size_t)e->sp->grain_sectors * IMGFMT_SECTOR_BYTES;

	if (!s->staged)
		return 0;
	s->staged = false;
	return put_grain(img, st, e, s->stage_grain, s->stage, grain_bytes);
}

static int check_open(struct imgfmt_image *img, struct vmdk_state *st, const struct vmdk_extent *e)
{
	if (!st->stream || st->stream->finished)
		return imgfmt_err(img, -EROFS, "%s: compressed extents are written only while being created",
				  e->name);
	return 0;
}

/* Part of one grain: gather it in the stage until another grain comes. */
static int stage_part(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		      uint64_t grain, const uint8_t *buf, uint64_t n, uint64_t in_grain)
{
	struct vmdk_stream *s = st->stream;
	int r = 0;

	if (s->staged && s->stage_grain != grain)
		r = flush_stage(img, st, e);
	if (r == 0 && !s->staged) {
		r = refuse_rewrite(img, e, grain);
		memset(s->stage, 0, (size_t)e->sp->grain_sectors * IMGFMT_SECTOR_BYTES);
		s->stage_grain = grain;
		s->staged = r == 0;
	}
	if (r == 0)
		memcpy(s->stage + in_grain, buf, n);
	return r;
}

int vmdk_stream_write(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		      const uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t grain_bytes = (uint64_t)e->sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	int r = check_open(img, st, e);

	while (r == 0 && len > 0) {
		uint64_t grain = off / grain_bytes, in_grain = off % grain_bytes;
		uint64_t n = grain_bytes - in_grain < len ? grain_bytes - in_grain : len;
		if (n == grain_bytes && !vmdk_stream_staged(st, e, grain)) {
			r = refuse_rewrite(img, e, grain);
			if (r == 0)
				r = put_grain(img, st, e, grain, buf, n);
		} else {
			r = stage_part(img, st, e, grain, buf, n, in_grain);
		}
		buf += n;
		off += n;
		len -= n;
	}
	return r;
}

/* Zeroes in a stream: unwritten grains already read as zero. */
int vmdk_stream_zero(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		     uint64_t len, uint64_t off)
{
	uint64_t grain_bytes = (uint64_t)e->sp->grain_sectors * IMGFMT_SECTOR_BYTES;
	uint64_t first = off / grain_bytes, last = (off + len - 1) / grain_bytes;
	int r = check_open(img, st, e);

	for (uint64_t g = first; r == 0 && g <= last; g++) {
		if (vmdk_stream_staged(st, e, g)) {
			uint64_t s = g == first ? off % grain_bytes : 0;
			uint64_t end = g == last ? (off + len - 1) % grain_bytes + 1 : grain_bytes;
			memset(st->stream->stage + s, 0, end - s);
		} else {
			r = refuse_rewrite(img, e, g);
		}
	}
	return r;
}

int vmdk_compress(const struct imgfmt_image *img, const void *in, size_t in_bytes, void *out,
		  size_t out_cap, size_t *out_bytes)
{
	const struct vmdk_state *st = img->priv;
	uint8_t *padded = NULL;
	long c;

	if (!st->stream)
		return -ENOSPC; /* monolithicSparse: the caller writes plainly */
	if (in_bytes > img->cluster_bytes)
		return -EINVAL;
	if (in_bytes < img->cluster_bytes) {
		padded = calloc(1, img->cluster_bytes);
		if (!padded)
			return -ENOMEM;
		memcpy(padded, in, in_bytes);
		in = padded;
	}
	c = imgfmt_zlib_compress(in, img->cluster_bytes, out, out_cap);
	free(padded);
	if (c < 0 || (size_t)c >= img->cluster_bytes)
		return -ENOSPC;
	*out_bytes = (size_t)c;
	return 0;
}

int vmdk_pwrite_compressed(struct imgfmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct vmdk_state *st = img->priv;
	struct vmdk_extent *e = &st->ext[0];
	uint64_t grain = off / img->cluster_bytes;
	int r;

	if (!st->stream)
		return imgfmt_err(img, -ENOTSUP,
				  "%s: only streamOptimized VMDK images hold compressed grains", img->path);
	r = check_open(img, st, e);
	if (r == 0 && off % img->cluster_bytes)
		r = imgfmt_err(img, -EINVAL, "%s: compressed write at %llu is not grain-aligned",
			       img->path, (unsigned long long)off);
	if (r == 0 && (len == 0 || len > st->stream->wbuf_bytes - 2 * IMGFMT_SECTOR_BYTES))
		r = imgfmt_err(img, -EINVAL, "%s: compressed grain of %zu bytes is out of range",
			       img->path, len);
	if (r == 0 && vmdk_stream_staged(st, e, grain))
		r = imgfmt_err(img, -EINVAL, "%s: grain %llu is partly written already", img->path,
			       (unsigned long long)grain);
	if (r == 0)
		r = refuse_rewrite(img, e, grain);
	if (r < 0)
		return r;
	memcpy(st->stream->wbuf + VMDK_GRAIN_MARKER_BYTES, buf, len);
	return append_grain(img, st, e, st->stream->wbuf, len, grain);
}

/* ---- the trailer ---- */

static void put_marker(uint8_t *p, uint64_t sectors, uint32_t type)
{
	struct vmdk_marker_disk m = { .val = htole64(sectors), .type = htole32(type) };

	memcpy(p, &m, sizeof(m));
}

/* GT marker + table gti at p; the GD entry points after the marker. */
static size_t put_gt(uint8_t *p, struct vmdk_sparse *sp, uint32_t gti, uint64_t sector)
{
	put_marker(p, VMDK_GT_SECTORS, VMDK_MARKER_GT);
	for (unsigned j = 0; j < VMDK_GTES_PER_GT; j++)
		imgfmt_put_le32(p + IMGFMT_SECTOR_BYTES + 4 * j, sp->gt[gti][j]);
	sp->gd[gti] = (uint32_t)(sector + 1);
	sp->gt_dirty[gti] = false;
	return IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES;
}

static int write_buf(struct imgfmt_image *img, struct vmdk_extent *e, const uint8_t *buf,
		     size_t len)
{
	int r = imgfmt_fd_pwrite(e->fd, buf, len, e->sp->next_sector * IMGFMT_SECTOR_BYTES);

	if (r < 0)
		return imgfmt_err(img, r, "%s: writing stream metadata: %s", e->name, strerror(-r));
	e->sp->next_sector += len / IMGFMT_SECTOR_BYTES;
	e->sp->file_sectors = e->sp->next_sector;
	return 0;
}

static int emit_gt(struct imgfmt_image *img, struct vmdk_stream *s, struct vmdk_extent *e,
		   uint32_t gti)
{
	size_t n = put_gt(s->gtbuf, e->sp, gti, e->sp->next_sector);

	return write_buf(img, e, s->gtbuf, n);
}

/* The tables not written yet (or changed since: grains out of order). */
static int write_gts(struct imgfmt_image *img, struct vmdk_extent *e, uint8_t *buf)
{
	struct vmdk_sparse *sp = e->sp;
	const size_t unit = IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES;
	size_t fill = 0;
	int r = 0;

	for (uint32_t i = 0; i < sp->n_gts && r == 0; i++) {
		if (!sp->gt_dirty[i])
			continue;
		fill += put_gt(buf + fill, sp, i, sp->next_sector + fill / IMGFMT_SECTOR_BYTES);
		if (fill == unit * STREAM_TRAILER_BATCH) {
			r = write_buf(img, e, buf, fill);
			fill = 0;
		}
	}
	return r < 0 || fill == 0 ? r : write_buf(img, e, buf, fill);
}

/* GD marker + GD, footer marker + footer, end-of-stream marker. */
static int write_gd_footer(struct imgfmt_image *img, struct vmdk_extent *e)
{
	struct vmdk_sparse *sp = e->sp;
	uint64_t gd_sectors = imgfmt_div_round_up((uint64_t)sp->n_gts * 4u, IMGFMT_SECTOR_BYTES);
	size_t len = (size_t)(gd_sectors + 4) * IMGFMT_SECTOR_BYTES;
	uint8_t *buf = calloc(1, len), *p;
	struct vmdk_header footer = sp->hdr;
	int r;

	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	put_marker(buf, gd_sectors, VMDK_MARKER_GD);
	for (uint32_t i = 0; i < sp->n_gts; i++)
		imgfmt_put_le32(buf + IMGFMT_SECTOR_BYTES + 4 * i, sp->gd[i]);
	p = buf + (1 + gd_sectors) * IMGFMT_SECTOR_BYTES;
	put_marker(p, 1, VMDK_MARKER_FOOTER);
	footer.gd_sector = sp->next_sector + 1;
	vmdk_header_encode(&footer, (struct vmdk_header_disk *)(p + IMGFMT_SECTOR_BYTES));
	put_marker(p + 2 * IMGFMT_SECTOR_BYTES, 0, VMDK_MARKER_EOS);
	r = write_buf(img, e, buf, len);
	free(buf);
	return r;
}

int vmdk_stream_finish(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e)
{
	uint8_t *buf;
	int r;

	if (!st->stream || st->stream->finished)
		return 0;
	r = flush_stage(img, st, e);
	if (r < 0)
		return r;
	st->stream->finished = true;
	buf = malloc((IMGFMT_SECTOR_BYTES + VMDK_GT_BYTES) * STREAM_TRAILER_BATCH);
	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = write_gts(img, e, buf);
	free(buf);
	return r < 0 ? r : write_gd_footer(img, e);
}
