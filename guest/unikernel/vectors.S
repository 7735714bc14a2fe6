/* Interrupt and exception entry. The stubs sit at fixed addresses
 * (VECTOR_STUBS + vector * STUB_SIZE, checked by linker.ld) so that the IDT
 * below is a link-time constant. Handlers run at CPL0, emulated on kvm_pvm:
 * they count, acknowledge and return, and leave all other work to CPL3. */
#include "layout.h"

/* Exceptions that push an error code: 8, 10-14, 17, 21, 29, 30. */
#define ERRCODE_MASK 0x60227d00

	.section .text.vectors, "ax"
	.code64
	.globl vector_stubs
vector_stubs:
	.set vec, 0
	.rept NUM_VECTORS
	.org vec * STUB_SIZE
	.if vec == VEC_TIMER
	jmp timer_isr
	.elseif vec == VEC_SERIAL
	jmp serial_isr
	.elseif (vec >= VEC_VIRTIO_BASE) && (vec < VEC_VIRTIO_BASE + VIRTIO_VECTORS)
	incq virtio_irqs + 8 * (vec - VEC_VIRTIO_BASE)(%rip)
	jmp eoi_iret
	.elseif vec == VEC_SPURIOUS
	iretq /* no EOI for a spurious interrupt */
	.elseif vec == VEC_SERVICE
	jmp service_isr
	.else
	.if (vec >= 32) || (((ERRCODE_MASK >> vec) & 1) == 0)
	pushq $0
	.endif
	pushq $vec
	jmp exception_common
	.endif
	.set vec, vec + 1
	.endr

	.org TSS_ADDR - VECTOR_STUBS
	.globl tss
tss:
	.long 0
	.quad kstack_top /* rsp0: interrupts from CPL3 */
	.quad 0, 0, 0
	.quad dfstack_top /* ist1: #DF gets a known-good stack */
	.quad 0, 0, 0, 0, 0, 0, 0
	.word 0
	.word TSS_SIZE /* I/O bitmap beyond the limit: none; IOPL=3 allows all ports */

	.text
exception_common: /* stack: vector, error code, hardware frame */
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	and $-16, %rsp
	call trap_report /* does not return */

timer_isr:
	incq lapic_ticks(%rip)
	push %rax
	mov $LAPIC_EOI, %eax
	movl $0, (%rax)
	pop %rax
	iretq

/* A virtio device interrupt: counted by its stub. The device's
 * InterruptStatus is acknowledged at CPL3 (virtio.c) before it waits again. */
eoi_iret:
	push %rax
	mov $LAPIC_EOI, %eax
	movl $0, (%rax)
	pop %rax
	iretq

serial_isr:
	push %rax
	push %rdx
	incq serial_irqs(%rip)
	mov $(COM1 + 2), %edx
	inb %dx, %al /* reading IIR acknowledges the THRE interrupt */
	mov $LAPIC_EOI, %eax
	movl $0, (%rax)
	pop %rdx
	pop %rax
	iretq

/* int $VEC_SERVICE from CPL3, eax = request. lidt and hlt are privileged.
 * SERVICE_WAIT: the caller checked for work with IF=0; sti's one-instruction
 * shadow makes "sti; hlt" atomic, so an interrupt pending since that check
 * ends the hlt at once. Its handler returns here, and iretq restores the
 * caller's IF=0. */
service_isr:
	cmp $SERVICE_WAIT, %eax
	je 3f
	cmp $SERVICE_CALL, %eax
	je 4f
	cmp $SERVICE_TRIPLE_FAULT, %eax
	je 2f
1:	cli
	hlt
	jmp 1b
2:	lidt empty_idt_desc
	ud2 /* #UD, then #GP, then #DF find no IDT: triple fault */
3:	sti
	hlt
	iretq
/* SERVICE_CALL: rdi(rsi) on the kernel stack, for checks that must run code at CPL0. The CPU
 * pushed five words onto a 16-byte-aligned stack; 8 more keep the call ABI-aligned. */
4:	mov %rdi, %rax
	mov %rsi, %rdi
	sub $8, %rsp
	call *%rax
	add $8, %rsp
	iretq

	.section .rodata.idt, "a"
	.balign 16
#define IDT_GATE(v, ist, attr) \
	.quad ((VECTOR_STUBS + (v) * STUB_SIZE) & 0xffff) | (KCODE_SEL << 16) | \
	      ((ist) << 32) | ((attr) << 40) | \
	      (((VECTOR_STUBS + (v) * STUB_SIZE) >> 16) << 48); \
	.quad 0
idt:
	.set vec, 0
	.rept NUM_VECTORS
	.if vec == 8
	IDT_GATE(vec, 1, 0x8e)
	.elseif vec == VEC_SERVICE
	IDT_GATE(vec, 0, 0xee) /* DPL3: reachable by int from CPL3 */
	.else
	IDT_GATE(vec, 0, 0x8e)
	.endif
	.set vec, vec + 1
	.endr
idt_end:
	.balign 8
	.word 0, 0, 0
	.globl idt_desc
idt_desc:
	.word idt_end - idt - 1
	.quad idt
	.word 0, 0, 0
empty_idt_desc:
	.word 0
	.quad 0

	.section .noinit.stacks, "aw", @nobits
	.balign 16
	.skip DFSTACK_SIZE
dfstack_top:

	.section .note.GNU-stack, "", @progbits
