/* Per-vCPU CPUID: KVM's supported table, normalized so each vCPU sees its own APIC ID and a
 * consistent topology (one package, one thread per core), the hypervisor bit, KVM's paravirt
 * leaves and the TSC frequency leaf. */
#pragma once

#include <linux/kvm.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256

struct cpuid_table {
	struct kvm_cpuid2 hdr;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

struct cpuid_params {
	unsigned vcpu_id; /* also its APIC ID */
	unsigned nr_vcpus;
	uint32_t tsc_khz; /* 0: unknown, leaf 0x40000010 reports 0 */
};

/* Rewrite `t` in place for one vCPU. Fails only if an entry must be added and there is no room. */
int cpuid_normalize(struct cpuid_table *t, const struct cpuid_params *p);
struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index);
