/* The device core: contract checks, range claims, and the walks over the
 * machine's devices (reset, tick, destroy).  Snapshot records are written
 * and read by snapshot.c through the same table. */
#include "device.h"
#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool posted_in_range(const struct vmm_device_ops *ops)
{
	uint32_t lo = ops->posted.port, hi = lo + ops->posted.bytes;

	for (const struct vmm_io_range *r = ops->ranges; r && r->len; r++)
		if (r->space == VMM_SPACE_PIO && lo >= r->base && hi <= r->base + r->len)
			return true;
	return false;
}

int vmm_device_check_ops(const struct vmm_device_ops *ops, char *err, size_t err_bytes)
{
	const char *name = ops && ops->name ? ops->name : "(unnamed)";
	const char *why = NULL;

	if (!ops || !ops->name || !ops->name[0] || strlen(ops->name) >= VMM_DEVICE_NAME_BYTES)
		why = "needs a name of 1 to 31 bytes";
	else if (!ops->create || !ops->destroy || !ops->reset)
		why = "needs create, destroy and reset";
	else if (ops->stateless && (ops->save || ops->load || ops->state_bytes))
		why = "is stateless but has save/load";
	else if (!ops->stateless && (!ops->save || !ops->load || !ops->state_bytes))
		why = "holds state but lacks save, load or state_bytes";
	for (const struct vmm_io_range *r = ops ? ops->ranges : NULL; !why && r && r->len; r++)
		if (!r->fn || r->base + r->len < r->base ||
		    (r->space == VMM_SPACE_PIO && r->base + r->len > 0x10000))
			why = "has a range without a handler or beyond its space";
	if (!why && ops->posted.bytes && !posted_in_range(ops))
		why = "posts writes to ports outside its ranges";
	if (why) {
		snprintf(err, err_bytes, "device %s %s", name, why);
		return -EINVAL;
	}
	return 0;
}

static const struct vmm_bus_entry *bus_overlap(const struct vmm_bus *bus,
					       const struct vmm_io_range *r)
{
	for (unsigned i = 0; i < bus->n; i++) {
		const struct vmm_bus_entry *e = &bus->e[i];
		if (e->enabled && e->space == r->space && r->base < e->base + e->len &&
		    e->base < r->base + r->len)
			return e;
	}
	return NULL;
}

static int device_claim(struct vmm_machine *m, struct vmm_bus *bus, const struct vmm_device_ops *ops,
			void *state, char *err, size_t err_bytes)
{
	for (const struct vmm_io_range *r = ops->ranges; r && r->len; r++) {
		const struct vmm_bus_entry *o = bus_overlap(bus, r);
		if (o) {
			snprintf(err, err_bytes, "device %s: range %s at 0x%llx overlaps %s",
				 ops->name, r->name, (unsigned long long)r->base, o->name);
			return -EBUSY;
		}
		if (vmm_bus_add(bus, r->space, r->base, r->len, r->fn, state, r->name) < 0) {
			snprintf(err, err_bytes, "device %s: the bus is full", ops->name);
			return -ENOSPC;
		}
	}
	if (ops->posted.bytes && m) /* without it, the writes stay exits */
		(void)vmm_kvm_post_pio(&m->kvm, ops->posted.port, ops->posted.bytes);
	return 0;
}

int vmm_device_add(struct vmm_devices *ds, struct vmm_machine *m, struct vmm_bus *bus,
		   const struct vmm_device_ops *ops, char *err, size_t err_bytes)
{
	void *state = NULL;
	int ret = vmm_device_check_ops(ops, err, err_bytes);

	if (ret < 0)
		return ret;
	if (vmm_devices_find(ds, ops->name) || ds->n >= VMM_MAX_DEVICES) {
		snprintf(err, err_bytes, "device %s: %s", ops->name,
			 ds->n >= VMM_MAX_DEVICES ? "too many devices" : "added twice");
		return -EINVAL;
	}
	ret = ops->create(m, &state, err, err_bytes);
	if (ret < 0 || !state)
		return ret;
	ds->d[ds->n++] = (struct vmm_device){ ops, state }; /* destroyed with the rest from here */
	ops->reset(state);
	return device_claim(m, bus, ops, state, err, err_bytes);
}

void vmm_devices_reset(struct vmm_devices *ds)
{
	for (unsigned i = 0; i < ds->n; i++)
		ds->d[i].ops->reset(ds->d[i].state);
}

double vmm_devices_tick(struct vmm_devices *ds, double now_s)
{
	double want_s = 0;

	for (unsigned i = 0; i < ds->n; i++) {
		double w;
		if (!ds->d[i].ops->tick)
			continue;
		w = ds->d[i].ops->tick(ds->d[i].state, now_s);
		if (w > 0 && (want_s == 0 || w < want_s))
			want_s = w;
	}
	return want_s;
}

void vmm_devices_destroy(struct vmm_devices *ds)
{
	while (ds->n > 0) {
		ds->n--;
		ds->d[ds->n].ops->destroy(ds->d[ds->n].state);
	}
}

struct vmm_device *vmm_devices_find(struct vmm_devices *ds, const char *name)
{
	for (unsigned i = 0; i < ds->n; i++)
		if (!strcmp(ds->d[i].ops->name, name))
			return &ds->d[i];
	return NULL;
}
