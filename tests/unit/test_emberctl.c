/* emberctl and the client library against a fake monitor: a thread in the test that listens on
 * a socket in the build directory, decodes what arrives and answers a canned Response. The
 * built emberctl binary runs as a child process; its request, passed files, output and exit
 * code are checked. JSON output is parsed back by python3's strict parser. */
#include "api/client.h"
#include "api/frame.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bounds a broken emberctl or server so the test fails instead of hanging; never asserted on. */
#define RUN_DEADLINE_MS 60000

static const char *test_dir(void)
{
	const char *d = getenv("EMBERCTL_TEST_DIR");
	return d && *d ? d : ".";
}

static const char *ctl_bin(void)
{
	const char *b = getenv("EMBERCTL_BIN");
	cr_assert(ne(ptr, (void *)b, NULL), "EMBERCTL_BIN is not set (run through meson test)");
	return b;
}

/* A file in the build directory, unique to this test process. */
static char *test_path(const char *name)
{
	static unsigned seq;
	char *p;
	cr_assert(
	    gt(int, asprintf(&p, "%s/ctl-%d-%u-%s", test_dir(), (int)getpid(), seq++, name), 0));
	return p;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(ge(int, fd, 0), "%s: %s", path, strerror(errno));
	cr_assert(eq(sz, write(fd, text, strlen(text)), (ssize_t)strlen(text)));
	close(fd);
}

/* ---- the fake monitor ---------------------------------------------------------------------- */

enum fake_behaviour {
	FAKE_REPLY,	 /* answer the canned reply */
	FAKE_CLOSE,	 /* close without a reply */
	FAKE_GARBAGE,	 /* answer a frame that is no Response */
	FAKE_HANG,	 /* never answer; wait for the client to go */
	FAKE_REPLY_W_FD, /* answer the canned reply with a descriptor attached */
};

struct fake {
	char *path;
	int listen_fd;
	pthread_t thread;
	bool running;
	enum fake_behaviour behaviour;
	uint8_t *reply;
	size_t reply_len;
	/* What arrived. */
	bool accepted;
	Ember__V1__Request *req;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	char error[256];
};

static struct fake fake;

static void fake_listen(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.path = test_path("api.sock");
	unlink(fake.path);
	fake.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(ge(int, fake.listen_fd, 0));
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	cr_assert(lt(sz, strlen(fake.path), sizeof(a.sun_path)), "socket path too long: %s",
		  fake.path);
	strcpy(a.sun_path, fake.path);
	cr_assert(eq(int, bind(fake.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0), "%s: %s",
		  fake.path, strerror(errno));
	cr_assert(eq(int, listen(fake.listen_fd, 8), 0));
}

static void fake_set_reply(const Ember__V1__Response *resp)
{
	free(fake.reply);
	fake.reply_len = ember__v1__response__get_packed_size(resp);
	fake.reply = malloc(fake.reply_len + 1);
	ember__v1__response__pack(resp, fake.reply);
}

static void fake_reply_status(Ember__V1__Status status, const char *message)
{
	Ember__V1__Response r = EMBER__V1__RESPONSE__INIT;
	r.status = status;
	r.message = (char *)message;
	fake_set_reply(&r);
}

static void *fake_serve(void *arg)
{
	struct pollfd p = {.fd = fake.listen_fd, .events = POLLIN};
	if (poll(&p, 1, RUN_DEADLINE_MS) != 1) {
		snprintf(fake.error, sizeof(fake.error), "no client came");
		return NULL;
	}
	int c = accept4(fake.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		snprintf(fake.error, sizeof(fake.error), "accept: %s", strerror(errno));
		return NULL;
	}
	fake.accepted = true;
	uint8_t *msg;
	size_t len;
	int r = api_frame_recv(c, &msg, &len, fake.fds, &fake.nfds);
	if (r != 1) {
		snprintf(fake.error, sizeof(fake.error), "no request frame: %s",
			 r < 0 ? err_msg() : "end of stream");
		close(c);
		return NULL;
	}
	fake.req = ember__v1__request__unpack(NULL, len, msg);
	free(msg);
	if (!fake.req)
		snprintf(fake.error, sizeof(fake.error), "the request does not decode");
	switch (fake.behaviour) {
	case FAKE_REPLY:
		if (api_frame_send(c, fake.reply, fake.reply_len, NULL, 0) < 0)
			snprintf(fake.error, sizeof(fake.error), "reply: %s", err_msg());
		break;
	case FAKE_REPLY_W_FD: {
		int extra = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (api_frame_send(c, fake.reply, fake.reply_len, &extra, 1) < 0)
			snprintf(fake.error, sizeof(fake.error), "reply: %s", err_msg());
		close(extra);
		break;
	}
	case FAKE_GARBAGE: {
		const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
		api_frame_send(c, junk, sizeof(junk), NULL, 0);
		break;
	}
	case FAKE_HANG: {
		uint8_t b;
		while (read(c, &b, 1) > 0)
			;
		break;
	}
	case FAKE_CLOSE:
		break;
	}
	close(c);
	return NULL;
}

static void fake_start(enum fake_behaviour b)
{
	fake.behaviour = b;
	cr_assert(eq(int, pthread_create(&fake.thread, NULL, fake_serve, NULL), 0));
	fake.running = true;
}

static void fake_join(void)
{
	if (fake.running)
		pthread_join(fake.thread, NULL);
	fake.running = false;
	cr_assert(eq(str, fake.error, ""), "fake monitor: %s", fake.error);
}

/* No client connected: what emberctl refused, it did not send. */
static void fake_assert_untouched(void)
{
	int fl = fcntl(fake.listen_fd, F_GETFL);
	fcntl(fake.listen_fd, F_SETFL, fl | O_NONBLOCK);
	int c = accept4(fake.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(eq(int, c, -1), "emberctl connected although the command line was bad");
	cr_assert(eq(int, errno, EAGAIN));
	fcntl(fake.listen_fd, F_SETFL, fl);
}

static void fake_reset_request(void)
{
	if (fake.req)
		ember__v1__request__free_unpacked(fake.req, NULL);
	fake.req = NULL;
	for (unsigned i = 0; i < fake.nfds; i++)
		close(fake.fds[i]);
	fake.nfds = 0;
}

/* ---- running emberctl ---------------------------------------------------------------------- */

struct ctl_run {
	int code; /* exit code, or 128 + signal */
	char *out, *err;
};

static void ctl_run_free(struct ctl_run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = 0;
}

/* Run `prog args...` with stdin_text on stdin; env_sock sets EMBER_API_SOCK (NULL unsets). */
static void run_program(struct ctl_run *r, const char *prog, const char *const *args,
			const char *env_sock, const char *stdin_text)
{
	int out[2], err[2], in[2];
	cr_assert(eq(int, pipe2(out, O_CLOEXEC), 0));
	cr_assert(eq(int, pipe2(err, O_CLOEXEC), 0));
	cr_assert(eq(int, pipe2(in, O_CLOEXEC), 0));
	const char *argv[64] = {prog};
	unsigned n = 1;
	for (; args[n - 1]; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	pid_t pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (env_sock)
			setenv("EMBER_API_SOCK", env_sock, 1);
		else
			unsetenv("EMBER_API_SOCK");
		execvp(prog, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (stdin_text)
		cr_assert(eq(sz, write(in[1], stdin_text, strlen(stdin_text)),
			     (ssize_t)strlen(stdin_text)));
	close(in[1]);
	memset(r, 0, sizeof(*r));
	size_t olen = 0, elen = 0;
	append(&r->out, &olen, "", 0);
	append(&r->err, &elen, "", 0);
	struct pollfd p[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
	unsigned open_pipes = 2;
	while (open_pipes) {
		int k = poll(p, 2, RUN_DEADLINE_MS);
		if (k == 0) {
			kill(pid, SIGKILL);
			cr_log_error("%s did not finish; killed", prog);
			break;
		}
		for (unsigned i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			char buf[4096];
			ssize_t got = read(p[i].fd, buf, sizeof(buf));
			if (got <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_pipes--;
				continue;
			}
			if (i == 0)
				append(&r->out, &olen, buf, (size_t)got);
			else
				append(&r->err, &elen, buf, (size_t)got);
		}
	}
	for (unsigned i = 0; i < 2; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	int status;
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void ctl(struct ctl_run *r, const char *const *args)
{
	run_program(r, ctl_bin(), args, NULL, NULL);
}

/* Run emberctl with `--sock <fake>` before args against a fake that answers as told. */
static void ctl_against_fake(struct ctl_run *r, enum fake_behaviour b, const char *const *args)
{
	const char *full[48] = {"--sock", fake.path};
	unsigned n = 2;
	for (unsigned i = 0; args[i]; i++)
		full[n++] = args[i];
	full[n] = NULL;
	fake_reset_request();
	fake_start(b);
	ctl(r, full);
	fake_join();
}

static const char *describe_run(const struct ctl_run *r)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf), "exit %d\n--- stdout ---\n%s--- stderr ---\n%s", r->code, r->out,
		 r->err);
	return buf;
}

static void same_file_as(int fd, const char *path)
{
	struct stat a, b;
	cr_assert(eq(int, fstat(fd, &a), 0));
	cr_assert(eq(int, stat(path, &b), 0), "%s: %s", path, strerror(errno));
	cr_assert(eq(u64, a.st_dev, b.st_dev), "the passed file is %s", path);
	cr_assert(eq(u64, a.st_ino, b.st_ino), "the passed file is %s", path);
}

static int access_mode(int fd)
{
	return fcntl(fd, F_GETFL) & O_ACCMODE;
}

/* Parse `json` with python3's strict parser (one document, nothing after it) and check each
 * pair of a Python expression over it (bound to d) and the str() it must give. One python3
 * run per call: starting it is the slow part. */
static void check_json(const char *json, const char *const *pairs)
{
	static const char script[] =
	    "import json, sys\n"
	    "d = json.load(sys.stdin)\n"
	    "a = sys.argv[1:]\n"
	    "bad = 0\n"
	    "for i in range(0, len(a), 2):\n"
	    "    got = str(eval(a[i]))\n"
	    "    if got != a[i + 1]:\n"
	    "        print('%s gives %r, not %r' % (a[i], got, a[i + 1]))\n"
	    "        bad = 1\n"
	    "sys.exit(bad)\n";
	const char *args[64] = {"-c", script};
	unsigned n = 2;
	for (unsigned i = 0; pairs[i]; i++) {
		cr_assert(lt(u32, n, 63));
		args[n++] = pairs[i];
	}
	args[n] = NULL;
	struct ctl_run r;
	run_program(&r, "python3", args, NULL, json);
	if (r.code == 127)
		cr_skip_test("python3 is not installed");
	cr_assert(eq(int, r.code, 0), "JSON check failed:\n%s%s\nin:\n%s", r.out, r.err, json);
	ctl_run_free(&r);
}

#define JSON_CHECKS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void setup(void)
{
	fake_listen();
}

static void teardown(void)
{
	fake_reset_request();
	close(fake.listen_fd);
	unlink(fake.path);
	free(fake.path);
	free(fake.reply);
}

TestSuite(emberctl, .init = setup, .fini = teardown);

/* ---- requests ------------------------------------------------------------------------------ */

Test(emberctl, verbs_without_arguments)
{
	static const struct {
		const char *verb;
		Ember__V1__Request__OpCase op;
	} verbs[] = {
	    {"start", EMBER__V1__REQUEST__OP_START},
	    {"pause", EMBER__V1__REQUEST__OP_PAUSE},
	    {"resume", EMBER__V1__REQUEST__OP_RESUME},
	    {"stop", EMBER__V1__REQUEST__OP_STOP},
	};
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	for (unsigned i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		struct ctl_run r;
		ctl_against_fake(&r, FAKE_REPLY, ARGS(verbs[i].verb));
		cr_assert(eq(int, r.code, 0), "%s: %s", verbs[i].verb, describe_run(&r));
		cr_assert(eq(str, r.out, ""), "quiet on success: %s", describe_run(&r));
		cr_assert(eq(str, r.err, ""), "%s", describe_run(&r));
		cr_assert(eq(int, fake.req->op_case, verbs[i].op), "%s", verbs[i].verb);
		cr_assert(eq(u32, fake.nfds, 0));
		ctl_run_free(&r);
	}
}

Test(emberctl, boot_source)
{
	char *initrd = test_path("initrd");
	write_file(initrd, "an initrd");
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY,
			 ARGS("boot-source", "--kernel", "/images/vmlinux", "--initrd-fd-from",
			      initrd, "--cmdline", "console=ttyS0 quiet", "--protocol", "pvh"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_BOOT_SOURCE));
	const Ember__V1__BootSource *b = fake.req->boot_source;
	cr_assert(eq(int, b->kernel->source_case, EMBER__V1__FILE_SOURCE__SOURCE_PATH));
	cr_assert(eq(str, b->kernel->path, "/images/vmlinux"));
	cr_assert(eq(int, b->initrd->source_case, EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD));
	cr_assert(eq(u32, b->initrd->passed_fd, 0));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[0], initrd);
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDONLY));
	cr_assert(eq(str, b->cmdline, "console=ttyS0 quiet"));
	cr_assert(eq(int, b->protocol, EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH));
	ctl_run_free(&r);
	unlink(initrd);
	free(initrd);
}

Test(emberctl, boot_source_both_files_passed)
{
	char *kernel = test_path("kernel"), *initrd = test_path("initrd");
	write_file(kernel, "a kernel");
	write_file(initrd, "an initrd");
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(
	    &r, FAKE_REPLY,
	    ARGS("boot-source", "--kernel-fd-from", kernel, "--initrd-fd-from", initrd));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	const Ember__V1__BootSource *b = fake.req->boot_source;
	cr_assert(eq(u32, fake.nfds, 2));
	same_file_as(fake.fds[b->kernel->passed_fd], kernel);
	same_file_as(fake.fds[b->initrd->passed_fd], initrd);
	cr_assert(ne(u32, b->kernel->passed_fd, b->initrd->passed_fd));
	cr_assert(eq(int, b->protocol, EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_AUTO));
	ctl_run_free(&r);
	unlink(kernel);
	unlink(initrd);
	free(kernel);
	free(initrd);
}

Test(emberctl, machine_config)
{
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY,
			 ARGS("machine-config", "--vcpus", "4", "--mem-mib", "512"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_MACHINE_CONFIG));
	cr_assert(eq(u32, fake.req->machine_config->vcpus, 4));
	cr_assert(eq(u64, fake.req->machine_config->mem_mib, 512));
	ctl_run_free(&r);
}

Test(emberctl, drive_add_passes_the_image)
{
	char *img = test_path("disk.img");
	write_file(img, "disk");
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("drive", "add", "--id", "root", "--fd-from", img));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_DRIVE_ADD));
	const Ember__V1__Drive *d = fake.req->drive_add;
	cr_assert(eq(str, d->id, "root"));
	cr_assert(not(d->read_only));
	cr_assert(eq(int, d->file->source_case, EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[d->file->passed_fd], img);
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDWR));
	ctl_run_free(&r);

	/* Read-only: by path, and passed opened read-only. */
	ctl_against_fake(
	    &r, FAKE_REPLY,
	    ARGS("drive", "add", "--id", "data.1", "--path", "rel/data.img", "--read-only"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	d = fake.req->drive_add;
	cr_assert(d->read_only);
	cr_assert(eq(str, d->file->path, "rel/data.img"), "paths go as given");
	cr_assert(eq(u32, fake.nfds, 0));
	ctl_run_free(&r);

	ctl_against_fake(&r, FAKE_REPLY,
			 ARGS("drive", "add", "--read-only", "--id", "ro", "--fd-from", img));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDONLY));
	ctl_run_free(&r);
	unlink(img);
	free(img);
}

Test(emberctl, drive_update)
{
	char *img = test_path("new.img");
	write_file(img, "new");
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY,
			 ARGS("drive", "update", "--id", "root", "--path", "/images/new.img"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_DRIVE_UPDATE));
	cr_assert(eq(str, fake.req->drive_update->id, "root"));
	cr_assert(eq(str, fake.req->drive_update->file->path, "/images/new.img"));
	ctl_run_free(&r);

	ctl_against_fake(&r, FAKE_REPLY, ARGS("drive", "update", "--id", "root", "--fd-from", img));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[fake.req->drive_update->file->passed_fd], img);
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDWR));
	ctl_run_free(&r);
	unlink(img);
	free(img);
}

Test(emberctl, net_add_by_name)
{
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(
	    &r, FAKE_REPLY,
	    ARGS("net", "add", "--id", "eth0", "--tap", "tap7", "--mac", "AA:FC:00:00:00:01"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_NET_ADD));
	const Ember__V1__NetInterface *n = fake.req->net_add;
	cr_assert(eq(str, n->id, "eth0"));
	cr_assert(eq(int, n->tap_case, EMBER__V1__NET_INTERFACE__TAP_TAP_NAME));
	cr_assert(eq(str, n->tap_name, "tap7"));
	cr_assert(eq(str, n->mac, "AA:FC:00:00:00:01"));
	ctl_run_free(&r);
}

Test(emberctl, net_add_passes_an_open_tap)
{
	/* Probe: creating a tap needs CAP_NET_ADMIN and /dev/net/tun. */
	int probe = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (probe < 0)
		cr_skip_test("/dev/net/tun: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "ectl%d", (int)getpid() % 100000);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(probe, TUNSETIFF, &ifr) < 0) {
		close(probe);
		cr_skip_test("cannot create a tap: %s", strerror(errno));
	}
	/* This tap is not persistent: it goes with the probe, and emberctl makes it anew. */
	char name[IFNAMSIZ];
	snprintf(name, sizeof(name), "%s", ifr.ifr_name);
	close(probe);

	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("net", "add", "--id", "n0", "--tap-fd-from", name));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	const Ember__V1__NetInterface *n = fake.req->net_add;
	cr_assert(eq(int, n->tap_case, EMBER__V1__NET_INTERFACE__TAP_TAP_PASSED_FD));
	cr_assert(eq(u32, fake.nfds, 1));
	struct ifreq got;
	memset(&got, 0, sizeof(got));
	cr_assert(eq(int, ioctl(fake.fds[n->tap_passed_fd], TUNGETIFF, &got), 0),
		  "the passed descriptor is a tun/tap: %s", strerror(errno));
	cr_assert(eq(str, got.ifr_name, name));
	cr_assert(eq(int, got.ifr_flags &(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
		     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));
	ctl_run_free(&r);
}

Test(emberctl, vsock_set)
{
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY,
			 ARGS("vsock", "set", "--cid", "42", "--uds", "/run/ember/v.sock"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_VSOCK_SET));
	cr_assert(eq(u64, fake.req->vsock_set->guest_cid, 42));
	cr_assert(eq(str, fake.req->vsock_set->uds_path, "/run/ember/v.sock"));
	ctl_run_free(&r);
}

Test(emberctl, logger)
{
	char *log = test_path("monitor.log");
	unlink(log);
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("logger", "--level", "debug", "--file-fd-from", log));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_LOGGER));
	cr_assert(eq(str, fake.req->logger->level, "debug"));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[fake.req->logger->file->passed_fd], log);
	int fl = fcntl(fake.fds[0], F_GETFL);
	cr_assert(eq(int, fl &O_ACCMODE, O_WRONLY));
	cr_assert(ne(int, fl &O_APPEND, 0), "log files are appended to");
	ctl_run_free(&r);

	ctl_against_fake(&r, FAKE_REPLY, ARGS("logger", "--level", "warn"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(str, fake.req->logger->level, "warn"));
	cr_assert(eq(ptr, fake.req->logger->file, NULL), "unset keeps the current file");
	ctl_run_free(&r);
	unlink(log);
	free(log);
}

Test(emberctl, snapshot_create_and_load)
{
	char *state = test_path("vm.state"), *mem = test_path("vm.mem");
	unlink(state);
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(
	    &r, FAKE_REPLY,
	    ARGS("snapshot", "create", "--state-fd-from", state, "--mem", mem, "--diff"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE));
	const Ember__V1__SnapshotCreate *c = fake.req->snapshot_create;
	cr_assert(c->diff);
	cr_assert(eq(str, c->mem->path, mem));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[c->state->passed_fd], state);
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDWR));
	struct stat st;
	cr_assert(eq(int, stat(state, &st), 0));
	cr_assert(eq(int, st.st_mode & 0777, 0600), "snapshot files are private");
	ctl_run_free(&r);

	write_file(mem, "memory");
	ctl_against_fake(
	    &r, FAKE_REPLY,
	    ARGS("snapshot", "load", "--state", state, "--mem-fd-from", mem, "--resume"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_SNAPSHOT_LOAD));
	const Ember__V1__SnapshotLoad *l = fake.req->snapshot_load;
	cr_assert(l->resume);
	cr_assert(eq(str, l->state->path, state));
	same_file_as(fake.fds[l->mem->passed_fd], mem);
	cr_assert(eq(int, access_mode(fake.fds[0]), O_RDONLY));
	ctl_run_free(&r);
	unlink(state);
	unlink(mem);
	free(state);
	free(mem);
}

Test(emberctl, socket_from_the_environment_and_options_after_the_verb)
{
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	fake_reset_request();
	fake_start(FAKE_REPLY);
	struct ctl_run r;
	run_program(&r, ctl_bin(), ARGS("start", "--timeout", "0"), fake.path, NULL);
	fake_join();
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_START));
	ctl_run_free(&r);

	/* --sock wins over the environment. */
	fake_reset_request();
	fake_start(FAKE_REPLY);
	run_program(&r, ctl_bin(), ARGS("pause", "--sock", fake.path), "/nonexistent/api.sock",
		    NULL);
	fake_join();
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_PAUSE));
	ctl_run_free(&r);
}

/* ---- replies ------------------------------------------------------------------------------- */

/* A reply to describe with every part filled, and strings that need escaping. */
#define AWKWARD_CMDLINE "console=ttyS0 say=\"hi\" back\\slash\ttab\nline\x01 caf\xc3\xa9 bad\xff"

static void describe_reply(void)
{
	Ember__V1__FileSource kernel = EMBER__V1__FILE_SOURCE__INIT,
			      disk = EMBER__V1__FILE_SOURCE__INIT,
			      data = EMBER__V1__FILE_SOURCE__INIT;
	kernel.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	kernel.path = "/images/vmlinux";
	disk.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	disk.path = "/images/rootfs.ext4";
	data.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
	data.passed_fd = 0;
	Ember__V1__BootSource boot = EMBER__V1__BOOT_SOURCE__INIT;
	boot.kernel = &kernel;
	boot.cmdline = AWKWARD_CMDLINE;
	boot.protocol = EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_LINUX;
	Ember__V1__MachineConfig mc = EMBER__V1__MACHINE_CONFIG__INIT;
	mc.vcpus = 2;
	mc.mem_mib = 256;
	Ember__V1__Drive d0 = EMBER__V1__DRIVE__INIT, d1 = EMBER__V1__DRIVE__INIT;
	d0.id = "root";
	d0.file = &disk;
	d1.id = "scratch";
	d1.file = &data;
	d1.read_only = true;
	Ember__V1__Drive *drives[] = {&d0, &d1};
	Ember__V1__NetInterface n0 = EMBER__V1__NET_INTERFACE__INIT;
	n0.id = "eth0";
	n0.tap_case = EMBER__V1__NET_INTERFACE__TAP_TAP_NAME;
	n0.tap_name = "tap0";
	n0.mac = "aa:fc:00:00:00:01";
	Ember__V1__NetInterface *nets[] = {&n0};
	Ember__V1__Vsock vs = EMBER__V1__VSOCK__INIT;
	vs.guest_cid = 3;
	vs.uds_path = "/run/ember/v.sock";
	Ember__V1__InstanceInfo info = EMBER__V1__INSTANCE_INFO__INIT;
	info.state = EMBER__V1__VM_STATE__VM_STATE_RUNNING;
	info.version = "0.1.0";
	info.boot_source = &boot;
	info.machine_config = &mc;
	info.n_drives = 2;
	info.drives = drives;
	info.n_net = 1;
	info.net = nets;
	info.vsock = &vs;
	info.pid = 4242;
	Ember__V1__Response resp = EMBER__V1__RESPONSE__INIT;
	resp.result_case = EMBER__V1__RESPONSE__RESULT_INFO;
	resp.info = &info;
	fake_set_reply(&resp);
}

Test(emberctl, describe_for_people)
{
	describe_reply();
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("describe"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_DESCRIBE));
	const char *want[] = {
	    "state        running\n",
	    "pid          4242\n",
	    "kernel       /images/vmlinux\n",
	    "protocol     linux\n",
	    "machine      2 vCPUs, 256 MiB\n",
	    "  ID       MODE  FILE\n",
	    "  root     rw    /images/rootfs.ext4\n",
	    "  scratch  ro    (file passed by the client, #0)\n",
	    "  eth0  tap0  aa:fc:00:00:00:01\n",
	    "vsock        cid 3, uds /run/ember/v.sock\n",
	    /* Control characters from the monitor are shown, not sent to the terminal. */
	    "say=\"hi\" back\\slash\\x09tab\\x0aline\\x01 caf\xc3\xa9",
	};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(ne(ptr, strstr(r.out, want[i]), NULL), "missing '%s' in\n%s", want[i],
			  r.out);
	cr_assert(eq(str, r.err, ""));
	ctl_run_free(&r);
}

Test(emberctl, describe_as_json)
{
	describe_reply();
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("--json", "describe"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(str, r.err, ""));
	check_json(r.out,
		   JSON_CHECKS("d['status']", "OK", "d['info']['state']", "VM_STATE_RUNNING",
			       "d['info']['pid']", "4242", "d['info']['machine_config']",
			       "{'vcpus': 2, 'mem_mib': 256}",
			       "[x['id'] for x in d['info']['drives']]", "['root', 'scratch']",
			       "d['info']['drives'][1]",
			       "{'id': 'scratch', 'file': {'passed_fd': 0}, 'read_only': True}",
			       "d['info']['drives'][0]['file']", "{'path': '/images/rootfs.ext4'}",
			       "d['info']['net'][0]['tap_name']", "tap0",
			       "'tap_passed_fd' in d['info']['net'][0]", "False",
			       "d['info']['vsock']['guest_cid']", "3",
			       "'initrd' in d['info']['boot_source']", "False",
			       /* Every escape round-trips; the byte that is not UTF-8 becomes
				* U+FFFD. */
			       "d['info']['boot_source']['cmdline'] == 'console=ttyS0 say=\"hi\" "
			       "back\\\\slash\\ttab\\nline\\x01 caf\\u00e9 bad\\ufffd'",
			       "True"));
	ctl_run_free(&r);
}

static void metrics_reply(uint64_t boot_us)
{
	Ember__V1__ExitCount e0 = EMBER__V1__EXIT_COUNT__INIT, e1 = EMBER__V1__EXIT_COUNT__INIT;
	e0.reason = "io";
	e0.count = 1234;
	e1.reason = "mmio";
	e1.count = 7;
	Ember__V1__ExitCount *exits[] = {&e0, &e1};
	Ember__V1__DeviceMetrics dm = EMBER__V1__DEVICE_METRICS__INIT;
	dm.kind = "block";
	dm.id = "root";
	dm.requests = 100;
	dm.bytes_to_guest = 409600;
	dm.bytes_from_guest = 8192;
	dm.notifies = 90;
	dm.interrupts = 95;
	Ember__V1__DeviceMetrics *devs[] = {&dm};
	Ember__V1__Metrics m = EMBER__V1__METRICS__INIT;
	m.process_start_to_init_us = boot_us;
	m.instance_start_to_init_us = boot_us ? boot_us - 1000 : 0;
	m.uptime_us = 2500000;
	m.n_vcpu_exits = 2;
	m.vcpu_exits = exits;
	m.n_devices = 1;
	m.devices = devs;
	m.monitor_rss_bytes = 5 * 1024 * 1024;
	m.guest_rss_bytes = 12 * 1024 * 1024 + 512 * 1024;
	m.api_requests = 9;
	m.api_errors = 1;
	Ember__V1__Response resp = EMBER__V1__RESPONSE__INIT;
	resp.result_case = EMBER__V1__RESPONSE__RESULT_METRICS;
	resp.metrics = &m;
	fake_set_reply(&resp);
}

Test(emberctl, metrics_for_people)
{
	metrics_reply(12345);
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("metrics"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(eq(int, fake.req->op_case, EMBER__V1__REQUEST__OP_METRICS));
	const char *want[] = {
	    "boot time    12.345 ms from process start, 11.345 ms from InstanceStart\n",
	    "uptime       2.500 s\n",
	    "memory       monitor RSS 5.0 MiB, guest RAM present 12.5 MiB\n",
	    "api          9 requests, 1 error\n",
	    "  REASON  COUNT\n",
	    "  io       1234\n",
	    "  mmio        7\n",
	    "  block  root       100          409600              8192       0        90",
	};
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(ne(ptr, strstr(r.out, want[i]), NULL), "missing '%s' in\n%s", want[i],
			  r.out);
	ctl_run_free(&r);

	metrics_reply(0);
	ctl_against_fake(&r, FAKE_REPLY, ARGS("metrics"));
	cr_assert(ne(ptr, strstr(r.out, "not written the boot timer"), NULL), "%s", r.out);
	ctl_run_free(&r);
}

Test(emberctl, metrics_as_json)
{
	metrics_reply(12345);
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("metrics", "--json"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	check_json(r.out,
		   JSON_CHECKS("d['metrics']['process_start_to_init_us']", "12345",
			       "d['metrics']['vcpu_exits']",
			       "[{'reason': 'io', 'count': 1234}, {'reason': 'mmio', 'count': 7}]",
			       "d['metrics']['devices'][0]['bytes_to_guest']", "409600",
			       "d['metrics']['devices'][0]['errors']", "0",
			       "d['metrics']['api_errors']", "1", "d['message']", ""));
	ctl_run_free(&r);
}

Test(emberctl, json_for_a_plain_ok)
{
	fake_reply_status(EMBER__V1__STATUS__OK, "");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("--json", "start"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	check_json(r.out, JSON_CHECKS("d", "{'status': 'OK', 'message': ''}"));
	ctl_run_free(&r);
}

Test(emberctl, error_reply)
{
	fake_reply_status(EMBER__V1__STATUS__NOT_FOUND, "no drive 'x'");
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_REPLY, ARGS("drive", "update", "--id", "x", "--path", "/y"));
	cr_assert(eq(int, r.code, 1), "%s", describe_run(&r));
	cr_assert(eq(str, r.out, ""));
	cr_assert(ne(ptr, strstr(r.err, "NOT_FOUND"), NULL), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "no drive 'x'"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);

	fake_reply_status(EMBER__V1__STATUS__FAILED_PRECONDITION, "the VM is not running");
	ctl_against_fake(&r, FAKE_REPLY, ARGS("--json", "pause"));
	cr_assert(eq(int, r.code, 1), "%s", describe_run(&r));
	check_json(r.out, JSON_CHECKS("d['status'] + ' ' + d['message']",
				      "FAILED_PRECONDITION the VM is not running"));
	cr_assert(ne(ptr, strstr(r.err, "FAILED_PRECONDITION: the VM is not running"), NULL), "%s",
		  describe_run(&r));
	ctl_run_free(&r);

	/* A status this build does not know still is an error, shown by number. */
	fake_reply_status((Ember__V1__Status)77, "from the future");
	ctl_against_fake(&r, FAKE_REPLY, ARGS("resume"));
	cr_assert(eq(int, r.code, 1), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "STATUS_77: from the future"), NULL), "%s",
		  describe_run(&r));
	ctl_run_free(&r);
}

Test(emberctl, no_monitor)
{
	struct ctl_run r;
	char *missing = test_path("missing.sock");
	ctl(&r, ARGS("--sock", missing, "start"));
	cr_assert(eq(int, r.code, 3), "%s", describe_run(&r));
	cr_assert(eq(str, r.out, ""));
	cr_assert(ne(ptr, strstr(r.err, "no such socket"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);

	/* A socket file nobody listens on (a monitor that died). */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", missing);
	cr_assert(eq(int, bind(s, (struct sockaddr *)&a, sizeof(a)), 0));
	close(s);
	ctl(&r, ARGS("--sock", missing, "--json", "describe"));
	cr_assert(eq(int, r.code, 3), "%s", describe_run(&r));
	cr_assert(eq(str, r.out, ""), "no reply, no JSON");
	cr_assert(ne(ptr, strstr(r.err, "nobody listens"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);
	unlink(missing);
	free(missing);
}

Test(emberctl, broken_exchanges)
{
	struct ctl_run r;
	ctl_against_fake(&r, FAKE_CLOSE, ARGS("start"));
	cr_assert(eq(int, r.code, 3), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "without a reply"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);

	ctl_against_fake(&r, FAKE_GARBAGE, ARGS("start"));
	cr_assert(eq(int, r.code, 3), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "not a valid"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);

	ctl_against_fake(&r, FAKE_HANG, ARGS("--timeout", "50", "describe"));
	cr_assert(eq(int, r.code, 3), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "timed out"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);
}

Test(emberctl, bad_command_lines_send_nothing)
{
	char *dir = test_path("a-directory");
	cr_assert(eq(int, mkdir(dir, 0755), 0));
	const char *missing_file = "/nonexistent/ember/disk.img";
	static const struct {
		const char *args[10];
		const char *says;
	} cases[] = {
	    {{"frobnicate"}, "unknown command 'frobnicate'"},
	    {{"start", "--bogus"}, "unknown option '--bogus'"},
	    {{"start", "extra"}, "unexpected argument 'extra'"},
	    {{"drive"}, "a sub-command is needed"},
	    {{"drive", "remove"}, "unknown sub-command 'remove'"},
	    {{"drive", "add", "--id", "root"}, "one of --path or --fd-from is required"},
	    {{"drive", "add", "--path", "x"}, "--id is required"},
	    {{"drive", "add", "--id", "has space", "--path", "x"}, "an id is made of"},
	    {{"drive", "add", "--id", "abcdefghijklmnopqrstu", "--path", "x"}, "1 to 20 bytes"},
	    {{"drive", "add", "--id", "a", "--path", "x", "--fd-from", "y"}, "exclude each other"},
	    {{"drive", "add", "--id", "a", "--path"}, "--path needs a value"},
	    {{"drive", "add", "--id", "a", "--id", "b", "--path", "x"}, "--id given twice"},
	    {{"drive", "add", "--id", "a", "--path", "x", "--read-only=yes"},
	     "--read-only takes no value"},
	    {{"machine-config", "--vcpus", "0", "--mem-mib", "64"}, "out of range"},
	    {{"machine-config", "--vcpus", "2", "--mem-mib", "lots"}, "not a number"},
	    {{"machine-config", "--vcpus", "2"}, "--mem-mib is required"},
	    {{"boot-source", "--protocol", "pvh"}, "one of --kernel or --kernel-fd-from"},
	    {{"boot-source", "--kernel", "k", "--protocol", "efi"}, "expected auto, linux or pvh"},
	    {{"net", "add", "--id", "n", "--tap", "t", "--mac", "aa:bb:cc"}, "six hex bytes"},
	    {{"net", "add", "--id", "n", "--tap", "t", "--mac", "01:00:5e:00:00:01"}, "multicast"},
	    {{"net", "add", "--id", "n"}, "one of --tap or --tap-fd-from"},
	    {{"vsock", "set", "--cid", "2", "--uds", "/x"}, "out of range"},
	    {{"vsock", "set", "--cid", "3"}, "--uds is required"},
	    {{"logger"}, "nothing to change"},
	    {{"logger", "--level", "loud"}, "expected error, warn, info or debug"},
	    {{"snapshot", "create", "--state", "s"}, "one of --mem or --mem-fd-from"},
	    {{"--timeout", "-5", "start"}, "not a number"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[16] = {"--sock", fake.path};
		unsigned n = 2;
		for (unsigned k = 0; cases[i].args[k]; k++)
			args[n++] = cases[i].args[k];
		struct ctl_run r;
		ctl(&r, args);
		cr_assert(eq(int, r.code, 2), "case %u: %s", i, describe_run(&r));
		cr_assert(ne(ptr, strstr(r.err, cases[i].says), NULL), "case %u wants '%s': %s", i,
			  cases[i].says, describe_run(&r));
		cr_assert(eq(str, r.out, ""), "case %u", i);
		fake_assert_untouched();
		ctl_run_free(&r);
	}

	/* Files to pass that do not open are bad values too. */
	struct ctl_run r;
	ctl(&r, ARGS("--sock", fake.path, "drive", "add", "--id", "a", "--fd-from", missing_file));
	cr_assert(eq(int, r.code, 2), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, missing_file), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);
	ctl(&r, ARGS("--sock", fake.path, "boot-source", "--kernel-fd-from", dir));
	cr_assert(eq(int, r.code, 2), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "directory"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);
	fake_assert_untouched();

	/* No socket at all. */
	ctl(&r, ARGS("start"));
	cr_assert(eq(int, r.code, 2), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.err, "EMBER_API_SOCK"), NULL), "%s", describe_run(&r));
	ctl_run_free(&r);
	rmdir(dir);
	free(dir);
}

Test(emberctl, help)
{
	struct ctl_run r;
	ctl(&r, ARGS("--help"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	const char *verbs[] = {
	    "boot-source", "machine-config", "drive add", "drive update",    "net add",
	    "vsock set",   "start",	     "pause",	  "resume",	     "stop",
	    "describe",	   "metrics",	     "logger",	  "snapshot create", "snapshot load"};
	for (unsigned i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		cr_assert(ne(ptr, strstr(r.out, verbs[i]), NULL), "--help lacks %s", verbs[i]);
	ctl_run_free(&r);

	ctl(&r, ARGS("--sock", fake.path, "net", "add", "--help"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.out, "--tap-fd-from NAME"), NULL), "%s", r.out);
	fake_assert_untouched();
	ctl_run_free(&r);

	ctl(&r, ARGS("snapshot", "--help"));
	cr_assert(eq(int, r.code, 0), "%s", describe_run(&r));
	cr_assert(ne(ptr, strstr(r.out, "snapshot load"), NULL), "%s", r.out);
	ctl_run_free(&r);

	ctl(&r, (const char *const[]){NULL});
	cr_assert(eq(int, r.code, 2), "%s", describe_run(&r));
	ctl_run_free(&r);
}

/* ---- the client library directly ----------------------------------------------------------- */

Test(emberctl, client_call_and_errors)
{
	fake_reply_status(EMBER__V1__STATUS__ALREADY_EXISTS, "drive 'root' exists");
	fake_reset_request();
	fake_start(FAKE_REPLY_W_FD);
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_DESCRIBE;
	req.describe = &empty;
	int passed = open("/dev/null", O_RDONLY | O_CLOEXEC);
	Ember__V1__Response *resp;
	int r = api_client_request(fake.path, 10000, &req, &passed, 1, &resp);
	fake_join();
	cr_assert(eq(int, r, 0), "%s", err_msg());
	cr_assert(eq(int, resp->status, EMBER__V1__STATUS__ALREADY_EXISTS));
	cr_assert(eq(str, resp->message, "drive 'root' exists"));
	cr_assert(eq(str, (char *)api_status_name(resp->status), "ALREADY_EXISTS"));
	cr_assert(eq(u32, fake.nfds, 1));
	same_file_as(fake.fds[0], "/dev/null");
	cr_assert(ge(int, fcntl(passed, F_GETFD), 0), "the caller's descriptor stays open");
	ember__v1__response__free_unpacked(resp, NULL);
	close(passed);

	char *missing = test_path("nobody.sock");
	cr_assert(lt(int, api_client_connect(missing, 100), 0));
	cr_assert(ne(ptr, strstr(err_msg(), missing), NULL), "%s", err_msg());
	char long_path[200];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = 0;
	cr_assert(eq(int, api_client_connect(long_path, 100), -ENAMETOOLONG));
	cr_assert(lt(int, api_client_connect("", 100), 0));
	free(missing);
}
