/* virtio-mmio (version 2) transport and split virtqueues, driven at CPL3.
 * Devices come from virtio_mmio.device=<size>@<base>:<irq>[:<id>] tokens on
 * the command line, as Linux reads them. */
#ifndef UK_VIRTIO_H
#define UK_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_ID_NET	1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG	4
#define VIRTIO_ID_VSOCK 19

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32

#define VIRTIO_MAX_QUEUES 4

/* Descriptor flags. */
#define VRING_DESC_F_NEXT  1
#define VRING_DESC_F_WRITE 2

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vdev;

struct virtq {
	struct vdev *dev;
	uint16_t index, size;
	struct vring_desc *desc;
	/* avail: flags, idx, ring[size], used_event */
	volatile uint16_t *avail;
	/* used: flags, idx, then ring[size] of struct vring_used_elem, avail_event */
	volatile uint16_t *used;
	volatile struct vring_used_elem *used_ring;
	uint16_t free_head, num_free;
	uint16_t avail_idx;   /* our copy of avail->idx */
	uint16_t kicked_idx;  /* avail_idx at the last notification decision */
	uint16_t last_used;   /* next used entry to reap */
	uint64_t *cookie;     /* per chain head */
	uint32_t *write_len;  /* per chain head: bytes the device may write */
	uint8_t *chain_len;   /* per chain head: descriptors in the chain, 0 = free */
	uint64_t kicks, adds; /* statistics */
};

/* One buffer of a chain: out (device reads) or in (device writes). */
struct vbuf {
	const void *addr;
	uint32_t len;
	bool write;
};

struct vdev {
	uint64_t base, size;
	uint32_t irq;
	uint32_t device_id, version;
	uint64_t offered, features;
	bool irq_mode;	      /* interrupts and hlt, else CPL3 polling */
	int vector;	      /* in irq_mode */
	uint64_t irqs_before; /* virtio_irqs[vector] when we started */
	struct virtq queues[VIRTIO_MAX_QUEUES];
	unsigned nqueues;
};

/* Command-line tokens: the value after "virtio_mmio.device=". */
void virtio_cmdline_device(const char *value, size_t len);

/* Probe every window (printing "virtio: <type> at 0x... irq N features=0x..."
 * for each device) and set up the first device of this id: reset,
 * ACKNOWLEDGE, DRIVER, features (wanted & offered; VERSION_1 required;
 * EVENT_IDX added unless virtio_event_idx=0), FEATURES_OK. Fails the check
 * when there is none. Then the caller sets up its queues and calls
 * virtio_driver_ok. */
void virtio_open(struct vdev *d, uint32_t device_id, uint64_t wanted);
bool virtio_has(const struct vdev *d, unsigned feature);
/* Queue index with at most max_size entries (rounded down to a power of two,
 * bounded by QueueNumMax). */
struct virtq *virtio_queue(struct vdev *d, unsigned index, unsigned max_size);
void virtio_driver_ok(struct vdev *d);
/* Reset the device (status 0, read back) and stop routing its interrupt. */
void virtio_close(struct vdev *d);
const char *virtio_type_name(uint32_t device_id);

/* Device-specific configuration, read with the width of the field; 64-bit
 * fields as two 32-bit halves under ConfigGeneration. */
uint8_t virtio_cfg8(struct vdev *d, unsigned off);
uint16_t virtio_cfg16(struct vdev *d, unsigned off);
uint32_t virtio_cfg32(struct vdev *d, unsigned off);
uint64_t virtio_cfg64(struct vdev *d, unsigned off);

/* Add a chain (out buffers first, then in buffers, as the spec requires);
 * returns the head, or -1 when the ring lacks free descriptors. Publishes
 * the chain in avail->idx at once; virtq_kick notifies the device. */
int virtq_add(struct virtq *q, const struct vbuf *bufs, unsigned n, uint64_t cookie);
/* Notify the device of chains added since the last kick, unless it asked
 * not to be (VIRTQ_USED_F_NO_NOTIFY, or avail_event with EVENT_IDX). */
void virtq_kick(struct virtq *q);
/* Reap one used chain: its cookie and the bytes the device wrote. Fails the
 * check on a used id that is not a chain in flight or a length beyond the
 * chain's writable bytes. */
bool virtq_get(struct virtq *q, uint64_t *cookie, uint32_t *len);
bool virtq_pending(const struct virtq *q);
static inline unsigned virtq_in_flight(const struct virtq *q)
{
	return q->size - q->num_free;
}

/* Wait a little for any of the device's queues to have used entries: a short
 * pause-spin when polling, else hlt until an interrupt (the LAPIC timer ticks
 * every millisecond meanwhile, so deadlines still work). */
void virtio_wait(struct vdev *d);
/* Fail the check if the device set DEVICE_NEEDS_RESET (or we FAILED it). */
void virtio_check_status(struct vdev *d);
/* Interrupts taken per device vector (vectors.S). */
extern volatile uint64_t virtio_irqs[8];
uint64_t virtio_irq_count(const struct vdev *d);

static inline void virtio_mb(void)
{
	__asm__ volatile("lock addl $0, (%%rsp)" ::: "memory", "cc");
}

static inline void virtio_barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

#endif
