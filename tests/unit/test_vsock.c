/* virtio-vsock without KVM: the test is the guest driver (rings in a guest_mem, registers through
 * virtio_mmio_access) and the host processes (Unix sockets), and runs the device's event loop
 * itself. Criterion runs each test in a process of its own: what a test leaves open closes with
 * it. */
#include "devices/virtio_mmio/vsock.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RX_NUM	   128
#define TX_NUM	   128
#define RX_BUFS	   128
#define RX_BUF	   0x100000ull /* + i * 0x2000 */
#define RX_BUF_LEN (4096 + 44)
#define TX_BUF	   0x400000ull /* + slot * 0x11000 */
#define TX_SLOTS   (TX_NUM / 2)
#define HDR	   44
#define BIG_CREDIT (1u << 20)

static struct guest_mem gm;
static uint64_t guest_cid = 3;	  /* what the device's config says (a restored clone may differ) */
static struct test_ring rings[3]; /* rx, tx, event */
static struct event_loop loop;
static void *dev;
static struct virtio_mmio_dev *t;
static char dir[32], path[64];
static uint16_t rx_seen;
static unsigned tx_count;

struct pkt {
	struct virtio_vsock_hdr h;
	uint32_t len;
	uint8_t data[4096];
};

static void setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	strcpy(dir, "/tmp/ember-vsock-XXXXXX");
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	cr_assert(eq(int, event_loop_init(&loop), 0));
}

static void teardown(void)
{
	if (dev)
		virtio_vsock_class.destroy(dev);
	dev = NULL;
	event_loop_destroy(&loop);
	gmem_destroy(&gm);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert(eq(int, system(cmd), 0));
}

TestSuite(vsock, .init = setup, .fini = teardown, .timeout = 60);

static struct vsock_stats stats(void)
{
	struct vsock_stats s;
	vsock_get_stats(dev, &s);
	return s;
}

static void pump(int ms)
{
	event_loop_run_once(&loop, ms);
	for (int i = 0; i < 100 && event_loop_run_once(&loop, 0) > 0; i++)
		;
}

static void post_rx(uint16_t i)
{
	test_set_desc(&rings[0], i, RX_BUF + 0x2000ull * i, RX_BUF_LEN, VRING_DESC_F_WRITE, 0);
	test_publish(&rings[0], i);
}

static void kick(unsigned q)
{
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

/* The guest driver comes up with `nbufs` rx buffers posted. */
static void driver_up(unsigned nbufs)
{
	test_ring_init_at(&rings[0], &gm, RX_NUM, 0);
	test_ring_init_at(&rings[1], &gm, TX_NUM, 0x40000);
	test_ring_init_at(&rings[2], &gm, 8, 0x80000);
	rx_seen = 0;
	tx_count = 0;
	uint32_t st = mmio_driver_init(t, 0, rings, 3);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0), "status %x", st);
	for (uint16_t i = 0; i < nbufs; i++)
		post_rx(i);
	if (nbufs)
		kick(0);
}

/* The device with this timeout and guest_cid, started, its driver not up yet. */
static void create_device(unsigned timeout_ms)
{
	char spec[200];
	snprintf(spec, sizeof(spec), "cid=%llu,uds=%s", (unsigned long long)guest_cid, path);
	void *cfg;
	cr_assert(eq(int, virtio_vsock_class.parse(spec, &cfg), 0), "%s", err_msg());
	((struct vsock_config *)cfg)->timeout_ms = timeout_ms;
	cr_assert(eq(int, virtio_vsock_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	free(cfg);
	cr_assert(eq(int, virtio_vsock_class.start(dev, &loop), 0), "%s", err_msg());
}

/* The device with this timeout, and its driver up with nbufs rx buffers posted. */
static void open_device(unsigned timeout_ms, unsigned nbufs)
{
	create_device(timeout_ms);
	driver_up(nbufs);
}

/* Take one packet the device put in the rx queue, and give the buffer back. */
static bool recv_pkt(struct pkt *p)
{
	struct vring_used *u = test_used(&rings[0]);
	if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == rx_seen)
		return false;
	struct vring_used_elem e = u->ring[rx_seen % RX_NUM];
	rx_seen++;
	cr_assert(lt(u32, e.id, RX_BUFS));
	cr_assert(ge(u32, e.len, HDR));
	cr_assert(le(u32, e.len, RX_BUF_LEN));
	uint8_t *b = gmem_ptr(&gm, RX_BUF + 0x2000ull * e.id, RX_BUF_LEN);
	memcpy(&p->h, b, HDR);
	p->len = e.len - HDR;
	cr_assert(eq(u32, p->h.len, p->len), "header len matches the used length");
	cr_assert(eq(u64, p->h.src_cid, 2));
	cr_assert(eq(u64, p->h.dst_cid, guest_cid));
	cr_assert(eq(u16, p->h.type, VIRTIO_VSOCK_TYPE_STREAM));
	memcpy(p->data, b + HDR, p->len);
	post_rx((uint16_t)e.id);
	kick(0);
	return true;
}

static void expect_pkt(struct pkt *p)
{
	for (int i = 0; i < 300; i++) {
		if (recv_pkt(p))
			return;
		pump(10);
	}
	cr_fatal("no packet from the device");
}

static void expect_op(struct pkt *p, uint16_t op)
{
	expect_pkt(p);
	cr_assert(eq(u16, p->h.op, op), "op %u, expected %u", p->h.op, op);
}

static bool quiet(int ms)
{
	struct pkt p;
	for (int i = 0; i < ms / 10; i++) {
		if (recv_pkt(&p))
			return false;
		pump(10);
	}
	return !recv_pkt(&p);
}

static struct virtio_vsock_hdr ghdr(uint32_t src_port, uint32_t dst_port, uint16_t op)
{
	return (struct virtio_vsock_hdr){
	    .src_cid = guest_cid,
	    .dst_cid = 2,
	    .src_port = src_port,
	    .dst_port = dst_port,
	    .type = VIRTIO_VSOCK_TYPE_STREAM,
	    .op = op,
	    .buf_alloc = BIG_CREDIT,
	};
}

/* The guest sends a packet: header and payload in two descriptors, as Linux does. */
static void send_pkt(struct virtio_vsock_hdr h, const void *data, uint32_t len)
{
	unsigned slot = tx_count++ % TX_SLOTS;
	uint64_t at = TX_BUF + 0x11000ull * slot;
	h.len = len;
	cr_assert(le(u32, len, 0x10000));
	cr_assert(eq(int, gmem_write(&gm, at, &h, HDR), 0));
	uint16_t d0 = (uint16_t)(2 * slot);
	if (len) {
		cr_assert(eq(int, gmem_write(&gm, at + 0x1000, data, len), 0));
		test_set_desc(&rings[1], d0, at, HDR, VRING_DESC_F_NEXT, d0 + 1);
		test_set_desc(&rings[1], d0 + 1, at + 0x1000, len, 0, 0);
	} else {
		test_set_desc(&rings[1], d0, at, HDR, 0, 0);
	}
	test_publish(&rings[1], d0);
	kick(1);
}

static void send_op(uint32_t src_port, uint32_t dst_port, uint16_t op)
{
	send_pkt(ghdr(src_port, dst_port, op), NULL, 0);
}

static int host_connect(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	cr_assert(eq(int, connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "%m");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void host_write(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	for (int i = 0; done < len && i < 1000; i++) {
		ssize_t n = send(fd, (const uint8_t *)buf + done, len - done, MSG_NOSIGNAL);
		if (n > 0)
			done += (size_t)n;
		else
			pump(1);
	}
	cr_assert(eq(u64, done, len));
}

/* Read exactly len bytes, running the device meanwhile; the count read (less at EOF). */
static size_t host_read(int fd, void *buf, size_t len)
{
	size_t done = 0;
	for (int i = 0; done < len && i < 300; i++) {
		ssize_t n = recv(fd, (uint8_t *)buf + done, len - done, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			done += (size_t)n;
		else
			pump(10);
	}
	return done;
}

/* Host process connects to guest port `port`; the guest accepts. The host port. */
static uint32_t host_to_guest(int *fd_out, uint32_t port, uint32_t guest_buf_alloc)
{
	int fd = host_connect();
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	host_write(fd, line, (size_t)n);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert(eq(u32, p.h.dst_port, port));
	cr_assert(ge(u32, p.h.src_port, 1024));
	cr_assert(eq(u32, p.h.buf_alloc, 256 * 1024));
	struct virtio_vsock_hdr r = ghdr(port, p.h.src_port, VIRTIO_VSOCK_OP_RESPONSE);
	r.buf_alloc = guest_buf_alloc;
	send_pkt(r, NULL, 0);
	char ok[32] = {0};
	n = snprintf(line, sizeof(line), "OK %u\n", p.h.src_port);
	cr_assert(eq(u64, host_read(fd, ok, (size_t)n), (size_t)n));
	cr_assert(eq(str, ok, line));
	*fd_out = fd;
	return p.h.src_port;
}

static int listen_at(uint32_t port)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", path, port);
	cr_assert(eq(int, bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0), "%m");
	cr_assert(eq(int, listen(fd, 16), 0));
	return fd;
}

static int accept_one(int lfd)
{
	for (int i = 0; i < 300; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		pump(10);
	}
	cr_fatal("no connection on the listener");
	return -1;
}

/* Bytes until end of file; -1 if none comes. */
static long host_drain(int fd)
{
	static uint8_t sink[65536];
	long total = 0;
	for (int i = 0; i < 300; i++) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return total;
		if (n > 0)
			total += n;
		else
			pump(10);
	}
	return -1;
}

/* Whether the host side sees end of file (or a reset), and no bytes before it. */
static bool host_sees_eof(int fd)
{
	return host_drain(fd) == 0;
}

static void guest_shutdown(uint32_t gport, uint32_t port, uint32_t flags)
{
	struct virtio_vsock_hdr h = ghdr(gport, port, VIRTIO_VSOCK_OP_SHUTDOWN);
	h.flags = flags;
	send_pkt(h, NULL, 0);
}

/* Connection counters: opened, closed, of which reset, refused. */
static void expect_conns(uint64_t opened, uint64_t closed, uint64_t reset, uint64_t refused)
{
	struct vsock_stats s = stats();
	cr_assert(eq(u64, s.conns_opened, opened));
	cr_assert(eq(u64, s.conns_closed, closed));
	cr_assert(eq(u64, s.conns_reset, reset));
	cr_assert(eq(u64, s.conns_refused, refused));
}

/* A guest connection to PATH_port, accepted by the test; the host side's fd. */
static int guest_to_host(int *lfd, uint32_t gport, uint32_t port, struct pkt *resp)
{
	*lfd = listen_at(port);
	send_op(gport, port, VIRTIO_VSOCK_OP_REQUEST);
	expect_op(resp, VIRTIO_VSOCK_OP_RESPONSE);
	return accept_one(*lfd);
}

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 9));
}

Test(vsock, config_specs)
{
	struct vsock_config c;
	cr_assert(eq(int, vsock_config_parse("cid=3,uds=/tmp/x.sock", &c), 0));
	cr_assert(eq(u64, c.guest_cid, 3));
	cr_assert(eq(str, c.uds_path, "/tmp/x.sock"));
	cr_assert(eq(int, vsock_config_parse("uds=/a,cid=4294967294", &c), 0));
	/* One spec per line. */
	char bad[] = "cid=2,uds=/a\ncid=0,uds=/a\ncid=-3,uds=/a\ncid=4294967295,uds=/a\n"
		     "cid=99999999999999999999,uds=/a\ncid=3x,uds=/a\ncid=,uds=/a\ncid=3\n"
		     "uds=/a\ncid=3,uds=\ncid=3,uds=/a,port=5\n\ncid=3,,uds=/a,x\n";
	for (char *spec = bad, *nl; (nl = strchr(spec, '\n')); spec = nl + 1) {
		*nl = 0;
		cr_assert(lt(int, vsock_config_parse(spec, &c), 0), "accepted '%s'", spec);
	}
	cr_assert(lt(int, vsock_config_parse("cid=3", &c), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "uds=PATH is required"), NULL), "%s", err_msg());
	cr_assert(lt(int, vsock_config_parse("cid=1,uds=/a", &c), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "cid must be"), NULL), "%s", err_msg());
	char lng[200] = "cid=3,uds=/";
	memset(lng + strlen(lng), 'a', 120);
	cr_assert(lt(int, vsock_config_parse(lng, &c), 0));
	void *a, *b;
	cr_assert(eq(int, virtio_vsock_class.parse("cid=3,uds=/a", &a), 0));
	cr_assert(eq(int, virtio_vsock_class.parse("cid=4,uds=/b", &b), 0));
	cr_assert(ne(ptr, (void *)virtio_vsock_class.conflict(a, b), NULL), "at most one");
	free(a);
	free(b);
}

Test(vsock, socket_path_is_created_refused_if_present_and_removed)
{
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	void *cfg;
	char spec[200];
	snprintf(spec, sizeof(spec), "cid=3,uds=%s", path);
	cr_assert(eq(int, virtio_vsock_class.parse(spec, &cfg), 0));
	cr_assert(lt(int, virtio_vsock_class.create(cfg, 0, &gm, &dev, &t), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "socket path exists"), NULL), "%s", err_msg());
	dev = NULL;
	struct stat st;
	cr_assert(eq(int, stat(path, &st), 0), "someone else's file stays");
	unlink(path);
	cr_assert(eq(int, virtio_vsock_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	free(cfg);
	cr_assert(eq(int, lstat(path, &st), 0));
	cr_assert(eq(int, S_ISSOCK(st.st_mode), 1));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_ID), 19));
	uint64_t cid = 0;
	virtio_mmio_access(t, 0x100, (uint8_t *)&cid, 8, false);
	cr_assert(eq(u64, cid, 3));
	cr_assert(eq(
	    u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_VSOCK_F_SEQPACKET), 0));
	virtio_vsock_class.destroy(dev);
	dev = NULL;
	cr_assert(lt(int, lstat(path, &st), 0), "removed at exit");
}

Test(vsock, host_connects_and_bytes_flow_both_ways)
{
	open_device(5000, RX_BUFS);
	int fd;
	uint32_t hport = host_to_guest(&fd, 1234, BIG_CREDIT);
	host_write(fd, "hello from the host", 19);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert(eq(u32, p.h.src_port, hport));
	cr_assert(eq(u32, p.h.dst_port, 1234));
	cr_assert(eq(u32, p.len, 19));
	cr_assert(eq(int, memcmp(p.data, "hello from the host", 19), 0));
	send_pkt(ghdr(1234, hport, VIRTIO_VSOCK_OP_RW), "and from the guest", 18);
	char buf[32] = {0};
	cr_assert(eq(u64, host_read(fd, buf, 18), 18));
	cr_assert(eq(str, buf, "and from the guest"));
	struct vsock_stats s = stats();
	cr_assert(eq(u64, s.bytes_to_guest, 19));
	cr_assert(eq(u64, s.bytes_from_guest, 18));
	/* The host closes: SHUTDOWN both ways, the guest's RST ends it gracefully. */
	close(fd);
	expect_op(&p, VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert(eq(u32, p.h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND));
	send_op(1234, hport, VIRTIO_VSOCK_OP_RST);
	expect_conns(1, 1, 0, 0);
	cr_assert(eq(u64, stats().bad_packets, 0));
	cr_assert(quiet(50));
}

static struct virtio_device_metrics metrics(void)
{
	struct virtio_device_metrics m;
	memset(&m, 0xff, sizeof(m));
	virtio_vsock_class.metrics(dev, &m);
	return m;
}

Test(vsock, metrics_follow_packets_bytes_and_errors)
{
	open_device(5000, RX_BUFS);
	struct virtio_device_metrics m = metrics();
	cr_assert(eq(u64, m.requests, 0));
	cr_assert(eq(u64, m.errors, 0));
	int fd;
	uint32_t hport = host_to_guest(&fd, 1234, BIG_CREDIT);
	m = metrics();
	cr_assert(eq(u64, m.requests, 2), "REQUEST and RESPONSE");
	host_write(fd, "twelve bytes", 12);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	send_pkt(ghdr(1234, hport, VIRTIO_VSOCK_OP_RW), "seven b", 7);
	char buf[8] = {0};
	cr_assert(eq(u64, host_read(fd, buf, 7), 7));
	m = metrics();
	cr_assert(eq(u64, m.requests, 4));
	cr_assert(eq(u64, m.bytes_to_guest, 12));
	cr_assert(eq(u64, m.bytes_from_guest, 7));
	cr_assert(eq(u64, m.errors, 0));
	/* A misaddressed packet: dropped, and an error. */
	struct virtio_vsock_hdr h = ghdr(1234, hport, VIRTIO_VSOCK_OP_RW);
	h.dst_cid = 7;
	send_pkt(h, "x", 1);
	cr_assert(quiet(30));
	m = metrics();
	cr_assert(eq(u64, m.requests, 5));
	cr_assert(eq(u64, m.errors, 1));
	cr_assert(eq(u64, m.bytes_from_guest, 7));
	close(fd);
}

Test(vsock, bytes_right_after_the_connect_line_wait_for_the_guest)
{
	open_device(5000, RX_BUFS);
	int fd = host_connect();
	host_write(fd, "CONNECT 77\nearly bytes", 22);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert(quiet(50), "nothing before the guest answers");
	send_pkt(ghdr(77, p.h.src_port, VIRTIO_VSOCK_OP_RESPONSE), NULL, 0);
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert(eq(u32, p.len, 11));
	cr_assert(eq(int, memcmp(p.data, "early bytes", 11), 0));
	char ok[16] = {0};
	host_read(fd, ok, 3);
	cr_assert(eq(int, memcmp(ok, "OK ", 3), 0));
}

Test(vsock, guest_refuses_or_ignores_a_host_connection)
{
	open_device(300, RX_BUFS);
	int fd = host_connect();
	host_write(fd, "CONNECT 9\n", 10);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
	send_op(9, p.h.src_port, VIRTIO_VSOCK_OP_RST);
	cr_assert(host_sees_eof(fd), "refused: closed without OK");
	close(fd);
	/* No answer at all: after the timeout the host is closed and the guest gets an RST. */
	fd = host_connect();
	host_write(fd, "CONNECT 10\n", 11);
	expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
	uint32_t hport = p.h.src_port;
	cr_assert(host_sees_eof(fd));
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(eq(u32, p.h.src_port, hport));
	close(fd);
	expect_conns(0, 0, 0, 2);
}

Test(vsock, guest_connects_to_path_port)
{
	open_device(5000, RX_BUFS);
	int lfd;
	struct pkt p;
	int fd = guest_to_host(&lfd, 40000, 5000, &p);
	cr_assert(eq(u32, p.h.src_port, 5000));
	cr_assert(eq(u32, p.h.dst_port, 40000));
	send_pkt(ghdr(40000, 5000, VIRTIO_VSOCK_OP_RW), "ping", 4);
	char buf[8] = {0};
	cr_assert(eq(u64, host_read(fd, buf, 4), 4));
	cr_assert(eq(str, buf, "ping"));
	host_write(fd, "pong", 4);
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert(eq(int, memcmp(p.data, "pong", 4), 0));
	/* Nobody listens at PATH_5001: RST. */
	send_op(40001, 5001, VIRTIO_VSOCK_OP_REQUEST);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(eq(u32, p.h.src_port, 5001));
	cr_assert(eq(u32, p.h.dst_port, 40001));
	/* The guest closes gracefully: the host reads EOF, the guest gets its RST. */
	guest_shutdown(40000, 5000, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(host_sees_eof(fd));
	expect_conns(1, 1, 0, 1);
}

Test(vsock, half_close_each_way)
{
	open_device(5000, RX_BUFS);
	int lfd, lfd2;
	struct pkt p;
	/* The host shuts its write half: SHUTDOWN SEND; the guest still may send. */
	int fd = guest_to_host(&lfd, 41000, 6000, &p);
	shutdown(fd, SHUT_WR);
	expect_op(&p, VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert(eq(u32, p.h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND));
	send_pkt(ghdr(41000, 6000, VIRTIO_VSOCK_OP_RW), "still here", 10);
	char buf[16] = {0};
	cr_assert(eq(u64, host_read(fd, buf, 10), 10));
	cr_assert(eq(str, buf, "still here"));
	guest_shutdown(41000, 6000, VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert(host_sees_eof(fd));
	guest_shutdown(41000, 6000, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	/* The guest shuts its send half first: the host reads EOF and still may send. */
	int fd2 = guest_to_host(&lfd2, 41001, 6001, &p);
	guest_shutdown(41001, 6001, VIRTIO_VSOCK_SHUTDOWN_SEND);
	cr_assert(host_sees_eof(fd2));
	host_write(fd2, "still here", 10);
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert(eq(u32, p.len, 10));
	/* Then the host's end of file leaves nothing to carry: SHUTDOWN both ways, and the
	 * guest's RST finishes it. */
	shutdown(fd2, SHUT_WR);
	expect_op(&p, VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert(eq(u32, p.h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND));
	send_op(41001, 6001, VIRTIO_VSOCK_OP_RST);
	expect_conns(2, 2, 0, 0);
	cr_assert(quiet(30));
}

Test(vsock, guest_credit_is_respected)
{
	open_device(5000, RX_BUFS);
	int fd;
	uint32_t hport = host_to_guest(&fd, 2222, 4096);
	static uint8_t out[10000], in[10000];
	pattern(out, sizeof(out), 1);
	host_write(fd, out, sizeof(out));
	size_t got = 0;
	uint32_t fwd = 0;
	bool asked = false;
	while (got < sizeof(out)) {
		/* Take everything the device sends with the credit it has. */
		size_t before = got;
		struct pkt p;
		for (int idle = 0; idle < 5;) {
			if (!recv_pkt(&p)) {
				pump(10);
				idle++;
				continue;
			}
			idle = 0;
			if (p.h.op == VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
				asked = true;
				continue;
			}
			cr_assert(eq(u16, p.h.op, VIRTIO_VSOCK_OP_RW));
			memcpy(in + got, p.data, p.len);
			got += p.len;
		}
		cr_assert(le(u64, got - before, 4096), "more than the credit given");
		cr_assert(le(u64, got, (size_t)fwd + 4096));
		/* The guest's reader consumed it all: a credit update. */
		fwd = (uint32_t)got;
		struct virtio_vsock_hdr h = ghdr(2222, hport, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
		h.buf_alloc = 4096;
		h.fwd_cnt = fwd;
		send_pkt(h, NULL, 0);
	}
	cr_assert(asked, "the device asked for credit when it ran out");
	cr_assert(eq(int, memcmp(in, out, sizeof(out)), 0));
	cr_assert(eq(u64, stats().credit_violations, 0));
}

Test(vsock, guest_overrunning_its_credit_is_reset)
{
	open_device(5000, RX_BUFS);
	int lfd;
	struct pkt p;
	int fd = guest_to_host(&lfd, 42000, 5100, &p);
	cr_assert(eq(u32, p.h.buf_alloc, 256 * 1024));
	static uint8_t chunk[0x10000];
	/* The host never reads; the guest ignores the credit it was given. */
	for (int i = 0; i < 64 && stats().credit_violations == 0; i++)
		send_pkt(ghdr(42000, 5100, VIRTIO_VSOCK_OP_RW), chunk, sizeof(chunk));
	cr_assert(eq(u64, stats().credit_violations, 1));
	do
		expect_pkt(&p);
	while (p.h.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert(eq(u16, p.h.op, VIRTIO_VSOCK_OP_RST));
	cr_assert(ge(i64, host_drain(fd), 0), "the host side is closed");
	cr_assert(eq(u64, stats().conns_reset, 1));
}

Test(vsock, slow_host_gets_every_byte_within_credit)
{
	open_device(5000, RX_BUFS);
	int lfd;
	struct pkt p;
	int fd = guest_to_host(&lfd, 43000, 5200, &p);
	enum { TOTAL = 1 << 20 };
	static uint8_t out[TOTAL], in[TOTAL];
	pattern(out, TOTAL, 7);
	uint32_t buf_alloc = p.h.buf_alloc, fwd = p.h.fwd_cnt, sent = 0;
	size_t got = 0;
	bool ran_out = false;
	for (int round = 0; got < TOTAL && round < 5000; round++) {
		for (;;) {
			uint32_t credit = buf_alloc - (sent - fwd);
			uint32_t n = TOTAL - sent < 0x10000 ? TOTAL - sent : 0x10000;
			if (n > credit)
				n = credit;
			if (n == 0) {
				ran_out |= sent < TOTAL;
				break;
			}
			send_pkt(ghdr(43000, 5200, VIRTIO_VSOCK_OP_RW), out + sent, n);
			sent += n;
		}
		/* The host reads a little at a time, and only once the guest ran out. */
		if (ran_out) {
			ssize_t r =
			    recv(fd, in + got, TOTAL - got < 48 * 1024 ? TOTAL - got : 48 * 1024,
				 MSG_DONTWAIT);
			if (r > 0)
				got += (size_t)r;
		}
		pump(1);
		while (recv_pkt(&p)) {
			cr_assert(eq(u16, p.h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
			buf_alloc = p.h.buf_alloc;
			fwd = p.h.fwd_cnt;
		}
	}
	cr_assert(ran_out, "the host's slowness reached the guest as missing credit");
	cr_assert(eq(u64, got, TOTAL));
	cr_assert(eq(int, memcmp(in, out, TOTAL), 0));
	struct vsock_stats s = stats();
	cr_assert(eq(u64, s.credit_violations, 0));
	cr_assert(eq(u64, s.bytes_from_guest, TOTAL));
}

Test(vsock, malformed_packets_are_counted_and_answered)
{
	open_device(5000, RX_BUFS);
	struct pkt p;
	/* A chain shorter than a header. */
	test_set_desc(&rings[1], 0, TX_BUF, 20, 0, 0);
	test_publish(&rings[1], 0);
	kick(1);
	tx_count = 1;
	/* Misaddressed: dropped without an answer. */
	struct virtio_vsock_hdr h = ghdr(1, 5000, VIRTIO_VSOCK_OP_REQUEST);
	h.dst_cid = 7;
	send_pkt(h, NULL, 0);
	h = ghdr(1, 5000, VIRTIO_VSOCK_OP_REQUEST);
	h.src_cid = 9;
	send_pkt(h, NULL, 0);
	cr_assert(quiet(30));
	cr_assert(eq(u64, stats().bad_packets, 3));
	/* Wrong type, unknown op, payload longer than the chain: an RST each. */
	h = ghdr(50, 5000, VIRTIO_VSOCK_OP_REQUEST);
	h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
	send_pkt(h, NULL, 0);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(eq(u32, p.h.dst_port, 50));
	send_op(51, 5000, 42);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	h = ghdr(52, 5000, VIRTIO_VSOCK_OP_RW);
	h.len = 1000;
	cr_assert(eq(int, gmem_write(&gm, TX_BUF, &h, HDR), 0));
	test_set_desc(&rings[1], 0, TX_BUF, HDR, VRING_DESC_F_NEXT, 1);
	test_set_desc(&rings[1], 1, TX_BUF + 0x1000, 10, 0, 0);
	test_publish(&rings[1], 0);
	kick(1);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(eq(u32, p.h.dst_port, 52));
	/* Packets for no connection: RST, except for an RST. */
	send_pkt(ghdr(53, 5000, VIRTIO_VSOCK_OP_RW), "x", 1);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	send_op(54, 5000, VIRTIO_VSOCK_OP_RST);
	send_op(55, 5000, VIRTIO_VSOCK_OP_RESPONSE);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(eq(u32, p.h.dst_port, 55));
	cr_assert(quiet(30));
	cr_assert(eq(u64, stats().bad_packets, 8));
	/* A credit lie: fwd_cnt beyond what was ever sent. Counted; the stream goes on. */
	int lfd;
	int fd = guest_to_host(&lfd, 56, 5000, &p);
	h = ghdr(56, 5000, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	h.fwd_cnt = 100000;
	send_pkt(h, NULL, 0);
	cr_assert(eq(u64, stats().credit_violations, 1));
	host_write(fd, "ok", 2);
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	/* A second REQUEST on a live connection resets it. */
	send_op(56, 5000, VIRTIO_VSOCK_OP_REQUEST);
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
	cr_assert(host_sees_eof(fd));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	/* A tx chain with a device-writable part breaks the rules: NEEDS_RESET. */
	test_set_desc(&rings[1], 0, TX_BUF, HDR, VRING_DESC_F_NEXT, 1);
	test_set_desc(&rings[1], 1, TX_BUF + 0x1000, 16, VRING_DESC_F_WRITE, 0);
	test_publish(&rings[1], 0);
	kick(1);
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
}

Test(vsock, rx_buffer_with_a_readable_part_needs_reset)
{
	open_device(5000, 0);
	test_set_desc(&rings[0], 0, RX_BUF, RX_BUF_LEN, 0, 0);
	test_publish(&rings[0], 0);
	kick(0);
	send_pkt(ghdr(60, 5000, VIRTIO_VSOCK_OP_RW), "x", 1); /* owes an RST */
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	/* A reset and a proper driver bring it back. */
	driver_up(RX_BUFS);
	send_pkt(ghdr(60, 5000, VIRTIO_VSOCK_OP_RW), "x", 1);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_RST);
}

Test(vsock, bad_connect_lines_are_closed)
{
	open_device(300, RX_BUFS);
	/* Each line from its own host connection; the last says "CONNECT 12" and then nothing
	 * (the timeout), the one before it nothing at all. */
	char lines[] =
	    "HELLO\n|CONNECT abc\n|CONNECT 99999999999\n|CONNECT  5\n|CONNECT 5\r\n|"
	    "CONNECT \n|CONNECT 5 6\n|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA||CONNECT 12";
	unsigned n = 0;
	for (char *line = lines, *end = lines; end; line = end + 1, n++) {
		end = strchr(line, '|');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int fd = host_connect();
		if (len)
			host_write(fd, line, len);
		cr_assert(host_sees_eof(fd), "'%.*s' was not closed", (int)len, line);
		close(fd);
	}
	/* One that closes before saying anything. */
	close(host_connect());
	pump(20);
	cr_assert(quiet(30), "the guest heard nothing");
	cr_assert(eq(u64, stats().bad_connect_lines, n + 1));
}

Test(vsock, nothing_is_read_without_rx_buffers)
{
	open_device(5000, 0);
	int fd = host_connect();
	host_write(fd, "CONNECT 3000\n", 13);
	pump(30);
	cr_assert(eq(u16, test_used(&rings[0])->idx, 0));
	/* One buffer at a time, taken back without reposting. */
	struct pkt p;
	post_rx(0);
	kick(0);
	pump(10);
	cr_assert(eq(u16, test_used(&rings[0])->idx, 1));
	memcpy(&p.h, gmem_ptr(&gm, RX_BUF, HDR), HDR);
	cr_assert(eq(u16, p.h.op, VIRTIO_VSOCK_OP_REQUEST));
	rx_seen = 1;
	send_pkt(ghdr(3000, p.h.src_port, VIRTIO_VSOCK_OP_RESPONSE), NULL, 0);
	char ok[8];
	cr_assert(eq(u64, host_read(fd, ok, 3), 3));
	static uint8_t out[8000];
	pattern(out, sizeof(out), 3);
	host_write(fd, out, sizeof(out));
	pump(30);
	cr_assert(eq(u64, stats().bytes_to_guest, 0), "no buffer, no read");
	for (unsigned i = 0; i < 2; i++) {
		post_rx(0);
		kick(0);
		pump(10);
		cr_assert(eq(u16, test_used(&rings[0])->idx, 2 + i));
	}
	cr_assert(eq(u64, stats().bytes_to_guest, sizeof(out)));
	uint8_t *b = gmem_ptr(&gm, RX_BUF, RX_BUF_LEN);
	cr_assert(eq(int, memcmp(b + HDR, out + 4096, sizeof(out) - 4096), 0));
}

Test(vsock, reset_closes_every_connection)
{
	open_device(5000, RX_BUFS);
	int a, b, lfd, idle = host_connect();
	host_to_guest(&a, 1, BIG_CREDIT);
	host_to_guest(&b, 2, BIG_CREDIT);
	struct pkt p;
	int c = guest_to_host(&lfd, 70, 5400, &p);
	mmio_w32(t, VIRTIO_MMIO_STATUS, 0);
	cr_assert(host_sees_eof(a));
	cr_assert(host_sees_eof(b));
	cr_assert(host_sees_eof(c));
	expect_conns(3, 3, 3, 0);
	/* A host connection the guest never heard of survives; its REQUEST, held while the
	 * driver is away, goes out once it is back. */
	host_write(idle, "CONNECT 4\n", 10);
	pump(20);
	driver_up(RX_BUFS);
	expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert(eq(u32, p.h.dst_port, 4));
}

Test(vsock, sixty_four_streams_at_once)
{
	enum { N = 64, LEN = 20000 };
	open_device(5000, RX_BUFS);
	static int fds[N];
	static uint32_t hports[N];
	static uint8_t out[N][LEN], in[N][LEN];
	static size_t got[N];
	for (unsigned i = 0; i < N; i++) {
		fds[i] = host_connect();
		char line[32];
		int n = snprintf(line, sizeof(line), "CONNECT %u\n", 3000 + i);
		host_write(fds[i], line, (size_t)n);
	}
	struct pkt p;
	for (unsigned k = 0; k < N; k++) {
		expect_op(&p, VIRTIO_VSOCK_OP_REQUEST);
		unsigned i = p.h.dst_port - 3000;
		cr_assert(lt(u32, i, N));
		cr_assert(eq(u32, hports[i], 0), "one REQUEST per stream");
		hports[i] = p.h.src_port;
		send_pkt(ghdr(3000 + i, p.h.src_port, VIRTIO_VSOCK_OP_RESPONSE), NULL, 0);
	}
	for (unsigned i = 0; i < N; i++) {
		for (unsigned j = 0; j < i; j++)
			cr_assert(ne(u32, hports[i], hports[j]), "host ports are unique");
		char ok[32], want[32];
		int n = snprintf(want, sizeof(want), "OK %u\n", hports[i]);
		memset(ok, 0, sizeof(ok));
		cr_assert(eq(u64, host_read(fds[i], ok, (size_t)n), (size_t)n));
		cr_assert(eq(str, ok, want));
		pattern(out[i], LEN, i);
		host_write(fds[i], out[i], LEN);
	}
	size_t total = 0;
	while (total < (size_t)N * LEN) {
		expect_op(&p, VIRTIO_VSOCK_OP_RW);
		unsigned i = p.h.dst_port - 3000;
		cr_assert(lt(u32, i, N));
		cr_assert(eq(u32, p.h.src_port, hports[i]));
		cr_assert(le(u64, got[i] + p.len, LEN));
		memcpy(in[i] + got[i], p.data, p.len);
		got[i] += p.len;
		total += p.len;
	}
	for (unsigned i = 0; i < N; i++) {
		cr_assert(eq(int, memcmp(in[i], out[i], LEN), 0), "stream %u intact", i);
		pattern(out[i], LEN, 100 + i);
		for (unsigned off = 0; off < LEN; off += 5000)
			send_pkt(ghdr(3000 + i, hports[i], VIRTIO_VSOCK_OP_RW), out[i] + off, 5000);
	}
	for (unsigned i = 0; i < N; i++) {
		cr_assert(eq(u64, host_read(fds[i], in[i], LEN), LEN));
		cr_assert(eq(int, memcmp(in[i], out[i], LEN), 0), "stream %u intact back", i);
		close(fds[i]);
	}
	for (unsigned k = 0; k < N; k++) {
		expect_op(&p, VIRTIO_VSOCK_OP_SHUTDOWN);
		send_op(p.h.dst_port, p.h.src_port, VIRTIO_VSOCK_OP_RST);
	}
	struct vsock_stats s = stats();
	cr_assert(eq(u64, s.conns_opened, N));
	cr_assert(eq(u64, s.conns_closed, N));
	cr_assert(eq(u64, s.conns_reset, 0));
	cr_assert(eq(u64, s.bytes_to_guest, (uint64_t)N * LEN));
	cr_assert(eq(u64, s.bytes_from_guest, (uint64_t)N * LEN));
	cr_assert(eq(u64, s.bad_packets, 0));
}

/* ---- snapshots ---- */

#define EVENT_BUF 0xc00000ull /* event buffer i at + 0x100 * i */

static void post_event(uint16_t i)
{
	memset(gmem_ptr(&gm, EVENT_BUF + 0x100ull * i, 8), 0xee, 8);
	test_set_desc(&rings[2], i, EVENT_BUF + 0x100ull * i, 8, VRING_DESC_F_WRITE, 0);
	test_publish(&rings[2], i);
}

static uint16_t tx_used(void)
{
	return test_used(&rings[1])->idx;
}

Test(vsock, quiesced_device_reads_no_socket_and_no_ring)
{
	open_device(5000, RX_BUFS);
	int fd;
	uint32_t hport = host_to_guest(&fd, 1234, BIG_CREDIT);
	uint16_t rx_before = test_used(&rings[0])->idx, tx_before = tx_used();
	virtio_vsock_class.quiesce(dev);
	host_write(fd, "while quiesced", 14);
	send_pkt(ghdr(1234, hport, VIRTIO_VSOCK_OP_RW), "guest bytes", 11);
	int late = host_connect();
	host_write(late, "CONNECT 99\n", 11);
	pump(50);
	cr_assert(eq(u16, test_used(&rings[0])->idx, rx_before), "nothing put in the rx queue");
	cr_assert(eq(u16, tx_used(), tx_before), "the tx packet waits in its ring");
	char buf[16] = {0};
	cr_assert(lt(i64, recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0), "nothing reached the host");
	cr_assert(eq(u64, stats().bytes_to_guest + stats().bytes_from_guest, 0));
	virtio_vsock_class.unquiesce(dev);
	cr_assert(eq(u16, tx_used(), tx_before + 1));
	cr_assert(eq(u64, host_read(fd, buf, 11), 11));
	cr_assert(eq(str, buf, "guest bytes"));
	/* The bytes that waited in the socket, and the connection that waited in the backlog. */
	bool got_rw = false, got_request = false;
	for (int i = 0; i < 2; i++) {
		struct pkt p;
		expect_pkt(&p);
		if (p.h.op == VIRTIO_VSOCK_OP_RW) {
			cr_assert(eq(u32, p.len, 14));
			cr_assert(eq(int, memcmp(p.data, "while quiesced", 14), 0));
			got_rw = true;
		} else {
			cr_assert(eq(u16, p.h.op, VIRTIO_VSOCK_OP_REQUEST));
			cr_assert(eq(u32, p.h.dst_port, 99));
			got_request = true;
		}
	}
	cr_assert(got_rw && got_request);
	close(late);
}

/* The snapshotted monitor's device: a driver with event buffers posted and two connections,
 * quiesced and saved, then gone with its sockets. */
static struct virtio_mmio_state snapshot_and_close(unsigned nevents, int *host_fd)
{
	open_device(5000, RX_BUFS);
	for (uint16_t i = 0; i < nevents; i++)
		post_event(i);
	kick(2);
	cr_assert(eq(u16, test_used(&rings[2])->idx, 0), "no event before a restore");
	int lfd;
	struct pkt p;
	host_to_guest(host_fd, 1234, BIG_CREDIT);
	int c = guest_to_host(&lfd, 60, 5000, &p);
	virtio_vsock_class.quiesce(dev);
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	virtio_vsock_class.destroy(dev);
	dev = NULL;
	cr_assert(host_sees_eof(c), "the old monitor's sockets are gone with it");
	close(c);
	close(lfd);
	return s;
}

static uint64_t config_cid(void)
{
	uint64_t cid = 0;
	virtio_mmio_access(t, 0x100, (uint8_t *)&cid, 8, false);
	return cid;
}

Test(vsock, restored_device_resets_the_transport_with_its_own_cid)
{
	int old_fd;
	struct virtio_mmio_state s = snapshot_and_close(4, &old_fd);
	cr_assert(host_sees_eof(old_fd));
	guest_cid = 7; /* a clone with a CID of its own */
	create_device(5000);
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_vsock_class.restored(dev), 0), "%s", err_msg());
	struct vring_used *u = test_used(&rings[2]);
	cr_assert(eq(u16, u->idx, 1), "one event");
	cr_assert(eq(u32, u->ring[0].id, 0));
	cr_assert(eq(u32, u->ring[0].len, sizeof(struct virtio_vsock_event)));
	struct virtio_vsock_event ev;
	memcpy(&ev, gmem_ptr(&gm, EVENT_BUF, sizeof(ev)), sizeof(ev));
	cr_assert(eq(u32, ev.id, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET));
	cr_assert(eq(u64, config_cid(), 7), "the guest reads its new CID");
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING, 0));
	cr_assert(eq(u64, stats().transport_resets, 1));
	/* No packets about the old connections: the event said it all. */
	cr_assert(quiet(50));
	/* A host process connects to the restored monitor; the guest, CID 7 now, accepts. */
	int fd;
	uint32_t hport = host_to_guest(&fd, 1234, BIG_CREDIT);
	host_write(fd, "after the restore", 17);
	struct pkt p;
	expect_op(&p, VIRTIO_VSOCK_OP_RW);
	cr_assert(eq(u32, p.len, 17));
	send_pkt(ghdr(1234, hport, VIRTIO_VSOCK_OP_RW), "echo", 4);
	char buf[8] = {0};
	cr_assert(eq(u64, host_read(fd, buf, 4), 4));
	cr_assert(eq(str, buf, "echo"));
	/* Packets from the guest with its old CID are not its own any more. */
	uint64_t bad = stats().bad_packets;
	guest_cid = 3;
	send_op(1234, hport, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	pump(20);
	cr_assert(eq(u64, stats().bad_packets, bad + 1));
	close(fd);
	close(old_fd);
}

Test(vsock, reset_event_waits_for_an_event_buffer)
{
	int old_fd;
	struct virtio_mmio_state s = snapshot_and_close(0, &old_fd);
	create_device(5000);
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_vsock_class.restored(dev), 0), "%s", err_msg());
	cr_assert(eq(u16, test_used(&rings[2])->idx, 0));
	cr_assert(eq(u64, stats().transport_resets, 0));
	post_event(0);
	kick(2);
	cr_assert(eq(u16, test_used(&rings[2])->idx, 1), "sent once a buffer is there");
	cr_assert(eq(u64, stats().transport_resets, 1));
	/* Only once. */
	post_event(1);
	kick(2);
	cr_assert(eq(u16, test_used(&rings[2])->idx, 1));
	close(old_fd);
}

Test(vsock, event_buffer_that_is_not_writable_needs_reset)
{
	int old_fd;
	struct virtio_mmio_state s = snapshot_and_close(0, &old_fd);
	create_device(5000);
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	test_set_desc(&rings[2], 0, EVENT_BUF, 8, 0, 0);
	test_publish(&rings[2], 0);
	cr_assert(eq(int, virtio_vsock_class.restored(dev), 0), "%s", err_msg());
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	cr_assert(eq(u16, test_used(&rings[2])->idx, 0));
	close(old_fd);
}

Test(vsock, restored_before_the_driver_came_up_sends_no_event)
{
	create_device(5000);
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	virtio_vsock_class.destroy(dev);
	create_device(5000);
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_vsock_class.restored(dev), 0), "%s", err_msg());
	cr_assert(eq(u64, stats().transport_resets, 0));
	/* The driver probes as at boot, reads the CID, and works. */
	driver_up(RX_BUFS);
	post_event(0);
	kick(2);
	cr_assert(eq(u16, test_used(&rings[2])->idx, 0));
	int fd;
	host_to_guest(&fd, 5, BIG_CREDIT);
	close(fd);
}
