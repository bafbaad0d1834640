/*
 * log.c -- one-line log messages to stderr, and error codes as text.
 *
 * Owns:    nothing but the verbose flag.
 * Threads: any thread may log; each line is written with one fprintf(),
 *          which stdio locks, so lines from different threads never mix.
 * Locks:   none of its own; the verbose flag is an atomic int.
 * Interface:
 *   - log_info() for events an operator needs (tunnels, failures);
 *   - log_request() for per-request lines, silenced by --quiet;
 *   - ptth_strerror() for every code the library returns.
 * Tutorial: "Running the demo".
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ptth.h"
#include "log.h"

static atomic_int log_verbose = 1;

void
ptth_log_set_verbose(int verbose)
{
	atomic_store(&log_verbose, verbose != 0);
}

bool
log_is_verbose(void)
{
	return atomic_load(&log_verbose) != 0;
}

/* Formats one line with a time stamp, like Go's log package does, and
 * writes it with one fwrite(): one call per line, so lines of different
 * threads never mix, and no fprintf() to the unbuffered stderr, which
 * would format through an 8 KiB buffer on the caller's stack (a user
 * thread that logs a refusal would touch two more pages of its stack). */
static void
log_vwrite(const char *fmt, va_list ap)
{
	enum { STAMP_MAX = 32, TEXT_MAX = 1023 };
	char line[STAMP_MAX + TEXT_MAX + 2];
	time_t now = time(NULL);
	struct tm tm;
	size_t len;
	int n;

	localtime_r(&now, &tm);
	len = strftime(line, STAMP_MAX, "%Y/%m/%d %H:%M:%S", &tm);
	line[len++] = ' ';
	n = vsnprintf(line + len, TEXT_MAX + 1, fmt, ap);
	if (n > 0)
		len += (size_t)n < TEXT_MAX ? (size_t)n : TEXT_MAX;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(fmt, ap);
	va_end(ap);
}

void
log_request(const char *fmt, ...)
{
	va_list ap;

	if (!log_is_verbose())
		return;
	va_start(ap, fmt);
	log_vwrite(fmt, ap);
	va_end(ap);
}

const char *
ptth_strerror(int code)
{
	switch (code) {
	case 0:            return "success";
	case PTTH_EPROTO:  return "protocol error";
	case PTTH_ERESET:  return "stream reset by peer";
	case PTTH_ECLOSED: return "connection closed";
	case PTTH_ETOOBIG: return "limit exceeded";
	case PTTH_ESTATE:  return "not allowed in this state";
	case PTTH_EADDR:   return "bad address";
	case PTTH_EREFUSED: return "refused by the backend before processing";
	case PTTH_EAUTH:   return "the router refused the token (401)";
	case PTTH_EFORBIDDEN: return "the token may not serve this service (403)";
	}
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}
