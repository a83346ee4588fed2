/* vmm-min: thin wrappers over the KVM ioctls (kvm.c). */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;

#define VMM_MAX_CPUS 8

struct vmm_kvm {
	int kvm_fd, vm_fd;
	int vcpu_fd[VMM_MAX_CPUS];
	struct kvm_run *run[VMM_MAX_CPUS];
	unsigned n_vcpus;
	size_t run_bytes;
	unsigned n_slots;
	bool irqchip;
};

/* tss_gpa: KVM's three TSS pages (Intel only), its identity map page
 * just below; both outside RAM and firmware, reserved in the e820 map. */
int vmm_kvm_open(struct vmm_kvm *k, uint32_t tss_gpa, char *err, size_t err_bytes);
int vmm_kvm_irqchip(struct vmm_kvm *k, char *err, size_t err_bytes);
int vmm_kvm_slot(struct vmm_kvm *k, uint64_t gpa, uint64_t bytes, void *host, bool readonly,
		 char *err, size_t err_bytes);
/* vCPUs 0 .. n-1; vCPU 0 is the bootstrap processor. */
int vmm_kvm_vcpus(struct vmm_kvm *k, unsigned n, char *err, size_t err_bytes);
void vmm_kvm_close(struct vmm_kvm *k);
void vmm_kvm_irq_line(void *opaque, unsigned irq, int level);

#endif
