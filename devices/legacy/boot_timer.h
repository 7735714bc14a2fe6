/* Firecracker's boot-timer device: the guest writes the byte 123 at its base the moment its init
 * starts, and the monitor records the time. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"

#include <stdint.h>

#define BOOT_TIMER_MAGIC 123

struct boot_timer {
	const struct vm_events *events;
};

void boot_timer_init(struct boot_timer *t, const struct vm_events *events);
int boot_timer_register(struct boot_timer *t, struct bus *mmio);
void boot_timer_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
