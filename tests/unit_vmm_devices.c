/* vmm-min device models without KVM: the handlers are called directly as
 * the run loop would on port exits. */
#include "machine.h"
#include "unit.h"
#include "vmm_internal.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static uint32_t io_in(vmm_io_fn fn, void *dev, uint64_t off, unsigned size)
{
	uint8_t d[4] = { 0 };
	fn(dev, off, d, size, false);
	return vmm_io_get(d, size);
}

static void io_out(vmm_io_fn fn, void *dev, uint64_t off, unsigned size, uint32_t v)
{
	uint8_t d[4];
	vmm_io_put(d, size, v);
	fn(dev, off, d, size, true);
}

static void fwcfg_read(struct vmm_fwcfg *f, uint16_t key, void *buf, size_t n)
{
	io_out(vmm_fwcfg_io, f, 0, 2, key);
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = (uint8_t)io_in(vmm_fwcfg_io, f, 1, 1);
}

static void test_fwcfg(void)
{
	struct vmm_fwcfg f;
	struct vmm_e820 e[2] = { { 0, 0x8000000, VMM_E820_RAM }, { 0xfffbc000, 0x4000, VMM_E820_RESERVED } };
	struct vmm_e820 got[2];
	uint8_t sig[4], dir[4 + 64 * 2], past[2];
	uint32_t count, id;

	vmm_fwcfg_init(&f);
	CHECK_EQ(vmm_fwcfg_add_file(&f, "etc/e820", e, sizeof(e)), 0);
	CHECK_EQ(vmm_fwcfg_add_file(&f, "bootorder", "/pci@i0cf8/*@2\n", 15), 0);
	fwcfg_read(&f, VMM_FWCFG_SIGNATURE, sig, 4);
	CHECK(memcmp(sig, "QEMU", 4) == 0);
	fwcfg_read(&f, VMM_FWCFG_ID, &id, 4);
	CHECK_EQ(id, 1); /* no DMA bit */
	fwcfg_read(&f, VMM_FWCFG_FILE_DIR, dir, sizeof(dir));
	memcpy(&count, dir, 4);
	CHECK_EQ(be32toh(count), 2);
	CHECK(strcmp((char *)dir + 4 + 8, "etc/e820") == 0);
	CHECK_EQ(be32toh(*(uint32_t *)(dir + 4)), sizeof(e));
	CHECK(strcmp((char *)dir + 4 + 64 + 8, "bootorder") == 0);
	uint16_t sel = be16toh(*(uint16_t *)(dir + 4 + 4));
	CHECK(sel >= VMM_FWCFG_FILE_FIRST);
	fwcfg_read(&f, sel, got, sizeof(got));
	CHECK(memcmp(got, e, sizeof(e)) == 0);
	CHECK_EQ(got[1].type, VMM_E820_RESERVED);
	/* Past the end and unknown keys read zero; re-selecting rewinds. */
	fwcfg_read(&f, VMM_FWCFG_SIGNATURE, sig, 4);
	past[0] = (uint8_t)io_in(vmm_fwcfg_io, &f, 1, 1);
	fwcfg_read(&f, 0x1234, past + 1, 1);
	CHECK_EQ(past[0], 0);
	CHECK_EQ(past[1], 0);
	fwcfg_read(&f, VMM_FWCFG_SIGNATURE, sig, 1);
	CHECK_EQ(sig[0], 'Q');
	vmm_fwcfg_free(&f);
}

/* INTx routing against the firmware's own routing table: the $PIR slot
 * entries SeaBIOS 1.16 publishes for this machine (src/fw/pirtable.c: device
 * 2 INTA#-INTD# -> link registers 0x61 0x62 0x63 0x60, device 3 -> 0x62 0x63
 * 0x60 0x61), which its DSDT _PRT repeats (LNKB.. for slot 2).  The test
 * vmm_fwtables checks the same against the tables in guest memory. */
static void test_pci_routing(struct vmm_pci *p, struct vmm_pci_dev *d)
{
	static const uint8_t pir_link[2][4] = { { 0x61, 0x62, 0x63, 0x60 }, { 0x62, 0x63, 0x60, 0x61 } };
	static const uint8_t isa_irq[4] = { 5, 9, 10, 11 };

	for (unsigned r = 0; r < 4; r++)
		vmm_pci_cfg_write(p, &p->isa, 0x60 + r, 1, 0x80); /* all disabled */
	CHECK_EQ(vmm_pci_intx_irq(p, 2), -1);
	for (unsigned r = 0; r < 4; r++)
		vmm_pci_cfg_write(p, &p->isa, 0x60 + r, 1, isa_irq[r]);
	for (unsigned slot = 2; slot <= 3; slot++) {
		struct vmm_pci_dev *dev = slot == 2 ? d : NULL, extra;
		if (!dev) {
			vmm_pci_dev_init(&extra, 0x1af4, 0x1001, 0x01000000, 0x1af4, 2);
			CHECK_EQ(vmm_pci_plug(p, slot, 0, &extra), 0);
			dev = &extra;
		}
		for (unsigned pin = 1; pin <= 4; pin++) {
			dev->cfg[0x3d] = (uint8_t)pin;
			CHECK_EQ(vmm_pci_intx_irq(p, slot), isa_irq[pir_link[slot - 2][pin - 1] - 0x60]);
		}
		dev->cfg[0x3d] = 1;
		if (dev == &extra)
			p->dev[slot * VMM_PCI_FUNCS] = NULL;
	}
}

static void test_pci(void)
{
	struct vmm_bus bus = { 0 };
	struct vmm_pci p;
	struct vmm_pci_dev d;
	int idx;

	vmm_pci_init(&p, &bus, NULL);
	vmm_pci_dev_init(&d, 0x1af4, 0x1001, 0x01000000, 0x1af4, 2);
	idx = vmm_bus_add(&bus, VMM_SPACE_PIO, 0, 0x40, vmm_post_io, NULL, "dummy");
	vmm_bus_place(&bus, idx, 0, false);
	vmm_pci_dev_bar(&d, 0, 0x40, true, idx);
	d.cfg[0x3d] = 1;
	CHECK_EQ(vmm_pci_plug(&p, 2, 0, &d), 0);
	CHECK(vmm_pci_plug(&p, 2, 0, &d) < 0);
	CHECK(vmm_pci_plug(&p, 32, 0, &d) < 0);
	CHECK(vmm_pci_plug(&p, 3, 8, &d) < 0);
	/* vendor/device of 00.0, 01.0, 02.0; nothing at 03.0 or bus 1 */
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0x12378086);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 2), 0x8086);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000 | 1 << 11);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0x70008086);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000 | 2 << 11);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0x10011af4);
	CHECK_EQ(io_in(vmm_pci_io, &p, 6, 2), 0x1001);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000 | 3 << 11);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0xffffffff);
	io_out(vmm_pci_io, &p, 0, 4, 0x80010000);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0xffffffff);
	/* QEMU detection: host bridge subsystem 1af4:1100 */
	CHECK_EQ(vmm_pci_cfg_read(&p.host, 0x2c, 4), 0x11001af4);
	/* BAR sizing: all ones reads back the size mask with the I/O bit */
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000 | 2 << 11 | 0x10);
	io_out(vmm_pci_io, &p, 4, 4, 0xffffffff);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0xffffffc1);
	io_out(vmm_pci_io, &p, 4, 4, 0xc000);
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0xc001);
	CHECK(!bus.e[idx].enabled); /* I/O decode still off */
	io_out(vmm_pci_io, &p, 0, 4, 0x80000000 | 2 << 11 | 0x04);
	io_out(vmm_pci_io, &p, 4, 2, 0x0001);
	CHECK(bus.e[idx].enabled);
	CHECK_EQ(bus.e[idx].base, 0xc000);
	/* Read-only identity: writes to vendor/device are ignored */
	vmm_pci_cfg_write(&p, &d, 0, 4, 0);
	CHECK_EQ(vmm_pci_cfg_read(&d, 0, 4), 0x10011af4);
	/* PAM registers accepted */
	vmm_pci_cfg_write(&p, &p.host, 0x59, 1, 0x30);
	CHECK_EQ(vmm_pci_cfg_read(&p.host, 0x59, 1), 0x30);
	test_pci_routing(&p, &d);
	/* Out-of-range config offsets are refused, not overrun */
	CHECK_EQ(vmm_pci_cfg_read(&d, 254, 4), 0xffffffff);
	vmm_pci_cfg_write(&p, &d, 300, 4, 0);
}

struct irq_log {
	int level[16];
	int changes;
};

static void irq_set(void *opaque, unsigned irq, int level)
{
	struct irq_log *l = opaque;
	if (irq < 16) {
		l->level[irq] = level;
		l->changes++;
	}
}

static uint8_t cmos(struct vmm_rtc *r, uint8_t reg)
{
	io_out(vmm_rtc_io, r, 0, 1, reg);
	return (uint8_t)io_in(vmm_rtc_io, r, 1, 1);
}

static void test_rtc(void)
{
	struct vmm_rtc r;
	const uint64_t mib = 1024 * 1024;
	uint8_t s0, s1;

	vmm_rtc_init(&r, 512 * mib, 1024 * mib, 2);
	CHECK_EQ(cmos(&r, 0x15) | cmos(&r, 0x16) << 8, 640);
	CHECK_EQ(cmos(&r, 0x17) | cmos(&r, 0x18) << 8, 0xffff); /* 511 MiB capped */
	CHECK_EQ(cmos(&r, 0x30) | cmos(&r, 0x31) << 8, 0xffff);
	CHECK_EQ(cmos(&r, 0x34) | cmos(&r, 0x35) << 8, (512 - 16) * 16);
	CHECK_EQ(cmos(&r, 0x5b) | cmos(&r, 0x5c) << 8 | cmos(&r, 0x5d) << 16, 1024 * 16);
	CHECK_EQ(cmos(&r, 0x5f), 1);
	vmm_rtc_init(&r, 8 * mib, 0, 1);
	CHECK_EQ(cmos(&r, 0x17) | cmos(&r, 0x18) << 8, 7 * 1024);
	CHECK_EQ(cmos(&r, 0x34) | cmos(&r, 0x35) << 8, 0);
	CHECK_EQ(cmos(&r, 0x0a) & 0x80, 0); /* no update in progress */
	CHECK_EQ(cmos(&r, 0x0d), 0x80);
	/* BCD clock that ticks */
	s0 = cmos(&r, 0x00);
	CHECK((s0 & 0x0f) <= 9 && (s0 >> 4) <= 5);
	CHECK((cmos(&r, 0x04) >> 4) <= 2);
	for (int i = 0; i < 30 && (s1 = cmos(&r, 0x00)) == s0; i++)
		usleep(100000);
	CHECK(s1 != s0);
	/* periodic interrupt: off until PIE; 1024 Hz at rate 6; C flags it */
	{
		struct irq_log il = { { 0 }, 0 };
		r.irq = (struct vmm_irq){ irq_set, &il };
		CHECK(vmm_rtc_period_s(&r) == 0);
		io_out(vmm_rtc_io, &r, 0, 1, 0x0b);
		io_out(vmm_rtc_io, &r, 1, 1, 0x42);
		CHECK(vmm_rtc_period_s(&r) > 0.00097 && vmm_rtc_period_s(&r) < 0.00098);
		vmm_rtc_tick(&r, 100.0);
		CHECK_EQ(il.changes, 2);                       /* one edge on IRQ 8 */
		vmm_rtc_tick(&r, 100.0001);                    /* not a period yet */
		CHECK_EQ(il.changes, 2);
		CHECK_EQ(cmos(&r, 0x0c), 0xc0);
		CHECK_EQ(cmos(&r, 0x0c), 0x00);                /* read clears */
	}
	/* ordinary NVRAM bytes are stored; bit 7 of the index masks NMI only */
	io_out(vmm_rtc_io, &r, 0, 1, 0x80 | 0x40);
	io_out(vmm_rtc_io, &r, 1, 1, 0x5a);
	CHECK_EQ(cmos(&r, 0x40), 0x5a);
}

struct capture {
	uint8_t buf[64];
	size_t n;
};

static void cap_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct capture *c = opaque;
	for (size_t i = 0; i < len && c->n < sizeof(c->buf); i++)
		c->buf[c->n++] = buf[i];
}

static void test_uart(void)
{
	struct vmm_uart u;
	struct capture c = { .n = 0 };
	struct irq_log il = { { 0 }, 0 };
	struct vmm_irq irq = { irq_set, &il };

	vmm_uart_init(&u, 4, &irq, cap_out, &c);
	CHECK_EQ(io_in(vmm_uart_io, &u, 5, 1) & 0x60, 0x60); /* THRE | TEMT */
	io_out(vmm_uart_io, &u, 0, 1, 'h');
	io_out(vmm_uart_io, &u, 0, 1, 'i');
	CHECK_EQ(c.n, 2);
	CHECK(memcmp(c.buf, "hi", 2) == 0);
	/* divisor latch does not transmit */
	io_out(vmm_uart_io, &u, 3, 1, 0x80);
	io_out(vmm_uart_io, &u, 0, 1, 1);
	io_out(vmm_uart_io, &u, 3, 1, 0x03);
	CHECK_EQ(c.n, 2);
	/* scratch register */
	io_out(vmm_uart_io, &u, 7, 1, 0xa5);
	CHECK_EQ(io_in(vmm_uart_io, &u, 7, 1), 0xa5);
	/* receive: DR set, byte read back, IRQ 4 with OUT2 and IER.RDI */
	io_out(vmm_uart_io, &u, 4, 1, 0x08);
	io_out(vmm_uart_io, &u, 1, 1, 0x01);
	CHECK_EQ(vmm_uart_feed(&u, (const uint8_t *)"k", 1), 1);
	CHECK_EQ(io_in(vmm_uart_io, &u, 5, 1) & 1, 1);
	CHECK_EQ(il.level[4], 1);
	CHECK_EQ(io_in(vmm_uart_io, &u, 2, 1) & 0x0f, 0x04);
	CHECK_EQ(io_in(vmm_uart_io, &u, 0, 1), 'k');
	CHECK_EQ(io_in(vmm_uart_io, &u, 5, 1) & 1, 0);
	CHECK_EQ(il.level[4], 0);
	/* THRE interrupt: pending after enabling, cleared by reading IIR */
	io_out(vmm_uart_io, &u, 1, 1, 0x02);
	CHECK_EQ(il.level[4], 1);
	CHECK_EQ(io_in(vmm_uart_io, &u, 2, 1) & 0x0f, 0x02);
	CHECK_EQ(io_in(vmm_uart_io, &u, 2, 1) & 0x0f, 0x01);
	CHECK_EQ(il.level[4], 0);
}

static void test_i8042(void)
{
	struct vmm_control ctl = { 0 };
	struct vmm_i8042 k;

	vmm_i8042_init(&k, NULL, &ctl);
	CHECK_EQ(io_in(vmm_i8042_io, &k, 4, 1) & 1, 0);
	io_out(vmm_i8042_io, &k, 4, 1, 0xaa); /* self test */
	CHECK_EQ(io_in(vmm_i8042_io, &k, 4, 1) & 1, 1);
	CHECK_EQ(io_in(vmm_i8042_io, &k, 0, 1), 0x55);
	io_out(vmm_i8042_io, &k, 4, 1, 0xab);
	CHECK_EQ(io_in(vmm_i8042_io, &k, 0, 1), 0x00);
	io_out(vmm_i8042_io, &k, 0, 1, 0xff); /* keyboard reset: ACK + BAT ok */
	CHECK_EQ(io_in(vmm_i8042_io, &k, 0, 1), 0xfa);
	CHECK_EQ(io_in(vmm_i8042_io, &k, 0, 1), 0xaa);
	io_out(vmm_i8042_io, &k, 4, 1, 0x60); /* write command byte */
	io_out(vmm_i8042_io, &k, 0, 1, 0x47);
	io_out(vmm_i8042_io, &k, 4, 1, 0x20);
	CHECK_EQ(io_in(vmm_i8042_io, &k, 0, 1), 0x47);
	CHECK_EQ(ctl.request, VMM_REQ_NONE);
	io_out(vmm_i8042_io, &k, 4, 1, 0xfe); /* pulse reset */
	CHECK_EQ(ctl.request, VMM_REQ_RESET);
	ctl.request = VMM_REQ_NONE;
	io_out(vmm_i8042_io, &k, 4, 1, 0xd1); /* output port with bit 0 clear */
	io_out(vmm_i8042_io, &k, 0, 1, 0xfe);
	CHECK_EQ(ctl.request, VMM_REQ_RESET);
}

static void test_bus_and_ports(void)
{
	struct vmm_control ctl = { 0 };
	struct vmm_debugport d = { .ctl = &ctl };
	struct vmm_bus bus = { 0 };
	struct vmm_pci p;
	uint8_t v[4] = { 0 };

	CHECK(vmm_bus_add(&bus, VMM_SPACE_PIO, 0x501, 2, vmm_exitport_io, &d, "exit") >= 0);
	CHECK(!vmm_bus_dispatch(&bus, VMM_SPACE_PIO, 0x503, v, 1, false));
	CHECK_EQ(v[0], 0xff);
	CHECK(!vmm_bus_dispatch(&bus, VMM_SPACE_MMIO, 0x501, v, 1, true));
	CHECK_EQ(ctl.request, VMM_REQ_NONE);
	CHECK(vmm_bus_dispatch(&bus, VMM_SPACE_PIO, 0x502, v, 1, true));
	CHECK_EQ(ctl.request, VMM_REQ_SHUTDOWN);
	ctl.request = VMM_REQ_NONE;
	vmm_pci_init(&p, NULL, &ctl);
	io_out(vmm_pci_io, &p, 1, 1, 0x06); /* 0xCF9 reset control */
	CHECK_EQ(ctl.request, VMM_REQ_RESET);
	ctl.request = VMM_REQ_NONE;
	io_out(vmm_port92_io, &d, 0, 1, 0x02);
	CHECK_EQ(ctl.request, VMM_REQ_NONE);
	io_out(vmm_port92_io, &d, 0, 1, 0x03);
	CHECK_EQ(ctl.request, VMM_REQ_RESET);
	CHECK_EQ(io_in(vmm_zero_io, NULL, 0, 4), 0);         /* ACPI blocks with no news */
}

static void test_pm(void)
{
	struct vmm_control ctl = { 0 };
	struct vmm_bus bus = { 0 };
	struct vmm_pci p;
	struct vmm_pm pm;
	uint32_t t0, t1;
	int idx = vmm_bus_add(&bus, VMM_SPACE_PIO, 0, VMM_PM_IO_BYTES, vmm_pm_io, &pm, "pm");

	vmm_pci_init(&p, &bus, &ctl);
	vmm_pm_init(&pm, &bus, idx, &ctl);
	vmm_pm_update(&pm);
	CHECK_EQ(vmm_pci_plug(&p, 1, 3, &pm.pci), 0);
	CHECK(!bus.e[idx].enabled);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000b00);           /* 01.3 */
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0x71138086);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000a00);           /* 01.2: empty */
	CHECK_EQ(io_in(vmm_pci_io, &p, 4, 4), 0xffffffff);
	io_out(vmm_pci_io, &p, 0, 4, 0x80000b58);           /* SMM reported as done */
	CHECK(io_in(vmm_pci_io, &p, 4, 4) & (1u << 25));
	io_out(vmm_pci_io, &p, 0, 4, 0x80000b40);
	io_out(vmm_pci_io, &p, 4, 4, 0xb001);
	CHECK(!bus.e[idx].enabled);                          /* PMREGMISC still off */
	io_out(vmm_pci_io, &p, 0, 4, 0x80000b80);
	io_out(vmm_pci_io, &p, 4, 1, 1);
	CHECK(bus.e[idx].enabled);
	CHECK_EQ(bus.e[idx].base, 0xb000);
	t0 = io_in(vmm_pm_io, &pm, 8, 4);
	usleep(2000);
	t1 = io_in(vmm_pm_io, &pm, 8, 4);
	CHECK(((t1 - t0) & 0xffffff) >= 3579 && ((t1 - t0) & 0xffffff) < 3579545); /* >= 1 ms, < 1 s */
	CHECK_EQ(io_in(vmm_pm_io, &pm, 4, 2) & 1, 0);
	io_out(vmm_apm_io, &pm, 0, 1, 0xf1);                 /* ACPI enable */
	CHECK_EQ(io_in(vmm_pm_io, &pm, 4, 2) & 1, 1);
	io_out(vmm_pm_io, &pm, 4, 2, 0x0001 | (5 << 10));    /* SLP_TYP without SLP_EN */
	CHECK_EQ(ctl.request, VMM_REQ_NONE);
	io_out(vmm_pm_io, &pm, 5, 1, 0x20);                  /* SLP_EN in the high byte */
	CHECK_EQ(ctl.request, VMM_REQ_SHUTDOWN);
}

static void test_mem(void)
{
	static uint8_t a[4096], b[4096];
	struct vmm_mem m = { .r = { { 0, 4096, a }, { 0x10000, 4096, b } }, .n = 2 };

	CHECK(vmm_mem_ptr(&m, 0, 4096) == a);
	CHECK(vmm_mem_ptr(&m, 0x10ff0, 16) == b + 0xff0);
	CHECK(vmm_mem_ptr(&m, 4095, 2) == NULL);     /* crosses the end */
	CHECK(vmm_mem_ptr(&m, 0x8000, 1) == NULL);   /* hole */
	CHECK(vmm_mem_ptr(&m, 0, 0) == NULL);
	CHECK(vmm_mem_ptr(&m, UINT64_MAX - 4, 16) == NULL); /* wraps */
}

/* The device core refuses a device whose contract is incomplete or whose
 * ranges collide, and every device of the machine's table meets it. */
static int stub_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	static int dummy;
	(void)m, (void)err, (void)err_bytes;
	*state = &dummy;
	return 0;
}
static void stub_void(void *state) { (void)state; }
static void stub_save(const void *state, uint8_t *out) { (void)state; out[0] = 0; }
static int stub_load(void *state, const uint8_t *in) { (void)state; return in[0] ? -EINVAL : 0; }

static void test_device_contracts(void)
{
	static const struct vmm_io_range com1[] = { { VMM_SPACE_PIO, 0x3f8, 8, vmm_zero_io, "a" }, { 0 } };
	static const struct vmm_io_range overlap[] = { { VMM_SPACE_PIO, 0x3fc, 8, vmm_zero_io, "b" }, { 0 } };
	static const struct vmm_io_range beyond[] = { { VMM_SPACE_PIO, 0xfffc, 8, vmm_zero_io, "c" }, { 0 } };
	struct vmm_device_ops ok = { .name = "ok", .ranges = com1, .create = stub_create,
				     .destroy = stub_void, .reset = stub_void, .state_bytes = 1,
				     .save = stub_save, .load = stub_load };
	struct vmm_device_ops bad;
	const struct vmm_device_ops *const *table;
	struct vmm_devices ds = { .n = 0 };
	struct vmm_bus bus = { .n = 0 };
	char err[160];
	size_t n;

	CHECK_EQ(vmm_device_check_ops(&ok, err, sizeof(err)), 0);
	bad = ok, bad.save = NULL; /* state without a way to save it */
	CHECK_EQ(vmm_device_check_ops(&bad, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "ok") && strstr(err, "save"));
	bad = ok, bad.stateless = true; /* stateless, yet save/load */
	CHECK_EQ(vmm_device_check_ops(&bad, err, sizeof(err)), -EINVAL);
	bad = ok, bad.reset = NULL;
	CHECK_EQ(vmm_device_check_ops(&bad, err, sizeof(err)), -EINVAL);
	bad = ok, bad.name = "";
	CHECK_EQ(vmm_device_check_ops(&bad, err, sizeof(err)), -EINVAL);
	bad = ok, bad.ranges = beyond; /* past port 0xffff */
	CHECK_EQ(vmm_device_check_ops(&bad, err, sizeof(err)), -EINVAL);
	CHECK_EQ(vmm_device_add(&ds, NULL, &bus, &ok, err, sizeof(err)), 0);
	CHECK_EQ(vmm_device_add(&ds, NULL, &bus, &ok, err, sizeof(err)), -EINVAL); /* twice */
	bad = ok, bad.name = "other", bad.ranges = overlap;
	CHECK_EQ(vmm_device_add(&ds, NULL, &bus, &bad, err, sizeof(err)), -EBUSY);
	CHECK(strstr(err, "overlaps") != NULL);
	vmm_devices_destroy(&ds);
	table = vmm_machine_device_table(&n);
	CHECK(n >= 8);
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(vmm_device_check_ops(table[i], err, sizeof(err)), 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(table[i]->name, table[j]->name) != 0);
	}
}

int main(void)
{
	test_device_contracts();
	test_fwcfg();
	test_pci();
	test_rtc();
	test_uart();
	test_i8042();
	test_bus_and_ports();
	test_pm();
	test_mem();
	UNIT_DONE();
}
