#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

const char *ember_bin(void)
{
	return env_or("EMBER_BIN", "./ember");
}

const char *unikernel_path(void)
{
	return env_or("EMBER_UNIKERNEL", "./guest/unikernel/ember-unikernel.elf");
}

const char *linux_image(const char *name)
{
	const char *dir = getenv("EMBER_LINUX_DIR");
	if (!dir || !*dir)
		return NULL;
	char *path;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	if (access(path, R_OK) != 0) {
		free(path);
		return NULL;
	}
	return path; /* kept for the test's lifetime */
}

/* Test processes stop at their first failed assertion without freeing what they hold; leak
 * reports there are noise. Ember itself, the child, is still checked for leaks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

void require_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		fprintf(stderr,
			"SKIPPED: /dev/kvm is missing or not accessible on this host; "
			"KVM tests cannot run here (tests/run runs them inside an L1 VM)\n");
		cr_skip_test("/dev/kvm missing: KVM test skipped");
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *d, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = 0;
}

void ember_exec(struct ember_run *r, const char *const *args, double timeout_s,
		const char *stdin_data, const struct ember_trigger *trigger)
{
	memset(r, 0, sizeof(*r));
	int out[2], err[2], in[2];
	cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0 &&
		  pipe2(in, O_CLOEXEC) == 0);
	const char *argv[64];
	size_t n = 0;
	argv[n++] = ember_bin();
	for (; args[n - 1] && n < 63; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	double t0 = now_ms();
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	close(in[0]);
	if (stdin_data) {
		ssize_t w = write(in[1], stdin_data, strlen(stdin_data));
		(void)w;
	}
	/* Keep stdin open (a console that stays connected) unless there is nothing to send. */
	if (!stdin_data)
		close(in[1]);
	struct buf bo = {0}, be = {0};
	buf_add(&bo, "", 0);
	buf_add(&be, "", 0);
	struct pollfd pfd[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int open_fds = 2;
	bool triggered = false;
	while (open_fds > 0) {
		double left = timeout_s * 1e3 - (now_ms() - t0);
		if (left <= 0) {
			r->timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		int pr = poll(pfd, 2, (int)left + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char chunk[4096];
			ssize_t got = read(pfd[i].fd, chunk, sizeof(chunk));
			if (got <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			buf_add(i == 0 ? &bo : &be, chunk, (size_t)got);
		}
		if (trigger && !triggered && strstr(bo.p, trigger->when_seen)) {
			triggered = true;
			if (trigger->signal)
				kill(pid, trigger->signal);
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	if (stdin_data)
		close(in[1]);
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	r->wall_ms = now_ms() - t0;
	r->maxrss_kib = ru.ru_maxrss;
	if (WIFEXITED(status)) {
		r->exit_code = WEXITSTATUS(status);
	} else {
		r->exit_code = -1;
		r->term_signal = WTERMSIG(status);
	}
	r->out = bo.p;
	r->err = be.p;
}

void ember_run_free(struct ember_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

const char *ember_run_describe(const struct ember_run *r)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf),
		 "exit=%d signal=%d timed_out=%d wall=%.1fms\n--- console ---\n%.3000s\n--- log "
		 "---\n%.3000s",
		 r->exit_code, r->term_signal, r->timed_out, r->wall_ms, r->out ? r->out : "",
		 r->err ? r->err : "");
	return buf;
}

char *temp_file_with(size_t len, unsigned seed)
{
	char *path = strdup("/tmp/ember-it-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	unsigned x = seed * 2654435761u + 1;
	char chunk[4096];
	size_t done = 0;
	while (done < len) {
		size_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			chunk[i] = (char)(x >> 16);
		}
		cr_assert(write(fd, chunk, n) == (ssize_t)n);
		done += n;
	}
	close(fd);
	return path;
}

unsigned long crc32_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f != NULL);
	unsigned long crc = 0xffffffffu;
	int c;
	while ((c = fgetc(f)) != EOF) {
		crc ^= (unsigned)c;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	fclose(f);
	return crc ^ 0xffffffffu;
}

void ember_spawn(struct ember_proc *p, const char *const *args)
{
	memset(p, 0, sizeof(*p));
	int out[2], err[2];
	cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
	const char *argv[64];
	size_t n = 0;
	argv[n++] = ember_bin();
	for (; args[n - 1] && n < 63; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	p->pid = fork();
	cr_assert(p->pid >= 0);
	if (p->pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	p->out_fd = out[0];
	p->err_fd = err[0];
	p->out = calloc(1, 1);
	p->err = calloc(1, 1);
	p->exit_code = -1;
}

static void proc_add(char **b, size_t *len, size_t *cap, const char *d, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*b = realloc(*b, *cap);
	}
	memcpy(*b + *len, d, n);
	*len += n;
	(*b)[*len] = 0;
}

void ember_proc_poll(struct ember_proc *p, int wait_ms)
{
	struct pollfd pfd[2] = {{p->out_fd, POLLIN, 0}, {p->err_fd, POLLIN, 0}};
	if (poll(pfd, 2, wait_ms) <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		char chunk[4096];
		ssize_t got = read(pfd[i].fd, chunk, sizeof(chunk));
		if (got <= 0) {
			close(pfd[i].fd);
			if (i == 0)
				p->out_fd = -1;
			else
				p->err_fd = -1;
			continue;
		}
		if (i == 0)
			proc_add(&p->out, &p->out_len, &p->out_cap, chunk, (size_t)got);
		else
			proc_add(&p->err, &p->err_len, &p->err_cap, chunk, (size_t)got);
	}
}

bool ember_proc_wait_out(struct ember_proc *p, size_t from, const char *needle, double timeout_s)
{
	double t0 = now_ms();
	for (;;) {
		if (from <= p->out_len && strstr(p->out + from, needle))
			return true;
		if (p->out_fd < 0 || now_ms() - t0 > timeout_s * 1e3)
			return false;
		ember_proc_poll(p, 50);
	}
}

int ember_proc_wait_exit(struct ember_proc *p, double timeout_s)
{
	double t0 = now_ms();
	int status;
	for (;;) {
		ember_proc_poll(p, 20);
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid)
			break;
		if (now_ms() - t0 > timeout_s * 1e3) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			break;
		}
	}
	while (p->out_fd >= 0 || p->err_fd >= 0)
		ember_proc_poll(p, 100);
	p->pid = 0;
	if (WIFEXITED(status)) {
		p->exit_code = WEXITSTATUS(status);
	} else {
		p->exit_code = -1;
		p->term_signal = WTERMSIG(status);
	}
	return p->exit_code;
}

void ember_proc_free(struct ember_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	free(p->out);
	free(p->err);
	memset(p, 0, sizeof(*p));
}

bool wait_for_socket(const char *path, double timeout_s)
{
	double t0 = now_ms();
	while (now_ms() - t0 < timeout_s * 1e3) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
		int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (r == 0)
			return true;
		usleep(10000);
	}
	return false;
}
