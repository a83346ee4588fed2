/* 16550A UART (COM1): transmit goes straight to the console callback, so the
 * transmitter is always empty; receive has a small FIFO fed by the run loop.
 * The interrupt follows the IIR priority rules and is gated by MCR.OUT2 as
 * on a PC. */
#include "machine.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3, UART_MCR = 4,
	UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define LCR_DLAB 0x80
#define IER_RDI 0x01
#define IER_THRI 0x02
#define MCR_LOOP 0x10
#define MCR_OUT2 0x08
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0

void vmm_uart_init(struct vmm_uart *u, unsigned irq_line, const struct vmm_irq *irq,
		   void (*out)(void *, const uint8_t *, size_t), void *out_opaque)
{
	memset(u, 0, sizeof(*u));
	u->irq_line = irq_line;
	if (irq)
		u->irq = *irq;
	u->out = out;
	u->out_opaque = out_opaque;
	u->in_fd = -1;
	u->dll = 12; /* 9600 baud */
}

static uint8_t uart_iir(const struct vmm_uart *u)
{
	uint8_t fifo = (u->fcr & 1) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_count)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->thre_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct vmm_uart *u)
{
	int level = !(uart_iir(u) & IIR_NONE) && (u->mcr & MCR_OUT2);

	if (level != u->irq_level) {
		u->irq_level = level;
		vmm_irq_set(&u->irq, u->irq_line, level);
	}
}

size_t vmm_uart_feed(struct vmm_uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	while (n < len && u->rx_count < VMM_UART_RX_BYTES) {
		u->rx[(u->rx_head + u->rx_count) % VMM_UART_RX_BYTES] = buf[n++];
		u->rx_count++;
	}
	uart_update_irq(u);
	return n;
}

static void uart_transmit(struct vmm_uart *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP)
		vmm_uart_feed(u, &c, 1);
	else if (u->out)
		u->out(u->out_opaque, &c, 1);
	u->thre_pending = true;
}

static void uart_write(struct vmm_uart *u, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			uart_transmit(u, v);
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		if ((v & IER_THRI) && !(u->ier & IER_THRI))
			u->thre_pending = true;
		u->ier = v & 0x0f;
		break;
	case UART_IIR_FCR:
		u->fcr = v & 0xc9;
		if (v & 0x02)
			u->rx_count = 0;
		break;
	case UART_LCR: u->lcr = v; break;
	case UART_MCR: u->mcr = v & 0x1f; break;
	case UART_SCR: u->scr = v; break;
	default: break; /* LSR, MSR are read-only */
	}
}

static uint8_t uart_read(struct vmm_uart *u, unsigned reg)
{
	uint8_t v = 0;

	switch (reg) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		if (u->rx_count) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % VMM_UART_RX_BYTES;
			u->rx_count--;
		}
		return v;
	case UART_IER: return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case UART_IIR_FCR:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI)
			u->thre_pending = false;
		return v;
	case UART_LCR: return u->lcr;
	case UART_MCR: return u->mcr;
	case UART_LSR: return LSR_THRE | LSR_TEMT | (u->rx_count ? LSR_DR : 0);
	case UART_MSR:
		if (u->mcr & MCR_LOOP) /* loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD */
			return (uint8_t)(((u->mcr & 2) << 3) | ((u->mcr & 1) << 5) |
					 ((u->mcr & 4) << 4) | ((u->mcr & 8) << 4));
		return 0xb0; /* DCD, DSR, CTS */
	default: return u->scr;
	}
}

void vmm_uart_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_uart *u = opaque;

	for (unsigned i = 0; i < size; i++) {
		unsigned reg = (unsigned)(off + i) & 7;
		if (is_write)
			uart_write(u, reg, data[i]);
		else
			data[i] = uart_read(u, reg);
	}
	uart_update_irq(u);
}

/* ---- the devices: COM1 at 0x3F8, IRQ 4, the console; COM2 at 0x2F8,
 * IRQ 3, the BIOS screen ---- */

struct uart_snap {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thre_pending, irq_level;
	uint16_t rx_head, rx_count;
	uint8_t rx[VMM_UART_RX_BYTES];
} __attribute__((packed));

static int uart_new(struct vmm_machine *m, void **state, unsigned irq_line,
		    void (*out)(void *, const uint8_t *, size_t), int in_fd)
{
	struct vmm_uart *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	vmm_uart_init(u, irq_line, &m->irq, out, m);
	u->in_fd = in_fd;
	*state = u;
	return 0;
}

static int com1_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	(void)err, (void)err_bytes;
	return uart_new(m, state, 4, vmm_machine_console_out, m->cfg->console_in_fd);
}

static int com2_create(struct vmm_machine *m, void **state, char *err, size_t err_bytes)
{
	(void)err, (void)err_bytes;
	return uart_new(m, state, 3, vmm_machine_screen_out, -1);
}

static void uart_destroy(void *state)
{
	free(state);
}

static void uart_reset(void *state)
{
	struct vmm_uart *u = state;
	struct vmm_irq irq = u->irq;
	int in_fd = u->in_fd;

	vmm_uart_init(u, u->irq_line, &irq, u->out, u->out_opaque);
	u->in_fd = in_fd;
}

static void uart_save(const void *state, uint8_t *out)
{
	const struct vmm_uart *u = state;
	struct uart_snap s = { u->ier, u->lcr, u->mcr, u->scr, u->dll, u->dlm, u->fcr,
			       u->thre_pending, (uint8_t)u->irq_level, (uint16_t)u->rx_head,
			       (uint16_t)u->rx_count, { 0 } };

	memcpy(s.rx, u->rx, sizeof(s.rx));
	memcpy(out, &s, sizeof(s));
}

static int uart_load(void *state, const uint8_t *in)
{
	struct vmm_uart *u = state;
	struct uart_snap s;

	memcpy(&s, in, sizeof(s));
	if (s.ier & ~0x0f || s.mcr & ~0x1f || s.fcr & ~0xc9 || s.thre_pending > 1 ||
	    s.irq_level > 1 || s.rx_head >= VMM_UART_RX_BYTES || s.rx_count > VMM_UART_RX_BYTES)
		return -EINVAL;
	u->ier = s.ier, u->lcr = s.lcr, u->mcr = s.mcr, u->scr = s.scr;
	u->dll = s.dll, u->dlm = s.dlm, u->fcr = s.fcr;
	u->thre_pending = s.thre_pending, u->irq_level = s.irq_level;
	u->rx_head = s.rx_head, u->rx_count = s.rx_count;
	memcpy(u->rx, s.rx, sizeof(u->rx));
	return 0;
}

/* Console input: whatever the input descriptor has, as far as the FIFO takes it. */
static double uart_tick(void *state, double now_s)
{
	struct vmm_uart *u = state;
	struct pollfd p = { .fd = u->in_fd, .events = POLLIN };
	size_t room = VMM_UART_RX_BYTES - u->rx_count;
	uint8_t buf[64];
	ssize_t n;

	(void)now_s;
	if (p.fd < 0 || room == 0 || poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
		return 0;
	n = read(p.fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n > 0)
		vmm_uart_feed(u, buf, (size_t)n);
	return 0;
}

static const struct vmm_io_range com1_ranges[] = {
	{ VMM_SPACE_PIO, 0x3f8, 8, vmm_uart_io, "com1" },
	{ 0 },
};

static const struct vmm_io_range com2_ranges[] = {
	{ VMM_SPACE_PIO, 0x2f8, 8, vmm_uart_io, "com2" },
	{ 0 },
};

const struct vmm_device_ops vmm_com2_ops = {
	.name = "uart-com2",
	.ranges = com2_ranges,
	.create = com2_create,
	.destroy = uart_destroy,
	.reset = uart_reset,
	.state_bytes = sizeof(struct uart_snap),
	.save = uart_save,
	.load = uart_load,
};

const struct vmm_device_ops vmm_uart_ops = {
	.name = "uart-com1",
	.ranges = com1_ranges,
	.create = com1_create,
	.destroy = uart_destroy,
	.reset = uart_reset,
	.state_bytes = sizeof(struct uart_snap),
	.save = uart_save,
	.load = uart_load,
	.tick = uart_tick,
};
