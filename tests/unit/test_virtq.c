#include "devices/virtio_mmio/virtq.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/virtq_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

static struct guest_mem gm;
static struct test_ring ring;
static struct virtq q;
static struct virtq_chain chain;

static void setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	test_ring_init(&ring, &gm, 8);
	virtq_init(&q, &gm, 256);
	test_ring_to_queue(&ring, &q);
	cr_assert(eq(int, virtq_activate(&q, false), 0), "%s", err_msg());
}

static void teardown(void)
{
	gmem_destroy(&gm);
}

TestSuite(virtq, .init = setup, .fini = teardown);

Test(virtq, empty_queue_pops_nothing)
{
	cr_assert(eq(int, virtq_pop(&q, &chain), 0));
}

Test(virtq, readable_then_writable_chain)
{
	test_set_desc(&ring, 0, 0x100000, 16, VRING_DESC_F_NEXT, 3);
	test_set_desc(&ring, 3, 0x101000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 5);
	test_set_desc(&ring, 5, 0x102000, 1, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, 0);
	cr_assert(eq(int, virtq_pop(&q, &chain), 1), "%s", err_msg());
	cr_assert(eq(u32, chain.nsegs, 3));
	cr_assert(eq(u32, chain.nreadable, 1));
	cr_assert(eq(u64, chain.readable_len, 16));
	cr_assert(eq(u64, chain.writable_len, 4097));
	cr_assert(eq(ptr, chain.segs[1].host, gmem_ptr(&gm, 0x101000, 1)));
	uint8_t data[20] = "0123456789abcdefghi";
	cr_assert(eq(u64, virtq_chain_write(&chain, 4090, data, 20), 7),
		  "only 7 writable bytes left");
	virtq_push(&q, chain.head, 7);
	struct vring_used *u = test_used(&ring);
	cr_assert(eq(u16, u->idx, 1));
	cr_assert(eq(u32, u->ring[0].id, 0));
	cr_assert(eq(u32, u->ring[0].len, 7));
	cr_assert(eq(int, virtq_pop(&q, &chain), 0));
}

static void expect_broken(const char *what)
{
	uint64_t bad = q.bad_chains;
	cr_assert(lt(int, virtq_pop(&q, &chain), 0), "accepted: %s", what);
	cr_assert(eq(u64, q.bad_chains, bad + 1));
	cr_assert(ne(ptr, strstr(err_msg(), what), NULL), "%s", err_msg());
}

Test(virtq, descriptor_outside_guest_ram)
{
	test_set_desc(&ring, 0, 16 * MiB - 8, 16, 0, 0);
	test_publish(&ring, 0);
	expect_broken("outside guest RAM");
}

Test(virtq, descriptor_in_the_mmio_gap_or_wrapping)
{
	test_set_desc(&ring, 0, LAYOUT_MMIO_GAP_START, 16, 0, 0);
	test_publish(&ring, 0);
	expect_broken("outside guest RAM");
	virtq_init(&q, &gm, 256);
	test_ring_to_queue(&ring, &q);
	virtq_activate(&q, false);
	q.s.last_avail = ring.avail_idx;
	test_set_desc(&ring, 1, UINT64_MAX - 4, 16, 0, 0);
	test_publish(&ring, 1);
	expect_broken("outside guest RAM");
}

Test(virtq, loop_is_caught_by_the_queue_bound)
{
	test_set_desc(&ring, 0, 0x100000, 16, VRING_DESC_F_NEXT, 1);
	test_set_desc(&ring, 1, 0x100000, 16, VRING_DESC_F_NEXT, 0);
	test_publish(&ring, 0);
	expect_broken("longer than the queue");
}

Test(virtq, zero_length_descriptor)
{
	test_set_desc(&ring, 0, 0x100000, 0, 0, 0);
	test_publish(&ring, 0);
	expect_broken("length 0");
}

Test(virtq, readable_after_writable)
{
	test_set_desc(&ring, 0, 0x100000, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	test_set_desc(&ring, 1, 0x101000, 16, 0, 0);
	test_publish(&ring, 0);
	expect_broken("readable after a writable");
}

Test(virtq, head_and_next_out_of_range)
{
	test_publish(&ring, 9);
	expect_broken("names descriptor 9");
	virtq_init(&q, &gm, 256);
	test_ring_to_queue(&ring, &q);
	virtq_activate(&q, false);
	q.s.last_avail = ring.avail_idx;
	test_set_desc(&ring, 2, 0x100000, 16, VRING_DESC_F_NEXT, 200);
	test_publish(&ring, 2);
	expect_broken("past the queue");
}

Test(virtq, avail_index_jump)
{
	struct vring_avail *a = gmem_ptr(&gm, ring.avail, 6 + 2 * 8);
	a->idx = 9; /* nine new entries in an eight-entry ring */
	expect_broken("entries ahead");
}

Test(virtq, indirect_descriptors_are_not_offered)
{
	test_set_desc(&ring, 0, 0x100000, 16, VRING_DESC_F_INDIRECT, 0);
	test_publish(&ring, 0);
	expect_broken("indirect");
}

Test(virtq, rings_outside_ram_or_misaligned_are_refused)
{
	struct virtq bad;
	virtq_init(&bad, &gm, 256);
	test_ring_to_queue(&ring, &bad);
	bad.s.used_gpa = 16 * MiB - 16;
	cr_assert(lt(int, virtq_activate(&bad, false), 0));
	cr_assert(not(bad.s.ready));
	virtq_init(&bad, &gm, 256);
	test_ring_to_queue(&ring, &bad);
	bad.s.desc_gpa += 8;
	cr_assert(lt(int, virtq_activate(&bad, false), 0));
	virtq_init(&bad, &gm, 256);
	test_ring_to_queue(&ring, &bad);
	bad.s.num = 6;
	cr_assert(lt(int, virtq_activate(&bad, false), 0), "size must be a power of two");
	bad.s.num = 512;
	cr_assert(lt(int, virtq_activate(&bad, false), 0), "size above the maximum");
}

Test(virtq, event_idx_interrupt_suppression)
{
	struct virtq e;
	virtq_init(&e, &gm, 256);
	test_ring_to_queue(&ring, &e);
	cr_assert(eq(int, virtq_activate(&e, true), 0));
	struct vring_avail *a = gmem_ptr(&gm, ring.avail, 6 + 2 * 8 + 2);
	uint16_t *used_event = &a->ring[8];
	test_set_desc(&ring, 0, 0x100000, 16, 0, 0);
	for (int i = 0; i < 3; i++)
		test_publish(&ring, 0);
	*used_event = 1; /* interrupt me once used idx passes 1 */
	cr_assert(eq(int, virtq_pop(&e, &chain), 1));
	virtq_push(&e, 0, 0);
	cr_assert(virtq_should_notify(&e), "first notification always goes");
	cr_assert(eq(int, virtq_pop(&e, &chain), 1));
	virtq_push(&e, 0, 0);
	cr_assert(virtq_should_notify(&e), "used idx 2 passes used_event 1");
	cr_assert(eq(int, virtq_pop(&e, &chain), 1));
	virtq_push(&e, 0, 0);
	cr_assert(not(virtq_should_notify(&e)), "used_event 1 already passed");
	/* avail_event tells the driver where to kick next. */
	struct vring_used *u = test_used(&ring);
	uint16_t avail_event;
	memcpy(&avail_event, (uint8_t *)u + 4 + 8 * 8, 2);
	cr_assert(eq(u16, avail_event, 3));
}

Test(virtq, no_interrupt_flag_without_event_idx)
{
	struct vring_avail *a = gmem_ptr(&gm, ring.avail, 6);
	test_set_desc(&ring, 0, 0x100000, 16, 0, 0);
	test_publish(&ring, 0);
	cr_assert(eq(int, virtq_pop(&q, &chain), 1));
	virtq_push(&q, 0, 0);
	cr_assert(virtq_should_notify(&q));
	a->flags = VRING_AVAIL_F_NO_INTERRUPT;
	cr_assert(not(virtq_should_notify(&q)));
}
