/* qcow2 driver through the imgfmt API: create, write patterns, read back,
 * zero clusters, compressed clusters, block status, check, reopen, and
 * hostile headers built in memory (memfd) refused with the expected text. */
#include "driver.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char dir[] = "/tmp/unit_qcow2.XXXXXX";

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int write_both(struct imgfmt_image *img, uint8_t *shadow, const uint8_t *buf,
		      uint64_t len, uint64_t off)
{
	memcpy(shadow + off, buf, len);
	return imgfmt_pwrite(img, buf, len, off);
}

static void check_content(struct imgfmt_image *img, const uint8_t *shadow, uint64_t size)
{
	uint8_t *got = malloc(size);

	CHECK(got != NULL);
	CHECK_EQ(imgfmt_pread(img, got, size, 0), 0);
	CHECK(memcmp(got, shadow, size) == 0);
	/* unaligned small reads */
	CHECK_EQ(imgfmt_pread(img, got, 777, 4095), 0);
	CHECK(memcmp(got, shadow + 4095, 777) == 0);
	free(got);
}

static void check_clean(struct imgfmt_image *img)
{
	struct imgfmt_check chk = { 0 };

	CHECK_EQ(imgfmt_check(img, &chk), 0);
	CHECK_EQ(chk.errors, 0);
	CHECK_EQ(chk.leaks, 0);
}

/* From off, DATA extents cover exactly len bytes (then something else),
 * and each one's bytes are in the file at its host offset. */
static void check_data_run(struct imgfmt_image *img, const char *path, const uint8_t *shadow,
			   uint64_t off, uint64_t len)
{
	uint64_t end = off + len, size = imgfmt_size_bytes(img);
	struct imgfmt_extent e;
	int fd = open(path, O_RDONLY);
	uint8_t *got = malloc(len);

	CHECK(fd >= 0 && got);
	while (off < size && imgfmt_block_status(img, off, size - off, &e) == 0 &&
	       e.type == IMGFMT_EXTENT_DATA && fd >= 0 && got) {
		CHECK(e.host_offset_bytes != IMGFMT_NO_HOST_OFFSET);
		CHECK(off + e.length_bytes <= end);
		if (off + e.length_bytes > end)
			break;
		CHECK_EQ(pread(fd, got, e.length_bytes, (off_t)e.host_offset_bytes), (ssize_t)e.length_bytes);
		CHECK(memcmp(got, shadow + off, e.length_bytes) == 0);
		off += e.length_bytes;
	}
	CHECK_EQ(off, end);
	free(got);
	if (fd >= 0)
		close(fd);
}

static void test_write_read(const char *opts, uint32_t cluster)
{
	const uint64_t size = 5 * 1024 * 1024 + 1536;
	char path[256], err[IMGFMT_ERRMSG_BYTES];
	uint8_t *shadow = calloc(1, size), *buf = malloc(1 << 20);
	struct imgfmt_image *img;
	struct imgfmt_extent e;

	snprintf(path, sizeof(path), "%s/wr-%u.qcow2", dir, cluster);
	CHECK_EQ(imgfmt_create(&img, path, "qcow2", size, opts, IMGFMT_CREATE_FORCE, err, sizeof(err)), 0);
	CHECK_EQ(imgfmt_cluster_bytes(img), cluster);
	fill(buf, 1 << 20, 1);
	CHECK_EQ(write_both(img, shadow, buf, 1 << 20, 1 << 20), 0);          /* aligned run */
	fill(buf, 70000, 2);
	CHECK_EQ(write_both(img, shadow, buf, 70000, 1000), 0);                /* unaligned */
	fill(buf, 100, 3);
	CHECK_EQ(write_both(img, shadow, buf, 100, (1 << 20) + 300), 0);       /* inside data */
	fill(buf, 3000, 4);
	CHECK_EQ(write_both(img, shadow, buf, 3000, size - 3000), 0);          /* the tail */
	CHECK_EQ(imgfmt_write_zeroes(img, 256 * 1024, 1 << 20), 0);            /* whole clusters */
	memset(shadow + (1 << 20), 0, 256 * 1024);
	CHECK_EQ(imgfmt_write_zeroes(img, 10, (2 << 20) + 5), 0);              /* partial */
	memset(shadow + (2 << 20) + 5, 0, 10);
	check_content(img, shadow, size);
	if (cluster <= 65536) { /* 2 MiB clusters: the zeroed range is part of one cluster */
		CHECK_EQ(imgfmt_block_status(img, 1 << 20, size - (1 << 20), &e), 0);
		CHECK_EQ(e.type, IMGFMT_EXTENT_ZERO);
		CHECK_EQ(e.length_bytes, 256 * 1024);
		CHECK_EQ(imgfmt_block_status(img, 3 << 20, 1 << 20, &e), 0);
		CHECK_EQ(e.type, IMGFMT_EXTENT_HOLE);
		CHECK_EQ(e.length_bytes, 1 << 20);
	}
	CHECK_EQ(imgfmt_commit(img), 0);
	/* (committed: the file has its name) data up to the cluster the partial
	 * zeroing wrote, in extents whose bytes lie where host_offset_bytes says */
	if (cluster <= 65536)
		check_data_run(img, path, shadow, (1 << 20) + 256 * 1024, (1 << 20) - 256 * 1024 + cluster);
	check_clean(img);
	CHECK_EQ(imgfmt_close(img), 0);

	/* reopen read-only, then read-write and write more */
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0);
	check_content(img, shadow, size);
	check_clean(img);
	imgfmt_close(img);
	struct imgfmt_open_opts rw = { .flags = IMGFMT_OPEN_RDWR };
	CHECK_EQ(imgfmt_open(&img, path, &rw, err, sizeof(err)), 0);
	fill(buf, 200000, 5);
	CHECK_EQ(write_both(img, shadow, buf, 200000, 12345), 0);
	CHECK_EQ(imgfmt_close(img), 0);
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0);
	check_content(img, shadow, size);
	check_clean(img);
	imgfmt_close(img);
	free(shadow);
	free(buf);
}

static void test_compressed(const char *opts)
{
	const uint32_t c = 65536;
	char path[256], err[IMGFMT_ERRMSG_BYTES];
	uint8_t *plain = malloc(c), *z = malloc(c), *got = malloc(c);
	struct imgfmt_image *img;
	struct imgfmt_extent e;
	size_t zlen = 0;

	snprintf(path, sizeof(path), "%s/z.qcow2", dir);
	CHECK_EQ(imgfmt_create(&img, path, "qcow2", 4 * c, opts, IMGFMT_CREATE_FORCE, err, sizeof(err)), 0);
	CHECK(imgfmt_can_compress(img));
	for (uint32_t i = 0; i < c; i++)
		plain[i] = (uint8_t)("compressible text "[i % 18]);
	CHECK_EQ(imgfmt_compress(img, plain, c, z, c, &zlen), 0);
	CHECK(zlen > 0 && zlen < c / 2);
	CHECK_EQ(imgfmt_pwrite_compressed(img, z, zlen, c), 0);
	CHECK_EQ(imgfmt_pwrite_compressed(img, z, zlen, 3 * c), 0); /* packed with the first */
	fill(got, c, 9);
	CHECK_EQ(imgfmt_compress(img, got, c, z, c, &zlen), -ENOSPC); /* random: no gain */
	CHECK_EQ(imgfmt_commit(img), 0);
	check_clean(img);
	memset(got, 0xaa, c);
	CHECK_EQ(imgfmt_pread(img, got, c, 3 * c), 0);
	CHECK(memcmp(got, plain, c) == 0);
	CHECK_EQ(imgfmt_block_status(img, c, 3 * c, &e), 0);
	CHECK_EQ(e.type, IMGFMT_EXTENT_DATA);
	CHECK_EQ(e.length_bytes, c);
	imgfmt_close(img);
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0);
	CHECK_EQ(imgfmt_pread(img, got, c, c), 0);
	CHECK(memcmp(got, plain, c) == 0);
	imgfmt_close(img);
	free(plain);
	free(z);
	free(got);
}

/* A minimal valid v3 image with 512-byte clusters: header, refcount table,
 * refcount block, L1 table; 1 MiB virtual (32 L1 entries). */
#define MINI_BYTES 2560
static void mini_image(uint8_t *b)
{
	memset(b, 0, MINI_BYTES);
	imgfmt_put_be32(b, 0x514649fb);
	imgfmt_put_be32(b + 4, 3);
	imgfmt_put_be32(b + 20, 9);
	imgfmt_put_be64(b + 24, 1 << 20);
	imgfmt_put_be32(b + 36, 32);
	imgfmt_put_be64(b + 40, 1536);
	imgfmt_put_be64(b + 48, 512);
	imgfmt_put_be32(b + 56, 1);
	imgfmt_put_be32(b + 96, 4);
	imgfmt_put_be32(b + 100, 112);
	imgfmt_put_be64(b + 512, 1024);
	for (int i = 0; i < 4; i++)
		imgfmt_put_be16(b + 1024 + 2 * i, 1);
}

static int open_bytes_flags(const uint8_t *b, size_t n, unsigned flags, char *err, size_t err_bytes)
{
	struct imgfmt_open_opts o = { .flags = IMGFMT_OPEN_NO_BACKING | flags };
	struct imgfmt_image *img;
	char path[64];
	int fd = memfd_create("qcow2", 0), r;

	if (fd < 0 || write(fd, b, n) != (ssize_t)n)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = imgfmt_open(&img, path, &o, err, err_bytes);
	if (r == 0) {
		uint8_t buf[4096];
		r = imgfmt_pread(img, buf, sizeof(buf), 0);
		if (r < 0)
			snprintf(err, err_bytes, "%s", imgfmt_errmsg(img));
		imgfmt_close(img);
	}
	close(fd);
	return r;
}

static int open_bytes(const uint8_t *b, size_t n, char *err, size_t err_bytes)
{
	return open_bytes_flags(b, n, 0, err, err_bytes);
}

/* A writable open clears autoclear bits (bitmaps) it does not maintain. */
static void test_autoclear(void)
{
	struct imgfmt_open_opts rw = { .flags = IMGFMT_OPEN_RDWR };
	uint8_t b[MINI_BYTES], back[8];
	char err[IMGFMT_ERRMSG_BYTES], path[256];
	struct imgfmt_image *img = NULL;
	int fd;

	mini_image(b);
	imgfmt_put_be64(b + 88, 1); /* bitmaps extension consistent */
	snprintf(path, sizeof(path), "%s/autoclear.qcow2", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, b, sizeof(b)) == (ssize_t)sizeof(b));
	CHECK_EQ(imgfmt_open(&img, path, NULL, err, sizeof(err)), 0); /* read-only: untouched */
	imgfmt_close(img);
	CHECK(pread(fd, back, 8, 88) == 8 && imgfmt_get_be64(back) == 1);
	CHECK_EQ(imgfmt_open(&img, path, &rw, err, sizeof(err)), 0);
	CHECK(pread(fd, back, 8, 88) == 8 && imgfmt_get_be64(back) == 0); /* before any write */
	imgfmt_close(img);
	close(fd);
}

struct hostile {
	size_t off, bytes;
	uint64_t val;
	const char *expect;
};

static void test_hostile(void)
{
	static const struct hostile cases[] = {
		{ 4, 4, 1, "this is a qcow image" }, /* version 1 */
		{ 20, 4, 8, "cluster_bits 8" },
		{ 20, 4, 22, "cluster_bits 22" },
		{ 24, 8, 1ull << 62, "too small for" },
		{ 24, 8, 1ull << 30, "L1 table of 32 entries is too small" },
		{ 32, 4, 1, "crypt_method 1" },
		{ 36, 4, 1000, "L1 table of 8000 bytes" },
		{ 40, 8, 0, "L1 table at offset 0 overlaps the header" },
		{ 40, 8, 1000, "L1 table offset 1000 is not cluster-aligned" },
		{ 48, 8, 4096, "refcount table of 512 bytes at 4096 exceeds" },
		{ 56, 4, 0, "refcount table of 0 clusters is invalid" },
		{ 60, 4, 70000, "nb_snapshots 70000" },
		{ 72, 8, 4, "external data file" },
		{ 72, 8, 16, "extended L2" },
		{ 72, 8, 1ull << 33, "bit 33" },
		{ 96, 4, 7, "refcount_order 7" },
		{ 100, 4, 101, "header_length 101" },
		{ 104, 1, 1, "compression_type 1 disagrees" },
		{ 104, 1, 5, "unknown compression type 5" },
		{ 8, 8, 2000, "backing file name" },
		{ 1536, 8, 4096, "L2 table of 512 bytes at 4096 exceeds" },
		{ 112, 4, 0x12345678, "header extension 0x12345678" },
	};
	uint8_t b[MINI_BYTES];
	char err[IMGFMT_ERRMSG_BYTES];

	mini_image(b);
	CHECK_EQ(open_bytes(b, sizeof(b), err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hostile *h = &cases[i];
		mini_image(b);
		if (h->bytes == 8)
			imgfmt_put_be64(b + h->off, h->val);
		else if (h->bytes == 4)
			imgfmt_put_be32(b + h->off, (uint32_t)h->val);
		else
			b[h->off] = (uint8_t)h->val;
		if (h->off == 8) /* backing name offset: give it a length */
			imgfmt_put_be32(b + 16, 100);
		if (h->off == 112) /* an extension longer than the cluster */
			imgfmt_put_be32(b + 116, 1000);
		err[0] = 0;
		int r = open_bytes(b, sizeof(b), err, sizeof(err));
		CHECK(r < 0);
		if (!strstr(err, h->expect)) {
			fprintf(stderr, "case %zu: expected '%s' in '%s'\n", i, h->expect, err);
			unit_failures++;
		}
	}
	/* truncated */
	mini_image(b);
	CHECK(open_bytes(b, 60, err, sizeof(err)) < 0);
	CHECK(strstr(err, "too short for a qcow2 header") != NULL);
	/* an L2 entry pointing past the end of the file (L2 table in cluster 4) */
	mini_image(b);
	imgfmt_put_be64(b + 1536, (1ull << 63) | 2048);
	imgfmt_put_be64(b + 2048, (1ull << 63) | (1ull << 40));
	CHECK(open_bytes(b, sizeof(b), err, sizeof(err)) < 0);
	CHECK(strstr(err, "past the end of the file") != NULL);
	/* a compressed cluster whose sectors run past the end */
	mini_image(b);
	imgfmt_put_be64(b + 1536, (1ull << 63) | 2048);
	imgfmt_put_be64(b + 2048, (1ull << 62) | (1ull << 61) | 2400);
	CHECK(open_bytes(b, sizeof(b), err, sizeof(err)) < 0);
	CHECK(strstr(err, "runs past the end") != NULL);
}

/* The dirty bit (stale refcounts) and the corrupt bit do not stop reading,
 * as in QEMU; writing needs a repair first, which may open them. */
static void test_dirty_corrupt(void)
{
	static const struct { uint64_t bit; const char *expect; } cases[] = {
		{ 1, "dirty bit" }, { 2, "marked corrupt" },
	};
	uint8_t b[MINI_BYTES];
	char err[IMGFMT_ERRMSG_BYTES];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mini_image(b);
		imgfmt_put_be64(b + 72, cases[i].bit);
		CHECK_EQ(open_bytes(b, sizeof(b), err, sizeof(err)), 0);
		err[0] = 0;
		CHECK(open_bytes_flags(b, sizeof(b), IMGFMT_OPEN_RDWR, err, sizeof(err)) < 0);
		CHECK(strstr(err, cases[i].expect) != NULL);
		CHECK_EQ(open_bytes_flags(b, sizeof(b), IMGFMT_OPEN_RDWR | IMGFMT_OPEN_REPAIR, err,
					  sizeof(err)), 0);
	}
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_write_read(NULL, 65536);
	test_write_read("cluster_size=512,refcount_bits=1", 512);
	test_write_read("cluster_size=2M,refcount_bits=64", 2 << 20);
	test_compressed(NULL);
	test_compressed("compression_type=zstd");
	test_compressed("refcount_bits=1");
	test_hostile();
	test_dirty_corrupt();
	test_autoclear();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
	UNIT_DONE();
}
