/* The decoder (legacy prefixes, REX, the 0f/0f38/0f3a maps, ModRM, SIB, displacement,
 * immediate), the form lookup and the executor's common entry. */
#include "vcpu/emulate_impl.h"
#include "common/err.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>

#define CR0_EM	    (1ull << 2)
#define CR0_TS	    (1ull << 3)
#define CR4_OSFXSR  (1ull << 9)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_LMA    (1ull << 10)

static const struct {
	const struct emu_form *forms;
	const unsigned *n;
} tables[] = {
    {emu_sse_forms, &emu_sse_nforms},
    {emu_fp_forms, &emu_fp_nforms},
    {emu_system_forms, &emu_system_nforms},
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

unsigned emu_form_count(void)
{
	unsigned n = 0;
	for (unsigned t = 0; t < NTABLES; t++)
		n += *tables[t].n;
	return n;
}

static const struct emu_form *form_at(unsigned index)
{
	for (unsigned t = 0; t < NTABLES; t++) {
		if (index < *tables[t].n)
			return &tables[t].forms[index];
		index -= *tables[t].n;
	}
	return NULL;
}

const char *emu_form_name(unsigned index)
{
	const struct emu_form *f = form_at(index);
	return f ? f->name : NULL;
}

unsigned emu_insn_form_index(const struct emu_insn *insn)
{
	unsigned base = 0;
	for (unsigned t = 0; t < NTABLES; t++) {
		const struct emu_form *first = tables[t].forms;
		if (insn->form >= first && insn->form < first + *tables[t].n)
			return base + (unsigned)(insn->form - first);
		base += *tables[t].n;
	}
	return 0;
}

const char *emu_insn_name(const struct emu_insn *insn)
{
	return insn->form ? insn->form->name : "(none)";
}

unsigned emu_needs(const struct emu_insn *insn)
{
	unsigned flags = insn->form ? insn->form->flags : 0, need = 0;
	if (flags & F_FPU)
		need |= EMU_NEED_FPU;
	if (flags & F_XCR0)
		need |= EMU_NEED_XCR0;
	if (flags & F_XSS)
		need |= EMU_NEED_XSS;
	if (flags & F_TSC)
		need |= EMU_NEED_TSC;
	return need;
}

struct prefixes {
	bool p66, p67, lock;
	uint8_t rep; /* the last F2 or F3 */
	int8_t seg;
	uint8_t rex;
};

static bool form_matches(const struct emu_form *f, unsigned map, uint8_t opcode,
			 const struct prefixes *p, int modrm)
{
	if (f->map != map || f->opcode != opcode)
		return false;
	if (f->pfx != PFX_ANY) {
		unsigned mand = p->rep == 0xf3			       ? PFX_F3
				: p->rep == 0xf2		       ? PFX_F2
				: (p->p66 && !(f->flags & F_OPSIZE66)) ? PFX_66
								       : PFX_NP;
		if (f->pfx != mand)
			return false;
	}
	bool w = p->rex & 8;
	if ((f->w == W_0 && w) || (f->w == W_1 && !w))
		return false;
	if (f->mod == MOD_NONE)
		return true;
	unsigned mod = (unsigned)modrm >> 6, reg = ((unsigned)modrm >> 3) & 7, rm = modrm & 7;
	if ((f->mod == MOD_MEM && mod == 3) || (f->mod == MOD_REG && mod != 3))
		return false;
	if (SEL_SET(f->reg) && SEL_VAL(f->reg) != reg)
		return false;
	if (SEL_SET(f->rm) && SEL_VAL(f->rm) != rm)
		return false;
	return true;
}

/* Whether any form of this opcode takes a ModRM byte (they all agree). */
static const struct emu_form *any_form(unsigned map, uint8_t opcode)
{
	for (unsigned t = 0; t < NTABLES; t++)
		for (unsigned i = 0; i < *tables[t].n; i++)
			if (tables[t].forms[i].map == map && tables[t].forms[i].opcode == opcode)
				return &tables[t].forms[i];
	return NULL;
}

static int unknown(const uint8_t *b, size_t len, const char *what)
{
	char hex[3 * EMU_MAX_INSN + 1] = "";
	size_t n = 0;
	for (size_t i = 0; i < len && i < EMU_MAX_INSN; i++)
		n += (size_t)snprintf(hex + n, sizeof(hex) - n, "%s%02x", i ? " " : "", b[i]);
	return err_set(ENOTSUP, "%s (bytes %s)", what, hex);
}

#define NEED(n)                                                                                    \
	do {                                                                                       \
		if (i + (n) > len)                                                                 \
			return len >= EMU_MAX_INSN ? unknown(b, len, "instruction too long")       \
						   : -EAGAIN;                                      \
	} while (0)

int emu_decode(const struct emu_cpu *cpu, const uint8_t *b, size_t len, struct emu_insn *in)
{
	memset(in, 0, sizeof(*in));
	in->seg = -1;
	in->base = in->index = -1;
	in->long64 = (cpu->efer & EFER_LMA) && cpu->seg[EMU_CS].l;
	if (!in->long64 && !cpu->seg[EMU_CS].db)
		return unknown(b, len, "16-bit code is not emulated");
	if (len > EMU_MAX_INSN)
		len = EMU_MAX_INSN;

	struct prefixes p = {.seg = -1};
	size_t i = 0;
	for (;; i++) {
		NEED(1);
		uint8_t x = b[i];
		if (x == 0xf0)
			p.lock = true;
		else if (x == 0xf2 || x == 0xf3)
			p.rep = x;
		else if (x == 0x66)
			p.p66 = true;
		else if (x == 0x67)
			p.p67 = true;
		else if (x == 0x26 || x == 0x2e || x == 0x36 || x == 0x3e)
			p.seg = in->long64 ? p.seg : (int8_t)((x >> 3) & 3);
		else if (x == 0x64 || x == 0x65)
			p.seg = (int8_t)(EMU_FS + (x & 1));
		else if (in->long64 && (x & 0xf0) == 0x40)
			p.rex = x; /* only a REX right before the opcode counts */
		else
			break;
		if ((x & 0xf0) != 0x40)
			p.rex = 0;
	}
	uint8_t op = b[i++];
	if (op == 0xc4 || op == 0xc5 || op == 0x62) {
		NEED(1);
		if (in->long64 || b[i] >= 0xc0)
			return unknown(b, len,
				       "VEX/EVEX-encoded (AVX) instruction is not emulated");
	}
	unsigned map = MAP_1BYTE;
	if (op == 0x0f) {
		NEED(1);
		map = MAP_0F;
		op = b[i++];
		if (op == 0x38 || op == 0x3a) {
			NEED(1);
			map = op == 0x38 ? MAP_0F38 : MAP_0F3A;
			op = b[i++];
		}
	}
	const struct emu_form *some = any_form(map, op);
	if (!some)
		return unknown(b, len, "instruction not emulated");
	int modrm = -1;
	if (some->mod != MOD_NONE) {
		NEED(1);
		modrm = b[i++];
	}
	const struct emu_form *f = NULL;
	for (unsigned t = 0; t < NTABLES && !f; t++)
		for (unsigned k = 0; k < *tables[t].n && !f; k++)
			if (form_matches(&tables[t].forms[k], map, op, &p, modrm))
				f = &tables[t].forms[k];
	if (!f)
		return unknown(b, len, "instruction form not emulated");

	in->form = f;
	in->lock = p.lock;
	in->rex = p.rex;
	in->rex_w = p.rex & 8;
	in->seg = p.seg;
	in->addrsize = in->long64 ? (p.p67 ? 4 : 8) : (p.p67 ? 2 : 4);
	in->opsize = in->rex_w ? 8 : p.p66 ? 2 : 4;
	if (modrm >= 0) {
		unsigned mod = (unsigned)modrm >> 6, rm = modrm & 7;
		in->mod = (uint8_t)mod;
		in->reg = (uint8_t)((((unsigned)modrm >> 3) & 7) | ((p.rex & 4) << 1));
		in->rm = (uint8_t)(rm | ((p.rex & 1) << 3));
		in->mem = mod != 3;
	}
	if (in->mem) {
		if (in->addrsize == 2)
			return unknown(b, len, "16-bit addressing is not emulated");
		unsigned mod = in->mod, rm = in->rm & 7;
		unsigned disp_size = mod == 1 ? 1 : mod == 2 ? 4 : 0;
		if (rm == 4) {
			NEED(1);
			uint8_t sib = b[i++];
			unsigned base = sib & 7, index = ((sib >> 3) & 7) | ((p.rex & 2) << 2);
			in->scale = sib >> 6;
			in->index = index == 4 ? -1 : (int8_t)index;
			if (base == 5 && mod == 0) {
				disp_size = 4;
			} else {
				in->base = (int8_t)(base | ((p.rex & 1) << 3));
			}
		} else if (rm == 5 && mod == 0) {
			disp_size = 4;
			in->base = in->long64 ? 16 : -1;
		} else {
			in->base = (int8_t)in->rm;
		}
		NEED(disp_size);
		if (disp_size == 1)
			in->disp = (int8_t)b[i];
		else if (disp_size == 4)
			in->disp = (int32_t)((uint32_t)b[i] | (uint32_t)b[i + 1] << 8 |
					     (uint32_t)b[i + 2] << 16 | (uint32_t)b[i + 3] << 24);
		i += disp_size;
	}
	if (f->imm) {
		NEED(1);
		in->imm = b[i++];
	}
	in->len = (uint8_t)i;
	memcpy(in->bytes, b, i);
	return 0;
}

enum emu_status emu_check_form(struct emu_ctx *c)
{
	const struct emu_form *f = c->in->form;
	const struct emu_cpu *cpu = c->cpu;
	if (c->in->lock && !(f->flags & F_LOCK_OK))
		return emu_raise(c, EMU_VEC_UD);
	if (f->flags & F_SSE) {
		if ((cpu->cr0 & CR0_EM) || !(cpu->cr4 & CR4_OSFXSR))
			return emu_raise(c, EMU_VEC_UD);
		if (cpu->cr0 & CR0_TS)
			return emu_raise(c, EMU_VEC_NM);
	}
	if (f->flags & F_XSAVE) {
		if (!(cpu->cr4 & CR4_OSXSAVE))
			return emu_raise(c, EMU_VEC_UD);
		if (cpu->cr0 & CR0_TS)
			return emu_raise(c, EMU_VEC_NM);
	}
	if ((f->flags & F_CPL0) && cpu->cpl != 0)
		return emu_raise_err(c, EMU_VEC_GP, 0);
	return EMU_DONE;
}

enum emu_status emu_execute(struct emu_cpu *cpu, const struct emu_insn *insn,
			    const struct emu_mem *mem, struct emu_fault *fault)
{
	struct emu_ctx c = {cpu, insn, mem, fault};
	if (!insn->form) {
		err_set(EINVAL, "no decoded instruction");
		return EMU_UNSUPPORTED;
	}
	if ((emu_needs(insn) & EMU_NEED_FPU) && (!cpu->fpu || cpu->fpu_size < EMU_XSAVE_MIN_SIZE)) {
		err_set(EINVAL, "%s needs the vCPU's XSAVE state", insn->form->name);
		return EMU_UNSUPPORTED;
	}
	enum emu_status s = emu_check_form(&c);
	if (s != EMU_DONE)
		return s;
	return insn->form->exec(&c);
}

void emu_xlayout_from_host(struct emu_xlayout *l)
{
	unsigned a, b, c, d;
	memset(l, 0, sizeof(*l));
	if (__get_cpuid_max(0, NULL) >= 0xd && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_XSAVE)) {
		__cpuid_count(0xd, 0, a, b, c, d);
		l->xcr0_mask = a | (uint64_t)d << 32;
		__cpuid_count(0xd, 1, a, b, c, d);
		l->xsaveopt = a & 1;
		l->xsavec = a & 2;
		l->xgetbv1 = a & 4;
		l->xsaves = a & 8;
		l->xss_mask = c | (uint64_t)d << 32;
		for (unsigned i = 2; i < 63; i++) {
			if (!((l->xcr0_mask | l->xss_mask) & (1ull << i)))
				continue;
			__cpuid_count(0xd, i, a, b, c, d);
			l->size[i] = a;
			l->offset[i] = b;
			if (c & 2)
				l->align64 |= 1ull << i;
		}
	}
	uint8_t area[512] __attribute__((aligned(16)));
	memset(area, 0, sizeof(area));
	__asm__ volatile("fxsave64 %0" : "=m"(area));
	memcpy(&l->mxcsr_mask, area + EMU_FX_MXCSR_MASK, 4);
}
