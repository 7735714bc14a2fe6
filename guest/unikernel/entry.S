/* Boot entries. Both arrive at CPL0 with our code identity-mapped, switch to
 * the unikernel's own page tables, GDT, TSS and IDT, and drop to CPL3 with
 * IOPL=3. Everything here runs emulated on kvm_pvm (~440 ns an instruction),
 * so the tables are link-time constants and the path is a few dozen
 * instructions; even zeroing BSS waits for CPL3 (user_start). */
#include "layout.h"

/* PVH: XEN_ELFNOTE_PHYS32_ENTRY, in its own PT_NOTE (see linker.ld). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.long pvh_entry32

/* Without 1 GiB page support, map the first 4 GiB with 2 MiB pages instead of
 * the static PDPT's 1 GiB pages. Assembles the same in 32- and 64-bit mode. */
.macro MAP_WITH_2M_PAGES
	mov $pd_fallback, %edi
	mov $(PTE_P | PTE_W | PTE_U | PTE_PS), %eax
	mov $2048, %ecx
2:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	sub $1, %ecx
	jnz 2b
	mov $pdpt, %edi
	mov $(pd_fallback + (PTE_P | PTE_W | PTE_U)), %eax
	mov $4, %ecx
3:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $4096, %eax
	add $8, %edi
	sub $1, %ecx
	jnz 3b
	/* The static entries above 4 GiB use PS, a reserved bit here. */
	mov $(PDPT_STATIC_ENTRIES - 4), %ecx
4:	movl $0, (%edi)
	movl $0, 4(%edi)
	add $8, %edi
	sub $1, %ecx
	jnz 4b
.endm

	.section .text.entry, "ax"
	.code32
	.globl pvh_entry32
pvh_entry32:
	cli
	cld
	mov %ebx, %esi /* hvm_start_info, kept in esi into 64-bit mode */
	mov $0x80000001, %eax
	cpuid
	bt $26, %edx /* PDPE1GB */
	jc 1f
	MAP_WITH_2M_PAGES
1:	mov $pml4, %eax
	mov %eax, %cr3
	mov $CR4_BOOT, %eax
	mov %eax, %cr4
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	lgdt gdt_desc
	mov %cr0, %eax
	or $(CR0_PG | CR0_PE), %eax
	mov %eax, %cr0
	ljmp $KCODE_SEL, $pvh_entry64

	.code64
pvh_entry64:
	mov %esi, %esi /* upper halves are undefined after the mode switch */
	mov $BOOT_PROTO_PVH, %edi
	jmp common64

/* ELF e_entry: Linux 64-bit boot protocol, rsi = boot_params. */
	.globl linux64_entry
linux64_entry:
	cli
	cld
	/* Clear PGE (and SMEP/SMAP) before switching maps: no stale global,
	 * supervisor-only translations of the monitor's map may survive. */
	mov $CR4_BOOT, %eax
	mov %rax, %cr4
	mov $0x80000001, %eax
	cpuid
	bt $26, %edx
	jc 1f
	MAP_WITH_2M_PAGES
1:	mov $pml4, %eax
	mov %rax, %cr3
	mov $BOOT_PROTO_LINUX64, %edi

common64: /* edi = protocol, rsi = boot information */
	mov $kstack_top, %esp
	lgdt gdt_desc
	/* CS keeps its cached descriptor: our kernel code selector equals the
	 * one PVH and Linux-64 loaders use, and the next CS load is the iretq. */
	mov $KDATA_SEL, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $TSS_SEL, %eax
	ltr %ax
	lidt idt_desc
	pushq $(UDATA_SEL | 3)
	pushq $ustack_top
	pushq $(RFLAGS_IOPL3 | 2)
	pushq $(UCODE_SEL | 3)
	pushq $user_start
	iretq

	.text
/* CPL3 from here on; rdi/rsi still hold protocol and boot information. */
user_start:
	mov %rdi, %r12
	mov %rsi, %r13
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	rep stosb
	mov %r12, %rdi
	mov %r13, %rsi
	call user_main
	ud2

	.section .noinit.stacks, "aw", @nobits
	.balign 4096
kstack:
	.skip KSTACK_SIZE
	.globl kstack_top
kstack_top:
ustack:
	.skip USTACK_SIZE
ustack_top:

	.section .note.GNU-stack, "", @progbits
