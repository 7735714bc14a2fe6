/* Strict parsing of numeric command-line values: the whole string must be a number in range. */
#pragma once

#include <stdint.h>

int cli_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* The console on a terminal: line editing and echo off while the guest runs, restored after. */
void cli_console_enter(int fd);
void cli_console_leave(void);
