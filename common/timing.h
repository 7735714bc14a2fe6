/* Time since the monitor process started, taken by a constructor that runs before main(). */
#pragma once

#include <stdint.h>

uint64_t timing_now_ns(void);
uint64_t timing_start_ns(void);
double timing_ms_since_start(void);
