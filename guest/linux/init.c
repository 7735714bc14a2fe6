/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ember-linux-init: the whole user space of Ember's Linux test guest.
 *
 * Runs as /init (PID 1) from an initramfs or from a root file system:
 *   1. makes sure /dev has device nodes (mounts devtmpfs when /dev/mem is
 *      missing; failure is tolerated),
 *   2. writes the byte 123 to guest physical 0xc0000000 through /dev/mem: the
 *      boot-timer device of Firecracker-compatible monitors (failure is
 *      reported and tolerated; QEMU has no such device, the write is lost),
 *   3. prints the marker line "ember-linux-init: hello" on the console,
 *   4. sync()s and reboots. With "reboot=k" on the kernel command line the
 *      reboot is the i8042 reset (0xfe to port 0x64), which the monitor treats
 *      as a clean stop; QEMU with -no-reboot exits.
 *
 * Build: cc -static -Os -o init init.c   (guest/linux/mkinitramfs.sh does it)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BOOT_TIMER_ADDR	 0xc0000000UL
#define BOOT_TIMER_MAGIC 123
#define MARKER		 "ember-linux-init: hello\n"

static int out_fd = 1;

/* Unbuffered output: one write() per line, so nothing is lost at reboot. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(out_fd, buf, (size_t)n) < 0 && out_fd != 2)
		(void)write(2, buf, (size_t)n);
}

static void setup_console(void)
{
	/* The kernel opens /dev/console as fds 0-2 when the node exists. */
	if (fcntl(1, F_GETFD) >= 0)
		return;
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		out_fd = fd;
}

static void setup_dev(void)
{
	if (access("/dev/mem", F_OK) == 0)
		return;
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0)
		say("ember-linux-init: mounting devtmpfs on /dev failed: %s\n", strerror(errno));
}

static void write_boot_timer(void)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		say("ember-linux-init: boot timer not written: open /dev/mem: %s\n",
		    strerror(errno));
		return;
	}
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)BOOT_TIMER_ADDR);
	if (p == MAP_FAILED) {
		say("ember-linux-init: boot timer not written: mmap 0x%lx: %s\n", BOOT_TIMER_ADDR,
		    strerror(errno));
		close(fd);
		return;
	}
	*(volatile uint8_t *)p = BOOT_TIMER_MAGIC;
	munmap(p, (size_t)page);
	close(fd);
}

int main(void)
{
	struct timespec ts;

	setup_console();
	setup_dev();
	write_boot_timer();

	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		say("ember-linux-init: %ld.%06ld s since kernel start\n", (long)ts.tv_sec,
		    ts.tv_nsec / 1000);
	say("%s", MARKER);

	sync();
	reboot(RB_AUTOBOOT);
	/* Only reached if reboot() failed; exiting PID 1 panics (panic=1 reboots). */
	say("ember-linux-init: reboot failed: %s\n", strerror(errno));
	return 1;
}
