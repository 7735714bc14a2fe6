/* Shared by the emulator's own files (decoder, form table, executors, memory access); not part
 * of its public face, which is vcpu/emulate.h. */
#pragma once

#include "vcpu/emulate.h"

#include <string.h>

struct emu_ctx {
	struct emu_cpu *cpu;
	const struct emu_insn *in;
	const struct emu_mem *mem;
	struct emu_fault *fault;
};

typedef enum emu_status (*emu_exec_fn)(struct emu_ctx *c);

/* An XMM register's lanes, little-endian as on the guest. */
typedef union {
	uint8_t b[16];
	int8_t sb[16];
	uint16_t w[8];
	int16_t sw[8];
	uint32_t d[4];
	int32_t sd[4];
	uint64_t q[2];
	int64_t sq[2];
} emu_xmm;

/* What a form's executor applies. */
union emu_op {
	void (*xmm)(emu_xmm *d, const emu_xmm *s);
	void (*xmm_imm)(emu_xmm *d, const emu_xmm *s, uint8_t imm);
	void (*xmm_mask)(emu_xmm *d, const emu_xmm *s, const emu_xmm *mask);
	uint32_t (*movmsk)(const emu_xmm *s);
	/* Host stubs (emulate_hostops.S). MXCSR goes in with every exception masked and comes back
	 * with the flags the instruction raised. */
	void (*host)(void *d, const void *s, uint32_t *mxcsr);
	void (*host_comis)(const void *a, const void *b, uint32_t *mxcsr, uint64_t *rflags);
	void (*host_from_int)(void *d, const uint64_t *s, uint32_t *mxcsr);
	void (*host_to_int)(uint64_t *d, const void *s, uint32_t *mxcsr);
	void (*const *host_cmp)(void *d, const void *s, uint32_t *mxcsr); /* by predicate 0-7 */
};

/* Opcode maps. */
enum { MAP_1BYTE, MAP_0F, MAP_0F38, MAP_0F3A };

/* Mandatory prefix: the last F2/F3, else 66, else none. PFX_ANY: prefixes are hints. */
enum { PFX_NP, PFX_66, PFX_F3, PFX_F2, PFX_ANY };

/* ModRM use. */
enum { MOD_ANY, MOD_MEM, MOD_REG, MOD_NONE };

/* A required ModRM.reg or ModRM.rm value (zero, the default, matches any). */
#define SEL(n)	   (0x10 | (n))
#define SEL_SET(v) ((v)&0x10)
#define SEL_VAL(v) ((v)&7)

/* REX.W constraint. */
enum { W_ANY, W_0, W_1 };

enum {
	F_SSE = 1u << 0,      /* #UD unless CR4.OSFXSR and !CR0.EM; #NM if CR0.TS */
	F_ALIGN16 = 1u << 1,  /* memory operand must be 16-byte aligned (#GP) */
	F_LOCK_OK = 1u << 2,  /* LOCK allowed; otherwise it is #UD */
	F_FPU = 1u << 3,      /* reads or writes the XSAVE image */
	F_XCR0 = 1u << 4,     /* needs XCR0 */
	F_XSS = 1u << 5,      /* needs IA32_XSS */
	F_OPSIZE66 = 1u << 6, /* 66 is an operand-size prefix, not a mandatory one */
	F_XSAVE = 1u << 7,    /* #UD unless CR4.OSXSAVE; #NM if CR0.TS */
	F_CPL0 = 1u << 8,     /* #GP(0) above CPL0 */
	F_TSC = 1u << 9,      /* needs the guest's TSC and TSC_AUX */
};

struct emu_form {
	const char *name;
	uint8_t map;
	uint8_t opcode;
	uint8_t pfx;
	uint8_t mod;
	uint8_t reg; /* ModRM.reg for group opcodes as SEL(n); 0: any */
	uint8_t rm;  /* ModRM.rm for register-only encodings as SEL(n); 0: any */
	uint8_t w;
	uint8_t imm;   /* immediate bytes */
	uint8_t msize; /* bytes of the memory operand, where the form has a fixed one */
	uint16_t flags;
	emu_exec_fn exec;
	union emu_op op;
};

/* The form tables, one per executor file. */
extern const struct emu_form emu_sse_forms[];
extern const unsigned emu_sse_nforms;
extern const struct emu_form emu_fp_forms[];
extern const unsigned emu_fp_nforms;
extern const struct emu_form emu_system_forms[];
extern const unsigned emu_system_nforms;

/* --- results --- */

static inline enum emu_status emu_raise(struct emu_ctx *c, uint8_t vector)
{
	*c->fault = (struct emu_fault){.vector = vector};
	return EMU_FAULT;
}

static inline enum emu_status emu_raise_err(struct emu_ctx *c, uint8_t vector, uint32_t error)
{
	*c->fault = (struct emu_fault){.vector = vector, .has_error = true, .error = error};
	return EMU_FAULT;
}

static inline enum emu_status emu_done(struct emu_ctx *c)
{
	c->cpu->rip += c->in->len;
	if (!c->in->long64)
		c->cpu->rip &= 0xffffffffu;
	c->cpu->dirty |= EMU_DIRTY_REGS;
	return EMU_DONE;
}

/* --- memory (emulate_mem.c) --- */

/* Linear address of the ModRM memory operand plus `extra`. */
enum emu_status emu_ea(struct emu_ctx *c, uint64_t extra, uint64_t *linear);
enum emu_status emu_read(struct emu_ctx *c, uint64_t linear, void *buf, size_t len);
enum emu_status emu_write(struct emu_ctx *c, uint64_t linear, const void *buf, size_t len);
/* Fault now if any byte of the range cannot be read (translation only). */
enum emu_status emu_check_read(struct emu_ctx *c, uint64_t linear, size_t len);
/* Fault now, before anything is written, if any byte of the range is not writable. */
enum emu_status emu_check_write(struct emu_ctx *c, uint64_t linear, size_t len);
/* A host pointer for an atomic read-modify-write of `len` bytes (aligned, inside one page);
 * *host is NULL when the range is MMIO. `gpa` is set either way. */
enum emu_status emu_rmw(struct emu_ctx *c, uint64_t linear, size_t len, void **host, uint64_t *gpa);
/* Physical access, RAM or MMIO (for the MMIO half of emu_rmw). */
void emu_phys_access(const struct emu_mem *mem, uint64_t gpa, void *buf, size_t len, bool is_write);

/* --- GPRs --- */

static inline uint64_t emu_gpr_read(const struct emu_cpu *cpu, unsigned r, unsigned size)
{
	uint64_t v = cpu->gpr[r];
	return size == 8 ? v : v & ((1ull << (size * 8)) - 1);
}

/* Writes as the CPU does: 32-bit results zero the upper half, 8/16-bit ones merge. */
static inline void emu_gpr_write(struct emu_cpu *cpu, unsigned r, unsigned size, uint64_t v)
{
	if (size == 8)
		cpu->gpr[r] = v;
	else if (size == 4)
		cpu->gpr[r] = (uint32_t)v;
	else {
		uint64_t mask = (1ull << (size * 8)) - 1;
		cpu->gpr[r] = (cpu->gpr[r] & ~mask) | (v & mask);
	}
	cpu->dirty |= EMU_DIRTY_REGS;
}

/* --- the XSAVE image --- */

static inline uint64_t emu_fpu_u64(const struct emu_cpu *cpu, size_t off)
{
	uint64_t v;
	memcpy(&v, cpu->fpu + off, 8);
	return v;
}

static inline void emu_fpu_set_u64(struct emu_cpu *cpu, size_t off, uint64_t v)
{
	memcpy(cpu->fpu + off, &v, 8);
}

static inline uint32_t emu_mxcsr(const struct emu_cpu *cpu)
{
	uint32_t v;
	memcpy(&v, cpu->fpu + EMU_FX_MXCSR, 4);
	return v;
}

/* SSE state written: XSTATE_BV must say so, or KVM_SET_XSAVE would load the init state. */
static inline void emu_sse_touched(struct emu_cpu *cpu)
{
	uint64_t bv = emu_fpu_u64(cpu, EMU_XSAVE_HDR);
	emu_fpu_set_u64(cpu, EMU_XSAVE_HDR, bv | EMU_XFEATURE_SSE);
	cpu->dirty |= EMU_DIRTY_FPU;
}

static inline void emu_set_mxcsr(struct emu_cpu *cpu, uint32_t v)
{
	memcpy(cpu->fpu + EMU_FX_MXCSR, &v, 4);
	emu_sse_touched(cpu);
}

static inline void emu_xmm_get(const struct emu_cpu *cpu, unsigned i, uint8_t v[16])
{
	memcpy(v, cpu->fpu + EMU_FX_XMM(i), 16);
}

static inline void emu_xmm_set(struct emu_cpu *cpu, unsigned i, const uint8_t v[16])
{
	memcpy(cpu->fpu + EMU_FX_XMM(i), v, 16);
	emu_sse_touched(cpu);
}

/* MXCSR bits a guest may set (MXCSR_MASK; 0xffbf where FXSAVE reports 0). */
static inline uint32_t emu_mxcsr_mask(const struct emu_cpu *cpu)
{
	uint32_t m = cpu->xlayout ? cpu->xlayout->mxcsr_mask : 0;
	return m ? m : 0xffbf;
}

/* Shared operand helpers (emulate_sse.c). */
/* The r/m operand as an XMM value: the register, or `size` bytes of memory zero-extended
 * (#GP for a misaligned F_ALIGN16 operand). */
enum emu_status emu_src_xmm(struct emu_ctx *c, emu_xmm *v, unsigned size);
/* Common #UD/#NM checks for a form's flags; EMU_DONE when the instruction may run. */
enum emu_status emu_check_form(struct emu_ctx *c);

/* --- executors, by file --- */

/* emulate_sse.c */
enum emu_status emu_exec_xmm_op(struct emu_ctx *c);
enum emu_status emu_exec_xmm_op_imm(struct emu_ctx *c);
enum emu_status emu_exec_shift_imm(struct emu_ctx *c);
enum emu_status emu_exec_load(struct emu_ctx *c);
enum emu_status emu_exec_store(struct emu_ctx *c);
enum emu_status emu_exec_movss(struct emu_ctx *c);
enum emu_status emu_exec_movs_store(struct emu_ctx *c);
enum emu_status emu_exec_movlh_store(struct emu_ctx *c);
enum emu_status emu_exec_movd_to_xmm(struct emu_ctx *c);
enum emu_status emu_exec_movd_from_xmm(struct emu_ctx *c);
enum emu_status emu_exec_movq_store(struct emu_ctx *c);
enum emu_status emu_exec_movmsk(struct emu_ctx *c);
enum emu_status emu_exec_pinsr(struct emu_ctx *c);
enum emu_status emu_exec_pextr(struct emu_ctx *c);
enum emu_status emu_exec_ptest(struct emu_ctx *c);
enum emu_status emu_exec_blendv(struct emu_ctx *c);

/* emulate_fp.c: forms run on the host */
enum emu_status emu_exec_host_xmm(struct emu_ctx *c);
enum emu_status emu_exec_host_cmp(struct emu_ctx *c);
enum emu_status emu_exec_host_comis(struct emu_ctx *c);
enum emu_status emu_exec_host_cvt_from_int(struct emu_ctx *c);
enum emu_status emu_exec_host_cvt_to_int(struct emu_ctx *c);

/* emulate_system.c */
enum emu_status emu_exec_ldmxcsr(struct emu_ctx *c);
enum emu_status emu_exec_stmxcsr(struct emu_ctx *c);
enum emu_status emu_exec_xgetbv(struct emu_ctx *c);
enum emu_status emu_exec_popcnt(struct emu_ctx *c);
enum emu_status emu_exec_cmpxchg8b16b(struct emu_ctx *c);
enum emu_status emu_exec_int3(struct emu_ctx *c);
enum emu_status emu_exec_clac_stac(struct emu_ctx *c);
enum emu_status emu_exec_fence(struct emu_ctx *c);
enum emu_status emu_exec_cache_hint(struct emu_ctx *c);
enum emu_status emu_exec_rdrand(struct emu_ctx *c);
enum emu_status emu_exec_rdtscp(struct emu_ctx *c);

/* emulate_xsave.c */
enum emu_status emu_exec_fxsave(struct emu_ctx *c);
enum emu_status emu_exec_fxrstor(struct emu_ctx *c);
enum emu_status emu_exec_xsave(struct emu_ctx *c);
enum emu_status emu_exec_xrstor(struct emu_ctx *c);
