/* imgfmt — disk image formats: open, probe, read, write, block status, copy.
 *
 * What it offers:
 *  - One handle type (struct imgfmt_image) for raw files and block devices, qcow2,
 *    VHD (vpc), VHDX and VMDK, chosen by probing content (magic), never by name;
 *    raw only for a file with no signature at all, read-only unless named.
 *  - Byte-granular pread/pwrite/write_zeroes, range-checked once in the core.
 *  - Block status (data / zero / hole extents) as a first-class operation.
 *  - Creation under a temporary name, made visible by imgfmt_commit() only.
 *  - A parallel, extent-driven copy engine (imgfmt_copy) with progress callback.
 *
 * Conventions: functions return 0 (or a count) on success and -errno on failure.
 * The message for the most recent failure on a handle is imgfmt_errmsg(img);
 * open/create failures write it into the caller's buffer.  A handle is not
 * thread-safe; the copy engine serializes access to each image itself.
 * No function exits the process or writes to stdout; warnings go through the
 * optional log callback in the open options.
 */
#ifndef IMGFMT_H
#define IMGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMGFMT_SECTOR_BYTES 512u
#define IMGFMT_ERRMSG_BYTES 512u
#define IMGFMT_MAX_BACKING_DEPTH 16

struct imgfmt_image;

/* ---- opening ---------------------------------------------------------- */

enum imgfmt_open_flags {
	IMGFMT_OPEN_RDWR = 1u << 0,        /* open for writing (default read-only) */
	IMGFMT_OPEN_NO_BACKING = 1u << 1,  /* do not open backing files (p2v info) */
	IMGFMT_OPEN_FORCE_SHARE = 1u << 2, /* -U: ignore locks held by others */
	/* With RDWR, for imgfmt_check's repair only: accept an image whose
	 * header says its metadata is stale or corrupt (qcow2 dirty/corrupt
	 * bits), which is otherwise opened read-only or not at all. */
	IMGFMT_OPEN_REPAIR = 1u << 3,
	/* Only the backing files (read-only) ignore locks held by others; the
	 * image itself is locked (rebase -U: a change needs the image's lock). */
	IMGFMT_OPEN_FORCE_SHARE_BACKING = 1u << 4,
	/* Let a plain nbd:// URI name a host other than loopback (the disk
	 * crosses the network unencrypted); refused by default. */
	IMGFMT_OPEN_INSECURE_NBD = 1u << 5,
};

typedef void (*imgfmt_log_fn)(void *opaque, const char *msg);

struct imgfmt_open_opts {
	const char *format;   /* driver name, or NULL to probe */
	unsigned flags;       /* enum imgfmt_open_flags */
	imgfmt_log_fn log;    /* warnings (e.g. "using footer copy"); may be NULL */
	void *log_opaque;
	/* Confinement of the files an image names (backing files, VMDK
	 * extents): each is opened with openat2() beneath the directory of the
	 * image that names it, refusing symbolic links, magic links, FIFOs,
	 * devices and anything that leaves that directory.  The default (all
	 * zero) is confined.  allow_backing: n_allow_backing directories whose
	 * files an absolute or ../ reference may name (still resolved beneath
	 * the directory), or block devices a reference may name exactly;
	 * allow_symlinks: follow symbolic links that stay beneath.  Strings
	 * must stay valid while images are opened. */
	const char *const *allow_backing;
	unsigned n_allow_backing;
	bool allow_symlinks;
};

/* NBD exports: a path that is an NBD URI (nbd://host[:port]/export,
 * nbds:// with TLS, nbd+unix:///export?socket=PATH, as libnbd parses them)
 * opens the export through libnbd (format "nbd": raw content); imgfmt_create
 * on one writes into the existing export, in place (no temporary name), and
 * takes format raw or nbd.  Messages and imgfmt_path() name the URI without
 * its query (where tls-psk-file and other keys are).  An image's backing
 * file can never be a URI. */
bool imgfmt_is_nbd_uri(const char *name);
/* name as messages may show it: an NBD URI without its query; caller frees
 * (NULL: out of memory). */
char *imgfmt_display_name(const char *name);

/* Open an existing image.  opts may be NULL (probe, read-only).  On failure
 * returns -errno and writes a one-line message into err (if non-NULL). */
int imgfmt_open(struct imgfmt_image **out, const char *path,
		const struct imgfmt_open_opts *opts, char *err, size_t err_bytes);

/* Create a new image of size_bytes.  options: "key=val,key=val" as the format
 * accepts (e.g. "cluster_size=64K,compression_type=zstd"), or NULL.  Unknown
 * options are an error.  Unless IMGFMT_CREATE_IN_PLACE is given, the image is
 * written under a temporary name beside path and appears under path only when
 * imgfmt_commit() succeeds; imgfmt_close() without commit removes it.
 * An existing path (a block device too) is refused unless IMGFMT_CREATE_FORCE. */
enum imgfmt_create_flags {
	IMGFMT_CREATE_FORCE = 1u << 0,    /* replace an existing target */
	IMGFMT_CREATE_IN_PLACE = 1u << 1, /* write directly to path (devices) */
	IMGFMT_CREATE_INSECURE_NBD = 1u << 2, /* as IMGFMT_OPEN_INSECURE_NBD */
};
int imgfmt_create(struct imgfmt_image **out, const char *path, const char *format,
		  uint64_t size_bytes, const char *options, unsigned flags,
		  char *err, size_t err_bytes);

/* Finish a writable image: final metadata, fsync, rename into place. */
int imgfmt_commit(struct imgfmt_image *img);

/* Close; a created image that was not committed is removed.  Returns the
 * first error of finishing a writable non-temporary image, else 0. */
int imgfmt_close(struct imgfmt_image *img);

/* ---- I/O ---------------------------------------------------------------- */

int imgfmt_pread(struct imgfmt_image *img, void *buf, uint64_t len_bytes, uint64_t off_bytes);
int imgfmt_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len_bytes, uint64_t off_bytes);
int imgfmt_write_zeroes(struct imgfmt_image *img, uint64_t len_bytes, uint64_t off_bytes);
int imgfmt_flush(struct imgfmt_image *img);

enum imgfmt_extent_type {
	IMGFMT_EXTENT_DATA = 0, /* allocated, must be read */
	IMGFMT_EXTENT_ZERO = 1, /* reads as zeroes (zero cluster / known zero) */
	IMGFMT_EXTENT_HOLE = 2, /* unallocated anywhere in the chain: reads as zeroes */
};

#define IMGFMT_NO_HOST_OFFSET UINT64_MAX

struct imgfmt_extent {
	uint64_t offset_bytes;
	uint64_t length_bytes;
	enum imgfmt_extent_type type;
	/* Which image of the backing chain decided (0: this one, 1: its
	 * backing file, ...); for a HOLE, the last one asked. */
	unsigned depth;
	/* Where the extent's bytes lie in that image's file (VMDK: in its
	 * extent's file), contiguous for the whole extent; IMGFMT_NO_HOST_OFFSET
	 * when they lie nowhere as is (holes, compressed or zero clusters). */
	uint64_t host_offset_bytes;
};

/* Describe the extent that starts at off_bytes, at most len_bytes long.
 * Always fills ext with length_bytes > 0 on success. */
int imgfmt_block_status(struct imgfmt_image *img, uint64_t off_bytes, uint64_t len_bytes,
			struct imgfmt_extent *ext);

/* Compressed writes (qcow2, VMDK streamOptimized).  Images that support them
 * accept whole clusters, written once, in any order. compress is thread-safe
 * and touches no image state; out_cap must be >= cluster bytes.  It returns
 * -ENOSPC when the data does not shrink, in which case the caller writes the
 * cluster uncompressed with imgfmt_pwrite. */
bool imgfmt_can_compress(const struct imgfmt_image *img);
int imgfmt_compress(const struct imgfmt_image *img, const void *in, size_t in_bytes,
		    void *out, size_t out_cap, size_t *out_bytes);
int imgfmt_pwrite_compressed(struct imgfmt_image *img, const void *buf, size_t len_bytes,
			     uint64_t off_bytes);

/* ---- description ---------------------------------------------------------- */

uint64_t imgfmt_size_bytes(const struct imgfmt_image *img);
const char *imgfmt_format(const struct imgfmt_image *img);
const char *imgfmt_path(const struct imgfmt_image *img);
const char *imgfmt_errmsg(const struct imgfmt_image *img);
/* Allocation unit a writer should align to (cluster, grain, block); >= 512. */
uint32_t imgfmt_cluster_bytes(const struct imgfmt_image *img);
/* True for a freshly created image whose unwritten areas read as zeroes. */
bool imgfmt_is_fresh(const struct imgfmt_image *img);

#define IMGFMT_INFO_EXTRA 24
/* A file an image consists of besides its first (VMDK extents). */
struct imgfmt_info_file {
	const char *path;            /* as the image names it */
	const char *type;            /* "SPARSE", "FLAT", ...; "" for the image's own */
	uint64_t virtual_size_bytes;
	uint32_t cluster_bytes;      /* 0 for flat files */
	bool compressed;
};
struct imgfmt_info {
	char format[16];
	char subformat[32];          /* "dynamic", "monolithicSparse", "v3", ... */
	uint64_t virtual_size_bytes;
	uint64_t file_size_bytes;    /* bytes allocated on the host (all files) */
	uint32_t cluster_bytes;      /* 0 when not applicable */
	char backing_file[4096];     /* as recorded in the image; "" for none */
	char backing_format[16];
	bool dirty;                  /* qcow2: the dirty bit (refcounts may be stale) */
	/* Format-specific facts: keys in kebab-case (QEMU's names where QEMU
	 * shows the same fact), values as text. */
	unsigned n_extra;
	struct {
		char key[40];
		char val[200];
		bool is_number;      /* a JSON number or true/false: unquoted */
	} extra[IMGFMT_INFO_EXTRA];
	/* VMDK: one entry per extent; valid until the image is closed. */
	const struct imgfmt_info_file *files;
	unsigned n_files;
};
int imgfmt_info(struct imgfmt_image *img, struct imgfmt_info *info);
/* Add a key/value line to info (used by drivers; silently drops past the limit). */
void imgfmt_info_add(struct imgfmt_info *info, const char *key, bool is_number,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Backing chain: the image this one reads unallocated areas from, or NULL. */
struct imgfmt_image *imgfmt_backing(const struct imgfmt_image *img);
/* True when the image's format lets it name a backing file (qcow2, VMDK;
 * differencing VHD and VHDX): its unallocated areas are holes that read
 * from below.  In other images (raw, a dynamic VHD) a HOLE is this
 * image's own zeroes, which QEMU calls present. */
bool imgfmt_can_have_backing(const struct imgfmt_image *img);

enum imgfmt_check_repair {
	IMGFMT_REPAIR_LEAKS = 1u << 0,  /* free leaked clusters */
	IMGFMT_REPAIR_ERRORS = 1u << 1, /* also fix refcounts that are too low */
};
struct imgfmt_check {
	/* in: */
	unsigned repair;        /* enum imgfmt_check_repair (image opened RDWR) */
	imgfmt_log_fn report;   /* called once per problem found; may be NULL */
	void *report_opaque;
	/* out (after a repair, errors and leaks count what is left unfixed;
	 * check again, as qemu-img check -r does, to confirm): */
	uint64_t errors;        /* corruptions */
	uint64_t leaks;         /* allocated but unreferenced clusters/blocks */
	uint64_t errors_fixed, leaks_fixed;
	uint64_t allocated_clusters;  /* guest clusters with a host cluster */
	uint64_t total_clusters;      /* guest clusters */
	uint64_t fragmented_clusters; /* allocated ones not right after the one before */
	uint64_t compressed_clusters;
	uint64_t image_end_offset_bytes; /* end of the last used host cluster; 0 unknown */
};
/* Metadata consistency check (and with repair, the fix, flushed).  Returns
 * 0 when the check ran (see counters), -ENOTSUP when the format has nothing
 * to check or cannot repair, other -errno on failure. */
int imgfmt_check(struct imgfmt_image *img, struct imgfmt_check *res);

/* ---- create options ----------------------------------------------------- */

/* Each format declares its create options in one static table; the core
 * parses "key=val,..." against it once (strict numbers, sizes with K/M/G
 * suffixes, enumerations, on/off) and the driver gets typed values. */
enum imgfmt_opt_type {
	IMGFMT_OPT_BOOL,     /* on/off (also yes/no, true/false, 1/0) */
	IMGFMT_OPT_NUMBER,   /* decimal integer */
	IMGFMT_OPT_SIZE,     /* bytes, with an optional K/M/G/T suffix */
	IMGFMT_OPT_ENUM,     /* one of choices[] */
	IMGFMT_OPT_STRING,   /* free text (a path) */
};

struct imgfmt_opt_desc {
	const char *name;
	enum imgfmt_opt_type type;
	const char *def;             /* default as a user would write it; NULL:
				      * none, or chosen by the format (see help) */
	const char *help;
	const char *const *choices;  /* ENUM: NULL-terminated */
	uint64_t min, max;           /* NUMBER, SIZE: inclusive range (max 0: none) */
	bool pow2;                   /* NUMBER, SIZE: must be a power of two */
	uint64_t multiple;           /* SIZE: must be a multiple of this (0: any) */
};

/* The create options of a format, terminated by an entry with a NULL name;
 * NULL for an unknown format. */
const struct imgfmt_opt_desc *imgfmt_create_options(const char *format);
/* "name=value" text of one option, e.g. for "-o help": the type and range
 * or choices, the default, the help ("cluster_size=SIZE  power of two,
 * 512-2M (default 64K): ..."). */
void imgfmt_opt_describe(const struct imgfmt_opt_desc *d, char *buf, size_t buf_bytes);
/* The options imgfmt_amend() changes for a format (NULL-name terminated;
 * empty when it changes none); NULL for an unknown format. */
const struct imgfmt_opt_desc *imgfmt_amend_options(const char *format);
/* Check an option string against a format's table without creating
 * anything: 0, or -EINVAL with the message in err. */
int imgfmt_options_check(const char *format, const char *options, char *err, size_t err_bytes);

/* ---- in-place changes ------------------------------------------------------ */

/* Change the virtual size of an image opened read-write (and so locked):
 * growing adds space that reads as zeroes; shrinking, only with shrink_ok,
 * discards what lies past the new end.  Each format orders its writes so
 * that an interruption leaves a consistent image.  -ENOTSUP where a format
 * cannot (a message says why). */
int imgfmt_resize(struct imgfmt_image *img, uint64_t size_bytes, bool shrink_ok);

/* Rebase: record name as the backing file of an image opened read-write
 * ("" for none) with format fmt (NULL or "": none recorded), crash-safe as
 * far as the format allows; the data is not touched (rebase -u).  The
 * handle reads through no backing file afterwards (reopen it).  -ENOTSUP
 * where a format cannot (qcow2 can). */
bool imgfmt_can_set_backing(const struct imgfmt_image *img);
/* Change format options of an image opened read-write in place, as
 * qemu-img amend does ("compat=0.10,lazy_refcounts=off"; see
 * imgfmt_amend_options): each change ordered so that an interruption
 * leaves a consistent image.  0, or -errno with the message recorded
 * (options that cannot change, named in qemu-img's words). */
int imgfmt_amend(struct imgfmt_image *img, const char *options);
/* Whether imgfmt_amend() would accept options, changing nothing (works on
 * an image opened read-only, before opening it read-write changes it). */
int imgfmt_amend_check(struct imgfmt_image *img, const char *options);
int imgfmt_set_backing(struct imgfmt_image *img, const char *name, const char *fmt);
/* Open name as img opens its backing file: relative to img's directory,
 * confined as img's open options say, read-only.  The message of a
 * failure is img's (imgfmt_errmsg).  Close *out with imgfmt_close. */
int imgfmt_open_as_backing(struct imgfmt_image *img, const char *name, const char *fmt,
			   struct imgfmt_image **out);
/* Commit's emptying: the whole clusters of [off, off+len) of an image
 * opened read-write become unallocated, reading from the backing file.
 * -ENOTSUP where a format cannot (qcow2 can). */
int imgfmt_discard(struct imgfmt_image *img, uint64_t len_bytes, uint64_t off_bytes);
/* True when a and b are the same file (st_dev, st_ino at open). */
bool imgfmt_same_file(const struct imgfmt_image *a, const struct imgfmt_image *b);

/* Internal snapshots (qcow2): the state of the disk kept inside the image.
 * Create, apply (revert the disk to it) and delete change the image in
 * place and are ordered so that an interruption leaks clusters at worst. */
struct imgfmt_snapshot {
	char id[32];                 /* "1", "2", ... */
	char name[256];
	uint64_t vm_state_bytes;     /* a VM's saved RAM (p2v writes none) */
	uint64_t disk_bytes;         /* the virtual size when it was taken */
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint64_t icount;             /* UINT64_MAX: not recorded */
};
/* All snapshots, oldest first, in *list (free() it); -ENOTSUP for formats
 * without them. */
int imgfmt_snapshot_list(struct imgfmt_image *img, struct imgfmt_snapshot **list, unsigned *n);
int imgfmt_snapshot_create(struct imgfmt_image *img, const char *name);
/* By ID first, then by name, as qemu-img does. */
int imgfmt_snapshot_apply(struct imgfmt_image *img, const char *id_or_name);
int imgfmt_snapshot_delete(struct imgfmt_image *img, const char *id_or_name);

/* ---- measure ------------------------------------------------------------- */

/* What an image of format with options needs on disk, as qemu-img measure
 * reports it: required for the data of src (its allocated, non-zero
 * clusters; or an empty image of size_bytes when src is NULL), fully
 * allocated when every cluster is written.  Both are upper bounds of what
 * p2v convert writes (compression aside). */
struct imgfmt_measure {
	uint64_t required_bytes;
	uint64_t fully_allocated_bytes;
	bool has_bitmaps;            /* qcow2 v3 from a source that may have them */
	uint64_t bitmaps_bytes;      /* p2v copies none: 0 */
};
int imgfmt_measure(const char *format, const char *options, struct imgfmt_image *src,
		   uint64_t size_bytes, struct imgfmt_measure *m, char *err, size_t err_bytes);

/* ---- drivers -------------------------------------------------------------- */

/* Name of the i-th registered driver (raw last), NULL past the end. */
const char *imgfmt_driver_name(unsigned i);
bool imgfmt_driver_can_create(const char *format);
/* Canonical driver name for a user-supplied name or alias ("vhd" -> "vpc"). */
const char *imgfmt_driver_canonical(const char *name);
/* Format implied by a file name extension (".qcow2", ".vhd", ...), or NULL. */
const char *imgfmt_format_from_filename(const char *path);

/* ---- the copy engine ------------------------------------------------------- */

typedef void (*imgfmt_progress_fn)(void *opaque, uint64_t done_bytes, uint64_t total_bytes);

/* Read callback for sources that are not images (capture reads a device with
 * retries); returns 0 or -errno, must fill buf completely. */
typedef int (*imgfmt_read_fn)(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes);

struct imgfmt_copy_opts {
	bool compress;                /* write compressed clusters where possible */
	unsigned threads;             /* workers; 0 = number of online CPUs */
	unsigned chunk_bytes;         /* 0 = default (4 MiB, rounded to clusters) */
	/* Optional override of which ranges of the source hold data: sorted,
	 * non-overlapping extents covering [0, size); anything not DATA is
	 * treated as zero and not read. */
	const struct imgfmt_extent *extents;
	size_t n_extents;
	imgfmt_read_fn read;          /* optional: read source through this */
	void *read_opaque;
	imgfmt_progress_fn progress;  /* optional; called from the writer thread */
	void *progress_opaque;
	const volatile sig_atomic_t *cancel; /* optional: non-zero stops with -EINTR */
	/* The target already reads as zeroes (convert --target-is-zero): zero
	 * ranges are not written, as on a freshly created image. */
	bool target_is_zero;
	/* HOLE extents of the source (unallocated in it) leave the target as
	 * it is; ZERO extents are still written as zeroes (commit). */
	bool keep_holes;
	/* Zero detection granularity in bytes (a multiple of 512; 0: the
	 * target's cluster, at most 64 KiB).  Ignored when compressing. */
	uint32_t sparse_bytes;
	/* Write zeroes as data: every byte of the target is allocated (-S 0). */
	bool no_sparse;
	/* The target's backing image, opened apart: units that read the same
	 * in base are not written (convert -B).  Read under the source lock. */
	struct imgfmt_image *base;
};

struct imgfmt_copy_stats {
	uint64_t data_bytes_read;     /* bytes read from the source */
	uint64_t zero_bytes_skipped;  /* data read but found all-zero */
	uint64_t hole_bytes_skipped;  /* never read (holes, zero extents) */
	uint64_t bytes_written;       /* payload handed to the target */
	uint64_t compressed_clusters;
	uint64_t base_bytes_skipped;  /* read the same in opts.base */
};

/* Copy the content of src (size must not exceed dst's) into dst.  On error
 * returns -errno and, where the message belongs to neither image, writes it
 * to err. */
int imgfmt_copy(struct imgfmt_image *src, struct imgfmt_image *dst,
		const struct imgfmt_copy_opts *opts, struct imgfmt_copy_stats *stats,
		char *err, size_t err_bytes);

/* ---- helpers -------------------------------------------------------------- */

/* "10G", "512", "64K", "1.5T" -> bytes (binary units).  -EINVAL / -ERANGE. */
int imgfmt_parse_size(const char *s, uint64_t *out_bytes);
/* True when len bytes at buf are all zero (fast). */
bool imgfmt_is_zero(const void *buf, size_t len_bytes);
/* Read exactly len bytes at off from fd (a file or block device), retrying
 * short reads and EINTR; 0, or -EIO past the end, or -errno. */
int imgfmt_fd_pread(int fd, void *buf, size_t len, uint64_t off);

#ifdef __cplusplus
}
#endif
#endif
