/* virtio-rng, the entropy device (virtio 1.2 section 5.4): one request queue whose
 * device-writable buffers the device fills from the host's getrandom(2). A guest seeds its
 * random number generator from it, and so does every clone restored from one snapshot, each
 * with bytes of its own. `--rng on` (or `--rng default`); at most one per VM. */
#pragma once

#include "devices/virtio_mmio/device.h"

#include <stdint.h>

/* Bytes filled per request at most, so that one kick cannot hold the vmm thread for long; a
 * device may fill less than a whole buffer (5.4.6.1), and the used length says how much. */
#define RNG_REQUEST_MAX (64u * 1024)

struct rng_stats {
	uint64_t requests;	 /* chains filled and returned */
	uint64_t bytes;		 /* random bytes written into them */
	uint64_t bad_requests;	 /* malformed chains (the device then needs a reset) */
	uint64_t entropy_errors; /* getrandom failures (the device then needs a reset) */
};

/* A copy of the counters, taken under the device's lock. The class's metrics() sums them up:
 * requests, bytes as bytes_to_guest, bad_requests + entropy_errors as errors. */
void rng_get_stats(void *dev, struct rng_stats *out);
