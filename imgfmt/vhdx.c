/* vhdx: Hyper-V VHDX images (MS-VHDX 1.0) — fixed, dynamic and (read-only)
 * differencing.  Layout: file identifier at 0, two 4 KiB headers at 64/128
 * KiB chosen by CRC-32C and sequence number, two copies of the region table
 * at 192/256 KiB naming the BAT and metadata regions, a log, and payload
 * blocks (1-256 MiB) mapped by the BAT, which interleaves one sector bitmap
 * entry after every chunk_ratio payload entries.
 *
 * Writing (created images and clean existing ones): new blocks go to the
 * MiB-aligned end of the file; the BAT lives in memory and is written at
 * flush/finish; the headers get a new sequence number and data write GUID.
 * A non-empty log is replayed into an in-memory overlay for read-only opens
 * (vhdx_log.c) and refused for writable ones. */
#include "vhdx.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#define HEADER_OFF(slot) (VHDX_KIB64 * (1u + (slot)))
#define REGION_TABLE_OFF(copy) (3u * VHDX_KIB64 + VHDX_KIB64 * (copy))
#define DEFAULT_LOG_BYTES VHDX_MIB
#define CREATOR "p2v imgfmt"

static const struct vhdx_guid bat_region_guid =
	VHDX_GUID(0x2DC27766, 0xF623, 0x4200, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08);
static const struct vhdx_guid meta_region_guid =
	VHDX_GUID(0x8B7CA206, 0x4790, 0x4B9A, 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E);
const struct vhdx_guid vhdx_zero_guid;

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t round_up_mib(uint64_t v) { return imgfmt_div_round_up(v, VHDX_MIB) * VHDX_MIB; }

bool vhdx_guid_is_zero(const struct vhdx_guid *g)
{
	return !memcmp(g, &vhdx_zero_guid, sizeof(*g));
}

void vhdx_guid_format(const struct vhdx_guid *g, char out[VHDX_GUID_STR_BYTES])
{
	const uint8_t *b = g->b;

	snprintf(out, VHDX_GUID_STR_BYTES, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 imgfmt_get_le32(b), imgfmt_get_le16(b + 4), imgfmt_get_le16(b + 6), b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int guid_random(struct imgfmt_image *img, struct vhdx_guid *g)
{
	if (getrandom(g->b, sizeof(g->b), 0) != (ssize_t)sizeof(g->b))
		return imgfmt_err(img, -EIO, "%s: no random bytes for a GUID: %s", img->path,
				  strerror(errno));
	g->b[7] = (uint8_t)((g->b[7] & 0x0F) | 0x40); /* version 4 */
	g->b[8] = (uint8_t)((g->b[8] & 0x3F) | 0x80);
	return 0;
}

static struct vhdx *V(struct imgfmt_image *img) { return img->priv; }

static int vhdx_probe(const struct imgfmt_probe_buf *pb)
{
	return pb->head_bytes >= 8 && !memcmp(pb->head, "vhdxfile", 8) ? 100 : 0;
}

/* ---- file access through the replayed log ---- */

static void apply_patch(const struct vhdx_patch *p, uint8_t *buf, size_t len, uint64_t off)
{
	uint64_t s = p->file_off_bytes > off ? p->file_off_bytes : off;
	uint64_t e = min_u64(p->file_off_bytes + p->len_bytes, off + len);

	if (s >= e)
		return;
	if (p->data)
		memcpy(buf + (s - off), p->data + (s - p->file_off_bytes), e - s);
	else
		memset(buf + (s - off), 0, e - s);
}

int vhdx_file_pread(struct imgfmt_image *img, void *buf, size_t len, uint64_t off)
{
	struct vhdx *v = V(img);
	int r = imgfmt_fd_pread_zfill(img->fd, buf, len, off);

	for (size_t i = 0; r == 0 && i < v->n_patches; i++)
		apply_patch(&v->patches[i], buf, len, off);
	return r;
}

/* ---- headers ---- */

struct header {
	bool valid;
	char why[128];
	uint64_t sequence_number;
	struct vhdx_guid file_write_guid, data_write_guid, log_guid;
	uint16_t log_version, version;
	uint32_t log_length_bytes;
	uint64_t log_offset_bytes;
};

static void decode_header(uint8_t *buf, struct header *h)
{
	struct vhdx_header_disk *d = (void *)buf;
	uint32_t stored = imgfmt_get_le32(d->checksum), computed;

	memset(d->checksum, 0, 4);
	computed = imgfmt_crc32c(0, buf, VHDX_HEADER_BYTES);
	h->sequence_number = imgfmt_get_le64(d->sequence_number);
	memcpy(h->file_write_guid.b, d->file_write_guid, 16);
	memcpy(h->data_write_guid.b, d->data_write_guid, 16);
	memcpy(h->log_guid.b, d->log_guid, 16);
	h->log_version = imgfmt_get_le16(d->log_version);
	h->version = imgfmt_get_le16(d->version);
	h->log_length_bytes = imgfmt_get_le32(d->log_length);
	h->log_offset_bytes = imgfmt_get_le64(d->log_offset);
	h->valid = false;
	if (memcmp(d->signature, "head", 4))
		snprintf(h->why, sizeof(h->why), "signature is not \"head\"");
	else if (stored != computed)
		snprintf(h->why, sizeof(h->why), "checksum 0x%08x does not match computed CRC-32C 0x%08x",
			 stored, computed);
	else if (h->version != 1)
		snprintf(h->why, sizeof(h->why), "version %u is not 1", h->version);
	else
		h->valid = true;
}

static int read_headers(struct imgfmt_image *img, struct header h[2])
{
	uint8_t *buf = malloc(VHDX_HEADER_BYTES);
	int r = 0;

	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < 2 && r == 0; i++) {
		r = imgfmt_fd_pread_zfill(img->fd, buf, VHDX_HEADER_BYTES, HEADER_OFF(i));
		if (r == 0)
			decode_header(buf, &h[i]);
	}
	free(buf);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the headers: %s", img->path, strerror(-r));
	return 0;
}

static int check_log_location(struct imgfmt_image *img, struct vhdx *v)
{
	uint64_t end = v->log_offset_bytes + v->log_length_bytes;

	if (v->log_length_bytes == 0 && vhdx_guid_is_zero(&v->log_guid))
		return 0;
	if (v->log_length_bytes == 0 || v->log_length_bytes % VHDX_MIB ||
	    v->log_offset_bytes % VHDX_MIB || v->log_offset_bytes < VHDX_HEADER_AREA_BYTES ||
	    end < v->log_offset_bytes || end > v->file_bytes)
		return imgfmt_err(img, -EINVAL,
				  "%s: header log offset %llu length %u must be non-empty, MiB-aligned, past the 1 MiB header area and inside the file (%llu bytes)",
				  img->path, (unsigned long long)v->log_offset_bytes,
				  v->log_length_bytes, (unsigned long long)v->file_bytes);
	if (v->log_version != 0 && !vhdx_guid_is_zero(&v->log_guid))
		return imgfmt_err(img, -ENOTSUP, "%s: header log version %u is not 0", img->path,
				  v->log_version);
	return 0;
}

static int load_headers(struct imgfmt_image *img, struct vhdx *v)
{
	struct header h[2];
	const struct header *c;
	int r = read_headers(img, h);

	if (r < 0)
		return r;
	if (!h[0].valid && !h[1].valid)
		return imgfmt_err(img, -EINVAL, "%s: no valid header: header 1: %s; header 2: %s",
				  img->path, h[0].why, h[1].why);
	v->cur_header = !h[0].valid || (h[1].valid && h[1].sequence_number > h[0].sequence_number);
	c = &h[v->cur_header];
	if (!h[!v->cur_header].valid)
		imgfmt_warn(img, "%s: header %u is invalid (%s); using header %u", img->path,
			    2 - v->cur_header, h[!v->cur_header].why, v->cur_header + 1);
	v->sequence_number = c->sequence_number;
	v->file_write_guid = c->file_write_guid;
	v->data_write_guid = c->data_write_guid;
	v->log_guid = c->log_guid;
	v->log_version = c->log_version;
	v->log_length_bytes = c->log_length_bytes;
	v->log_offset_bytes = c->log_offset_bytes;
	return check_log_location(img, v);
}

static void encode_header(const struct vhdx *v, uint64_t seq, uint8_t *buf)
{
	struct vhdx_header_disk *d = (void *)buf;

	memset(buf, 0, VHDX_HEADER_BYTES);
	memcpy(d->signature, "head", 4);
	imgfmt_put_le64(d->sequence_number, seq);
	memcpy(d->file_write_guid, v->file_write_guid.b, 16);
	memcpy(d->data_write_guid, v->data_write_guid.b, 16);
	memcpy(d->log_guid, v->log_guid.b, 16);
	imgfmt_put_le16(d->log_version, 0);
	imgfmt_put_le16(d->version, 1);
	imgfmt_put_le32(d->log_length, v->log_length_bytes);
	imgfmt_put_le64(d->log_offset, v->log_offset_bytes);
	imgfmt_put_le32(d->checksum, imgfmt_crc32c(0, buf, VHDX_HEADER_BYTES));
}

/* Write the older slot, then the newer: both end up valid, the newest last. */
static int write_headers(struct imgfmt_image *img, struct vhdx *v)
{
	uint8_t *buf = malloc(VHDX_HEADER_BYTES);
	int r = 0;

	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < 2 && r == 0; i++) {
		unsigned slot = !v->cur_header;
		encode_header(v, v->sequence_number + 1, buf);
		r = imgfmt_fd_pwrite(img->fd, buf, VHDX_HEADER_BYTES, HEADER_OFF(slot));
		if (r == 0) {
			v->sequence_number++;
			v->cur_header = slot;
		}
	}
	free(buf);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing the headers: %s", img->path, strerror(-r));
	return 0;
}

/* ---- region table ---- */

static bool region_table_valid(uint8_t *t, char *why, size_t why_bytes)
{
	const struct vhdx_region_table_header_disk *h = (const void *)t;
	uint32_t stored = imgfmt_get_le32(h->checksum), computed, n;

	memset(t + 4, 0, 4);
	computed = imgfmt_crc32c(0, t, VHDX_REGION_TABLE_BYTES);
	imgfmt_put_le32(t + 4, stored);
	n = imgfmt_get_le32(h->entry_count);
	if (memcmp(h->signature, "regi", 4))
		snprintf(why, why_bytes, "signature is not \"regi\"");
	else if (stored != computed)
		snprintf(why, why_bytes, "checksum 0x%08x does not match computed CRC-32C 0x%08x",
			 stored, computed);
	else if (n > VHDX_REGION_MAX_ENTRIES)
		snprintf(why, why_bytes, "entry count %u exceeds %u", n, VHDX_REGION_MAX_ENTRIES);
	else
		return true;
	return false;
}

static int read_region_table(struct imgfmt_image *img, uint8_t *t)
{
	char why[2][128];
	int r;

	for (unsigned copy = 0; copy < 2; copy++) {
		r = vhdx_file_pread(img, t, VHDX_REGION_TABLE_BYTES, REGION_TABLE_OFF(copy));
		if (r < 0)
			return imgfmt_err(img, r, "%s: reading the region table: %s", img->path,
					  strerror(-r));
		if (region_table_valid(t, why[copy], sizeof(why[copy]))) {
			if (copy)
				imgfmt_warn(img, "%s: region table 1 is invalid (%s); using copy 2",
					    img->path, why[0]);
			return 0;
		}
	}
	return imgfmt_err(img, -EINVAL, "%s: no valid region table: table 1: %s; table 2: %s",
			  img->path, why[0], why[1]);
}

static int check_region(struct imgfmt_image *img, struct vhdx *v, const char *name,
			uint64_t off, uint32_t len)
{
	uint64_t end = off + len;

	if (off % VHDX_MIB || len % VHDX_MIB || len == 0 || off < VHDX_HEADER_AREA_BYTES ||
	    end < off || end > v->file_bytes)
		return imgfmt_err(img, -EINVAL,
				  "%s: %s region offset %llu length %u must be non-empty, MiB-aligned, past the 1 MiB header area and inside the file (%llu bytes)",
				  img->path, name, (unsigned long long)off, len,
				  (unsigned long long)v->file_bytes);
	if (v->log_length_bytes && off < v->log_offset_bytes + v->log_length_bytes &&
	    v->log_offset_bytes < end)
		return imgfmt_err(img, -EINVAL, "%s: %s region at %llu overlaps the log at %llu",
				  img->path, name, (unsigned long long)off,
				  (unsigned long long)v->log_offset_bytes);
	return 0;
}

static int region_entry(struct imgfmt_image *img, struct vhdx *v, const uint8_t *raw,
			unsigned i, unsigned *seen)
{
	const struct vhdx_region_entry_disk *e = (const void *)raw;
	uint64_t off = imgfmt_get_le64(e->file_offset);
	uint32_t len = imgfmt_get_le32(e->length);
	bool is_bat = !memcmp(e->guid, &bat_region_guid, 16);
	char g[VHDX_GUID_STR_BYTES];
	struct vhdx_guid id;

	memcpy(id.b, e->guid, 16);
	vhdx_guid_format(&id, g);
	if (!is_bat && memcmp(e->guid, &meta_region_guid, 16)) {
		if (imgfmt_get_le32(e->flags) & 1u)
			return imgfmt_err(img, -ENOTSUP,
					  "%s: region table entry %u has unknown required region %s",
					  img->path, i, g);
		return 0;
	}
	if (*seen & (is_bat ? 1u : 2u))
		return imgfmt_err(img, -EINVAL, "%s: region table lists the %s region twice",
				  img->path, is_bat ? "BAT" : "metadata");
	*seen |= is_bat ? 1u : 2u;
	if (is_bat) {
		v->bat_offset_bytes = off;
		v->bat_length_bytes = len;
	} else {
		v->meta_offset_bytes = off;
		v->meta_length_bytes = len;
	}
	return check_region(img, v, is_bat ? "BAT" : "metadata", off, len);
}

static int load_region_table(struct imgfmt_image *img, struct vhdx *v)
{
	uint8_t *t = malloc(VHDX_REGION_TABLE_BYTES);
	unsigned seen = 0, n;
	int r;

	if (!t)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = read_region_table(img, t);
	n = r == 0 ? imgfmt_get_le32(t + 8) : 0;
	for (unsigned i = 0; i < n && r == 0; i++)
		r = region_entry(img, v, t + 16 + 32 * (size_t)i, i, &seen);
	free(t);
	if (r == 0 && seen != 3)
		r = imgfmt_err(img, -EINVAL, "%s: region table has no %s region", img->path,
			       (seen & 1u) ? "metadata" : "BAT");
	if (r == 0 && v->bat_offset_bytes < v->meta_offset_bytes + v->meta_length_bytes &&
	    v->meta_offset_bytes < v->bat_offset_bytes + v->bat_length_bytes)
		r = imgfmt_err(img, -EINVAL, "%s: BAT region at %llu overlaps the metadata region at %llu",
			       img->path, (unsigned long long)v->bat_offset_bytes,
			       (unsigned long long)v->meta_offset_bytes);
	return r;
}

/* ---- the BAT ---- */

uint64_t vhdx_chunk_ratio(uint32_t logical_sector_bytes, uint32_t block_bytes)
{
	return (VHDX_SECTORS_PER_CHUNK * logical_sector_bytes) / block_bytes;
}

static void compute_geometry(struct vhdx *v, uint64_t size_bytes)
{
	v->chunk_ratio = vhdx_chunk_ratio(v->logical_sector_bytes, v->block_bytes);
	v->data_blocks = imgfmt_div_round_up(size_bytes, v->block_bytes);
	v->bitmap_blocks = imgfmt_div_round_up(v->data_blocks, v->chunk_ratio);
	if (v->has_parent)
		v->bat_entries = v->bitmap_blocks * (v->chunk_ratio + 1);
	else
		v->bat_entries = v->data_blocks ? v->data_blocks + (v->data_blocks - 1) / v->chunk_ratio : 0;
}

static uint64_t bat_index(const struct vhdx *v, uint64_t block)
{
	return block + block / v->chunk_ratio;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A block at off of len bytes must lie after the headers, inside the file and
 * clear of the log, BAT and metadata regions. */
static int check_block_range(struct imgfmt_image *img, struct vhdx *v, uint64_t i, uint64_t off,
			     uint64_t len)
{
	const char *what = NULL;

	if (off < VHDX_HEADER_AREA_BYTES)
		what = "lies in the 1 MiB header area";
	else if (off > v->file_bytes || len > v->file_bytes - off)
		what = "extends past the end of the file";
	else if (overlaps(off, len, v->log_offset_bytes, v->log_length_bytes))
		what = "overlaps the log";
	else if (overlaps(off, len, v->bat_offset_bytes, v->bat_length_bytes))
		what = "overlaps the BAT region";
	else if (overlaps(off, len, v->meta_offset_bytes, v->meta_length_bytes))
		what = "overlaps the metadata region";
	if (!what)
		return 0;
	return imgfmt_err(img, -EINVAL,
			  "%s: BAT entry %llu: block at file offset %llu (%llu bytes) %s (file is %llu bytes)",
			  img->path, (unsigned long long)i, (unsigned long long)off,
			  (unsigned long long)len, what, (unsigned long long)v->file_bytes);
}

static int check_payload_entry(struct imgfmt_image *img, struct vhdx *v, uint64_t i)
{
	unsigned st = VHDX_BAT_STATE(v->bat[i]);

	switch (st) {
	case VHDX_PAYLOAD_NOT_PRESENT: case VHDX_PAYLOAD_UNDEFINED: case VHDX_PAYLOAD_ZERO:
	case VHDX_PAYLOAD_UNMAPPED: case VHDX_PAYLOAD_UNMAPPED_V095:
		return 0;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		if (!v->has_parent)
			break;
		/* fall through */
	case VHDX_PAYLOAD_FULLY_PRESENT:
		return check_block_range(img, v, i, VHDX_BAT_OFFSET_BYTES(v->bat[i]), v->block_bytes);
	}
	return imgfmt_err(img, -EINVAL, "%s: BAT entry %llu has invalid payload state %u",
			  img->path, (unsigned long long)i, st);
}

static int check_bitmap_entry(struct imgfmt_image *img, struct vhdx *v, uint64_t i)
{
	unsigned st = VHDX_BAT_STATE(v->bat[i]);

	if (!v->has_parent || st == VHDX_SB_NOT_PRESENT)
		return 0; /* fixed/dynamic: sector bitmap entries are unused */
	if (st != VHDX_SB_PRESENT)
		return imgfmt_err(img, -EINVAL, "%s: BAT entry %llu has invalid sector bitmap state %u",
				  img->path, (unsigned long long)i, st);
	return check_block_range(img, v, i, VHDX_BAT_OFFSET_BYTES(v->bat[i]),
				 VHDX_BITMAP_BLOCK_BYTES);
}

static int read_bat(struct imgfmt_image *img, struct vhdx *v)
{
	size_t bytes = v->bat_entries * 8;
	int r;

	v->bat = malloc(bytes ? bytes : 8);
	if (!v->bat)
		return imgfmt_err(img, -ENOMEM, "out of memory for a BAT of %llu entries",
				  (unsigned long long)v->bat_entries);
	r = vhdx_file_pread(img, v->bat, bytes, v->bat_offset_bytes);
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading the BAT: %s", img->path, strerror(-r));
	for (uint64_t i = 0; i < v->bat_entries; i++)
		v->bat[i] = le64toh(v->bat[i]);
	return 0;
}

static int load_bat(struct imgfmt_image *img, struct vhdx *v)
{
	int r;

	compute_geometry(v, img->size_bytes);
	if (v->bat_entries > v->bat_length_bytes / 8)
		return imgfmt_err(img, -EINVAL,
				  "%s: BAT of %llu entries does not fit the BAT region of %u bytes",
				  img->path, (unsigned long long)v->bat_entries, v->bat_length_bytes);
	r = read_bat(img, v);
	for (uint64_t i = 0; i < v->bat_entries && r == 0; i++) {
		if (i % (v->chunk_ratio + 1) == v->chunk_ratio)
			r = check_bitmap_entry(img, v, i);
		else
			r = check_payload_entry(img, v, i);
	}
	return r;
}

/* ---- opening ---- */

static void read_creator(struct imgfmt_image *img, struct vhdx *v)
{
	uint8_t raw[512];
	size_t o = 0;

	if (vhdx_file_pread(img, raw, sizeof(raw), 8) < 0)
		return;
	for (size_t i = 0; i + 1 < sizeof(raw) && o + 1 < sizeof(v->creator); i += 2) {
		unsigned ch = imgfmt_get_le16(raw + i);
		if (!ch)
			break;
		v->creator[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	v->creator[o] = 0;
}

/* Convert a Windows path from the parent locator to a '/'-separated one. */
static void slashes(char *s)
{
	for (; *s; s++)
		if (*s == '\\')
			*s = '/';
}

static int open_parent(struct imgfmt_image *img, struct vhdx *v)
{
	const char *alt = v->parent_absolute[0] ? v->parent_absolute : v->parent_volume;
	char name[1024];
	int r = -ENOENT;

	if (img->flags & IMGFMT_OPEN_NO_BACKING)
		return 0;
	if (!v->parent_relative[0] && !alt[0])
		return imgfmt_err(img, -EINVAL, "%s: parent locator names no parent path", img->path);
	if (v->parent_relative[0]) {
		snprintf(name, sizeof(name), "%s", v->parent_relative);
		slashes(name);
		r = imgfmt_open_backing(img, name, "vhdx");
	}
	if ((r == -ENOENT || r == -EPERM) && alt[0]) { /* the parent's file name beside the child */
		char first[IMGFMT_ERRMSG_BYTES];
		int r1 = r;
		snprintf(first, sizeof(first), "%s", imgfmt_errmsg(img));
		snprintf(name, sizeof(name), "%s", alt);
		slashes(name);
		r = imgfmt_open_backing(img, strrchr(name, '/') ? strrchr(name, '/') + 1 : name,
					"vhdx");
		if (r == -ENOENT && v->parent_relative[0]) /* the first reason is the clearer one */
			r = imgfmt_err(img, r1, "%s", first);
	}
	return r;
}

static int check_parent_linkage(struct imgfmt_image *img, struct vhdx *v)
{
	const struct vhdx *p;
	char want[VHDX_GUID_STR_BYTES], have[VHDX_GUID_STR_BYTES];

	if (!img->backing || !v->have_parent_linkage)
		return 0;
	if (img->backing->drv != &imgfmt_vhdx_driver)
		return imgfmt_err(img, -EINVAL, "%s: parent %s is not a VHDX image", img->path,
				  img->backing->path);
	p = img->backing->priv;
	if (!memcmp(&p->data_write_guid, &v->parent_linkage, sizeof(p->data_write_guid)))
		return 0;
	vhdx_guid_format(&v->parent_linkage, want);
	vhdx_guid_format(&p->data_write_guid, have);
	return imgfmt_err(img, -EINVAL,
			  "%s: parent_linkage {%s} does not match the data write GUID {%s} of parent %s",
			  img->path, want, have, img->backing->path);
}

/* New blocks go after everything: the log, the regions and every block were
 * checked to lie inside file_bytes. */
static uint64_t compute_alloc_end(const struct vhdx *v)
{
	return round_up_mib(v->file_bytes);
}

static int open_checks_for_write(struct imgfmt_image *img, struct vhdx *v)
{
	if (!img->writable)
		return 0;
	if (v->has_parent)
		return imgfmt_err(img, -ENOTSUP,
				  "%s: writing differencing VHDX images is not supported; open it read-only",
				  img->path);
	return 0;
}

static int open_structures(struct imgfmt_image *img, struct vhdx *v)
{
	uint8_t sig[8];
	int r = imgfmt_fd_size(img->fd, &v->file_bytes);

	if (r < 0)
		return imgfmt_err(img, r, "%s: size: %s", img->path, strerror(-r));
	r = imgfmt_fd_pread_zfill(img->fd, sig, 8, 0);
	if (r == 0 && memcmp(sig, "vhdxfile", 8))
		return imgfmt_err(img, -EINVAL, "%s: file identifier is not \"vhdxfile\"", img->path);
	if (r == 0)
		r = load_headers(img, v);
	if (r == 0)
		r = vhdx_log_load(img, v);
	if (r == 0)
		r = load_region_table(img, v);
	if (r == 0)
		r = vhdx_load_metadata(img, v);
	if (r == 0)
		r = open_checks_for_write(img, v);
	if (r == 0)
		r = load_bat(img, v);
	return r;
}

static void vhdx_close(struct imgfmt_image *img)
{
	struct vhdx *v = V(img);

	vhdx_log_free(v);
	free(v->bat);
	free(v->bitmap);
	free(v);
	img->priv = NULL;
}

static int vhdx_open(struct imgfmt_image *img)
{
	struct vhdx *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = v;
	v->bitmap_chunk = UINT64_MAX;
	r = open_structures(img, v);
	if (r == 0 && v->has_parent)
		r = open_parent(img, v);
	if (r == 0)
		r = check_parent_linkage(img, v);
	if (r < 0) {
		vhdx_close(img);
		return r;
	}
	read_creator(img, v);
	img->cluster_bytes = v->block_bytes;
	v->alloc_end_bytes = compute_alloc_end(v);
	return 0;
}

/* ---- reading ---- */

enum run_kind { RUN_NONE, RUN_FILE, RUN_ZERO, RUN_PARENT };

/* A run of consecutive request bytes served the same way: from the file at
 * src, zeroes, or from the parent at virtual offset src. */
struct run {
	enum run_kind kind;
	uint64_t src;
	uint8_t *buf;
	uint64_t len;
};

static int read_parent(struct imgfmt_image *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t psize, n;
	int r;

	if (!img->backing) {
		memset(buf, 0, len);
		return 0;
	}
	psize = imgfmt_size_bytes(img->backing);
	n = off < psize ? min_u64(len, psize - off) : 0;
	memset(buf + n, 0, len - n);
	if (n == 0)
		return 0;
	r = imgfmt_pread(img->backing, buf, n, off);
	if (r < 0)
		return imgfmt_err(img, r, "%s: parent: %s", img->path, imgfmt_errmsg(img->backing));
	return 0;
}

static int run_flush(struct imgfmt_image *img, struct run *run)
{
	int r = 0;

	if (run->kind == RUN_FILE) {
		r = vhdx_file_pread(img, run->buf, run->len, run->src);
		if (r < 0)
			r = imgfmt_err(img, r, "%s: read of %llu bytes at file offset %llu: %s",
				       img->path, (unsigned long long)run->len,
				       (unsigned long long)run->src, strerror(-r));
	} else if (run->kind == RUN_ZERO) {
		memset(run->buf, 0, run->len);
	} else if (run->kind == RUN_PARENT) {
		r = read_parent(img, run->buf, run->len, run->src);
	}
	run->kind = RUN_NONE;
	run->len = 0;
	return r;
}

static int run_add(struct imgfmt_image *img, struct run *run, enum run_kind kind, uint64_t src,
		   uint8_t *buf, uint64_t len)
{
	int r = 0;

	if (run->kind == kind && (kind == RUN_ZERO || run->src + run->len == src)) {
		run->len += len;
		return 0;
	}
	if (run->kind != RUN_NONE)
		r = run_flush(img, run);
	run->kind = kind;
	run->src = src;
	run->buf = buf;
	run->len = len;
	return r;
}

static enum run_kind kind_of(const struct vhdx *v, uint64_t entry)
{
	switch (VHDX_BAT_STATE(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		return RUN_FILE;
	case VHDX_PAYLOAD_NOT_PRESENT: case VHDX_PAYLOAD_UNDEFINED:
		return v->has_parent ? RUN_PARENT : RUN_ZERO;
	default:
		return RUN_ZERO;
	}
}

/* The sector bitmap block of chunk `chunk`, cached. */
static int load_bitmap(struct imgfmt_image *img, struct vhdx *v, uint64_t chunk)
{
	uint64_t i = chunk * (v->chunk_ratio + 1) + v->chunk_ratio, e;
	int r;

	if (v->bitmap_chunk == chunk)
		return 0;
	e = v->bat[i];
	if (VHDX_BAT_STATE(e) != VHDX_SB_PRESENT)
		return imgfmt_err(img, -EINVAL,
				  "%s: partially present block in chunk %llu but its sector bitmap (BAT entry %llu) is not present",
				  img->path, (unsigned long long)chunk, (unsigned long long)i);
	if (!v->bitmap && !(v->bitmap = malloc(VHDX_BITMAP_BLOCK_BYTES)))
		return imgfmt_err(img, -ENOMEM, "out of memory");
	v->bitmap_chunk = UINT64_MAX;
	r = vhdx_file_pread(img, v->bitmap, VHDX_BITMAP_BLOCK_BYTES, VHDX_BAT_OFFSET_BYTES(e));
	if (r < 0)
		return imgfmt_err(img, r, "%s: reading a sector bitmap: %s", img->path, strerror(-r));
	v->bitmap_chunk = chunk;
	return 0;
}

static bool sector_present(const struct vhdx *v, uint64_t sector)
{
	uint64_t s = sector % VHDX_SECTORS_PER_CHUNK;

	return (v->bitmap[s / 8] >> (s % 8)) & 1u;
}

/* Part of a partially present block: per sector from the file or the parent. */
static int read_partial(struct imgfmt_image *img, struct run *run, uint64_t host, uint8_t *buf,
			uint64_t len, uint64_t off)
{
	struct vhdx *v = V(img);
	uint64_t lss = v->logical_sector_bytes, pos = 0;
	int r = load_bitmap(img, v, off / ((uint64_t)v->block_bytes * v->chunk_ratio));

	while (r == 0 && pos < len) {
		uint64_t sector = (off + pos) / lss, n;
		bool present = sector_present(v, sector);
		n = min_u64((sector + 1) * lss - (off + pos), len - pos);
		while (pos + n < len && sector_present(v, ++sector) == present)
			n = min_u64(n + lss, len - pos);
		r = run_add(img, run, present ? RUN_FILE : RUN_PARENT, present ? host + pos : off + pos,
			    buf + pos, n);
		pos += n;
	}
	return r;
}

static int vhdx_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	struct vhdx *v = V(img);
	struct run run = { .kind = RUN_NONE };
	uint8_t *p = buf;
	int r = 0;

	while (len > 0 && r == 0) {
		uint64_t b = off / v->block_bytes, in = off % v->block_bytes;
		uint64_t n = min_u64(len, v->block_bytes - in), e = v->bat[bat_index(v, b)];
		uint64_t host = VHDX_BAT_OFFSET_BYTES(e) + in;
		if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_PARTIALLY_PRESENT)
			r = read_partial(img, &run, host, p, n, off);
		else
			r = run_add(img, &run, kind_of(v, e), kind_of(v, e) == RUN_PARENT ? off : host,
				    p, n);
		p += n;
		off += n;
		len -= n;
	}
	if (r == 0)
		r = run_flush(img, &run);
	return r;
}

/* ---- block status ---- */

static enum imgfmt_extent_type status_of(const struct vhdx *v, uint64_t entry)
{
	switch (VHDX_BAT_STATE(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT: case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		return IMGFMT_EXTENT_DATA;
	case VHDX_PAYLOAD_ZERO:
		return IMGFMT_EXTENT_ZERO;
	case VHDX_PAYLOAD_UNMAPPED: case VHDX_PAYLOAD_UNMAPPED_V095:
		return v->has_parent ? IMGFMT_EXTENT_ZERO : IMGFMT_EXTENT_HOLE;
	default:
		return IMGFMT_EXTENT_HOLE;
	}
}

static int parent_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			 struct imgfmt_extent *ext)
{
	uint64_t psize;
	int r;

	if (!img->backing)
		return 0;
	psize = imgfmt_size_bytes(img->backing);
	if (off >= psize)
		return 0;
	r = imgfmt_block_status(img->backing, off, min_u64(len, psize - off), ext);
	if (r < 0)
		return imgfmt_err(img, r, "%s: parent: %s", img->path, imgfmt_errmsg(img->backing));
	ext->depth++;
	return 0;
}

/* Where a fully present block's bytes lie in the file (else none as is:
 * a partially present block mixes in its parent's). */
static uint64_t host_of(uint64_t entry, uint64_t in)
{
	if (VHDX_BAT_STATE(entry) != VHDX_PAYLOAD_FULLY_PRESENT)
		return IMGFMT_NO_HOST_OFFSET;
	return VHDX_BAT_OFFSET_BYTES(entry) + in;
}

static int vhdx_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			     struct imgfmt_extent *ext)
{
	struct vhdx *v = V(img);
	uint64_t b = off / v->block_bytes, e = v->bat[bat_index(v, b)];
	uint64_t n = min_u64(len, v->block_bytes - off % v->block_bytes);
	bool from_parent = kind_of(v, e) == RUN_PARENT;
	enum imgfmt_extent_type t = status_of(v, e);
	uint64_t host = host_of(e, off % v->block_bytes);

	while (n < len) {
		uint64_t ne = v->bat[bat_index(v, ++b)], nh = host_of(ne, 0);
		if (status_of(v, ne) != t || (kind_of(v, ne) == RUN_PARENT) != from_parent ||
		    (host == IMGFMT_NO_HOST_OFFSET) != (nh == IMGFMT_NO_HOST_OFFSET) ||
		    (host != IMGFMT_NO_HOST_OFFSET && nh != host + n))
			break;
		n = min_u64(n + v->block_bytes, len);
	}
	ext->type = t;
	ext->length_bytes = n;
	ext->host_offset_bytes = host;
	return from_parent ? parent_status(img, off, n, ext) : 0;
}

/* ---- writing ---- */

/* Before the first change: new file and data write GUIDs in both headers. */
static int begin_write(struct imgfmt_image *img, struct vhdx *v)
{
	int r;

	if (v->data_written)
		return 0;
	r = guid_random(img, &v->file_write_guid);
	if (r == 0)
		r = guid_random(img, &v->data_write_guid);
	v->log_guid = vhdx_zero_guid; /* we never write log entries */
	if (r == 0)
		r = write_headers(img, v);
	v->data_written = r == 0;
	return r;
}

/* Host offset of block b, allocating it at the end of the file if needed. */
static uint64_t block_host(struct vhdx *v, uint64_t b)
{
	uint64_t i = bat_index(v, b), e = v->bat[i];

	if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULLY_PRESENT)
		return VHDX_BAT_OFFSET_BYTES(e);
	v->bat[i] = VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, v->alloc_end_bytes);
	v->alloc_end_bytes += v->block_bytes;
	v->bat_dirty = true;
	return VHDX_BAT_OFFSET_BYTES(v->bat[i]);
}

struct wrun {
	uint64_t host;
	const uint8_t *buf;
	uint64_t len;
};

static int wrun_flush(struct imgfmt_image *img, struct wrun *w)
{
	int r = w->len ? imgfmt_data_pwrite(img, w->buf, w->len, w->host) : 0;

	if (r < 0)
		return imgfmt_err(img, r, "%s: write of %llu bytes at file offset %llu: %s", img->path,
				  (unsigned long long)w->len, (unsigned long long)w->host,
				  strerror(-r));
	w->len = 0;
	return 0;
}

static int vhdx_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	struct vhdx *v = V(img);
	struct wrun w = { 0 };
	const uint8_t *p = buf;
	int r = begin_write(img, v);

	while (len > 0 && r == 0) {
		uint64_t in = off % v->block_bytes, n = min_u64(len, v->block_bytes - in);
		uint64_t host = block_host(v, off / v->block_bytes) + in;
		if (w.len && w.host + w.len != host)
			r = wrun_flush(img, &w);
		if (!w.len) {
			w.host = host;
			w.buf = p;
		}
		w.len += n;
		p += n;
		off += n;
		len -= n;
	}
	return r ? r : wrun_flush(img, &w);
}

static int zero_host(struct imgfmt_image *img, uint64_t host, uint64_t len)
{
	static const uint8_t zeroes[64 * 1024];
	int r = 0;

	if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)host,
		      (off_t)len) == 0)
		return 0;
	while (len > 0 && r == 0) {
		uint64_t n = min_u64(len, sizeof(zeroes));
		struct wrun w = { host, zeroes, n };
		r = wrun_flush(img, &w);
		host += n;
		len -= n;
	}
	return r;
}

/* Unallocated blocks already read as zero; allocated ones get their range zeroed. */
static int vhdx_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	struct vhdx *v = V(img);
	int r = 0;

	while (len > 0 && r == 0) {
		uint64_t in = off % v->block_bytes, n = min_u64(len, v->block_bytes - in);
		uint64_t e = v->bat[bat_index(v, off / v->block_bytes)];
		if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULLY_PRESENT) {
			r = begin_write(img, v);
			if (r == 0)
				r = zero_host(img, VHDX_BAT_OFFSET_BYTES(e) + in, n);
		}
		off += n;
		len -= n;
	}
	return r;
}

static int write_bat(struct imgfmt_image *img, struct vhdx *v)
{
	size_t bytes = v->bat_entries * 8;
	uint64_t *le = malloc(bytes ? bytes : 8);
	int r;

	if (!le)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < v->bat_entries; i++)
		le[i] = htole64(v->bat[i]);
	r = imgfmt_fd_pwrite(img->fd, le, bytes, v->bat_offset_bytes);
	free(le);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing the BAT: %s", img->path, strerror(-r));
	v->bat_dirty = false;
	return 0;
}

/* Blocks allocated at the end but written only in part: extend the file. */
static int extend_file(struct imgfmt_image *img, struct vhdx *v)
{
	uint64_t size;
	int r = imgfmt_fd_size(img->fd, &size);

	if (r == 0 && size < v->alloc_end_bytes && ftruncate(img->fd, (off_t)v->alloc_end_bytes) < 0)
		r = -errno;
	if (r < 0)
		return imgfmt_err(img, r, "%s: extending to %llu bytes: %s", img->path,
				  (unsigned long long)v->alloc_end_bytes, strerror(-r));
	return 0;
}

static int vhdx_flush(struct imgfmt_image *img)
{
	struct vhdx *v = V(img);
	int r = v->bat_dirty ? extend_file(img, v) : 0;

	if (r == 0 && v->bat_dirty)
		r = write_bat(img, v);
	if (r == 0 && fdatasync(img->fd) < 0 && errno != EINVAL)
		r = imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return r;
}

static int vhdx_finish(struct imgfmt_image *img)
{
	struct vhdx *v = V(img);
	int r;

	if (!v->data_written && !v->bat_dirty)
		return 0; /* opened for writing, never written: leave the file alone */
	r = extend_file(img, v);

	if (r == 0 && v->bat_dirty)
		r = write_bat(img, v);
	if (r == 0 && v->data_written)
		r = write_headers(img, v);
	return r;
}

/* ---- resize ---- */

static void allocate_all(struct vhdx *v)
{
	for (uint64_t b = 0; b < v->data_blocks; b++)
		block_host(v, b);
}

/* Grow: the BAT's new entries (unallocated, or new blocks for a fixed
 * VHDX) within the BAT region, on disk first; then the disk size item, in
 * one write.  Shrinking and a BAT past its region are refused. */
static int vhdx_resize(struct imgfmt_image *img, uint64_t size)
{
	struct vhdx *v = V(img), g = *v;
	uint64_t *bat;
	uint8_t le[8];
	int r;

	if (v->has_parent)
		return imgfmt_err(img, -ENOTSUP, "%s: differencing VHDX images are read-only here", img->path);
	size = imgfmt_div_round_up(size, v->logical_sector_bytes) * v->logical_sector_bytes;
	if (size < img->size_bytes)
		return imgfmt_err(img, -ENOTSUP, "%s: a VHDX cannot shrink here (its blocks past the end would "
				  "stay allocated); p2v convert to a smaller one instead", img->path);
	if (size > VHDX_MAX_DISK_BYTES)
		return imgfmt_err(img, -EFBIG, "%s: VHDX images are at most 64 TiB", img->path);
	compute_geometry(&g, size);
	if (g.bat_entries * 8 > v->bat_length_bytes)
		return imgfmt_err(img, -ENOTSUP, "%s: %llu bytes need %llu BAT entries, the BAT region holds %u; "
				  "p2v convert to a larger VHDX instead", img->path, (unsigned long long)size,
				  (unsigned long long)g.bat_entries, v->bat_length_bytes / 8);
	if ((r = begin_write(img, v)) < 0)
		return r;
	bat = calloc(g.bat_entries ? g.bat_entries : 1, 8);
	if (!bat)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	memcpy(bat, v->bat, v->bat_entries * 8);
	free(v->bat);
	v->bat = bat;
	v->data_blocks = g.data_blocks;
	v->bitmap_blocks = g.bitmap_blocks;
	v->bat_entries = g.bat_entries;
	if (v->leave_blocks_allocated)
		allocate_all(v);
	r = extend_file(img, v);
	if (r == 0)
		r = write_bat(img, v);
	if (r == 0 && fdatasync(img->fd) < 0 && errno != EINVAL)
		r = imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	imgfmt_put_le64(le, size);
	if (r == 0 && (r = imgfmt_fd_pwrite(img->fd, le, 8, v->size_item_offset)) < 0)
		r = imgfmt_err(img, r, "%s: writing the disk size: %s", img->path, strerror(-r));
	if (r == 0)
		img->size_bytes = size;
	return r;
}

/* ---- creating ---- */

/* Default block size as qemu-img chooses it (32 MiB, Hyper-V's default, for
 * disks over 100 GiB; smaller for small disks), so outputs match in size. */
static uint32_t default_block_bytes(uint64_t size_bytes)
{
	if (size_bytes > (32ull << 40))
		return 64u * VHDX_MIB;
	if (size_bytes > (100ull << 30))
		return 32u * VHDX_MIB;
	return size_bytes > (1ull << 30) ? 16u * VHDX_MIB : 8u * VHDX_MIB;
}

enum { X_SUBFORMAT, X_BLOCK_SIZE, X_LOG_SIZE, X_LOGICAL_SECTOR, X_PHYSICAL_SECTOR };
static const char *const vhdx_subformats[] = { "dynamic", "fixed", NULL };
static const char *const sector_choices[] = { "512", "4096", NULL };
static const struct imgfmt_opt_desc vhdx_create_opts[] = {
	[X_SUBFORMAT] = { "subformat", IMGFMT_OPT_ENUM, "dynamic",
			  "VHDX type (fixed: every block allocated)", .choices = vhdx_subformats },
	[X_BLOCK_SIZE] = { "block_size", IMGFMT_OPT_SIZE, NULL,
			   "payload block size; by default 8M, 16M over 1 GiB, 32M over 100 GiB, 64M over 32 TiB (as qemu-img)",
			   .min = VHDX_MIN_BLOCK_BYTES, .max = VHDX_MAX_BLOCK_BYTES, .pow2 = true },
	[X_LOG_SIZE] = { "log_size", IMGFMT_OPT_SIZE, "1M", "metadata log size",
			 .min = VHDX_MIB, .max = 1024ull * VHDX_MIB, .multiple = VHDX_MIB },
	[X_LOGICAL_SECTOR] = { "logical_sector_size", IMGFMT_OPT_ENUM, "512", "sector size the guest sees",
			       .choices = sector_choices },
	[X_PHYSICAL_SECTOR] = { "physical_sector_size", IMGFMT_OPT_ENUM, "4096",
				"physical sector size reported to the guest", .choices = sector_choices },
	{ 0 },
};

static void take_options(struct vhdx *v, const struct imgfmt_optval *ov, uint64_t size_bytes)
{
	v->leave_blocks_allocated = ov[X_SUBFORMAT].u == 1;
	v->block_bytes = ov[X_BLOCK_SIZE].set ? (uint32_t)ov[X_BLOCK_SIZE].u : default_block_bytes(size_bytes);
	v->logical_sector_bytes = ov[X_LOGICAL_SECTOR].u ? 4096 : 512;
	v->physical_sector_bytes = ov[X_PHYSICAL_SECTOR].u ? 4096 : 512;
	v->log_length_bytes = (uint32_t)ov[X_LOG_SIZE].u;
}

/* Log, metadata, BAT, then payload blocks, each MiB-aligned. */
static void lay_out(struct vhdx *v, uint64_t size_bytes)
{
	compute_geometry(v, size_bytes);
	v->log_offset_bytes = VHDX_HEADER_AREA_BYTES;
	v->meta_offset_bytes = v->log_offset_bytes + v->log_length_bytes;
	v->meta_length_bytes = VHDX_MIB;
	v->bat_offset_bytes = v->meta_offset_bytes + v->meta_length_bytes;
	v->bat_length_bytes = (uint32_t)round_up_mib(v->bat_entries ? v->bat_entries * 8 : 1);
	v->alloc_end_bytes = v->bat_offset_bytes + v->bat_length_bytes;
	v->file_bytes = v->alloc_end_bytes;
}

static void build_region_table(const struct vhdx *v, uint8_t *t)
{
	struct vhdx_region_table_header_disk *h = (void *)t;
	struct vhdx_region_entry_disk *e = (void *)(t + 16);

	memset(t, 0, VHDX_REGION_TABLE_BYTES);
	memcpy(h->signature, "regi", 4);
	imgfmt_put_le32(h->entry_count, 2);
	memcpy(e[0].guid, &bat_region_guid, 16);
	imgfmt_put_le64(e[0].file_offset, v->bat_offset_bytes);
	imgfmt_put_le32(e[0].length, v->bat_length_bytes);
	imgfmt_put_le32(e[0].flags, 1);
	memcpy(e[1].guid, &meta_region_guid, 16);
	imgfmt_put_le64(e[1].file_offset, v->meta_offset_bytes);
	imgfmt_put_le32(e[1].length, v->meta_length_bytes);
	imgfmt_put_le32(e[1].flags, 1);
	imgfmt_put_le32(h->checksum, imgfmt_crc32c(0, t, VHDX_REGION_TABLE_BYTES));
}

static void build_file_id(uint8_t *buf)
{
	const char *c = CREATOR;

	memset(buf, 0, VHDX_KIB64);
	memcpy(buf, "vhdxfile", 8);
	for (size_t i = 0; c[i]; i++)
		imgfmt_put_le16(buf + 8 + 2 * i, (uint16_t)c[i]);
}

/* File identifier, both region tables and the metadata region. */
static int write_structures(struct imgfmt_image *img, struct vhdx *v)
{
	uint8_t *buf = malloc(VHDX_MIB);
	int r;

	if (!buf)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	/* Only the used 4 KiB pages are written: the rest stays a hole. */
	build_file_id(buf);
	r = imgfmt_fd_pwrite(img->fd, buf, 4096, 0);
	build_region_table(v, buf);
	for (unsigned copy = 0; copy < 2 && r == 0; copy++)
		r = imgfmt_fd_pwrite(img->fd, buf, VHDX_REGION_TABLE_BYTES, REGION_TABLE_OFF(copy));
	vhdx_build_metadata(v, img->size_bytes, buf);
	v->size_item_offset = v->meta_offset_bytes + VHDX_META_TABLE_BYTES + 8; /* as built */
	if (r == 0)
		r = imgfmt_fd_pwrite(img->fd, buf, 4096, v->meta_offset_bytes);
	if (r == 0)
		r = imgfmt_fd_pwrite(img->fd, buf + VHDX_META_TABLE_BYTES, 4096,
				     v->meta_offset_bytes + VHDX_META_TABLE_BYTES);
	free(buf);
	if (r < 0)
		return imgfmt_err(img, r, "%s: writing the image structures: %s", img->path,
				  strerror(-r));
	return 0;
}

static int create_state(struct imgfmt_image *img, struct vhdx *v, uint64_t size_bytes)
{
	int r = guid_random(img, &v->file_write_guid);

	if (r == 0)
		r = guid_random(img, &v->data_write_guid);
	if (r == 0)
		r = guid_random(img, &v->page83);
	if (r < 0)
		return r;
	img->size_bytes = size_bytes;
	lay_out(v, size_bytes);
	v->bat = calloc(v->bat_entries ? v->bat_entries : 1, 8);
	if (!v->bat)
		return imgfmt_err(img, -ENOMEM, "out of memory for a BAT of %llu entries",
				  (unsigned long long)v->bat_entries);
	if (v->leave_blocks_allocated)
		allocate_all(v);
	v->bat_dirty = true;
	snprintf(v->creator, sizeof(v->creator), "%s", CREATOR);
	return 0;
}

/* Headers, log, metadata and BAT as lay_out() places them, then a block
 * for each one the data touches (all of them when fixed). */
static int vhdx_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
			struct imgfmt_image *src, struct imgfmt_measure *m)
{
	struct vhdx v = { 0 };
	uint64_t data;
	int r;

	take_options(&v, ov, size);
	size = imgfmt_div_round_up(size, v.logical_sector_bytes) * v.logical_sector_bytes;
	if (size > VHDX_MAX_DISK_BYTES)
		return imgfmt_err(img, -EINVAL, "VHDX images are at most 64 TiB, not %llu bytes",
				  (unsigned long long)size);
	lay_out(&v, size);
	if ((r = imgfmt_measure_data(img, src, v.block_bytes, &data)) < 0)
		return r;
	m->fully_allocated_bytes = v.alloc_end_bytes + v.data_blocks * v.block_bytes;
	m->required_bytes = v.leave_blocks_allocated ? m->fully_allocated_bytes : v.alloc_end_bytes + data;
	return 0;
}

static int vhdx_create(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *opts)
{
	struct vhdx *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	img->priv = v;
	v->bitmap_chunk = UINT64_MAX;
	take_options(v, opts, size_bytes);
	size_bytes = imgfmt_div_round_up(size_bytes, v->logical_sector_bytes) * v->logical_sector_bytes;
	if (size_bytes > VHDX_MAX_DISK_BYTES)
		return imgfmt_err(img, -EINVAL, "VHDX images are at most 64 TiB, not %llu bytes",
				  (unsigned long long)size_bytes);
	r = create_state(img, v, size_bytes);
	if (r == 0)
		r = write_structures(img, v);
	if (r == 0)
		r = extend_file(img, v);
	if (r == 0)
		r = write_bat(img, v);
	if (r == 0)
		r = write_headers(img, v);
	img->cluster_bytes = v->block_bytes;
	v->data_written = true; /* GUIDs are fresh; finish bumps the sequence */
	return r;
}

/* ---- description ---- */

static const char *subformat_of(const struct vhdx *v)
{
	return v->has_parent ? "differencing" : v->leave_blocks_allocated ? "fixed" : "dynamic";
}

static int vhdx_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct vhdx *v = V(img);
	char g[VHDX_GUID_STR_BYTES];

	snprintf(info->subformat, sizeof(info->subformat), "%s", subformat_of(v));
	imgfmt_info_add(info, "block-size", true, "%u", v->block_bytes);
	imgfmt_info_add(info, "logical-sector-size", true, "%u", v->logical_sector_bytes);
	imgfmt_info_add(info, "physical-sector-size", true, "%u", v->physical_sector_bytes);
	imgfmt_info_add(info, "log-size", true, "%u", v->log_length_bytes);
	imgfmt_info_add(info, "log", false, "%s", v->log_replayed ? "replayed in memory" : "empty");
	imgfmt_info_add(info, "creator", false, "%s", v->creator);
	vhdx_guid_format(&v->page83, g);
	imgfmt_info_add(info, "page83", false, "%s", g);
	vhdx_guid_format(&v->data_write_guid, g);
	imgfmt_info_add(info, "data-write-guid", false, "%s", g);
	imgfmt_info_add(info, "header-sequence", true, "%llu", (unsigned long long)v->sequence_number);
	if (v->has_parent) {
		snprintf(info->backing_file, sizeof(info->backing_file), "%s",
			 v->parent_relative[0] ? v->parent_relative : v->parent_absolute);
		snprintf(info->backing_format, sizeof(info->backing_format), "vhdx");
	}
	return 0;
}

/* Mark MiBs [first, first + n) used; true if one of them already was. */
static bool mark_mibs(uint8_t *used, uint64_t first, uint64_t n)
{
	bool clash = false;

	for (uint64_t m = first; m < first + n; m++) {
		clash |= (used[m / 8] >> (m % 8)) & 1u;
		used[m / 8] |= (uint8_t)(1u << (m % 8));
	}
	return clash;
}

static void report_clash(struct imgfmt_check *res, uint64_t block, uint64_t off)
{
	char msg[160];

	res->errors++;
	if (!res->report)
		return;
	snprintf(msg, sizeof(msg), "payload block %llu at file offset %llu overlaps another block",
		 (unsigned long long)block, (unsigned long long)off);
	res->report(res->report_opaque, msg);
}

/* Payload blocks sharing file space are errors.  One bit per file MiB: the
 * work is bounded by the disk size in MiB, the memory by the file size. */
static int vhdx_check(struct imgfmt_image *img, struct imgfmt_check *res)
{
	struct vhdx *v = V(img);
	uint64_t mibs = imgfmt_div_round_up(v->alloc_end_bytes, VHDX_MIB);
	uint8_t *used = calloc(imgfmt_div_round_up(mibs, 8) + 1, 1);

	if (!used)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	res->total_clusters = v->data_blocks;
	for (uint64_t b = 0; b < v->data_blocks; b++) {
		uint64_t e = v->bat[bat_index(v, b)];
		unsigned st = VHDX_BAT_STATE(e);
		if (st != VHDX_PAYLOAD_FULLY_PRESENT && st != VHDX_PAYLOAD_PARTIALLY_PRESENT)
			continue;
		res->allocated_clusters++;
		if (mark_mibs(used, VHDX_BAT_OFFSET_BYTES(e) / VHDX_MIB, v->block_bytes / VHDX_MIB))
			report_clash(res, b, VHDX_BAT_OFFSET_BYTES(e));
	}
	free(used);
	return 0;
}

static const char *const vhdx_magic[] = { "vhdxfile", NULL };

const struct imgfmt_driver imgfmt_vhdx_driver = {
	.name = "vhdx",
	.description = "Hyper-V VHDX (fixed, dynamic; differencing read-only)",
	.magic = vhdx_magic,
	.probe = vhdx_probe,
	.open = vhdx_open,
	.create_opts = vhdx_create_opts,
	.create = vhdx_create,
	.measure = vhdx_measure,
	.pread = vhdx_pread,
	.pwrite = vhdx_pwrite,
	.write_zeroes = vhdx_write_zeroes,
	.block_status = vhdx_block_status,
	.flush = vhdx_flush,
	.finish = vhdx_finish,
	.close = vhdx_close,
	.info = vhdx_info,
	.resize = vhdx_resize,
	.check = vhdx_check,
};
