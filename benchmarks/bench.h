/* Shared pieces of the programs under benchmarks/: run a monitor as a child and time it, sample
 * its memory from /proc/PID/smaps, summarize samples, write JSON, describe the machine. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in milliseconds. */
double bench_now_ms(void);

/* Allocation that cannot fail: out of memory ends the benchmark with a message. */
char *bench_xstrdup(const char *s);
char *bench_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct bench_buf {
	char *p;
	size_t len, cap;
};
void bench_buf_add(struct bench_buf *b, const char *data, size_t n);
void bench_buf_free(struct bench_buf *b);
/* The last `max` bytes of b (all of it if shorter), as a NUL-terminated string inside b. */
const char *bench_buf_tail(const struct bench_buf *b, size_t max);

/* A monitor's memory at one instant, from /proc/PID/smaps. Guest RAM is the mapping whose path
 * contains guest_name (Ember's memfd), or failing that the anonymous mapping whose size is the
 * guest's RAM size (QEMU's RAM block), or failing that the largest anonymous mapping at least
 * that large. */
struct bench_mem {
	bool valid;
	long rss_kib, pss_kib;		   /* the whole process */
	long guest_rss_kib, guest_pss_kib; /* the guest RAM mapping(s) */
	long guest_size_kib;		   /* their total size */
	int guest_maps;			   /* how many mappings were counted as guest RAM */
	const char *method;		   /* "name", "size", "largest" or "none" */
	char error[128];
};
int bench_smaps_sample(pid_t pid, const char *guest_name, long guest_kib, struct bench_mem *m);

enum bench_stop {
	BENCH_WAIT_EXIT,      /* let the child exit by itself */
	BENCH_STOP_AT_MARKER, /* SIGTERM when the marker appears (SIGKILL after kill_grace_s) */
};

struct bench_launch {
	char *const *argv;
	const char *marker; /* console (stdout) text that marks "booted" */
	double timeout_s;   /* whole run; the child is killed with SIGKILL after it */
	enum bench_stop stop;
	double kill_grace_s;
	bool sample_mem; /* read /proc/PID/smaps the moment the marker is seen */
	const char *guest_map_name;
	long guest_kib;
};

/* Times are milliseconds from just before fork(); -1 where the event did not happen. */
struct bench_result {
	bool marker_seen, exited, timed_out, signalled_by_us, sigkilled, interrupted;
	bool unkillable; /* still there 10 s after SIGKILL: left behind, not waited for */
	double marker_ms, kill_ms, exit_ms;
	int wait_status;
	struct bench_mem mem;
	struct bench_buf out, err;
};
int bench_launch(const struct bench_launch *l, struct bench_result *r);
void bench_result_free(struct bench_result *r);

/* Set by SIGINT/SIGTERM once bench_catch_signals() ran; a running child is then killed. */
extern volatile sig_atomic_t bench_interrupted;
void bench_catch_signals(void);

/* First line of a command's stdout (or stderr when stdout is empty), or NULL. */
char *bench_first_line(char *const *argv);

/* Is `name` runnable: a path to an executable, or a name found in $PATH? Returns the path. */
char *bench_which(const char *name);

struct bench_stats {
	int n;
	double min, median, p90, max;
};
/* Median: mean of the two middle values when n is even; p90: nearest rank, ceil(0.9 n). */
void bench_stats(const double *v, int n, struct bench_stats *s);

/* A small streaming JSON writer: commas and indentation are handled here. key is NULL inside
 * arrays. */
struct json {
	FILE *f;
	int depth;
	bool need_comma[32];
};
void json_begin(struct json *j, FILE *f);
void json_obj(struct json *j, const char *key);
void json_arr(struct json *j, const char *key);
void json_end_obj(struct json *j);
void json_end_arr(struct json *j);
void json_str(struct json *j, const char *key, const char *v);		/* NULL writes null */
void json_num(struct json *j, const char *key, double v, int decimals); /* NaN, <0 ok */
void json_num_or_null(struct json *j, const char *key, double v, int decimals); /* v<0: null */
void json_int(struct json *j, const char *key, long long v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_argv(struct json *j, const char *key, char *const *argv);
void json_stats(struct json *j, const char *key, const struct bench_stats *s, int decimals);
void json_finish(struct json *j);

/* What kind of KVM this host has, for the report. */
struct bench_machine {
	char uname[512];
	char kernel_release[128];
	char arch[80];
	char cpu_model[160];
	long cpus;
	bool have_kvm;
	char kvm_kind[96]; /* "kvm_pvm", "hardware (kvm_intel)", "hardware (kvm_amd)", ... */
	bool kvm_pvm;
	bool cpu_has_vmx_svm;
	bool under_l1; /* EMBER_L1=1: running inside tests/l1/run's TCG VM */
};
void bench_machine_probe(struct bench_machine *m);
void bench_machine_json(struct json *j, const char *key, const struct bench_machine *m);
