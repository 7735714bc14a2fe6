/* Pieces of the snapshot benchmark (benchmarks/snapshot/; benchmarks/README.md, `snapshot`):
 * monitors run as children that the caller polls, vsock probes that time a guest's first
 * answer, a QMP client for QEMU's migration files, host memory readings (meminfo, smaps_rollup,
 * a cgroup, KSM), and the three parts: restore latency, clone density and spawn rate. */
#pragma once

#include "bench.h"

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ main.c */

struct sb_cfg {
	const char *ember, *unikernel, *qemu, *out, *dir_base;
	bool quick, quiet, skip_if_no_kvm, no_qemu, no_modprobe, keep;
	bool do_restore, do_density, do_spawn;
	/* restore latency */
	int runs, warmup;
	unsigned mem_mib;
	double timeout_s;
	/* clone density */
	int clone_counts[16], nclone_counts;
	bool clone_counts_given;
	unsigned density_mem_mib, touch_mib;
	bool no_ksm, no_independent;
	double settle_s, ksm_timeout_s;
	/* spawn rate */
	int spawn_n, spawn_rounds;
	bool spawn_given;
};
extern struct sb_cfg sb_cfg;

/* The run's own folder (snapshot files, sockets), and what this machine offers. */
struct sb_env {
	char dir[256];
	char *qemu; /* NULL: no QEMU */
	char qemu_status[200];
	bool have_vhost_vsock;
	char vhost_vsock_status[200];
	struct bench_machine mach;
};
extern struct sb_env sb_env;

void sb_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool sb_interrupted(void);

/* ------------------------------------------------------------------ proc.c */

/* A monitor child: stdin /dev/null, console (stdout) and log (stderr) on pipes that sb_proc_io
 * drains into buffers; the moment `marker` first completes on the console is stamped. */
struct sb_proc {
	pid_t pid;
	int out_fd, err_fd;
	struct bench_buf out, err;
	const char *marker;
	size_t marker_scan; /* console bytes already searched */
	double t_start;	    /* bench_now_ms() just before fork() */
	double t_marker;    /* -1 until seen */
	bool exited, killed_by_us;
	int wait_status;
	double t_exit;
};

/* Fork and exec argv; the child joins the cgroup behind cgroup_procs_fd when it is >= 0.
 * Returns 0, or -1 with errno. */
int sb_proc_start(struct sb_proc *p, char *const *argv, const char *marker, int cgroup_procs_fd);
/* Add the child's open pipes to pf (at most 2); returns how many. */
int sb_proc_pollfds(const struct sb_proc *p, struct pollfd *pf);
/* Read what the pipes in pf[0..n) (as sb_proc_pollfds filled them) have; reap the child if it
 * has exited. */
void sb_proc_io(struct sb_proc *p, const struct pollfd *pf, int n);
/* Drain and reap without waiting. */
void sb_proc_check(struct sb_proc *p);
/* SIGKILL (unless exited) and reap; waits at most 10 s. */
void sb_proc_kill(struct sb_proc *p);
void sb_proc_free(struct sb_proc *p);
/* "exit code N", "signal N (name)", "running". */
void sb_proc_status(const struct sb_proc *p, char *buf, size_t n);

char **sb_argv_new(void);
void sb_argv_add(char **a, const char *s);
void sb_argv_addf(char **a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_argv_free(char **a);

/* ------------------------------------------------------------------ probe.c */

/* One timed vsock exchange with the guest's vsock_server: connect (Ember's hybrid Unix socket,
 * "CONNECT port\n" -> "OK ...\n"; or AF_VSOCK to QEMU's vhost-vsock), send a payload, read the
 * echo. Connections refused or closed before the answer are retried until the deadline. */
enum sb_probe_kind { PROBE_UDS, PROBE_VSOCK };

struct sb_probe {
	enum sb_probe_kind kind;
	char path[108];
	unsigned cid, port;
	int fd;
	int state;
	double next_try;	   /* bench_now_ms(); when to try connecting again */
	double no_socket_retry_ms; /* retry delay while the socket file is missing (1 ms) */
	unsigned char payload[64];
	size_t sent, got;
	char line[128];
	size_t line_len;
	int attempts;
	double t_connected, t_ok, t_echo; /* bench_now_ms(); -1 until reached */
	bool done, failed;
	char error[200];
};

void sb_probe_init_uds(struct sb_probe *p, const char *path, unsigned port, unsigned seed);
void sb_probe_init_vsock(struct sb_probe *p, unsigned cid, unsigned port, unsigned seed);
/* Try to connect now if it is time. Returns the fd and events to poll, or -1 (then wait until
 * p->next_try, or an inotify event for the socket folder). */
int sb_probe_poll_events(struct sb_probe *p, short *events);
/* Move on after poll() said fd is ready (revents), or after a wait ended. */
void sb_probe_step(struct sb_probe *p, short revents);
/* A socket appeared in the folder: try now. */
void sb_probe_kick(struct sb_probe *p);
void sb_probe_close(struct sb_probe *p);

/* ------------------------------------------------------------------ qmp.c */

/* A QMP connection: greeting and qmp_capabilities done by sb_qmp_open. */
struct sb_qmp {
	int fd;
	char buf[65536];
	size_t len;
};
int sb_qmp_open(struct sb_qmp *q, const char *path, double timeout_s, char *why, size_t n);
/* Send one command (a JSON object) and wait for its return; events are skipped. The reply line
 * is copied to reply (may be NULL). Returns 0, or -1 with why ("error" replies too). */
int sb_qmp_cmd(struct sb_qmp *q, const char *json, double timeout_s, char *reply, size_t rn,
	       char *why, size_t n);
void sb_qmp_close(struct sb_qmp *q);

/* ------------------------------------------------------------------ hostmem.c */

struct sb_meminfo {
	long mem_available_kib, shmem_kib, anon_kib, cached_kib, page_tables_kib, kvm_kib;
	bool valid;
};
void sb_meminfo_read(struct sb_meminfo *m);

/* /proc/PID/smaps_rollup. */
struct sb_rollup {
	bool valid;
	long rss_kib, pss_kib, pss_anon_kib, pss_file_kib, pss_shmem_kib, private_kib, shared_kib;
};
void sb_rollup_read(pid_t pid, struct sb_rollup *r);

/* A cgroup v2 child for the clones, when this process may make one (root, memory controller). */
struct sb_cgroup {
	bool ok;
	char path[300];
	char why[200]; /* why not, when !ok */
	int procs_fd;
};
void sb_cgroup_make(struct sb_cgroup *c, const char *name);
long sb_cgroup_memory_kib(const struct sb_cgroup *c); /* memory.current; -1 if unknown */
void sb_cgroup_remove(struct sb_cgroup *c);

/* KSM: turned on for a row and put back as it was afterwards. */
struct sb_ksm {
	bool available;
	char why[200];
	char saved_run[16], saved_pages_to_scan[16], saved_sleep_ms[16];
	bool changed;
};
void sb_ksm_probe(struct sb_ksm *k);
int sb_ksm_start(struct sb_ksm *k, char *why, size_t n);
void sb_ksm_restore(struct sb_ksm *k);
long sb_ksm_read(const char *name); /* /sys/kernel/mm/ksm/NAME, -1 if unreadable */

/* Wait for count-many sockets under dir to appear, or anything: an inotify fd on dir. */
int sb_inotify_dir(const char *dir);
void sb_drain(int fd);

/* ------------------------------------------------------------------ snapshots.c */

/* A snapshot of a running Ember guest: boot `cmdline` with an API socket (and a vsock device
 * when vsock is set), wait for `ready` on the console, pause, snapshot, stop. */
struct sb_snap {
	char state[300], mem[300];
	double created_ms; /* bench_now_ms() when snapshot create returned */
	long mem_file_kib; /* allocated blocks of the memory file */
	double boot_ms, snapshot_ms;
};
int sb_snapshot_ember(struct sb_snap *s, const char *name, const char *cmdline, unsigned mem_mib,
		      bool vsock, const char *ready, char *why, size_t n);
/* The same for QEMU: boot with -qmp, `stop`, `migrate exec:cat > FILE`, quit. qemu_args is the
 * machine and devices (the same for the restore), cmdline the guest's command line. */
int sb_snapshot_qemu(struct sb_snap *s, const char *name, char *const *qemu_args, const char *ready,
		     char *why, size_t n);

/* ------------------------------------------------------------------ the parts */

struct json;
struct sb_restore_result;
struct sb_density_result;
struct sb_spawn_result;

struct sb_restore_result *sb_restore_run(void);
void sb_restore_print(const struct sb_restore_result *r);
void sb_restore_json(struct json *j, const struct sb_restore_result *r);
int sb_restore_failures(const struct sb_restore_result *r);
void sb_restore_free(struct sb_restore_result *r);

struct sb_density_result *sb_density_run(void);
void sb_density_print(const struct sb_density_result *r);
void sb_density_json(struct json *j, const struct sb_density_result *r);
int sb_density_failures(const struct sb_density_result *r);
void sb_density_free(struct sb_density_result *r);

struct sb_spawn_result *sb_spawn_run(void);
void sb_spawn_print(const struct sb_spawn_result *r);
void sb_spawn_json(struct json *j, const struct sb_spawn_result *r);
int sb_spawn_failures(const struct sb_spawn_result *r);
void sb_spawn_free(struct sb_spawn_result *r);
