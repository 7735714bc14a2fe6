/* Memory the devices read and write: RAM above the unikernel's window (minus
 * the initrd), handed out by a bump allocator. Addresses are identity-mapped,
 * so a pointer is its guest-physical address. Each device check starts with
 * dma_reset() and resets its devices before it returns, so the next check may
 * reuse the same pages. */
#ifndef UK_DMA_H
#define UK_DMA_H

#include <stdint.h>

void dma_reset(void);
/* Zeroed, aligned to align (a power of two, at least 16); fails the check
 * when RAM runs out. */
void *dma_alloc(uint64_t size, uint64_t align);
/* Bytes left in the current and later spans. */
uint64_t dma_left(void);

static inline uint64_t dma_addr(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

#endif
