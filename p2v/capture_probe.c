/* Partition table and filesystems of the source disk, via libblkid.
 * libblkid reports partition starts and sizes in 512-byte sectors.
 *
 * libblkid reads only through a file descriptor (no public buffer API).
 * For an NBD source it probes a sparse memfd the size of the disk into
 * which the bytes it looks at are copied first, read over the same
 * connection: the head and tail windows of the disk (MBR, GPT and its
 * backup) and the EBRs of a DOS extended partition's chain, then for each
 * partition its head and tail windows, punched out
 * again after that partition's probe.  Memory stays under the windows'
 * size whatever the disk; bytes beyond the windows read as zeroes (a
 * label kept deep inside a filesystem, as NTFS's $Volume, may be missed). */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <blkid.h>

#include "bootdisk.h"

static void probe_value(blkid_probe pr, const char *name, char *out, size_t out_bytes)
{
	const char *val = NULL;

	out[0] = 0;
	if (blkid_probe_lookup_value(pr, name, &val, NULL) == 0 && val)
		snprintf(out, out_bytes, "%s", val);
}

enum {
	PROBE_TABLE_WINDOW_BYTES = 1 << 20, /* MBR, GPT; at the end the GPT backup */
	PROBE_HEAD_WINDOW_BYTES = 1 << 20,  /* superblocks, boot sectors */
	PROBE_TAIL_WINDOW_BYTES = 256 << 10, /* md 0.90 / 1.0 superblocks */
};

/* Copies [off, off+len) of the disk into the probe memfd. */
static int window_fill(struct p2v_disk *d, int fd, uint64_t off_bytes, uint64_t len_bytes)
{
	enum { CHUNK_BYTES = 1 << 20 };
	uint8_t *buf = malloc(CHUNK_BYTES);
	int r = buf ? 0 : -ENOMEM;

	while (r == 0 && len_bytes) {
		size_t n = len_bytes < CHUNK_BYTES ? (size_t)len_bytes : CHUNK_BYTES;
		r = p2v_disk_read(d, buf, n, off_bytes);
		if (r == 0 && pwrite(fd, buf, n, (off_t)off_bytes) != (ssize_t)n)
			r = -EIO;
		off_bytes += n;
		len_bytes -= n;
	}
	free(buf);
	return r;
}

/* Head and tail windows of [start, start+size) (each clipped to it). */
static int windows_fill(struct p2v_disk *d, uint64_t start, uint64_t size, uint64_t head_bytes,
			uint64_t tail_bytes)
{
	uint64_t head = size < head_bytes ? size : head_bytes;
	uint64_t tail = size - head < tail_bytes ? size - head : tail_bytes;
	int r = window_fill(d, d->fd, start, head);

	return r < 0 ? r : window_fill(d, d->fd, start + size - tail, tail);
}

static void windows_punch(struct p2v_disk *d, uint64_t start, uint64_t size)
{
	if (size)
		fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)start, (off_t)size);
}

/* Filesystem type, UUID and label of [start, start+size) of the disk. */
static void probe_fs(struct p2v_disk *d, struct p2v_part *p)
{
	blkid_probe pr = blkid_new_probe();

	if (!pr)
		return;
	if (d->img && windows_fill(d, p->start_bytes, p->size_bytes, PROBE_HEAD_WINDOW_BYTES,
				   PROBE_TAIL_WINDOW_BYTES) < 0) {
		blkid_free_probe(pr);
		return;
	}
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
	if (d->img)
		windows_punch(d, p->start_bytes, p->size_bytes);
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

static bool dos_is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

/* The EBR chain of the extended partition at sector ext_lba: each EBR's
 * second entry links the next, relative to ext_lba.  A hostile chain is
 * bounded by the partition limit and by the disk (p2v_disk_read). */
static void fill_ebr_chain(struct p2v_disk *d, uint64_t ext_lba)
{
	uint64_t lba = ext_lba;
	uint8_t ebr[512];

	for (unsigned i = 0; i < P2V_CAPTURE_MAX_PARTS; i++) {
		const uint8_t *e = ebr + 446 + 16;
		uint32_t next;
		if (lba > UINT64_MAX / 512 || window_fill(d, d->fd, lba * 512, 512) < 0 ||
		    pread(d->fd, ebr, 512, (off_t)(lba * 512)) != 512 || ebr[510] != 0x55 || ebr[511] != 0xaa)
			return;
		next = (uint32_t)e[8] | (uint32_t)e[9] << 8 | (uint32_t)e[10] << 16 | (uint32_t)e[11] << 24;
		if (!dos_is_extended(e[4]) || next == 0)
			return;
		lba = ext_lba + next;
	}
}

/* EBRs lie anywhere: copy those of each extended primary into the memfd. */
static void fill_ebrs(struct p2v_disk *d)
{
	uint8_t mbr[512];

	if (pread(d->fd, mbr, 512, 0) != 512 || mbr[510] != 0x55 || mbr[511] != 0xaa)
		return;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;
		uint32_t lba = (uint32_t)e[8] | (uint32_t)e[9] << 8 | (uint32_t)e[10] << 16 |
			       (uint32_t)e[11] << 24;
		if (dos_is_extended(e[4]) && lba)
			fill_ebr_chain(d, lba);
	}
}

/* NBD: d->fd becomes the sparse probe memfd holding the table windows. */
static int probe_memfd_open(struct p2v_disk *d, char *err, size_t err_bytes)
{
	int r;

	d->fd = memfd_create("p2v-probe", MFD_CLOEXEC);
	if (d->fd < 0 || ftruncate(d->fd, (off_t)d->size_bytes) < 0) {
		r = -errno;
		snprintf(err, err_bytes, "%s: probe buffer (memfd of %llu bytes): %s", d->path,
			 (unsigned long long)d->size_bytes, strerror(errno));
		return r;
	}
	r = windows_fill(d, 0, d->size_bytes, PROBE_TABLE_WINDOW_BYTES, PROBE_TAIL_WINDOW_BYTES);
	if (r < 0)
		snprintf(err, err_bytes, "%s: reading the partition table: %s", d->path, strerror(-r));
	else
		fill_ebrs(d);
	return r;
}

static int probe_disk(struct p2v_disk *d, char *err, size_t err_bytes);

int p2v_disk_probe(struct p2v_disk *d, char *err, size_t err_bytes)
{
	int r;

	if (!d->img)
		return probe_disk(d, err, err_bytes);
	r = probe_memfd_open(d, err, err_bytes);
	if (r == 0)
		r = probe_disk(d, err, err_bytes);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	return r;
}

static int probe_disk(struct p2v_disk *d, char *err, size_t err_bytes)
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
