/* Pieces of the device benchmark (benchmarks/devices/): a monitor child that can be stopped at
 * any moment while the host drives traffic into its guest, the UDP echo load over a tap, and
 * the vsock stream and connection loads. See README.md in this folder. */
#pragma once

#include "bench.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ launch.c */

/* A monitor run as a child: stdin /dev/null, stdout (the guest console) and stderr collected
 * by a reader thread. Unlike bench_launch(), the caller keeps control while the child runs. */
struct mon {
	pid_t pid;
	int out_fd, err_fd;
	pthread_t reader;
	bool reader_started;
	pthread_mutex_t mu;
	struct bench_buf out, err; /* under mu while the reader runs */
	bool exited;		   /* under mu: the child is a zombie (or reaped) */
	bool killed_by_us;
	bool abandoned;	       /* under mu: SIGKILL did not end it (stuck in the kernel) */
	int wait_status;       /* valid after mon_wait() */
	double t0_ms, exit_ms; /* CLOCK_MONOTONIC ms; exit_ms - t0_ms is the run's wall time */
};

/* Fork and exec argv. Returns 0, or -1 with the reason in why. */
int mon_start(struct mon *m, char *const *argv, char *why, size_t why_size);
bool mon_exited(struct mon *m);
/* Has the console (stdout) shown this text yet? */
bool mon_out_has(struct mon *m, const char *text);
/* Send sig unless the child has already exited. */
void mon_signal(struct mon *m, int sig);
/* Wait for the child to end by itself until deadline_ms (bench_now_ms() clock), then SIGKILL.
 * Returns true when it ended by itself. */
bool mon_wait(struct mon *m, double deadline_ms);
void mon_free(struct mon *m);

/* Tells the traffic loops to give up: the monitor exited, or the user interrupted us. */
struct abort_check {
	struct mon *mon;
};
bool should_abort(const struct abort_check *a);

/* ------------------------------------------------------------------ net_load.c */

/* A fresh network namespace holding one tap, entered by the calling thread (so that the
 * monitor forked next opens the tap by name there) and left again with netns_leave(). */
struct netns_tap {
	int orig_ns; /* the namespace to return to */
	bool entered;
	char tap[16];
};
int netns_tap_enter(struct netns_tap *n, const char *tap, const char *host_ip, const char *guest_ip,
		    const uint8_t guest_mac[6], char *why, size_t why_size);
void netns_tap_leave(struct netns_tap *n);
/* Can this process make namespaces and taps? (a child tries, so nothing changes here) */
bool netns_tap_possible(char *why, size_t why_size);

struct net_params {
	const char *guest_ip;
	unsigned port;
	size_t payload; /* UDP payload bytes of each datagram, >= 16 */
	unsigned window;
	double warmup_s, measure_s;
	double loss_ms;		/* no echo for this long with datagrams out: count them lost */
	double ready_timeout_s; /* for the first echo */
	bool measure;		/* false: only wait for the first echo, then quit (baseline) */
};

struct net_result {
	bool ok;
	char why[256];
	double ready_ms; /* from the start of the load to the first echo */
	/* the measured phase */
	double secs;
	uint64_t sent, echoed, late, lost, loss_events, send_errors;
#define NET_LOSS_TIMES 8
	double
	    loss_at_s[NET_LOSS_TIMES]; /* when the first stalls were declared, s into the phase */
	int nloss_at;
	double echoes_per_s, echo_mbs;
	/* the whole run (probes, warm-up, measured phase, drain, quit) */
	uint64_t total_sent, total_echoed, bytes_sent, bytes_echoed, bad;
	bool quit_echoed;
};
/* Probe until the guest echoes, warm up, measure, drain, then send "quit" until the monitor
 * exits (up to 10 s). */
void net_load(const struct net_params *p, const struct abort_check *a, struct net_result *r);

/* ------------------------------------------------------------------ vsock_load.c */

struct vs_target {
	bool uds;	/* Ember's hybrid vsock: a Unix socket and "CONNECT <port>\n" */
	char path[108]; /* uds */
	unsigned cid;	/* AF_VSOCK (QEMU's vhost-vsock) */
	unsigned port;
};

/* One connection attempt with a time limit; returns a connected non-blocking socket or -1. */
int vs_dial(const struct vs_target *t, double timeout_ms, char *why, size_t why_size);
/* Retry vs_dial until it works, the deadline passes or a should_abort(). */
int vs_dial_retry(const struct vs_target *t, double deadline_ms, const struct abort_check *a,
		  char *why, size_t why_size);

struct vs_stream_result {
	bool ok;
	char why[256];
	uint64_t sent, received;
	double secs, mbs;
};
/* Send `bytes` of the pattern (i * 7 + 3) on fd while reading and checking the echo. */
void vs_stream(int fd, uint64_t bytes, double deadline_ms, const struct abort_check *a,
	       struct vs_stream_result *r);

struct vs_conn_result {
	bool ok;
	char why[256];
	uint64_t conns, failures;
	double secs, conns_per_s;
	struct bench_stats setup_us; /* connect -> established (Ember: -> "OK" line) */
	char first_failure[160];
};
/* Open and close connections one after another for `secs`. */
void vs_conn_rate(const struct vs_target *t, double secs, const struct abort_check *a,
		  struct vs_conn_result *r);
