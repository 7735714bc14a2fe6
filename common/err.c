#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERR_MSG_MAX 1024

static __thread char err_buf[ERR_MSG_MAX];

static int negative(int code)
{
	if (code == 0)
		return -EIO;
	return code < 0 ? code : -code;
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	return negative(code);
}

int err_errno(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(err_buf))
		snprintf(err_buf + n, sizeof(err_buf) - n, ": %s", strerror(saved));
	return negative(saved);
}

int err_wrap(int code, const char *fmt, ...)
{
	char old[ERR_MSG_MAX];
	memcpy(old, err_buf, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	if (old[0] && n >= 0 && (size_t)n < sizeof(err_buf)) {
		size_t room = sizeof(err_buf) - (size_t)n;
		size_t len = strlen(old);
		if (room > 2) {
			memcpy(err_buf + n, ": ", 2);
			size_t copy = len < room - 3 ? len : room - 3;
			memcpy(err_buf + n + 2, old, copy);
			err_buf[n + 2 + copy] = 0;
		}
	}
	return negative(code);
}

const char *err_msg(void)
{
	return err_buf[0] ? err_buf : "unknown error";
}

void err_clear(void)
{
	err_buf[0] = 0;
}
