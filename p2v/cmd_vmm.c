/* p2v boot (interactive console) and p2v verify (boot and give a verdict).
 * The engine is vmm-min on hardware-speed KVM, QEMU TCG otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "bootdisk.h"
#include "engine.h"
#include "imgfmt.h"
#include "p2v.h"
#include "verdict.h"

#define VERIFY_DEFAULT_TIMEOUT_S 120.0
#define VERIFY_DEFAULT_SETTLE_S 3.0
#define CONSOLE_ESCAPE 0x1d      /* Ctrl-] */

enum firmware_choice { FIRMWARE_AUTO, FIRMWARE_BIOS, FIRMWARE_UEFI };

struct boot_opts {
	const char *image;
	const char *format;          /* -f: skip probing */
	const char *engine_name;     /* --engine: NULL or "auto" to choose */
	const struct p2v_engine_ops *engine; /* chosen */
	char engine_note[320];       /* why auto chose it */
	enum firmware_choice firmware;
	struct p2v_engine_config cfg;
	/* verify */
	const char *expect;
	const char *transcript;
	bool json;
	bool console;                /* echo the guest console on stderr */
	double settle_s;
	bool post_restored;          /* the run resumed a POST snapshot */
	bool quiet;                  /* -q: no notices on stderr */
	const char *display_name;    /* --name: the image as the report names it */
	char post_dir[4096];
	const char *allow[P2V_MAX_REPEATS]; /* --allow-backing, in cfg */
};

static int parse_engine(const char *s, const char **out)
{
	char names[64];

	if (!strcmp(s, "auto") || p2v_engine_find(s)) {
		*out = s;
		return 0;
	}
	p2v_engine_names(names, sizeof(names));
	p2v_err("--engine '%s': expected one of %s", s, names);
	return -EINVAL;
}

static int parse_firmware(const char *s, enum firmware_choice *out)
{
	static const char *const names[] = { "auto", "bios", "uefi" };

	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum firmware_choice)i;
			return 0;
		}
	p2v_err("--firmware '%s': expected auto, bios or uefi", s);
	return -EINVAL;
}

static int parse_cpus(const char *s, unsigned *out)
{
	char *end;
	unsigned long n = strtoul(s, &end, 10);

	if (*s < '0' || *s > '9' || *end || n < 1 || n > 8) {
		p2v_err("--cpus '%s': expected 1 to 8", s);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

/* --mem: a plain number is MiB (as QEMU's -m), otherwise a size with a unit. */
static int parse_mem(const char *s, uint64_t *out_bytes)
{
	char *end;
	unsigned long long mib = strtoull(s, &end, 10);

	if (*s >= '0' && *s <= '9' && *end == '\0' && mib > 0 && mib <= (1ull << 20)) {
		*out_bytes = mib << 20;
		return 0;
	}
	if (imgfmt_parse_size(s, out_bytes) == 0 && *out_bytes >= (16u << 20) &&
	    *out_bytes <= (1ull << 40))
		return 0;
	p2v_err("--mem '%s': expected MiB (512) or a size (1G) between 16 MiB and 1 TiB", s);
	return -EINVAL;
}

static int parse_seconds(const char *opt, const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v > 0) || v > 86400) {
		p2v_err("%s '%s': expected seconds between 0 and 86400", opt, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Where vmm-min keeps POST snapshots: $P2V_CACHE_DIR, $XDG_CACHE_HOME/p2v
 * or ~/.cache/p2v, then /post; its parents are made.  Empty when none. */
static void post_cache_dir(char *dir, size_t dir_bytes)
{
	const char *env = getenv("P2V_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n = -1;

	if (env && *env)
		n = snprintf(dir, dir_bytes, "%s/post", env);
	else if (xdg && *xdg == '/')
		n = snprintf(dir, dir_bytes, "%s/p2v/post", xdg);
	else if (home && *home == '/')
		n = snprintf(dir, dir_bytes, "%s/.cache/p2v/post", home);
	if (n < 0 || (size_t)n >= dir_bytes) {
		dir[0] = '\0';
		return;
	}
	for (char *p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
}

enum {
	OPT_TIMEOUT = 256, OPT_EXPECT, OPT_JSON, OPT_ENGINE, OPT_MEM, OPT_FWLOG, OPT_TRANSCRIPT,
	OPT_SETTLE, OPT_WRITABLE, OPT_KERNEL, OPT_INITRD, OPT_APPEND, OPT_CONSOLE, OPT_HELP,
	OPT_NO_POST_CACHE, OPT_FIRMWARE, OPT_NAME, OPT_CPUS, OPT_ALLOW_BACKING, OPT_ALLOW_SYMLINKS,
};

static const struct option long_opts[] = {
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "expect", required_argument, NULL, OPT_EXPECT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "engine", required_argument, NULL, OPT_ENGINE },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "firmware-log", required_argument, NULL, OPT_FWLOG },
	{ "transcript", required_argument, NULL, OPT_TRANSCRIPT },
	{ "settle", required_argument, NULL, OPT_SETTLE },
	{ "console", no_argument, NULL, OPT_CONSOLE },
	{ "writable", no_argument, NULL, OPT_WRITABLE },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "append", required_argument, NULL, OPT_APPEND },
	{ "format", required_argument, NULL, 'f' },
	{ "no-post-cache", no_argument, NULL, OPT_NO_POST_CACHE },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "firmware", required_argument, NULL, OPT_FIRMWARE },
	{ "allow-backing", required_argument, NULL, OPT_ALLOW_BACKING },
	{ "allow-symlinks", no_argument, NULL, OPT_ALLOW_SYMLINKS },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static void usage(const char *cmd, FILE *f)
{
	if (!strcmp(cmd, "verify"))
		fprintf(f, "usage: p2v verify IMG [-f FMT] [--timeout S] [--expect REGEX] [--json]\n"
			   "         [--engine auto|vmm|qemu] [--firmware auto|bios|uefi] [--mem M]\n"
			   "         [--firmware-log FILE] [--transcript FILE] [--settle S] [--console]\n"
			   "         [--no-post-cache] [--cpus N] [--name NAME] [-q]\n"
			   "Boots IMG read-only and says whether it reaches userspace (exit 0),\n"
			   "fails to (exit 1, with the reason), or could not be run (exit 2).\n"
			   "--console shows the guest's console on stderr as it boots.\n"
			   "--firmware auto boots UEFI (OVMF, a fresh variable store each run) when the\n"
			   "disk is GPT with an EFI system partition holding EFI binaries and no BIOS\n"
			   "boot code, BIOS (SeaBIOS) otherwise, hybrids included.\n"
			   "vmm-min keeps the machine as the firmware leaves POST (no disk byte read\n"
			   "yet) in ~/.cache/p2v/post ($P2V_CACHE_DIR) and resumes there next time;\n"
			   "--no-post-cache runs POST every time.  --cpus: vCPUs (default 2).\n"
			   "--name: how the report names the image (default IMG).  -q: no notices.\n"
			   "--allow-backing DIR (repeatable), --allow-symlinks: let IMG's backing files\n"
			   "lie beneath DIR or be reached through symbolic links (p2v convert --help).\n");
	else
		fprintf(f, "usage: p2v boot IMG [-f FMT] [--engine auto|vmm|qemu] [--firmware auto|bios|uefi]\n"
			   "         [--mem M] [--cpus N] [--writable]\n"
			   "         [--kernel K [--initrd I] [--append A]] [--firmware-log FILE]\n"
			   "         [--allow-backing DIR]... [--allow-symlinks]\n"
			   "Boots IMG with COM1 on this terminal (Ctrl-] then q quits).  Guest writes\n"
			   "are discarded unless --writable.\n");
}

/* Returns 0, or an exit code when the command must stop (help, bad usage). */
static int parse_args(int argc, char **argv, struct boot_opts *o, bool verify)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.timeout_s = verify ? VERIFY_DEFAULT_TIMEOUT_S : 0;
	o->settle_s = VERIFY_DEFAULT_SETTLE_S;
	post_cache_dir(o->post_dir, sizeof(o->post_dir));
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:q", long_opts, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case 'f': o->format = optarg; break;
		case OPT_TIMEOUT: r = parse_seconds("--timeout", optarg, &o->cfg.timeout_s); break;
		case OPT_SETTLE: r = parse_seconds("--settle", optarg, &o->settle_s); break;
		case OPT_EXPECT: o->expect = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_CONSOLE: o->console = true; break;
		case OPT_ENGINE: r = parse_engine(optarg, &o->engine_name); break;
		case OPT_FIRMWARE: r = parse_firmware(optarg, &o->firmware); break;
		case OPT_MEM: r = parse_mem(optarg, &o->cfg.mem_bytes); break;
		case OPT_FWLOG: o->cfg.firmware_log_path = optarg; break;
		case OPT_TRANSCRIPT: o->transcript = optarg; break;
		case OPT_WRITABLE: o->cfg.writable = true; break;
		case OPT_KERNEL: o->cfg.kernel_path = optarg; break;
		case OPT_INITRD: o->cfg.initrd_path = optarg; break;
		case OPT_APPEND: o->cfg.append = optarg; break;
		case OPT_NO_POST_CACHE: o->post_dir[0] = '\0'; break;
		case OPT_NAME: o->display_name = optarg; break;
		case OPT_CPUS: r = parse_cpus(optarg, &o->cfg.cpus); break;
		case 'q': o->quiet = true; break;
		case OPT_ALLOW_BACKING:
			if (o->cfg.n_allow_backing >= P2V_MAX_REPEATS) {
				p2v_err("%s: --allow-backing given more than %d times", argv[0], P2V_MAX_REPEATS);
				return P2V_EXIT_ERROR;
			}
			o->allow[o->cfg.n_allow_backing++] = optarg;
			o->cfg.allow_backing = o->allow;
			break;
		case OPT_ALLOW_SYMLINKS: o->cfg.allow_symlinks = true; break;
		case OPT_HELP: usage(argv[0], stdout); return P2V_EXIT_OK;
		default: usage(argv[0], stderr); return P2V_EXIT_ERROR;
		}
		if (r < 0)
			return P2V_EXIT_ERROR;
	}
	if (verify && (o->cfg.writable || o->cfg.kernel_path || o->cfg.initrd_path || o->cfg.append)) {
		p2v_err("verify: --writable, --kernel, --initrd and --append belong to 'p2v boot'");
		return P2V_EXIT_ERROR;
	}
	if ((o->cfg.initrd_path || o->cfg.append) && !o->cfg.kernel_path) {
		p2v_err("%s: --initrd and --append need --kernel", argv[0]);
		return P2V_EXIT_ERROR;
	}
	o->cfg.post_cache_dir = o->post_dir[0] ? o->post_dir : NULL;
	if (optind + 1 == argc)
		o->image = argv[optind];
	else if (optind != argc || !o->cfg.kernel_path) {
		usage(argv[0], stderr);
		return P2V_EXIT_ERROR;
	}
	return -1;
}

/* ---- the image ---- */

struct image_facts {
	char format[16];
	uint8_t sector0[IMGFMT_SECTOR_BYTES];
	uint8_t sector1[IMGFMT_SECTOR_BYTES];
	uint64_t size_bytes;
	struct p2v_bootdisk boot;    /* how it boots (BIOS code, ESP, EFI binaries) */
};

static int image_read(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes)
{
	return imgfmt_pread(opaque, buf, len_bytes, off_bytes);
}

/* Opens the image read-only once to learn its format and first sectors. */
static int probe_image(const struct boot_opts *o, struct image_facts *facts)
{
	struct imgfmt_open_opts oo = { .format = o->format, .log = p2v_log_warning,
				       .allow_backing = o->cfg.allow_backing,
				       .n_allow_backing = o->cfg.n_allow_backing,
				       .allow_symlinks = o->cfg.allow_symlinks };
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	int r = imgfmt_open(&img, o->image, &oo, err, sizeof(err));

	memset(facts, 0, sizeof(*facts));
	if (r < 0 && r != -EPERM && r != -ELOOP && r != -ENOSYS && o->format &&
	    p2v_qemu_format(o->format)) {
		/* The engine may still read it (QEMU has its own drivers); not
		 * one that names files confinement refuses (QEMU would follow). */
		p2v_warn("%s; passing the image to the engine as %s unchecked", err, o->format);
		snprintf(facts->format, sizeof(facts->format), "%s", o->format);
		return 0;
	}
	if (r < 0) {
		p2v_err("%s", err);
		return r;
	}
	snprintf(facts->format, sizeof(facts->format), "%s", imgfmt_format(img));
	facts->size_bytes = imgfmt_size_bytes(img);
	if (facts->size_bytes >= 2 * IMGFMT_SECTOR_BYTES) {
		r = imgfmt_pread(img, facts->sector0, IMGFMT_SECTOR_BYTES, 0);
		if (r == 0)
			r = imgfmt_pread(img, facts->sector1, IMGFMT_SECTOR_BYTES, IMGFMT_SECTOR_BYTES);
		if (r == 0)
			r = p2v_bootdisk_probe(image_read, img, facts->size_bytes, &facts->boot);
		if (r < 0)
			p2v_err("%s: reading the first sectors: %s", o->image, imgfmt_errmsg(img));
	}
	imgfmt_close(img);
	return r;
}

/* A partition table with no boot code: SeaBIOS would jump into 440 zero
 * bytes and spin forever, so say so at once.  NULL when the MBR has code. */
static const char *mbr_without_code(const struct image_facts *f)
{
	if (f->size_bytes < 2 * IMGFMT_SECTOR_BYTES || f->sector0[510] != 0x55 || f->sector0[511] != 0xaa)
		return NULL;
	if (!imgfmt_is_zero(f->sector0, 440))
		return NULL;
	if (!memcmp(f->sector1, "EFI PART", 8) && p2v_bootdisk_kind(&f->boot) == P2V_BOOT_UEFI)
		return "no bootable device: the disk is GPT with no BIOS boot code in its protective MBR "
		       "(it boots UEFI: --firmware uefi or auto)";
	if (!memcmp(f->sector1, "EFI PART", 8))
		return "no bootable device: the disk is GPT with no BIOS boot code in its protective MBR "
		       "and no EFI system partition holding an EFI boot loader";
	return "no bootable device: the MBR (sector 0) has a partition table but no boot code "
	       "(440 zero bytes); the firmware would jump into zeros";
}

/* ---- the engine ---- */

/* The firmware: as asked, else UEFI for a disk that only boots UEFI. */
static enum p2v_firmware pick_firmware(const struct boot_opts *o, const struct image_facts *f)
{
	enum p2v_boot_kind k = o->image ? p2v_bootdisk_kind(&f->boot) : P2V_BOOT_NONE;

	if (o->firmware != FIRMWARE_AUTO)
		return o->firmware == FIRMWARE_UEFI ? P2V_FW_UEFI : P2V_FW_BIOS;
	if (k == P2V_BOOT_HYBRID)
		fprintf(stderr, "p2v: the disk has BIOS boot code and an EFI system partition with "
			"EFI binaries: booting it with BIOS firmware (--firmware uefi for UEFI)\n");
	return k == P2V_BOOT_UEFI ? P2V_FW_UEFI : P2V_FW_BIOS;
}

/* Picks the engine (the one named, or the first of the table that fits);
 * false (with a message) when none can run.  Auto says what it chose and why. */
static bool choose_engine(struct boot_opts *o)
{
	char note[sizeof(o->engine_note)] = "";

	if (o->engine_name && strcmp(o->engine_name, "auto")) {
		o->engine = p2v_engine_find(o->engine_name);
		if (o->engine->check(&o->cfg, true, note, sizeof(note)) != 1) {
			p2v_err("no engine can run: %s (--engine %s)", note, o->engine_name);
			return false;
		}
		return true;
	}
	o->engine = p2v_engine_auto(&o->cfg, note, sizeof(note));
	if (!o->engine) {
		p2v_err("no engine can run: %s", note);
		return false;
	}
	snprintf(o->engine_note, sizeof(o->engine_note), "%s", note);
	if (!o->quiet)
		fprintf(stderr, "p2v: %s; using %s\n", note, o->engine->title);
	return true;
}

/* Format, first-sector check and engine; an exit code or -1 to go on. */
static int prepare(struct boot_opts *o, struct image_facts *facts)
{
	if (o->image) {
		if (probe_image(o, facts) < 0)
			return P2V_EXIT_ERROR;
		o->cfg.disk_path = o->image;
		o->cfg.disk_format = facts->format;
	}
	o->cfg.firmware = pick_firmware(o, facts);
	if (!choose_engine(o))
		return P2V_EXIT_ERROR;
	if (o->image && !o->engine->boots_format(facts->format)) {
		p2v_err("%s: %s cannot boot %s images", o->image, o->engine->title, facts->format);
		return P2V_EXIT_ERROR;
	}
	return -1;
}

/* ---- verify ---- */

static int verify_report(const struct boot_opts *o, const struct p2v_watch *w, bool booted,
			 const char *format, double elapsed_s)
{
	bool uefi = o->cfg.firmware == P2V_FW_UEFI;
	char detail[512];
	struct p2v_report_info info = {
		.engine = !booted ? "none" : o->engine->report_name,
		.engine_detail = detail,
		.firmware = uefi ? "uefi" : "bios",
		.image = o->display_name ? o->display_name : o->image, .format = format,
		.elapsed_s = elapsed_s, .timeout_s = o->cfg.timeout_s,
		.disk_counters = booted && o->engine->disk_counters,
	};

	if (!booted)
		snprintf(detail, sizeof(detail), "decided from the image before booting");
	else
		snprintf(detail, sizeof(detail), "%s%s%s%s%s", o->engine->title,
			 o->post_restored ? ", POST resumed from a snapshot" : "",
			 o->engine != &p2v_engine_qemu ? ""
			 : uefi ? " (qemu-system-x86_64 -accel tcg, -snapshot, OVMF with a fresh variable store)"
				: " (qemu-system-x86_64 -accel tcg, -snapshot)",
			 o->engine_note[0] ? "; chosen because " : "", o->engine_note);

	if (o->json)
		p2v_watch_report_json(w, &info, stdout);
	else
		p2v_watch_report_text(w, &info, stdout);
	fflush(stdout);
	return w->verdict == P2V_VERDICT_PASS ? P2V_EXIT_OK : P2V_EXIT_NO;
}

static int verify_run(struct boot_opts *o, struct p2v_watch *w, double *elapsed_s)
{
	struct p2v_engine_result res;
	char err[512] = "";
	int r;

	r = o->engine->verify(&o->cfg, w, &p2v_interrupted, &res, err, sizeof(err));
	*elapsed_s = res.elapsed_s;
	o->post_restored = res.post_restored;
	if (r == -EINTR) {
		p2v_err("interrupted after %.1f s", res.elapsed_s);
		return P2V_EXIT_ERROR;
	}
	if (r < 0) {
		p2v_err("%s: %s", o->image, err);
		return P2V_EXIT_ERROR;
	}
	return -1;
}

/* For a UEFI run: what the ESP holds, for a no-boot reason. */
static void uefi_hint(struct p2v_watch *w, const struct image_facts *f)
{
	char files[512];

	w->uefi = true;
	if (!f->boot.esp_number || f->boot.fallback || !f->boot.n_efi_files)
		return;
	p2v_bootdisk_files(&f->boot, files, sizeof(files));
	snprintf(w->uefi_hint, sizeof(w->uefi_hint), " (it holds %.100s; p2v inject adds the fallback path)",
		 files);
}

/* The watcher with its outputs; false (with a message) on bad options. */
static bool watch_setup(struct p2v_watch *w, const struct boot_opts *o, const struct image_facts *f)
{
	char err[256];

	if (p2v_watch_init(w, o->expect, o->settle_s, err, sizeof(err)) < 0) {
		p2v_err("%s", err);
		return false;
	}
	if (o->cfg.firmware == P2V_FW_UEFI)
		uefi_hint(w, f);
	if (o->transcript && !(w->transcript = fopen(o->transcript, "we"))) {
		p2v_err("%s: %s", o->transcript, strerror(errno));
		p2v_watch_free(w);
		return false;
	}
	if (o->console)
		w->echo = stderr;
	return true;
}

int p2v_cmd_verify(int argc, char **argv)
{
	struct boot_opts o;
	struct image_facts facts;
	struct p2v_watch w;
	const char *nocode;
	double elapsed_s = 0;
	int rc = parse_args(argc, argv, &o, true);

	if (rc >= 0)
		return rc;
	rc = prepare(&o, &facts);
	if (rc >= 0)
		return rc;
	if (!watch_setup(&w, &o, &facts))
		return P2V_EXIT_ERROR;
	p2v_install_signal_handlers();
	nocode = o.cfg.firmware == P2V_FW_BIOS ? mbr_without_code(&facts) : NULL;
	if (nocode)
		p2v_watch_fail(&w, 0, nocode);
	else
		rc = verify_run(&o, &w, &elapsed_s);
	if (rc < 0)
		rc = verify_report(&o, &w, !nocode, facts.format, elapsed_s);
	if (w.transcript)
		fclose(w.transcript);
	p2v_watch_free(&w);
	return rc;
}

/* ---- boot: the interactive console ---- */

struct console_proxy {
	int to_guest_fd;                 /* write end of the guest's COM1 input */
	volatile sig_atomic_t *stop;     /* set on Ctrl-] q */
	volatile sig_atomic_t done;      /* the engine returned */
};

/* Copies the terminal to the guest; Ctrl-] q stops, Ctrl-] Ctrl-] sends one Ctrl-]. */
static void *console_input(void *opaque)
{
	struct console_proxy *p = opaque;
	bool escape = false;

	while (!p->done && !*p->stop) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		uint8_t buf[256], out[512];
		size_t o = 0;
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (escape && (buf[i] == 'q' || buf[i] == 'Q'))
				*p->stop = 1;
			else if (!escape && buf[i] == CONSOLE_ESCAPE)
				escape = true;
			else
				out[o++] = buf[i], escape = false;
			if (*p->stop)
				break;
		}
		if (o && write(p->to_guest_fd, out, o) < 0)
			break;
	}
	return NULL;
}

static int run_console(struct boot_opts *o, int in_fd)
{
	char err[512] = "";
	int r = o->engine->console(&o->cfg, in_fd, STDOUT_FILENO, &p2v_interrupted, err, sizeof(err));

	if (r < 0)
		p2v_err("%s", err);
	return r;
}

/* The terminal in raw mode (keys go to the guest) while the console runs. */
struct term_state {
	bool raw;
	struct termios saved;
};

static void term_raw(struct term_state *t)
{
	struct termios raw;

	t->raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0;
	if (!t->raw)
		return;
	raw = t->saved;
	cfmakeraw(&raw);
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void term_restore(const struct term_state *t)
{
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
}

/* Terminal -> guest in a thread, guest -> stdout by the engine. */
static int console_session(struct boot_opts *o)
{
	struct console_proxy proxy = { .stop = &p2v_interrupted };
	struct term_state term;
	pthread_t input;
	int pipefd[2], r;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		int e = errno;

		p2v_err("pipe: %s", strerror(e));
		return -e;
	}
	proxy.to_guest_fd = pipefd[1];
	term_raw(&term);
	if (pthread_create(&input, NULL, console_input, &proxy) != 0) {
		p2v_err("cannot start the console thread");
		r = -EAGAIN;
	} else {
		r = run_console(o, pipefd[0]);
		proxy.done = 1;
		pthread_join(input, NULL);
	}
	term_restore(&term);
	close(pipefd[0]);
	close(pipefd[1]);
	return r;
}

int p2v_cmd_boot(int argc, char **argv)
{
	struct boot_opts o;
	struct image_facts facts;
	int r, rc = parse_args(argc, argv, &o, false);

	if (rc >= 0)
		return rc;
	rc = prepare(&o, &facts);
	if (rc >= 0)
		return rc;
	p2v_install_signal_handlers();
	fprintf(stderr, "p2v: booting %s with %s%s%s; Ctrl-] then q quits\r\n",
		o.image ? o.image : o.cfg.kernel_path, o.engine->title,
		o.cfg.firmware == P2V_FW_UEFI ? " and UEFI firmware" : "",
		o.cfg.writable ? " (writable)" : " (guest writes discarded)");
	r = console_session(&o);
	fprintf(stderr, "\np2v: console closed\n");
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
