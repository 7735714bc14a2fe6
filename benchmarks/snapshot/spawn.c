/* Spawn rate: N `ember restore`s of one vsock_server snapshot started as fast as fork() goes,
 * each counted when its guest answers a vsock request; all are kept running until the last one
 * has answered (so N clones are alive at the end), then killed. Rounds repeat it. */
#include "snapbench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define VSOCK_PORT   1234
#define SERVER_CHECK "check=vsock_server vsock_secs=86400"
#define BOOT_MARKER  "vsock: listening"
/* Target to print beside the numbers; nothing checks it. */
#define TARGET_PER_S 100.0

struct round {
	bool ok;
	char failure[400];
	int answered;
	double launch_ms;      /* first fork -> last fork returned */
	double all_ms;	       /* first fork -> last answer */
	double rate;	       /* answered / all_ms */
	double *answer_ms;     /* per clone: its fork -> its answer */
	double *answer_abs_ms; /* per clone: first fork -> its answer */
};

struct sb_spawn_result {
	bool skipped;
	char skip_reason[600];
	struct sb_snap snap;
	struct round *rounds;
	int nrounds;
	double wall_s;
};

static char *sock_name(int round, int i)
{
	return bench_xasprintf("s%d-%d.sock", round, i);
}

static void run_round(struct sb_spawn_result *r, struct round *rd, int index, int inot)
{
	int n = sb_cfg.spawn_n;
	struct sb_proc *ps = calloc((size_t)n, sizeof(*ps));
	struct sb_probe *pr = calloc((size_t)n, sizeof(*pr));
	struct pollfd *pf = calloc((size_t)n * 3 + 1, sizeof(*pf));
	int *owner = calloc((size_t)n * 3 + 1, sizeof(int));
	rd->answer_ms = calloc((size_t)n, sizeof(double));
	rd->answer_abs_ms = calloc((size_t)n, sizeof(double));
	if (!ps || !pr || !pf || !owner || !rd->answer_ms || !rd->answer_abs_ms)
		exit(1);
	char ***argvs = calloc((size_t)n, sizeof(char **));
	if (!argvs)
		exit(1);
	/* Build every command line first: the launch loop does nothing but fork. */
	for (int i = 0; i < n; i++) {
		char *name = sock_name(index, i);
		char *path = bench_xasprintf("%s/%s", sb_env.dir, name);
		char **a = sb_argv_new();
		sb_argv_add(a, sb_cfg.ember);
		sb_argv_add(a, "restore");
		sb_argv_add(a, "--state");
		sb_argv_add(a, r->snap.state);
		sb_argv_add(a, "--mem");
		sb_argv_add(a, r->snap.mem);
		sb_argv_add(a, "--vsock-uds");
		sb_argv_add(a, path);
		argvs[i] = a;
		sb_probe_init_uds(&pr[i], path, VSOCK_PORT, (unsigned)(index * 100000 + i));
		/* inotify names each socket as it appears; polling for it is the fallback. */
		pr[i].next_try = bench_now_ms() + 20;
		pr[i].no_socket_retry_ms = 20;
		free(name);
		free(path);
	}
	int started = 0;
	double t0 = bench_now_ms();
	for (int i = 0; i < n; i++) {
		if (sb_proc_start(&ps[i], argvs[i], NULL, -1) < 0) {
			snprintf(rd->failure, sizeof(rd->failure), "fork %d: %s", i,
				 strerror(errno));
			break;
		}
		started++;
	}
	rd->launch_ms = bench_now_ms() - t0;
	double deadline = t0 + (sb_cfg.timeout_s + n * 0.5) * 1e3;
	int done = 0, failed = 0;
	while (started == n && done + failed < n && !sb_interrupted()) {
		double now = bench_now_ms();
		if (now > deadline)
			break;
		int np = 0;
		double next = now + 50;
		for (int i = 0; i < n; i++) {
			int k = sb_proc_pollfds(&ps[i], pf + np);
			for (int j = 0; j < k; j++)
				owner[np + j] = i;
			np += k;
			if (pr[i].done || pr[i].failed)
				continue;
			short ev = 0;
			int fd = sb_probe_poll_events(&pr[i], &ev);
			if (fd >= 0) {
				pf[np] = (struct pollfd){.fd = fd, .events = ev};
				owner[np++] = n + i;
			} else if (!pr[i].done && !pr[i].failed && pr[i].next_try < next) {
				next = pr[i].next_try;
			}
		}
		pf[np] = (struct pollfd){.fd = inot, .events = POLLIN};
		owner[np++] = -1;
		double wait = next - bench_now_ms();
		struct timespec ts = {.tv_sec = 0, .tv_nsec = wait > 0 ? (long)(wait * 1e6) : 0};
		if (ppoll(pf, (nfds_t)np, &ts, NULL) < 0 && errno != EINTR)
			break;
		for (int s = 0; s < np; s++) {
			if (!pf[s].revents)
				continue;
			int o = owner[s];
			if (o < 0) {
				/* A socket appeared: kick the probe it belongs to. */
				char buf[8192] __attribute__((aligned(8)));
				ssize_t len;
				while ((len = read(inot, buf, sizeof(buf))) > 0) {
					for (char *p = buf; p < buf + len;) {
						struct inotify_event *e = (struct inotify_event *)p;
						int rr, ii;
						if (e->len &&
						    sscanf(e->name, "s%d-%d.sock", &rr, &ii) == 2 &&
						    rr == index && ii >= 0 && ii < n)
							sb_probe_kick(&pr[ii]);
						p += sizeof(*e) + e->len;
					}
				}
			} else if (o >= n) {
				sb_probe_step(&pr[o - n], pf[s].revents);
			} else {
				sb_proc_io(&ps[o], &pf[s], 1);
			}
		}
		done = failed = 0;
		for (int i = 0; i < n; i++) {
			done += pr[i].done;
			failed += pr[i].failed || (ps[i].exited && !pr[i].done);
		}
	}
	double last = t0;
	for (int i = 0; i < n; i++) {
		rd->answer_ms[i] = pr[i].done ? pr[i].t_echo - ps[i].t_start : -1;
		rd->answer_abs_ms[i] = pr[i].done ? pr[i].t_echo - t0 : -1;
		if (pr[i].done && pr[i].t_echo > last)
			last = pr[i].t_echo;
	}
	rd->answered = done;
	rd->all_ms = last - t0;
	rd->rate = done && rd->all_ms > 0 ? done / (rd->all_ms / 1e3) : 0;
	if (done == n) {
		rd->ok = true;
	} else if (!rd->failure[0]) {
		int bad = 0;
		while (bad < n && pr[bad].done)
			bad++;
		char st[96];
		sb_proc_status(&ps[bad], st, sizeof(st));
		snprintf(rd->failure, sizeof(rd->failure),
			 "%d of %d answered; clone %d: %s; probe: %s; log: %s", done, n, bad, st,
			 pr[bad].failed ? pr[bad].error : "no answer in time",
			 bench_buf_tail(&ps[bad].err, 200));
	}
	for (int i = 0; i < started; i++)
		if (!ps[i].exited)
			kill(ps[i].pid, SIGKILL);
	for (int i = 0; i < n; i++) {
		if (i < started)
			sb_proc_kill(&ps[i]);
		sb_proc_free(&ps[i]);
		sb_probe_close(&pr[i]);
		unlink(pr[i].path);
		sb_argv_free(argvs[i]);
	}
	free(argvs);
	free(ps);
	free(pr);
	free(pf);
	free(owner);
	if (rd->ok)
		sb_progress("spawn: round %d: %d clones answered in %.1f ms: %.1f clones/s "
			    "(launch loop %.1f ms)\n",
			    index + 1, n, rd->all_ms, rd->rate, rd->launch_ms);
	else
		sb_progress("spawn: round %d FAILED: %s\n", index + 1, rd->failure);
	usleep(300000);
}

struct sb_spawn_result *sb_spawn_run(void)
{
	struct sb_spawn_result *r = calloc(1, sizeof(*r));
	if (!r)
		exit(1);
	double t0 = bench_now_ms();
	char why[1200];
	sb_progress("spawn: making the snapshot (%s, %u MiB)\n", SERVER_CHECK, sb_cfg.mem_mib);
	if (sb_snapshot_ember(&r->snap, "spawn", SERVER_CHECK, sb_cfg.mem_mib, true, BOOT_MARKER,
			      why, sizeof(why)) < 0) {
		r->skipped = true;
		snprintf(r->skip_reason, sizeof(r->skip_reason), "the snapshot failed: %.570s",
			 why);
		return r;
	}
	int inot = sb_inotify_dir(sb_env.dir);
	if (inot < 0) {
		r->skipped = true;
		snprintf(r->skip_reason, sizeof(r->skip_reason), "inotify on %s: %s", sb_env.dir,
			 strerror(errno));
		return r;
	}
	r->rounds = calloc((size_t)sb_cfg.spawn_rounds, sizeof(*r->rounds));
	if (!r->rounds)
		exit(1);
	for (int i = 0; i < sb_cfg.spawn_rounds && !sb_interrupted(); i++)
		run_round(r, &r->rounds[r->nrounds++], i, inot);
	close(inot);
	r->wall_s = (bench_now_ms() - t0) / 1e3;
	return r;
}

/* ----------------------------------------------------------------- output */

static void rates(const struct sb_spawn_result *r, struct bench_stats *rate,
		  struct bench_stats *lat)
{
	int nlat = 0;
	for (int i = 0; i < r->nrounds; i++)
		nlat += sb_cfg.spawn_n;
	double *v = calloc((size_t)r->nrounds + 1, sizeof(double));
	double *l = calloc((size_t)nlat + 1, sizeof(double));
	if (!v || !l)
		exit(1);
	int nv = 0, nl = 0;
	for (int i = 0; i < r->nrounds; i++) {
		if (!r->rounds[i].ok)
			continue;
		v[nv++] = r->rounds[i].rate;
		for (int k = 0; k < sb_cfg.spawn_n; k++)
			l[nl++] = r->rounds[i].answer_ms[k];
	}
	bench_stats(v, nv, rate);
	bench_stats(l, nl, lat);
	free(v);
	free(l);
}

void sb_spawn_print(const struct sb_spawn_result *r)
{
	printf("Spawn rate: restored clones answering on vsock, per second\n");
	if (r->skipped) {
		printf("  skipped: %s\n\n", r->skip_reason);
		return;
	}
	printf("  %d `ember restore` of one snapshot (%s, %u MiB) forked back to back, each "
	       "counted when its guest answers a vsock request; all kept alive until the last "
	       "answered, then killed. %d round(s)%s; %ld CPUs.\n\n",
	       sb_cfg.spawn_n, SERVER_CHECK, sb_cfg.mem_mib, sb_cfg.spawn_rounds,
	       sb_cfg.spawn_given ? " (N set by --spawn)" : "", sb_env.mach.cpus);
	printf("%-8s %9s %12s %14s %12s | %-35s\n", "round", "answered", "launch (ms)",
	       "all answered", "clones/s", "per clone start -> answer (ms)");
	printf("%-8s %9s %12s %14s %12s | %8s %8s %8s %8s\n", "", "", "", "(ms)", "", "min",
	       "median", "p90", "max");
	printf("%.*s\n", 96,
	       "------------------------------------------------------------------------------"
	       "------------------------------------------------------------------------------");
	for (int i = 0; i < r->nrounds; i++) {
		const struct round *rd = &r->rounds[i];
		printf("%-8d %4d/%-4d %12.1f ", i + 1, rd->answered, sb_cfg.spawn_n, rd->launch_ms);
		if (!rd->ok) {
			printf("  FAILED: %.200s\n", rd->failure);
			continue;
		}
		struct bench_stats s;
		bench_stats(rd->answer_ms, sb_cfg.spawn_n, &s);
		printf("%14.1f %12.1f | %8.2f %8.2f %8.2f %8.2f\n", rd->all_ms, rd->rate, s.min,
		       s.median, s.p90, s.max);
	}
	struct bench_stats rate, lat;
	rates(r, &rate, &lat);
	printf("\n  Target: at least %.0f clones per second: ", TARGET_PER_S);
	if (rate.n)
		printf("median over rounds %.1f/s (%s)\n", rate.median,
		       rate.median >= TARGET_PER_S ? "met" : "not met");
	else
		printf("no successful round\n");
	printf("  clones/s = clones answered / (first fork -> last answer).\n\n");
}

void sb_spawn_json(struct json *j, const struct sb_spawn_result *r)
{
	json_obj(j, "spawn_rate");
	json_bool(j, "skipped", r->skipped);
	if (r->skipped) {
		json_str(j, "skip_reason", r->skip_reason);
		json_end_obj(j);
		return;
	}
	json_num(j, "wall_s", r->wall_s, 1);
	json_obj(j, "parameters");
	json_int(j, "clones_per_round", sb_cfg.spawn_n);
	json_bool(j, "clones_set_by_flag", sb_cfg.spawn_given);
	json_int(j, "rounds", sb_cfg.spawn_rounds);
	json_str(j, "guest_cmdline", SERVER_CHECK);
	json_int(j, "mem_mib", sb_cfg.mem_mib);
	json_str(j, "kept_alive", "all clones run until the last one answered, then SIGKILL");
	json_num(j, "target_clones_per_s_at_least", TARGET_PER_S, 0);
	json_end_obj(j);
	json_obj(j, "snapshot");
	json_str(j, "state", r->snap.state);
	json_str(j, "mem", r->snap.mem);
	json_int(j, "mem_file_allocated_kib", r->snap.mem_file_kib);
	json_end_obj(j);
	struct bench_stats rate, lat;
	rates(r, &rate, &lat);
	json_stats(j, "clones_per_s", &rate, 2);
	json_stats(j, "start_to_answer_ms", &lat, 3);
	json_arr(j, "rounds");
	for (int i = 0; i < r->nrounds; i++) {
		const struct round *rd = &r->rounds[i];
		json_obj(j, NULL);
		json_bool(j, "ok", rd->ok);
		json_str(j, "failure", rd->ok ? NULL : rd->failure);
		json_int(j, "answered", rd->answered);
		json_num(j, "launch_loop_ms", rd->launch_ms, 3);
		json_num(j, "all_answered_ms", rd->all_ms, 3);
		json_num(j, "clones_per_s", rd->rate, 2);
		json_arr(j, "start_to_answer_ms");
		for (int k = 0; k < sb_cfg.spawn_n; k++)
			json_num_or_null(j, NULL, rd->answer_ms[k], 3);
		json_end_arr(j);
		json_arr(j, "first_fork_to_answer_ms");
		for (int k = 0; k < sb_cfg.spawn_n; k++)
			json_num_or_null(j, NULL, rd->answer_abs_ms[k], 3);
		json_end_arr(j);
		json_end_obj(j);
	}
	json_end_arr(j);
	json_end_obj(j);
}

int sb_spawn_failures(const struct sb_spawn_result *r)
{
	int n = r->skipped ? 1 : 0;
	for (int i = 0; i < r->nrounds; i++)
		n += !r->rounds[i].ok;
	return n;
}

void sb_spawn_free(struct sb_spawn_result *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nrounds; i++) {
		free(r->rounds[i].answer_ms);
		free(r->rounds[i].answer_abs_ms);
	}
	free(r->rounds);
	free(r);
}
