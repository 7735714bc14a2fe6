/* virtio-blk through its transport registers, with a real image file and io_uring. */
#include "devices/virtio_mmio/block.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define IMG_SECTORS 256

static struct guest_mem gm;
static struct test_ring ring;
static struct event_loop loop;
static void *dev;
static struct virtio_mmio_dev *t;
static char img[] = "/tmp/ember-blk-XXXXXX";

static void make_image(void)
{
	int fd = mkstemp(img);
	cr_assert(fd >= 0);
	uint8_t buf[512];
	for (unsigned s = 0; s < IMG_SECTORS; s++) {
		memset(buf, (int)(s & 0xff), sizeof(buf));
		cr_assert(eq(i64, write(fd, buf, 512), 512));
	}
	close(fd);
}

static void open_device(const char *spec_extra)
{
	char spec[256];
	snprintf(spec, sizeof(spec), "path=%s,id=disk0%s", img, spec_extra);
	void *cfg;
	cr_assert(eq(int, virtio_block_class.parse(spec, &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	free(((struct block_config *)cfg)->path);
	free(((struct block_config *)cfg)->id);
	free(cfg);
	cr_assert(eq(int, event_loop_init(&loop), 0));
	cr_assert(eq(int, virtio_block_class.start(dev, &loop), 0));
	test_ring_init(&ring, &gm, 16);
	uint32_t st = mmio_driver_init(t, 1ull << VIRTIO_BLK_F_FLUSH, &ring, 1);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
}

static void setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	make_image();
}

static void teardown(void)
{
	if (dev)
		virtio_block_class.destroy(dev);
	event_loop_destroy(&loop);
	gmem_destroy(&gm);
	unlink(img);
}

TestSuite(block, .init = setup, .fini = teardown);

#define HDR    0x100000ull
#define DATA   0x101000ull
#define STATUS 0x110000ull

/* Submit one request (header, data, status) and wait for its completion. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t len, bool data_writable)
{
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr = {type, 0, sector};
	cr_assert(eq(int, gmem_write(&gm, HDR, &hdr, sizeof(hdr)), 0));
	*(uint8_t *)gmem_ptr(&gm, STATUS, 1) = 0xee;
	uint16_t used_before = test_used(&ring)->idx;
	test_set_desc(&ring, 0, HDR, 16, VRING_DESC_F_NEXT, len ? 1 : 2);
	if (len)
		test_set_desc(&ring, 1, DATA, len,
			      VRING_DESC_F_NEXT | (data_writable ? VRING_DESC_F_WRITE : 0), 2);
	test_set_desc(&ring, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, 0);
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 100 && test_used(&ring)->idx == used_before; i++)
		event_loop_run_once(&loop, 50);
	cr_assert(eq(u16, test_used(&ring)->idx, (uint16_t)(used_before + 1)), "no completion");
	return *(uint8_t *)gmem_ptr(&gm, STATUS, 1);
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
	struct block_config c;
	cr_assert(lt(int, block_config_parse("id=x", &c), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "path=FILE is required"), NULL));
	cr_assert(lt(int, block_config_parse("path=/x,colour=red", &c), 0));
	cr_assert(lt(int, block_config_parse("path=/x,id=123456789012345678901", &c), 0));
	cr_assert(eq(int, block_config_parse("path=/a/b/disk.img,ro", &c), 0));
	cr_assert(eq(str, c.id, "disk.img"));
	cr_assert(c.read_only);
	free(c.path);
	free(c.id);
	void *cfg;
	cr_assert(eq(int, virtio_block_class.parse("path=/nonexistent/disk", &cfg), 0));
	cr_assert(lt(int, virtio_block_class.create(cfg, 0, &gm, &dev, &t), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "/nonexistent/disk"), NULL));
	dev = NULL;
	free(((struct block_config *)cfg)->path);
	free(((struct block_config *)cfg)->id);
	free(cfg);
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
