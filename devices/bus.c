#include "devices/bus.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_access_fn access, void *dev,
		 const char *name)
{
	if (len == 0 || base + len < base)
		return err_set(EINVAL, "%s bus: bad range for %s", b->name, name);
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return err_set(EEXIST, "%s bus: %s at 0x%llx overlaps %s at 0x%llx",
				       b->name, name, (unsigned long long)base, r->name,
				       (unsigned long long)r->base);
	}
	if (b->n == BUS_MAX_RANGES)
		return err_set(ENOSPC, "%s bus: more than %d devices", b->name, BUS_MAX_RANGES);
	b->ranges[b->n++] = (struct bus_range){base, len, access, dev, name};
	return 0;
}

static pthread_mutex_t unknown_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_unknown(struct bus *b, uint64_t addr, uint32_t len, bool is_write)
{
	pthread_mutex_lock(&unknown_lock);
	b->unknown_accesses++;
	bool seen = false;
	for (unsigned i = 0; i < b->nunknown && !seen; i++)
		seen = b->unknown[i] == addr;
	bool first = !seen && b->nunknown < sizeof(b->unknown) / sizeof(b->unknown[0]);
	if (first)
		b->unknown[b->nunknown++] = addr;
	pthread_mutex_unlock(&unknown_lock);
	if (first)
		log_info(
		    "guest %s %s 0x%llx (%u bytes), which Ember does not emulate (logged once)",
		    is_write ? "wrote" : "read", b->name, (unsigned long long)addr, len);
}

bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (addr >= r->base && addr - r->base < r->len) {
			r->access(r->dev, addr - r->base, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	note_unknown(b, addr, len, is_write);
	return false;
}
