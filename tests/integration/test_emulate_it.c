/* The emulation fallback on real KVM. The test unikernel's `sse` check runs SSE, XSAVE and other
 * forms at CPL0 so that KVM's own emulator has to take them, and compares each with the same
 * bytes at CPL3. Where CPL0 code runs natively (tests/l1's nested SVM) only a memory operand
 * without a memslot makes KVM emulate, so the check puts operands in MMIO: KVM's emulator fails
 * on the instruction and exits with it, RIP at the instruction. KVM's forced-emulation prefix
 * (kvm.force_emulation_prefix, which tests/l1 sets) reaches only instructions that its emulator
 * decodes but cannot execute (int3, cmpxchg16b): for an opcode it cannot decode it injects #UD
 * without an exit. On kvm_pvm every CPL0 run goes through the fallback. Ember's debug log names
 * every instruction the fallback ran. An instruction nobody emulates still stops the VM. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_S 300.0

static bool forced_emulation(void)
{
	FILE *f = fopen("/sys/module/kvm/parameters/force_emulation_prefix", "r");
	if (!f)
		return false;
	int v = 0;
	bool ok = fscanf(f, "%d", &v) == 1 && v != 0;
	fclose(f);
	return ok;
}

static void run_unikernel(struct ember_run *r, const char *kernel, const char *protocol,
			  const char *cmdline, const char *vcpus)
{
	const char *args[] = {"run",
			      "--kernel",
			      kernel,
			      "--boot-protocol",
			      protocol,
			      "--cmdline",
			      cmdline,
			      "--log-level",
			      "debug",
			      "--vcpus",
			      vcpus ? vcpus : "1",
			      NULL};
	ember_exec(r, args, TIMEOUT_S, NULL, NULL);
}

static unsigned count(const char *s, const char *what)
{
	unsigned n = 0;
	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

/* Sum of the fallback's own timings ("... in 12.3 us") in the log: TCG-emulated under tests/l1,
 * so informative only. */
static double mean_us(const char *log)
{
	double sum = 0;
	unsigned n = 0;
	for (const char *p = log; (p = strstr(p, ": emulated ")); p++) {
		const char *in = strstr(p, " in ");
		const char *eol = strchr(p, '\n');
		if (!in || (eol && in > eol))
			continue;
		sum += strtod(in + 4, NULL);
		n++;
	}
	return n ? sum / n : 0;
}

Test(emulate_it, sse_forms_at_cpl0_match_cpl3_through_the_fallback)
{
	require_kvm();
	bool fep = forced_emulation();
	struct ember_run r;
	run_unikernel(&r, unikernel_path(), "pvh", fep ? "check=sse sse_fep=1" : "check=sse", NULL);
	cr_assert(ne(ptr, strstr(r.out, "CHECK sse PASS"), NULL), "%s", ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));

	/* Forms KVM cannot run itself must have gone through Ember's fallback. */
	static const char *const always[] = {
	    "pxor",    "paddq",	  "punpcklbw", "pshufd",  "addps",	"cvtsi2sd",
	    "ldmxcsr", "stmxcsr", "fxsave",    "fxrstor", "cmpxchg16b",
	};
	for (unsigned i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
		char want[64];
		snprintf(want, sizeof(want), ": emulated %s at ", always[i]);
		cr_assert(ne(ptr, strstr(r.err, want), NULL), "no '%s' in the log:\n%s", want,
			  ember_run_describe(&r));
	}
	/* Those the guest's CPU has (the check prints a line for each form it ran). */
	static const char *const optional[] = {"xsave", "xsaveopt", "xsavec", "xrstor", "popcnt"};
	for (unsigned i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
		char ran[64], want[64];
		snprintf(ran, sizeof(ran), "sse: %s ", optional[i]);
		snprintf(want, sizeof(want), ": emulated %s at ", optional[i]);
		if (strstr(r.out, ran))
			cr_assert(ne(ptr, strstr(r.err, want), NULL), "no '%s' in the log:\n%s",
				  want, ember_run_describe(&r));
	}
	/* Faults the emulated instruction raises reach the guest as exceptions. */
	cr_assert(ne(ptr, strstr(r.err, "ldmxcsr at rip="), NULL), "ldmxcsr's #GP");
	cr_assert(ne(ptr, strstr(r.err, "raised vector 13"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "raised vector 19"), NULL), "%s", ember_run_describe(&r));
	if (fep)
		cr_assert(ne(ptr, strstr(r.err, ": emulated int3 at "), NULL), "%s",
			  ember_run_describe(&r));
	cr_log_info("%u instructions emulated, %.1f us each on average (TCG-emulated L1 when run "
		    "by tests/l1: not a hardware figure)",
		    count(r.err, ": emulated "), mean_us(r.err));
	fprintf(stderr, "emulate_it: %u instructions emulated, mean %.1f us per fallback\n",
		count(r.err, ": emulated "), mean_us(r.err));
	ember_run_free(&r);
}

Test(emulate_it, an_instruction_nobody_emulates_stops_the_vm_with_the_report)
{
	require_kvm();
	struct ember_run r;
	run_unikernel(&r, unikernel_path(), "linux", "check=sse_unknown", NULL);
	cr_assert(ne(ptr, strstr(r.out, "sse_unknown: MMX pxor"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(ptr, strstr(r.out, "still running"), NULL), "%s", ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 5), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "cannot emulate it either"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "instruction emulation failed"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "0f ef"), NULL), "the bytes in the report:\n%s",
		  ember_run_describe(&r));
	ember_run_free(&r);
}

/* The unikernel built with SSE code generation and SSE on from its entry, as Unikraft-style
 * guests are, through both boot protocols. */
Test(emulate_it, sse_enabled_unikernel_boots_and_passes_its_checks)
{
	require_kvm();
	char path[4096];
	const char *base = unikernel_path(), *slash = strrchr(base, '/');
	snprintf(path, sizeof(path), "%.*sember-unikernel-sse.elf",
		 slash ? (int)(slash - base + 1) : 0, base);
	static const char *const protocols[] = {"pvh", "linux"};
	static const char *const checks[] = {"hello", "bootinfo", "timer", "smp", "mem", "sse"};
	for (unsigned i = 0; i < 2; i++) {
		struct ember_run r;
		run_unikernel(&r, path, protocols[i],
			      "check=hello,bootinfo,timer,smp,mem,sse cpus=2 mem_mib=8", "2");
		for (unsigned c = 0; c < sizeof(checks) / sizeof(checks[0]); c++) {
			char want[64];
			snprintf(want, sizeof(want), "CHECK %s PASS", checks[c]);
			cr_assert(ne(ptr, strstr(r.out, want), NULL), "%s: no '%s':\n%s",
				  protocols[i], want, ember_run_describe(&r));
		}
		cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
		ember_run_free(&r);
	}
}
