/* What the host spends on guests: /proc/meminfo, /proc/PID/smaps_rollup, a cgroup v2 child's
 * memory.current, and KSM's switches and counters (turned on for a row, put back after). */
#include "snapbench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static bool field(const char *line, const char *name, long *out)
{
	size_t n = strlen(name);
	if (strncmp(line, name, n) != 0)
		return false;
	*out = strtol(line + n, NULL, 10);
	return true;
}

void sb_meminfo_read(struct sb_meminfo *m)
{
	memset(m, 0, sizeof(*m));
	m->kvm_kib = -1;
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return;
	char line[256];
	int seen = 0;
	while (fgets(line, sizeof(line), f)) {
		seen += field(line, "MemAvailable:", &m->mem_available_kib);
		seen += field(line, "Shmem:", &m->shmem_kib);
		seen += field(line, "AnonPages:", &m->anon_kib);
		seen += field(line, "Cached:", &m->cached_kib);
		seen += field(line, "PageTables:", &m->page_tables_kib);
		seen += field(line, "SecPageTables:", &m->kvm_kib);
	}
	fclose(f);
	m->valid = seen >= 5;
}

void sb_rollup_read(pid_t pid, struct sb_rollup *r)
{
	memset(r, 0, sizeof(*r));
	char path[48];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	char line[256];
	long v, shared_clean = 0, shared_dirty = 0, private_clean = 0, private_dirty = 0;
	while (fgets(line, sizeof(line), f)) {
		if (field(line, "Rss:", &v))
			r->rss_kib = v, r->valid = true;
		else if (field(line, "Pss:", &v))
			r->pss_kib = v;
		else if (field(line, "Pss_Anon:", &v))
			r->pss_anon_kib = v;
		else if (field(line, "Pss_File:", &v))
			r->pss_file_kib = v;
		else if (field(line, "Pss_Shmem:", &v))
			r->pss_shmem_kib = v;
		else if (field(line, "Shared_Clean:", &v))
			shared_clean = v;
		else if (field(line, "Shared_Dirty:", &v))
			shared_dirty = v;
		else if (field(line, "Private_Clean:", &v))
			private_clean = v;
		else if (field(line, "Private_Dirty:", &v))
			private_dirty = v;
	}
	fclose(f);
	r->private_kib = private_clean + private_dirty;
	r->shared_kib = shared_clean + shared_dirty;
}

/* ------------------------------------------------------------------ cgroup */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return w == (ssize_t)strlen(s) ? 0 : -1;
}

static bool read_small(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t got = fread(buf, 1, n - 1, f);
	buf[got] = 0;
	fclose(f);
	return true;
}

void sb_cgroup_make(struct sb_cgroup *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->procs_fd = -1;
	char own[200] = "", buf[512];
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0) {
		snprintf(c->why, sizeof(c->why), "no cgroup v2 hierarchy at /sys/fs/cgroup");
		return;
	}
	/* "0::/path" is our own cgroup; the clones' goes beside us, under our parent's rules. */
	if (read_small("/proc/self/cgroup", buf, sizeof(buf))) {
		char *p = strstr(buf, "0::");
		if (p) {
			p += 3;
			p[strcspn(p, "\n")] = 0;
			snprintf(own, sizeof(own), "%s", strcmp(p, "/") == 0 ? "" : p);
		}
	}
	char parent[300];
	snprintf(parent, sizeof(parent), "/sys/fs/cgroup%s", own);
	char ctl[340];
	snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", parent);
	if (!read_small(ctl, buf, sizeof(buf)) ||
	    (!strstr(buf, "memory") && write_file(ctl, "+memory") < 0)) {
		snprintf(c->why, sizeof(c->why),
			 "cannot enable the memory controller under %.80s (%s): not root, or "
			 "processes live there",
			 parent, strerror(errno));
		return;
	}
	snprintf(c->path, sizeof(c->path), "%.200s/%.64s", parent, name);
	if (mkdir(c->path, 0755) < 0 && errno != EEXIST) {
		snprintf(c->why, sizeof(c->why), "mkdir %.120s: %s", c->path, strerror(errno));
		return;
	}
	snprintf(buf, sizeof(buf), "%s/cgroup.procs", c->path);
	c->procs_fd = open(buf, O_WRONLY | O_CLOEXEC);
	if (c->procs_fd < 0) {
		snprintf(c->why, sizeof(c->why), "open %.120s: %s", buf, strerror(errno));
		rmdir(c->path);
		return;
	}
	c->ok = true;
}

long sb_cgroup_memory_kib(const struct sb_cgroup *c)
{
	if (!c->ok)
		return -1;
	char path[340], buf[64];
	snprintf(path, sizeof(path), "%s/memory.current", c->path);
	if (!read_small(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10) / 1024;
}

void sb_cgroup_remove(struct sb_cgroup *c)
{
	if (c->procs_fd >= 0)
		close(c->procs_fd);
	c->procs_fd = -1;
	if (!c->ok)
		return;
	/* Reaped children leave the cgroup a moment later. */
	for (int i = 0; i < 200 && rmdir(c->path) < 0 && errno == EBUSY; i++)
		usleep(10000);
	c->ok = false;
}

/* -------------------------------------------------------------------- KSM */

#define KSM_DIR "/sys/kernel/mm/ksm/"

long sb_ksm_read(const char *name)
{
	char path[96], buf[64];
	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	if (!read_small(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

static bool save(const char *name, char *out, size_t n)
{
	char path[96];
	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	if (!read_small(path, out, n))
		return false;
	out[strcspn(out, "\n")] = 0;
	return true;
}

void sb_ksm_probe(struct sb_ksm *k)
{
	memset(k, 0, sizeof(*k));
	if (access(KSM_DIR "run", F_OK) != 0) {
		snprintf(k->why, sizeof(k->why), "no " KSM_DIR " (kernel without CONFIG_KSM)");
		return;
	}
	if (access(KSM_DIR "run", W_OK) != 0) {
		snprintf(k->why, sizeof(k->why), KSM_DIR "run is not writable here (needs root)");
		return;
	}
	k->available = true;
}

int sb_ksm_start(struct sb_ksm *k, char *why, size_t n)
{
	if (!save("run", k->saved_run, sizeof(k->saved_run)) ||
	    !save("pages_to_scan", k->saved_pages_to_scan, sizeof(k->saved_pages_to_scan)) ||
	    !save("sleep_millisecs", k->saved_sleep_ms, sizeof(k->saved_sleep_ms))) {
		snprintf(why, n, "reading " KSM_DIR ": %s", strerror(errno));
		return -1;
	}
	k->changed = true;
	/* Faster than the default 100 pages per 20 ms, so that a scan of a hundred clones ends
	 * in seconds rather than minutes. */
	if (write_file(KSM_DIR "pages_to_scan", "4000") < 0 ||
	    write_file(KSM_DIR "sleep_millisecs", "10") < 0 || write_file(KSM_DIR "run", "1") < 0) {
		snprintf(why, n, "turning KSM on: %s", strerror(errno));
		sb_ksm_restore(k);
		return -1;
	}
	return 0;
}

void sb_ksm_restore(struct sb_ksm *k)
{
	if (!k->changed)
		return;
	k->changed = false;
	char v[24];
	snprintf(v, sizeof(v), "%s", k->saved_pages_to_scan);
	write_file(KSM_DIR "pages_to_scan", v);
	snprintf(v, sizeof(v), "%s", k->saved_sleep_ms);
	write_file(KSM_DIR "sleep_millisecs", v);
	snprintf(v, sizeof(v), "%s", k->saved_run);
	if (write_file(KSM_DIR "run", v) < 0)
		fprintf(stderr, "snapshot bench: could not put " KSM_DIR "run back to %s: %s\n",
			k->saved_run, strerror(errno));
}

/* ---------------------------------------------------------------- inotify */

int sb_inotify_dir(const char *dir)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void sb_drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}
