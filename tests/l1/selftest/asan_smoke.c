// SPDX-License-Identifier: MIT
// Sanitizer smoke test for the L1 harness: built on the host with
// -fsanitize=address,undefined, it must run inside L1 (ASan needs
// /proc/self/maps, a large address space, etc.).
//   asan_smoke            clean run; prints "asan_smoke: PASS", exits 0
//   asan_smoke overflow   heap-buffer-overflow; ASan must report and abort
//
//   cc -g -fsanitize=address,undefined -o asan_smoke tests/l1/selftest/asan_smoke.c

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	size_t n = 64;
	char *buf = malloc(n);
	if (!buf)
		return 1;
	memset(buf, 'x', n);
	if (argc > 1 && strcmp(argv[1], "overflow") == 0) {
		volatile char *p = buf;
		p[n] = 'y'; // one past the end
	}
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (unsigned char)buf[i];
	free(buf);
	printf("asan_smoke: PASS (sum %u)\n", sum);
	return 0;
}
