/* The vsock rows' host side: connections to the guest's echo server, through Ember's Unix
 * socket ("CONNECT <port>\n" / "OK <port>\n") or through AF_VSOCK (QEMU's vhost-vsock). */
#include "devices.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int wait_fd(int fd, short events, double deadline_ms)
{
	for (;;) {
		double left = deadline_ms - bench_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int k = poll(&p, 1, left < 1 ? 1 : (int)left);
		if (k < 0 && errno == EINTR) {
			if (bench_interrupted)
				return 0;
			continue;
		}
		return k;
	}
}

/* The "OK <port>\n" line, and not a byte more. */
static bool read_ok_line(int fd, double deadline_ms, char *why, size_t why_size)
{
	char line[64];
	size_t have = 0;
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline_ms) <= 0) {
			snprintf(why, why_size, "no OK line in time");
			return false;
		}
		ssize_t n = recv(fd, line + have, sizeof(line) - 1 - have, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			snprintf(why, why_size, "closed before the OK line (%s)",
				 n < 0 ? strerror(errno) : "refused?");
			return false;
		}
		char *nl = memchr(line + have, '\n', (size_t)n);
		size_t take = nl ? (size_t)(nl - (line + have)) + 1 : (size_t)n;
		if (recv(fd, line + have, take, 0) != (ssize_t)take) {
			snprintf(why, why_size, "recv: %s", strerror(errno));
			return false;
		}
		have += take;
		line[have] = 0;
		if (nl) {
			if (strncmp(line, "OK ", 3) != 0) {
				line[strcspn(line, "\n")] = 0;
				snprintf(why, why_size, "answer \"%s\"", line);
				return false;
			}
			return true;
		}
		if (have >= sizeof(line) - 1) {
			snprintf(why, why_size, "answer line too long");
			return false;
		}
	}
}

int vs_dial(const struct vs_target *t, double timeout_ms, char *why, size_t why_size)
{
	double deadline = bench_now_ms() + timeout_ms;
	int fd;
	if (t->uds) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			snprintf(why, why_size, "socket: %s", strerror(errno));
			return -1;
		}
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", t->path);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			snprintf(why, why_size, "connect %s: %s", t->path, strerror(errno));
			close(fd);
			return -1;
		}
		char line[32];
		int n = snprintf(line, sizeof(line), "CONNECT %u\n", t->port);
		if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
			snprintf(why, why_size, "send CONNECT: %s", strerror(errno));
			close(fd);
			return -1;
		}
		if (!read_ok_line(fd, deadline, why, why_size)) {
			close(fd);
			return -1;
		}
		return fd;
	}
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, why_size, "socket(AF_VSOCK): %s", strerror(errno));
		return -1;
	}
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = t->cid, .svm_port = t->port};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(why, why_size, "connect cid %u port %u: %s", t->cid, t->port,
				 strerror(errno));
			close(fd);
			return -1;
		}
		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			snprintf(why, why_size, "connect cid %u port %u: no answer in time", t->cid,
				 t->port);
			close(fd);
			return -1;
		}
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			snprintf(why, why_size, "connect cid %u port %u: %s", t->cid, t->port,
				 strerror(err));
			close(fd);
			return -1;
		}
	}
	return fd;
}

int vs_dial_retry(const struct vs_target *t, double deadline_ms, const struct abort_check *a,
		  char *why, size_t why_size)
{
	for (;;) {
		if (should_abort(a)) {
			char last[160];
			snprintf(last, sizeof(last), "%s", why[0] ? why : "no attempt yet");
			snprintf(why, why_size, "%s before the guest accepted (last attempt: %s)",
				 bench_interrupted ? "interrupted" : "the monitor exited", last);
			return -1;
		}
		double left = deadline_ms - bench_now_ms();
		if (left <= 0)
			return -1; /* why holds the last attempt's reason */
		int fd = vs_dial(t, left < 2000 ? left : 2000, why, why_size);
		if (fd >= 0)
			return fd;
		usleep(20000);
	}
}

/* ---------------------------------------------------------------------- stream */

#define CHUNK (256u << 10)

static uint8_t pattern_at(uint64_t i)
{
	return (uint8_t)(i * 7 + 3);
}

void vs_stream(int fd, uint64_t bytes, double deadline_ms, const struct abort_check *a,
	       struct vs_stream_result *r)
{
	memset(r, 0, sizeof(*r));
	/* The pattern repeats every 256 bytes: one buffer serves every offset. */
	uint8_t *pat = malloc(CHUNK + 256), *in = malloc(CHUNK);
	if (!pat || !in) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		free(pat);
		free(in);
		return;
	}
	for (uint64_t i = 0; i < CHUNK + 256; i++)
		pat[i] = pattern_at(i);
	double t0 = bench_now_ms(), t_end = -1;
	while (r->received < bytes) {
		if (should_abort(a)) {
			snprintf(r->why, sizeof(r->why),
				 "the monitor exited after %llu of %llu bytes came back",
				 (unsigned long long)r->received, (unsigned long long)bytes);
			goto out;
		}
		if (bench_now_ms() > deadline_ms) {
			snprintf(r->why, sizeof(r->why),
				 "timed out after %llu of %llu bytes came back",
				 (unsigned long long)r->received, (unsigned long long)bytes);
			goto out;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN | (r->sent < bytes ? POLLOUT : 0)};
		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((p.revents & POLLOUT) && r->sent < bytes) {
			uint64_t k = bytes - r->sent < CHUNK ? bytes - r->sent : CHUNK;
			ssize_t w = send(fd, pat + r->sent % 256, k, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				r->sent += (uint64_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				snprintf(r->why, sizeof(r->why), "send after %llu bytes: %s",
					 (unsigned long long)r->sent, strerror(errno));
				goto out;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, in, CHUNK, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				snprintf(r->why, sizeof(r->why),
					 "stream closed after %llu of %llu bytes came back (%s)",
					 (unsigned long long)r->received, (unsigned long long)bytes,
					 n < 0 ? strerror(errno) : "EOF");
				goto out;
			}
			if (r->received + (uint64_t)n > bytes ||
			    memcmp(in, pat + r->received % 256, (size_t)n) != 0) {
				snprintf(r->why, sizeof(r->why),
					 "the echo differs from what was sent near byte %llu",
					 (unsigned long long)r->received);
				goto out;
			}
			r->received += (uint64_t)n;
			if (r->received == bytes)
				t_end = bench_now_ms();
		}
	}
	r->secs = (t_end - t0) / 1e3;
	r->mbs = r->secs > 0 ? (double)bytes / r->secs / 1e6 : 0;
	r->ok = true;
out:
	free(pat);
	free(in);
}

/* ----------------------------------------------------------------- connections */

void vs_conn_rate(const struct vs_target *t, double secs, const struct abort_check *a,
		  struct vs_conn_result *r)
{
	memset(r, 0, sizeof(*r));
	size_t cap = 4096, n = 0;
	double *lat = malloc(cap * sizeof(*lat));
	if (!lat) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		return;
	}
	double t0 = bench_now_ms(), end = t0 + secs * 1e3;
	char why[160];
	while (bench_now_ms() < end) {
		if (should_abort(a)) {
			snprintf(r->why, sizeof(r->why),
				 "the monitor exited during the connection loop");
			free(lat);
			return;
		}
		double c0 = bench_now_ms();
		why[0] = 0;
		int fd = vs_dial(t, 5000, why, sizeof(why));
		double c1 = bench_now_ms();
		if (fd < 0) {
			if (!r->failures)
				snprintf(r->first_failure, sizeof(r->first_failure), "%s", why);
			r->failures++;
			usleep(1000);
			continue;
		}
		close(fd);
		r->conns++;
		if (n == cap) {
			cap *= 2;
			double *bigger = realloc(lat, cap * sizeof(*lat));
			if (!bigger)
				continue;
			lat = bigger;
		}
		lat[n++] = (c1 - c0) * 1e3;
	}
	r->secs = (bench_now_ms() - t0) / 1e3;
	r->conns_per_s = r->secs > 0 ? (double)r->conns / r->secs : 0;
	bench_stats(lat, (int)n, &r->setup_us);
	free(lat);
	if (!r->conns) {
		snprintf(r->why, sizeof(r->why), "no connection succeeded (%s)", r->first_failure);
		return;
	}
	r->ok = true;
}
