/* Lazy restore through userfaultfd: `ember restore --uffd-record` serves guest RAM on first touch
 * and writes the pages a clone touched; `--uffd-prefetch` copies exactly those in before the
 * guest runs. The counter unikernel must count on in every mode, the prefetching clone must
 * fault less than the recording one, and a list is only accepted for its own snapshot. */
#include "api/client.h"
#include "common/err.h"
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LIST_HEADER 88 /* magic, format, count, RAM pages, the memory file's 64 header bytes */
#define RAM_PAGES   (64u * 1024 * 1024 / 4096)

static char dir[256];
static char sock_path[108];

static void setup_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ember-uffd-it-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(sock_path, sizeof(sock_path), "/tmp/ember-uffd-it-%d.sock", (int)getpid());
	unlink(sock_path);
}

static char *path_in(const char *name)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void request(Ember__V1__Request *req)
{
	Ember__V1__Response *resp = NULL;
	cr_assert(api_client_request(sock_path, 60000, req, NULL, 0, &resp) == 0, "API: %s",
		  err_msg());
	cr_assert(resp->status == EMBER__V1__STATUS__OK, "op %d: %s", (int)req->op_case,
		  resp->message);
	ember__v1__response__free_unpacked(resp, NULL);
}

static void simple(Ember__V1__Request__OpCase op)
{
	static Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = op;
	req.start = &empty;
	request(&req);
}

static void snapshot_to(const char *state, const char *mem)
{
	Ember__V1__FileSource s = EMBER__V1__FILE_SOURCE__INIT, m = EMBER__V1__FILE_SOURCE__INIT;
	s.source_case = m.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	s.path = (char *)state;
	m.path = (char *)mem;
	Ember__V1__SnapshotCreate c = EMBER__V1__SNAPSHOT_CREATE__INIT;
	c.state = &s;
	c.mem = &m;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE;
	req.snapshot_create = &c;
	request(&req);
}

/* The last whole "counter: N" line at or after byte `from`, or -1. */
static long long last_counter(const char *out, size_t from)
{
	long long v = -1;
	for (const char *s = out + from; (s = strstr(s, "counter: ")); s += 9) {
		long long x;
		int used = 0;
		if (sscanf(s + 9, "%lld%n", &x, &used) == 1 && s[9 + used] == '\n')
			v = x;
	}
	return v;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The number N of the first log line "<prefix>N<suffix>", or -1. */
static long long logged(const char *err, const char *prefix, const char *suffix)
{
	for (const char *s = err; (s = strstr(s, prefix)); s++) {
		long long v;
		int used = 0;
		if (sscanf(s + strlen(prefix), "%lld%n", &v, &used) == 1 &&
		    strncmp(s + strlen(prefix) + used, suffix, strlen(suffix)) == 0)
			return v;
	}
	return -1;
}

struct restored {
	long long counter;
	double to_counter_ms; /* spawn → first counter line */
	long long faults, recorded, prefetched;
	char *err;
};

/* Restore with extra options, wait for a counter line, stop it with SIGTERM, read its log. */
static struct restored restore(const char *state, const char *mem, const char *opt,
			       const char *file)
{
	struct ember_proc p;
	const char *args[] = {"restore",     "--state", state, "--mem", mem,
			      "--log-level", "info",	opt,   file,	NULL};
	if (!opt)
		args[7] = NULL;
	double t0 = now_ms();
	ember_spawn(&p, args);
	struct restored r = {.counter = -1};
	for (int i = 0; i < 120 * 20 && r.counter < 0; i++) {
		r.counter = last_counter(p.out, 0);
		if (r.counter < 0) {
			if (p.out_fd < 0)
				break;
			ember_proc_poll(&p, 50);
		}
	}
	r.to_counter_ms = now_ms() - t0;
	kill(p.pid, SIGTERM);
	cr_expect(ember_proc_wait_exit(&p, 60) == 128 + SIGTERM, "exit %d:\n%s", p.exit_code,
		  p.err);
	cr_expect(strstr(p.err, "AddressSanitizer") == NULL &&
		      strstr(p.err, "runtime error") == NULL,
		  "%s", p.err);
	cr_expect(strstr(p.out, "counter: addr=") == NULL, "the check started afresh:\n%s", p.out);
	r.faults = logged(p.err, "uffd: ", " faults served");
	r.recorded = logged(p.err, "uffd: recorded ", " pages");
	r.prefetched = logged(p.err, "uffd: prefetched ", " pages");
	r.err = strdup(p.err);
	ember_proc_free(&p);
	return r;
}

static long long list_count(const char *path)
{
	struct stat st;
	cr_assert(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	cr_assert(st.st_size >= LIST_HEADER && (st.st_size - LIST_HEADER) % 4 == 0,
		  "%s: %lld bytes", path, (long long)st.st_size);
	return (st.st_size - LIST_HEADER) / 4;
}

/* Rewrite the list's entry `i` (u32 at LIST_HEADER + 4i) into a copy. */
static char *list_with_entry(const char *src, const char *name, long long i, uint32_t value)
{
	char *dst = path_in(name);
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	cr_assert(in && out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert(fwrite(buf, 1, n, out) == n);
	fclose(in);
	cr_assert(fseek(out, LIST_HEADER + 4 * i, SEEK_SET) == 0);
	cr_assert(fwrite(&value, 4, 1, out) == 1);
	fclose(out);
	return dst;
}

static int refused(const char *state, const char *mem, const char *list, char **err)
{
	struct ember_run r;
	const char *args[] = {"restore", "--state",	    state, "--mem",
			      mem,	 "--uffd-prefetch", list,  NULL};
	ember_exec(&r, args, 120, NULL, 0);
	int code = r.exit_code;
	*err = strdup(r.err);
	ember_run_free(&r);
	return code;
}

Test(uffd, record_then_prefetch_and_lists_of_other_snapshots_refused, .timeout = 1200)
{
	require_kvm();
	setup_dir();
	char *state = path_in("a.state"), *mem = path_in("a.mem");
	char *state_b = path_in("b.state"), *mem_b = path_in("b.mem");
	char *list = path_in("a.pages");

	/* Two snapshots of one counting guest: A, and B a little later (another id). */
	struct ember_proc p;
	const char *args[] = {
	    "run", "--kernel",	 unikernel_path(), "--cmdline",	  "check=counter", "--mem-mib",
	    "64",  "--api-sock", sock_path,	   "--log-level", "info",	   NULL};
	ember_spawn(&p, args);
	cr_assert(wait_for_socket(sock_path, 60), "no API socket: %s", p.err);
	cr_assert(ember_proc_wait_out(&p, 0, "counter: 3", 240), "out:\n%s\nerr:\n%s", p.out,
		  p.err);
	simple(EMBER__V1__REQUEST__OP_PAUSE);
	ember_proc_poll(&p, 200);
	long long at_pause = last_counter(p.out, 0);
	cr_assert(at_pause > 0);
	snapshot_to(state, mem);
	simple(EMBER__V1__REQUEST__OP_RESUME);
	cr_assert(ember_proc_wait_out(&p, p.out_len, "counter: ", 120));
	simple(EMBER__V1__REQUEST__OP_PAUSE);
	snapshot_to(state_b, mem_b);
	simple(EMBER__V1__REQUEST__OP_STOP);
	cr_expect(ember_proc_wait_exit(&p, 60) == 0, "exit %d: %s", p.exit_code, p.err);
	ember_proc_free(&p);

	/* Plain restore: the mapped file, no pager. */
	struct restored plain = restore(state, mem, NULL, NULL);
	cr_expect(plain.counter > at_pause, "plain restore: counter %lld, saved %lld\n%s",
		  plain.counter, at_pause, plain.err);
	cr_expect(strstr(plain.err, "uffd:") == NULL, "a plain restore used the pager:\n%s",
		  plain.err);

	/* Recording: every page the clone touched faulted, and the list holds them once each. */
	struct restored rec = restore(state, mem, "--uffd-record", list);
	cr_expect(rec.counter > at_pause, "recording restore: counter %lld, saved %lld\n%s",
		  rec.counter, at_pause, rec.err);
	long long n = list_count(list);
	cr_expect(n > 0 && n < RAM_PAGES, "the list holds %lld of %u pages", n, RAM_PAGES);
	cr_expect(rec.recorded == n, "logged %lld recorded pages, the file has %lld\n%s",
		  rec.recorded, n, rec.err);
	cr_expect(rec.faults >= n, "%lld faults for %lld distinct pages\n%s", rec.faults, n,
		  rec.err);
	char *tmp;
	cr_assert(asprintf(&tmp, "%s.tmp.", list) > 0);
	cr_expect(access(tmp, F_OK) != 0);

	/* Prefetching that list: the counter goes on and fewer pages are left to fault. */
	struct restored pre = restore(state, mem, "--uffd-prefetch", list);
	cr_expect(pre.counter > at_pause, "prefetching restore: counter %lld, saved %lld\n%s",
		  pre.counter, at_pause, pre.err);
	cr_expect(pre.prefetched == n, "prefetched %lld of %lld listed\n%s", pre.prefetched, n,
		  pre.err);
	cr_expect(pre.faults >= 0 && pre.faults < rec.faults,
		  "%lld faults with prefetch, %lld while recording\n%s", pre.faults, rec.faults,
		  pre.err);

	/* Numbers for the report (never asserted: L1's timing is emulated). */
	fprintf(stderr,
		"uffd: restore -> counter line: plain %.1f ms, record %.1f ms (%lld faults, %lld "
		"pages listed), prefetch %.1f ms (%lld faults)\n",
		plain.to_counter_ms, rec.to_counter_ms, rec.faults, n, pre.to_counter_ms,
		pre.faults);

	/* Lists that are not this snapshot's: refused before any vCPU runs, with the reason. */
	char *err;
	cr_expect(refused(state_b, mem_b, list, &err) == 1, "%s", err);
	cr_expect(strstr(err, "recorded from another snapshot") != NULL, "%s", err);
	free(err);
	char *bad = list_with_entry(list, "bad-range.pages", n - 1, RAM_PAGES);
	cr_expect(refused(state, mem, bad, &err) == 1, "%s", err);
	cr_expect(strstr(err, "outside RAM") != NULL, "%s", err);
	free(err);
	free(bad);
	cr_expect(refused(state, mem, state, &err) == 1, "%s", err);
	cr_expect(strstr(err, "not an Ember prefetch list") != NULL, "%s", err);
	free(err);

	/* Recording and prefetching at once is a usage error. */
	struct ember_run u;
	ember_exec(&u,
		   (const char *const[]){"restore", "--state", state, "--mem", mem, "--uffd-record",
					 list, "--uffd-prefetch", list, NULL},
		   60, NULL, 0);
	cr_expect(u.exit_code == 2 && strstr(u.err, "exclude each other"), "exit %d: %s",
		  u.exit_code, u.err);
	ember_run_free(&u);

	free(plain.err);
	free(rec.err);
	free(pre.err);
	free(tmp);
	free(state);
	free(mem);
	free(state_b);
	free(mem_b);
	free(list);
}
