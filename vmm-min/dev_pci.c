/* PCI: configuration mechanism #1 (0xCF8 address, 0xCFC data), an
 * i440FX-style host bridge at 00.0 (PAM registers accepted: the BIOS area is
 * RAM from the start) and a PIIX3-style ISA bridge at 01.0 whose PIRQ route
 * registers 0x60-0x63 decide which ISA IRQ a slot's INTx raises.  Port 0xCF9
 * is the PIIX3 reset control register. */
#include "machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
	PCI_VENDOR = 0x00, PCI_COMMAND = 0x04, PCI_CLASS_REV = 0x08, PCI_HEADER_TYPE = 0x0e,
	PCI_BAR0 = 0x10, PCI_SUBSYS_VENDOR = 0x2c, PCI_INT_LINE = 0x3c, PCI_INT_PIN = 0x3d,
	I440FX_PAM0 = 0x59, PIIX_PIRQ_ROUTE = 0x60,
};
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEM 0x2

static void put_le(uint8_t *p, unsigned bytes, uint32_t v)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void vmm_pci_dev_init(struct vmm_pci_dev *d, uint16_t vendor, uint16_t device,
		      uint32_t class_rev, uint16_t sub_vendor, uint16_t sub_id)
{
	memset(d, 0, sizeof(*d));
	put_le(d->cfg + PCI_VENDOR, 2, vendor);
	put_le(d->cfg + PCI_VENDOR + 2, 2, device);
	put_le(d->cfg + PCI_CLASS_REV, 4, class_rev);
	put_le(d->cfg + PCI_SUBSYS_VENDOR, 2, sub_vendor);
	put_le(d->cfg + PCI_SUBSYS_VENDOR + 2, 2, sub_id);
	d->wmask[PCI_COMMAND] = 0x07; /* I/O, memory, bus master */
	d->wmask[PCI_COMMAND + 1] = 0x04; /* INTx disable */
	d->wmask[0x0c] = 0xff; /* cache line size */
	d->wmask[0x0d] = 0xff; /* latency timer */
	d->wmask[PCI_INT_LINE] = 0xff;
	for (unsigned i = 0; i < VMM_PCI_BARS; i++)
		d->bar_bus_idx[i] = -1;
}

/* bytes: a power of two (>= 4 for I/O, >= 16 for memory). */
void vmm_pci_dev_bar(struct vmm_pci_dev *d, unsigned bar, uint32_t bytes, bool is_io,
		     int bus_idx)
{
	uint32_t mask = ~(bytes - 1);

	if (bar >= VMM_PCI_BARS)
		return;
	d->bar_bytes[bar] = bytes;
	d->bar_bus_idx[bar] = bus_idx;
	put_le(d->cfg + PCI_BAR0 + 4 * bar, 4, is_io ? 1 : 0);
	put_le(d->wmask + PCI_BAR0 + 4 * bar, 4, is_io ? (mask & ~3u) : (mask & ~15u));
}

static uint32_t get_le(const uint8_t *p, unsigned bytes)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* Re-place every BAR of d on the bus after a BAR or COMMAND write. */
static void pci_update_bars(struct vmm_pci *p, struct vmm_pci_dev *d)
{
	uint16_t cmd = (uint16_t)get_le(d->cfg + PCI_COMMAND, 2);

	if (!p || !p->bus)
		return;
	for (unsigned i = 0; i < VMM_PCI_BARS; i++) {
		uint32_t bar = get_le(d->cfg + PCI_BAR0 + 4 * i, 4);
		bool is_io = bar & 1;
		uint64_t base = is_io ? (bar & ~3u) : (bar & ~15u);
		bool on = is_io ? (cmd & PCI_COMMAND_IO) : (cmd & PCI_COMMAND_MEM);

		if (!d->bar_bytes[i] || d->bar_bus_idx[i] < 0)
			continue;
		vmm_bus_place(p->bus, d->bar_bus_idx[i], base, on && base != 0 &&
			      (!is_io || base + d->bar_bytes[i] <= 0x10000));
	}
}

uint32_t vmm_pci_cfg_read(struct vmm_pci_dev *d, unsigned reg, unsigned size)
{
	if (reg >= 256 || size > 4 || reg + size > 256)
		return 0xffffffffu;
	return get_le(d->cfg + reg, size);
}

void vmm_pci_dev_restored(struct vmm_pci *p, struct vmm_pci_dev *d)
{
	pci_update_bars(p, d);
	if (d->written)
		d->written(d->written_opaque);
}

void vmm_pci_cfg_write(struct vmm_pci *p, struct vmm_pci_dev *d, unsigned reg,
		       unsigned size, uint32_t val)
{
	bool bars = false;

	if (reg >= 256 || size > 4 || reg + size > 256)
		return;
	for (unsigned i = 0; i < size; i++) {
		unsigned r = reg + i;
		uint8_t m = d->wmask[r], b = (uint8_t)(val >> (8 * i));
		d->cfg[r] = (uint8_t)((d->cfg[r] & ~m) | (b & m));
		bars |= (r >= PCI_BAR0 && r < PCI_BAR0 + 24) || r == PCI_COMMAND;
	}
	if (bars)
		pci_update_bars(p, d);
	if (d->written)
		d->written(d->written_opaque);
}

void vmm_pci_reset(struct vmm_pci *p)
{
	p->cf8 = 0;
	/* i440FX host bridge; subsystem 1af4:1100 tells SeaBIOS it runs on QEMU. */
	vmm_pci_dev_init(&p->host, 0x8086, 0x1237, 0x06000002, 0x1af4, 0x1100);
	memset(p->host.wmask + I440FX_PAM0, 0xff, 7);
	p->host.wmask[0x72] = 0xff; /* SMRAM */
	/* PIIX3 ISA bridge: multi-function header like the real one. */
	vmm_pci_dev_init(&p->isa, 0x8086, 0x7000, 0x06010000, 0x1af4, 0x1100);
	p->isa.cfg[PCI_HEADER_TYPE] = 0x80;
	for (unsigned i = 0; i < 4; i++) {
		p->isa.cfg[PIIX_PIRQ_ROUTE + i] = 0x80; /* disabled */
		p->isa.wmask[PIIX_PIRQ_ROUTE + i] = 0x8f;
	}
}

void vmm_pci_init(struct vmm_pci *p, struct vmm_bus *bus, struct vmm_control *ctl)
{
	memset(p, 0, sizeof(*p));
	p->bus = bus;
	p->ctl = ctl;
	vmm_pci_reset(p);
	p->dev[0] = &p->host;
	p->dev[1 * VMM_PCI_FUNCS] = &p->isa;
}

int vmm_pci_plug(struct vmm_pci *p, unsigned slot, unsigned fn, struct vmm_pci_dev *d)
{
	unsigned devfn = slot * VMM_PCI_FUNCS + fn;

	if (slot >= VMM_PCI_SLOTS || fn >= VMM_PCI_FUNCS || p->dev[devfn])
		return -EBUSY;
	p->dev[devfn] = d;
	return 0;
}

int vmm_pci_dev_load(struct vmm_pci *p, struct vmm_pci_dev *d, const uint8_t cfg[256])
{
	for (unsigned i = 0; i < 256; i++)
		if ((cfg[i] ^ d->cfg[i]) & ~d->wmask[i])
			return -EINVAL;
	memcpy(d->cfg, cfg, 256);
	vmm_pci_dev_restored(p, d);
	return 0;
}

int vmm_pci_intx_irq(const struct vmm_pci *p, unsigned slot)
{
	const struct vmm_pci_dev *d = p->dev[(slot % VMM_PCI_SLOTS) * VMM_PCI_FUNCS];
	unsigned pin = d ? d->cfg[PCI_INT_PIN] : 0;
	uint8_t route;

	if (pin < 1 || pin > 4)
		return -1;
	/* PIIX3: device s, pin p (1-based) uses PIRQ[(s - 1 + p - 1) mod 4], the
	 * same rotation the firmware's $PIR table and ACPI _PRT declare. */
	route = p->isa.cfg[PIIX_PIRQ_ROUTE + ((slot + 3 + pin - 1) & 3)];
	return (route & 0x80) ? -1 : (route & 0x0f);
}

/* The device addressed by CF8, or NULL (bus != 0, an empty function,
 * disabled). */
static struct vmm_pci_dev *pci_addressed(struct vmm_pci *p)
{
	uint32_t a = p->cf8;
	unsigned slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;

	if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0)
		return NULL;
	return p->dev[slot * VMM_PCI_FUNCS + fn];
}

static void pci_data_io(struct vmm_pci *p, unsigned off, uint8_t *data, unsigned size,
			bool is_write)
{
	struct vmm_pci_dev *d = pci_addressed(p);
	unsigned reg = (p->cf8 & 0xfc) + off;

	if (!d) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write)
		vmm_pci_cfg_write(p, d, reg, size, vmm_io_get(data, size));
	else
		vmm_io_put(data, size, vmm_pci_cfg_read(d, reg, size));
}

/* Ports 0xCF8-0xCFF: off 0-3 address (32-bit only; byte 1 = reset control
 * 0xCF9), off 4-7 data. */
void vmm_pci_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_pci *p = opaque;

	if (off >= 4) {
		if (off + size <= 8)
			pci_data_io(p, (unsigned)off - 4, data, size, is_write);
		else if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (off == 0 && size == 4) {
		if (is_write)
			p->cf8 = vmm_io_get(data, 4) & 0x80fffffcu;
		else
			vmm_io_put(data, 4, p->cf8);
	} else if (off == 1 && size == 1) {
		if (is_write && (data[0] & 0x04) && p->ctl)
			vmm_request(p->ctl, VMM_REQ_RESET, "reboot through the reset control register 0xCF9");
		else if (!is_write)
			data[0] = 0;
	} else if (!is_write) {
		memset(data, 0xff, size);
	}
}

/* ---- the device: i440FX host bridge + PIIX3 ISA bridge, ports 0xCF8-0xCFF ---- */

struct pci_snap {
	uint32_t cf8;
	uint8_t host_cfg[256], isa_cfg[256];
} __attribute__((packed));

static int pci_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_pci *p = calloc(1, sizeof(*p));

	(void)err, (void)err_bytes;
	if (!p)
		return -ENOMEM;
	vmm_pci_init(p, &m->bus, &m->ctl);
	m->pci = p;
	*state = p;
	return 0;
}

static void pci_destroy(void *state)
{
	free(state);
}

static void pci_reset(void *state)
{
	vmm_pci_reset(state);
}

static void pci_save(const void *state, uint8_t *out)
{
	const struct vmm_pci *p = state;
	struct pci_snap s = { .cf8 = p->cf8 };

	memcpy(s.host_cfg, p->host.cfg, 256);
	memcpy(s.isa_cfg, p->isa.cfg, 256);
	memcpy(out, &s, sizeof(s));
}

static int pci_load(void *state, const uint8_t *in)
{
	struct vmm_pci *p = state;
	struct pci_snap s;

	memcpy(&s, in, sizeof(s));
	if (s.cf8 & ~0x80fffffcu)
		return -EINVAL;
	p->cf8 = s.cf8;
	if (vmm_pci_dev_load(p, &p->host, s.host_cfg) < 0 || vmm_pci_dev_load(p, &p->isa, s.isa_cfg) < 0)
		return -EINVAL;
	return 0;
}

static const struct vmm_io_range pci_ranges[] = {
	{ VMM_SPACE_PIO, 0xcf8, 8, vmm_pci_io, "pci" },
	{ 0 },
};

const struct vmm_device_ops vmm_pci_ops = {
	/* the address latch is posted: a guest's scan of all 256 buses (GRUB's
	 * video drivers do one) is one exit per register read instead of two;
	 * so is the reset control byte 0xCF9 inside it, acted on before the
	 * exit that follows it */
	.posted = { 0xcf8, 4 },
	.name = "pci-i440fx",
	.ranges = pci_ranges,
	.create = pci_create,
	.destroy = pci_destroy,
	.reset = pci_reset,
	.state_bytes = sizeof(struct pci_snap),
	.save = pci_save,
	.load = pci_load,
};
