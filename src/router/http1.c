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
 *   - http1_parser_feed() parses what fits and calls on_begin() at a
 *     request's first byte, on_head() once the whole head has been
 *     judged (http1_head_finish(): nothing of a refused request is handed
 *     on), on_body() for each piece of (de-chunked) body and on_end() at
 *     the end of the message; it then stops and returns the bytes used,
 *     so a pipelined next request waits until the caller has answered
 *     this one;
 *   - a chunked body's framing is read strictly by chunk_scan() before
 *     http-parser sees it, since http-parser takes any byte for the CR
 *     and LF that end its lines;
 *   - errors come back as a negative return; http1_parser_error_status()
 *     says which status to answer (400, 414, 431, 501).
 * Tutorial: "A request arrives"; the checks in "Bad requests are
 *          answered at the door".
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

_Static_assert(PTTH_MAX_HEADER_BYTES_CAP == HTTP_MAX_HEADER_SIZE,
               "PTTH_MAX_HEADER_BYTES_CAP must be http-parser's HTTP_MAX_HEADER_SIZE");

/* The longest chunk-size line (size, extensions, CR LF) we read. */
#define CHUNK_LINE_MAX 4096

/* Where chunk_scan() is in a chunked body (RFC 9112 section 7.1). */
enum chunk_state {
	CS_HEAD_LF,      /* the head's last LF, which http-parser has not taken yet */
	CS_SIZE_FIRST,   /* the first hex digit of a chunk size */
	CS_SIZE,         /* more hex digits, or what ends them */
	CS_SIZE_BWS,     /* blanks after the size, before ';' */
	CS_EXT,          /* chunk extensions, up to CR */
	CS_SIZE_LF,      /* the LF after the size line's CR */
	CS_DATA,         /* chunk data */
	CS_DATA_CR,      /* the CR after chunk data */
	CS_DATA_LF,      /* the LF after it */
	CS_TRAILER_START, /* a trailer line, or the final CR */
	CS_TRAILER,      /* inside a trailer line */
	CS_TRAILER_LF,   /* the LF ending a trailer line */
	CS_FINAL_LF,     /* the LF ending the body */
	CS_DONE,
};

/* A strict reading of chunked framing, running just ahead of
 * http-parser, which takes any byte where the LF of a chunk-size line,
 * the CR LF after chunk data or the final LF should be. */
struct chunk_scan {
	enum chunk_state state;
	unsigned long long left;   /* chunk size, then data bytes still to come */
	size_t line_len;           /* bytes of the current size line */
	const char *why;           /* what was wrong, once chunk_scan() failed */
};

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
	bool head_pending;             /* paused at the end of the head, to check it */
	bool head_done;                /* on_head was called for this message */
	bool chunked_body;             /* in a chunked body: chunks gates the parser */
	struct chunk_scan chunks;

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

/* Resets cs for a new chunked body, starting at the head's last LF. */
static void
chunk_scan_init(struct chunk_scan *cs)
{
	memset(cs, 0, sizeof *cs);
	cs->state = CS_HEAD_LF;
}

static bool
chunk_scan_fail(struct chunk_scan *cs, const char *why)
{
	cs->why = why;
	return false;
}

/* The value of a hex digit, or -1. */
static int
hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
		return (ch | 0x20) - 'a' + 10;
	return -1;
}

/* Moves cs over one byte of a chunk-size line: size, then optional
 * blanks and extensions (RFC 9112 section 7.1.1), then CR. Returns
 * false, with cs->why set, when the byte does not fit. */
static bool
chunk_scan_size_byte(struct chunk_scan *cs, unsigned char ch)
{
	int digit = hex_value(ch);

	if (++cs->line_len > CHUNK_LINE_MAX)
		return chunk_scan_fail(cs, "chunk size line too long");
	if (ch == '\r' && cs->state != CS_SIZE_FIRST) {
		cs->state = CS_SIZE_LF;
		return true;
	}
	if (cs->state == CS_SIZE_FIRST || cs->state == CS_SIZE) {
		if (digit < 0 && cs->state == CS_SIZE_FIRST)
			return chunk_scan_fail(cs, "invalid chunk size");
		if (digit >= 0) {
			if (cs->left > (ULLONG_MAX >> 5)) /* keeps sizes below 2^63 */
				return chunk_scan_fail(cs, "chunk size too large");
			cs->left = cs->left * 16 + (unsigned)digit;
			cs->state = CS_SIZE;
			return true;
		}
	}
	if (cs->state != CS_EXT && (ch == ' ' || ch == '\t')) {
		cs->state = CS_SIZE_BWS;
		return true;
	}
	if (cs->state != CS_EXT && ch == ';') {
		cs->state = CS_EXT;
		return true;
	}
	/* An extension is tokens, '=', ';', blanks and quoted strings: any
	 * visible byte or blank, but never a bare LF or another control. */
	if (cs->state == CS_EXT && (ch == '\t' || (ch >= 0x20 && ch != 0x7f)))
		return true;
	return chunk_scan_fail(cs, cs->state == CS_SIZE ? "invalid chunk size"
	                                                : "invalid chunk extension");
}

/* Moves cs over one framing byte (anything but chunk data). Every line
 * of a chunked body ends in CR LF, trailer lines included. Returns false,
 * with cs->why set, when the byte breaks the framing. */
static bool
chunk_scan_byte(struct chunk_scan *cs, unsigned char ch)
{
	switch (cs->state) {
	case CS_SIZE_FIRST:
	case CS_SIZE:
	case CS_SIZE_BWS:
	case CS_EXT:
		return chunk_scan_size_byte(cs, ch);
	case CS_SIZE_LF:
		if (ch != '\n')
			return chunk_scan_fail(cs, "chunk size line not ended by CR LF");
		cs->state = cs->left > 0 ? CS_DATA : CS_TRAILER_START;
		return true;
	case CS_HEAD_LF:
	case CS_DATA_CR:
	case CS_DATA_LF:
		if (ch != (cs->state == CS_DATA_CR ? '\r' : '\n'))
			return chunk_scan_fail(cs, "chunk data not followed by CR LF");
		if (cs->state == CS_DATA_CR) {
			cs->state = CS_DATA_LF;
		} else {
			chunk_scan_init(cs);
			cs->state = CS_SIZE_FIRST;
		}
		return true;
	case CS_TRAILER_START:
	case CS_TRAILER:
		if (ch == '\n')
			return chunk_scan_fail(cs, "trailer line not ended by CR LF");
		if (ch == '\r')
			cs->state = cs->state == CS_TRAILER_START ? CS_FINAL_LF : CS_TRAILER_LF;
		else
			cs->state = CS_TRAILER;
		return true;
	case CS_TRAILER_LF:
	case CS_FINAL_LF:
		if (ch != '\n')
			return chunk_scan_fail(cs, "trailer line not ended by CR LF");
		cs->state = cs->state == CS_FINAL_LF ? CS_DONE : CS_TRAILER_START;
		return true;
	case CS_DATA:
	case CS_DONE:
		break;
	}
	return chunk_scan_fail(cs, "bytes after the end of the body");
}

/* Reads the chunked framing in buf[0..len), skipping chunk data in one
 * step. Returns how many of the bytes belong to the body (len, or fewer
 * when the body ends inside buf), or -1 at the first byte that breaks
 * the framing (cs->why says how). */
static ssize_t
chunk_scan(struct chunk_scan *cs, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && cs->state != CS_DONE) {
		if (cs->state == CS_DATA) {
			size_t n = len - i < cs->left ? len - i : (size_t)cs->left;
			i += n;
			cs->left -= n;
			if (cs->left == 0)
				cs->state = CS_DATA_CR;
			continue;
		}
		if (!chunk_scan_byte(cs, (unsigned char)buf[i]))
			return -1;
		i++;
	}
	return (ssize_t)i;
}

/* Forgets the last request head. The field list keeps its storage for
 * the next request (header_list_clear). */
static void
http1_head_reset(struct http1_parser *p)
{
	struct header_list fields = p->head.fields;

	header_list_clear(&fields);
	free(p->path);
	free(p->host);
	p->path = p->host = NULL;
	p->url.len = p->field.len = p->value.len = 0;
	p->in_value = false;
	memset(&p->head, 0, sizeof p->head);
	p->head.fields = fields;
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

/* RFC 9112 section 3.2 and RFC 3986: a request target is visible
 * US-ASCII, and a fragment ("#...") is never part of it. http-parser
 * lets TAB, form feed, '#' and bytes above 0x7E through. Characters
 * RFC 3986 reserves but browsers send unescaped ('|', '{', '[' ...)
 * are kept: HTTP/2 allows them in :path. NULL, or what is wrong. */
static const char *
http1_target_problem(const char *target, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)target[i];
		if (ch == '#')
			return "fragment in the request target";
		if (ch <= 0x20 || ch >= 0x7f)
			return "invalid character in the request target";
	}
	return NULL;
}

/* Fills head.path_and_query (origin form) and head.url_host (absolute
 * form) from the request target. Returns 0 or non-zero on a bad target. */
static int
http1_head_fill_target(struct http1_parser *p, const http_parser *hp)
{
	struct http_parser_url u;
	const char *problem = http1_target_problem(p->url.data, p->url.len);

	if (p->url.len == 0)
		return http1_fail(p, 400, "missing request target");
	if (problem != NULL)
		return http1_fail(p, 400, problem);
	/* The asterisk form is for OPTIONS alone (RFC 9112 section 3.2.4). */
	if (strcmp(p->url.data, "*") == 0 && hp->method != HTTP_OPTIONS)
		return http1_fail(p, 400, "only OPTIONS may have the target *");
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
	/* RFC 9110 section 4.2.4: userinfo ("user@host") is an error. */
	if (u.field_set & (1 << UF_USERINFO))
		return http1_fail(p, 400, "userinfo in the request target");
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

/* RFC 9110 section 7.2 and RFC 3986 section 3.2.2: Host is uri-host
 * [":" port], where uri-host is an IP literal in brackets or a reg-name
 * (letters, digits, "-._~", sub-delims, %-escapes). An empty value is
 * valid: the target has no authority. Everything else, spaces, '/',
 * '@' and the like, could give a backend a wrong idea of the host. */
static bool
http1_host_is_valid(const char *host)
{
	static const char reg_name[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                               "0123456789-._~!$&'()*+,;=%";
	const char *port;

	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (end == NULL || end == host + 1)
			return false;
		for (const char *c = host + 1; c < end; c++)
			if (hex_value((unsigned char)*c) < 0 && *c != ':' && *c != '.')
				return false;
		port = end + 1;
	} else {
		port = host + strspn(host, reg_name);
		if (port == host && *port != '\0')
			return false; /* a port without a host */
	}
	if (*port == '\0')
		return true;
	if (*port != ':')
		return false;
	port++;
	return strlen(port) <= 5 && strspn(port, "0123456789") == strlen(port);
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
	if (host != NULL && !http1_host_is_valid(host))
		return http1_fail(p, 400, "invalid Host field");
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
	char want[16] = " HTTP/1.";
	size_t wlen = 8;

	if (hp->http_major > 1)
		return http1_fail(p, 505, "only HTTP/1.x is spoken here");
	while (len > 0 && (p->line.data[len - 1] == '\r' || p->line.data[len - 1] == '\n'))
		len--;
	/* " HTTP/1.<minor>", written without a format string (every request
	 * comes here); http-parser keeps the minor version below 1000. */
	if (hp->http_minor >= 100)
		want[wlen++] = (char)('0' + hp->http_minor / 100 % 10);
	if (hp->http_minor >= 10)
		want[wlen++] = (char)('0' + hp->http_minor / 10 % 10);
	want[wlen++] = (char)('0' + hp->http_minor % 10);
	if (hp->http_major != 1 || !p->line_done || len < wlen ||
	    memcmp(p->line.data + len - wlen, want, wlen) != 0)
		return http1_fail(p, 400, "malformed HTTP version");
	return 0;
}

/* CONNECT asks for a tunnel to another host, which the router does not
 * make. http-parser would take whatever follows its head as the
 * tunnel's bytes, so its body framing is unknown: refuse and close. */
static int
http1_check_method(struct http1_parser *p, const http_parser *hp)
{
	if (hp->method == HTTP_CONNECT)
		return http1_fail(p, 400, "CONNECT is not supported");
	return 0;
}

/* What the Transfer-Encoding fields of a request list. */
struct codings {
	int fields;          /* Transfer-Encoding fields */
	int chunked;         /* "chunked" elements */
	int other;           /* any other coding */
	bool chunked_last;   /* the last element is "chunked" */
};

/* Adds one Transfer-Encoding value (a comma-separated list, empty
 * elements ignored, RFC 9110 section 5.6.1) to c. */
static void
codings_add(struct codings *c, const char *list)
{
	c->fields++;
	while (*list != '\0') {
		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		const char *end = list + strcspn(list, ",");
		const char *last = end;
		while (last > list && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		if (last > list) {
			bool chunked = last - list == 7 && strncasecmp(list, "chunked", 7) == 0;
			c->chunked += chunked;
			c->other += !chunked;
			c->chunked_last = chunked;
		}
		list = end;
	}
}

/* RFC 9112 sections 6 and 7: a request body is framed by Content-Length
 * or by chunked, applied once and last. Refuses, before the request is
 * forwarded, a Transfer-Encoding that http-parser would refuse only
 * after its head was handed on (400), a coding the router does not
 * implement such as "gzip, chunked" (501, section 6.1), and a
 * Content-Length of 2^63 or more, which no long long holds (400, as
 * http-parser answers from 2^64 - 1 on). A Transfer-Encoding in an
 * HTTP/1.0 request closes the connection after the answer (section
 * 6.1). Returns 0, or non-zero with the answer recorded. */
static int
http1_check_framing(struct http1_parser *p, const http_parser *hp, bool *keep_alive)
{
	struct codings c = { 0 };

	for (size_t i = 0; i < p->head.fields.count; i++)
		if (strcasecmp(p->head.fields.items[i].name, "transfer-encoding") == 0)
			codings_add(&c, p->head.fields.items[i].value);
	if (c.fields == 0) {
		if (hp->flags & F_CHUNKED)
			return http1_fail(p, 400, "malformed Transfer-Encoding");
		if (hp->content_length != ULLONG_MAX && hp->content_length > (uint64_t)LLONG_MAX)
			return http1_fail(p, 400, "Content-Length out of range");
		return 0;
	}
	if (!c.chunked_last)
		return http1_fail(p, 400, "request has invalid transfer-encoding");
	if (c.chunked > 1)
		return http1_fail(p, 400, "chunked applied more than once");
	if (c.other > 0)
		return http1_fail(p, 501, "transfer coding not implemented");
	if (!(hp->flags & F_CHUNKED))
		return http1_fail(p, 400, "malformed Transfer-Encoding");
	if (hp->http_minor == 0)
		*keep_alive = false;
	return 0;
}

/* http-parser callback: the head is complete. Nothing is judged or
 * handed on from inside the callback: we pause, so that
 * http1_head_finish() runs once http_parser_execute() has returned,
 * with the byte that ends the head in view. */
static int
on_headers_complete(http_parser *hp)
{
	struct http1_parser *p = hp->data;

	if (p->in_value && http1_commit_field(p) != 0)
		return -1;
	p->head_pending = true;
	http_parser_pause(hp, 1);
	return 0;
}

/* Judges the head http-parser has just read, before any of the request
 * leaves: the byte that ends it (end, which http-parser takes for the
 * head's last LF whatever it is), version, method, target, Host and
 * body framing; then hands it to on_head. Returns 0, or non-zero with
 * the answer recorded (see http1_parser_error_status). */
static int
http1_head_finish(struct http1_parser *p, char end)
{
	const http_parser *hp = &p->hp;
	bool chunked = hp->flags & F_CHUNKED;
	bool has_body = chunked || (hp->content_length > 0 && hp->content_length != ULLONG_MAX);
	bool keep_alive = http_should_keep_alive(hp);

	p->head_pending = false;
	if (end != '\n')
		return http1_fail(p, 400, "head not ended by CR LF");
	if (http1_check_version(p, hp) != 0 || http1_check_method(p, hp) != 0 ||
	    http1_head_fill_target(p, hp) != 0 || http1_check_host(p, hp) != 0 ||
	    http1_check_framing(p, hp, &keep_alive) != 0)
		return 1;
	p->head.method = http_method_str((enum http_method)hp->method);
	p->head.path_and_query = p->path;
	p->head.url_host = p->host;
	p->head.version_minor = hp->http_major == 1 ? hp->http_minor : 0;
	p->head_done = true;
	if (p->cbs->on_head(p->arg, &p->head, has_body,
	                    chunked || !has_body ? -1 : (long long)hp->content_length,
	                    keep_alive) < 0)
		return http1_fail(p, 500, "cannot forward request");
	p->chunked_body = chunked;
	if (chunked)
		chunk_scan_init(&p->chunks);
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
	header_list_free(&p->head.fields);
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

/* Runs http-parser over data[0..len), keeping what the checks around
 * it need (the request line, where the bytes end). A pause (end of a
 * head, end of a message) is undone at once: the caller looks at
 * p->head_pending and p->in_message instead. Returns the bytes used;
 * *err is http-parser's verdict. */
static size_t
http1_execute(struct http1_parser *p, const char *data, size_t len, enum http_errno *err)
{
	size_t used;

	p->feed_start = data;
	http1_keep_line(p, data, len);
	used = http_parser_execute(&p->hp, &p->settings, data, len);
	*err = HTTP_PARSER_ERRNO(&p->hp);
	http1_note_feed_end(p, data, used);
	if (*err == HPE_PAUSED) {
		http_parser_pause(&p->hp, 0);
		*err = HPE_OK;
	}
	return used;
}

/* Records http-parser's own error as the answer: 431 for a head (or
 * trailer section) over its HTTP_MAX_HEADER_SIZE, else 400 with its
 * description. */
static void
http1_fail_parser(struct http1_parser *p, enum http_errno err)
{
	if (err == HPE_HEADER_OVERFLOW)
		http1_fail(p, 431, "header section too large");
	else
		http1_fail(p, 400, http_errno_description(err));
}

/* Parses up to len bytes. Stops early after a complete message.
 * A chunked body's framing is read by chunk_scan() first, and only the
 * bytes it accepts, up to the end of the body, reach http-parser; the
 * two must then agree on where the message ends.
 * Returns the bytes used, or PTTH_EPROTO when the input is not valid
 * HTTP/1.1 or a limit was hit (see http1_parser_error_status). */
ssize_t
http1_parser_feed(struct http1_parser *p, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t n = len - off, used;
		enum http_errno err;

		if (p->chunked_body) {
			ssize_t body = chunk_scan(&p->chunks, data + off, n);
			if (body < 0) {
				http1_fail(p, 400, p->chunks.why);
				return PTTH_EPROTO;
			}
			n = (size_t)body;
		}
		used = http1_execute(p, data + off, n, &err);
		off += used;
		if (err != HPE_OK) {
			http1_fail_parser(p, err);
			return PTTH_EPROTO;
		}
		if (p->head_pending) {
			/* Paused before the head's last byte, which is data[off]
			 * (http-parser pauses on a byte it was given). */
			if (http1_head_finish(p, off < len ? data[off] : '\0') != 0)
				return PTTH_EPROTO;
			continue;
		}
		bool framing_done = p->chunked_body && p->chunks.state == CS_DONE;
		if (p->chunked_body && framing_done != (!p->in_message && used == n)) {
			http1_fail(p, 400, "chunked body framing unclear");
			return PTTH_EPROTO;
		}
		if (!p->in_message) {
			p->chunked_body = false;
			return (ssize_t)off;
		}
	}
	return (ssize_t)off;
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
