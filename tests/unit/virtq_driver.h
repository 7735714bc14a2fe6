/* A minimal virtio driver living in test memory: rings laid out at fixed guest addresses of a
 * guest_mem, filled by hand so tests can build any chain, good or malformed. */
#pragma once

#include "devices/virtio_mmio/virtq.h"
#include "memory/guest_mem.h"

#include <linux/virtio_ring.h>
#include <stdint.h>
#include <string.h>

struct test_ring {
	struct guest_mem *gm;
	uint16_t num;
	uint64_t desc, avail, used;
	uint16_t avail_idx;
};

/* Rings at base + 0x10000 (desc), + 0x20000 (avail), + 0x30000 (used). */
static inline void test_ring_init_at(struct test_ring *r, struct guest_mem *gm, uint16_t num,
				     uint64_t base)
{
	*r = (struct test_ring){gm, num, base + 0x10000, base + 0x20000, base + 0x30000, 0};
	memset(gmem_ptr(gm, base + 0x10000, 0x30000), 0, 0x30000);
}

static inline void test_ring_init(struct test_ring *r, struct guest_mem *gm, uint16_t num)
{
	test_ring_init_at(r, gm, num, 0);
}

static inline struct vring_desc *test_desc(struct test_ring *r, uint16_t i)
{
	return (struct vring_desc *)gmem_ptr(r->gm, r->desc + 16ull * i, 16);
}

static inline void test_set_desc(struct test_ring *r, uint16_t i, uint64_t addr, uint32_t len,
				 uint16_t flags, uint16_t next)
{
	struct vring_desc *d = test_desc(r, i);
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Make chain `head` available. */
static inline void test_publish(struct test_ring *r, uint16_t head)
{
	struct vring_avail *a = gmem_ptr(r->gm, r->avail, 6 + 2ull * r->num);
	a->ring[r->avail_idx % r->num] = head;
	r->avail_idx++;
	__atomic_store_n(&a->idx, r->avail_idx, __ATOMIC_RELEASE);
}

static inline struct vring_used *test_used(struct test_ring *r)
{
	return gmem_ptr(r->gm, r->used, 6 + 8ull * r->num);
}

static inline void test_ring_to_queue(const struct test_ring *r, struct virtq *q)
{
	q->s.num = r->num;
	q->s.desc_gpa = r->desc;
	q->s.avail_gpa = r->avail;
	q->s.used_gpa = r->used;
}
