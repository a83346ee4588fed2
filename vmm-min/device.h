/* vmm-min devices: one ops struct per device kind (its own dev_*.c), one
 * table of them in machine.c.  The core (device.c) checks each one's
 * contract when the machine is built, registers its fixed I/O ranges, and
 * drives reset, the periodic tick and the snapshot records: a device that
 * holds state must say how to save and load it, so a POST snapshot cannot
 * forget one and bring it back in its power-on state. */
#ifndef VMM_DEVICE_H
#define VMM_DEVICE_H

#include "vmm_internal.h"

struct vmm_machine;

/* A fixed range the core claims for the device; the device's state is the
 * handler's opaque pointer.  Lists end with len 0. */
struct vmm_io_range {
	enum vmm_space space;
	uint64_t base, len;
	vmm_io_fn fn;
	const char *name;
};

/* Ports whose writes may reach the device late: at the guest's next exit
 * to the VMM, before that exit is handled (vmm_kvm_post_pio).  For
 * registers whose writes have no effect the guest can see until it next
 * exits, such as an address latch.  bytes 0: none. */
struct vmm_posted_pio {
	uint16_t port, bytes;
};

#define VMM_DEVICE_NAME_BYTES 32

struct vmm_device_ops {
	const char *name;                   /* unique; names the snapshot record */
	const struct vmm_io_range *ranges;  /* fixed ranges, or NULL */
	struct vmm_posted_pio posted;       /* inside one of the PIO ranges */
	/* Allocate the state, wired to the machine (IRQs, bus, PCI, memory,
	 * disk), and claim any movable range (BARs).  *state NULL with 0: the
	 * device is absent from this machine (e.g. no disk). */
	int (*create)(struct vmm_machine *m, void **state, char *err, size_t err_bytes);
	void (*destroy)(void *state);
	void (*reset)(void *state);         /* power-on register values */
	/* Snapshot: state_bytes exactly; load checks every field it takes and
	 * returns -EINVAL for a value the device could not have held. */
	uint32_t state_bytes;
	void (*save)(const void *state, uint8_t *out);
	int (*load)(void *state, const uint8_t *in);
	bool stateless;                     /* nothing to save: no save/load */
	/* Optional, from the bootstrap vCPU's periodic kick (lock held): the
	 * interval it wants until the next call, or 0 for no preference. */
	double (*tick)(void *state, double now_s);
};

struct vmm_device {
	const struct vmm_device_ops *ops;
	void *state;
};

#define VMM_MAX_DEVICES 16

struct vmm_devices {
	struct vmm_device d[VMM_MAX_DEVICES];
	unsigned n;
};

/* Check ops' contract, create the device on m and claim its ranges (a
 * range that overlaps another device's is refused).  0 or -errno with a
 * message naming the device. */
int vmm_device_add(struct vmm_devices *ds, struct vmm_machine *m, struct vmm_bus *bus,
		   const struct vmm_device_ops *ops, char *err, size_t err_bytes);
/* Contract checks alone (also for tests): 0 or -EINVAL with a message. */
int vmm_device_check_ops(const struct vmm_device_ops *ops, char *err, size_t err_bytes);
void vmm_devices_reset(struct vmm_devices *ds);
/* Runs every tick; returns the shortest interval wanted (0: none). */
double vmm_devices_tick(struct vmm_devices *ds, double now_s);
void vmm_devices_destroy(struct vmm_devices *ds);
/* The device of that name, or NULL. */
struct vmm_device *vmm_devices_find(struct vmm_devices *ds, const char *name);

#endif
