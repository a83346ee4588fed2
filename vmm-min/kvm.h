/* vmm-min: thin wrappers over the KVM ioctls (kvm.c). */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;
struct kvm_coalesced_mmio_ring;

#define VMM_MAX_CPUS 8

struct vmm_kvm {
	int kvm_fd, vm_fd;
	int vcpu_fd[VMM_MAX_CPUS];
	struct kvm_run *run[VMM_MAX_CPUS];
	unsigned n_vcpus;
	size_t run_bytes;
	unsigned n_slots;
	bool irqchip;
	/* KVM's ring of posted (coalesced) port writes, in vCPU 0's run area;
	 * NULL when this KVM has none */
	struct kvm_coalesced_mmio_ring *posted;
	uint32_t posted_max;         /* entries in the ring */
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
/* Writes that lie wholly in ports [port, port + bytes) are posted: KVM
 * queues them without leaving the kernel, and the VMM delivers them in
 * order before it handles anything else (vmm_kvm_posted_drain).  Only for
 * registers whose writes the guest cannot observe before its next exit to
 * the VMM.  -ENOTSUP without KVM_CAP_COALESCED_PIO: the writes then exit as
 * before. */
int vmm_kvm_post_pio(struct vmm_kvm *k, uint16_t port, uint32_t bytes);
/* Hand each posted write, oldest first, to fn; the number handed. */
typedef void (*vmm_kvm_posted_fn)(void *opaque, uint16_t port, uint8_t *data, unsigned size);
unsigned vmm_kvm_posted_drain(struct vmm_kvm *k, vmm_kvm_posted_fn fn, void *opaque);
void vmm_kvm_irq_line(void *opaque, unsigned irq, int level);

#endif
