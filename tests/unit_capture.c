/* Capture pieces on in-memory bytes: range-map merging and extents, the FAT
 * reader on hand-built FAT12/16/32 volumes (and hostile BPBs), SHA-256
 * against the FIPS 180-2 vectors, the libext2fs io_manager over a reader. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "capture.h"
#include "driver.h"
#include "unit.h"

/* ---- range maps ---- */

static void test_rangemap(void)
{
	struct p2v_rangemap m;

	p2v_rangemap_init(&m);
	CHECK_EQ(p2v_rangemap_add(&m, 1000, 100), 0);
	CHECK_EQ(p2v_rangemap_add(&m, 0, 10), 0);
	CHECK_EQ(p2v_rangemap_add(&m, 1050, 100), 0);  /* overlaps the first */
	CHECK_EQ(p2v_rangemap_add(&m, 1150, 50), 0);   /* touches */
	CHECK_EQ(p2v_rangemap_add(&m, 5000, 0), 0);    /* ignored */
	CHECK_EQ(p2v_rangemap_add(&m, 3000, 10), 0);
	CHECK_EQ(p2v_rangemap_add(&m, 2990, 5), 0);
	CHECK_EQ(p2v_rangemap_add(&m, UINT64_MAX - 5, 10), -ERANGE);
	p2v_rangemap_normalize(&m);
	CHECK_EQ(m.n, 4);
	CHECK_EQ(m.v[0].off_bytes, 0);
	CHECK_EQ(m.v[0].len_bytes, 10);
	CHECK_EQ(m.v[1].off_bytes, 1000);
	CHECK_EQ(m.v[1].len_bytes, 200);
	CHECK_EQ(m.v[2].off_bytes, 2990);
	CHECK_EQ(m.v[2].len_bytes, 5);
	CHECK_EQ(m.v[3].off_bytes, 3000);
	CHECK_EQ(p2v_rangemap_bytes(&m), 10 + 200 + 5 + 10);

	/* Extents: aligned to 512, cover [0, disk) exactly, clipped to the disk. */
	struct imgfmt_extent *e = NULL;
	size_t n = 0;
	CHECK_EQ(p2v_rangemap_add(&m, 4000, 10000), 0);
	p2v_rangemap_normalize(&m);
	CHECK_EQ(p2v_rangemap_to_extents(&m, 8192, 512, &e, &n), 0);
	/* [0,1536) data (0..10 and 1000..1200 widened to sectors); [1536,2560)
	 * hole; [2560,3072) data (2990..3010); [3072,3584) hole; [3584,8192)
	 * data (4000.. rounded down, clipped to the disk). */
	CHECK_EQ(n, 5);
	uint64_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(e[i].offset_bytes, pos);
		CHECK(e[i].length_bytes > 0);
		CHECK_EQ(e[i].offset_bytes % 512, 0);
		pos += e[i].length_bytes;
	}
	CHECK_EQ(pos, 8192);
	CHECK_EQ(e[0].type, IMGFMT_EXTENT_DATA);
	CHECK_EQ(e[0].length_bytes, 1536);
	CHECK_EQ(e[1].type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e[2].offset_bytes, 2560);
	CHECK_EQ(e[2].type, IMGFMT_EXTENT_DATA);
	CHECK_EQ(e[3].type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e[4].offset_bytes, 3584);
	CHECK_EQ(e[4].type, IMGFMT_EXTENT_DATA);
	free(e);
	CHECK_EQ(p2v_rangemap_to_extents(&m, 8192, 300, &e, &n), -EINVAL);

	/* Empty map: one hole. */
	struct p2v_rangemap empty;
	p2v_rangemap_init(&empty);
	CHECK_EQ(p2v_rangemap_to_extents(&empty, 4096, 512, &e, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(e[0].type, IMGFMT_EXTENT_HOLE);
	CHECK_EQ(e[0].length_bytes, 4096);
	free(e);
	p2v_rangemap_free(&m);
}

/* ---- FAT ---- */

struct mem_disk {
	uint8_t *b;
	uint64_t size;
};

static int mem_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
	struct mem_disk *d = opaque;

	if (off > d->size || len > d->size - off)
		return -EIO;
	memcpy(buf, d->b + off, len);
	return 0;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

/* BPB: 512-byte sectors, 1 sector per cluster, 1 reserved sector. */
static void make_bpb(uint8_t *b, uint32_t total, uint32_t fat_sectors, uint16_t root_entries,
		     bool fat32)
{
	put16(b + 11, 512);
	b[13] = 1;
	put16(b + 14, 1);
	b[16] = 2;
	put16(b + 17, root_entries);
	if (total < 65536 && !fat32)
		put16(b + 19, (uint16_t)total);
	else
		put32(b + 32, total);
	if (fat32)
		put32(b + 36, fat_sectors);
	else
		put16(b + 22, (uint16_t)fat_sectors);
	b[510] = 0x55;
	b[511] = 0xAA;
}

static void set_fat12(uint8_t *fat, uint32_t idx, uint16_t v)
{
	uint8_t *p = fat + idx * 3 / 2;
	uint16_t cur = (uint16_t)(p[0] | p[1] << 8);

	cur = (idx & 1) ? (uint16_t)((cur & 0x000F) | (v << 4)) : (uint16_t)((cur & 0xF000) | v);
	put16(p, cur);
}

static int run_fat(struct mem_disk *d, uint64_t part_off, uint64_t part_bytes, struct p2v_rangemap *m,
		   uint64_t *used)
{
	struct p2v_fsmap_ctx ctx = {
		.read = mem_read, .read_opaque = d, .part_off_bytes = part_off,
		.part_bytes = part_bytes, .map = m,
	};
	int r = p2v_fsmap_fat(&ctx);

	p2v_rangemap_normalize(m);
	*used = ctx.used_bytes;
	return r;
}

static void test_fat12(void)
{
	/* 64 sectors: 1 reserved + 2 FATs of 1 + 1 root sector = 4; 60 clusters. */
	uint64_t part_off = 4096;
	struct mem_disk d = { .size = part_off + 64 * 512 };
	struct p2v_rangemap m;
	uint64_t used;

	d.b = calloc(1, d.size);
	uint8_t *p = d.b + part_off, *fat = p + 512;
	make_bpb(p, 64, 1, 16, false);
	set_fat12(fat, 0, 0xFF8);
	set_fat12(fat, 1, 0xFFF);
	set_fat12(fat, 2, 0xFFF);   /* cluster 2: one-cluster file */
	set_fat12(fat, 3, 4);       /* 3 -> 4 */
	set_fat12(fat, 4, 0xFFF);
	set_fat12(fat, 10, 0xFF7);  /* bad cluster: kept */
	set_fat12(fat, 61, 0xFFF);  /* last cluster */
	memcpy(fat + 512, fat, 512);  /* the second FAT ... */
	set_fat12(fat + 512, 30, 0xFFF); /* ... also has cluster 30: kept */
	memset(p + 4 * 512 + 20 * 512, 0xAA, 512); /* garbage in a free cluster */
	p2v_rangemap_init(&m);
	CHECK_EQ(run_fat(&d, part_off, 64 * 512, &m, &used), 0);
	CHECK_EQ(m.n, 4);
	CHECK_EQ(m.v[0].off_bytes, part_off);
	CHECK_EQ(m.v[0].len_bytes, 7 * 512);            /* metadata + clusters 2..4 */
	CHECK_EQ(m.v[1].off_bytes, part_off + 12 * 512); /* cluster 10 */
	CHECK_EQ(m.v[1].len_bytes, 512);
	CHECK_EQ(m.v[2].off_bytes, part_off + 32 * 512); /* cluster 30, second FAT */
	CHECK_EQ(m.v[3].off_bytes, part_off + 63 * 512); /* cluster 61 */
	CHECK_EQ(used, 9 * 512);                        /* counted from the first FAT */
	p2v_rangemap_free(&m);

	/* A partition larger than the volume: the tail is copied. */
	p2v_rangemap_init(&m);
	d.size += 1024;
	d.b = realloc(d.b, d.size);
	memset(d.b + d.size - 1024, 0, 1024);
	CHECK_EQ(run_fat(&d, part_off, 64 * 512 + 1024, &m, &used), 0);
	CHECK_EQ(m.v[m.n - 1].off_bytes, part_off + 63 * 512);
	CHECK_EQ(m.v[m.n - 1].len_bytes, 512 + 1024);
	p2v_rangemap_free(&m);

	/* Hostile BPBs. */
	struct { unsigned off; uint8_t val; } bad[] = {
		{ 11, 0x2C },  /* 300-byte sectors */
		{ 13, 3 },     /* 3 sectors per cluster */
		{ 16, 0 },     /* no FAT */
		{ 14, 0 },     /* no reserved sector */
		{ 510, 0 },    /* no signature */
		{ 19, 200 },   /* 200 sectors: more than the partition */
		{ 22, 0 },     /* FAT size zero */
	};
	p = d.b + part_off;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t save = p[bad[i].off], save2 = p[bad[i].off + 1];
		p[bad[i].off] = bad[i].val;
		if (bad[i].off == 14 || bad[i].off == 22 || bad[i].off == 11)
			p[bad[i].off + 1] = bad[i].off == 11 ? 1 : 0;
		p2v_rangemap_init(&m);
		CHECK_EQ(run_fat(&d, part_off, 64 * 512, &m, &used), -EINVAL);
		p2v_rangemap_free(&m);
		p[bad[i].off] = save;
		p[bad[i].off + 1] = save2;
	}
	free(d.b);
}

static void test_fat16_32(bool fat32)
{
	/* FAT16: 4200 clusters; FAT32: 66000 clusters (512-byte clusters). */
	uint32_t clusters = fat32 ? 66000 : 4200, bits = fat32 ? 32 : 16;
	uint32_t fat_sectors = ((clusters + 2) * bits / 8 + 511) / 512;
	uint32_t root = fat32 ? 0 : 1, meta = 1 + 2 * fat_sectors + root;
	uint32_t total = meta + clusters;
	struct mem_disk d = { .size = (uint64_t)total * 512 };
	struct p2v_rangemap m;
	uint64_t used;

	d.b = calloc(1, d.size);
	make_bpb(d.b, total, fat_sectors, fat32 ? 0 : 16, fat32);
	uint8_t *fat = d.b + 512;
	uint32_t last = clusters + 1;
	if (fat32) {
		put32(fat + 4 * 1, 0x0FFFFFFF);       /* clean, no errors */
		put32(fat + 4 * 2, 0x0FFFFFFF);       /* root directory */
		put32(fat + 4 * 5000, 0xF0000000);    /* reserved high bits only: free */
		put32(fat + 4 * (uint64_t)last, 0x0FFFFFF8);
	} else {
		put16(fat + 2 * 1, 0xFFFF);
		put16(fat + 2 * 2, 0xFFFF);
		put16(fat + 2 * (uint64_t)last, 0xFFF8);
	}
	p2v_rangemap_init(&m);
	CHECK_EQ(run_fat(&d, 0, d.size, &m, &used), 0);
	CHECK_EQ(m.n, 2);
	CHECK_EQ(m.v[0].off_bytes, 0);
	CHECK_EQ(m.v[0].len_bytes, (uint64_t)(meta + 1) * 512);
	CHECK_EQ(m.v[1].off_bytes, (uint64_t)(total - 1) * 512);
	CHECK_EQ(m.v[1].len_bytes, 512);
	CHECK_EQ(used, (uint64_t)(meta + 2) * 512);
	p2v_rangemap_free(&m);
	/* Not cleanly unmounted, then disk errors: not trusted. */
	d.b[512 + (fat32 ? 7 : 3)] &= (uint8_t)~(fat32 ? 0x08 : 0x80);
	p2v_rangemap_init(&m);
	CHECK_EQ(run_fat(&d, 0, d.size, &m, &used), -EUCLEAN);
	p2v_rangemap_free(&m);
	d.b[512 + (fat32 ? 7 : 3)] |= (uint8_t)(fat32 ? 0x08 : 0x80);
	d.b[512 + (fat32 ? 7 : 3)] &= (uint8_t)~(fat32 ? 0x04 : 0x40);
	p2v_rangemap_init(&m);
	CHECK_EQ(run_fat(&d, 0, d.size, &m, &used), -EUCLEAN);
	p2v_rangemap_free(&m);
	free(d.b);
}

/* ---- the retrying reader ---- */

static void test_reader(void)
{
	char path[] = "/tmp/p2v-unit-reader-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *data = malloc(1 << 20), *buf = malloc(1 << 20);
	struct p2v_reader r;

	CHECK(fd >= 0);
	for (size_t i = 0; i < 1 << 20; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	CHECK_EQ(pwrite(fd, data, 1 << 20, 0), 1 << 20);
	/* Sectors 100..102 and nothing else fail. */
	setenv("P2V_TEST_BAD_SECTORS", "100-103", 1);
	CHECK_EQ(p2v_reader_init(&r, fd, 512, 0), 0);
	unsetenv("P2V_TEST_BAD_SECTORS");
	p2v_reader_use_direct(&r, path);  /* single-sector retries via O_DIRECT where allowed */
	CHECK_EQ(p2v_reader_read(&r, buf, 1 << 20, 0), 0);
	CHECK(!memcmp(buf, data, 100 * 512));
	CHECK(imgfmt_is_zero(buf + 100 * 512, 3 * 512));
	CHECK(!memcmp(buf + 103 * 512, data + 103 * 512, (1 << 20) - 103 * 512));
	p2v_rangemap_normalize(&r.lost);
	CHECK_EQ(r.lost.n, 1);
	CHECK_EQ(r.lost.v[0].off_bytes, 100 * 512);
	CHECK_EQ(r.lost.v[0].len_bytes, 3 * 512);
	CHECK_EQ(r.n_errors, 3);
	/* A read that does not touch them is not affected. */
	CHECK_EQ(p2v_reader_read(&r, buf, 4096, 200 * 512), 0);
	CHECK(!memcmp(buf, data + 200 * 512, 4096));
	/* Not recording (verify): zeroes, nothing counted. */
	r.record = false;
	CHECK_EQ(p2v_reader_read(&r, buf, 8192, 96 * 512), 0);
	CHECK_EQ(r.n_errors, 3);
	/* More failures than allowed: -EIO. */
	r.record = true;
	r.max_errors = 4;
	CHECK_EQ(p2v_reader_read(&r, buf, 8192, 96 * 512), -EIO);
	/* Beyond the end of the file: every sector lost, still filled. */
	r.max_errors = 0;
	CHECK_EQ(p2v_reader_read(&r, buf, 1024, (1 << 20) - 512), 0);
	CHECK(!memcmp(buf, data + (1 << 20) - 512, 512));
	CHECK(imgfmt_is_zero(buf + 512, 512));
	p2v_reader_destroy(&r);
	close(fd);
	unlink(path);
	free(data);
	free(buf);
}

/* ---- SHA-256 ---- */

static void sha_hex(const void *data, size_t len, char out[65])
{
	struct p2v_sha256 s;
	uint8_t dig[32];

	p2v_sha256_init(&s);
	p2v_sha256_update(&s, data, len);
	p2v_sha256_final(&s, dig);
	p2v_sha256_hex(dig, out);
}

static void test_sha256(void)
{
	char hex[65];
	struct p2v_sha256 s;
	uint8_t dig[32];
	static const char msg2[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	sha_hex("", 0, hex);
	CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	sha_hex("abc", 3, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	sha_hex(msg2, strlen(msg2), hex);
	CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	/* One million 'a', fed in uneven pieces. */
	char *a = malloc(1000000);
	memset(a, 'a', 1000000);
	p2v_sha256_init(&s);
	for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1)
		p2v_sha256_update(&s, a + off, off + step > 1000000 ? 1000000 - off : step);
	p2v_sha256_final(&s, dig);
	p2v_sha256_hex(dig, hex);
	CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
	free(a);
}

/* ---- libext2fs io_manager over a reader ---- */

static void test_extio(void)
{
	enum { DISK_BYTES = 64 << 10, PART_OFF = 8 << 10, PART_BYTES = 32 << 10 };
	uint8_t *disk = malloc(DISK_BYTES), buf[4096];
	struct mem_disk m = { .b = disk, .size = DISK_BYTES };
	struct p2v_fsmap_ctx ctx = { .read = mem_read, .read_opaque = &m, .remote = true,
				     .part_off_bytes = PART_OFF, .part_bytes = PART_BYTES };
	io_manager mgr = p2v_extio_manager;
	io_channel io = NULL;
	char name[64];

	for (size_t i = 0; i < DISK_BYTES; i++)
		disk[i] = (uint8_t)(i * 13 + 5);
	p2v_extio_name(&ctx, name, sizeof(name));
	CHECK(mgr->open("not-ours", 0, &io) != 0);
	CHECK(mgr->open(name, IO_FLAG_RW, &io) != 0); /* read-only */
	CHECK_EQ(mgr->open(name, 0, &io), 0);
	CHECK_EQ(io_channel_set_blksize(io, 4096), 0);
	/* Block 1 of the partition is disk byte PART_OFF + 4096. */
	CHECK_EQ(io_channel_read_blk64(io, 1, 1, buf), 0);
	CHECK(!memcmp(buf, disk + PART_OFF + 4096, 4096));
	/* count < 0: bytes. */
	CHECK_EQ(io_channel_read_blk64(io, 2, -100, buf), 0);
	CHECK(!memcmp(buf, disk + PART_OFF + 8192, 100));
	/* The last block, then past the partition (but inside the disk): refused. */
	CHECK_EQ(io_channel_read_blk64(io, PART_BYTES / 4096 - 1, 1, buf), 0);
	CHECK(io_channel_read_blk64(io, PART_BYTES / 4096, 1, buf) != 0);
	CHECK(io_channel_read_blk64(io, ~0ULL / 2, 1, buf) != 0); /* offset overflows */
	CHECK(io_channel_set_blksize(io, 3000) != 0);
	CHECK(io_channel_write_blk64(io, 0, 1, buf) != 0);
	CHECK_EQ(io_channel_close(io), 0);
	free(disk);
}

int main(void)
{
	test_extio();
	test_rangemap();
	test_fat12();
	test_fat16_32(false);
	test_fat16_32(true);
	test_sha256();
	test_reader();
	UNIT_DONE();
}
