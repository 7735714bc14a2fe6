/* A monitor child that the caller can stop at any time: the console and log are read by a
 * thread while the caller drives traffic into the guest. */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_abandoned(struct mon *m)
{
	pthread_mutex_lock(&m->mu);
	bool a = m->abandoned;
	pthread_mutex_unlock(&m->mu);
	return a;
}

static void *reader_main(void *arg)
{
	struct mon *m = arg;
	int fds[2] = {m->out_fd, m->err_fd};
	struct bench_buf *bufs[2] = {&m->out, &m->err};
	static __thread char chunk[65536];
	bool gone = false;
	double drain_until = 0, gone_ms = -1;

	for (;;) {
		if (fds[0] < 0 && fds[1] < 0)
			break;
		if (is_abandoned(m))
			break;
		if (gone && bench_now_ms() > drain_until)
			break; /* a grandchild holds the pipes open: what came is enough */
		struct pollfd p[2];
		int idx[2], np = 0;
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0) {
				p[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
				idx[np++] = i;
			}
		int k = poll(p, (nfds_t)np, 20);
		if (k < 0 && errno != EINTR)
			break;
		for (int s = 0; k > 0 && s < np; s++) {
			if (!(p[s].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int i = idx[s];
			ssize_t got = read(fds[i], chunk, sizeof(chunk));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0) {
				close(fds[i]);
				fds[i] = -1;
				continue;
			}
			pthread_mutex_lock(&m->mu);
			bench_buf_add(bufs[i], chunk, (size_t)got);
			pthread_mutex_unlock(&m->mu);
		}
		if (!gone) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t)m->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == m->pid) {
				gone = true;
				gone_ms = bench_now_ms();
				drain_until = gone_ms + 2000;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* Wait without reaping, mark exited, then reap: mon_signal() never hits a reused pid.
	 * A child that even SIGKILL does not end is left behind once mon_wait() gives up. */
	while (!gone) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)m->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == m->pid)
			break;
		if (is_abandoned(m))
			return NULL;
		usleep(10000);
	}
	if (gone_ms < 0)
		gone_ms = bench_now_ms();
	pthread_mutex_lock(&m->mu);
	m->exited = true;
	m->exit_ms = gone_ms;
	pthread_mutex_unlock(&m->mu);
	int st = -1;
	while (waitpid(m->pid, &st, 0) < 0 && errno == EINTR)
		;
	m->wait_status = st;
	return NULL;
}

int mon_start(struct mon *m, char *const *argv, char *why, size_t why_size)
{
	memset(m, 0, sizeof(*m));
	m->out_fd = m->err_fd = -1;
	m->wait_status = -1;
	m->exit_ms = -1;
	pthread_mutex_init(&m->mu, NULL);
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		snprintf(why, why_size, "pipe: %s", strerror(errno));
		return -1;
	}
	if (pipe2(err, O_CLOEXEC) < 0) {
		snprintf(why, why_size, "pipe: %s", strerror(errno));
		close(out[0]), close(out[1]);
		return -1;
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	m->t0_ms = bench_now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		close(out[0]), close(out[1]), close(err[0]), close(err[1]);
		if (devnull >= 0)
			close(devnull);
		return -1;
	}
	if (pid == 0) {
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "devices: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	if (devnull >= 0)
		close(devnull);
	m->pid = pid;
	m->out_fd = out[0];
	m->err_fd = err[0];
	if (pthread_create(&m->reader, NULL, reader_main, m) != 0) {
		snprintf(why, why_size, "pthread_create failed");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(out[0]), close(err[0]);
		return -1;
	}
	m->reader_started = true;
	return 0;
}

bool mon_exited(struct mon *m)
{
	pthread_mutex_lock(&m->mu);
	bool e = m->exited;
	pthread_mutex_unlock(&m->mu);
	return e;
}

bool mon_out_has(struct mon *m, const char *text)
{
	pthread_mutex_lock(&m->mu);
	bool has = m->out.p && strstr(m->out.p, text) != NULL;
	pthread_mutex_unlock(&m->mu);
	return has;
}

void mon_signal(struct mon *m, int sig)
{
	pthread_mutex_lock(&m->mu);
	if (!m->exited && m->pid > 0) {
		kill(m->pid, sig);
		if (sig == SIGKILL || sig == SIGTERM)
			m->killed_by_us = true;
	}
	pthread_mutex_unlock(&m->mu);
}

bool mon_wait(struct mon *m, double deadline_ms)
{
	if (!m->reader_started)
		return false;
	bool by_itself = true;
	double kill_deadline = -1;
	while (!mon_exited(m)) {
		if (kill_deadline < 0 && (bench_interrupted || bench_now_ms() >= deadline_ms)) {
			mon_signal(m, SIGKILL);
			by_itself = false;
			kill_deadline = bench_now_ms() + 30e3;
		}
		if (kill_deadline > 0 && bench_now_ms() >= kill_deadline) {
			fprintf(stderr, "devices: pid %d survived SIGKILL for 30 s: left behind\n",
				(int)m->pid);
			pthread_mutex_lock(&m->mu);
			m->abandoned = true;
			pthread_mutex_unlock(&m->mu);
			break;
		}
		usleep(5000);
	}
	pthread_join(m->reader, NULL);
	m->reader_started = false;
	return by_itself && !m->killed_by_us;
}

void mon_free(struct mon *m)
{
	if (m->reader_started)
		mon_wait(m, bench_now_ms());
	bench_buf_free(&m->out);
	bench_buf_free(&m->err);
	pthread_mutex_destroy(&m->mu);
}

bool should_abort(const struct abort_check *a)
{
	return bench_interrupted || (a && a->mon && mon_exited(a->mon));
}
