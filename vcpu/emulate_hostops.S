/* The allowlist of SSE floating-point instructions the emulator runs on the host (see
 * vcpu/emulate.h). Each stub is one fixed register-only instruction: operands come in through
 * scratch buffers, never guest pointers; the caller passes the guest's MXCSR with every exception
 * masked, the stub runs the instruction under it, hands back the resulting MXCSR (its flags say
 * what the instruction raised) and restores the monitor's own MXCSR before returning.
 *
 *   XMM:      void f(void *d, const void *s, uint32_t *mxcsr)        xmm0 = *d, xmm1 = *s, *d = xmm0
 *   COMIS:    void f(const void *a, const void *b, uint32_t *mxcsr, uint64_t *rflags)
 *   FROM_INT: void f(void *d, const uint64_t *s, uint32_t *mxcsr)    xmm0 = *d, rax = *s
 *   TO_INT:   void f(uint64_t *d, const void *s, uint32_t *mxcsr)    xmm1 = *s, *d = rax
 */

	.text

.macro BEGIN name
	.globl \name
	.type \name, @function
	.balign 16
\name:
	sub $8, %rsp
	stmxcsr (%rsp)
.endm

.macro END name
	ldmxcsr (%rsp)
	add $8, %rsp
	ret
	.size \name, . - \name
.endm

.macro XMM name, insn:vararg
	BEGIN \name
	movdqu (%rdi), %xmm0
	movdqu (%rsi), %xmm1
	ldmxcsr (%rdx)
	\insn
	stmxcsr (%rdx)
	movdqu %xmm0, (%rdi)
	END \name
.endm

.macro COMIS name, insn:vararg
	BEGIN \name
	movdqu (%rdi), %xmm0
	movdqu (%rsi), %xmm1
	ldmxcsr (%rdx)
	\insn
	pushfq
	popq (%rcx)
	stmxcsr (%rdx)
	END \name
.endm

.macro FROM_INT name, insn:vararg
	BEGIN \name
	movdqu (%rdi), %xmm0
	mov (%rsi), %rax
	ldmxcsr (%rdx)
	\insn
	stmxcsr (%rdx)
	movdqu %xmm0, (%rdi)
	END \name
.endm

.macro TO_INT name, insn:vararg
	BEGIN \name
	movdqu (%rsi), %xmm1
	xor %eax, %eax
	ldmxcsr (%rdx)
	\insn
	stmxcsr (%rdx)
	mov %rax, (%rdi)
	END \name
.endm

/* The four forms of an arithmetic opcode. */
.macro ARITH op
	XMM emu_host_\op\()ps, \op\()ps %xmm1, %xmm0
	XMM emu_host_\op\()pd, \op\()pd %xmm1, %xmm0
	XMM emu_host_\op\()ss, \op\()ss %xmm1, %xmm0
	XMM emu_host_\op\()sd, \op\()sd %xmm1, %xmm0
.endm

	ARITH add
	ARITH sub
	ARITH mul
	ARITH div
	ARITH min
	ARITH max
	ARITH sqrt

	XMM emu_host_rsqrtps, rsqrtps %xmm1, %xmm0
	XMM emu_host_rsqrtss, rsqrtss %xmm1, %xmm0
	XMM emu_host_rcpps, rcpps %xmm1, %xmm0
	XMM emu_host_rcpss, rcpss %xmm1, %xmm0

	XMM emu_host_cvtps2pd, cvtps2pd %xmm1, %xmm0
	XMM emu_host_cvtpd2ps, cvtpd2ps %xmm1, %xmm0
	XMM emu_host_cvtss2sd, cvtss2sd %xmm1, %xmm0
	XMM emu_host_cvtsd2ss, cvtsd2ss %xmm1, %xmm0
	XMM emu_host_cvtdq2ps, cvtdq2ps %xmm1, %xmm0
	XMM emu_host_cvtps2dq, cvtps2dq %xmm1, %xmm0
	XMM emu_host_cvttps2dq, cvttps2dq %xmm1, %xmm0
	XMM emu_host_cvttpd2dq, cvttpd2dq %xmm1, %xmm0
	XMM emu_host_cvtdq2pd, cvtdq2pd %xmm1, %xmm0
	XMM emu_host_cvtpd2dq, cvtpd2dq %xmm1, %xmm0

	XMM emu_host_haddpd, haddpd %xmm1, %xmm0
	XMM emu_host_haddps, haddps %xmm1, %xmm0
	XMM emu_host_hsubpd, hsubpd %xmm1, %xmm0
	XMM emu_host_hsubps, hsubps %xmm1, %xmm0
	XMM emu_host_addsubpd, addsubpd %xmm1, %xmm0
	XMM emu_host_addsubps, addsubps %xmm1, %xmm0

	COMIS emu_host_comiss, comiss %xmm1, %xmm0
	COMIS emu_host_comisd, comisd %xmm1, %xmm0
	COMIS emu_host_ucomiss, ucomiss %xmm1, %xmm0
	COMIS emu_host_ucomisd, ucomisd %xmm1, %xmm0

	FROM_INT emu_host_cvtsi2ss32, cvtsi2ssl %eax, %xmm0
	FROM_INT emu_host_cvtsi2ss64, cvtsi2ssq %rax, %xmm0
	FROM_INT emu_host_cvtsi2sd32, cvtsi2sdl %eax, %xmm0
	FROM_INT emu_host_cvtsi2sd64, cvtsi2sdq %rax, %xmm0

	TO_INT emu_host_cvttss2si32, cvttss2si %xmm1, %eax
	TO_INT emu_host_cvttss2si64, cvttss2si %xmm1, %rax
	TO_INT emu_host_cvtss2si32, cvtss2si %xmm1, %eax
	TO_INT emu_host_cvtss2si64, cvtss2si %xmm1, %rax
	TO_INT emu_host_cvttsd2si32, cvttsd2si %xmm1, %eax
	TO_INT emu_host_cvttsd2si64, cvttsd2si %xmm1, %rax
	TO_INT emu_host_cvtsd2si32, cvtsd2si %xmm1, %eax
	TO_INT emu_host_cvtsd2si64, cvtsd2si %xmm1, %rax

/* cmpps/cmppd/cmpss/cmpsd: one stub per predicate (legacy SSE uses imm8 bits 2:0), and a table of
 * them indexed by predicate. */
.macro CMP kind
	.irp pred, 0, 1, 2, 3, 4, 5, 6, 7
	XMM emu_host_cmp\kind\()_\pred, cmp\kind $\pred, %xmm1, %xmm0
	.endr
	.pushsection .data.rel.ro, "aw"
	.balign 8
	.globl emu_host_cmp\kind
	.type emu_host_cmp\kind, @object
emu_host_cmp\kind:
	.irp pred, 0, 1, 2, 3, 4, 5, 6, 7
	.quad emu_host_cmp\kind\()_\pred
	.endr
	.size emu_host_cmp\kind, 64
	.popsection
.endm

	CMP ps
	CMP pd
	CMP ss
	CMP sd

	.section .note.GNU-stack, "", @progbits
