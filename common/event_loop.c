#include "common/event_loop.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int event_loop_init(struct event_loop *l)
{
	memset(l, 0, sizeof(*l));
	for (unsigned i = 0; i < EVENT_LOOP_MAX; i++)
		l->handlers[i].fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return err_errno("epoll_create1");
	return 0;
}

void event_loop_destroy(struct event_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int event_loop_add(struct event_loop *l, int fd, uint32_t events, event_fn fn, void *ctx)
{
	for (unsigned i = 0; i < EVENT_LOOP_MAX; i++) {
		struct event_handler *h = &l->handlers[i];
		if (h->fd >= 0)
			continue;
		struct epoll_event ev = {.events = events, .data.ptr = h};
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return err_errno("epoll_ctl ADD fd %d", fd);
		*h = (struct event_handler){fd, fn, ctx};
		return 0;
	}
	return err_set(ENOSPC, "event loop: more than %d file descriptors", EVENT_LOOP_MAX);
}

static struct event_handler *find(struct event_loop *l, int fd)
{
	for (unsigned i = 0; i < EVENT_LOOP_MAX; i++)
		if (l->handlers[i].fd == fd)
			return &l->handlers[i];
	return NULL;
}

int event_loop_modify(struct event_loop *l, int fd, uint32_t events)
{
	struct event_handler *h = find(l, fd);
	if (!h)
		return err_set(ENOENT, "event loop: fd %d not registered", fd);
	struct epoll_event ev = {.events = events, .data.ptr = h};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return err_errno("epoll_ctl MOD fd %d", fd);
	return 0;
}

void event_loop_remove(struct event_loop *l, int fd)
{
	struct event_handler *h = find(l, fd);
	if (!h)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	h->fd = -1;
}

int event_loop_run_once(struct event_loop *l, int timeout_ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(l->epfd, evs, 16, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : err_errno("epoll_wait");
	for (int i = 0; i < n && !l->quit; i++) {
		struct event_handler *h = evs[i].data.ptr;
		if (h->fd >= 0)
			h->fn(h->ctx, evs[i].events);
	}
	return n;
}

int event_loop_run(struct event_loop *l)
{
	while (!l->quit) {
		int r = event_loop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	return 0;
}
