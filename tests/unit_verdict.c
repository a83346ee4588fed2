/* The boot verdict fed canned console transcripts and VMM events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "verdict.h"
#include "p2v.h"

static void feed(struct p2v_watch *w, enum p2v_channel ch, double t_s, const char *text)
{
	p2v_watch_bytes(w, ch, t_s, (const uint8_t *)text, strlen(text));
}

static void init(struct p2v_watch *w, const char *expect)
{
	char err[128];

	CHECK_EQ(p2v_watch_init(w, expect, 3.0, err, sizeof(err)), 0);
}

static void test_pass_on_login(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_FIRMWARE, 0.1, "SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\n");
	feed(&w, P2V_CH_CONSOLE, 0.9, "\x1b[H\x1b[J  Booting `Debian GNU/Linux'\r\n");
	feed(&w, P2V_CH_CONSOLE, 1.2, "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@\r\n");
	feed(&w, P2V_CH_CONSOLE, 3.0, "[    2.1] EXT4-fs (vda1): mounted filesystem with ordered data mode.\r\n");
	feed(&w, P2V_CH_CONSOLE, 9.0, "\r\nDebian GNU/Linux 12 host ttyS0\r\n\r\nhost lo");
	CHECK(!w.marker_seen);
	feed(&w, P2V_CH_CONSOLE, 9.5, "gin: ");
	CHECK(w.marker_seen);
	p2v_watch_tick(&w, 10.0);
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	p2v_watch_tick(&w, 12.6);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	CHECK(strstr(w.reason, "marker at 9.5 s") != NULL);
	CHECK(w.ms_t_s[P2V_MS_FIRMWARE] == 0.1);
	CHECK(w.ms_t_s[P2V_MS_DISK_READ] == 0.1);
	CHECK(w.ms_t_s[P2V_MS_BOOTLOADER] == 0.9);
	CHECK(!strcmp(w.ms_line[P2V_MS_BOOTLOADER], "Booting `Debian GNU/Linux'"));
	CHECK(w.ms_t_s[P2V_MS_KERNEL] == 1.2);
	CHECK(w.ms_t_s[P2V_MS_ROOT] == 3.0);
	CHECK(w.ms_t_s[P2V_MS_MARKER] == 9.5);
	CHECK(!strcmp(w.ms_line[P2V_MS_MARKER], "host login: "));
	p2v_watch_free(&w);
}

static void test_systemd_target(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 1, "[  OK  ] Reached target Basic System.\n");
	CHECK(!w.marker_seen);
	feed(&w, P2V_CH_CONSOLE, 2, "[  OK  ] Reached target multi-user.target - Multi-User System.\n");
	CHECK(w.marker_seen);
	p2v_watch_end(&w, P2V_END_TIMEOUT, 3, NULL);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	p2v_watch_free(&w);
}

struct fail_case {
	enum p2v_channel ch;
	const char *transcript;
	const char *reason_prefix;
};

static const struct fail_case fail_cases[] = {
	{ P2V_CH_FIRMWARE, "Booting from Hard Disk...\nBoot failed: not a bootable disk\n\n",
	  "no bootable device: Boot failed: not a bootable disk" },
	{ P2V_CH_CONSOLE, "No bootable device.\n", "no bootable device" },
	{ P2V_CH_CONSOLE, "[ TIME ] Timed out waiting for device dev-sda1.device - /dev/sda1.\r\n"
			  "Warning: /dev/sda1 does not exist\r\n",
	  "initramfs could not find the root device: Warning: /dev/sda1 does not exist" },
	{ P2V_CH_CONSOLE, "GRUB loading.\r\nWelcome to GRUB!\r\n\r\nerror: unknown filesystem.\r\n"
			  "Press any key to continue...\r\n",
	  "bootloader error: error: unknown filesystem." },
	{ P2V_CH_CONSOLE, "Entering rescue mode...\r\ngrub rescue> ", "bootloader error (GRUB rescue shell)" },
	{ P2V_CH_CONSOLE, "GRUB loading.\r\n     Minimal BASH-like line editing\r\ngrub> ",
	  "bootloader error (GRUB stopped at its command line)" },
	{ P2V_CH_CONSOLE, "GRUB Geom Error", "bootloader error: GRUB Geom Error" },
	{ P2V_CH_CONSOLE, "Missing operating system.\r\n", "bootloader error" },
	{ P2V_CH_CONSOLE,
	  "[    0.000000] Linux version 6.1\n[    1.9] VFS: Cannot open root device \"vda1\"\n"
	  "[    1.9] VFS: Unable to mount root fs on unknown-block(0,0)\n",
	  "kernel could not mount the root filesystem: [    1.9] VFS: Unable to mount root fs" },
	{ P2V_CH_CONSOLE, "[    1.2] Kernel panic - not syncing: Attempted to kill init!\n",
	  "kernel panic: [    1.2] Kernel panic - not syncing: Attempted to kill init!" },
	{ P2V_CH_CONSOLE,
	  "Begin: Waiting for root file system ... \nGave up waiting for root file system device.\n"
	  "ALERT!  /dev/vda1 does not exist.  Dropping to a shell!\n",
	  "initramfs could not find the root device: ALERT!  /dev/vda1 does not exist." },
	{ P2V_CH_CONSOLE, "BusyBox v1.35.0\r\n(initramfs) ", "initramfs dropped to a shell" },
	{ P2V_CH_CONSOLE, "You are in emergency mode. After logging in, type \"journalctl -xb\"\n",
	  "the system dropped to emergency mode" },
};

static void test_fail_patterns(void)
{
	for (size_t i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
		struct p2v_watch w;
		double decided_t_s = 2.5;

		init(&w, NULL);
		feed(&w, fail_cases[i].ch, 2.5, fail_cases[i].transcript);
		p2v_watch_tick(&w, 2.5); /* no time passed: only complete lines and prompts */
		if (w.verdict == P2V_VERDICT_PENDING) {
			CHECK(!strcmp(fail_cases[i].transcript, "GRUB Geom Error"));
			p2v_watch_tick(&w, 2.5 + P2V_WATCH_STALL_S / 2);
			CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
			decided_t_s = 2.5 + P2V_WATCH_STALL_S;
			p2v_watch_tick(&w, decided_t_s);
		}
		CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
		if (strncmp(w.reason, fail_cases[i].reason_prefix, strlen(fail_cases[i].reason_prefix))) {
			fprintf(stderr, "case %zu: reason '%s', expected '%s...'\n", i, w.reason,
				fail_cases[i].reason_prefix);
			unit_failures++;
		}
		CHECK(w.decided_t_s == decided_t_s);
		p2v_watch_free(&w);
	}
}

/* A line split across reads is judged whole, even when a piece ends in ':'. */
static void test_split_line(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_FIRMWARE, 1, "Booting from Hard Disk...\nBoot failed:");
	p2v_watch_tick(&w, 1.2);
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	feed(&w, P2V_CH_FIRMWARE, 1.3, " not a bootable disk\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	CHECK(!strcmp(w.reason, "no bootable device: Boot failed: not a bootable disk"));
	p2v_watch_free(&w);
}

static void test_panic_after_marker(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 5, "host login: ");
	p2v_watch_tick(&w, 6);
	feed(&w, P2V_CH_CONSOLE, 6.5, "\n[   7.0] Kernel panic - not syncing: Fatal exception\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	CHECK(!strncmp(w.reason, "kernel panic", 12));
	p2v_watch_tick(&w, 20);
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	p2v_watch_free(&w);
}

static void test_late_error_is_not_grub(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 1, "Linux version 6.1\nerror: something in userspace\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	p2v_watch_free(&w);
}

/* A quiet kernel prints no banner: systemd-shaped lines mark the OS too. */
static void test_quiet_kernel(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 1, "Loading Linux 6.1.0-56-amd64 ...\nLoading initial ramdisk ...\n");
	feed(&w, P2V_CH_CONSOLE, 5, "[  OK  ] Started systemd-journald.service.\n");
	feed(&w, P2V_CH_CONSOLE, 6, "error: a service complained\nRead Error in some log\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	feed(&w, P2V_CH_CONSOLE, 8, "host login: ");
	p2v_watch_tick(&w, 11.5);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	p2v_watch_free(&w);
}

static void test_expect_regex(void)
{
	struct p2v_watch w;
	char err[128];

	init(&w, "P2V-[A-Z]+-OK");
	feed(&w, P2V_CH_CONSOLE, 1, "host login: \n");
	CHECK(!w.marker_seen);
	feed(&w, P2V_CH_CONSOLE, 4, "P2V-TINY-OK\r\n");
	CHECK(w.marker_seen);
	p2v_watch_event(&w, &(struct p2v_watch_event){ .type = P2V_WEV_END, .end = P2V_END_SHUTDOWN, .t_s = 4.2, .detail = "ACPI power-off (S5)" });
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	CHECK(strstr(w.reason, "powered off") != NULL);
	p2v_watch_free(&w);
	/* with --expect, writes to the root filesystem are no success of their own */
	init(&w, "P2V-[A-Z]+-OK");
	feed(&w, P2V_CH_CONSOLE, 1, "[    0.000000] Linux version 6.1.0\n");
	for (int i = 0; i < 20; i++)
		p2v_watch_event(&w, &(struct p2v_watch_event){ .type = P2V_WEV_DISK_WRITE, .t_s = 2,
							     .offset_bytes = 64 << 20, .length_bytes = 4096 });
	CHECK(w.root_write_seen);
	p2v_watch_tick(&w, 30);
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	p2v_watch_free(&w);
	CHECK_EQ(p2v_watch_init(&w, "([a-z", 3, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "--expect") != NULL);
}

static void test_root_write_events(void)
{
	struct p2v_watch w;
	struct p2v_watch_event ev = { .type = P2V_WEV_DISK_WRITE, .length_bytes = 4096 };

	init(&w, NULL);
	p2v_watch_event(&w, &(struct p2v_watch_event){ .type = P2V_WEV_FIRMWARE_START, .t_s = 0.01 });
	p2v_watch_event(&w, &(struct p2v_watch_event){ .type = P2V_WEV_DISK_READ, .t_s = 0.2 });
	ev.t_s = 0.5;
	ev.offset_bytes = 2 << 20; /* a boot loader saving its environment: not enough */
	p2v_watch_event(&w, &ev);
	ev.offset_bytes = 0;
	p2v_watch_event(&w, &ev);
	CHECK(!w.root_write_seen);
	feed(&w, P2V_CH_CONSOLE, 1, "Linux version 6.1\n");
	ev.t_s = 4;
	ev.offset_bytes = 512;      /* MBR area: not the root fs */
	p2v_watch_event(&w, &ev);
	CHECK(!w.root_write_seen);
	ev.offset_bytes = 64 << 20;
	p2v_watch_event(&w, &ev);
	CHECK(w.root_write_seen);
	CHECK(w.ms_t_s[P2V_MS_ROOT] == 4);
	CHECK(w.ms_t_s[P2V_MS_FIRMWARE] == 0.01);
	CHECK(w.ms_t_s[P2V_MS_DISK_READ] == 0.2);
	CHECK_EQ(w.disk_writes, 4);
	p2v_watch_tick(&w, 7.5);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	CHECK(strstr(w.reason, "root filesystem write") != NULL);
	p2v_watch_free(&w);
}

/* Counting engines (QEMU): operations and the end of the highest write. */
static void test_disk_stats(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	p2v_watch_disk_stats(&w, 0.5, 0, 0, 0);
	CHECK(w.ms_t_s[P2V_MS_DISK_READ] < 0);
	p2v_watch_disk_stats(&w, 1, 10, 0, 0);
	CHECK(w.ms_t_s[P2V_MS_DISK_READ] == 1);
	p2v_watch_disk_stats(&w, 2, 20, 2, 3 << 20); /* a boot loader's few writes */
	CHECK(!w.root_write_seen);
	feed(&w, P2V_CH_CONSOLE, 3, "Linux version 6.1\n");
	p2v_watch_disk_stats(&w, 4, 30, 2, 3 << 20);
	CHECK(w.root_write_seen);
	CHECK(w.root_write_t_s == 4);
	CHECK_EQ(w.disk_reads, 30);
	CHECK_EQ(w.disk_writes, 2);
	p2v_watch_free(&w);

	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 3, "Linux version 6.1\n");
	p2v_watch_disk_stats(&w, 4, 30, 5, 4096); /* only the MBR area */
	CHECK(!w.root_write_seen);
	p2v_watch_free(&w);
}

static void test_run_ends(void)
{
	static const struct { enum p2v_run_end end; const char *reason; } ends[] = {
		{ P2V_END_SHUTDOWN, "guest powered off before reaching userspace at 9.0 s (last milestone: kernel start)" },
		{ P2V_END_RESET, "guest reset" },
		{ P2V_END_TRIPLE_FAULT, "triple fault" },
		{ P2V_END_HALTED, "guest halted" },
		{ P2V_END_TIMEOUT, "timeout at 9.0 s (last milestone: kernel start)" },
	};
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		struct p2v_watch w;

		init(&w, NULL);
		feed(&w, P2V_CH_CONSOLE, 1, "[ 0.0] Linux version 6.1\n");
		p2v_watch_end(&w, ends[i].end, 9, NULL);
		CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
		CHECK(!strncmp(w.reason, ends[i].reason, strlen(ends[i].reason)));
		p2v_watch_free(&w);
	}
}

static void test_tail_and_long_lines(void)
{
	struct p2v_watch w;
	char line[600];

	init(&w, NULL);
	for (int i = 0; i < 30; i++) {
		snprintf(line, sizeof(line), "line %d\r\n", i);
		feed(&w, P2V_CH_CONSOLE, i, line);
	}
	CHECK_EQ(w.tail[P2V_CH_CONSOLE].count, P2V_WATCH_TAIL_LINES);
	CHECK(!strcmp(p2v_watch_tail_line(&w.tail[P2V_CH_CONSOLE], 0), "line 10"));
	CHECK(!strcmp(p2v_watch_tail_line(&w.tail[P2V_CH_CONSOLE], 19), "line 29"));
	memset(line, 'x', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	line[sizeof(line) - 1] = '\0';
	feed(&w, P2V_CH_CONSOLE, 31, line);
	CHECK_EQ(strlen(p2v_watch_tail_line(&w.tail[P2V_CH_CONSOLE], 19)), P2V_WATCH_LINE_BYTES - 1);
	p2v_watch_free(&w);
}

/* JSON strings stay valid UTF-8 whatever the guest console printed. */
static void test_json_utf8(void)
{
	static const char in[] = "ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \x80 \xc3 \xed\xa0\x80 "
				 "\xc0\xaf \xf5\x80\x80\x80 end\x1b";
	static const char want[] = "\"ok \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \\ufffd \\ufffd "
				   "\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd end\\u001b\"";
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct p2v_json j;

	CHECK(f != NULL);
	if (!f)
		return;
	p2v_json_init(&j, f);
	p2v_json_str(&j, NULL, in);
	fclose(f);
	CHECK(buf && strstr(buf, want) != NULL);
	if (buf && !strstr(buf, want))
		fprintf(stderr, "got %s\n", buf);
	free(buf);
}

/* Debian 12's OVMF (2022.11) on a disk whose ESP has only \EFI\debian:
 * the bytes it wrote to COM1 under QEMU, escape sequences included. */
static const char ovmf_no_fallback[] =
	"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H"
	"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0): Not Found\r\n"
	"BdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)"
	"/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)\r\n"
	"BdsDxe: starting Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)"
	"/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)\r\n"
	"\x1b[2J\x1b[01;01H\x1b[01;01HUEFI Interactive Shell v2.2\r\nEDK II\r\n";

static void test_uefi_no_fallback(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	w.uefi = true;
	snprintf(w.uefi_hint, sizeof(w.uefi_hint), " (it holds \\EFI\\debian\\grubx64.efi)");
	feed(&w, P2V_CH_CONSOLE, 12.0, ovmf_no_fallback);
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	CHECK(!strncmp(w.reason, "no boot entry in this firmware and no \\EFI\\BOOT\\BOOTX64.EFI on the ESP "
		       "(it holds \\EFI\\debian\\grubx64.efi) (firmware: BdsDxe: failed to load Boot0001",
		       strlen("no boot entry in this firmware and no \\EFI\\BOOT\\BOOTX64.EFI on the ESP "
			      "(it holds \\EFI\\debian\\grubx64.efi) (firmware: BdsDxe: failed to load Boot0001")));
	CHECK(w.ms_t_s[P2V_MS_FIRMWARE] == 12.0);
	CHECK(w.ms_t_s[P2V_MS_EFI_BOOT] < 0);
	p2v_watch_free(&w);

	/* The same firmware without the shell in its build: the prompt-less
	 * "no bootable option" line decides it too; a failure without
	 * "Not Found" gets the general reason. */
	init(&w, NULL);
	w.uefi = true;
	feed(&w, P2V_CH_CONSOLE, 3.0, "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from "
	     "PciRoot(0x0)/Pci(0x2,0x0): Access Denied\r\nBdsDxe: No bootable option or device was found.\r\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	CHECK(!strncmp(w.reason, "the UEFI firmware found nothing to boot (firmware: BdsDxe: failed to load",
		       strlen("the UEFI firmware found nothing to boot (firmware: BdsDxe: failed to load")));
	p2v_watch_free(&w);
}

/* The fallback path found: OVMF starts the disk's option, GRUB without a
 * display complains about video modes (not a failure), the kernel runs. */
static void test_uefi_boot(void)
{
	struct p2v_watch w;
	char buf[8192];
	FILE *f;

	init(&w, NULL);
	w.uefi = true;
	feed(&w, P2V_CH_CONSOLE, 10.0, "\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI Misc Device\" from "
	     "PciRoot(0x0)/Pci(0x2,0x0)\r\n");
	feed(&w, P2V_CH_CONSOLE, 10.5, "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r\n");
	feed(&w, P2V_CH_CONSOLE, 11.0, "Welcome to GRUB!\r\n\r\n  Booting `Debian GNU/Linux'\r\n\r\n");
	feed(&w, P2V_CH_CONSOLE, 11.5, "error: no suitable video mode found.\r\nBooting in blind mode\r\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	CHECK(w.ms_t_s[P2V_MS_EFI_BOOT] == 10.5);
	CHECK(strstr(w.ms_line[P2V_MS_EFI_BOOT], "Boot0001 \"UEFI Misc Device\"") != NULL);
	CHECK(w.ms_t_s[P2V_MS_BOOTLOADER] == 11.0);
	feed(&w, P2V_CH_CONSOLE, 30.0, "[  OK  ] Reached target multi-user.target - Multi-User System.\r\n");
	p2v_watch_tick(&w, 34.0);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	/* The report lists the UEFI milestone only for a UEFI run. */
	f = fmemopen(buf, sizeof(buf), "w");
	p2v_watch_report_text(&w, &(struct p2v_report_info){ .engine = "qemu-tcg", .firmware = "uefi",
							     .image = "x" }, f);
	fclose(f);
	CHECK(strstr(buf, "EFI boot entry") != NULL);
	CHECK(strstr(buf, "firmware: uefi") != NULL);
	w.uefi = false;
	f = fmemopen(buf, sizeof(buf), "w");
	p2v_watch_report_text(&w, &(struct p2v_report_info){ .engine = "qemu-tcg", .image = "x" }, f);
	fclose(f);
	CHECK(strstr(buf, "EFI boot entry") == NULL);
	p2v_watch_free(&w);
	/* Under BIOS the same GRUB error line fails the boot if no kernel
	 * follows: at the end of the run, with that error as the reason. */
	init(&w, NULL);
	feed(&w, P2V_CH_CONSOLE, 1.0, "error: file `/boot/vmlinuz' not found.\r\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	p2v_watch_end(&w, P2V_END_TIMEOUT, 120, NULL);
	CHECK_EQ(w.verdict, P2V_VERDICT_FAIL);
	CHECK(!strncmp(w.reason, "bootloader error: error: file `/boot/vmlinuz' not found.", 56));
	p2v_watch_free(&w);
}

/* GRUB says "error:" and boots anyway (a missing font, from the BIOS
 * screen): the kernel after it makes it harmless. */
static void test_grub_error_then_kernel(void)
{
	struct p2v_watch w;

	init(&w, NULL);
	feed(&w, P2V_CH_SCREEN, 1.0, "Welcome to GRUB!\r\n\r\nerror: file `/boot/grub/fonts/unicode.pf2' not found.\r\n");
	CHECK_EQ(w.verdict, P2V_VERDICT_PENDING);
	feed(&w, P2V_CH_CONSOLE, 5.0, "[    0.000000] Linux version 6.1.0\r\n");
	feed(&w, P2V_CH_CONSOLE, 30.0, "debian login: ");
	p2v_watch_tick(&w, 40.0);
	CHECK_EQ(w.verdict, P2V_VERDICT_PASS);
	p2v_watch_free(&w);
}

int main(void)
{
	test_pass_on_login();
	test_systemd_target();
	test_fail_patterns();
	test_split_line();
	test_grub_error_then_kernel();
	test_panic_after_marker();
	test_late_error_is_not_grub();
	test_quiet_kernel();
	test_expect_regex();
	test_root_write_events();
	test_disk_stats();
	test_run_ends();
	test_tail_and_long_lines();
	test_json_utf8();
	test_uefi_no_fallback();
	test_uefi_boot();
	UNIT_DONE();
}
