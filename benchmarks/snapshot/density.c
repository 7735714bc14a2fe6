/* Clone density: N clones restored from one snapshot of a guest that touched touch_mib MiB,
 * each writing 1 MiB of its own after the restore (the `clone` check), with and without KSM;
 * beside them N independent guests booted cold that touch the same memory. Host memory from a
 * cgroup v2 child's memory.current and /proc/meminfo deltas, PSS per guest from smaps_rollup. */
#include "snapbench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define READY_MARKER "clone: ready"
#define WROTE_MARKER "clone: wrote"
#define WRITE_MIB    1 /* what check_clone writes after each restore */
/* The clone check notices a restore by its TSC jumping more than 1 s; the snapshot must have
 * been on disk longer than that before the first clone starts. */
#define MIN_AGE_MS 1500
/* For the memory guard: a monitor's own memory, page tables and KVM's, per guest (generous). */
#define OVERHEAD_MIB 12
/* Target to print beside the numbers; nothing checks it. */
#define TARGET_RATIO 0.2

enum mode { M_CLONES, M_CLONES_KSM, M_INDEPENDENT, NMODES };
static const char *const mode_id[NMODES] = {"clones", "clones_ksm", "independent"};
static const char *const mode_title[NMODES] = {"clones (ember restore)", "clones --ksm",
					       "independent (ember run)"};

struct drow {
	enum mode mode;
	int n;
	bool ran, ok;
	char status[300];
	char failure[400];
	int up;	       /* guests that printed their marker */
	double up_s;   /* first fork -> last marker */
	double *up_ms; /* per guest: its fork -> its marker */
	pid_t *pids;
	struct sb_rollup *roll;
	struct sb_meminfo before, after;
	bool cg_ok;
	char cg_why[200];
	long cg_kib;
	long file_resident_kib; /* memory file pages in memory before the clones started */
	long ksm_sharing, ksm_shared, ksm_scans;
	double ksm_wait_s;
	bool ksm_settled;
	char **argv0;
};

struct sb_density_result {
	bool skipped;
	char skip_reason[600];
	struct sb_snap snap;
	char *cmdline;
	struct drow *rows;
	int nrows;
	struct sb_ksm ksm;
	double wall_s;
};

static char **guest_argv(const struct sb_density_result *r, enum mode m)
{
	char **a = sb_argv_new();
	sb_argv_add(a, sb_cfg.ember);
	if (m == M_INDEPENDENT) {
		sb_argv_add(a, "run");
		sb_argv_add(a, "--kernel");
		sb_argv_add(a, sb_cfg.unikernel);
		sb_argv_add(a, "--cmdline");
		sb_argv_add(a, r->cmdline);
		sb_argv_add(a, "--mem-mib");
		sb_argv_addf(a, "%u", sb_cfg.density_mem_mib);
		return a;
	}
	sb_argv_add(a, "restore");
	sb_argv_add(a, "--state");
	sb_argv_add(a, r->snap.state);
	sb_argv_add(a, "--mem");
	sb_argv_add(a, r->snap.mem);
	if (m == M_CLONES_KSM)
		sb_argv_add(a, "--ksm");
	return a;
}

/* Pages of the file in the page cache (tmpfs: in memory), by mincore(). */
static long resident_kib(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	long kib = -1;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		size_t len = (size_t)st.st_size;
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			size_t pages = (len + 4095) / 4096;
			unsigned char *vec = malloc(pages);
			if (vec && mincore(p, len, vec) == 0) {
				kib = 0;
				for (size_t i = 0; i < pages; i++)
					kib += (vec[i] & 1) ? 4 : 0;
			}
			free(vec);
			munmap(p, len);
		}
	}
	close(fd);
	return kib;
}

static void kill_all(struct sb_proc *ps, int n)
{
	for (int i = 0; i < n; i++)
		if (ps[i].pid > 0 && !ps[i].exited) {
			kill(ps[i].pid, SIGKILL);
			ps[i].killed_by_us = true;
		}
	for (int i = 0; i < n; i++) {
		sb_proc_kill(&ps[i]);
		sb_proc_free(&ps[i]);
	}
}

/* Drain every child's pipes for `ms`, or until all are up when until_up. Returns the number up. */
static int pump(struct sb_proc *ps, int n, double ms, bool until_up)
{
	struct pollfd *pf = calloc((size_t)n * 2 + 1, sizeof(*pf));
	int *owner = calloc((size_t)n * 2 + 1, sizeof(int));
	if (!pf || !owner)
		exit(1);
	double deadline = bench_now_ms() + ms;
	int up = 0;
	for (;;) {
		up = 0;
		int np = 0, alive = 0;
		for (int i = 0; i < n; i++) {
			up += ps[i].t_marker >= 0;
			alive += !ps[i].exited;
			int k = sb_proc_pollfds(&ps[i], pf + np);
			for (int j = 0; j < k; j++)
				owner[np + j] = i;
			np += k;
		}
		double left = deadline - bench_now_ms();
		if (left <= 0 || (until_up && up == n) || sb_interrupted() || (!alive && !np))
			break;
		poll(pf, (nfds_t)np, left > 50 ? 50 : (int)ceil(left));
		/* Each child's entries are adjacent. */
		for (int s = 0; s < np;) {
			int i = owner[s], k = 1;
			while (s + k < np && owner[s + k] == i)
				k++;
			sb_proc_io(&ps[i], pf + s, k);
			s += k;
		}
		for (int i = 0; i < n; i++)
			if (!ps[i].exited && ps[i].out_fd < 0)
				sb_proc_check(&ps[i]); /* pipes closed: reap */
	}
	free(pf);
	free(owner);
	return up;
}

static void run_row(struct sb_density_result *r, struct drow *d)
{
	d->ran = true;
	d->up_ms = calloc((size_t)d->n, sizeof(double));
	d->pids = calloc((size_t)d->n, sizeof(pid_t));
	d->roll = calloc((size_t)d->n, sizeof(*d->roll));
	struct sb_proc *ps = calloc((size_t)d->n, sizeof(*ps));
	if (!d->up_ms || !d->pids || !d->roll || !ps)
		exit(1);
	char cgname[64];
	snprintf(cgname, sizeof(cgname), "ember-snapbench-%d-%s-%d", (int)getpid(),
		 mode_id[d->mode], d->n);
	struct sb_cgroup cg;
	sb_cgroup_make(&cg, cgname);
	d->cg_ok = cg.ok;
	snprintf(d->cg_why, sizeof(d->cg_why), "%s", cg.why);
	d->cg_kib = -1;
	d->ksm_sharing = d->ksm_shared = d->ksm_scans = -1;

	bool ksm = d->mode == M_CLONES_KSM;
	char why[300];
	if (ksm && sb_ksm_start(&r->ksm, why, sizeof(why)) < 0) {
		snprintf(d->failure, sizeof(d->failure), "KSM: %s", why);
		goto out;
	}
	if (d->mode != M_INDEPENDENT) {
		double age = bench_now_ms() - r->snap.created_ms;
		if (age < MIN_AGE_MS)
			usleep((useconds_t)((MIN_AGE_MS - age) * 1e3));
		d->file_resident_kib = resident_kib(r->snap.mem);
	}
	sb_meminfo_read(&d->before);
	char **argv = guest_argv(r, d->mode);
	d->argv0 = argv;
	const char *marker = d->mode == M_INDEPENDENT ? READY_MARKER : WROTE_MARKER;
	double t0 = bench_now_ms();
	for (int i = 0; i < d->n; i++) {
		if (sb_proc_start(&ps[i], argv, marker, cg.ok ? cg.procs_fd : -1) < 0) {
			snprintf(d->failure, sizeof(d->failure), "fork %d: %s", i, strerror(errno));
			kill_all(ps, i);
			goto out;
		}
		d->pids[i] = ps[i].pid;
	}
	/* Booting guests touch their memory at CPL3; give a big row time in proportion. */
	double limit_ms = (sb_cfg.timeout_s + d->n * 2.0) * 1e3;
	d->up = pump(ps, d->n, limit_ms, true);
	double last = t0;
	for (int i = 0; i < d->n; i++) {
		d->up_ms[i] = ps[i].t_marker >= 0 ? ps[i].t_marker - ps[i].t_start : -1;
		if (ps[i].t_marker > last)
			last = ps[i].t_marker;
	}
	d->up_s = (last - t0) / 1e3;
	if (d->up < d->n) {
		int bad = 0;
		while (bad < d->n && ps[bad].t_marker >= 0)
			bad++;
		char st[96];
		sb_proc_status(&ps[bad], st, sizeof(st));
		snprintf(d->failure, sizeof(d->failure),
			 "%d of %d guests printed \"%s\"; guest %d: %s; console: %s; log: %s",
			 d->up, d->n, marker, bad, st, bench_buf_tail(&ps[bad].out, 120),
			 bench_buf_tail(&ps[bad].err, 160));
		kill_all(ps, d->n);
		goto out;
	}
	/* Let page-table and KVM allocations finish, then (KSM) two full scans: the first only
	 * checksums a page, the second merges it. */
	pump(ps, d->n, sb_cfg.settle_s * 1e3, false);
	if (ksm) {
		long scans0 = sb_ksm_read("full_scans");
		double k0 = bench_now_ms();
		while (bench_now_ms() - k0 < sb_cfg.ksm_timeout_s * 1e3 && !sb_interrupted()) {
			pump(ps, d->n, 200, false);
			if (sb_ksm_read("full_scans") >= scans0 + 2) {
				d->ksm_settled = true;
				break;
			}
		}
		d->ksm_wait_s = (bench_now_ms() - k0) / 1e3;
		d->ksm_scans = sb_ksm_read("full_scans") - scans0;
		d->ksm_sharing = sb_ksm_read("pages_sharing");
		d->ksm_shared = sb_ksm_read("pages_shared");
	}
	sb_meminfo_read(&d->after);
	d->cg_kib = sb_cgroup_memory_kib(&cg);
	for (int i = 0; i < d->n; i++)
		sb_rollup_read(ps[i].pid, &d->roll[i]);
	int alive = 0;
	for (int i = 0; i < d->n; i++) {
		sb_proc_check(&ps[i]);
		alive += !ps[i].exited;
	}
	if (alive < d->n)
		snprintf(d->failure, sizeof(d->failure),
			 "%d guest(s) exited before the memory was read", d->n - alive);
	else
		d->ok = true;
	kill_all(ps, d->n);
out:
	if (ksm)
		sb_ksm_restore(&r->ksm);
	sb_cgroup_remove(&cg);
	free(ps);
	/* Give the host a moment to take the killed guests' memory back. */
	usleep(300000);
	if (d->ok)
		sb_progress("density: %-12s n=%-3d up in %.2f s\n", mode_id[d->mode], d->n,
			    d->up_s);
	else
		sb_progress("density: %-12s n=%-3d FAILED: %s\n", mode_id[d->mode], d->n,
			    d->failure);
}

/* Would n guests of this mode fit in what the host has free? */
static bool fits(const struct drow *d, char *why, size_t n)
{
	struct sb_meminfo mi;
	sb_meminfo_read(&mi);
	long per = (d->mode == M_INDEPENDENT ? (long)sb_cfg.touch_mib : WRITE_MIB) + OVERHEAD_MIB;
	long need = per * d->n;
	long have = mi.mem_available_kib / 1024;
	if (mi.valid && need > have * 8 / 10) {
		snprintf(why, n,
			 "skipped: ~%ld MiB needed (%ld MiB a guest), %ld MiB available here; "
			 "use --clones to size the rows",
			 need, per, have);
		return false;
	}
	return true;
}

struct sb_density_result *sb_density_run(void)
{
	struct sb_density_result *r = calloc(1, sizeof(*r));
	if (!r)
		exit(1);
	double t0 = bench_now_ms();
	r->cmdline = bench_xasprintf("check=clone mem_mib=%u", sb_cfg.touch_mib);
	sb_ksm_probe(&r->ksm);
	sb_progress("density: making the snapshot (%s, %u MiB)\n", r->cmdline,
		    sb_cfg.density_mem_mib);
	char why[1200];
	if (sb_snapshot_ember(&r->snap, "density", r->cmdline, sb_cfg.density_mem_mib, false,
			      READY_MARKER, why, sizeof(why)) < 0) {
		r->skipped = true;
		snprintf(r->skip_reason, sizeof(r->skip_reason), "the snapshot failed: %.570s",
			 why);
		return r;
	}
	r->rows = calloc((size_t)sb_cfg.nclone_counts * NMODES, sizeof(*r->rows));
	if (!r->rows)
		exit(1);
	for (int c = 0; c < sb_cfg.nclone_counts; c++)
		for (int m = 0; m < NMODES; m++) {
			struct drow *d = &r->rows[r->nrows++];
			d->mode = (enum mode)m;
			d->n = sb_cfg.clone_counts[c];
		}
	for (int i = 0; i < r->nrows && !sb_interrupted(); i++) {
		struct drow *d = &r->rows[i];
		if (d->mode == M_CLONES_KSM && sb_cfg.no_ksm)
			snprintf(d->status, sizeof(d->status), "not run (--no-ksm)");
		else if (d->mode == M_CLONES_KSM && !r->ksm.available)
			snprintf(d->status, sizeof(d->status), "not run: %s", r->ksm.why);
		else if (d->mode == M_INDEPENDENT && sb_cfg.no_independent)
			snprintf(d->status, sizeof(d->status), "not run (--no-independent)");
		else if (fits(d, d->status, sizeof(d->status)))
			run_row(r, d);
	}
	r->wall_s = (bench_now_ms() - t0) / 1e3;
	return r;
}

/* ----------------------------------------------------------------- output */

struct dsum {
	long used_kib;	    /* cgroup, else MemAvailable delta */
	const char *source; /* "cgroup" or "MemAvailable" */
	long avail_delta_kib, shmem_delta_kib, anon_delta_kib;
	long total_kib; /* used + the memory file's resident pages (clones) */
	struct bench_stats pss, pss_anon, pss_shared, rss;
	double pss_sum_mib;
};

static void dsum(const struct sb_density_result *r, const struct drow *d, struct dsum *s)
{
	memset(s, 0, sizeof(*s));
	s->avail_delta_kib = d->before.mem_available_kib - d->after.mem_available_kib;
	s->shmem_delta_kib = d->after.shmem_kib - d->before.shmem_kib;
	s->anon_delta_kib = d->after.anon_kib - d->before.anon_kib;
	s->used_kib = d->cg_kib >= 0 ? d->cg_kib : s->avail_delta_kib;
	s->source = d->cg_kib >= 0 ? "cgroup" : "MemAvailable";
	s->total_kib = s->used_kib;
	if (d->mode != M_INDEPENDENT && d->file_resident_kib > 0)
		s->total_kib += d->file_resident_kib;
	double *p = calloc((size_t)d->n + 1, sizeof(double));
	double *pa = calloc((size_t)d->n + 1, sizeof(double));
	double *ps = calloc((size_t)d->n + 1, sizeof(double));
	double *rs = calloc((size_t)d->n + 1, sizeof(double));
	if (!p || !pa || !ps || !rs)
		exit(1);
	int k = 0;
	for (int i = 0; i < d->n; i++) {
		const struct sb_rollup *x = &d->roll[i];
		if (!x->valid)
			continue;
		p[k] = x->pss_kib / 1024.0;
		pa[k] = x->pss_anon_kib / 1024.0;
		ps[k] = (x->pss_file_kib + x->pss_shmem_kib) / 1024.0;
		rs[k] = x->rss_kib / 1024.0;
		s->pss_sum_mib += p[k];
		k++;
	}
	bench_stats(p, k, &s->pss);
	bench_stats(pa, k, &s->pss_anon);
	bench_stats(ps, k, &s->pss_shared);
	bench_stats(rs, k, &s->rss);
	free(p), free(pa), free(ps), free(rs);
	(void)r;
}

static void mib_cell(long kib)
{
	printf(" %9.1f", kib / 1024.0);
}

void sb_density_print(const struct sb_density_result *r)
{
	printf("Clone density: host memory for N guests\n");
	if (r->skipped) {
		printf("  skipped: %s\n\n", r->skip_reason);
		return;
	}
	printf("  guest: %s, %u MiB, 1 vCPU. Clones: restored from one snapshot taken after the "
	       "touch (memory file %.1f MiB allocated), each then writes %d MiB of its own; "
	       "independent: booted cold, touching the same memory.\n",
	       r->cmdline, sb_cfg.density_mem_mib, r->snap.mem_file_kib / 1024.0, WRITE_MIB);
	printf("  clone counts: %s", "");
	for (int c = 0; c < sb_cfg.nclone_counts; c++)
		printf("%s%d", c ? "," : "", sb_cfg.clone_counts[c]);
	printf("%s\n\n", sb_cfg.clone_counts_given ? " (set by --clones)" : "");
	printf("%-24s %4s %7s | %-42s | %-31s | %s\n", "", "", "", "host memory used (MiB)",
	       "per guest (MiB, medians)", "KSM");
	printf("%-24s %4s %7s | %9s %9s %9s %10s | %9s %9s %11s | %s\n", "row", "N", "up (s)",
	       "cgroup", "MemAvl Δ", "+mem file", "total", "PSS", "PSS anon", "PSS shared",
	       "pages_sharing");
	printf("%.*s\n", 140,
	       "-----------------------------------------------------------------------------"
	       "-----------------------------------------------------------------------------");
	for (int i = 0; i < r->nrows; i++) {
		const struct drow *d = &r->rows[i];
		printf("%-24s %4d ", mode_title[d->mode], d->n);
		if (!d->ran) {
			printf("%7s   %s\n", "-", d->status);
			continue;
		}
		if (!d->ok) {
			printf("%7s   FAILED: %.200s\n", "-", d->failure);
			continue;
		}
		struct dsum s;
		dsum(r, d, &s);
		printf("%7.2f |", d->up_s);
		if (d->cg_kib >= 0)
			mib_cell(d->cg_kib);
		else
			printf(" %9s", "-");
		mib_cell(s.avail_delta_kib);
		if (d->mode != M_INDEPENDENT)
			mib_cell(d->file_resident_kib > 0 ? d->file_resident_kib : 0);
		else
			printf(" %9s", "-");
		printf(" %10.1f |", s.total_kib / 1024.0);
		printf(" %9.2f %9.2f %11.2f |", s.pss.median, s.pss_anon.median,
		       s.pss_shared.median);
		if (d->mode == M_CLONES_KSM)
			printf(" %ld%s", d->ksm_sharing, d->ksm_settled ? "" : " (not settled)");
		printf("\n");
	}
	printf("\n");
	/* The target: the biggest N with both rows. */
	const struct drow *best_c = NULL, *best_i = NULL;
	for (int i = 0; i < r->nrows; i++) {
		const struct drow *d = &r->rows[i];
		if (!d->ok || d->mode != M_CLONES)
			continue;
		for (int k = 0; k < r->nrows; k++)
			if (r->rows[k].ok && r->rows[k].mode == M_INDEPENDENT &&
			    r->rows[k].n == d->n && (!best_c || d->n > best_c->n))
				best_c = d, best_i = &r->rows[k];
	}
	printf("  Target: 100 clones in under a fifth of the memory of 100 independent guests: ");
	if (best_c) {
		struct dsum a, b;
		dsum(r, best_c, &a);
		dsum(r, best_i, &b);
		double ratio = b.total_kib > 0 ? (double)a.total_kib / (double)b.total_kib : NAN;
		printf("%d clones %.1f MiB vs %d independent %.1f MiB = %.3f (%s)%s\n", best_c->n,
		       a.total_kib / 1024.0, best_i->n, b.total_kib / 1024.0, ratio,
		       ratio < TARGET_RATIO ? "met" : "not met",
		       best_c->n == 100 ? "" : " -- at this N, not 100");
	} else {
		printf("no N with both rows measured\n");
	}
	printf("  total = cgroup memory.current of the guests' cgroup (else the MemAvailable "
	       "drop), plus for clones the memory file's pages resident before they started "
	       "(charged elsewhere, shared by all).\n");
	printf("  PSS shared = Pss_File + Pss_Shmem (the snapshot's pages for clones, the "
	       "memfd for independent guests); guests are read %.1f s after the last one was up.\n",
	       sb_cfg.settle_s);
	for (int i = 0; i < r->nrows; i++)
		if (r->rows[i].ran && r->rows[i].mode == M_CLONES_KSM && r->rows[i].ok)
			printf("  KSM n=%d: %ld full scans in %.1f s, pages_shared %ld, "
			       "pages_sharing %ld\n",
			       r->rows[i].n, r->rows[i].ksm_scans, r->rows[i].ksm_wait_s,
			       r->rows[i].ksm_shared, r->rows[i].ksm_sharing);
	for (int i = 0; i < r->nrows; i++)
		if (r->rows[i].ran && !r->rows[i].cg_ok) {
			printf("  no cgroup: %s\n", r->rows[i].cg_why);
			break;
		}
	printf("\n");
}

void sb_density_json(struct json *j, const struct sb_density_result *r)
{
	json_obj(j, "clone_density");
	json_bool(j, "skipped", r->skipped);
	if (r->skipped) {
		json_str(j, "skip_reason", r->skip_reason);
		json_end_obj(j);
		return;
	}
	json_num(j, "wall_s", r->wall_s, 1);
	json_obj(j, "parameters");
	json_str(j, "guest_cmdline", r->cmdline);
	json_int(j, "guest_mem_mib", sb_cfg.density_mem_mib);
	json_int(j, "touch_mib", sb_cfg.touch_mib);
	json_int(j, "write_after_restore_mib", WRITE_MIB);
	json_arr(j, "counts");
	for (int c = 0; c < sb_cfg.nclone_counts; c++)
		json_int(j, NULL, sb_cfg.clone_counts[c]);
	json_end_arr(j);
	json_bool(j, "counts_set_by_flag", sb_cfg.clone_counts_given);
	json_num(j, "settle_s", sb_cfg.settle_s, 2);
	json_num(j, "ksm_timeout_s", sb_cfg.ksm_timeout_s, 1);
	json_num(j, "target_clone_to_independent_ratio_below", TARGET_RATIO, 2);
	json_end_obj(j);
	json_obj(j, "snapshot");
	json_str(j, "state", r->snap.state);
	json_str(j, "mem", r->snap.mem);
	json_int(j, "mem_file_allocated_kib", r->snap.mem_file_kib);
	json_num(j, "guest_ready_ms", r->snap.boot_ms, 3);
	json_end_obj(j);
	json_obj(j, "ksm");
	json_bool(j, "available", r->ksm.available);
	json_str(j, "why_not", r->ksm.available ? NULL : r->ksm.why);
	json_str(j, "settings_during_rows", "run=1 pages_to_scan=4000 sleep_millisecs=10");
	json_end_obj(j);
	json_arr(j, "rows");
	for (int i = 0; i < r->nrows; i++) {
		const struct drow *d = &r->rows[i];
		json_obj(j, NULL);
		json_str(j, "mode", mode_id[d->mode]);
		json_int(j, "n", d->n);
		json_bool(j, "ran", d->ran);
		if (!d->ran) {
			json_str(j, "status", d->status);
			json_end_obj(j);
			continue;
		}
		json_bool(j, "ok", d->ok);
		json_str(j, "failure", d->ok ? NULL : d->failure);
		json_argv(j, "command", d->argv0);
		json_int(j, "up", d->up);
		json_num(j, "all_up_s", d->up_s, 3);
		struct dsum s;
		dsum(r, d, &s);
		json_obj(j, "memory_kib");
		json_str(j, "used_source", s.source);
		json_int(j, "used", s.used_kib);
		json_int(j, "total", s.total_kib);
		if (d->cg_kib >= 0)
			json_int(j, "cgroup_memory_current", d->cg_kib);
		else
			json_null(j, "cgroup_memory_current");
		json_str(j, "cgroup_why_not", d->cg_ok ? NULL : d->cg_why);
		json_int(j, "mem_available_drop", s.avail_delta_kib);
		json_int(j, "shmem_delta", s.shmem_delta_kib);
		json_int(j, "anon_pages_delta", s.anon_delta_kib);
		json_int(j, "page_tables_delta",
			 d->after.page_tables_kib - d->before.page_tables_kib);
		if (d->before.kvm_kib >= 0 && d->after.kvm_kib >= 0)
			json_int(j, "sec_page_tables_delta", d->after.kvm_kib - d->before.kvm_kib);
		json_int(j, "mem_file_resident_before", d->file_resident_kib);
		json_num(j, "pss_sum_mib", s.pss_sum_mib, 2);
		json_end_obj(j);
		json_stats(j, "pss_mib", &s.pss, 3);
		json_stats(j, "pss_anon_mib", &s.pss_anon, 3);
		json_stats(j, "pss_file_shmem_mib", &s.pss_shared, 3);
		json_stats(j, "rss_mib", &s.rss, 3);
		if (d->mode == M_CLONES_KSM) {
			json_obj(j, "ksm");
			json_bool(j, "two_full_scans_done", d->ksm_settled);
			json_int(j, "full_scans", d->ksm_scans);
			json_num(j, "waited_s", d->ksm_wait_s, 2);
			json_int(j, "pages_shared", d->ksm_shared);
			json_int(j, "pages_sharing", d->ksm_sharing);
			json_end_obj(j);
		}
		json_arr(j, "guests");
		for (int k = 0; k < d->n; k++) {
			const struct sb_rollup *x = &d->roll[k];
			json_obj(j, NULL);
			json_num_or_null(j, "up_ms", d->up_ms[k], 3);
			json_bool(j, "smaps_rollup", x->valid);
			json_int(j, "rss_kib", x->rss_kib);
			json_int(j, "pss_kib", x->pss_kib);
			json_int(j, "pss_anon_kib", x->pss_anon_kib);
			json_int(j, "pss_file_kib", x->pss_file_kib);
			json_int(j, "pss_shmem_kib", x->pss_shmem_kib);
			json_int(j, "private_kib", x->private_kib);
			json_int(j, "shared_kib", x->shared_kib);
			json_end_obj(j);
		}
		json_end_arr(j);
		json_end_obj(j);
	}
	json_end_arr(j);
	json_end_obj(j);
}

int sb_density_failures(const struct sb_density_result *r)
{
	int n = r->skipped ? 1 : 0;
	for (int i = 0; i < r->nrows; i++)
		n += r->rows[i].ran && !r->rows[i].ok;
	return n;
}

void sb_density_free(struct sb_density_result *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nrows; i++) {
		free(r->rows[i].up_ms);
		free(r->rows[i].pids);
		free(r->rows[i].roll);
		sb_argv_free(r->rows[i].argv0);
	}
	free(r->rows);
	free(r->cmdline);
	free(r);
}
