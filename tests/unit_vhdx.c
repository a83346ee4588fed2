/* Unit tests of the vhdx driver: CRC-32C vectors, the chunk ratio, create ->
 * write -> read through the API, the BAT interleaving, hostile structures
 * (bytes built in memory, opened through a memfd) and log replay.
 *
 * Also helpers for the shell tests:
 *   unit_vhdx mklog IN OUT BLOCK_BYTES   copy IN to OUT adding a log entry
 *   unit_vhdx write IMG OFF LEN SEED     write a pattern into an image (RW open)
 *   unit_vhdx pattern OUT 0 LEN SEED     the same pattern into a plain file
 *   unit_vhdx mkdiff DIR                 a differencing pair, and what the child reads */
#include "unit.h"
#include "vhdx.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define META_OFF (2u * MIB)   /* layout of images we create with log_size=1M */
#define BAT_OFF (3u * MIB)

static char tmpdir[160];

struct blob {
	uint8_t *p;
	size_t n;
};

static void pattern(uint8_t *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

static int read_whole(const char *path, struct blob *b)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	b->n = (size_t)st.st_size;
	b->p = malloc(b->n);
	if (!b->p || imgfmt_fd_pread(fd, b->p, b->n, 0) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int write_whole(const char *path, const struct blob *b)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int r = fd < 0 ? -1 : imgfmt_fd_pwrite(fd, b->p, b->n, 0);

	if (fd >= 0)
		close(fd);
	return r;
}

static struct blob copy_blob(const struct blob *b)
{
	struct blob c = { malloc(b->n), b->n };

	memcpy(c.p, b->p, b->n);
	return c;
}

/* Open bytes as an image through a memfd. */
static int open_blob(const struct blob *b, unsigned flags, struct imgfmt_image **img, char *err)
{
	struct imgfmt_open_opts o = { .format = NULL, .flags = flags };
	char path[64];
	int fd = memfd_create("vhdx-unit", 0), r;

	if (fd < 0 || imgfmt_fd_pwrite(fd, b->p, b->n, 0) < 0)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = imgfmt_open(img, path, &o, err, IMGFMT_ERRMSG_BYTES);
	close(fd);
	return r;
}

static void expect_refused(const struct blob *b, unsigned flags, const char *needle,
			   const char *what)
{
	char err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	int r = open_blob(b, flags, &img, err);

	CHECK(r < 0);
	if (r == 0) {
		fprintf(stderr, "%s: opened, expected refusal\n", what);
		imgfmt_close(img);
		return;
	}
	if (!strstr(err, needle)) {
		fprintf(stderr, "%s: message '%s' lacks '%s'\n", what, err, needle);
		unit_failures++;
	} else {
		printf("refused as expected (%s): %s\n", what, err);
	}
}

/* ---- CRC-32C and the chunk ratio ---- */

static void test_crc32c(void)
{
	uint8_t zeros[32] = { 0 }, ones[32];

	memset(ones, 0xff, sizeof(ones));
	CHECK_EQ(imgfmt_crc32c(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ(imgfmt_crc32c(0, zeros, 32), 0x8A9136AAu);
	CHECK_EQ(imgfmt_crc32c(0, ones, 32), 0x62A8AB43u);
	/* chaining gives the same result as one call */
	CHECK_EQ(imgfmt_crc32c(imgfmt_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void test_chunk_ratio(void)
{
	static const struct { uint32_t lss, block; uint64_t ratio; } t[] = {
		{ 512, 1 * MIB, 4096 },   { 512, 2 * MIB, 2048 },   { 512, 32 * MIB, 128 },
		{ 512, 256 * MIB, 16 },   { 4096, 1 * MIB, 32768 }, { 4096, 32 * MIB, 1024 },
		{ 4096, 256 * MIB, 128 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_EQ(vhdx_chunk_ratio(t[i].lss, t[i].block), t[i].ratio);
}

/* ---- through the API ---- */

static struct imgfmt_image *create_img(const char *name, uint64_t size, const char *opts)
{
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	r = imgfmt_create(&img, path, "vhdx", size, opts, IMGFMT_CREATE_FORCE, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "create %s: %s\n", name, err);
	CHECK_EQ(r, 0);
	return r == 0 ? img : NULL;
}

static struct imgfmt_image *open_path(const char *name, unsigned flags)
{
	struct imgfmt_open_opts o = { .flags = flags };
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	r = imgfmt_open(&img, path, &o, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "open %s: %s\n", name, err);
	CHECK_EQ(r, 0);
	return r == 0 ? img : NULL;
}

static void check_content(struct imgfmt_image *img, const uint8_t *shadow, uint64_t size)
{
	uint8_t *buf = malloc(size);

	CHECK_EQ(imgfmt_pread(img, buf, size, 0), 0);
	CHECK(memcmp(buf, shadow, size) == 0);
	/* unaligned small reads across a block boundary */
	CHECK_EQ(imgfmt_pread(img, buf, 1001, MIB - 500), 0);
	CHECK(memcmp(buf, shadow + MIB - 500, 1001) == 0);
	free(buf);
}

static void expect_extent(struct imgfmt_image *img, uint64_t off, uint64_t len,
			  enum imgfmt_extent_type type)
{
	struct imgfmt_extent e;

	CHECK_EQ(imgfmt_block_status(img, off, imgfmt_size_bytes(img) - off, &e), 0);
	CHECK_EQ(e.type, type);
	CHECK_EQ(e.length_bytes, len);
}

static void write_dynamic(struct imgfmt_image *img, uint8_t *shadow)
{
	uint8_t *buf = malloc(4 * MIB);

	pattern(buf, 4 * MIB, 1);
	CHECK_EQ(imgfmt_pwrite(img, buf, 300, MIB - 100), 0); /* blocks 0 and 1 */
	memcpy(shadow + MIB - 100, buf, 300);
	CHECK_EQ(imgfmt_pwrite(img, buf, 3 * MIB, 5 * MIB + 512), 0); /* blocks 5..8 */
	memcpy(shadow + 5 * MIB + 512, buf, 3 * MIB);
	CHECK_EQ(imgfmt_write_zeroes(img, MIB, 9 * MIB), 0); /* unallocated: no-op */
	CHECK_EQ(imgfmt_write_zeroes(img, 4096, 6 * MIB), 0);
	memset(shadow + 6 * MIB, 0, 4096);
	free(buf);
}

static void test_api_dynamic(void)
{
	const uint64_t size = 10 * MIB;
	uint8_t *shadow = calloc(1, size);
	struct imgfmt_image *img = create_img("dyn.vhdx", size, "block_size=1M");
	struct imgfmt_info info;

	if (!img)
		return;
	CHECK_EQ(imgfmt_cluster_bytes(img), MIB);
	expect_extent(img, 0, size, IMGFMT_EXTENT_HOLE);
	write_dynamic(img, shadow);
	check_content(img, shadow, size);
	expect_extent(img, 0, 2 * MIB, IMGFMT_EXTENT_DATA);
	expect_extent(img, 2 * MIB, 3 * MIB, IMGFMT_EXTENT_HOLE);
	expect_extent(img, 5 * MIB, 4 * MIB, IMGFMT_EXTENT_DATA);
	expect_extent(img, 9 * MIB, MIB, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(imgfmt_commit(img), 0);
	CHECK_EQ(imgfmt_close(img), 0);
	img = open_path("dyn.vhdx", 0);
	if (img) {
		struct imgfmt_check chk = { 0 };
		check_content(img, shadow, size);
		CHECK_EQ(imgfmt_info(img, &info), 0);
		CHECK(!strcmp(info.subformat, "dynamic"));
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 0);
		CHECK_EQ(chk.allocated_clusters, 6);
		imgfmt_close(img);
	}
	free(shadow);
}

/* Reopen read-write, write one more block, and read everything back. */
static void test_reopen_rw(void)
{
	const uint64_t size = 10 * MIB;
	uint8_t *shadow = calloc(1, size), *buf = malloc(MIB);
	struct imgfmt_image *img = open_path("dyn.vhdx", 0);

	if (!img)
		return;
	CHECK_EQ(imgfmt_pread(img, shadow, size, 0), 0);
	imgfmt_close(img);
	img = open_path("dyn.vhdx", IMGFMT_OPEN_RDWR);
	if (!img)
		return;
	pattern(buf, MIB, 9);
	CHECK_EQ(imgfmt_pwrite(img, buf, MIB, 9 * MIB), 0);
	memcpy(shadow + 9 * MIB, buf, MIB);
	CHECK_EQ(imgfmt_close(img), 0);
	img = open_path("dyn.vhdx", 0);
	if (img) {
		check_content(img, shadow, size);
		imgfmt_close(img);
	}
	free(buf);
	free(shadow);
}

static void test_api_fixed(void)
{
	const uint64_t size = 3 * MIB + 4096;
	uint8_t *shadow = calloc(1, size), buf[8192];
	struct imgfmt_image *img = create_img("fixed.vhdx", size,
					      "subformat=fixed,block_size=1M,logical_sector_size=4096");

	if (!img)
		return;
	expect_extent(img, 0, size, IMGFMT_EXTENT_DATA);
	check_content(img, shadow, size);
	pattern(buf, sizeof(buf), 3);
	CHECK_EQ(imgfmt_pwrite(img, buf, sizeof(buf), 3 * MIB - 4096), 0);
	memcpy(shadow + 3 * MIB - 4096, buf, sizeof(buf));
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	img = open_path("fixed.vhdx", 0);
	if (img) {
		struct imgfmt_info info;
		check_content(img, shadow, size);
		CHECK_EQ(imgfmt_info(img, &info), 0);
		CHECK(!strcmp(info.subformat, "fixed"));
		imgfmt_close(img);
	}
	free(shadow);
}

/* 256 MiB blocks, 512-byte sectors: chunk ratio 16, so payload block 16 is
 * BAT entry 17 and entry 16 is the (unused) sector bitmap entry. */
static void test_bat_layout(void)
{
	struct imgfmt_image *img = create_img("bat.vhdx", 17ull * 256 * MIB, "block_size=256M");
	uint8_t one = 0x5a, raw[8 * 18];
	char path[256];
	int fd;

	if (!img)
		return;
	CHECK_EQ(imgfmt_pwrite(img, &one, 1, 16ull * 256 * MIB + 7), 0);
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	snprintf(path, sizeof(path), "%s/bat.vhdx", tmpdir);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ(imgfmt_fd_pread(fd, raw, sizeof(raw), BAT_OFF), 0);
	close(fd);
	for (unsigned i = 0; i < 17; i++)
		CHECK_EQ(imgfmt_get_le64(raw + 8 * i), 0);
	CHECK_EQ(VHDX_BAT_STATE(imgfmt_get_le64(raw + 8 * 17)), VHDX_PAYLOAD_FULLY_PRESENT);
	CHECK_EQ(VHDX_BAT_OFFSET_BYTES(imgfmt_get_le64(raw + 8 * 17)), 4 * MIB);
}

static void test_bad_options(void)
{
	static const char *bad[] = {
		"block_size=3M", "block_size=512K", "block_size=512M", "subformat=diff",
		"logical_sector_size=1024", "physical_sector_size=8192", "log_size=1000", "nope=1",
	};
	char path[256], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img;

	snprintf(path, sizeof(path), "%s/bad.vhdx", tmpdir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CHECK(imgfmt_create(&img, path, "vhdx", MIB, bad[i], IMGFMT_CREATE_FORCE, err,
				    sizeof(err)) < 0);
		CHECK(err[0] != 0);
	}
}

/* ---- hostile structures ---- */

static void fix_header_crc(struct blob *b, unsigned slot)
{
	uint8_t *h = b->p + 64 * 1024 * (1 + slot);

	memset(h + 4, 0, 4);
	imgfmt_put_le32(h + 4, imgfmt_crc32c(0, h, 4096));
}

static void fix_region_crc(struct blob *b, unsigned copy)
{
	uint8_t *t = b->p + 192 * 1024 + 64 * 1024 * copy;

	memset(t + 4, 0, 4);
	imgfmt_put_le32(t + 4, imgfmt_crc32c(0, t, 64 * 1024));
}

static unsigned current_header(const struct blob *b)
{
	return imgfmt_get_le64(b->p + 128 * 1024 + 8) > imgfmt_get_le64(b->p + 64 * 1024 + 8);
}

/* Apply f to both region table copies and fix their checksums. */
static void edit_regions(struct blob *b, void (*f)(uint8_t *t))
{
	for (unsigned c = 0; c < 2; c++) {
		f(b->p + 192 * 1024 + 64 * 1024 * c);
		fix_region_crc(b, c);
	}
}

static void rt_bat_at_zero(uint8_t *t) { imgfmt_put_le64(t + 16 + 16, 0); }
static void rt_many_entries(uint8_t *t) { imgfmt_put_le32(t + 8, 3000); }
static void rt_unknown_required(uint8_t *t)
{
	memset(t + 16 + 64, 0x11, 16);
	imgfmt_put_le64(t + 16 + 64 + 16, 40 * MIB);
	imgfmt_put_le32(t + 16 + 64 + 24, MIB);
	imgfmt_put_le32(t + 16 + 64 + 28, 1);
	imgfmt_put_le32(t + 8, 3);
}
static void rt_meta_past_eof(uint8_t *t) { imgfmt_put_le64(t + 16 + 32 + 16, 200 * MIB); }

static void hostile_headers(const struct blob *base)
{
	struct blob b = copy_blob(base);

	b.p[64 * 1024 + 100] ^= 1;
	b.p[128 * 1024 + 100] ^= 1;
	expect_refused(&b, 0, "checksum 0x", "both header checksums bad");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le16(b.p + 64 * 1024 + 66, 2);
	imgfmt_put_le16(b.p + 128 * 1024 + 66, 2);
	fix_header_crc(&b, 0);
	fix_header_crc(&b, 1);
	expect_refused(&b, 0, "version 2 is not 1", "header version");
	memcpy(b.p, base->p, b.n);
	memcpy(b.p, "vhdxfilX", 8);
	/* no signature left: raw, and only read-only without -f raw */
	expect_refused(&b, IMGFMT_OPEN_RDWR, "give -f raw", "file identifier");
	free(b.p);
}

static void hostile_regions(const struct blob *base)
{
	struct blob b = copy_blob(base);

	b.p[192 * 1024 + 200] ^= 1;
	b.p[256 * 1024 + 200] ^= 1;
	expect_refused(&b, 0, "no valid region table", "region table checksums");
	memcpy(b.p, base->p, b.n);
	edit_regions(&b, rt_bat_at_zero);
	expect_refused(&b, 0, "BAT region offset 0", "region overlapping the headers");
	memcpy(b.p, base->p, b.n);
	edit_regions(&b, rt_many_entries);
	expect_refused(&b, 0, "entry count 3000", "region entry count");
	memcpy(b.p, base->p, b.n);
	edit_regions(&b, rt_unknown_required);
	expect_refused(&b, 0, "unknown required region", "unknown required region");
	memcpy(b.p, base->p, b.n);
	edit_regions(&b, rt_meta_past_eof);
	expect_refused(&b, 0, "metadata region offset", "metadata region past the end");
	free(b.p);
}

static uint8_t *meta_entry(struct blob *b, unsigned i) { return b->p + META_OFF + 32 + 32 * i; }

static void hostile_metadata(const struct blob *base)
{
	struct blob b = copy_blob(base);

	imgfmt_put_le32(b.p + META_OFF + 64 * 1024, 3 * MIB);
	expect_refused(&b, 0, "block size 3145728", "block size not a power of two");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le32(b.p + META_OFF + 64 * 1024 + 32, 1024);
	expect_refused(&b, 0, "logical sector size 1024", "logical sector size");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le32(meta_entry(&b, 0) + 16, 2 * MIB);
	expect_refused(&b, 0, "outside the metadata region", "metadata entry out of range");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le32(meta_entry(&b, 1) + 16, 64 * 1024 + 4);
	expect_refused(&b, 0, "overlaps entry 0", "metadata entries overlapping");
	memcpy(b.p, base->p, b.n);
	memset(meta_entry(&b, 4), 0x22, 16);
	expect_refused(&b, 0, "unknown required item", "unknown required metadata item");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le16(b.p + META_OFF + 10, 4000);
	expect_refused(&b, 0, "entry count 4000", "metadata entry count");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le64(b.p + META_OFF + 64 * 1024 + 8, 1ull << 50);
	expect_refused(&b, 0, "virtual disk size", "disk size over 64 TiB");
	free(b.p);
}

static void hostile_bat(const struct blob *base)
{
	struct blob b = copy_blob(base);

	imgfmt_put_le64(b.p + BAT_OFF + 8, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, 100ull * MIB));
	expect_refused(&b, 0, "BAT entry 1", "BAT entry past the end of the file");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le64(b.p + BAT_OFF + 8, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, 3ull * MIB));
	expect_refused(&b, 0, "overlaps the BAT region", "BAT entry inside the BAT");
	memcpy(b.p, base->p, b.n);
	imgfmt_put_le64(b.p + BAT_OFF + 8, VHDX_BAT_ENTRY(VHDX_PAYLOAD_PARTIALLY_PRESENT, 4ull * MIB));
	expect_refused(&b, 0, "invalid payload state 7", "partially present without parent");
	/* two blocks sharing one place in the file: opens, check finds it */
	imgfmt_put_le64(b.p + BAT_OFF + 8, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, 4ull * MIB));
	{
		char err[IMGFMT_ERRMSG_BYTES];
		struct imgfmt_check chk = { 0 };
		struct imgfmt_image *img = NULL;
		CHECK_EQ(open_blob(&b, 0, &img, err), 0);
		if (img) {
			CHECK_EQ(imgfmt_check(img, &chk), 0);
			CHECK_EQ(chk.errors, 1);
			CHECK_EQ(chk.allocated_clusters, 2);
			imgfmt_close(img);
		}
	}
	free(b.p);
}

/* ---- differencing ---- */

static const struct vhdx_guid locator_item_guid =
	VHDX_GUID(0xA8D35F2D, 0xB30B, 0x454D, 0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C);
static const struct vhdx_guid locator_type_guid =
	VHDX_GUID(0xB04AEFB7, 0xD19E, 0x4A81, 0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13);

/* Append UTF-16LE of s at *at; returns its byte length. */
static uint16_t put_utf16(uint8_t *base, uint32_t *at, const char *s)
{
	uint32_t start = *at;

	for (; *s; s++, *at += 2)
		imgfmt_put_le16(base + *at, (uint16_t)*s);
	return (uint16_t)(*at - start);
}

/* Parent locator item with n key/value pairs, at metadata offset 64K + 4K. */
static void put_locator(struct blob *b, const char *const *kv, unsigned n)
{
	uint8_t *loc = b->p + META_OFF + 64 * 1024 + 4096, *e = meta_entry(b, 5);
	uint32_t at = 20 + 12 * n;

	memset(loc, 0, 4096);
	memcpy(loc, &locator_type_guid, 16);
	imgfmt_put_le16(loc + 18, (uint16_t)n);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *ent = loc + 20 + 12 * i;
		imgfmt_put_le32(ent, at);
		imgfmt_put_le16(ent + 8, put_utf16(loc, &at, kv[2 * i]));
		imgfmt_put_le32(ent + 4, at);
		imgfmt_put_le16(ent + 10, put_utf16(loc, &at, kv[2 * i + 1]));
	}
	memcpy(e, &locator_item_guid, 16);
	imgfmt_put_le32(e + 16, 64 * 1024 + 4096);
	imgfmt_put_le32(e + 20, at);
	imgfmt_put_le32(e + 24, VHDX_META_IS_REQUIRED | VHDX_META_IS_VIRTUAL_DISK);
	imgfmt_put_le16(b->p + META_OFF + 10, 6);
}

static void linkage_of(const char *parent, char *out)
{
	struct blob p;
	struct vhdx_guid g;
	char path[256], s[VHDX_GUID_STR_BYTES];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, parent);
	if (read_whole(path, &p) < 0)
		return;
	memcpy(g.b, p.p + 64 * 1024 * (1 + current_header(&p)) + 32, 16);
	vhdx_guid_format(&g, s);
	for (char *c = s; *c; c++) /* lower case, as libvhdi wants it */
		*c = (char)tolower((unsigned char)*c);
	sprintf(out, "{%s}", s);
	free(p.p);
}

/* Child of parent.vhdx: block 0 not present, 1 full, 2 partial (first 512
 * KiB and sector 1500 of the block here), 3 zero (or not present with
 * block3_absent: libvhdi reads zero blocks of a child from the parent, where
 * MS-VHDX says zeroes), 4 undefined, rest absent. */
static bool block3_absent;

static void make_child(struct blob *b)
{
	uint8_t *bitmap, *bat;

	b->p = realloc(b->p, 7 * MIB);
	memset(b->p + b->n, 0, 7 * MIB - b->n);
	b->n = 7 * MIB;
	bitmap = b->p + 5 * MIB;
	memset(bitmap + 512, 0xff, 128);
	bitmap[(4096 + 1500) / 8] |= (uint8_t)(1u << ((4096 + 1500) % 8));
	pattern(b->p + 6 * MIB, MIB, 22);
	bat = b->p + BAT_OFF;
	imgfmt_put_le64(bat + 8 * 2, VHDX_BAT_ENTRY(VHDX_PAYLOAD_PARTIALLY_PRESENT, 6ull * MIB));
	if (!block3_absent)
		imgfmt_put_le64(bat + 8 * 3, VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, 0));
	imgfmt_put_le64(bat + 8 * 4, VHDX_BAT_ENTRY(VHDX_PAYLOAD_UNDEFINED, 0));
	imgfmt_put_le64(bat + 8 * 4096, VHDX_BAT_ENTRY(VHDX_SB_PRESENT, 5ull * MIB));
	b->p[META_OFF + 64 * 1024 + 4] |= 2; /* HasParent */
}

/* Parent pattern 20 in blocks 0-4, child pattern 21 in block 1; block 2
 * from the child's pattern 22 where its bitmap says so; block 3 zero. */
static void expected_child(uint8_t *want)
{
	uint8_t *child2 = malloc(MIB);

	pattern(want, 5 * MIB, 20);
	memset(want + 5 * MIB, 0, 3 * MIB);
	pattern(want + MIB, MIB, 21);
	pattern(child2, MIB, 22);
	memcpy(want + 2 * MIB, child2, 512 * 1024);
	memcpy(want + 2 * MIB + 1500 * 512, child2 + 1500 * 512, 512);
	if (!block3_absent)
		memset(want + 3 * MIB, 0, MIB);
	free(child2);
}

static int write_child(const struct blob *b, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return write_whole(path, b);
}

static void check_child_reads(const char *name)
{
	uint8_t *want = malloc(8 * MIB), *buf = malloc(8 * MIB);
	struct imgfmt_image *img = open_path(name, 0);
	struct imgfmt_info info;

	expected_child(want);
	if (img) {
		CHECK_EQ(imgfmt_pread(img, buf, 8 * MIB, 0), 0);
		CHECK(memcmp(buf, want, 8 * MIB) == 0);
		CHECK_EQ(imgfmt_pread(img, buf, 1000, 2 * MIB + 512 * 1024 - 300), 0);
		CHECK(memcmp(buf, want + 2 * MIB + 512 * 1024 - 300, 1000) == 0);
		expect_extent(img, 0, MIB, IMGFMT_EXTENT_DATA);
		expect_extent(img, 3 * MIB, MIB, IMGFMT_EXTENT_ZERO);
		CHECK_EQ(imgfmt_info(img, &info), 0);
		CHECK(!strcmp(info.subformat, "differencing"));
		CHECK(imgfmt_backing(img) != NULL);
		imgfmt_close(img);
	}
	free(want);
	free(buf);
}

/* parent.vhdx in tmpdir, and in b the bytes of a child without its parent
 * locator; link gets the parent's data write GUID as "{...}". */
static int build_diff_pair(struct blob *b, char *link)
{
	struct imgfmt_image *img = create_img("parent.vhdx", 8 * MIB, "block_size=1M");
	uint8_t *buf = malloc(5 * MIB);
	char path[256];
	int r = -1;

	if (!img)
		goto out;
	pattern(buf, 5 * MIB, 20);
	CHECK_EQ(imgfmt_pwrite(img, buf, 5 * MIB, 0), 0);
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	img = create_img("childsrc.vhdx", 8 * MIB, "block_size=1M");
	if (!img)
		goto out;
	pattern(buf, MIB, 21);
	CHECK_EQ(imgfmt_pwrite(img, buf, MIB, MIB), 0);
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	snprintf(path, sizeof(path), "%s/childsrc.vhdx", tmpdir);
	r = read_whole(path, b);
	if (r == 0) {
		make_child(b);
		linkage_of("parent.vhdx", link);
	}
out:
	free(buf);
	return r;
}

static void test_differencing(void)
{
	char link[64] = "", path[256], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_open_opts rw = { .flags = IMGFMT_OPEN_RDWR };
	struct imgfmt_image *img;
	uint8_t buf[4096];
	struct blob b = { 0 };

	if (build_diff_pair(&b, link) < 0)
		return;
	{
		const char *kv[] = { "parent_linkage", link, "relative_path", ".\\parent.vhdx" };
		put_locator(&b, kv, 2);
		write_child(&b, "child.vhdx");
		check_child_reads("child.vhdx");
	}
	{ /* relative path wrong: the absolute path's file name beside the child */
		const char *kv[] = { "relative_path", ".\\gone\\parent.vhdx", "parent_linkage", link,
				     "absolute_win32_path", "D:\\vms\\parent.vhdx" };
		put_locator(&b, kv, 3);
		write_child(&b, "child2.vhdx");
		check_child_reads("child2.vhdx");
	}
	snprintf(path, sizeof(path), "%s/child.vhdx", tmpdir);
	CHECK(imgfmt_open(&img, path, &rw, err, sizeof(err)) < 0);
	CHECK(strstr(err, "differencing") != NULL);
	{
		char bad[64];
		snprintf(bad, sizeof(bad), "%s", link);
		bad[1] = bad[1] == '0' ? '1' : '0'; /* differs in any letter case */
		const char *kv[] = { "parent_linkage", bad, "relative_path", "parent.vhdx" };
		put_locator(&b, kv, 2);
		write_child(&b, "child3.vhdx");
		snprintf(path, sizeof(path), "%s/child3.vhdx", tmpdir);
		CHECK(imgfmt_open(&img, path, NULL, err, sizeof(err)) < 0);
		CHECK(strstr(err, "parent_linkage") != NULL);
		printf("refused as expected (wrong parent): %s\n", err);
	}
	imgfmt_put_le64(b.p + BAT_OFF + 8 * 4096, 0); /* partial block without a bitmap */
	write_child(&b, "child4.vhdx");
	img = open_path("child4.vhdx", IMGFMT_OPEN_NO_BACKING);
	if (img) {
		CHECK(imgfmt_pread(img, buf, 4096, 2 * MIB) < 0);
		CHECK(strstr(imgfmt_errmsg(img), "sector bitmap") != NULL);
		CHECK_EQ(imgfmt_pread(img, buf, 4096, 0), 0); /* no parent opened: zeroes */
		CHECK(imgfmt_is_zero(buf, 4096));
		imgfmt_close(img);
	}
	free(b.p);
}

/* mkdiff DIR: parent.vhdx, child.vhdx and child.raw (what the child reads as). */
static int mkdiff(const char *dir)
{
	char link[64] = "", path[256];
	struct blob b = { 0 }, want = { malloc(8 * MIB), 8 * MIB };
	const char *kv[] = { "parent_linkage", link, "relative_path", ".\\parent.vhdx",
			     "absolute_win32_path", "C:\\vms\\parent.vhdx" };
	int r;

	snprintf(tmpdir, sizeof(tmpdir), "%s", dir);
	block3_absent = true;
	if (build_diff_pair(&b, link) < 0)
		return 2;
	put_locator(&b, kv, 3);
	expected_child(want.p);
	snprintf(path, sizeof(path), "%s/child.raw", tmpdir);
	r = write_child(&b, "child.vhdx") < 0 || write_whole(path, &want) < 0;
	snprintf(path, sizeof(path), "%s/childsrc.vhdx", tmpdir);
	unlink(path);
	free(b.p);
	free(want.p);
	return r || unit_failures ? 2 : 0;
}

/* ---- the log ---- */

struct log_write {
	bool zero;
	uint64_t off, len;     /* len: zero descriptors only */
	const uint8_t *data;   /* 4 KiB */
};

static uint64_t round_mib(uint64_t v) { return (v + MIB - 1) / MIB * MIB; }

/* Build one log entry (sequence 10, tail = itself) at the start of the log
 * and set the log GUID in both headers. */
static void add_log_entry(struct blob *b, const struct log_write *w, unsigned n, uint64_t last)
{
	uint8_t *hdr = b->p + 64 * 1024 * (1 + current_header(b));
	uint64_t log_off = imgfmt_get_le64(hdr + 72), seq = 10;
	unsigned n_data = 0;
	uint8_t *e = b->p + log_off, guid[16];

	for (unsigned i = 0; i < n; i++)
		n_data += !w[i].zero;
	memset(guid, 0x77, sizeof(guid));
	memset(e, 0, 4096 * (1 + n_data));
	memcpy(e, "loge", 4);
	imgfmt_put_le32(e + 8, 4096 * (1 + n_data));
	imgfmt_put_le64(e + 16, seq);
	imgfmt_put_le32(e + 24, n);
	memcpy(e + 32, guid, 16);
	imgfmt_put_le64(e + 48, b->n);
	imgfmt_put_le64(e + 56, last);
	for (unsigned i = 0, d = 0; i < n; i++) {
		uint8_t *desc = e + 64 + 32 * i;
		imgfmt_put_le64(desc + 16, w[i].off);
		imgfmt_put_le64(desc + 24, seq);
		if (w[i].zero) {
			memcpy(desc, "zero", 4);
			imgfmt_put_le64(desc + 8, w[i].len);
			continue;
		}
		uint8_t *s = e + 4096 * (1 + d++);
		memcpy(desc, "desc", 4);
		memcpy(desc + 4, w[i].data + 4092, 4);
		memcpy(desc + 8, w[i].data, 8);
		memcpy(s, "data", 4);
		imgfmt_put_le32(s + 4, (uint32_t)(seq >> 32));
		memcpy(s + 8, w[i].data + 8, 4084);
		imgfmt_put_le32(s + 4092, (uint32_t)seq);
	}
	imgfmt_put_le32(e + 4, imgfmt_crc32c(0, e, 4096 * (1 + n_data)));
	for (unsigned slot = 0; slot < 2; slot++) {
		memcpy(b->p + 64 * 1024 * (1 + slot) + 48, guid, 16);
		fix_header_crc(b, slot);
	}
}

/* Through the log: map block 1 at the (MiB-aligned) end of the file and put
 * data `seed` in its first 4 KiB; zero its last 4 KiB (so replaying writers
 * that do not extend the file to LastFileOffset, like qemu 7.2 for
 * MiB-aligned values, still cover the block); zero the first 4 KiB of
 * block 0 if it is present. */
static void log_map_block1(struct blob *b, uint64_t bat_off, uint64_t block_bytes,
			   unsigned seed)
{
	uint8_t bat[4096], data[4096];
	uint64_t end = round_mib(b->n), b0 = imgfmt_get_le64(b->p + bat_off);
	struct log_write w[4] = {
		{ .off = bat_off, .data = bat },
		{ .off = end, .data = data },
		{ .zero = true, .off = end + block_bytes - 4096, .len = 4096 },
		{ .zero = true, .off = VHDX_BAT_OFFSET_BYTES(b0), .len = 4096 },
	};

	memcpy(bat, b->p + bat_off, sizeof(bat));
	imgfmt_put_le64(bat + 8, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, end));
	pattern(data, sizeof(data), seed);
	add_log_entry(b, w, VHDX_BAT_STATE(b0) == VHDX_PAYLOAD_FULLY_PRESENT ? 4 : 3,
		      end + block_bytes);
}

static void test_log_replay(const struct blob *base)
{
	struct blob b = copy_blob(base);
	char err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img;
	uint8_t *buf = malloc(2 * MIB), *want = malloc(2 * MIB);

	log_map_block1(&b, BAT_OFF, MIB, 5);
	CHECK_EQ(open_blob(&b, 0, &img, err), 0);
	if (img) {
		struct imgfmt_info info;
		pattern(want, MIB, 0);
		memset(want, 0, 4096);
		memset(want + MIB, 0, MIB);
		pattern(want + MIB, 4096, 5);
		CHECK_EQ(imgfmt_pread(img, buf, 2 * MIB, 0), 0);
		CHECK(memcmp(buf, want, 2 * MIB) == 0);
		CHECK_EQ(imgfmt_info(img, &info), 0);
		CHECK(!strcmp(info.extra[4].val, "replayed in memory"));
		imgfmt_close(img);
	}
	expect_refused(&b, IMGFMT_OPEN_RDWR, "unreplayed", "writable open with a log");
	/* a corrupt entry is no entry: the log is empty and block 1 unmapped */
	b.p[MIB + 4096 + 100] ^= 1;
	CHECK_EQ(open_blob(&b, 0, &img, err), 0);
	if (img) {
		CHECK_EQ(imgfmt_pread(img, buf, 2 * MIB, 0), 0);
		pattern(want, MIB, 0);
		CHECK(memcmp(buf, want, MIB) == 0 && imgfmt_is_zero(buf + MIB, MIB));
		imgfmt_close(img);
	}
	free(b.p);
	free(buf);
	free(want);
}

static void hostile_log(const struct blob *base)
{
	struct blob b = copy_blob(base);
	uint8_t data[4096] = { 0 };
	struct log_write w = { .off = 4096, .data = data };

	add_log_entry(&b, &w, 1, b.n);
	expect_refused(&b, 0, "descriptor 0 writes 4096 bytes at file offset 4096", "log into headers");
	memcpy(b.p, base->p, b.n);
	w.off = MIB; /* into the log itself */
	add_log_entry(&b, &w, 1, b.n);
	expect_refused(&b, 0, "descriptor 0", "log into the log");
	memcpy(b.p, base->p, b.n);
	w.off = b.n + 8 * MIB; /* past LastFileOffset */
	add_log_entry(&b, &w, 1, b.n);
	expect_refused(&b, 0, "descriptor 0", "log past the last file offset");
	free(b.p);
}

/* An 8 MiB dynamic image, 1 MiB blocks, block 0 holding pattern 0. */
static int make_base(struct blob *b)
{
	struct imgfmt_image *img = create_img("base.vhdx", 8 * MIB, "block_size=1M");
	uint8_t *buf = malloc(MIB);
	char path[256];

	if (!img)
		return -1;
	pattern(buf, MIB, 0);
	CHECK_EQ(imgfmt_pwrite(img, buf, MIB, 0), 0);
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	free(buf);
	snprintf(path, sizeof(path), "%s/base.vhdx", tmpdir);
	return read_whole(path, b);
}

/* mklog IN OUT BLOCK_BYTES: see log_map_block1 (BAT offset from region table 1). */
static int mklog(const char *in, const char *out, const char *block)
{
	struct blob b;
	uint64_t bat_off = 0;
	int r;

	if (read_whole(in, &b) < 0)
		return perror(in), 2;
	for (unsigned i = 0; i < imgfmt_get_le32(b.p + 192 * 1024 + 8) && i < 8; i++) {
		const uint8_t *e = b.p + 192 * 1024 + 16 + 32 * i;
		if (imgfmt_get_le32(e) == 0x2DC27766u)
			bat_off = imgfmt_get_le64(e + 16);
	}
	if (!bat_off) {
		free(b.p);
		return fprintf(stderr, "%s: no BAT region\n", in), 2;
	}
	log_map_block1(&b, bat_off, strtoull(block, NULL, 0), 5);
	r = write_whole(out, &b) < 0 ? 2 : 0;
	free(b.p);
	return r;
}

/* write IMG OFF LEN SEED: open an existing image read-write, write pattern
 * SEED there, close.  pattern LEN SEED OUT: the same bytes into a file. */
static int helper_write(char **argv)
{
	struct imgfmt_open_opts o = { .flags = IMGFMT_OPEN_RDWR };
	char err[IMGFMT_ERRMSG_BYTES];
	uint64_t off = strtoull(argv[3], NULL, 0), len = strtoull(argv[4], NULL, 0);
	uint8_t *buf = malloc(len ? len : 1);
	struct imgfmt_image *img;
	int r;

	pattern(buf, len, (unsigned)strtoul(argv[5], NULL, 0));
	if (!strcmp(argv[1], "pattern")) {
		struct blob b = { buf, len };
		r = write_whole(argv[2], &b);
		free(buf);
		return r < 0 ? 2 : 0;
	}
	r = imgfmt_open(&img, argv[2], &o, err, sizeof(err));
	if (r == 0) {
		r = imgfmt_pwrite(img, buf, len, off);
		if (r < 0)
			snprintf(err, sizeof(err), "%s", imgfmt_errmsg(img));
		int rc = imgfmt_close(img);
		r = r < 0 ? r : rc;
	}
	free(buf);
	if (r < 0)
		fprintf(stderr, "%s\n", err);
	return r < 0 ? 2 : 0;
}

int main(int argc, char **argv)
{
	struct blob base;

	if (argc == 5 && !strcmp(argv[1], "mklog"))
		return mklog(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "mkdiff"))
		return mkdiff(argv[2]);
	if (argc == 6 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "pattern")))
		return helper_write(argv);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/unit_vhdx.XXXXXX");
	if (!mkdtemp(tmpdir))
		return perror("mkdtemp"), 1;
	test_crc32c();
	test_chunk_ratio();
	test_api_dynamic();
	test_reopen_rw();
	test_api_fixed();
	test_bat_layout();
	test_bad_options();
	test_differencing();
	if (make_base(&base) == 0) {
		hostile_headers(&base);
		hostile_regions(&base);
		hostile_metadata(&base);
		hostile_bat(&base);
		test_log_replay(&base);
		hostile_log(&base);
		free(base.p);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %.100s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	UNIT_DONE();
}
