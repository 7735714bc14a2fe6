#include "jailer/args.h"
#include "common/err.h"
#include "monitor/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
	OPT_ID = 256,
	OPT_EXEC_FILE,
	OPT_UID,
	OPT_GID,
	OPT_CHROOT_BASE,
	OPT_NETNS,
	OPT_CGROUP,
	OPT_PARENT_CGROUP,
	OPT_RESOURCE_LIMIT,
	OPT_DAEMONIZE,
};

static const struct option options[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"exec-file", required_argument, NULL, OPT_EXEC_FILE},
    {"uid", required_argument, NULL, OPT_UID},
    {"gid", required_argument, NULL, OPT_GID},
    {"chroot-base", required_argument, NULL, OPT_CHROOT_BASE},
    {"netns", required_argument, NULL, OPT_NETNS},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"parent-cgroup", required_argument, NULL, OPT_PARENT_CGROUP},
    {"resource-limit", required_argument, NULL, OPT_RESOURCE_LIMIT},
    {"daemonize", no_argument, NULL, OPT_DAEMONIZE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

void jailer_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: ember-jailer --id ID --exec-file PATH --uid UID --gid GID [options]\n"
	    "                    [-- MONITOR ARGS...]\n"
	    "\n"
	    "Build a jail for one microVM monitor and run the monitor in it: the directory\n"
	    "<chroot-base>/ember/<id>/root becomes the monitor's whole filesystem, holding a\n"
	    "copy of --exec-file (which must be statically linked) and the device nodes\n"
	    "/dev/kvm, /dev/net/tun and /dev/urandom, owned by UID:GID. The monitor runs as\n"
	    "pid 1 of new pid, mount and IPC namespaces, in its cgroups, with rlimits set,\n"
	    "as UID:GID with no capabilities and no_new_privs, and only fds 0-2 open. Paths in\n"
	    "the monitor's arguments are paths inside the jail.\n"
	    "\n"
	    "Options:\n"
	    "  --id ID                 jail name: 1-%d of [A-Za-z0-9_-], starting with a letter\n"
	    "                          or digit\n"
	    "  --exec-file PATH        the monitor binary (a static x86_64 ELF executable)\n"
	    "  --uid UID, --gid GID    whom the monitor runs as (not 0)\n"
	    "  --chroot-base DIR       where jails are built (default %s; must exist,\n"
	    "                          on a filesystem not mounted nodev)\n"
	    "  --netns PATH            join this network namespace (e.g. /var/run/netns/NAME)\n"
	    "  --cgroup FILE=VALUE     a cgroup limit, cgroup v2 names (memory.max=268435456,\n"
	    "                          cpu.max=\"50000 100000\", pids.max=64); on a cgroup v1\n"
	    "                          controller, memory.max, cpu.max and cpu.weight are\n"
	    "                          translated and v1 file names work too (repeatable)\n"
	    "  --parent-cgroup PATH    make the jail's cgroup PATH/<id>, PATH relative to each\n"
	    "                          hierarchy's root (default: the jailer's own cgroup/ember)\n"
	    "  --resource-limit R=N    no-file=N (default %d) or fsize=BYTES (default\n"
	    "                          unlimited) (repeatable)\n"
	    "  --daemonize             detach (new session, stdio on /dev/null), print the pid\n"
	    "                          of the jailer process that waits for the monitor, exit 0\n"
	    "  -h, --help              this text\n"
	    "\n"
	    "Exit codes: the monitor's own; %d bad arguments; %d a jail-building step failed\n"
	    "(the message names it); 128+N the monitor was killed by signal N.\n",
	    JAILER_ID_MAX, JAILER_DEFAULT_CHROOT_BASE, JAILER_DEFAULT_NOFILE, JAILER_EXIT_USAGE,
	    JAILER_EXIT_SETUP_FAILED);
}

bool jailer_id_is_safe(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > JAILER_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		/* A first '-' would read as an option, '.' and '/' as path steps. */
		if (!alnum && (i == 0 || (c != '-' && c != '_')))
			return false;
	}
	return true;
}

/* A controller's interface file: "<controller>.<name>", lower case. The cgroup core's own
 * files (cgroup.procs, tasks, release_agent ...) move processes or run programs: never ours
 * to write from a command line. */
static bool cgroup_file_is_valid(const char *file)
{
	const char *dot = strchr(file, '.');
	if (!dot || dot == file || !dot[1] || strncmp(file, "cgroup.", 7) == 0)
		return false;
	for (const char *p = file; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '.'))
			return false;
	return true;
}

static int add_cgroup(struct jailer_args *a, const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (!eq)
		return err_set(
		    EINVAL, "--cgroup %s: expected FILE=VALUE (e.g. memory.max=268435456)", spec);
	size_t flen = (size_t)(eq - spec);
	const char *value = eq + 1;
	char file[64];
	if (flen == 0 || flen >= sizeof(file))
		return err_set(EINVAL, "--cgroup %s: the file name is empty or too long", spec);
	memcpy(file, spec, flen);
	file[flen] = 0;
	if (!cgroup_file_is_valid(file))
		return err_set(EINVAL,
			       "--cgroup %s: '%s' is not a controller's file (CONTROLLER.NAME in "
			       "lower case, not cgroup.*)",
			       spec, file);
	size_t vlen = strlen(value);
	if (vlen == 0 || vlen >= JAILER_CGROUP_VALUE_MAX || strpbrk(value, "\n\r"))
		return err_set(EINVAL, "--cgroup %s: the value must be one line of 1 to %d bytes",
			       spec, JAILER_CGROUP_VALUE_MAX - 1);
	for (unsigned i = 0; i < a->ncgroups; i++)
		if (strcmp(a->cgroups[i].file, file) == 0)
			return err_set(EEXIST, "--cgroup %s: %s is already set", spec, file);
	if (a->ncgroups == JAILER_MAX_CGROUPS)
		return err_set(ENOSPC, "--cgroup %s: at most %d cgroup settings", spec,
			       JAILER_MAX_CGROUPS);
	struct cgroup_setting *s = &a->cgroups[a->ncgroups];
	s->file = strdup(file);
	s->value = strdup(value);
	if (!s->file || !s->value) {
		free(s->file);
		free(s->value);
		return err_set(ENOMEM, "--cgroup %s: out of memory", spec);
	}
	a->ncgroups++;
	return 0;
}

static int set_resource_limit(struct jailer_args *a, const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (eq && (size_t)(eq - spec) == 7 && strncmp(spec, "no-file", 7) == 0)
		return cli_parse_u64("--resource-limit no-file", eq + 1, 1, 1u << 30, &a->nofile);
	if (eq && (size_t)(eq - spec) == 5 && strncmp(spec, "fsize", 5) == 0) {
		a->fsize_set = true;
		if (strcmp(eq + 1, "unlimited") == 0) {
			a->fsize_set = false;
			return 0;
		}
		return cli_parse_u64("--resource-limit fsize", eq + 1, 1, UINT64_MAX - 1,
				     &a->fsize);
	}
	return err_set(EINVAL, "--resource-limit %s: expected no-file=N or fsize=BYTES", spec);
}

/* A cgroup path below a hierarchy's root: names of [A-Za-z0-9_.-] joined by '/', no "." or
 * ".." steps, so it cannot leave the hierarchy. */
static bool cgroup_path_is_safe(const char *path)
{
	if (!*path || *path == '/' || strlen(path) > 512)
		return false;
	const char *p = path;
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		for (const char *c = p; c < end; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
				return false;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return false; /* a trailing '/' */
	}
	return true;
}

static int set_once(const char **slot, const char *flag, const char *value)
{
	if (*slot)
		return err_set(EEXIST, "%s given twice", flag);
	if (!*value)
		return err_set(EINVAL, "%s: empty value", flag);
	*slot = value;
	return 0;
}

static int set_id_once(bool *seen, const char *flag, const char *value, uint32_t *out)
{
	if (*seen)
		return err_set(EEXIST, "%s given twice", flag);
	uint64_t v;
	/* 0 would keep root; 2^32-1 is the kernel's "unchanged" marker. */
	int r = cli_parse_u64(flag, value, 1, UINT32_MAX - 1, &v);
	if (r < 0) {
		if (r == -ERANGE && strcmp(value, "0") == 0)
			return err_set(EINVAL, "%s 0: the monitor must not run as root", flag);
		return r;
	}
	*seen = true;
	*out = (uint32_t)v;
	return 0;
}

/* Where the jailer's own options end: the first "--" that is not an option's value. */
static int options_end(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i;
		if (strncmp(argv[i], "--", 2) != 0 || strchr(argv[i], '='))
			continue;
		for (const struct option *o = options; o->name; o++)
			if (o->has_arg == required_argument && strcmp(argv[i] + 2, o->name) == 0) {
				i++;
				break;
			}
	}
	return argc;
}

static int parse_one(struct jailer_args *a, int c, const char *arg, bool *uid_seen, bool *gid_seen)
{
	switch (c) {
	case OPT_ID: {
		int r = set_once(&a->id, "--id", arg);
		if (r < 0)
			return r;
		if (!jailer_id_is_safe(arg))
			return err_set(EINVAL,
				       "--id %s: not a safe name (1 to %d of A-Z a-z 0-9 _ -, "
				       "starting with a letter or digit)",
				       arg, JAILER_ID_MAX);
		return 0;
	}
	case OPT_EXEC_FILE:
		return set_once(&a->exec_file, "--exec-file", arg);
	case OPT_UID:
		return set_id_once(uid_seen, "--uid", arg, &a->uid);
	case OPT_GID:
		return set_id_once(gid_seen, "--gid", arg, &a->gid);
	case OPT_CHROOT_BASE:
		return set_once(&a->chroot_base, "--chroot-base", arg);
	case OPT_NETNS:
		return set_once(&a->netns, "--netns", arg);
	case OPT_CGROUP:
		return add_cgroup(a, arg);
	case OPT_PARENT_CGROUP: {
		int r = set_once(&a->parent_cgroup, "--parent-cgroup", arg);
		if (r < 0)
			return r;
		if (!cgroup_path_is_safe(arg))
			return err_set(EINVAL,
				       "--parent-cgroup %s: expected a relative path of names "
				       "(A-Z a-z 0-9 _ . -) without . or .. steps",
				       arg);
		return 0;
	}
	case OPT_RESOURCE_LIMIT:
		return set_resource_limit(a, arg);
	case OPT_DAEMONIZE:
		a->daemonize = true;
		return 0;
	case 'h':
		a->help = true;
		return 0;
	default:
		return err_set(EINVAL, "internal: unhandled option %d", c);
	}
}

int jailer_args_parse(int argc, char **argv, struct jailer_args *a)
{
	memset(a, 0, sizeof(*a));
	a->nofile = JAILER_DEFAULT_NOFILE;
	int end = options_end(argc, argv);
	a->monitor_argv = end < argc ? argv + end + 1 : argv + argc;
	bool uid_seen = false, gid_seen = false;
	optind = 0; /* glibc: a full restart, so tests may parse several command lines */
	opterr = 0;
	int c;
	while ((c = getopt_long(end, argv, ":h", options, NULL)) != -1) {
		int r;
		if (c == '?')
			r = err_set(EINVAL, "unknown option '%s'", argv[optind - 1]);
		else if (c == ':')
			r = err_set(EINVAL, "option '%s' needs a value", argv[optind - 1]);
		else
			r = parse_one(a, c, optarg, &uid_seen, &gid_seen);
		if (r < 0) {
			jailer_args_free(a);
			return r;
		}
	}
	if (a->help)
		return 0;
	int r = 0;
	if (optind < end)
		r = err_set(EINVAL,
			    "unexpected argument '%s' (the monitor's arguments go after --)",
			    argv[optind]);
	else if (!a->id)
		r = err_set(EINVAL, "missing --id");
	else if (!a->exec_file)
		r = err_set(EINVAL, "missing --exec-file");
	else if (!uid_seen)
		r = err_set(EINVAL, "missing --uid");
	else if (!gid_seen)
		r = err_set(EINVAL, "missing --gid");
	if (r < 0) {
		jailer_args_free(a);
		return r;
	}
	if (!a->chroot_base)
		a->chroot_base = JAILER_DEFAULT_CHROOT_BASE;
	return 0;
}

int jailer_args_check_paths(const struct jailer_args *a)
{
	struct stat st;
	if (stat(a->chroot_base, &st) < 0)
		return err_errno("--chroot-base %s", a->chroot_base);
	if (!S_ISDIR(st.st_mode))
		return err_set(ENOTDIR, "--chroot-base %s: not a directory", a->chroot_base);
	return 0;
}

void jailer_args_free(struct jailer_args *a)
{
	for (unsigned i = 0; i < a->ncgroups; i++) {
		free(a->cgroups[i].file);
		free(a->cgroups[i].value);
	}
	a->ncgroups = 0;
}
