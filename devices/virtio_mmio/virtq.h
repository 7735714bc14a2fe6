/* Split virtqueues as a device sees them. Everything in the rings comes from the guest and is
 * validated here: ring addresses when the queue is made ready, and on every pop the avail index,
 * the head, each descriptor's index, address and length, the chain's length (bounded by the queue
 * size, so loops end) and the readable-before-writable order. A violation is reported to the
 * caller, which puts the device into NEEDS_RESET. */
#pragma once

#include "memory/guest_mem.h"

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 256

/* What a snapshot needs to bring the queue back: plain data, no pointers. */
struct virtq_state {
	uint16_t num;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t used_idx;   /* next used ring slot to fill */
	uint16_t signalled_used;
	bool signalled_used_valid;
};

struct virtq {
	struct virtq_state s;
	uint16_t max_num;
	bool event_idx;
	const struct guest_mem *gm;
	/* host views of the rings, set when the queue becomes ready */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t chains, bad_chains;
};

struct virtq_seg {
	uint8_t *host;
	uint32_t len;
	bool writable;
};

struct virtq_chain {
	uint16_t head;
	unsigned nsegs;
	unsigned nreadable; /* segs[0..nreadable) are device-readable, the rest writable */
	uint64_t readable_len, writable_len;
	struct virtq_seg segs[VIRTQ_MAX_SIZE];
};

void virtq_init(struct virtq *q, const struct guest_mem *gm, uint16_t max_num);
/* Forget everything the driver set (device reset). */
void virtq_reset(struct virtq *q);
/* Check the ring addresses and map them; fails (with a message) if they are not guest RAM. */
int virtq_activate(struct virtq *q, bool event_idx);
/* Snapshots: load a saved state (untrusted: it comes from a file) into a queue fresh from
 * virtq_init, with guest memory already restored. A ready queue is checked and mapped as
 * virtq_activate does it, and its indices must agree with each other (at most a queue's worth
 * of chains in flight) and with the used index in guest memory. On failure (message in err)
 * the queue is left as it was. */
int virtq_restore(struct virtq *q, const struct virtq_state *s, bool event_idx);
/* Chains taken and not yet returned. */
uint16_t virtq_in_flight(const struct virtq *q);
/* 1: a chain was taken; 0: none available; <0: the driver broke the rules (message in err).
 * For diff snapshots, the chain's writable buffers (and avail_event) are marked dirty in guest
 * memory here: the device writes them before it pushes the chain. */
int virtq_pop(struct virtq *q, struct virtq_chain *c);
/* Put back the last chain popped, to be popped again later (out of host buffers). */
void virtq_unpop(struct virtq *q);
/* Return a chain to the driver with `written` bytes written into its writable part; the used
 * ring entry and index it writes are marked dirty. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/* After pushes: whether the driver wants an interrupt now (EVENT_IDX or NO_INTERRUPT). */
bool virtq_should_notify(struct virtq *q);
/* Copy helpers across a chain's segments. */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len);
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src,
			   uint64_t len);
