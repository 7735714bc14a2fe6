#include "snapshot/uffd.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096u
/* Pages copied per UFFDIO_COPY while prefetching: large enough to amortise the ioctl, small
 * enough for a buffer allocated once. */
#define BATCH_PAGES 256u

/* The list file: a header, then `count` little-endian u32 page numbers (offsets in guest_mem's
 * layout / 4096) in the order they were first touched. */
static const char LIST_MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'P', 'F', 'L'};
#define LIST_FORMAT 1
#define LIST_ID_LEN 64 /* the memory file's first bytes: its header, id included */
struct list_header {
	char magic[8];
	uint32_t format;
	uint32_t count;
	uint64_t ram_pages;
	uint8_t id[LIST_ID_LEN];
};

struct uffd_pager {
	int uffd, stop_efd, mem_fd;
	uint64_t mem_offset;
	uint8_t *base;
	uint64_t total, npages;
	uint8_t id[LIST_ID_LEN];
	uint64_t *has_data; /* pages the memory file holds data for (not holes) */
	uint8_t *buf;	    /* BATCH_PAGES pages: prefetch before the thread, then the thread's */

	/* Recording: first touches, in order. Preallocated so serving a fault never allocates. */
	char *record_path;
	uint64_t record_ns;
	const _Atomic uint64_t *run_since_ns;
	uint64_t *seen;
	uint32_t *order;
	uint64_t norder;
	bool written;	    /* the list is on disk (or failed: see error) */
	uint64_t window_ns; /* guest run time the list covers */

	uint64_t faults, copied, zeroed;
	uint64_t prefetched, prefetch_copied, prefetch_zeroed;
	double prefetch_ms;
	void (*on_failure)(void *ctx);
	void *ctx;
	/* Set by the thread, reported by uffd_pager_stop: the thread never logs (a thread it
	 * would wait for may be blocked on a fault only it can serve). */
	char error[256];
	char list_error[256];

	pthread_t thread;
	bool thread_started;
};

static bool test_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void set_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}

/* Which pages of the file hold data: holes read as zeros and are zero-filled instead. */
static int map_data(struct uffd_pager *p)
{
	off_t end = (off_t)(p->mem_offset + p->total);
	off_t at = (off_t)p->mem_offset;
	while (at < end) {
		off_t data = lseek(p->mem_fd, at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return err_errno("SEEK_DATA in the memory file");
		if (data >= end)
			break;
		off_t hole = lseek(p->mem_fd, data, SEEK_HOLE);
		if (hole < 0)
			return err_errno("SEEK_HOLE in the memory file");
		if (hole > end)
			hole = end;
		uint64_t first = ((uint64_t)data - p->mem_offset) / PAGE;
		uint64_t last = ((uint64_t)hole - p->mem_offset + PAGE - 1) / PAGE;
		for (uint64_t i = first; i < last && i < p->npages; i++)
			set_bit(p->has_data, i);
		at = hole;
	}
	return 0;
}

static int wake(struct uffd_pager *p, uint64_t off, uint64_t len)
{
	struct uffdio_range r = {.start = (uintptr_t)(p->base + off), .len = len};
	if (ioctl(p->uffd, UFFDIO_WAKE, &r) < 0)
		return err_errno("UFFDIO_WAKE at 0x%llx", (unsigned long long)off);
	return 0;
}

/* Copy [off, off+len) of RAM in from `src`. EEXIST: another fault for the same page was served
 * first; the waiters on it only need waking. */
static int copy_in(struct uffd_pager *p, uint64_t off, const uint8_t *src, uint64_t len)
{
	while (len) {
		struct uffdio_copy c = {
		    .dst = (uintptr_t)(p->base + off), .src = (uintptr_t)src, .len = len};
		if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno == EEXIST)
			return wake(p, off, len);
		if (errno != EAGAIN)
			return err_errno("UFFDIO_COPY of %llu bytes at 0x%llx",
					 (unsigned long long)len, (unsigned long long)off);
		/* EAGAIN: interrupted part way; go on after what was copied. */
		uint64_t done = c.copy > 0 ? (uint64_t)c.copy : 0;
		off += done;
		src += done;
		len -= done;
	}
	return 0;
}

static int zero_in(struct uffd_pager *p, uint64_t off, uint64_t len)
{
	while (len) {
		struct uffdio_zeropage z = {
		    .range = {.start = (uintptr_t)(p->base + off), .len = len}};
		if (ioctl(p->uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return 0;
		if (errno == EEXIST)
			return wake(p, off, len);
		if (errno != EAGAIN)
			return err_errno("UFFDIO_ZEROPAGE of %llu bytes at 0x%llx",
					 (unsigned long long)len, (unsigned long long)off);
		uint64_t done = z.zeropage > 0 ? (uint64_t)z.zeropage : 0;
		off += done;
		len -= done;
	}
	return 0;
}

/* Fill pages [first, first+n) (n <= BATCH_PAGES): data runs from the file, holes with zeros. */
static int fill(struct uffd_pager *p, uint64_t first, uint64_t n)
{
	uint64_t i = 0;
	while (i < n) {
		bool data = test_bit(p->has_data, first + i);
		uint64_t j = i + 1;
		while (j < n && test_bit(p->has_data, first + j) == data)
			j++;
		uint64_t off = (first + i) * PAGE, len = (j - i) * PAGE;
		int r;
		if (data) {
			uint64_t got = 0;
			while (got < len) {
				ssize_t k = pread(p->mem_fd, p->buf + got, len - got,
						  (off_t)(p->mem_offset + off + got));
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					return k < 0 ? err_errno(
							   "reading page %llu of the memory file",
							   (unsigned long long)(first + i))
						     : err_set(
							   EIO,
							   "the memory file ends before page %llu",
							   (unsigned long long)(first + i));
				got += (uint64_t)k;
			}
			r = copy_in(p, off, p->buf, len);
			p->copied += j - i;
		} else {
			r = zero_in(p, off, len);
			p->zeroed += j - i;
		}
		if (r < 0)
			return r;
		i = j;
	}
	return 0;
}

/* ---- the list file ---- */

static int write_list(struct uffd_pager *p)
{
	char tmp[4200];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", p->record_path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return err_set(ENAMETOOLONG, "%s: path too long", p->record_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno("cannot create %s", tmp);
	struct list_header h = {
	    .format = LIST_FORMAT, .count = (uint32_t)p->norder, .ram_pages = p->npages};
	memcpy(h.magic, LIST_MAGIC, sizeof(h.magic));
	memcpy(h.id, p->id, sizeof(h.id));
	struct {
		const void *data;
		size_t len;
	} parts[] = {{&h, sizeof(h)}, {p->order, p->norder * sizeof(uint32_t)}};
	int r = 0;
	for (unsigned k = 0; r == 0 && k < 2; k++) {
		const uint8_t *d = parts[k].data;
		size_t left = parts[k].len;
		while (left) {
			ssize_t w = write(fd, d, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r = err_errno("writing %s", tmp);
				break;
			}
			d += w;
			left -= (size_t)w;
		}
	}
	if (r == 0 && fsync(fd) < 0)
		r = err_errno("fsync %s", tmp);
	if (close(fd) < 0 && r == 0)
		r = err_errno("close %s", tmp);
	if (r == 0 && rename(tmp, p->record_path) < 0)
		r = err_errno("rename %s to %s", tmp, p->record_path);
	if (r < 0)
		unlink(tmp);
	return r;
}

static void finish_recording(struct uffd_pager *p, uint64_t since_ns)
{
	p->written = true;
	p->window_ns = since_ns ? timing_now_ns() - since_ns : 0;
	if (write_list(p) < 0)
		snprintf(p->list_error, sizeof(p->list_error), "%s", err_msg());
}

/* Read and check a list; its pages are returned in file order. */
static int read_list(struct uffd_pager *p, const char *path, uint32_t **pages, uint64_t *count)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("cannot open the prefetch list %s", path);
	struct stat st;
	struct list_header h;
	int r = 0;
	if (fstat(fd, &st) < 0)
		r = err_errno("stat %s", path);
	else if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
		 memcmp(h.magic, LIST_MAGIC, sizeof(h.magic)) != 0)
		r = err_set(EINVAL, "%s: not an Ember prefetch list", path);
	else if (h.format != LIST_FORMAT)
		r = err_set(EINVAL, "%s: prefetch list format %u; this Ember reads format %d", path,
			    h.format, LIST_FORMAT);
	else if (memcmp(h.id, p->id, sizeof(h.id)) != 0)
		r = err_set(EINVAL,
			    "%s: recorded from another snapshot (its memory file's id differs)",
			    path);
	else if (h.ram_pages != p->npages)
		r = err_set(EINVAL, "%s: recorded for %llu pages of RAM, this snapshot has %llu",
			    path, (unsigned long long)h.ram_pages, (unsigned long long)p->npages);
	else if ((uint64_t)st.st_size != sizeof(h) + (uint64_t)h.count * sizeof(uint32_t))
		r = err_set(EINVAL, "%s: %lld bytes, but the header says %u pages", path,
			    (long long)st.st_size, h.count);
	uint32_t *list = NULL;
	if (r == 0 && h.count) {
		list = malloc((size_t)h.count * sizeof(uint32_t));
		if (!list)
			r = err_set(ENOMEM, "%s: %u pages", path, h.count);
	}
	size_t want = (size_t)h.count * sizeof(uint32_t);
	if (r == 0 && want && pread(fd, list, want, sizeof(h)) != (ssize_t)want)
		r = err_set(EIO, "%s: short read", path);
	close(fd);
	/* Each page once, and inside RAM: the list is input like any other file. */
	uint64_t *dup = NULL;
	if (r == 0 && h.count) {
		dup = calloc((p->npages + 63) / 64, sizeof(uint64_t));
		if (!dup)
			r = err_set(ENOMEM, "%s", path);
	}
	for (uint64_t i = 0; r == 0 && i < h.count; i++) {
		if (list[i] >= p->npages)
			r = err_set(EINVAL, "%s: entry %llu: page %u is outside RAM (%llu pages)",
				    path, (unsigned long long)i, list[i],
				    (unsigned long long)p->npages);
		else if (test_bit(dup, list[i]))
			r = err_set(EINVAL, "%s: page %u is listed twice", path, list[i]);
		else
			set_bit(dup, list[i]);
	}
	free(dup);
	if (r < 0) {
		free(list);
		return r;
	}
	*pages = list;
	*count = h.count;
	return 0;
}

static int prefetch(struct uffd_pager *p, const char *path)
{
	uint32_t *list = NULL;
	uint64_t count = 0;
	int r = read_list(p, path, &list, &count);
	if (r < 0)
		return r;
	uint64_t t0 = timing_now_ns();
	/* One pass in file order; consecutive entries that are consecutive pages go as one run. */
	for (uint64_t i = 0; r == 0 && i < count;) {
		uint64_t j = i + 1;
		while (j < count && j - i < BATCH_PAGES && list[j] == list[j - 1] + 1)
			j++;
		r = fill(p, list[i], j - i);
		i = j;
	}
	p->prefetched = count;
	p->prefetch_copied = p->copied;
	p->prefetch_zeroed = p->zeroed;
	p->copied = p->zeroed = 0; /* from here on: what faults cost */
	p->prefetch_ms = (double)(timing_now_ns() - t0) / 1e6;
	free(list);
	return r < 0 ? err_wrap(r, "prefetching from %s", path) : 0;
}

/* ---- the handler thread ---- */

static int serve_fault(struct uffd_pager *p, const struct uffd_msg *m)
{
	if (m->event != UFFD_EVENT_PAGEFAULT)
		return 0; /* no other events were asked for */
	uint64_t addr = m->arg.pagefault.address;
	if (addr < (uintptr_t)p->base || addr >= (uintptr_t)p->base + p->total)
		return err_set(EFAULT, "userfault at 0x%llx, outside guest RAM",
			       (unsigned long long)addr);
	uint64_t page = (addr - (uintptr_t)p->base) / PAGE;
	p->faults++;
	if (p->seen && !p->written && !test_bit(p->seen, page)) {
		set_bit(p->seen, page);
		p->order[p->norder++] = (uint32_t)page;
	}
	return fill(p, page, 1);
}

static void fail(struct uffd_pager *p)
{
	snprintf(p->error, sizeof(p->error), "%s", err_msg());
	if (p->on_failure)
		p->on_failure(p->ctx);
	/* Nothing can be served any more: let every waiting thread go on (with zero pages) so the
	 * VM can stop, rather than hang forever in the kernel. */
	struct uffdio_range r = {.start = (uintptr_t)p->base, .len = p->total};
	ioctl(p->uffd, UFFDIO_UNREGISTER, &r);
}

static void *handler_main(void *arg)
{
	struct uffd_pager *p = arg;
	struct uffd_msg msgs[16];
	for (;;) {
		int timeout = -1;
		if (p->seen && !p->written) {
			uint64_t since = atomic_load(p->run_since_ns);
			if (!since) {
				timeout = 5; /* the guest has not run yet */
			} else {
				uint64_t now = timing_now_ns(), end = since + p->record_ns;
				if (now >= end) {
					finish_recording(p, since);
					continue;
				}
				timeout = (int)((end - now + 999999) / 1000000);
			}
		}
		struct pollfd fds[2] = {{.fd = p->uffd, .events = POLLIN},
					{.fd = p->stop_efd, .events = POLLIN}};
		int n = poll(fds, 2, timeout);
		if (n < 0 && errno != EINTR) {
			err_errno("poll on the userfaultfd");
			fail(p);
			break;
		}
		if (n <= 0)
			continue;
		if (fds[0].revents & POLLIN) {
			ssize_t got = read(p->uffd, msgs, sizeof(msgs));
			if (got < 0 && errno != EAGAIN && errno != EINTR) {
				err_errno("reading the userfaultfd");
				fail(p);
				break;
			}
			int r = 0;
			for (ssize_t i = 0; r == 0 && got > 0 && i < got / (ssize_t)sizeof(msgs[0]);
			     i++)
				r = serve_fault(p, &msgs[i]);
			if (r < 0) {
				fail(p);
				break;
			}
		}
		if (fds[1].revents & POLLIN)
			break;
	}
	if (p->seen && !p->written) {
		uint64_t since = atomic_load(p->run_since_ns);
		finish_recording(p, since);
	}
	return NULL;
}

/* ---- setup and teardown ---- */

static void pager_free(struct uffd_pager *p)
{
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->stop_efd >= 0)
		close(p->stop_efd);
	if (p->mem_fd >= 0)
		close(p->mem_fd);
	free(p->has_data);
	free(p->seen);
	free(p->order);
	free(p->buf);
	free(p->record_path);
	free(p);
}

static int open_uffd(struct uffd_pager *p)
{
	/* Faults come from KVM and from the kernel copying into guest buffers, not only from user
	 * mode: no UFFD_USER_MODE_ONLY (which needs privilege or vm.unprivileged_userfaultfd). */
	p->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (p->uffd < 0)
		return err_errno("userfaultfd (kernel faults need CAP_SYS_PTRACE or "
				 "vm.unprivileged_userfaultfd=1)");
	struct uffdio_api api = {.api = UFFD_API};
	if (ioctl(p->uffd, UFFDIO_API, &api) < 0)
		return err_errno("UFFDIO_API");
	struct uffdio_register reg = {.range = {.start = (uintptr_t)p->base, .len = p->total},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0)
		return err_errno("UFFDIO_REGISTER of %llu MiB of guest memory",
				 (unsigned long long)(p->total >> 20));
	const uint64_t need =
	    1ull << _UFFDIO_COPY | 1ull << _UFFDIO_ZEROPAGE | 1ull << _UFFDIO_WAKE;
	if ((reg.ioctls & need) != need)
		return err_set(ENOTSUP,
			       "userfaultfd here lacks COPY/ZEROPAGE/WAKE on anonymous memory");
	return 0;
}

int uffd_pager_start(struct uffd_pager **out, struct guest_mem *gm, uint64_t bytes, int mem_fd,
		     uint64_t mem_offset, const struct uffd_options *o)
{
	*out = NULL;
	if (o->record_path && o->prefetch_path)
		return err_set(EINVAL,
			       "record a prefetch list or prefetch from one, not both at once");
	if (o->record_path && !o->run_since_ns)
		return err_set(EINVAL, "recording needs the guest's start time");
	if (mem_offset < LIST_ID_LEN)
		return err_set(EINVAL, "the memory file has no header before guest RAM");
	int r = gmem_create_anon(gm, bytes);
	if (r < 0)
		return r;
	struct uffd_pager *p = calloc(1, sizeof(*p));
	if (!p) {
		gmem_destroy(gm);
		return err_set(ENOMEM, "userfaultfd pager");
	}
	p->uffd = p->stop_efd = -1;
	/* Our own descriptor: the snapshot's is closed once the VM is built. */
	p->mem_fd = fcntl(mem_fd, F_DUPFD_CLOEXEC, 0);
	if (p->mem_fd < 0)
		r = err_errno("dup of the memory file");
	p->mem_offset = mem_offset;
	p->base = gm->base;
	p->total = gm->total;
	p->npages = gm->total / PAGE;
	p->on_failure = o->on_failure;
	p->ctx = o->ctx;
	p->run_since_ns = o->run_since_ns;
	p->record_ns = (o->record_ms ? o->record_ms : UFFD_RECORD_MS_DEFAULT) * 1000000ull;
	size_t words = (size_t)(p->npages + 63) / 64;
	p->has_data = calloc(words, sizeof(uint64_t));
	p->buf = malloc((size_t)BATCH_PAGES * PAGE);
	if (r == 0 && (!p->has_data || !p->buf))
		r = err_set(ENOMEM, "userfaultfd pager for %llu pages",
			    (unsigned long long)p->npages);
	if (r == 0 && o->record_path) {
		p->record_path = strdup(o->record_path);
		p->seen = calloc(words, sizeof(uint64_t));
		p->order = malloc((size_t)p->npages * sizeof(uint32_t));
		if (!p->record_path || !p->seen || !p->order)
			r = err_set(ENOMEM, "recording %llu pages", (unsigned long long)p->npages);
	}
	if (r == 0 && pread(p->mem_fd, p->id, sizeof(p->id), 0) != (ssize_t)sizeof(p->id))
		r = err_set(EIO, "reading the memory file's header");
	if (r == 0)
		r = map_data(p);
	if (r == 0)
		r = open_uffd(p);
	if (r == 0 && o->prefetch_path)
		r = prefetch(p, o->prefetch_path);
	if (r == 0) {
		p->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->stop_efd < 0)
			r = err_errno("eventfd");
	}
	if (r == 0) {
		int e = pthread_create(&p->thread, NULL, handler_main, p);
		if (e) {
			errno = e;
			r = err_errno("starting the userfaultfd handler thread");
		}
	}
	if (r < 0) {
		pager_free(p);
		gmem_destroy(gm);
		return r;
	}
	p->thread_started = true;
	pthread_setname_np(p->thread, "ember-uffd");
	if (o->prefetch_path)
		log_info("uffd: prefetched %llu pages (%llu copied, %llu zero) from %s in %.3f ms",
			 (unsigned long long)p->prefetched, (unsigned long long)p->prefetch_copied,
			 (unsigned long long)p->prefetch_zeroed, o->prefetch_path, p->prefetch_ms);
	*out = p;
	return 0;
}

void uffd_pager_stop(struct uffd_pager *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		uint64_t one = 1;
		if (write(p->stop_efd, &one, sizeof(one)) != sizeof(one))
			log_error("uffd: cannot signal the handler thread: %m");
		else
			pthread_join(p->thread, NULL);
	}
	if (p->error[0])
		log_error("uffd: serving guest memory failed: %s", p->error);
	log_info("uffd: %llu faults served (%llu pages copied, %llu zero-filled), %llu pages "
		 "prefetched",
		 (unsigned long long)p->faults, (unsigned long long)p->copied,
		 (unsigned long long)p->zeroed, (unsigned long long)p->prefetched);
	if (p->record_path) {
		if (p->list_error[0])
			log_error("uffd: the prefetch list was not written: %s", p->list_error);
		else
			log_info("uffd: recorded %llu pages touched in %.0f ms of guest run time "
				 "to %s",
				 (unsigned long long)p->norder, (double)p->window_ns / 1e6,
				 p->record_path);
	}
	pager_free(p);
}
