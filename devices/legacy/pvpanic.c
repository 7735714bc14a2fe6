#include "devices/legacy/pvpanic.h"

#include <string.h>

#define PVPANIC_PANICKED     1
#define PVPANIC_CRASH_LOADED 2

void pvpanic_init(struct pvpanic *p, const struct vm_events *events)
{
	p->events = events;
}

void pvpanic_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pvpanic *p = dev;
	if (!is_write) {
		memset(data, 0, len);
		data[0] = PVPANIC_PANICKED; /* the events this device reports */
		return;
	}
	if ((data[0] & PVPANIC_PANICKED) && p->events && p->events->stop)
		p->events->stop(p->events->ctx, VM_STOP_GUEST_PANIC);
}

int pvpanic_register(struct pvpanic *p, struct bus *pio)
{
	return bus_register(pio, PVPANIC_PORT, 1, pvpanic_access, p, "pvpanic");
}
