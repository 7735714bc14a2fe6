#include "devices/virtio_mmio/transport.h"
#include "memory/layout.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAGIC	      0x74726976 /* "virt" */
#define VENDOR_ID     0x45424d52 /* "EMBR" */
#define CONFIG_OFFSET 0x100

int virtio_mmio_init(struct virtio_mmio_dev *t, const struct virtio_device_ops *ops, void *dev,
		     unsigned index, const struct guest_mem *gm)
{
	memset(t, 0, sizeof(*t));
	if (index >= VIRTIO_MMIO_MAX_DEVICES)
		return err_set(ENOSPC, "too many virtio devices (at most %d)",
			       VIRTIO_MMIO_MAX_DEVICES);
	if (ops->nqueues > VIRTIO_MMIO_MAX_QUEUES)
		return err_set(EINVAL, "%s: %u queues", ops->name, ops->nqueues);
	pthread_mutex_init(&t->lock, NULL);
	t->ops = ops;
	t->dev = dev;
	t->index = index;
	t->base = LAYOUT_VIRTIO_MMIO_BASE + index * LAYOUT_VIRTIO_MMIO_SIZE;
	t->irq = VIRTIO_MMIO_FIRST_IRQ + index;
	t->vm_fd = -1;
	t->irq_fd = -1;
	for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
		t->kick_fds[q] = -1;
		virtq_init(&t->queues[q], gm, ops->queue_max);
	}
	return 0;
}

static void on_kick(void *ctx, uint32_t events)
{
	struct virtio_kick *k = ctx;
	uint64_t v;
	if (read(k->t->kick_fds[k->q], &v, sizeof(v)) == sizeof(v))
		virtio_mmio_kick(k->t, k->q);
}

int virtio_mmio_attach(struct virtio_mmio_dev *t, int vm_fd, struct bus *mmio,
		       struct event_loop *loop)
{
	int r = bus_register(mmio, t->base, LAYOUT_VIRTIO_MMIO_SIZE, virtio_mmio_access, t,
			     t->ops->name);
	if (r < 0 || vm_fd < 0)
		return r;
	t->vm_fd = vm_fd;
	t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irq_fd < 0)
		return err_errno("%s: eventfd", t->ops->name);
	struct kvm_irqfd irqfd = {.fd = (uint32_t)t->irq_fd, .gsi = t->irq};
	if (ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0)
		return err_errno("%s: KVM_IRQFD gsi %u", t->ops->name, t->irq);
	for (unsigned q = 0; q < t->ops->nqueues; q++) {
		t->kick_fds[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->kick_fds[q] < 0)
			return err_errno("%s: eventfd", t->ops->name);
		/* A write of q to QueueNotify signals this eventfd inside KVM, with no exit. */
		struct kvm_ioeventfd io = {
		    .datamatch = q,
		    .addr = t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		    .len = 4,
		    .fd = t->kick_fds[q],
		    .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
		};
		if (ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0)
			return err_errno("%s: KVM_IOEVENTFD queue %u", t->ops->name, q);
		t->kicks[q] = (struct virtio_kick){t, q};
		if (loop) {
			r = event_loop_add(loop, t->kick_fds[q], EPOLLIN, on_kick, &t->kicks[q]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio_dev *t)
{
	if (!t->ops)
		return; /* never initialized: its fds are not ours to close */
	for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
		if (t->kick_fds[q] >= 0)
			close(t->kick_fds[q]);
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	t->irq_fd = -1;
	pthread_mutex_destroy(&t->lock);
	t->ops = NULL;
}

int virtio_mmio_cmdline(const struct virtio_mmio_dev *t, char *buf, size_t size)
{
	int n = snprintf(buf, size, "virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)t->base,
			 t->irq);
	return (n < 0 || (size_t)n >= size) ? -ENOSPC : n;
}

static void raise_interrupt(struct virtio_mmio_dev *t, uint32_t why)
{
	t->interrupt_status |= why;
	t->stats.interrupts++;
	if (t->irq_fd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(t->irq_fd, &one, sizeof(one));
		(void)w;
	}
}

void virtio_mmio_fail(struct virtio_mmio_dev *t, const char *why)
{
	if (t->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	t->stats.needs_reset_events++;
	log_warn("%s: device needs reset: %s", t->ops->name, why);
	t->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	t->active = false;
	raise_interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_config_changed(struct virtio_mmio_dev *t)
{
	t->config_generation++;
	/* A driver that is still setting up reads the configuration when it gets there; before
	 * DRIVER_OK it has no handler to take the interrupt. */
	if (t->status & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_used(struct virtio_mmio_dev *t, unsigned q)
{
	if (virtq_should_notify(&t->queues[q]))
		raise_interrupt(t, VIRTIO_MMIO_INT_VRING);
}

void virtio_mmio_kick(struct virtio_mmio_dev *t, unsigned q)
{
	if (q >= t->ops->nqueues)
		return;
	pthread_mutex_lock(&t->lock);
	t->stats.notifies++;
	if (t->active && t->queues[q].s.ready)
		t->ops->queue_notify(t->dev, q);
	pthread_mutex_unlock(&t->lock);
}

static void device_reset(struct virtio_mmio_dev *t)
{
	if (t->ops->reset)
		t->ops->reset(t->dev);
	t->status = 0;
	t->driver_features = 0;
	t->device_features_sel = t->driver_features_sel = t->queue_sel = 0;
	t->interrupt_status = 0;
	t->active = false;
	for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
		virtq_reset(&t->queues[q]);
}

static uint64_t offered_features(const struct virtio_mmio_dev *t)
{
	return t->ops->features | (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX);
}

#define STATUS_DRIVER_BITS                                                                         \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)
#define STATUS_KNOWN_BITS (STATUS_DRIVER_BITS | VIRTIO_CONFIG_S_NEEDS_RESET)

/* The status bit of v set without the one it needs (virtio 1.2 section 3.1.1), or 0. */
static uint32_t status_missing_prerequisite(uint32_t v)
{
	if ((v & VIRTIO_CONFIG_S_DRIVER) && !(v & VIRTIO_CONFIG_S_ACKNOWLEDGE))
		return VIRTIO_CONFIG_S_DRIVER;
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(v & VIRTIO_CONFIG_S_DRIVER))
		return VIRTIO_CONFIG_S_FEATURES_OK;
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK))
		return VIRTIO_CONFIG_S_DRIVER_OK;
	return 0;
}

static bool features_acceptable(const struct virtio_mmio_dev *t, uint64_t features)
{
	/* Nothing that was not offered, and virtio 1 at least. */
	return !(features & ~offered_features(t)) && (features & (1ull << VIRTIO_F_VERSION_1));
}

/* Status bits only accumulate until a reset (drivers never clear one), a bit whose
 * prerequisite is missing is ignored, and NEEDS_RESET is the device's alone. So the device is
 * active exactly when DRIVER_OK is set without NEEDS_RESET: the invariant a restore checks. */
static void set_status(struct virtio_mmio_dev *t, uint32_t v)
{
	if (v == 0) {
		device_reset(t);
		return;
	}
	v = (v & STATUS_DRIVER_BITS) | t->status;
	for (uint32_t bit; (bit = status_missing_prerequisite(v));)
		v &= ~bit;
	uint32_t added = v & ~t->status;
	if ((added & VIRTIO_CONFIG_S_FEATURES_OK) && !features_acceptable(t, t->driver_features))
		v &= ~(uint32_t)(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	added = v & ~t->status;
	t->status = v;
	if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		bool event_idx = t->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
		for (unsigned q = 0; q < t->ops->nqueues; q++) {
			struct virtq *vq = &t->queues[q];
			if (vq->s.ready)
				vq->event_idx = event_idx;
		}
		if (t->ops->activate(t->dev, t->driver_features) < 0) {
			virtio_mmio_fail(t, err_msg());
			return;
		}
		t->active = true;
		log_info("%s at 0x%llx (irq %u): driver ready, features 0x%llx", t->ops->name,
			 (unsigned long long)t->base, t->irq,
			 (unsigned long long)t->driver_features);
	}
}

static struct virtq *selected(struct virtio_mmio_dev *t)
{
	return t->queue_sel < t->ops->nqueues ? &t->queues[t->queue_sel] : NULL;
}

static uint32_t read_reg(struct virtio_mmio_dev *t, uint64_t off)
{
	struct virtq *q = selected(t);
	uint64_t features = offered_features(t);
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VENDOR_ID;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return t->device_features_sel == 0   ? (uint32_t)features
		       : t->device_features_sel == 1 ? (uint32_t)(features >> 32)
						     : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? q->max_num : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->s.ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return t->interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return t->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->config_generation;
	default:
		return 0;
	}
}

static void set_addr_half(uint64_t *addr, bool high, uint32_t v)
{
	if (high)
		*addr = (*addr & 0xffffffffull) | ((uint64_t)v << 32);
	else
		*addr = (*addr & ~0xffffffffull) | v;
}

static void write_reg(struct virtio_mmio_dev *t, uint64_t off, uint32_t v)
{
	struct virtq *q = selected(t);
	/* Queue layout may change only while the queue is not ready (spec 4.2.2.2). */
	bool queue_writable = q && !q->s.ready;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (t->status & VIRTIO_CONFIG_S_FEATURES_OK)
			break;
		if (t->driver_features_sel == 0)
			t->driver_features = (t->driver_features & ~0xffffffffull) | v;
		else if (t->driver_features_sel == 1)
			t->driver_features =
			    (t->driver_features & 0xffffffffull) | ((uint64_t)v << 32);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (queue_writable)
			q->s.num = (uint16_t)(v <= q->max_num ? v : 0);
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (!q)
			break;
		if (v == 1 && !q->s.ready) {
			bool event_idx = t->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
			if (virtq_activate(q, event_idx) < 0)
				virtio_mmio_fail(t, err_msg());
		} else if (v == 0) {
			q->s.ready = false;
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Only reached without an ioeventfd (tests, or before attach). */
		if (v < t->ops->nqueues && t->active && t->queues[v].s.ready) {
			t->stats.notifies++;
			t->ops->queue_notify(t->dev, v);
		}
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->interrupt_status &= ~v;
		break;
	case VIRTIO_MMIO_STATUS:
		set_status(t, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (queue_writable)
			set_addr_half(&q->s.desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (queue_writable)
			set_addr_half(&q->s.avail_gpa, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (queue_writable)
			set_addr_half(&q->s.used_gpa, off == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	default:
		break;
	}
}

void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio_dev *t = opaque;
	pthread_mutex_lock(&t->lock);
	if (offset >= CONFIG_OFFSET) {
		uint64_t off = offset - CONFIG_OFFSET;
		bool inside = off < t->ops->config_size && len <= t->ops->config_size - off;
		if (!is_write) {
			memset(data, 0, len);
			if (inside && t->ops->config_read)
				t->ops->config_read(t->dev, off, data, len);
		} else if (inside && t->ops->config_write) {
			t->ops->config_write(t->dev, off, data, len);
		}
	} else if (len == 4 && (offset & 3) == 0) {
		uint32_t v;
		if (is_write) {
			memcpy(&v, data, 4);
			write_reg(t, offset, v);
		} else {
			v = read_reg(t, offset);
			memcpy(data, &v, 4);
		}
	} else if (!is_write) {
		/* Registers are 32-bit only (spec 4.2.2.1); other widths read as zero. */
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_save(struct virtio_mmio_dev *t, struct virtio_mmio_state *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&t->lock);
	s->status = t->status;
	s->device_features_sel = t->device_features_sel;
	s->driver_features_sel = t->driver_features_sel;
	s->driver_features = t->driver_features;
	s->queue_sel = t->queue_sel;
	s->interrupt_status = t->interrupt_status;
	s->config_generation = t->config_generation;
	s->active = t->active;
	s->nqueues = t->ops->nqueues;
	for (unsigned q = 0; q < t->ops->nqueues; q++)
		s->queues[q] = t->queues[q].s;
	pthread_mutex_unlock(&t->lock);
}

/* Whether the registers of a saved state are ones this device could have reached. */
static int check_registers(const struct virtio_mmio_dev *t, const struct virtio_mmio_state *s)
{
	if (s->nqueues != t->ops->nqueues)
		return err_set(EINVAL, "queue count %u, but the device has %u", s->nqueues,
			       t->ops->nqueues);
	if (s->status & ~(uint32_t)STATUS_KNOWN_BITS)
		return err_set(EINVAL, "status 0x%x has bits virtio does not define", s->status);
	uint32_t missing = status_missing_prerequisite(s->status);
	if (missing)
		return err_set(EINVAL, "status 0x%x sets %s without %s", s->status,
			       missing == VIRTIO_CONFIG_S_DRIVER	? "DRIVER"
			       : missing == VIRTIO_CONFIG_S_FEATURES_OK ? "FEATURES_OK"
									: "DRIVER_OK",
			       missing == VIRTIO_CONFIG_S_DRIVER	? "ACKNOWLEDGE"
			       : missing == VIRTIO_CONFIG_S_FEATURES_OK ? "DRIVER"
									: "FEATURES_OK");
	bool should_be_active =
	    (s->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(s->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	if (s->active != should_be_active)
		return err_set(EINVAL, "active is %s, but status 0x%x says %s",
			       s->active ? "true" : "false", s->status,
			       should_be_active ? "active" : "not active");
	/* Before FEATURES_OK the features are only what the driver wrote so far: the
	 * FEATURES_OK write judges them, after the restore as before. */
	if ((s->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_acceptable(t, s->driver_features))
		return err_set(EINVAL,
			       "driver_features 0x%llx are not a virtio 1 subset of the offered "
			       "0x%llx",
			       (unsigned long long)s->driver_features,
			       (unsigned long long)offered_features(t));
	if (s->interrupt_status & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return err_set(EINVAL, "interrupt_status 0x%x has bits virtio-mmio does not define",
			       s->interrupt_status);
	return 0;
}

/* Check every queue of the saved state on copies of the device's queues. */
static int check_queues(const struct virtio_mmio_dev *t, const struct virtio_mmio_state *s,
			struct virtq *queues)
{
	bool event_idx = s->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	for (unsigned q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++) {
		const struct virtq_state *qs = &s->queues[q];
		queues[q] = t->queues[q];
		if (q >= t->ops->nqueues) {
			if (qs->ready || qs->num)
				return err_set(EINVAL,
					       "queue %u: set up, but the device has %u queues", q,
					       t->ops->nqueues);
			continue;
		}
		int r = virtq_restore(&queues[q], qs, event_idx);
		if (r < 0)
			return err_wrap(r, "queue %u", q);
		/* Chains in flight at the snapshot are lost to a new device: its driver would
		 * wait for them forever. */
		if (s->active && qs->ready && virtq_in_flight(&queues[q]))
			return err_set(EINVAL,
				       "queue %u: %u chains in flight (the device was not quiesced "
				       "before the snapshot)",
				       q, virtq_in_flight(&queues[q]));
	}
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio_dev *t, const struct virtio_mmio_state *s)
{
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
	pthread_mutex_lock(&t->lock);
	int r = check_registers(t, s);
	if (r == 0)
		r = check_queues(t, s, queues);
	if (r < 0)
		goto out;
	t->status = s->status;
	t->device_features_sel = s->device_features_sel;
	t->driver_features_sel = s->driver_features_sel;
	t->driver_features = s->driver_features;
	t->queue_sel = s->queue_sel;
	t->config_generation = s->config_generation;
	memcpy(t->queues, queues, sizeof(t->queues));
	if (s->active) {
		/* The backends start as at DRIVER_OK (net sets the tap's offloads again). */
		r = t->ops->activate(t->dev, s->driver_features);
		if (r < 0) {
			r = err_wrap(r, "activating with features 0x%llx",
				     (unsigned long long)s->driver_features);
			device_reset(t);
			goto out;
		}
		t->active = true;
		/* A kick the device left alone while quiesced has no sender now. */
		for (unsigned q = 0; q < t->ops->nqueues; q++)
			if (t->active && t->queues[q].s.ready)
				t->ops->queue_notify(t->dev, q);
	}
	/* The interrupt pending at the snapshot is owed to the guest again: a new irqfd, a new
	 * interrupt controller. */
	if (s->interrupt_status)
		raise_interrupt(t, s->interrupt_status);
	log_info("%s at 0x%llx (irq %u): restored, status 0x%x, features 0x%llx", t->ops->name,
		 (unsigned long long)t->base, t->irq, t->status,
		 (unsigned long long)t->driver_features);
out:
	if (r < 0)
		r = err_wrap(r, "%s (virtio-mmio device %u at 0x%llx): saved state refused",
			     t->ops->name, t->index, (unsigned long long)t->base);
	pthread_mutex_unlock(&t->lock);
	return r;
}
