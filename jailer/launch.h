/* Starting the monitor in its jail. launch_fork() forks the child that becomes the monitor, as
 * pid 1 of a new pid namespace. The child waits until the parent has put it in its cgroups
 * (launch_release), so that nothing it allocates is charged elsewhere; then it joins the
 * network namespace, enters the jail, sets rlimits, closes every other fd, drops to the jail's
 * uid/gid and execs the monitor with an empty environment and default signal dispositions. A
 * failing step comes back to the parent as its name and message on a pipe that a successful exec
 * closes (O_CLOEXEC). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The signals a platform sends to stop or poke a monitor. The jailer passes them on to the
 * monitor, which starts with them blocked: as pid 1 of its namespace it would drop any that
 * arrived before it set up its own handling (ember takes them from a signalfd). */
#define LAUNCH_NSIGNALS 6
extern const int launch_signals[LAUNCH_NSIGNALS];

struct launch_plan {
	const char *root;      /* the jail root, a host path */
	const char *exec_name; /* the monitor's file in the root */
	char **monitor_argv;   /* its arguments (argv[1]...), NULL-terminated */
	int netns_fd;	       /* -1: keep the jailer's network namespace */
	const char *netns_path;
	uint64_t nofile;
	bool fsize_set;
	uint64_t fsize;
	uid_t uid;
	gid_t gid;
};

struct launch {
	pid_t pid; /* the monitor, as the jailer's pid namespace sees it */
	int go_fd, report_fd;
};

/* The longest step name + message a child reports. */
#define LAUNCH_REPORT_MAX 1200

/* Fork the child. On failure no child exists; err_msg() says why. */
int launch_fork(const struct launch_plan *plan, struct launch *l);
/* Let the child go on and wait until it has exec'd the monitor (0), or failed a step (<0, with
 * "STEP\nMESSAGE" in `report`; the child then exits and must still be waited for). */
int launch_release(struct launch *l, char *report, size_t size);
/* Tell a child that has not been released to exit, without running anything. */
void launch_abort(struct launch *l);
