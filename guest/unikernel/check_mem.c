/* mem: write a per-page pattern over mem_mib MiB of RAM above the unikernel,
 * then verify it. Runs natively at CPL3, with string instructions. */
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"

#define PAGE	((uint64_t)4096)
#define PATTERN ((uint64_t)0x9e3779b97f4a7c15)

struct span {
	uint64_t start, end;
};

/* Usable RAM: type 1, above KERNEL_END, below the map's reach, minus the
 * initrd (a later bootinfo check still reads it). */
static uint32_t usable_spans(struct span *out, uint32_t max)
{
	uint64_t top = mapped_top(), ird = boot.initrd_addr & ~(PAGE - 1);
	uint64_t ird_end = (boot.initrd_addr + boot.initrd_size + PAGE - 1) & ~(PAGE - 1);
	uint32_t n = 0;

	for (uint32_t i = 0; i < boot.nmem && n + 2 <= max; i++) {
		const struct mem_range *m = &boot.mem[i];
		if (m->type != E820_RAM)
			continue;
		uint64_t s = (m->addr + PAGE - 1) & ~(PAGE - 1);
		uint64_t e = (m->addr + m->size) & ~(PAGE - 1);
		if (s < KERNEL_END)
			s = KERNEL_END;
		if (e > top)
			e = top;
		if (s >= e)
			continue;
		if (!boot.initrd_size || ird_end <= s || ird >= e) {
			out[n++] = (struct span){s, e};
			continue;
		}
		if (ird > s)
			out[n++] = (struct span){s, ird};
		if (ird_end < e)
			out[n++] = (struct span){ird_end, e};
	}
	return n;
}

static void fill_page(uint64_t addr)
{
	void *p = (void *)(uintptr_t)addr;
	uint64_t n = PAGE / 8;
	__asm__ volatile("rep stosq" : "+D"(p), "+c"(n) : "a"(addr ^ PATTERN) : "memory");
}

/* Returns the first qword that differs, or 0. */
static uint64_t verify_page(uint64_t addr)
{
	const uint64_t *p = (const uint64_t *)(uintptr_t)addr;
	uint64_t n = PAGE / 8;
	__asm__ volatile("repe scasq" : "+D"(p), "+c"(n) : "a"(addr ^ PATTERN) : "memory", "cc");
	if (p[-1] != (addr ^ PATTERN))
		return (uint64_t)(uintptr_t)(p - 1);
	return 0;
}

void check_mem(void)
{
	struct span spans[2 * MEM_MAX];
	uint64_t want = opts.mem_mib << 20, avail = 0;
	uint32_t n = usable_spans(spans, 2 * MEM_MAX);

	if (!boot.nmem)
		check_fail("no memory map");
	for (uint32_t i = 0; i < n; i++)
		avail += spans[i].end - spans[i].start;
	if (avail < want)
		check_fail("mem_mib=%lu but only %lu MiB usable above 0x%x", opts.mem_mib,
			   avail >> 20, KERNEL_END);

	uint64_t left = want;
	for (uint32_t i = 0; i < n && left; i++)
		for (uint64_t a = spans[i].start; a < spans[i].end && left; a += PAGE, left -= PAGE)
			fill_page(a);
	left = want;
	for (uint32_t i = 0; i < n && left; i++)
		for (uint64_t a = spans[i].start; a < spans[i].end && left;
		     a += PAGE, left -= PAGE) {
			uint64_t bad = verify_page(a);
			if (bad)
				check_fail("mismatch at 0x%lx: read 0x%lx, wrote 0x%lx", bad,
					   *(volatile uint64_t *)(uintptr_t)bad, a ^ PATTERN);
		}
	check_pass("mib=%lu first=0x%lx", opts.mem_mib, n ? spans[0].start : 0);
}
