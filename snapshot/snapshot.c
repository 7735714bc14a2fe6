#include "snapshot/snapshot.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"
#include "devices/virtio_mmio/block.h"
#include "devices/virtio_mmio/net.h"
#include "devices/virtio_mmio/vsock.h"
#include "memory/layout.h"
#include "snapshot/snapshot.pb-c.h"
#include "vcpu/vcpu_state.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull

static const char STATE_MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'S', 'N', 'P'};
static const char MEM_MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'M', 'E', 'M'};
#define STATE_HEADER 24 /* magic, u32 format, u32 crc32, u64 payload length */

/* The memory file's first page. */
struct mem_header {
	char magic[8];
	uint32_t format;
	uint32_t flags; /* bit 0: diff */
	uint8_t id[16];
	uint64_t ram_size;
};

/* ---- CRC-32 (IEEE, as zlib) ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
	if (crc_table[1])
		return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
	crc_init();
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- files written atomically ---- */

struct out_file {
	const char *final;
	char tmp[4096];
	int fd;
	bool passed; /* a descriptor from the client: written in place, never renamed */
};

static int out_open(struct out_file *o, const struct snapshot_file *f)
{
	o->final = f->path;
	o->tmp[0] = 0;
	o->passed = f->fd >= 0;
	if (o->passed) {
		o->fd = f->fd;
		if (ftruncate(o->fd, 0) < 0)
			return err_errno("%s", f->path);
		return 0;
	}
	int n = snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%d", f->path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(o->tmp))
		return err_set(ENAMETOOLONG, "%s: path too long", f->path);
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (o->fd < 0)
		return err_errno("cannot create %s", o->tmp);
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_errno("writing %s", name);
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int out_sync(struct out_file *o)
{
	if (fsync(o->fd) < 0)
		return err_errno("fsync %s", o->passed ? o->final : o->tmp);
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("open the folder of %s", path);
	int r = fsync(fd) < 0 ? err_errno("fsync the folder of %s", path) : 0;
	close(fd);
	return r;
}

static int out_commit(struct out_file *o)
{
	if (o->passed)
		return 0;
	if (rename(o->tmp, o->final) < 0)
		return err_errno("rename %s to %s", o->tmp, o->final);
	o->tmp[0] = 0;
	return fsync_dir_of(o->final);
}

static void out_abort(struct out_file *o)
{
	if (!o->passed && o->fd >= 0)
		close(o->fd);
	if (o->tmp[0])
		unlink(o->tmp);
	o->fd = -1;
	o->tmp[0] = 0;
}

static void out_close(struct out_file *o)
{
	if (!o->passed && o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/* ---- creating ---- */

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	for (unsigned i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

static int flush_run(const struct guest_mem *gm, struct out_file *o, uint64_t *start, uint64_t *len)
{
	if (*len == 0)
		return 0;
	int r = pwrite_all(o->fd, gm->base + *start * PAGE, *len * PAGE, PAGE + *start * PAGE,
			   o->final);
	*len = 0;
	return r;
}

/* Write the pages of guest RAM (all with data, or those in `only`) after the header page;
 * runs of pages go in one write, zero pages become holes. */
static int write_memory(struct vm *vm, struct out_file *o, const uint8_t id[16],
			const uint64_t *only)
{
	const struct guest_mem *gm = &vm->mem;
	uint8_t header[PAGE];
	memset(header, 0, sizeof(header));
	struct mem_header h = {
	    .format = SNAPSHOT_FORMAT, .flags = only ? 1 : 0, .ram_size = gm->total};
	memcpy(h.magic, MEM_MAGIC, 8);
	memcpy(h.id, id, 16);
	memcpy(header, &h, sizeof(h));
	int r = pwrite_all(o->fd, header, PAGE, 0, o->final);
	if (r < 0)
		return r;
	uint64_t npages = gm->total / PAGE;
	uint64_t run_start = 0, run_len = 0;
	/* A memfd knows where it has pages: its holes are skipped without being touched (reading
	 * them through the mapping would allocate them). */
	bool seek = !only && !gm->private_file;
	uint64_t data_end = 0;
	uint64_t p = 0;
	while (p < npages) {
		if (seek && p * PAGE >= data_end) {
			off_t d = lseek(gm->fd, (off_t)(p * PAGE), SEEK_DATA);
			if (d < 0 || (uint64_t)d > p * PAGE) {
				r = flush_run(gm, o, &run_start, &run_len);
				if (r < 0)
					return r;
				if (d < 0) /* ENXIO: no data after p */
					break;
				p = (uint64_t)d / PAGE;
				continue;
			}
			off_t hole = lseek(gm->fd, (off_t)(p * PAGE), SEEK_HOLE);
			data_end = hole < 0 ? gm->total : (uint64_t)hole;
		}
		bool want =
		    only ? (only[p / 64] >> (p % 64)) & 1 : !page_is_zero(gm->base + p * PAGE);
		if (want) {
			if (run_len == 0)
				run_start = p;
			run_len++;
		}
		if (!want || run_len == 256) {
			r = flush_run(gm, o, &run_start, &run_len);
			if (r < 0)
				return r;
		}
		p++;
	}
	r = flush_run(gm, o, &run_start, &run_len);
	if (r < 0)
		return r;
	if (ftruncate(o->fd, (off_t)(PAGE + gm->total)) < 0)
		return err_errno("sizing %s", o->final);
	return 0;
}

/* Everything the protobuf message points at, freed together after packing. */
struct pool {
	void *p[4096];
	unsigned n;
};

static void *pool_add(struct pool *pl, void *p)
{
	if (!p || pl->n == sizeof(pl->p) / sizeof(pl->p[0])) {
		free(p);
		return NULL;
	}
	pl->p[pl->n++] = p;
	return p;
}

static void *pool_alloc(struct pool *pl, size_t n)
{
	return pool_add(pl, calloc(1, n ? n : 1));
}

static char *pool_strdup(struct pool *pl, const char *s)
{
	return pool_add(pl, strdup(s ? s : ""));
}

static ProtobufCBinaryData bin(struct pool *pl, const void *data, size_t len)
{
	ProtobufCBinaryData b = {0, NULL};
	uint8_t *copy = pool_alloc(pl, len);
	if (copy) {
		memcpy(copy, data, len);
		b.data = copy;
		b.len = len;
	}
	return b;
}

static void pool_free(struct pool *pl)
{
	for (unsigned i = 0; i < pl->n; i++)
		free(pl->p[i]);
	pl->n = 0;
}

static int save_vcpus(struct vm *vm, struct pool *pl, Ember__Snapshot__V1__Snapshot *snap)
{
	uint32_t idx[VCPU_STATE_MAX_MSRS];
	unsigned nidx = 0;
	int r = vcpu_state_msr_list(vm->kvm_fd, &vm->vcpus[0], idx, &nidx);
	if (r < 0)
		return r;
	snap->vcpus = pool_alloc(pl, vm->nvcpus * sizeof(*snap->vcpus));
	struct vcpu_state *st = malloc(sizeof(*st));
	if (!snap->vcpus || !st) {
		free(st);
		return err_set(ENOMEM, "vCPU state");
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		r = vcpu_save_state(&vm->vcpus[i], idx, nidx, st);
		if (r < 0)
			break;
		Ember__Snapshot__V1__Vcpu *v = pool_alloc(pl, sizeof(*v));
		Ember__Snapshot__V1__Msr **msrs = pool_alloc(pl, st->nmsrs * sizeof(*msrs));
		if (!v || !msrs) {
			r = err_set(ENOMEM, "vCPU state");
			break;
		}
		ember__snapshot__v1__vcpu__init(v);
		v->id = i;
		v->mp_state = bin(pl, &st->mp_state, sizeof(st->mp_state));
		v->regs = bin(pl, &st->regs, sizeof(st->regs));
		v->sregs = bin(pl, &st->sregs, sizeof(st->sregs));
		v->xsave = bin(pl, &st->xsave, sizeof(st->xsave));
		v->xcrs = bin(pl, &st->xcrs, sizeof(st->xcrs));
		v->debugregs = bin(pl, &st->debugregs, sizeof(st->debugregs));
		v->lapic = bin(pl, &st->lapic, sizeof(st->lapic));
		v->events = bin(pl, &st->events, sizeof(st->events));
		for (unsigned k = 0; k < st->nmsrs; k++) {
			Ember__Snapshot__V1__Msr *m = pool_alloc(pl, sizeof(*m));
			if (!m) {
				r = err_set(ENOMEM, "MSRs");
				break;
			}
			ember__snapshot__v1__msr__init(m);
			m->index = st->msrs[k].index;
			m->value = st->msrs[k].data;
			msrs[v->n_msrs++] = m;
		}
		v->msrs = msrs;
		snap->vcpus[snap->n_vcpus++] = v;
	}
	free(st);
	return r;
}

static int save_chips(struct vm *vm, struct pool *pl, Ember__Snapshot__V1__VmChips *c)
{
	ember__snapshot__v1__vm_chips__init(c);
	struct kvm_irqchip chip;
	ProtobufCBinaryData *dst[3] = {&c->pic_master, &c->pic_slave, &c->ioapic};
	for (uint32_t id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return err_errno("KVM_GET_IRQCHIP %u", id);
		*dst[id] = bin(pl, &chip, sizeof(chip));
	}
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return err_errno("KVM_GET_PIT2");
	c->pit = bin(pl, &pit, sizeof(pit));
	struct kvm_clock_data clock = {0};
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return err_errno("KVM_GET_CLOCK");
	c->clock = bin(pl, &clock, sizeof(clock));
	return 0;
}

static void format_mac(char out[18], const uint8_t mac[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

static int save_devices(struct vm *vm, struct pool *pl, Ember__Snapshot__V1__Snapshot *snap)
{
	snap->devices = pool_alloc(pl, (vm->ndevices + 1) * sizeof(*snap->devices));
	if (!snap->devices)
		return err_set(ENOMEM, "device state");
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		const void *config = vm->cfg.devices[i].config;
		Ember__Snapshot__V1__Device *dev = pool_alloc(pl, sizeof(*dev));
		Ember__Snapshot__V1__Transport *tr = pool_alloc(pl, sizeof(*tr));
		struct virtio_mmio_state *ts = pool_alloc(pl, sizeof(*ts));
		if (!dev || !tr || !ts)
			return err_set(ENOMEM, "device state");
		ember__snapshot__v1__device__init(dev);
		ember__snapshot__v1__transport__init(tr);
		dev->kind = (char *)d->cls->flag;
		dev->id = dev->path = dev->tap = dev->mac = (char *)"";
		if (d->cls == &virtio_block_class) {
			const struct block_config *c = config;
			if (c->fd >= 0)
				return err_set(
				    EINVAL,
				    "drive %s came as a descriptor: a snapshot cannot name "
				    "its file",
				    c->id);
			dev->id = pool_strdup(pl, c->id);
			dev->path = pool_strdup(pl, c->path);
			dev->read_only = c->read_only;
		} else if (d->cls == &virtio_net_class) {
			const struct net_config *c = config;
			char mac[18];
			format_mac(mac, net_mac(d->dev));
			dev->id = pool_strdup(pl, c->id);
			dev->tap = pool_strdup(pl, c->tap);
			dev->mac = pool_strdup(pl, mac);
		} else if (d->cls == &virtio_vsock_class) {
			const struct vsock_config *c = config;
			dev->guest_cid = c->guest_cid;
			dev->path = pool_strdup(pl, c->uds_path);
		}
		virtio_mmio_save(d->transport, ts);
		tr->status = ts->status;
		tr->device_features_sel = ts->device_features_sel;
		tr->driver_features_sel = ts->driver_features_sel;
		tr->driver_features = ts->driver_features;
		tr->queue_sel = ts->queue_sel;
		tr->interrupt_status = ts->interrupt_status;
		tr->config_generation = ts->config_generation;
		tr->active = ts->active;
		tr->queues = pool_alloc(pl, (ts->nqueues + 1) * sizeof(*tr->queues));
		if (!tr->queues)
			return err_set(ENOMEM, "queue state");
		for (unsigned q = 0; q < ts->nqueues && q < VIRTIO_MMIO_MAX_QUEUES; q++) {
			const struct virtq_state *vs = &ts->queues[q];
			Ember__Snapshot__V1__Queue *qq = pool_alloc(pl, sizeof(*qq));
			if (!qq)
				return err_set(ENOMEM, "queue state");
			ember__snapshot__v1__queue__init(qq);
			qq->num = vs->num;
			qq->ready = vs->ready;
			qq->desc = vs->desc_gpa;
			qq->avail = vs->avail_gpa;
			qq->used = vs->used_gpa;
			qq->last_avail = vs->last_avail;
			qq->used_idx = vs->used_idx;
			qq->signalled_used = vs->signalled_used;
			qq->signalled_used_valid = vs->signalled_used_valid;
			tr->queues[tr->n_queues++] = qq;
		}
		dev->transport = tr;
		snap->devices[snap->n_devices++] = dev;
	}
	return 0;
}

static int write_state(struct out_file *o, const Ember__Snapshot__V1__Snapshot *snap)
{
	size_t len = ember__snapshot__v1__snapshot__get_packed_size(snap);
	uint8_t *buf = malloc(STATE_HEADER + len);
	if (!buf)
		return err_set(ENOMEM, "state");
	ember__snapshot__v1__snapshot__pack(snap, buf + STATE_HEADER);
	memcpy(buf, STATE_MAGIC, 8);
	put32(buf + 8, SNAPSHOT_FORMAT);
	put32(buf + 12, crc32_of(buf + STATE_HEADER, len));
	put64(buf + 16, len);
	int r = pwrite_all(o->fd, buf, STATE_HEADER + len, 0, o->final);
	free(buf);
	return r;
}

int snapshot_create(struct vm *vm, struct snapshot_tracker *t, const struct snapshot_file *state,
		    const struct snapshot_file *mem, bool diff)
{
	if (!vm->paused)
		return err_set(EALREADY, "the VM must be paused");
	if (diff && !t->have_base)
		return err_set(EALREADY,
			       "a diff snapshot needs a full one made by this monitor first "
			       "(its base)");
	uint64_t t0 = timing_now_ns();
	uint8_t id[16];
	if (getrandom(id, sizeof(id), 0) != sizeof(id))
		return err_errno("getrandom");
	uint64_t npages = vm->mem.total / PAGE;
	if (diff) {
		int r = vm_collect_dirty(vm, t->since_base);
		if (r < 0)
			return r;
	}

	struct pool *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return err_set(ENOMEM, "snapshot");
	Ember__Snapshot__V1__Snapshot snap = EMBER__SNAPSHOT__V1__SNAPSHOT__INIT;
	Ember__Snapshot__V1__VmChips chips;
	Ember__Snapshot__V1__Memory memory = EMBER__SNAPSHOT__V1__MEMORY__INIT;
	Ember__Snapshot__V1__Serial serial = EMBER__SNAPSHOT__V1__SERIAL__INIT;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snap.format = SNAPSHOT_FORMAT;
	snap.ember_version = (char *)EMBER_VERSION;
	snap.id = bin(pl, id, 16);
	if (diff)
		snap.base_id = bin(pl, t->base_id, 16);
	snap.created_realtime_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	snap.vcpu_count = vm->nvcpus;
	snap.mem_mib = vm->cfg.mem_mib;
	long khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	snap.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	memory.size = vm->mem.total;
	memory.file_size = PAGE + vm->mem.total;
	memory.diff = diff;
	if (diff)
		memory.pages = bin(pl, t->since_base, (npages + 7) / 8);
	snap.memory = &memory;
	snap.chips = &chips;
	snap.serial = &serial;
	struct serial_state ss;
	serial_save(&vm->serial, &ss);
	serial.registers = bin(pl, &ss, sizeof(ss));
	struct i8042_state ks;
	i8042_save(&vm->i8042, &ks);
	snap.i8042 = bin(pl, &ks, sizeof(ks));

	struct out_file mo = {.fd = -1}, so = {.fd = -1};
	int r = save_vcpus(vm, pl, &snap);
	if (r == 0)
		r = save_chips(vm, pl, &chips);
	if (r == 0)
		r = save_devices(vm, pl, &snap);
	if (r == 0)
		r = out_open(&mo, mem);
	if (r == 0)
		r = write_memory(vm, &mo, id, diff ? t->since_base : NULL);
	if (r == 0)
		r = out_open(&so, state);
	if (r == 0)
		r = write_state(&so, &snap);
	if (r == 0)
		r = out_sync(&mo);
	if (r == 0)
		r = out_sync(&so);
	/* The memory file first: a state file under its final name always has its memory. */
	if (r == 0)
		r = out_commit(&mo);
	if (r == 0)
		r = out_commit(&so);
	if (r < 0) {
		out_abort(&mo);
		out_abort(&so);
	} else {
		out_close(&mo);
		out_close(&so);
	}
	pool_free(pl);
	free(pl);
	if (r < 0)
		return r;

	if (!diff) {
		/* This is the base of later diffs: from now on, note every page written. */
		if (!t->since_base) {
			t->since_base = calloc((npages + 63) / 64, sizeof(uint64_t));
			if (!t->since_base)
				return err_set(ENOMEM, "dirty-page bitmap");
			t->npages = npages;
		}
		r = vm_enable_dirty_logging(vm);
		if (r == 0)
			r = vm_collect_dirty(vm, t->since_base); /* clears what came before */
		if (r < 0)
			return r;
		memset(t->since_base, 0, (npages + 63) / 64 * sizeof(uint64_t));
		memcpy(t->base_id, id, 16);
		t->have_base = true;
	}
	log_info("snapshot%s written in %.3f ms: %s, %s", diff ? " (diff)" : "",
		 (double)(timing_now_ns() - t0) / 1e6, state->path, mem->path);
	return 0;
}

void snapshot_tracker_free(struct snapshot_tracker *t)
{
	free(t->since_base);
	memset(t, 0, sizeof(*t));
}

/* ---- loading ---- */

struct snapshot {
	Ember__Snapshot__V1__Snapshot *msg;
	int mem_fd, diff_fd;
	char name[256]; /* the state file, for messages */
	char *owned[64];
	unsigned nowned;
};

static int open_in(const struct snapshot_file *f, int *fd)
{
	if (f->fd >= 0) {
		*fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
		if (*fd < 0)
			return err_errno("%s", f->path);
		return 0;
	}
	*fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return err_errno("cannot open %s", f->path);
	return 0;
}

static int read_state(struct snapshot *s, const struct snapshot_file *f)
{
	int fd;
	int r = open_in(f, &fd);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = err_errno("stat %s", f->path);
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < STATE_HEADER || st.st_size > SNAPSHOT_STATE_MAX) {
		close(fd);
		return err_set(EINVAL, "%s: not an Ember snapshot state file (%lld bytes)", f->path,
			       (long long)st.st_size);
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size);
	if (!buf) {
		close(fd);
		return err_set(ENOMEM, "%s", f->path);
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
		if (n <= 0) {
			r = n < 0 ? err_errno("reading %s", f->path)
				  : err_set(EINVAL, "%s: shorter than it was", f->path);
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r == 0 && memcmp(buf, STATE_MAGIC, 8) != 0)
		r = err_set(EINVAL, "%s: not an Ember snapshot state file (bad magic)", f->path);
	uint32_t format = r == 0 ? get32(buf + 8) : 0;
	if (r == 0 && format != SNAPSHOT_FORMAT)
		r = err_set(EINVAL,
			    "%s: snapshot format %u; this Ember (%s) reads format %d and older",
			    f->path, format, EMBER_VERSION, SNAPSHOT_FORMAT);
	uint64_t len = r == 0 ? get64(buf + 16) : 0;
	if (r == 0 && len != size - STATE_HEADER)
		r = err_set(
		    EINVAL,
		    "%s: truncated or padded: the header says %llu bytes of state, the file "
		    "has %zu",
		    f->path, (unsigned long long)len, size - STATE_HEADER);
	if (r == 0 && crc32_of(buf + STATE_HEADER, len) != get32(buf + 12))
		r = err_set(EINVAL, "%s: checksum mismatch: the file is corrupted", f->path);
	if (r == 0) {
		s->msg = ember__snapshot__v1__snapshot__unpack(NULL, len, buf + STATE_HEADER);
		if (!s->msg)
			r = err_set(EINVAL, "%s: the state does not decode", f->path);
	}
	free(buf);
	return r;
}

static int check_mem_file(int fd, const char *name, const uint8_t id[16], uint64_t ram, bool diff)
{
	struct mem_header h;
	ssize_t n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h) || memcmp(h.magic, MEM_MAGIC, 8) != 0)
		return err_set(EINVAL, "%s: not an Ember snapshot memory file", name);
	if (memcmp(h.id, id, 16) != 0)
		return err_set(EINVAL,
			       "%s: belongs to another snapshot than the state file (ids differ)",
			       name);
	if (h.ram_size != ram || (bool)(h.flags & 1) != diff)
		return err_set(EINVAL, "%s: %llu bytes of %s RAM, the state says %llu%s", name,
			       (unsigned long long)h.ram_size, h.flags & 1 ? "diff" : "full",
			       (unsigned long long)ram, diff ? " (diff)" : "");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_errno("stat %s", name);
	if ((uint64_t)st.st_size != PAGE + ram)
		return err_set(EINVAL,
			       "%s: %lld bytes, expected %llu: truncated or not this "
			       "snapshot's memory",
			       name, (long long)st.st_size, (unsigned long long)(PAGE + ram));
	return 0;
}

static int check_bytes(const ProtobufCBinaryData *b, size_t want, const char *what,
		       const char *name)
{
	if (b->len != want)
		return err_set(EINVAL, "%s: %s is %zu bytes, expected %zu", name, what, b->len,
			       want);
	return 0;
}

static int check_state(struct snapshot *s)
{
	const Ember__Snapshot__V1__Snapshot *m = s->msg;
	const char *n = s->name;
	if (m->id.len != 16)
		return err_set(EINVAL, "%s: no snapshot id", n);
	if (m->vcpu_count < 1 || m->vcpu_count > VM_MAX_VCPUS || m->n_vcpus != m->vcpu_count)
		return err_set(EINVAL, "%s: %u vCPUs (%zu states)", n, m->vcpu_count, m->n_vcpus);
	if (m->mem_mib < 2 || m->mem_mib > LAYOUT_MAX_MEM_MIB)
		return err_set(EINVAL, "%s: %llu MiB of RAM", n, (unsigned long long)m->mem_mib);
	if (!m->memory || m->memory->size != m->mem_mib * MiB)
		return err_set(EINVAL, "%s: memory section missing or of the wrong size", n);
	if (m->memory->diff &&
	    (m->base_id.len != 16 || m->memory->pages.len != (m->memory->size / PAGE + 7) / 8))
		return err_set(EINVAL, "%s: a diff without its base id or page map", n);
	if (!m->chips || !m->serial)
		return err_set(EINVAL, "%s: interrupt controller or serial state missing", n);
	int r = check_bytes(&m->chips->pic_master, sizeof(struct kvm_irqchip), "PIC state", n);
	if (r == 0)
		r = check_bytes(&m->chips->pic_slave, sizeof(struct kvm_irqchip), "PIC state", n);
	if (r == 0)
		r = check_bytes(&m->chips->ioapic, sizeof(struct kvm_irqchip), "IOAPIC state", n);
	if (r == 0)
		r = check_bytes(&m->chips->pit, sizeof(struct kvm_pit_state2), "PIT state", n);
	if (r == 0)
		r = check_bytes(&m->chips->clock, sizeof(struct kvm_clock_data), "clock", n);
	if (r == 0)
		r = check_bytes(&m->serial->registers, sizeof(struct serial_state), "serial state",
				n);
	if (r == 0)
		r = check_bytes(&m->i8042, sizeof(struct i8042_state), "i8042 state", n);
	for (size_t i = 0; r == 0 && i < m->n_vcpus; i++) {
		const Ember__Snapshot__V1__Vcpu *v = m->vcpus[i];
		r = check_bytes(&v->mp_state, sizeof(struct kvm_mp_state), "mp_state", n);
		if (r == 0)
			r = check_bytes(&v->regs, sizeof(struct kvm_regs), "regs", n);
		if (r == 0)
			r = check_bytes(&v->sregs, sizeof(struct kvm_sregs), "sregs", n);
		if (r == 0)
			r = check_bytes(&v->xsave, sizeof(struct kvm_xsave), "xsave", n);
		if (r == 0)
			r = check_bytes(&v->xcrs, sizeof(struct kvm_xcrs), "xcrs", n);
		if (r == 0)
			r = check_bytes(&v->debugregs, sizeof(struct kvm_debugregs), "debugregs",
					n);
		if (r == 0)
			r = check_bytes(&v->lapic, sizeof(struct kvm_lapic_state), "lapic", n);
		if (r == 0)
			r = check_bytes(&v->events, sizeof(struct kvm_vcpu_events), "vcpu events",
					n);
		if (r == 0 && v->n_msrs > VCPU_STATE_MAX_MSRS)
			r = err_set(EINVAL, "%s: %zu MSRs", n, v->n_msrs);
	}
	if (r == 0 && m->n_devices > VIRTIO_MMIO_MAX_DEVICES)
		r = err_set(EINVAL, "%s: %zu devices", n, m->n_devices);
	for (size_t i = 0; r == 0 && i < m->n_devices; i++)
		if (!m->devices[i]->transport ||
		    m->devices[i]->transport->n_queues > VIRTIO_MMIO_MAX_QUEUES)
			r = err_set(EINVAL,
				    "%s: device %zu: transport state missing or too many "
				    "queues",
				    n, i);
	return r;
}

int snapshot_open(struct snapshot **out, const struct snapshot_file *state,
		  const struct snapshot_file *mem, const struct snapshot_file *diff_mem)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "snapshot");
	s->mem_fd = s->diff_fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", state->path);
	*out = s;
	int r = read_state(s, state);
	if (r == 0)
		r = check_state(s);
	if (r < 0)
		return r;
	const Ember__Snapshot__V1__Snapshot *m = s->msg;
	bool diff = m->memory->diff;
	if (diff && !diff_mem)
		return err_set(EINVAL,
			       "%s is a diff snapshot: give its base's memory file and the diff's "
			       "memory file",
			       state->path);
	if (!diff && diff_mem)
		return err_set(EINVAL, "%s is a full snapshot: it takes no diff memory file",
			       state->path);
	r = open_in(mem, &s->mem_fd);
	if (r == 0)
		r = check_mem_file(s->mem_fd, mem->path, diff ? m->base_id.data : m->id.data,
				   m->memory->size, false);
	if (r == 0 && diff) {
		r = open_in(diff_mem, &s->diff_fd);
		if (r == 0)
			r = check_mem_file(s->diff_fd, diff_mem->path, m->id.data, m->memory->size,
					   true);
	}
	return r;
}

void snapshot_close(struct snapshot *s)
{
	if (!s)
		return;
	if (s->msg)
		ember__snapshot__v1__snapshot__free_unpacked(s->msg, NULL);
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	if (s->diff_fd >= 0)
		close(s->diff_fd);
	for (unsigned i = 0; i < s->nowned; i++)
		free(s->owned[i]);
	free(s);
}

static bool has_separator(const char *v)
{
	return strchr(v, ',') != NULL;
}

/* The same grammar and checks as `ember run --KIND SPEC`. */
static int device_from_spec(struct vm_config *cfg, const struct virtio_device_class *cls,
			    const char *spec)
{
	void *config;
	int r = cls->parse(spec, &config);
	if (r < 0)
		return r;
	cfg->devices[cfg->ndevices++] = (struct vm_device_spec){cls, config};
	return 0;
}

int snapshot_vm_config(struct snapshot *s, const struct snapshot_overrides *o,
		       struct vm_config *cfg)
{
	const Ember__Snapshot__V1__Snapshot *m = s->msg;
	cfg->vcpus = m->vcpu_count;
	cfg->mem_mib = m->mem_mib;
	cfg->restore_mem_fd = s->mem_fd;
	cfg->restore_mem_offset = PAGE;
	cfg->kernel_path = NULL;
	cfg->ndevices = 0;
	bool net_done = false;
	for (size_t i = 0; i < m->n_devices; i++) {
		const Ember__Snapshot__V1__Device *d = m->devices[i];
		char spec[4200];
		const struct virtio_device_class *cls = NULL;
		for (unsigned k = 0; virtio_device_classes[k]; k++)
			if (strcmp(virtio_device_classes[k]->flag, d->kind) == 0)
				cls = virtio_device_classes[k];
		if (!cls)
			return err_set(EINVAL, "%s: device %zu is a '%s', which this Ember lacks",
				       s->name, i, d->kind);
		if (cls == &virtio_block_class) {
			if (has_separator(d->path) || has_separator(d->id))
				return err_set(EINVAL, "%s: drive %s: a ',' in its path or id",
					       s->name, d->id);
			snprintf(spec, sizeof(spec), "path=%s,id=%s%s", d->path, d->id,
				 d->read_only ? ",ro" : "");
		} else if (cls == &virtio_net_class) {
			/* The first net device takes the clone's own tap and MAC. */
			const char *tap = d->tap, *mac = d->mac;
			int tap_fd = -1;
			if (!net_done && o) {
				if (o->tap_fd >= 0)
					tap_fd = o->tap_fd;
				else if (o->tap)
					tap = o->tap;
				if (o->mac)
					mac = o->mac;
			}
			net_done = true;
			if (has_separator(tap) || has_separator(mac) || has_separator(d->id))
				return err_set(EINVAL, "%s: net %s: a ',' in its tap, MAC or id",
					       s->name, d->id);
			if (tap_fd >= 0)
				snprintf(spec, sizeof(spec), "fd=%d,id=%s,mac=%s",
					 fcntl(tap_fd, F_DUPFD_CLOEXEC, 0), d->id, mac);
			else
				snprintf(spec, sizeof(spec), "tap=%s,id=%s,mac=%s", tap, d->id,
					 mac);
		} else if (cls == &virtio_vsock_class) {
			const char *uds = o && o->vsock_uds ? o->vsock_uds : d->path;
			uint64_t cid = o && o->vsock_cid ? o->vsock_cid : d->guest_cid;
			if (has_separator(uds))
				return err_set(EINVAL, "vsock socket path %s has a ','", uds);
			snprintf(spec, sizeof(spec), "cid=%llu,uds=%s", (unsigned long long)cid,
				 uds);
		} else {
			/* A device with no configuration of its own (rng). */
			snprintf(spec, sizeof(spec), "on");
		}
		int r = device_from_spec(cfg, cls, spec);
		if (r < 0)
			return err_wrap(r, "%s: device %zu (%s)", s->name, i, d->kind);
	}
	return 0;
}

static int restore_chips(struct vm *vm, const Ember__Snapshot__V1__VmChips *c, uint64_t elapsed)
{
	const ProtobufCBinaryData *src[3] = {&c->pic_master, &c->pic_slave, &c->ioapic};
	for (unsigned id = 0; id < 3; id++) {
		struct kvm_irqchip chip;
		memcpy(&chip, src[id]->data, sizeof(chip));
		if (chip.chip_id != id)
			return err_set(EINVAL, "interrupt controller %u: saved as chip %u", id,
				       chip.chip_id);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return err_errno("KVM_SET_IRQCHIP %u", id);
	}
	struct kvm_pit_state2 pit;
	memcpy(&pit, c->pit.data, sizeof(pit));
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return err_errno("KVM_SET_PIT2");
	struct kvm_clock_data clock;
	memcpy(&clock, c->clock.data, sizeof(clock));
	/* kvmclock moves on by the time the snapshot spent on disk: guest time never runs
	 * backwards and matches the wall clock again. */
	struct kvm_clock_data set = {.clock = clock.clock + elapsed};
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &set) < 0)
		return err_errno("KVM_SET_CLOCK");
	return 0;
}

static int restore_vcpus(struct vm *vm, const Ember__Snapshot__V1__Snapshot *m, uint64_t elapsed)
{
	struct vcpu_state *st = malloc(sizeof(*st));
	if (!st)
		return err_set(ENOMEM, "vCPU state");
	int r = 0;
	/* The TSC moves forward by the elapsed time too, the same on every vCPU. */
	uint64_t tsc_add = m->tsc_khz ? elapsed / 1000 * m->tsc_khz / 1000 : 0;
	for (unsigned i = 0; r == 0 && i < vm->nvcpus; i++) {
		const Ember__Snapshot__V1__Vcpu *v = m->vcpus[i];
		memset(st, 0, sizeof(*st));
		memcpy(&st->mp_state, v->mp_state.data, sizeof(st->mp_state));
		memcpy(&st->regs, v->regs.data, sizeof(st->regs));
		memcpy(&st->sregs, v->sregs.data, sizeof(st->sregs));
		memcpy(&st->xsave, v->xsave.data, sizeof(st->xsave));
		memcpy(&st->xcrs, v->xcrs.data, sizeof(st->xcrs));
		memcpy(&st->debugregs, v->debugregs.data, sizeof(st->debugregs));
		memcpy(&st->lapic, v->lapic.data, sizeof(st->lapic));
		memcpy(&st->events, v->events.data, sizeof(st->events));
		st->nmsrs = (unsigned)v->n_msrs;
		for (unsigned k = 0; k < st->nmsrs; k++) {
			st->msrs[k].index = v->msrs[k]->index;
			st->msrs[k].data = v->msrs[k]->value;
			if (st->msrs[k].index == MSR_IA32_TSC_INDEX)
				st->msrs[k].data += tsc_add;
		}
		r = vcpu_restore_state(&vm->vcpus[i], st);
	}
	free(st);
	return r;
}

static int restore_devices(struct vm *vm, const Ember__Snapshot__V1__Snapshot *m)
{
	if (m->n_devices != vm->ndevices)
		return err_set(EINVAL, "%zu devices saved, %u built", m->n_devices, vm->ndevices);
	struct virtio_mmio_state *ts = malloc(sizeof(*ts));
	if (!ts)
		return err_set(ENOMEM, "device state");
	int r = 0;
	for (unsigned i = 0; r == 0 && i < vm->ndevices; i++) {
		const Ember__Snapshot__V1__Transport *tr = m->devices[i]->transport;
		memset(ts, 0, sizeof(*ts));
		ts->status = tr->status;
		ts->device_features_sel = tr->device_features_sel;
		ts->driver_features_sel = tr->driver_features_sel;
		ts->driver_features = tr->driver_features;
		ts->queue_sel = tr->queue_sel;
		ts->interrupt_status = tr->interrupt_status;
		ts->config_generation = tr->config_generation;
		ts->active = tr->active;
		ts->nqueues = (unsigned)tr->n_queues;
		for (unsigned q = 0; q < ts->nqueues; q++) {
			const Ember__Snapshot__V1__Queue *qq = tr->queues[q];
			if (qq->num > UINT16_MAX || qq->last_avail > UINT16_MAX ||
			    qq->used_idx > UINT16_MAX || qq->signalled_used > UINT16_MAX) {
				r = err_set(EINVAL, "device %u queue %u: index out of range", i, q);
				break;
			}
			ts->queues[q] = (struct virtq_state){
			    .num = (uint16_t)qq->num,
			    .ready = qq->ready,
			    .desc_gpa = qq->desc,
			    .avail_gpa = qq->avail,
			    .used_gpa = qq->used,
			    .last_avail = (uint16_t)qq->last_avail,
			    .used_idx = (uint16_t)qq->used_idx,
			    .signalled_used = (uint16_t)qq->signalled_used,
			    .signalled_used_valid = qq->signalled_used_valid,
			};
		}
		const struct vm_device *d = &vm->devices[i];
		if (r == 0)
			r = virtio_mmio_restore(d->transport, ts);
		if (r == 0 && d->cls->restored)
			r = d->cls->restored(d->dev);
		if (r < 0)
			r = err_wrap(r, "device %u (%s)", i, d->cls->flag);
	}
	free(ts);
	return r;
}

static int layer_diff(struct snapshot *s, struct vm *vm)
{
	const Ember__Snapshot__V1__Memory *mem = s->msg->memory;
	uint64_t npages = mem->size / PAGE;
	const uint8_t *bits = mem->pages.data;
	for (uint64_t p = 0; p < npages; p++) {
		if (!(bits[p / 8] & (1u << (p % 8))))
			continue;
		uint8_t *dst = vm->mem.base + p * PAGE;
		ssize_t n = pread(s->diff_fd, dst, PAGE, (off_t)(PAGE + p * PAGE));
		if (n != (ssize_t)PAGE)
			return err_set(EIO, "reading page %llu of the diff memory file",
				       (unsigned long long)p);
	}
	return 0;
}

int snapshot_restore(struct snapshot *s, struct vm *vm)
{
	const Ember__Snapshot__V1__Snapshot *m = s->msg;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	uint64_t elapsed = now_ns > m->created_realtime_ns ? now_ns - m->created_realtime_ns : 0;
	int r = 0;
	if (m->memory->diff)
		r = layer_diff(s, vm);
	if (r == 0)
		r = restore_chips(vm, m->chips, elapsed);
	if (r == 0)
		r = restore_vcpus(vm, m, elapsed);
	if (r == 0) {
		struct serial_state ss;
		memcpy(&ss, m->serial->registers.data, sizeof(ss));
		r = serial_restore(&vm->serial, &ss);
	}
	if (r == 0) {
		struct i8042_state ks;
		memcpy(&ks, m->i8042.data, sizeof(ks));
		r = i8042_restore(&vm->i8042, &ks);
	}
	if (r == 0)
		r = restore_devices(vm, m);
	if (r < 0)
		return err_wrap(r, "restoring %s", s->name);
	return 0;
}
