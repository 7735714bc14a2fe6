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
