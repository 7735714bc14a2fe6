/* virtio-vsock end to end: the unikernel's vsock echo server and client against Ember's hybrid
 * vsock, driven from the host through the Unix socket. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 300.0
#define PORT	  1234

static void uds_path(char *buf, size_t size, const char *tag)
{
	snprintf(buf, size, "/tmp/ember-vsock-%s-%d.sock", tag, getpid());
	unlink(buf);
}

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

/* Connect through Ember to the guest's port, retrying until the guest listens. */
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

static unsigned char pattern(size_t i, unsigned stream)
{
	return (unsigned char)(i * 7 + 3 + stream * 13);
}

/* Send `len` pattern bytes on each fd and read the same back, all streams at once. */
static bool echo_streams(int *fds, unsigned n, size_t len, char *why, size_t why_size)
{
	size_t *sent = calloc(n, sizeof(size_t)), *got = calloc(n, sizeof(size_t));
	struct pollfd *p = calloc(n, sizeof(*p));
	unsigned done = 0;
	bool ok = true;
	time_t deadline = time(NULL) + 240;
	while (done < n && ok) {
		for (unsigned i = 0; i < n; i++) {
			p[i].fd = got[i] == len ? -1 : fds[i];
			p[i].events = POLLIN | (sent[i] < len ? POLLOUT : 0);
		}
		if (poll(p, n, 1000) < 0 && errno != EINTR)
			break;
		if (time(NULL) > deadline) {
			snprintf(why, why_size, "timed out: %u of %u streams done", done, n);
			ok = false;
			break;
		}
		for (unsigned i = 0; i < n && ok; i++) {
			unsigned char buf[65536];
			if ((p[i].revents & POLLOUT) && sent[i] < len) {
				size_t k =
				    len - sent[i] < sizeof(buf) ? len - sent[i] : sizeof(buf);
				for (size_t j = 0; j < k; j++)
					buf[j] = pattern(sent[i] + j, i);
				ssize_t w = write(fds[i], buf, k);
				if (w > 0)
					sent[i] += (size_t)w;
				if (sent[i] == len)
					shutdown(fds[i], SHUT_WR);
			}
			if (p[i].revents & (POLLIN | POLLHUP)) {
				ssize_t r = read(fds[i], buf, sizeof(buf));
				if (r <= 0) {
					snprintf(why, why_size,
						 "stream %u closed after %zu of %zu bytes", i,
						 got[i], len);
					ok = false;
					break;
				}
				for (ssize_t j = 0; j < r; j++)
					if (buf[j] != pattern(got[i] + (size_t)j, i)) {
						snprintf(why, why_size,
							 "stream %u: byte %zu differs", i,
							 got[i] + (size_t)j);
						ok = false;
						break;
					}
				got[i] += (size_t)r;
				if (got[i] == len)
					done++;
			}
		}
	}
	free(sent);
	free(got);
	free(p);
	return ok && done == n;
}

struct host_agent {
	char path[108];
	unsigned streams;
	size_t bytes;
	bool ok;
	char why[256];
};

static void *server_side(void *arg)
{
	struct host_agent *a = arg;
	int fds[64];
	for (unsigned i = 0; i < a->streams; i++) {
		fds[i] = vsock_dial(a->path, PORT);
		if (fds[i] < 0) {
			snprintf(a->why, sizeof(a->why), "stream %u: no OK from CONNECT", i);
			a->ok = false;
			for (unsigned j = 0; j < i; j++)
				close(fds[j]);
			return NULL;
		}
	}
	a->ok = echo_streams(fds, a->streams, a->bytes, a->why, sizeof(a->why));
	for (unsigned i = 0; i < a->streams; i++)
		close(fds[i]);
	return NULL;
}

static void run_server_test(unsigned streams, size_t bytes)
{
	require_kvm();
	struct host_agent a = {.streams = streams, .bytes = bytes};
	uds_path(a.path, sizeof(a.path), "srv");
	char vsock[160], cmdline[160];
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s", a.path);
	snprintf(cmdline, sizeof(cmdline),
		 "check=vsock_server vsock_port=%d vsock_conns=%u vsock_expect=%u vsock_secs=240",
		 PORT, streams, streams);
	pthread_t th;
	pthread_create(&th, NULL, server_side, &a);
	const char *args[] = {"run",	 "--kernel", unikernel_path(), "--mem-mib", "256",
			      "--vsock", vsock,	     "--cmdline",      cmdline,	    NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	pthread_join(th, NULL);
	cr_assert(a.ok, "host side: %s\n%s", a.why, ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "CHECK vsock_server PASS"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	cr_assert(eq(int, access(a.path, F_OK), -1), "Ember removes its socket at exit");
	ember_run_free(&r);
}

Test(vsock_it, sixteen_mib_host_to_guest_and_back)
{
	run_server_test(1, 16u << 20);
}

Test(vsock_it, sixty_four_concurrent_streams)
{
	run_server_test(64, 256u << 10);
}

struct listener {
	char path[100];
	int lfd;
	bool ok;
	char why[256];
};

/* Accept the guest's connection on PATH_PORT and echo everything back. */
static void *client_side(void *arg)
{
	struct listener *l = arg;
	int fd = accept(l->lfd, NULL, NULL);
	if (fd < 0) {
		snprintf(l->why, sizeof(l->why), "accept: %s", strerror(errno));
		return NULL;
	}
	unsigned char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(fd, buf + off, (size_t)(r - off));
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	l->ok = true;
	close(fd);
	return NULL;
}

Test(vsock_it, guest_connects_to_the_host)
{
	require_kvm();
	char base[80];
	uds_path(base, sizeof(base), "cli");
	struct listener l = {0};
	snprintf(l.path, sizeof(l.path), "%s_%d", base, PORT);
	unlink(l.path);
	l.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", l.path);
	cr_assert(eq(int, bind(l.lfd, (struct sockaddr *)&a, sizeof(a)), 0));
	cr_assert(eq(int, listen(l.lfd, 4), 0));
	pthread_t th;
	pthread_create(&th, NULL, client_side, &l);
	char vsock[160], cmdline[160];
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s", base);
	snprintf(cmdline, sizeof(cmdline),
		 "check=vsock_client vsock_port=%d vsock_bytes=16777216 vsock_secs=240", PORT);
	const char *args[] = {"run",	 "--kernel", unikernel_path(), "--mem-mib", "256",
			      "--vsock", vsock,	     "--cmdline",      cmdline,	    NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	shutdown(l.lfd, SHUT_RDWR);
	close(l.lfd);
	pthread_join(th, NULL);
	unlink(l.path);
	cr_assert(ne(ptr, strstr(r.out, "CHECK vsock_client PASS bytes=16777216"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}
