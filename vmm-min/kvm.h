/* vmm-min: thin wrappers over the KVM ioctls (kvm.c). */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;

struct vmm_kvm {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_bytes;
	unsigned n_slots;
	bool irqchip;
};

int vmm_kvm_open(struct vmm_kvm *k, char *err, size_t err_bytes);
int vmm_kvm_irqchip(struct vmm_kvm *k, char *err, size_t err_bytes);
int vmm_kvm_slot(struct vmm_kvm *k, uint64_t gpa, uint64_t bytes, void *host, bool readonly,
		 char *err, size_t err_bytes);
int vmm_kvm_vcpu(struct vmm_kvm *k, char *err, size_t err_bytes);
void vmm_kvm_close(struct vmm_kvm *k);
void vmm_kvm_irq_line(void *opaque, unsigned irq, int level);

#endif
