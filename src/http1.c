/*
 * http1.c -- HTTP/1.1 request parsing for user connections: the only
 * module that calls http-parser, so that a replacement (llhttp has nearly
 * the same interface) touches this file alone.
 *
 * Owns:    the http_parser state and the head being collected (target
 *          and fields), which it hands to on_head() and then forgets.
 * Threads: one user connection thread per parser.
 * Locks:   none; a parser is never shared.
 * Interface:
 *   - http1_parser_feed() parses what fits and calls on_head() once the
 *     head is complete, on_body() for each piece of (de-chunked) body and
 *     on_end() at the end of the message; it then stops and returns the
 *     bytes used, so a pipelined next request waits until the caller has
 *     answered this one;
 *   - errors come back as a negative return; http1_parser_error_status()
 *     says which status to answer (400, 414, 431).
 * Tutorial: "A request arrives".
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <http_parser.h>

#include "ptth.h"
#include "http1.h"

/* A growable byte buffer for the pieces http-parser hands over. */
struct piece {
	char *data;
	size_t len, alloc;
};

struct http1_parser {
	http_parser hp;                /* hp.data points back to us */
	http_parser_settings settings;
	const struct http1_callbacks *cbs;
	void *arg;
	struct http1_limits limits;

	/* The head being collected: */
	struct piece line;             /* the raw request line, to check its version */
	bool line_done;                /* line holds it up to the LF */
	struct piece url, field, value;
	bool in_value;                 /* the last piece was a value */
	struct http1_head head;
	char *path, *host;             /* owned, see http1_head_fill */
	bool in_message;
	bool head_done;                /* on_head was called for this message */

	int error_status;              /* 0, or the status to answer */
	const char *error_text;

	/* To spot obsolete line folding, which http-parser accepts: */
	const char *feed_start;        /* the buffer being parsed */
	bool prev_feed_ended_lf;       /* the previous buffer ended with LF and blanks */
};

/* Appends len bytes; fails past limit. Returns 0, -ENOMEM or PTTH_ETOOBIG. */
static int
piece_append(struct piece *pc, const char *data, size_t len, size_t limit)
{
	if (pc->len + len > limit)
		return PTTH_ETOOBIG;
	if (pc->len + len + 1 > pc->alloc) {
		size_t alloc = pc->alloc ? pc->alloc : 256;
		while (alloc < pc->len + len + 1)
			alloc *= 2;
		char *bigger = realloc(pc->data, alloc);
		if (bigger == NULL)
			return -ENOMEM;
		pc->data = bigger;
		pc->alloc = alloc;
	}
	memcpy(pc->data + pc->len, data, len);
	pc->len += len;
	pc->data[pc->len] = '\0';
	return 0;
}

/* Records the first error of this message; returns non-zero so that
 * http-parser stops with a callback error. */
static int
http1_fail(struct http1_parser *p, int status, const char *text)
{
	if (p->error_status == 0) {
		p->error_status = status;
		p->error_text = text;
	}
	return 1;
}

static void
http1_head_reset(struct http1_parser *p)
{
	header_list_free(&p->head.fields);
	free(p->path);
	free(p->host);
	p->path = p->host = NULL;
	p->url.len = p->field.len = p->value.len = 0;
	p->in_value = false;
	memset(&p->head, 0, sizeof p->head);
}

static int
on_message_begin(http_parser *hp)
{
	struct http1_parser *p = hp->data;

	http1_head_reset(p);
	p->in_message = true;
	p->head_done = false;
	if (p->cbs->on_begin != NULL && p->cbs->on_begin(p->arg) < 0)
		return http1_fail(p, 500, "cannot start a request");
	return 0;
}

static int
on_url(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = hp->data;
	int rc = piece_append(&p->url, at, len, p->limits.max_uri);

	if (rc == PTTH_ETOOBIG)
		return http1_fail(p, 414, "request target too long");
	return rc < 0 ? http1_fail(p, 500, "out of memory") : 0;
}

/* Moves the collected field and value into the head's field list. */
static int
http1_commit_field(struct http1_parser *p)
{
	if (p->field.len == 0)
		return 0;
	if (p->head.fields.count >= p->limits.max_header_fields)
		return http1_fail(p, 431, "too many header fields");
	/* http-parser keeps trailing whitespace; a field value has none. */
	while (p->value.len > 0 && (p->value.data[p->value.len - 1] == ' ' ||
	                            p->value.data[p->value.len - 1] == '\t'))
		p->value.len--;
	if (header_list_add(&p->head.fields, p->field.data, p->field.len,
	                    p->value.data ? p->value.data : "", p->value.len) < 0)
		return http1_fail(p, 500, "out of memory");
	p->field.len = p->value.len = 0;
	return 0;
}

/* Limits the whole header block: fields committed plus the one growing. */
static size_t
http1_header_room(const struct http1_parser *p)
{
	size_t used = p->head.fields.bytes + p->field.len + p->value.len;

	return used >= p->limits.max_header_bytes ? 0 : p->limits.max_header_bytes - used;
}

static int
on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = hp->data;

	if (p->in_value && http1_commit_field(p) != 0)
		return 1;
	p->in_value = false;
	/* "Host : x" reaches us as the name "Host ": RFC 9112 section 5.1
	 * says to reject whitespace between a field name and its colon. */
	if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL)
		return http1_fail(p, 400, "whitespace in a field name");
	if (piece_append(&p->field, at, len, p->field.len + http1_header_room(p)) < 0)
		return http1_fail(p, 431, "header block too large");
	return 0;
}

/* True when this value piece starts on a new line: a folded
 * continuation (RFC 9112 section 5.2), not a value cut by a read. We look
 * at the raw bytes before the piece, skipping blanks: a value proper
 * follows the colon, a continuation follows a line break. When the piece
 * starts the buffer, the previous buffer's end decides. */
static bool
http1_is_fold(const struct http1_parser *p, const char *at)
{
	const char *q = at;

	while (q > p->feed_start && (q[-1] == ' ' || q[-1] == '\t'))
		q--;
	if (q > p->feed_start)
		return q[-1] == '\n';
	return p->prev_feed_ended_lf;
}

static int
on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = hp->data;

	if (len > 0 && http1_is_fold(p, at))
		return http1_fail(p, 400, "obsolete line folding");
	p->in_value = true;
	if (piece_append(&p->value, at, len, p->value.len + http1_header_room(p)) < 0)
		return http1_fail(p, 431, "header block too large");
	return 0;
}

/* Fills head.path_and_query (origin form) and head.url_host (absolute
 * form) from the request target. Returns 0 or non-zero on a bad target. */
static int
http1_head_fill_target(struct http1_parser *p)
{
	struct http_parser_url u;

	if (p->url.len == 0)
		return http1_fail(p, 400, "missing request target");
	if (p->url.data[0] == '/' || strcmp(p->url.data, "*") == 0) {
		p->path = strdup(p->url.data);
		if (p->path == NULL)
			return http1_fail(p, 500, "out of memory");
		return 0;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(p->url.data, p->url.len, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_HOST)))
		return http1_fail(p, 400, "bad request target");
	/* Absolute form: "http://host:port/path?query" (RFC 9112 3.2.2). The
	 * parser's host excludes the brackets of an IPv6 literal; keep them. */
	size_t host_off = u.field_data[UF_HOST].off;
	size_t host_end = host_off + u.field_data[UF_HOST].len;
	if (host_off > 0 && p->url.data[host_off - 1] == '[') {
		host_off--;
		host_end++;
	}
	if (u.field_set & (1 << UF_PORT))
		host_end = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
	p->host = strndup(p->url.data + host_off, host_end - host_off);
	if (u.field_set & (1 << UF_PATH))
		p->path = strdup(p->url.data + u.field_data[UF_PATH].off);
	else if (u.field_set & (1 << UF_QUERY)) {
		if (asprintf(&p->path, "/?%s", p->url.data + u.field_data[UF_QUERY].off) < 0)
			p->path = NULL;
	}
	else
		p->path = strdup("/");
	if (p->host == NULL || p->path == NULL)
		return http1_fail(p, 500, "out of memory");
	return 0;
}

/* RFC 9112 section 3.2: an HTTP/1.1 request has exactly one Host, and
 * an absolute-form target's authority wins; we insist they agree. */
static int
http1_check_host(struct http1_parser *p, const http_parser *hp)
{
	const char *host = NULL;
	int count = 0;

	for (size_t i = 0; i < p->head.fields.count; i++) {
		if (strcasecmp(p->head.fields.items[i].name, "host") == 0) {
			host = p->head.fields.items[i].value;
			count++;
		}
	}
	if (count > 1)
		return http1_fail(p, 400, "more than one Host field");
	if (count == 0 && hp->http_major == 1 && hp->http_minor >= 1)
		return http1_fail(p, 400, "missing Host field");
	if (host != NULL && p->host != NULL && strcasecmp(host, p->host) != 0)
		return http1_fail(p, 400, "Host disagrees with the request target");
	return 0;
}

/* http-parser accepts any word starting with 'H' as "HTTP" and takes a
 * line without a version as HTTP/0.9; RFC 9112 section 2.3 wants exactly
 * "HTTP/1.x". Checks the raw request line that http1_parser_feed kept. */
static int
http1_check_version(struct http1_parser *p, const http_parser *hp)
{
	size_t len = p->line.len;
	char want[16];
	size_t wlen;

	if (hp->http_major > 1)
		return http1_fail(p, 505, "only HTTP/1.x is spoken here");
	while (len > 0 && (p->line.data[len - 1] == '\r' || p->line.data[len - 1] == '\n'))
		len--;
	wlen = (size_t)snprintf(want, sizeof want, " HTTP/%d.%d", hp->http_major, hp->http_minor);
	if (hp->http_major != 1 || !p->line_done || len < wlen ||
	    memcmp(p->line.data + len - wlen, want, wlen) != 0)
		return http1_fail(p, 400, "malformed HTTP version");
	return 0;
}

static int
on_headers_complete(http_parser *hp)
{
	struct http1_parser *p = hp->data;
	bool has_body;
	int rc;

	if (p->in_value && http1_commit_field(p) != 0)
		return -1;
	if (http1_check_version(p, hp) != 0 || http1_head_fill_target(p) != 0 ||
	    http1_check_host(p, hp) != 0)
		return -1;
	p->head.method = http_method_str((enum http_method)hp->method);
	p->head.path_and_query = p->path;
	p->head.url_host = p->host;
	p->head.version_minor = hp->http_major == 1 ? hp->http_minor : 0;
	has_body = (hp->flags & F_CHUNKED) ||
	           (hp->content_length > 0 && hp->content_length != ULLONG_MAX);
	p->head_done = true;
	rc = p->cbs->on_head(p->arg, &p->head, has_body,
	                     (hp->flags & F_CHUNKED) || !has_body ? -1 : (long long)hp->content_length,
	                     http_should_keep_alive(hp));
	if (rc < 0) {
		http1_fail(p, 500, "cannot forward request");
		return -1;
	}
	return 0;
}

static int
on_body(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = hp->data;

	if (p->cbs->on_body(p->arg, at, len) < 0)
		return http1_fail(p, 500, "cannot forward request body");
	return 0;
}

/* Ends the message and pauses, so that the caller answers it before
 * the next pipelined request is parsed. */
static int
on_message_complete(http_parser *hp)
{
	struct http1_parser *p = hp->data;

	p->in_message = false;
	p->head_done = false;
	p->line.len = 0;
	p->line_done = false;
	if (p->cbs->on_end(p->arg) < 0)
		return http1_fail(p, 500, "cannot forward request");
	http_parser_pause(hp, 1);
	return 0;
}

/* Creates a parser that calls cbs with arg. NULL when out of memory. */
struct http1_parser *
http1_parser_new(const struct http1_callbacks *cbs, void *arg,
                 const struct http1_limits *limits)
{
	struct http1_parser *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	http_parser_init(&p->hp, HTTP_REQUEST);
	p->hp.data = p;
	http_parser_settings_init(&p->settings);
	p->settings.on_message_begin = on_message_begin;
	p->settings.on_url = on_url;
	p->settings.on_header_field = on_header_field;
	p->settings.on_header_value = on_header_value;
	p->settings.on_headers_complete = on_headers_complete;
	p->settings.on_body = on_body;
	p->settings.on_message_complete = on_message_complete;
	p->cbs = cbs;
	p->arg = arg;
	p->limits = *limits;
	return p;
}

void
http1_parser_free(struct http1_parser *p)
{
	if (p == NULL)
		return;
	http1_head_reset(p);
	free(p->line.data);
	free(p->url.data);
	free(p->field.data);
	free(p->value.data);
	free(p);
}

/* Keeps the request line's raw bytes (up to its LF) as they arrive, for
 * http1_check_version(). A line longer than the URI limit allows is left
 * incomplete: on_url reports it as 414 before the check runs. */
static void
http1_keep_line(struct http1_parser *p, const char *data, size_t len)
{
	const char *lf;
	size_t take;

	if (p->line_done || p->head_done)
		return;
	/* Skip the empty lines RFC 9112 section 2.2 allows before a request. */
	if (p->line.len == 0) {
		while (len > 0 && (*data == '\r' || *data == '\n')) {
			data++;
			len--;
		}
	}
	if (len == 0)
		return;
	lf = memchr(data, '\n', len);
	take = lf ? (size_t)(lf - data) + 1 : len;
	if (piece_append(&p->line, data, take, p->limits.max_uri + 64) < 0)
		return;
	p->line_done = lf != NULL;
}

/* Remembers whether the bytes used end in a line break followed only by
 * blanks, for http1_is_fold() on the next buffer. A buffer of blanks
 * alone leaves the previous answer in place. */
static void
http1_note_feed_end(struct http1_parser *p, const char *data, size_t used)
{
	size_t i = used;

	while (i > 0 && (data[i - 1] == ' ' || data[i - 1] == '\t'))
		i--;
	if (i > 0)
		p->prev_feed_ended_lf = data[i - 1] == '\n';
}

/* Parses up to len bytes. Stops early after a complete message.
 * Returns the bytes used, or PTTH_EPROTO when the input is not valid
 * HTTP/1.1 or a limit was hit (see http1_parser_error_status). */
ssize_t
http1_parser_feed(struct http1_parser *p, const char *data, size_t len)
{
	size_t used;
	enum http_errno err;

	p->feed_start = data;
	http1_keep_line(p, data, len);
	used = http_parser_execute(&p->hp, &p->settings, data, len);
	err = HTTP_PARSER_ERRNO(&p->hp);
	http1_note_feed_end(p, data, used);

	if (err == HPE_PAUSED) {
		http_parser_pause(&p->hp, 0);
		return (ssize_t)used;
	}
	if (err != HPE_OK) {
		http1_fail(p, 400, http_errno_description(err));
		return PTTH_EPROTO;
	}
	return (ssize_t)used;
}

/* Tells the parser the connection ended. Returns 0, or PTTH_EPROTO when
 * that cut a message short. */
int
http1_parser_feed_eof(struct http1_parser *p)
{
	if (!p->in_message)
		return 0;
	http_parser_execute(&p->hp, &p->settings, NULL, 0);
	return p->in_message ? PTTH_EPROTO : 0;
}

/* True between the first byte of a request and the end of its head. */
bool
http1_parser_in_head(const struct http1_parser *p)
{
	return p->in_message && !p->head_done;
}

/* True between the first byte of a request and its end. */
bool
http1_parser_in_message(const struct http1_parser *p)
{
	return p->in_message;
}

int
http1_parser_error_status(const struct http1_parser *p)
{
	return p->error_status ? p->error_status : 400;
}

const char *
http1_parser_error_text(const struct http1_parser *p)
{
	return p->error_text ? p->error_text : "bad request";
}
