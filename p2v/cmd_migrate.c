/* p2v migrate SRC OUT: capture -> inject -> verify in one command.  The
 * image is built under a temporary name beside OUT and renamed only when
 * the boot verdict is PASS; any failing step stops the run, names the step,
 * and leaves nothing under OUT. */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct migrate_args {
	const char *src, *out, *fmt, *timeout, *engine, *firmware;
	bool json, force, serial_console;
};

struct migrate_step {
	const char *name;
	int exit_code;
	double seconds;
	char *json;                  /* the step's own --json report (JSON mode) */
};

enum { O_TIMEOUT = P2V_O_CMD, O_ENGINE, O_SERIAL, O_FIRMWARE };
static const char *const engines[] = { "auto", "vmm", "qemu", NULL };
static const char *const firmwares[] = { "auto", "bios", "uefi", NULL };

static const struct p2v_opt migrate_opts[] = {
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "output format (by default from OUT's extension)"),
	P2V_OPT_FORCE("replace an existing OUT"),
	P2V_ARG(O_TIMEOUT, "timeout", P2V_ARG_COUNT, "S", "seconds the boot verification may take",
		.min = 1, .max = 86400),
	P2V_ARG(O_ENGINE, "engine", P2V_ARG_CHOICE, "auto|vmm|qemu",
		"what boots the image (see p2v verify)", .choices = engines),
	P2V_ARG(O_FIRMWARE, "firmware", P2V_ARG_CHOICE, "auto|bios|uefi",
		"the firmware the image boots with (see p2v verify)", .choices = firmwares),
	P2V_FLAG(O_SERIAL, "serial-console", "put the guest's console on the serial port (inject)"),
	P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
};

static const struct p2v_cmd migrate_cmd = {
	"migrate", "SRC OUT",
	"Capture SRC, inject virtio drivers and verify that the image boots, in one step.  The "
	"image is built under a temporary name beside OUT and renamed only on a PASS verdict; a "
	"failing step stops the run, is named, and leaves nothing under OUT.",
	migrate_opts, 2, 2,
};

/* 1 parsed, 0 after --help, -1 on a usage error. */
static int parse(int argc, char **argv, struct migrate_args *a)
{
	struct p2v_args pa;
	int r = p2v_args_parse(&migrate_cmd, argc, argv, &pa);

	memset(a, 0, sizeof(*a));
	if (r != 0)
		return r > 0 ? 0 : -1;
	a->src = pa.operands[0];
	a->out = pa.operands[1];
	a->fmt = p2v_str(&pa, 'O');
	a->json = p2v_json_wanted(&pa);
	a->force = p2v_has(&pa, P2V_O_FORCE);
	a->timeout = p2v_str(&pa, O_TIMEOUT);
	a->engine = p2v_str(&pa, O_ENGINE);
	a->serial_console = p2v_has(&pa, O_SERIAL);
	a->firmware = p2v_str(&pa, O_FIRMWARE);
	return 1;
}

/* Reserve a temporary name beside out (the capture replaces it). */
static char *temp_name(const char *out)
{
	char *copy = strdup(out), *base = copy ? strdup(basename(copy)) : NULL, *tmp = NULL;
	int fd;

	if (base && asprintf(&tmp, "%s/.%s.p2v-migrate-XXXXXX", dirname(copy), base) < 0)
		tmp = NULL;
	free(copy);
	free(base);
	if (!tmp)
		return NULL;
	fd = mkstemp(tmp);
	if (fd < 0) {
		p2v_err("migrate: cannot create a temporary file beside %s: %s", out, strerror(errno));
		free(tmp);
		return NULL;
	}
	close(fd);
	return tmp;
}

/* Everything written to fd since it was created, as a string (NULL if none). */
static char *slurp_fd(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *text;

	if (len <= 0 || len > (1 << 24) || !(text = malloc((size_t)len + 1)))
		return NULL;
	if (pread(fd, text, (size_t)len, 0) != (ssize_t)len) {
		free(text);
		return NULL;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	text[len] = '\0';
	if (text[0] != '{') { /* not a report: leave it out */
		free(text);
		return NULL;
	}
	return text;
}

/* Run one subcommand in-process.  With --json its stdout (its own JSON
 * report) is kept for the final report, so only that is on stdout; its
 * stderr (notices, the progress bar on a terminal) passes through. */
static int run_step(struct migrate_step *st, bool json, int (*cmd)(int, char **), int argc,
		    char **argv)
{
	double t0 = p2v_now_s();
	int saved = -1, mem = -1;

	fflush(stdout);
	if (json && (mem = memfd_create("p2v-step-report", MFD_CLOEXEC)) >= 0) {
		saved = dup(STDOUT_FILENO);
		dup2(mem, STDOUT_FILENO);
	}
	if (json)
		fprintf(stderr, "p2v migrate: %s ...\n", st->name);
	else
		printf("== %s\n", st->name);
	fflush(stdout);
	optind = 0;
	st->exit_code = cmd(argc, argv);
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}
	if (mem >= 0) {
		st->json = slurp_fd(mem);
		close(mem);
	}
	st->seconds = p2v_now_s() - t0;
	return st->exit_code;
}

static void report_shown(const struct migrate_args *a, const char *shown,
			 const struct migrate_step *steps, int n, const char *fmt, bool pass);

/* The source as reports show it: an NBD URI without its query (key files). */
static void report(const struct migrate_args *a, const struct migrate_step *steps, int n,
		   const char *fmt, bool pass)
{
	char *shown = imgfmt_display_name(a->src);

	report_shown(a, shown ? shown : "(out of memory)", steps, n, fmt, pass);
	free(shown);
}

static void report_shown(const struct migrate_args *a, const char *shown,
			 const struct migrate_step *steps, int n, const char *fmt, bool pass)
{
	if (a->json) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_str(&j, "source", shown);
		p2v_json_str(&j, "output", pass ? a->out : NULL);
		p2v_json_str(&j, "format", fmt);
		p2v_json_arr_begin(&j, "steps");
		for (int i = 0; i < n; i++) {
			p2v_json_obj_begin(&j, NULL);
			p2v_json_str(&j, "step", steps[i].name);
			p2v_json_i64(&j, "exit", steps[i].exit_code);
			p2v_json_double(&j, "seconds", steps[i].seconds);
			p2v_json_obj_end(&j);
		}
		p2v_json_arr_end(&j);
		for (int i = 0; i < n; i++) /* what was captured, changed, and the boot evidence */
			if (steps[i].json)
				p2v_json_raw(&j, steps[i].name, steps[i].json);
		p2v_json_str(&j, "verdict", pass ? "PASS" : "FAIL");
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
		return;
	}
	printf("== migrate: %s\n", pass ? "PASS" : "FAIL");
	for (int i = 0; i < n; i++)
		printf("   %-8s exit %d  %.1f s\n", steps[i].name, steps[i].exit_code, steps[i].seconds);
	if (pass)
		printf("   %s -> %s (%s): captured, virtio drivers injected, boots to userspace\n",
		       shown, a->out, fmt);
}

static int migrate(const struct migrate_args *a, const char *fmt, char *tmp)
{
	char fmt_arg[32], *cap[8] = { "capture", (char *)a->src, tmp, "-O", fmt_arg, "--force" };
	char *inj[5] = { "inject", tmp };
	char *ver[16] = { "verify", tmp, "-f", fmt_arg, "--name", (char *)a->out };
	struct migrate_step steps[3] = { { "capture", 0, 0, NULL }, { "inject", 0, 0, NULL },
					 { "verify", 0, 0, NULL } };
	int n = 0, nc = 6, ni = 2, nv = 6, r;

	snprintf(fmt_arg, sizeof(fmt_arg), "%s", fmt);
	if (a->serial_console)
		inj[ni++] = "--serial-console";
	if (a->json) {
		cap[nc++] = "--json";
		inj[ni++] = "--json";
		ver[nv++] = "--json";
	}
	if (a->timeout) {
		ver[nv++] = "--timeout";
		ver[nv++] = (char *)a->timeout;
	}
	if (a->engine) {
		ver[nv++] = "--engine";
		ver[nv++] = (char *)a->engine;
	}
	if (a->firmware) {
		ver[nv++] = "--firmware";
		ver[nv++] = (char *)a->firmware;
	}
	r = run_step(&steps[n++], a->json, p2v_cmd_capture, nc, cap);
	if (r == 0 && !p2v_interrupted)
		r = run_step(&steps[n++], a->json, p2v_cmd_inject, ni, inj);
	if (r == 0 && !p2v_interrupted)
		r = run_step(&steps[n++], a->json, p2v_cmd_verify, nv, ver);
	if (r == 0 && rename(tmp, a->out) < 0) {
		p2v_err("migrate: renaming %s to %s: %s", tmp, a->out, strerror(errno));
		r = P2V_EXIT_ERROR;
	}
	if (r != 0)
		p2v_err("migrate: %s failed (exit %d); %s was not written", steps[n - 1].name,
			steps[n - 1].exit_code, a->out);
	report(a, steps, n, fmt, r == 0);
	for (int i = 0; i < n; i++)
		free(steps[i].json);
	return r;
}

int p2v_cmd_migrate(int argc, char **argv)
{
	struct migrate_args a;
	const char *fmt;
	char *tmp;
	int r = parse(argc, argv, &a);

	if (r <= 0)
		return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
	fmt = a.fmt ? a.fmt : imgfmt_format_from_filename(a.out);
	if (!fmt || !imgfmt_driver_can_create(fmt)) {
		p2v_err("migrate: cannot write format '%s' (use -O qcow2|vpc|vhdx|vmdk|raw)",
			fmt ? fmt : "(none from the output name)");
		return P2V_EXIT_ERROR;
	}
	if (!a.force && access(a.out, F_OK) == 0) {
		p2v_err("%s already exists (use --force to replace it)", a.out);
		return P2V_EXIT_ERROR;
	}
	p2v_install_signal_handlers();
	if (!(tmp = temp_name(a.out)))
		return P2V_EXIT_ERROR;
	r = migrate(&a, fmt, tmp);
	if (r != 0)
		unlink(tmp);
	free(tmp);
	return r == 0 ? P2V_EXIT_OK : (r == P2V_EXIT_NO ? P2V_EXIT_NO : P2V_EXIT_ERROR);
}
