/* The emulator's SSE forms against the host CPU: each encoding below is assembled by hand (legacy
 * prefix, REX, opcode, ModRM, displacement, immediate), run natively and in the emulator from the
 * same random registers and memory, and the results compared: every GPR, the arithmetic flags,
 * XMM0-15, MXCSR and the memory operand. Also the decoder's own rules. */
#include "tests/unit/test_emulate_harness.h"

#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>

enum { REG = 1, MEM = 2, BOTH = 3 };

struct enc {
	const char *name; /* the form the emulator must decode it as */
	uint8_t pfx;	  /* 0, 0x66, 0xf2 or 0xf3 */
	uint8_t op[3];
	uint8_t oplen;
	int8_t fixreg; /* ModRM.reg of a group opcode, -1: a register operand */
	bool imm;
	bool w;
	uint8_t avail; /* register and/or memory forms of r/m */
};

#define E(nm, p, o1, av)                                                                           \
	{                                                                                          \
		nm, p, {0x0f, o1}, 2, -1, false, false, av                                         \
	}
#define EI(nm, p, o1, av)                                                                          \
	{                                                                                          \
		nm, p, {0x0f, o1}, 2, -1, true, false, av                                          \
	}
#define EW(nm, p, o1, w, av)                                                                       \
	{                                                                                          \
		nm, p, {0x0f, o1}, 2, -1, false, w, av                                             \
	}
#define E38(nm, o2, av)                                                                            \
	{                                                                                          \
		nm, 0x66, {0x0f, 0x38, o2}, 3, -1, false, false, av                                \
	}
#define E3A(nm, o2, w, av)                                                                         \
	{                                                                                          \
		nm, 0x66, {0x0f, 0x3a, o2}, 3, -1, true, w, av                                     \
	}
#define ESHIFT(nm, o1, r)                                                                          \
	{                                                                                          \
		nm, 0x66, {0x0f, o1}, 2, r, true, false, REG                                       \
	}
#define E4(base, o1)                                                                               \
	E(base "ps", 0, o1, BOTH), E(base "pd", 0x66, o1, BOTH), E(base "ss", 0xf3, o1, BOTH),     \
	    E(base "sd", 0xf2, o1, BOTH)

static const struct enc sse_encodings[] = {
    E("movups", 0, 0x10, BOTH),		E("movups", 0, 0x11, BOTH),
    E("movupd", 0x66, 0x10, BOTH),	E("movupd", 0x66, 0x11, BOTH),
    E("movss", 0xf3, 0x10, BOTH),	E("movss", 0xf3, 0x11, BOTH),
    E("movsd", 0xf2, 0x10, BOTH),	E("movsd", 0xf2, 0x11, BOTH),
    E("movlps", 0, 0x12, MEM),		E("movhlps", 0, 0x12, REG),
    E("movlpd", 0x66, 0x12, MEM),	E("movddup", 0xf2, 0x12, BOTH),
    E("movsldup", 0xf3, 0x12, BOTH),	E("movlps", 0, 0x13, MEM),
    E("movlpd", 0x66, 0x13, MEM),	E("unpcklps", 0, 0x14, BOTH),
    E("unpcklpd", 0x66, 0x14, BOTH),	E("unpckhps", 0, 0x15, BOTH),
    E("unpckhpd", 0x66, 0x15, BOTH),	E("movhps", 0, 0x16, MEM),
    E("movlhps", 0, 0x16, REG),		E("movhpd", 0x66, 0x16, MEM),
    E("movshdup", 0xf3, 0x16, BOTH),	E("movhps", 0, 0x17, MEM),
    E("movhpd", 0x66, 0x17, MEM),	E("movaps", 0, 0x28, BOTH),
    E("movaps", 0, 0x29, BOTH),		E("movapd", 0x66, 0x28, BOTH),
    E("movapd", 0x66, 0x29, BOTH),	E("movntps", 0, 0x2b, MEM),
    E("movntpd", 0x66, 0x2b, MEM),	E("movmskps", 0, 0x50, REG),
    E("movmskpd", 0x66, 0x50, REG),	E("andps", 0, 0x54, BOTH),
    E("andpd", 0x66, 0x54, BOTH),	E("andnps", 0, 0x55, BOTH),
    E("andnpd", 0x66, 0x55, BOTH),	E("orps", 0, 0x56, BOTH),
    E("orpd", 0x66, 0x56, BOTH),	E("xorps", 0, 0x57, BOTH),
    E("xorpd", 0x66, 0x57, BOTH),	E("punpcklbw", 0x66, 0x60, BOTH),
    E("punpcklwd", 0x66, 0x61, BOTH),	E("punpckldq", 0x66, 0x62, BOTH),
    E("packsswb", 0x66, 0x63, BOTH),	E("pcmpgtb", 0x66, 0x64, BOTH),
    E("pcmpgtw", 0x66, 0x65, BOTH),	E("pcmpgtd", 0x66, 0x66, BOTH),
    E("packuswb", 0x66, 0x67, BOTH),	E("punpckhbw", 0x66, 0x68, BOTH),
    E("punpckhwd", 0x66, 0x69, BOTH),	E("punpckhdq", 0x66, 0x6a, BOTH),
    E("packssdw", 0x66, 0x6b, BOTH),	E("punpcklqdq", 0x66, 0x6c, BOTH),
    E("punpckhqdq", 0x66, 0x6d, BOTH),	EW("movd", 0x66, 0x6e, false, BOTH),
    EW("movq", 0x66, 0x6e, true, BOTH), E("movdqa", 0x66, 0x6f, BOTH),
    E("movdqu", 0xf3, 0x6f, BOTH),	EI("pshufd", 0x66, 0x70, BOTH),
    EI("pshufhw", 0xf3, 0x70, BOTH),	EI("pshuflw", 0xf2, 0x70, BOTH),
    ESHIFT("psrlw", 0x71, 2),		ESHIFT("psraw", 0x71, 4),
    ESHIFT("psllw", 0x71, 6),		ESHIFT("psrld", 0x72, 2),
    ESHIFT("psrad", 0x72, 4),		ESHIFT("pslld", 0x72, 6),
    ESHIFT("psrlq", 0x73, 2),		ESHIFT("psrldq", 0x73, 3),
    ESHIFT("psllq", 0x73, 6),		ESHIFT("pslldq", 0x73, 7),
    E("pcmpeqb", 0x66, 0x74, BOTH),	E("pcmpeqw", 0x66, 0x75, BOTH),
    E("pcmpeqd", 0x66, 0x76, BOTH),	EW("movd", 0x66, 0x7e, false, BOTH),
    EW("movq", 0x66, 0x7e, true, BOTH), E("movq", 0xf3, 0x7e, BOTH),
    E("movdqa", 0x66, 0x7f, BOTH),	E("movdqu", 0xf3, 0x7f, BOTH),
    EI("pinsrw", 0x66, 0xc4, BOTH),	EI("pextrw", 0x66, 0xc5, REG),
    EI("shufps", 0, 0xc6, BOTH),	EI("shufpd", 0x66, 0xc6, BOTH),
    E("psrlw", 0x66, 0xd1, BOTH),	E("psrld", 0x66, 0xd2, BOTH),
    E("psrlq", 0x66, 0xd3, BOTH),	E("paddq", 0x66, 0xd4, BOTH),
    E("pmullw", 0x66, 0xd5, BOTH),	E("movq", 0x66, 0xd6, BOTH),
    E("pmovmskb", 0x66, 0xd7, REG),	E("psubusb", 0x66, 0xd8, BOTH),
    E("psubusw", 0x66, 0xd9, BOTH),	E("pminub", 0x66, 0xda, BOTH),
    E("pand", 0x66, 0xdb, BOTH),	E("paddusb", 0x66, 0xdc, BOTH),
    E("paddusw", 0x66, 0xdd, BOTH),	E("pmaxub", 0x66, 0xde, BOTH),
    E("pandn", 0x66, 0xdf, BOTH),	E("pavgb", 0x66, 0xe0, BOTH),
    E("psraw", 0x66, 0xe1, BOTH),	E("psrad", 0x66, 0xe2, BOTH),
    E("pavgw", 0x66, 0xe3, BOTH),	E("pmulhuw", 0x66, 0xe4, BOTH),
    E("pmulhw", 0x66, 0xe5, BOTH),	E("movntdq", 0x66, 0xe7, MEM),
    E("psubsb", 0x66, 0xe8, BOTH),	E("psubsw", 0x66, 0xe9, BOTH),
    E("pminsw", 0x66, 0xea, BOTH),	E("por", 0x66, 0xeb, BOTH),
    E("paddsb", 0x66, 0xec, BOTH),	E("paddsw", 0x66, 0xed, BOTH),
    E("pmaxsw", 0x66, 0xee, BOTH),	E("pxor", 0x66, 0xef, BOTH),
    E("lddqu", 0xf2, 0xf0, MEM),	E("psllw", 0x66, 0xf1, BOTH),
    E("pslld", 0x66, 0xf2, BOTH),	E("psllq", 0x66, 0xf3, BOTH),
    E("pmuludq", 0x66, 0xf4, BOTH),	E("pmaddwd", 0x66, 0xf5, BOTH),
    E("psadbw", 0x66, 0xf6, BOTH),	E("psubb", 0x66, 0xf8, BOTH),
    E("psubw", 0x66, 0xf9, BOTH),	E("psubd", 0x66, 0xfa, BOTH),
    E("psubq", 0x66, 0xfb, BOTH),	E("paddb", 0x66, 0xfc, BOTH),
    E("paddw", 0x66, 0xfd, BOTH),	E("paddd", 0x66, 0xfe, BOTH),
    E38("pshufb", 0x00, BOTH),		E38("pblendvb", 0x10, BOTH),
    E38("blendvps", 0x14, BOTH),	E38("blendvpd", 0x15, BOTH),
    E38("ptest", 0x17, BOTH),		E38("pabsb", 0x1c, BOTH),
    E38("pabsw", 0x1d, BOTH),		E38("pabsd", 0x1e, BOTH),
    E38("pmovsxbw", 0x20, BOTH),	E38("pmovsxbd", 0x21, BOTH),
    E38("pmovsxbq", 0x22, BOTH),	E38("pmovsxwd", 0x23, BOTH),
    E38("pmovsxwq", 0x24, BOTH),	E38("pmovsxdq", 0x25, BOTH),
    E38("pmuldq", 0x28, BOTH),		E38("pcmpeqq", 0x29, BOTH),
    E38("packusdw", 0x2b, BOTH),	E38("pmovzxbw", 0x30, BOTH),
    E38("pmovzxbd", 0x31, BOTH),	E38("pmovzxbq", 0x32, BOTH),
    E38("pmovzxwd", 0x33, BOTH),	E38("pmovzxwq", 0x34, BOTH),
    E38("pmovzxdq", 0x35, BOTH),	E38("pcmpgtq", 0x37, BOTH),
    E38("pminsb", 0x38, BOTH),		E38("pminsd", 0x39, BOTH),
    E38("pminuw", 0x3a, BOTH),		E38("pminud", 0x3b, BOTH),
    E38("pmaxsb", 0x3c, BOTH),		E38("pmaxsd", 0x3d, BOTH),
    E38("pmaxuw", 0x3e, BOTH),		E38("pmaxud", 0x3f, BOTH),
    E38("pmulld", 0x40, BOTH),		E3A("blendps", 0x0c, false, BOTH),
    E3A("blendpd", 0x0d, false, BOTH),	E3A("pblendw", 0x0e, false, BOTH),
    E3A("palignr", 0x0f, false, BOTH),	E3A("pextrb", 0x14, false, BOTH),
    E3A("pextrw", 0x15, false, BOTH),	E3A("pextrd", 0x16, false, BOTH),
    E3A("pextrq", 0x16, true, BOTH),	E3A("pinsrb", 0x20, false, BOTH),
    E3A("pinsrd", 0x22, false, BOTH),	E3A("pinsrq", 0x22, true, BOTH),
};

static const struct enc fp_encodings[] = {
    E4("sqrt", 0x51),
    E4("add", 0x58),
    E4("mul", 0x59),
    E4("sub", 0x5c),
    E4("min", 0x5d),
    E4("div", 0x5e),
    E4("max", 0x5f),
    E("rsqrtps", 0, 0x52, BOTH),
    E("rsqrtss", 0xf3, 0x52, BOTH),
    E("rcpps", 0, 0x53, BOTH),
    E("rcpss", 0xf3, 0x53, BOTH),
    E("cvtps2pd", 0, 0x5a, BOTH),
    E("cvtpd2ps", 0x66, 0x5a, BOTH),
    E("cvtss2sd", 0xf3, 0x5a, BOTH),
    E("cvtsd2ss", 0xf2, 0x5a, BOTH),
    E("cvtdq2ps", 0, 0x5b, BOTH),
    E("cvtps2dq", 0x66, 0x5b, BOTH),
    E("cvttps2dq", 0xf3, 0x5b, BOTH),
    E("cvttpd2dq", 0x66, 0xe6, BOTH),
    E("cvtdq2pd", 0xf3, 0xe6, BOTH),
    E("cvtpd2dq", 0xf2, 0xe6, BOTH),
    E("haddpd", 0x66, 0x7c, BOTH),
    E("haddps", 0xf2, 0x7c, BOTH),
    E("hsubpd", 0x66, 0x7d, BOTH),
    E("hsubps", 0xf2, 0x7d, BOTH),
    E("addsubpd", 0x66, 0xd0, BOTH),
    E("addsubps", 0xf2, 0xd0, BOTH),
    EI("cmpps", 0, 0xc2, BOTH),
    EI("cmppd", 0x66, 0xc2, BOTH),
    EI("cmpss", 0xf3, 0xc2, BOTH),
    EI("cmpsd", 0xf2, 0xc2, BOTH),
    E("ucomiss", 0, 0x2e, BOTH),
    E("ucomisd", 0x66, 0x2e, BOTH),
    E("comiss", 0, 0x2f, BOTH),
    E("comisd", 0x66, 0x2f, BOTH),
    EW("cvtsi2ss", 0xf3, 0x2a, false, BOTH),
    EW("cvtsi2ss", 0xf3, 0x2a, true, BOTH),
    EW("cvtsi2sd", 0xf2, 0x2a, false, BOTH),
    EW("cvtsi2sd", 0xf2, 0x2a, true, BOTH),
    EW("cvttss2si", 0xf3, 0x2c, false, BOTH),
    EW("cvttss2si", 0xf3, 0x2c, true, BOTH),
    EW("cvttsd2si", 0xf2, 0x2c, false, BOTH),
    EW("cvttsd2si", 0xf2, 0x2c, true, BOTH),
    EW("cvtss2si", 0xf3, 0x2d, false, BOTH),
    EW("cvtss2si", 0xf3, 0x2d, true, BOTH),
    EW("cvtsd2si", 0xf2, 0x2d, false, BOTH),
    EW("cvtsd2si", 0xf2, 0x2d, true, BOTH),
};

#define N_SSE (sizeof(sse_encodings) / sizeof(sse_encodings[0]))
#define N_FP  (sizeof(fp_encodings) / sizeof(fp_encodings[0]))

/* Register-register with low registers, with high ones (REX.R, REX.B), and [rbx+disp8]. */
enum variant { V_LOW, V_HIGH, V_MEM, V_COUNT };

static size_t encode(const struct enc *e, enum variant v, uint8_t imm, uint8_t *out)
{
	size_t n = 0;
	unsigned reg = v == V_HIGH ? 9 : 0, rm = v == V_HIGH ? 10 : 1;
	if (e->fixreg >= 0)
		reg = (unsigned)e->fixreg;
	if (e->pfx)
		out[n++] = e->pfx;
	uint8_t rex = 0x40 | (e->w ? 8 : 0);
	if (v == V_HIGH && e->fixreg < 0)
		rex |= 4;
	if (v == V_HIGH)
		rex |= 1;
	if (rex != 0x40)
		out[n++] = rex;
	memcpy(out + n, e->op, e->oplen);
	n += e->oplen;
	if (v == V_MEM) {
		out[n++] = (uint8_t)(0x40 | (reg & 7) << 3 | RBX); /* [rbx + disp8] */
		out[n++] = BUF_DISP;
	} else {
		out[n++] = (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7));
	}
	if (e->imm)
		out[n++] = imm;
	return n;
}

static void run_encodings(const struct enc *encs, size_t n, unsigned seeds, bool vary_mxcsr)
{
	struct guest g;
	guest_init(&g);
	for (size_t i = 0; i < n; i++) {
		const struct enc *e = &encs[i];
		for (unsigned seed = 0; seed < seeds; seed++) {
			struct native_state st;
			random_state(&st, seed * 1000 + i);
			uint64_t r = seed + 77;
			if (vary_mxcsr) /* rounding, DAZ and FTZ; exceptions stay masked */
				st.mxcsr = 0x1f80 | (rng_next(&r) & 0xe040);
			uint8_t mem[BUF_SIZE];
			rng_fill(&r, mem, sizeof(mem));
			uint8_t imm = (uint8_t)rng_next(&r);
			if (e->op[1] == 0xc2)
				imm &= 7; /* legacy cmpps/pd/ss/sd: predicates 0-7 */
			for (unsigned v = 0; v < V_COUNT; v++) {
				if ((v == V_MEM && !(e->avail & MEM)) ||
				    (v != V_MEM && !(e->avail & REG)))
					continue;
				uint8_t bytes[16];
				size_t len = encode(e, v, imm, bytes);
				compare(&g, e->name, bytes, len, &st, mem, v == V_MEM);
			}
		}
	}
	guest_fini(&g);
}

Test(emulate, sse_moves_integer_and_shuffles_match_the_host)
{
	run_encodings(sse_encodings, N_SSE, 6, false);
}

Test(emulate, sse_floating_point_matches_the_host_in_every_rounding_mode)
{
	run_encodings(fp_encodings, N_FP, 6, true);
}

/* Each form listed in the emulator's tables has an encoding here or in the system tests. */
Test(emulate, every_form_has_a_test_encoding)
{
	static const char *const elsewhere[] = {
	    "fxsave",  "fxrstor", "ldmxcsr",	"stmxcsr",   "xsave",	   "xrstor", "xsaveopt",
	    "xrstors", "xsavec",  "xsaves",	"cmpxchg8b", "cmpxchg16b", "lfence", "mfence",
	    "sfence",  "clwb",	  "clflushopt", "xgetbv",    "clac",	   "stac",   "popcnt",
	    "int3",    "rdrand",  "rdseed",	"rdtscp",
	};
	for (unsigned f = 0; f < emu_form_count(); f++) {
		const char *name = emu_form_name(f);
		bool found = false;
		for (size_t i = 0; i < N_SSE && !found; i++)
			found = !strcmp(sse_encodings[i].name, name);
		for (size_t i = 0; i < N_FP && !found; i++)
			found = !strcmp(fp_encodings[i].name, name);
		for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]) && !found; i++)
			found = !strcmp(elsewhere[i], name);
		cr_assert(found, "form %s has no test", name);
	}
}

Test(emulate, unmasked_simd_exception_is_xm_with_the_destination_unchanged)
{
	struct guest g;
	guest_init(&g);
	/* divps xmm1, xmm0 with xmm1 = 0: divide-by-zero, unmasked (ZM clear). */
	static const uint8_t divps[] = {0x0f, 0x5e, 0xc1};
	struct native_state st;
	random_state(&st, 5);
	float one[4] = {1, 2, 3, 4};
	memcpy(st.xmm[0], one, 16);
	memset(st.xmm[1], 0, 16);
	st.mxcsr = 0x1f80 & ~0x200u;
	struct native_state nat = st;
	cr_assert(eq(int, native_run(&nat, divps, sizeof(divps)), SIGFPE), "the host faults");

	guest_load(&g, &st);
	cr_assert(eq(int, guest_run(&g, divps, sizeof(divps)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_XM));
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), one, 16), 0), "destination unchanged");
	uint32_t mx;
	memcpy(&mx, g.fpu + EMU_FX_MXCSR, 4);
	cr_assert(eq(u32, mx & 0x3f, 0x4), "ZE flag set: 0x%x", mx);

	/* Without CR4.OSXMMEXCPT the same exception is #UD. */
	guest_load(&g, &st);
	g.cpu.cr4 &= ~(1ull << 10);
	cr_assert(eq(int, guest_run(&g, divps, sizeof(divps)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD));

	/* Masked, it completes and only sets the flag. */
	st.mxcsr = 0x1f80;
	guest_load(&g, &st);
	cr_assert(eq(int, guest_run(&g, divps, sizeof(divps)), EMU_DONE));
	memcpy(&mx, g.fpu + EMU_FX_MXCSR, 4);
	cr_assert(eq(u32, mx, 0x1f84));
	guest_fini(&g);
}

Test(emulate, misaligned_m128_operands_fault_like_the_host)
{
	struct guest g;
	guest_init(&g);
	/* pxor xmm0, [rbx+0x11] (aligned form) and movdqu xmm0, [rbx+0x11] (unaligned form) */
	static const uint8_t pxor[] = {0x66, 0x0f, 0xef, 0x43, 0x11};
	static const uint8_t movdqu[] = {0xf3, 0x0f, 0x6f, 0x43, 0x11};
	struct native_state st;
	random_state(&st, 9);
	uint8_t mem[BUF_SIZE] = {0};
	compare(&g, "pxor", pxor, sizeof(pxor), &st, mem, true);
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	compare(&g, "movdqu", movdqu, sizeof(movdqu), &st, mem, true);
	guest_fini(&g);
}

Test(emulate, sse_needs_osfxsr_and_a_clear_ts)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t pxor[] = {0x66, 0x0f, 0xef, 0xc1};
	g.cpu.cr4 &= ~(1ull << 9);
	cr_assert(eq(int, guest_run(&g, pxor, sizeof(pxor)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD), "no CR4.OSFXSR: #UD");
	g.cpu.cr4 |= 1ull << 9;
	g.cpu.cr0 |= 1ull << 3;
	cr_assert(eq(int, guest_run(&g, pxor, sizeof(pxor)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_NM), "CR0.TS: #NM");
	g.cpu.cr0 &= ~(1ull << 3);
	static const uint8_t locked[] = {0xf0, 0x66, 0x0f, 0xef, 0x03};
	cr_assert(eq(int, guest_run(&g, locked, sizeof(locked)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD), "LOCK: #UD");
	cr_assert(eq(int, guest_run(&g, pxor, sizeof(pxor)), EMU_DONE));
	guest_fini(&g);
}

/* --- the decoder --- */

static int decode(const struct guest *g, const uint8_t *b, size_t len, struct emu_insn *in)
{
	return emu_decode(&g->cpu, b, len, in);
}

Test(emulate, decoder_reads_prefixes_rex_sib_and_displacements)
{
	struct guest g;
	guest_init(&g);
	struct emu_insn in;
	/* gs: 66 REX.RXB 0f ef [r12 + r13*8 + 0x12345678] -> pxor xmm9 */
	static const uint8_t b1[] = {0x65, 0x66, 0x47, 0x0f, 0xef, 0x8c,
				     0xec, 0x78, 0x56, 0x34, 0x12};
	cr_assert(eq(int, decode(&g, b1, sizeof(b1), &in), 0), "%s", err_msg());
	cr_assert(eq(str, (char *)emu_insn_name(&in), "pxor"));
	cr_assert(eq(u32, in.len, sizeof(b1)));
	cr_assert(eq(u32, in.reg, 9));
	cr_assert(eq(i32, in.base, 12));
	cr_assert(eq(i32, in.index, 13));
	cr_assert(eq(u32, in.scale, 3));
	cr_assert(eq(i64, in.disp, 0x12345678));
	cr_assert(eq(i32, in.seg, EMU_GS));

	/* RIP-relative with a negative displacement and an immediate after it */
	static const uint8_t b2[] = {0x66, 0x0f, 0x70, 0x05, 0xf0, 0xff, 0xff, 0xff, 0x1b};
	cr_assert(eq(int, decode(&g, b2, sizeof(b2), &in), 0));
	cr_assert(eq(str, (char *)emu_insn_name(&in), "pshufd"));
	cr_assert(eq(i32, in.base, 16));
	cr_assert(eq(i64, in.disp, -16));
	cr_assert(eq(u32, in.imm, 0x1b));

	/* SIB without base: [rcx*2 + disp32]; a REX that a later prefix cancels */
	static const uint8_t b3[] = {0x48, 0x66, 0x0f, 0xd4, 0x04, 0x4d, 0x00, 0x10, 0x00, 0x00};
	cr_assert(eq(int, decode(&g, b3, sizeof(b3), &in), 0));
	cr_assert(eq(str, (char *)emu_insn_name(&in), "paddq"));
	cr_assert(eq(i32, in.base, -1));
	cr_assert(eq(i32, in.index, 1));
	cr_assert(eq(u32, in.scale, 1));
	cr_assert(eq(int, in.rex, 0));

	/* F3 after 66: F3 is the mandatory prefix (movdqu), 66 only operand size */
	static const uint8_t b4[] = {0x66, 0xf3, 0x0f, 0x6f, 0xc1};
	cr_assert(eq(int, decode(&g, b4, sizeof(b4), &in), 0));
	cr_assert(eq(str, (char *)emu_insn_name(&in), "movdqu"));

	/* 66 F3 0F B8: a 16-bit popcnt */
	static const uint8_t b5[] = {0x66, 0xf3, 0x0f, 0xb8, 0xc1};
	cr_assert(eq(int, decode(&g, b5, sizeof(b5), &in), 0));
	cr_assert(eq(str, (char *)emu_insn_name(&in), "popcnt"));
	cr_assert(eq(u32, in.opsize, 2));
	guest_fini(&g);
}

Test(emulate, decoder_asks_for_more_bytes_and_names_what_it_cannot_do)
{
	struct guest g;
	guest_init(&g);
	struct emu_insn in;
	static const uint8_t pxor_disp32[] = {0x66, 0x0f, 0xef, 0x80, 0x00, 0x01, 0x00, 0x00};
	for (size_t n = 0; n < sizeof(pxor_disp32); n++)
		cr_assert(eq(int, decode(&g, pxor_disp32, n, &in), -EAGAIN), "%zu bytes", n);
	cr_assert(eq(int, decode(&g, pxor_disp32, sizeof(pxor_disp32), &in), 0));

	static const uint8_t vex[] = {0xc5, 0xf9, 0xef, 0xc1}; /* vpxor */
	cr_assert(eq(int, decode(&g, vex, sizeof(vex), &in), -ENOTSUP));
	cr_assert(ne(ptr, strstr(err_msg(), "VEX"), NULL), "%s", err_msg());
	static const uint8_t mmx[] = {0x0f, 0xef, 0xc1}; /* pxor mm0, mm1 */
	cr_assert(eq(int, decode(&g, mmx, sizeof(mmx), &in), -ENOTSUP));
	cr_assert(ne(ptr, strstr(err_msg(), "0f ef c1"), NULL), "%s", err_msg());
	static const uint8_t cpuid[] = {0x0f, 0xa2};
	cr_assert(eq(int, decode(&g, cpuid, sizeof(cpuid), &in), -ENOTSUP));
	static const uint8_t prefixes[15] = {0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
					     0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};
	cr_assert(eq(int, decode(&g, prefixes, sizeof(prefixes), &in), -ENOTSUP));
	cr_assert(ne(ptr, strstr(err_msg(), "too long"), NULL), "%s", err_msg());

	/* 16-bit code and 16-bit addressing are refused, not guessed */
	g.cpu.seg[EMU_CS].l = false;
	g.cpu.efer &= ~(1ull << 10);
	static const uint8_t addr16[] = {0x67, 0x66, 0x0f, 0xef, 0x07};
	cr_assert(eq(int, decode(&g, addr16, sizeof(addr16), &in), -ENOTSUP));
	g.cpu.seg[EMU_CS].db = true;
	cr_assert(eq(int, decode(&g, addr16 + 1, sizeof(addr16) - 1, &in), 0));
	cr_assert(eq(u32, in.addrsize, 4));
	guest_fini(&g);
}

Test(emulate, thirty_two_bit_code_uses_segment_bases_and_eight_registers)
{
	struct guest g;
	guest_init(&g);
	/* Compatibility mode: 32-bit addresses, DS base added, a 0x40 byte is not REX. */
	g.cpu.seg[EMU_CS] = (struct emu_segment){.selector = 0x18, .db = true};
	g.cpu.seg[EMU_DS].base = 0x1000;
	uint8_t v[16];
	memset(v, 0x5a, sizeof(v));
	gmem_write(&g.gm, GUEST_DATA + 0x1000, v, sizeof(v));
	memset(g.fpu, 0, 1024);
	g.cpu.gpr[RBX] = 0xffffffff00000000ull | GUEST_DATA;	  /* upper half ignored */
	static const uint8_t movdqu[] = {0xf3, 0x0f, 0x6f, 0x0b}; /* movdqu xmm1, [ebx] */
	cr_assert(eq(int, guest_run(&g, movdqu, sizeof(movdqu)), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(1), v, 16), 0));
	guest_fini(&g);
}
