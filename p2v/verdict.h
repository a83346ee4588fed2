/* The boot verdict: a console watcher shared by every engine (vmm-min,
 * QEMU TCG).  The engine feeds it console bytes (COM1), the BIOS screen,
 * firmware log bytes and its own events translated into p2v_watch_event,
 * with times in seconds since the start of the run; the
 * watcher recognises milestones, success markers and failure patterns and
 * decides PASS or FAIL with a reason.  No I/O except the optional
 * transcript and the report printers; no threads (callers serialise). */
#ifndef P2V_VERDICT_H
#define P2V_VERDICT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum p2v_verdict { P2V_VERDICT_PENDING, P2V_VERDICT_PASS, P2V_VERDICT_FAIL };

enum p2v_milestone {
	P2V_MS_FIRMWARE,    /* first instruction / firmware banner */
	P2V_MS_DISK_READ,   /* first read of the boot disk */
	P2V_MS_EFI_BOOT,    /* UEFI: the firmware started a boot entry or the fallback path */
	P2V_MS_BOOTLOADER,  /* GRUB, SYSLINUX, ... */
	P2V_MS_KERNEL,      /* "Linux version" */
	P2V_MS_ROOT,        /* root filesystem mounted */
	P2V_MS_MARKER,      /* success marker (login:, --expect ...) */
	P2V_MS_COUNT
};

/* Where bytes come from: COM1, the firmware's debug port, or the BIOS text
 * screen (its serial mirror, kept apart so that its lazily flushed text
 * cannot land inside a line the guest writes to COM1). */
enum p2v_channel { P2V_CH_CONSOLE, P2V_CH_FIRMWARE, P2V_CH_SCREEN, P2V_CH_COUNT };

/* How the engine's run ended, for p2v_watch_end(). */
enum p2v_run_end {
	P2V_END_SHUTDOWN,     /* guest powered off */
	P2V_END_RESET,        /* guest reset (reboot, or triple fault QEMU cannot tell apart) */
	P2V_END_TRIPLE_FAULT,
	P2V_END_HALTED,
	P2V_END_TIMEOUT,
	P2V_END_STOPPED,      /* the watcher (or the user) stopped the run */
	P2V_END_COUNT
};

/* What an engine saw happen, besides bytes. */
enum p2v_watch_event_type {
	P2V_WEV_FIRMWARE_START, /* first instruction */
	P2V_WEV_DISK_READ,      /* offset/length valid */
	P2V_WEV_DISK_WRITE,     /* offset/length valid */
	P2V_WEV_END,            /* the run ended: end, detail */
	P2V_WEV_DEVICE_BROKEN,  /* a device refused the guest: detail */
};

struct p2v_watch_event {
	enum p2v_watch_event_type type;
	double t_s;
	uint64_t offset_bytes, length_bytes;
	enum p2v_run_end end;
	const char *detail;          /* e.g. which path a reboot came by, or NULL */
};

#define P2V_WATCH_LINE_BYTES 240
#define P2V_WATCH_TAIL_LINES 20
#define P2V_WATCH_REASON_BYTES 384
/* Writes at or beyond this offset are past the MBR/boot-loader gap, i.e. into a partition. */
#define P2V_WATCH_ROOT_WRITE_MIN_BYTES (1024u * 1024u)
/* A partial line unchanged this long before the kernel is a boot-stage hang ("GRUB Geom Error"). */
#define P2V_WATCH_STALL_S 1.0
/* Partition writes that count as "the OS is writing its root fs" without a kernel banner. */
#define P2V_WATCH_ROOT_WRITES_QUIET 16

struct p2v_watch_tail {
	char line[P2V_WATCH_TAIL_LINES][P2V_WATCH_LINE_BYTES];
	unsigned next, count;
};

struct p2v_watch {
	regex_t expect;
	bool has_expect;
	double settle_s;             /* seconds without panic after a success signal */
	FILE *transcript;            /* raw console bytes, or NULL */
	FILE *echo;                  /* the console live (p2v verify --console), or NULL */

	enum p2v_verdict verdict;
	char reason[P2V_WATCH_REASON_BYTES];
	double decided_t_s;

	double ms_t_s[P2V_MS_COUNT]; /* < 0: not seen */
	char ms_line[P2V_MS_COUNT][P2V_WATCH_LINE_BYTES];

	double success_t_s;          /* first success signal, < 0: none */
	bool marker_seen, root_write_seen;
	bool ended;                  /* how the run ended, once known: */
	enum p2v_run_end end;
	double end_t_s;
	char end_detail[P2V_WATCH_LINE_BYTES];
	bool os_output;              /* kernel/systemd-shaped lines seen (quiet kernels) */
	double root_write_t_s;
	uint64_t disk_reads, disk_writes, partition_writes;

	/* UEFI (OVMF): set by the caller before the run */
	/* A boot loader error that may not be fatal (GRUB goes on after a
	 * missing font, say): the verdict if no kernel starts after it. */
	char suspect[P2V_WATCH_REASON_BYTES];
	bool uefi;
	char uefi_hint[160];         /* appended to a no-boot reason, e.g. what the ESP holds */
	char efi_load_failed[P2V_WATCH_LINE_BYTES]; /* first "BdsDxe: failed to load" line */

	char cur[P2V_CH_COUNT][P2V_WATCH_LINE_BYTES]; /* line being assembled */
	size_t cur_len[P2V_CH_COUNT];
	double cur_t_s[P2V_CH_COUNT];  /* when the line being assembled last grew */
	unsigned char esc_state[P2V_CH_COUNT]; /* 0 text, 1 after ESC, 2 inside CSI */
	struct p2v_watch_tail tail[P2V_CH_COUNT];
};

/* expect_regex: extended regex replacing the default markers, or NULL.
 * 0, or -EINVAL with a message in err. */
int p2v_watch_init(struct p2v_watch *w, const char *expect_regex, double settle_s,
		   char *err, size_t err_bytes);
void p2v_watch_free(struct p2v_watch *w);

void p2v_watch_bytes(struct p2v_watch *w, enum p2v_channel ch, double t_s,
		     const uint8_t *buf, size_t len);
void p2v_watch_event(struct p2v_watch *w, const struct p2v_watch_event *ev);
/* Engines that only count (QEMU's block statistics): operations so far and
 * the end of the highest write. */
void p2v_watch_disk_stats(struct p2v_watch *w, double t_s, uint64_t reads, uint64_t writes,
			  uint64_t highest_write_end_bytes);
/* Time passes: a success signal followed by settle_s quiet seconds passes. */
void p2v_watch_tick(struct p2v_watch *w, double t_s);
/* A failure found without booting (e.g. an MBR without boot code). */
void p2v_watch_fail(struct p2v_watch *w, double t_s, const char *reason);
/* The run ended; decides a verdict if none was reached. */
void p2v_watch_end(struct p2v_watch *w, enum p2v_run_end end, double t_s, const char *detail);

static inline bool p2v_watch_decided(const struct p2v_watch *w)
{
	return w->verdict != P2V_VERDICT_PENDING;
}

const char *p2v_milestone_name(enum p2v_milestone m);
/* "power-off", "reboot", "triple-fault", "halt", "timeout", "stopped". */
const char *p2v_run_end_name(enum p2v_run_end end);
const char *p2v_verdict_name(enum p2v_verdict v);

/* Lines of a tail, oldest first: i in [0, tail->count). */
const char *p2v_watch_tail_line(const struct p2v_watch_tail *t, unsigned i);

/* What the report says besides the watcher's findings. */
struct p2v_report_info {
	const char *engine;          /* "vmm" or "qemu-tcg" */
	const char *engine_detail;   /* e.g. the QEMU command, or NULL */
	const char *firmware;        /* "bios", "uefi" */
	const char *image;
	const char *format;
	double elapsed_s;
	double timeout_s;
	bool disk_counters;          /* the engine reported disk reads/writes */
};
void p2v_watch_report_text(const struct p2v_watch *w, const struct p2v_report_info *info, FILE *f);
void p2v_watch_report_json(const struct p2v_watch *w, const struct p2v_report_info *info, FILE *f);

#endif
