/* libFuzzer target: arbitrary bytes become a guest's descriptor table, avail ring and indices;
 * the device side pops and pushes until the queue is empty or declared broken. It must never
 * read or write outside guest memory (AddressSanitizer watches) nor loop forever. */
#include "devices/virtio_mmio/virtq.h"
#include "memory/layout.h"

#include <linux/virtio_ring.h>
#include <stdint.h>
#include <string.h>

#define RAM	 (1 * MiB)
#define DESC_AT	 0x1000
#define AVAIL_AT 0x3000
#define USED_AT	 0x4000

static struct guest_mem gm;
static struct virtq_chain chain;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return gmem_create(&gm, RAM);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint16_t num = (uint16_t)(1u << (data[0] % 9)); /* 1 .. 256 */
	bool event_idx = data[1] & 1;
	uint16_t avail_idx;
	memcpy(&avail_idx, data + 2, 2);
	data += 4;
	size -= 4;
	uint8_t *ram = gmem_ptr(&gm, 0, RAM);
	memset(ram, 0, 0x6000);
	/* Descriptors and avail ring entries straight from the input; addresses are folded so
	 * that many land inside guest RAM and many just outside it. */
	size_t desc_bytes = 16ull * num;
	size_t n = size < desc_bytes ? size : desc_bytes;
	memcpy(ram + DESC_AT, data, n);
	for (uint16_t i = 0; i < num; i++) {
		struct vring_desc *d = (struct vring_desc *)(ram + DESC_AT + 16ull * i);
		if (d->addr & 1)
			d->addr %= RAM + 0x2000;
	}
	data += n;
	size -= n;
	struct vring_avail *a = (struct vring_avail *)(ram + AVAIL_AT);
	n = size < 2ull * num + 2 ? size : 2ull * num + 2;
	memcpy(a->ring, data, n);
	a->idx = avail_idx;

	struct virtq q;
	virtq_init(&q, &gm, 256);
	q.s.num = num;
	q.s.desc_gpa = DESC_AT;
	q.s.avail_gpa = AVAIL_AT;
	q.s.used_gpa = USED_AT;
	if (virtq_activate(&q, event_idx) < 0)
		return 0;
	for (unsigned rounds = 0; rounds < 1024; rounds++) {
		int r = virtq_pop(&q, &chain);
		if (r <= 0)
			break;
		uint8_t scratch[64];
		virtq_chain_read(&chain, 0, scratch, sizeof(scratch));
		virtq_chain_write(&chain, 1, scratch, sizeof(scratch));
		virtq_push(&q, chain.head, (uint32_t)chain.writable_len);
		virtq_should_notify(&q);
	}
	return 0;
}
