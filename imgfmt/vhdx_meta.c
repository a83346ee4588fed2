/* vhdx: the metadata region (file parameters, disk size, sector sizes,
 * page 83 data, parent locator), read from hostile bytes and built for new
 * images. */
#include "vhdx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static const struct vhdx_guid file_params_guid =
	VHDX_GUID(0xCAA16737, 0xFA36, 0x4D43, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B);
static const struct vhdx_guid disk_size_guid =
	VHDX_GUID(0x2FA54224, 0xCD1B, 0x4876, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8);
static const struct vhdx_guid page83_guid =
	VHDX_GUID(0xBECA12AB, 0xB2E6, 0x4523, 0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46);
static const struct vhdx_guid logical_sector_guid =
	VHDX_GUID(0x8141BF1D, 0xA96F, 0x4709, 0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F);
static const struct vhdx_guid physical_sector_guid =
	VHDX_GUID(0xCDA348C7, 0x445D, 0x4471, 0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56);
static const struct vhdx_guid parent_locator_guid =
	VHDX_GUID(0xA8D35F2D, 0xB30B, 0x454D, 0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C);
static const struct vhdx_guid vhdx_locator_type_guid =
	VHDX_GUID(0xB04AEFB7, 0xD19E, 0x4A81, 0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13);

enum meta_item { ITEM_PARAMS, ITEM_SIZE, ITEM_PAGE83, ITEM_LSS, ITEM_PSS, ITEM_PARENT, N_ITEMS };

static const struct {
	const struct vhdx_guid *guid;
	const char *name;
	uint32_t min_bytes;
} items[N_ITEMS] = {
	[ITEM_PARAMS] = { &file_params_guid, "file parameters", 8 },
	[ITEM_SIZE] = { &disk_size_guid, "virtual disk size", 8 },
	[ITEM_PAGE83] = { &page83_guid, "page 83 data", 16 },
	[ITEM_LSS] = { &logical_sector_guid, "logical sector size", 4 },
	[ITEM_PSS] = { &physical_sector_guid, "physical sector size", 4 },
	[ITEM_PARENT] = { &parent_locator_guid, "parent locator", 20 },
};

struct meta_entry {
	struct vhdx_guid id;
	uint32_t offset_bytes, length_bytes, flags;
};

struct meta_ctx {
	struct imgfmt_image *img;
	struct vhdx *v;
	uint8_t *table;               /* the 64 KiB table */
	struct meta_entry *entries;
	unsigned n_entries;
	int found[N_ITEMS];           /* entry index or -1 */
};

static int item_of(const struct vhdx_guid *id)
{
	for (int i = 0; i < N_ITEMS; i++)
		if (!memcmp(id, items[i].guid, sizeof(*id)))
			return i;
	return -1;
}

static void decode_entry(const uint8_t *raw, struct meta_entry *e)
{
	const struct vhdx_meta_entry_disk *d = (const void *)raw;

	memcpy(e->id.b, d->item_id, 16);
	e->offset_bytes = imgfmt_get_le32(d->offset);
	e->length_bytes = imgfmt_get_le32(d->length);
	e->flags = imgfmt_get_le32(d->flags);
}

/* Entry i lies inside the region, past the table, and overlaps no earlier one. */
static int check_entry_range(struct meta_ctx *c, unsigned i)
{
	const struct meta_entry *e = &c->entries[i];
	char g[VHDX_GUID_STR_BYTES];

	vhdx_guid_format(&e->id, g);
	if (e->length_bytes == 0)
		return 0;
	if (e->length_bytes > VHDX_META_ITEM_MAX_BYTES || e->offset_bytes < VHDX_META_TABLE_BYTES ||
	    (uint64_t)e->offset_bytes + e->length_bytes > c->v->meta_length_bytes)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: metadata entry %u (%s) offset %u length %u is outside the metadata region of %u bytes",
				  c->img->path, i, g, e->offset_bytes, e->length_bytes,
				  c->v->meta_length_bytes);
	for (unsigned j = 0; j < i; j++) {
		const struct meta_entry *o = &c->entries[j];
		if (o->length_bytes && e->offset_bytes < o->offset_bytes + o->length_bytes &&
		    o->offset_bytes < e->offset_bytes + e->length_bytes)
			return imgfmt_err(c->img, -EINVAL,
					  "%s: metadata entry %u (%s) at offset %u overlaps entry %u at offset %u",
					  c->img->path, i, g, e->offset_bytes, j, o->offset_bytes);
	}
	return 0;
}

static int classify_entry(struct meta_ctx *c, unsigned i)
{
	const struct meta_entry *e = &c->entries[i];
	int item = item_of(&e->id);
	char g[VHDX_GUID_STR_BYTES];

	vhdx_guid_format(&e->id, g);
	if (item < 0 || (e->flags & VHDX_META_IS_USER)) {
		if (e->flags & VHDX_META_IS_REQUIRED)
			return imgfmt_err(c->img, -ENOTSUP,
					  "%s: metadata entry %u has unknown required item %s",
					  c->img->path, i, g);
		return 0;
	}
	if (c->found[item] >= 0)
		return imgfmt_err(c->img, -EINVAL, "%s: metadata item %s (%s) appears twice",
				  c->img->path, items[item].name, g);
	if (e->length_bytes < items[item].min_bytes)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: metadata item %s is %u bytes, needs at least %u",
				  c->img->path, items[item].name, e->length_bytes,
				  items[item].min_bytes);
	c->found[item] = (int)i;
	return 0;
}

static int read_table(struct meta_ctx *c)
{
	const struct vhdx_meta_header_disk *h;
	int r = vhdx_file_pread(c->img, c->table, VHDX_META_TABLE_BYTES, c->v->meta_offset_bytes);

	if (r < 0)
		return imgfmt_err(c->img, r, "%s: reading the metadata table: %s", c->img->path,
				  strerror(-r));
	h = (const void *)c->table;
	if (memcmp(h->signature, "metadata", 8))
		return imgfmt_err(c->img, -EINVAL, "%s: metadata table signature is not \"metadata\"",
				  c->img->path);
	c->n_entries = imgfmt_get_le16(h->entry_count);
	if (c->n_entries > VHDX_META_MAX_ENTRIES)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: metadata table entry count %u exceeds the maximum %u",
				  c->img->path, c->n_entries, VHDX_META_MAX_ENTRIES);
	return 0;
}

static int parse_table(struct meta_ctx *c)
{
	int r = read_table(c);

	if (r < 0)
		return r;
	c->entries = calloc(c->n_entries ? c->n_entries : 1, sizeof(*c->entries));
	if (!c->entries)
		return imgfmt_err(c->img, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < c->n_entries && r == 0; i++) {
		decode_entry(c->table + 32 + 32 * (size_t)i, &c->entries[i]);
		r = check_entry_range(c, i);
		if (r == 0)
			r = classify_entry(c, i);
	}
	return r;
}

/* Copy item `item` (its first want bytes) into out; the range was checked. */
static int read_item(struct meta_ctx *c, int item, void *out, uint32_t want)
{
	const struct meta_entry *e = &c->entries[c->found[item]];
	int r = vhdx_file_pread(c->img, out, want, c->v->meta_offset_bytes + e->offset_bytes);

	if (r < 0)
		return imgfmt_err(c->img, r, "%s: reading metadata item %s: %s", c->img->path,
				  items[item].name, strerror(-r));
	return 0;
}

static int require_items(struct meta_ctx *c)
{
	static const int needed[] = { ITEM_PARAMS, ITEM_SIZE, ITEM_LSS, ITEM_PSS };

	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (c->found[needed[i]] < 0)
			return imgfmt_err(c->img, -EINVAL, "%s: metadata item %s is missing",
					  c->img->path, items[needed[i]].name);
	return 0;
}

static int load_params(struct meta_ctx *c)
{
	struct vhdx *v = c->v;
	uint8_t b[8];
	int r = read_item(c, ITEM_PARAMS, b, 8);

	if (r < 0)
		return r;
	v->block_bytes = imgfmt_get_le32(b);
	v->leave_blocks_allocated = imgfmt_get_le32(b + 4) & 1u;
	v->has_parent = imgfmt_get_le32(b + 4) & 2u;
	if (!imgfmt_is_pow2(v->block_bytes) || v->block_bytes < VHDX_MIN_BLOCK_BYTES ||
	    v->block_bytes > VHDX_MAX_BLOCK_BYTES)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: file parameters block size %u is not a power of two from 1 MiB to 256 MiB",
				  c->img->path, v->block_bytes);
	return 0;
}

static int load_sector_size(struct meta_ctx *c, int item, uint32_t *out)
{
	uint8_t b[4];
	int r = read_item(c, item, b, 4);

	if (r < 0)
		return r;
	*out = imgfmt_get_le32(b);
	if (*out != 512 && *out != 4096)
		return imgfmt_err(c->img, -EINVAL, "%s: %s %u is neither 512 nor 4096", c->img->path,
				  items[item].name, *out);
	return 0;
}

static int load_disk_size(struct meta_ctx *c)
{
	uint8_t b[8];
	uint64_t size;
	int r = read_item(c, ITEM_SIZE, b, 8);

	if (r < 0)
		return r;
	size = imgfmt_get_le64(b);
	if (size > VHDX_MAX_DISK_BYTES || size % c->v->logical_sector_bytes)
		return imgfmt_err(c->img, -EINVAL,
				  "%s: virtual disk size %llu is over 64 TiB or not a multiple of the logical sector size %u",
				  c->img->path, (unsigned long long)size, c->v->logical_sector_bytes);
	c->img->size_bytes = size;
	c->v->size_item_offset = c->v->meta_offset_bytes + c->entries[c->found[ITEM_SIZE]].offset_bytes;
	return 0;
}

/* ---- parent locator ---- */

/* UTF-16LE (even length) to UTF-8, NUL-terminated; refuses what does not fit. */
static bool utf16_to_utf8(const uint8_t *in, size_t in_bytes, char *out, size_t out_bytes)
{
	size_t o = 0;

	for (size_t i = 0; i + 1 < in_bytes; i += 2) {
		unsigned ch = imgfmt_get_le16(in + i);
		if (ch == 0 || o + 4 >= out_bytes)
			return false;
		if (ch < 0x80) {
			out[o++] = (char)ch;
		} else if (ch < 0x800) {
			out[o++] = (char)(0xC0 | (ch >> 6));
			out[o++] = (char)(0x80 | (ch & 0x3F));
		} else {
			out[o++] = (char)(0xE0 | (ch >> 12));
			out[o++] = (char)(0x80 | ((ch >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (ch & 0x3F));
		}
	}
	out[o] = 0;
	return true;
}

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" into a GUID; false if malformed. */
static bool parse_guid_string(const char *s, struct vhdx_guid *g)
{
	unsigned v[11];
	int n = 0;

	if (strlen(s) != 38 ||
	    sscanf(s, "{%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x}%n", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &n) != 11 || n != 38)
		return false;
	imgfmt_put_le32(g->b, v[0]);
	imgfmt_put_le16(g->b + 4, (uint16_t)v[1]);
	imgfmt_put_le16(g->b + 6, (uint16_t)v[2]);
	for (int i = 0; i < 8; i++)
		g->b[8 + i] = (uint8_t)v[3 + i];
	return true;
}

static int locator_string(struct meta_ctx *c, const uint8_t *loc, uint32_t loc_bytes,
			  uint32_t off, uint32_t len, char *out, size_t out_bytes)
{
	if (len == 0 || len % 2 || off < 20 || (uint64_t)off + len > loc_bytes ||
	    !utf16_to_utf8(loc + off, len, out, out_bytes))
		return imgfmt_err(c->img, -EINVAL,
				  "%s: parent locator string at offset %u length %u is malformed or outside the %u-byte item",
				  c->img->path, off, len, loc_bytes);
	return 0;
}

static int locator_pair(struct meta_ctx *c, const uint8_t *loc, uint32_t loc_bytes, unsigned i)
{
	const uint8_t *e = loc + 20 + 12 * (size_t)i;
	char key[64], val[1024];
	struct vhdx *v = c->v;
	int r = locator_string(c, loc, loc_bytes, imgfmt_get_le32(e), imgfmt_get_le16(e + 8), key,
			       sizeof(key));

	if (r == 0)
		r = locator_string(c, loc, loc_bytes, imgfmt_get_le32(e + 4),
				   imgfmt_get_le16(e + 10), val, sizeof(val));
	if (r < 0)
		return r;
	if (!strcmp(key, "parent_linkage")) {
		if (!parse_guid_string(val, &v->parent_linkage))
			return imgfmt_err(c->img, -EINVAL, "%s: parent_linkage '%s' is not a GUID",
					  c->img->path, val);
		v->have_parent_linkage = true;
	} else if (!strcmp(key, "relative_path")) {
		snprintf(v->parent_relative, sizeof(v->parent_relative), "%s", val);
	} else if (!strcmp(key, "absolute_win32_path")) {
		snprintf(v->parent_absolute, sizeof(v->parent_absolute), "%s", val);
	} else if (!strcmp(key, "volume_path")) {
		snprintf(v->parent_volume, sizeof(v->parent_volume), "%s", val);
	}
	return 0;
}

static int load_parent_locator(struct meta_ctx *c)
{
	const struct meta_entry *e;
	uint8_t *loc;
	unsigned count;
	int r = 0;

	if (c->found[ITEM_PARENT] < 0)
		return imgfmt_err(c->img, -EINVAL, "%s: differencing image without a parent locator",
				  c->img->path);
	e = &c->entries[c->found[ITEM_PARENT]];
	loc = malloc(e->length_bytes);
	if (!loc)
		return imgfmt_err(c->img, -ENOMEM, "out of memory");
	r = read_item(c, ITEM_PARENT, loc, e->length_bytes);
	count = r == 0 ? imgfmt_get_le16(loc + 18) : 0;
	if (r == 0 && memcmp(loc, &vhdx_locator_type_guid, 16))
		r = imgfmt_err(c->img, -ENOTSUP, "%s: parent locator type is not VHDX", c->img->path);
	if (r == 0 && 20 + 12 * (uint64_t)count > e->length_bytes)
		r = imgfmt_err(c->img, -EINVAL,
			       "%s: parent locator key count %u does not fit its %u bytes",
			       c->img->path, count, e->length_bytes);
	for (unsigned i = 0; r == 0 && i < count; i++)
		r = locator_pair(c, loc, e->length_bytes, i);
	free(loc);
	return r;
}

static int load_values(struct meta_ctx *c)
{
	int r = require_items(c);

	if (r == 0)
		r = load_params(c);
	if (r == 0)
		r = load_sector_size(c, ITEM_LSS, &c->v->logical_sector_bytes);
	if (r == 0)
		r = load_sector_size(c, ITEM_PSS, &c->v->physical_sector_bytes);
	if (r == 0)
		r = load_disk_size(c);
	if (r == 0 && c->found[ITEM_PAGE83] >= 0)
		r = read_item(c, ITEM_PAGE83, c->v->page83.b, 16);
	if (r == 0 && c->v->has_parent)
		r = load_parent_locator(c);
	return r;
}

int vhdx_load_metadata(struct imgfmt_image *img, struct vhdx *v)
{
	struct meta_ctx c = { .img = img, .v = v };
	int r;

	for (int i = 0; i < N_ITEMS; i++)
		c.found[i] = -1;
	c.table = malloc(VHDX_META_TABLE_BYTES);
	if (!c.table)
		return imgfmt_err(img, -ENOMEM, "out of memory");
	r = parse_table(&c);
	if (r == 0)
		r = load_values(&c);
	free(c.entries);
	free(c.table);
	return r;
}

/* ---- building ---- */

static void put_entry(uint8_t *region, unsigned i, int item, uint32_t off, uint32_t len,
		      uint32_t flags)
{
	struct vhdx_meta_entry_disk *d = (void *)(region + 32 + 32 * (size_t)i);

	memcpy(d->item_id, items[item].guid, 16);
	imgfmt_put_le32(d->offset, off);
	imgfmt_put_le32(d->length, len);
	imgfmt_put_le32(d->flags, flags);
}

void vhdx_build_metadata(const struct vhdx *v, uint64_t size_bytes, uint8_t *region)
{
	struct vhdx_meta_header_disk *h = (void *)region;
	const uint32_t base = VHDX_META_TABLE_BYTES, vd = VHDX_META_IS_VIRTUAL_DISK;
	const uint32_t req = VHDX_META_IS_REQUIRED;

	memset(region, 0, v->meta_length_bytes);
	memcpy(h->signature, "metadata", 8);
	imgfmt_put_le16(h->entry_count, 5);
	put_entry(region, 0, ITEM_PARAMS, base, 8, req);
	imgfmt_put_le32(region + base, v->block_bytes);
	imgfmt_put_le32(region + base + 4, v->leave_blocks_allocated ? 1u : 0u);
	put_entry(region, 1, ITEM_SIZE, base + 8, 8, req | vd);
	imgfmt_put_le64(region + base + 8, size_bytes);
	put_entry(region, 2, ITEM_PAGE83, base + 16, 16, req | vd);
	memcpy(region + base + 16, v->page83.b, 16);
	put_entry(region, 3, ITEM_LSS, base + 32, 4, req | vd);
	imgfmt_put_le32(region + base + 32, v->logical_sector_bytes);
	put_entry(region, 4, ITEM_PSS, base + 36, 4, req | vd);
	imgfmt_put_le32(region + base + 36, v->physical_sector_bytes);
}
