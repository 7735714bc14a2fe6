/* ember-jailer's checks that need no jail: the command line, the cgroup v1 translation and the
 * static-ELF check of --exec-file. */
#include "jailer/args.h"
#include "jailer/cgroup.h"
#include "jailer/exec_file.h"
#include "common/err.h"
#include "tests/unit/test_jailer_util.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS 40

/* Test processes stop at their first failed assertion without freeing what they hold; leak
 * reports there are noise. The jailer, a process of its own, is still checked for leaks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

/* Parse "ember-jailer <required options> <extra...>"; `required` false leaves them out. */
static int parse(struct jailer_args *a, bool required, const char *const *extra)
{
	static char *argv[MAX_ARGS];
	int n = 0;
	argv[n++] = "ember-jailer";
	if (required) {
		const char *base[] = {"--id",  "fn-42", "--exec-file", "/usr/bin/ember",
				      "--uid", "10042", "--gid",       "10043"};
		for (unsigned i = 0; i < 8; i++)
			argv[n++] = (char *)base[i];
	}
	for (unsigned i = 0; extra && extra[i]; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	return jailer_args_parse(n, argv, a);
}

Test(jailer_args, a_full_command_line)
{
	struct jailer_args a;
	const char *extra[] = {"--chroot-base",
			       "/srv/j",
			       "--netns",
			       "/var/run/netns/fn-42",
			       "--cgroup",
			       "memory.max=268435456",
			       "--cgroup",
			       "cpu.max=50000 100000",
			       "--parent-cgroup",
			       "platform/vms",
			       "--resource-limit",
			       "no-file=512",
			       "--resource-limit",
			       "fsize=1048576",
			       "--daemonize",
			       "--",
			       "run",
			       "--api-sock",
			       "/run/api.sock",
			       NULL};
	cr_assert(eq(int, parse(&a, true, extra), 0), "%s", err_msg());
	cr_assert(eq(str, (char *)a.id, "fn-42"));
	cr_assert(eq(str, (char *)a.exec_file, "/usr/bin/ember"));
	cr_assert(eq(u32, a.uid, 10042));
	cr_assert(eq(u32, a.gid, 10043));
	cr_assert(eq(str, (char *)a.chroot_base, "/srv/j"));
	cr_assert(eq(str, (char *)a.netns, "/var/run/netns/fn-42"));
	cr_assert(eq(str, (char *)a.parent_cgroup, "platform/vms"));
	cr_assert(eq(u32, a.ncgroups, 2));
	cr_assert(eq(str, a.cgroups[0].file, "memory.max"));
	cr_assert(eq(str, a.cgroups[0].value, "268435456"));
	cr_assert(eq(str, a.cgroups[1].file, "cpu.max"));
	cr_assert(eq(str, a.cgroups[1].value, "50000 100000"));
	cr_assert(eq(u64, a.nofile, 512));
	cr_assert(a.fsize_set);
	cr_assert(eq(u64, a.fsize, 1048576));
	cr_assert(a.daemonize);
	cr_assert(eq(str, a.monitor_argv[0], "run"));
	cr_assert(eq(str, a.monitor_argv[1], "--api-sock"));
	cr_assert(eq(str, a.monitor_argv[2], "/run/api.sock"));
	cr_assert(eq(ptr, a.monitor_argv[3], NULL));
	jailer_args_free(&a);
}

Test(jailer_args, defaults)
{
	struct jailer_args a;
	cr_assert(eq(int, parse(&a, true, NULL), 0), "%s", err_msg());
	cr_assert(eq(str, (char *)a.chroot_base, JAILER_DEFAULT_CHROOT_BASE));
	cr_assert(eq(u64, a.nofile, JAILER_DEFAULT_NOFILE));
	cr_assert(not(a.fsize_set));
	cr_assert(not(a.daemonize));
	cr_assert(eq(ptr, (void *)a.netns, NULL));
	cr_assert(eq(ptr, (void *)a.parent_cgroup, NULL));
	cr_assert(eq(ptr, a.monitor_argv[0], NULL));
	jailer_args_free(&a);
}

Test(jailer_args, a_double_dash_as_an_option_value_does_not_end_the_options)
{
	struct jailer_args a;
	const char *extra[] = {"--cgroup", "pids.max=8", "--", "--id", "x", NULL};
	cr_assert(eq(int, parse(&a, true, extra), 0), "%s", err_msg());
	cr_assert(eq(str, (char *)a.id, "fn-42"));
	cr_assert(eq(str, a.monitor_argv[0], "--id"));
	jailer_args_free(&a);
}

struct bad_case {
	bool required;
	const char *args[6];
	const char *says;
};

Test(jailer_args, each_bad_argument_gets_a_clear_error)
{
	static const struct bad_case cases[] = {
	    {false, {"--exec-file", "e", "--uid", "1", "--gid", "1"}, "missing --id"},
	    {false, {"--id", "a", "--uid", "1", "--gid", "1"}, "missing --exec-file"},
	    {false, {"--id", "a", "--exec-file", "e", "--gid", "1"}, "missing --uid"},
	    {false, {"--id", "a", "--exec-file", "e", "--uid", "1"}, "missing --gid"},
	    {false, {"--id", "../etc", "--exec-file", "e"}, "--id ../etc: not a safe name"},
	    {false, {"--id", "-x"}, "--id -x: not a safe name"},
	    {false, {"--id", "a b"}, "not a safe name"},
	    {false, {"--id", "fn.42"}, "not a safe name"},
	    {false, {"--id", ""}, "--id: empty value"},
	    {false, {"--uid", "0"}, "--uid 0: the monitor must not run as root"},
	    {false, {"--gid", "0"}, "--gid 0: the monitor must not run as root"},
	    {false, {"--uid", "ten"}, "--uid: 'ten' is not a number"},
	    {false, {"--uid", "-5"}, "--uid: '-5' is not a number"},
	    {false, {"--uid", "4294967295"}, "--uid: 4294967295 is out of range"},
	    {true, {"--id", "b"}, "--id given twice"},
	    {true, {"--uid", "7"}, "--uid given twice"},
	    {true, {"--exec-file", "x"}, "--exec-file given twice"},
	    {true, {"--bogus"}, "unknown option '--bogus'"},
	    {true, {"--netns"}, "option '--netns' needs a value"},
	    {true, {"stray"}, "unexpected argument 'stray' (the monitor's arguments go after --)"},
	    {true, {"--cgroup", "memory.max"}, "expected FILE=VALUE"},
	    {true, {"--cgroup", "=5"}, "the file name is empty"},
	    {true, {"--cgroup", "cgroup.procs=1"}, "'cgroup.procs' is not a controller's file"},
	    {true, {"--cgroup", "release_agent=/bin/sh"}, "'release_agent' is not a controller"},
	    {true, {"--cgroup", "tasks=1"}, "'tasks' is not a controller's file"},
	    {true, {"--cgroup", "../memory.max=1"}, "is not a controller's file"},
	    {true, {"--cgroup", "Memory.max=1"}, "is not a controller's file"},
	    {true, {"--cgroup", "memory.max="}, "the value must be one line"},
	    {true, {"--cgroup", "memory.max=1\n2"}, "the value must be one line"},
	    {true, {"--cgroup", "pids.max=1", "--cgroup", "pids.max=2"}, "pids.max is already set"},
	    {true, {"--resource-limit", "cpu=1"}, "expected no-file=N or fsize=BYTES"},
	    {true, {"--resource-limit", "no-file=0"}, "no-file: 0 is out of range"},
	    {true, {"--resource-limit", "fsize=big"}, "fsize: 'big' is not a number"},
	    {true, {"--parent-cgroup", "/abs"}, "--parent-cgroup /abs: expected a relative path"},
	    {true, {"--parent-cgroup", "a/../b"}, "without . or .. steps"},
	    {true, {"--parent-cgroup", "a/"}, "expected a relative path"},
	    {true, {"--parent-cgroup", "a b"}, "expected a relative path"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jailer_args a;
		const char *args[7] = {0};
		memcpy(args, cases[i].args, sizeof(cases[i].args));
		err_clear();
		int r = parse(&a, cases[i].required, args);
		cr_assert(lt(int, r, 0), "case %u (%s) was accepted", i, cases[i].says);
		cr_assert(ne(ptr, strstr(err_msg(), cases[i].says), NULL),
			  "case %u: wanted \"%s\" in \"%s\"", i, cases[i].says, err_msg());
	}
}

Test(jailer_args, help_needs_nothing_else)
{
	struct jailer_args a;
	const char *extra[] = {"--help", NULL};
	cr_assert(eq(int, parse(&a, false, extra), 0));
	cr_assert(a.help);
	jailer_args_free(&a);
}

Test(jailer_args, ids)
{
	cr_assert(jailer_id_is_safe("fn-42"));
	cr_assert(jailer_id_is_safe("A_b-9"));
	cr_assert(jailer_id_is_safe("551e7604-e35c-42b3-b825-416853441234"));
	char longest[JAILER_ID_MAX + 2];
	memset(longest, 'a', sizeof(longest));
	longest[JAILER_ID_MAX] = 0;
	cr_assert(jailer_id_is_safe(longest));
	longest[JAILER_ID_MAX] = 'a';
	longest[JAILER_ID_MAX + 1] = 0;
	cr_assert(not(jailer_id_is_safe(longest)));
	const char *bad[] = {"", ".", "..", "_x", "-x", "a/b", "a.b", "a b", "a\n", "é"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert(not(jailer_id_is_safe(bad[i])), "'%s' accepted", bad[i]);
}

Test(jailer_cgroup, v2_names_translate_to_v1_files)
{
	char files[2][64], values[2][JAILER_CGROUP_VALUE_MAX];
	cr_assert(eq(int, cgroup_v1_translate("memory.max", "268435456", files, values), 1));
	cr_assert(eq(str, files[0], "memory.limit_in_bytes"));
	cr_assert(eq(str, values[0], "268435456"));
	cr_assert(eq(int, cgroup_v1_translate("memory.max", "max", files, values), 1));
	cr_assert(eq(str, values[0], "-1"));
	cr_assert(eq(int, cgroup_v1_translate("cpu.max", "50000 100000", files, values), 2));
	cr_assert(eq(str, files[0], "cpu.cfs_period_us"));
	cr_assert(eq(str, values[0], "100000"));
	cr_assert(eq(str, files[1], "cpu.cfs_quota_us"));
	cr_assert(eq(str, values[1], "50000"));
	cr_assert(eq(int, cgroup_v1_translate("cpu.max", "max", files, values), 2));
	cr_assert(eq(str, values[0], "100000"));
	cr_assert(eq(str, values[1], "-1"));
	cr_assert(eq(int, cgroup_v1_translate("cpu.weight", "100", files, values), 1));
	cr_assert(eq(str, files[0], "cpu.shares"));
	cr_assert(eq(str, values[0], "1024"));
	cr_assert(eq(int, cgroup_v1_translate("cpu.weight", "1", files, values), 1));
	cr_assert(eq(str, values[0], "10"));
	cr_assert(eq(int, cgroup_v1_translate("pids.max", "64", files, values), 1));
	cr_assert(eq(str, files[0], "pids.max"));
	cr_assert(eq(str, values[0], "64"));
	cr_assert(eq(int, cgroup_v1_translate("memory.limit_in_bytes", "1", files, values), 1));
	cr_assert(eq(str, files[0], "memory.limit_in_bytes"));
	cr_assert(lt(int, cgroup_v1_translate("cpu.max", "fast", files, values), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "expected \"QUOTA [PERIOD]\""), NULL), "%s", err_msg());
	const char *bad_cpu_max[] = {"1 2 3", "50000 abc", "50000 ", " 50000", "", "-1 100000"};
	for (unsigned i = 0; i < sizeof(bad_cpu_max) / sizeof(bad_cpu_max[0]); i++)
		cr_assert(lt(int, cgroup_v1_translate("cpu.max", bad_cpu_max[i], files, values), 0),
			  "cpu.max=\"%s\" accepted", bad_cpu_max[i]);
	cr_assert(eq(int, cgroup_v1_translate("cpu.max", "25000", files, values), 2));
	cr_assert(eq(str, values[0], "100000"));
	cr_assert(eq(str, values[1], "25000"));
	cr_assert(lt(int, cgroup_v1_translate("cpu.weight", "0", files, values), 0));
	cr_assert(lt(int, cgroup_v1_translate("cpu.weight", "10001", files, values), 0));
}

/* ---- --exec-file: only static x86_64 ELF executables ---- */

static char *scratch_dir(void)
{
	char *dir;
	cr_assert(asprintf(&dir, "%s/exec-file-tests-%d", getenv("EMBER_JAIL_TEST_DIR"),
			   (int)getpid()) > 0);
	return dir;
}

static char *scratch(const char *name)
{
	char *dir = scratch_dir(), *path;
	mkdir(dir, 0755);
	cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
	free(dir);
	return path;
}

static void remove_scratch(void)
{
	char *dir = scratch_dir();
	remove_tree(dir);
	free(dir);
}

static char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char *path = scratch(name);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert(fd >= 0);
	cr_assert(eq(i64, write(fd, data, len), (ssize_t)len));
	close(fd);
	cr_assert(chmod(path, mode) == 0);
	return path;
}

/* A minimal ELF64 x86_64 executable image: header, program headers, then `dyn` entries (if
 * any) under a PT_DYNAMIC header. */
static char *fake_elf(const char *name, uint16_t type, bool interp, const Elf64_Dyn *dyn,
		      unsigned ndyn)
{
	unsigned char img[1024] = {0};
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = type;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x401000;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof(Elf64_Ehdr));
	unsigned n = 0;
	ph[n++] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0, .p_filesz = 512, .p_memsz = 512};
	size_t data = 512;
	if (interp) {
		const char *loader = "/lib64/ld-linux-x86-64.so.2";
		memcpy(img + data, loader, strlen(loader) + 1);
		ph[n++] = (Elf64_Phdr){
		    .p_type = PT_INTERP, .p_offset = data, .p_filesz = strlen(loader) + 1};
		data += 64;
	}
	if (ndyn) {
		memcpy(img + data, dyn, ndyn * sizeof(*dyn));
		ph[n++] = (Elf64_Phdr){
		    .p_type = PT_DYNAMIC, .p_offset = data, .p_filesz = ndyn * sizeof(*dyn)};
		data += ndyn * sizeof(*dyn);
	}
	eh->e_phnum = (uint16_t)n;
	return write_file(name, img, data, 0755);
}

static void assert_refused(const char *path, const char *says)
{
	err_clear();
	int fd = exec_file_open(path);
	cr_assert(lt(int, fd, 0), "%s was accepted", path);
	cr_assert(ne(ptr, strstr(err_msg(), says), NULL), "wanted \"%s\" in \"%s\"", says,
		  err_msg());
}

Test(jailer_exec_file, a_static_executable_is_accepted)
{
	int fd = exec_file_open(probe_bin());
	cr_assert(ge(int, fd, 0), "%s", err_msg());
	close(fd);
	Elf64_Dyn static_pie[] = {{.d_tag = DT_FLAGS_1, .d_un.d_val = DF_1_PIE},
				  {.d_tag = DT_NULL}};
	char *path = fake_elf("static-pie", ET_DYN, false, static_pie, 2);
	fd = exec_file_open(path);
	cr_assert(ge(int, fd, 0), "%s", err_msg());
	close(fd);
	free(path);
	const char *ember = static_ember_bin();
	if (ember) {
		fd = exec_file_open(ember);
		cr_assert(ge(int, fd, 0), "%s: %s", ember, err_msg());
		close(fd);
	}
	remove_scratch();
}

Test(jailer_exec_file, a_dynamic_executable_is_refused_with_the_reason)
{
	assert_refused("/bin/sh", "is dynamically linked (it asks for the loader /lib64/ld-linux");
	assert_refused("/bin/sh", "give a statically linked monitor");
	char *path = fake_elf("interp", ET_EXEC, true, NULL, 0);
	assert_refused(path, "is dynamically linked (it asks for the loader "
			     "/lib64/ld-linux-x86-64.so.2)");
	free(path);
	Elf64_Dyn needed[] = {{.d_tag = DT_NEEDED, .d_un.d_val = 1}, {.d_tag = DT_NULL}};
	path = fake_elf("needed", ET_DYN, false, needed, 2);
	assert_refused(path, "needs shared libraries");
	free(path);
	remove_scratch();
}

Test(jailer_exec_file, other_files_are_refused)
{
	char *path = write_file("script", "#!/bin/sh\nexit 0\n", 18, 0755);
	assert_refused(path, "not an ELF executable");
	free(path);
	path = write_file("empty", "", 0, 0755);
	assert_refused(path, "not an ELF executable");
	free(path);
	path = fake_elf("not-executable", ET_EXEC, false, NULL, 0);
	cr_assert(chmod(path, 0644) == 0);
	assert_refused(path, "not executable (mode 0644)");
	free(path);
	path = fake_elf("relocatable", ET_REL, false, NULL, 0);
	assert_refused(path, "an ELF file, but not an executable");
	free(path);
	unsigned char elf32[64] = {0x7f, 'E', 'L', 'F', ELFCLASS32, ELFDATA2LSB, EV_CURRENT};
	path = write_file("elf32", elf32, sizeof(elf32), 0755);
	assert_refused(path, "not a 64-bit x86_64 ELF file");
	free(path);
	/* A header that promises program headers beyond the end of the file. */
	unsigned char img[sizeof(Elf64_Ehdr)] = {0};
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_phoff = 4096;
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 3;
	path = write_file("truncated", img, sizeof(img), 0755);
	assert_refused(path, "truncated ELF file");
	free(path);
	eh->e_phnum = 60000;
	path = write_file("phnum", img, sizeof(img), 0755);
	assert_refused(path, "bad ELF program header table");
	free(path);
	assert_refused("/", "not a regular file");
	assert_refused("/nonexistent/ember", "--exec-file /nonexistent/ember: No such file");
	remove_scratch();
}
