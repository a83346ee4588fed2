/* VMDK driver unit tests: the descriptor parser on in-memory text (good and
 * hostile), create -> write -> read through the API for monolithicSparse and
 * streamOptimized, and hostile sparse headers refused with the field named. */
#include "unit.h"
#include "vmdk_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/unit_vmdk.XXXXXX";

static const char good_desc[] =
	"# Disk DescriptorFile\n"
	"version=1\r\n"
	"CID=1a2b3c4d\n"
	"parentCID=ffffffff\n"
	"createType=\"twoGbMaxExtentSparse\"\n"
	"\n"
	"# Extent description\n"
	"RW 4192256 SPARSE \"d-s001.vmdk\"\n"
	"RDONLY 2048 FLAT \"sub dir/d-f002.vmdk\" 128\n"
	"RW 100 ZERO\n"
	"\n"
	"ddb.virtualHWVersion = \"4\"\n"
	"ddb.adapterType = \"lsilogic\"\n";

static void test_desc_good(void)
{
	struct vmdk_desc d;
	char err[256] = "";

	CHECK_EQ(vmdk_desc_parse(good_desc, sizeof(good_desc), &d, err, sizeof(err)), 0);
	CHECK_EQ(d.n_ext, 3);
	CHECK_EQ(d.cid, 0x1a2b3c4d);
	CHECK_EQ(d.parent_cid, 0xffffffffu);
	CHECK(!strcmp(d.create_type, "twoGbMaxExtentSparse"));
	CHECK(!strcmp(d.adapter_type, "lsilogic"));
	CHECK(!strcmp(d.hw_version, "4"));
	CHECK_EQ(d.total_sectors, 4192256 + 2048 + 100);
	if (d.n_ext == 3) {
		CHECK_EQ(d.ext[0].kind, VMDK_EXTENT_SPARSE);
		CHECK(!strcmp(d.ext[0].file, "d-s001.vmdk"));
		CHECK_EQ(d.ext[1].kind, VMDK_EXTENT_FLAT);
		CHECK_EQ(d.ext[1].access, VMDK_ACCESS_RDONLY);
		CHECK_EQ(d.ext[1].offset_sectors, 128);
		CHECK(!strcmp(d.ext[1].file, "sub dir/d-f002.vmdk"));
		CHECK_EQ(d.ext[2].kind, VMDK_EXTENT_ZERO);
		CHECK(d.ext[2].file == NULL);
	}
	vmdk_desc_free(&d);
}

/* The parse must fail and the message must contain want. */
static void expect_desc_error(const char *text, const char *want)
{
	struct vmdk_desc d;
	char err[256] = "";
	int r = vmdk_desc_parse(text, strlen(text), &d, err, sizeof(err));

	CHECK(r < 0);
	if (!strstr(err, want)) {
		fprintf(stderr, "descriptor error '%s' lacks '%s'\n", err, want);
		unit_failures++;
	}
}

static void test_desc_hostile(void)
{
	char *many;
	size_t n = 0;

	expect_desc_error("RW 99999999999999999999999 SPARSE \"a.vmdk\"\n", "extent sectors");
	expect_desc_error("RW 0 SPARSE \"a.vmdk\"\n", "extent sectors 0");
	expect_desc_error("RW 1099511627776 FLAT \"a\"\nRW 1099511627776 FLAT \"b\"\n", "add up");
	expect_desc_error("RW 100 SPARSE \"/etc/passwd\"\n", "absolute path");
	expect_desc_error("RW 100 FLAT \"../x.vmdk\"\n", "leaves the descriptor's directory");
	expect_desc_error("RW 100 FLAT \"a/../../x.vmdk\"\n", "leaves the descriptor's directory");
	expect_desc_error("RW 100 FLAT \"\"\n", "empty");
	expect_desc_error("RW 100 FLAT a.vmdk\n", "not quoted");
	expect_desc_error("RW 100 FLAT \"a.vmdk\" 12x\n", "extent offset");
	expect_desc_error("RW 100 SESPARSE \"a.vmdk\"\n", "extent type 'SESPARSE'");
	expect_desc_error("RW 100\n", "incomplete");
	expect_desc_error("CID=xyz\nRW 1 ZERO\n", "CID 'xyz'");
	expect_desc_error("version=7\nRW 1 ZERO\n", "version '7'");
	expect_desc_error("# only a comment\ncreateType=\"monolithicFlat\"\n", "no extent lines");
	expect_desc_error("garbage line\n", "line 1");
	many = malloc(64 * 1200);
	for (unsigned i = 0; i < 1200; i++)
		n += (size_t)sprintf(many + n, "RW 1 FLAT \"f%u\"\n", i);
	expect_desc_error(many, "more than 1000 extents");
	memset(many, 'x', 5000);
	many[5000] = 0;
	expect_desc_error(many, "longer than");
	free(many);
}

static void test_check_name(void)
{
	char err[200];

	CHECK_EQ(vmdk_desc_check_name("a/../b.vmdk", err, sizeof(err)), 0);
	CHECK_EQ(vmdk_desc_check_name("./b.vmdk", err, sizeof(err)), 0);
	CHECK_EQ(vmdk_desc_check_name("sub/./x/../b.vmdk", err, sizeof(err)), 0);
	CHECK_EQ(vmdk_desc_check_name("..", err, sizeof(err)), -EPERM);
	CHECK_EQ(vmdk_desc_check_name("x/../../y", err, sizeof(err)), -EPERM);
	CHECK_EQ(vmdk_desc_check_name("/abs", err, sizeof(err)), -EPERM);
}

static void test_desc_format(void)
{
	struct vmdk_desc_params p = { "streamOptimized", "disk.vmdk", 2097152, "lsilogic", 7 };
	char buf[2048];
	struct vmdk_desc d;
	long n = vmdk_desc_format(&p, buf, sizeof(buf));

	CHECK(n > 0);
	CHECK(strstr(buf, "RW 2097152 SPARSE \"disk.vmdk\"\n") != NULL);
	CHECK(strstr(buf, "ddb.geometry.heads = \"255\"") != NULL);
	CHECK(strstr(buf, "ddb.geometry.cylinders = \"130\"") != NULL);
	CHECK(strstr(buf, "ddb.virtualHWVersion = \"7\"") != NULL);
	CHECK(strstr(buf, "ddb.toolsVersion") != NULL);
	CHECK_EQ(vmdk_desc_parse(buf, (size_t)n, &d, buf, sizeof(buf)), 0);
	CHECK(!strcmp(d.create_type, "streamOptimized"));
	CHECK_EQ(d.total_sectors, 2097152);
	vmdk_desc_free(&d);
	CHECK_EQ(vmdk_desc_format(&p, buf, 100), -ENOSPC);
}

/* ---- through the API ---- */

#define GRAIN (64 * 1024)
#define SIZE (40u * 1024 * 1024 + 3 * 512) /* crosses a GT (32 MiB), odd tail */

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static struct imgfmt_image *create(const char *name, const char *opts)
{
	struct imgfmt_image *img = NULL;
	char path[256], err[IMGFMT_ERRMSG_BYTES];
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r = imgfmt_create(&img, path, "vmdk", SIZE, opts, IMGFMT_CREATE_FORCE, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "create %s: %s\n", name, err);
	CHECK_EQ(r, 0);
	return img;
}

static struct imgfmt_image *reopen(const char *name, unsigned flags)
{
	struct imgfmt_open_opts o = { .flags = flags };
	struct imgfmt_image *img = NULL;
	char path[256], err[IMGFMT_ERRMSG_BYTES];
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r = imgfmt_open(&img, path, &o, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "open %s: %s\n", name, err);
	CHECK_EQ(r, 0);
	return img;
}

/* The expected content: pattern at [GRAIN*3+100, +5000), grains 10..13 and
 * the run over the GT boundary, the tail; zero elsewhere. */
struct span {
	uint64_t off, len;
	unsigned seed;
};
static const struct span spans[] = {
	{ GRAIN * 3 + 100, 5000, 1 },
	{ GRAIN * 10, GRAIN * 4, 2 },
	{ 32u * 1024 * 1024 - GRAIN * 2, GRAIN * 5, 3 },
	{ SIZE - 1000, 1000, 4 },
};

static void write_spans(struct imgfmt_image *img)
{
	uint8_t *b = malloc(GRAIN * 5);

	for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
		fill(b, spans[i].len, spans[i].seed);
		CHECK_EQ(imgfmt_pwrite(img, b, spans[i].len, spans[i].off), 0);
	}
	free(b);
}

static void verify(struct imgfmt_image *img)
{
	uint8_t *got = malloc(SIZE), *want = calloc(1, SIZE);

	for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++)
		fill(want + spans[i].off, spans[i].len, spans[i].seed);
	CHECK_EQ(imgfmt_pread(img, got, SIZE, 0), 0);
	CHECK(memcmp(got, want, SIZE) == 0);
	CHECK_EQ(imgfmt_pread(img, got, 777, GRAIN * 3 + 99), 0);
	CHECK(memcmp(got, want + GRAIN * 3 + 99, 777) == 0);
	free(got);
	free(want);
}

static void verify_status(struct imgfmt_image *img)
{
	struct imgfmt_extent e;

	CHECK_EQ(imgfmt_block_status(img, 0, SIZE, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e.length_bytes, GRAIN * 3);
	CHECK_EQ(imgfmt_block_status(img, GRAIN * 10 + 5, SIZE - GRAIN * 10 - 5, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_DATA);
	CHECK_EQ(e.length_bytes, GRAIN * 4 - 5);
	CHECK_EQ(imgfmt_block_status(img, GRAIN * 14, SIZE - GRAIN * 14, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e.length_bytes, 32u * 1024 * 1024 - GRAIN * 16);
}

static void test_sparse_rw(void)
{
	struct imgfmt_image *img = create("s.vmdk", "adapter_type=lsilogic,hwversion=7");
	struct imgfmt_info info;

	if (!img)
		return;
	CHECK_EQ(imgfmt_cluster_bytes(img), GRAIN);
	CHECK(imgfmt_size_bytes(img) == SIZE);
	write_spans(img);
	verify(img);
	CHECK_EQ(imgfmt_write_zeroes(img, GRAIN, GRAIN * 20), 0); /* unallocated: stays a hole */
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	img = reopen("s.vmdk", 0);
	if (!img)
		return;
	verify(img);
	verify_status(img);
	CHECK_EQ(imgfmt_info(img, &info), 0);
	CHECK(!strcmp(info.subformat, "monolithicSparse"));
	imgfmt_close(img);
	/* Reopen writable, zero an allocated grain, add data, read back. */
	img = reopen("s.vmdk", IMGFMT_OPEN_RDWR);
	if (!img)
		return;
	CHECK_EQ(imgfmt_write_zeroes(img, GRAIN * 4, GRAIN * 10), 0);
	CHECK_EQ(imgfmt_pwrite(img, "hello", 5, GRAIN * 30), 0);
	CHECK_EQ(imgfmt_close(img), 0);
	img = reopen("s.vmdk", 0);
	if (img) {
		uint8_t b[GRAIN];
		CHECK_EQ(imgfmt_pread(img, b, GRAIN, GRAIN * 11), 0);
		CHECK(imgfmt_is_zero(b, GRAIN));
		CHECK_EQ(imgfmt_pread(img, b, 5, GRAIN * 30), 0);
		CHECK(!memcmp(b, "hello", 5));
		struct imgfmt_check chk = { 0 };
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 0);
		CHECK_EQ(chk.allocated_clusters, 1 + 4 + 5 + 1 + 1);
		imgfmt_close(img);
	}
	/* A tool nobody here wrote agrees the metadata is consistent. */
	{
		char cmd[512];
		snprintf(cmd, sizeof(cmd), "qemu-img check -q -f vmdk %s/s.vmdk", dir);
		CHECK_EQ(system(cmd), 0);
	}
}

static void test_stream(void)
{
	struct imgfmt_image *img = create("z.vmdk", "subformat=streamOptimized");
	uint8_t *b = malloc(GRAIN * 2), *c = malloc(GRAIN * 2);
	size_t n = 0;

	if (!img)
		goto out;
	CHECK(imgfmt_can_compress(img));
	write_spans(img);
	/* Rewriting a written grain is refused with a clear message. */
	CHECK(imgfmt_pwrite(img, b, GRAIN, GRAIN * 10) < 0);
	CHECK(strstr(imgfmt_errmsg(img), "already written") != NULL);
	/* The compress op and a compressed write. */
	fill(b, GRAIN, 9);
	CHECK_EQ(imgfmt_compress(img, b, GRAIN, c, GRAIN * 2, &n), 0);
	CHECK(n > 0 && n < GRAIN);
	CHECK_EQ(imgfmt_pwrite_compressed(img, c, n, GRAIN * 600), 0);
	CHECK(imgfmt_pwrite_compressed(img, c, n, GRAIN * 600) < 0);
	CHECK(imgfmt_pwrite_compressed(img, c, n, GRAIN * 601 + 512) < 0);
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	img = reopen("z.vmdk", 0);
	if (!img)
		goto out;
	CHECK_EQ(imgfmt_pread(img, c, GRAIN, GRAIN * 600), 0);
	CHECK(!memcmp(b, c, GRAIN));
	CHECK_EQ(imgfmt_write_zeroes(img, GRAIN, 0), -EBADF);
	imgfmt_close(img);
	img = reopen("z.vmdk", 0);
	if (img) {
		struct imgfmt_info info;
		verify_status(img);
		CHECK_EQ(imgfmt_info(img, &info), 0);
		CHECK(!strcmp(info.subformat, "streamOptimized"));
		imgfmt_close(img);
	}
out:
	free(b);
	free(c);
}

static void test_stream_verify(void)
{
	struct imgfmt_image *img = create("y.vmdk", "subformat=streamOptimized,grain_size=8K");

	if (!img)
		return;
	CHECK_EQ(imgfmt_cluster_bytes(img), 8192);
	write_spans(img);
	verify(img); /* reading back while writing */
	CHECK_EQ(imgfmt_commit(img), 0);
	imgfmt_close(img);
	img = reopen("y.vmdk", 0);
	if (img) {
		struct imgfmt_check chk = { 0 };
		verify(img);
		CHECK_EQ(imgfmt_check(img, &chk), 0);
		CHECK_EQ(chk.errors, 0);
		imgfmt_close(img);
	}
	{ /* streams are not modified in place */
		struct imgfmt_open_opts o = { .flags = IMGFMT_OPEN_RDWR };
		char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
		snprintf(path, sizeof(path), "%s/y.vmdk", dir);
		CHECK(imgfmt_open(&img, path, &o, err, sizeof(err)) == -EROFS);
		CHECK(strstr(err, "cannot be modified") != NULL);
	}
}

/* In-place writes into an image qemu-img made; qemu must read them back. */
static void test_qemu_image_rw(void)
{
	char raw[256], vmdk[256], cmd[1024];
	struct imgfmt_open_opts o = { .flags = IMGFMT_OPEN_RDWR };
	char err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	uint8_t *b = malloc(1 << 20);
	int fd;

	snprintf(raw, sizeof(raw), "%s/q.raw", dir);
	snprintf(vmdk, sizeof(vmdk), "%s/q.vmdk", dir);
	fill(b, 1 << 20, 5);
	fd = open(raw, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && pwrite(fd, b, 1 << 20, 0) == 1 << 20 && ftruncate(fd, 3 << 20) == 0);
	snprintf(cmd, sizeof(cmd), "qemu-img convert -f raw -O vmdk %s %s", raw, vmdk);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(imgfmt_open(&img, vmdk, &o, err, sizeof(err)), 0);
	fill(b, 5000, 6);
	if (img) {
		CHECK_EQ(imgfmt_pwrite(img, b, 5000, (2 << 20) + 100), 0);
		CHECK_EQ(imgfmt_pwrite(img, b, 100, 1000), 0);
		CHECK_EQ(imgfmt_close(img), 0);
	}
	CHECK(pwrite(fd, b, 5000, (2 << 20) + 100) == 5000 && pwrite(fd, b, 100, 1000) == 100);
	close(fd);
	snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f vmdk -F raw %s %s && qemu-img check -q -f vmdk %s",
		 vmdk, raw, vmdk);
	CHECK_EQ(system(cmd), 0);
	free(b);
}

static void expect_create_error(const char *opts, const char *want)
{
	struct imgfmt_image *img = NULL;
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";

	snprintf(path, sizeof(path), "%s/bad.vmdk", dir);
	CHECK(imgfmt_create(&img, path, "vmdk", SIZE, opts, IMGFMT_CREATE_FORCE, err, sizeof(err)) < 0);
	if (!strstr(err, want)) {
		fprintf(stderr, "create error '%s' lacks '%s'\n", err, want);
		unit_failures++;
	}
}

/* ---- hostile headers ---- */

static uint8_t *base_image;
static size_t base_bytes;

static void load_base(void)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/s.vmdk", dir);
	f = fopen(path, "rb");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	base_bytes = (size_t)ftell(f);
	rewind(f);
	base_image = malloc(base_bytes);
	if (fread(base_image, 1, base_bytes, f) != base_bytes)
		base_bytes = 0;
	fclose(f);
}

/* Write a copy of the base image with one patch; open must fail naming want. */
static void expect_open_error(size_t off, const void *patch, size_t n, const char *want)
{
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	uint8_t *copy = malloc(base_bytes);
	int fd;

	memcpy(copy, base_image, base_bytes);
	memcpy(copy + off, patch, n);
	snprintf(path, sizeof(path), "%s/hostile.vmdk", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, copy, base_bytes) == (ssize_t)base_bytes);
	close(fd);
	free(copy);
	CHECK(imgfmt_open(&img, path, NULL, err, sizeof(err)) < 0);
	if (img)
		imgfmt_close(img);
	if (!strstr(err, want)) {
		fprintf(stderr, "open error '%s' lacks '%s'\n", err, want);
		unit_failures++;
	}
}

static void put32(uint8_t *p, uint32_t v) { imgfmt_put_le32(p, v); }

/* A grain table entry of 1 is a zeroed grain (ZERO in block status) when
 * the header's zeroed-grain flag is set; without it, the grain at sector 1
 * (DATA, the file's bytes from 512 on), as QEMU reads it. */
static void zero_grain_case(bool flag)
{
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	uint32_t gd_sector = imgfmt_get_le32(base_image + 56);
	uint32_t gt_sector = imgfmt_get_le32(base_image + (size_t)gd_sector * 512);
	uint32_t flags = imgfmt_get_le32(base_image + 8) & ~(1u << 2);
	uint8_t *copy = malloc(base_bytes), b[GRAIN];
	struct imgfmt_extent e;
	FILE *f;

	memcpy(copy, base_image, base_bytes);
	put32(copy + 8, flags | (flag ? 1u << 2 : 0));
	put32(copy + (size_t)gt_sector * 512 + 3 * 4, 1);
	snprintf(path, sizeof(path), "%s/zg.vmdk", dir);
	f = fopen(path, "wb");
	CHECK(f && fwrite(copy, 1, base_bytes, f) == base_bytes);
	fclose(f);
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0);
	if (!img) {
		free(copy);
		return;
	}
	CHECK_EQ(imgfmt_block_status(img, GRAIN * 3, GRAIN * 8, &e), 0);
	CHECK_EQ(e.type, flag ? IMGFMT_EXTENT_ZERO : IMGFMT_EXTENT_DATA);
	CHECK_EQ(e.length_bytes, GRAIN);
	CHECK_EQ(imgfmt_block_status(img, 0, GRAIN * 8, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e.length_bytes, GRAIN * 3);
	memset(b, 0xff, sizeof(b));
	CHECK_EQ(imgfmt_pread(img, b, GRAIN, GRAIN * 3), 0);
	if (flag)
		CHECK(imgfmt_is_zero(b, GRAIN));
	else
		CHECK(base_bytes >= 512 + GRAIN && !memcmp(b, copy + 512, GRAIN));
	imgfmt_close(img);
	free(copy);
}

static void test_zero_grain(void)
{
	zero_grain_case(true);
	zero_grain_case(false);
}

static void test_hostile_headers(void)
{
	uint8_t b[8];
	uint32_t gd_sector;

	load_base();
	if (!base_bytes) {
		CHECK(!"no base image");
		return;
	}
	test_zero_grain();
	put32(b, 3);
	expect_open_error(20, b, 4, "grainSize 3");
	put32(b, 100);
	expect_open_error(44, b, 4, "numGTEsPerGT 100");
	put32(b, 9);
	expect_open_error(4, b, 4, "version 9");
	imgfmt_put_le64(b, 1ull << 50);
	expect_open_error(12, b, 8, "capacity");
	imgfmt_put_le64(b, 1ull << 40);
	expect_open_error(56, b, 8, "gdOffset");
	expect_open_error(48, b, 8, "rgdOffset");
	expect_open_error(28, b, 8, "descriptorOffset");
	gd_sector = imgfmt_get_le32(base_image + 56);
	put32(b, 0x7fffffff);
	expect_open_error((size_t)gd_sector * 512, b, 4, "grain directory entry 0");
	memcpy(b, base_image + (size_t)gd_sector * 512, 4); /* GT 1 = GT 0: a loop */
	expect_open_error((size_t)gd_sector * 512 + 4, b, 4, "overlap");
	expect_open_error(0, "QED\0", 4, "this is a qed image, which p2v does not read");
	expect_open_error(512, "RW 99999999999999999999 SPARSE \"x\"\n", 36, "extent sectors");
	free(base_image);
}

static void test_stream_hostile(void)
{
	char path[256], err[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_image *img = NULL;
	uint8_t *buf = malloc(GRAIN);
	FILE *f;
	long len;
	int fd;

	snprintf(path, sizeof(path), "%s/z.vmdk", dir);
	f = fopen(path, "r+b");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	/* Footer marker of the wrong type. */
	fseek(f, len - 1536 + 12, SEEK_SET);
	fputc(7, f);
	fclose(f);
	CHECK(imgfmt_open(&img, path, NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "marker") != NULL);
	/* Repair, then make the first grain's size run past the end. */
	fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "\x03", 1, len - 1536 + 12) == 1);
	CHECK(pread(fd, buf, 512, 128 * 512) == 512);
	put32(buf + 8, 0x7ffffff0);
	CHECK(pwrite(fd, buf, 512, 128 * 512) == 512);
	close(fd);
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0);
	if (img) {
		CHECK(imgfmt_pread(img, buf, GRAIN, GRAIN * 10) < 0);
		CHECK(strstr(imgfmt_errmsg(img), "size") != NULL);
		imgfmt_close(img);
	}
	free(buf);
}

int main(void)
{
	char cmd[300];

	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	test_desc_good();
	test_desc_hostile();
	test_check_name();
	test_desc_format();
	test_sparse_rw();
	test_stream();
	test_stream_verify();
	test_qemu_image_rw();
	expect_create_error("subformat=monolithicFlat", "subformat");
	expect_create_error("adapter_type=floppy", "adapter_type");
	expect_create_error("grain_size=3000", "grain_size");
	expect_create_error("hwversion=x", "hwversion");
	test_hostile_headers();
	test_stream_hostile();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
	UNIT_DONE();
}
