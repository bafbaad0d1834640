/* log.h -- one-line log messages to stderr. See log.c. */
#ifndef PTTH_LOG_H
#define PTTH_LOG_H

#include <stdbool.h>

/* Always written: start-up lines, errors, tunnel changes. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Written only while verbose logging is on (per-request lines). */
void log_request(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool log_is_verbose(void);

#endif
