/* Compression back-ends shared by the drivers.
 *
 * qcow2 "zlib" clusters are raw deflate that QEMU inflates with a 4 KiB
 * window (windowBits -12): p2v's own encoder (deflate4k.c, the default),
 * ISA-L asked for hist_bits = 12 (measured on /usr files: 16x faster than
 * zlib level 6 for 6-8% more output), or zlib itself at a chosen level with
 * windowBits -12.  Inflation uses libdeflate (any window).  VMDK grains are
 * zlib streams: libdeflate.  zstd clusters are plain zstd frames. */
#include "driver.h"

#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

static long deflate_isal_4k(const void *in, size_t in_bytes, void *out, size_t out_cap);

static long deflate_zlib_4k(const void *in, size_t in_bytes, void *out, size_t out_cap, int level)
{
	z_stream z;
	long n;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, level, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)in_bytes;
	z.next_out = out;
	z.avail_out = (uInt)out_cap;
	n = deflate(&z, Z_FINISH) == Z_STREAM_END ? (long)z.total_out : -ENOSPC;
	deflateEnd(&z);
	return n;
}

long imgfmt_deflate_raw_4k(const void *in, size_t in_bytes, void *out, size_t out_cap, int level)
{
	if (level > 0)
		return deflate_zlib_4k(in, in_bytes, out, out_cap, level);
	if (level == IMGFMT_DEFLATE_ISAL)
		return deflate_isal_4k(in, in_bytes, out, out_cap);
	return imgfmt_deflate_4k(in, in_bytes, out, out_cap);
}

static long deflate_isal_4k(const void *in, size_t in_bytes, void *out, size_t out_cap)
{
	uint8_t level_buf[ISAL_DEF_LVL3_LARGE];
	struct isal_zstream s;

	if (in_bytes > UINT32_MAX || out_cap > UINT32_MAX)
		return -EINVAL;
	isal_deflate_stateless_init(&s);
	s.level = 3;
	s.level_buf = level_buf;
	s.level_buf_size = sizeof(level_buf);
	s.hist_bits = 12;
	s.gzip_flag = IGZIP_DEFLATE;
	s.end_of_stream = 1;
	s.flush = NO_FLUSH;
	s.next_in = (uint8_t *)(uintptr_t)in;
	s.avail_in = (uint32_t)in_bytes;
	s.next_out = out;
	s.avail_out = (uint32_t)out_cap;
	if (isal_deflate_stateless(&s) != COMP_OK || s.avail_in != 0)
		return -ENOSPC;
	return (long)s.total_out;
}

int imgfmt_inflate_raw(const void *in, size_t in_bytes, void *out, size_t out_bytes)
{
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	size_t in_used = 0, got = 0;
	enum libdeflate_result r;

	if (!d)
		return -ENOMEM;
	/* qcow2 pads compressed clusters to sectors: trailing bytes are allowed. */
	r = libdeflate_deflate_decompress_ex(d, in, in_bytes, out, out_bytes, &in_used, &got);
	libdeflate_free_decompressor(d);
	if (r == LIBDEFLATE_INSUFFICIENT_SPACE || (r == LIBDEFLATE_SUCCESS && got != out_bytes))
		return -EIO;
	return r == LIBDEFLATE_SUCCESS ? 0 : -EIO;
}

long imgfmt_zlib_compress(const void *in, size_t in_bytes, void *out, size_t out_cap)
{
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);
	size_t n;

	if (!c)
		return -ENOMEM;
	n = libdeflate_zlib_compress(c, in, in_bytes, out, out_cap);
	libdeflate_free_compressor(c);
	return n ? (long)n : -ENOSPC;
}

long imgfmt_zlib_decompress(const void *in, size_t in_bytes, void *out, size_t out_cap)
{
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	size_t in_used = 0, got = 0;
	enum libdeflate_result r;

	if (!d)
		return -ENOMEM;
	r = libdeflate_zlib_decompress_ex(d, in, in_bytes, out, out_cap, &in_used, &got);
	libdeflate_free_decompressor(d);
	if (r != LIBDEFLATE_SUCCESS)
		return r == LIBDEFLATE_INSUFFICIENT_SPACE ? -ENOSPC : -EIO;
	return (long)got;
}

long imgfmt_zstd_compress(const void *in, size_t in_bytes, void *out, size_t out_cap)
{
	size_t n = ZSTD_compress(out, out_cap, in, in_bytes, 1);

	if (ZSTD_isError(n))
		return -ENOSPC;
	return (long)n;
}

/* The compressed length in a qcow2 L2 entry is rounded up to sectors, so the
 * input may carry padding after the frame(s): stop once out is full. */
int imgfmt_zstd_decompress(const void *in, size_t in_bytes, void *out, size_t out_bytes)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	ZSTD_inBuffer ib = { in, in_bytes, 0 };
	ZSTD_outBuffer ob = { out, out_bytes, 0 };
	int r = 0;

	if (!dctx)
		return -ENOMEM;
	while (ob.pos < ob.size) {
		size_t ret = ZSTD_decompressStream(dctx, &ob, &ib);
		if (ZSTD_isError(ret)) {
			r = -EIO;
			break;
		}
		if (ib.pos == ib.size && ob.pos < ob.size) {
			r = -EIO; /* input ended before the cluster was complete */
			break;
		}
		if (ret == 0 && ob.pos < ob.size && ib.pos < ib.size)
			continue; /* next frame */
	}
	ZSTD_freeDCtx(dctx);
	return r;
}
