/* virtio-blk through its transport registers, with a real image file and io_uring. */
#include "devices/virtio_mmio/block.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define IMG_SECTORS  256
#define IMG2_SECTORS 512
#define IMG2_BYTE(s) ((uint8_t)(((s) + 0x40) & 0xff))

static struct guest_mem gm;
static struct test_ring ring;
static struct event_loop loop;
static void *dev;
static struct virtio_mmio_dev *t;
static char img[] = "/tmp/ember-blk-XXXXXX";
/* The second image, for backing updates: twice the size, sector s filled with IMG2_BYTE(s). */
static char img2[] = "/tmp/ember-blk2-XXXXXX";

static void make_image(char *name, unsigned sectors, uint8_t add)
{
	int fd = mkstemp(name);
	cr_assert(fd >= 0);
	uint8_t buf[512];
	for (unsigned s = 0; s < sectors; s++) {
		memset(buf, (int)((s + add) & 0xff), sizeof(buf));
		cr_assert(eq(i64, write(fd, buf, 512), 512));
	}
	close(fd);
}

/* The device from SPEC, with its config freed at once, as the monitor may. */
static void open_device_spec(const char *spec)
{
	void *cfg;
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	virtio_block_class.free_config(cfg);
	cr_assert(eq(int, virtio_block_class.start(dev, &loop), 0));
	test_ring_init(&ring, &gm, 16);
	uint32_t st = mmio_driver_init(t, 1ull << VIRTIO_BLK_F_FLUSH, &ring, 1);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
}

static void open_device(const char *spec_extra)
{
	char spec[256];
	snprintf(spec, sizeof(spec), "path=%s,id=disk0%s", img, spec_extra);
	open_device_spec(spec);
}

static void setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	cr_assert(eq(int, event_loop_init(&loop), 0));
	make_image(img, IMG_SECTORS, 0);
	make_image(img2, IMG2_SECTORS, 0x40);
}

static void teardown(void)
{
	if (dev)
		virtio_block_class.destroy(dev);
	event_loop_destroy(&loop);
	gmem_destroy(&gm);
	unlink(img);
	unlink(img2);
}

TestSuite(block, .init = setup, .fini = teardown);

/* Request slot k: descriptors 3k .. 3k+2, its header, data and status at HDR, DATA and STATUS
 * + k * SLOT. */
#define HDR    0x100000ull
#define DATA   0x101000ull
#define STATUS 0x110000ull
#define SLOT   0x20000ull

static void submit(unsigned k, uint32_t type, uint64_t sector, uint32_t len, bool data_writable)
{
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr = {type, 0, sector};
	uint16_t d = (uint16_t)(3 * k);
	cr_assert(eq(int, gmem_write(&gm, HDR + k * SLOT, &hdr, sizeof(hdr)), 0));
	*(uint8_t *)gmem_ptr(&gm, STATUS + k * SLOT, 1) = 0xee;
	test_set_desc(&ring, d, HDR + k * SLOT, 16, VRING_DESC_F_NEXT, len ? d + 1 : d + 2);
	if (len)
		test_set_desc(&ring, d + 1, DATA + k * SLOT, len,
			      VRING_DESC_F_NEXT | (data_writable ? VRING_DESC_F_WRITE : 0), d + 2);
	test_set_desc(&ring, d + 2, STATUS + k * SLOT, 1, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, d);
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

/* Run the vmm loop until the used index reaches `want`. */
static void wait_used(uint16_t want)
{
	for (int i = 0; i < 100 && test_used(&ring)->idx != want; i++)
		event_loop_run_once(&loop, 50);
	cr_assert(eq(u16, test_used(&ring)->idx, want), "no completion");
}

static uint8_t status_of(unsigned k)
{
	return *(uint8_t *)gmem_ptr(&gm, STATUS + k * SLOT, 1);
}

static uint8_t *data_of(unsigned k, uint32_t len)
{
	return gmem_ptr(&gm, DATA + k * SLOT, len);
}

/* Submit one request (header, data, status) and wait for its completion. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t len, bool data_writable)
{
	uint16_t used_before = test_used(&ring)->idx;
	submit(0, type, sector, len, data_writable);
	wait_used((uint16_t)(used_before + 1));
	return status_of(0);
}

Test(block, capacity_and_id)
{
	open_device("");
	uint64_t cap = 0;
	virtio_mmio_access(t, 0x100, (uint8_t *)&cap, 8, false);
	cr_assert(eq(u64, cap, IMG_SECTORS));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(str, (char *)gmem_ptr(&gm, DATA, 6), "disk0"));
}

Test(block, read_write_flush_reach_the_file)
{
	open_device("");
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 7, 1024, true), VIRTIO_BLK_S_OK));
	uint8_t *d = gmem_ptr(&gm, DATA, 1024);
	cr_assert(eq(u8, d[0], 7));
	cr_assert(eq(u8, d[1023], 8));
	cr_assert(eq(u32, test_used(&ring)->ring[0].len, 1025), "data plus status");
	memset(d, 0xab, 1024);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 100, 1024, false), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK));
	int fd = open(img, O_RDONLY);
	uint8_t back[1024];
	cr_assert(eq(i64, pread(fd, back, sizeof(back), 100 * 512), 1024));
	close(fd);
	for (unsigned i = 0; i < sizeof(back); i++)
		cr_assert(eq(u8, back[i], 0xab));
}

Test(block, out_of_range_and_odd_sizes_fail_with_ioerr)
{
	open_device("");
	cr_assert(
	    eq(u8, request(VIRTIO_BLK_T_IN, IMG_SECTORS - 1, 1024, true), VIRTIO_BLK_S_IOERR));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, UINT64_MAX, 512, true), VIRTIO_BLK_S_IOERR));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 0, 100, true), VIRTIO_BLK_S_IOERR));
	cr_assert(eq(u8, request(99, 0, 512, true), VIRTIO_BLK_S_UNSUPP));
}

Test(block, read_only_drive_refuses_writes)
{
	open_device(",ro");
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_RO), 0));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK));
}

Test(block, malformed_chain_sets_needs_reset)
{
	open_device("");
	test_set_desc(&ring, 0, HDR, 8, 0, 0); /* header too short, no status */
	test_publish(&ring, 0);
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & 2, 0), "config interrupt");
	cr_assert(eq(u64, t->stats.needs_reset_events, 1));
	/* A reset brings it back. */
	uint32_t st = mmio_driver_init(t, 0, &ring, 1);
	cr_assert(eq(u32, st & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
}

Test(block, bad_specs_are_refused)
{
	static const struct {
		const char *spec, *why;
	} bad[] = {
	    {"id=x", "path=FILE or fd=N is required"},
	    {"ro", "path=FILE or fd=N is required"},
	    {"path=/x,colour=red", "unknown option 'colour'"},
	    {"path=/x,id=", "unknown or empty option 'id='"},
	    {"path=/x,id=123456789012345678901", "id longer than 20 bytes"},
	    {"path=/x,path=/y", "give one path=FILE or one fd=N"},
	    {"path=/x,fd=0", "give one path=FILE or one fd=N"},
	    {"fd=0,path=/x", "give one path=FILE or one fd=N"},
	    {"fd=-1", "not a file descriptor number"},
	    {"fd=3x", "not a file descriptor number"},
	    {"fd=99999", "fd 99999 is not open in this process"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct block_config c;
		cr_assert(lt(int, block_config_parse(bad[i].spec, &c), 0), "accepted '%s'",
			  bad[i].spec);
		cr_assert(ne(ptr, strstr(err_msg(), bad[i].why), NULL), "'%s': %s", bad[i].spec,
			  err_msg());
		cr_assert(eq(int, c.fd, -1), "a refused spec takes no fd");
		cr_assert(eq(ptr, c.path, NULL));
	}
	void *cfg;
	cr_assert(eq(int, virtio_block_class.parse("path=/nonexistent/disk", &cfg), 0));
	cr_assert(lt(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "drive /nonexistent/disk"), NULL), "%s", err_msg());
	dev = NULL;
	virtio_block_class.free_config(cfg);
}

Test(block, good_specs_parse)
{
	struct block_config c;
	cr_assert(eq(int, block_config_parse("path=/a/b/disk.img,ro", &c), 0), "%s", err_msg());
	cr_assert(eq(str, c.path, "/a/b/disk.img"));
	cr_assert(eq(str, c.id, "disk.img"));
	cr_assert(eq(int, c.fd, -1));
	cr_assert(c.read_only);
	free(c.path);
	free(c.id);
	int fd = open(img, O_RDWR | O_CLOEXEC);
	char spec[64], id[32];
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	cr_assert(eq(int, block_config_parse(spec, &c), 0), "%s", err_msg());
	cr_assert(eq(int, c.fd, fd));
	cr_assert(eq(ptr, c.path, NULL));
	snprintf(id, sizeof(id), "fd%d", fd);
	cr_assert(eq(str, c.id, id), "the id defaults to fdN");
	cr_assert(not(c.read_only));
	free(c.id);
	close(fd);
}

Test(block, conflicts)
{
	void *a, *b;
	cr_assert(eq(int, virtio_block_class.parse("path=/x/disk,id=d", &a), 0));
	cr_assert(eq(int, virtio_block_class.parse("path=/y/other,id=d", &b), 0));
	cr_assert(ne(ptr, strstr(virtio_block_class.conflict(a, b), "same id"), NULL));
	virtio_block_class.free_config(b);
	cr_assert(eq(int, virtio_block_class.parse("path=/x/disk,id=e", &b), 0));
	cr_assert(eq(ptr, (void *)virtio_block_class.conflict(a, b), NULL));
	virtio_block_class.free_config(b);
	virtio_block_class.free_config(a);
	struct block_config x, y;
	cr_assert(eq(int, block_config_parse("fd=0,id=x", &x), 0));
	cr_assert(eq(int, block_config_parse("fd=0,id=y", &y), 0));
	cr_assert(ne(ptr, strstr(virtio_block_class.conflict(&x, &y), "same fd"), NULL));
	free(x.id);
	free(y.id);
}

/* ---- passed descriptors ---- */

Test(block, image_passed_as_fd_outlives_its_config)
{
	int fd = open(img, O_RDWR | O_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	char spec[64];
	snprintf(spec, sizeof(spec), "fd=%d,id=disk0", fd);
	open_device_spec(spec);
	/* free_config closed the config's fd; the device works on its own dup. */
	cr_assert(eq(int, fcntl(fd, F_GETFD), -1));
	cr_assert(eq(int, errno, EBADF));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 9, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 9));
	memset(data_of(0, 512), 0x5a, 512);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 3, 512, false), VIRTIO_BLK_S_OK));
	int check = open(img, O_RDONLY | O_CLOEXEC);
	uint8_t back[512];
	cr_assert(eq(i64, pread(check, back, sizeof(back), 3 * 512), 512));
	close(check);
	cr_assert(eq(u8, back[0], 0x5a));
	cr_assert(eq(u8, back[511], 0x5a));
}

Test(block, passed_fd_must_match_the_drive)
{
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	char spec[64], name[32];
	snprintf(spec, sizeof(spec), "fd=%d,id=disk0", fd);
	snprintf(name, sizeof(name), "drive fd %d", fd);
	void *cfg;
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(lt(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0));
	dev = NULL;
	cr_assert(ne(ptr, strstr(err_msg(), name), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), "opened read-only, but the drive is writable"), NULL),
		  "%s", err_msg());
	virtio_block_class.free_config(cfg);
	cr_assert(eq(int, fcntl(fd, F_GETFD), -1), "a failed create leaves the fd to the config");
	/* The same fd is fine for a read-only drive. */
	fd = open(img, O_RDONLY | O_CLOEXEC);
	snprintf(spec, sizeof(spec), "fd=%d,id=disk0,ro", fd);
	open_device_spec(spec);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 4, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 4));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 4, 512, false), VIRTIO_BLK_S_IOERR));
	/* Not an image at all. */
	virtio_block_class.destroy(dev);
	dev = NULL;
	fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(spec, sizeof(spec), "fd=%d,ro", fd);
	snprintf(name, sizeof(name), "drive fd %d", fd);
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(lt(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0));
	dev = NULL;
	cr_assert(ne(ptr, strstr(err_msg(), name), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), "not a regular file or block device"), NULL), "%s",
		  err_msg());
	virtio_block_class.free_config(cfg);
}

/* ---- metrics ---- */

static struct virtio_device_metrics metrics(void)
{
	struct virtio_device_metrics m;
	memset(&m, 0xff, sizeof(m));
	virtio_block_class.metrics(dev, &m);
	return m;
}

Test(block, metrics_follow_requests_bytes_and_errors)
{
	open_device("");
	struct virtio_device_metrics m = metrics();
	cr_assert(eq(u64, m.requests, 0));
	cr_assert(eq(u64, m.bytes_to_guest, 0));
	cr_assert(eq(u64, m.bytes_from_guest, 0));
	cr_assert(eq(u64, m.errors, 0));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 0, 2048, true), VIRTIO_BLK_S_OK));
	m = metrics();
	cr_assert(eq(u64, m.requests, 1));
	cr_assert(eq(u64, m.bytes_to_guest, 2048));
	cr_assert(eq(u64, m.bytes_from_guest, 0));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 1, 512, false), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK));
	m = metrics();
	cr_assert(eq(u64, m.requests, 3));
	cr_assert(eq(u64, m.bytes_to_guest, 2048));
	cr_assert(eq(u64, m.bytes_from_guest, 512));
	cr_assert(eq(u64, m.errors, 0));
	/* A read past the end and an unknown type: errors, and no bytes moved. */
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, IMG_SECTORS, 512, true), VIRTIO_BLK_S_IOERR));
	cr_assert(eq(u8, request(99, 0, 512, true), VIRTIO_BLK_S_UNSUPP));
	m = metrics();
	cr_assert(eq(u64, m.requests, 5));
	cr_assert(eq(u64, m.bytes_to_guest, 2048));
	cr_assert(eq(u64, m.errors, 2));
	struct block_stats s;
	block_get_stats(dev, &s);
	cr_assert(eq(u64, s.reads, 1));
	cr_assert(eq(u64, s.writes, 1));
	cr_assert(eq(u64, s.flushes, 1));
	cr_assert(eq(u64, s.io_errors, 1));
	cr_assert(eq(u64, s.unsupported, 1));
}

/* ---- drive update ---- */

/* How many of this process's descriptors are open on `path`. */
static unsigned fds_open_on(const char *path)
{
	char want[PATH_MAX], got[PATH_MAX];
	cr_assert(ne(ptr, realpath(path, want), NULL));
	DIR *d = opendir("/proc/self/fd");
	cr_assert(ne(ptr, d, NULL));
	unsigned n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, got, sizeof(got) - 1);
		if (len < 0)
			continue;
		got[len] = 0;
		n += strcmp(got, want) == 0;
	}
	closedir(d);
	return n;
}

static uint64_t capacity(void)
{
	uint64_t cap = 0;
	virtio_mmio_access(t, 0x100, (uint8_t *)&cap, 8, false);
	return cap;
}

static bool config_interrupt(void)
{
	return mmio_r32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG;
}

Test(block, update_switches_files_between_two_reads)
{
	open_device("");
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 7, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 7));
	uint32_t gen = mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t irqs = t->stats.interrupts;
	cr_assert(not(config_interrupt()));
	int fd = open(img2, O_RDWR | O_CLOEXEC);
	cr_assert(eq(int, block_update_backing(dev, fd, img2), 0), "%s", err_msg());
	/* The caller keeps its descriptor. */
	cr_assert(ge(int, fcntl(fd, F_GETFD), 0));
	close(fd);
	cr_assert(eq(u64, capacity(), IMG2_SECTORS));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION), gen + 1));
	cr_assert(config_interrupt());
	cr_assert(eq(u64, t->stats.interrupts, irqs + 1));
	mmio_w32(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 7, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], IMG2_BYTE(7)));
	/* Sectors beyond the old capacity are there now; writes land in the new file. */
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, IMG2_SECTORS - 1, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[511], IMG2_BYTE(IMG2_SECTORS - 1)));
	memset(data_of(0, 512), 0xc3, 512);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 300, 512, false), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK));
	int check = open(img2, O_RDONLY | O_CLOEXEC);
	uint8_t back[512];
	cr_assert(eq(i64, pread(check, back, sizeof(back), 300 * 512), 512));
	close(check);
	cr_assert(eq(u8, back[0], 0xc3));
	/* The old image was closed at once: nothing was in flight on it. */
	cr_assert(eq(u32, fds_open_on(img), 0));
	struct block_stats s;
	block_get_stats(dev, &s);
	cr_assert(eq(u64, s.backing_updates, 1));
	/* Back to the first: the capacity shrinks the same way. */
	fd = open(img, O_RDWR | O_CLOEXEC);
	cr_assert(eq(int, block_update_backing(dev, fd, NULL), 0), "%s", err_msg());
	close(fd);
	cr_assert(eq(u64, capacity(), IMG_SECTORS));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION), gen + 2));
	cr_assert(config_interrupt());
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, IMG_SECTORS, 512, true), VIRTIO_BLK_S_IOERR));
}

Test(block, update_with_the_same_size_changes_no_config)
{
	open_device("");
	int fd = open(img2, O_RDWR | O_CLOEXEC);
	cr_assert(eq(int, ftruncate(fd, IMG_SECTORS * 512), 0));
	uint32_t gen = mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION);
	cr_assert(eq(int, block_update_backing(dev, fd, NULL), 0), "%s", err_msg());
	close(fd);
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION), gen));
	cr_assert(not(config_interrupt()));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 1, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], IMG2_BYTE(1)));
}

Test(block, update_lets_requests_in_flight_finish_on_the_old_file)
{
	open_device("");
	/* Two reads and a write submitted, none of their completions reaped yet. */
	memset(data_of(2, 512), 0x99, 512);
	submit(0, VIRTIO_BLK_T_IN, 5, 512, true);
	submit(1, VIRTIO_BLK_T_IN, 6, 1024, true);
	submit(2, VIRTIO_BLK_T_OUT, 20, 512, false);
	cr_assert(eq(u16, test_used(&ring)->idx, 0), "completions wait for the vmm loop");
	int fd = open(img2, O_RDWR | O_CLOEXEC);
	cr_assert(eq(int, block_update_backing(dev, fd, img2), 0), "%s", err_msg());
	close(fd);
	/* The old image stays open for its requests; a new one goes to the new image. */
	cr_assert(eq(u32, fds_open_on(img), 1));
	submit(3, VIRTIO_BLK_T_IN, 5, 512, true);
	wait_used(4);
	for (unsigned i = 0; i < 4; i++)
		cr_assert(eq(u8, status_of(i), VIRTIO_BLK_S_OK), "request %u", i);
	cr_assert(eq(u8, data_of(0, 512)[0], 5));
	cr_assert(eq(u8, data_of(1, 1024)[0], 6));
	cr_assert(eq(u8, data_of(1, 1024)[1023], 7));
	cr_assert(eq(u8, data_of(3, 512)[0], IMG2_BYTE(5)));
	/* Its last completion closed the old image. */
	cr_assert(eq(u32, fds_open_on(img), 0));
	uint8_t back[512];
	int check = open(img, O_RDONLY | O_CLOEXEC);
	cr_assert(eq(i64, pread(check, back, sizeof(back), 20 * 512), 512));
	close(check);
	cr_assert(eq(u8, back[0], 0x99), "the write went to the old image");
	check = open(img2, O_RDONLY | O_CLOEXEC);
	cr_assert(eq(i64, pread(check, back, sizeof(back), 20 * 512), 512));
	close(check);
	cr_assert(eq(u8, back[0], IMG2_BYTE(20)), "and not to the new one");
}

/* The update fails with a message containing `why`, and the drive is as it was. */
static void expect_refused(int fd, const char *what, const char *why)
{
	uint32_t gen = mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t irqs = t->stats.interrupts;
	cr_assert(lt(int, block_update_backing(dev, fd, what), 0), "accepted %s", what);
	cr_assert(ne(ptr, strstr(err_msg(), "drive disk0: new backing"), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), what), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), why), NULL), "%s", err_msg());
	cr_assert(eq(u64, capacity(), IMG_SECTORS));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION), gen));
	cr_assert(eq(u64, t->stats.interrupts, irqs));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 11, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 11), "still the old image");
	cr_assert(eq(u32, fds_open_on(img), 1));
}

Test(block, update_refuses_a_bad_fd_and_keeps_the_old_backing)
{
	open_device("");
	int fd = open(img2, O_RDWR | O_CLOEXEC);
	close(fd);
	expect_refused(fd, "a closed fd", "Bad file descriptor");
	fd = open(img2, O_RDONLY | O_CLOEXEC);
	expect_refused(fd, "a read-only fd", "opened read-only, but the drive is writable");
	close(fd);
	fd = open(img2, O_WRONLY | O_CLOEXEC);
	expect_refused(fd, "a write-only fd", "opened write-only");
	close(fd);
	fd = open(img2, O_PATH | O_CLOEXEC);
	expect_refused(fd, "an O_PATH fd", "O_PATH");
	close(fd);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	expect_refused(fd, "a directory", "not a regular file or block device");
	close(fd);
	int p[2];
	cr_assert(eq(int, pipe2(p, O_CLOEXEC), 0));
	expect_refused(p[0], "a pipe", "not a regular file or block device");
	close(p[0]);
	close(p[1]);
	struct block_stats s;
	block_get_stats(dev, &s);
	cr_assert(eq(u64, s.backing_updates, 0));
}

Test(block, read_only_drive_takes_a_read_only_update)
{
	open_device(",ro");
	int fd = open(img2, O_RDONLY | O_CLOEXEC);
	cr_assert(eq(int, block_update_backing(dev, fd, NULL), 0), "%s", err_msg());
	close(fd);
	cr_assert(eq(u64, capacity(), IMG2_SECTORS));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 2, 512, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], IMG2_BYTE(2)));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 2, 512, false), VIRTIO_BLK_S_IOERR));
}

Test(block, update_before_the_driver_is_ready_raises_no_interrupt)
{
	void *cfg;
	char spec[64];
	snprintf(spec, sizeof(spec), "path=%s,id=disk0", img);
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	virtio_block_class.free_config(cfg);
	int fd = open(img2, O_RDWR | O_CLOEXEC);
	cr_assert(eq(int, block_update_backing(dev, fd, NULL), 0), "%s", err_msg());
	close(fd);
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_CONFIG_GENERATION), 1));
	cr_assert(not(config_interrupt()));
	cr_assert(eq(u64, capacity(), IMG2_SECTORS));
}

Test(block, features_without_version_1_are_refused)
{
	open_device("");
	mmio_w32(t, VIRTIO_MMIO_STATUS, 0);
	mmio_w32(t, VIRTIO_MMIO_STATUS, 3);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_BLK_F_FLUSH);
	mmio_w32(t, VIRTIO_MMIO_STATUS, 3 | VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_VERSION), 2));
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_ID), 2));
}

/* ---- snapshots ---- */

static uint16_t last_avail(void)
{
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	return s.queues[0].last_avail;
}

Test(block, quiesce_completes_every_request_in_flight)
{
	open_device("");
	memset(data_of(2, 1024), 0x77, 1024);
	submit(0, VIRTIO_BLK_T_IN, 3, 512, true);
	submit(1, VIRTIO_BLK_T_IN, 4, 4096, true);
	submit(2, VIRTIO_BLK_T_OUT, 40, 1024, false);
	cr_assert(eq(u16, test_used(&ring)->idx, 0), "completions wait for the vmm loop");
	virtio_block_class.quiesce(dev);
	/* Pushed before quiesce returned, without the loop running. */
	cr_assert(eq(u16, test_used(&ring)->idx, 3));
	for (unsigned i = 0; i < 3; i++)
		cr_assert(eq(u8, status_of(i), VIRTIO_BLK_S_OK), "request %u", i);
	cr_assert(eq(u8, data_of(0, 512)[0], 3));
	cr_assert(eq(u8, data_of(1, 4096)[4095], 4 + 7));
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING, 0),
		  "and the driver is told");
	uint8_t back[1024];
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	cr_assert(eq(i64, pread(fd, back, sizeof(back), 40 * 512), 1024));
	close(fd);
	cr_assert(eq(u8, back[1023], 0x77));
	/* Nothing in flight: the saved state restores. */
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	cr_assert(eq(u16, s.queues[0].last_avail, s.queues[0].used_idx));
	virtio_block_class.unquiesce(dev);
}

Test(block, quiesced_drive_takes_no_requests_until_unquiesce)
{
	open_device("");
	virtio_block_class.quiesce(dev);
	*data_of(0, 1) = 0xee;
	submit(0, VIRTIO_BLK_T_IN, 9, 512, true);
	for (int i = 0; i < 5; i++)
		event_loop_run_once(&loop, 10);
	cr_assert(eq(u16, last_avail(), 0), "not even taken from the ring");
	cr_assert(eq(u16, test_used(&ring)->idx, 0));
	cr_assert(eq(u8, status_of(0), 0xee), "guest memory untouched");
	cr_assert(eq(u8, *data_of(0, 1), 0xee));
	virtio_block_class.unquiesce(dev);
	wait_used(1);
	cr_assert(eq(u8, status_of(0), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 9));
}

/* A second drive on the same image, created as at boot, takes over the first one's state. */
static void *restore_into_new_device(void)
{
	virtio_block_class.quiesce(dev);
	struct virtio_mmio_state s;
	virtio_mmio_save(t, &s);
	virtio_block_class.destroy(dev);
	void *cfg;
	char spec[128];
	snprintf(spec, sizeof(spec), "path=%s,id=disk0", img);
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	virtio_block_class.free_config(cfg);
	cr_assert(eq(int, virtio_block_class.start(dev, &loop), 0));
	cr_assert(eq(int, virtio_mmio_restore(t, &s), 0), "%s", err_msg());
	return dev;
}

Test(block, restored_drive_carries_on_with_the_same_driver)
{
	open_device("");
	for (unsigned i = 0; i < 20; i++) /* past the 16-entry ring's wrap */
		cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, i, 512, true), VIRTIO_BLK_S_OK));
	restore_into_new_device();
	cr_assert(t->active);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 77, 1024, true), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 1024)[0], 77));
	cr_assert(eq(u8, data_of(0, 1024)[1023], 78));
	cr_assert(eq(u16, test_used(&ring)->idx, 21), "the used index continues");
	cr_assert(eq(u32, test_used(&ring)->ring[20 % 16].len, 1025));
	memset(data_of(0, 512), 0x3c, 512);
	cr_assert(eq(u8, request(VIRTIO_BLK_T_OUT, 50, 512, false), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK));
	uint8_t back[512];
	int fd = open(img, O_RDONLY | O_CLOEXEC);
	cr_assert(eq(i64, pread(fd, back, sizeof(back), 50 * 512), 512));
	close(fd);
	cr_assert(eq(u8, back[0], 0x3c));
}

Test(block, request_queued_at_the_snapshot_is_served_after_restore)
{
	open_device("");
	cr_assert(eq(u8, request(VIRTIO_BLK_T_IN, 1, 512, true), VIRTIO_BLK_S_OK));
	virtio_block_class.quiesce(dev);
	submit(0, VIRTIO_BLK_T_IN, 12, 512, true); /* its kick found the drive quiesced */
	restore_into_new_device();
	wait_used(2);
	cr_assert(eq(u8, status_of(0), VIRTIO_BLK_S_OK));
	cr_assert(eq(u8, data_of(0, 512)[0], 12));
}
