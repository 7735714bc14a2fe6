/* The part of the i8042 keyboard controller guests use without a keyboard: its command port,
 * whose 0xfe command (pulse the reset line) is how Linux with reboot=k and most unikernels end
 * the VM. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"

#include <pthread.h>
#include <stdint.h>

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64

struct i8042 {
	pthread_mutex_t lock;
	uint8_t control; /* controller configuration byte */
	uint8_t out;	 /* output buffer */
	bool out_full;
	uint8_t pending_cmd; /* a command waiting for its data byte */
	const struct vm_events *events;
};

/* Plain data for snapshots. */
struct i8042_state {
	uint8_t control, out, out_full, pending_cmd;
};

void i8042_save(struct i8042 *k, struct i8042_state *out);
int i8042_restore(struct i8042 *k, const struct i8042_state *in);

void i8042_init(struct i8042 *k, const struct vm_events *events);
int i8042_register(struct i8042 *k, struct bus *pio);
void i8042_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
