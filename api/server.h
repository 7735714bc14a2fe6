/* The control API's server: a thread of its own that accepts clients on a Unix stream socket,
 * reads framed requests and hands each one to the vmm thread, whose handler builds the reply.
 * The API thread never touches VM state; it only moves bytes and descriptors. One request is
 * served at a time; many clients may be connected, and a client that stalls or disconnects
 * mid-frame affects no one else. */
#pragma once

#include "api/ember.pb-c.h"
#include "api/frame.h"
#include "common/event_loop.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define API_MAX_CLIENTS 64

/* One request, as the vmm thread's handler sees it. */
struct api_call {
	const Ember__V1__Request *req;
	/* Descriptors that came with the request; the handler takes one by setting it to -1.
	 * The rest are closed after the reply. */
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	pid_t peer_pid; /* SO_PEERCRED of the client */
	uid_t peer_uid;
	/* Set by the handler: the packed Response (malloc'd; the server frees it) and its status.
	 */
	uint8_t *reply;
	size_t reply_len;
	Ember__V1__Status status;
};

typedef void (*api_handler_fn)(void *ctx, struct api_call *call);

struct api_server;

/* Listen on `path` (a stale socket there is replaced, a live one or any other file is an
 * error), register the hand-over with `vmm_loop` and start the API thread. `handler` runs on
 * the thread that runs `vmm_loop`. */
int api_server_start(struct api_server **out, const char *path, struct event_loop *vmm_loop,
		     api_handler_fn handler, void *ctx);
/* Stop the thread (a reply being written is finished first), close every client and remove
 * the socket file. Call it on the vmm thread (never while its handler runs). NULL is fine. */
void api_server_stop(struct api_server *s);

struct api_server_stats {
	uint64_t requests; /* frames handed to the vmm thread or answered by the server */
	uint64_t errors;   /* replies with a status other than OK */
	uint64_t clients;  /* connections accepted */
};
void api_server_get_stats(const struct api_server *s, struct api_server_stats *out);

/* Pack a reply with just a status and a message (for the server's own refusals and for
 * handlers). Returns 0 or a negative errno. */
int api_pack_status(Ember__V1__Status status, const char *message, uint8_t **out, size_t *len);
