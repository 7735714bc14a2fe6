#include "jailer/launch.h"
#include "jailer/args.h"
#include "jailer/namespaces.h"
#include "jailer/privileges.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const int launch_signals[LAUNCH_NSIGNALS] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

/* The child's steps, in order; the names are what an operator reads when one fails. */
static void child_fail(int report_fd, const char *step)
{
	char buf[LAUNCH_REPORT_MAX];
	int n = snprintf(buf, sizeof(buf), "%s\n%s", step, err_msg());
	if (n > 0) {
		ssize_t w =
		    write(report_fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
		(void)w; /* nothing more to do if the parent is gone */
	}
	_exit(JAILER_EXIT_SETUP_FAILED);
}

static void reset_signals(void)
{
	/* Dispositions the platform set for the jailer (an ignored SIGPIPE, say) would pass
	 * through exec; the monitor starts from the defaults. */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
}

static __attribute__((noreturn)) void child_main(const struct launch_plan *p, int go_fd,
						 int report_fd)
{
	char go;
	if (read(go_fd, &go, 1) != 1)
		_exit(JAILER_EXIT_SETUP_FAILED); /* the parent gave up; it reports why */
	close(go_fd);
	reset_signals();
	if (p->netns_fd >= 0 && ns_join_net(p->netns_fd, p->netns_path) < 0)
		child_fail(report_fd, "network namespace");
	if (ns_enter_jail(p->root) < 0)
		child_fail(report_fd, "jail root");
	if (priv_set_rlimits(p->nofile, p->fsize_set, p->fsize) < 0)
		child_fail(report_fd, "resource limits");
	int keep[] = {report_fd};
	if (priv_close_fds_except(keep, 1) < 0)
		child_fail(report_fd, "file descriptors");
	if (priv_drop(p->uid, p->gid) < 0)
		child_fail(report_fd, "privileges");
	char path[NAME_MAX + 2];
	snprintf(path, sizeof(path), "/%s", p->exec_name);
	size_t n = 0;
	while (p->monitor_argv[n])
		n++;
	char *argv[n + 2];
	argv[0] = path;
	for (size_t i = 0; i <= n; i++)
		argv[i + 1] = p->monitor_argv[i];
	char *envp[] = {NULL};
	sigset_t held;
	sigemptyset(&held);
	for (unsigned i = 0; i < LAUNCH_NSIGNALS; i++)
		sigaddset(&held, launch_signals[i]);
	sigprocmask(SIG_SETMASK, &held, NULL);
	execve(path, argv, envp);
	err_errno("exec %s in the jail", path);
	child_fail(report_fd, "exec");
	_exit(JAILER_EXIT_SETUP_FAILED);
}

int launch_fork(const struct launch_plan *plan, struct launch *l)
{
	int go[2], report[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		return err_errno("pipe");
	if (pipe2(report, O_CLOEXEC) < 0) {
		int r = err_errno("pipe");
		close(go[0]);
		close(go[1]);
		return r;
	}
	pid_t pid = ns_fork_new_pid();
	if (pid == 0) {
		close(go[1]);
		close(report[0]);
		child_main(plan, go[0], report[1]);
	}
	int r = pid < 0 ? pid : 0;
	close(go[0]);
	close(report[1]);
	if (r < 0) {
		close(go[1]);
		close(report[0]);
		return r;
	}
	l->pid = pid;
	l->go_fd = go[1];
	l->report_fd = report[0];
	return 0;
}

int launch_release(struct launch *l, char *report, size_t size)
{
	int r = 0;
	if (write(l->go_fd, "g", 1) != 1)
		r = err_errno("waking the child");
	close(l->go_fd);
	l->go_fd = -1;
	size_t n = 0;
	while (n + 1 < size) {
		ssize_t got = read(l->report_fd, report + n, size - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	report[n] = 0;
	close(l->report_fd);
	l->report_fd = -1;
	if (n > 0)
		return err_set(EIO, "%s", report);
	return r;
}

void launch_abort(struct launch *l)
{
	close(l->go_fd);
	close(l->report_fd);
	l->go_fd = l->report_fd = -1;
}
