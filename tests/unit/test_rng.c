/* virtio-rng through its transport registers: the test is the guest driver. */
#include "devices/virtio_mmio/rng.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>

#define BUF  0x100000ull /* request k's buffers from BUF + k * SLOT */
#define SLOT 0x20000ull

static struct guest_mem gm;
static struct test_ring ring;
static void *dev;
static struct virtio_mmio_dev *t;

static void setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	void *cfg;
	cr_assert(eq(int, virtio_rng_class.parse("on", &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_rng_class.create(cfg, 0, &gm, &dev, &t), 0), "%s", err_msg());
	free(cfg);
	cr_assert(eq(int, virtio_rng_class.start(dev, NULL), 0));
	test_ring_init(&ring, &gm, 16);
	uint32_t st = mmio_driver_init(t, 0, &ring, 1);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
}

static void teardown(void)
{
	if (dev)
		virtio_rng_class.destroy(dev);
	gmem_destroy(&gm);
}

TestSuite(rng, .init = setup, .fini = teardown);

static uint8_t *buf(unsigned k, uint32_t len)
{
	return gmem_ptr(&gm, BUF + k * SLOT, len);
}

/* Request k: one writable buffer of len bytes, prefilled with 0xee (and 16 bytes past it). */
static void post(unsigned k, uint32_t len)
{
	memset(buf(k, len + 16), 0xee, len + 16);
	test_set_desc(&ring, (uint16_t)k, BUF + k * SLOT, len, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, (uint16_t)k);
}

static void kick(void)
{
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static struct rng_stats stats(void)
{
	struct rng_stats s;
	rng_get_stats(dev, &s);
	return s;
}

/* Bytes of p still holding the 0xee they were prefilled with: about len/256 if random. */
static unsigned untouched(const uint8_t *p, uint32_t len)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < len; i++)
		n += p[i] == 0xee;
	return n;
}

Test(rng, identity)
{
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG));
	mmio_w32(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256));
	mmio_w32(t, VIRTIO_MMIO_QUEUE_SEL, 1);
	cr_assert(eq(u32, mmio_r32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0), "one queue");
}

Test(rng, every_buffer_is_filled_whole_and_differently)
{
	post(0, 16);
	post(1, 16);
	post(2, 4096);
	kick();
	struct vring_used *u = test_used(&ring);
	cr_assert(eq(u16, u->idx, 3), "served within the kick");
	for (unsigned i = 0; i < 3; i++) {
		cr_assert(eq(u32, u->ring[i].id, i));
		cr_assert(eq(u32, u->ring[i].len, i < 2 ? 16 : 4096));
	}
	cr_assert(ne(int, memcmp(buf(0, 16), buf(1, 16), 16), 0), "two requests, two answers");
	cr_assert(lt(u32, untouched(buf(2, 4096), 4096), 64), "random bytes, not 0xee");
	cr_assert(eq(u8, buf(0, 17)[16], 0xee), "nothing written past the buffer");
	struct rng_stats s = stats();
	cr_assert(eq(u64, s.requests, 3));
	cr_assert(eq(u64, s.bytes, 16 + 16 + 4096));
}

Test(rng, a_chain_of_several_buffers_is_filled_across_them)
{
	memset(buf(0, 0x2001), 0xee, 0x2001);
	test_set_desc(&ring, 0, BUF, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	test_set_desc(&ring, 1, BUF + 0x1000, 7, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	test_set_desc(&ring, 2, BUF + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, 0);
	kick();
	cr_assert(eq(u16, test_used(&ring)->idx, 1));
	cr_assert(eq(u32, test_used(&ring)->ring[0].len, 108));
	cr_assert(lt(u32, untouched(buf(0, 100), 100), 8));
	cr_assert(eq(u8, buf(0, 101)[100], 0xee));
}

Test(rng, large_requests_get_at_most_the_cap)
{
	post(0, 2 * RNG_REQUEST_MAX);
	kick();
	cr_assert(eq(u32, test_used(&ring)->ring[0].len, RNG_REQUEST_MAX));
	cr_assert(lt(u32, untouched(buf(0, RNG_REQUEST_MAX), RNG_REQUEST_MAX), 1024));
	cr_assert(eq(u32, untouched(buf(0, 2 * RNG_REQUEST_MAX) + RNG_REQUEST_MAX, RNG_REQUEST_MAX),
		     RNG_REQUEST_MAX));
}

Test(rng, a_readable_buffer_needs_reset)
{
	test_set_desc(&ring, 0, BUF, 16, 0, 0);
	test_publish(&ring, 0);
	kick();
	cr_assert(ne(u32, mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0));
	cr_assert(eq(u16, test_used(&ring)->idx, 0));
	struct virtio_device_metrics m;
	virtio_rng_class.metrics(dev, &m);
	cr_assert(eq(u64, m.errors, 1));
	cr_assert(eq(u64, m.requests, 0));
	/* A reset brings it back. */
	test_ring_init(&ring, &gm, 16);
	cr_assert(ne(u32, mmio_driver_init(t, 0, &ring, 1) & VIRTIO_CONFIG_S_DRIVER_OK, 0));
	post(0, 8);
	kick();
	cr_assert(eq(u16, test_used(&ring)->idx, 1));
}

Test(rng, quiesced_device_writes_nothing_until_unquiesce)
{
	virtio_rng_class.quiesce(dev);
	post(0, 32);
	kick();
	cr_assert(eq(u16, test_used(&ring)->idx, 0));
	cr_assert(eq(u32, untouched(buf(0, 32), 32), 32), "guest memory untouched");
	virtio_rng_class.unquiesce(dev);
	cr_assert(eq(u16, test_used(&ring)->idx, 1), "served at unquiesce, without a new kick");
	cr_assert(eq(u32, test_used(&ring)->ring[0].len, 32));
}

Test(rng, metrics)
{
	struct virtio_device_metrics m;
	post(0, 10);
	post(1, 20);
	kick();
	virtio_rng_class.metrics(dev, &m);
	cr_assert(eq(u64, m.requests, 2));
	cr_assert(eq(u64, m.bytes_to_guest, 30));
	cr_assert(eq(u64, m.bytes_from_guest, 0));
	cr_assert(eq(u64, m.errors, 0));
}

Test(rng, specs_and_conflicts)
{
	void *cfg, *other;
	cr_assert(eq(int, virtio_rng_class.parse("default", &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_rng_class.parse("on", &other), 0), "%s", err_msg());
	cr_assert(ne(ptr, strstr(virtio_rng_class.conflict(cfg, other), "only one rng"), NULL));
	free(cfg);
	free(other);
	const char *bad[] = {"", "off", "on,rate=10", "yes"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert(lt(int, virtio_rng_class.parse(bad[i], &cfg), 0), "accepted '%s'",
			  bad[i]);
		cr_assert(ne(ptr, strstr(err_msg(), "expected 'on' or 'default'"), NULL), "%s",
			  err_msg());
	}
}
