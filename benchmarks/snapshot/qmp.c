/* Just enough QMP to make QEMU's migration file: one JSON object per line each way; events
 * ("event" lines) are skipped while waiting for a command's "return" or "error". */
#include "snapbench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - bench_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)ceil(left));
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

/* The next whole line (without its newline) into line; 0, or -1 with why. */
static int read_line(struct sb_qmp *q, double deadline, char *line, size_t ln, char *why, size_t n)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t l = (size_t)(nl - q->buf);
			snprintf(line, ln, "%.*s", (int)l, q->buf);
			memmove(q->buf, nl + 1, q->len - l - 1);
			q->len -= l + 1;
			return 0;
		}
		if (q->len == sizeof(q->buf)) {
			snprintf(why, n, "QMP: a line longer than %zu bytes", sizeof(q->buf));
			return -1;
		}
		int r = wait_fd(q->fd, POLLIN, deadline);
		if (r <= 0) {
			snprintf(why, n, "QMP: %s", r == 0 ? "no answer in time" : strerror(errno));
			return -1;
		}
		ssize_t got = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			snprintf(why, n, "QMP: %s",
				 got == 0 ? "QEMU closed the connection" : strerror(errno));
			return -1;
		}
		q->len += (size_t)got;
	}
}

int sb_qmp_cmd(struct sb_qmp *q, const char *json, double timeout_s, char *reply, size_t rn,
	       char *why, size_t n)
{
	double deadline = bench_now_ms() + timeout_s * 1e3;
	size_t len = strlen(json), off = 0;
	while (off < len) {
		if (wait_fd(q->fd, POLLOUT, deadline) <= 0) {
			snprintf(why, n, "QMP: cannot send %s", json);
			return -1;
		}
		ssize_t w = send(q->fd, json + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(why, n, "QMP: send: %s", strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	if (send(q->fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		snprintf(why, n, "QMP: send: %s", strerror(errno));
		return -1;
	}
	static char line[sizeof(q->buf)];
	for (;;) {
		if (read_line(q, deadline, line, sizeof(line), why, n) < 0)
			return -1;
		if (strstr(line, "\"event\""))
			continue;
		if (strstr(line, "\"error\"")) {
			snprintf(why, n, "QMP %s: %.160s", json, line);
			return -1;
		}
		if (strstr(line, "\"return\"")) {
			if (reply)
				snprintf(reply, rn, "%s", line);
			return 0;
		}
	}
}

int sb_qmp_open(struct sb_qmp *q, const char *path, double timeout_s, char *why, size_t n)
{
	memset(q, 0, sizeof(*q));
	double deadline = bench_now_ms() + timeout_s * 1e3;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0) {
			snprintf(why, n, "QMP: socket: %s", strerror(errno));
			return -1;
		}
		if (connect(q->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		int e = errno;
		close(q->fd);
		q->fd = -1;
		if ((e != ENOENT && e != ECONNREFUSED) || bench_now_ms() > deadline) {
			snprintf(why, n, "QMP: connect %s: %s", path, strerror(e));
			return -1;
		}
		usleep(2000);
	}
	char line[512];
	if (read_line(q, deadline, line, sizeof(line), why, n) < 0)
		goto fail;
	if (!strstr(line, "\"QMP\"")) {
		snprintf(why, n, "QMP: unexpected greeting %.100s", line);
		goto fail;
	}
	if (sb_qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}", timeout_s, NULL, 0, why, n) < 0)
		goto fail;
	return 0;
fail:
	sb_qmp_close(q);
	return -1;
}

void sb_qmp_close(struct sb_qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}
