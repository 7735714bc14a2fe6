/* rng: the virtio-rng device, read forever: 16 fresh bytes printed as
 * "rng: <32 hex digits>" about every 100 ms (TSC), paced like `counter`. Two
 * clones restored from one snapshot print different lines if each got
 * entropy of its own. Fails when the device answers with nothing, more than
 * it was asked, or the same 16 bytes twice in a row. */
#include "arch.h"
#include "checks.h"
#include "console.h"
#include "dma.h"
#include "lib.h"
#include "virtio.h"

#define RNG_BYTES      16
#define RNG_TIMEOUT_US 5000000

static struct vdev rng;

/* Ask for up to n bytes into buf; the count the device wrote. */
static uint32_t rng_request(struct virtq *q, uint8_t *buf, uint32_t n)
{
	struct vbuf v = {buf, n, true};
	uint64_t cookie, deadline = tsc_after_us(RNG_TIMEOUT_US);
	uint32_t len;

	if (virtq_add(q, &v, 1, 0) < 0)
		check_fail("internal: rng queue full");
	virtq_kick(q);
	while (!virtq_get(q, &cookie, &len)) {
		virtio_check_status(&rng);
		if (tsc_passed(deadline))
			check_fail("no answer from the rng device in %u s",
				   RNG_TIMEOUT_US / 1000000);
		virtio_wait(&rng);
	}
	if (len == 0)
		check_fail("the rng device returned a buffer with no bytes");
	return len;
}

static bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

void check_rng(void)
{
	uint8_t got[RNG_BYTES], last[RNG_BYTES];
	bool have_last = false;

	dma_reset();
	virtio_open(&rng, VIRTIO_ID_RNG, 0);
	struct virtq *q = virtio_queue(&rng, 0, 8);
	uint8_t *buf = dma_alloc(RNG_BYTES, 64);
	virtio_driver_ok(&rng);

	uint64_t period = tsc_hz() / 10, next = rdtsc();
	for (;;) {
		/* Fresh bytes for each line, asked for just before it is printed. */
		for (uint32_t n = 0; n < RNG_BYTES;) {
			uint32_t len = rng_request(q, buf, RNG_BYTES - n);
			memcpy(got + n, buf, len);
			n += len;
		}
		if (have_last && same(got, last, RNG_BYTES))
			check_fail("the rng device returned the same %u bytes twice", RNG_BYTES);
		memcpy(last, got, RNG_BYTES);
		have_last = true;
		kprintf("rng: ");
		for (int i = 0; i < RNG_BYTES; i++)
			kprintf("%02x", got[i]);
		kprintf("\n");
		next += period;
		if (tsc_passed(next)) /* after a long pause or a restore */
			next = rdtsc() + period;
		while (!tsc_passed(next))
			cpu_relax();
	}
}
