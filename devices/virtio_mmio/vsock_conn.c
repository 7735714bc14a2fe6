/* The vsock connection table and the Unix side of each stream: the CONNECT handshake, bytes
 * between sockets and guest buffers, credit, shutdown, deadlines, and the event loop's view of
 * it all. The virtio side (queues, packet headers from the guest) is vsock.c. */
#include "devices/virtio_mmio/vsock_conn.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

static bool live(const struct vsock_conn *c)
{
	return c->state != CONN_FREE && c->state != CONN_ZOMBIE;
}

struct vsock_conn *vsock_conn_new(struct vsock_dev *d, int fd, enum conn_state state)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (c->state != CONN_FREE)
			continue;
		*c = (struct vsock_conn){.d = d, .state = state, .fd = fd};
		d->needs_sync = true;
		return c;
	}
	return NULL;
}

struct vsock_conn *vsock_conn_find(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (live(c) && c->guest_knows && c->local_port == local_port &&
		    c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

uint32_t vsock_alloc_port(struct vsock_dev *d)
{
	/* At most VSOCK_MAX_CONNS ports are taken, so this many + 1 tries find a free one. */
	for (unsigned tries = 0; tries <= VSOCK_MAX_CONNS; tries++) {
		uint32_t port = d->next_port++;
		if (d->next_port < VSOCK_FIRST_PORT || d->next_port == UINT32_MAX)
			d->next_port = VSOCK_FIRST_PORT;
		bool taken = false;
		for (unsigned i = 0; i < VSOCK_MAX_CONNS && !taken; i++) {
			const struct vsock_conn *c = &d->conns[i];
			taken = live(c) && c->state != CONN_HANDSHAKE && c->local_port == port;
		}
		if (!taken)
			return port;
	}
	return 0;
}

void vsock_set_deadline(struct vsock_conn *c)
{
	struct vsock_dev *d = c->d;
	uint64_t timeout_ns = (uint64_t)d->cfg.timeout_ms * 1000000;
	c->deadline_ns = timing_now_ns() + timeout_ns;
	if (d->timer_armed || d->timer_fd < 0)
		return;
	/* Ticks at a quarter of the timeout while any deadline is pending; stopped when none. */
	uint64_t tick = timeout_ns / 4 > 1000000 ? timeout_ns / 4 : 1000000;
	struct timespec ts = {(time_t)(tick / 1000000000), (long)(tick % 1000000000)};
	struct itimerspec its = {.it_interval = ts, .it_value = ts};
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) == 0)
		d->timer_armed = true;
}

static void ready_append(struct vsock_conn *c)
{
	struct vsock_dev *d = c->d;
	c->in_ready = true;
	c->next = NULL;
	c->prev = d->ready_tail;
	if (d->ready_tail)
		d->ready_tail->next = c;
	else
		d->ready_head = c;
	d->ready_tail = c;
}

void vsock_ready_remove(struct vsock_conn *c)
{
	struct vsock_dev *d = c->d;
	if (!c->in_ready)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->ready_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		d->ready_tail = c->prev;
	c->prev = c->next = NULL;
	c->in_ready = false;
}

void vsock_queue_rst(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port)
{
	if (d->rst_count == VSOCK_RST_QUEUE) {
		d->stats.rst_dropped++;
		return;
	}
	d->rsts[(d->rst_head + d->rst_count++) % VSOCK_RST_QUEUE] =
	    (struct vsock_rst){local_port, peer_port};
}

uint32_t vsock_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Whether the socket's bytes may go to the guest now (credit aside). */
static bool can_read(const struct vsock_conn *c)
{
	return c->state == CONN_ESTABLISHED && c->data_ready &&
	       !(c->local_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) &&
	       !(c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV);
}

bool vsock_conn_has_work(struct vsock_conn *c)
{
	if (!live(c) || c->state == CONN_HANDSHAKE)
		return false;
	if (c->owed)
		return true;
	if (!can_read(c))
		return false;
	if (vsock_peer_credit(c) > 0)
		return true;
	/* Out of credit with bytes waiting: ask once; the guest's next update re-arms this. */
	if (!c->credit_asked) {
		c->credit_asked = true;
		c->owed |= OWE_CREDIT_REQUEST;
		return true;
	}
	return false;
}

void vsock_conn_kick(struct vsock_conn *c)
{
	if (!c->in_ready && vsock_conn_has_work(c))
		ready_append(c);
}

void vsock_conn_end(struct vsock_conn *c, bool rst, bool abrupt)
{
	struct vsock_dev *d = c->d;
	if (!live(c))
		return;
	if (c->state == CONN_ESTABLISHED || c->state == CONN_CLOSING) {
		d->stats.conns_closed++;
		d->stats.conns_reset += abrupt;
	} else if (c->state == CONN_LOCAL_INIT) {
		d->stats.conns_refused++;
	}
	if (rst && c->guest_knows)
		vsock_queue_rst(d, c->local_port, c->peer_port);
	vsock_ready_remove(c);
	c->state = CONN_ZOMBIE;
	c->deadline_ns = 0;
	d->needs_sync = true;
}

/* The host side is gone altogether: tell the guest both directions are over and wait for its
 * RST (spec 5.10.6.6), with a deadline. What the guest sent that never reached it is lost. */
static void host_gone(struct vsock_conn *c)
{
	c->state = CONN_CLOSING;
	c->local_shutdown = VSOCK_SHUTDOWN_ALL;
	c->owed |= OWE_SHUTDOWN;
	c->data_ready = false;
	c->buf_len = 0;
	vsock_set_deadline(c);
	vsock_conn_kick(c);
}

/* The host side read as end of file: closed, or only its write half shut. */
static void host_eof(struct vsock_conn *c)
{
	c->data_ready = false;
	struct pollfd p = {.fd = c->fd};
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
		host_gone(c);
		return;
	}
	c->local_shutdown |= VIRTIO_VSOCK_SHUTDOWN_SEND;
	c->owed |= OWE_SHUTDOWN;
}

/* The guest is done sending and we have written all it sent: pass its end of file on, and
 * once it is done both ways, answer with RST (the guest's close waits for it). */
static void check_drained(struct vsock_conn *c)
{
	if (c->buf_len || c->state != CONN_ESTABLISHED)
		return;
	if ((c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) && !c->write_shut) {
		shutdown(c->fd, SHUT_WR);
		c->write_shut = true;
	}
	if (c->peer_shutdown == VSOCK_SHUTDOWN_ALL)
		vsock_conn_end(c, true, false);
}

static void forwarded(struct vsock_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	/* Tell the guest about freed space in steps of a quarter of the buffer, and at once
	 * while its view of our free space is under a quarter: it may be waiting for it. */
	uint32_t untold = c->fwd_cnt - c->fwd_told;
	uint32_t seen_free = VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_told);
	if (untold >= VSOCK_BUF_ALLOC / 4 || (untold && seen_free < VSOCK_BUF_ALLOC / 4))
		c->owed |= OWE_CREDIT_UPDATE;
	check_drained(c);
}

static void flush(struct vsock_conn *c)
{
	uint32_t total = 0;
	while (c->buf_len) {
		uint32_t first = VSOCK_BUF_ALLOC - c->buf_head;
		if (first > c->buf_len)
			first = c->buf_len;
		struct iovec iov[2] = {{c->buf + c->buf_head, first}, {c->buf, c->buf_len - first}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = c->buf_len > first ? 2 : 1};
		ssize_t n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			log_debug("vsock: port %u: write: %s", c->local_port, strerror(errno));
			vsock_conn_end(c, true, true);
			return;
		}
		c->buf_head = (uint32_t)((c->buf_head + (size_t)n) % VSOCK_BUF_ALLOC);
		c->buf_len -= (uint32_t)n;
		total += (uint32_t)n;
	}
	if (total)
		forwarded(c, total);
}

/* Copy chain bytes [off, off+len) to the tail of the ring (the caller checked the room). */
static void ring_put(struct vsock_conn *c, const struct virtq_chain *chain, uint64_t off,
		     uint32_t len)
{
	uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
	uint32_t first = VSOCK_BUF_ALLOC - tail;
	if (first > len)
		first = len;
	virtq_chain_read(chain, off, c->buf + tail, first);
	virtq_chain_read(chain, off + first, c->buf, len - first);
	c->buf_len += len;
}

/* iovecs over a chain's part (readable or writable) from byte `off`, at most `len` bytes. */
static unsigned chain_iov(const struct virtq_chain *chain, bool writable, uint64_t off,
			  uint64_t len, struct iovec *iov)
{
	unsigned n = 0;
	unsigned from = writable ? chain->nreadable : 0;
	unsigned to = writable ? chain->nsegs : chain->nreadable;
	for (unsigned i = from; i < to && len; i++) {
		const struct virtq_seg *s = &chain->segs[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		uint64_t take = s->len - off < len ? s->len - off : len;
		iov[n++] = (struct iovec){s->host + off, take};
		len -= take;
		off = 0;
	}
	return n;
}

void vsock_conn_from_guest(struct vsock_conn *c, const struct virtq_chain *chain, uint32_t len)
{
	struct vsock_dev *d = c->d;
	if (c->state == CONN_CLOSING || len == 0)
		return; /* the host side is gone: nowhere to put it */
	if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) {
		d->stats.bad_packets++; /* data after the guest said it would send no more */
		return;
	}
	if (len > VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt)) {
		d->stats.credit_violations++;
		log_debug("vsock: port %u: guest sent %u bytes beyond its credit", c->local_port,
			  len);
		vsock_conn_end(c, true, true);
		return;
	}
	c->rx_cnt += len;
	d->stats.bytes_from_guest += len;
	uint32_t done = 0;
	if (c->buf_len == 0) {
		static __thread struct iovec iov[VIRTQ_MAX_SIZE];
		struct msghdr m = {.msg_iov = iov};
		m.msg_iovlen = chain_iov(chain, false, VSOCK_HDR_LEN, len, iov);
		ssize_t n;
		do
			n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN) {
			log_debug("vsock: port %u: write: %s", c->local_port, strerror(errno));
			vsock_conn_end(c, true, true);
			return;
		}
		done = n > 0 ? (uint32_t)n : 0;
	}
	if (done < len) {
		if (!c->buf)
			c->buf = malloc(VSOCK_BUF_ALLOC);
		if (!c->buf) {
			log_warn("vsock: port %u: out of memory for pending bytes", c->local_port);
			vsock_conn_end(c, true, true);
			return;
		}
		ring_put(c, chain, VSOCK_HDR_LEN + (uint64_t)done, len - done);
	}
	if (done)
		forwarded(c, done);
}

void vsock_conn_peer_shutdown(struct vsock_conn *c, uint32_t flags)
{
	c->peer_shutdown |= flags & VSOCK_SHUTDOWN_ALL;
	if (c->state == CONN_CLOSING) {
		/* Both sides are closing: our RST ends it. */
		if (c->peer_shutdown == VSOCK_SHUTDOWN_ALL)
			vsock_conn_end(c, true, false);
		return;
	}
	if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) {
		/* The guest reads no more: stop reading for it, and make host writes fail. */
		c->data_ready = false;
		shutdown(c->fd, SHUT_RD);
	}
	check_drained(c);
	/* Done both ways but bytes still queued for the host: finish them, within a deadline. */
	if (c->state == CONN_ESTABLISHED && c->peer_shutdown == VSOCK_SHUTDOWN_ALL)
		vsock_set_deadline(c);
}

static void header(struct vsock_conn *c, const struct virtq_chain *chain, uint16_t op, uint32_t len,
		   uint32_t flags)
{
	struct virtio_vsock_hdr h = {
	    .src_cid = htole64(VSOCK_HOST_CID),
	    .dst_cid = htole64(c->d->cfg.guest_cid),
	    .src_port = htole32(c->local_port),
	    .dst_port = htole32(c->peer_port),
	    .len = htole32(len),
	    .type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
	    .op = htole16(op),
	    .flags = htole32(flags),
	    .buf_alloc = htole32(VSOCK_BUF_ALLOC),
	    .fwd_cnt = htole32(c->fwd_cnt),
	};
	virtq_chain_write(chain, 0, &h, sizeof(h));
	/* Every packet carries our credit. */
	c->fwd_told = c->fwd_cnt;
	c->owed &= ~(unsigned)OWE_CREDIT_UPDATE;
}

uint32_t vsock_conn_packet(struct vsock_conn *c, const struct virtq_chain *chain)
{
	static __thread struct iovec iov[VIRTQ_MAX_SIZE];
	for (;;) {
		if (c->owed & OWE_REQUEST) {
			c->owed &= ~(unsigned)OWE_REQUEST;
			c->guest_knows = true;
			header(c, chain, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
			return VSOCK_HDR_LEN;
		}
		if (c->owed & OWE_RESPONSE) {
			c->owed &= ~(unsigned)OWE_RESPONSE;
			header(c, chain, VIRTIO_VSOCK_OP_RESPONSE, 0, 0);
			return VSOCK_HDR_LEN;
		}
		if (c->owed & OWE_CREDIT_REQUEST) {
			c->owed &= ~(unsigned)OWE_CREDIT_REQUEST;
			header(c, chain, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, 0);
			return VSOCK_HDR_LEN;
		}
		uint64_t room = chain->writable_len - VSOCK_HDR_LEN;
		uint32_t credit = vsock_peer_credit(c);
		if (room > credit)
			room = credit;
		if (room > VSOCK_MAX_PAYLOAD)
			room = VSOCK_MAX_PAYLOAD;
		if (room && can_read(c)) {
			unsigned n = chain_iov(chain, true, VSOCK_HDR_LEN, room, iov);
			ssize_t got = readv(c->fd, iov, (int)n);
			if (got > 0) {
				c->tx_cnt += (uint32_t)got;
				c->d->stats.bytes_to_guest += (uint64_t)got;
				header(c, chain, VIRTIO_VSOCK_OP_RW, (uint32_t)got, 0);
				return VSOCK_HDR_LEN + (uint32_t)got;
			}
			if (got == 0) {
				host_eof(c);
			} else if (errno == EAGAIN) {
				c->data_ready = false;
			} else if (errno != EINTR) {
				log_debug("vsock: port %u: read: %s", c->local_port,
					  strerror(errno));
				vsock_conn_end(c, true, true);
				return 0;
			}
			continue;
		}
		if (c->owed & OWE_SHUTDOWN) {
			c->owed &= ~(unsigned)OWE_SHUTDOWN;
			header(c, chain, VIRTIO_VSOCK_OP_SHUTDOWN, 0, c->local_shutdown);
			return VSOCK_HDR_LEN;
		}
		if (c->owed & OWE_CREDIT_UPDATE) {
			header(c, chain, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0);
			return VSOCK_HDR_LEN;
		}
		return 0;
	}
}

static bool parse_connect(const char *line, unsigned len, uint32_t *port)
{
	static const char verb[] = "CONNECT ";
	const unsigned vlen = sizeof(verb) - 1;
	if (len < vlen + 2 || memcmp(line, verb, vlen) != 0 || line[len - 1] != '\n')
		return false;
	uint64_t v = 0;
	for (unsigned i = vlen; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(line[i] - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*port = (uint32_t)v;
	return true;
}

static void bad_line(struct vsock_conn *c, const char *why)
{
	c->d->stats.bad_connect_lines++;
	log_debug("vsock: host connection closed: %s", why);
	vsock_conn_end(c, false, false);
}

/* Take the CONNECT line, and not a byte past it: what follows is stream data for the guest. */
static void read_line(struct vsock_conn *c)
{
	for (;;) {
		char peek[VSOCK_LINE_MAX];
		ssize_t n =
		    recv(c->fd, peek, VSOCK_LINE_MAX - c->line_len, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			bad_line(c, "closed before its CONNECT line");
			return;
		}
		const char *nl = memchr(peek, '\n', (size_t)n);
		size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
		if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
			bad_line(c, "read failed");
			return;
		}
		c->line_len += (unsigned)take;
		if (nl) {
			uint32_t port;
			if (!parse_connect(c->line, c->line_len, &port)) {
				bad_line(c, "malformed CONNECT line");
				return;
			}
			c->state = CONN_LOCAL_INIT;
			c->host_initiated = true;
			c->peer_port = port;
			c->local_port = vsock_alloc_port(c->d);
			c->owed = OWE_REQUEST;
			vsock_set_deadline(c);
			vsock_conn_kick(c);
			return;
		}
		if (c->line_len == VSOCK_LINE_MAX) {
			bad_line(c, "CONNECT line too long");
			return;
		}
	}
}

void vsock_conn_event(struct vsock_conn *c, uint32_t events)
{
	switch (c->state) {
	case CONN_HANDSHAKE:
		read_line(c);
		break;
	case CONN_ESTABLISHED:
		if (c->buf_len && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
			flush(c);
		if (c->state != CONN_ESTABLISHED)
			break;
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			c->data_ready = true;
		/* Gone while nothing is read from it any more (else reading finds the end after
		 * the last bytes). */
		if ((events & (EPOLLHUP | EPOLLERR)) &&
		    ((c->local_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) ||
		     (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV))) {
			host_gone(c);
			break;
		}
		vsock_conn_kick(c);
		break;
	default:
		/* Waiting for the guest (LOCAL_INIT, CLOSING): the socket can wait too. */
		break;
	}
}

bool vsock_expire(struct vsock_dev *d, uint64_t now_ns)
{
	bool pending = false;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (!live(c) || !c->deadline_ns)
			continue;
		if (now_ns < c->deadline_ns) {
			pending = true;
			continue;
		}
		if (c->state == CONN_HANDSHAKE)
			bad_line(c, "no CONNECT line in time");
		else if (c->state == CONN_LOCAL_INIT)
			vsock_conn_end(c, true, false); /* the guest never answered */
		else
			vsock_conn_end(c, true, true); /* a close that never finished */
	}
	return pending;
}

static void on_conn(void *ctx, uint32_t events)
{
	struct vsock_conn *c = ctx;
	struct vsock_dev *d = c->d;
	pthread_mutex_lock(&d->transport.lock);
	/* Edge-triggered: readiness put aside now is not reported again. */
	if (live(c) && d->quiesced)
		c->deferred_events |= events;
	else if (live(c))
		vsock_conn_event(c, events);
	vsock_after(d);
	pthread_mutex_unlock(&d->transport.lock);
}

static void release(struct vsock_dev *d, struct vsock_conn *c)
{
	if (c->registered && d->loop)
		event_loop_remove(d->loop, c->fd);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	vsock_ready_remove(c);
	*c = (struct vsock_conn){.d = d, .state = CONN_FREE, .fd = -1};
}

void vsock_sync(struct vsock_dev *d)
{
	if (!d->needs_sync || !d->loop)
		return;
	d->needs_sync = false;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (live(c) && !c->registered) {
			if (event_loop_add(d->loop, c->fd,
					   EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_conn,
					   c) == 0) {
				c->registered = true;
			} else {
				log_warn("vsock: %s", err_msg());
				vsock_conn_end(c, true, true);
			}
		}
		if (c->state == CONN_ZOMBIE)
			release(d, c);
	}
}

void vsock_close_all(struct vsock_dev *d)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (d->conns[i].state != CONN_FREE)
			release(d, &d->conns[i]);
	d->ready_head = d->ready_tail = NULL;
	d->rst_count = 0;
}
