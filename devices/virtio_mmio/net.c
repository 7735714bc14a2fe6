#include "devices/virtio_mmio/net.h"
#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#define NET_QUEUE_SIZE 256
#define RXQ	       0
#define TXQ	       1
/* virtio_net_hdr_v1: VERSION_1 always has num_buffers, so the tap's header is 12 bytes too. */
#define HDR_LEN sizeof(struct virtio_net_hdr_v1)
/* Behind the guest's buffers each read gets this much room for the rest of a frame that did
 * not fit: more than the largest frame a tap hands over (64 KiB of GSO frame, a VLAN tag, the
 * header), so a frame the kernel had to cut short shows as one that fills it. */
#define RX_SPILL (HDR_LEN + 65536 + 1024)
/* With mergeable buffers, take at least this much before reading, so that ordinary frames
 * land in guest memory directly; bigger ones continue through the spill buffer. */
#define RX_DIRECT_BYTES 1536
/* Frames per wakeup, so TX and the other devices on the loop get their turn. */
#define RX_BUDGET 64
/* readv's limit is 1024 segments: room for one more chain of up to 256, and the spill. */
#define RX_IOV_MAX (1024 - VIRTQ_MAX_SIZE - 1)

#define BIT(f) (1ull << (f))
#define NET_FEATURES                                                                               \
	(BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |    \
	 BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) |                              \
	 BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN) |  \
	 BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS))

/* A receive buffer taken from the ring and not yet returned. */
struct rx_held {
	uint16_t head;
	uint32_t cap; /* its writable bytes */
};

enum rx_result { RX_DELIVERED, RX_DROPPED, RX_EMPTY, RX_NO_BUFFERS, RX_BROKEN };

struct virtio_net {
	struct virtio_mmio_dev transport;
	struct net_config cfg;
	char ifname[IFNAMSIZ];
	int tap_fd;
	uint8_t mac[6];
	bool link_up;
	uint64_t features; /* what the driver accepted; 0 after a reset */
	struct event_loop *loop;
	bool tap_polled;      /* the tap is in the loop (until it disappears) */
	uint32_t poll_events; /* what the loop watches on it now */
	bool rx_waiting;      /* reading stopped until the driver posts receive buffers */
	bool tx_blocked;      /* the tap said EAGAIN; TX resumes when it is writable */
	bool quiesced;	      /* for a snapshot: neither the tap nor the queues are served */
	/* The frame being received: rx_len bytes, header included, of which rx_placed are in the
	 * held buffers and the rest in rx_spill from rx_spill_off. rx_len == 0: none. */
	size_t rx_len, rx_placed, rx_spill_off;
	unsigned rx_nheld, rx_held_desc;
	struct rx_held rx_held[VIRTQ_MAX_SIZE];
	unsigned rx_hdr_niov; /* rx_iov[0, rx_hdr_niov): the first buffer, where the header goes */
	struct iovec rx_iov[RX_IOV_MAX + VIRTQ_MAX_SIZE + 1];
	uint8_t *rx_spill;
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
	struct virtq_chain chain;
	struct net_stats stats;
	struct virtio_device_ops ops;
};

/* ---- configuration ---- */

static bool valid_ifname(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || *s == '%' || *s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* XX:XX:XX:XX:XX:XX, nothing more or less. */
static bool parse_mac(const char *s, uint8_t mac[6])
{
	for (unsigned i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	if (s[17])
		return false;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)strtoul(s + 3 * i, NULL, 16);
	return true;
}

static int parse_option(const char *spec, char *key, struct net_config *cfg, bool *have_id)
{
	char *val = strchr(key, '=');
	if (!val || val[1] == 0)
		return err_set(EINVAL,
			       "--net %s: unknown or empty option '%s' (expected "
			       "tap=NAME|fd=N[,mac=XX:XX:XX:XX:XX:XX][,id=ID])",
			       spec, key);
	*val++ = 0;
	if (strcmp(key, "tap") == 0 || strcmp(key, "fd") == 0) {
		if (cfg->tap[0] || cfg->fd >= 0)
			return err_set(EINVAL, "--net %s: give one tap=NAME or one fd=N", spec);
	}
	if (strcmp(key, "tap") == 0) {
		if (!valid_ifname(val))
			return err_set(
			    EINVAL,
			    "--net %s: '%s' is not an interface name (1 to %d characters, "
			    "no '/', ':', '%%' or spaces)",
			    spec, val, IFNAMSIZ - 1);
		snprintf(cfg->tap, sizeof(cfg->tap), "%s", val);
	} else if (strcmp(key, "fd") == 0) {
		char *end;
		errno = 0;
		long fd = strtol(val, &end, 10);
		if (*end || errno || fd < 0 || fd > INT_MAX)
			return err_set(EINVAL, "--net %s: fd=%s is not a file descriptor number",
				       spec, val);
		if (fcntl((int)fd, F_GETFD) < 0)
			return err_set(EBADF, "--net %s: fd %ld is not open in this process", spec,
				       fd);
		cfg->fd = (int)fd;
	} else if (strcmp(key, "mac") == 0) {
		if (cfg->mac_set)
			return err_set(EINVAL, "--net %s: mac= given twice", spec);
		if (!parse_mac(val, cfg->mac))
			return err_set(EINVAL,
				       "--net %s: mac=%s: expected six hex bytes like "
				       "AA:FC:00:00:00:01",
				       spec, val);
		if (cfg->mac[0] & 1)
			return err_set(EINVAL,
				       "--net %s: mac=%s is a multicast address (the first byte "
				       "must be even)",
				       spec, val);
		static const uint8_t zero[6];
		if (memcmp(cfg->mac, zero, 6) == 0)
			return err_set(EINVAL, "--net %s: mac=%s is not an address", spec, val);
		cfg->mac_set = true;
	} else if (strcmp(key, "id") == 0) {
		if (*have_id)
			return err_set(EINVAL, "--net %s: id= given twice", spec);
		if (strlen(val) > NET_ID_MAX)
			return err_set(EINVAL, "--net %s: id longer than %d bytes", spec,
				       NET_ID_MAX);
		snprintf(cfg->id, sizeof(cfg->id), "%s", val);
		*have_id = true;
	} else {
		return err_set(EINVAL,
			       "--net %s: unknown option '%s' (expected "
			       "tap=NAME|fd=N[,mac=XX:XX:XX:XX:XX:XX][,id=ID])",
			       spec, key);
	}
	return 0;
}

int net_config_parse(const char *spec, struct net_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->fd = -1;
	char *copy = strdup(spec);
	if (!copy)
		return err_set(ENOMEM, "--net");
	int r = 0;
	bool have_id = false;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save))
		r = parse_option(spec, tok, cfg, &have_id);
	free(copy);
	if (r == 0 && !cfg->tap[0] && cfg->fd < 0)
		r = err_set(EINVAL, "--net %s: tap=NAME or fd=N is required", spec);
	if (r == 0 && !have_id) {
		if (cfg->tap[0])
			snprintf(cfg->id, sizeof(cfg->id), "%s", cfg->tap);
		else
			snprintf(cfg->id, sizeof(cfg->id), "fd%d", cfg->fd);
	}
	return r;
}

/* ---- the tap ---- */

static void tap_error(struct virtio_net *n, const char *what, int err)
{
	uint64_t count = ++n->stats.tap_errors;
	/* A guest can make the tap refuse frames at will: log 1, 2, 4, 8 ... of them. */
	if ((count & (count - 1)) == 0)
		log_warn("net %s: tap %s: %s: %s (%llu tap errors so far)", n->cfg.id, n->ifname,
			 what, strerror(err), (unsigned long long)count);
}

/* 12-byte headers, no offloads until a driver accepts some, nonblocking. */
static int tap_setup(struct virtio_net *n)
{
	int size = HDR_LEN;
	if (ioctl(n->tap_fd, TUNSETVNETHDRSZ, &size) < 0)
		return err_errno("net %s: tap %s: TUNSETVNETHDRSZ", n->cfg.id, n->ifname);
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, 0u) < 0)
		return err_errno("net %s: tap %s: TUNSETOFFLOAD", n->cfg.id, n->ifname);
	int fl = fcntl(n->tap_fd, F_GETFL);
	if (fl < 0 || fcntl(n->tap_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(n->tap_fd, F_SETFD, FD_CLOEXEC) < 0)
		return err_errno("net %s: tap %s: fcntl", n->cfg.id, n->ifname);
	return 0;
}

/* fd=N: check that the parent handed over a tap opened the way the data path needs. */
static int tap_adopt(struct virtio_net *n)
{
	const struct net_config *cfg = &n->cfg;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	n->tap_fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0);
	if (n->tap_fd < 0)
		return err_errno("net %s: fd %d", cfg->id, cfg->fd);
	if (ioctl(n->tap_fd, TUNGETIFF, &ifr) < 0)
		return err_errno("net %s: fd %d is not an attached tap (TUNGETIFF)", cfg->id,
				 cfg->fd);
	snprintf(n->ifname, sizeof(n->ifname), "%.*s", IFNAMSIZ - 1, ifr.ifr_name);
	const char *missing = !(ifr.ifr_flags & IFF_TAP)	? "IFF_TAP (it is a tun)"
			      : !(ifr.ifr_flags & IFF_NO_PI)	? "IFF_NO_PI"
			      : !(ifr.ifr_flags & IFF_VNET_HDR) ? "IFF_VNET_HDR"
								: NULL;
	if (missing)
		return err_set(EINVAL, "net %s: fd %d (%s) was opened without %s", cfg->id, cfg->fd,
			       n->ifname, missing);
	return tap_setup(n);
}

static int tap_open(struct virtio_net *n)
{
	const struct net_config *cfg = &n->cfg;
	if (cfg->fd >= 0)
		return tap_adopt(n);
	snprintf(n->ifname, sizeof(n->ifname), "%s", cfg->tap);
	n->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap_fd < 0) {
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			return err_errno("net %s: /dev/net/tun is missing (no tun module, or not "
					 "created in this jail)",
					 cfg->id);
		return err_errno("net %s: cannot open /dev/net/tun", cfg->id);
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->tap);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(n->tap_fd, TUNSETIFF, &ifr) < 0) {
		switch (errno) {
		case EPERM:
			return err_errno("net %s: not allowed to create or attach tap %s (needs "
					 "CAP_NET_ADMIN, or a persistent tap owned by this user)",
					 cfg->id, cfg->tap);
		case EBUSY:
			return err_errno("net %s: tap %s is busy (another process has it open, or "
					 "it is a multi-queue tap)",
					 cfg->id, cfg->tap);
		case EINVAL:
			return err_errno("net %s: %s exists and is not a single-queue tap (a tun, "
					 "or another kind of interface)",
					 cfg->id, cfg->tap);
		default:
			return err_errno("net %s: TUNSETIFF %s", cfg->id, cfg->tap);
		}
	}
	return tap_setup(n);
}

/* The tap fd's events in the loop: EPOLLIN while the guest can take frames, EPOLLOUT while a
 * write waits. Called with the transport lock held. */
static void set_poll(struct virtio_net *n, uint32_t events)
{
	if (!n->tap_polled || events == n->poll_events)
		return;
	if (event_loop_modify(n->loop, n->tap_fd, events) < 0)
		log_warn("net %s: %s", n->cfg.id, err_msg());
	else
		n->poll_events = events;
}

static void update_poll(struct virtio_net *n)
{
	const struct virtio_mmio_dev *t = &n->transport;
	uint32_t events = 0;
	if (n->quiesced) {
		set_poll(n, 0);
		return;
	}
	if (t->active && t->queues[RXQ].s.ready && !n->rx_waiting)
		events |= EPOLLIN;
	if (t->active && n->tx_blocked)
		events |= EPOLLOUT;
	set_poll(n, events);
}

/* ---- receive: tap → guest ---- */

static bool acked(const struct virtio_net *n, unsigned feature)
{
	return n->features & BIT(feature);
}

static void iov_copy(const struct iovec *iov, unsigned niov, void *buf, size_t len, bool to_iov)
{
	for (unsigned i = 0; i < niov && len; i++) {
		size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;
		if (to_iov)
			memcpy(iov[i].iov_base, buf, k);
		else
			memcpy(buf, iov[i].iov_base, k);
		buf = (uint8_t *)buf + k;
		len -= k;
	}
}

/* Give back every held buffer untouched, and forget the frame. */
static void rx_release(struct virtio_net *n)
{
	for (unsigned i = 0; i < n->rx_nheld; i++)
		virtq_unpop(&n->transport.queues[RXQ]);
	n->rx_nheld = n->rx_held_desc = 0;
	n->rx_len = 0;
}

/* Take one receive buffer: 1, 0 if none is posted, <0 if the driver broke the rules. */
static int rx_take(struct virtio_net *n)
{
	struct virtq_chain *c = &n->chain;
	int r = virtq_pop(&n->transport.queues[RXQ], c);
	if (r <= 0)
		return r;
	/* Frames are far below 4 GiB: a larger buffer just takes a whole frame. */
	uint32_t cap = c->writable_len < UINT32_MAX ? (uint32_t)c->writable_len : UINT32_MAX;
	n->rx_held[n->rx_nheld++] = (struct rx_held){c->head, cap};
	n->rx_held_desc += c->nsegs;
	if (c->nreadable)
		return err_set(EPROTO, "receive buffer %u has a device-readable descriptor",
			       c->head);
	/* Every buffer holds at least a header (5.1.6.3.1), so the first one holds it whole. */
	if (c->writable_len < HDR_LEN)
		return err_set(EPROTO,
			       "receive buffer %u is %llu bytes, less than the %zu-byte header",
			       c->head, (unsigned long long)c->writable_len, HDR_LEN);
	return 1;
}

/* Offloads in the frame's header that the driver did not accept (frames queued in the tap
 * before the driver's offloads were set), and the header fixed up for this driver. */
static bool rx_header_ok(const struct virtio_net *n, struct virtio_net_hdr_v1 *h)
{
	if (!acked(n, VIRTIO_NET_F_GUEST_CSUM)) {
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return false;
		h->flags = 0; /* 5.1.6.4.1: no flags without GUEST_CSUM */
	}
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !acked(n, VIRTIO_NET_F_GUEST_ECN))
		return false;
	switch (h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return true;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return acked(n, VIRTIO_NET_F_GUEST_TSO4);
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return acked(n, VIRTIO_NET_F_GUEST_TSO6);
	default:
		return false;
	}
}

/* The whole frame is in the held buffers: write the header and return them. */
static enum rx_result rx_finish(struct virtio_net *n)
{
	struct virtq *q = &n->transport.queues[RXQ];
	struct virtio_net_hdr_v1 h;
	iov_copy(n->rx_iov, n->rx_hdr_niov, &h, HDR_LEN, false);
	if (!rx_header_ok(n, &h)) {
		n->stats.rx_dropped_offload++;
		rx_release(n);
		return RX_DROPPED;
	}
	/* Buffers are filled in order, each up to its size: the frame uses the first `used`. */
	unsigned used = 0;
	for (size_t left = n->rx_len; left; used++)
		left -= n->rx_held[used].cap < left ? n->rx_held[used].cap : left;
	h.num_buffers = htole16((uint16_t)used);
	iov_copy(n->rx_iov, n->rx_hdr_niov, &h, HDR_LEN, true);
	for (unsigned i = used; i < n->rx_nheld; i++)
		virtq_unpop(q);
	size_t left = n->rx_len;
	for (unsigned i = 0; i < used; i++) {
		uint32_t len = n->rx_held[i].cap < left ? n->rx_held[i].cap : (uint32_t)left;
		virtq_push(q, n->rx_held[i].head, len);
		left -= len;
	}
	n->stats.rx_frames++;
	n->stats.rx_bytes += n->rx_len - HDR_LEN;
	n->rx_nheld = n->rx_held_desc = 0;
	n->rx_len = 0;
	return RX_DELIVERED;
}

static enum rx_result rx_too_big(struct virtio_net *n)
{
	n->stats.rx_dropped_too_big++;
	log_debug("net %s: dropped a %zu-byte frame: larger than the receive buffers", n->cfg.id,
		  n->rx_len);
	rx_release(n);
	return RX_DROPPED;
}

/* Move the part of the frame that went to the spill buffer into more buffers (mergeable
 * buffers only); waits, holding what it has, until the driver posts enough. */
static enum rx_result rx_place(struct virtio_net *n)
{
	while (n->rx_placed < n->rx_len) {
		/* Holding all of the driver's descriptors, it can post no more. */
		if (n->rx_held_desc >= n->transport.queues[RXQ].s.num)
			return rx_too_big(n);
		int r = rx_take(n);
		if (r < 0)
			return RX_BROKEN;
		if (r == 0) {
			n->stats.rx_waits++;
			return RX_NO_BUFFERS;
		}
		size_t want = n->rx_len - n->rx_placed;
		size_t done = virtq_chain_write(&n->chain, 0, n->rx_spill + n->rx_spill_off, want);
		n->rx_spill_off += done;
		n->rx_placed += done;
	}
	return rx_finish(n);
}

/* Read the next frame straight into the driver's buffers, what does not fit into the spill. */
static enum rx_result rx_read(struct virtio_net *n)
{
	bool mergeable = acked(n, VIRTIO_NET_F_MRG_RXBUF);
	unsigned niov = 0;
	size_t cap = 0;
	n->rx_nheld = n->rx_held_desc = 0;
	while (n->rx_nheld == 0 || (mergeable && cap < RX_DIRECT_BYTES && niov < RX_IOV_MAX)) {
		int r = rx_take(n);
		if (r < 0)
			return RX_BROKEN;
		if (r == 0)
			break;
		const struct virtq_chain *c = &n->chain;
		for (unsigned i = 0; i < c->nsegs; i++)
			n->rx_iov[niov++] = (struct iovec){c->segs[i].host, c->segs[i].len};
		cap += c->writable_len;
		if (n->rx_nheld == 1)
			n->rx_hdr_niov = niov;
	}
	if (n->rx_nheld == 0) {
		n->stats.rx_waits++;
		return RX_NO_BUFFERS;
	}
	n->rx_iov[niov++] = (struct iovec){n->rx_spill, RX_SPILL};
	ssize_t got = readv(n->tap_fd, n->rx_iov, (int)niov);
	if (got < 0) {
		int e = errno;
		rx_release(n);
		if (e != EAGAIN && e != EINTR)
			tap_error(n, "read", e);
		return RX_EMPTY;
	}
	n->rx_len = (size_t)got;
	if (n->rx_len < HDR_LEN) {
		tap_error(n, "read", EPROTO);
		rx_release(n);
		return RX_DROPPED;
	}
	if (n->rx_len >= cap + RX_SPILL || (n->rx_len > cap && !mergeable))
		return rx_too_big(n);
	n->rx_placed = n->rx_len < cap ? n->rx_len : cap;
	n->rx_spill_off = 0;
	return rx_place(n);
}

static void rx_process(struct virtio_net *n)
{
	struct virtio_mmio_dev *t = &n->transport;
	bool delivered = false;
	for (unsigned i = 0; i < RX_BUDGET && t->active && t->queues[RXQ].s.ready; i++) {
		enum rx_result r = n->rx_len ? rx_place(n) : rx_read(n);
		if (r == RX_DELIVERED)
			delivered = true;
		else if (r == RX_NO_BUFFERS)
			n->rx_waiting = true;
		else if (r == RX_BROKEN)
			virtio_mmio_fail(t, err_msg());
		if (r != RX_DELIVERED && r != RX_DROPPED)
			break;
	}
	if (delivered)
		virtio_mmio_used(t, RXQ);
	update_poll(n);
}

/* ---- transmit: guest → tap ---- */

static void tx_process(struct virtio_net *n)
{
	struct virtio_mmio_dev *t = &n->transport;
	struct virtq *q = &t->queues[TXQ];
	struct virtq_chain *c = &n->chain;
	bool returned = false;
	while (!n->tx_blocked) {
		int r = virtq_pop(q, c);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_fail(t, err_msg());
			break;
		}
		if (c->nsegs > c->nreadable) {
			virtio_mmio_fail(t, "transmit chain with a device-writable descriptor");
			break;
		}
		if (c->readable_len < HDR_LEN) {
			virtio_mmio_fail(t, "transmit chain shorter than the 12-byte header");
			break;
		}
		for (unsigned i = 0; i < c->nreadable; i++)
			n->tx_iov[i] = (struct iovec){c->segs[i].host, c->segs[i].len};
		ssize_t w = writev(n->tap_fd, n->tx_iov, (int)c->nreadable);
		int e = errno;
		if (w < 0 && (e == EAGAIN || e == EINTR)) {
			virtq_unpop(q);
			n->tx_blocked = e == EAGAIN;
			continue;
		}
		if (w < 0) {
			tap_error(n, "write", e);
			n->stats.tx_dropped++;
		} else {
			n->stats.tx_frames++;
			n->stats.tx_bytes += c->readable_len - HDR_LEN;
		}
		virtq_push(q, c->head, 0);
		returned = true;
	}
	if (returned)
		virtio_mmio_used(t, TXQ);
}

/* ---- the transport's callbacks ---- */

static void config_read(void *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = dev;
	struct virtio_net_config c;
	memset(&c, 0, sizeof(c));
	memcpy(c.mac, n->mac, sizeof(c.mac));
	c.status = htole16(n->link_up ? VIRTIO_NET_S_LINK_UP : 0);
	memcpy(data, (uint8_t *)&c + off, len);
}

/* Dependencies between offload features (virtio 1.2, 5.1.3.1). */
static const char *missing_dependency(uint64_t f)
{
	if ((f & (BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6))) &&
	    !(f & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return "GUEST_TSO4/6 without GUEST_CSUM";
	if ((f & BIT(VIRTIO_NET_F_GUEST_ECN)) &&
	    !(f & (BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6))))
		return "GUEST_ECN without GUEST_TSO4/6";
	if ((f & (BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6))) &&
	    !(f & BIT(VIRTIO_NET_F_CSUM)))
		return "HOST_TSO4/6 without CSUM";
	if ((f & BIT(VIRTIO_NET_F_HOST_ECN)) &&
	    !(f & (BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6))))
		return "HOST_ECN without HOST_TSO4/6";
	return NULL;
}

static int activate(void *dev, uint64_t features)
{
	struct virtio_net *n = dev;
	const char *why = missing_dependency(features);
	if (why)
		return err_set(EINVAL, "driver accepted %s", why);
	/* The tap may hand the guest only what it accepted; the reverse direction needs no
	 * setting: the tap takes any header a guest sends. */
	unsigned offload = 0;
	if (features & BIT(VIRTIO_NET_F_GUEST_CSUM))
		offload |= TUN_F_CSUM;
	if (features & BIT(VIRTIO_NET_F_GUEST_TSO4))
		offload |= TUN_F_TSO4;
	if (features & BIT(VIRTIO_NET_F_GUEST_TSO6))
		offload |= TUN_F_TSO6;
	if (features & BIT(VIRTIO_NET_F_GUEST_ECN))
		offload |= TUN_F_TSO_ECN;
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, offload) < 0)
		return err_errno("tap %s: TUNSETOFFLOAD 0x%x", n->ifname, offload);
	n->features = features;
	n->rx_waiting = false;
	n->tx_blocked = false;
	/* The transport marks the device active when this returns, under the same lock. */
	if (!n->quiesced)
		set_poll(n, EPOLLIN);
	return 0;
}

static void reset(void *dev)
{
	struct virtio_net *n = dev;
	/* The rings go away with the reset: the held buffers are not given back. */
	if (n->rx_len)
		n->stats.rx_dropped_reset++;
	n->rx_len = 0;
	n->rx_nheld = n->rx_held_desc = 0;
	n->features = 0;
	n->rx_waiting = false;
	n->tx_blocked = false;
	set_poll(n, 0);
}

static void queue_notify(void *dev, unsigned q)
{
	struct virtio_net *n = dev;
	if (n->quiesced)
		return; /* unquiesce serves both queues */
	if (q == RXQ) {
		n->rx_waiting = false;
		rx_process(n);
	} else {
		tx_process(n);
		update_poll(n);
	}
}

/* The tap is readable or writable (vmm thread). */
static void on_tap(void *ctx, uint32_t events)
{
	struct virtio_net *n = ctx;
	pthread_mutex_lock(&n->transport.lock);
	if (events & (EPOLLERR | EPOLLHUP)) {
		/* The interface was deleted: the fd reports an error forever. */
		log_error("net %s: tap %s is gone; the guest's link is down", n->cfg.id, n->ifname);
		n->stats.tap_errors++;
		n->link_up = false;
		event_loop_remove(n->loop, n->tap_fd);
		n->tap_polled = false;
	} else if (!n->quiesced) { /* readiness reported before the quiesce: unquiesce looks */
		if ((events & EPOLLOUT) && n->tx_blocked) {
			n->tx_blocked = false;
			if (n->transport.active && n->transport.queues[TXQ].s.ready)
				tx_process(n);
		}
		if (events & EPOLLIN)
			rx_process(n);
		update_poll(n);
	}
	pthread_mutex_unlock(&n->transport.lock);
}

/* Snapshots: the tap is not read or written until unquiesce. A frame waiting for more
 * receive buffers is dropped and its buffers go back to the ring, so that no chain is in flight
 * in the saved queue state. */
static void quiesce(void *dev)
{
	struct virtio_net *n = dev;
	pthread_mutex_lock(&n->transport.lock);
	n->quiesced = true;
	if (n->rx_len) {
		n->stats.rx_dropped_quiesce++;
		rx_release(n);
	}
	update_poll(n);
	pthread_mutex_unlock(&n->transport.lock);
}

static void unquiesce(void *dev)
{
	struct virtio_net *n = dev;
	struct virtio_mmio_dev *t = &n->transport;
	pthread_mutex_lock(&t->lock);
	n->quiesced = false;
	/* What the driver queued meanwhile, and what the tap holds for it. */
	if (t->active && t->queues[TXQ].s.ready)
		queue_notify(n, TXQ);
	if (t->active && t->queues[RXQ].s.ready)
		queue_notify(n, RXQ);
	update_poll(n);
	pthread_mutex_unlock(&t->lock);
}

/* ---- the class ---- */

const uint8_t *net_mac(void *dev)
{
	struct virtio_net *n = dev;
	return n->mac;
}

void net_get_stats(void *dev, struct net_stats *out)
{
	struct virtio_net *n = dev;
	pthread_mutex_lock(&n->transport.lock);
	*out = n->stats;
	pthread_mutex_unlock(&n->transport.lock);
}

static void metrics(void *dev, struct virtio_device_metrics *m)
{
	struct net_stats s;
	net_get_stats(dev, &s);
	*m = (struct virtio_device_metrics){
	    .requests = s.rx_frames + s.tx_frames + s.tx_dropped, /* every frame the guest sent */
	    .bytes_to_guest = s.rx_bytes,
	    .bytes_from_guest = s.tx_bytes,
	    /* tap_errors already counts the frames in tx_dropped */
	    .errors = s.rx_dropped_too_big + s.rx_dropped_offload + s.rx_dropped_reset +
		      s.rx_dropped_quiesce + s.tap_errors,
	};
}

static int parse(const char *spec, void **config)
{
	struct net_config *cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return err_set(ENOMEM, "--net");
	int r = net_config_parse(spec, cfg);
	if (r < 0) {
		free(cfg);
		return r;
	}
	*config = cfg;
	return 0;
}

static void free_config(void *config)
{
	struct net_config *cfg = config;
	if (cfg && cfg->fd >= 0)
		close(cfg->fd);
	free(cfg);
}

static const char *conflict(const void *a, const void *b)
{
	const struct net_config *x = a, *y = b;
	if (strcmp(x->id, y->id) == 0)
		return "two network interfaces have the same id";
	if (x->tap[0] && strcmp(x->tap, y->tap) == 0)
		return "two network interfaces use the same tap";
	if (x->fd >= 0 && x->fd == y->fd)
		return "two network interfaces use the same fd";
	if (x->mac_set && y->mac_set && memcmp(x->mac, y->mac, 6) == 0)
		return "two network interfaces have the same MAC address";
	return NULL;
}

static void destroy(void *dev)
{
	struct virtio_net *n = dev;
	if (!n)
		return;
	if (n->tap_polled)
		event_loop_remove(n->loop, n->tap_fd);
	if (n->transport.ops) /* set once virtio_mmio_init has set its fds to -1 */
		virtio_mmio_destroy(&n->transport);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	free(n->rx_spill);
	free(n);
}

static int create(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		  struct virtio_mmio_dev **transport)
{
	const struct net_config *cfg = config;
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n)
		return err_set(ENOMEM, "net %s", cfg->id);
	n->cfg = *cfg;
	n->tap_fd = -1;
	n->link_up = true;
	int r = 0;
	n->rx_spill = malloc(RX_SPILL);
	if (!n->rx_spill) {
		r = err_set(ENOMEM, "net %s", cfg->id);
		goto fail;
	}
	r = tap_open(n);
	if (r < 0)
		goto fail;
	if (cfg->mac_set) {
		memcpy(n->mac, cfg->mac, 6);
	} else {
		if (getrandom(n->mac, 6, 0) != 6) {
			r = err_errno("net %s: getrandom", cfg->id);
			goto fail;
		}
		n->mac[0] = (uint8_t)((n->mac[0] & ~1u) | 2u); /* unicast, locally administered */
	}
	log_info("net %s: tap %s, mac %02x:%02x:%02x:%02x:%02x:%02x%s", cfg->id, n->ifname,
		 n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5],
		 cfg->mac_set ? "" : " (random)");
	n->ops = (struct virtio_device_ops){
	    .name = "virtio-net",
	    .device_id = VIRTIO_ID_NET,
	    .nqueues = 2,
	    .queue_max = NET_QUEUE_SIZE,
	    .features = NET_FEATURES,
	    .config_size = offsetof(struct virtio_net_config, max_virtqueue_pairs),
	    .config_read = config_read,
	    .activate = activate,
	    .reset = reset,
	    .queue_notify = queue_notify,
	};
	r = virtio_mmio_init(&n->transport, &n->ops, n, index, gm);
	if (r < 0)
		goto fail;
	*dev = n;
	*transport = &n->transport;
	return 0;
fail:
	destroy(n);
	return r;
}

static int start(void *dev, struct event_loop *loop)
{
	struct virtio_net *n = dev;
	pthread_mutex_lock(&n->transport.lock);
	int r = event_loop_add(loop, n->tap_fd, 0, on_tap, n);
	if (r == 0) {
		n->loop = loop;
		n->tap_polled = true;
		n->poll_events = 0;
		update_poll(n);
	}
	pthread_mutex_unlock(&n->transport.lock);
	return r;
}

const struct virtio_device_class virtio_net_class = {
    .flag = "net",
    .usage = "tap=NAME|fd=N[,mac=XX:XX:XX:XX:XX:XX][,id=ID]   a tap interface as virtio-net",
    .parse = parse,
    .free_config = free_config,
    .conflict = conflict,
    .create = create,
    .start = start,
    .destroy = destroy,
    .metrics = metrics,
    .quiesce = quiesce,
    .unquiesce = unquiesce,
};
