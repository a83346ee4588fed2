/* ext2/3/4 used blocks from the block bitmaps, through libext2fs opened on
 * the whole disk at the partition's offset (unix_io "offset=" option), or,
 * for a remote (NBD) disk, through the capture's reader (fsmap_extio.c).
 * The bitmap is not trusted when the journal needs recovery, the
 * filesystem is marked with errors or not clean, or a group's free count
 * disagrees with its bitmap. */
#include "capture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

__attribute__((format(printf, 3, 4)))
static int ext_why(struct p2v_fsmap_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->why, sizeof(ctx->why), fmt, ap);
	va_end(ap);
	return code;
}

/* Every group's descriptor free count must match the zero bits of its
 * part of the bitmap. */
static int ext_check_counts(struct p2v_fsmap_ctx *ctx, ext2_filsys fs)
{
	blk64_t first = fs->super->s_first_data_block, total = ext2fs_blocks_count(fs->super);

	for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
		blk64_t start = first + (blk64_t)g * fs->super->s_blocks_per_group;
		blk64_t end = start + fs->super->s_blocks_per_group;
		blk64_t free_blocks = 0;

		if (end > total)
			end = total;
		for (blk64_t b = start; b < end; b += EXT2FS_CLUSTER_RATIO(fs))
			if (!ext2fs_fast_test_block_bitmap2(fs->block_map, b))
				free_blocks++;
		if (free_blocks != ext2fs_bg_free_blocks_count(fs, g))
			return ext_why(ctx, -EUCLEAN,
				       "ext: group %lu bitmap has %llu free clusters but its descriptor says %llu",
				       (unsigned long)g, (unsigned long long)free_blocks,
				       (unsigned long long)ext2fs_bg_free_blocks_count(fs, g));
	}
	return 0;
}

/* Adds the runs of set bits as byte ranges of the disk. */
static int ext_add_used(struct p2v_fsmap_ctx *ctx, ext2_filsys fs)
{
	uint64_t bs = fs->blocksize;
	blk64_t first = fs->super->s_first_data_block, last = ext2fs_blocks_count(fs->super) - 1;
	blk64_t pos = first;
	int r = 0;

	/* Boot block(s) before the first data block (1 KiB block size). */
	r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes, first * bs);
	ctx->used_bytes = first * bs;
	while (r == 0 && pos <= last) {
		blk64_t set, zero;
		if (ext2fs_find_first_set_block_bitmap2(fs->block_map, pos, last, &set))
			break;
		if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, set, last, &zero))
			zero = last + 1;
		r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes + set * bs, (zero - set) * bs);
		ctx->used_bytes += (zero - set) * bs;
		pos = zero;
	}
	return r;
}

static int ext_map(struct p2v_fsmap_ctx *ctx, ext2_filsys fs)
{
	uint64_t fs_bytes;
	errcode_t e;
	int r;

	if (ext2fs_has_feature_journal_needs_recovery(fs->super))
		return ext_why(ctx, -EUCLEAN, "ext: journal needs recovery (needs_recovery set)");
	if (fs->super->s_state & EXT2_ERROR_FS)
		return ext_why(ctx, -EUCLEAN, "ext: filesystem is marked as having errors (run e2fsck)");
	if (!(fs->super->s_state & EXT2_VALID_FS))
		return ext_why(ctx, -EUCLEAN, "ext: filesystem was not cleanly unmounted (state not clean)");
	if (__builtin_mul_overflow((uint64_t)ext2fs_blocks_count(fs->super), (uint64_t)fs->blocksize, &fs_bytes) ||
	    fs_bytes > ctx->part_bytes)
		return ext_why(ctx, -EINVAL, "ext: %lld blocks of %lld bytes exceed the partition",
			       (long long)ext2fs_blocks_count(fs->super), (long long)fs->blocksize);
	e = ext2fs_read_block_bitmap(fs);
	if (e)
		return ext_why(ctx, -EIO, "ext: cannot read the block bitmap (%s)", error_message(e));
	r = ext_check_counts(ctx, fs);
	if (r == 0)
		r = ext_add_used(ctx, fs);
	/* Space of the partition after the filesystem: copied as is. */
	if (r == 0)
		r = p2v_rangemap_add(ctx->map, ctx->part_off_bytes + fs_bytes, ctx->part_bytes - fs_bytes);
	return r;
}

int p2v_fsmap_ext(struct p2v_fsmap_ctx *ctx)
{
	char io_opts[64], name[64];
	ext2_filsys fs;
	errcode_t e;
	int r;

	snprintf(io_opts, sizeof(io_opts), "offset=%llu", (unsigned long long)ctx->part_off_bytes);
	p2v_extio_name(ctx, name, sizeof(name));
	e = ext2fs_open2(ctx->remote ? name : ctx->disk_path, ctx->remote ? NULL : io_opts,
			 EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0,
			 ctx->remote ? p2v_extio_manager : unix_io_manager, &fs);
	if (e)
		return ext_why(ctx, -EINVAL, "ext: libext2fs cannot open the filesystem (%s)",
			       error_message(e));
	r = ext_map(ctx, fs);
	ext2fs_close_free(&fs);
	return r;
}
