/* access_log.h -- one line per request, to a file or stdout. See access_log.c. */
#ifndef PTTH_ACCESS_LOG_H
#define PTTH_ACCESS_LOG_H

#include <stddef.h>

struct request_record;

/* The longest line written; longer targets were cut before (the record
 * keeps REQUEST_RECORD_TARGET bytes, each escaped to at most 4). */
#define ACCESS_LOG_LINE_MAX 4096

struct access_log {
	/* Set by access_log_open() before any request, read-only until
	 * access_log_close() after the last: */
	int fd;          /* -1: no access log. Never changes while open:
	                    reopening puts the new file under the same number */
	char *path;      /* the file to reopen, or NULL for "-" (stdout) */
};

void access_log_init(struct access_log *l);
int access_log_open(struct access_log *l, const char *path);
int access_log_reopen(struct access_log *l);
void access_log_close(struct access_log *l);
size_t access_log_format(char *buf, size_t cap, const struct request_record *rec,
                         const char *client, long long duration_us);
int access_log_write(struct access_log *l, const struct request_record *rec,
                     const char *client, long long duration_us);

#endif
