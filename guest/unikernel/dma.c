#include "dma.h"

#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "lib.h"

#define PAGE ((uint64_t)4096)

static uint64_t cur, end;    /* the span being carved */
static uint32_t next_region; /* the memory-map entry after it */

/* The next piece of type-1 RAM at or above from: above KERNEL_END, below the
 * map's reach, not overlapping the initrd. */
static bool next_span(uint64_t from)
{
	uint64_t top = mapped_top(), ird = boot.initrd_addr & ~(PAGE - 1);
	uint64_t ird_end = (boot.initrd_addr + boot.initrd_size + PAGE - 1) & ~(PAGE - 1);

	for (; next_region < boot.nmem; next_region++) {
		const struct mem_range *m = &boot.mem[next_region];
		if (m->type != E820_RAM)
			continue;
		uint64_t s = (m->addr + PAGE - 1) & ~(PAGE - 1);
		uint64_t e = (m->addr + m->size) & ~(PAGE - 1);
		if (s < from)
			s = from;
		if (s < KERNEL_END)
			s = KERNEL_END;
		if (e > top)
			e = top;
		if (boot.initrd_size && s < ird_end && ird < e) {
			if (s < ird) {
				e = ird; /* the part below the initrd first */
			} else {
				s = ird_end;
			}
		}
		if (s >= e)
			continue;
		cur = s;
		end = e;
		return true;
	}
	return false;
}

void dma_reset(void)
{
	next_region = 0;
	cur = end = 0;
	if (!boot.nmem) {
		/* No memory map: assume 64 MiB above the window. */
		cur = KERNEL_END;
		end = KERNEL_END + (64 << 20);
		next_region = 1;
		return;
	}
	next_span(0);
}

void *dma_alloc(uint64_t size, uint64_t align)
{
	if (align < 16)
		align = 16;
	for (;;) {
		uint64_t a = (cur + align - 1) & ~(align - 1);
		if (end && a >= cur && a + size <= end && a + size >= a) {
			cur = a + size;
			memset((void *)(uintptr_t)a, 0, size);
			return (void *)(uintptr_t)a;
		}
		uint64_t from = end;
		if (!boot.nmem || !next_span(from))
			check_fail("out of memory for device buffers (wanted %lu bytes)", size);
	}
}

uint64_t dma_left(void)
{
	uint64_t left = end > cur ? end - cur : 0;
	uint64_t save_cur = cur, save_end = end;
	uint32_t save_next = next_region;

	while (boot.nmem && next_span(end))
		left += end - cur;
	cur = save_cur;
	end = save_end;
	next_region = save_next;
	return left;
}
