/* benchmarks/boot: boot latency and monitor memory, Ember beside QEMU microvm.
 *
 * Each run forks the monitor with its console on a pipe and takes three CLOCK_MONOTONIC stamps:
 * just before fork(), when the guest's marker line arrives on the pipe, and when waitpid()
 * returns. Ember and QEMU get the same image, command line, memory and vCPUs, and their runs
 * alternate. See benchmarks/README.md for the method, and --help for the options. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

/* What Ember appends to every command line (monitor/vm.c, MONITOR_CMDLINE). QEMU is given the
 * same words explicitly, so both guests see the same command line. */
#define EMBER_CMDLINE_FRAGMENTS                                                                    \
	"console=ttyS0 reboot=k panic=1 pci=off nomodules i8042.noaux i8042.nomux i8042.dumbkbd"
/* Linux on kvm_pvm needs these to reach init (ARCHITECTURE.md, kvm_pvm section). */
#define KVM_PVM_LINUX_ARGS "noxsave clearcpuid=cx16,popcnt,smap ember.skip_int3_selftest"
/* The devices Ember has (serial, i8042, in-kernel PIC/IOAPIC/PIT; no ACPI, RTC, PCI or SMM), and
 * no option ROMs: the cheapest QEMU machine that offers the guest what Ember does. The command
 * line is passed whole (-append), so QEMU must not add to it (auto-kernel-cmdline=off). */
#define QEMU_MACHINE_DEFAULT                                                                       \
	"microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off,smm=off,auto-kernel-cmdline=off"
#define EMBER_GUEST_MAP "memfd:ember-guest-ram"

/* Targets for a human to read beside the numbers; nothing here checks them. */
#define TARGET_MARKER_MS 2.0
#define TARGET_RSS_MIB	 3.0

enum mon { EMBER, QEMU, NMON };
static const char *const mon_name[NMON] = {"ember", "qemu"};

enum kind { K_WARMUP, K_TIMING, K_RSS };
static const char *const kind_name[] = {"warmup", "timing", "rss"};

struct sample {
	enum kind kind;
	int index;
	bool ok;
	char failure[200];
	char note[120];
	double marker_ms, kill_ms, exit_ms;
	int exit_code, term_signal;
	double bt_ms, bt_vcpu_ms, stop_ms, teardown_ms; /* Ember's own report; NAN if absent */
	bool mem_sampled;
	struct bench_mem mem;
	char *out_tail, *err_tail; /* failed runs only */
};

struct series {
	bool run;
	char status[200]; /* why it did not run, when it did not */
	char **argv, **rss_argv;
	char *guest_cmdline, *rss_guest_cmdline;
	struct sample *v;
	int n, cap;
};

struct row {
	const char *id, *title, *short_title;
	bool linux_guest;
	bool skipped;
	char skip_reason[300];
	const char *kernel, *initrd, *ember_protocol, *marker, *cmdline;
	unsigned vcpus, mem_mib;
	int runs, warmup, rss_runs;
	double timeout_s;
	struct series mon[NMON];
};

struct cfg {
	const char *ember, *unikernel, *qemu, *linux_dir, *out;
	const char *cmdline, *rss_cmdline, *linux_cmdline, *marker, *linux_marker, *qemu_machine;
	int runs, linux_runs, rss_runs, warmup;
	unsigned vcpus, mem_mib, linux_vcpus, linux_mem_mib;
	double timeout_s, linux_timeout_s;
	bool quick, no_qemu, skip_if_no_kvm, quiet;
};

static struct cfg cfg = {
    .cmdline = "check=hello",
    .rss_cmdline = "check=counter",
    .linux_cmdline = "",
    .marker = "ember-unikernel: main",
    .linux_marker = "Run /init",
    .qemu_machine = QEMU_MACHINE_DEFAULT,
    .runs = -1,
    .linux_runs = -1,
    .rss_runs = -1,
    .warmup = -1,
    .vcpus = 1,
    .mem_mib = 128,
    .linux_vcpus = 1,
    .linux_mem_mib = 256,
    .timeout_s = 60,
    .linux_timeout_s = 900,
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: boot [options]\n"
	    "\n"
	    "Boot latency and monitor memory: Ember beside QEMU microvm, runs alternated.\n"
	    "Rows: the test unikernel through PVH (Ember, QEMU); through the Linux 64-bit entry\n"
	    "(Ember); with --linux-dir, Linux (bzImage, vmlinux) to 'Run /init' (Ember, QEMU).\n"
	    "Needs /dev/kvm; on a host without it run it inside tests/l1/run.\n"
	    "\n"
	    "Options:\n"
	    "  -n, --runs N            timed runs per monitor and unikernel row (default 30)\n"
	    "      --linux-runs N      timed runs per monitor and Linux row (default 3)\n"
	    "      --rss-runs N        extra runs per monitor and unikernel row that sample "
	    "memory\n"
	    "                          (default 5)\n"
	    "      --warmup N          untimed runs per monitor before each unikernel row (default "
	    "1)\n"
	    "      --quick             smoke test: 3 runs, 1 Linux run, 1 RSS run, 1 warm-up\n"
	    "  -o, --output FILE       JSON results (default %s/boot-DATE.json)\n"
	    "      --ember PATH        Ember binary (default %s)\n"
	    "      --unikernel PATH    test unikernel (default %s)\n"
	    "      --qemu PATH         QEMU binary (default qemu-system-x86_64 from $PATH)\n"
	    "      --no-qemu           Ember only\n"
	    "      --qemu-machine M    QEMU -M value (default %s)\n"
	    "      --linux-dir DIR     folder with bzImage, vmlinux, initramfs.cpio.gz\n"
	    "                          (guest/linux/build.sh --print-dir)\n"
	    "      --vcpus N           unikernel vCPUs (default 1)\n"
	    "      --mem-mib M         unikernel guest RAM (default 128)\n"
	    "      --linux-vcpus N     Linux vCPUs (default 1)\n"
	    "      --linux-mem-mib M   Linux guest RAM (default 256)\n"
	    "      --cmdline S         unikernel command line for timed runs (default \"%s\")\n"
	    "      --rss-cmdline S     unikernel command line for memory runs (default \"%s\")\n"
	    "      --linux-cmdline S   extra Linux command line (kvm_pvm hosts add\n"
	    "                          \"%s\")\n"
	    "      --marker S          unikernel console marker (default \"%s\")\n"
	    "      --linux-marker S    Linux console marker (default \"%s\")\n"
	    "      --timeout S         per unikernel run (default 60)\n"
	    "      --linux-timeout S   per Linux run (default 900)\n"
	    "      --skip-if-no-kvm    exit 77 (skipped) instead of 3 when /dev/kvm is missing\n"
	    "  -q, --quiet             no per-run progress on stderr\n"
	    "  -h, --help              this text\n"
	    "\n"
	    "Every monitor's command line, both guest command lines and every raw sample go to "
	    "the\n"
	    "JSON file. Exit status: 0 all runs succeeded, 1 some run failed (see the table),\n"
	    "2 bad usage, 3 no /dev/kvm, 77 no /dev/kvm with --skip-if-no-kvm, 130 interrupted.\n",
	    BENCH_RESULTS_DIR, BENCH_DEFAULT_EMBER, BENCH_DEFAULT_UNIKERNEL, QEMU_MACHINE_DEFAULT,
	    cfg.cmdline, cfg.rss_cmdline, KVM_PVM_LINUX_ARGS, cfg.marker, cfg.linux_marker);
}

static long parse_num(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "boot: %s: expected a number from %ld to %ld, got '%s'\n", opt, lo,
			hi, s);
		exit(2);
	}
	return v;
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400) {
		fprintf(stderr, "boot: %s: expected seconds, got '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

enum {
	O_LINUX_RUNS = 256,
	O_RSS_RUNS,
	O_WARMUP,
	O_QUICK,
	O_EMBER,
	O_UNIKERNEL,
	O_QEMU,
	O_NO_QEMU,
	O_QEMU_MACHINE,
	O_LINUX_DIR,
	O_VCPUS,
	O_MEM,
	O_LINUX_VCPUS,
	O_LINUX_MEM,
	O_CMDLINE,
	O_RSS_CMDLINE,
	O_LINUX_CMDLINE,
	O_MARKER,
	O_LINUX_MARKER,
	O_TIMEOUT,
	O_LINUX_TIMEOUT,
	O_SKIP,
};

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"runs", required_argument, NULL, 'n'},
	    {"linux-runs", required_argument, NULL, O_LINUX_RUNS},
	    {"rss-runs", required_argument, NULL, O_RSS_RUNS},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"quick", no_argument, NULL, O_QUICK},
	    {"output", required_argument, NULL, 'o'},
	    {"ember", required_argument, NULL, O_EMBER},
	    {"unikernel", required_argument, NULL, O_UNIKERNEL},
	    {"qemu", required_argument, NULL, O_QEMU},
	    {"no-qemu", no_argument, NULL, O_NO_QEMU},
	    {"qemu-machine", required_argument, NULL, O_QEMU_MACHINE},
	    {"linux-dir", required_argument, NULL, O_LINUX_DIR},
	    {"vcpus", required_argument, NULL, O_VCPUS},
	    {"mem-mib", required_argument, NULL, O_MEM},
	    {"linux-vcpus", required_argument, NULL, O_LINUX_VCPUS},
	    {"linux-mem-mib", required_argument, NULL, O_LINUX_MEM},
	    {"cmdline", required_argument, NULL, O_CMDLINE},
	    {"rss-cmdline", required_argument, NULL, O_RSS_CMDLINE},
	    {"linux-cmdline", required_argument, NULL, O_LINUX_CMDLINE},
	    {"marker", required_argument, NULL, O_MARKER},
	    {"linux-marker", required_argument, NULL, O_LINUX_MARKER},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"linux-timeout", required_argument, NULL, O_LINUX_TIMEOUT},
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
		case O_LINUX_RUNS:
			cfg.linux_runs = (int)parse_num("--linux-runs", optarg, 1, 10000);
			break;
		case O_RSS_RUNS:
			cfg.rss_runs = (int)parse_num("--rss-runs", optarg, 0, 10000);
			break;
		case O_WARMUP:
			cfg.warmup = (int)parse_num("--warmup", optarg, 0, 1000);
			break;
		case O_QUICK:
			cfg.quick = true;
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
		case O_LINUX_DIR:
			cfg.linux_dir = optarg;
			break;
		case O_VCPUS:
			cfg.vcpus = (unsigned)parse_num("--vcpus", optarg, 1, 255);
			break;
		case O_MEM:
			cfg.mem_mib = (unsigned)parse_num("--mem-mib", optarg, 2, 1 << 20);
			break;
		case O_LINUX_VCPUS:
			cfg.linux_vcpus = (unsigned)parse_num("--linux-vcpus", optarg, 1, 255);
			break;
		case O_LINUX_MEM:
			cfg.linux_mem_mib =
			    (unsigned)parse_num("--linux-mem-mib", optarg, 2, 1 << 20);
			break;
		case O_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case O_RSS_CMDLINE:
			cfg.rss_cmdline = optarg;
			break;
		case O_LINUX_CMDLINE:
			cfg.linux_cmdline = optarg;
			break;
		case O_MARKER:
			cfg.marker = optarg;
			break;
		case O_LINUX_MARKER:
			cfg.linux_marker = optarg;
			break;
		case O_TIMEOUT:
			cfg.timeout_s = parse_seconds("--timeout", optarg);
			break;
		case O_LINUX_TIMEOUT:
			cfg.linux_timeout_s = parse_seconds("--linux-timeout", optarg);
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
		fprintf(stderr, "boot: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (!*cfg.marker || !*cfg.linux_marker) {
		fprintf(stderr, "boot: a marker cannot be empty\n");
		exit(2);
	}
	/* --quick sets what was not given explicitly. */
	if (cfg.runs < 0)
		cfg.runs = cfg.quick ? 3 : 30;
	if (cfg.linux_runs < 0)
		cfg.linux_runs = cfg.quick ? 1 : 3;
	if (cfg.rss_runs < 0)
		cfg.rss_runs = cfg.quick ? 1 : 5;
	if (cfg.warmup < 0)
		cfg.warmup = 1;
	if (!cfg.ember)
		cfg.ember = BENCH_DEFAULT_EMBER;
	if (!cfg.unikernel)
		cfg.unikernel = BENCH_DEFAULT_UNIKERNEL;
}

/* ------------------------------------------------------------ command lines */

static char **argv_new(void)
{
	char **a = calloc(64, sizeof(*a));
	if (!a)
		exit(1);
	return a;
}

static void argv_add(char **a, const char *s)
{
	int n = 0;
	while (a[n])
		n++;
	if (n >= 62) {
		fprintf(stderr, "boot: internal error: argv too long\n");
		exit(1);
	}
	a[n] = bench_xstrdup(s);
}

static void argv_addf(char **a, const char *fmt, unsigned v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), fmt, v);
	argv_add(a, buf);
}

/* The command line the guest sees under Ember: the user's part, then Ember's fragments, then
 * whatever followed " -- " (monitor/memory cmdline_build()). QEMU is given exactly this. */
static char *guest_cmdline(const char *user)
{
	size_t len = strlen(user), head = len;
	const char *init = NULL;
	if (strncmp(user, "-- ", 3) == 0 || strcmp(user, "--") == 0) {
		init = user;
		head = 0;
	} else {
		const char *dd = strstr(user, " -- ");
		if (!dd && len >= 3 && strcmp(user + len - 3, " --") == 0)
			dd = user + len - 3;
		if (dd) {
			init = dd + 1;
			head = (size_t)(dd - user);
		}
	}
	return bench_xasprintf("%.*s%s%s%s%s", (int)head, user, head ? " " : "",
			       EMBER_CMDLINE_FRAGMENTS, init ? " " : "", init ? init : "");
}

static char **ember_argv(const struct row *r, const char *cmdline)
{
	char **a = argv_new();
	argv_add(a, cfg.ember);
	argv_add(a, "run");
	argv_add(a, "--kernel");
	argv_add(a, r->kernel);
	if (r->initrd) {
		argv_add(a, "--initrd");
		argv_add(a, r->initrd);
	}
	argv_add(a, "--boot-protocol");
	argv_add(a, r->ember_protocol);
	argv_add(a, "--vcpus");
	argv_addf(a, "%u", r->vcpus);
	argv_add(a, "--mem-mib");
	argv_addf(a, "%u", r->mem_mib);
	argv_add(a, "--cmdline");
	argv_add(a, cmdline);
	argv_add(a, "--boot-timer");
	return a;
}

static char **qemu_argv(const char *qemu, const struct row *r, const char *full_cmdline)
{
	char **a = argv_new();
	const char *fixed[][2] = {
	    {"-M", cfg.qemu_machine},  {"-enable-kvm", NULL},
	    {"-cpu", "host"},	       {"-nodefaults", NULL},
	    {"-no-user-config", NULL}, {"-display", "none"},
	    {"-serial", "stdio"},      {"-no-reboot", NULL},
	    {"-device", "i8042"}, /* the guest stops with an i8042 reset, as on Ember */
	};
	argv_add(a, qemu);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		argv_add(a, fixed[i][0]);
		if (fixed[i][1])
			argv_add(a, fixed[i][1]);
	}
	argv_add(a, "-smp");
	argv_addf(a, "%u", r->vcpus);
	argv_add(a, "-m");
	argv_addf(a, "%u", r->mem_mib);
	argv_add(a, "-kernel");
	argv_add(a, r->kernel);
	if (r->initrd) {
		argv_add(a, "-initrd");
		argv_add(a, r->initrd);
	}
	argv_add(a, "-append");
	argv_add(a, full_cmdline);
	return a;
}

static void argv_free(char **a)
{
	for (int i = 0; a && a[i]; i++)
		free(a[i]);
	free(a);
}

static void row_free(struct row *row)
{
	for (int m = 0; m < NMON; m++) {
		struct series *se = &row->mon[m];
		argv_free(se->argv);
		argv_free(se->rss_argv);
		free(se->guest_cmdline);
		free(se->rss_guest_cmdline);
		for (int k = 0; k < se->n; k++) {
			free(se->v[k].out_tail);
			free(se->v[k].err_tail);
		}
		free(se->v);
	}
	if (row->linux_guest) {
		free((char *)row->kernel);
		free((char *)row->initrd);
	}
}

/* --------------------------------------------------------------- samples */

static struct sample *series_add(struct series *s)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, (size_t)s->cap * sizeof(*s->v));
		if (!s->v)
			exit(1);
	}
	struct sample *x = &s->v[s->n++];
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

static void judge(const struct row *row, enum mon m, enum kind kind, bool stop_at_marker,
		  const struct bench_result *r, struct sample *s)
{
	s->marker_ms = r->marker_ms;
	s->kill_ms = r->kill_ms;
	s->exit_ms = r->exit_ms;
	s->exit_code = r->exited && WIFEXITED(r->wait_status) ? WEXITSTATUS(r->wait_status) : -1;
	s->term_signal = r->exited && WIFSIGNALED(r->wait_status) ? WTERMSIG(r->wait_status) : -1;
	s->bt_ms = s->bt_vcpu_ms = s->stop_ms = s->teardown_ms = NAN;
	if (m == EMBER && r->err.p) {
		s->bt_ms = find_ms(r->err.p, "ember: boot time: guest init ");
		s->bt_vcpu_ms = find_ms(r->err.p, "ms after process start (");
		s->stop_ms = find_ms(r->err.p, "ember: exit: guest stopped ");
		s->teardown_ms = find_ms(r->err.p, ", KVM teardown ");
	}
	s->mem_sampled = r->mem.valid || r->mem.error[0];
	s->mem = r->mem;

	char st[96];
	describe_status(r->exited ? r->wait_status : -1, st, sizeof(st));
	double limit = row->timeout_s;
	s->ok = false;
	if (r->unkillable)
		snprintf(s->failure, sizeof(s->failure),
			 "%s; still running 10 s after SIGKILL (left behind)",
			 r->marker_seen ? "killed after the marker" : "no marker");
	else if (r->interrupted)
		snprintf(s->failure, sizeof(s->failure), "interrupted");
	else if (r->timed_out && !r->marker_seen)
		snprintf(s->failure, sizeof(s->failure), "no marker within %g s (killed)", limit);
	else if (r->timed_out)
		snprintf(s->failure, sizeof(s->failure),
			 "marker at %.1f ms, but no exit within %g s (killed)", r->marker_ms,
			 limit);
	else if (!r->marker_seen)
		snprintf(s->failure, sizeof(s->failure), "exited without the marker (%s)", st);
	else if (!stop_at_marker &&
		 !(r->exited && WIFEXITED(r->wait_status) && WEXITSTATUS(r->wait_status) == 0))
		snprintf(s->failure, sizeof(s->failure), "%s after the marker", st);
	else
		s->ok = true;
	if (s->ok && stop_at_marker) {
		if (r->sigkilled)
			snprintf(s->note, sizeof(s->note),
				 "SIGTERM at the marker, SIGKILL after 5 s");
		else if (r->signalled_by_us)
			snprintf(s->note, sizeof(s->note), "SIGTERM at the marker; %s", st);
	}
	if (s->ok && kind == K_RSS && !r->mem.valid) {
		s->ok = false;
		snprintf(s->failure, sizeof(s->failure), "memory sample failed: %s", r->mem.error);
	}
	if (!s->ok) {
		s->out_tail = bench_xstrdup(bench_buf_tail(&r->out, 2048));
		s->err_tail = bench_xstrdup(bench_buf_tail(&r->err, 2048));
	}
}

static void progress(const struct row *row, enum mon m, const struct sample *s, int of)
{
	if (cfg.quiet)
		return;
	fprintf(stderr, "boot: %-18s %-5s %-6s %2d/%-2d ", row->id, mon_name[m], kind_name[s->kind],
		s->index + 1, of);
	if (!s->ok) {
		fprintf(stderr, "FAILED: %s\n", s->failure);
		return;
	}
	fprintf(stderr, "marker %9.2f ms  exit %9.2f ms", s->marker_ms, s->exit_ms);
	if (!isnan(s->bt_ms))
		fprintf(stderr, "  ember boot-timer %.2f ms", s->bt_ms);
	if (s->mem.valid)
		fprintf(stderr, "  RSS-guest %.2f MiB",
			(double)(s->mem.rss_kib - s->mem.guest_rss_kib) / 1024);
	fputc('\n', stderr);
}

static bool interrupted(void)
{
	return bench_interrupted != 0;
}

static void one_run(struct row *row, enum mon m, enum kind kind, int index, int of)
{
	struct series *se = &row->mon[m];
	bool rss = kind == K_RSS;
	bool stop = rss || row->linux_guest;
	struct bench_launch l = {
	    .argv = rss ? se->rss_argv : se->argv,
	    .marker = row->marker,
	    .timeout_s = row->timeout_s,
	    .stop = stop ? BENCH_STOP_AT_MARKER : BENCH_WAIT_EXIT,
	    .kill_grace_s = 5,
	    .sample_mem = rss || row->linux_guest,
	    .guest_map_name = m == EMBER ? EMBER_GUEST_MAP : NULL,
	    .guest_kib = (long)row->mem_mib * 1024,
	};
	struct sample *s = series_add(se);
	s->kind = kind;
	s->index = index;
	struct bench_result r;
	if (bench_launch(&l, &r) < 0) {
		snprintf(s->failure, sizeof(s->failure), "fork/pipe: %s", strerror(errno));
		s->marker_ms = s->kill_ms = s->exit_ms = -1;
		s->bt_ms = s->bt_vcpu_ms = s->stop_ms = s->teardown_ms = NAN;
		s->exit_code = s->term_signal = -1;
	} else {
		judge(row, m, kind, stop, &r, s);
		bench_result_free(&r);
	}
	progress(row, m, s, of);
}

/* Ember and QEMU alternate run by run: E Q E Q ... */
static void run_row(struct row *row)
{
	if (row->skipped)
		return;
	for (int i = 0; i < row->warmup && !interrupted(); i++)
		for (int m = 0; m < NMON && !interrupted(); m++)
			if (row->mon[m].run)
				one_run(row, (enum mon)m, K_WARMUP, i, row->warmup);
	for (int i = 0; i < row->runs && !interrupted(); i++)
		for (int m = 0; m < NMON && !interrupted(); m++)
			if (row->mon[m].run)
				one_run(row, (enum mon)m, K_TIMING, i, row->runs);
	for (int i = 0; i < row->rss_runs && !interrupted(); i++)
		for (int m = 0; m < NMON && !interrupted(); m++)
			if (row->mon[m].run && row->mon[m].rss_argv)
				one_run(row, (enum mon)m, K_RSS, i, row->rss_runs);
}

/* -------------------------------------------------------------- summaries */

struct summary {
	int timed, ok, failed;
	struct bench_stats marker, exit, bt, rss, pss;
	int rss_failed;
};

static void summarize(const struct row *row, const struct series *se, struct summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	int n = se->n ? se->n : 1;
	double *mk = calloc((size_t)n, sizeof(double)), *ex = calloc((size_t)n, sizeof(double));
	double *bt = calloc((size_t)n, sizeof(double)), *rs = calloc((size_t)n, sizeof(double));
	double *ps = calloc((size_t)n, sizeof(double));
	if (!mk || !ex || !bt || !rs || !ps)
		exit(1);
	int nm = 0, nb = 0, nr = 0;
	for (int i = 0; i < se->n; i++) {
		const struct sample *s = &se->v[i];
		if (s->kind == K_TIMING) {
			sum->timed++;
			if (s->ok) {
				sum->ok++;
				mk[nm] = s->marker_ms;
				ex[nm++] = s->exit_ms;
				if (!isnan(s->bt_ms))
					bt[nb++] = s->bt_ms;
			} else {
				sum->failed++;
			}
		}
		/* Memory: the dedicated runs (unikernel) or the timed runs (Linux). */
		bool mem_run = row->linux_guest ? s->kind == K_TIMING : s->kind == K_RSS;
		if (mem_run) {
			if (s->mem.valid) {
				rs[nr] = (double)(s->mem.rss_kib - s->mem.guest_rss_kib) / 1024;
				ps[nr++] = (double)(s->mem.pss_kib - s->mem.guest_pss_kib) / 1024;
			} else {
				sum->rss_failed++;
			}
		}
	}
	bench_stats(mk, nm, &sum->marker);
	bench_stats(ex, nm, &sum->exit);
	bench_stats(bt, nb, &sum->bt);
	bench_stats(rs, nr, &sum->rss);
	bench_stats(ps, nr, &sum->pss);
	free(mk), free(ex), free(bt), free(rs), free(ps);
}

/* ------------------------------------------------------------------- table */

static void cell(double v)
{
	if (isnan(v))
		printf(" %9s", "-");
	else
		printf(" %9.2f", v);
}

static void print_table(struct row *rows, int nrows, const struct bench_machine *mach,
			const char *ember_version, const char *qemu_version,
			const char *qemu_status, const char *date)
{
	printf("Ember boot benchmark, %s\n", date);
	printf("machine: %s %s, %s (%ld CPUs); /dev/kvm: %s%s\n", mach->kernel_release, mach->arch,
	       mach->cpu_model, mach->cpus, mach->kvm_kind,
	       mach->under_l1 ? "; inside tests/l1 (TCG-emulated L1: times NOT representative)"
			      : "");
	printf("versions: %s; %s%s\n", ember_version ? ember_version : "ember: unknown",
	       qemu_version ? "" : "QEMU: ", qemu_version ? qemu_version : qemu_status);
	printf(
	    "runs: %d per monitor and unikernel row (+%d warm-up, +%d memory), %d per Linux row; "
	    "runs alternate Ember, QEMU\n\n",
	    cfg.runs, cfg.warmup, cfg.rss_runs, cfg.linux_runs);

	printf("%-22s %-6s %5s | %-39s | %-39s | %9s | %9s\n", "", "", "", "start -> marker (ms)",
	       "start -> exit (ms)", "ember", "RSS excl.");
	printf("%-22s %-6s %5s | %9s %9s %9s %9s | %9s %9s %9s %9s | %9s | %9s\n", "row", "mon",
	       "ok", "min", "median", "p90", "max", "min", "median", "p90", "max", "boot-tmr",
	       "guest MiB");
	printf(
	    "%.*s\n", 132,
	    "----------------------------------------------------------------------------------"
	    "----------------------------------------------------------------------------------");
	for (int i = 0; i < nrows; i++) {
		struct row *row = &rows[i];
		if (row->skipped) {
			printf("%-22s skipped: %s\n", row->short_title, row->skip_reason);
			continue;
		}
		bool first = true;
		for (int m = 0; m < NMON; m++) {
			const struct series *se = &row->mon[m];
			printf("%-22s %-6s ", first ? row->short_title : "", mon_name[m]);
			first = false;
			if (!se->run) {
				printf("%5s   %s\n", "-", se->status);
				continue;
			}
			struct summary s;
			summarize(row, se, &s);
			char ok[16];
			snprintf(ok, sizeof(ok), "%d/%d", s.ok, s.timed);
			printf("%5s |", ok);
			cell(s.marker.min), cell(s.marker.median), cell(s.marker.p90);
			cell(s.marker.max);
			printf(" |");
			cell(s.exit.min), cell(s.exit.median), cell(s.exit.p90), cell(s.exit.max);
			printf(" |");
			cell(s.bt.n ? s.bt.median : NAN);
			printf(" |");
			cell(s.rss.n ? s.rss.median : NAN);
			printf("\n");
		}
	}
	printf("\n");
}

static void print_targets(struct row *rows, int nrows)
{
	printf("Targets (for reading; nothing checks them):\n");
	for (int i = 0; i < nrows; i++) {
		struct row *row = &rows[i];
		if (row->skipped || row->linux_guest || !row->mon[EMBER].run)
			continue;
		struct summary s;
		summarize(row, &row->mon[EMBER], &s);
		printf("  %-26s Ember start->marker median ", row->title);
		if (s.marker.n)
			printf("%.2f ms", s.marker.median);
		else
			printf("-");
		printf(" (target <= %.0f ms); RSS excl. guest median ", TARGET_MARKER_MS);
		if (s.rss.n)
			printf("%.2f MiB", s.rss.median);
		else
			printf("-");
		printf(" (target < %.0f MiB)\n", TARGET_RSS_MIB);
	}
	printf("\n");
}

static void print_notes(struct row *rows, int nrows, const struct bench_machine *mach,
			const char *json_path)
{
	printf("Method:\n");
	printf(
	    "  start = CLOCK_MONOTONIC just before fork(); marker = the console (stdout pipe) read "
	    "that holds the marker; exit = waitpid() returned.\n");
	printf(
	    "  ember boot-tmr = Ember's own figure (guest boot-timer write, counted from Ember's "
	    "process start after exec), from its stderr.\n");
	printf("  RSS excl. guest = Rss summed over /proc/PID/smaps minus the guest RAM mapping "
	       "(Ember: %s; QEMU: the anonymous mapping of the guest RAM size), at the marker.\n",
	       EMBER_GUEST_MAP);
	printf(
	    "  Unikernel rows sample it in %d separate run(s) per monitor with \"%s\" (the guest "
	    "keeps running, so the sample cannot race the exit), stopped with SIGTERM.\n",
	    cfg.rss_runs, cfg.rss_cmdline);
	bool any_linux = false;
	for (int i = 0; i < nrows; i++)
		any_linux |= rows[i].linux_guest && !rows[i].skipped;
	if (any_linux)
		printf("  Linux rows: each run is stopped with SIGTERM (SIGKILL 5 s later) when "
		       "\"%s\" "
		       "appears, after the memory sample; start -> exit includes both.%s\n",
		       cfg.linux_marker,
		       mach->kvm_pvm ? " kvm_pvm host: \"" KVM_PVM_LINUX_ARGS "\" added." : "");
	printf("  Median of an even count: mean of the middle two; p90: nearest rank.\n");
	if (mach->under_l1)
		printf(
		    "  Run inside tests/l1: KVM nested in a TCG-emulated VM, so every time here is "
		    "emulated; compare nothing to real hosts.\n");

	bool header = false;
	for (int i = 0; i < nrows; i++)
		for (int m = 0; m < NMON; m++) {
			const struct series *se = &rows[i].mon[m];
			for (int k = 0; k < se->n; k++) {
				const struct sample *s = &se->v[k];
				/* A SIGTERM at the marker is the plan for memory and Linux runs
				 * (said above); only a SIGKILL after it is worth a line. */
				if (s->ok && !strstr(s->note, "SIGKILL"))
					continue;
				if (!header)
					printf("\nFailed or notable runs:\n");
				header = true;
				printf("  %s %s %s run %d: %s\n", rows[i].id, mon_name[m],
				       kind_name[s->kind], s->index + 1,
				       s->ok ? s->note : s->failure);
			}
		}
	if (json_path)
		printf("\nJSON: %s\n", json_path);
}

/* -------------------------------------------------------------------- JSON */

static void json_mem(struct json *j, const struct sample *s)
{
	if (!s->mem_sampled) {
		json_null(j, "memory");
		return;
	}
	json_obj(j, "memory");
	json_bool(j, "valid", s->mem.valid);
	if (s->mem.valid) {
		json_int(j, "rss_kib", s->mem.rss_kib);
		json_int(j, "pss_kib", s->mem.pss_kib);
		json_int(j, "guest_ram_rss_kib", s->mem.guest_rss_kib);
		json_int(j, "guest_ram_pss_kib", s->mem.guest_pss_kib);
		json_int(j, "rss_excl_guest_kib", s->mem.rss_kib - s->mem.guest_rss_kib);
		json_int(j, "pss_excl_guest_kib", s->mem.pss_kib - s->mem.guest_pss_kib);
		json_int(j, "guest_ram_mapping_kib", s->mem.guest_size_kib);
		json_int(j, "guest_ram_mappings", s->mem.guest_maps);
		json_str(j, "guest_ram_found_by", s->mem.method);
	} else {
		json_str(j, "error", s->mem.error);
	}
	json_end_obj(j);
}

static void json_sample(struct json *j, const struct sample *s, enum mon m)
{
	json_obj(j, NULL);
	json_str(j, "kind", kind_name[s->kind]);
	json_int(j, "index", s->index);
	json_bool(j, "ok", s->ok);
	json_str(j, "failure", s->ok ? NULL : s->failure);
	json_num_or_null(j, "marker_ms", s->marker_ms, 3);
	json_num_or_null(j, "sigterm_ms", s->kill_ms, 3);
	json_num_or_null(j, "exit_ms", s->exit_ms, 3);
	if (s->exit_code >= 0)
		json_int(j, "exit_code", s->exit_code);
	else
		json_null(j, "exit_code");
	if (s->term_signal >= 0)
		json_int(j, "signal", s->term_signal);
	else
		json_null(j, "signal");
	if (s->note[0])
		json_str(j, "note", s->note);
	if (m == EMBER) {
		json_obj(j, "ember_report");
		json_num(j, "boot_timer_ms", s->bt_ms, 3);
		json_num(j, "boot_timer_after_first_vcpu_entry_ms", s->bt_vcpu_ms, 3);
		json_num(j, "guest_stopped_ms", s->stop_ms, 3);
		json_num(j, "kvm_teardown_ms", s->teardown_ms, 3);
		json_end_obj(j);
	}
	json_mem(j, s);
	if (!s->ok) {
		json_str(j, "stdout_tail", s->out_tail);
		json_str(j, "stderr_tail", s->err_tail);
	}
	json_end_obj(j);
}

static int write_json(const char *path, struct row *rows, int nrows,
		      const struct bench_machine *mach, const char *ember_version,
		      const char *qemu_version, const char *qemu_path, const char *date,
		      double wall_s)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "boot: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct json j;
	json_begin(&j, f);
	json_obj(&j, NULL);
	json_str(&j, "benchmark", "boot");
	json_str(&j, "format_version", BENCH_VERSION);
	json_str(&j, "date", date);
	json_num(&j, "wall_s", wall_s, 1);
	json_bool(&j, "interrupted", bench_interrupted != 0);
	bench_machine_json(&j, "machine", mach);
	json_obj(&j, "versions");
	json_str(&j, "ember", ember_version);
	json_str(&j, "qemu", qemu_version);
	json_end_obj(&j);

	json_obj(&j, "parameters");
	json_int(&j, "runs", cfg.runs);
	json_int(&j, "linux_runs", cfg.linux_runs);
	json_int(&j, "rss_runs", cfg.rss_runs);
	json_int(&j, "warmup", cfg.warmup);
	json_bool(&j, "quick", cfg.quick);
	json_str(&j, "ember", cfg.ember);
	json_str(&j, "unikernel", cfg.unikernel);
	json_str(&j, "qemu", qemu_path);
	json_str(&j, "qemu_machine", cfg.qemu_machine);
	json_str(&j, "linux_dir", cfg.linux_dir);
	json_int(&j, "vcpus", cfg.vcpus);
	json_int(&j, "mem_mib", cfg.mem_mib);
	json_int(&j, "linux_vcpus", cfg.linux_vcpus);
	json_int(&j, "linux_mem_mib", cfg.linux_mem_mib);
	json_str(&j, "cmdline", cfg.cmdline);
	json_str(&j, "rss_cmdline", cfg.rss_cmdline);
	json_str(&j, "linux_cmdline", cfg.linux_cmdline);
	json_str(&j, "ember_cmdline_fragments", EMBER_CMDLINE_FRAGMENTS);
	json_str(&j, "marker", cfg.marker);
	json_str(&j, "linux_marker", cfg.linux_marker);
	json_num(&j, "timeout_s", cfg.timeout_s, 1);
	json_num(&j, "linux_timeout_s", cfg.linux_timeout_s, 1);
	json_obj(&j, "targets");
	json_num(&j, "ember_unikernel_marker_median_ms_at_most", TARGET_MARKER_MS, 1);
	json_num(&j, "ember_rss_excl_guest_mib_below", TARGET_RSS_MIB, 1);
	json_end_obj(&j);
	json_end_obj(&j);

	json_obj(&j, "method");
	json_str(&j, "start", "CLOCK_MONOTONIC just before fork()");
	json_str(&j, "marker", "the read() of the monitor's stdout pipe that completed the marker");
	json_str(&j, "exit", "waitpid() returned");
	json_str(&j, "memory",
		 "at the marker: Rss/Pss summed over /proc/PID/smaps, minus the guest RAM "
		 "mapping(s) (by name for Ember, else the anonymous mapping of the guest RAM size, "
		 "else the largest anonymous mapping at least that large)");
	json_str(&j, "memory_runs",
		 "unikernel rows: separate runs with rss_cmdline, stopped by SIGTERM after the "
		 "sample; Linux rows: the timed runs themselves");
	json_str(&j, "statistics",
		 "successful timing runs only; median = mean of the middle two for an even count; "
		 "p90 = nearest rank");
	json_str(&j, "order", "Ember and QEMU alternate run by run; warm-up runs are not counted");
	json_end_obj(&j);

	json_arr(&j, "rows");
	for (int i = 0; i < nrows; i++) {
		struct row *row = &rows[i];
		json_obj(&j, NULL);
		json_str(&j, "id", row->id);
		json_str(&j, "title", row->title);
		json_bool(&j, "skipped", row->skipped);
		if (row->skipped) {
			json_str(&j, "skip_reason", row->skip_reason);
			json_end_obj(&j);
			continue;
		}
		json_str(&j, "kernel", row->kernel);
		json_str(&j, "initrd", row->initrd);
		json_str(&j, "marker", row->marker);
		json_int(&j, "vcpus", row->vcpus);
		json_int(&j, "mem_mib", row->mem_mib);
		json_str(&j, "ember_boot_protocol", row->ember_protocol);
		json_arr(&j, "monitors");
		for (int m = 0; m < NMON; m++) {
			const struct series *se = &row->mon[m];
			json_obj(&j, NULL);
			json_str(&j, "monitor", mon_name[m]);
			json_bool(&j, "ran", se->run);
			if (!se->run) {
				json_str(&j, "status", se->status);
				json_end_obj(&j);
				continue;
			}
			json_str(&j, "guest_cmdline", se->guest_cmdline);
			json_argv(&j, "command", se->argv);
			if (se->rss_argv) {
				json_str(&j, "memory_guest_cmdline", se->rss_guest_cmdline);
				json_argv(&j, "memory_command", se->rss_argv);
			}
			struct summary s;
			summarize(row, se, &s);
			json_obj(&j, "summary");
			json_int(&j, "timed_runs", s.timed);
			json_int(&j, "ok", s.ok);
			json_int(&j, "failed", s.failed);
			json_stats(&j, "start_to_marker_ms", &s.marker, 3);
			json_stats(&j, "start_to_exit_ms", &s.exit, 3);
			json_stats(&j, "ember_boot_timer_ms", &s.bt, 3);
			json_stats(&j, "rss_excl_guest_mib", &s.rss, 3);
			json_stats(&j, "pss_excl_guest_mib", &s.pss, 3);
			json_int(&j, "memory_samples_failed", s.rss_failed);
			json_end_obj(&j);
			json_arr(&j, "samples");
			for (int k = 0; k < se->n; k++)
				json_sample(&j, &se->v[k], (enum mon)m);
			json_end_arr(&j);
			json_end_obj(&j);
		}
		json_end_arr(&j);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_finish(&j);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "boot: error writing %s\n", path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------- setup */

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

static bool readable(const char *path)
{
	return path && access(path, R_OK) == 0;
}

static void setup_series(struct row *row, enum mon m, const char *qemu)
{
	struct series *se = &row->mon[m];
	se->run = true;
	se->guest_cmdline = guest_cmdline(row->cmdline);
	se->argv =
	    m == EMBER ? ember_argv(row, row->cmdline) : qemu_argv(qemu, row, se->guest_cmdline);
	if (row->rss_runs > 0) {
		se->rss_guest_cmdline = guest_cmdline(cfg.rss_cmdline);
		se->rss_argv = m == EMBER ? ember_argv(row, cfg.rss_cmdline)
					  : qemu_argv(qemu, row, se->rss_guest_cmdline);
	}
}

static void unikernel_row(struct row *row, const char *id, const char *title,
			  const char *short_title, const char *protocol)
{
	row->id = id;
	row->title = title;
	row->short_title = short_title;
	row->kernel = cfg.unikernel;
	row->ember_protocol = protocol;
	row->marker = cfg.marker;
	row->cmdline = cfg.cmdline;
	row->vcpus = cfg.vcpus;
	row->mem_mib = cfg.mem_mib;
	row->runs = cfg.runs;
	row->warmup = cfg.warmup;
	row->rss_runs = cfg.rss_runs;
	row->timeout_s = cfg.timeout_s;
	if (!readable(cfg.unikernel)) {
		row->skipped = true;
		snprintf(row->skip_reason, sizeof(row->skip_reason),
			 "unikernel %s not readable (--unikernel)", cfg.unikernel);
	}
}

static void linux_row(struct row *row, const char *id, const char *title, const char *short_title,
		      const char *image, const char *protocol, const char *linux_cmdline)
{
	row->id = id;
	row->title = title;
	row->short_title = short_title;
	row->linux_guest = true;
	row->ember_protocol = protocol;
	row->marker = cfg.linux_marker;
	row->cmdline = linux_cmdline;
	row->vcpus = cfg.linux_vcpus;
	row->mem_mib = cfg.linux_mem_mib;
	row->runs = cfg.linux_runs;
	row->timeout_s = cfg.linux_timeout_s;
	if (!cfg.linux_dir) {
		row->skipped = true;
		snprintf(row->skip_reason, sizeof(row->skip_reason),
			 "no --linux-dir (guest/linux/build.sh, then --linux-dir "
			 "\"$(guest/linux/build.sh --print-dir)\")");
		return;
	}
	row->kernel = bench_xasprintf("%s/%s", cfg.linux_dir, image);
	row->initrd = bench_xasprintf("%s/initramfs.cpio.gz", cfg.linux_dir);
	const char *missing = !readable(row->kernel)   ? row->kernel
			      : !readable(row->initrd) ? row->initrd
						       : NULL;
	if (missing) {
		row->skipped = true;
		snprintf(row->skip_reason, sizeof(row->skip_reason), "%s is missing", missing);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct bench_machine mach;
	bench_machine_probe(&mach);
	if (!mach.have_kvm) {
		fprintf(stderr,
			"boot: /dev/kvm is missing: this host cannot run KVM guests.%s\n"
			"      Here, run it inside an L1 VM: tests/l1/run --quiet -- %s --quick\n",
			cfg.skip_if_no_kvm ? " Skipped." : "", argv[0]);
		return cfg.skip_if_no_kvm ? 77 : 3;
	}
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		fprintf(stderr, "boot: /dev/kvm: %s\n", strerror(errno));
		return cfg.skip_if_no_kvm ? 77 : 3;
	}
	char *ember = bench_which(cfg.ember);
	if (!ember) {
		fprintf(stderr, "boot: Ember binary %s not found or not executable (--ember)\n",
			cfg.ember);
		return 2;
	}
	cfg.ember = ember;

	char *qemu = NULL;
	char qemu_status[200] = "";
	const char *qemu_name = cfg.qemu ? cfg.qemu : "qemu-system-x86_64";
	if (cfg.no_qemu)
		snprintf(qemu_status, sizeof(qemu_status), "not run (--no-qemu)");
	else if (!(qemu = bench_which(qemu_name)))
		snprintf(qemu_status, sizeof(qemu_status), "not installed (%s not found)",
			 qemu_name);

	char *ver_argv_e[] = {(char *)cfg.ember, "--version", NULL};
	char *ember_version = bench_first_line(ver_argv_e);
	char *qemu_version = NULL;
	if (qemu) {
		char *ver_argv_q[] = {qemu, "--version", NULL};
		qemu_version = bench_first_line(ver_argv_q);
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
			fprintf(stderr, "boot: cannot create %s: %s\n", BENCH_RESULTS_DIR,
				strerror(errno));
			free(ember_version), free(qemu_version), free(qemu), free(ember);
			return 2;
		}
		default_out = bench_xasprintf("%s/boot-%s.json", BENCH_RESULTS_DIR, stamp);
		out = default_out;
	}

	/* Linux on kvm_pvm needs its workarounds, on both monitors alike. */
	char *linux_cmdline = bench_xstrdup(cfg.linux_cmdline);
	if (mach.kvm_pvm) {
		free(linux_cmdline);
		linux_cmdline = *cfg.linux_cmdline ? bench_xasprintf("%s %s", KVM_PVM_LINUX_ARGS,
								     cfg.linux_cmdline)
						   : bench_xstrdup(KVM_PVM_LINUX_ARGS);
	}

	struct row rows[4];
	memset(rows, 0, sizeof(rows));
	int nrows = 0;
	unikernel_row(&rows[nrows++], "unikernel-pvh", "unikernel via PVH", "unikernel PVH", "pvh");
	unikernel_row(&rows[nrows++], "unikernel-linux64", "unikernel via Linux 64-bit",
		      "unikernel Linux 64-bit", "linux");
	linux_row(&rows[nrows++], "linux-bzimage", "Linux bzImage to init", "Linux bzImage",
		  "bzImage", "linux", linux_cmdline);
	linux_row(&rows[nrows++], "linux-vmlinux", "Linux vmlinux (PVH) to init",
		  "Linux vmlinux (PVH)", "vmlinux", "pvh", linux_cmdline);

	for (int i = 0; i < nrows; i++) {
		struct row *row = &rows[i];
		if (row->skipped)
			continue;
		setup_series(row, EMBER, NULL);
		if (strcmp(row->id, "unikernel-linux64") == 0)
			snprintf(row->mon[QEMU].status, sizeof(row->mon[QEMU].status),
				 "not applicable (QEMU boots an ELF kernel only through PVH)");
		else if (!qemu)
			snprintf(row->mon[QEMU].status, sizeof(row->mon[QEMU].status), "%s",
				 qemu_status);
		else
			setup_series(row, QEMU, qemu);
	}

	bench_catch_signals();
	double t0 = bench_now_ms();
	for (int i = 0; i < nrows && !interrupted(); i++)
		run_row(&rows[i]);
	double wall_s = (bench_now_ms() - t0) / 1e3;

	int jr =
	    write_json(out, rows, nrows, &mach, ember_version, qemu_version, qemu, date, wall_s);
	print_table(rows, nrows, &mach, ember_version, qemu_version,
		    qemu ? "version unknown" : qemu_status, date);
	print_targets(rows, nrows);
	print_notes(rows, nrows, &mach, jr == 0 ? out : NULL);
	printf("Wall time: %.1f s\n", wall_s);

	int failed = 0;
	for (int i = 0; i < nrows; i++)
		for (int m = 0; m < NMON; m++)
			for (int k = 0; k < rows[i].mon[m].n; k++)
				failed += !rows[i].mon[m].v[k].ok;
	int status = failed || jr < 0 ? 1 : 0;
	if (interrupted()) {
		fprintf(stderr, "boot: interrupted; partial results above\n");
		status = 130;
	} else if (failed) {
		fprintf(stderr, "boot: %d run(s) failed; see the table and %s\n", failed, out);
	}

	for (int i = 0; i < nrows; i++)
		row_free(&rows[i]);
	free(linux_cmdline);
	free(default_out);
	free(ember_version);
	free(qemu_version);
	free(qemu);
	free(ember);
	return status;
}
