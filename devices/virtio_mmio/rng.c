#include "devices/virtio_mmio/rng.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RNG_QUEUE_SIZE 256

/* The spec takes no options; these words only say "add one". */
static const char *const rng_specs[] = {"on", "default", NULL};

struct rng_config {
	bool enabled; /* always true: the device has nothing else to configure */
};

struct virtio_rng {
	struct virtio_mmio_dev transport;
	struct virtio_device_ops ops;
	bool quiesced; /* for a snapshot: the queue is left alone until unquiesce */
	struct rng_stats stats;
	struct virtq_chain chain;
};

/* Fill the chain's buffers (all device-writable) from getrandom, up to RNG_REQUEST_MAX bytes. */
static int fill(const struct virtq_chain *c, uint32_t *filled)
{
	uint64_t total = 0;
	for (unsigned i = c->nreadable; i < c->nsegs && total < RNG_REQUEST_MAX; i++) {
		const struct virtq_seg *s = &c->segs[i];
		uint64_t want = s->len < RNG_REQUEST_MAX - total ? s->len : RNG_REQUEST_MAX - total;
		for (uint64_t done = 0; done < want;) {
			/* Large requests may come back short (a signal); the pool is never empty
			 * once the host has booted, so this does not block. */
			ssize_t n = getrandom(s->host + done, want - done, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return err_errno("entropy source: getrandom");
			done += (uint64_t)n;
		}
		total += want;
	}
	*filled = (uint32_t)total;
	return 0;
}

static void queue_notify(void *dev, unsigned q)
{
	struct virtio_rng *g = dev;
	struct virtio_mmio_dev *t = &g->transport;
	struct virtq *vq = &t->queues[0];
	bool pushed = false;
	if (g->quiesced)
		return; /* unquiesce looks at the queue again */
	for (;;) {
		int r = virtq_pop(vq, &g->chain);
		if (r == 0)
			break;
		if (r < 0) {
			g->stats.bad_requests++;
			virtio_mmio_fail(t, err_msg());
			break;
		}
		/* 5.4.6.1: the driver places only device-writable buffers. */
		if (g->chain.nreadable) {
			g->stats.bad_requests++;
			virtio_mmio_fail(t, "rng request with a device-readable buffer");
			break;
		}
		uint32_t filled = 0;
		if (fill(&g->chain, &filled) < 0) {
			g->stats.entropy_errors++;
			log_error("%s", err_msg());
			virtio_mmio_fail(t, err_msg());
			break;
		}
		virtq_push(vq, g->chain.head, filled);
		g->stats.requests++;
		g->stats.bytes += filled;
		pushed = true;
	}
	if (pushed)
		virtio_mmio_used(t, 0);
}

static int activate(void *dev, uint64_t features)
{
	return 0; /* nothing to start: requests are served as they are kicked */
}

static void quiesce(void *dev)
{
	struct virtio_rng *g = dev;
	/* Requests complete inside the kick that brought them: none is ever in flight. */
	pthread_mutex_lock(&g->transport.lock);
	g->quiesced = true;
	pthread_mutex_unlock(&g->transport.lock);
}

static void unquiesce(void *dev)
{
	struct virtio_rng *g = dev;
	struct virtio_mmio_dev *t = &g->transport;
	pthread_mutex_lock(&t->lock);
	g->quiesced = false;
	/* What the driver queued meanwhile; its kick went unanswered. */
	if (t->active && t->queues[0].s.ready)
		queue_notify(g, 0);
	pthread_mutex_unlock(&t->lock);
}

void rng_get_stats(void *dev, struct rng_stats *out)
{
	struct virtio_rng *g = dev;
	pthread_mutex_lock(&g->transport.lock);
	*out = g->stats;
	pthread_mutex_unlock(&g->transport.lock);
}

static void metrics(void *dev, struct virtio_device_metrics *m)
{
	struct rng_stats s;
	rng_get_stats(dev, &s);
	*m = (struct virtio_device_metrics){
	    .requests = s.requests,
	    .bytes_to_guest = s.bytes,
	    .bytes_from_guest = 0,
	    .errors = s.bad_requests + s.entropy_errors,
	};
}

static int parse(const char *spec, void **config)
{
	bool known = false;
	for (unsigned i = 0; rng_specs[i] && !known; i++)
		known = strcmp(spec, rng_specs[i]) == 0;
	if (!known)
		return err_set(EINVAL,
			       "--rng %s: expected 'on' or 'default' (the device has no options)",
			       spec);
	struct rng_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return err_set(ENOMEM, "--rng");
	cfg->enabled = true;
	*config = cfg;
	return 0;
}

static const char *conflict(const void *a, const void *b)
{
	return "only one rng device is supported";
}

static void destroy(void *dev)
{
	struct virtio_rng *g = dev;
	if (!g)
		return;
	virtio_mmio_destroy(&g->transport);
	free(g);
}

static int create(const void *config, unsigned index, const struct guest_mem *gm, void **dev,
		  struct virtio_mmio_dev **transport)
{
	struct virtio_rng *g = calloc(1, sizeof(*g));
	if (!g)
		return err_set(ENOMEM, "rng");
	g->ops = (struct virtio_device_ops){
	    .name = "virtio-rng",
	    .device_id = VIRTIO_ID_RNG,
	    .nqueues = 1,
	    .queue_max = RNG_QUEUE_SIZE,
	    .features = 0,
	    .config_size = 0,
	    .activate = activate,
	    .queue_notify = queue_notify,
	};
	int r = virtio_mmio_init(&g->transport, &g->ops, g, index, gm);
	if (r < 0) {
		destroy(g);
		return r;
	}
	*dev = g;
	*transport = &g->transport;
	return 0;
}

static int start(void *dev, struct event_loop *loop)
{
	return 0; /* no file descriptors of its own: kicks reach it through the transport */
}

const struct virtio_device_class virtio_rng_class = {
    .flag = "rng",
    .usage = "on   virtio-rng: entropy for the guest from the host's getrandom(2)",
    .parse = parse,
    .conflict = conflict,
    .create = create,
    .start = start,
    .destroy = destroy,
    .metrics = metrics,
    .quiesce = quiesce,
    .unquiesce = unquiesce,
};
