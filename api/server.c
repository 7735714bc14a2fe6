#include "api/server.h"
#include "common/err.h"
#include "common/log.h"
#include "monitor/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A client that does not take its reply within this time is dropped, so it cannot hold up the
 * API thread (and with it every other client). */
#define REPLY_SEND_TIMEOUT_MS 1000

enum { TAG_WAKE = -1, TAG_LISTEN = -2 };

struct api_client {
	int fd;
	pid_t pid;
	uid_t uid;
	struct api_frame_reader reader;
};

struct api_server {
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int epfd;
	int wake_efd; /* tells the API thread to end */
	int req_efd;  /* tells the vmm thread a call is pending */
	struct event_loop *vmm_loop;
	api_handler_fn handler;
	void *ctx;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct api_call *pending; /* handed over, not yet taken by the vmm thread */
	bool done;		  /* the vmm thread finished the handed-over call */
	bool stopping;

	struct api_client clients[API_MAX_CLIENTS];
	_Atomic uint64_t requests, errors, accepted;
};

int api_pack_status(Ember__V1__Status status, const char *message, uint8_t **out, size_t *len)
{
	Ember__V1__Response resp = EMBER__V1__RESPONSE__INIT;
	resp.status = status;
	resp.message = (char *)(message ? message : "");
	size_t n = ember__v1__response__get_packed_size(&resp);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	*len = ember__v1__response__pack(&resp, buf);
	*out = buf;
	return 0;
}

static void client_close(struct api_server *s, struct api_client *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	api_frame_reader_reset(&c->reader);
	c->fd = -1;
}

/* The client socket is non-blocking: wait a bounded time for room, then give up on it. */
static int send_all(int fd, const uint8_t *hdr, const uint8_t *msg, size_t len)
{
	struct iovec iov[2] = {{(void *)hdr, 4}, {(void *)msg, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	size_t left = 4 + len;
	while (left > 0) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int r = poll(&p, 1, REPLY_SEND_TIMEOUT_MS);
			if (r <= 0)
				return -ETIMEDOUT;
			continue;
		}
		left -= (size_t)n;
		while (n > 0 && mh.msg_iovlen > 0) {
			size_t take =
			    (size_t)n < mh.msg_iov->iov_len ? (size_t)n : mh.msg_iov->iov_len;
			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + take;
			mh.msg_iov->iov_len -= take;
			n -= (ssize_t)take;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

static bool send_reply(struct api_server *s, struct api_client *c, const uint8_t *msg, size_t len)
{
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			  (uint8_t)len};
	int r = send_all(c->fd, hdr, msg, len);
	if (r < 0) {
		log_info("API client (pid %d): reply not delivered (%s); dropping it", (int)c->pid,
			 strerror(-r));
		client_close(s, c);
		return false;
	}
	return true;
}

static bool reply_status(struct api_server *s, struct api_client *c, Ember__V1__Status status,
			 const char *message)
{
	uint8_t *buf;
	size_t len;
	atomic_fetch_add(&s->errors, status != EMBER__V1__STATUS__OK);
	if (api_pack_status(status, message, &buf, &len) < 0) {
		client_close(s, c);
		return false;
	}
	bool ok = send_reply(s, c, buf, len);
	free(buf);
	return ok;
}

/* Hand the call to the vmm thread and wait for its reply. False when the monitor is stopping
 * and the call was not served. */
static bool hand_over(struct api_server *s, struct api_call *call)
{
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return false;
	}
	s->pending = call;
	s->done = false;
	pthread_mutex_unlock(&s->lock);
	uint64_t one = 1;
	if (write(s->req_efd, &one, sizeof(one)) < 0)
		log_warn("API: waking the vmm thread: %s", strerror(errno));
	pthread_mutex_lock(&s->lock);
	while (!s->done && !s->stopping)
		pthread_cond_wait(&s->cond, &s->lock);
	bool served = s->done;
	s->pending = NULL;
	pthread_mutex_unlock(&s->lock);
	return served;
}

static void serve_frame(struct api_server *s, struct api_client *c)
{
	struct api_frame_reader *r = &c->reader;
	atomic_fetch_add(&s->requests, 1);
	Ember__V1__Request *req = ember__v1__request__unpack(NULL, r->len, r->msg);
	if (!req) {
		reply_status(s, c, EMBER__V1__STATUS__INVALID_ARGUMENT,
			     "malformed request: the frame is not an ember.v1.Request message");
		return;
	}
	if (req->op_case == EMBER__V1__REQUEST__OP__NOT_SET) {
		ember__v1__request__free_unpacked(req, NULL);
		reply_status(s, c, EMBER__V1__STATUS__INVALID_ARGUMENT,
			     "the request names no operation this monitor knows (op not set, or "
			     "an operation from a newer API)");
		return;
	}
	struct api_call call = {
	    .req = req, .nfds = r->nfds, .peer_pid = c->pid, .peer_uid = c->uid};
	memcpy(call.fds, r->fds, sizeof(call.fds));
	r->nfds = 0; /* the call owns them now */
	if (!hand_over(s, &call)) {
		reply_status(s, c, EMBER__V1__STATUS__INTERNAL, "the monitor is shutting down");
	} else if (!call.reply) {
		reply_status(s, c, EMBER__V1__STATUS__INTERNAL, "the monitor gave no reply");
	} else {
		atomic_fetch_add(&s->errors, call.status != EMBER__V1__STATUS__OK);
		send_reply(s, c, call.reply, call.reply_len);
	}
	free(call.reply);
	for (unsigned i = 0; i < call.nfds; i++)
		if (call.fds[i] >= 0)
			close(call.fds[i]);
	ember__v1__request__free_unpacked(req, NULL);
}

/* One frame per wake-up: the socket stays readable if more is queued, and epoll then serves
 * the other clients in between. */
static void serve_client(struct api_server *s, struct api_client *c)
{
	enum api_frame_status st = api_frame_read(&c->reader, c->fd);
	switch (st) {
	case API_FRAME_AGAIN:
		return;
	case API_FRAME_READY:
		serve_frame(s, c);
		if (c->fd >= 0)
			api_frame_reader_reset(&c->reader);
		return;
	case API_FRAME_TOO_BIG: {
		char msg[128];
		snprintf(msg, sizeof(msg), "frame of %u bytes refused: the limit is %u bytes",
			 c->reader.len, API_FRAME_MAX);
		atomic_fetch_add(&s->requests, 1);
		if (reply_status(s, c, EMBER__V1__STATUS__INVALID_ARGUMENT, msg))
			client_close(s, c);
		return;
	}
	case API_FRAME_ERROR:
		log_info("API client (pid %d): %s; closing it", (int)c->pid, err_msg());
		client_close(s, c);
		return;
	case API_FRAME_EOF:
		client_close(s, c);
		return;
	}
}

static void accept_clients(struct api_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("API: accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		struct api_client *c = NULL;
		for (unsigned i = 0; i < API_MAX_CLIENTS && !c; i++)
			if (s->clients[i].fd < 0)
				c = &s->clients[i];
		struct ucred cred = {0};
		socklen_t cl = sizeof(cred);
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
		if (!c) {
			log_warn("API: more than %d clients; refusing pid %d", API_MAX_CLIENTS,
				 (int)cred.pid);
			uint8_t *buf;
			size_t len;
			if (api_pack_status(EMBER__V1__STATUS__FAILED_PRECONDITION,
					    "too many API clients connected", &buf, &len) == 0) {
				uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
						  (uint8_t)(len >> 8), (uint8_t)len};
				send_all(fd, hdr, buf, len);
				free(buf);
			}
			close(fd);
			continue;
		}
		c->fd = fd;
		c->pid = cred.pid;
		c->uid = cred.uid;
		api_frame_reader_init(&c->reader);
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(c - s->clients)};
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warn("API: epoll_ctl: %s", strerror(errno));
			close(fd);
			c->fd = -1;
			continue;
		}
		atomic_fetch_add(&s->accepted, 1);
		log_info("API: client connected (pid %d, uid %d)", (int)cred.pid, (int)cred.uid);
	}
}

static void *api_thread(void *arg)
{
	struct api_server *s = arg;
	pthread_setname_np(pthread_self(), "ember-api");
	seccomp_install_or_exit(SECCOMP_API);
	for (;;) {
		struct epoll_event evs[16];
		int n = epoll_wait(s->epfd, evs, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("API: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			int64_t tag = (int64_t)evs[i].data.u64;
			if (tag == TAG_WAKE)
				return NULL;
			if (tag == TAG_LISTEN) {
				accept_clients(s);
				continue;
			}
			struct api_client *c = &s->clients[tag];
			if (c->fd >= 0)
				serve_client(s, c);
		}
	}
}

/* Runs on the vmm thread. */
static void on_request(void *ctx, uint32_t events)
{
	struct api_server *s = ctx;
	uint64_t v;
	if (read(s->req_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("API: reading the request eventfd: %s", strerror(errno));
	pthread_mutex_lock(&s->lock);
	struct api_call *call = s->pending;
	s->pending = NULL;
	pthread_mutex_unlock(&s->lock);
	if (!call)
		return;
	call->status = EMBER__V1__STATUS__OK;
	s->handler(s->ctx, call);
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int prepare_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_errno("API socket %s", path);
	if (!S_ISSOCK(st.st_mode))
		return err_set(EEXIST, "API socket %s: the path exists and is not a socket", path);
	/* A socket file nobody listens on is left over from a monitor that died: replace it. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_errno("socket");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path));
	int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	close(fd);
	if (r == 0)
		return err_set(EADDRINUSE, "API socket %s: another process is listening there",
			       path);
	if (e != ECONNREFUSED)
		return err_set(e, "API socket %s: %s", path, strerror(e));
	if (unlink(path) < 0)
		return err_errno("API socket %s: removing the stale socket", path);
	log_info("API socket %s: replaced a stale socket", path);
	return 0;
}

static int listen_on(struct api_server *s, const char *path)
{
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(s->path))
		return err_set(ENAMETOOLONG, "API socket path must be 1 to %zu bytes",
			       sizeof(s->path) - 1);
	int r = prepare_path(path);
	if (r < 0)
		return r;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0)
		return err_errno("socket");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, len);
	/* Only the monitor's user may connect: the API controls the guest entirely. */
	mode_t old = umask(0177);
	r = bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0)
		return err_errno("API socket %s: bind", path);
	memcpy(s->path, path, len + 1);
	if (listen(s->listen_fd, 128) < 0)
		return err_errno("API socket %s: listen", path);
	return 0;
}

int api_server_start(struct api_server **out, const char *path, struct event_loop *vmm_loop,
		     api_handler_fn handler, void *ctx)
{
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "API server");
	s->listen_fd = s->epfd = s->wake_efd = s->req_efd = -1;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	s->vmm_loop = vmm_loop;
	s->handler = handler;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	*out = s;

	int r = listen_on(s, path);
	if (r < 0)
		return r;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->req_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->wake_efd < 0 || s->req_efd < 0)
		return err_errno("API server: epoll/eventfd");
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(int64_t)TAG_WAKE};
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_efd, &ev) < 0)
		return err_errno("API server: epoll_ctl");
	ev.data.u64 = (uint64_t)(int64_t)TAG_LISTEN;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0)
		return err_errno("API server: epoll_ctl");
	r = event_loop_add(vmm_loop, s->req_efd, EPOLLIN, on_request, s);
	if (r < 0)
		return r;
	/* Signals are for the vmm thread (signalfd) and vCPU threads (kicks), never this one. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&s->thread, NULL, api_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		return err_set(e, "API thread: pthread_create: %s", strerror(e));
	s->thread_started = true;
	log_info("API listening on %s", path);
	return 0;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		uint64_t one = 1;
		if (write(s->wake_efd, &one, sizeof(one)) < 0)
			log_warn("API: waking the API thread: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0)
			client_close(s, &s->clients[i]);
	if (s->req_efd >= 0) {
		event_loop_remove(s->vmm_loop, s->req_efd);
		close(s->req_efd);
	}
	int fds[] = {s->listen_fd, s->epfd, s->wake_efd};
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (s->path[0])
		unlink(s->path);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void api_server_get_stats(const struct api_server *s, struct api_server_stats *out)
{
	struct api_server *m = (struct api_server *)s;
	out->requests = atomic_load(&m->requests);
	out->errors = atomic_load(&m->errors);
	out->clients = atomic_load(&m->accepted);
}
