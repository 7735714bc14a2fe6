/* Running ember-jailer from tests: a child with its own argv and pipes, whose output a test can
 * wait on ("waiting" from the probe) so that it can look at a running jail from the outside
 * before letting it end. Paths come from the environment meson sets: EMBER_JAILER_BIN,
 * EMBER_JAIL_PROBE, EMBER_STATIC_BIN (may be empty) and EMBER_JAIL_TEST_DIR. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct jrun {
	pid_t pid;
	int in_fd, out_fd, err_fd;
	char *out, *err; /* what came so far, NUL-terminated */
	size_t out_len, err_len;
	int exit_code;	 /* -1 if killed by a signal */
	int term_signal; /* the signal, if killed */
	bool timed_out;
};

const char *jailer_bin(void);
const char *probe_bin(void);
/* NULL when this build has no statically linked ember. */
const char *static_ember_bin(void);

/* Start ember-jailer with args (NULL-terminated, without argv[0]). `inherit_fd`, when >= 0,
 * stays open in the jailer (no O_CLOEXEC), for tests that check the jail closes it. */
void jrun_start(struct jrun *r, const char *const *args, int inherit_fd);
/* Collect output until stdout contains `text` (true), or the output ends or timeout_s passes
 * (false). */
bool jrun_wait_for(struct jrun *r, const char *text, double timeout_s);
void jrun_close_stdin(struct jrun *r);
/* Collect everything until the jailer exits (SIGKILL after timeout_s), and its status. */
void jrun_finish(struct jrun *r, double timeout_s);
/* jrun_start, stdin closed, jrun_finish. */
void jrun(struct jrun *r, const char *const *args, double timeout_s);
void jrun_free(struct jrun *r);
const char *jrun_describe(const struct jrun *r);
/* The value of the first "key=value" line of `text`, in a static buffer ("" if none). */
const char *probe_value(const char *text, const char *key);

/* A fresh, empty chroot base for a test, under EMBER_JAIL_TEST_DIR. A jail needs device nodes
 * and Unix sockets: where the folder's filesystem has neither (nodev, or 9p as in tests/l1/run)
 * a tmpfs is mounted there, in a mount namespace of the test's own. */
char *jail_test_base(const char *name);
/* rm -rf, without following symbolic links (and a jail_test_base() tmpfs with it). */
void remove_tree(const char *path);
