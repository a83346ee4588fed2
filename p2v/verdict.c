/* The boot verdict: milestones, success markers and failure patterns read
 * from the guest's console and firmware log, plus VMM events. */
#include "verdict.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "p2v.h"

/* A console pattern: the needle must occur in the line (at its start when
 * line_start), only before the kernel started when early_only. */
struct pattern {
	const char *needle;
	const char *also;        /* a second needle that must occur too, or NULL */
	bool line_start;
	bool early_only;
	const char *what;
};

static const struct pattern fail_patterns[] = {
	{ "No bootable device", NULL, false, true, "no bootable device" },
	{ "Boot failed", NULL, false, true, "no bootable device" },
	{ "grub rescue>", NULL, true, true, "bootloader error (GRUB rescue shell)" },
	{ "grub>", NULL, true, true, "bootloader error (GRUB stopped at its command line)" },
	{ "Geom Error", NULL, false, true, "bootloader error" },
	{ "Hard Disk Error", NULL, false, true, "bootloader error" },
	{ "Read Error", NULL, false, true, "bootloader error" },
	{ "Missing operating system", NULL, false, true, "bootloader error" },
	{ "Invalid partition table", NULL, false, true, "bootloader error" },
	{ "Error loading operating system", NULL, false, true, "bootloader error" },
	{ "VFS: Unable to mount root fs", NULL, false, false,
	  "kernel could not mount the root filesystem" },
	{ "Kernel panic", NULL, false, false, "kernel panic" },
	{ "ALERT!", NULL, false, false, "initramfs could not find the root device" },
	/* dracut, just before its emergency shell */
	{ "Warning: /dev/", "does not exist", true, false, "initramfs could not find the root device" },
	{ "Dropping to a shell", NULL, false, false, "initramfs dropped to a shell" },
	{ "(initramfs)", NULL, true, false, "initramfs dropped to a shell" },
	{ "Entering emergency mode", NULL, false, false, "the system dropped to emergency mode" },
	{ "You are in emergency mode", NULL, false, false, "the system dropped to emergency mode" },
	{ "Give root password for maintenance", NULL, false, false,
	  "the system dropped to emergency mode" },
};

/* Boot loader errors that may or may not stop the boot: GRUB prints
 * "error: ..." and goes on for a missing font or video mode, but not for a
 * missing kernel.  One is the verdict only if no kernel starts after it
 * (the run ends, or GRUB asks for a key after a failed entry). */
static const struct pattern soft_fail_patterns[] = {
	{ "error:", NULL, true, true, "bootloader error" },
};

/* GRUB after a menu entry failed: the error before it stopped the boot. */
static const struct pattern suspect_confirm_patterns[] = {
	{ "Press any key to continue", NULL, false, true, "bootloader error" },
};

/* Lines that look like failures but are not: GRUB on UEFI without a
 * graphics device (no GOP) says this and boots the kernel "in blind mode". */
static const struct pattern benign_patterns[] = {
	{ "error: no suitable video mode found", NULL, true, true, "GRUB without a display" },
};

/* Failure prompts, waiting for input without a newline. */
static const struct pattern prompt_fails[] = {
	{ "grub rescue>", NULL, true, true, "bootloader error (GRUB rescue shell)" },
	{ "grub>", NULL, true, true, "bootloader error (GRUB stopped at its command line)" },
	{ "(initramfs)", NULL, true, false, "initramfs dropped to a shell" },
};

static const struct pattern milestone_patterns[] = {
	{ "SeaBIOS (version", NULL, false, true, "firmware" },
	{ "Booting from Hard Disk", NULL, false, true, "disk" },
	{ "GRUB", NULL, false, true, "bootloader" },
	{ "Booting `", NULL, false, true, "bootloader" },
	{ "Loading Linux", NULL, false, true, "bootloader" },
	{ "SYSLINUX", NULL, false, true, "bootloader" },
	{ "ISOLINUX", NULL, false, true, "bootloader" },
	{ "Windows Boot Manager", NULL, false, true, "bootloader" },
	{ "Linux version ", NULL, false, true, "kernel" },
	{ "VFS: Mounted root", NULL, false, false, "root" },
	{ "EXT4-fs (", "mounted filesystem", false, false, "root" },
	{ "XFS (", "Mounting V", false, false, "root" },
	{ "BTRFS info (", "enabling", false, false, "root" },
};

/* Default success markers when --expect is not given. */
static const struct pattern marker_patterns[] = {
	{ "login:", NULL, false, false, "login prompt" },
	{ "Reached target", "Multi-User", false, false, "systemd multi-user target" },
	{ "Reached target", "multi-user.target", false, false, "systemd multi-user target" },
	{ "Reached target", "Graphical", false, false, "systemd graphical target" },
	{ "Reached target", "graphical.target", false, false, "systemd graphical target" },
};

static const char *const milestone_names[P2V_MS_COUNT] = {
	[P2V_MS_FIRMWARE] = "firmware start",
	[P2V_MS_DISK_READ] = "disk first read",
	[P2V_MS_EFI_BOOT] = "EFI boot entry",
	[P2V_MS_BOOTLOADER] = "bootloader",
	[P2V_MS_KERNEL] = "kernel start",
	[P2V_MS_ROOT] = "root mounted",
	[P2V_MS_MARKER] = "marker",
};

const char *p2v_milestone_name(enum p2v_milestone m)
{
	return m < P2V_MS_COUNT ? milestone_names[m] : "?";
}

const char *p2v_verdict_name(enum p2v_verdict v)
{
	return v == P2V_VERDICT_PASS ? "PASS" : v == P2V_VERDICT_FAIL ? "FAIL" : "PENDING";
}

int p2v_watch_init(struct p2v_watch *w, const char *expect_regex, double settle_s,
		   char *err, size_t err_bytes)
{
	memset(w, 0, sizeof(*w));
	w->settle_s = settle_s;
	w->success_t_s = -1;
	w->root_write_t_s = -1;
	for (unsigned i = 0; i < P2V_MS_COUNT; i++)
		w->ms_t_s[i] = -1;
	if (expect_regex) {
		int r = regcomp(&w->expect, expect_regex, REG_EXTENDED | REG_NOSUB);
		if (r != 0) {
			char msg[128];
			regerror(r, &w->expect, msg, sizeof(msg));
			snprintf(err, err_bytes, "--expect '%s': %s", expect_regex, msg);
			return -EINVAL;
		}
		w->has_expect = true;
	}
	return 0;
}

void p2v_watch_free(struct p2v_watch *w)
{
	if (w->has_expect)
		regfree(&w->expect);
	w->has_expect = false;
}

static bool pattern_matches(const struct pattern *p, const char *line, bool kernel_started)
{
	if (p->early_only && kernel_started)
		return false;
	if (p->line_start ? strncmp(line, p->needle, strlen(p->needle)) != 0
			  : strstr(line, p->needle) == NULL)
		return false;
	return !p->also || strstr(line, p->also);
}

static const struct pattern *find_pattern(const struct pattern *tab, size_t n, const char *line,
					  bool kernel_started)
{
	for (size_t i = 0; i < n; i++)
		if (pattern_matches(&tab[i], line, kernel_started))
			return &tab[i];
	return NULL;
}

static void decide(struct p2v_watch *w, enum p2v_verdict v, double t_s, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void decide(struct p2v_watch *w, enum p2v_verdict v, double t_s, const char *fmt, ...)
{
	va_list ap;

	if (w->verdict != P2V_VERDICT_PENDING)
		return;
	w->verdict = v;
	w->decided_t_s = t_s;
	va_start(ap, fmt);
	vsnprintf(w->reason, sizeof(w->reason), fmt, ap);
	va_end(ap);
}

static void copy_line(char dst[P2V_WATCH_LINE_BYTES], const char *src)
{
	size_t n = strnlen(src, P2V_WATCH_LINE_BYTES - 1);

	memmove(dst, src, n);
	dst[n] = '\0';
}

static void set_milestone(struct p2v_watch *w, enum p2v_milestone m, double t_s, const char *line)
{
	if (w->ms_t_s[m] >= 0)
		return;
	w->ms_t_s[m] = t_s;
	copy_line(w->ms_line[m], line + strspn(line, " "));
}

static void success_signal(struct p2v_watch *w, double t_s)
{
	if (w->success_t_s < 0)
		w->success_t_s = t_s;
}

static enum p2v_milestone milestone_of(const char *what)
{
	static const struct { const char *what; enum p2v_milestone m; } map[] = {
		{ "firmware", P2V_MS_FIRMWARE }, { "disk", P2V_MS_DISK_READ },
		{ "bootloader", P2V_MS_BOOTLOADER }, { "kernel", P2V_MS_KERNEL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].what, what))
			return map[i].m;
	return P2V_MS_ROOT;
}

static bool is_marker(struct p2v_watch *w, const char *line)
{
	if (w->has_expect)
		return regexec(&w->expect, line, 0, NULL, 0) == 0;
	return find_pattern(marker_patterns, sizeof(marker_patterns) / sizeof(marker_patterns[0]),
			    line, false) != NULL;
}

/* Look at a line (complete, or the prompt being typed when partial). */
/* The kernel runs: its banner was seen, or (a quiet kernel prints none)
 * an earlier line in the shape of kernel or systemd output: "[    1.23] ...",
 * "[  OK  ] ...". */
static bool os_running(const struct p2v_watch *w)
{
	return w->os_output || w->ms_t_s[P2V_MS_KERNEL] >= 0;
}

/* OVMF found nothing to boot and fell back to its shell (or said so):
 * with a fresh variable store the only candidate is the disk's fallback
 * path, so a "Not Found" for the disk's option means there is none. */
static void uefi_no_boot(struct p2v_watch *w, double t_s, const char *line)
{
	const char *evidence = w->efi_load_failed[0] ? w->efi_load_failed : line;

	if (w->ms_t_s[P2V_MS_EFI_BOOT] >= 0)
		decide(w, P2V_VERDICT_FAIL, t_s, "the boot loader returned to the firmware, which fell back "
		       "to its shell (%s)", w->ms_line[P2V_MS_EFI_BOOT]);
	else if (strstr(w->efi_load_failed, "Not Found"))
		decide(w, P2V_VERDICT_FAIL, t_s, "no boot entry in this firmware and no "
		       "\\EFI\\BOOT\\BOOTX64.EFI on the ESP%s (firmware: %s)", w->uefi_hint, evidence);
	else
		decide(w, P2V_VERDICT_FAIL, t_s, "the UEFI firmware found nothing to boot%s (firmware: %s)",
		       w->uefi_hint, evidence);
}

/* OVMF's boot manager lines (its serial console): which option it loads,
 * which failed, and the fall-back to the UEFI shell. */
static void uefi_line(struct p2v_watch *w, double t_s, const char *line)
{
	static const char starting[] = "BdsDxe: starting Boot", failed[] = "BdsDxe: failed to load Boot";

	if (!strncmp(line, failed, sizeof(failed) - 1)) {
		if (!w->efi_load_failed[0])
			copy_line(w->efi_load_failed, line);
	} else if (!strncmp(line, starting, sizeof(starting) - 1)) {
		if (strstr(line, "\"EFI Internal Shell\""))
			uefi_no_boot(w, t_s, line);
		else
			set_milestone(w, P2V_MS_EFI_BOOT, t_s, line);
	} else if (strstr(line, "UEFI Interactive Shell") ||
		   strstr(line, "No bootable option or device was found")) {
		uefi_no_boot(w, t_s, line);
	}
}

static void classify(struct p2v_watch *w, double t_s, const char *line)
{
	bool kernel = os_running(w);
	const struct pattern *p;

	if (line[0] == '[' && strchr(line, ']'))
		w->os_output = true;
	if (!kernel && find_pattern(benign_patterns, sizeof(benign_patterns) / sizeof(benign_patterns[0]),
				    line, kernel))
		return;
	if (!kernel && !strncmp(line, "BdsDxe: ", 8))
		uefi_line(w, t_s, line);
	if (!kernel && strstr(line, "UEFI Interactive Shell"))
		uefi_line(w, t_s, line);

	p = find_pattern(milestone_patterns, sizeof(milestone_patterns) / sizeof(milestone_patterns[0]),
			 line, kernel);
	if (p)
		set_milestone(w, milestone_of(p->what), t_s, line);
	if (kernel)
		w->suspect[0] = '\0'; /* whatever the boot loader said, it got here */
	p = find_pattern(soft_fail_patterns, sizeof(soft_fail_patterns) / sizeof(soft_fail_patterns[0]),
			 line, kernel);
	if (p && !w->suspect[0])
		snprintf(w->suspect, sizeof(w->suspect), "%s: %s", p->what, line);
	if (w->suspect[0] && find_pattern(suspect_confirm_patterns, sizeof(suspect_confirm_patterns) /
					  sizeof(suspect_confirm_patterns[0]), line, kernel))
		decide(w, P2V_VERDICT_FAIL, t_s, "%s", w->suspect);
	p = find_pattern(fail_patterns, sizeof(fail_patterns) / sizeof(fail_patterns[0]), line, kernel);
	if (p)
		decide(w, P2V_VERDICT_FAIL, t_s, "%s: %s", p->what, line);
	if (!p && is_marker(w, line)) {
		set_milestone(w, P2V_MS_MARKER, t_s, line);
		w->marker_seen = true;
		success_signal(w, t_s);
	}
}

static void tail_push(struct p2v_watch_tail *t, const char *line)
{
	copy_line(t->line[t->next], line);
	t->next = (t->next + 1) % P2V_WATCH_TAIL_LINES;
	if (t->count < P2V_WATCH_TAIL_LINES)
		t->count++;
}

const char *p2v_watch_tail_line(const struct p2v_watch_tail *t, unsigned i)
{
	unsigned first = (t->next + P2V_WATCH_TAIL_LINES - t->count) % P2V_WATCH_TAIL_LINES;

	return i < t->count ? t->line[(first + i) % P2V_WATCH_TAIL_LINES] : "";
}

static void end_line(struct p2v_watch *w, enum p2v_channel ch, double t_s)
{
	char *line = w->cur[ch];

	line[w->cur_len[ch]] = '\0';
	if (ch == P2V_CH_FIRMWARE && w->cur_len[ch] > 0)
		set_milestone(w, P2V_MS_FIRMWARE, t_s, line);
	classify(w, t_s, line);
	if (w->cur_len[ch] > 0)
		tail_push(&w->tail[ch], line);
	w->cur_len[ch] = 0;
}

/* Strips CR, ANSI escape sequences and control characters; true when c is text. */
static bool text_char(struct p2v_watch *w, enum p2v_channel ch, uint8_t c)
{
	unsigned char *st = &w->esc_state[ch];

	if (*st == 1) {
		*st = c == '[' ? 2 : 0;
		return false;
	}
	if (*st == 2) {
		if (c >= 0x40 && c <= 0x7e)
			*st = 0;
		return false;
	}
	if (c == 0x1b) {
		*st = 1;
		return false;
	}
	return c >= 0x20 && c != 0x7f;
}

/* Prompts ("login: ", "(initramfs) ", "grub rescue> ") end without a
 * newline: a partial line is checked for those only (other patterns wait
 * for the whole line). */
static void partial_line(struct p2v_watch *w, enum p2v_channel ch, double t_s)
{
	const char *line = w->cur[ch];

	w->cur[ch][w->cur_len[ch]] = '\0';
	w->cur_t_s[ch] = t_s;
	if (w->uefi && !os_running(w) && !strncmp(line, "Shell> ", 7))
		uefi_no_boot(w, t_s, line);
	for (size_t i = 0; i < sizeof(prompt_fails) / sizeof(prompt_fails[0]); i++)
		if (pattern_matches(&prompt_fails[i], line, os_running(w)))
			decide(w, P2V_VERDICT_FAIL, t_s, "%s: %s", prompt_fails[i].what, line);
	if (w->verdict == P2V_VERDICT_PENDING && is_marker(w, line)) {
		set_milestone(w, P2V_MS_MARKER, t_s, line);
		w->marker_seen = true;
		success_signal(w, t_s);
	}
}

/* Boot sector errors ("GRUB Geom Error") end without a newline too, then
 * the machine hangs: a partial line that stalls before the kernel counts. */
static void stalled_lines(struct p2v_watch *w, double t_s)
{
	if (os_running(w))
		return;
	for (unsigned ch = 0; ch < P2V_CH_COUNT; ch++) {
		const struct pattern *p;
		if (w->cur_len[ch] == 0 || t_s - w->cur_t_s[ch] < P2V_WATCH_STALL_S)
			continue;
		w->cur[ch][w->cur_len[ch]] = '\0';
		p = find_pattern(fail_patterns, sizeof(fail_patterns) / sizeof(fail_patterns[0]),
				 w->cur[ch], false);
		if (p)
			decide(w, P2V_VERDICT_FAIL, t_s, "%s: %s", p->what, w->cur[ch]);
	}
}

void p2v_watch_bytes(struct p2v_watch *w, enum p2v_channel ch, double t_s,
		     const uint8_t *buf, size_t len)
{
	if (ch >= P2V_CH_COUNT)
		return;
	if (ch != P2V_CH_FIRMWARE && w->transcript && len)
		fwrite(buf, 1, len, w->transcript);
	/* OVMF writes nothing on the debug port: its first console bytes
	 * (clearing the screen) are the first sign of it. */
	if (ch == P2V_CH_CONSOLE && w->uefi && len)
		set_milestone(w, P2V_MS_FIRMWARE, t_s, "(first firmware output on the console)");
	if (ch != P2V_CH_FIRMWARE && w->echo && len) {
		fwrite(buf, 1, len, w->echo);
		fflush(w->echo);
	}
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			end_line(w, ch, t_s);
		} else if (text_char(w, ch, buf[i]) && w->cur_len[ch] + 1 < P2V_WATCH_LINE_BYTES) {
			w->cur[ch][w->cur_len[ch]++] = (char)buf[i];
		}
	}
	if (w->cur_len[ch] > 0)
		partial_line(w, ch, t_s);
}

/* Writes into a partition: the OS at work on its root fs, once the kernel
 * runs or, with a silent console, once there are more than a boot loader
 * saving its environment would do. */
static void partition_writes(struct p2v_watch *w, double t_s)
{
	bool kernel = os_running(w);

	if (w->root_write_seen || (!kernel && w->partition_writes < P2V_WATCH_ROOT_WRITES_QUIET))
		return;
	w->root_write_seen = true;
	w->root_write_t_s = t_s;
	set_milestone(w, P2V_MS_ROOT, t_s, "(disk write into a partition)");
	if (!w->has_expect) /* --expect names the only success there is */
		success_signal(w, t_s);
}

static void disk_write(struct p2v_watch *w, const struct p2v_watch_event *ev)
{
	w->disk_writes++;
	if (ev->offset_bytes < P2V_WATCH_ROOT_WRITE_MIN_BYTES)
		return;
	w->partition_writes++;
	partition_writes(w, ev->t_s);
}

void p2v_watch_disk_stats(struct p2v_watch *w, double t_s, uint64_t reads, uint64_t writes,
			  uint64_t highest_write_end_bytes)
{
	if (reads > 0)
		set_milestone(w, P2V_MS_DISK_READ, t_s, "(virtio-blk read)");
	w->disk_reads = reads;
	w->disk_writes = writes;
	if (writes == 0 || highest_write_end_bytes <= P2V_WATCH_ROOT_WRITE_MIN_BYTES)
		return;
	/* Only counts are known: every write may be a partition write. */
	w->partition_writes = writes;
	partition_writes(w, t_s);
}

void p2v_watch_event(struct p2v_watch *w, const struct p2v_watch_event *ev)
{
	switch (ev->type) {
	case P2V_WEV_FIRMWARE_START:
		set_milestone(w, P2V_MS_FIRMWARE, ev->t_s, "(first instruction)");
		break;
	case P2V_WEV_DISK_READ:
		w->disk_reads++;
		set_milestone(w, P2V_MS_DISK_READ, ev->t_s, "(virtio-blk read)");
		break;
	case P2V_WEV_DISK_WRITE:
		disk_write(w, ev);
		break;
	case P2V_WEV_END:
		if (ev->end < P2V_END_COUNT)
			p2v_watch_end(w, ev->end, ev->t_s, ev->detail);
		break;
	case P2V_WEV_DEVICE_BROKEN:
		decide(w, P2V_VERDICT_FAIL, ev->t_s, "a device rejected the guest: %s",
		       ev->detail ? ev->detail : "(no detail)");
		break;
	}
}

void p2v_watch_fail(struct p2v_watch *w, double t_s, const char *reason)
{
	decide(w, P2V_VERDICT_FAIL, t_s, "%s", reason);
}

static const char *success_what(const struct p2v_watch *w)
{
	return w->marker_seen ? "marker" : "root filesystem write";
}

void p2v_watch_tick(struct p2v_watch *w, double t_s)
{
	stalled_lines(w, t_s);
	if (w->verdict != P2V_VERDICT_PENDING || w->success_t_s < 0)
		return;
	if (t_s - w->success_t_s >= w->settle_s)
		decide(w, P2V_VERDICT_PASS, t_s, "reached userspace (%s at %.1f s), then %.1f s without a panic",
		       success_what(w), w->success_t_s, t_s - w->success_t_s);
}

/* The last milestone reached, for failure reasons. */
static const char *last_milestone(const struct p2v_watch *w)
{
	const char *name = "none";
	double best = -1;

	for (unsigned i = 0; i < P2V_MS_COUNT; i++)
		if (w->ms_t_s[i] >= 0 && w->ms_t_s[i] >= best) {
			best = w->ms_t_s[i];
			name = milestone_names[i];
		}
	return name;
}

static void end_without_success(struct p2v_watch *w, enum p2v_run_end end, double t_s,
				const char *detail)
{
	static const char *const what[] = {
		[P2V_END_SHUTDOWN] = "guest powered off before reaching userspace",
		[P2V_END_RESET] = "guest reset (reboot or triple fault) before reaching userspace",
		[P2V_END_TRIPLE_FAULT] = "triple fault",
		[P2V_END_HALTED] = "guest halted with interrupts disabled",
		[P2V_END_TIMEOUT] = "timeout",
		[P2V_END_STOPPED] = "stopped before a verdict",
	};

	if (w->suspect[0] && end != P2V_END_STOPPED) /* what stopped the boot loader */
		decide(w, P2V_VERDICT_FAIL, t_s, "%s (then %s at %.1f s)", w->suspect, what[end], t_s);
	decide(w, P2V_VERDICT_FAIL, t_s, "%s at %.1f s (last milestone: %s)%s%s", what[end], t_s,
	       last_milestone(w), detail && *detail ? "; " : "", detail ? detail : "");
}

const char *p2v_run_end_name(enum p2v_run_end end)
{
	static const char *const names[P2V_END_COUNT] = {
		[P2V_END_SHUTDOWN] = "power-off", [P2V_END_RESET] = "reboot",
		[P2V_END_TRIPLE_FAULT] = "triple-fault", [P2V_END_HALTED] = "halt",
		[P2V_END_TIMEOUT] = "timeout", [P2V_END_STOPPED] = "stopped",
	};
	return end < P2V_END_COUNT ? names[end] : "?";
}

void p2v_watch_end(struct p2v_watch *w, enum p2v_run_end end, double t_s, const char *detail)
{
	if (!w->ended) {
		w->ended = true;
		w->end = end;
		w->end_t_s = t_s;
		copy_line(w->end_detail, detail ? detail : "");
	}
	stalled_lines(w, t_s + P2V_WATCH_STALL_S);
	if (w->verdict != P2V_VERDICT_PENDING)
		return;
	if (w->success_t_s < 0 || end == P2V_END_TRIPLE_FAULT || end == P2V_END_HALTED) {
		end_without_success(w, end, t_s, detail);
		return;
	}
	if (end == P2V_END_SHUTDOWN || end == P2V_END_RESET)
		decide(w, P2V_VERDICT_PASS, t_s, "reached userspace (%s at %.1f s), then the guest %s%s%s%s",
		       success_what(w), w->success_t_s,
		       end == P2V_END_SHUTDOWN ? "powered off" : "rebooted",
		       detail && *detail ? " (" : "", detail ? detail : "", detail && *detail ? ")" : "");
	else
		decide(w, P2V_VERDICT_PASS, t_s, "reached userspace (%s at %.1f s), no panic until %.1f s",
		       success_what(w), w->success_t_s, t_s);
}

/* ---- reports ---- */

/* The milestones a run of this firmware can reach. */
static bool milestone_shown(const struct p2v_watch *w, unsigned m)
{
	return m != P2V_MS_EFI_BOOT || w->uefi;
}

static void text_tail(const struct p2v_watch_tail *t, const char *title, FILE *f)
{
	if (t->count == 0)
		return;
	fprintf(f, "%s (last %u lines):\n", title, t->count);
	for (unsigned i = 0; i < t->count; i++)
		fprintf(f, "  | %s\n", p2v_watch_tail_line(t, i));
}

void p2v_watch_report_text(const struct p2v_watch *w, const struct p2v_report_info *info, FILE *f)
{
	fprintf(f, "verdict: %s: %s\n", p2v_verdict_name(w->verdict), w->reason);
	fprintf(f, "engine: %s%s%s\n", info->engine, info->engine_detail ? " — " : "",
		info->engine_detail ? info->engine_detail : "");
	if (info->firmware)
		fprintf(f, "firmware: %s\n", info->firmware);
	fprintf(f, "image: %s (%s)\n", info->image, info->format ? info->format : "?");
	fprintf(f, "elapsed: %.1f s (timeout %.0f s)\n", info->elapsed_s, info->timeout_s);
	fprintf(f, "signals: marker %s", w->marker_seen ? "seen" : "not seen");
	if (info->disk_counters)
		fprintf(f, ", root filesystem write %s, disk reads %llu, disk writes %llu\n",
			w->root_write_seen ? "seen" : "not seen",
			(unsigned long long)w->disk_reads, (unsigned long long)w->disk_writes);
	else
		fprintf(f, " (this engine does not report disk writes)\n");
	if (w->ended)
		fprintf(f, "ended: %s at %.1f s%s%s\n", p2v_run_end_name(w->end), w->end_t_s,
			w->end_detail[0] ? ": " : "", w->end_detail);
	fprintf(f, "milestones:\n");
	for (unsigned i = 0; i < P2V_MS_COUNT; i++) {
		if (!milestone_shown(w, i))
			continue;
		if (w->ms_t_s[i] < 0)
			fprintf(f, "  %8s  %-16s\n", "-", milestone_names[i]);
		else
			fprintf(f, "  %6.2f s  %-16s %s\n", w->ms_t_s[i], milestone_names[i], w->ms_line[i]);
	}
	text_tail(&w->tail[P2V_CH_CONSOLE], "console", f);
	if (w->verdict != P2V_VERDICT_PASS) {
		text_tail(&w->tail[P2V_CH_SCREEN], "BIOS screen", f);
		text_tail(&w->tail[P2V_CH_FIRMWARE], "firmware log", f);
	}
}

static void json_tail(struct p2v_json *j, const char *key, const struct p2v_watch_tail *t)
{
	p2v_json_arr_begin(j, key);
	for (unsigned i = 0; i < t->count; i++)
		p2v_json_str(j, NULL, p2v_watch_tail_line(t, i));
	p2v_json_arr_end(j);
}

static void json_milestones(struct p2v_json *j, const struct p2v_watch *w)
{
	p2v_json_arr_begin(j, "milestones");
	for (unsigned i = 0; i < P2V_MS_COUNT; i++) {
		if (!milestone_shown(w, i))
			continue;
		p2v_json_obj_begin(j, NULL);
		p2v_json_str(j, "name", milestone_names[i]);
		p2v_json_bool(j, "seen", w->ms_t_s[i] >= 0);
		if (w->ms_t_s[i] >= 0) {
			p2v_json_double(j, "t_s", w->ms_t_s[i]);
			p2v_json_str(j, "line", w->ms_line[i]);
		}
		p2v_json_obj_end(j);
	}
	p2v_json_arr_end(j);
}

void p2v_watch_report_json(const struct p2v_watch *w, const struct p2v_report_info *info, FILE *f)
{
	struct p2v_json j;

	p2v_json_init(&j, f);
	p2v_json_obj_begin(&j, NULL);
	p2v_json_str(&j, "verdict", w->verdict == P2V_VERDICT_PASS ? "pass" : "fail");
	p2v_json_str(&j, "reason", w->reason);
	p2v_json_str(&j, "engine", info->engine);
	p2v_json_str(&j, "engine_detail", info->engine_detail);
	if (info->firmware)
		p2v_json_str(&j, "firmware", info->firmware);
	p2v_json_str(&j, "image", info->image);
	p2v_json_str(&j, "format", info->format);
	p2v_json_double(&j, "elapsed_s", info->elapsed_s);
	p2v_json_double(&j, "timeout_s", info->timeout_s);
	p2v_json_obj_begin(&j, "signals");
	p2v_json_bool(&j, "marker", w->marker_seen);
	if (info->disk_counters) {
		p2v_json_bool(&j, "root_write", w->root_write_seen);
		p2v_json_u64(&j, "disk_reads", w->disk_reads);
		p2v_json_u64(&j, "disk_writes", w->disk_writes);
	}
	p2v_json_obj_end(&j);
	if (w->ended) {
		p2v_json_obj_begin(&j, "end");
		p2v_json_str(&j, "kind", p2v_run_end_name(w->end));
		p2v_json_double(&j, "t_s", w->end_t_s);
		p2v_json_str(&j, "detail", w->end_detail);
		p2v_json_obj_end(&j);
	}
	json_milestones(&j, w);
	json_tail(&j, "console_tail", &w->tail[P2V_CH_CONSOLE]);
	if (w->verdict != P2V_VERDICT_PASS) {
		json_tail(&j, "screen_tail", &w->tail[P2V_CH_SCREEN]);
		json_tail(&j, "firmware_log_tail", &w->tail[P2V_CH_FIRMWARE]);
	}
	p2v_json_obj_end(&j);
	p2v_json_finish(&j);
}
