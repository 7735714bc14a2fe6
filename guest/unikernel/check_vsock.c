/* vsock_server and vsock_client: a virtio-vsock driver (virtio 1.x section
 * 5.10) with the stream protocol: REQUEST/RESPONSE to connect, RW data under
 * credit-based flow control (buf_alloc, fwd_cnt), CREDIT_UPDATE and
 * CREDIT_REQUEST, SHUTDOWN then RST to close.
 *
 * One event loop serves both checks: reap the rx, tx and event queues, let
 * each connection send what it may, kick, wait. Receive handlers never
 * transmit themselves; they set what a connection owes its peer (a RESPONSE,
 * a credit update, an RST) and the loop sends it when a transmit slot is
 * free, so a full tx ring never blocks receiving. */
#include "arch.h"
#include "checks.h"
#include "console.h"
#include "dma.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_VSOCK_F_STREAM 0

#define HDR	    44
#define TYPE_STREAM 1

#define OP_REQUEST	  1
#define OP_RESPONSE	  2
#define OP_RST		  3
#define OP_SHUTDOWN	  4
#define OP_RW		  5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7

#define SHUTDOWN_RCV  1 /* the sender will receive no more */
#define SHUTDOWN_SEND 2 /* the sender will send no more */
#define SHUTDOWN_BOTH 3

#define EVENT_TRANSPORT_RESET 0

#define QUEUE_MAX	256
#define RX_STRIDE	4160
#define RX_LEN		(HDR + 4096) /* header and up to 4 KiB of payload */
#define NTX		32
#define TX_HDR_STRIDE	64
#define TX_MAX		(64 << 10) /* payload per packet, as Linux */
#define NEVENT		8
#define MAX_CONNS	64
#define SERVER_BUF	(64 << 10) /* echo ring = buf_alloc per connection */
#define CLIENT_BUF	(256 << 10)
#define CLOSE_WAIT_US	2000000
#define CREDIT_REQ_US	100000 /* stalled on credit this long: ask */
#define MAX_PENDING_RST 32

enum { FREE, CONNECTING, ESTABLISHED, CLOSING };

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct hdr) == HDR, "virtio_vsock_hdr is 44 bytes");

struct conn {
	int state;
	uint64_t peer_cid;
	uint32_t peer_port, local_port;
	/* Flow control, all counts modulo 2^32 as on the wire. */
	uint32_t buf_alloc, fwd_cnt, fwd_sent; /* ours, and what the peer last heard */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t peer_shutdown;
	bool want_response, want_credit, want_rst, credit_req_sent;
	uint64_t stalled_since, close_deadline;
	/* server: received bytes waiting to be echoed */
	uint8_t *ring;
	uint32_t ring_head, ring_tail; /* free-running; used = head - tail */
	/* totals */
	uint64_t sent, received;
};

struct pending_rst {
	uint64_t cid;
	uint32_t peer_port, local_port;
};

struct vsock {
	struct vdev dev;
	struct virtq *rxq, *txq, *evq;
	uint64_t cid;
	bool server;
	uint8_t *rx_bufs, *ev_bufs, *tx_hdrs, *tx_data;
	uint16_t tx_free[NTX];
	uint32_t ntx_free;
	bool tx_added;
	struct conn conns[MAX_CONNS];
	struct pending_rst rsts[MAX_PENDING_RST];
	uint32_t nrsts;
	/* server totals; dropped: connections a transport reset ended */
	uint64_t accepted, closed, echoed, refused, dropped;
	/* client */
	struct conn *client;
	uint32_t crc;
	bool client_done;
	uint64_t bad, credit_violations, resets;
};

static struct vsock vs;

static const char *op_name(uint16_t op)
{
	static const char *names[] = {"INVALID",  "REQUEST", "RESPONSE",      "RST",
				      "SHUTDOWN", "RW",	     "CREDIT_UPDATE", "CREDIT_REQUEST"};
	return op < 8 ? names[op] : "unknown";
}

/* ------------------------------------------------------------- transmit */

static void reap_tx(void)
{
	uint64_t slot;
	uint32_t len;

	while (virtq_get(vs.txq, &slot, &len)) {
		if (slot >= NTX)
			check_fail("internal: tx cookie %lu", slot);
		vs.tx_free[vs.ntx_free++] = (uint16_t)slot;
	}
}

static int tx_slot(void)
{
	if (!vs.ntx_free)
		reap_tx();
	return vs.ntx_free ? vs.tx_free[--vs.ntx_free] : -1;
}

static uint8_t *slot_data(int slot)
{
	return vs.tx_data + (uint64_t)slot * TX_MAX;
}

/* Send a packet from slot (payload already in slot_data) to a peer. */
static void tx_packet(int slot, uint64_t peer_cid, uint32_t peer_port, uint32_t local_port,
		      uint16_t op, uint32_t flags, uint32_t len, uint32_t buf_alloc,
		      uint32_t fwd_cnt)
{
	struct hdr *h = (struct hdr *)(vs.tx_hdrs + (uint64_t)slot * TX_HDR_STRIDE);
	*h = (struct hdr){.src_cid = vs.cid,
			  .dst_cid = peer_cid,
			  .src_port = local_port,
			  .dst_port = peer_port,
			  .len = len,
			  .type = TYPE_STREAM,
			  .op = op,
			  .flags = flags,
			  .buf_alloc = buf_alloc,
			  .fwd_cnt = fwd_cnt};
	struct vbuf v[2] = {{h, HDR, false}, {slot_data(slot), len, false}};
	if (virtq_add(vs.txq, v, len ? 2 : 1, (uint64_t)slot) < 0)
		check_fail("internal: tx ring full with a free slot");
	vs.tx_added = true;
}

/* A packet on a connection: carries our current credit. False when no slot. */
static bool conn_send(struct conn *c, uint16_t op, uint32_t flags, int slot, uint32_t len)
{
	if (slot < 0) {
		slot = tx_slot();
		if (slot < 0)
			return false;
	}
	tx_packet(slot, c->peer_cid, c->peer_port, c->local_port, op, flags, len, c->buf_alloc,
		  c->fwd_cnt);
	c->fwd_sent = c->fwd_cnt;
	return true;
}

static void queue_rst(uint64_t cid, uint32_t peer_port, uint32_t local_port)
{
	if (vs.nrsts < MAX_PENDING_RST)
		vs.rsts[vs.nrsts++] = (struct pending_rst){cid, peer_port, local_port};
}

static uint32_t peer_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* ---------------------------------------------------------- connections */

static struct conn *conn_find(uint64_t cid, uint32_t peer_port, uint32_t local_port)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &vs.conns[i];
		if (c->state != FREE && c->peer_cid == cid && c->peer_port == peer_port &&
		    c->local_port == local_port)
			return c;
	}
	return 0;
}

static unsigned conns_open(void)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_CONNS; i++)
		n += vs.conns[i].state != FREE;
	return n;
}

static void conn_free(struct conn *c)
{
	if (vs.server)
		vs.closed++;
	c->state = FREE;
}

static void pattern(uint8_t *p, uint64_t off, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		p[i] = (uint8_t)((off + i) * 7 + 3);
}

/* Data for a connection: the server queues it for echoing, the client
 * checks it against the pattern. */
static void conn_data(struct conn *c, const uint8_t *p, uint32_t len)
{
	if (vs.server) {
		uint32_t used = c->ring_head - c->ring_tail;
		if (len > SERVER_BUF - used) {
			vs.credit_violations++; /* the peer ignored our buf_alloc: drop */
			return;
		}
		uint32_t at = c->ring_head & (SERVER_BUF - 1);
		uint32_t first = len < SERVER_BUF - at ? len : SERVER_BUF - at;
		memcpy(c->ring + at, p, first);
		memcpy(c->ring, p + first, len - first);
		c->ring_head += len;
		c->received += len;
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		uint8_t want = (uint8_t)((c->received + i) * 7 + 3);
		if (p[i] != want)
			check_fail("byte %lu: received 0x%02x, expected 0x%02x", c->received + i,
				   p[i], want);
	}
	if (c->received + len > opts.vsock_bytes)
		check_fail("received %lu bytes, more than the %lu expected", c->received + len,
			   opts.vsock_bytes);
	vs.crc = crc32_ieee_update(vs.crc, p, len);
	c->received += len;
	c->fwd_cnt += len; /* consumed at once */
}

static void handle_packet(const uint8_t *buf, uint32_t used_len)
{
	struct hdr h;

	if (used_len < HDR) {
		vs.bad++;
		return;
	}
	memcpy(&h, buf, HDR);
	if (h.len > used_len - HDR)
		check_fail("rx packet op=%s len=%u in a buffer the device filled with %u bytes",
			   op_name(h.op), h.len, used_len);
	if (h.dst_cid != vs.cid) {
		vs.bad++;
		return;
	}
	if (h.type != TYPE_STREAM) {
		if (h.op != OP_RST)
			queue_rst(h.src_cid, h.src_port, h.dst_port);
		vs.bad++;
		return;
	}
	struct conn *c = conn_find(h.src_cid, h.src_port, h.dst_port);
	if (!c) {
		if (h.op == OP_REQUEST && vs.server && h.dst_port == opts.vsock_port &&
		    conns_open() < opts.vsock_conns) {
			for (uint64_t i = 0; i < opts.vsock_conns && !c; i++)
				if (vs.conns[i].state == FREE)
					c = &vs.conns[i];
		}
		if (!c) {
			if (h.op == OP_REQUEST)
				vs.refused++;
			if (h.op != OP_RST)
				queue_rst(h.src_cid, h.src_port, h.dst_port);
			return;
		}
		uint8_t *ring = c->ring;
		*c = (struct conn){.state = ESTABLISHED,
				   .peer_cid = h.src_cid,
				   .peer_port = h.src_port,
				   .local_port = h.dst_port,
				   .buf_alloc = SERVER_BUF,
				   .want_response = true,
				   .ring = ring};
		vs.accepted++;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;

	switch (h.op) {
	case OP_REQUEST:
		break; /* new (answered above) or a repeat */
	case OP_RESPONSE:
		if (c->state == CONNECTING)
			c->state = ESTABLISHED;
		else
			c->want_rst = true;
		break;
	case OP_RW:
		if (c->state == ESTABLISHED || c->state == CLOSING)
			conn_data(c, buf + HDR, h.len);
		break;
	case OP_CREDIT_UPDATE:
		break;
	case OP_CREDIT_REQUEST:
		c->want_credit = true;
		break;
	case OP_SHUTDOWN:
		c->peer_shutdown |= h.flags & SHUTDOWN_BOTH;
		break;
	case OP_RST:
		if (!vs.server && c->state != CLOSING) {
			if (c->state == CONNECTING)
				check_fail("connection to cid %lu port %u refused (RST)", h.src_cid,
					   h.src_port);
			check_fail(
			    "connection reset by the peer after %lu bytes sent, %lu received",
			    c->sent, c->received);
		}
		if (!vs.server)
			vs.client_done = true;
		conn_free(c);
		break;
	default:
		vs.bad++;
		c->want_rst = true;
	}
}

/* Send what the connection owes and may send; false when out of tx slots. */
static bool conn_pump(struct conn *c)
{
	if (c->want_rst) {
		if (!conn_send(c, OP_RST, 0, -1, 0))
			return false;
		if (!vs.server)
			vs.client_done = true;
		conn_free(c);
		return true;
	}
	if (c->want_response) {
		if (!conn_send(c, OP_RESPONSE, 0, -1, 0))
			return false;
		c->want_response = false;
	}
	if (c->state == CONNECTING)
		return true;

	/* Data, within the peer's credit. */
	bool blocked = false;
	for (;;) {
		uint32_t avail;
		if (vs.server) {
			if (c->peer_shutdown & SHUTDOWN_RCV) {
				/* The peer takes no more: what we hold is consumed. */
				c->fwd_cnt += c->ring_head - c->ring_tail;
				c->ring_tail = c->ring_head;
			}
			avail = c->ring_head - c->ring_tail;
		} else {
			avail = (uint32_t)(opts.vsock_bytes - c->sent < TX_MAX
					       ? opts.vsock_bytes - c->sent
					       : TX_MAX);
			if (c->peer_shutdown & SHUTDOWN_RCV && avail)
				check_fail("peer shut down receiving after %lu of %lu bytes",
					   c->sent, opts.vsock_bytes);
		}
		if (!avail || c->state != ESTABLISHED)
			break;
		uint32_t credit = peer_credit(c), n = avail;
		if (!credit) {
			blocked = true;
			break;
		}
		if (n > credit)
			n = credit;
		if (n > TX_MAX)
			n = TX_MAX;
		int slot = tx_slot();
		if (slot < 0)
			return false;
		uint8_t *d = slot_data(slot);
		if (vs.server) {
			uint32_t at = c->ring_tail & (SERVER_BUF - 1);
			uint32_t first = n < SERVER_BUF - at ? n : SERVER_BUF - at;
			memcpy(d, c->ring + at, first);
			memcpy(d + first, c->ring, n - first);
			c->ring_tail += n;
			c->fwd_cnt += n;
			vs.echoed += n;
		} else {
			pattern(d, c->sent, n);
		}
		conn_send(c, OP_RW, 0, slot, n);
		c->tx_cnt += n;
		c->sent += n;
		c->credit_req_sent = false;
	}

	/* Out of credit with data to send: ask once the stall lasts. */
	if (!blocked) {
		c->stalled_since = 0;
	} else if (!c->stalled_since) {
		c->stalled_since = rdtsc();
	} else if (!c->credit_req_sent &&
		   rdtsc() - c->stalled_since > tsc_hz() / 1000000 * CREDIT_REQ_US) {
		if (!conn_send(c, OP_CREDIT_REQUEST, 0, -1, 0))
			return false;
		c->credit_req_sent = true;
	}

	/* Tell the peer about space we freed that no data packet carried. */
	if (c->want_credit || c->fwd_cnt - c->fwd_sent >= c->buf_alloc / 4) {
		if (!conn_send(c, OP_CREDIT_UPDATE, 0, -1, 0))
			return false;
		c->want_credit = false;
	}

	/* Closing. */
	if (c->state == ESTABLISHED) {
		bool finished;
		if (vs.server)
			finished =
			    (c->peer_shutdown & SHUTDOWN_SEND) &&
			    ((c->peer_shutdown & SHUTDOWN_RCV) || c->ring_head == c->ring_tail);
		else
			finished = c->sent == opts.vsock_bytes && c->received == opts.vsock_bytes;
		if (finished && c->peer_shutdown == SHUTDOWN_BOTH) {
			c->want_rst = true; /* the peer is done both ways: end it */
			return conn_pump(c);
		}
		if (finished) {
			if (!conn_send(c, OP_SHUTDOWN, SHUTDOWN_BOTH, -1, 0))
				return false;
			c->state = CLOSING;
			c->close_deadline = tsc_after_us(CLOSE_WAIT_US);
		}
	} else if (c->state == CLOSING) {
		if (c->peer_shutdown == SHUTDOWN_BOTH || tsc_passed(c->close_deadline)) {
			c->want_rst = true; /* both sides shut down, or no RST came */
			return conn_pump(c);
		}
	}
	return true;
}

static void pump_all(void)
{
	while (vs.nrsts) {
		int slot = tx_slot();
		if (slot < 0)
			return;
		struct pending_rst *r = &vs.rsts[--vs.nrsts];
		tx_packet(slot, r->cid, r->peer_port, r->local_port, OP_RST, 0, 0, 0, 0);
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (vs.conns[i].state != FREE && !conn_pump(&vs.conns[i]))
			return;
}

/* --------------------------------------------------------------- device */

static void post_rx(uint16_t i)
{
	struct vbuf v = {vs.rx_bufs + (uint64_t)i * RX_STRIDE, RX_LEN, true};
	if (virtq_add(vs.rxq, &v, 1, i) < 0)
		check_fail("internal: rx ring full");
}

static void post_event(uint16_t i)
{
	struct vbuf v = {vs.ev_bufs + (uint64_t)i * 8, 8, true};
	if (virtq_add(vs.evq, &v, 1, i) < 0)
		check_fail("internal: event ring full");
}

static void vsock_open(bool server)
{
	memset(&vs, 0, sizeof(vs));
	vs.server = server;
	dma_reset();
	virtio_open(&vs.dev, VIRTIO_ID_VSOCK, 1ull << VIRTIO_VSOCK_F_STREAM);
	vs.rxq = virtio_queue(&vs.dev, 0, QUEUE_MAX);
	vs.txq = virtio_queue(&vs.dev, 1, QUEUE_MAX);
	vs.evq = virtio_queue(&vs.dev, 2, NEVENT);
	vs.rx_bufs = dma_alloc((uint64_t)vs.rxq->size * RX_STRIDE, 4096);
	vs.ev_bufs = dma_alloc(8 * NEVENT, 64);
	vs.tx_hdrs = dma_alloc(NTX * TX_HDR_STRIDE, 64);
	vs.tx_data = dma_alloc((uint64_t)NTX * TX_MAX, 4096);
	for (uint16_t i = 0; i < NTX; i++)
		vs.tx_free[vs.ntx_free++] = i;
	if (server) {
		uint64_t n = opts.vsock_conns < MAX_CONNS ? opts.vsock_conns : MAX_CONNS;
		for (uint64_t i = 0; i < n; i++)
			vs.conns[i].ring = dma_alloc(SERVER_BUF, 4096);
		if (opts.vsock_conns > MAX_CONNS)
			opts.vsock_conns = MAX_CONNS;
	}
	vs.cid = virtio_cfg64(&vs.dev, 0) & 0xffffffffu; /* upper half reserved */
	for (uint16_t i = 0; i < vs.rxq->size; i++)
		post_rx(i);
	for (uint16_t i = 0; i < vs.evq->size; i++)
		post_event(i);
	virtio_driver_ok(&vs.dev);
	virtq_kick(vs.rxq);
	virtq_kick(vs.evq);
}

/* A transport reset (the VM was restored from a snapshot, or migrated): the
 * host side of every connection is gone, and the CID may have changed. As
 * Linux does: drop every connection without a word to the peer (it has none
 * of them any more), read the CID again, and keep listening. */
static void transport_reset(void)
{
	unsigned dropped = 0;

	vs.resets++;
	vs.cid = virtio_cfg64(&vs.dev, 0) & 0xffffffffu;
	if (!vs.server)
		check_fail("transport reset during the transfer");
	for (int i = 0; i < MAX_CONNS; i++) {
		if (vs.conns[i].state != FREE) {
			vs.conns[i].state = FREE;
			dropped++;
		}
	}
	vs.dropped += dropped;
	vs.nrsts = 0; /* owed to peers of the old transport */
	kprintf("vsock: transport reset, cid=%lu, %u connections dropped\n", vs.cid, dropped);
}

/* One round of the event loop; true if anything happened. */
static bool poll_once(void)
{
	uint64_t i;
	uint32_t len;
	bool work = false;

	/* Events first: packets after a transport reset belong to the new host
	 * side, and must not be dropped with the old connections. */
	while (virtq_get(vs.evq, &i, &len)) {
		if (i >= vs.evq->size)
			check_fail("internal: event cookie %lu", i);
		if (len >= 4 && load_u32(vs.ev_bufs + i * 8) == EVENT_TRANSPORT_RESET)
			transport_reset();
		post_event((uint16_t)i);
		virtq_kick(vs.evq);
		work = true;
	}
	bool rx_work = false;
	while (virtq_get(vs.rxq, &i, &len)) {
		if (i >= vs.rxq->size)
			check_fail("internal: rx cookie %lu", i);
		handle_packet(vs.rx_bufs + i * RX_STRIDE, len);
		post_rx((uint16_t)i);
		rx_work = true;
	}
	if (rx_work)
		virtq_kick(vs.rxq);
	work |= rx_work;
	reap_tx();
	pump_all();
	if (vs.tx_added) {
		virtq_kick(vs.txq);
		vs.tx_added = false;
		work = true;
	}
	return work;
}

static bool rst_pending(void)
{
	if (vs.nrsts)
		return true;
	for (int i = 0; i < MAX_CONNS; i++)
		if (vs.conns[i].state != FREE && vs.conns[i].want_rst)
			return true;
	return false;
}

static void vsock_close(void)
{
	/* Let queued packets (final RSTs) leave before the reset. */
	uint64_t end = tsc_after_us(CLOSE_WAIT_US);
	while ((virtq_in_flight(vs.txq) || rst_pending()) && !tsc_passed(end)) {
		if (!poll_once())
			virtio_wait(&vs.dev);
	}
	if (vs.dev.irq_mode)
		kprintf("vsock: interrupts=%lu\n", virtio_irq_count(&vs.dev));
	virtio_close(&vs.dev);
}

static uint64_t elapsed_ms(uint64_t t0)
{
	return (rdtsc() - t0) / (tsc_hz() / 1000);
}

void check_vsock_server(void)
{
	vsock_open(true);
	kprintf("vsock: listening cid=%lu port=%lu conns=%lu secs=%lu expect=%lu\n", vs.cid,
		opts.vsock_port, opts.vsock_conns, opts.vsock_secs, opts.vsock_expect);
	uint64_t end = tsc_after_us(opts.vsock_secs * 1000000);
	while (!tsc_passed(end)) {
		if (opts.vsock_expect && vs.closed >= opts.vsock_expect && !conns_open())
			break;
		if (!poll_once())
			virtio_wait(&vs.dev);
	}
	/* Time is up: reset whatever is still open. */
	uint64_t closed = vs.closed, still_open = conns_open();
	for (int i = 0; i < MAX_CONNS; i++)
		if (vs.conns[i].state != FREE)
			vs.conns[i].want_rst = true;
	kprintf("vsock: accepted=%lu closed=%lu still_open=%lu refused=%lu echoed=%lu bad=%lu "
		"credit_violations=%lu resets=%lu dropped=%lu\n",
		vs.accepted, closed, still_open, vs.refused, vs.echoed, vs.bad,
		vs.credit_violations, vs.resets, vs.dropped);
	vsock_close();
	if (vs.credit_violations)
		check_fail("conns=%lu bytes=%lu: peers exceeded our credit %lu times", vs.accepted,
			   vs.echoed, vs.credit_violations);
	if (opts.vsock_expect && closed < opts.vsock_expect)
		check_fail("conns=%lu bytes=%lu closed=%lu expected=%lu", vs.accepted, vs.echoed,
			   closed, opts.vsock_expect);
	check_pass("conns=%lu bytes=%lu", vs.accepted, vs.echoed);
}

void check_vsock_client(void)
{
	vsock_open(false);
	struct conn *c = &vs.conns[0];
	*c = (struct conn){.state = CONNECTING,
			   .peer_cid = opts.vsock_cid,
			   .peer_port = (uint32_t)opts.vsock_port,
			   .local_port = 49152 + (uint32_t)(rdtsc() & 0x3fff),
			   .buf_alloc = CLIENT_BUF};
	vs.client = c;
	kprintf("vsock: cid=%lu connecting to cid=%lu port=%lu from port %u, %lu bytes%s\n", vs.cid,
		opts.vsock_cid, opts.vsock_port, c->local_port, opts.vsock_bytes,
		opts.vsock_sink ? " (sink: the host sends its own after ours)" : "");
	int slot = tx_slot();
	tx_packet(slot, c->peer_cid, c->peer_port, c->local_port, OP_REQUEST, 0, 0, c->buf_alloc,
		  0);
	virtq_kick(vs.txq);
	vs.tx_added = false;

	uint64_t t0 = rdtsc(), end = tsc_after_us(opts.vsock_secs * 1000000), t_connected = 0;
	uint64_t t_done = 0;
	while (!vs.client_done) {
		if (tsc_passed(end)) {
			virtio_check_status(&vs.dev);
			check_fail("%s after %lu s: sent %lu, received %lu of %lu bytes",
				   c->state == CONNECTING ? "no RESPONSE" : "timeout",
				   opts.vsock_secs, c->sent, c->received, opts.vsock_bytes);
		}
		if (!poll_once())
			virtio_wait(&vs.dev);
		if (!t_connected && c->state != CONNECTING)
			t_connected = rdtsc();
		if (!t_done && c->received == opts.vsock_bytes && c->sent == opts.vsock_bytes)
			t_done = rdtsc();
	}
	if (c->received != opts.vsock_bytes)
		check_fail("closed after %lu of %lu bytes", c->received, opts.vsock_bytes);
	uint64_t ms = t_done > t_connected ? (t_done - t_connected) / (tsc_hz() / 1000) : 0;
	kprintf(
	    "vsock: sent=%lu received=%lu connect_ms=%lu transfer_ms=%lu mbs=%lu total_ms=%lu\n",
	    c->sent, c->received, (t_connected - t0) / (tsc_hz() / 1000), ms,
	    ms ? (c->sent + c->received) / 1000 / ms : 0, elapsed_ms(t0));
	vsock_close();
	check_pass("bytes=%lu crc32=%08x", c->received, vs.crc);
}
