#include "tests/unit/test_jailer_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env_path(const char *name)
{
	const char *v = getenv(name);
	cr_assert(v && *v, "%s is not set (run the test through meson test)", name);
	return v;
}

const char *jailer_bin(void)
{
	return env_path("EMBER_JAILER_BIN");
}

const char *probe_bin(void)
{
	return env_path("EMBER_JAIL_PROBE");
}

const char *static_ember_bin(void)
{
	const char *v = getenv("EMBER_STATIC_BIN");
	return v && *v && access(v, X_OK) == 0 ? v : NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	cr_assert(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = 0;
}

void jrun_start(struct jrun *r, const char *const *args, int inherit_fd)
{
	memset(r, 0, sizeof(*r));
	r->out = strdup("");
	r->err = strdup("");
	int in[2], out[2], err[2];
	cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
		  pipe2(err, O_CLOEXEC) == 0);
	const char *argv[64];
	size_t n = 0;
	argv[n++] = jailer_bin();
	for (; args[n - 1] && n < 63; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	r->pid = fork();
	cr_assert(r->pid >= 0);
	if (r->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (inherit_fd >= 0)
			fcntl(inherit_fd, F_SETFD, 0);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	r->in_fd = in[1];
	r->out_fd = out[0];
	r->err_fd = err[0];
}

/* One round of reading; false when both pipes have ended or the deadline passed. */
static bool pump(struct jrun *r, double deadline)
{
	if (r->out_fd < 0 && r->err_fd < 0)
		return false;
	double left = deadline - now_s();
	if (left <= 0)
		return false;
	struct pollfd p[2] = {{r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}};
	int pr = poll(p, 2, (int)(left * 1000) + 1);
	if (pr < 0 && errno != EINTR)
		return false;
	for (int i = 0; i < 2; i++) {
		if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		char chunk[4096];
		ssize_t got = read(p[i].fd, chunk, sizeof(chunk));
		int *fd = i == 0 ? &r->out_fd : &r->err_fd;
		if (got <= 0) {
			close(*fd);
			*fd = -1;
			continue;
		}
		if (i == 0)
			append(&r->out, &r->out_len, chunk, (size_t)got);
		else
			append(&r->err, &r->err_len, chunk, (size_t)got);
	}
	return true;
}

bool jrun_wait_for(struct jrun *r, const char *text, double timeout_s)
{
	double deadline = now_s() + timeout_s;
	while (!strstr(r->out, text))
		if (!pump(r, deadline))
			return strstr(r->out, text) != NULL;
	return true;
}

void jrun_close_stdin(struct jrun *r)
{
	if (r->in_fd >= 0)
		close(r->in_fd);
	r->in_fd = -1;
}

void jrun_finish(struct jrun *r, double timeout_s)
{
	double deadline = now_s() + timeout_s;
	while (pump(r, deadline))
		;
	if (r->out_fd >= 0 || r->err_fd >= 0) {
		r->timed_out = true;
		kill(r->pid, SIGKILL);
	}
	int status;
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	jrun_close_stdin(r);
	if (r->out_fd >= 0)
		close(r->out_fd);
	if (r->err_fd >= 0)
		close(r->err_fd);
	r->out_fd = r->err_fd = -1;
	if (WIFEXITED(status)) {
		r->exit_code = WEXITSTATUS(status);
	} else {
		r->exit_code = -1;
		r->term_signal = WTERMSIG(status);
	}
}

void jrun(struct jrun *r, const char *const *args, double timeout_s)
{
	jrun_start(r, args, -1);
	jrun_close_stdin(r);
	jrun_finish(r, timeout_s);
}

void jrun_free(struct jrun *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

const char *jrun_describe(const struct jrun *r)
{
	static char buf[12288];
	snprintf(buf, sizeof(buf),
		 "exit=%d signal=%d timed_out=%d\n--- stdout ---\n%.5000s\n--- stderr ---\n%.5000s",
		 r->exit_code, r->term_signal, r->timed_out, r->out ? r->out : "",
		 r->err ? r->err : "");
	return buf;
}

const char *probe_value(const char *text, const char *key)
{
	static char value[4096];
	value[0] = 0;
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, "\n");
			if (n >= sizeof(value))
				n = sizeof(value) - 1;
			memcpy(value, p + kl + 1, n);
			value[n] = 0;
			break;
		}
	}
	return value;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	/* A tmpfs from jail_test_base(): its mount point is left once it is empty. */
	if (umount2(path, MNT_DETACH) == 0)
		rmdir(path);
}

/* Whether device nodes work in `dir` and Unix sockets can be bound there. 9p (the build folder
 * inside tests/l1/run) refuses both, though statfs reports the host's filesystem type. */
static bool can_hold_a_jail(const char *dir)
{
	struct statvfs sv;
	cr_assert(statvfs(dir, &sv) == 0);
	if (sv.f_flag & ST_NODEV)
		return false;
	char node[4096], sock_dir[4096];
	snprintf(node, sizeof(node), "%s/null", dir);
	bool ok = mknod(node, S_IFCHR | 0600, makedev(1, 3)) == 0;
	if (ok) {
		int fd = open(node, O_RDONLY | O_CLOEXEC);
		ok = fd >= 0;
		if (fd >= 0)
			close(fd);
		unlink(node);
	}
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(sock_dir, sizeof(sock_dir), "%s", dir);
	if (ok && cwd >= 0 && chdir(sock_dir) == 0) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "probe.sock"};
		ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (fd >= 0)
			close(fd);
		unlink("probe.sock");
		cr_assert(fchdir(cwd) == 0);
	}
	if (cwd >= 0)
		close(cwd);
	return ok;
}

char *jail_test_base(const char *name)
{
	const char *dir = env_path("EMBER_JAIL_TEST_DIR");
	char *base;
	cr_assert(asprintf(&base, "%s/jail-bases/%s-%d", dir, name, (int)getpid()) > 0);
	char *parent;
	cr_assert(asprintf(&parent, "%s/jail-bases", dir) > 0);
	mkdir(parent, 0755);
	free(parent);
	remove_tree(base);
	cr_assert(mkdir(base, 0755) == 0, "mkdir %s: %s", base, strerror(errno));
	if (!can_hold_a_jail(base)) {
		cr_assert(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
		cr_assert(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
		cr_assert(mount("jail-test", base, "tmpfs", 0, "mode=0755") == 0, "mount tmpfs: %s",
			  strerror(errno));
	}
	return base;
}
