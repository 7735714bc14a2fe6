/* Serial console (8250 at COM1), line-buffered formatted output. */
#ifndef UK_CONSOLE_H
#define UK_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

void console_write(const char *s, size_t n);
/* Formatted output is buffered until a newline; flush writes a partial line. */
void console_flush(void);
/* %s %c %d %u %x %p with optional '0', width and 'l'/'ll'; integers are 32-bit
 * unless 'l' is given. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);

#endif
