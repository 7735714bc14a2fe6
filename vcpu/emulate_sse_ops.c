/* The SSE operations computed in C on the XSAVE image (exact by definition), and their form
 * table. */
#include "vcpu/emulate_impl.h"

/* --- operations --- */

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Element-wise d[i] = f(a = d[i], b = s[i]). */
#define EW(name, lane, n, expr)                                                                    \
	static void name(emu_xmm *d, const emu_xmm *s)                                             \
	{                                                                                          \
		for (unsigned i = 0; i < (n); i++) {                                               \
			__typeof__(d->lane[0]) a = d->lane[i], b = s->lane[i];                     \
			d->lane[i] = (__typeof__(a))(expr);                                        \
		}                                                                                  \
	}

EW(op_paddb, b, 16, a + b)
EW(op_paddw, w, 8, a + b)
EW(op_paddd, d, 4, a + b)
EW(op_paddq, q, 2, a + b)
EW(op_psubb, b, 16, a - b)
EW(op_psubw, w, 8, a - b)
EW(op_psubd, d, 4, a - b)
EW(op_psubq, q, 2, a - b)
EW(op_paddsb, sb, 16, clamp((int64_t)a + b, INT8_MIN, INT8_MAX))
EW(op_paddsw, sw, 8, clamp((int64_t)a + b, INT16_MIN, INT16_MAX))
EW(op_psubsb, sb, 16, clamp((int64_t)a - b, INT8_MIN, INT8_MAX))
EW(op_psubsw, sw, 8, clamp((int64_t)a - b, INT16_MIN, INT16_MAX))
EW(op_paddusb, b, 16, clamp((int64_t)a + b, 0, UINT8_MAX))
EW(op_paddusw, w, 8, clamp((int64_t)a + b, 0, UINT16_MAX))
EW(op_psubusb, b, 16, clamp((int64_t)a - b, 0, UINT8_MAX))
EW(op_psubusw, w, 8, clamp((int64_t)a - b, 0, UINT16_MAX))
EW(op_pmullw, sw, 8, (int32_t)a *b)
EW(op_pmulhw, sw, 8, ((int32_t)a * b) >> 16)
EW(op_pmulhuw, w, 8, ((uint32_t)a * b) >> 16)
EW(op_pmulld, sd, 4, (int64_t)a *b)
EW(op_pavgb, b, 16, ((unsigned)a + b + 1) >> 1)
EW(op_pavgw, w, 8, ((unsigned)a + b + 1) >> 1)
EW(op_pminub, b, 16, a < b ? a : b)
EW(op_pmaxub, b, 16, a > b ? a : b)
EW(op_pminsw, sw, 8, a < b ? a : b)
EW(op_pmaxsw, sw, 8, a > b ? a : b)
EW(op_pminsb, sb, 16, a < b ? a : b)
EW(op_pmaxsb, sb, 16, a > b ? a : b)
EW(op_pminuw, w, 8, a < b ? a : b)
EW(op_pmaxuw, w, 8, a > b ? a : b)
EW(op_pminsd, sd, 4, a < b ? a : b)
EW(op_pmaxsd, sd, 4, a > b ? a : b)
EW(op_pminud, d, 4, a < b ? a : b)
EW(op_pmaxud, d, 4, a > b ? a : b)
EW(op_pand, q, 2, a &b)
EW(op_pandn, q, 2, ~a &b)
EW(op_por, q, 2, a | b)
EW(op_pxor, q, 2, a ^ b)
EW(op_pcmpeqb, b, 16, a == b ? -1 : 0)
EW(op_pcmpeqw, w, 8, a == b ? -1 : 0)
EW(op_pcmpeqd, d, 4, a == b ? -1 : 0)
EW(op_pcmpeqq, q, 2, a == b ? -1 : 0)
EW(op_pcmpgtb, sb, 16, a > b ? -1 : 0)
EW(op_pcmpgtw, sw, 8, a > b ? -1 : 0)
EW(op_pcmpgtd, sd, 4, a > b ? -1 : 0)
EW(op_pcmpgtq, sq, 2, a > b ? -1 : 0)
EW(op_pabsb, sb, 16, b < 0 ? -b : b)
EW(op_pabsw, sw, 8, b < 0 ? -b : b)
EW(op_pabsd, sd, 4, b < 0 ? -(int64_t)b : b)

static void op_pmuludq(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = (uint64_t)d->d[0] * s->d[0];
	d->q[1] = (uint64_t)d->d[2] * s->d[2];
}

static void op_pmuldq(emu_xmm *d, const emu_xmm *s)
{
	d->sq[0] = (int64_t)d->sd[0] * s->sd[0];
	d->sq[1] = (int64_t)d->sd[2] * s->sd[2];
}

static void op_pmaddwd(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 4; i++)
		r.d[i] = (uint32_t)((int64_t)d->sw[2 * i] * s->sw[2 * i] +
				    (int64_t)d->sw[2 * i + 1] * s->sw[2 * i + 1]);
	*d = r;
}

static void op_psadbw(emu_xmm *d, const emu_xmm *s)
{
	for (unsigned half = 0; half < 2; half++) {
		uint64_t sum = 0;
		for (unsigned i = 0; i < 8; i++) {
			int diff = d->b[half * 8 + i] - s->b[half * 8 + i];
			sum += (uint64_t)(diff < 0 ? -diff : diff);
		}
		d->q[half] = sum;
	}
}

/* Interleave elements of `size` bytes from the low (high = 0) or high halves. */
static void unpack(emu_xmm *d, const emu_xmm *s, unsigned size, unsigned high)
{
	emu_xmm r;
	unsigned n = 8 / size;
	for (unsigned i = 0; i < n; i++) {
		memcpy(r.b + 2 * i * size, d->b + high * 8 + i * size, size);
		memcpy(r.b + (2 * i + 1) * size, s->b + high * 8 + i * size, size);
	}
	*d = r;
}

#define UNPACK(name, size, high)                                                                   \
	static void name(emu_xmm *d, const emu_xmm *s)                                             \
	{                                                                                          \
		unpack(d, s, size, high);                                                          \
	}
UNPACK(op_punpcklbw, 1, 0)
UNPACK(op_punpcklwd, 2, 0)
UNPACK(op_punpckldq, 4, 0)
UNPACK(op_punpcklqdq, 8, 0)
UNPACK(op_punpckhbw, 1, 1)
UNPACK(op_punpckhwd, 2, 1)
UNPACK(op_punpckhdq, 4, 1)
UNPACK(op_punpckhqdq, 8, 1)

static void op_packsswb(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 8; i++) {
		r.sb[i] = (int8_t)clamp(d->sw[i], INT8_MIN, INT8_MAX);
		r.sb[8 + i] = (int8_t)clamp(s->sw[i], INT8_MIN, INT8_MAX);
	}
	*d = r;
}

static void op_packuswb(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 8; i++) {
		r.b[i] = (uint8_t)clamp(d->sw[i], 0, UINT8_MAX);
		r.b[8 + i] = (uint8_t)clamp(s->sw[i], 0, UINT8_MAX);
	}
	*d = r;
}

static void op_packssdw(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 4; i++) {
		r.sw[i] = (int16_t)clamp(d->sd[i], INT16_MIN, INT16_MAX);
		r.sw[4 + i] = (int16_t)clamp(s->sd[i], INT16_MIN, INT16_MAX);
	}
	*d = r;
}

static void op_packusdw(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 4; i++) {
		r.w[i] = (uint16_t)clamp(d->sd[i], 0, UINT16_MAX);
		r.w[4 + i] = (uint16_t)clamp(s->sd[i], 0, UINT16_MAX);
	}
	*d = r;
}

/* Shifts: counts beyond the element width clear it (logical) or fill it with the sign. */
static void shift(emu_xmm *d, uint64_t count, unsigned size, int kind)
{
	unsigned bits = size * 8;
	for (unsigned i = 0; i < 16 / size; i++) {
		uint64_t v = 0;
		memcpy(&v, d->b + i * size, size);
		if (kind < 0) { /* arithmetic right */
			int64_t sv = (int64_t)(v << (64 - bits)) >> (64 - bits);
			v = (uint64_t)(sv >> (count >= bits ? bits - 1 : count));
		} else if (count >= bits) {
			v = 0;
		} else {
			v = kind ? v << count : v >> count;
		}
		memcpy(d->b + i * size, &v, size);
	}
}

#define SHIFTS(name, size, kind)                                                                   \
	static void name(emu_xmm *d, const emu_xmm *s)                                             \
	{                                                                                          \
		shift(d, s->q[0], size, kind);                                                     \
	}                                                                                          \
	static void name##_imm(emu_xmm *d, const emu_xmm *s, uint8_t imm)                          \
	{                                                                                          \
		(void)s;                                                                           \
		shift(d, imm, size, kind);                                                         \
	}
SHIFTS(op_psrlw, 2, 0)
SHIFTS(op_psrld, 4, 0)
SHIFTS(op_psrlq, 8, 0)
SHIFTS(op_psraw, 2, -1)
SHIFTS(op_psrad, 4, -1)
SHIFTS(op_psllw, 2, 1)
SHIFTS(op_pslld, 4, 1)
SHIFTS(op_psllq, 8, 1)

static void op_psrldq_imm(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	emu_xmm r = {0};
	(void)s;
	for (unsigned i = 0; imm < 16 && i + imm < 16; i++)
		r.b[i] = d->b[i + imm];
	*d = r;
}

static void op_pslldq_imm(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	emu_xmm r = {0};
	(void)s;
	for (unsigned i = imm; i < 16; i++)
		r.b[i] = d->b[i - imm];
	*d = r;
}

static void op_pshufd(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	for (unsigned i = 0; i < 4; i++)
		d->d[i] = s->d[(imm >> (2 * i)) & 3];
}

static void op_pshufhw(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	d->q[0] = s->q[0];
	for (unsigned i = 0; i < 4; i++)
		d->w[4 + i] = s->w[4 + ((imm >> (2 * i)) & 3)];
}

static void op_pshuflw(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	for (unsigned i = 0; i < 4; i++)
		d->w[i] = s->w[(imm >> (2 * i)) & 3];
	d->q[1] = s->q[1];
}

static void op_shufps(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	emu_xmm r;
	r.d[0] = d->d[imm & 3];
	r.d[1] = d->d[(imm >> 2) & 3];
	r.d[2] = s->d[(imm >> 4) & 3];
	r.d[3] = s->d[(imm >> 6) & 3];
	*d = r;
}

static void op_shufpd(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	emu_xmm r;
	r.q[0] = d->q[imm & 1];
	r.q[1] = s->q[(imm >> 1) & 1];
	*d = r;
}

static void op_pshufb(emu_xmm *d, const emu_xmm *s)
{
	emu_xmm r;
	for (unsigned i = 0; i < 16; i++)
		r.b[i] = (s->b[i] & 0x80) ? 0 : d->b[s->b[i] & 15];
	*d = r;
}

static void op_palignr(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	uint8_t cat[32];
	memcpy(cat, s->b, 16);
	memcpy(cat + 16, d->b, 16);
	for (unsigned i = 0; i < 16; i++)
		d->b[i] = (unsigned)imm + i < 32 ? cat[imm + i] : 0;
}

static void blend_imm(emu_xmm *d, const emu_xmm *s, uint8_t imm, unsigned size)
{
	for (unsigned i = 0; i < 16 / size; i++)
		if ((imm >> i) & 1)
			memcpy(d->b + i * size, s->b + i * size, size);
}

static void op_blendps(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	blend_imm(d, s, imm, 4);
}

static void op_blendpd(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	blend_imm(d, s, imm, 8);
}

static void op_pblendw(emu_xmm *d, const emu_xmm *s, uint8_t imm)
{
	blend_imm(d, s, imm, 2);
}

/* The selector is each element's sign bit. */
static void blendv(emu_xmm *d, const emu_xmm *s, const emu_xmm *mask, unsigned size)
{
	for (unsigned i = 0; i < 16 / size; i++)
		if (mask->b[i * size + size - 1] & 0x80)
			memcpy(d->b + i * size, s->b + i * size, size);
}

static void op_pblendvb(emu_xmm *d, const emu_xmm *s, const emu_xmm *m)
{
	blendv(d, s, m, 1);
}

static void op_blendvps(emu_xmm *d, const emu_xmm *s, const emu_xmm *m)
{
	blendv(d, s, m, 4);
}

static void op_blendvpd(emu_xmm *d, const emu_xmm *s, const emu_xmm *m)
{
	blendv(d, s, m, 8);
}

/* pmovsx/pmovzx: widen the low elements of s. */
static void widen(emu_xmm *d, const emu_xmm *s, unsigned from, unsigned to, bool sign)
{
	emu_xmm r;
	for (unsigned i = 0; i < 16 / to; i++) {
		uint64_t v = 0;
		memcpy(&v, s->b + i * from, from);
		if (sign && (v >> (from * 8 - 1)) & 1)
			v |= ~0ull << (from * 8);
		memcpy(r.b + i * to, &v, to);
	}
	*d = r;
}

#define WIDEN(name, from, to, sign)                                                                \
	static void name(emu_xmm *d, const emu_xmm *s)                                             \
	{                                                                                          \
		widen(d, s, from, to, sign);                                                       \
	}
WIDEN(op_pmovsxbw, 1, 2, true)
WIDEN(op_pmovsxbd, 1, 4, true)
WIDEN(op_pmovsxbq, 1, 8, true)
WIDEN(op_pmovsxwd, 2, 4, true)
WIDEN(op_pmovsxwq, 2, 8, true)
WIDEN(op_pmovsxdq, 4, 8, true)
WIDEN(op_pmovzxbw, 1, 2, false)
WIDEN(op_pmovzxbd, 1, 4, false)
WIDEN(op_pmovzxbq, 1, 8, false)
WIDEN(op_pmovzxwd, 2, 4, false)
WIDEN(op_pmovzxwq, 2, 8, false)
WIDEN(op_pmovzxdq, 4, 8, false)

/* Moves expressed as operations on (destination, source). */
static void op_movlow64(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = s->q[0];
}

static void op_movhigh_from_low(emu_xmm *d, const emu_xmm *s)
{
	d->q[1] = s->q[0];
}

static void op_movhlps(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = s->q[1];
}

static void op_store_high(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = s->q[1];
}

static void op_movq(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = s->q[0];
	d->q[1] = 0;
}

static void op_movddup(emu_xmm *d, const emu_xmm *s)
{
	d->q[0] = d->q[1] = s->q[0];
}

static void op_movsldup(emu_xmm *d, const emu_xmm *s)
{
	d->d[0] = d->d[1] = s->d[0];
	d->d[2] = d->d[3] = s->d[2];
}

static void op_movshdup(emu_xmm *d, const emu_xmm *s)
{
	d->d[0] = d->d[1] = s->d[1];
	d->d[2] = d->d[3] = s->d[3];
}

static uint32_t sign_bits(const emu_xmm *s, unsigned size)
{
	uint32_t m = 0;
	for (unsigned i = 0; i < 16 / size; i++)
		m |= (uint32_t)(s->b[i * size + size - 1] >> 7) << i;
	return m;
}

static uint32_t op_movmskps(const emu_xmm *s)
{
	return sign_bits(s, 4);
}

static uint32_t op_movmskpd(const emu_xmm *s)
{
	return sign_bits(s, 8);
}

static uint32_t op_pmovmskb(const emu_xmm *s)
{
	return sign_bits(s, 1);
}

/* --- the table --- */

#define SSE (F_SSE | F_FPU)
#define FORM(nm, mp, opc, p, md, sz, fl, ex)                                                       \
	.name = nm, .map = mp, .opcode = opc, .pfx = p, .mod = md, .msize = sz,                    \
	.flags = SSE | (fl), .exec = ex
/* xmm, xmm/m: an element-wise or whole-register operation. */
#define OP(nm, mp, opc, p, sz, fl, fn)                                                             \
	{                                                                                          \
		FORM(nm, mp, opc, p, MOD_ANY, sz, fl, emu_exec_xmm_op), .op.xmm = fn               \
	}
#define OPM(nm, opc, p, md, fn)                                                                    \
	{                                                                                          \
		FORM(nm, MAP_0F, opc, p, md, 8, 0, emu_exec_xmm_op), .op.xmm = fn                  \
	}
#define OPI(nm, mp, opc, p, sz, fl, fn)                                                            \
	{                                                                                          \
		FORM(nm, mp, opc, p, MOD_ANY, sz, fl, emu_exec_xmm_op_imm), .imm = 1,              \
									    .op.xmm_imm = fn       \
	}
/* The common case: 66-prefixed, xmm/m128 aligned. */
#define P66(nm, opc, fn) OP(nm, MAP_0F, opc, PFX_66, 16, F_ALIGN16, fn)
#define P38(nm, opc, fn) OP(nm, MAP_0F38, opc, PFX_66, 16, F_ALIGN16, fn)
#define SHIFT(nm, opc, r, fn)                                                                      \
	{                                                                                          \
		FORM(nm, MAP_0F, opc, PFX_66, MOD_REG, 0, 0, emu_exec_shift_imm),                  \
		    .reg = SEL(r), .imm = 1, .op.xmm_imm = fn                                      \
	}
#define MOV(nm, opc, p, md, sz, fl, ex)                                                            \
	{                                                                                          \
		FORM(nm, MAP_0F, opc, p, md, sz, fl, ex)                                           \
	}

const struct emu_form emu_sse_forms[] = {
    /* moves */
    MOV("movups", 0x10, PFX_NP, MOD_ANY, 16, 0, emu_exec_load),
    MOV("movups", 0x11, PFX_NP, MOD_ANY, 16, 0, emu_exec_store),
    MOV("movupd", 0x10, PFX_66, MOD_ANY, 16, 0, emu_exec_load),
    MOV("movupd", 0x11, PFX_66, MOD_ANY, 16, 0, emu_exec_store),
    MOV("movss", 0x10, PFX_F3, MOD_ANY, 4, 0, emu_exec_movss),
    MOV("movss", 0x11, PFX_F3, MOD_ANY, 4, 0, emu_exec_movs_store),
    MOV("movsd", 0x10, PFX_F2, MOD_ANY, 8, 0, emu_exec_movss),
    MOV("movsd", 0x11, PFX_F2, MOD_ANY, 8, 0, emu_exec_movs_store),
    OPM("movlps", 0x12, PFX_NP, MOD_MEM, op_movlow64),
    OPM("movhlps", 0x12, PFX_NP, MOD_REG, op_movhlps),
    OPM("movlpd", 0x12, PFX_66, MOD_MEM, op_movlow64),
    OP("movddup", MAP_0F, 0x12, PFX_F2, 8, 0, op_movddup),
    OP("movsldup", MAP_0F, 0x12, PFX_F3, 16, F_ALIGN16, op_movsldup),
    {FORM("movlps", MAP_0F, 0x13, PFX_NP, MOD_MEM, 8, 0, emu_exec_movlh_store),
     .op.xmm = op_movlow64},
    {FORM("movlpd", MAP_0F, 0x13, PFX_66, MOD_MEM, 8, 0, emu_exec_movlh_store),
     .op.xmm = op_movlow64},
    OP("unpcklps", MAP_0F, 0x14, PFX_NP, 16, F_ALIGN16, op_punpckldq),
    OP("unpcklpd", MAP_0F, 0x14, PFX_66, 16, F_ALIGN16, op_punpcklqdq),
    OP("unpckhps", MAP_0F, 0x15, PFX_NP, 16, F_ALIGN16, op_punpckhdq),
    OP("unpckhpd", MAP_0F, 0x15, PFX_66, 16, F_ALIGN16, op_punpckhqdq),
    OPM("movhps", 0x16, PFX_NP, MOD_MEM, op_movhigh_from_low),
    OPM("movlhps", 0x16, PFX_NP, MOD_REG, op_movhigh_from_low),
    OPM("movhpd", 0x16, PFX_66, MOD_MEM, op_movhigh_from_low),
    OP("movshdup", MAP_0F, 0x16, PFX_F3, 16, F_ALIGN16, op_movshdup),
    {FORM("movhps", MAP_0F, 0x17, PFX_NP, MOD_MEM, 8, 0, emu_exec_movlh_store),
     .op.xmm = op_store_high},
    {FORM("movhpd", MAP_0F, 0x17, PFX_66, MOD_MEM, 8, 0, emu_exec_movlh_store),
     .op.xmm = op_store_high},
    MOV("movaps", 0x28, PFX_NP, MOD_ANY, 16, F_ALIGN16, emu_exec_load),
    MOV("movaps", 0x29, PFX_NP, MOD_ANY, 16, F_ALIGN16, emu_exec_store),
    MOV("movapd", 0x28, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_load),
    MOV("movapd", 0x29, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_store),
    MOV("movntps", 0x2b, PFX_NP, MOD_MEM, 16, F_ALIGN16, emu_exec_store),
    MOV("movntpd", 0x2b, PFX_66, MOD_MEM, 16, F_ALIGN16, emu_exec_store),
    {FORM("movmskps", MAP_0F, 0x50, PFX_NP, MOD_REG, 0, 0, emu_exec_movmsk),
     .op.movmsk = op_movmskps},
    {FORM("movmskpd", MAP_0F, 0x50, PFX_66, MOD_REG, 0, 0, emu_exec_movmsk),
     .op.movmsk = op_movmskpd},
    OP("andps", MAP_0F, 0x54, PFX_NP, 16, F_ALIGN16, op_pand),
    OP("andpd", MAP_0F, 0x54, PFX_66, 16, F_ALIGN16, op_pand),
    OP("andnps", MAP_0F, 0x55, PFX_NP, 16, F_ALIGN16, op_pandn),
    OP("andnpd", MAP_0F, 0x55, PFX_66, 16, F_ALIGN16, op_pandn),
    OP("orps", MAP_0F, 0x56, PFX_NP, 16, F_ALIGN16, op_por),
    OP("orpd", MAP_0F, 0x56, PFX_66, 16, F_ALIGN16, op_por),
    OP("xorps", MAP_0F, 0x57, PFX_NP, 16, F_ALIGN16, op_pxor),
    OP("xorpd", MAP_0F, 0x57, PFX_66, 16, F_ALIGN16, op_pxor),
    /* SSE2 integer */
    P66("punpcklbw", 0x60, op_punpcklbw),
    P66("punpcklwd", 0x61, op_punpcklwd),
    P66("punpckldq", 0x62, op_punpckldq),
    P66("packsswb", 0x63, op_packsswb),
    P66("pcmpgtb", 0x64, op_pcmpgtb),
    P66("pcmpgtw", 0x65, op_pcmpgtw),
    P66("pcmpgtd", 0x66, op_pcmpgtd),
    P66("packuswb", 0x67, op_packuswb),
    P66("punpckhbw", 0x68, op_punpckhbw),
    P66("punpckhwd", 0x69, op_punpckhwd),
    P66("punpckhdq", 0x6a, op_punpckhdq),
    P66("packssdw", 0x6b, op_packssdw),
    P66("punpcklqdq", 0x6c, op_punpcklqdq),
    P66("punpckhqdq", 0x6d, op_punpckhqdq),
    {FORM("movd", MAP_0F, 0x6e, PFX_66, MOD_ANY, 0, 0, emu_exec_movd_to_xmm), .w = W_0},
    {FORM("movq", MAP_0F, 0x6e, PFX_66, MOD_ANY, 0, 0, emu_exec_movd_to_xmm), .w = W_1},
    MOV("movdqa", 0x6f, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_load),
    MOV("movdqu", 0x6f, PFX_F3, MOD_ANY, 16, 0, emu_exec_load),
    OPI("pshufd", MAP_0F, 0x70, PFX_66, 16, F_ALIGN16, op_pshufd),
    OPI("pshufhw", MAP_0F, 0x70, PFX_F3, 16, F_ALIGN16, op_pshufhw),
    OPI("pshuflw", MAP_0F, 0x70, PFX_F2, 16, F_ALIGN16, op_pshuflw),
    SHIFT("psrlw", 0x71, 2, op_psrlw_imm),
    SHIFT("psraw", 0x71, 4, op_psraw_imm),
    SHIFT("psllw", 0x71, 6, op_psllw_imm),
    SHIFT("psrld", 0x72, 2, op_psrld_imm),
    SHIFT("psrad", 0x72, 4, op_psrad_imm),
    SHIFT("pslld", 0x72, 6, op_pslld_imm),
    SHIFT("psrlq", 0x73, 2, op_psrlq_imm),
    SHIFT("psrldq", 0x73, 3, op_psrldq_imm),
    SHIFT("psllq", 0x73, 6, op_psllq_imm),
    SHIFT("pslldq", 0x73, 7, op_pslldq_imm),
    P66("pcmpeqb", 0x74, op_pcmpeqb),
    P66("pcmpeqw", 0x75, op_pcmpeqw),
    P66("pcmpeqd", 0x76, op_pcmpeqd),
    {FORM("movd", MAP_0F, 0x7e, PFX_66, MOD_ANY, 0, 0, emu_exec_movd_from_xmm), .w = W_0},
    {FORM("movq", MAP_0F, 0x7e, PFX_66, MOD_ANY, 0, 0, emu_exec_movd_from_xmm), .w = W_1},
    OP("movq", MAP_0F, 0x7e, PFX_F3, 8, 0, op_movq),
    MOV("movdqa", 0x7f, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_store),
    MOV("movdqu", 0x7f, PFX_F3, MOD_ANY, 16, 0, emu_exec_store),
    {FORM("pinsrw", MAP_0F, 0xc4, PFX_66, MOD_ANY, 2, 0, emu_exec_pinsr), .imm = 1},
    {FORM("pextrw", MAP_0F, 0xc5, PFX_66, MOD_REG, 2, 0, emu_exec_pextr), .imm = 1},
    OPI("shufps", MAP_0F, 0xc6, PFX_NP, 16, F_ALIGN16, op_shufps),
    OPI("shufpd", MAP_0F, 0xc6, PFX_66, 16, F_ALIGN16, op_shufpd),
    P66("psrlw", 0xd1, op_psrlw),
    P66("psrld", 0xd2, op_psrld),
    P66("psrlq", 0xd3, op_psrlq),
    P66("paddq", 0xd4, op_paddq),
    P66("pmullw", 0xd5, op_pmullw),
    MOV("movq", 0xd6, PFX_66, MOD_ANY, 8, 0, emu_exec_movq_store),
    {FORM("pmovmskb", MAP_0F, 0xd7, PFX_66, MOD_REG, 0, 0, emu_exec_movmsk),
     .op.movmsk = op_pmovmskb},
    P66("psubusb", 0xd8, op_psubusb),
    P66("psubusw", 0xd9, op_psubusw),
    P66("pminub", 0xda, op_pminub),
    P66("pand", 0xdb, op_pand),
    P66("paddusb", 0xdc, op_paddusb),
    P66("paddusw", 0xdd, op_paddusw),
    P66("pmaxub", 0xde, op_pmaxub),
    P66("pandn", 0xdf, op_pandn),
    P66("pavgb", 0xe0, op_pavgb),
    P66("psraw", 0xe1, op_psraw),
    P66("psrad", 0xe2, op_psrad),
    P66("pavgw", 0xe3, op_pavgw),
    P66("pmulhuw", 0xe4, op_pmulhuw),
    P66("pmulhw", 0xe5, op_pmulhw),
    MOV("movntdq", 0xe7, PFX_66, MOD_MEM, 16, F_ALIGN16, emu_exec_store),
    P66("psubsb", 0xe8, op_psubsb),
    P66("psubsw", 0xe9, op_psubsw),
    P66("pminsw", 0xea, op_pminsw),
    P66("por", 0xeb, op_por),
    P66("paddsb", 0xec, op_paddsb),
    P66("paddsw", 0xed, op_paddsw),
    P66("pmaxsw", 0xee, op_pmaxsw),
    P66("pxor", 0xef, op_pxor),
    MOV("lddqu", 0xf0, PFX_F2, MOD_MEM, 16, 0, emu_exec_load),
    P66("psllw", 0xf1, op_psllw),
    P66("pslld", 0xf2, op_pslld),
    P66("psllq", 0xf3, op_psllq),
    P66("pmuludq", 0xf4, op_pmuludq),
    P66("pmaddwd", 0xf5, op_pmaddwd),
    P66("psadbw", 0xf6, op_psadbw),
    P66("psubb", 0xf8, op_psubb),
    P66("psubw", 0xf9, op_psubw),
    P66("psubd", 0xfa, op_psubd),
    P66("psubq", 0xfb, op_psubq),
    P66("paddb", 0xfc, op_paddb),
    P66("paddw", 0xfd, op_paddw),
    P66("paddd", 0xfe, op_paddd),
    /* SSSE3, SSE4.1, SSE4.2 */
    P38("pshufb", 0x00, op_pshufb),
    {FORM("pblendvb", MAP_0F38, 0x10, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_blendv),
     .op.xmm_mask = op_pblendvb},
    {FORM("blendvps", MAP_0F38, 0x14, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_blendv),
     .op.xmm_mask = op_blendvps},
    {FORM("blendvpd", MAP_0F38, 0x15, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_blendv),
     .op.xmm_mask = op_blendvpd},
    {FORM("ptest", MAP_0F38, 0x17, PFX_66, MOD_ANY, 16, F_ALIGN16, emu_exec_ptest)},
    P38("pabsb", 0x1c, op_pabsb),
    P38("pabsw", 0x1d, op_pabsw),
    P38("pabsd", 0x1e, op_pabsd),
    OP("pmovsxbw", MAP_0F38, 0x20, PFX_66, 8, 0, op_pmovsxbw),
    OP("pmovsxbd", MAP_0F38, 0x21, PFX_66, 4, 0, op_pmovsxbd),
    OP("pmovsxbq", MAP_0F38, 0x22, PFX_66, 2, 0, op_pmovsxbq),
    OP("pmovsxwd", MAP_0F38, 0x23, PFX_66, 8, 0, op_pmovsxwd),
    OP("pmovsxwq", MAP_0F38, 0x24, PFX_66, 4, 0, op_pmovsxwq),
    OP("pmovsxdq", MAP_0F38, 0x25, PFX_66, 8, 0, op_pmovsxdq),
    P38("pmuldq", 0x28, op_pmuldq),
    P38("pcmpeqq", 0x29, op_pcmpeqq),
    P38("packusdw", 0x2b, op_packusdw),
    OP("pmovzxbw", MAP_0F38, 0x30, PFX_66, 8, 0, op_pmovzxbw),
    OP("pmovzxbd", MAP_0F38, 0x31, PFX_66, 4, 0, op_pmovzxbd),
    OP("pmovzxbq", MAP_0F38, 0x32, PFX_66, 2, 0, op_pmovzxbq),
    OP("pmovzxwd", MAP_0F38, 0x33, PFX_66, 8, 0, op_pmovzxwd),
    OP("pmovzxwq", MAP_0F38, 0x34, PFX_66, 4, 0, op_pmovzxwq),
    OP("pmovzxdq", MAP_0F38, 0x35, PFX_66, 8, 0, op_pmovzxdq),
    P38("pcmpgtq", 0x37, op_pcmpgtq),
    P38("pminsb", 0x38, op_pminsb),
    P38("pminsd", 0x39, op_pminsd),
    P38("pminuw", 0x3a, op_pminuw),
    P38("pminud", 0x3b, op_pminud),
    P38("pmaxsb", 0x3c, op_pmaxsb),
    P38("pmaxsd", 0x3d, op_pmaxsd),
    P38("pmaxuw", 0x3e, op_pmaxuw),
    P38("pmaxud", 0x3f, op_pmaxud),
    P38("pmulld", 0x40, op_pmulld),
    OPI("blendps", MAP_0F3A, 0x0c, PFX_66, 16, F_ALIGN16, op_blendps),
    OPI("blendpd", MAP_0F3A, 0x0d, PFX_66, 16, F_ALIGN16, op_blendpd),
    OPI("pblendw", MAP_0F3A, 0x0e, PFX_66, 16, F_ALIGN16, op_pblendw),
    OPI("palignr", MAP_0F3A, 0x0f, PFX_66, 16, F_ALIGN16, op_palignr),
    {FORM("pextrb", MAP_0F3A, 0x14, PFX_66, MOD_ANY, 1, 0, emu_exec_pextr), .imm = 1},
    {FORM("pextrw", MAP_0F3A, 0x15, PFX_66, MOD_ANY, 2, 0, emu_exec_pextr), .imm = 1},
    {FORM("pextrd", MAP_0F3A, 0x16, PFX_66, MOD_ANY, 4, 0, emu_exec_pextr), .imm = 1, .w = W_0},
    {FORM("pextrq", MAP_0F3A, 0x16, PFX_66, MOD_ANY, 4, 0, emu_exec_pextr), .imm = 1, .w = W_1},
    {FORM("pinsrb", MAP_0F3A, 0x20, PFX_66, MOD_ANY, 1, 0, emu_exec_pinsr), .imm = 1},
    {FORM("pinsrd", MAP_0F3A, 0x22, PFX_66, MOD_ANY, 4, 0, emu_exec_pinsr), .imm = 1, .w = W_0},
    {FORM("pinsrq", MAP_0F3A, 0x22, PFX_66, MOD_ANY, 4, 0, emu_exec_pinsr), .imm = 1, .w = W_1},
};
const unsigned emu_sse_nforms = sizeof(emu_sse_forms) / sizeof(emu_sse_forms[0]);
