/* Lazy restore through userfaultfd, with a recorded prefetch list.
 *
 * Guest RAM is anonymous private memory registered with userfaultfd (missing mode). A handler
 * thread serves every first touch — from a vCPU through KVM, or from the monitor itself (devices,
 * the snapshot loader) — by copying the page in from the snapshot's memory file (UFFDIO_COPY),
 * or zero-filling it where the file is sparse (UFFDIO_ZEROPAGE).
 *
 * Recording notes the pages in the order they are first touched and writes them to a list file
 * (under a temporary name, then renamed) when the record window ends or the pager stops,
 * whichever is first. Prefetching reads such a list and copies its pages in, in file order and
 * batched by contiguous runs, before any vCPU runs; the rest still come lazily.
 *
 * The list names the snapshot it was recorded from by the memory file's header (magic, format,
 * the snapshot's random id, the RAM size): a list from any other memory file is refused.
 *
 * The handler thread never takes a lock another monitor thread may hold while it touches guest
 * memory: those threads are blocked in the kernel until it answers. */
#pragma once

#include "memory/guest_mem.h"

#include <stdatomic.h>
#include <stdint.h>

#define UFFD_RECORD_MS_DEFAULT 1000

struct uffd_options {
	const char *record_path;   /* write the touched pages here; NULL: no recording */
	const char *prefetch_path; /* copy these pages in first; NULL: none */
	uint64_t record_ms;	   /* record window in guest run time; 0: the default */
	/* When the guest first ran (0 until then): the record window starts there. */
	const _Atomic uint64_t *run_since_ns;
	/* Called from the handler thread when a page cannot be served (the memory file failed):
	 * the VM must stop. */
	void (*on_failure)(void *ctx);
	void *ctx;
};

struct uffd_pager;

/* Lay out and map `gm` as anonymous memory of `bytes` under userfaultfd, whose pages come from
 * `mem_fd` at `mem_offset` (the file's header page is at offset 0); prefetch the list if one is
 * given (checked first: magic, the snapshot, page numbers), then start the handler thread. */
int uffd_pager_start(struct uffd_pager **out, struct guest_mem *gm, uint64_t bytes, int mem_fd,
		     uint64_t mem_offset, const struct uffd_options *o);
/* Stop serving (every thread that may touch guest memory must be gone), write the list if
 * recording and not written yet, log the counts, and free the pager. gm stays mapped. */
void uffd_pager_stop(struct uffd_pager *p);
