/* vmm_fwtables: vmm-min and its firmware agree, checked against what the
 * firmware itself declares, not against vmm-min's own formulas.
 *
 * SeaBIOS boots a disk whose boot sector halts (2 vCPUs, 3.5 GiB so that
 * memory above 4 GiB exists); then, with the machine as the run left it,
 * this reads the firmware's tables in guest memory and its log:
 *  - interrupt routing: the $PIR entry and the DSDT _PRT entry for the
 *    virtio-blk slot name a link; the DSDT says which PIIX register
 *    (PRQn in the P40C region at config 0x60) that link is; SeaBIOS
 *    programmed that register and wrote the same IRQ into the device's
 *    interrupt line.  Then a real request is queued in the driver's ring
 *    and the device completes it: the in-kernel PIC and IOAPIC must show
 *    that IRQ pending (level: held until ISR is read, then dropped), on the
 *    IOAPIC pin the MADT names for it, with the PIC's ELCR (written by the
 *    firmware) saying level, as the MADT override does;
 *  - the MADT's IOAPIC address and ID are KVM's IOAPIC's, it has no IRQ0 override
 *    unless KVM's routing sends the PIT there; one enabled LAPIC per vCPU;
 *  - the FADT's PM1a event/control and PM timer blocks are where the PM
 *    device decodes; writing the SSDT's _S5 sleep type with SLP_EN to
 *    PM1a_CNT powers the machine off, another type does not; no _S3/_S4
 *    is offered (vmm-min cannot resume a sleeping guest);
 *  - every e820 RAM range the firmware reports is guest RAM vmm-min mapped,
 *    and KVM's TSS/identity-map pages are reserved; the CMOS memory fields,
 *    read as SeaBIOS's CMOS fallback reads them, give the same sizes;
 *  - the firmware found as many CPUs as there are vCPUs.
 * Needs /dev/kvm (exit 77 without); run on the hardware-virtualization test
 * bed in CI (tests/hwvirt). */
#include "machine.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define GUEST_MEM_BYTES (3584 * MIB)
#define VBLK_SLOT 2
#define KVM_TSS_RESERVED_GPA 0xfffbc000ull /* identity map page + 3 TSS pages */
#define KVM_TSS_RESERVED_BYTES 0x4000ull

struct fw_facts {
	const char *log_path;        /* the firmware log (line-buffered: complete) */
	int checked;                 /* inspect ran */
};

static char *read_all(const char *path);

static uint8_t acpi_sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- $PIR ---- */

/* The link value $PIR gives INTA# of device `dev`, or -1. */
static int pir_link(const struct vmm_machine *m, unsigned dev)
{
	for (uint64_t a = 0xf0000; a < 0x100000; a += 16) {
		const uint8_t *h = vmm_mem_ptr(&m->mem, a, 32);
		unsigned size;
		if (!h || memcmp(h, "$PIR", 4))
			continue;
		size = h[6] | h[7] << 8;
		h = vmm_mem_ptr(&m->mem, a, size);
		if (!h || size < 32 || acpi_sum(h, size) != 0)
			continue;
		for (unsigned off = 32; off + 16 <= size; off += 16)
			if (h[off] == 0 && h[off + 1] == dev << 3)
				return h[off + 2]; /* INTA#: link, then bitmap */
	}
	return -1;
}

/* ---- ACPI ---- */

static const uint8_t *acpi_table(const struct vmm_machine *m, const char sig[4])
{
	const uint8_t *rsdp = NULL, *rsdt;
	uint32_t len;

	for (uint64_t a = 0xe0000; a < 0x100000 && !rsdp; a += 16) {
		const uint8_t *p = vmm_mem_ptr(&m->mem, a, 20);
		if (p && !memcmp(p, "RSD PTR ", 8) && acpi_sum(p, 20) == 0)
			rsdp = p;
	}
	if (!rsdp || !(rsdt = vmm_mem_ptr(&m->mem, le32(rsdp + 16), 36)))
		return NULL;
	len = le32(rsdt + 4);
	if (len < 36 || !(rsdt = vmm_mem_ptr(&m->mem, le32(rsdp + 16), len)))
		return NULL;
	for (uint32_t off = 36; off + 4 <= len; off += 4) {
		const uint8_t *t = vmm_mem_ptr(&m->mem, le32(rsdt + off), 36);
		if (t && !memcmp(t, sig, 4) && (t = vmm_mem_ptr(&m->mem, le32(rsdt + off), le32(t + 4))) &&
		    acpi_sum(t, le32(t + 4)) == 0)
			return t;
	}
	return NULL;
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t k)
{
	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (!memcmp(hay + i, needle, k))
			return hay + i;
	return NULL;
}

/* AML: the link name (LNKx) the _PRT gives INTA# (pin Zero) of slot. */
static int prt_link(const uint8_t *dsdt, uint32_t len, unsigned slot, char link[5])
{
	/* Package { DWordConst 0xSSSSFFFF, Zero, LNKx, Zero } */
	const uint8_t pat[] = { 0x0c, 0xff, 0xff, (uint8_t)slot, 0x00, 0x00, 'L', 'N', 'K' };
	const uint8_t *p = find_bytes(dsdt, len, pat, sizeof(pat));

	if (!p || p + sizeof(pat) >= dsdt + len)
		return -1;
	memcpy(link, p + 6, 4);
	link[4] = 0;
	return 0;
}

/* AML: the PRQn field the body of Device (link) reads, as n; -1 if none. */
static int link_prq(const uint8_t *dsdt, uint32_t len, const char *link)
{
	const uint8_t dev_op[] = { 0x5b, 0x82 };
	for (const uint8_t *p = dsdt; (p = find_bytes(p, len - (uint32_t)(p - dsdt), dev_op, 2)); p += 2) {
		unsigned lead = p[2] >> 6, pkg = lead ? (p[2] & 0x0f) : (p[2] & 0x3f);
		const uint8_t *name = p + 3 + lead, *q;
		for (unsigned i = 0; i < lead; i++)
			pkg |= (unsigned)p[3 + i] << (4 + 8 * i);
		if (name + 4 > dsdt + len || memcmp(name, link, 4) || p + 2 + pkg > dsdt + len)
			continue;
		q = find_bytes(name, (size_t)(p + 2 + pkg - name), "PRQ", 3);
		return q && q[3] >= '0' && q[3] <= '3' ? q[3] - '0' : -1;
	}
	return -1;
}

/* AML: OperationRegion (P40C, PCI_Config, ByteConst off, ...) -> off. */
static int p40c_offset(const uint8_t *dsdt, uint32_t len)
{
	const uint8_t pat[] = { 0x5b, 0x80, 'P', '4', '0', 'C', 0x02, 0x0a };
	const uint8_t *p = find_bytes(dsdt, len, pat, sizeof(pat));

	return p && p + sizeof(pat) < dsdt + len ? p[sizeof(pat)] : -1;
}

/* AML: Name (_Sx_, Package (n) { SLP_TYP_a, ... }) -> SLP_TYP_a, -1 if absent. */
static int sleep_type(const uint8_t *dsdt, uint32_t len, char state)
{
	const uint8_t pat[] = { 0x08, '_', 'S', (uint8_t)state, '_', 0x12 };
	const uint8_t *p = find_bytes(dsdt, len, pat, sizeof(pat));
	const uint8_t *e;

	if (!p || p + 10 > dsdt + len)
		return -1;
	e = p + 6 + 1 + (p[6] >> 6) + 1; /* PkgLength, NumElements */
	if (e[0] == 0x00 || e[0] == 0x01)
		return e[0];             /* Zero, One */
	return e[0] == 0x0a ? e[1] : -1; /* BytePrefix */
}

/* MADT interrupt source override for an ISA IRQ: its GSI and flags; the GSI
 * is the IRQ itself (identity) when there is none. */
static void madt_override(const uint8_t *madt, unsigned irq, unsigned *gsi, unsigned *flags,
			  bool *present)
{
	uint32_t len = le32(madt + 4);

	*gsi = irq, *flags = 0, *present = false;
	for (uint32_t off = 44; off + 2 <= len && madt[off + 1] >= 2; off += madt[off + 1])
		if (madt[off] == 2 && off + 10 <= len && madt[off + 3] == irq) {
			*gsi = le32(madt + off + 4);
			*flags = madt[off + 8] | madt[off + 9] << 8;
			*present = true;
		}
}

static void madt_checks(const struct vmm_machine *m, const uint8_t *madt)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
	uint32_t len = le32(madt + 4), ioapic_addr = 0, ioapic_id = ~0u;
	unsigned lapics = 0, gsi, flags;
	bool present;

	for (uint32_t off = 44; off + 2 <= len && madt[off + 1] >= 2; off += madt[off + 1]) {
		if (madt[off] == 0 && (le32(madt + off + 4) & 1)) /* enabled LAPIC */
			lapics++;
		if (madt[off] == 1) {
			ioapic_id = madt[off + 2];
			ioapic_addr = le32(madt + off + 4);
		}
	}
	CHECK_EQ(lapics, m->kvm.n_vcpus);
	CHECK_EQ(ioctl(m->kvm.vm_fd, KVM_GET_IRQCHIP, &chip), 0);
	CHECK_EQ(ioapic_addr, chip.chip.ioapic.base_address);
	CHECK_EQ(ioapic_id, chip.chip.ioapic.id);
	/* KVM's default routing sends GSI 0 (the PIT) to IOAPIC pin 0: an
	 * IRQ0 -> GSI 2 override would point Linux at a pin nothing drives. */
	madt_override(madt, 0, &gsi, &flags, &present);
	CHECK_EQ(gsi, 0);
}

/* ---- the firmware log ---- */

static void log_checks(const struct vmm_machine *m, const char *log)
{
	const char *p = strstr(log, "e820 map has");
	unsigned long long start, end, ram_below = 0, ram_above = 0;
	unsigned type, ncpu = 0, maxcpu = 0;
	bool tss_reserved = false;

	CHECK(p != NULL);
	while (p && (p = strchr(p, '\n')) && sscanf(p + 1, " %*u: %llx - %llx = %u", &start, &end, &type) == 3) {
		p++;
		if (type == 1) {
			/* RAM the firmware hands out must be memory vmm-min mapped */
			CHECK(end > start && vmm_mem_ptr(&m->mem, start, end - start) != NULL);
			if (start < 0x100000000ull)
				ram_below = end > ram_below ? end : ram_below;
			else
				ram_above = end - 0x100000000ull;
		}
		if (type == 2 && start <= KVM_TSS_RESERVED_GPA &&
		    end >= KVM_TSS_RESERVED_GPA + KVM_TSS_RESERVED_BYTES)
			tss_reserved = true;
	}
	CHECK(tss_reserved);
	/* The e820 RAM the firmware took from fw_cfg, against the CMOS fields
	 * read as SeaBIOS's fallback reads them (paravirt.c, qemu_platform_setup). */
	{
		struct vmm_device *d = vmm_devices_find((struct vmm_devices *)&m->devices, "rtc-cmos");
		const struct vmm_rtc *r = d ? d->state : NULL;
		uint64_t cmos_below, cmos_above;
		CHECK(r != NULL);
		if (r) {
			cmos_below = ((uint64_t)r->cmos[0x34] << 16 | (uint64_t)r->cmos[0x35] << 24) + 16 * MIB;
			cmos_above = (uint64_t)r->cmos[0x5b] << 16 | (uint64_t)r->cmos[0x5c] << 24 |
				     (uint64_t)r->cmos[0x5d] << 32;
			CHECK_EQ(cmos_below, m->below_4g);
			CHECK_EQ(cmos_above, ram_above);
			CHECK_EQ(r->cmos[0x5f] + 1, m->kvm.n_vcpus);
		}
	}
	CHECK_EQ(ram_above, m->above_4g);
	CHECK(ram_below <= m->below_4g && ram_below + 64 * MIB >= m->below_4g);
	p = strstr(log, " cpu(s) max supported ");
	while (p && p > log && p[-1] != '\n')
		p--;
	CHECK(p && sscanf(p, "Found %u cpu(s) max supported %u cpu(s)", &ncpu, &maxcpu) == 2);
	CHECK_EQ(ncpu, m->kvm.n_vcpus);
	CHECK_EQ(maxcpu, m->kvm.n_vcpus);
}

/* ---- interrupt delivery ---- */

/* Queue one 512-byte read in the ring the driver (SeaBIOS) set up, as a
 * driver would, and let the device serve it. */
static void queue_read(struct vmm_machine *m, struct vmm_vblk *v)
{
	const uint64_t buf_gpa = 0x70000, hdr_gpa = 0x71000, st_gpa = 0x71100;
	uint8_t *desc, *avail;
	uint16_t idx;
	uint64_t base = (uint64_t)v->vq.pfn * 4096;

	CHECK(v->vq.pfn != 0);
	desc = vmm_mem_ptr(&m->mem, base, 16 * v->vq.num);
	avail = vmm_mem_ptr(&m->mem, base + 16 * v->vq.num, 4 + 2 * v->vq.num);
	if (!desc || !avail)
		return;
	memset(vmm_mem_ptr(&m->mem, hdr_gpa, 16), 0, 16); /* VIRTIO_BLK_T_IN, sector 0 */
	{
		const struct { uint64_t a; uint32_t l; uint16_t f, n; } __attribute__((packed)) d[3] = {
			{ hdr_gpa, 16, 1, 1 }, { buf_gpa, 512, 1 | 2, 2 }, { st_gpa, 1, 2, 0 } };
		memcpy(desc, d, sizeof(d));
	}
	memcpy(&idx, avail + 2, 2);
	memset(avail + 4 + 2 * (idx % v->vq.num), 0, 2); /* head 0 */
	idx++;
	memcpy(avail + 2, &idx, 2);
	CHECK_EQ(vmm_vblk_process(v), 0);
	CHECK_EQ(*(uint8_t *)vmm_mem_ptr(&m->mem, st_gpa, 1), 0);
	CHECK_EQ(*(uint8_t *)vmm_mem_ptr(&m->mem, buf_gpa + 510, 1), 0x55);
}

static void pending(const struct vmm_machine *m, unsigned irq, unsigned pin, bool *pic, bool *ioapic,
		    bool *level)
{
	struct kvm_irqchip pc = { .chip_id = irq < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE };
	struct kvm_irqchip io = { .chip_id = KVM_IRQCHIP_IOAPIC };

	CHECK_EQ(ioctl(m->kvm.vm_fd, KVM_GET_IRQCHIP, &pc), 0);
	CHECK_EQ(ioctl(m->kvm.vm_fd, KVM_GET_IRQCHIP, &io), 0);
	*pic = pc.chip.pic.irr & (1u << (irq & 7));
	*level = pc.chip.pic.elcr & (1u << (irq & 7));
	*ioapic = io.chip.ioapic.irr & (1u << pin);
}

static void routing_checks(struct vmm_machine *m, const uint8_t *dsdt, const uint8_t *madt)
{
	struct vmm_vblk *v = m->boot_disk;
	uint32_t len = le32(dsdt + 4);
	char link[5] = "";
	int pir = pir_link(m, VBLK_SLOT), prq, base, isa_irq;
	unsigned gsi, flags;
	bool present, pic, ioapic, level;
	uint8_t isr;

	CHECK(v != NULL);
	CHECK(pir >= 0x60 && pir <= 0x63);
	CHECK_EQ(prt_link(dsdt, len, VBLK_SLOT, link), 0);
	prq = link_prq(dsdt, len, link);
	base = p40c_offset(dsdt, len);
	CHECK(prq >= 0 && base == 0x60);
	CHECK_EQ(pir, base + prq); /* $PIR and _PRT name the same PIIX register */
	if (!v || pir < 0x60 || pir > 0x63)
		return;
	isa_irq = m->pci->isa.cfg[pir];
	CHECK(!(isa_irq & 0x80)); /* the firmware enabled the route */
	CHECK_EQ(v->pci.cfg[0x3c], isa_irq); /* and told the OS so */
	CHECK_EQ(vmm_pci_intx_irq(m->pci, VBLK_SLOT), isa_irq);
	madt_override(madt, (unsigned)isa_irq, &gsi, &flags, &present);
	CHECK(present && flags == 0xd); /* SeaBIOS: PCI IRQs level, active high */

	queue_read(m, v);
	pending(m, (unsigned)isa_irq, gsi, &pic, &ioapic, &level);
	CHECK(pic);    /* the PIC sees the IRQ the firmware routed */
	CHECK(ioapic); /* so does the IOAPIC, on the pin the MADT names */
	CHECK(level);  /* the firmware made it level-triggered (ELCR) */
	pending(m, (unsigned)isa_irq, gsi, &pic, &ioapic, &level);
	CHECK(pic && ioapic); /* level: still asserted until the driver acks */
	vmm_vblk_io(v, 19, &isr, 1, false); /* read ISR */
	CHECK_EQ(isr, 1);
	pending(m, (unsigned)isa_irq, gsi, &pic, &ioapic, &level);
	CHECK(!pic && !ioapic);
}

/* ---- PM ---- */

static void pm_checks(struct vmm_machine *m, const uint8_t *fadt, const uint8_t *ssdt)
{
	uint32_t evt = le32(fadt + 56), cnt = le32(fadt + 64), tmr = le32(fadt + 76);
	int s5 = sleep_type(ssdt, le32(ssdt + 4), '5');
	uint8_t v[2];
	bool found = false;

	for (unsigned i = 0; i < m->bus.n; i++)
		if (!strcmp(m->bus.e[i].name, "acpi-pm") && m->bus.e[i].enabled) {
			found = true;
			CHECK_EQ(m->bus.e[i].base, evt);
			CHECK(cnt == evt + 4 && tmr == evt + 8 && tmr + 4 <= evt + m->bus.e[i].len);
		}
	CHECK(found);
	CHECK(s5 >= 0 && s5 <= 7);
	/* vmm-min cannot suspend: the firmware must not offer S3 or S4 */
	CHECK_EQ(sleep_type(ssdt, le32(ssdt + 4), '3'), -1);
	CHECK_EQ(sleep_type(ssdt, le32(ssdt + 4), '4'), -1);
	m->ctl.request = VMM_REQ_NONE;
	v[0] = 0;
	v[1] = (uint8_t)(((unsigned)s5 << 2) | 0x20); /* SLP_TYP = _S5, SLP_EN */
	vmm_bus_dispatch(&m->bus, VMM_SPACE_PIO, cnt, v, 2, true);
	CHECK_EQ(m->ctl.request, VMM_REQ_SHUTDOWN);
	m->ctl.request = VMM_REQ_NONE;
	v[1] = (uint8_t)((((unsigned)s5 ^ 1) << 2) | 0x20); /* another sleep type */
	vmm_bus_dispatch(&m->bus, VMM_SPACE_PIO, cnt, v, 2, true);
	CHECK(m->ctl.request != VMM_REQ_SHUTDOWN);
}

static void inspect(void *opaque, struct vmm_machine *m)
{
	struct fw_facts *f = opaque;
	const uint8_t *fadt = acpi_table(m, "FACP"), *madt = acpi_table(m, "APIC"), *dsdt = NULL;
	const uint8_t *ssdt = acpi_table(m, "SSDT");

	f->checked = 1;
	CHECK(fadt != NULL);
	CHECK(madt != NULL);
	if (fadt)
		dsdt = vmm_mem_ptr(&m->mem, le32(fadt + 40), 36);
	if (dsdt)
		dsdt = vmm_mem_ptr(&m->mem, le32(fadt + 40), le32(dsdt + 4));
	CHECK(dsdt && !memcmp(dsdt, "DSDT", 4) && acpi_sum(dsdt, le32(dsdt + 4)) == 0);
	CHECK(ssdt != NULL);
	if (!fadt || !madt || !dsdt || !ssdt)
		return;
	madt_checks(m, madt);
	routing_checks(m, dsdt, madt);
	pm_checks(m, fadt, ssdt);
	{
		char *log = read_all(f->log_path);
		CHECK(log != NULL);
		if (log)
			log_checks(m, log);
		free(log);
	}
}

static char *read_all(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	if (fp && buf)
		n = fread(buf, 1, (1 << 20) - 1, fp);
	if (fp)
		fclose(fp);
	if (buf)
		buf[n] = 0;
	return buf;
}

int main(void)
{
	char disk[] = "/tmp/vmm-fwtables-XXXXXX", logp[] = "/tmp/vmm-fwtables-log-XXXXXX";
	uint8_t mbr[512] = { 0xfa, 0xf4, 0xeb, 0xfd }; /* cli; hlt; jmp $-1 */
	struct vmm_config cfg = { .disk_format = "raw", .mem_bytes = GUEST_MEM_BYTES, .cpus = 2,
				  .console_in_fd = -1, .timeout_s = 300 };
	struct fw_facts facts = { 0 };
	struct vmm_result res;
	char err[256] = "";
	int dfd, lfd, ret;

	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		printf("skipped: /dev/kvm is absent\n");
		return 77;
	}
	mbr[510] = 0x55, mbr[511] = 0xaa;
	dfd = mkstemp(disk);
	lfd = mkstemp(logp);
	if (dfd < 0 || lfd < 0 || pwrite(dfd, mbr, 512, 0) != 512 || ftruncate(dfd, 1 << 20) < 0) {
		perror("temporary files");
		return 1;
	}
	close(lfd);
	cfg.disk_path = disk;
	cfg.firmware_log_path = logp;
	facts.log_path = logp;
	ret = vmm_run_inspect(&cfg, inspect, &facts, &res, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "vmm_run: %s\n", err);
	CHECK_EQ(ret, 0);
	CHECK_EQ(res.exit, VMM_EXIT_HALTED);
	CHECK(facts.checked);
	unlink(disk);
	unlink(logp);
	UNIT_DONE();
}
