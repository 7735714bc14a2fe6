#include "api/client.h"
#include "api/frame.h"
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int set_timeouts(int sock, int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return err_errno("SO_SNDTIMEO");
	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return err_errno("SO_RCVTIMEO");
	return 0;
}

int api_client_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (!path || !*path)
		return err_set(EINVAL, "no API socket given");
	if (timeout_ms < 0)
		return err_set(EINVAL, "%s: negative timeout %d ms", path, timeout_ms);
	size_t len = strlen(path);
	if (len >= sizeof(addr.sun_path))
		return err_set(ENAMETOOLONG, "%s: a socket path has at most %zu bytes", path,
			       sizeof(addr.sun_path) - 1);
	memcpy(addr.sun_path, path, len + 1);

	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return err_errno("%s: socket", path);
	/* A blocking connect to a Unix socket waits only while the listener's backlog is full, and
	 * for at most SO_SNDTIMEO: that is the connect timeout. */
	int r = timeout_ms > 0 ? set_timeouts(sock, timeout_ms) : 0;
	if (r < 0) {
		close(sock);
		return err_wrap(r, "%s", path);
	}
	do
		r = connect(sock, (struct sockaddr *)&addr, sizeof(addr));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		close(sock);
		errno = e;
		if (e == ENOENT)
			return err_set(ENOENT,
				       "%s: no such socket (is a monitor running with "
				       "--api-sock there?)",
				       path);
		if (e == ECONNREFUSED)
			return err_set(ECONNREFUSED, "%s: nobody listens on this socket", path);
		if (e == EAGAIN)
			return err_set(ETIMEDOUT,
				       "%s: connect timed out after %d ms (the monitor's "
				       "queue of connections stayed full)",
				       path, timeout_ms);
		return err_errno("%s: connect", path);
	}
	return sock;
}

int api_client_call(int sock, const Ember__V1__Request *req, const int *fds, unsigned nfds,
		    Ember__V1__Response **resp)
{
	*resp = NULL;
	size_t len = ember__v1__request__get_packed_size(req);
	if (len > API_FRAME_MAX)
		return err_set(EMSGSIZE, "request of %zu bytes is above the limit of %u", len,
			       API_FRAME_MAX);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return err_set(ENOMEM, "no memory for a request of %zu bytes", len);
	ember__v1__request__pack(req, buf);
	int r = api_frame_send(sock, buf, len, fds, nfds);
	free(buf);
	if (r < 0)
		return err_wrap(-EIO, "sending the request");

	uint8_t *msg;
	size_t msg_len;
	int rfds[API_FRAME_MAXFDS];
	unsigned nrfds;
	r = api_frame_recv(sock, &msg, &msg_len, rfds, &nrfds);
	if (r < 0)
		return err_wrap(-EPROTO, "waiting for the reply");
	if (r == 0)
		return err_set(ECONNRESET, "the monitor closed the connection without a reply");
	/* A Response carries no files; any that came along are not ours to keep. */
	for (unsigned i = 0; i < nrfds; i++)
		close(rfds[i]);
	*resp = ember__v1__response__unpack(NULL, msg_len, msg);
	free(msg);
	if (!*resp)
		return err_set(EPROTO, "the reply (%zu bytes) is not a valid ember.v1.Response",
			       msg_len);
	return 0;
}

int api_client_request(const char *path, int timeout_ms, const Ember__V1__Request *req,
		       const int *fds, unsigned nfds, Ember__V1__Response **resp)
{
	*resp = NULL;
	int sock = api_client_connect(path, timeout_ms);
	if (sock < 0)
		return sock;
	int r = api_client_call(sock, req, fds, nfds, resp);
	close(sock);
	return r;
}

const char *api_status_name(Ember__V1__Status status)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&ember__v1__status__descriptor, (int)status);
	if (v)
		return v->name;
	static __thread char unknown[32];
	snprintf(unknown, sizeof(unknown), "STATUS_%d", (int)status);
	return unknown;
}
