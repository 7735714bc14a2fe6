/* Snapshots end to end: a guest paused and written through the API, then `ember restore` and
 * `snapshot_load` bringing it back in new processes, exactly where it was; diffs layered on their
 * base; clones side by side; and every kind of bad snapshot refused before any vCPU runs. */
#include "api/client.h"
#include "common/err.h"
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Snapshot files and sockets under /tmp (a tmpfs inside the L1 VM: sparse files, mmap). */
static char dir[256];
static char sock_path[108];

static void setup_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ember-snap-it-%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(sock_path, sizeof(sock_path), "/tmp/ember-snap-it-%d.sock", (int)getpid());
	unlink(sock_path);
}

static char *path_in(const char *name)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static Ember__V1__Response *call(Ember__V1__Request *req)
{
	Ember__V1__Response *resp = NULL;
	cr_assert(api_client_request(sock_path, 60000, req, NULL, 0, &resp) == 0, "API: %s",
		  err_msg());
	return resp;
}

static void expect_status(Ember__V1__Request *req, Ember__V1__Status st, const char *needle)
{
	Ember__V1__Response *resp = call(req);
	cr_expect(resp->status == st, "op %d: %s (%s)", (int)req->op_case,
		  api_status_name(resp->status), resp->message);
	if (needle)
		cr_expect(strstr(resp->message, needle) != NULL, "'%s' lacks '%s'", resp->message,
			  needle);
	ember__v1__response__free_unpacked(resp, NULL);
}

static void simple(Ember__V1__Request__OpCase op, Ember__V1__Status st, const char *needle)
{
	static Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = op;
	req.start = &empty;
	expect_status(&req, st, needle);
}

static void snapshot_create(const char *state, const char *mem, bool diff, Ember__V1__Status st,
			    const char *needle)
{
	Ember__V1__FileSource s = EMBER__V1__FILE_SOURCE__INIT, m = EMBER__V1__FILE_SOURCE__INIT;
	s.source_case = m.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	s.path = (char *)state;
	m.path = (char *)mem;
	Ember__V1__SnapshotCreate c = EMBER__V1__SNAPSHOT_CREATE__INIT;
	c.state = &s;
	c.mem = &m;
	c.diff = diff;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_SNAPSHOT_CREATE;
	req.snapshot_create = &c;
	expect_status(&req, st, needle);
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

/* Wait for a whole counter line after `from`; returns its value. */
static long long next_counter(struct ember_proc *p, size_t from, double timeout_s)
{
	for (int i = 0; i < timeout_s * 20; i++) {
		long long v = last_counter(p->out, from);
		if (v >= 0)
			return v;
		if (p->out_fd < 0)
			break;
		ember_proc_poll(p, 50);
	}
	return -1;
}

static long long file_blocks_kib(const char *path)
{
	struct stat st;
	cr_assert(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return (long long)st.st_blocks / 2;
}

static unsigned long file_crc(const char *path)
{
	return crc32_file(path);
}

/* Boot the counter unikernel with an API socket, let it count, pause, and snapshot it. */
static void counter_snapshot(struct ember_proc *p, const char *state, const char *mem,
			     long long *at_pause)
{
	const char *args[] = {
	    "run", "--kernel",	 unikernel_path(), "--cmdline",	  "check=counter", "--mem-mib",
	    "64",  "--api-sock", sock_path,	   "--log-level", "info",	   NULL};
	ember_spawn(p, args);
	cr_assert(wait_for_socket(sock_path, 60), "no API socket: %s", p->err);
	cr_assert(ember_proc_wait_out(p, 0, "counter: 3", 240), "out:\n%s\nerr:\n%s", p->out,
		  p->err);
	simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	ember_proc_poll(p, 200);
	*at_pause = last_counter(p->out, 0);
	cr_assert(*at_pause > 0);
	snapshot_create(state, mem, false, EMBER__V1__STATUS__OK, NULL);
}

static void stop_monitor(struct ember_proc *p)
{
	simple(EMBER__V1__REQUEST__OP_STOP, EMBER__V1__STATUS__OK, NULL);
	cr_expect(ember_proc_wait_exit(p, 60) == 0, "exit %d: %s", p->exit_code, p->err);
	cr_expect(strstr(p->err, "AddressSanitizer") == NULL, "%s", p->err);
}

Test(snapshot, restore_continues_the_counter_in_new_processes, .timeout = 900)
{
	require_kvm();
	setup_dir();
	char *state = path_in("c.state"), *mem = path_in("c.mem");
	struct ember_proc p;
	long long at_pause;
	counter_snapshot(&p, state, mem, &at_pause);
	/* Written whole, under the final names only; the memory file sparse. */
	char *tmp;
	cr_assert(asprintf(&tmp, "%s.tmp.%d", state, (int)p.pid) > 0);
	cr_expect(access(tmp, F_OK) != 0, "temporary file left: %s", tmp);
	cr_expect(file_blocks_kib(mem) < 16 * 1024, "memory file holds %lld KiB of 64 MiB",
		  file_blocks_kib(mem));
	/* Not while running; not a diff without a base; resume works after a snapshot. */
	simple(EMBER__V1__REQUEST__OP_RESUME, EMBER__V1__STATUS__OK, NULL);
	snapshot_create(state, mem, false, EMBER__V1__STATUS__FAILED_PRECONDITION, "paused");
	stop_monitor(&p);
	ember_proc_free(&p);
	unsigned long crc_state = file_crc(state), crc_mem = file_crc(mem);

	/* Two clones at once from the same files: each counts on from the saved value. */
	struct ember_proc c1, c2;
	ember_spawn(&c1, (const char *const[]){"restore", "--state", state, "--mem", mem,
					       "--log-level", "info", NULL});
	ember_spawn(&c2, (const char *const[]){"restore", "--state", state, "--mem", mem, NULL});
	long long v1 = next_counter(&c1, 0, 120), v2 = next_counter(&c2, 0, 120);
	cr_expect(v1 > at_pause && v2 > at_pause,
		  "restored counters %lld and %lld, saved at %lld; out1:\n%s\nerr1:\n%s", v1, v2,
		  at_pause, c1.out, c1.err);
	cr_expect(strstr(c1.out, "counter: addr=") == NULL,
		  "the clone started the check afresh instead of continuing:\n%s", c1.out);
	cr_expect(strstr(c1.err, "VM restored in") != NULL, "%s", c1.err);
	kill(c1.pid, SIGTERM);
	kill(c2.pid, SIGTERM);
	cr_expect(ember_proc_wait_exit(&c1, 60) == 128 + SIGTERM, "%s", c1.err);
	cr_expect(ember_proc_wait_exit(&c2, 60) == 128 + SIGTERM, "%s", c2.err);
	cr_expect(strstr(c1.err, "AddressSanitizer") == NULL, "%s", c1.err);
	ember_proc_free(&c1);
	ember_proc_free(&c2);
	cr_expect(file_crc(state) == crc_state && file_crc(mem) == crc_mem,
		  "a restore modified the snapshot files");

	/* Through the API of an empty monitor, paused first. */
	struct ember_proc e;
	ember_spawn(&e, (const char *const[]){"--api-sock", sock_path, NULL});
	cr_assert(wait_for_socket(sock_path, 60));
	Ember__V1__FileSource s = EMBER__V1__FILE_SOURCE__INIT, m = EMBER__V1__FILE_SOURCE__INIT;
	s.source_case = m.source_case = EMBER__V1__FILE_SOURCE__SOURCE_PATH;
	s.path = state;
	m.path = mem;
	Ember__V1__SnapshotLoad l = EMBER__V1__SNAPSHOT_LOAD__INIT;
	l.state = &s;
	l.mem = &m;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = EMBER__V1__REQUEST__OP_SNAPSHOT_LOAD;
	req.snapshot_load = &l;
	expect_status(&req, EMBER__V1__STATUS__OK, NULL);
	expect_status(&req, EMBER__V1__STATUS__FAILED_PRECONDITION, "before start");
	for (int i = 0; i < 10; i++)
		ember_proc_poll(&e, 50);
	cr_expect(last_counter(e.out, 0) < 0, "counted while loaded paused:\n%s", e.out);
	simple(EMBER__V1__REQUEST__OP_RESUME, EMBER__V1__STATUS__OK, NULL);
	long long v3 = next_counter(&e, 0, 120);
	cr_expect(v3 > at_pause, "counter %lld after snapshot_load, saved %lld", v3, at_pause);
	stop_monitor(&e);
	ember_proc_free(&e);
	free(tmp);
	free(state);
	free(mem);
}

Test(snapshot, diff_layers_on_its_base, .timeout = 900)
{
	require_kvm();
	setup_dir();
	char *state = path_in("d-base.state"), *mem = path_in("d-base.mem");
	char *dstate = path_in("d-diff.state"), *dmem = path_in("d-diff.mem");
	struct ember_proc p;
	long long at_base;
	counter_snapshot(&p, state, mem, &at_base);
	simple(EMBER__V1__REQUEST__OP_RESUME, EMBER__V1__STATUS__OK, NULL);
	size_t mark = p.out_len;
	cr_assert(next_counter(&p, mark, 120) > at_base);
	simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	ember_proc_poll(&p, 200);
	long long at_diff = last_counter(p.out, 0);
	snapshot_create(dstate, dmem, true, EMBER__V1__STATUS__OK, NULL);
	stop_monitor(&p);
	ember_proc_free(&p);
	cr_expect(file_blocks_kib(dmem) < file_blocks_kib(mem),
		  "diff memory %lld KiB, base %lld KiB", file_blocks_kib(dmem),
		  file_blocks_kib(mem));

	struct ember_proc r;
	ember_spawn(&r, (const char *const[]){"restore", "--state", dstate, "--mem", mem,
					      "--diff-mem", dmem, NULL});
	long long v = next_counter(&r, 0, 120);
	cr_expect(v > at_diff, "counter %lld after the diff restore, %lld at the diff", v, at_diff);
	kill(r.pid, SIGTERM);
	ember_proc_wait_exit(&r, 60);
	ember_proc_free(&r);

	/* A diff without its diff memory, or layered on the wrong base, is refused. */
	struct ember_run bad;
	ember_exec(&bad, (const char *const[]){"restore", "--state", dstate, "--mem", mem, NULL},
		   60, NULL, NULL);
	cr_expect(bad.exit_code != 0 && strstr(bad.err, "diff") != NULL, "%s",
		  ember_run_describe(&bad));
	ember_run_free(&bad);
	ember_exec(&bad,
		   (const char *const[]){"restore", "--state", dstate, "--mem", dmem, "--diff-mem",
					 dmem, NULL},
		   60, NULL, NULL);
	cr_expect(bad.exit_code != 0 && strstr(bad.err, "another snapshot") != NULL, "%s",
		  ember_run_describe(&bad));
	ember_run_free(&bad);
	free(state);
	free(mem);
	free(dstate);
	free(dmem);
}

static void copy_file(const char *from, const char *to, long truncate_to, long flip_at)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	cr_assert(in && out);
	char buf[65536];
	size_t n;
	long at = 0;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (flip_at >= at && flip_at < at + (long)n)
			buf[flip_at - at] ^= 0x5a;
		if (truncate_to >= 0 && at + (long)n > truncate_to)
			n = (size_t)(truncate_to - at);
		fwrite(buf, 1, n, out);
		at += (long)n;
		if (truncate_to >= 0 && at >= truncate_to)
			break;
	}
	fclose(in);
	fclose(out);
}

static void expect_refused(const char *state, const char *mem, const char *needle)
{
	struct ember_run r;
	ember_exec(&r, (const char *const[]){"restore", "--state", state, "--mem", mem, NULL}, 60,
		   NULL, NULL);
	cr_expect(r.exit_code == 1 && strstr(r.err, needle) != NULL,
		  "restore %s %s: expected exit 1 and '%s': %s", state, mem, needle,
		  ember_run_describe(&r));
	cr_expect(strstr(r.out, "counter") == NULL, "a refused snapshot ran the guest");
	ember_run_free(&r);
}

Test(snapshot, bad_snapshots_are_refused_before_any_vcpu_runs, .timeout = 900)
{
	require_kvm();
	setup_dir();
	char *state = path_in("b.state"), *mem = path_in("b.mem");
	char *state2 = path_in("b2.state"), *mem2 = path_in("b2.mem");
	struct ember_proc p;
	long long at;
	counter_snapshot(&p, state, mem, &at);
	/* A failed create overwrites nothing: the old file stays whole. */
	FILE *f = fopen(state2, "w");
	fputs("old contents", f);
	fclose(f);
	snapshot_create(state2, "/nonexistent/dir/b2.mem", false, EMBER__V1__STATUS__NOT_FOUND,
			"/nonexistent/dir");
	f = fopen(state2, "r");
	char buf[32] = {0};
	cr_expect(fgets(buf, sizeof(buf), f) && strcmp(buf, "old contents") == 0,
		  "a failed create touched the existing file");
	fclose(f);
	/* Another snapshot of the same VM, for the mismatch below. */
	snapshot_create(state2, mem2, false, EMBER__V1__STATUS__OK, NULL);
	stop_monitor(&p);
	ember_proc_free(&p);

	char *bad = path_in("bad.state");
	struct stat st;
	stat(state, &st);
	copy_file(state, bad, st.st_size / 2, -1);
	expect_refused(bad, mem, "truncated");
	copy_file(state, bad, -1, st.st_size - 10);
	expect_refused(bad, mem, "checksum");
	copy_file(state, bad, -1, 8); /* the format number */
	expect_refused(bad, mem, "format");
	copy_file(state, bad, -1, 0);
	expect_refused(bad, mem, "not an Ember snapshot");
	expect_refused(state, mem2, "another snapshot");
	char *badmem = path_in("bad.mem");
	stat(mem, &st);
	copy_file(mem, badmem, st.st_size - 4096, -1);
	expect_refused(state, badmem, "truncated");
	expect_refused(state, "/nonexistent/b.mem", "/nonexistent/b.mem");
	expect_refused("/etc/hostname", mem, "not an Ember snapshot");
	free(state);
	free(mem);
	free(state2);
	free(mem2);
	free(bad);
	free(badmem);
}

static int uds_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* CONNECT through the hybrid vsock socket and echo a line; true when it came back whole. */
static bool vsock_echo(const char *path, const char *line)
{
	for (int tries = 0; tries < 2000; tries++) {
		int fd = uds_connect(path);
		if (fd >= 0) {
			char buf[128] = {0};
			size_t got = 0;
			if (write(fd, "CONNECT 1234\n", 13) == 13) {
				while (got < sizeof(buf) - 1 && read(fd, buf + got, 1) == 1 &&
				       buf[got++] != '\n')
					;
			}
			if (strncmp(buf, "OK ", 3) == 0) {
				size_t n = strlen(line);
				bool ok = write(fd, line, n) == (ssize_t)n;
				memset(buf, 0, sizeof(buf));
				got = 0;
				while (ok && got < n) {
					ssize_t k = read(fd, buf + got, n - got);
					if (k <= 0)
						break;
					got += (size_t)k;
				}
				close(fd);
				return ok && got == n && memcmp(buf, line, n) == 0;
			}
			close(fd);
		}
		usleep(20000);
	}
	return false;
}

Test(snapshot, vsock_serves_again_after_restore_on_a_new_socket, .timeout = 900)
{
	require_kvm();
	setup_dir();
	char *state = path_in("v.state"), *mem = path_in("v.mem");
	char uds1[108], uds2[108];
	snprintf(uds1, sizeof(uds1), "/tmp/ember-snap-it-%d.v1", (int)getpid());
	snprintf(uds2, sizeof(uds2), "/tmp/ember-snap-it-%d.v2", (int)getpid());
	char vsock_spec[160];
	snprintf(vsock_spec, sizeof(vsock_spec), "cid=3,uds=%s", uds1);
	struct ember_proc p;
	ember_spawn(&p, (const char *const[]){"run", "--kernel", unikernel_path(), "--cmdline",
					      "check=vsock_server vsock_secs=3600", "--mem-mib",
					      "64", "--vsock", vsock_spec, "--rng", "on",
					      "--api-sock", sock_path, NULL});
	cr_assert(wait_for_socket(sock_path, 60));
	cr_assert(vsock_echo(uds1, "before the snapshot\n"), "out:\n%s\nerr:\n%s", p.out, p.err);
	simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	snapshot_create(state, mem, false, EMBER__V1__STATUS__OK, NULL);
	stop_monitor(&p);
	ember_proc_free(&p);

	/* A clone with its own socket and CID: the guest was told its connections are gone and
	 * answers new ones. */
	struct ember_proc r;
	ember_spawn(&r, (const char *const[]){"restore", "--state", state, "--mem", mem,
					      "--vsock-uds", uds2, "--vsock-cid", "7", NULL});
	cr_expect(vsock_echo(uds2, "after the restore\n"),
		  "no echo after restore; out:\n%s\nerr:\n%s", r.out, r.err);
	kill(r.pid, SIGTERM);
	ember_proc_wait_exit(&r, 60);
	ember_proc_free(&r);
	unlink(uds1);
	unlink(uds2);
	free(state);
	free(mem);
}

/* The first whole "rng: <hex>" line at or after `from`, into out[33]. */
static bool rng_line(struct ember_proc *p, size_t from, char out[33])
{
	for (int i = 0; i < 2400; i++) {
		for (const char *s = p->out + from; (s = strstr(s, "rng: ")); s += 5) {
			if (strlen(s) >= 5 + 32 + 1 && s[5 + 32] == '\n') {
				memcpy(out, s + 5, 32);
				out[32] = 0;
				return true;
			}
		}
		if (p->out_fd < 0)
			return false;
		ember_proc_poll(p, 50);
	}
	return false;
}

Test(snapshot, clones_draw_different_entropy, .timeout = 900)
{
	require_kvm();
	setup_dir();
	char *state = path_in("r.state"), *mem = path_in("r.mem");
	struct ember_proc p;
	ember_spawn(&p, (const char *const[]){"run", "--kernel", unikernel_path(), "--cmdline",
					      "check=rng", "--mem-mib", "64", "--rng", "on",
					      "--api-sock", sock_path, NULL});
	cr_assert(wait_for_socket(sock_path, 60));
	char first[33];
	cr_assert(rng_line(&p, 0, first), "no rng line:\n%s\n%s", p.out, p.err);
	simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	snapshot_create(state, mem, false, EMBER__V1__STATUS__OK, NULL);
	stop_monitor(&p);
	ember_proc_free(&p);

	struct ember_proc c1, c2;
	ember_spawn(&c1, (const char *const[]){"restore", "--state", state, "--mem", mem, NULL});
	ember_spawn(&c2, (const char *const[]){"restore", "--state", state, "--mem", mem, NULL});
	char a[33], b[33];
	cr_assert(rng_line(&c1, 0, a) && rng_line(&c2, 0, b), "clones printed no rng line:\n%s\n%s",
		  c1.out, c1.err);
	cr_expect(strcmp(a, b) != 0, "two clones read the same entropy: %s", a);
	kill(c1.pid, SIGTERM);
	kill(c2.pid, SIGTERM);
	ember_proc_wait_exit(&c1, 60);
	ember_proc_wait_exit(&c2, 60);
	ember_proc_free(&c1);
	ember_proc_free(&c2);
	free(state);
	free(mem);
}

Test(snapshot, linux_snapshotted_during_boot_reaches_init_after_restore, .timeout = 1800)
{
	require_kvm();
	const char *kernel = linux_image("bzImage"), *initrd = linux_image("initramfs.cpio.gz");
	if (!kernel || !initrd)
		cr_skip_test("the Linux guest was not built (EMBER_LINUX_DIR)");
	setup_dir();
	char *state = path_in("l.state"), *mem = path_in("l.mem");
	/* kvm_pvm hosts need the workarounds the Linux tests use (ARCHITECTURE.md). */
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	const char *cmdline =
	    pvm ? "noxsave clearcpuid=cx16,popcnt,smap ember.skip_int3_selftest" : "";
	struct ember_proc p;
	ember_spawn(&p, (const char *const[]){"run", "--kernel", kernel, "--initrd", initrd,
					      "--vcpus", "2", "--mem-mib", "256", "--cmdline",
					      cmdline, "--api-sock", sock_path, NULL});
	cr_assert(wait_for_socket(sock_path, 60));
	/* Early in the boot: the kernel has started its CPUs but not reached init. */
	if (!ember_proc_wait_out(&p, 0, "smp: Brought up", 900)) {
		ember_proc_wait_exit(&p, 30);
		cr_assert_fail("no SMP bring-up (exit %d, signal %d):\nout:\n%s\nerr:\n%s",
			       p.exit_code, p.term_signal, p.out, p.err);
	}
	simple(EMBER__V1__REQUEST__OP_PAUSE, EMBER__V1__STATUS__OK, NULL);
	snapshot_create(state, mem, false, EMBER__V1__STATUS__OK, NULL);
	ember_proc_poll(&p, 100);
	bool init_before = strstr(p.out, "Run /init") != NULL;
	stop_monitor(&p);
	ember_proc_free(&p);
	cr_assert(!init_before,
		  "the guest reached init before the snapshot; the test proves nothing");

	struct ember_proc r;
	ember_spawn(&r, (const char *const[]){"restore", "--state", state, "--mem", mem, NULL});
	cr_expect(ember_proc_wait_out(&r, 0, "Run /init", 900),
		  "restored Linux did not reach init:\n%s\n%s", r.out, r.err);
	kill(r.pid, SIGTERM);
	ember_proc_wait_exit(&r, 60);
	ember_proc_free(&r);
	free(state);
	free(mem);
}

/* Every snapshot format an Ember ever wrote keeps loading: tests/fixtures/snapshot-format<N>/ holds
 * one made by tests/fixtures/make-snapshot-fixture.sh when format N was current. */
Test(snapshot, fixtures_of_every_format_still_load, .timeout = 600)
{
	require_kvm();
	setup_dir();
	const char *src = getenv("EMBER_SOURCE_DIR");
	cr_assert(src && *src, "EMBER_SOURCE_DIR is not set");
	unsigned found = 0;
	for (unsigned format = 1; format < 100; format++) {
		char fdir[512], state[600], mem[600], value[600];
		snprintf(fdir, sizeof(fdir), "%s/tests/fixtures/snapshot-format%u", src, format);
		snprintf(state, sizeof(state), "%s/counter.state", fdir);
		if (access(state, R_OK) != 0)
			continue;
		found++;
		snprintf(mem, sizeof(mem), "%s/counter.mem", fdir);
		snprintf(value, sizeof(value), "%s/counter.value", fdir);
		/* Copied out of the source tree first: a restore maps the memory file, and the
		 * source may be on a filesystem that cannot (9p in the L1 VM). */
		char *lstate = path_in("fixture.state"), *lmem = path_in("fixture.mem");
		copy_file(state, lstate, -1, -1);
		copy_file(mem, lmem, -1, -1);
		long long saved = -1;
		FILE *f = fopen(value, "r");
		cr_assert(f && fscanf(f, "%lld", &saved) == 1, "%s", value);
		fclose(f);
		struct ember_proc r;
		ember_spawn(
		    &r, (const char *const[]){"restore", "--state", lstate, "--mem", lmem, NULL});
		long long v = next_counter(&r, 0, 120);
		cr_expect(v > saved,
			  "format %u fixture: counter %lld after restore, saved %lld\n%s", format,
			  v, saved, r.err);
		kill(r.pid, SIGTERM);
		ember_proc_wait_exit(&r, 60);
		ember_proc_free(&r);
		free(lstate);
		free(lmem);
	}
	if (found == 0) {
		fprintf(stderr,
			"SKIPPED: no snapshot fixture under %s/tests/fixtures yet (make one "
			"with tests/fixtures/make-snapshot-fixture.sh)\n",
			src);
		cr_skip_test("no snapshot fixture committed yet");
	}
}
