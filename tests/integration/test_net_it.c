/* virtio-net end to end: the unikernel answers ARP, ping and UDP echo over a tap that the test
 * makes in its own network namespace. */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TIMEOUT_S 180.0
#define GUEST_IP  "10.0.2.15"
#define HOST_IP	  "10.0.2.1"

static void make_tap_namespace(void)
{
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("cannot make a network namespace (%s): net tests need root",
			     strerror(errno));
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0, "/dev/net/tun: %s", strerror(errno));
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	snprintf(ifr.ifr_name, IFNAMSIZ, "tap0");
	cr_assert(eq(int, ioctl(fd, TUNSETIFF, &ifr), 0), "TUNSETIFF: %s", strerror(errno));
	cr_assert(eq(int, ioctl(fd, TUNSETPERSIST, 1), 0));
	close(fd);
	cr_assert(eq(int,
		     system("ip link set lo up && ip addr add " HOST_IP "/24 dev tap0 && "
			    "ip link set tap0 up"),
		     0));
}

static uint16_t inet_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

struct net_agent {
	int pings, udps;
	char why[256];
};

static bool ping_once(int fd, struct sockaddr_in *to, uint16_t seq)
{
	struct {
		struct icmphdr h;
		char payload[32];
	} req = {.h = {.type = ICMP_ECHO}};
	req.h.un.echo.id = htons(0x4242);
	req.h.un.echo.sequence = htons(seq);
	snprintf(req.payload, sizeof(req.payload), "ember-ping-%u", seq);
	req.h.checksum = inet_checksum(&req, sizeof(req));
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)to, sizeof(*to)) < 0)
		return false;
	struct pollfd p = {fd, POLLIN, 0};
	while (poll(&p, 1, 500) > 0) {
		uint8_t buf[256];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 20 + 8)
			continue;
		size_t ihl = (size_t)(buf[0] & 0xf) * 4;
		struct icmphdr *h = (struct icmphdr *)(buf + ihl);
		if (h->type == ICMP_ECHOREPLY && ntohs(h->un.echo.sequence) == seq &&
		    memcmp(buf + ihl + 8, req.payload, sizeof(req.payload)) == 0)
			return true;
	}
	return false;
}

static void *net_host_side(void *arg)
{
	struct net_agent *a = arg;
	struct sockaddr_in guest = {.sin_family = AF_INET};
	inet_pton(AF_INET, GUEST_IP, &guest.sin_addr);
	int icmp = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	/* The guest answers ARP and ping once its driver is up: retry until then. */
	for (uint16_t seq = 1; seq < 400 && a->pings < 3; seq++)
		if (ping_once(icmp, &guest, seq))
			a->pings++;
	close(icmp);
	if (a->pings < 3) {
		snprintf(a->why, sizeof(a->why), "only %d ping replies", a->pings);
		return NULL;
	}
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	guest.sin_port = htons(7);
	for (int i = 0; i < 20; i++) {
		char msg[64], back[64];
		int n = snprintf(msg, sizeof(msg), "datagram %d from the host", i);
		sendto(udp, msg, (size_t)n, 0, (struct sockaddr *)&guest, sizeof(guest));
		struct pollfd p = {udp, POLLIN, 0};
		if (poll(&p, 1, 2000) > 0) {
			ssize_t got = recv(udp, back, sizeof(back), 0);
			if (got == n && memcmp(msg, back, (size_t)n) == 0)
				a->udps++;
		}
	}
	sendto(udp, "quit", 4, 0, (struct sockaddr *)&guest, sizeof(guest));
	close(udp);
	if (a->udps < 20)
		snprintf(a->why, sizeof(a->why), "%d of 20 UDP datagrams echoed", a->udps);
	return NULL;
}

Test(net_it, ping_and_udp_echo_through_a_tap)
{
	require_kvm();
	make_tap_namespace();
	struct net_agent a = {0};
	pthread_t th;
	pthread_create(&th, NULL, net_host_side, &a);
	const char *args[] = {"run",
			      "--kernel",
			      unikernel_path(),
			      "--net",
			      "tap=tap0,mac=aa:fc:00:00:00:01",
			      "--cmdline",
			      "check=net ip=" GUEST_IP " net_secs=120",
			      NULL};
	struct ember_run r;
	ember_exec(&r, args, TIMEOUT_S, NULL, NULL);
	pthread_join(th, NULL);
	cr_assert(eq(int, a.pings, 3), "%s\n%s", a.why, ember_run_describe(&r));
	cr_assert(eq(int, a.udps, 20), "%s\n%s", a.why, ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "CHECK net PASS mac=aa:fc:00:00:00:01"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}

Test(net_it, a_tap_that_cannot_be_opened_is_an_error_before_boot)
{
	const char *args[] = {
	    "run", "--kernel", unikernel_path(), "--net", "tap=this-name-is-far-too-long-for-a-tap",
	    NULL};
	struct ember_run r;
	ember_exec(&r, args, 20, NULL, NULL);
	cr_assert(eq(int, r.exit_code, 2), "%s", ember_run_describe(&r));
	cr_assert(eq(str, r.out, ""));
	ember_run_free(&r);
}
