/* The test unikernel's drivers against Ember's devices, on the host (tests/unit/uk_host.h): what
 * the guest does with a vsock TRANSPORT_RESET, without a snapshot (the restore integration test
 * does the same through a real restore), and the rng check's output. */
#include "devices/virtio_mmio/rng.h"
#include "devices/virtio_mmio/vsock.h"
#include "devices/virtio_mmio/vsock_conn.h"
#include "common/err.h"
#include "common/event_loop.h"
#include "guest/unikernel/checks.h"
#include "memory/layout.h"
#include "tests/unit/uk_host.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct event_loop loop;
static struct vsock_dev *dev;
static struct virtio_mmio_dev *t;
static char dir[32], path[64];

static void vsock_setup(void)
{
	strcpy(dir, "/tmp/ember-ukvsock-XXXXXX");
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	cr_assert(eq(int, event_loop_init(&loop), 0));
	uk_host_init(64 * MiB);
	char spec[128];
	snprintf(spec, sizeof(spec), "cid=3,uds=%s", path);
	void *cfg, *d;
	cr_assert(eq(int, virtio_vsock_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_vsock_class.create(cfg, 0, uk_host_mem(), &d, &t), 0), "%s",
		  err_msg());
	free(cfg);
	dev = d;
	cr_assert(eq(int, virtio_vsock_class.start(dev, &loop), 0), "%s", err_msg());
	uk_host_attach(t);
}

static void vsock_teardown(void)
{
	char cmd[80];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert(eq(int, system(cmd), 0));
}

TestSuite(uk_vsock, .init = vsock_setup, .fini = vsock_teardown, .timeout = 60);

/* Run the device's loop until the guest prints `needle` (or ends); false after ~10 s. */
static bool run_until_seen(const char *needle)
{
	for (int i = 0; i < 1000; i++) {
		if (uk_host_seen(needle))
			return true;
		event_loop_run_once(&loop, 10);
	}
	return false;
}

static int host_connect(uint32_t port)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	cr_assert(eq(int, connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "%m");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	cr_assert(eq(i64, send(fd, line, (size_t)n, MSG_NOSIGNAL), n));
	return fd;
}

/* Read len bytes (or until end of file), running the loop meanwhile; the count. */
static size_t host_read(int fd, char *buf, size_t len)
{
	size_t done = 0;
	for (int i = 0; done < len && i < 1000; i++) {
		ssize_t n = recv(fd, buf + done, len - done, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			done += (size_t)n;
		else
			event_loop_run_once(&loop, 10);
	}
	return done;
}

/* A host connection to the guest's echo server, checked with one round trip. */
static int echo_connection(const char *msg)
{
	int fd = host_connect(1234);
	char ok[8] = {0};
	cr_assert(eq(u64, host_read(fd, ok, 3), 3), "%s", uk_host_console());
	cr_assert(eq(str, ok, "OK "));
	char c = 0;
	while (c != '\n') /* the rest of "OK <port>\n" */
		cr_assert(eq(u64, host_read(fd, &c, 1), 1));
	size_t len = strlen(msg);
	cr_assert(eq(i64, send(fd, msg, len, MSG_NOSIGNAL), (int64_t)len));
	char back[64] = {0};
	cr_assert(eq(u64, host_read(fd, back, len), len), "%s", uk_host_console());
	cr_assert(eq(int, strcmp(back, msg), 0), "%s", back);
	return fd;
}

static bool host_sees_eof(int fd)
{
	char c;
	return host_read(fd, &c, 1) == 0;
}

Test(uk_vsock, server_survives_a_transport_reset_with_a_new_cid)
{
	opts.vsock_conns = 4;
	opts.vsock_secs = 50;
	opts.vsock_expect = 1; /* one connection closed by its peer, after the reset */
	uk_host_start("vsock_server", check_vsock_server);
	cr_assert(run_until_seen("vsock: listening cid=3"), "%s", uk_host_console());
	int before = echo_connection("before the restore");

	/* What a restore does to the device: a clone with CID 7, none of the old host side. */
	pthread_mutex_lock(&t->lock);
	dev->cfg.guest_cid = 7;
	pthread_mutex_unlock(&t->lock);
	cr_assert(eq(int, virtio_vsock_class.restored(dev), 0), "%s", err_msg());
	cr_assert(run_until_seen("vsock: transport reset, cid=7, 1 connections dropped"), "%s",
		  uk_host_console());
	cr_assert(host_sees_eof(before), "the old connection's socket is closed");
	close(before);

	/* Still listening, now as CID 7: the device would drop its packets otherwise. */
	int after = echo_connection("after the restore");
	close(after);
	for (int i = 0; i < 1000 && !uk_host_done(); i++)
		event_loop_run_once(&loop, 10);
	cr_assert(uk_host_done(), "%s", uk_host_console());
	const char *out = uk_host_console();
	cr_assert(ne(ptr, strstr(out, "CHECK vsock_server PASS conns=2"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "closed=1 still_open=0"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "resets=1 dropped=1"), NULL), "%s", out);
	/* The guest said nothing about the dropped connection: its peer is gone. */
	struct vsock_stats s;
	vsock_get_stats(dev, &s);
	cr_assert(eq(u64, s.bad_packets, 0));
	cr_assert(eq(u64, s.transport_resets, 1));
	virtio_vsock_class.destroy(dev);
}

/* The lines "rng: <32 hex digits>" in the console; how many, the last one in last[]. */
static unsigned rng_lines(const char *out, char last[33])
{
	unsigned n = 0;
	for (const char *p = strstr(out, "rng: "); p; p = strstr(p + 1, "rng: ")) {
		const char *hex = p + 5;
		if (strspn(hex, "0123456789abcdef") == 32 && hex[32] == '\n') {
			memcpy(last, hex, 32);
			last[32] = 0;
			n++;
		}
	}
	return n;
}

Test(uk_rng, prints_fresh_bytes_every_tick, .timeout = 60)
{
	uk_host_init(16 * MiB);
	void *cfg, *rng;
	struct virtio_mmio_dev *rt;
	cr_assert(eq(int, virtio_rng_class.parse("on", &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_rng_class.create(cfg, 1, uk_host_mem(), &rng, &rt), 0), "%s",
		  err_msg());
	free(cfg);
	uk_host_attach(rt);
	uk_host_start("rng", check_rng);
	char last[33];
	unsigned n = 0;
	for (int i = 0; i < 500 && n < 4; i++) {
		n = rng_lines(uk_host_console(), last);
		usleep(10000);
	}
	const char *out = uk_host_console();
	cr_assert(ge(u32, n, 4), "%s", out);
	cr_assert(eq(u64, strlen(last), 32));
	cr_assert(ne(ptr, strstr(out, "virtio: rng at 0xc0002000 irq 6 features=0x"), NULL), "%s",
		  out);
	cr_assert(eq(ptr, strstr(out, "FAIL"), NULL), "%s", out);
	/* Each line came from its own request, 16 bytes each. */
	struct rng_stats s;
	rng_get_stats(rng, &s);
	cr_assert(ge(u64, s.requests, 4));
	cr_assert(eq(u64, s.bytes, 16 * s.requests));
	cr_assert(not(uk_host_done()), "the check runs forever");
}
