#include "devices/legacy/boot_timer.h"
#include "memory/layout.h"

#include <string.h>

void boot_timer_init(struct boot_timer *t, const struct vm_events *events)
{
	t->events = events;
}

void boot_timer_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct boot_timer *t = dev;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset == 0 && data[0] == BOOT_TIMER_MAGIC && t->events && t->events->boot_timer)
		t->events->boot_timer(t->events->ctx);
}

int boot_timer_register(struct boot_timer *t, struct bus *mmio)
{
	return bus_register(mmio, LAYOUT_BOOT_TIMER_ADDR, 0x1000, boot_timer_access, t,
			    "boot timer");
}
