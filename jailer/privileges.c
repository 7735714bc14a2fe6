#include "jailer/privileges.h"
#include "common/err.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/securebits.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int set_limit(int resource, const char *name, rlim_t value)
{
	struct rlimit rl = {value, value};
	if (setrlimit(resource, &rl) < 0)
		return err_errno("setrlimit %s %llu", name, (unsigned long long)value);
	return 0;
}

int priv_set_rlimits(uint64_t nofile, bool fsize_set, uint64_t fsize)
{
	int r = set_limit(RLIMIT_NOFILE, "no-file", (rlim_t)nofile);
	if (r == 0 && fsize_set)
		r = set_limit(RLIMIT_FSIZE, "fsize", (rlim_t)fsize);
	if (r == 0)
		r = set_limit(RLIMIT_CORE, "core", 0);
	return r;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int priv_close_fds_except(const int *keep, unsigned n)
{
	int sorted[16];
	if (n > sizeof(sorted) / sizeof(sorted[0]))
		return err_set(EINVAL, "too many fds to keep");
	for (unsigned i = 0; i < n; i++)
		sorted[i] = keep[i];
	qsort(sorted, n, sizeof(int), cmp_int);
	unsigned first = 3;
	for (unsigned i = 0; i <= n; i++) {
		unsigned last = i < n ? (unsigned)sorted[i] : ~0u;
		if (i < n && sorted[i] < 3)
			continue;
		if (last > first && syscall(SYS_close_range, first, last - 1, 0) < 0)
			return err_errno("close_range %u-%u", first, last - 1);
		if (i < n && last + 1 > first)
			first = last + 1;
	}
	return 0;
}

static int clear_capabilities(void)
{
	/* The bounding set, while CAP_SETPCAP is still ours: the kernel says where it ends. */
	for (unsigned long cap = 0;; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;
		return err_errno("dropping capability %lu from the bounding set", cap);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_errno("clearing the ambient capabilities");
	/* Locked: uid 0 never regains capabilities through exec, setuid keeps clearing them. */
	unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
			     SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
			     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
		return err_errno("locking the securebits");
	return 0;
}

static int capabilities_are_empty(bool *empty)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) < 0)
		return err_errno("capget");
	*empty = true;
	for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			*empty = false;
	return 0;
}

int priv_drop(uid_t uid, gid_t gid)
{
	int r = clear_capabilities();
	if (r < 0)
		return r;
	if (setgroups(0, NULL) < 0)
		return err_errno("setgroups(none)");
	if (setresgid(gid, gid, gid) < 0)
		return err_errno("setresgid %u", (unsigned)gid);
	if (setresuid(uid, uid, uid) < 0)
		return err_errno("setresuid %u", (unsigned)uid);
	/* Leaving uid 0 cleared the permitted and effective sets; the inheritable set survives
	 * it, so clear all three explicitly. */
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {{0}};
	if (syscall(SYS_capset, &h, none) < 0)
		return err_errno("capset(none)");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_errno("PR_SET_NO_NEW_PRIVS");
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	bool empty = false;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return err_errno("getresuid");
	r = capabilities_are_empty(&empty);
	if (r < 0)
		return r;
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid || !empty ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return err_set(EPERM, "still privileged after dropping privileges");
	return 0;
}
