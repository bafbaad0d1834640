/* http1.h -- HTTP/1.1 request parsing for user connections. See http1.c. */
#ifndef PTTH_HTTP1_H
#define PTTH_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "headers.h"

struct http1_parser;

struct http1_limits {
	size_t max_uri;            /* request target bytes (414 beyond) */
	size_t max_header_bytes;   /* field bytes (431 beyond) */
	size_t max_header_fields;  /* field count (431 beyond) */
};

/* Called by http1_parser_feed() on the caller's thread. on_head() comes
 * only for a head that passed every check, body framing included. A
 * negative return stops parsing with that code. */
struct http1_callbacks {
	int (*on_head)(void *arg, const struct http1_head *head, bool has_body,
	               long long content_length, bool keep_alive);
	int (*on_body)(void *arg, const char *data, size_t len);
	int (*on_end)(void *arg);
	int (*on_begin)(void *arg);   /* a request's first byte; may be NULL */
};

struct http1_parser *http1_parser_new(const struct http1_callbacks *cbs, void *arg,
                                      const struct http1_limits *limits);
void http1_parser_free(struct http1_parser *p);
ssize_t http1_parser_feed(struct http1_parser *p, const char *data, size_t len);
int http1_parser_feed_eof(struct http1_parser *p);
bool http1_parser_in_message(const struct http1_parser *p);
bool http1_parser_in_head(const struct http1_parser *p);
int http1_parser_error_status(const struct http1_parser *p);
const char *http1_parser_error_text(const struct http1_parser *p);

#endif
