#include "jailer/jail_fs.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The device nodes a monitor opens, with their numbers from the kernel's fixed assignments
 * (Documentation/admin-guide/devices.txt), so a jail can be built on a host that has not
 * loaded kvm or tun yet. */
static const struct jail_node {
	const char *name; /* below /dev */
	bool in_net;	  /* in /dev/net */
	unsigned major, minor;
} jail_nodes[] = {
    {"kvm", false, 10, 232},
    {"tun", true, 10, 200},
    {"urandom", false, 1, 9},
};

static void record(struct jail_fs *fs, int dirfd, const char *name, bool is_dir)
{
	/* Every creation site is fixed, so the log cannot overflow; keep it safe anyway. */
	if (fs->ncreated == JAIL_FS_MAX_CREATED)
		return;
	struct jail_fs_created *c = &fs->created[fs->ncreated++];
	c->dirfd = dirfd;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->is_dir = is_dir;
}

/* mkdir `name` in `parent` unless it exists, then open it without following a link. */
static int make_dir(struct jail_fs *fs, int parent, const char *parent_path, const char *name,
		    int *out)
{
	bool made = mkdirat(parent, name, 0755) == 0;
	if (!made && errno != EEXIST)
		return err_errno("mkdir %s/%s", parent_path, name);
	if (made)
		record(fs, parent, name, true);
	*out = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*out < 0) {
		if (errno == ENOTDIR || errno == ELOOP)
			return err_set(ENOTDIR,
				       "%s/%s exists and is not a directory (symbolic links are "
				       "not followed in a jail)",
				       parent_path, name);
		return err_errno("open %s/%s", parent_path, name);
	}
	return 0;
}

static int set_owner(int fd, uid_t uid, gid_t gid, mode_t mode, const char *path)
{
	if (fchown(fd, uid, gid) < 0)
		return err_errno("chown %s", path);
	if (fchmod(fd, mode) < 0)
		return err_errno("chmod %s", path);
	return 0;
}

/* Clear the way for a file we are about to create; an entry left by an earlier run (or by the
 * monitor that ran there) is replaced, never written through. */
static int remove_old_entry(int dirfd, const char *dir_path, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR)
		return err_set(EISDIR, "%s/%s exists and is a directory", dir_path, name);
	return err_errno("removing the old %s/%s", dir_path, name);
}

static int copy_contents(int from, int to, const char *path)
{
	struct stat st;
	if (fstat(from, &st) < 0)
		return err_errno("stat --exec-file");
	off_t off = 0;
	while (off < st.st_size) {
		ssize_t n = copy_file_range(from, &off, to, NULL, (size_t)(st.st_size - off), 0);
		if (n > 0)
			continue;
		if (n == 0)
			return err_set(EIO, "copying to %s: the source shrank", path);
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return err_errno("copying to %s", path);
		/* Filesystems without copy_file_range: plain reads and writes. */
		char buf[65536];
		ssize_t got = pread(from, buf, sizeof(buf), off);
		if (got <= 0)
			return got < 0 ? err_errno("reading --exec-file")
				       : err_set(EIO, "copying to %s: the source shrank", path);
		for (ssize_t done = 0; done < got;) {
			ssize_t w = write(to, buf + done, (size_t)(got - done));
			if (w < 0)
				return err_errno("copying to %s", path);
			done += w;
		}
		off += got;
	}
	return 0;
}

/* Put the monitor's binary in the root. A root-owned binary that its user cannot change is
 * hard-linked when it lies on the same filesystem: every jail then shares one inode, so the
 * page cache holds its text once, not once per microVM. Anything else is copied. */
static int install_exec(struct jail_fs *fs, int exec_fd)
{
	char path[PATH_MAX + NAME_MAX + 2];
	snprintf(path, sizeof(path), "%s/%s", fs->root, fs->exec_name);
	int r = remove_old_entry(fs->root_fd, fs->root, fs->exec_name);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(exec_fd, &st) < 0)
		return err_errno("stat --exec-file");
	bool linkable = st.st_uid == 0 && !(st.st_mode & (S_IWGRP | S_IWOTH)) &&
			(st.st_mode & S_IXOTH) && !(st.st_mode & (S_ISUID | S_ISGID));
	if (linkable && linkat(exec_fd, "", fs->root_fd, fs->exec_name, AT_EMPTY_PATH) == 0) {
		fs->exec_linked = true;
		record(fs, fs->root_fd, fs->exec_name, false);
		return 0;
	}
	int out = openat(fs->root_fd, fs->exec_name,
			 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555);
	if (out < 0)
		return err_errno("creating %s", path);
	record(fs, fs->root_fd, fs->exec_name, false);
	r = copy_contents(exec_fd, out, path);
	if (r == 0 && fchmod(out, 0555) < 0)
		r = err_errno("chmod %s", path);
	if (close(out) < 0 && r == 0)
		r = err_errno("closing %s", path);
	return r;
}

static int make_nodes(struct jail_fs *fs, uid_t uid, gid_t gid)
{
	char dev_path[PATH_MAX + 16], net_path[PATH_MAX + 16];
	snprintf(dev_path, sizeof(dev_path), "%s/dev", fs->root);
	snprintf(net_path, sizeof(net_path), "%s/dev/net", fs->root);
	struct statvfs sv;
	if (fstatvfs(fs->root_fd, &sv) < 0)
		return err_errno("statvfs %s", fs->root);
	if (sv.f_flag & ST_NODEV)
		return err_set(EPERM,
			       "%s is on a filesystem mounted nodev, where the jail's device nodes "
			       "would not open: use a --chroot-base on a filesystem without nodev",
			       fs->root);
	int r = make_dir(fs, fs->root_fd, fs->root, "dev", &fs->dev_fd);
	if (r == 0)
		r = set_owner(fs->dev_fd, 0, 0, 0755, dev_path);
	if (r == 0)
		r = make_dir(fs, fs->dev_fd, dev_path, "net", &fs->net_fd);
	if (r == 0)
		r = set_owner(fs->net_fd, 0, 0, 0755, net_path);
	for (unsigned i = 0; r == 0 && i < sizeof(jail_nodes) / sizeof(jail_nodes[0]); i++) {
		const struct jail_node *n = &jail_nodes[i];
		int dirfd = n->in_net ? fs->net_fd : fs->dev_fd;
		const char *dir = n->in_net ? net_path : dev_path;
		r = remove_old_entry(dirfd, dir, n->name);
		if (r < 0)
			break;
		if (mknodat(dirfd, n->name, S_IFCHR | 0600, makedev(n->major, n->minor)) < 0) {
			r = err_errno("mknod %s/%s (char %u:%u)", dir, n->name, n->major, n->minor);
			break;
		}
		record(fs, dirfd, n->name, false);
		if (fchownat(dirfd, n->name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = err_errno("chown %s/%s", dir, n->name);
	}
	return r;
}

static int exec_name_from(const char *exec_path, char *out, size_t size)
{
	const char *slash = strrchr(exec_path, '/');
	const char *name = slash ? slash + 1 : exec_path;
	size_t n = strlen(name);
	bool ok = n > 0 && n < size && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
		  strcmp(name, "dev") != 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		     (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' ||
		     name[i] == '-';
	if (!ok)
		return err_set(EINVAL,
			       "--exec-file %s: its file name must be of A-Z a-z 0-9 . _ - (and "
			       "not dev), as the jail names its copy after it",
			       exec_path);
	memcpy(out, name, n + 1);
	return 0;
}

static int build(struct jail_fs *fs, const char *base, const char *id, int exec_fd,
		 const char *exec_path, uid_t uid, gid_t gid)
{
	int r = exec_name_from(exec_path, fs->exec_name, sizeof(fs->exec_name));
	if (r < 0)
		return r;
	char real_base[PATH_MAX];
	if (!realpath(base, real_base))
		return err_errno("--chroot-base %s", base);
	fs->base_fd = open(real_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->base_fd < 0)
		return err_errno("open %s", real_base);
	char ember_path[PATH_MAX + 8], id_path[PATH_MAX + 8 + NAME_MAX];
	int n = snprintf(fs->root, sizeof(fs->root), "%s/ember/%s/root", real_base, id);
	if (n < 0 || (size_t)n >= sizeof(fs->root))
		return err_set(ENAMETOOLONG, "%s/ember/%s/root: path too long", real_base, id);
	snprintf(ember_path, sizeof(ember_path), "%s/ember", real_base);
	snprintf(id_path, sizeof(id_path), "%s/ember/%s", real_base, id);
	r = make_dir(fs, fs->base_fd, real_base, "ember", &fs->ember_fd);
	if (r == 0)
		r = make_dir(fs, fs->ember_fd, ember_path, id, &fs->id_fd);
	if (r < 0)
		return r;
	if (flock(fs->id_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return err_set(EBUSY,
				       "jail %s is in use: another ember-jailer holds %s (one "
				       "monitor per id at a time)",
				       id, id_path);
		return err_errno("flock %s", id_path);
	}
	r = make_dir(fs, fs->id_fd, id_path, "root", &fs->root_fd);
	/* The root is the monitor's, for its sockets; the folders above it stay root's. */
	if (r == 0)
		r = set_owner(fs->root_fd, uid, gid, 0750, fs->root);
	if (r == 0)
		r = install_exec(fs, exec_fd);
	if (r == 0)
		r = make_nodes(fs, uid, gid);
	return r;
}

int jail_fs_build(struct jail_fs *fs, const char *base, const char *id, int exec_fd,
		  const char *exec_path, uid_t uid, gid_t gid)
{
	memset(fs, 0, sizeof(*fs));
	fs->base_fd = fs->ember_fd = fs->id_fd = fs->root_fd = fs->dev_fd = fs->net_fd = -1;
	mode_t old_mask = umask(022);
	int r = build(fs, base, id, exec_fd, exec_path, uid, gid);
	umask(old_mask);
	if (r < 0) {
		jail_fs_undo(fs);
		return r;
	}
	return 0;
}

void jail_fs_close(struct jail_fs *fs)
{
	int *fds[] = {&fs->net_fd, &fs->dev_fd,	  &fs->root_fd,
		      &fs->id_fd,  &fs->ember_fd, &fs->base_fd};
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	fs->ncreated = 0;
}

void jail_fs_undo(struct jail_fs *fs)
{
	/* Newest first: files before the folders that hold them. */
	while (fs->ncreated > 0) {
		struct jail_fs_created *c = &fs->created[--fs->ncreated];
		if (unlinkat(c->dirfd, c->name, c->is_dir ? AT_REMOVEDIR : 0) == 0 ||
		    errno == ENOENT)
			continue;
		/* A shared folder (ember/) that another jail has started using meanwhile. */
		if (c->is_dir && (errno == ENOTEMPTY || errno == EEXIST))
			continue;
		fprintf(stderr,
			"ember-jailer: warning: cannot remove %s from the failed jail: %s\n",
			c->name, strerror(errno));
	}
	jail_fs_close(fs);
}
