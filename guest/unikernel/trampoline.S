/* Application processors. check_smp copies ap_trampoline to a page below
 * 1 MiB and sends INIT/SIPI/SIPI; the copy needs no patching: it only reaches
 * its own GDT descriptor through CS and jumps to absolute kernel addresses. */
#include "layout.h"

	.section .rodata.trampoline, "a"
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline: /* real mode, CS:IP = page:0 */
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	lgdtl ap_gdt_desc - ap_trampoline
	mov %cr0, %eax
	or $CR0_PE, %eax
	mov %eax, %cr0
	ljmpl $AP_CODE32_SEL, $ap_entry32
	.balign 4
ap_gdt_desc:
	.word ap_gdt_end - ap_gdt - 1
	.long ap_gdt
ap_trampoline_end:

	.balign 8
ap_gdt: /* null, flat 32-bit code, flat data */
	.quad 0
	.quad 0x00cf9b000000ffff
	.quad 0x00cf93000000ffff
ap_gdt_end:

	.text
	.code32
ap_entry32:
	mov $AP_DATA32_SEL, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $CR4_BOOT, %eax
	mov %eax, %cr4
	mov $pml4, %eax /* the BSP's tables, 1 GiB or 2 MiB pages alike */
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	lgdt gdt_desc
	mov %cr0, %eax
	or $CR0_PG, %eax
	mov %eax, %cr0
	ljmp $KCODE_SEL, $ap_entry64

	.code64
ap_entry64:
	mov $KDATA_SEL, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	lidt idt_desc
	mov $1, %eax
	lock xadd %eax, ap_next_slot(%rip)
	cmp $(MAX_CPUS - 1), %eax
	jae 1f /* more CPUs than slots: park without a stack */
	mov %eax, %edi
	inc %eax
	shl $AP_STACK_SHIFT, %eax
	lea ap_stacks(%rip), %rsp
	add %rax, %rsp
	call ap_main
1:	cli
	hlt
	jmp 1b

	.section .noinit.stacks, "aw", @nobits
	.balign 4096
ap_stacks:
	.skip (MAX_CPUS - 1) << AP_STACK_SHIFT

	.section .note.GNU-stack, "", @progbits
