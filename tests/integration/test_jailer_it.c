/* ember-jailer with the real monitor and KVM: a jailed, static ember boots the test unikernel,
 * which drives a disk, a tap in the jail's network namespace and a vsock whose sockets live in
 * the jail; and a guest that touches more memory than the jail's memory.max is stopped while
 * the host carries on. The jails' own properties (files, pid 1, credentials, fds, rlimits,
 * cgroup v1) are tested without KVM in tests/unit/test_jailer_jail.c. */
#include "tests/integration/harness.h"
#include "tests/unit/test_jailer_util.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define UID	  10042
#define GID	  10043
#define TIMEOUT_S 300.0
#define GUEST_IP  "10.0.2.15"
#define HOST_IP	  "10.0.2.1"
#define PORT	  1234

/* What every test here needs: KVM, root, a static monitor, a chroot base. */
static const char *setup(char **base, const char *name)
{
	require_kvm();
	if (geteuid() != 0)
		cr_skip_test("ember-jailer needs root");
	const char *ember = static_ember_bin();
	if (!ember)
		cr_skip_test("no statically linked ember: build without sanitizers, or configure "
			     "-Dstatic_ember=PATH (tests/run does)");
	*base = jail_test_base(name);
	return ember;
}

/* Make <base>/ember/<id>/root with the unikernel in it, as a platform prepares a jail. */
static char *prepare_root(const char *base, const char *id)
{
	char *root;
	cr_assert(asprintf(&root, "%s/ember/%s/root", base, id) > 0);
	char *cmd;
	cr_assert(asprintf(&cmd, "mkdir -p '%s' && cp '%s' '%s/unikernel.elf'", root,
			   unikernel_path(), root) > 0);
	cr_assert(eq(int, system(cmd), 0), "%s", cmd);
	free(cmd);
	return root;
}

static char *file_in(const char *root, const char *name)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", root, name) > 0);
	return p;
}

/* ---- the host's side of the devices ---- */

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

struct net_peer {
	const char *netns;
	int pings, udps;
	char why[256];
};

static bool ping_once(int fd, const struct sockaddr_in *to, uint16_t seq)
{
	struct {
		struct icmphdr h;
		char payload[32];
	} req = {.h = {.type = ICMP_ECHO}};
	req.h.un.echo.id = htons(0x4a4a);
	req.h.un.echo.sequence = htons(seq);
	snprintf(req.payload, sizeof(req.payload), "jailed-ping-%u", seq);
	req.h.checksum = inet_checksum(&req, sizeof(req));
	if (sendto(fd, &req, sizeof(req), 0, (const struct sockaddr *)to, sizeof(*to)) < 0)
		return false;
	struct pollfd p = {fd, POLLIN, 0};
	while (poll(&p, 1, 500) > 0) {
		uint8_t buf[256];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 28)
			continue;
		size_t ihl = (size_t)(buf[0] & 0xf) * 4;
		struct icmphdr *h = (struct icmphdr *)(buf + ihl);
		if (h->type == ICMP_ECHOREPLY && ntohs(h->un.echo.sequence) == seq &&
		    memcmp(buf + ihl + 8, req.payload, sizeof(req.payload)) == 0)
			return true;
	}
	return false;
}

/* In the jail's network namespace: ping the guest, echo UDP through it, then "quit". */
static void *net_side(void *arg)
{
	struct net_peer *n = arg;
	int ns = open(n->netns, O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
		snprintf(n->why, sizeof(n->why), "setns %s: %s", n->netns, strerror(errno));
		return NULL;
	}
	close(ns);
	struct sockaddr_in guest = {.sin_family = AF_INET};
	inet_pton(AF_INET, GUEST_IP, &guest.sin_addr);
	int icmp = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	/* The guest answers once its earlier checks are done and its driver is up. */
	for (uint16_t seq = 1; seq < 600 && n->pings < 3; seq++)
		if (ping_once(icmp, &guest, seq))
			n->pings++;
	close(icmp);
	if (n->pings < 3) {
		snprintf(n->why, sizeof(n->why), "only %d ping replies", n->pings);
		return NULL;
	}
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	guest.sin_port = htons(7);
	for (int i = 0; i < 20; i++) {
		char msg[64], back[64];
		int len = snprintf(msg, sizeof(msg), "datagram %d into the jail", i);
		sendto(udp, msg, (size_t)len, 0, (struct sockaddr *)&guest, sizeof(guest));
		struct pollfd p = {udp, POLLIN, 0};
		if (poll(&p, 1, 2000) > 0) {
			ssize_t got = recv(udp, back, sizeof(back), 0);
			if (got == len && memcmp(msg, back, (size_t)len) == 0)
				n->udps++;
		}
	}
	sendto(udp, "quit", 4, 0, (struct sockaddr *)&guest, sizeof(guest));
	close(udp);
	return NULL;
}

struct vsock_peer {
	int lfd;
	size_t echoed;
};

/* The guest's connection to host port PORT arrives on <root>/run/v.sock_PORT: echo it. */
static void *vsock_side(void *arg)
{
	struct vsock_peer *v = arg;
	int fd = accept(v->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	unsigned char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(fd, buf + off, (size_t)(r - off));
			if (w <= 0)
				goto out;
			off += w;
		}
		v->echoed += (size_t)r;
	}
out:
	close(fd);
	return NULL;
}

/* Listen on dir/name; bound from inside dir, as jail paths can outgrow sun_path. */
static int listen_in(const char *dir, const char *name)
{
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(ge(int, cwd, 0));
	cr_assert(eq(int, chdir(dir), 0), "chdir %s: %s", dir, strerror(errno));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", name);
	cr_assert(eq(int, bind(fd, (struct sockaddr *)&a, sizeof(a)), 0), "bind: %s",
		  strerror(errno));
	/* The monitor connects as the jail's user. */
	cr_assert(eq(int, chown(name, UID, GID), 0));
	cr_assert(eq(int, listen(fd, 4), 0));
	cr_assert(eq(int, fchdir(cwd), 0));
	close(cwd);
	return fd;
}

static void write_pattern(const char *path, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(ge(int, fd, 0));
	char chunk[4096];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)(i * 13 + 7);
	for (size_t done = 0; done < len; done += sizeof(chunk))
		cr_assert(eq(i64, write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk)));
	close(fd);
	cr_assert(eq(int, chown(path, UID, GID), 0));
}

/* The bytes the blk check wrote: byte i of [64 sectors, 128 sectors) is i * 31 + seed. */
static bool has_blk_pattern(const char *path, unsigned seed)
{
	unsigned char buf[64 * 512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && pread(fd, buf, sizeof(buf), 64 * 512) == (ssize_t)sizeof(buf);
	for (size_t i = 0; ok && i < sizeof(buf); i++)
		ok = buf[i] == (unsigned char)(i * 31 + seed);
	if (fd >= 0)
		close(fd);
	return ok;
}

static void netns_cmd(const char *fmt, const char *ns)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), fmt, ns, ns, ns, ns);
	cr_assert(eq(int, system(cmd), 0), "%s", cmd);
}

Test(jailer_it, a_jailed_monitor_boots_the_unikernel_with_disk_net_and_vsock)
{
	char *base;
	const char *ember = setup(&base, "devices");
	const char *id = "devices";
	char *root = prepare_root(base, id);
	char *disk = file_in(root, "disk.img");
	write_pattern(disk, 1 << 20);
	char *run = file_in(root, "run");
	cr_assert(eq(int, mkdir(run, 0700), 0));
	cr_assert(eq(int, chown(run, UID, GID), 0));

	/* The tap lives in a network namespace of its own, made for this jail, and belongs to
	 * the jail's user: the monitor has no CAP_NET_ADMIN to make or take one. */
	char ns[64], ns_path[128];
	snprintf(ns, sizeof(ns), "ember-jail-it-%d", (int)getpid());
	snprintf(ns_path, sizeof(ns_path), "/var/run/netns/%s", ns);
	netns_cmd("ip netns add %s && ip -n %s link set lo up", ns);
	char tap_cmd[256];
	snprintf(tap_cmd, sizeof(tap_cmd),
		 "ip -n %%s tuntap add tap0 mode tap user %d group %d && "
		 "ip -n %%s addr add " HOST_IP "/24 dev tap0 && ip -n %%s link set tap0 up",
		 UID, GID);
	netns_cmd(tap_cmd, ns);

	struct vsock_peer v = {.lfd = listen_in(run, "v.sock_1234")};
	struct net_peer n = {.netns = ns_path};
	pthread_t vt, nt;
	pthread_create(&vt, NULL, vsock_side, &v);
	pthread_create(&nt, NULL, net_side, &n);

	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%d", UID);
	snprintf(gid, sizeof(gid), "%d", GID);
	const char *args[] = {"--id",
			      id,
			      "--exec-file",
			      ember,
			      "--uid",
			      uid,
			      "--gid",
			      gid,
			      "--chroot-base",
			      base,
			      "--netns",
			      ns_path,
			      "--cgroup",
			      "pids.max=64",
			      "--cgroup",
			      "cpu.weight=100",
			      "--",
			      "run",
			      "--kernel",
			      "/unikernel.elf",
			      "--mem-mib",
			      "128",
			      "--drive",
			      "path=/disk.img,id=jailed-disk",
			      "--net",
			      "tap=tap0,mac=aa:fc:00:00:00:02",
			      "--vsock",
			      "cid=3,uds=/run/v.sock",
			      "--cmdline",
			      "check=blk,vsock_client,net blk_seed=9 vsock_port=1234 "
			      "vsock_bytes=1048576 vsock_secs=120 ip=" GUEST_IP " net_secs=120",
			      NULL};
	struct jrun r;
	jrun(&r, args, TIMEOUT_S);
	shutdown(v.lfd, SHUT_RDWR);
	close(v.lfd);
	pthread_join(vt, NULL);
	pthread_join(nt, NULL);
	netns_cmd("ip netns delete %s", ns);

	cr_assert(ne(ptr, strstr(r.out, "CHECK blk PASS"), NULL), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "id=\"jailed-disk\""), NULL), "%s", jrun_describe(&r));
	cr_assert(has_blk_pattern(disk, 9), "the guest's writes reached the jail's disk image");
	cr_assert(ne(ptr, strstr(r.out, "CHECK vsock_client PASS bytes=1048576"), NULL), "%s",
		  jrun_describe(&r));
	cr_assert(eq(u64, v.echoed, 1048576));
	cr_assert(eq(int, n.pings, 3), "%s\n%s", n.why, jrun_describe(&r));
	cr_assert(eq(int, n.udps, 20), "%s\n%s", n.why, jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "CHECK net PASS mac=aa:fc:00:00:00:02"), NULL), "%s",
		  jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "ember-unikernel: done"), NULL), "%s", jrun_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(int, access(file_in(run, "v.sock"), F_OK), -1),
		  "the monitor removed its socket, inside the jail");
	jrun_free(&r);
	remove_tree(base);
}

/* Where the jailer makes a jail's memory cgroup by default: <own cgroup>/ember/<id>, in the
 * v1 memory hierarchy or the v2 one. */
static char *jail_memory_cgroup(const char *id)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	cr_assert(f != NULL);
	char line[512], *dir = NULL;
	while (!dir && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *list = strchr(line, ':') + 1, *path = strchr(list, ':');
		*path++ = 0;
		if (strcmp(path, "/") == 0)
			path = "";
		if (*list && strstr(list, "memory"))
			cr_assert(asprintf(&dir, "/sys/fs/cgroup/%s%s/ember/%s", list, path, id) >
				  0);
		else if (!*list && access("/sys/fs/cgroup/memory", F_OK) != 0)
			cr_assert(asprintf(&dir, "/sys/fs/cgroup%s/ember/%s", path, id) > 0);
	}
	fclose(f);
	cr_assert(dir != NULL, "no memory cgroup for this process");
	return dir;
}

Test(jailer_it, a_guest_over_memory_max_is_stopped_and_the_host_carries_on)
{
	char *base;
	const char *ember = setup(&base, "oom");
	const char *id = "oom";
	prepare_root(base, id);
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%d", UID);
	snprintf(gid, sizeof(gid), "%d", GID);
	/* 32 MiB for the monitor and its guest; the guest touches 96 MiB of its 128. (Where the
	 * host has swap, the guest would be swapped out rather than stopped; KVM hosts for these
	 * tests, like the L1 VM, have none.) */
	const char *args[] = {"--id",
			      id,
			      "--exec-file",
			      ember,
			      "--uid",
			      uid,
			      "--gid",
			      gid,
			      "--chroot-base",
			      base,
			      "--cgroup",
			      "memory.max=33554432",
			      "--",
			      "run",
			      "--kernel",
			      "/unikernel.elf",
			      "--mem-mib",
			      "128",
			      "--cmdline",
			      "check=mem mem_mib=96",
			      NULL};
	struct jrun r;
	jrun(&r, args, TIMEOUT_S);
	cr_assert(eq(ptr, strstr(r.out, "CHECK mem PASS"), NULL), "the guest got its memory:\n%s",
		  jrun_describe(&r));
	cr_assert(eq(int, r.exit_code, 128 + 9), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "killed by the OOM killer of its memory cgroup"), NULL),
		  "%s", jrun_describe(&r));
	jrun_free(&r);

	/* The host is unharmed: the same jail, same limit, runs a guest that fits. */
	const char *fits[] = {"--id",
			      id,
			      "--exec-file",
			      ember,
			      "--uid",
			      uid,
			      "--gid",
			      gid,
			      "--chroot-base",
			      base,
			      "--cgroup",
			      "memory.max=33554432",
			      "--",
			      "run",
			      "--kernel",
			      "/unikernel.elf",
			      "--mem-mib",
			      "128",
			      "--cmdline",
			      "check=hello,mem mem_mib=8",
			      NULL};
	jrun(&r, fits, TIMEOUT_S);
	cr_assert(ne(ptr, strstr(r.out, "CHECK mem PASS mib=8"), NULL), "%s", jrun_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	jrun_free(&r);
	/* The jail's cgroup went with the monitor. */
	char *cgroup = jail_memory_cgroup(id);
	cr_assert(eq(int, access(cgroup, F_OK), -1), "%s is left", cgroup);
	remove_tree(base);
}
