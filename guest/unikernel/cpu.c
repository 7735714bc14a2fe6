/* CPU facts the checks need: TSC frequency and how far the identity map reaches. */
#include "arch.h"

static uint64_t hz;

/* KVM and Ember report the TSC frequency in the hypervisor timing leaf;
 * elsewhere 1 GHz is only a guess, good enough for timeouts and pacing. */
uint64_t tsc_hz(void)
{
	uint32_t r[4];

	if (hz)
		return hz;
	hz = 1000000000;
	cpuid(0x40000000, 0, r);
	if (r[0] >= 0x40000010 && r[0] < 0x40010000) {
		cpuid(0x40000010, 0, r);
		if (r[0])
			hz = (uint64_t)r[0] * 1000;
	}
	return hz;
}

uint64_t tsc_after_us(uint64_t us)
{
	return rdtsc() + tsc_hz() * us / 1000000;
}

bool tsc_passed(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

void delay_us(uint64_t us)
{
	uint64_t end = tsc_after_us(us);
	while (!tsc_passed(end))
		cpu_relax();
}

/* The entry code made the same test when it chose the page size. */
bool cpu_has_1g_pages(void)
{
	uint32_t r[4];
	cpuid(0x80000001, 0, r);
	return r[3] & (1u << 26);
}

/* Cached: CPUID is an exit, and boot parsing asks per byte. */
uint64_t mapped_top(void)
{
	static uint64_t top;

	if (!top)
		top = cpu_has_1g_pages() ? MAPPED_TOP_1G : MAPPED_TOP_2M;
	return top;
}
