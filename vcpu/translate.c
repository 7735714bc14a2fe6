/* Guest page-table walks for reports (instruction bytes at RIP). Every table entry is read
 * through the checked accessor. */
#include "vcpu/vcpu.h"
#include "common/err.h"

#include <errno.h>

#define CR0_PG	  (1ull << 31)
#define CR4_PSE	  (1ull << 4)
#define CR4_PAE	  (1ull << 5)
#define CR4_LA57  (1ull << 12)
#define EFER_LMA  (1ull << 10)
#define PTE_P	  1ull
#define PTE_PS	  0x80ull
#define ADDR_MASK 0x000ffffffffff000ull

static int read_pte64(const struct guest_mem *gm, uint64_t addr, uint64_t *pte)
{
	const uint64_t *p = gmem_ptr(gm, addr, 8);
	if (!p)
		return err_set(EFAULT, "page table entry at 0x%llx is outside guest RAM",
			       (unsigned long long)addr);
	*pte = *p;
	return 0;
}

int vcpu_translate(const struct guest_mem *gm, const struct kvm_sregs *sregs, uint64_t gva,
		   uint64_t *gpa)
{
	if (!(sregs->cr0 & CR0_PG)) {
		*gpa = gva & 0xffffffffull;
		return 0;
	}
	if (!(sregs->cr4 & CR4_PAE)) {
		/* 32-bit paging: two levels of 4-byte entries. */
		const uint32_t *pde =
		    gmem_ptr(gm, (sregs->cr3 & 0xfffff000u) + ((gva >> 22) & 0x3ff) * 4, 4);
		if (!pde || !(*pde & PTE_P))
			return err_set(EFAULT, "0x%llx is not mapped", (unsigned long long)gva);
		if ((*pde & PTE_PS) && (sregs->cr4 & CR4_PSE)) {
			*gpa = (*pde & 0xffc00000u) | (gva & 0x3fffff);
			return 0;
		}
		const uint32_t *pte =
		    gmem_ptr(gm, (*pde & 0xfffff000u) + ((gva >> 12) & 0x3ff) * 4, 4);
		if (!pte || !(*pte & PTE_P))
			return err_set(EFAULT, "0x%llx is not mapped", (unsigned long long)gva);
		*gpa = (*pte & 0xfffff000u) | (gva & 0xfff);
		return 0;
	}
	int levels;
	uint64_t table;
	if (sregs->efer & EFER_LMA) {
		levels = (sregs->cr4 & CR4_LA57) ? 5 : 4;
		table = sregs->cr3 & ADDR_MASK;
	} else {
		/* PAE: a 4-entry PDPT, then two levels. */
		uint64_t pdpte = 0;
		int r = read_pte64(gm, (sregs->cr3 & 0xffffffe0u) + ((gva >> 30) & 3) * 8, &pdpte);
		if (r < 0)
			return r;
		if (!(pdpte & PTE_P))
			return err_set(EFAULT, "0x%llx is not mapped", (unsigned long long)gva);
		levels = 2;
		table = pdpte & ADDR_MASK;
	}
	for (int level = levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		uint64_t pte = 0;
		int r = read_pte64(gm, table + ((gva >> shift) & 0x1ff) * 8, &pte);
		if (r < 0)
			return r;
		if (!(pte & PTE_P))
			return err_set(EFAULT, "0x%llx is not mapped", (unsigned long long)gva);
		if (level == 1 || ((pte & PTE_PS) && level <= 3)) {
			uint64_t page_mask = (1ull << shift) - 1;
			*gpa = (pte & ADDR_MASK & ~page_mask) | (gva & page_mask);
			return 0;
		}
		table = pte & ADDR_MASK;
	}
	return err_set(EFAULT, "0x%llx is not mapped", (unsigned long long)gva);
}
