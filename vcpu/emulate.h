/* Instruction emulation for the instructions KVM's own emulator cannot run (kvm_pvm runs all
 * guest CPL0 code through that emulator; see ARCHITECTURE.md). This is the pure part: a decoder
 * and an executor that work on a plain-data CPU state and reach guest memory only through the
 * page tables and the checked accessor (RAM) or an MMIO callback (everything else). The KVM
 * glue that feeds it lives in vcpu/emulate_kvm.h.
 *
 * Forms covered (opcode bytes; "/r" any ModRM, "/n" ModRM.reg = n, "m" memory operand only):
 *   MXCSR, XCR0, save areas
 *     0f ae /2 m ldmxcsr           0f ae /3 m stmxcsr          0f 01 d0 xgetbv
 *     0f ae /0 m fxsave[64]        0f ae /1 m fxrstor[64]
 *     0f ae /4 m xsave[64]         0f ae /5 m xrstor[64]       0f ae /6 m xsaveopt[64]
 *     0f c7 /4 m xsavec[64]        0f c7 /5 m xsaves[64]       0f c7 /3 m xrstors[64]
 *   integer and system
 *     f3 0f b8 /r popcnt           [f0] 0f c7 /1 m cmpxchg8b, REX.W: cmpxchg16b
 *     cc int3 (#BP delivered through the IDT in 64-bit mode)
 *     0f 01 ca clac                0f 01 cb stac
 *     0f ae e8 lfence              0f ae f0 mfence             0f ae f8 sfence
 *     0f c7 /6 rdrand, 0f c7 /7 rdseed (register; CF=0 when the host has no entropy at once)
 *     0f 01 f9 rdtscp
 *     66 0f ae /6 m clwb           66 0f ae /7 m clflushopt    0f c3 m movnti
 *   SSE/SSE2/SSE3 moves (computed here)
 *     0f 10/11 movups     66 0f 10/11 movupd    f3 0f 10/11 movss     f2 0f 10/11 movsd
 *     0f 12/13 movlps, movhlps (reg)   66 0f 12/13 movlpd   0f 16/17 movhps, movlhps (reg)
 *     66 0f 16/17 movhpd  0f 28/29 movaps       66 0f 28/29 movapd    0f 2b movntps
 *     66 0f 2b movntpd    66 0f 6f/7f movdqa    f3 0f 6f/7f movdqu    66 0f e7 movntdq
 *     66 0f 6e movd/movq (REX.W) to xmm         66 0f 7e movd/movq from xmm
 *     f3 0f 7e movq xmm/m64 to xmm              66 0f d6 movq xmm to xmm/m64
 *     0f 50 movmskps      66 0f 50 movmskpd     66 0f d7 pmovmskb     f2 0f f0 lddqu
 *     f2 0f 12 movddup    f3 0f 12 movsldup     f3 0f 16 movshdup
 *     66 0f c4 pinsrw     66 0f c5 pextrw       66 0f 3a 14/15/16/20/22 pextrb/w/d/q, pinsrb/d/q
 *   SSE2 integer, logic and shuffles (computed here)
 *     66 0f 60-6d punpck{l,h}{bw,wd,dq,qdq}, packsswb, packssdw, packuswb, pcmpgt{b,w,d}
 *     66 0f 70 pshufd     f3 0f 70 pshufhw      f2 0f 70 pshuflw
 *     66 0f 71/72/73 /2,/4,/6 (/3,/7) shifts by imm8 (psrldq, pslldq)
 *     66 0f 74-76 pcmpeq{b,w,d}   66 0f d1-d5, d8-ff: shifts by xmm, paddq, pmullw, psubus,
 *       pminub, pand, paddus, pmaxub, pandn, pavg, pmulhuw, pmulhw, psubs, pminsw, por, padds,
 *       pmaxsw, pxor, pmuludq, pmaddwd, psadbw, psub{b,w,d,q}, padd{b,w,d}
 *     [66] 0f 54-57 and, andn, or, xor (ps/pd)   [66] 0f 14/15 unpck{l,h}{ps,pd}
 *     [66] 0f c6 shufps/shufpd
 *     SSSE3/SSE4.1: 66 0f 38 00 pshufb, 1c-1e pabs, 10/14/15 pblendvb/blendvps/blendvpd,
 *       17 ptest, 20-25/30-35 pmovsx/pmovzx, 28 pmuldq, 29 pcmpeqq, 2b packusdw, 37 pcmpgtq,
 *       38-3f pmin/pmax, 40 pmulld; 66 0f 3a 0c/0d/0e blendps/pd, pblendw, 0f palignr
 *   SSE/SSE2 floating point (run on the host, see below)
 *     [66|f3|f2] 0f 51 sqrt, 58 add, 59 mul, 5c sub, 5d min, 5e div, 5f max
 *     0f 52 rsqrtps, f3 0f 52 rsqrtss, 0f 53 rcpps, f3 0f 53 rcpss
 *     [66|f3|f2] 0f c2 cmp (predicates 0-7)   [66] 0f 2e ucomis, 2f comis
 *     0f 5a cvtps2pd, 66 cvtpd2ps, f3 cvtss2sd, f2 cvtsd2ss
 *     0f 5b cvtdq2ps, 66 cvtps2dq, f3 cvttps2dq  66 0f e6 cvttpd2dq, f3 cvtdq2pd, f2 cvtpd2dq
 *     f3/f2 0f 2a cvtsi2ss/sd, 2c cvtt{ss,sd}2si, 2d cvt{ss,sd}2si (REX.W: 64-bit integer)
 *     66 0f 7c/7d haddpd/hsubpd, f2 0f 7c/7d haddps/hsubps, 66/f2 0f d0 addsubpd/ps
 *
 * Floating-point forms are the only ones executed on the host, and only as fixed register-only
 * instructions compiled into emulate_hostops.S (no guest byte is ever executed): operands are
 * copied into scratch buffers, the guest's MXCSR is loaded with every exception masked, and the
 * exceptions the instruction raised are then checked against the guest's masks: an unmasked one
 * becomes #XM (CR4.OSXMMEXCPT) or #UD for the guest, never a SIGFPE in the monitor.
 *
 * Not covered: VEX/EVEX (AVX) encodings, MMX forms, x87 arithmetic, 16-bit addressing, segment
 * limit checks, memory protection keys. Anything unknown is reported, never guessed. */
#pragma once

#include "memory/guest_mem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Segment registers in their encoding order (ModRM/segment-override numbering). */
enum emu_seg { EMU_ES, EMU_CS, EMU_SS, EMU_DS, EMU_FS, EMU_GS, EMU_NSEG };

struct emu_segment {
	uint64_t base;
	uint16_t selector;
	uint8_t dpl;
	bool l;	 /* 64-bit code segment */
	bool db; /* default operand size 32 */
};

/* The XSAVE layout, from CPUID leaf 0xd. Under KVM the guest sees the host's offsets. */
struct emu_xlayout {
	uint64_t xcr0_mask; /* user components the CPU supports */
	uint64_t xss_mask;  /* supervisor components */
	uint64_t align64;   /* components 64-byte aligned in the compacted format */
	uint32_t offset[64];
	uint32_t size[64];
	uint32_t mxcsr_mask;
	bool xsaveopt, xsavec, xgetbv1, xsaves;
};

/* Fill `l` from this CPU's CPUID (and FXSAVE for the MXCSR mask). */
void emu_xlayout_from_host(struct emu_xlayout *l);

/* Offsets in the XSAVE (and FXSAVE) image. */
#define EMU_FX_FCW	    0
#define EMU_FX_MXCSR	    24
#define EMU_FX_MXCSR_MASK   28
#define EMU_FX_XMM(i)	    (160 + 16 * (i))
#define EMU_XSAVE_HDR	    512 /* XSTATE_BV, then XCOMP_BV */
#define EMU_XSAVE_EXT	    576 /* first extended component in the compacted format */
#define EMU_XSAVE_MIN_SIZE  576
#define EMU_XFEATURE_X87    (1ull << 0)
#define EMU_XFEATURE_SSE    (1ull << 1)
#define EMU_XFEATURE_YMM    (1ull << 2)
#define EMU_XCOMP_COMPACTED (1ull << 63)

/* The vCPU state the executor reads and writes. `fpu` is the vCPU's XSAVE image in the standard
 * (non-compacted) format, as KVM_GET_XSAVE gives it: x87 and SSE state in the legacy region,
 * XSTATE_BV at byte 512, the other components at their CPUID offsets. */
struct emu_cpu {
	uint64_t gpr[16]; /* rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15 */
	uint64_t rip;
	uint64_t rflags;
	uint64_t cr0, cr2, cr3, cr4, efer;
	struct emu_segment seg[EMU_NSEG];
	uint64_t gdt_base, idt_base, tr_base;
	uint16_t gdt_limit, idt_limit;
	unsigned cpl;
	uint64_t xcr0, xss;
	uint64_t tsc, tsc_aux; /* for rdtscp (EMU_NEED_TSC) */
	uint8_t *fpu;	       /* NULL when the instruction needs none (see emu_needs) */
	size_t fpu_size;
	const struct emu_xlayout *xlayout;
	unsigned dirty; /* EMU_DIRTY_* the executor changed */
};

#define EMU_DIRTY_REGS	(1u << 0) /* GPRs, RIP, RFLAGS */
#define EMU_DIRTY_FPU	(1u << 1)
#define EMU_DIRTY_SREGS (1u << 2) /* CS (an exception delivered through the IDT) */

/* Guest memory: RAM through `gm`, any other physical address through `mmio` (at most 8 bytes a
 * call, as KVM's own MMIO exits). */
struct emu_mem {
	const struct guest_mem *gm;
	void (*mmio)(void *ctx, uint64_t gpa, uint8_t *data, uint32_t len, bool is_write);
	void *ctx;
};

enum emu_need {
	EMU_NEED_FPU = 1u << 0,
	EMU_NEED_XCR0 = 1u << 1,
	EMU_NEED_XSS = 1u << 2,
	EMU_NEED_TSC = 1u << 3, /* the guest's TSC and TSC_AUX, read as late as possible */
};

#define EMU_MAX_INSN 15

struct emu_form;

/* A decoded instruction. */
struct emu_insn {
	const struct emu_form *form;
	uint8_t bytes[EMU_MAX_INSN];
	uint8_t len;
	uint8_t opsize, addrsize; /* 2, 4 or 8 bytes */
	bool lock, rex_w, long64;
	uint8_t rex;	      /* 0x40-0x4f, 0 if none */
	int8_t seg;	      /* segment override, -1 if none */
	uint8_t mod, reg, rm; /* reg and rm include REX.R/REX.B */
	bool mem;	      /* the r/m operand is memory */
	int8_t base, index;   /* GPR numbers, -1 if none; base 16 = RIP-relative */
	uint8_t scale;
	int64_t disp;
	uint8_t imm;
};

/* Decode from `bytes` (`len` of them available) in the CPU's current mode. Returns 0, -EAGAIN
 * when the instruction runs past `len`, or a negative errno with err_msg() naming what is not
 * supported. */
int emu_decode(const struct emu_cpu *cpu, const uint8_t *bytes, size_t len, struct emu_insn *insn);
/* Which state beyond registers and segments the executor needs for `insn`. */
unsigned emu_needs(const struct emu_insn *insn);
/* The instruction's name ("pxor", "xsaveopt") and its form's index, for counters. */
const char *emu_insn_name(const struct emu_insn *insn);
unsigned emu_insn_form_index(const struct emu_insn *insn);
unsigned emu_form_count(void);
const char *emu_form_name(unsigned index);

enum emu_status {
	EMU_DONE,	 /* effect applied, RIP moved on */
	EMU_FAULT,	 /* raise `fault` at the instruction; nothing else changed */
	EMU_UNSUPPORTED, /* err_msg() says why */
};

struct emu_fault {
	uint8_t vector;
	bool has_error;
	uint32_t error;
	uint64_t cr2; /* for #PF */
};

#define EMU_VEC_DE 0
#define EMU_VEC_BP 3
#define EMU_VEC_UD 6
#define EMU_VEC_NM 7
#define EMU_VEC_SS 12
#define EMU_VEC_GP 13
#define EMU_VEC_PF 14
#define EMU_VEC_XM 19

enum emu_status emu_execute(struct emu_cpu *cpu, const struct emu_insn *insn,
			    const struct emu_mem *mem, struct emu_fault *fault);

/* Translate a linear address for an instruction fetch at the CPU's privilege, for fetching
 * instruction bytes KVM did not hand over. EMU_FAULT sets a #PF in `fault`. */
enum emu_status emu_fetch(const struct emu_cpu *cpu, const struct emu_mem *mem, uint64_t linear,
			  uint8_t *buf, size_t len, struct emu_fault *fault);
