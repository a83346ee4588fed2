/* PIIX4-style ACPI power management at PCI 01.3 (8086:7113).  The firmware
 * programs PMBASE (config 0x40) and enables the I/O block (config 0x80); the
 * block holds PM1 status/enable/control and the 24-bit ACPI PM timer
 * (3.579545 MHz, from the host's monotonic clock).  ACPI enable/disable
 * arrives on the APM control port 0xB2 and flips SCI_EN.  Writing SLP_EN to
 * PM1 control is a power-off request: the run ends as a shutdown. */
#include "machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	PM_PMBASE = 0x40, PM_DEVACTB = 0x58, PM_PMREGMISC = 0x80,
	PMIO_PM1_STS = 0x00, PMIO_PM1_EN = 0x02, PMIO_PM1_CNT = 0x04, PMIO_PM_TMR = 0x08,
};
#define DEVACTB_APMC_EN (1u << 25)
#define PM1_CNT_SCI_EN 0x0001
#define PM1_CNT_SLP_EN 0x2000
#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)
#define SLP_TYP_S5 0   /* the firmware's DSDT: Name (_S5, Package { 0, 0, ... }) */
#define ACPI_ENABLE 0xf1
#define ACPI_DISABLE 0xf0
#define PM_TIMER_HZ 3579545.0

static void pm_written(void *opaque)
{
	vmm_pm_update(opaque);
}

void vmm_pm_init(struct vmm_pm *pm, struct vmm_bus *bus, int bus_idx, struct vmm_control *ctl)
{
	memset(pm, 0, sizeof(*pm));
	pm->bus = bus;
	pm->bus_idx = bus_idx;
	pm->ctl = ctl;
	pm->t0_s = vmm_now_s();
	vmm_pci_dev_init(&pm->pci, 0x8086, 0x7113, 0x06800003, 0x1af4, 0x1100);
	pm->pci.cfg[0x3d] = 1;                   /* INTA#, SCI on IRQ 9 */
	pm->pci.cfg[PM_PMBASE] = 0x01;           /* I/O space indicator */
	pm->pci.wmask[PM_PMBASE] = 0xc0;
	pm->pci.wmask[PM_PMBASE + 1] = 0xff;
	pm->pci.wmask[PM_PMREGMISC] = 0x01;
	pm->pci.cfg[PM_DEVACTB + 3] = DEVACTB_APMC_EN >> 24; /* "SMM already set up" */
	pm->pci.written = pm_written;
	pm->pci.written_opaque = pm;
}

void vmm_pm_update(struct vmm_pm *pm)
{
	uint16_t base = (uint16_t)((pm->pci.cfg[PM_PMBASE] | pm->pci.cfg[PM_PMBASE + 1] << 8) & 0xffc0);
	bool on = (pm->pci.cfg[PM_PMREGMISC] & 1) && base != 0;

	if (pm->bus)
		vmm_bus_place(pm->bus, pm->bus_idx, base, on);
}

static uint32_t pm_timer(const struct vmm_pm *pm)
{
	double ticks = (vmm_now_s() - pm->t0_s) * PM_TIMER_HZ;
	return (uint32_t)((uint64_t)ticks & 0xffffff);
}

static uint32_t pm_read(struct vmm_pm *pm, unsigned reg)
{
	switch (reg) {
	case PMIO_PM1_STS: return pm->pm1_sts;
	case PMIO_PM1_EN: return pm->pm1_en;
	case PMIO_PM1_CNT: return pm->pm1_cnt;
	case PMIO_PM_TMR: return pm_timer(pm);
	default: return 0;
	}
}

static void pm_write(struct vmm_pm *pm, unsigned reg, uint32_t v)
{
	switch (reg) {
	case PMIO_PM1_STS: pm->pm1_sts &= (uint16_t)~v; break; /* write 1 to clear */
	case PMIO_PM1_EN: pm->pm1_en = (uint16_t)v; break;
	case PMIO_PM1_CNT:
		pm->pm1_cnt = (uint16_t)(v & ~PM1_CNT_SLP_EN);
		if ((v & PM1_CNT_SLP_EN) && PM1_CNT_SLP_TYP(v) == SLP_TYP_S5)
			vmm_request(pm->ctl, VMM_REQ_SHUTDOWN, "ACPI power-off (S5)");
		else if (v & PM1_CNT_SLP_EN)
			vmm_request(pm->ctl, VMM_REQ_SLEEP, "ACPI sleep state requested (not S5)");
		break;
	default: break;
	}
}

/* Registers are 16-bit (PM1) or 32-bit (timer); byte access to their
 * halves works like the real part. */
void vmm_pm_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_pm *pm = opaque;
	unsigned reg = (unsigned)off & ~1u, shift = ((unsigned)off & 1) * 8;

	if (off == PMIO_PM_TMR && !is_write) {
		vmm_io_put(data, size, pm_timer(pm));
		return;
	}
	if (off >= PMIO_PM_TMR || size > 2) {
		if (!is_write)
			vmm_io_put(data, size, 0);
		return;
	}
	if (is_write) {
		uint32_t cur = pm_read(pm, reg), v = vmm_io_get(data, size) << shift;
		uint32_t mask = (size == 2 ? 0xffffu : 0xffu) << shift;
		pm_write(pm, reg, reg == PMIO_PM1_STS ? v : (cur & ~mask) | (v & mask));
	} else {
		vmm_io_put(data, size, pm_read(pm, reg) >> shift);
	}
}

/* Port 0xB2 (APM control) and 0xB3 (APM status). */
void vmm_apm_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_pm *pm = opaque;

	if (size != 1) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (!is_write) {
		data[0] = off == 0 ? pm->apm_cnt : pm->apm_sts;
		return;
	}
	if (off == 1) {
		pm->apm_sts = data[0];
		return;
	}
	pm->apm_cnt = data[0];
	if (data[0] == ACPI_ENABLE)
		pm->pm1_cnt |= PM1_CNT_SCI_EN;
	else if (data[0] == ACPI_DISABLE)
		pm->pm1_cnt &= (uint16_t)~PM1_CNT_SCI_EN;
}

/* ---- the device: PIIX4 PM at 01.3, APM port 0xB2, the ACPI blocks the
 * firmware's tables name (GPE0, PCI and CPU hotplug) reading as zero ---- */

struct pm_snap {
	uint8_t cfg[256];
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	uint8_t apm_cnt, apm_sts;
	uint32_t timer;              /* the PM timer's count when saved */
} __attribute__((packed));

static int pm_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_pm *pm = calloc(1, sizeof(*pm));
	int idx = pm ? vmm_bus_add(&m->bus, VMM_SPACE_PIO, 0, VMM_PM_IO_BYTES, vmm_pm_io, pm,
				   "acpi-pm") : -ENOMEM;

	if (idx < 0 || !m->pci) {
		free(pm);
		snprintf(err, err_bytes, "piix4-pm: %s", idx < 0 ? strerror(-idx) : "no PCI bus");
		return idx < 0 ? idx : -ENODEV;
	}
	vmm_pm_init(pm, &m->bus, idx, &m->ctl);
	vmm_pci_plug(m->pci, 1, 3, &pm->pci);
	*state = pm;
	return 0;
}

static void pm_destroy(void *state)
{
	free(state);
}

static void pm_reset(void *state)
{
	struct vmm_pm *pm = state;

	vmm_pm_init(pm, pm->bus, pm->bus_idx, pm->ctl);
	vmm_pm_update(pm);
}

static void pm_save(const void *state, uint8_t *out)
{
	const struct vmm_pm *pm = state;
	struct pm_snap s = { .pm1_sts = pm->pm1_sts, .pm1_en = pm->pm1_en, .pm1_cnt = pm->pm1_cnt,
			     .apm_cnt = pm->apm_cnt, .apm_sts = pm->apm_sts, .timer = pm_timer(pm) };

	memcpy(s.cfg, pm->pci.cfg, sizeof(s.cfg));
	memcpy(out, &s, sizeof(s));
}

static int pm_load(void *state, const uint8_t *in)
{
	struct vmm_pm *pm = state;
	struct pm_snap s;

	memcpy(&s, in, sizeof(s));
	if (s.timer > 0xffffff || (s.pm1_cnt & PM1_CNT_SLP_EN))
		return -EINVAL;
	if (vmm_pci_dev_load(NULL, &pm->pci, s.cfg) < 0)
		return -EINVAL;
	pm->pm1_sts = s.pm1_sts, pm->pm1_en = s.pm1_en, pm->pm1_cnt = s.pm1_cnt;
	pm->apm_cnt = s.apm_cnt, pm->apm_sts = s.apm_sts;
	pm->t0_s = vmm_now_s() - s.timer / PM_TIMER_HZ; /* the timer goes on from there */
	return 0;
}

static const struct vmm_io_range pm_ranges[] = {
	{ VMM_SPACE_PIO, 0xb2, 2, vmm_apm_io, "apm" },
	{ VMM_SPACE_PIO, 0xafe0, 4, vmm_zero_io, "acpi-gpe0" },
	{ VMM_SPACE_PIO, 0xae00, 0x14, vmm_zero_io, "pci-hotplug" },
	{ VMM_SPACE_PIO, 0xaf00, 0x20, vmm_zero_io, "cpu-hotplug" },
	{ 0 },
};

const struct vmm_device_ops vmm_pm_ops = {
	.name = "piix4-pm",
	.ranges = pm_ranges,
	.create = pm_create,
	.destroy = pm_destroy,
	.reset = pm_reset,
	.state_bytes = sizeof(struct pm_snap),
	.save = pm_save,
	.load = pm_load,
};
