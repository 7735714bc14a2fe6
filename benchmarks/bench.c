#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t bench_interrupted;

double bench_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	return q;
}

/* ------------------------------------------------------------------ buffers */

/* Console output beyond this is counted but not kept (a Linux boot log is ~100 KiB). */
#define BUF_KEEP_MAX (8u << 20)

void bench_buf_add(struct bench_buf *b, const char *data, size_t n)
{
	if (b->len + n > BUF_KEEP_MAX)
		n = b->len < BUF_KEEP_MAX ? BUF_KEEP_MAX - b->len : 0;
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = 0;
}

void bench_buf_free(struct bench_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

const char *bench_buf_tail(const struct bench_buf *b, size_t max)
{
	if (!b->p)
		return "";
	return b->len > max ? b->p + b->len - max : b->p;
}

/* ------------------------------------------------------------------- smaps */

struct map_info {
	long size_kib, rss_kib, pss_kib;
	bool anon, named;
};

/* "Rss:    1234 kB" */
static bool field(const char *line, const char *name, long *out)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return false;
	*out = strtol(line + n, NULL, 10);
	return true;
}

int bench_smaps_sample(pid_t pid, const char *guest_name, long guest_kib, struct bench_mem *m)
{
	memset(m, 0, sizeof(*m));
	m->method = "none";
	char path[32];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(m->error, sizeof(m->error), "open %s: %s", path, strerror(errno));
		return -1;
	}
	struct map_info *maps = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t line_cap = 0;
	while (getline(&line, &line_cap, f) > 0) {
		const char *sp = strchr(line, ' ');
		bool is_field = sp && sp > line && sp[-1] == ':';
		if (!is_field) {
			/* start-end perms offset dev inode [path] */
			unsigned long start, end;
			int path_at = 0;
			if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end, &path_at) < 2)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				maps = xrealloc(maps, cap * sizeof(*maps));
			}
			struct map_info *mi = &maps[n++];
			memset(mi, 0, sizeof(*mi));
			const char *p = path_at ? line + path_at : "";
			while (*p == ' ')
				p++;
			mi->anon = *p == '\n' || *p == 0;
			mi->named = guest_name && *guest_name && strstr(p, guest_name) != NULL;
			mi->size_kib = (long)((end - start) / 1024);
			continue;
		}
		if (!n)
			continue;
		long v;
		if (field(line, "Rss:", &v))
			maps[n - 1].rss_kib = v;
		else if (field(line, "Pss:", &v))
			maps[n - 1].pss_kib = v;
	}
	free(line);
	fclose(f);
	if (!n) {
		snprintf(m->error, sizeof(m->error), "%s is empty (the process is exiting)", path);
		free(maps);
		return -1;
	}

	for (size_t i = 0; i < n; i++) {
		m->rss_kib += maps[i].rss_kib;
		m->pss_kib += maps[i].pss_kib;
	}
	/* Choose the guest RAM mapping(s): by name, by exact size, or the largest big enough. */
	long sel = -1;
	for (size_t i = 0; i < n; i++) {
		if (maps[i].named) {
			m->guest_rss_kib += maps[i].rss_kib;
			m->guest_pss_kib += maps[i].pss_kib;
			m->guest_size_kib += maps[i].size_kib;
			m->guest_maps++;
			m->method = "name";
		}
	}
	if (!m->guest_maps) {
		for (size_t i = 0; i < n; i++)
			if (maps[i].anon && maps[i].size_kib == guest_kib &&
			    (sel < 0 || maps[i].rss_kib > maps[sel].rss_kib))
				sel = (long)i;
		if (sel >= 0) {
			m->method = "size";
		} else {
			for (size_t i = 0; i < n; i++)
				if (maps[i].anon && maps[i].size_kib >= guest_kib &&
				    (sel < 0 || maps[i].size_kib > maps[sel].size_kib))
					sel = (long)i;
			if (sel >= 0)
				m->method = "largest";
		}
		if (sel >= 0) {
			m->guest_rss_kib = maps[sel].rss_kib;
			m->guest_pss_kib = maps[sel].pss_kib;
			m->guest_size_kib = maps[sel].size_kib;
			m->guest_maps = 1;
		}
	}
	free(maps);
	m->valid = true;
	return 0;
}

/* ----------------------------------------------------------- child runner */

static void on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

void bench_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* Looks for `marker` in the stream, carrying the last strlen(marker)-1 bytes across reads. */
struct finder {
	const char *marker;
	size_t mlen;
	char *win;
	size_t win_len;
};

static bool finder_feed(struct finder *fd, const char *data, size_t n)
{
	if (!fd->mlen)
		return false;
	size_t total = fd->win_len + n;
	char *tmp = xrealloc(NULL, total);
	if (fd->win_len)
		memcpy(tmp, fd->win, fd->win_len);
	memcpy(tmp + fd->win_len, data, n);
	bool hit = memmem(tmp, total, fd->marker, fd->mlen) != NULL;
	size_t keep = fd->mlen - 1 < total ? fd->mlen - 1 : total;
	fd->win = xrealloc(fd->win, keep + 1);
	memcpy(fd->win, tmp + total - keep, keep);
	fd->win_len = keep;
	free(tmp);
	return hit;
}

int bench_launch(const struct bench_launch *l, struct bench_result *r)
{
	memset(r, 0, sizeof(*r));
	r->marker_ms = r->kill_ms = r->exit_ms = -1;
	r->wait_status = -1;

	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return -1;
	}
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

	double t0 = bench_now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(out[0]), close(out[1]), close(err[0]), close(err[1]);
		if (devnull >= 0)
			close(devnull);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		execvp(l->argv[0], l->argv);
		dprintf(STDERR_FILENO, "bench: exec %s: %s\n", l->argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	if (devnull >= 0)
		close(devnull);

	int pidfd = pidfd_open_compat(pid);
	struct finder fd = {.marker = l->marker, .mlen = l->marker ? strlen(l->marker) : 0};
	int fds[2] = {out[0], err[0]};
	struct bench_buf *bufs[2] = {&r->out, &r->err};
	double deadline = t0 + l->timeout_s * 1e3;
	double kill_deadline = -1, drain_deadline = -1, sigkill_at = -1;
	char chunk[65536];

	for (;;) {
		double now = bench_now_ms();
		if (!r->exited) {
			bool sigkill = false;
			if (bench_interrupted && !r->interrupted)
				r->interrupted = sigkill = true;
			if (now >= deadline && !r->timed_out)
				r->timed_out = sigkill = true;
			if (kill_deadline > 0 && now >= kill_deadline) {
				r->sigkilled = sigkill = true;
				kill_deadline = -1;
			}
			if (sigkill) {
				kill(pid, SIGKILL);
				if (sigkill_at < 0)
					sigkill_at = now;
			}
			if (sigkill_at > 0 && now >= sigkill_at + 10000) {
				r->unkillable = true; /* stuck in the kernel; do not hang with it */
				break;
			}
		} else if (fds[0] < 0 && fds[1] < 0) {
			break;
		} else if (now >= drain_deadline) {
			break; /* something else holds the pipes open; what came is enough */
		}

		struct pollfd p[3];
		int np = 0, idx[3];
		for (int i = 0; i < 2; i++)
			if (fds[i] >= 0) {
				p[np] = (struct pollfd){.fd = fds[i], .events = POLLIN};
				idx[np++] = i;
			}
		int pid_slot = -1;
		if (!r->exited && pidfd >= 0) {
			p[np] = (struct pollfd){.fd = pidfd, .events = POLLIN};
			pid_slot = np++;
		}
		double until = r->exited ? drain_deadline : deadline;
		if (!r->exited && kill_deadline > 0 && kill_deadline < until)
			until = kill_deadline;
		double wait_ms = until - now;
		if (sigkill_at > 0)
			wait_ms = 50; /* the SIGKILL is on its way */
		if (!r->exited && pidfd < 0 && wait_ms > 1)
			wait_ms = 1; /* no pidfd: poll waitpid every millisecond */
		int timeout = wait_ms < 0 ? 0 : (int)ceil(wait_ms);
		int k = poll(p, (nfds_t)np, timeout);
		if (k < 0 && errno != EINTR)
			break;
		if (k < 0)
			continue;

		/* Console first: a marker and the exit can arrive in one wake-up. */
		for (int s = 0; s < np; s++) {
			if (s == pid_slot || !(p[s].revents & (POLLIN | POLLHUP | POLLERR)))
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
			double t = bench_now_ms();
			bench_buf_add(bufs[i], chunk, (size_t)got);
			if (i != 0 || r->marker_seen || !finder_feed(&fd, chunk, (size_t)got))
				continue;
			r->marker_seen = true;
			r->marker_ms = t - t0;
			if (r->exited)
				continue;
			if (l->sample_mem)
				bench_smaps_sample(pid, l->guest_map_name, l->guest_kib, &r->mem);
			if (l->stop == BENCH_STOP_AT_MARKER) {
				kill(pid, SIGTERM);
				r->signalled_by_us = true;
				r->kill_ms = bench_now_ms() - t0;
				kill_deadline = bench_now_ms() + l->kill_grace_s * 1e3;
			}
		}

		if (!r->exited) {
			bool ready = pid_slot >= 0 && (p[pid_slot].revents & POLLIN);
			int st;
			pid_t w = 0;
			if (ready)
				w = waitpid(pid, &st, 0);
			else if (pidfd < 0)
				w = waitpid(pid, &st, WNOHANG);
			if (w == pid) {
				r->exit_ms = bench_now_ms() - t0;
				r->exited = true;
				r->wait_status = st;
				drain_deadline = bench_now_ms() + 2000;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (!r->exited) {
		kill(pid, SIGKILL);
		int st;
		if (waitpid(pid, &st, r->unkillable ? WNOHANG : 0) == pid) {
			r->exit_ms = bench_now_ms() - t0;
			r->exited = true;
			r->wait_status = st;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	free(fd.win);
	return 0;
}

void bench_result_free(struct bench_result *r)
{
	bench_buf_free(&r->out);
	bench_buf_free(&r->err);
}

char *bench_first_line(char *const *argv)
{
	struct bench_launch l = {.argv = argv, .timeout_s = 30, .stop = BENCH_WAIT_EXIT};
	struct bench_result r;
	if (bench_launch(&l, &r) < 0)
		return NULL;
	char *line = NULL;
	const struct bench_buf *b = r.out.len ? &r.out : &r.err;
	if (r.exited && WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0 && b->len) {
		size_t n = strcspn(b->p, "\r\n");
		line = strndup(b->p, n);
	}
	bench_result_free(&r);
	return line;
}

char *bench_which(const char *name)
{
	if (!name || !*name)
		return NULL;
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		char buf[4096];
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", name);
		if (access(buf, X_OK) == 0)
			return strdup(buf);
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* -------------------------------------------------------------- statistics */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void bench_stats(const double *v, int n, struct bench_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	if (n <= 0) {
		s->min = s->median = s->p90 = s->max = NAN;
		return;
	}
	double *c = xrealloc(NULL, (size_t)n * sizeof(*c));
	memcpy(c, v, (size_t)n * sizeof(*c));
	qsort(c, (size_t)n, sizeof(*c), cmp_double);
	s->min = c[0];
	s->max = c[n - 1];
	s->median = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
	int rank = (int)ceil(0.9 * n); /* nearest rank, 1-based */
	s->p90 = c[(rank < 1 ? 1 : rank) - 1];
	free(c);
}

/* -------------------------------------------------------------------- JSON */

static void json_escape(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void json_indent(struct json *j)
{
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void json_key(struct json *j, const char *key)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	if (j->depth > 0)
		json_indent(j);
	if (key) {
		json_escape(j->f, key);
		fputs(": ", j->f);
	}
}

void json_begin(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

void json_obj(struct json *j, const char *key)
{
	json_key(j, key);
	fputc('{', j->f);
	j->depth++;
	j->need_comma[j->depth] = false;
}

void json_arr(struct json *j, const char *key)
{
	json_key(j, key);
	fputc('[', j->f);
	j->depth++;
	j->need_comma[j->depth] = false;
}

static void json_close(struct json *j, char c)
{
	bool had = j->need_comma[j->depth];
	j->depth--;
	if (had)
		json_indent(j);
	fputc(c, j->f);
}

void json_end_obj(struct json *j)
{
	json_close(j, '}');
}

void json_end_arr(struct json *j)
{
	json_close(j, ']');
}

void json_str(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	if (v)
		json_escape(j->f, v);
	else
		fputs("null", j->f);
}

void json_num(struct json *j, const char *key, double v, int decimals)
{
	json_key(j, key);
	if (isfinite(v))
		fprintf(j->f, "%.*f", decimals, v);
	else
		fputs("null", j->f);
}

void json_num_or_null(struct json *j, const char *key, double v, int decimals)
{
	json_num(j, key, v < 0 ? NAN : v, decimals);
}

void json_int(struct json *j, const char *key, long long v)
{
	json_key(j, key);
	fprintf(j->f, "%lld", v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
	json_key(j, key);
	fputs("null", j->f);
}

void json_argv(struct json *j, const char *key, char *const *argv)
{
	if (!argv) {
		json_null(j, key);
		return;
	}
	json_arr(j, key);
	for (char *const *a = argv; *a; a++)
		json_str(j, NULL, *a);
	json_end_arr(j);
}

void json_stats(struct json *j, const char *key, const struct bench_stats *s, int decimals)
{
	json_obj(j, key);
	json_int(j, "n", s->n);
	json_num(j, "min", s->min, decimals);
	json_num(j, "median", s->median, decimals);
	json_num(j, "p90", s->p90, decimals);
	json_num(j, "max", s->max, decimals);
	json_end_obj(j);
}

void json_finish(struct json *j)
{
	fputc('\n', j->f);
}

/* ----------------------------------------------------------------- machine */

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

void bench_machine_probe(struct bench_machine *m)
{
	memset(m, 0, sizeof(*m));
	struct utsname u;
	if (uname(&u) == 0) {
		snprintf(m->uname, sizeof(m->uname), "%s %s %s %s %s", u.sysname, u.nodename,
			 u.release, u.version, u.machine);
		snprintf(m->kernel_release, sizeof(m->kernel_release), "%s", u.release);
		snprintf(m->arch, sizeof(m->arch), "%s", u.machine);
	}
	m->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->cpu_model, sizeof(m->cpu_model), "unknown");
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		bool got_model = false, got_flags = false;
		while (getline(&line, &cap, f) > 0 && !(got_model && got_flags)) {
			char *colon = strchr(line, ':');
			if (!colon)
				continue;
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			v[strcspn(v, "\n")] = 0;
			if (!got_model && strncmp(line, "model name", 10) == 0) {
				snprintf(m->cpu_model, sizeof(m->cpu_model), "%s", v);
				got_model = true;
			} else if (!got_flags && strncmp(line, "flags", 5) == 0) {
				char *tok, *save = NULL;
				for (tok = strtok_r(v, " ", &save); tok;
				     tok = strtok_r(NULL, " ", &save))
					if (strcmp(tok, "vmx") == 0 || strcmp(tok, "svm") == 0)
						m->cpu_has_vmx_svm = true;
				got_flags = true;
			}
		}
		free(line);
		fclose(f);
	}
	m->have_kvm = exists("/dev/kvm");
	m->kvm_pvm = exists("/sys/module/kvm_pvm");
	const char *l1 = getenv("EMBER_L1");
	m->under_l1 = l1 && strcmp(l1, "1") == 0;
	if (!m->have_kvm)
		snprintf(m->kvm_kind, sizeof(m->kvm_kind), "none (no /dev/kvm)");
	else if (m->kvm_pvm)
		snprintf(m->kvm_kind, sizeof(m->kvm_kind), "kvm_pvm");
	else if (exists("/sys/module/kvm_intel"))
		snprintf(m->kvm_kind, sizeof(m->kvm_kind), "hardware (kvm_intel)%s",
			 m->under_l1 ? " on TCG-emulated VMX" : "");
	else if (exists("/sys/module/kvm_amd"))
		snprintf(m->kvm_kind, sizeof(m->kvm_kind), "hardware (kvm_amd)%s",
			 m->under_l1 ? " on TCG-emulated SVM" : "");
	else
		snprintf(m->kvm_kind, sizeof(m->kvm_kind), "unknown");
}

void bench_machine_json(struct json *j, const char *key, const struct bench_machine *m)
{
	json_obj(j, key);
	json_str(j, "uname", m->uname);
	json_str(j, "kernel", m->kernel_release);
	json_str(j, "arch", m->arch);
	json_str(j, "cpu_model", m->cpu_model);
	json_int(j, "cpus_online", m->cpus);
	json_bool(j, "dev_kvm", m->have_kvm);
	json_str(j, "kvm", m->kvm_kind);
	json_bool(j, "kvm_pvm", m->kvm_pvm);
	json_bool(j, "cpu_flags_vmx_or_svm", m->cpu_has_vmx_svm);
	json_bool(j, "under_tests_l1", m->under_l1);
	json_end_obj(j);
}

char *bench_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p) {
		fprintf(stderr, "benchmark: out of memory\n");
		exit(1);
	}
	return p;
}

char *bench_xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0) {
		fprintf(stderr, "benchmark: out of memory\n");
		exit(1);
	}
	va_end(ap);
	return s;
}
