/* virtio-mmio version 2 and split virtqueues (virtio 1.x, sections 2.7 and
 * 4.2), all at CPL3: the registers are user-mapped MMIO, the rings plain RAM. */
#include "virtio.h"

#include "apic.h"
#include "arch.h"
#include "checks.h"
#include "console.h"
#include "dma.h"
#include "lib.h"

/* virtio-mmio registers (version 2). */
#define MMIO_MAGIC		 0x000
#define MMIO_VERSION		 0x004
#define MMIO_DEVICE_ID		 0x008
#define MMIO_VENDOR_ID		 0x00c
#define MMIO_DEVICE_FEATURES	 0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES	 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL		 0x030
#define MMIO_QUEUE_NUM_MAX	 0x034
#define MMIO_QUEUE_NUM		 0x038
#define MMIO_QUEUE_READY	 0x044
#define MMIO_QUEUE_NOTIFY	 0x050
#define MMIO_INTERRUPT_STATUS	 0x060
#define MMIO_INTERRUPT_ACK	 0x064
#define MMIO_STATUS		 0x070
#define MMIO_QUEUE_DESC_LOW	 0x080
#define MMIO_QUEUE_DESC_HIGH	 0x084
#define MMIO_QUEUE_DRIVER_LOW	 0x090
#define MMIO_QUEUE_DRIVER_HIGH	 0x094
#define MMIO_QUEUE_DEVICE_LOW	 0x0a0
#define MMIO_QUEUE_DEVICE_HIGH	 0x0a4
#define MMIO_CONFIG_GENERATION	 0x0fc
#define MMIO_CONFIG		 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */

#define STATUS_ACKNOWLEDGE	  1
#define STATUS_DRIVER		  2
#define STATUS_DRIVER_OK	  4
#define STATUS_FEATURES_OK	  8
#define STATUS_DEVICE_NEEDS_RESET 64
#define STATUS_FAILED		  128

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1

#define IOAPIC_PINS	 24
#define WAIT_TICK_US	 1000 /* LAPIC timer period while devices use interrupts */
#define RESET_TIMEOUT_US 1000000
#define MAX_WINDOWS	 16

struct window {
	uint64_t base, size;
	uint32_t irq;
};

static struct window windows[MAX_WINDOWS];
static unsigned nwindows;
static unsigned irq_users; /* devices open in interrupt mode */
static unsigned bad_tokens;

volatile uint64_t virtio_irqs[8];

/* ---------------------------------------------------------- command line */

/* A number as Linux's memparse reads it: decimal or 0x hex, then an optional
 * K/M/G suffix. Returns the characters used, 0 on error. */
static size_t parse_size(const char *s, size_t len, uint64_t *out)
{
	size_t n = 0;
	while (n < len && s[n] != '@' && s[n] != ':')
		n++;
	uint64_t shift = 0;
	size_t digits = n;
	if (n > 1) {
		char c = s[n - 1];
		if (c == 'k' || c == 'K')
			shift = 10;
		else if (c == 'm' || c == 'M')
			shift = 20;
		else if (c == 'g' || c == 'G')
			shift = 30;
		if (shift)
			digits--;
	}
	if (!parse_u64(s, digits, out))
		return 0;
	*out <<= shift;
	return n;
}

/* <size>@<base>:<irq>[:<platform device id>] */
void virtio_cmdline_device(const char *v, size_t len)
{
	struct window w;
	size_t n = parse_size(v, len, &w.size), i;
	uint64_t irq;

	if (!n || n >= len || v[n] != '@')
		goto bad;
	v += n + 1;
	len -= n + 1;
	n = parse_size(v, len, &w.base);
	if (!n || n >= len || v[n] != ':')
		goto bad;
	v += n + 1;
	len -= n + 1;
	for (i = 0; i < len && v[i] != ':'; i++)
		;
	if (!parse_u64(v, i, &irq) || irq > 255)
		goto bad;
	w.irq = (uint32_t)irq;
	if (nwindows < MAX_WINDOWS)
		windows[nwindows++] = w;
	return;
bad:
	bad_tokens++;
}

/* ------------------------------------------------------------ registers */

static uint32_t rd(const struct vdev *d, unsigned reg)
{
	return mmio_read32(d->base + reg);
}

static void wr(const struct vdev *d, unsigned reg, uint32_t v)
{
	mmio_write32(d->base + reg, v);
}

static void add_status(struct vdev *d, uint32_t bits)
{
	wr(d, MMIO_STATUS, rd(d, MMIO_STATUS) | bits);
}

static uint64_t device_features(struct vdev *d)
{
	wr(d, MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = rd(d, MMIO_DEVICE_FEATURES);
	wr(d, MMIO_DEVICE_FEATURES_SEL, 1);
	uint64_t hi = rd(d, MMIO_DEVICE_FEATURES);
	return lo | hi << 32;
}

/* The spec: write 0, then wait until the status reads back 0. */
static bool reset(struct vdev *d)
{
	uint64_t end = tsc_after_us(RESET_TIMEOUT_US);

	wr(d, MMIO_STATUS, 0);
	while (rd(d, MMIO_STATUS)) {
		if (tsc_passed(end))
			return false;
		delay_us(10);
	}
	return true;
}

const char *virtio_type_name(uint32_t id)
{
	switch (id) {
	case VIRTIO_ID_NET:
		return "net";
	case VIRTIO_ID_BLOCK:
		return "blk";
	case VIRTIO_ID_VSOCK:
		return "vsock";
	case VIRTIO_ID_RNG:
		return "rng";
	default:
		return "other";
	}
}

uint8_t virtio_cfg8(struct vdev *d, unsigned off)
{
	return mmio_read8(d->base + MMIO_CONFIG + off);
}

uint16_t virtio_cfg16(struct vdev *d, unsigned off)
{
	return mmio_read16(d->base + MMIO_CONFIG + off);
}

uint32_t virtio_cfg32(struct vdev *d, unsigned off)
{
	return rd(d, MMIO_CONFIG + off);
}

uint64_t virtio_cfg64(struct vdev *d, unsigned off)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t gen = rd(d, MMIO_CONFIG_GENERATION);
		uint64_t lo = rd(d, MMIO_CONFIG + off);
		uint64_t hi = rd(d, MMIO_CONFIG + off + 4);
		if (rd(d, MMIO_CONFIG_GENERATION) == gen)
			return lo | hi << 32;
	}
	check_fail("%s at 0x%lx: ConfigGeneration never settles", virtio_type_name(d->device_id),
		   d->base);
}

bool virtio_has(const struct vdev *d, unsigned feature)
{
	return (d->features >> feature) & 1;
}

/* --------------------------------------------------------------- probing */

void virtio_open(struct vdev *d, uint32_t device_id, uint64_t wanted)
{
	bool found = false;

	memset(d, 0, sizeof(*d));
	if (bad_tokens)
		kprintf("virtio: %u malformed virtio_mmio.device= tokens ignored\n", bad_tokens);
	if (!nwindows)
		check_fail("no virtio_mmio.device= on the command line");
	for (unsigned i = 0; i < nwindows; i++) {
		struct vdev probe = {
		    .base = windows[i].base, .size = windows[i].size, .irq = windows[i].irq};
		if (probe.base + 0x100 > mapped_top() || probe.base < KERNEL_END) {
			kprintf("virtio: window 0x%lx outside the usable map, skipped\n",
				probe.base);
			continue;
		}
		uint32_t magic = rd(&probe, MMIO_MAGIC);
		if (magic != VIRTIO_MMIO_MAGIC) {
			kprintf("virtio: nothing at 0x%lx (magic 0x%x)\n", probe.base, magic);
			continue;
		}
		probe.version = rd(&probe, MMIO_VERSION);
		probe.device_id = rd(&probe, MMIO_DEVICE_ID);
		if (!probe.device_id)
			continue; /* a transport without a device */
		probe.offered = device_features(&probe);
		kprintf("virtio: %s at 0x%lx irq %u features=0x%lx",
			virtio_type_name(probe.device_id), probe.base, probe.irq, probe.offered);
		if (probe.device_id != VIRTIO_ID_NET && probe.device_id != VIRTIO_ID_BLOCK &&
		    probe.device_id != VIRTIO_ID_VSOCK && probe.device_id != VIRTIO_ID_RNG)
			kprintf(" id=%u", probe.device_id);
		if (probe.version != 2)
			kprintf(" version=%u (not supported)", probe.version);
		kprintf("\n");
		if (!found && probe.device_id == device_id && probe.version == 2) {
			*d = probe;
			found = true;
		}
	}
	if (!found)
		check_fail("no virtio %s device (version 2)", virtio_type_name(device_id));

	if (!reset(d))
		check_fail("%s at 0x%lx: status stays 0x%x after reset",
			   virtio_type_name(device_id), d->base, rd(d, MMIO_STATUS));
	add_status(d, STATUS_ACKNOWLEDGE);
	add_status(d, STATUS_DRIVER);
	d->offered = device_features(d);
	wanted |= 1ull << VIRTIO_F_VERSION_1;
	if (opts.virtio_event_idx)
		wanted |= 1ull << VIRTIO_F_RING_EVENT_IDX;
	d->features = d->offered & wanted;
	if (!virtio_has(d, VIRTIO_F_VERSION_1)) {
		add_status(d, STATUS_FAILED);
		check_fail("%s at 0x%lx does not offer VIRTIO_F_VERSION_1",
			   virtio_type_name(device_id), d->base);
	}
	wr(d, MMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	wr(d, MMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	add_status(d, STATUS_FEATURES_OK);
	if (!(rd(d, MMIO_STATUS) & STATUS_FEATURES_OK)) {
		add_status(d, STATUS_FAILED);
		check_fail("%s at 0x%lx refused features 0x%lx (FEATURES_OK not kept)",
			   virtio_type_name(device_id), d->base, d->features);
	}
	d->irq_mode = opts.virtio_irq && d->irq < IOAPIC_PINS;
	if (opts.virtio_irq && !d->irq_mode)
		kprintf("virtio: irq %u beyond the IOAPIC's %u pins, polling instead\n", d->irq,
			IOAPIC_PINS);
}

/* ---------------------------------------------------------------- queues */

/* avail: flags, idx, ring[size], used_event. */
#define AVAIL_FLAGS	 0
#define AVAIL_IDX	 1
#define AVAIL_RING(i)	 (2 + (i))
#define USED_EVENT(size) (2 + (size))
/* used: flags, idx, ring (8 bytes an entry), avail_event. */
#define USED_FLAGS	  0
#define USED_IDX	  1
#define AVAIL_EVENT(size) (2 + 4 * (size))

static bool event_idx(const struct virtq *q)
{
	return virtio_has(q->dev, VIRTIO_F_RING_EVENT_IDX);
}

/* Interrupt suppression: when polling, ask for none (NO_INTERRUPT, or a
 * used_event just behind what we reaped, which the device never crosses);
 * with interrupts, ask for one at the next used entry. */
static void set_used_event(struct virtq *q)
{
	if (q->dev->irq_mode)
		q->avail[USED_EVENT(q->size)] = q->last_used;
	else
		q->avail[USED_EVENT(q->size)] = (uint16_t)(q->last_used - 1);
}

struct virtq *virtio_queue(struct vdev *d, unsigned index, unsigned max_size)
{
	if (index >= VIRTIO_MAX_QUEUES)
		check_fail("queue %u beyond the driver's %u", index, VIRTIO_MAX_QUEUES);
	struct virtq *q = &d->queues[index];
	memset(q, 0, sizeof(*q));
	q->dev = d;
	q->index = (uint16_t)index;

	wr(d, MMIO_QUEUE_SEL, index);
	if (rd(d, MMIO_QUEUE_READY))
		check_fail("%s queue %u: QueueReady already set after reset",
			   virtio_type_name(d->device_id), index);
	uint32_t max = rd(d, MMIO_QUEUE_NUM_MAX);
	if (!max)
		check_fail("%s queue %u not available (QueueNumMax 0)",
			   virtio_type_name(d->device_id), index);
	uint32_t size = 1;
	while (size * 2 <= max && size * 2 <= max_size && size < 32768)
		size *= 2;
	q->size = (uint16_t)size;

	uint64_t desc_bytes = 16ull * size, avail_bytes = 6 + 2ull * size;
	uint64_t used_off = (desc_bytes + avail_bytes + 4095) & ~4095ull;
	uint8_t *mem = dma_alloc(used_off + 6 + 8ull * size, 4096);
	q->desc = (struct vring_desc *)mem;
	q->avail = (volatile uint16_t *)(mem + desc_bytes);
	q->used = (volatile uint16_t *)(mem + used_off);
	q->used_ring = (volatile struct vring_used_elem *)(mem + used_off + 4);
	q->cookie = dma_alloc(8ull * size, 16);
	q->write_len = dma_alloc(4ull * size, 16);
	q->chain_len = dma_alloc(size, 16);
	for (uint32_t i = 0; i < size; i++)
		q->desc[i].next = (uint16_t)((i + 1) % size); /* in range even at the end */
	q->free_head = 0;
	q->num_free = (uint16_t)size;
	q->avail[AVAIL_FLAGS] = d->irq_mode ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	set_used_event(q);

	wr(d, MMIO_QUEUE_NUM, size);
	wr(d, MMIO_QUEUE_DESC_LOW, (uint32_t)dma_addr(q->desc));
	wr(d, MMIO_QUEUE_DESC_HIGH, (uint32_t)(dma_addr(q->desc) >> 32));
	wr(d, MMIO_QUEUE_DRIVER_LOW, (uint32_t)dma_addr(q->avail));
	wr(d, MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(dma_addr(q->avail) >> 32));
	wr(d, MMIO_QUEUE_DEVICE_LOW, (uint32_t)dma_addr(q->used));
	wr(d, MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(dma_addr(q->used) >> 32));
	wr(d, MMIO_QUEUE_READY, 1);
	if (index + 1 > d->nqueues)
		d->nqueues = index + 1;
	return q;
}

int virtq_add(struct virtq *q, const struct vbuf *bufs, unsigned n, uint64_t cookie)
{
	if (!n || n > q->num_free || n > 255)
		return -1;
	uint16_t head = q->free_head, i = head, last = head;
	uint32_t wlen = 0;
	for (unsigned k = 0; k < n; k++) {
		struct vring_desc *dsc = &q->desc[i];
		dsc->addr = dma_addr(bufs[k].addr);
		dsc->len = bufs[k].len;
		dsc->flags = (uint16_t)((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
					(k + 1 < n ? VRING_DESC_F_NEXT : 0));
		if (bufs[k].write)
			wlen += bufs[k].len;
		last = i;
		i = dsc->next; /* the free list runs through the next fields */
	}
	q->free_head = q->desc[last].next;
	q->num_free = (uint16_t)(q->num_free - n);
	q->cookie[head] = cookie;
	q->write_len[head] = wlen;
	q->chain_len[head] = (uint8_t)n;

	q->avail[AVAIL_RING(q->avail_idx & (q->size - 1))] = head;
	virtio_barrier(); /* the ring entry before the index (x86 keeps store order) */
	q->avail_idx++;
	q->avail[AVAIL_IDX] = q->avail_idx;
	q->adds++;
	return head;
}

void virtq_kick(struct virtq *q)
{
	uint16_t old = q->kicked_idx, now = q->avail_idx;
	bool notify;

	if (old == now)
		return;
	/* The avail index must be visible before we read the device's
	 * suppression fields: a store-load order x86 keeps only with a fence. */
	virtio_mb();
	q->kicked_idx = now;
	if (event_idx(q)) {
		uint16_t ev = q->used[AVAIL_EVENT(q->size)];
		notify = (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		notify = !(q->used[USED_FLAGS] & VRING_USED_F_NO_NOTIFY);
	}
	if (notify) {
		wr(q->dev, MMIO_QUEUE_NOTIFY, q->index);
		q->kicks++;
	}
}

bool virtq_pending(const struct virtq *q)
{
	return q->used[USED_IDX] != q->last_used;
}

bool virtq_get(struct virtq *q, uint64_t *cookie, uint32_t *len)
{
	uint16_t used_idx = q->used[USED_IDX];

	if (used_idx == q->last_used)
		return false;
	if ((uint16_t)(used_idx - q->last_used) > q->size)
		check_fail("%s queue %u: used idx %u runs %u ahead of %u (size %u)",
			   virtio_type_name(q->dev->device_id), q->index, used_idx,
			   (uint16_t)(used_idx - q->last_used), q->last_used, q->size);
	virtio_barrier(); /* entries after the index (x86 keeps load order) */
	struct vring_used_elem e = q->used_ring[q->last_used & (q->size - 1)];
	if (e.id >= q->size || !q->chain_len[e.id])
		check_fail("%s queue %u: used id %u is not a chain in flight",
			   virtio_type_name(q->dev->device_id), q->index, e.id);
	if (e.len > q->write_len[e.id])
		check_fail("%s queue %u: used len %u beyond the chain's %u writable bytes",
			   virtio_type_name(q->dev->device_id), q->index, e.len,
			   q->write_len[e.id]);
	uint16_t head = (uint16_t)e.id, tail = head;
	for (unsigned k = 1; k < q->chain_len[head]; k++)
		tail = q->desc[tail].next;
	q->desc[tail].next = q->free_head;
	q->free_head = head;
	q->num_free = (uint16_t)(q->num_free + q->chain_len[head]);
	q->chain_len[head] = 0;
	*cookie = q->cookie[head];
	*len = e.len;
	q->last_used++;
	if (event_idx(q))
		set_used_event(q);
	return true;
}

/* ------------------------------------------------------- start and stop */

static void irq_start(struct vdev *d)
{
	d->vector = VEC_VIRTIO_BASE + (int)(d->irq % VIRTIO_VECTORS);
	if (!irq_users++) {
		pic_mask_all();
		lapic_enable();
		lapic_write(LAPIC_TIMER_DIV, 0x0b); /* divide by 1: 1 GHz on KVM and QEMU */
		lapic_write(LAPIC_LVT_TIMER, VEC_TIMER | LVT_TIMER_PERIODIC);
		lapic_write(LAPIC_TIMER_INIT, WAIT_TICK_US * 1000);
	}
	d->irqs_before = virtio_irqs[d->vector - VEC_VIRTIO_BASE];
	ioapic_route(d->irq, (uint8_t)d->vector, lapic_id());
	irq_enable();
}

static void irq_stop(struct vdev *d)
{
	ioapic_mask(d->irq);
	if (!--irq_users) {
		irq_disable();
		lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
		lapic_write(LAPIC_TIMER_INIT, 0);
	}
}

void virtio_driver_ok(struct vdev *d)
{
	if (d->irq_mode)
		irq_start(d);
	add_status(d, STATUS_DRIVER_OK);
	uint32_t st = rd(d, MMIO_STATUS);
	if (st & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED))
		check_fail("%s at 0x%lx: status 0x%x after DRIVER_OK",
			   virtio_type_name(d->device_id), d->base, st);
}

void virtio_check_status(struct vdev *d)
{
	uint32_t st = rd(d, MMIO_STATUS);
	if (st & (STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED))
		check_fail("%s at 0x%lx: device status 0x%x (%s)", virtio_type_name(d->device_id),
			   d->base, st,
			   st & STATUS_DEVICE_NEEDS_RESET ? "DEVICE_NEEDS_RESET" : "FAILED");
}

uint64_t virtio_irq_count(const struct vdev *d)
{
	return d->irq_mode ? virtio_irqs[d->vector - VEC_VIRTIO_BASE] - d->irqs_before : 0;
}

void virtio_close(struct vdev *d)
{
	if (!d->base)
		return;
	if (d->irq_mode)
		irq_stop(d);
	if (!reset(d))
		check_fail("%s at 0x%lx: status stays 0x%x after reset",
			   virtio_type_name(d->device_id), d->base, rd(d, MMIO_STATUS));
	d->base = 0;
}

void virtio_wait(struct vdev *d)
{
	if (!d->irq_mode) {
		for (int i = 0; i < 16; i++)
			cpu_relax();
		return;
	}
	irq_disable();
	uint32_t isr = rd(d, MMIO_INTERRUPT_STATUS);
	if (isr)
		wr(d, MMIO_INTERRUPT_ACK, isr);
	if (isr & 2) /* configuration change: perhaps DEVICE_NEEDS_RESET */
		virtio_check_status(d);
	bool pending = false;
	for (unsigned i = 0; i < d->nqueues; i++) {
		struct virtq *q = &d->queues[i];
		if (!q->size)
			continue;
		if (event_idx(q))
			set_used_event(q);
		virtio_mb(); /* used_event before we look at used->idx */
		pending |= virtq_pending(q);
	}
	if (!pending)
		__asm__ volatile("int %0" : : "i"(VEC_SERVICE), "a"(SERVICE_WAIT) : "memory");
	irq_enable();
}
