/* Boot information from either entry: Linux boot_params or PVH hvm_start_info. */
#include "boot.h"

#include "arch.h"
#include "lib.h"

struct boot_info boot;

/* Linux boot_params (the zero page), offsets from Documentation/arch/x86/zero-page.rst. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_HDR_MAGIC	     0x202 /* "HdrS" */
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE	     0x21c
#define BP_CMD_LINE_PTR	     0x228
#define BP_E820_TABLE	     0x2d0
#define BP_E820_MAX	     128
#define HDRS_MAGIC	     0x53726448

/* struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h). */
#define SI_MAGIC	  0
#define SI_VERSION	  4
#define SI_NR_MODULES	  12
#define SI_MODLIST	  16
#define SI_CMDLINE	  24
#define SI_MEMMAP	  40
#define SI_MEMMAP_ENTRIES 48
#define SI_MAGIC_VALUE	  0x336ec578
#define SI_MODLIST_ENTRY  32
#define SI_MEMMAP_ENTRY	  24

/* Loader addresses are trusted no further than our identity map reaches. */
static const uint8_t *phys(uint64_t addr, uint64_t len)
{
	if (!addr || addr >= mapped_top() || len > mapped_top() - addr)
		return 0;
	return (const uint8_t *)(uintptr_t)addr;
}

static void copy_cmdline(uint64_t addr)
{
	const char *s = (const char *)phys(addr, 1);
	size_t i = 0;

	if (s)
		for (; i < CMDLINE_MAX - 1 && (addr + i) < mapped_top() && s[i]; i++)
			boot.cmdline[i] = s[i];
	boot.cmdline[i] = 0;
}

static void add_mem(uint64_t addr, uint64_t size, uint32_t type)
{
	if (boot.nmem < MEM_MAX)
		boot.mem[boot.nmem++] = (struct mem_range){addr, size, type};
}

static void parse_linux64(uint64_t info)
{
	const uint8_t *bp = phys(info, 4096);

	if (!bp)
		return;
	boot.info_valid = load_u32(bp + BP_HDR_MAGIC) == HDRS_MAGIC;
	copy_cmdline(load_u32(bp + BP_CMD_LINE_PTR) | (uint64_t)load_u32(bp + BP_EXT_CMD_LINE_PTR)
							  << 32);
	boot.initrd_addr =
	    load_u32(bp + BP_RAMDISK_IMAGE) | (uint64_t)load_u32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	boot.initrd_size =
	    load_u32(bp + BP_RAMDISK_SIZE) | (uint64_t)load_u32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	uint32_t n = bp[BP_E820_ENTRIES];
	if (n > BP_E820_MAX)
		n = BP_E820_MAX;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		add_mem(load_u64(e), load_u64(e + 8), load_u32(e + 16));
	}
}

static void parse_pvh(uint64_t info)
{
	const uint8_t *si = phys(info, 56);

	if (!si || load_u32(si + SI_MAGIC) != SI_MAGIC_VALUE)
		return;
	boot.info_valid = true;
	copy_cmdline(load_u64(si + SI_CMDLINE));
	if (load_u32(si + SI_NR_MODULES) >= 1) {
		const uint8_t *mod = phys(load_u64(si + SI_MODLIST), SI_MODLIST_ENTRY);
		if (mod) {
			boot.initrd_addr = load_u64(mod);
			boot.initrd_size = load_u64(mod + 8);
		}
	}
	if (load_u32(si + SI_VERSION) < 1)
		return; /* version 0 has no memory map */
	uint32_t n = load_u32(si + SI_MEMMAP_ENTRIES);
	if (n > MEM_MAX)
		n = MEM_MAX;
	const uint8_t *map = phys(load_u64(si + SI_MEMMAP), (uint64_t)n * SI_MEMMAP_ENTRY);
	for (uint32_t i = 0; map && i < n; i++) {
		const uint8_t *e = map + SI_MEMMAP_ENTRY * i;
		add_mem(load_u64(e), load_u64(e + 8), load_u32(e + 16));
	}
}

static bool checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	while (len--)
		sum += *p++;
	return sum == 0;
}

/* Intel MP spec 1.4: a floating pointer "_MP_" on a 16-byte boundary points
 * at a "PCMP" table whose processor entries (type 0, 20 bytes) we count.
 * Walked by the table length, as Linux does: qboot leaves the count 0. */
static uint32_t mp_count_cpus(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a + 16 <= end; a += 16) {
		const uint8_t *f = (const uint8_t *)(uintptr_t)a;
		if (load_u32(f) != 0x5f504d5f || f[8] != 1 || !checksum_ok(f, 16))
			continue;
		const uint8_t *t = phys(load_u32(f + 4), 44);
		if (!t || load_u32(t) != 0x504d4350)
			return 0;
		uint32_t len = t[4] | t[5] << 8, cpus = 0;
		const uint8_t *e = t + 44, *end_t = t + len;
		while (e + 8 <= end_t) {
			if (e[0] == 0) {
				if (e + 20 > end_t)
					break;
				cpus += e[3] & 1; /* enabled */
				e += 20;
			} else if (e[0] <= 4) {
				e += 8;
			} else {
				break; /* unknown entry, unknown size */
			}
		}
		return cpus;
	}
	return 0;
}

void boot_parse(uint32_t proto, uint64_t info)
{
	boot.proto = proto;
	boot.info_addr = info;
	if (proto == BOOT_PROTO_LINUX64)
		parse_linux64(info);
	else
		parse_pvh(info);
	boot.mp_cpus = mp_count_cpus(0x9fc00, 0xa0000);
	if (!boot.mp_cpus)
		boot.mp_cpus = mp_count_cpus(0xf0000, 0x100000);
}

const char *boot_proto_name(void)
{
	return boot.proto == BOOT_PROTO_LINUX64 ? "linux64" : "pvh";
}

uint64_t boot_ram_bytes(void)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < boot.nmem; i++)
		if (boot.mem[i].type == E820_RAM)
			total += boot.mem[i].size;
	return total;
}
