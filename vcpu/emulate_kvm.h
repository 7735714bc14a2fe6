/* The emulation fallback on a vCPU: when KVM stops it with KVM_EXIT_INTERNAL_ERROR /
 * KVM_INTERNAL_ERROR_EMULATION (KVM's own emulator could not run an instruction; on kvm_pvm all
 * guest CPL0 code goes through it), fetch the vCPU's state, run the instruction with
 * vcpu/emulate.h, write back what changed and let the guest go on. Guest exceptions the
 * instruction raises (#PF, #GP, #XM, ...) are injected; only an instruction Ember does not know
 * stops the VM.
 *
 * State moves through KVM_CAP_SYNC_REGS once a vCPU has needed the fallback (the first time costs
 * plain ioctls), XMM and MXCSR only through KVM_GET/SET_XSAVE (KVM_SET_FPU drops MXCSR). New
 * register values are staged in kvm_run for the next KVM_RUN, which applies them even when it
 * returns at once for immediate_exit: the vCPU's run loop must enter KVM_RUN (as it does to
 * complete an access) before anyone reads the state with KVM_GET_REGS. */
#pragma once

#include "devices/bus.h"
#include "memory/guest_mem.h"
#include "vcpu/emulate.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMULATE_MAX_FORMS 384

/* Per vCPU. All zero is a valid, not yet initialized state. */
struct vcpu_emulation {
	bool ready;
	bool sync_regs_ok; /* KVM_CAP_SYNC_REGS covers regs and sregs */
	size_t xsave_size; /* bytes KVM_GET_XSAVE2/KVM_SET_XSAVE move; 4096 without XSAVE2 */
	bool xsave2;
	struct kvm_xsave *xsave; /* allocated on first use */
	/* Per emulated form (emu_form_count() of them), read by other threads for metrics. */
	_Atomic uint64_t counts[EMULATE_MAX_FORMS];
	_Atomic uint64_t total;	   /* instructions emulated */
	_Atomic uint64_t faults;   /* of them, ended in an exception injected into the guest */
	_Atomic uint64_t total_ns; /* time spent in the fallback, state transfers included */
};

/* Learn what this KVM offers (two KVM_CHECK_EXTENSIONs); once per vCPU, at creation. */
void emulate_init(struct vcpu_emulation *e, int kvm_fd, int vm_fd);
void emulate_release(struct vcpu_emulation *e);

/* What the fallback works with: the vCPU and the VM's memory and MMIO bus. */
struct emulate_vcpu {
	int fd;
	unsigned id;
	struct kvm_run *run;
	const struct guest_mem *gm;
	struct bus *mmio;
};

enum emulate_result {
	EMULATE_RESUMED,     /* the guest may continue: KVM_RUN again */
	EMULATE_UNSUPPORTED, /* not an instruction Ember emulates; err_msg() says what */
	EMULATE_ERROR,	     /* a KVM ioctl failed; err_msg() says which */
};

/* Handle one KVM_EXIT_INTERNAL_ERROR with suberror KVM_INTERNAL_ERROR_EMULATION. */
enum emulate_result emulate_after_failure(struct vcpu_emulation *e, const struct emulate_vcpu *v);

struct emulate_count {
	const char *name;
	uint64_t count;
};

/* The instructions emulated so far with their counts (forms that share a name summed), at most
 * `max` of them, in form order; returns how many were written. */
size_t emulate_counts(const struct vcpu_emulation *e, struct emulate_count *out, size_t max);
