/* Internal interface between the imgfmt core and its format drivers.
 *
 * One format = one file with a `static const struct imgfmt_driver` named
 * imgfmt_<name>_driver, listed in the table in drivers.c (raw last).
 *
 * The core guarantees to drivers:
 *  - pread/pwrite/write_zeroes/block_status ranges are inside [0, size_bytes)
 *    with no overflow and len > 0;
 *  - pwrite/write_zeroes/pwrite_compressed only on writable images;
 *  - a missing write_zeroes falls back to pwrite of a zero buffer;
 *    a missing flush falls back to fdatasync(img->fd);
 *  - finish() is called once, before commit/close, on writable images.
 * Drivers report errors with imgfmt_err(img, -E..., "field %u ...", ...), which
 * records the message on the handle and returns the code, once, where found.
 */
#ifndef IMGFMT_DRIVER_H
#define IMGFMT_DRIVER_H

#include "imgfmt.h"

#include <assert.h>
#include <endian.h>
#include <string.h>
#include <sys/stat.h>

/* A parsed create option: ov[i] holds the value of the driver's
 * create_opts[i], checked by the core against its type, range and choices.
 * An absent option carries the table's default (set false; s NULL and u 0
 * when the table has none). */
struct imgfmt_optval {
	bool set;          /* given by the user */
	uint64_t u;        /* BOOL (0/1), NUMBER, SIZE; ENUM: index into choices */
	const char *s;     /* the text (STRING, ENUM, or as given) */
};

struct imgfmt_probe_buf {
	const uint8_t *head;   /* first head_bytes of the file (up to 64 KiB) */
	size_t head_bytes;
	const uint8_t *tail;   /* last 512 bytes (or fewer for tiny files) */
	size_t tail_bytes;
	const uint8_t *tail_wide; /* last KiB (or fewer); ends with tail */
	size_t tail_wide_bytes;
	uint64_t file_bytes;
	bool is_block_device;
};

/* probe.c: the name qemu-img gives the format whose signature pb carries,
 * any format QEMU 7.2 probes for (p2v reads only some), or NULL. */
const char *imgfmt_probe_signature(const struct imgfmt_probe_buf *pb);

/* One read of a batch (pread_batch). */
struct imgfmt_read_req {
	void *buf;
	uint64_t len, off;
};
/* Core: the reads of reqs through the driver's pread_batch, else one by
 * one; each range checked.  0 or -errno (recorded on img). */
int imgfmt_pread_batch(struct imgfmt_image *img, const struct imgfmt_read_req *reqs, size_t n);

struct imgfmt_driver {
	const char *name;          /* "qcow2", "vpc", "vhdx", "vmdk", "raw" */
	const char *description;
	/* The signatures that start the file (or its last sector: VHD's
	 * footer), NULL-terminated; NULL for formats without one (raw).  -f
	 * FMT on a file without one is refused naming them. */
	const char *const *magic;
	/* 0: not this format; higher = more certain (100 = magic matched). */
	int (*probe)(const struct imgfmt_probe_buf *pb);
	int (*open)(struct imgfmt_image *img);
	/* Create options, NULL-name terminated (imgfmt.h); create() gets one
	 * value per entry. */
	const struct imgfmt_opt_desc *create_opts;
	int (*create)(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *ov);
	/* imgfmt_measure(): img is a scratch handle (no file) for messages;
	 * src may be NULL (an empty image of size_bytes). */
	int (*measure)(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size_bytes,
		       struct imgfmt_image *src, struct imgfmt_measure *m);
	int (*pread)(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off);
	/* Optional: n reads issued together (NBD: one round trip for a copy
	 * job's data runs instead of one each); the core checked each range. */
	int (*pread_batch)(struct imgfmt_image *img, const struct imgfmt_read_req *reqs, size_t n);
	int (*pwrite)(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off);
	int (*write_zeroes)(struct imgfmt_image *img, uint64_t len, uint64_t off);
	int (*block_status)(struct imgfmt_image *img, uint64_t off, uint64_t len,
			    struct imgfmt_extent *ext);
	int (*flush)(struct imgfmt_image *img);
	int (*finish)(struct imgfmt_image *img);
	void (*close)(struct imgfmt_image *img);
	int (*info)(struct imgfmt_image *img, struct imgfmt_info *info);
	/* In-place changes on writable images; the core checked the request. */
	int (*resize)(struct imgfmt_image *img, uint64_t size_bytes);
	/* Record another backing file name ("" none) and format ("" none). */
	int (*set_backing)(struct imgfmt_image *img, const char *name, const char *fmt);
	/* In-place option changes (qemu-img amend): one value per entry of
	 * amend_opts (no defaults: unset = unchanged), on a writable image;
	 * check_only: only the refusals (any image). */
	const struct imgfmt_opt_desc *amend_opts;
	int (*amend)(struct imgfmt_image *img, const struct imgfmt_optval *ov, bool check_only);
	/* Make the whole clusters of a range unallocated. */
	int (*discard)(struct imgfmt_image *img, uint64_t len, uint64_t off);
	/* Internal snapshots; list works read-only, the others need a
	 * writable image (checked by the core). */
	int (*snapshot_list)(struct imgfmt_image *img, struct imgfmt_snapshot **list, unsigned *n);
	int (*snapshot_create)(struct imgfmt_image *img, const char *name);
	int (*snapshot_apply)(struct imgfmt_image *img, const char *id_or_name);
	int (*snapshot_delete)(struct imgfmt_image *img, const char *id_or_name);
	int (*check)(struct imgfmt_image *img, struct imgfmt_check *res);
	bool repairs;              /* check() honours res->repair (image writable) */
	/* Every image of the format may name a backing file (qcow2, VMDK); for
	 * VHD and VHDX only differencing images do, and they have one open. */
	bool backing_format;
	/* Compression: compress() must be thread-safe and pure. */
	int (*compress)(const struct imgfmt_image *img, const void *in, size_t in_bytes,
			void *out, size_t out_cap, size_t *out_bytes);
	int (*pwrite_compressed)(struct imgfmt_image *img, const void *buf, size_t len,
				 uint64_t off);
};

struct imgfmt_image {
	const struct imgfmt_driver *drv;
	void *priv;                  /* driver state */
	int fd;                      /* the image file (first extent for VMDK) */
	struct imgfmt_writeback {    /* imgfmt_data_pwrite's early writeback */
		uint64_t lo, hi;     /* span written since the last kick */
		uint64_t bytes;      /* data bytes in it */
		uint64_t prev_lo, prev_hi; /* kicked, not yet waited for */
	} wb;
	char *path;                  /* as opened (final path for created images) */
	char *tmp_path;              /* created image: temporary name, else NULL */
	uint64_t size_bytes;         /* virtual size: set by open/create */
	uint32_t cluster_bytes;      /* allocation unit: set by open/create (default 512) */
	unsigned flags;              /* enum imgfmt_open_flags */
	bool writable;
	bool fresh;                  /* created by us: unwritten areas read as zero */
	bool is_block_device;
	bool finished;
	bool committed;
	unsigned depth;              /* position in a backing chain (0 = top) */
	struct imgfmt_image *backing;/* owned; closed by the core */
	const struct imgfmt_image *above; /* the image that names this one, or NULL */
	/* The files this image names are opened beneath dirfd (confine.c). */
	int dirfd;                   /* O_PATH of path's directory; -1 until needed */
	dev_t st_dev;                /* the file's identity (backing loops) */
	ino_t st_ino;
	bool trusted_names;          /* created: its backing name is the caller's */
	const char *const *allow_backing; /* from imgfmt_open_opts */
	unsigned n_allow_backing;
	bool allow_symlinks;
	const char *uri;             /* nbd: the whole URI, during open/create only */
	imgfmt_log_fn log;
	void *log_opaque;
	char err[IMGFMT_ERRMSG_BYTES];
};

/* The driver table (drivers.c). */
extern const struct imgfmt_driver *const imgfmt_drivers[];
extern const unsigned imgfmt_n_drivers;
const struct imgfmt_driver *imgfmt_find_driver(const char *name);

extern const struct imgfmt_driver imgfmt_raw_driver;
extern const struct imgfmt_driver imgfmt_qcow2_driver;
extern const struct imgfmt_driver imgfmt_vpc_driver;
extern const struct imgfmt_driver imgfmt_vhdx_driver;
extern const struct imgfmt_driver imgfmt_vmdk_driver;
extern const struct imgfmt_driver imgfmt_nbd_driver;

/* Record an error message on img; returns code (a negative errno). */
int imgfmt_err(struct imgfmt_image *img, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Warning through the open options' log callback (no-op without one). */
void imgfmt_warn(struct imgfmt_image *img, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Whole-buffer positional I/O on img->fd (or any fd), retrying short
 * transfers and EINTR.  Reading past EOF is -EIO unless the _zfill variant,
 * which zero-fills beyond the end of the file. */
int imgfmt_fd_pread(int fd, void *buf, size_t len, uint64_t off);
int imgfmt_fd_pread_zfill(int fd, void *buf, size_t len, uint64_t off);
int imgfmt_fd_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* Bulk data (what the copy engine hands a driver): written through img->fd,
 * and every IMGFMT_WRITEBACK_WINDOW_BYTES the kernel is told to start
 * writing it back, while the window before is waited for and dropped from
 * the page cache.  The disk then sees deep queues of large writes during the
 * copy, the final fsync finds little left, and the copy recycles a few
 * windows of page cache instead of dirtying the whole image (measured 1.8x
 * faster than O_DIRECT writes on a virtio disk, where allocating O_DIRECT
 * writes to ext4 were capped near 1 GB/s; see issue 2's notes).  Callers
 * must not rely on data pages staying cached.  Returns 0 or -errno (not
 * recorded). */
#define IMGFMT_WRITEBACK_WINDOW_BYTES (16u << 20)
int imgfmt_data_pwrite(struct imgfmt_image *img, const void *buf, size_t len, uint64_t off);
/* Data/hole extent of a host file at off (SEEK_DATA/SEEK_HOLE; a block
 * device is all data), at most len bytes. */
void imgfmt_fd_block_status(int fd, bool is_block_device, uint64_t off, uint64_t len,
			    struct imgfmt_extent *ext);
/* QEMU-compatible image locks on fd (lock.c): 0, -EBUSY with msg naming the
 * conflict when another process holds the image incompatibly, or -errno. */
int imgfmt_lock_fd(int fd, bool writable, char *msg, size_t msg_bytes);
/* File size of an fd (BLKGETSIZE64 for block devices). */
int imgfmt_fd_size(int fd, uint64_t *size_bytes);

/* Open a backing file named inside img: a plain path only (no "json:" or
 * "proto:" prefix), confined to img's directory (confine.c), read-only,
 * probed (or format as recorded), depth-limited, loops refused.  Sets
 * img->backing; its error is img's, one line. */
int imgfmt_open_backing(struct imgfmt_image *img, const char *name, const char *format);
/* confine.c: open the file img names as name ("backing file", "extent
 * file" says kind in messages) beneath img's directory with openat2(), as
 * img's allow_* fields permit: a regular file (or a block device named
 * with allow_backing), O_RDONLY (O_RDWR if writable) and O_CLOEXEC, its
 * stat in *st.  With dirfd non-NULL, also an O_PATH descriptor of the
 * directory it lies in, for the files it names in turn.  0 or -errno
 * (-EPERM: refused), the message recorded on img. */
int imgfmt_confine_open(struct imgfmt_image *img, const char *kind, const char *name,
			bool writable, int *fd, int *dirfd, struct stat *st);
/* Resolve name relative to the directory of img's path (for display:
 * nothing is opened by this name); caller frees. */
char *imgfmt_resolve_relative(const struct imgfmt_image *img, const char *name);

/* Core only (options.c): parse "key=val,..." against a driver's table into
 * *ov (one value per entry, defaults filled in; free with
 * imgfmt_optvals_free).  -EINVAL with a message naming the option. */
int imgfmt_optvals_parse(const struct imgfmt_driver *drv, const char *s,
			 struct imgfmt_optval **ov, char *err, size_t err_bytes);
void imgfmt_optvals_free(const struct imgfmt_driver *drv, struct imgfmt_optval *ov);
/* The same against another of its tables (amend_opts: unknown names get
 * qemu-img amend's "Invalid parameter" words). */
int imgfmt_optvals_parse_table(const struct imgfmt_driver *drv, const struct imgfmt_opt_desc *d,
			       const char *s, struct imgfmt_optval **ov, char *err, size_t err_bytes);
void imgfmt_optvals_free_table(const struct imgfmt_opt_desc *d, struct imgfmt_optval *ov);

/* measure.c: the bytes of src's data in unit_bytes units: the units its
 * DATA extents touch (zero and unallocated ranges count nothing), as
 * qemu-img measure counts them; 0 for a NULL src. */
int imgfmt_measure_data(struct imgfmt_image *img, struct imgfmt_image *src, uint64_t unit_bytes,
			uint64_t *bytes);

/* Checksums. */
uint32_t imgfmt_crc32c(uint32_t crc, const void *buf, size_t len);

/* Compression back-ends (compress.c); all thread-safe.
 * Return the output length, -ENOSPC if it would not fit / not shrink,
 * -EIO on corrupt input. */
/* Raw deflate with a 4 KiB window (qcow2 zlib clusters) by p2v's encoder,
 * ISA-L, or zlib at level 1-9.  Output length, or -ENOSPC if it exceeds
 * out_cap. */
#define IMGFMT_DEFLATE_P2V 0
#define IMGFMT_DEFLATE_ISAL (-1)
long imgfmt_deflate_raw_4k(const void *in, size_t in_bytes, void *out, size_t out_cap, int level);
long imgfmt_deflate_4k(const void *in, size_t in_bytes, void *out, size_t out_cap);
/* Raw inflate (any window); produces exactly out_bytes or fails. */
int imgfmt_inflate_raw(const void *in, size_t in_bytes, void *out, size_t out_bytes);
/* zlib-wrapped deflate (VMDK grains) and its inverse (returns bytes produced). */
long imgfmt_zlib_compress(const void *in, size_t in_bytes, void *out, size_t out_cap);
long imgfmt_zlib_decompress(const void *in, size_t in_bytes, void *out, size_t out_cap);
/* zstd frames as QEMU's qcow2 compression_type=zstd writes/reads them. */
long imgfmt_zstd_compress(const void *in, size_t in_bytes, void *out, size_t out_cap);
int imgfmt_zstd_decompress(const void *in, size_t in_bytes, void *out, size_t out_bytes);

/* Endianness at the on-disk boundary. */
static inline uint16_t imgfmt_get_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline uint32_t imgfmt_get_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint64_t imgfmt_get_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline uint16_t imgfmt_get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t imgfmt_get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t imgfmt_get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void imgfmt_put_be16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static inline void imgfmt_put_be32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void imgfmt_put_be64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline void imgfmt_put_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void imgfmt_put_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void imgfmt_put_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

static inline bool imgfmt_is_pow2(uint64_t v) { return v && !(v & (v - 1)); }
static inline uint64_t imgfmt_div_round_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

#endif
