/* The guest answering: one vsock exchange with the unikernel's vsock_server, driven without
 * blocking so that one loop can time a hundred guests at once.
 *
 * Ember (hybrid vsock): connect to the Unix socket, "CONNECT <port>\n", wait for "OK <n>\n", send
 * the payload, read the echo. QEMU (vhost-vsock): connect AF_VSOCK to (cid, port), send, read the
 * echo. A refused or closed connection before the answer is not a failure: a cold-booted guest
 * is not listening yet, and a monitor that is still starting has no socket yet; those retry. */
#include "snapbench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
	S_WAIT,	      /* not connected; next attempt at next_try */
	S_CONNECTING, /* connect() in progress */
	S_READ_OK,    /* UDS: "CONNECT" sent, waiting for "OK ..." */
	S_READ_ECHO,  /* payload sent, reading it back */
	S_DONE,
	S_FAILED,
};

/* Retry delays (ms). No socket yet: the folder's inotify usually says so first. A socket that
 * exists but refuses is between bind() and listen(): a few microseconds. */
#define RETRY_NO_SOCKET_MS 1.0
#define RETRY_REFUSED_MS   0.02
#define RETRY_VSOCK_MS	   0.1
#define RETRY_CLOSED_MS	   0.1

static void init_common(struct sb_probe *p, unsigned port, unsigned seed)
{
	p->port = port;
	p->fd = -1;
	p->state = S_WAIT;
	p->next_try = 0;
	p->no_socket_retry_ms = RETRY_NO_SOCKET_MS;
	p->t_connected = p->t_ok = p->t_echo = -1;
	/* A payload of its own per probe: an echo from some other connection would not match. */
	uint32_t x = seed * 2654435761u + 0x9e3779b9u;
	for (size_t i = 0; i < sizeof(p->payload); i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		p->payload[i] = (unsigned char)x;
	}
}

void sb_probe_init_uds(struct sb_probe *p, const char *path, unsigned port, unsigned seed)
{
	memset(p, 0, sizeof(*p));
	p->kind = PROBE_UDS;
	snprintf(p->path, sizeof(p->path), "%s", path);
	init_common(p, port, seed);
}

void sb_probe_init_vsock(struct sb_probe *p, unsigned cid, unsigned port, unsigned seed)
{
	memset(p, 0, sizeof(*p));
	p->kind = PROBE_VSOCK;
	p->cid = cid;
	init_common(p, port, seed);
}

static void fail(struct sb_probe *p, const char *fmt, const char *detail)
{
	snprintf(p->error, sizeof(p->error), fmt, detail);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->state = S_FAILED;
	p->failed = true;
}

static void retry_later(struct sb_probe *p, double delay_ms)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->state = S_WAIT;
	p->sent = p->got = p->line_len = 0;
	p->t_connected = p->t_ok = -1;
	p->next_try = bench_now_ms() + delay_ms;
}

static bool retryable_connect_error(int e)
{
	return e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == ECONNRESET || e == ENODEV ||
	       e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH;
}

static double retry_delay(const struct sb_probe *p, int e)
{
	if (p->kind == PROBE_VSOCK)
		return RETRY_VSOCK_MS;
	return e == ENOENT ? p->no_socket_retry_ms : RETRY_REFUSED_MS;
}

static bool send_all(struct sb_probe *p, const void *data, size_t n)
{
	/* A few dozen bytes into an empty socket buffer: one send() takes them all. */
	ssize_t w;
	do
		w = send(p->fd, data, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)n)
		return true;
	if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
		retry_later(p, RETRY_CLOSED_MS);
		return false;
	}
	fail(p, "send: %s", w < 0 ? strerror(errno) : "short write");
	return false;
}

static void connected(struct sb_probe *p)
{
	p->t_connected = bench_now_ms();
	if (p->kind == PROBE_UDS) {
		char line[32];
		int n = snprintf(line, sizeof(line), "CONNECT %u\n", p->port);
		if (send_all(p, line, (size_t)n))
			p->state = S_READ_OK;
		return;
	}
	p->t_ok = p->t_connected; /* AF_VSOCK: connected means the guest accepted */
	if (send_all(p, p->payload, sizeof(p->payload)))
		p->state = S_READ_ECHO;
}

static void try_connect(struct sb_probe *p)
{
	p->attempts++;
	int domain = p->kind == PROBE_UDS ? AF_UNIX : AF_VSOCK;
	p->fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		fail(p, "socket: %s", strerror(errno));
		return;
	}
	int r;
	if (p->kind == PROBE_UDS) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", p->path);
		r = connect(p->fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_vm a = {
		    .svm_family = AF_VSOCK, .svm_cid = p->cid, .svm_port = p->port};
		r = connect(p->fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (r == 0) {
		connected(p);
		return;
	}
	int e = errno;
	if (e == EINPROGRESS || e == EINTR) {
		p->state = S_CONNECTING;
		return;
	}
	if (retryable_connect_error(e)) {
		retry_later(p, retry_delay(p, e));
		return;
	}
	fail(p, "connect: %s", strerror(e));
}

int sb_probe_poll_events(struct sb_probe *p, short *events)
{
	if (p->state == S_WAIT && bench_now_ms() >= p->next_try)
		try_connect(p);
	switch (p->state) {
	case S_CONNECTING:
		*events = POLLOUT;
		return p->fd;
	case S_READ_OK:
	case S_READ_ECHO:
		*events = POLLIN;
		return p->fd;
	default:
		return -1;
	}
}

void sb_probe_kick(struct sb_probe *p)
{
	if (p->state == S_WAIT)
		p->next_try = 0;
}

/* "OK <port>\n": the guest accepted; anything else is Ember refusing. */
static void read_ok(struct sb_probe *p)
{
	for (;;) {
		char c;
		ssize_t got = recv(p->fd, &c, 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		if (got <= 0) {
			/* Closed before OK: the guest refused or was not there yet. */
			retry_later(p, RETRY_CLOSED_MS);
			return;
		}
		if (c != '\n') {
			if (p->line_len + 1 >= sizeof(p->line)) {
				fail(p, "the hybrid vsock's answer is too long: %s", p->line);
				return;
			}
			p->line[p->line_len++] = c;
			p->line[p->line_len] = 0;
			continue;
		}
		if (strncmp(p->line, "OK ", 3) != 0) {
			fail(p, "expected \"OK <port>\" from the hybrid vsock, got \"%s\"",
			     p->line);
			return;
		}
		p->t_ok = bench_now_ms();
		if (send_all(p, p->payload, sizeof(p->payload)))
			p->state = S_READ_ECHO;
		return;
	}
}

static void read_echo(struct sb_probe *p)
{
	unsigned char buf[sizeof(p->payload)];
	for (;;) {
		ssize_t got = recv(p->fd, buf, sizeof(p->payload) - p->got, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		if (got < 0 && errno == ECONNRESET && p->got == 0) {
			retry_later(p, RETRY_CLOSED_MS);
			return;
		}
		if (got < 0) {
			fail(p, "reading the echo: %s", strerror(errno));
			return;
		}
		if (got == 0) {
			if (p->got == 0) {
				retry_later(p, RETRY_CLOSED_MS);
				return;
			}
			fail(p, "%s", "the connection closed in the middle of the echo");
			return;
		}
		if (memcmp(buf, p->payload + p->got, (size_t)got) != 0) {
			fail(p, "%s", "the echo differs from what was sent");
			return;
		}
		p->got += (size_t)got;
		if (p->got == sizeof(p->payload)) {
			p->t_echo = bench_now_ms();
			p->done = true;
			p->state = S_DONE;
			close(p->fd);
			p->fd = -1;
			return;
		}
	}
}

void sb_probe_step(struct sb_probe *p, short revents)
{
	switch (p->state) {
	case S_CONNECTING: {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return;
		int e = 0;
		socklen_t len = sizeof(e);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
			e = errno;
		if (e == 0) {
			connected(p);
			return;
		}
		if (retryable_connect_error(e))
			retry_later(p, retry_delay(p, e));
		else
			fail(p, "connect: %s", strerror(e));
		return;
	}
	case S_READ_OK:
		if (revents & (POLLIN | POLLHUP | POLLERR))
			read_ok(p);
		return;
	case S_READ_ECHO:
		if (revents & (POLLIN | POLLHUP | POLLERR))
			read_echo(p);
		return;
	default:
		return;
	}
}

void sb_probe_close(struct sb_probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}
