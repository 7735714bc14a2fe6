/* Port-I/O and MMIO dispatch: devices register the ranges they serve at setup time; vCPU threads
 * look ranges up on exits. Registration happens before any vCPU runs, so lookups take no lock;
 * each device guards its own state. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef void (*bus_access_fn)(void *dev, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_access_fn access;
	void *dev;
	const char *name;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name; /* "port" or "mmio", for messages */
	unsigned n;
	struct bus_range ranges[BUS_MAX_RANGES];
	/* Addresses nobody serves are logged once each; bounded so a guest cannot grow it. */
	unsigned nunknown;
	uint64_t unknown[64];
	uint64_t unknown_accesses;
};

void bus_init(struct bus *b, const char *name);
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_access_fn access, void *dev,
		 const char *name);
/* Serve one access; an address nobody serves reads as all ones and ignores writes. Returns
 * false for such an unserved address. */
bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
