/* Flat real-mode guest in C (gcc -m16 -ffreestanding): a minimal legacy
 * virtio-blk driver.  It programs the device's BAR itself (no firmware),
 * sets up the split ring at 0x3000, reads sector 1, writes sector 3 and reads
 * it back, then prints VBLK-OK (or VBLK-FAIL-<step>) on COM1 and powers off
 * through port 0x501.  Everything lives below 64 KiB (DS = 0). */
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
	".previous\n");

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

static int request(u32 type, u32 sector, int to_guest)
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
	return (inb(IO + 19) & 1) ? 0 : -1; /* ISR set by the completion */
}

static void fail(const char *step)
{
	puts_com1("VBLK-FAIL-");
	puts_com1(step);
	puts_com1("\n");
	outb(0x501, 1);
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
	if (request(0, 1, 1) < 0 || BUF[0] != 1)
		return fail("read"), 0;
	BUF[0] = 0xcafef00d;
	if (request(1, 3, 0) < 0)
		return fail("write"), 0;
	BUF[0] = 0;
	if (request(0, 3, 1) < 0 || BUF[0] != 0xcafef00d)
		return fail("readback"), 0;
	puts_com1("VBLK-OK\n");
	outb(0x501, 1);
	return 0;
}
