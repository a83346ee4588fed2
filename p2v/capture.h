/* p2v capture: turn a physical disk into an image, copying only what the
 * filesystems use.  Internal interface between cmd_capture.c, the capture
 * pieces (capture_*.c) and the per-filesystem used-block readers (fsmap_*.c).
 *
 * Everything here works on byte offsets of the whole disk; a filesystem
 * reader adds the ranges its partition uses (already shifted by the
 * partition's start) to a range map. */
#ifndef P2V_CAPTURE_H
#define P2V_CAPTURE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "imgfmt.h"

/* ---- range maps ----------------------------------------------------------- */

struct p2v_range {
	uint64_t off_bytes;
	uint64_t len_bytes;
};

/* A set of byte ranges; add in any order, then normalize (sort + merge). */
struct p2v_rangemap {
	struct p2v_range *v;
	size_t n;
	size_t cap;
};

void p2v_rangemap_init(struct p2v_rangemap *m);
void p2v_rangemap_free(struct p2v_rangemap *m);
/* Adds [off, off+len); len 0 is ignored.  -ENOMEM, -ERANGE on overflow. */
int p2v_rangemap_add(struct p2v_rangemap *m, uint64_t off_bytes, uint64_t len_bytes);
/* Sorts and merges overlapping or touching ranges. */
void p2v_rangemap_normalize(struct p2v_rangemap *m);
/* Total bytes (after normalize). */
uint64_t p2v_rangemap_bytes(const struct p2v_rangemap *m);
/* Extents covering [0, disk_bytes): ranges of m (normalized, clipped to the
 * disk and widened to align_bytes) are DATA, the rest HOLE. */
int p2v_rangemap_to_extents(const struct p2v_rangemap *m, uint64_t disk_bytes,
			    uint32_t align_bytes, struct imgfmt_extent **out, size_t *n_out);

/* ---- the source disk ------------------------------------------------------ */

#define P2V_CAPTURE_MAX_PARTS 128

struct p2v_bootdisk; /* bootdisk.h */

enum p2v_copy_method {
	P2V_METHOD_USED,      /* used blocks from the filesystem's bitmap */
	P2V_METHOD_HEADER,    /* swap: only its header page */
	P2V_METHOD_ALL,       /* every sector (unknown or untrusted); zeroes detected */
	P2V_METHOD_CONTAINER, /* extended partition: only what lies outside its logicals */
};

struct p2v_part {
	int number;
	uint64_t start_bytes;
	uint64_t size_bytes;
	bool is_extended;
	char part_type[40];   /* "0x83" or a GPT type GUID */
	char fs_type[32];     /* blkid TYPE, "" when unknown */
	char uuid[64];
	char label[64];
	enum p2v_copy_method method;
	uint64_t copy_bytes;  /* bytes this partition contributes to the copy */
	uint64_t fs_used_bytes; /* bytes the filesystem says are in use (0 unknown) */
	char why[256];        /* why this method (and warnings) */
	bool warn;            /* why is a warning (bitmap untrusted, error) */
};

struct p2v_disk {
	char path[4096];      /* an NBD URI without its query (no credentials) */
	int fd;               /* -1 for an NBD source */
	struct imgfmt_image *img; /* NBD source (libnbd through imgfmt), else NULL */
	bool is_block_device;
	unsigned dev_major, dev_minor;
	uint64_t size_bytes;
	uint32_t logical_sector_bytes;
	uint32_t physical_sector_bytes;
	char model[128];
	char serial[128];
	char table_type[16];  /* "dos", "gpt", "" (none) */
	char table_id[64];
	unsigned n_parts;
	struct p2v_part parts[P2V_CAPTURE_MAX_PARTS];
	struct p2v_bootdisk *boot; /* how it boots (p2v_disk_probe), NULL if not probed */
};

/* Opens SRC read-only (O_EXCL unless shared) and fills identity and sizes;
 * an NBD URI is opened through imgfmt (d->img, d->fd -1). */
int p2v_disk_open(struct p2v_disk *d, const char *path, bool exclusive, char *err,
		  size_t err_bytes);
void p2v_disk_close(struct p2v_disk *d);
/* imgfmt_read_fn over the disk (opaque: the p2v_disk): plain pread, so an
 * unreadable metadata block fails its reader instead of reading as zeroes. */
int p2v_disk_read(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes);
/* Partition table and filesystems via libblkid, then how it boots (->boot). */
int p2v_disk_probe(struct p2v_disk *d, char *err, size_t err_bytes);
/* Decides each partition's method and builds the map of ranges to copy. */
int p2v_disk_plan(struct p2v_disk *d, bool all_blocks, struct p2v_rangemap *used);
const char *p2v_method_name(enum p2v_copy_method m);

/* ---- per-filesystem used-block readers (fsmap_*.c) ------------------------- */

struct p2v_fsmap_ctx {
	imgfmt_read_fn read;       /* reads the whole disk */
	void *read_opaque;
	const char *disk_path;     /* for libraries that open by name */
	bool remote;               /* no local path: libraries read through read only */
	uint64_t part_off_bytes;
	uint64_t part_bytes;
	struct p2v_rangemap *map;  /* receives whole-disk byte ranges */
	uint64_t used_bytes;       /* out: bytes the filesystem uses */
	char why[256];             /* out: on failure, why the bitmap is not used */
};

/* Each returns 0 when ctx->map holds every range the filesystem needs, or
 * -errno with ctx->why set (the caller then copies the whole partition). */
int p2v_fsmap_ext(struct p2v_fsmap_ctx *ctx);
/* libext2fs io_manager whose reads go to ctx->read at the partition's
 * offset (fsmap_extio.c); read-only.  The channel name is made by
 * p2v_extio_name and carries the ctx's address. */
struct struct_io_manager;
extern struct struct_io_manager *const p2v_extio_manager;
void p2v_extio_name(const struct p2v_fsmap_ctx *ctx, char *out, size_t out_bytes);

/* FAT12/16/32 geometry from the boot sector (512 bytes), every field
 * range-checked against the partition (fsmap_fat.c; the ESP reader uses it
 * too).  0, or -EINVAL with why set. */
struct p2v_fat_geom {
	uint32_t sector_bytes;
	uint32_t cluster_bytes;
	uint64_t reserved_sectors;
	uint64_t fat_sectors;        /* one FAT */
	unsigned n_fats;
	uint64_t root_dir_sectors;   /* FAT12/16 fixed root directory */
	uint64_t total_sectors;
	uint64_t data_start_bytes;   /* relative to the partition */
	uint64_t n_clusters;
	unsigned bits;               /* 12, 16 or 32 */
	uint32_t root_cluster;       /* FAT32: first cluster of the root directory */
};
int p2v_fat_geom_parse(const uint8_t *boot, uint64_t part_bytes, struct p2v_fat_geom *g,
		       char *why, size_t why_bytes);
/* Entry idx of a FAT held in memory (the caller keeps idx inside it). */
uint32_t p2v_fat_entry(const uint8_t *fat, unsigned bits, uint64_t idx);
int p2v_fsmap_fat(struct p2v_fsmap_ctx *ctx);
int p2v_fsmap_ntfs(struct p2v_fsmap_ctx *ctx);
int p2v_fsmap_swap(struct p2v_fsmap_ctx *ctx);

/* ---- reading the source with retries ----------------------------------- */

struct p2v_reader {
	int fd;
	struct imgfmt_image *img;     /* when set, reads go here instead of fd */
	int direct_fd;                /* O_DIRECT fd for single-sector reads, or -1 */
	void *bounce;                 /* sector-aligned buffer for direct_fd */
	uint32_t sector_bytes;        /* bisect down to this */
	unsigned retries;
	uint64_t max_errors;          /* 0 = unlimited */
	bool record;                  /* count and record failures (off during verify) */
	pthread_mutex_t lock;
	struct p2v_rangemap lost;     /* sectors that could not be read */
	uint64_t n_errors;            /* failed sector runs */
	struct p2v_range test_bad;    /* P2V_TEST_BAD_SECTORS (bytes), len 0 = none */
};

int p2v_reader_init(struct p2v_reader *r, int fd, uint32_t sector_bytes, uint64_t max_errors);
/* Single-sector retries through an O_DIRECT descriptor on path, so that a bad
 * sector does not take the rest of its page-cache page with it.  Optional:
 * without it (or where O_DIRECT is refused) they go through fd. */
void p2v_reader_use_direct(struct p2v_reader *r, const char *path);
void p2v_reader_destroy(struct p2v_reader *r);
/* imgfmt_read_fn: fills buf; unreadable sectors become zeroes and are
 * recorded; -EIO once more than max_errors failures were seen. */
int p2v_reader_read(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes);

/* ---- consistency: mounts and freezing -------------------------------------- */

struct p2v_mount {
	char mountpoint[1024];
	char source[256];
	unsigned major, minor;
	bool read_write;
	int frozen_fd;      /* >= 0 while frozen */
};

struct p2v_mounts {
	struct p2v_mount *v;
	size_t n;
};

/* Mounts of the disk (dev major:minor) or any of its partitions. */
int p2v_mounts_of_disk(unsigned major, unsigned minor, struct p2v_mounts *out);
void p2v_mounts_free(struct p2v_mounts *m);
/* True when the device dev (a st_dev or st_rdev) is the disk (maj:min) or one
 * of its partitions. */
bool p2v_dev_on_disk(uint64_t dev, unsigned major, unsigned minor);
int p2v_mounts_freeze(struct p2v_mounts *m, char *err, size_t err_bytes);
void p2v_mounts_thaw(struct p2v_mounts *m);

/* ---- reports (capture_report.c) -------------------------------------------- */

struct p2v_capture_result {
	const char *out_path;
	const char *out_format;
	uint64_t allocated_bytes;     /* host bytes the output occupies */
	double wall_s;                /* the whole capture, read-back included */
	double copy_s;                /* the copy alone */
	struct imgfmt_copy_stats stats;
	const struct p2v_rangemap *lost;
	bool have_sha;
	char sha256[65];              /* of the whole virtual disk, read back */
	bool verified;
	uint64_t verify_mismatch_bytes;
	uint64_t verify_first_mismatch;
};

/* The plan (inspect / --dry-run); copy_bytes = the bytes the map selects. */
void p2v_report_plan_human(FILE *f, const struct p2v_disk *d, uint64_t copy_bytes);
/* JSON of the plan, plus the outcome when res is non-NULL. */
void p2v_report_json(FILE *f, const struct p2v_disk *d, uint64_t copy_bytes,
		     const struct p2v_capture_result *res);
/* The summary; quiet: only the lost ranges, as warnings on stderr. */
void p2v_report_result_human(FILE *f, const struct p2v_capture_result *res, bool quiet);

/* Reads the whole image back: SHA-256 into res, and with src (a reader on
 * the source) compares every DATA extent with the source. */
int p2v_capture_readback(struct imgfmt_image *img, struct p2v_reader *src,
			 const struct imgfmt_extent *ext, size_t n_ext,
			 struct p2v_capture_result *res, const volatile sig_atomic_t *cancel);

/* ---- SHA-256 ------------------------------------------------------------------ */

struct p2v_sha256 {
	uint32_t h[8];
	uint64_t len_bytes;
	uint8_t buf[64];
	size_t buf_bytes;
};

void p2v_sha256_init(struct p2v_sha256 *s);
void p2v_sha256_update(struct p2v_sha256 *s, const void *data, size_t len_bytes);
void p2v_sha256_final(struct p2v_sha256 *s, uint8_t out[32]);
void p2v_sha256_hex(const uint8_t dig[32], char out[65]);

#endif
