/* The control API end to end: a real `ember --api-sock` process, driven through api/client.h.
 * Configuration and bad-input tests need no KVM (the monitor opens /dev/kvm only at start);
 * the lifecycle tests boot the test unikernel. */
#include "api/client.h"
#include "api/frame.h"
#include "common/err.h"
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define T Ember__V1__Status

static char sock_path[108];

static void start_monitor(struct ember_proc *p, const char *const *extra)
{
	snprintf(sock_path, sizeof(sock_path), "/tmp/ember-it-api-%d.sock", (int)getpid());
	unlink(sock_path);
	const char *args[32] = {"--api-sock", sock_path, "--log-level", "info"};
	size_t n = 4;
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	ember_spawn(p, args);
	cr_assert(wait_for_socket(sock_path, 30), "no API socket; stderr: %s", p->err);
}

static Ember__V1__Response *call_fds(Ember__V1__Request *req, const int *fds, unsigned nfds)
{
	Ember__V1__Response *resp = NULL;
	int r = api_client_request(sock_path, 30000, req, fds, nfds, &resp);
	cr_assert(r == 0, "API call failed: %s", err_msg());
	return resp;
}

static Ember__V1__Response *call(Ember__V1__Request *req)
{
	return call_fds(req, NULL, 0);
}

/* Send `req`, expect `status` and a message containing `needle`. */
static void expect_fds(Ember__V1__Request *req, const int *fds, unsigned nfds, T status,
		       const char *needle)
{
	Ember__V1__Response *resp = call_fds(req, fds, nfds);
	cr_expect(resp->status == status, "op %d: status %s (%s), expected %s", (int)req->op_case,
		  api_status_name(resp->status), resp->message, api_status_name(status));
	if (needle)
		cr_expect(strstr(resp->message, needle), "op %d: message '%s' lacks '%s'",
			  (int)req->op_case, resp->message, needle);
	ember__v1__response__free_unpacked(resp, NULL);
}

static void expect(Ember__V1__Request *req, T status, const char *needle)
{
	expect_fds(req, NULL, 0, status, needle);
}

static Ember__V1__Request simple(Ember__V1__Request__OpCase op)
{
	static Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = op;
	/* Every Empty-typed operation shares the oneof's storage. */
	req.start = &empty;
	return req;
}

static void expect_simple(Ember__V1__Request__OpCase op, T status, const char *needle)
{
	Ember__V1__Request req = simple(op);
	expect(&req, status, needle);
}

static Ember__V1__VmState describe_state(void)
{
	Ember__V1__Request req = simple(EMBER__V1__REQUEST__OP_DESCRIBE);
	Ember__V1__Response *resp = call(&req);
	cr_assert(resp->status == EMBER__V1__STATUS__OK && resp->info, "describe: %s",
		  resp->message);
	Ember__V1__VmState s = resp->info->state;
	ember__v1__response__free_unpacked(resp, NULL);
	return s;
}

static void machine_config(uint32_t vcpus, uint64_t mem_mib, T status, const char *needle)
{
	Ember__V1__MachineConfig mc = EMBER__V1__MACHINE_CONFIG__INIT;
	mc.vcpus = vcpus;
	mc.mem_mib = mem_mib;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_MACHINE_CONFIG;
	req.machine_config = &mc;
	expect(&req, status, needle);
}

/* A frame sent by hand; returns the connected socket for the caller to read from. */
static int raw_frame(const void *msg, uint32_t len_in_header, size_t len_sent)
{
	int fd = api_client_connect(sock_path, 10000);
	cr_assert(fd >= 0);
	uint32_t be = htonl(len_in_header);
	cr_assert(write(fd, &be, 4) == 4);
	if (len_sent)
		cr_assert(write(fd, msg, len_sent) == (ssize_t)len_sent);
	return fd;
}

static Ember__V1__Response *read_reply(int fd)
{
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	int r = api_frame_recv(fd, &msg, &len, fds, &nfds);
	cr_assert(r == 1, "no reply frame (%d)", r);
	Ember__V1__Response *resp = ember__v1__response__unpack(NULL, len, msg);
	free(msg);
	cr_assert(resp, "reply does not decode");
	return resp;
}

static void expect_raw(const void *msg, size_t len, T status, const char *needle)
{
	int fd = raw_frame(msg, (uint32_t)len, len);
	Ember__V1__Response *resp = read_reply(fd);
	cr_expect(resp->status == status, "raw frame: %s (%s)", api_status_name(resp->status),
		  resp->message);
	cr_expect(strstr(resp->message, needle), "raw frame: '%s' lacks '%s'", resp->message,
		  needle);
	ember__v1__response__free_unpacked(resp, NULL);
	close(fd);
}

static void stop_and_expect_exit(struct ember_proc *p, int code)
{
	expect_simple(EMBER__V1__REQUEST__OP_STOP, EMBER__V1__STATUS__OK, NULL);
	int got = ember_proc_wait_exit(p, 60);
	cr_expect(got == code, "monitor exit %d (signal %d), expected %d; stderr:\n%s", got,
		  p->term_signal, code, p->err);
	cr_expect(!strstr(p->err, "ERROR: AddressSanitizer") && !strstr(p->err, "runtime error"),
		  "sanitizer report:\n%s", p->err);
	cr_expect(access(sock_path, F_OK) != 0, "the API socket file is left behind");
}

Test(api, bad_requests_get_precise_errors, .timeout = 120)
{
	struct ember_proc p;
	start_monitor(&p, NULL);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_NOT_STARTED);

	machine_config(0, 128, EMBER__V1__STATUS__INVALID_ARGUMENT, "vcpus");
	machine_config(33, 128, EMBER__V1__STATUS__INVALID_ARGUMENT, "vcpus");
	machine_config(1, 0, EMBER__V1__STATUS__INVALID_ARGUMENT, "mem_mib");
	machine_config(1, 1024 * 1024, EMBER__V1__STATUS__INVALID_ARGUMENT, "mem_mib");
	machine_config(2, 64, EMBER__V1__STATUS__OK, NULL);

	Ember__V1__BootSource bs = EMBER__V1__BOOT_SOURCE__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_BOOT_SOURCE;
	req.boot_source = &bs;
	expect(&req, EMBER__V1__STATUS__INVALID_ARGUMENT, "kernel is required");
	Ember__V1__FileSource fs = EMBER__V1__FILE_SOURCE__INIT;
	fs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	fs.path = "/nonexistent/vmlinux";
	bs.kernel = &fs;
	expect(&req, EMBER__V1__STATUS__NOT_FOUND, "/nonexistent/vmlinux");
	fs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
	fs.passed_fd = 2;
	int one_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	expect_fds(&req, &one_fd, 1, EMBER__V1__STATUS__INVALID_ARGUMENT, "passed_fd 2");
	bs.protocol = 7;
	expect(&req, EMBER__V1__STATUS__INVALID_ARGUMENT, "protocol");
	bs.protocol = 0;

	/* Start before any boot source; pause and resume before start. */
	expect_simple(EMBER__V1__REQUEST__OP_START, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "boot source");
	expect_simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "after start");
	expect_simple(EMBER__V1__REQUEST__OP_RESUME, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "after start");

	/* Drives: a good one, the same id again, a bad id, a missing file, a read-only fd
	 * for a writable drive. */
	char *img = temp_file_with(1 << 20, 3);
	Ember__V1__FileSource dfs = EMBER__V1__FILE_SOURCE__INIT;
	dfs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	dfs.path = img;
	Ember__V1__Drive d = EMBER__V1__DRIVE__INIT;
	d.id = "root";
	d.file = &dfs;
	Ember__V1__Request dreq = EMBER__V1__REQUEST__INIT;
	dreq.op_case = EMBER__V1__REQUEST__OP_DRIVE_ADD;
	dreq.drive_add = &d;
	expect(&dreq, EMBER__V1__STATUS__OK, NULL);
	expect(&dreq, EMBER__V1__STATUS__ALREADY_EXISTS, "root");
	d.id = "no spaces";
	expect(&dreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "drive_add.id");
	d.id = "";
	expect(&dreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "drive_add.id");
	d.id = "data";
	dfs.path = "/nonexistent/disk.img";
	expect(&dreq, EMBER__V1__STATUS__NOT_FOUND, "/nonexistent/disk.img");
	d.file = NULL;
	expect(&dreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "drive_add.file is required");
	int ro = open(img, O_RDONLY | O_CLOEXEC);
	Ember__V1__FileSource pfs = EMBER__V1__FILE_SOURCE__INIT;
	pfs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
	pfs.passed_fd = 0;
	d.file = &pfs;
	expect_fds(&dreq, &ro, 1, EMBER__V1__STATUS__INVALID_ARGUMENT, "read-only");
	d.read_only = true;
	expect_fds(&dreq, &ro, 1, EMBER__V1__STATUS__OK, NULL);
	close(ro);

	/* Drive update before start: an unknown drive. */
	Ember__V1__DriveUpdate du = EMBER__V1__DRIVE_UPDATE__INIT;
	du.id = "nosuch";
	du.file = &dfs;
	Ember__V1__Request ureq = EMBER__V1__REQUEST__INIT;
	ureq.op_case = EMBER__V1__REQUEST__OP_DRIVE_UPDATE;
	ureq.drive_update = &du;
	expect(&ureq, EMBER__V1__STATUS__NOT_FOUND, "nosuch");

	/* vsock and net. */
	Ember__V1__Vsock vs = EMBER__V1__VSOCK__INIT;
	Ember__V1__Request vreq = EMBER__V1__REQUEST__INIT;
	vreq.op_case = EMBER__V1__REQUEST__OP_VSOCK_SET;
	vreq.vsock_set = &vs;
	vs.guest_cid = 2;
	vs.uds_path = "v.sock";
	expect(&vreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "guest_cid");
	vs.guest_cid = 3;
	vs.uds_path = "";
	expect(&vreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "uds_path");
	Ember__V1__NetInterface ni = EMBER__V1__NET_INTERFACE__INIT;
	ni.id = "eth0";
	Ember__V1__Request nreq = EMBER__V1__REQUEST__INIT;
	nreq.op_case = EMBER__V1__REQUEST__OP_NET_ADD;
	nreq.net_add = &ni;
	expect(&nreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "tap");
	ni.tap_case = EMBER__V1__NET_INTERFACE__TAP_TAP_NAME;
	ni.tap_name = "tap0";
	ni.mac = "01:02:03:04:05:06";
	expect(&nreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "multicast");

	Ember__V1__Logger lg = EMBER__V1__LOGGER__INIT;
	lg.level = "loud";
	Ember__V1__Request lreq = EMBER__V1__REQUEST__INIT;
	lreq.op_case = EMBER__V1__REQUEST__OP_LOGGER;
	lreq.logger = &lg;
	expect(&lreq, EMBER__V1__STATUS__INVALID_ARGUMENT, "loud");

	expect_simple(EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE,
		      EMBER__V1__STATUS__FAILED_PRECONDITION, "snapshot");

	/* Frames: garbage, an unknown operation (field 99), a request with no operation. */
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
	expect_raw(garbage, sizeof(garbage), EMBER__V1__STATUS__INVALID_ARGUMENT, "malformed");
	static const uint8_t unknown_op[] = {0x9a, 0x06, 0x00}; /* field 99, length 0 */
	expect_raw(unknown_op, sizeof(unknown_op), EMBER__V1__STATUS__INVALID_ARGUMENT,
		   "no operation");
	expect_raw("", 0, EMBER__V1__STATUS__INVALID_ARGUMENT, "no operation");

	/* Oversize: refused from the header alone, then the connection closes. */
	int fd = raw_frame(NULL, API_FRAME_MAX + 1, 0);
	Ember__V1__Response *resp = read_reply(fd);
	cr_expect(resp->status == EMBER__V1__STATUS__INVALID_ARGUMENT &&
		      strstr(resp->message, "limit"),
		  "oversize: %s", resp->message);
	ember__v1__response__free_unpacked(resp, NULL);
	char c;
	cr_expect(read(fd, &c, 1) == 0, "connection not closed after an oversize frame");
	close(fd);

	/* Truncated: half a frame, then the client goes away. */
	static const uint8_t partial[8] = {0x52, 0x00};
	fd = raw_frame(partial, 100, sizeof(partial));
	close(fd);

	/* Through all of that the monitor kept its configuration. */
	Ember__V1__Request dsc = simple(EMBER__V1__REQUEST__OP_DESCRIBE);
	resp = call(&dsc);
	cr_assert(resp->status == EMBER__V1__STATUS__OK);
	cr_expect(resp->info->machine_config->vcpus == 2 &&
		  resp->info->machine_config->mem_mib == 64);
	cr_expect(resp->info->n_drives == 2, "%zu drives", resp->info->n_drives);
	ember__v1__response__free_unpacked(resp, NULL);

	stop_and_expect_exit(&p, 0);
	cr_expect(strstr(p.err, "refused"), "refusals are logged at info level");
	ember_proc_free(&p);
	unlink(img);
	free(img);
	close(one_fd);
}

struct hammer {
	unsigned calls, ok;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	int fd = api_client_connect(sock_path, 30000);
	if (fd < 0)
		return NULL;
	for (unsigned i = 0; i < h->calls; i++) {
		Ember__V1__Request req = simple(EMBER__V1__REQUEST__OP_DESCRIBE);
		Ember__V1__Response *resp = NULL;
		if (api_client_call(fd, &req, NULL, 0, &resp) == 0) {
			h->ok += resp->status == EMBER__V1__STATUS__OK && resp->info;
			ember__v1__response__free_unpacked(resp, NULL);
		}
	}
	close(fd);
	return NULL;
}

Test(api, several_clients_and_a_stalled_one, .timeout = 120)
{
	struct ember_proc p;
	start_monitor(&p, NULL);
	/* A client that sends half a header and then nothing must hold up no one. */
	int stalled = api_client_connect(sock_path, 10000);
	cr_assert(stalled >= 0);
	cr_assert(write(stalled, "\0\0", 2) == 2);
	pthread_t t[8];
	struct hammer h[8];
	for (int i = 0; i < 8; i++) {
		h[i] = (struct hammer){.calls = 100};
		pthread_create(&t[i], NULL, hammer_thread, &h[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_expect(h[i].ok == 100, "client %d: %u of 100 describes answered", i, h[i].ok);
	}
	/* Clients that go away right after sending a request, before the reply. */
	Ember__V1__Request req = simple(EMBER__V1__REQUEST__OP_METRICS);
	uint8_t buf[64];
	size_t len = ember__v1__request__pack(&req, buf);
	for (int i = 0; i < 20; i++) {
		int fd = api_client_connect(sock_path, 10000);
		cr_assert(fd >= 0 && api_frame_send(fd, buf, len, NULL, 0) == 0);
		close(fd);
	}
	Ember__V1__Response *resp = call(&req);
	cr_expect(resp->status == EMBER__V1__STATUS__OK && resp->metrics);
	cr_expect(resp->metrics->api_requests >= 821, "api_requests %llu",
		  (unsigned long long)resp->metrics->api_requests);
	cr_expect(resp->metrics->monitor_rss_bytes > 0);
	ember__v1__response__free_unpacked(resp, NULL);
	close(stalled);
	stop_and_expect_exit(&p, 0);
	ember_proc_free(&p);
}

Test(api, stale_socket_replaced_live_one_refused, .timeout = 60)
{
	/* A socket file nobody listens on (a monitor that was killed) is replaced. */
	snprintf(sock_path, sizeof(sock_path), "/tmp/ember-it-api-%d.sock", (int)getpid());
	unlink(sock_path);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	cr_assert(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	close(s);
	struct ember_proc p;
	start_monitor(&p, NULL);
	/* A second monitor on the same path gives up with a clear error. */
	struct ember_run r;
	ember_exec(&r, (const char *const[]){"--api-sock", sock_path, NULL}, 30, NULL, NULL);
	cr_expect(r.exit_code == 1 && strstr(r.err, "another process is listening"), "%s",
		  ember_run_describe(&r));
	ember_run_free(&r);
	/* And a path that is a regular file is never removed. */
	ember_exec(&r, (const char *const[]){"--api-sock", "/etc/hostname", NULL}, 30, NULL, NULL);
	cr_expect(r.exit_code == 1 && strstr(r.err, "not a socket"), "%s", ember_run_describe(&r));
	ember_run_free(&r);
	stop_and_expect_exit(&p, 0);
	ember_proc_free(&p);
}

Test(api, sigterm_ends_an_unconfigured_monitor, .timeout = 60)
{
	struct ember_proc p;
	start_monitor(&p, NULL);
	kill(p.pid, SIGTERM);
	cr_expect(ember_proc_wait_exit(&p, 30) == 128 + SIGTERM, "exit %d", p.exit_code);
	cr_expect(access(sock_path, F_OK) != 0, "the API socket file is left behind");
	ember_proc_free(&p);
}

/* ---- with KVM: the test unikernel through the API ---- */

static int uds_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return false;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return true;
}

static int vsock_dial(const char *path, unsigned port)
{
	for (int tries = 0; tries < 3000; tries++) {
		int fd = uds_connect(path);
		if (fd >= 0) {
			char line[64];
			int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
			if (write(fd, line, (size_t)n) == n && read_line(fd, line, sizeof(line)) &&
			    strncmp(line, "OK ", 3) == 0)
				return fd;
			close(fd);
		}
		usleep(20000);
	}
	return -1;
}

/* The last whole "counter: N" line printed at or after byte `from`, or -1. A line still being
 * written ("counter: 4939" of "counter: 49393661") does not count. */
static long long last_counter(const char *out, size_t from)
{
	long long v = -1;
	for (const char *s = out + from; (s = strstr(s, "counter: ")); s += 9) {
		long long x;
		int used = 0;
		if (sscanf(s + 9, "%lld%n", &x, &used) == 1 && s[9 + used] == '\n')
			v = x;
	}
	return v;
}

static void boot_source_fd(int kernel_fd, const char *cmdline)
{
	Ember__V1__FileSource fs = EMBER__V1__FILE_SOURCE__INIT;
	fs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
	fs.passed_fd = 0;
	Ember__V1__BootSource bs = EMBER__V1__BOOT_SOURCE__INIT;
	bs.kernel = &fs;
	bs.cmdline = (char *)cmdline;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_BOOT_SOURCE;
	req.boot_source = &bs;
	expect_fds(&req, &kernel_fd, 1, EMBER__V1__STATUS__OK, NULL);
}

Test(api, lifecycle_with_the_unikernel, .timeout = 600)
{
	require_kvm();
	struct ember_proc p;
	start_monitor(&p, NULL);
	char vsock_path[64];
	snprintf(vsock_path, sizeof(vsock_path), "/tmp/ember-it-api-%d.vsock", (int)getpid());
	unlink(vsock_path);

	machine_config(1, 64, EMBER__V1__STATUS__OK, NULL);
	/* The kernel and the disk travel as descriptors: the monitor opens no path for them. */
	int kfd = open(unikernel_path(), O_RDONLY | O_CLOEXEC);
	cr_assert(kfd >= 0);
	boot_source_fd(kfd, "check=blk,vsock_server,counter vsock_expect=1 vsock_secs=300");
	close(kfd);
	char *img = temp_file_with(4 << 20, 5);
	int dfd = open(img, O_RDWR | O_CLOEXEC);
	Ember__V1__FileSource dfs = EMBER__V1__FILE_SOURCE__INIT;
	dfs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
	Ember__V1__Drive d = EMBER__V1__DRIVE__INIT;
	d.id = "disk0";
	d.file = &dfs;
	Ember__V1__Request dreq = EMBER__V1__REQUEST__INIT;
	dreq.op_case = EMBER__V1__REQUEST__OP_DRIVE_ADD;
	dreq.drive_add = &d;
	expect_fds(&dreq, &dfd, 1, EMBER__V1__STATUS__OK, NULL);
	close(dfd);
	Ember__V1__Vsock vs = EMBER__V1__VSOCK__INIT;
	vs.guest_cid = 3;
	vs.uds_path = vsock_path;
	Ember__V1__Request vreq = EMBER__V1__REQUEST__INIT;
	vreq.op_case = EMBER__V1__REQUEST__OP_VSOCK_SET;
	vreq.vsock_set = &vs;
	expect(&vreq, EMBER__V1__STATUS__OK, NULL);

	expect_simple(EMBER__V1__REQUEST__OP_START, EMBER__V1__STATUS__OK, NULL);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_RUNNING);
	/* Configuration is closed once the VM runs. */
	machine_config(2, 64, EMBER__V1__STATUS__FAILED_PRECONDITION, "before start");
	expect_simple(EMBER__V1__REQUEST__OP_START, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "before start");

	cr_assert(ember_proc_wait_out(&p, 0, "CHECK blk PASS", 240), "out:\n%s\nerr:\n%s", p.out,
		  p.err);
	cr_expect(ember_proc_wait_out(&p, 0, "id=\"disk0\"", 30),
		  "GET_ID answers the drive's id:\n%s", p.out);
	int v = vsock_dial(vsock_path, 1234);
	cr_assert(v >= 0, "vsock: no answer; out:\n%s", p.out);
	cr_assert(write(v, "ping through the API\n", 21) == 21);
	char echo[64] = {0};
	size_t got = 0;
	while (got < 21) {
		ssize_t n = read(v, echo + got, 21 - got);
		cr_assert(n > 0, "vsock echo ended after %zu bytes", got);
		got += (size_t)n;
	}
	cr_expect(memcmp(echo, "ping through the API\n", 21) == 0);
	close(v);

	/* Pause: the counter stops. */
	cr_assert(ember_proc_wait_out(&p, 0, "counter: 2", 240), "out:\n%s", p.out);
	expect_simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_PAUSED);
	ember_proc_poll(&p, 100);
	size_t mark = p.out_len;
	long long before = last_counter(p.out, 0);
	for (int i = 0; i < 15; i++)
		ember_proc_poll(&p, 100);
	cr_expect(!strstr(p.out + mark, "counter: "), "the counter advanced while paused:\n%s",
		  p.out + mark);
	expect_simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);

	/* Drive update while the VM is paused: the new backing is accepted. */
	char *img2 = temp_file_with(8 << 20, 6);
	Ember__V1__FileSource ufs = EMBER__V1__FILE_SOURCE__INIT;
	ufs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	ufs.path = img2;
	Ember__V1__DriveUpdate du = EMBER__V1__DRIVE_UPDATE__INIT;
	du.id = "disk0";
	du.file = &ufs;
	Ember__V1__Request ureq = EMBER__V1__REQUEST__INIT;
	ureq.op_case = EMBER__V1__REQUEST__OP_DRIVE_UPDATE;
	ureq.drive_update = &du;
	expect(&ureq, EMBER__V1__STATUS__OK, NULL);
	du.id = "nosuch";
	expect(&ureq, EMBER__V1__STATUS__NOT_FOUND, "nosuch");

	/* Resume: it counts on from where it stopped. */
	expect_simple(EMBER__V1__REQUEST__OP_RESUME, EMBER__V1__STATUS__OK, NULL);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_RUNNING);
	cr_assert(ember_proc_wait_out(&p, mark, "counter: ", 120), "no counter after resume");
	ember_proc_poll(&p, 300);
	long long after = last_counter(p.out, mark);
	cr_expect(after > before, "counter %lld after resume, %lld before; out:\n%s", after, before,
		  p.out);

	Ember__V1__Request mreq = simple(EMBER__V1__REQUEST__OP_METRICS);
	Ember__V1__Response *resp = call(&mreq);
	cr_assert(resp->status == EMBER__V1__STATUS__OK && resp->metrics);
	Ember__V1__Metrics *m = resp->metrics;
	cr_expect(m->process_start_to_init_us > 0 && m->instance_start_to_init_us > 0 &&
		      m->instance_start_to_init_us < m->process_start_to_init_us,
		  "boot times %llu / %llu us", (unsigned long long)m->process_start_to_init_us,
		  (unsigned long long)m->instance_start_to_init_us);
	uint64_t io = 0;
	for (size_t i = 0; i < m->n_vcpu_exits; i++)
		if (strcmp(m->vcpu_exits[i]->reason, "io") == 0)
			io = m->vcpu_exits[i]->count;
	cr_expect(io > 0, "no io exits counted");
	cr_assert(m->n_devices == 2, "%zu devices", m->n_devices);
	for (size_t i = 0; i < m->n_devices; i++) {
		Ember__V1__DeviceMetrics *dm = m->devices[i];
		cr_expect(dm->requests > 0 && dm->notifies > 0,
			  "%s %s: requests %llu notifies %llu", dm->kind, dm->id,
			  (unsigned long long)dm->requests, (unsigned long long)dm->notifies);
		if (strcmp(dm->kind, "vsock") == 0)
			cr_expect(dm->bytes_to_guest >= 21 && dm->bytes_from_guest >= 21);
		else
			cr_expect(strcmp(dm->kind, "block") == 0 && strcmp(dm->id, "disk0") == 0 &&
				  dm->bytes_to_guest > 0 && dm->bytes_from_guest > 0);
	}
	cr_expect(m->monitor_rss_bytes > 0 && m->guest_rss_bytes > 0);
	ember__v1__response__free_unpacked(resp, NULL);

	stop_and_expect_exit(&p, 0);
	ember_proc_free(&p);
	unlink(img);
	unlink(img2);
	free(img);
	free(img2);
	unlink(vsock_path);
}

Test(api, run_with_kernel_and_api_socket, .timeout = 300)
{
	require_kvm();
	struct ember_proc p;
	start_monitor(&p, (const char *const[]){"--kernel", unikernel_path(), "--cmdline",
						"check=counter", NULL});
	cr_assert(ember_proc_wait_out(&p, 0, "counter: 1", 240), "out:\n%s\nerr:\n%s", p.out,
		  p.err);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_RUNNING);
	stop_and_expect_exit(&p, 0);
	ember_proc_free(&p);
}

Test(api, guest_reset_ends_the_monitor_with_its_code, .timeout = 300)
{
	require_kvm();
	struct ember_proc p;
	start_monitor(&p, NULL);
	int kfd = open(unikernel_path(), O_RDONLY | O_CLOEXEC);
	boot_source_fd(kfd, "check=panic");
	close(kfd);
	expect_simple(EMBER__V1__REQUEST__OP_START, EMBER__V1__STATUS__OK, NULL);
	cr_expect(ember_proc_wait_exit(&p, 240) == 3, "exit %d; err:\n%s", p.exit_code, p.err);
	ember_proc_free(&p);
}

Test(api, failed_start_keeps_the_monitor, .timeout = 120)
{
	struct ember_proc p;
	start_monitor(&p, NULL);
	/* Not a kernel: refused at start; the monitor stays and can be told to stop. */
	Ember__V1__FileSource fs = EMBER__V1__FILE_SOURCE__INIT;
	fs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	fs.path = "/etc/hostname";
	Ember__V1__BootSource bs = EMBER__V1__BOOT_SOURCE__INIT;
	bs.kernel = &fs;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_BOOT_SOURCE;
	req.boot_source = &bs;
	expect(&req, EMBER__V1__STATUS__OK, NULL);
	Ember__V1__Request start = simple(EMBER__V1__REQUEST__OP_START);
	Ember__V1__Response *resp = call(&start);
	cr_expect(resp->status != EMBER__V1__STATUS__OK && strstr(resp->message, "start:") &&
		      strstr(resp->message, "/etc/hostname"),
		  "%s: %s", api_status_name(resp->status), resp->message);
	ember__v1__response__free_unpacked(resp, NULL);
	cr_expect(describe_state() == EMBER__V1__VM_STATE__VM_STATE_NOT_STARTED);
	stop_and_expect_exit(&p, 0);
	ember_proc_free(&p);
}
