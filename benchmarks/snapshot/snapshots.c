/* The snapshots the parts restore: an Ember guest paused and written through the control API,
 * and a QEMU guest stopped and migrated into a file over QMP. */
#include "snapbench.h"

#include "api/client.h"
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Until the marker shows, the child exits, or the time is up. */
static bool wait_marker(struct sb_proc *p, double timeout_s)
{
	double deadline = bench_now_ms() + timeout_s * 1e3;
	while (p->t_marker < 0 && !p->exited && bench_now_ms() < deadline && !sb_interrupted()) {
		struct pollfd pf[2];
		int n = sb_proc_pollfds(p, pf);
		poll(pf, (nfds_t)n, 20);
		sb_proc_io(p, pf, n);
	}
	return p->t_marker >= 0;
}

static bool wait_exit(struct sb_proc *p, double timeout_s)
{
	double deadline = bench_now_ms() + timeout_s * 1e3;
	while (!p->exited && bench_now_ms() < deadline) {
		struct pollfd pf[2];
		int n = sb_proc_pollfds(p, pf);
		poll(pf, (nfds_t)n, 20);
		sb_proc_io(p, pf, n);
	}
	return p->exited;
}

static void describe_failure(struct sb_proc *p, const char *what, char *why, size_t n)
{
	char st[96];
	sb_proc_status(p, st, sizeof(st));
	snprintf(why, n, "%s (%s); console: ...%s; log: ...%s", what, st,
		 bench_buf_tail(&p->out, 200), bench_buf_tail(&p->err, 300));
}

static int api_simple(const char *sock, Ember__V1__Request__OpCase op, char *why, size_t n)
{
	static Ember__V1__Empty empty = EMBER__V1__EMPTY__INIT;
	Ember__V1__Request req = EMBER__V1__REQUEST__INIT;
	req.op_case = op;
	req.start = &empty; /* every Empty op shares the oneof's storage */
	Ember__V1__Response *resp = NULL;
	if (api_client_request(sock, 60000, &req, NULL, 0, &resp) < 0) {
		snprintf(why, n, "API request %d: %s", (int)op, err_msg());
		return -1;
	}
	int r = resp->status == EMBER__V1__STATUS__OK ? 0 : -1;
	if (r < 0)
		snprintf(why, n, "API request %d: %s: %s", (int)op, api_status_name(resp->status),
			 resp->message);
	ember__v1__response__free_unpacked(resp, NULL);
	return r;
}

static int api_snapshot(const char *sock, const char *state, const char *mem, char *why, size_t n)
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
	Ember__V1__Response *resp = NULL;
	if (api_client_request(sock, 120000, &req, NULL, 0, &resp) < 0) {
		snprintf(why, n, "snapshot create: %s", err_msg());
		return -1;
	}
	int r = resp->status == EMBER__V1__STATUS__OK ? 0 : -1;
	if (r < 0)
		snprintf(why, n, "snapshot create: %s: %s", api_status_name(resp->status),
			 resp->message);
	ember__v1__response__free_unpacked(resp, NULL);
	return r;
}

static long blocks_kib(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_blocks / 2 : -1;
}

int sb_snapshot_ember(struct sb_snap *s, const char *name, const char *cmdline, unsigned mem_mib,
		      bool vsock, const char *ready, char *why, size_t n)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->state, sizeof(s->state), "%s/%s.state", sb_env.dir, name);
	snprintf(s->mem, sizeof(s->mem), "%s/%s.mem", sb_env.dir, name);
	char *api = bench_xasprintf("%s/%s-api.sock", sb_env.dir, name);
	char **argv = sb_argv_new();
	sb_argv_add(argv, sb_cfg.ember);
	sb_argv_add(argv, "run");
	sb_argv_add(argv, "--kernel");
	sb_argv_add(argv, sb_cfg.unikernel);
	sb_argv_add(argv, "--cmdline");
	sb_argv_add(argv, cmdline);
	sb_argv_add(argv, "--mem-mib");
	sb_argv_addf(argv, "%u", mem_mib);
	if (vsock) {
		sb_argv_add(argv, "--vsock");
		sb_argv_addf(argv, "cid=3,uds=%s/%s-v.sock", sb_env.dir, name);
	}
	sb_argv_add(argv, "--api-sock");
	sb_argv_add(argv, api);
	/* This monitor is not measured: a gap in its seccomp filter must not stop the
	 * benchmark (the kernel's audit log still shows it). */
	sb_argv_add(argv, "--seccomp");
	sb_argv_add(argv, "log");

	int r = -1;
	struct sb_proc p;
	if (sb_proc_start(&p, argv, ready, -1) < 0) {
		snprintf(why, n, "starting %s: %s", sb_cfg.ember, strerror(errno));
		goto out;
	}
	if (!wait_marker(&p, sb_cfg.timeout_s)) {
		describe_failure(&p, "the guest to snapshot never got ready", why, n);
		goto out_kill;
	}
	s->boot_ms = p.t_marker - p.t_start;
	double t0 = bench_now_ms();
	char api_why[400];
	if (api_simple(api, EMBER__V1__REQUEST__OP_PAUSE, api_why, sizeof(api_why)) < 0 ||
	    api_snapshot(api, s->state, s->mem, api_why, sizeof(api_why)) < 0) {
		wait_exit(&p, 1); /* a monitor that died answering: its log says why */
		describe_failure(&p, api_why, why, n);
		goto out_kill;
	}
	s->created_ms = bench_now_ms();
	s->snapshot_ms = s->created_ms - t0;
	if (api_simple(api, EMBER__V1__REQUEST__OP_STOP, api_why, sizeof(api_why)) < 0) {
		describe_failure(&p, api_why, why, n);
		goto out_kill;
	}
	if (!wait_exit(&p, 60)) {
		describe_failure(&p, "the snapshotted monitor did not stop", why, n);
		goto out_kill;
	}
	s->mem_file_kib = blocks_kib(s->mem);
	r = 0;
out_kill:
	sb_proc_kill(&p);
	sb_proc_free(&p);
out:
	sb_argv_free(argv);
	free(api);
	return r;
}

int sb_snapshot_qemu(struct sb_snap *s, const char *name, char *const *qemu_args, const char *ready,
		     char *why, size_t n)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->mem, sizeof(s->mem), "%s/%s.migration", sb_env.dir, name);
	char *qmp_path = bench_xasprintf("%s/%s-qmp.sock", sb_env.dir, name);
	char **argv = sb_argv_new();
	for (char *const *a = qemu_args; *a; a++)
		sb_argv_add(argv, *a);
	sb_argv_add(argv, "-qmp");
	sb_argv_addf(argv, "unix:%s,server=on,wait=off", qmp_path);

	int r = -1;
	struct sb_qmp q = {.fd = -1};
	struct sb_proc p;
	if (sb_proc_start(&p, argv, ready, -1) < 0) {
		snprintf(why, n, "starting %s: %s", argv[0], strerror(errno));
		goto out;
	}
	if (!wait_marker(&p, sb_cfg.timeout_s)) {
		describe_failure(&p, "the QEMU guest to migrate never got ready", why, n);
		goto out_kill;
	}
	s->boot_ms = p.t_marker - p.t_start;
	if (sb_qmp_open(&q, qmp_path, 30, why, n) < 0)
		goto out_kill;
	double t0 = bench_now_ms();
	char cmd[600], reply[2048];
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > %s\"}}", s->mem);
	if (sb_qmp_cmd(&q, "{\"execute\":\"stop\"}", 30, NULL, 0, why, n) < 0 ||
	    sb_qmp_cmd(&q, cmd, 30, NULL, 0, why, n) < 0)
		goto out_kill;
	for (;;) {
		if (sb_qmp_cmd(&q, "{\"execute\":\"query-migrate\"}", 30, reply, sizeof(reply), why,
			       n) < 0)
			goto out_kill;
		if (strstr(reply, "\"completed\""))
			break;
		if (strstr(reply, "\"failed\"") || strstr(reply, "\"cancelled\"")) {
			snprintf(why, n, "QEMU migration to %s: %.300s", s->mem, reply);
			goto out_kill;
		}
		if (bench_now_ms() - t0 > 120e3) {
			snprintf(why, n, "QEMU migration to %s did not complete in 120 s", s->mem);
			goto out_kill;
		}
		usleep(5000);
	}
	s->created_ms = bench_now_ms();
	s->snapshot_ms = s->created_ms - t0;
	sb_qmp_cmd(&q, "{\"execute\":\"quit\"}", 30, NULL, 0, why, n);
	if (!wait_exit(&p, 60)) {
		describe_failure(&p, "QEMU did not quit", why, n);
		goto out_kill;
	}
	s->mem_file_kib = blocks_kib(s->mem);
	r = 0;
out_kill:
	sb_qmp_close(&q);
	sb_proc_kill(&p);
	sb_proc_free(&p);
out:
	sb_argv_free(argv);
	free(qmp_path);
	return r;
}
