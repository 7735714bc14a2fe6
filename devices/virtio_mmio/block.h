/* virtio-blk over a raw image file: requests go to the kernel through io_uring and complete on
 * the vmm thread. read / write / flush (fdatasync) / get-id; read-only drives fail writes with
 * an I/O error status. The backing file may be swapped while the guest runs. */
#pragma once

#include "devices/virtio_mmio/device.h"

#include <stdbool.h>
#include <stdint.h>

/* Where the image comes from: a path Ember opens, or a descriptor it was handed (`fd=N` on the
 * command line, SCM_RIGHTS through the API).
 *
 * Descriptor ownership, the same rule for block and net: a config owns its fd, and the class's
 * free_config closes it; create() works on a dup of it. So a config may be freed at any time,
 * before or after create(), whatever create() returned. path and id are malloc'd strings that
 * free_config frees too. */
struct block_config {
	char *path; /* NULL when fd >= 0 */
	int fd;	    /* an open image, or -1: open path */
	char *id;   /* GET_ID answer, at most 20 bytes; defaults to the file name, or "fdN" */
	/* With fd >= 0 the fd's access mode must agree: an O_RDONLY fd needs a read-only drive. */
	bool read_only;
};

struct block_stats {
	uint64_t requests; /* every chain taken from the queue */
	uint64_t reads, writes, flushes, get_ids;
	uint64_t bytes_read, bytes_written; /* of requests that completed successfully */
	uint64_t io_errors;		    /* requests answered with VIRTIO_BLK_S_IOERR */
	uint64_t unsupported;		    /* request types this device does not know */
	uint64_t backing_updates;
};

/* "path=FILE|fd=N[,id=ID][,ro]"; fd=N must be open in this process and is the config's from then
 * on. */
int block_config_parse(const char *spec, struct block_config *cfg);
/* A copy of the counters, taken under the device's lock. The class's metrics() sums them up:
 * requests, bytes_read to the guest, bytes_written from it, io_errors + unsupported as errors. */
void block_get_stats(void *dev, struct block_stats *out);

/* Switch the drive to another image (the API's drive update). Call it on the vmm thread, which
 * reaps the device's completions; vCPUs may be running or paused. `fd` is dup'd (the caller keeps
 * its own) and checked as create() checks a new drive: a regular file or block device, opened
 * for reading, and for writing too unless the drive is read-only. `what` names it in messages
 * ("fd 7", a path). Requests already submitted finish on the old image, which closes with its
 * last completion; later requests go to the new one. When the size changes, the capacity in the
 * config space follows, the config generation moves and the guest gets a configuration-change
 * interrupt. On failure nothing changed. */
int block_update_backing(void *dev, int fd, const char *what);
