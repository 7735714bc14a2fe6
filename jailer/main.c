/* ember-jailer: build a jail for one monitor and run the monitor in it (see jailer_usage()).
 * The steps live in their own files (args, exec_file, jail_fs, cgroup, namespaces, privileges,
 * launch); this file puts them in order, undoes them when one fails, and stays with the
 * monitor: it forwards signals to it, reports how it ended and exits with its exit code. */
#include "jailer/args.h"
#include "jailer/cgroup.h"
#include "jailer/exec_file.h"
#include "jailer/jail_fs.h"
#include "jailer/launch.h"
#include "jailer/namespaces.h"
#include "jailer/privileges.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t monitor_pid;

static void forward_signal(int sig)
{
	if (monitor_pid > 0)
		kill(monitor_pid, sig);
}

static void block_forwarded(sigset_t *set)
{
	sigemptyset(set);
	for (unsigned i = 0; i < LAUNCH_NSIGNALS; i++)
		sigaddset(set, launch_signals[i]);
	sigprocmask(SIG_BLOCK, set, NULL);
}

static int start_forwarding(const sigset_t *set)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < LAUNCH_NSIGNALS; i++)
		if (sigaction(launch_signals[i], &sa, NULL) < 0)
			return err_errno("sigaction %d", launch_signals[i]);
	sigprocmask(SIG_UNBLOCK, set, NULL);
	return 0;
}

/* Where a failure is told: stderr, or (--daemonize) the waiting parent through `status_fd`. */
static int fail(int status_fd, const char *step, const char *detail)
{
	if (status_fd >= 0)
		dprintf(status_fd, "fail\nember-jailer: %s failed: %s\n", step, detail);
	else
		fprintf(stderr, "ember-jailer: %s failed: %s\n", step, detail);
	return JAILER_EXIT_SETUP_FAILED;
}

static int wait_monitor(pid_t pid, int *status)
{
	for (;;) {
		if (waitpid(pid, status, 0) == pid)
			return 0;
		if (errno != EINTR)
			return err_errno("waitpid %d", (int)pid);
	}
}

static int exit_code_of(int status, const struct cgroup_jail *cg)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	int sig = WTERMSIG(status);
	long ooms = sig == SIGKILL ? cgroup_jail_oom_kills(cg) : -1;
	if (ooms > 0)
		fprintf(stderr,
			"ember-jailer: the monitor was killed by the OOM killer of its memory "
			"cgroup (it reached memory.max; oom_kill=%ld)\n",
			ooms);
	else
		fprintf(stderr, "ember-jailer: the monitor was killed by signal %d (%s)\n", sig,
			strsignal(sig));
	return 128 + sig;
}

/* Build the jail, start the monitor in it, stay until it exits. */
static int run(const struct jailer_args *a, int exec_fd, int netns_fd, int status_fd,
	       const sigset_t *forwarded)
{
	struct jail_fs fs;
	if (jail_fs_build(&fs, a->chroot_base, a->id, exec_fd, a->exec_file, a->uid, a->gid) < 0)
		return fail(status_fd, "jail filesystem", err_msg());
	close(exec_fd);
	struct cgroup_jail *cg = calloc(1, sizeof(*cg));
	if (!cg) {
		jail_fs_undo(&fs);
		return fail(status_fd, "cgroups", "out of memory");
	}
	if (cgroup_jail_create(cg, a->id, a->parent_cgroup, a->cgroups, a->ncgroups) < 0) {
		int rc = fail(status_fd, "cgroups", err_msg());
		free(cg);
		jail_fs_undo(&fs);
		return rc;
	}
	struct launch_plan plan = {
	    .root = fs.root,
	    .exec_name = fs.exec_name,
	    .monitor_argv = a->monitor_argv,
	    .netns_fd = netns_fd,
	    .netns_path = a->netns,
	    .nofile = a->nofile,
	    .fsize_set = a->fsize_set,
	    .fsize = a->fsize,
	    .uid = a->uid,
	    .gid = a->gid,
	};
	struct launch l = {.pid = -1, .go_fd = -1, .report_fd = -1};
	const char *step = NULL;
	char report[LAUNCH_REPORT_MAX];
	char *detail = report;
	if (launch_fork(&plan, &l) < 0) {
		step = "pid namespace";
		snprintf(report, sizeof(report), "%s", err_msg());
	} else if (cgroup_jail_attach(cg, l.pid) < 0) {
		step = "cgroups";
		snprintf(report, sizeof(report), "%s", err_msg());
		launch_abort(&l);
	} else if (launch_release(&l, report, sizeof(report)) < 0) {
		/* "STEP\nDETAIL" from the child, or our own message about waking it. */
		char *nl = strchr(report, '\n');
		step = nl ? report : "launch";
		if (nl) {
			*nl = 0;
			detail = nl + 1;
		} else {
			snprintf(report, sizeof(report), "%s", err_msg());
		}
	}
	if (step) {
		int status;
		if (l.pid > 0)
			wait_monitor(l.pid, &status);
		int rc = fail(status_fd, step, detail);
		cgroup_jail_remove(cg);
		free(cg);
		jail_fs_undo(&fs);
		return rc;
	}
	monitor_pid = l.pid;
	if (status_fd >= 0) {
		dprintf(status_fd, "ok\n%d\n", (int)getpid());
		close(status_fd);
	}
	if (start_forwarding(forwarded) < 0)
		fprintf(stderr, "ember-jailer: warning: signals will not reach the monitor: %s\n",
			err_msg());
	int status = 0, rc;
	if (wait_monitor(l.pid, &status) < 0) {
		fprintf(stderr, "ember-jailer: %s\n", err_msg());
		rc = JAILER_EXIT_SETUP_FAILED;
	} else {
		rc = exit_code_of(status, cg);
	}
	monitor_pid = 0;
	cgroup_jail_remove(cg);
	free(cg);
	jail_fs_close(&fs);
	return rc;
}

/* The original process of a --daemonize run: wait for the detached jailer to say how the
 * launch went, print that, exit. */
static int await_detached(int fd)
{
	char buf[LAUNCH_REPORT_MAX + 128];
	size_t n = 0;
	for (;;) {
		ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || n + (size_t)got >= sizeof(buf) - 1) {
			if (got > 0)
				n += (size_t)got;
			break;
		}
		n += (size_t)got;
	}
	buf[n] = 0;
	if (strncmp(buf, "ok\n", 3) == 0) {
		/* The pid that forwards signals to the monitor and waits for it. */
		fputs(buf + 3, stdout);
		return 0;
	}
	if (strncmp(buf, "fail\n", 5) == 0) {
		fputs(buf + 5, stderr);
		return JAILER_EXIT_SETUP_FAILED;
	}
	fprintf(stderr, "ember-jailer: the detached jailer ended before starting the monitor\n");
	return JAILER_EXIT_SETUP_FAILED;
}

/* Returns in the detached child (new session, stdio on /dev/null, no other inherited fds),
 * with *status_fd leading back to the original process, which never returns. */
static int daemonize(int *status_fd, const int *keep, unsigned nkeep)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return err_errno("pipe");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return err_errno("open /dev/null");
	pid_t pid = fork();
	if (pid < 0)
		return err_errno("fork");
	if (pid > 0) {
		close(p[1]);
		exit(await_detached(p[0]));
	}
	close(p[0]);
	*status_fd = p[1];
	if (setsid() < 0)
		return err_errno("setsid");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(null, fd) < 0)
			return err_errno("dup2 /dev/null");
	int keep_all[8];
	unsigned n = 0;
	for (; n < nkeep && n < 7; n++)
		keep_all[n] = keep[n];
	keep_all[n++] = p[1];
	return priv_close_fds_except(keep_all, n);
}

int main(int argc, char **argv)
{
	struct jailer_args a;
	if (jailer_args_parse(argc, argv, &a) < 0) {
		fprintf(stderr, "ember-jailer: %s\nTry 'ember-jailer --help'.\n", err_msg());
		return JAILER_EXIT_USAGE;
	}
	if (a.help) {
		jailer_usage(stdout);
		return 0;
	}
	/* A vanished reader must give EPIPE, not kill the jailer (the child resets this). */
	signal(SIGPIPE, SIG_IGN);
	/* A stop request while the jail is being built waits until the monitor runs, and then
	 * goes to it: the jailer never dies halfway through a jail. */
	sigset_t forwarded;
	block_forwarded(&forwarded);
	int rc = JAILER_EXIT_USAGE;
	int exec_fd = -1, netns_fd = -1, status_fd = -1;
	if (jailer_args_check_paths(&a) < 0 || (exec_fd = exec_file_open(a.exec_file)) < 0 ||
	    (a.netns && (netns_fd = ns_open_net(a.netns)) < 0)) {
		fprintf(stderr, "ember-jailer: %s\n", err_msg());
		goto out;
	}
	if (geteuid() != 0) {
		rc = fail(-1, "privileges",
			  "ember-jailer must run as root (it makes device nodes, namespaces and "
			  "cgroups, and then gives all of that up)");
		goto out;
	}
	if (a.daemonize) {
		int keep[] = {exec_fd, netns_fd};
		if (daemonize(&status_fd, keep, 2) < 0) {
			rc = fail(status_fd, "daemonize", err_msg());
			goto out;
		}
	}
	rc = run(&a, exec_fd, netns_fd, status_fd, &forwarded);
	exec_fd = -1;
out:
	if (exec_fd >= 0)
		close(exec_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	jailer_args_free(&a);
	return rc;
}
