/* A read-only libext2fs io_manager over the capture's reader (an NBD
 * source read through imgfmt), so that ext2fs_open2 and the bitmap reads
 * cross the same connection as the copy.  libext2fs hands open() only a
 * name: the name carries the address of the caller's p2v_fsmap_ctx
 * ("p2v-extio:0x..."), which outlives the channel (fsmap_ext.c opens and
 * closes the filesystem within one call).  No global mutable state. */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ext2fs/ext2fs.h>

#define EXTIO_PREFIX "p2v-extio:"

void p2v_extio_name(const struct p2v_fsmap_ctx *ctx, char *out, size_t out_bytes)
{
	snprintf(out, out_bytes, EXTIO_PREFIX "%p", (const void *)ctx);
}

static errcode_t extio_open(const char *name, int flags, io_channel *channel)
{
	void *ctx = NULL;
	io_channel io = NULL;
	errcode_t e;

	if (!name || strncmp(name, EXTIO_PREFIX, strlen(EXTIO_PREFIX)) ||
	    sscanf(name + strlen(EXTIO_PREFIX), "%p", &ctx) != 1 || !ctx)
		return EXT2_ET_BAD_DEVICE_NAME;
	if (flags & IO_FLAG_RW)
		return EROFS;
	e = ext2fs_get_memzero(sizeof(*io), &io);
	if (e)
		return e;
	e = ext2fs_get_mem(strlen(name) + 1, &io->name);
	if (e) {
		ext2fs_free_mem(&io);
		return e;
	}
	strcpy(io->name, name);
	io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	io->manager = p2v_extio_manager;
	io->block_size = 1024;
	io->refcount = 1;
	io->flags = flags;
	io->private_data = ctx;
	*channel = io;
	return 0;
}

static errcode_t extio_close(io_channel io)
{
	if (--io->refcount > 0)
		return 0;
	ext2fs_free_mem(&io->name);
	ext2fs_free_mem(&io);
	return 0;
}

static errcode_t extio_set_blksize(io_channel io, int blksize)
{
	if (blksize < 512 || blksize > 65536 || (blksize & (blksize - 1)))
		return EXT2_ET_INVALID_ARGUMENT;
	io->block_size = blksize;
	return 0;
}

/* count < 0: -count bytes (libext2fs' convention), else count blocks. */
static errcode_t extio_read_blk64(io_channel io, unsigned long long block, int count, void *data)
{
	struct p2v_fsmap_ctx *ctx = io->private_data;
	uint64_t len_bytes, off_bytes;
	int r;

	if (count < 0)
		len_bytes = (uint64_t)-(int64_t)count;
	else
		len_bytes = (uint64_t)count * (uint64_t)io->block_size;
	if (__builtin_mul_overflow((uint64_t)block, (uint64_t)io->block_size, &off_bytes) ||
	    off_bytes > ctx->part_bytes || len_bytes > ctx->part_bytes - off_bytes)
		return EXT2_ET_LLSEEK_FAILED; /* outside the partition */
	r = ctx->read(ctx->read_opaque, data, len_bytes, ctx->part_off_bytes + off_bytes);
	return r < 0 ? (r == -EIO ? EXT2_ET_SHORT_READ : (errcode_t)-r) : 0;
}

static errcode_t extio_read_blk(io_channel io, unsigned long block, int count, void *data)
{
	return extio_read_blk64(io, block, count, data);
}

static errcode_t extio_write_blk64(io_channel io, unsigned long long block, int count,
				   const void *data)
{
	(void)io, (void)block, (void)count, (void)data;
	return EROFS;
}

static errcode_t extio_write_blk(io_channel io, unsigned long block, int count, const void *data)
{
	return extio_write_blk64(io, block, count, data);
}

static errcode_t extio_write_byte(io_channel io, unsigned long off, int count, const void *data)
{
	(void)io, (void)off, (void)count, (void)data;
	return EROFS;
}

static errcode_t extio_flush(io_channel io)
{
	(void)io;
	return 0;
}

static errcode_t extio_set_option(io_channel io, const char *option, const char *arg)
{
	(void)io, (void)option, (void)arg;
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager extio_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "p2v imgfmt reader (read-only)",
	.open = extio_open,
	.close = extio_close,
	.set_blksize = extio_set_blksize,
	.read_blk = extio_read_blk,
	.write_blk = extio_write_blk,
	.flush = extio_flush,
	.write_byte = extio_write_byte,
	.set_option = extio_set_option,
	.read_blk64 = extio_read_blk64,
	.write_blk64 = extio_write_blk64,
};

struct struct_io_manager *const p2v_extio_manager = &extio_manager;
