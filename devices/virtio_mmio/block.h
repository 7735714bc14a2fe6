/* virtio-blk over a raw image file: requests go to the kernel through io_uring and complete on
 * the vmm thread. read / write / flush (fdatasync) / get-id; read-only drives fail writes with
 * an I/O error status. */
#pragma once

#include "devices/virtio_mmio/device.h"

#include <stdbool.h>
#include <stdint.h>

struct block_config {
	char *path;
	char *id; /* GET_ID answer, at most 20 bytes; defaults to the file name */
	bool read_only;
};

struct block_stats {
	uint64_t reads, writes, flushes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t io_errors, unsupported;
};

int block_config_parse(const char *spec, struct block_config *cfg);
