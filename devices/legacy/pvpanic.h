/* QEMU's ISA pvpanic port: a guest writes bit 0 to say it panicked. Lets a guest report a panic
 * with a distinct exit code instead of an ordinary reset. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"

#define PVPANIC_PORT 0x505

struct pvpanic {
	const struct vm_events *events;
};

void pvpanic_init(struct pvpanic *p, const struct vm_events *events);
int pvpanic_register(struct pvpanic *p, struct bus *pio);
void pvpanic_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
