/* Strict parsing of numeric command-line values: the whole string must be a number in range. */
#pragma once

#include <stdint.h>

int cli_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out);
