/* Running `ember` as a child process for integration tests: arguments in, console output, log,
 * exit status and peak memory out, with a deadline. Paths come from the environment that meson
 * sets (EMBER_BIN, EMBER_UNIKERNEL, EMBER_LINUX_DIR). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ember_run {
	int exit_code;	 /* -1 if killed by a signal */
	int term_signal; /* the signal, if killed */
	char *out;	 /* guest console (stdout) */
	char *err;	 /* ember's log (stderr) */
	long maxrss_kib; /* peak resident memory of the monitor process */
	double wall_ms;
	bool timed_out;
};

/* A stage of a run: when `out` contains `when_seen`, send `signal` to ember (0: none). */
struct ember_trigger {
	const char *when_seen;
	int signal;
};

const char *ember_bin(void);
const char *unikernel_path(void);
/* NULL when the Linux guest was not built (EMBER_LINUX_DIR unset or empty). */
const char *linux_image(const char *name);

/* Skip the calling test loudly when /dev/kvm is missing. */
void require_kvm(void);

/* Run ember with argv (NULL-terminated, without argv[0]) for at most timeout_s seconds. */
void ember_exec(struct ember_run *r, const char *const *args, double timeout_s,
		const char *stdin_data, const struct ember_trigger *trigger);
void ember_run_free(struct ember_run *r);
/* Assert-friendly one-line summary for failure messages. */
const char *ember_run_describe(const struct ember_run *r);
/* Write `len` bytes of deterministic data to a new temp file; returns its path (malloc'd). */
char *temp_file_with(size_t len, unsigned seed);
unsigned long crc32_file(const char *path);

/* A monitor running in the background (for API tests): its stdout and stderr are collected by
 * ember_proc_poll and the waits below. */
struct ember_proc {
	pid_t pid;
	int out_fd, err_fd;
	char *out, *err; /* everything read so far, NUL-terminated */
	size_t out_len, err_len, out_cap, err_cap;
	int exit_code; /* after ember_proc_wait_exit: -1 if killed by a signal */
	int term_signal;
};

/* Start ember with argv (NULL-terminated, without argv[0]); stdin is /dev/null. */
void ember_spawn(struct ember_proc *p, const char *const *args);
/* Read what is there, waiting up to wait_ms for something. */
void ember_proc_poll(struct ember_proc *p, int wait_ms);
/* Wait until stdout holds `needle` at or after byte `from`; false on timeout or exit. */
bool ember_proc_wait_out(struct ember_proc *p, size_t from, const char *needle, double timeout_s);
/* Wait for the process to end (SIGKILL after timeout_s); returns its exit code or -1. */
int ember_proc_wait_exit(struct ember_proc *p, double timeout_s);
void ember_proc_free(struct ember_proc *p);
/* Wait until a Unix socket at `path` accepts connections. */
bool wait_for_socket(const char *path, double timeout_s);
