/* The Linux guest (slow: three boots). The bzImage through the Linux 64-bit entry runs its
 * initramfs init where the host can run Linux user space; the vmlinux through its ELF entry
 * reaches `Run /init`; both with 2 vCPUs brought up. Then Linux's own drivers on all three
 * virtio devices: ext4 root on virtio-blk, IP autoconfig and netconsole on virtio-net, and the
 * vsock device. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINUX_TIMEOUT_S 900.0

/* kvm_pvm hosts emulate guest CPL0 and cannot run Linux user space (ARCHITECTURE.md). */
static bool host_is_kvm_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0 && access("/dev/kvm", F_OK) == 0;
}

static const char *base_cmdline(void)
{
	if (host_is_kvm_pvm())
		return "noxsave clearcpuid=cx16,popcnt,smap ember.skip_int3_selftest";
	return "";
}

static void boot_linux(struct ember_run *r, const char *kernel, const char *protocol,
		       bool stop_at_init)
{
	const char *initrd = linux_image("initramfs.cpio.gz");
	cr_assert(initrd != NULL, "initramfs.cpio.gz missing from EMBER_LINUX_DIR");
	const char *args[] = {"run",	 "--kernel",  kernel,	      "--initrd", initrd,
			      "--vcpus", "2",	      "--mem-mib",    "256",	  "--boot-protocol",
			      protocol,	 "--cmdline", base_cmdline(), NULL};
	struct ember_trigger t = {"Run /init", SIGTERM};
	ember_exec(r, args, LINUX_TIMEOUT_S, NULL, stop_at_init ? &t : NULL);
}

static void assert_booted_to_init(const struct ember_run *r)
{
	cr_assert(not(r->timed_out), "%s", ember_run_describe(r));
	cr_assert(ne(ptr, strstr(r->out, "Brought up 1 node, 2 CPUs"), NULL), "SMP:\n%s",
		  ember_run_describe(r));
	cr_assert(ne(ptr, strstr(r->out, "Run /init"), NULL), "%s", ember_run_describe(r));
}

Test(linux_guest, bzimage_runs_init_through_the_64bit_entry, .timeout = LINUX_TIMEOUT_S + 60)
{
	require_kvm();
	const char *bz = linux_image("bzImage");
	if (!bz)
		cr_skip_test("Linux guest not built (guest/linux/build.sh; EMBER_LINUX_DIR)");
	struct ember_run r;
	bool pvm = host_is_kvm_pvm();
	boot_linux(&r, bz, "linux", pvm);
	assert_booted_to_init(&r);
	if (pvm) {
		fprintf(stderr, "SKIPPED (part): kvm_pvm host: Linux user space cannot run here, "
				"so the initramfs marker and exit code 0 are not checked\n");
		cr_assert(eq(int, r.exit_code, 128 + SIGTERM), "%s", ember_run_describe(&r));
	} else {
		cr_assert(ne(ptr, strstr(r.out, "ember-linux-init: hello"), NULL), "%s",
			  ember_run_describe(&r));
		cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	}
	ember_run_free(&r);
}

Test(linux_guest, vmlinux_reaches_init_through_the_elf_entry, .timeout = LINUX_TIMEOUT_S + 60)
{
	require_kvm();
	const char *vmlinux = linux_image("vmlinux");
	if (!vmlinux)
		cr_skip_test("Linux guest not built (guest/linux/build.sh; EMBER_LINUX_DIR)");
	struct ember_run r;
	boot_linux(&r, vmlinux, "linux", true);
	assert_booted_to_init(&r);
	cr_assert(eq(int, r.exit_code, 128 + SIGTERM), "%s", ember_run_describe(&r));
	ember_run_free(&r);
}

struct netconsole_sink {
	int fd;
	volatile bool stop;
	int datagrams;
	char first[256];
};

static void *receive_netconsole(void *arg)
{
	struct netconsole_sink *s = arg;
	while (!s->stop) {
		struct pollfd p = {s->fd, POLLIN, 0};
		if (poll(&p, 1, 200) <= 0)
			continue;
		char buf[1024];
		ssize_t n = recv(s->fd, buf, sizeof(buf) - 1, 0);
		if (n > 0 && s->datagrams++ == 0) {
			size_t keep =
			    (size_t)n < sizeof(s->first) - 1 ? (size_t)n : sizeof(s->first) - 1;
			memcpy(s->first, buf, keep);
			s->first[keep] = 0;
		}
	}
	return NULL;
}

Test(linux_guest, linux_drivers_use_block_net_and_vsock, .timeout = LINUX_TIMEOUT_S + 60)
{
	require_kvm();
	const char *bz = linux_image("bzImage");
	const char *rootfs = linux_image("rootfs.ext4");
	if (!bz || !rootfs)
		cr_skip_test("Linux guest not built (guest/linux/build.sh; EMBER_LINUX_DIR)");
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("cannot make a network namespace: %s", strerror(errno));
	int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	cr_assert(tun >= 0);
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	snprintf(ifr.ifr_name, IFNAMSIZ, "tap0");
	cr_assert(eq(int, ioctl(tun, TUNSETIFF, &ifr), 0));
	cr_assert(eq(int, ioctl(tun, TUNSETPERSIST, 1), 0));
	close(tun);
	cr_assert(eq(int,
		     system("ip link set lo up && ip addr add 10.0.2.1/24 dev tap0 && "
			    "ip link set tap0 up"),
		     0));
	struct netconsole_sink sink = {.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6666)};
	inet_pton(AF_INET, "10.0.2.1", &a.sin_addr);
	cr_assert(eq(int, bind(sink.fd, (struct sockaddr *)&a, sizeof(a)), 0));
	pthread_t th;
	pthread_create(&th, NULL, receive_netconsole, &sink);

	/* A private copy of the root filesystem: the guest mounts it read-write. */
	char disk[] = "/tmp/ember-rootfs-XXXXXX";
	int out = mkstemp(disk);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp %s %s", rootfs, disk);
	cr_assert(eq(int, system(cmd), 0));
	close(out);
	char drive[128], vsock[128], cmdline[512];
	snprintf(drive, sizeof(drive), "path=%s,id=rootfs", disk);
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s.vsock", disk);
	bool pvm = host_is_kvm_pvm();
	snprintf(cmdline, sizeof(cmdline),
		 "%s root=/dev/vda rw init=/init ip=10.0.2.15::10.0.2.1:255.255.255.0::eth0:off "
		 "netconsole=6665@10.0.2.15/eth0,6666@10.0.2.1/",
		 base_cmdline());
	const char *args[] = {"run", "--kernel",  bz,	   "--vcpus",	  "2",	      "--mem-mib",
			      "256", "--drive",	  drive,   "--net",	  "tap=tap0", "--vsock",
			      vsock, "--cmdline", cmdline, "--log-level", "info",     NULL};
	struct ember_trigger t = {"Run /init", SIGTERM};
	struct ember_run r;
	ember_exec(&r, args, LINUX_TIMEOUT_S, NULL, pvm ? &t : NULL);
	/* netconsole may still be sending the last lines. */
	usleep(500000);
	sink.stop = true;
	pthread_join(th, NULL);
	close(sink.fd);
	unlink(disk);

	cr_assert(not(r.timed_out), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "[vda]"), NULL), "virtio-blk probe:\n%s",
		  ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "VFS: Mounted root (ext4 filesystem)"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "IP-Config: Complete"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "Run /init"), NULL), "%s", ember_run_describe(&r));
	cr_assert(gt(int, sink.datagrams, 0), "no netconsole datagram reached the host:\n%s",
		  ember_run_describe(&r));
	/* Devices are numbered in command-line order: window and IRQ follow. */
	const char *ready[] = {"virtio-blk at 0xc0001000 (irq 5): driver ready",
			       "virtio-net at 0xc0002000 (irq 6): driver ready",
			       "virtio-vsock at 0xc0003000 (irq 7): driver ready"};
	for (unsigned i = 0; i < 3; i++)
		cr_assert(ne(ptr, strstr(r.err, ready[i]), NULL), "no '%s':\n%s", ready[i],
			  ember_run_describe(&r));
	if (pvm) {
		fprintf(stderr, "SKIPPED (part): kvm_pvm host: Linux user space cannot run here\n");
	} else {
		cr_assert(ne(ptr, strstr(r.out, "ember-linux-init: hello"), NULL), "%s",
			  ember_run_describe(&r));
		cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	}
	ember_run_free(&r);
}
