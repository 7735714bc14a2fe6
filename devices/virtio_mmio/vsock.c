/* virtio-vsock, the virtio side: the device class and its --vsock SPEC, the three queues (rx:
 * packets to the guest; tx: packets from it; event: its buffers are kept for the one event the
 * device sends, TRANSPORT_RESET after a restore), checks on every header the guest sends, and
 * the Unix socket that host processes connect to. The connections themselves live in
 * vsock_conn.c. */
#include "devices/virtio_mmio/vsock.h"
#include "devices/virtio_mmio/vsock_conn.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define QUEUE_RX	 0
#define QUEUE_TX	 1
#define QUEUE_EVENT	 2
#define VSOCK_QUEUE_SIZE 256

static const char spec_grammar[] = "cid=N,uds=PATH";

static int parse_cid(const char *s, uint64_t *cid)
{
	uint64_t v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*cid = v;
	return 0;
}

int vsock_config_parse(const char *spec, struct vsock_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = VSOCK_DEFAULT_TIMEOUT_MS;
	char *copy = strdup(spec);
	if (!copy)
		return err_set(ENOMEM, "--vsock");
	bool have_cid = false;
	int r = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "cid=", 4) == 0) {
			/* 0-2 are the hypervisor, local and host; 2^32-1 is VMADDR_CID_ANY. */
			if (parse_cid(tok + 4, &cfg->guest_cid) < 0 || cfg->guest_cid < 3 ||
			    cfg->guest_cid == UINT32_MAX)
				r = err_set(EINVAL, "--vsock %s: cid must be a number from 3 to %u",
					    spec, UINT32_MAX - 1);
			have_cid = true;
		} else if (strncmp(tok, "uds=", 4) == 0 && tok[4]) {
			if (strlen(tok + 4) > VSOCK_UDS_PATH_MAX)
				r = err_set(ENAMETOOLONG,
					    "--vsock %s: uds path longer than %zu bytes", spec,
					    VSOCK_UDS_PATH_MAX);
			else
				strcpy(cfg->uds_path, tok + 4);
		} else {
			r = err_set(EINVAL,
				    "--vsock %s: unknown or empty option '%s' (expected %s)", spec,
				    tok, spec_grammar);
		}
	}
	free(copy);
	if (r == 0 && !have_cid)
		r = err_set(EINVAL, "--vsock %s: cid=N is required", spec);
	if (r == 0 && !cfg->uds_path[0])
		r = err_set(EINVAL, "--vsock %s: uds=PATH is required", spec);
	return r;
}

void vsock_get_stats(void *dev, struct vsock_stats *out)
{
	struct vsock_dev *d = dev;
	pthread_mutex_lock(&d->transport.lock);
	*out = d->stats;
	pthread_mutex_unlock(&d->transport.lock);
}

static void metrics(void *dev, struct virtio_device_metrics *m)
{
	struct vsock_stats s;
	vsock_get_stats(dev, &s);
	*m = (struct virtio_device_metrics){
	    .requests = s.rx_packets + s.tx_packets,
	    .bytes_to_guest = s.bytes_to_guest,
	    .bytes_from_guest = s.bytes_from_guest,
	    /* Refused and reset connections are the peers' business, not errors. */
	    .errors = s.bad_packets + s.credit_violations + s.bad_connect_lines + s.rst_dropped,
	};
}

static bool live(const struct vsock_conn *c)
{
	return c->state != CONN_FREE && c->state != CONN_ZOMBIE;
}

static void config_read(void *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	struct vsock_dev *d = dev;
	struct virtio_vsock_config c = {.guest_cid = htole64(d->cfg.guest_cid)};
	memcpy(data, (uint8_t *)&c + off, len);
}

static int activate(void *dev, uint64_t features)
{
	struct vsock_dev *d = dev;
	d->active = true;
	/* Host connections that arrived while the driver was away get their REQUEST soon, from
	 * the vmm thread: the transport marks itself active only after this returns. */
	uint64_t one = 1;
	ssize_t w = write(d->sync_efd, &one, sizeof(one));
	(void)w;
	return 0;
}

static void reset(void *dev)
{
	struct vsock_dev *d = dev;
	d->active = false;
	d->reset_event_owed = false; /* a new driver reads the CID when it probes */
	/* The driver forgets every connection; so do we. Host connections the guest never
	 * heard of (still sending CONNECT, or with their REQUEST not yet delivered) wait for
	 * the driver to come back, within their deadline. */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (live(c) && c->guest_knows)
			vsock_conn_end(c, false, true);
	}
	d->rst_count = 0;
	vsock_after(d);
}

/* An RST for a connection the device no longer (or never) had. */
static uint32_t put_rst(struct vsock_dev *d, const struct virtq_chain *chain)
{
	struct vsock_rst r = d->rsts[d->rst_head];
	d->rst_head = (d->rst_head + 1) % VSOCK_RST_QUEUE;
	d->rst_count--;
	struct virtio_vsock_hdr h = {
	    .src_cid = htole64(VSOCK_HOST_CID),
	    .dst_cid = htole64(d->cfg.guest_cid),
	    .src_port = htole32(r.local_port),
	    .dst_port = htole32(r.peer_port),
	    .type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
	    .op = htole16(VIRTIO_VSOCK_OP_RST),
	};
	virtq_chain_write(chain, 0, &h, sizeof(h));
	return VSOCK_HDR_LEN;
}

/* Give the guest what is owed while it has rx buffers: queued RSTs first, then one packet per
 * connection in turn. With no buffers, everything waits (the sockets are not read). */
static void fill_rx(struct vsock_dev *d)
{
	struct virtio_mmio_dev *t = &d->transport;
	struct virtq *vq = &t->queues[QUEUE_RX];
	static __thread struct virtq_chain chain;
	bool pushed = false;
	if (!d->active || !t->active || d->quiesced || (t->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return;
	while (d->rst_count || d->ready_head) {
		int r = virtq_pop(vq, &chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_fail(t, err_msg());
			break;
		}
		if (chain.nreadable) {
			virtio_mmio_fail(t, "vsock rx buffer with a device-readable part");
			break;
		}
		if (chain.writable_len < VSOCK_HDR_LEN) {
			virtio_mmio_fail(t, "vsock rx buffer smaller than a packet header");
			break;
		}
		uint32_t written;
		if (d->rst_count) {
			written = put_rst(d, &chain);
		} else {
			struct vsock_conn *c = d->ready_head;
			vsock_ready_remove(c);
			written = vsock_conn_packet(c, &chain);
			if (written)
				vsock_conn_kick(c); /* back of the line if it owes more */
		}
		if (!written) {
			virtq_unpop(vq);
			continue;
		}
		virtq_push(vq, chain.head, written);
		d->stats.rx_packets++;
		pushed = true;
	}
	if (pushed)
		virtio_mmio_used(t, QUEUE_RX);
}

void vsock_after(struct vsock_dev *d)
{
	fill_rx(d);
	if (!d->needs_sync || !d->loop)
		return;
	if (pthread_equal(pthread_self(), d->vmm_thread)) {
		vsock_sync(d);
	} else {
		uint64_t one = 1;
		ssize_t w = write(d->sync_efd, &one, sizeof(one));
		(void)w;
	}
}

/* The guest connects to host port `port`: a Unix connection to "PATH_port". */
static void guest_connect(struct vsock_dev *d, const struct virtio_vsock_hdr *h)
{
	uint32_t host_port = le32toh(h->dst_port), guest_port = le32toh(h->src_port);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", d->cfg.uds_path, host_port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct vsock_conn *c = NULL;
	/* A non-blocking Unix connect completes or fails at once (EAGAIN: backlog full). */
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		c = vsock_conn_new(d, fd, CONN_ESTABLISHED);
	if (!c) {
		log_debug("vsock: guest port %u to %s: %s", guest_port, sa.sun_path,
			  fd < 0 ? strerror(errno) : "refused or no room");
		if (fd >= 0)
			close(fd);
		d->stats.conns_refused++;
		vsock_queue_rst(d, host_port, guest_port);
		return;
	}
	c->local_port = host_port;
	c->peer_port = guest_port;
	c->guest_knows = true;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = c->tx_cnt = le32toh(h->fwd_cnt);
	c->owed = OWE_RESPONSE;
	c->data_ready = true;
	d->stats.conns_opened++;
	vsock_conn_kick(c);
}

/* The guest accepted a host connection. */
static void host_connect_done(struct vsock_conn *c)
{
	char ok[24];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	c->state = CONN_ESTABLISHED;
	c->deadline_ns = 0;
	c->data_ready = true; /* bytes may have followed the CONNECT line */
	c->d->stats.conns_opened++;
	/* The first bytes on a fresh socket: its buffer has room. */
	if (send(c->fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n)
		vsock_conn_end(c, true, true);
}

/* Credit the guest reports in every packet: its fwd_cnt may only move forward, up to what we
 * sent. */
static void take_credit(struct vsock_conn *c, const struct virtio_vsock_hdr *h)
{
	uint32_t fwd = le32toh(h->fwd_cnt);
	if (fwd - c->peer_fwd_cnt > c->tx_cnt - c->peer_fwd_cnt)
		c->d->stats.credit_violations++;
	else
		c->peer_fwd_cnt = fwd;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	if (vsock_peer_credit(c) > 0)
		c->credit_asked = false;
}

static void tx_packet(struct vsock_dev *d, const struct virtq_chain *chain)
{
	struct virtio_vsock_hdr h;
	d->stats.tx_packets++;
	if (chain->readable_len < VSOCK_HDR_LEN) {
		d->stats.bad_packets++;
		return;
	}
	virtq_chain_read(chain, 0, &h, sizeof(h));
	if (le64toh(h.src_cid) != d->cfg.guest_cid || le64toh(h.dst_cid) != VSOCK_HOST_CID) {
		d->stats.bad_packets++; /* not from the guest, or not to us: nothing to answer */
		return;
	}
	uint32_t local = le32toh(h.dst_port), peer = le32toh(h.src_port), len = le32toh(h.len);
	uint16_t op = le16toh(h.op);
	struct vsock_conn *c = vsock_conn_find(d, local, peer);
	if (len > chain->readable_len - VSOCK_HDR_LEN ||
	    le16toh(h.type) != VIRTIO_VSOCK_TYPE_STREAM || op == VIRTIO_VSOCK_OP_INVALID ||
	    op > VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
		d->stats.bad_packets++;
		if (c)
			vsock_conn_end(c, true, true);
		else if (op != VIRTIO_VSOCK_OP_RST)
			vsock_queue_rst(d, local, peer);
		return;
	}
	if (op == VIRTIO_VSOCK_OP_REQUEST) {
		if (c) {
			d->stats.bad_packets++; /* a second REQUEST on a live connection */
			vsock_conn_end(c, true, true);
		} else {
			guest_connect(d, &h);
		}
		return;
	}
	if (!c) {
		/* An RST for what is already gone is normal; anything else gets one. */
		if (op != VIRTIO_VSOCK_OP_RST) {
			d->stats.bad_packets++;
			vsock_queue_rst(d, local, peer);
		}
		return;
	}
	take_credit(c, &h);
	bool waiting = c->state == CONN_LOCAL_INIT;
	switch (op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (waiting) {
			host_connect_done(c);
		} else {
			d->stats.bad_packets++;
			vsock_conn_end(c, true, true);
		}
		break;
	case VIRTIO_VSOCK_OP_RST:
		vsock_conn_end(c, false,
			       c->state != CONN_CLOSING && c->peer_shutdown != VSOCK_SHUTDOWN_ALL);
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
	case VIRTIO_VSOCK_OP_RW:
		if (waiting) {
			d->stats.bad_packets++;
			vsock_conn_end(c, true, true);
		} else if (op == VIRTIO_VSOCK_OP_SHUTDOWN) {
			vsock_conn_peer_shutdown(c, le32toh(h.flags));
		} else {
			vsock_conn_from_guest(c, chain, len);
		}
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->owed |= OWE_CREDIT_UPDATE;
		break;
	default: /* CREDIT_UPDATE: take_credit did it */
		break;
	}
	if (live(c))
		vsock_conn_kick(c);
}

static void process_tx(struct vsock_dev *d)
{
	struct virtio_mmio_dev *t = &d->transport;
	struct virtq *vq = &t->queues[QUEUE_TX];
	static __thread struct virtq_chain chain;
	bool pushed = false;
	for (;;) {
		int r = virtq_pop(vq, &chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_fail(t, err_msg());
			break;
		}
		if (chain.nsegs > chain.nreadable) {
			virtio_mmio_fail(t, "vsock tx packet with a device-writable part");
			break;
		}
		tx_packet(d, &chain);
		virtq_push(vq, chain.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_mmio_used(t, QUEUE_TX);
}

/* The TRANSPORT_RESET owed after a restore, once the driver has an event buffer posted
 * (virtio 1.2 section 5.10.6.6). */
static void send_reset_event(struct vsock_dev *d)
{
	struct virtio_mmio_dev *t = &d->transport;
	struct virtq *vq = &t->queues[QUEUE_EVENT];
	static __thread struct virtq_chain chain;
	if (!d->reset_event_owed || !t->active || d->quiesced || !vq->s.ready ||
	    (t->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return;
	int r = virtq_pop(vq, &chain);
	if (r == 0)
		return;
	if (r < 0) {
		virtio_mmio_fail(t, err_msg());
		return;
	}
	struct virtio_vsock_event ev = {.id = htole32(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET)};
	if (chain.nreadable || chain.writable_len < sizeof(ev)) {
		virtio_mmio_fail(t, "vsock event buffer not a writable 4 bytes or more");
		return;
	}
	virtq_chain_write(&chain, 0, &ev, sizeof(ev));
	virtq_push(vq, chain.head, sizeof(ev));
	d->reset_event_owed = false;
	d->stats.transport_resets++;
	virtio_mmio_used(t, QUEUE_EVENT);
}

static void queue_notify(void *dev, unsigned q)
{
	struct vsock_dev *d = dev;
	if (d->quiesced)
		return; /* unquiesce serves every queue */
	if (q == QUEUE_TX) {
		process_tx(d);
	} else if (q == QUEUE_RX) {
		/* New buffers: everyone who was waiting for one gets a turn. */
		for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
			if (live(&d->conns[i]))
				vsock_conn_kick(&d->conns[i]);
	} else {
		/* Event buffers stay with the device until it has an event to send. */
		send_reset_event(d);
	}
	vsock_after(d);
}

/* Snapshots: no queue is served, no host socket read or accepted, until unquiesce. */
static void quiesce(void *dev)
{
	struct vsock_dev *d = dev;
	pthread_mutex_lock(&d->transport.lock);
	d->quiesced = true;
	/* The listening socket is level-triggered: unwatched, or the loop would spin. */
	if (d->loop && event_loop_modify(d->loop, d->listen_fd, 0) < 0)
		log_warn("vsock %s: %s", d->cfg.uds_path, err_msg());
	pthread_mutex_unlock(&d->transport.lock);
}

static void unquiesce(void *dev)
{
	struct vsock_dev *d = dev;
	struct virtio_mmio_dev *t = &d->transport;
	pthread_mutex_lock(&t->lock);
	d->quiesced = false;
	if (d->loop && event_loop_modify(d->loop, d->listen_fd, EPOLLIN) < 0)
		log_warn("vsock %s: %s", d->cfg.uds_path, err_msg());
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		uint32_t events = c->deferred_events;
		c->deferred_events = 0;
		if (events && live(c))
			vsock_conn_event(c, events);
	}
	/* Kicks that came while quiesced went unanswered: look at every queue. */
	if (t->active) {
		for (unsigned q = 0; q < d->ops.nqueues; q++)
			if (t->queues[q].s.ready)
				queue_notify(d, q);
	}
	vsock_after(d);
	pthread_mutex_unlock(&t->lock);
}

/* After a restore: the host sockets of the snapshotted monitor are gone, so is every
 * connection the guest knew. The guest hears it from a TRANSPORT_RESET event, upon which it
 * drops them all and reads its CID again (a clone may have a new one). Host connections made
 * to this monitor that the guest has not heard of yet go ahead. */
static int restored(void *dev)
{
	struct vsock_dev *d = dev;
	struct virtio_mmio_dev *t = &d->transport;
	pthread_mutex_lock(&t->lock);
	unsigned dropped = 0;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &d->conns[i];
		if (live(c) && c->guest_knows) {
			vsock_conn_end(c, false, true);
			dropped++;
		}
	}
	/* RSTs owed for the old connections: the event resets them all. */
	d->rst_count = 0;
	if (t->active) {
		d->reset_event_owed = true;
		send_reset_event(d);
	}
	log_info("vsock %s: restored with guest cid %llu, %u connections dropped; %s",
		 d->cfg.uds_path, (unsigned long long)d->cfg.guest_cid, dropped,
		 !t->active	       ? "the driver was not up"
		 : d->reset_event_owed ? "TRANSPORT_RESET waits for an event buffer"
				       : "TRANSPORT_RESET sent");
	vsock_after(d);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void on_listen(void *ctx, uint32_t events)
{
	struct vsock_dev *d = ctx;
	pthread_mutex_lock(&d->transport.lock);
	for (;;) {
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn("vsock %s: accept: %s", d->cfg.uds_path, strerror(errno));
			break;
		}
		struct vsock_conn *c = vsock_conn_new(d, fd, CONN_HANDSHAKE);
		if (!c) {
			log_warn("vsock %s: more than %d connections; refusing one",
				 d->cfg.uds_path, VSOCK_MAX_CONNS);
			d->stats.conns_refused++;
			close(fd);
			continue;
		}
		vsock_set_deadline(c);
	}
	vsock_after(d);
	pthread_mutex_unlock(&d->transport.lock);
}

static void on_timer(void *ctx, uint32_t events)
{
	struct vsock_dev *d = ctx;
	uint64_t ticks;
	ssize_t n = read(d->timer_fd, &ticks, sizeof(ticks));
	(void)n;
	pthread_mutex_lock(&d->transport.lock);
	if (!vsock_expire(d, timing_now_ns())) {
		struct itimerspec off = {0};
		timerfd_settime(d->timer_fd, 0, &off, NULL);
		d->timer_armed = false;
	}
	vsock_after(d);
	pthread_mutex_unlock(&d->transport.lock);
}

static void on_sync(void *ctx, uint32_t events)
{
	struct vsock_dev *d = ctx;
	uint64_t v;
	ssize_t n = read(d->sync_efd, &v, sizeof(v));
	(void)n;
	pthread_mutex_lock(&d->transport.lock);
	vsock_after(d);
	pthread_mutex_unlock(&d->transport.lock);
}

static int parse(const char *spec, void **config)
{
	struct vsock_config *cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return err_set(ENOMEM, "--vsock");
	int r = vsock_config_parse(spec, cfg);
	if (r < 0) {
		free(cfg);
		return r;
	}
	*config = cfg;
	return 0;
}

static const char *conflict(const void *a, const void *b)
{
	return "only one vsock device is supported";
}

static void destroy(void *dev)
{
	struct vsock_dev *d = dev;
	if (!d)
		return;
	vsock_close_all(d);
	int fds[] = {d->listen_fd, d->timer_fd, d->sync_efd};
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (fds[i] < 0)
			continue;
		if (d->loop)
			event_loop_remove(d->loop, fds[i]);
		close(fds[i]);
	}
	if (d->bound)
		unlink(d->cfg.uds_path);
	if (d->transport.ops)
		virtio_mmio_destroy(&d->transport);
	free(d);
}

static int create(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		  struct virtio_mmio_dev **transport)
{
	const struct vsock_config *cfg = config;
	struct vsock_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return err_set(ENOMEM, "vsock");
	d->cfg = *cfg;
	d->listen_fd = d->timer_fd = d->sync_efd = -1;
	d->next_port = VSOCK_FIRST_PORT;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		d->conns[i] = (struct vsock_conn){.d = d, .state = CONN_FREE, .fd = -1};
	int r;
	struct stat st;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, cfg->uds_path);
	if (lstat(cfg->uds_path, &st) == 0) {
		r = err_set(EEXIST, "vsock %s: socket path exists", cfg->uds_path);
		goto fail;
	}
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = err_errno("vsock %s: socket", cfg->uds_path);
		goto fail;
	}
	d->bound = true;
	if (listen(d->listen_fd, 128) < 0) {
		r = err_errno("vsock %s: listen", cfg->uds_path);
		goto fail;
	}
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->sync_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->timer_fd < 0 || d->sync_efd < 0) {
		r = err_errno("vsock: timerfd/eventfd");
		goto fail;
	}
	d->ops = (struct virtio_device_ops){
	    .name = "virtio-vsock",
	    .device_id = VIRTIO_ID_VSOCK,
	    .nqueues = 3,
	    .queue_max = VSOCK_QUEUE_SIZE,
	    .features = 0, /* streams only: no VIRTIO_VSOCK_F_SEQPACKET */
	    .config_size = sizeof(struct virtio_vsock_config),
	    .config_read = config_read,
	    .activate = activate,
	    .reset = reset,
	    .queue_notify = queue_notify,
	};
	r = virtio_mmio_init(&d->transport, &d->ops, d, index, gm);
	if (r < 0)
		goto fail;
	*dev = d;
	*transport = &d->transport;
	return 0;
fail:
	destroy(d);
	return r;
}

static int start(void *dev, struct event_loop *loop)
{
	struct vsock_dev *d = dev;
	d->loop = loop;
	d->vmm_thread = pthread_self();
	int r = event_loop_add(loop, d->listen_fd, EPOLLIN, on_listen, d);
	if (r == 0)
		r = event_loop_add(loop, d->timer_fd, EPOLLIN, on_timer, d);
	if (r == 0)
		r = event_loop_add(loop, d->sync_efd, EPOLLIN, on_sync, d);
	if (r == 0) {
		pthread_mutex_lock(&d->transport.lock);
		d->needs_sync = true;
		vsock_after(d);
		pthread_mutex_unlock(&d->transport.lock);
	}
	return r;
}

const struct virtio_device_class virtio_vsock_class = {
    .flag = "vsock",
    .usage = "cid=N,uds=PATH   virtio-vsock; host processes connect through the Unix socket "
	     "PATH (\"CONNECT <port>\\n\"), guest connections to port P reach PATH_P",
    .parse = parse,
    .conflict = conflict,
    .create = create,
    .start = start,
    .destroy = destroy,
    .metrics = metrics,
    .quiesce = quiesce,
    .unquiesce = unquiesce,
    .restored = restored,
};
