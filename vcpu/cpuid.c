#include "vcpu/cpuid.h"
#include "common/err.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define LEAF_FEATURES	  0x1
#define LEAF_CACHE	  0x4
#define LEAF_PMU	  0xa
#define LEAF_TOPOLOGY	  0xb
#define LEAF_TOPOLOGY_V2  0x1f
#define LEAF_HV_BASE	  0x40000000
#define LEAF_HV_FEATURES  0x40000001
#define LEAF_HV_TIMING	  0x40000010
#define LEAF_AMD_SIZES	  0x80000008
#define LEAF_AMD_TOPOLOGY 0x8000001e

#define ECX_HYPERVISOR (1u << 31)
#define EDX_HTT	       (1u << 28)

#define APIC_BUS_KHZ 1000000 /* KVM's LAPIC timer ticks at 1 GHz */

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < t->hdr.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

static struct kvm_cpuid_entry2 *find_or_add(struct cpuid_table *t, uint32_t function)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(t, function, 0);
	if (e)
		return e;
	if (t->hdr.nent >= CPUID_MAX_ENTRIES)
		return NULL;
	e = &t->entries[t->hdr.nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	return e;
}

/* Bits needed to number n things (the x2APIC ID shift of a topology level). */
static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void set_topology_leaf(struct kvm_cpuid_entry2 *e, const struct cpuid_params *p)
{
	/* Level 0: SMT, one thread per core. Level 1: cores, all vCPUs in one package. */
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | 0;
		break;
	case 1:
		e->eax = bits_for(p->nr_vcpus);
		e->ebx = p->nr_vcpus;
		e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index;
		break;
	}
	e->edx = p->vcpu_id;
}

int cpuid_normalize(struct cpuid_table *t, const struct cpuid_params *p)
{
	struct kvm_cpuid_entry2 *leaf0 = cpuid_find(t, 0, 0);
	bool amd = leaf0 && leaf0->ebx == 0x68747541; /* "Auth" of AuthenticAMD */

	for (uint32_t i = 0; i < t->hdr.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		switch (e->function) {
		case LEAF_FEATURES:
			/* APIC ID, logical processor count, CLFLUSH size and brand index kept. */
			e->ebx = (e->ebx & 0xffff) | ((p->vcpu_id & 0xff) << 24) |
				 ((p->nr_vcpus & 0xff) << 16);
			e->ecx |= ECX_HYPERVISOR;
			if (p->nr_vcpus > 1)
				e->edx |= EDX_HTT;
			else
				e->edx &= ~EDX_HTT;
			break;
		case LEAF_CACHE: {
			unsigned level = (e->eax >> 5) & 7;
			unsigned sharing = level >= 3 ? p->nr_vcpus : 1;
			e->eax &= 0x3ff;
			if (e->eax & 0x1f) /* a real cache, not the terminating null entry */
				e->eax |= ((p->nr_vcpus - 1) << 26) | ((sharing - 1) << 14);
			break;
		}
		case LEAF_PMU:
			/* No virtual PMU: guests must not program counters that are not there. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case LEAF_TOPOLOGY:
		case LEAF_TOPOLOGY_V2:
			set_topology_leaf(e, p);
			break;
		case LEAF_AMD_SIZES:
			if (amd)
				e->ecx = (e->ecx & ~0xffu) | ((p->nr_vcpus - 1) & 0xff);
			break;
		case LEAF_AMD_TOPOLOGY:
			e->eax = p->vcpu_id;
			e->ebx = p->vcpu_id & 0xff; /* compute unit id; one thread per unit */
			e->ecx = 0;		    /* node 0 */
			break;
		default:
			break;
		}
	}

	struct kvm_cpuid_entry2 *hv = find_or_add(t, LEAF_HV_BASE);
	if (!hv)
		return err_set(ENOSPC, "CPUID table full");
	hv->eax = LEAF_HV_TIMING;
	memcpy(&hv->ebx, "KVMK", 4);
	memcpy(&hv->ecx, "VMKV", 4);
	memcpy(&hv->edx, "M\0\0\0", 4);
	if (!find_or_add(t, LEAF_HV_FEATURES))
		return err_set(ENOSPC, "CPUID table full");
	struct kvm_cpuid_entry2 *timing = find_or_add(t, LEAF_HV_TIMING);
	if (!timing)
		return err_set(ENOSPC, "CPUID table full");
	timing->eax = p->tsc_khz;
	timing->ebx = APIC_BUS_KHZ;
	timing->ecx = timing->edx = 0;
	return 0;
}
