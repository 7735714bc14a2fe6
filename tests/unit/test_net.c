/* virtio-net through its transport registers, against a real tap in a network namespace of the
 * test's own (criterion forks each test, so each gets a fresh one). The far end of the wire is an
 * AF_PACKET socket on the tap: what the guest sends arrives there, what it sends goes to the
 * guest. Frames use a local experimental EtherType, so the kernel's own traffic never mixes in. */
#include "devices/virtio_mmio/net.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ETHERTYPE 0x88b5
#define HDR	  12
#define RX_BUF	  0x100000ull /* receive buffer d at RX_BUF + d * SLOT */
#define TX_BUF	  0x800000ull
#define SLOT	  0x10000ull
#define MRG	  (1ull << VIRTIO_NET_F_MRG_RXBUF)

static const uint8_t guest_mac[6] = {0xaa, 0xfc, 0, 0, 0, 1};
static const uint8_t wire_mac[6] = {0x02, 0, 0, 0, 0, 2};

static bool have_netns;
static struct guest_mem gm;
static struct test_ring rx, tx;
static struct event_loop loop;
static void *dev;
static struct virtio_mmio_dev *t;
static int wire = -1; /* AF_PACKET socket bound to the tap */

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t w = write(fd, text, strlen(text));
		(void)w;
		close(fd);
	}
}

static void setup(void)
{
	have_netns = unshare(CLONE_NEWNET) == 0;
	/* No IPv6 chatter (router solicitations, DAD) on the interfaces made here. */
	if (have_netns)
		write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	cr_assert(eq(int, event_loop_init(&loop), 0));
}

static void teardown(void)
{
	if (dev)
		virtio_net_class.destroy(dev);
	if (wire >= 0)
		close(wire);
	event_loop_destroy(&loop);
	gmem_destroy(&gm);
}

TestSuite(net, .init = setup, .fini = teardown);

static void need_netns(void)
{
	if (!have_netns)
		cr_skip_test("needs CAP_SYS_ADMIN for a network namespace of its own");
}

static void link_up(const char *name, int mtu)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_mtu = mtu;
	cr_assert(eq(int, ioctl(s, SIOCSIFMTU, &ifr), 0));
	cr_assert(eq(int, ioctl(s, SIOCGIFFLAGS, &ifr), 0));
	ifr.ifr_flags |= IFF_UP;
	cr_assert(eq(int, ioctl(s, SIOCSIFFLAGS, &ifr), 0));
	close(s);
}

/* The host's end of the wire; it sees only our EtherType, and only frames coming in. */
static void open_wire(const char *name)
{
	wire = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETHERTYPE));
	cr_assert(ge(int, wire, 0));
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(ETHERTYPE),
	    .sll_ifindex = (int)if_nametoindex(name),
	};
	cr_assert(eq(int, bind(wire, (struct sockaddr *)&sll, sizeof(sll)), 0));
}

static void make_frame(uint8_t *f, size_t len, unsigned seed)
{
	memcpy(f, guest_mac, 6);
	memcpy(f + 6, wire_mac, 6);
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(seed + i * 7);
}

/* Put a frame on the wire towards the guest. */
static void inject(size_t len, unsigned seed)
{
	static uint8_t f[16384];
	make_frame(f, len, seed);
	cr_assert(eq(i64, send(wire, f, len, 0), (int64_t)len), "send: %s", strerror(errno));
}

static ssize_t wire_recv(uint8_t *buf, size_t size)
{
	struct pollfd p = {wire, POLLIN, 0};
	if (poll(&p, 1, 1000) != 1)
		return -1;
	return recv(wire, buf, size, 0);
}

static void kick(unsigned q)
{
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

static void post_rx(uint16_t d, uint32_t len)
{
	test_set_desc(&rx, d, RX_BUF + d * SLOT, len, VRING_DESC_F_WRITE, 0);
	test_publish(&rx, d);
}

/* Run the vmm loop until ring r's used index reaches `want`, or about two seconds pass. */
static void wait_used(struct test_ring *r, uint16_t want)
{
	for (int i = 0; i < 100 && test_used(r)->idx != want; i++)
		event_loop_run_once(&loop, 20);
	cr_assert(eq(u16, test_used(r)->idx, want), "used index");
}

/* Run the loop a little, expecting nothing to arrive. */
static void settle(void)
{
	for (int i = 0; i < 5; i++)
		event_loop_run_once(&loop, 10);
}

/* How many of this process's descriptors are open on `path`. */
static unsigned fds_open_on(const char *path)
{
	char got[PATH_MAX];
	DIR *d = opendir("/proc/self/fd");
	cr_assert(ne(ptr, d, NULL));
	unsigned n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, got, sizeof(got) - 1);
		if (len < 0)
			continue;
		got[len] = 0;
		n += strcmp(got, path) == 0;
	}
	closedir(d);
	return n;
}

static struct net_stats stats(void)
{
	struct net_stats s;
	net_get_stats(dev, &s);
	return s;
}

static uint32_t status(void)
{
	return mmio_r32(t, VIRTIO_MMIO_STATUS);
}

static void driver_init(uint64_t features, uint16_t rx_num)
{
	test_ring_init_at(&rx, &gm, rx_num, 0);
	test_ring_init_at(&tx, &gm, 16, 0x40000);
	struct test_ring rings[2] = {rx, tx};
	uint32_t st = mmio_driver_init(t, features, rings, 2);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
	cr_assert(eq(u32, st & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
}

/* A device on tap t0 (made by the device unless the test made it), the wire, a driver. */
static void open_device(const char *spec, uint64_t features, uint16_t rx_num)
{
	need_netns();
	void *cfg;
	cr_assert(eq(int, virtio_net_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_net_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	virtio_net_class.free_config(cfg); /* the device needs its config no longer */
	cr_assert(eq(int, virtio_net_class.start(dev, &loop), 0), "%s", err_msg());
	link_up("t0", 9000);
	open_wire("t0");
	driver_init(features, rx_num);
}

/* The guest sends a frame: header in one descriptor, the frame split over two more. */
static void guest_send(uint16_t d, const uint8_t *frame, uint32_t len)
{
	uint32_t half = len / 2;
	cr_assert(eq(int, gmem_write(&gm, TX_BUF, (uint8_t[HDR]){0}, HDR), 0));
	cr_assert(eq(int, gmem_write(&gm, TX_BUF + 0x1000, frame, half), 0));
	cr_assert(eq(int, gmem_write(&gm, TX_BUF + 0x8000, frame + half, len - half), 0));
	test_set_desc(&tx, d, TX_BUF, HDR, VRING_DESC_F_NEXT, (uint16_t)(d + 1));
	test_set_desc(&tx, (uint16_t)(d + 1), TX_BUF + 0x1000, half, VRING_DESC_F_NEXT,
		      (uint16_t)(d + 2));
	test_set_desc(&tx, (uint16_t)(d + 2), TX_BUF + 0x8000, len - half, 0, 0);
	test_publish(&tx, d);
	kick(1);
}

/* The bytes of received frame number `first` (a used-ring slot) and the following used
 * buffers: the header in *h, the frame in f; returns the frame length. */
static size_t received(uint16_t first, unsigned nbufs, struct virtio_net_hdr_v1 *h, uint8_t *f)
{
	static uint8_t all[SLOT * 8];
	size_t n = 0;
	for (unsigned i = 0; i < nbufs; i++) {
		struct vring_used_elem *e = &test_used(&rx)->ring[(first + i) % rx.num];
		cr_assert(le(u32, e->len, SLOT));
		memcpy(all + n, gmem_ptr(&gm, RX_BUF + e->id * SLOT, e->len), e->len);
		n += e->len;
	}
	cr_assert(ge(u64, n, HDR));
	memcpy(h, all, HDR);
	memcpy(f, all + HDR, n - HDR);
	return n - HDR;
}

static void expect_frame(uint16_t first, unsigned nbufs, size_t len, unsigned seed)
{
	static uint8_t want[16384], got[SLOT * 8];
	struct virtio_net_hdr_v1 h;
	make_frame(want, len, seed);
	cr_assert(eq(u64, received(first, nbufs, &h, got), len));
	cr_assert(eq(u16, h.num_buffers, nbufs));
	cr_assert(eq(u8, h.gso_type, VIRTIO_NET_HDR_GSO_NONE));
	cr_assert(eq(int, memcmp(got, want, len), 0), "frame bytes differ");
}

/* ---- configuration ---- */

Test(net, good_specs_parse)
{
	struct net_config c;
	cr_assert(eq(int, net_config_parse("tap=t0", &c), 0), "%s", err_msg());
	cr_assert(eq(str, c.tap, "t0"));
	cr_assert(eq(str, c.id, "t0"));
	cr_assert(eq(int, c.fd, -1));
	cr_assert(not(c.mac_set));
	cr_assert(eq(int, net_config_parse("id=eth0,mac=aa:FC:00:00:00:01,tap=tap-vm1", &c), 0));
	cr_assert(eq(str, c.tap, "tap-vm1"));
	cr_assert(eq(str, c.id, "eth0"));
	cr_assert(c.mac_set);
	cr_assert(eq(int, memcmp(c.mac, guest_mac, 6), 0));
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	char spec[32];
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	cr_assert(eq(int, net_config_parse(spec, &c), 0), "%s", err_msg());
	cr_assert(eq(int, c.fd, fd));
	cr_assert(eq(str, c.tap, ""));
	snprintf(spec, sizeof(spec), "fd%d", fd);
	cr_assert(eq(str, c.id, spec));
	close(fd);
}

Test(net, bad_specs_are_refused)
{
	static const struct {
		const char *spec, *why;
	} bad[] = {
	    {"", "tap=NAME or fd=N is required"},
	    {"mac=aa:fc:00:00:00:01", "tap=NAME or fd=N is required"},
	    {"tap=t0,fd=0", "give one tap=NAME or one fd=N"},
	    {"tap=t0,tap=t1", "give one tap=NAME or one fd=N"},
	    {"tap=averyveryverylongname", "not an interface name"},
	    {"tap=a/b", "not an interface name"},
	    {"tap=tap%d", "not an interface name"},
	    {"tap=..", "not an interface name"},
	    {"tap=t0,mac=aa:fc:00:00:00", "expected six hex bytes"},
	    {"tap=t0,mac=aa:fc:00:00:00:0g", "expected six hex bytes"},
	    {"tap=t0,mac=aa-fc-00-00-00-01", "expected six hex bytes"},
	    {"tap=t0,mac=01:00:5e:00:00:01", "multicast"},
	    {"tap=t0,mac=00:00:00:00:00:00", "not an address"},
	    {"tap=t0,mac=aa:fc:00:00:00:01,mac=aa:fc:00:00:00:02", "given twice"},
	    {"tap=t0,colour=red", "unknown option 'colour'"},
	    {"tap=t0,id=", "unknown or empty option 'id='"},
	    {"tap=t0,ro", "unknown or empty option 'ro'"},
	    {"tap=t0,id=0123456789012345678901234567890123456789012345678901234567890123",
	     "id longer than"},
	    {"fd=-1", "not a file descriptor number"},
	    {"fd=3x", "not a file descriptor number"},
	    {"fd=99999", "not open"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_config c;
		cr_assert(lt(int, net_config_parse(bad[i].spec, &c), 0), "accepted '%s'",
			  bad[i].spec);
		cr_assert(ne(ptr, strstr(err_msg(), bad[i].why), NULL), "'%s': %s", bad[i].spec,
			  err_msg());
	}
}

Test(net, conflicts)
{
	struct net_config a, b;
	cr_assert(eq(int, net_config_parse("tap=t0,mac=aa:fc:00:00:00:01", &a), 0));
	cr_assert(eq(int, net_config_parse("tap=t1,id=t0", &b), 0));
	cr_assert(ne(ptr, (void *)virtio_net_class.conflict(&a, &b), NULL));
	cr_assert(ne(ptr, strstr(virtio_net_class.conflict(&a, &b), "same id"), NULL));
	cr_assert(eq(int, net_config_parse("tap=t0,id=other", &b), 0));
	cr_assert(ne(ptr, strstr(virtio_net_class.conflict(&a, &b), "same tap"), NULL));
	cr_assert(eq(int, net_config_parse("tap=t1,mac=AA:FC:00:00:00:01", &b), 0));
	cr_assert(ne(ptr, strstr(virtio_net_class.conflict(&a, &b), "same MAC"), NULL));
	cr_assert(eq(int, net_config_parse("tap=t1,mac=aa:fc:00:00:00:02", &b), 0));
	cr_assert(eq(ptr, (void *)virtio_net_class.conflict(&a, &b), NULL));
	cr_assert(eq(int, net_config_parse("fd=0,id=x", &a), 0));
	cr_assert(eq(int, net_config_parse("fd=0,id=y", &b), 0));
	cr_assert(ne(ptr, strstr(virtio_net_class.conflict(&a, &b), "same fd"), NULL));
}

Test(net, tap_errors_say_why)
{
	need_netns();
	void *cfg;
	struct virtio_mmio_dev *t2;
	void *dev2 = NULL;
	cr_assert(eq(int, virtio_net_class.parse("tap=lo", &cfg), 0));
	cr_assert(lt(int, virtio_net_class.create(cfg, 0, &gm, &dev2, &t2), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "lo exists and is not a single-queue tap"), NULL), "%s",
		  err_msg());
	virtio_net_class.free_config(cfg);
	open_device("tap=t0", 0, 16);
	cr_assert(eq(int, virtio_net_class.parse("tap=t0,id=again", &cfg), 0));
	cr_assert(lt(int, virtio_net_class.create(cfg, 1, &gm, &dev2, &t2), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "tap t0 is busy"), NULL), "%s", err_msg());
	virtio_net_class.free_config(cfg);
	/* fd=N with a tap opened without the vnet header. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "t9");
	cr_assert(eq(int, ioctl(fd, TUNSETIFF, &ifr), 0));
	char spec[32];
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	cr_assert(eq(int, virtio_net_class.parse(spec, &cfg), 0));
	cr_assert(lt(int, virtio_net_class.create(cfg, 1, &gm, &dev2, &t2), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "opened without IFF_VNET_HDR"), NULL), "%s", err_msg());
	virtio_net_class.free_config(cfg);
	cr_assert(eq(int, fcntl(fd, F_GETFD), -1), "free_config closes the config's fd");
	/* Not a tap at all. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	char name[32];
	snprintf(name, sizeof(name), "fd %d is not an attached tap", fd);
	cr_assert(eq(int, virtio_net_class.parse(spec, &cfg), 0));
	cr_assert(lt(int, virtio_net_class.create(cfg, 1, &gm, &dev2, &t2), 0));
	cr_assert(ne(ptr, strstr(err_msg(), name), NULL), "%s", err_msg());
	virtio_net_class.free_config(cfg);
}

Test(net, features_and_config)
{
	open_device("tap=t0,mac=aa:fc:00:00:00:01", 0, 16);
	mmio_w32(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t f = mmio_r32(t, VIRTIO_MMIO_DEVICE_FEATURES);
	uint32_t want = (1u << VIRTIO_NET_F_CSUM) | (1u << VIRTIO_NET_F_GUEST_CSUM) |
			(1u << VIRTIO_NET_F_GUEST_TSO4) | (1u << VIRTIO_NET_F_GUEST_TSO6) |
			(1u << VIRTIO_NET_F_HOST_TSO4) | (1u << VIRTIO_NET_F_HOST_TSO6) |
			(1u << VIRTIO_NET_F_MRG_RXBUF) | (1u << VIRTIO_NET_F_MAC) |
			(1u << VIRTIO_NET_F_STATUS);
	cr_assert(eq(u32, f & want, want));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_ID), 1));
	uint8_t cfg[8];
	for (unsigned i = 0; i < 8; i++)
		virtio_mmio_access(t, 0x100 + i, &cfg[i], 1, false);
	cr_assert(eq(int, memcmp(cfg, guest_mac, 6), 0));
	cr_assert(eq(u8, cfg[6], VIRTIO_NET_S_LINK_UP));
}

Test(net, random_mac_is_unicast_and_local)
{
	open_device("tap=t0", 0, 16);
	uint8_t b0 = 0;
	virtio_mmio_access(t, 0x100, &b0, 1, false);
	cr_assert(eq(u8, b0 & 3, 2));
}

/* ---- the data path ---- */

Test(net, tx_frame_reaches_the_tap)
{
	open_device("tap=t0", 0, 16);
	uint8_t f[1514], got[2048];
	make_frame(f, sizeof(f), 1);
	guest_send(0, f, sizeof(f));
	cr_assert(eq(u16, test_used(&tx)->idx, 1));
	cr_assert(eq(u32, test_used(&tx)->ring[0].id, 0));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), (int64_t)sizeof(f)));
	cr_assert(eq(int, memcmp(got, f, sizeof(f)), 0));
	make_frame(f, 60, 2);
	guest_send(3, f, 60);
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), 60));
	cr_assert(eq(int, memcmp(got, f, 60), 0));
	struct net_stats s = stats();
	cr_assert(eq(u64, s.tx_frames, 2));
	cr_assert(eq(u64, s.tx_bytes, 1514 + 60));
}

Test(net, tx_through_a_tap_passed_as_fd)
{
	need_netns();
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "t0");
	cr_assert(eq(int, ioctl(fd, TUNSETIFF, &ifr), 0));
	char spec[32];
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	cr_assert(eq(u32, fds_open_on("/dev/net/tun"), 1));
	open_device(spec, 0, 16);
	/* The config's fd went with the config; the device has its own. */
	cr_assert(eq(u32, fds_open_on("/dev/net/tun"), 1));
	uint8_t f[100], got[200];
	make_frame(f, sizeof(f), 3);
	guest_send(0, f, sizeof(f));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), 100));
	cr_assert(eq(int, memcmp(got, f, 100), 0));
	post_rx(0, 2048);
	kick(0);
	inject(80, 4);
	wait_used(&rx, 1);
	expect_frame(0, 1, 80, 4);
}

Test(net, metrics_follow_frames_bytes_and_drops)
{
	open_device("tap=t0", 0, 16);
	struct virtio_device_metrics m;
	virtio_net_class.metrics(dev, &m);
	cr_assert(eq(u64, m.requests, 0));
	cr_assert(eq(u64, m.errors, 0));
	uint8_t f[600], got[1024];
	make_frame(f, sizeof(f), 5);
	guest_send(0, f, sizeof(f));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), 600));
	virtio_net_class.metrics(dev, &m);
	cr_assert(eq(u64, m.requests, 1));
	cr_assert(eq(u64, m.bytes_from_guest, 600));
	cr_assert(eq(u64, m.bytes_to_guest, 0));
	post_rx(0, 1024);
	kick(0);
	inject(300, 6);
	wait_used(&rx, 1);
	virtio_net_class.metrics(dev, &m);
	cr_assert(eq(u64, m.requests, 2));
	cr_assert(eq(u64, m.bytes_to_guest, 300));
	cr_assert(eq(u64, m.errors, 0));
	/* A frame larger than the buffer the driver posted is dropped: an error, no bytes. */
	post_rx(1, 1024);
	kick(0);
	inject(3000, 7);
	settle();
	virtio_net_class.metrics(dev, &m);
	cr_assert(eq(u64, m.errors, 1));
	cr_assert(eq(u64, m.requests, 2));
	cr_assert(eq(u64, m.bytes_to_guest, 300));
}

Test(net, rx_frame_reaches_the_guest)
{
	open_device("tap=t0", 0, 16);
	post_rx(0, 2048);
	post_rx(1, 2048);
	kick(0);
	inject(1514, 4);
	wait_used(&rx, 1);
	cr_assert(eq(u32, test_used(&rx)->ring[0].len, HDR + 1514));
	expect_frame(0, 1, 1514, 4);
	inject(60, 5);
	wait_used(&rx, 2);
	expect_frame(1, 1, 60, 5);
	struct net_stats s = stats();
	cr_assert(eq(u64, s.rx_frames, 2));
	cr_assert(eq(u64, s.rx_bytes, 1514 + 60));
}

Test(net, rx_waits_for_buffers_without_spinning)
{
	open_device("tap=t0", 0, 16);
	inject(200, 6);
	settle();
	cr_assert(eq(u16, test_used(&rx)->idx, 0));
	cr_assert(ge(u64, stats().rx_waits, 1));
	/* The tap is no longer polled: the loop sleeps although a frame is waiting. */
	cr_assert(eq(int, event_loop_run_once(&loop, 0), 0));
	post_rx(0, 2048);
	kick(0);
	cr_assert(eq(u16, test_used(&rx)->idx, 1), "delivered on the kick");
	expect_frame(0, 1, 200, 6);
	cr_assert(eq(u64, stats().rx_dropped_too_big, 0));
}

Test(net, rx_mergeable_frame_spans_buffers)
{
	open_device("tap=t0", MRG, 16);
	for (uint16_t d = 0; d < 4; d++)
		post_rx(d, 1024);
	kick(0);
	inject(3000, 7);
	wait_used(&rx, 3); /* 12 + 3000 bytes: 1024 + 1024 + 964 */
	cr_assert(eq(u32, test_used(&rx)->ring[2].len, 964));
	expect_frame(0, 3, 3000, 7);
	/* The fourth buffer was left for the next frame. */
	inject(100, 8);
	wait_used(&rx, 4);
	cr_assert(eq(u32, test_used(&rx)->ring[3].id, 3));
	expect_frame(3, 1, 100, 8);
}

Test(net, rx_mergeable_frame_waits_for_more_buffers)
{
	open_device("tap=t0", MRG, 16);
	post_rx(0, 1024);
	kick(0);
	inject(3000, 9);
	settle();
	cr_assert(eq(u16, test_used(&rx)->idx, 0));
	cr_assert(ge(u64, stats().rx_waits, 1));
	post_rx(1, 1024);
	post_rx(2, 4096);
	kick(0);
	cr_assert(eq(u16, test_used(&rx)->idx, 3));
	expect_frame(0, 3, 3000, 9);
}

Test(net, rx_oversized_frame_is_dropped_and_counted)
{
	open_device("tap=t0", 0, 16);
	post_rx(0, 1024);
	kick(0);
	inject(3000, 10);
	settle();
	cr_assert(eq(u64, stats().rx_dropped_too_big, 1));
	cr_assert(eq(u16, test_used(&rx)->idx, 0));
	/* The buffer was not used up: the next frame that fits goes into it. */
	inject(500, 11);
	wait_used(&rx, 1);
	cr_assert(eq(u32, test_used(&rx)->ring[0].id, 0));
	expect_frame(0, 1, 500, 11);
	cr_assert(eq(u64, stats().rx_dropped_too_big, 1));
}

Test(net, rx_mergeable_frame_larger_than_the_whole_queue_is_dropped)
{
	open_device("tap=t0", MRG, 4);
	for (uint16_t d = 0; d < 4; d++)
		post_rx(d, 256); /* 1 KiB in all: the driver can post no more */
	kick(0);
	inject(3000, 12);
	settle();
	cr_assert(eq(u64, stats().rx_dropped_too_big, 1));
	cr_assert(eq(u16, test_used(&rx)->idx, 0));
	inject(600, 13);
	wait_used(&rx, 3);
	expect_frame(0, 3, 600, 13);
}

Test(net, malformed_tx_chains_need_reset)
{
	open_device("tap=t0", 0, 16);
	/* A writable descriptor in a transmit chain. */
	test_set_desc(&tx, 0, TX_BUF, HDR, VRING_DESC_F_NEXT, 1);
	test_set_desc(&tx, 1, TX_BUF + 0x1000, 100, VRING_DESC_F_WRITE, 0);
	test_publish(&tx, 0);
	kick(1);
	cr_assert(ne(u32, status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & 2, 0), "config interrupt");
	cr_assert(eq(u64, stats().tx_frames, 0));
	/* After a reset: a chain shorter than the header. */
	driver_init(0, 16);
	test_set_desc(&tx, 0, TX_BUF, HDR - 1, 0, 0);
	test_publish(&tx, 0);
	kick(1);
	cr_assert(ne(u32, status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	/* After a reset: a descriptor outside guest RAM. */
	driver_init(0, 16);
	test_set_desc(&tx, 0, 64 * MiB, 100, 0, 0);
	test_publish(&tx, 0);
	kick(1);
	cr_assert(ne(u32, status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	cr_assert(eq(u64, t->stats.needs_reset_events, 3));
	/* And it works again after one more. */
	driver_init(0, 16);
	uint8_t f[64], got[128];
	make_frame(f, sizeof(f), 14);
	guest_send(0, f, sizeof(f));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), 64));
}

Test(net, malformed_rx_buffers_need_reset)
{
	open_device("tap=t0", MRG, 16);
	test_set_desc(&rx, 0, RX_BUF, 1024, 0, 0); /* device-readable */
	test_publish(&rx, 0);
	kick(0);
	cr_assert(ne(u32, status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	driver_init(MRG, 16);
	post_rx(0, HDR - 2); /* cannot hold a header */
	kick(0);
	cr_assert(ne(u32, status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	/* Frames arriving while it needs a reset stay in the tap. */
	inject(100, 15);
	settle();
	cr_assert(eq(u64, stats().rx_frames, 0));
	driver_init(MRG, 16);
	post_rx(0, 2048);
	kick(0);
	cr_assert(eq(u16, test_used(&rx)->idx, 1));
	expect_frame(0, 1, 100, 15);
}

Test(net, features_without_their_dependencies_are_refused)
{
	open_device("tap=t0", 0, 16);
	test_ring_init_at(&rx, &gm, 16, 0);
	test_ring_init_at(&tx, &gm, 16, 0x40000);
	struct test_ring rings[2] = {rx, tx};
	uint32_t st = mmio_driver_init(t, 1ull << VIRTIO_NET_F_GUEST_TSO4, rings, 2);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
}

Test(net, reset_drops_a_waiting_frame_and_counts_it)
{
	open_device("tap=t0", MRG, 16);
	post_rx(0, 1024);
	kick(0);
	inject(3000, 16);
	settle();
	cr_assert(eq(u16, test_used(&rx)->idx, 0));
	mmio_w32(t, VIRTIO_MMIO_STATUS, 0);
	cr_assert(eq(u64, stats().rx_dropped_reset, 1));
	driver_init(MRG, 16);
	post_rx(0, 2048);
	kick(0);
	inject(80, 17);
	wait_used(&rx, 1);
	expect_frame(0, 1, 80, 17);
}

static void delete_link(const char *name)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = {
	    .nh = {.nlmsg_len = sizeof(req),
		   .nlmsg_type = RTM_DELLINK,
		   .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK},
	    .ifi = {.ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex(name)},
	};
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	cr_assert(eq(i64, send(s, &req, sizeof(req), 0), (int64_t)sizeof(req)));
	uint8_t buf[512];
	cr_assert(gt(i64, recv(s, buf, sizeof(buf), 0), 0));
	struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)buf);
	cr_assert(eq(int, e->error, 0), "RTM_DELLINK: %s", strerror(-e->error));
	close(s);
}

Test(net, tap_deleted_under_the_device)
{
	open_device("tap=t0", 0, 16);
	post_rx(0, 2048);
	kick(0);
	close(wire);
	wire = -1;
	delete_link("t0");
	settle();
	cr_assert(eq(u64, stats().tap_errors, 1));
	cr_assert(eq(int, event_loop_run_once(&loop, 0), 0), "the loop does not spin");
	uint8_t st = 0xff;
	virtio_mmio_access(t, 0x106, &st, 1, false);
	cr_assert(eq(u8, st, 0), "link down");
	/* Transmits fail, counted, and the buffers still go back to the driver. */
	uint8_t f[64];
	make_frame(f, sizeof(f), 18);
	guest_send(0, f, sizeof(f));
	cr_assert(eq(u16, test_used(&tx)->idx, 1));
	cr_assert(eq(u64, stats().tx_dropped, 1));
}

#define TSO_FRAME (14 + 20 + 20 + 4000)

/* One 4000-byte TCP/IPv4 segment, to be cut into 1448-byte segments by whoever does TSO. */
static void make_tso_frame(struct virtio_net_hdr *vh, uint8_t *f)
{
	*vh = (struct virtio_net_hdr){
	    .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
	    .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
	    .hdr_len = 54,
	    .gso_size = 1448,
	    .csum_start = 34,
	    .csum_offset = 16,
	};
	memset(f, 0, TSO_FRAME);
	memcpy(f, guest_mac, 6);
	memcpy(f + 6, wire_mac, 6);
	f[12] = 0x08; /* IPv4 */
	uint8_t *ip = f + 14, *tcp = ip + 20;
	ip[0] = 0x45;
	ip[2] = (TSO_FRAME - 14) >> 8;
	ip[3] = (TSO_FRAME - 14) & 0xff;
	ip[8] = 64;
	ip[9] = 6; /* TCP */
	memcpy(ip + 12, (uint8_t[]){10, 0, 0, 2}, 4);
	memcpy(ip + 16, (uint8_t[]){10, 0, 0, 1}, 4);
	tcp[1] = 80;
	tcp[3] = 80;
	tcp[12] = 5 << 4;
	tcp[13] = 0x18; /* PSH, ACK */
	for (unsigned i = 0; i < 4000; i++)
		tcp[20 + i] = (uint8_t)i;
}

/* An AF_PACKET socket for IPv4 frames that carry a virtio_net_hdr in front. */
static int vnet_socket(void)
{
	int p = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0800));
	cr_assert(ge(int, p, 0));
	int one = 1;
	cr_assert(eq(int, setsockopt(p, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)), 0));
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(0x0800),
	    .sll_ifindex = (int)if_nametoindex("t0"),
	};
	cr_assert(eq(int, bind(p, (struct sockaddr *)&sll, sizeof(sll)), 0));
	return p;
}

static void set_mtu(const char *name, int mtu)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {.ifr_mtu = mtu};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	cr_assert(eq(int, ioctl(s, SIOCSIFMTU, &ifr), 0));
	close(s);
}

/* The TSO frame sent towards the guest on a 1500-byte link: the kernel hands it to the tap
 * whole only if the driver accepted TSO (the tap's offloads follow the driver's features);
 * otherwise it cuts it into MTU-sized frames first. Returns the frames the guest got. */
static unsigned receive_tso(uint64_t features, struct virtio_net_hdr_v1 *first)
{
	open_device("tap=t0", features, 16);
	set_mtu("t0", 1500);
	for (uint16_t d = 0; d < 8; d++)
		post_rx(d, 8192);
	kick(0);
	int p = vnet_socket();
	static uint8_t pkt[sizeof(struct virtio_net_hdr) + TSO_FRAME];
	make_tso_frame((struct virtio_net_hdr *)pkt, pkt + sizeof(struct virtio_net_hdr));
	cr_assert(eq(i64, send(p, pkt, sizeof(pkt), 0), (int64_t)sizeof(pkt)), "send: %s",
		  strerror(errno));
	close(p);
	settle();
	unsigned frames = test_used(&rx)->idx;
	cr_assert(gt(u32, frames, 0));
	memcpy(first, gmem_ptr(&gm, RX_BUF + test_used(&rx)->ring[0].id * SLOT, HDR), HDR);
	return frames;
}

Test(net, rx_tso_reaches_a_driver_that_accepted_it_whole)
{
	struct virtio_net_hdr_v1 h;
	uint64_t f = (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4);
	cr_assert(eq(u32, receive_tso(f, &h), 1));
	cr_assert(eq(u8, h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4));
	cr_assert(eq(u16, h.gso_size, 1448));
	cr_assert(eq(u32, test_used(&rx)->ring[0].len, HDR + TSO_FRAME));
}

Test(net, rx_tso_is_segmented_for_a_driver_without_it)
{
	struct virtio_net_hdr_v1 h;
	cr_assert(eq(u32, receive_tso(1ull << VIRTIO_NET_F_GUEST_CSUM, &h), 3));
	cr_assert(eq(u8, h.gso_type, VIRTIO_NET_HDR_GSO_NONE));
	cr_assert(eq(u64, stats().rx_bytes, 3 * 54 + 4000));
}

/* The guest's header reaches the host stack as it wrote it: the GSO frame arrives whole. */
Test(net, tx_tso_header_passes_through)
{
	uint64_t f = (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4);
	open_device("tap=t0", f, 16);
	int p = vnet_socket();
	static uint8_t frame[TSO_FRAME], got[sizeof(struct virtio_net_hdr) + 8192];
	uint8_t h[HDR] = {0}; /* virtio_net_hdr, then num_buffers (0 on transmit) */
	struct virtio_net_hdr vh;
	make_tso_frame(&vh, frame);
	memcpy(h, &vh, sizeof(vh));
	cr_assert(eq(int, gmem_write(&gm, TX_BUF, h, HDR), 0));
	cr_assert(eq(int, gmem_write(&gm, TX_BUF + 0x1000, frame, TSO_FRAME), 0));
	test_set_desc(&tx, 0, TX_BUF, HDR, VRING_DESC_F_NEXT, 1);
	test_set_desc(&tx, 1, TX_BUF + 0x1000, TSO_FRAME, 0, 0);
	test_publish(&tx, 0);
	kick(1);
	cr_assert(eq(u64, stats().tx_frames, 1), "tap errors: %llu",
		  (unsigned long long)stats().tap_errors);
	struct pollfd pfd = {p, POLLIN, 0};
	cr_assert(eq(int, poll(&pfd, 1, 1000), 1));
	ssize_t n = recv(p, got, sizeof(got), 0);
	cr_assert(eq(i64, n, (int64_t)(sizeof(struct virtio_net_hdr) + TSO_FRAME)));
	memcpy(&vh, got, sizeof(vh));
	cr_assert(eq(u8, vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4));
	cr_assert(eq(u16, vh.gso_size, 1448));
	cr_assert(eq(int, memcmp(got + sizeof(vh), frame, TSO_FRAME), 0));
	close(p);
}

/* ---- snapshots ---- */

static struct virtio_mmio_state saved_state(void)
{
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	return s;
}

Test(net, quiesced_device_leaves_the_tap_and_the_rings_alone)
{
	open_device("tap=t0", 0, 16);
	post_rx(0, 2048);
	kick(0);
	virtio_net_class.quiesce(dev);
	memset(gmem_ptr(&gm, RX_BUF, 2048), 0xee, 2048);
	inject(300, 20);
	uint8_t f[200], got[256];
	make_frame(f, sizeof(f), 21);
	guest_send(0, f, sizeof(f));
	settle();
	cr_assert(eq(u16, test_used(&rx)->idx, 0), "the frame waits in the tap");
	cr_assert(eq(u16, test_used(&tx)->idx, 0), "the transmit waits in the ring");
	cr_assert(eq(u8, *(uint8_t *)gmem_ptr(&gm, RX_BUF, 1), 0xee), "guest memory untouched");
	struct virtio_mmio_state s = saved_state();
	cr_assert(eq(u16, s.queues[0].last_avail, 0));
	cr_assert(eq(u16, s.queues[1].last_avail, 0));
	cr_assert(lt(i64, wire_recv(got, sizeof(got)), 0), "nothing on the wire");
	cr_assert(eq(u64, stats().rx_frames + stats().tx_frames, 0));
	/* Unquiesce serves what waited, with no kick from the driver. */
	virtio_net_class.unquiesce(dev);
	cr_assert(eq(u16, test_used(&tx)->idx, 1));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), (int64_t)sizeof(f)));
	cr_assert(eq(int, memcmp(got, f, sizeof(f)), 0));
	wait_used(&rx, 1);
	expect_frame(0, 1, 300, 20);
	/* And the tap is watched again. */
	post_rx(1, 2048);
	kick(0);
	inject(90, 22);
	wait_used(&rx, 2);
	expect_frame(1, 1, 90, 22);
}

Test(net, quiesce_drops_a_frame_waiting_for_buffers)
{
	open_device("tap=t0", MRG, 16);
	post_rx(0, 1024);
	kick(0);
	inject(3000, 23);
	settle();
	cr_assert(eq(u16, saved_state().queues[0].last_avail, 1), "a buffer is held");
	virtio_net_class.quiesce(dev);
	struct virtio_mmio_state s = saved_state();
	cr_assert(eq(u16, s.queues[0].last_avail, s.queues[0].used_idx), "nothing in flight");
	cr_assert(eq(u64, stats().rx_dropped_quiesce, 1));
	struct virtio_device_metrics m;
	virtio_net_class.metrics(dev, &m);
	cr_assert(eq(u64, m.errors, 1));
	virtio_net_class.unquiesce(dev);
	post_rx(1, 4096);
	kick(0);
	inject(120, 24);
	wait_used(&rx, 1);
	cr_assert(eq(u32, test_used(&rx)->ring[0].id, 0), "the held buffer went back first");
	expect_frame(0, 1, 120, 24);
}

/* The driver had TSO; a new device on a new tap t0 takes over its state: the tap's offloads
 * must follow the features again, else the kernel cuts the frame up before the tap. */
Test(net, restored_device_sets_the_tap_offloads_again)
{
	uint64_t f = (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4);
	open_device("tap=t0", f, 16);
	post_rx(0, 2048);
	kick(0);
	inject(100, 25);
	wait_used(&rx, 1);
	virtio_net_class.quiesce(dev);
	struct virtio_mmio_state s = saved_state();
	virtio_net_class.destroy(dev);
	dev = NULL;
	close(wire);
	void *cfg;
	cr_assert(eq(int, virtio_net_class.parse("tap=t0", &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_net_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	virtio_net_class.free_config(cfg);
	cr_assert(eq(int, virtio_net_class.start(dev, &loop), 0), "%s", err_msg());
	link_up("t0", 1500);
	open_wire("t0");
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	for (uint16_t d = 1; d < 8; d++)
		post_rx(d, 8192);
	kick(0);
	int p = vnet_socket();
	static uint8_t pkt[sizeof(struct virtio_net_hdr) + TSO_FRAME];
	make_tso_frame((struct virtio_net_hdr *)pkt, pkt + sizeof(struct virtio_net_hdr));
	cr_assert(eq(i64, send(p, pkt, sizeof(pkt), 0), (int64_t)sizeof(pkt)), "send: %s",
		  strerror(errno));
	close(p);
	wait_used(&rx, 2);
	settle();
	cr_assert(eq(u16, test_used(&rx)->idx, 2), "one frame, whole");
	struct virtio_net_hdr_v1 h;
	memcpy(&h, gmem_ptr(&gm, RX_BUF + test_used(&rx)->ring[1].id * SLOT, HDR), HDR);
	cr_assert(eq(u8, h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4));
	cr_assert(eq(u32, test_used(&rx)->ring[1].len, HDR + TSO_FRAME));
	/* Transmit carries on too. */
	uint8_t frame[64], got[128];
	make_frame(frame, sizeof(frame), 26);
	guest_send(0, frame, sizeof(frame));
	cr_assert(eq(u16, test_used(&tx)->idx, 1));
	cr_assert(eq(i64, wire_recv(got, sizeof(got)), 64));
}
