/* The save-area instructions: FXSAVE/FXRSTOR and the XSAVE family, between guest memory and the
 * vCPU's XSAVE image (standard format, as KVM keeps it). Layouts, the header rules and the init
 * values follow the SDM's "Managing state using the XSAVE feature set"; every byte an instruction
 * touches is checked (and faults) before any byte is written. */
#include "vcpu/emulate_impl.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>

#define CR0_EM	   (1ull << 2)
#define CR0_TS	   (1ull << 3)
#define CR4_OSFXSR (1ull << 9)
#define EFER_FFXSR (1ull << 14)
#define REG_RAX	   0
#define REG_RDX	   2

#define FX_SIZE	    512
#define FX_X87_LO   24 /* FCW..FDP */
#define FX_ST	    32 /* ST0-ST7, 16 bytes each */
#define FX_ST_SIZE  128
#define FX_FIP	    8
#define FX_FDP	    16
#define X87_INIT_CW 0x037f

static unsigned nxmm(const struct emu_ctx *c)
{
	return c->in->long64 ? 16 : 8;
}

/* x87 state from the image (64-bit FIP/FDP) into an area laid out for the operand size: without
 * REX.W the pointers are 32-bit offsets followed by selectors, which we do not track (the CPUs
 * that deprecate FCS/FDS store zero there too). */
static void x87_to_area(const uint8_t *img, uint8_t *area, bool rex_w)
{
	memcpy(area, img, FX_X87_LO);
	memcpy(area + FX_ST, img + FX_ST, FX_ST_SIZE);
	if (!rex_w) {
		memset(area + FX_FIP + 4, 0, 4);
		memset(area + FX_FDP + 4, 0, 4);
	}
}

static void x87_from_area(uint8_t *img, const uint8_t *area, bool rex_w)
{
	memcpy(img, area, FX_X87_LO);
	memcpy(img + FX_ST, area + FX_ST, FX_ST_SIZE);
	if (!rex_w) {
		memset(img + FX_FIP + 4, 0, 4);
		memset(img + FX_FDP + 4, 0, 4);
	}
}

static void x87_init(uint8_t *img)
{
	memset(img, 0, FX_X87_LO);
	memset(img + FX_ST, 0, FX_ST_SIZE);
	img[EMU_FX_FCW] = X87_INIT_CW & 0xff;
	img[EMU_FX_FCW + 1] = X87_INIT_CW >> 8;
}

static enum emu_status fx_checks(struct emu_ctx *c, uint64_t *lin)
{
	if (c->cpu->cr0 & (CR0_TS | CR0_EM))
		return emu_raise(c, EMU_VEC_NM);
	enum emu_status s = emu_ea(c, 0, lin);
	if (s == EMU_DONE && (*lin & 15))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	return s;
}

/* XMM registers take part unless SSE is off, or the AMD fast-save mode skips them at CPL0. */
static bool fx_with_xmm(const struct emu_ctx *c)
{
	const struct emu_cpu *cpu = c->cpu;
	if (!(cpu->cr4 & CR4_OSFXSR))
		return false;
	return !((cpu->efer & EFER_FFXSR) && c->in->long64 && cpu->cpl == 0);
}

enum emu_status emu_exec_fxsave(struct emu_ctx *c)
{
	uint64_t lin;
	enum emu_status s = fx_checks(c, &lin);
	if (s != EMU_DONE)
		return s;
	uint8_t area[FX_SIZE];
	const uint8_t *img = c->cpu->fpu;
	x87_to_area(img, area, c->in->rex_w);
	memcpy(area + EMU_FX_MXCSR, img + EMU_FX_MXCSR, 8);
	size_t end = EMU_FX_XMM(0);
	if (fx_with_xmm(c)) {
		memcpy(area + end, img + end, 16 * nxmm(c));
		end += 16 * nxmm(c);
	}
	s = emu_write(c, lin, area, end);
	return s == EMU_DONE ? emu_done(c) : s;
}

enum emu_status emu_exec_fxrstor(struct emu_ctx *c)
{
	uint64_t lin;
	enum emu_status s = fx_checks(c, &lin);
	if (s != EMU_DONE)
		return s;
	uint8_t area[FX_SIZE];
	bool xmm = fx_with_xmm(c);
	size_t end = EMU_FX_XMM(0) + (xmm ? 16 * nxmm(c) : 0);
	s = emu_read(c, lin, area, end);
	if (s != EMU_DONE)
		return s;
	uint32_t mxcsr;
	memcpy(&mxcsr, area + EMU_FX_MXCSR, 4);
	if (mxcsr & ~emu_mxcsr_mask(c->cpu))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	uint8_t *img = c->cpu->fpu;
	x87_from_area(img, area, c->in->rex_w);
	memcpy(img + EMU_FX_MXCSR, &mxcsr, 4);
	if (xmm)
		memcpy(img + EMU_FX_XMM(0), area + EMU_FX_XMM(0), 16 * nxmm(c));
	uint64_t bv = emu_fpu_u64(c->cpu, EMU_XSAVE_HDR);
	emu_fpu_set_u64(c->cpu, EMU_XSAVE_HDR, bv | EMU_XFEATURE_X87 | EMU_XFEATURE_SSE);
	c->cpu->dirty |= EMU_DIRTY_FPU;
	return emu_done(c);
}

/* --- the XSAVE family --- */

struct piece {
	unsigned index;	   /* the state component */
	uint32_t area_off; /* in the guest's XSAVE area */
	uint32_t img_off;  /* in the vCPU's image */
	uint32_t size;
};

struct xsave_op {
	bool compacted; /* xsavec, xsaves, or an xrstor[s] of a compacted area */
	bool super;	/* xsaves, xrstors: IA32_XSS components too */
	uint64_t rfbm;
};

static uint64_t requested(const struct emu_ctx *c, bool super)
{
	uint64_t mask =
	    (uint64_t)(uint32_t)c->cpu->gpr[REG_RDX] << 32 | (uint32_t)c->cpu->gpr[REG_RAX];
	return (c->cpu->xcr0 | (super ? c->cpu->xss : 0)) & mask;
}

/* Where component i (i >= 2) lives: its CPUID offset, or its place in the compacted format
 * given the components present (`xcomp`). Returns false for a component the image or the layout
 * does not hold. */
static bool component_place(const struct emu_ctx *c, unsigned i, bool compacted, uint64_t xcomp,
			    struct piece *p)
{
	const struct emu_xlayout *l = c->cpu->xlayout;
	if (!l || !l->size[i] || !l->offset[i] || l->offset[i] + l->size[i] > c->cpu->fpu_size)
		return false;
	p->index = i;
	p->img_off = l->offset[i];
	p->size = l->size[i];
	if (!compacted) {
		p->area_off = l->offset[i];
		return true;
	}
	uint32_t off = EMU_XSAVE_EXT;
	for (unsigned j = 2; j <= i; j++) {
		if (!(xcomp & (1ull << j)))
			continue;
		if (l->align64 & (1ull << j))
			off = (off + 63) & ~63u;
		if (j == i)
			break;
		off += l->size[j];
	}
	p->area_off = off;
	return true;
}

static enum emu_status unsupported_component(unsigned i)
{
	err_set(ENOTSUP, "XSAVE state component %u (not in the vCPU's XSAVE image)", i);
	return EMU_UNSUPPORTED;
}

static enum emu_status save_checks(struct emu_ctx *c, uint64_t *lin)
{
	enum emu_status s = emu_ea(c, 0, lin);
	if (s == EMU_DONE && (*lin & 63))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	return s;
}

/* xsave, xsaveopt (which may always save, as here), xsavec, xsaves. */
enum emu_status emu_exec_xsave(struct emu_ctx *c)
{
	const struct emu_form *f = c->in->form;
	struct xsave_op op = {.compacted = f->opcode == 0xc7};
	op.super = op.compacted && SEL_VAL(f->reg) == 5;
	/* xsaveopt, xsavec and xsaves skip components in their initial state, as CPUs do
	 * (XSTATE_BV then says so); plain xsave writes every requested component. */
	bool skip_init = op.compacted || SEL_VAL(f->reg) == 6;
	op.rfbm = requested(c, op.super);
	uint64_t lin;
	enum emu_status s = save_checks(c, &lin);
	if (s != EMU_DONE)
		return s;
	const uint8_t *img = c->cpu->fpu;
	uint64_t inuse = emu_fpu_u64(c->cpu, EMU_XSAVE_HDR);

	/* The legacy region, as far as this instruction writes it. */
	uint8_t legacy[EMU_XSAVE_HDR];
	bool x87 = (op.rfbm & EMU_XFEATURE_X87) && (!skip_init || (inuse & EMU_XFEATURE_X87));
	bool sse = (op.rfbm & EMU_XFEATURE_SSE) && (!skip_init || (inuse & EMU_XFEATURE_SSE));
	bool mxcsr = op.compacted ? sse : (op.rfbm & (EMU_XFEATURE_SSE | EMU_XFEATURE_YMM)) != 0;
	x87_to_area(img, legacy, c->in->rex_w);
	memcpy(legacy + EMU_FX_MXCSR, img + EMU_FX_MXCSR, 8);
	memcpy(legacy + EMU_FX_XMM(0), img + EMU_FX_XMM(0), 16 * nxmm(c));

	/* The header, and the extended components. */
	uint64_t hdr[2];
	if (op.compacted) {
		hdr[0] = op.rfbm & inuse;
		hdr[1] = op.rfbm | EMU_XCOMP_COMPACTED;
	} else {
		/* XSTATE_BV bits outside RFBM keep their value in memory. */
		s = emu_read(c, lin + EMU_XSAVE_HDR, &hdr[0], 8);
		if (s != EMU_DONE)
			return s;
		hdr[0] = (hdr[0] & ~op.rfbm) | (op.rfbm & inuse);
	}
	struct piece ext[62];
	unsigned next = 0;
	size_t extent = EMU_XSAVE_HDR + (op.compacted ? 16 : 8);
	for (unsigned i = 2; i < 63; i++) {
		if (!(op.rfbm & (1ull << i)))
			continue;
		if (!component_place(c, i, op.compacted, op.rfbm, &ext[next]))
			return unsupported_component(i);
		if (skip_init && !(inuse & (1ull << i)))
			continue;
		if (ext[next].area_off + ext[next].size > extent)
			extent = ext[next].area_off + ext[next].size;
		next++;
	}

	s = emu_check_write(c, lin, extent);
	if (s != EMU_DONE)
		return s;
	if (x87) {
		s = emu_write(c, lin, legacy, FX_X87_LO);
		if (s == EMU_DONE)
			s = emu_write(c, lin + FX_ST, legacy + FX_ST, FX_ST_SIZE);
	}
	if (mxcsr && s == EMU_DONE)
		s = emu_write(c, lin + EMU_FX_MXCSR, legacy + EMU_FX_MXCSR, 8);
	if (sse && s == EMU_DONE)
		s = emu_write(c, lin + EMU_FX_XMM(0), legacy + EMU_FX_XMM(0), 16 * nxmm(c));
	if (s == EMU_DONE)
		s = emu_write(c, lin + EMU_XSAVE_HDR, hdr, op.compacted ? 16 : 8);
	for (unsigned k = 0; k < next && s == EMU_DONE; k++)
		s = emu_write(c, lin + ext[k].area_off, img + ext[k].img_off, ext[k].size);
	return s == EMU_DONE ? emu_done(c) : s;
}

/* xrstor (either form, by XCOMP_BV[63]) and xrstors (compacted only). */
enum emu_status emu_exec_xrstor(struct emu_ctx *c)
{
	const struct emu_form *f = c->in->form;
	bool super = f->opcode == 0xc7;
	uint64_t lin;
	enum emu_status s = save_checks(c, &lin);
	if (s != EMU_DONE)
		return s;
	uint64_t hdr[8];
	s = emu_read(c, lin + EMU_XSAVE_HDR, hdr, sizeof(hdr));
	if (s != EMU_DONE)
		return s;
	uint64_t xstate_bv = hdr[0], xcomp = hdr[1];
	struct xsave_op op = {.compacted = xcomp & EMU_XCOMP_COMPACTED, .super = super};
	op.rfbm = requested(c, super);
	uint64_t allowed = c->cpu->xcr0 | (super ? c->cpu->xss : 0);
	const struct emu_xlayout *l = c->cpu->xlayout;
	if (op.compacted) {
		if (!l || !l->xsavec || (xcomp & ~EMU_XCOMP_COMPACTED & ~allowed) ||
		    (xstate_bv & ~xcomp) || hdr[2] || hdr[3] || hdr[4] || hdr[5] || hdr[6] ||
		    hdr[7])
			return emu_raise_err(c, EMU_VEC_GP, 0);
	} else if (super || (xstate_bv & ~c->cpu->xcr0) || xcomp || hdr[2]) {
		return emu_raise_err(c, EMU_VEC_GP, 0);
	}

	/* Read everything first: a fault must leave the vCPU's state as it was. */
	struct piece ext[62];
	unsigned next = 0;
	size_t extent = EMU_XSAVE_EXT;
	for (unsigned i = 2; i < 63; i++) {
		if (!(op.rfbm & (1ull << i)))
			continue;
		if (!component_place(c, i, op.compacted, xcomp, &ext[next]))
			return unsupported_component(i);
		if (ext[next].area_off + ext[next].size > extent)
			extent = ext[next].area_off + ext[next].size;
		next++;
	}
	uint8_t *area = malloc(extent);
	if (!area) {
		err_set(ENOMEM, "xrstor: %zu bytes", extent);
		return EMU_UNSUPPORTED;
	}
	s = emu_read(c, lin, area, EMU_XSAVE_EXT);
	for (unsigned k = 0; k < next && s == EMU_DONE; k++)
		if (xstate_bv & (1ull << ext[k].index))
			s = emu_read(c, lin + ext[k].area_off, area + ext[k].area_off, ext[k].size);
	if (s != EMU_DONE) {
		free(area);
		return s;
	}

	/* MXCSR: the standard form loads it for SSE or AVX whatever XSTATE_BV says; the compacted
	 * form only with SSE data, and resets it otherwise. */
	uint32_t mxcsr = emu_mxcsr(c->cpu);
	bool load_mxcsr = false;
	if (!op.compacted && (op.rfbm & (EMU_XFEATURE_SSE | EMU_XFEATURE_YMM))) {
		memcpy(&mxcsr, area + EMU_FX_MXCSR, 4);
		load_mxcsr = true;
	} else if (op.compacted && (op.rfbm & EMU_XFEATURE_SSE)) {
		mxcsr = 0x1f80;
		if (xstate_bv & EMU_XFEATURE_SSE)
			memcpy(&mxcsr, area + EMU_FX_MXCSR, 4);
		load_mxcsr = true;
	}
	if (load_mxcsr && (mxcsr & ~emu_mxcsr_mask(c->cpu))) {
		free(area);
		return emu_raise_err(c, EMU_VEC_GP, 0);
	}

	uint8_t *img = c->cpu->fpu;
	if (op.rfbm & EMU_XFEATURE_X87) {
		if (xstate_bv & EMU_XFEATURE_X87)
			x87_from_area(img, area, c->in->rex_w);
		else
			x87_init(img);
	}
	if (op.rfbm & EMU_XFEATURE_SSE) {
		if (xstate_bv & EMU_XFEATURE_SSE)
			memcpy(img + EMU_FX_XMM(0), area + EMU_FX_XMM(0), 16 * nxmm(c));
		else
			memset(img + EMU_FX_XMM(0), 0, 16 * nxmm(c));
	}
	if (load_mxcsr)
		memcpy(img + EMU_FX_MXCSR, &mxcsr, 4);
	for (unsigned k = 0; k < next; k++) {
		if (xstate_bv & (1ull << ext[k].index))
			memcpy(img + ext[k].img_off, area + ext[k].area_off, ext[k].size);
		else
			memset(img + ext[k].img_off, 0, ext[k].size);
	}
	free(area);
	uint64_t bv = emu_fpu_u64(c->cpu, EMU_XSAVE_HDR);
	bv = (bv & ~op.rfbm) | (xstate_bv & op.rfbm);
	/* An MXCSR other than its initial value keeps SSE state in use. */
	if (load_mxcsr && mxcsr != 0x1f80)
		bv |= EMU_XFEATURE_SSE;
	emu_fpu_set_u64(c->cpu, EMU_XSAVE_HDR, bv);
	c->cpu->dirty |= EMU_DIRTY_FPU;
	return emu_done(c);
}
