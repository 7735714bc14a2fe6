/* SSE floating-point forms: rounding, denormals and exception flags follow MXCSR in ways only the
 * hardware gets exactly right, so these run as fixed host instructions (emulate_hostops.S) on
 * copies of the operands, with the guest's MXCSR under all exception masks. What the instruction
 * raised is then judged against the guest's own masks. */
#include "vcpu/emulate_impl.h"

#define CR4_OSXMMEXCPT	   (1ull << 10)
#define MXCSR_FLAGS	   0x3fu
#define MXCSR_MASKS	   0x1f80u
#define MXCSR_MASK_SHIFT   7
#define RFLAGS_COMIS_OUT   ((1ull << 0) | (1ull << 2) | (1ull << 6))  /* CF, PF, ZF */
#define RFLAGS_COMIS_CLEAR ((1ull << 4) | (1ull << 7) | (1ull << 11)) /* AF, SF, OF */

/* Host stubs (emulate_hostops.S). */
#define HOST_XMM(name) void emu_host_##name(void *d, const void *s, uint32_t *mxcsr)
#define HOST_ARITH(op)                                                                             \
	HOST_XMM(op##ps);                                                                          \
	HOST_XMM(op##pd);                                                                          \
	HOST_XMM(op##ss);                                                                          \
	HOST_XMM(op##sd)
HOST_ARITH(add);
HOST_ARITH(sub);
HOST_ARITH(mul);
HOST_ARITH(div);
HOST_ARITH(min);
HOST_ARITH(max);
HOST_ARITH(sqrt);
HOST_XMM(rsqrtps);
HOST_XMM(rsqrtss);
HOST_XMM(rcpps);
HOST_XMM(rcpss);
HOST_XMM(cvtps2pd);
HOST_XMM(cvtpd2ps);
HOST_XMM(cvtss2sd);
HOST_XMM(cvtsd2ss);
HOST_XMM(cvtdq2ps);
HOST_XMM(cvtps2dq);
HOST_XMM(cvttps2dq);
HOST_XMM(cvttpd2dq);
HOST_XMM(cvtdq2pd);
HOST_XMM(cvtpd2dq);
HOST_XMM(haddpd);
HOST_XMM(haddps);
HOST_XMM(hsubpd);
HOST_XMM(hsubps);
HOST_XMM(addsubpd);
HOST_XMM(addsubps);
#define HOST_COMIS(name)                                                                           \
	void emu_host_##name(const void *a, const void *b, uint32_t *mxcsr, uint64_t *rflags)
HOST_COMIS(comiss);
HOST_COMIS(comisd);
HOST_COMIS(ucomiss);
HOST_COMIS(ucomisd);
#define HOST_FROM_INT(name) void emu_host_##name(void *d, const uint64_t *s, uint32_t *mxcsr)
HOST_FROM_INT(cvtsi2ss32);
HOST_FROM_INT(cvtsi2ss64);
HOST_FROM_INT(cvtsi2sd32);
HOST_FROM_INT(cvtsi2sd64);
#define HOST_TO_INT(name) void emu_host_##name(uint64_t *d, const void *s, uint32_t *mxcsr)
HOST_TO_INT(cvttss2si32);
HOST_TO_INT(cvttss2si64);
HOST_TO_INT(cvtss2si32);
HOST_TO_INT(cvtss2si64);
HOST_TO_INT(cvttsd2si32);
HOST_TO_INT(cvttsd2si64);
HOST_TO_INT(cvtsd2si32);
HOST_TO_INT(cvtsd2si64);
typedef void (*host_xmm_fn)(void *d, const void *s, uint32_t *mxcsr);
extern const host_xmm_fn emu_host_cmpps[8], emu_host_cmppd[8], emu_host_cmpss[8], emu_host_cmpsd[8];

/* MXCSR for the host: the guest's control bits with every exception masked and no flags, limited
 * to what this CPU accepts (the guest's value passed KVM's check against the same mask). */
static uint32_t host_mxcsr(const struct emu_ctx *c)
{
	return ((emu_mxcsr(c->cpu) & ~MXCSR_FLAGS) | MXCSR_MASKS) & emu_mxcsr_mask(c->cpu);
}

/* Fold the raised flags into the guest's MXCSR; an exception the guest left unmasked makes the
 * instruction fault (#XM, or #UD without CR4.OSXMMEXCPT) with its destination unchanged. */
static enum emu_status simd_result(struct emu_ctx *c, uint32_t out)
{
	uint32_t before = emu_mxcsr(c->cpu);
	uint32_t raised = out & MXCSR_FLAGS;
	if ((before | raised) != before)
		emu_set_mxcsr(c->cpu, before | raised);
	uint32_t unmasked = raised & ~(before >> MXCSR_MASK_SHIFT);
	if (unmasked)
		return emu_raise(c, (c->cpu->cr4 & CR4_OSXMMEXCPT) ? EMU_VEC_XM : EMU_VEC_UD);
	return EMU_DONE;
}

static unsigned msize(const struct emu_ctx *c)
{
	return c->in->form->msize ? c->in->form->msize : 16;
}

static enum emu_status run_xmm(struct emu_ctx *c, host_xmm_fn fn)
{
	emu_xmm d, s;
	enum emu_status st = emu_src_xmm(c, &s, msize(c));
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	uint32_t mx = host_mxcsr(c);
	fn(d.b, s.b, &mx);
	st = simd_result(c, mx);
	if (st != EMU_DONE)
		return st;
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

enum emu_status emu_exec_host_xmm(struct emu_ctx *c)
{
	return run_xmm(c, c->in->form->op.host);
}

enum emu_status emu_exec_host_cmp(struct emu_ctx *c)
{
	return run_xmm(c, c->in->form->op.host_cmp[c->in->imm & 7]);
}

enum emu_status emu_exec_host_comis(struct emu_ctx *c)
{
	emu_xmm a, b;
	enum emu_status st = emu_src_xmm(c, &b, msize(c));
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, a.b);
	uint32_t mx = host_mxcsr(c);
	uint64_t flags = 0;
	c->in->form->op.host_comis(a.b, b.b, &mx, &flags);
	st = simd_result(c, mx);
	if (st != EMU_DONE)
		return st;
	c->cpu->rflags = (c->cpu->rflags & ~(RFLAGS_COMIS_OUT | RFLAGS_COMIS_CLEAR)) |
			 (flags & RFLAGS_COMIS_OUT);
	return emu_done(c);
}

/* cvtsi2ss/cvtsi2sd: r/m32 or r/m64 (REX.W picks the form, and with it the stub). */
enum emu_status emu_exec_host_cvt_from_int(struct emu_ctx *c)
{
	unsigned size = c->in->rex_w ? 8 : 4;
	uint64_t v = 0;
	if (c->in->mem) {
		uint64_t lin;
		enum emu_status st = emu_ea(c, 0, &lin);
		if (st == EMU_DONE)
			st = emu_read(c, lin, &v, size);
		if (st != EMU_DONE)
			return st;
	} else {
		v = emu_gpr_read(c->cpu, c->in->rm, size);
	}
	emu_xmm d;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	uint32_t mx = host_mxcsr(c);
	c->in->form->op.host_from_int(d.b, &v, &mx);
	enum emu_status st = simd_result(c, mx);
	if (st != EMU_DONE)
		return st;
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

/* cvt(t)ss2si/cvt(t)sd2si: xmm/m32 or xmm/m64 into r32 or r64. */
enum emu_status emu_exec_host_cvt_to_int(struct emu_ctx *c)
{
	emu_xmm s;
	enum emu_status st = emu_src_xmm(c, &s, msize(c));
	if (st != EMU_DONE)
		return st;
	uint32_t mx = host_mxcsr(c);
	uint64_t v = 0;
	c->in->form->op.host_to_int(&v, s.b, &mx);
	st = simd_result(c, mx);
	if (st != EMU_DONE)
		return st;
	emu_gpr_write(c->cpu, c->in->reg, c->in->rex_w ? 8 : 4, v);
	return emu_done(c);
}

#define FP (F_SSE | F_FPU)
#define FORM(nm, opc, p, sz, fl, ex)                                                               \
	.name = nm, .map = MAP_0F, .opcode = opc, .pfx = p, .mod = MOD_ANY, .msize = sz,           \
	.flags = FP | (fl), .exec = ex
#define X(nm, opc, p, sz, fl, fn)                                                                  \
	{                                                                                          \
		FORM(#nm, opc, p, sz, fl, emu_exec_host_xmm), .op.host = fn                        \
	}
#define PACKED(nm, opc, p) X(nm, opc, p, 16, F_ALIGN16, emu_host_##nm)
#define ARITH(op, opc)                                                                             \
	PACKED(op##ps, opc, PFX_NP), PACKED(op##pd, opc, PFX_66),                                  \
	    X(op##ss, opc, PFX_F3, 4, 0, emu_host_##op##ss),                                       \
	    X(op##sd, opc, PFX_F2, 8, 0, emu_host_##op##sd)
#define CMP(nm, p, sz, fl)                                                                         \
	{                                                                                          \
		FORM(#nm, 0xc2, p, sz, fl, emu_exec_host_cmp), .imm = 1,                           \
							       .op.host_cmp = emu_host_##nm        \
	}
#define COMIS(nm, opc, p, sz)                                                                      \
	{                                                                                          \
		FORM(#nm, opc, p, sz, 0, emu_exec_host_comis), .op.host_comis = emu_host_##nm      \
	}
#define FROM_INT(nm, p, wb, fn)                                                                    \
	{                                                                                          \
		FORM(#nm, 0x2a, p, 0, 0, emu_exec_host_cvt_from_int), .w = wb,                     \
								      .op.host_from_int = fn       \
	}
#define TO_INT(nm, opc, p, sz, wb, fn)                                                             \
	{                                                                                          \
		FORM(#nm, opc, p, sz, 0, emu_exec_host_cvt_to_int), .w = wb, .op.host_to_int = fn  \
	}

const struct emu_form emu_fp_forms[] = {
    ARITH(sqrt, 0x51),
    ARITH(add, 0x58),
    ARITH(mul, 0x59),
    ARITH(sub, 0x5c),
    ARITH(min, 0x5d),
    ARITH(div, 0x5e),
    ARITH(max, 0x5f),
    PACKED(rsqrtps, 0x52, PFX_NP),
    X(rsqrtss, 0x52, PFX_F3, 4, 0, emu_host_rsqrtss),
    PACKED(rcpps, 0x53, PFX_NP),
    X(rcpss, 0x53, PFX_F3, 4, 0, emu_host_rcpss),
    X(cvtps2pd, 0x5a, PFX_NP, 8, 0, emu_host_cvtps2pd),
    PACKED(cvtpd2ps, 0x5a, PFX_66),
    X(cvtss2sd, 0x5a, PFX_F3, 4, 0, emu_host_cvtss2sd),
    X(cvtsd2ss, 0x5a, PFX_F2, 8, 0, emu_host_cvtsd2ss),
    PACKED(cvtdq2ps, 0x5b, PFX_NP),
    PACKED(cvtps2dq, 0x5b, PFX_66),
    PACKED(cvttps2dq, 0x5b, PFX_F3),
    PACKED(cvttpd2dq, 0xe6, PFX_66),
    X(cvtdq2pd, 0xe6, PFX_F3, 8, 0, emu_host_cvtdq2pd),
    PACKED(cvtpd2dq, 0xe6, PFX_F2),
    PACKED(haddpd, 0x7c, PFX_66),
    PACKED(haddps, 0x7c, PFX_F2),
    PACKED(hsubpd, 0x7d, PFX_66),
    PACKED(hsubps, 0x7d, PFX_F2),
    PACKED(addsubpd, 0xd0, PFX_66),
    PACKED(addsubps, 0xd0, PFX_F2),
    CMP(cmpps, PFX_NP, 16, F_ALIGN16),
    CMP(cmppd, PFX_66, 16, F_ALIGN16),
    CMP(cmpss, PFX_F3, 4, 0),
    CMP(cmpsd, PFX_F2, 8, 0),
    COMIS(ucomiss, 0x2e, PFX_NP, 4),
    COMIS(ucomisd, 0x2e, PFX_66, 8),
    COMIS(comiss, 0x2f, PFX_NP, 4),
    COMIS(comisd, 0x2f, PFX_66, 8),
    FROM_INT(cvtsi2ss, PFX_F3, W_0, emu_host_cvtsi2ss32),
    FROM_INT(cvtsi2ss, PFX_F3, W_1, emu_host_cvtsi2ss64),
    FROM_INT(cvtsi2sd, PFX_F2, W_0, emu_host_cvtsi2sd32),
    FROM_INT(cvtsi2sd, PFX_F2, W_1, emu_host_cvtsi2sd64),
    TO_INT(cvttss2si, 0x2c, PFX_F3, 4, W_0, emu_host_cvttss2si32),
    TO_INT(cvttss2si, 0x2c, PFX_F3, 4, W_1, emu_host_cvttss2si64),
    TO_INT(cvttsd2si, 0x2c, PFX_F2, 8, W_0, emu_host_cvttsd2si32),
    TO_INT(cvttsd2si, 0x2c, PFX_F2, 8, W_1, emu_host_cvttsd2si64),
    TO_INT(cvtss2si, 0x2d, PFX_F3, 4, W_0, emu_host_cvtss2si32),
    TO_INT(cvtss2si, 0x2d, PFX_F3, 4, W_1, emu_host_cvtss2si64),
    TO_INT(cvtsd2si, 0x2d, PFX_F2, 8, W_0, emu_host_cvtsd2si32),
    TO_INT(cvtsd2si, 0x2d, PFX_F2, 8, W_1, emu_host_cvtsd2si64),
};
const unsigned emu_fp_nforms = sizeof(emu_fp_forms) / sizeof(emu_fp_forms[0]);
