/*
 * http1_client.h -- a strict HTTP/1.1 client on raw sockets: send any
 * bytes, read every byte of the answer. See http1_client.c.
 *
 * Typical use, in a cmocka test:
 *     static struct response r;   (64 KiB of body: keep it off the stack)
 *     struct conn c;
 *     assert_int_equal(conn_open(&c, http_port), 0);
 *     assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
 *     assert_int_equal(read_response(&c, &r, false), 0);
 *     const char *why = check_response(&r, 200, "bar");
 *     conn_close(&c);
 *     if (why != NULL)
 *         fail_msg("%s", why);
 */
#ifndef PTTH_TEST_HTTP1_CLIENT_H
#define PTTH_TEST_HTTP1_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HTTP1_CLIENT_TIMEOUT_MS 10000     /* the longest any read or send blocks */
#define HTTP1_CLIENT_BODY_KEEP (64 * 1024) /* response body bytes kept */

/* One connection and the bytes read but not yet used. */
struct conn {
	int fd;
	size_t off, len;          /* unread bytes are buf[off..len) */
	char buf[16 * 1024];
};

/* How a response body is delimited (RFC 9112 section 6.3). */
enum framing { FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE };

struct field {
	char name[64];
	char value[512];
};

/* One response as read: its head, its framing and its body. */
struct response {
	int status;                     /* from the status line */
	int minor;                      /* HTTP/1.x of the status line */
	int nfields, ntrailers;
	struct field fields[48];
	struct field trailers[8];
	enum framing framing;
	long long length;               /* Content-Length, or -1 */
	char body[HTTP1_CLIENT_BODY_KEEP + 1]; /* the first bytes, NUL-terminated */
	size_t body_len;
	unsigned long long body_total;  /* every body byte received */
	bool complete;                  /* the body ended as its framing says */
	bool eof;                       /* the connection ended while reading it */
};

/* ---------------------------------------------------------------------
 * Connections. Every call returns 0 (or a count) or a negative code;
 * -ETIMEDOUT when nothing came within HTTP1_CLIENT_TIMEOUT_MS.
 */

/* A TCP socket to 127.0.0.1:port with the send and receive timeouts and
 * Nagle off (so byte-by-byte sends leave one by one). A rcvbuf above 0
 * sets SO_RCVBUF before connecting, so that the window the socket
 * advertises stays that small. Returns the socket or a negative code. */
int dial_loopback_rcvbuf(int port, int rcvbuf);
int dial_loopback(int port);
/* Sends all of data on fd. */
int send_all(int fd, const void *data, size_t len);

int conn_open(struct conn *c, int port);
void conn_close(struct conn *c);
int conn_send(struct conn *c, const char *s);
/* Sends s one byte per send(), as a slow or odd client would. Stops
 * early, without error, once the peer has answered or closed. */
int conn_send_bytewise(struct conn *c, const char *s);
/* Sends every byte of s, one per send(), whatever comes back meanwhile:
 * for a request that streams, whose answer starts before its end. */
int conn_send_every_byte(struct conn *c, const char *s);
/* conn_send() or conn_send_bytewise(). */
int conn_send_as(struct conn *c, const char *s, bool bytewise);
/* True when something can be read (or the peer closed) within ms. */
bool conn_wait_readable(struct conn *c, int ms);
/* Reads more bytes after the unread ones: the count, 0 at the end of
 * the stream, or a negative code (-ECONNRESET for a reset). */
ssize_t conn_fill(struct conn *c);
/* One line into line, without its CR LF, cut to fit: its length, or
 * -ECONNRESET when the connection ended first. */
ssize_t conn_read_line(struct conn *c, char *line, size_t size);
/* Points *data at up to max unread bytes, reading when there are none:
 * the count, 0 at the end of the stream, or a negative code. */
ssize_t conn_take(struct conn *c, size_t max, const char **data);
/* NULL when the peer closes next (a reset counts), sending nothing more;
 * otherwise what happened instead. */
const char *conn_expect_close(struct conn *c);

/* ---------------------------------------------------------------------
 * Responses.
 */

/* The value of the first field called name (any case), or NULL. */
const char *field_get(const struct field *fields, int n, const char *name);
const char *resp_field(const struct response *r, const char *name);
/* Reads a status line and fields and works out the framing; an interim
 * 1xx head is returned as it is. head_request: no body follows. */
int read_head(struct conn *c, struct response *r, bool head_request);
/* Reads the body read_head() announced: 0 when it ended (complete, or
 * cut by the end of the connection: see r->complete and r->eof). */
int read_body(struct conn *c, struct response *r);
/* read_head() skipping interim 1xx heads, then read_body(). */
int read_response(struct conn *c, struct response *r, bool head_request);
/* Adds n body bytes to r as read_body() does (keeps what fits). */
void body_keep(struct response *r, const char *data, size_t n);
/* NULL when r has this status, a complete body and (unless body is
 * NULL) exactly this body; otherwise what differs. */
const char *check_response(const struct response *r, int status, const char *body);

#endif
