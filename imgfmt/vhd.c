/* vpc: Microsoft VHD images (Virtual PC, Hyper-V, Azure), fixed, dynamic
 * and differencing.
 *
 * Layout.  Every VHD ends with a 512-byte footer (big-endian fields, a one's
 * complement byte-sum checksum).  A fixed disk is the raw data followed by the
 * footer.  A dynamic disk starts with a copy of the footer, then a 1024-byte
 * dynamic header that points at the block allocation table (BAT): one 32-bit
 * sector number per block, 0xFFFFFFFF when unallocated.  An allocated block
 * is a sector bitmap (one bit per 512-byte sector, most significant bit
 * first, padded to whole sectors) followed by the block's data.  A
 * differencing disk is a dynamic disk whose clear bitmap bits and unallocated
 * blocks read from a parent VHD, found through parent locators.
 *
 * Size.  The virtual size is the footer's current size (the CHS product
 * only when an old tool left it 0).  QEMU (7.2, Debian 12) trusts the
 * current size only for creators it knows ("win ", "qem2", "d2v ", "CTXS",
 * "tap") and otherwise uses the CHS product, which is smaller for most sizes;
 * so we write what QEMU itself writes when the current size is exact ("qem2",
 * version 5.3, "Wi2k").  The geometry is the spec's algorithm, as Hyper-V
 * and Disk2VHD write it.
 *
 * Writing.  New blocks go where the trailing footer was.  The BAT, the
 * bitmap of the block being written and the footer stay in memory and are
 * written at flush/finish, so a sequential copy costs one pwrite per
 * contiguous run plus one bitmap sector per block.  Differencing images are
 * read-only.
 */
#include "driver.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VPC_SECTOR_BYTES 512u
#define VPC_FOOTER_BYTES 512u
#define VPC_HEADER_BYTES 1024u
#define VPC_BAT_UNUSED 0xFFFFFFFFu
#define VPC_DATA_ALIGN_BYTES 4096u           /* block data: page and 4K-sector aligned */
#define VPC_VERSION 0x00010000u
#define VPC_FEATURES 0x2u                 /* the "reserved, always set" bit */
#define VPC_TYPE_FIXED 2u
#define VPC_TYPE_DYNAMIC 3u
#define VPC_TYPE_DIFF 4u
#define VPC_MAX_SIZE_BYTES (2040ull << 30) /* Hyper-V's and QEMU's limit */
#define VPC_DEFAULT_BLOCK_BYTES (2u << 20)
#define VPC_MIN_CREATE_BLOCK_BYTES (512u << 10)
#define VPC_MAX_BLOCK_BYTES (256u << 20)
#define VPC_FIXED_CLUSTER_BYTES 4096u
#define VPC_AZURE_ALIGN_BYTES (1u << 20)
#define VPC_UNIX_TIME_2000 946684800ll    /* the VHD time origin */
#define VPC_N_LOCATORS 8
#define VPC_MAX_LOCATOR_BYTES 65536u
#define VPC_PATH_BYTES 4096u
#define VPC_N_CANDIDATES 4
#define VPC_CREATOR_APP "qem2"
#define VPC_CREATOR_VERSION 0x00050003u
#define VPC_CREATOR_OS "Wi2k"
#define VPC_CHS_MAX_SECTORS (65535ull * 16 * 255)
#define VPC_CHS_255_SECTORS (65535ull * 16 * 63)

/* Parent locator platform codes. */
#define VPC_PLAT_W2RU 0x57327275u /* relative Windows path, UTF-16LE */
#define VPC_PLAT_W2KU 0x57326B75u /* absolute Windows path, UTF-16LE */
#define VPC_PLAT_MACX 0x4D616358u /* file:// URL, UTF-8 */

/* ---- on-disk structures (big-endian) ---- */

struct vpc_footer_disk {
	char cookie[8];                /* "conectix" */
	uint8_t features[4];
	uint8_t version[4];
	uint8_t data_offset[8];        /* dynamic header; all ones for fixed */
	uint8_t timestamp[4];          /* seconds since 2000-01-01 UTC */
	char creator_app[4];
	uint8_t creator_ver[4];
	char creator_os[4];
	uint8_t orig_size[8];
	uint8_t cur_size[8];
	uint8_t cyls[2];
	uint8_t heads;
	uint8_t spt;
	uint8_t disk_type[4];
	uint8_t checksum[4];
	uint8_t uuid[16];
	uint8_t saved_state;
	uint8_t reserved[427];
};
static_assert(sizeof(struct vpc_footer_disk) == VPC_FOOTER_BYTES, "VHD footer is 512 bytes");

struct vpc_locator_disk {
	uint8_t code[4];
	uint8_t space[4];
	uint8_t length[4];
	uint8_t reserved[4];
	uint8_t offset[8];
};
static_assert(sizeof(struct vpc_locator_disk) == 24, "parent locator is 24 bytes");

struct vpc_header_disk {
	char cookie[8];                /* "cxsparse" */
	uint8_t data_offset[8];
	uint8_t table_offset[8];
	uint8_t version[4];
	uint8_t max_entries[4];
	uint8_t block_size[4];
	uint8_t checksum[4];
	uint8_t parent_uuid[16];
	uint8_t parent_timestamp[4];
	uint8_t reserved1[4];
	uint8_t parent_name[512];      /* UTF-16BE */
	struct vpc_locator_disk loc[VPC_N_LOCATORS];
	uint8_t reserved2[256];
};
static_assert(sizeof(struct vpc_header_disk) == VPC_HEADER_BYTES, "dynamic header is 1024 bytes");

/* ---- host-order copies ---- */

struct vpc_footer {
	uint32_t features, version, timestamp, creator_ver, disk_type;
	uint64_t data_offset, orig_size, cur_size;
	char creator_app[4], creator_os[4];
	uint16_t cyls;
	uint8_t heads, spt, saved_state;
	uint8_t uuid[16];
};

struct vpc_locator {
	uint32_t code, space, length;
	uint64_t offset;
};

struct vpc_header {
	uint64_t data_offset, table_offset;
	uint32_t version, max_entries, block_bytes, parent_timestamp;
	uint8_t parent_uuid[16];
	uint8_t parent_name[512];
	struct vpc_locator loc[VPC_N_LOCATORS];
};

struct vpc {
	struct vpc_footer footer;
	struct vpc_header hdr;
	uint64_t file_bytes;           /* at open */
	uint64_t end_bytes;            /* where the trailing footer goes */
	bool dynamic, diff;
	bool footer_dirty;
	bool footer_from_copy;         /* trailing footer was damaged */
	uint32_t block_bytes, bitmap_bytes;
	uint32_t n_blocks;             /* BAT entries covering the virtual size */
	uint64_t bat_off;
	uint32_t *bat;                 /* host order */
	bool bat_dirty;
	uint32_t bat_lo, bat_hi;       /* dirty entries, inclusive */
	uint8_t *bm;                   /* bitmap of block bm_block */
	uint32_t bm_block;
	bool bm_valid, bm_dirty;
};

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t round_up(uint64_t v, uint64_t a) { return imgfmt_div_round_up(v, a) * a; }

static bool ranges_overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len)
{
	return a < b + b_len && b < a + a_len;
}

/* One's complement of the byte sum, the checksum field counted as zero. */
static uint32_t vpc_checksum(const void *buf, size_t len, size_t csum_off)
{
	const uint8_t *p = buf;
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i++)
		if (i < csum_off || i >= csum_off + 4)
			sum += p[i];
	return ~sum;
}

static void footer_decode(const struct vpc_footer_disk *d, struct vpc_footer *f)
{
	f->features = imgfmt_get_be32(d->features);
	f->version = imgfmt_get_be32(d->version);
	f->data_offset = imgfmt_get_be64(d->data_offset);
	f->timestamp = imgfmt_get_be32(d->timestamp);
	memcpy(f->creator_app, d->creator_app, 4);
	f->creator_ver = imgfmt_get_be32(d->creator_ver);
	memcpy(f->creator_os, d->creator_os, 4);
	f->orig_size = imgfmt_get_be64(d->orig_size);
	f->cur_size = imgfmt_get_be64(d->cur_size);
	f->cyls = imgfmt_get_be16(d->cyls);
	f->heads = d->heads;
	f->spt = d->spt;
	f->disk_type = imgfmt_get_be32(d->disk_type);
	memcpy(f->uuid, d->uuid, 16);
	f->saved_state = d->saved_state;
}

static void footer_encode(const struct vpc_footer *f, struct vpc_footer_disk *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->cookie, "conectix", 8);
	imgfmt_put_be32(d->features, f->features);
	imgfmt_put_be32(d->version, f->version);
	imgfmt_put_be64(d->data_offset, f->data_offset);
	imgfmt_put_be32(d->timestamp, f->timestamp);
	memcpy(d->creator_app, f->creator_app, 4);
	imgfmt_put_be32(d->creator_ver, f->creator_ver);
	memcpy(d->creator_os, f->creator_os, 4);
	imgfmt_put_be64(d->orig_size, f->orig_size);
	imgfmt_put_be64(d->cur_size, f->cur_size);
	imgfmt_put_be16(d->cyls, f->cyls);
	d->heads = f->heads;
	d->spt = f->spt;
	imgfmt_put_be32(d->disk_type, f->disk_type);
	memcpy(d->uuid, f->uuid, 16);
	d->saved_state = f->saved_state;
	imgfmt_put_be32(d->checksum,
			vpc_checksum(d, sizeof(*d), offsetof(struct vpc_footer_disk, checksum)));
}

static void header_decode(const struct vpc_header_disk *d, struct vpc_header *h)
{
	h->data_offset = imgfmt_get_be64(d->data_offset);
	h->table_offset = imgfmt_get_be64(d->table_offset);
	h->version = imgfmt_get_be32(d->version);
	h->max_entries = imgfmt_get_be32(d->max_entries);
	h->block_bytes = imgfmt_get_be32(d->block_size);
	memcpy(h->parent_uuid, d->parent_uuid, 16);
	h->parent_timestamp = imgfmt_get_be32(d->parent_timestamp);
	memcpy(h->parent_name, d->parent_name, sizeof(h->parent_name));
	for (int i = 0; i < VPC_N_LOCATORS; i++) {
		h->loc[i].code = imgfmt_get_be32(d->loc[i].code);
		h->loc[i].space = imgfmt_get_be32(d->loc[i].space);
		h->loc[i].length = imgfmt_get_be32(d->loc[i].length);
		h->loc[i].offset = imgfmt_get_be64(d->loc[i].offset);
	}
}

/* Dynamic header of a new (non-differencing) disk. */
static void header_encode(const struct vpc_header *h, struct vpc_header_disk *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->cookie, "cxsparse", 8);
	imgfmt_put_be64(d->data_offset, UINT64_MAX);
	imgfmt_put_be64(d->table_offset, h->table_offset);
	imgfmt_put_be32(d->version, h->version);
	imgfmt_put_be32(d->max_entries, h->max_entries);
	imgfmt_put_be32(d->block_size, h->block_bytes);
	imgfmt_put_be32(d->checksum,
			vpc_checksum(d, sizeof(*d), offsetof(struct vpc_header_disk, checksum)));
}

/* CHS geometry as the VHD specification's appendix computes it. */
static void vpc_chs(uint64_t sectors, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
	uint64_t cth;
	unsigned h, s;

	if (sectors > VPC_CHS_MAX_SECTORS)
		sectors = VPC_CHS_MAX_SECTORS;
	if (sectors >= VPC_CHS_255_SECTORS) {
		s = 255;
		h = 16;
		cth = sectors / s;
	} else {
		s = 17;
		cth = sectors / s;
		h = (unsigned)((cth + 1023) / 1024);
		if (h < 4)
			h = 4;
		if (cth >= h * 1024ull || h > 16) {
			s = 31;
			h = 16;
			cth = sectors / s;
		}
		if (cth >= h * 1024ull) {
			s = 63;
			h = 16;
			cth = sectors / s;
		}
	}
	*cyls = (uint16_t)(cth / h);
	*heads = (uint8_t)h;
	*spt = (uint8_t)s;
}

/* ---- small I/O helpers with messages ---- */

static int read_at(struct imgfmt_image *img, void *buf, size_t len, uint64_t off, const char *what)
{
	int r = imgfmt_fd_pread(img->fd, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the %s (%zu bytes at %llu): %s", img->path, what,
				  len, (unsigned long long)off,
				  r == -EIO ? "I/O error or short file" : strerror(-r));
	return 0;
}

static int write_at(struct imgfmt_image *img, const void *buf, size_t len, uint64_t off,
		    const char *what)
{
	int r = imgfmt_data_pwrite(img, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: writing the %s (%zu bytes at %llu): %s", img->path, what,
				  len, (unsigned long long)off, strerror(-r));
	return 0;
}

/* Block data may lie past the end of a file we are extending. */
static int read_data(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	int r = imgfmt_fd_pread_zfill(img->fd, buf, len, off);

	if (r < 0)
		return imgfmt_err(img, r, "%s: read of %llu bytes at %llu: %s", img->path,
				  (unsigned long long)len, (unsigned long long)off, strerror(-r));
	return 0;
}

static int zero_range(struct imgfmt_image *img, uint64_t off, uint64_t len)
{
	static const uint8_t zeroes[64 * 1024];

	if (!img->is_block_device &&
	    fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	while (len > 0) {
		uint64_t n = min_u64(len, sizeof(zeroes));
		int r = write_at(img, zeroes, n, off, "zeroes");
		if (r < 0)
			return r;
		len -= n;
		off += n;
	}
	return 0;
}

/* ---- probing ---- */

static int vpc_probe(const struct imgfmt_probe_buf *pb)
{
	if (pb->head_bytes >= VPC_FOOTER_BYTES && !memcmp(pb->head, "conectix", 8))
		return 100;
	if (pb->tail_bytes >= VPC_FOOTER_BYTES && !memcmp(pb->tail, "conectix", 8))
		return 100;
	return 0;
}

/* ---- opening: footer ---- */

static int footer_parse(struct imgfmt_image *img, const uint8_t *buf, uint64_t at,
			struct vpc_footer *f)
{
	const struct vpc_footer_disk *d = (const void *)buf;
	uint32_t stored, computed;

	if (memcmp(d->cookie, "conectix", 8))
		return imgfmt_err(img, -EINVAL, "%s: no VHD footer at offset %llu (cookie 'conectix' missing)",
				  img->path, (unsigned long long)at);
	stored = imgfmt_get_be32(d->checksum);
	computed = vpc_checksum(buf, VPC_FOOTER_BYTES, offsetof(struct vpc_footer_disk, checksum));
	if (stored != computed)
		return imgfmt_err(img, -EINVAL,
				  "%s: footer checksum 0x%08x at offset %llu does not match the computed 0x%08x",
				  img->path, stored, (unsigned long long)at, computed);
	footer_decode(d, f);
	return 0;
}

/* The trailing footer, or for dynamic disks the copy at offset 0. */
static int read_footer(struct imgfmt_image *img, struct vpc *s)
{
	uint8_t buf[VPC_FOOTER_BYTES];
	char tail_err[IMGFMT_ERRMSG_BYTES];
	uint64_t tail_off = s->file_bytes - VPC_FOOTER_BYTES;
	int r = read_at(img, buf, sizeof(buf), tail_off, "footer");

	if (r < 0)
		return r;
	if (footer_parse(img, buf, tail_off, &s->footer) == 0)
		return 0;
	snprintf(tail_err, sizeof(tail_err), "%s", img->err);
	r = read_at(img, buf, sizeof(buf), 0, "footer copy");
	if (r == 0 && footer_parse(img, buf, 0, &s->footer) == 0 &&
	    s->footer.disk_type != VPC_TYPE_FIXED) {
		imgfmt_warn(img, "%s; using the footer copy at offset 0", tail_err);
		s->footer_from_copy = true;
		s->footer_dirty = true; /* repaired when written */
		img->err[0] = 0;
		return 0;
	}
	return imgfmt_err(img, -EINVAL, "%s", tail_err);
}

static int check_footer(struct imgfmt_image *img, struct vpc *s)
{
	const struct vpc_footer *f = &s->footer;
	uint64_t chs_bytes = (uint64_t)f->cyls * f->heads * f->spt * VPC_SECTOR_BYTES;

	if (f->version >> 16 != 1)
		return imgfmt_err(img, -EINVAL, "%s: footer file format version 0x%08x is not 1.x",
				  img->path, f->version);
	if (f->disk_type < VPC_TYPE_FIXED || f->disk_type > VPC_TYPE_DIFF)
		return imgfmt_err(img, -EINVAL,
				  "%s: footer disk type %u is not fixed (2), dynamic (3) or differencing (4)",
				  img->path, f->disk_type);
	img->size_bytes = f->cur_size;
	if (!f->cur_size && chs_bytes) {
		img->size_bytes = chs_bytes;
		imgfmt_warn(img, "%s: footer current size is 0; using the CHS geometry %u/%u/%u (%llu bytes)",
			    img->path, f->cyls, f->heads, f->spt, (unsigned long long)chs_bytes);
	}
	if (img->size_bytes % VPC_SECTOR_BYTES)
		return imgfmt_err(img, -EINVAL, "%s: footer current size %llu is not a multiple of 512",
				  img->path, (unsigned long long)img->size_bytes);
	if (f->disk_type == VPC_TYPE_FIXED && img->size_bytes > s->file_bytes - VPC_FOOTER_BYTES)
		return imgfmt_err(img, -EINVAL,
				  "%s: footer current size %llu exceeds the %llu bytes of data in the fixed VHD",
				  img->path, (unsigned long long)img->size_bytes,
				  (unsigned long long)(s->file_bytes - VPC_FOOTER_BYTES));
	return 0;
}

/* ---- opening: dynamic header and BAT ---- */

static int read_header(struct imgfmt_image *img, struct vpc *s)
{
	struct vpc_header_disk d;
	uint64_t off = s->footer.data_offset;
	uint32_t stored, computed;
	int r;

	if (off < VPC_FOOTER_BYTES || off > s->file_bytes || s->file_bytes - off < VPC_HEADER_BYTES)
		return imgfmt_err(img, -EINVAL,
				  "%s: footer data offset %llu does not leave room for the dynamic header in a file of %llu bytes",
				  img->path, (unsigned long long)off, (unsigned long long)s->file_bytes);
	r = read_at(img, &d, sizeof(d), off, "dynamic header");
	if (r < 0)
		return r;
	if (memcmp(d.cookie, "cxsparse", 8))
		return imgfmt_err(img, -EINVAL, "%s: dynamic header cookie 'cxsparse' missing at offset %llu",
				  img->path, (unsigned long long)off);
	stored = imgfmt_get_be32(d.checksum);
	computed = vpc_checksum(&d, sizeof(d), offsetof(struct vpc_header_disk, checksum));
	if (stored != computed)
		return imgfmt_err(img, -EINVAL,
				  "%s: dynamic header checksum 0x%08x does not match the computed 0x%08x",
				  img->path, stored, computed);
	header_decode(&d, &s->hdr);
	return 0;
}

static int check_header(struct imgfmt_image *img, struct vpc *s)
{
	const struct vpc_header *h = &s->hdr;
	uint64_t need = imgfmt_div_round_up(img->size_bytes, h->block_bytes ? h->block_bytes : 1);
	uint64_t bat_bytes = (uint64_t)h->max_entries * 4;

	if (h->version >> 16 != 1)
		return imgfmt_err(img, -EINVAL, "%s: dynamic header version 0x%08x is not 1.x",
				  img->path, h->version);
	if (!imgfmt_is_pow2(h->block_bytes) || h->block_bytes < VPC_SECTOR_BYTES ||
	    h->block_bytes > VPC_MAX_BLOCK_BYTES)
		return imgfmt_err(img, -EINVAL,
				  "%s: dynamic header block size %u is not a power of two from 512 bytes to 256 MiB",
				  img->path, h->block_bytes);
	if (h->max_entries < need)
		return imgfmt_err(img, -EINVAL,
				  "%s: dynamic header max table entries %u (of %u bytes) cover less than the virtual size %llu",
				  img->path, h->max_entries, h->block_bytes,
				  (unsigned long long)img->size_bytes);
	if (h->table_offset > s->file_bytes || s->file_bytes - h->table_offset < bat_bytes)
		return imgfmt_err(img, -EINVAL,
				  "%s: dynamic header table offset %llu: BAT of %u entries is outside the file of %llu bytes",
				  img->path, (unsigned long long)h->table_offset, h->max_entries,
				  (unsigned long long)s->file_bytes);
	if (ranges_overlap(h->table_offset, bat_bytes, 0, VPC_FOOTER_BYTES) ||
	    ranges_overlap(h->table_offset, bat_bytes, s->footer.data_offset, VPC_HEADER_BYTES))
		return imgfmt_err(img, -EINVAL,
				  "%s: dynamic header table offset %llu: BAT overlaps the footer copy or the dynamic header",
				  img->path, (unsigned long long)h->table_offset);
	s->block_bytes = h->block_bytes;
	s->bitmap_bytes = (uint32_t)round_up(imgfmt_div_round_up(h->block_bytes / VPC_SECTOR_BYTES, 8),
					     VPC_SECTOR_BYTES);
	s->n_blocks = (uint32_t)need;
	s->bat_off = h->table_offset;
	return 0;
}

/* A block must lie inside the file (as far as the virtual size reaches)
 * and clear of the metadata. */
static int check_bat_entry(struct imgfmt_image *img, struct vpc *s, uint32_t i, uint64_t *end)
{
	uint64_t off = (uint64_t)s->bat[i] * VPC_SECTOR_BYTES;
	uint64_t full = (uint64_t)s->bitmap_bytes + s->block_bytes;
	uint64_t need = s->bitmap_bytes +
			min_u64(s->block_bytes, img->size_bytes - (uint64_t)i * s->block_bytes);

	if (off > s->file_bytes || s->file_bytes - off < need)
		return imgfmt_err(img, -EINVAL,
				  "%s: BAT entry %u: block at offset %llu extends past the end of the file (%llu bytes)",
				  img->path, i, (unsigned long long)off, (unsigned long long)s->file_bytes);
	if (ranges_overlap(off, full, 0, VPC_FOOTER_BYTES) ||
	    ranges_overlap(off, full, s->footer.data_offset, VPC_HEADER_BYTES) ||
	    ranges_overlap(off, full, s->bat_off, (uint64_t)s->hdr.max_entries * 4))
		return imgfmt_err(img, -EINVAL,
				  "%s: BAT entry %u: block at offset %llu overlaps the footer copy, dynamic header or BAT",
				  img->path, i, (unsigned long long)off);
	*end = max_u64(*end, off + full);
	return 0;
}

static int load_bat(struct imgfmt_image *img, struct vpc *s)
{
	uint64_t end = round_up(s->bat_off + (uint64_t)s->hdr.max_entries * 4, VPC_SECTOR_BYTES);
	int r;

	s->bat = calloc(s->n_blocks ? s->n_blocks : 1, sizeof(*s->bat));
	s->bm = malloc(s->bitmap_bytes);
	if (!s->bat || !s->bm)
		return imgfmt_err(img, -ENOMEM, "%s: out of memory for a BAT of %u entries", img->path,
				  s->n_blocks);
	r = read_at(img, s->bat, (size_t)s->n_blocks * 4, s->bat_off, "BAT");
	if (r < 0)
		return r;
	end = max_u64(end, s->footer.data_offset + VPC_HEADER_BYTES);
	for (uint32_t i = 0; i < s->n_blocks; i++) {
		s->bat[i] = be32toh(s->bat[i]);
		if (s->bat[i] != VPC_BAT_UNUSED && (r = check_bat_entry(img, s, i, &end)) < 0)
			return r;
	}
	if (!s->footer_from_copy)
		end = max_u64(end, s->file_bytes - VPC_FOOTER_BYTES);
	s->end_bytes = end;
	return 0;
}

/* ---- opening: the parent of a differencing disk ---- */

static size_t utf8_put(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* UTF-16 to UTF-8 up to the first NUL; unpaired surrogates become '?'.
 * False when the result does not fit. */
static bool utf16_to_utf8(const uint8_t *in, size_t in_bytes, bool big_endian, char *out,
			  size_t out_bytes)
{
	size_t o = 0;

	for (size_t i = 0; i + 1 < in_bytes; i += 2) {
		uint32_t c = big_endian ? imgfmt_get_be16(in + i) : imgfmt_get_le16(in + i);
		char tmp[4];
		size_t n;
		if (c == 0)
			break;
		if (c >= 0xD800 && c < 0xDC00 && i + 3 < in_bytes) {
			uint32_t lo = big_endian ? imgfmt_get_be16(in + i + 2) : imgfmt_get_le16(in + i + 2);
			if (lo >= 0xDC00 && lo < 0xE000) {
				c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			}
		}
		if (c >= 0xD800 && c < 0xE000)
			c = '?';
		n = utf8_put(c, tmp);
		if (o + n >= out_bytes)
			return false;
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o] = 0;
	return true;
}

struct vpc_candidates {
	char path[VPC_N_CANDIDATES][VPC_PATH_BYTES];
	bool as_recorded[VPC_N_CANDIDATES]; /* not a name-only fallback */
	unsigned n;
	char recorded[VPC_PATH_BYTES]; /* the first path as the image records it */
};

/* Relative names get "./" only when a ':' would precede the first '/'
 * (the core refuses protocol-like names). */
static void cand_add(struct vpc_candidates *c, const char *prefix, const char *name,
		     bool as_recorded)
{
	const char *colon = strchr(name, ':'), *slash = strchr(name, '/');

	if (c->n >= VPC_N_CANDIDATES || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return;
	if (!colon || (slash && slash < colon))
		prefix = "";
	if ((size_t)snprintf(c->path[c->n], VPC_PATH_BYTES, "%s%s", prefix, name) < VPC_PATH_BYTES)
		c->as_recorded[c->n++] = as_recorded;
}

static const char *last_component(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* A Windows path: a relative one beside the child as recorded; an absolute
 * one (drive letter, UNC, rooted) only by its last component. */
static void cand_add_windows(struct vpc_candidates *c, char *path, bool relative)
{
	bool absolute;

	if (!c->recorded[0])
		snprintf(c->recorded, sizeof(c->recorded), "%s", path);
	for (char *p = path; *p; p++)
		if (*p == '\\')
			*p = '/';
	absolute = path[0] == '/' || (isalpha((unsigned char)path[0]) && path[1] == ':');
	if (relative && !absolute) {
		while (path[0] == '.' && path[1] == '/')
			path += 2;
		cand_add(c, "./", path, true);
	}
	cand_add(c, "./", last_component(path), false);
}

static int hex_val(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* MacX: "file://host/abs/path" with %XX escapes: the path, then its name. */
static void cand_add_url(struct vpc_candidates *c, const char *url)
{
	char path[VPC_PATH_BYTES];
	const char *p;
	size_t o = 0;

	if (strncmp(url, "file://", 7))
		return;
	if (!c->recorded[0])
		snprintf(c->recorded, sizeof(c->recorded), "%s", url);
	p = strchr(url + 7, '/');
	if (!p)
		return;
	for (; *p && o + 1 < sizeof(path); p++) {
		if (p[0] == '%' && hex_val(p[1]) >= 0 && hex_val(p[2]) >= 0) {
			path[o++] = (char)(hex_val(p[1]) * 16 + hex_val(p[2]));
			p += 2;
		} else {
			path[o++] = *p;
		}
	}
	path[o] = 0;
	if (strlen(path) != o)
		return; /* an escaped NUL */
	cand_add(c, "", path, true);
	cand_add(c, "./", last_component(path), false);
}

static int locator_candidates(struct imgfmt_image *img, const struct vpc_locator *l,
			      struct vpc_candidates *c)
{
	uint8_t *data = malloc(l->length + 1u);
	char path[VPC_PATH_BYTES];
	int r;

	if (!data)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = read_at(img, data, l->length, l->offset, "parent locator");
	if (r == 0 && l->code == VPC_PLAT_MACX) {
		data[l->length] = 0;
		cand_add_url(c, (const char *)data);
	} else if (r == 0 && utf16_to_utf8(data, l->length, false, path, sizeof(path))) {
		cand_add_windows(c, path, l->code == VPC_PLAT_W2RU);
	}
	free(data);
	return r;
}

static int check_locators(struct imgfmt_image *img, struct vpc *s)
{
	for (int i = 0; i < VPC_N_LOCATORS; i++) {
		const struct vpc_locator *l = &s->hdr.loc[i];
		if (l->code == 0)
			continue;
		if (l->length > VPC_MAX_LOCATOR_BYTES)
			return imgfmt_err(img, -EINVAL,
					  "%s: parent locator %d: data length %u exceeds %u bytes",
					  img->path, i, l->length, VPC_MAX_LOCATOR_BYTES);
		if (l->offset > s->file_bytes || s->file_bytes - l->offset < l->length)
			return imgfmt_err(img, -EINVAL,
					  "%s: parent locator %d: %u bytes at offset %llu are outside the file of %llu bytes",
					  img->path, i, l->length, (unsigned long long)l->offset,
					  (unsigned long long)s->file_bytes);
	}
	return 0;
}

static int gather_candidates(struct imgfmt_image *img, struct vpc *s, struct vpc_candidates *c)
{
	static const uint32_t order[] = { VPC_PLAT_W2RU, VPC_PLAT_W2KU, VPC_PLAT_MACX };
	char name[VPC_PATH_BYTES];

	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (int i = 0; i < VPC_N_LOCATORS; i++) {
			const struct vpc_locator *l = &s->hdr.loc[i];
			int r;
			if (l->code != order[k] || l->length == 0)
				continue;
			r = locator_candidates(img, l, c);
			if (r < 0)
				return r;
		}
	if (utf16_to_utf8(s->hdr.parent_name, sizeof(s->hdr.parent_name), true, name, sizeof(name)))
		cand_add_windows(c, name, false);
	return 0;
}

static void uuid_str(const uint8_t *u, char *out, size_t out_bytes)
{
	snprintf(out, out_bytes,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

static int check_parent_uuid(struct imgfmt_image *img, struct vpc *s)
{
	const struct vpc *p = img->backing->priv;
	char want[40], got[40];

	if (!memcmp(p->footer.uuid, s->hdr.parent_uuid, 16))
		return 0;
	uuid_str(s->hdr.parent_uuid, want, sizeof(want));
	uuid_str(p->footer.uuid, got, sizeof(got));
	return imgfmt_err(img, -EINVAL,
			  "%s: parent %s has UUID %s, but the dynamic header's parent UUID is %s",
			  img->path, img->backing->path, got, want);
}

/* The first candidate that opens is the parent.  One that is absent is
 * passed over, and so is one refused by confinement (the next may be the
 * same name beside the image); one that is there but fails is the error.
 * With none found, a refusal is reported before "not found". */
static int open_parent(struct imgfmt_image *img, struct vpc *s)
{
	struct vpc_candidates *c = calloc(1, sizeof(*c));
	char refused[IMGFMT_ERRMSG_BYTES] = "";
	int r, found = -1, refusal = 0;

	if (!c)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = gather_candidates(img, s, c);
	for (unsigned i = 0; r == 0 && found < 0 && i < c->n; i++) {
		r = imgfmt_open_backing(img, c->path[i], "vpc");
		if (r == 0)
			found = (int)i;
		else if (r == -EPERM && !refusal) {
			refusal = r;
			snprintf(refused, sizeof(refused), "%s", imgfmt_errmsg(img));
		}
		if (r == -ENOENT || r == -EPERM)
			r = 0;
	}
	if (r == 0 && found < 0 && refusal)
		r = imgfmt_err(img, refusal, "%s", refused);
	if (r == 0 && found < 0)
		r = imgfmt_err(img, -ENOENT,
			       "%s: parent of the differencing VHD not found (recorded as '%s', looked for '%s' beside it)",
			       img->path, c->recorded, c->n ? c->path[c->n - 1] : "");
	if (r == 0 && !c->as_recorded[found])
		imgfmt_warn(img, "%s: parent recorded as '%s'; using '%s' beside the image", img->path,
			    c->recorded, c->path[found]);
	free(c);
	return r < 0 ? r : check_parent_uuid(img, s);
}

/* ---- open ---- */

static int open_dynamic(struct imgfmt_image *img, struct vpc *s)
{
	int r = read_header(img, s);

	if (r == 0)
		r = check_header(img, s);
	if (r == 0)
		r = load_bat(img, s);
	if (r < 0)
		return r;
	s->dynamic = true;
	s->diff = s->footer.disk_type == VPC_TYPE_DIFF;
	img->cluster_bytes = s->block_bytes;
	if (!s->diff)
		return 0;
	if (img->writable)
		return imgfmt_err(img, -ENOTSUP, "%s: writing differencing VHD images is not supported",
				  img->path);
	r = check_locators(img, s);
	if (r == 0 && !(img->flags & IMGFMT_OPEN_NO_BACKING))
		r = open_parent(img, s);
	return r;
}

static int vpc_open(struct imgfmt_image *img)
{
	struct vpc *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = s;
	r = imgfmt_fd_size(img->fd, &s->file_bytes);
	if (r < 0)
		return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	if (s->file_bytes < VPC_FOOTER_BYTES)
		return imgfmt_err(img, -EINVAL, "%s: file of %llu bytes is too small for a VHD footer",
				  img->path, (unsigned long long)s->file_bytes);
	r = read_footer(img, s);
	if (r == 0)
		r = check_footer(img, s);
	if (r < 0)
		return r;
	if (s->footer.disk_type != VPC_TYPE_FIXED)
		return open_dynamic(img, s);
	img->cluster_bytes = VPC_FIXED_CLUSTER_BYTES;
	s->end_bytes = img->size_bytes;
	return 0;
}

static void vpc_close(struct imgfmt_image *img)
{
	struct vpc *s = img->priv;

	free(s->bat);
	free(s->bm);
	free(s);
	img->priv = NULL;
}

/* ---- sector bitmaps ---- */

static bool bm_get(const uint8_t *bm, uint32_t sector)
{
	return bm[sector / 8] & (0x80u >> (sector % 8));
}

/* End of the run of sectors from first (before limit) sharing first's bit. */
static uint32_t bm_run(const uint8_t *bm, uint32_t first, uint32_t limit, bool *bit)
{
	uint32_t i = first + 1;

	*bit = bm_get(bm, first);
	while (i < limit && bm_get(bm, i) == *bit)
		i++;
	return i;
}

static int bitmap_flush(struct imgfmt_image *img, struct vpc *s)
{
	int r;

	if (!s->bm_dirty)
		return 0;
	r = write_at(img, s->bm, s->bitmap_bytes,
		     (uint64_t)s->bat[s->bm_block] * VPC_SECTOR_BYTES, "sector bitmap");
	if (r == 0)
		s->bm_dirty = false;
	return r;
}

/* Make bm hold block blk's bitmap (all clear for a block just allocated). */
static int bitmap_load(struct imgfmt_image *img, struct vpc *s, uint32_t blk, bool fresh)
{
	int r;

	if (s->bm_valid && s->bm_block == blk && !fresh)
		return 0;
	r = bitmap_flush(img, s);
	if (r < 0)
		return r;
	s->bm_valid = false;
	if (fresh)
		memset(s->bm, 0, s->bitmap_bytes);
	else if ((r = read_data(img, s->bm, s->bitmap_bytes,
				(uint64_t)s->bat[blk] * VPC_SECTOR_BYTES)) < 0)
		return r;
	s->bm_block = blk;
	s->bm_valid = true;
	s->bm_dirty = fresh;
	return 0;
}

static void bitmap_mark(struct vpc *s, uint32_t first, uint32_t end)
{
	for (uint32_t i = first; i < end; i++) {
		uint8_t bit = (uint8_t)(0x80u >> (i % 8));
		if (!(s->bm[i / 8] & bit)) {
			s->bm[i / 8] |= bit;
			s->bm_dirty = true;
		}
	}
}

/* ---- reading ---- */

/* Parent data (zeroes without a parent or past its end). */
static int parent_read(struct imgfmt_image *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	struct imgfmt_image *p = img->backing;
	uint64_t psize = p ? imgfmt_size_bytes(p) : 0;
	uint64_t n = off < psize ? min_u64(len, psize - off) : 0;

	if (n) {
		int r = imgfmt_pread(p, buf, n, off);
		if (r < 0)
			return imgfmt_err(img, r, "%s", imgfmt_errmsg(p));
	}
	memset(buf + n, 0, len - n);
	return 0;
}

/* Bytes [in, in + n) of an allocated differencing block, sector by bitmap. */
static int read_diff_block(struct imgfmt_image *img, struct vpc *s, uint32_t blk, uint8_t *buf,
			   uint64_t in, uint64_t n, uint64_t off)
{
	uint64_t data = (uint64_t)s->bat[blk] * VPC_SECTOR_BYTES + s->bitmap_bytes;
	int r = bitmap_load(img, s, blk, false);

	while (r == 0 && n > 0) {
		bool bit;
		uint32_t end = bm_run(s->bm, (uint32_t)(in / VPC_SECTOR_BYTES),
				      (uint32_t)imgfmt_div_round_up(in + n, VPC_SECTOR_BYTES), &bit);
		uint64_t run = min_u64((uint64_t)end * VPC_SECTOR_BYTES, in + n) - in;
		r = bit ? read_data(img, buf, run, data + in) : parent_read(img, buf, run, off);
		buf += run;
		in += run;
		off += run;
		n -= run;
	}
	return r;
}

static int read_block(struct imgfmt_image *img, struct vpc *s, uint32_t blk, uint8_t *buf,
		      uint64_t in, uint64_t n, uint64_t off)
{
	if (s->bat[blk] == VPC_BAT_UNUSED) {
		if (s->diff)
			return parent_read(img, buf, n, off);
		memset(buf, 0, n);
		return 0;
	}
	if (s->diff)
		return read_diff_block(img, s, blk, buf, in, n, off);
	return read_data(img, buf, n, (uint64_t)s->bat[blk] * VPC_SECTOR_BYTES + s->bitmap_bytes + in);
}

static int vpc_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	struct vpc *s = img->priv;
	uint8_t *p = buf;

	if (!s->dynamic)
		return read_data(img, buf, len, off);
	while (len > 0) {
		uint64_t in = off % s->block_bytes, n = min_u64(len, s->block_bytes - in);
		int r = read_block(img, s, (uint32_t)(off / s->block_bytes), p, in, n, off);
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- writing ---- */

static void bat_mark(struct vpc *s, uint32_t blk)
{
	if (!s->bat_dirty || blk < s->bat_lo)
		s->bat_lo = blk;
	if (!s->bat_dirty || blk > s->bat_hi)
		s->bat_hi = blk;
	s->bat_dirty = true;
}

/* Append block blk where the trailing footer is; the footer moves at flush.
 * The bitmap goes in the last sectors before a 4 KiB boundary, so the block's
 * data is 4 KiB-aligned (whole page-cache pages; 4K-sector disks) at the
 * cost of at most 3.5 KiB of gap per block. */
static int alloc_block(struct imgfmt_image *img, struct vpc *s, uint32_t blk)
{
	uint64_t off = round_up(s->end_bytes + s->bitmap_bytes, VPC_DATA_ALIGN_BYTES) - s->bitmap_bytes;
	uint64_t next;

	if (off / VPC_SECTOR_BYTES >= VPC_BAT_UNUSED ||
	    __builtin_add_overflow(off, (uint64_t)s->bitmap_bytes + s->block_bytes, &next))
		return imgfmt_err(img, -EFBIG, "%s: a block at offset %llu is beyond what the BAT can address",
				  img->path, (unsigned long long)off);
	s->bat[blk] = (uint32_t)(off / VPC_SECTOR_BYTES);
	bat_mark(s, blk);
	s->end_bytes = next;
	s->footer_dirty = true;
	return bitmap_load(img, s, blk, true);
}

/* Write (buf) or zero (buf == NULL) bytes [in, in + n) of block blk. */
static int write_block(struct imgfmt_image *img, struct vpc *s, uint32_t blk, const uint8_t *buf,
		       uint64_t in, uint64_t n)
{
	uint64_t data;
	int r = 0;

	if (s->bat[blk] == VPC_BAT_UNUSED) {
		if (!buf)
			return 0; /* unallocated blocks read as zeroes */
		r = alloc_block(img, s, blk);
		if (r < 0)
			return r;
	}
	data = (uint64_t)s->bat[blk] * VPC_SECTOR_BYTES + s->bitmap_bytes;
	r = buf ? write_at(img, buf, n, data + in, "data") : zero_range(img, data + in, n);
	if (r == 0)
		r = bitmap_load(img, s, blk, false);
	if (r == 0)
		bitmap_mark(s, (uint32_t)(in / VPC_SECTOR_BYTES),
			    (uint32_t)imgfmt_div_round_up(in + n, VPC_SECTOR_BYTES));
	return r;
}

static int write_blocks(struct imgfmt_image *img, struct vpc *s, const uint8_t *buf,
			uint64_t len, uint64_t off)
{
	while (len > 0) {
		uint64_t in = off % s->block_bytes, n = min_u64(len, s->block_bytes - in);
		int r = write_block(img, s, (uint32_t)(off / s->block_bytes), buf, in, n);
		if (r < 0)
			return r;
		if (buf)
			buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vpc_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	struct vpc *s = img->priv;

	if (!s->dynamic)
		return write_at(img, buf, len, off, "data");
	return write_blocks(img, s, buf, len, off);
}

static int vpc_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	struct vpc *s = img->priv;

	if (!s->dynamic)
		return zero_range(img, off, len);
	return write_blocks(img, s, NULL, len, off);
}

static int write_footer(struct imgfmt_image *img, struct vpc *s)
{
	struct vpc_footer_disk d;
	int r;

	footer_encode(&s->footer, &d);
	r = write_at(img, &d, sizeof(d), s->end_bytes, "footer");
	if (r == 0 && s->dynamic && s->footer_from_copy)
		r = write_at(img, &d, sizeof(d), 0, "footer copy");
	if (r == 0 && s->file_bytes > s->end_bytes + VPC_FOOTER_BYTES && !img->is_block_device &&
	    ftruncate(img->fd, (off_t)(s->end_bytes + VPC_FOOTER_BYTES)) < 0)
		r = imgfmt_err(img, -errno, "%s: truncating after the footer: %s", img->path,
			       strerror(errno));
	if (r == 0) {
		s->footer_dirty = false;
		s->footer_from_copy = false;
	}
	return r;
}

static int write_bat(struct imgfmt_image *img, struct vpc *s)
{
	size_t n = (size_t)s->bat_hi - s->bat_lo + 1;
	uint32_t *be = malloc(n * sizeof(*be));
	int r;

	if (!be)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		be[i] = htobe32(s->bat[s->bat_lo + i]);
	r = write_at(img, be, n * sizeof(*be), s->bat_off + (uint64_t)s->bat_lo * 4, "BAT");
	free(be);
	if (r == 0)
		s->bat_dirty = false;
	return r;
}

/* Data first, then the bitmap, the BAT and the footer that covers them. */
static int write_metadata(struct imgfmt_image *img, struct vpc *s)
{
	int r = s->dynamic ? bitmap_flush(img, s) : 0;

	if (r == 0 && s->bat_dirty)
		r = write_bat(img, s);
	if (r == 0 && s->footer_dirty)
		r = write_footer(img, s);
	return r;
}

static int vpc_flush(struct imgfmt_image *img)
{
	int r = write_metadata(img, img->priv);

	if (r == 0 && fdatasync(img->fd) < 0 && errno != EINVAL)
		r = imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return r;
}

static int vpc_finish(struct imgfmt_image *img)
{
	return write_metadata(img, img->priv);
}

/* ---- block status ---- */

/* Extent of a differencing image's parent (or a hole without one). */
static int parent_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			 struct imgfmt_extent *ext)
{
	struct imgfmt_image *p = img->backing;
	uint64_t psize = p ? imgfmt_size_bytes(p) : 0;
	int r;

	ext->type = IMGFMT_EXTENT_HOLE;
	ext->length_bytes = len;
	if (off >= psize)
		return 0;
	r = imgfmt_block_status(p, off, min_u64(len, psize - off), ext);
	if (r < 0)
		return imgfmt_err(img, r, "%s", imgfmt_errmsg(p));
	ext->offset_bytes = off;
	ext->depth++;
	return 0;
}

/* Where guest offset in of block blk lies in the file (allocated blocks). */
static uint64_t block_host(const struct vpc *s, uint32_t blk, uint64_t in)
{
	return (uint64_t)s->bat[blk] * VPC_SECTOR_BYTES + s->bitmap_bytes + in;
}

/* Inside one allocated differencing block: runs of the bitmap. */
static int diff_block_status(struct imgfmt_image *img, struct vpc *s, uint32_t blk, uint64_t in,
			     uint64_t len, uint64_t off, struct imgfmt_extent *ext)
{
	uint64_t n = min_u64(len, s->block_bytes - in);
	uint32_t end;
	bool bit;
	int r = bitmap_load(img, s, blk, false);

	if (r < 0)
		return r;
	end = bm_run(s->bm, (uint32_t)(in / VPC_SECTOR_BYTES),
		     (uint32_t)imgfmt_div_round_up(in + n, VPC_SECTOR_BYTES), &bit);
	n = min_u64((uint64_t)end * VPC_SECTOR_BYTES, in + n) - in;
	if (!bit)
		return parent_status(img, off, n, ext);
	ext->type = IMGFMT_EXTENT_DATA;
	ext->length_bytes = n;
	ext->host_offset_bytes = block_host(s, blk, in);
	return 0;
}

/* Fixed: holes of a sparse host file (the data area maps 1:1; the footer
 * is data, so the file never ends in a hole). */
static int fixed_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			      struct imgfmt_extent *ext)
{
	imgfmt_fd_block_status(img->fd, img->is_block_device, off, len, ext);
	ext->host_offset_bytes = off;
	return 0;
}

static int vpc_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			    struct imgfmt_extent *ext)
{
	struct vpc *s = img->priv;
	uint32_t blk, last;
	bool allocated;
	uint64_t run;

	if (!s->dynamic)
		return fixed_block_status(img, off, len, ext);
	blk = (uint32_t)(off / s->block_bytes);
	allocated = s->bat[blk] != VPC_BAT_UNUSED;
	if (s->diff && allocated)
		return diff_block_status(img, s, blk, off % s->block_bytes, len, off, ext);
	last = (uint32_t)((off + len - 1) / s->block_bytes);
	/* a run of unallocated blocks, or of allocated ones whose data follow
	 * each other in the file */
	for (uint32_t b = blk; b < last; b++) {
		if ((s->bat[b + 1] != VPC_BAT_UNUSED) != allocated ||
		    (allocated && block_host(s, b + 1, 0) != block_host(s, b, s->block_bytes)))
			break;
		blk = b + 1;
	}
	run = min_u64(((uint64_t)blk + 1) * s->block_bytes - off, len);
	if (s->diff)
		return parent_status(img, off, run, ext);
	ext->type = allocated ? IMGFMT_EXTENT_DATA : IMGFMT_EXTENT_HOLE;
	ext->length_bytes = run;
	if (allocated)
		ext->host_offset_bytes = block_host(s, (uint32_t)(off / s->block_bytes), off % s->block_bytes);
	return 0;
}

/* ---- create ---- */

/* The create options.  force_size as in qemu-img: on, the footer carries
 * the exact size asked for (p2v's default, which QEMU reads back exactly
 * since the creator is "qem2"); off, the size is rounded up to the CHS
 * geometry the way qemu-img does by default. */
enum { V_SUBFORMAT, V_BLOCK_SIZE, V_AZURE, V_FORCE_SIZE };
static const char *const vpc_subformats[] = { "dynamic", "fixed", NULL };
static const struct imgfmt_opt_desc vpc_create_opts[] = {
	[V_SUBFORMAT] = { "subformat", IMGFMT_OPT_ENUM, "dynamic", "VHD type (azure=on implies fixed)",
			  .choices = vpc_subformats },
	[V_BLOCK_SIZE] = { "block_size", IMGFMT_OPT_SIZE, "2M", "block size of a dynamic VHD",
			   .min = VPC_MIN_CREATE_BLOCK_BYTES, .max = VPC_MAX_BLOCK_BYTES, .pow2 = true },
	[V_AZURE] = { "azure", IMGFMT_OPT_BOOL, "off",
		      "for Azure: a fixed VHD whose size is rounded up to a whole MiB", .choices = NULL },
	[V_FORCE_SIZE] = { "force_size", IMGFMT_OPT_BOOL, "on",
			   "exact size in the footer; off rounds up to the CHS geometry as qemu-img does",
			   .choices = NULL },
	{ 0 },
};

struct vpc_create_opts {
	bool fixed, azure, force_size;
	uint64_t block_bytes;
};

static int parse_create_opts(struct imgfmt_image *img, const struct imgfmt_optval *ov,
			     struct vpc_create_opts *co)
{
	co->azure = ov[V_AZURE].u;
	co->force_size = ov[V_FORCE_SIZE].u;
	co->fixed = ov[V_SUBFORMAT].u == 1 || (!ov[V_SUBFORMAT].set && co->azure);
	co->block_bytes = ov[V_BLOCK_SIZE].u;
	if (co->azure && !co->fixed)
		return imgfmt_err(img, -EINVAL, "vpc: azure=on needs subformat=fixed (Azure takes fixed VHDs only)");
	if (ov[V_BLOCK_SIZE].set && co->fixed)
		return imgfmt_err(img, -EINVAL, "vpc: block_size applies to dynamic images only");
	return 0;
}

/* qemu-img's default size: the smallest CHS geometry holding the size
 * asked for (or the exact size when the geometry maxes out). */
static uint64_t chs_rounded_bytes(uint64_t size_bytes)
{
	uint64_t want = imgfmt_div_round_up(size_bytes, VPC_SECTOR_BYTES), have = 0;
	uint16_t c;
	uint8_t h, spt;

	if (want > VPC_CHS_MAX_SECTORS)
		want = VPC_CHS_MAX_SECTORS;
	/* each step adds one sector to the request: ends within 65535*16 steps */
	for (uint64_t i = 0; have < want; i++) {
		vpc_chs(want + i, &c, &h, &spt);
		have = (uint64_t)c * h * spt;
	}
	return have == VPC_CHS_MAX_SECTORS ? size_bytes : have * VPC_SECTOR_BYTES;
}

/* The virtual size a new VHD gets for size_bytes asked for. */
static uint64_t create_size(const struct vpc_create_opts *co, uint64_t size_bytes)
{
	if (!co->force_size)
		size_bytes = chs_rounded_bytes(size_bytes);
	return round_up(size_bytes, co->azure ? VPC_AZURE_ALIGN_BYTES : VPC_SECTOR_BYTES);
}

static int new_footer(struct imgfmt_image *img, struct vpc *s, bool fixed)
{
	struct vpc_footer *f = &s->footer;
	time_t now = time(NULL);

	f->features = VPC_FEATURES;
	f->version = VPC_VERSION;
	f->data_offset = fixed ? UINT64_MAX : VPC_FOOTER_BYTES;
	f->timestamp = now > VPC_UNIX_TIME_2000 ? (uint32_t)(now - VPC_UNIX_TIME_2000) : 0;
	memcpy(f->creator_app, VPC_CREATOR_APP, 4);
	f->creator_ver = VPC_CREATOR_VERSION;
	memcpy(f->creator_os, VPC_CREATOR_OS, 4);
	f->orig_size = f->cur_size = img->size_bytes;
	vpc_chs(img->size_bytes / VPC_SECTOR_BYTES, &f->cyls, &f->heads, &f->spt);
	f->disk_type = fixed ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC;
	if (getrandom(f->uuid, sizeof(f->uuid), 0) != (ssize_t)sizeof(f->uuid))
		return imgfmt_err(img, -errno, "%s: no random UUID: %s", img->path, strerror(errno));
	f->uuid[6] = (uint8_t)((f->uuid[6] & 0x0F) | 0x40); /* RFC 4122 version 4 */
	f->uuid[8] = (uint8_t)((f->uuid[8] & 0x3F) | 0x80);
	return 0;
}

static int create_fixed(struct imgfmt_image *img, struct vpc *s)
{
	uint64_t dev_bytes;
	int r;

	img->cluster_bytes = VPC_FIXED_CLUSTER_BYTES;
	s->end_bytes = img->size_bytes;
	if (img->is_block_device) {
		r = imgfmt_fd_size(img->fd, &dev_bytes);
		if (r == 0 && dev_bytes < img->size_bytes + VPC_FOOTER_BYTES)
			r = imgfmt_err(img, -ENOSPC, "%s: device of %llu bytes is smaller than the %llu of the fixed VHD",
				       img->path, (unsigned long long)dev_bytes,
				       (unsigned long long)(img->size_bytes + VPC_FOOTER_BYTES));
		if (r < 0)
			return img->err[0] ? r : imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	} else if (ftruncate(img->fd, (off_t)(img->size_bytes + VPC_FOOTER_BYTES)) < 0) {
		return imgfmt_err(img, -errno, "%s: cannot size to %llu bytes: %s", img->path,
				  (unsigned long long)(img->size_bytes + VPC_FOOTER_BYTES), strerror(errno));
	}
	return write_footer(img, s);
}

static int create_dynamic(struct imgfmt_image *img, struct vpc *s, uint32_t block_bytes)
{
	struct vpc_header_disk hd;
	struct vpc_footer_disk fd;
	uint64_t bat_bytes;
	int r;

	s->dynamic = true;
	s->block_bytes = block_bytes;
	s->bitmap_bytes = (uint32_t)round_up(block_bytes / VPC_SECTOR_BYTES / 8, VPC_SECTOR_BYTES);
	s->n_blocks = (uint32_t)imgfmt_div_round_up(img->size_bytes, block_bytes);
	s->bat_off = VPC_FOOTER_BYTES + VPC_HEADER_BYTES;
	bat_bytes = round_up((uint64_t)s->n_blocks * 4 + (s->n_blocks == 0), VPC_SECTOR_BYTES);
	s->end_bytes = s->bat_off + bat_bytes;
	s->hdr.table_offset = s->bat_off;
	s->hdr.version = VPC_VERSION;
	s->hdr.max_entries = s->n_blocks;
	s->hdr.block_bytes = block_bytes;
	img->cluster_bytes = block_bytes;
	s->bat = malloc(bat_bytes);
	s->bm = malloc(s->bitmap_bytes);
	if (!s->bat || !s->bm)
		return imgfmt_err(img, -ENOMEM, "out of memory for a BAT of %u entries", s->n_blocks);
	memset(s->bat, 0xFF, bat_bytes); /* all unused, in either byte order */
	footer_encode(&s->footer, &fd);
	header_encode(&s->hdr, &hd);
	r = write_at(img, &fd, sizeof(fd), 0, "footer copy");
	if (r == 0)
		r = write_at(img, &hd, sizeof(hd), VPC_FOOTER_BYTES, "dynamic header");
	if (r == 0)
		r = write_at(img, s->bat, bat_bytes, s->bat_off, "BAT");
	return r < 0 ? r : write_footer(img, s);
}

static int vpc_create(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *opts)
{
	struct vpc_create_opts co = { 0 };
	struct vpc *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = s;
	r = parse_create_opts(img, opts, &co);
	if (r < 0)
		return r;
	if (size_bytes > VPC_MAX_SIZE_BYTES)
		return imgfmt_err(img, -EFBIG,
				  "vpc: %llu bytes exceed the VHD limit of 2040 GiB; use VHDX (-O vhdx) for larger disks",
				  (unsigned long long)size_bytes);
	img->size_bytes = create_size(&co, size_bytes);
	r = new_footer(img, s, co.fixed);
	if (r < 0)
		return r;
	if (co.fixed)
		return create_fixed(img, s);
	return create_dynamic(img, s, (uint32_t)co.block_bytes);
}

/* ---- resize ---- */

static int sync_file(struct imgfmt_image *img)
{
	if (fdatasync(img->fd) < 0 && errno != EINVAL)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return 0;
}

/* The footer says the new size.  QEMU takes the CHS product instead for
 * creators it does not know (qemu-img's own "qemu" among them): when that
 * would be another size, the footer says p2v wrote it, as create does. */
static void set_size(struct vpc *s, uint64_t size)
{
	static const char *const exact[] = { "win ", "qem2", "d2v ", "CTXS", "tap\0" };
	bool trusted = false;

	s->footer.cur_size = size;
	vpc_chs(size / VPC_SECTOR_BYTES, &s->footer.cyls, &s->footer.heads, &s->footer.spt);
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		trusted = trusted || !memcmp(s->footer.creator_app, exact[i], 4);
	if (!trusted && (uint64_t)s->footer.cyls * s->footer.heads * s->footer.spt * VPC_SECTOR_BYTES != size) {
		memcpy(s->footer.creator_app, VPC_CREATOR_APP, 4);
		s->footer.creator_ver = VPC_CREATOR_VERSION;
		memcpy(s->footer.creator_os, VPC_CREATOR_OS, 4);
	}
}

/* The new footer at the new end first (a valid image of the new size from
 * then on), then the old one's sector zeroed or cut off. */
static int resize_fixed(struct imgfmt_image *img, struct vpc *s, uint64_t size)
{
	static const uint8_t zero[VPC_FOOTER_BYTES];
	uint64_t old = img->size_bytes;
	int r;

	if (img->is_block_device)
		return imgfmt_err(img, -ENOTSUP, "%s: a fixed VHD on a block device cannot change size", img->path);
	set_size(s, size);
	s->end_bytes = size;
	if ((r = write_footer(img, s)) < 0 || (r = sync_file(img)) < 0)
		return r;
	if (size > old)
		r = write_at(img, zero, sizeof(zero), old, "old footer's sector");
	else if (ftruncate(img->fd, (off_t)(size + VPC_FOOTER_BYTES)) < 0)
		r = imgfmt_err(img, -errno, "%s: truncating: %s", img->path, strerror(errno));
	img->size_bytes = size;
	return r < 0 ? r : sync_file(img);
}

/* Where the BAT can grow to in place: the first block after it, or the end. */
static uint64_t bat_limit(const struct vpc *s)
{
	uint64_t limit = s->end_bytes;

	for (uint32_t i = 0; i < s->n_blocks; i++) {
		uint64_t off = (uint64_t)s->bat[i] * VPC_SECTOR_BYTES;
		if (s->bat[i] != VPC_BAT_UNUSED && off >= s->bat_off && off < limit)
			limit = off;
	}
	if (s->footer.data_offset >= s->bat_off && s->footer.data_offset < limit)
		limit = s->footer.data_offset;
	return limit;
}

/* A BAT of n entries (the new ones unused): in place when there is room,
 * else at the end of the file, where new blocks would go; then the dynamic
 * header points at it.  The image keeps its old size meanwhile. */
static int grow_bat(struct imgfmt_image *img, struct vpc *s, uint32_t n)
{
	uint64_t off = s->bat_off, bytes = round_up((uint64_t)n * 4, VPC_SECTOR_BYTES);
	uint32_t *bat = malloc(bytes), *be = malloc(bytes);
	struct vpc_header_disk hd;
	int r;

	if (!bat || !be) {
		free(bat);
		free(be);
		return imgfmt_err(img, -ENOMEM, "out of memory for a BAT of %u entries", n);
	}
	memset(bat, 0xFF, bytes);
	memcpy(bat, s->bat, (size_t)s->n_blocks * 4);
	for (uint64_t i = 0; i < bytes / 4; i++)
		be[i] = htobe32(bat[i]);
	if (bat_limit(s) - s->bat_off < (uint64_t)n * 4) {
		off = round_up(s->end_bytes, VPC_SECTOR_BYTES);
		r = write_at(img, be, bytes, off, "BAT");
		s->end_bytes = off + bytes;
	} else {
		r = write_at(img, be + s->n_blocks, ((size_t)n - s->n_blocks) * 4, off + (uint64_t)s->n_blocks * 4, "BAT");
	}
	free(be);
	s->hdr.table_offset = off;
	s->hdr.max_entries = n;
	header_encode(&s->hdr, &hd);
	if (r == 0 && (r = sync_file(img)) == 0)
		r = write_at(img, &hd, sizeof(hd), s->footer.data_offset, "dynamic header");
	if (r < 0) {
		free(bat);
		return r;
	}
	free(s->bat);
	s->bat = bat;
	s->bat_off = off;
	s->n_blocks = n;
	return sync_file(img);
}

/* Dynamic: the BAT grows first, then the footer and its copy say the size. */
static int resize_dynamic(struct imgfmt_image *img, struct vpc *s, uint64_t size)
{
	uint64_t need = imgfmt_div_round_up(size, s->block_bytes);
	struct vpc_footer_disk d;
	int r;

	if (s->diff)
		return imgfmt_err(img, -ENOTSUP, "%s: differencing VHDs are read-only here", img->path);
	if (size < img->size_bytes)
		return imgfmt_err(img, -ENOTSUP, "%s: a dynamic VHD cannot shrink here (its blocks past the "
				  "end would stay allocated); p2v convert to a smaller one instead", img->path);
	if ((r = write_metadata(img, s)) < 0 || (r = sync_file(img)) < 0)
		return r;
	if (need > s->n_blocks && (r = grow_bat(img, s, (uint32_t)need)) < 0)
		return r;
	set_size(s, size);
	footer_encode(&s->footer, &d);
	r = write_at(img, &d, sizeof(d), 0, "footer copy");
	if (r == 0)
		r = write_footer(img, s);
	img->size_bytes = size;
	return r < 0 ? r : sync_file(img);
}

static int vpc_resize(struct imgfmt_image *img, uint64_t size)
{
	struct vpc *s = img->priv;

	size = round_up(size, VPC_SECTOR_BYTES);
	if (size > VPC_MAX_SIZE_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: %llu bytes exceed the VHD limit of 2040 GiB; use VHDX",
				  img->path, (unsigned long long)size);
	return s->dynamic ? resize_dynamic(img, s, size) : resize_fixed(img, s, size);
}

/* ---- measure ---- */

/* The end of a dynamic VHD's data after n blocks allocated as alloc_block
 * does from meta_end: each block's data 4 KiB-aligned after its bitmap. */
static uint64_t blocks_end(uint64_t meta_end, uint64_t bitmap_bytes, uint64_t block_bytes, uint64_t n)
{
	uint64_t stride = round_up(bitmap_bytes, VPC_DATA_ALIGN_BYTES) + block_bytes;

	if (n == 0)
		return meta_end;
	return round_up(meta_end + bitmap_bytes, VPC_DATA_ALIGN_BYTES) + block_bytes + (n - 1) * stride;
}

static int vpc_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
		       struct imgfmt_image *src, struct imgfmt_measure *m)
{
	struct vpc_create_opts co;
	uint64_t n_blocks, bitmap, meta, data;
	int r = parse_create_opts(img, ov, &co);

	if (r < 0)
		return r;
	if (size > VPC_MAX_SIZE_BYTES)
		return imgfmt_err(img, -EFBIG, "vpc: %llu bytes exceed the VHD limit of 2040 GiB",
				  (unsigned long long)size);
	size = create_size(&co, size);
	if (co.fixed) {
		m->required_bytes = m->fully_allocated_bytes = size + VPC_FOOTER_BYTES;
		return 0;
	}
	n_blocks = imgfmt_div_round_up(size, co.block_bytes);
	bitmap = round_up(co.block_bytes / VPC_SECTOR_BYTES / 8, VPC_SECTOR_BYTES);
	meta = VPC_FOOTER_BYTES + VPC_HEADER_BYTES + round_up(n_blocks * 4 + (n_blocks == 0), VPC_SECTOR_BYTES);
	if ((r = imgfmt_measure_data(img, src, co.block_bytes, &data)) < 0)
		return r;
	m->required_bytes = blocks_end(meta, bitmap, co.block_bytes, data / co.block_bytes) + VPC_FOOTER_BYTES;
	m->fully_allocated_bytes = blocks_end(meta, bitmap, co.block_bytes, n_blocks) + VPC_FOOTER_BYTES;
	return 0;
}

/* ---- info and check ---- */

static const char *subformat_name(const struct vpc *s)
{
	return s->diff ? "differencing" : s->dynamic ? "dynamic" : "fixed";
}

static void printable4(const char *in, char *out)
{
	for (int i = 0; i < 4; i++)
		out[i] = isprint((unsigned char)in[i]) ? in[i] : '.';
	out[4] = 0;
}

static int vpc_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct vpc *s = img->priv;
	const struct vpc_footer *f = &s->footer;
	char app[5], os[5], uuid[40];

	snprintf(info->subformat, sizeof(info->subformat), "%s", subformat_name(s));
	printable4(f->creator_app, app);
	printable4(f->creator_os, os);
	uuid_str(f->uuid, uuid, sizeof(uuid));
	imgfmt_info_add(info, "creator-app", false, "%s", app);
	imgfmt_info_add(info, "creator-version", false, "%u.%u", f->creator_ver >> 16,
			f->creator_ver & 0xFFFF);
	imgfmt_info_add(info, "creator-os", false, "%s", os);
	imgfmt_info_add(info, "geometry", false, "%u/%u/%u", f->cyls, f->heads, f->spt);
	imgfmt_info_add(info, "uuid", false, "%s", uuid);
	if (!s->dynamic) {
		info->cluster_bytes = 0;
		return 0;
	}
	imgfmt_info_add(info, "block-size", true, "%u", s->block_bytes);
	if (s->diff) {
		uuid_str(s->hdr.parent_uuid, uuid, sizeof(uuid));
		imgfmt_info_add(info, "parent-uuid", false, "%s", uuid);
		if (!utf16_to_utf8(s->hdr.parent_name, sizeof(s->hdr.parent_name), true,
				   info->backing_file, sizeof(info->backing_file)))
			info->backing_file[0] = 0;
		snprintf(info->backing_format, sizeof(info->backing_format), "vpc");
	}
	return 0;
}

static void check_report(struct imgfmt_check *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check_report(struct imgfmt_check *res, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!res->report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res->report(res->report_opaque, msg);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Space of at least one whole block between pos and off is a leak. */
static void check_gap(struct imgfmt_check *res, uint64_t pos, uint64_t off, uint64_t full)
{
	if (off <= pos || off - pos < full)
		return;
	res->leaks += (off - pos) / full;
	check_report(res, "%llu bytes at offset %llu are not referenced by the BAT",
		     (unsigned long long)(off - pos), (unsigned long long)pos);
}

/* Walk the blocks in file order (sorted (sector << 32 | entry) pairs):
 * overlaps are errors, unreferenced whole blocks leaks.  Open already
 * refused blocks past the end or over the metadata. */
static void check_blocks(struct vpc *s, const uint64_t *v, uint64_t n, struct imgfmt_check *res)
{
	uint64_t full = (uint64_t)s->bitmap_bytes + s->block_bytes;
	uint64_t pos = round_up(max_u64(s->bat_off + (uint64_t)s->hdr.max_entries * 4,
					s->footer.data_offset + VPC_HEADER_BYTES), VPC_SECTOR_BYTES);

	for (uint64_t k = 0; k < n; k++) {
		uint64_t off = (v[k] >> 32) * VPC_SECTOR_BYTES;
		if (k > 0 && off - (v[k - 1] >> 32) * VPC_SECTOR_BYTES < full) {
			res->errors++;
			check_report(res, "BAT entries %u and %u: blocks at offsets %llu and %llu overlap",
				     (unsigned)(v[k - 1] & 0xFFFFFFFFu), (unsigned)(v[k] & 0xFFFFFFFFu),
				     (unsigned long long)(v[k - 1] >> 32) * VPC_SECTOR_BYTES,
				     (unsigned long long)off);
		}
		check_gap(res, pos, off, full);
		pos = max_u64(pos, off + full);
	}
	check_gap(res, pos, s->end_bytes, full);
}

static int vpc_check(struct imgfmt_image *img, struct imgfmt_check *res)
{
	struct vpc *s = img->priv;
	uint64_t *v, n = 0;

	if (!s->dynamic)
		return -ENOTSUP;
	v = malloc(((size_t)s->n_blocks + 1) * sizeof(*v));
	if (!v)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < s->n_blocks; i++)
		if (s->bat[i] != VPC_BAT_UNUSED)
			v[n++] = (uint64_t)s->bat[i] << 32 | i;
	qsort(v, n, sizeof(*v), cmp_u64);
	check_blocks(s, v, n, res);
	res->allocated_clusters = n;
	res->total_clusters = s->n_blocks;
	free(v);
	return 0;
}

static const char *const vpc_magic[] = { "conectix", NULL };

const struct imgfmt_driver imgfmt_vpc_driver = {
	.name = "vpc",
	.description = "Microsoft VHD (Virtual PC, Hyper-V, Azure): fixed, dynamic, differencing",
	.magic = vpc_magic,
	.probe = vpc_probe,
	.open = vpc_open,
	.create_opts = vpc_create_opts,
	.create = vpc_create,
	.measure = vpc_measure,
	.pread = vpc_pread,
	.pwrite = vpc_pwrite,
	.write_zeroes = vpc_write_zeroes,
	.block_status = vpc_block_status,
	.flush = vpc_flush,
	.finish = vpc_finish,
	.close = vpc_close,
	.info = vpc_info,
	.resize = vpc_resize,
	.check = vpc_check,
};
