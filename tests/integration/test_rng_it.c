/* virtio-rng end to end: the unikernel's `rng` check reads Ember's device and prints what it
 * got, a line of 16 bytes in hex every 100 ms. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_S 120.0
#define HEX_LEN	  32

/* The whole "rng: <32 hex digits>" lines in out, copied (NUL-terminated) into lines[]; how
 * many. */
static unsigned rng_lines(const char *out, char lines[][HEX_LEN + 1], unsigned max)
{
	unsigned n = 0;
	for (const char *p = out; n < max;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break; /* a line still being written */
		const char *hex = p + 5;
		if (strncmp(p, "rng: ", 5) == 0 && strspn(hex, "0123456789abcdef") == HEX_LEN &&
		    hex + HEX_LEN == nl) {
			memcpy(lines[n], hex, HEX_LEN);
			lines[n++][HEX_LEN] = 0;
		}
		p = nl + 1;
	}
	return n;
}

Test(rng_it, guest_reads_fresh_bytes_from_the_device)
{
	require_kvm();
	const char *args[] = {"run", "--kernel",  unikernel_path(), "--rng",
			      "on",  "--cmdline", "check=rng",	    NULL};
	struct ember_proc p;
	ember_spawn(&p, args);
	char lines[8][HEX_LEN + 1];
	unsigned n = 0;
	for (int i = 0; i < (int)(TIMEOUT_S * 20) && n < 3 && p.out_fd >= 0; i++) {
		ember_proc_poll(&p, 50);
		n = p.out ? rng_lines(p.out, lines, 8) : 0;
	}
	kill(p.pid, SIGINT);
	int code = ember_proc_wait_exit(&p, 30);
	cr_assert(ge(u32, n, 3), "rng lines: %u\nout:\n%s\nerr:\n%s", n, p.out ? p.out : "",
		  p.err ? p.err : "");
	cr_assert(ne(ptr, strstr(p.out, "virtio: rng at 0xc0001000 irq 5"), NULL), "%s", p.out);
	for (unsigned i = 1; i < n; i++)
		cr_assert(ne(int, strcmp(lines[i], lines[i - 1]), 0), "line %u repeats line %u: %s",
			  i, i - 1, lines[i]);
	cr_assert(eq(ptr, strstr(p.out, "CHECK rng FAIL"), NULL), "%s", p.out);
	cr_assert(eq(int, code, 130), "stopped by SIGINT; err:\n%s", p.err ? p.err : "");
	ember_proc_free(&p);
}

Test(rng_it, rng_check_without_the_device_fails_cleanly)
{
	require_kvm();
	const char *args[] = {"run", "--kernel", unikernel_path(), "--cmdline", "check=rng", NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	cr_assert(ne(ptr, strstr(r.out, "CHECK rng FAIL no virtio_mmio.device="), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 3), "a failed check is a guest panic: %s",
		  ember_run_describe(&r));
	ember_run_free(&r);
}

Test(rng_it, bad_rng_flags_are_usage_errors)
{
	struct {
		const char *spec, *spec2, *why;
	} cases[] = {
	    {"off", NULL, "--rng off: expected 'on' or 'default'"},
	    {"on,rate=1", NULL, "--rng on,rate=1: expected 'on' or 'default'"},
	    {"on", "default", "--rng default: only one rng device is supported"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = {"run",	     "--kernel", unikernel_path(), "--rng",
				      cases[i].spec, "--rng",	 cases[i].spec2,   NULL};
		if (!cases[i].spec2)
			args[5] = NULL;
		struct ember_run r;
		ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
		cr_assert(eq(int, r.exit_code, 2), "%s", ember_run_describe(&r));
		cr_assert(ne(ptr, strstr(r.err, cases[i].why), NULL), "%s", ember_run_describe(&r));
		ember_run_free(&r);
	}
}
