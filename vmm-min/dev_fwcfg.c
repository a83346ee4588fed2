/* fw_cfg, the QEMU firmware configuration interface over I/O ports: a 16-bit
 * selector at 0x510 and a byte-wide data port at 0x511.  Legacy keys hold
 * little-endian integers; files are listed in the big-endian directory at key
 * 0x19.  No DMA interface (the ID key does not advertise it). */
#include "machine.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fwcfg_file {
	uint32_t size_be;
	uint16_t select_be;
	uint16_t reserved;
	char name[VMM_FWCFG_NAME_BYTES];
};
_Static_assert(sizeof(struct fwcfg_file) == 64, "fw_cfg directory entry is 64 bytes");

static struct vmm_fwcfg_item *fwcfg_find(struct vmm_fwcfg *f, uint16_t key)
{
	for (unsigned i = 0; i < f->n; i++)
		if (f->item[i].key == key)
			return &f->item[i];
	return NULL;
}

/* Add or replace the data of key. */
int vmm_fwcfg_add(struct vmm_fwcfg *f, uint16_t key, const void *data, uint32_t bytes)
{
	struct vmm_fwcfg_item *it = fwcfg_find(f, key);
	uint8_t *copy = malloc(bytes ? bytes : 1);

	if (!copy)
		return -ENOMEM;
	if (!it) {
		if (f->n >= VMM_FWCFG_MAX_ITEMS) {
			free(copy);
			return -ENOSPC;
		}
		it = &f->item[f->n++];
		memset(it, 0, sizeof(*it));
		it->key = key;
	}
	memcpy(copy, data, bytes);
	free(it->data);
	it->data = copy;
	it->bytes = bytes;
	return 0;
}

static int fwcfg_rebuild_dir(struct vmm_fwcfg *f)
{
	uint32_t bytes = 4 + f->n_files * (uint32_t)sizeof(struct fwcfg_file);
	uint8_t *dir = calloc(1, bytes);
	uint32_t count_be = htobe32(f->n_files);
	unsigned k = 0;
	int ret;

	if (!dir)
		return -ENOMEM;
	memcpy(dir, &count_be, 4);
	for (unsigned i = 0; i < f->n; i++) {
		struct fwcfg_file e = { 0 };
		if (!f->item[i].name[0])
			continue;
		e.size_be = htobe32(f->item[i].bytes);
		e.select_be = htobe16(f->item[i].key);
		memcpy(e.name, f->item[i].name, sizeof(e.name));
		memcpy(dir + 4 + k++ * sizeof(e), &e, sizeof(e));
	}
	ret = vmm_fwcfg_add(f, VMM_FWCFG_FILE_DIR, dir, bytes);
	free(dir);
	return ret;
}

int vmm_fwcfg_add_file(struct vmm_fwcfg *f, const char *name, const void *data, uint32_t bytes)
{
	uint16_t key = (uint16_t)(VMM_FWCFG_FILE_FIRST + f->n_files);
	int ret;

	if (strlen(name) >= VMM_FWCFG_NAME_BYTES)
		return -ENAMETOOLONG;
	ret = vmm_fwcfg_add(f, key, data, bytes);
	if (ret < 0)
		return ret;
	snprintf(fwcfg_find(f, key)->name, VMM_FWCFG_NAME_BYTES, "%s", name);
	f->n_files++;
	return fwcfg_rebuild_dir(f);
}

void vmm_fwcfg_init(struct vmm_fwcfg *f)
{
	const uint32_t id = 1; /* traditional interface, no DMA */

	memset(f, 0, sizeof(*f));
	vmm_fwcfg_add(f, VMM_FWCFG_SIGNATURE, "QEMU", 4);
	vmm_fwcfg_add(f, VMM_FWCFG_ID, &id, 4);
	fwcfg_rebuild_dir(f);
}

void vmm_fwcfg_free(struct vmm_fwcfg *f)
{
	for (unsigned i = 0; i < f->n; i++)
		free(f->item[i].data);
	memset(f, 0, sizeof(*f));
}

/* Port 0x510 (off 0): select, 16-bit; 0x511 (off 1): data, read byte by byte.
 * Reads past the end of an item, or of a missing key, return 0. */
void vmm_fwcfg_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_fwcfg *f = opaque;

	if (off == 0) {
		if (is_write) {
			f->selected = (uint16_t)vmm_io_get(data, size);
			f->pos = 0;
		} else {
			vmm_io_put(data, size, f->selected);
		}
		return;
	}
	if (is_write)
		return; /* data writes are not supported (as in QEMU >= 2.4) */
	struct vmm_fwcfg_item *it = fwcfg_find(f, f->selected);
	for (unsigned i = 0; i < size; i++) {
		data[i] = (it && f->pos < it->bytes) ? it->data[f->pos] : 0;
		if (it && f->pos < it->bytes)
			f->pos++;
	}
}

/* ---- the device: fw_cfg at 0x510, what the firmware is told ---- */

struct fwcfg_snap {
	uint16_t selected;
	uint32_t pos;
} __attribute__((packed));

static int fwcfg_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_fwcfg *f = calloc(1, sizeof(*f));

	(void)err, (void)err_bytes;
	if (!f)
		return -ENOMEM;
	vmm_fwcfg_init(f);
	m->fwcfg = f;
	*state = f;
	return 0;
}

static void fwcfg_destroy(void *state)
{
	vmm_fwcfg_free(state);
	free(state);
}

static void fwcfg_reset(void *state)
{
	struct vmm_fwcfg *f = state;

	f->selected = 0;
	f->pos = 0;
}

static void fwcfg_save(const void *state, uint8_t *out)
{
	const struct vmm_fwcfg *f = state;
	struct fwcfg_snap s = { f->selected, f->pos };

	memcpy(out, &s, sizeof(s));
}

static int fwcfg_load(void *state, const uint8_t *in)
{
	struct vmm_fwcfg *f = state;
	struct fwcfg_snap s;
	const struct vmm_fwcfg_item *it;

	memcpy(&s, in, sizeof(s));
	it = fwcfg_find(f, s.selected);
	if (s.pos > (it ? it->bytes : 0))
		return -EINVAL;
	f->selected = s.selected;
	f->pos = s.pos;
	return 0;
}

static const struct vmm_io_range fwcfg_ranges[] = {
	{ VMM_SPACE_PIO, 0x510, 2, vmm_fwcfg_io, "fw_cfg" },
	{ 0 },
};

const struct vmm_device_ops vmm_fwcfg_ops = {
	.name = "fw_cfg",
	.ranges = fwcfg_ranges,
	.create = fwcfg_create,
	.destroy = fwcfg_destroy,
	.reset = fwcfg_reset,
	.state_bytes = sizeof(struct fwcfg_snap),
	.save = fwcfg_save,
	.load = fwcfg_load,
};
