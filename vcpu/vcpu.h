/* One vCPU: its KVM file descriptor, its shared kvm_run page, and the thread that runs it. The
 * run loop serves port and MMIO exits through the VM's buses and reports everything that ends
 * the VM through vm_events. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"
#include "memory/guest_mem.h"
#include "vcpu/cpuid.h"
#include "vcpu/emulate_kvm.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum vcpu_exit_kind {
	VCPU_EXIT_IO,
	VCPU_EXIT_MMIO,
	VCPU_EXIT_HLT,
	VCPU_EXIT_INTR, /* KVM_RUN interrupted by a signal */
	VCPU_EXIT_SHUTDOWN,
	VCPU_EXIT_INTERNAL_ERROR,
	VCPU_EXIT_SYSTEM_EVENT,
	VCPU_EXIT_OTHER,
	VCPU_EXIT_KINDS,
};

/* Where vCPUs park while the VM is paused. The vmm thread sets `requested` and kicks every
 * vCPU; each one finishes the exit it was serving, lets KVM complete a pending port or MMIO read
 * (so that its saved state is whole), and waits here. */
struct vcpu_pause {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool requested;
	unsigned parked; /* vCPU threads waiting in the pause */
	unsigned gone;	 /* vCPU threads that have ended */
};

/* What the run loop needs from the VM around it. */
struct vcpu_env {
	struct bus *pio;
	struct bus *mmio;
	struct guest_mem *gm;
	const struct vm_events *events;
	atomic_bool *stopping;		/* set by the VM when every vCPU must leave KVM_RUN */
	_Atomic uint64_t *first_run_ns; /* set by the first vCPU to enter the guest */
	struct vcpu_pause *pause;
};

struct vcpu {
	int fd;
	unsigned id;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	const struct vcpu_env *env;
	_Atomic uint64_t exits[VCPU_EXIT_KINDS];
	bool completion_pending;   /* the last exit was a port or MMIO access KVM must finish */
	struct vcpu_emulation emu; /* instructions KVM's emulator could not run */
};

/* Create vCPU `id` (also its APIC ID). */
int vcpu_create(struct vcpu *v, int kvm_fd, int vm_fd, unsigned id, const struct vcpu_env *env);
void vcpu_destroy(struct vcpu *v);
/* CPUID (normalized from `supported`), MSRs, FPU and LAPIC LINT pins. */
int vcpu_configure(struct vcpu *v, const struct cpuid_table *supported, unsigned nr_vcpus);
/* Registers for the boot vCPU. */
int vcpu_set_boot_state_long_mode(struct vcpu *v, uint64_t entry, uint64_t boot_params);
int vcpu_set_boot_state_pvh(struct vcpu *v, uint64_t entry, uint64_t start_info);
int vcpu_start(struct vcpu *v);
/* Make the vCPU leave KVM_RUN soon (immediate_exit and a signal). */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
int vcpu_pause_init(struct vcpu_pause *p);
void vcpu_pause_destroy(struct vcpu_pause *p);
/* Ask every vCPU of `vcpus` to park and wait until each has parked or ended. */
void vcpu_pause_all(struct vcpu_pause *p, struct vcpu *vcpus, unsigned n);
/* Let parked vCPUs run again (also used to release them when the VM stops). */
void vcpu_pause_release(struct vcpu_pause *p);
/* The kvm_run exit names, indexed by enum vcpu_exit_kind. */
extern const char *const vcpu_exit_kind_names[VCPU_EXIT_KINDS];
/* Install the (empty) handler for the kick signal; once per process. */
int vcpu_init_signals(void);

/* Translate a guest virtual address with the vCPU's current paging mode; for reports. */
int vcpu_translate(const struct guest_mem *gm, const struct kvm_sregs *sregs, uint64_t gva,
		   uint64_t *gpa);

/* Describe an exit that ends the VM (internal error, failed entry) with registers and the
 * instruction bytes at RIP, into `buf`. */
void vcpu_describe_failure(struct vcpu *v, char *buf, size_t size);
