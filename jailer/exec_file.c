#include "jailer/exec_file.h"
#include "common/err.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* More program headers than any real executable has; a bound for what we read. */
#define MAX_PHDRS 256
/* Dynamic sections of static-pie executables hold a few dozen entries. */
#define MAX_DYNAMIC_BYTES (64 * 1024)

#define STATIC_HINT                                                                                \
	"the jail has no /lib or /usr for a dynamic loader: give a statically linked monitor "     \
	"(ember as built without sanitizers, or ember-static beside a sanitized build)"

static int read_exact(int fd, void *buf, size_t len, off_t off, const char *path, const char *what)
{
	ssize_t n = pread(fd, buf, len, off);
	if (n < 0)
		return err_errno("--exec-file %s: reading the %s", path, what);
	if ((size_t)n != len)
		return err_set(ENOEXEC, "--exec-file %s: truncated ELF file (its %s is cut off)",
			       path, what);
	return 0;
}

/* True when a dynamic section needs shared libraries (a DT_NEEDED entry before DT_NULL). */
static int dynamic_needs_libraries(int fd, const Elf64_Phdr *ph, const char *path, bool *needs)
{
	*needs = false;
	if (ph->p_filesz == 0)
		return 0;
	if (ph->p_filesz > MAX_DYNAMIC_BYTES)
		return err_set(ENOEXEC,
			       "--exec-file %s: dynamic section of %llu bytes is implausible", path,
			       (unsigned long long)ph->p_filesz);
	size_t n = (size_t)ph->p_filesz / sizeof(Elf64_Dyn);
	Elf64_Dyn *dyn = calloc(n ? n : 1, sizeof(*dyn));
	if (!dyn)
		return err_set(ENOMEM, "--exec-file %s: out of memory", path);
	int r = read_exact(fd, dyn, n * sizeof(*dyn), (off_t)ph->p_offset, path, "dynamic section");
	for (size_t i = 0; r == 0 && i < n && dyn[i].d_tag != DT_NULL; i++)
		if (dyn[i].d_tag == DT_NEEDED)
			*needs = true;
	free(dyn);
	return r;
}

int exec_file_check_static_elf(int fd, const char *path)
{
	Elf64_Ehdr eh;
	ssize_t got = pread(fd, &eh, sizeof(eh), 0);
	if (got < 0)
		return err_errno("--exec-file %s: reading the ELF header", path);
	if ((size_t)got < EI_NIDENT || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return err_set(ENOEXEC, "--exec-file %s: not an ELF executable", path);
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    (size_t)got < sizeof(eh) || eh.e_machine != EM_X86_64)
		return err_set(ENOEXEC, "--exec-file %s: not a 64-bit x86_64 ELF file", path);
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return err_set(ENOEXEC, "--exec-file %s: an ELF file, but not an executable", path);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS)
		return err_set(ENOEXEC, "--exec-file %s: bad ELF program header table", path);
	Elf64_Phdr ph[MAX_PHDRS];
	int r = read_exact(fd, ph, eh.e_phnum * sizeof(Elf64_Phdr), (off_t)eh.e_phoff, path,
			   "program header table");
	if (r < 0)
		return r;
	bool needs = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP) {
			char interp[256] = "";
			size_t len = ph[i].p_filesz < sizeof(interp) - 1 ? (size_t)ph[i].p_filesz
									 : sizeof(interp) - 1;
			if (pread(fd, interp, len, (off_t)ph[i].p_offset) < 0)
				interp[0] = 0;
			interp[len] = 0;
			return err_set(
			    ENOEXEC,
			    "--exec-file %s is dynamically linked (it asks for the loader "
			    "%s); " STATIC_HINT,
			    path, interp[0] ? interp : "(unreadable)");
		}
		if (ph[i].p_type == PT_DYNAMIC) {
			r = dynamic_needs_libraries(fd, &ph[i], path, &needs);
			if (r < 0)
				return r;
		}
	}
	if (needs)
		return err_set(ENOEXEC, "--exec-file %s needs shared libraries; " STATIC_HINT,
			       path);
	if (eh.e_type == ET_DYN && eh.e_entry == 0)
		return err_set(ENOEXEC, "--exec-file %s: a shared object, not an executable", path);
	return 0;
}

int exec_file_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("--exec-file %s", path);
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0)
		r = err_errno("--exec-file %s: stat", path);
	else if (!S_ISREG(st.st_mode))
		r = err_set(EINVAL, "--exec-file %s: not a regular file", path);
	else if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		r = err_set(EACCES, "--exec-file %s: not executable (mode %04o)", path,
			    (unsigned)(st.st_mode & 07777));
	else
		r = exec_file_check_static_elf(fd, path);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}
