/* emberctl's verbs: each one's flags, help and the Request it builds. Values are checked here,
 * before anything is sent, as far as the client can know them; the monitor checks the rest. */
#include "api/ctl.h"
#include "common/err.h"
#include "monitor/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DRIVE_ID_MAX 20 /* virtio-blk's GET_ID answer */
#define NET_ID_MAX   63
#define VCPUS_MAX    32
#define MEM_MIB_MIN  2

void ctl_request_init(struct ctl_request *rq)
{
	memset(rq, 0, sizeof(*rq));
	ember__v1__request__init(&rq->req);
	ember__v1__empty__init(&rq->empty);
	ember__v1__boot_source__init(&rq->boot_source);
	ember__v1__machine_config__init(&rq->machine_config);
	ember__v1__drive__init(&rq->drive);
	ember__v1__drive_update__init(&rq->drive_update);
	ember__v1__net_interface__init(&rq->net);
	ember__v1__vsock__init(&rq->vsock);
	ember__v1__logger__init(&rq->logger);
	ember__v1__snapshot_create__init(&rq->snapshot_create);
	ember__v1__snapshot_load__init(&rq->snapshot_load);
	for (unsigned i = 0; i < CTL_MAX_FILES; i++)
		ember__v1__file_source__init(&rq->files[i]);
}

void ctl_request_close_fds(struct ctl_request *rq)
{
	for (unsigned i = 0; i < rq->nfds; i++)
		close(rq->fds[i]);
	rq->nfds = 0;
}

static const char *arg(const struct ctl_args *a, const char *flag)
{
	for (unsigned i = 0; a->verb->flags[i].name; i++)
		if (strcmp(a->verb->flags[i].name, flag) == 0)
			return a->value[i];
	return NULL;
}

static int add_fd(struct ctl_request *rq, int fd, const char *flag, const char *what)
{
	if (rq->nfds == API_FRAME_MAXFDS) {
		close(fd);
		return err_set(E2BIG, "--%s %s: more than %d files to pass", flag, what,
			       API_FRAME_MAXFDS);
	}
	rq->fds[rq->nfds] = fd;
	return (int)rq->nfds++;
}

/* open_to_pass's flags for "read-write if the file allows it, else read-only". */
#define OPEN_RW_OR_RO (-1)

/* Open a file to pass. O_NONBLOCK only for the open itself, so that a FIFO without a peer fails
 * at once instead of hanging; the file's flags are restored before it is sent. */
static int open_to_pass(struct ctl_request *rq, const char *flag, const char *path, int flags,
			mode_t mode)
{
	int extra = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd = open(path, (flags == OPEN_RW_OR_RO ? O_RDWR : flags) | extra, mode);
	if (fd < 0 && flags == OPEN_RW_OR_RO &&
	    (errno == EACCES || errno == EROFS || errno == EPERM))
		fd = open(path, O_RDONLY | extra);
	if (fd < 0)
		return err_errno("--%s %s", flag, path);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int r = err_errno("--%s %s: fcntl", flag, path);
		close(fd);
		return r;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = err_errno("--%s %s: fstat", flag, path);
		close(fd);
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return err_set(EISDIR, "--%s %s: is a directory", flag, path);
	}
	return add_fd(rq, fd, flag, path);
}

/* A FileSource from `--PATH_FLAG P` (the monitor opens P) or `--PASS_FLAG P` (emberctl opens P
 * with open_flags and passes it). *out stays NULL when neither is given and !required. */
static int file_source(const struct ctl_args *a, struct ctl_request *rq, const char *path_flag,
		       const char *pass_flag, int open_flags, mode_t mode, bool required,
		       Ember__V1__FileSource **out)
{
	const char *path = arg(a, path_flag), *pass = arg(a, pass_flag);
	*out = NULL;
	if (path && pass)
		return err_set(EINVAL, "--%s and --%s exclude each other", path_flag, pass_flag);
	if (!path && !pass) {
		if (required)
			return err_set(EINVAL, "one of --%s or --%s is required", path_flag,
				       pass_flag);
		return 0;
	}
	const char *given = path ? path : pass;
	if (!*given)
		return err_set(EINVAL, "--%s: empty path", path ? path_flag : pass_flag);
	Ember__V1__FileSource *fs = &rq->files[rq->nfiles++];
	if (path) {
		fs->source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
		fs->path = (char *)path;
	} else {
		int idx = open_to_pass(rq, pass_flag, pass, open_flags, mode);
		if (idx < 0)
			return idx;
		fs->source_case = EMBER__V1__FILE_SOURCE__SOURCE_PASSED_FD;
		fs->passed_fd = (uint32_t)idx;
	}
	*out = fs;
	return 0;
}

static int require(const struct ctl_args *a, const char *flag, const char **out)
{
	*out = arg(a, flag);
	if (!*out)
		return err_set(EINVAL, "--%s is required", flag);
	if (!**out)
		return err_set(EINVAL, "--%s: empty value", flag);
	return 0;
}

static int check_id(const char *flag, const char *id, size_t max)
{
	size_t len = strlen(id);
	if (len == 0 || len > max)
		return err_set(EINVAL, "--%s '%s': an id has 1 to %zu bytes", flag, id, max);
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		if (!ok)
			return err_set(EINVAL,
				       "--%s '%s': an id is made of letters, digits, '_', '.' and "
				       "'-'",
				       flag, id);
	}
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int check_mac(const char *mac)
{
	uint8_t b[6];
	bool ok = strlen(mac) == 17;
	for (unsigned i = 0; ok && i < 6; i++) {
		int hi = hex_digit(mac[3 * i]), lo = hex_digit(mac[3 * i + 1]);
		ok = hi >= 0 && lo >= 0 && (i == 5 || mac[3 * i + 2] == ':');
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (!ok)
		return err_set(EINVAL, "--mac '%s': expected six hex bytes like AA:FC:00:00:00:01",
			       mac);
	if (b[0] & 1)
		return err_set(EINVAL, "--mac %s is a multicast address (the first byte is odd)",
			       mac);
	static const uint8_t zero[6];
	if (memcmp(b, zero, sizeof(b)) == 0)
		return err_set(EINVAL, "--mac %s is not an address", mac);
	return 0;
}

static int check_socket_path(const char *flag, const char *path)
{
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(ENAMETOOLONG, "--%s %s: a socket path has at most %zu bytes", flag,
			       path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return 0;
}

/* ---- the verbs ---------------------------------------------------------------------------- */

static int build_empty(struct ctl_request *rq, Ember__V1__Request__OpCase op)
{
	rq->req.op_case = op;
	/* Every Empty member of the oneof shares the union's storage. */
	rq->req.start = &rq->empty;
	return 0;
}

static int build_start(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_START);
}

static int build_pause(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_PAUSE);
}

static int build_resume(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_RESUME);
}

static int build_stop(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_STOP);
}

static int build_describe(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_DESCRIBE);
}

static int build_metrics(const struct ctl_args *a, struct ctl_request *rq)
{
	return build_empty(rq, EMBER__V1__REQUEST__OP_METRICS);
}

static int build_boot_source(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__BootSource *b = &rq->boot_source;
	int r = file_source(a, rq, "kernel", "kernel-fd-from", O_RDONLY, 0, true, &b->kernel);
	if (r == 0)
		r = file_source(a, rq, "initrd", "initrd-fd-from", O_RDONLY, 0, false, &b->initrd);
	if (r < 0)
		return r;
	const char *cmdline = arg(a, "cmdline"), *protocol = arg(a, "protocol");
	if (cmdline)
		b->cmdline = (char *)cmdline;
	if (!protocol || strcmp(protocol, "auto") == 0)
		b->protocol = EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_AUTO;
	else if (strcmp(protocol, "linux") == 0)
		b->protocol = EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_LINUX;
	else if (strcmp(protocol, "pvh") == 0)
		b->protocol = EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH;
	else
		return err_set(EINVAL, "--protocol '%s': expected auto, linux or pvh", protocol);
	rq->req.op_case = EMBER__V1__REQUEST__OP_BOOT_SOURCE;
	rq->req.boot_source = b;
	return 0;
}

static int build_machine_config(const struct ctl_args *a, struct ctl_request *rq)
{
	const char *vcpus, *mem;
	uint64_t v, m;
	int r = require(a, "vcpus", &vcpus);
	if (r == 0)
		r = require(a, "mem-mib", &mem);
	if (r == 0)
		r = cli_parse_u64("--vcpus", vcpus, 1, VCPUS_MAX, &v);
	if (r == 0)
		r = cli_parse_u64("--mem-mib", mem, MEM_MIB_MIN, UINT64_MAX, &m);
	if (r < 0)
		return r;
	rq->machine_config.vcpus = (uint32_t)v;
	rq->machine_config.mem_mib = m;
	rq->req.op_case = EMBER__V1__REQUEST__OP_MACHINE_CONFIG;
	rq->req.machine_config = &rq->machine_config;
	return 0;
}

static int build_drive_add(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__Drive *d = &rq->drive;
	const char *id;
	int r = require(a, "id", &id);
	if (r == 0)
		r = check_id("id", id, DRIVE_ID_MAX);
	d->read_only = arg(a, "read-only") != NULL;
	if (r == 0)
		r = file_source(a, rq, "path", "fd-from", d->read_only ? O_RDONLY : O_RDWR, 0, true,
				&d->file);
	if (r < 0)
		return r;
	d->id = (char *)id;
	rq->req.op_case = EMBER__V1__REQUEST__OP_DRIVE_ADD;
	rq->req.drive_add = d;
	return 0;
}

static int build_drive_update(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__DriveUpdate *d = &rq->drive_update;
	const char *id;
	int r = require(a, "id", &id);
	if (r == 0)
		r = check_id("id", id, DRIVE_ID_MAX);
	/* Whether the drive is read-only is the monitor's to know: ask for what the file allows. */
	if (r == 0)
		r = file_source(a, rq, "path", "fd-from", OPEN_RW_OR_RO, 0, true, &d->file);
	if (r < 0)
		return r;
	d->id = (char *)id;
	rq->req.op_case = EMBER__V1__REQUEST__OP_DRIVE_UPDATE;
	rq->req.drive_update = d;
	return 0;
}

/* Open the tap NAME as the monitor would: a tap with the virtio-net header, no packet info. */
static int open_tap(struct ctl_request *rq, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (strlen(name) >= sizeof(ifr.ifr_name))
		return err_set(ENAMETOOLONG,
			       "--tap-fd-from %s: an interface name has at most %zu "
			       "bytes",
			       name, sizeof(ifr.ifr_name) - 1);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_errno("--tap-fd-from %s: /dev/net/tun", name);
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = err_errno("--tap-fd-from %s: TUNSETIFF (tap, no packet info, vnet header)",
				  name);
		close(fd);
		return r;
	}
	return add_fd(rq, fd, "tap-fd-from", name);
}

static int build_net_add(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__NetInterface *n = &rq->net;
	const char *id, *tap = arg(a, "tap"), *pass = arg(a, "tap-fd-from"), *mac = arg(a, "mac");
	int r = require(a, "id", &id);
	if (r == 0)
		r = check_id("id", id, NET_ID_MAX);
	if (r == 0 && tap && pass)
		r = err_set(EINVAL, "--tap and --tap-fd-from exclude each other");
	if (r == 0 && !tap && !pass)
		r = err_set(EINVAL, "one of --tap or --tap-fd-from is required");
	if (r == 0 && !*(tap ? tap : pass))
		r = err_set(EINVAL, "--%s: empty interface name", tap ? "tap" : "tap-fd-from");
	if (r == 0 && mac)
		r = check_mac(mac);
	if (r < 0)
		return r;
	if (tap) {
		n->tap_case = EMBER__V1__NET_INTERFACE__TAP_TAP_NAME;
		n->tap_name = (char *)tap;
	} else {
		int idx = open_tap(rq, pass);
		if (idx < 0)
			return idx;
		n->tap_case = EMBER__V1__NET_INTERFACE__TAP_TAP_PASSED_FD;
		n->tap_passed_fd = (uint32_t)idx;
	}
	n->id = (char *)id;
	if (mac)
		n->mac = (char *)mac;
	rq->req.op_case = EMBER__V1__REQUEST__OP_NET_ADD;
	rq->req.net_add = n;
	return 0;
}

static int build_vsock_set(const struct ctl_args *a, struct ctl_request *rq)
{
	const char *cid, *uds;
	uint64_t v;
	int r = require(a, "cid", &cid);
	if (r == 0)
		r = require(a, "uds", &uds);
	if (r == 0)
		r = cli_parse_u64("--cid", cid, 3, 0xfffffffe, &v);
	if (r == 0)
		r = check_socket_path("uds", uds);
	if (r < 0)
		return r;
	rq->vsock.guest_cid = v;
	rq->vsock.uds_path = (char *)uds;
	rq->req.op_case = EMBER__V1__REQUEST__OP_VSOCK_SET;
	rq->req.vsock_set = &rq->vsock;
	return 0;
}

static int build_logger(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__Logger *l = &rq->logger;
	const char *level = arg(a, "level");
	if (level && strcmp(level, "error") != 0 && strcmp(level, "warn") != 0 &&
	    strcmp(level, "info") != 0 && strcmp(level, "debug") != 0)
		return err_set(EINVAL, "--level '%s': expected error, warn, info or debug", level);
	int r = file_source(a, rq, "file", "file-fd-from", O_WRONLY | O_APPEND | O_CREAT, 0666,
			    false, &l->file);
	if (r < 0)
		return r;
	if (!level && !l->file)
		return err_set(EINVAL, "nothing to change: give --level, --file or --file-fd-from");
	if (level)
		l->level = (char *)level;
	rq->req.op_case = EMBER__V1__REQUEST__OP_LOGGER;
	rq->req.logger = l;
	return 0;
}

/* Snapshot files a monitor writes are created private to the user (guest memory is in them) and
 * not truncated: the monitor sizes what it writes, and a diff snapshot adds to its base. */
#define SNAPSHOT_WRITE_FLAGS (O_RDWR | O_CREAT)
#define SNAPSHOT_WRITE_MODE  0600

static int build_snapshot_create(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__SnapshotCreate *s = &rq->snapshot_create;
	int r = file_source(a, rq, "state", "state-fd-from", SNAPSHOT_WRITE_FLAGS,
			    SNAPSHOT_WRITE_MODE, true, &s->state);
	if (r == 0)
		r = file_source(a, rq, "mem", "mem-fd-from", SNAPSHOT_WRITE_FLAGS,
				SNAPSHOT_WRITE_MODE, true, &s->mem);
	if (r < 0)
		return r;
	s->diff = arg(a, "diff") != NULL;
	rq->req.op_case = EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE;
	rq->req.snapshot_create = s;
	return 0;
}

static int build_snapshot_load(const struct ctl_args *a, struct ctl_request *rq)
{
	Ember__V1__SnapshotLoad *s = &rq->snapshot_load;
	int r = file_source(a, rq, "state", "state-fd-from", O_RDONLY, 0, true, &s->state);
	if (r == 0)
		r = file_source(a, rq, "mem", "mem-fd-from", O_RDONLY, 0, true, &s->mem);
	if (r == 0)
		r = file_source(a, rq, "diff-mem", "diff-mem-fd-from", O_RDONLY, 0, false,
				&s->diff_mem);
	if (r < 0)
		return r;
	s->resume = arg(a, "resume") != NULL;
	rq->req.op_case = EMBER__V1__REQUEST__OP_SNAPSHOT_LOAD;
	rq->req.snapshot_load = s;
	return 0;
}

/* ---- the table ----------------------------------------------------------------------------- */

static const struct ctl_flag no_flags[] = {{NULL, NULL, NULL}};

static const struct ctl_flag boot_source_flags[] = {
    {"kernel", "PATH", "guest kernel (vmlinux ELF, PVH ELF or bzImage), opened by the monitor"},
    {"kernel-fd-from", "PATH", "the same, opened here and passed to the monitor"},
    {"initrd", "PATH", "initial ramdisk, opened by the monitor"},
    {"initrd-fd-from", "PATH", "the same, opened here and passed"},
    {"cmdline", "STR", "kernel command line (Ember appends its own part)"},
    {"protocol", "P", "auto (default), linux or pvh"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag machine_config_flags[] = {
    {"vcpus", "N", "number of vCPUs, 1 to 32"},
    {"mem-mib", "M", "guest RAM in MiB, at least 2"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag drive_add_flags[] = {
    {"id", "ID", "1 to 20 of [A-Za-z0-9_.-]; the guest reads it with GET_ID"},
    {"path", "PATH", "raw disk image, opened by the monitor"},
    {"fd-from", "PATH",
     "the same, opened here (read-write, or read-only with --read-only) "
     "and passed"},
    {"read-only", NULL, "the guest may not write"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag drive_update_flags[] = {
    {"id", "ID", "a configured drive"},
    {"path", "PATH", "its new backing file, opened by the monitor"},
    {"fd-from", "PATH",
     "the same, opened here (read-write where allowed, else read-only) and "
     "passed"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag net_add_flags[] = {
    {"id", "ID", "1 to 63 of [A-Za-z0-9_.-]"},
    {"tap", "NAME", "an existing tap interface, opened by the monitor"},
    {"tap-fd-from", "NAME",
     "the same tap, opened here (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) and "
     "passed"},
    {"mac", "MAC", "XX:XX:XX:XX:XX:XX, unicast (default: a random local one)"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag vsock_set_flags[] = {
    {"cid", "N", "the guest's context id, 3 to 4294967294"},
    {"uds", "PATH", "host-side Unix socket the monitor creates (see `ember run --help`)"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag logger_flags[] = {
    {"level", "L", "error, warn, info or debug"},
    {"file", "PATH", "append the monitor's log there from now on (opened by the monitor)"},
    {"file-fd-from", "PATH", "the same, opened here (appending, created if missing) and passed"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag snapshot_create_flags[] = {
    {"state", "PATH", "where the VM state goes, written by the monitor"},
    {"state-fd-from", "PATH", "the same, opened here (created 0600, not truncated) and passed"},
    {"mem", "PATH", "where guest memory goes, written by the monitor"},
    {"mem-fd-from", "PATH", "the same, opened here (created 0600, not truncated) and passed"},
    {"diff", NULL, "only the pages written since the last snapshot"},
    {NULL, NULL, NULL},
};

static const struct ctl_flag snapshot_load_flags[] = {
    {"state", "PATH", "a VM state file, opened by the monitor"},
    {"state-fd-from", "PATH", "the same, opened here (read-only) and passed"},
    {"mem", "PATH", "its guest memory file, opened by the monitor"},
    {"mem-fd-from", "PATH", "the same, opened here (read-only) and passed"},
    {"diff-mem", "PATH", "a diff snapshot's own memory file, layered on --mem"},
    {"diff-mem-fd-from", "PATH", "the same, opened here (read-only) and passed"},
    {"resume", NULL, "run the guest at once (default: stay paused)"},
    {NULL, NULL, NULL},
};

const struct ctl_verb ctl_verbs[] = {
    {"boot-source",
     "(--kernel PATH | --kernel-fd-from PATH) [--initrd[-fd-from] PATH] "
     "[--cmdline STR] [--protocol auto|linux|pvh]",
     "set the guest kernel, initrd and command line", NULL, boot_source_flags, build_boot_source,
     CTL_SHOW_STATUS},
    {"machine-config", "--vcpus N --mem-mib M", "set the number of vCPUs and the guest RAM", NULL,
     machine_config_flags, build_machine_config, CTL_SHOW_STATUS},
    {"drive add", "--id ID (--path PATH | --fd-from PATH) [--read-only]",
     "add a virtio-blk drive backed by a raw image", NULL, drive_add_flags, build_drive_add,
     CTL_SHOW_STATUS},
    {"drive update", "--id ID (--path PATH | --fd-from PATH)",
     "give a drive a new backing file, also while the guest runs",
     "The guest is told its capacity changed; the new file may have any size.", drive_update_flags,
     build_drive_update, CTL_SHOW_STATUS},
    {"net add", "--id ID (--tap NAME | --tap-fd-from NAME) [--mac MAC]",
     "add a virtio-net interface backed by a tap", NULL, net_add_flags, build_net_add,
     CTL_SHOW_STATUS},
    {"vsock set", "--cid N --uds PATH", "configure virtio-vsock with a hybrid Unix socket", NULL,
     vsock_set_flags, build_vsock_set, CTL_SHOW_STATUS},
    {"start", "", "boot the configured guest", NULL, no_flags, build_start, CTL_SHOW_STATUS},
    {"pause", "", "pause the vCPUs", NULL, no_flags, build_pause, CTL_SHOW_STATUS},
    {"resume", "", "resume paused vCPUs", NULL, no_flags, build_resume, CTL_SHOW_STATUS},
    {"stop", "", "stop the VM and end the monitor (it exits with code 0)", NULL, no_flags,
     build_stop, CTL_SHOW_STATUS},
    {"describe", "", "show the VM's state, configuration and devices", NULL, no_flags,
     build_describe, CTL_SHOW_INFO},
    {"metrics", "", "show boot times, vCPU exits, device counters and memory use", NULL, no_flags,
     build_metrics, CTL_SHOW_METRICS},
    {"logger", "[--level L] [--file PATH | --file-fd-from PATH]",
     "change the monitor's log level or log file", NULL, logger_flags, build_logger,
     CTL_SHOW_STATUS},
    {"snapshot create",
     "(--state PATH | --state-fd-from PATH) (--mem PATH | --mem-fd-from PATH) [--diff]",
     "write a snapshot of the paused VM", NULL, snapshot_create_flags, build_snapshot_create,
     CTL_SHOW_STATUS},
    {"snapshot load",
     "(--state PATH | --state-fd-from PATH) (--mem PATH | --mem-fd-from PATH) "
     "[--diff-mem[-fd-from] PATH] [--resume]",
     "restore a snapshot into a monitor with no VM yet", NULL, snapshot_load_flags,
     build_snapshot_load, CTL_SHOW_STATUS},
    {NULL, NULL, NULL, NULL, NULL, NULL, CTL_SHOW_STATUS},
};
