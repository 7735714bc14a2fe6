/* sse: SSE, XSAVE and the other instructions KVM's own emulator cannot run (ARCHITECTURE.md,
 * kvm_pvm), executed at CPL0 and compared with the same bytes run natively at CPL3.
 *
 * On kvm_pvm every CPL0 instruction goes through KVM's emulator, so each CPL0 run here ends in
 * the monitor's emulation fallback. Where CPL0 runs natively (hardware KVM, the nested-SVM test
 * VM) the memory operand is what forces emulation: KVM emulates an access to a physical address
 * without a memslot, and gives up on these instructions. So each form runs with its operand in
 * RAM, in MMIO that reads as zeros (the boot timer's page) or as ones (just past the end of RAM,
 * where nothing is mapped), and, where alignment allows, straddling the end of RAM (half of it
 * checkable RAM). The reference run at CPL3 sees the same bytes from RAM. With `sse_fep=1`,
 * int3 and cmpxchg16b also run behind KVM's forced-emulation prefix (kvm.force_emulation_prefix,
 * never on kvm_pvm, where that prefix is a plain #UD).
 *
 * One line per form ("sse: NAME ok" and where it ran), then the CHECK line. */
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"
#include "lib.h"

/* Registers in and out of a run; the runner below loads and saves all of them. */
struct sse_state {
	uint64_t gpr[16];
	uint64_t rflags;
	uint32_t mxcsr;
	uint32_t pad;
	uint8_t xmm[16][16];
};

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };

#define FLAGS_ARITH 0x8d5ull
#define PAGE	    4096ull
#define ZEROS_MMIO  (BOOT_TIMER_ADDR + 0x40) /* the boot timer reads as zeros past offset 0 */

/* sse_enter(state, code): load every register from *state, jump to code, which jumps to
 * sse_exit, which saves them back and returns from sse_enter. Works at CPL3 and at CPL0. */
__asm__(".text\n"
	".globl sse_enter\n"
	"sse_enter:\n"
	"push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
	"mov %rsp, sse_saved_rsp(%rip)\n"
	"mov %rdi, sse_cur(%rip)\n"
	"mov %rsi, sse_code(%rip)\n"
	"stmxcsr sse_own_mxcsr(%rip)\n"
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
	"jmp *sse_code(%rip)\n"
	".globl sse_exit\n"
	"sse_exit:\n"
	"pushfq\n"
	"mov %rdi, sse_tmp(%rip)\n"
	"mov sse_cur(%rip), %rdi\n"
	"popq 128(%rdi)\n"
	"mov %rax, 0(%rdi)\n mov %rcx, 8(%rdi)\n mov %rdx, 16(%rdi)\n mov %rbx, 24(%rdi)\n"
	"mov %rbp, 40(%rdi)\n mov %rsi, 48(%rdi)\n mov %r8, 64(%rdi)\n mov %r9, 72(%rdi)\n"
	"mov %r10, 80(%rdi)\n mov %r11, 88(%rdi)\n mov %r12, 96(%rdi)\n mov %r13, 104(%rdi)\n"
	"mov %r14, 112(%rdi)\n mov %r15, 120(%rdi)\n"
	"mov sse_tmp(%rip), %rax\n mov %rax, 56(%rdi)\n"
	"movdqu %xmm0, 144(%rdi)\n movdqu %xmm1, 160(%rdi)\n movdqu %xmm2, 176(%rdi)\n"
	"movdqu %xmm3, 192(%rdi)\n movdqu %xmm4, 208(%rdi)\n movdqu %xmm5, 224(%rdi)\n"
	"movdqu %xmm6, 240(%rdi)\n movdqu %xmm7, 256(%rdi)\n movdqu %xmm8, 272(%rdi)\n"
	"movdqu %xmm9, 288(%rdi)\n movdqu %xmm10, 304(%rdi)\n movdqu %xmm11, 320(%rdi)\n"
	"movdqu %xmm12, 336(%rdi)\n movdqu %xmm13, 352(%rdi)\n movdqu %xmm14, 368(%rdi)\n"
	"movdqu %xmm15, 384(%rdi)\n"
	"stmxcsr 136(%rdi)\n"
	"ldmxcsr sse_own_mxcsr(%rip)\n"
	"mov sse_saved_rsp(%rip), %rsp\n"
	"pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
	"ret\n"
	/* #BP for the int3 form: note the return address and go back. */
	".globl sse_bp_handler\n"
	"sse_bp_handler:\n"
	"push %rax\n"
	"mov 8(%rsp), %rax\n"
	"mov %rax, sse_bp_rip(%rip)\n"
	"incq sse_bp_count(%rip)\n"
	"pop %rax\n"
	"iretq\n"
	/* Expected faults (#UD, #GP, #XM): note vector, error code and RIP, resume at the jump
	 * after the instruction. */
	"sse_fault_6: movq $6, sse_fault_vector(%rip); movq $0, sse_fault_error(%rip); jmp 1f\n"
	"sse_fault_19: movq $19, sse_fault_vector(%rip); movq $0, sse_fault_error(%rip); jmp 1f\n"
	"sse_fault_13: movq $13, sse_fault_vector(%rip); popq sse_fault_error(%rip)\n"
	"1: incq sse_fault_count(%rip)\n"
	"push %rax\n"
	"mov 8(%rsp), %rax\n"
	"mov %rax, sse_fault_rip(%rip)\n"
	"mov sse_fault_resume(%rip), %rax\n"
	"mov %rax, 8(%rsp)\n"
	"pop %rax\n"
	"iretq\n"
	".globl sse_fault_6, sse_fault_13, sse_fault_19\n"
	".data\n"
	".balign 8\n"
	".globl sse_fault_vector, sse_fault_error, sse_fault_count, sse_fault_rip, "
	"sse_fault_resume\n"
	"sse_fault_vector: .quad 0\n"
	"sse_fault_error: .quad 0\n"
	"sse_fault_count: .quad 0\n"
	"sse_fault_rip: .quad 0\n"
	"sse_fault_resume: .quad 0\n"
	"sse_saved_rsp: .quad 0\n"
	"sse_cur: .quad 0\n"
	"sse_code: .quad 0\n"
	"sse_tmp: .quad 0\n"
	".globl sse_bp_rip, sse_bp_count\n"
	"sse_bp_rip: .quad 0\n"
	"sse_bp_count: .quad 0\n"
	"sse_own_mxcsr: .long 0\n"
	".text\n");

void sse_enter(struct sse_state *s, const void *code);
void sse_exit(void);
void sse_bp_handler(void);
void sse_fault_6(void), sse_fault_13(void), sse_fault_19(void);
extern uint64_t sse_bp_rip, sse_bp_count;
extern uint64_t sse_fault_vector, sse_fault_error, sse_fault_count, sse_fault_rip, sse_fault_resume;

/* Instructions are assembled here and run from here (the identity map is executable). */
static uint8_t code_buf[64] __attribute__((aligned(64), section(".data")));
static size_t code_prefix; /* bytes before the instruction: the forced-emulation prefix */

static const uint8_t fep[] = {0x0f, 0x0b, 0x6b, 0x76, 0x6d}; /* ud2; "kvm" */

static void assemble(const uint8_t *insn, size_t len, bool with_fep)
{
	size_t n = 0;
	if (with_fep) {
		memcpy(code_buf, fep, sizeof(fep));
		n = sizeof(fep);
	}
	code_prefix = n;
	memcpy(code_buf + n, insn, len);
	n += len;
	static const uint8_t jmp[] = {0xff, 0x25, 0, 0, 0, 0}; /* jmp *0(%rip) */
	memcpy(code_buf + n, jmp, sizeof(jmp));
	uint64_t target = (uint64_t)(uintptr_t)sse_exit;
	memcpy(code_buf + n + sizeof(jmp), &target, 8);
}

static void cpl0_run(void *arg)
{
	sse_enter(arg, code_buf);
}

/* Run fn(arg) at CPL0 through the service gate. Not inlined: the callee may clobber every
 * caller-saved register, XMM ones included, which a call already tells the compiler. */
static __attribute__((noinline)) void at_cpl0(void (*fn)(void *), void *arg)
{
	uint64_t req = SERVICE_CALL;
	__asm__ volatile("int %[v]"
			 : "+a"(req), "+D"(fn), "+S"(arg)
			 : [v] "i"(VEC_SERVICE)
			 : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory", "cc");
}

static void run(unsigned cpl, struct sse_state *s)
{
	if (cpl == 3)
		sse_enter(s, code_buf);
	else
		at_cpl0(cpl0_run, s);
}

/* --- set-up at CPL0: SSE on (OSFXSR, OSXMMEXCPT), XSAVE on with every user component this CPU
 * has of x87, SSE and AVX. --- */

#define CR4_OSXSAVE (1u << 18)
static uint64_t xcr0;
static bool has_xsave, has_xsaveopt, has_xsavec, has_smap, has_popcnt, has_cx16;

static void enable_sse(void *arg)
{
	(void)arg;
	uint64_t cr4;
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
	if (has_xsave)
		cr4 |= CR4_OSXSAVE;
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4));
	if (has_xsave)
		__asm__ volatile("xsetbv" : : "a"((uint32_t)xcr0), "d"(0), "c"(0));
}

static void probe_cpu(void)
{
	uint32_t r[4];
	cpuid(1, 0, r);
	has_xsave = r[2] & (1u << 26);
	has_popcnt = r[2] & (1u << 23);
	has_cx16 = r[2] & (1u << 13);
	bool avx = r[2] & (1u << 28);
	cpuid(7, 0, r);
	has_smap = r[1] & (1u << 20);
	xcr0 = 0;
	if (has_xsave) {
		cpuid(0xd, 0, r);
		xcr0 = r[0] & (avx ? 7 : 3);
		cpuid(0xd, 1, r);
		has_xsaveopt = r[0] & 1;
		has_xsavec = r[0] & 2;
	}
}

/* --- operands and comparison --- */

enum place { P_REG, P_RAM, P_ZEROS, P_ONES, P_STRADDLE, P_COUNT };
static const char *const place_names[P_COUNT] = {"reg", "ram", "zeros", "ones", "straddle"};

static uint8_t ref_page[2 * PAGE] __attribute__((aligned(4096)));
static uint8_t ram_page[2 * PAGE] __attribute__((aligned(4096)));
static uint64_t ram_end; /* end of the RAM region the unikernel lives in; nothing mapped after */
static uint64_t seed = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

static void random_state(struct sse_state *s)
{
	for (unsigned i = 0; i < 16; i++)
		s->gpr[i] = next_random();
	s->rflags = next_random() & FLAGS_ARITH;
	s->mxcsr = 0x1f80;
	for (unsigned i = 0; i < 16; i++) {
		uint64_t a = next_random(), b = next_random();
		memcpy(s->xmm[i], &a, 8);
		memcpy(s->xmm[i] + 8, &b, 8);
	}
}

static void find_ram_end(void)
{
	ram_end = 0;
	for (uint32_t i = 0; i < boot.nmem; i++) {
		const struct mem_range *m = &boot.mem[i];
		if (m->type == E820_RAM && m->addr <= KERNEL_BASE &&
		    m->addr + m->size > KERNEL_BASE)
			ram_end = (m->addr + m->size) & ~(PAGE - 1);
	}
	/* Past the end must be unbacked: not RAM, not the MMIO gap, not the initrd. */
	for (uint32_t i = 0; i < boot.nmem; i++)
		if (boot.mem[i].type == E820_RAM && boot.mem[i].addr == ram_end)
			ram_end = 0;
	if (ram_end >= BOOT_TIMER_ADDR || ram_end < KERNEL_END + PAGE ||
	    (boot.initrd_size && boot.initrd_addr + boot.initrd_size > ram_end - PAGE))
		ram_end = 0;
}

struct operand {
	uint64_t cpl0_addr; /* where the CPL0 run finds the operand */
	uint8_t *ref;	    /* the CPL3 run's copy, in RAM */
	uint8_t *ram;	    /* RAM the CPL0 run may write, checked after it (NULL: none) */
	uint8_t *ref_ram;   /* the same bytes of the reference */
	size_t ram_len;
	size_t operand_at; /* where in those bytes the operand starts */
};

/* Save areas: the x87 error pointers (FOP, FIP, FDP at bytes 6-23) are what the last x87
 * instruction left, which CPUs (and emulators) track differently, and the reserved bytes (5,
 * and 10-15 of each ST register's slot) are written by some and left alone by others; neither
 * is compared. */
static bool skip_x87_undefined;

static bool x87_undefined(size_t at)
{
	return at == 5 || (at >= 6 && at < 24) || (at >= 32 && at < 160 && (at - 32) % 16 >= 10);
}

/* Lay out a `size`-byte operand for a placement; false if this guest cannot have it. */
static bool place_operand(enum place p, size_t size, struct operand *o)
{
	const uint64_t off = 0x200;
	memset(o, 0, sizeof(*o));
	switch (p) {
	case P_REG:
		return true;
	case P_RAM:
		for (size_t i = 0; i < sizeof(ram_page); i++)
			ram_page[i] = (uint8_t)next_random();
		memcpy(ref_page, ram_page, sizeof(ref_page));
		o->cpl0_addr = (uint64_t)(uintptr_t)(ram_page + off);
		o->ref = ref_page + off;
		o->ram = ram_page + off - 64;
		o->ref_ram = ref_page + off - 64;
		o->ram_len = size + 128;
		o->operand_at = 64;
		return true;
	case P_ZEROS:
		memset(ref_page, 0, sizeof(ref_page));
		o->cpl0_addr = ZEROS_MMIO;
		o->ref = ref_page + (ZEROS_MMIO & (PAGE - 1));
		return true;
	case P_ONES:
		if (!ram_end)
			return false;
		memset(ref_page, 0xff, sizeof(ref_page));
		o->cpl0_addr = ram_end;
		o->ref = ref_page + PAGE;
		return true;
	case P_STRADDLE: {
		if (!ram_end || size < 2)
			return false;
		size_t in_ram = size / 2;
		uint8_t *tail = (uint8_t *)(uintptr_t)(ram_end - PAGE);
		for (size_t i = 0; i < PAGE; i++)
			tail[i] = (uint8_t)next_random();
		memcpy(ref_page, tail, PAGE);
		memset(ref_page + PAGE, 0xff, PAGE);
		o->cpl0_addr = ram_end - in_ram;
		o->ref = ref_page + PAGE - in_ram;
		o->ram = tail + PAGE - in_ram;
		o->ref_ram = o->ref;
		o->ram_len = in_ram;
		return true;
	}
	default:
		return false;
	}
}

static unsigned forms_run, cpl0_runs;

static __attribute__((noreturn)) void differs(const char *name, enum place p, const char *what,
					      unsigned i, const void *cpl0, const void *cpl3,
					      size_t n)
{
	const uint8_t *a = cpl0, *b = cpl3;
	kprintf("\nsse: %s (%s): %s %u, CPL0/CPL3:", name, place_names[p], what, i);
	for (size_t k = 0; k < n; k++)
		kprintf(" %02x/%02x", a[k], b[k]);
	kprintf("\n");
	check_fail("%s %s: %s %u differs at CPL0 from CPL3", name, place_names[p], what, i);
}

/* Compare a CPL0 run with the CPL3 reference: every register but the operand's base, the
 * arithmetic flags, MXCSR, the XMM registers, and the RAM the CPL0 run could write. */
static void compare(const char *name, enum place p, const struct sse_state *k,
		    const struct sse_state *u, const struct operand *o)
{
	for (unsigned r = 0; r < 16; r++)
		if (r != RSP && r != RBX && k->gpr[r] != u->gpr[r])
			differs(name, p, "GPR", r, &k->gpr[r], &u->gpr[r], 8);
	if ((k->rflags ^ u->rflags) & FLAGS_ARITH)
		differs(name, p, "RFLAGS", 0, &k->rflags, &u->rflags, 8);
	if (k->mxcsr != u->mxcsr)
		differs(name, p, "MXCSR", 0, &k->mxcsr, &u->mxcsr, 4);
	for (unsigned x = 0; x < 16; x++)
		for (unsigned b = 0; b < 16; b++)
			if (k->xmm[x][b] != u->xmm[x][b])
				differs(name, p, "XMM", x, k->xmm[x], u->xmm[x], 16);
	for (size_t i = 0; o->ram && i < o->ram_len; i++) {
		if (skip_x87_undefined && i >= o->operand_at && x87_undefined(i - o->operand_at))
			continue;
		if (o->ram[i] != o->ref_ram[i])
			differs(name, p, "memory byte", (unsigned)i, &o->ram[i], &o->ref_ram[i], 1);
	}
}

/* Adjusts a run before it starts: registers, and the operand's bytes in both copies. */
typedef void (*prep_fn)(struct sse_state *s, enum place p, const struct operand *o);

/* Run `insn` (memory operand [rbx], or none) at CPL3 on the reference operand and at CPL0 on
 * the placed one, and compare. */
static void run_form(const char *name, const uint8_t *insn, size_t len, enum place p, size_t size,
		     bool with_fep, prep_fn prep)
{
	struct operand o;
	if (!place_operand(p, size, &o))
		return;
	struct sse_state start;
	random_state(&start);
	if (prep)
		prep(&start, p, &o);

	struct sse_state u = start;
	u.gpr[RBX] = (uint64_t)(uintptr_t)o.ref;
	assemble(insn, len, false);
	run(3, &u);

	struct sse_state k = start;
	k.gpr[RBX] = o.cpl0_addr;
	assemble(insn, len, with_fep);
	run(0, &k);
	cpl0_runs++;
	compare(name, p, &k, &u, &o);
}

/* Every placement the form allows, one "sse:" line. */
static void run_places(const char *name, const uint8_t *insn, size_t len, size_t size,
		       unsigned places, bool with_fep, prep_fn prep)
{
	kprintf("sse: %s", name);
	for (unsigned p = 0; p < P_COUNT; p++) {
		struct operand o;
		if (!(places & (1u << p)) || !place_operand(p, size, &o))
			continue;
		run_form(name, insn, len, p, size, with_fep, prep);
		kprintf(" %s", place_names[p]);
	}
	kprintf("%s ok\n", with_fep ? " (forced emulation)" : "");
	forms_run++;
}

/* --- SSE forms: register operands xmm0/xmm1 (or rax/rcx), memory [rbx] --- */

enum {
	A16 = 1 << 0,	  /* 16-byte aligned memory operand: it cannot straddle */
	REGONLY = 1 << 1, /* no memory operand */
	POPCNT = 1 << 2,  /* needs CPUID.POPCNT */
};

struct form {
	const char *name;
	uint8_t size; /* memory operand bytes */
	uint8_t flags;
	uint8_t len;
	uint8_t bytes[7];
};

/* ModRM 0x03: reg 0, [rbx]; 0xc1: reg 0, rm 1. */
#define M(nm, sz, fl, ...)                                                                         \
	{                                                                                          \
		nm, sz, fl, sizeof((uint8_t[]){__VA_ARGS__}),                                      \
		{                                                                                  \
			__VA_ARGS__                                                                \
		}                                                                                  \
	}

static const struct form forms[] = {
    /* moves */
    M("movups", 16, 0, 0x0f, 0x10, 0x03),
    M("movups", 16, 0, 0x0f, 0x11, 0x03),
    M("movdqu", 16, 0, 0xf3, 0x0f, 0x6f, 0x03),
    M("movdqu", 16, 0, 0xf3, 0x0f, 0x7f, 0x03),
    M("lddqu", 16, 0, 0xf2, 0x0f, 0xf0, 0x03),
    M("movaps", 16, A16, 0x0f, 0x28, 0x03),
    M("movaps", 16, A16, 0x0f, 0x29, 0x03),
    M("movdqa", 16, A16, 0x66, 0x0f, 0x6f, 0x03),
    M("movdqa", 16, A16, 0x66, 0x0f, 0x7f, 0x03),
    M("movntdq", 16, A16, 0x66, 0x0f, 0xe7, 0x03),
    M("movq", 8, 0, 0xf3, 0x0f, 0x7e, 0x03),
    M("movq", 8, 0, 0x66, 0x0f, 0xd6, 0x03),
    M("movq", 8, 0, 0x66, 0x48, 0x0f, 0x6e, 0x03),
    M("movq", 8, 0, 0x66, 0x48, 0x0f, 0x7e, 0x03),
    M("movd", 4, 0, 0x66, 0x0f, 0x6e, 0x03),
    M("movd", 4, 0, 0x66, 0x0f, 0x7e, 0x03),
    M("movss", 4, 0, 0xf3, 0x0f, 0x10, 0x03),
    M("movss", 4, 0, 0xf3, 0x0f, 0x11, 0x03),
    M("movsd", 8, 0, 0xf2, 0x0f, 0x10, 0x03),
    M("movsd", 8, 0, 0xf2, 0x0f, 0x11, 0x03),
    M("movlps", 8, 0, 0x0f, 0x12, 0x03),
    M("movhps", 8, 0, 0x0f, 0x17, 0x03),
    M("movhlps", 0, REGONLY, 0x0f, 0x12, 0xc1),
    M("movmskps", 0, REGONLY, 0x0f, 0x50, 0xc1),
    M("pmovmskb", 0, REGONLY, 0x66, 0x0f, 0xd7, 0xc1),
    M("pextrw", 0, REGONLY, 0x66, 0x0f, 0xc5, 0xc1, 0x05),
    M("pinsrw", 2, 0, 0x66, 0x0f, 0xc4, 0x03, 0x03),
    /* integer and logic */
    M("pxor", 16, A16, 0x66, 0x0f, 0xef, 0x03),
    M("pxor", 0, REGONLY, 0x66, 0x0f, 0xef, 0xc1),
    M("por", 16, A16, 0x66, 0x0f, 0xeb, 0x03),
    M("pand", 16, A16, 0x66, 0x0f, 0xdb, 0x03),
    M("pandn", 16, A16, 0x66, 0x0f, 0xdf, 0x03),
    M("paddb", 16, A16, 0x66, 0x0f, 0xfc, 0x03),
    M("paddw", 16, A16, 0x66, 0x0f, 0xfd, 0x03),
    M("paddd", 16, A16, 0x66, 0x0f, 0xfe, 0x03),
    M("paddq", 16, A16, 0x66, 0x0f, 0xd4, 0x03),
    M("paddq", 0, REGONLY, 0x66, 0x0f, 0xd4, 0xc1),
    M("psubb", 16, A16, 0x66, 0x0f, 0xf8, 0x03),
    M("psubq", 16, A16, 0x66, 0x0f, 0xfb, 0x03),
    M("paddusb", 16, A16, 0x66, 0x0f, 0xdc, 0x03),
    M("psubsw", 16, A16, 0x66, 0x0f, 0xe9, 0x03),
    M("pcmpeqb", 16, A16, 0x66, 0x0f, 0x74, 0x03),
    M("pcmpeqd", 16, A16, 0x66, 0x0f, 0x76, 0x03),
    M("pcmpgtw", 16, A16, 0x66, 0x0f, 0x65, 0x03),
    M("pminub", 16, A16, 0x66, 0x0f, 0xda, 0x03),
    M("pmaxsw", 16, A16, 0x66, 0x0f, 0xee, 0x03),
    M("pavgb", 16, A16, 0x66, 0x0f, 0xe0, 0x03),
    M("pmullw", 16, A16, 0x66, 0x0f, 0xd5, 0x03),
    M("pmuludq", 16, A16, 0x66, 0x0f, 0xf4, 0x03),
    M("pmaddwd", 16, A16, 0x66, 0x0f, 0xf5, 0x03),
    M("psadbw", 16, A16, 0x66, 0x0f, 0xf6, 0x03),
    M("punpcklbw", 16, A16, 0x66, 0x0f, 0x60, 0x03),
    M("punpcklwd", 16, A16, 0x66, 0x0f, 0x61, 0x03),
    M("punpckldq", 16, A16, 0x66, 0x0f, 0x62, 0x03),
    M("punpcklqdq", 16, A16, 0x66, 0x0f, 0x6c, 0x03),
    M("punpckhbw", 16, A16, 0x66, 0x0f, 0x68, 0x03),
    M("punpckhqdq", 16, A16, 0x66, 0x0f, 0x6d, 0x03),
    M("packsswb", 16, A16, 0x66, 0x0f, 0x63, 0x03),
    M("packuswb", 16, A16, 0x66, 0x0f, 0x67, 0x03),
    M("psrlw", 16, A16, 0x66, 0x0f, 0xd1, 0x03),
    M("psllq", 16, A16, 0x66, 0x0f, 0xf3, 0x03),
    M("psrad", 16, A16, 0x66, 0x0f, 0xe2, 0x03),
    M("psrldq", 0, REGONLY, 0x66, 0x0f, 0x73, 0xd9, 0x05),
    M("pslld", 0, REGONLY, 0x66, 0x0f, 0x72, 0xf1, 0x07),
    M("pshufd", 16, A16, 0x66, 0x0f, 0x70, 0x03, 0x1b),
    M("pshuflw", 16, A16, 0xf2, 0x0f, 0x70, 0x03, 0xb1),
    M("pshufhw", 16, A16, 0xf3, 0x0f, 0x70, 0x03, 0x4e),
    M("shufps", 16, A16, 0x0f, 0xc6, 0x03, 0x93),
    M("andps", 16, A16, 0x0f, 0x54, 0x03),
    M("xorps", 16, A16, 0x0f, 0x57, 0x03),
    M("unpcklps", 16, A16, 0x0f, 0x14, 0x03),
    M("popcnt", 8, POPCNT, 0xf3, 0x48, 0x0f, 0xb8, 0x03),
    M("popcnt", 0, POPCNT | REGONLY, 0xf3, 0x0f, 0xb8, 0xc1),
    /* floating point */
    M("addps", 16, A16, 0x0f, 0x58, 0x03),
    M("mulpd", 16, A16, 0x66, 0x0f, 0x59, 0x03),
    M("subss", 4, 0, 0xf3, 0x0f, 0x5c, 0x03),
    M("divsd", 8, 0, 0xf2, 0x0f, 0x5e, 0x03),
    M("sqrtps", 16, A16, 0x0f, 0x51, 0x03),
    M("minps", 16, A16, 0x0f, 0x5d, 0x03),
    M("maxsd", 8, 0, 0xf2, 0x0f, 0x5f, 0x03),
    M("cmpps", 16, A16, 0x0f, 0xc2, 0x03, 0x01),
    M("cmpsd", 8, 0, 0xf2, 0x0f, 0xc2, 0x03, 0x04),
    M("ucomiss", 4, 0, 0x0f, 0x2e, 0x03),
    M("comisd", 8, 0, 0x66, 0x0f, 0x2f, 0x03),
    M("cvtdq2ps", 16, A16, 0x0f, 0x5b, 0x03),
    M("cvttps2dq", 16, A16, 0xf3, 0x0f, 0x5b, 0x03),
    M("cvtps2pd", 8, 0, 0x0f, 0x5a, 0x03),
    M("cvtsd2ss", 8, 0, 0xf2, 0x0f, 0x5a, 0x03),
    M("cvtsi2sd", 8, 0, 0xf2, 0x48, 0x0f, 0x2a, 0x03),
    M("cvttsd2si", 8, 0, 0xf2, 0x48, 0x0f, 0x2c, 0x03),
    M("cvtss2si", 4, 0, 0xf3, 0x0f, 0x2d, 0x03),
};

#define MEMORY_PLACES ((1u << P_RAM) | (1u << P_ZEROS) | (1u << P_ONES))

static void run_table(void)
{
	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		const struct form *fm = &forms[f];
		if ((fm->flags & POPCNT) && !has_popcnt)
			continue;
		unsigned places = MEMORY_PLACES;
		if (fm->flags & REGONLY)
			places = 1u << P_REG;
		else if (!(fm->flags & A16))
			places |= 1u << P_STRADDLE;
		run_places(fm->name, fm->bytes, fm->len, fm->size, places, false, NULL);
	}
}

/* --- MXCSR, XCR0, save areas, cmpxchg16b, int3, clac/stac --- */

static void valid_mxcsr(struct sse_state *s, enum place p, const struct operand *o)
{
	uint32_t v = 0x1f80 | (uint32_t)(next_random() & 0x6000); /* a rounding mode */
	s->mxcsr = v;
	if (p == P_RAM) {
		v ^= 0x1e00; /* ldmxcsr loads something else than what is there */
		memcpy((void *)(uintptr_t)o->cpl0_addr, &v, 4);
		memcpy(o->ref, &v, 4);
	}
}

/* A valid FXSAVE/XSAVE image of random registers, taken by the CPU itself, in both copies. */
static void saved_image(struct sse_state *s, enum place p, const struct operand *o)
{
	s->gpr[RAX] = s->gpr[RDX] = ~0ull;
	if (p != P_RAM)
		return;
	struct sse_state other;
	random_state(&other);
	other.gpr[RAX] = other.gpr[RDX] = ~0ull;
	other.gpr[RBX] = (uint64_t)(uintptr_t)o->ref;
	static const uint8_t fxsave64[] = {0x48, 0x0f, 0xae, 0x03};
	static const uint8_t xsave64[] = {0x48, 0x0f, 0xae, 0x23};
	memset(o->ref, 0, 1024);
	if (has_xsave)
		assemble(xsave64, sizeof(xsave64), false);
	else
		assemble(fxsave64, sizeof(fxsave64), false);
	run(3, &other);
	memcpy((void *)(uintptr_t)o->cpl0_addr, o->ref, 1024);
}

static void all_components(struct sse_state *s, enum place p, const struct operand *o)
{
	(void)p;
	(void)o;
	s->gpr[RAX] = s->gpr[RDX] = ~0ull;
}

/* Half the time RDX:RAX equals the operand, so cmpxchg16b exchanges. */
static void maybe_equal(struct sse_state *s, enum place p, const struct operand *o)
{
	if (next_random() & 1)
		return;
	if (p == P_ZEROS) {
		s->gpr[RAX] = s->gpr[RDX] = 0;
	} else if (p == P_ONES) {
		s->gpr[RAX] = s->gpr[RDX] = ~0ull;
	} else if (p == P_RAM) {
		memcpy(&s->gpr[RAX], o->ref, 8);
		memcpy(&s->gpr[RDX], o->ref + 8, 8);
	}
}

static void xcr_zero(struct sse_state *s, enum place p, const struct operand *o)
{
	(void)p;
	(void)o;
	s->gpr[RCX] = 0;
}

static void run_system(void)
{
	static const uint8_t ldmxcsr[] = {0x0f, 0xae, 0x13}, stmxcsr[] = {0x0f, 0xae, 0x1b};
	run_places("ldmxcsr", ldmxcsr, 3, 4, (1u << P_RAM) | (1u << P_ZEROS), false, valid_mxcsr);
	run_places("stmxcsr", stmxcsr, 3, 4, MEMORY_PLACES | (1u << P_STRADDLE), false,
		   valid_mxcsr);

	/* Save areas: the legacy region straddles the end of RAM, the rest lies beyond. An fninit
	 * first puts x87 in its initial state on both runs. */
	static const uint8_t fxsave64[] = {0xdb, 0xe3, 0x48, 0x0f, 0xae, 0x03};
	static const uint8_t fxrstor64[] = {0x48, 0x0f, 0xae, 0x0b};
	skip_x87_undefined = true;
	run_places("fxsave", fxsave64, sizeof(fxsave64), 512, MEMORY_PLACES | (1u << P_STRADDLE),
		   false, NULL);
	run_places("fxrstor", fxrstor64, 4, 512, (1u << P_RAM) | (1u << P_ZEROS), false,
		   saved_image);
	if (has_xsave) {
		static const uint8_t xgetbv[] = {0x0f, 0x01, 0xd0};
		static const uint8_t xsave64[] = {0xdb, 0xe3, 0x48, 0x0f, 0xae, 0x23};
		static const uint8_t xsaveopt64[] = {0xdb, 0xe3, 0x48, 0x0f, 0xae, 0x33};
		static const uint8_t xsavec64[] = {0xdb, 0xe3, 0x48, 0x0f, 0xc7, 0x23};
		static const uint8_t xrstor64[] = {0x48, 0x0f, 0xae, 0x2b};
		const unsigned save_places = MEMORY_PLACES | (1u << P_STRADDLE);
		run_places("xgetbv", xgetbv, 3, 0, 1u << P_REG, false, xcr_zero);
		run_places("xsave", xsave64, sizeof(xsave64), 1024, save_places, false,
			   all_components);
		if (has_xsaveopt)
			run_places("xsaveopt", xsaveopt64, sizeof(xsaveopt64), 1024, save_places,
				   false, all_components);
		if (has_xsavec)
			run_places("xsavec", xsavec64, sizeof(xsavec64), 1024, save_places, false,
				   all_components);
		run_places("xrstor", xrstor64, 4, 1024, (1u << P_RAM) | (1u << P_ZEROS), false,
			   saved_image);
	}
	skip_x87_undefined = false;
	if (has_cx16) {
		static const uint8_t cmpxchg16b[] = {0xf0, 0x48, 0x0f, 0xc7, 0x0b};
		run_places("cmpxchg16b", cmpxchg16b, 5, 16, MEMORY_PLACES, false, maybe_equal);
		if (opts.sse_fep)
			run_places("cmpxchg16b", cmpxchg16b, 5, 16, 1u << P_RAM, true, maybe_equal);
	}
}

/* Temporary IDT gates for the vectors these runs raise on purpose (#BP, #UD, #GP, #XM), set and
 * put back at CPL0. Exceptions ignore a gate's DPL, so they serve CPL3 runs too. */
static const struct {
	unsigned vector;
	void (*handler)(void);
} gates[] = {{3, sse_bp_handler}, {6, sse_fault_6}, {13, sse_fault_13}, {19, sse_fault_19}};
#define NGATES (sizeof(gates) / sizeof(gates[0]))
static uint8_t saved_gates[NGATES][16];

static void own_gates(void *install)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr;
	__asm__ volatile("sidt %0" : "=m"(idtr));
	for (unsigned i = 0; i < NGATES; i++) {
		uint8_t *gate = (uint8_t *)(uintptr_t)(idtr.base + gates[i].vector * 16);
		if (!install) {
			memcpy(gate, saved_gates[i], 16);
			continue;
		}
		memcpy(saved_gates[i], gate, 16);
		uint64_t h = (uint64_t)(uintptr_t)gates[i].handler;
		uint8_t g[16] = {(uint8_t)h,
				 (uint8_t)(h >> 8),
				 KCODE_SEL,
				 0,
				 0,
				 0x8e,
				 (uint8_t)(h >> 16),
				 (uint8_t)(h >> 24),
				 (uint8_t)(h >> 32),
				 (uint8_t)(h >> 40),
				 (uint8_t)(h >> 48),
				 (uint8_t)(h >> 56)};
		memcpy(gate, g, 16);
	}
}

struct fault_seen {
	uint64_t count, vector, error, rip_offset;
};

static void run_noting_fault(unsigned cpl, struct sse_state *s, size_t len, struct fault_seen *f)
{
	uint64_t before = sse_fault_count;
	sse_fault_resume = (uint64_t)(uintptr_t)code_buf + code_prefix + len;
	run(cpl, s);
	f->count = sse_fault_count - before;
	f->vector = sse_fault_vector;
	f->error = sse_fault_error;
	f->rip_offset = sse_fault_rip - ((uint64_t)(uintptr_t)code_buf + code_prefix);
}

/* A form that must fault: at CPL0 the exception the architecture names, at the instruction. The
 * CPL3 reference must fault the same way, with the same error code and registers after (MXCSR
 * flags included: an unmasked SIMD exception still sets its flag) - except on a CPU that does
 * not raise this exception at all (QEMU's TCG accepts reserved MXCSR bits and masks no SIMD
 * exception), which the line then says. */
static void run_fault(const char *name, const uint8_t *insn, size_t len, enum place p, size_t size,
		      prep_fn prep, unsigned vector)
{
	struct operand o;
	if (!place_operand(p, size, &o))
		return;
	struct sse_state start;
	random_state(&start);
	if (prep)
		prep(&start, p, &o);
	at_cpl0(own_gates, (void *)1);
	struct sse_state u = start, k = start;
	struct fault_seen fu, fk;
	u.gpr[RBX] = (uint64_t)(uintptr_t)o.ref;
	assemble(insn, len, false);
	run_noting_fault(3, &u, len, &fu);
	k.gpr[RBX] = o.cpl0_addr;
	assemble(insn, len, false);
	run_noting_fault(0, &k, len, &fk);
	at_cpl0(own_gates, NULL);
	cpl0_runs++;
	if (fk.count != 1 || fk.vector != vector || fk.rip_offset != 0)
		check_fail(
		    "%s %s: CPL0 %lu faults (vector %lu error 0x%lx at +%ld), expected vector "
		    "%u at the instruction",
		    name, place_names[p], fk.count, fk.vector, fk.error, (long)fk.rip_offset,
		    vector);
	bool reference = fu.count == 1;
	if (reference) {
		if (fu.vector != vector || fu.error != fk.error || fu.rip_offset != 0)
			check_fail("%s %s: CPL3 vector %lu error 0x%lx at +%ld, CPL0 vector %lu "
				   "error 0x%lx",
				   name, place_names[p], fu.vector, fu.error, (long)fu.rip_offset,
				   fk.vector, fk.error);
		compare(name, p, &k, &u, &o);
	}
	kprintf("sse: %s %s faults (vector %u)%s ok\n", name, place_names[p], vector,
		reference ? "" : ", the CPU running the check raised nothing at CPL3");
	forms_run++;
}

static void ones_over_zero_unmasked(struct sse_state *s, enum place p, const struct operand *o)
{
	(void)p;
	(void)o;
	static const uint32_t one = 0x3f800000; /* 1.0f: divided by zero it is ZE, not IE */
	for (unsigned i = 0; i < 4; i++)
		memcpy(s->xmm[0] + 4 * i, &one, 4);
	s->mxcsr = 0x1f80 & ~0x200u; /* ZM clear */
}

static void run_faults(void)
{
	static const uint8_t ldmxcsr[] = {0x0f, 0xae, 0x13};
	static const uint8_t divps[] = {0x0f, 0x5e, 0x03};
	static const uint8_t cmpxchg16b_off8[] = {0xf0, 0x48, 0x0f, 0xc7, 0x4b, 0x08};
	/* All ones has reserved MXCSR bits: #GP(0). */
	run_fault("ldmxcsr", ldmxcsr, sizeof(ldmxcsr), P_ONES, 4, NULL, 13);
	/* [rbx+8] is not 16-byte aligned: #GP(0). */
	if (has_cx16)
		run_fault("cmpxchg16b", cmpxchg16b_off8, sizeof(cmpxchg16b_off8), P_ONES, 24, NULL,
			  13);
	/* Divide by zero with ZM clear: #XM, destination kept, ZE set. */
	run_fault("divps", divps, sizeof(divps), P_ZEROS, 16, ones_over_zero_unmasked, 19);
}

static void run_int3(bool with_fep)
{
	static const uint8_t int3[] = {0xcc};
	struct sse_state s;
	random_state(&s);
	at_cpl0(own_gates, (void *)1);
	uint64_t before = sse_bp_count;
	assemble(int3, 1, with_fep);
	run(0, &s);
	cpl0_runs++;
	at_cpl0(own_gates, NULL);
	uint64_t want = (uint64_t)(uintptr_t)code_buf + code_prefix + 1;
	if (sse_bp_count != before + 1 || sse_bp_rip != want)
		check_fail("int3%s: %lu #BP, return address 0x%lx, expected 0x%lx",
			   with_fep ? " (forced emulation)" : "", sse_bp_count - before, sse_bp_rip,
			   want);
	kprintf("sse: int3 reg%s ok\n", with_fep ? " (forced emulation)" : "");
	forms_run++;
}

static void run_clac_stac(void)
{
	static const uint8_t stac[] = {0x0f, 0x01, 0xcb}, clac[] = {0x0f, 0x01, 0xca};
	struct sse_state s;
	random_state(&s);
	assemble(stac, 3, false);
	run(0, &s);
	bool set = s.rflags & (1u << 18);
	assemble(clac, 3, false);
	run(0, &s);
	cpl0_runs += 2;
	if (!set || (s.rflags & (1u << 18)))
		check_fail("stac/clac: AC %u after stac, %u after clac", set,
			   (unsigned)((s.rflags >> 18) & 1));
	kprintf("sse: stac clac reg ok\n");
	forms_run += 2;
}

void check_sse(void)
{
	probe_cpu();
	find_ram_end();
	at_cpl0(enable_sse, NULL);
	kprintf("sse: xcr0=0x%lx ram_end=0x%lx fep=%lu\n", xcr0, ram_end, opts.sse_fep);
	run_table();
	run_system();
	run_faults();
	run_int3(false);
	if (opts.sse_fep)
		run_int3(true);
	if (has_smap)
		run_clac_stac();
	check_pass("forms=%u cpl0_runs=%u xcr0=0x%lx straddle=%s fep=%lu", forms_run, cpl0_runs,
		   xcr0, ram_end ? "yes" : "no", opts.sse_fep);
}

/* sse_unknown: an instruction no one emulates (MMX pxor, with its operand in MMIO so that KVM
 * must emulate it even where CPL0 runs natively). The monitor must stop the VM with its report. */
static void mmx_on_mmio(void *arg)
{
	(void)arg;
	__asm__ volatile("pxor (%0), %%mm0\n emms" : : "r"((uint64_t)ZEROS_MMIO) : "memory");
}

void check_sse_unknown(void)
{
	kprintf("sse_unknown: MMX pxor on MMIO at CPL0, the monitor must stop\n");
	at_cpl0(mmx_on_mmio, NULL);
	check_fail("still running after an instruction nobody emulates");
}
