#include "vcpu/cpuid.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

/* A supported table as KVM might hand it over on a host whose CPU 5 ran the ioctl. */
static void host_table(struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	struct kvm_cpuid_entry2 e[] = {
	    {.function = 0, .eax = 0x1f, .ebx = 0x756e6547 /* Genu */},
	    {.function = 1,
	     .eax = 0x806f8,
	     .ebx = (5u << 24) | (64u << 16) | 0x0800,
	     .ecx = 0x7ffafbbf,
	     .edx = 0x1fabfbff},
	    {.function = 4,
	     .index = 0,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .eax = 0xfc004121},
	    {.function = 4,
	     .index = 3,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .eax = 0xfc07c163},
	    {.function = 4, .index = 4, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0},
	    {.function = 0xa, .eax = 0x07300805, .edx = 0x8603},
	    {.function = 0xb,
	     .index = 0,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .eax = 1,
	     .ebx = 2,
	     .ecx = 0x100,
	     .edx = 5},
	    {.function = 0xb,
	     .index = 1,
	     .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	     .eax = 7,
	     .ebx = 112,
	     .ecx = 0x201,
	     .edx = 5},
	    {.function = 0x40000000, .eax = 0x40000001},
	    {.function = 0x40000001, .eax = 0x01007afb},
	};
	memcpy(t->entries, e, sizeof(e));
	t->hdr.nent = sizeof(e) / sizeof(e[0]);
}

Test(cpuid, apic_id_is_the_vcpus_own)
{
	for (unsigned id = 0; id < 4; id++) {
		struct cpuid_table t;
		host_table(&t);
		struct cpuid_params p = {.vcpu_id = id, .nr_vcpus = 4, .tsc_khz = 2600000};
		cr_assert(eq(int, cpuid_normalize(&t, &p), 0));
		struct kvm_cpuid_entry2 *l1 = cpuid_find(&t, 1, 0);
		cr_assert(eq(u32, l1->ebx >> 24, id), "leaf 1 APIC ID");
		cr_assert(eq(u32, (l1->ebx >> 16) & 0xff, 4), "logical processor count");
		cr_assert(eq(u32, l1->ebx & 0xffff, 0x0800), "CLFLUSH size kept");
		cr_assert(ne(u32, l1->ecx & (1u << 31), 0), "hypervisor bit");
		cr_assert(ne(u32, l1->edx & (1u << 28), 0), "HTT for several CPUs");
		cr_assert(eq(u32, cpuid_find(&t, 0xb, 0)->edx, id), "x2APIC ID, level 0");
		cr_assert(eq(u32, cpuid_find(&t, 0xb, 1)->edx, id), "x2APIC ID, level 1");
	}
}

Test(cpuid, topology_is_one_package_of_single_thread_cores)
{
	struct cpuid_table t;
	host_table(&t);
	struct cpuid_params p = {.vcpu_id = 1, .nr_vcpus = 3};
	cr_assert(eq(int, cpuid_normalize(&t, &p), 0));
	struct kvm_cpuid_entry2 *smt = cpuid_find(&t, 0xb, 0), *core = cpuid_find(&t, 0xb, 1);
	cr_assert(eq(u32, smt->ebx, 1));
	cr_assert(eq(u32, smt->eax, 0));
	cr_assert(eq(u32, core->ebx, 3));
	cr_assert(eq(u32, core->eax, 2), "shift covers 3 CPUs");
	cr_assert(eq(u32, (core->ecx >> 8) & 0xff, 2), "core level type");
	cr_assert(eq(u32, cpuid_find(&t, 4, 0)->eax >> 26, 2), "cores per package - 1");
	cr_assert(eq(u32, (cpuid_find(&t, 4, 0)->eax >> 14) & 0xfff, 0), "L1 per core");
	cr_assert(eq(u32, (cpuid_find(&t, 4, 3)->eax >> 14) & 0xfff, 2), "L3 shared by all");
	cr_assert(eq(u32, cpuid_find(&t, 4, 4)->eax, 0), "terminator untouched");
	cr_assert(eq(u32, cpuid_find(&t, 0xa, 0)->eax, 0), "no PMU");
}

Test(cpuid, single_vcpu_has_no_htt)
{
	struct cpuid_table t;
	host_table(&t);
	struct cpuid_params p = {.vcpu_id = 0, .nr_vcpus = 1};
	cr_assert(eq(int, cpuid_normalize(&t, &p), 0));
	cr_assert(eq(u32, cpuid_find(&t, 1, 0)->edx & (1u << 28), 0));
}

Test(cpuid, kvm_leaves_and_tsc_frequency)
{
	struct cpuid_table t;
	host_table(&t);
	struct cpuid_params p = {.vcpu_id = 0, .nr_vcpus = 1, .tsc_khz = 2600000};
	cr_assert(eq(int, cpuid_normalize(&t, &p), 0));
	struct kvm_cpuid_entry2 *hv = cpuid_find(&t, 0x40000000, 0);
	cr_assert(eq(u32, hv->eax, 0x40000010));
	char sig[13] = {0};
	memcpy(sig, &hv->ebx, 4);
	memcpy(sig + 4, &hv->ecx, 4);
	memcpy(sig + 8, &hv->edx, 4);
	cr_assert(eq(str, sig, "KVMKVMKVM"));
	cr_assert(eq(u32, cpuid_find(&t, 0x40000001, 0)->eax, 0x01007afb), "KVM features kept");
	struct kvm_cpuid_entry2 *tim = cpuid_find(&t, 0x40000010, 0);
	cr_assert(not(eq(ptr, tim, NULL)));
	cr_assert(eq(u32, tim->eax, 2600000));
	cr_assert(eq(u32, tim->ebx, 1000000));
}

Test(cpuid, full_table_reports_no_room)
{
	struct cpuid_table t;
	memset(&t, 0, sizeof(t));
	t.hdr.nent = CPUID_MAX_ENTRIES;
	for (unsigned i = 0; i < CPUID_MAX_ENTRIES; i++)
		t.entries[i].function = 0x80000000 + i;
	struct cpuid_params p = {.vcpu_id = 0, .nr_vcpus = 1};
	cr_assert(lt(int, cpuid_normalize(&t, &p), 0));
}
