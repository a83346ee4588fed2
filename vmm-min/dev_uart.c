/* 16550A UART (COM1): transmit goes straight to the console callback, so the
 * transmitter is always empty; receive has a small FIFO fed by the run loop.
 * The interrupt follows the IIR priority rules and is gated by MCR.OUT2 as
 * on a PC. */
#include "vmm_internal.h"

#include <string.h>

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
