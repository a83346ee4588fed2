/* Small ports: the firmware debug console (0x402: bytes to a log file), the
 * POST code port (0x80: ignored), an isa-debug-exit-like port (0x501: any
 * write powers the guest off), system control port A (0x92), and blocks the
 * firmware's ACPI tables name but that have nothing to report (GPE0, PCI and
 * CPU hotplug): they read as zero rather than as absent hardware. */
#include "machine.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmm_debugcon_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_debugport *d = opaque;

	(void)off;
	if (!is_write) {
		/* The Bochs/QEMU read-back value tells the firmware the port is
		 * there; without a log it stays silent and saves one exit a byte. */
		memset(data, d->log ? 0xe9 : 0xff, size);
		return;
	}
	if (d->log)
		fwrite(data, 1, size, (FILE *)d->log);
	if (d->tee)
		vmm_tee_add(d->tee, data, size);
}

void vmm_tee_add(struct vmm_tee *t, const uint8_t *data, size_t len)
{
	size_t want;

	if (!t->on || t->len >= VMM_TEE_MAX_BYTES)
		return;
	want = t->len + len > VMM_TEE_MAX_BYTES ? VMM_TEE_MAX_BYTES - t->len : len;
	if (t->len + want > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4096;
		uint8_t *b;
		while (cap < t->len + want)
			cap *= 2;
		b = realloc(t->buf, cap);
		if (!b)
			return;
		t->buf = b;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, want);
	t->len += want;
}

void vmm_post_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write)
		memset(data, 0xff, size);
}

void vmm_exitport_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_debugport *d = opaque;

	(void)off;
	if (!is_write) {
		memset(data, 0xff, size);
		return;
	}
	if (d->ctl)
		vmm_request(d->ctl, VMM_REQ_SHUTDOWN, "power-off through the debug exit port 0x501");
}

/* Port 0x92, system control port A: bit 1 is the A20 gate (always on
 * here), a rising bit 0 resets the machine. */
void vmm_port92_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_debugport *d = opaque;

	(void)off;
	if (size != 1) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (!is_write) {
		data[0] = d->port92 | 0x02;
		return;
	}
	if ((data[0] & 1) && !(d->port92 & 1) && d->ctl)
		vmm_request(d->ctl, VMM_REQ_RESET, "reboot through port 0x92");
	d->port92 = data[0] & 0x03;
}

void vmm_zero_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	(void)opaque;
	(void)off;
	if (!is_write)
		memset(data, 0, size);
}

/* ---- the device: debug console 0x402, POST 0x80, port 0x92, exit 0x501 ---- */

static int debug_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_debugport *d = calloc(1, sizeof(*d));

	(void)err, (void)err_bytes;
	if (!d)
		return -ENOMEM;
	d->ctl = &m->ctl;
	d->tee = &m->fwlog_tee;
	d->log = m->fwlog; /* the machine's: it outlives the device */
	*state = d;
	return 0;
}

static void debug_destroy(void *state)
{
	free(state);
}

static void debug_reset(void *state)
{
	((struct vmm_debugport *)state)->port92 = 0;
}

static void debug_save(const void *state, uint8_t *out)
{
	out[0] = ((const struct vmm_debugport *)state)->port92;
}

static int debug_load(void *state, const uint8_t *in)
{
	if (in[0] & ~0x03)
		return -EINVAL;
	((struct vmm_debugport *)state)->port92 = in[0];
	return 0;
}

static const struct vmm_io_range debug_ranges[] = {
	{ VMM_SPACE_PIO, 0x402, 1, vmm_debugcon_io, "debugcon" },
	{ VMM_SPACE_PIO, 0x80, 1, vmm_post_io, "post" },
	{ VMM_SPACE_PIO, 0x92, 1, vmm_port92_io, "port92" },
	{ VMM_SPACE_PIO, 0x501, 2, vmm_exitport_io, "debug-exit" },
	{ 0 },
};

const struct vmm_device_ops vmm_debug_ops = {
	.name = "debug-ports",
	.ranges = debug_ranges,
	.create = debug_create,
	.destroy = debug_destroy,
	.reset = debug_reset,
	.state_bytes = 1,
	.save = debug_save,
	.load = debug_load,
};
