/*
 * access_log.c -- the access log: one line per request, written by the
 * request's own user thread as the request ends, to a file or to stdout.
 *
 * Owns:    the log's file descriptor and its path.
 * Threads: every user thread writes (access_log_write()); any thread may
 *          reopen (bin/router's main thread on SIGHUP); the router's
 *          caller opens and closes.
 * Locks:   none. Each line is one write(2) on a descriptor opened with
 *          O_APPEND, which the kernel appends whole: lines from different
 *          threads never mix, and no lock is needed to keep them apart.
 *          Reopening does not swap descriptors (a writer could then use a
 *          number just closed and reused by a socket): it opens the new
 *          file and dup3()s it onto the same number, which the kernel
 *          does atomically. A write running meanwhile lands whole in the
 *          old file or whole in the new one.
 * Interface:
 *   - access_log_open(): "-" is stdout, anything else a file, created
 *     if needed and appended to;
 *   - access_log_reopen(): after logrotate renamed the file, start a new
 *     one with the same name (SIGHUP in bin/router);
 *   - access_log_format() makes a line (the format is in README.md,
 *     "Watching the router"); access_log_write() writes it.
 * The write is on the request path by design: one system call, no lock,
 * after the response is out. A log on a slow disk slows each request's
 * end by that one write; a line that cannot be written is counted
 * (ptth_access_log_errors_total), never retried.
 * Tutorial: "Watching the router".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ptth.h"
#include "access_log.h"
#include "metrics.h"

void
access_log_init(struct access_log *l)
{
	l->fd = -1;
	l->path = NULL;
}

static int
access_log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

/* Opens the log: path "-" is stdout (a duplicate of it), anything else
 * a file. Returns 0 or a negative code (the file cannot be opened). */
int
access_log_open(struct access_log *l, const char *path)
{
	int fd;

	if (strcmp(path, "-") == 0) {
		fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
	} else {
		l->path = strdup(path);
		if (l->path == NULL)
			return -ENOMEM;
		fd = access_log_open_file(path);
		if (fd < 0) {
			free(l->path);
			l->path = NULL;
			return fd;
		}
	}
	l->fd = fd;
	return 0;
}

/* Opens the path again and puts the new file under the log's number.
 * Stdout is not reopened. Returns 0, PTTH_ESTATE when there is no log,
 * or a negative code (the old file stays in use). */
int
access_log_reopen(struct access_log *l)
{
	int fd;

	if (l->fd < 0)
		return PTTH_ESTATE;
	if (l->path == NULL)
		return 0;
	fd = access_log_open_file(l->path);
	if (fd < 0)
		return fd;
	if (dup3(fd, l->fd, O_CLOEXEC) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	return 0;
}

void
access_log_close(struct access_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	free(l->path);
	access_log_init(l);
}

/* Appends s to buf (at *len, capacity cap, one byte kept for the NUL),
 * escaped: a byte outside '!'..'~', or '"' or '\', becomes \xHH. */
static void
access_log_escape(char *buf, size_t cap, size_t *len, const char *s)
{
	for (; *s != '\0' && *len + 5 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '\\')
			*len += (size_t)snprintf(buf + *len, cap - *len, "\\x%02x", ch);
		else
			buf[(*len)++] = (char)ch;
	}
	buf[*len] = '\0';
}

/* Appends printf-formatted text, never past cap. */
static void
access_log_append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
access_log_append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len + 1 >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* Formats one line, ending in '\n', into buf (cap bytes, at least 256):
 *   CLIENT [TIME] "METHOD TARGET HTTP/1.x" STATUS BYTES DURATION TUNNEL SERVICE
 * TIME is the request's first byte, UTC, in milliseconds; the request
 * line is "-" when no head was parsed; STATUS is 0 when no answer was
 * sent; BYTES went to the user; DURATION is in seconds; TUNNEL is the
 * tunnel's id and SERVICE its service, "-" for none or the default pool.
 * Returns the length. */
size_t
access_log_format(char *buf, size_t cap, const struct request_record *rec,
                  const char *client, long long duration_us)
{
	time_t secs = (time_t)(rec->start_wall_ms / 1000);
	const char *service = rec->service != NULL ? rec->service->name : "";
	char stamp[32] = "-";
	struct tm tm;
	size_t len = 0;

	if (gmtime_r(&secs, &tm) != NULL) /* gmtime_r: no time zone, no lock */
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	access_log_append(buf, cap - 1, &len, "%s [%s.%03dZ] \"", client, stamp,
	                  (int)(rec->start_wall_ms % 1000));
	if (rec->method[0] == '\0') {
		access_log_append(buf, cap - 1, &len, "-");
	} else {
		access_log_escape(buf, cap - 160, &len, rec->method);
		access_log_append(buf, cap - 1, &len, " ");
		access_log_escape(buf, cap - 160, &len, rec->target);
		access_log_append(buf, cap - 1, &len, " HTTP/1.%d", rec->version_minor);
	}
	access_log_append(buf, cap - 1, &len, "\" %d %lld %lld.%06lld ", rec->status,
	                  rec->response_bytes, duration_us / 1000000, duration_us % 1000000);
	if (rec->tunnel_id > 0)
		access_log_append(buf, cap - 1, &len, "%d ", rec->tunnel_id);
	else
		access_log_append(buf, cap - 1, &len, "- ");
	if (service[0] != '\0')
		access_log_escape(buf, cap - 1, &len, service);
	else
		access_log_append(buf, cap - 1, &len, "-");
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

/* Writes the line for one request, in one write(2). Returns 0 (also
 * when there is no log) or a negative code when the line was not
 * written whole. */
int
access_log_write(struct access_log *l, const struct request_record *rec,
                 const char *client, long long duration_us)
{
	char line[ACCESS_LOG_LINE_MAX];
	size_t len;
	ssize_t n;

	if (l->fd < 0)
		return 0;
	len = access_log_format(line, sizeof line, rec, client, duration_us);
	do
		n = write(l->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}
