/*
 * user_conn.c -- one user's HTTP/1.1 connection, served by a thread of
 * its own: parse a request, hand it to a tunnel, stream the request body
 * up and the response back, then the next request (keep-alive).
 *
 * Owns:    the user socket, its notify eventfd (opened when first
 *          needed), the parser, the output buffer, the request in progress
 *          (struct user_request, cleared by user_request_begin() as each
 *          request starts): one reference on its exchange and one on the
 *          tunnel carrying it; and between requests the last exchange,
 *          recycled for the next (c->spare).
 * Threads: user_conn_thread_main() on "ptth-user" threads, one per
 *          connection. The router's thread calls user_conn_shutdown() to
 *          unblock it at stop.
 * Locks:   none of its own; c->prev/c->next are guarded by the router's
 *          mu (router_conn_add/remove); c->idle is an atomic read by a
 *          draining router. This thread blocks in recv() (SO_RCVTIMEO is
 *          the idle timeout), poll() (a request under way, on the header
 *          or body timeout; a response moving while the request body
 *          still comes: then the tunnel thread writes notify_fd), send()
 *          (SO_SNDTIMEO is the send timeout) and exchange waits (on the
 *          backend timeout), never while holding a lock.
 * Interface:
 *   - user_conn_start(): takes an accepted socket and starts the thread;
 *     a connection that gets none (--max-conns, or no thread to be had)
 *     is answered 503 on the accept thread (user_conn_refuse);
 *   - each request goes to the pool of the service its Host names, when
 *     that service is known, else to the default pool (user_conn_route);
 *   - every failure becomes an HTTP status with a one-line plain-text
 *     body (503 no tunnel, 502 tunnel failed, 400 bad request, ...), or,
 *     once a response has started, a cut-short body and a closed socket
 *     so the client can tell it is incomplete; before closing on an
 *     error with input unread, the thread lingers (user_conn_linger);
 *   - a request refused unprocessed is sent once more, on another tunnel
 *     (user_conn_retry);
 *   - a WebSocket handshake is judged (user_conn_check_websocket), sent
 *     as an extended CONNECT, and after a 2xx this thread relays the
 *     connection's bytes both ways (upgrade_relay.c) until it ends.
 * Tutorial: "A request arrives", "The response goes back",
 *          "A connection that stays open"; hardening in "Bad requests are
 *          answered at the door", "Tunnels come and go"; speed in
 *          "Between requests, a thread sleeps in one recv()".
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exchange.h"
#include "handshake.h"
#include "http1.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "router.h"
#include "services.h"
#include "tunnel.h"
#include "upgrade_relay.h"
#include "user_conn.h"
#include "websocket_upgrade.h"

#define USER_OUT_SIZE (64 * 1024)
/* Body bytes are read into the output buffer only when it has this much
 * room; otherwise it is sent first. */
#define USER_BODY_ROOM (4 * 1024)
/* Room left before a chunk's bytes for its size line ("%zx\r\n" of at
 * most USER_OUT_SIZE, 7 bytes). */
#define USER_CHUNK_HEAD 8
/* A user thread's stack, instead of the default 8 MiB (ulimit -s): its
 * buffers live in struct user_conn, its deepest path (an error answer
 * formatted and logged while parsing) takes a few KiB, and every test
 * suite passes with 32 KiB; 128 KiB leaves four times that. With 10 000
 * users that is 1.3 GB of address space instead of 80 GB. Sanitizers
 * widen every frame, so their builds get more. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define USER_STACK_SIZE (1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define USER_STACK_SIZE (1024 * 1024)
#endif
#endif
#ifndef USER_STACK_SIZE
#define USER_STACK_SIZE (128 * 1024)
#endif
/* The longest the accept thread blocks writing a 503 (user_conn_refuse). */
#define USER_REFUSE_SEND_MS 200

/* One request and its response: everything that must start afresh with
 * every request. user_request_begin() clears it, in one place, when the
 * first byte of a request arrives, so nothing of one request (a HEAD
 * method, a status chosen, a framing) can leak into the next. */
struct user_request {
	struct pool *pool;         /* where it goes: its service's pool, or the default */
	char service[HANDSHAKE_SERVICE_MAX + 1]; /* the known service its Host names, or "" */
	char reject_buf[HANDSHAKE_SERVICE_MAX + 64]; /* a reject_text naming the service */
	struct exchange *ex;       /* one reference, or NULL when not forwarded */
	struct tunnel *tunnel;     /* one reference while ex is set */
	unsigned seen_events;      /* changes of ex already looked at */
	bool message_done;         /* the parser delivered the whole request */
	long long head_started_ms; /* when the first byte of this request came */
	long long submitted_ms;    /* when it went to a tunnel (backend timeout) */
	long long body_moved_ms;   /* when body bytes last went into the exchange */
	long long body_bytes;      /* request body bytes so far (max_body) */
	bool keep_alive;           /* the connection goes on after this answer */
	bool retried;              /* sent again after a refusal (once at most) */
	bool head_request;         /* HEAD: the answer has no body */
	int version_minor;         /* HTTP/1.x of the request */
	int reject_status;         /* answer this instead of forwarding */
	const char *reject_text;
	const char *reject_extra;  /* a field line for that answer, or NULL */
	bool websocket;            /* a WebSocket opening handshake (RFC 6455) */
	char ws_accept[WEBSOCKET_ACCEPT_LEN + 1]; /* its Sec-WebSocket-Accept */
	bool response_started, response_done, response_failed;
	bool chunked, close_delimited, no_body;   /* the response's framing */
};

struct user_conn {
	/* guarded by r->mu: */
	struct user_conn *prev, *next;
	atomic_bool idle;       /* waiting for a next request (shutdown may wake it);
	                           atomic, see router_conn_idle() */

	/* Set at start, read-only afterwards (the router's thread may read fd
	 * to shut it down): */
	struct ptth_router *r;
	int fd;
	char peer[64];          /* "IP:PORT", for logs */
	char client_ip[64];     /* "IP", for X-Forwarded-For */
	char local_authority[64]; /* "IP:PORT" the user reached, for HTTP/1.0 without Host */

	/* user thread only, no lock: */
	struct http1_parser *parser;
	int notify_fd;          /* eventfd: the tunnel says a response is moving;
	                           -1 until first needed (user_conn_wait_readable),
	                           so an idle connection costs one fd, not two */
	bool abandoned;         /* a failure was answered or cut and logged where
	                           it happened (a user that stopped taking bytes
	                           or left, a stalled backend): the connection
	                           ends without another answer or log line */
	size_t out_len;
	bool linger;            /* input may be left unread: drain before close */
	struct exchange *spare; /* the last request's exchange, emptied for the
	                           next one (exchange_recycle), or NULL */
	struct user_request req; /* the request in progress */
	struct request_record rec; /* for the counters and the access log */
	/* The buffers come last, after every field a request touches, so that
	 * a connection serving small requests touches two pages of them:
	 * the first of in (with the fields above) and the first of out. */
	char in[ROUTER_READ_BUF];
	char out[USER_OUT_SIZE + 64];   /* response bytes not yet sent */
};

/* The exchange's copy of the peer's name is a plain memcpy. */
_Static_assert(sizeof ((struct exchange *)0)->peer == sizeof ((struct user_conn *)0)->peer,
               "an exchange names its peer as the connection does");

/* Writes to the user. A user that takes no byte for send_timeout_ms
 * (SO_SNDTIMEO) is written off here, in one log line; its sending side
 * is shut so that any later write fails at once, and the caller's error
 * path closes the connection and resets the stream. A write that fails
 * because the user left is not logged: that is an ordinary end.
 * Returns 0 or a negative code (-ETIMEDOUT for a user too slow). */
static int
user_conn_write(struct user_conn *c, const void *data, size_t len)
{
	int rc = net_write_all(c->fd, data, len);

	if (rc == 0)
		c->rec.response_bytes += (long long)len;
	if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
		log_info("%s: user took no response byte in %d ms: closing", c->peer,
		         c->r->conf.send_timeout_ms);
		shutdown(c->fd, SHUT_WR);
		rc = -ETIMEDOUT;
	}
	if (rc < 0) {
		c->abandoned = true;
		c->req.keep_alive = false;
	}
	return rc;
}

/* Sends the output buffer. Returns 0 or a negative code (user gone). */
static int
user_conn_flush(struct user_conn *c)
{
	int rc = user_conn_write(c, c->out, c->out_len);

	c->out_len = 0;
	return rc;
}

/* Appends bytes to the output buffer, sending it first when full. */
static int
user_conn_append(struct user_conn *c, const void *data, size_t len)
{
	if (c->out_len + len > USER_OUT_SIZE) {
		int rc = user_conn_flush(c);
		if (rc < 0)
			return rc;
		if (len > USER_OUT_SIZE)
			return user_conn_write(c, data, len);
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

/* Writes a complete short response that the router makes itself:
 * status line, a plain-text body of one line, and extra (a header line
 * or NULL). Sent at once: these are never part of a streamed response. */
static int
user_conn_send_simple(struct user_conn *c, int status, const char *extra,
                      const char *fmt, ...)
{
	char body[256], head[512];
	va_list ap;
	int blen, hlen;

	va_start(ap, fmt);
	blen = vsnprintf(body, sizeof body - 1, fmt, ap);
	va_end(ap);
	if (blen < 0 || blen > (int)sizeof body - 2)
		blen = (int)sizeof body - 2;
	body[blen++] = '\n';
	hlen = snprintf(head, sizeof head,
	                "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                "Content-Length: %d\r\n%s%s%s\r\n",
	                status, headers_reason_phrase(status), blen,
	                extra ? extra : "", extra ? "\r\n" : "",
	                c->req.keep_alive ? "" : "Connection: close\r\n");
	c->out_len = 0;
	request_record_answer(&c->rec, status, true);
	if (user_conn_append(c, head, (size_t)hlen) < 0 ||
	    (!c->req.head_request && user_conn_append(c, body, (size_t)blen) < 0))
		return -EPIPE;
	return user_conn_flush(c);
}

/* The framing fields of the response head, as chosen: chunked and/or
 * closing, or NULL for neither. */
static const char *
user_conn_framing(const struct user_conn *c)
{
	if (c->req.chunked)
		return c->req.keep_alive ? "Transfer-Encoding: chunked"
		                         : "Transfer-Encoding: chunked\r\nConnection: close";
	return c->req.keep_alive ? NULL : "Connection: close";
}

/* Chooses how the response body is delimited on HTTP/1.1 and writes
 * the head into the output buffer (sent with the first body bytes). */
static int
user_conn_start_response(struct user_conn *c)
{
	struct exchange *ex = c->req.ex;
	int status = ex->in_status; /* read-only once the head is done */
	char *head;
	size_t len;
	int rc;

	c->req.response_started = true;
	c->req.no_body = c->req.head_request || status == 204 || status == 304;
	if (status < 200 || status > 999) {
		c->req.response_failed = true;
		log_info("%s: backend on %s sent no valid :status", c->peer,
		         c->req.tunnel->name);
		return user_conn_send_simple(c, 502, NULL,
		                             "502 Bad Gateway: invalid response from tunnel %s",
		                             c->req.tunnel->name);
	}
	request_record_answer(&c->rec, status, false);
	/* tutorial: framing */
	if (!c->req.no_body && header_list_get(&ex->in_head, "content-length") == NULL) {
		if (c->req.version_minor >= 1)
			c->req.chunked = true;
		else
			c->req.close_delimited = true;
	}
	if (c->req.close_delimited)
		c->req.keep_alive = false;
	rc = headers_response_to_http1(status, &ex->in_head, user_conn_framing(c), &head, &len);
	/* tutorial: end */
	if (rc < 0)
		return rc;
	rc = user_conn_append(c, head, len);
	free(head);
	if (c->req.no_body)
		c->req.response_done = true;
	return rc;
}

/* Reads the response body bytes waiting in the exchange straight into
 * the output buffer (no copy through the stack), framed as this response
 * needs: a chunk of their own when chunked, nothing at all for a response
 * without a body. Never blocks. The caller leaves room (USER_BODY_ROOM).
 * Returns the bytes read, 0 at the end of the body, -EAGAIN when none are
 * waiting, or the stream's error. */
static ssize_t
user_conn_read_body(struct user_conn *c)
{
	size_t head = c->req.chunked ? USER_CHUNK_HEAD : 0;
	size_t tail = c->req.chunked ? 2 : 0;
	char *at = c->out + c->out_len, size_line[USER_CHUNK_HEAD + 1];
	ssize_t n = exchange_read_in(c->req.ex, at + head,
	                             USER_OUT_SIZE - c->out_len - head - tail, false);

	if (n <= 0 || c->req.no_body)
		return n; /* no body: the bytes are dropped where they lie */
	if (c->req.chunked) {
		int len = snprintf(size_line, sizeof size_line, "%zx\r\n", (size_t)n);
		memmove(at + len, at + head, (size_t)n);
		memcpy(at, size_line, (size_t)len);
		memcpy(at + len + n, "\r\n", 2);
		c->out_len += (size_t)len + 2;
	}
	c->out_len += (size_t)n;
	return n;
}

/* Ends a chunked body: the last chunk, then the backend's trailers
 * (read without the lock: the in pipe is finished, so they are complete). */
static int
user_conn_append_last_chunk(struct user_conn *c)
{
	const struct header_list *t = &c->req.ex->in_trailers;
	int rc = user_conn_append(c, "0\r\n", 3);

	for (size_t i = 0; rc == 0 && i < t->count; i++) {
		if (t->items[i].name[0] == ':' || headers_is_hop_by_hop(t->items[i].name, NULL))
			continue;
		rc = user_conn_append(c, t->items[i].name, t->items[i].name_len);
		if (rc == 0)
			rc = user_conn_append(c, ": ", 2);
		if (rc == 0)
			rc = user_conn_append(c, t->items[i].value, t->items[i].value_len);
		if (rc == 0)
			rc = user_conn_append(c, "\r\n", 2);
	}
	return rc == 0 ? user_conn_append(c, "\r\n", 2) : rc;
}

/* Moves response body bytes to the user. With block set it runs until
 * the body ends; without, it stops when no bytes are waiting.
 * Returns 0, or a negative code when the user or the tunnel failed. */
static int
user_conn_pump_body(struct user_conn *c, bool block)
{
	/* tutorial: response-written */
	while (!c->req.response_done) {
		if (USER_OUT_SIZE - c->out_len < USER_BODY_ROOM && user_conn_flush(c) < 0)
			return -EPIPE;
		ssize_t n = user_conn_read_body(c);
		if (n == -EAGAIN) {
			if (user_conn_flush(c) < 0)
				return -EPIPE;
			if (!block)
				return 0;
			/* A backend that stops sending in mid-body gets as long as
			 * one that has not answered yet; then the body is cut. */
			n = exchange_wait_until(c->req.ex, EX_WAIT_IN_DATA,
			                        now_ms() + c->r->conf.backend_timeout_ms);
			if (n == 0)
				continue;
		}
		/* tutorial: end */
		if (n < 0) {
			/* The tunnel failed mid-body: send what we have, then
			 * close without the terminating chunk. */
			user_conn_flush(c);
			c->req.response_failed = true;
			log_info("%s: response cut short: tunnel %s: %s", c->peer,
			         c->req.tunnel->name, ptth_strerror((int)n));
			return (int)n;
		}
		/* tutorial: response-written */
		if (n == 0) {
			c->req.response_done = true;
			if (c->req.chunked && user_conn_append_last_chunk(c) < 0)
				return -EPIPE;
			return user_conn_flush(c);
		}
		/* tutorial: end */
	}
	return user_conn_flush(c);
}

/* Answers a request that could not be forwarded or got no response head. */
static int
user_conn_send_gateway_error(struct user_conn *c, int rc)
{
	c->req.response_failed = true;
	c->req.keep_alive = false; /* say "Connection: close": we close after this */
	if (rc == PTTH_EREFUSED) {
		log_info("%s: 503 tunnel %s refused the request and no other took it", c->peer,
		         c->req.tunnel->name);
		return user_conn_send_simple(c, 503, "Retry-After: 1",
		                             "503 Service Unavailable: no tunnel took the request");
	}
	if (rc == PTTH_ETOOBIG) {
		/* The head fit our limits but not HTTP/2's (see
		 * on_frame_not_send_callback): the request's fault, not the tunnel's. */
		log_info("%s: 431 request head too large for HTTP/2", c->peer);
		return user_conn_send_simple(c, 431, NULL, "431 Request Header Fields Too Large: "
		                             "request header fields too large to forward");
	}
	if (rc == PTTH_ECLOSED) {
		log_info("%s: tunnel %s closed before the response", c->peer, c->req.tunnel->name);
		return user_conn_send_simple(c, 502, NULL, "502 Bad Gateway: tunnel %s closed",
		                             c->req.tunnel->name);
	}
	log_info("%s: tunnel %s: %s", c->peer, c->req.tunnel->name, ptth_strerror(rc));
	return user_conn_send_simple(c, 502, NULL, "502 Bad Gateway: %s",
	                             ptth_strerror(rc));
}

/* While the request body is still coming, moves whatever response
 * already arrived (without blocking), so that a backend that answers as
 * it reads (POST /echo) never waits on us while we wait on it. */
static int
user_conn_pump_response(struct user_conn *c)
{
	if (!c->req.response_started) {
		if (!exchange_in_head_done(c->req.ex))
			return 0;
		if (user_conn_start_response(c) < 0)
			return -EPIPE;
	}
	return user_conn_pump_body(c, false);
}

/* Hands ex to a live tunnel, trying another one when the picked tunnel
 * is closing or its queue is full. On success c holds a reference on the
 * tunnel and the tunnel one on ex. Returns 0, or the last error (-EAGAIN
 * full, -EPIPE closing) or -ENOENT when no tunnel is live. */
/* tutorial: tunnel-picked */
static int
user_conn_submit(struct user_conn *c, struct exchange *ex, const struct tunnel *avoid)
{
	int rc = -ENOENT;

	unsigned need = c->req.websocket ? POOL_NEED_EXTENDED_CONNECT : POOL_NEED_NOTHING;

	for (int attempt = 0; attempt < 4; attempt++) {
		struct tunnel *t = pool_pick_for(c->req.pool, avoid, need);
		if (t == NULL)
			break;
		ex->inbox = &t->inbox;
		rc = tunnel_submit(t, ex);
		if (rc == 0) {
			atomic_fetch_add(&t->in_flight, 1);
			c->req.tunnel = t;
			request_record_tunnel(&c->rec, t->id,
			                      t->service ? &t->service->metrics : NULL);
			return 0;
		}
		tunnel_unref(t);
	}
	return rc;
}
/* tutorial: end */

/* Lets go of the request's exchange and tunnel, if any (see
 * exchange_release: an unfinished stream is reset). The exchange is kept
 * for the next request when nobody else holds it (exchange_recycle). */
static void
user_conn_drop_exchange(struct user_conn *c)
{
	if (c->req.ex == NULL)
		return;
	if (c->spare == NULL)
		c->spare = exchange_recycle(c->req.ex);
	else
		exchange_release(c->req.ex, false);
	atomic_fetch_sub(&c->req.tunnel->in_flight, 1);
	tunnel_unref(c->req.tunnel);
	c->req.ex = NULL;
	c->req.tunnel = NULL;
}

/* Keeps ex, which no other thread holds, for the connection's next
 * request, or frees it when one is kept already. Under overload every
 * refused request would otherwise free one exchange and allocate the
 * next (and glibc's calloc() does not take back what free() put in the
 * thread's cache, so 10 000 threads would each pile some up). */
static void
user_conn_keep_spare(struct user_conn *c, struct exchange *ex)
{
	if (c->spare != NULL) {
		exchange_unref(ex);
		return;
	}
	exchange_empty(ex);
	c->spare = ex;
}

/* Starts a request afresh: the one place where per-request state is
 * reset. Runs when the first byte of a request arrives (http1's
 * on_begin) and once for a new connection. The previous request was
 * answered and its exchange let go by then; dropping it here is only a
 * safety net. */
static void
user_request_begin(struct user_conn *c)
{
	user_conn_drop_exchange(c);
	memset(&c->req, 0, sizeof c->req);
	c->req.keep_alive = true;
}

/* http1 callback: the first byte of a request arrived. */
static int
user_conn_on_begin(void *arg)
{
	struct user_conn *c = arg;

	user_request_begin(c);
	request_record_begin(&c->rec);
	return 0;
}

/* Sends the request again, on another tunnel, after the backend refused
 * it unprocessed (REFUSED_STREAM, a GOAWAY, or still queued when its
 * tunnel ended). RFC 9113 section 8.7 makes that safe whatever the
 * method; RFC 9110 section 9.2.2 forbids retrying a retry. It works only
 * while the router still holds every body byte sent so far.
 * Returns 0 with c->req.ex and c->req.tunnel replaced, or PTTH_EREFUSED with
 * them unchanged (the caller then answers the refusal). */
static int
user_conn_retry(struct user_conn *c)
{
	struct exchange *old = c->req.ex, *ex;
	struct tunnel *old_tunnel = c->req.tunnel;
	int rc = -ENOMEM;

	/* tutorial: retry */
	if (c->req.retried)
		return PTTH_EREFUSED;
	c->req.retried = true;
	ex = exchange_new(ROUTER_STREAM_WINDOW);
	if (ex != NULL)
		rc = header_list_copy(&ex->out_head, &old->out_head);
	if (rc == 0)
		rc = exchange_move_out(ex, old); /* fails if part of the body left */
	if (rc == 0) {
		ex->out_has_body = old->out_has_body;
		ex->extended_connect = old->extended_connect;
		ex->duplex = old->duplex;
		memcpy(ex->peer, c->peer, sizeof ex->peer);
		rc = user_conn_submit(c, ex, old_tunnel); /* anywhere but there */
	}
	/* tutorial: end */
	if (rc < 0) {
		exchange_unref(ex);
		c->req.tunnel = old_tunnel;
		return PTTH_EREFUSED;
	}
	log_info("%s: retrying on %s: %s refused the request", c->peer, c->req.tunnel->name,
	         old_tunnel->name);
	metrics_count_retry(&c->r->metrics);
	exchange_release(old, false);
	atomic_fetch_sub(&old_tunnel->in_flight, 1);
	tunnel_unref(old_tunnel);
	c->req.ex = ex;
	c->req.seen_events = 0;
	c->req.submitted_ms = now_ms();
	return 0;
}

/* Records the status to answer instead of forwarding. With stop set,
 * returns -1 so that parsing ends: the body will not be read, so the
 * connection closes after the answer. */
static int
user_conn_reject(struct user_conn *c, int status, const char *text, bool stop)
{
	c->req.reject_status = status;
	c->req.reject_text = text;
	if (stop) {
		c->req.keep_alive = false;
		c->linger = true;
	}
	return stop ? -1 : 0;
}

/* Chooses the pool for a request: the service that its Host (or the
 * authority of an absolute-form target), without port and lower-cased,
 * names, when the router knows that service (services_route()); else the
 * default pool, as the original had only that. */
static void
user_conn_route(struct user_conn *c, const struct http1_head *head)
{
	const char *host = head->url_host ? head->url_host
	                                  : header_list_get(&head->fields, "host");
	struct pool *p;

	services_host_name(host, c->req.service, sizeof c->req.service);
	p = services_route(&c->r->services, c->req.service);
	if (p == NULL)
		c->req.service[0] = '\0';
	c->req.pool = p ? p : &c->r->pool;
	/* Counted in its service even if no tunnel takes it (a 503). */
	request_record_tunnel(&c->rec, 0, p ? &services_pool_service(p)->metrics : NULL);
}

/* The 503 text when no tunnel took the request (rc from user_conn_submit). */
static const char *
user_conn_no_tunnel_text(struct user_conn *c, int rc)
{
	if (rc == -EAGAIN)
		return "every tunnel is busy";
	if (c->req.service[0] == '\0')
		return "Server at capacity";
	snprintf(c->req.reject_buf, sizeof c->req.reject_buf, "no tunnel for service %s",
	         c->req.service);
	return c->req.reject_buf;
}

/* Judges a WebSocket opening handshake (websocket_upgrade_check()) and
 * computes its accept value. Returns 0 to go on, or -1 with the answer
 * recorded: 400, or 426 naming the version spoken here. The connection
 * closes after a refusal, as it would after the switch. */
static int
user_conn_check_websocket(struct user_conn *c, const struct http1_head *head, bool has_body)
{
	int status;
	const char *text;
	enum websocket_verdict v = websocket_upgrade_check(head, has_body, &status, &text);

	if (v == WEBSOCKET_NONE)
		return 0;
	if (v == WEBSOCKET_VALID &&
	    websocket_accept_value(header_list_get(&head->fields, "sec-websocket-key"),
	                           c->req.ws_accept) == 0) {
		c->req.websocket = true;
		c->req.keep_alive = false;
		return 0;
	}
	if (v == WEBSOCKET_VALID) {
		status = 500;
		text = "cannot compute Sec-WebSocket-Accept";
	}
	c->req.reject_extra = status == 426 ? "Sec-WebSocket-Version: 13" : NULL;
	return user_conn_reject(c, status, text, true);
}

/* The answer when no tunnel took the request: 503 (try later), or, for a
 * WebSocket when tunnels are up but no backend announced extended
 * CONNECT, 501: waiting will not help. Refused WebSockets close the
 * connection, as requests whose body will not be read do. */
static int
user_conn_reject_unsubmitted(struct user_conn *c, int rc, bool stop)
{
	if (c->req.websocket && pool_count(c->req.pool) > 0 &&
	    !pool_has(c->req.pool, POOL_NEED_EXTENDED_CONNECT))
		return user_conn_reject(c, 501, "no backend here accepts WebSockets", true);
	return user_conn_reject(c, 503, user_conn_no_tunnel_text(c, rc), stop || c->req.websocket);
}

/* http1 callback: a request head is complete. Checks what the router
 * checks itself (Expect, body size, a WebSocket handshake), picks a
 * tunnel and hands the request over, or records what to answer instead. */
static int
user_conn_on_head(void *arg, const struct http1_head *head, bool has_body,
                  long long content_length, bool keep_alive)
{
	struct user_conn *c = arg;
	const struct router_conf *conf = &c->r->conf;
	const char *expect = header_list_get(&head->fields, "expect");
	bool want_continue = false;
	struct exchange *ex;
	int rc;

	request_record_head(&c->rec, head->method, head->path_and_query, head->version_minor);
	c->req.keep_alive = keep_alive;
	c->req.version_minor = head->version_minor;
	c->req.head_request = strcmp(head->method, "HEAD") == 0;
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0)
			return user_conn_reject(c, 417, "only 100-continue can be expected", true);
		want_continue = head->version_minor >= 1;
	}
	if (conf->max_body > 0 && content_length > conf->max_body)
		return user_conn_reject(c, 413, "request body too large", true);
	if (user_conn_check_websocket(c, head, has_body) < 0)
		return -1;
	/* HTTP/1.0 may omit Host and HTTP/1.1 may leave it empty, but an
	 * HTTP/2 request to an nghttp2 backend needs a non-empty authority
	 * (:authority or host; nghttp2 resets a stream with neither): name
	 * the address the user reached. */
	const char *host = header_list_get(&head->fields, "host");
	struct http1_head with_authority = *head;
	if (head->url_host == NULL && (host == NULL || host[0] == '\0'))
		with_authority.url_host = c->local_authority;
	/* tutorial: exchange-built */
	ex = c->spare != NULL ? c->spare : exchange_new(ROUTER_STREAM_WINDOW);
	c->spare = NULL;
	if (ex == NULL || (c->req.websocket ? websocket_request_to_h2 : headers_request_to_h2)(
	                          &with_authority, conf->forwarded ? c->client_ip : NULL,
	                          &ex->out_head) < 0) {
		exchange_unref(ex);
		return user_conn_reject(c, 500, "out of memory", true);
	}
	/* A WebSocket's stream carries the user's bytes after the 101. */
	ex->out_has_body = has_body || c->req.websocket;
	ex->extended_connect = ex->duplex = c->req.websocket;
	c->req.seen_events = 0;
	memcpy(ex->peer, c->peer, sizeof ex->peer);
	user_conn_route(c, head); /* not with_authority: no Host, default pool */
	rc = user_conn_submit(c, ex, NULL);
	if (rc < 0) {
		user_conn_keep_spare(c, ex); /* never shared */
		/* Without a 100 the client may not send its body: stop and close. */
		return user_conn_reject_unsubmitted(c, rc, want_continue);
	}
	log_request("Proxying %s %s to %s%s%s%s", head->method, head->path_and_query,
	            c->req.tunnel->name, c->req.service[0] ? " (service " : "", c->req.service,
	            c->req.service[0] ? ")" : "");
	/* tutorial: end */
	c->req.ex = ex;
	c->req.submitted_ms = now_ms();
	if (want_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (user_conn_write(c, cont, sizeof cont - 1) < 0)
			return -1;
	}
	return 0;
}

/* The time by which the backend must have sent the response head:
 * backend_timeout_ms after the request went to a tunnel or, when that
 * is later, after request body bytes last went into its exchange. A
 * long upload is the user's time, not the backend's; and a backend that
 * keeps taking body bytes is not stalled. */
static long long
user_conn_backend_deadline(const struct user_conn *c)
{
	long long since = c->req.submitted_ms;

	if (c->req.body_moved_ms > since)
		since = c->req.body_moved_ms;
	return since + c->r->conf.backend_timeout_ms;
}

/* Gives up on a request whose backend did not answer in time: the
 * stream is reset (exchange_release cancels it) and the user gets 504. */
static void
user_conn_time_out(struct user_conn *c)
{
	log_info("%s: 504 no response from tunnel %s in %d ms", c->peer, c->req.tunnel->name,
	         c->r->conf.backend_timeout_ms);
	user_conn_drop_exchange(c);
	c->req.reject_status = 504;
	c->req.reject_text = "no response from the backend in time";
}

/* on_body: the backend let backend_timeout_ms pass while the request
 * body waited for room: no head (504, and the stream is reset), or after
 * its head neither a response byte nor room for the body (the response
 * is cut short and the stream reset). Either way the rest of the body
 * is not read: returns -1, which stops parsing, and the connection
 * closes (after lingering) without another answer or log line. */
static int
user_conn_backend_stalled(struct user_conn *c)
{
	c->req.keep_alive = false;
	if (!c->req.response_started) {
		user_conn_time_out(c);
		user_conn_send_simple(c, 504, NULL, "504 Gateway Timeout: %s", c->req.reject_text);
	} else {
		log_info("%s: %s: tunnel %s stalled for %d ms", c->peer,
		         c->req.response_done ? "request cut" : "response cut short",
		         c->req.tunnel->name, c->r->conf.backend_timeout_ms);
		user_conn_drop_exchange(c);
		c->req.response_failed = true;
	}
	c->abandoned = true;
	return -1;
}

/* How long user_conn_on_body() waits for the pipe to have room. Before
 * the head, or once the whole response is through (only room is waited
 * for then), until the backend deadline. While the response body moves,
 * every wake-up is progress (response bytes came, or the backend took
 * body bytes), so each wait gets backend_timeout_ms of its own, as in
 * user_conn_pump_body(). */
static long long
user_conn_body_wait_deadline(const struct user_conn *c)
{
	if (!c->req.response_started || c->req.response_done)
		return user_conn_backend_deadline(c);
	return now_ms() + c->r->conf.backend_timeout_ms;
}

/* http1 callback: a piece of request body. Writes it to the exchange,
 * moving response bytes while the pipe is full. Bytes for a request that
 * is not being forwarded (rejected, or its stream ended) are dropped.
 * Waiting for room is waiting on the backend, so the backend timeout
 * bounds it, not the body timeout. */
static int
user_conn_on_body(void *arg, const char *data, size_t len)
{
	struct user_conn *c = arg;
	long long max_body = c->r->conf.max_body;

	c->req.body_bytes += (long long)len;
	c->rec.request_bytes += (long long)len;
	if (max_body > 0 && c->req.body_bytes > max_body) {
		user_conn_drop_exchange(c);
		return user_conn_reject(c, 413, "request body too large", true);
	}
	while (c->req.ex != NULL && len > 0) {
		ssize_t n = exchange_write_out(c->req.ex, data, len);
		if (n == PTTH_EREFUSED && user_conn_retry(c) == 0)
			continue;
		if (n < 0)
			return 0; /* the stream is over; the rest is read and dropped */
		if (n > 0)
			c->req.body_moved_ms = now_ms();
		data += n;
		len -= (size_t)n;
		if (len == 0)
			break;
		unsigned what = EX_WAIT_OUT_SPACE;
		if (!c->req.response_started)
			what |= EX_WAIT_IN_HEAD;
		else if (!c->req.response_done)
			what |= EX_WAIT_IN_DATA;
		int rc = exchange_wait_until(c->req.ex, what, user_conn_body_wait_deadline(c));
		if (rc == -ETIMEDOUT)
			return user_conn_backend_stalled(c);
		if (rc == PTTH_EREFUSED && user_conn_retry(c) == 0)
			continue;
		if (rc < 0)
			return 0;
		if (user_conn_pump_response(c) < 0 && !c->req.response_failed)
			return -EPIPE; /* the user went away */
	}
	return 0;
}

/* http1 callback: the request ended. */
static int
user_conn_on_end(void *arg)
{
	struct user_conn *c = arg;

	/* A WebSocket's out side is the user's bytes after the 101. */
	if (c->req.ex != NULL && !c->req.websocket)
		exchange_finish_out(c->req.ex);
	c->req.message_done = true;
	return 0;
}

static const struct http1_callbacks user_conn_http1_callbacks = {
	.on_begin = user_conn_on_begin,
	.on_head = user_conn_on_head,
	.on_body = user_conn_on_body,
	.on_end = user_conn_on_end,
};

/* Answers the request just parsed, then forgets it.
 * Returns 0 to go on with the connection, or -1 to close it. */
static int
user_conn_answer(struct user_conn *c)
{
	int rc = 0;

	if (c->req.reject_status != 0) {
		log_info("%s: %d %s", c->peer, c->req.reject_status, c->req.reject_text);
		rc = user_conn_send_simple(c, c->req.reject_status,
		                           c->req.reject_status == 503 ? "Retry-After: 1" : NULL,
		                           "%d %s: %s", c->req.reject_status,
		                           headers_reason_phrase(c->req.reject_status), c->req.reject_text);
	} else if (!c->req.response_started) {
		do
			rc = exchange_wait_until(c->req.ex, EX_WAIT_IN_HEAD,
			                         user_conn_backend_deadline(c));
		while (rc == PTTH_EREFUSED && user_conn_retry(c) == 0);
		if (rc == -ETIMEDOUT) {
			user_conn_time_out(c);
			rc = user_conn_send_simple(c, 504, NULL, "504 Gateway Timeout: %s",
			                           c->req.reject_text);
		} else if (rc < 0) {
			rc = user_conn_send_gateway_error(c, rc);
		} else if (user_conn_start_response(c) < 0) {
			rc = -EPIPE;
		}
	}
	if (rc == 0 && c->req.ex != NULL && !c->req.response_failed)
		rc = user_conn_pump_body(c, true);
	user_conn_drop_exchange(c);
	request_record_end(c->r, &c->rec, c->peer);
	if (rc < 0 || c->req.response_failed)
		c->req.keep_alive = false;
	return c->req.keep_alive ? 0 : -1;
}

/* Opens the connection's notify eventfd, which the tunnel thread writes
 * when the response moves while this thread waits in poll() on its
 * socket; kept until the connection ends. Connections that never need
 * it (requests without a body, answered while the thread waits on the
 * exchange) never open it. Returns 0 or a negative code, logged. */
static int
user_conn_open_notify(struct user_conn *c)
{
	if (c->notify_fd >= 0)
		return 0;
	c->notify_fd = net_wake_fd_new();
	if (c->notify_fd >= 0)
		return 0;
	log_info("%s: no eventfd to watch the response: %s", c->peer,
	         ptth_strerror(c->notify_fd));
	return c->notify_fd;
}

/* Relays an accepted WebSocket: the 101, then bytes both ways until
 * either side ends (upgrade_relay_run()); one log line at the end. */
static void
user_conn_relay_websocket(struct user_conn *c, const char *early, size_t early_len)
{
	struct upgrade_relay *u = calloc(1, sizeof *u);
	long long started = now_ms();
	char *head = NULL;
	size_t len;
	int rc = -ENOMEM;

	c->req.response_started = true;
	if (u != NULL && user_conn_open_notify(c) == 0 &&
	    websocket_response_head(&c->req.ex->in_head, c->req.ws_accept, &head, &len) == 0)
		rc = user_conn_write(c, head, len);
	free(head);
	if (rc == 0) {
		log_request("%s: WebSocket upgraded through tunnel %s", c->peer, c->req.tunnel->name);
		*u = (struct upgrade_relay){ .fd = c->fd, .notify_fd = c->notify_fd, .ex = c->req.ex,
		                             .idle_timeout_ms = c->r->conf.websocket_idle_timeout_ms };
		rc = upgrade_relay_run(u, early, early_len);
		(rc == 0 ? log_request : log_info)(
			"%s: WebSocket through tunnel %s ended: %s (%llu bytes up, %llu down, %lld ms)",
			c->peer, c->req.tunnel->name, rc == 0 ? "closed by both sides" : ptth_strerror(rc),
			(unsigned long long)u->bytes_up, (unsigned long long)u->bytes_down,
			now_ms() - started);
	}
	free(u);
}

/* Answers a WebSocket opening handshake once its request is complete.
 * A 2xx from the backend (RFC 8441 section 5) becomes the user's 101 and
 * the connection is relayed; any other answer, a timeout or a failure is
 * answered as for any request (user_conn_answer()). Either way the
 * connection then closes. early: bytes that followed the head. */
static void
user_conn_serve_websocket(struct user_conn *c, const char *early, size_t early_len)
{
	int rc;

	do
		rc = exchange_wait_until(c->req.ex, EX_WAIT_IN_HEAD, user_conn_backend_deadline(c));
	while (rc == PTTH_EREFUSED && user_conn_retry(c) == 0);
	if (rc == 0 && c->req.ex->in_status / 100 == 2)
		user_conn_relay_websocket(c, early, early_len);
	else
		user_conn_answer(c);
	user_conn_drop_exchange(c);
}

/* Waits until the user sends something, within the time the current
 * state allows: the rest of a request head must come within
 * header_timeout_ms of its first byte; in a body, body_timeout_ms of
 * silence is allowed; between requests, idle_timeout_ms. The body clock
 * runs only here, while the router waits for the user: a body held back
 * because the backend's window is closed waits in user_conn_on_body(),
 * on the backend's clock. While a request body is coming, response bytes
 * that arrive meanwhile are passed on.
 * Returns 1 when readable, 0 on timeout, or a negative code. */
static int
user_conn_wait_readable(struct user_conn *c)
{
	const struct router_conf *conf = &c->r->conf;
	struct pollfd pfd[2] = {
		{ .fd = c->fd, .events = POLLIN },
		{ .fd = c->notify_fd, .events = POLLIN },
	};
	long long deadline = now_ms() + conf->idle_timeout_ms;
	int rc;

	if (c->req.head_started_ms > 0 && http1_parser_in_head(c->parser))
		deadline = c->req.head_started_ms + conf->header_timeout_ms;
	else if (http1_parser_in_message(c->parser))
		deadline = now_ms() + conf->body_timeout_ms;
	for (;;) {
		/* While a request body is still coming, the response may already
		 * be moving: watch the exchange too, and pass it on. */
		bool watch = c->req.ex != NULL && !c->req.response_done && !c->req.response_failed;
		if (watch && c->notify_fd < 0) {
			rc = user_conn_open_notify(c);
			if (rc < 0)
				return rc;
			pfd[1].fd = c->notify_fd;
		}
		if (watch && exchange_arm_notify(c->req.ex, c->notify_fd, &c->req.seen_events)) {
			if (user_conn_pump_response(c) < 0 && !c->req.response_failed)
				return -EPIPE;
			continue;
		}
		long long left = deadline - now_ms();
		rc = poll(pfd, watch ? 2 : 1, left > 0 ? (int)left : 0);
		if (watch)
			exchange_disarm_notify(c->req.ex);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : 0;
		if (watch && (pfd[1].revents & POLLIN))
			net_wake_drain(c->notify_fd);
		if (pfd[0].revents)
			return 1;
	}
}

/* The user was too slow: 408 while a request is under way (then close),
 * a quiet close on an idle keep-alive connection. A request whose
 * response has begun can no longer be answered 408: it is cut (the
 * connection closes, and user_conn_thread_main() lets go of the
 * exchange, which resets the stream). */
static void
user_conn_timed_out(struct user_conn *c)
{
	bool in_body = !http1_parser_in_head(c->parser);
	const char *text = in_body ? "request body not received in time"
	                           : "request not received in time";

	c->req.keep_alive = false;
	if (!http1_parser_in_message(c->parser) || c->abandoned)
		return;
	if (c->req.response_started) {
		log_info("%s: request cut: %s", c->peer, text);
		return;
	}
	log_info("%s: 408 %s", c->peer, text);
	user_conn_send_simple(c, 408, NULL, "408 Request Timeout: %s", text);
}

/* Answers a request that cannot go on (bad input, limit, or a status the
 * router chose while parsing); the connection closes afterwards. */
static void
user_conn_fail_request(struct user_conn *c)
{
	int status = c->req.reject_status;
	const char *text = c->req.reject_text;

	c->req.keep_alive = false;
	c->linger = true; /* the rest of the request is unread */
	if (c->abandoned)
		return; /* answered, or cut, and logged where it failed */
	if (status == 0) {
		status = http1_parser_error_status(c->parser);
		text = http1_parser_error_text(c->parser);
	}
	log_info("%s: %d %s", c->peer, status, text);
	if (!c->req.response_started)
		user_conn_send_simple(c, status,
		                      c->req.reject_extra ? c->req.reject_extra
		                      : status == 503 ? "Retry-After: 1" : NULL,
		                      "%d %s: %s", status, headers_reason_phrase(status), text);
}

/* Feeds n bytes of input to the parser, answering each request it
 * completes. Returns 0 to read on, -1 to close the connection. */
/* tutorial: parse-loop */
static int
user_conn_parse(struct user_conn *c, size_t n, long long arrived_ms)
{
	for (size_t off = 0; off < n;) {
		ssize_t used = http1_parser_feed(c->parser, c->in + off, n - off);
		if (used < 0) {
			user_conn_fail_request(c);
			return -1;
		}
		if (c->req.head_started_ms == 0 && http1_parser_in_head(c->parser))
			c->req.head_started_ms = arrived_ms;
		off += (size_t)used;
		if (c->req.message_done && c->req.websocket) {
			/* What follows the head is no longer HTTP/1.1. */
			user_conn_serve_websocket(c, c->in + off, n - off);
			return -1;
		}
		if (c->req.message_done) {
			c->req.message_done = false; /* answered once */
			if (user_conn_answer(c) < 0)
				return -1;
		}
	}
	/* A head cut by the end of the buffer keeps its start time. */
	return 0;
}
/* tutorial: end */

/* Reads what the user sent next. The common case (between requests) is
 * one recv() whose timeout is the idle timeout, set once on the socket
 * (SO_RCVTIMEO); a request under way (its head or its body, each with a
 * timeout of its own), or a response moving meanwhile, goes through
 * poll() first.
 * Returns the bytes read, 0 at EOF, -ETIMEDOUT, or a negative code. */
/* tutorial: user-recv */
static ssize_t
user_conn_recv(struct user_conn *c)
{
	bool watch = c->req.ex != NULL && !c->req.response_done && !c->req.response_failed;
	ssize_t n;

	if (watch || http1_parser_in_message(c->parser)) {
		int rc = user_conn_wait_readable(c);
		if (rc <= 0)
			return rc == 0 ? -ETIMEDOUT : rc;
	}
	n = recv(c->fd, c->in, sizeof c->in, 0);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
	return n;
}
/* tutorial: end */

/* Reads and answers requests until the connection ends. Between
 * requests the connection is marked idle, so that a draining router can
 * wake it; a busy one finishes its request first. */
static void
user_conn_serve(struct user_conn *c)
{
	for (;;) {
		bool between = !http1_parser_in_message(c->parser);
		if (between && !router_conn_idle(c->r, c, true))
			return; /* the router is draining */
		ssize_t n = user_conn_recv(c);
		if (between)
			router_conn_idle(c->r, c, false);
		if (n == -ETIMEDOUT) {
			user_conn_timed_out(c);
			return;
		}
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			http1_parser_feed_eof(c->parser);
			return;
		}
		if (user_conn_parse(c, (size_t)n, now_ms()) < 0)
			return;
	}
}

/* Closing a socket with unread input makes the kernel send a reset,
 * which can destroy the error answer we just wrote (a 413 for a body the
 * user is still sending). So: say we are done writing, then read and drop
 * what still comes for a short while (RFC 9112 section 9.6). */
/* tutorial: linger */
static void
user_conn_linger(struct user_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	long long deadline = now_ms() + 1000;
	size_t drained = 0;

	shutdown(c->fd, SHUT_WR);
	while (drained < 1024 * 1024 && now_ms() < deadline &&
	       poll(&pfd, 1, (int)(deadline - now_ms())) > 0) {
		ssize_t n = recv(c->fd, c->in, sizeof c->in, 0);
		if (n <= 0)
			break;
		drained += (size_t)n;
	}
}
/* tutorial: end */

/* The user connection thread. */
static void *
user_conn_thread_main(void *arg)
{
	struct user_conn *c = arg;
	struct ptth_router *r = c->r;

	pthread_setname_np(pthread_self(), "ptth-user");
	user_conn_serve(c);
	user_conn_drop_exchange(c);
	request_record_end(r, &c->rec, c->peer); /* a request cut or refused */
	exchange_unref(c->spare);
	if (c->linger)
		user_conn_linger(c);
	router_conn_remove(r, c);
	close(c->fd);
	if (c->notify_fd >= 0)
		close(c->notify_fd);
	http1_parser_free(c->parser);
	free(c);
	router_thread_end(r);
	return NULL;
}

/* Answers 503 and the text on a connection that gets no thread of its
 * own; the caller closes it. This runs on the accept thread, which must
 * not wait on a user: the answer is short and fixed, small enough for a
 * new socket's send buffer, and the send timeout bounds the rest (a peer
 * that advertises no room). Logs the refusal once, with cause when it is
 * not NULL. */
static void
user_conn_refuse(struct user_conn *c, const char *text, const char *cause)
{
	char answer[512];
	int len = snprintf(answer, sizeof answer,
	                   "HTTP/1.1 503 Service Unavailable\r\n"
	                   "Content-Type: text/plain; charset=utf-8\r\n"
	                   "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n",
	                   strlen(text) + 1, text);

	log_info("%s: %s%s%s", c->peer, text, cause ? ": " : "", cause ? cause : "");
	net_set_send_timeout(c->fd, USER_REFUSE_SEND_MS);
	request_record_answer(&c->rec, 503, true);
	if (len > 0 && (size_t)len < sizeof answer &&
	    net_write_all(c->fd, answer, (size_t)len) == 0) /* best effort: closed next */
		c->rec.response_bytes = len;
	request_record_end(c->r, &c->rec, c->peer);
}

/* Starts c's thread, detached, with a stack of USER_STACK_SIZE.
 * Returns 0 or a negative code. */
/* tutorial: user-stack */
static int
user_conn_thread_create(pthread_t *thread, struct user_conn *c)
{
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);

	if (rc != 0)
		return -rc;
	rc = pthread_attr_setstacksize(&attr, USER_STACK_SIZE);
	if (rc == 0)
		rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (rc == 0)
		rc = pthread_create(thread, &attr, user_conn_thread_main, c);
	pthread_attr_destroy(&attr);
	return -rc;
}
/* tutorial: end */

/* Takes ownership of fd (an accepted user connection) and starts its
 * thread. On failure fd is closed. Returns 0; -ECONNREFUSED once the
 * user has been answered 503 (too many connections, or no thread could
 * be started) and the refusal logged; or another negative code (closed
 * without an answer). */
int
user_conn_start(struct ptth_router *r, int fd)
{
	/* Not calloc: zeroing the 128 KiB of buffers would make every page
	 * of them resident, where a connection serving small requests
	 * touches two. They are only ever read after being written. */
	struct user_conn *c = malloc(sizeof *c);
	pthread_t thread;
	int rc = -ENOMEM;

	if (c == NULL)
		goto out_close;
	memset(c, 0, offsetof(struct user_conn, in));
	c->r = r;
	c->fd = fd;
	user_request_begin(c);
	atomic_init(&c->idle, false);
	net_peer_name(fd, c->peer, sizeof c->peer);
	net_peer_ip(fd, c->client_ip, sizeof c->client_ip);
	net_local_name(fd, c->local_authority, sizeof c->local_authority);
	net_set_nodelay(fd);
	net_set_recv_timeout(fd, r->conf.idle_timeout_ms);
	net_set_send_timeout(fd, r->conf.send_timeout_ms);
	c->notify_fd = -1;
	c->parser = http1_parser_new(&user_conn_http1_callbacks, c, &r->conf.limits);
	if (c->parser == NULL)
		goto out_free;
	rc = router_conn_add(r, c);
	if (rc == -EMFILE) {
		user_conn_refuse(c, "503 too many user connections", NULL);
		rc = -ECONNREFUSED;
	}
	if (rc < 0)
		goto out_free;
	rc = user_conn_thread_create(&thread, c);
	if (rc < 0) {
		/* Out of threads or address space: a 503 rather than a bare
		 * close, so the user knows to come back. */
		router_conn_remove(r, c);
		router_thread_end(r);
		user_conn_refuse(c, "503 Service Unavailable: no thread for the connection",
		                 ptth_strerror(rc));
		rc = -ECONNREFUSED;
		goto out_free;
	}
	return 0;
out_free:
	http1_parser_free(c->parser);
	if (c->notify_fd >= 0)
		close(c->notify_fd);
	free(c);
out_close:
	close(fd);
	return rc;
}

/* Router thread: unblocks the connection's thread (recv and send fail),
 * which then ends on its own. Caller must hold r->mu, which keeps c alive. */
void
user_conn_shutdown(struct user_conn *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

/* The router's list of connections. Caller must hold r->mu for all three. */
void
user_conn_link(struct user_conn **head, struct user_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

void
user_conn_unlink(struct user_conn **head, struct user_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

struct user_conn *
user_conn_next(struct user_conn *c)
{
	return c->next;
}

void
user_conn_set_idle(struct user_conn *c, bool idle)
{
	atomic_store(&c->idle, idle);
}

bool
user_conn_is_idle(struct user_conn *c)
{
	return atomic_load(&c->idle);
}
