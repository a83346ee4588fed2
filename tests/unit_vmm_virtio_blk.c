/* virtio-blk request processing without KVM: a 1 MiB guest RAM buffer holds
 * the legacy split ring at QUEUE_PFN 1 and the buffers; the device serves a
 * raw image through the copy-on-write overlay.  Valid requests complete;
 * hostile descriptor tables (loops, out-of-range addresses and indices, huge
 * lengths, runaway available index) mark the device broken without touching
 * anything outside guest RAM (run under ASan). */
#include "unit.h"
#include "vmm_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM_BYTES (1024u * 1024)
#define QNUM VMM_VBLK_QUEUE_NUM
#define DESC_GPA 0x1000u
#define AVAIL_GPA (DESC_GPA + 16 * QNUM)
#define USED_GPA 0x2000u
#define HDR_GPA 0x10000u
#define DATA_GPA 0x20000u
#define STATUS_GPA 0x30000u
#define DISK_BYTES (64u * 1024)

static uint8_t ram[RAM_BYTES];
static struct vmm_mem mem = { .r = { { 0, RAM_BYTES, ram } }, .n = 1 };
static int broken_events, read_events, write_events, irq_level;

static void on_event(void *opaque, const struct vmm_event *ev)
{
	(void)opaque;
	broken_events += ev->type == VMM_EV_DEVICE_BROKEN;
	read_events += ev->type == VMM_EV_DISK_READ;
	write_events += ev->type == VMM_EV_DISK_WRITE;
}

static void on_irq(void *opaque, unsigned irq, int level)
{
	(void)opaque;
	if (irq == 11)
		irq_level = level;
}

static void put16(uint64_t gpa, uint16_t v) { memcpy(ram + gpa, &v, 2); }
static uint16_t get16(uint64_t gpa) { uint16_t v; memcpy(&v, ram + gpa, 2); return v; }
static uint32_t get32(uint64_t gpa) { uint32_t v; memcpy(&v, ram + gpa, 4); return v; }

static void desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = ram + DESC_GPA + 16 * i;
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void header(uint32_t type, uint64_t sector)
{
	memset(ram + HDR_GPA, 0, 16);
	memcpy(ram + HDR_GPA, &type, 4);
	memcpy(ram + HDR_GPA + 8, &sector, 8);
}

/* Offer chain head in the next available slot and notify. */
static void submit(struct vmm_vblk *v, uint16_t head)
{
	uint16_t idx = get16(AVAIL_GPA + 2);
	uint8_t d[2] = { 0, 0 };

	put16(AVAIL_GPA + 4 + 2 * (idx % QNUM), head);
	put16(AVAIL_GPA + 2, (uint16_t)(idx + 1));
	vmm_vblk_io(v, 16, d, 2, true);
}

static void io_w(struct vmm_vblk *v, uint64_t off, unsigned size, uint32_t val)
{
	uint8_t d[4];
	vmm_io_put(d, size, val);
	vmm_vblk_io(v, off, d, size, true);
}

static uint32_t io_r(struct vmm_vblk *v, uint64_t off, unsigned size)
{
	uint8_t d[4];
	vmm_vblk_io(v, off, d, size, false);
	return vmm_io_get(d, size);
}

/* Reset the device and the rings, as a driver would after a failure. */
static void reset(struct vmm_vblk *v)
{
	io_w(v, 18, 1, 0);
	memset(ram, 0, 0x4000);
	io_w(v, 8, 4, DESC_GPA / 4096);
	io_w(v, 18, 1, 0x07);
}

/* header + one data descriptor + status */
static void rw_chain(uint32_t type, uint64_t sector, uint32_t len, bool to_guest)
{
	header(type, sector);
	ram[STATUS_GPA] = 0xee;
	desc(0, HDR_GPA, 16, 1, 1);
	desc(1, DATA_GPA, len, (uint16_t)(1 | (to_guest ? 2 : 0)), 2);
	desc(2, STATUS_GPA, 1, 2, 0);
}

static void test_valid(struct vmm_vblk *v, int fd)
{
	uint8_t sector1[512], file[512];

	CHECK_EQ(io_r(v, 0, 4) & (1u << 9), 1u << 9);          /* FLUSH offered */
	CHECK_EQ(io_r(v, 12, 2), QNUM);
	CHECK_EQ(io_r(v, 20, 4), DISK_BYTES / 512);            /* capacity */
	CHECK_EQ(io_r(v, 0, 4) & (1u << 2), 1u << 2);          /* SEG_MAX offered */
	CHECK_EQ(io_r(v, 32, 4), QNUM - 2);                    /* seg_max */
	rw_chain(0, 1, 1024, true);
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
	CHECK_EQ(get16(USED_GPA + 2), 1);
	CHECK_EQ(get32(USED_GPA + 4), 0);                      /* id */
	CHECK_EQ(get32(USED_GPA + 8), 1025);                   /* bytes written */
	CHECK_EQ(ram[DATA_GPA], 1);                            /* pattern: sector number */
	CHECK_EQ(ram[DATA_GPA + 512], 2);
	CHECK_EQ(irq_level, 1);
	CHECK_EQ(io_r(v, 19, 1), 1);                           /* ISR, read clears */
	CHECK_EQ(irq_level, 0);
	CHECK_EQ(io_r(v, 19, 1), 0);
	CHECK_EQ(read_events, 1);

	/* write sector 1 through the overlay, read it back, image unchanged */
	memset(ram + DATA_GPA, 0xab, 512);
	rw_chain(1, 1, 512, false);
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
	CHECK_EQ(write_events, 1);
	memset(ram + DATA_GPA, 0, 512);
	rw_chain(0, 1, 512, true);
	submit(v, 0);
	memcpy(sector1, ram + DATA_GPA, 512);
	CHECK_EQ(sector1[0], 0xab);
	CHECK_EQ(sector1[511], 0xab);
	CHECK_EQ(pread(fd, file, 512, 512), 512);
	CHECK_EQ(file[0], 1);                                  /* the image kept its byte */

	/* errors reported in the status byte, device stays usable */
	rw_chain(0, DISK_BYTES / 512, 512, true);              /* past the end */
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 1);
	rw_chain(0, UINT64_MAX / 256, 512, true);              /* sector * 512 overflows */
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 1);
	rw_chain(0, 0, 100, true);                             /* not whole sectors */
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 1);
	rw_chain(77, 0, 512, true);                            /* unknown type */
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 2);
	rw_chain(8, 0, 20, true);                              /* GET_ID */
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
	CHECK(memcmp(ram + DATA_GPA, "vmm-min", 7) == 0);
	rw_chain(4, 0, 0, false);                              /* FLUSH */
	desc(0, HDR_GPA, 16, 1, 2);
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
	/* the longest chain: header + seg_max data descriptors + status */
	header(0, 0);
	desc(0, HDR_GPA, 16, 1, 1);
	for (unsigned i = 1; i <= QNUM - 2; i++)
		desc(i, DATA_GPA + 512 * (i - 1), 512, 3, (uint16_t)(i + 1));
	desc(QNUM - 1, STATUS_GPA, 1, 2, 0);
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
	CHECK_EQ(ram[DATA_GPA + 512 * (QNUM - 3)], QNUM - 3);  /* sector 125 */
	CHECK(!v->broken);
	CHECK_EQ(broken_events, 0);
}

/* One hostile setup: the device must break (once) and recover on reset. */
static void expect_broken(struct vmm_vblk *v, const char *what)
{
	static int cases;
	int before = broken_events;

	CHECK(v->broken);
	CHECK_EQ(broken_events, ++cases);                      /* exactly one event each */
	CHECK_EQ(io_r(v, 18, 1) & 0x40, 0x40);                 /* DEVICE_NEEDS_RESET */
	if (!v->broken)
		fprintf(stderr, "not broken by: %s\n", what);
	submit(v, 0);                                          /* ignored while broken */
	CHECK_EQ(broken_events, before);
	reset(v);
	CHECK(!v->broken);
	rw_chain(0, 0, 512, true);
	submit(v, 0);
	CHECK_EQ(ram[STATUS_GPA], 0);
}

static void test_hostile(struct vmm_vblk *v)
{
	reset(v);
	/* a loop: 0 -> 1 -> 0 */
	header(0, 0);
	desc(0, HDR_GPA, 16, 1, 1);
	desc(1, DATA_GPA, 512, 3, 0);
	submit(v, 0);
	expect_broken(v, "loop");
	/* a self loop */
	desc(0, HDR_GPA, 16, 1, 0);
	submit(v, 0);
	expect_broken(v, "self loop");
	/* buffer outside RAM */
	rw_chain(0, 0, 512, true);
	desc(1, RAM_BYTES + 4096, 512, 3, 2);
	submit(v, 0);
	expect_broken(v, "address outside RAM");
	/* huge length */
	rw_chain(0, 0, 512, true);
	desc(1, DATA_GPA, 0xffffffffu, 3, 2);
	submit(v, 0);
	expect_broken(v, "huge length");
	/* address + length wraps */
	rw_chain(0, 0, 512, true);
	desc(1, UINT64_MAX - 100, 512, 3, 2);
	submit(v, 0);
	expect_broken(v, "wrapping address");
	/* head index out of range */
	submit(v, 500);
	expect_broken(v, "head index");
	/* next index out of range */
	rw_chain(0, 0, 512, true);
	desc(1, DATA_GPA, 512, 3, 4000);
	submit(v, 0);
	expect_broken(v, "next index");
	/* available index runs ahead of the ring */
	put16(AVAIL_GPA + 2, 1000);
	io_w(v, 16, 2, 0);
	expect_broken(v, "available index");
	/* indirect descriptors were never offered */
	rw_chain(0, 0, 512, true);
	desc(1, DATA_GPA, 512, 4 | 1, 2);
	submit(v, 0);
	expect_broken(v, "indirect");
	/* data descriptor direction does not match the request */
	rw_chain(1, 0, 512, false);                            /* a write into guest buffers */
	desc(1, DATA_GPA, 512, 3, 2);
	submit(v, 0);
	expect_broken(v, "direction");
	/* header too short, status not writable */
	rw_chain(0, 0, 512, true);
	desc(0, HDR_GPA, 8, 1, 1);
	submit(v, 0);
	expect_broken(v, "short header");
	rw_chain(0, 0, 512, true);
	desc(2, STATUS_GPA, 1, 0, 0);
	submit(v, 0);
	expect_broken(v, "read-only status");
	/* the whole ring outside RAM */
	io_w(v, 8, 4, 0x100000);
	io_w(v, 16, 2, 0);
	expect_broken(v, "queue outside RAM");
}

int main(void)
{
	char path[] = "/tmp/unit_vmm_vblk.XXXXXX", err[256];
	struct vmm_irq irq = { on_irq, NULL };
	struct vmm_events ev = { on_event, NULL, 0 };
	struct vmm_disk *disk;
	struct vmm_vblk v;
	uint8_t *img = malloc(DISK_BYTES);
	int fd = mkstemp(path);

	CHECK(fd >= 0 && img);
	for (unsigned i = 0; i < DISK_BYTES; i++)
		img[i] = (uint8_t)(i / 512);
	CHECK_EQ(write(fd, img, DISK_BYTES), DISK_BYTES);
	CHECK_EQ(vmm_disk_open(&disk, path, "raw", false, NULL, err, sizeof(err)), 0);
	vmm_vblk_init(&v, &mem, disk, &irq, &ev);
	v.irq_line = 11;
	reset(&v);
	test_valid(&v, fd);
	test_hostile(&v);
	vmm_disk_close(disk);
	close(fd);
	unlink(path);
	free(img);
	UNIT_DONE();
}
