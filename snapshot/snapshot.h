/* Snapshots: a paused VM written to a state file (snapshot.proto) and a memory file, and a VM
 * built again from them. The memory file is a 4 KiB header page (magic, the snapshot's id, the RAM
 * size) followed by guest RAM in guest_mem's layout, sparse where RAM is zero, so a restore maps
 * it MAP_PRIVATE at offset 4096 and every clone shares the pages it has not written.
 *
 * Files are written under a temporary name, fsynced and renamed, the memory file first: a crash
 * or a failure never leaves a half snapshot under the final names, nor touches what was there. */
#pragma once

#include "monitor/vm.h"

#include <stdbool.h>
#include <stdint.h>

#define SNAPSHOT_FORMAT	    1
#define SNAPSHOT_MEM_HEADER 4096
#define SNAPSHOT_STATE_MAX  (64u << 20)

/* A file to write or read: a path, or an open descriptor (then `path` names it in messages). */
struct snapshot_file {
	const char *path;
	int fd; /* -1: open path */
};

/* Per-VM bookkeeping between snapshots (diffs need to know what changed since the base). */
struct snapshot_tracker {
	bool have_base;
	uint8_t base_id[16];
	uint64_t *since_base; /* pages written since the base: KVM's dirty log and device writes */
	uint64_t npages;
};

/* Write the paused VM. diff: only the pages written since the last full snapshot this monitor
 * made (refused when there is none). */
int snapshot_create(struct vm *vm, struct snapshot_tracker *t, const struct snapshot_file *state,
		    const struct snapshot_file *mem, bool diff);
void snapshot_tracker_free(struct snapshot_tracker *t);

/* A snapshot read back and checked (checksum, format, sizes, the memory file's id and size),
 * before anything of a VM exists. */
struct snapshot;

/* Overrides a restore may give: a clone's own host side. NULL / -1 keep the saved value. */
struct snapshot_overrides {
	const char *vsock_uds;
	uint64_t vsock_cid; /* 0: keep */
	const char *tap;
	int tap_fd;
	const char *mac;
};

/* Read and check the state file and the memory file (and the diff's memory file on top of its
 * base, where diff_mem is given). Nothing is modified. */
int snapshot_open(struct snapshot **out, const struct snapshot_file *state,
		  const struct snapshot_file *mem, const struct snapshot_file *diff_mem);
void snapshot_close(struct snapshot *s);
/* The VM configuration to build for it: vCPUs, memory, devices (with the overrides), and the
 * memory file to map. Device configs are new allocations the caller owns (vm_config's rule). */
int snapshot_vm_config(struct snapshot *s, const struct snapshot_overrides *o,
		       struct vm_config *cfg);
/* Load the saved state into a VM built from that configuration (vm_create), before vm_start:
 * diff pages, interrupt controllers, clock, vCPUs, devices. The guest's clocks move forward by
 * the time since the snapshot was made. */
int snapshot_restore(struct snapshot *s, struct vm *vm);
