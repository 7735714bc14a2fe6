/* ember-jailer end to end on this host, without KVM: jails built under the build folder around
 * jail_probe (tests/unit/test_jailer_probe.c), a static program that reports what it sees from
 * inside. Needs root, as the jailer does. */
#include "tests/unit/test_jailer_util.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define UID	  "10042"
#define GID	  "10043"
#define TIMEOUT_S 60.0

/* Test processes stop at their first failed assertion without freeing what they hold; leak
 * reports there are noise. The jailer, a process of its own, is still checked for leaks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

static void require_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("ember-jailer needs root; these tests run it");
}

/* ember-jailer --id ID --exec-file PROBE --uid --gid --chroot-base BASE EXTRA... -- PROBE_ARGS */
static void jail_argv(const char **argv, const char *base, const char *id, const char *const *extra,
		      const char *const *probe_args)
{
	unsigned n = 0;
	const char *fixed[] = {"--id",	UID, "--exec-file",   NULL, "--uid", UID,
			       "--gid", GID, "--chroot-base", NULL};
	fixed[1] = id;
	fixed[3] = probe_bin();
	fixed[9] = base;
	for (unsigned i = 0; i < 10; i++)
		argv[n++] = fixed[i];
	for (unsigned i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n++] = "--";
	for (unsigned i = 0; probe_args && probe_args[i]; i++)
		argv[n++] = probe_args[i];
	argv[n] = NULL;
}

static void run_probe(struct jrun *r, const char *base, const char *id, const char *const *extra,
		      const char *const *probe_args)
{
	const char *argv[64];
	jail_argv(argv, base, id, extra, probe_args);
	jrun(r, argv, TIMEOUT_S);
}

static char *path_in(const char *base, const char *id, const char *rest)
{
	char *p;
	cr_assert(asprintf(&p, "%s/ember/%s%s", base, id, rest) > 0);
	return p;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* The probe's host pid: the jailer's only child. */
static pid_t child_of(pid_t parent)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	cr_assert(fgets(buf, sizeof(buf), f) != NULL, "the jailer has no child");
	fclose(f);
	return (pid_t)atoi(buf);
}

Test(jailer_jail, the_monitor_sees_only_its_binary_and_device_nodes)
{
	require_root();
	char *base = jail_test_base("files");
	struct jrun r;
	run_probe(&r, base, "files", NULL, NULL);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	/* Everything under / in listing order does not matter: compare as a set. */
	const char *want[] = {
	    "file=/test_jailer_probe f 555 0:0",	  "file=/dev d 755 0:0",
	    "file=/dev/kvm c 600 10042:10043 10:232",	  "file=/dev/net d 755 0:0",
	    "file=/dev/net/tun c 600 10042:10043 10:200", "file=/dev/urandom c 600 10042:10043 1:9",
	};
	unsigned seen = 0;
	for (const char *line = r.out; *line;
	     line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0)) {
		size_t len = strcspn(line, "\n");
		if (strncmp(line, "file=", 5) != 0)
			continue;
		bool known = false;
		for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			if (strlen(want[i]) == len && strncmp(line, want[i], len) == 0)
				known = true;
		/* The binary may be a hard link to the build's file (mode 755) or a copy (555). */
		if (!known && strncmp(line, "file=/test_jailer_probe f 755 0:0", len) == 0)
			known = true;
		cr_assert(known, "unexpected entry in the jail: %.*s\n%s", (int)len, line,
			  jrun_describe(&r));
		seen++;
	}
	cr_assert(eq(u32, seen, 6), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "root_is_top"), "1"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cwd"), "/"));
	cr_assert(eq(str, (char *)probe_value(r.out, "read_urandom"), "ok"));
	/* Without a kvm module here the node cannot open, but never for lack of permission. */
	cr_assert(ne(str, (char *)probe_value(r.out, "open_kvm"), "Permission denied"));
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, the_monitor_is_pid_1_as_uid_gid_with_no_privileges)
{
	require_root();
	char *base = jail_test_base("creds");
	struct jrun r;
	run_probe(&r, base, "creds", NULL, NULL);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "pid"), "1"), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "ppid"), "0"));
	cr_assert(eq(str, (char *)probe_value(r.out, "uid"), UID "," UID "," UID));
	cr_assert(eq(str, (char *)probe_value(r.out, "gid"), GID "," GID "," GID));
	cr_assert(eq(str, (char *)probe_value(r.out, "groups"), "0"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cap_eff"), "0000000000000000"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cap_prm"), "0000000000000000"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cap_inh"), "0000000000000000"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cap_bounding_count"), "0"));
	cr_assert(eq(str, (char *)probe_value(r.out, "cap_ambient_count"), "0"));
	cr_assert(eq(str, (char *)probe_value(r.out, "no_new_privs"), "1"));
	/* NOROOT, NO_SETUID_FIXUP and KEEP_CAPS locked, NO_CAP_AMBIENT_RAISE set and locked. */
	cr_assert(eq(str, (char *)probe_value(r.out, "securebits"), "0xeb"));
	cr_assert(eq(str, (char *)probe_value(r.out, "env_count"), "0"));
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, rlimits_are_set)
{
	require_root();
	char *base = jail_test_base("rlimits");
	struct jrun r;
	run_probe(&r, base, "rlimits", NULL, NULL);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "rlimit_nofile"), "2048"));
	cr_assert(eq(str, (char *)probe_value(r.out, "rlimit_core"), "0"));
	jrun_free(&r);
	const char *extra[] = {"--resource-limit", "no-file=100", "--resource-limit",
			       "fsize=1048576", NULL};
	run_probe(&r, base, "rlimits", extra, NULL);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "rlimit_nofile"), "100"));
	cr_assert(eq(str, (char *)probe_value(r.out, "rlimit_fsize"), "1048576"));
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, only_stdio_survives_into_the_jail)
{
	require_root();
	char *base = jail_test_base("fds");
	int leak = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert(ge(int, leak, 3));
	const char *argv[64];
	jail_argv(argv, base, "fds", NULL, NULL);
	struct jrun r;
	jrun_start(&r, argv, leak);
	jrun_close_stdin(&r);
	jrun_finish(&r, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "fds"), "0,1,2,"), "%s", jrun_describe(&r));
	jrun_free(&r);
	close(leak);
	remove_tree(base);
}

Test(jailer_jail, the_jailer_exits_with_the_monitors_exit_code)
{
	require_root();
	char *base = jail_test_base("exit");
	struct jrun r;
	const char *probe_args[] = {"exit", "37", NULL};
	run_probe(&r, base, "exit", NULL, probe_args);
	cr_assert(eq(int, r.exit_code, 37), "%s", jrun_describe(&r));
	cr_assert(eq(str, r.err, ""), "the jailer adds nothing on a normal exit");
	jrun_free(&r);

	/* Killed from outside: 128 + the signal, and the jailer says so. */
	const char *argv[64], *wait_args[] = {"wait-stdin", NULL};
	jail_argv(argv, base, "exit", NULL, wait_args);
	jrun_start(&r, argv, -1);
	cr_assert(jrun_wait_for(&r, "waiting", TIMEOUT_S), "%s", jrun_describe(&r));
	cr_assert(eq(int, kill(child_of(r.pid), SIGKILL), 0));
	jrun_finish(&r, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 128 + SIGKILL), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "the monitor was killed by signal 9"), NULL), "%s",
		  jrun_describe(&r));
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, signals_to_the_jailer_reach_the_monitor)
{
	require_root();
	char *base = jail_test_base("signal");
	const char *argv[64], *probe_args[] = {"wait-signal", NULL};
	jail_argv(argv, base, "signal", NULL, probe_args);
	struct jrun r;
	jrun_start(&r, argv, -1);
	cr_assert(jrun_wait_for(&r, "waiting", TIMEOUT_S), "%s", jrun_describe(&r));
	cr_assert(eq(int, kill(r.pid, SIGTERM), 0));
	jrun_finish(&r, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 128 + SIGTERM), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "signal"), "15"));
	char *mark = path_in(base, "signal", "/root/got-signal-15");
	cr_assert(exists(mark), "the monitor, as uid " UID ", writes in its root");
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, an_existing_jail_root_is_accepted_and_reused)
{
	require_root();
	char *base = jail_test_base("existing");
	char *root = path_in(base, "existing", "/root");
	char *ember_dir = path_in(base, "", "");
	ember_dir[strlen(ember_dir) - 1] = 0;
	cr_assert(mkdir(ember_dir, 0755) == 0 && mkdir(path_in(base, "existing", ""), 0755) == 0 &&
		  mkdir(root, 0755) == 0);
	char *kernel = path_in(base, "existing", "/root/kernel.elf");
	int fd = open(kernel, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert(ge(int, fd, 0));
	close(fd);
	for (int round = 0; round < 2; round++) {
		struct jrun r;
		run_probe(&r, base, "existing", NULL, NULL);
		cr_assert(eq(int, r.exit_code, 0), "round %d: %s", round, jrun_describe(&r));
		cr_assert(ne(ptr, strstr(r.out, "file=/kernel.elf f 644 0:0"), NULL), "%s",
			  jrun_describe(&r));
		cr_assert(ne(ptr, strstr(r.out, "file=/dev/kvm c 600"), NULL));
		jrun_free(&r);
	}
	remove_tree(base);
}

/* A launch that fails at `step` says so, exits 125 and leaves no jail behind. */
static void assert_failed_cleanly(const char *name, const char *const *extra, const char *step,
				  const char *detail)
{
	char *base = jail_test_base(name);
	struct jrun r;
	run_probe(&r, base, name, extra, NULL);
	cr_assert(eq(int, r.exit_code, 125), "%s", jrun_describe(&r));
	char want[256];
	snprintf(want, sizeof(want), "ember-jailer: %s failed: ", step);
	cr_assert(ne(ptr, strstr(r.err, want), NULL), "wanted \"%s\":\n%s", want,
		  jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, detail), NULL), "wanted \"%s\":\n%s", detail,
		  jrun_describe(&r));
	cr_assert(eq(str, r.out, ""), "the monitor never ran");
	char *ember_dir = path_in(base, "", "");
	cr_assert(not(exists(ember_dir)), "%s was left behind", ember_dir);
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, a_failing_step_leaves_no_half_made_jail)
{
	require_root();
	/* In the jailer: the cgroup write fails after the jail and its cgroups were made. */
	char parent[64];
	snprintf(parent, sizeof(parent), "ember-unit-fail-%d", (int)getpid());
	const char *cgroup[] = {"--cgroup", "pids.max=lots", "--parent-cgroup", parent, NULL};
	assert_failed_cleanly("fail-cgroup", cgroup, "cgroups", "pids.max");
	const char *layouts[] = {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	for (unsigned i = 0; i < 3; i++) {
		char dir[128];
		snprintf(dir, sizeof(dir), "%s/%s", layouts[i], parent);
		cr_assert(not(exists(dir)), "cgroup %s was left behind", dir);
	}
	/* In the child, after the jail was entered: RLIMIT_NOFILE above fs.nr_open. */
	const char *rlimit[] = {"--resource-limit", "no-file=1073741824", NULL};
	assert_failed_cleanly("fail-rlimit", rlimit, "resource limits",
			      "setrlimit no-file 1073741824");
}

Test(jailer_jail, a_failure_in_an_existing_root_keeps_what_was_there)
{
	require_root();
	char *base = jail_test_base("fail-existing");
	char *root = path_in(base, "fail-existing", "/root");
	cr_assert(mkdir(path_in(base, "", ""), 0755) == 0 &&
		  mkdir(path_in(base, "fail-existing", ""), 0755) == 0 && mkdir(root, 0755) == 0);
	char *disk = path_in(base, "fail-existing", "/root/disk.img");
	int fd = open(disk, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	cr_assert(ge(int, fd, 0));
	close(fd);
	const char *extra[] = {"--resource-limit", "no-file=1073741824", NULL};
	struct jrun r;
	run_probe(&r, base, "fail-existing", extra, NULL);
	cr_assert(eq(int, r.exit_code, 125), "%s", jrun_describe(&r));
	cr_assert(exists(disk), "the platform's file stays");
	cr_assert(not(exists(path_in(base, "fail-existing", "/root/dev"))), "no /dev left");
	cr_assert(not(exists(path_in(base, "fail-existing", "/root/test_jailer_probe"))));
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, a_nodev_chroot_base_is_refused)
{
	require_root();
	char *base = jail_test_base("nodev");
	cr_assert(eq(int, unshare(CLONE_NEWNS), 0));
	cr_assert(eq(int, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0));
	cr_assert(eq(int, mount("nodev-test", base, "tmpfs", MS_NODEV, "mode=0755"), 0));
	struct jrun r;
	run_probe(&r, base, "nodev", NULL, NULL);
	cr_assert(eq(int, r.exit_code, 125), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "jail filesystem failed"), NULL), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "mounted nodev"), NULL), "%s", jrun_describe(&r));
	cr_assert(not(exists(path_in(base, "", ""))));
	jrun_free(&r);
	umount2(base, MNT_DETACH);
	remove_tree(base);
}

Test(jailer_jail, one_monitor_per_id_at_a_time)
{
	require_root();
	char *base = jail_test_base("busy");
	const char *argv[64], *wait_args[] = {"wait-stdin", NULL};
	jail_argv(argv, base, "busy", NULL, wait_args);
	struct jrun first, second;
	jrun_start(&first, argv, -1);
	cr_assert(jrun_wait_for(&first, "waiting", TIMEOUT_S), "%s", jrun_describe(&first));
	run_probe(&second, base, "busy", NULL, NULL);
	cr_assert(eq(int, second.exit_code, 125), "%s", jrun_describe(&second));
	cr_assert(ne(ptr, strstr(second.err, "jail busy is in use"), NULL), "%s",
		  jrun_describe(&second));
	/* The refused launch took nothing away from the running jail. */
	cr_assert(exists(path_in(base, "busy", "/root/dev/kvm")));
	jrun_close_stdin(&first);
	jrun_finish(&first, TIMEOUT_S);
	cr_assert(eq(int, first.exit_code, 0), "%s", jrun_describe(&first));
	jrun_free(&first);
	jrun_free(&second);
	remove_tree(base);
}

Test(jailer_jail, the_monitor_joins_the_given_network_namespace)
{
	require_root();
	char *base = jail_test_base("netns");
	/* A process that holds a network namespace with one extra interface. */
	int ready[2];
	cr_assert(eq(int, pipe(ready), 0));
	pid_t holder = fork();
	cr_assert(ge(int, holder, 0));
	if (holder == 0) {
		close(ready[0]);
		if (unshare(CLONE_NEWNET) != 0 ||
		    system("ip tuntap add jtap0 mode tap 2>/dev/null") != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	if (read(ready[0], &c, 1) != 1) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
		remove_tree(base);
		cr_skip_test("cannot make a network namespace with a tap interface here");
	}
	char netns[64];
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", (int)holder);
	const char *extra[] = {"--netns", netns, NULL};
	struct jrun r;
	run_probe(&r, base, "netns", extra, NULL);
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(eq(str, (char *)probe_value(r.out, "interfaces"), "lo,jtap0,"), "%s",
		  jrun_describe(&r));
	jrun_free(&r);

	const char *file_not_ns[] = {"--netns", "/dev/null", NULL};
	run_probe(&r, base, "netns", file_not_ns, NULL);
	cr_assert(eq(int, r.exit_code, 2), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "--netns /dev/null: not a network namespace"), NULL), "%s",
		  jrun_describe(&r));
	jrun_free(&r);
	remove_tree(base);
}

/* The folder of `controller` for process `pid`, from /proc/PID/cgroup and the usual mounts:
 * /sys/fs/cgroup/<controller list> for v1, /sys/fs/cgroup or /sys/fs/cgroup/unified for v2. */
static char *cgroup_dir_of(pid_t pid, const char *controller)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL);
	char *found = NULL;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *list = strchr(line, ':') + 1;
		char *cg = strchr(list, ':');
		*cg++ = 0;
		char *dir;
		if (*list) {
			char comma[128];
			snprintf(comma, sizeof(comma), ",%s,", list);
			char want[64];
			snprintf(want, sizeof(want), ",%s,", controller);
			if (!strstr(comma, want))
				continue;
			cr_assert(asprintf(&dir, "/sys/fs/cgroup/%s%s", list, cg) > 0);
		} else {
			cr_assert(asprintf(&dir, "/sys/fs/cgroup%s%s",
					   exists("/sys/fs/cgroup/unified/cgroup.procs")
					       ? "/unified"
					       : "",
					   cg) > 0);
			char file[600];
			snprintf(file, sizeof(file), "%s/%s.max", dir, controller);
			if (!exists(file)) {
				free(dir);
				continue;
			}
		}
		found = dir;
	}
	fclose(f);
	cr_assert(found != NULL, "no %s cgroup for pid %d", controller, (int)pid);
	return found;
}

static char *read_line_of(const char *dir, const char *file)
{
	char path[1024];
	static char value[256];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "r");
	cr_assert(f != NULL, "%s: %s", path, strerror(errno));
	cr_assert(fgets(value, sizeof(value), f) != NULL);
	fclose(f);
	value[strcspn(value, "\n")] = 0;
	return value;
}

Test(jailer_jail, cgroup_limits_are_in_force)
{
	require_root();
	char *base = jail_test_base("cgroups");
	char parent[64];
	snprintf(parent, sizeof(parent), "ember-unit-%d", (int)getpid());
	const char *extra[] = {"--cgroup",	  "pids.max=4", "--cgroup", "cpu.max=50000 100000",
			       "--parent-cgroup", parent,	NULL};
	const char *argv[64], *probe_args[] = {"forks", "8", "wait-stdin", NULL};
	jail_argv(argv, base, "cgroups", extra, probe_args);
	struct jrun r;
	jrun_start(&r, argv, -1);
	bool waiting = jrun_wait_for(&r, "waiting", TIMEOUT_S);
	if (!waiting && strstr(r.err, "offers the"))
		cr_skip_test("this host lacks a pids or cpu cgroup controller: %s", r.err);
	cr_assert(waiting, "%s", jrun_describe(&r));
	/* The probe counts itself against pids.max = 4: three children, not eight. */
	cr_assert(eq(str, (char *)probe_value(r.out, "forks_made"), "3"), "%s", jrun_describe(&r));
	pid_t monitor = child_of(r.pid);
	char *pids = cgroup_dir_of(monitor, "pids");
	char *cpu = cgroup_dir_of(monitor, "cpu");
	char suffix[128];
	snprintf(suffix, sizeof(suffix), "/%s/cgroups", parent);
	cr_assert(ne(ptr, strstr(pids, suffix), NULL), "the jail's cgroup is %s", pids);
	cr_assert(eq(str, read_line_of(pids, "pids.max"), "4"));
	char v2_file[1024];
	snprintf(v2_file, sizeof(v2_file), "%s/cpu.max", cpu);
	if (exists(v2_file)) {
		cr_assert(eq(str, read_line_of(cpu, "cpu.max"), "50000 100000"));
	} else {
		cr_assert(eq(str, read_line_of(cpu, "cpu.cfs_quota_us"), "50000"));
		cr_assert(eq(str, read_line_of(cpu, "cpu.cfs_period_us"), "100000"));
	}
	cr_assert(eq(int, atoi(read_line_of(pids, "cgroup.procs")), monitor));
	jrun_close_stdin(&r);
	jrun_finish(&r, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	/* Gone with the monitor: the jail's cgroups and the parent the jailer made for them. */
	cr_assert(not(exists(pids)), "%s is left", pids);
	cr_assert(not(exists(cpu)), "%s is left", cpu);
	*strrchr(pids, '/') = 0;
	cr_assert(not(exists(pids)), "%s is left", pids);
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, daemonize_detaches_and_prints_the_jailers_pid)
{
	require_root();
	char *base = jail_test_base("daemon");
	const char *extra[] = {"--daemonize", NULL}, *probe_args[] = {"wait-signal", NULL};
	const char *argv[64];
	jail_argv(argv, base, "daemon", extra, probe_args);
	struct jrun r;
	jrun(&r, argv, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(not(r.timed_out), "the detached jailer kept our pipes");
	pid_t jailer = (pid_t)atoi(r.out);
	cr_assert(gt(int, jailer, 1), "%s", jrun_describe(&r));
	int pidfd = (int)syscall(SYS_pidfd_open, jailer, 0);
	cr_assert(ge(int, pidfd, 0), "pid %d: %s", (int)jailer, strerror(errno));
	/* Its session is its own; the monitor below it waits for a signal. */
	cr_assert(eq(int, getsid(jailer), jailer));
	cr_assert(eq(int, kill(jailer, SIGTERM), 0));
	struct pollfd p = {pidfd, POLLIN, 0};
	cr_assert(eq(int, poll(&p, 1, (int)(TIMEOUT_S * 1000)), 1), "the jailer did not end");
	close(pidfd);
	cr_assert(exists(path_in(base, "daemon", "/root/got-signal-15")),
		  "the signal reached the monitor");
	jrun_free(&r);
	remove_tree(base);
}

Test(jailer_jail, bad_arguments_are_refused_before_anything_is_built)
{
	require_root();
	char *base = jail_test_base("badargs");
	struct {
		const char *args[12];
		const char *says;
	} cases[] = {
	    {{"--id", "x", "--exec-file", "/bin/sh", "--uid", UID, "--gid", GID, "--chroot-base",
	      base},
	     "--exec-file /bin/sh is dynamically linked"},
	    {{"--id", "x", "--exec-file", "/nonexistent", "--uid", UID, "--gid", GID,
	      "--chroot-base", base},
	     "--exec-file /nonexistent: No such file or directory"},
	    {{"--id", "x", "--exec-file", probe_bin(), "--uid", UID, "--gid", GID, "--chroot-base",
	      "/nonexistent"},
	     "--chroot-base /nonexistent: No such file or directory"},
	    {{"--id", "x", "--exec-file", probe_bin(), "--uid", UID, "--gid", GID, "--chroot-base",
	      probe_bin()},
	     "not a directory"},
	    {{"--id", "x/y", "--exec-file", probe_bin(), "--uid", UID, "--gid", GID},
	     "--id x/y: not a safe name"},
	    {{"--id", "x", "--exec-file", probe_bin(), "--uid", "0", "--gid", GID},
	     "--uid 0: the monitor must not run as root"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jrun r;
		jrun(&r, cases[i].args, TIMEOUT_S);
		cr_assert(eq(int, r.exit_code, 2), "case %u: %s", i, jrun_describe(&r));
		cr_assert(ne(ptr, strstr(r.err, cases[i].says), NULL), "case %u: wanted \"%s\"\n%s",
			  i, cases[i].says, jrun_describe(&r));
		cr_assert(not(exists(path_in(base, "", ""))), "case %u built something", i);
		jrun_free(&r);
	}
	remove_tree(base);
}

Test(jailer_jail, the_static_monitor_runs_in_the_jail)
{
	require_root();
	const char *ember = static_ember_bin();
	if (!ember)
		cr_skip_test("no statically linked ember in this build (EMBER_STATIC_BIN)");
	char *base = jail_test_base("ember");
	const char *version[] = {"--id", "ember",   "--exec-file", ember,	    "--uid",
				 UID,	 "--gid",   GID,	   "--chroot-base", base,
				 "--",	 "version", NULL};
	struct jrun r;
	jrun(&r, version, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 0), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "ember "), NULL), "%s", jrun_describe(&r));
	jrun_free(&r);
	/* Paths are the jail's: the host's files are not there, and the monitor's own exit code
	 * comes back. */
	const char *run[] = {"--id", "ember", "--exec-file", ember,	      "--uid",
			     UID,    "--gid", GID,	     "--chroot-base", base,
			     "--",   "run",   "--kernel",    probe_bin(),     NULL};
	jrun(&r, run, TIMEOUT_S);
	cr_assert(eq(int, r.exit_code, 1), "%s", jrun_describe(&r));
	cr_assert(ne(ptr, strstr(r.err, "No such file or directory"), NULL), "%s",
		  jrun_describe(&r));
	jrun_free(&r);
	remove_tree(base);
}
