/*
 * forward.c -- bin/agent's HTTP/1.1 side: each request that arrives on
 * the tunnel is sent to the local server with libcurl's easy interface,
 * and the answer streams back while it arrives.
 *
 * Owns:    the pool of idle easy handles (each keeps its own keep-alive
 *          connection to the local server), and one struct transfer per
 *          request, from forward_serve() until it returns.
 * Threads: forward_serve() runs on the library's "ptth-handler" threads,
 *          one request each. libcurl calls every callback below from
 *          inside curl_easy_perform(), on that same thread, so a transfer
 *          is never shared; only the pool is.
 * Locks:   fwd->mu guards the idle list. It is taken alone and never held
 *          across a call into libcurl.
 * Interface:
 *   - forward_new() checks --to; forward_serve() is the backend's
 *     handler; forward_free() once ptth_backend_stop() has returned;
 *   - request: hop-by-hop fields dropped, Host from :authority, Cookie
 *     fields joined, the rest (the router's forwarding fields too) passed
 *     on; the body is pulled from ptth_request_read() by read_callback(),
 *     sent with its Content-Length, else chunked;
 *   - response: header_callback() skips 1xx heads, sends the final head
 *     as soon as it is complete and passes trailers on; write_callback()
 *     streams the body with ptth_response_write(); gzip and friends pass
 *     through untouched;
 *   - failures: 502 before the head (refused, unreachable, closed), 504
 *     when the local server is silent for timeout_ms, a reset stream (a
 *     cut body) after the head. Each is logged once;
 *   - a WebSocket (extended CONNECT) goes to upgrade_serve() instead.
 * Tutorial: "Putting an existing app behind the router".
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#include "forward.h"

#define FORWARD_MAX_HEAD (64 * 1024)  /* response head bytes, as the router takes */
#define FORWARD_PEEK_SIZE 16384       /* request body read before the request leaves */
#define FORWARD_MAX_IDLE 1024

struct forward {
	/* Set by forward_new(), read-only afterwards: */
	struct forward_options opts;   /* defaults applied */
	char *to;                      /* copy of opts.to, for messages */
	char *base_url;                /* "http://HOST:PORT/" */

	pthread_mutex_t mu;            /* taken alone, never nested */
	/* guarded by mu: */
	CURL **idle;                   /* handles whose connection may be reused */
	int idle_count;
};

enum head_phase {
	PHASE_STATUS,   /* waiting for a status line */
	PHASE_FIELDS,   /* inside a head, collecting its fields */
	PHASE_BODY,     /* the final head went out; trailers may follow the body */
};

/* One request on its way to the local server and back, allocated by
 * forward_serve(); libcurl calls back on the handler's thread only. */
struct transfer {
	struct forward *fwd;
	struct ptth_request *req;
	struct ptth_response *res;
	/* The request body. Its first piece is read before the request
	 * leaves, to learn whether there is a body at all, and kept so that
	 * libcurl may rewind to it (seek_callback()). */
	char peek[FORWARD_PEEK_SIZE];
	size_t peek_len, peek_pos;
	bool read_past_peek;           /* bytes after peek went to libcurl */
	bool body_end;                 /* ptth_request_read() returned 0 */
	bool body_failed;              /* ... or an error: the user's side broke */
	/* The response head being read: */
	enum head_phase phase;
	int status;
	char *fields;                  /* "name\0value\0" pairs of this head */
	size_t fields_len, fields_cap;
	bool bad_head;                 /* malformed or too large: 502 */
	bool head_sent;
	bool router_gone;              /* ptth_response_write() failed */
	/* Silence: */
	bool connected;                /* prereq_callback() ran */
	long long last_ms;             /* the last sign of life from the local server */
	bool stalled;                  /* xferinfo_callback() gave up */
	unsigned long long bytes_back;
	char error[CURL_ERROR_SIZE];
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
forward_log(const char *fmt, ...)
{
	char line[1024], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s %s\n", stamp, line);
}

/* ---------------------------------------------------------------------
 * The pool of easy handles. A handle keeps its connection open after a
 * transfer (HTTP/1.1 keep-alive); the next request that takes the handle
 * reuses it, and libcurl checks first that the server has not closed it.
 */

static CURL *
pool_take(struct forward *fwd)
{
	CURL *c = NULL;

	pthread_mutex_lock(&fwd->mu);
	if (fwd->idle_count > 0)
		c = fwd->idle[--fwd->idle_count];
	pthread_mutex_unlock(&fwd->mu);
	if (c == NULL)
		return curl_easy_init();
	curl_easy_reset(c); /* options go, the open connection stays */
	return c;
}

/* Puts c back, or closes it when max_idle handles already wait. */
static void
pool_give(struct forward *fwd, CURL *c)
{
	pthread_mutex_lock(&fwd->mu);
	if (fwd->idle_count < fwd->opts.max_idle) {
		fwd->idle[fwd->idle_count++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&fwd->mu);
	if (c != NULL)
		curl_easy_cleanup(c);
}

/* ---------------------------------------------------------------------
 * Fields.
 */

/* True when s is a non-empty token (RFC 9110 section 5.6.2), the only
 * form a field name or a method may take. */
static bool
is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	for (const char *p = s; *p != '\0'; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && strchr(extra, *p) == NULL)
			return false;
	return *s != '\0';
}

/* True when s holds a control character other than HT: such a value
 * would let a field end early and smuggle another one in. */
static bool
has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return true;
	return false;
}

/* True when the comma-separated list contains token, in any case. */
static bool
list_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);

	while (list != NULL && *list != '\0') {
		list += strspn(list, " \t,");
		size_t len = strcspn(list, ",");
		size_t end = len;
		while (end > 0 && (list[end - 1] == ' ' || list[end - 1] == '\t'))
			end--;
		if (end == tlen && strncasecmp(list, token, tlen) == 0)
			return true;
		list += len;
	}
	return false;
}

/* True for the fields that describe one connection and must not be
 * forwarded (RFC 9110 section 7.6.1), the same set the router drops:
 * the fixed ones, and any named by the Connection field. */
static bool
is_hop_by_hop(const char *name, const char *connection)
{
	static const char *const fixed[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding",
		"upgrade", "te", "host", NULL,
	};

	for (int i = 0; fixed[i] != NULL; i++)
		if (strcasecmp(name, fixed[i]) == 0)
			return true;
	return connection != NULL && list_has_token(connection, name);
}

bool
forward_field_ok(const char *name, const char *value)
{
	return is_token(name) && !has_control(value);
}

bool
forward_is_hop_by_hop(const char *name, const char *connection)
{
	return is_hop_by_hop(name, connection);
}

/* Appends "Name: value" to *list, the name in its usual spelling
 * ("x-forwarded-for" becomes "X-Forwarded-For"); an empty value is
 * written "Name;", libcurl's way of sending a field with no value.
 * Returns 0 or -ENOMEM. */
static int
fields_add(struct curl_slist **list, const char *name, const char *value)
{
	struct curl_slist *longer;
	char *line;
	bool upper = true;

	if (asprintf(&line, "%s%s%s", name, value[0] ? ": " : ";", value) < 0)
		return -ENOMEM;
	for (char *p = line; *p != ':' && *p != ';'; p++) {
		if (upper && *p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
		upper = (*p == '-');
	}
	longer = curl_slist_append(*list, line);
	free(line);
	if (longer == NULL)
		return -ENOMEM;
	*list = longer;
	return 0;
}

/* Appends "Name:", which tells libcurl not to send a field it would
 * otherwise add: its own Accept, and Expect: 100-continue before large
 * bodies. The router answered the user's Expect already; waiting for a
 * 100 here would only delay. Returns 0 or -ENOMEM. */
static int
fields_keep_out(struct curl_slist **list, const char *name)
{
	char line[64];
	struct curl_slist *longer;

	snprintf(line, sizeof line, "%s:", name);
	longer = curl_slist_append(*list, line);
	if (longer == NULL)
		return -ENOMEM;
	*list = longer;
	return 0;
}

/* Appends value to the "; "-joined cookie string *cookies (RFC 9113
 * section 8.2.3: HTTP/2 may split Cookie, HTTP/1.1 wants one field).
 * Returns 0 or -ENOMEM. */
static int
cookie_join(char **cookies, const char *value)
{
	char *joined;

	if (*cookies == NULL)
		joined = strdup(value);
	else if (asprintf(&joined, "%s; %s", *cookies, value) < 0)
		joined = NULL;
	if (joined == NULL)
		return -ENOMEM;
	free(*cookies);
	*cookies = joined;
	return 0;
}

/* Builds the request's fields for libcurl in *list: every end-to-end
 * field as the router sent it, Host from :authority (else --to), and
 * no Accept or Expect of libcurl's own. Returns 0, -EINVAL for a field that is not well formed, or
 * -ENOMEM. */
static int
request_fields(struct transfer *tr, struct curl_slist **list)
{
	const char *connection = ptth_request_header(tr->req, "connection");
	const char *authority = ptth_request_authority(tr->req);
	const char *name, *value;
	char *cookies = NULL;
	int rc = 0;

	if (authority[0] == '\0')
		authority = tr->fwd->to;
	if (has_control(authority) || strchr(authority, ' ') != NULL)
		return -EINVAL;
	rc = fields_add(list, "host", authority);
	for (size_t i = 0; rc == 0 && ptth_request_header_at(tr->req, i, &name, &value) == 0; i++) {
		if (!is_token(name) || has_control(value))
			rc = -EINVAL;
		else if (is_hop_by_hop(name, connection) || strcasecmp(name, "expect") == 0 ||
		         strcasecmp(name, "content-length") == 0)
			continue; /* libcurl writes the framing itself */
		else if (strcasecmp(name, "cookie") == 0)
			rc = cookie_join(&cookies, value);
		else
			rc = fields_add(list, name, value);
	}
	if (rc == 0 && cookies != NULL)
		rc = fields_add(list, "cookie", cookies);
	if (rc == 0 && ptth_request_header(tr->req, "accept") == NULL)
		rc = fields_keep_out(list, "Accept");
	if (rc == 0)
		rc = fields_keep_out(list, "Expect");
	free(cookies);
	return rc;
}

/* ---------------------------------------------------------------------
 * The response head, line by line from header_callback().
 */

/* Makes room for need more bytes of kept fields. Returns false past
 * FORWARD_MAX_HEAD or when memory runs out. */
static bool
head_reserve(struct transfer *tr, size_t need)
{
	if (tr->fields_len + need > FORWARD_MAX_HEAD)
		return false;
	if (tr->fields_len + need > tr->fields_cap) {
		size_t cap = tr->fields_cap ? tr->fields_cap * 2 : 4096;
		char *bigger = realloc(tr->fields, cap);
		if (bigger == NULL)
			return false;
		tr->fields = bigger;
		tr->fields_cap = cap;
	}
	return true;
}

/* Appends s (len bytes, blanks around it trimmed) and a NUL. The caller
 * reserved the room. */
static void
head_append_trimmed(struct transfer *tr, const char *s, size_t len)
{
	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	memcpy(tr->fields + tr->fields_len, s, len);
	tr->fields_len += len;
	tr->fields[tr->fields_len++] = '\0';
}

/* Keeps one "name: value" line of the head being read, or appends an
 * obsolete folded line (leading blank) to the value before it with one
 * space, as RFC 9112 section 5.2 allows. Returns false when the line is
 * malformed ("Name : value" included, RFC 9112 section 5.1) or the head
 * grows over FORWARD_MAX_HEAD. */
static bool
head_keep(struct transfer *tr, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	size_t name_len = colon ? (size_t)(colon - line) : 0;

	if (!head_reserve(tr, len + 2))
		return false;
	if (line[0] == ' ' || line[0] == '\t') {
		if (tr->fields_len == 0)
			return false;
		tr->fields[tr->fields_len - 1] = ' '; /* the value's NUL becomes a space */
		head_append_trimmed(tr, line, len);
		return true;
	}
	if (colon == NULL || name_len == 0)
		return false;
	memcpy(tr->fields + tr->fields_len, line, name_len);
	tr->fields[tr->fields_len + name_len] = '\0';
	if (!is_token(tr->fields + tr->fields_len))
		return false;
	tr->fields_len += name_len + 1;
	head_append_trimmed(tr, colon + 1, len - name_len - 1);
	return true;
}

/* Walks the kept fields: *pos starts at 0. Returns false after the last. */
static bool
head_next(const struct transfer *tr, size_t *pos, const char **name, const char **value)
{
	if (*pos >= tr->fields_len)
		return false;
	*name = tr->fields + *pos;
	*value = *name + strlen(*name) + 1;
	*pos = (size_t)(*value - tr->fields) + strlen(*value) + 1;
	return true;
}

/* The value of every kept field called name, joined with ", ", or NULL.
 * The caller frees it. */
static char *
head_join(const struct transfer *tr, const char *name)
{
	const char *n, *v;
	char *joined = NULL, *longer;
	size_t pos = 0;

	while (head_next(tr, &pos, &n, &v)) {
		if (strcasecmp(n, name) != 0)
			continue;
		if (joined == NULL)
			longer = strdup(v);
		else if (asprintf(&longer, "%s, %s", joined, v) < 0)
			longer = NULL;
		free(joined);
		joined = longer;
	}
	return joined;
}

/* True when the head has a field called name. */
static bool
head_has(const struct transfer *tr, const char *name)
{
	const char *n, *v;
	size_t pos = 0;

	while (head_next(tr, &pos, &n, &v))
		if (strcasecmp(n, name) == 0)
			return true;
	return false;
}

/* True for a response field that must not cross to HTTP/2: hop-by-hop
 * fields, and the framing that HTTP/2 replaces (a Content-Length beside
 * a Transfer-Encoding means nothing, RFC 9112 section 6.3; a 1xx or 204
 * has none, RFC 9110 section 8.6). */
static bool
head_drops(const struct transfer *tr, const char *name, const char *connection,
           bool chunked)
{
	if (is_hop_by_hop(name, connection))
		return true;
	return strcasecmp(name, "content-length") == 0 && (chunked || tr->status == 204);
}

/* Sends the final head: status, end-to-end fields, and no body byte yet,
 * so that a server streaming slowly is seen at once. Returns false when
 * the router's stream is gone. */
static bool
head_send(struct transfer *tr)
{
	char *connection = head_join(tr, "connection");
	bool chunked = head_has(tr, "transfer-encoding");
	const char *name, *value;
	size_t pos = 0;

	ptth_response_set_status(tr->res, tr->status);
	while (head_next(tr, &pos, &name, &value))
		if (!head_drops(tr, name, connection, chunked))
			ptth_response_add_header(tr->res, name, value);
	free(connection);
	tr->head_sent = true;
	tr->phase = PHASE_BODY;
	tr->fields_len = 0;
	if (ptth_response_write(tr->res, "", 0) < 0) {
		tr->router_gone = true;
		return false;
	}
	return true;
}

/* Reads the code of a status line "HTTP/1.1 200 OK" into tr->status.
 * Returns false when there is none. */
static bool
head_status(struct transfer *tr, const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);

	if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || sp == NULL ||
	    (size_t)(sp - line) + 4 > len)
		return false;
	tr->status = 0;
	for (int i = 1; i <= 3; i++) {
		if (sp[i] < '0' || sp[i] > '9')
			return false;
		tr->status = tr->status * 10 + (sp[i] - '0');
	}
	return tr->status >= 100;
}

/* Passes one trailer field on, unless it is one that may not be a
 * trailer (hop-by-hop, framing). Returns false when it is malformed. */
static bool
trailer_pass(struct transfer *tr, const char *line, size_t len)
{
	const char *name, *value;
	size_t pos = 0;

	tr->fields_len = 0;
	if (!head_keep(tr, line, len) || !head_next(tr, &pos, &name, &value))
		return false;
	if (!is_hop_by_hop(name, NULL) && strcasecmp(name, "content-length") != 0)
		ptth_response_add_trailer(tr->res, name, value);
	return true;
}

/* Implements CURLOPT_HEADERFUNCTION. libcurl hands over each line of
 * every head the local server sends: 1xx interim heads (skipped: the
 * router answered Expect itself), the final head (sent on at its blank
 * line), and after a chunked body its trailer fields. Returning anything
 * but len aborts the transfer. */
static size_t
header_callback(char *buf, size_t size, size_t nitems, void *arg)
{
	struct transfer *tr = arg;
	size_t len = size * nitems, n = len;
	bool ok = true;

	tr->last_ms = now_ms();
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	switch (tr->phase) {
	case PHASE_STATUS:
		if (n == 0)
			break;
		ok = head_status(tr, buf, n);
		tr->phase = PHASE_FIELDS;
		tr->fields_len = 0;
		break;
	case PHASE_FIELDS:
		if (n > 0)
			ok = head_keep(tr, buf, n);
		else if (tr->status < 200)
			tr->phase = PHASE_STATUS; /* an interim head ended */
		else
			return head_send(tr) ? len : 0;
		break;
	case PHASE_BODY:
		if (n > 0)
			ok = trailer_pass(tr, buf, n);
		break;
	}
	if (!ok)
		tr->bad_head = true;
	return ok ? len : 0;
}

/* Implements CURLOPT_WRITEFUNCTION: a piece of the response body, sent
 * on at once. ptth_response_write() blocks while the router's window is
 * closed, and so holds libcurl back: that is the backpressure. */
static size_t
write_callback(char *data, size_t size, size_t nitems, void *arg)
{
	struct transfer *tr = arg;
	size_t len = size * nitems;

	if (!tr->head_sent || ptth_response_write(tr->res, data, len) < 0) {
		tr->router_gone = tr->head_sent;
		return 0;
	}
	tr->bytes_back += len;
	tr->last_ms = now_ms(); /* a slow user is not a silent server */
	return len;
}

/* Implements CURLOPT_READFUNCTION: the request body, the peeked piece
 * first, then straight from the tunnel. ptth_request_read() blocks until
 * the user sends more. */
static size_t
read_callback(char *buf, size_t size, size_t nitems, void *arg)
{
	struct transfer *tr = arg;
	size_t len = size * nitems;
	ssize_t n;

	if (tr->peek_pos < tr->peek_len) {
		n = (ssize_t)(tr->peek_len - tr->peek_pos < len ? tr->peek_len - tr->peek_pos : len);
		memcpy(buf, tr->peek + tr->peek_pos, (size_t)n);
		tr->peek_pos += (size_t)n;
		return (size_t)n;
	}
	if (tr->body_end)
		return 0;
	n = ptth_request_read(tr->req, buf, len);
	tr->last_ms = now_ms(); /* a slow user is not a silent server */
	if (n < 0) {
		tr->body_failed = true;
		return CURL_READFUNC_ABORT;
	}
	tr->body_end = (n == 0);
	tr->read_past_peek |= (n > 0);
	return (size_t)n;
}

/* Implements CURLOPT_SEEKFUNCTION. libcurl rewinds the body when a
 * kept-alive connection turns out to be closed and it sends the request
 * again on a new one. Possible while only the peeked piece was sent. */
static int
seek_callback(void *arg, curl_off_t offset, int origin)
{
	struct transfer *tr = arg;

	if (origin != SEEK_SET || offset != 0 || tr->read_past_peek)
		return CURL_SEEKFUNC_CANTSEEK;
	tr->peek_pos = 0;
	return CURL_SEEKFUNC_OK;
}

/* Implements CURLOPT_PREREQFUNCTION, called once a connection is up and
 * before the request leaves: from here on, silence counts. */
static int
prereq_callback(void *arg, char *primary_ip, char *local_ip, int primary_port,
                int local_port)
{
	struct transfer *tr = arg;

	(void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
	tr->connected = true;
	tr->last_ms = now_ms();
	return CURL_PREREQFUNC_OK;
}

/* Implements CURLOPT_XFERINFOFUNCTION, which libcurl calls often while
 * bytes move and about once a second while none do. We use it to give
 * up on a local server silent for timeout_ms (connecting has its own
 * CURLOPT_CONNECTTIMEOUT_MS). */
static int
xferinfo_callback(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                  curl_off_t ulnow)
{
	struct transfer *tr = arg;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (!tr->connected || now_ms() - tr->last_ms < tr->fwd->opts.timeout_ms)
		return 0;
	tr->stalled = true;
	return 1;
}

/* ---------------------------------------------------------------------
 * One request.
 */

/* Answers the user with status and a one-line text, and logs the line. */
static void
transfer_answer(struct transfer *tr, int status, const char *text)
{
	const char *reason = status == 400 ? "Bad Request" :
	                     status == 501 ? "Not Implemented" :
	                     status == 504 ? "Gateway Timeout" : "Bad Gateway";
	char body[512];
	int len = snprintf(body, sizeof body, "%d %s: %s\n", status, reason, text);

	if (len >= (int)sizeof body)
		len = (int)sizeof body - 1;
	forward_log("%s %s: %.*s", ptth_request_method(tr->req), ptth_request_path(tr->req),
	            len - 1, body);
	ptth_response_send(tr->res, status, "text/plain; charset=utf-8", body, (size_t)len);
}

/* Says in a few words why a transfer that never produced a head failed. */
static void
transfer_why(struct transfer *tr, CURL *c, CURLcode rc, char *why, size_t size)
{
	const struct forward *fwd = tr->fwd;
	long os_errno = 0;

	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
	if (tr->bad_head)
		snprintf(why, size, "local server %s sent a malformed or oversized head", fwd->to);
	else if (rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED)
		snprintf(why, size, "local server %s refused the connection", fwd->to);
	else if (rc == CURLE_COULDNT_CONNECT)
		snprintf(why, size, "local server %s is unreachable: %s", fwd->to,
		         os_errno ? strerror((int)os_errno) : tr->error);
	else if (rc == CURLE_OPERATION_TIMEDOUT && !tr->connected)
		snprintf(why, size, "local server %s did not accept a connection within %d ms",
		         fwd->to, fwd->opts.timeout_ms);
	else if (rc == CURLE_GOT_NOTHING)
		snprintf(why, size, "local server %s closed the connection without answering",
		         fwd->to);
	else
		snprintf(why, size, "local server %s: %s", fwd->to,
		         tr->error[0] ? tr->error : curl_easy_strerror(rc));
}

/* Ends a transfer that failed: before the head, the user gets a 502 or
 * a 504; after it, the stream is reset, so the user sees the body cut
 * short. Either way the failure is logged once. */
static void
transfer_fail(struct transfer *tr, CURL *c, CURLcode rc)
{
	const char *method = ptth_request_method(tr->req), *path = ptth_request_path(tr->req);
	char why[CURL_ERROR_SIZE + 256];

	if (tr->router_gone) {
		forward_log("%s %s: the user went away after %llu bytes", method, path,
		            tr->bytes_back);
	} else if (tr->body_failed) {
		forward_log("%s %s: the request body broke off", method, path);
		ptth_response_reset(tr->res);
	} else if (tr->head_sent) {
		if (tr->stalled)
			snprintf(why, sizeof why, "local server %s silent for %d ms", tr->fwd->to,
			         tr->fwd->opts.timeout_ms);
		else
			transfer_why(tr, c, rc, why, sizeof why);
		forward_log("%s %s: body cut after %llu bytes: %s", method, path,
		            tr->bytes_back, why);
		ptth_response_reset(tr->res);
	} else if (tr->stalled) {
		snprintf(why, sizeof why, "local server %s sent nothing for %d ms", tr->fwd->to,
		         tr->fwd->opts.timeout_ms);
		transfer_answer(tr, 504, why);
	} else {
		transfer_why(tr, c, rc, why, sizeof why);
		transfer_answer(tr, 502, why);
	}
}

/* Reads a Content-Length value: digits only. Returns it, -1 when the
 * field is absent, or -2 when it is malformed. */
static long long
content_length(const char *value)
{
	long long n = 0;

	if (value == NULL)
		return -1;
	for (const char *p = value; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || n > (LLONG_MAX - 9) / 10)
			return -2;
		n = n * 10 + (*p - '0');
	}
	return value[0] != '\0' ? n : -2;
}

/* Sets the method and, when there is one, the body: a request with a
 * Content-Length is sent with it, one whose first read brought bytes is
 * sent chunked (HTTP/2 says nothing more about a body's length). */
static void
transfer_set_body(struct transfer *tr, CURL *c, const char *method, long long length)
{
	bool body = length >= 0 || tr->peek_len > 0;

	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		return;
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!body)
		return;
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(length >= 0 ? length : -1));
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_callback);
	curl_easy_setopt(c, CURLOPT_READDATA, tr);
	curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_callback);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, tr);
}

/* Sets every option of one transfer on a handle fresh from the pool. */
static void
transfer_setup(struct transfer *tr, CURL *c, struct curl_slist *fields, const char *target)
{
	curl_easy_setopt(c, CURLOPT_URL, tr->fwd->base_url);
	curl_easy_setopt(c, CURLOPT_REQUEST_TARGET, target); /* byte for byte */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_PROXY, "");            /* ignore http_proxy */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);         /* threads: no SIGALRM */
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, fields);
	curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L); /* gzip passes through */
	curl_easy_setopt(c, CURLOPT_HTTP_TRANSFER_DECODING, 1L); /* chunks do not */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)tr->fwd->opts.timeout_ms);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_callback);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, tr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_callback);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, tr);
	curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, prereq_callback);
	curl_easy_setopt(c, CURLOPT_PREREQDATA, tr);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_callback);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, tr);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, tr->error);
}

/* Checks what the router sent before anything leaves: a token for a
 * method, a request target without spaces or controls. Builds the
 * target in *target (caller frees). Returns 0, or the status to answer
 * with text in why. */
static int
transfer_check(struct transfer *tr, char **target, const char **why)
{
	const char *method = ptth_request_method(tr->req);
	const char *path = ptth_request_path(tr->req), *query = ptth_request_query(tr->req);

	*why = "the request is malformed";
	if (!is_token(method))
		return 400;
	if (strcmp(method, "CONNECT") == 0) {
		*why = "CONNECT is not supported";
		return 501;
	}
	if (asprintf(target, "%s%s%s", path, query[0] ? "?" : "", query) < 0) {
		*target = NULL;
		return 502;
	}
	if ((*target)[0] != '/' || has_control(*target) || strpbrk(*target, " \t") != NULL)
		return 400;
	return 0;
}

/* Reads the first piece of the request body (none for HEAD). Returns
 * the Content-Length (-1: none), or -2 when it is malformed or the
 * body broke off. */
static long long
transfer_peek(struct transfer *tr)
{
	long long length = content_length(ptth_request_header(tr->req, "content-length"));
	ssize_t n;

	if (length < -1 || strcmp(ptth_request_method(tr->req), "HEAD") == 0)
		return length;
	n = ptth_request_read(tr->req, tr->peek, sizeof tr->peek);
	if (n < 0) {
		tr->body_failed = true;
		return -2;
	}
	tr->peek_len = (size_t)n;
	tr->body_end = (n == 0);
	return length;
}

/* Runs one transfer on a pooled handle and deals with how it ended. */
static void
transfer_run(struct transfer *tr, struct curl_slist *fields, const char *target,
             long long length)
{
	CURL *c = pool_take(tr->fwd);
	CURLcode rc;

	if (c == NULL) {
		transfer_answer(tr, 502, "out of memory");
		return;
	}
	transfer_setup(tr, c, fields, target);
	transfer_set_body(tr, c, ptth_request_method(tr->req), length);
	tr->last_ms = now_ms();
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK || !tr->head_sent)
		transfer_fail(tr, c, rc);
	else if (tr->fwd->opts.verbose)
		forward_log("%s %s -> %d, %llu bytes", ptth_request_method(tr->req),
		            ptth_request_path(tr->req), tr->status, tr->bytes_back);
	/* Forget the pointers into this transfer before the handle waits. */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	pool_give(tr->fwd, c);
}

void
forward_serve(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct transfer *tr = calloc(1, sizeof *tr);
	struct curl_slist *fields = NULL;
	char *target = NULL;
	const char *why;
	long long length;
	int status;

	if (tr == NULL) {
		ptth_response_reset(res);
		return;
	}
	tr->fwd = arg;
	tr->req = req;
	tr->res = res;
	if (ptth_request_protocol(req) != NULL &&
	    strcasecmp(ptth_request_protocol(req), "websocket") == 0) {
		upgrade_serve(req, res, tr->fwd->to, tr->fwd->opts.timeout_ms);
		free(tr);
		return;
	}
	status = transfer_check(tr, &target, &why);
	if (status == 0 && request_fields(tr, &fields) < 0)
		status = 400;
	length = status == 0 ? transfer_peek(tr) : -1;
	if (tr->body_failed) {
		forward_log("%s %s: the request body broke off", ptth_request_method(req),
		            ptth_request_path(req));
		ptth_response_reset(res);
	} else if (status != 0 || length < -1) {
		transfer_answer(tr, status ? status : 400, why);
	} else {
		transfer_run(tr, fields, target, length);
	}
	curl_slist_free_all(fields);
	free(target);
	free(tr->fields);
	free(tr);
}

/* ---------------------------------------------------------------------
 * Life cycle.
 */

/* Checks "HOST:PORT" (HOST may be "[V6]") and builds "http://HOST:PORT/".
 * Returns 0 or -EINVAL. */
static int
forward_parse_to(const char *to, char **url)
{
	const char *colon = strrchr(to, ':');
	char *end;
	long port;

	if (colon == NULL || colon == to || has_control(to) || strpbrk(to, " /?#@") != NULL)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return -EINVAL;
	if (memchr(to, ':', (size_t)(colon - to)) != NULL && to[0] != '[')
		return -EINVAL; /* a bare IPv6 address needs brackets */
	return asprintf(url, "http://%s/", to) < 0 ? -ENOMEM : 0;
}

struct forward *
forward_new(const struct forward_options *opts)
{
	struct forward *fwd = calloc(1, sizeof *fwd);
	int rc;

	if (fwd == NULL)
		goto out_nomem;
	fwd->opts = *opts;
	if (fwd->opts.timeout_ms <= 0)
		fwd->opts.timeout_ms = 30000;
	if (fwd->opts.max_idle <= 0 || fwd->opts.max_idle > FORWARD_MAX_IDLE)
		fwd->opts.max_idle = fwd->opts.max_idle <= 0 ? 16 : FORWARD_MAX_IDLE;
	rc = forward_parse_to(opts->to, &fwd->base_url);
	if (rc < 0) {
		free(fwd);
		errno = -rc;
		return NULL;
	}
	fwd->to = strdup(opts->to);
	fwd->idle = calloc((size_t)fwd->opts.max_idle, sizeof *fwd->idle);
	if (fwd->to == NULL || fwd->idle == NULL || pthread_mutex_init(&fwd->mu, NULL) != 0) {
		free(fwd->idle);
		free(fwd->to);
		free(fwd->base_url);
		free(fwd);
		goto out_nomem;
	}
	return fwd;
out_nomem:
	errno = ENOMEM;
	return NULL;
}

void
forward_free(struct forward *fwd)
{
	if (fwd == NULL)
		return;
	for (int i = 0; i < fwd->idle_count; i++)
		curl_easy_cleanup(fwd->idle[i]);
	pthread_mutex_destroy(&fwd->mu);
	free(fwd->idle);
	free(fwd->to);
	free(fwd->base_url);
	free(fwd);
}
