/* vhdx: the log.  A log with a non-zero GUID may hold an active sequence of
 * entries (each valid: signature, CRC-32C, GUID, descriptors and data sectors
 * carrying its sequence number; consecutive sequence numbers running from
 * the newest entry's tail to that entry).  For read-only opens the sequence
 * is replayed into an in-memory overlay (v->patches) that vhdx_file_pread
 * applies; the file is never touched.  Writable opens are refused. */
#include "vhdx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG_MAX_SCAN_BYTES (64u * VHDX_MIB)
#define LOG_MAX_WALK_STEPS (1u << 22)
#define LOG_MAX_FILE_BYTES (1ull << 48)

struct log_entry {
	bool valid;
	uint64_t seq;
	uint32_t len_sectors, tail_sector, n_desc;
	uint64_t flushed_file_offset, last_file_offset;
};

struct log_ctx {
	struct imgfmt_image *img;
	struct vhdx *v;
	uint8_t *log;                 /* the whole log region */
	uint32_t n_sectors;
	uint8_t *entry;               /* one entry, unwrapped */
	struct log_entry *entries;    /* per sector: the entry starting there */
};

/* Copy len_sectors sectors from sector `first`, wrapping around the log. */
static void unwrap(const struct log_ctx *c, uint32_t first, uint32_t len_sectors, uint8_t *out)
{
	for (uint32_t i = 0; i < len_sectors; i++)
		memcpy(out + (size_t)i * VHDX_LOG_SECTOR_BYTES,
		       c->log + (size_t)((first + i) % c->n_sectors) * VHDX_LOG_SECTOR_BYTES,
		       VHDX_LOG_SECTOR_BYTES);
}

static uint32_t desc_sectors(uint32_t n_desc)
{
	return (uint32_t)imgfmt_div_round_up(64 + 32 * (uint64_t)n_desc, VHDX_LOG_SECTOR_BYTES);
}

/* Descriptors and data sectors of the unwrapped entry all carry its sequence. */
static bool descriptors_valid(const struct log_ctx *c, const struct log_entry *e)
{
	uint32_t data = desc_sectors(e->n_desc);

	for (uint32_t i = 0; i < e->n_desc; i++) {
		const struct vhdx_log_descriptor_disk *d = (const void *)(c->entry + 64 + 32 * (size_t)i);
		const struct vhdx_log_data_sector_disk *s;
		if (imgfmt_get_le64(d->sequence_number) != e->seq)
			return false;
		if (!memcmp(d->signature, "zero", 4))
			continue;
		if (memcmp(d->signature, "desc", 4) || data >= e->len_sectors)
			return false;
		s = (const void *)(c->entry + (size_t)data++ * VHDX_LOG_SECTOR_BYTES);
		if (memcmp(s->signature, "data", 4) ||
		    imgfmt_get_le32(s->sequence_high) != (uint32_t)(e->seq >> 32) ||
		    imgfmt_get_le32(s->sequence_low) != (uint32_t)e->seq)
			return false;
	}
	return true;
}

static void parse_entry(struct log_ctx *c, uint32_t sector)
{
	const struct vhdx_log_entry_header_disk *h =
		(const void *)(c->log + (size_t)sector * VHDX_LOG_SECTOR_BYTES);
	struct log_entry *e = &c->entries[sector];
	uint32_t len = imgfmt_get_le32(h->entry_length), tail = imgfmt_get_le32(h->tail), stored;

	e->valid = false;
	e->seq = imgfmt_get_le64(h->sequence_number);
	e->n_desc = imgfmt_get_le32(h->descriptor_count);
	e->flushed_file_offset = imgfmt_get_le64(h->flushed_file_offset);
	e->last_file_offset = imgfmt_get_le64(h->last_file_offset);
	if (memcmp(h->signature, "loge", 4) || memcmp(h->log_guid, c->v->log_guid.b, 16) ||
	    e->seq == 0 || len == 0 || len % VHDX_LOG_SECTOR_BYTES || len > c->v->log_length_bytes ||
	    tail % VHDX_LOG_SECTOR_BYTES || tail >= c->v->log_length_bytes ||
	    e->n_desc > len / 32 || desc_sectors(e->n_desc) > len / VHDX_LOG_SECTOR_BYTES)
		return;
	e->len_sectors = len / VHDX_LOG_SECTOR_BYTES;
	e->tail_sector = tail / VHDX_LOG_SECTOR_BYTES;
	unwrap(c, sector, e->len_sectors, c->entry);
	stored = imgfmt_get_le32(h->checksum);
	memset(c->entry + 4, 0, 4);
	if (imgfmt_crc32c(0, c->entry, len) != stored)
		return;
	e->valid = descriptors_valid(c, e);
}

/* Does the sequence from head's tail run, entry by entry, to head? */
static bool sequence_reaches(const struct log_ctx *c, uint32_t head, uint32_t *steps)
{
	uint32_t pos = c->entries[head].tail_sector;
	const struct log_entry *e = &c->entries[pos];

	if (!e->valid || e->seq > c->entries[head].seq)
		return false;
	for (uint32_t n = 0; n <= c->n_sectors && ++*steps < LOG_MAX_WALK_STEPS; n++) {
		uint32_t next;
		if (pos == head)
			return true;
		next = (pos + e->len_sectors) % c->n_sectors;
		if (!c->entries[next].valid || c->entries[next].seq != e->seq + 1)
			return false;
		pos = next;
		e = &c->entries[pos];
	}
	return false;
}

/* The head of the active sequence: the valid entry with the highest sequence
 * number whose sequence is complete; -1 if the log is empty. */
static int64_t find_head(struct log_ctx *c)
{
	uint64_t tried_below = UINT64_MAX;
	uint32_t steps = 0;

	for (;;) {
		int64_t best = -1;
		for (uint32_t i = 0; i < c->n_sectors; i++)
			if (c->entries[i].valid && c->entries[i].seq < tried_below &&
			    (best < 0 || c->entries[i].seq > c->entries[best].seq))
				best = i;
		if (best < 0 || sequence_reaches(c, (uint32_t)best, &steps))
			return best;
		if (steps >= LOG_MAX_WALK_STEPS)
			return -2;
		tried_below = c->entries[best].seq;
	}
}

static int add_patch(struct log_ctx *c, uint64_t off, uint64_t len, const uint8_t *sector,
		     const struct vhdx_log_descriptor_disk *d)
{
	struct vhdx *v = c->v;
	struct vhdx_patch *p = &v->patches[v->n_patches];

	p->file_off_bytes = off;
	p->len_bytes = len;
	p->data = NULL;
	if (sector) {
		p->data = malloc(VHDX_LOG_SECTOR_BYTES);
		if (!p->data)
			return imgfmt_err(c->img, -ENOMEM, "out of memory");
		memcpy(p->data, d->leading_or_length, 8);
		memcpy(p->data + 8, sector + 8, 4084);
		memcpy(p->data + 4092, d->trailing_bytes, 4);
	}
	v->n_patches++;
	return 0;
}

static int check_descriptor_range(struct log_ctx *c, const struct log_entry *e, uint32_t i,
				  uint64_t off, uint64_t len)
{
	const struct vhdx *v = c->v;

	if (off % VHDX_LOG_SECTOR_BYTES || len % VHDX_LOG_SECTOR_BYTES || len == 0 ||
	    off < VHDX_HEADER_AREA_BYTES || off > e->last_file_offset ||
	    len > e->last_file_offset - off ||
	    (off < v->log_offset_bytes + v->log_length_bytes && v->log_offset_bytes < off + len))
		return imgfmt_err(c->img, -EINVAL,
				  "%s: log entry %llu descriptor %u writes %llu bytes at file offset %llu, outside 1 MiB..%llu or into the log",
				  c->img->path, (unsigned long long)e->seq, i, (unsigned long long)len,
				  (unsigned long long)off, (unsigned long long)e->last_file_offset);
	return 0;
}

static int replay_entry(struct log_ctx *c, uint32_t sector)
{
	const struct log_entry *e = &c->entries[sector];
	uint32_t data = desc_sectors(e->n_desc);
	int r = 0;

	unwrap(c, sector, e->len_sectors, c->entry);
	for (uint32_t i = 0; i < e->n_desc && r == 0; i++) {
		const struct vhdx_log_descriptor_disk *d = (const void *)(c->entry + 64 + 32 * (size_t)i);
		bool zero = !memcmp(d->signature, "zero", 4);
		uint64_t off = imgfmt_get_le64(d->file_offset);
		uint64_t len = zero ? imgfmt_get_le64(d->leading_or_length) : VHDX_LOG_SECTOR_BYTES;
		r = check_descriptor_range(c, e, i, off, len);
		if (r == 0)
			r = add_patch(c, off, len,
				      zero ? NULL : c->entry + (size_t)data++ * VHDX_LOG_SECTOR_BYTES, d);
	}
	return r;
}

static int replay(struct log_ctx *c, uint32_t head)
{
	const struct log_entry *h = &c->entries[head];
	uint32_t pos = h->tail_sector;
	uint64_t n_desc = 0;
	int r = 0;

	if (h->last_file_offset > LOG_MAX_FILE_BYTES || h->flushed_file_offset > h->last_file_offset ||
	    c->v->file_bytes < h->flushed_file_offset)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: log entry %llu: flushed file offset %llu / last file offset %llu do not fit the file of %llu bytes",
				  c->img->path, (unsigned long long)h->seq,
				  (unsigned long long)h->flushed_file_offset,
				  (unsigned long long)h->last_file_offset,
				  (unsigned long long)c->v->file_bytes);
	for (uint32_t p = pos;; p = (p + c->entries[p].len_sectors) % c->n_sectors) {
		n_desc += c->entries[p].n_desc;
		if (p == head)
			break;
	}
	c->v->patches = calloc(n_desc ? n_desc : 1, sizeof(*c->v->patches));
	if (!c->v->patches)
		return imgfmt_err(c->img, -ENOMEM, "out of memory");
	for (;; pos = (pos + c->entries[pos].len_sectors) % c->n_sectors) {
		r = replay_entry(c, pos);
		if (r < 0 || pos == head)
			break;
	}
	if (r == 0 && c->v->file_bytes < h->last_file_offset)
		c->v->file_bytes = h->last_file_offset;
	return r;
}

static int scan(struct log_ctx *c)
{
	struct vhdx *v = c->v;
	int r;

	c->n_sectors = v->log_length_bytes / VHDX_LOG_SECTOR_BYTES;
	c->log = malloc(v->log_length_bytes);
	c->entry = malloc(v->log_length_bytes);
	c->entries = calloc(c->n_sectors, sizeof(*c->entries));
	if (!c->log || !c->entry || !c->entries)
		return imgfmt_err(c->img, -ENOMEM, "out of memory for a log of %u bytes",
				  v->log_length_bytes);
	r = imgfmt_fd_pread(c->img->fd, c->log, v->log_length_bytes, v->log_offset_bytes);
	if (r < 0)
		return imgfmt_err(c->img, r, "%s: reading the log: %s", c->img->path, strerror(-r));
	for (uint32_t i = 0; i < c->n_sectors; i++)
		parse_entry(c, i);
	return 0;
}

static int load(struct log_ctx *c)
{
	int64_t head;
	int r = scan(c);

	if (r < 0)
		return r;
	head = find_head(c);
	if (head == -2)
		return imgfmt_err(c->img, -EINVAL, "%s: log entries form too many candidate sequences",
				  c->img->path);
	if (head < 0)
		return 0; /* no active sequence: the log is empty */
	if (c->img->writable)
		return imgfmt_err(c->img, -EBUSY,
				  "%s: the log holds unreplayed entries (sequence %llu); open it read-only (replayed in memory) or let Hyper-V or qemu replay it",
				  c->img->path, (unsigned long long)c->entries[head].seq);
	r = replay(c, (uint32_t)head);
	if (r == 0) {
		c->v->log_replayed = true;
		imgfmt_warn(c->img, "%s: replayed %zu log writes in memory (the file is unchanged)",
			    c->img->path, c->v->n_patches);
	}
	return r;
}

int vhdx_log_load(struct imgfmt_image *img, struct vhdx *v)
{
	struct log_ctx c = { .img = img, .v = v };
	int r;

	if (vhdx_guid_is_zero(&v->log_guid))
		return 0;
	if (v->log_length_bytes > LOG_MAX_SCAN_BYTES)
		return imgfmt_err(img, -ENOTSUP,
				  "%s: log of %u bytes with GUID set is larger than the %u bytes this reader replays",
				  img->path, v->log_length_bytes, LOG_MAX_SCAN_BYTES);
	r = load(&c);
	free(c.log);
	free(c.entry);
	free(c.entries);
	return r;
}

void vhdx_log_free(struct vhdx *v)
{
	for (size_t i = 0; i < v->n_patches; i++)
		free(v->patches[i].data);
	free(v->patches);
	v->patches = NULL;
	v->n_patches = 0;
}
