/* The I/O bus: a small table of port and MMIO ranges, each with a handler
 * and its device's opaque pointer; plus guest memory lookup and events. */
#include "vmm_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int vmm_bus_add(struct vmm_bus *bus, enum vmm_space space, uint64_t base, uint64_t len,
		vmm_io_fn fn, void *opaque, const char *name)
{
	if (bus->n >= VMM_BUS_MAX_ENTRIES || len == 0)
		return -ENOSPC;
	bus->e[bus->n] = (struct vmm_bus_entry){ .space = space, .base = base, .len = len,
		.fn = fn, .opaque = opaque, .enabled = true, .name = name };
	return (int)bus->n++;
}

void vmm_bus_place(struct vmm_bus *bus, int idx, uint64_t base, bool enabled)
{
	if (idx < 0 || (unsigned)idx >= bus->n)
		return;
	bus->e[idx].base = base;
	bus->e[idx].enabled = enabled;
}

bool vmm_bus_dispatch(struct vmm_bus *bus, enum vmm_space space, uint64_t addr,
		      uint8_t *data, unsigned size, bool is_write)
{
	for (unsigned i = 0; i < bus->n; i++) {
		struct vmm_bus_entry *e = &bus->e[i];
		if (!e->enabled || e->space != space || addr < e->base || addr - e->base >= e->len)
			continue;
		e->fn(e->opaque, addr - e->base, data, size, is_write);
		return true;
	}
	bus->unclaimed++;
	if (!is_write)
		memset(data, 0xff, size);
	return false;
}

void *vmm_mem_ptr(const struct vmm_mem *mem, uint64_t gpa, uint64_t len_bytes)
{
	uint64_t end;

	if (len_bytes == 0 || __builtin_add_overflow(gpa, len_bytes, &end))
		return NULL;
	for (unsigned i = 0; i < mem->n; i++) {
		const struct vmm_mem_region *r = &mem->r[i];
		if (gpa >= r->gpa && end <= r->gpa + r->bytes)
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

double vmm_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void vmm_emit(const struct vmm_events *ev, enum vmm_event_type type, uint64_t off,
	      uint64_t len, const char *detail)
{
	struct vmm_event e = { .type = type, .offset_bytes = off, .length_bytes = len,
			       .detail = detail };
	if (!ev || !ev->fn)
		return;
	e.t_s = vmm_now_s() - ev->t0_s;
	ev->fn(ev->opaque, &e);
}
