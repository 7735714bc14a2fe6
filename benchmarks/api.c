/* benchmarks/api: what the control API costs, Ember beside QEMU.
 *
 * Round trips: an unconfigured `ember --api-sock` answers `describe`, and QEMU (-machine none,
 * -S) answers QMP `query-status`, to one client and to several concurrent clients (threads, a
 * connection each). QMP serves one client per monitor socket, so QEMU gets one -qmp socket per
 * client. No KVM is needed for these.
 *
 * Boot: the test unikernel (check=hello) started by `ember run`, and by `ember --api-sock`
 * configured and started through the API; beside them QEMU microvm, plain and with -S + QMP
 * `cont`. bench_launch() runs the monitor (fork to exit, console marker) while a client thread
 * drives its socket and stamps each step on the same clock. See benchmarks/README.md. */
#include "bench.h"

#include "api/client.h"
#include "common/err.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
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

#define BENCH_VERSION "1"

/* As in boot.c: Ember appends these words to every guest command line (monitor/vm.c), and QEMU
 * is given them explicitly so both guests see the same line. */
#define EMBER_CMDLINE_FRAGMENTS                                                                    \
	"console=ttyS0 reboot=k panic=1 pci=off nomodules i8042.noaux i8042.nomux i8042.dumbkbd"
/* As in boot.c: the QEMU machine that offers the guest what Ember does, and no more. */
#define QEMU_MACHINE_DEFAULT                                                                       \
	"microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off,smm=off,auto-kernel-cmdline=off"

/* Targets for a human to read beside the numbers; nothing here checks them. */
#define TARGET_API_ADDS_MS 2.0
#define TARGET_RT_P99_MS   1.0

enum mon { EMBER, QEMU, NMON };
static const char *const mon_name[NMON] = {"ember", "qemu"};

static struct cfg {
	const char *ember, *unikernel, *qemu, *qemu_machine, *out, *sock_dir;
	const char *cmdline, *metrics_cmdline, *marker;
	int runs, warmup, metrics_runs, rounds, requests, rt_warmup, clients;
	unsigned mem_mib;
	double timeout_s;
	bool quick, no_qemu, no_boot, skip_if_no_kvm, quiet;
} cfg = {
    .cmdline = "check=hello",
    .metrics_cmdline = "check=counter",
    .marker = "ember-unikernel: main",
    .qemu_machine = QEMU_MACHINE_DEFAULT,
    .runs = -1,
    .warmup = 1,
    .metrics_runs = -1,
    .rounds = -1,
    .requests = -1,
    .rt_warmup = 50,
    .clients = 8,
    .mem_mib = 128,
    .timeout_s = 60,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: api [options]\n"
		"\n"
		"The control API's cost, Ember beside QEMU:\n"
		"  round trips: Ember `describe` vs QMP `query-status`, 1 and --clients clients\n"
		"               (needs no /dev/kvm);\n"
		"  boot: the test unikernel by `ember run` vs configured and started through the\n"
		"        API; QEMU microvm plain vs -S + QMP `cont` (needs /dev/kvm; the rows are\n"
		"        skipped, and say so, without it).\n"
		"\n"
		"Options:\n"
		"  -n, --runs N             timed boot runs per row (default 20; --quick 3)\n"
		"      --warmup N           untimed boot runs per row first (default 1)\n"
		"      --metrics-runs N     extra API boots with \"%s\" whose `metrics` reply is\n"
		"                           read once the boot timer is written (default 5; "
		"--quick 1)\n"
		"      --rounds N           round-trip rounds, monitors alternated (default 5; "
		"--quick 2)\n"
		"      --requests N         timed requests per client and round (default 500;\n"
		"                           --quick 100)\n"
		"      --rt-warmup N        untimed requests per connection first (default 50)\n"
		"      --clients N          concurrent clients in the second round-trip row "
		"(default 8)\n"
		"      --quick              smoke test: fewer runs, rounds and requests\n"
		"      --no-boot            round trips only\n"
		"  -o, --output FILE        JSON results (default %s/api-DATE.json)\n"
		"      --ember PATH         Ember binary (default %s)\n"
		"      --unikernel PATH     test unikernel (default %s)\n"
		"      --qemu PATH          QEMU binary (default qemu-system-x86_64 from $PATH)\n"
		"      --no-qemu            Ember only\n"
		"      --qemu-machine M     QEMU -M value for the boot rows (default %s)\n"
		"      --mem-mib M          guest RAM (default 128)\n"
		"      --cmdline S          unikernel command line (default \"%s\")\n"
		"      --marker S           console marker (default \"%s\")\n"
		"      --sock-dir DIR       where the sockets go (default /dev/shm, else /tmp)\n"
		"      --timeout S          per boot run, and per client step (default 60)\n"
		"      --skip-if-no-kvm     without /dev/kvm, exit 77 after the round trips\n"
		"  -q, --quiet              no per-run progress on stderr\n"
		"  -h, --help               this text\n"
		"\n"
		"Exit status: 0 all ran and succeeded, 1 a run or request failed, 2 bad usage,\n"
		"77 no /dev/kvm with --skip-if-no-kvm (round trips fine), 130 interrupted.\n",
		cfg.metrics_cmdline, BENCH_RESULTS_DIR, BENCH_DEFAULT_EMBER,
		BENCH_DEFAULT_UNIKERNEL, QEMU_MACHINE_DEFAULT, cfg.cmdline, cfg.marker);
}

static long parse_num(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "api: %s: expected a number from %ld to %ld, got '%s'\n", opt, lo,
			hi, s);
		exit(2);
	}
	return v;
}

enum {
	O_WARMUP = 256,
	O_METRICS_RUNS,
	O_ROUNDS,
	O_REQUESTS,
	O_RT_WARMUP,
	O_CLIENTS,
	O_QUICK,
	O_NO_BOOT,
	O_EMBER,
	O_UNIKERNEL,
	O_QEMU,
	O_NO_QEMU,
	O_QEMU_MACHINE,
	O_MEM,
	O_CMDLINE,
	O_MARKER,
	O_SOCK_DIR,
	O_TIMEOUT,
	O_SKIP,
};

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"runs", required_argument, NULL, 'n'},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"metrics-runs", required_argument, NULL, O_METRICS_RUNS},
	    {"rounds", required_argument, NULL, O_ROUNDS},
	    {"requests", required_argument, NULL, O_REQUESTS},
	    {"rt-warmup", required_argument, NULL, O_RT_WARMUP},
	    {"clients", required_argument, NULL, O_CLIENTS},
	    {"quick", no_argument, NULL, O_QUICK},
	    {"no-boot", no_argument, NULL, O_NO_BOOT},
	    {"output", required_argument, NULL, 'o'},
	    {"ember", required_argument, NULL, O_EMBER},
	    {"unikernel", required_argument, NULL, O_UNIKERNEL},
	    {"qemu", required_argument, NULL, O_QEMU},
	    {"no-qemu", no_argument, NULL, O_NO_QEMU},
	    {"qemu-machine", required_argument, NULL, O_QEMU_MACHINE},
	    {"mem-mib", required_argument, NULL, O_MEM},
	    {"cmdline", required_argument, NULL, O_CMDLINE},
	    {"marker", required_argument, NULL, O_MARKER},
	    {"sock-dir", required_argument, NULL, O_SOCK_DIR},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"skip-if-no-kvm", no_argument, NULL, O_SKIP},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "n:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			cfg.runs = (int)parse_num("--runs", optarg, 1, 100000);
			break;
		case O_WARMUP:
			cfg.warmup = (int)parse_num("--warmup", optarg, 0, 1000);
			break;
		case O_METRICS_RUNS:
			cfg.metrics_runs = (int)parse_num("--metrics-runs", optarg, 0, 10000);
			break;
		case O_ROUNDS:
			cfg.rounds = (int)parse_num("--rounds", optarg, 1, 10000);
			break;
		case O_REQUESTS:
			cfg.requests = (int)parse_num("--requests", optarg, 1, 10000000);
			break;
		case O_RT_WARMUP:
			cfg.rt_warmup = (int)parse_num("--rt-warmup", optarg, 0, 1000000);
			break;
		case O_CLIENTS:
			/* Ember's server takes 64 clients at once (api/server.h). */
			cfg.clients = (int)parse_num("--clients", optarg, 2, 64);
			break;
		case O_QUICK:
			cfg.quick = true;
			break;
		case O_NO_BOOT:
			cfg.no_boot = true;
			break;
		case 'o':
			cfg.out = optarg;
			break;
		case O_EMBER:
			cfg.ember = optarg;
			break;
		case O_UNIKERNEL:
			cfg.unikernel = optarg;
			break;
		case O_QEMU:
			cfg.qemu = optarg;
			break;
		case O_NO_QEMU:
			cfg.no_qemu = true;
			break;
		case O_QEMU_MACHINE:
			cfg.qemu_machine = optarg;
			break;
		case O_MEM:
			cfg.mem_mib = (unsigned)parse_num("--mem-mib", optarg, 2, 1 << 20);
			break;
		case O_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case O_MARKER:
			cfg.marker = optarg;
			break;
		case O_SOCK_DIR:
			cfg.sock_dir = optarg;
			break;
		case O_TIMEOUT:
			cfg.timeout_s = (double)parse_num("--timeout", optarg, 1, 86400);
			break;
		case O_SKIP:
			cfg.skip_if_no_kvm = true;
			break;
		case 'q':
			cfg.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "api: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (!*cfg.marker) {
		fprintf(stderr, "api: the marker cannot be empty\n");
		exit(2);
	}
	if (cfg.runs < 0)
		cfg.runs = cfg.quick ? 3 : 20;
	if (cfg.metrics_runs < 0)
		cfg.metrics_runs = cfg.quick ? 1 : 5;
	if (cfg.rounds < 0)
		cfg.rounds = cfg.quick ? 2 : 5;
	if (cfg.requests < 0)
		cfg.requests = cfg.quick ? 100 : 500;
	if (!cfg.ember)
		cfg.ember = BENCH_DEFAULT_EMBER;
	if (!cfg.unikernel)
		cfg.unikernel = BENCH_DEFAULT_UNIKERNEL;
}

/* ------------------------------------------------------------ small helpers */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "api: out of memory\n");
		exit(1);
	}
	return p;
}

struct strv {
	char **v;
	int n, cap;
};

static void strv_add(struct strv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, (size_t)a->cap * sizeof(*a->v));
		if (!a->v) {
			fprintf(stderr, "api: out of memory\n");
			exit(1);
		}
	}
	a->v[a->n++] = bench_xstrdup(s);
	a->v[a->n] = NULL;
}

static void strv_free(struct strv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static bool interrupted(void)
{
	return bench_interrupted != 0;
}

static int client_timeout_ms(void)
{
	return (int)(cfg.timeout_s * 1000);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the ceil(p n)-th smallest of sorted v. */
static double rank_of(const double *sorted, int n, double p)
{
	if (n <= 0)
		return NAN;
	int rank = (int)ceil(p * n);
	return sorted[(rank < 1 ? 1 : rank > n ? n : rank) - 1];
}

static pid_t peer_pid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	return cred.pid;
}

/* -------------------------------------------------------- one connection */

/* A client connection to either monitor: Ember's framed protobuf, or QMP's JSON lines. */
struct conn {
	enum mon mon;
	int fd;
	size_t len;
	char buf[16384];
};

/* What a client waits on while the monitor is starting: the socket folder's inotify (a new
 * entry: try again) and an eventfd that says the monitor is gone. Either may be -1. */
struct ready_wait {
	int inotify_fd, cancel_fd;
};

static void drain_fd(int fd)
{
	char buf[4096];
	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

static bool cancelled(const struct ready_wait *w)
{
	struct pollfd p = {.fd = w ? w->cancel_fd : -1, .events = POLLIN};
	return p.fd >= 0 && poll(&p, 1, 0) == 1;
}

/* Connect as soon as the monitor listens. Until its socket exists (ENOENT), wait for the
 * folder's next entry; between its bind() and listen() (ECONNREFUSED) retry after 20 us.
 * api_client_connect() is a plain Unix-socket connect with send/receive timeouts, so QMP
 * sockets use it too. */
static int conn_connect(struct conn *c, enum mon mon, const char *path, const struct ready_wait *w,
			double deadline_ms, char *why, size_t n)
{
	c->mon = mon;
	c->len = 0;
	c->fd = -1;
	for (;;) {
		int fd = api_client_connect(path, client_timeout_ms());
		if (fd >= 0) {
			c->fd = fd;
			return 0;
		}
		if (fd != -ENOENT && fd != -ECONNREFUSED) {
			snprintf(why, n, "%s", err_msg());
			return -1;
		}
		double left = deadline_ms - bench_now_ms();
		if (left <= 0) {
			snprintf(why, n, "%s: not connectable within %.0f s (%s)", path,
				 cfg.timeout_s, strerror(-fd));
			return -1;
		}
		if (interrupted()) {
			snprintf(why, n, "interrupted");
			return -1;
		}
		bool watch = fd == -ENOENT && w && w->inotify_fd >= 0;
		struct pollfd p[2] = {
		    {.fd = w ? w->cancel_fd : -1, .events = POLLIN},
		    {.fd = watch ? w->inotify_fd : -1, .events = POLLIN},
		};
		/* A 50 ms cap: a missed inotify event costs little; without inotify, poll 1 ms. */
		int wait_ms = fd == -ECONNREFUSED ? 0
			      : watch		  ? (left < 50 ? (int)ceil(left) : 50)
						  : 1;
		int k = poll(p, 2, wait_ms);
		if (k > 0 && (p[0].revents & POLLIN)) {
			snprintf(why, n, "the monitor ended before %s was connectable", path);
			return -1;
		}
		if (k > 0 && (p[1].revents & POLLIN))
			drain_fd(w->inotify_fd);
		if (fd == -ECONNREFUSED)
			nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
	}
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* One line of QMP (it ends lines with \r\n). */
static int qmp_line(struct conn *c, char *line, size_t size, char *why, size_t n)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t l = (size_t)(nl - c->buf) + 1;
			size_t keep = l < size ? l : size - 1;
			memcpy(line, c->buf, keep);
			line[keep] = 0;
			memmove(c->buf, nl + 1, c->len - l);
			c->len -= l;
			return 0;
		}
		if (c->len == sizeof(c->buf)) {
			snprintf(why, n, "QMP: a line longer than %zu bytes", sizeof(c->buf));
			return -1;
		}
		ssize_t got = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, n, "QMP: recv: %s",
				 errno == EAGAIN ? "no reply within the timeout" : strerror(errno));
			return -1;
		}
		if (got == 0) {
			snprintf(why, n, "QMP: QEMU closed the connection");
			return -1;
		}
		c->len += (size_t)got;
	}
}

/* Send one command and read its reply, skipping events; the reply must contain `expect`. */
static int qmp_execute(struct conn *c, const char *cmd, const char *expect, char *why, size_t n)
{
	size_t len = strlen(cmd), off = 0;
	while (off < len) {
		ssize_t w = send(c->fd, cmd + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			snprintf(why, n, "QMP: send: %s", strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	char line[4096];
	for (;;) {
		if (qmp_line(c, line, sizeof(line), why, n) < 0)
			return -1;
		if (strstr(line, "\"return\"")) {
			if (expect && !strstr(line, expect)) {
				snprintf(why, n, "QMP: reply lacks %s: %.150s", expect, line);
				return -1;
			}
			return 0;
		}
		if (strstr(line, "\"error\"")) {
			snprintf(why, n, "QMP: %.180s", line);
			return -1;
		}
	}
}

static int qmp_handshake(struct conn *c, char *why, size_t n)
{
	char line[4096];
	if (qmp_line(c, line, sizeof(line), why, n) < 0)
		return -1;
	if (!strstr(line, "\"QMP\"")) {
		snprintf(why, n, "QMP: unexpected greeting %.150s", line);
		return -1;
	}
	return qmp_execute(c, "{\"execute\":\"qmp_capabilities\"}\n", NULL, why, n);
}

/* Send `req` and require an OK reply; *resp is the caller's to free when asked for. */
static int ember_call(struct conn *c, const Ember__V1__Request *req, Ember__V1__Response **out,
		      char *why, size_t n)
{
	Ember__V1__Response *resp = NULL;
	if (api_client_call(c->fd, req, NULL, 0, &resp) < 0) {
		snprintf(why, n, "%s", err_msg());
		return -1;
	}
	if (resp->status != EMBER__V1__STATUS__OK) {
		snprintf(why, n, "op %d: %s: %s", (int)req->op_case, api_status_name(resp->status),
			 resp->message);
		ember__v1__response__free_unpacked(resp, NULL);
		return -1;
	}
	if (out)
		*out = resp;
	else
		ember__v1__response__free_unpacked(resp, NULL);
	return 0;
}

static Ember__V1__Request simple_request(Ember__V1__Request__OpCase op)
{
	static Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = op;
	req.describe = &empty; /* every Empty-typed operation shares the oneof's storage */
	return req;
}

/* The round trip measured: Ember `describe`, or QMP `query-status`. */
static int status_query(struct conn *c, char *why, size_t n)
{
	if (c->mon == QEMU)
		return qmp_execute(c, "{\"execute\":\"query-status\"}\n", "\"status\"", why, n);
	Ember__V1__Request req = simple_request(EMBER__V1__REQUEST__OP_DESCRIBE);
	Ember__V1__Response *resp;
	if (ember_call(c, &req, &resp, why, n) < 0)
		return -1;
	bool info = resp->info != NULL;
	ember__v1__response__free_unpacked(resp, NULL);
	if (!info) {
		snprintf(why, n, "describe: an OK reply without InstanceInfo");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ round trips */

struct rt_client {
	enum mon mon;
	const char *path;
	int requests;
	pthread_barrier_t *go;
	_Atomic pid_t *peer;
	const struct ready_wait *w;
	double *lat_us;
	int answered;
	double begin_ms, end_ms;
	char failure[200];
};

struct rt_round {
	int clients;
	double wall_ms;
	int sent, answered;
	double **lat_us; /* [client][0..answered_by[client]) */
	int *answered_by;
	char failure[240];
};

struct rt_series {
	enum mon mon;
	int clients;
	bool run;
	char status[200];
	struct rt_round *rounds;
	int nrounds;
};

struct rt_monitor {
	enum mon mon;
	bool started;
	struct strv argv;
	char **paths; /* one socket for Ember, cfg.clients for QEMU */
	int npaths;
	pthread_t thread;
	struct bench_launch l;
	struct bench_result r;
	int launch_rc;
	atomic_bool gone;
	struct ready_wait w; /* cancel_fd: written when the monitor has ended */
	_Atomic pid_t peer;
	char stop_failure[200];
};

static void *rt_client_main(void *arg)
{
	struct rt_client *cl = arg;
	struct conn *c = xcalloc(1, sizeof(*c));
	double deadline = bench_now_ms() + cfg.timeout_s * 1000;
	char *why = cl->failure;
	size_t wn = sizeof(cl->failure);
	bool ready = conn_connect(c, cl->mon, cl->path, cl->w, deadline, why, wn) == 0 &&
		     (cl->mon != QEMU || qmp_handshake(c, why, wn) == 0);
	if (ready) {
		pid_t none = 0, pid = peer_pid(c->fd);
		if (pid > 0)
			atomic_compare_exchange_strong(cl->peer, &none, pid);
	}
	for (int i = 0; ready && i < cfg.rt_warmup; i++)
		ready = status_query(c, why, wn) == 0;
	/* Everyone waits here, ready or not: the timed part starts together. */
	pthread_barrier_wait(cl->go);
	if (ready) {
		cl->begin_ms = bench_now_ms();
		for (int i = 0; i < cl->requests && !interrupted(); i++) {
			double t = bench_now_ms();
			if (status_query(c, why, wn) < 0)
				break;
			cl->lat_us[cl->answered++] = (bench_now_ms() - t) * 1e3;
		}
		cl->end_ms = bench_now_ms();
	}
	conn_close(c);
	free(c);
	return NULL;
}

static void rt_run_round(struct rt_series *se, struct rt_monitor *mon)
{
	int k = se->clients;
	struct rt_round *rd = &se->rounds[se->nrounds++];
	memset(rd, 0, sizeof(*rd));
	rd->clients = k;
	rd->lat_us = xcalloc((size_t)k, sizeof(*rd->lat_us));
	rd->answered_by = xcalloc((size_t)k, sizeof(int));
	if (atomic_load(&mon->gone)) {
		rd->sent = k * cfg.requests;
		snprintf(rd->failure, sizeof(rd->failure), "the monitor is no longer running");
		return;
	}
	struct rt_client *cl = xcalloc((size_t)k, sizeof(*cl));
	pthread_t *t = xcalloc((size_t)k, sizeof(*t));
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, (unsigned)k + 1);
	for (int i = 0; i < k; i++) {
		cl[i] = (struct rt_client){
		    .mon = se->mon,
		    /* QMP: a socket per client; Ember: all on the one socket. */
		    .path = mon->paths[se->mon == QEMU ? i : 0],
		    .requests = cfg.requests,
		    .go = &go,
		    .peer = &mon->peer,
		    .w = &mon->w,
		    .lat_us = xcalloc((size_t)cfg.requests, sizeof(double)),
		};
		if (pthread_create(&t[i], NULL, rt_client_main, &cl[i]) != 0) {
			/* The barrier counts on every thread: nothing sensible to continue with. */
			fprintf(stderr, "api: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&go);
	double begin = INFINITY, end = 0;
	for (int i = 0; i < k; i++) {
		pthread_join(t[i], NULL);
		rd->sent += cfg.requests;
		rd->answered += cl[i].answered;
		rd->lat_us[i] = cl[i].lat_us;
		rd->answered_by[i] = cl[i].answered;
		if (cl[i].failure[0] && !rd->failure[0])
			snprintf(rd->failure, sizeof(rd->failure), "client %d: %s", i + 1,
				 cl[i].failure);
		if (cl[i].begin_ms > 0 && cl[i].begin_ms < begin)
			begin = cl[i].begin_ms;
		if (cl[i].end_ms > end)
			end = cl[i].end_ms;
	}
	rd->wall_ms = end > begin ? end - begin : NAN;
	pthread_barrier_destroy(&go);
	free(cl);
	free(t);
}

static void *rt_monitor_main(void *arg)
{
	struct rt_monitor *m = arg;
	m->launch_rc = bench_launch(&m->l, &m->r);
	atomic_store(&m->gone, true);
	uint64_t one = 1;
	if (write(m->w.cancel_fd, &one, sizeof(one)) != sizeof(one))
		perror("api: eventfd write");
	return NULL;
}

static void rt_monitor_start(struct rt_monitor *m, enum mon mon, const char *qemu, const char *dir)
{
	m->mon = mon;
	m->npaths = mon == QEMU ? cfg.clients : 1;
	m->paths = xcalloc((size_t)m->npaths, sizeof(char *));
	for (int i = 0; i < m->npaths; i++) {
		m->paths[i] = bench_xasprintf("%s/rt-%s-%d.sock", dir, mon_name[mon], i);
		unlink(m->paths[i]);
	}
	if (mon == EMBER) {
		strv_add(&m->argv, cfg.ember);
		strv_add(&m->argv, "--api-sock");
		strv_add(&m->argv, m->paths[0]);
	} else {
		const char *fixed[] = {
		    qemu,	"-machine", "none", "-nodefaults", "-no-user-config",
		    "-display", "none",	    "-S"};
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			strv_add(&m->argv, fixed[i]);
		for (int i = 0; i < m->npaths; i++) {
			strv_add(&m->argv, "-qmp");
			char *spec = bench_xasprintf("unix:%s,server=on,wait=off", m->paths[i]);
			strv_add(&m->argv, spec);
			free(spec);
		}
	}
	/* Stopped through its socket at the end; killed only if that fails for this long. */
	m->l = (struct bench_launch){.argv = m->argv.v, .timeout_s = cfg.timeout_s * 10};
	atomic_init(&m->gone, false);
	atomic_init(&m->peer, 0);
	m->w = (struct ready_wait){.inotify_fd = -1,
				   .cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	m->started =
	    m->w.cancel_fd >= 0 && pthread_create(&m->thread, NULL, rt_monitor_main, m) == 0;
	if (!m->started)
		atomic_store(&m->gone, true);
}

static void rt_monitor_stop(struct rt_monitor *m)
{
	if (!m->started)
		return;
	if (!atomic_load(&m->gone)) {
		struct conn *c = xcalloc(1, sizeof(*c));
		char *why = m->stop_failure;
		size_t n = sizeof(m->stop_failure);
		double deadline = bench_now_ms() + cfg.timeout_s * 1000;
		int r = conn_connect(c, m->mon, m->paths[0], &m->w, deadline, why, n);
		if (r == 0 && m->mon == EMBER) {
			Ember__V1__Request req = simple_request(EMBER__V1__REQUEST__OP_STOP);
			r = ember_call(c, &req, NULL, why, n);
		} else if (r == 0) {
			r = qmp_handshake(c, why, n);
			if (r == 0)
				r = qmp_execute(c, "{\"execute\":\"quit\"}\n", NULL, why, n);
		}
		conn_close(c);
		free(c);
		pid_t pid = atomic_load(&m->peer);
		if (r < 0 && pid > 0 && !atomic_load(&m->gone))
			kill(pid, SIGKILL);
	}
	pthread_join(m->thread, NULL);
	for (int i = 0; i < m->npaths; i++)
		unlink(m->paths[i]);
}

static void rt_monitor_free(struct rt_monitor *m)
{
	if (m->w.cancel_fd >= 0)
		close(m->w.cancel_fd);
	if (m->started)
		bench_result_free(&m->r);
	for (int i = 0; i < m->npaths; i++)
		free(m->paths[i]);
	free(m->paths);
	strv_free(&m->argv);
}

struct rt_summary {
	int sent, answered;
	double rps;	    /* all answered requests / all rounds' wall time */
	double *rps_rounds; /* per round */
	int nrps;
	double min, p50, p90, p99, max; /* microseconds */
};

static void rt_summarize(const struct rt_series *se, struct rt_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->min = s->p50 = s->p90 = s->p99 = s->max = s->rps = NAN;
	size_t total = 0;
	double wall = 0;
	for (int r = 0; r < se->nrounds; r++) {
		s->sent += se->rounds[r].sent;
		s->answered += se->rounds[r].answered;
		total += (size_t)se->rounds[r].answered;
	}
	s->rps_rounds = xcalloc((size_t)se->nrounds, sizeof(double));
	double *all = xcalloc(total, sizeof(double));
	size_t k = 0;
	for (int r = 0; r < se->nrounds; r++) {
		const struct rt_round *rd = &se->rounds[r];
		if (rd->answered > 0 && isfinite(rd->wall_ms) && rd->wall_ms > 0) {
			wall += rd->wall_ms;
			s->rps_rounds[s->nrps++] = rd->answered / (rd->wall_ms / 1e3);
		}
		for (int c = 0; c < rd->clients; c++)
			for (int i = 0; i < rd->answered_by[c]; i++)
				all[k++] = rd->lat_us[c][i];
	}
	if (wall > 0)
		s->rps = (double)s->answered / (wall / 1e3);
	if (k) {
		qsort(all, k, sizeof(double), cmp_double);
		s->min = all[0];
		s->max = all[k - 1];
		s->p50 = rank_of(all, (int)k, 0.50);
		s->p90 = rank_of(all, (int)k, 0.90);
		s->p99 = rank_of(all, (int)k, 0.99);
	}
	free(all);
}

static void rt_section(struct rt_series *series, int nseries, struct rt_monitor *mons,
		       const char *qemu, const char *dir)
{
	for (int m = 0; m < NMON; m++)
		if (m == EMBER || qemu)
			rt_monitor_start(&mons[m], (enum mon)m, qemu, dir);
	for (int r = 0; r < cfg.rounds && !interrupted(); r++)
		for (int i = 0; i < nseries && !interrupted(); i++) {
			struct rt_series *se = &series[i];
			if (!se->run)
				continue;
			rt_run_round(se, &mons[se->mon]);
			const struct rt_round *rd = &se->rounds[se->nrounds - 1];
			if (cfg.quiet)
				continue;
			fprintf(stderr,
				"api: round trip %-5s %d client(s) round %d/%d: %d/%d answered",
				mon_name[se->mon], se->clients, r + 1, cfg.rounds, rd->answered,
				rd->sent);
			if (rd->answered && isfinite(rd->wall_ms))
				fprintf(stderr, ", %.0f req/s", rd->answered / (rd->wall_ms / 1e3));
			if (rd->failure[0])
				fprintf(stderr, "; FAILED: %s", rd->failure);
			fputc('\n', stderr);
		}
	for (int m = 0; m < NMON; m++)
		rt_monitor_stop(&mons[m]);
}

/* ------------------------------------------------------------------ boots */

enum boot_id { B_EMBER_RUN, B_EMBER_API, B_QEMU, B_QEMU_CONT, NBOOT };
static const char *const boot_key[NBOOT] = {"ember-run", "ember-api", "qemu", "qemu-qmp-cont"};
static const char *const boot_title[NBOOT] = {"ember run", "ember API", "qemu microvm",
					      "qemu -S + QMP cont"};
static const enum mon boot_mon[NBOOT] = {EMBER, EMBER, QEMU, QEMU};
static const bool boot_via_socket[NBOOT] = {false, true, false, true};

enum kind { K_WARMUP, K_TIMING, K_METRICS };
static const char *const kind_name[] = {"warmup", "timing", "metrics"};

/* Times in ms from the start (just before fork()); -1 where the step did not happen. */
struct boot_sample {
	enum kind kind;
	int index;
	bool ok;
	char failure[400];
	double ready_ms, configured_ms, start_sent_ms, start_replied_ms;
	double marker_ms, exit_ms;
	int exit_code, term_signal;
	double bt_ms; /* Ember's --boot-timer line; NAN if absent */
	double metrics_process_us, metrics_instance_us, metrics_read_ms;
	char *out_tail, *err_tail; /* failed runs only */
};

struct boot_series {
	bool run;
	char status[200];
	struct strv argv;
	char *sock;
	char *guest_cmdline; /* what the guest is given (QEMU: with Ember's fragments) */
	struct boot_sample *v;
	int n, cap;
};

/* The client side of a boot through a socket. Times are absolute (bench_now_ms). */
struct boot_client {
	enum boot_id id;
	const char *path, *cmdline;
	bool metrics;
	struct ready_wait w;
	double ready, configured, start_sent, start_replied, metrics_read;
	uint64_t process_us, instance_us;
	bool ok;
	char failure[240];
};

static int ember_configure(struct conn *c, const char *cmdline, char *why, size_t n)
{
	Ember__V1__MachineConfig mc = EMBER__V1__MACHINE_CONFIG__INIT;
	mc.vcpus = 1;
	mc.mem_mib = cfg.mem_mib;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_MACHINE_CONFIG;
	req.machine_config = &mc;
	if (ember_call(c, &req, NULL, why, n) < 0)
		return -1;
	Ember__V1__FileSource fs = EMBER__V1__FILE_SOURCE__INIT;
	fs.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	fs.path = (char *)cfg.unikernel;
	Ember__V1__BootSource bs = EMBER__V1__BOOT_SOURCE__INIT;
	bs.kernel = &fs;
	bs.cmdline = (char *)cmdline;
	bs.protocol = EMBER__V1__BOOT_PROTOCOL__BOOT_PROTOCOL_PVH;
	req = (Ember__V1__Request)EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_BOOT_SOURCE;
	req.boot_source = &bs;
	return ember_call(c, &req, NULL, why, n);
}

/* Metrics runs: poll `metrics` until the guest has written the boot timer, then stop. */
static int ember_read_metrics(struct conn *c, struct boot_client *bc, char *why, size_t n)
{
	double deadline = bench_now_ms() + cfg.timeout_s * 1000;
	for (;;) {
		Ember__V1__Request req = simple_request(EMBER__V1__REQUEST__OP_METRICS);
		Ember__V1__Response *resp;
		if (ember_call(c, &req, &resp, why, n) < 0)
			return -1;
		if (resp->metrics && resp->metrics->process_start_to_init_us) {
			bc->process_us = resp->metrics->process_start_to_init_us;
			bc->instance_us = resp->metrics->instance_start_to_init_us;
			bc->metrics_read = bench_now_ms();
			ember__v1__response__free_unpacked(resp, NULL);
			break;
		}
		ember__v1__response__free_unpacked(resp, NULL);
		if (bench_now_ms() > deadline || interrupted()) {
			snprintf(why, n, "metrics: no boot time within %.0f s", cfg.timeout_s);
			return -1;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	Ember__V1__Request req = simple_request(EMBER__V1__REQUEST__OP_STOP);
	return ember_call(c, &req, NULL, why, n);
}

static void *boot_client_main(void *arg)
{
	struct boot_client *bc = arg;
	struct conn *c = xcalloc(1, sizeof(*c));
	char *why = bc->failure;
	size_t n = sizeof(bc->failure);
	enum mon mon = boot_mon[bc->id];
	pid_t pid = -1;
	bc->ready = bc->configured = bc->start_sent = bc->start_replied = bc->metrics_read = -1;
	double deadline = bench_now_ms() + cfg.timeout_s * 1000;
	if (conn_connect(c, mon, bc->path, &bc->w, deadline, why, n) < 0)
		goto out;
	bc->ready = bench_now_ms();
	pid = peer_pid(c->fd);
	int r = mon == EMBER ? ember_configure(c, bc->cmdline, why, n) : qmp_handshake(c, why, n);
	if (r < 0)
		goto fail;
	bc->configured = bench_now_ms();
	bc->start_sent = bench_now_ms();
	if (mon == EMBER) {
		Ember__V1__Request req = simple_request(EMBER__V1__REQUEST__OP_START);
		r = ember_call(c, &req, NULL, why, n);
	} else {
		r = qmp_execute(c, "{\"execute\":\"cont\"}\n", NULL, why, n);
	}
	if (r < 0)
		goto fail;
	bc->start_replied = bench_now_ms();
	if (bc->metrics && ember_read_metrics(c, bc, why, n) < 0)
		goto fail;
	bc->ok = true;
	goto out;
fail:
	/* A monitor left waiting for a start would otherwise hold the run until --timeout. It is
	 * our child, not yet reaped while the main thread still waits in bench_launch(). */
	if (pid > 0 && !cancelled(&bc->w))
		kill(pid, SIGKILL);
out:
	conn_close(c);
	free(c);
	return NULL;
}

static struct boot_sample *series_add(struct boot_series *s)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, (size_t)s->cap * sizeof(*s->v));
		if (!s->v) {
			fprintf(stderr, "api: out of memory\n");
			exit(1);
		}
	}
	struct boot_sample *x = &s->v[s->n++];
	memset(x, 0, sizeof(*x));
	return x;
}

static double find_ms(const char *text, const char *prefix)
{
	const char *p = text ? strstr(text, prefix) : NULL;
	double v;
	if (p && sscanf(p + strlen(prefix), "%lf", &v) == 1)
		return v;
	return NAN;
}

static void describe_status(int st, char *buf, size_t n)
{
	if (st < 0)
		snprintf(buf, n, "no exit status");
	else if (WIFEXITED(st))
		snprintf(buf, n, "exit code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "wait status 0x%x", st);
}

static double rel(double abs_ms, double t0)
{
	return abs_ms < 0 ? -1 : abs_ms - t0;
}

static void judge(enum boot_id id, const struct bench_result *r, const struct boot_client *bc,
		  double t0, struct boot_sample *s)
{
	s->marker_ms = r->marker_ms;
	s->exit_ms = r->exit_ms;
	s->exit_code = r->exited && WIFEXITED(r->wait_status) ? WEXITSTATUS(r->wait_status) : -1;
	s->term_signal = r->exited && WIFSIGNALED(r->wait_status) ? WTERMSIG(r->wait_status) : -1;
	s->bt_ms = boot_mon[id] == EMBER ? find_ms(r->err.p, "ember: boot time: guest init ") : NAN;
	s->ready_ms = s->configured_ms = s->start_sent_ms = s->start_replied_ms = -1;
	s->metrics_read_ms = -1;
	s->metrics_process_us = s->metrics_instance_us = NAN;
	if (bc) {
		s->ready_ms = rel(bc->ready, t0);
		s->configured_ms = rel(bc->configured, t0);
		s->start_sent_ms = rel(bc->start_sent, t0);
		s->start_replied_ms = rel(bc->start_replied, t0);
		s->metrics_read_ms = rel(bc->metrics_read, t0);
		if (bc->metrics_read >= 0) {
			s->metrics_process_us = (double)bc->process_us;
			s->metrics_instance_us = (double)bc->instance_us;
		}
	}
	char st[96];
	describe_status(r->exited ? r->wait_status : -1, st, sizeof(st));
	s->ok = false;
	if (r->unkillable)
		snprintf(s->failure, sizeof(s->failure), "still running 10 s after SIGKILL");
	else if (r->interrupted)
		snprintf(s->failure, sizeof(s->failure), "interrupted");
	else if (bc && !bc->ok)
		snprintf(s->failure, sizeof(s->failure), "client: %.200s (monitor: %s)",
			 bc->failure, st);
	else if (r->timed_out)
		snprintf(s->failure, sizeof(s->failure), "%s within %g s (killed)",
			 r->marker_seen ? "no exit" : "no marker", cfg.timeout_s);
	else if (!r->marker_seen && s->kind != K_METRICS)
		snprintf(s->failure, sizeof(s->failure), "exited without the marker (%s)", st);
	else if (!(r->exited && WIFEXITED(r->wait_status) && WEXITSTATUS(r->wait_status) == 0))
		snprintf(s->failure, sizeof(s->failure), "%s after the marker", st);
	else
		s->ok = true;
	if (!s->ok) {
		s->out_tail = bench_xstrdup(bench_buf_tail(&r->out, 2048));
		s->err_tail = bench_xstrdup(bench_buf_tail(&r->err, 2048));
	}
}

static void progress(enum boot_id id, const struct boot_sample *s, int of)
{
	if (cfg.quiet)
		return;
	fprintf(stderr, "api: boot %-13s %-7s %2d/%-2d ", boot_key[id], kind_name[s->kind],
		s->index + 1, of);
	if (!s->ok) {
		fprintf(stderr, "FAILED: %s\n", s->failure);
		return;
	}
	if (s->ready_ms >= 0)
		fprintf(stderr, "ready %7.2f  start sent %7.2f  ", s->ready_ms, s->start_sent_ms);
	fprintf(stderr, "marker %8.2f  exit %8.2f ms", s->marker_ms, s->exit_ms);
	if (!isnan(s->metrics_instance_us))
		fprintf(stderr, "  metrics: instance start->init %.0f us", s->metrics_instance_us);
	fputc('\n', stderr);
}

static void boot_one_run(struct boot_series *se, enum boot_id id, enum kind kind, int index, int of,
			 int inotify_fd)
{
	struct boot_sample *s = series_add(se);
	s->kind = kind;
	s->index = index;
	bool metrics = kind == K_METRICS;
	struct boot_client bc = {
	    .id = id,
	    .path = se->sock,
	    .cmdline = metrics ? cfg.metrics_cmdline : cfg.cmdline,
	    .metrics = metrics,
	    .w = {.inotify_fd = inotify_fd, .cancel_fd = -1},
	};
	pthread_t t;
	bool threaded = boot_via_socket[id];
	if (threaded) {
		unlink(se->sock);
		drain_fd(inotify_fd);
		bc.w.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (bc.w.cancel_fd < 0 || pthread_create(&t, NULL, boot_client_main, &bc) != 0) {
			snprintf(s->failure, sizeof(s->failure), "eventfd/pthread_create: %s",
				 strerror(errno));
			if (bc.w.cancel_fd >= 0)
				close(bc.w.cancel_fd);
			progress(id, s, of);
			return;
		}
	}
	struct bench_launch l = {
	    .argv = se->argv.v,
	    .marker = cfg.marker,
	    .timeout_s = cfg.timeout_s,
	    .stop = BENCH_WAIT_EXIT,
	};
	struct bench_result r;
	/* bench_launch() stamps its start after two pipe2() and an open(): the client's stamps,
	 * taken against this one, are late by those few microseconds. */
	double t0 = bench_now_ms();
	int lr = bench_launch(&l, &r);
	int launch_errno = errno;
	if (threaded) {
		uint64_t one = 1;
		if (write(bc.w.cancel_fd, &one, sizeof(one)) != sizeof(one))
			perror("api: eventfd write");
		pthread_join(t, NULL);
		close(bc.w.cancel_fd);
		unlink(se->sock);
	}
	if (lr < 0) {
		snprintf(s->failure, sizeof(s->failure), "fork/pipe: %s", strerror(launch_errno));
		s->marker_ms = s->exit_ms = -1;
		s->ready_ms = s->configured_ms = s->start_sent_ms = s->start_replied_ms = -1;
		s->metrics_read_ms = -1;
		s->bt_ms = s->metrics_process_us = s->metrics_instance_us = NAN;
		s->exit_code = s->term_signal = -1;
	} else {
		judge(id, &r, threaded ? &bc : NULL, t0, s);
		bench_result_free(&r);
	}
	progress(id, s, of);
}

static void boot_section(struct boot_series *series, int inotify_fd)
{
	for (int i = 0; i < cfg.warmup && !interrupted(); i++)
		for (int b = 0; b < NBOOT && !interrupted(); b++)
			if (series[b].run)
				boot_one_run(&series[b], (enum boot_id)b, K_WARMUP, i, cfg.warmup,
					     inotify_fd);
	for (int i = 0; i < cfg.runs && !interrupted(); i++)
		for (int b = 0; b < NBOOT && !interrupted(); b++)
			if (series[b].run)
				boot_one_run(&series[b], (enum boot_id)b, K_TIMING, i, cfg.runs,
					     inotify_fd);
	for (int i = 0; i < cfg.metrics_runs && !interrupted(); i++)
		if (series[B_EMBER_API].run)
			boot_one_run(&series[B_EMBER_API], B_EMBER_API, K_METRICS, i,
				     cfg.metrics_runs, inotify_fd);
}

struct boot_summary {
	int timed, ok;
	struct bench_stats ready, configure, start_to_marker, start_reply, marker, exit, bt;
	int metrics_ok, metrics_failed;
	struct bench_stats m_process_ms, m_instance_ms;
};

static void boot_summarize(const struct boot_series *se, struct boot_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	int n = se->n ? se->n : 1;
	enum { READY, CONF, S2M, REPLY, MARK, EXIT, BT, MP, MI, NCOL };
	double *col[NCOL];
	int cnt[NCOL] = {0};
	for (int c = 0; c < NCOL; c++)
		col[c] = xcalloc((size_t)n, sizeof(double));
	for (int i = 0; i < se->n; i++) {
		const struct boot_sample *s = &se->v[i];
		if (s->kind == K_METRICS) {
			if (!s->ok) {
				sum->metrics_failed++;
				continue;
			}
			sum->metrics_ok++;
			col[MP][cnt[MP]++] = s->metrics_process_us / 1e3;
			col[MI][cnt[MI]++] = s->metrics_instance_us / 1e3;
			continue;
		}
		if (s->kind != K_TIMING)
			continue;
		sum->timed++;
		if (!s->ok)
			continue;
		sum->ok++;
		col[MARK][cnt[MARK]++] = s->marker_ms;
		col[EXIT][cnt[EXIT]++] = s->exit_ms;
		if (!isnan(s->bt_ms))
			col[BT][cnt[BT]++] = s->bt_ms;
		if (s->ready_ms >= 0 && s->start_sent_ms >= 0) {
			col[READY][cnt[READY]++] = s->ready_ms;
			col[CONF][cnt[CONF]++] = s->start_sent_ms - s->ready_ms;
			col[S2M][cnt[S2M]++] = s->marker_ms - s->start_sent_ms;
			col[REPLY][cnt[REPLY]++] = s->start_replied_ms - s->start_sent_ms;
		}
	}
	bench_stats(col[READY], cnt[READY], &sum->ready);
	bench_stats(col[CONF], cnt[CONF], &sum->configure);
	bench_stats(col[S2M], cnt[S2M], &sum->start_to_marker);
	bench_stats(col[REPLY], cnt[REPLY], &sum->start_reply);
	bench_stats(col[MARK], cnt[MARK], &sum->marker);
	bench_stats(col[EXIT], cnt[EXIT], &sum->exit);
	bench_stats(col[BT], cnt[BT], &sum->bt);
	bench_stats(col[MP], cnt[MP], &sum->m_process_ms);
	bench_stats(col[MI], cnt[MI], &sum->m_instance_ms);
	for (int c = 0; c < NCOL; c++)
		free(col[c]);
}

static char *guest_cmdline_with_fragments(const char *user)
{
	return bench_xasprintf("%s%s%s", user, *user ? " " : "", EMBER_CMDLINE_FRAGMENTS);
}

static void boot_setup(struct boot_series *series, const char *qemu, const char *qemu_status,
		       const char *dir)
{
	char mem[16];
	snprintf(mem, sizeof(mem), "%u", cfg.mem_mib);
	for (int b = 0; b < NBOOT; b++) {
		struct boot_series *se = &series[b];
		struct strv *a = &se->argv;
		if (boot_mon[b] == QEMU && !qemu) {
			snprintf(se->status, sizeof(se->status), "%s", qemu_status);
			continue;
		}
		se->run = true;
		if (boot_via_socket[b])
			se->sock = bench_xasprintf("%s/boot-%s.sock", dir, boot_key[b]);
		if (b == B_EMBER_RUN) {
			const char *v[] = {
			    cfg.ember,	   "run",	"--kernel",	   cfg.unikernel,
			    "--cmdline",   cfg.cmdline, "--boot-protocol", "pvh",
			    "--vcpus",	   "1",		"--mem-mib",	   mem,
			    "--boot-timer"};
			for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
				strv_add(a, v[i]);
			se->guest_cmdline = bench_xstrdup(cfg.cmdline);
		} else if (b == B_EMBER_API) {
			strv_add(a, cfg.ember);
			strv_add(a, "--api-sock");
			strv_add(a, se->sock);
			strv_add(a, "--boot-timer");
			se->guest_cmdline = bench_xstrdup(cfg.cmdline);
		} else {
			se->guest_cmdline = guest_cmdline_with_fragments(cfg.cmdline);
			const char *v[] = {qemu,
					   "-M",
					   cfg.qemu_machine,
					   "-enable-kvm",
					   "-cpu",
					   "host",
					   "-nodefaults",
					   "-no-user-config",
					   "-display",
					   "none",
					   "-serial",
					   "stdio",
					   "-no-reboot",
					   "-device",
					   "i8042",
					   "-smp",
					   "1",
					   "-m",
					   mem,
					   "-kernel",
					   cfg.unikernel,
					   "-append",
					   se->guest_cmdline};
			for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
				strv_add(a, v[i]);
			if (b == B_QEMU_CONT) {
				strv_add(a, "-S");
				strv_add(a, "-qmp");
				char *spec =
				    bench_xasprintf("unix:%s,server=on,wait=off", se->sock);
				strv_add(a, spec);
				free(spec);
			}
		}
	}
}

static void boot_free(struct boot_series *series)
{
	for (int b = 0; b < NBOOT; b++) {
		struct boot_series *se = &series[b];
		for (int k = 0; k < se->n; k++) {
			free(se->v[k].out_tail);
			free(se->v[k].err_tail);
		}
		free(se->v);
		free(se->sock);
		free(se->guest_cmdline);
		strv_free(&se->argv);
	}
}

/* -------------------------------------------------------------- the table */

static void cell(double v)
{
	if (isnan(v))
		printf(" %8s", "-");
	else
		printf(" %8.2f", v);
}

static const char *rt_clients_label(const struct rt_series *se, char *buf, size_t n)
{
	if (se->clients == 1)
		snprintf(buf, n, "1 (1 %s)", se->mon == QEMU ? "QMP socket" : "connection");
	else if (se->mon == QEMU)
		snprintf(buf, n, "%d (%d QMP sockets, 1 client each*)", se->clients, se->clients);
	else
		snprintf(buf, n, "%d (%d connections, 1 socket)", se->clients, se->clients);
	return buf;
}

static void print_rt_table(const struct rt_series *series, int nseries)
{
	printf("API round trip: Ember `describe` (unconfigured `ember --api-sock`) vs QEMU QMP "
	       "`query-status` (-machine none -S)\n");
	printf("%d round(s), monitors alternated; %d timed requests per client and round, after "
	       "%d untimed ones per connection\n\n",
	       cfg.rounds, cfg.requests, cfg.rt_warmup);
	printf("%-6s %-36s %13s %10s | %8s %8s %8s %8s %8s\n", "mon", "clients", "answered",
	       "req/s", "min us", "p50 us", "p90 us", "p99 us", "max us");
	printf("%.*s\n", 110,
	       "-----------------------------------------------------------------------------"
	       "-----------------------------------------------------------------------------");
	bool qmp_note = false;
	for (int i = 0; i < nseries; i++) {
		const struct rt_series *se = &series[i];
		char label[64];
		printf("%-6s %-36s ", mon_name[se->mon],
		       rt_clients_label(se, label, sizeof(label)));
		qmp_note |= se->mon == QEMU && se->clients > 1;
		if (!se->run) {
			printf("%s\n", se->status);
			continue;
		}
		struct rt_summary s;
		rt_summarize(se, &s);
		char ok[32];
		snprintf(ok, sizeof(ok), "%d/%d", s.answered, s.sent);
		printf("%13s", ok);
		if (isnan(s.rps))
			printf(" %10s |", "-");
		else
			printf(" %10.0f |", s.rps);
		cell(s.min), cell(s.p50), cell(s.p90), cell(s.p99), cell(s.max);
		printf("\n");
		free(s.rps_rounds);
	}
	if (qmp_note)
		printf(
		    "* QMP serves one client per monitor socket: for %d clients QEMU was started "
		    "with %d -qmp sockets (one monitor each), one client on each.\n",
		    cfg.clients, cfg.clients);
	printf("  req/s: all answered requests / the rounds' wall time (first client's first "
	       "request to the last one's last reply).\n\n");
}

static void print_boot_table(const struct boot_series *series, bool skipped,
			     const char *skip_reason)
{
	printf("Boot through the API: test unikernel (\"%s\"), %d run(s) per row (+%d warm-up), "
	       "rows alternated\n",
	       cfg.cmdline, cfg.runs, cfg.warmup);
	if (skipped) {
		printf("  skipped: %s\n\n", skip_reason);
		return;
	}
	printf("%-20s %5s | %8s %8s %8s | %-35s | %8s %8s\n", "", "", "start->", "ready->", "start",
	       "start -> marker (ms)", "start->", "ember");
	printf("%-20s %5s | %8s %8s %8s | %8s %8s %8s %8s | %8s %8s\n", "row", "ok", "ready",
	       "start", "sent->", "min", "median", "p90", "max", "exit", "boot-tmr");
	printf("%-20s %5s | %8s %8s %8s | %35s | %8s %8s\n", "", "", "", "sent", "marker", "",
	       "median", "median");
	printf("%.*s\n", 110,
	       "-----------------------------------------------------------------------------"
	       "-----------------------------------------------------------------------------");
	for (int b = 0; b < NBOOT; b++) {
		const struct boot_series *se = &series[b];
		printf("%-20s ", boot_title[b]);
		if (!se->run) {
			printf("%5s   %s\n", "-", se->status);
			continue;
		}
		struct boot_summary s;
		boot_summarize(se, &s);
		char ok[16];
		snprintf(ok, sizeof(ok), "%d/%d", s.ok, s.timed);
		printf("%5s |", ok);
		cell(s.ready.n ? s.ready.median : NAN);
		cell(s.configure.n ? s.configure.median : NAN);
		cell(s.start_to_marker.n ? s.start_to_marker.median : NAN);
		printf(" |");
		cell(s.marker.min), cell(s.marker.median), cell(s.marker.p90), cell(s.marker.max);
		printf(" |");
		cell(s.exit.n ? s.exit.median : NAN);
		cell(s.bt.n ? s.bt.median : NAN);
		printf("\n");
	}
	printf("  ember API: start -> socket connectable -> (machine_config, boot_source) start "
	       "request sent -> marker.\n"
	       "  qemu -S + QMP cont: start -> QMP socket connectable -> (greeting, "
	       "qmp_capabilities) cont sent -> marker.\n");
	const struct boot_series *api = &series[B_EMBER_API];
	if (api->run && cfg.metrics_runs > 0) {
		struct boot_summary s;
		boot_summarize(api, &s);
		printf(
		    "  ember API `metrics`, %d/%d run(s) with \"%s\" (read once the boot timer is "
		    "written, then `stop`): instance_start_to_init median ",
		    s.metrics_ok, s.metrics_ok + s.metrics_failed, cfg.metrics_cmdline);
		if (s.m_instance_ms.n)
			printf("%.3f ms, process_start_to_init median %.3f ms\n",
			       s.m_instance_ms.median, s.m_process_ms.median);
		else
			printf("-\n");
	}
	printf("\n");
}

static double series_median_marker(const struct boot_series *se)
{
	if (!se->run)
		return NAN;
	struct boot_summary s;
	boot_summarize(se, &s);
	return s.marker.n ? s.marker.median : NAN;
}

static double rt_p99_ms(const struct rt_series *series, int nseries, enum mon mon, int clients)
{
	for (int i = 0; i < nseries; i++)
		if (series[i].run && series[i].mon == mon && series[i].clients == clients) {
			struct rt_summary s;
			rt_summarize(&series[i], &s);
			free(s.rps_rounds);
			return s.p99 / 1e3;
		}
	return NAN;
}

static void print_ms(double v)
{
	if (isnan(v))
		printf("-");
	else
		printf("%.3f ms", v);
}

static void print_targets(const struct rt_series *rt, int nrt, const struct boot_series *boot,
			  bool boot_skipped)
{
	printf("Targets (for reading; nothing checks them):\n");
	printf("  describe round trip p99, 1 client: ");
	print_ms(rt_p99_ms(rt, nrt, EMBER, 1));
	printf(" (target < %.0f ms); %d clients: ", TARGET_RT_P99_MS, cfg.clients);
	print_ms(rt_p99_ms(rt, nrt, EMBER, cfg.clients));
	printf(". QMP query-status p99: ");
	print_ms(rt_p99_ms(rt, nrt, QEMU, 1));
	printf(", ");
	print_ms(rt_p99_ms(rt, nrt, QEMU, cfg.clients));
	printf("\n");
	if (!boot_skipped) {
		double adds = series_median_marker(&boot[B_EMBER_API]) -
			      series_median_marker(&boot[B_EMBER_RUN]);
		double qadds =
		    series_median_marker(&boot[B_QEMU_CONT]) - series_median_marker(&boot[B_QEMU]);
		printf("  configuring + starting through the API adds ");
		print_ms(adds);
		printf(" to start -> marker (ember API median - ember run median; target < %.0f "
		       "ms). QEMU -S + QMP cont adds ",
		       TARGET_API_ADDS_MS);
		print_ms(qadds);
		printf(".\n");
	}
	printf("\n");
}

static void print_notes(const struct rt_series *rt, int nrt, const struct boot_series *boot,
			const struct bench_machine *mach, const char *json_path)
{
	printf("Method:\n");
	printf("  Round trips: each client thread times every request from just before it is "
	       "sent to its decoded reply (CLOCK_MONOTONIC);\n"
	       "  latencies are nearest-rank percentiles over all clients and rounds.\n");
	printf("  Boots: start = CLOCK_MONOTONIC just before fork(); marker = the console (stdout "
	       "pipe) read that completes \"%s\";\n"
	       "  exit = waitpid(). A client thread connects as soon as the socket accepts "
	       "(inotify on its folder) and stamps each step.\n",
	       cfg.marker);
	printf("  Ember rows get --boot-timer; boot-tmr is Ember's own guest-init figure from its "
	       "process start.\n");
	if (mach->under_l1)
		printf("  Run inside tests/l1: KVM nested in a TCG-emulated VM, so every time here "
		       "is emulated; compare nothing to real hosts.\n");
	bool header = false;
	for (int i = 0; i < nrt; i++)
		for (int r = 0; r < rt[i].nrounds; r++) {
			if (!rt[i].rounds[r].failure[0])
				continue;
			if (!header)
				printf("\nFailed requests or runs:\n");
			header = true;
			printf("  round trip %s %d client(s) round %d: %s\n", mon_name[rt[i].mon],
			       rt[i].clients, r + 1, rt[i].rounds[r].failure);
		}
	for (int b = 0; b < NBOOT; b++)
		for (int k = 0; k < boot[b].n; k++) {
			const struct boot_sample *s = &boot[b].v[k];
			if (s->ok)
				continue;
			if (!header)
				printf("\nFailed requests or runs:\n");
			header = true;
			printf("  boot %s %s run %d: %s\n", boot_key[b], kind_name[s->kind],
			       s->index + 1, s->failure);
		}
	if (json_path)
		printf("\nJSON: %s\n", json_path);
}

/* -------------------------------------------------------------------- JSON */

static void json_rt(struct json *j, const struct rt_series *series, int nseries,
		    const struct rt_monitor *mons)
{
	json_obj(j, "round_trip");
	json_str(j, "ember_request", "ember.v1.Request{describe}");
	json_str(j, "qemu_request", "{\"execute\":\"query-status\"}");
	json_arr(j, "monitors");
	for (int m = 0; m < NMON; m++) {
		const struct rt_monitor *mon = &mons[m];
		json_obj(j, NULL);
		json_str(j, "monitor", mon_name[m]);
		json_bool(j, "ran", mon->started);
		json_argv(j, "command", mon->argv.v);
		if (mon->started) {
			char st[96];
			describe_status(mon->r.exited ? mon->r.wait_status : -1, st, sizeof(st));
			json_str(j, "ended", st);
			json_str(j, "stop_failure",
				 mon->stop_failure[0] ? mon->stop_failure : NULL);
			json_str(j, "stderr_tail", bench_buf_tail(&mon->r.err, 2048));
		}
		json_end_obj(j);
	}
	json_end_arr(j);
	json_arr(j, "series");
	for (int i = 0; i < nseries; i++) {
		const struct rt_series *se = &series[i];
		json_obj(j, NULL);
		json_str(j, "monitor", mon_name[se->mon]);
		json_int(j, "clients", se->clients);
		json_int(j, "sockets", se->mon == QEMU ? se->clients : 1);
		json_bool(j, "ran", se->run);
		if (!se->run) {
			json_str(j, "status", se->status);
			json_end_obj(j);
			continue;
		}
		struct rt_summary s;
		rt_summarize(se, &s);
		json_obj(j, "summary");
		json_int(j, "sent", s.sent);
		json_int(j, "answered", s.answered);
		json_num(j, "requests_per_s", s.rps, 0);
		struct bench_stats rs;
		bench_stats(s.rps_rounds, s.nrps, &rs);
		json_stats(j, "requests_per_s_by_round", &rs, 0);
		json_obj(j, "latency_us");
		json_num(j, "min", s.min, 2);
		json_num(j, "p50", s.p50, 2);
		json_num(j, "p90", s.p90, 2);
		json_num(j, "p99", s.p99, 2);
		json_num(j, "max", s.max, 2);
		json_end_obj(j);
		json_end_obj(j);
		free(s.rps_rounds);
		json_arr(j, "rounds");
		for (int r = 0; r < se->nrounds; r++) {
			const struct rt_round *rd = &se->rounds[r];
			json_obj(j, NULL);
			json_int(j, "round", r);
			json_int(j, "sent", rd->sent);
			json_int(j, "answered", rd->answered);
			json_num(j, "wall_ms", rd->wall_ms, 3);
			json_str(j, "failure", rd->failure[0] ? rd->failure : NULL);
			json_arr(j, "latency_us_by_client");
			for (int c = 0; c < rd->clients; c++) {
				json_arr(j, NULL);
				for (int k = 0; k < rd->answered_by[c]; k++)
					json_num(j, NULL, rd->lat_us[c][k], 1);
				json_end_arr(j);
			}
			json_end_arr(j);
			json_end_obj(j);
		}
		json_end_arr(j);
		json_end_obj(j);
	}
	json_end_arr(j);
	json_end_obj(j);
}

static void json_boot_sample(struct json *j, const struct boot_sample *s, enum boot_id id)
{
	json_obj(j, NULL);
	json_str(j, "kind", kind_name[s->kind]);
	json_int(j, "index", s->index);
	json_bool(j, "ok", s->ok);
	json_str(j, "failure", s->ok ? NULL : s->failure);
	if (boot_via_socket[id]) {
		json_num_or_null(j, "socket_ready_ms", s->ready_ms, 3);
		json_num_or_null(j, "configured_ms", s->configured_ms, 3);
		json_num_or_null(j, "start_sent_ms", s->start_sent_ms, 3);
		json_num_or_null(j, "start_replied_ms", s->start_replied_ms, 3);
	}
	json_num_or_null(j, "marker_ms", s->marker_ms, 3);
	json_num_or_null(j, "exit_ms", s->exit_ms, 3);
	if (s->exit_code >= 0)
		json_int(j, "exit_code", s->exit_code);
	else
		json_null(j, "exit_code");
	if (s->term_signal >= 0)
		json_int(j, "signal", s->term_signal);
	else
		json_null(j, "signal");
	if (boot_mon[id] == EMBER)
		json_num(j, "ember_boot_timer_ms", s->bt_ms, 3);
	if (s->kind == K_METRICS) {
		json_num_or_null(j, "metrics_read_ms", s->metrics_read_ms, 3);
		json_num(j, "metrics_process_start_to_init_us", s->metrics_process_us, 0);
		json_num(j, "metrics_instance_start_to_init_us", s->metrics_instance_us, 0);
	}
	if (!s->ok) {
		json_str(j, "stdout_tail", s->out_tail);
		json_str(j, "stderr_tail", s->err_tail);
	}
	json_end_obj(j);
}

static void json_boot(struct json *j, const struct boot_series *series, bool skipped,
		      const char *skip_reason)
{
	json_obj(j, "boot");
	json_bool(j, "skipped", skipped);
	if (skipped) {
		json_str(j, "skip_reason", skip_reason);
		json_end_obj(j);
		return;
	}
	json_arr(j, "rows");
	for (int b = 0; b < NBOOT; b++) {
		const struct boot_series *se = &series[b];
		json_obj(j, NULL);
		json_str(j, "id", boot_key[b]);
		json_str(j, "title", boot_title[b]);
		json_str(j, "monitor", mon_name[boot_mon[b]]);
		json_bool(j, "ran", se->run);
		if (!se->run) {
			json_str(j, "status", se->status);
			json_end_obj(j);
			continue;
		}
		json_argv(j, "command", se->argv.v);
		json_str(j, "guest_cmdline", se->guest_cmdline);
		if (b == B_EMBER_API) {
			json_str(j, "api_requests",
				 "machine_config{vcpus 1, mem_mib}, boot_source{kernel path, "
				 "cmdline, PVH}, start");
			json_str(j, "metrics_guest_cmdline", cfg.metrics_cmdline);
		} else if (b == B_QEMU_CONT) {
			json_str(j, "qmp_commands", "qmp_capabilities, cont");
		}
		struct boot_summary s;
		boot_summarize(se, &s);
		json_obj(j, "summary");
		json_int(j, "timed_runs", s.timed);
		json_int(j, "ok", s.ok);
		json_stats(j, "start_to_marker_ms", &s.marker, 3);
		json_stats(j, "start_to_exit_ms", &s.exit, 3);
		if (boot_via_socket[b]) {
			json_stats(j, "start_to_socket_ready_ms", &s.ready, 3);
			json_stats(j, "socket_ready_to_start_sent_ms", &s.configure, 3);
			json_stats(j, "start_sent_to_marker_ms", &s.start_to_marker, 3);
			json_stats(j, "start_request_round_trip_ms", &s.start_reply, 3);
		}
		if (boot_mon[b] == EMBER)
			json_stats(j, "ember_boot_timer_ms", &s.bt, 3);
		if (b == B_EMBER_API) {
			json_int(j, "metrics_runs_ok", s.metrics_ok);
			json_int(j, "metrics_runs_failed", s.metrics_failed);
			json_stats(j, "metrics_instance_start_to_init_ms", &s.m_instance_ms, 3);
			json_stats(j, "metrics_process_start_to_init_ms", &s.m_process_ms, 3);
		}
		json_end_obj(j);
		json_arr(j, "samples");
		for (int k = 0; k < se->n; k++)
			json_boot_sample(j, &se->v[k], (enum boot_id)b);
		json_end_arr(j);
		json_end_obj(j);
	}
	json_end_arr(j);
	json_end_obj(j);
}

struct report {
	const struct bench_machine *mach;
	const char *ember_version, *qemu_version, *qemu_path, *date, *sock_dir;
	double wall_s;
	const struct rt_series *rt;
	int nrt;
	const struct rt_monitor *rt_mons;
	const struct boot_series *boot;
	bool boot_skipped;
	const char *boot_skip_reason;
};

static int write_json(const char *path, const struct report *rep)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "api: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct json j;
	json_begin(&j, f);
	json_obj(&j, NULL);
	json_str(&j, "benchmark", "api");
	json_str(&j, "format_version", BENCH_VERSION);
	json_str(&j, "date", rep->date);
	json_num(&j, "wall_s", rep->wall_s, 1);
	json_bool(&j, "interrupted", interrupted());
	bench_machine_json(&j, "machine", rep->mach);
	json_obj(&j, "versions");
	json_str(&j, "ember", rep->ember_version);
	json_str(&j, "qemu", rep->qemu_version);
	json_end_obj(&j);

	json_obj(&j, "parameters");
	json_int(&j, "runs", cfg.runs);
	json_int(&j, "warmup", cfg.warmup);
	json_int(&j, "metrics_runs", cfg.metrics_runs);
	json_int(&j, "rounds", cfg.rounds);
	json_int(&j, "requests_per_client_and_round", cfg.requests);
	json_int(&j, "warmup_requests_per_connection", cfg.rt_warmup);
	json_int(&j, "clients", cfg.clients);
	json_bool(&j, "quick", cfg.quick);
	json_str(&j, "ember", cfg.ember);
	json_str(&j, "unikernel", cfg.unikernel);
	json_str(&j, "qemu", rep->qemu_path);
	json_str(&j, "qemu_machine", cfg.qemu_machine);
	json_int(&j, "mem_mib", cfg.mem_mib);
	json_int(&j, "vcpus", 1);
	json_str(&j, "cmdline", cfg.cmdline);
	json_str(&j, "metrics_cmdline", cfg.metrics_cmdline);
	json_str(&j, "marker", cfg.marker);
	json_str(&j, "socket_dir", rep->sock_dir);
	json_num(&j, "timeout_s", cfg.timeout_s, 1);
	json_obj(&j, "targets");
	json_num(&j, "ember_describe_p99_ms_below", TARGET_RT_P99_MS, 1);
	json_num(&j, "ember_api_adds_to_start_to_marker_ms_below", TARGET_API_ADDS_MS, 1);
	json_end_obj(&j);
	json_end_obj(&j);

	json_obj(&j, "method");
	json_str(&j, "round_trip",
		 "one thread per client, each with its own connection; every request timed "
		 "(CLOCK_MONOTONIC) from before the send to the decoded reply; the clients of a "
		 "round start together after their untimed warm-up requests; requests_per_s = "
		 "answered / wall time from the first timed request to the last reply");
	json_str(&j, "round_trip_qemu",
		 "QMP serves one client per monitor socket, so QEMU gets one -qmp socket per "
		 "client; each client does the capabilities handshake first");
	json_str(&j, "round_trip_order", "per round: ember 1, qemu 1, ember N, qemu N clients");
	json_str(&j, "boot_start", "CLOCK_MONOTONIC just before fork()");
	json_str(&j, "boot_marker",
		 "the read() of the monitor's stdout pipe that completed the marker");
	json_str(&j, "boot_exit", "waitpid() returned");
	json_str(&j, "boot_client",
		 "a thread started before the fork connects as soon as the socket accepts "
		 "(inotify on its folder; ECONNREFUSED retried every 20 us) and stamps: socket "
		 "ready, configured, start sent, start replied; its stamps count from a moment "
		 "a few microseconds before the launcher's start stamp");
	json_str(&j, "boot_metrics",
		 "separate API boots with metrics_cmdline (the guest keeps running): `metrics` "
		 "polled every 1 ms until the boot timer is written, then `stop`");
	json_str(&j, "boot_order", "ember run, ember API, qemu, qemu -S + cont, run by run");
	json_str(&j, "statistics",
		 "successful timing runs only; median = mean of the middle two for an even "
		 "count; percentiles by nearest rank");
	json_end_obj(&j);

	json_rt(&j, rep->rt, rep->nrt, rep->rt_mons);
	json_boot(&j, rep->boot, rep->boot_skipped, rep->boot_skip_reason);
	json_end_obj(&j);
	json_finish(&j);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "api: error writing %s\n", path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------- main */

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0777) < 0 && errno != EEXIST ? -1 : 0;
}

/* A private folder for the run's sockets (a Unix socket path has at most 107 bytes). */
static char *make_sock_dir(void)
{
	const char *bases[] = {cfg.sock_dir, "/dev/shm", "/tmp"};
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (!bases[i] || (i > 0 && cfg.sock_dir))
			continue;
		char *d = bench_xasprintf("%s/ember-api-bench-XXXXXX", bases[i]);
		if (strlen(d) < 64 && mkdtemp(d))
			return d;
		free(d);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct bench_machine mach;
	bench_machine_probe(&mach);
	char *ember = bench_which(cfg.ember);
	if (!ember) {
		fprintf(stderr, "api: Ember binary %s not found or not executable (--ember)\n",
			cfg.ember);
		return 2;
	}
	cfg.ember = ember;
	char *sock_dir = make_sock_dir();
	if (!sock_dir) {
		fprintf(stderr, "api: cannot create a socket folder under %s: %s\n",
			cfg.sock_dir ? cfg.sock_dir : "/dev/shm or /tmp", strerror(errno));
		return 2;
	}

	char *qemu = NULL;
	char qemu_status[200] = "";
	const char *qemu_name = cfg.qemu ? cfg.qemu : "qemu-system-x86_64";
	if (cfg.no_qemu)
		snprintf(qemu_status, sizeof(qemu_status), "not run (--no-qemu)");
	else if (!(qemu = bench_which(qemu_name)))
		snprintf(qemu_status, sizeof(qemu_status), "not installed (%s not found)",
			 qemu_name);
	char *ver_e[] = {(char *)cfg.ember, "--version", NULL};
	char *ember_version = bench_first_line(ver_e);
	char *qemu_version = NULL;
	if (qemu) {
		char *ver_q[] = {qemu, "--version", NULL};
		qemu_version = bench_first_line(ver_q);
	}

	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char date[64], stamp[32];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %z", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	const char *out = cfg.out;
	char *default_out = NULL;
	if (!out) {
		if (mkdir_p(BENCH_RESULTS_DIR) < 0) {
			fprintf(stderr, "api: cannot create %s: %s\n", BENCH_RESULTS_DIR,
				strerror(errno));
			return 2;
		}
		default_out = bench_xasprintf("%s/api-%s.json", BENCH_RESULTS_DIR, stamp);
		out = default_out;
	}

	/* Round-trip rows: Ember 1, QEMU 1, Ember N, QEMU N (also the order within a round). */
	struct rt_series rt[4];
	memset(rt, 0, sizeof(rt));
	for (int i = 0; i < 4; i++) {
		rt[i].mon = i % 2 ? QEMU : EMBER;
		rt[i].clients = i < 2 ? 1 : cfg.clients;
		rt[i].run = rt[i].mon == EMBER || qemu;
		if (!rt[i].run)
			snprintf(rt[i].status, sizeof(rt[i].status), "%s", qemu_status);
		rt[i].rounds = xcalloc((size_t)cfg.rounds, sizeof(struct rt_round));
	}
	struct rt_monitor rt_mons[NMON];
	memset(rt_mons, 0, sizeof(rt_mons));
	for (int m = 0; m < NMON; m++)
		rt_mons[m].w = (struct ready_wait){.inotify_fd = -1, .cancel_fd = -1};

	/* Boot rows need KVM and the unikernel; without either they are skipped, and say so. */
	struct boot_series boot[NBOOT];
	memset(boot, 0, sizeof(boot));
	char skip_reason[300] = "";
	if (cfg.no_boot)
		snprintf(skip_reason, sizeof(skip_reason), "not run (--no-boot)");
	else if (!mach.have_kvm)
		snprintf(skip_reason, sizeof(skip_reason),
			 "no /dev/kvm on this host (run inside tests/l1/run for these rows)");
	else if (access("/dev/kvm", R_OK | W_OK) != 0)
		snprintf(skip_reason, sizeof(skip_reason), "/dev/kvm: %s", strerror(errno));
	else if (access(cfg.unikernel, R_OK) != 0)
		snprintf(skip_reason, sizeof(skip_reason),
			 "unikernel %s not readable (--unikernel)", cfg.unikernel);
	bool boot_skipped = skip_reason[0] != 0;
	int inotify_fd = -1;
	if (!boot_skipped) {
		boot_setup(boot, qemu, qemu_status, sock_dir);
		inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (inotify_fd >= 0 && inotify_add_watch(inotify_fd, sock_dir, IN_CREATE) < 0) {
			close(inotify_fd);
			inotify_fd = -1;
		}
	}

	bench_catch_signals();
	double t0 = bench_now_ms();
	rt_section(rt, 4, rt_mons, qemu, sock_dir);
	if (!boot_skipped && !interrupted())
		boot_section(boot, inotify_fd);
	double wall_s = (bench_now_ms() - t0) / 1e3;
	if (inotify_fd >= 0)
		close(inotify_fd);
	if (rmdir(sock_dir) < 0)
		fprintf(stderr, "api: removing %s: %s\n", sock_dir, strerror(errno));

	struct report rep = {
	    .mach = &mach,
	    .ember_version = ember_version,
	    .qemu_version = qemu_version,
	    .qemu_path = qemu,
	    .date = date,
	    .sock_dir = sock_dir,
	    .wall_s = wall_s,
	    .rt = rt,
	    .nrt = 4,
	    .rt_mons = rt_mons,
	    .boot = boot,
	    .boot_skipped = boot_skipped,
	    .boot_skip_reason = skip_reason,
	};
	int jr = write_json(out, &rep);

	printf("Ember API benchmark, %s\n", date);
	printf("machine: %s %s, %s (%ld CPUs); /dev/kvm: %s%s\n", mach.kernel_release, mach.arch,
	       mach.cpu_model, mach.cpus, mach.kvm_kind,
	       mach.under_l1 ? "; inside tests/l1 (TCG-emulated L1: times NOT representative)"
			     : "");
	printf("versions: %s; %s%s\n\n", ember_version ? ember_version : "ember: unknown",
	       qemu_version ? "" : "QEMU: ", qemu_version ? qemu_version : qemu_status);
	print_rt_table(rt, 4);
	print_boot_table(boot, boot_skipped, skip_reason);
	print_targets(rt, 4, boot, boot_skipped);
	print_notes(rt, 4, boot, &mach, jr == 0 ? out : NULL);
	printf("Wall time: %.1f s\n", wall_s);

	int failed = 0;
	for (int i = 0; i < 4; i++)
		for (int r = 0; r < rt[i].nrounds; r++)
			failed += rt[i].rounds[r].failure[0] != 0;
	for (int b = 0; b < NBOOT; b++)
		for (int k = 0; k < boot[b].n; k++)
			failed += !boot[b].v[k].ok;
	int status = failed || jr < 0 ? 1 : 0;
	if (interrupted()) {
		fprintf(stderr, "api: interrupted; partial results above\n");
		status = 130;
	} else if (failed) {
		fprintf(stderr, "api: %d round(s) or run(s) failed; see the table and %s\n", failed,
			out);
	} else if (!mach.have_kvm && cfg.skip_if_no_kvm) {
		status = 77;
	}

	for (int i = 0; i < 4; i++) {
		for (int r = 0; r < rt[i].nrounds; r++) {
			for (int c = 0; c < rt[i].rounds[r].clients; c++)
				free(rt[i].rounds[r].lat_us[c]);
			free(rt[i].rounds[r].lat_us);
			free(rt[i].rounds[r].answered_by);
		}
		free(rt[i].rounds);
	}
	for (int m = 0; m < NMON; m++)
		rt_monitor_free(&rt_mons[m]);
	boot_free(boot);
	free(default_out);
	free(sock_dir);
	free(ember_version);
	free(qemu_version);
	free(qemu);
	free(ember);
	return status;
}
