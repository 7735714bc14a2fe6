/* Framing for the control API: a 4-byte big-endian length, then the message. Descriptors may
 * arrive on any byte of a frame (the sender attaches them to the first); we collect them all
 * and refuse a frame that brings more than API_FRAME_MAXFDS. */
#include "api/frame.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HDR_LEN 4

union fd_cmsg_buf {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * API_FRAME_MAXFDS)];
};

static void close_fds(int *fds, unsigned *nfds)
{
	for (unsigned i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
}

static int send_frame(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
	if (len > API_FRAME_MAX)
		return err_set(EMSGSIZE, "sending frame: %zu bytes is above the limit of %u", len,
			       API_FRAME_MAX);
	if (nfds > API_FRAME_MAXFDS)
		return err_set(EINVAL, "sending frame: %u descriptors, at most %d may go with one",
			       nfds, API_FRAME_MAXFDS);
	uint8_t hdr[HDR_LEN] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
				(uint8_t)len};
	union fd_cmsg_buf control;
	memset(&control, 0, sizeof(control));
	size_t total = HDR_LEN + len, sent = 0;
	while (sent < total) {
		struct iovec iov[2];
		int niov = 0;
		if (sent < HDR_LEN)
			iov[niov++] = (struct iovec){hdr + sent, HDR_LEN - sent};
		size_t body_done = sent > HDR_LEN ? sent - HDR_LEN : 0;
		if (len > body_done)
			iov[niov++] = (struct iovec){(uint8_t *)msg + body_done, len - body_done};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
		if (sent == 0 && nfds > 0) {
			mh.msg_control = control.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return err_set(ETIMEDOUT,
					       "sending frame: timed out after %zu of %zu bytes",
					       sent, total);
			return err_errno("sending frame");
		}
		sent += (size_t)n;
	}
	return 0;
}

int api_frame_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
	return send_frame(sock, msg, len, fds, nfds) < 0 ? -1 : 0;
}

/* Take the descriptors of every SCM_RIGHTS message into fds[*nfds..]. More than fit (or a
 * truncated control buffer) closes them all: a frame with too many files is refused whole. */
static int take_fds(struct msghdr *mh, int fds[API_FRAME_MAXFDS], unsigned *nfds)
{
	bool too_many = (mh->msg_flags & MSG_CTRUNC) != 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const uint8_t *data = CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			if (*nfds < API_FRAME_MAXFDS) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				too_many = true;
			}
		}
	}
	if (too_many) {
		close_fds(fds, nfds);
		return err_set(EMSGSIZE, "receiving frame: more than %d descriptors came with it",
			       API_FRAME_MAXFDS);
	}
	return 0;
}

/* One recvmsg of at most `want` bytes. Returns bytes read, 0 at end of stream, or -1 with errno
 * set (EAGAIN included) or, when the descriptors were refused, with err set and errno EMSGSIZE. */
static ssize_t recv_some(int sock, void *buf, size_t want, int fds[API_FRAME_MAXFDS],
			 unsigned *nfds)
{
	union fd_cmsg_buf control;
	struct iovec iov = {buf, want};
	struct msghdr mh = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.buf,
	    .msg_controllen = sizeof(control.buf),
	};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (take_fds(&mh, fds, nfds) < 0) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

static uint32_t header_length(const uint8_t hdr[HDR_LEN])
{
	return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 |
	       (uint32_t)hdr[3];
}

static int recv_error(const char *what)
{
	if (errno == EMSGSIZE)
		return err_wrap(-EMSGSIZE, "%s", what);
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return err_set(ETIMEDOUT, "%s: timed out", what);
	return err_errno("%s", what);
}

/* Read exactly `want` bytes; `what` names the part for messages. Returns 1, 0 for end of stream
 * before the first byte, or a negative errno with err set. */
static int recv_exact(int sock, uint8_t *buf, size_t want, const char *what,
		      int fds[API_FRAME_MAXFDS], unsigned *nfds)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = recv_some(sock, buf + got, want - got, fds, nfds);
		if (n < 0)
			return recv_error(what);
		if (n == 0) {
			if (got == 0)
				return 0;
			return err_set(EPIPE, "%s: truncated: end of stream after %zu of %zu bytes",
				       what, got, want);
		}
		got += (size_t)n;
	}
	return 1;
}

int api_frame_recv(int sock, uint8_t **msg, size_t *len, int fds[API_FRAME_MAXFDS], unsigned *nfds)
{
	*msg = NULL;
	*len = 0;
	*nfds = 0;
	uint8_t hdr[HDR_LEN];
	int r = recv_exact(sock, hdr, HDR_LEN, "receiving frame header", fds, nfds);
	if (r <= 0) {
		close_fds(fds, nfds);
		return r < 0 ? -1 : 0;
	}
	uint32_t body = header_length(hdr);
	if (body > API_FRAME_MAX) {
		close_fds(fds, nfds);
		err_set(EMSGSIZE, "receiving frame: length %u is above the limit of %u", body,
			API_FRAME_MAX);
		return -1;
	}
	uint8_t *buf = malloc(body ? body : 1);
	if (!buf) {
		close_fds(fds, nfds);
		err_set(ENOMEM, "receiving frame: no memory for %u bytes", body);
		return -1;
	}
	r = recv_exact(sock, buf, body, "receiving frame body", fds, nfds);
	if (r == 0)
		r = err_set(EPIPE,
			    "receiving frame body: truncated: end of stream after the header");
	if (r < 0) {
		free(buf);
		close_fds(fds, nfds);
		return -1;
	}
	*msg = buf;
	*len = body;
	return 1;
}

void api_frame_reader_init(struct api_frame_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void api_frame_reader_reset(struct api_frame_reader *r)
{
	free(r->msg);
	close_fds(r->fds, &r->nfds);
	api_frame_reader_init(r);
}

static bool frame_complete(const struct api_frame_reader *r)
{
	return r->have >= HDR_LEN && r->have - HDR_LEN == r->len;
}

enum api_frame_status api_frame_read(struct api_frame_reader *r, int sock)
{
	/* A frame returned READY earlier and not reset: whatever the caller did not take goes. */
	if (frame_complete(r))
		api_frame_reader_reset(r);
	if (r->have >= HDR_LEN && r->len > API_FRAME_MAX)
		return API_FRAME_TOO_BIG;
	if (r->have >= HDR_LEN && !r->msg)
		return API_FRAME_ERROR; /* the allocation failed before */
	for (;;) {
		uint8_t *dst;
		size_t want;
		if (r->have < HDR_LEN) {
			dst = r->hdr + r->have;
			want = HDR_LEN - r->have;
		} else {
			dst = r->msg + (r->have - HDR_LEN);
			want = r->len - (r->have - HDR_LEN);
		}
		ssize_t n = recv_some(sock, dst, want, r->fds, &r->nfds);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return API_FRAME_AGAIN;
			recv_error("reading frame");
			return API_FRAME_ERROR;
		}
		if (n == 0) {
			api_frame_reader_reset(r);
			return API_FRAME_EOF;
		}
		r->have += (size_t)n;
		if (r->have == HDR_LEN) {
			r->len = header_length(r->hdr);
			if (r->len > API_FRAME_MAX) {
				err_set(EMSGSIZE,
					"reading frame: length %u is above the limit of %u", r->len,
					API_FRAME_MAX);
				return API_FRAME_TOO_BIG;
			}
			r->msg = malloc(r->len ? r->len : 1);
			if (!r->msg) {
				err_set(ENOMEM, "reading frame: no memory for %u bytes", r->len);
				return API_FRAME_ERROR;
			}
		}
		if (frame_complete(r))
			return API_FRAME_READY;
	}
}
