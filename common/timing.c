#include "common/timing.h"

#include <time.h>

static uint64_t process_start_ns;

uint64_t timing_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Priority 101 runs before any other constructor, as close to exec as a program can look. */
__attribute__((constructor(101))) static void timing_record_start(void)
{
	process_start_ns = timing_now_ns();
}

uint64_t timing_start_ns(void)
{
	return process_start_ns;
}

double timing_ms_since_start(void)
{
	return (double)(timing_now_ns() - process_start_ns) / 1e6;
}
