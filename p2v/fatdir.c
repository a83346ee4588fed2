/* FAT12/16/32 directories, read-only, for the ESP: the fixed root of
 * FAT12/16 or cluster chains, 8.3 names (with the NT lower-case bits) and
 * VFAT long names checked against their short entry's checksum.  Every
 * cluster number is range-checked, a chain is at most as long as the volume
 * has clusters, and a volume's directory reads share one entry budget, so
 * a hostile volume (loops, cross-links) ends. */
#include "bootdisk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

#define FAT_ENTRY_BYTES 32
#define FAT_ATTR_DIR 0x10
#define FAT_ATTR_VOLUME 0x08
#define FAT_ATTR_LFN 0x0f
#define FAT_LFN_CHARS 13
#define FAT_LFN_MAX_SEQ 20
#define FAT_ENTRY_BUDGET (1u << 20)

static int vol_why(struct p2v_fatvol *v, int code, const char *msg, unsigned long long val)
{
	snprintf(v->why, sizeof(v->why), "FAT: %s (%llu)", msg, val);
	return code;
}

int p2v_fatvol_open(struct p2v_fatvol *v, imgfmt_read_fn read, void *opaque,
		    uint64_t part_off_bytes, uint64_t part_bytes)
{
	uint8_t boot[512];
	int r;

	memset(v, 0, sizeof(*v));
	v->read = read;
	v->opaque = opaque;
	v->part_off_bytes = part_off_bytes;
	v->part_bytes = part_bytes;
	v->budget_entries = FAT_ENTRY_BUDGET;
	if (part_bytes < sizeof(boot))
		return vol_why(v, -EINVAL, "partition smaller than a boot sector", part_bytes);
	r = read(opaque, boot, sizeof(boot), part_off_bytes);
	if (r < 0)
		return vol_why(v, r, "reading the boot sector failed", 0);
	return p2v_fat_geom_parse(boot, part_bytes, &v->g, v->why, sizeof(v->why));
}

static bool cluster_ok(const struct p2v_fatvol *v, uint64_t cl)
{
	return cl >= 2 && cl < v->g.n_clusters + 2;
}

/* The FAT entry of cluster cl (from the first FAT). */
static int next_cluster(struct p2v_fatvol *v, uint32_t cl, uint32_t *next)
{
	uint64_t fat_off = v->part_off_bytes + v->g.reserved_sectors * v->g.sector_bytes;
	uint64_t at = v->g.bits == 32 ? (uint64_t)cl * 4 : v->g.bits == 16 ? (uint64_t)cl * 2
									: (uint64_t)cl * 3 / 2;
	uint8_t buf[4] = { 0 };
	int r = v->read(v->opaque, buf, v->g.bits == 32 ? 4 : 2, fat_off + at);

	if (r < 0)
		return vol_why(v, r, "reading the FAT failed at cluster", cl);
	if (v->g.bits == 32)
		*next = imgfmt_get_le32(buf) & 0x0fffffffu;
	else if (v->g.bits == 16)
		*next = imgfmt_get_le16(buf);
	else
		*next = cl & 1 ? imgfmt_get_le16(buf) >> 4 : imgfmt_get_le16(buf) & 0xfffu;
	return 0;
}

static bool end_of_chain(const struct p2v_fatvol *v, uint32_t e)
{
	return v->g.bits == 32 ? e >= 0x0ffffff8u : v->g.bits == 16 ? e >= 0xfff8u : e >= 0xff8u;
}

/* Long-name pieces collected ahead of their short entry. */
struct lfn_state {
	uint16_t ch[FAT_LFN_MAX_SEQ * FAT_LFN_CHARS];
	unsigned seen_mask;      /* bit n: piece n+1 seen */
	unsigned count;          /* pieces the first (last-flagged) entry announced */
	uint8_t checksum;
};

static void lfn_piece(struct lfn_state *l, const uint8_t *e)
{
	static const uint8_t offs[FAT_LFN_CHARS] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
	unsigned seq = e[0] & 0x1f;

	if (seq == 0 || seq > FAT_LFN_MAX_SEQ) {
		l->count = 0;
		return;
	}
	if (e[0] & 0x40) { /* the last piece comes first */
		memset(l, 0, sizeof(*l));
		l->count = seq;
		l->checksum = e[13];
	} else if (!l->count || e[13] != l->checksum || seq >= l->count) {
		l->count = 0;
		return;
	}
	for (unsigned i = 0; i < FAT_LFN_CHARS; i++)
		l->ch[(seq - 1) * FAT_LFN_CHARS + i] = imgfmt_get_le16(e + offs[i]);
	l->seen_mask |= 1u << (seq - 1);
}

static uint8_t short_checksum(const uint8_t *name11)
{
	uint8_t sum = 0;

	for (unsigned i = 0; i < 11; i++)
		sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name11[i]);
	return sum;
}

/* The long name as UTF-8 when every piece is there and matches; false otherwise. */
static bool lfn_name(const struct lfn_state *l, const uint8_t *short_entry, char *out, size_t out_bytes)
{
	size_t o = 0;

	if (!l->count || l->seen_mask != (1u << l->count) - 1 || l->checksum != short_checksum(short_entry))
		return false;
	for (unsigned i = 0; i < l->count * FAT_LFN_CHARS; i++) {
		uint16_t c = l->ch[i];
		if (c == 0 || c == 0xffff)
			break;
		if (o + 4 >= out_bytes)
			return false;
		if (c < 0x80) {
			out[o++] = (char)c;
		} else if (c < 0x800) {
			out[o++] = (char)(0xc0 | c >> 6);
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else {
			out[o++] = (char)(0xe0 | c >> 12);
			out[o++] = (char)(0x80 | (c >> 6 & 0x3f));
			out[o++] = (char)(0x80 | (c & 0x3f));
		}
	}
	out[o] = '\0';
	return o > 0;
}

/* "GRUBX64 EFI" -> "GRUBX64.EFI" (or "grubx64.efi" with the NT case bits). */
static void short_name(const uint8_t *e, char *out)
{
	size_t o = 0;
	bool lower_base = e[12] & 0x08, lower_ext = e[12] & 0x10;

	for (unsigned i = 0; i < 8 && e[i] != ' '; i++) {
		char c = (char)(i == 0 && e[0] == 0x05 ? 0xe5 : e[i]);
		out[o++] = lower_base && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	if (e[8] != ' ')
		out[o++] = '.';
	for (unsigned i = 8; i < 11 && e[i] != ' '; i++)
		out[o++] = lower_ext && e[i] >= 'A' && e[i] <= 'Z' ? (char)(e[i] + 32) : (char)e[i];
	out[o] = '\0';
}

struct walk {
	struct lfn_state lfn;
	p2v_fat_dirent_fn fn;
	void *opaque;
	bool done;
};

/* One 32-byte entry; > 0 at the end of the directory (w->done) or when fn stops. */
static int one_entry(struct p2v_fatvol *v, struct walk *w, const uint8_t *e)
{
	struct p2v_fat_dirent d;
	uint8_t attr = e[11];

	if (e[0] == 0) {
		w->done = true;
		return 1;
	}
	if (v->budget_entries == 0)
		return vol_why(v, -ELOOP, "more directory entries than any volume holds", FAT_ENTRY_BUDGET);
	v->budget_entries--;
	if (e[0] == 0xe5) {
		w->lfn.count = 0;
		return 0;
	}
	if ((attr & 0x3f) == FAT_ATTR_LFN) {
		lfn_piece(&w->lfn, e);
		return 0;
	}
	if (attr & FAT_ATTR_VOLUME || e[0] == '.') {
		w->lfn.count = 0;
		return 0;
	}
	memset(&d, 0, sizeof(d));
	if (!lfn_name(&w->lfn, e, d.name, sizeof(d.name)))
		short_name(e, d.name);
	w->lfn.count = 0;
	d.is_dir = attr & FAT_ATTR_DIR;
	d.first_cluster = (uint32_t)imgfmt_get_le16(e + 26) |
			  (v->g.bits == 32 ? (uint32_t)imgfmt_get_le16(e + 20) << 16 : 0);
	d.size_bytes = imgfmt_get_le32(e + 28);
	return w->fn(w->opaque, &d);
}

/* Entries of one run of bytes read from the volume. */
static int walk_bytes(struct p2v_fatvol *v, struct walk *w, uint64_t off, uint64_t len)
{
	uint8_t buf[4096];

	while (len > 0) {
		uint64_t n = len < sizeof(buf) ? len : sizeof(buf);
		int r = v->read(v->opaque, buf, n, v->part_off_bytes + off);
		if (r < 0)
			return vol_why(v, r, "reading a directory failed at byte", off);
		for (uint64_t i = 0; i + FAT_ENTRY_BYTES <= n; i += FAT_ENTRY_BYTES)
			if ((r = one_entry(v, w, buf + i)) != 0)
				return r;
		off += n;
		len -= n;
	}
	return 0;
}

int p2v_fatvol_list(struct p2v_fatvol *v, uint32_t dir_cluster, p2v_fat_dirent_fn fn, void *opaque)
{
	struct walk w = { .fn = fn, .opaque = opaque };
	uint32_t cl = dir_cluster;
	int r;

	if (cl == 0 && v->g.bits != 32) {
		r = walk_bytes(v, &w, (v->g.reserved_sectors + v->g.n_fats * v->g.fat_sectors) *
			       v->g.sector_bytes, v->g.root_dir_sectors * v->g.sector_bytes);
		return w.done ? 0 : r;
	}
	if (cl == 0)
		cl = v->g.root_cluster;
	for (uint64_t hops = 0; hops <= v->g.n_clusters; hops++) {
		if (!cluster_ok(v, cl))
			return vol_why(v, -EINVAL, "directory cluster outside the volume", cl);
		r = walk_bytes(v, &w, v->g.data_start_bytes + (uint64_t)(cl - 2) * v->g.cluster_bytes,
			       v->g.cluster_bytes);
		if (r != 0)
			return w.done ? 0 : r;
		if ((r = next_cluster(v, cl, &cl)) < 0)
			return r;
		if (end_of_chain(v, cl))
			return 0;
	}
	return vol_why(v, -ELOOP, "directory cluster chain longer than the volume", v->g.n_clusters);
}

struct find {
	const char *name;
	struct p2v_fat_dirent *out;
};

static int find_one(void *opaque, const struct p2v_fat_dirent *e)
{
	struct find *f = opaque;

	if (strcasecmp(e->name, f->name) != 0)
		return 0;
	*f->out = *e;
	return 2;
}

int p2v_fatvol_find(struct p2v_fatvol *v, uint32_t dir_cluster, const char *name,
		    struct p2v_fat_dirent *out)
{
	struct find f = { name, out };
	int r = p2v_fatvol_list(v, dir_cluster, find_one, &f);

	return r == 2 ? 0 : r < 0 ? r : -ENOENT;
}
