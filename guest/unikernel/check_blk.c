/* blk and blk_bench: a virtio-blk driver (virtio 1.x section 5.2). Requests
 * go out as Linux sends them: a header descriptor, the data in page-sized
 * (functional check) or up to 64 KiB (benchmark) segments, a status byte. */
#include "arch.h"
#include "checks.h"
#include "console.h"
#include "dma.h"
#include "lib.h"
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_SEG_MAX  12
#define CFG_BLK_SIZE 20

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR	       512
#define PAGE	       4096
#define ID_BYTES       20
#define MAX_SLOTS      64
#define MAX_SEGS       128	   /* data descriptors a request may use */
#define BENCH_REQ      (128 << 10) /* benchmark request size */
#define BENCH_SEG      (64 << 10)  /* Linux's default maximum segment */
#define REQ_TIMEOUT_US 30000000

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk {
	struct vdev dev;
	struct virtq *q;
	uint64_t capacity; /* 512-byte sectors */
	uint32_t blk_size, seg_max, size_max;
	uint32_t max_segs; /* data segments per request we will use */
	bool ro, flush;
	struct blk_hdr *hdrs; /* one per slot */
	volatile uint8_t *status;
	uint32_t free_slots[MAX_SLOTS];
	uint32_t nfree;
};

static const char *status_name(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK:
		return "OK";
	case VIRTIO_BLK_S_IOERR:
		return "IOERR";
	case VIRTIO_BLK_S_UNSUPP:
		return "UNSUPP";
	case 0xff:
		return "unwritten";
	default:
		return "invalid";
	}
}

static void blk_open(struct blk *b)
{
	memset(b, 0, sizeof(*b));
	dma_reset();
	virtio_open(&b->dev, VIRTIO_ID_BLOCK,
		    1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
			1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_BLK_SIZE |
			1ull << VIRTIO_BLK_F_FLUSH);
	b->q = virtio_queue(&b->dev, 0, 256);
	b->hdrs = dma_alloc(sizeof(struct blk_hdr) * MAX_SLOTS, 64);
	b->status = dma_alloc(MAX_SLOTS, 64);
	virtio_driver_ok(&b->dev);

	b->capacity = virtio_cfg64(&b->dev, CFG_CAPACITY);
	b->ro = virtio_has(&b->dev, VIRTIO_BLK_F_RO);
	b->flush = virtio_has(&b->dev, VIRTIO_BLK_F_FLUSH);
	b->blk_size = virtio_has(&b->dev, VIRTIO_BLK_F_BLK_SIZE)
			  ? virtio_cfg32(&b->dev, CFG_BLK_SIZE)
			  : SECTOR;
	b->size_max =
	    virtio_has(&b->dev, VIRTIO_BLK_F_SIZE_MAX) ? virtio_cfg32(&b->dev, CFG_SIZE_MAX) : 0;
	b->seg_max =
	    virtio_has(&b->dev, VIRTIO_BLK_F_SEG_MAX) ? virtio_cfg32(&b->dev, CFG_SEG_MAX) : 0;
	b->max_segs = b->q->size - 2u;
	if (b->seg_max && b->seg_max < b->max_segs)
		b->max_segs = b->seg_max;
	if (b->max_segs > MAX_SEGS)
		b->max_segs = MAX_SEGS;
	if (!b->max_segs)
		check_fail("queue of %u entries leaves no room for data", b->q->size);
	for (uint32_t i = 0; i < MAX_SLOTS; i++)
		b->free_slots[i] = MAX_SLOTS - 1 - i;
	b->nfree = MAX_SLOTS;
	kprintf("blk: capacity=%lu blk_size=%u seg_max=%u size_max=%u queue=%u ro=%d flush=%d "
		"features=0x%lx\n",
		b->capacity, b->blk_size, b->seg_max, b->size_max, b->q->size, b->ro, b->flush,
		b->dev.features);
}

static void blk_close(struct blk *b)
{
	if (b->dev.irq_mode)
		kprintf("blk: interrupts=%lu\n", virtio_irq_count(&b->dev));
	virtio_close(&b->dev);
}

/* Segments a buffer of len bytes takes with pieces of at most seg bytes. */
static uint32_t segments(const struct blk *b, uint32_t len, uint32_t seg)
{
	if (b->size_max && seg > b->size_max)
		seg = b->size_max;
	return (len + seg - 1) / seg;
}

/* One request in slot: header, data, status. False when the ring is full. */
static bool blk_submit(struct blk *b, uint32_t slot, uint32_t type, uint64_t sector, void *buf,
		       uint32_t len, uint32_t seg)
{
	struct vbuf v[MAX_SEGS + 2];
	unsigned n = 0;
	bool device_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

	if (b->size_max && seg > b->size_max)
		seg = b->size_max;
	if (segments(b, len, seg) > b->max_segs)
		check_fail("internal: %u bytes in %u-byte segments exceed %u segments", len, seg,
			   b->max_segs);
	b->hdrs[slot] = (struct blk_hdr){.type = type, .sector = sector};
	b->status[slot] = 0xff;
	v[n++] = (struct vbuf){&b->hdrs[slot], sizeof(struct blk_hdr), false};
	for (uint32_t off = 0; off < len;) {
		uint32_t piece = len - off < seg ? len - off : seg;
		v[n++] = (struct vbuf){(uint8_t *)buf + off, piece, device_writes};
		off += piece;
	}
	v[n++] = (struct vbuf){(const void *)&b->status[slot], 1, true};
	return virtq_add(b->q, v, n, slot) >= 0;
}

/* Reap one completion; waits up to REQ_TIMEOUT_US. */
static uint32_t blk_complete(struct blk *b, uint32_t *written)
{
	uint64_t end = tsc_after_us(REQ_TIMEOUT_US), slot;
	uint32_t len;

	while (!virtq_get(b->q, &slot, &len)) {
		if (tsc_passed(end)) {
			virtio_check_status(&b->dev);
			check_fail("no completion within %u s (%u requests in flight)",
				   REQ_TIMEOUT_US / 1000000, virtq_in_flight(b->q));
		}
		virtio_wait(&b->dev);
	}
	if (slot >= MAX_SLOTS)
		check_fail("internal: bad cookie %lu", slot);
	if (written)
		*written = len;
	return (uint32_t)slot;
}

/* One request at a time, slot 0; returns its status. */
static uint8_t blk_sync(struct blk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
			uint32_t seg, uint32_t *written)
{
	if (!blk_submit(b, 0, type, sector, buf, len, seg))
		check_fail("internal: ring full with nothing in flight");
	virtq_kick(b->q);
	uint32_t slot = blk_complete(b, written);
	if (slot != 0)
		check_fail("completion for slot %u, only slot 0 in flight", slot);
	return b->status[0];
}

/* A transfer of any length, as page-segmented requests of at most 128 KiB. */
static uint8_t blk_rw(struct blk *b, uint32_t type, uint64_t sector, uint8_t *buf, uint64_t bytes)
{
	uint32_t seg = PAGE;
	if (b->size_max && b->size_max < seg)
		seg = b->size_max & ~(SECTOR - 1u);
	if (!seg)
		check_fail("size_max=%u is below a sector", b->size_max);
	uint64_t chunk = (uint64_t)b->max_segs * seg;
	if (chunk > BENCH_REQ)
		chunk = BENCH_REQ;
	while (bytes) {
		uint32_t n = (uint32_t)(bytes < chunk ? bytes : chunk);
		uint8_t st = blk_sync(b, type, sector, buf, n, seg, 0);
		if (st != VIRTIO_BLK_S_OK)
			return st;
		buf += n;
		sector += n / SECTOR;
		bytes -= n;
	}
	return VIRTIO_BLK_S_OK;
}

static void fill_pattern(uint8_t *p, uint64_t n, uint64_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static void region_check(const struct blk *b, const char *what, uint64_t start, uint64_t count)
{
	if (!count || start + count > b->capacity || start + count < start)
		check_fail("%s [%lu, +%lu) outside the disk's %lu sectors", what, start, count,
			   b->capacity);
	if (count > (1ull << 32) / SECTOR)
		check_fail("%s of %lu sectors is too large", what, count);
}

/* GET_ID: up to 20 bytes, NUL-padded (not terminated when all 20 are used). */
static void blk_get_id(struct blk *b, char *out)
{
	uint8_t *id = dma_alloc(ID_BYTES, 16);
	uint8_t st = blk_sync(b, VIRTIO_BLK_T_GET_ID, 0, id, ID_BYTES, PAGE, 0);

	out[0] = 0;
	if (st == VIRTIO_BLK_S_UNSUPP) {
		kprintf("blk: GET_ID unsupported\n");
		return;
	}
	if (st != VIRTIO_BLK_S_OK)
		check_fail("GET_ID status %u (%s)", st, status_name(st));
	int n = 0;
	for (; n < ID_BYTES && id[n]; n++)
		out[n] = (id[n] >= 0x20 && id[n] < 0x7f && id[n] != '"') ? (char)id[n] : '?';
	out[n] = 0;
}

void check_blk(void)
{
	struct blk b;
	char id[ID_BYTES + 1];

	blk_open(&b);

	/* (a) read [0, blk_read_sectors) */
	region_check(&b, "blk_read_sectors", 0, opts.blk_read_sectors);
	uint64_t rbytes = opts.blk_read_sectors * SECTOR;
	uint8_t *rbuf = dma_alloc(rbytes, PAGE);
	uint8_t st = blk_rw(&b, VIRTIO_BLK_T_IN, 0, rbuf, rbytes);
	if (st != VIRTIO_BLK_S_OK)
		check_fail("read of sectors [0, %lu) status %u (%s)", opts.blk_read_sectors, st,
			   status_name(st));
	uint32_t read_crc = crc32_ieee(rbuf, rbytes);

	if (b.ro) {
		/* A read-only device must refuse a write with IOERR. */
		uint8_t *one = dma_alloc(SECTOR, PAGE);
		fill_pattern(one, SECTOR, opts.blk_seed);
		uint64_t at = opts.blk_write_at < b.capacity ? opts.blk_write_at : 0;
		st = blk_sync(&b, VIRTIO_BLK_T_OUT, at, one, SECTOR, PAGE, 0);
		if (st == VIRTIO_BLK_S_OK)
			check_fail("capacity=%lu ro=1 but a write to sector %lu succeeded",
				   b.capacity, at);
		if (st != VIRTIO_BLK_S_IOERR)
			check_fail("capacity=%lu ro=1 write status %u (%s), expected IOERR",
				   b.capacity, st, status_name(st));
		blk_get_id(&b, id);
		check_pass("capacity=%lu read_crc32=%08x id=\"%s\" ro=1 write_refused=1",
			   b.capacity, read_crc, id);
		blk_close(&b);
		return;
	}

	/* (b) pattern write, flush, read back */
	region_check(&b, "blk_write_at/blk_write_sectors", opts.blk_write_at,
		     opts.blk_write_sectors);
	uint64_t wbytes = opts.blk_write_sectors * SECTOR;
	uint8_t *wbuf = dma_alloc(wbytes, PAGE), *vbuf = dma_alloc(wbytes, PAGE);
	fill_pattern(wbuf, wbytes, opts.blk_seed);
	st = blk_rw(&b, VIRTIO_BLK_T_OUT, opts.blk_write_at, wbuf, wbytes);
	if (st != VIRTIO_BLK_S_OK)
		check_fail("write of [%lu, +%lu) status %u (%s)", opts.blk_write_at,
			   opts.blk_write_sectors, st, status_name(st));
	if (b.flush) {
		st = blk_sync(&b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, PAGE, 0);
		if (st != VIRTIO_BLK_S_OK)
			check_fail("flush status %u (%s)", st, status_name(st));
	}
	memset(vbuf, 0x5a, wbytes);
	st = blk_rw(&b, VIRTIO_BLK_T_IN, opts.blk_write_at, vbuf, wbytes);
	if (st != VIRTIO_BLK_S_OK)
		check_fail("read-back status %u (%s)", st, status_name(st));
	for (uint64_t i = 0; i < wbytes; i++)
		if (vbuf[i] != wbuf[i])
			check_fail(
			    "read-back mismatch at byte %lu of sector %lu: read 0x%02x, wrote "
			    "0x%02x",
			    i, opts.blk_write_at + i / SECTOR, vbuf[i], wbuf[i]);

	/* (c) GET_ID */
	blk_get_id(&b, id);
	check_pass("capacity=%lu read_crc32=%08x wrote=%lu flushed=%d id=\"%s\" ro=0", b.capacity,
		   read_crc, opts.blk_write_sectors, b.flush, id);
	blk_close(&b);
}

/* ------------------------------------------------------------- benchmark */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

struct bench {
	struct blk *b;
	uint32_t qd, req_bytes, seg;
	uint8_t *bufs[MAX_SLOTS];
	uint64_t done;
};

static uint32_t take_slot(struct blk *b)
{
	if (!b->nfree)
		check_fail("internal: no free slot");
	return b->free_slots[--b->nfree];
}

static void put_slot(struct blk *b, uint32_t slot)
{
	b->free_slots[b->nfree++] = slot;
}

static void bench_done(struct bench *bn, uint32_t type, uint32_t slot)
{
	struct blk *b = bn->b;
	if (b->status[slot] != VIRTIO_BLK_S_OK)
		check_fail("%s request status %u (%s)", type == VIRTIO_BLK_T_IN ? "read" : "write",
			   b->status[slot], status_name(b->status[slot]));
	put_slot(b, slot);
	bn->done++;
}

/* Wait for one completion, then take whatever else has completed. */
static void bench_reap(struct bench *bn, uint32_t type)
{
	uint64_t slot;
	uint32_t len;

	bench_done(bn, type, blk_complete(bn->b, &len));
	while (virtq_get(bn->b->q, &slot, &len))
		bench_done(bn, type, (uint32_t)slot);
}

/* Sequential transfer of bytes from sector 0; returns TSC cycles taken. */
static uint64_t bench_seq(struct bench *bn, uint32_t type, uint64_t bytes)
{
	struct blk *b = bn->b;
	uint64_t nreq = bytes / bn->req_bytes, next = 0, t0 = rdtsc();

	bn->done = 0;
	while (bn->done < nreq) {
		bool added = false;
		while (next < nreq && MAX_SLOTS - b->nfree < bn->qd) {
			uint32_t slot = take_slot(b);
			if (!blk_submit(b, slot, type, next * (bn->req_bytes / SECTOR),
					bn->bufs[slot], bn->req_bytes, bn->seg)) {
				put_slot(b, slot);
				break;
			}
			next++;
			added = true;
		}
		if (added)
			virtq_kick(b->q);
		bench_reap(bn, type);
	}
	return rdtsc() - t0;
}

/* Random 4 KiB reads for secs seconds; returns completions, cycles in *cycles. */
static uint64_t bench_rand(struct bench *bn, uint64_t secs, uint64_t *cycles)
{
	struct blk *b = bn->b;
	uint64_t pages = b->capacity / (PAGE / SECTOR), t0 = rdtsc();
	uint64_t end = t0 + secs * tsc_hz();

	bn->done = 0;
	for (;;) {
		bool more = !tsc_passed(end), added = false;
		while (more && MAX_SLOTS - b->nfree < bn->qd) {
			uint32_t slot = take_slot(b);
			uint64_t sector = (rng_next() % pages) * (PAGE / SECTOR);
			if (!blk_submit(b, slot, VIRTIO_BLK_T_IN, sector, bn->bufs[slot], PAGE,
					PAGE)) {
				put_slot(b, slot);
				break;
			}
			added = true;
		}
		if (added)
			virtq_kick(b->q);
		if (!more && b->nfree == MAX_SLOTS)
			break;
		bench_reap(bn, VIRTIO_BLK_T_IN);
	}
	*cycles = rdtsc() - t0;
	return bn->done;
}

/* 10^6 bytes per second. */
static uint64_t mbs(uint64_t bytes, uint64_t cycles)
{
	if (!cycles)
		return 0;
	return (bytes / 1000) * (tsc_hz() / 1000) / cycles;
}

void check_blk_bench(void)
{
	struct blk b;
	struct bench bn = {.b = &b};

	blk_open(&b);
	uint64_t bytes = opts.blk_bench_mib << 20;
	if (bytes > b.capacity * SECTOR)
		bytes = b.capacity * SECTOR;
	bytes -= bytes % BENCH_REQ;
	if (!bytes || b.capacity < PAGE / SECTOR)
		check_fail("capacity=%lu sectors is below one %u KiB request", b.capacity,
			   BENCH_REQ >> 10);

	bn.req_bytes = BENCH_REQ;
	bn.seg = BENCH_SEG;
	if (b.size_max && b.size_max < bn.seg)
		bn.seg = b.size_max & ~(SECTOR - 1u);
	if (!bn.seg)
		check_fail("size_max=%u is below a sector", b.size_max);
	/* Fewer, larger segments if seg_max demands it. */
	while (segments(&b, BENCH_REQ, bn.seg) > b.max_segs && bn.seg < BENCH_REQ)
		bn.seg *= 2;
	if (segments(&b, BENCH_REQ, bn.seg) > b.max_segs)
		check_fail("seg_max=%u size_max=%u cannot carry a %u KiB request", b.seg_max,
			   b.size_max, BENCH_REQ >> 10);
	uint32_t descs = 2 + segments(&b, BENCH_REQ, bn.seg);
	bn.qd = (uint32_t)(opts.blk_bench_qd ? opts.blk_bench_qd : 1);
	if (bn.qd > MAX_SLOTS)
		bn.qd = MAX_SLOTS;
	if (bn.qd > b.q->size / descs)
		bn.qd = b.q->size / descs;
	if (!bn.qd)
		bn.qd = 1;
	for (uint32_t i = 0; i < bn.qd; i++) {
		bn.bufs[i] = dma_alloc(BENCH_REQ, PAGE);
		fill_pattern(bn.bufs[i], BENCH_REQ, i);
	}
	/* Slots above qd are never taken: take_slot pops the lowest first. */
	rng_state = rdtsc() | 1;

	uint64_t rd_cycles = bench_seq(&bn, VIRTIO_BLK_T_IN, bytes);
	uint64_t wr_cycles = 0;
	if (!b.ro) {
		wr_cycles = bench_seq(&bn, VIRTIO_BLK_T_OUT, bytes);
		if (b.flush &&
		    blk_sync(&b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, PAGE, 0) != VIRTIO_BLK_S_OK)
			check_fail("flush after the write benchmark failed");
	}
	uint64_t rand_cycles;
	uint64_t ios = bench_rand(&bn, opts.blk_bench_secs ? opts.blk_bench_secs : 1, &rand_cycles);
	uint64_t iops = rand_cycles ? ios * tsc_hz() / rand_cycles : 0;

	kprintf("blk_bench: bytes=%lu req_kib=%u seg_kib=%u qd=%u read_us=%lu write_us=%lu "
		"rand_ios=%lu rand_us=%lu tsc_khz=%lu\n",
		bytes, BENCH_REQ >> 10, bn.seg >> 10, bn.qd, rd_cycles * 1000 / (tsc_hz() / 1000),
		wr_cycles * 1000 / (tsc_hz() / 1000), ios, rand_cycles * 1000 / (tsc_hz() / 1000),
		tsc_hz() / 1000);
	check_pass("seq_read_mbs=%lu seq_write_mbs=%lu rand_read_iops=%lu%s", mbs(bytes, rd_cycles),
		   mbs(bytes, wr_cycles), iops, b.ro ? " ro=1" : "");
	blk_close(&b);
}
