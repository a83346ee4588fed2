/* unit_deflate: p2v's 4 KiB-window deflate encoder (imgfmt/deflate4k.c).
 * Every output is inflated by zlib as QEMU does (raw, windowBits -12) and
 * compared; a second inflation hands zlib one output byte at a time, so a
 * match reaching further back than the 4 KiB window fails ("invalid
 * distance too far back") instead of being served from the output buffer. */
#include "driver.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#define MAX_IN (2u << 20)

static uint32_t rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* zlib inflate, windowBits -12; chunk = output bytes per call (0: all). */
static int inflate_4k(const uint8_t *in, size_t in_bytes, uint8_t *out, size_t out_bytes, size_t chunk)
{
	z_stream z;
	int r = Z_OK;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -1;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)in_bytes;
	z.next_out = out;
	while (r == Z_OK) {
		size_t left = out_bytes - z.total_out;

		z.avail_out = (uInt)(chunk && chunk < left ? chunk : left);
		r = inflate(&z, Z_NO_FLUSH);
	}
	inflateEnd(&z);
	return r == Z_STREAM_END && z.total_out == out_bytes ? 0 : -1;
}

/* Compress in[0..n) and prove zlib inflates it back, both ways. */
static long roundtrip(const uint8_t *in, size_t n, uint8_t *out, uint8_t *back, const char *what)
{
	long c = imgfmt_deflate_4k(in, n, out, n + n / 8 + 1024);

	if (c <= 0) {
		fprintf(stderr, "%s: %zu bytes did not compress (%ld)\n", what, n, c);
		CHECK(c > 0);
		return c;
	}
	memset(back, 0xA5, n);
	if (inflate_4k(out, (size_t)c, back, n, 0) || memcmp(back, in, n)) {
		fprintf(stderr, "%s: %zu bytes: zlib inflate disagrees\n", what, n);
		CHECK(0);
	}
	if (inflate_4k(out, (size_t)c, back, n, n > 65536 ? 4096 : 1) || memcmp(back, in, n)) {
		fprintf(stderr, "%s: %zu bytes: inflate through the 4 KiB window disagrees\n", what, n);
		CHECK(0);
	}
	return c;
}

/* Text from a vocabulary: what compresses like files do. */
static void fill_text(uint8_t *p, size_t n, uint32_t seed)
{
	static const char *const words[] = {"disk", "image", "cluster", "the", "of", "qcow2",
					    "refcount", "table", "\n", "offset", "block", "=", "0x",
					    "static", "int", "return", "(", ");", "\t", "VHDX"};
	size_t i = 0;

	while (i < n) {
		const char *w = words[rng_next(&seed) % (sizeof(words) / sizeof(words[0]))];

		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = (uint8_t)w[k];
		if (i < n)
			p[i++] = ' ';
	}
}

static void test_shapes(uint8_t *in, uint8_t *out, uint8_t *back)
{
	static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 258, 259, 511, 512, 4095, 4096, 4097,
				       65536, 65537, 2u << 20};
	uint32_t seed = 12345;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		memset(in, 0, n);
		roundtrip(in, n, out, back, "zeros");
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)rng_next(&seed);
		roundtrip(in, n, out, back, "random");
		fill_text(in, n, (uint32_t)n);
		roundtrip(in, n, out, back, "text");
	}
}

/* Repeats whose period sits at the window's edge: the encoder must not
 * reach back 4096 or more bytes, so a period of 4096 or more gives no
 * matches at that distance. */
static void test_window_edge(uint8_t *in, uint8_t *out, uint8_t *back)
{
	static const size_t periods[] = {4094, 4095, 4096, 4097, 8192};
	uint32_t seed = 99;

	for (size_t k = 0; k < sizeof(periods) / sizeof(periods[0]); k++) {
		size_t p = periods[k], n = 65536;
		long c;

		for (size_t i = 0; i < p; i++)
			in[i] = (uint8_t)rng_next(&seed);
		for (size_t i = p; i < n; i++)
			in[i] = in[i - p];
		c = roundtrip(in, n, out, back, "periodic");
		if (p < 4096)
			CHECK(c > 0 && c < 16384); /* the repeats were found */
		else
			CHECK(c > 60000);         /* nothing beyond the window was used */
	}
}

/* Mixed data: long runs, short repeats, random stretches, text. */
static void test_mixed(uint8_t *in, uint8_t *out, uint8_t *back)
{
	uint32_t seed = 7;
	size_t n = 1u << 20;

	for (size_t i = 0; i < n;) {
		size_t run = 1 + rng_next(&seed) % 3000;
		unsigned kind = rng_next(&seed) % 4;

		if (run > n - i)
			run = n - i;
		if (kind == 0)
			memset(in + i, (int)(rng_next(&seed) & 0xff), run);
		else if (kind == 1)
			for (size_t k = 0; k < run; k++)
				in[i + k] = (uint8_t)rng_next(&seed);
		else if (kind == 2 && i > 5000)
			for (size_t k = 0, d = 1 + rng_next(&seed) % 5000; k < run; k++)
				in[i + k] = in[i + k - d]; /* may overlap: runs repeat */
		else
			fill_text(in + i, run, seed);
		i += run;
	}
	for (size_t off = 0; off < n; off += 65536)
		roundtrip(in + off, 65536, out, back, "mixed");
	roundtrip(in, n, out, back, "mixed 1 MiB");
}

/* Output that does not fit is -ENOSPC, never a write past out_cap. */
static void test_no_room(uint8_t *in, uint8_t *out)
{
	uint32_t seed = 5;

	for (size_t i = 0; i < 65536; i++)
		in[i] = (uint8_t)rng_next(&seed);
	memset(out, 0xEE, 65536 + 16);
	CHECK_EQ(imgfmt_deflate_4k(in, 65536, out, 65536 - 512), -ENOSPC);
	for (size_t i = 65536 - 512; i < 65536 + 16; i++)
		if (out[i] != 0xEE) {
			CHECK(out[i] == 0xEE);
			break;
		}
	CHECK_EQ(imgfmt_deflate_4k(in, 65536, out, 3), -ENOSPC);
}

/* Size against zlib level 6 with the same window (what QEMU writes). */
static void test_vs_zlib(uint8_t *in, uint8_t *out)
{
	size_t n = 65536, ours = 0, theirs = 0;
	uint8_t *zout = out + MAX_IN;

	for (uint32_t k = 0; k < 16; k++) {
		z_stream z;

		fill_text(in, n, k + 1);
		for (size_t i = 0; i < n; i += 1000 + k * 37)
			in[i] = (uint8_t)k;
		ours += (size_t)imgfmt_deflate_4k(in, n, out, n);
		memset(&z, 0, sizeof(z));
		CHECK(deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
		z.next_in = in;
		z.avail_in = (uInt)n;
		z.next_out = zout;
		z.avail_out = (uInt)n;
		CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
		theirs += z.total_out;
		deflateEnd(&z);
	}
	printf("16 text clusters: p2v %zu bytes, zlib level 6 %zu bytes\n", ours, theirs);
	CHECK(ours <= theirs);
}

int main(void)
{
	uint8_t *in = malloc(MAX_IN), *out = malloc(2 * MAX_IN + 65536), *back = malloc(MAX_IN);

	if (!in || !out || !back)
		return 2;
	test_shapes(in, out, back);
	test_window_edge(in, out, back);
	test_mixed(in, out, back);
	test_no_room(in, out);
	test_vs_zlib(in, out);
	free(in);
	free(out);
	free(back);
	UNIT_DONE();
}
