/* KVM plumbing: the VM, its memory slots, the in-kernel interrupt
 * controllers and PIT, one vCPU with the host-supported CPUID. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* The identity map page sits just below the three TSS pages. */
#define KVM_IDENTITY_MAP_BELOW_TSS 0x1000u

int vmm_kvm_open(struct vmm_kvm *k, uint32_t tss_gpa, char *err, size_t err_bytes)
{
	memset(k, 0, sizeof(*k));
	k->kvm_fd = k->vm_fd = -1;
	k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm_fd < 0) {
		int e = errno;
		snprintf(err, err_bytes, "/dev/kvm: %s", strerror(e));
		return -e;
	}
	if (ioctl(k->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, err_bytes, "/dev/kvm: unexpected KVM API version");
		return -ENOTSUP;
	}
	k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0) {
		int e = errno;
		snprintf(err, err_bytes, "KVM_CREATE_VM: %s", strerror(e));
		return -e;
	}
	/* Intel needs these pages; harmless elsewhere; the e820 map reserves them. */
	ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR,
	      &(uint64_t){ tss_gpa - KVM_IDENTITY_MAP_BELOW_TSS });
	ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss_gpa);
	return 0;
}

int vmm_kvm_irqchip(struct vmm_kvm *k, char *err, size_t err_bytes)
{
	struct kvm_pit_config pit = { .flags = 0 };

	if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		int e = errno;
		snprintf(err, err_bytes, "KVM_CREATE_IRQCHIP: %s", strerror(e));
		return -e;
	}
	if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		int e = errno;
		snprintf(err, err_bytes, "KVM_CREATE_PIT2: %s", strerror(e));
		return -e;
	}
	k->irqchip = true;
	return 0;
}

int vmm_kvm_slot(struct vmm_kvm *k, uint64_t gpa, uint64_t bytes, void *host, bool readonly,
		 char *err, size_t err_bytes)
{
	struct kvm_userspace_memory_region r = {
		.slot = k->n_slots, .guest_phys_addr = gpa, .memory_size = bytes,
		.userspace_addr = (uint64_t)(uintptr_t)host,
		.flags = readonly ? KVM_MEM_READONLY : 0,
	};

	if (readonly && ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		r.flags = 0; /* a writable ROM is still a ROM image nobody writes on purpose */
	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		int e = errno;
		snprintf(err, err_bytes, "memory slot at 0x%llx (%llu bytes): %s",
			 (unsigned long long)gpa, (unsigned long long)bytes, strerror(e));
		return -e;
	}
	k->n_slots++;
	return 0;
}

/* What the guest is told about the hypervisor (Linux arch/x86/include/uapi/
 * asm/kvm_para.h): the KVM signature leaf, the paravirtual features the
 * in-kernel KVM implements without help from a VMM (kvm-clock, no I/O port
 * delay, steal time, PV EOI, PV TLB flush, PV IPIs, PV yield, the
 * stable-clock bit) intersected with what this KVM offers, and the timing
 * leaf 0x40000010 (TSC and LAPIC timer frequencies in kHz) that SeaBIOS and
 * Linux read instead of calibrating against the PM timer.  Not PV unhalt:
 * its paravirtual spinlocks halt a vCPU with interrupts off until another
 * kicks it, which is how a dead guest looks to the run loop. */
#define CPUID_HV_SIGNATURE 0x40000000u
#define CPUID_HV_FEATURES 0x40000001u
#define CPUID_HV_TIMING 0x40000010u
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define KVM_PV_WANTED ((1u << 0) | (1u << 1) | (1u << 3) | (1u << 5) | (1u << 6) | (1u << 9) | \
		       (1u << 11) | (1u << 13) | (1u << 24))
#define LAPIC_TIMER_KHZ 1000000u /* KVM's APIC bus: 1 ns per tick */

struct cpuid_guest {
	unsigned vcpu;
	uint32_t tsc_khz;            /* 0: unknown, no timing leaf */
};

static void cpuid_hv_signature(struct kvm_cpuid_entry2 *e, const struct cpuid_guest *g)
{
	e->eax = g->tsc_khz ? CPUID_HV_TIMING : CPUID_HV_FEATURES;
	memcpy(&e->ebx, "KVMK", 4);
	memcpy(&e->ecx, "VMKV", 4);
	memcpy(&e->edx, "M\0\0\0", 4);
}

/* Host CPUID, adjusted: APIC ID of this vCPU, the
 * hypervisor bit and leaves, no ARCH_CAPABILITIES (some nested hosts reject
 * MSR 0x10a). */
static void cpuid_adjust(struct kvm_cpuid2 *c, const struct cpuid_guest *g)
{
	bool have_timing = false;

	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00ffffffu) | (g->vcpu << 24);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
		} else if (e->function == 7 && e->index == 0) {
			e->edx &= ~(1u << 29);
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = g->vcpu;
		} else if (e->function == CPUID_HV_SIGNATURE) {
			cpuid_hv_signature(e, g);
		} else if (e->function == CPUID_HV_FEATURES) {
			e->eax &= KVM_PV_WANTED;
			e->ebx = e->ecx = e->edx = 0;
		} else if (e->function == CPUID_HV_TIMING) {
			have_timing = true;
		}
	}
	if (g->tsc_khz && !have_timing)
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
			.function = CPUID_HV_TIMING, .eax = g->tsc_khz, .ebx = LAPIC_TIMER_KHZ };
}

static int vcpu_cpuid(struct vmm_kvm *k, unsigned vcpu, int fd, char *err, size_t err_bytes)
{
	int nent = 128, ret = -ENOMEM, khz = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	struct cpuid_guest g = { vcpu, khz > 0 ? (uint32_t)khz : 0 };
	struct kvm_cpuid2 *c = NULL;

	for (int tries = 0; tries < 4; tries++, nent *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + (size_t)(nent + 1) * sizeof(c->entries[0]));
		if (!c)
			break;
		c->nent = (uint32_t)nent;
		ret = ioctl(k->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0 ? -errno : 0;
		if (ret != -E2BIG)
			break;
	}
	if (ret == 0) {
		cpuid_adjust(c, &g);
		ret = ioctl(fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	}
	if (ret < 0)
		snprintf(err, err_bytes, "CPUID setup: %s", strerror(-ret));
	free(c);
	return ret;
}

static int kvm_vcpu(struct vmm_kvm *k, unsigned i, char *err, size_t err_bytes)
{
	int fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)i), e;

	if (fd < 0) {
		e = errno;
		snprintf(err, err_bytes, "KVM_CREATE_VCPU %u: %s", i, strerror(e));
		return -e;
	}
	k->vcpu_fd[i] = fd;
	k->n_vcpus = i + 1;
	k->run[i] = mmap(NULL, k->run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (k->run[i] == MAP_FAILED) {
		e = errno;
		k->run[i] = NULL;
		snprintf(err, err_bytes, "mmap of the vCPU %u run area: %s", i, strerror(e));
		return -e;
	}
	return vcpu_cpuid(k, i, fd, err, err_bytes);
}

/* The posted-write ring: the page KVM_CAP_COALESCED_MMIO names inside the
 * run area (which KVM_GET_VCPU_MMAP_SIZE then covers). */
static void kvm_posted_ring(struct vmm_kvm *k)
{
	long page_bytes = sysconf(_SC_PAGESIZE);
	int page = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);

	if (page <= 0 || page_bytes <= 0 || ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0 ||
	    (size_t)(page + 1) * (size_t)page_bytes > k->run_bytes)
		return;
	k->posted = (struct kvm_coalesced_mmio_ring *)((uint8_t *)k->run[0] + (size_t)page * (size_t)page_bytes);
	k->posted_max = (uint32_t)(((size_t)page_bytes - sizeof(struct kvm_coalesced_mmio_ring)) /
				   sizeof(struct kvm_coalesced_mmio));
}

int vmm_kvm_vcpus(struct vmm_kvm *k, unsigned n, char *err, size_t err_bytes)
{
	int run_bytes = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0), ret = 0;

	if (run_bytes <= 0 || n == 0 || n > VMM_MAX_CPUS) {
		snprintf(err, err_bytes, "cannot create %u vCPUs (1 to %d)", n, VMM_MAX_CPUS);
		return -EINVAL;
	}
	k->run_bytes = (size_t)run_bytes;
	for (unsigned i = 0; i < n && ret == 0; i++)
		ret = kvm_vcpu(k, i, err, err_bytes);
	if (ret == 0)
		kvm_posted_ring(k);
	return ret;
}

int vmm_kvm_post_pio(struct vmm_kvm *k, uint16_t port, uint32_t bytes)
{
	struct kvm_coalesced_mmio_zone z = { .addr = port, .size = bytes, .pio = 1 };

	if (k->vm_fd < 0 || ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0)
		return -ENOTSUP;
	return ioctl(k->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0 ? -errno : 0;
}

/* KVM fills the ring at last and the VMM empties it at first; an entry is
 * read whole before first moves past it (the kernel's side orders its own
 * writes the same way). */
unsigned vmm_kvm_posted_drain(struct vmm_kvm *k, vmm_kvm_posted_fn fn, void *opaque)
{
	struct kvm_coalesced_mmio_ring *ring = k->posted;
	unsigned n = 0;

	if (!ring)
		return 0;
	while (ring->first != __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE) && n < k->posted_max) {
		uint32_t i = ring->first % k->posted_max;
		struct kvm_coalesced_mmio e = ring->coalesced_mmio[i];
		if (e.pio && e.len >= 1 && e.len <= 4 && e.phys_addr < 0x10000)
			fn(opaque, (uint16_t)e.phys_addr, e.data, e.len);
		__atomic_store_n(&ring->first, (i + 1) % k->posted_max, __ATOMIC_RELEASE);
		n++;
	}
	return n;
}

void vmm_kvm_close(struct vmm_kvm *k)
{
	for (unsigned i = 0; i < k->n_vcpus; i++) {
		if (k->run[i])
			munmap(k->run[i], k->run_bytes);
		if (k->vcpu_fd[i] >= 0)
			close(k->vcpu_fd[i]);
	}
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	memset(k, 0, sizeof(*k));
	k->kvm_fd = k->vm_fd = -1;
}

void vmm_kvm_irq_line(void *opaque, unsigned irq, int level)
{
	struct vmm_kvm *k = opaque;
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (k->irqchip)
		ioctl(k->vm_fd, KVM_IRQ_LINE, &l);
}
