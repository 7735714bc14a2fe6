/* Executors for the SSE forms computed in C (moves, integer arithmetic, logic, shuffles): operand
 * fetch and store around the operations of emulate_sse_ops.c. None touch the host's SSE unit. */
#include "vcpu/emulate_impl.h"

/* --- operands --- */

enum emu_status emu_src_xmm(struct emu_ctx *c, emu_xmm *v, unsigned size)
{
	memset(v, 0, sizeof(*v));
	if (!c->in->mem) {
		emu_xmm_get(c->cpu, c->in->rm, v->b);
		return EMU_DONE;
	}
	uint64_t lin;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s != EMU_DONE)
		return s;
	if ((c->in->form->flags & F_ALIGN16) && (lin & 15))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	return emu_read(c, lin, v->b, size);
}

static unsigned msize(const struct emu_ctx *c)
{
	return c->in->form->msize ? c->in->form->msize : 16;
}

/* Store `size` bytes of `v` to the r/m operand: a whole XMM register or memory. */
static enum emu_status dst_xmm_rm(struct emu_ctx *c, const emu_xmm *v, unsigned size)
{
	if (!c->in->mem) {
		emu_xmm_set(c->cpu, c->in->rm, v->b);
		return emu_done(c);
	}
	uint64_t lin;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s != EMU_DONE)
		return s;
	if ((c->in->form->flags & F_ALIGN16) && (lin & 15))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	s = emu_write(c, lin, v->b, size);
	return s == EMU_DONE ? emu_done(c) : s;
}

/* --- executors --- */

enum emu_status emu_exec_xmm_op(struct emu_ctx *c)
{
	emu_xmm d, s;
	enum emu_status st = emu_src_xmm(c, &s, msize(c));
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	c->in->form->op.xmm(&d, &s);
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

enum emu_status emu_exec_xmm_op_imm(struct emu_ctx *c)
{
	emu_xmm d, s;
	enum emu_status st = emu_src_xmm(c, &s, msize(c));
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	c->in->form->op.xmm_imm(&d, &s, c->in->imm);
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

/* 66 0f 71-73 /n ib: the register operand is ModRM.rm. */
enum emu_status emu_exec_shift_imm(struct emu_ctx *c)
{
	emu_xmm d;
	emu_xmm_get(c->cpu, c->in->rm, d.b);
	emu_xmm s = d;
	c->in->form->op.xmm_imm(&d, &s, c->in->imm);
	emu_xmm_set(c->cpu, c->in->rm, d.b);
	return emu_done(c);
}

/* xmm <- xmm/m128, whole register. */
enum emu_status emu_exec_load(struct emu_ctx *c)
{
	emu_xmm s;
	enum emu_status st = emu_src_xmm(c, &s, 16);
	if (st != EMU_DONE)
		return st;
	emu_xmm_set(c->cpu, c->in->reg, s.b);
	return emu_done(c);
}

/* xmm/m128 <- xmm, whole register. */
enum emu_status emu_exec_store(struct emu_ctx *c)
{
	emu_xmm v;
	emu_xmm_get(c->cpu, c->in->reg, v.b);
	return dst_xmm_rm(c, &v, 16);
}

/* movss/movsd load: from memory the upper part is zeroed, from a register it is kept. */
enum emu_status emu_exec_movss(struct emu_ctx *c)
{
	unsigned size = msize(c);
	emu_xmm s, d;
	enum emu_status st = emu_src_xmm(c, &s, size);
	if (st != EMU_DONE)
		return st;
	if (c->in->mem) {
		d = s;
	} else {
		emu_xmm_get(c->cpu, c->in->reg, d.b);
		memcpy(d.b, s.b, size);
	}
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

/* movss/movsd store: to memory the low element, to a register merged into its low part. */
enum emu_status emu_exec_movs_store(struct emu_ctx *c)
{
	unsigned size = msize(c);
	emu_xmm v;
	emu_xmm_get(c->cpu, c->in->reg, v.b);
	if (c->in->mem)
		return dst_xmm_rm(c, &v, size);
	emu_xmm d;
	emu_xmm_get(c->cpu, c->in->rm, d.b);
	memcpy(d.b, v.b, size);
	emu_xmm_set(c->cpu, c->in->rm, d.b);
	return emu_done(c);
}

/* movlps/movlpd/movhps/movhpd stores (memory only): one quadword, chosen by the form's msize
 * trick: the op copies the wanted half into the low quadword. */
enum emu_status emu_exec_movlh_store(struct emu_ctx *c)
{
	emu_xmm v, half;
	emu_xmm_get(c->cpu, c->in->reg, v.b);
	c->in->form->op.xmm(&half, &v);
	return dst_xmm_rm(c, &half, 8);
}

/* movd/movq r/m32/64 -> xmm, zero-extended. */
enum emu_status emu_exec_movd_to_xmm(struct emu_ctx *c)
{
	unsigned size = c->in->rex_w ? 8 : 4;
	emu_xmm d = {0};
	if (c->in->mem) {
		uint64_t lin;
		enum emu_status s = emu_ea(c, 0, &lin);
		if (s == EMU_DONE)
			s = emu_read(c, lin, d.b, size);
		if (s != EMU_DONE)
			return s;
	} else {
		d.q[0] = emu_gpr_read(c->cpu, c->in->rm, size);
	}
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

/* movd/movq xmm -> r/m32/64. */
enum emu_status emu_exec_movd_from_xmm(struct emu_ctx *c)
{
	unsigned size = c->in->rex_w ? 8 : 4;
	emu_xmm v;
	emu_xmm_get(c->cpu, c->in->reg, v.b);
	if (!c->in->mem) {
		emu_gpr_write(c->cpu, c->in->rm, size, v.q[0]);
		return emu_done(c);
	}
	uint64_t lin;
	enum emu_status s = emu_ea(c, 0, &lin);
	if (s == EMU_DONE)
		s = emu_write(c, lin, v.b, size);
	return s == EMU_DONE ? emu_done(c) : s;
}

/* 66 0f d6: movq xmm -> xmm/m64; a register destination gets its upper quadword zeroed. */
enum emu_status emu_exec_movq_store(struct emu_ctx *c)
{
	emu_xmm v;
	emu_xmm_get(c->cpu, c->in->reg, v.b);
	v.q[1] = 0;
	return dst_xmm_rm(c, &v, 8);
}

/* movmskps/movmskpd/pmovmskb: a mask into a 32-bit (zero-extended) GPR. */
enum emu_status emu_exec_movmsk(struct emu_ctx *c)
{
	emu_xmm s;
	emu_xmm_get(c->cpu, c->in->rm, s.b);
	emu_gpr_write(c->cpu, c->in->reg, 8, c->in->form->op.movmsk(&s));
	return emu_done(c);
}

/* pinsrb/pinsrw/pinsrd/pinsrq: an element from r32/r64 or memory into xmm. */
enum emu_status emu_exec_pinsr(struct emu_ctx *c)
{
	unsigned size = c->in->form->msize;
	if (size == 4 && c->in->rex_w)
		size = 8;
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
	emu_xmm d;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	unsigned lane = c->in->imm & (16 / size - 1);
	memcpy(d.b + lane * size, &v, size);
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}

/* pextrw (66 0f c5): GPR in ModRM.reg <- xmm in ModRM.rm. pextrb/w/d/q (66 0f 3a 14-16):
 * r/m <- xmm in ModRM.reg; a GPR destination is zero-extended. */
enum emu_status emu_exec_pextr(struct emu_ctx *c)
{
	unsigned size = c->in->form->msize;
	if (size == 4 && c->in->rex_w)
		size = 8;
	bool legacy = c->in->form->map == MAP_0F;
	emu_xmm s;
	emu_xmm_get(c->cpu, legacy ? c->in->rm : c->in->reg, s.b);
	unsigned lane = c->in->imm & (16 / size - 1);
	uint64_t v = 0;
	memcpy(&v, s.b + lane * size, size);
	if (legacy || !c->in->mem) {
		unsigned r = legacy ? c->in->reg : c->in->rm;
		emu_gpr_write(c->cpu, r, size == 8 ? 8 : 4, v);
		return emu_done(c);
	}
	uint64_t lin;
	enum emu_status st = emu_ea(c, 0, &lin);
	if (st == EMU_DONE)
		st = emu_write(c, lin, &v, size);
	return st == EMU_DONE ? emu_done(c) : st;
}

#define RFLAGS_CF    (1ull << 0)
#define RFLAGS_PF    (1ull << 2)
#define RFLAGS_AF    (1ull << 4)
#define RFLAGS_ZF    (1ull << 6)
#define RFLAGS_SF    (1ull << 7)
#define RFLAGS_OF    (1ull << 11)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)

/* ptest: ZF = (d AND s) == 0, CF = (s AND NOT d) == 0, the other arithmetic flags cleared. */
enum emu_status emu_exec_ptest(struct emu_ctx *c)
{
	emu_xmm d, s;
	enum emu_status st = emu_src_xmm(c, &s, 16);
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	uint64_t f = c->cpu->rflags & ~RFLAGS_ARITH;
	if (!((d.q[0] & s.q[0]) | (d.q[1] & s.q[1])))
		f |= RFLAGS_ZF;
	if (!((~d.q[0] & s.q[0]) | (~d.q[1] & s.q[1])))
		f |= RFLAGS_CF;
	c->cpu->rflags = f;
	return emu_done(c);
}

/* pblendvb/blendvps/blendvpd: XMM0 is the implicit selector. */
enum emu_status emu_exec_blendv(struct emu_ctx *c)
{
	emu_xmm d, s, mask;
	enum emu_status st = emu_src_xmm(c, &s, 16);
	if (st != EMU_DONE)
		return st;
	emu_xmm_get(c->cpu, c->in->reg, d.b);
	emu_xmm_get(c->cpu, 0, mask.b);
	c->in->form->op.xmm_mask(&d, &s, &mask);
	emu_xmm_set(c->cpu, c->in->reg, d.b);
	return emu_done(c);
}
