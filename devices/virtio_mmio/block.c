#include "devices/virtio_mmio/block.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BLOCK_QUEUE_SIZE 256
#define SECTOR		 512
#define REQ_HEADER_LEN	 16

struct block_request {
	bool busy;
	uint16_t head;
	uint32_t type;
	uint8_t *status;   /* host pointer to the chain's status byte */
	uint32_t data_len; /* bytes the device writes into the chain, status excluded */
	uint64_t generation;
	unsigned niov;
	struct iovec iov[BLOCK_QUEUE_SIZE];
};

struct virtio_block {
	struct virtio_mmio_dev transport;
	struct block_config cfg;
	int fd;
	uint64_t capacity; /* sectors */
	uint64_t features;
	uint64_t generation; /* bumped on reset: late completions of old requests are dropped */
	struct io_uring ring;
	bool ring_ready;
	int ring_efd;
	unsigned inflight;
	bool stalled; /* requests wait in the ring for a free slot */
	struct block_request reqs[BLOCK_QUEUE_SIZE];
	struct virtio_device_ops ops;
	struct block_stats stats;
};

static void block_config_free(struct block_config *cfg)
{
	free(cfg->path);
	free(cfg->id);
	cfg->path = cfg->id = NULL;
}

int block_config_parse(const char *spec, struct block_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	char *copy = strdup(spec);
	if (!copy)
		return err_set(ENOMEM, "--drive");
	int r = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (strcmp(tok, "ro") == 0 || strcmp(tok, "readonly") == 0) {
			cfg->read_only = true;
		} else if (eq && strncmp(tok, "path=", 5) == 0 && eq[1]) {
			free(cfg->path);
			cfg->path = strdup(eq + 1);
		} else if (eq && strncmp(tok, "id=", 3) == 0 && eq[1]) {
			if (strlen(eq + 1) > VIRTIO_BLK_ID_BYTES)
				r = err_set(EINVAL, "--drive %s: id longer than %d bytes", spec,
					    VIRTIO_BLK_ID_BYTES);
			free(cfg->id);
			cfg->id = strdup(eq + 1);
		} else if (eq && strncmp(tok, "ro=", 3) == 0) {
			cfg->read_only = strcmp(eq + 1, "on") == 0 || strcmp(eq + 1, "1") == 0 ||
					 strcmp(eq + 1, "true") == 0;
		} else {
			r = err_set(EINVAL,
				    "--drive %s: unknown or empty option '%s' (expected "
				    "path=FILE[,id=ID][,ro])",
				    spec, tok);
		}
	}
	free(copy);
	if (r == 0 && !cfg->path)
		r = err_set(EINVAL, "--drive %s: path=FILE is required", spec);
	if (r == 0 && !cfg->id) {
		const char *base = strrchr(cfg->path, '/');
		base = base ? base + 1 : cfg->path;
		cfg->id = strndup(base, VIRTIO_BLK_ID_BYTES);
	}
	if (r < 0)
		block_config_free(cfg);
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

static void complete(struct virtio_block *b, struct block_request *req, uint8_t status)
{
	if (req->generation == b->generation) {
		*req->status = status;
		virtq_push(&b->transport.queues[0], req->head,
			   status == VIRTIO_BLK_S_OK ? req->data_len + 1 : 1);
	}
	if (status != VIRTIO_BLK_S_OK)
		b->stats.io_errors += status == VIRTIO_BLK_S_IOERR;
	req->busy = false;
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
	struct block_request *req = free_request(b);
	const struct virtq_seg *last = &c->segs[c->nsegs - 1];
	*req = (struct block_request){
	    .busy = true,
	    .head = c->head,
	    .type = hdr.type,
	    .status = last->host + last->len - 1,
	    .generation = b->generation,
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
		if ((out && b->cfg.read_only) || !in_range(b, hdr.sector, bytes)) {
			req->data_len = 0;
			complete(b, req, VIRTIO_BLK_S_IOERR);
			return true;
		}
		if (out) {
			req->data_len = 0;
			b->stats.writes++;
			b->stats.bytes_written += bytes;
		} else {
			b->stats.reads++;
			b->stats.bytes_read += bytes;
		}
		if (bytes == 0) {
			complete(b, req, VIRTIO_BLK_S_OK);
			return true;
		}
		sqe = io_uring_get_sqe(&b->ring);
		if (out)
			io_uring_prep_writev(sqe, b->fd, req->iov, req->niov, hdr.sector * SECTOR);
		else
			io_uring_prep_readv(sqe, b->fd, req->iov, req->niov, hdr.sector * SECTOR);
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		b->stats.flushes++;
		sqe = io_uring_get_sqe(&b->ring);
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		break;
	case VIRTIO_BLK_T_GET_ID: {
		b->stats.get_ids++;
		char id[VIRTIO_BLK_ID_BYTES] = {0};
		memcpy(id, b->cfg.id, strnlen(b->cfg.id, sizeof(id)));
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
	return true;
}

static void queue_notify(void *dev, unsigned q)
{
	struct virtio_block *b = dev;
	struct virtq *vq = &b->transport.queues[0];
	static __thread struct virtq_chain chain;
	bool submitted = false;
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

static void on_completions(void *ctx, uint32_t events)
{
	struct virtio_block *b = ctx;
	uint64_t v;
	ssize_t n = read(b->ring_efd, &v, sizeof(v));
	(void)n;
	pthread_mutex_lock(&b->transport.lock);
	struct io_uring_cqe *cqe;
	unsigned head, count = 0;
	io_uring_for_each_cqe(&b->ring, head, cqe)
	{
		struct block_request *req = io_uring_cqe_get_data(cqe);
		uint8_t status = VIRTIO_BLK_S_OK;
		if (cqe->res < 0) {
			status = VIRTIO_BLK_S_IOERR;
			log_warn("%s: %s failed: %s", b->cfg.path,
				 req->type == VIRTIO_BLK_T_FLUSH ? "flush" : "I/O",
				 strerror(-cqe->res));
		} else if (req->type != VIRTIO_BLK_T_FLUSH) {
			uint64_t want = 0;
			for (unsigned i = 0; i < req->niov; i++)
				want += req->iov[i].iov_len;
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
		count++;
	}
	io_uring_cq_advance(&b->ring, count);
	if (count)
		virtio_mmio_used(&b->transport, 0);
	if (b->stalled && b->transport.active)
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
	block_config_free(config);
	free(config);
}

static const char *conflict(const void *a, const void *b)
{
	const struct block_config *x = a, *y = b;
	if (strcmp(x->id, y->id) == 0)
		return "two drives have the same id";
	return NULL;
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
	if (b->fd >= 0)
		close(b->fd);
	block_config_free(&b->cfg);
	free(b);
}

static int create(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		  struct virtio_mmio_dev **transport)
{
	const struct block_config *cfg = config;
	struct virtio_block *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "drive %s", cfg->path);
	b->fd = b->ring_efd = -1;
	b->cfg.path = strdup(cfg->path);
	b->cfg.id = strdup(cfg->id);
	b->cfg.read_only = cfg->read_only;
	int r = 0;
	b->fd = open(cfg->path, (cfg->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		r = err_errno("drive %s", cfg->path);
		goto fail;
	}
	struct stat st;
	if (fstat(b->fd, &st) < 0) {
		r = err_errno("drive %s: stat", cfg->path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = err_set(EINVAL, "drive %s: not a regular file or block device", cfg->path);
		goto fail;
	}
	b->capacity = (uint64_t)st.st_size / SECTOR;
	if (st.st_size % SECTOR)
		log_warn("drive %s: size is not a multiple of 512; the last %lld bytes are unseen",
			 cfg->path, (long long)(st.st_size % SECTOR));
	r = -io_uring_queue_init(BLOCK_QUEUE_SIZE, &b->ring, 0);
	if (r > 0) {
		r = err_set(r, "drive %s: io_uring_queue_init: %s", cfg->path, strerror(r));
		goto fail;
	}
	b->ring_ready = true;
	b->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->ring_efd < 0 || io_uring_register_eventfd(&b->ring, b->ring_efd) < 0) {
		r = err_errno("drive %s: io_uring eventfd", cfg->path);
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

const struct virtio_device_class virtio_block_class = {
    .flag = "drive",
    .usage = "path=FILE[,id=ID][,ro]   a raw disk image as virtio-blk",
    .parse = parse,
    .free_config = free_config,
    .conflict = conflict,
    .create = create,
    .start = start,
    .destroy = destroy,
};
