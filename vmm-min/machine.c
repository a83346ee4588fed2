/* The machine: guest RAM around the PCI hole, the firmware ROM, and the
 * device set registered on the bus.  vmm.c runs it. */
#include "machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define GIB (1024 * MIB)
#define PCI_HOLE_START (3 * GIB)
#define VGA_HOLE_START 0xa0000ull
#define VGA_HOLE_END 0xc0000ull
#define ISA_BIOS_BYTES (128 * 1024ull)
#define FOUR_GIB (4 * GIB)
#define VBLK_SLOT 2

static int machine_ram(struct vmm_machine *m, uint64_t mem_bytes, char *err, size_t err_bytes)
{
	int ret;

	m->below_4g = mem_bytes < PCI_HOLE_START ? mem_bytes : PCI_HOLE_START;
	m->above_4g = mem_bytes - m->below_4g;
	m->ram = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->ram == MAP_FAILED) {
		m->ram = NULL;
		snprintf(err, err_bytes, "cannot map %llu bytes of guest RAM",
			 (unsigned long long)mem_bytes);
		return -ENOMEM;
	}
	m->ram_bytes = mem_bytes;
	m->mem.r[0] = (struct vmm_mem_region){ 0, VGA_HOLE_START, m->ram };
	m->mem.r[1] = (struct vmm_mem_region){ VGA_HOLE_END, m->below_4g - VGA_HOLE_END,
					       m->ram + VGA_HOLE_END };
	m->mem.n = 2;
	if (m->above_4g)
		m->mem.r[m->mem.n++] = (struct vmm_mem_region){ FOUR_GIB, m->above_4g,
								m->ram + m->below_4g };
	for (unsigned i = 0; i < m->mem.n; i++) {
		ret = vmm_kvm_slot(&m->kvm, m->mem.r[i].gpa, m->mem.r[i].bytes, m->mem.r[i].host,
				   false, err, err_bytes);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The ROM at the top of 4 GiB (read-only slot) and its last 128 KiB copied
 * to 0xE0000-0xFFFFF, which is RAM as after the firmware opened the PAM
 * registers (SeaBIOS then copies itself there again). */
static int machine_firmware(struct vmm_machine *m, const char *path, char *err, size_t err_bytes)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	uint64_t isa_bytes;

	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, err_bytes, "firmware %s: %s", path, strerror(-ret));
		goto out_close;
	}
	/* Up to 256 KiB: larger would collide with KVM's TSS pages below. */
	if (st.st_size < 65536 || st.st_size > (off_t)(256 * 1024) || st.st_size % 65536) {
		snprintf(err, err_bytes, "firmware %s: size %lld is not a multiple of 64 KiB up to 256 KiB",
			 path, (long long)st.st_size);
		ret = -EINVAL;
		goto out_close;
	}
	m->rom_bytes = (size_t)st.st_size;
	m->rom = mmap(NULL, m->rom_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->rom == MAP_FAILED || pread(fd, m->rom, m->rom_bytes, 0) != (ssize_t)m->rom_bytes) {
		if (m->rom == MAP_FAILED)
			m->rom = NULL;
		snprintf(err, err_bytes, "firmware %s: cannot read %zu bytes", path, m->rom_bytes);
		ret = -EIO;
		goto out_close;
	}
	m->rom_hash = vmm_fnv1a(0, m->rom, m->rom_bytes);
	isa_bytes = m->rom_bytes < ISA_BIOS_BYTES ? m->rom_bytes : ISA_BIOS_BYTES;
	memcpy(m->ram + 0x100000 - isa_bytes, m->rom + m->rom_bytes - isa_bytes, isa_bytes);
	ret = vmm_kvm_slot(&m->kvm, FOUR_GIB - m->rom_bytes, m->rom_bytes, m->rom, true, err,
			   err_bytes);
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}

unsigned vmm_machine_e820(const struct vmm_machine *m, bool for_linux, struct vmm_e820 *e)
{
	unsigned n = 0;

	if (for_linux) {
		e[n++] = (struct vmm_e820){ 0, 0x9fc00, VMM_E820_RAM };
		e[n++] = (struct vmm_e820){ 0x9fc00, 0x400, VMM_E820_RESERVED };
		e[n++] = (struct vmm_e820){ 0xf0000, 0x10000, VMM_E820_RESERVED };
		e[n++] = (struct vmm_e820){ 0x100000, m->below_4g - 0x100000, VMM_E820_RAM };
	} else {
		e[n++] = (struct vmm_e820){ 0, m->below_4g, VMM_E820_RAM };
		e[n++] = (struct vmm_e820){ 0xfffbc000, 0x4000, VMM_E820_RESERVED };
	}
	if (m->above_4g)
		e[n++] = (struct vmm_e820){ FOUR_GIB, m->above_4g, VMM_E820_RAM };
	return n;
}

static int machine_fwcfg(struct vmm_machine *m, unsigned cpus)
{
	struct vmm_e820 e[8];
	unsigned n = vmm_machine_e820(m, false, e);
	uint64_t ram = m->ram_bytes;
	uint16_t ncpu = (uint16_t)cpus, zero16 = 0;
	uint8_t irq0_override = 0; /* KVM's default routing: GSI 0 is IOAPIC pin 0 */
	uint32_t boot_fail_wait_ms = 0; /* "No bootable device": reboot at once */
	uint64_t sercon_port = 0x3f8;   /* BIOS text screen mirrored to COM1 */
	int ret = 0;

	ret |= vmm_fwcfg_add(&m->fwcfg, VMM_FWCFG_RAM_SIZE, &ram, sizeof(ram));
	ret |= vmm_fwcfg_add(&m->fwcfg, VMM_FWCFG_NB_CPUS, &ncpu, sizeof(ncpu));
	ret |= vmm_fwcfg_add(&m->fwcfg, VMM_FWCFG_MAX_CPUS, &ncpu, sizeof(ncpu));
	ret |= vmm_fwcfg_add(&m->fwcfg, VMM_FWCFG_BOOT_MENU, &zero16, sizeof(zero16));
	ret |= vmm_fwcfg_add(&m->fwcfg, VMM_FWCFG_IRQ0_OVERRIDE, &irq0_override, 1);
	ret |= vmm_fwcfg_add_file(&m->fwcfg, "etc/e820", e, n * (uint32_t)sizeof(e[0]));
	ret |= vmm_fwcfg_add_file(&m->fwcfg, "etc/boot-fail-wait", &boot_fail_wait_ms, 4);
	ret |= vmm_fwcfg_add_file(&m->fwcfg, "bootorder", "/pci@i0cf8/*@2\n", 15);
	ret |= vmm_fwcfg_add_file(&m->fwcfg, "etc/sercon-port", &sercon_port, sizeof(sercon_port));
	return ret ? -ENOMEM : 0;
}

static int machine_bus(struct vmm_machine *m)
{
	struct vmm_bus *b = &m->bus;
	int ret = 0, pm_idx;

	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x3f8, 8, vmm_uart_io, &m->uart, "com1");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x70, 2, vmm_rtc_io, &m->rtc, "rtc");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x510, 2, vmm_fwcfg_io, &m->fwcfg, "fw_cfg");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0xcf8, 8, vmm_pci_io, &m->pci, "pci");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x60, 5, vmm_i8042_io, &m->i8042, "i8042");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x402, 1, vmm_debugcon_io, &m->dbg, "debugcon");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x80, 1, vmm_post_io, &m->dbg, "post");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x92, 1, vmm_port92_io, &m->dbg, "port92");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0x501, 2, vmm_exitport_io, &m->dbg, "debug-exit");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0xb2, 2, vmm_apm_io, &m->pm, "apm");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0xafe0, 4, vmm_zero_io, NULL, "acpi-gpe0");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0xae00, 0x14, vmm_zero_io, NULL, "pci-hotplug");
	ret |= vmm_bus_add(b, VMM_SPACE_PIO, 0xaf00, 0x20, vmm_zero_io, NULL, "cpu-hotplug");
	pm_idx = vmm_bus_add(b, VMM_SPACE_PIO, 0, VMM_PM_IO_BYTES, vmm_pm_io, &m->pm, "acpi-pm");
	if (ret < 0 || pm_idx < 0)
		return -ENOSPC;
	vmm_pm_init(&m->pm, b, pm_idx, &m->ctl);
	vmm_pm_update(&m->pm);
	m->pci.slot1_fn3 = &m->pm.pci;
	return 0;
}

static int machine_disk(struct vmm_machine *m, const struct vmm_config *cfg, char *err,
			size_t err_bytes)
{
	int ret = vmm_disk_open(&m->disk, cfg->disk_path, cfg->disk_format, cfg->writable, err,
				err_bytes);
	int idx;

	if (ret < 0)
		return ret;
	vmm_vblk_init(&m->vblk, &m->mem, m->disk, &m->irq, &m->ev);
	m->vblk.pcibus = &m->pci;
	m->vblk.slot = VBLK_SLOT;
	idx = vmm_bus_add(&m->bus, VMM_SPACE_PIO, 0, VMM_VBLK_IO_BYTES, vmm_vblk_io, &m->vblk,
			  "virtio-blk");
	if (idx < 0)
		return idx;
	vmm_bus_place(&m->bus, idx, 0, false);
	vmm_pci_dev_bar(&m->vblk.pci, 0, VMM_VBLK_IO_BYTES, true, idx);
	return vmm_pci_plug(&m->pci, VBLK_SLOT, &m->vblk.pci);
}

/* Without firmware (direct Linux boot) nobody programs PCI: do what a BIOS
 * would, with the same choices as SeaBIOS (PIRQ A-D = 10, 10, 11, 11). */
void vmm_machine_pci_preassign(struct vmm_machine *m)
{
	static const uint8_t pirq[4] = { 10, 10, 11, 11 };
	int irq;

	for (unsigned i = 0; i < 4; i++)
		vmm_pci_cfg_write(&m->pci, &m->pci.isa, 0x60 + i, 1, pirq[i]);
	if (!m->disk)
		return;
	vmm_pci_cfg_write(&m->pci, &m->vblk.pci, 0x10, 4, 0xc000);
	vmm_pci_cfg_write(&m->pci, &m->vblk.pci, 0x04, 2, 0x0005);
	irq = vmm_pci_intx_irq(&m->pci, VBLK_SLOT);
	vmm_pci_cfg_write(&m->pci, &m->vblk.pci, 0x3c, 1, (uint32_t)(irq < 0 ? 0xff : irq));
}

/* COM1 output to the configured sink, kept for a POST snapshot meanwhile. */
static void machine_console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_machine *m = opaque;

	vmm_tee_add(&m->console_tee, buf, len);
	if (m->cfg->console_out)
		m->cfg->console_out(m->cfg->console_opaque, buf, len);
}

int vmm_machine_init(struct vmm_machine *m, const struct vmm_config *cfg, bool firmware,
		     char *err, size_t err_bytes)
{
	uint64_t mem_bytes = cfg->mem_bytes ? cfg->mem_bytes : 512 * MIB;
	int ret;

	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	m->cpus = cfg->cpus ? cfg->cpus : 1;
	m->kvm.kvm_fd = m->kvm.vm_fd = -1; /* nothing to close yet */
	vmm_fwcfg_init(&m->fwcfg);
	if (mem_bytes < 2 * MIB || mem_bytes > 1024 * GIB || mem_bytes % 4096) {
		snprintf(err, err_bytes, "guest memory of %llu bytes: need 2 MiB .. 1 TiB in pages",
			 (unsigned long long)mem_bytes);
		return -EINVAL;
	}
	ret = vmm_kvm_open(&m->kvm, err, err_bytes);
	if (ret == 0)
		ret = vmm_kvm_irqchip(&m->kvm, err, err_bytes);
	if (ret == 0)
		ret = machine_ram(m, mem_bytes, err, err_bytes);
	if (ret == 0 && firmware)
		ret = machine_firmware(m, cfg->firmware_path ? cfg->firmware_path :
					  "/usr/share/seabios/bios.bin", err, err_bytes);
	if (ret == 0)
		ret = vmm_kvm_vcpus(&m->kvm, m->cpus, err, err_bytes);
	if (ret < 0)
		return ret;
	m->irq = (struct vmm_irq){ vmm_kvm_irq_line, &m->kvm };
	m->ev = (struct vmm_events){ cfg->event, cfg->event_opaque, vmm_now_s() };
	m->dbg.ctl = &m->ctl;
	vmm_uart_init(&m->uart, 4, &m->irq, machine_console_out, m);
	m->dbg.tee = &m->fwlog_tee;
	vmm_rtc_init(&m->rtc, m->below_4g, m->above_4g, m->cpus);
	m->rtc.irq = m->irq;
	vmm_pci_init(&m->pci, &m->bus, &m->ctl);
	vmm_i8042_init(&m->i8042, &m->irq, &m->ctl);
	ret = machine_bus(m);
	if (ret == 0)
		ret = machine_fwcfg(m, m->cpus);
	if (ret < 0) {
		snprintf(err, err_bytes, "device setup: %s", strerror(-ret));
		return ret;
	}
	if (cfg->firmware_log_path) {
		m->dbg.log = fopen(cfg->firmware_log_path, "we");
		if (!m->dbg.log) {
			ret = -errno;
			snprintf(err, err_bytes, "%s: %s", cfg->firmware_log_path, strerror(-ret));
			return ret;
		}
		setvbuf(m->dbg.log, NULL, _IOLBF, 0); /* follow the firmware as it goes */
	}
	return cfg->disk_path ? machine_disk(m, cfg, err, err_bytes) : 0;
}

void vmm_machine_close(struct vmm_machine *m)
{
	vmm_kvm_close(&m->kvm);
	vmm_disk_close(m->disk);
	if (m->dbg.log)
		fclose(m->dbg.log);
	vmm_fwcfg_free(&m->fwcfg);
	free(m->console_tee.buf);
	free(m->fwlog_tee.buf);
	if (m->ram)
		munmap(m->ram, m->ram_bytes);
	if (m->rom)
		munmap(m->rom, m->rom_bytes);
	memset(m, 0, sizeof(*m));
}
