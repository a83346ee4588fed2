/* i8042 keyboard controller with a keyboard that answers commands but never
 * types: enough for the firmware's self-test probes and for the two reset
 * paths (command 0xFE, and output-port writes clearing bit 0). */
#include "machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_OBF 0x01
#define STATUS_SYS 0x04
#define STATUS_CMD 0x08
#define STATUS_UNLOCKED 0x10
#define CCB_KBD_INT 0x01
#define KBD_IRQ 1

void vmm_i8042_init(struct vmm_i8042 *k, const struct vmm_irq *irq, struct vmm_control *ctl)
{
	memset(k, 0, sizeof(*k));
	if (irq)
		k->irq = *irq;
	k->ctl = ctl;
	k->ccb = 0x61; /* translate, system flag, keyboard interrupt */
}

static void kbc_push(struct vmm_i8042 *k, uint8_t v, bool from_kbd)
{
	if (k->out_count >= sizeof(k->out))
		return;
	k->out[(k->out_head + k->out_count) % sizeof(k->out)] = v;
	k->out_count++;
	if (from_kbd && (k->ccb & CCB_KBD_INT)) {
		vmm_irq_set(&k->irq, KBD_IRQ, 1);
		vmm_irq_set(&k->irq, KBD_IRQ, 0);
	}
}

static uint8_t kbc_pop(struct vmm_i8042 *k)
{
	uint8_t v;

	if (!k->out_count)
		return 0;
	v = k->out[k->out_head];
	k->out_head = (k->out_head + 1) % sizeof(k->out);
	k->out_count--;
	return v;
}

static void kbc_request_reset(struct vmm_i8042 *k)
{
	if (k->ctl)
		vmm_request(k->ctl, VMM_REQ_RESET, "reboot through the keyboard controller");
}

static void kbc_command(struct vmm_i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case 0x20: kbc_push(k, k->ccb, false); break;           /* read CCB */
	case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4:  /* need a data byte */
		k->pending_cmd = cmd;
		break;
	case 0xa9: kbc_push(k, 0x00, false); break;             /* aux interface test */
	case 0xaa: kbc_push(k, 0x55, false); break;             /* self test */
	case 0xab: kbc_push(k, 0x00, false); break;             /* keyboard interface test */
	case 0xad: k->ccb |= 0x10; break;                       /* disable keyboard */
	case 0xae: k->ccb &= (uint8_t)~0x10; break;             /* enable keyboard */
	case 0xa7: k->ccb |= 0x20; break;
	case 0xa8: k->ccb &= (uint8_t)~0x20; break;
	case 0xd0: kbc_push(k, 0x01, false); break;             /* read output port */
	case 0xfe: kbc_request_reset(k); break;                 /* pulse reset line */
	default:
		if ((cmd & 0xf0) == 0xf0 && !(cmd & 1))
			kbc_request_reset(k);                   /* pulse with bit 0 */
		break;
	}
}

static void kbd_data(struct vmm_i8042 *k, uint8_t v)
{
	switch (v) {
	case 0xff: kbc_push(k, 0xfa, true); kbc_push(k, 0xaa, true); break; /* reset + BAT */
	case 0xf2: kbc_push(k, 0xfa, true); kbc_push(k, 0xab, true); kbc_push(k, 0x41, true); break;
	case 0xee: kbc_push(k, 0xee, true); break;              /* echo */
	default: kbc_push(k, 0xfa, true); break;                /* ACK */
	}
}

static void kbc_data(struct vmm_i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	switch (cmd) {
	case 0x60: k->ccb = v; break;
	case 0xd1: if (!(v & 1)) kbc_request_reset(k); break;
	case 0xd2: kbc_push(k, v, true); break;
	case 0xd3: kbc_push(k, v, false); break;
	case 0xd4: kbc_push(k, 0xfe, false); break;             /* no mouse: resend */
	default: kbd_data(k, v); break;
	}
}

/* Port 0x60 (off 0) data, 0x64 (off 4) status/command. */
void vmm_i8042_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_i8042 *k = opaque;

	if (size != 1 || (off != 0 && off != 4)) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (off == 0 && is_write)
		kbc_data(k, data[0]);
	else if (off == 0)
		data[0] = kbc_pop(k);
	else if (is_write)
		kbc_command(k, data[0]);
	else
		data[0] = (uint8_t)((k->out_count ? STATUS_OBF : 0) | STATUS_SYS | STATUS_UNLOCKED |
				    (k->pending_cmd ? STATUS_CMD : 0));
}

/* ---- the device: i8042 at 0x60-0x64 ---- */

struct i8042_snap {
	uint8_t out[8], out_head, out_count, ccb, pending_cmd;
} __attribute__((packed));

static int i8042_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	struct vmm_i8042 *k = calloc(1, sizeof(*k));

	(void)err, (void)err_bytes;
	if (!k)
		return -ENOMEM;
	vmm_i8042_init(k, &m->irq, &m->ctl);
	*state = k;
	return 0;
}

static void i8042_destroy(void *state)
{
	free(state);
}

static void i8042_reset(void *state)
{
	struct vmm_i8042 *k = state;
	struct vmm_irq irq = k->irq;

	vmm_i8042_init(k, &irq, k->ctl);
}

static void i8042_save(const void *state, uint8_t *out)
{
	const struct vmm_i8042 *k = state;
	struct i8042_snap s = { .out_head = (uint8_t)k->out_head, .out_count = (uint8_t)k->out_count,
				.ccb = k->ccb, .pending_cmd = k->pending_cmd };

	memcpy(s.out, k->out, sizeof(s.out));
	memcpy(out, &s, sizeof(s));
}

static int i8042_load(void *state, const uint8_t *in)
{
	struct vmm_i8042 *k = state;
	struct i8042_snap s;

	memcpy(&s, in, sizeof(s));
	if (s.out_head >= sizeof(k->out) || s.out_count > sizeof(k->out))
		return -EINVAL;
	memcpy(k->out, s.out, sizeof(k->out));
	k->out_head = s.out_head, k->out_count = s.out_count;
	k->ccb = s.ccb, k->pending_cmd = s.pending_cmd;
	return 0;
}

static const struct vmm_io_range i8042_ranges[] = {
	{ VMM_SPACE_PIO, 0x60, 5, vmm_i8042_io, "i8042" },
	{ 0 },
};

const struct vmm_device_ops vmm_i8042_ops = {
	.name = "i8042",
	.ranges = i8042_ranges,
	.create = i8042_create,
	.destroy = i8042_destroy,
	.reset = i8042_reset,
	.state_bytes = sizeof(struct i8042_snap),
	.save = i8042_save,
	.load = i8042_load,
};
