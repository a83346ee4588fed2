/* vmm_run: assemble the machine, set the vCPU's entry state (firmware reset
 * vector, Linux 32-bit entry or a flat test binary), and run.  The run loop
 * only dispatches exits to the bus; a periodic signal kicks the vCPU out of
 * KVM_RUN so stop requests, the timeout, console input and a dead halt are
 * noticed. */
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
#define RFLAGS_IF 0x200
#define GDT_GPA 0x500u

struct vmm_loop {
	struct vmm_machine *m;
	struct vmm_result *res;
	int kick_signo;
	timer_t timer;
	bool have_timer;
	sigset_t saved_mask;
	double start_s;
	bool done;
};

static void kick_handler(int signo)
{
	(void)signo;
}

/* A periodic signal to this thread, blocked except inside KVM_RUN (so it
 * can never be lost between a check and entering the guest). */
static int loop_kick_setup(struct vmm_loop *l)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID };
	struct itimerspec its = { { 0, TICK_NS }, { 0, TICK_NS } };
	struct sigaction old, sa = { .sa_handler = kick_handler };
	sigset_t block, run_mask;
	struct kvm_signal_mask *km;
	uint8_t km_buf[sizeof(*km) + 8];

	l->kick_signo = SIGRTMIN + 4;
	if (sigaction(l->kick_signo, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		sigaction(l->kick_signo, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, l->kick_signo);
	pthread_sigmask(SIG_BLOCK, &block, &l->saved_mask);
	run_mask = l->saved_mask;
	sigdelset(&run_mask, l->kick_signo);
	km = (struct kvm_signal_mask *)km_buf;
	km->len = 8;
	memcpy(km->sigset, &run_mask, 8);
	if (ioctl(l->m->kvm.vcpu_fd, KVM_SET_SIGNAL_MASK, km) < 0)
		return -errno;
	sev.sigev_signo = l->kick_signo;
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &l->timer) < 0)
		return -errno;
	l->have_timer = true;
	return timer_settime(l->timer, 0, &its, NULL) < 0 ? -errno : 0;
}

static void loop_kick_teardown(struct vmm_loop *l)
{
	sigset_t pending;
	struct timespec zero = { 0, 0 };

	if (l->have_timer)
		timer_delete(l->timer);
	sigemptyset(&pending);
	sigaddset(&pending, l->kick_signo);
	while (sigtimedwait(&pending, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &l->saved_mask, NULL);
}

static void loop_finish(struct vmm_loop *l, enum vmm_exit exit, enum vmm_event_type ev,
			bool emit, const char *detail)
{
	l->res->exit = exit;
	snprintf(l->res->detail, sizeof(l->res->detail), "%s", detail);
	if (emit)
		vmm_emit(&l->m->ev, ev, 0, 0, detail);
	l->done = true;
}

static void loop_console_in(struct vmm_loop *l)
{
	struct pollfd p = { .fd = l->m->cfg->console_in_fd, .events = POLLIN };
	uint8_t buf[64];
	size_t room = VMM_UART_RX_BYTES - l->m->uart.rx_count;
	ssize_t n;

	if (p.fd < 0 || room == 0 || poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
		return;
	n = read(p.fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n > 0)
		vmm_uart_feed(&l->m->uart, buf, (size_t)n);
}

/* Halted with interrupts off: nothing but an NMI can wake it. */
static bool loop_dead_halt(struct vmm_loop *l)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;

	if (ioctl(l->m->kvm.vcpu_fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    mp.mp_state != KVM_MP_STATE_HALTED)
		return false;
	return ioctl(l->m->kvm.vcpu_fd, KVM_GET_REGS, &regs) == 0 && !(regs.rflags & RFLAGS_IF);
}

static void loop_tick(struct vmm_loop *l)
{
	const struct vmm_config *cfg = l->m->cfg;
	sigset_t pending;
	struct timespec zero = { 0, 0 };

	sigemptyset(&pending);
	sigaddset(&pending, l->kick_signo);
	while (sigtimedwait(&pending, NULL, &zero) > 0)
		;
	if (cfg->stop && *cfg->stop)
		return loop_finish(l, VMM_EXIT_STOPPED, 0, false, "stopped");
	if (cfg->timeout_s > 0 && vmm_now_s() - l->start_s >= cfg->timeout_s)
		return loop_finish(l, VMM_EXIT_TIMEOUT, 0, false, "timeout");
	if (loop_dead_halt(l))
		return loop_finish(l, VMM_EXIT_HALTED, VMM_EV_HALT, true,
				   "halted with interrupts disabled");
	loop_console_in(l);
}

static void loop_io(struct vmm_loop *l)
{
	struct kvm_run *run = l->m->kvm.run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		vmm_bus_dispatch(&l->m->bus, VMM_SPACE_PIO, run->io.port, data, run->io.size,
				 is_write);
}

static void loop_request(struct vmm_loop *l)
{
	int req = l->m->ctl.request;

	l->m->ctl.request = VMM_REQ_NONE;
	if (req == VMM_REQ_RESET)
		loop_finish(l, VMM_EXIT_RESET, VMM_EV_RESET, true, "guest requested a reset");
	else if (req == VMM_REQ_SHUTDOWN)
		loop_finish(l, VMM_EXIT_SHUTDOWN, VMM_EV_SHUTDOWN, true, "guest powered off");
}

static unsigned long long loop_rip(struct vmm_loop *l)
{
	struct kvm_regs regs;

	if (ioctl(l->m->kvm.vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return ~0ull;
	return regs.rip;
}

static void loop_exit(struct vmm_loop *l)
{
	struct kvm_run *run = l->m->kvm.run;
	char msg[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO: loop_io(l); break;
	case KVM_EXIT_MMIO:
		vmm_bus_dispatch(&l->m->bus, VMM_SPACE_MMIO, run->mmio.phys_addr, run->mmio.data,
				 run->mmio.len > 8 ? 8 : run->mmio.len, run->mmio.is_write);
		break;
	case KVM_EXIT_INTR: loop_tick(l); break;
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
		snprintf(msg, sizeof(msg), "unhandled KVM exit %u (suberror %u) at rip 0x%llx",
			 run->exit_reason,
			 run->exit_reason == KVM_EXIT_INTERNAL_ERROR ? run->internal.suberror : 0,
			 loop_rip(l));
		loop_finish(l, VMM_EXIT_INTERNAL_ERROR, 0, false, msg);
		break;
	}
	if (!l->done && l->m->ctl.request)
		loop_request(l);
}

static int loop_run(struct vmm_machine *m, struct vmm_result *res, char *err, size_t err_bytes)
{
	struct vmm_loop l = { .m = m, .res = res };
	int ret = loop_kick_setup(&l);

	if (ret < 0) {
		loop_kick_teardown(&l);
		snprintf(err, err_bytes, "vCPU kick timer: %s", strerror(-ret));
		return ret;
	}
	l.start_s = vmm_now_s();
	vmm_emit(&m->ev, VMM_EV_FIRMWARE_START, 0, 0, NULL);
	while (!l.done) {
		if (ioctl(m->kvm.vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno != EINTR && errno != EAGAIN) {
				snprintf(res->detail, sizeof(res->detail), "KVM_RUN: %s", strerror(errno));
				res->exit = VMM_EXIT_INTERNAL_ERROR;
				break;
			}
			loop_tick(&l);
			continue;
		}
		res->guest_exits++;
		loop_exit(&l);
	}
	res->elapsed_s = vmm_now_s() - l.start_s;
	res->disk_reads = m->vblk.reads;
	res->disk_writes = m->vblk.writes;
	loop_kick_teardown(&l);
	return 0;
}

/* ---- entry states ----------------------------------------------------------- */

static int set_real_mode_entry(struct vmm_machine *m, uint32_t ip)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = ip, .rflags = 2, .rsp = 0x7000 };

	if (ioctl(m->kvm.vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs.base = 0;
	s.cs.selector = 0;
	s.ds = s.es = s.ss = s.fs = s.gs = s.cs;
	s.ds.type = s.es.type = s.ss.type = s.fs.type = s.gs.type = 3;
	if (ioctl(m->kvm.vcpu_fd, KVM_SET_SREGS, &s) < 0 || ioctl(m->kvm.vcpu_fd, KVM_SET_REGS, &r) < 0)
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

	if (!g || ioctl(m->kvm.vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -EIO;
	memcpy(g, gdt, sizeof(gdt));
	s.gdt.base = GDT_GPA;
	s.gdt.limit = sizeof(gdt) - 1;
	flat_segment(&s.cs, 0x10, 0xb);
	flat_segment(&s.ds, 0x18, 0x3);
	s.es = s.ss = s.fs = s.gs = s.ds;
	s.cr0 = (s.cr0 | 1) & ~(1ull << 31);
	if (ioctl(m->kvm.vcpu_fd, KVM_SET_SREGS, &s) < 0 || ioctl(m->kvm.vcpu_fd, KVM_SET_REGS, &r) < 0)
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

static int run_machine(const struct vmm_config *cfg, struct vmm_flat_guest *flat,
		       struct vmm_result *res, char *err, size_t err_bytes)
{
	struct vmm_machine m;
	bool firmware = !flat && !cfg->kernel_path;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = vmm_machine_init(&m, cfg, firmware, err, err_bytes);
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
		if (ioctl(m.kvm.vcpu_fd, KVM_GET_REGS, &r) == 0)
			flat->rcx_out = r.rcx;
	}
	vmm_machine_close(&m);
	return ret;
}

int vmm_run(const struct vmm_config *cfg, struct vmm_result *res, char *err, size_t err_bytes)
{
	return run_machine(cfg, NULL, res, err, err_bytes);
}

int vmm_run_flat(const struct vmm_config *cfg, struct vmm_flat_guest *g,
		 struct vmm_result *res, char *err, size_t err_bytes)
{
	return run_machine(cfg, g, res, err, err_bytes);
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
