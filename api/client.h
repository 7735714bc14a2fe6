/* A client of the control API: connect to a monitor's socket, send one Request (with open files
 * if asked), get its Response. emberctl, the tests and the benchmarks use it. Errors go through
 * common/err.h. */
#pragma once

#include "api/ember.pb-c.h"

/* Connect to the monitor listening on the Unix socket `path`. Fails at once when nobody listens
 * there; otherwise waits up to timeout_ms for the connection, and every later send or receive
 * on the socket waits up to timeout_ms for progress (0: no limit). Returns the socket
 * (O_CLOEXEC), or a negative errno with err set (ETIMEDOUT on a timeout). */
int api_client_connect(const char *path, int timeout_ms);

/* Send `req` with the descriptors fds[0..nfds) (at most API_FRAME_MAXFDS; they stay the
 * caller's), then wait for the Response. On 0, *resp is the reply whatever its status: free it
 * with ember__v1__response__free_unpacked(*resp, NULL). A negative errno with err set when the
 * exchange failed: the socket, the framing, or a reply that does not decode. */
int api_client_call(int sock, const Ember__V1__Request *req, const int *fds, unsigned nfds,
		    Ember__V1__Response **resp);

/* connect + call + close, for one request. */
int api_client_request(const char *path, int timeout_ms, const Ember__V1__Request *req,
		       const int *fds, unsigned nfds, Ember__V1__Response **resp);

/* The name ember.proto gives a status ("NOT_FOUND"); "STATUS_<n>" for one this build does not
 * know (a newer monitor). The buffer behind an unknown one is thread-local. */
const char *api_status_name(Ember__V1__Status status);
