/* The net rows' host side: a tap in a fresh network namespace, and UDP datagrams sent to the
 * guest's echo port with a window of outstanding datagrams, counting the echoes. */
#include "devices.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ namespace and tap */

static int set_addr(int s, const char *ifname, unsigned long req, const char *ip)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	return ioctl(s, req, &ifr);
}

static int link_up(int s, const char *ifname)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* A persistent tap (IFF_VNET_HDR, as both monitors open it), with the host's address, the
 * guest's address as a permanent neighbour (no ARP during a run), and loopback up. */
static int make_tap(const char *tap, const char *host_ip, const char *guest_ip,
		    const uint8_t mac[6], char *why, size_t why_size)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_size, "/dev/net/tun: %s", strerror(errno));
		return -1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0) {
		snprintf(why, why_size, "tap %s: %s", tap, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(why, why_size, "socket: %s", strerror(errno));
		return -1;
	}
	const char *step = "lo up";
	if (link_up(s, "lo") < 0)
		goto fail;
	/* No IPv6 on the tap: the guest sees only the benchmark's frames (no router
	 * solicitations, no MLD reports). Absent when IPv6 is off anyway. */
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", tap);
	int v6 = open(path, O_WRONLY | O_CLOEXEC);
	if (v6 >= 0) {
		if (write(v6, "1", 1) != 1) {
			/* not fatal: a few stray frames the guest ignores */
		}
		close(v6);
	}
	step = "address";
	if (set_addr(s, tap, SIOCSIFADDR, host_ip) < 0)
		goto fail;
	step = "netmask";
	if (set_addr(s, tap, SIOCSIFNETMASK, "255.255.255.0") < 0)
		goto fail;
	step = "link up";
	if (link_up(s, tap) < 0)
		goto fail;
	struct arpreq ar;
	memset(&ar, 0, sizeof(ar));
	struct sockaddr_in *pa = (struct sockaddr_in *)&ar.arp_pa;
	pa->sin_family = AF_INET;
	inet_pton(AF_INET, guest_ip, &pa->sin_addr);
	ar.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(ar.arp_ha.sa_data, mac, 6);
	ar.arp_flags = ATF_PERM | ATF_COM;
	snprintf(ar.arp_dev, sizeof(ar.arp_dev), "%s", tap);
	step = "static neighbour";
	if (ioctl(s, SIOCSARP, &ar) < 0)
		goto fail;
	close(s);
	return 0;
fail:
	snprintf(why, why_size, "tap %s: %s: %s", tap, step, strerror(errno));
	close(s);
	return -1;
}

int netns_tap_enter(struct netns_tap *n, const char *tap, const char *host_ip, const char *guest_ip,
		    const uint8_t guest_mac[6], char *why, size_t why_size)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->tap, sizeof(n->tap), "%s", tap);
	n->orig_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (n->orig_ns < 0) {
		snprintf(why, why_size, "/proc/thread-self/ns/net: %s", strerror(errno));
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(why, why_size, "unshare(CLONE_NEWNET): %s", strerror(errno));
		close(n->orig_ns);
		n->orig_ns = -1;
		return -1;
	}
	n->entered = true;
	if (make_tap(tap, host_ip, guest_ip, guest_mac, why, why_size) < 0) {
		netns_tap_leave(n);
		return -1;
	}
	return 0;
}

void netns_tap_leave(struct netns_tap *n)
{
	if (n->entered && setns(n->orig_ns, CLONE_NEWNET) < 0) {
		/* Staying in the run's namespace would break the next one: give up loudly. */
		fprintf(stderr, "devices: setns back to the original network namespace: %s\n",
			strerror(errno));
		exit(1);
	}
	n->entered = false;
	if (n->orig_ns >= 0)
		close(n->orig_ns);
	n->orig_ns = -1;
	/* The namespace (and its tap) goes away with the last process and socket in it. */
}

bool netns_tap_possible(char *why, size_t why_size)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, why_size, "pipe: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		close(p[0]), close(p[1]);
		return false;
	}
	if (pid == 0) {
		close(p[0]);
		char msg[200] = "";
		static const uint8_t mac[6] = {0xaa, 0xfc, 0, 0, 0, 1};
		if (unshare(CLONE_NEWNET) < 0)
			snprintf(msg, sizeof(msg),
				 "cannot make a network namespace (%s): the net rows need root",
				 strerror(errno));
		else
			make_tap("probe0", "10.0.2.1", "10.0.2.15", mac, msg, sizeof(msg));
		if (msg[0] && write(p[1], msg, strlen(msg)) < 0)
			_exit(2);
		_exit(msg[0] ? 1 : 0);
	}
	close(p[1]);
	ssize_t n = read(p[0], why, why_size - 1);
	why[n > 0 ? n : 0] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	if (!why[0])
		snprintf(why, why_size, "namespace probe failed");
	return false;
}

/* ------------------------------------------------------------------- UDP echo load */

#define BATCH	  64
#define BUF_BYTES 2048
#define TAG	  0x454d424552444556ull /* "EMBERDEV" */

struct load {
	const struct net_params *p;
	const struct abort_check *a;
	struct net_result *r;
	int fd;
	uint64_t next_seq, base_seq; /* echoes of seq < base_seq were given up as lost */
	uint64_t outstanding;
	double last_progress;
	bool measuring;
	struct mmsghdr smsg[BATCH], rmsg[BATCH];
	struct iovec siov[BATCH], riov[BATCH];
	uint8_t sbuf[BATCH][BUF_BYTES], rbuf[BATCH][BUF_BYTES];
};

static void fill(struct load *l, int i, uint64_t seq)
{
	uint64_t w[2] = {seq, TAG};
	memcpy(l->sbuf[i], w, sizeof(w));
	l->siov[i].iov_len = l->p->payload;
}

/* Send up to n datagrams; returns how many went. */
static int send_some(struct load *l, int n)
{
	if (n > BATCH)
		n = BATCH;
	for (int i = 0; i < n; i++)
		fill(l, i, l->next_seq + (uint64_t)i);
	int s = sendmmsg(l->fd, l->smsg, (unsigned)n, MSG_DONTWAIT);
	if (s <= 0) {
		if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			l->r->send_errors += l->measuring;
		return 0;
	}
	l->next_seq += (uint64_t)s;
	l->outstanding += (uint64_t)s;
	l->r->total_sent += (uint64_t)s;
	l->r->bytes_sent += (uint64_t)s * l->p->payload;
	if (l->measuring)
		l->r->sent += (uint64_t)s;
	return s;
}

/* Take every echo waiting; returns how many. */
static int recv_some(struct load *l)
{
	int total = 0;
	for (;;) {
		for (int i = 0; i < BATCH; i++)
			l->rmsg[i].msg_hdr.msg_flags = 0;
		int n = recvmmsg(l->fd, l->rmsg, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return total;
		for (int i = 0; i < n; i++) {
			size_t len = l->rmsg[i].msg_len;
			if (len == 4 && memcmp(l->rbuf[i], "quit", 4) == 0) {
				l->r->quit_echoed = true;
				continue;
			}
			uint64_t w[2];
			if (len != l->p->payload || len < sizeof(w)) {
				l->r->bad++;
				continue;
			}
			memcpy(w, l->rbuf[i], sizeof(w));
			if (w[1] != TAG || w[0] >= l->next_seq) {
				l->r->bad++;
				continue;
			}
			l->r->total_echoed++;
			l->r->bytes_echoed += len;
			if (l->measuring)
				l->r->echoed++;
			if (w[0] >= l->base_seq && l->outstanding) {
				l->outstanding--;
			} else if (l->measuring) {
				l->r->late++;
			}
		}
		total += n;
		if (n < BATCH)
			return total;
	}
}

/* Keep `window` datagrams out for dur_ms. */
static bool run_phase(struct load *l, double dur_ms, bool measuring)
{
	l->measuring = measuring;
	double now = bench_now_ms(), end = now + dur_ms;
	l->last_progress = now;
	while ((now = bench_now_ms()) < end) {
		if (should_abort(l->a)) {
			snprintf(l->r->why, sizeof(l->r->why),
				 "the monitor exited (or we were interrupted) during the load");
			return false;
		}
		while (l->outstanding < l->p->window)
			if (!send_some(l, (int)(l->p->window - l->outstanding)))
				break;
		if (recv_some(l) > 0) {
			l->last_progress = bench_now_ms();
			continue;
		}
		now = bench_now_ms();
		if (l->outstanding && now - l->last_progress >= l->p->loss_ms) {
			if (measuring) {
				l->r->lost += l->outstanding;
				l->r->loss_events++;
				if (l->r->nloss_at < NET_LOSS_TIMES)
					l->r->loss_at_s[l->r->nloss_at++] =
					    (now - (end - dur_ms)) / 1e3;
			}
			l->outstanding = 0;
			l->base_seq = l->next_seq;
			l->last_progress = now;
			continue;
		}
		double wait = end - now;
		double to_loss = l->p->loss_ms - (now - l->last_progress);
		if (wait > to_loss)
			wait = to_loss;
		if (wait > 50)
			wait = 50;
		struct pollfd pf = {.fd = l->fd, .events = POLLIN};
		poll(&pf, 1, wait < 1 ? 1 : (int)wait);
	}
	l->measuring = false;
	return true;
}

void net_load(const struct net_params *p, const struct abort_check *a, struct net_result *r)
{
	memset(r, 0, sizeof(*r));
	struct load *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		return;
	}
	l->p = p;
	l->a = a;
	l->r = r;
	for (int i = 0; i < BATCH; i++) {
		memset(l->sbuf[i], 0x5a, BUF_BYTES);
		l->siov[i] = (struct iovec){l->sbuf[i], p->payload};
		l->smsg[i].msg_hdr = (struct msghdr){.msg_iov = &l->siov[i], .msg_iovlen = 1};
		l->riov[i] = (struct iovec){l->rbuf[i], BUF_BYTES};
		l->rmsg[i].msg_hdr = (struct msghdr){.msg_iov = &l->riov[i], .msg_iovlen = 1};
	}
	l->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0) {
		snprintf(r->why, sizeof(r->why), "socket: %s", strerror(errno));
		free(l);
		return;
	}
	int big = 4 << 20;
	setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
	inet_pton(AF_INET, p->guest_ip, &to.sin_addr);
	if (connect(l->fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		snprintf(r->why, sizeof(r->why), "connect %s:%u: %s", p->guest_ip, p->port,
			 strerror(errno));
		close(l->fd);
		free(l);
		return;
	}

	/* Ready: one datagram every 20 ms until one comes back. */
	double t0 = bench_now_ms(), ready_deadline = t0 + p->ready_timeout_s * 1e3;
	bool ready = false;
	while (!ready) {
		if (should_abort(a)) {
			snprintf(r->why, sizeof(r->why),
				 "the monitor exited before the guest echoed");
			goto out;
		}
		if (bench_now_ms() > ready_deadline) {
			snprintf(r->why, sizeof(r->why), "no echo within %.0f s",
				 p->ready_timeout_s);
			goto out;
		}
		l->outstanding = 0;
		send_some(l, 1);
		struct pollfd pf = {.fd = l->fd, .events = POLLIN};
		poll(&pf, 1, 20);
		ready = recv_some(l) > 0 && r->total_echoed > 0;
	}
	r->ready_ms = bench_now_ms() - t0;
	l->outstanding = 0;
	l->base_seq = l->next_seq;

	if (p->measure) {
		if (p->warmup_s > 0 && !run_phase(l, p->warmup_s * 1e3, false))
			goto out;
		double m0 = bench_now_ms();
		if (!run_phase(l, p->measure_s * 1e3, true))
			goto out;
		r->secs = (bench_now_ms() - m0) / 1e3;
		/* Drain (not counted as measured): what is still out either comes back or is lost.
		 */
		double drain_end = bench_now_ms() + p->loss_ms;
		while (l->outstanding && bench_now_ms() < drain_end) {
			struct pollfd pf = {.fd = l->fd, .events = POLLIN};
			poll(&pf, 1, 5);
			recv_some(l);
		}
		r->echoes_per_s = r->secs > 0 ? (double)r->echoed / r->secs : 0;
		r->echo_mbs =
		    r->secs > 0 ? (double)r->echoed * (double)p->payload / r->secs / 1e6 : 0;
	}
	r->ok = true;
out:
	/* "quit" ends the guest's check; repeat it until the monitor is gone (at most 10 s). */
	if (!bench_interrupted) {
		double quit_end = bench_now_ms() + 10e3, next = 0;
		while (!should_abort(a) && bench_now_ms() < quit_end) {
			if (bench_now_ms() >= next) {
				if (send(l->fd, "quit", 4, MSG_DONTWAIT) == 4) {
					r->total_sent++;
					r->bytes_sent += 4;
				}
				next = bench_now_ms() + 100;
			}
			struct pollfd pf = {.fd = l->fd, .events = POLLIN};
			poll(&pf, 1, 10);
			recv_some(l);
		}
	}
	close(l->fd);
	free(l);
}
