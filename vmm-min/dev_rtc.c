/* MC146818 CMOS/RTC at 0x70/0x71: the clock follows the host's UTC clock
 * (BCD, 24 hour), the memory size fields tell the firmware how much RAM
 * there is, and the periodic interrupt (IRQ 8) is raised from the run loop's
 * tick (coalesced when the loop is late).  No alarm or update interrupts. */
#include "machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	CMOS_SEC = 0x00, CMOS_MIN = 0x02, CMOS_HOUR = 0x04, CMOS_WDAY = 0x06,
	CMOS_MDAY = 0x07, CMOS_MON = 0x08, CMOS_YEAR = 0x09, CMOS_REG_A = 0x0a,
	CMOS_REG_B = 0x0b, CMOS_REG_C = 0x0c, CMOS_REG_D = 0x0d,
	CMOS_BASEMEM_LO = 0x15, CMOS_EXTMEM_LO = 0x17, CMOS_EXTMEM2_LO = 0x30,
	CMOS_CENTURY = 0x32, CMOS_MEM16M_LO = 0x34, CMOS_BOOTFLAG1 = 0x38,
	CMOS_BOOTFLAG2 = 0x3d, CMOS_HIGHMEM_LO = 0x5b, CMOS_SMP_COUNT = 0x5f,
};
#define REG_B_24H 0x02
#define REG_B_BINARY 0x04
#define REG_B_PIE 0x40
#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define RTC_IRQ 8

static void put16(uint8_t *cmos, unsigned reg, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	cmos[reg] = (uint8_t)v;
	cmos[reg + 1] = (uint8_t)(v >> 8);
}

void vmm_rtc_init(struct vmm_rtc *r, uint64_t below_4g_bytes, uint64_t above_4g_bytes,
		  unsigned cpus)
{
	const uint64_t mib = 1024 * 1024;
	uint64_t ext_kib = below_4g_bytes > mib ? (below_4g_bytes - mib) / 1024 : 0;
	uint64_t above16m = below_4g_bytes > 16 * mib ? (below_4g_bytes - 16 * mib) >> 16 : 0;
	uint64_t high = above_4g_bytes >> 16;

	memset(r, 0, sizeof(*r));
	r->below_4g_bytes = below_4g_bytes;
	r->above_4g_bytes = above_4g_bytes;
	r->cpus = cpus;
	r->cmos[CMOS_REG_A] = 0x26;
	r->cmos[CMOS_REG_B] = REG_B_24H;
	r->cmos[CMOS_REG_D] = 0x80; /* battery good */
	put16(r->cmos, CMOS_BASEMEM_LO, 640);
	put16(r->cmos, CMOS_EXTMEM_LO, ext_kib);
	put16(r->cmos, CMOS_EXTMEM2_LO, ext_kib);
	put16(r->cmos, CMOS_MEM16M_LO, above16m);
	r->cmos[CMOS_HIGHMEM_LO] = (uint8_t)high;
	r->cmos[CMOS_HIGHMEM_LO + 1] = (uint8_t)(high >> 8);
	r->cmos[CMOS_HIGHMEM_LO + 2] = (uint8_t)(high >> 16);
	r->cmos[CMOS_SMP_COUNT] = (uint8_t)(cpus ? cpus - 1 : 0);
	r->cmos[CMOS_BOOTFLAG2] = 0x02; /* boot from the hard disk */
	r->cmos[CMOS_BOOTFLAG1] = 0x00;
}

static uint8_t rtc_enc(const struct vmm_rtc *r, int v)
{
	if (r->cmos[CMOS_REG_B] & REG_B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int rtc_dec(const struct vmm_rtc *r, uint8_t v)
{
	if (r->cmos[CMOS_REG_B] & REG_B_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_time_field(const struct vmm_rtc *r, unsigned reg)
{
	time_t now = time(NULL) + r->offset_s;
	struct tm tm;

	gmtime_r(&now, &tm);
	switch (reg) {
	case CMOS_SEC: return rtc_enc(r, tm.tm_sec);
	case CMOS_MIN: return rtc_enc(r, tm.tm_min);
	case CMOS_HOUR: return rtc_enc(r, tm.tm_hour);
	case CMOS_WDAY: return rtc_enc(r, tm.tm_wday + 1);
	case CMOS_MDAY: return rtc_enc(r, tm.tm_mday);
	case CMOS_MON: return rtc_enc(r, tm.tm_mon + 1);
	case CMOS_YEAR: return rtc_enc(r, tm.tm_year % 100);
	default: return rtc_enc(r, (tm.tm_year + 1900) / 100);
	}
}

static bool rtc_is_time(unsigned reg)
{
	return reg == CMOS_SEC || reg == CMOS_MIN || reg == CMOS_HOUR || reg == CMOS_WDAY ||
	       reg == CMOS_MDAY || reg == CMOS_MON || reg == CMOS_YEAR || reg == CMOS_CENTURY;
}

/* A guest setting the clock moves its offset from the host clock. */
static void rtc_set_time(struct vmm_rtc *r, unsigned reg, uint8_t v)
{
	int cur = rtc_dec(r, rtc_time_field(r, reg)), want = rtc_dec(r, v);
	int64_t unit = reg == CMOS_SEC ? 1 : reg == CMOS_MIN ? 60 : reg == CMOS_HOUR ? 3600 :
		       reg == CMOS_MDAY || reg == CMOS_WDAY ? 86400 : 0;

	if (want >= 0 && want < 100)
		r->offset_s += (int64_t)(want - cur) * unit;
}

static uint8_t rtc_read(struct vmm_rtc *r, unsigned reg)
{
	if (rtc_is_time(reg))
		return rtc_time_field(r, reg);
	if (reg == CMOS_REG_C) { /* reading C acknowledges interrupts */
		uint8_t v = r->cmos[CMOS_REG_C];
		r->cmos[CMOS_REG_C] = 0;
		return v;
	}
	return r->cmos[reg];
}

static void rtc_write(struct vmm_rtc *r, unsigned reg, uint8_t v)
{
	if (rtc_is_time(reg))
		rtc_set_time(r, reg, v);
	else if (reg == CMOS_REG_A)
		r->cmos[reg] = v & 0x7f; /* UIP is read-only */
	else if (reg != CMOS_REG_C && reg != CMOS_REG_D)
		r->cmos[reg] = v;
}

void vmm_rtc_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_rtc *r = opaque;

	if (size != 1)
		return (void)(is_write ? 0 : (memset(data, 0xff, size), 0));
	if (off == 0) {
		if (is_write)
			r->index = data[0] & 0x7f; /* bit 7 masks NMI */
		else
			data[0] = 0xff;
	} else if (is_write) {
		rtc_write(r, r->index, data[0]);
	} else {
		data[0] = rtc_read(r, r->index);
	}
}

double vmm_rtc_period_s(const struct vmm_rtc *r)
{
	unsigned rate = r->cmos[CMOS_REG_A] & 0x0f;

	if (!(r->cmos[CMOS_REG_B] & REG_B_PIE) || rate == 0)
		return 0;
	if (rate < 3) /* rates 1 and 2 repeat rates 8 and 9 */
		rate += 7;
	return (double)(1u << (rate - 1)) / 32768.0;
}

void vmm_rtc_tick(struct vmm_rtc *r, double now_s)
{
	double period = vmm_rtc_period_s(r);

	if (period <= 0) {
		r->last_tick_s = now_s;
		return;
	}
	if (now_s - r->last_tick_s < period)
		return;
	r->last_tick_s = now_s;
	r->cmos[CMOS_REG_C] |= REG_C_IRQF | REG_C_PF;
	vmm_irq_set(&r->irq, RTC_IRQ, 1);
	vmm_irq_set(&r->irq, RTC_IRQ, 0);
}

/* ---- the device: CMOS/RTC at 0x70, IRQ 8 ---- */

#define RTC_FAST_TICK_S 0.001 /* while the guest wants periodic interrupts */

struct rtc_snap {
	uint8_t index, cmos[128];
	int64_t offset_s;
} __attribute__((packed));

static int rtc_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_rtc *r = calloc(1, sizeof(*r));

	(void)err, (void)err_bytes;
	if (!r)
		return -ENOMEM;
	vmm_rtc_init(r, m->below_4g, m->above_4g, m->cpus);
	r->irq = m->irq;
	*state = r;
	return 0;
}

static void rtc_destroy(void *state)
{
	free(state);
}

static void rtc_reset(void *state)
{
	struct vmm_rtc *r = state;
	struct vmm_irq irq = r->irq;

	vmm_rtc_init(r, r->below_4g_bytes, r->above_4g_bytes, r->cpus);
	r->irq = irq;
}

static void rtc_save(const void *state, uint8_t *out)
{
	const struct vmm_rtc *r = state;
	struct rtc_snap s = { .index = r->index, .offset_s = r->offset_s };

	memcpy(s.cmos, r->cmos, sizeof(s.cmos));
	memcpy(out, &s, sizeof(s));
}

static int rtc_load(void *state, const uint8_t *in)
{
	struct vmm_rtc *r = state;
	struct rtc_snap s;

	memcpy(&s, in, sizeof(s));
	if (s.index >= sizeof(r->cmos) || s.offset_s > 100ll * 366 * 86400 ||
	    s.offset_s < -100ll * 366 * 86400)
		return -EINVAL;
	r->index = s.index;
	r->offset_s = s.offset_s;
	memcpy(r->cmos, s.cmos, sizeof(r->cmos));
	r->last_tick_s = 0;
	return 0;
}

static double rtc_tick(void *state, double now_s)
{
	vmm_rtc_tick(state, now_s);
	return vmm_rtc_period_s(state) > 0 ? RTC_FAST_TICK_S : 0;
}

static const struct vmm_io_range rtc_ranges[] = {
	{ VMM_SPACE_PIO, 0x70, 2, vmm_rtc_io, "rtc" },
	{ 0 },
};

const struct vmm_device_ops vmm_rtc_ops = {
	.name = "rtc-cmos",
	.ranges = rtc_ranges,
	.create = rtc_create,
	.destroy = rtc_destroy,
	.reset = rtc_reset,
	.state_bytes = sizeof(struct rtc_snap),
	.save = rtc_save,
	.load = rtc_load,
	.tick = rtc_tick,
};
