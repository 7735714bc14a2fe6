/* MXCSR and XCR0 access, popcnt, cmpxchg8b/16b, int3, clac/stac, fences and cache hints, and the
 * form table for them and for the save-area instructions of emulate_xsave.c. */
#include "vcpu/emulate_impl.h"
#include "common/err.h"

#include <errno.h>
#include <sys/random.h>

#define CR0_PE	     (1ull << 0)
#define CR4_TSD	     (1ull << 2)
#define CR4_OSXSAVE  (1ull << 18)
#define RFLAGS_CF    (1ull << 0)
#define RFLAGS_PF    (1ull << 2)
#define RFLAGS_AF    (1ull << 4)
#define RFLAGS_ZF    (1ull << 6)
#define RFLAGS_SF    (1ull << 7)
#define RFLAGS_TF    (1ull << 8)
#define RFLAGS_IF    (1ull << 9)
#define RFLAGS_OF    (1ull << 11)
#define RFLAGS_NT    (1ull << 14)
#define RFLAGS_RF    (1ull << 16)
#define RFLAGS_VM    (1ull << 17)
#define RFLAGS_AC    (1ull << 18)
#define REG_RAX	     0
#define REG_RCX	     1
#define REG_RDX	     2
#define REG_RBX	     3
#define REG_RSP	     4
#define VEC_NP	     11
#define TSS_IST(n)   (0x24 + 8 * ((n)-1))
#define GATE_INTR    0xe
#define GATE_TRAP    0xf
#define IDT_ERROR(v) (((uint32_t)(v) << 3) | 2) /* error code naming an IDT entry */
#define DESC_P	     (1ull << 47)
#define DESC_S	     (1ull << 44)
#define DESC_CODE    (1ull << 43)
#define DESC_L	     (1ull << 53)
#define DESC_D	     (1ull << 54)
#define DESC_DPL(d)  ((unsigned)((d) >> 45) & 3)

enum emu_status emu_exec_ldmxcsr(struct emu_ctx *c)
{
	uint64_t lin;
	uint32_t v;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s == EMU_DONE)
		s = emu_read(c, lin, &v, 4);
	if (s != EMU_DONE)
		return s;
	if (v & ~emu_mxcsr_mask(c->cpu))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	emu_set_mxcsr(c->cpu, v);
	return emu_done(c);
}

enum emu_status emu_exec_stmxcsr(struct emu_ctx *c)
{
	uint64_t lin;
	uint32_t v = emu_mxcsr(c->cpu);
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s == EMU_DONE)
		s = emu_write(c, lin, &v, 4);
	return s == EMU_DONE ? emu_done(c) : s;
}

/* ECX=0: XCR0. ECX=1 (with XGETBV1): the components not in their initial state, which is what
 * the vCPU's XSTATE_BV records. */
enum emu_status emu_exec_xgetbv(struct emu_ctx *c)
{
	struct emu_cpu *cpu = c->cpu;
	if (!(cpu->cr4 & CR4_OSXSAVE))
		return emu_raise(c, EMU_VEC_UD);
	uint64_t v;
	uint32_t which = (uint32_t)cpu->gpr[REG_RCX];
	if (which == 0)
		v = cpu->xcr0;
	else if (which == 1 && cpu->xlayout && cpu->xlayout->xgetbv1)
		v = cpu->xcr0 & emu_fpu_u64(cpu, EMU_XSAVE_HDR);
	else
		return emu_raise_err(c, EMU_VEC_GP, 0);
	emu_gpr_write(cpu, REG_RAX, 4, (uint32_t)v);
	emu_gpr_write(cpu, REG_RDX, 4, v >> 32);
	return emu_done(c);
}

enum emu_status emu_exec_popcnt(struct emu_ctx *c)
{
	unsigned size = c->in->opsize;
	uint64_t v = 0;
	if (c->in->mem) {
		uint64_t lin;
		enum emu_status s = emu_ea(c, 0, &lin);
		if (s == EMU_DONE)
			s = emu_read(c, lin, &v, size);
		if (s != EMU_DONE)
			return s;
	} else {
		v = emu_gpr_read(c->cpu, c->in->rm, size);
	}
	uint64_t f = c->cpu->rflags &
		     ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
	if (!v)
		f |= RFLAGS_ZF;
	c->cpu->rflags = f;
	emu_gpr_write(c->cpu, c->in->reg, size, (uint64_t)__builtin_popcountll(v));
	return emu_done(c);
}

/* lock cmpxchg16b on guest RAM is one host lock cmpxchg16b on the same bytes, so it stays atomic
 * against vCPUs running natively. MMIO (and a cmpxchg8b split across pages) cannot be atomic and
 * is a read, a compare and a write. */
static bool cas16(void *p, uint64_t expect[2], const uint64_t desired[2])
{
	bool ok;
	__asm__ volatile("lock cmpxchg16b %1"
			 : "=@ccz"(ok), "+m"(*(volatile __int128 *)p), "+a"(expect[0]),
			   "+d"(expect[1])
			 : "b"(desired[0]), "c"(desired[1])
			 : "memory");
	return ok;
}

static bool cas8(void *p, uint64_t expect[2], const uint64_t desired[2])
{
	uint32_t lo = (uint32_t)expect[0], hi = (uint32_t)expect[1];
	bool ok;
	__asm__ volatile("lock cmpxchg8b %1"
			 : "=@ccz"(ok), "+m"(*(volatile uint64_t *)p), "+a"(lo), "+d"(hi)
			 : "b"((uint32_t)desired[0]), "c"((uint32_t)desired[1])
			 : "memory");
	expect[0] = lo;
	expect[1] = hi;
	return ok;
}

enum emu_status emu_exec_cmpxchg8b16b(struct emu_ctx *c)
{
	struct emu_cpu *cpu = c->cpu;
	bool wide = c->in->rex_w;
	unsigned half = wide ? 8 : 4;
	uint64_t lin;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s != EMU_DONE)
		return s;
	if (wide && (lin & 15))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	uint64_t expect[2] = {emu_gpr_read(cpu, REG_RAX, half), emu_gpr_read(cpu, REG_RDX, half)};
	uint64_t desired[2] = {emu_gpr_read(cpu, REG_RBX, half), emu_gpr_read(cpu, REG_RCX, half)};
	bool ok;
	void *host = NULL;
	uint64_t gpa = 0;
	bool one_page = ((lin & 0xfff) + 2 * half) <= 0x1000;
	if (one_page) {
		s = emu_rmw(c, lin, 2 * half, &host, &gpa);
		if (s != EMU_DONE)
			return s;
	}
	if (host) {
		ok = wide ? cas16(host, expect, desired) : cas8(host, expect, desired);
		if (ok)
			gmem_mark_dirty(c->mem->gm, host, 2 * half);
	} else {
		uint64_t cur[2] = {0, 0};
		uint8_t buf[16];
		if (one_page)
			emu_phys_access(c->mem, gpa, buf, 2 * half, false);
		else if ((s = emu_check_write(c, lin, 2 * half)) != EMU_DONE ||
			 (s = emu_read(c, lin, buf, 2 * half)) != EMU_DONE)
			return s;
		memcpy(&cur[0], buf, half);
		memcpy(&cur[1], buf + half, half);
		ok = cur[0] == expect[0] && cur[1] == expect[1];
		if (ok) {
			memcpy(buf, &desired[0], half);
			memcpy(buf + half, &desired[1], half);
		}
		/* A locked compare-exchange always writes: the old value when it fails. */
		if (one_page)
			emu_phys_access(c->mem, gpa, buf, 2 * half, true);
		else if ((s = emu_write(c, lin, buf, 2 * half)) != EMU_DONE)
			return s;
		expect[0] = cur[0];
		expect[1] = cur[1];
	}
	if (ok) {
		cpu->rflags |= RFLAGS_ZF;
	} else {
		cpu->rflags &= ~RFLAGS_ZF;
		emu_gpr_write(cpu, REG_RAX, half, expect[0]);
		emu_gpr_write(cpu, REG_RDX, half, expect[1]);
	}
	return emu_done(c);
}

/* #BP from int3 is a trap: the handler sees the RIP after the int3. Hypervisors disagree on how an
 * injected software exception's return address is formed (SVM skips an instruction at RIP, VMX
 * uses the last exit's length), so in 64-bit mode the exception is delivered here, through the
 * guest's IDT, exactly as the CPU would at the same privilege level. */
static enum emu_status deliver_bp_64(struct emu_ctx *c)
{
	struct emu_cpu *cpu = c->cpu;
	const unsigned vec = EMU_VEC_BP;
	if ((uint32_t)cpu->idt_limit < vec * 16 + 15)
		return emu_raise_err(c, EMU_VEC_GP, IDT_ERROR(vec));
	uint8_t gate[16];
	enum emu_status s = emu_read(c, cpu->idt_base + vec * 16, gate, sizeof(gate));
	if (s != EMU_DONE)
		return s;
	unsigned type = gate[5] & 0xf, dpl = (gate[5] >> 5) & 3;
	if ((type != GATE_INTR && type != GATE_TRAP) || dpl < cpu->cpl)
		return emu_raise_err(c, EMU_VEC_GP, IDT_ERROR(vec));
	if (!(gate[5] & 0x80))
		return emu_raise_err(c, VEC_NP, IDT_ERROR(vec));
	uint16_t sel = (uint16_t)(gate[2] | gate[3] << 8);
	uint64_t target = (uint64_t)gate[0] | (uint64_t)gate[1] << 8 | (uint64_t)gate[6] << 16 |
			  (uint64_t)gate[7] << 24 | (uint64_t)gate[8] << 32 |
			  (uint64_t)gate[9] << 40 | (uint64_t)gate[10] << 48 |
			  (uint64_t)gate[11] << 56;
	unsigned ist = gate[4] & 7;

	if ((sel & ~7u) == 0 || (sel & 4) || (sel | 7u) > cpu->gdt_limit)
		return emu_raise_err(c, EMU_VEC_GP, sel & ~3u);
	uint64_t desc;
	s = emu_read(c, cpu->gdt_base + (sel & ~7u), &desc, 8);
	if (s != EMU_DONE)
		return s;
	if (!(desc & DESC_S) || !(desc & DESC_CODE) || !(desc & DESC_L) || (desc & DESC_D))
		return emu_raise_err(c, EMU_VEC_GP, sel & ~3u);
	if (!(desc & DESC_P))
		return emu_raise_err(c, VEC_NP, sel & ~3u);
	if (DESC_DPL(desc) != cpu->cpl) {
		err_set(ENOTSUP, "int3 through a gate that changes privilege (CPL %u to %u)",
			cpu->cpl, DESC_DPL(desc));
		return EMU_UNSUPPORTED;
	}

	uint64_t rsp = cpu->gpr[REG_RSP];
	if (ist) {
		s = emu_read(c, cpu->tr_base + TSS_IST(ist), &rsp, 8);
		if (s != EMU_DONE)
			return s;
	}
	rsp &= ~15ull;
	uint64_t frame[5] = {
	    cpu->rip + c->in->len, /* return RIP: after the int3 */
	    cpu->seg[EMU_CS].selector, cpu->rflags, cpu->gpr[REG_RSP], cpu->seg[EMU_SS].selector,
	};
	s = emu_write(c, rsp - sizeof(frame), frame, sizeof(frame));
	if (s != EMU_DONE)
		return s;
	cpu->gpr[REG_RSP] = rsp - sizeof(frame);
	cpu->rip = target;
	cpu->rflags &= ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
	if (type == GATE_INTR)
		cpu->rflags &= ~RFLAGS_IF;
	if (cpu->seg[EMU_CS].selector != (sel & ~3u) + cpu->cpl) {
		cpu->seg[EMU_CS] =
		    (struct emu_segment){.selector = (uint16_t)((sel & ~3u) | cpu->cpl),
					 .dpl = (uint8_t)cpu->cpl,
					 .l = true};
		cpu->dirty |= EMU_DIRTY_SREGS;
	}
	cpu->dirty |= EMU_DIRTY_REGS;
	return EMU_DONE;
}

/* Outside 64-bit mode the #BP is left to the hypervisor to inject at the int3. */
enum emu_status emu_exec_int3(struct emu_ctx *c)
{
	if (c->in->long64 && (c->cpu->cr0 & CR0_PE))
		return deliver_bp_64(c);
	return emu_raise(c, EMU_VEC_BP);
}

enum emu_status emu_exec_clac_stac(struct emu_ctx *c)
{
	if (c->cpu->cpl != 0)
		return emu_raise(c, EMU_VEC_UD);
	if ((c->in->rm & 7) == 3)
		c->cpu->rflags |= RFLAGS_AC;
	else
		c->cpu->rflags &= ~RFLAGS_AC;
	return emu_done(c);
}

/* The vCPU's earlier accesses were made by other host instructions; a host fence orders them the
 * same way against what follows. */
enum emu_status emu_exec_fence(struct emu_ctx *c)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return emu_done(c);
}

/* clwb/clflushopt: the guest's memory is ordinary host memory, so only the address's translation
 * (and its fault) matters. */
enum emu_status emu_exec_cache_hint(struct emu_ctx *c)
{
	uint64_t lin;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s == EMU_DONE)
		s = emu_check_read(c, lin, 1);
	return s == EMU_DONE ? emu_done(c) : s;
}

/* rdrand/rdseed: the host's entropy, or CF=0 ("none available now, retry"), which software
 * using these instructions must handle anyway. */
enum emu_status emu_exec_rdrand(struct emu_ctx *c)
{
	unsigned size = c->in->opsize;
	uint64_t v = 0;
	bool ok = getrandom(&v, size, GRND_NONBLOCK) == (ssize_t)size;
	c->cpu->rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
	if (ok)
		c->cpu->rflags |= RFLAGS_CF;
	emu_gpr_write(c->cpu, c->in->rm, size, ok ? v : 0);
	return emu_done(c);
}

enum emu_status emu_exec_rdtscp(struct emu_ctx *c)
{
	struct emu_cpu *cpu = c->cpu;
	if ((cpu->cr4 & CR4_TSD) && cpu->cpl != 0)
		return emu_raise_err(c, EMU_VEC_GP, 0);
	emu_gpr_write(cpu, REG_RAX, 4, (uint32_t)cpu->tsc);
	emu_gpr_write(cpu, REG_RDX, 4, cpu->tsc >> 32);
	emu_gpr_write(cpu, REG_RCX, 4, (uint32_t)cpu->tsc_aux);
	return emu_done(c);
}

#define FORM(nm, mp, opc, p, md, r, fl, ex)                                                        \
	.name = nm, .map = mp, .opcode = opc, .pfx = p, .mod = md, .reg = r, .flags = fl, .exec = ex
#define GROUP15(nm, r, fl, ex)                                                                     \
	{                                                                                          \
		FORM(nm, MAP_0F, 0xae, PFX_NP, MOD_MEM, r, fl, ex)                                 \
	}
#define GROUP9(nm, r, fl, ex)                                                                      \
	{                                                                                          \
		FORM(nm, MAP_0F, 0xc7, PFX_NP, MOD_MEM, r, fl, ex)                                 \
	}
#define SAVE (F_FPU | F_XCR0 | F_XSAVE)

const struct emu_form emu_system_forms[] = {
    GROUP15("fxsave", SEL(0), F_FPU, emu_exec_fxsave),
    GROUP15("fxrstor", SEL(1), F_FPU, emu_exec_fxrstor),
    GROUP15("ldmxcsr", SEL(2), F_SSE | F_FPU, emu_exec_ldmxcsr),
    GROUP15("stmxcsr", SEL(3), F_SSE | F_FPU, emu_exec_stmxcsr),
    GROUP15("xsave", SEL(4), SAVE, emu_exec_xsave),
    GROUP15("xrstor", SEL(5), SAVE, emu_exec_xrstor),
    GROUP15("xsaveopt", SEL(6), SAVE, emu_exec_xsave),
    GROUP9("xrstors", SEL(3), SAVE | F_XSS | F_CPL0, emu_exec_xrstor),
    GROUP9("xsavec", SEL(4), SAVE, emu_exec_xsave),
    GROUP9("xsaves", SEL(5), SAVE | F_XSS | F_CPL0, emu_exec_xsave),
    {FORM("cmpxchg8b", MAP_0F, 0xc7, PFX_ANY, MOD_MEM, SEL(1), F_LOCK_OK, emu_exec_cmpxchg8b16b),
     .w = W_0},
    {FORM("cmpxchg16b", MAP_0F, 0xc7, PFX_ANY, MOD_MEM, SEL(1), F_LOCK_OK, emu_exec_cmpxchg8b16b),
     .w = W_1},
    {FORM("lfence", MAP_0F, 0xae, PFX_NP, MOD_REG, SEL(5), 0, emu_exec_fence)},
    {FORM("mfence", MAP_0F, 0xae, PFX_NP, MOD_REG, SEL(6), 0, emu_exec_fence)},
    {FORM("sfence", MAP_0F, 0xae, PFX_NP, MOD_REG, SEL(7), 0, emu_exec_fence)},
    {FORM("clwb", MAP_0F, 0xae, PFX_66, MOD_MEM, SEL(6), 0, emu_exec_cache_hint)},
    {FORM("clflushopt", MAP_0F, 0xae, PFX_66, MOD_MEM, SEL(7), 0, emu_exec_cache_hint)},
    {FORM("xgetbv", MAP_0F, 0x01, PFX_NP, MOD_REG, SEL(2), F_FPU | F_XCR0, emu_exec_xgetbv),
     .rm = SEL(0)},
    {FORM("clac", MAP_0F, 0x01, PFX_NP, MOD_REG, SEL(1), 0, emu_exec_clac_stac), .rm = SEL(2)},
    {FORM("stac", MAP_0F, 0x01, PFX_NP, MOD_REG, SEL(1), 0, emu_exec_clac_stac), .rm = SEL(3)},
    {FORM("rdrand", MAP_0F, 0xc7, PFX_NP, MOD_REG, SEL(6), F_OPSIZE66, emu_exec_rdrand)},
    {FORM("rdseed", MAP_0F, 0xc7, PFX_NP, MOD_REG, SEL(7), F_OPSIZE66, emu_exec_rdrand)},
    {FORM("rdtscp", MAP_0F, 0x01, PFX_NP, MOD_REG, SEL(7), F_TSC, emu_exec_rdtscp), .rm = SEL(1)},
    {FORM("popcnt", MAP_0F, 0xb8, PFX_F3, MOD_ANY, 0, F_OPSIZE66, emu_exec_popcnt)},
    {FORM("int3", MAP_1BYTE, 0xcc, PFX_ANY, MOD_NONE, 0, 0, emu_exec_int3)},
};
const unsigned emu_system_nforms = sizeof(emu_system_forms) / sizeof(emu_system_forms[0]);
