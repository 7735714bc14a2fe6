/* The jail's filesystem: <base>/ember/<id>/root, holding the monitor's binary and the only
 * device nodes it needs (/dev/kvm, /dev/net/tun, /dev/urandom), owned by the jail's uid/gid.
 *
 * An existing jail root is accepted (the platform may have put the kernel, disks and socket
 * folders there first). Because a root may have been in the hands of an earlier monitor, every
 * step below <base> works through directory fds and never follows a symbolic link. What a run
 * creates is recorded, so a launch that fails later takes exactly that away again. The <id>
 * directory is flock()ed while the jail is in use, so one id runs one monitor at a time. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define JAIL_FS_MAX_CREATED 16

struct jail_fs_created {
	int dirfd; /* one of struct jail_fs's fds */
	char name[NAME_MAX + 1];
	bool is_dir;
};

struct jail_fs {
	char root[PATH_MAX];	      /* absolute path of the jail root */
	char exec_name[NAME_MAX + 1]; /* the monitor's file name inside the root */
	bool exec_linked;	      /* a hard link to --exec-file rather than a copy */
	int base_fd, ember_fd, id_fd, root_fd, dev_fd, net_fd;
	struct jail_fs_created created[JAIL_FS_MAX_CREATED];
	unsigned ncreated;
};

/* Build (or refresh) the jail of `id` under `base`: directories, the binary from the open
 * `exec_fd` (named after the last component of exec_path), device nodes. On failure nothing
 * it created remains and err_msg() names the path that failed. */
int jail_fs_build(struct jail_fs *fs, const char *base, const char *id, int exec_fd,
		  const char *exec_path, uid_t uid, gid_t gid);
/* Remove what jail_fs_build created (a failed launch), then close. */
void jail_fs_undo(struct jail_fs *fs);
/* Keep the jail as it is and close its fds (this drops the id's lock). */
void jail_fs_close(struct jail_fs *fs);
