/* Programming a virtio-mmio transport the way a guest driver does, through its registers. */
#pragma once

#include "devices/virtio_mmio/transport.h"
#include "tests/unit/virtq_driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

static inline void mmio_w32(struct virtio_mmio_dev *t, uint64_t off, uint32_t v)
{
	virtio_mmio_access(t, off, (uint8_t *)&v, 4, true);
}

static inline uint32_t mmio_r32(struct virtio_mmio_dev *t, uint64_t off)
{
	uint32_t v = 0;
	virtio_mmio_access(t, off, (uint8_t *)&v, 4, false);
	return v;
}

/* Negotiate `features` (VERSION_1 added) and set up queue q on ring r; returns the status. */
static inline uint32_t mmio_driver_init(struct virtio_mmio_dev *t, uint64_t features,
					struct test_ring *rings, unsigned nrings)
{
	features |= 1ull << VIRTIO_F_VERSION_1;
	mmio_w32(t, VIRTIO_MMIO_STATUS, 0);
	mmio_w32(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	mmio_w32(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_w32(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	uint32_t st =
	    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
	mmio_w32(t, VIRTIO_MMIO_STATUS, st);
	if (!(mmio_r32(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		return mmio_r32(t, VIRTIO_MMIO_STATUS);
	for (unsigned q = 0; q < nrings; q++) {
		struct test_ring *r = &rings[q];
		mmio_w32(t, VIRTIO_MMIO_QUEUE_SEL, q);
		mmio_w32(t, VIRTIO_MMIO_QUEUE_NUM, r->num);
		mmio_w32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc);
		mmio_w32(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(r->desc >> 32));
		mmio_w32(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)r->avail);
		mmio_w32(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(r->avail >> 32));
		mmio_w32(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)r->used);
		mmio_w32(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(r->used >> 32));
		mmio_w32(t, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	mmio_w32(t, VIRTIO_MMIO_STATUS, st | VIRTIO_CONFIG_S_DRIVER_OK);
	return mmio_r32(t, VIRTIO_MMIO_STATUS);
}
