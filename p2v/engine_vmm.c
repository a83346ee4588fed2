/* The vmm-min engine: vmm_run() with its console and events fed to the
 * watcher.  The callbacks come from the vCPU thread and a ticker thread
 * advances the watcher's clock, so the watcher is behind a mutex.  Built
 * only when the vmmmin library is linked (P2V_HAVE_VMM). */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "p2v.h"

#define VMM_MIN_MIPS 100.0    /* below this, KVM is software-nested: TCG is faster */
#define VMM_DEFAULT_CPUS 2

#ifndef P2V_HAVE_VMM

bool p2v_vmm_built(void)
{
	return false;
}

static int vmm_check(const struct p2v_engine_config *cfg, bool explicit, char *note,
		     size_t note_bytes)
{
	(void)cfg, (void)explicit;
	snprintf(note, note_bytes, "the vmm-min engine is not built into this p2v");
	return 0;
}

double p2v_vmm_mips(char *err, size_t err_bytes)
{
	snprintf(err, err_bytes, "the vmm-min engine is not built into this p2v");
	return -ENOSYS;
}

int p2v_vmm_verify(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		   volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		   char *err, size_t err_bytes)
{
	(void)cfg, (void)w, (void)stop, (void)res;
	snprintf(err, err_bytes, "the vmm-min engine is not built into this p2v");
	return -ENOSYS;
}

int p2v_vmm_console(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		    volatile sig_atomic_t *stop, char *err, size_t err_bytes)
{
	(void)cfg, (void)console_in_fd, (void)console_out_fd, (void)stop;
	snprintf(err, err_bytes, "the vmm-min engine is not built into this p2v");
	return -ENOSYS;
}

#else

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>

#include "../vmm-min/vmm.h"

#define VMM_TICK_MS 100
#define VMM_FWLOG_MAX_BYTES (16u << 20) /* a looping BIOS must not fill the disk */

struct vmm_glue {
	pthread_mutex_t lock;
	struct p2v_watch *w;
	volatile sig_atomic_t stop_vm;      /* what vmm_run polls */
	volatile sig_atomic_t *user_stop;   /* Ctrl-C / escape key */
	volatile sig_atomic_t ticker_done;
	double start_s;
	int out_fd;                         /* console mode: where COM1 goes */
	int fw_fd;                          /* read end of the firmware log pipe, or -1 */
	int fw_write_fd;
	FILE *fwlog;                        /* the user's --firmware-log copy, or NULL */
	uint64_t fwlog_bytes;
};

bool p2v_vmm_built(void)
{
	return true;
}

double p2v_vmm_mips(char *err, size_t err_bytes)
{
	return vmm_calibrate_mips(err, err_bytes);
}

/* OVMF for vmm-min: $P2V_OVMF_CODE (+ $P2V_OVMF_VARS), else Debian's
 * 2 MiB code + variable store pair, else its combined OVMF.fd.  vmm-min
 * maps a private copy read-only (no pflash): OVMF keeps this run's
 * variables in RAM, the files are never written. */
static int vmm_ovmf_find(const char **code, const char **vars, char *note, size_t note_bytes)
{
	static const char *const pairs[][2] = {
		{ "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd" },
		{ "/usr/share/ovmf/OVMF.fd", NULL },
	};
	const char *ec = getenv("P2V_OVMF_CODE");

	if (ec && ec[0]) {
		*code = ec;
		*vars = getenv("P2V_OVMF_VARS");
		return 0;
	}
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if (access(pairs[i][0], R_OK) == 0 && (!pairs[i][1] || access(pairs[i][1], R_OK) == 0)) {
			*code = pairs[i][0];
			*vars = pairs[i][1];
			return 0;
		}
	}
	snprintf(note, note_bytes, "UEFI firmware not found: install Debian's ovmf package (%s) "
		 "or set P2V_OVMF_CODE", pairs[0][0]);
	return -ENOENT;
}

/* Is KVM fast enough to be hardware virtualization?  Measured, not guessed:
 * a tiny guest's instruction rate. */
static int vmm_check(const struct p2v_engine_config *cfg, bool explicit, char *note,
		     size_t note_bytes)
{
	char err[256] = "";
	double mips;

	if (cfg->firmware == P2V_FW_UEFI) {
		const char *code, *vars, *opt_in = getenv("P2V_VMM_UEFI");
		/* Not proven yet: the hardware-virtualization test bed's QEMU
		 * 7.2 aborts under any nested OVMF (see vmm-min/README.md). */
		if (!opt_in || strcmp(opt_in, "1")) {
			snprintf(note, note_bytes, "vmm-min cannot start UEFI firmware (OVMF) yet%s",
				 explicit ? "; use --engine qemu (or --firmware bios)" : "");
			return 0;
		}
		if (vmm_ovmf_find(&code, &vars, note, note_bytes) < 0)
			return 0;
	}
	if (explicit) {
		if (access("/dev/kvm", R_OK | W_OK) == 0)
			return 1;
		snprintf(note, note_bytes, "/dev/kvm: %s", strerror(errno));
		return 0;
	}
	mips = vmm_calibrate_mips(err, sizeof(err));
	if (mips < 0)
		snprintf(note, note_bytes, "KVM is unusable here (%s)", err);
	else if (mips < VMM_MIN_MIPS)
		snprintf(note, note_bytes,
			 "KVM here runs guests at %.1f MIPS (software-nested, under the %.0f of hardware virtualization)",
			 mips, VMM_MIN_MIPS);
	else
		snprintf(note, note_bytes, "KVM here runs guests at %.0f MIPS (hardware virtualization)",
			 mips);
	return mips >= VMM_MIN_MIPS;
}

static void vmm_fill(struct vmm_config *vc, const struct p2v_engine_config *cfg)
{
	memset(vc, 0, sizeof(*vc));
	vc->cpus = cfg->cpus ? cfg->cpus : VMM_DEFAULT_CPUS;
	vc->disk_path = cfg->disk_path;
	vc->disk_format = cfg->disk_format;
	vc->allow_backing = cfg->allow_backing;
	vc->n_allow_backing = cfg->n_allow_backing;
	vc->allow_symlinks = cfg->allow_symlinks;
	vc->writable = cfg->writable;
	vc->mem_bytes = cfg->mem_bytes;
	vc->kernel_path = cfg->kernel_path;
	vc->initrd_path = cfg->initrd_path;
	vc->append = cfg->append;
	vc->firmware_log_path = cfg->firmware_log_path;
	vc->timeout_s = cfg->timeout_s;
	vc->post_cache_dir = cfg->post_cache_dir;
	vc->console_in_fd = -1;
	if (cfg->firmware == P2V_FW_UEFI) {
		char note[256];
		/* vmm_check found it; no POST snapshots of OVMF */
		vmm_ovmf_find(&vc->firmware_path, &vc->firmware_vars_path, note, sizeof(note));
		vc->post_cache_dir = NULL;
	}
}

static void glue_console(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_glue *g = opaque;

	pthread_mutex_lock(&g->lock);
	p2v_watch_bytes(g->w, P2V_CH_CONSOLE, p2v_now_s() - g->start_s, buf, len);
	if (p2v_watch_decided(g->w))
		g->stop_vm = 1;
	pthread_mutex_unlock(&g->lock);
}

static void glue_screen(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_glue *g = opaque;

	pthread_mutex_lock(&g->lock);
	p2v_watch_bytes(g->w, P2V_CH_SCREEN, p2v_now_s() - g->start_s, buf, len);
	if (p2v_watch_decided(g->w))
		g->stop_vm = 1;
	pthread_mutex_unlock(&g->lock);
}

/* vmm-min's events in the watcher's terms. */
static struct p2v_watch_event watch_event_of(const struct vmm_event *ev)
{
	struct p2v_watch_event we = { .t_s = ev->t_s, .offset_bytes = ev->offset_bytes,
				      .length_bytes = ev->length_bytes, .detail = ev->detail };

	switch (ev->type) {
	case VMM_EV_FIRMWARE_START: we.type = P2V_WEV_FIRMWARE_START; break;
	case VMM_EV_DISK_READ: we.type = P2V_WEV_DISK_READ; break;
	case VMM_EV_DISK_WRITE: we.type = P2V_WEV_DISK_WRITE; break;
	case VMM_EV_DEVICE_BROKEN: we.type = P2V_WEV_DEVICE_BROKEN; break;
	case VMM_EV_SHUTDOWN: we.type = P2V_WEV_END, we.end = P2V_END_SHUTDOWN; break;
	case VMM_EV_RESET: we.type = P2V_WEV_END, we.end = P2V_END_RESET; break;
	case VMM_EV_TRIPLE_FAULT: we.type = P2V_WEV_END, we.end = P2V_END_TRIPLE_FAULT; break;
	case VMM_EV_HALT: we.type = P2V_WEV_END, we.end = P2V_END_HALTED; break;
	}
	return we;
}

static void glue_event(void *opaque, const struct vmm_event *ev)
{
	struct vmm_glue *g = opaque;

	struct p2v_watch_event we = watch_event_of(ev);

	pthread_mutex_lock(&g->lock);
	p2v_watch_event(g->w, &we);
	if (p2v_watch_decided(g->w))
		g->stop_vm = 1;
	pthread_mutex_unlock(&g->lock);
}

/* Firmware log bytes: to the watcher and the user's copy.  False at EOF. */
static bool glue_fw_read(struct vmm_glue *g)
{
	uint8_t buf[4096];
	ssize_t n = read(g->fw_fd, buf, sizeof(buf));

	if (n <= 0)
		return n < 0 && errno == EINTR;
	if (g->fwlog && g->fwlog_bytes < VMM_FWLOG_MAX_BYTES) {
		size_t take = (size_t)n < VMM_FWLOG_MAX_BYTES - g->fwlog_bytes
				      ? (size_t)n : VMM_FWLOG_MAX_BYTES - g->fwlog_bytes;
		fwrite(buf, 1, take, g->fwlog);
		g->fwlog_bytes += take;
	}
	pthread_mutex_lock(&g->lock);
	if (g->w)
		p2v_watch_bytes(g->w, P2V_CH_FIRMWARE, p2v_now_s() - g->start_s, buf, (size_t)n);
	pthread_mutex_unlock(&g->lock);
	return true;
}

/* Waits up to one tick for firmware log bytes. */
static void glue_wait(struct vmm_glue *g)
{
	struct pollfd pfd = { .fd = g->fw_fd, .events = POLLIN };

	if (g->fw_fd < 0) {
		usleep(VMM_TICK_MS * 1000);
		return;
	}
	if (poll(&pfd, 1, VMM_TICK_MS) > 0)
		glue_fw_read(g);
}

static void *glue_ticker(void *opaque)
{
	struct vmm_glue *g = opaque;

	while (!g->ticker_done) {
		glue_wait(g);
		pthread_mutex_lock(&g->lock);
		if (g->w)
			p2v_watch_tick(g->w, p2v_now_s() - g->start_s);
		if ((g->w && p2v_watch_decided(g->w)) || (g->user_stop && *g->user_stop))
			g->stop_vm = 1;
		pthread_mutex_unlock(&g->lock);
	}
	return NULL;
}

static enum p2v_run_end end_of(enum vmm_exit e)
{
	switch (e) {
	case VMM_EXIT_SHUTDOWN: return P2V_END_SHUTDOWN;
	case VMM_EXIT_RESET: return P2V_END_RESET;
	case VMM_EXIT_TIMEOUT: return P2V_END_TIMEOUT;
	case VMM_EXIT_TRIPLE_FAULT: return P2V_END_TRIPLE_FAULT;
	case VMM_EXIT_HALTED: return P2V_END_HALTED;
	default: return P2V_END_STOPPED;
	}
}

/* Runs the VM with a ticker thread beside it. */
static int glue_run(struct vmm_glue *g, struct vmm_config *vc, struct vmm_result *vr,
		    char *err, size_t err_bytes)
{
	pthread_t ticker;
	int r;

	vc->stop = &g->stop_vm;
	g->start_s = p2v_now_s();
	if (pthread_create(&ticker, NULL, glue_ticker, g) != 0) {
		snprintf(err, err_bytes, "cannot start the ticker thread");
		return -EAGAIN;
	}
	r = vmm_run(vc, vr, err, err_bytes);
	g->ticker_done = 1;
	pthread_join(ticker, NULL);
	return r;
}

/* The VMM writes the debug port to a pipe we read (its path /dev/fd/N). */
static int glue_fw_open(struct vmm_glue *g, const struct p2v_engine_config *cfg,
			char *path, size_t path_bytes, char *err, size_t err_bytes)
{
	int p[2];

	if (cfg->firmware_log_path && !(g->fwlog = fopen(cfg->firmware_log_path, "we"))) {
		int e = errno;

		snprintf(err, err_bytes, "%s: %s", cfg->firmware_log_path, strerror(e));
		return -e;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		int e = errno;

		snprintf(err, err_bytes, "pipe: %s", strerror(e));
		if (g->fwlog)
			fclose(g->fwlog);
		g->fwlog = NULL;
		return -e;
	}
	g->fw_fd = p[0];
	g->fw_write_fd = p[1];
	snprintf(path, path_bytes, "/dev/fd/%d", p[1]);
	return 0;
}

/* After the run: the rest of the log, then the pipe. */
static void glue_fw_close(struct vmm_glue *g)
{
	close(g->fw_write_fd);
	while (g->fw_fd >= 0 && glue_fw_read(g))
		;
	if (g->fw_fd >= 0)
		close(g->fw_fd);
	g->fw_fd = -1;
	if (g->fwlog)
		fclose(g->fwlog);
	g->fwlog = NULL;
}

int p2v_vmm_verify(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		   volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		   char *err, size_t err_bytes)
{
	struct vmm_glue g = { .lock = PTHREAD_MUTEX_INITIALIZER, .w = w, .user_stop = stop,
			      .fw_fd = -1 };
	char fw_path[64];
	struct vmm_config vc;
	struct vmm_result vr;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&vr, 0, sizeof(vr));
	vmm_fill(&vc, cfg);
	vc.console_out = glue_console;
	vc.screen_out = glue_screen;
	vc.console_opaque = &g;
	vc.event = glue_event;
	vc.event_opaque = &g;
	r = glue_fw_open(&g, cfg, fw_path, sizeof(fw_path), err, err_bytes);
	if (r < 0)
		return r;
	vc.firmware_log_path = fw_path;
	r = glue_run(&g, &vc, &vr, err, err_bytes);
	glue_fw_close(&g);
	res->elapsed_s = vr.elapsed_s;
	res->post_restored = vr.post_restored;
	snprintf(res->detail, sizeof(res->detail), "%llu VM exits, %llu disk reads, %llu writes%s; %.140s",
		 (unsigned long long)vr.guest_exits, (unsigned long long)vr.disk_reads,
		 (unsigned long long)vr.disk_writes,
		 vr.post_restored ? ", POST resumed from snapshot" : vr.post_saved ? ", POST snapshot saved" : "",
		 vr.detail);
	if (r < 0)
		return r;
	if (vr.exit == VMM_EXIT_INTERNAL_ERROR) {
		snprintf(err, err_bytes, "vmm-min internal error: %s", vr.detail);
		return -EIO;
	}
	if (vr.exit == VMM_EXIT_STOPPED && !p2v_watch_decided(w) && stop && *stop) {
		p2v_watch_end(w, P2V_END_STOPPED, vr.elapsed_s, "interrupted");
		return -EINTR;
	}
	p2v_watch_end(w, end_of(vr.exit), vr.elapsed_s, vr.detail);
	return 0;
}

static void glue_console_out(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm_glue *g = opaque;

	while (len > 0) {
		ssize_t n = write(g->out_fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

int p2v_vmm_console(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		    volatile sig_atomic_t *stop, char *err, size_t err_bytes)
{
	struct vmm_glue g = { .lock = PTHREAD_MUTEX_INITIALIZER, .user_stop = stop,
			      .out_fd = console_out_fd, .fw_fd = -1 };
	struct vmm_config vc;
	struct vmm_result vr;
	int r;

	memset(&vr, 0, sizeof(vr));
	vmm_fill(&vc, cfg);
	vc.console_out = glue_console_out;
	vc.console_opaque = &g;
	vc.console_in_fd = console_in_fd;
	r = glue_run(&g, &vc, &vr, err, err_bytes);
	if (r == 0 && vr.exit == VMM_EXIT_INTERNAL_ERROR) {
		snprintf(err, err_bytes, "vmm-min internal error: %s", vr.detail);
		return -EIO;
	}
	return r;
}

#endif

/* vmm-min boots every format imgfmt reads: the image library is its disk. */
static bool vmm_boots_format(const char *imgfmt_name)
{
	return imgfmt_name != NULL;
}

const struct p2v_engine_ops p2v_engine_vmm = {
	.name = "vmm",
	.title = "vmm-min (KVM)",
	.report_name = "vmm",
	.check = vmm_check,
	.boots_format = vmm_boots_format,
	.disk_counters = true,
	.verify = p2v_vmm_verify,
	.console = p2v_vmm_console,
};
