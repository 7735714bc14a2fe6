/* The monitor's seccomp filters (monitor/seccomp.c) on a real monitor: each thread kind's filter
 * kills the process with SIGSYS when that thread makes a forbidden call (the test-only hook,
 * -Dseccomp_test_hook=true, makes it), --seccomp log lets the call through and the kernel logs
 * it, and with the filters on the unikernel drives its devices to PASS. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define TIMEOUT_S  300.0
#define VSOCK_PORT 1234

/* The hook exists only in builds configured with -Dseccomp_test_hook=true; meson says which. */
static void require_test_hook(void)
{
	const char *hook = getenv("EMBER_SECCOMP_TEST_HOOK");
	if (!hook || strcmp(hook, "1") != 0)
		cr_skip_test("this build has no seccomp test hook (-Dseccomp_test_hook=true)");
}

static void run_with_forbidden_call(struct ember_run *r, const char *kind, const char *const *args)
{
	setenv("EMBER_SECCOMP_TEST_FORBIDDEN", kind, 1);
	ember_exec(r, args, TIMEOUT_S, NULL, NULL);
	unsetenv("EMBER_SECCOMP_TEST_FORBIDDEN");
}

static void expect_killed_by_sigsys(const char *kind, const char *const *args)
{
	require_test_hook();
	struct ember_run r;
	run_with_forbidden_call(&r, kind, args);
	cr_assert(eq(int, r.term_signal, SIGSYS), "%s thread: %s", kind, ember_run_describe(&r));
	cr_expect(eq(ptr, strstr(r.err, "seccomp test hook"), NULL),
		  "the forbidden call returned: %s", r.err);
	ember_run_free(&r);
}

Test(seccomp_it, a_forbidden_call_on_the_vcpu_thread_kills_the_monitor)
{
	require_kvm();
	expect_killed_by_sigsys("vcpu", (const char *const[]){"run", "--seccomp", "on", "--kernel",
							      unikernel_path(), "--cmdline",
							      "check=hello", NULL});
}

Test(seccomp_it, a_forbidden_call_on_the_vmm_thread_kills_the_monitor)
{
	require_kvm();
	expect_killed_by_sigsys("vmm", (const char *const[]){"run", "--seccomp", "on", "--kernel",
							     unikernel_path(), "--cmdline",
							     "check=hello", NULL});
}

/* The API thread starts (and installs its filter) before any VM exists: no KVM needed. */
Test(seccomp_it, a_forbidden_call_on_the_api_thread_kills_the_monitor)
{
	char sock[64];
	snprintf(sock, sizeof(sock), "/dev/shm/ember-seccomp-api-%d.sock", getpid());
	unlink(sock);
	expect_killed_by_sigsys("api",
				(const char *const[]){"--api-sock", sock, "--seccomp", "on", NULL});
	unlink(sock);
}

/* The kernel's log from now on: audit records of seccomp's log action (type=1326) land there
 * when no audit daemon runs. NULL without the rights to read it. */
static int kmsg_open_at_end(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether a record since kmsg_open_at_end says `comm` made syscall `nr` under a log action. */
static bool kmsg_has_seccomp_log(int fd, const char *comm, int nr)
{
	char want_comm[64], want_nr[32], rec[8192];
	snprintf(want_comm, sizeof(want_comm), "comm=\"%s\"", comm);
	snprintf(want_nr, sizeof(want_nr), " syscall=%d ", nr);
	bool found = false;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* records were overwritten before we read them */
		if (n <= 0)
			break;
		rec[n] = 0;
		if (strstr(rec, "type=1326") && strstr(rec, want_comm) && strstr(rec, want_nr))
			found = true;
	}
	return found;
}

Test(seccomp_it, log_mode_lets_the_forbidden_call_through_and_the_kernel_logs_it)
{
	require_kvm();
	require_test_hook();
	int kmsg = kmsg_open_at_end();
	struct ember_run r;
	run_with_forbidden_call(&r, "vcpu",
				(const char *const[]){"run", "--kernel", unikernel_path(),
						      "--seccomp", "log", "--cmdline",
						      "check=hello", NULL});
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "CHECK hello PASS"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "seccomp test hook: vcpu thread made a forbidden socket()"),
		     NULL),
		  "%s", ember_run_describe(&r));
	if (kmsg < 0) {
		ember_run_free(&r);
		cr_skip_test("cannot read /dev/kmsg (%s): the call went through, its log entry is "
			     "not checked",
			     strerror(errno));
	}
	bool logged = kmsg_has_seccomp_log(kmsg, "ember-vcpu0", __NR_socket);
	close(kmsg);
	cr_assert(logged, "no seccomp audit record for ember-vcpu0's socket() in the kernel log");
	ember_run_free(&r);
}

Test(seccomp_it, an_unknown_mode_is_a_usage_error)
{
	struct ember_run r;
	ember_exec(
	    &r,
	    (const char *const[]){"run", "--kernel", "/nonexistent", "--seccomp", "strict", NULL},
	    30, NULL, NULL);
	cr_assert(eq(int, r.exit_code, 2), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "--seccomp: expected on, log or off"), NULL), "%s",
		  ember_run_describe(&r));
	ember_run_free(&r);
}

/* The guest's vsock connection to the host, answered by echoing everything back. */
struct echo_listener {
	char path[108];
	int lfd;
	bool ok;
};

static void *echo_side(void *arg)
{
	struct echo_listener *l = arg;
	int fd = accept(l->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w <= 0)
				goto out;
			off += w;
		}
	l->ok = true;
out:
	close(fd);
	return NULL;
}

/* The filters' tables are complete for the device paths: the block and vsock checks run to PASS
 * with every filter on (the default), in one guest. (Net runs under the filters in the
 * virtio_net suite, which needs a tap in a namespace of its own.) */
Test(seccomp_it, with_filters_on_the_unikernel_drives_block_and_vsock_to_pass)
{
	require_kvm();
	char *img = temp_file_with(1 << 20, 3);
	char base[80];
	snprintf(base, sizeof(base), "/dev/shm/ember-seccomp-vsock-%d.sock", getpid());
	unlink(base);
	struct echo_listener l = {0};
	snprintf(l.path, sizeof(l.path), "%s_%d", base, VSOCK_PORT);
	unlink(l.path);
	l.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", l.path);
	cr_assert(eq(int, bind(l.lfd, (struct sockaddr *)&a, sizeof(a)), 0));
	cr_assert(eq(int, listen(l.lfd, 4), 0));
	pthread_t th;
	pthread_create(&th, NULL, echo_side, &l);
	char drive[256], vsock[160], cmdline[160];
	snprintf(drive, sizeof(drive), "path=%s", img);
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s", base);
	snprintf(cmdline, sizeof(cmdline),
		 "check=blk,vsock_client blk_seed=7 vsock_port=%d vsock_bytes=1048576 "
		 "vsock_secs=240",
		 VSOCK_PORT);
	const char *args[] = {"run",	   "--seccomp", "on",	   "--kernel", unikernel_path(),
			      "--mem-mib", "256",	"--drive", drive,      "--vsock",
			      vsock,	   "--cmdline", cmdline,   NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	shutdown(l.lfd, SHUT_RDWR);
	close(l.lfd);
	pthread_join(th, NULL);
	unlink(l.path);
	unlink(img);
	free(img);
	cr_assert(ne(ptr, strstr(r.out, "CHECK blk PASS"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "CHECK vsock_client PASS bytes=1048576"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(l.ok, "the host side saw no complete echo session");
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}
