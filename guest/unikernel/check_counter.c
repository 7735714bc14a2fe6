/* counter: count forever at CPL3 in a 64-bit word at COUNTER_ADDR, printing
 * it about every 100 ms (TSC). Snapshot tests read the word from guest memory
 * and watch it advance across pause, snapshot and restore. */
#include "arch.h"
#include "checks.h"
#include "console.h"

volatile uint64_t ember_counter __attribute__((section(".counter")));

void check_counter(void)
{
	uint64_t period = tsc_hz() / 10, next;

	ember_counter = 0;
	kprintf("counter: addr=0x%lx\n", (uint64_t)(uintptr_t)&ember_counter);
	next = rdtsc() + period;
	for (;;) {
		for (int i = 0; i < 4096; i++)
			ember_counter++;
		if (tsc_passed(next)) {
			kprintf("counter: %lu\n", ember_counter);
			next += period;
			if (tsc_passed(next)) /* after a long pause or a restore */
				next = rdtsc() + period;
		}
	}
}
