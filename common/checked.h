/* Overflow-checked arithmetic for numbers that come from guests, images and clients. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* True when a + b overflows; *sum is set either way. */
static inline bool add_overflows(uint64_t a, uint64_t b, uint64_t *sum)
{
	return __builtin_add_overflow(a, b, sum);
}

/* True when [start, start + len) lies inside [0, limit). */
static inline bool range_within(uint64_t start, uint64_t len, uint64_t limit)
{
	uint64_t end;
	return !add_overflows(start, len, &end) && end <= limit;
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}
