/* Partition table and filesystems of the source disk, via libblkid.
 * libblkid reports partition starts and sizes in 512-byte sectors. */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blkid.h>

#include "bootdisk.h"

static void probe_value(blkid_probe pr, const char *name, char *out, size_t out_bytes)
{
	const char *val = NULL;

	out[0] = 0;
	if (blkid_probe_lookup_value(pr, name, &val, NULL) == 0 && val)
		snprintf(out, out_bytes, "%s", val);
}

/* Filesystem type, UUID and label of [start, start+size) of the disk. */
static void probe_fs(struct p2v_disk *d, struct p2v_part *p)
{
	blkid_probe pr = blkid_new_probe();

	if (!pr)
		return;
	if (blkid_probe_set_device(pr, d->fd, (blkid_loff_t)p->start_bytes,
				   (blkid_loff_t)p->size_bytes) == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
						      BLKID_SUBLKS_LABEL);
		blkid_probe_enable_partitions(pr, 0);
		if (blkid_do_safeprobe(pr) == 0) {
			probe_value(pr, "TYPE", p->fs_type, sizeof(p->fs_type));
			probe_value(pr, "UUID", p->uuid, sizeof(p->uuid));
			probe_value(pr, "LABEL", p->label, sizeof(p->label));
		}
	}
	blkid_free_probe(pr);
}

/* One entry of the partition list, range-checked against the disk. */
static int probe_part(struct p2v_disk *d, blkid_partition bp)
{
	struct p2v_part *p = &d->parts[d->n_parts];
	uint64_t start = (uint64_t)blkid_partition_get_start(bp);
	uint64_t size = (uint64_t)blkid_partition_get_size(bp);
	const char *type_str = blkid_partition_get_type_string(bp);

	memset(p, 0, sizeof(*p));
	if (start > d->size_bytes / 512 || size > d->size_bytes / 512 - start)
		return -ERANGE;
	p->number = blkid_partition_get_partno(bp);
	p->start_bytes = start * 512;
	p->size_bytes = size * 512;
	p->is_extended = blkid_partition_is_extended(bp);
	if (type_str)
		snprintf(p->part_type, sizeof(p->part_type), "%s", type_str);
	else
		snprintf(p->part_type, sizeof(p->part_type), "0x%02x", blkid_partition_get_type(bp));
	if (!p->is_extended)
		probe_fs(d, p);
	d->n_parts++;
	return 0;
}

static int probe_table(struct p2v_disk *d, blkid_probe pr, char *err, size_t err_bytes)
{
	blkid_partlist ls = blkid_probe_get_partitions(pr);
	blkid_parttable tab;
	int n;

	if (!ls)
		return 0;
	tab = blkid_partlist_get_table(ls);
	if (tab) {
		snprintf(d->table_type, sizeof(d->table_type), "%s", blkid_parttable_get_type(tab));
		if (blkid_parttable_get_id(tab))
			snprintf(d->table_id, sizeof(d->table_id), "%s", blkid_parttable_get_id(tab));
	}
	n = blkid_partlist_numof_partitions(ls);
	for (int i = 0; i < n; i++) {
		blkid_partition bp = blkid_partlist_get_partition(ls, i);
		if (d->n_parts == P2V_CAPTURE_MAX_PARTS) {
			snprintf(err, err_bytes, "%s: more than %d partitions", d->path, P2V_CAPTURE_MAX_PARTS);
			return -E2BIG;
		}
		if (bp && probe_part(d, bp) < 0) {
			snprintf(err, err_bytes, "%s: partition %d (start %lld, %lld sectors) lies outside the disk of %llu bytes",
				 d->path, blkid_partition_get_partno(bp),
				 (long long)blkid_partition_get_start(bp),
				 (long long)blkid_partition_get_size(bp), (unsigned long long)d->size_bytes);
			return -ERANGE;
		}
	}
	return 0;
}

/* BIOS boot code, the ESP and its EFI binaries (bootdisk.c). */
static int probe_boot(struct p2v_disk *d, char *err, size_t err_bytes)
{
	int r;

	free(d->boot);
	d->boot = calloc(1, sizeof(*d->boot));
	if (!d->boot)
		return -ENOMEM;
	r = p2v_bootdisk_probe(p2v_disk_read, d, d->size_bytes, d->boot);
	if (r < 0)
		snprintf(err, err_bytes, "%s: reading the boot sectors: %s", d->path, strerror(-r));
	return r;
}

int p2v_disk_probe(struct p2v_disk *d, char *err, size_t err_bytes)
{
	blkid_probe pr = blkid_new_probe();
	int r;

	if (!pr)
		return -ENOMEM;
	d->n_parts = 0;
	if (blkid_probe_set_device(pr, d->fd, 0, (blkid_loff_t)d->size_bytes) < 0) {
		snprintf(err, err_bytes, "%s: libblkid cannot probe the device", d->path);
		blkid_free_probe(pr);
		return -EIO;
	}
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	r = probe_table(d, pr, err, err_bytes);
	blkid_free_probe(pr);
	if (r == 0 && d->n_parts == 0 && !d->table_type[0]) {
		/* No partition table: a filesystem on the whole device, if any. */
		struct p2v_part *p = &d->parts[0];
		memset(p, 0, sizeof(*p));
		p->size_bytes = d->size_bytes;
		snprintf(p->part_type, sizeof(p->part_type), "whole-disk");
		probe_fs(d, p);
		if (p->fs_type[0])
			d->n_parts = 1;
	}
	return r < 0 ? r : probe_boot(d, err, err_bytes);
}
