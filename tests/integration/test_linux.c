/* The Linux guest (slow: at most two boots). The bzImage through the Linux 64-bit entry runs
 * its initramfs init where the host can run Linux user space; the vmlinux through its ELF entry
 * reaches `Run /init`. Both with 2 vCPUs brought up. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LINUX_TIMEOUT_S 900.0

/* kvm_pvm hosts emulate guest CPL0 and cannot run Linux user space (ARCHITECTURE.md). */
static bool host_is_kvm_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0 && access("/dev/kvm", F_OK) == 0;
}

static const char *base_cmdline(void)
{
	if (host_is_kvm_pvm())
		return "noxsave clearcpuid=cx16,popcnt,smap ember.skip_int3_selftest";
	return "";
}

static void boot_linux(struct ember_run *r, const char *kernel, const char *protocol,
		       bool stop_at_init)
{
	const char *initrd = linux_image("initramfs.cpio.gz");
	cr_assert(initrd != NULL, "initramfs.cpio.gz missing from EMBER_LINUX_DIR");
	const char *args[] = {"run",	 "--kernel",  kernel,	      "--initrd", initrd,
			      "--vcpus", "2",	      "--mem-mib",    "256",	  "--boot-protocol",
			      protocol,	 "--cmdline", base_cmdline(), NULL};
	struct ember_trigger t = {"Run /init", SIGTERM};
	ember_exec(r, args, LINUX_TIMEOUT_S, NULL, stop_at_init ? &t : NULL);
}

static void assert_booted_to_init(const struct ember_run *r)
{
	cr_assert(not(r->timed_out), "%s", ember_run_describe(r));
	cr_assert(ne(ptr, strstr(r->out, "Brought up 1 node, 2 CPUs"), NULL), "SMP:\n%s",
		  ember_run_describe(r));
	cr_assert(ne(ptr, strstr(r->out, "Run /init"), NULL), "%s", ember_run_describe(r));
}

Test(linux_guest, bzimage_runs_init_through_the_64bit_entry, .timeout = LINUX_TIMEOUT_S + 60)
{
	require_kvm();
	const char *bz = linux_image("bzImage");
	if (!bz)
		cr_skip_test("Linux guest not built (guest/linux/build.sh; EMBER_LINUX_DIR)");
	struct ember_run r;
	bool pvm = host_is_kvm_pvm();
	boot_linux(&r, bz, "linux", pvm);
	assert_booted_to_init(&r);
	if (pvm) {
		fprintf(stderr, "SKIPPED (part): kvm_pvm host: Linux user space cannot run here, "
				"so the initramfs marker and exit code 0 are not checked\n");
		cr_assert(eq(int, r.exit_code, 128 + SIGTERM), "%s", ember_run_describe(&r));
	} else {
		cr_assert(ne(ptr, strstr(r.out, "ember-linux-init: hello"), NULL), "%s",
			  ember_run_describe(&r));
		cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	}
	ember_run_free(&r);
}

Test(linux_guest, vmlinux_reaches_init_through_the_elf_entry, .timeout = LINUX_TIMEOUT_S + 60)
{
	require_kvm();
	const char *vmlinux = linux_image("vmlinux");
	if (!vmlinux)
		cr_skip_test("Linux guest not built (guest/linux/build.sh; EMBER_LINUX_DIR)");
	struct ember_run r;
	boot_linux(&r, vmlinux, "linux", true);
	assert_booted_to_init(&r);
	cr_assert(eq(int, r.exit_code, 128 + SIGTERM), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}
