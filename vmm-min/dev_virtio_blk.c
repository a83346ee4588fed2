/* virtio-blk over the legacy (transitional) PCI transport: 1AF4:1001 with
 * one I/O BAR, one split virtqueue (virtio_ring.c) laid out at QUEUE_PFN *
 * 4096.  Requests are served synchronously on the queue notify.  Guest
 * memory is hostile: the ring code bounds-checks every ring, descriptor and
 * buffer, and a malformed queue marks the device broken (DEVICE_NEEDS_RESET)
 * until the driver resets it.  The interrupt is INTA#, level-triggered, held
 * until the driver reads ISR, on the ISA IRQ the PIIX3 router gives the slot. */
#include "machine.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	VBLK_HOST_FEATURES = 0, VBLK_GUEST_FEATURES = 4, VBLK_QUEUE_PFN = 8,
	VBLK_QUEUE_NUM = 12, VBLK_QUEUE_SEL = 14, VBLK_QUEUE_NOTIFY = 16,
	VBLK_STATUS = 18, VBLK_ISR = 19, VBLK_CONFIG = 20,
};
#define VBLK_F_SEG_MAX (1u << 2)
#define VBLK_F_FLUSH (1u << 9)
#define VBLK_FEATURES (VBLK_F_SEG_MAX | VBLK_F_FLUSH)
#define VBLK_SEG_MAX (VMM_VBLK_QUEUE_NUM - 2) /* data descriptors beside header and status */
#define STATUS_NEEDS_RESET 0x40
#define SECTOR_BYTES 512u
#define VBLK_SLOT 2

enum { VBLK_T_IN = 0, VBLK_T_OUT = 1, VBLK_T_FLUSH = 4, VBLK_T_GET_ID = 8 };
enum { VBLK_S_OK = 0, VBLK_S_IOERR = 1, VBLK_S_UNSUPP = 2 };

struct vblk_req_hdr {
	uint32_t type, reserved;
	uint64_t sector;
} __attribute__((packed));
_Static_assert(sizeof(struct vblk_req_hdr) == 16, "virtio-blk request header is 16 bytes");

static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void vblk_pci_init(struct vmm_vblk *v)
{
	vmm_pci_dev_init(&v->pci, 0x1af4, 0x1001, 0x01000000, 0x1af4, 0x0002);
	v->pci.cfg[0x3d] = 1; /* INTA# */
}

void vmm_vblk_init(struct vmm_vblk *v, const struct vmm_mem *mem, struct vmm_disk *disk,
		   const struct vmm_irq *irq, const struct vmm_events *ev)
{
	memset(v, 0, sizeof(*v));
	v->mem = mem;
	v->disk = disk;
	if (irq)
		v->irq = *irq;
	v->ev = ev;
	v->irq_line = -1;
	v->raised_line = -1;
	v->vq.num = VMM_VBLK_QUEUE_NUM;
	vblk_pci_init(v);
}
static void vblk_set_irq(struct vmm_vblk *v, int level)
{
	int line = v->pcibus ? vmm_pci_intx_irq(v->pcibus, v->slot) : v->irq_line;

	if (!level && v->raised_line >= 0) {
		vmm_irq_set(&v->irq, (unsigned)v->raised_line, 0);
		v->raised_line = -1;
	} else if (level && line >= 0 && v->raised_line < 0) {
		vmm_irq_set(&v->irq, (unsigned)line, 1);
		v->raised_line = line;
	}
}

__attribute__((format(printf, 2, 3)))
static int vblk_break(struct vmm_vblk *v, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v->broken = true;
	v->status |= STATUS_NEEDS_RESET;
	vmm_emit(v->ev, VMM_EV_DEVICE_BROKEN, 0, 0, msg);
	return -EIO;
}

void vmm_vblk_reset(struct vmm_vblk *v)
{
	v->guest_features = 0;
	v->vq.pfn = 0;
	v->vq.last_avail = v->vq.used_idx = 0;
	v->status = 0;
	v->isr = 0;
	v->broken = false;
	vblk_set_irq(v, 0);
}

/* Move the data descriptors (1 .. n-2) to or from the disk. */
static int vblk_data(struct vmm_vblk *v, const struct vmm_vring_chain *c, bool to_guest,
		     uint64_t off, uint64_t *moved)
{
	*moved = 0;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		const struct vmm_vring_desc *d = &c->d[i];
		uint8_t *p = vmm_mem_ptr(v->mem, d->addr, d->len);
		int ret;

		if (!p || d->len == 0)
			continue;
		ret = to_guest ? vmm_disk_read(v->disk, p, d->len, off + *moved)
			       : vmm_disk_write(v->disk, p, d->len, off + *moved);
		if (ret < 0)
			return ret;
		*moved += d->len;
	}
	return 0;
}

/* Check data directions and the sector range; VBLK_S_* or -EIO (broken). */
static int vblk_check_rw(struct vmm_vblk *v, const struct vmm_vring_chain *c, bool to_guest,
			 uint64_t sector, uint64_t *off, uint64_t *total)
{
	uint64_t end;

	*total = 0;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		if (!!(c->d[i].flags & VMM_VRING_F_WRITE) != to_guest)
			return vblk_break(v, "virtio-blk: data descriptor %u has the wrong direction (flags 0x%x)",
					  i, c->d[i].flags);
		*total += c->d[i].len; /* at most 128 * 4 GiB: no overflow */
	}
	if (__builtin_mul_overflow(sector, SECTOR_BYTES, off) ||
	    __builtin_add_overflow(*off, *total, &end) || end > vmm_disk_size_bytes(v->disk) ||
	    *total % SECTOR_BYTES)
		return VBLK_S_IOERR;
	return VBLK_S_OK;
}

static uint8_t vblk_rw(struct vmm_vblk *v, const struct vmm_vring_chain *c, bool to_guest,
		       uint64_t sector, uint32_t *written)
{
	uint64_t off = 0, total = 0, moved = 0;
	int st = vblk_check_rw(v, c, to_guest, sector, &off, &total);

	if (st != VBLK_S_OK)
		return st < 0 ? VBLK_S_IOERR : (uint8_t)st;
	if (vblk_data(v, c, to_guest, off, &moved) < 0)
		return VBLK_S_IOERR;
	if (to_guest) {
		v->reads++;
		*written += (uint32_t)(moved > UINT32_MAX - 1 ? UINT32_MAX - 1 : moved);
	} else {
		v->writes++;
	}
	vmm_emit(v->ev, to_guest ? VMM_EV_DISK_READ : VMM_EV_DISK_WRITE, off, total, NULL);
	return VBLK_S_OK;
}

static uint8_t vblk_get_id(struct vmm_vblk *v, const struct vmm_vring_chain *c, uint32_t *written)
{
	static const char id[20] = "vmm-min-disk";
	uint32_t left = sizeof(id);

	for (unsigned i = 1; i + 1 < c->n && left; i++) {
		uint32_t n = c->d[i].len < left ? c->d[i].len : left;
		uint8_t *p = vmm_mem_ptr(v->mem, c->d[i].addr, n);
		if (!(c->d[i].flags & VMM_VRING_F_WRITE) || !p)
			return VBLK_S_IOERR;
		memcpy(p, id + sizeof(id) - left, n);
		left -= n;
		*written += n;
	}
	return VBLK_S_OK;
}

/* Serve one chain; returns bytes written into guest buffers, or -EIO. */
static int vblk_request(struct vmm_vblk *v, uint16_t head, uint32_t *written)
{
	struct vmm_vring_chain c;
	struct vblk_req_hdr h;
	const struct vmm_vring_desc *st;
	uint8_t status;
	char why[128];

	if (vmm_vring_walk(&v->vq, head, &c, why, sizeof(why)) < 0)
		return vblk_break(v, "virtio-blk: %s", why);
	st = &c.d[c.n - 1];
	if (c.n < 2 || c.d[0].len < sizeof(h) || (c.d[0].flags & VMM_VRING_F_WRITE) ||
	    !(st->flags & VMM_VRING_F_WRITE) || st->len < 1)
		return vblk_break(v, "virtio-blk: request at descriptor %u is not header+data+status (%u descriptors)",
				  head, c.n);
	memcpy(&h, vmm_mem_ptr(v->mem, c.d[0].addr, sizeof(h)), sizeof(h));
	*written = 1;
	switch (le32toh(h.type)) {
	case VBLK_T_IN: status = vblk_rw(v, &c, true, le64toh(h.sector), written); break;
	case VBLK_T_OUT: status = vblk_rw(v, &c, false, le64toh(h.sector), written); break;
	case VBLK_T_FLUSH: status = vmm_disk_flush(v->disk) < 0 ? VBLK_S_IOERR : VBLK_S_OK; break;
	case VBLK_T_GET_ID: status = vblk_get_id(v, &c, written); break;
	default: status = VBLK_S_UNSUPP; break;
	}
	if (v->broken)
		return -EIO;
	*(uint8_t *)vmm_mem_ptr(v->mem, st->addr + st->len - 1, 1) = status;
	return 0;
}

int vmm_vblk_process(struct vmm_vblk *v)
{
	char why[128];
	uint16_t head;
	bool any = false;
	int r;

	if (v->broken || v->vq.pfn == 0 || !v->disk)
		return v->broken ? -EIO : 0;
	if (vmm_vring_map(&v->vq, v->mem, why, sizeof(why)) < 0)
		return vblk_break(v, "virtio-blk: %s", why);
	while ((r = vmm_vring_pop(&v->vq, &head, why, sizeof(why))) == 1) {
		uint32_t written = 0;

		if (vblk_request(v, head, &written) < 0)
			return -EIO;
		vmm_vring_push(&v->vq, head, written);
		any = true;
	}
	if (r < 0)
		return vblk_break(v, "virtio-blk: %s", why);
	if (any) {
		v->isr |= 1;
		vblk_set_irq(v, 1);
	}
	return 0;
}

static void vblk_config(const struct vmm_vblk *v, uint8_t *regs)
{
	uint64_t sectors = v->disk ? vmm_disk_size_bytes(v->disk) / SECTOR_BYTES : 0;

	memset(regs, 0, VMM_VBLK_IO_BYTES);
	wr32(regs + VBLK_HOST_FEATURES, VBLK_FEATURES);
	wr32(regs + VBLK_GUEST_FEATURES, v->guest_features);
	wr32(regs + VBLK_QUEUE_PFN, v->queue_sel == 0 ? v->vq.pfn : 0);
	wr16(regs + VBLK_QUEUE_NUM, v->queue_sel == 0 ? VMM_VBLK_QUEUE_NUM : 0);
	wr16(regs + VBLK_QUEUE_SEL, v->queue_sel);
	regs[VBLK_STATUS] = v->status;
	regs[VBLK_ISR] = v->isr;
	wr32(regs + VBLK_CONFIG, (uint32_t)sectors);
	wr32(regs + VBLK_CONFIG + 4, (uint32_t)(sectors >> 32));
	wr32(regs + VBLK_CONFIG + 12, VBLK_SEG_MAX);
}

static void vblk_write(struct vmm_vblk *v, uint64_t off, uint32_t val)
{
	switch (off) {
	case VBLK_GUEST_FEATURES: v->guest_features = val & VBLK_FEATURES; break;
	case VBLK_QUEUE_PFN:
		if (v->queue_sel != 0)
			break;
		v->vq.pfn = val;
		v->vq.last_avail = v->vq.used_idx = 0;
		break;
	case VBLK_QUEUE_SEL: v->queue_sel = (uint16_t)val; break;
	case VBLK_QUEUE_NOTIFY:
		if ((uint16_t)val != 0)
			break;
		if (v->hold_first_notify) {
			v->hold_first_notify = false;
			v->held = true;
			break;
		}
		vmm_vblk_process(v);
		break;
	case VBLK_STATUS:
		if ((uint8_t)val == 0)
			vmm_vblk_reset(v);
		else
			v->status = (uint8_t)((val & ~STATUS_NEEDS_RESET) |
					      (v->status & STATUS_NEEDS_RESET));
		break;
	default: break;
	}
}

void vmm_vblk_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_vblk *v = opaque;
	uint8_t regs[VMM_VBLK_IO_BYTES];

	if (size > 4 || off >= VMM_VBLK_IO_BYTES || off + size > VMM_VBLK_IO_BYTES) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write) {
		vblk_write(v, off, vmm_io_get(data, size));
		return;
	}
	vblk_config(v, regs);
	memcpy(data, regs + off, size);
	if (off <= VBLK_ISR && off + size > VBLK_ISR) { /* reading ISR acknowledges */
		v->isr = 0;
		vblk_set_irq(v, 0);
	}
}

/* ---- the device: slot 2, when the machine has a disk ---- */

struct vblk_snap {
	uint8_t cfg[256];
	uint32_t guest_features, queue_pfn;
	uint16_t queue_sel, last_avail, used_idx;
	uint8_t status, isr, broken;
	int8_t raised_line;
} __attribute__((packed));

static int vblk_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_vblk *v;
	int idx;

	if (!m->disk)
		return 0; /* no disk, no device */
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	vmm_vblk_init(v, &m->mem, m->disk, &m->irq, &m->ev);
	v->pcibus = m->pci;
	v->slot = VBLK_SLOT;
	idx = vmm_bus_add(&m->bus, VMM_SPACE_PIO, 0, VMM_VBLK_IO_BYTES, vmm_vblk_io, v, "virtio-blk");
	if (idx < 0 || !m->pci || vmm_pci_plug(m->pci, VBLK_SLOT, 0, &v->pci) < 0) {
		snprintf(err, err_bytes, "virtio-blk: no room on the I/O bus or in PCI slot %d", VBLK_SLOT);
		free(v);
		return -EBUSY;
	}
	vmm_bus_place(&m->bus, idx, 0, false);
	vmm_pci_dev_bar(&v->pci, 0, VMM_VBLK_IO_BYTES, true, idx);
	m->boot_disk = v;
	*state = v;
	return 0;
}

static void vblk_destroy(void *state)
{
	free(state);
}

static void vblk_dev_reset(void *state)
{
	struct vmm_vblk *v = state;
	int bar_idx = v->pci.bar_bus_idx[0];

	vmm_vblk_reset(v);
	vblk_pci_init(v);
	vmm_pci_dev_bar(&v->pci, 0, VMM_VBLK_IO_BYTES, true, bar_idx);
	vmm_pci_dev_restored(v->pcibus, &v->pci); /* BAR decode off again */
}

static void vblk_save(const void *state, uint8_t *out)
{
	const struct vmm_vblk *v = state;
	struct vblk_snap s = { .guest_features = v->guest_features, .queue_pfn = v->vq.pfn,
			       .queue_sel = v->queue_sel, .last_avail = v->vq.last_avail,
			       .used_idx = v->vq.used_idx, .status = v->status, .isr = v->isr,
			       .broken = v->broken, .raised_line = (int8_t)v->raised_line };

	memcpy(s.cfg, v->pci.cfg, sizeof(s.cfg));
	memcpy(out, &s, sizeof(s));
}

static int vblk_load(void *state, const uint8_t *in)
{
	struct vmm_vblk *v = state;
	struct vblk_snap s;

	memcpy(&s, in, sizeof(s));
	if ((s.guest_features & ~VBLK_FEATURES) || s.broken > 1 || s.isr > 1 ||
	    s.raised_line < -1 || s.raised_line > 15)
		return -EINVAL;
	if (vmm_pci_dev_load(v->pcibus, &v->pci, s.cfg) < 0)
		return -EINVAL;
	v->guest_features = s.guest_features;
	v->vq.pfn = s.queue_pfn;
	v->queue_sel = s.queue_sel;
	v->vq.last_avail = s.last_avail, v->vq.used_idx = s.used_idx;
	v->status = s.status, v->isr = s.isr, v->broken = s.broken;
	v->raised_line = s.raised_line;
	return 0;
}

const struct vmm_device_ops vmm_vblk_ops = {
	.name = "virtio-blk",
	.create = vblk_create,
	.destroy = vblk_destroy,
	.reset = vblk_dev_reset,
	.state_bytes = sizeof(struct vblk_snap),
	.save = vblk_save,
	.load = vblk_load,
};
