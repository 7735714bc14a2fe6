#include "devices/virtio_mmio/block.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BLOCK_QUEUE_SIZE 256
#define SECTOR		 512
#define REQ_HEADER_LEN	 16

/* An open image and the requests still in flight on it. A replaced backing stays open until its
 * last request completes: the kernel looks its fd up when it issues a request, possibly later
 * than the submission, and a closed (or reused) number would send it elsewhere. */
struct block_backing {
	int fd;
	char *name; /* its path, or "fd N", for messages */
	unsigned inflight;
	struct block_backing *next; /* in the device's retired list */
};

struct block_request {
	bool busy;
	uint16_t head;
	uint32_t type;
	uint8_t *status;   /* host pointer to the chain's status byte */
	uint32_t data_len; /* bytes the device writes into the chain, status excluded */
	uint64_t generation;
	struct block_backing *backing; /* where it was submitted */
	unsigned niov;
	struct iovec iov[BLOCK_QUEUE_SIZE];
};

struct virtio_block {
	struct virtio_mmio_dev transport;
	char *id;
	bool read_only;
	struct block_backing *backing; /* where new requests go */
	struct block_backing *retired; /* replaced, waiting for their last completions */
	uint64_t capacity;	       /* sectors */
	uint64_t features;
	uint64_t generation; /* bumped on reset: late completions of old requests are dropped */
	struct io_uring ring;
	bool ring_ready;
	int ring_efd;
	unsigned inflight;
	bool stalled;  /* requests wait in the ring for a free slot */
	bool quiesced; /* for a snapshot: the queue is left alone until unquiesce */
	struct block_request reqs[BLOCK_QUEUE_SIZE];
	struct virtio_device_ops ops;
	struct block_stats stats;
};

/* The strings only: a config that failed to parse never took its fd. */
static void block_config_free_strings(struct block_config *cfg)
{
	free(cfg->path);
	free(cfg->id);
	cfg->path = cfg->id = NULL;
}

#define DRIVE_GRAMMAR "path=FILE|fd=N[,id=ID][,ro]"

static int parse_fd(const char *spec, const char *val, int *fd)
{
	char *end;
	errno = 0;
	long n = strtol(val, &end, 10);
	if (*end || errno || n < 0 || n > INT_MAX)
		return err_set(EINVAL, "--drive %s: fd=%s is not a file descriptor number", spec,
			       val);
	if (fcntl((int)n, F_GETFD) < 0)
		return err_set(EBADF, "--drive %s: fd %ld is not open in this process", spec, n);
	*fd = (int)n;
	return 0;
}

static int parse_option(const char *spec, char *tok, struct block_config *cfg)
{
	char *eq = strchr(tok, '=');
	if (strcmp(tok, "ro") == 0 || strcmp(tok, "readonly") == 0) {
		cfg->read_only = true;
		return 0;
	}
	if (!eq || eq[1] == 0)
		return err_set(EINVAL, "--drive %s: unknown or empty option '%s' (expected %s)",
			       spec, tok, DRIVE_GRAMMAR);
	const char *val = eq + 1;
	*eq = 0;
	if (strcmp(tok, "path") == 0 || strcmp(tok, "fd") == 0) {
		if (cfg->path || cfg->fd >= 0)
			return err_set(EINVAL, "--drive %s: give one path=FILE or one fd=N", spec);
	}
	if (strcmp(tok, "path") == 0) {
		cfg->path = strdup(val);
		if (!cfg->path)
			return err_set(ENOMEM, "--drive %s", spec);
	} else if (strcmp(tok, "fd") == 0) {
		return parse_fd(spec, val, &cfg->fd);
	} else if (strcmp(tok, "id") == 0) {
		if (strlen(val) > VIRTIO_BLK_ID_BYTES)
			return err_set(EINVAL, "--drive %s: id longer than %d bytes", spec,
				       VIRTIO_BLK_ID_BYTES);
		free(cfg->id);
		cfg->id = strdup(val);
		if (!cfg->id)
			return err_set(ENOMEM, "--drive %s", spec);
	} else if (strcmp(tok, "ro") == 0) {
		cfg->read_only =
		    strcmp(val, "on") == 0 || strcmp(val, "1") == 0 || strcmp(val, "true") == 0;
	} else {
		return err_set(EINVAL, "--drive %s: unknown option '%s' (expected %s)", spec, tok,
			       DRIVE_GRAMMAR);
	}
	return 0;
}

int block_config_parse(const char *spec, struct block_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->fd = -1;
	char *copy = strdup(spec);
	if (!copy)
		return err_set(ENOMEM, "--drive");
	int r = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save))
		r = parse_option(spec, tok, cfg);
	free(copy);
	if (r == 0 && !cfg->path && cfg->fd < 0)
		r = err_set(EINVAL, "--drive %s: path=FILE or fd=N is required", spec);
	if (r == 0 && !cfg->id) {
		if (cfg->path) {
			const char *base = strrchr(cfg->path, '/');
			base = base ? base + 1 : cfg->path;
			cfg->id = strndup(base, VIRTIO_BLK_ID_BYTES);
		} else {
			char name[VIRTIO_BLK_ID_BYTES + 1];
			snprintf(name, sizeof(name), "fd%d", cfg->fd);
			cfg->id = strdup(name);
		}
		if (!cfg->id)
			r = err_set(ENOMEM, "--drive %s", spec);
	}
	if (r < 0) {
		block_config_free_strings(cfg);
		cfg->fd = -1;
	}
	return r;
}

static void config_read(void *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	struct virtio_block *b = dev;
	struct virtio_blk_config c = {0};
	c.capacity = b->capacity;
	c.seg_max = BLOCK_QUEUE_SIZE - 2;
	c.blk_size = SECTOR;
	memcpy(data, (uint8_t *)&c + off, len);
}

static int activate(void *dev, uint64_t features)
{
	struct virtio_block *b = dev;
	b->features = features;
	return 0;
}

static void reset(void *dev)
{
	struct virtio_block *b = dev;
	b->generation++;
	b->features = 0;
}

static uint64_t request_bytes(const struct block_request *req)
{
	uint64_t bytes = 0;
	for (unsigned i = 0; i < req->niov; i++)
		bytes += req->iov[i].iov_len;
	return bytes;
}

static void complete(struct virtio_block *b, struct block_request *req, uint8_t status)
{
	if (req->generation == b->generation) {
		*req->status = status;
		virtq_push(&b->transport.queues[0], req->head,
			   status == VIRTIO_BLK_S_OK ? req->data_len + 1 : 1);
		if (status == VIRTIO_BLK_S_OK && req->type == VIRTIO_BLK_T_IN)
			b->stats.bytes_read += request_bytes(req);
		else if (status == VIRTIO_BLK_S_OK && req->type == VIRTIO_BLK_T_OUT)
			b->stats.bytes_written += request_bytes(req);
	}
	if (status != VIRTIO_BLK_S_OK)
		b->stats.io_errors += status == VIRTIO_BLK_S_IOERR;
	req->busy = false;
}

/* Only once no submitted request refers to its fd. */
static void backing_free(struct block_backing *k)
{
	if (k->fd >= 0)
		close(k->fd);
	free(k->name);
	free(k);
}

/* A request on backing k completed; a replaced backing closes with its last one. */
static void backing_release(struct virtio_block *b, struct block_backing *k)
{
	k->inflight--;
	if (k->inflight || k == b->backing)
		return;
	for (struct block_backing **p = &b->retired; *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	log_info("drive %s: closed its previous backing %s", b->id, k->name);
	backing_free(k);
}

static struct block_request *free_request(struct virtio_block *b)
{
	for (unsigned i = 0; i < BLOCK_QUEUE_SIZE; i++)
		if (!b->reqs[i].busy)
			return &b->reqs[i];
	return NULL;
}

/* Collect the data segments of a chain: for writes the readable part after the header, for
 * reads the writable part before the status byte. */
static bool collect_iov(struct block_request *req, const struct virtq_chain *c, bool to_device)
{
	req->niov = 0;
	uint64_t total = 0;
	if (to_device) {
		uint64_t skip = REQ_HEADER_LEN;
		for (unsigned i = 0; i < c->nreadable; i++) {
			const struct virtq_seg *s = &c->segs[i];
			if (skip >= s->len) {
				skip -= s->len;
				continue;
			}
			req->iov[req->niov++] = (struct iovec){s->host + skip, s->len - skip};
			total += s->len - skip;
			skip = 0;
		}
	} else {
		for (unsigned i = c->nreadable; i < c->nsegs; i++) {
			const struct virtq_seg *s = &c->segs[i];
			uint32_t len = i + 1 == c->nsegs ? s->len - 1 : s->len;
			if (len)
				req->iov[req->niov++] = (struct iovec){s->host, len};
			total += len;
		}
		req->data_len = (uint32_t)total;
	}
	return total % SECTOR == 0 && total <= UINT32_MAX;
}

static bool in_range(const struct virtio_block *b, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = bytes / SECTOR;
	return sector <= b->capacity && sectors <= b->capacity - sector;
}

/* Start one request; false if the driver's chain is malformed (NEEDS_RESET). */
static bool start_request(struct virtio_block *b, const struct virtq_chain *c)
{
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;
	if (c->readable_len < REQ_HEADER_LEN || c->writable_len < 1) {
		virtio_mmio_fail(&b->transport, "block request without header or status byte");
		return false;
	}
	virtq_chain_read(c, 0, &hdr, sizeof(hdr));
	b->stats.requests++;
	struct block_request *req = free_request(b);
	const struct virtq_seg *last = &c->segs[c->nsegs - 1];
	*req = (struct block_request){
	    .busy = true,
	    .head = c->head,
	    .type = hdr.type,
	    .status = last->host + last->len - 1,
	    .generation = b->generation,
	    .backing = b->backing,
	};
	struct io_uring_sqe *sqe = NULL;
	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool out = hdr.type == VIRTIO_BLK_T_OUT;
		uint64_t bytes;
		if (!collect_iov(req, c, out)) {
			complete(b, req, VIRTIO_BLK_S_IOERR);
			return true;
		}
		bytes = 0;
		for (unsigned i = 0; i < req->niov; i++)
			bytes += req->iov[i].iov_len;
		if ((out && b->read_only) || !in_range(b, hdr.sector, bytes)) {
			req->data_len = 0;
			complete(b, req, VIRTIO_BLK_S_IOERR);
			return true;
		}
		if (out) {
			req->data_len = 0;
			b->stats.writes++;
		} else {
			b->stats.reads++;
		}
		if (bytes == 0) {
			complete(b, req, VIRTIO_BLK_S_OK);
			return true;
		}
		sqe = io_uring_get_sqe(&b->ring);
		if (out)
			io_uring_prep_writev(sqe, req->backing->fd, req->iov, req->niov,
					     hdr.sector * SECTOR);
		else
			io_uring_prep_readv(sqe, req->backing->fd, req->iov, req->niov,
					    hdr.sector * SECTOR);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		b->stats.flushes++;
		sqe = io_uring_get_sqe(&b->ring);
		io_uring_prep_fsync(sqe, req->backing->fd, IORING_FSYNC_DATASYNC);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		b->stats.get_ids++;
		char id[VIRTIO_BLK_ID_BYTES] = {0};
		memcpy(id, b->id, strnlen(b->id, sizeof(id)));
		/* The ID goes into the writable part before the status byte. */
		uint64_t room = c->writable_len - 1;
		req->data_len =
		    (uint32_t)virtq_chain_write(c, 0, id, room < sizeof(id) ? room : sizeof(id));
		complete(b, req, VIRTIO_BLK_S_OK);
		return true;
	}
	default:
		b->stats.unsupported++;
		complete(b, req, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	io_uring_sqe_set_data(sqe, req);
	b->inflight++;
	req->backing->inflight++;
	return true;
}

static void queue_notify(void *dev, unsigned q)
{
	struct virtio_block *b = dev;
	struct virtq *vq = &b->transport.queues[0];
	static __thread struct virtq_chain chain;
	bool submitted = false;
	if (b->quiesced)
		return; /* unquiesce looks at the queue again */
	b->stalled = false;
	for (;;) {
		/* A driver may publish a head again while it is still in flight; then the table
		 * fills up and the rest waits for completions. */
		if (!free_request(b)) {
			b->stalled = true;
			break;
		}
		int r = virtq_pop(vq, &chain);
		if (r == 0)
			break;
		if (r < 0) {
			virtio_mmio_fail(&b->transport, err_msg());
			break;
		}
		if (!start_request(b, &chain))
			break;
		submitted = true;
	}
	if (submitted && b->inflight)
		io_uring_submit(&b->ring);
	virtio_mmio_used(&b->transport, 0);
}

/* Complete what the kernel finished; returns how many. Lock held. */
static unsigned reap(struct virtio_block *b)
{
	struct io_uring_cqe *cqe;
	unsigned head, count = 0;
	io_uring_for_each_cqe(&b->ring, head, cqe)
	{
		struct block_request *req = io_uring_cqe_get_data(cqe);
		uint8_t status = VIRTIO_BLK_S_OK;
		if (cqe->res < 0) {
			status = VIRTIO_BLK_S_IOERR;
			log_warn("drive %s: %s: %s failed: %s", b->id, req->backing->name,
				 req->type == VIRTIO_BLK_T_FLUSH ? "flush" : "I/O",
				 strerror(-cqe->res));
		} else if (req->type != VIRTIO_BLK_T_FLUSH) {
			uint64_t want = request_bytes(req);
			/* A short read past the file's end reads zeros; a short write is an error.
			 */
			if ((uint64_t)cqe->res < want) {
				if (req->type == VIRTIO_BLK_T_OUT)
					status = VIRTIO_BLK_S_IOERR;
				else
					for (unsigned i = 0, done = 0; i < req->niov; i++) {
						struct iovec *io = &req->iov[i];
						uint64_t got = (uint64_t)cqe->res > done
								   ? (uint64_t)cqe->res - done
								   : 0;
						if (got < io->iov_len)
							memset((uint8_t *)io->iov_base + got, 0,
							       io->iov_len - got);
						done += (unsigned)io->iov_len;
					}
			}
		}
		complete(b, req, status);
		b->inflight--;
		backing_release(b, req->backing);
		count++;
	}
	io_uring_cq_advance(&b->ring, count);
	if (count)
		virtio_mmio_used(&b->transport, 0);
	return count;
}

static void on_completions(void *ctx, uint32_t events)
{
	struct virtio_block *b = ctx;
	uint64_t v;
	ssize_t n = read(b->ring_efd, &v, sizeof(v));
	(void)n;
	pthread_mutex_lock(&b->transport.lock);
	reap(b);
	if (b->stalled && b->transport.active)
		queue_notify(b, 0);
	pthread_mutex_unlock(&b->transport.lock);
}

/* Snapshots: every request in flight completes and is pushed before this returns. */
static void quiesce(void *dev)
{
	struct virtio_block *b = dev;
	pthread_mutex_lock(&b->transport.lock);
	b->quiesced = true;
	while (b->inflight) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&b->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0) {
			/* Nothing left to wait on that we know of: a broken ring. */
			log_error("drive %s: waiting for %u requests in flight: %s", b->id,
				  b->inflight, strerror(-r));
			break;
		}
		reap(b);
	}
	pthread_mutex_unlock(&b->transport.lock);
}

static void unquiesce(void *dev)
{
	struct virtio_block *b = dev;
	pthread_mutex_lock(&b->transport.lock);
	b->quiesced = false;
	/* What the driver queued meanwhile; its kick went unanswered. */
	if (b->transport.active && b->transport.queues[0].s.ready)
		queue_notify(b, 0);
	pthread_mutex_unlock(&b->transport.lock);
}

static int parse(const char *spec, void **config)
{
	struct block_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return err_set(ENOMEM, "--drive");
	int r = block_config_parse(spec, cfg);
	if (r < 0) {
		free(cfg);
		return r;
	}
	*config = cfg;
	return 0;
}

static void free_config(void *config)
{
	struct block_config *cfg = config;
	if (!cfg)
		return;
	if (cfg->fd >= 0)
		close(cfg->fd);
	block_config_free_strings(cfg);
	free(cfg);
}

static const char *conflict(const void *a, const void *b)
{
	const struct block_config *x = a, *y = b;
	if (strcmp(x->id, y->id) == 0)
		return "two drives have the same id";
	if (x->fd >= 0 && x->fd == y->fd)
		return "two drives use the same fd";
	return NULL;
}

/* Whether an open image can back a drive: its kind, its size, and an access mode that allows
 * what the drive does. `name` starts each message ("drive NAME: ..."). */
static int backing_check(int fd, bool read_only, const char *name, uint64_t *sectors)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_errno("drive %s", name);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err_set(EINVAL, "drive %s: not a regular file or block device", name);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return err_errno("drive %s", name);
	if (fl & O_PATH)
		return err_set(EBADF, "drive %s: opened with O_PATH, which allows no I/O", name);
	if ((fl & O_ACCMODE) == O_WRONLY)
		return err_set(EBADF, "drive %s: opened write-only; a drive must be readable",
			       name);
	if ((fl & O_ACCMODE) == O_RDONLY && !read_only)
		return err_set(EBADF,
			       "drive %s: opened read-only, but the drive is writable (make the "
			       "drive read-only, or open the image read-write)",
			       name);
	uint64_t bytes = (uint64_t)st.st_size;
	/* st_size is 0 for a block device. */
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &bytes) < 0)
		return err_errno("drive %s: BLKGETSIZE64", name);
	if (bytes % SECTOR)
		log_warn("drive %s: size is not a multiple of 512; the last %llu bytes are unseen",
			 name, (unsigned long long)(bytes % SECTOR));
	*sectors = bytes / SECTOR;
	return 0;
}

/* Takes fd: closed on failure. */
static struct block_backing *backing_new(int fd, const char *name)
{
	struct block_backing *k = calloc(1, sizeof(*k));
	char *copy = strdup(name);
	if (!k || !copy) {
		free(k);
		free(copy);
		close(fd);
		err_set(ENOMEM, "drive %s", name);
		return NULL;
	}
	k->fd = fd;
	k->name = copy;
	return k;
}

static void destroy(void *dev)
{
	struct virtio_block *b = dev;
	if (!b)
		return;
	virtio_mmio_destroy(&b->transport);
	if (b->ring_ready)
		io_uring_queue_exit(&b->ring);
	if (b->ring_efd >= 0)
		close(b->ring_efd);
	while (b->retired) {
		struct block_backing *k = b->retired;
		b->retired = k->next;
		backing_free(k);
	}
	if (b->backing)
		backing_free(b->backing);
	free(b->id);
	free(b);
}

/* The drive's image: its own descriptor for the config's fd, or the path opened. */
static int open_backing(const struct block_config *cfg, struct virtio_block *b)
{
	char name[32];
	const char *what = cfg->path;
	int fd;
	if (cfg->fd >= 0) {
		snprintf(name, sizeof(name), "fd %d", cfg->fd);
		what = name;
		fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0);
	} else if (cfg->path) {
		fd = open(cfg->path, (cfg->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	} else {
		return err_set(EINVAL, "drive %s: neither a path nor an fd", cfg->id);
	}
	if (fd < 0)
		return err_errno("drive %s", what);
	b->backing = backing_new(fd, what);
	if (!b->backing)
		return -ENOMEM;
	return backing_check(fd, cfg->read_only, what, &b->capacity);
}

static int create(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		  struct virtio_mmio_dev **transport)
{
	const struct block_config *cfg = config;
	const char *name = cfg->path ? cfg->path : cfg->id;
	struct virtio_block *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "drive %s", name);
	b->ring_efd = -1;
	b->read_only = cfg->read_only;
	b->id = strdup(cfg->id);
	int r = b->id ? open_backing(cfg, b) : err_set(ENOMEM, "drive %s", name);
	if (r < 0)
		goto fail;
	name = b->backing->name;
	r = -io_uring_queue_init(BLOCK_QUEUE_SIZE, &b->ring, 0);
	if (r > 0) {
		r = err_set(r, "drive %s: io_uring_queue_init: %s", name, strerror(r));
		goto fail;
	}
	b->ring_ready = true;
	b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ring_efd < 0 || io_uring_register_eventfd(&b->ring, b->ring_efd) < 0) {
		r = err_errno("drive %s: io_uring eventfd", name);
		goto fail;
	}
	b->ops = (struct virtio_device_ops){
	    .name = "virtio-blk",
	    .device_id = VIRTIO_ID_BLOCK,
	    .nqueues = 1,
	    .queue_max = BLOCK_QUEUE_SIZE,
	    .features = (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			(1ull << VIRTIO_BLK_F_BLK_SIZE) |
			(cfg->read_only ? 1ull << VIRTIO_BLK_F_RO : 0),
	    .config_size = sizeof(struct virtio_blk_config),
	    .config_read = config_read,
	    .activate = activate,
	    .reset = reset,
	    .queue_notify = queue_notify,
	};
	r = virtio_mmio_init(&b->transport, &b->ops, b, index, gm);
	if (r < 0)
		goto fail;
	*dev = b;
	*transport = &b->transport;
	return 0;
fail:
	destroy(b);
	return r;
}

static int start(void *dev, struct event_loop *loop)
{
	struct virtio_block *b = dev;
	return event_loop_add(loop, b->ring_efd, EPOLLIN, on_completions, b);
}

int block_update_backing(void *dev, int fd, const char *what)
{
	struct virtio_block *b = dev;
	char fd_name[32];
	if (!what) {
		snprintf(fd_name, sizeof(fd_name), "fd %d", fd);
		what = fd_name;
	}
	/* Messages read "drive ID: new backing WHAT: ...". */
	char name[256];
	snprintf(name, sizeof(name), "%s: new backing %s", b->id, what);
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0)
		return err_errno("drive %s", name);
	uint64_t sectors;
	int r = backing_check(nfd, b->read_only, name, &sectors);
	if (r < 0) {
		close(nfd);
		return r;
	}
	struct block_backing *k = backing_new(nfd, what);
	if (!k)
		return -ENOMEM;
	pthread_mutex_lock(&b->transport.lock);
	struct block_backing *old = b->backing;
	b->backing = k;
	if (old->inflight) {
		old->next = b->retired;
		b->retired = old;
	} else {
		backing_free(old);
	}
	b->stats.backing_updates++;
	uint64_t was = b->capacity;
	if (sectors != was) {
		b->capacity = sectors;
		virtio_mmio_config_changed(&b->transport);
	}
	pthread_mutex_unlock(&b->transport.lock);
	log_info("drive %s: now backed by %s, %llu sectors (was %llu)", b->id, what,
		 (unsigned long long)sectors, (unsigned long long)was);
	return 0;
}

void block_get_stats(void *dev, struct block_stats *out)
{
	struct virtio_block *b = dev;
	pthread_mutex_lock(&b->transport.lock);
	*out = b->stats;
	pthread_mutex_unlock(&b->transport.lock);
}

static void metrics(void *dev, struct virtio_device_metrics *m)
{
	struct block_stats s;
	block_get_stats(dev, &s);
	*m = (struct virtio_device_metrics){
	    .requests = s.requests,
	    .bytes_to_guest = s.bytes_read,
	    .bytes_from_guest = s.bytes_written,
	    .errors = s.io_errors + s.unsupported,
	};
}

const struct virtio_device_class virtio_block_class = {
    .flag = "drive",
    .usage = DRIVE_GRAMMAR "   a raw disk image (or one already open, fd=N) as virtio-blk",
    .parse = parse,
    .free_config = free_config,
    .conflict = conflict,
    .create = create,
    .start = start,
    .destroy = destroy,
    .metrics = metrics,
    .quiesce = quiesce,
    .unquiesce = unquiesce,
};
