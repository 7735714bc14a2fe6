/* The binary the jail runs. The jail holds no /lib and no /usr, so a dynamically linked
 * monitor could not even start there: only a static x86_64 ELF executable (static or
 * static-pie) is accepted, and the check reads the same open file that is later copied in. */
#pragma once

/* Open `path` and check it: a regular, executable, statically linked x86_64 ELF executable.
 * Returns an O_RDONLY|O_CLOEXEC fd, or a negative errno with err_msg() saying what is wrong. */
int exec_file_open(const char *path);
/* The check alone, on an open file; `path` is for messages. */
int exec_file_check_static_elf(int fd, const char *path);
