#include "jailer/namespaces.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t ns_fork_new_pid(void)
{
	/* The raw system call without a new stack is fork() with one more flag. */
	long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWPID | SIGCHLD), NULL, NULL, NULL, 0);
	if (pid < 0)
		return err_errno("clone(CLONE_NEWPID)");
	return (pid_t)pid;
}

int ns_open_net(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("--netns %s", path);
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET) {
		close(fd);
		return err_set(EINVAL, "--netns %s: not a network namespace", path);
	}
	return fd;
}

int ns_join_net(int netns_fd, const char *path)
{
	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return err_errno("setns %s", path);
	return 0;
}

int ns_enter_jail(const char *root)
{
	/* IPC too: System V shared memory and semaphores are shared host-wide otherwise. */
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC) < 0)
		return err_errno("unshare(CLONE_NEWNS | CLONE_NEWIPC)");
	/* Nothing we mount or unmount from here on may reach the host's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_errno("making every mount private");
	/* pivot_root wants the new root to be a mount point: bind it onto itself (recursively, so
	 * whatever the platform mounted inside the root comes along). */
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
		return err_errno("bind-mounting %s onto itself", root);
	if (chdir(root) < 0)
		return err_errno("chdir %s", root);
	/* pivot_root(".", "."): the old root ends up mounted on top of the new one, and is then
	 * detached; no put_old folder is needed in the jail. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return err_errno("pivot_root into %s", root);
	if (umount2(".", MNT_DETACH) < 0)
		return err_errno("detaching the host's root");
	if (chdir("/") < 0)
		return err_errno("chdir / in the jail");
	return 0;
}
