/* Monitor children that the caller polls alongside its own sockets (restore latency and spawn
 * rate wait on many at once), and argv building. */
#include "snapbench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int sb_proc_start(struct sb_proc *p, char *const *argv, const char *marker, int cgroup_procs_fd)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->out_fd = p->err_fd = -1;
	p->t_marker = p->t_exit = -1;
	p->wait_status = -1;
	p->marker = marker;

	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(err, O_CLOEXEC) < 0) {
		int e = errno;
		close(out[0]), close(out[1]);
		errno = e;
		return -1;
	}
	p->t_start = bench_now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(out[0]), close(out[1]), close(err[0]), close(err[1]);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		if (cgroup_procs_fd >= 0 && write(cgroup_procs_fd, "0\n", 2) != 2)
			dprintf(err[1], "snapshot bench: joining the cgroup: %s\n",
				strerror(errno));
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "snapshot bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	p->pid = pid;
	p->out_fd = out[0];
	p->err_fd = err[0];
	return 0;
}

int sb_proc_pollfds(const struct sb_proc *p, struct pollfd *pf)
{
	int n = 0;
	if (p->out_fd >= 0)
		pf[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
	if (p->err_fd >= 0)
		pf[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
	return n;
}

static void find_marker(struct sb_proc *p, double now)
{
	if (!p->marker || p->t_marker >= 0 || !p->out.p)
		return;
	size_t mlen = strlen(p->marker);
	size_t from = p->marker_scan >= mlen ? p->marker_scan - mlen + 1 : 0;
	if (memmem(p->out.p + from, p->out.len - from, p->marker, mlen))
		p->t_marker = now;
	p->marker_scan = p->out.len;
}

/* Read until the pipe is empty (or closed). */
static void drain_pipe(struct sb_proc *p, int *fd, struct bench_buf *b)
{
	char chunk[16384];
	for (;;) {
		ssize_t got = read(*fd, chunk, sizeof(chunk));
		if (got > 0) {
			double now = bench_now_ms();
			bench_buf_add(b, chunk, (size_t)got);
			if (b == &p->out)
				find_marker(p, now);
			continue;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
		return;
	}
}

static void reap(struct sb_proc *p, int flags)
{
	if (p->exited || p->pid <= 0)
		return;
	int st;
	pid_t w;
	do
		w = waitpid(p->pid, &st, flags);
	while (w < 0 && errno == EINTR);
	if (w == p->pid) {
		p->exited = true;
		p->wait_status = st;
		p->t_exit = bench_now_ms();
	}
}

void sb_proc_io(struct sb_proc *p, const struct pollfd *pf, int n)
{
	for (int i = 0; i < n; i++) {
		if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (pf[i].fd == p->out_fd)
			drain_pipe(p, &p->out_fd, &p->out);
		else if (pf[i].fd == p->err_fd)
			drain_pipe(p, &p->err_fd, &p->err);
	}
	reap(p, WNOHANG);
}

void sb_proc_check(struct sb_proc *p)
{
	if (p->out_fd >= 0)
		drain_pipe(p, &p->out_fd, &p->out);
	if (p->err_fd >= 0)
		drain_pipe(p, &p->err_fd, &p->err);
	reap(p, WNOHANG);
}

void sb_proc_kill(struct sb_proc *p)
{
	if (p->pid <= 0)
		return;
	if (!p->exited) {
		kill(p->pid, SIGKILL);
		p->killed_by_us = true;
		/* A child stuck in the kernel for 10 s is left behind rather than hang us. */
		for (int i = 0; i < 1000 && !p->exited; i++) {
			reap(p, WNOHANG);
			if (!p->exited)
				usleep(10000);
		}
	}
	sb_proc_check(p);
}

void sb_proc_free(struct sb_proc *p)
{
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->out_fd = p->err_fd = -1;
	bench_buf_free(&p->out);
	bench_buf_free(&p->err);
}

void sb_proc_status(const struct sb_proc *p, char *buf, size_t n)
{
	if (p->pid <= 0)
		snprintf(buf, n, "not started");
	else if (!p->exited)
		snprintf(buf, n, "running");
	else if (WIFEXITED(p->wait_status))
		snprintf(buf, n, "exit code %d", WEXITSTATUS(p->wait_status));
	else if (WIFSIGNALED(p->wait_status))
		snprintf(buf, n, "signal %d (%s)%s", WTERMSIG(p->wait_status),
			 strsignal(WTERMSIG(p->wait_status)),
			 p->killed_by_us ? ", sent by us" : "");
	else
		snprintf(buf, n, "wait status 0x%x", p->wait_status);
}

/* ------------------------------------------------------------------- argv */

#define ARGV_MAX 64

char **sb_argv_new(void)
{
	char **a = calloc(ARGV_MAX, sizeof(*a));
	if (!a) {
		fprintf(stderr, "snapshot bench: out of memory\n");
		exit(1);
	}
	return a;
}

void sb_argv_add(char **a, const char *s)
{
	int n = 0;
	while (a[n])
		n++;
	if (n >= ARGV_MAX - 1) {
		fprintf(stderr, "snapshot bench: internal error: argv too long\n");
		exit(1);
	}
	a[n] = bench_xstrdup(s);
}

void sb_argv_addf(char **a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0) {
		fprintf(stderr, "snapshot bench: out of memory\n");
		exit(1);
	}
	va_end(ap);
	sb_argv_add(a, s);
	free(s);
}

void sb_argv_free(char **a)
{
	for (int i = 0; a && a[i]; i++)
		free(a[i]);
	free(a);
}
