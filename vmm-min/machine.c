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
#define HUGE_PAGE_BYTES (2 * MIB)
#define SEABIOS_MAX_BYTES (256 * 1024ull)  /* larger would collide with the TSS */
#define FLASH_MAX_BYTES (4 * MIB)          /* OVMF's largest build */
#define SEABIOS_TSS_GPA 0xfffbd000u
#define FLASH_TSS_GPA 0xfeffd000u
#define TSS_RESERVED_BYTES 0x4000u         /* identity map page + 3 TSS pages */

/* Guest RAM 2 MiB-aligned and marked for transparent huge pages, so KVM
 * can map it with 2 MiB nested page table entries: one nested page fault
 * per 2 MiB instead of per 4 KiB (each an exit; under nested virtualization
 * an expensive one).  The alignment slack is unmapped again. */
static int machine_ram_map(struct vmm_machine *m, uint64_t mem_bytes)
{
	size_t map_bytes = (size_t)mem_bytes + HUGE_PAGE_BYTES, lead;
	uint8_t *p = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
	lead = (HUGE_PAGE_BYTES - (uintptr_t)p % HUGE_PAGE_BYTES) % HUGE_PAGE_BYTES;
	if (lead)
		munmap(p, lead);
	munmap(p + lead + mem_bytes, HUGE_PAGE_BYTES - lead);
	m->ram = p + lead;
	m->ram_bytes = mem_bytes;
	madvise(m->ram, mem_bytes, MADV_HUGEPAGE); /* advice only: fine if THP is off */
	return 0;
}

static int machine_ram(struct vmm_machine *m, uint64_t mem_bytes, char *err, size_t err_bytes)
{
	int ret;

	m->below_4g = mem_bytes < PCI_HOLE_START ? mem_bytes : PCI_HOLE_START;
	m->above_4g = mem_bytes - m->below_4g;
	ret = machine_ram_map(m, mem_bytes);
	if (ret < 0) {
		snprintf(err, err_bytes, "cannot map %llu bytes of guest RAM",
			 (unsigned long long)mem_bytes);
		return ret;
	}
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

/* Read len bytes of path into buf; 0 or -errno with the message. */
static int machine_read_file(const char *path, uint8_t *buf, size_t len, char *err,
			     size_t err_bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_bytes, "firmware %s: %s", path, strerror(-ret));
		return ret;
	}
	if (pread(fd, buf, len, 0) != (ssize_t)len) {
		snprintf(err, err_bytes, "firmware %s: cannot read %zu bytes", path, len);
		ret = -EIO;
	}
	close(fd);
	return ret;
}

static int machine_file_bytes(const char *path, uint64_t *bytes, char *err, size_t err_bytes)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int ret = -errno;
		snprintf(err, err_bytes, "firmware %s: %s", path, strerror(-ret));
		return ret;
	}
	*bytes = (uint64_t)st.st_size;
	return 0;
}

/* The ROM image in host memory: the UEFI variable store (when given)
 * followed by the code, as in OVMF.fd.  A private copy: the guest's writes
 * to it exit to the VMM and are dropped, the files are never written. */
static int machine_firmware_read(struct vmm_machine *m, const char *path, const char *vars_path,
				 char *err, size_t err_bytes)
{
	uint64_t code_bytes = 0, vars_bytes = 0, total;
	int ret = machine_file_bytes(path, &code_bytes, err, err_bytes);

	if (ret == 0 && vars_path)
		ret = machine_file_bytes(vars_path, &vars_bytes, err, err_bytes);
	if (ret < 0)
		return ret;
	total = code_bytes + vars_bytes;
	if (total < 65536 || total > FLASH_MAX_BYTES || total % 65536 || code_bytes % 4096) {
		snprintf(err, err_bytes, "firmware %s%s%s: %llu bytes, not a multiple of 64 KiB up to 4 MiB",
			 vars_path ? vars_path : "", vars_path ? " + " : "", path,
			 (unsigned long long)total);
		return -EINVAL;
	}
	m->rom_bytes = (size_t)total;
	m->rom = mmap(NULL, m->rom_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->rom == MAP_FAILED) {
		m->rom = NULL;
		snprintf(err, err_bytes, "firmware %s: cannot map %zu bytes", path, m->rom_bytes);
		return -ENOMEM;
	}
	if (vars_path)
		ret = machine_read_file(vars_path, m->rom, (size_t)vars_bytes, err, err_bytes);
	if (ret == 0)
		ret = machine_read_file(path, m->rom + vars_bytes, (size_t)code_bytes, err, err_bytes);
	m->rom_hash = vmm_fnv1a(0, m->rom, m->rom_bytes);
	return ret;
}

/* Up to 256 KiB (SeaBIOS): KVM's TSS pages just below, as before.  A
 * flash-sized image (OVMF) reaches further down: the TSS moves below 4 GiB
 * - 16 MiB, where QEMU puts it. */
static uint32_t machine_tss_gpa(const struct vmm_machine *m)
{
	return m->rom_bytes > SEABIOS_MAX_BYTES ? FLASH_TSS_GPA : SEABIOS_TSS_GPA;
}

/* The ROM at the top of 4 GiB (read-only slot) and its last 128 KiB copied
 * to 0xE0000-0xFFFFF, which is RAM as after the firmware opened the PAM
 * registers (SeaBIOS then copies itself there again). */
static int machine_firmware_map(struct vmm_machine *m, char *err, size_t err_bytes)
{
	uint64_t isa_bytes = m->rom_bytes < ISA_BIOS_BYTES ? m->rom_bytes : ISA_BIOS_BYTES;

	memcpy(m->ram + 0x100000 - isa_bytes, m->rom + m->rom_bytes - isa_bytes, isa_bytes);
	return vmm_kvm_slot(&m->kvm, FOUR_GIB - m->rom_bytes, m->rom_bytes, m->rom, true, err,
			    err_bytes);
}

bool vmm_machine_uefi(const struct vmm_machine *m)
{
	return m->rom_bytes > SEABIOS_MAX_BYTES;
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
		e[n++] = (struct vmm_e820){ machine_tss_gpa(m) - 0x1000, TSS_RESERVED_BYTES,
					    VMM_E820_RESERVED };
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
	uint64_t sercon_port = 0x2f8;   /* BIOS text screen mirrored to COM2 */
	/* S0..S5: bit 7 offered, low bits SLP_TYP (QEMU's PIIX4 format).  Only
	 * S5 (power-off, type 0, as dev_pm.c reads it): no S3/S4 to resume from. */
	static const uint8_t system_states[6] = { 0x80, 0, 0, 0, 0, 0x80 };
	int ret = 0;

	ret |= vmm_fwcfg_add(m->fwcfg, VMM_FWCFG_RAM_SIZE, &ram, sizeof(ram));
	ret |= vmm_fwcfg_add(m->fwcfg, VMM_FWCFG_NB_CPUS, &ncpu, sizeof(ncpu));
	ret |= vmm_fwcfg_add(m->fwcfg, VMM_FWCFG_MAX_CPUS, &ncpu, sizeof(ncpu));
	ret |= vmm_fwcfg_add(m->fwcfg, VMM_FWCFG_BOOT_MENU, &zero16, sizeof(zero16));
	ret |= vmm_fwcfg_add(m->fwcfg, VMM_FWCFG_IRQ0_OVERRIDE, &irq0_override, 1);
	ret |= vmm_fwcfg_add_file(m->fwcfg, "etc/e820", e, n * (uint32_t)sizeof(e[0]));
	ret |= vmm_fwcfg_add_file(m->fwcfg, "etc/boot-fail-wait", &boot_fail_wait_ms, 4);
	/* SeaBIOS's glob; OVMF keeps its own order: the disk's removable-media
	 * path \EFI\BOOT\BOOTX64.EFI, as a machine without NVRAM entries. */
	if (!vmm_machine_uefi(m))
		ret |= vmm_fwcfg_add_file(m->fwcfg, "bootorder", "/pci@i0cf8/*@2\n", 15);
	ret |= vmm_fwcfg_add_file(m->fwcfg, "etc/sercon-port", &sercon_port, sizeof(sercon_port));
	ret |= vmm_fwcfg_add_file(m->fwcfg, "etc/system-states", system_states, sizeof(system_states));
	return ret ? -ENOMEM : 0;
}

/* The devices, in creation order (the PCI bus before what plugs into it).
 * A new device kind is one dev_*.c with its ops and one line here. */
extern const struct vmm_device_ops vmm_pci_ops, vmm_fwcfg_ops, vmm_rtc_ops, vmm_uart_ops,
	vmm_com2_ops, vmm_i8042_ops, vmm_debug_ops, vmm_pm_ops, vmm_vblk_ops;
static const struct vmm_device_ops *const machine_devices[] = {
	&vmm_pci_ops, &vmm_fwcfg_ops, &vmm_rtc_ops, &vmm_uart_ops, &vmm_com2_ops, &vmm_i8042_ops,
	&vmm_debug_ops, &vmm_pm_ops, &vmm_vblk_ops,
};

const struct vmm_device_ops *const *vmm_machine_device_table(size_t *n)
{
	*n = sizeof(machine_devices) / sizeof(machine_devices[0]);
	return machine_devices;
}

static int machine_devices_add(struct vmm_machine *m, char *err, size_t err_bytes)
{
	for (size_t i = 0; i < sizeof(machine_devices) / sizeof(machine_devices[0]); i++) {
		int ret = vmm_device_add(&m->devices, m, &m->bus, machine_devices[i], err, err_bytes);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Without firmware (direct Linux boot) nobody programs PCI: do what a BIOS
 * would, with the same choices as SeaBIOS (PIRQ A-D = 10, 10, 11, 11). */
void vmm_machine_pci_preassign(struct vmm_machine *m)
{
	static const uint8_t pirq[4] = { 10, 10, 11, 11 };
	int irq;

	for (unsigned i = 0; i < 4; i++)
		vmm_pci_cfg_write(m->pci, &m->pci->isa, 0x60 + i, 1, pirq[i]);
	if (!m->boot_disk)
		return;
	vmm_pci_cfg_write(m->pci, &m->boot_disk->pci, 0x10, 4, 0xc000);
	vmm_pci_cfg_write(m->pci, &m->boot_disk->pci, 0x04, 2, 0x0005);
	irq = vmm_pci_intx_irq(m->pci, m->boot_disk->slot);
	vmm_pci_cfg_write(m->pci, &m->boot_disk->pci, 0x3c, 1, (uint32_t)(irq < 0 ? 0xff : irq));
}

void vmm_machine_console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_machine *m = opaque;

	vmm_tee_add(&m->console_tee, buf, len);
	if (m->cfg->console_out)
		m->cfg->console_out(m->cfg->console_opaque, buf, len);
}

void vmm_machine_screen_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_machine *m = opaque;

	vmm_tee_add(&m->screen_tee, buf, len);
	if (m->cfg->screen_out)
		m->cfg->screen_out(m->cfg->console_opaque, buf, len);
	else if (m->cfg->console_out)
		m->cfg->console_out(m->cfg->console_opaque, buf, len);
}

int vmm_machine_init(struct vmm_machine *m, const struct vmm_config *cfg, bool firmware,
		     char *err, size_t err_bytes)
{
	uint64_t mem_bytes = cfg->mem_bytes ? cfg->mem_bytes : 512 * MIB;
	int ret = 0;

	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	m->cpus = cfg->cpus ? cfg->cpus : 1;
	m->kvm.kvm_fd = m->kvm.vm_fd = -1; /* nothing to close yet */
	if (mem_bytes < 2 * MIB || mem_bytes > 1024 * GIB || mem_bytes % 4096) {
		snprintf(err, err_bytes, "guest memory of %llu bytes: need 2 MiB .. 1 TiB in pages",
			 (unsigned long long)mem_bytes);
		return -EINVAL;
	}
	if (firmware)
		ret = machine_firmware_read(m, cfg->firmware_path ? cfg->firmware_path :
					    "/usr/share/seabios/bios.bin", cfg->firmware_vars_path,
					    err, err_bytes);
	if (ret == 0)
		ret = vmm_kvm_open(&m->kvm, machine_tss_gpa(m), err, err_bytes);
	if (ret == 0)
		ret = vmm_kvm_irqchip(&m->kvm, err, err_bytes);
	if (ret == 0)
		ret = machine_ram(m, mem_bytes, err, err_bytes);
	if (ret == 0 && firmware)
		ret = machine_firmware_map(m, err, err_bytes);
	if (ret == 0)
		ret = vmm_kvm_vcpus(&m->kvm, m->cpus, err, err_bytes);
	if (ret < 0)
		return ret;
	m->irq = (struct vmm_irq){ vmm_kvm_irq_line, &m->kvm };
	m->ev = (struct vmm_events){ cfg->event, cfg->event_opaque, vmm_now_s() };
	if (cfg->firmware_log_path) {
		m->fwlog = fopen(cfg->firmware_log_path, "we");
		if (!m->fwlog) {
			ret = -errno;
			snprintf(err, err_bytes, "%s: %s", cfg->firmware_log_path, strerror(-ret));
			return ret;
		}
		setvbuf(m->fwlog, NULL, _IOLBF, 0); /* follow the firmware as it goes */
	}
	if (cfg->disk_path) {
		ret = vmm_disk_open(&m->disk, cfg->disk_path, cfg->disk_format, cfg->writable, cfg, err,
				    err_bytes);
		if (ret < 0)
			return ret;
	}
	ret = machine_devices_add(m, err, err_bytes);
	if (ret == 0 && machine_fwcfg(m, m->cpus) < 0) {
		snprintf(err, err_bytes, "fw_cfg: out of memory");
		ret = -ENOMEM;
	}
	return ret;
}

void vmm_machine_close(struct vmm_machine *m)
{
	vmm_devices_destroy(&m->devices);
	vmm_kvm_close(&m->kvm);
	vmm_disk_close(m->disk);
	if (m->fwlog)
		fclose(m->fwlog);
	free(m->console_tee.buf);
	free(m->screen_tee.buf);
	free(m->fwlog_tee.buf);
	if (m->ram)
		munmap(m->ram, m->ram_bytes);
	if (m->rom)
		munmap(m->rom, m->rom_bytes);
	memset(m, 0, sizeof(*m));
}
