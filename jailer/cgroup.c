#include "jailer/cgroup.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where a controller lives on this host. */
struct hierarchy {
	char mount[PATH_MAX]; /* mount point */
	char root[PATH_MAX];  /* the hierarchy's folder mounted there ("/" normally) */
	bool v2;
	bool has_cpuset; /* v1 hierarchy with cpuset: new folders need cpus and mems */
};

static int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("open %s", path);
	size_t n = 0;
	while (n + 1 < size) {
		ssize_t got = read(fd, buf + n, size - 1 - n);
		if (got < 0) {
			int r = err_errno("read %s", path);
			close(fd);
			return r;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	buf[n] = 0;
	return (int)n;
}

static int write_text(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("open %s", path);
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	int r = 0;
	if (n < 0)
		r = err_errno("writing '%s' to %s", value, path);
	else if ((size_t)n != len)
		r = err_set(EIO, "writing '%s' to %s: short write", value, path);
	if (close(fd) < 0 && r == 0)
		r = err_errno("writing '%s' to %s", value, path);
	return r;
}

/* True when `word` is one of the tokens of `list` separated by any of `seps`. */
static bool has_token(const char *list, const char *word, const char *seps)
{
	size_t wl = strlen(word);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, seps);
		if (n == wl && strncmp(p, word, wl) == 0)
			return true;
		p += n;
		p += strspn(p, seps);
	}
	return false;
}

/* mountinfo escapes blanks and backslashes in paths as \ooo. */
static void unescape(const char *in, size_t len, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < size; i++) {
		if (in[i] == '\\' && i + 3 < len && in[i + 1] >= '0' && in[i + 1] <= '3') {
			out[o++] = (char)((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 +
					  (in[i + 3] - '0'));
			i += 3;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = 0;
}

/* The n-th space-separated field of a line (0-based): start and length. */
static bool field(const char *line, unsigned n, const char **start, size_t *len)
{
	const char *p = line;
	for (unsigned i = 0; i < n; i++) {
		p = strchr(p, ' ');
		if (!p)
			return false;
		p++;
	}
	*start = p;
	*len = strcspn(p, " \n");
	return true;
}

/* Find `controller` in /proc/self/mountinfo: a v1 hierarchy that has it, or else the v2
 * hierarchy if its root offers it. */
static int locate(const char *controller, struct hierarchy *h)
{
	static char info[256 * 1024];
	int r = read_text("/proc/self/mountinfo", info, sizeof(info));
	if (r < 0)
		return r;
	bool have_v2 = false;
	struct hierarchy v2 = {.v2 = true};
	for (char *line = info; *line;) {
		char *next = strchrnul(line, '\n');
		char saved = *next;
		*next = 0;
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
		 */
		const char *sep = strstr(line, " - ");
		const char *root, *mnt, *type, *super;
		size_t root_len, mnt_len, type_len, super_len;
		if (sep && field(line, 3, &root, &root_len) && field(line, 4, &mnt, &mnt_len) &&
		    field(sep + 3, 0, &type, &type_len) && field(sep + 3, 2, &super, &super_len)) {
			char supers[512];
			snprintf(supers, sizeof(supers), "%.*s", (int)super_len, super);
			bool is_v1 = type_len == 6 && strncmp(type, "cgroup", 6) == 0;
			bool is_v2 = type_len == 7 && strncmp(type, "cgroup2", 7) == 0;
			struct hierarchy *dst = NULL;
			if (is_v1 && has_token(supers, controller, ","))
				dst = h;
			else if (is_v2 && !have_v2)
				dst = &v2;
			if (dst) {
				unescape(mnt, mnt_len, dst->mount, sizeof(dst->mount));
				unescape(root, root_len, dst->root, sizeof(dst->root));
				dst->v2 = is_v2;
				dst->has_cpuset = is_v1 && has_token(supers, "cpuset", ",");
				if (is_v2) {
					have_v2 = true;
				} else {
					*next = saved;
					return 0;
				}
			}
		}
		*next = saved;
		line = *next ? next + 1 : next;
	}
	if (have_v2) {
		char path[PATH_MAX + 32], list[1024];
		snprintf(path, sizeof(path), "%s/cgroup.controllers", v2.mount);
		if (read_text(path, list, sizeof(list)) >= 0 &&
		    has_token(list, controller, " \n")) {
			*h = v2;
			return 0;
		}
	}
	return err_set(ENOENT,
		       "no cgroup hierarchy on this host offers the %s controller (no cgroup v1 "
		       "mount has it%s)",
		       controller,
		       have_v2 ? ", and the cgroup v2 root does not list it in cgroup.controllers"
			       : ", and cgroup v2 is not mounted");
}

/* This process's cgroup in hierarchy `h`, from /proc/self/cgroup, relative to h's mount. */
static int own_cgroup(const struct hierarchy *h, const char *controller, char *out, size_t size)
{
	char text[8192];
	int r = read_text("/proc/self/cgroup", text, sizeof(text));
	if (r < 0)
		return r;
	/* "ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *list = c1 + 1, *path = c2 + 1;
		bool match = h->v2 ? (strncmp(line, "0:", 2) == 0 && !*list)
				   : has_token(list, controller, ",");
		if (!match)
			continue;
		size_t rl = strlen(h->root);
		if (strcmp(h->root, "/") != 0) {
			if (strncmp(path, h->root, rl) != 0 || (path[rl] && path[rl] != '/'))
				return err_set(
				    ENOENT,
				    "the %s hierarchy mounted at %s shows %s, which does "
				    "not hold this process's cgroup %s: give "
				    "--parent-cgroup",
				    controller, h->mount, h->root, path);
			path += rl;
		}
		snprintf(out, size, "%s", strcmp(path, "/") == 0 ? "" : path);
		return 0;
	}
	return err_set(ENOENT, "/proc/self/cgroup has no line for the %s hierarchy", controller);
}

/* A new v1 cpuset folder takes no process until it has cpus and mems: inherit the parent's. */
static int cpuset_inherit(const char *dir)
{
	static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
	for (unsigned i = 0; i < 2; i++) {
		char path[PATH_MAX + 32], parent[PATH_MAX + 32], value[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		snprintf(parent, sizeof(parent), "%.*s/%s", (int)(strrchr(dir, '/') - dir), dir,
			 files[i]);
		int r = read_text(path, value, sizeof(value));
		if (r < 0)
			return r;
		if (value[0] && value[0] != '\n')
			continue;
		r = read_text(parent, value, sizeof(value));
		if (r < 0)
			return r;
		r = write_text(path, value);
		if (r < 0)
			return r;
	}
	return 0;
}

/* v2 hands a controller to a folder's children only when every ancestor's
 * cgroup.subtree_control names it. */
static int v2_enable(const char *dir, const char *controller)
{
	char path[PATH_MAX + 32], list[1024], word[80];
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	int r = read_text(path, list, sizeof(list));
	if (r < 0)
		return r;
	if (has_token(list, controller, " \n"))
		return 0;
	snprintf(word, sizeof(word), "+%s", controller);
	r = write_text(path, word);
	if (r == -EBUSY)
		return err_set(
		    EBUSY,
		    "cannot enable the %s controller in %s: that cgroup has processes "
		    "of its own, and cgroup v2 gives controllers only to the children of "
		    "cgroups without any; give --parent-cgroup a cgroup without "
		    "processes",
		    controller, path);
	return r;
}

/* mkdir every missing folder of `rel` below `h`'s mount, enabling controllers on the way. */
static int make_path(const struct hierarchy *h, struct cgroup_dir *d, const char *rel)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s", h->mount);
	const char *p = rel;
	while (*p == '/')
		p++;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (d->v2) {
			/* Enable the controllers in this level for the children below it. */
			char list[sizeof(d->controllers)];
			snprintf(list, sizeof(list), "%s", d->controllers);
			for (char *c = strtok(list, " "); c; c = strtok(NULL, " ")) {
				int r = v2_enable(path, c);
				if (r < 0)
					return r;
			}
		}
		if ((size_t)n + len + 1 >= sizeof(path))
			return err_set(ENAMETOOLONG, "cgroup path %s%s too long", h->mount, rel);
		n += snprintf(path + n, sizeof(path) - (size_t)n, "/%.*s", (int)len, p);
		if (mkdir(path, 0755) == 0) {
			d->made_levels++;
			snprintf(d->path, sizeof(d->path), "%s", path);
			if (h->has_cpuset) {
				int r = cpuset_inherit(path);
				if (r < 0)
					return r;
			}
		} else if (errno != EEXIST) {
			return err_errno("mkdir %s", path);
		} else if (d->made_levels > 0) {
			return err_set(EEXIST, "%s appeared while the jailer made it", path);
		}
		p += len;
		while (*p == '/')
			p++;
	}
	snprintf(d->path, sizeof(d->path), "%s", path);
	return 0;
}

int cgroup_v1_translate(const char *file, const char *value, char files[2][64],
			char values[2][JAILER_CGROUP_VALUE_MAX])
{
	bool is_max = strcmp(value, "max") == 0;
	if (strcmp(file, "memory.max") == 0) {
		snprintf(files[0], 64, "memory.limit_in_bytes");
		snprintf(values[0], JAILER_CGROUP_VALUE_MAX, "%s", is_max ? "-1" : value);
		return 1;
	}
	if (strcmp(file, "cpu.max") == 0) {
		/* "QUOTA [PERIOD]", QUOTA "max" for none; v1 wants the period first, as a quota
		 * is checked against it. */
		char quota[64] = "", period[64] = "100000";
		size_t qlen = strcspn(value, " ");
		const char *rest = value + qlen + (value[qlen] == ' ');
		bool ok = qlen > 0 && qlen < sizeof(quota) && strlen(rest) < sizeof(period) &&
			  (value[qlen] == 0 || *rest);
		if (ok) {
			memcpy(quota, value, qlen);
			if (*rest)
				snprintf(period, sizeof(period), "%s", rest);
			ok = (strcmp(quota, "max") == 0 || strspn(quota, "0123456789") == qlen) &&
			     strspn(period, "0123456789") == strlen(period);
		}
		if (!ok)
			return err_set(EINVAL, "cpu.max=%s: expected \"QUOTA [PERIOD]\" in µs",
				       value);
		snprintf(files[0], 64, "cpu.cfs_period_us");
		snprintf(values[0], JAILER_CGROUP_VALUE_MAX, "%s", period);
		snprintf(files[1], 64, "cpu.cfs_quota_us");
		snprintf(values[1], JAILER_CGROUP_VALUE_MAX, "%s",
			 strcmp(quota, "max") == 0 ? "-1" : quota);
		return 2;
	}
	if (strcmp(file, "cpu.weight") == 0) {
		char *end;
		unsigned long long w = strtoull(value, &end, 10);
		if (*end || w < 1 || w > 10000)
			return err_set(EINVAL, "cpu.weight=%s: expected 1 to 10000", value);
		/* v2's default weight 100 is v1's default 1024 shares. */
		unsigned long long shares = w * 1024 / 100;
		snprintf(files[0], 64, "cpu.shares");
		snprintf(values[0], JAILER_CGROUP_VALUE_MAX, "%llu", shares < 2 ? 2 : shares);
		return 1;
	}
	snprintf(files[0], 64, "%s", file);
	snprintf(values[0], JAILER_CGROUP_VALUE_MAX, "%s", value);
	return 1;
}

static int write_setting(const struct cgroup_dir *d, const struct cgroup_setting *s)
{
	char files[2][64], values[2][JAILER_CGROUP_VALUE_MAX];
	int n = 1;
	if (d->v2) {
		snprintf(files[0], 64, "%s", s->file);
		snprintf(values[0], JAILER_CGROUP_VALUE_MAX, "%s", s->value);
	} else {
		n = cgroup_v1_translate(s->file, s->value, files, values);
		if (n < 0)
			return n;
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 80];
		snprintf(path, sizeof(path), "%s/%s", d->path, files[i]);
		int r = write_text(path, values[i]);
		if (r == -ENOENT)
			return err_set(
			    ENOENT,
			    "--cgroup %s=%s: %s has no %s (this host's controller is "
			    "cgroup %s%s)",
			    s->file, s->value, d->path, files[i], d->v2 ? "v2" : "v1",
			    d->v2 ? "" : "; v1 file names work too, e.g. memory.limit_in_bytes");
		if (r < 0)
			return err_wrap(r, "--cgroup %s=%s", s->file, s->value);
	}
	return 0;
}

/* Refuse a jail cgroup that already holds processes: someone else's, whatever its name. */
static int check_empty(const struct cgroup_dir *d)
{
	char path[PATH_MAX + 32], procs[64];
	snprintf(path, sizeof(path), "%s/cgroup.procs", d->path);
	int r = read_text(path, procs, sizeof(procs));
	if (r < 0)
		return r;
	if (procs[0])
		return err_set(EBUSY, "cgroup %s already holds processes", d->path);
	return 0;
}

static int create(struct cgroup_jail *cg, const char *id, const char *parent,
		  const struct cgroup_setting *settings, unsigned n)
{
	struct hierarchy hs[CGROUP_MAX_HIERARCHIES];
	char rel[CGROUP_MAX_HIERARCHIES][PATH_MAX];
	/* Group the settings' controllers by hierarchy (cpu and cpuacct may share one). */
	for (unsigned i = 0; i < n; i++) {
		char controller[64];
		snprintf(controller, sizeof(controller), "%.*s",
			 (int)strcspn(settings[i].file, "."), settings[i].file);
		struct hierarchy h;
		int r = locate(controller, &h);
		if (r < 0)
			return err_wrap(r, "--cgroup %s", settings[i].file);
		unsigned k = 0;
		while (k < cg->ndirs && strcmp(hs[k].mount, h.mount) != 0)
			k++;
		if (k == cg->ndirs) {
			if (k == CGROUP_MAX_HIERARCHIES)
				return err_set(ENOSPC, "too many cgroup hierarchies");
			hs[k] = h;
			struct cgroup_dir *d = &cg->dirs[k];
			memset(d, 0, sizeof(*d));
			d->v2 = h.v2;
			char own[PATH_MAX] = "";
			if (!parent) {
				r = own_cgroup(&h, controller, own, sizeof(own));
				if (r < 0)
					return r;
			}
			int len = parent ? snprintf(rel[k], PATH_MAX, "/%s/%s", parent, id)
					 : snprintf(rel[k], PATH_MAX, "%s/ember/%s", own, id);
			if (len < 0 || len >= PATH_MAX)
				return err_set(ENAMETOOLONG, "cgroup path for %s too long", id);
			cg->ndirs++;
		}
		struct cgroup_dir *d = &cg->dirs[k];
		if (!has_token(d->controllers, controller, " ")) {
			size_t used = strlen(d->controllers);
			if (used + strlen(controller) + 2 > sizeof(d->controllers))
				return err_set(ENOSPC, "too many cgroup controllers");
			snprintf(d->controllers + used, sizeof(d->controllers) - used, "%s%s",
				 used ? " " : "", controller);
		}
	}
	for (unsigned k = 0; k < cg->ndirs; k++) {
		int r = make_path(&hs[k], &cg->dirs[k], rel[k]);
		if (r == 0 && cg->dirs[k].made_levels == 0)
			r = check_empty(&cg->dirs[k]);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < n; i++) {
		char controller[64];
		snprintf(controller, sizeof(controller), "%.*s",
			 (int)strcspn(settings[i].file, "."), settings[i].file);
		for (unsigned k = 0; k < cg->ndirs; k++) {
			if (!has_token(cg->dirs[k].controllers, controller, " "))
				continue;
			int r = write_setting(&cg->dirs[k], &settings[i]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int cgroup_jail_create(struct cgroup_jail *cg, const char *id, const char *parent,
		       const struct cgroup_setting *settings, unsigned n)
{
	memset(cg, 0, sizeof(*cg));
	int r = create(cg, id, parent, settings, n);
	if (r < 0) {
		cgroup_jail_remove(cg);
		return r;
	}
	return 0;
}

int cgroup_jail_attach(const struct cgroup_jail *cg, pid_t pid)
{
	char value[32];
	snprintf(value, sizeof(value), "%d", (int)pid);
	for (unsigned k = 0; k < cg->ndirs; k++) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dirs[k].path);
		int r = write_text(path, value);
		if (r < 0)
			return err_wrap(r, "moving the monitor (pid %d) into its cgroup", (int)pid);
	}
	return 0;
}

long cgroup_jail_oom_kills(const struct cgroup_jail *cg)
{
	for (unsigned k = 0; k < cg->ndirs; k++) {
		const struct cgroup_dir *d = &cg->dirs[k];
		if (!has_token(d->controllers, "memory", " "))
			continue;
		char path[PATH_MAX + 32], text[2048];
		snprintf(path, sizeof(path), "%s/%s", d->path,
			 d->v2 ? "memory.events" : "memory.oom_control");
		if (read_text(path, text, sizeof(text)) < 0)
			return -1;
		const char *line = strstr(text, "oom_kill ");
		return line ? strtol(line + 9, NULL, 10) : -1;
	}
	return -1;
}

void cgroup_jail_remove(struct cgroup_jail *cg)
{
	for (unsigned k = 0; k < cg->ndirs; k++) {
		struct cgroup_dir *d = &cg->dirs[k];
		for (unsigned level = 0; level < d->made_levels; level++) {
			if (rmdir(d->path) < 0) {
				/* An upper folder another jail still uses is theirs to remove. */
				if (level > 0 && (errno == EBUSY || errno == ENOTEMPTY))
					break;
				fprintf(stderr,
					"ember-jailer: warning: cannot remove cgroup %s: %s\n",
					d->path, strerror(errno));
				break;
			}
			char *slash = strrchr(d->path, '/');
			if (!slash)
				break;
			*slash = 0;
		}
		d->made_levels = 0;
	}
	cg->ndirs = 0;
}
