/* Restore latency: process start -> the guest answering a vsock request, for `ember restore` of a
 * full snapshot, `ember run` of the same guest (cold boot), and QEMU restoring a migration file
 * of the same unikernel (`-incoming "exec:cat FILE"`, vhost-vsock), runs alternated. */
#include "snapbench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VSOCK_PORT   1234
#define GUEST_CID    3
#define SERVER_CHECK "check=vsock_server vsock_secs=86400"
/* The first console line each guest prints once it runs again (restore) or serves (boot). */
#define RESTORE_MARKER "vsock: transport reset"
#define BOOT_MARKER    "vsock: listening"
/* Ember's own account of a restore, with --log-level info. */
#define EMBER_RESTORED "ms after process start), running"

/* Target to print beside the numbers; nothing checks it. */
#define TARGET_RESTORE_MS 5.0

enum variant { V_RESTORE, V_BOOT, V_QEMU, NVAR };
static const char *const var_id[NVAR] = {"ember_restore", "ember_boot", "qemu_incoming"};
static const char *const var_title[NVAR] = {"ember restore (full snapshot)",
					    "ember run (cold boot)", "qemu -incoming (migration)"};

struct sample {
	bool warmup, ok;
	char failure[300];
	double marker_ms, connected_ms, ok_ms, answer_ms, ember_running_ms;
	int attempts;
	char exit_status[96];
};

struct series {
	bool run;
	char status[300];
	char **argv_template; /* %d in socket paths is filled per run */
	struct sample *v;
	int n, cap;
};

struct sb_restore_result {
	bool skipped;
	char skip_reason[300];
	struct sb_snap ember_snap, qemu_snap;
	bool have_qemu_snap;
	char qemu_snap_error[600];
	char *qemu_cmdline;
	struct series var[NVAR];
	double wall_s;
};

static char **qemu_machine_argv(const char *cmdline)
{
	char **a = sb_argv_new();
	sb_argv_add(a, sb_env.qemu);
	/* The machine of benchmarks/boot with the two settings the unikernel's virtio checks need
	 * on QEMU (acpi=off so microvm appends virtio_mmio.device=, modern virtio-mmio), and no
	 * global state in the migration stream, so that -incoming resumes at once as `ember
	 * restore` does. */
	static const char *const fixed[] = {
	    "-M",
	    "microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off,smm=off",
	    "-global",
	    "virtio-mmio.force-legacy=false",
	    "-global",
	    "migration.store-global-state=off",
	    "-enable-kvm",
	    "-cpu",
	    "host",
	    "-nodefaults",
	    "-no-user-config",
	    "-display",
	    "none",
	    "-serial",
	    "stdio",
	    "-no-reboot",
	    "-device",
	    "i8042",
	    "-smp",
	    "1",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		sb_argv_add(a, fixed[i]);
	sb_argv_add(a, "-m");
	sb_argv_addf(a, "%u", sb_cfg.mem_mib);
	sb_argv_add(a, "-kernel");
	sb_argv_add(a, sb_cfg.unikernel);
	sb_argv_add(a, "-append");
	sb_argv_add(a, cmdline);
	sb_argv_add(a, "-device");
	sb_argv_addf(a, "vhost-vsock-device,guest-cid=%u", GUEST_CID);
	return a;
}

static char *sock_path(enum variant v, int run)
{
	return bench_xasprintf("%s/%s-%d.sock", sb_env.dir, v == V_RESTORE ? "r" : "b", run);
}

static char **argv_for(struct sb_restore_result *r, enum variant v, int run)
{
	char **a = sb_argv_new();
	if (v == V_QEMU) {
		for (char *const *t = r->var[V_QEMU].argv_template; *t; t++)
			sb_argv_add(a, *t);
		return a;
	}
	char *sock = sock_path(v, run);
	sb_argv_add(a, sb_cfg.ember);
	if (v == V_RESTORE) {
		sb_argv_add(a, "restore");
		sb_argv_add(a, "--state");
		sb_argv_add(a, r->ember_snap.state);
		sb_argv_add(a, "--mem");
		sb_argv_add(a, r->ember_snap.mem);
		sb_argv_add(a, "--vsock-uds");
		sb_argv_add(a, sock);
		sb_argv_add(a, "--log-level");
		sb_argv_add(a, "info");
	} else {
		sb_argv_add(a, "run");
		sb_argv_add(a, "--kernel");
		sb_argv_add(a, sb_cfg.unikernel);
		sb_argv_add(a, "--cmdline");
		sb_argv_add(a, SERVER_CHECK);
		sb_argv_add(a, "--mem-mib");
		sb_argv_addf(a, "%u", sb_cfg.mem_mib);
		sb_argv_add(a, "--vsock");
		sb_argv_addf(a, "cid=%u,uds=%s", GUEST_CID, sock);
	}
	free(sock);
	return a;
}

static struct sample *series_add(struct series *s)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, (size_t)s->cap * sizeof(*s->v));
		if (!s->v) {
			fprintf(stderr, "snapshot bench: out of memory\n");
			exit(1);
		}
	}
	struct sample *x = &s->v[s->n++];
	memset(x, 0, sizeof(*x));
	x->marker_ms = x->connected_ms = x->ok_ms = x->answer_ms = x->ember_running_ms = -1;
	return x;
}

static double ms_before(const char *text, const char *suffix)
{
	const char *p = text ? strstr(text, suffix) : NULL;
	if (!p)
		return -1;
	/* "... (X ms after process start), running": step back over the number. */
	const char *q = p;
	while (q > text && q[-1] == ' ')
		q--;
	while (q > text && (q[-1] == '.' || (q[-1] >= '0' && q[-1] <= '9')))
		q--;
	return q < p ? strtod(q, NULL) : -1;
}

static struct timespec ts_from_ms(double ms)
{
	if (ms < 0)
		ms = 0;
	struct timespec t = {.tv_sec = (time_t)(ms / 1e3)};
	t.tv_nsec = (long)((ms - (double)t.tv_sec * 1e3) * 1e6);
	return t;
}

/* SIGTERM and up to 10 s for a clean exit, so the next run starts on a quiet machine. */
static void stop_child(struct sb_proc *p)
{
	if (!p->exited)
		kill(p->pid, SIGTERM);
	double deadline = bench_now_ms() + 10e3;
	while (!p->exited && bench_now_ms() < deadline) {
		struct pollfd pf[2];
		int n = sb_proc_pollfds(p, pf);
		poll(pf, (nfds_t)n, 10);
		sb_proc_io(p, pf, n);
	}
	sb_proc_kill(p);
}

static void one_run(struct sb_restore_result *r, enum variant v, int run, bool warmup, int inot)
{
	struct series *se = &r->var[v];
	struct sample *s = series_add(se);
	s->warmup = warmup;
	char **argv = argv_for(r, v, run);
	char *sock = v == V_QEMU ? NULL : sock_path(v, run);
	struct sb_probe probe;
	if (v == V_QEMU)
		sb_probe_init_vsock(&probe, GUEST_CID, VSOCK_PORT, (unsigned)run);
	else
		sb_probe_init_uds(&probe, sock, VSOCK_PORT, (unsigned)run);
	const char *marker = v == V_BOOT ? BOOT_MARKER : RESTORE_MARKER;

	struct sb_proc p;
	if (sb_proc_start(&p, argv, marker, -1) < 0) {
		snprintf(s->failure, sizeof(s->failure), "fork: %s", strerror(errno));
		goto out;
	}
	double deadline = p.t_start + sb_cfg.timeout_s * 1e3;
	/* Until the answer and the console marker, or the child's end, or the deadline; the
	 * marker gets a second more once the guest has answered. */
	double marker_grace = -1;
	while (!sb_interrupted()) {
		double now = bench_now_ms();
		if (probe.done && marker_grace < 0)
			marker_grace = now + 1000;
		if ((probe.done && (p.t_marker >= 0 || now > marker_grace)) || probe.failed ||
		    p.exited || now > deadline)
			break;
		struct pollfd pf[4];
		int n = sb_proc_pollfds(&p, pf), np = n, pslot = -1, islot = -1;
		short ev = 0;
		int pfd = probe.done ? -1 : sb_probe_poll_events(&probe, &ev);
		if (pfd >= 0) {
			pslot = np;
			pf[np++] = (struct pollfd){.fd = pfd, .events = ev};
		}
		if (inot >= 0 && v != V_QEMU) {
			islot = np;
			pf[np++] = (struct pollfd){.fd = inot, .events = POLLIN};
		}
		double wait = 50;
		if (!probe.done && pfd < 0)
			wait = probe.next_try - bench_now_ms();
		if (wait > 50)
			wait = 50;
		struct timespec ts = ts_from_ms(wait);
		if (ppoll(pf, (nfds_t)np, &ts, NULL) < 0 && errno != EINTR)
			break;
		sb_proc_io(&p, pf, n);
		if (islot >= 0 && (pf[islot].revents & POLLIN)) {
			sb_drain(inot);
			sb_probe_kick(&probe);
		}
		if (pslot >= 0)
			sb_probe_step(&probe, pf[pslot].revents);
	}
	sb_proc_check(&p);
	s->attempts = probe.attempts;
	if (p.t_marker >= 0)
		s->marker_ms = p.t_marker - p.t_start;
	if (probe.done) {
		s->connected_ms = probe.t_connected - p.t_start;
		s->ok_ms = probe.t_ok - p.t_start;
		s->answer_ms = probe.t_echo - p.t_start;
	}
	char st[96];
	sb_proc_status(&p, st, sizeof(st));
	snprintf(s->exit_status, sizeof(s->exit_status), "%s", st);
	if (probe.done) {
		s->ok = true;
	} else if (sb_interrupted()) {
		snprintf(s->failure, sizeof(s->failure), "interrupted");
	} else if (probe.failed) {
		snprintf(s->failure, sizeof(s->failure), "%s", probe.error);
	} else if (p.exited) {
		snprintf(s->failure, sizeof(s->failure), "%s before the guest answered; log: %s",
			 st, bench_buf_tail(&p.err, 200));
	} else {
		snprintf(s->failure, sizeof(s->failure),
			 "no answer within %g s (%d connection attempts); console: %s",
			 sb_cfg.timeout_s, probe.attempts, bench_buf_tail(&p.out, 150));
	}
	stop_child(&p);
	if (v == V_RESTORE)
		s->ember_running_ms = ms_before(p.err.p, EMBER_RESTORED);
	sb_proc_free(&p);
out:
	sb_probe_close(&probe);
	if (sock)
		unlink(sock); /* a killed monitor leaves its socket behind */
	free(sock);
	sb_argv_free(argv);
	if (s->ok)
		sb_progress("restore: %-14s %s %2d  answered %8.2f ms  (console marker %8.2f ms, "
			    "%d attempt%s)\n",
			    var_id[v], warmup ? "warm-up" : "run    ", run + 1, s->answer_ms,
			    s->marker_ms, s->attempts, s->attempts == 1 ? "" : "s");
	else
		sb_progress("restore: %-14s %s %2d  FAILED: %s\n", var_id[v],
			    warmup ? "warm-up" : "run    ", run + 1, s->failure);
}

struct sb_restore_result *sb_restore_run(void)
{
	struct sb_restore_result *r = calloc(1, sizeof(*r));
	if (!r)
		exit(1);
	double t0 = bench_now_ms();
	char why[1200];
	sb_progress("restore: making the Ember snapshot (%s, %u MiB)\n", SERVER_CHECK,
		    sb_cfg.mem_mib);
	if (sb_snapshot_ember(&r->ember_snap, "restore", SERVER_CHECK, sb_cfg.mem_mib, true,
			      BOOT_MARKER, why, sizeof(why)) < 0) {
		r->skipped = true;
		snprintf(r->skip_reason, sizeof(r->skip_reason),
			 "the Ember snapshot failed: %.260s", why);
		return r;
	}
	r->var[V_RESTORE].run = r->var[V_BOOT].run = true;

	/* QEMU: the same guest, its command line as Ember's guest sees it. */
	r->qemu_cmdline = bench_xstrdup(SERVER_CHECK " console=ttyS0 reboot=k panic=1 pci=off "
						     "nomodules i8042.noaux i8042.nomux "
						     "i8042.dumbkbd");
	if (!sb_env.qemu) {
		snprintf(r->var[V_QEMU].status, sizeof(r->var[V_QEMU].status), "%s",
			 sb_env.qemu_status);
	} else if (!sb_env.have_vhost_vsock) {
		snprintf(r->var[V_QEMU].status, sizeof(r->var[V_QEMU].status),
			 "not run: %s (the guest answers over vhost-vsock there)",
			 sb_env.vhost_vsock_status);
	} else {
		sb_progress("restore: making the QEMU migration file\n");
		char **qargs = qemu_machine_argv(r->qemu_cmdline);
		if (sb_snapshot_qemu(&r->qemu_snap, "restore-qemu", qargs, BOOT_MARKER, why,
				     sizeof(why)) < 0) {
			snprintf(r->var[V_QEMU].status, sizeof(r->var[V_QEMU].status),
				 "failed: %.280s", why);
			snprintf(r->qemu_snap_error, sizeof(r->qemu_snap_error), "%.590s", why);
			sb_argv_free(qargs);
		} else {
			r->have_qemu_snap = true;
			sb_argv_add(qargs, "-incoming");
			sb_argv_addf(qargs, "exec:cat %s", r->qemu_snap.mem);
			r->var[V_QEMU].argv_template = qargs;
			r->var[V_QEMU].run = true;
		}
	}

	int inot = sb_inotify_dir(sb_env.dir);
	for (int i = 0; i < sb_cfg.warmup && !sb_interrupted(); i++)
		for (int v = 0; v < NVAR && !sb_interrupted(); v++)
			if (r->var[v].run)
				one_run(r, (enum variant)v, 1000 + i, true, inot);
	for (int i = 0; i < sb_cfg.runs && !sb_interrupted(); i++)
		for (int v = 0; v < NVAR && !sb_interrupted(); v++)
			if (r->var[v].run)
				one_run(r, (enum variant)v, i, false, inot);
	if (inot >= 0)
		close(inot);
	r->wall_s = (bench_now_ms() - t0) / 1e3;
	return r;
}

/* ----------------------------------------------------------------- output */

struct summary {
	int timed, ok;
	struct bench_stats marker, connected, okline, answer, ember;
};

static void summarize(const struct series *se, struct summary *s)
{
	memset(s, 0, sizeof(*s));
	int n = se->n ? se->n : 1;
	double *m = calloc((size_t)n, sizeof(double)), *c = calloc((size_t)n, sizeof(double));
	double *o = calloc((size_t)n, sizeof(double)), *a = calloc((size_t)n, sizeof(double));
	double *e = calloc((size_t)n, sizeof(double));
	if (!m || !c || !o || !a || !e)
		exit(1);
	int nm = 0, nc = 0, ne = 0;
	for (int i = 0; i < se->n; i++) {
		const struct sample *x = &se->v[i];
		if (x->warmup)
			continue;
		s->timed++;
		if (!x->ok)
			continue;
		if (x->marker_ms >= 0)
			m[nm++] = x->marker_ms;
		if (x->ember_running_ms >= 0)
			e[ne++] = x->ember_running_ms;
		c[nc] = x->connected_ms;
		o[nc] = x->ok_ms;
		a[nc++] = x->answer_ms;
	}
	s->ok = nc;
	bench_stats(m, nm, &s->marker);
	bench_stats(c, nc, &s->connected);
	bench_stats(o, nc, &s->okline);
	bench_stats(a, nc, &s->answer);
	bench_stats(e, ne, &s->ember);
	free(m), free(c), free(o), free(a), free(e);
}

static void cell(double v)
{
	if (isnan(v))
		printf(" %8s", "-");
	else
		printf(" %8.2f", v);
}

void sb_restore_print(const struct sb_restore_result *r)
{
	printf("Restore latency: process start -> the guest answering on vsock (ms)\n");
	if (r->skipped) {
		printf("  skipped: %s\n\n", r->skip_reason);
		return;
	}
	printf("  guest: the test unikernel, %s, %u MiB, 1 vCPU; %d run(s) per row (+%d warm-up), "
	       "rows alternated\n",
	       SERVER_CHECK, sb_cfg.mem_mib, sb_cfg.runs, sb_cfg.warmup);
	printf("  Ember snapshot: state + memory file %ld KiB allocated (made in %.1f ms)",
	       r->ember_snap.mem_file_kib, r->ember_snap.snapshot_ms);
	if (r->have_qemu_snap)
		printf("; QEMU migration file %ld KiB (made in %.1f ms)", r->qemu_snap.mem_file_kib,
		       r->qemu_snap.snapshot_ms);
	printf("\n\n");
	printf("%-30s %7s | %-35s | %8s %8s %8s | %8s\n", "", "", "answered (connect+request+echo)",
	       "console", "connect", "OK line", "ember");
	printf("%-30s %7s | %8s %8s %8s %8s | %8s %8s %8s | %8s\n", "row", "ok", "min", "median",
	       "p90", "max", "median", "median", "median", "running");
	printf("%.*s\n", 124,
	       "-----------------------------------------------------------------------------"
	       "-----------------------------------------------------------------------------");
	for (int v = 0; v < NVAR; v++) {
		const struct series *se = &r->var[v];
		printf("%-30s ", var_title[v]);
		if (!se->run) {
			printf("%7s   %s\n", "-", se->status);
			continue;
		}
		struct summary s;
		summarize(se, &s);
		char ok[16];
		snprintf(ok, sizeof(ok), "%d/%d", s.ok, s.timed);
		printf("%7s |", ok);
		cell(s.answer.min), cell(s.answer.median), cell(s.answer.p90), cell(s.answer.max);
		printf(" |");
		cell(s.marker.n ? s.marker.median : NAN);
		cell(s.connected.median);
		cell(v == V_QEMU ? NAN : s.okline.median);
		printf(" |");
		cell(s.ember.n ? s.ember.median : NAN);
		printf("\n");
	}
	printf("\n");
	struct summary s;
	summarize(&r->var[V_RESTORE], &s);
	printf("  Target: Ember restore to answering, median < %.0f ms: ", TARGET_RESTORE_MS);
	if (s.answer.n)
		printf("%.2f ms (%s)\n", s.answer.median,
		       s.answer.median < TARGET_RESTORE_MS ? "met" : "not met");
	else
		printf("no successful run\n");
	printf("  console = the guest's first line after it runs: \"%s\" (restores: the guest's "
	       "first console output after the restore), \"%s\" (cold boot).\n",
	       RESTORE_MARKER, BOOT_MARKER);
	printf(
	    "  connect = the connection that got the answer was accepted (Ember: by the "
	    "monitor's Unix socket; QEMU: AF_VSOCK, i.e. by the guest). OK line = Ember's hybrid "
	    "vsock said \"OK\" (the guest accepted). answered = %d-byte echo back.\n",
	    (int)sizeof(((struct sb_probe *)0)->payload));
	printf("  ember running = Ember's own log: restore done and vCPUs running, ms after its "
	       "process start (after exec).\n");
	for (int v = 0; v < NVAR; v++)
		for (int i = 0; i < r->var[v].n; i++)
			if (!r->var[v].v[i].ok)
				printf("  FAILED %s %s %d: %s\n", var_id[v],
				       r->var[v].v[i].warmup ? "warm-up" : "run", i + 1,
				       r->var[v].v[i].failure);
	printf("\n");
}

void sb_restore_json(struct json *j, const struct sb_restore_result *r)
{
	json_obj(j, "restore_latency");
	json_bool(j, "skipped", r->skipped);
	if (r->skipped) {
		json_str(j, "skip_reason", r->skip_reason);
		json_end_obj(j);
		return;
	}
	json_num(j, "wall_s", r->wall_s, 1);
	json_obj(j, "parameters");
	json_int(j, "runs", sb_cfg.runs);
	json_int(j, "warmup", sb_cfg.warmup);
	json_int(j, "mem_mib", sb_cfg.mem_mib);
	json_int(j, "vcpus", 1);
	json_str(j, "guest_cmdline", SERVER_CHECK);
	json_str(j, "qemu_guest_cmdline", r->qemu_cmdline);
	json_int(j, "payload_bytes", (long long)sizeof(((struct sb_probe *)0)->payload));
	json_num(j, "target_ember_restore_answer_median_ms_below", TARGET_RESTORE_MS, 1);
	json_end_obj(j);
	json_obj(j, "method");
	json_str(j, "start", "CLOCK_MONOTONIC just before fork()");
	json_str(j, "answered",
		 "Ember: connect to the vsock Unix socket (retried: inotify on its folder, 20 us "
		 "after ECONNREFUSED, 0.1 ms after a refusal by the guest), \"CONNECT 1234\\n\", "
		 "\"OK <port>\\n\", a 64-byte payload, its echo read back whole; QEMU: AF_VSOCK "
		 "connect to cid 3 port 1234 (retried every 0.1 ms), the same payload and echo");
	json_str(j, "marker_ms",
		 "console (stdout pipe) read that completed the marker line: "
		 "\"" RESTORE_MARKER "\" for restores, \"" BOOT_MARKER "\" for the cold boot");
	json_str(j, "ember_running_ms",
		 "Ember's log, 'VM restored in ... (X ms after process "
		 "start)': counted from its own start after exec");
	json_str(j, "order", "rows alternate run by run; warm-up runs are not in the summaries");
	json_end_obj(j);
	json_obj(j, "ember_snapshot");
	json_str(j, "state", r->ember_snap.state);
	json_str(j, "mem", r->ember_snap.mem);
	json_int(j, "mem_file_allocated_kib", r->ember_snap.mem_file_kib);
	json_num(j, "guest_ready_ms", r->ember_snap.boot_ms, 3);
	json_num(j, "pause_and_snapshot_ms", r->ember_snap.snapshot_ms, 3);
	json_end_obj(j);
	if (r->have_qemu_snap) {
		json_obj(j, "qemu_migration_file");
		json_str(j, "path", r->qemu_snap.mem);
		json_int(j, "allocated_kib", r->qemu_snap.mem_file_kib);
		json_num(j, "guest_ready_ms", r->qemu_snap.boot_ms, 3);
		json_num(j, "stop_and_migrate_ms", r->qemu_snap.snapshot_ms, 3);
		json_end_obj(j);
	}
	json_arr(j, "rows");
	for (int v = 0; v < NVAR; v++) {
		const struct series *se = &r->var[v];
		json_obj(j, NULL);
		json_str(j, "id", var_id[v]);
		json_str(j, "title", var_title[v]);
		json_bool(j, "ran", se->run);
		if (!se->run) {
			json_str(j, "status", se->status);
			json_end_obj(j);
			continue;
		}
		struct sb_restore_result *mut = (struct sb_restore_result *)r;
		char **argv = argv_for(mut, (enum variant)v, 0);
		json_argv(j, "command_run_0", argv);
		sb_argv_free(argv);
		struct summary s;
		summarize(se, &s);
		json_obj(j, "summary");
		json_int(j, "timed_runs", s.timed);
		json_int(j, "ok", s.ok);
		json_stats(j, "answered_ms", &s.answer, 3);
		json_stats(j, "console_marker_ms", &s.marker, 3);
		json_stats(j, "connected_ms", &s.connected, 3);
		json_stats(j, "ok_line_ms", &s.okline, 3);
		json_stats(j, "ember_running_ms", &s.ember, 3);
		json_end_obj(j);
		json_arr(j, "samples");
		for (int i = 0; i < se->n; i++) {
			const struct sample *x = &se->v[i];
			json_obj(j, NULL);
			json_bool(j, "warmup", x->warmup);
			json_bool(j, "ok", x->ok);
			json_str(j, "failure", x->ok ? NULL : x->failure);
			json_num_or_null(j, "answered_ms", x->answer_ms, 3);
			json_num_or_null(j, "console_marker_ms", x->marker_ms, 3);
			json_num_or_null(j, "connected_ms", x->connected_ms, 3);
			json_num_or_null(j, "ok_line_ms", x->ok_ms, 3);
			json_num_or_null(j, "ember_running_ms", x->ember_running_ms, 3);
			json_int(j, "connect_attempts", x->attempts);
			json_str(j, "end", x->exit_status);
			json_end_obj(j);
		}
		json_end_arr(j);
		json_end_obj(j);
	}
	json_end_arr(j);
	json_end_obj(j);
}

int sb_restore_failures(const struct sb_restore_result *r)
{
	int n = 0;
	for (int v = 0; v < NVAR; v++)
		for (int i = 0; i < r->var[v].n; i++)
			n += !r->var[v].v[i].ok;
	return n + (r->skipped ? 1 : 0);
}

void sb_restore_free(struct sb_restore_result *r)
{
	if (!r)
		return;
	for (int v = 0; v < NVAR; v++) {
		free(r->var[v].v);
		sb_argv_free(r->var[v].argv_template);
	}
	free(r->qemu_cmdline);
	free(r);
}
