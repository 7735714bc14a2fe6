/* What every virtio device module offers the VM, so the monitor creates, starts and tears down
 * devices without knowing any by name: a class per device kind (one .c each), found by the
 * command-line flag that configures it. */
#pragma once

#include "common/event_loop.h"
#include "devices/virtio_mmio/transport.h"
#include "memory/guest_mem.h"

/* The summary every device gives the API's metrics; each module keeps its detailed counters. */
struct virtio_device_metrics {
	uint64_t requests;	   /* block requests, net frames, vsock packets, both directions */
	uint64_t bytes_to_guest;   /* payload bytes */
	uint64_t bytes_from_guest; /* payload bytes */
	uint64_t errors;	   /* I/O errors, drops, malformed requests from the driver */
};

struct virtio_device_class {
	const char *flag;  /* "drive", "net", "vsock", "rng": `ember run --FLAG SPEC` adds one */
	const char *usage; /* the SPEC grammar, for --help */
	/* Parse SPEC into a new config (malloc'd), checking what can be checked before boot. */
	int (*parse)(const char *spec, void **config);
	/* Free a config from parse; NULL means plain free(). */
	void (*free_config)(void *config);
	/* Two configs that cannot coexist (same id, same socket path): a message, or NULL. */
	const char *(*conflict)(const void *a, const void *b);
	/* Build the device (open its backend) as virtio-mmio device number `index`. */
	int (*create)(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		      struct virtio_mmio_dev **transport);
	/* Register the device's own file descriptors with the vmm thread's loop. */
	int (*start)(void *dev, struct event_loop *loop);
	void (*destroy)(void *dev);
	/* The summary counters; safe from the vmm thread while vCPUs run. */
	void (*metrics)(void *dev, struct virtio_device_metrics *m);
	/* Snapshots, on the vmm thread with every vCPU paused. quiesce: take no new work from the
	 * rings or the host side and finish what is in flight (completions pushed to the used
	 * ring), so guest memory and queue state hold still until unquiesce. */
	void (*quiesce)(void *dev);
	void (*unquiesce)(void *dev);
	/* After a restore (transport state loaded), before any vCPU runs: whatever the device must
	 * tell the guest about its new host side (vsock: a TRANSPORT_RESET event). NULL: nothing.
	 */
	int (*restored)(void *dev);
};

extern const struct virtio_device_class virtio_block_class;
extern const struct virtio_device_class virtio_net_class;
extern const struct virtio_device_class virtio_vsock_class;
extern const struct virtio_device_class virtio_rng_class;

/* Every class, for the command line and --help. */
extern const struct virtio_device_class *const virtio_device_classes[];
