#include "memory/guest_mem.h"
#include "memory/layout.h"
#include "common/checked.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
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

int gmem_create_private(struct guest_mem *gm, uint64_t bytes, int fd, uint64_t offset)
{
	int r = gmem_layout(gm, bytes);
	if (r < 0)
		return r;
	/* MAP_PRIVATE: pages come from the file's page cache, shared with every other mapping of
	 * it, until the guest (or a device) writes one, which then becomes this process's own. */
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd,
		       (off_t)offset);
	if (p == MAP_FAILED)
		return err_errno("mmap %llu MiB of guest memory from the memory file",
				 (unsigned long long)(bytes / MiB));
	madvise(p, bytes, MADV_DONTDUMP);
	gm->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (gm->fd < 0) {
		r = err_errno("dup of the memory file");
		munmap(p, bytes);
		return r;
	}
	gm->private_file = true;
	gm->base = p;
	for (unsigned i = 0; i < gm->nregions; i++)
		gm->regions[i].host = gm->base + gm->regions[i].file_offset;
	return 0;
}

int gmem_create_anon(struct guest_mem *gm, uint64_t bytes)
{
	int r = gmem_layout(gm, bytes);
	if (r < 0)
		return r;
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err_errno("mmap %llu MiB of anonymous guest memory",
				 (unsigned long long)(bytes / MiB));
	madvise(p, bytes, MADV_DONTDUMP);
	gm->private_file = true;
	gm->base = p;
	for (unsigned i = 0; i < gm->nregions; i++)
		gm->regions[i].host = gm->base + gm->regions[i].file_offset;
	return 0;
}

void gmem_destroy(struct guest_mem *gm)
{
	if (gm->base)
		munmap(gm->base, gm->total);
	if (gm->fd >= 0)
		close(gm->fd);
	gm->base = NULL;
	gm->fd = -1;
	free((void *)gm->dirty);
	gm->dirty = NULL;
}

int gmem_track_dirty(struct guest_mem *gm, bool on)
{
	if (!on) {
		free((void *)gm->dirty);
		gm->dirty = NULL;
		return 0;
	}
	if (gm->dirty)
		return 0;
	uint64_t pages = (gm->total + 4095) / 4096;
	gm->dirty = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!gm->dirty)
		return err_set(ENOMEM, "dirty-page bitmap for %llu pages",
			       (unsigned long long)pages);
	return 0;
}

void gmem_mark_dirty(const struct guest_mem *gm, const void *host, uint64_t len)
{
	const uint8_t *p = host;
	if (!gm->dirty || len == 0 || p < gm->base || p >= gm->base + gm->total)
		return;
	uint64_t off = (uint64_t)(p - gm->base);
	uint64_t end = len > gm->total - off ? gm->total : off + len;
	for (uint64_t page = off / 4096; page <= (end - 1) / 4096; page++)
		atomic_fetch_or(&gm->dirty[page / 64], 1ull << (page % 64));
}

bool gmem_test_clear_dirty(const struct guest_mem *gm, uint64_t page)
{
	if (!gm->dirty || page * 4096 >= gm->total)
		return false;
	uint64_t bit = 1ull << (page % 64);
	return atomic_fetch_and(&gm->dirty[page / 64], ~bit) & bit;
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
