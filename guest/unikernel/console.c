#include "console.h"

#include "arch.h"
#include "lib.h"

/* A byte an exit whatever we do: KVM emulates "rep outsb" one element per
 * userspace exit, and plain outb takes KVM's fast path. No THRE polling: the
 * virtual UARTs of Ember, Firecracker and QEMU take bytes as they come. */
void console_write(const char *s, size_t n)
{
	while (n--)
		outb(COM1, (uint8_t)*s++);
}

/* Output collects into one line and goes out at its newline. The length is
 * in .data so that even an exception before BSS is cleared prints sanely. */
static char line_buf[256];
static size_t line_len __attribute__((section(".data")));

void console_flush(void)
{
	if (line_len)
		console_write(line_buf, line_len);
	line_len = 0;
}

static void put(char c)
{
	if (line_len == sizeof(line_buf))
		console_flush();
	line_buf[line_len++] = c;
	if (c == '\n')
		console_flush();
}

static void put_uint(uint64_t v, unsigned base, int width, char pad)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		put(pad);
	while (n)
		put(digits[--n]);
}

void kvprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, longs = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				put(*s++);
			break;
		}
		case 'c':
			put((char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				put('-');
				v = -v;
			}
			put_uint((uint64_t)v, 10, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			put_uint(v, *fmt == 'u' ? 10 : 16, width, pad);
			break;
		}
		case 'p':
			put('0');
			put('x');
			put_uint((uintptr_t)va_arg(ap, void *), 16, 0, ' ');
			break;
		case '%':
			put('%');
			break;
		default: /* unknown or truncated conversion: print it as is */
			put('%');
			if (!*fmt)
				return;
			put(*fmt);
		}
	}
}

void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}
