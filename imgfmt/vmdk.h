/* VMDK internals shared by the driver (vmdk.c), the descriptor parser and
 * writer (vmdk_desc.c) and the unit tests.  Not part of the public API. */
#ifndef IMGFMT_VMDK_H
#define IMGFMT_VMDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMDK_MAX_EXTENTS 1000u
#define VMDK_DESC_MAX_BYTES (1024u * 1024u)
/* Largest virtual disk we describe: sector counts stay far from overflow. */
#define VMDK_MAX_SECTORS (1ull << 40) /* 512 TiB */

enum vmdk_extent_kind {
	VMDK_EXTENT_SPARSE,
	VMDK_EXTENT_FLAT, /* FLAT and VMFS: a plain file (or part of one) */
	VMDK_EXTENT_ZERO,
};

enum vmdk_access { VMDK_ACCESS_RW, VMDK_ACCESS_RDONLY, VMDK_ACCESS_NOACCESS };

struct vmdk_desc_extent {
	enum vmdk_extent_kind kind;
	enum vmdk_access access;
	uint64_t sectors;
	uint64_t offset_sectors; /* FLAT: where the extent starts in its file */
	char *file;              /* NULL for ZERO */
};

struct vmdk_desc {
	unsigned version;
	uint32_t cid;
	uint32_t parent_cid;
	char create_type[40];
	char adapter_type[24];
	char hw_version[16];
	char *parent_hint; /* parentFileNameHint, or NULL */
	struct vmdk_desc_extent *ext;
	unsigned n_ext;
	uint64_t total_sectors;
};

/* Parse descriptor text (stops at the first NUL).  Returns 0 or -errno with a
 * one-line message naming the line and field in err. */
int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d, char *err,
		    size_t err_bytes);
void vmdk_desc_free(struct vmdk_desc *d);

/* An extent file name must be relative and stay inside the descriptor's
 * directory: no leading '/', no ".." that climbs above it.  0 or -EPERM. */
int vmdk_desc_check_name(const char *name, char *err, size_t err_bytes);

/* What the create path writes into the embedded descriptor. */
struct vmdk_desc_params {
	const char *create_type; /* "monolithicSparse" / "streamOptimized" */
	const char *file_name;   /* the extent line's file name (base name) */
	uint64_t sectors;
	const char *adapter_type;
	unsigned hw_version;
};
/* Format the descriptor into buf; returns its length or -ENOSPC. */
long vmdk_desc_format(const struct vmdk_desc_params *p, char *buf, size_t cap);

#endif
