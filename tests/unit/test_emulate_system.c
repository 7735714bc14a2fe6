/* The emulator's non-SSE-arithmetic forms against the host CPU where the host can run them at
 * CPL3 (ldmxcsr, stmxcsr, xgetbv, popcnt, cmpxchg8b/16b, fences, the save-area instructions), and
 * against the architecture's rules where it cannot (int3 delivery, clac/stac, xsaves). */
#include "tests/unit/test_emulate_harness.h"

#include <cpuid.h>

static const uint8_t zero_mem[BUF_SIZE];

Test(emulate_system, ldmxcsr_and_stmxcsr_match_the_host)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t ldmxcsr[] = {0x0f, 0xae, 0x53, BUF_DISP}; /* ldmxcsr [rbx+0x10] */
	static const uint8_t stmxcsr[] = {0x0f, 0xae, 0x5b, BUF_DISP};
	static const uint32_t values[] = {0x1f80,     0x9fc0, 0x7f80, 0x1f80 | 0x3f,
					  0x0000ffbf, 0x10000 /* reserved bit: #GP */};
	for (unsigned i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct native_state st;
		random_state(&st, i);
		uint8_t mem[BUF_SIZE] = {0};
		memcpy(mem + BUF_DISP, &values[i], 4);
		compare(&g, "ldmxcsr", ldmxcsr, sizeof(ldmxcsr), &st, mem, true);
		st.mxcsr = values[i] & 0xffbf;
		compare(&g, "stmxcsr", stmxcsr, sizeof(stmxcsr), &st, zero_mem, true);
	}
	guest_fini(&g);
}

Test(emulate_system, popcnt_in_every_operand_size_matches_the_host)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t forms[][7] = {
	    {5, 0xf3, 0x48, 0x0f, 0xb8, 0xc1},	   /* popcnt rax, rcx */
	    {4, 0xf3, 0x0f, 0xb8, 0xc1},	   /* popcnt eax, ecx */
	    {5, 0x66, 0xf3, 0x0f, 0xb8, 0xc1},	   /* popcnt ax, cx */
	    {5, 0xf3, 0x4d, 0x0f, 0xb8, 0xd3},	   /* popcnt r10, r11 */
	    {6, 0xf3, 0x48, 0x0f, 0xb8, 0x43, 16}, /* popcnt rax, [rbx+0x10] */
	    {6, 0x66, 0xf3, 0x0f, 0xb8, 0x43, 16}, /* popcnt ax, [rbx+0x10] */
	};
	for (unsigned seed = 0; seed < 8; seed++) {
		struct native_state st;
		random_state(&st, seed);
		if (seed == 0)
			st.gpr[RCX] = 0; /* ZF */
		uint8_t mem[BUF_SIZE];
		uint64_t r = seed + 3;
		rng_fill(&r, mem, sizeof(mem));
		for (unsigned f = 0; f < sizeof(forms) / sizeof(forms[0]); f++)
			compare(&g, "popcnt", forms[f] + 1, forms[f][0], &st, mem, f >= 4);
	}
	guest_fini(&g);
}

Test(emulate_system, cmpxchg16b_and_cmpxchg8b_match_the_host)
{
	struct guest g;
	guest_init(&g);
	/* [rsi + disp8]: RBX is an operand here */
	static const uint8_t c16[] = {0xf0, 0x48, 0x0f, 0xc7, 0x4e, BUF_DISP};
	static const uint8_t c16_misaligned[] = {0xf0, 0x48, 0x0f, 0xc7, 0x4e, BUF_DISP + 8};
	static const uint8_t c8[] = {0xf0, 0x0f, 0xc7, 0x4e, BUF_DISP + 4};
	compare_base = RSI;
	for (unsigned seed = 0; seed < 6; seed++) {
		struct native_state st;
		random_state(&st, seed);
		uint8_t mem[BUF_SIZE];
		uint64_t r = seed + 11;
		rng_fill(&r, mem, sizeof(mem));
		if (seed & 1) { /* equal: the exchange happens */
			memcpy(&st.gpr[RAX], mem + BUF_DISP, 8);
			memcpy(&st.gpr[RDX], mem + BUF_DISP + 8, 8);
		}
		compare(&g, "cmpxchg16b", c16, sizeof(c16), &st, mem, true);
		cr_assert(eq(int, g.insn.lock, 1));
		if (seed & 1) {
			uint32_t lo, hi;
			memcpy(&lo, mem + BUF_DISP + 4, 4);
			memcpy(&hi, mem + BUF_DISP + 8, 4);
			st.gpr[RAX] = (st.gpr[RAX] & ~0xffffffffull) | lo;
			st.gpr[RDX] = (st.gpr[RDX] & ~0xffffffffull) | hi;
		}
		compare(&g, "cmpxchg8b", c8, sizeof(c8), &st, mem, true);
		compare(&g, "cmpxchg16b", c16_misaligned, sizeof(c16_misaligned), &st, mem, true);
		cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP), "misaligned m128: #GP");
	}
	compare_base = RBX;
	guest_fini(&g);
}

Test(emulate_system, cmpxchg16b_on_mmio_reads_compares_and_writes)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t c16[] = {0x48, 0x0f, 0xc7, 0x0b}; /* cmpxchg16b [rbx] */
	g.cpu.gpr[RBX] = GUEST_MMIO_LIN + 0x40;
	g.mmio.fill = 0xab;
	g.cpu.gpr[RAX] = g.cpu.gpr[RDX] = 0xabababababababab;
	g.cpu.gpr[RBX] = GUEST_MMIO_LIN + 0x40;
	g.cpu.gpr[RCX] = 0x1111;
	cr_assert(eq(int, guest_run(&g, c16, sizeof(c16)), EMU_DONE), "%s", err_msg());
	cr_assert(ne(u64, g.cpu.rflags & 0x40, 0), "ZF: equal");
	cr_assert(eq(u32, g.mmio.n, 4), "two reads, two writes");
	cr_assert(eq(u64, g.mmio.a[0].gpa, GUEST_MMIO_GPA + 0x40));
	cr_assert(g.mmio.a[2].write && g.mmio.a[3].write);
	uint64_t lo;
	memcpy(&lo, g.mmio.a[2].data, 8);
	cr_assert(eq(u64, lo, GUEST_MMIO_LIN + 0x40), "RBX written as the low half");
	guest_fini(&g);
}

Test(emulate_system, xgetbv_matches_the_host)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t xgetbv[] = {0x0f, 0x01, 0xd0};
	struct native_state st;
	random_state(&st, 1);
	st.gpr[RCX] = 0;
	compare(&g, "xgetbv", xgetbv, sizeof(xgetbv), &st, zero_mem, false);
	st.gpr[RCX] = 7; /* no such XCR */
	compare(&g, "xgetbv", xgetbv, sizeof(xgetbv), &st, zero_mem, false);
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	g.cpu.cr4 &= ~(1ull << 18);
	g.cpu.gpr[RCX] = 0;
	cr_assert(eq(int, guest_run(&g, xgetbv, sizeof(xgetbv)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD), "no CR4.OSXSAVE: #UD");
	guest_fini(&g);
}

Test(emulate_system, fences_and_cache_hints_only_check_their_address)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t fences[][3] = {
	    {0x0f, 0xae, 0xe8}, {0x0f, 0xae, 0xf0}, {0x0f, 0xae, 0xf8}};
	static const char *const names[] = {"lfence", "mfence", "sfence"};
	for (unsigned i = 0; i < 3; i++) {
		struct native_state st;
		random_state(&st, i);
		compare(&g, names[i], fences[i], 3, &st, zero_mem, false);
	}
	static const uint8_t clwb[] = {0x66, 0x0f, 0xae, 0x33};	      /* clwb [rbx] */
	static const uint8_t clflushopt[] = {0x66, 0x0f, 0xae, 0x3b}; /* clflushopt [rbx] */
	g.cpu.gpr[RBX] = GUEST_DATA;
	cr_assert(eq(int, guest_run(&g, clwb, sizeof(clwb)), EMU_DONE), "%s", err_msg());
	cr_assert(eq(str, (char *)emu_insn_name(&g.insn), "clwb"));
	*guest_pte(&g, GUEST_DATA) = 0;
	cr_assert(eq(int, guest_run(&g, clflushopt, sizeof(clflushopt)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_PF));
	cr_assert(eq(u64, g.fault.cr2, GUEST_DATA));
	guest_fini(&g);
}

Test(emulate_system, clac_and_stac_need_cpl0)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t clac[] = {0x0f, 0x01, 0xca}, stac[] = {0x0f, 0x01, 0xcb};
	cr_assert(eq(int, guest_run(&g, stac, 3), EMU_DONE));
	cr_assert(ne(u64, g.cpu.rflags & (1ull << 18), 0), "AC set");
	cr_assert(eq(int, guest_run(&g, clac, 3), EMU_DONE));
	cr_assert(eq(u64, g.cpu.rflags & (1ull << 18), 0), "AC clear");
	g.cpu.cpl = 3;
	cr_assert(eq(int, guest_run(&g, stac, 3), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD));
	/* And the host refuses them at CPL3 too. */
	struct native_state st;
	random_state(&st, 2);
	cr_assert(eq(int, native_run(&st, stac, 3), SIGILL));
	guest_fini(&g);
}

/* --- int3 --- */

#define IDT  0x5000ull
#define GDT  0x6000ull
#define TSS  0x7000ull
#define ISR  0x200000ull
#define IST1 0x300000ull

static void write_gate(struct guest *g, unsigned vec, uint16_t sel, uint8_t attr, unsigned ist)
{
	uint8_t gate[16] = {0};
	gate[0] = ISR & 0xff;
	gate[1] = (ISR >> 8) & 0xff;
	gate[2] = sel & 0xff;
	gate[3] = sel >> 8;
	gate[4] = (uint8_t)ist;
	gate[5] = attr;
	gate[6] = (ISR >> 16) & 0xff;
	gate[7] = (ISR >> 24) & 0xff;
	gmem_write(&g->gm, IDT + vec * 16, gate, 16);
}

static void idt_setup(struct guest *g)
{
	uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	gmem_write(&g->gm, GDT, gdt, sizeof(gdt));
	uint64_t ist1 = IST1;
	gmem_write(&g->gm, TSS + 0x24, &ist1, 8);
	g->cpu.gdt_base = GDT;
	g->cpu.gdt_limit = sizeof(gdt) - 1;
	g->cpu.idt_base = IDT;
	g->cpu.idt_limit = 32 * 16 - 1;
	g->cpu.tr_base = TSS;
}

Test(emulate_system, int3_is_delivered_through_the_idt_with_rip_after_it)
{
	struct guest g;
	guest_init(&g);
	idt_setup(&g);
	static const uint8_t int3[] = {0xcc};
	write_gate(&g, 3, 8, 0x8e, 0); /* present interrupt gate, DPL0 */
	g.cpu.rip = 0x100123;
	g.cpu.gpr[RSP] = 0x280008;
	g.cpu.rflags = 0x202 | 0x100 | 0x4000; /* IF, TF, NT */
	cr_assert(eq(int, guest_run(&g, int3, 1), EMU_DONE), "%s", err_msg());
	cr_assert(eq(u64, g.cpu.rip, ISR));
	cr_assert(eq(u64, g.cpu.gpr[RSP], 0x280000 - 40), "aligned to 16, five words pushed");
	cr_assert(eq(u64, g.cpu.rflags, 0x2), "IF, TF and NT cleared");
	uint64_t frame[5];
	gmem_read(&g.gm, frame, 0x280000 - 40, sizeof(frame));
	cr_assert(eq(u64, frame[0], 0x100124), "return RIP after the int3");
	cr_assert(eq(u64, frame[1], 8), "CS");
	cr_assert(eq(u64, frame[2], 0x4302), "RFLAGS as it was");
	cr_assert(eq(u64, frame[3], 0x280008), "RSP as it was");
	cr_assert(eq(u64, frame[4], 16), "SS");

	/* A trap gate on IST1 keeps IF and switches stacks. */
	write_gate(&g, 3, 8, 0x8f, 1);
	g.cpu.rip = 0x100200;
	g.cpu.gpr[RSP] = 0x280008;
	g.cpu.rflags = 0x202;
	cr_assert(eq(int, guest_run(&g, int3, 1), EMU_DONE));
	cr_assert(eq(u64, g.cpu.gpr[RSP], IST1 - 40));
	cr_assert(eq(u64, g.cpu.rflags, 0x202));

	/* Broken gates raise what the CPU raises. */
	write_gate(&g, 3, 8, 0x0e, 0);
	cr_assert(eq(int, guest_run(&g, int3, 1), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, 11), "not present: #NP");
	cr_assert(eq(u32, g.fault.error, 3 * 8 + 2));
	g.cpu.idt_limit = 3 * 16 - 1;
	cr_assert(eq(int, guest_run(&g, int3, 1), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP), "beyond the IDT limit: #GP");
	cr_assert(eq(u32, g.fault.error, 3 * 8 + 2));

	/* The host raises #BP for the same byte. */
	struct native_state st;
	random_state(&st, 3);
	cr_assert(eq(int, native_run(&st, int3, 1), SIGTRAP));
	guest_fini(&g);
}

/* --- save areas --- */

#define AREA_SIZE 4096
static uint8_t area_host[AREA_SIZE] __attribute__((aligned(64)));

static uint32_t xsave_size(void)
{
	unsigned a, b, c, d;
	__cpuid_count(0xd, 0, a, b, c, d);
	return b;
}

/* Run `code` natively with rbx -> area (pre-filled with `fill`) and rax:rdx = mask; then the same
 * bytes in the emulator, whose XSAVE image is the host's own full xsave taken in the same state,
 * and compare the areas. `restore` means the bytes load state: then the image (what the emulator
 * loaded) is compared with a native xsave taken after the native run. */
static void save_area_case(struct guest *g, const char *name, const uint8_t *code, size_t len,
			   uint64_t mask, uint8_t fill, const uint8_t *prefill, bool restore,
			   unsigned seed)
{
	struct native_state st;
	random_state(&st, seed);
	st.gpr[RAX] = (uint32_t)mask;
	st.gpr[RDX] = mask >> 32;

	/* The image: fninit; xsave64 [rsi] with everything requested. */
	static uint8_t image[AREA_SIZE] __attribute__((aligned(64)));
	memset(image, 0, sizeof(image));
	static const uint8_t snap[] = {0xdb, 0xe3, 0x48, 0x0f, 0xae, 0x26};
	struct native_state s0 = st;
	s0.gpr[RSI] = (uint64_t)(uintptr_t)image;
	s0.gpr[RAX] = s0.gpr[RDX] = ~0ull;
	cr_assert(eq(int, native_run(&s0, snap, sizeof(snap)), 0));

	/* Native: fninit; the instruction; and for a restore, xsave64 [rsi] of the result. */
	uint8_t seq[32] = {0xdb, 0xe3};
	size_t n = 2;
	memcpy(seq + n, code, len);
	n += len;
	static uint8_t after[AREA_SIZE] __attribute__((aligned(64)));
	memset(after, 0, sizeof(after));
	if (restore) {
		static const uint8_t save_all[] = {
		    0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, /* rax */
		    0x48, 0xc7, 0xc2, 0xff, 0xff, 0xff, 0xff, /* rdx */
		    0x48, 0x0f, 0xae, 0x26};
		memcpy(seq + n, save_all, sizeof(save_all));
		n += sizeof(save_all);
	}
	struct native_state nat = st;
	if (prefill)
		memcpy(area_host, prefill, AREA_SIZE);
	else
		memset(area_host, fill, AREA_SIZE);
	nat.gpr[RBX] = (uint64_t)(uintptr_t)area_host;
	nat.gpr[RSI] = (uint64_t)(uintptr_t)after;
	int sig = native_run(&nat, seq, n);

	struct native_state emu = st;
	emu.gpr[RBX] = GUEST_DATA;
	guest_load(g, &emu);
	memcpy(g->fpu, image, AREA_SIZE);
	if (prefill)
		gmem_write(&g->gm, GUEST_DATA, prefill, AREA_SIZE);
	else {
		uint8_t f[AREA_SIZE];
		memset(f, fill, sizeof(f));
		gmem_write(&g->gm, GUEST_DATA, f, AREA_SIZE);
	}
	enum emu_status s = guest_run(g, code, len);
	cr_assert(ne(int, s, EMU_UNSUPPORTED), "%s: %s", name, err_msg());
	cr_assert(eq(str, (char *)emu_insn_name(&g->insn), (char *)name));
	if (sig) {
		cr_assert(eq(int, s, EMU_FAULT), "%s mask 0x%llx: host signal %d", name,
			  (unsigned long long)mask, sig);
		return;
	}
	cr_assert(eq(int, s, EMU_DONE), "%s mask 0x%llx: vector %u", name, (unsigned long long)mask,
		  g->fault.vector);
	if (!restore) {
		uint8_t got[AREA_SIZE];
		gmem_read(&g->gm, got, GUEST_DATA, AREA_SIZE);
		for (unsigned i = 0; i < xsave_size() && i < AREA_SIZE; i++)
			cr_assert(eq(u8, got[i], area_host[i]), "%s mask 0x%llx: byte %u", name,
				  (unsigned long long)mask, i);
		return;
	}
	/* Compare the state loaded: the legacy region the xsave wrote (x87 and SSE parts,
	 * MXCSR) and the extended components, whose XSTATE_BV must agree. */
	const uint8_t *img = g->fpu;
	cr_assert(eq(int, memcmp(img, after, 24), 0), "%s: x87 control state", name);
	cr_assert(eq(int, memcmp(img + 24, after + 24, 4), 0), "%s: MXCSR", name);
	cr_assert(eq(int, memcmp(img + 32, after + 32, 128), 0), "%s: x87 registers", name);
	cr_assert(eq(int, memcmp(img + 160, after + 160, 256), 0), "%s: XMM", name);
	uint64_t bv_img, bv_host;
	memcpy(&bv_img, img + 512, 8);
	memcpy(&bv_host, after + 512, 8);
	/* A CPU may count a component loaded with its initial (all-zero) value as not in use;
	 * the emulator keeps what XSTATE_BV said. Either way the data must agree. */
	uint64_t ext = host_xcr0() & ~3ull;
	for (unsigned i = 2; i < 63; i++) {
		if (!(ext & (1ull << i)))
			continue;
		const uint8_t *mine = img + g->xl.offset[i], *host = after + g->xl.offset[i];
		bool zero = true;
		for (unsigned k = 0; k < g->xl.size[i]; k++)
			zero = zero && mine[k] == 0;
		if (bv_host & (1ull << i))
			cr_assert(eq(int, memcmp(mine, host, g->xl.size[i]), 0),
				  "%s mask 0x%llx: component %u", name, (unsigned long long)mask,
				  i);
		else
			cr_assert(zero || !(bv_img & (1ull << i)),
				  "%s mask 0x%llx: component %u in use, the host's is not", name,
				  (unsigned long long)mask, i);
	}
}

static const uint64_t masks[] = {~0ull, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x0, 0xe5};

Test(emulate_system, fxsave_and_xsave_family_write_what_the_host_writes)
{
	struct guest g;
	guest_init(&g);
	static const struct {
		const char *name;
		uint8_t code[5];
		size_t len;
		bool needs_xsavec;
	} saves[] = {
	    {"fxsave", {0x48, 0x0f, 0xae, 0x03}, 4, false},   /* fxsave64 [rbx] */
	    {"fxsave", {0x0f, 0xae, 0x03}, 3, false},	      /* fxsave [rbx] */
	    {"xsave", {0x48, 0x0f, 0xae, 0x23}, 4, false},    /* xsave64 */
	    {"xsave", {0x0f, 0xae, 0x23}, 3, false},	      /* xsave */
	    {"xsaveopt", {0x48, 0x0f, 0xae, 0x33}, 4, false}, /* xsaveopt64 */
	    {"xsavec", {0x48, 0x0f, 0xc7, 0x23}, 4, true},    /* xsavec64 */
	};
	for (unsigned i = 0; i < sizeof(saves) / sizeof(saves[0]); i++) {
		if (saves[i].needs_xsavec && !g.xl.xsavec)
			continue;
		for (unsigned m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
			save_area_case(&g, saves[i].name, saves[i].code, saves[i].len, masks[m],
				       (uint8_t)(0x5a + m), NULL, false, i * 16 + m);
	}
	guest_fini(&g);
}

/* Build an area with the host's xsave (or xsavec) of random state, then edit its header. */
static void make_area(uint8_t *area, bool compacted, uint64_t mask, unsigned seed)
{
	struct native_state st;
	random_state(&st, seed);
	st.gpr[RAX] = (uint32_t)mask;
	st.gpr[RDX] = mask >> 32;
	st.gpr[RBX] = (uint64_t)(uintptr_t)area;
	memset(area, 0, AREA_SIZE);
	static const uint8_t xsave64[] = {0x48, 0x0f, 0xae, 0x23},
			     xsavec64[] = {0x48, 0x0f, 0xc7, 0x23};
	cr_assert(eq(int, native_run(&st, compacted ? xsavec64 : xsave64, 4), 0));
}

Test(emulate_system, fxrstor_and_xrstor_load_what_the_host_loads)
{
	struct guest g;
	guest_init(&g);
	static uint8_t area[AREA_SIZE] __attribute__((aligned(64)));
	static const uint8_t fxrstor64[] = {0x48, 0x0f, 0xae, 0x0b};
	static const uint8_t xrstor64[] = {0x48, 0x0f, 0xae, 0x2b};
	for (unsigned m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		make_area(area, false, ~0ull, 100 + m);
		save_area_case(&g, "fxrstor", fxrstor64, 4, 0, 0, area, true, m);
		/* Standard form: XSTATE_BV picks loaded against initialized components. */
		uint64_t bv = (0x3ull | (m * 0x15)) & host_xcr0();
		memcpy(area + 512, &bv, 8);
		save_area_case(&g, "xrstor", xrstor64, 4, masks[m], 0, area, true, m + 50);
		if (g.xl.xsavec) {
			make_area(area, true, masks[m] & host_xcr0(), 200 + m);
			save_area_case(&g, "xrstor", xrstor64, 4, masks[m], 0, area, true, m + 70);
		}
	}
	/* Headers the CPU refuses: XSTATE_BV bits beyond XCR0, XCOMP_BV in a standard area,
	 * reserved MXCSR bits. */
	make_area(area, false, ~0ull, 7);
	uint64_t bad = 1ull << 62;
	memcpy(area + 512, &bad, 8);
	save_area_case(&g, "xrstor", xrstor64, 4, ~0ull, 0, area, true, 1);
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	make_area(area, false, ~0ull, 8);
	uint64_t xcomp_garbage[2] = {3, 1};
	memcpy(area + 512, xcomp_garbage, 16);
	save_area_case(&g, "xrstor", xrstor64, 4, ~0ull, 0, area, true, 2);
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	make_area(area, false, ~0ull, 9);
	uint32_t mxcsr = 0x10000;
	memcpy(area + 24, &mxcsr, 4);
	save_area_case(&g, "fxrstor", fxrstor64, 4, 0, 0, area, true, 3);
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	guest_fini(&g);
}

Test(emulate_system, save_areas_check_alignment_and_control_bits)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t xsave_off[] = {0x0f, 0xae, 0x63, 0x20}; /* xsave [rbx+0x20] */
	static const uint8_t fxsave_off[] = {0x0f, 0xae, 0x43, 0x08};
	g.cpu.gpr[RBX] = GUEST_DATA;
	g.cpu.gpr[RAX] = 3;
	g.fpu[0] = 0x7f;
	g.fpu[1] = 0x03;
	cr_assert(eq(int, guest_run(&g, xsave_off, 4), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP), "xsave needs 64-byte alignment");
	cr_assert(eq(int, guest_run(&g, fxsave_off, 4), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP), "fxsave needs 16-byte alignment");
	static const uint8_t xsave[] = {0x0f, 0xae, 0x23};
	g.cpu.cr4 &= ~(1ull << 18);
	cr_assert(eq(int, guest_run(&g, xsave, 3), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_UD), "no CR4.OSXSAVE: #UD");
	g.cpu.cr4 |= 1ull << 18;
	g.cpu.cr0 |= 1ull << 3;
	cr_assert(eq(int, guest_run(&g, xsave, 3), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_NM), "CR0.TS: #NM");
	g.cpu.cr0 &= ~(1ull << 3);

	/* An area whose end is on a page that is not present: #PF, and nothing written. */
	uint8_t before[64];
	memset(before, 0x77, sizeof(before));
	uint64_t at = GUEST_DATA + 0x1000 - 512;
	gmem_write(&g.gm, at, before, sizeof(before));
	*guest_pte(&g, GUEST_DATA + 0x1000) = 0;
	g.cpu.gpr[RBX] = at;
	cr_assert(eq(int, guest_run(&g, xsave, 3), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_PF));
	cr_assert(eq(u64, g.fault.cr2, GUEST_DATA + 0x1000));
	uint8_t now[64];
	gmem_read(&g.gm, now, at, sizeof(now));
	cr_assert(eq(int, memcmp(now, before, 64), 0), "nothing written before the fault");
	guest_fini(&g);
}

Test(emulate_system, xsaves_is_for_cpl0_and_round_trips_through_xrstors)
{
	struct guest g;
	guest_init(&g);
	if (!g.xl.xsaves) {
		guest_fini(&g);
		cr_skip_test("this CPU has no XSAVES");
	}
	static const uint8_t xsaves[] = {0x48, 0x0f, 0xc7, 0x2b},
			     xrstors[] = {0x48, 0x0f, 0xc7, 0x1b};
	struct native_state st;
	random_state(&st, 4);
	st.gpr[RBX] = GUEST_DATA;
	st.gpr[RAX] = st.gpr[RDX] = ~0ull;
	guest_load(&g, &st);
	cr_assert(eq(int, guest_run(&g, xsaves, 4), EMU_DONE), "%s", err_msg());
	uint64_t hdr[2];
	gmem_read(&g.gm, hdr, GUEST_DATA + 512, 16);
	cr_assert(eq(u64, hdr[1], (g.cpu.xcr0 | (1ull << 63))), "XCOMP_BV");
	cr_assert(eq(u64, hdr[0], 3), "XSTATE_BV: x87 and SSE in use");
	uint8_t saved[EMU_XSAVE_HDR];
	memcpy(saved, g.fpu, sizeof(saved));
	memset(g.fpu + EMU_FX_XMM(0), 0, 256);
	cr_assert(eq(int, guest_run(&g, xrstors, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), saved + EMU_FX_XMM(0), 256), 0));
	g.cpu.cpl = 3;
	cr_assert(eq(int, guest_run(&g, xsaves, 4), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP), "CPL3: #GP");
	guest_fini(&g);
}

Test(emulate_system, rdrand_and_rdseed_set_cf_and_the_register_size)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t rdrand64[] = {0x48, 0x0f, 0xc7, 0xf1}; /* rdrand rcx */
	static const uint8_t rdseed16[] = {0x66, 0x0f, 0xc7, 0xf9}; /* rdseed cx */
	static const uint8_t rdrand32[] = {0x41, 0x0f, 0xc7, 0xf2}; /* rdrand r10d */
	uint64_t seen[4];
	for (unsigned i = 0; i < 4; i++) {
		g.cpu.gpr[RCX] = 0;
		g.cpu.rflags = 0x8d5;
		cr_assert(eq(int, guest_run(&g, rdrand64, 4), EMU_DONE), "%s", err_msg());
		cr_assert(eq(str, (char *)emu_insn_name(&g.insn), "rdrand"));
		cr_assert(eq(u64, g.cpu.rflags & 0x8d5, 1), "CF only");
		seen[i] = g.cpu.gpr[RCX];
	}
	cr_assert(seen[0] != seen[1] || seen[1] != seen[2] || seen[2] != seen[3], "random values");
	g.cpu.gpr[RCX] = 0xaaaaaaaaaaaaaaaaull;
	cr_assert(eq(int, guest_run(&g, rdseed16, 4), EMU_DONE));
	cr_assert(eq(str, (char *)emu_insn_name(&g.insn), "rdseed"));
	cr_assert(eq(u64, g.cpu.gpr[RCX] >> 16, 0xaaaaaaaaaaaaull), "16-bit: upper bits kept");
	g.cpu.gpr[10] = ~0ull;
	cr_assert(eq(int, guest_run(&g, rdrand32, 4), EMU_DONE));
	cr_assert(eq(u64, g.cpu.gpr[10] >> 32, 0), "32-bit: upper half cleared");
	guest_fini(&g);
}

Test(emulate_system, rdtscp_returns_the_vcpus_tsc_and_tsc_aux)
{
	struct guest g;
	guest_init(&g);
	static const uint8_t rdtscp[] = {0x0f, 0x01, 0xf9};
	struct emu_insn in;
	cr_assert(eq(int, emu_decode(&g.cpu, rdtscp, 3, &in), 0));
	cr_assert(ne(u32, emu_needs(&in) & EMU_NEED_TSC, 0), "the glue must fetch the TSC");
	g.cpu.tsc = 0x123456789abcdef0ull;
	g.cpu.tsc_aux = 7;
	g.cpu.gpr[RAX] = g.cpu.gpr[RDX] = g.cpu.gpr[RCX] = ~0ull;
	cr_assert(eq(int, guest_run(&g, rdtscp, 3), EMU_DONE));
	cr_assert(eq(u64, g.cpu.gpr[RAX], 0x9abcdef0));
	cr_assert(eq(u64, g.cpu.gpr[RDX], 0x12345678));
	cr_assert(eq(u64, g.cpu.gpr[RCX], 7));
	g.cpu.cr4 |= 1ull << 2; /* TSD */
	g.cpu.cpl = 3;
	cr_assert(eq(int, guest_run(&g, rdtscp, 3), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	/* The host's rdtscp at CPL3 returns a TSC that moves forward. */
	struct native_state st;
	random_state(&st, 1);
	cr_assert(eq(int, native_run(&st, rdtscp, 3), 0));
	cr_assert(eq(u64, st.gpr[RDX] >> 32, 0));
	guest_fini(&g);
}
