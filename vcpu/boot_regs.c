#include "vcpu/boot_regs.h"
#include "memory/layout.h"
#include "common/err.h"

#include <string.h>

#define CR0_PE	 (1ull << 0)
#define CR0_ET	 (1ull << 4)
#define CR0_NE	 (1ull << 5)
#define CR0_PG	 (1ull << 31)
#define CR4_PAE	 (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define PTE_PRESENT 0x1ull
#define PTE_RW	    0x2ull
#define PTE_PS	    0x80ull

enum { GDT_NULL, GDT_CODE, GDT_DATA, GDT_TSS, GDT_ENTRIES };
#define SEL_CODE (GDT_CODE * 8)
#define SEL_DATA (GDT_DATA * 8)
#define SEL_TSS	 (GDT_TSS * 8)

/* flags: bits 52-55 (G, D/B, L, AVL) and access byte bits 40-47 of a descriptor. */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

static const uint16_t CODE64_FLAGS = 0xa09b; /* G, L, present, code exec/read accessed */
static const uint16_t CODE32_FLAGS = 0xc09b; /* G, D */
static const uint16_t DATA_FLAGS = 0xc093;
static const uint16_t TSS_FLAGS = 0x808b; /* G, present, busy 64-bit TSS */

static struct kvm_segment segment_from(uint64_t desc, uint16_t selector)
{
	struct kvm_segment s = {
	    .base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24),
	    .limit = (uint32_t)((desc & 0xffff) | (((desc >> 48) & 0xf) << 16)),
	    .selector = selector,
	    .type = (desc >> 40) & 0xf,
	    .present = (desc >> 47) & 1,
	    .dpl = (desc >> 45) & 3,
	    .db = (desc >> 54) & 1,
	    .s = (desc >> 44) & 1,
	    .l = (desc >> 53) & 1,
	    .g = (desc >> 55) & 1,
	};
	if (s.g) /* KVM wants the limit in bytes */
		s.limit = (s.limit << 12) | 0xfff;
	return s;
}

static void gdt_build(uint64_t gdt[GDT_ENTRIES], bool long_mode)
{
	gdt[GDT_NULL] = 0;
	gdt[GDT_CODE] = gdt_entry(long_mode ? CODE64_FLAGS : CODE32_FLAGS, 0, 0xfffff);
	gdt[GDT_DATA] = gdt_entry(DATA_FLAGS, 0, 0xfffff);
	gdt[GDT_TSS] = gdt_entry(TSS_FLAGS, 0, 0xfffff);
}

static int write_gdt(struct guest_mem *gm, bool long_mode)
{
	uint64_t gdt[GDT_ENTRIES];
	gdt_build(gdt, long_mode);
	/* An empty IDT follows the GDT; guests load their own before enabling interrupts. */
	uint64_t idt = 0;
	int r = gmem_write(gm, LAYOUT_GDT_ADDR, gdt, sizeof(gdt));
	if (r == 0)
		r = gmem_write(gm, LAYOUT_GDT_ADDR + sizeof(gdt), &idt, sizeof(idt));
	return r < 0 ? err_wrap(r, "writing the boot GDT") : 0;
}

int boot_write_pvh_gdt(struct guest_mem *gm)
{
	return write_gdt(gm, false);
}

int boot_write_long_mode_tables(struct guest_mem *gm)
{
	int r = write_gdt(gm, true);
	if (r < 0)
		return r;
	uint64_t *pml4 = gmem_ptr(gm, LAYOUT_PML4_ADDR, 4096);
	uint64_t *pdpt = gmem_ptr(gm, LAYOUT_PDPT_ADDR, 4096);
	uint64_t *pd = gmem_ptr(gm, LAYOUT_PD_ADDR, 4096);
	if (!pml4 || !pdpt || !pd)
		return err_set(-14, "no guest RAM for the boot page tables");
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT_ADDR | PTE_PRESENT | PTE_RW;
	pdpt[0] = LAYOUT_PD_ADDR | PTE_PRESENT | PTE_RW;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | PTE_PRESENT | PTE_RW | PTE_PS;
	return 0;
}

static void set_segments(struct kvm_sregs *sregs, bool long_mode)
{
	uint64_t gdt[GDT_ENTRIES];
	gdt_build(gdt, long_mode);
	struct kvm_segment data = segment_from(gdt[GDT_DATA], SEL_DATA);
	sregs->cs = segment_from(gdt[GDT_CODE], SEL_CODE);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = segment_from(gdt[GDT_TSS], SEL_TSS);
	sregs->gdt.base = LAYOUT_GDT_ADDR;
	sregs->gdt.limit = sizeof(gdt) - 1;
	sregs->idt.base = LAYOUT_GDT_ADDR + sizeof(gdt);
	sregs->idt.limit = 7;
}

void boot_regs_long_mode(struct kvm_sregs *sregs, struct kvm_regs *regs, uint64_t entry,
			 uint64_t boot_params)
{
	set_segments(sregs, true);
	sregs->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	sregs->cr3 = LAYOUT_PML4_ADDR;
	sregs->cr4 = CR4_PAE;
	sregs->efer = EFER_LME | EFER_LMA;
	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;
	regs->rip = entry;
	regs->rsi = boot_params;
	regs->rsp = regs->rbp = LAYOUT_BOOT_STACK_ADDR;
}

void boot_regs_pvh(struct kvm_sregs *sregs, struct kvm_regs *regs, uint64_t entry,
		   uint64_t start_info)
{
	set_segments(sregs, false);
	sregs->cr0 = CR0_PE | CR0_ET | CR0_NE;
	sregs->cr3 = 0;
	sregs->cr4 = 0;
	sregs->efer = 0;
	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;
	regs->rip = entry;
	regs->rbx = start_info;
}
