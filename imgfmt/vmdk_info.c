/* VMDK description (info) and metadata consistency check. */
#include "vmdk_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *kind_name(enum vmdk_extent_kind k)
{
	return k == VMDK_EXTENT_SPARSE ? "SPARSE" : k == VMDK_EXTENT_FLAT ? "FLAT" : "ZERO";
}

static const char *subformat(const struct vmdk_state *st)
{
	if (st->desc.create_type[0])
		return st->desc.create_type;
	if (st->ext[0].sp && st->ext[0].sp->compressed)
		return "streamOptimized";
	return "monolithicSparse";
}

/* One entry per extent, as QEMU lists them: the file's path beside the
 * descriptor, the descriptor's type ("" for a descriptor inside the sparse
 * file), its size, grain and compression.  Kept in the state until close. */
static int add_extents(struct imgfmt_image *img, struct vmdk_state *st, struct imgfmt_info *info)
{
	if (!st->info_files) {
		st->info_files = calloc(st->n_ext, sizeof(*st->info_files));
		st->info_paths = calloc(st->n_ext, sizeof(*st->info_paths));
		if (!st->info_files || !st->info_paths)
			return imgfmt_err(img, -ENOMEM, "out of memory");
		for (unsigned i = 0; i < st->n_ext; i++) {
			const struct vmdk_extent *e = &st->ext[i];
			struct imgfmt_info_file *f = &st->info_files[i];
			const char *file = st->embedded ? NULL : st->desc.ext[i].file;
			if (file && !(st->info_paths[i] = imgfmt_resolve_relative(img, file)))
				return imgfmt_err(img, -ENOMEM, "out of memory");
			f->path = file ? st->info_paths[i] : img->path;
			f->type = st->embedded ? "" : kind_name(e->kind);
			f->virtual_size_bytes = e->sectors * IMGFMT_SECTOR_BYTES;
			f->cluster_bytes = e->sp ? e->sp->grain_sectors * IMGFMT_SECTOR_BYTES : 0;
			f->compressed = e->sp && e->sp->compressed;
		}
	}
	info->files = st->info_files;
	info->n_files = st->n_ext;
	return 0;
}

int vmdk_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct vmdk_state *st = img->priv;
	const struct vmdk_sparse *sp = st->ext[0].sp;
	struct stat s;

	snprintf(info->subformat, sizeof(info->subformat), "%.31s", subformat(st));
	for (unsigned i = 0; i < st->n_ext; i++)
		if (st->ext[i].own_fd && fstat(st->ext[i].fd, &s) == 0)
			info->file_size_bytes += (uint64_t)s.st_blocks * 512u;
	/* QEMU's keys (cid and parent-cid as numbers, as QEMU prints them) */
	if (st->desc.n_ext) {
		imgfmt_info_add(info, "cid", true, "%u", st->desc.cid);
		imgfmt_info_add(info, "parent-cid", true, "%u", st->desc.parent_cid);
	}
	imgfmt_info_add(info, "create-type", false, "%s", info->subformat);
	if (st->desc.n_ext) {
		imgfmt_info_add(info, "adapter-type", false, "%s", st->desc.adapter_type);
		imgfmt_info_add(info, "hw-version", false, "%s", st->desc.hw_version);
		if (st->desc.parent_hint)
			snprintf(info->backing_file, sizeof(info->backing_file), "%s", st->desc.parent_hint);
	}
	if (sp)
		imgfmt_info_add(info, "version", true, "%u", sp->hdr.version);
	return add_extents(img, st, info);
}

/* ---- check ---- */

static void report(struct imgfmt_check *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(struct imgfmt_check *res, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	res->errors++;
	if (!res->report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res->report(res->report_opaque, msg);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Allocated grains of the extent into used (NULL: count only). */
static uint64_t collect_grains(const struct vmdk_extent *e, uint64_t grains, uint32_t *used)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t k = 0;

	for (uint32_t i = 0; i < sp->n_gts; i++) {
		/* absent and all-zero tables (shared, read-only opens) hold no grain */
		for (uint32_t j = 0; sp->gt[i] && sp->gt[i] != sp->gt_zero && j < VMDK_GTES_PER_GT; j++) {
			uint64_t g = (uint64_t)i * VMDK_GTES_PER_GT + j;
			if (g >= grains || !vmdk_gte_allocated(sp, sp->gt[i][j]))
				continue;
			if (used)
				used[k] = sp->gt[i][j];
			k++;
		}
	}
	return k;
}

/* Every allocated grain inside the file; no grain used twice. */
static int check_grains(const struct vmdk_extent *e, struct imgfmt_check *res)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t grains = imgfmt_div_round_up(e->sectors, sp->grain_sectors);
	uint64_t k = collect_grains(e, grains, NULL);
	uint32_t *used = malloc((size_t)k * 4u + 4u);
	uint64_t need = sp->compressed ? 1 : sp->grain_sectors;

	if (!used)
		return -ENOMEM;
	collect_grains(e, grains, used);
	res->total_clusters += grains;
	res->allocated_clusters += k;
	qsort(used, k, 4, cmp_u32);
	for (uint64_t i = 0; i < k; i++) {
		if (i > 0 && used[i] == used[i - 1])
			report(res, "%s: sector %u is used by two grains", e->name, used[i]);
		if ((uint64_t)used[i] + need > sp->file_sectors)
			report(res, "%s: a grain at sector %u is past the end of the file (%llu sectors)",
			       e->name, used[i], (unsigned long long)sp->file_sectors);
	}
	free(used);
	return 0;
}

/* Redundant grain tables read per pread: runs of tables that follow each
 * other in the file (as qemu-img and VMware lay them out) take one read
 * each, as the primary ones at open; the buffer is bounded (512 KiB). */
#define RGT_BATCH 256u

/* A redundant table at sector s lies wholly inside the file. */
static bool rgt_inside(const struct vmdk_sparse *sp, uint64_t s)
{
	return sp->file_sectors >= VMDK_GT_SECTORS && s <= sp->file_sectors - VMDK_GT_SECTORS;
}

/* Redundant table i (raw, little-endian) against primary table i: the
 * first differing entry is reported. An all-zero pair (the common case:
 * every table of an empty image from qemu-img create) is one memcmp. */
static void cmp_rgt(const struct vmdk_extent *e, uint32_t i, const uint8_t *raw,
		    struct imgfmt_check *res)
{
	static const uint8_t zero[VMDK_GT_BYTES];
	const struct vmdk_sparse *sp = e->sp;
	const uint32_t *gt = sp->gt[i];

	if (gt == sp->gt_zero && !memcmp(raw, zero, sizeof(zero)))
		return;
	for (unsigned j = 0; j < VMDK_GTES_PER_GT; j++)
		if (imgfmt_get_le32(raw + 4 * j) != gt[j]) {
			report(res, "%s: redundant grain table %u differs at entry %u", e->name, i, j);
			return;
		}
}

/* The redundant grain tables must equal the primary ones. Only tables
 * whose primary is present are compared; an absent (0) redundant entry is
 * not an error; one outside the file or unreadable is reported. */
static int check_rgd(struct imgfmt_image *img, const struct vmdk_extent *e, struct imgfmt_check *res)
{
	const struct vmdk_sparse *sp = e->sp;
	uint64_t gd_bytes = (uint64_t)sp->n_gts * 4u;
	uint32_t *rgd = malloc(gd_bytes + 4);
	uint8_t *buf = malloc((size_t)RGT_BATCH * VMDK_GT_BYTES);
	int r = rgd && buf ? imgfmt_fd_pread(e->fd, rgd, gd_bytes, sp->hdr.rgd_sector * 512u) : -ENOMEM;

	/* each pass consumes at least table i: the loop ends */
	for (uint32_t i = 0; r == 0 && i < sp->n_gts;) {
		uint64_t s = le32toh(rgd[i]);
		uint32_t n = 1;
		if (!sp->gt[i] || !s) {
			i++;
			continue;
		}
		if (!rgt_inside(sp, s)) {
			report(res, "%s: redundant grain table %u at sector %llu is unreadable", e->name, i,
			       (unsigned long long)s);
			i++;
			continue;
		}
		/* 64-bit sums: no wrap; every table of the run inside the file */
		while (n < RGT_BATCH && i + n < sp->n_gts && sp->gt[i + n] &&
		       le32toh(rgd[i + n]) == s + (uint64_t)n * VMDK_GT_SECTORS &&
		       rgt_inside(sp, s + (uint64_t)n * VMDK_GT_SECTORS))
			n++;
		if (imgfmt_fd_pread(e->fd, buf, (size_t)n * VMDK_GT_BYTES, s * 512u) == 0) {
			for (uint32_t j = 0; j < n; j++)
				cmp_rgt(e, i + j, buf + (size_t)j * VMDK_GT_BYTES, res);
		} else {
			/* the run failed: table by table, each failure reported */
			for (uint32_t j = 0; j < n; j++) {
				uint64_t sj = s + (uint64_t)j * VMDK_GT_SECTORS;
				if (imgfmt_fd_pread(e->fd, buf, VMDK_GT_BYTES, sj * 512u) < 0)
					report(res, "%s: redundant grain table %u at sector %llu is unreadable",
					       e->name, i + j, (unsigned long long)sj);
				else
					cmp_rgt(e, i + j, buf, res);
			}
		}
		i += n;
	}
	free(buf);
	free(rgd);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the redundant grain directory: %s", e->name,
				  strerror(-r));
	return 0;
}

int vmdk_check(struct imgfmt_image *img, struct imgfmt_check *res)
{
	const struct vmdk_state *st = img->priv;
	int r = 0;

	for (unsigned i = 0; i < st->n_ext && r == 0; i++) {
		const struct vmdk_extent *e = &st->ext[i];
		if (!e->sp)
			continue;
		r = check_grains(e, res);
		if (r == 0 && !img->writable && (e->sp->hdr.flags & VMDK_FLAG_RGD) && e->sp->hdr.rgd_sector)
			r = check_rgd(img, e, res);
	}
	return r == -ENOMEM ? imgfmt_err(img, r, "out of memory") : r;
}
