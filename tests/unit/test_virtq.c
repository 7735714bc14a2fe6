/* Split virtqueues, and snapshots of them and of the virtio-mmio transport. */
#include "devices/virtio_mmio/virtq.h"
#include "devices/virtio_mmio/rng.h"
#include "common/err.h"
#include "memory/layout.h"
#include "tests/unit/mmio_driver.h"
#include "tests/unit/virtq_driver.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

/* ---- diff snapshots: what the device writes is marked dirty ---- */

static bool page_dirty(uint64_t gpa)
{
	return gmem_test_clear_dirty(&gm, gpa / 4096);
}

Test(virtq, device_writes_are_marked_dirty)
{
	cr_assert(eq(int, gmem_track_dirty(&gm, true), 0), "%s", err_msg());
	struct virtq e;
	virtq_init(&e, &gm, 256);
	test_ring_to_queue(&ring, &e);
	cr_assert(eq(int, virtq_activate(&e, true), 0));
	/* Readable at 1 MiB, writable across the 2 MiB + 4 KiB page boundary, then at 3 MiB. */
	test_set_desc(&ring, 0, 0x100000, 16, VRING_DESC_F_NEXT, 1);
	test_set_desc(&ring, 1, 0x200ff0, 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	test_set_desc(&ring, 2, 0x300000, 1, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, 0);
	cr_assert(eq(int, virtq_pop(&e, &chain), 1), "%s", err_msg());
	cr_assert(page_dirty(0x200000));
	cr_assert(page_dirty(0x201000), "a buffer spanning two pages marks both");
	cr_assert(page_dirty(0x300000));
	cr_assert(page_dirty(ring.used), "avail_event lives in the used ring");
	cr_assert(not(page_dirty(0x100000)), "the device only reads there");
	cr_assert(not(page_dirty(ring.avail)));
	cr_assert(not(page_dirty(ring.desc)));
	virtq_push(&e, chain.head, 33);
	cr_assert(page_dirty(ring.used), "the used entry and index");
	for (uint64_t p = 0; p < 16 * MiB; p += 4096)
		cr_assert(not(page_dirty(p)), "page 0x%llx marked", (unsigned long long)p);
}

Test(virtq, nothing_is_marked_while_not_tracking)
{
	test_set_desc(&ring, 0, 0x200000, 64, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, 0);
	cr_assert(eq(int, virtq_pop(&q, &chain), 1));
	virtq_push(&q, chain.head, 64);
	cr_assert(eq(int, gmem_track_dirty(&gm, true), 0));
	cr_assert(not(page_dirty(0x200000)), "tracking starts clean");
}

/* ---- snapshots of one queue ---- */

/* Pop and push one chain of 16 readable bytes. */
static void one_round_trip(struct virtq *vq)
{
	test_set_desc(&ring, 0, 0x100000, 16, 0, 0);
	test_publish(&ring, 0);
	cr_assert(eq(int, virtq_pop(vq, &chain), 1), "%s", err_msg());
	virtq_push(vq, chain.head, 0);
}

Test(virtq, restored_queue_carries_on)
{
	for (int i = 0; i < 11; i++)
		one_round_trip(&q);
	struct virtq_state saved = q.s;
	struct virtq r;
	virtq_init(&r, &gm, 256);
	cr_assert(eq(int, virtq_restore(&r, &saved, false), 0), "%s", err_msg());
	cr_assert(r.s.ready);
	cr_assert(eq(ptr, r.used, q.used), "the host view of the rings is set up again");
	one_round_trip(&r);
	cr_assert(eq(u16, test_used(&ring)->idx, 12), "the used index continues");
	cr_assert(eq(u32, test_used(&ring)->ring[11 % 8].id, 0));
	/* A queue that was never made ready comes back as it was, with no ring views. */
	struct virtq_state idle = {.num = 6, .desc_gpa = 3};
	virtq_init(&r, &gm, 256);
	cr_assert(eq(int, virtq_restore(&r, &idle, false), 0), "%s", err_msg());
	cr_assert(not(r.s.ready));
	cr_assert(eq(u16, r.s.num, 6));
	cr_assert(eq(ptr, r.desc, NULL));
}

/* The saved state is refused with a message naming `why`, and the queue is untouched. */
static void expect_restore_refused(const struct virtq_state *s, const char *why)
{
	struct virtq r;
	virtq_init(&r, &gm, 256);
	r.chains = 7;
	cr_assert(lt(int, virtq_restore(&r, s, false), 0), "accepted: %s", why);
	cr_assert(ne(ptr, strstr(err_msg(), why), NULL), "%s", err_msg());
	cr_assert(not(r.s.ready));
	cr_assert(eq(u16, r.s.num, 0));
	cr_assert(eq(ptr, r.used, NULL));
	cr_assert(eq(u64, r.chains, 7));
}

Test(virtq, corrupted_queue_states_are_refused)
{
	for (int i = 0; i < 3; i++)
		one_round_trip(&q);
	struct virtq_state good = q.s, s;
	s = good;
	s.num = 6;
	expect_restore_refused(&s, "power of two");
	s.num = 512;
	expect_restore_refused(&s, "above the device's maximum 256");
	s.ready = false; /* too big even for a queue not in use */
	expect_restore_refused(&s, "above the device's maximum 256");
	s = good;
	s.used_gpa += 2;
	expect_restore_refused(&s, "misaligned");
	s = good;
	s.desc_gpa = 16 * MiB - 64; /* 8 descriptors need 128 bytes */
	expect_restore_refused(&s, "outside guest RAM");
	s = good;
	s.avail_gpa = UINT64_MAX - 1;
	expect_restore_refused(&s, "outside guest RAM");
	s = good;
	s.last_avail = (uint16_t)(s.used_idx + 9);
	expect_restore_refused(&s, "9 chains in flight");
	s = good;
	s.last_avail = (uint16_t)(s.used_idx - 1);
	expect_restore_refused(&s, "65535 chains in flight");
	s = good;
	s.used_idx = 2;
	s.last_avail = 2;
	expect_restore_refused(&s, "used index 3 in guest memory but 2 in the saved state");
}

/* ---- snapshots of the transport, with virtio-rng as the device (it has no backend) ---- */

static void *rng_dev, *rng_dev2;
static struct virtio_mmio_dev *rt, *rt2;

static void transport_teardown(void)
{
	if (rng_dev)
		virtio_rng_class.destroy(rng_dev);
	if (rng_dev2)
		virtio_rng_class.destroy(rng_dev2);
	gmem_destroy(&gm);
}

static void new_rng(void **dev, struct virtio_mmio_dev **t)
{
	void *cfg;
	cr_assert(eq(int, virtio_rng_class.parse("on", &cfg), 0), "%s", err_msg());
	cr_assert(eq(int, virtio_rng_class.create(cfg, 2, &gm, dev, t), 0), "%s", err_msg());
	free(cfg);
}

static void transport_setup(void)
{
	cr_assert(eq(int, gmem_create(&gm, 16 * MiB), 0));
	test_ring_init(&ring, &gm, 8);
	new_rng(&rng_dev, &rt);
	uint32_t st = mmio_driver_init(rt, 1ull << VIRTIO_RING_F_EVENT_IDX, &ring, 1);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
	new_rng(&rng_dev2, &rt2);
}

TestSuite(transport, .init = transport_setup, .fini = transport_teardown);

/* The driver asks for `len` random bytes in one buffer at 1 MiB + 4 KiB * k. */
static void rng_request(struct virtio_mmio_dev *t, uint16_t k, uint32_t len)
{
	test_set_desc(&ring, k, 0x100000 + 0x1000ull * k, len, VRING_DESC_F_WRITE, 0);
	test_publish(&ring, k);
	mmio_w32(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

static struct virtio_mmio_state saved_after_requests(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		rng_request(rt, (uint16_t)(i % 8), 16);
	cr_assert(eq(u16, test_used(&ring)->idx, n));
	mmio_w32(rt, VIRTIO_MMIO_QUEUE_SEL, 0);
	virtio_rng_class.quiesce(rng_dev);
	struct virtio_mmio_state s;
	memset(&s, 0xa5, sizeof(s));
	virtio_mmio_save(rt, &s);
	return s;
}

Test(transport, save_restore_round_trip)
{
	struct virtio_mmio_state s = saved_after_requests(5);
	cr_assert(eq(u32, s.nqueues, 1));
	cr_assert(s.active);
	cr_assert(eq(u16, s.queues[0].used_idx, 5));
	cr_assert(eq(u16, s.queues[0].last_avail, 5));
	cr_assert(not(s.queues[1].ready), "queues the device lacks are saved empty");
	cr_assert(eq(u16, s.queues[1].num, 0));
	cr_assert(eq(int, virtio_mmio_restore(rt2, &s), 0), "%s", err_msg());
	cr_assert(rt2->active);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS), s.status));
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_QUEUE_READY), 1));
	/* The driver carries on with the new device: the used index continues. */
	rng_request(rt2, 5, 32);
	cr_assert(eq(u16, test_used(&ring)->idx, 6));
	cr_assert(eq(u32, test_used(&ring)->ring[5].len, 32));
	struct rng_stats st;
	rng_get_stats(rng_dev2, &st);
	cr_assert(eq(u64, st.requests, 1));
	/* And it saves the same way. */
	struct virtio_mmio_state again;
	virtio_mmio_save(rt2, &again);
	cr_assert(eq(u16, again.queues[0].used_idx, 6));
	cr_assert(eq(u64, again.driver_features, s.driver_features));
}

Test(transport, work_queued_while_quiesced_is_done_after_restore)
{
	struct virtio_mmio_state s = saved_after_requests(2);
	rng_request(rt, 2, 16); /* kicked while quiesced: left alone */
	cr_assert(eq(u16, test_used(&ring)->idx, 2));
	virtio_mmio_save(rt, &s);
	cr_assert(eq(int, virtio_mmio_restore(rt2, &s), 0), "%s", err_msg());
	cr_assert(eq(u16, test_used(&ring)->idx, 3), "the restored device looks at its queue");
}

Test(transport, pending_interrupt_is_raised_again)
{
	struct virtio_mmio_state s = saved_after_requests(1);
	cr_assert(eq(u32, s.interrupt_status, VIRTIO_MMIO_INT_VRING), "not acknowledged yet");
	rt2->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(ge(int, rt2->irq_fd, 0));
	cr_assert(eq(int, virtio_mmio_restore(rt2, &s), 0), "%s", err_msg());
	uint64_t v = 0;
	cr_assert(eq(i64, read(rt2->irq_fd, &v, sizeof(v)), 8), "the irqfd was signalled");
	cr_assert(eq(u64, v, 1));
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING));
	/* Without a pending interrupt, none. */
	mmio_w32(rt2, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	virtio_mmio_save(rt2, &s);
	virtio_rng_class.destroy(rng_dev2);
	new_rng(&rng_dev2, &rt2);
	rt2->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(eq(int, virtio_mmio_restore(rt2, &s), 0), "%s", err_msg());
	cr_assert(lt(i64, read(rt2->irq_fd, &v, sizeof(v)), 0), "no interrupt owed");
}

Test(transport, device_never_set_up_restores_as_new)
{
	struct virtio_mmio_state s;
	virtio_mmio_save(rt2, &s);
	cr_assert(eq(u32, s.status, 0));
	cr_assert(not(s.active));
	void *dev3;
	struct virtio_mmio_dev *rt3;
	new_rng(&dev3, &rt3);
	cr_assert(eq(int, virtio_mmio_restore(rt3, &s), 0), "%s", err_msg());
	cr_assert(not(rt3->active));
	/* A driver can then bring it up as at boot. */
	uint32_t st = mmio_driver_init(rt3, 0, &ring, 1);
	cr_assert(ne(u32, st & VIRTIO_CONFIG_S_DRIVER_OK, 0));
	virtio_rng_class.destroy(dev3);
}

/* A corrupted state is refused with a message naming the device and `why`, and the device is
 * left as created. */
static void expect_refused(const struct virtio_mmio_state *s, const char *why)
{
	cr_assert(lt(int, virtio_mmio_restore(rt2, s), 0), "accepted: %s", why);
	cr_assert(
	    ne(ptr, strstr(err_msg(), "virtio-rng (virtio-mmio device 2 at 0xc0003000)"), NULL),
	    "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), why), NULL), "%s", err_msg());
	cr_assert(eq(u32, rt2->status, 0));
	cr_assert(not(rt2->active));
	cr_assert(not(rt2->queues[0].s.ready));
	cr_assert(eq(u64, rt2->driver_features, 0));
}

Test(transport, corrupted_states_are_refused)
{
	const struct virtio_mmio_state good = saved_after_requests(3);
	struct virtio_mmio_state s = good;
	s.nqueues = 2;
	expect_refused(&s, "queue count 2, but the device has 1");
	s = good;
	s.status |= 0x10;
	expect_refused(&s, "bits virtio does not define");
	s = good;
	s.status &= ~(uint32_t)VIRTIO_CONFIG_S_ACKNOWLEDGE;
	expect_refused(&s, "sets DRIVER without ACKNOWLEDGE");
	s = good;
	s.status &= ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK;
	expect_refused(&s, "sets DRIVER_OK without FEATURES_OK");
	s = good;
	s.active = false;
	expect_refused(&s, "active is false, but status");
	s = good;
	s.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	expect_refused(&s, "active is true, but status");
	s = good;
	s.driver_features |= 1ull << 5;
	expect_refused(&s, "not a virtio 1 subset");
	s = good;
	s.driver_features &= ~(1ull << VIRTIO_F_VERSION_1);
	expect_refused(&s, "not a virtio 1 subset");
	s = good;
	s.interrupt_status = 4;
	expect_refused(&s, "interrupt_status 0x4");
	s = good;
	s.queues[0].num = 12;
	expect_refused(&s, "queue 0: queue size 12");
	s = good;
	s.queues[0].desc_gpa = 15 * MiB + 0x800000;
	expect_refused(&s, "queue 0: ring addresses outside guest RAM");
	s = good;
	s.queues[0].avail_gpa |= 1;
	expect_refused(&s, "queue 0: misaligned");
	s = good;
	s.queues[0].used_idx = 1;
	s.queues[0].last_avail = 1;
	expect_refused(&s, "queue 0: used index 3 in guest memory");
	s = good;
	s.queues[0].last_avail = 4;
	expect_refused(&s, "queue 0: 1 chains in flight (the device was not quiesced");
	s = good;
	s.queues[3].ready = true;
	expect_refused(&s, "queue 3: set up, but the device has 1 queues");
	/* The good one still goes in after all that. */
	cr_assert(eq(int, virtio_mmio_restore(rt2, &good), 0), "%s", err_msg());
}

Test(transport, mid_negotiation_features_wait_for_features_ok)
{
	/* A driver that wrote features but has not set FEATURES_OK yet: whatever it wrote. */
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mmio_w32(rt2, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_w32(rt2, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	struct virtio_mmio_state s;
	virtio_mmio_save(rt2, &s);
	void *dev3;
	struct virtio_mmio_dev *rt3;
	new_rng(&dev3, &rt3);
	cr_assert(eq(int, virtio_mmio_restore(rt3, &s), 0), "%s", err_msg());
	/* ... and FEATURES_OK judges it, as it would have. */
	mmio_w32(rt3, VIRTIO_MMIO_STATUS,
		 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		     VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert(eq(u32, mmio_r32(rt3, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK, 0));
	virtio_rng_class.destroy(dev3);
}

/* The live transport keeps the invariant a restore checks: active exactly when DRIVER_OK is set
 * without NEEDS_RESET. */
Test(transport, status_bits_accumulate_in_order)
{
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS), 0), "DRIVER needs ACKNOWLEDGE");
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | 0x10);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE),
		  "bits virtio does not define are ignored");
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS),
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER),
		  "bits are only added until a reset");
	mmio_w32(rt2, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_w32(rt2, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS),
		     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER),
		  "DRIVER_OK needs FEATURES_OK; NEEDS_RESET is the device's");
	cr_assert(not(rt2->active));
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert(rt2->active);
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_FAILED);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS), 0x8f), "a driver giving up");
	mmio_w32(rt2, VIRTIO_MMIO_STATUS, 0);
	cr_assert(eq(u32, mmio_r32(rt2, VIRTIO_MMIO_STATUS), 0));
	cr_assert(not(rt2->active));
}
