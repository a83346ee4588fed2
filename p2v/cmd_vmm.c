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

#include "engine.h"
#include "imgfmt.h"
#include "p2v.h"
#include "verdict.h"

#define VERIFY_DEFAULT_TIMEOUT_S 120.0
#define VERIFY_DEFAULT_SETTLE_S 3.0
#define VMM_MIN_MIPS 100.0       /* below this, KVM is software-nested: use TCG */
#define CONSOLE_ESCAPE 0x1d      /* Ctrl-] */

enum engine_choice { ENGINE_AUTO, ENGINE_VMM, ENGINE_QEMU };

struct boot_opts {
	const char *image;
	const char *format;          /* -f: skip probing */
	enum engine_choice engine;
	struct p2v_engine_config cfg;
	/* verify */
	const char *expect;
	const char *transcript;
	bool json;
	bool console;                /* echo the guest console on stderr */
	double settle_s;
	bool post_restored;          /* the run resumed a POST snapshot */
	char post_dir[4096];
};

static int parse_engine(const char *s, enum engine_choice *out)
{
	static const char *const names[] = { "auto", "vmm", "qemu" };

	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(s, names[i])) {
			*out = (enum engine_choice)i;
			return 0;
		}
	p2v_err("--engine '%s': expected auto, vmm or qemu", s);
	return -EINVAL;
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
	OPT_NO_POST_CACHE,
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
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static void usage(const char *cmd, FILE *f)
{
	if (!strcmp(cmd, "verify"))
		fprintf(f, "usage: p2v verify IMG [-f FMT] [--timeout S] [--expect REGEX] [--json]\n"
			   "         [--engine auto|vmm|qemu] [--mem M] [--firmware-log FILE]\n"
			   "         [--transcript FILE] [--settle S] [--console] [--no-post-cache]\n"
			   "Boots IMG read-only and says whether it reaches userspace (exit 0),\n"
			   "fails to (exit 1, with the reason), or could not be run (exit 2).\n"
			   "--console shows the guest's console on stderr as it boots.\n"
			   "vmm-min keeps the machine as the firmware leaves POST (no disk byte read\n"
			   "yet) in ~/.cache/p2v/post ($P2V_CACHE_DIR) and resumes there next time;\n"
			   "--no-post-cache runs POST every time.\n");
	else
		fprintf(f, "usage: p2v boot IMG [-f FMT] [--engine auto|vmm|qemu] [--mem M] [--writable]\n"
			   "         [--kernel K [--initrd I] [--append A]] [--firmware-log FILE]\n"
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
	while ((c = getopt_long(argc, argv, "f:", long_opts, NULL)) != -1) {
		int r = 0;
		switch (c) {
		case 'f': o->format = optarg; break;
		case OPT_TIMEOUT: r = parse_seconds("--timeout", optarg, &o->cfg.timeout_s); break;
		case OPT_SETTLE: r = parse_seconds("--settle", optarg, &o->settle_s); break;
		case OPT_EXPECT: o->expect = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_CONSOLE: o->console = true; break;
		case OPT_ENGINE: r = parse_engine(optarg, &o->engine); break;
		case OPT_MEM: r = parse_mem(optarg, &o->cfg.mem_bytes); break;
		case OPT_FWLOG: o->cfg.firmware_log_path = optarg; break;
		case OPT_TRANSCRIPT: o->transcript = optarg; break;
		case OPT_WRITABLE: o->cfg.writable = true; break;
		case OPT_KERNEL: o->cfg.kernel_path = optarg; break;
		case OPT_INITRD: o->cfg.initrd_path = optarg; break;
		case OPT_APPEND: o->cfg.append = optarg; break;
		case OPT_NO_POST_CACHE: o->post_dir[0] = '\0'; break;
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
};

/* Opens the image read-only once to learn its format and first sectors. */
static int probe_image(const struct boot_opts *o, struct image_facts *facts)
{
	struct imgfmt_open_opts oo = { .format = o->format, .log = p2v_log_warning };
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	int r = imgfmt_open(&img, o->image, &oo, err, sizeof(err));

	memset(facts, 0, sizeof(*facts));
	if (r < 0 && o->format && p2v_qemu_format(o->format)) {
		/* The engine may still read it (QEMU has its own drivers). */
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
	if (!memcmp(f->sector1, "EFI PART", 8))
		return "no bootable device: the disk is GPT with no BIOS boot code in its protective MBR "
		       "(UEFI-only; this engine boots with BIOS firmware)";
	return "no bootable device: the MBR (sector 0) has a partition table but no boot code "
	       "(440 zero bytes); the firmware would jump into zeros";
}

/* ---- the engine ---- */

static bool vmm_fast_enough(bool quiet_notice)
{
	char err[256] = "";
	double mips = p2v_vmm_mips(err, sizeof(err));

	if (mips >= VMM_MIN_MIPS)
		return true;
	if (quiet_notice)
		return false;
	if (mips == -ENOSYS)
		fprintf(stderr, "p2v: the vmm-min engine is not built into this p2v; using QEMU TCG\n");
	else if (mips < 0)
		fprintf(stderr, "p2v: KVM is unusable here (%s); using QEMU TCG\n", err);
	else
		fprintf(stderr, "p2v: KVM here runs guests at %.1f MIPS (software-nested); using QEMU TCG\n",
			mips);
	return false;
}

/* Picks the engine; false (with a message) when none can run. */
static bool choose_engine(struct boot_opts *o, bool *use_vmm)
{
	bool qemu_ok = p2v_qemu_available(&o->cfg);

	*use_vmm = o->engine == ENGINE_VMM;
	if (*use_vmm && !p2v_vmm_built()) {
		p2v_err("--engine vmm: the vmm-min engine is not built into this p2v");
		return false;
	}
	if (o->engine == ENGINE_AUTO)
		*use_vmm = vmm_fast_enough(!qemu_ok);
	if (!*use_vmm && !qemu_ok) {
		p2v_err("no engine can run: %s is not installed%s", p2v_qemu_binary(&o->cfg),
			o->engine == ENGINE_AUTO ? " and KVM is missing or too slow" : "");
		return false;
	}
	return true;
}

/* Format, first-sector check and engine; an exit code or -1 to go on. */
static int prepare(struct boot_opts *o, struct image_facts *facts, bool *use_vmm)
{
	if (o->image) {
		if (probe_image(o, facts) < 0)
			return P2V_EXIT_ERROR;
		o->cfg.disk_path = o->image;
		o->cfg.disk_format = facts->format;
	}
	if (!choose_engine(o, use_vmm))
		return P2V_EXIT_ERROR;
	if (!*use_vmm && o->image && !p2v_qemu_format(facts->format)) {
		p2v_err("%s: QEMU cannot boot %s images", o->image, facts->format);
		return P2V_EXIT_ERROR;
	}
	return -1;
}

/* ---- verify ---- */

static int verify_report(const struct boot_opts *o, const struct p2v_watch *w, bool use_vmm,
			 bool booted, const char *format, double elapsed_s)
{
	struct p2v_report_info info = {
		.engine = !booted ? "none" : use_vmm ? "vmm" : "qemu-tcg",
		.engine_detail = !booted ? "decided from the image before booting"
			: use_vmm ? (o->post_restored ? "vmm-min (KVM), POST resumed from a snapshot"
						      : "vmm-min (KVM)")
			: "qemu-system-x86_64 -accel tcg, -snapshot",
		.image = o->image, .format = format,
		.elapsed_s = elapsed_s, .timeout_s = o->cfg.timeout_s, .disk_counters = booted,
	};

	if (o->json)
		p2v_watch_report_json(w, &info, stdout);
	else
		p2v_watch_report_text(w, &info, stdout);
	fflush(stdout);
	return w->verdict == P2V_VERDICT_PASS ? P2V_EXIT_OK : P2V_EXIT_NO;
}

static int verify_run(struct boot_opts *o, struct p2v_watch *w, bool use_vmm, double *elapsed_s)
{
	struct p2v_engine_result res;
	char err[512] = "";
	int r;

	r = use_vmm ? p2v_vmm_verify(&o->cfg, w, &p2v_interrupted, &res, err, sizeof(err))
		    : p2v_qemu_verify(&o->cfg, w, &p2v_interrupted, &res, err, sizeof(err));
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

/* The watcher with its outputs; false (with a message) on bad options. */
static bool watch_setup(struct p2v_watch *w, const struct boot_opts *o)
{
	char err[256];

	if (p2v_watch_init(w, o->expect, o->settle_s, err, sizeof(err)) < 0) {
		p2v_err("%s", err);
		return false;
	}
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
	bool use_vmm;
	int rc = parse_args(argc, argv, &o, true);

	if (rc >= 0)
		return rc;
	rc = prepare(&o, &facts, &use_vmm);
	if (rc >= 0)
		return rc;
	if (!watch_setup(&w, &o))
		return P2V_EXIT_ERROR;
	p2v_install_signal_handlers();
	nocode = mbr_without_code(&facts);
	if (nocode)
		p2v_watch_fail(&w, 0, nocode);
	else
		rc = verify_run(&o, &w, use_vmm, &elapsed_s);
	if (rc < 0)
		rc = verify_report(&o, &w, use_vmm, !nocode, facts.format, elapsed_s);
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

static int run_console(struct boot_opts *o, bool use_vmm, int in_fd)
{
	char err[512] = "";
	int r = use_vmm ? p2v_vmm_console(&o->cfg, in_fd, STDOUT_FILENO, &p2v_interrupted, err, sizeof(err))
			: p2v_qemu_console(&o->cfg, in_fd, STDOUT_FILENO, &p2v_interrupted, err, sizeof(err));

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
static int console_session(struct boot_opts *o, bool use_vmm)
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
		r = run_console(o, use_vmm, pipefd[0]);
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
	bool use_vmm;
	int r, rc = parse_args(argc, argv, &o, false);

	if (rc >= 0)
		return rc;
	rc = prepare(&o, &facts, &use_vmm);
	if (rc >= 0)
		return rc;
	p2v_install_signal_handlers();
	fprintf(stderr, "p2v: booting %s with %s%s; Ctrl-] then q quits\r\n",
		o.image ? o.image : o.cfg.kernel_path, use_vmm ? "vmm-min" : "QEMU TCG",
		o.cfg.writable ? " (writable)" : " (guest writes discarded)");
	r = console_session(&o, use_vmm);
	fprintf(stderr, "\np2v: console closed\n");
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
