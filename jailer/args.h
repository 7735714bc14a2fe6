/* ember-jailer's command line: what the platform asked for, checked before anything is built.
 * Parsing is pure (no filesystem); jailer_args_check_paths() then looks at the paths. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define JAILER_ID_MAX		   64
#define JAILER_DEFAULT_CHROOT_BASE "/srv/jailer"
#define JAILER_DEFAULT_NOFILE	   2048
#define JAILER_MAX_CGROUPS	   32
#define JAILER_CGROUP_VALUE_MAX	   256

/* Exit codes of ember-jailer itself; any other code is the monitor's own. */
enum jailer_exit_code {
	JAILER_EXIT_USAGE = 2,	       /* bad arguments (the message names the argument) */
	JAILER_EXIT_SETUP_FAILED = 125 /* a jail-building step failed (the message names it) */
};

/* One --cgroup FILE=VALUE: a controller's interface file (cgroup v2 names, e.g. memory.max)
 * and what to write there. */
struct cgroup_setting {
	char *file;
	char *value;
};

struct jailer_args {
	const char *id;
	const char *exec_file;
	uid_t uid;
	gid_t gid;
	const char *chroot_base;
	const char *netns;	   /* NULL: stay in the jailer's network namespace */
	const char *parent_cgroup; /* NULL: "<the jailer's own cgroup>/ember" */
	struct cgroup_setting cgroups[JAILER_MAX_CGROUPS];
	unsigned ncgroups;
	uint64_t nofile; /* RLIMIT_NOFILE */
	bool fsize_set;
	uint64_t fsize; /* RLIMIT_FSIZE in bytes, when fsize_set */
	bool daemonize;
	bool help;
	char **monitor_argv; /* the arguments after "--", NULL-terminated (argv's own storage) */
};

/* Fill `a` from argv. Returns 0, or a negative errno with err_msg() naming the bad argument.
 * --help sets a->help and skips the checks for required options. */
int jailer_args_parse(int argc, char **argv, struct jailer_args *a);
/* --chroot-base is a directory. (--exec-file and --netns are checked where they are opened:
 * exec_file.h, namespaces.h.) */
int jailer_args_check_paths(const struct jailer_args *a);
void jailer_args_free(struct jailer_args *a);
/* True for a jail id: 1 to JAILER_ID_MAX of [A-Za-z0-9_-], starting with a letter or digit. */
bool jailer_id_is_safe(const char *id);
void jailer_usage(FILE *out);
