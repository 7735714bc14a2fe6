#include "memory/guest_mem.h"
#include "memory/layout.h"
#include "common/checked.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int gmem_layout(struct guest_mem *gm, uint64_t bytes)
{
	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	if (bytes == 0 || bytes % (4 * KiB))
		return err_set(EINVAL, "guest memory size %llu is not a positive multiple of 4 KiB",
			       (unsigned long long)bytes);
	if (bytes > LAYOUT_MAX_MEM_MIB * MiB)
		return err_set(EINVAL, "guest memory %llu MiB is above the limit of %llu MiB",
			       (unsigned long long)(bytes / MiB), LAYOUT_MAX_MEM_MIB);
	gm->total = bytes;
	uint64_t low = bytes < LAYOUT_MMIO_GAP_START ? bytes : LAYOUT_MMIO_GAP_START;
	gm->regions[0] = (struct gmem_region){.gpa = 0, .size = low, .file_offset = 0};
	gm->nregions = 1;
	if (bytes > low) {
		gm->regions[1] = (struct gmem_region){
		    .gpa = LAYOUT_HIGH_RAM_START, .size = bytes - low, .file_offset = low};
		gm->nregions = 2;
	}
	return 0;
}

int gmem_create(struct guest_mem *gm, uint64_t bytes)
{
	int r = gmem_layout(gm, bytes);
	if (r < 0)
		return r;
	gm->fd = memfd_create("ember-guest-ram", MFD_CLOEXEC);
	if (gm->fd < 0)
		return err_errno("memfd_create");
	if (ftruncate(gm->fd, (off_t)bytes) < 0) {
		r = err_errno("ftruncate guest memory to %llu bytes", (unsigned long long)bytes);
		goto fail;
	}
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, gm->fd, 0);
	if (p == MAP_FAILED) {
		r = err_errno("mmap %llu MiB of guest memory", (unsigned long long)(bytes / MiB));
		goto fail;
	}
	/* Guest memory never belongs in a core dump of the monitor. */
	madvise(p, bytes, MADV_DONTDUMP);
	gm->base = p;
	for (unsigned i = 0; i < gm->nregions; i++)
		gm->regions[i].host = gm->base + gm->regions[i].file_offset;
	return 0;
fail:
	close(gm->fd);
	gm->fd = -1;
	return r;
}

void gmem_destroy(struct guest_mem *gm)
{
	if (gm->base)
		munmap(gm->base, gm->total);
	if (gm->fd >= 0)
		close(gm->fd);
	gm->base = NULL;
	gm->fd = -1;
}

void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < gm->nregions; i++) {
		const struct gmem_region *rg = &gm->regions[i];
		if (gpa < rg->gpa)
			continue;
		uint64_t off = gpa - rg->gpa;
		if (off >= rg->size || !range_within(off, len, rg->size))
			continue;
		return rg->host ? rg->host + off : NULL;
	}
	return NULL;
}

int gmem_read(const struct guest_mem *gm, void *dst, uint64_t gpa, uint64_t len)
{
	void *src = gmem_ptr(gm, gpa, len);
	if (!src)
		return err_set(EFAULT, "guest range 0x%llx+0x%llx is not guest RAM",
			       (unsigned long long)gpa, (unsigned long long)len);
	memcpy(dst, src, len);
	return 0;
}

int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = gmem_ptr(gm, gpa, len);
	if (!dst)
		return err_set(EFAULT, "guest range 0x%llx+0x%llx is not guest RAM",
			       (unsigned long long)gpa, (unsigned long long)len);
	memcpy(dst, src, len);
	return 0;
}

uint64_t gmem_low_end(const struct guest_mem *gm)
{
	return gm->nregions ? gm->regions[0].size : 0;
}
