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

#define KVM_TSS_GPA 0xfffbd000u
#define KVM_IDENTITY_MAP_GPA 0xfffbc000u

int vmm_kvm_open(struct vmm_kvm *k, char *err, size_t err_bytes)
{
	memset(k, 0, sizeof(*k));
	k->kvm_fd = k->vm_fd = k->vcpu_fd = -1;
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
	ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_MAP_GPA });
	ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_GPA);
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

/* Host CPUID, adjusted: APIC ID of this vCPU, no ARCH_CAPABILITIES (some
 * nested hosts reject MSR 0x10a). */
static void cpuid_adjust(struct kvm_cpuid2 *c, unsigned vcpu)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffffu) | (vcpu << 24);
		else if (e->function == 7 && e->index == 0)
			e->edx &= ~(1u << 29);
		else if (e->function == 0xb || e->function == 0x1f)
			e->edx = vcpu;
	}
}

static int vcpu_cpuid(struct vmm_kvm *k, unsigned vcpu, char *err, size_t err_bytes)
{
	int nent = 128, ret = -ENOMEM;
	struct kvm_cpuid2 *c = NULL;

	for (int tries = 0; tries < 4; tries++, nent *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));
		if (!c)
			break;
		c->nent = (uint32_t)nent;
		ret = ioctl(k->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0 ? -errno : 0;
		if (ret != -E2BIG)
			break;
	}
	if (ret == 0) {
		cpuid_adjust(c, vcpu);
		ret = ioctl(k->vcpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	}
	if (ret < 0)
		snprintf(err, err_bytes, "CPUID setup: %s", strerror(-ret));
	free(c);
	return ret;
}

int vmm_kvm_vcpu(struct vmm_kvm *k, char *err, size_t err_bytes)
{
	int run_bytes = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);

	k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
	if (k->vcpu_fd < 0 || run_bytes <= 0) {
		int e = errno;
		snprintf(err, err_bytes, "KVM_CREATE_VCPU: %s", strerror(e));
		return -e;
	}
	k->run = mmap(NULL, (size_t)run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, k->vcpu_fd, 0);
	if (k->run == MAP_FAILED) {
		int e = errno;
		k->run = NULL;
		snprintf(err, err_bytes, "mmap of the vCPU run area: %s", strerror(e));
		return -e;
	}
	k->run_bytes = (size_t)run_bytes;
	return vcpu_cpuid(k, 0, err, err_bytes);
}

void vmm_kvm_close(struct vmm_kvm *k)
{
	if (k->run)
		munmap(k->run, k->run_bytes);
	if (k->vcpu_fd >= 0)
		close(k->vcpu_fd);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	k->run = NULL;
	k->kvm_fd = k->vm_fd = k->vcpu_fd = -1;
}

void vmm_kvm_irq_line(void *opaque, unsigned irq, int level)
{
	struct vmm_kvm *k = opaque;
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };

	if (k->irqchip)
		ioctl(k->vm_fd, KVM_IRQ_LINE, &l);
}
