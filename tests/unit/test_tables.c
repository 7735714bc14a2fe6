#include "memory/boot.h"
#include "memory/layout.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

Test(e820, small_guest_has_base_ebda_and_high_ram)
{
	struct guest_mem gm;
	cr_assert(eq(int, gmem_layout(&gm, 128 * MiB), 0));
	struct e820_entry e[E820_MAX];
	unsigned n = e820_build(&gm, e, E820_MAX);
	cr_assert(eq(u32, n, 3));
	cr_assert(eq(u64, e[0].addr, 0));
	cr_assert(eq(u64, e[0].size, 0x9fc00));
	cr_assert(eq(u32, e[0].type, E820_RAM));
	cr_assert(eq(u64, e[1].addr, 0x9fc00));
	cr_assert(eq(u32, e[1].type, E820_RESERVED));
	cr_assert(eq(u64, e[2].addr, 0x100000));
	cr_assert(eq(u64, e[2].addr + e[2].size, 128 * MiB));
}

Test(e820, large_guest_splits_around_the_mmio_gap)
{
	struct guest_mem gm;
	cr_assert(eq(int, gmem_layout(&gm, 4 * GiB), 0));
	cr_assert(eq(u32, gm.nregions, 2));
	struct e820_entry e[E820_MAX];
	unsigned n = e820_build(&gm, e, E820_MAX);
	cr_assert(eq(u32, n, 4));
	cr_assert(eq(u64, e[2].addr + e[2].size, LAYOUT_MMIO_GAP_START));
	cr_assert(eq(u64, e[3].addr, 4 * GiB));
	cr_assert(eq(u64, e[3].size, 1 * GiB));
	cr_assert(eq(u64, gm.regions[1].file_offset, 3 * GiB));
}

Test(guest_mem, checked_pointer_refuses_ranges_outside_ram)
{
	struct guest_mem gm;
	cr_assert(eq(int, gmem_create(&gm, 4 * GiB), 0), "%s", err_msg());
	cr_assert(not(eq(ptr, gmem_ptr(&gm, 0, 4096), NULL)));
	cr_assert(not(eq(ptr, gmem_ptr(&gm, LAYOUT_MMIO_GAP_START - 8, 8), NULL)));
	cr_assert(eq(ptr, gmem_ptr(&gm, LAYOUT_MMIO_GAP_START - 8, 9), NULL));
	cr_assert(eq(ptr, gmem_ptr(&gm, LAYOUT_MMIO_GAP_START, 1), NULL));
	cr_assert(not(eq(ptr, gmem_ptr(&gm, 4 * GiB, 4096), NULL)));
	cr_assert(eq(ptr, gmem_ptr(&gm, 5 * GiB - 1, 2), NULL));
	cr_assert(eq(ptr, gmem_ptr(&gm, UINT64_MAX - 1, 4), NULL));
	cr_assert(eq(ptr, gmem_ptr(&gm, 4096, UINT64_MAX), NULL));
	/* The two regions are one file: high RAM starts right after low RAM's bytes. */
	uint8_t *hi = gmem_ptr(&gm, 4 * GiB, 1);
	uint8_t *lo_end = gmem_ptr(&gm, LAYOUT_MMIO_GAP_START - 1, 1);
	cr_assert(eq(ptr, hi, lo_end + 1));
	gmem_destroy(&gm);
}

Test(guest_mem, bad_sizes_are_refused)
{
	struct guest_mem gm;
	cr_assert(lt(int, gmem_layout(&gm, 0), 0));
	cr_assert(lt(int, gmem_layout(&gm, 4097), 0));
	cr_assert(lt(int, gmem_layout(&gm, 2048 * GiB), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "above the limit"), NULL), "%s", err_msg());
}

static const struct kernel_image elf_kernel = {
    .format = KERNEL_FORMAT_ELF, .protocol = BOOT_PROTOCOL_LINUX64, .entry = 0x1000000};

Test(boot_params, synthetic_header_for_vmlinux)
{
	struct e820_entry map[2] = {{0, 0x9fc00, E820_RAM}, {0x100000, 0x7f00000, E820_RAM}};
	struct boot_inputs in = {.cmdline_addr = 0x20000,
				 .cmdline_size = 42,
				 .initrd_addr = 0x7000000,
				 .initrd_size = 0x12345,
				 .e820 = map,
				 .ne820 = 2};
	struct boot_params bp;
	boot_params_build(&bp, &elf_kernel, &in);
	uint8_t *raw = (uint8_t *)&bp;
	/* Offsets from the boot protocol document, checked on the raw bytes. */
	cr_assert(eq(u16, *(uint16_t *)(raw + 0x1fe), 0xaa55));
	cr_assert(eq(int, memcmp(raw + 0x202, "HdrS", 4), 0));
	cr_assert(eq(u8, raw[0x210], 0xff));
	cr_assert(eq(u32, *(uint32_t *)(raw + 0x228), 0x20000));
	cr_assert(eq(u32, *(uint32_t *)(raw + 0x218), 0x7000000));
	cr_assert(eq(u32, *(uint32_t *)(raw + 0x21c), 0x12345));
	cr_assert(eq(u8, raw[0x1e8], 2));
	cr_assert(eq(u64, *(uint64_t *)(raw + 0x2d0 + 20), 0x100000));
	cr_assert(eq(u32, *(uint32_t *)(raw + 0x2d0 + 20 + 16), E820_RAM));
}

Test(boot_params, bzimage_header_is_kept)
{
	struct kernel_image k = {.format = KERNEL_FORMAT_BZIMAGE, .has_setup_header = true};
	k.hdr.header = 0x53726448;
	k.hdr.boot_flag = 0xaa55;
	k.hdr.version = 0x020f;
	k.hdr.kernel_alignment = 0x200000;
	k.hdr.init_size = 0x1234000;
	struct boot_inputs in = {.cmdline_addr = 0x20000};
	struct boot_params bp;
	boot_params_build(&bp, &k, &in);
	cr_assert(eq(u32, bp.hdr.init_size, 0x1234000));
	cr_assert(eq(u32, bp.hdr.kernel_alignment, 0x200000));
	cr_assert(eq(u8, bp.hdr.type_of_loader, 0xff));
	cr_assert(eq(u32, bp.hdr.ramdisk_image, 0));
}

Test(pvh, start_info_layout_matches_xen)
{
	struct e820_entry map[3] = {{0, 0x9fc00, E820_RAM},
				    {0x9fc00, 0x400, E820_RESERVED},
				    {0x100000, 0x7f00000, E820_RAM}};
	struct boot_inputs in = {.cmdline_addr = 0x20000,
				 .initrd_addr = 0x7ff0000,
				 .initrd_size = 4096,
				 .e820 = map,
				 .ne820 = 3};
	uint8_t page[4096];
	int n = pvh_start_info_build(page, sizeof(page), 0x6000, &in);
	cr_assert(gt(int, n, 0), "%s", err_msg());
	cr_assert(eq(u32, *(uint32_t *)(page + 0), PVH_START_INFO_MAGIC));
	cr_assert(eq(u32, *(uint32_t *)(page + 4), 1));	 /* version */
	cr_assert(eq(u32, *(uint32_t *)(page + 12), 1)); /* nr_modules */
	uint64_t modlist = *(uint64_t *)(page + 16);
	cr_assert(eq(u64, *(uint64_t *)(page + 24), 0x20000)); /* cmdline_paddr */
	uint64_t memmap = *(uint64_t *)(page + 40);
	cr_assert(eq(u32, *(uint32_t *)(page + 48), 3)); /* memmap_entries */
	cr_assert(eq(u64, *(uint64_t *)(page + (modlist - 0x6000)), 0x7ff0000));
	cr_assert(eq(u64, *(uint64_t *)(page + (modlist - 0x6000) + 8), 4096));
	const uint8_t *e2 = page + (memmap - 0x6000) + 2 * 24;
	cr_assert(eq(u64, *(uint64_t *)e2, 0x100000));
	cr_assert(eq(u32, *(uint32_t *)(e2 + 16), E820_RAM));
}

Test(pvh, no_initrd_means_no_modules)
{
	struct e820_entry map[1] = {{0, 0x9fc00, E820_RAM}};
	struct boot_inputs in = {.cmdline_addr = 0x20000, .e820 = map, .ne820 = 1};
	uint8_t page[4096];
	cr_assert(gt(int, pvh_start_info_build(page, sizeof(page), 0x6000, &in), 0));
	cr_assert(eq(u32, *(uint32_t *)(page + 12), 0));
	cr_assert(eq(u64, *(uint64_t *)(page + 16), 0));
}

Test(mptable, checksums_and_cpu_entries)
{
	uint8_t buf[1024];
	for (unsigned ncpus = 1; ncpus <= MPTABLE_MAX_CPUS; ncpus++) {
		int n = mptable_build(buf, sizeof(buf), 0x9fc00, ncpus);
		cr_assert(gt(int, n, 0), "%u cpus: %s", ncpus, err_msg());
		cr_assert(eq(int, memcmp(buf, "_MP_", 4), 0));
		cr_assert(eq(u8, sum8(buf, 16), 0), "floating pointer checksum");
		uint32_t physptr = *(uint32_t *)(buf + 4);
		cr_assert(eq(u32, physptr, 0x9fc10));
		const uint8_t *tbl = buf + (physptr - 0x9fc00);
		cr_assert(eq(int, memcmp(tbl, "PCMP", 4), 0));
		uint16_t len = *(uint16_t *)(tbl + 4);
		cr_assert(eq(u8, sum8(tbl, len), 0), "config table checksum");
		cr_assert(le(int, 16 + len, 1024));
		/* Processor entries come first, APIC IDs 0..n-1, CPU 0 the bootstrap one. */
		const uint8_t *e = tbl + 44;
		for (unsigned i = 0; i < ncpus; i++, e += 20) {
			cr_assert(eq(u8, e[0], 0));
			cr_assert(eq(u8, e[1], i));
			cr_assert(eq(u8, e[3], i == 0 ? 3 : 1));
		}
		cr_assert(eq(u8, e[0], 1), "bus entry follows the CPUs");
	}
	cr_assert(lt(int, mptable_build(buf, sizeof(buf), 0x9fc00, 0), 0));
	cr_assert(lt(int, mptable_build(buf, sizeof(buf), 0x9fc00, MPTABLE_MAX_CPUS + 1), 0));
	cr_assert(lt(int, mptable_build(buf, 100, 0x9fc00, 4), 0));
}
