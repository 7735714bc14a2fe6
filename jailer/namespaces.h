/* The jail's namespaces. The monitor is the child of ns_fork_new_pid(): pid 1 of a pid
 * namespace of its own, which sees no other process and takes everything it might start down
 * with it. In that child, ns_join_net() enters the
 * --netns network namespace and ns_enter_jail() makes new mount and IPC namespaces and
 * pivot_root()s into the jail root, then detaches the host's root: unlike a chroot, nothing of
 * the host's filesystem stays reachable, not even through the mount table. */
#pragma once

#include <sys/types.h>

/* fork(), the child as pid 1 of a new pid namespace: returns 0 in the child, its pid (as the
 * caller sees it) in the caller, or a negative errno. The caller's own namespace and its later
 * children are unchanged (unshare(CLONE_NEWPID) would also stop it from making threads). */
pid_t ns_fork_new_pid(void);
/* Open a network namespace handle (e.g. /var/run/netns/NAME); returns an O_CLOEXEC fd. */
int ns_open_net(const char *path);
int ns_join_net(int netns_fd, const char *path);
/* Make `root` (an absolute host path) the whole filesystem of the calling process. */
int ns_enter_jail(const char *root);
