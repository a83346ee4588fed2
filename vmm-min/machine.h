/* vmm-min: the assembled machine (machine.c) that the run loop drives. */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include "device.h"
#include "kvm.h"
#include "vmm_internal.h"

struct vmm_machine {
	const struct vmm_config *cfg;
	unsigned cpus;
	struct vmm_kvm kvm;
	uint8_t *ram, *rom;
	uint64_t ram_bytes, below_4g, above_4g;
	size_t rom_bytes;
	struct vmm_mem mem;
	struct vmm_bus bus;
	struct vmm_control ctl;
	struct vmm_events ev;
	struct vmm_irq irq;
	struct vmm_disk *disk;                 /* the image, or NULL */
	void *fwlog;                           /* FILE * of the firmware log, or NULL */
	struct vmm_devices devices;            /* built from machine.c's table */
	/* Roles: filled in by the devices that play them when created. */
	struct vmm_pci *pci;                   /* the PCI bus devices plug into */
	struct vmm_fwcfg *fwcfg;               /* what the firmware is told */
	struct vmm_vblk *boot_disk;            /* the disk the firmware boots */
	struct vmm_tee console_tee, screen_tee, fwlog_tee; /* POST snapshot: output to replay */
	uint64_t rom_hash;                     /* FNV-1a of the firmware bytes */
};

/* COM1 output and the BIOS screen (COM2): to the configured sinks, kept
 * for a POST snapshot meanwhile. */
void vmm_machine_console_out(void *opaque, const uint8_t *buf, size_t len);
void vmm_machine_screen_out(void *opaque, const uint8_t *buf, size_t len);

/* The device kinds a machine is built from, in creation order. */
const struct vmm_device_ops *const *vmm_machine_device_table(size_t *n);

int vmm_machine_init(struct vmm_machine *m, const struct vmm_config *cfg, bool firmware,
		     char *err, size_t err_bytes);
void vmm_machine_close(struct vmm_machine *m);
unsigned vmm_machine_e820(const struct vmm_machine *m, bool for_linux, struct vmm_e820 *e);
void vmm_machine_pci_preassign(struct vmm_machine *m);
/* A flash-sized firmware image (OVMF) rather than SeaBIOS. */
bool vmm_machine_uefi(const struct vmm_machine *m);

/* Tests: run as vmm_run does, then hand the machine as the run left it
 * (vCPUs stopped, devices and guest memory intact) to fn before it is
 * torn down. */
int vmm_run_inspect(const struct vmm_config *cfg, void (*fn)(void *opaque, struct vmm_machine *m),
		    void *opaque, struct vmm_result *res, char *err, size_t err_bytes);

/* POST snapshots (snapshot.c).  restore: 1 when the machine now stands
 * where the snapshot was taken (a virtio-blk notify pending), 0 when there
 * is none for this machine, -errno when one exists but could not be applied
 * (the machine must then be rebuilt).  save: at the held first notify, with
 * the OUT completed; 0 or -errno. */
int vmm_snap_restore(struct vmm_machine *m, const char *dir);
int vmm_snap_save(struct vmm_machine *m, const char *dir);
uint64_t vmm_fnv1a(uint64_t h, const void *data, size_t len);

#endif
