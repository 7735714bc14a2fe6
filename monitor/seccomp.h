/* Per-thread seccomp filters: each thread kind of the monitor (API, vmm, vCPU) confines itself to
 * the system calls it makes, before it handles anything a guest or an API client controls. */
#pragma once

enum seccomp_thread { SECCOMP_API, SECCOMP_VMM, SECCOMP_VCPU };

/* on: a call outside the filter kills the whole process (SIGSYS); log: the kernel logs it (audit
 * type 1326) and lets it through, to find what a filter lacks; off: no filters. */
enum seccomp_mode { SECCOMP_MODE_ON, SECCOMP_MODE_LOG, SECCOMP_MODE_OFF };

/* "on", "log" or "off" (the --seccomp flag); set once, before any thread installs a filter. */
int seccomp_parse_mode(const char *s, enum seccomp_mode *out);
void seccomp_set_mode(enum seccomp_mode mode);

/* Confines the calling thread (only it: threads it creates later inherit the filter). Sets
 * no_new_privs, which an unprivileged process needs to install a filter. */
int seccomp_install(enum seccomp_thread kind);

/* seccomp_install for a thread with no one to return an error to: a thread that cannot confine
 * itself must not go on unconfined, so this logs why and ends the process. */
void seccomp_install_or_exit(enum seccomp_thread kind);
