/* Bad input on the command line: each a clear message and a non-zero exit, on any host (images
 * are checked before KVM is opened). */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void expect_failure(const char *const *args, int code, const char *message)
{
	struct ember_run r;
	ember_exec(&r, args, 20, NULL, NULL);
	cr_assert(eq(int, r.exit_code, code), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, message), NULL), "want '%s':\n%s", message,
		  ember_run_describe(&r));
	cr_assert(eq(str, r.out, ""), "nothing on the console:\n%s", ember_run_describe(&r));
	ember_run_free(&r);
}

/* A copy of the unikernel cut to `len` bytes (0: whole), with `patch` bytes at `at`. */
static char *unikernel_copy(size_t len, size_t at, const void *patch, size_t patch_len)
{
	FILE *f = fopen(unikernel_path(), "rb");
	cr_assert(f != NULL, "unikernel at %s", unikernel_path());
	static char data[8 << 20];
	size_t n = fread(data, 1, sizeof(data), f);
	fclose(f);
	if (len && len < n)
		n = len;
	if (patch)
		memcpy(data + at, patch, patch_len);
	char *path = strdup("/tmp/ember-img-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(write(fd, data, n) == (ssize_t)n);
	close(fd);
	return path;
}

Test(cli, help_documents_every_flag)
{
	const char *args[] = {"run", "--help", NULL};
	struct ember_run r;
	ember_exec(&r, args, 10, NULL, NULL);
	cr_assert(eq(int, r.exit_code, 0));
	const char *flags[] = {"--kernel",   "--initrd",     "--cmdline",	"--vcpus",
			       "--mem-mib",  "--boot-timer", "--boot-protocol", "--log-level",
			       "--log-file", "Exit codes"};
	for (unsigned i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		cr_assert(ne(ptr, strstr(r.out, flags[i]), NULL), "%s missing", flags[i]);
	ember_run_free(&r);
}

Test(cli, usage_errors_exit_2)
{
	const char *k = unikernel_path();
	const char *a1[] = {"run", NULL};
	expect_failure(a1, 2, "--kernel is required");
	const char *a2[] = {"run", "--kernel", k, "--vcpus", "0", NULL};
	expect_failure(a2, 2, "--vcpus: 0 is out of range");
	const char *a3[] = {"run", "--kernel", k, "--vcpus", "33", NULL};
	expect_failure(a3, 2, "--vcpus: 33 is out of range");
	const char *a4[] = {"run", "--kernel", k, "--mem-mib", "12abc", NULL};
	expect_failure(a4, 2, "--mem-mib: '12abc' is not a number");
	const char *a5[] = {"run", "--kernel", k, "--mem-mib", "1048577", NULL};
	expect_failure(a5, 2, "--mem-mib: 1048577 is out of range");
	const char *a6[] = {"run", "--kernel", k, "--frobnicate", NULL};
	expect_failure(a6, 2, "unknown option");
	const char *a7[] = {"run", "--kernel", k, "--boot-protocol", "efi", NULL};
	expect_failure(a7, 2, "--boot-protocol");
	const char *a8[] = {"explode", NULL};
	expect_failure(a8, 2, "unknown command 'explode'");
	const char *a9[] = {"run", "--kernel", k, "stray", NULL};
	expect_failure(a9, 2, "unexpected argument 'stray'");
}

Test(cli, missing_and_unknown_images_are_named)
{
	const char *a1[] = {"run", "--kernel", "/nonexistent/kernel", NULL};
	expect_failure(a1, 1, "cannot open /nonexistent/kernel");
	const char *a2[] = {"run", "--kernel", "/etc/hostname", NULL};
	expect_failure(a2, 1, "unknown kernel format");
	const char *a3[] = {"run", "--kernel", "/tmp", NULL};
	expect_failure(a3, 1, "not a regular file");
	const char *a4[] = {"run",	"--kernel",	   unikernel_path(),
			    "--initrd", "/nonexistent/rd", NULL};
	expect_failure(a4, 1, "initrd: cannot open /nonexistent/rd");
}

Test(cli, truncated_and_corrupted_unikernel_are_refused)
{
	char *cut = unikernel_copy(200, 0, NULL, 0);
	const char *a1[] = {"run", "--kernel", cut, NULL};
	expect_failure(a1, 1, "truncated");
	unlink(cut);
	free(cut);

	uint16_t bad_machine = 40; /* EM_ARM */
	char *arm = unikernel_copy(0, 18, &bad_machine, 2);
	const char *a2[] = {"run", "--kernel", arm, NULL};
	expect_failure(a2, 1, "not x86_64");
	unlink(arm);
	free(arm);

	uint64_t far_phoff = 1ull << 40;
	char *phoff = unikernel_copy(0, 32, &far_phoff, 8);
	const char *a3[] = {"run", "--kernel", phoff, NULL};
	expect_failure(a3, 1, "program headers");
	unlink(phoff);
	free(phoff);
}

Test(cli, initrd_too_big_and_command_line_too_long)
{
	char *big = temp_file_with(5 << 20, 3);
	const char *a1[] = {"run", "--kernel", unikernel_path(), "--mem-mib", "4", "--initrd",
			    big,   NULL};
	expect_failure(a1, 1, "does not fit");
	unlink(big);
	free(big);

	static char longline[3000];
	memset(longline, 'x', sizeof(longline) - 1);
	const char *a2[] = {"run", "--kernel", unikernel_path(), "--cmdline", longline, NULL};
	expect_failure(a2, 1, "kernel command line is");
}

Test(cli, no_kvm_is_a_clear_error)
{
	if (access("/dev/kvm", F_OK) == 0)
		cr_skip_test("/dev/kvm exists here; this case is for hosts without it");
	const char *a[] = {"run", "--kernel", unikernel_path(), NULL};
	expect_failure(a, 1, "/dev/kvm does not exist");
}

Test(cli, bad_device_configuration_is_refused_before_boot)
{
	const char *k = unikernel_path();
	const char *a1[] = {"run", "--kernel", k, "--drive", "path=/nonexistent/disk.img", NULL};
	expect_failure(a1, 1, "drive /nonexistent/disk.img: No such file or directory");
	char *img = temp_file_with(1 << 16, 5);
	char d1[128], d2[128];
	snprintf(d1, sizeof(d1), "path=%s,id=same", img);
	snprintf(d2, sizeof(d2), "path=%s,id=same,ro", img);
	const char *a2[] = {"run", "--kernel", k, "--drive", d1, "--drive", d2, NULL};
	expect_failure(a2, 2, "same id");
	/* A socket path that already exists is not taken over. */
	char sock[128];
	snprintf(sock, sizeof(sock), "cid=3,uds=%s", img);
	const char *a3[] = {"run", "--kernel", k, "--vsock", sock, NULL};
	expect_failure(a3, 1, "socket path exists");
	cr_assert(eq(int, access(img, F_OK), 0), "the existing file is left alone");
	/* More devices than IRQs and windows. */
	const char *a4[64] = {"run", "--kernel", k};
	static char specs[20][128];
	int n = 3;
	for (int i = 0; i < 20; i++) {
		snprintf(specs[i], sizeof(specs[i]), "path=%s,id=d%d,ro", img, i);
		a4[n++] = "--drive";
		a4[n++] = specs[i];
	}
	a4[n] = NULL;
	expect_failure(a4, 2, "too many devices");
	const char *a5[] = {"run", "--kernel", k, "--net", "mac=aa:fc:00:00:00:01", NULL};
	expect_failure(a5, 2, "--net");
	unlink(img);
	free(img);
}
