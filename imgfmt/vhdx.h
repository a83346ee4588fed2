/* Internal to the vhdx driver (vhdx.c, vhdx_meta.c, vhdx_log.c): on-disk
 * constants of MS-VHDX 1.0 and the driver state. */
#ifndef IMGFMT_VHDX_H
#define IMGFMT_VHDX_H

#include "driver.h"

#define VHDX_MIB (1024u * 1024u)
#define VHDX_KIB64 (64u * 1024u)
#define VHDX_HEADER_AREA_BYTES VHDX_MIB
#define VHDX_HEADER_BYTES 4096u
#define VHDX_REGION_TABLE_BYTES VHDX_KIB64
#define VHDX_REGION_MAX_ENTRIES 2047u
#define VHDX_META_TABLE_BYTES VHDX_KIB64
#define VHDX_META_MAX_ENTRIES 2047u
#define VHDX_META_ITEM_MAX_BYTES VHDX_MIB
#define VHDX_MAX_DISK_BYTES (64ull << 40)
#define VHDX_MIN_BLOCK_BYTES VHDX_MIB
#define VHDX_MAX_BLOCK_BYTES (256u * VHDX_MIB)
#define VHDX_BITMAP_BLOCK_BYTES VHDX_MIB
#define VHDX_SECTORS_PER_CHUNK (1ull << 23)
#define VHDX_LOG_SECTOR_BYTES 4096u

/* BAT entry: state in bits 0-2, file offset in MiB in bits 20-63. */
enum vhdx_block_state {
	VHDX_PAYLOAD_NOT_PRESENT = 0,
	VHDX_PAYLOAD_UNDEFINED = 1,
	VHDX_PAYLOAD_ZERO = 2,
	VHDX_PAYLOAD_UNMAPPED = 3,
	VHDX_PAYLOAD_UNMAPPED_V095 = 5,
	VHDX_PAYLOAD_FULLY_PRESENT = 6,
	VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
	VHDX_SB_NOT_PRESENT = 0,
	VHDX_SB_PRESENT = 6,
};
#define VHDX_BAT_STATE(e) ((unsigned)((e) & 7u))
#define VHDX_BAT_OFFSET_BYTES(e) (((e) >> 20) * (uint64_t)VHDX_MIB)
#define VHDX_BAT_ENTRY(state, off_bytes) ((uint64_t)(state) | (((off_bytes) / VHDX_MIB) << 20))

struct vhdx_guid {
	uint8_t b[16];
};
/* A GUID as Microsoft writes it: the first three fields little-endian. */
#define VHDX_GUID(d1, d2, d3, a, b, c, d, e, f, g, h) {{ \
	(d1) & 0xff, ((d1) >> 8) & 0xff, ((d1) >> 16) & 0xff, ((d1) >> 24) & 0xff, \
	(d2) & 0xff, ((d2) >> 8) & 0xff, (d3) & 0xff, ((d3) >> 8) & 0xff, \
	a, b, c, d, e, f, g, h }}
#define VHDX_GUID_STR_BYTES 40

/* ---- on-disk structures (byte arrays; decoded in one place each) ---- */

struct vhdx_header_disk {
	uint8_t signature[4];        /* "head" */
	uint8_t checksum[4];         /* CRC-32C of the 4 KiB with this field zero */
	uint8_t sequence_number[8];
	uint8_t file_write_guid[16];
	uint8_t data_write_guid[16];
	uint8_t log_guid[16];
	uint8_t log_version[2];
	uint8_t version[2];
	uint8_t log_length[4];
	uint8_t log_offset[8];
	uint8_t reserved[4016];
};
static_assert(sizeof(struct vhdx_header_disk) == VHDX_HEADER_BYTES, "VHDX header is 4 KiB");

struct vhdx_region_table_header_disk {
	uint8_t signature[4];        /* "regi" */
	uint8_t checksum[4];         /* CRC-32C of the 64 KiB table */
	uint8_t entry_count[4];
	uint8_t reserved[4];
};
static_assert(sizeof(struct vhdx_region_table_header_disk) == 16, "region table header");

struct vhdx_region_entry_disk {
	uint8_t guid[16];
	uint8_t file_offset[8];
	uint8_t length[4];
	uint8_t flags[4];            /* bit 0: required */
};
static_assert(sizeof(struct vhdx_region_entry_disk) == 32, "region table entry");

struct vhdx_meta_header_disk {
	uint8_t signature[8];        /* "metadata" */
	uint8_t reserved[2];
	uint8_t entry_count[2];
	uint8_t reserved2[20];
};
static_assert(sizeof(struct vhdx_meta_header_disk) == 32, "metadata table header");

struct vhdx_meta_entry_disk {
	uint8_t item_id[16];
	uint8_t offset[4];
	uint8_t length[4];
	uint8_t flags[4];            /* bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired */
	uint8_t reserved[4];
};
static_assert(sizeof(struct vhdx_meta_entry_disk) == 32, "metadata table entry");
#define VHDX_META_IS_USER 1u
#define VHDX_META_IS_VIRTUAL_DISK 2u
#define VHDX_META_IS_REQUIRED 4u

struct vhdx_log_entry_header_disk {
	uint8_t signature[4];        /* "loge" */
	uint8_t checksum[4];
	uint8_t entry_length[4];
	uint8_t tail[4];
	uint8_t sequence_number[8];
	uint8_t descriptor_count[4];
	uint8_t reserved[4];
	uint8_t log_guid[16];
	uint8_t flushed_file_offset[8];
	uint8_t last_file_offset[8];
};
static_assert(sizeof(struct vhdx_log_entry_header_disk) == 64, "log entry header");

struct vhdx_log_descriptor_disk {
	uint8_t signature[4];        /* "zero" or "desc" */
	uint8_t trailing_bytes[4];   /* desc: bytes 4092..4095 of the sector */
	uint8_t leading_or_length[8];/* desc: bytes 0..7; zero: length */
	uint8_t file_offset[8];
	uint8_t sequence_number[8];
};
static_assert(sizeof(struct vhdx_log_descriptor_disk) == 32, "log descriptor");

struct vhdx_log_data_sector_disk {
	uint8_t signature[4];        /* "data" */
	uint8_t sequence_high[4];
	uint8_t data[4084];
	uint8_t sequence_low[4];
};
static_assert(sizeof(struct vhdx_log_data_sector_disk) == VHDX_LOG_SECTOR_BYTES, "log data sector");

/* ---- driver state ---- */

/* One write of the replayed log: data (4 KiB) or zeroes, applied in order. */
struct vhdx_patch {
	uint64_t file_off_bytes;
	uint64_t len_bytes;
	uint8_t *data;               /* NULL: zeroes */
};

struct vhdx {
	uint64_t file_bytes;          /* host file size (after log replay) */
	unsigned cur_header;          /* 0 or 1: slot of the newest valid header */
	uint64_t sequence_number;
	struct vhdx_guid file_write_guid, data_write_guid, log_guid;
	uint16_t log_version;
	uint32_t log_length_bytes;
	uint64_t log_offset_bytes;
	bool log_replayed;            /* a non-empty log was applied in memory */
	struct vhdx_patch *patches;   /* the replayed log (read-only opens) */
	size_t n_patches;

	uint64_t bat_offset_bytes, meta_offset_bytes;
	uint64_t size_item_offset;    /* file offset of the virtual disk size */
	uint32_t bat_length_bytes, meta_length_bytes;

	uint32_t block_bytes, logical_sector_bytes, physical_sector_bytes;
	bool leave_blocks_allocated, has_parent;
	struct vhdx_guid page83;
	uint64_t chunk_ratio, data_blocks, bitmap_blocks, bat_entries;
	uint64_t *bat;                /* host order */
	bool bat_dirty, data_written;
	uint64_t alloc_end_bytes;     /* next free MiB-aligned file offset */
	char creator[160];

	/* differencing */
	char parent_relative[1024], parent_absolute[1024], parent_volume[1024];
	struct vhdx_guid parent_linkage;
	bool have_parent_linkage;
	uint8_t *bitmap;              /* cached sector bitmap block */
	uint64_t bitmap_chunk;        /* which chunk is cached; UINT64_MAX none */
};

extern const struct vhdx_guid vhdx_zero_guid;

/* vhdx.c */
bool vhdx_guid_is_zero(const struct vhdx_guid *g);
void vhdx_guid_format(const struct vhdx_guid *g, char out[VHDX_GUID_STR_BYTES]);
/* Payload blocks per sector bitmap block: 2^23 * logical sector / block. */
uint64_t vhdx_chunk_ratio(uint32_t logical_sector_bytes, uint32_t block_bytes);
/* Read file bytes through the replayed log overlay (zero-fill past EOF). */
int vhdx_file_pread(struct imgfmt_image *img, void *buf, size_t len, uint64_t off);

/* vhdx_meta.c: the metadata region and the parent locator. */
int vhdx_load_metadata(struct imgfmt_image *img, struct vhdx *v);
/* The metadata region of a new image: table and items, meta_length_bytes long. */
void vhdx_build_metadata(const struct vhdx *v, uint64_t size_bytes, uint8_t *region);

/* vhdx_log.c: find the active log sequence; replay it into v->patches. */
int vhdx_log_load(struct imgfmt_image *img, struct vhdx *v);
void vhdx_log_free(struct vhdx *v);

#endif
