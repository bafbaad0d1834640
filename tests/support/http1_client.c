/*
 * http1_client.c -- a strict HTTP/1.1 client on raw sockets, for tests
 * that must send what no well-behaved client sends (malformed heads,
 * byte-by-byte writes, pipelining) and read every byte of the answer
 * (framing, trailers, the close that follows).
 *
 * Owns:    nothing beyond each struct conn's socket, which conn_close()
 *          closes; the caller owns the structs.
 * Threads: any thread may use its own struct conn and struct response;
 *          the text of a problem is per thread.
 * Locks:   none.
 * Interface:
 *   - conn_open() / conn_send() / conn_send_bytewise() / conn_close();
 *     every read is bounded by HTTP1_CLIENT_TIMEOUT_MS (SO_RCVTIMEO);
 *   - read_response() reads one final response, its body framed as the
 *     head says (Content-Length, chunked with trailers, or until close),
 *     cut bodies noted rather than failed;
 *   - check_response() and conn_expect_close() return NULL or what went
 *     wrong, as text ready for cmocka's fail_msg().
 * Tutorial: none; this is test support code (tests/support/README.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "support/http1_client.h"

/* Formats what went wrong into a buffer of this thread's and returns
 * it; the text lasts until the thread's next problem. */
static const char * __attribute__((format(printf, 1, 2)))
http1_client_problem(const char *fmt, ...)
{
	static _Thread_local char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	return text;
}

/* ---------------------------------------------------------------------
 * Raw connections. Every read is bounded by SO_RCVTIMEO.
 */

/* Connects a TCP socket to 127.0.0.1:port with HTTP1_CLIENT_TIMEOUT_MS send and
 * receive timeouts and Nagle off (so byte-by-byte sends leave one by
 * one). A rcvbuf above 0 sets SO_RCVBUF before connecting, so that the
 * window the socket advertises stays that small too. Returns the socket
 * or a negative code. */
int
dial_loopback_rcvbuf(int port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { HTTP1_CLIENT_TIMEOUT_MS / 1000, 0 };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int
dial_loopback(int port)
{
	return dial_loopback_rcvbuf(port, 0);
}

int
conn_open(struct conn *c, int port)
{
	c->off = c->len = 0;
	c->fd = dial_loopback(port);
	return c->fd < 0 ? c->fd : 0;
}

void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Sends all of data. Returns 0 or a negative code. */
int
send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
conn_send(struct conn *c, const char *s)
{
	return send_all(c->fd, s, strlen(s));
}

/* Waits up to ms for the router to send something or close.
 * Returns true when there is something to read. */
bool
conn_wait_readable(struct conn *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (c->off < c->len)
		return true;
	while (poll(&p, 1, ms) < 0)
		if (errno != EINTR)
			return false;
	return p.revents != 0;
}

/* Sends s one byte per send(), as a slow or odd client would. Stops
 * early, without error, once the router has answered or closed: that is
 * allowed as soon as it has seen enough. Returns 0 or a negative code. */
int
conn_send_bytewise(struct conn *c, const char *s)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (conn_wait_readable(c, 0))
			return 0;
		int rc = send_all(c->fd, s + i, 1);
		if (rc == -EPIPE || rc == -ECONNRESET)
			return 0; /* closed: its answer is waiting to be read */
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Sends every byte of s, one per send(), whatever comes back meanwhile:
 * for a request that streams, whose answer starts before its end. */
int
conn_send_every_byte(struct conn *c, const char *s)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		int rc = send_all(c->fd, s + i, 1);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Sends s whole or byte by byte. */
int
conn_send_as(struct conn *c, const char *s, bool bytewise)
{
	return bytewise ? conn_send_bytewise(c, s) : conn_send(c, s);
}

/* Reads more bytes after the unread ones. Returns the count, 0 at the
 * end of the stream, -ETIMEDOUT when nothing came in time, or another
 * negative code (-ECONNRESET when the router reset the connection). */
ssize_t
conn_fill(struct conn *c)
{
	ssize_t n;

	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof c->buf)
		return -ENOBUFS;
	do
		n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
	c->len += (size_t)n;
	return n;
}

/* Reads one line into line (without its CR LF, cut to fit). Returns its
 * length, -ECONNRESET when the connection ended first, or another
 * negative code. */
ssize_t
conn_read_line(struct conn *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		if (nl != NULL) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			size_t keep = n;
			if (keep > 0 && c->buf[c->off + keep - 1] == '\r')
				keep--;
			if (keep >= size)
				keep = size - 1;
			memcpy(line, c->buf + c->off, keep);
			line[keep] = '\0';
			c->off += n + 1;
			return (ssize_t)keep;
		}
		ssize_t r = conn_fill(c);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return r;
	}
}

/* Points *data at up to max unread bytes, reading when there are none.
 * Returns the count, 0 at the end of the stream, or a negative code. */
ssize_t
conn_take(struct conn *c, size_t max, const char **data)
{
	size_t n;

	if (c->off == c->len) {
		ssize_t r = conn_fill(c);
		if (r <= 0)
			return r;
	}
	n = c->len - c->off;
	if (n > max)
		n = max;
	*data = c->buf + c->off;
	c->off += n;
	return (ssize_t)n;
}

/* Checks that the router closes the connection next, sending nothing
 * more. A reset counts as a close too (the router may close with our
 * unread bytes in its buffer). NULL, or what happened instead. */
const char *
conn_expect_close(struct conn *c)
{
	ssize_t n;

	if (c->off < c->len)
		return http1_client_problem("%zu unexpected bytes after the response: \"%.60s\"",
		               c->len - c->off, c->buf + c->off);
	n = conn_fill(c);
	if (n == 0 || n == -ECONNRESET)
		return NULL;
	if (n > 0)
		return http1_client_problem("unexpected bytes instead of a close: \"%.60s\"", c->buf);
	return http1_client_problem("the connection was not closed: %s", strerror((int)-n));
}

/* ---------------------------------------------------------------------
 * HTTP/1.1 responses, as a strict client reads them.
 */

/* The value of the first field called name, or NULL. */
const char *
field_get(const struct field *fields, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(fields[i].name, name) == 0)
			return fields[i].value;
	return NULL;
}

const char *
resp_field(const struct response *r, const char *name)
{
	return field_get(r->fields, r->nfields, name);
}

/* Reads "name: value" lines up to the empty line. Returns 0 or a
 * negative code (-EPROTO for a line that is no field). */
static int
read_fields(struct conn *c, struct field *fields, int *n, int max)
{
	char line[1024];

	for (;;) {
		ssize_t len = conn_read_line(c, line, sizeof line);
		if (len < 0)
			return (int)len;
		if (len == 0)
			return 0;
		char *colon = strchr(line, ':');
		if (colon == NULL)
			return -EPROTO;
		if (*n == max)
			continue;
		*colon = '\0';
		char *value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		snprintf(fields[*n].name, sizeof fields[*n].name, "%.63s", line);
		snprintf(fields[*n].value, sizeof fields[*n].value, "%.511s", value);
		(*n)++;
	}
}

/* Reads a status line and fields, and works out how the body is
 * delimited (RFC 9112 section 6.3). An interim 1xx head is returned as
 * it is. Returns 0 or a negative code. */
int
read_head(struct conn *c, struct response *r, bool head_request)
{
	char line[1024];
	ssize_t n;
	int rc;

	memset(r, 0, sizeof *r);
	r->length = -1;
	n = conn_read_line(c, line, sizeof line);
	if (n < 0)
		return (int)n;
	if (sscanf(line, "HTTP/1.%d %d", &r->minor, &r->status) != 2)
		return -EPROTO;
	rc = read_fields(c, r->fields, &r->nfields, 48);
	if (rc < 0)
		return rc;
	const char *te = resp_field(r, "transfer-encoding");
	const char *cl = resp_field(r, "content-length");
	if (head_request || r->status < 200 || r->status == 204 || r->status == 304) {
		r->framing = FRAMING_NONE;
		r->complete = true;
	} else if (te != NULL && strcasestr(te, "chunked") != NULL) {
		r->framing = FRAMING_CHUNKED;
	} else if (cl != NULL) {
		r->framing = FRAMING_LENGTH;
		r->length = strtoll(cl, NULL, 10);
	} else {
		r->framing = FRAMING_CLOSE;
	}
	return 0;
}

void
body_keep(struct response *r, const char *data, size_t n)
{
	size_t room = HTTP1_CLIENT_BODY_KEEP - r->body_len;
	size_t keep = n < room ? n : room;

	memcpy(r->body + r->body_len, data, keep);
	r->body_len += keep;
	r->body[r->body_len] = '\0';
	r->body_total += n;
}

/* A read inside a body failed with rc: the end of the connection is an
 * answer (a cut body), anything else an error. */
static int
body_cut(struct response *r, ssize_t rc)
{
	if (rc == 0 || rc == -ECONNRESET) {
		r->eof = true;
		return 0;
	}
	return (int)rc;
}

/* Reads n body bytes. */
static int
read_body_bytes(struct conn *c, struct response *r, unsigned long long n)
{
	while (n > 0) {
		const char *data = NULL;
		ssize_t got = conn_take(c, n > SIZE_MAX ? SIZE_MAX : (size_t)n, &data);
		if (got <= 0)
			return body_cut(r, got);
		body_keep(r, data, (size_t)got);
		n -= (unsigned long long)got;
	}
	return 0;
}

/* Reads a chunked body and its trailers (RFC 9112 section 7.1). */
static int
read_body_chunked(struct conn *c, struct response *r)
{
	char line[256];

	for (;;) {
		ssize_t n = conn_read_line(c, line, sizeof line);
		if (n < 0)
			return body_cut(r, n);
		char *end;
		unsigned long long size = strtoull(line, &end, 16);
		if (end == line)
			return -EPROTO;
		if (size == 0) {
			int rc = read_fields(c, r->trailers, &r->ntrailers, 8);
			if (rc < 0)
				return body_cut(r, rc);
			r->complete = true;
			return 0;
		}
		unsigned long long before = r->body_total;
		int rc = read_body_bytes(c, r, size);
		if (rc < 0 || r->eof || r->body_total - before < size)
			return rc;
		n = conn_read_line(c, line, sizeof line);
		if (n < 0)
			return body_cut(r, n);
		if (n != 0)
			return -EPROTO;
	}
}

/* Reads the body that read_head() announced. Returns 0 when it ended
 * (complete, or cut by the end of the connection: see r->complete and
 * r->eof), or a negative code such as -ETIMEDOUT. */
int
read_body(struct conn *c, struct response *r)
{
	int rc;

	switch (r->framing) {
	case FRAMING_NONE:
		return 0;
	case FRAMING_LENGTH:
		rc = read_body_bytes(c, r, (unsigned long long)r->length);
		r->complete = rc == 0 && !r->eof;
		return rc;
	case FRAMING_CHUNKED:
		return read_body_chunked(c, r);
	case FRAMING_CLOSE:
		rc = read_body_bytes(c, r, ULLONG_MAX);
		r->complete = rc == 0 && r->eof;
		return rc;
	}
	return -EINVAL;
}

/* Reads one final response, skipping interim 1xx ones. */
int
read_response(struct conn *c, struct response *r, bool head_request)
{
	int rc;

	do
		rc = read_head(c, r, head_request);
	while (rc == 0 && r->status >= 100 && r->status < 200);
	return rc < 0 ? rc : read_body(c, r);
}

/* Checks one whole response: status and, unless NULL, body. */
const char *
check_response(const struct response *r, int status, const char *body)
{
	if (r->status != status)
		return http1_client_problem("expected status %d, got %d (body \"%.80s\")", status, r->status,
		               r->body);
	if (!r->complete)
		return http1_client_problem("the %d response body was cut short after %llu bytes", status,
		               r->body_total);
	if (body != NULL && strcmp(r->body, body) != 0)
		return http1_client_problem("expected body \"%s\", got \"%.80s\"", body, r->body);
	return NULL;
}
