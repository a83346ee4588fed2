/* Flat real-mode guest in C (gcc -m16 -ffreestanding): a minimal legacy
 * virtio-blk driver.  It programs the device's BAR itself (no firmware),
 * sets up the split ring at 0x3000, reads sector 1, writes sector 3 and reads
 * it back (polling), prints VBLK-OK, then takes one completion as an
 * interrupt (IRQ-OK), or prints VBLK-FAIL-<step>; it powers off through port
 * 0x501.  Everything lives below 64 KiB (DS = 0). */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

__asm__(".section .text.start\n"
	".globl _start\n"
	"_start:\n"
	"  cli\n"
	"  xorw %ax, %ax\n"
	"  movw %ax, %ds\n"
	"  movw %ax, %es\n"
	"  movw %ax, %ss\n"
	"  movl $0x7000, %esp\n"
	"  calll main\n"
	"1: hlt\n"
	"  jmp 1b\n"
	/* IRQ 11 (slave PIC vector 0x73): acknowledge the device by reading
	 * its ISR, count the interrupt, EOI both PICs. */
	".globl irq11_entry\n"
	"irq11_entry:\n"
	"  pushl %eax\n"
	"  pushl %edx\n"
	"  movw $0xc013, %dx\n"
	"  inb %dx, %al\n"
	"  incb irq_count\n"
	"  movb $0x20, %al\n"
	"  outb %al, $0xa0\n"
	"  outb %al, $0x20\n"
	"  popl %edx\n"
	"  popl %eax\n"
	"  iretw\n"
	".previous\n");

void irq11_entry(void);
volatile u8 irq_count;

static void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void puts_com1(const char *s)
{
	while (*s)
		outb(0x3f8, (u8)*s++);
}

struct desc { u64 addr; u32 len; u16 flags, next; };
#define QNUM 128
#define RING 0x3000u
#define DESC ((volatile struct desc *)RING)
#define AVAIL ((volatile u16 *)(RING + 16 * QNUM))
#define USED ((volatile u16 *)(RING + 0x1000))
#define HDR ((volatile u32 *)0x5000)
#define STATUS ((volatile u8 *)0x5100)
#define BUF ((volatile u32 *)0x6000)
#define IO 0xc000
#define PCI_ADDR(reg) (0x80000000u | (2u << 11) | (reg))

static u16 avail_idx;

static int request(u32 type, u32 sector, int to_guest, int polled)
{
	u16 used_before = USED[1];

	HDR[0] = type;
	HDR[1] = 0;
	HDR[2] = sector;
	HDR[3] = 0;
	*STATUS = 0xee;
	DESC[0].addr = 0x5000; DESC[0].len = 16; DESC[0].flags = 1; DESC[0].next = 1;
	DESC[1].addr = 0x6000; DESC[1].len = 512; DESC[1].flags = (u16)(1 | (to_guest ? 2 : 0));
	DESC[1].next = 2;
	DESC[2].addr = 0x5100; DESC[2].len = 1; DESC[2].flags = 2; DESC[2].next = 0;
	AVAIL[2 + avail_idx % QNUM] = 0;
	avail_idx++;
	AVAIL[1] = avail_idx;
	outw(IO + 16, 0);
	if (USED[1] != (u16)(used_before + 1) || *STATUS != 0)
		return -1;
	if (!polled)
		return 0;
	return (inb(IO + 19) & 1) ? 0 : -1; /* ISR set by the completion */
}

static void fail(const char *step)
{
	puts_com1("VBLK-FAIL-");
	puts_com1(step);
	puts_com1("\n");
	outb(0x501, 1);
}

/* Route slot 2 INTA# to IRQ 11, level-triggered, through the PICs to vector
 * 0x73, and wait for the completion interrupt of one read.  Slot 2 INTA# is
 * PIRQB on PIIX3 (SeaBIOS's $PIR and _PRT, QEMU's piix pci_slot_get_pirq);
 * the other links go to other IRQs, all masked, so a wrong route never
 * reaches vector 0x73. */
static int irq_test(void)
{
	static const u8 icw[2][4] = { { 0x11, 0x08, 0x04, 0x01 }, { 0x11, 0x70, 0x02, 0x01 } };
	volatile u16 *ivt = (volatile u16 *)0;

	outl(0xcf8, 0x80000800u | 0x60);
	outl(0xcfc, 0x090a0b05u);              /* PIRQA 5, PIRQB 11, PIRQC 10, PIRQD 9 */
	outb(0x4d1, 0x08);                     /* IRQ 11 level-triggered */
	for (int i = 0; i < 4; i++) {
		outb(i ? 0x21 : 0x20, icw[0][i]);
		outb(i ? 0xa1 : 0xa0, icw[1][i]);
	}
	outb(0x21, 0xfb);                      /* only the cascade */
	outb(0xa1, 0xf7);                      /* only IRQ 11 */
	ivt[0x73 * 2] = (u16)(unsigned long)irq11_entry;
	ivt[0x73 * 2 + 1] = 0;
	__asm__ volatile("sti");
	if (request(0, 1, 1, 0) < 0)
		return -1;
	for (int i = 0; i < 100000 && !irq_count; i++)
		__asm__ volatile("pause");
	__asm__ volatile("cli");
	return irq_count == 1 && (inb(IO + 19) & 1) == 0 ? 0 : -1;
}

/* A descriptor loop must mark the device broken (NEEDS_RESET) without
 * completing anything; after a reset the device works again. */
static int hostile_test(void)
{
	u16 used_before = USED[1];

	DESC[0].addr = 0x5000; DESC[0].len = 16; DESC[0].flags = 1; DESC[0].next = 1;
	DESC[1].addr = 0x6000; DESC[1].len = 512; DESC[1].flags = 3; DESC[1].next = 0;
	AVAIL[2 + avail_idx % QNUM] = 0;
	avail_idx++;
	AVAIL[1] = avail_idx;
	outw(IO + 16, 0);
	if (USED[1] != used_before || !(inb(IO + 18) & 0x40))
		return -1;
	outb(IO + 18, 0);                      /* reset, then set up again */
	for (int i = 0; i < 0x2000; i++)
		((volatile u8 *)RING)[i] = 0;
	avail_idx = 0;
	outb(IO + 18, 3);
	outl(IO + 8, RING >> 12);
	outb(IO + 18, 7);
	BUF[0] = 0;
	return request(0, 1, 1, 1) == 0 && BUF[0] == 1 ? 0 : -1;
}

int main(void)
{
	outl(0xcf8, PCI_ADDR(0));
	if (inl(0xcfc) != 0x10011af4)
		return fail("id"), 0;
	outl(0xcf8, PCI_ADDR(0x10));
	outl(0xcfc, IO);
	outl(0xcf8, PCI_ADDR(0x04));
	outw(0xcfc, 0x0005);
	outb(IO + 18, 0);
	outb(IO + 18, 3);
	if (!(inl(IO + 0) & (1u << 9)) || inw(IO + 12) != QNUM || inl(IO + 20) == 0)
		return fail("regs"), 0;
	outl(IO + 4, 0);
	outw(IO + 14, 0);
	outl(IO + 8, RING >> 12);
	outb(IO + 18, 7);
	if (request(0, 1, 1, 1) < 0 || BUF[0] != 1)
		return fail("read"), 0;
	BUF[0] = 0xcafef00d;
	if (request(1, 3, 0, 1) < 0)
		return fail("write"), 0;
	BUF[0] = 0;
	if (request(0, 3, 1, 1) < 0 || BUF[0] != 0xcafef00d)
		return fail("readback"), 0;
	puts_com1("VBLK-OK\n");
	if (irq_test() < 0)
		return fail("irq"), 0;
	puts_com1("IRQ-OK\n");
	if (hostile_test() < 0)
		return fail("hostile"), 0;
	puts_com1("RECOVER-OK\n");
	outb(0x501, 1);
	return 0;
}
