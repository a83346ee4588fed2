/* VMDK driver internals: on-disk structures and the state shared by
 * vmdk.c (open, read, write), vmdk_create.c (create, stream writer) and
 * vmdk_info.c (info, check). */
#ifndef IMGFMT_VMDK_INT_H
#define IMGFMT_VMDK_INT_H

#include "driver.h"
#include "vmdk.h"

#define VMDK_MAGIC 0x564d444bu /* "KDMV" */
#define VMDK_FLAG_NL_DETECT (1u << 0)
#define VMDK_FLAG_RGD (1u << 1)
#define VMDK_FLAG_ZERO_GRAIN (1u << 2)
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)
#define VMDK_COMPRESS_DEFLATE 1u
#define VMDK_GD_AT_END UINT64_MAX
#define VMDK_GTES_PER_GT 512u
#define VMDK_GT_BYTES (VMDK_GTES_PER_GT * 4u)
#define VMDK_GT_SECTORS (VMDK_GT_BYTES / IMGFMT_SECTOR_BYTES)
#define VMDK_MAX_GRAIN_SECTORS 2048u /* 1 MiB */
#define VMDK_GTE_HOLE 0u
#define VMDK_GTE_ZERO 1u
#define VMDK_GRAIN_MARKER_BYTES 12u
#define VMDK_DESC_SECTORS 20u

enum vmdk_marker_type {
	VMDK_MARKER_EOS = 0,
	VMDK_MARKER_GT = 1,
	VMDK_MARKER_GD = 2,
	VMDK_MARKER_FOOTER = 3,
};

/* SparseExtentHeader, little-endian. */
struct vmdk_header_disk {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint64_t grain_size;
	uint64_t desc_offset;
	uint64_t desc_size;
	uint32_t num_gtes_per_gt;
	uint64_t rgd_offset;
	uint64_t gd_offset;
	uint64_t overhead;
	uint8_t unclean_shutdown;
	char single_eol;
	char non_eol;
	char double_eol1;
	char double_eol2;
	uint16_t compress_algorithm;
	uint8_t pad[433];
} __attribute__((packed));
static_assert(sizeof(struct vmdk_header_disk) == 512, "VMDK sparse header is one sector");

/* Metadata marker of streamOptimized extents (EOS, GT, GD, footer). */
struct vmdk_marker_disk {
	uint64_t val; /* sectors of metadata that follow */
	uint32_t size; /* 0 for metadata markers */
	uint32_t type;
	uint8_t pad[496];
} __attribute__((packed));
static_assert(sizeof(struct vmdk_marker_disk) == 512, "VMDK marker is one sector");

/* The header in host order. */
struct vmdk_header {
	uint32_t magic, version, flags, gtes_per_gt;
	uint64_t capacity_sectors, grain_sectors, desc_sector, desc_sectors;
	uint64_t rgd_sector, gd_sector, overhead_sectors;
	uint16_t compress_algorithm;
};

struct vmdk_sparse {
	struct vmdk_header hdr;    /* the footer's copy for GD_AT_END streams */
	uint32_t grain_sectors;
	uint32_t n_gts;            /* grain directory entries */
	uint32_t *gd;              /* GT sector per table, 0 = absent */
	uint32_t *rgd;             /* redundant GD (writers only), or NULL */
	uint32_t **gt;             /* n_gts tables of 512 entries, NULL = absent */
	uint32_t *gt_mem;          /* writers: every present table, in one block */
	/* Read-only opens: present all-zero tables all point at this one, the
	 * others are allocated one by one (memory follows what is allocated,
	 * not the virtual size); NULL for writers. */
	uint32_t *gt_zero;
	bool *gt_dirty;
	bool compressed, markers;
	uint64_t file_sectors;     /* file size (bound for table entries) */
	uint64_t next_sector;      /* where the next grain is appended */
};

struct vmdk_extent {
	enum vmdk_extent_kind kind;
	uint64_t start_sectors;    /* position in the virtual disk */
	uint64_t sectors;
	uint64_t file_offset_sectors; /* FLAT */
	int fd;                    /* -1 for ZERO */
	bool own_fd;
	char name[256];            /* for messages */
	struct vmdk_sparse *sp;    /* SPARSE */
};

struct vmdk_stream;

struct vmdk_state {
	struct vmdk_desc desc;     /* n_ext == 0 without a descriptor */
	bool embedded;             /* descriptor inside the sparse file (or none) */
	struct vmdk_extent *ext;
	unsigned n_ext;
	/* One decompressed grain (reading compressed extents). */
	uint8_t *grain_buf;
	size_t grain_buf_bytes;
	const struct vmdk_extent *cached_ext;
	uint64_t cached_grain;
	uint8_t *zbuf;
	size_t zbuf_bytes;
	struct vmdk_stream *stream; /* streamOptimized writer, or NULL */
	struct imgfmt_info_file *info_files; /* vmdk_info's extent list, or NULL */
	char **info_paths;
};

void vmdk_header_decode(const struct vmdk_header_disk *d, struct vmdk_header *h);
void vmdk_header_encode(const struct vmdk_header *h, struct vmdk_header_disk *d);
uint32_t vmdk_n_gts(uint64_t capacity_sectors, uint32_t grain_sectors);
uint32_t vmdk_gte(const struct vmdk_sparse *sp, uint64_t grain);
/* A grain table entry: 0 unallocated; 1 a zeroed grain only when the header
 * has the zeroed-grain flag (bit 2), otherwise the grain at sector 1, as
 * QEMU (block/vmdk.c) and VMware read it; else the grain's sector. */
static inline bool vmdk_gte_zeroed(const struct vmdk_sparse *sp, uint32_t gte)
{
	return gte == VMDK_GTE_ZERO && (sp->hdr.flags & VMDK_FLAG_ZERO_GRAIN);
}
static inline bool vmdk_gte_allocated(const struct vmdk_sparse *sp, uint32_t gte)
{
	return gte != VMDK_GTE_HOLE && !vmdk_gte_zeroed(sp, gte);
}

/* vmdk_create.c */
extern const struct imgfmt_opt_desc vmdk_create_opts[];
int vmdk_create(struct imgfmt_image *img, uint64_t size_bytes, const struct imgfmt_optval *ov);
int vmdk_measure(struct imgfmt_image *img, const struct imgfmt_optval *ov, uint64_t size,
		 struct imgfmt_image *src, struct imgfmt_measure *m);
int vmdk_compress(const struct imgfmt_image *img, const void *in, size_t in_bytes, void *out,
		  size_t out_cap, size_t *out_bytes);
int vmdk_pwrite_compressed(struct imgfmt_image *img, const void *buf, size_t len, uint64_t off);
int vmdk_stream_write(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		      const uint8_t *buf, uint64_t len, uint64_t off);
int vmdk_stream_zero(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e,
		     uint64_t len, uint64_t off);
int vmdk_stream_finish(struct imgfmt_image *img, struct vmdk_state *st, struct vmdk_extent *e);
bool vmdk_stream_staged(const struct vmdk_state *st, const struct vmdk_extent *e, uint64_t grain);
bool vmdk_stream_any_staged(const struct vmdk_state *st, const struct vmdk_extent *e);
const uint8_t *vmdk_stream_stage(const struct vmdk_state *st);
void vmdk_stream_free(struct vmdk_state *st);

/* Grain data: the image's own file takes the core's written-back data
 * path (imgfmt_data_pwrite); other extents plain writes. */
static inline int vmdk_data_pwrite(struct imgfmt_image *img, const struct vmdk_extent *e,
				   const void *buf, size_t len, uint64_t off)
{
	return e->fd == img->fd ? imgfmt_data_pwrite(img, buf, len, off)
				: imgfmt_fd_pwrite(e->fd, buf, len, off);
}

/* vmdk_info.c */
int vmdk_info(struct imgfmt_image *img, struct imgfmt_info *info);
int vmdk_check(struct imgfmt_image *img, struct imgfmt_check *res);

#endif
