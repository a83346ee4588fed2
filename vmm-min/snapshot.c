/* POST snapshots: the machine as it stands when the firmware first asks the
 * disk for data.  At that point SeaBIOS has done all of its POST (memory
 * clearing, PCI, ACPI/MP/SMBIOS tables, option ROM scan) and has read no
 * byte of the disk, so the state depends only on what the key names; a run
 * with the same key resumes there and the disk's first request (pending in
 * the virtqueue) is served from whatever image this run boots.
 *
 * File: "P2VPOST1", then records (u32 tag, u32 length, bytes) up to T_END.
 * The key record holds the whole key text and must match byte for byte;
 * every length is checked against what its tag allows before use.  Each
 * vCPU's records follow a T_VCPU record naming it; each device with state
 * writes one T_DEVICE record (its name, then its ops->save bytes), and a
 * restore that does not find every vCPU and every such device is refused. */
#include "machine.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define SNAP_MAGIC "P2VPOST1"
#define SNAP_VERSION 2
#define SNAP_PAGE_BYTES 4096u
#define SNAP_MAX_MSRS 256u
#define SNAP_DEVICE_MAX_BYTES 4096u

enum snap_tag {
	T_KEY = 1, T_REGS, T_SREGS, T_FPU, T_LAPIC, T_MP_STATE, T_EVENTS, T_MSRS,
	T_IRQCHIP, T_PIT, T_CLOCK, T_DEVICE, T_CONSOLE, T_FWLOG, T_PAGE, T_END, T_VCPU, T_SCREEN,
};

uint64_t vmm_fnv1a(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (h == 0)
		h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* ---- the key ---- */

/* Everything the saved state depends on, as text: the firmware, the RAM and
 * CPUs, the disk size, fw_cfg's content, each device's name and state size,
 * the host kernel (KVM's state formats). */
static int snap_key(struct vmm_machine *m, char *key, size_t key_bytes)
{
	struct utsname u;
	uint64_t fw = 0, devs = 0;
	int n;

	for (unsigned i = 0; i < m->fwcfg->n; i++) {
		fw = vmm_fnv1a(fw, &m->fwcfg->item[i].key, sizeof(m->fwcfg->item[i].key));
		fw = vmm_fnv1a(fw, m->fwcfg->item[i].name, strlen(m->fwcfg->item[i].name));
		fw = vmm_fnv1a(fw, m->fwcfg->item[i].data, m->fwcfg->item[i].bytes);
	}
	for (unsigned i = 0; i < m->devices.n; i++) {
		const struct vmm_device_ops *ops = m->devices.d[i].ops;
		devs = vmm_fnv1a(devs, ops->name, strlen(ops->name) + 1);
		devs = vmm_fnv1a(devs, &ops->state_bytes, sizeof(ops->state_bytes));
	}
	if (uname(&u) < 0)
		return -errno;
	n = snprintf(key, key_bytes,
		     "v%d dev%u:%016llx rom%zu:%016llx ram%llu cpus%u disk%llu fwcfg%u:%016llx log%d host %s %s %s",
		     SNAP_VERSION, m->devices.n, (unsigned long long)devs, m->rom_bytes,
		     (unsigned long long)m->rom_hash, (unsigned long long)m->ram_bytes, m->cpus,
		     (unsigned long long)vmm_disk_size_bytes(m->disk), m->fwcfg->n,
		     (unsigned long long)fw, m->fwlog != NULL, u.release, u.version, u.machine);
	return n < 0 || (size_t)n >= key_bytes ? -ENAMETOOLONG : 0;
}

static int snap_path(const char *dir, const char *key, char *path, size_t path_bytes)
{
	int n = snprintf(path, path_bytes, "%s/post-%016llx.snap", dir,
			 (unsigned long long)vmm_fnv1a(0, key, strlen(key)));

	return n < 0 || (size_t)n >= path_bytes ? -ENAMETOOLONG : 0;
}

/* ---- writing ---- */

static int put(FILE *f, uint32_t tag, const void *data, uint32_t len)
{
	uint32_t h[2] = { tag, len };

	if (fwrite(h, sizeof(h), 1, f) != 1 || (len && fwrite(data, len, 1, f) != 1))
		return -EIO;
	return 0;
}

static int put_devices(FILE *f, struct vmm_machine *m)
{
	uint8_t rec[VMM_DEVICE_NAME_BYTES + SNAP_DEVICE_MAX_BYTES];

	for (unsigned i = 0; i < m->devices.n; i++) {
		const struct vmm_device *d = &m->devices.d[i];
		if (d->ops->stateless)
			continue;
		if (d->ops->state_bytes > SNAP_DEVICE_MAX_BYTES)
			return -E2BIG;
		memset(rec, 0, VMM_DEVICE_NAME_BYTES);
		memcpy(rec, d->ops->name, strlen(d->ops->name));
		d->ops->save(d->state, rec + VMM_DEVICE_NAME_BYTES);
		if (put(f, T_DEVICE, rec, VMM_DEVICE_NAME_BYTES + d->ops->state_bytes))
			return -EIO;
	}
	return 0;
}

/* One MSR through KVM_GET_MSRS / KVM_SET_MSRS; true when the vCPU took it. */
static bool msr_one(int vcpu_fd, unsigned long req, struct kvm_msr_entry *e)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + sizeof(*e));
	bool ok;

	if (!m)
		return false;
	m->nmsrs = 1;
	m->entries[0] = *e;
	ok = ioctl(vcpu_fd, req, m) == 1;
	*e = m->entries[0];
	free(m);
	return ok;
}

/* Every MSR KVM lists, plus the MTRRs and PAT SeaBIOS programs; those the
 * vCPU will not read are left out. */
static int put_msrs(FILE *f, const struct vmm_machine *m, int vcpu_fd)
{
	static const uint32_t extra[] = { 0x2ff, 0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b,
					  0x26c, 0x26d, 0x26e, 0x26f, 0x277 };
	const uint32_t n_extra = (uint32_t)(sizeof(extra) / sizeof(extra[0]));
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + SNAP_MAX_MSRS * sizeof(uint32_t));
	struct kvm_msr_entry *out = calloc(SNAP_MAX_MSRS + n_extra, sizeof(*out));
	uint32_t n = 0, listed = 0;
	int r = -ENOMEM;

	if (list && out) {
		list->nmsrs = SNAP_MAX_MSRS;
		if (ioctl(m->kvm.kvm_fd, KVM_GET_MSR_INDEX_LIST, list) == 0)
			listed = list->nmsrs;
		for (uint32_t i = 0; i < listed + n_extra; i++) {
			struct kvm_msr_entry e = { .index = i < listed ? list->indices[i] : extra[i - listed] };
			if (msr_one(vcpu_fd, KVM_GET_MSRS, &e))
				out[n++] = e;
		}
		r = put(f, T_MSRS, out, n * (uint32_t)sizeof(*out));
	}
	free(list);
	free(out);
	return r;
}

static int put_vcpu(FILE *f, const struct vmm_machine *m, uint32_t cpu)
{
	int fd = m->kvm.vcpu_fd[cpu];
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;

	if (ioctl(fd, KVM_GET_REGS, &regs) < 0 || ioctl(fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(fd, KVM_GET_FPU, &fpu) < 0 || ioctl(fd, KVM_GET_LAPIC, &lapic) < 0 ||
	    ioctl(fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	if (put(f, T_VCPU, &cpu, sizeof(cpu)) || put(f, T_REGS, &regs, sizeof(regs)) || put(f, T_SREGS, &sregs, sizeof(sregs)) ||
	    put(f, T_FPU, &fpu, sizeof(fpu)) || put(f, T_LAPIC, &lapic, sizeof(lapic)) ||
	    put(f, T_MP_STATE, &mp, sizeof(mp)) || put(f, T_EVENTS, &ev, sizeof(ev)))
		return -EIO;
	return put_msrs(f, m, fd);
}

static int put_vm(FILE *f, const struct vmm_machine *m)
{
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;

	for (uint32_t chip = 0; chip < 3; chip++) {
		struct kvm_irqchip c = { .chip_id = chip };
		if (ioctl(m->kvm.vm_fd, KVM_GET_IRQCHIP, &c) < 0)
			return -errno;
		if (put(f, T_IRQCHIP, &c, sizeof(c)))
			return -EIO;
	}
	memset(&clock, 0, sizeof(clock));
	if (ioctl(m->kvm.vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(m->kvm.vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return -errno;
	clock.flags = 0;
	if (put(f, T_PIT, &pit, sizeof(pit)) || put(f, T_CLOCK, &clock, sizeof(clock)))
		return -EIO;
	return 0;
}

/* Non-zero pages only: most of the guest RAM was never touched. */
static int put_pages(FILE *f, const struct vmm_machine *m)
{
	static const uint8_t zero[SNAP_PAGE_BYTES];
	uint8_t rec[8 + SNAP_PAGE_BYTES];

	for (uint64_t off = 0; off < m->ram_bytes; off += SNAP_PAGE_BYTES) {
		if (!memcmp(m->ram + off, zero, SNAP_PAGE_BYTES))
			continue;
		memcpy(rec, &off, 8);
		memcpy(rec + 8, m->ram + off, SNAP_PAGE_BYTES);
		if (put(f, T_PAGE, rec, sizeof(rec)))
			return -EIO;
	}
	return 0;
}

static int put_all(FILE *f, struct vmm_machine *m, const char *key)
{
	int r;

	if (fwrite(SNAP_MAGIC, 8, 1, f) != 1 || put(f, T_KEY, key, (uint32_t)strlen(key)))
		return -EIO;
	for (uint32_t cpu = 0; cpu < m->kvm.n_vcpus; cpu++)
		if ((r = put_vcpu(f, m, cpu)) < 0)
			return r;
	if ((r = put_vm(f, m)) < 0 || (r = put_devices(f, m)) < 0)
		return r;
	if (put(f, T_CONSOLE, m->console_tee.buf, (uint32_t)m->console_tee.len) ||
	    put(f, T_SCREEN, m->screen_tee.buf, (uint32_t)m->screen_tee.len) ||
	    put(f, T_FWLOG, m->fwlog_tee.buf, (uint32_t)m->fwlog_tee.len))
		return -EIO;
	if ((r = put_pages(f, m)) < 0)
		return r;
	return put(f, T_END, NULL, 0);
}

int vmm_snap_save(struct vmm_machine *m, const char *dir)
{
	char key[512], path[4096], tmp[4200];
	FILE *f;
	int r;

	if ((r = snap_key(m, key, sizeof(key))) < 0 || (r = snap_path(dir, key, path, sizeof(path))) < 0)
		return r;
	mkdir(dir, 0700);
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	if (!(f = fopen(tmp, "wbe")))
		return -errno;
	r = put_all(f, m, key);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = r ? r : -EIO;
	fclose(f);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* ---- reading ---- */

struct snap_file {
	uint8_t *data;
	size_t len;
};

/* The next record at *pos: tag and payload, bounds-checked. */
static int next_rec(const struct snap_file *s, size_t *pos, uint32_t *tag, const uint8_t **p,
		    uint32_t *len)
{
	uint32_t h[2];

	if (s->len - *pos < sizeof(h))
		return -EINVAL;
	memcpy(h, s->data + *pos, sizeof(h));
	if (h[1] > s->len - *pos - sizeof(h))
		return -EINVAL;
	*tag = h[0];
	*len = h[1];
	*p = s->data + *pos + sizeof(h);
	*pos += sizeof(h) + h[1];
	return 0;
}

static int apply_msrs(int vcpu_fd, const uint8_t *p, uint32_t len)
{
	uint32_t n = len / (uint32_t)sizeof(struct kvm_msr_entry);

	if (len % sizeof(struct kvm_msr_entry))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		struct kvm_msr_entry e;
		memcpy(&e, p + i * sizeof(e), sizeof(e));
		msr_one(vcpu_fd, KVM_SET_MSRS, &e); /* read-only ones refuse: fine */
	}
	return 0;
}

static int apply_page(struct vmm_machine *m, const uint8_t *p, uint32_t len)
{
	uint64_t off;

	if (len != 8 + SNAP_PAGE_BYTES)
		return -EINVAL;
	memcpy(&off, p, 8);
	if (off % SNAP_PAGE_BYTES || off >= m->ram_bytes)
		return -EINVAL;
	memcpy(m->ram + off, p + 8, SNAP_PAGE_BYTES);
	return 0;
}

/* ioctl on fd with a payload of exactly the struct's size. */
static int apply_exact(int fd, unsigned long req, const uint8_t *p, uint32_t len, size_t want)
{
	uint8_t buf[8192] __attribute__((aligned(16)));

	if (len != want || want > sizeof(buf))
		return -EINVAL;
	memcpy(buf, p, len);
	return ioctl(fd, req, buf) < 0 ? -errno : 0;
}

static void replay(struct vmm_machine *m, uint32_t tag, const uint8_t *p, uint32_t len)
{
	if (tag == T_CONSOLE && len && m->cfg->console_out)
		m->cfg->console_out(m->cfg->console_opaque, p, len);
	if (tag == T_SCREEN && len)
		vmm_machine_screen_out(m, p, len);
	if (tag == T_FWLOG && len && m->fwlog)
		fwrite(p, 1, len, (FILE *)m->fwlog);
}

/* What a restore has applied so far. */
struct snap_progress {
	int cpu;                     /* the vCPU records apply to, -1 before T_VCPU */
	uint32_t cpus_seen;          /* bit per vCPU with its T_VCPU record */
	uint32_t devices_loaded;     /* bit per device index */
};

static int apply_device(struct vmm_machine *m, struct snap_progress *pr, const uint8_t *p,
			uint32_t len)
{
	char name[VMM_DEVICE_NAME_BYTES];
	struct vmm_device *d;
	uint32_t bit;

	if (len < VMM_DEVICE_NAME_BYTES || p[VMM_DEVICE_NAME_BYTES - 1] != 0)
		return -EINVAL;
	memcpy(name, p, sizeof(name));
	d = vmm_devices_find(&m->devices, name);
	if (!d || d->ops->stateless || len - VMM_DEVICE_NAME_BYTES != d->ops->state_bytes)
		return -EINVAL;
	bit = 1u << (d - m->devices.d);
	if (pr->devices_loaded & bit)
		return -EINVAL;
	pr->devices_loaded |= bit;
	return d->ops->load(d->state, p + VMM_DEVICE_NAME_BYTES);
}

static int apply_vcpu_rec(struct vmm_machine *m, struct snap_progress *pr, uint32_t tag,
			  const uint8_t *p, uint32_t len)
{
	int fd;

	if (pr->cpu < 0)
		return -EINVAL;
	fd = m->kvm.vcpu_fd[pr->cpu];
	switch (tag) {
	case T_REGS: return apply_exact(fd, KVM_SET_REGS, p, len, sizeof(struct kvm_regs));
	case T_SREGS: return apply_exact(fd, KVM_SET_SREGS, p, len, sizeof(struct kvm_sregs));
	case T_FPU: return apply_exact(fd, KVM_SET_FPU, p, len, sizeof(struct kvm_fpu));
	case T_LAPIC: return apply_exact(fd, KVM_SET_LAPIC, p, len, sizeof(struct kvm_lapic_state));
	case T_MP_STATE: return apply_exact(fd, KVM_SET_MP_STATE, p, len, sizeof(struct kvm_mp_state));
	case T_EVENTS: return apply_exact(fd, KVM_SET_VCPU_EVENTS, p, len, sizeof(struct kvm_vcpu_events));
	default: return apply_msrs(fd, p, len);
	}
}

static int apply_rec(struct vmm_machine *m, struct snap_progress *pr, uint32_t tag,
		     const uint8_t *p, uint32_t len)
{
	int vm = m->kvm.vm_fd;
	uint32_t cpu;

	switch (tag) {
	case T_VCPU:
		if (len != sizeof(cpu))
			return -EINVAL;
		memcpy(&cpu, p, sizeof(cpu));
		if (cpu >= m->kvm.n_vcpus || (pr->cpus_seen & (1u << cpu)))
			return -EINVAL;
		pr->cpus_seen |= 1u << cpu;
		pr->cpu = (int)cpu;
		return 0;
	case T_REGS: case T_SREGS: case T_FPU: case T_LAPIC: case T_MP_STATE: case T_EVENTS:
	case T_MSRS:
		return apply_vcpu_rec(m, pr, tag, p, len);
	case T_IRQCHIP: return apply_exact(vm, KVM_SET_IRQCHIP, p, len, sizeof(struct kvm_irqchip));
	case T_PIT: return apply_exact(vm, KVM_SET_PIT2, p, len, sizeof(struct kvm_pit_state2));
	case T_CLOCK: return apply_exact(vm, KVM_SET_CLOCK, p, len, sizeof(struct kvm_clock_data));
	case T_PAGE: return apply_page(m, p, len);
	case T_DEVICE: return apply_device(m, pr, p, len);
	case T_CONSOLE: case T_SCREEN: case T_FWLOG: replay(m, tag, p, len); return 0;
	default: return -EINVAL;
	}
}

/* Every vCPU and every device with state got its records. */
static bool snap_complete(const struct vmm_machine *m, const struct snap_progress *pr)
{
	if (pr->cpus_seen != (1u << m->kvm.n_vcpus) - 1)
		return false;
	for (unsigned i = 0; i < m->devices.n; i++)
		if (!m->devices.d[i].ops->stateless && !(pr->devices_loaded & (1u << i)))
			return false;
	return true;
}

/* Key first (nothing applied unless it matches), then every record. */
static int apply_all(struct vmm_machine *m, const struct snap_file *s, const char *key)
{
	struct snap_progress pr = { .cpu = -1 };
	size_t pos = 8;
	const uint8_t *p;
	uint32_t tag, len;
	int r;

	if (s->len < 8 || memcmp(s->data, SNAP_MAGIC, 8) || next_rec(s, &pos, &tag, &p, &len) < 0 ||
	    tag != T_KEY || len != strlen(key) || memcmp(p, key, len))
		return 0; /* another machine's (a hash collision) or not ours: no snapshot */
	while ((r = next_rec(s, &pos, &tag, &p, &len)) == 0 && tag != T_END)
		if ((r = apply_rec(m, &pr, tag, p, len)) < 0)
			return r;
	if (r < 0)
		return r;
	return snap_complete(m, &pr) ? 1 : -EINVAL;
}

static int read_file(const char *path, size_t max_bytes, struct snap_file *s)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	struct stat st;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || st.st_size < 8 || (uint64_t)st.st_size > max_bytes) {
		close(fd);
		return -EINVAL;
	}
	s->len = (size_t)st.st_size;
	s->data = malloc(s->len);
	if (!s->data || read(fd, s->data, s->len) != (ssize_t)s->len)
		r = -EIO;
	close(fd);
	return r < 0 ? r : 1;
}

int vmm_snap_restore(struct vmm_machine *m, const char *dir)
{
	char key[512], path[4096];
	struct snap_file s = { 0 };
	int r;

	if ((r = snap_key(m, key, sizeof(key))) < 0 || (r = snap_path(dir, key, path, sizeof(path))) < 0)
		return 0;
	r = read_file(path, m->ram_bytes + 2 * VMM_TEE_MAX_BYTES + (1u << 20), &s);
	if (r == 1)
		r = apply_all(m, &s, key);
	if (r < 0)
		unlink(path); /* unusable: the next run makes a new one */
	free(s.data);
	return r;
}
