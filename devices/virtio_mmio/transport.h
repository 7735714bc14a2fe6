/* The virtio-mmio (version 2) transport: the register window a driver programs, feature
 * negotiation, the status state machine and reset, and the fast paths: queue notifications arrive
 * on an ioeventfd per queue (no exit to user space for a kick), interrupts leave through an irqfd.
 * A device plugs in through virtio_device_ops and never sees registers. */
#pragma once

#include "common/event_loop.h"
#include "devices/bus.h"
#include "devices/virtio_mmio/virtq.h"
#include "memory/guest_mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_MMIO_MAX_QUEUES	8
#define VIRTIO_MMIO_FIRST_IRQ	5
#define VIRTIO_MMIO_MAX_DEVICES 19 /* IRQs 5..23 */

struct virtio_mmio_dev;

struct virtio_device_ops {
	const char *name;
	uint32_t device_id;
	unsigned nqueues;
	uint16_t queue_max;
	/* Device-specific feature bits; the transport adds VERSION_1 and EVENT_IDX. */
	uint64_t features;
	uint32_t config_size;
	void (*config_read)(void *dev, uint64_t offset, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint64_t offset, const uint8_t *data, uint32_t len);
	/* DRIVER_OK: queues are set; the device may start. Returns <0 to refuse (NEEDS_RESET). */
	int (*activate)(void *dev, uint64_t acked_features);
	/* The driver reset the device: drop in-flight work, forget negotiated state. */
	void (*reset)(void *dev);
	/* The driver kicked queue q (on the vmm thread, transport lock held). */
	void (*queue_notify)(void *dev, unsigned q);
};

struct virtio_mmio_stats {
	uint64_t notifies;
	uint64_t interrupts;
	uint64_t needs_reset_events;
};

struct virtio_kick {
	struct virtio_mmio_dev *t;
	unsigned q;
};

struct virtio_mmio_dev {
	pthread_mutex_t lock;
	const struct virtio_device_ops *ops;
	void *dev;
	unsigned index;
	uint64_t base;
	unsigned irq;
	int vm_fd;
	/* registers */
	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	bool active;
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
	int irq_fd;
	int kick_fds[VIRTIO_MMIO_MAX_QUEUES];
	struct virtio_kick kicks[VIRTIO_MMIO_MAX_QUEUES];
	struct virtio_mmio_stats stats;
};

/* What the transport holds, as plain data, for snapshots. */
struct virtio_mmio_state {
	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	bool active;
	unsigned nqueues;
	struct virtq_state queues[VIRTIO_MMIO_MAX_QUEUES];
};

/* Place device number `index` (its window and IRQ follow from it). */
int virtio_mmio_init(struct virtio_mmio_dev *t, const struct virtio_device_ops *ops, void *dev,
		     unsigned index, const struct guest_mem *gm);
/* Wire it to the MMIO bus, to KVM (ioeventfds, irqfd) and to the vmm thread's event loop, which
 * then serves its kicks. vm_fd < 0 skips KVM and the loop (tests). */
int virtio_mmio_attach(struct virtio_mmio_dev *t, int vm_fd, struct bus *mmio,
		       struct event_loop *loop);
void virtio_mmio_destroy(struct virtio_mmio_dev *t);
/* Its command-line announcement: "virtio_mmio.device=4K@0x...:irq". */
int virtio_mmio_cmdline(const struct virtio_mmio_dev *t, char *buf, size_t size);
/* Register access, for the bus and tests. */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* A kick arrived on queue q's eventfd (vmm thread). */
void virtio_mmio_kick(struct virtio_mmio_dev *t, unsigned q);
/* Used buffers were returned on queue q: interrupt the guest if it wants one. Lock held. */
void virtio_mmio_used(struct virtio_mmio_dev *t, unsigned q);
/* The driver broke the rules: NEEDS_RESET and a config-change interrupt. Lock held. */
void virtio_mmio_fail(struct virtio_mmio_dev *t, const char *why);
/* Snapshots. Save takes the lock. Restore loads state read from a file, hence untrusted, into a
 * device freshly created and attached with the same configuration: it is checked against the
 * device (queue count and sizes, features the device offers, rings inside guest memory) and
 * refused with a message, never trusted; an active device is activated again with the saved
 * features, and a pending interrupt is raised again. */
void virtio_mmio_save(struct virtio_mmio_dev *t, struct virtio_mmio_state *s);
int virtio_mmio_restore(struct virtio_mmio_dev *t, const struct virtio_mmio_state *s);
/* The device changed its configuration space: a new ConfigGeneration, and a configuration-change
 * interrupt once the driver is up (virtio 1.2 sections 2.5 and 4.2.2). Lock held. */
void virtio_mmio_config_changed(struct virtio_mmio_dev *t);
