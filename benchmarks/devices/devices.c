/* Device benchmarks: block, net and vsock throughput of Ember beside QEMU microvm, with the
 * same test unikernel and the same devices, runs alternated; and Ember's exits to user space
 * per MiB moved. Prints a table, writes every raw sample as JSON. See README.md here. */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_DEFAULT_EMBER
#define BENCH_DEFAULT_EMBER "build/ember"
#endif
#ifndef BENCH_DEFAULT_UNIKERNEL
#define BENCH_DEFAULT_UNIKERNEL "build/guest/unikernel/ember-unikernel.elf"
#endif
#ifndef BENCH_RESULTS_DIR
#define BENCH_RESULTS_DIR "benchmarks/results"
#endif

#define GUEST_IP   "10.0.2.15"
#define HOST_IP	   "10.0.2.1"
#define GUEST_MAC  "aa:fc:00:00:00:01"
#define TAP_NAME   "embench0"
#define UDP_PORT   7
#define VSOCK_PORT 1234

static const uint8_t guest_mac[6] = {0xaa, 0xfc, 0x00, 0x00, 0x00, 0x01};

/* ------------------------------------------------------------------ parameters */

static struct {
	const char *ember, *qemu, *unikernel, *out, *dir;
	int reps;
	bool quick, quiet, skip_if_no_kvm, no_qemu, no_vhost, no_modprobe, no_baseline;
	char rows[128];
	unsigned mem_mib;
	unsigned virtio_irq;
	double timeout_s;
	/* block */
	unsigned blk_image_mib, blk_bench_mib, blk_qd, blk_rand_secs;
	const char *qemu_blk_aio;
	bool qemu_tsc_frequency;
	/* net */
	double net_secs, net_warmup_s, net_loss_ms;
	unsigned net_window, net_small, net_large;
	/* vsock */
	unsigned vsock_mib, vsock_cid;
	double vsock_conn_secs;
} opt = {
    .reps = 3,
    .rows = "block,net,vsock",
    .mem_mib = 128,
    .timeout_s = 300,
    .blk_image_mib = 256,
    .blk_qd = 16,
    .blk_rand_secs = 1,
    .qemu_blk_aio = "threads",
    .qemu_tsc_frequency = true,
    .net_secs = 5,
    .net_warmup_s = 0.5,
    .net_loss_ms = 200,
    .net_window = 64,
    .net_small = 64,
    .net_large = 1400,
    .vsock_mib = 64,
    .vsock_conn_secs = 5,
};

static struct bench_machine machine;
static long kvm_tsc_khz; /* KVM_GET_TSC_KHZ of a scratch vCPU; 0 unknown */
static char *ember_version, *qemu_version, *qemu_path;
static char workdir[256];
static char avail_netns[256], avail_vhost_net[256], avail_vhost_vsock[256];
static bool have_netns, have_vhost_net, have_vhost_vsock;

/* ----------------------------------------------------------------- small helpers */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fprintf(stderr, "devices: out of memory\n");
		exit(1);
	}
	return p;
}

struct argv_b {
	char **v;
	int n, cap;
};

static void arg(struct argv_b *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, (size_t)a->cap * sizeof(*v));
		if (!v) {
			fprintf(stderr, "devices: out of memory\n");
			exit(1);
		}
		a->v = v;
	}
	a->v[a->n++] = bench_xstrdup(s);
	a->v[a->n] = NULL;
}

static void argv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	if (opt.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* The line of text that contains `needle`, copied (without its newline) into out. */
static bool line_with(const char *text, const char *needle, char *out, size_t out_size)
{
	const char *p = text ? strstr(text, needle) : NULL;
	if (!p)
		return false;
	const char *start = p;
	while (start > text && start[-1] != '\n')
		start--;
	size_t n = strcspn(start, "\r\n");
	if (n >= out_size)
		n = out_size - 1;
	memcpy(out, start, n);
	out[n] = 0;
	return true;
}

/* The number after "key=" in line (key given with its '='), or -1. */
static double kv_num(const char *line, const char *key)
{
	size_t k = strlen(key);
	for (const char *p = line; (p = strstr(p, key)); p++)
		if (p == line || p[-1] == ' ' || p[-1] == ':')
			return strtod(p + k, NULL);
	return -1;
}

/* --------------------------------------------------------------------- machine */

static long probe_kvm_tsc_khz(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return 0;
	long khz = 0;
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0) {
		int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
		if (vcpu >= 0) {
			int r = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
			if (r > 0)
				khz = r;
			close(vcpu);
		}
		close(vm);
	}
	close(kvm);
	return khz;
}

/* Run a command quietly; true when it exits 0. */
static bool run_quiet(char *const *argv)
{
	struct bench_launch l = {.argv = argv, .timeout_s = 60, .stop = BENCH_WAIT_EXIT};
	struct bench_result r;
	if (bench_launch(&l, &r) < 0)
		return false;
	bool ok = r.exited && WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0;
	bench_result_free(&r);
	return ok;
}

/* A /dev node QEMU needs, loading its module if missing (also from tests/l1's module tree). */
static bool ensure_dev(const char *dev, const char *module, char *how, size_t how_size)
{
	if (access(dev, R_OK | W_OK) == 0) {
		snprintf(how, how_size, "%s present", dev);
		return true;
	}
	if (!opt.no_modprobe && access(dev, F_OK) != 0) {
		char *a1[] = {"modprobe", (char *)module, NULL};
		run_quiet(a1);
		const char *modroot = getenv("EMBER_L1_MODROOT");
		if (access(dev, F_OK) != 0 && modroot && *modroot) {
			char *a2[] = {"modprobe", "-d", (char *)modroot, (char *)module, NULL};
			run_quiet(a2);
		}
		if (access(dev, R_OK | W_OK) == 0) {
			snprintf(how, how_size, "%s after modprobe %s", dev, module);
			return true;
		}
	}
	if (access(dev, F_OK) == 0)
		snprintf(how, how_size, "not available: %s: %s", dev, strerror(EACCES));
	else
		snprintf(how, how_size, "not available: no %s (module %s%s)", dev, module,
			 opt.no_modprobe ? " not loaded, --no-modprobe" : " does not load");
	return false;
}

/* ---------------------------------------------------------------------- rows */

enum variant { V_EMBER, V_QEMU, V_QEMU_VHOST, NVAR };
static const char *const var_key[NVAR] = {"ember", "qemu", "qemu_vhost"};
static const char *const var_title[NVAR] = {"Ember", "QEMU microvm", "QEMU vhost=on"};

enum kind { K_BLK, K_NET, K_VSOCK_STREAM, K_VSOCK_CONN };
enum family { F_BLK, F_NET, F_VSOCK, NFAM };
static const char *const fam_key[NFAM] = {"block", "net", "vsock"};
static const char *const fam_baseline_desc[NFAM] = {
    "check=blk, 4 KiB read and 4 KiB written on a 1 MiB image",
    "check=net, one 16 B datagram echoed, then quit",
    "check=vsock_server, one connection opened and closed, no data",
};

struct metric {
	const char *key, *label;
	bool higher_better;
	int decimals;
};

#define MAX_METRICS 3
#define MAX_DEVS    4
#define N_EXITS	    8

struct sample {
	int rep;
	enum variant var;
	bool baseline;
	bool ok;
	bool interrupted; /* by the user: not counted as a failure */
	char why[320];
	char **argv;
	char *cmdline;
	double wall_ms;
	int exit_code, exit_signal;
	bool killed;
	double metric[MAX_METRICS];
	/* guest lines */
	char check_line[512], detail_line[512];
	double guest_tsc_khz, tsc_scale;
	double blk_bytes, blk_rand_ios;
	/* host loads */
	bool have_net, have_stream, have_conn;
	struct net_result net;
	struct vs_stream_result stream;
	struct vs_conn_result conn;
	/* Ember's report */
	bool have_exits;
	int nexits;
	char exit_name[N_EXITS][16];
	long long exit_count[N_EXITS];
	long long io, mmio;
	int ndev;
	struct {
		char name[32];
		long long notifies, interrupts, needs_reset;
	} dev[MAX_DEVS];
	long console_bytes;
	double mib_moved;
	double exits_per_mib, beyond_per_mib, exits_per_conn, beyond_per_conn;
	char *out_tail, *err_tail;
};

struct row {
	const char *id;
	char title[128];
	enum kind kind;
	enum family fam;
	size_t payload;
	int nmetrics;
	struct metric m[MAX_METRICS];
	bool run[NVAR];
	char why_not[NVAR][256];
	struct sample *s;
	int ns, cap;
};

#define MAX_ROWS 5
static struct row rows[MAX_ROWS];
static int nrows;
static struct sample baselines[NFAM];
static bool baseline_done[NFAM];
static bool baseline_wanted[NFAM];

static struct sample *new_sample(struct row *r)
{
	if (r->ns == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		struct sample *s = realloc(r->s, (size_t)r->cap * sizeof(*s));
		if (!s) {
			fprintf(stderr, "devices: out of memory\n");
			exit(1);
		}
		r->s = s;
	}
	struct sample *s = &r->s[r->ns++];
	memset(s, 0, sizeof(*s));
	return s;
}

static bool row_selected(const char *fam)
{
	char buf[sizeof(opt.rows)];
	snprintf(buf, sizeof(buf), "%s", opt.rows);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, fam) == 0 || strcmp(t, "all") == 0)
			return true;
	return false;
}

static void add_metric(struct row *r, const char *key, const char *label, bool higher, int dec)
{
	r->m[r->nmetrics++] = (struct metric){key, label, higher, dec};
}

static void setup_rows(void)
{
	struct row *r;
	if (row_selected("block")) {
		r = &rows[nrows++];
		r->id = "block";
		r->kind = K_BLK;
		r->fam = F_BLK;
		snprintf(r->title, sizeof(r->title),
			 "block: %u MiB image, %u MiB sequential, qd %u", opt.blk_image_mib,
			 opt.blk_bench_mib, opt.blk_qd);
		add_metric(r, "seq_read_mbs", "sequential read, MB/s", true, 1);
		add_metric(r, "seq_write_mbs", "sequential write, MB/s", true, 1);
		add_metric(r, "rand_read_iops", "4 KiB random read, IOPS", true, 0);
	}
	if (row_selected("net")) {
		r = &rows[nrows++];
		r->id = "net_small";
		r->kind = K_NET;
		r->fam = F_NET;
		r->payload = opt.net_small;
		snprintf(r->title, sizeof(r->title), "net: UDP echo, %u B datagrams, window %u",
			 opt.net_small, opt.net_window);
		add_metric(r, "echoes_per_s", "echoes/s (packets/s each way)", true, 0);
		add_metric(r, "echo_mbs", "echoed payload, MB/s", true, 2);
		r = &rows[nrows++];
		r->id = "net_large";
		r->kind = K_NET;
		r->fam = F_NET;
		r->payload = opt.net_large;
		snprintf(r->title, sizeof(r->title), "net: UDP echo, %u B datagrams, window %u",
			 opt.net_large, opt.net_window);
		add_metric(r, "echo_mbs", "echoed payload, MB/s", true, 2);
		add_metric(r, "echoes_per_s", "echoes/s (packets/s each way)", true, 0);
	}
	if (row_selected("vsock")) {
		r = &rows[nrows++];
		r->id = "vsock_stream";
		r->kind = K_VSOCK_STREAM;
		r->fam = F_VSOCK;
		snprintf(r->title, sizeof(r->title), "vsock: one stream, %u MiB echoed",
			 opt.vsock_mib);
		add_metric(r, "echo_mbs", "host -> guest -> host, MB/s", true, 2);
		r = &rows[nrows++];
		r->id = "vsock_connect";
		r->kind = K_VSOCK_CONN;
		r->fam = F_VSOCK;
		snprintf(r->title, sizeof(r->title), "vsock: connect + close, %.0f s",
			 opt.vsock_conn_secs);
		add_metric(r, "conns_per_s", "connections/s", true, 1);
		add_metric(r, "setup_us_median", "setup latency median, us", false, 0);
	}
	for (int i = 0; i < nrows; i++) {
		r = &rows[i];
		baseline_wanted[r->fam] = !opt.no_baseline;
		r->run[V_EMBER] = true;
		if (r->kind == K_NET && !have_netns) {
			r->run[V_EMBER] = false;
			snprintf(r->why_not[V_EMBER], sizeof(r->why_not[V_EMBER]), "%s",
				 avail_netns);
		}
		r->run[V_QEMU] = qemu_path && !opt.no_qemu;
		if (!qemu_path || opt.no_qemu)
			snprintf(r->why_not[V_QEMU], sizeof(r->why_not[V_QEMU]), "%s",
				 opt.no_qemu ? "--no-qemu" : "not installed");
		else if (r->kind == K_NET && !have_netns) {
			r->run[V_QEMU] = false;
			snprintf(r->why_not[V_QEMU], sizeof(r->why_not[V_QEMU]), "%s", avail_netns);
		} else if ((r->kind == K_VSOCK_STREAM || r->kind == K_VSOCK_CONN) &&
			   !have_vhost_vsock) {
			r->run[V_QEMU] = false;
			snprintf(r->why_not[V_QEMU], sizeof(r->why_not[V_QEMU]), "%s",
				 avail_vhost_vsock);
		}
		if (r->kind == K_NET) {
			r->run[V_QEMU_VHOST] = r->run[V_QEMU] && have_vhost_net && !opt.no_vhost;
			if (!r->run[V_QEMU_VHOST])
				snprintf(r->why_not[V_QEMU_VHOST], sizeof(r->why_not[V_QEMU_VHOST]),
					 "%s",
					 !r->run[V_QEMU] ? r->why_not[V_QEMU]
					 : opt.no_vhost	 ? "--no-vhost"
							 : avail_vhost_net);
		}
		if (!r->run[V_EMBER] && r->kind == K_NET)
			baseline_wanted[F_NET] = false;
	}
}

/* ------------------------------------------------------------------ guest and argv */

static char *guest_cmdline(enum kind k, bool baseline)
{
	char irq[32] = "";
	if (opt.virtio_irq)
		snprintf(irq, sizeof(irq), " virtio_irq=1");
	unsigned secs = (unsigned)opt.timeout_s; /* a fail-safe: the host ends every check */
	switch (k) {
	case K_BLK:
		if (baseline)
			return bench_xasprintf("check=blk blk_read_sectors=8 blk_write_sectors=8%s",
					       irq);
		return bench_xasprintf(
		    "check=blk_bench blk_bench_mib=%u blk_bench_qd=%u blk_bench_secs=%u%s",
		    opt.blk_bench_mib, opt.blk_qd, opt.blk_rand_secs, irq);
	case K_NET:
		return bench_xasprintf("check=net ip=" GUEST_IP " udp_port=%u net_secs=%u%s",
				       UDP_PORT, secs, irq);
	case K_VSOCK_STREAM:
	case K_VSOCK_CONN:
		return bench_xasprintf(
		    "check=vsock_server vsock_port=%u vsock_expect=1 vsock_secs=%u%s", VSOCK_PORT,
		    secs, irq);
	}
	return bench_xstrdup("");
}

static const char *check_name(enum kind k, bool baseline)
{
	switch (k) {
	case K_BLK:
		return baseline ? "blk" : "blk_bench";
	case K_NET:
		return "net";
	default:
		return "vsock_server";
	}
}

struct devs {
	const char *image;
	bool net;
	const char *uds; /* Ember's vsock socket; QEMU: vhost-vsock */
	bool vsock;
};

static char **build_argv(enum variant v, const char *cmdline, const struct devs *d)
{
	struct argv_b a = {0};
	char buf[512];
	if (v == V_EMBER) {
		arg(&a, opt.ember);
		arg(&a, "run");
		arg(&a, "--kernel");
		arg(&a, opt.unikernel);
		arg(&a, "--mem-mib");
		snprintf(buf, sizeof(buf), "%u", opt.mem_mib);
		arg(&a, buf);
		arg(&a, "--log-level");
		arg(&a, "info");
		arg(&a, "--cmdline");
		arg(&a, cmdline);
		if (d->image) {
			arg(&a, "--drive");
			snprintf(buf, sizeof(buf), "path=%s,id=bench", d->image);
			arg(&a, buf);
		}
		if (d->net) {
			arg(&a, "--net");
			arg(&a, "tap=" TAP_NAME ",mac=" GUEST_MAC);
		}
		if (d->vsock) {
			arg(&a, "--vsock");
			snprintf(buf, sizeof(buf), "cid=%u,uds=%s", opt.vsock_cid, d->uds);
			arg(&a, buf);
		}
		return a.v;
	}
	arg(&a, qemu_path);
	arg(&a, "-M");
	arg(&a, "microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off,smm=off");
	arg(&a, "-global");
	arg(&a, "virtio-mmio.force-legacy=false");
	arg(&a, "-enable-kvm");
	arg(&a, "-cpu");
	if (opt.qemu_tsc_frequency && kvm_tsc_khz > 0)
		snprintf(buf, sizeof(buf), "host,tsc-frequency=%ld", kvm_tsc_khz * 1000);
	else
		snprintf(buf, sizeof(buf), "host");
	arg(&a, buf);
	arg(&a, "-smp");
	arg(&a, "1");
	arg(&a, "-m");
	snprintf(buf, sizeof(buf), "%u", opt.mem_mib);
	arg(&a, buf);
	arg(&a, "-nodefaults");
	arg(&a, "-no-user-config");
	arg(&a, "-display");
	arg(&a, "none");
	arg(&a, "-serial");
	arg(&a, "stdio");
	arg(&a, "-no-reboot");
	arg(&a, "-device");
	arg(&a, "i8042");
	arg(&a, "-kernel");
	arg(&a, opt.unikernel);
	arg(&a, "-append");
	arg(&a, cmdline);
	if (d->image) {
		arg(&a, "-drive");
		snprintf(buf, sizeof(buf),
			 "id=d0,file=%s,format=raw,if=none,cache=writeback,aio=%s", d->image,
			 opt.qemu_blk_aio);
		arg(&a, buf);
		arg(&a, "-device");
		arg(&a, "virtio-blk-device,drive=d0");
	}
	if (d->net) {
		arg(&a, "-netdev");
		snprintf(buf, sizeof(buf),
			 "tap,id=n0,ifname=" TAP_NAME ",script=no,downscript=no,vhost=%s",
			 v == V_QEMU_VHOST ? "on" : "off");
		arg(&a, buf);
		arg(&a, "-device");
		arg(&a, "virtio-net-device,netdev=n0,mac=" GUEST_MAC);
	}
	if (d->vsock) {
		arg(&a, "-device");
		snprintf(buf, sizeof(buf), "vhost-vsock-device,guest-cid=%u", opt.vsock_cid);
		arg(&a, buf);
	}
	return a.v;
}

/* ------------------------------------------------------------------ block image */

static int make_image(const char *path, unsigned mib, char *why, size_t why_size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, why_size, "create %s: %s", path, strerror(errno));
		return -1;
	}
	size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk);
	if (!buf) {
		close(fd);
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (unsigned m = 0; m < mib; m++) {
		uint64_t tag = m;
		memcpy(buf, &tag, sizeof(tag)); /* every MiB differs */
		size_t done = 0;
		while (done < chunk) {
			ssize_t w = write(fd, buf + done, chunk - done);
			if (w <= 0) {
				snprintf(why, why_size, "write %s: %s", path,
					 w < 0 ? strerror(errno) : "short write");
				free(buf);
				close(fd);
				unlink(path);
				return -1;
			}
			done += (size_t)w;
		}
	}
	free(buf);
	/* Written back before the run, so that no writeback of ours competes with it. */
	fsync(fd);
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ one run */

static void parse_ember_report(struct sample *s, const char *err)
{
	char line[512];
	if (line_with(err, "vCPU exits:", line, sizeof(line))) {
		s->have_exits = true;
		const char *p = strstr(line, "vCPU exits:") + strlen("vCPU exits:");
		char name[16];
		long long v;
		int used;
		while (s->nexits < N_EXITS &&
		       sscanf(p, " %15[a-z_]=%lld%n", name, &v, &used) == 2) {
			snprintf(s->exit_name[s->nexits], sizeof(s->exit_name[0]), "%s", name);
			s->exit_count[s->nexits++] = v;
			if (strcmp(name, "io") == 0)
				s->io = v;
			else if (strcmp(name, "mmio") == 0)
				s->mmio = v;
			p += used;
		}
	}
	for (const char *p = err; p && (p = strstr(p, ": notifies=")) && s->ndev < MAX_DEVS; p++) {
		const char *start = p;
		while (start > err && start[-1] != ' ' && start[-1] != '\n')
			start--;
		/* "virtio-blk at 0x...: notifies=": back over "at 0x..." to the device name */
		const char *at = start;
		while (at > err && at[-1] == ' ')
			at--;
		const char *name_end = at;
		if (at - 3 >= err && strncmp(at - 3, " at", 3) == 0) {
			name_end = at - 3;
			const char *ns = name_end;
			while (ns > err && ns[-1] != ' ' && ns[-1] != '\n')
				ns--;
			size_t n = (size_t)(name_end - ns);
			if (n >= sizeof(s->dev[0].name))
				n = sizeof(s->dev[0].name) - 1;
			memcpy(s->dev[s->ndev].name, ns, n);
			s->dev[s->ndev].name[n] = 0;
		}
		sscanf(p, ": notifies=%lld interrupts=%lld needs_reset=%lld",
		       &s->dev[s->ndev].notifies, &s->dev[s->ndev].interrupts,
		       &s->dev[s->ndev].needs_reset);
		s->ndev++;
	}
}

static void blk_metrics(struct sample *s, const char *out)
{
	if (!line_with(out, "blk_bench: bytes=", s->detail_line, sizeof(s->detail_line))) {
		if (s->ok)
			snprintf(s->why, sizeof(s->why), "no blk_bench: line on the console");
		s->ok = false;
		return;
	}
	const char *d = s->detail_line;
	double bytes = kv_num(d, "bytes="), rd = kv_num(d, "read_us="), wr = kv_num(d, "write_us=");
	double ios = kv_num(d, "rand_ios="), rus = kv_num(d, "rand_us="),
	       khz = kv_num(d, "tsc_khz=");
	s->guest_tsc_khz = khz;
	s->blk_bytes = bytes;
	s->blk_rand_ios = ios;
	/* The guest converts TSC cycles with CPUID 0x40000010, or assumes 1 GHz. Where that is
	 * not KVM's TSC rate, its microseconds are rescaled to real ones. */
	s->tsc_scale = 1;
	if (kvm_tsc_khz > 0 && khz > 0 && fabs(khz / (double)kvm_tsc_khz - 1) > 0.002)
		s->tsc_scale = khz / (double)kvm_tsc_khz;
	rd *= s->tsc_scale, wr *= s->tsc_scale, rus *= s->tsc_scale;
	s->metric[0] = rd > 0 ? bytes / rd : NAN; /* bytes per us = 10^6 B/s */
	s->metric[1] = wr > 0 ? bytes / wr : NAN;
	s->metric[2] = rus > 0 ? ios / (rus / 1e6) : NAN;
	s->mib_moved = (2 * bytes + ios * 4096) / (1 << 20);
}

static void run_sample(struct row *r, enum variant v, int rep, bool baseline, struct sample *s)
{
	s->rep = rep;
	s->var = v;
	s->baseline = baseline;
	s->cmdline = guest_cmdline(r->kind, baseline);
	s->tsc_scale = 1;
	for (int i = 0; i < MAX_METRICS; i++)
		s->metric[i] = NAN;
	s->exits_per_mib = s->beyond_per_mib = s->exits_per_conn = s->beyond_per_conn = NAN;
	s->exit_code = s->exit_signal = -1;

	struct devs d = {0};
	char image[320] = "", uds[320] = "";
	struct netns_tap ns = {.orig_ns = -1};
	bool ok = true;
	if (r->kind == K_BLK) {
		snprintf(image, sizeof(image), "%s/disk-%s-%d.img", workdir, var_key[v], rep);
		if (make_image(image, baseline ? 1 : opt.blk_image_mib, s->why, sizeof(s->why)) < 0)
			ok = false;
		d.image = image;
	} else if (r->kind == K_NET) {
		if (netns_tap_enter(&ns, TAP_NAME, HOST_IP, GUEST_IP, guest_mac, s->why,
				    sizeof(s->why)) < 0)
			ok = false;
		d.net = true;
	} else {
		snprintf(uds, sizeof(uds), "%s/vsock-%d.sock", workdir, rep);
		if (strlen(uds) >= sizeof(((struct vs_target *)0)->path)) {
			snprintf(s->why, sizeof(s->why), "socket path %.200s too long (--dir)",
				 uds);
			ok = false;
		}
		unlink(uds);
		d.vsock = true;
		d.uds = uds;
	}
	s->argv = build_argv(v, s->cmdline, &d);
	if (!ok) {
		if (ns.entered)
			netns_tap_leave(&ns);
		return;
	}

	struct mon m;
	if (mon_start(&m, s->argv, s->why, sizeof(s->why)) < 0) {
		if (ns.entered)
			netns_tap_leave(&ns);
		if (image[0])
			unlink(image);
		mon_free(&m);
		return;
	}
	struct abort_check ac = {.mon = &m};
	double deadline = m.t0_ms + opt.timeout_s * 1e3;
	char load_why[256] = "";
	bool load_ok = true;

	if (r->kind == K_NET) {
		struct net_params p = {
		    .guest_ip = GUEST_IP,
		    .port = UDP_PORT,
		    .payload = baseline ? 16 : r->payload,
		    .window = opt.net_window,
		    .warmup_s = opt.net_warmup_s,
		    .measure_s = opt.net_secs,
		    .loss_ms = opt.net_loss_ms,
		    .ready_timeout_s = opt.timeout_s * 0.8,
		    .measure = !baseline,
		};
		net_load(&p, &ac, &s->net);
		s->have_net = true;
		load_ok = s->net.ok;
		snprintf(load_why, sizeof(load_why), "%s", s->net.why);
	} else if (r->kind == K_VSOCK_STREAM || r->kind == K_VSOCK_CONN) {
		struct vs_target t = {
		    .uds = v == V_EMBER, .cid = opt.vsock_cid, .port = VSOCK_PORT};
		snprintf(t.path, sizeof(t.path), "%s", uds);
		char why[256] = "";
		/* The keeper connection holds the guest's server open (vsock_expect=1 ends it
		 * once a connection has closed and none is open): closing it ends the run. */
		int keeper =
		    vs_dial_retry(&t, m.t0_ms + opt.timeout_s * 0.8e3, &ac, why, sizeof(why));
		if (keeper < 0) {
			load_ok = false;
			snprintf(load_why, sizeof(load_why), "the guest never accepted: %s", why);
		} else if (!baseline && r->kind == K_VSOCK_STREAM) {
			int fd = vs_dial(&t, 10000, why, sizeof(why));
			if (fd < 0) {
				load_ok = false;
				snprintf(load_why, sizeof(load_why), "stream connection: %s", why);
			} else {
				vs_stream(fd, (uint64_t)opt.vsock_mib << 20, deadline - 5000, &ac,
					  &s->stream);
				s->have_stream = true;
				load_ok = s->stream.ok;
				snprintf(load_why, sizeof(load_why), "%s", s->stream.why);
				close(fd);
			}
		} else if (!baseline) {
			vs_conn_rate(&t, opt.vsock_conn_secs, &ac, &s->conn);
			s->have_conn = true;
			load_ok = s->conn.ok;
			snprintf(load_why, sizeof(load_why), "%s", s->conn.why);
		}
		if (keeper >= 0)
			close(keeper);
	}

	bool by_itself = mon_wait(&m, load_ok ? deadline : bench_now_ms() + 15000);
	if (ns.entered)
		netns_tap_leave(&ns);
	if (image[0])
		unlink(image);
	if (uds[0])
		unlink(uds);

	s->wall_ms = m.exit_ms >= 0 ? m.exit_ms - m.t0_ms : -1;
	s->killed = !by_itself;
	if (m.wait_status != -1 && WIFEXITED(m.wait_status))
		s->exit_code = WEXITSTATUS(m.wait_status);
	else if (m.wait_status != -1 && WIFSIGNALED(m.wait_status))
		s->exit_signal = WTERMSIG(m.wait_status);
	const char *out = m.out.p ? m.out.p : "";
	const char *err = m.err.p ? m.err.p : "";
	s->console_bytes = (long)m.out.len;
	char pass[64];
	snprintf(pass, sizeof(pass), "CHECK %s ", check_name(r->kind, baseline));
	line_with(out, pass, s->check_line, sizeof(s->check_line));
	/* The guest's own counters, for the JSON (blk_bench's line is parsed below). */
	if (r->kind == K_NET)
		line_with(out, "net: rx=", s->detail_line, sizeof(s->detail_line));
	else if (r->kind != K_BLK)
		line_with(out, "vsock: accepted=", s->detail_line, sizeof(s->detail_line));

	s->ok = true;
	if (bench_interrupted) {
		s->ok = false;
		s->interrupted = true;
		snprintf(s->why, sizeof(s->why), "interrupted");
	} else if (!load_ok) {
		s->ok = false;
		snprintf(s->why, sizeof(s->why), "host side: %s", load_why);
	} else if (m.abandoned) {
		s->ok = false;
		snprintf(s->why, sizeof(s->why),
			 "the monitor (pid %d) survived SIGKILL for 30 s: left behind", (int)m.pid);
	} else if (!by_itself) {
		s->ok = false;
		snprintf(s->why, sizeof(s->why), "the monitor did not exit within %.0f s: killed",
			 opt.timeout_s);
	} else if (!s->check_line[0] || !strstr(s->check_line, " PASS")) {
		s->ok = false;
		snprintf(s->why, sizeof(s->why), "guest: %.300s",
			 s->check_line[0] ? s->check_line : "no CHECK line on the console");
	} else if (s->exit_code != 0) {
		s->ok = false;
		if (s->exit_signal >= 0)
			snprintf(s->why, sizeof(s->why), "the monitor died of signal %d",
				 s->exit_signal);
		else
			snprintf(s->why, sizeof(s->why), "the monitor exited with %d",
				 s->exit_code);
	}

	if (r->kind == K_BLK && !baseline)
		blk_metrics(s, out);
	else if (r->kind == K_BLK)
		s->mib_moved = 8.0 * 1024 / (1 << 20);
	if (r->kind == K_NET) {
		bool small = strcmp(r->id, "net_small") == 0;
		s->metric[0] = small ? s->net.echoes_per_s : s->net.echo_mbs;
		s->metric[1] = small ? s->net.echo_mbs : s->net.echoes_per_s;
		s->mib_moved = (double)(s->net.bytes_sent + s->net.bytes_echoed) / (1 << 20);
	}
	if (r->kind == K_VSOCK_STREAM) {
		s->metric[0] = s->stream.mbs;
		s->mib_moved = (double)(s->stream.sent + s->stream.received) / (1 << 20);
	}
	if (r->kind == K_VSOCK_CONN) {
		s->metric[0] = s->conn.conns_per_s;
		s->metric[1] = s->conn.setup_us.n ? s->conn.setup_us.median : NAN;
	}
	if (baseline && s->ok)
		for (int i = 0; i < MAX_METRICS; i++)
			s->metric[i] = NAN;
	if (v == V_EMBER) {
		parse_ember_report(s, err);
		if (s->have_exits && s->mib_moved > 0)
			s->exits_per_mib = (double)(s->io + s->mmio) / s->mib_moved;
		if (s->have_exits && s->have_conn && s->conn.conns)
			s->exits_per_conn = (double)(s->io + s->mmio) / (double)s->conn.conns;
		/* Beyond the baseline: exits neither the console (one port exit a byte) nor the
		 * fixed cost of setting the device up and down (the baseline run's remainder)
		 * explain. */
		const struct sample *b = &baselines[r->fam];
		if (!baseline && baseline_done[r->fam] && b->ok && b->have_exits && s->have_exits) {
			double extra = (double)(s->io + s->mmio - s->console_bytes) -
				       (double)(b->io + b->mmio - b->console_bytes);
			if (s->mib_moved > 0)
				s->beyond_per_mib = extra / s->mib_moved;
			if (s->have_conn && s->conn.conns)
				s->beyond_per_conn = extra / (double)s->conn.conns;
		}
	}
	if (!s->ok) {
		s->out_tail = bench_xstrdup(bench_buf_tail(&m.out, 3000));
		s->err_tail = bench_xstrdup(bench_buf_tail(&m.err, 3000));
	}
	mon_free(&m);
}

static void describe_sample(const struct row *r, const struct sample *s)
{
	if (!s->ok) {
		progress("%s: %s\n", s->interrupted ? "stopped" : "FAILED", s->why);
		return;
	}
	if (s->baseline) {
		progress("ok (baseline) io=%lld mmio=%lld console=%ld B\n", s->io, s->mmio,
			 s->console_bytes);
		return;
	}
	for (int i = 0; i < r->nmetrics; i++)
		progress("%s%s %.*f", i ? ", " : "ok: ", r->m[i].key, r->m[i].decimals,
			 s->metric[i]);
	if (s->var == V_EMBER && s->have_exits)
		progress(", exits io=%lld mmio=%lld", s->io, s->mmio);
	if (s->have_net && s->net.loss_events)
		progress(", %llu stall(s) >= %.0f ms: %llu written off, %llu came back late",
			 (unsigned long long)s->net.loss_events, opt.net_loss_ms,
			 (unsigned long long)s->net.lost, (unsigned long long)s->net.late);
	if (s->have_conn && s->conn.failures)
		progress(", %llu failed connects", (unsigned long long)s->conn.failures);
	if (s->tsc_scale != 1)
		progress(" (guest TSC %.0f kHz rescaled to %ld)", s->guest_tsc_khz, kvm_tsc_khz);
	progress("\n");
}

/* ---------------------------------------------------------------------- summary */

static void metric_stats(const struct row *r, enum variant v, int mi, struct bench_stats *st,
			 int *ok_out, int *all_out)
{
	double *vals = xcalloc((size_t)r->ns, sizeof(double));
	int n = 0, all = 0;
	for (int i = 0; i < r->ns; i++) {
		const struct sample *s = &r->s[i];
		if (s->var != v || s->baseline || s->interrupted)
			continue;
		all++;
		if (s->ok && isfinite(s->metric[mi]))
			vals[n++] = s->metric[mi];
	}
	bench_stats(vals, n, st);
	free(vals);
	if (ok_out)
		*ok_out = n;
	if (all_out)
		*all_out = all;
}

static void field_stats(const struct row *r, size_t offset, struct bench_stats *st)
{
	double *vals = xcalloc((size_t)r->ns, sizeof(double));
	int n = 0;
	for (int i = 0; i < r->ns; i++) {
		const struct sample *s = &r->s[i];
		double x = *(const double *)((const char *)s + offset);
		if (s->var == V_EMBER && !s->baseline && s->ok && isfinite(x))
			vals[n++] = x;
	}
	bench_stats(vals, n, st);
	free(vals);
}

static void fmt_num(char *buf, size_t n, double v, int decimals)
{
	if (!isfinite(v))
		snprintf(buf, n, "-");
	else if (decimals > 0 && fabs(v) >= 1000)
		snprintf(buf, n, "%.0f", v);
	else if (decimals > 1 && fabs(v) >= 100)
		snprintf(buf, n, "%.1f", v);
	else
		snprintf(buf, n, "%.*f", decimals, v);
}

static int count_failures(void)
{
	int f = 0;
	for (int i = 0; i < nrows; i++)
		for (int j = 0; j < rows[i].ns; j++)
			f += !rows[i].s[j].ok && !rows[i].s[j].interrupted;
	for (int k = 0; k < NFAM; k++)
		f += baseline_done[k] && !baselines[k].ok && !baselines[k].interrupted;
	return f;
}

static void print_table(double elapsed_s)
{
	printf("\nEmber device benchmarks: %d run(s) a row and monitor, runs alternated; %.0f s in "
	       "all\n",
	       opt.reps, elapsed_s);
	printf("KVM: %s%s\n", machine.kvm_kind,
	       machine.under_l1 ? " -- inside tests/l1 (TCG): every figure is emulated, compare "
				  "only the ratios of this run"
				: "");
	printf("Guest: test unikernel, 1 vCPU, %u MiB, virtio %s; figures are medians\n\n",
	       opt.mem_mib, opt.virtio_irq ? "interrupts (virtio_irq=1)" : "polling");
	printf("%-50s %12s %13s %11s  %s\n", "row / metric", "Ember", "QEMU microvm", "Ember/QEMU",
	       "target");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		printf("%s\n", r->title);
		for (int mi = 0; mi < r->nmetrics; mi++) {
			char cell[NVAR][64];
			double med[NVAR];
			for (int v = 0; v < NVAR; v++) {
				med[v] = NAN;
				if (!r->run[v]) {
					snprintf(cell[v], sizeof(cell[v]), "n/a");
					continue;
				}
				struct bench_stats st;
				int okn, all;
				metric_stats(r, (enum variant)v, mi, &st, &okn, &all);
				med[v] = st.median;
				char num[32];
				fmt_num(num, sizeof(num), st.median, r->m[mi].decimals);
				if (okn < all)
					snprintf(cell[v], sizeof(cell[v]), "%s [%d/%d]", num, okn,
						 all);
				else
					snprintf(cell[v], sizeof(cell[v]), "%s", num);
			}
			const char *target = r->m[mi].higher_better ? "Ember >= QEMU (ratio >= 1)"
								    : "Ember <= QEMU (ratio <= 1)";
			char ratio[32] = "-";
			if (isfinite(med[V_EMBER]) && isfinite(med[V_QEMU]) && med[V_QEMU] > 0)
				snprintf(ratio, sizeof(ratio), "%.2f", med[V_EMBER] / med[V_QEMU]);
			printf("  %-48s %12s %13s %11s  %s\n", r->m[mi].label, cell[V_EMBER],
			       cell[V_QEMU], ratio, target);
			if (r->kind != K_NET)
				continue;
			/* The extra row: QEMU with its data path in the kernel (vhost-net). */
			char label[96];
			snprintf(label, sizeof(label), "%s, vs QEMU vhost=on", r->m[mi].label);
			snprintf(ratio, sizeof(ratio), "-");
			if (isfinite(med[V_EMBER]) && isfinite(med[V_QEMU_VHOST]) &&
			    med[V_QEMU_VHOST] > 0)
				snprintf(ratio, sizeof(ratio), "%.2f",
					 med[V_EMBER] / med[V_QEMU_VHOST]);
			printf("  %-48s %12s %13s %11s  %s\n", label, cell[V_EMBER],
			       cell[V_QEMU_VHOST], ratio, "(reference: in-kernel data path)");
		}
	}
	/* Why cells say n/a: each reason once, with the rows and monitors it covers. */
	bool said[MAX_ROWS][NVAR] = {{false}};
	for (int i = 0; i < nrows; i++)
		for (int v = 0; v < NVAR; v++) {
			if (rows[i].run[v] || said[i][v] || !rows[i].why_not[v][0] ||
			    (v == V_QEMU_VHOST && rows[i].kind != K_NET))
				continue;
			const char *why = rows[i].why_not[v];
			printf("  n/a:");
			bool first = true;
			for (int i2 = i; i2 < nrows; i2++)
				for (int v2 = 0; v2 < NVAR; v2++)
					if (!rows[i2].run[v2] && !said[i2][v2] &&
					    strcmp(rows[i2].why_not[v2], why) == 0 &&
					    (v2 != V_QEMU_VHOST || rows[i2].kind == K_NET)) {
						printf("%s %s/%s", first ? "" : ",", rows[i2].id,
						       var_title[v2]);
						said[i2][v2] = true;
						first = false;
					}
			printf(": %s\n", why);
		}

	printf("\nEmber's exits to user space (its `vCPU exits:` line; kicks go through ioeventfd, "
	       "interrupts through irqfd)\n");
	printf("%-14s %6s %5s %9s %9s %14s %13s %16s %7s %6s\n", "row", "io", "mmio", "console B",
	       "MiB moved", "(io+mmio)/MiB", "baseline i+m", "beyond base/MiB", "kicks", "irqs");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		if (!r->run[V_EMBER])
			continue;
		/* the median run by (io+mmio)/MiB (or per connection) */
		const struct sample *best = NULL;
		struct bench_stats st;
		bool per_conn = r->kind == K_VSOCK_CONN;
		field_stats(r,
			    per_conn ? offsetof(struct sample, exits_per_conn)
				     : offsetof(struct sample, exits_per_mib),
			    &st);
		for (int j = 0; j < r->ns; j++) {
			const struct sample *s = &r->s[j];
			if (s->var != V_EMBER || s->baseline || !s->ok || !s->have_exits)
				continue;
			double x = per_conn ? s->exits_per_conn : s->exits_per_mib;
			if (!best || fabs(x - st.median) < fabs((per_conn ? best->exits_per_conn
									  : best->exits_per_mib) -
								st.median))
				best = s;
		}
		if (!best) {
			printf("%-14s %8s\n", r->id, "-");
			continue;
		}
		const struct sample *b = &baselines[r->fam];
		char base[32] = "-", beyond[32] = "-", per[32];
		if (baseline_done[r->fam] && b->ok && b->have_exits)
			snprintf(base, sizeof(base), "%lld", b->io + b->mmio);
		double by = per_conn ? best->beyond_per_conn : best->beyond_per_mib;
		double pm = per_conn ? best->exits_per_conn : best->exits_per_mib;
		fmt_num(per, sizeof(per), pm, 2);
		if (isfinite(by))
			fmt_num(beyond, sizeof(beyond), by, 2);
		long long kicks = 0, irqs = 0;
		for (int k = 0; k < best->ndev; k++)
			kicks += best->dev[k].notifies, irqs += best->dev[k].interrupts;
		char per_cell[40], beyond_cell[40];
		snprintf(per_cell, sizeof(per_cell), "%s%s", per, per_conn ? "/conn" : "");
		snprintf(beyond_cell, sizeof(beyond_cell), "%s%s", beyond, per_conn ? "/conn" : "");
		printf("%-14s %6lld %5lld %9ld %9.1f %14s %13s %16s %7lld %6lld\n", r->id, best->io,
		       best->mmio, best->console_bytes, best->mib_moved, per_cell, base,
		       beyond_cell, kicks, irqs);
	}
	for (int k = 0; k < NFAM; k++)
		if (baseline_done[k] && baselines[k].ok)
			printf("  baseline %-6s io=%lld mmio=%lld, console %ld bytes: %s\n",
			       fam_key[k], baselines[k].io, baselines[k].mmio,
			       baselines[k].console_bytes, fam_baseline_desc[k]);
	printf("  beyond base = (io + mmio - console bytes) minus the same for the baseline run, "
	       "per MiB (per connection)\n"
	       "  target: near zero beyond the baseline (kicks and interrupts cost no exit to user "
	       "space)\n");

	int failures = count_failures();
	if (failures) {
		printf("\nFailed runs: %d\n", failures);
		for (int i = 0; i < nrows; i++)
			for (int j = 0; j < rows[i].ns; j++)
				if (!rows[i].s[j].ok && !rows[i].s[j].interrupted)
					printf("  %s %s run %d: %s\n", rows[i].id,
					       var_title[rows[i].s[j].var], rows[i].s[j].rep + 1,
					       rows[i].s[j].why);
		for (int k = 0; k < NFAM; k++)
			if (baseline_done[k] && !baselines[k].ok && !baselines[k].interrupted)
				printf("  baseline %s: %s\n", fam_key[k], baselines[k].why);
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------------ JSON */

static void json_sample(struct json *j, const struct row *r, const struct sample *s)
{
	json_obj(j, NULL);
	json_int(j, "rep", s->rep);
	json_str(j, "monitor", var_key[s->var]);
	json_bool(j, "baseline", s->baseline);
	json_bool(j, "ok", s->ok);
	json_bool(j, "interrupted", s->interrupted);
	json_str(j, "error", s->ok ? NULL : s->why);
	json_str(j, "guest_cmdline", s->cmdline);
	json_argv(j, "argv", s->argv);
	json_num_or_null(j, "wall_ms", s->wall_ms, 1);
	if (s->exit_code >= 0)
		json_int(j, "exit_code", s->exit_code);
	else
		json_null(j, "exit_code");
	if (s->exit_signal >= 0)
		json_int(j, "exit_signal", s->exit_signal);
	json_bool(j, "killed_by_benchmark", s->killed);
	if (r) {
		json_obj(j, "metrics");
		for (int i = 0; i < r->nmetrics; i++)
			json_num(j, r->m[i].key, s->metric[i], 3);
		json_end_obj(j);
	}
	json_str(j, "check_line", s->check_line[0] ? s->check_line : NULL);
	json_str(j, "guest_counters_line", s->detail_line[0] ? s->detail_line : NULL);
	if (s->guest_tsc_khz > 0) {
		json_num(j, "guest_tsc_khz", s->guest_tsc_khz, 0);
		json_num(j, "tsc_rescale", s->tsc_scale, 6);
		json_num(j, "bytes_each_way", s->blk_bytes, 0);
		json_num(j, "rand_ios", s->blk_rand_ios, 0);
	}
	if (s->have_net) {
		const struct net_result *n = &s->net;
		json_obj(j, "udp");
		json_num(j, "ready_ms", n->ready_ms, 1);
		json_num(j, "measured_s", n->secs, 3);
		json_int(j, "sent", (long long)n->sent);
		json_int(j, "echoed", (long long)n->echoed);
		json_int(j, "late", (long long)n->late);
		json_int(j, "lost", (long long)n->lost);
		json_int(j, "loss_events", (long long)n->loss_events);
		json_arr(j, "loss_at_s");
		for (int i = 0; i < n->nloss_at && i < NET_LOSS_TIMES; i++)
			json_num(j, NULL, n->loss_at_s[i], 3);
		json_end_arr(j);
		json_int(j, "send_errors", (long long)n->send_errors);
		json_num(j, "echoes_per_s", n->echoes_per_s, 1);
		json_num(j, "echo_mbs", n->echo_mbs, 3);
		json_int(j, "total_sent", (long long)n->total_sent);
		json_int(j, "total_echoed", (long long)n->total_echoed);
		json_int(j, "bytes_sent", (long long)n->bytes_sent);
		json_int(j, "bytes_echoed", (long long)n->bytes_echoed);
		json_int(j, "bad", (long long)n->bad);
		json_bool(j, "quit_echoed", n->quit_echoed);
		json_end_obj(j);
	}
	if (s->have_stream) {
		json_obj(j, "stream");
		json_int(j, "sent", (long long)s->stream.sent);
		json_int(j, "received", (long long)s->stream.received);
		json_num(j, "secs", s->stream.secs, 4);
		json_num(j, "mbs", s->stream.mbs, 3);
		json_end_obj(j);
	}
	if (s->have_conn) {
		json_obj(j, "connections");
		json_int(j, "ok", (long long)s->conn.conns);
		json_int(j, "failed", (long long)s->conn.failures);
		json_str(j, "first_failure",
			 s->conn.first_failure[0] ? s->conn.first_failure : NULL);
		json_num(j, "secs", s->conn.secs, 3);
		json_num(j, "per_s", s->conn.conns_per_s, 2);
		json_stats(j, "setup_us", &s->conn.setup_us, 1);
		json_end_obj(j);
	}
	json_int(j, "console_bytes", s->console_bytes);
	json_num(j, "mib_moved", s->mib_moved, 4);
	if (s->var == V_EMBER) {
		json_obj(j, "ember_report");
		json_bool(j, "found", s->have_exits);
		json_obj(j, "vcpu_exits");
		for (int i = 0; i < s->nexits; i++)
			json_int(j, s->exit_name[i], s->exit_count[i]);
		json_end_obj(j);
		json_arr(j, "devices");
		for (int i = 0; i < s->ndev; i++) {
			json_obj(j, NULL);
			json_str(j, "name", s->dev[i].name);
			json_int(j, "notifies", s->dev[i].notifies);
			json_int(j, "interrupts", s->dev[i].interrupts);
			json_int(j, "needs_reset", s->dev[i].needs_reset);
			json_end_obj(j);
		}
		json_end_arr(j);
		json_num(j, "io_mmio_exits_per_mib", s->exits_per_mib, 3);
		json_num(j, "beyond_console_and_baseline_per_mib", s->beyond_per_mib, 3);
		json_num(j, "io_mmio_exits_per_connection", s->exits_per_conn, 3);
		json_num(j, "beyond_console_and_baseline_per_connection", s->beyond_per_conn, 3);
		json_end_obj(j);
	}
	if (s->out_tail)
		json_str(j, "console_tail", s->out_tail);
	if (s->err_tail)
		json_str(j, "stderr_tail", s->err_tail);
	json_end_obj(j);
}

static void write_json(FILE *f, const char *started, double elapsed_s, bool interrupted)
{
	struct json j;
	json_begin(&j, f);
	json_obj(&j, NULL);
	json_str(&j, "benchmark", "devices");
	json_str(&j, "started", started);
	json_num(&j, "duration_s", elapsed_s, 1);
	json_bool(&j, "interrupted", interrupted);
	bench_machine_json(&j, "machine", &machine);
	json_int(&j, "kvm_tsc_khz", kvm_tsc_khz);
	json_obj(&j, "versions");
	json_str(&j, "ember", ember_version);
	json_str(&j, "ember_path", opt.ember);
	json_str(&j, "qemu", qemu_version);
	json_str(&j, "qemu_path", qemu_path);
	json_str(&j, "unikernel", opt.unikernel);
	json_end_obj(&j);

	json_obj(&j, "parameters");
	json_int(&j, "reps", opt.reps);
	json_bool(&j, "quick", opt.quick);
	json_str(&j, "rows", opt.rows);
	json_int(&j, "mem_mib", opt.mem_mib);
	json_int(&j, "vcpus", 1);
	json_int(&j, "virtio_irq", opt.virtio_irq);
	json_num(&j, "timeout_s", opt.timeout_s, 1);
	json_str(&j, "work_dir", workdir);
	json_int(&j, "blk_image_mib", opt.blk_image_mib);
	json_int(&j, "blk_bench_mib", opt.blk_bench_mib);
	json_int(&j, "blk_qd", opt.blk_qd);
	json_int(&j, "blk_rand_secs", opt.blk_rand_secs);
	json_str(&j, "qemu_blk_cache", "writeback");
	json_str(&j, "qemu_blk_aio", opt.qemu_blk_aio);
	json_bool(&j, "qemu_tsc_frequency", opt.qemu_tsc_frequency && kvm_tsc_khz > 0);
	json_num(&j, "net_secs", opt.net_secs, 2);
	json_num(&j, "net_warmup_s", opt.net_warmup_s, 2);
	json_num(&j, "net_loss_ms", opt.net_loss_ms, 1);
	json_int(&j, "net_window", opt.net_window);
	json_int(&j, "net_small_bytes", opt.net_small);
	json_int(&j, "net_large_bytes", opt.net_large);
	json_str(&j, "guest_ip", GUEST_IP);
	json_str(&j, "host_ip", HOST_IP);
	json_str(&j, "guest_mac", GUEST_MAC);
	json_int(&j, "vsock_mib", opt.vsock_mib);
	json_num(&j, "vsock_conn_secs", opt.vsock_conn_secs, 2);
	json_int(&j, "vsock_cid", opt.vsock_cid);
	json_int(&j, "vsock_port", VSOCK_PORT);
	json_end_obj(&j);

	json_obj(&j, "availability");
	json_bool(&j, "qemu", qemu_path != NULL);
	json_str(&j, "netns_and_tap", have_netns ? "yes" : avail_netns);
	json_str(&j, "vhost_net", avail_vhost_net);
	json_str(&j, "vhost_vsock", avail_vhost_vsock);
	json_end_obj(&j);

	json_obj(&j, "method");
	json_str(&j, "alternation",
		 "for each repetition, each row runs every monitor once, the order rotating by "
		 "repetition (Ember first, then QEMU first, ...); one guest boot per run");
	json_str(
	    &j, "block",
	    "fresh image file per run (written, fsynced); guest check=blk_bench times "
	    "sequential 128 KiB reads then writes at qd N and 4 KiB random reads with its TSC; "
	    "MB/s = 10^6 B/s. Ember: buffered io_uring readv/writev; QEMU: cache=writeback "
	    "(no O_DIRECT), the given aio. Guest microseconds are rescaled when the guest's "
	    "TSC rate (CPUID 0x40000010, else 1 GHz assumed) differs from KVM's");
	json_str(&j, "net",
		 "tap in a fresh network namespace per run, static neighbour entry; host UDP "
		 "socket sends datagrams to the guest's echo port keeping `window` outstanding "
		 "(sendmmsg/recvmmsg), counts echoes during net_secs after a warm-up; a stall of "
		 "net_loss_ms writes the outstanding datagrams off as lost. MB/s = echoed payload "
		 "(each byte crossed the device twice)");
	json_str(&j, "vsock",
		 "guest check=vsock_server vsock_expect=1; a keeper connection holds it open and "
		 "its close ends the run. Stream: one connection, N MiB sent while the echo is "
		 "read and checked, timed first write to last byte back. Connections: connect "
		 "(Ember: Unix socket + CONNECT/OK; QEMU: AF_VSOCK to the guest CID through "
		 "vhost-vsock) then close, one after another");
	json_str(&j, "exits",
		 "Ember's --log-level info `vCPU exits:` line at exit; MiB moved = data through "
		 "the device in both directions (block: read + written + random; net: UDP "
		 "payload sent + echoed; vsock: sent + received); every console byte is one port "
		 "exit; baseline = the same device set up with (nearly) nothing moved; beyond = "
		 "(io + mmio - console bytes) minus the baseline's, per MiB (per connection)");
	json_end_obj(&j);

	json_arr(&j, "baselines");
	for (int k = 0; k < NFAM; k++) {
		if (!baseline_done[k])
			continue;
		json_obj(&j, NULL);
		json_str(&j, "family", fam_key[k]);
		json_str(&j, "what", fam_baseline_desc[k]);
		json_arr(&j, "samples");
		json_sample(&j, NULL, &baselines[k]);
		json_end_arr(&j);
		json_end_obj(&j);
	}
	json_end_arr(&j);

	json_arr(&j, "rows");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		json_obj(&j, NULL);
		json_str(&j, "id", r->id);
		json_str(&j, "title", r->title);
		json_obj(&j, "monitors");
		for (int v = 0; v < NVAR; v++) {
			if (v == V_QEMU_VHOST && r->kind != K_NET)
				continue;
			json_obj(&j, var_key[v]);
			json_bool(&j, "ran", r->run[v]);
			json_str(&j, "not_run_because", r->run[v] ? NULL : r->why_not[v]);
			json_end_obj(&j);
		}
		json_end_obj(&j);
		json_arr(&j, "metrics");
		for (int mi = 0; mi < r->nmetrics; mi++) {
			json_obj(&j, NULL);
			json_str(&j, "key", r->m[mi].key);
			json_str(&j, "label", r->m[mi].label);
			json_bool(&j, "higher_is_better", r->m[mi].higher_better);
			json_obj(&j, "summary");
			double med[NVAR];
			for (int v = 0; v < NVAR; v++) {
				med[v] = NAN;
				if (!r->run[v])
					continue;
				struct bench_stats st;
				metric_stats(r, (enum variant)v, mi, &st, NULL, NULL);
				med[v] = st.median;
				json_stats(&j, var_key[v], &st, 3);
			}
			json_end_obj(&j);
			json_num(&j, "ratio_ember_over_qemu",
				 isfinite(med[V_EMBER]) && isfinite(med[V_QEMU]) && med[V_QEMU] > 0
				     ? med[V_EMBER] / med[V_QEMU]
				     : NAN,
				 4);
			if (r->kind == K_NET)
				json_num(&j, "ratio_ember_over_qemu_vhost",
					 isfinite(med[V_EMBER]) && isfinite(med[V_QEMU_VHOST]) &&
						 med[V_QEMU_VHOST] > 0
					     ? med[V_EMBER] / med[V_QEMU_VHOST]
					     : NAN,
					 4);
			json_str(&j, "target",
				 r->m[mi].higher_better ? "Ember >= QEMU microvm"
							: "Ember <= QEMU microvm");
			json_end_obj(&j);
		}
		json_end_arr(&j);
		struct bench_stats st;
		json_obj(&j, "ember_exits");
		field_stats(r, offsetof(struct sample, exits_per_mib), &st);
		json_stats(&j, "io_mmio_per_mib", &st, 3);
		field_stats(r, offsetof(struct sample, beyond_per_mib), &st);
		json_stats(&j, "beyond_console_and_baseline_per_mib", &st, 3);
		if (r->kind == K_VSOCK_CONN) {
			field_stats(r, offsetof(struct sample, exits_per_conn), &st);
			json_stats(&j, "io_mmio_per_connection", &st, 3);
			field_stats(r, offsetof(struct sample, beyond_per_conn), &st);
			json_stats(&j, "beyond_console_and_baseline_per_connection", &st, 3);
		}
		json_end_obj(&j);
		json_arr(&j, "samples");
		for (int k = 0; k < r->ns; k++)
			json_sample(&j, r, &r->s[k]);
		json_end_arr(&j);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_int(&j, "failed_runs", count_failures());
	json_end_obj(&j);
	json_finish(&j);
}

/* ------------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: devices [options]\n"
	    "Block, net and vsock throughput of Ember beside QEMU microvm (same unikernel,\n"
	    "same devices, runs alternated), and Ember's exits per MiB. Needs /dev/kvm; the net\n"
	    "rows need root (a network namespace and a tap per run).\n"
	    "  -o FILE              JSON output (default " BENCH_RESULTS_DIR "/devices-DATE.json)\n"
	    "  -n, --reps N         runs a row and monitor (default 3)\n"
	    "  --quick              1 run a row and monitor\n"
	    "  --rows LIST          block,net,vsock (default all)\n"
	    "  --ember PATH  --qemu PATH  --unikernel PATH\n"
	    "  --no-qemu            Ember only\n"
	    "  --no-vhost           no QEMU vhost=on net column\n"
	    "  --no-modprobe        do not try to load vhost_net / vhost_vsock\n"
	    "  --no-baseline        no do-nothing Ember runs for the exit counts\n"
	    "  --mem-mib M          guest RAM (default 128)\n"
	    "  --virtio-irq         guest waits for interrupts (virtio_irq=1) instead of polling\n"
	    "  --timeout S          per run (default 300)\n"
	    "  --dir DIR            where images and sockets go (default $TMPDIR or /tmp)\n"
	    "  --blk-image-mib N    image size (default 256)\n"
	    "  --blk-bench-mib N    MiB read then written sequentially (default: the image)\n"
	    "  --blk-qd N           requests in flight (default 16)\n"
	    "  --blk-rand-secs N    seconds of 4 KiB random reads (default 1)\n"
	    "  --qemu-blk-aio A     threads (default), io_uring or native\n"
	    "  --no-qemu-tsc-frequency  do not pass KVM's TSC rate to QEMU's -cpu\n"
	    "  --net-secs S         measured seconds (default 5)\n"
	    "  --net-warmup S       unmeasured seconds first (default 0.5)\n"
	    "  --net-window N       datagrams outstanding (default 64)\n"
	    "  --net-small B  --net-large B   UDP payloads (default 64, 1400)\n"
	    "  --net-loss-ms MS     stall that writes outstanding datagrams off (default 200)\n"
	    "  --vsock-mib N        stream size (default 64)\n"
	    "  --vsock-conn-secs S  connection loop (default 5)\n"
	    "  --vsock-cid N        guest CID (default: 1000 + pid %% 50000)\n"
	    "  --skip-if-no-kvm     exit 77 (skipped) without /dev/kvm\n"
	    "  -q, --quiet          no progress on stderr\n"
	    "Exit: 0 all runs ok; 1 a run failed; 2 usage; 3 no /dev/kvm; 130 interrupted.\n");
}

static double num_arg(const char *name, const char *v, double min, double max)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !(d >= min && d <= max)) {
		fprintf(stderr, "devices: %s wants a number in [%g, %g], got '%s'\n", name, min,
			max, v);
		exit(2);
	}
	return d;
}

enum {
	O_QUICK = 256,
	O_ROWS,
	O_EMBER,
	O_QEMU,
	O_UNIKERNEL,
	O_NO_QEMU,
	O_NO_VHOST,
	O_NO_MODPROBE,
	O_NO_BASELINE,
	O_MEM,
	O_IRQ,
	O_TIMEOUT,
	O_DIR,
	O_BLK_IMAGE,
	O_BLK_BENCH,
	O_BLK_QD,
	O_BLK_RAND,
	O_BLK_AIO,
	O_NO_TSC,
	O_NET_SECS,
	O_NET_WARMUP,
	O_NET_WINDOW,
	O_NET_SMALL,
	O_NET_LARGE,
	O_NET_LOSS,
	O_VS_MIB,
	O_VS_CONN,
	O_VS_CID,
	O_SKIP,
};

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"reps", required_argument, 0, 'n'},
	    {"quiet", no_argument, 0, 'q'},
	    {"help", no_argument, 0, 'h'},
	    {"quick", no_argument, 0, O_QUICK},
	    {"rows", required_argument, 0, O_ROWS},
	    {"ember", required_argument, 0, O_EMBER},
	    {"qemu", required_argument, 0, O_QEMU},
	    {"unikernel", required_argument, 0, O_UNIKERNEL},
	    {"no-qemu", no_argument, 0, O_NO_QEMU},
	    {"no-vhost", no_argument, 0, O_NO_VHOST},
	    {"no-modprobe", no_argument, 0, O_NO_MODPROBE},
	    {"no-baseline", no_argument, 0, O_NO_BASELINE},
	    {"mem-mib", required_argument, 0, O_MEM},
	    {"virtio-irq", no_argument, 0, O_IRQ},
	    {"timeout", required_argument, 0, O_TIMEOUT},
	    {"dir", required_argument, 0, O_DIR},
	    {"blk-image-mib", required_argument, 0, O_BLK_IMAGE},
	    {"blk-bench-mib", required_argument, 0, O_BLK_BENCH},
	    {"blk-qd", required_argument, 0, O_BLK_QD},
	    {"blk-rand-secs", required_argument, 0, O_BLK_RAND},
	    {"qemu-blk-aio", required_argument, 0, O_BLK_AIO},
	    {"no-qemu-tsc-frequency", no_argument, 0, O_NO_TSC},
	    {"net-secs", required_argument, 0, O_NET_SECS},
	    {"net-warmup", required_argument, 0, O_NET_WARMUP},
	    {"net-window", required_argument, 0, O_NET_WINDOW},
	    {"net-small", required_argument, 0, O_NET_SMALL},
	    {"net-large", required_argument, 0, O_NET_LARGE},
	    {"net-loss-ms", required_argument, 0, O_NET_LOSS},
	    {"vsock-mib", required_argument, 0, O_VS_MIB},
	    {"vsock-conn-secs", required_argument, 0, O_VS_CONN},
	    {"vsock-cid", required_argument, 0, O_VS_CID},
	    {"skip-if-no-kvm", no_argument, 0, O_SKIP},
	    {0, 0, 0, 0},
	};
	opt.ember = BENCH_DEFAULT_EMBER;
	opt.unikernel = BENCH_DEFAULT_UNIKERNEL;
	opt.vsock_cid = 1000 + (unsigned)getpid() % 50000;
	bool reps_given = false;
	int c;
	while ((c = getopt_long(argc, argv, "o:n:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'o':
			opt.out = optarg;
			break;
		case 'n':
			opt.reps = (int)num_arg("--reps", optarg, 1, 1000);
			reps_given = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case O_QUICK:
			opt.quick = true;
			break;
		case O_ROWS:
			snprintf(opt.rows, sizeof(opt.rows), "%s", optarg);
			break;
		case O_EMBER:
			opt.ember = optarg;
			break;
		case O_QEMU:
			opt.qemu = optarg;
			break;
		case O_UNIKERNEL:
			opt.unikernel = optarg;
			break;
		case O_NO_QEMU:
			opt.no_qemu = true;
			break;
		case O_NO_VHOST:
			opt.no_vhost = true;
			break;
		case O_NO_MODPROBE:
			opt.no_modprobe = true;
			break;
		case O_NO_BASELINE:
			opt.no_baseline = true;
			break;
		case O_MEM:
			opt.mem_mib = (unsigned)num_arg("--mem-mib", optarg, 16, 65536);
			break;
		case O_IRQ:
			opt.virtio_irq = 1;
			break;
		case O_TIMEOUT:
			opt.timeout_s = num_arg("--timeout", optarg, 10, 86400);
			break;
		case O_DIR:
			opt.dir = optarg;
			break;
		case O_BLK_IMAGE:
			opt.blk_image_mib =
			    (unsigned)num_arg("--blk-image-mib", optarg, 1, 1 << 20);
			break;
		case O_BLK_BENCH:
			opt.blk_bench_mib =
			    (unsigned)num_arg("--blk-bench-mib", optarg, 1, 1 << 20);
			break;
		case O_BLK_QD:
			opt.blk_qd = (unsigned)num_arg("--blk-qd", optarg, 1, 64);
			break;
		case O_BLK_RAND:
			opt.blk_rand_secs = (unsigned)num_arg("--blk-rand-secs", optarg, 1, 3600);
			break;
		case O_BLK_AIO:
			if (strcmp(optarg, "threads") && strcmp(optarg, "io_uring") &&
			    strcmp(optarg, "native")) {
				fprintf(stderr,
					"devices: --qemu-blk-aio: threads, io_uring or native\n");
				exit(2);
			}
			opt.qemu_blk_aio = optarg;
			break;
		case O_NO_TSC:
			opt.qemu_tsc_frequency = false;
			break;
		case O_NET_SECS:
			opt.net_secs = num_arg("--net-secs", optarg, 0.1, 3600);
			break;
		case O_NET_WARMUP:
			opt.net_warmup_s = num_arg("--net-warmup", optarg, 0, 3600);
			break;
		case O_NET_WINDOW:
			opt.net_window = (unsigned)num_arg("--net-window", optarg, 1, 4096);
			break;
		case O_NET_SMALL:
			opt.net_small = (unsigned)num_arg("--net-small", optarg, 16, 1472);
			break;
		case O_NET_LARGE:
			opt.net_large = (unsigned)num_arg("--net-large", optarg, 16, 1472);
			break;
		case O_NET_LOSS:
			opt.net_loss_ms = num_arg("--net-loss-ms", optarg, 1, 60000);
			break;
		case O_VS_MIB:
			opt.vsock_mib = (unsigned)num_arg("--vsock-mib", optarg, 1, 1 << 20);
			break;
		case O_VS_CONN:
			opt.vsock_conn_secs = num_arg("--vsock-conn-secs", optarg, 0.1, 3600);
			break;
		case O_VS_CID:
			opt.vsock_cid = (unsigned)num_arg("--vsock-cid", optarg, 3, 4294967294.0);
			break;
		case O_SKIP:
			opt.skip_if_no_kvm = true;
			break;
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (opt.quick && !reps_given)
		opt.reps = 1;
	if (!opt.blk_bench_mib)
		opt.blk_bench_mib = opt.blk_image_mib;
	if (opt.blk_bench_mib > opt.blk_image_mib)
		opt.blk_bench_mib = opt.blk_image_mib;
}

static void run_baseline(enum family f)
{
	if (!baseline_wanted[f] || baseline_done[f] || bench_interrupted)
		return;
	struct row *r = NULL;
	for (int i = 0; i < nrows && !r; i++)
		if (rows[i].fam == f && rows[i].run[V_EMBER])
			r = &rows[i];
	if (!r)
		return;
	progress("[baseline] %-13s %-14s ", fam_key[f], "Ember");
	run_sample(r, V_EMBER, 0, true, &baselines[f]);
	baseline_done[f] = true;
	describe_sample(r, &baselines[f]);
}

static void remove_workdir(void)
{
	if (workdir[0])
		rmdir(workdir);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	bench_catch_signals();
	bench_machine_probe(&machine);
	if (!machine.have_kvm) {
		fprintf(stderr, "devices: no /dev/kvm here%s\n",
			opt.skip_if_no_kvm ? ": skipped"
					   : " (run it on a KVM host, or under tests/l1/run)");
		return opt.skip_if_no_kvm ? 77 : 3;
	}
	if (access(opt.ember, X_OK) != 0) {
		fprintf(stderr, "devices: %s: not an executable (--ember)\n", opt.ember);
		return 2;
	}
	if (access(opt.unikernel, R_OK) != 0) {
		fprintf(stderr, "devices: %s: unreadable (--unikernel)\n", opt.unikernel);
		return 2;
	}
	double t_start = bench_now_ms();
	char started[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%S%z", &tm);

	char *ev[] = {(char *)opt.ember, "--version", NULL};
	ember_version = bench_first_line(ev);
	if (!opt.no_qemu) {
		qemu_path = bench_which(opt.qemu ? opt.qemu : "qemu-system-x86_64");
		if (qemu_path) {
			char *qv[] = {qemu_path, "--version", NULL};
			qemu_version = bench_first_line(qv);
		}
	}
	kvm_tsc_khz = probe_kvm_tsc_khz();
	have_netns = netns_tap_possible(avail_netns, sizeof(avail_netns));
	if (qemu_path && !opt.no_qemu) {
		if (row_selected("net") && !opt.no_vhost)
			have_vhost_net = ensure_dev("/dev/vhost-net", "vhost_net", avail_vhost_net,
						    sizeof(avail_vhost_net));
		else
			snprintf(avail_vhost_net, sizeof(avail_vhost_net), "not probed");
		if (row_selected("vsock"))
			have_vhost_vsock = ensure_dev("/dev/vhost-vsock", "vhost_vsock",
						      avail_vhost_vsock, sizeof(avail_vhost_vsock));
		else
			snprintf(avail_vhost_vsock, sizeof(avail_vhost_vsock), "not probed");
	} else {
		snprintf(avail_vhost_net, sizeof(avail_vhost_net), "not probed (no QEMU)");
		snprintf(avail_vhost_vsock, sizeof(avail_vhost_vsock), "not probed (no QEMU)");
	}

	const char *tmp = opt.dir ? opt.dir : getenv("TMPDIR");
	snprintf(workdir, sizeof(workdir), "%s/ember-devbench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(workdir)) {
		fprintf(stderr, "devices: mkdtemp %s: %s\n", workdir, strerror(errno));
		return 2;
	}
	atexit(remove_workdir);

	setup_rows();
	if (!nrows) {
		fprintf(stderr, "devices: --rows selects nothing (block, net, vsock)\n");
		return 2;
	}

	progress("devices: %s; KVM %s%s, TSC %ld kHz; Ember %s; QEMU %s\n", workdir,
		 machine.kvm_kind, machine.under_l1 ? " (inside tests/l1)" : "", kvm_tsc_khz,
		 ember_version ? ember_version : "?",
		 qemu_path ? (qemu_version ? qemu_version : qemu_path) : "not installed");
	progress("devices: net rows: %s; vhost-net: %s; vhost-vsock: %s\n",
		 have_netns ? "netns + tap ok" : avail_netns, avail_vhost_net, avail_vhost_vsock);

	for (int f = 0; f < NFAM; f++)
		run_baseline((enum family)f);

	for (int rep = 0; rep < opt.reps && !bench_interrupted; rep++) {
		for (int i = 0; i < nrows && !bench_interrupted; i++) {
			struct row *r = &rows[i];
			enum variant order[NVAR];
			int n = 0;
			for (int v = 0; v < NVAR; v++)
				if (r->run[v])
					order[n++] = (enum variant)v;
			for (int k = 0; k < n && !bench_interrupted; k++) {
				enum variant v = order[(k + rep) % n];
				progress("[run %d/%d] %-13s %-14s ", rep + 1, opt.reps, r->id,
					 var_title[v]);
				struct sample *s = new_sample(r);
				run_sample(r, v, rep, false, s);
				describe_sample(r, s);
			}
		}
	}

	double elapsed = (bench_now_ms() - t_start) / 1e3;
	bool interrupted = bench_interrupted;
	if (interrupted)
		printf("\nInterrupted: what was measured so far follows.\n");
	print_table(elapsed);

	char path[512];
	if (opt.out) {
		snprintf(path, sizeof(path), "%s", opt.out);
	} else {
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
		mkdir(BENCH_RESULTS_DIR, 0755);
		snprintf(path, sizeof(path), "%s/devices-%s.json", BENCH_RESULTS_DIR, stamp);
	}
	FILE *f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "devices: %s: %s\n", path, strerror(errno));
		return 1;
	}
	write_json(f, started, elapsed, interrupted);
	if (fclose(f) != 0) {
		fprintf(stderr, "devices: writing %s failed\n", path);
		return 1;
	}
	printf("\nJSON: %s\n", path);

	for (int i = 0; i < nrows; i++) {
		for (int k = 0; k < rows[i].ns; k++) {
			argv_free(rows[i].s[k].argv);
			free(rows[i].s[k].cmdline);
			free(rows[i].s[k].out_tail);
			free(rows[i].s[k].err_tail);
		}
		free(rows[i].s);
	}
	if (interrupted)
		return 130;
	return count_failures() ? 1 : 0;
}
