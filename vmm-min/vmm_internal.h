/* vmm-min internals: the I/O bus, guest memory access, interrupt and event
 * plumbing shared by the device models (dev_*.c) and the run loop.  Nothing
 * here is global: every device keeps its state in its own struct and is
 * reached through the bus table with an opaque pointer.
 */
#ifndef VMM_INTERNAL_H
#define VMM_INTERNAL_H

#include "vmm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- I/O bus ------------------------------------------------------------ */

enum vmm_space { VMM_SPACE_PIO, VMM_SPACE_MMIO };

/* One access: offset inside the range, size 1/2/4/8, data little-endian. */
typedef void (*vmm_io_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned size,
			  bool is_write);

#define VMM_BUS_MAX_ENTRIES 32

struct vmm_bus_entry {
	enum vmm_space space;
	uint64_t base, len;
	vmm_io_fn fn;
	void *opaque;
	bool enabled;
	const char *name;
};

struct vmm_bus {
	struct vmm_bus_entry e[VMM_BUS_MAX_ENTRIES];
	unsigned n;
	uint64_t unclaimed;      /* accesses nobody handled */
};

/* Returns the entry index (>= 0) or -ENOSPC. */
int vmm_bus_add(struct vmm_bus *bus, enum vmm_space space, uint64_t base, uint64_t len,
		vmm_io_fn fn, void *opaque, const char *name);
/* Move/enable an entry (PCI BAR programming). */
void vmm_bus_place(struct vmm_bus *bus, int idx, uint64_t base, bool enabled);
/* Dispatch; unclaimed reads return all ones.  True when a device claimed it. */
bool vmm_bus_dispatch(struct vmm_bus *bus, enum vmm_space space, uint64_t addr,
		      uint8_t *data, unsigned size, bool is_write);

static inline uint32_t vmm_io_get(const uint8_t *data, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size && i < 4; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static inline void vmm_io_put(uint8_t *data, unsigned size, uint32_t v)
{
	for (unsigned i = 0; i < size; i++)
		data[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0;
}

/* ---- guest memory --------------------------------------------------------- */

#define VMM_MEM_MAX_REGIONS 4

struct vmm_mem_region {
	uint64_t gpa, bytes;
	uint8_t *host;
};

struct vmm_mem {
	struct vmm_mem_region r[VMM_MEM_MAX_REGIONS];
	unsigned n;
};

/* Host pointer for [gpa, gpa+len) when it lies wholly inside one RAM region,
 * else NULL (also for len 0 and for wrap-around).  Every guest address a
 * device uses goes through here. */
void *vmm_mem_ptr(const struct vmm_mem *mem, uint64_t gpa, uint64_t len_bytes);

/* ---- interrupts and events ------------------------------------------------ */

struct vmm_irq {
	void (*set)(void *opaque, unsigned irq, int level);
	void *opaque;
};

static inline void vmm_irq_set(const struct vmm_irq *irq, unsigned line, int level)
{
	if (irq->set)
		irq->set(irq->opaque, line, level);
}

struct vmm_events {
	void (*fn)(void *opaque, const struct vmm_event *ev);
	void *opaque;
	double t0_s;             /* monotonic time of the start */
};

double vmm_now_s(void);
void vmm_emit(const struct vmm_events *ev, enum vmm_event_type type, uint64_t off,
	      uint64_t len, const char *detail);

/* Requests a device makes of the run loop (reset, power-off). */
struct vmm_control {
	volatile int request;    /* 0 or a VMM_REQ_* */
	const char *why;         /* the path it came by, for the verdict */
};
static inline void vmm_request(struct vmm_control *ctl, int req, const char *why)
{
	if (ctl && !ctl->request) {
		ctl->request = req;
		ctl->why = why;
	}
}
enum { VMM_REQ_NONE, VMM_REQ_RESET, VMM_REQ_SHUTDOWN, VMM_REQ_SLEEP };

/* ---- devices ---------------------------------------------------------------- */

/* 16550 UART */
#define VMM_UART_RX_BYTES 256
struct vmm_uart {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t rx[VMM_UART_RX_BYTES];
	unsigned rx_head, rx_count;
	bool thre_pending;
	int irq_level;
	unsigned irq_line;
	struct vmm_irq irq;
	void (*out)(void *opaque, const uint8_t *buf, size_t len);
	void *out_opaque;
	int in_fd;                   /* console input polled by the tick, or -1 */
};
void vmm_uart_init(struct vmm_uart *u, unsigned irq_line, const struct vmm_irq *irq,
		   void (*out)(void *, const uint8_t *, size_t), void *out_opaque);
void vmm_uart_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
/* Queue input bytes; returns how many were taken. */
size_t vmm_uart_feed(struct vmm_uart *u, const uint8_t *buf, size_t len);

/* CMOS / RTC */
struct vmm_rtc {
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset_s;        /* guest clock minus host clock */
	double last_tick_s;      /* periodic interrupt: when the last one was due */
	struct vmm_irq irq;      /* IRQ 8; set after vmm_rtc_init */
	uint64_t below_4g_bytes, above_4g_bytes; /* what the memory fields say */
	unsigned cpus;
};
void vmm_rtc_init(struct vmm_rtc *r, uint64_t below_4g_bytes, uint64_t above_4g_bytes,
		  unsigned cpus);
void vmm_rtc_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
/* Periodic interrupt period in seconds (register A rate, register B PIE),
 * 0 when off.  vmm_rtc_tick raises IRQ 8 (coalesced) when a period passed. */
double vmm_rtc_period_s(const struct vmm_rtc *r);
void vmm_rtc_tick(struct vmm_rtc *r, double now_s);

/* fw_cfg (QEMU firmware configuration, I/O port interface) */
#define VMM_FWCFG_MAX_ITEMS 32
#define VMM_FWCFG_NAME_BYTES 56
struct vmm_fwcfg_item {
	uint16_t key;
	uint32_t bytes;
	uint8_t *data;
	char name[VMM_FWCFG_NAME_BYTES]; /* "" for legacy keys */
};
struct vmm_fwcfg {
	struct vmm_fwcfg_item item[VMM_FWCFG_MAX_ITEMS];
	unsigned n, n_files;
	uint16_t selected;
	uint32_t pos;
};
enum {
	VMM_FWCFG_SIGNATURE = 0x00, VMM_FWCFG_ID = 0x01, VMM_FWCFG_RAM_SIZE = 0x03,
	VMM_FWCFG_NB_CPUS = 0x05, VMM_FWCFG_BOOT_MENU = 0x0e, VMM_FWCFG_MAX_CPUS = 0x0f,
	VMM_FWCFG_FILE_DIR = 0x19, VMM_FWCFG_FILE_FIRST = 0x20,
	VMM_FWCFG_IRQ0_OVERRIDE = 0x8002,
};
void vmm_fwcfg_init(struct vmm_fwcfg *f);
void vmm_fwcfg_free(struct vmm_fwcfg *f);
int vmm_fwcfg_add(struct vmm_fwcfg *f, uint16_t key, const void *data, uint32_t bytes);
int vmm_fwcfg_add_file(struct vmm_fwcfg *f, const char *name, const void *data, uint32_t bytes);
void vmm_fwcfg_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);

/* e820 entry as fw_cfg "etc/e820" and boot_params carry it */
struct vmm_e820 {
	uint64_t addr, bytes;
	uint32_t type;
} __attribute__((packed));
_Static_assert(sizeof(struct vmm_e820) == 20, "e820 entry is 20 bytes");
enum { VMM_E820_RAM = 1, VMM_E820_RESERVED = 2 };

/* PCI: config mechanism #1, fixed devices in slots */
#define VMM_PCI_SLOTS 32
#define VMM_PCI_BARS 6
struct vmm_pci_dev {
	uint8_t cfg[256];
	uint8_t wmask[256];          /* writable bits */
	uint32_t bar_bytes[VMM_PCI_BARS]; /* 0: no BAR */
	int bar_bus_idx[VMM_PCI_BARS];
	void (*written)(void *opaque);   /* optional: after any config write */
	void *written_opaque;
};
#define VMM_PCI_FUNCS 8
struct vmm_pci {
	uint32_t cf8;
	struct vmm_pci_dev *dev[VMM_PCI_SLOTS * VMM_PCI_FUNCS]; /* by devfn */
	struct vmm_pci_dev host, isa;
	struct vmm_bus *bus;
	struct vmm_control *ctl;
};
void vmm_pci_init(struct vmm_pci *p, struct vmm_bus *bus, struct vmm_control *ctl);
/* Host bridge and ISA bridge back to their power-on configuration. */
void vmm_pci_reset(struct vmm_pci *p);
/* Fill a type-0 header; the caller adds BARs with vmm_pci_dev_bar. */
void vmm_pci_dev_init(struct vmm_pci_dev *d, uint16_t vendor, uint16_t device,
		      uint32_t class_rev, uint16_t sub_vendor, uint16_t sub_id);
void vmm_pci_dev_bar(struct vmm_pci_dev *d, unsigned bar, uint32_t bytes, bool is_io,
		     int bus_idx);
int vmm_pci_plug(struct vmm_pci *p, unsigned slot, unsigned fn, struct vmm_pci_dev *d);

void vmm_pci_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
/* ISA IRQ the PIIX3 PIRQ router gives INTA# of slot, or -1 when unrouted. */
int vmm_pci_intx_irq(const struct vmm_pci *p, unsigned slot);
uint32_t vmm_pci_cfg_read(struct vmm_pci_dev *d, unsigned reg, unsigned size);
/* After d's config space was restored wholesale: re-place its BARs and run
 * its written hook. */
void vmm_pci_dev_restored(struct vmm_pci *p, struct vmm_pci_dev *d);
void vmm_pci_cfg_write(struct vmm_pci *p, struct vmm_pci_dev *d, unsigned reg,
		       unsigned size, uint32_t val);
/* Snapshot load of d's config space: -EINVAL when a bit the guest cannot
 * write differs from d's power-on value, else copied in and re-placed. */
int vmm_pci_dev_load(struct vmm_pci *p, struct vmm_pci_dev *d, const uint8_t cfg[256]);

/* PIIX4 power management (PCI 01.3): PM1 event/control registers and the
 * ACPI PM timer at PMBASE, the APM control port 0xB2 for ACPI enable, and
 * power-off when the guest writes SLP_EN.  SMM is reported as already set
 * up, so the firmware does not try to relocate SMBASE. */
#define VMM_PM_IO_BYTES 64u
struct vmm_pm {
	struct vmm_pci_dev pci;
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	uint8_t apm_cnt, apm_sts;
	int bus_idx;
	double t0_s;                 /* PM timer epoch */
	struct vmm_bus *bus;
	struct vmm_control *ctl;
};
void vmm_pm_init(struct vmm_pm *pm, struct vmm_bus *bus, int bus_idx, struct vmm_control *ctl);
/* After a config write: place the PM I/O block where PMBASE says. */
void vmm_pm_update(struct vmm_pm *pm);
void vmm_pm_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
void vmm_apm_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);

/* i8042 keyboard controller (enough for self-test and reset) */
struct vmm_i8042 {
	uint8_t out[8];
	unsigned out_head, out_count;
	uint8_t ccb;                 /* controller command byte */
	uint8_t pending_cmd;         /* command waiting for its data byte */
	struct vmm_irq irq;
	struct vmm_control *ctl;
};
void vmm_i8042_init(struct vmm_i8042 *k, const struct vmm_irq *irq, struct vmm_control *ctl);
void vmm_i8042_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);

/* Bytes kept while on (the console and firmware log a POST snapshot
 * replays); at most VMM_TEE_MAX_BYTES, the rest dropped. */
#define VMM_TEE_MAX_BYTES (256u * 1024u)
struct vmm_tee {
	uint8_t *buf;
	size_t len, cap;
	bool on;
};
void vmm_tee_add(struct vmm_tee *t, const uint8_t *data, size_t len);

/* debug port 0x402, POST port 0x80, isa-debug-exit 0x501 */
struct vmm_debugport {
	void *log;                   /* FILE * or NULL */
	struct vmm_tee *tee;         /* log bytes also kept here, or NULL */
	uint8_t port92;              /* system control port A */
	struct vmm_control *ctl;
};
void vmm_debugcon_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
void vmm_post_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
void vmm_port92_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
void vmm_zero_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
void vmm_exitport_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);

/* Disk with copy-on-write overlay */
struct vmm_disk;
int vmm_disk_open(struct vmm_disk **out, const char *path, const char *format, bool writable,
		  const struct vmm_config *confine,
		  char *err, size_t err_bytes);
uint64_t vmm_disk_size_bytes(const struct vmm_disk *d);
int vmm_disk_read(struct vmm_disk *d, void *buf, uint64_t len_bytes, uint64_t off_bytes);
int vmm_disk_write(struct vmm_disk *d, const void *buf, uint64_t len_bytes, uint64_t off_bytes);
int vmm_disk_flush(struct vmm_disk *d);
void vmm_disk_close(struct vmm_disk *d);

/* Split virtqueues (virtio_ring.c), shared by the virtio devices */
#define VMM_VRING_MAX 256u
#define VMM_VRING_F_NEXT 1
#define VMM_VRING_F_WRITE 2
#define VMM_VRING_F_INDIRECT 4
struct vmm_vring {
	unsigned num;                /* entries, a power of two <= VMM_VRING_MAX */
	uint32_t pfn;                /* guest page of the descriptor table (legacy) */
	uint16_t last_avail, used_idx;
	const struct vmm_mem *mem;   /* set by vmm_vring_map */
	uint8_t *desc, *avail, *used;
};
struct vmm_vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct vmm_vring_chain {
	struct vmm_vring_desc d[VMM_VRING_MAX];
	unsigned n;
};
/* Locate the rings of q (num, pfn set) in guest memory: 0, or -EIO with why. */
int vmm_vring_map(struct vmm_vring *q, const struct vmm_mem *mem, char *why, size_t why_bytes);
/* The next available chain's head: 1 with *head, 0 when none, -EIO with why. */
int vmm_vring_pop(struct vmm_vring *q, uint16_t *head, char *why, size_t why_bytes);
/* Copy out the chain from head (checked, at most num steps): 0 or -EIO with why. */
int vmm_vring_walk(const struct vmm_vring *q, uint16_t head, struct vmm_vring_chain *c,
		   char *why, size_t why_bytes);
/* Return a chain to the guest with the bytes written into its buffers. */
void vmm_vring_push(struct vmm_vring *q, uint16_t head, uint32_t written_bytes);

/* virtio-blk, legacy PCI transport (1AF4:1001, I/O BAR) */
#define VMM_VBLK_QUEUE_NUM 128u
#define VMM_VBLK_IO_BYTES 0x40u
struct vmm_vblk {
	struct vmm_pci_dev pci;
	uint32_t guest_features;
	struct vmm_vring vq;         /* queue 0, the only one */
	uint16_t queue_sel;
	int raised_line;             /* ISA IRQ currently asserted, or -1 */
	uint8_t status, isr;
	bool broken;
	unsigned slot;
	uint64_t reads, writes;
	const struct vmm_mem *mem;
	struct vmm_disk *disk;
	struct vmm_pci *pcibus;      /* for the PIRQ route; NULL: use irq_line */
	int irq_line;
	struct vmm_irq irq;
	const struct vmm_events *ev;
	bool hold_first_notify;      /* POST snapshot: leave the first notify ... */
	bool held;                   /* ... pending, for the run loop to take */
};
void vmm_vblk_init(struct vmm_vblk *v, const struct vmm_mem *mem, struct vmm_disk *disk,
		   const struct vmm_irq *irq, const struct vmm_events *ev);
/* Device reset (status 0): queue, features and the interrupt dropped. */
void vmm_vblk_reset(struct vmm_vblk *v);
void vmm_vblk_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write);
/* Process every available request; 0, or -EIO when the device broke. */
int vmm_vblk_process(struct vmm_vblk *v);


/* Direct Linux boot (x86 boot protocol >= 2.02, bzImage): load the kernel,
 * initrd and command line into guest memory and fill the zero page. */
#define VMM_LINUX_BOOT_PARAMS_GPA 0x10000u
#define VMM_LINUX_CMDLINE_GPA 0x20000u
#define VMM_LINUX_KERNEL_GPA 0x100000u
struct vmm_linux_entry {
	uint32_t entry_gpa;          /* 32-bit protected-mode entry */
	uint32_t boot_params_gpa;    /* passed in ESI */
};
int vmm_linux_load(const struct vmm_mem *mem, uint64_t below_4g_bytes,
		   const struct vmm_e820 *e820, unsigned n_e820, const char *kernel_path,
		   const char *initrd_path, const char *append, struct vmm_linux_entry *out,
		   char *err, size_t err_bytes);

/* ---- running guests ------------------------------------------------------- */

/* A flat binary loaded at load_gpa and entered in real mode at CS:IP =
 * 0:load_gpa (tests and calibration).  Internal to vmm-min and its tests. */
struct vmm_flat_guest {
	const uint8_t *code;
	size_t code_bytes;
	uint32_t load_gpa;
	uint64_t rcx_out;            /* the guest's RCX when the run ended */
};
int vmm_run_flat(const struct vmm_config *cfg, struct vmm_flat_guest *g,
		 struct vmm_result *res, char *err, size_t err_bytes);

#endif
