/* The emulator's memory side: page walks with the CPU's permission rules and their #PF error
 * codes, accessed and dirty bits, faults before any byte is written, MMIO in KVM-sized pieces,
 * RAM and MMIO halves of one operand, canonical addresses, instruction fetch, and the other
 * paging modes. Plus the fallback's per-instruction counters. */
#include "tests/unit/test_emulate_harness.h"
#include "vcpu/emulate_kvm.h"

#define PTE_P  1ull
#define PTE_W  2ull
#define PTE_U  4ull
#define PTE_A  0x20ull
#define PTE_D  0x40ull
#define PTE_XD (1ull << 63)

static const uint8_t movdqu_load[] = {0xf3, 0x0f, 0x6f, 0x03};	/* movdqu xmm0, [rbx] */
static const uint8_t movdqu_store[] = {0xf3, 0x0f, 0x7f, 0x03}; /* movdqu [rbx], xmm0 */
static const uint8_t pxor_load[] = {0x66, 0x0f, 0xef, 0x03};	/* pxor xmm0, [rbx] */

static struct guest g;

/* The PML4, PDPT and PD entries above `linear`'s page table. */
static void make_user_above(uint64_t linear)
{
	uint64_t *pml4 = gmem_ptr(&g.gm, GUEST_PML4, 8), *pdpt = gmem_ptr(&g.gm, GUEST_PDPT, 8);
	uint64_t *pd = gmem_ptr(&g.gm, GUEST_PD + (linear >> 21) * 8, 8);
	*pml4 |= PTE_U;
	*pdpt |= PTE_U;
	*pd |= PTE_U;
}

static void setup(void)
{
	guest_init(&g);
}

static void teardown(void)
{
	guest_fini(&g);
}

static void expect_pf(uint64_t cr2, uint32_t error)
{
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_PF));
	cr_assert(eq(u64, g.fault.cr2, cr2));
	cr_assert(eq(u32, g.fault.error, error), "error code 0x%x, expected 0x%x", g.fault.error,
		  error);
}

Test(emulate_mem, not_present_pages_fault_with_the_cpus_error_code, .init = setup, .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x3000;
	*guest_pte(&g, page) &= ~PTE_P;
	g.cpu.gpr[RBX] = page + 8;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT));
	expect_pf(page + 8, 0);
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_FAULT));
	expect_pf(page + 8, 2);
	/* At CPL3 the U bit of the error code is set too. */
	g.cpu.cpl = 3;
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_FAULT));
	expect_pf(page + 8, 6);
}

Test(emulate_mem, a_store_across_into_a_missing_page_writes_nothing, .init = setup,
     .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x5000;
	*guest_pte(&g, page + 0x1000) &= ~PTE_P;
	uint8_t before[16], after[16];
	memset(before, 0x33, sizeof(before));
	gmem_write(&g.gm, page + 0x1000 - 8, before, 8);
	memset(g.fpu + EMU_FX_XMM(0), 0xee, 16);
	g.cpu.gpr[RBX] = page + 0x1000 - 8;
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_FAULT));
	expect_pf(page + 0x1000, 2);
	gmem_read(&g.gm, after, page + 0x1000 - 8, 8);
	cr_assert(eq(int, memcmp(after, before, 8), 0), "the first page was not written");
	cr_assert(eq(u64, g.cpu.rip, 0), "RIP stays at the instruction");
}

Test(emulate_mem, write_protection_follows_cr0_wp_and_the_privilege, .init = setup,
     .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x6000;
	*guest_pte(&g, page) &= ~PTE_W;
	g.cpu.gpr[RBX] = page;
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_FAULT));
	expect_pf(page, 3);
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "reads are fine");
	g.cpu.cr0 &= ~(1ull << 16);
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_DONE), "CR0.WP=0: CPL0 may write");
	g.cpu.cpl = 3;
	*guest_pte(&g, page) |= PTE_U;
	make_user_above(page);
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_FAULT), "CPL3 never may");
	expect_pf(page, 7);
}

Test(emulate_mem, user_pages_need_ac_under_smap_and_cpl3_needs_user_pages, .init = setup,
     .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x7000;
	make_user_above(page);
	g.cpu.gpr[RBX] = page;
	g.cpu.cpl = 3;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT), "supervisor page at CPL3");
	expect_pf(page, 5);
	*guest_pte(&g, page) |= PTE_U;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE));
	g.cpu.cpl = 0;
	g.cpu.cr4 |= 1ull << 21; /* SMAP */
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT), "SMAP, AC clear");
	expect_pf(page, 1);
	g.cpu.rflags |= 1ull << 18;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "SMAP, AC set");
}

Test(emulate_mem, accessed_and_dirty_bits_are_set, .init = setup, .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x8000;
	uint64_t *pte = guest_pte(&g, page);
	*pte &= ~(PTE_A | PTE_D);
	g.cpu.gpr[RBX] = page;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE));
	cr_assert(eq(u64, *pte & (PTE_A | PTE_D), PTE_A), "a read sets A only");
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_DONE));
	cr_assert(eq(u64, *pte & (PTE_A | PTE_D), PTE_A | PTE_D), "a write sets D");
	uint64_t *pd = gmem_ptr(&g.gm, GUEST_PD + (page >> 21) * 8, 8);
	cr_assert(ne(u64, *pd & PTE_A, 0), "upper levels get A");
}

Test(emulate_mem, reserved_bits_and_nx_without_efer_nxe, .init = setup, .fini = teardown)
{
	uint64_t page = GUEST_DATA + 0x9000;
	*guest_pte(&g, page) |= PTE_XD;
	g.cpu.gpr[RBX] = page;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "XD with NXE: data is fine");
	g.cpu.efer &= ~(1ull << 11);
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT));
	expect_pf(page, 9); /* P | RSVD */
}

Test(emulate_mem, mmio_goes_to_the_callback_in_pieces_of_eight, .init = setup, .fini = teardown)
{
	g.cpu.gpr[RBX] = GUEST_MMIO_LIN + 0x120;
	g.mmio.fill = 0x5a;
	memset(g.fpu + EMU_FX_XMM(0), 0x0f, 16);
	cr_assert(eq(int, guest_run(&g, pxor_load, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(u32, g.mmio.n, 2));
	cr_assert(eq(u64, g.mmio.a[0].gpa, GUEST_MMIO_GPA + 0x120));
	cr_assert(eq(u64, g.mmio.a[1].gpa, GUEST_MMIO_GPA + 0x128));
	cr_assert(eq(u32, g.mmio.a[0].len, 8));
	cr_assert(g.mmio.a[0].write == false);
	for (unsigned i = 0; i < 16; i++)
		cr_assert(eq(u8, g.fpu[EMU_FX_XMM(0) + i], 0x55));

	g.mmio.n = 0;
	cr_assert(eq(int, guest_run(&g, movdqu_store, 4), EMU_DONE));
	cr_assert(eq(u32, g.mmio.n, 2));
	cr_assert(g.mmio.a[0].write && g.mmio.a[1].write);
	cr_assert(eq(u8, g.mmio.a[1].data[7], 0x55));
}

Test(emulate_mem, an_operand_half_in_ram_half_in_mmio, .init = setup, .fini = teardown)
{
	/* The last page before the MMIO window is RAM. */
	uint64_t at = GUEST_MMIO_LIN - 8;
	uint8_t ram[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	gmem_write(&g.gm, at, ram, 8);
	g.cpu.gpr[RBX] = at;
	g.mmio.fill = 0xff;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), ram, 8), 0));
	for (unsigned i = 8; i < 16; i++)
		cr_assert(eq(u8, g.fpu[EMU_FX_XMM(0) + i], 0xff));
	cr_assert(eq(u32, g.mmio.n, 1), "one MMIO read for the upper half");
	cr_assert(eq(u64, g.mmio.a[0].gpa, GUEST_MMIO_GPA));
}

Test(emulate_mem, non_canonical_addresses_are_gp_or_ss, .init = setup, .fini = teardown)
{
	g.cpu.gpr[RBX] = 0x0000800000000000ull;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
	/* movdqu xmm0, [rbp]: an SS-based access */
	static const uint8_t via_rbp[] = {0xf3, 0x0f, 0x6f, 0x45, 0x00};
	g.cpu.gpr[RBP] = 0x0000800000000000ull;
	cr_assert(eq(int, guest_run(&g, via_rbp, sizeof(via_rbp)), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_SS));
	/* An operand running off the top of the canonical lower half. */
	g.cpu.gpr[RBX] = 0x00007ffffffffff8ull;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT));
	cr_assert(eq(u32, g.fault.vector, EMU_VEC_GP));
}

Test(emulate_mem, fs_and_gs_bases_and_rip_relative_operands, .init = setup, .fini = teardown)
{
	uint8_t v[16];
	for (unsigned i = 0; i < 16; i++)
		v[i] = (uint8_t)(i * 3 + 1);
	gmem_write(&g.gm, GUEST_DATA + 0x2010, v, 16);
	g.cpu.seg[EMU_GS].base = GUEST_DATA;
	g.cpu.seg[EMU_DS].base = 0x12345000; /* ignored in 64-bit mode */
	static const uint8_t gs_load[] = {0x65, 0xf3, 0x0f, 0x6f, 0x43, 0x10}; /* gs:[rbx+0x10] */
	g.cpu.gpr[RBX] = 0x2000;
	cr_assert(eq(int, guest_run(&g, gs_load, sizeof(gs_load)), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), v, 16), 0));
	/* movdqu xmm1, [rip + 0x1000]: relative to the next instruction */
	static const uint8_t rip_rel[] = {0xf3, 0x0f, 0x6f, 0x0d, 0x00, 0x10, 0x00, 0x00};
	g.cpu.rip = GUEST_DATA + 0x2010 - 0x1000 - sizeof(rip_rel);
	cr_assert(eq(int, guest_run(&g, rip_rel, sizeof(rip_rel)), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(1), v, 16), 0));
}

Test(emulate_mem, instruction_fetch_checks_nx_and_refuses_mmio, .init = setup, .fini = teardown)
{
	uint8_t code[4] = {0x66, 0x0f, 0xef, 0xc1};
	gmem_write(&g.gm, GUEST_DATA, code, 4);
	uint8_t got[4];
	cr_assert(eq(int, emu_fetch(&g.cpu, &g.mem, GUEST_DATA, got, 4, &g.fault), EMU_DONE));
	cr_assert(eq(int, memcmp(got, code, 4), 0));
	*guest_pte(&g, GUEST_DATA) |= PTE_XD;
	cr_assert(eq(int, emu_fetch(&g.cpu, &g.mem, GUEST_DATA, got, 4, &g.fault), EMU_FAULT));
	expect_pf(GUEST_DATA, 0x11); /* P | I/D */
	cr_assert(
	    eq(int, emu_fetch(&g.cpu, &g.mem, GUEST_MMIO_LIN, got, 4, &g.fault), EMU_UNSUPPORTED));
	cr_assert(eq(u32, g.mmio.n, 0), "no device read for a fetch");
}

/* 32-bit paging (4 KiB and 4 MiB pages) and PAE, in 32-bit protected mode. */
Test(emulate_mem, legacy_and_pae_paging, .init = setup, .fini = teardown)
{
	struct emu_cpu *c = &g.cpu;
	c->efer = 0;
	c->seg[EMU_CS] = (struct emu_segment){.selector = 8, .db = true};
	c->cr4 = 0x600 | 0x10; /* OSFXSR, OSXMMEXCPT, PSE */
	uint8_t v[16];
	memset(v, 0xc3, sizeof(v));
	gmem_write(&g.gm, 0x00812340, v, 16);
	/* 32-bit: PD at 0x100000; linear 0x40012340 -> PT at 0x101000 -> page 0x812000. */
	uint32_t pde = 0x101000 | 3, pte = 0x812000 | 3;
	gmem_write(&g.gm, 0x100000 + (0x40012340u >> 22) * 4, &pde, 4);
	gmem_write(&g.gm, 0x101000 + ((0x40012340u >> 12) & 0x3ff) * 4, &pte, 4);
	c->cr3 = 0x100000;
	c->gpr[RBX] = 0x40012340;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), v, 16), 0));
	/* A 4 MiB page: linear 0x80412340 -> 0x00812340. */
	uint32_t big = 0x00800000 | 0x83;
	gmem_write(&g.gm, 0x100000 + (0x80412340u >> 22) * 4, &big, 4);
	memset(g.fpu + EMU_FX_XMM(0), 0, 16);
	c->gpr[RBX] = 0x80012340;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_FAULT), "not mapped");
	c->gpr[RBX] = 0x80412340;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), v, 16), 0));

	/* PAE: PDPT at 0x102000, PD at 0x103000, PT at 0x104000. */
	c->cr4 = 0x600 | 0x20;
	c->cr3 = 0x102000;
	uint64_t pdpte = 0x103000 | 1, pde64 = 0x104000 | 3, pte64 = 0x812000 | 3;
	uint64_t lin = 0x40012340;
	gmem_write(&g.gm, 0x102000 + (lin >> 30) * 8, &pdpte, 8);
	gmem_write(&g.gm, 0x103000 + ((lin >> 21) & 0x1ff) * 8, &pde64, 8);
	gmem_write(&g.gm, 0x104000 + ((lin >> 12) & 0x1ff) * 8, &pte64, 8);
	memset(g.fpu + EMU_FX_XMM(0), 0, 16);
	c->gpr[RBX] = lin;
	cr_assert(eq(int, guest_run(&g, movdqu_load, 4), EMU_DONE), "%s", err_msg());
	cr_assert(eq(int, memcmp(g.fpu + EMU_FX_XMM(0), v, 16), 0));
}

Test(emulate_mem, counters_sum_forms_that_share_a_name)
{
	struct vcpu_emulation e;
	memset(&e, 0, sizeof(e));
	unsigned movq = 0, pxor = 0;
	for (unsigned f = 0; f < emu_form_count(); f++) {
		const char *n = emu_form_name(f);
		if (!strcmp(n, "movq")) {
			e.counts[f] = 2;
			movq++;
		} else if (!strcmp(n, "pxor")) {
			e.counts[f] = 5;
			pxor++;
		}
	}
	cr_assert(gt(u32, movq, 1), "movq has several forms");
	struct emulate_count out[8];
	size_t n = emulate_counts(&e, out, 8);
	cr_assert(eq(sz, n, 2));
	uint64_t got_movq = 0, got_pxor = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(out[i].name, "movq"))
			got_movq = out[i].count;
		if (!strcmp(out[i].name, "pxor"))
			got_pxor = out[i].count;
	}
	cr_assert(eq(u64, got_movq, 2ull * movq));
	cr_assert(eq(u64, got_pxor, 5ull * pxor));
	cr_assert(le(u32, emu_form_count(), EMULATE_MAX_FORMS));
}
