/* What the monitor keeps of the jailer's power: nothing. Called in the jailed child just
 * before exec, in this order: rlimits, then fds, then credentials (the first two need root). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* RLIMIT_NOFILE, RLIMIT_FSIZE (when fsize_set), and RLIMIT_CORE 0: a crashing monitor must
 * not write guest memory, which belongs to a tenant, into a core file. */
int priv_set_rlimits(uint64_t nofile, bool fsize_set, uint64_t fsize);
/* Close every fd but 0, 1, 2 and the n fds in `keep`. */
int priv_close_fds_except(const int *keep, unsigned n);
/* Become uid/gid with no supplementary groups, no capabilities in any set (bounding and
 * ambient included), securebits locked so that no exec can give root's capabilities back,
 * and no_new_privs; then check that it took. */
int priv_drop(uid_t uid, gid_t gid);
