/* For the emulator's unit tests: the host CPU as the reference (the same instruction bytes run
 * natively from an executable page, with every register loaded from and saved to a plain struct,
 * and faults caught as signals), and a small long-mode guest (page tables, memory, an MMIO
 * window) for the emulator to run the same bytes in. */
#pragma once

#include "vcpu/emulate.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };

struct native_state {
	uint64_t gpr[16];
	uint64_t rflags;
	uint32_t mxcsr;
	uint32_t pad;
	uint8_t xmm[16][16];
};
_Static_assert(offsetof(struct native_state, rflags) == 128, "asm offsets");
_Static_assert(offsetof(struct native_state, mxcsr) == 136, "asm offsets");
_Static_assert(offsetof(struct native_state, xmm) == 144, "asm offsets");

/* Arithmetic flags only: the rest (IF, DF, AC, TF) must keep their values in the test process. */
#define FLAGS_ARITH 0x8d5ull

/* native_enter(state, code): load every register from *state, jump to code, which ends with a
 * jump to native_exit, which saves every register back and returns. RSP is left alone. */
__asm__(".text\n"
	".globl native_enter\n"
	"native_enter:\n"
	"push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"mov %rsp, native_saved_rsp(%rip)\n"
	"mov %rdi, native_cur(%rip)\n"
	"mov %rsi, native_code(%rip)\n"
	"stmxcsr native_host_mxcsr(%rip)\n"
	"movdqu 144(%rdi), %xmm0\n movdqu 160(%rdi), %xmm1\n movdqu 176(%rdi), %xmm2\n"
	"movdqu 192(%rdi), %xmm3\n movdqu 208(%rdi), %xmm4\n movdqu 224(%rdi), %xmm5\n"
	"movdqu 240(%rdi), %xmm6\n movdqu 256(%rdi), %xmm7\n movdqu 272(%rdi), %xmm8\n"
	"movdqu 288(%rdi), %xmm9\n movdqu 304(%rdi), %xmm10\n movdqu 320(%rdi), %xmm11\n"
	"movdqu 336(%rdi), %xmm12\n movdqu 352(%rdi), %xmm13\n movdqu 368(%rdi), %xmm14\n"
	"movdqu 384(%rdi), %xmm15\n"
	"ldmxcsr 136(%rdi)\n"
	"pushq 128(%rdi)\n popfq\n"
	"mov 0(%rdi), %rax\n mov 8(%rdi), %rcx\n mov 16(%rdi), %rdx\n mov 24(%rdi), %rbx\n"
	"mov 40(%rdi), %rbp\n mov 48(%rdi), %rsi\n mov 64(%rdi), %r8\n mov 72(%rdi), %r9\n"
	"mov 80(%rdi), %r10\n mov 88(%rdi), %r11\n mov 96(%rdi), %r12\n mov 104(%rdi), %r13\n"
	"mov 112(%rdi), %r14\n mov 120(%rdi), %r15\n mov 56(%rdi), %rdi\n"
	"jmp *native_code(%rip)\n"
	".globl native_exit\n"
	"native_exit:\n"
	"pushfq\n"
	"mov %rdi, native_tmp(%rip)\n"
	"mov native_cur(%rip), %rdi\n"
	"popq 128(%rdi)\n"
	"mov %rax, 0(%rdi)\n mov %rcx, 8(%rdi)\n mov %rdx, 16(%rdi)\n mov %rbx, 24(%rdi)\n"
	"mov %rbp, 40(%rdi)\n mov %rsi, 48(%rdi)\n mov %r8, 64(%rdi)\n mov %r9, 72(%rdi)\n"
	"mov %r10, 80(%rdi)\n mov %r11, 88(%rdi)\n mov %r12, 96(%rdi)\n mov %r13, 104(%rdi)\n"
	"mov %r14, 112(%rdi)\n mov %r15, 120(%rdi)\n"
	"mov native_tmp(%rip), %rax\n mov %rax, 56(%rdi)\n"
	"movdqu %xmm0, 144(%rdi)\n movdqu %xmm1, 160(%rdi)\n movdqu %xmm2, 176(%rdi)\n"
	"movdqu %xmm3, 192(%rdi)\n movdqu %xmm4, 208(%rdi)\n movdqu %xmm5, 224(%rdi)\n"
	"movdqu %xmm6, 240(%rdi)\n movdqu %xmm7, 256(%rdi)\n movdqu %xmm8, 272(%rdi)\n"
	"movdqu %xmm9, 288(%rdi)\n movdqu %xmm10, 304(%rdi)\n movdqu %xmm11, 320(%rdi)\n"
	"movdqu %xmm12, 336(%rdi)\n movdqu %xmm13, 352(%rdi)\n movdqu %xmm14, 368(%rdi)\n"
	"movdqu %xmm15, 384(%rdi)\n"
	"stmxcsr 136(%rdi)\n"
	"ldmxcsr native_host_mxcsr(%rip)\n"
	"mov native_saved_rsp(%rip), %rsp\n"
	"pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"ret\n"
	".data\n"
	".balign 8\n"
	"native_saved_rsp: .quad 0\n"
	"native_cur: .quad 0\n"
	"native_code: .quad 0\n"
	"native_tmp: .quad 0\n"
	"native_host_mxcsr: .long 0\n"
	".text\n");

void native_enter(struct native_state *s, const void *code);
void native_exit(void);
extern uint32_t native_host_mxcsr;

static sigjmp_buf native_jmp;
static uint8_t *native_page;

static void native_signal(int sig)
{
	siglongjmp(native_jmp, sig);
}

/* Run `len` instruction bytes on the host with *s as the register state; 0, or the signal the
 * instruction raised (SIGSEGV for #GP and #PF, SIGILL for #UD, SIGFPE for #XM, SIGTRAP for #BP).
 * After a signal *s is unchanged. */
static inline int native_run(struct native_state *s, const uint8_t *bytes, size_t len)
{
	if (!native_page) {
		native_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(native_page != MAP_FAILED, "mmap of an executable page");
	}
	/* bytes, then jmp *0(%rip) to native_exit */
	memcpy(native_page, bytes, len);
	static const uint8_t jmp[] = {0xff, 0x25, 0, 0, 0, 0};
	memcpy(native_page + len, jmp, sizeof(jmp));
	uint64_t target = (uint64_t)(uintptr_t)native_exit;
	memcpy(native_page + len + sizeof(jmp), &target, 8);
	__builtin___clear_cache((char *)native_page, (char *)native_page + 64);

	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP};
	struct sigaction sa = {.sa_handler = native_signal, .sa_flags = SA_NODEFER}, old[5];
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &old[i]);
	struct native_state in = *s;
	in.rflags = (in.rflags & FLAGS_ARITH) | 0x202;
	int sig = sigsetjmp(native_jmp, 1);
	if (sig == 0)
		native_enter(&in, native_page);
	else
		__asm__ volatile("ldmxcsr %0" : : "m"(native_host_mxcsr));
	for (unsigned i = 0; i < 5; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (sig == 0)
		*s = in;
	return sig;
}

/* --- the guest --- */

#define GUEST_RAM      (32ull << 20)
#define GUEST_PML4     0x1000ull
#define GUEST_PDPT     0x2000ull
#define GUEST_PD       0x3000ull
#define GUEST_PT       0x10000ull /* 16 tables map [0, 32 MiB) with 4 KiB pages */
#define GUEST_DATA     0x400000ull
#define GUEST_MMIO_LIN (32ull << 20) /* a 2 MiB page that maps ... */
#define GUEST_MMIO_GPA 0xd0000000ull /* ... here, outside RAM */
#define GUEST_XSAVE_SZ 16384

struct mmio_log {
	unsigned n;
	struct {
		uint64_t gpa;
		uint32_t len;
		bool write;
		uint8_t data[8];
	} a[64];
	uint8_t fill; /* what MMIO reads return */
};

struct guest {
	struct guest_mem gm;
	struct emu_cpu cpu;
	struct emu_xlayout xl;
	struct emu_mem mem;
	struct mmio_log mmio;
	uint8_t fpu[GUEST_XSAVE_SZ] __attribute__((aligned(64)));
	struct emu_insn insn;
	struct emu_fault fault;
};

static void guest_mmio(void *ctx, uint64_t gpa, uint8_t *data, uint32_t len, bool is_write)
{
	struct mmio_log *l = ctx;
	if (l->n < 64) {
		l->a[l->n].gpa = gpa;
		l->a[l->n].len = len;
		l->a[l->n].write = is_write;
		memcpy(l->a[l->n].data, data, len);
		l->n++;
	}
	if (!is_write)
		memset(data, l->fill, len);
}

static inline uint64_t *guest_pte(struct guest *g, uint64_t linear)
{
	return gmem_ptr(&g->gm, GUEST_PT + (linear >> 12) * 8, 8);
}

static inline uint64_t host_xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

/* 64-bit mode at CPL0, SSE and XSAVE enabled, [0, 32 MiB) identity-mapped, supervisor and
 * writable. */
static inline void guest_init(struct guest *g)
{
	memset(g, 0, sizeof(*g));
	cr_assert(gmem_create(&g->gm, GUEST_RAM) == 0, "%s", err_msg());
	uint64_t e;
	e = GUEST_PDPT | 3;
	gmem_write(&g->gm, GUEST_PML4, &e, 8);
	e = GUEST_PD | 3;
	gmem_write(&g->gm, GUEST_PDPT, &e, 8);
	for (uint64_t i = 0; i < 16; i++) {
		e = (GUEST_PT + i * 4096) | 3;
		gmem_write(&g->gm, GUEST_PD + i * 8, &e, 8);
	}
	for (uint64_t p = 0; p < GUEST_RAM / 4096; p++) {
		e = (p << 12) | 3;
		gmem_write(&g->gm, GUEST_PT + p * 8, &e, 8);
	}
	e = GUEST_MMIO_GPA | 0x83;
	gmem_write(&g->gm, GUEST_PD + 16 * 8, &e, 8);

	emu_xlayout_from_host(&g->xl);
	struct emu_cpu *c = &g->cpu;
	c->cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
	c->cr3 = GUEST_PML4;
	c->cr4 = 0x40620; /* OSXSAVE, OSXMMEXCPT, OSFXSR, PAE */
	c->efer = 0xd00;  /* NXE, LMA, LME */
	c->seg[EMU_CS] = (struct emu_segment){.selector = 8, .l = true};
	c->seg[EMU_SS] = (struct emu_segment){.selector = 16};
	c->rflags = 2;
	c->xcr0 = host_xcr0();
	c->fpu = g->fpu;
	c->fpu_size = sizeof(g->fpu);
	c->xlayout = &g->xl;
	g->mem = (struct emu_mem){.gm = &g->gm, .mmio = guest_mmio, .ctx = &g->mmio};
	g->mmio.fill = 0xff;
}

static inline void guest_fini(struct guest *g)
{
	gmem_destroy(&g->gm);
}

/* The image KVM would hand over for a vCPU whose registers are `s`: x87 in its initial state,
 * MXCSR and XMM from `s`, both components marked in use. */
static inline void guest_load(struct guest *g, const struct native_state *s)
{
	struct emu_cpu *c = &g->cpu;
	memcpy(c->gpr, s->gpr, sizeof(c->gpr));
	c->rflags = (s->rflags & FLAGS_ARITH) | 2;
	memset(g->fpu, 0, sizeof(g->fpu));
	g->fpu[0] = 0x7f;
	g->fpu[1] = 0x03;
	memcpy(g->fpu + EMU_FX_MXCSR, &s->mxcsr, 4);
	memcpy(g->fpu + EMU_FX_MXCSR_MASK, &g->xl.mxcsr_mask, 4);
	for (unsigned i = 0; i < 16; i++)
		memcpy(g->fpu + EMU_FX_XMM(i), s->xmm[i], 16);
	uint64_t bv = EMU_XFEATURE_X87 | EMU_XFEATURE_SSE;
	memcpy(g->fpu + EMU_XSAVE_HDR, &bv, 8);
}

static inline void guest_store(const struct guest *g, struct native_state *s)
{
	memcpy(s->gpr, g->cpu.gpr, sizeof(s->gpr));
	s->rflags = g->cpu.rflags;
	memcpy(&s->mxcsr, g->fpu + EMU_FX_MXCSR, 4);
	for (unsigned i = 0; i < 16; i++)
		memcpy(s->xmm[i], g->fpu + EMU_FX_XMM(i), 16);
}

/* Decode and execute; EMU_UNSUPPORTED also for a decode failure. */
static inline enum emu_status guest_run(struct guest *g, const uint8_t *bytes, size_t len)
{
	g->cpu.dirty = 0;
	memset(&g->fault, 0, sizeof(g->fault));
	if (emu_decode(&g->cpu, bytes, len, &g->insn) != 0)
		return EMU_UNSUPPORTED;
	return emu_execute(&g->cpu, &g->insn, &g->mem, &g->fault);
}

/* --- deterministic random data --- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline void rng_fill(uint64_t *s, void *buf, size_t len)
{
	uint8_t *b = buf;
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)rng_next(s);
}

/* Random registers; XMM lanes mix raw bits with ordinary floats and doubles, so that the
 * floating-point forms see normal numbers as well as NaNs and denormals. */
static inline void random_state(struct native_state *s, uint64_t seed)
{
	uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
	memset(s, 0, sizeof(*s));
	rng_fill(&r, s->gpr, sizeof(s->gpr));
	s->rflags = rng_next(&r) & FLAGS_ARITH;
	s->mxcsr = 0x1f80;
	for (unsigned i = 0; i < 16; i++) {
		rng_fill(&r, s->xmm[i], 16);
		unsigned kind = rng_next(&r) % 3;
		if (kind == 1) {
			float f[4];
			for (unsigned k = 0; k < 4; k++)
				f[k] =
				    (float)((int64_t)(rng_next(&r) % 2000000) - 1000000) / 997.0f;
			memcpy(s->xmm[i], f, 16);
		} else if (kind == 2) {
			double d[2];
			for (unsigned k = 0; k < 2; k++)
				d[k] =
				    (double)((int64_t)(rng_next(&r) % 2000000) - 1000000) / 991.0;
			memcpy(s->xmm[i], d, 16);
		}
	}
}

/* --- native against emulated --- */

/* The register that holds the memory operand's base: its value differs between the two runs. */
static unsigned compare_base = RBX;

#define BUF_OFF	 0x40 /* the memory operand: rbx + BUF_DISP, 16-byte aligned */
#define BUF_DISP 0x10
#define BUF_SIZE 0x100

static inline const char *hex(const uint8_t *b, size_t n)
{
	static char s[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < sizeof(s); i++)
		k += (size_t)snprintf(s + k, sizeof(s) - k, "%02x ", b[i]);
	return s;
}

static inline int signal_for(const struct emu_fault *f)
{
	switch (f->vector) {
	case EMU_VEC_UD:
		return SIGILL;
	case EMU_VEC_XM:
		return SIGFPE;
	case EMU_VEC_BP:
		return SIGTRAP;
	default:
		return SIGSEGV;
	}
}

/* Run `bytes` natively and emulated from the same state; compare everything. */
static inline void compare(struct guest *g, const char *name, const uint8_t *bytes, size_t len,
			   const struct native_state *start, const uint8_t *mem0, bool uses_mem)
{
	static uint8_t host_buf[8192] __attribute__((aligned(4096)));
	uint8_t *hmem = host_buf + BUF_OFF;
	uint64_t gaddr = GUEST_DATA + BUF_OFF;

	struct native_state nat = *start;
	memcpy(hmem, mem0, BUF_SIZE);
	nat.gpr[compare_base] = (uint64_t)(uintptr_t)hmem;
	int sig = native_run(&nat, bytes, len);

	struct native_state emu = *start;
	emu.gpr[compare_base] = gaddr;
	guest_load(g, &emu);
	gmem_write(&g->gm, gaddr, mem0, BUF_SIZE);
	g->cpu.rip = 0x100000;
	enum emu_status st = guest_run(g, bytes, len);
	cr_assert(st != EMU_UNSUPPORTED, "%s (%s): unsupported: %s", name, hex(bytes, len),
		  err_msg());
	cr_assert(eq(str, (char *)emu_insn_name(&g->insn), (char *)name), "%s: decoded as %s",
		  hex(bytes, len), emu_insn_name(&g->insn));
	cr_assert(eq(u32, g->insn.len, len), "%s (%s): length", name, hex(bytes, len));
	cr_assert(eq(int, g->insn.mem, uses_mem), "%s: memory operand", name);
	if (sig) {
		cr_assert(eq(int, st, EMU_FAULT),
			  "%s (%s): host raised signal %d, emulator did not", name, hex(bytes, len),
			  sig);
		cr_assert(eq(int, signal_for(&g->fault), sig), "%s: vector %u for signal %d", name,
			  g->fault.vector, sig);
		return;
	}
	cr_assert(eq(int, st, EMU_DONE), "%s (%s): emulator raised vector %u", name,
		  hex(bytes, len), g->fault.vector);
	cr_assert(eq(u64, g->cpu.rip, 0x100000 + len), "%s: RIP", name);
	guest_store(g, &emu);
	for (unsigned r = 0; r < 16; r++) {
		if (r == RSP || r == compare_base)
			continue;
		cr_assert(eq(u64, emu.gpr[r], nat.gpr[r]), "%s (%s): GPR %u", name, hex(bytes, len),
			  r);
	}
	cr_assert(eq(u64, emu.rflags & FLAGS_ARITH, nat.rflags & FLAGS_ARITH), "%s (%s): flags",
		  name, hex(bytes, len));
	cr_assert(eq(u32, emu.mxcsr, nat.mxcsr), "%s (%s): MXCSR", name, hex(bytes, len));
	for (unsigned x = 0; x < 16; x++)
		cr_assert(eq(int, memcmp(emu.xmm[x], nat.xmm[x], 16), 0), "%s (%s): XMM%u", name,
			  hex(bytes, len), x);
	uint8_t gmem[BUF_SIZE];
	gmem_read(&g->gm, gmem, gaddr, BUF_SIZE);
	cr_assert(eq(int, memcmp(gmem, hmem, BUF_SIZE), 0), "%s (%s): memory", name,
		  hex(bytes, len));
}
