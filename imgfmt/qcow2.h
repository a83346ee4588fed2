/* qcow2 driver internals (QEMU docs/interop/qcow2.txt), shared by qcow2.c
 * (header, open/create, read/write) and qcow2_meta.c (table cache,
 * refcounts, allocation, check). */
#ifndef IMGFMT_QCOW2_H
#define IMGFMT_QCOW2_H

#include "driver.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_HEADER_V2_BYTES 72u
#define QCOW2_HEADER_V3_BYTES 104u
#define QCOW2_HEADER_WRITE_BYTES 112u
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_CACHE_SLOTS 32u

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9-55 */

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FORMAT 0xE2792ACAu
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)

enum qcow2_compression { QCOW2_COMP_ZLIB = 0, QCOW2_COMP_ZSTD = 1 };

/* The header as fixed-width host-endian fields (converted at one boundary). */
struct qcow2_header {
	uint32_t magic, version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size, cluster_bits;
	uint64_t size;
	uint32_t crypt_method, l1_size;
	uint64_t l1_table_offset, refcount_table_offset;
	uint32_t refcount_table_clusters, nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features, compatible_features, autoclear_features;
	uint32_t refcount_order, header_length;
	uint8_t compression_type;
};

/* A cached cluster-sized metadata table (L2 table or refcount block). */
struct qcow2_slot {
	uint64_t offset;      /* host offset; 0 = empty */
	uint8_t *data;
	bool dirty;
	uint64_t used;        /* last use tick */
	/* 8-byte words [nz_lo, nz_hi) hold every non-zero one (set on load;
	 * the whole table once marked dirty): outside it an L2 table is all
	 * unallocated, which block status and check skip in one step. */
	uint32_t nz_lo, nz_hi;
};

struct qcow2 {
	struct qcow2_header h;
	uint32_t cluster_bytes;
	uint32_t cluster_bits;
	uint32_t l2_entries;          /* per L2 table */
	uint32_t refcount_bits;
	uint64_t refs_per_block;
	uint32_t csize_shift;         /* compressed descriptor: sector count shift */
	uint64_t csize_mask;
	uint64_t *l1;                 /* host-endian, l1_size entries */
	uint32_t l1_size;
	bool l1_dirty;
	uint64_t *reftable;           /* host-endian */
	uint64_t reftable_entries;    /* in memory (may exceed on-disk room) */
	uint64_t reftable_disk_entries;
	bool reftable_dirty;
	struct qcow2_slot l2_cache[QCOW2_CACHE_SLOTS];
	struct qcow2_slot ref_cache[QCOW2_CACHE_SLOTS];
	uint64_t tick;
	uint64_t file_bytes;          /* end of file as we know it */
	uint64_t next_host;           /* next free cluster at the end (writers) */
	uint64_t comp_next;           /* next byte for compressed data, 0 = none */
	bool header_dirty;
	bool header_area_dirty;       /* extensions or backing name changed */
	/* Refcounts were lowered since the refcount blocks were last written:
	 * in an image changed in place, the L2 tables go out (and a barrier)
	 * before them; otherwise the refcount blocks go first. */
	bool frees_pending;
	uint8_t *cluster_buf;         /* scratch cluster */
	uint8_t *cbuf;                /* scratch for compressed input */
	int deflate_level;            /* IMGFMT_DEFLATE_*, or 1-9 = zlib level */
	char backing_name[1024];
	char backing_format[32];
	uint32_t nb_bitmaps;          /* bitmaps extension, when consistent */
	uint64_t bitmap_dir_offset, bitmap_dir_bytes;
};

static inline struct qcow2 *qcow2_state(struct imgfmt_image *img) { return img->priv; }

/* qcow2_meta.c */
int qcow2_cache_get(struct imgfmt_image *img, struct qcow2_slot *cache, uint64_t off,
		    bool load, uint8_t **data);
/* As qcow2_cache_get (load true), also the table's non-zero word range. */
int qcow2_cache_get_range(struct imgfmt_image *img, struct qcow2_slot *cache, uint64_t off,
			  uint8_t **data, uint32_t *nz_lo, uint32_t *nz_hi);
void qcow2_cache_mark_dirty(struct qcow2_slot *cache, uint64_t off);
int qcow2_cache_flush(struct imgfmt_image *img, struct qcow2_slot *cache);
void qcow2_cache_free(struct qcow2_slot *cache);
uint64_t qcow2_get_refcount_raw(const struct qcow2 *s, const uint8_t *block, uint64_t i);
/* Entry i of a refcount block of bits-wide entries (big-endian) := v. */
void qcow2_put_refcount_raw(uint8_t *block, unsigned bits, uint64_t i, uint64_t v);
int qcow2_refcount_get(struct imgfmt_image *img, uint64_t host_cluster, uint64_t *ref);
int qcow2_refcount_add(struct imgfmt_image *img, uint64_t host_off, uint64_t len, int delta);
int qcow2_alloc_clusters(struct imgfmt_image *img, uint64_t n, uint64_t *host_off);
int qcow2_flush_meta(struct imgfmt_image *img);
/* Write n host-order entries of t big-endian at off, zero-padded to room. */
int qcow2_write_table_be64(struct imgfmt_image *img, const uint64_t *t, uint64_t n,
			   uint64_t room, uint64_t off);
int qcow2_check(struct imgfmt_image *img, struct imgfmt_check *res);

/* qcow2.c */
int qcow2_write_header(struct imgfmt_image *img);
/* A table of len bytes at off: cluster-aligned, past the header, in the file. */
int qcow2_check_table(struct imgfmt_image *img, const char *what, uint64_t off, uint64_t len);
/* The L2 entry for guest offset off (0 when its L2 table is missing). */
int qcow2_l2_entry(struct imgfmt_image *img, uint64_t off, uint64_t *entry);
/* Replace the L2 entry for off (its table allocated when missing), dropping
 * what the old entry referenced. */
int qcow2_set_l2_entry(struct imgfmt_image *img, uint64_t off, uint64_t entry);
/* Add delta (+1/-1) to the refcounts of what an L2 entry references (a data
 * or compressed cluster); drop is delta -1. */
int qcow2_entry_refcount(struct imgfmt_image *img, uint64_t entry, int delta);
int qcow2_drop_entry(struct imgfmt_image *img, uint64_t entry);

/* qcow2_ops.c: in-place changes */
int qcow2_resize(struct imgfmt_image *img, uint64_t size_bytes);
int qcow2_sync(struct imgfmt_image *img);
/* Flush the metadata, then fdatasync: a barrier for ordered changes. */
int qcow2_flush_and_sync(struct imgfmt_image *img);

/* qcow2_snap.c: internal snapshots */
/* Read and check every snapshot table entry (at open): 0 or -errno with a
 * message naming the entry and the field. */
int qcow2_snapshot_check_table(struct imgfmt_image *img);
int qcow2_snapshot_list(struct imgfmt_image *img, struct imgfmt_snapshot **list, unsigned *n);
int qcow2_snapshot_create(struct imgfmt_image *img, const char *name);
int qcow2_snapshot_apply(struct imgfmt_image *img, const char *id_or_name);
int qcow2_snapshot_delete(struct imgfmt_image *img, const char *id_or_name);
int qcow2_snapshot_zero_clusters(struct imgfmt_image *img, uint64_t *n);
/* Cluster 0 rewritten: header, the extensions kept, backing name. */
int qcow2_write_header_area(struct imgfmt_image *img);
int qcow2_set_backing(struct imgfmt_image *img, const char *name, const char *fmt);
int qcow2_switch_header(struct imgfmt_image *img, const struct qcow2_header *nh, const char *name,
			const char *fmt);

/* qcow2_amend.c: qemu-img amend */
extern const struct imgfmt_opt_desc qcow2_amend_opts[];
int qcow2_amend(struct imgfmt_image *img, const struct imgfmt_optval *ov, bool check_only);
int qcow2_discard(struct imgfmt_image *img, uint64_t len, uint64_t off);

#endif
