/* The control API's operations, on the vmm thread: each request is checked against the VM's
 * state and its own fields, then carried out; every refusal is a status and a message saying
 * why. Configuration is accepted before start only; after start, pause / resume / stop, drive
 * updates, the logger, describe and metrics. */
#include "api/server.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"
#include "devices/virtio_mmio/block.h"
#include "devices/virtio_mmio/net.h"
#include "devices/virtio_mmio/vsock.h"
#include "memory/layout.h"
#include "monitor/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK_ID_MAX 20 /* virtio-blk's GET_ID answer */

/* What one request ends with. */
struct outcome {
	Ember__V1__Status status;
	char msg[512];
};

static int refuse(struct outcome *o, Ember__V1__Status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct outcome *o, Ember__V1__Status status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
	o->status = status;
	return -1;
}

/* An error from the monitor's layers (err_msg), with a status that fits its errno. */
static int refuse_err(struct outcome *o, int neg_errno, const char *what)
{
	Ember__V1__Status st;
	switch (-neg_errno) {
	case ENOENT:
		st = EMBER__V1__STATUS__NOT_FOUND;
		break;
	case EEXIST:
	case EADDRINUSE:
		st = EMBER__V1__STATUS__ALREADY_EXISTS;
		break;
	case EINVAL:
	case E2BIG:
	case ENAMETOOLONG:
	case EBADF:
	case ENOEXEC:
	case ERANGE:
		st = EMBER__V1__STATUS__INVALID_ARGUMENT;
		break;
	case EALREADY:
		st = EMBER__V1__STATUS__FAILED_PRECONDITION;
		break;
	default:
		st = EMBER__V1__STATUS__INTERNAL;
	}
	return refuse(o, st, "%s: %s", what, err_msg());
}

static const char *state_name(enum vmm_state s)
{
	switch (s) {
	case VMM_NOT_STARTED:
		return "not started";
	case VMM_RUNNING:
		return "running";
	case VMM_PAUSED:
		return "paused";
	case VMM_STOPPED:
		return "stopped";
	}
	return "unknown";
}

static int need_not_started(struct vmm *m, struct outcome *o, const char *op)
{
	if (m->state == VMM_NOT_STARTED)
		return 0;
	return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "%s: only before start (the VM is %s)", op, state_name(m->state));
}

static int need_started(struct vmm *m, struct outcome *o, const char *op)
{
	if (m->state == VMM_RUNNING || m->state == VMM_PAUSED)
		return 0;
	return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
		      "%s: only after start (the VM is %s)", op, state_name(m->state));
}

/* Resolve a FileSource into a path to open or a passed descriptor, which is taken from the
 * call (the caller owns it afterwards). */
static int take_file(struct api_call *call, const Ember__V1__FileSource *fs, const char *what,
		     struct outcome *o, struct vmm_file *out)
{
	out->path = NULL;
	out->fd = -1;
	if (!fs || fs->source_case == EMBER__V1__FILE_SOURCE__SOURCE__NOT_SET)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "%s is required (a path or a passed descriptor)", what);
	if (fs->source_case == EMBER__V1__FILE_SOURCE__SOURCE_PATH) {
		if (!fs->path[0])
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT, "%s: empty path",
				      what);
		struct stat st;
		if (stat(fs->path, &st) < 0)
			return refuse(o,
				      errno == ENOENT ? EMBER__V1__STATUS__NOT_FOUND
						      : EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "%s %s: %s", what, fs->path, strerror(errno));
		out->path = strdup(fs->path);
	} else {
		uint32_t i = fs->passed_fd;
		if (i >= call->nfds)
			return refuse(
			    o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			    "%s: passed_fd %u, but %u descriptor(s) came with the request", what, i,
			    call->nfds);
		if (call->fds[i] < 0)
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "%s: passed descriptor %u is already used by another field",
				      what, i);
		char name[48];
		snprintf(name, sizeof(name), "passed fd %u", i);
		out->path = strdup(name);
		if (out->path) {
			out->fd = call->fds[i];
			call->fds[i] = -1;
		}
	}
	if (!out->path)
		return refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	return 0;
}

static void file_free(struct vmm_file *f)
{
	free(f->path);
	f->path = NULL;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static int op_boot_source(struct vmm *m, struct api_call *call, const Ember__V1__BootSource *b,
			  struct outcome *o)
{
	if (need_not_started(m, o, "boot_source") < 0)
		return -1;
	if (b->protocol != EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_AUTO &&
	    b->protocol != EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_LINUX &&
	    b->protocol != EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "boot_source.protocol: unknown value %d", (int)b->protocol);
	size_t cl = strlen(b->cmdline);
	if (cl >= LAYOUT_CMDLINE_MAX)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "boot_source.cmdline: %zu bytes; at most %llu", cl,
			      (unsigned long long)LAYOUT_CMDLINE_MAX - 1);
	struct vmm_file kernel, initrd = {.fd = -1};
	if (take_file(call, b->kernel, "boot_source.kernel", o, &kernel) < 0)
		return -1;
	if (b->initrd && take_file(call, b->initrd, "boot_source.initrd", o, &initrd) < 0) {
		file_free(&kernel);
		return -1;
	}
	char *cmdline = b->cmdline[0] ? strdup(b->cmdline) : NULL;
	if (b->cmdline[0] && !cmdline) {
		file_free(&kernel);
		file_free(&initrd);
		return refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	}
	file_free(&m->kernel);
	file_free(&m->initrd);
	free(m->cmdline);
	m->kernel = kernel;
	m->initrd = initrd;
	m->cmdline = cmdline;
	m->cfg.protocol =
	    b->protocol == EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_LINUX ? BOOT_PROTOCOL_LINUX64
	    : b->protocol == EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH ? BOOT_PROTOCOL_PVH
									 : BOOT_PROTOCOL_AUTO;
	m->boot_source_set = true;
	return 0;
}

static uint64_t host_ram_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || size <= 0)
		return LAYOUT_MAX_MEM_MIB;
	return (uint64_t)pages * (uint64_t)size / (1024 * 1024);
}

static int op_machine_config(struct vmm *m, const Ember__V1__MachineConfig *mc, struct outcome *o)
{
	if (need_not_started(m, o, "machine_config") < 0)
		return -1;
	if (mc->vcpus < 1 || mc->vcpus > VM_MAX_VCPUS)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "machine_config.vcpus: %u; must be 1 to %d", mc->vcpus, VM_MAX_VCPUS);
	/* A guest larger than the host cannot be what the platform meant, even though untouched
	 * guest pages cost nothing. */
	uint64_t max = host_ram_mib();
	if (max > LAYOUT_MAX_MEM_MIB)
		max = LAYOUT_MAX_MEM_MIB;
	if (mc->mem_mib < 2 || mc->mem_mib > max)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "machine_config.mem_mib: %llu; must be 2 to %llu (this host's RAM)",
			      (unsigned long long)mc->mem_mib, (unsigned long long)max);
	m->cfg.vcpus = mc->vcpus;
	m->cfg.mem_mib = mc->mem_mib;
	return 0;
}

static int add_device(struct vmm *m, const struct virtio_device_class *cls, void *config,
		      const char *op, struct outcome *o)
{
	for (unsigned i = 0; i < m->cfg.ndevices; i++) {
		const struct vm_device_spec *other = &m->cfg.devices[i];
		const char *why = other->cls == cls && cls->conflict
				      ? cls->conflict(other->config, config)
				      : NULL;
		if (why) {
			cls->free_config ? cls->free_config(config) : free(config);
			return refuse(o, EMBER__V1__STATUS__ALREADY_EXISTS, "%s: %s", op, why);
		}
	}
	if (m->cfg.ndevices == VIRTIO_MMIO_MAX_DEVICES) {
		cls->free_config ? cls->free_config(config) : free(config);
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "%s: at most %d devices in all", op, VIRTIO_MMIO_MAX_DEVICES);
	}
	m->cfg.devices[m->cfg.ndevices++] = (struct vm_device_spec){cls, config};
	return 0;
}

static bool valid_id(const char *id, size_t max)
{
	size_t n = strlen(id);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static int op_drive_add(struct vmm *m, struct api_call *call, const Ember__V1__Drive *d,
			struct outcome *o)
{
	if (need_not_started(m, o, "drive_add") < 0)
		return -1;
	if (!valid_id(d->id, BLOCK_ID_MAX))
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "drive_add.id '%s': 1 to %d characters of A-Z a-z 0-9 _ . -", d->id,
			      BLOCK_ID_MAX);
	struct vmm_file f;
	if (take_file(call, d->file, "drive_add.file", o, &f) < 0)
		return -1;
	struct block_config *c = calloc(1, sizeof(*c));
	char *id = strdup(d->id);
	if (!c || !id) {
		free(c);
		free(id);
		file_free(&f);
		return refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	}
	c->path = f.path; /* the config owns the path and the descriptor from here on */
	c->fd = f.fd;
	c->id = id;
	c->read_only = d->read_only;
	if (c->fd >= 0) {
		int mode = fcntl(c->fd, F_GETFL) & O_ACCMODE;
		if (!d->read_only && mode == O_RDONLY) {
			virtio_block_class.free_config(c);
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "drive_add %s: the passed descriptor is read-only; open it "
				      "read-write or set read_only",
				      d->id);
		}
	}
	char what[64];
	snprintf(what, sizeof(what), "drive_add %s", d->id);
	return add_device(m, &virtio_block_class, c, what, o);
}

static bool has_spec_separator(const char *s)
{
	return strchr(s, ',') || strchr(s, '=');
}

static int op_net_add(struct vmm *m, struct api_call *call, const Ember__V1__NetInterface *n,
		      struct outcome *o)
{
	if (need_not_started(m, o, "net_add") < 0)
		return -1;
	if (!valid_id(n->id, NET_ID_MAX))
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "net_add.id '%s': 1 to %d characters of A-Z a-z 0-9 _ . -", n->id,
			      NET_ID_MAX);
	if (has_spec_separator(n->mac))
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "net_add.mac '%s': expected XX:XX:XX:XX:XX:XX", n->mac);
	/* The same grammar and checks as `ember run --net`. */
	char spec[160];
	int fd = -1;
	switch (n->tap_case) {
	case EMBER__V1__NET_INTERFACE__TAP_TAP_NAME:
		if (!n->tap_name[0] || strlen(n->tap_name) >= IFNAMSIZ ||
		    has_spec_separator(n->tap_name))
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "net_add.tap_name '%s': 1 to %d characters, no ',' or '='",
				      n->tap_name, IFNAMSIZ - 1);
		snprintf(spec, sizeof(spec), "tap=%s,id=%s", n->tap_name, n->id);
		break;
	case EMBER__V1__NET_INTERFACE__TAP_TAP_PASSED_FD:
		if (n->tap_passed_fd >= call->nfds || call->fds[n->tap_passed_fd] < 0)
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "net_add.tap_passed_fd %u: no such descriptor came with the "
				      "request (%u did)",
				      n->tap_passed_fd, call->nfds);
		fd = call->fds[n->tap_passed_fd];
		snprintf(spec, sizeof(spec), "fd=%d,id=%s", fd, n->id);
		break;
	default:
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "net_add: tap_name or tap_passed_fd is required");
	}
	if (n->mac[0]) {
		size_t l = strlen(spec);
		snprintf(spec + l, sizeof(spec) - l, ",mac=%s", n->mac);
	}
	struct net_config *c = calloc(1, sizeof(*c));
	if (!c)
		return refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	int r = net_config_parse(spec, c);
	if (r < 0) {
		free(c);
		return refuse_err(o, r, "net_add");
	}
	if (fd >= 0)
		call->fds[n->tap_passed_fd] = -1; /* the config owns it now */
	char what[96];
	snprintf(what, sizeof(what), "net_add %s", n->id);
	return add_device(m, &virtio_net_class, c, what, o);
}

static int op_vsock_set(struct vmm *m, const Ember__V1__Vsock *v, struct outcome *o)
{
	if (need_not_started(m, o, "vsock_set") < 0)
		return -1;
	if (v->guest_cid < 3 || v->guest_cid >= UINT32_MAX)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "vsock_set.guest_cid %llu: must be 3 to %u",
			      (unsigned long long)v->guest_cid, UINT32_MAX - 1);
	size_t len = strlen(v->uds_path);
	if (len == 0 || len > VSOCK_UDS_PATH_MAX)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "vsock_set.uds_path: 1 to %zu bytes", VSOCK_UDS_PATH_MAX);
	struct vsock_config *c = calloc(1, sizeof(*c));
	if (!c)
		return refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	c->guest_cid = v->guest_cid;
	memcpy(c->uds_path, v->uds_path, len + 1);
	c->timeout_ms = VSOCK_DEFAULT_TIMEOUT_MS;
	/* One vsock device per VM: setting it again replaces it. */
	for (unsigned i = 0; i < m->cfg.ndevices; i++) {
		if (m->cfg.devices[i].cls != &virtio_vsock_class)
			continue;
		free(m->cfg.devices[i].config);
		m->cfg.devices[i].config = c;
		return 0;
	}
	return add_device(m, &virtio_vsock_class, c, "vsock_set", o);
}

static int op_start(struct vmm *m, struct outcome *o)
{
	if (need_not_started(m, o, "start") < 0)
		return -1;
	if (!m->boot_source_set)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "start: no boot source; send boot_source first");
	if (!m->allow_start)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "start: not allowed in this monitor");
	int r = vmm_start(m);
	if (r < 0)
		return refuse_err(o, r, "start");
	return 0;
}

static int op_pause(struct vmm *m, struct outcome *o)
{
	if (need_started(m, o, "pause") < 0)
		return -1;
	uint64_t t0 = timing_now_ns();
	vm_pause(m->vm);
	m->state = VMM_PAUSED;
	log_info("VM paused in %.3f ms", (double)(timing_now_ns() - t0) / 1e6);
	return 0;
}

static int op_resume(struct vmm *m, struct outcome *o)
{
	if (need_started(m, o, "resume") < 0)
		return -1;
	vm_resume(m->vm);
	m->state = VMM_RUNNING;
	return 0;
}

static int op_stop(struct vmm *m)
{
	log_info("stop requested through the API");
	if (m->vm) {
		vm_request_stop(m->vm, VM_STOP_REQUEST);
	} else {
		m->exit_code = EMBER_EXIT_OK;
		m->state = VMM_STOPPED;
		m->loop.quit = true;
	}
	return 0;
}

static struct vm_device *find_drive(struct vmm *m, const char *id)
{
	for (unsigned i = 0; m->vm && i < m->vm->ndevices; i++) {
		const struct vm_device_spec *spec = &m->vm->cfg.devices[i];
		if (spec->cls != &virtio_block_class)
			continue;
		const struct block_config *c = spec->config;
		if (c->id && strcmp(c->id, id) == 0)
			return &m->vm->devices[i];
	}
	return NULL;
}

static struct block_config *find_drive_config(struct vmm *m, const char *id)
{
	for (unsigned i = 0; i < m->cfg.ndevices; i++) {
		if (m->cfg.devices[i].cls != &virtio_block_class)
			continue;
		struct block_config *c = m->cfg.devices[i].config;
		if (c->id && strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

static int op_drive_update(struct vmm *m, struct api_call *call, const Ember__V1__DriveUpdate *u,
			   struct outcome *o)
{
	if (m->state == VMM_STOPPED)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "drive_update: the VM has stopped");
	struct block_config *c = find_drive_config(m, u->id);
	if (!c)
		return refuse(o, EMBER__V1__STATUS__NOT_FOUND, "drive_update: no drive '%s'",
			      u->id);
	struct vmm_file f;
	if (take_file(call, u->file, "drive_update.file", o, &f) < 0)
		return -1;
	if (m->state == VMM_NOT_STARTED) {
		free(c->path);
		if (c->fd >= 0)
			close(c->fd);
		c->path = f.path;
		c->fd = f.fd;
		return 0;
	}
	int fd = f.fd;
	if (fd < 0) {
		fd = open(f.path, (c->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			refuse(o,
			       e == ENOENT ? EMBER__V1__STATUS__NOT_FOUND
					   : EMBER__V1__STATUS__INVALID_ARGUMENT,
			       "drive_update %s: %s: %s", u->id, f.path, strerror(e));
			file_free(&f);
			return -1;
		}
	}
	struct vm_device *dev = find_drive(m, u->id);
	int r = dev ? block_update_backing(dev->dev, fd, f.path)
		    : err_set(ENOENT, "drive %s is not in the running VM", u->id);
	if (fd != f.fd)
		close(fd);
	if (r < 0) {
		file_free(&f);
		return refuse_err(o, r, "drive_update");
	}
	/* Describe shows the new backing. */
	free(c->path);
	if (c->fd >= 0)
		close(c->fd);
	c->path = f.path;
	c->fd = f.fd;
	return 0;
}

static int op_logger(struct vmm *m, struct api_call *call, const Ember__V1__Logger *l,
		     struct outcome *o)
{
	enum log_level level = log_get_level();
	if (l->level[0] && log_parse_level(l->level, &level) < 0)
		return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
			      "logger.level '%s': expected error, warn, info or debug", l->level);
	if (l->file) {
		if (!m->allow_file_writes)
			return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
				      "logger.file: not allowed in this monitor");
		FILE *f = NULL;
		if (l->file->source_case == EMBER__V1__FILE_SOURCE__SOURCE_PATH && l->file->path[0])
			f = fopen(l->file->path, "ae");
		else if (l->file->source_case == EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD &&
			 l->file->passed_fd < call->nfds && call->fds[l->file->passed_fd] >= 0) {
			f = fdopen(call->fds[l->file->passed_fd], "a");
			if (f)
				call->fds[l->file->passed_fd] = -1;
		} else {
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT,
				      "logger.file: a path or a passed descriptor is required");
		}
		if (!f)
			return refuse(o, EMBER__V1__STATUS__INVALID_ARGUMENT, "logger.file: %s",
				      strerror(errno));
		log_set_file(f);
	}
	log_set_level(level);
	return 0;
}

/* A snapshot file to write: a path (created; its folder must exist) or a passed descriptor. */
static int snapshot_out(struct api_call *call, const Ember__V1__FileSource *fs, const char *what,
			struct outcome *o, struct vmm_file *out)
{
	out->path = NULL;
	out->fd = -1;
	if (fs && fs->source_case == EMBER__V1__FILE_SOURCE__SOURCE_PATH && fs->path[0]) {
		out->path = strdup(fs->path);
		return out->path ? 0 : refuse(o, EMBER__V1__STATUS__INTERNAL, "out of memory");
	}
	return take_file(call, fs, what, o, out);
}

static int op_snapshot_create(struct vmm *m, struct api_call *call,
			      const Ember__V1__SnapshotCreate *c, struct outcome *o)
{
	if (m->state != VMM_PAUSED)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "snapshot_create: the VM must be paused (it is %s)",
			      state_name(m->state));
	if (!m->allow_file_writes)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "snapshot_create: not allowed in this monitor");
	struct vmm_file st, mem;
	if (snapshot_out(call, c->state, "snapshot_create.state", o, &st) < 0)
		return -1;
	if (snapshot_out(call, c->mem, "snapshot_create.mem", o, &mem) < 0) {
		file_free(&st);
		return -1;
	}
	struct snapshot_file sf = {st.path, st.fd}, mf = {mem.path, mem.fd};
	int r = vmm_snapshot(m, &sf, &mf, c->diff);
	file_free(&st);
	file_free(&mem);
	return r < 0 ? refuse_err(o, r, "snapshot_create") : 0;
}

static int op_snapshot_load(struct vmm *m, struct api_call *call, const Ember__V1__SnapshotLoad *l,
			    struct outcome *o)
{
	if (need_not_started(m, o, "snapshot_load") < 0)
		return -1;
	if (!m->allow_start)
		return refuse(o, EMBER__V1__STATUS__FAILED_PRECONDITION,
			      "snapshot_load: not allowed in this monitor");
	struct vmm_file st = {.fd = -1}, mem = {.fd = -1}, diff = {.fd = -1};
	int r = take_file(call, l->state, "snapshot_load.state", o, &st);
	if (r == 0)
		r = take_file(call, l->mem, "snapshot_load.mem", o, &mem);
	if (r == 0 && l->diff_mem)
		r = take_file(call, l->diff_mem, "snapshot_load.diff_mem", o, &diff);
	if (r == 0) {
		struct snapshot_file sf = {st.path, st.fd}, mf = {mem.path, mem.fd},
				     df = {diff.path, diff.fd};
		struct snapshot *s = NULL;
		int e = snapshot_open(&s, &sf, &mf, l->diff_mem ? &df : NULL);
		if (e == 0)
			e = vmm_restore(m, s, NULL, !l->resume);
		snapshot_close(s);
		if (e < 0)
			r = refuse_err(o, e, "snapshot_load");
	}
	file_free(&st);
	file_free(&mem);
	file_free(&diff);
	return r;
}

/* Everything a reply may point at is allocated here and freed after packing. */
struct arena {
	void *ptrs[256];
	unsigned n;
};

static void *arena_alloc(struct arena *a, size_t size)
{
	if (a->n == sizeof(a->ptrs) / sizeof(a->ptrs[0]))
		return NULL;
	void *p = calloc(1, size ? size : 1);
	if (p)
		a->ptrs[a->n++] = p;
	return p;
}

static char *arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(a, n);
	if (p)
		memcpy(p, s, n);
	return p ? p : (char *)"";
}

static void arena_free(struct arena *a)
{
	for (unsigned i = 0; i < a->n; i++)
		free(a->ptrs[i]);
	a->n = 0;
}

static Ember__V1__FileSource *file_source(struct arena *a, const char *path)
{
	Ember__V1__FileSource *fs = arena_alloc(a, sizeof(*fs));
	if (!fs)
		return NULL;
	ember__v1__file_source__init(fs);
	fs->source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	fs->path = arena_strdup(a, path);
	return fs;
}

static Ember__V1__VmState proto_state(enum vmm_state s)
{
	switch (s) {
	case VMM_RUNNING:
		return EMBER__V1__VM_STATE__VM_STATE_RUNNING;
	case VMM_PAUSED:
		return EMBER__V1__VM_STATE__VM_STATE_PAUSED;
	case VMM_STOPPED:
		return EMBER__V1__VM_STATE__VM_STATE_STOPPED;
	case VMM_NOT_STARTED:
		break;
	}
	return EMBER__V1__VM_STATE__VM_STATE_NOT_STARTED;
}

static void format_mac(char out[18], const uint8_t mac[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

static int build_info(struct vmm *m, struct arena *a, Ember__V1__InstanceInfo *info)
{
	ember__v1__instance_info__init(info);
	info->state = proto_state(m->state);
	info->version = (char *)EMBER_VERSION;
	info->pid = (uint32_t)getpid();
	if (m->boot_source_set) {
		Ember__V1__BootSource *b = arena_alloc(a, sizeof(*b));
		if (!b)
			return -1;
		ember__v1__boot_source__init(b);
		b->kernel = file_source(a, m->kernel.path);
		if (m->initrd.path)
			b->initrd = file_source(a, m->initrd.path);
		b->cmdline = arena_strdup(a, m->cmdline ? m->cmdline : "");
		b->protocol = m->cfg.protocol == BOOT_PROTOCOL_LINUX64
				  ? EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_LINUX
			      : m->cfg.protocol == BOOT_PROTOCOL_PVH
				  ? EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH
				  : EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_AUTO;
		info->boot_source = b;
	}
	Ember__V1__MachineConfig *mc = arena_alloc(a, sizeof(*mc));
	if (!mc)
		return -1;
	ember__v1__machine_config__init(mc);
	mc->vcpus = m->cfg.vcpus;
	mc->mem_mib = m->cfg.mem_mib;
	info->machine_config = mc;
	unsigned n = m->cfg.ndevices;
	info->drives = arena_alloc(a, n * sizeof(*info->drives));
	info->net = arena_alloc(a, n * sizeof(*info->net));
	if (!info->drives || !info->net)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		const struct vm_device_spec *spec = &m->cfg.devices[i];
		if (spec->cls == &virtio_block_class) {
			const struct block_config *c = spec->config;
			Ember__V1__Drive *d = arena_alloc(a, sizeof(*d));
			if (!d)
				return -1;
			ember__v1__drive__init(d);
			d->id = arena_strdup(a, c->id ? c->id : "");
			d->file = file_source(a, c->path ? c->path : "");
			d->read_only = c->read_only;
			info->drives[info->n_drives++] = d;
		} else if (spec->cls == &virtio_net_class) {
			const struct net_config *c = spec->config;
			Ember__V1__NetInterface *ni = arena_alloc(a, sizeof(*ni));
			if (!ni)
				return -1;
			ember__v1__net_interface__init(ni);
			ni->id = arena_strdup(a, c->id);
			if (c->tap[0]) {
				ni->tap_case = EMBER__V1__NET_INTERFACE__TAP_TAP_NAME;
				ni->tap_name = arena_strdup(a, c->tap);
			}
			char mac[18] = "";
			if (c->mac_set)
				format_mac(mac, c->mac);
			ni->mac = arena_strdup(a, mac);
			info->net[info->n_net++] = ni;
		} else if (spec->cls == &virtio_vsock_class) {
			const struct vsock_config *c = spec->config;
			Ember__V1__Vsock *v = arena_alloc(a, sizeof(*v));
			if (!v)
				return -1;
			ember__v1__vsock__init(v);
			v->guest_cid = c->guest_cid;
			v->uds_path = arena_strdup(a, c->uds_path);
			info->vsock = v;
		}
	}
	return 0;
}

/* Resident memory from /proc/self/status: all of it, and the shared part, which is the guest's
 * RAM (a memfd mapped shared). */
static void read_rss(uint64_t *total, uint64_t *shmem)
{
	*total = *shmem = 0;
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return;
	char line[128];
	unsigned long long kb;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*total = kb * 1024;
		else if (sscanf(line, "RssShmem: %llu kB", &kb) == 1)
			*shmem = kb * 1024;
	}
	fclose(f);
}

static const char *device_id(const struct vm_device_spec *spec)
{
	if (spec->cls == &virtio_block_class)
		return ((const struct block_config *)spec->config)->id;
	if (spec->cls == &virtio_net_class)
		return ((const struct net_config *)spec->config)->id;
	return spec->cls->flag;
}

static int build_metrics(struct vmm *m, struct arena *a, Ember__V1__Metrics *mt)
{
	ember__v1__metrics__init(mt);
	uint64_t start = timing_start_ns(), now = timing_now_ns();
	mt->uptime_us = (now - start) / 1000;
	struct api_server_stats as = {0};
	if (m->api)
		api_server_get_stats(m->api, &as);
	mt->api_requests = as.requests;
	mt->api_errors = as.errors;
	read_rss(&mt->monitor_rss_bytes, &mt->guest_rss_bytes);
	mt->monitor_rss_bytes -= mt->guest_rss_bytes;
	struct vm *vm = m->vm;
	if (!vm)
		return 0;
	uint64_t boot = atomic_load(&vm->metrics.boot_timer_ns);
	if (boot) {
		mt->process_start_to_init_us = (boot - start) / 1000;
		mt->instance_start_to_init_us = (boot - m->instance_start_ns) / 1000;
	}
	mt->vcpu_exits = arena_alloc(a, VCPU_EXIT_KINDS * sizeof(*mt->vcpu_exits));
	mt->devices = arena_alloc(a, (vm->ndevices + 1) * sizeof(*mt->devices));
	if (!mt->vcpu_exits || !mt->devices)
		return -1;
	for (unsigned k = 0; k < VCPU_EXIT_KINDS; k++) {
		Ember__V1__ExitCount *e = arena_alloc(a, sizeof(*e));
		if (!e)
			return -1;
		ember__v1__exit_count__init(e);
		e->reason = (char *)vcpu_exit_kind_names[k];
		for (unsigned i = 0; i < vm->nvcpus; i++)
			e->count += atomic_load(&vm->vcpus[i].exits[k]);
		mt->vcpu_exits[mt->n_vcpu_exits++] = e;
	}
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		Ember__V1__DeviceMetrics *dm = arena_alloc(a, sizeof(*dm));
		if (!dm)
			return -1;
		ember__v1__device_metrics__init(dm);
		dm->kind = (char *)(d->cls == &virtio_block_class ? "block" : d->cls->flag);
		dm->id = arena_strdup(a, device_id(&vm->cfg.devices[i]));
		struct virtio_device_metrics dmet = {0};
		if (d->cls->metrics)
			d->cls->metrics(d->dev, &dmet);
		dm->requests = dmet.requests;
		dm->bytes_to_guest = dmet.bytes_to_guest;
		dm->bytes_from_guest = dmet.bytes_from_guest;
		dm->errors = dmet.errors;
		dm->notifies = d->transport->stats.notifies;
		dm->interrupts = d->transport->stats.interrupts;
		dm->needs_reset = d->transport->stats.needs_reset_events;
		mt->devices[mt->n_devices++] = dm;
	}
	return 0;
}

static void pack(struct api_call *call, Ember__V1__Response *resp)
{
	size_t n = ember__v1__response__get_packed_size(resp);
	call->reply = malloc(n ? n : 1);
	if (!call->reply) {
		call->reply_len = 0;
		return;
	}
	call->reply_len = ember__v1__response__pack(resp, call->reply);
	call->status = resp->status;
}

void vmm_handle_api_call(void *ctx, struct api_call *call)
{
	struct vmm *m = ctx;
	const Ember__V1__Request *req = call->req;
	struct outcome o = {.status = EMBER__V1__STATUS__OK};
	struct arena a = {.n = 0};
	Ember__V1__Response resp = EMBER__V1__RESPONSE__INIT;
	Ember__V1__InstanceInfo info;
	Ember__V1__Metrics metrics;
	err_clear();

	switch (req->op_case) {
	case EMBER__V1__REQUEST__OP_BOOT_SOURCE:
		op_boot_source(m, call, req->boot_source, &o);
		break;
	case EMBER__V1__REQUEST__OP_MACHINE_CONFIG:
		op_machine_config(m, req->machine_config, &o);
		break;
	case EMBER__V1__REQUEST__OP_DRIVE_ADD:
		op_drive_add(m, call, req->drive_add, &o);
		break;
	case EMBER__V1__REQUEST__OP_NET_ADD:
		op_net_add(m, call, req->net_add, &o);
		break;
	case EMBER__V1__REQUEST__OP_VSOCK_SET:
		op_vsock_set(m, req->vsock_set, &o);
		break;
	case EMBER__V1__REQUEST__OP_START:
		op_start(m, &o);
		break;
	case EMBER__V1__REQUEST__OP_PAUSE:
		op_pause(m, &o);
		break;
	case EMBER__V1__REQUEST__OP_RESUME:
		op_resume(m, &o);
		break;
	case EMBER__V1__REQUEST__OP_STOP:
		op_stop(m);
		break;
	case EMBER__V1__REQUEST__OP_DESCRIBE:
		if (build_info(m, &a, &info) < 0) {
			refuse(&o, EMBER__V1__STATUS__INTERNAL, "describe: out of memory");
			break;
		}
		resp.result_case = EMBER__V1__RESPONSE__RESULT_INFO;
		resp.info = &info;
		break;
	case EMBER__V1__REQUEST__OP_METRICS:
		if (build_metrics(m, &a, &metrics) < 0) {
			refuse(&o, EMBER__V1__STATUS__INTERNAL, "metrics: out of memory");
			break;
		}
		resp.result_case = EMBER__V1__RESPONSE__RESULT_METRICS;
		resp.metrics = &metrics;
		break;
	case EMBER__V1__REQUEST__OP_DRIVE_UPDATE:
		op_drive_update(m, call, req->drive_update, &o);
		break;
	case EMBER__V1__REQUEST__OP_LOGGER:
		op_logger(m, call, req->logger, &o);
		break;
	case EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE:
		op_snapshot_create(m, call, req->snapshot_create, &o);
		break;
	case EMBER__V1__REQUEST__OP_SNAPSHOT_LOAD:
		op_snapshot_load(m, call, req->snapshot_load, &o);
		break;
	default:
		refuse(&o, EMBER__V1__STATUS__INVALID_ARGUMENT, "unknown operation %d",
		       (int)req->op_case);
		break;
	}
	if (o.status != EMBER__V1__STATUS__OK) {
		resp.result_case = EMBER__V1__RESPONSE__RESULT__NOT_SET;
		log_info("API request %d refused: %s", (int)req->op_case, o.msg);
	}
	resp.status = o.status;
	resp.message = o.msg;
	pack(call, &resp);
	arena_free(&a);
}
