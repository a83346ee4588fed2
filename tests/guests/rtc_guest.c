/* Flat real-mode guest in C (gcc -m16): turns on the RTC periodic interrupt
 * (1024 Hz, IRQ 8 through the slave PIC to vector 0x70), waits in HLT for 20
 * of them, checks register C flagged them, prints RTC-OK and powers off. */
typedef unsigned char u8;
typedef unsigned short u16;

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
	/* IRQ 8: read register C (acknowledges the RTC), count, EOI. */
	".globl irq8_entry\n"
	"irq8_entry:\n"
	"  pushl %eax\n"
	"  movb $0x0c, %al\n"
	"  outb %al, $0x70\n"
	"  inb $0x71, %al\n"
	"  orb %al, rtc_flags\n"
	"  incw irq_count\n"
	"  movb $0x20, %al\n"
	"  outb %al, $0xa0\n"
	"  outb %al, $0x20\n"
	"  popl %eax\n"
	"  iretw\n"
	".previous\n");

void irq8_entry(void);
volatile u16 irq_count;
volatile u8 rtc_flags;

static void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void puts_com1(const char *s)
{
	while (*s)
		outb(0x3f8, (u8)*s++);
}

int main(void)
{
	static const u8 icw[2][4] = { { 0x11, 0x08, 0x04, 0x01 }, { 0x11, 0x70, 0x02, 0x01 } };
	volatile u16 *ivt = (volatile u16 *)0;

	for (int i = 0; i < 4; i++) {
		outb(i ? 0x21 : 0x20, icw[0][i]);
		outb(i ? 0xa1 : 0xa0, icw[1][i]);
	}
	outb(0x21, 0xfb);                      /* only the cascade */
	outb(0xa1, 0xfe);                      /* only IRQ 8 */
	ivt[0x70 * 2] = (u16)(unsigned long)irq8_entry;
	ivt[0x70 * 2 + 1] = 0;
	outb(0x70, 0x0a);
	outb(0x71, 0x26);                      /* 32.768 kHz base, rate 6: 1024 Hz */
	outb(0x70, 0x0b);
	outb(0x71, (u8)(inb(0x71) | 0x40));    /* PIE */
	__asm__ volatile("sti");
	while (irq_count < 20)
		__asm__ volatile("hlt");
	__asm__ volatile("cli");
	if ((rtc_flags & 0xc0) == 0xc0)
		puts_com1("RTC-OK\n");
	else
		puts_com1("RTC-FAIL\n");
	outb(0x501, 1);
	return 0;
}
