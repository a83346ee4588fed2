/* FAT12/16/32 used clusters, from our own reader of the boot sector (BPB)
 * and the first FAT.  Reserved sectors, the FATs and the FAT12/16 root
 * directory are always copied; a data cluster is copied when its entry is
 * non-zero (allocated, end of chain or marked bad) in any of the FAT copies
 * (they should agree; if they do not, the union loses nothing).  Every BPB
 * field is range-checked against the partition before use. */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define FAT_CHUNK_BYTES (1u << 20)

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int geom_why(char *why, size_t why_bytes, int code, const char *msg, unsigned long long v)
{
	snprintf(why, why_bytes, "FAT: %s (%llu)", msg, v);
	return code;
}

static int fat_why(struct p2v_fsmap_ctx *ctx, int code, const char *msg, unsigned long long v)
{
	return geom_why(ctx->why, sizeof(ctx->why), code, msg, v);
}

int p2v_fat_geom_parse(const uint8_t *b, uint64_t part_bytes, struct p2v_fat_geom *g,
		       char *why, size_t why_bytes)
{
	uint32_t spc = b[13];
	uint64_t fat16 = imgfmt_get_le16(b + 22), tot16 = imgfmt_get_le16(b + 19);
	uint64_t root_entries = imgfmt_get_le16(b + 17), meta_sectors, data_sectors;

	if (b[510] != 0x55 || b[511] != 0xAA)
		return geom_why(why, why_bytes, -EINVAL, "boot sector signature missing", imgfmt_get_le16(b + 510));
	g->sector_bytes = imgfmt_get_le16(b + 11);
	if (g->sector_bytes < 512 || g->sector_bytes > 4096 || !pow2(g->sector_bytes))
		return geom_why(why, why_bytes, -EINVAL, "bytes per sector is not 512..4096", g->sector_bytes);
	if (!pow2(spc) || spc > 128)
		return geom_why(why, why_bytes, -EINVAL, "sectors per cluster is not a power of two <= 128", spc);
	g->cluster_bytes = spc * g->sector_bytes;
	g->reserved_sectors = imgfmt_get_le16(b + 14);
	if (!g->reserved_sectors)
		return geom_why(why, why_bytes, -EINVAL, "reserved sector count is zero", 0);
	g->n_fats = b[16];
	if (g->n_fats < 1 || g->n_fats > 4)
		return geom_why(why, why_bytes, -EINVAL, "number of FATs is not 1..4", g->n_fats);
	g->fat_sectors = fat16 ? fat16 : imgfmt_get_le32(b + 36);
	if (!g->fat_sectors)
		return geom_why(why, why_bytes, -EINVAL, "FAT size is zero", 0);
	g->total_sectors = tot16 ? tot16 : imgfmt_get_le32(b + 32);
	g->root_dir_sectors = (root_entries * 32 + g->sector_bytes - 1) / g->sector_bytes;
	meta_sectors = g->reserved_sectors + g->n_fats * g->fat_sectors + g->root_dir_sectors;
	if (g->total_sectors > part_bytes / g->sector_bytes)
		return geom_why(why, why_bytes, -EINVAL, "total sectors exceed the partition", g->total_sectors);
	if (meta_sectors >= g->total_sectors)
		return geom_why(why, why_bytes, -EINVAL, "reserved+FAT+root sectors fill the volume", meta_sectors);
	data_sectors = g->total_sectors - meta_sectors;
	g->root_cluster = imgfmt_get_le32(b + 44);
	g->n_clusters = data_sectors / spc;
	g->data_start_bytes = meta_sectors * g->sector_bytes;
	g->bits = g->n_clusters < 4085 ? 12 : g->n_clusters < 65525 ? 16 : 32;
	if (g->bits == 32 && fat16)
		return geom_why(why, why_bytes, -EINVAL, "FAT32 cluster count with a 16-bit FAT size", g->n_clusters);
	if (g->fat_sectors * g->sector_bytes * 8 < (g->n_clusters + 2) * g->bits)
		return geom_why(why, why_bytes, -EINVAL, "FAT too small for the cluster count", g->n_clusters);
	return 0;
}

uint32_t p2v_fat_entry(const uint8_t *fat, unsigned bits, uint64_t idx)
{
	if (bits == 16)
		return imgfmt_get_le16(fat + idx * 2);
	if (bits == 32)
		return imgfmt_get_le32(fat + idx * 4) & 0x0FFFFFFFu;
	uint16_t v = imgfmt_get_le16(fat + idx * 3 / 2);
	return (idx & 1) ? v >> 4 : v & 0xFFF;
}

static int fat_add_cluster(struct p2v_fsmap_ctx *ctx, const struct p2v_fat_geom *g, uint64_t cl,
			   bool count)
{
	uint64_t off = ctx->part_off_bytes + g->data_start_bytes + (cl - 2) * g->cluster_bytes;

	if (count)
		ctx->used_bytes += g->cluster_bytes;
	return p2v_rangemap_add(ctx->map, off, g->cluster_bytes);
}

/* FAT16/32 keep "clean shutdown" and "no disk error" flags in the high
 * bits of entry 1; a volume not cleanly unmounted may have allocations its
 * FAT does not show yet. */
static int fat_check_clean(struct p2v_fsmap_ctx *ctx, const struct p2v_fat_geom *g, const uint8_t *fat)
{
	uint32_t e1 = p2v_fat_entry(fat, g->bits, 1);
	uint32_t clean = g->bits == 32 ? 0x08000000u : 0x8000u;
	uint32_t no_err = g->bits == 32 ? 0x04000000u : 0x4000u;

	if (g->bits == 12)
		return 0;
	if (!(e1 & clean))
		return fat_why(ctx, -EUCLEAN, "volume is marked dirty (not cleanly unmounted), FAT entry 1", e1);
	if (!(e1 & no_err))
		return fat_why(ctx, -EUCLEAN, "volume is marked with disk errors, FAT entry 1", e1);
	return 0;
}

/* Walks FAT number fat_idx in chunks; chunk sizes are multiples of 4
 * (FAT32) or the whole FAT (FAT12/16, at most 128 KiB), so no entry
 * straddles.  Used bytes are counted from the first FAT only. */
static int fat_scan(struct p2v_fsmap_ctx *ctx, const struct p2v_fat_geom *g, unsigned fat_idx)
{
	uint64_t fat_off = ctx->part_off_bytes +
			   (g->reserved_sectors + fat_idx * g->fat_sectors) * g->sector_bytes;
	uint64_t entry_bytes = g->bits == 32 ? 4 : 0;
	uint64_t fat_bytes = g->bits == 32 ? (g->n_clusters + 2) * 4 : (g->n_clusters + 2) * g->bits / 8 + 2;
	uint64_t chunk = g->bits == 32 ? FAT_CHUNK_BYTES : fat_bytes;
	uint8_t *buf = malloc(chunk);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t pos = 0; pos < fat_bytes && r == 0; pos += chunk) {
		uint64_t n = fat_bytes - pos < chunk ? fat_bytes - pos : chunk;
		uint64_t first = entry_bytes ? pos / entry_bytes : 0;
		uint64_t count = entry_bytes ? n / entry_bytes : g->n_clusters + 2;

		memset(buf, 0, chunk);
		r = ctx->read(ctx->read_opaque, buf, n, fat_off + pos);
		if (r < 0) {
			snprintf(ctx->why, sizeof(ctx->why), "FAT: reading the FAT failed");
			break;
		}
		if (pos == 0 && fat_idx == 0)
			r = fat_check_clean(ctx, g, buf);
		for (uint64_t i = 0; i < count && r == 0; i++) {
			uint64_t cl = first + i;
			if (cl >= 2 && cl < g->n_clusters + 2 && p2v_fat_entry(buf, g->bits, i))
				r = fat_add_cluster(ctx, g, cl, fat_idx == 0);
		}
	}
	free(buf);
	return r;
}

int p2v_fsmap_fat(struct p2v_fsmap_ctx *ctx)
{
	uint8_t boot[512];
	struct p2v_fat_geom g;
	uint64_t data_end, r_bytes;
	int r;

	if (ctx->part_bytes < 512)
		return fat_why(ctx, -EINVAL, "partition smaller than a boot sector", ctx->part_bytes);
	r = ctx->read(ctx->read_opaque, boot, sizeof(boot), ctx->part_off_bytes);
	if (r < 0)
		return fat_why(ctx, r, "reading the boot sector failed", 0);
	r = p2v_fat_geom_parse(boot, ctx->part_bytes, &g, ctx->why, sizeof(ctx->why));
	if (r < 0)
		return r;
	/* Boot, reserved sectors (FSInfo, backup boot), FATs and root directory. */
	ctx->used_bytes = g.data_start_bytes;
	r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes, g.data_start_bytes);
	for (unsigned i = 0; i < g.n_fats && r == 0; i++)
		r = fat_scan(ctx, &g, i);
	if (r < 0)
		return r;
	/* Sectors after the last whole cluster and after the volume: not ours to judge. */
	data_end = g.data_start_bytes + g.n_clusters * g.cluster_bytes;
	r_bytes = ctx->part_bytes - data_end;
	return p2v_rangemap_add(ctx->map, ctx->part_off_bytes + data_end, r_bytes);
}
