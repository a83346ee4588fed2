/* The QEMU TCG fallback engine: runs qemu-system-x86_64 -accel tcg as a
 * child in its own process group, reads COM1 (its stdout), the SeaBIOS
 * debug port (a pipe) and QMP events (a socketpair), and feeds the watcher.
 * UEFI runs boot OVMF from Debian's ovmf package: its code read-only, its
 * variable store a fresh copy per run, deleted after. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p2v.h"

#define QEMU_MAX_ARGS 64
#define QEMU_ARG_STORE_BYTES 16384
#define QEMU_FWLOG_MAX_BYTES (16u << 20) /* a looping BIOS must not fill the disk */
#define QEMU_POLL_MS 100
#define QEMU_TERM_GRACE_S 3.0
#define QEMU_STATS_PERIOD_S 1.0
#define QEMU_DEAD_HALTS 2      /* dumps in a row: 1-2 s of a dead CPU */

struct qemu_argv {
	char *argv[QEMU_MAX_ARGS + 1];
	int argc;
	char store[QEMU_ARG_STORE_BYTES];
	size_t used_bytes;
	bool overflow;
};

static void arg(struct qemu_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg(struct qemu_argv *a, const char *fmt, ...)
{
	size_t room = sizeof(a->store) - a->used_bytes;
	va_list ap;
	int n;

	if (a->overflow || a->argc >= QEMU_MAX_ARGS) {
		a->overflow = true;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(a->store + a->used_bytes, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		a->overflow = true;
		return;
	}
	a->argv[a->argc++] = a->store + a->used_bytes;
	a->argv[a->argc] = NULL;
	a->used_bytes += (size_t)n + 1;
}

const char *p2v_qemu_format(const char *imgfmt_name)
{
	static const char *const same[] = { "raw", "qcow2", "vpc", "vhdx", "vmdk" };

	for (size_t i = 0; imgfmt_name && i < sizeof(same) / sizeof(same[0]); i++)
		if (!strcmp(imgfmt_name, same[i]))
			return same[i];
	return NULL;
}

const char *p2v_qemu_binary(const struct p2v_engine_config *cfg)
{
	const char *env = getenv("P2V_QEMU");

	if (cfg->qemu_path)
		return cfg->qemu_path;
	return env && *env ? env : "qemu-system-x86_64";
}

bool p2v_qemu_available(const struct p2v_engine_config *cfg)
{
	const char *bin = p2v_qemu_binary(cfg);
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(bin, '/'))
		return access(bin, X_OK) == 0;
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, bin) < (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* An option value holding a path: QEMU splits options at commas, so a
 * comma in the path is doubled. */
static void arg_path(struct qemu_argv *a, const char *prefix, const char *path, const char *suffix)
{
	char esc[4096];
	size_t o = 0;

	for (const char *s = path; *s; s++) {
		if (o + 3 > sizeof(esc)) {
			a->overflow = true;
			return;
		}
		esc[o++] = *s;
		if (*s == ',')
			esc[o++] = ',';
	}
	esc[o] = '\0';
	arg(a, "%s%s%s", prefix, esc, suffix);
}

/* Direct Linux boot, for p2v boot --kernel. */
static void kernel_args(struct qemu_argv *a, const struct p2v_engine_config *cfg)
{
	if (cfg->kernel_path) {
		arg(a, "-kernel");
		arg(a, "%s", cfg->kernel_path);
	}
	if (cfg->initrd_path) {
		arg(a, "-initrd");
		arg(a, "%s", cfg->initrd_path);
	}
	if (cfg->append) {
		arg(a, "-append");
		arg(a, "%s", cfg->append);
	}
}

/* ---- OVMF ---- */

struct qemu_ovmf {
	const char *code;             /* read-only firmware code */
	char vars[4096];              /* this run's copy of the variable store, "" none */
};

/* $P2V_OVMF_CODE + $P2V_OVMF_VARS, else Debian's 2 MiB pair, else its 4 MiB pair. */
static int ovmf_find(const char **code, const char **vars, char *err, size_t err_bytes)
{
	static const char *const pairs[][2] = {
		{ "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd" },
		{ "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd" },
	};
	const char *ec = getenv("P2V_OVMF_CODE"), *ev = getenv("P2V_OVMF_VARS");

	if (ec && *ec && ev && *ev) {
		*code = ec;
		*vars = ev;
		return 0;
	}
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (access(pairs[i][0], R_OK) == 0 && access(pairs[i][1], R_OK) == 0) {
			*code = pairs[i][0];
			*vars = pairs[i][1];
			return 0;
		}
	snprintf(err, err_bytes, "UEFI firmware not found: install Debian's ovmf package "
		 "(%s) or set P2V_OVMF_CODE and P2V_OVMF_VARS", pairs[0][0]);
	return -ENOENT;
}

/* A private copy of the variable store: the run starts with no boot entries
 * (as the new VM would) and its writes go nowhere lasting. */
static int ovmf_prepare(struct qemu_ovmf *f, char *err, size_t err_bytes)
{
	const char *tmpdir = getenv("TMPDIR"), *vars;
	int in = -1, out = -1, r = ovmf_find(&f->code, &vars, err, err_bytes);
	struct stat st = { 0 };

	f->vars[0] = '\0';
	if (r < 0)
		return r;
	snprintf(f->vars, sizeof(f->vars), "%s/p2v-ovmf-vars.XXXXXX",
		 tmpdir && *tmpdir == '/' ? tmpdir : "/tmp");
	errno = 0;
	in = open(vars, O_RDONLY | O_CLOEXEC);
	out = in < 0 ? -1 : mkostemp(f->vars, O_CLOEXEC);
	if (in >= 0 && out >= 0 && fstat(in, &st) == 0 && st.st_size > 0)
		for (off_t done = 0; done < st.st_size;) {
			ssize_t n = sendfile(out, in, &done, (size_t)(st.st_size - done));
			if (n <= 0) {
				st.st_size = -1; /* failed: errno says why, or EIO for a short file */
				break;
			}
		}
	if (in < 0 || out < 0 || st.st_size <= 0) {
		r = errno ? -errno : -EIO;
		snprintf(err, err_bytes, "copying the UEFI variable store %s: %s", vars, strerror(-r));
		if (out >= 0)
			unlink(f->vars);
		f->vars[0] = '\0';
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

static void ovmf_discard(struct qemu_ovmf *f)
{
	if (f->vars[0])
		unlink(f->vars);
	f->vars[0] = '\0';
}

static void ovmf_args(struct qemu_argv *a, const struct qemu_ovmf *f)
{
	arg(a, "-drive");
	arg_path(a, "if=pflash,format=raw,unit=0,readonly=on,file=", f->code, "");
	arg(a, "-drive");
	arg_path(a, "if=pflash,format=raw,unit=1,file=", f->vars, "");
}

/* The machine every run uses: PC, no default devices, COM1 on stdio, the
 * disk on virtio-blk (a throw-away overlay unless writable); OVMF for UEFI. */
static void common_args(struct qemu_argv *a, const struct p2v_engine_config *cfg,
			const struct qemu_ovmf *ovmf)
{
	static const char *const fixed[] = {
		"-accel", "tcg", "-machine", "pc", "-nodefaults", "-vga", "none", "-display", "none",
		"-no-reboot", "-chardev", "stdio,id=p2vcom1,signal=off", "-serial", "chardev:p2vcom1",
	};
	uint64_t mem_mib = (cfg->mem_bytes ? cfg->mem_bytes : 512ull << 20) >> 20;

	arg(a, "%s", p2v_qemu_binary(cfg));
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		arg(a, "%s", fixed[i]);
	arg(a, "-m");
	arg(a, "%lluM", (unsigned long long)(mem_mib ? mem_mib : 1));
	if (ovmf && ovmf->vars[0])
		ovmf_args(a, ovmf);
	if (cfg->disk_path) {
		char suffix[64];
		snprintf(suffix, sizeof(suffix), ",if=virtio,id=p2vdisk,format=%s%s",
			 p2v_qemu_format(cfg->disk_format), cfg->writable ? "" : ",snapshot=on");
		arg(a, "-drive");
		arg_path(a, "file=", cfg->disk_path, suffix);
	}
	kernel_args(a, cfg);
}

/* The channels QEMU talks back on (our ends). */
enum qemu_chan {
	QCH_SERIAL,   /* COM1: QEMU's stdout */
	QCH_FW,       /* SeaBIOS debug port 0x402 */
	QCH_QMP,      /* QMP events (a socketpair) */
	QCH_LOG,      /* QEMU's -d cpu_reset log: says "Triple fault" */
	QCH_STDERR,   /* QEMU's own error messages */
	QCH_COUNT
};

struct qemu_child {
	pid_t pid;
	int fd[QCH_COUNT];
	bool exited;
	int wait_status;
	char stderr_text[512];
	size_t stderr_bytes;
	char line[2][8192];           /* QMP and log lines being assembled */
	size_t line_bytes[2];
	char shutdown_reason[64];
	bool triple_fault;
	bool stats_fresh;             /* a query-blockstats answer to hand on */
	unsigned dead_halts;          /* consecutive "HLT=1 with IF=0" register dumps */
	uint64_t disk_reads, disk_writes, wr_highest_offset;
	double stats_asked_s;
	FILE *fwlog;
	uint64_t fwlog_bytes;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* In the child: the pipes become stdin/stdout/stderr, keep_fds survive exec. */
static void child_exec(char **argv, int in_fd, int out_fd, int err_fd, const int *keep_fds,
		       size_t n_keep)
{
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		_exit(127);
	for (size_t i = 0; i < n_keep; i++)
		fcntl(keep_fds[i], F_SETFD, 0);
	execvp(argv[0], argv);
	dprintf(STDERR_FILENO, "cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* One pipe (a socketpair for QMP) per channel: [ch][0] ours, [ch][1] QEMU's. */
static int make_channels(int p[QCH_COUNT][2])
{
	for (unsigned ch = 0; ch < QCH_COUNT; ch++)
		p[ch][0] = p[ch][1] = -1;
	for (unsigned ch = 0; ch < QCH_COUNT; ch++) {
		int r = ch == QCH_QMP ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p[ch])
				      : pipe2(p[ch], O_CLOEXEC);
		if (r < 0)
			return -errno;
	}
	return 0;
}

/* The verify-only arguments: debug port, QMP, reset log on QEMU's ends. */
static void verify_args(struct qemu_argv *a, int p[QCH_COUNT][2])
{
	arg(a, "-chardev");
	arg(a, "file,id=p2vfw,path=/dev/fd/%d", p[QCH_FW][1]);
	arg(a, "-device");
	arg(a, "isa-debugcon,iobase=0x402,chardev=p2vfw");
	arg(a, "-chardev");
	arg(a, "socket,id=p2vqmp,fd=%d", p[QCH_QMP][1]);
	arg(a, "-mon");
	arg(a, "chardev=p2vqmp,mode=control");
	arg(a, "-d");
	arg(a, "cpu_reset");
	arg(a, "-D");
	arg(a, "/dev/fd/%d", p[QCH_LOG][1]);
}

static int fork_verify(struct qemu_child *c, struct qemu_argv *a, int p[QCH_COUNT][2],
		       char *err, size_t err_bytes)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int keep[] = { p[QCH_FW][1], p[QCH_QMP][1], p[QCH_LOG][1] };

	if (devnull < 0) {
		int e = errno;

		snprintf(err, err_bytes, "/dev/null: %s", strerror(e));
		return -e;
	}
	c->pid = fork();
	if (c->pid == 0)
		child_exec(a->argv, devnull, p[QCH_SERIAL][1], p[QCH_STDERR][1], keep, 3);
	if (c->pid < 0) {
		int e = errno;

		close(devnull);
		snprintf(err, err_bytes, "fork: %s", strerror(e));
		return -e;
	}
	close(devnull);
	for (unsigned ch = 0; ch < QCH_COUNT; ch++) {
		c->fd[ch] = p[ch][0];
		p[ch][0] = -1;
	}
	return 0;
}

/* Starts QEMU for a verify run with every channel wired to us. */
static int spawn_verify(struct qemu_child *c, const struct p2v_engine_config *cfg,
			const struct qemu_ovmf *ovmf, char *err, size_t err_bytes)
{
	int p[QCH_COUNT][2], r;
	struct qemu_argv *a = calloc(1, sizeof(*a));

	r = a ? make_channels(p) : -ENOMEM;
	if (r < 0) {
		snprintf(err, err_bytes, "cannot set up the QEMU pipes: %s", strerror(-r));
		goto out_close;
	}
	common_args(a, cfg, ovmf);
	verify_args(a, p);
	r = a->overflow ? -E2BIG : fork_verify(c, a, p, err, err_bytes);
	if (r == -E2BIG)
		snprintf(err, err_bytes, "the QEMU command line is too long");
	/* Events only flow after the capabilities handshake; QEMU reads this after its greeting. */
	if (r == 0 && write(c->fd[QCH_QMP], "{\"execute\":\"qmp_capabilities\"}\n", 31) != 31)
		p2v_warn("QMP handshake: %s", strerror(errno));
out_close:
	for (unsigned ch = 0; ch < QCH_COUNT; ch++) {
		close_fd(&p[ch][0]);
		close_fd(&p[ch][1]);
	}
	free(a);
	return r;
}

/* The number after "key": in text, 0 when absent. */
static uint64_t json_u64_after(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* The answer to query-blockstats: the disk's entry (OVMF's flash drives
 * come first), whose own "stats" object is the first one that is not its
 * parent node's. */
static void blockstats_line(struct qemu_child *c, const char *line)
{
	static const char parent[] = "\"parent\": {";
	const size_t parent_len = sizeof(parent) - 1;
	const char *p = strstr(line, "\"device\": \"p2vdisk\"");
	const char *start = p;

	if (!p)
		return;
	while ((p = strstr(p, "\"stats\": {")) != NULL) {
		if ((size_t)(p - start) < parent_len || strncmp(p - parent_len, parent, parent_len) != 0)
			break;
		p++;
	}
	if (!p)
		return;
	c->disk_reads = json_u64_after(p, "\"rd_operations\": ");
	c->disk_writes = json_u64_after(p, "\"wr_operations\": ");
	c->wr_highest_offset = json_u64_after(p, "\"wr_highest_offset\": ");
	c->stats_fresh = true;
}

/* The answer to "info registers": a CPU halted with interrupts disabled
 * (EFLAGS.IF clear) never runs again. */
static void registers_line(struct qemu_child *c, const char *line)
{
	const char *efl = strstr(line, "EFL=");
	bool halted = strstr(line, "HLT=1") != NULL;

	if (efl && halted && !(strtoul(efl + 4, NULL, 16) & 0x200))
		c->dead_halts++;
	else
		c->dead_halts = 0;
}

/* One QMP line: block statistics, registers, or why the guest stopped. */
static void qmp_line(struct qemu_child *c, const char *line)
{
	static const char answer[] = "{\"return\": [{\"device\": ";
	static const char text_answer[] = "{\"return\": \"";
	const char *r;

	if (!strncmp(line, answer, sizeof(answer) - 1)) {
		blockstats_line(c, line);
		return;
	}
	if (!strncmp(line, text_answer, sizeof(text_answer) - 1)) {
		registers_line(c, line);
		return;
	}
	if (!strstr(line, "\"SHUTDOWN\"") || c->shutdown_reason[0])
		return;
	r = strstr(line, "\"reason\": \"");
	if (!r)
		return;
	r += strlen("\"reason\": \"");
	snprintf(c->shutdown_reason, sizeof(c->shutdown_reason), "%.*s", (int)strcspn(r, "\""), r);
}

/* One line of QEMU's reset log. */
static void log_line(struct qemu_child *c, const char *line)
{
	if (strstr(line, "Triple fault"))
		c->triple_fault = true;
}

/* Splits QMP (which = 0) or log (which = 1) bytes into lines. */
static void line_bytes(struct qemu_child *c, unsigned which, const char *buf, size_t len)
{
	char *line = c->line[which];
	size_t *n = &c->line_bytes[which];

	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			line[*n] = '\0';
			if (which == 0)
				qmp_line(c, line);
			else
				log_line(c, line);
			*n = 0;
		} else if (*n + 1 < sizeof(c->line[which])) {
			line[(*n)++] = buf[i];
		}
	}
}

static void stderr_bytes(struct qemu_child *c, const char *buf, size_t len)
{
	size_t room = sizeof(c->stderr_text) - 1 - c->stderr_bytes;
	size_t take = len < room ? len : room;

	memcpy(c->stderr_text + c->stderr_bytes, buf, take);
	c->stderr_bytes += take;
	c->stderr_text[c->stderr_bytes] = '\0';
}

static void fw_bytes(struct qemu_child *c, const char *buf, size_t len)
{
	if (!c->fwlog || c->fwlog_bytes >= QEMU_FWLOG_MAX_BYTES)
		return;
	if (len > QEMU_FWLOG_MAX_BYTES - c->fwlog_bytes)
		len = QEMU_FWLOG_MAX_BYTES - c->fwlog_bytes;
	fwrite(buf, 1, len, c->fwlog);
	c->fwlog_bytes += len;
}

/* Reads what one channel has and hands it on; closes it at EOF. */
static void pump(struct qemu_child *c, enum qemu_chan ch, struct p2v_watch *w, double t_s)
{
	char buf[4096];
	ssize_t n = read(c->fd[ch], buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_fd(&c->fd[ch]);
		return;
	}
	switch (ch) {
	case QCH_SERIAL:
		p2v_watch_bytes(w, P2V_CH_CONSOLE, t_s, (const uint8_t *)buf, (size_t)n);
		break;
	case QCH_FW:
		fw_bytes(c, buf, (size_t)n);
		p2v_watch_bytes(w, P2V_CH_FIRMWARE, t_s, (const uint8_t *)buf, (size_t)n);
		break;
	case QCH_QMP:
		line_bytes(c, 0, buf, (size_t)n);
		if (c->stats_fresh)
			p2v_watch_disk_stats(w, t_s, c->disk_reads, c->disk_writes, c->wr_highest_offset);
		c->stats_fresh = false;
		break;
	case QCH_LOG:
		line_bytes(c, 1, buf, (size_t)n);
		break;
	default:
		stderr_bytes(c, buf, (size_t)n);
		break;
	}
}

/* Waits up to QEMU_POLL_MS for output and feeds it. */
static void poll_once(struct qemu_child *c, struct p2v_watch *w, double start_s)
{
	struct pollfd pfd[QCH_COUNT];
	enum qemu_chan chan[QCH_COUNT];
	nfds_t n = 0;

	for (unsigned ch = 0; ch < QCH_COUNT; ch++)
		if (c->fd[ch] >= 0) {
			chan[n] = (enum qemu_chan)ch;
			pfd[n++] = (struct pollfd){ .fd = c->fd[ch], .events = POLLIN };
		}
	if (n == 0) {
		usleep(QEMU_POLL_MS * 1000);
		return;
	}
	if (poll(pfd, n, QEMU_POLL_MS) <= 0)
		return;
	for (nfds_t k = 0; k < n; k++)
		if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
			pump(c, chan[k], w, p2v_now_s() - start_s);
}

static void reap(struct qemu_child *c, bool block)
{
	int st;
	pid_t p;

	if (c->exited)
		return;
	do
		p = waitpid(c->pid, &st, block ? 0 : WNOHANG);
	while (p < 0 && errno == EINTR);
	if (p == c->pid || (p < 0 && errno == ECHILD)) {
		c->exited = true;
		c->wait_status = p == c->pid ? st : 0;
	}
}

/* SIGTERM, then SIGKILL after a grace period; always reaps. */
static void stop_child(struct qemu_child *c)
{
	double t0 = p2v_now_s();

	reap(c, false);
	if (c->exited)
		return;
	kill(c->pid, SIGTERM);
	while (!c->exited && p2v_now_s() - t0 < QEMU_TERM_GRACE_S) {
		usleep(20 * 1000);
		reap(c, false);
	}
	if (!c->exited)
		kill(c->pid, SIGKILL);
	reap(c, true);
}

static enum p2v_run_end end_from_reason(const char *reason)
{
	if (!strcmp(reason, "guest-reset"))
		return P2V_END_RESET;
	return P2V_END_SHUTDOWN;
}

/* QEMU exited by itself: classify the end, or report that QEMU failed. */
static int child_exited(struct qemu_child *c, struct p2v_watch *w, double t_s,
			char *err, size_t err_bytes)
{
	if (!c->shutdown_reason[0]) {
		char *nl;
		if (c->stderr_text[0] == '\0')
			snprintf(c->stderr_text, sizeof(c->stderr_text), "no message");
		while ((nl = strrchr(c->stderr_text, '\n')) && nl[1] == '\0')
			*nl = '\0';
		snprintf(err, err_bytes, "QEMU stopped without a guest shutdown (status 0x%x): %s",
			 (unsigned)c->wait_status, c->stderr_text);
		return -EIO;
	}
	if (!strcmp(c->shutdown_reason, "guest-panic"))
		p2v_watch_end(w, P2V_END_HALTED, t_s, "QEMU reports a guest panic");
	else if (c->triple_fault)
		p2v_watch_end(w, P2V_END_TRIPLE_FAULT, t_s, "the CPU reset itself (QEMU: Triple fault)");
	else
		p2v_watch_end(w, end_from_reason(c->shutdown_reason), t_s, NULL);
	return 0;
}

static bool outputs_open(const struct qemu_child *c)
{
	for (unsigned ch = 0; ch < QCH_COUNT; ch++)
		if (c->fd[ch] >= 0)
			return true;
	return false;
}

static void child_init(struct qemu_child *c)
{
	memset(c, 0, sizeof(*c));
	c->pid = -1;
	for (unsigned ch = 0; ch < QCH_COUNT; ch++)
		c->fd[ch] = -1;
}

/* Disk activity and the CPU's halt state, once a period, over QMP. */
static void ask_blockstats(struct qemu_child *c, double t_s)
{
	static const char q[] = "{\"execute\":\"query-blockstats\"}\n"
				"{\"execute\":\"human-monitor-command\","
				"\"arguments\":{\"command-line\":\"info registers\"}}\n";

	if (c->fd[QCH_QMP] < 0 || t_s - c->stats_asked_s < QEMU_STATS_PERIOD_S)
		return;
	c->stats_asked_s = t_s;
	if (write(c->fd[QCH_QMP], q, sizeof(q) - 1) < 0 && errno != EAGAIN)
		close_fd(&c->fd[QCH_QMP]);
}

/* The poll loop; returns when the run ended one way or another. */
static int run_loop(struct qemu_child *c, const struct p2v_engine_config *cfg, struct p2v_watch *w,
		    volatile sig_atomic_t *stop, double start_s, char *err, size_t err_bytes)
{
	for (;;) {
		double t_s;

		poll_once(c, w, start_s);
		t_s = p2v_now_s() - start_s;
		p2v_watch_tick(w, t_s);
		if (p2v_watch_decided(w))
			return 0;
		if (stop && *stop) {
			p2v_watch_end(w, P2V_END_STOPPED, t_s, "interrupted");
			return -EINTR;
		}
		if (cfg->timeout_s > 0 && t_s >= cfg->timeout_s) {
			p2v_watch_end(w, P2V_END_TIMEOUT, t_s, NULL);
			return 0;
		}
		if (c->dead_halts >= QEMU_DEAD_HALTS) {
			p2v_watch_end(w, P2V_END_HALTED, t_s,
				      "the CPU halted with interrupts disabled (QEMU: HLT=1, IF=0)");
			return 0;
		}
		ask_blockstats(c, t_s);
		reap(c, false);
		if (c->exited && !outputs_open(c))
			return child_exited(c, w, t_s, err, err_bytes);
	}
}

int p2v_qemu_verify(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		    volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		    char *err, size_t err_bytes)
{
	struct qemu_child c;
	struct qemu_ovmf ovmf = { 0 };
	double start_s = p2v_now_s();
	int r;

	child_init(&c);
	memset(res, 0, sizeof(*res));
	if (cfg->disk_path && !p2v_qemu_format(cfg->disk_format)) {
		snprintf(err, err_bytes, "QEMU cannot open %s images", cfg->disk_format ? cfg->disk_format : "(unknown)");
		return -ENOTSUP;
	}
	if (cfg->firmware_log_path) {
		c.fwlog = fopen(cfg->firmware_log_path, "we");
		if (!c.fwlog) {
			int e = errno;

			snprintf(err, err_bytes, "%s: %s", cfg->firmware_log_path, strerror(e));
			return -e;
		}
	}
	r = cfg->firmware == P2V_FW_UEFI ? ovmf_prepare(&ovmf, err, err_bytes) : 0;
	if (r == 0)
		r = spawn_verify(&c, cfg, &ovmf, err, err_bytes);
	if (r == 0)
		r = run_loop(&c, cfg, w, stop, start_s, err, err_bytes);
	if (c.pid > 0)
		stop_child(&c);
	ovmf_discard(&ovmf);
	for (unsigned ch = 0; ch < QCH_COUNT; ch++)
		close_fd(&c.fd[ch]);
	if (c.fwlog)
		fclose(c.fwlog);
	res->elapsed_s = p2v_now_s() - start_s;
	snprintf(res->detail, sizeof(res->detail), "QEMU status 0x%x, shutdown reason %s",
		 (unsigned)c.wait_status, c.shutdown_reason[0] ? c.shutdown_reason : "none");
	return r;
}

int p2v_qemu_console(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		     volatile sig_atomic_t *stop, char *err, size_t err_bytes)
{
	struct qemu_child c;
	struct qemu_ovmf ovmf = { 0 };
	struct qemu_argv *a = calloc(1, sizeof(*a));
	int r;

	child_init(&c);
	if (!a)
		return -ENOMEM;
	if (cfg->disk_path && !p2v_qemu_format(cfg->disk_format)) {
		snprintf(err, err_bytes, "QEMU cannot open %s images", cfg->disk_format ? cfg->disk_format : "(unknown)");
		free(a);
		return -ENOTSUP;
	}
	if (cfg->firmware == P2V_FW_UEFI && (r = ovmf_prepare(&ovmf, err, err_bytes)) < 0) {
		free(a);
		return r;
	}
	common_args(a, cfg, &ovmf);
	if (cfg->firmware_log_path) {
		arg(a, "-chardev");
		arg_path(a, "file,id=p2vfw,path=", cfg->firmware_log_path, "");
		arg(a, "-device");
		arg(a, "isa-debugcon,iobase=0x402,chardev=p2vfw");
	}
	c.pid = a->overflow ? -1 : fork();
	if (c.pid == 0)
		child_exec(a->argv, console_in_fd, console_out_fd, STDERR_FILENO, NULL, 0);
	if (c.pid < 0) {
		snprintf(err, err_bytes, "cannot start QEMU: %s",
			 a->overflow ? "command line too long" : strerror(errno));
		free(a);
		ovmf_discard(&ovmf);
		return -EIO;
	}
	free(a);
	while (!c.exited && !(stop && *stop)) {
		usleep(QEMU_POLL_MS * 1000);
		reap(&c, false);
	}
	r = 0;
	if (c.exited && !(WIFEXITED(c.wait_status) && WEXITSTATUS(c.wait_status) == 0)) {
		snprintf(err, err_bytes, "QEMU failed (status 0x%x; its message is above)",
			 (unsigned)c.wait_status);
		r = -EIO;
	}
	stop_child(&c);
	ovmf_discard(&ovmf);
	return r;
}

static int qemu_check(const struct p2v_engine_config *cfg, bool explicit, char *note,
		      size_t note_bytes)
{
	(void)explicit;
	if (p2v_qemu_available(cfg)) {
		snprintf(note, note_bytes, "%s is installed", p2v_qemu_binary(cfg));
		return 1;
	}
	snprintf(note, note_bytes, "%s is not installed", p2v_qemu_binary(cfg));
	return 0;
}

static bool qemu_boots_format(const char *imgfmt_name)
{
	return p2v_qemu_format(imgfmt_name) != NULL;
}

const struct p2v_engine_ops p2v_engine_qemu = {
	.name = "qemu",
	.title = "QEMU TCG",
	.report_name = "qemu-tcg",
	.check = qemu_check,
	.boots_format = qemu_boots_format,
	.disk_counters = true, /* query-blockstats */
	.verify = p2v_qemu_verify,
	.console = p2v_qemu_console,
};
