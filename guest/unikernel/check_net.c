/* net: a virtio-net driver (virtio 1.x section 5.1) that answers ARP for its
 * address, ICMP echo requests, and echoes UDP datagrams sent to udp_port,
 * for net_secs seconds or until a datagram "quit" arrives there. No offloads
 * are negotiated; received packets flagged NEEDS_CSUM (partial transport
 * checksum) are accepted without checking that checksum. */
#include "arch.h"
#include "checks.h"
#include "console.h"
#include "dma.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC 5

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2

#define NET_HDR	     12	  /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define BUF_SIZE     2048 /* >= 1526, the spec's minimum without MRG_RXBUF */
#define QUEUE_MAX    256
#define ETH_HDR	     14
#define ETH_MIN	     60 /* frames are padded to this, FCS excluded */
#define ETH_MAX	     1514
#define ETH_P_IP     0x0800
#define ETH_P_ARP    0x0806
#define IPPROTO_ICMP 1
#define IPPROTO_UDP  17
#define TX_WAIT_US   1000000

struct net {
	struct vdev dev;
	struct virtq *rxq, *txq;
	uint8_t mac[6];
	uint32_t ip;
	uint8_t *rx_bufs, *tx_bufs;
	uint16_t tx_free[QUEUE_MAX];
	uint32_t ntx_free;
	uint16_t ip_id;
	bool tx_added, quit;
	uint64_t arp, icmp, udp;		   /* answered */
	uint64_t rx, tx, ignored, bad, tx_dropped; /* bookkeeping */
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* RFC 1071 ones'-complement sum, not yet folded or inverted. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
	for (; len > 1; len -= 2, p += 2)
		sum += be16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* UDP pseudo-header: addresses, protocol, length. */
static uint32_t pseudo_sum(const uint8_t *src, const uint8_t *dst, uint16_t len)
{
	uint32_t sum = csum_add(0, src, 4);
	sum = csum_add(sum, dst, 4);
	return sum + IPPROTO_UDP + len;
}

static void reap_tx(struct net *n)
{
	uint64_t slot;
	uint32_t len;

	while (virtq_get(n->txq, &slot, &len)) {
		if (slot >= n->txq->size)
			check_fail("internal: tx cookie %lu", slot);
		n->tx_free[n->ntx_free++] = (uint16_t)slot;
	}
}

/* A transmit buffer (header zeroed, frame area after it), or null. */
static uint8_t *tx_buffer(struct net *n, uint16_t *slot)
{
	if (!n->ntx_free) {
		reap_tx(n);
		uint64_t end = tsc_after_us(TX_WAIT_US);
		while (!n->ntx_free && !tsc_passed(end)) {
			virtq_kick(n->txq);
			virtio_wait(&n->dev);
			reap_tx(n);
		}
		if (!n->ntx_free) {
			n->tx_dropped++;
			return 0;
		}
	}
	*slot = n->tx_free[--n->ntx_free];
	uint8_t *b = n->tx_bufs + (uint64_t)*slot * BUF_SIZE;
	memset(b, 0, NET_HDR);
	return b;
}

/* Header and frame as two descriptors, as a driver without headroom would. */
static void tx_send(struct net *n, uint16_t slot, uint32_t frame_len)
{
	uint8_t *b = n->tx_bufs + (uint64_t)slot * BUF_SIZE;
	if (frame_len < ETH_MIN) {
		memset(b + NET_HDR + frame_len, 0, ETH_MIN - frame_len);
		frame_len = ETH_MIN;
	}
	struct vbuf v[2] = {{b, NET_HDR, false}, {b + NET_HDR, frame_len, false}};
	if (virtq_add(n->txq, v, 2, slot) < 0)
		check_fail("internal: tx ring full with a free buffer");
	n->tx_added = true;
	n->tx++;
}

static uint8_t *eth_reply(struct net *n, uint16_t *slot, const uint8_t *req, uint16_t type)
{
	uint8_t *b = tx_buffer(n, slot);
	if (!b)
		return 0;
	uint8_t *f = b + NET_HDR;
	memcpy(f, req + 6, 6); /* to the sender */
	memcpy(f + 6, n->mac, 6);
	put16(f + 12, type);
	return f;
}

static void handle_arp(struct net *n, const uint8_t *f, uint32_t len)
{
	const uint8_t *a = f + ETH_HDR;
	uint16_t slot;

	if (len < ETH_HDR + 28 || be16(a) != 1 || be16(a + 2) != ETH_P_IP || a[4] != 6 ||
	    a[5] != 4) {
		n->bad++;
		return;
	}
	if (be16(a + 6) != 1 || be32(a + 24) != n->ip) {
		n->ignored++; /* not a request for us */
		return;
	}
	uint8_t *r = eth_reply(n, &slot, f, ETH_P_ARP);
	if (!r)
		return;
	uint8_t *ra = r + ETH_HDR;
	put16(ra, 1);
	put16(ra + 2, ETH_P_IP);
	ra[4] = 6;
	ra[5] = 4;
	put16(ra + 6, 2); /* reply */
	memcpy(ra + 8, n->mac, 6);
	put32(ra + 14, n->ip);
	memcpy(ra + 18, a + 8, 10); /* target = the requester's MAC and IP */
	tx_send(n, slot, ETH_HDR + 28);
	n->arp++;
}

/* IPv4 header for a reply of payload_len bytes to src (no options). */
static void ip_reply_header(struct net *n, uint8_t *ip, const uint8_t *req_ip, uint8_t proto,
			    uint16_t payload_len)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(20 + payload_len));
	put16(ip + 4, n->ip_id++);
	put16(ip + 6, 0);
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, n->ip);
	memcpy(ip + 16, req_ip + 12, 4);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
}

static void handle_icmp(struct net *n, const uint8_t *f, const uint8_t *ip, const uint8_t *icmp,
			uint16_t len, bool partial)
{
	uint16_t slot;

	if (len < 8 || (!partial && csum_fold(csum_add(0, icmp, len)) != 0)) {
		n->bad++;
		return;
	}
	if (icmp[0] != 8 || icmp[1] != 0) {
		n->ignored++; /* not an echo request */
		return;
	}
	uint8_t *r = eth_reply(n, &slot, f, ETH_P_IP);
	if (!r)
		return;
	uint8_t *rip = r + ETH_HDR, *ricmp = rip + 20;
	ip_reply_header(n, rip, ip, IPPROTO_ICMP, len);
	memcpy(ricmp, icmp, len);
	ricmp[0] = 0; /* echo reply */
	put16(ricmp + 2, 0);
	put16(ricmp + 2, csum_fold(csum_add(0, ricmp, len)));
	tx_send(n, slot, ETH_HDR + 20 + len);
	n->icmp++;
}

static void handle_udp(struct net *n, const uint8_t *f, const uint8_t *ip, const uint8_t *udp,
		       uint16_t len, bool partial)
{
	uint16_t slot;

	if (len < 8 || be16(udp + 4) < 8 || be16(udp + 4) > len) {
		n->bad++;
		return;
	}
	len = be16(udp + 4);
	if (!partial && be16(udp + 6) &&
	    csum_fold(csum_add(pseudo_sum(ip + 12, ip + 16, len), udp, len)) != 0) {
		n->bad++;
		return;
	}
	if (be16(udp + 2) != opts.udp_port) {
		n->ignored++;
		return;
	}
	uint16_t plen = (uint16_t)(len - 8);
	if (plen == 4 && udp[8] == 'q' && udp[9] == 'u' && udp[10] == 'i' && udp[11] == 't')
		n->quit = true;
	uint8_t *r = eth_reply(n, &slot, f, ETH_P_IP);
	if (!r)
		return;
	uint8_t *rip = r + ETH_HDR, *rudp = rip + 20;
	ip_reply_header(n, rip, ip, IPPROTO_UDP, len);
	put16(rudp, be16(udp + 2));
	put16(rudp + 2, be16(udp));
	put16(rudp + 4, len);
	put16(rudp + 6, 0);
	memcpy(rudp + 8, udp + 8, plen);
	uint16_t c = csum_fold(csum_add(pseudo_sum(rip + 12, rip + 16, len), rudp, len));
	put16(rudp + 6, c ? c : 0xffff);
	tx_send(n, slot, ETH_HDR + 20 + len);
	n->udp++;
}

static void handle_ip(struct net *n, const uint8_t *f, uint32_t len, bool partial)
{
	const uint8_t *ip = f + ETH_HDR;
	uint32_t avail = len - ETH_HDR;

	if (avail < 20 || ip[0] >> 4 != 4) {
		n->bad++;
		return;
	}
	uint32_t ihl = (ip[0] & 0xfu) * 4, total = be16(ip + 2);
	if (ihl < 20 || total < ihl || total > avail || csum_fold(csum_add(0, ip, ihl)) != 0) {
		n->bad++;
		return;
	}
	if (be32(ip + 16) != n->ip || (be16(ip + 6) & 0x3fff)) {
		n->ignored++; /* not ours, or a fragment */
		return;
	}
	const uint8_t *payload = ip + ihl;
	uint16_t plen = (uint16_t)(total - ihl);
	if (ip[9] == IPPROTO_ICMP)
		handle_icmp(n, f, ip, payload, plen, partial);
	else if (ip[9] == IPPROTO_UDP)
		handle_udp(n, f, ip, payload, plen, partial);
	else
		n->ignored++;
}

static void handle_frame(struct net *n, const uint8_t *buf, uint32_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	n->rx++;
	if (len < NET_HDR + ETH_HDR) {
		n->bad++;
		return;
	}
	bool partial = buf[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM;
	const uint8_t *f = buf + NET_HDR;
	len -= NET_HDR;
	bool to_us = true, to_all = true;
	for (int i = 0; i < 6; i++) {
		to_us &= f[i] == n->mac[i];
		to_all &= f[i] == bcast[i];
	}
	if (!to_us && !to_all) {
		n->ignored++;
		return;
	}
	uint16_t type = be16(f + 12);
	if (type == ETH_P_ARP)
		handle_arp(n, f, len);
	else if (type == ETH_P_IP)
		handle_ip(n, f, len, partial);
	else
		n->ignored++;
}

static void post_rx(struct net *n, uint16_t i)
{
	struct vbuf v = {n->rx_bufs + (uint64_t)i * BUF_SIZE, BUF_SIZE, true};
	if (virtq_add(n->rxq, &v, 1, i) < 0)
		check_fail("internal: rx ring full");
}

static void print_ip(const char *prefix, uint32_t ip)
{
	kprintf("%s%u.%u.%u.%u", prefix, ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

static void print_mac(const char *prefix, const uint8_t *m)
{
	kprintf("%s%02x:%02x:%02x:%02x:%02x:%02x", prefix, m[0], m[1], m[2], m[3], m[4], m[5]);
}

void check_net(void)
{
	static struct net n;

	memset(&n, 0, sizeof(n));
	dma_reset();
	virtio_open(&n.dev, VIRTIO_ID_NET, 1ull << VIRTIO_NET_F_MAC);
	n.rxq = virtio_queue(&n.dev, 0, QUEUE_MAX);
	n.txq = virtio_queue(&n.dev, 1, QUEUE_MAX);
	n.rx_bufs = dma_alloc((uint64_t)n.rxq->size * BUF_SIZE, 4096);
	n.tx_bufs = dma_alloc((uint64_t)n.txq->size * BUF_SIZE, 4096);
	/* Two descriptors a packet: at most size / 2 in flight. */
	for (uint16_t i = 0; i < n.txq->size / 2; i++)
		n.tx_free[n.ntx_free++] = i;
	if (virtio_has(&n.dev, VIRTIO_NET_F_MAC)) {
		for (int i = 0; i < 6; i++)
			n.mac[i] = virtio_cfg8(&n.dev, (unsigned)i);
	} else {
		static const uint8_t fallback[6] = {0xaa, 0xfc, 0x00, 0x00, 0x00, 0x01};
		memcpy(n.mac, fallback, 6);
	}
	n.ip = opts.ip;
	for (uint16_t i = 0; i < n.rxq->size; i++)
		post_rx(&n, i);
	virtio_driver_ok(&n.dev);
	virtq_kick(n.rxq);

	print_ip("net: ready ip=", n.ip);
	print_mac(" mac=", n.mac);
	kprintf(" udp_port=%lu rx_buffers=%u secs=%lu\n", opts.udp_port, n.rxq->size,
		opts.net_secs);

	uint64_t end = tsc_after_us(opts.net_secs * 1000000);
	while (!n.quit && !tsc_passed(end)) {
		uint64_t i;
		uint32_t len;
		bool work = false;
		while (virtq_get(n.rxq, &i, &len)) {
			if (i >= n.rxq->size)
				check_fail("internal: rx cookie %lu", i);
			handle_frame(&n, n.rx_bufs + i * BUF_SIZE, len);
			post_rx(&n, (uint16_t)i); /* at once: the ring stays full */
			work = true;
		}
		if (work)
			virtq_kick(n.rxq);
		if (n.tx_added) {
			virtq_kick(n.txq);
			n.tx_added = false;
		}
		reap_tx(&n);
		if (!work)
			virtio_wait(&n.dev);
	}
	/* Let the last replies leave before the reset. */
	uint64_t drain = tsc_after_us(TX_WAIT_US);
	while (virtq_in_flight(n.txq) && !tsc_passed(drain)) {
		virtio_wait(&n.dev);
		reap_tx(&n);
	}

	kprintf("net: rx=%lu tx=%lu ignored=%lu bad=%lu tx_dropped=%lu quit=%d", n.rx, n.tx,
		n.ignored, n.bad, n.tx_dropped, n.quit);
	if (n.dev.irq_mode)
		kprintf(" interrupts=%lu", virtio_irq_count(&n.dev));
	kprintf("\n");
	virtio_close(&n.dev);
	check_pass("mac=%02x:%02x:%02x:%02x:%02x:%02x arp=%lu icmp=%lu udp=%lu", n.mac[0], n.mac[1],
		   n.mac[2], n.mac[3], n.mac[4], n.mac[5], n.arp, n.icmp, n.udp);
}
