/* vmm_run: assemble the machine, set the vCPU's entry state (firmware reset
 * vector, Linux 32-bit entry or a flat test binary), and run.  The run loop
 * only dispatches exits to the bus; a periodic signal kicks the bootstrap
 * vCPU out of KVM_RUN so stop requests, the timeout, console input and a dead
 * halt are noticed.  Each further vCPU runs in its own thread. */
#include "machine.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 20000000L
#define MIN_TICK_NS 1000000L
#define RFLAGS_IF 0x200
#define GDT_GPA 0x500u

/* One run, shared by the vCPU threads.  The lock covers the devices, the
 * machine's requests and the result. */
struct vmm_shared {
	struct vmm_machine *m;
	struct vmm_result *res;
	pthread_mutex_t lock;
	int kick_signo;
	double start_s;
	volatile int done;
	pthread_t thread[VMM_MAX_CPUS];
	bool started[VMM_MAX_CPUS];
	/* The bootstrap vCPU asks the others to stand still outside KVM_RUN
	 * (for a snapshot); they count themselves in and wait on cond. */
	bool pause;
	unsigned paused;
	pthread_cond_t cond;
};

/* One vCPU's loop.  Only the bootstrap processor (cpu 0) has the periodic
 * kick that checks stop, timeout, console input and a dead halt. */
struct vmm_loop {
	struct vmm_shared *sh;
	unsigned cpu;
	int fd;
	struct kvm_run *run;
	timer_t timer;
	bool have_timer;
	long tick_ns;
	uint64_t exits;
};

static void kick_handler(int signo)
{
	(void)signo;
}

/* The kick signal is blocked in the thread except inside KVM_RUN, so it can
 * never be lost between a check and entering the guest. */
static int loop_signal_mask(struct vmm_loop *l)
{
	struct kvm_signal_mask *km;
	uint8_t km_buf[sizeof(*km) + 8];
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	sigdelset(&cur, l->sh->kick_signo);
	km = (struct kvm_signal_mask *)km_buf;
	km->len = 8;
	memcpy(km->sigset, &cur, 8);
	return ioctl(l->fd, KVM_SET_SIGNAL_MASK, km) < 0 ? -errno : 0;
}

static int loop_timer_set(struct vmm_loop *l, long tick_ns)
{
	struct itimerspec its = { { 0, tick_ns }, { 0, tick_ns } };

	l->tick_ns = tick_ns;
	return timer_settime(l->timer, 0, &its, NULL) < 0 ? -errno : 0;
}

static int loop_timer(struct vmm_loop *l)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID };

	sev.sigev_signo = l->sh->kick_signo;
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &l->timer) < 0)
		return -errno;
	l->have_timer = true;
	return loop_timer_set(l, TICK_NS);
}

/* The devices' periodic work, and the tick interval the busiest one wants. */
static void loop_devices_tick(struct vmm_loop *l, double now_s)
{
	double want_s = vmm_devices_tick(&l->sh->m->devices, now_s);
	long want_ns = want_s > 0 ? (long)(want_s * 1e9) : TICK_NS;

	if (want_ns < MIN_TICK_NS)
		want_ns = MIN_TICK_NS;
	if (want_ns > TICK_NS)
		want_ns = TICK_NS;
	if (want_ns != l->tick_ns)
		loop_timer_set(l, want_ns);
}

static void loop_eat_kicks(const struct vmm_shared *sh)
{
	sigset_t set;
	struct timespec zero = { 0, 0 };

	sigemptyset(&set);
	sigaddset(&set, sh->kick_signo);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

/* Record how the run ended (first caller wins) and kick every vCPU out.
 * Called with the lock held. */
static void loop_finish(struct vmm_loop *l, enum vmm_exit exit, enum vmm_event_type ev,
			bool emit, const char *detail)
{
	struct vmm_shared *sh = l->sh;

	if (sh->done)
		return;
	sh->res->exit = exit;
	snprintf(sh->res->detail, sizeof(sh->res->detail), "%s", detail);
	if (emit)
		vmm_emit(&sh->m->ev, ev, 0, 0, detail);
	sh->done = 1;
	pthread_cond_broadcast(&sh->cond);
	for (unsigned i = 0; i < sh->m->kvm.n_vcpus; i++)
		if (sh->started[i] && i != l->cpu)
			pthread_kill(sh->thread[i], sh->kick_signo);
}

/* Halted with interrupts off: nothing but an NMI can wake it. */
static bool loop_dead_halt(struct vmm_loop *l)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;

	if (ioctl(l->fd, KVM_GET_MP_STATE, &mp) < 0 || mp.mp_state != KVM_MP_STATE_HALTED)
		return false;
	return ioctl(l->fd, KVM_GET_REGS, &regs) == 0 && !(regs.rflags & RFLAGS_IF);
}

static unsigned long long loop_rip(struct vmm_loop *l)
{
	struct kvm_regs regs;

	if (ioctl(l->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ull;
	return regs.rip;
}

/* Periodic checks; on the bootstrap processor only.  Lock held. */
static void loop_tick(struct vmm_loop *l)
{
	const struct vmm_config *cfg = l->sh->m->cfg;
	char msg[64];

	if (cfg->stop && *cfg->stop)
		return loop_finish(l, VMM_EXIT_STOPPED, 0, false, "stopped");
	if (cfg->timeout_s > 0 && vmm_now_s() - l->sh->start_s >= cfg->timeout_s) {
		snprintf(msg, sizeof(msg), "timeout (guest at rip 0x%llx)", loop_rip(l));
		return loop_finish(l, VMM_EXIT_TIMEOUT, 0, false, msg);
	}
	if (loop_dead_halt(l))
		return loop_finish(l, VMM_EXIT_HALTED, VMM_EV_HALT, true,
				   "halted with interrupts disabled");
	loop_devices_tick(l, vmm_now_s());
}

static void loop_io(struct vmm_loop *l)
{
	struct kvm_run *run = l->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		vmm_bus_dispatch(&l->sh->m->bus, VMM_SPACE_PIO, run->io.port, data, run->io.size,
				 is_write);
}

static void loop_request(struct vmm_loop *l)
{
	struct vmm_machine *m = l->sh->m;
	int req = m->ctl.request;
	const char *why = m->ctl.why ? m->ctl.why : "";

	m->ctl.request = VMM_REQ_NONE;
	m->ctl.why = NULL;
	if (req == VMM_REQ_RESET)
		loop_finish(l, VMM_EXIT_RESET, VMM_EV_RESET, true, why);
	else if (req == VMM_REQ_SHUTDOWN || req == VMM_REQ_SLEEP)
		loop_finish(l, VMM_EXIT_SHUTDOWN, VMM_EV_SHUTDOWN, true, why);
}

/* Every other vCPU out of KVM_RUN and waiting (lock held, returns held). */
static void loop_pause_others(struct vmm_loop *l)
{
	struct vmm_shared *sh = l->sh;
	unsigned others = 0;

	sh->pause = true;
	for (unsigned i = 1; i < sh->m->kvm.n_vcpus; i++)
		if (sh->started[i]) {
			pthread_kill(sh->thread[i], sh->kick_signo);
			others++;
		}
	while (sh->paused < others && !sh->done)
		pthread_cond_wait(&sh->cond, &sh->lock);
}

static void loop_resume_others(struct vmm_shared *sh)
{
	sh->pause = false;
	pthread_cond_broadcast(&sh->cond);
}

/* On an application processor, lock held: stand still while asked to. */
static void loop_pause_point(struct vmm_loop *l)
{
	struct vmm_shared *sh = l->sh;

	if (!sh->pause || l->cpu == 0)
		return;
	sh->paused++;
	pthread_cond_broadcast(&sh->cond);
	while (sh->pause && !sh->done)
		pthread_cond_wait(&sh->cond, &sh->lock);
	sh->paused--;
}

static void loop_exit(struct vmm_loop *l);

/* The firmware's first disk request is pending (POST done, no disk byte
 * read): complete the OUT without running the guest, save the POST
 * snapshot, then serve the request.  Lock held. */
static void loop_snapshot(struct vmm_loop *l)
{
	struct vmm_machine *m = l->sh->m;
	int r;

	m->boot_disk->held = false;
	l->run->immediate_exit = 1;
	r = ioctl(l->fd, KVM_RUN, 0);
	l->run->immediate_exit = 0;
	if (r < 0 && errno == EINTR) {
		loop_pause_others(l);
		l->sh->res->post_saved = vmm_snap_save(m, m->cfg->post_cache_dir) == 0;
		loop_resume_others(l->sh);
	}
	m->console_tee.on = m->screen_tee.on = m->fwlog_tee.on = false;
	vmm_vblk_process(m->boot_disk);
	if (r == 0) { /* the guest ran after all: that exit still needs handling */
		l->exits++;
		loop_exit(l);
	}
}

/* Dispatch one exit.  Lock held. */
static void loop_exit(struct vmm_loop *l)
{
	struct kvm_run *run = l->run;
	char msg[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO: loop_io(l); break;
	case KVM_EXIT_MMIO:
		vmm_bus_dispatch(&l->sh->m->bus, VMM_SPACE_MMIO, run->mmio.phys_addr, run->mmio.data,
				 run->mmio.len > 8 ? 8 : run->mmio.len, run->mmio.is_write);
		break;
	case KVM_EXIT_INTR: break;
	case KVM_EXIT_HLT:
		loop_finish(l, VMM_EXIT_HALTED, VMM_EV_HALT, true, "halted");
		break;
	case KVM_EXIT_SHUTDOWN:
		loop_finish(l, VMM_EXIT_TRIPLE_FAULT, VMM_EV_TRIPLE_FAULT, true, "triple fault");
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			loop_finish(l, VMM_EXIT_RESET, VMM_EV_RESET, true, "reset");
		else
			loop_finish(l, VMM_EXIT_SHUTDOWN, VMM_EV_SHUTDOWN, true, "shutdown");
		break;
	default:
		snprintf(msg, sizeof(msg), "unhandled KVM exit %u (suberror %u) on vCPU %u at rip 0x%llx",
			 run->exit_reason,
			 run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? run->internal.suberror : 0,
			 l->cpu, loop_rip(l));
		loop_finish(l, VMM_EXIT_INTERNAL_ERROR, 0, false, msg);
		break;
	}
	if (l->sh->m->ctl.request)
		loop_request(l);
	if (l->sh->m->boot_disk && l->sh->m->boot_disk->held && !l->sh->done)
		loop_snapshot(l);
}

static void posted_write(void *opaque, uint16_t port, uint8_t *data, unsigned size)
{
	struct vmm_machine *m = opaque;

	vmm_bus_dispatch(&m->bus, VMM_SPACE_PIO, port, data, size, true);
}

/* The writes KVM posted since the last exit (vmm_device_ops.posted), in
 * order, before this exit is looked at; one of them may end the run (the
 * reset control register), and then that is how it ended.  Lock held. */
static void loop_posted(struct vmm_loop *l)
{
	struct vmm_machine *m = l->sh->m;

	if (vmm_kvm_posted_drain(&m->kvm, posted_write, m) && m->ctl.request)
		loop_request(l);
}

static void loop_vcpu(struct vmm_loop *l)
{
	struct vmm_shared *sh = l->sh;
	char msg[96];

	while (!sh->done) {
		int r = ioctl(l->fd, KVM_RUN, 0), e = errno;

		pthread_mutex_lock(&sh->lock);
		loop_posted(l);
		if (sh->done) {
			/* ended by a posted write */
		} else if (r < 0 && e != EINTR && e != EAGAIN) {
			snprintf(msg, sizeof(msg), "KVM_RUN on vCPU %u: %s", l->cpu, strerror(e));
			loop_finish(l, VMM_EXIT_INTERNAL_ERROR, 0, false, msg);
		} else if (r < 0) {
			loop_eat_kicks(sh);
			if (l->cpu == 0)
				loop_tick(l);
		} else {
			l->exits++;
			loop_exit(l);
		}
		loop_pause_point(l);
		pthread_mutex_unlock(&sh->lock);
	}
}

static void *loop_ap_thread(void *opaque)
{
	struct vmm_loop *l = opaque;

	loop_vcpu(l);
	return NULL;
}

static int loop_start_aps(struct vmm_shared *sh, struct vmm_loop *loops)
{
	for (unsigned i = 1; i < sh->m->kvm.n_vcpus; i++) {
		int ret = loop_signal_mask(&loops[i]);
		if (ret == 0)
			ret = -pthread_create(&sh->thread[i], NULL, loop_ap_thread, &loops[i]);
		if (ret < 0)
			return ret;
		sh->started[i] = true;
	}
	return 0;
}

static void loop_stop_aps(struct vmm_shared *sh, struct vmm_loop *loops)
{
	pthread_mutex_lock(&sh->lock);
	sh->done = 1;
	pthread_cond_broadcast(&sh->cond);
	for (unsigned i = 1; i < sh->m->kvm.n_vcpus; i++)
		if (sh->started[i])
			pthread_kill(sh->thread[i], sh->kick_signo);
	pthread_mutex_unlock(&sh->lock);
	for (unsigned i = 1; i < sh->m->kvm.n_vcpus; i++) {
		if (sh->started[i])
			pthread_join(sh->thread[i], NULL);
		sh->res->guest_exits += loops[i].exits;
	}
}

static int loop_run(struct vmm_machine *m, struct vmm_result *res, char *err, size_t err_bytes)
{
	struct vmm_shared sh = { .m = m, .res = res, .kick_signo = SIGRTMIN + 4 };
	struct vmm_loop loops[VMM_MAX_CPUS];
	struct sigaction old, sa = { .sa_handler = kick_handler };
	sigset_t block, saved;
	int ret;

	if (sigaction(sh.kick_signo, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		sigaction(sh.kick_signo, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, sh.kick_signo);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	pthread_mutex_init(&sh.lock, NULL);
	pthread_cond_init(&sh.cond, NULL);
	sh.thread[0] = pthread_self();
	sh.started[0] = true;
	for (unsigned i = 0; i < m->kvm.n_vcpus; i++)
		loops[i] = (struct vmm_loop){ .sh = &sh, .cpu = i, .fd = m->kvm.vcpu_fd[i],
					      .run = m->kvm.run[i] };
	sh.start_s = vmm_now_s();
	ret = loop_signal_mask(&loops[0]);
	if (ret == 0)
		ret = loop_timer(&loops[0]);
	if (ret == 0)
		ret = loop_start_aps(&sh, loops);
	if (ret == 0) {
		vmm_emit(&m->ev, VMM_EV_FIRMWARE_START, 0, 0, NULL);
		if (res->post_restored) /* the request the snapshot left pending */
			vmm_vblk_process(m->boot_disk);
		loop_vcpu(&loops[0]);
	} else {
		snprintf(err, err_bytes, "vCPU threads and kick timer: %s", strerror(-ret));
	}
	loop_stop_aps(&sh, loops);
	res->elapsed_s = vmm_now_s() - sh.start_s;
	res->guest_exits += loops[0].exits;
	res->disk_reads = m->boot_disk ? m->boot_disk->reads : 0;
	res->disk_writes = m->boot_disk ? m->boot_disk->writes : 0;
	if (loops[0].have_timer)
		timer_delete(loops[0].timer);
	loop_eat_kicks(&sh);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	pthread_cond_destroy(&sh.cond);
	pthread_mutex_destroy(&sh.lock);
	return ret;
}

/* ---- entry states ----------------------------------------------------------- */

static int set_real_mode_entry(struct vmm_machine *m, uint32_t ip)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = ip, .rflags = 2, .rsp = 0x7000 };

	if (ioctl(m->kvm.vcpu_fd[0], KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs.base = 0;
	s.cs.selector = 0;
	s.ds = s.es = s.ss = s.fs = s.gs = s.cs;
	s.ds.type = s.es.type = s.ss.type = s.fs.type = s.gs.type = 3;
	if (ioctl(m->kvm.vcpu_fd[0], KVM_SET_SREGS, &s) < 0 || ioctl(m->kvm.vcpu_fd[0], KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

static void flat_segment(struct kvm_segment *seg, uint16_t sel, uint8_t type)
{
	*seg = (struct kvm_segment){ .base = 0, .limit = 0xffffffff, .selector = sel,
		.type = type, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
}

/* The boot protocol's 32-bit entry: flat __BOOT_CS 0x10 / __BOOT_DS 0x18
 * from a GDT in memory, paging off, interrupts off, ESI = zero page. */
static int set_linux_entry(struct vmm_machine *m, const struct vmm_linux_entry *e)
{
	static const uint64_t gdt[4] = { 0, 0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull };
	uint8_t *g = vmm_mem_ptr(&m->mem, GDT_GPA, sizeof(gdt));
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = e->entry_gpa, .rsi = e->boot_params_gpa, .rflags = 2 };

	if (!g || ioctl(m->kvm.vcpu_fd[0], KVM_GET_SREGS, &s) < 0)
		return -EIO;
	memcpy(g, gdt, sizeof(gdt));
	s.gdt.base = GDT_GPA;
	s.gdt.limit = sizeof(gdt) - 1;
	flat_segment(&s.cs, 0x10, 0xb);
	flat_segment(&s.ds, 0x18, 0x3);
	s.es = s.ss = s.fs = s.gs = s.ds;
	s.cr0 = (s.cr0 | 1) & ~(1ull << 31);
	if (ioctl(m->kvm.vcpu_fd[0], KVM_SET_SREGS, &s) < 0 || ioctl(m->kvm.vcpu_fd[0], KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

static int prepare_linux(struct vmm_machine *m, const struct vmm_config *cfg, char *err,
			 size_t err_bytes)
{
	struct vmm_e820 e[8];
	struct vmm_linux_entry entry;
	unsigned n = vmm_machine_e820(m, true, e);
	int ret = vmm_linux_load(&m->mem, m->below_4g, e, n, cfg->kernel_path, cfg->initrd_path,
				 cfg->append, &entry, err, err_bytes);

	if (ret < 0)
		return ret;
	vmm_machine_pci_preassign(m);
	ret = set_linux_entry(m, &entry);
	if (ret < 0)
		snprintf(err, err_bytes, "cannot set the vCPU's protected-mode entry state");
	return ret;
}

/* POST snapshot: resume from one, or arm the machine to take one.  A
 * snapshot that failed half-applied leaves a machine to rebuild. */
static int post_cache(struct vmm_machine *m, const struct vmm_config *cfg,
		      struct vmm_result *res, char *err, size_t err_bytes)
{
	int r = vmm_snap_restore(m, cfg->post_cache_dir);

	if (r == 1) {
		res->post_restored = true;
		return 0;
	}
	if (r < 0) {
		vmm_machine_close(m);
		r = vmm_machine_init(m, cfg, true, err, err_bytes);
		if (r < 0)
			return r;
	}
	m->boot_disk->hold_first_notify = true;
	m->console_tee.on = m->screen_tee.on = m->fwlog_tee.on = true;
	return 0;
}

struct run_inspect {
	void (*fn)(void *opaque, struct vmm_machine *m);
	void *opaque;
};

static int run_machine(const struct vmm_config *cfg, struct vmm_flat_guest *flat,
		       const struct run_inspect *inspect, struct vmm_result *res, char *err,
		       size_t err_bytes)
{
	struct vmm_machine m;
	bool firmware = !flat && !cfg->kernel_path;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = vmm_machine_init(&m, cfg, firmware, err, err_bytes);
	if (ret == 0 && firmware && cfg->post_cache_dir && m.boot_disk)
		ret = post_cache(&m, cfg, res, err, err_bytes);
	if (ret == 0 && cfg->kernel_path && !flat)
		ret = prepare_linux(&m, cfg, err, err_bytes);
	if (ret == 0 && flat) {
		uint8_t *dst = vmm_mem_ptr(&m.mem, flat->load_gpa, flat->code_bytes);
		ret = dst ? set_real_mode_entry(&m, flat->load_gpa) : -E2BIG;
		if (dst)
			memcpy(dst, flat->code, flat->code_bytes);
		if (ret < 0)
			snprintf(err, err_bytes, "flat guest of %zu bytes at 0x%x: %s",
				 flat->code_bytes, flat->load_gpa, strerror(-ret));
	}
	if (ret == 0)
		ret = loop_run(&m, res, err, err_bytes);
	if (ret == 0 && flat) {
		struct kvm_regs r;
		if (ioctl(m.kvm.vcpu_fd[0], KVM_GET_REGS, &r) == 0)
			flat->rcx_out = r.rcx;
	}
	if (ret == 0 && inspect)
		inspect->fn(inspect->opaque, &m);
	vmm_machine_close(&m);
	return ret;
}

int vmm_run(const struct vmm_config *cfg, struct vmm_result *res, char *err, size_t err_bytes)
{
	return run_machine(cfg, NULL, NULL, res, err, err_bytes);
}

int vmm_run_inspect(const struct vmm_config *cfg, void (*fn)(void *opaque, struct vmm_machine *m),
		    void *opaque, struct vmm_result *res, char *err, size_t err_bytes)
{
	struct run_inspect in = { fn, opaque };

	return run_machine(cfg, NULL, &in, res, err, err_bytes);
}

int vmm_run_flat(const struct vmm_config *cfg, struct vmm_flat_guest *g,
		 struct vmm_result *res, char *err, size_t err_bytes)
{
	return run_machine(cfg, g, NULL, res, err, err_bytes);
}

/* ---- calibration ------------------------------------------------------------ */

/* Real mode: mov ecx, 0x7fffffff; 1: dec ecx; jnz 1b; out 0xf4, al; cli; hlt.
 * Two instructions per iteration; stopped by the timeout after ~0.1 s, the
 * iterations done are read back from ECX. */
static const uint8_t calib_code[] = {
	0x66, 0xb9, 0xff, 0xff, 0xff, 0x7f, 0x66, 0x49, 0x75, 0xfc, 0xe6, 0xf4, 0xfa, 0xf4,
};

double vmm_calibrate_mips(char *err, size_t err_bytes)
{
	struct vmm_config cfg = { .mem_bytes = 2 * 1024 * 1024, .console_in_fd = -1,
				  .timeout_s = 0.1 };
	struct vmm_flat_guest g = { .code = calib_code, .code_bytes = sizeof(calib_code),
				    .load_gpa = 0x1000 };
	struct vmm_result res;
	int ret = vmm_run_flat(&cfg, &g, &res, err, err_bytes);
	double iterations = (double)(0x7fffffffu - (uint32_t)g.rcx_out);

	if (ret < 0)
		return ret;
	if (res.exit != VMM_EXIT_TIMEOUT && res.exit != VMM_EXIT_HALTED) {
		snprintf(err, err_bytes, "calibration guest ended unexpectedly: %s", res.detail);
		return -EIO;
	}
	if (res.elapsed_s <= 0 || iterations <= 0) {
		snprintf(err, err_bytes, "calibration guest made no progress in %.3f s", res.elapsed_s);
		return -EIO;
	}
	return 2.0 * iterations / res.elapsed_s / 1e6;
}
