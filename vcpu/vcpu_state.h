/* A vCPU's whole architectural state as KVM reports it, for snapshots: plain data, saved while
 * the vCPU is parked and restored into a freshly created and configured vCPU. */
#pragma once

#include "vcpu/vcpu.h"

#include <linux/kvm.h>
#include <stdint.h>

#define VCPU_STATE_MAX_MSRS 256

struct vcpu_state {
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	unsigned nmsrs;
	struct kvm_msr_entry msrs[VCPU_STATE_MAX_MSRS];
};

#define MSR_IA32_TSC_INDEX 0x10

/* The MSRs to save: KVM's index list, less those this vCPU cannot read back. Once per VM. */
int vcpu_state_msr_list(int kvm_fd, struct vcpu *v, uint32_t *idx, unsigned *n);
int vcpu_save_state(struct vcpu *v, const uint32_t *msr_idx, unsigned nmsrs, struct vcpu_state *s);
/* Load a saved state (from a file: KVM validates what it can, and refuses with an error). The
 * vCPU was created and configured (CPUID) as at boot. */
int vcpu_restore_state(struct vcpu *v, const struct vcpu_state *s);
