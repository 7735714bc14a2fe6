/* jail_probe: a static stand-in for the monitor in the jailer's tests. It reports what a jailed
 * process sees, one "key=value" line each, and then does what its arguments ask:
 *
 *   exit N          exit with status N (default 0)
 *   forks N         try to fork N children that wait; report how many forks succeeded
 *   wait-stdin      print "waiting" and block until stdin reaches EOF
 *   wait-signal     block SIGTERM/SIGINT/SIGHUP (as the monitor does, through signalfd), print
 *                   "waiting", then on a signal write /got-signal-N and exit 128+N
 *
 * It runs without /proc (the jail has none), so everything comes from system calls. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void list_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		printf("file=%s unreadable:%s\n", dir, strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/",
			 e->d_name);
		struct stat st;
		if (lstat(path, &st) < 0) {
			printf("file=%s lstat:%s\n", path, strerror(errno));
			continue;
		}
		char kind = S_ISDIR(st.st_mode)	   ? 'd'
			    : S_ISCHR(st.st_mode)  ? 'c'
			    : S_ISREG(st.st_mode)  ? 'f'
			    : S_ISLNK(st.st_mode)  ? 'l'
			    : S_ISSOCK(st.st_mode) ? 's'
						   : '?';
		printf("file=%s %c %o %u:%u", path, kind, (unsigned)(st.st_mode & 07777),
		       (unsigned)st.st_uid, (unsigned)st.st_gid);
		if (kind == 'c')
			printf(" %u:%u", major(st.st_rdev), minor(st.st_rdev));
		printf("\n");
		if (kind == 'd')
			list_tree(path);
	}
	closedir(d);
}

static void report_capabilities(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) < 0) {
		printf("caps=error:%s\n", strerror(errno));
		return;
	}
	printf("cap_eff=%08x%08x\ncap_prm=%08x%08x\ncap_inh=%08x%08x\n", d[1].effective,
	       d[0].effective, d[1].permitted, d[0].permitted, d[1].inheritable, d[0].inheritable);
	int bounding = 0, ambient = 0;
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			bounding++;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			ambient++;
	}
	printf("cap_bounding_count=%d\ncap_ambient_count=%d\n", bounding, ambient);
	printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	printf("securebits=0x%x\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
}

static void report_limit(const char *name, int resource)
{
	struct rlimit rl;
	if (getrlimit(resource, &rl) < 0)
		printf("rlimit_%s=error\n", name);
	else if (rl.rlim_cur == RLIM_INFINITY)
		printf("rlimit_%s=unlimited\n", name);
	else
		printf("rlimit_%s=%llu\n", name, (unsigned long long)rl.rlim_cur);
}

static void report(void)
{
	printf("pid=%d\nppid=%d\n", (int)getpid(), (int)getppid());
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	printf("uid=%u,%u,%u\ngid=%u,%u,%u\n", ru, eu, su, rg, eg, sg);
	printf("groups=%d\n", getgroups(0, NULL));
	report_capabilities();
	report_limit("nofile", RLIMIT_NOFILE);
	report_limit("fsize", RLIMIT_FSIZE);
	report_limit("core", RLIMIT_CORE);
	printf("fds=");
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			printf("%d,", fd);
	printf("\n");
	int env = 0;
	while (environ && environ[env])
		env++;
	printf("env_count=%d\n", env);
	char cwd[256];
	printf("cwd=%s\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
	struct stat root, up;
	printf("root_is_top=%d\n", stat("/", &root) == 0 && stat("/..", &up) == 0 &&
				       root.st_ino == up.st_ino && root.st_dev == up.st_dev);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	printf("open_kvm=%s\n", kvm >= 0 ? "ok" : strerror(errno));
	if (kvm >= 0)
		close(kvm);
	int rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	char bytes[16];
	printf("read_urandom=%s\n", rnd < 0				    ? strerror(errno)
				    : read(rnd, bytes, sizeof(bytes)) == 16 ? "ok"
									    : "short");
	if (rnd >= 0)
		close(rnd);
	struct if_nameindex *ifs = if_nameindex();
	printf("interfaces=");
	for (struct if_nameindex *i = ifs; i && i->if_index; i++)
		printf("%s,", i->if_name);
	printf("\n");
	if (ifs)
		if_freenameindex(ifs);
	list_tree("/");
}

static int try_forks(int n)
{
	int gate[2];
	if (pipe(gate) < 0)
		return -1;
	int made = 0;
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0) {
			char c;
			close(gate[1]);
			ssize_t r = read(gate[0], &c, 1); /* until the parent lets go */
			_exit(r < 0);
		}
		if (p < 0)
			break;
		made++;
	}
	close(gate[1]);
	close(gate[0]);
	while (wait(NULL) > 0)
		;
	return made;
}

static int wait_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("waiting\n");
	fflush(stdout);
	int sig = 0;
	if (sigwait(&set, &sig) != 0)
		return 1;
	char path[64];
	snprintf(path, sizeof(path), "/got-signal-%d", sig);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	printf("signal=%d\n", sig);
	return 128 + sig;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	report();
	int code = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "exit") == 0 && i + 1 < argc) {
			code = atoi(argv[++i]);
		} else if (strcmp(argv[i], "forks") == 0 && i + 1 < argc) {
			printf("forks_made=%d\n", try_forks(atoi(argv[++i])));
		} else if (strcmp(argv[i], "wait-stdin") == 0) {
			printf("waiting\n");
			fflush(stdout);
			char buf[256];
			while (read(0, buf, sizeof(buf)) > 0)
				;
		} else if (strcmp(argv[i], "wait-signal") == 0) {
			code = wait_signal();
		} else {
			printf("unknown_argument=%s\n", argv[i]);
			code = 99;
		}
	}
	printf("done\n");
	return code;
}
