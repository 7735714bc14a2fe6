/* The vmm thread's loop: epoll over file descriptors, each with the callback that owns it. The
 * loop only dispatches; owners decide what readiness means. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef void (*event_fn)(void *ctx, uint32_t events);

#define EVENT_LOOP_MAX 512 /* vsock alone may hold 256 connection sockets */

struct event_handler {
	int fd;
	event_fn fn;
	void *ctx;
};

struct event_loop {
	int epfd;
	bool quit;
	struct event_handler handlers[EVENT_LOOP_MAX];
};

int event_loop_init(struct event_loop *l);
void event_loop_destroy(struct event_loop *l);
int event_loop_add(struct event_loop *l, int fd, uint32_t events, event_fn fn, void *ctx);
/* Change the events watched for fd (0: none, until changed again). */
int event_loop_modify(struct event_loop *l, int fd, uint32_t events);
void event_loop_remove(struct event_loop *l, int fd);
/* Dispatch until a callback sets l->quit. */
int event_loop_run(struct event_loop *l);
/* Wait up to timeout_ms for events and dispatch them once; returns how many were ready. */
int event_loop_run_once(struct event_loop *l, int timeout_ms);
