/* Unit tests of the imgfmt core: sizes, zero detection, options, probing
 * rules, request validation, atomic creation, and the copy engine. */
#include "driver.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static char dir[] = "/tmp/p2v-unit-core.XXXXXX";

static const char *tpath(const char *name)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

static void write_file(const char *path, const void *data, size_t len, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(imgfmt_fd_pwrite(fd, data, len, 0) == 0);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	close(fd);
}

static void test_parse_size(void)
{
	uint64_t v = 0;

	CHECK(imgfmt_parse_size("512", &v) == 0 && v == 512);
	CHECK(imgfmt_parse_size("64K", &v) == 0 && v == 65536);
	CHECK(imgfmt_parse_size("1.5G", &v) == 0 && v == 1610612736ull);
	CHECK(imgfmt_parse_size("2MiB", &v) == 0 && v == 2097152);
	CHECK(imgfmt_parse_size("1T", &v) == 0 && v == 1ull << 40);
	CHECK(imgfmt_parse_size("", &v) == -EINVAL);
	CHECK(imgfmt_parse_size("-1", &v) == -EINVAL);
	CHECK(imgfmt_parse_size("12Q", &v) == -EINVAL);
	CHECK(imgfmt_parse_size("0.3", &v) == -EINVAL);
	CHECK(imgfmt_parse_size("16E", &v) == -ERANGE);
}

static void test_is_zero(void)
{
	static uint8_t buf[70000];

	CHECK(imgfmt_is_zero(buf, sizeof(buf)));
	CHECK(imgfmt_is_zero(buf, 0));
	CHECK(imgfmt_is_zero(buf, 3));
	buf[69999] = 1;
	CHECK(!imgfmt_is_zero(buf, sizeof(buf)));
	CHECK(imgfmt_is_zero(buf, 69999));
	buf[69999] = 0;
	buf[5] = 1;
	CHECK(!imgfmt_is_zero(buf, sizeof(buf)));
	CHECK(!imgfmt_is_zero(buf, 6));
	buf[5] = 0;
	buf[17] = 0x80;
	CHECK(!imgfmt_is_zero(buf, 18));
}

static void test_crc32c(void)
{
	CHECK_EQ(imgfmt_crc32c(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ(imgfmt_crc32c(0, "", 0), 0);
}

/* The signature table on bytes in memory: each signature where QEMU's
 * probe looks for it, with 55 AA at 510; near misses are no signature. */
static const char *sig_of(const uint8_t *buf, size_t len)
{
	struct imgfmt_probe_buf pb = {
		.head = buf, .head_bytes = len, .file_bytes = len,
		.tail_wide = buf + (len > 1024 ? len - 1024 : 0), .tail_wide_bytes = len > 1024 ? 1024 : len,
		.tail = buf + (len > 512 ? len - 512 : 0), .tail_bytes = len > 512 ? 512 : len,
	};

	return imgfmt_probe_signature(&pb);
}

static void test_signature_table(void)
{
	static const struct {
		const char *format;
		long off;          /* < 0: from the end of the buffer */
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "qcow2", 0, "QFI\xfb\0\0\0\3", 8 },
		{ "qcow", 0, "QFI\xfb\0\0\0\1", 8 },
		{ "vhdx", 0, "vhdxfile", 8 },
		{ "vpc", 0, "conectix", 8 },
		{ "vpc", -512, "conectix", 8 },
		{ "vmdk", 0, "KDMV", 4 },
		{ "vmdk", 0, "COWD", 4 },
		{ "vmdk", 0, "# Disk DescriptorFile\n", 22 },
		{ "vmdk", 0, "# any comment\n  \r\nversion=2\r\n", 29 },
		{ "bochs", 0, "Bochs Virtual HD Image", 23 },
		{ "cloop", 0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n", 83 },
		{ "luks", 0, "LUKS\xba\xbe\0\1", 8 },
		{ "luks", 0, "LUKS\xba\xbe\0\2", 8 },
		{ "parallels", 0, "WithoutFreeSpace\2\0\0\0", 20 },
		{ "parallels", 0, "WithouFreSpacExt\2\0\0\0", 20 },
		{ "qed", 0, "QED\0", 4 },
		{ "vdi", 0x40, "\x7f\x10\xda\xbe", 4 },
		{ "dmg", -512, "koly", 4 },
		{ "dmg", -1023, "koly", 4 },
		/* near misses: none of these is a signature */
		{ NULL, 0, "LUKS\xba\xbe\0\3", 8 },
		{ NULL, 0, "WithoutFreeSpace\3\0\0\0", 20 },
		{ NULL, 0, "QED\x01", 4 },
		{ NULL, 0, "#!/bin/sh\necho hi\n", 18 },
		{ NULL, 0, "version=4\n", 10 },
		{ NULL, 0x41, "\x7f\x10\xda\xbe", 4 },
		{ NULL, -511, "conectix", 8 },
		{ NULL, -1024, "koly", 4 },
		{ NULL, -508, "koly", 4 },
		{ NULL, 0, "", 0 },
	};
	static uint8_t buf[1 << 16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t at = cases[i].off < 0 ? sizeof(buf) + (size_t)cases[i].off : (size_t)cases[i].off;
		const char *got;

		memset(buf, 0, sizeof(buf));
		memcpy(buf + at, cases[i].bytes, cases[i].len);
		if (!strcmp(cases[i].format ? cases[i].format : "", "bochs")) {
			memcpy(buf + 32, "Redolog", 8);
			memcpy(buf + 48, "Growing", 8);
			buf[66] = 2; /* version 2.0 */
		}
		buf[510] = 0x55;
		buf[511] = 0xAA;
		got = sig_of(buf, sizeof(buf));
		if (!(got && cases[i].format ? !strcmp(got, cases[i].format) : got == cases[i].format)) {
			fprintf(stderr, "signature case %zu: got %s, expected %s\n", i, got ? got : "none",
				cases[i].format ? cases[i].format : "none");
			unit_failures++;
		}
	}
	/* bochs needs its type, subtype and version too */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "Bochs Virtual HD Image", 23);
	CHECK(sig_of(buf, sizeof(buf)) == NULL);
	/* tiny files: no reading past what is there */
	CHECK(sig_of((const uint8_t *)"QFI\xfb", 4) == NULL);
	CHECK(!strcmp(sig_of((const uint8_t *)"KDMV", 4), "vmdk"));
	CHECK(sig_of((const uint8_t *)"", 0) == NULL);
}

static void note_cb(void *opaque, const char *msg)
{
	snprintf(opaque, IMGFMT_ERRMSG_BYTES, "%s", msg);
}

/* Raw is never guessed for another format's magic; a file with none is
 * read as raw with a note, and opened for writing only with -f raw. */
static void test_probe_rules(void)
{
	static uint8_t sect[1024];
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES], note[IMGFMT_ERRMSG_BYTES] = "";
	struct imgfmt_open_opts ro = { .log = note_cb, .log_opaque = note };
	struct imgfmt_open_opts rw = { .flags = IMGFMT_OPEN_RDWR };

	sect[510] = 0x55;
	sect[511] = 0xAA;
	write_file(tpath("mbr.img"), sect, sizeof(sect), 1 << 20);
	CHECK(imgfmt_open(&img, tpath("mbr.img"), &ro, err, sizeof(err)) == 0);
	if (img) {
		CHECK(!strcmp(imgfmt_format(img), "raw"));
		CHECK_EQ(imgfmt_size_bytes(img), 1 << 20);
		imgfmt_close(img);
	}
	CHECK(strstr(note, "mbr.img has no image signature; reading it as raw"));
	memset(sect, 0, sizeof(sect));
	write_file(tpath("blank.img"), sect, sizeof(sect), 1 << 20);
	note[0] = 0;
	CHECK(imgfmt_open(&img, tpath("blank.img"), &ro, err, sizeof(err)) == 0);
	if (img)
		imgfmt_close(img);
	CHECK(strstr(note, "blank.img has no image signature") && strstr(note, "-f raw"));
	CHECK(imgfmt_open(&img, tpath("blank.img"), &rw, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "blank.img: no image signature") && strstr(err, "-f raw"));
	{
		struct imgfmt_open_opts o = { .format = "raw", .flags = IMGFMT_OPEN_RDWR };
		CHECK(imgfmt_open(&img, tpath("blank.img"), &o, err, sizeof(err)) == 0);
		imgfmt_close(img);
	}
	memcpy(sect, "QED\0", 4); /* a format p2v does not read */
	sect[510] = 0x55;
	sect[511] = 0xAA;
	write_file(tpath("qed.img"), sect, sizeof(sect), 1 << 20);
	CHECK(imgfmt_open(&img, tpath("qed.img"), NULL, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "qed.img: this is a qed image, which p2v does not read"));
	memset(sect, 0, 8);
	memcpy(sect, "KDMV", 4); /* VMDK sparse magic, garbage after it */
	sect[510] = 0x55;
	sect[511] = 0xAA;
	write_file(tpath("vmdkish.img"), sect, sizeof(sect), 1 << 20);
	img = NULL;
	CHECK(imgfmt_open(&img, tpath("vmdkish.img"), NULL, err, sizeof(err)) < 0 ||
	      strcmp(imgfmt_format(img), "raw") != 0);
	if (img)
		imgfmt_close(img);
	CHECK(imgfmt_open(&img, tpath("missing.img"), NULL, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "missing.img") != NULL);
}

static void test_requests(void)
{
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	uint8_t buf[4096] = { 0 };

	CHECK(imgfmt_create(&img, tpath("r.raw"), "raw", 10000, NULL, 0, err, sizeof(err)) == 0);
	CHECK(imgfmt_pwrite(img, buf, 4096, 8000) == -EINVAL);
	CHECK(strstr(imgfmt_errmsg(img), "beyond the image size 10000") != NULL);
	CHECK(imgfmt_pread(img, buf, 1, UINT64_MAX) == -EINVAL);
	CHECK(imgfmt_pwrite(img, buf, 2000, 8000) == 0);
	CHECK(imgfmt_pread(img, buf, 0, 10000) == 0);
	CHECK(imgfmt_commit(img) == 0);
	imgfmt_close(img);
	/* exists: refused without FORCE, replaced with it */
	CHECK(imgfmt_create(&img, tpath("r.raw"), "raw", 10, NULL, 0, err, sizeof(err)) == -EEXIST);
	CHECK(strstr(err, "--force") != NULL);
	CHECK(imgfmt_create(&img, tpath("r.raw"), "raw", 10, "bogus=1", IMGFMT_CREATE_FORCE, err,
			    sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "no option 'bogus'") != NULL);
	CHECK(imgfmt_create(&img, tpath("r.raw"), "nosuch", 10, NULL, 0, err, sizeof(err)) == -EINVAL);
	/* read-only opens refuse writes */
	{
		struct imgfmt_open_opts o = { .format = "raw" };
		CHECK(imgfmt_open(&img, tpath("r.raw"), &o, err, sizeof(err)) == 0);
		CHECK(imgfmt_pwrite(img, buf, 1, 0) == -EBADF);
		imgfmt_close(img);
	}
}

/* A created image is invisible until commit; close without commit removes it. */
static void test_atomic_create(void)
{
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	struct stat st;

	CHECK(imgfmt_create(&img, tpath("a.raw"), "raw", 1 << 20, NULL, 0, err, sizeof(err)) == 0);
	CHECK(stat(tpath("a.raw"), &st) < 0);
	imgfmt_close(img);
	CHECK(stat(tpath("a.raw"), &st) < 0);
	CHECK(imgfmt_create(&img, tpath("a.raw"), "raw", 1 << 20, NULL, 0, err, sizeof(err)) == 0);
	CHECK(imgfmt_commit(img) == 0);
	imgfmt_close(img);
	CHECK(stat(tpath("a.raw"), &st) == 0 && st.st_size == 1 << 20);
}

/* Locks between two opens of one file (separate open file descriptions). */
static void test_locks(void)
{
	struct imgfmt_open_opts rw = { .format = "raw", .flags = IMGFMT_OPEN_RDWR };
	struct imgfmt_open_opts ro = { .format = "raw" };
	struct imgfmt_open_opts ro_u = { .format = "raw", .flags = IMGFMT_OPEN_FORCE_SHARE };
	struct imgfmt_image *w = NULL, *r1 = NULL, *r2 = NULL;
	char err[IMGFMT_ERRMSG_BYTES];

	write_file(tpath("l.raw"), "x", 1, 1 << 20);
	CHECK(imgfmt_open(&r1, tpath("l.raw"), &ro, err, sizeof(err)) == 0);
	CHECK(imgfmt_open(&r2, tpath("l.raw"), &ro, err, sizeof(err)) == 0); /* readers share */
	CHECK(imgfmt_open(&w, tpath("l.raw"), &rw, err, sizeof(err)) == -EBUSY);
	CHECK(strstr(err, "\"write\" lock") != NULL);
	imgfmt_close(r1);
	imgfmt_close(r2);
	CHECK(imgfmt_open(&w, tpath("l.raw"), &rw, err, sizeof(err)) == 0);
	r1 = NULL;
	CHECK(imgfmt_open(&r1, tpath("l.raw"), &ro, err, sizeof(err)) == -EBUSY);
	CHECK(imgfmt_open(&r1, tpath("l.raw"), &ro_u, err, sizeof(err)) == 0); /* -U */
	imgfmt_close(r1);
	imgfmt_close(w);
}

/* ---- copy engine ---- */

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13) | 1;
	return p;
}

static struct imgfmt_image *open_raw(const char *path, unsigned flags)
{
	struct imgfmt_open_opts o = { .format = "raw", .flags = flags };
	struct imgfmt_image *img = NULL;
	char err[IMGFMT_ERRMSG_BYTES];

	CHECK(imgfmt_open(&img, path, &o, err, sizeof(err)) == 0);
	return img;
}

static void read_all(const char *path, uint8_t *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && imgfmt_fd_pread(fd, buf, len, 0) == 0);
	close(fd);
}

static struct imgfmt_image *make_dst(const char *name, uint64_t size)
{
	struct imgfmt_image *dst = NULL;
	char err[IMGFMT_ERRMSG_BYTES];

	CHECK(imgfmt_create(&dst, tpath(name), "raw", size, NULL, IMGFMT_CREATE_FORCE, err,
			    sizeof(err)) == 0);
	return dst;
}

/* Pages of [off, off + len) of fd resident in the page cache. */
static size_t resident_pages(int fd, uint64_t off, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = len / (size_t)page, count = 0;
	unsigned char *vec = malloc(n);
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);

	CHECK(vec && map != MAP_FAILED);
	if (vec && map != MAP_FAILED && mincore(map, len, vec) == 0)
		for (size_t i = 0; i < n; i++)
			count += vec[i] & 1;
	if (map != MAP_FAILED)
		munmap(map, len);
	free(vec);
	return count;
}

/* Bulk data is written back a window at a time: what lies two windows
 * behind is on disk and out of the page cache, while small writes over the
 * same pages (metadata, unaligned data) still read back as the last write. */
static void test_data_writeback(void)
{
	const size_t win = IMGFMT_WRITEBACK_WINDOW_BYTES, len = 4 * win;
	struct imgfmt_image *img = NULL;
	char err[IMGFMT_ERRMSG_BYTES];
	uint8_t *model = calloc(1, len), *back = malloc(len);
	struct statfs fs;

	CHECK(model && back);
	CHECK(imgfmt_create(&img, tpath("d.raw"), "raw", len, NULL, 0, err, sizeof(err)) == 0);
	if (!img || !model || !back)
		goto out_free;
	for (size_t i = 0; i < len; i++)
		model[i] = (uint8_t)(i * 7 + i / 4096);
	/* first window in two halves, the second out of order */
	CHECK(imgfmt_data_pwrite(img, model + win / 2, win / 2, win / 2) == 0);
	CHECK(imgfmt_data_pwrite(img, model, win / 2, 0) == 0);
	CHECK(img->wb.prev_lo == 0 && img->wb.prev_hi == win && img->wb.bytes == 0);
	memset(model + 100, 0x5a, 3000);              /* a small write over kicked pages */
	CHECK(imgfmt_fd_pwrite(img->fd, model + 100, 3000, 100) == 0);
	CHECK(imgfmt_data_pwrite(img, model + win, 3 * win, win) == 0);
	CHECK(img->wb.prev_lo == win && img->wb.prev_hi == len);
	CHECK(imgfmt_pread(img, back, len, 0) == 0 && !memcmp(back, model, len));
	CHECK(imgfmt_data_pwrite(img, model, win, 0) == 0); /* waits for [win, len) */
	if (fstatfs(img->fd, &fs) == 0 && fs.f_type != TMPFS_MAGIC)
		CHECK(resident_pages(img->fd, win, win) == 0);
	CHECK(imgfmt_commit(img) == 0);
	imgfmt_close(img);
	read_all(tpath("d.raw"), back, len);
	CHECK(!memcmp(back, model, len));
out_free:
	free(model);
	free(back);
}

/* Sparse source with data at odd places; output equal, holes kept. */
static void test_copy_basic(void)
{
	const size_t size = 5u * 1024 * 1024 + 777;
	uint8_t *data = pattern(size, 1), *got = malloc(size);
	struct imgfmt_copy_stats st;
	struct imgfmt_image *src, *dst;
	char err[256];
	struct stat sb;
	int fd = open(tpath("src.raw"), O_RDWR | O_CREAT | O_TRUNC, 0644);

	CHECK(ftruncate(fd, (off_t)size) == 0);
	CHECK(imgfmt_fd_pwrite(fd, data + 4096, 100000, 4096) == 0);
	CHECK(imgfmt_fd_pwrite(fd, data + 3000000, 1, 3000000) == 0);
	CHECK(imgfmt_fd_pwrite(fd, data + size - 700, 700, size - 700) == 0);
	close(fd);
	src = open_raw(tpath("src.raw"), 0);
	dst = make_dst("dst.raw", size);
	CHECK(imgfmt_copy(src, dst, NULL, &st, err, sizeof(err)) == 0);
	CHECK(imgfmt_commit(dst) == 0);
	imgfmt_close(dst);
	imgfmt_close(src);
	memset(data, 0, 4096);
	memset(data + 4096 + 100000, 0, 3000000 - 104096);
	memset(data + 3000001, 0, size - 700 - 3000001);
	read_all(tpath("dst.raw"), got, size);
	CHECK(memcmp(got, data, size) == 0);
	CHECK(st.bytes_written < 300000);
	CHECK(st.hole_bytes_skipped > 4000000);
	CHECK(stat(tpath("dst.raw"), &sb) == 0 && (uint64_t)sb.st_blocks * 512 < 400000);
	free(data);
	free(got);
}

/* The caller's map decides: garbage outside DATA extents must not be copied. */
static void test_copy_extents_map(void)
{
	const size_t size = 3u * 1024 * 1024;
	uint8_t *data = pattern(size, 7), *got = malloc(size);
#define EXT(o, l, t) { .offset_bytes = (o), .length_bytes = (l), .type = (t) }
	const struct imgfmt_extent map[] = {
		EXT(0, 512, IMGFMT_EXTENT_DATA),
		EXT(512, 1024 * 1024 - 512, IMGFMT_EXTENT_HOLE),
		EXT(1024 * 1024, 1536, IMGFMT_EXTENT_DATA),     /* unaligned end */
		EXT(1024 * 1024 + 1536, 512, IMGFMT_EXTENT_ZERO),
		EXT(1024 * 1024 + 2048, 4096, IMGFMT_EXTENT_DATA),
		/* the rest is not listed: zero */
	};
	struct imgfmt_copy_opts o = { .extents = map, .n_extents = 5, .chunk_bytes = 65536 };
	struct imgfmt_image *src, *dst;
	char err[256];

	write_file(tpath("garbage.raw"), data, size, size);
	src = open_raw(tpath("garbage.raw"), 0);
	dst = make_dst("mapped.raw", size);
	CHECK(imgfmt_copy(src, dst, &o, NULL, err, sizeof(err)) == 0);
	CHECK(imgfmt_commit(dst) == 0);
	imgfmt_close(dst);
	imgfmt_close(src);
	read_all(tpath("mapped.raw"), got, size);
	CHECK(memcmp(got, data, 512) == 0);
	CHECK(imgfmt_is_zero(got + 512, 1024 * 1024 - 512));
	CHECK(memcmp(got + 1024 * 1024, data + 1024 * 1024, 1536) == 0);
	CHECK(imgfmt_is_zero(got + 1024 * 1024 + 1536, 512));
	CHECK(memcmp(got + 1024 * 1024 + 2048, data + 1024 * 1024 + 2048, 4096) == 0);
	CHECK(imgfmt_is_zero(got + 1024 * 1024 + 6144, size - 1024 * 1024 - 6144));
	free(data);
	free(got);
}

/* A target that is not fresh (written in place) gets zeroes written. */
static void test_copy_not_fresh(void)
{
	const size_t size = 2u * 1024 * 1024;
	uint8_t *junk = pattern(size, 3), *got = malloc(size);
	struct imgfmt_image *src, *dst = NULL;
	char err[256];

	write_file(tpath("zero.raw"), "", 0, size); /* all hole */
	write_file(tpath("junk.raw"), junk, size, size);
	src = open_raw(tpath("zero.raw"), 0);
	CHECK(imgfmt_create(&dst, tpath("junk.raw"), "raw", size, NULL, IMGFMT_CREATE_IN_PLACE, err,
			    sizeof(err)) == 0);
	/* IN_PLACE on a regular file truncates: it is fresh.  Reopen RDWR instead. */
	imgfmt_close(dst);
	write_file(tpath("junk.raw"), junk, size, size);
	dst = open_raw(tpath("junk.raw"), IMGFMT_OPEN_RDWR);
	CHECK(!imgfmt_is_fresh(dst));
	CHECK(imgfmt_copy(src, dst, NULL, NULL, err, sizeof(err)) == 0);
	imgfmt_close(dst);
	imgfmt_close(src);
	read_all(tpath("junk.raw"), got, size);
	CHECK(imgfmt_is_zero(got, size));
	free(junk);
	free(got);
}

static int failing_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
	int *calls = opaque;
	(void)buf;
	(void)len;
	if (off >= 1024 * 1024)
		return -EIO;
	(*calls)++;
	memset(buf, 0xAB, len);
	return 0;
}

static void test_copy_errors(void)
{
	const size_t size = 4u * 1024 * 1024;
	uint8_t *data = pattern(size, 9);
	volatile sig_atomic_t cancel = 1;
	struct imgfmt_copy_opts o = { .cancel = &cancel };
	struct imgfmt_image *src, *dst;
	struct stat sb;
	char err[256];
	int calls = 0;

	write_file(tpath("e.raw"), data, size, size);
	src = open_raw(tpath("e.raw"), 0);
	dst = make_dst("e-out.raw", size);
	CHECK(imgfmt_copy(src, dst, &o, NULL, err, sizeof(err)) == -EINTR);
	CHECK(strstr(err, "interrupted") != NULL);
	imgfmt_close(dst);
	CHECK(stat(tpath("e-out.raw"), &sb) < 0);
	dst = make_dst("e-out.raw", size);
	o.cancel = NULL;
	o.read = failing_read;
	o.read_opaque = &calls;
	o.chunk_bytes = 1024 * 1024; /* the first job reads, the next fails */
	CHECK(imgfmt_copy(src, dst, &o, NULL, err, sizeof(err)) == -EIO);
	CHECK(calls > 0);
	imgfmt_close(dst);
	CHECK(stat(tpath("e-out.raw"), &sb) < 0);
	/* target too small */
	dst = make_dst("small.raw", size - 1);
	CHECK(imgfmt_copy(src, dst, NULL, NULL, err, sizeof(err)) == -ENOSPC);
	CHECK(strstr(err, "does not fit") != NULL);
	imgfmt_close(dst);
	imgfmt_close(src);
	free(data);
}

/* The option parser: strict numbers, sizes, enums, on/off, ",," and the
 * messages that name the option. */
static void test_create_options(void)
{
	static const struct {
		const char *fmt, *opts, *msg; /* msg NULL: accepted */
	} cases[] = {
		{ "qcow2", "cluster_size=4K,refcount_bits=64,compression_type=zstd", NULL },
		{ "qcow2", "cluster_size=65536", NULL },
		{ "qcow2", "refcount_bits=16x", "refcount_bits: '16x' is not a number" },
		{ "qcow2", "refcount_bits=0x10", "is not a number" },
		{ "qcow2", "refcount_bits=-1", "is not a number" },
		{ "qcow2", "refcount_bits= 16", "is not a number" },
		{ "qcow2", "refcount_bits=99999999999999999999999", "not a representable number" },
		{ "qcow2", "refcount_bits=12", "12 is not a power of two from 1 to 64" },
		{ "qcow2", "cluster_size=3K", "3K is not a power of two from 512 to 2M" },
		{ "qcow2", "cluster_size=4M", "4M is not a power of two from 512 to 2M" },
		{ "qcow2", "cluster_size=64Q", "'64Q' is not a size" },
		{ "qcow2", "compression_type=lz4", "'lz4' is not one of zlib, zstd" },
		{ "qcow2", "compat=0.10,refcount_bits=64", "16-bit refcounts" },
		{ "qcow2", "cluster_size", "cluster_size needs a value" },
		{ "qcow2", "=4K", "has no name" },
		{ "qcow2", "nosuch=1", "no option 'nosuch' (it has compat, cluster_size," },
		{ "vpc", "force_size", NULL },
		{ "vpc", "force_size=on,subformat=fixed", NULL },
		{ "vpc", "azure=maybe", "azure: 'maybe' is not on or off" },
		{ "vpc", "block_size=1M", NULL },
		{ "vpc", "block_size=1M,subformat=fixed", "dynamic images only" },
		{ "vhdx", "log_size=1536K", "1536K is not from 1M to 1G, a multiple of 1M" },
		{ "vhdx", "block_size=32M,subformat=fixed,logical_sector_size=4096", NULL },
		{ "vmdk", "adapter_type=lsilogic,hwversion=7", NULL },
		{ "vmdk", "hwversion=100", "100 is not from 1 to 99" },
		{ "vmdk", "adapter_type=scsi", "not one of ide, lsilogic" },
		{ "raw", "preallocation=falloc", NULL },
		{ "raw", "cluster_size=4K", "no option 'cluster_size' (it has preallocation" },
	};
	char err[IMGFMT_ERRMSG_BYTES], line[400];
	const struct imgfmt_opt_desc *d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imgfmt_image *img = NULL;
		int r;
		err[0] = 0;
		r = imgfmt_create(&img, tpath("opt.img"), cases[i].fmt, 1 << 20, cases[i].opts,
				  IMGFMT_CREATE_FORCE, err, sizeof(err));
		if (!cases[i].msg) {
			if (r != 0)
				fprintf(stderr, "case %zu (%s): %s\n", i, cases[i].opts, err);
			CHECK_EQ(r, 0);
		} else {
			CHECK_EQ(r, -EINVAL);
			if (!strstr(err, cases[i].msg))
				fprintf(stderr, "case %zu (%s): got '%s'\n", i, cases[i].opts, err);
			CHECK(strstr(err, cases[i].msg) != NULL);
		}
		if (img)
			imgfmt_close(img);
	}
	/* ",," is a comma inside a value (a backing file name) */
	CHECK_EQ(imgfmt_options_check("qcow2", "backing_fmt=raw,,x", err, sizeof(err)), 0);
	CHECK_EQ(imgfmt_options_check("qcow2", "backing_fmt=raw,x", err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "no option 'x'") != NULL);
	/* every format's table: unique names, a help text, defaults that parse */
	for (unsigned i = 0; imgfmt_driver_name(i); i++) {
		d = imgfmt_create_options(imgfmt_driver_name(i));
		CHECK(d != NULL);
		for (size_t k = 0; d && d[k].name; k++) {
			CHECK(d[k].help && *d[k].help);
			for (size_t m = 0; m < k; m++)
				CHECK(strcmp(d[k].name, d[m].name) != 0);
		}
		CHECK_EQ(imgfmt_options_check(imgfmt_driver_name(i), NULL, err, sizeof(err)), 0);
	}
	d = imgfmt_create_options("qcow2");
	imgfmt_opt_describe(&d[1], line, sizeof(line));
	CHECK(strstr(line, "cluster_size=<size>") == line);
	CHECK(strstr(line, "(a power of two from 512 to 2M; default 64K)") != NULL);
	CHECK(imgfmt_create_options("nosuch") == NULL);
}

int main(void)
{
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	test_parse_size();
	test_is_zero();
	test_crc32c();
	test_signature_table();
	test_probe_rules();
	test_requests();
	test_atomic_create();
	test_data_writeback();
	test_locks();
	test_copy_basic();
	test_copy_extents_map();
	test_copy_not_fresh();
	test_copy_errors();
	test_create_options();
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", dir);
	}
	UNIT_DONE();
}
