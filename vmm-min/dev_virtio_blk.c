/* virtio-blk over the legacy (transitional) PCI transport: 1AF4:1001 with
 * one I/O BAR, one split virtqueue laid out at QUEUE_PFN * 4096.  Requests
 * are served synchronously on the queue notify.  Guest memory is hostile:
 * every ring, descriptor and buffer is bounds-checked through vmm_mem_ptr,
 * chains are walked at most queue-size steps, and a malformed queue marks the
 * device broken (DEVICE_NEEDS_RESET) until the driver resets it. */
#include "vmm_internal.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_ALIGN 4096u
#define STATUS_NEEDS_RESET 0x40
#define SECTOR_BYTES 512u

enum { VBLK_T_IN = 0, VBLK_T_OUT = 1, VBLK_T_FLUSH = 4, VBLK_T_GET_ID = 8 };
enum { VBLK_S_OK = 0, VBLK_S_IOERR = 1, VBLK_S_UNSUPP = 2 };

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));
_Static_assert(sizeof(struct vring_desc) == 16, "virtq descriptor is 16 bytes");

struct vblk_req_hdr {
	uint32_t type, reserved;
	uint64_t sector;
} __attribute__((packed));
_Static_assert(sizeof(struct vblk_req_hdr) == 16, "virtio-blk request header is 16 bytes");

struct vblk_rings {
	uint8_t *desc, *avail, *used;
};

/* The descriptors of one chain, copied out of guest memory once. */
struct vblk_chain {
	struct vring_desc d[VMM_VBLK_QUEUE_NUM];
	unsigned n;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

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
	vmm_pci_dev_init(&v->pci, 0x1af4, 0x1001, 0x01000000, 0x1af4, 0x0002);
	v->pci.cfg[0x3d] = 1; /* INTA# */
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

static void vblk_reset(struct vmm_vblk *v)
{
	v->guest_features = 0;
	v->queue_pfn = 0;
	v->last_avail = v->used_idx = 0;
	v->status = 0;
	v->isr = 0;
	v->broken = false;
	vblk_set_irq(v, 0);
}

static int vblk_rings(struct vmm_vblk *v, struct vblk_rings *r)
{
	const uint64_t num = VMM_VBLK_QUEUE_NUM;
	uint64_t desc = (uint64_t)v->queue_pfn * VRING_ALIGN;
	uint64_t avail = desc + 16 * num;
	uint64_t used = (avail + 6 + 2 * num + VRING_ALIGN - 1) & ~(uint64_t)(VRING_ALIGN - 1);

	r->desc = vmm_mem_ptr(v->mem, desc, 16 * num);
	r->avail = vmm_mem_ptr(v->mem, avail, 6 + 2 * num);
	r->used = vmm_mem_ptr(v->mem, used, 6 + 8 * num);
	if (!r->desc || !r->avail || !r->used)
		return vblk_break(v, "virtio-blk: queue at guest address 0x%llx (QUEUE_PFN %u) is outside RAM",
				  (unsigned long long)desc, v->queue_pfn);
	return 0;
}

/* Copy out the chain starting at head; it must end within queue-size steps. */
static int vblk_walk(struct vmm_vblk *v, const struct vblk_rings *r, uint16_t head,
		     struct vblk_chain *c)
{
	unsigned i = head;

	for (c->n = 0;; c->n++) {
		struct vring_desc *d = &c->d[c->n];
		if (i >= VMM_VBLK_QUEUE_NUM)
			return vblk_break(v, "virtio-blk: descriptor index %u >= queue size %u", i,
					  VMM_VBLK_QUEUE_NUM);
		if (c->n >= VMM_VBLK_QUEUE_NUM) /* a loop, or a chain longer than the queue */
			return vblk_break(v, "virtio-blk: descriptor chain from %u loops or exceeds %u entries",
					  head, VMM_VBLK_QUEUE_NUM);
		memcpy(d, r->desc + 16 * i, sizeof(*d));
		d->addr = le64toh(d->addr);
		d->len = le32toh(d->len);
		d->flags = le16toh(d->flags);
		d->next = le16toh(d->next);
		if (d->flags & VRING_DESC_F_INDIRECT)
			return vblk_break(v, "virtio-blk: indirect descriptor %u was not negotiated", i);
		if (d->len && !vmm_mem_ptr(v->mem, d->addr, d->len))
			return vblk_break(v, "virtio-blk: descriptor %u buffer at 0x%llx is outside RAM",
					  i, (unsigned long long)d->addr);
		if (!(d->flags & VRING_DESC_F_NEXT)) {
			c->n++;
			return 0;
		}
		i = d->next;
	}
}

/* Move the data descriptors (1 .. n-2) to or from the disk. */
static int vblk_data(struct vmm_vblk *v, const struct vblk_chain *c, bool to_guest,
		     uint64_t off, uint64_t *moved)
{
	*moved = 0;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		const struct vring_desc *d = &c->d[i];
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
static int vblk_check_rw(struct vmm_vblk *v, const struct vblk_chain *c, bool to_guest,
			 uint64_t sector, uint64_t *off, uint64_t *total)
{
	uint64_t end;

	*total = 0;
	for (unsigned i = 1; i + 1 < c->n; i++) {
		if (!!(c->d[i].flags & VRING_DESC_F_WRITE) != to_guest)
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

static uint8_t vblk_rw(struct vmm_vblk *v, const struct vblk_chain *c, bool to_guest,
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

static uint8_t vblk_get_id(struct vmm_vblk *v, const struct vblk_chain *c, uint32_t *written)
{
	static const char id[20] = "vmm-min-disk";
	uint32_t left = sizeof(id);

	for (unsigned i = 1; i + 1 < c->n && left; i++) {
		uint32_t n = c->d[i].len < left ? c->d[i].len : left;
		uint8_t *p = vmm_mem_ptr(v->mem, c->d[i].addr, n);
		if (!(c->d[i].flags & VRING_DESC_F_WRITE) || !p)
			return VBLK_S_IOERR;
		memcpy(p, id + sizeof(id) - left, n);
		left -= n;
		*written += n;
	}
	return VBLK_S_OK;
}

/* Serve one chain; returns bytes written into guest buffers, or -EIO. */
static int vblk_request(struct vmm_vblk *v, const struct vblk_rings *r, uint16_t head,
			uint32_t *written)
{
	struct vblk_chain c;
	struct vblk_req_hdr h;
	const struct vring_desc *st;
	uint8_t status;
	int ret = vblk_walk(v, r, head, &c);

	if (ret < 0)
		return ret;
	st = &c.d[c.n - 1];
	if (c.n < 2 || c.d[0].len < sizeof(h) || (c.d[0].flags & VRING_DESC_F_WRITE) ||
	    !(st->flags & VRING_DESC_F_WRITE) || st->len < 1)
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
	struct vblk_rings r;
	uint16_t avail_idx;
	bool any = false;

	if (v->broken || v->queue_pfn == 0 || !v->disk)
		return v->broken ? -EIO : 0;
	if (vblk_rings(v, &r) < 0)
		return -EIO;
	avail_idx = rd16(r.avail + 2);
	if ((uint16_t)(avail_idx - v->last_avail) > VMM_VBLK_QUEUE_NUM)
		return vblk_break(v, "virtio-blk: available index %u runs %u entries ahead of %u",
				  avail_idx, (unsigned)(uint16_t)(avail_idx - v->last_avail), v->last_avail);
	while (v->last_avail != avail_idx) {
		uint16_t head = rd16(r.avail + 4 + 2 * (v->last_avail % VMM_VBLK_QUEUE_NUM));
		uint8_t *ue = r.used + 4 + 8 * (v->used_idx % VMM_VBLK_QUEUE_NUM);
		uint32_t written = 0;

		if (vblk_request(v, &r, head, &written) < 0)
			return -EIO;
		wr32(ue, head);
		wr32(ue + 4, written);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		wr16(r.used + 2, ++v->used_idx);
		v->last_avail++;
		any = true;
	}
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
	wr32(regs + VBLK_QUEUE_PFN, v->queue_sel == 0 ? v->queue_pfn : 0);
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
		v->queue_pfn = val;
		v->last_avail = v->used_idx = 0;
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
			vblk_reset(v);
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
