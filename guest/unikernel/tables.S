/* Descriptor and page tables, all link-time constants so that the emulated
 * CPL0 boot path only loads them. */
#include "layout.h"

	.section .data.tables, "aw"
	.balign 4096
	.globl pml4, pdpt
pml4:
	.quad pdpt + (PTE_P | PTE_W | PTE_U)
	.fill 511, 8, 0
/* Identity map with the User bit everywhere, so that the CPL3 checks reach
 * RAM and the MMIO gap (boot timer, IOAPIC, LAPIC) directly. */
pdpt:
	.quad 0x00000000 + (PTE_P | PTE_W | PTE_U | PTE_PS)
	.quad 0x40000000 + (PTE_P | PTE_W | PTE_U | PTE_PS)
	.quad 0x80000000 + (PTE_P | PTE_W | PTE_U | PTE_PS)
	.quad 0xc0000000 + (PTE_P | PTE_W | PTE_U | PTE_PS | PTE_PCD | PTE_PWT)
	.set gib, 4
	.rept PDPT_STATIC_ENTRIES - 4
	.quad (gib << 30) + (PTE_P | PTE_W | PTE_U | PTE_PS)
	.set gib, gib + 1
	.endr
	.fill 512 - PDPT_STATIC_ENTRIES, 8, 0

	.globl gdt, gdt_desc
	.balign 16
/* Accessed bits preset: the CPU then never writes these descriptors. */
gdt:
	.quad 0
	.quad 0x00af9b000000ffff /* KCODE_SEL: 64-bit code, DPL0 */
	.quad 0x00cf93000000ffff /* KDATA_SEL */
	.quad 0x00cff3000000ffff /* UDATA_SEL: DPL3 */
	.quad 0x00affb000000ffff /* UCODE_SEL: 64-bit code, DPL3 */
	.quad (TSS_SIZE - 1) | ((TSS_ADDR & 0xffffff) << 16) | (0x89 << 40) | ((TSS_ADDR >> 24) << 56)
	.quad 0
gdt_end:
	.balign 8
	.word 0
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.section .noinit.pagetables, "aw", @nobits
	.balign 4096
	.globl pd_fallback
pd_fallback: /* four directories, written only when 1 GiB pages are missing */
	.skip 4 * 4096

	.section .note.GNU-stack, "", @progbits
