/* Errors, sizes, signals, progress bar and JSON output for the p2v command. */
#include "p2v.h"

#include "imgfmt.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t p2v_interrupted;

void p2v_err(const char *fmt, ...)
{
	va_list ap;

	fputs("p2v: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void p2v_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("p2v: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void p2v_confine_opts(const struct p2v_args *a, struct imgfmt_open_opts *o, const char **allow)
{
	if (!a)
		return;
	o->n_allow_backing = p2v_strs(a, P2V_O_ALLOW_BACKING, allow, P2V_MAX_REPEATS);
	o->allow_backing = o->n_allow_backing ? allow : NULL;
	o->allow_symlinks = p2v_has(a, P2V_O_ALLOW_SYMLINKS);
	if (p2v_has(a, P2V_O_INSECURE_NBD))
		o->flags |= IMGFMT_OPEN_INSECURE_NBD;
}

int p2v_open_image(struct imgfmt_image **img, const char *path, const char *fmt, unsigned flags,
		   const struct p2v_args *a)
{
	struct imgfmt_open_opts o = { .format = fmt, .flags = flags, .log = p2v_log_warning };
	const char *allow[P2V_MAX_REPEATS];
	char err[IMGFMT_ERRMSG_BYTES];
	int r;

	p2v_confine_opts(a, &o, allow);
	r = imgfmt_open(img, path, &o, err, sizeof(err));

	if (r < 0)
		p2v_err("%s", err);
	return r;
}

void p2v_log_warning(void *opaque, const char *msg)
{
	(void)opaque;
	p2v_warn("%s", msg);
}

const char *p2v_human_bytes(uint64_t bytes, char *buf, size_t buf_bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, buf_bytes, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, buf_bytes, "%.*f %s", v < 10 ? 2 : 1, v, units[u]);
	return buf;
}

volatile sig_atomic_t p2v_progress_requested;

static void on_signal(int sig)
{
	(void)sig;
	p2v_interrupted = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	p2v_progress_requested = 1;
}

void p2v_catch_progress_signal(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

void p2v_install_signal_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	p2v_catch_progress_signal();
}

double p2v_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *const p2v_progress_choices[] = { "bar", "json", NULL };
const char *const p2v_output_choices[] = { "human", "json", NULL };

void p2v_progress_init(struct p2v_progress *p, const char *label, enum p2v_progress_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->label = label;
	p->mode = mode;
	p->enabled = mode == P2V_PROGRESS_BAR || (mode == P2V_PROGRESS_AUTO && isatty(STDERR_FILENO));
	p->start_s = p2v_now_s();
	p->last_json_pct = -1;
}

static double percent(uint64_t done, uint64_t total)
{
	return total ? 100.0 * (double)done / (double)total : 100.0;
}

static void draw(struct p2v_progress *p, uint64_t done, uint64_t total, double now)
{
	char a[32], b[32], r[32], eta[32] = "--:--";
	double el = now - p->start_s;
	double rate = el > 0 ? (double)done / el : 0;
	double frac = total ? (double)done / (double)total : 1;
	int width = 30, filled = (int)(frac * width);

	if (rate > 0 && done < total) {
		unsigned s = (unsigned)((double)(total - done) / rate);
		snprintf(eta, sizeof(eta), "%u:%02u", s / 60, s % 60);
	}
	fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% %s/%s %s/s ETA %s ", p->label, filled,
		"##############################", width - filled, "", frac * 100,
		p2v_human_bytes(done, a, sizeof(a)), p2v_human_bytes(total, b, sizeof(b)),
		p2v_human_bytes((uint64_t)rate, r, sizeof(r)), eta);
	fflush(stderr);
}

/* One line for programs: {"progress": 42.5, "bytes": N, "total": T, "seconds": S} */
static void json_line(struct p2v_progress *p, uint64_t done, uint64_t total, double now)
{
	double pct = percent(done, total);

	fprintf(stderr, "{\"progress\": %.1f, \"bytes\": %llu, \"total\": %llu, \"seconds\": %.1f}\n",
		pct, (unsigned long long)done, (unsigned long long)total, now - p->start_s);
	fflush(stderr);
	p->last_json_pct = pct;
	p->last_draw_s = now;
}

/* SIGUSR1: one line, whatever the mode (but -q), like dd's. */
static void status_line(struct p2v_progress *p, uint64_t done, uint64_t total, double now)
{
	char a[32], b[32], r[32];
	double el = now - p->start_s;

	if (p->mode == P2V_PROGRESS_JSON) {
		json_line(p, done, total, now);
		return;
	}
	fprintf(stderr, "%sp2v: %s: %s of %s (%.1f%%) in %.1f s, %s/s\n", p->enabled ? "\n" : "",
		p->label, p2v_human_bytes(done, a, sizeof(a)), p2v_human_bytes(total, b, sizeof(b)),
		percent(done, total), el, p2v_human_bytes(el > 0 ? (uint64_t)((double)done / el) : 0, r, sizeof(r)));
	fflush(stderr);
}

void p2v_progress_update(void *opaque, uint64_t done_bytes, uint64_t total_bytes)
{
	struct p2v_progress *p = opaque;
	double now;

	p->total_bytes = total_bytes;
	p->done_bytes = done_bytes;
	if (p->mode == P2V_PROGRESS_QUIET)
		return;
	now = p2v_now_s();
	if (p2v_progress_requested) {
		p2v_progress_requested = 0;
		status_line(p, done_bytes, total_bytes, now);
	}
	if (p->mode == P2V_PROGRESS_JSON) {
		double pct = percent(done_bytes, total_bytes);
		if (pct >= p->last_json_pct + 1.0 || (now - p->last_draw_s >= 1.0 && pct > p->last_json_pct))
			json_line(p, done_bytes, total_bytes, now);
		return;
	}
	if (!p->enabled || (now - p->last_draw_s < 0.2 && done_bytes < total_bytes))
		return;
	p->last_draw_s = now;
	draw(p, done_bytes, total_bytes, now);
}

void p2v_progress_finish(struct p2v_progress *p)
{
	/* a SIGUSR1 that came after the last update is still answered */
	if (p2v_progress_requested && p->mode != P2V_PROGRESS_QUIET) {
		p2v_progress_requested = 0;
		status_line(p, p->total_bytes, p->total_bytes, p2v_now_s());
	}
	if (p->mode == P2V_PROGRESS_JSON && p->last_json_pct < 100.0) {
		json_line(p, p->total_bytes, p->total_bytes, p2v_now_s());
		return;
	}
	if (!p->enabled)
		return;
	draw(p, p->total_bytes, p->total_bytes, p2v_now_s());
	fputc('\n', stderr);
}

void p2v_progress_abort(struct p2v_progress *p)
{
	if (p->enabled && p->last_draw_s > 0)
		fputc('\n', stderr);
}

/* ---- JSON ---- */

void p2v_json_init(struct p2v_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	static const unsigned char lo[5] = { 0, 0, 0x80, 0xa0, 0x90 }; /* 2nd byte bounds */
	static const unsigned char hi[5] = { 0, 0, 0xbf, 0xbf, 0xbf };
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	unsigned char l, h;

	if (n == 0 || s[0] > 0xf4)
		return 0;
	l = n == 3 && s[0] != 0xe0 ? 0x80 : lo[n];
	h = n == 3 && s[0] == 0xed ? 0x9f : n == 4 && s[0] == 0xf4 ? 0x8f : hi[n];
	if (n == 4 && s[0] != 0xf0)
		l = 0x80;
	if (s[1] < l || s[1] > h)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* A JSON string: escapes, and U+FFFD for bytes that are not UTF-8 (guest
 * consoles print anything). */
static void put_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s) {
		unsigned char c = *s;
		size_t n = c < 0x80 ? 1 : utf8_len(s);
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else if (n == 0)
			fputs("\\ufffd", f);
		else
			fwrite(s, 1, n, f);
		s += n ? n : 1;
	}
	fputc('"', f);
}

static void key(struct p2v_json *j, const char *k)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	if (j->depth > 0)
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
	j->need_comma[j->depth] = true;
	if (k) {
		put_string(j->f, k);
		fputs(": ", j->f);
	}
}

static void open_(struct p2v_json *j, const char *k, char c)
{
	key(j, k);
	fputc(c, j->f);
	if (j->depth < 31)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void close_(struct p2v_json *j, char c)
{
	bool had = j->need_comma[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (had)
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
	fputc(c, j->f);
}

void p2v_json_obj_begin(struct p2v_json *j, const char *k) { open_(j, k, '{'); }
void p2v_json_obj_end(struct p2v_json *j) { close_(j, '}'); }
void p2v_json_arr_begin(struct p2v_json *j, const char *k) { open_(j, k, '['); }
void p2v_json_arr_end(struct p2v_json *j) { close_(j, ']'); }

void p2v_json_str(struct p2v_json *j, const char *k, const char *val)
{
	key(j, k);
	if (val)
		put_string(j->f, val);
	else
		fputs("null", j->f);
}

void p2v_json_u64(struct p2v_json *j, const char *k, uint64_t val)
{
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void p2v_json_i64(struct p2v_json *j, const char *k, int64_t val)
{
	key(j, k);
	fprintf(j->f, "%lld", (long long)val);
}

void p2v_json_double(struct p2v_json *j, const char *k, double val)
{
	key(j, k);
	fprintf(j->f, "%.6g", val);
}

void p2v_json_bool(struct p2v_json *j, const char *k, bool val)
{
	key(j, k);
	fputs(val ? "true" : "false", j->f);
}

void p2v_json_raw(struct p2v_json *j, const char *k, const char *json)
{
	key(j, k);
	fputs(json, j->f);
}

void p2v_json_finish(struct p2v_json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}
