/* The capture plan: for each partition, how it is copied and why, and the
 * map of disk ranges to read.  Everything outside the data partitions
 * (partition tables, the MBR gap and boot code, EBRs, the GPT backup, space
 * between partitions) is always copied. */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

typedef int (*fsmap_fn)(struct p2v_fsmap_ctx *);

static fsmap_fn fsmap_for(const char *fs_type)
{
	static const struct {
		const char *type;
		fsmap_fn fn;
	} readers[] = {
		{ "ext2", p2v_fsmap_ext }, { "ext3", p2v_fsmap_ext }, { "ext4", p2v_fsmap_ext },
		{ "vfat", p2v_fsmap_fat }, { "msdos", p2v_fsmap_fat }, { "ntfs", p2v_fsmap_ntfs },
		{ "swap", p2v_fsmap_swap },
	};

	for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++)
		if (!strcmp(fs_type, readers[i].type))
			return readers[i].fn;
	return NULL;
}

static int plan_all(struct p2v_part *p, struct p2v_rangemap *used, bool warn, const char *why)
{
	p->method = P2V_METHOD_ALL;
	p->copy_bytes = p->size_bytes;
	p->warn = warn;
	snprintf(p->why, sizeof(p->why), "%s", why);
	return p2v_rangemap_add(used, p->start_bytes, p->size_bytes);
}

/* Runs the filesystem's reader into a private map; merges it on success. */
static int plan_fs(struct p2v_disk *d, struct p2v_part *p, struct p2v_rangemap *used)
{
	fsmap_fn fn = fsmap_for(p->fs_type);
	struct p2v_rangemap m;
	struct p2v_fsmap_ctx ctx = {
		.read = p2v_disk_read, .read_opaque = d, .disk_path = d->path, .remote = d->img != NULL,
		.part_off_bytes = p->start_bytes, .part_bytes = p->size_bytes, .map = &m,
	};
	int r;

	p2v_rangemap_init(&m);
	r = fn(&ctx);
	if (r == -ENOMEM) {
		p2v_rangemap_free(&m);
		return r;
	}
	if (r < 0) {
		p2v_rangemap_free(&m);
		char why[sizeof(p->why)];
		snprintf(why, sizeof(why), "%.200s: bitmap not used, copying every sector", ctx.why);
		return plan_all(p, used, true, why);
	}
	p2v_rangemap_normalize(&m);
	p->method = fn == p2v_fsmap_swap ? P2V_METHOD_HEADER : P2V_METHOD_USED;
	p->fs_used_bytes = ctx.used_bytes;
	p->copy_bytes = p2v_rangemap_bytes(&m);
	snprintf(p->why, sizeof(p->why), "%s", fn == p2v_fsmap_swap ?
		 "swap: only the header page; the rest becomes a hole" :
		 "allocated blocks from the filesystem's bitmap; free blocks become holes");
	for (size_t i = 0; i < m.n && r == 0; i++)
		r = p2v_rangemap_add(used, m.v[i].off_bytes, m.v[i].len_bytes);
	p2v_rangemap_free(&m);
	return r;
}

static int plan_part(struct p2v_disk *d, struct p2v_part *p, bool all_blocks,
		     struct p2v_rangemap *used)
{
	if (p->is_extended) {
		p->method = P2V_METHOD_CONTAINER;
		snprintf(p->why, sizeof(p->why),
			 "extended partition: its EBRs and gaps are copied, its logical partitions each by their own method");
		return 0;
	}
	char why[sizeof(p->why)];

	if (all_blocks)
		return plan_all(p, used, false, "--all-blocks: every sector");
	if (!p->fs_type[0])
		return plan_all(p, used, false, "no filesystem recognized: every sector, zeroes detected");
	if (!fsmap_for(p->fs_type)) {
		snprintf(why, sizeof(why), "%s '%s' has no used-block reader here: every sector, zeroes detected",
			 strcmp(p->fs_type, "swsuspend") ? "filesystem" :
			 "swap holding a hibernation image", p->fs_type);
		return plan_all(p, used, false, why);
	}
	return plan_fs(d, p, used);
}

/* Everything not inside a non-extended partition. */
static int plan_outside(const struct p2v_disk *d, struct p2v_rangemap *used)
{
	struct p2v_rangemap parts;
	uint64_t pos = 0;
	int r = 0;

	p2v_rangemap_init(&parts);
	for (unsigned i = 0; i < d->n_parts && r == 0; i++)
		if (!d->parts[i].is_extended)
			r = p2v_rangemap_add(&parts, d->parts[i].start_bytes, d->parts[i].size_bytes);
	p2v_rangemap_normalize(&parts);
	for (size_t i = 0; i < parts.n && r == 0; i++) {
		r = p2v_rangemap_add(used, pos, parts.v[i].off_bytes - pos);
		pos = parts.v[i].off_bytes + parts.v[i].len_bytes;
	}
	if (r == 0 && pos < d->size_bytes)
		r = p2v_rangemap_add(used, pos, d->size_bytes - pos);
	p2v_rangemap_free(&parts);
	return r;
}

int p2v_disk_plan(struct p2v_disk *d, bool all_blocks, struct p2v_rangemap *used)
{
	int r = 0;

	if (all_blocks)
		r = p2v_rangemap_add(used, 0, d->size_bytes);
	else
		r = plan_outside(d, used);
	for (unsigned i = 0; i < d->n_parts && r == 0; i++)
		r = plan_part(d, &d->parts[i], all_blocks, used);
	p2v_rangemap_normalize(used);
	return r;
}
