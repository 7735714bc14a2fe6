/* The monitor's own messages: timestamped lines on stderr (or a log file), never on stdout,
 * which belongs to the guest console. */
#pragma once

#include <stdio.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
/* Redirect log lines to an open file (NULL: stderr). */
void log_set_file(FILE *f);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum log_level log_get_level(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_DEBUG)                                                  \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
