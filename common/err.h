/* Errors travel up as a negative errno plus a message that each layer may prefix with its own
 * context ("loading kernel: vmlinux: ELF program header 3: ..."), and are reported once, at the
 * top. The message lives in thread-local storage so vCPU threads can report their own. */
#pragma once

#include <stdarg.h>

/* Replace the current message; returns code as a negative errno (EIO if code is 0). */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "context: "; returns code unchanged (negative). */
int err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_set with ": strerror(errno)" appended; for failed syscalls and ioctls. */
int err_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);
void err_clear(void);
