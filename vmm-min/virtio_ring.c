/* Split virtqueues in guest memory (virtio 1.x, 2.7; the legacy layout:
 * descriptor table, available ring, then the used ring at the next 4 KiB
 * boundary), for any virtio device.  Guest memory is hostile: every ring and
 * buffer is bounds-checked through vmm_mem_ptr, the available index may run
 * at most a queue ahead, and a chain is walked at most queue-size steps, so
 * a loop in the descriptors ends.  Failures are -EIO with the reason in why,
 * for the device to mark itself broken. */
#include "vmm_internal.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VRING_ALIGN 4096u

struct vring_desc_le {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} __attribute__((packed));
_Static_assert(sizeof(struct vring_desc_le) == 16, "virtq descriptor is 16 bytes");

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

int vmm_vring_map(struct vmm_vring *q, const struct vmm_mem *mem, char *why, size_t why_bytes)
{
	uint64_t num = q->num;
	uint64_t desc = (uint64_t)q->pfn * VRING_ALIGN;
	uint64_t avail = desc + 16 * num;
	uint64_t used = (avail + 6 + 2 * num + VRING_ALIGN - 1) & ~(uint64_t)(VRING_ALIGN - 1);

	q->mem = mem;
	q->desc = vmm_mem_ptr(mem, desc, 16 * num);
	q->avail = vmm_mem_ptr(mem, avail, 6 + 2 * num);
	q->used = vmm_mem_ptr(mem, used, 6 + 8 * num);
	if (q->num == 0 || q->num > VMM_VRING_MAX || (q->num & (q->num - 1)) ||
	    !q->desc || !q->avail || !q->used) {
		snprintf(why, why_bytes, "queue of %u at guest address 0x%llx (PFN %u) is outside RAM",
			 q->num, (unsigned long long)desc, q->pfn);
		return -EIO;
	}
	return 0;
}

int vmm_vring_pop(struct vmm_vring *q, uint16_t *head, char *why, size_t why_bytes)
{
	uint16_t avail_idx = rd16(q->avail + 2);
	uint16_t ahead = (uint16_t)(avail_idx - q->last_avail);

	if (ahead > q->num) {
		snprintf(why, why_bytes, "available index %u runs %u entries ahead of %u",
			 avail_idx, ahead, q->last_avail);
		return -EIO;
	}
	if (ahead == 0)
		return 0;
	__atomic_thread_fence(__ATOMIC_ACQUIRE); /* the ring entry after its index */
	*head = rd16(q->avail + 4 + 2 * (q->last_avail % q->num));
	q->last_avail++;
	return 1;
}

int vmm_vring_walk(const struct vmm_vring *q, uint16_t head, struct vmm_vring_chain *c,
		   char *why, size_t why_bytes)
{
	unsigned i = head;

	for (c->n = 0;; c->n++) {
		struct vmm_vring_desc *d = &c->d[c->n];
		struct vring_desc_le le;
		if (i >= q->num) {
			snprintf(why, why_bytes, "descriptor index %u >= queue size %u", i, q->num);
			return -EIO;
		}
		if (c->n >= q->num) { /* a loop, or a chain longer than the queue */
			snprintf(why, why_bytes, "descriptor chain from %u loops or exceeds %u entries",
				 head, q->num);
			return -EIO;
		}
		memcpy(&le, q->desc + 16 * i, sizeof(le));
		*d = (struct vmm_vring_desc){ le64toh(le.addr), le32toh(le.len), le16toh(le.flags),
					      le16toh(le.next) };
		if (d->flags & VMM_VRING_F_INDIRECT) {
			snprintf(why, why_bytes, "indirect descriptor %u was not negotiated", i);
			return -EIO;
		}
		if (d->len && !vmm_mem_ptr(q->mem, d->addr, d->len)) {
			snprintf(why, why_bytes, "descriptor %u buffer at 0x%llx is outside RAM", i,
				 (unsigned long long)d->addr);
			return -EIO;
		}
		if (!(d->flags & VMM_VRING_F_NEXT)) {
			c->n++;
			return 0;
		}
		i = d->next;
	}
}

void vmm_vring_push(struct vmm_vring *q, uint16_t head, uint32_t written_bytes)
{
	uint8_t *ue = q->used + 4 + 8 * (q->used_idx % q->num);

	wr32(ue, head);
	wr32(ue + 4, written_bytes);
	__atomic_thread_fence(__ATOMIC_RELEASE); /* the entry before the index */
	wr16(q->used + 2, ++q->used_idx);
}
