/* vmm-min: the assembled machine (machine.c) that the run loop drives. */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

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
	struct vmm_uart uart;
	struct vmm_rtc rtc;
	struct vmm_fwcfg fwcfg;
	struct vmm_pci pci;
	struct vmm_i8042 i8042;
	struct vmm_pm pm;
	struct vmm_debugport dbg;
	struct vmm_disk *disk;
	struct vmm_vblk vblk;
	struct vmm_tee console_tee, fwlog_tee; /* POST snapshot: output to replay */
	uint64_t rom_hash;                     /* FNV-1a of the firmware bytes */
};

int vmm_machine_init(struct vmm_machine *m, const struct vmm_config *cfg, bool firmware,
		     char *err, size_t err_bytes);
void vmm_machine_close(struct vmm_machine *m);
unsigned vmm_machine_e820(const struct vmm_machine *m, bool for_linux, struct vmm_e820 *e);
void vmm_machine_pci_preassign(struct vmm_machine *m);

/* POST snapshots (snapshot.c).  restore: 1 when the machine now stands
 * where the snapshot was taken (a virtio-blk notify pending), 0 when there
 * is none for this machine, -errno when one exists but could not be applied
 * (the machine must then be rebuilt).  save: at the held first notify, with
 * the OUT completed; 0 or -errno. */
int vmm_snap_restore(struct vmm_machine *m, const char *dir);
int vmm_snap_save(struct vmm_machine *m, const char *dir);
uint64_t vmm_fnv1a(uint64_t h, const void *data, size_t len);

#endif
