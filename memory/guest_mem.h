/* Guest RAM: one memfd mapped shared into the monitor, split around the MMIO gap into at most two
 * regions. Every guest physical address the monitor turns into a pointer goes through
 * gmem_ptr(), the one checked door into guest memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 2

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t file_offset; /* offset in the memfd */
	uint8_t *host;
};

struct guest_mem {
	int fd;
	uint8_t *base; /* the whole mapping; regions point into it */
	uint64_t total;
	unsigned nregions;
	struct gmem_region regions[GMEM_MAX_REGIONS];
	/* One bit per page of the mapping (offset from base) the monitor wrote into on the guest's
	 * behalf since tracking began; NULL when not tracking. */
	_Atomic uint64_t *dirty;
	bool private_file; /* a copy-on-write mapping of a snapshot's memory file (or anonymous
			    * memory a pager fills), not a memfd: fd has no holes to seek */
};

/* Lay out `bytes` of RAM (a multiple of 4 KiB) around the MMIO gap. Pure; no mapping. */
int gmem_layout(struct guest_mem *gm, uint64_t bytes);
/* Lay out and map fresh anonymous memory backed by a memfd (MAP_SHARED|MAP_NORESERVE: untouched
 * pages cost the host nothing). */
int gmem_create(struct guest_mem *gm, uint64_t bytes);
/* Lay out and map `bytes` of a file (a snapshot's memory) from `offset`, privately: reads share
 * the file's page cache with every other mapping; writes copy. The file is dup'd. */
int gmem_create_private(struct guest_mem *gm, uint64_t bytes, int fd, uint64_t offset);
/* Lay out and map `bytes` of anonymous private memory with no backing file, for a pager
 * (userfaultfd) to fill. */
int gmem_create_anon(struct guest_mem *gm, uint64_t bytes);
void gmem_destroy(struct guest_mem *gm);

/* Host pointer for [gpa, gpa+len) if the whole range is guest RAM inside one region, else NULL. */
void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* Copies that fail (returning a negative errno with a message) unless the range is guest RAM. */
int gmem_read(const struct guest_mem *gm, void *dst, uint64_t gpa, uint64_t len);
int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
/* Diff snapshots: KVM's dirty log sees only the guest's own writes, so devices report what they
 * wrote into guest buffers and rings (virtq_push does it for every used chain). */
int gmem_track_dirty(struct guest_mem *gm, bool on);
/* Mark the pages under [host, host+len) dirty; a pointer outside guest RAM is ignored. */
void gmem_mark_dirty(const struct guest_mem *gm, const void *host, uint64_t len);
/* Take and clear the dirty bit of page `page` (offset from base / 4096). */
bool gmem_test_clear_dirty(const struct guest_mem *gm, uint64_t page);

/* End of the RAM region that starts at 0 (the "low" RAM below the MMIO gap). */
uint64_t gmem_low_end(const struct guest_mem *gm);
