/* benchmarks/snapshot: what snapshots buy. Restore latency (process start -> the guest
 * answering on vsock) for `ember restore`, `ember run` and QEMU's -incoming; clone density
 * (host memory for N clones of one snapshot, with and without KSM, beside N independent
 * guests); spawn rate (restored clones answering per second). Prints tables, writes every raw
 * sample as JSON. See benchmarks/README.md, `snapshot`, and --help. */
#include "snapbench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

#define FORMAT_VERSION "1"

struct sb_cfg sb_cfg = {
    .runs = -1,
    .warmup = 1,
    .mem_mib = 128,
    .timeout_s = 120,
    .density_mem_mib = 256,
    .touch_mib = 64,
    .settle_s = 1,
    .ksm_timeout_s = 120,
    .spawn_n = -1,
    .spawn_rounds = -1,
};
struct sb_env sb_env;

void sb_progress(const char *fmt, ...)
{
	if (sb_cfg.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

bool sb_interrupted(void)
{
	return bench_interrupted != 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: snapshot [options]\n"
	    "\n"
	    "Snapshot benchmarks with the test unikernel (needs /dev/kvm; here, run it inside\n"
	    "tests/l1/run):\n"
	    "  restore  process start -> the guest answering a vsock request: ember restore,\n"
	    "           ember run (cold boot) and QEMU microvm -incoming, runs alternated\n"
	    "  density  host memory for N clones of one snapshot (with and without KSM) beside N\n"
	    "           independent guests booted cold\n"
	    "  spawn    restored clones answering per second\n"
	    "\n"
	    "Options:\n"
	    "      --only LIST         parts to run: restore,density,spawn (default all)\n"
	    "      --quick             smoke test: 3 runs, clones 1,4, spawn 10, 1 round\n"
	    "  -n, --runs N            restore: timed runs per row (default 30)\n"
	    "      --warmup N          restore: untimed runs per row first (default 1)\n"
	    "      --mem-mib M         restore and spawn: guest RAM (default 128)\n"
	    "      --clones LIST       density: guest counts (default 1,10,50,100)\n"
	    "      --density-mem-mib M density: guest RAM (default 256)\n"
	    "      --touch-mib M       density: MiB each guest touches (default 64)\n"
	    "      --no-ksm            density: no KSM rows\n"
	    "      --no-independent    density: no independent-guest rows\n"
	    "      --settle S          density: seconds between the last guest up and the\n"
	    "                          reading (default 1)\n"
	    "      --ksm-timeout S     density: longest wait for KSM's two full scans (120)\n"
	    "      --spawn N           spawn: clones per round (default 100)\n"
	    "      --spawn-rounds R    spawn: rounds (default 3)\n"
	    "  -o, --output FILE       JSON results (default %s/snapshot-DATE.json)\n"
	    "      --dir DIR           where the run's folder (snapshots, sockets) is made\n"
	    "                          (default $TMPDIR, else /tmp); removed afterwards\n"
	    "      --keep              keep that folder\n"
	    "      --ember PATH        Ember binary (default %s)\n"
	    "      --unikernel PATH    test unikernel (default %s)\n"
	    "      --qemu PATH         QEMU binary (default qemu-system-x86_64 from $PATH)\n"
	    "      --no-qemu           no QEMU row\n"
	    "      --no-modprobe       do not try to load vhost_vsock for QEMU's row\n"
	    "      --timeout S         per guest to answer or get ready (default 120)\n"
	    "      --skip-if-no-kvm    exit 77 (skipped) instead of 3 when /dev/kvm is missing\n"
	    "  -q, --quiet             no progress on stderr\n"
	    "  -h, --help              this text\n"
	    "\n"
	    "Exit status: 0 all runs succeeded, 1 some run failed (see the tables), 2 bad usage,\n"
	    "3 no /dev/kvm, 77 no /dev/kvm with --skip-if-no-kvm, 130 interrupted.\n",
	    BENCH_RESULTS_DIR, BENCH_DEFAULT_EMBER, BENCH_DEFAULT_UNIKERNEL);
}

static long parse_num(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "snapshot: %s: expected a number from %ld to %ld, got '%s'\n", opt,
			lo, hi, s);
		exit(2);
	}
	return v;
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 86400) {
		fprintf(stderr, "snapshot: %s: expected seconds, got '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

static void parse_counts(const char *s)
{
	char *copy = bench_xstrdup(s), *save = NULL;
	sb_cfg.nclone_counts = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (sb_cfg.nclone_counts == (int)(sizeof(sb_cfg.clone_counts) / sizeof(int))) {
			fprintf(stderr, "snapshot: --clones: at most %zu counts\n",
				sizeof(sb_cfg.clone_counts) / sizeof(int));
			exit(2);
		}
		sb_cfg.clone_counts[sb_cfg.nclone_counts++] =
		    (int)parse_num("--clones", t, 1, 10000);
	}
	free(copy);
	if (!sb_cfg.nclone_counts) {
		fprintf(stderr, "snapshot: --clones: expected a list like 1,10,50\n");
		exit(2);
	}
	sb_cfg.clone_counts_given = true;
}

static void parse_only(const char *s)
{
	char *copy = bench_xstrdup(s), *save = NULL;
	sb_cfg.do_restore = sb_cfg.do_density = sb_cfg.do_spawn = false;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "restore") == 0)
			sb_cfg.do_restore = true;
		else if (strcmp(t, "density") == 0)
			sb_cfg.do_density = true;
		else if (strcmp(t, "spawn") == 0)
			sb_cfg.do_spawn = true;
		else {
			fprintf(stderr,
				"snapshot: --only: unknown part '%s' (restore, density, "
				"spawn)\n",
				t);
			exit(2);
		}
	}
	free(copy);
}

enum {
	O_ONLY = 256,
	O_QUICK,
	O_WARMUP,
	O_MEM,
	O_CLONES,
	O_DMEM,
	O_TOUCH,
	O_NO_KSM,
	O_NO_INDEP,
	O_SETTLE,
	O_KSM_TIMEOUT,
	O_SPAWN,
	O_SPAWN_ROUNDS,
	O_DIR,
	O_KEEP,
	O_EMBER,
	O_UNIKERNEL,
	O_QEMU,
	O_NO_QEMU,
	O_NO_MODPROBE,
	O_TIMEOUT,
	O_SKIP,
};

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"only", required_argument, NULL, O_ONLY},
	    {"quick", no_argument, NULL, O_QUICK},
	    {"runs", required_argument, NULL, 'n'},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"mem-mib", required_argument, NULL, O_MEM},
	    {"clones", required_argument, NULL, O_CLONES},
	    {"density-mem-mib", required_argument, NULL, O_DMEM},
	    {"touch-mib", required_argument, NULL, O_TOUCH},
	    {"no-ksm", no_argument, NULL, O_NO_KSM},
	    {"no-independent", no_argument, NULL, O_NO_INDEP},
	    {"settle", required_argument, NULL, O_SETTLE},
	    {"ksm-timeout", required_argument, NULL, O_KSM_TIMEOUT},
	    {"spawn", required_argument, NULL, O_SPAWN},
	    {"spawn-rounds", required_argument, NULL, O_SPAWN_ROUNDS},
	    {"output", required_argument, NULL, 'o'},
	    {"dir", required_argument, NULL, O_DIR},
	    {"keep", no_argument, NULL, O_KEEP},
	    {"ember", required_argument, NULL, O_EMBER},
	    {"unikernel", required_argument, NULL, O_UNIKERNEL},
	    {"qemu", required_argument, NULL, O_QEMU},
	    {"no-qemu", no_argument, NULL, O_NO_QEMU},
	    {"no-modprobe", no_argument, NULL, O_NO_MODPROBE},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"skip-if-no-kvm", no_argument, NULL, O_SKIP},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	sb_cfg.do_restore = sb_cfg.do_density = sb_cfg.do_spawn = true;
	int c;
	while ((c = getopt_long(argc, argv, "n:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case O_ONLY:
			parse_only(optarg);
			break;
		case O_QUICK:
			sb_cfg.quick = true;
			break;
		case 'n':
			sb_cfg.runs = (int)parse_num("--runs", optarg, 1, 100000);
			break;
		case O_WARMUP:
			sb_cfg.warmup = (int)parse_num("--warmup", optarg, 0, 1000);
			break;
		case O_MEM:
			sb_cfg.mem_mib = (unsigned)parse_num("--mem-mib", optarg, 4, 1 << 20);
			break;
		case O_CLONES:
			parse_counts(optarg);
			break;
		case O_DMEM:
			sb_cfg.density_mem_mib =
			    (unsigned)parse_num("--density-mem-mib", optarg, 8, 1 << 20);
			break;
		case O_TOUCH:
			sb_cfg.touch_mib = (unsigned)parse_num("--touch-mib", optarg, 1, 1 << 20);
			break;
		case O_NO_KSM:
			sb_cfg.no_ksm = true;
			break;
		case O_NO_INDEP:
			sb_cfg.no_independent = true;
			break;
		case O_SETTLE:
			sb_cfg.settle_s = parse_seconds("--settle", optarg);
			break;
		case O_KSM_TIMEOUT:
			sb_cfg.ksm_timeout_s = parse_seconds("--ksm-timeout", optarg);
			break;
		case O_SPAWN:
			sb_cfg.spawn_n = (int)parse_num("--spawn", optarg, 1, 10000);
			sb_cfg.spawn_given = true;
			break;
		case O_SPAWN_ROUNDS:
			sb_cfg.spawn_rounds = (int)parse_num("--spawn-rounds", optarg, 1, 1000);
			break;
		case 'o':
			sb_cfg.out = optarg;
			break;
		case O_DIR:
			sb_cfg.dir_base = optarg;
			break;
		case O_KEEP:
			sb_cfg.keep = true;
			break;
		case O_EMBER:
			sb_cfg.ember = optarg;
			break;
		case O_UNIKERNEL:
			sb_cfg.unikernel = optarg;
			break;
		case O_QEMU:
			sb_cfg.qemu = optarg;
			break;
		case O_NO_QEMU:
			sb_cfg.no_qemu = true;
			break;
		case O_NO_MODPROBE:
			sb_cfg.no_modprobe = true;
			break;
		case O_TIMEOUT:
			sb_cfg.timeout_s = parse_seconds("--timeout", optarg);
			if (sb_cfg.timeout_s < 1) {
				fprintf(stderr, "snapshot: --timeout: at least 1 s\n");
				exit(2);
			}
			break;
		case O_SKIP:
			sb_cfg.skip_if_no_kvm = true;
			break;
		case 'q':
			sb_cfg.quiet = true;
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
		fprintf(stderr, "snapshot: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (sb_cfg.touch_mib + 4 > sb_cfg.density_mem_mib) {
		fprintf(stderr,
			"snapshot: --touch-mib %u does not fit a %u MiB guest (above its first "
			"2 MiB)\n",
			sb_cfg.touch_mib, sb_cfg.density_mem_mib);
		exit(2);
	}
	/* --quick sets what was not given explicitly. */
	if (sb_cfg.runs < 0)
		sb_cfg.runs = sb_cfg.quick ? 3 : 30;
	if (!sb_cfg.nclone_counts) {
		static const int full[] = {1, 10, 50, 100}, quick[] = {1, 4};
		const int *src = sb_cfg.quick ? quick : full;
		sb_cfg.nclone_counts = sb_cfg.quick ? 2 : 4;
		memcpy(sb_cfg.clone_counts, src, (size_t)sb_cfg.nclone_counts * sizeof(int));
	}
	if (sb_cfg.spawn_n < 0)
		sb_cfg.spawn_n = sb_cfg.quick ? 10 : 100;
	if (sb_cfg.spawn_rounds < 0)
		sb_cfg.spawn_rounds = sb_cfg.quick ? 1 : 3;
	if (!sb_cfg.ember)
		sb_cfg.ember = BENCH_DEFAULT_EMBER;
	if (!sb_cfg.unikernel)
		sb_cfg.unikernel = BENCH_DEFAULT_UNIKERNEL;
}

/* ------------------------------------------------------------------ setup */

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

static int run_quiet(char *const *argv)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* /dev/vhost-vsock for QEMU's row: there, or after modprobe (the L1 VM keeps its modules
 * under EMBER_L1_MODROOT). */
static void probe_vhost_vsock(void)
{
	const char *dev = "/dev/vhost-vsock";
	const char *how = "present";
	if (access(dev, F_OK) != 0 && !sb_cfg.no_modprobe) {
		char *a1[] = {"modprobe", "vhost_vsock", NULL};
		run_quiet(a1);
		const char *root = getenv("EMBER_L1_MODROOT");
		if (access(dev, F_OK) != 0 && root && *root) {
			char *a2[] = {"modprobe", "-d", (char *)root, "vhost_vsock", NULL};
			run_quiet(a2);
		}
		how = "after modprobe vhost_vsock";
	}
	if (access(dev, R_OK | W_OK) == 0) {
		sb_env.have_vhost_vsock = true;
		snprintf(sb_env.vhost_vsock_status, sizeof(sb_env.vhost_vsock_status), "%s %s", dev,
			 how);
	} else {
		snprintf(sb_env.vhost_vsock_status, sizeof(sb_env.vhost_vsock_status), "%s: %s%s",
			 dev, strerror(errno),
			 sb_cfg.no_modprobe ? " (--no-modprobe)" : ", even after modprobe");
	}
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = bench_xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ------------------------------------------------------------------ output */

static void print_header(const char *date, const char *ember_version, const char *qemu_version)
{
	const struct bench_machine *m = &sb_env.mach;
	printf("Ember snapshot benchmark, %s\n", date);
	printf("machine: %s %s, %s (%ld CPUs); /dev/kvm: %s%s\n", m->kernel_release, m->arch,
	       m->cpu_model, m->cpus, m->kvm_kind,
	       m->under_l1 ? "; inside tests/l1 (TCG-emulated L1: times NOT representative)" : "");
	struct sb_meminfo mi;
	sb_meminfo_read(&mi);
	printf("memory available: %.0f MiB; versions: %s; %s%s\n", mi.mem_available_kib / 1024.0,
	       ember_version ? ember_version : "ember: unknown",
	       qemu_version ? "" : "QEMU: ", qemu_version ? qemu_version : sb_env.qemu_status);
	printf("vhost-vsock: %s; run folder: %s\n\n", sb_env.vhost_vsock_status, sb_env.dir);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_machine_probe(&sb_env.mach);
	if (!sb_env.mach.have_kvm || access("/dev/kvm", R_OK | W_OK) != 0) {
		fprintf(stderr,
			"snapshot: /dev/kvm is missing or not usable here.%s\n"
			"      On a host without it, run inside an L1 VM:\n"
			"      flock /tmp/ember-l1-run.lock tests/l1/run --quiet -- %s --quick\n",
			sb_cfg.skip_if_no_kvm ? " Skipped." : "", argv[0]);
		return sb_cfg.skip_if_no_kvm ? 77 : 3;
	}
	char *ember = bench_which(sb_cfg.ember);
	if (!ember) {
		fprintf(stderr, "snapshot: Ember binary %s not found or not executable (--ember)\n",
			sb_cfg.ember);
		return 2;
	}
	sb_cfg.ember = ember;
	if (access(sb_cfg.unikernel, R_OK) != 0) {
		fprintf(stderr, "snapshot: unikernel %s: %s (--unikernel)\n", sb_cfg.unikernel,
			strerror(errno));
		free(ember);
		return 2;
	}
	raise_fd_limit();

	const char *qemu_name = sb_cfg.qemu ? sb_cfg.qemu : "qemu-system-x86_64";
	if (sb_cfg.no_qemu)
		snprintf(sb_env.qemu_status, sizeof(sb_env.qemu_status), "not run (--no-qemu)");
	else if (!(sb_env.qemu = bench_which(qemu_name)))
		snprintf(sb_env.qemu_status, sizeof(sb_env.qemu_status),
			 "not installed (%s not found)", qemu_name);
	if (sb_env.qemu && sb_cfg.do_restore)
		probe_vhost_vsock();
	else
		snprintf(sb_env.vhost_vsock_status, sizeof(sb_env.vhost_vsock_status),
			 "not needed");

	const char *base = sb_cfg.dir_base ? sb_cfg.dir_base : getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(sb_env.dir, sizeof(sb_env.dir), "%s/ember-snapbench-XXXXXX", base);
	if (!mkdtemp(sb_env.dir)) {
		fprintf(stderr, "snapshot: cannot make a folder in %s: %s (--dir)\n", base,
			strerror(errno));
		return 2;
	}

	char *ver_e[] = {(char *)sb_cfg.ember, "--version", NULL};
	char *ember_version = bench_first_line(ver_e);
	char *qemu_version = NULL;
	if (sb_env.qemu) {
		char *ver_q[] = {sb_env.qemu, "--version", NULL};
		qemu_version = bench_first_line(ver_q);
	}
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	char date[64], stamp[32];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %z", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	char *default_out = NULL;
	const char *out = sb_cfg.out;
	if (!out) {
		if (mkdir_p(BENCH_RESULTS_DIR) < 0) {
			fprintf(stderr, "snapshot: cannot create %s: %s\n", BENCH_RESULTS_DIR,
				strerror(errno));
			return 2;
		}
		default_out = bench_xasprintf("%s/snapshot-%s.json", BENCH_RESULTS_DIR, stamp);
		out = default_out;
	}

	bench_catch_signals();
	double t0 = bench_now_ms();
	struct sb_restore_result *rr = NULL;
	struct sb_density_result *dr = NULL;
	struct sb_spawn_result *sr = NULL;
	if (sb_cfg.do_restore && !sb_interrupted())
		rr = sb_restore_run();
	if (sb_cfg.do_spawn && !sb_interrupted())
		sr = sb_spawn_run();
	if (sb_cfg.do_density && !sb_interrupted())
		dr = sb_density_run();
	double wall_s = (bench_now_ms() - t0) / 1e3;

	int jr = -1;
	FILE *f = fopen(out, "we");
	if (!f) {
		fprintf(stderr, "snapshot: cannot write %s: %s\n", out, strerror(errno));
	} else {
		struct json j;
		json_begin(&j, f);
		json_obj(&j, NULL);
		json_str(&j, "benchmark", "snapshot");
		json_str(&j, "format_version", FORMAT_VERSION);
		json_str(&j, "date", date);
		json_num(&j, "wall_s", wall_s, 1);
		json_bool(&j, "interrupted", sb_interrupted());
		bench_machine_json(&j, "machine", &sb_env.mach);
		json_obj(&j, "versions");
		json_str(&j, "ember", ember_version);
		json_str(&j, "qemu", qemu_version);
		json_end_obj(&j);
		json_obj(&j, "parameters");
		json_bool(&j, "quick", sb_cfg.quick);
		json_str(&j, "ember", sb_cfg.ember);
		json_str(&j, "unikernel", sb_cfg.unikernel);
		json_str(&j, "qemu", sb_env.qemu);
		json_str(&j, "qemu_status", sb_env.qemu ? "found" : sb_env.qemu_status);
		json_str(&j, "vhost_vsock", sb_env.vhost_vsock_status);
		json_str(&j, "run_folder", sb_env.dir);
		json_num(&j, "timeout_s", sb_cfg.timeout_s, 1);
		json_end_obj(&j);
		if (rr)
			sb_restore_json(&j, rr);
		if (sr)
			sb_spawn_json(&j, sr);
		if (dr)
			sb_density_json(&j, dr);
		json_end_obj(&j);
		json_finish(&j);
		int bad = ferror(f);
		jr = fclose(f) != 0 || bad ? -1 : 0;
		if (jr < 0)
			fprintf(stderr, "snapshot: error writing %s\n", out);
	}

	print_header(date, ember_version, qemu_version);
	if (rr)
		sb_restore_print(rr);
	if (sr)
		sb_spawn_print(sr);
	if (dr)
		sb_density_print(dr);
	if (sb_env.mach.under_l1)
		printf("Inside tests/l1: KVM nested in a TCG-emulated VM with %ld CPUs; every time "
		       "above is emulated and the memory is the L1 VM's. Compare nothing to real "
		       "hosts.\n",
		       sb_env.mach.cpus);
	if (jr == 0)
		printf("JSON: %s\n", out);
	printf("Wall time: %.1f s\n", wall_s);

	int failed = (rr ? sb_restore_failures(rr) : 0) + (dr ? sb_density_failures(dr) : 0) +
		     (sr ? sb_spawn_failures(sr) : 0);
	int status = failed || jr < 0 ? 1 : 0;
	if (sb_interrupted()) {
		fprintf(stderr, "snapshot: interrupted; partial results above\n");
		status = 130;
	} else if (failed) {
		fprintf(stderr, "snapshot: %d run(s) or row(s) failed; see the tables and %s\n",
			failed, out);
	}
	if (sb_cfg.keep)
		printf("Kept: %s\n", sb_env.dir);
	else
		remove_dir(sb_env.dir);
	sb_restore_free(rr);
	sb_density_free(dr);
	sb_spawn_free(sr);
	free(default_out);
	free(ember_version);
	free(qemu_version);
	free(sb_env.qemu);
	free(ember);
	return status;
}
