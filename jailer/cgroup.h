/* cgroup limits for one jail. For every controller a --cgroup setting names (memory.max names
 * "memory"), the jailer finds where this host has it: a cgroup v1 hierarchy of its own, or the
 * v2 unified hierarchy. In each such hierarchy it makes <parent>/<id> (parent: the jailer's own
 * cgroup + "/ember", or --parent-cgroup), so the jail stays inside whatever limits the jailer
 * itself runs under; enables the controllers on the way down (v2), writes the limits, and moves
 * the monitor in before it runs. When the monitor has gone, the folders it made are removed. */
#pragma once

#include "jailer/args.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define CGROUP_MAX_HIERARCHIES 8

struct cgroup_dir {
	char path[PATH_MAX];   /* the jail's cgroup folder */
	bool v2;	       /* in the unified hierarchy */
	char controllers[128]; /* the controllers this jail uses here, space-separated */
	unsigned made_levels;  /* trailing path components this run created */
};

struct cgroup_jail {
	struct cgroup_dir dirs[CGROUP_MAX_HIERARCHIES];
	unsigned ndirs;
};

/* Make the jail's cgroups and write the settings. `parent` is NULL for the default. On failure
 * nothing it made remains and err_msg() names the file or folder. No settings: no cgroups. */
int cgroup_jail_create(struct cgroup_jail *cg, const char *id, const char *parent,
		       const struct cgroup_setting *settings, unsigned n);
/* Move process `pid` (and its threads) into every cgroup of the jail. */
int cgroup_jail_attach(const struct cgroup_jail *cg, pid_t pid);
/* How many processes the memory controller's OOM killer killed in the jail; -1 when the jail
 * has no memory cgroup or the count cannot be read. */
long cgroup_jail_oom_kills(const struct cgroup_jail *cg);
/* Remove the folders cgroup_jail_create made (after the monitor has exited); problems are
 * printed as warnings. */
void cgroup_jail_remove(struct cgroup_jail *cg);

/* What to write on a cgroup v1 controller for a setting given with its v2 name: memory.max,
 * cpu.max (quota and period) and cpu.weight (as cpu.shares) are translated; any other name is
 * written as given. Fills up to 2 file/value pairs, in the order to write them; returns how
 * many, or a negative errno (err_msg() set) for a value the translation cannot read. */
int cgroup_v1_translate(const char *file, const char *value, char files[2][64],
			char values[2][JAILER_CGROUP_VALUE_MAX]);
