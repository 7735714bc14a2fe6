/* The test unikernel on real KVM, through both boot protocols: each check prints one
 * "CHECK <name> PASS|FAIL ..." line and the guest resets. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_S 60.0

static const char *const protocols[] = {"pvh", "linux"};

static void run_checks(struct ember_run *r, const char *protocol, const char *cmdline,
		       const char *vcpus, const char *mem, const char *initrd)
{
	const char *args[24];
	int n = 0;
	args[n++] = "run";
	args[n++] = "--kernel";
	args[n++] = unikernel_path();
	args[n++] = "--boot-protocol";
	args[n++] = protocol;
	args[n++] = "--cmdline";
	args[n++] = cmdline;
	if (vcpus) {
		args[n++] = "--vcpus";
		args[n++] = vcpus;
	}
	if (mem) {
		args[n++] = "--mem-mib";
		args[n++] = mem;
	}
	if (initrd) {
		args[n++] = "--initrd";
		args[n++] = initrd;
	}
	args[n] = NULL;
	ember_exec(r, args, TIMEOUT_S, NULL, NULL);
}

static void assert_pass(const struct ember_run *r, const char *check)
{
	char want[64];
	snprintf(want, sizeof(want), "CHECK %s PASS", check);
	cr_assert(ne(ptr, strstr(r->out, want), NULL), "no '%s':\n%s", want, ember_run_describe(r));
}

Test(unikernel, hello_through_both_protocols_exits_zero)
{
	require_kvm();
	for (unsigned i = 0; i < 2; i++) {
		struct ember_run r;
		run_checks(&r, protocols[i], "check=hello", NULL, NULL, NULL);
		assert_pass(&r, "hello");
		char want[64];
		snprintf(want, sizeof(want), "hello from %s entry", i == 0 ? "pvh" : "linux64");
		cr_assert(ne(ptr, strstr(r.out, want), NULL), "%s", ember_run_describe(&r));
		cr_assert(ne(ptr, strstr(r.out, "ember-unikernel: main"), NULL));
		cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
		ember_run_free(&r);
	}
}

Test(unikernel, boot_info_command_line_and_initrd_arrive_intact)
{
	require_kvm();
	char *initrd = temp_file_with(123457, 7);
	unsigned long crc = crc32_file(initrd);
	char want_crc[32];
	snprintf(want_crc, sizeof(want_crc), "crc32=%08lx", crc);
	for (unsigned i = 0; i < 2; i++) {
		struct ember_run r;
		run_checks(&r, protocols[i], "check=bootinfo marker=xyzzy", NULL, "96", initrd);
		assert_pass(&r, "bootinfo");
		cr_assert(ne(ptr, strstr(r.out, want_crc), NULL), "want %s:\n%s", want_crc,
			  ember_run_describe(&r));
		cr_assert(ne(ptr, strstr(r.out, "+123457"), NULL), "initrd size:\n%s",
			  ember_run_describe(&r));
		cr_assert(ne(ptr, strstr(r.out, "marker=xyzzy"), NULL), "user command line");
		cr_assert(ne(ptr, strstr(r.out, "console=ttyS0 reboot=k panic=1"), NULL),
			  "monitor's fragments");
		cr_assert(strstr(r.out, "ram_mib=95") || strstr(r.out, "ram_mib=96"),
			  "memory map covers the guest's RAM:\n%s", ember_run_describe(&r));
		cr_assert(eq(int, r.exit_code, 0));
		ember_run_free(&r);
	}
	unlink(initrd);
	free(initrd);
}

Test(unikernel, lapic_timer_and_ioapic_interrupts)
{
	require_kvm();
	for (unsigned i = 0; i < 2; i++) {
		struct ember_run r;
		run_checks(&r, protocols[i], "check=timer", NULL, NULL, NULL);
		assert_pass(&r, "timer");
		cr_assert(eq(int, r.exit_code, 0));
		ember_run_free(&r);
	}
}

Test(unikernel, smp_brings_up_every_vcpu_with_its_own_apic_id)
{
	require_kvm();
	for (unsigned i = 0; i < 2; i++) {
		struct ember_run r;
		run_checks(&r, protocols[i], "check=smp cpus=2", "2", NULL, NULL);
		assert_pass(&r, "smp");
		cr_assert(ne(ptr, strstr(r.out, "apic_ids=0,1"), NULL), "%s",
			  ember_run_describe(&r));
		cr_assert(eq(int, r.exit_code, 0));
		ember_run_free(&r);
	}
	/* The count comes from the MP table when the command line does not say. */
	struct ember_run r;
	run_checks(&r, "linux", "check=smp", "3", NULL, NULL);
	assert_pass(&r, "smp");
	cr_assert(ne(ptr, strstr(r.out, "cpus=3"), NULL), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}

Test(unikernel, one_gib_guest_costs_the_host_only_what_it_touched)
{
	require_kvm();
	struct ember_run small, big;
	run_checks(&small, "pvh", "check=mem mem_mib=16", NULL, "1024", NULL);
	assert_pass(&small, "mem");
	run_checks(&big, "pvh", "check=mem mem_mib=256", NULL, "1024", NULL);
	assert_pass(&big, "mem");
	/* Touched pages show up in the monitor's RSS (they are mapped in its address space), so
	 * the 256 MiB run proves the measurement sees guest memory at all. */
	cr_assert(lt(long, small.maxrss_kib, 96 * 1024), "16 MiB touched, RSS %ld KiB",
		  small.maxrss_kib);
	cr_assert(gt(long, big.maxrss_kib, 256 * 1024), "256 MiB touched, RSS %ld KiB",
		  big.maxrss_kib);
	ember_run_free(&small);
	ember_run_free(&big);
}

Test(unikernel, ctrl_c_stops_a_running_guest_cleanly)
{
	require_kvm();
	const char *args[] = {"run",	   "--kernel",	    unikernel_path(),
			      "--cmdline", "check=counter", NULL};
	struct ember_trigger t = {"counter: 3", SIGINT};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, &t);
	cr_assert(not(r.timed_out), "%s", ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 130), "%s", ember_run_describe(&r));
	cr_assert(eq(ptr, strstr(r.err, "error"), NULL), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}

Test(unikernel, guest_failures_have_their_own_exit_codes)
{
	require_kvm();
	struct {
		const char *check;
		int code;
		const char *log;
	} cases[] = {
	    {"panic", 3, "guest panic"},
	    {"triplefault", 4, "triple fault"},
	    {"emufail", 5, "emulation failed"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char cmdline[64];
		snprintf(cmdline, sizeof(cmdline), "check=%s", cases[i].check);
		struct ember_run r;
		run_checks(&r, "linux", cmdline, NULL, NULL, NULL);
		cr_assert(eq(int, r.exit_code, cases[i].code), "%s:\n%s", cases[i].check,
			  ember_run_describe(&r));
		cr_assert(ne(ptr, strstr(r.err, cases[i].log), NULL), "%s:\n%s", cases[i].check,
			  ember_run_describe(&r));
		ember_run_free(&r);
	}
}

Test(unikernel, emulation_failure_report_shows_instruction_bytes)
{
	require_kvm();
	struct ember_run r;
	run_checks(&r, "pvh", "check=emufail", NULL, NULL, NULL);
	cr_assert(eq(int, r.exit_code, 5), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "rip=0x"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "suberror"), NULL), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}

Test(unikernel, boot_timer_is_reported)
{
	require_kvm();
	const char *args[] = {"run", "--kernel", unikernel_path(), "--boot-timer", NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "ember: boot time: guest init "), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(ptr, strstr(r.out, "boot time"), NULL), "monitor messages stay off stdout");
	ember_run_free(&r);
}

Test(unikernel, console_input_reaches_the_guest)
{
	require_kvm();
	const char *args[] = {"run", "--kernel", unikernel_path(), "--cmdline", "check=echo", NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, "ping-from-host\n", NULL);
	assert_pass(&r, "echo");
	cr_assert(ne(ptr, strstr(r.out, "ping-from-host"), NULL), "%s", ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0));
	ember_run_free(&r);
}
