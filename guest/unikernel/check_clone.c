/* clone: the guest the clone-density benchmark snapshots. It touches mem_mib MiB with a per-page
 * pattern at CPL3 (as `mem` does), says it is ready, then idles in `hlt` on a 10 ms LAPIC tick so
 * that a hundred clones cost the host no CPU. A restore shows up as the TSC jumping forward by
 * the time the snapshot spent on disk: after each jump of more than a second it reads back all
 * it touched (the pattern must have survived), then rewrites the first MiB with data no other
 * clone has (seeded by the TSC), so every clone owns exactly that MiB privately and shares the
 * rest with its snapshot. Never ends. */
#include "apic.h"
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"

#define PAGE		((uint64_t)4096)
#define PATTERN		((uint64_t)0x9e3779b97f4a7c15)
#define WRITE_BYTES	((uint64_t)1 << 20)
#define TICK_US		10000
#define JUMP_US		1000000
#define TIMER_DIV_1	0x0b
#define LAPIC_NS_PER_US 1000 /* KVM and QEMU run the LAPIC timer at 1 GHz, divide 1 */

/* The first RAM span at or above KERNEL_END that the initrd does not overlap. Touching stays
 * inside one span: the benchmark's guests have a single big RAM range above 1 MiB. */
static bool first_span(uint64_t *start, uint64_t *end)
{
	uint64_t ird = boot.initrd_addr & ~(PAGE - 1);
	uint64_t ird_end = (boot.initrd_addr + boot.initrd_size + PAGE - 1) & ~(PAGE - 1);

	for (uint32_t i = 0; i < boot.nmem; i++) {
		const struct mem_range *m = &boot.mem[i];
		if (m->type != E820_RAM)
			continue;
		uint64_t s = (m->addr + PAGE - 1) & ~(PAGE - 1);
		uint64_t e = (m->addr + m->size) & ~(PAGE - 1);
		if (s < KERNEL_END)
			s = KERNEL_END;
		if (e > mapped_top())
			e = mapped_top();
		if (boot.initrd_size && ird < e && ird_end > s) {
			if (ird_end < e)
				s = ird_end; /* what lies above the initrd, if anything does */
			else
				e = ird;
		}
		if (s < e) {
			*start = s;
			*end = e;
			return true;
		}
	}
	return false;
}

static void fill(uint64_t start, uint64_t bytes, uint64_t seed)
{
	for (uint64_t a = start; a < start + bytes; a += PAGE) {
		void *p = (void *)(uintptr_t)a;
		uint64_t n = PAGE / 8;
		__asm__ volatile("rep stosq" : "+D"(p), "+c"(n) : "a"(a ^ seed) : "memory");
	}
}

/* The first page that does not hold its pattern, or 0. */
static uint64_t verify(uint64_t start, uint64_t bytes, uint64_t seed)
{
	for (uint64_t a = start; a < start + bytes; a += PAGE) {
		const uint64_t *p = (const uint64_t *)(uintptr_t)a;
		uint64_t n = PAGE / 8;
		__asm__ volatile("repe scasq" : "+D"(p), "+c"(n) : "a"(a ^ seed) : "memory", "cc");
		if (p[-1] != (a ^ seed))
			return a;
	}
	return 0;
}

static void idle_tick(void)
{
	irq_disable();
	__asm__ volatile("int %0" : : "i"(VEC_SERVICE), "a"(SERVICE_WAIT) : "memory");
}

void check_clone(void)
{
	uint64_t start, end, want = opts.mem_mib << 20;

	if (!boot.nmem)
		check_fail("no memory map");
	if (!first_span(&start, &end))
		check_fail("no RAM above 0x%x", KERNEL_END);
	if (end - start < want || end - start < WRITE_BYTES)
		check_fail("mem_mib=%lu but the first RAM span above 0x%x holds %lu MiB",
			   opts.mem_mib, KERNEL_END, (end - start) >> 20);
	fill(start, want, PATTERN);
	pic_mask_all();
	lapic_enable();
	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_1);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER | LVT_TIMER_PERIODIC);
	lapic_write(LAPIC_TIMER_INIT, TICK_US * LAPIC_NS_PER_US);
	/* Everything a restore relies on is in place before the line that tells the host it may
	 * snapshot now: a snapshot taken right after it must still see the jump. */
	uint64_t jump = tsc_hz() / 1000000 * JUMP_US, last = rdtsc(), generation = 0;
	uint64_t seed = PATTERN; /* what the first MiB holds now */
	kprintf("clone: ready mib=%lu first=0x%lx tsc_khz=%lu\n", opts.mem_mib, start,
		tsc_hz() / 1000);
	console_flush();

	for (;;) {
		idle_tick();
		uint64_t now = rdtsc();
		if (now - last > jump) {
			/* A clone reads back all it inherited (so its PSS shows the sharing),
			 * then makes the first MiB its own. */
			uint64_t bad = verify(start, WRITE_BYTES, seed);
			if (!bad && want > WRITE_BYTES)
				bad = verify(start + WRITE_BYTES, want - WRITE_BYTES, PATTERN);
			if (bad)
				check_fail("page 0x%lx lost its contents across the jump", bad);
			seed = PATTERN ^ now;
			fill(start, WRITE_BYTES, seed);
			generation++;
			kprintf(
			    "clone: wrote mib=%lu verified_mib=%lu generation=%lu jump_ms=%lu\n",
			    WRITE_BYTES >> 20, opts.mem_mib, generation,
			    (now - last) / (tsc_hz() / 1000));
			console_flush();
			now = rdtsc();
		}
		last = now;
	}
}
