/* The tables a guest reads at entry: the e820 memory map, Linux's boot_params (zero page) and
 * the PVH hvm_start_info. Pure builders; boot_prepare() puts them in guest memory. */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>

unsigned e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned max)
{
	unsigned n = 0;
#define ADD(a, s, t)                                                                               \
	do {                                                                                       \
		if (n < max)                                                                       \
			out[n++] = (struct e820_entry){.addr = (a), .size = (s), .type = (t)};     \
	} while (0)
	uint64_t low_end = gmem_low_end(gm);
	/* Base memory ends where the EBDA (and our MP table) begins. */
	uint64_t base_end = low_end < LAYOUT_MPTABLE_ADDR ? low_end : LAYOUT_MPTABLE_ADDR;
	ADD(0, base_end, E820_RAM);
	if (low_end > LAYOUT_MPTABLE_ADDR)
		ADD(LAYOUT_MPTABLE_ADDR, LAYOUT_EBDA_END - LAYOUT_MPTABLE_ADDR, E820_RESERVED);
	if (low_end > LAYOUT_HIMEM_START)
		ADD(LAYOUT_HIMEM_START, low_end - LAYOUT_HIMEM_START, E820_RAM);
	for (unsigned i = 1; i < gm->nregions; i++)
		ADD(gm->regions[i].gpa, gm->regions[i].size, E820_RAM);
#undef ADD
	return n;
}

void boot_params_build(struct boot_params *bp, const struct kernel_image *k,
		       const struct boot_inputs *in)
{
	memset(bp, 0, sizeof(*bp));
	if (k->has_setup_header) {
		/* The image's own header, as far as its jump at 0x200 says it reaches. */
		bp->hdr = k->hdr;
	} else {
		bp->hdr.boot_flag = 0xaa55;
		bp->hdr.header = 0x53726448; /* "HdrS" */
		bp->hdr.version = 0x020f;
		bp->hdr.kernel_alignment = 0x1000000;
		bp->hdr.loadflags = LOADED_HIGH;
	}
	bp->hdr.type_of_loader = 0xff; /* "undefined" boot loader */
	bp->hdr.vid_mode = 0xffff;     /* "normal" */
	bp->hdr.cmd_line_ptr = (uint32_t)in->cmdline_addr;
	bp->ext_cmd_line_ptr = (uint32_t)(in->cmdline_addr >> 32);
	bp->hdr.cmdline_size = (uint32_t)in->cmdline_size;
	if (in->initrd_size) {
		bp->hdr.ramdisk_image = (uint32_t)in->initrd_addr;
		bp->ext_ramdisk_image = (uint32_t)(in->initrd_addr >> 32);
		bp->hdr.ramdisk_size = (uint32_t)in->initrd_size;
		bp->ext_ramdisk_size = (uint32_t)(in->initrd_size >> 32);
	}
	unsigned n = in->ne820 < E820_MAX_ENTRIES_ZEROPAGE ? in->ne820 : E820_MAX_ENTRIES_ZEROPAGE;
	for (unsigned i = 0; i < n; i++) {
		bp->e820_table[i].addr = in->e820[i].addr;
		bp->e820_table[i].size = in->e820[i].size;
		bp->e820_table[i].type = in->e820[i].type;
	}
	bp->e820_entries = (uint8_t)n;
}

/* Xen's public start_info.h layout, version 1. */
struct pvh_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct pvh_module {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct pvh_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct pvh_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct pvh_module) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct pvh_memmap_entry) == 24, "hvm_memmap_table_entry layout");

int pvh_start_info_build(uint8_t *page, size_t page_size, uint64_t page_gpa,
			 const struct boot_inputs *in)
{
	const size_t mod_off = 64;
	const size_t map_off = mod_off + sizeof(struct pvh_module);
	size_t need = map_off + (size_t)in->ne820 * sizeof(struct pvh_memmap_entry);
	if (need > page_size)
		return err_set(E2BIG, "PVH start info needs %zu bytes, has %zu", need, page_size);
	memset(page, 0, need);
	struct pvh_start_info si = {
	    .magic = PVH_START_INFO_MAGIC,
	    .version = 1,
	    .cmdline_paddr = in->cmdline_addr,
	    .memmap_paddr = page_gpa + map_off,
	    .memmap_entries = in->ne820,
	};
	if (in->initrd_size) {
		struct pvh_module m = {.paddr = in->initrd_addr, .size = in->initrd_size};
		memcpy(page + mod_off, &m, sizeof(m));
		si.nr_modules = 1;
		si.modlist_paddr = page_gpa + mod_off;
	}
	memcpy(page, &si, sizeof(si));
	for (unsigned i = 0; i < in->ne820; i++) {
		struct pvh_memmap_entry e = {
		    .addr = in->e820[i].addr, .size = in->e820[i].size, .type = in->e820[i].type};
		memcpy(page + map_off + i * sizeof(e), &e, sizeof(e));
	}
	return (int)need;
}
