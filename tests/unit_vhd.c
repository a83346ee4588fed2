/* Unit tests of the vpc (VHD) driver: checksums, CHS geometry, create /
 * write / read / block status, differencing reads, and hostile headers
 * refused with the expected message.  Images live in a temporary directory;
 * hostile variants are fed through memfds. */
#include "driver.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static char dir[64];

/* ---- helpers ---- */

static const char *path_in(const char *name)
{
	static char p[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static uint32_t test_checksum(const uint8_t *b, size_t len, size_t csum_off)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += (i >= csum_off && i < csum_off + 4) ? 0 : b[i];
	return ~sum;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	b = malloc((size_t)st.st_size + 1);
	if (b && imgfmt_fd_pread(fd, b, (size_t)st.st_size, 0) < 0) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static int spill(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int r = fd < 0 ? -errno : imgfmt_fd_pwrite(fd, b, len, 0);

	if (fd >= 0)
		close(fd);
	return r;
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) | 1u);
}

static struct imgfmt_image *create(const char *name, uint64_t size, const char *opts)
{
	struct imgfmt_image *img = NULL;
	char err[IMGFMT_ERRMSG_BYTES];

	if (imgfmt_create(&img, path_in(name), "vpc", size, opts, IMGFMT_CREATE_FORCE, err,
			  sizeof(err)) < 0) {
		fprintf(stderr, "create %s: %s\n", name, err);
		return NULL;
	}
	return img;
}

static int commit_close(struct imgfmt_image *img)
{
	int r = imgfmt_commit(img);

	if (r < 0)
		fprintf(stderr, "commit: %s\n", imgfmt_errmsg(img));
	imgfmt_close(img);
	return r;
}

struct logbuf {
	char text[1024];
};

static void log_cb(void *opaque, const char *msg)
{
	struct logbuf *l = opaque;
	size_t n = strlen(l->text);

	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
}

static int open_path(struct imgfmt_image **img, const char *path, unsigned flags, char *err,
		     struct logbuf *log)
{
	struct imgfmt_open_opts o = { .flags = flags, .log = log ? log_cb : NULL, .log_opaque = log };

	err[0] = 0;
	return imgfmt_open(img, path, &o, err, IMGFMT_ERRMSG_BYTES);
}

/* Open bytes through a memfd (probing); returns the open result, err filled. */
static int open_bytes(const uint8_t *b, size_t len, char *err, struct logbuf *log)
{
	struct imgfmt_image *img;
	char path[64];
	int fd = memfd_create("unit-vhd", 0), r;

	if (fd < 0 || imgfmt_fd_pwrite(fd, b, len, 0) < 0)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open_path(&img, path, IMGFMT_OPEN_NO_BACKING, err, log);
	if (r == 0) {
		uint8_t buf[4096];
		imgfmt_pread(img, buf, sizeof(buf), 0); /* exercise */
		imgfmt_close(img);
	}
	close(fd);
	return r;
}

static void put_be32(uint8_t *p, uint32_t v) { imgfmt_put_be32(p, v); }
static void put_be64(uint8_t *p, uint64_t v) { imgfmt_put_be64(p, v); }

static void fix_footer(uint8_t *f) { put_be32(f + 64, test_checksum(f, 512, 64)); }
static void fix_header(uint8_t *h) { put_be32(h + 36, test_checksum(h, 1024, 36)); }

/* ---- checksums and geometry ---- */

static void test_checksums(void)
{
	struct imgfmt_image *img = create("sum.vhd", 3 * MiB, "block_size=512K");
	uint8_t *b;
	size_t len;

	CHECK(img != NULL);
	if (!img || commit_close(img) < 0)
		return;
	b = slurp(path_in("sum.vhd"), &len);
	CHECK(b != NULL);
	if (!b)
		return;
	CHECK(!memcmp(b, "conectix", 8));
	CHECK(!memcmp(b + len - 512, b, 512)); /* copy == trailing footer */
	CHECK_EQ(imgfmt_get_be32(b + 64), test_checksum(b, 512, 64));
	CHECK(!memcmp(b + 512, "cxsparse", 8));
	CHECK_EQ(imgfmt_get_be32(b + 512 + 36), test_checksum(b + 512, 1024, 36));
	CHECK_EQ(imgfmt_get_be32(b + 60), 3);               /* dynamic */
	CHECK_EQ(imgfmt_get_be64(b + 48), 3 * MiB);         /* current size */
	CHECK_EQ(imgfmt_get_be64(b + 16), 512);             /* data offset */
	CHECK_EQ(imgfmt_get_be32(b + 512 + 28), 6);         /* max table entries */
	CHECK_EQ(imgfmt_get_be32(b + 512 + 32), 512 * KiB); /* block size */
	CHECK(!memcmp(b + 28, "qem2", 4));
	CHECK_EQ(len, 512 + 1024 + 512 + 512);              /* nothing allocated */
	for (size_t i = 1536; i < 1536 + 24; i++)
		CHECK_EQ(b[i], 0xFF);
	free(b);
}

static void test_geometry(void)
{
	static const struct {
		uint64_t size;
		unsigned c, h, s;
	} t[] = {
		{ 10 * MiB, 301, 4, 17 },   { 64 * MiB, 963, 8, 17 },
		{ 1 * GiB, 2080, 16, 63 },  { 127 * GiB, 65278, 16, 255 },
		{ 200 * GiB, 65535, 16, 255 }, { 52430848, 1003, 6, 17 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct imgfmt_image *img = create("geo.vhd", t[i].size, NULL);
		uint8_t *b;
		size_t len;
		if (!img || commit_close(img) < 0) {
			CHECK(!"create");
			continue;
		}
		b = slurp(path_in("geo.vhd"), &len);
		if (!b)
			continue;
		CHECK_EQ(imgfmt_get_be16(b + 56), t[i].c);
		CHECK_EQ(b[58], t[i].h);
		CHECK_EQ(b[59], t[i].s);
		CHECK_EQ(imgfmt_get_be64(b + 48), t[i].size);
		free(b);
	}
}

/* ---- create, write, read ---- */

/* From off, extents of type cover len bytes, then another type begins
 * (blocks whose data do not follow each other in the file are extents of
 * their own). */
static void expect_extent(struct imgfmt_image *img, uint64_t off, uint64_t len,
			  enum imgfmt_extent_type type)
{
	uint64_t size = imgfmt_size_bytes(img), end = off;
	struct imgfmt_extent e;

	while (end < size && imgfmt_block_status(img, end, size - end, &e) == 0 && e.type == type)
		end += e.length_bytes;
	CHECK_EQ(end - off, len);
}

static void test_dynamic_rw(void)
{
	const uint64_t size = 8 * MiB + 4096;
	struct imgfmt_image *img = create("rw.vhd", size, "subformat=dynamic,block_size=512K");
	uint8_t *data = malloc(size), *back = calloc(1, size), *file;
	char err[IMGFMT_ERRMSG_BYTES];
	size_t len;

	CHECK(img && data && back);
	if (!img || !data || !back)
		return;
	memset(data, 0, size);
	CHECK(imgfmt_is_fresh(img));
	CHECK_EQ(imgfmt_cluster_bytes(img), 512 * KiB);
	fill(data + 700 * KiB, 1 * MiB, 1);                /* blocks 1..3 */
	fill(data + 5 * MiB + 3, 1000, 2);                 /* unaligned in block 10 */
	fill(data + size - 100, 100, 3);                   /* last, partial block */
	CHECK_EQ(imgfmt_pwrite(img, data + 700 * KiB, 1 * MiB, 700 * KiB), 0);
	CHECK_EQ(imgfmt_pwrite(img, data + 5 * MiB + 3, 1000, 5 * MiB + 3), 0);
	CHECK_EQ(imgfmt_pwrite(img, data + size - 100, 100, size - 100), 0);
	CHECK_EQ(imgfmt_write_zeroes(img, 1 * MiB, 6 * MiB), 0); /* unallocated: no-op */
	CHECK_EQ(imgfmt_pread(img, back, size, 0), 0);     /* before any flush */
	CHECK(!memcmp(back, data, size));
	expect_extent(img, 0, 512 * KiB, IMGFMT_EXTENT_HOLE);
	expect_extent(img, 512 * KiB, 1536 * KiB, IMGFMT_EXTENT_DATA); /* 3 blocks merged */
	expect_extent(img, 2 * MiB, 3 * MiB, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(commit_close(img), 0);

	file = slurp(path_in("rw.vhd"), &len);
	CHECK(file != NULL);
	/* 5 blocks after footer copy, header, one BAT sector (2048 bytes); each
	 * block's bitmap sector sits just before a 4 KiB boundary so its data is
	 * 4 KiB-aligned: bitmaps at 3584 + k * (512 KiB + 4 KiB), then the footer */
	CHECK_EQ(len, 3584 + 4 * (512 * KiB + 4096) + 512 + 512 * KiB + 512);
	if (file) {
		/* block 1 (first allocated): sectors from 376 (700K - 512K) on */
		const uint8_t *bm = file + 3584;
		CHECK_EQ(imgfmt_get_be32(file + 1536 + 4), 3584 / 512);
		CHECK_EQ(imgfmt_get_be32(file + 1536 + 2 * 4), (3584 + 512 * KiB + 4096) / 512);
		CHECK_EQ(bm[0], 0);
		CHECK_EQ(bm[46], 0);
		CHECK_EQ(bm[47], 0xFF);       /* sectors 376..383 */
		CHECK_EQ(bm[127], 0xFF);      /* sector 1023, the last of the block */
		CHECK_EQ(imgfmt_get_be32(file + 1536 + 0), 0xFFFFFFFFu);
		CHECK_EQ(imgfmt_get_be32(file + 1536 + 6 * 4), 0xFFFFFFFFu); /* write_zeroes */
		free(file);
	}

	CHECK_EQ(open_path(&img, path_in("rw.vhd"), IMGFMT_OPEN_RDWR, err, NULL), 0);
	if (!img)
		return;
	CHECK_EQ(imgfmt_size_bytes(img), size);
	memset(back, 0, size);
	CHECK_EQ(imgfmt_pread(img, back, size, 0), 0);
	CHECK(!memcmp(back, data, size));
	/* zeroes over allocated data, then a write that allocates a new block */
	memset(data + 800 * KiB, 0, 100 * KiB);
	CHECK_EQ(imgfmt_write_zeroes(img, 100 * KiB, 800 * KiB), 0);
	fill(data + 7 * MiB, 4096, 4);
	CHECK_EQ(imgfmt_pwrite(img, data + 7 * MiB, 4096, 7 * MiB), 0);
	CHECK_EQ(imgfmt_close(img), 0);
	CHECK_EQ(open_path(&img, path_in("rw.vhd"), 0, err, NULL), 0);
	if (!img)
		return;
	CHECK_EQ(imgfmt_pread(img, back, size, 0), 0);
	CHECK(!memcmp(back, data, size));
	imgfmt_close(img);
	free(data);
	free(back);
}

static void test_fixed_and_azure(void)
{
	struct imgfmt_image *img = create("az.vhd", 5 * MiB + 1, "azure=on");
	char err[IMGFMT_ERRMSG_BYTES];
	uint8_t buf[8192], back[8192];
	size_t len;
	uint8_t *b;

	CHECK(img != NULL);
	if (!img)
		return;
	CHECK_EQ(imgfmt_size_bytes(img), 6 * MiB);
	fill(buf, sizeof(buf), 9);
	CHECK_EQ(imgfmt_pwrite(img, buf, sizeof(buf), 6 * MiB - sizeof(buf)), 0);
	CHECK_EQ(commit_close(img), 0);
	b = slurp(path_in("az.vhd"), &len);
	CHECK_EQ(len, 6 * MiB + 512);
	if (b) {
		CHECK(!memcmp(b + 6 * MiB, "conectix", 8));
		CHECK_EQ(imgfmt_get_be32(b + 6 * MiB + 60), 2);
		CHECK(!memcmp(b + 6 * MiB - sizeof(buf), buf, sizeof(buf)));
		free(b);
	}
	CHECK_EQ(open_path(&img, path_in("az.vhd"), 0, err, NULL), 0);
	if (img) {
		CHECK_EQ(imgfmt_pread(img, back, sizeof(back), 6 * MiB - sizeof(back)), 0);
		CHECK(!memcmp(back, buf, sizeof(buf)));
		imgfmt_close(img);
	}
}

static void expect_create_fail(uint64_t size, const char *opts, const char *text)
{
	struct imgfmt_image *img = NULL;
	char err[IMGFMT_ERRMSG_BYTES] = "";
	int r = imgfmt_create(&img, path_in("bad.vhd"), "vhd", size, opts, IMGFMT_CREATE_FORCE, err,
			      sizeof(err));

	CHECK(r < 0);
	if (r == 0)
		imgfmt_close(img);
	if (!strstr(err, text)) {
		fprintf(stderr, "create %s: expected '%s' in '%s'\n", opts ? opts : "", text, err);
		CHECK(!"create error text");
	}
}

static void test_create_limits(void)
{
	expect_create_fail(2041 * GiB, NULL, "VHDX");
	expect_create_fail(1 * MiB, "block_size=768K", "block_size");
	expect_create_fail(1 * MiB, "block_size=256K", "block_size");
	expect_create_fail(1 * MiB, "subformat=sparse", "subformat");
	expect_create_fail(1 * MiB, "subformat=dynamic,azure=on", "azure");
	expect_create_fail(1 * MiB, "subformat=fixed,block_size=2M", "block_size");
	/* the limit itself is fine (sparse BAT of 1020 Ki entries) */
	struct imgfmt_image *img = create("max.vhd", 2040 * GiB, NULL);
	CHECK(img != NULL);
	if (img)
		imgfmt_close(img); /* not committed: removed */
}

/* ---- hostile images ---- */

struct base {
	uint8_t *b;
	size_t len;
};

/* A 4 MiB dynamic image, 512 KiB blocks, blocks 0 and 2 allocated. */
static bool make_base(struct base *bs)
{
	struct imgfmt_image *img = create("base.vhd", 4 * MiB, "block_size=512K");
	uint8_t buf[4096];

	if (!img)
		return false;
	fill(buf, sizeof(buf), 5);
	imgfmt_pwrite(img, buf, sizeof(buf), 0);
	imgfmt_pwrite(img, buf, sizeof(buf), 1 * MiB);
	if (commit_close(img) < 0)
		return false;
	bs->b = slurp(path_in("base.vhd"), &bs->len);
	return bs->b != NULL;
}

static void expect_refused(const struct base *bs, const char *what, void (*mutate)(uint8_t *, size_t),
			   const char *text)
{
	uint8_t *c = malloc(bs->len);
	char err[IMGFMT_ERRMSG_BYTES];
	int r;

	if (!c)
		return;
	memcpy(c, bs->b, bs->len);
	mutate(c, bs->len);
	r = open_bytes(c, bs->len, err, NULL);
	if (r >= 0 || !strstr(err, text) || strchr(err, '\n')) {
		fprintf(stderr, "%s: r=%d, expected '%s' in '%s'\n", what, r, text, err);
		CHECK(!"hostile image refused with the expected text");
	}
	free(c);
}

/* Mutations: each edits both footers (or the header) and fixes checksums. */
static void both_footers(uint8_t *b, size_t len, void (*edit)(uint8_t *))
{
	edit(b);
	fix_footer(b);
	edit(b + len - 512);
	fix_footer(b + len - 512);
}
static void e_type(uint8_t *f) { put_be32(f + 60, 7); }
static void e_version(uint8_t *f) { put_be32(f + 12, 0x00020000); }
static void e_size_odd(uint8_t *f) { put_be64(f + 48, 4 * MiB + 100); }
static void e_size_big(uint8_t *f) { put_be64(f + 48, 8 * MiB); }
static void e_data_off(uint8_t *f) { put_be64(f + 16, 1ull << 40); }
static void e_data_off0(uint8_t *f) { put_be64(f + 16, 0); }
static void m_type(uint8_t *b, size_t n) { both_footers(b, n, e_type); }
static void m_version(uint8_t *b, size_t n) { both_footers(b, n, e_version); }
static void m_size_odd(uint8_t *b, size_t n) { both_footers(b, n, e_size_odd); }
static void m_size_big(uint8_t *b, size_t n) { both_footers(b, n, e_size_big); }
static void m_data_off(uint8_t *b, size_t n) { both_footers(b, n, e_data_off); }
static void m_data_off0(uint8_t *b, size_t n) { both_footers(b, n, e_data_off0); }
static void m_footer_sums(uint8_t *b, size_t n) { b[100] ^= 1; b[n - 512 + 100] ^= 1; }
static void m_header_sum(uint8_t *b, size_t n) { (void)n; b[512 + 100] ^= 1; }
static void m_header_cookie(uint8_t *b, size_t n) { (void)n; b[512] = 'X'; fix_header(b + 512); }
static void m_block_np2(uint8_t *b, size_t n) { (void)n; put_be32(b + 512 + 32, 3 * 512 * 1024); fix_header(b + 512); }
static void m_block_huge(uint8_t *b, size_t n) { (void)n; put_be32(b + 512 + 32, 1u << 31); fix_header(b + 512); }
static void m_block_zero(uint8_t *b, size_t n) { (void)n; put_be32(b + 512 + 32, 0); fix_header(b + 512); }
static void m_entries(uint8_t *b, size_t n) { (void)n; put_be32(b + 512 + 28, 7); fix_header(b + 512); }
static void m_entries_huge(uint8_t *b, size_t n) { (void)n; put_be32(b + 512 + 28, 0xFFFFFFFF); fix_header(b + 512); }
static void m_table_off(uint8_t *b, size_t n) { put_be64(b + 512 + 16, n - 8); fix_header(b + 512); }
static void m_table_hdr(uint8_t *b, size_t n) { (void)n; put_be64(b + 512 + 16, 600); fix_header(b + 512); }
static void m_bat_past(uint8_t *b, size_t n) { put_be32(b + 1536, (uint32_t)(n / 512)); }
static void m_bat_huge(uint8_t *b, size_t n) { (void)n; put_be32(b + 1536 + 8, 0xFFFFFFF0u); }
static void m_bat_hdr(uint8_t *b, size_t n) { (void)n; put_be32(b + 1536, 1); }
static void m_bat_bat(uint8_t *b, size_t n) { (void)n; put_be32(b + 1536, 3); }
static void m_diff_loc(uint8_t *b, size_t n)
{
	uint8_t *h = b + 512, *loc = h + 576;
	for (uint8_t *f = b; f; f = (f == b ? b + n - 512 : NULL)) {
		put_be32(f + 60, 4);
		fix_footer(f);
	}
	put_be32(loc, 0x57327275);      /* W2ru */
	put_be32(loc + 4, 1);
	put_be32(loc + 8, 64);
	put_be64(loc + 16, n - 10);     /* runs past the end */
	fix_header(h);
}
static void m_diff_loclen(uint8_t *b, size_t n)
{
	uint8_t *h = b + 512, *loc = h + 576 + 24 * 3;
	for (uint8_t *f = b; f; f = (f == b ? b + n - 512 : NULL)) {
		put_be32(f + 60, 4);
		fix_footer(f);
	}
	put_be32(loc, 0x4D616358);      /* MacX */
	put_be32(loc + 8, 0x7FFFFFFF);
	put_be64(loc + 16, 512);
	fix_header(h);
}
static void m_tiny(uint8_t *b, size_t n) { (void)b; (void)n; }

static void test_hostile(void)
{
	struct base bs;
	char err[IMGFMT_ERRMSG_BYTES];

	if (!make_base(&bs)) {
		CHECK(!"base image");
		return;
	}
	CHECK_EQ(open_bytes(bs.b, bs.len, err, NULL), 0);
	expect_refused(&bs, "footer checksums", m_footer_sums, "footer checksum");
	expect_refused(&bs, "disk type", m_type, "disk type 7");
	expect_refused(&bs, "version", m_version, "file format version");
	expect_refused(&bs, "odd size", m_size_odd, "current size");
	expect_refused(&bs, "size beyond BAT", m_size_big, "max table entries");
	expect_refused(&bs, "data offset", m_data_off, "data offset");
	expect_refused(&bs, "data offset 0", m_data_off0, "data offset");
	expect_refused(&bs, "header checksum", m_header_sum, "dynamic header checksum");
	expect_refused(&bs, "header cookie", m_header_cookie, "cxsparse");
	expect_refused(&bs, "block size 1.5M", m_block_np2, "block size");
	expect_refused(&bs, "block size 2G", m_block_huge, "block size");
	expect_refused(&bs, "block size 0", m_block_zero, "block size");
	expect_refused(&bs, "max entries", m_entries, "max table entries");
	expect_refused(&bs, "max entries huge", m_entries_huge, "table offset");
	expect_refused(&bs, "table offset", m_table_off, "table offset");
	expect_refused(&bs, "table over header", m_table_hdr, "overlaps");
	expect_refused(&bs, "BAT past end", m_bat_past, "BAT entry 0");
	expect_refused(&bs, "BAT huge", m_bat_huge, "BAT entry 2");
	expect_refused(&bs, "BAT over header", m_bat_hdr, "BAT entry 0");
	expect_refused(&bs, "BAT over BAT", m_bat_bat, "overlaps");
	expect_refused(&bs, "locator offset", m_diff_loc, "parent locator 0");
	expect_refused(&bs, "locator length", m_diff_loclen, "parent locator 3");
	(void)m_tiny;
	CHECK(open_bytes(bs.b, 100, err, NULL) < 0); /* truncated: no VHD at all */

	/* trailing footer damaged: the copy at offset 0 is used, with a warning */
	{
		struct logbuf log = { "" };
		bs.b[bs.len - 512 + 200] ^= 0x55;
		CHECK_EQ(open_bytes(bs.b, bs.len, err, &log), 0);
		CHECK(strstr(log.text, "footer checksum") != NULL);
		CHECK(strstr(log.text, "copy at offset 0") != NULL);
		bs.b[0 + 200] ^= 0x55; /* and the copy too: refused */
		CHECK(open_bytes(bs.b, bs.len, err, NULL) < 0);
		CHECK(strstr(err, "footer checksum") != NULL);
	}
	free(bs.b);
}

/* ---- differencing ---- */

static void put_utf16le(uint8_t *p, const char *s)
{
	for (; *s; s++, p += 2)
		imgfmt_put_le16(p, (uint8_t)*s);
}

static void put_utf16be(uint8_t *p, const char *s)
{
	for (; *s; s++, p += 2)
		imgfmt_put_be16(p, (uint8_t)*s);
}

/* A differencing child of parent (4 MiB, 512 KiB blocks): block 1 allocated
 * with sectors 8..15 from the child (pattern 7); one locator. */
static bool make_child(const char *name, const uint8_t *parent_footer, uint32_t code,
		       const char *locator, const char *pname)
{
	const size_t bat_at = 1536, loc_at = 2048, blk_at = 2560;
	const size_t len = blk_at + 512 + 512 * KiB + 512;
	uint8_t *b = calloc(1, len), *f, *h;
	bool ok;

	if (!b)
		return false;
	f = b;
	h = b + 512;
	memcpy(f, parent_footer, 512);
	put_be32(f + 60, 4);
	for (int i = 68; i < 84; i++)
		f[i] ^= 0xA5;                                     /* child's own UUID */
	fix_footer(f);
	memcpy(b + len - 512, f, 512);
	memcpy(h, "cxsparse", 8);
	put_be64(h + 8, UINT64_MAX);
	put_be64(h + 16, bat_at);
	put_be32(h + 24, 0x00010000);
	put_be32(h + 28, 8);
	put_be32(h + 32, 512 * KiB);
	memcpy(h + 40, parent_footer + 68, 16);                  /* parent UUID */
	put_utf16be(h + 64, pname);
	if (code == 0x4D616358) {                                  /* MacX: UTF-8 */
		memcpy(b + loc_at, locator, strlen(locator));
		put_be32(h + 576 + 8, (uint32_t)strlen(locator));
	} else {
		put_utf16le(b + loc_at, locator);
		put_be32(h + 576 + 8, (uint32_t)(2 * strlen(locator)));
	}
	put_be32(h + 576, code);
	put_be32(h + 576 + 4, 1);
	put_be64(h + 576 + 16, loc_at);
	fix_header(h);
	memset(b + bat_at, 0xFF, 512);
	put_be32(b + bat_at + 4, blk_at / 512);
	b[blk_at + 1] = 0xFF;                                      /* sectors 8..15 */
	memset(b + blk_at + 512 + 8 * 512, 7, 8 * 512);
	ok = spill(path_in(name), b, len) == 0;
	free(b);
	return ok;
}

static void check_child(const char *name, const uint8_t *pdata, const char *warn_text)
{
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	struct logbuf log = { "" };
	uint8_t *back = malloc(4 * MiB), *want = malloc(4 * MiB);
	struct imgfmt_info info;
	struct imgfmt_extent e;

	if (!back || !want || open_path(&img, path_in(name), 0, err, &log) < 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		CHECK(!"open differencing child");
		free(back);
		free(want);
		return;
	}
	memcpy(want, pdata, 4 * MiB);
	memset(want + 512 * KiB + 8 * 512, 7, 8 * 512);
	CHECK_EQ(imgfmt_pread(img, back, 4 * MiB, 0), 0);
	CHECK(!memcmp(back, want, 4 * MiB));
	CHECK_EQ(imgfmt_pread(img, back, 5000, 512 * KiB + 7 * 512 + 3), 0); /* unaligned */
	CHECK(!memcmp(back, want + 512 * KiB + 7 * 512 + 3, 5000));
	/* block 1: sectors 0..7 from the parent (data there), 8..15 ours */
	CHECK_EQ(imgfmt_block_status(img, 512 * KiB + 8 * 512, 1 * MiB, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_DATA);
	CHECK_EQ(e.length_bytes, 8 * 512);
	CHECK_EQ(imgfmt_block_status(img, 2 * MiB, 2 * MiB, &e), 0); /* parent hole */
	CHECK_EQ(e.type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(imgfmt_info(img, &info), 0);
	CHECK(!strcmp(info.subformat, "differencing"));
	CHECK(strstr(info.backing_file, "parent.vhd") != NULL);
	if (warn_text)
		CHECK(strstr(log.text, warn_text) != NULL);
	imgfmt_close(img);
	free(back);
	free(want);
}

static void test_differencing(void)
{
	struct imgfmt_image *img = create("parent.vhd", 4 * MiB, "block_size=512K");
	uint8_t *pdata = calloc(1, 4 * MiB), *pfile;
	char err[IMGFMT_ERRMSG_BYTES], url[512];
	size_t len;

	if (!img || !pdata)
		return;
	fill(pdata, 2 * MiB, 11); /* blocks 0..3 */
	CHECK_EQ(imgfmt_pwrite(img, pdata, 2 * MiB, 0), 0);
	CHECK_EQ(commit_close(img), 0);
	pfile = slurp(path_in("parent.vhd"), &len);
	if (!pfile)
		return;
	CHECK(make_child("c1.vhd", pfile, 0x57327275, ".\\parent.vhd", "C:\\x\\parent.vhd"));
	check_child("c1.vhd", pdata, NULL);
	CHECK(make_child("c2.vhd", pfile, 0x57326B75, "D:\\VMs\\parent.vhd", "parent.vhd"));
	check_child("c2.vhd", pdata, NULL);
	snprintf(url, sizeof(url), "file://localhost%s/parent%%2evhd", dir);
	CHECK(make_child("c3.vhd", pfile, 0x4D616358, url, "parent.vhd"));
	check_child("c3.vhd", pdata, NULL);
	CHECK(make_child("c4.vhd", pfile, 0x4D616358, "file:///nonexistent/dir/parent.vhd",
			 "parent.vhd"));
	check_child("c4.vhd", pdata, "using 'parent.vhd' beside the image");
	CHECK(make_child("c5.vhd", pfile, 0x57327275, ".\\missing.vhd", "missing.vhd"));
	CHECK(open_path(&img, path_in("c5.vhd"), 0, err, NULL) < 0);
	CHECK(strstr(err, "parent") && strstr(err, "not found"));
	pfile[68] ^= 1; /* the child expects another parent UUID */
	CHECK(make_child("c6.vhd", pfile, 0x57327275, ".\\parent.vhd", "parent.vhd"));
	CHECK(open_path(&img, path_in("c6.vhd"), 0, err, NULL) < 0);
	CHECK(strstr(err, "UUID") != NULL);
	CHECK(open_path(&img, path_in("c1.vhd"), IMGFMT_OPEN_RDWR, err, NULL) < 0);
	CHECK(strstr(err, "differencing") != NULL);
	free(pfile);
	free(pdata);
}

static void test_check_overlap(void)
{
	struct base bs;
	struct imgfmt_image *img;
	struct imgfmt_check chk = { 0 };
	char err[IMGFMT_ERRMSG_BYTES];

	if (!make_base(&bs))
		return;
	/* entry 1 points at block 0's data too */
	memcpy(bs.b + 1536 + 4, bs.b + 1536, 4);
	CHECK(spill(path_in("ovl.vhd"), bs.b, bs.len) == 0);
	CHECK_EQ(open_path(&img, path_in("ovl.vhd"), 0, err, NULL), 0);
	if (img) {
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 1);
		CHECK_EQ(chk.leaks, 0);
		CHECK_EQ(chk.allocated_clusters, 3);
		CHECK_EQ(chk.total_clusters, 8);
		imgfmt_close(img);
	}
	/* entry 1 back to unallocated: the original, clean image */
	memcpy(bs.b + 1536 + 4, "\xff\xff\xff\xff", 4);
	CHECK(spill(path_in("ok.vhd"), bs.b, bs.len) == 0);
	CHECK_EQ(open_path(&img, path_in("ok.vhd"), 0, err, NULL), 0);
	if (img) {
		memset(&chk, 0, sizeof(chk));
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 0);
		CHECK_EQ(chk.leaks, 0);
		CHECK_EQ(chk.allocated_clusters, 2);
		imgfmt_close(img);
	}
	memcpy(bs.b + 1536 + 8, "\xff\xff\xff\xff", 4); /* entry 2 forgotten: a leak */
	CHECK(spill(path_in("leak.vhd"), bs.b, bs.len) == 0);
	CHECK_EQ(open_path(&img, path_in("leak.vhd"), 0, err, NULL), 0);
	if (img) {
		memset(&chk, 0, sizeof(chk));
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 0);
		CHECK_EQ(chk.leaks, 1);
		CHECK_EQ(chk.allocated_clusters, 1);
		imgfmt_close(img);
	}
	free(bs.b);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/unit-vhd.XXXXXX");
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	test_checksums();
	test_geometry();
	test_dynamic_rw();
	test_fixed_and_azure();
	test_create_limits();
	test_hostile();
	test_differencing();
	test_check_overlap();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	UNIT_DONE();
}
