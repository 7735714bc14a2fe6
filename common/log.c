#include "common/log.h"
#include "common/timing.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static enum log_level current_level = LOG_WARN;
static FILE *log_file;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

void log_set_file(FILE *f)
{
	log_file = f;
}

int log_parse_level(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > current_level)
		return;
	/* Format the whole line first and write it with one call, so lines from vCPU threads and
	 * the vmm thread never interleave mid-line. */
	char line[2048];
	double ms = timing_ms_since_start();
	int n = snprintf(line, sizeof(line), "[%10.3f ms] ember %s: ", ms, level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (log_file) {
		fwrite(line, 1, n, log_file);
		fflush(log_file);
	} else {
		ssize_t w = write(STDERR_FILENO, line, n);
		(void)w;
	}
}
