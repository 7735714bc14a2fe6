#include "devices/virtio_mmio/virtq.h"
#include "common/err.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>

void virtq_init(struct virtq *q, const struct guest_mem *gm, uint16_t max_num)
{
	memset(q, 0, sizeof(*q));
	q->gm = gm;
	q->max_num = max_num;
}

void virtq_reset(struct virtq *q)
{
	const struct guest_mem *gm = q->gm;
	uint16_t max = q->max_num;
	uint64_t chains = q->chains, bad = q->bad_chains;
	virtq_init(q, gm, max);
	q->chains = chains;
	q->bad_chains = bad;
}

int virtq_activate(struct virtq *q, bool event_idx)
{
	uint16_t n = q->s.num;
	if (n == 0 || n > q->max_num || (n & (n - 1)))
		return err_set(EINVAL, "queue size %u (must be a power of two up to %u)", n,
			       q->max_num);
	/* Alignment from the virtio spec (2.7): descriptors 16, avail 2, used 4. */
	if ((q->s.desc_gpa & 15) || (q->s.avail_gpa & 1) || (q->s.used_gpa & 3))
		return err_set(EINVAL, "misaligned ring addresses");
	uint64_t avail_len = 6 + 2ull * n; /* flags, idx, ring[n], used_event */
	uint64_t used_len = 6 + 8ull * n;  /* flags, idx, ring[n], avail_event */
	q->desc = gmem_ptr(q->gm, q->s.desc_gpa, 16ull * n);
	q->avail = gmem_ptr(q->gm, q->s.avail_gpa, avail_len);
	q->used = gmem_ptr(q->gm, q->s.used_gpa, used_len);
	if (!q->desc || !q->avail || !q->used) {
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return err_set(EFAULT,
			       "ring addresses outside guest RAM (desc 0x%llx avail 0x%llx "
			       "used 0x%llx, size %u)",
			       (unsigned long long)q->s.desc_gpa,
			       (unsigned long long)q->s.avail_gpa,
			       (unsigned long long)q->s.used_gpa, n);
	}
	q->event_idx = event_idx;
	q->s.ready = true;
	return 0;
}

int virtq_restore(struct virtq *q, const struct virtq_state *s, bool event_idx)
{
	if (s->num > q->max_num)
		return err_set(EINVAL, "queue size %u is above the device's maximum %u", s->num,
			       q->max_num);
	struct virtq saved = *q;
	q->s = *s;
	if (!s->ready)
		return 0;
	q->s.ready = false;
	int r = virtq_activate(q, event_idx);
	if (r < 0) {
		*q = saved;
		return r;
	}
	uint16_t in_flight = virtq_in_flight(q);
	uint16_t used_in_memory = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	if (in_flight > s->num)
		r = err_set(EINVAL,
			    "%u chains in flight (next avail %u, next used %u) in a %u-entry queue",
			    in_flight, s->last_avail, s->used_idx, s->num);
	else if (used_in_memory != s->used_idx)
		r = err_set(
		    EINVAL,
		    "used index %u in guest memory but %u in the saved state (state and memory "
		    "from different snapshots?)",
		    used_in_memory, s->used_idx);
	if (r < 0)
		*q = saved;
	return r;
}

uint16_t virtq_in_flight(const struct virtq *q)
{
	return (uint16_t)(q->s.last_avail - q->s.used_idx);
}

static int broken(struct virtq *q, const char *fmt, unsigned a, unsigned b)
{
	q->bad_chains++;
	char msg[160];
	snprintf(msg, sizeof(msg), fmt, a, b);
	return err_set(EPROTO, "%s", msg);
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	if (!q->s.ready || !q->avail)
		return 0;
	uint16_t n = q->s.num;
	uint16_t avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(avail_idx - q->s.last_avail);
	if (pending == 0)
		return 0;
	if (pending > n)
		return broken(q, "avail index moved %u entries ahead of a %u-entry queue", pending,
			      n);
	uint16_t head = q->avail->ring[q->s.last_avail % n];
	if (head >= n)
		return broken(q, "avail ring names descriptor %u of %u", head, n);

	c->head = head;
	c->nsegs = c->nreadable = 0;
	c->readable_len = c->writable_len = 0;
	uint16_t idx = head;
	for (;;) {
		if (c->nsegs >= n)
			return broken(q, "descriptor chain longer than the queue (%u): a loop?", n,
				      0);
		struct vring_desc d;
		memcpy(&d, &q->desc[idx], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT)
			return broken(q, "indirect descriptor %u, a feature not offered", idx, 0);
		if (d.len == 0)
			return broken(q, "descriptor %u has length 0", idx, 0);
		uint8_t *host = gmem_ptr(q->gm, d.addr, d.len);
		if (!host)
			return broken(q, "descriptor %u points outside guest RAM (%u bytes)", idx,
				      d.len);
		bool writable = d.flags & VRING_DESC_F_WRITE;
		if (!writable && c->nsegs > c->nreadable)
			return broken(q, "descriptor %u is readable after a writable one", idx, 0);
		c->segs[c->nsegs++] = (struct virtq_seg){host, d.len, writable};
		if (writable) {
			/* Diff snapshots: the device writes here before it pushes the chain (and
			 * devices quiesce before a snapshot). Marked here, where the host address
			 * is resolved, since the guest may rewrite its descriptors afterwards. */
			gmem_mark_dirty(q->gm, host, d.len);
			c->writable_len += d.len;
		} else {
			c->nreadable++;
			c->readable_len += d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= n)
			return broken(q, "descriptor %u chains to %u, past the queue", idx, d.next);
		idx = d.next;
	}
	q->s.last_avail++;
	q->chains++;
	if (q->event_idx) {
		/* Ask for a kick as soon as the driver adds past what we have taken. */
		uint16_t *avail_event = (uint16_t *)((uint8_t *)q->used + 4 + 8ull * n);
		__atomic_store_n(avail_event, q->s.last_avail, __ATOMIC_RELEASE);
		gmem_mark_dirty(q->gm, avail_event, sizeof(*avail_event));
	}
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->s.last_avail--;
	q->chains--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	if (!q->used)
		return;
	uint16_t n = q->s.num;
	struct vring_used_elem *e = &q->used->ring[q->s.used_idx % n];
	e->id = head;
	e->len = written;
	q->s.used_idx++;
	__atomic_store_n(&q->used->idx, q->s.used_idx, __ATOMIC_RELEASE);
	/* The chain's buffers were marked when it was popped. */
	gmem_mark_dirty(q->gm, e, sizeof(*e));
	gmem_mark_dirty(q->gm, &q->used->idx, sizeof(q->used->idx));
}

bool virtq_should_notify(struct virtq *q)
{
	if (!q->used)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t new_idx = q->s.used_idx;
	if (!q->event_idx)
		return !(__atomic_load_n(&q->avail->flags, __ATOMIC_ACQUIRE) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t old = q->s.signalled_used;
	bool valid = q->s.signalled_used_valid;
	q->s.signalled_used = new_idx;
	q->s.signalled_used_valid = true;
	if (!valid)
		return true;
	uint16_t used_event = __atomic_load_n(
	    (uint16_t *)((uint8_t *)q->avail + 4 + 2ull * q->s.num), __ATOMIC_ACQUIRE);
	return (uint16_t)(new_idx - used_event - 1) < (uint16_t)(new_idx - old);
}

/* Copy between a flat buffer and the readable (to_chain false) or writable (true) segments of a
 * chain, starting `offset` bytes into that part. */
static uint64_t chain_copy(const struct virtq_chain *c, uint64_t offset, uint8_t *buf, uint64_t len,
			   bool to_chain)
{
	unsigned first = to_chain ? c->nreadable : 0;
	unsigned end = to_chain ? c->nsegs : c->nreadable;
	uint64_t done = 0;
	for (unsigned i = first; i < end && done < len; i++) {
		const struct virtq_seg *s = &c->segs[i];
		if (offset >= s->len) {
			offset -= s->len;
			continue;
		}
		uint64_t n = s->len - offset;
		if (n > len - done)
			n = len - done;
		if (to_chain)
			memcpy(s->host + offset, buf + done, n);
		else
			memcpy(buf + done, s->host + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len)
{
	return chain_copy(c, offset, dst, len, false);
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src,
			   uint64_t len)
{
	return chain_copy(c, offset, (uint8_t *)src, len, true);
}
