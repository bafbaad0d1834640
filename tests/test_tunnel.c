/*
 * test_tunnel.c -- unit tests for the tunnel thread pair: a router-side
 * tunnel (src/router/tunnel.c) talking HTTP/2 to a backend (src/backend/backend.c) over a
 * socketpair, with no HTTP/1 and no listening socket.
 *
 * Each test gets a router that is created but never started, and a live
 * tunnel: tunnel_start() on one end of the socketpair, backend_start_fd()
 * on the other, serving test_handler(). The test thread then plays the
 * user connection through the internal API, as src/router/user_conn.c does:
 * pool_pick(), exchange_new(), tunnel_submit(), exchange_write_out_all(),
 * exchange_wait(), exchange_read_in(), exchange_release() or
 * exchange_recycle(), tunnel_unref().
 *
 * Covered: status, body and fields of a response; a 1 MiB POST echoed
 * while it is being sent; 100 streams open at once on one tunnel; a slow
 * reader stalling only its own stream; cancelled streams giving their
 * flow-control window back; a handler's reset; a backend going away with
 * requests in flight; and ptth_router_stop() of a router never started.
 *
 * Two more fixtures put a raw HTTP/2 peer (struct raw_peer, driven by the
 * test thread itself) on one end of the socketpair, to see frames the
 * library's own peer would hide: a client in front of the backend, which
 * shows that a HEAD is answered by one HEADERS frame with END_STREAM and
 * no DATA (RFC 9110 section 9.3.2), and a rogue server behind the
 * router's tunnel, which sends DATA on a HEAD stream and gets
 * RST_STREAM PROTOCOL_ERROR back (RFC 9113 section 8.1.1).
 *
 * Handlers and reader threads only record what happened; the test thread
 * joins every thread it starts and asserts afterwards: cmocka's
 * assertions may fail only on the test's own thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>

#include "ptth.h"
#include "backend.h"
#include "exchange.h"
#include "lock.h"
#include "pool.h"
#include "router.h"
#include "tunnel.h"

#define MIB (1024 * 1024)
#define WAIT_MS 10000          /* bound for every wait that should be quick */
#define CONCURRENT 100         /* streams open at once in the gate test */
#define BACKEND_DRAIN_MS 200   /* the backend's graceful-stop window */

/* The byte at offset pos of every generated body: not periodic with any
 * small size, so a lost, repeated or misplaced chunk is caught. */
static unsigned char
pattern_byte(size_t pos)
{
	return (unsigned char)(((pos * 2654435761u) >> 13) ^ (pos / 251));
}

/* ---------------------------------------------------------------------
 * The backend's handler and what it records.
 */

struct backend_state {
	pthread_mutex_t mu;
	pthread_cond_t changed;
	/* guarded by mu: */
	int held;             /* handlers that reached /hold or /hold-body */
	int gate_entered;     /* handlers that reached /gate */
	int gate_timeouts;    /* /gate handlers that gave up waiting */
	int failures;         /* unexpected failures inside handlers */
	int writes_done;      /* /write3 handlers that returned */
};

static void
backend_state_note_failure(struct backend_state *bs)
{
	mutex_lock(&bs->mu);
	bs->failures++;
	mutex_unlock(&bs->mu);
}

/* Waits until *counter >= n, or WAIT_MS. Returns 0 or -ETIMEDOUT. */
static int
backend_state_wait(struct backend_state *bs, const int *counter, int n)
{
	struct timespec deadline = deadline_after_ms(WAIT_MS);
	int rc = 0;

	mutex_lock(&bs->mu);
	while (*counter < n && rc == 0)
		rc = cond_timedwait(&bs->changed, &bs->mu, &deadline);
	rc = *counter >= n ? 0 : -ETIMEDOUT;
	mutex_unlock(&bs->mu);
	return rc;
}

/* GET /bytes?n=N: N pattern bytes, in 16 KiB writes. A write fails when
 * the router cancels the stream; that ends the handler quietly. */
static void
handle_bytes(struct ptth_request *req, struct ptth_response *res)
{
	unsigned char buf[16 * 1024];
	size_t n = strtoul(ptth_request_query(req) + 2, NULL, 10); /* "n=" */
	char length[32];

	snprintf(length, sizeof length, "%zu", n);
	ptth_response_add_header(res, "content-length", length);
	for (size_t pos = 0; pos < n;) {
		size_t chunk = n - pos < sizeof buf ? n - pos : sizeof buf;
		for (size_t i = 0; i < chunk; i++)
			buf[i] = pattern_byte(pos + i);
		if (ptth_response_write(res, buf, chunk) < 0)
			return;
		pos += chunk;
	}
}

/* POST /echo: the request body back as it arrives. */
static void
handle_echo(struct backend_state *bs, struct ptth_request *req, struct ptth_response *res)
{
	char buf[16 * 1024];
	ssize_t n;

	ptth_response_add_header(res, "content-type", "application/octet-stream");
	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0) {
		if (ptth_response_write(res, buf, (size_t)n) < 0) {
			backend_state_note_failure(bs);
			return;
		}
	}
	if (n < 0)
		backend_state_note_failure(bs);
}

/* GET /gate?...: waits until CONCURRENT handlers are inside at once, then
 * answers with its query string. */
static void
handle_gate(struct backend_state *bs, struct ptth_request *req, struct ptth_response *res)
{
	const char *query = ptth_request_query(req);

	mutex_lock(&bs->mu);
	bs->gate_entered++;
	cond_broadcast(&bs->changed);
	mutex_unlock(&bs->mu);
	if (backend_state_wait(bs, &bs->gate_entered, CONCURRENT) < 0) {
		mutex_lock(&bs->mu);
		bs->gate_timeouts++;
		mutex_unlock(&bs->mu);
		ptth_response_send(res, 503, "text/plain", "gate", 4);
		return;
	}
	ptth_response_send(res, 200, "text/plain", query, strlen(query));
}

/* POST /hold and /hold-body: counted in held, then reads the request body
 * until it ends or fails (the test never finishes it). /hold-body sends
 * its head and some body first; /hold answers nothing. */
static void
handle_hold(struct backend_state *bs, struct ptth_request *req, struct ptth_response *res,
            bool send_body)
{
	char buf[4096];

	if (send_body && ptth_response_write(res, "partial", 7) < 0)
		backend_state_note_failure(bs);
	mutex_lock(&bs->mu);
	bs->held++;
	cond_broadcast(&bs->changed);
	mutex_unlock(&bs->mu);
	while (ptth_request_read(req, buf, sizeof buf) > 0)
		;
}

/* /write3: "abc" three times with Content-Length 9, then a trailer;
 * every call must succeed, for HEAD as for GET. */
static void
handle_write3(struct backend_state *bs, struct ptth_response *res)
{
	bool ok = ptth_response_add_header(res, "content-length", "9") == 0;

	for (int i = 0; i < 3; i++)
		ok = ptth_response_write(res, "abc", 3) == 0 && ok;
	ok = ptth_response_add_trailer(res, "x-checksum", "abc") == 0 && ok;
	if (!ok)
		backend_state_note_failure(bs);
	mutex_lock(&bs->mu);
	bs->writes_done++;
	cond_broadcast(&bs->changed);
	mutex_unlock(&bs->mu);
}

static void
test_handler(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct backend_state *bs = arg;
	const char *path = ptth_request_path(req);

	if (strcmp(path, "/foo") == 0) {
		ptth_response_send(res, 200, "text/plain", "bar", 3);
	} else if (strcmp(path, "/field") == 0) {
		ptth_response_add_header(res, "X-Test-Field", "hello");
		ptth_response_send(res, 201, "text/plain", "made", 4);
	} else if (strcmp(path, "/bytes") == 0) {
		handle_bytes(req, res);
	} else if (strcmp(path, "/echo") == 0) {
		handle_echo(bs, req, res);
	} else if (strcmp(path, "/gate") == 0) {
		handle_gate(bs, req, res);
	} else if (strcmp(path, "/write3") == 0) {
		handle_write3(bs, res);
	} else if (strcmp(path, "/reset") == 0) {
		ptth_response_reset(res);
	} else if (strcmp(path, "/hold") == 0 || strcmp(path, "/hold-body") == 0) {
		handle_hold(bs, req, res, path[5] == '-');
	} else {
		ptth_response_send(res, 404, "text/plain", "no", 2);
	}
}

/* ---------------------------------------------------------------------
 * The fixture: an unstarted router with one live tunnel to a backend.
 */

struct raw_peer;

struct fixture {
	struct ptth_router *r;
	struct ptth_backend *b;
	struct backend_state bs;
	struct raw_peer *peer;  /* the raw-peer fixtures only */
};

/* The router (created, never started) and the backend (not started)
 * every fixture begins with, in *state. Returns 0 or -1. */
static int
fixture_new(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct ptth_router_options ropts;
	struct ptth_backend_options bopts;

	*state = f;
	if (f == NULL)
		return -1;
	mutex_init(&f->bs.mu);
	cond_init(&f->bs.changed);
	ptth_router_options_init(&ropts);
	f->r = ptth_router_new(&ropts);
	ptth_backend_options_init(&bopts);
	bopts.router_addr = "socketpair"; /* never dialled: backend_start_fd */
	bopts.handler = test_handler;
	bopts.handler_arg = &f->bs;
	/* ptth_backend_stop() lets streams in flight finish for this long;
	 * the held requests of the backend-stop test never do. */
	bopts.drain_timeout_ms = BACKEND_DRAIN_MS;
	f->b = ptth_backend_new(&bopts);
	return f->r == NULL || f->b == NULL ? -1 : 0;
}

static int
fixture_setup(void **state)
{
	struct fixture *f;
	int sv[2];

	if (fixture_new(state) < 0)
		return -1;
	f = *state;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (tunnel_start(f->r, sv[0]) < 0) {
		close(sv[1]);
		return -1;
	}
	if (backend_start_fd(f->b, sv[1]) < 0)
		return -1;
	return ptth_router_wait_tunnels(f->r, 1, WAIT_MS);
}

/* ---------------------------------------------------------------------
 * A raw HTTP/2 peer: an nghttp2 session on one end of the socketpair,
 * driven by the test thread (raw_peer_pump_until), with HTTP messaging
 * checks off so that it can send, and report, what a well-behaved peer
 * would not. As a server it is a rogue backend that answers every
 * request 200 with Content-Length 3 and the body "bar" in three DATA
 * frames, HEAD included; for /data-first it writes one DATA frame,
 * "bar" with END_STREAM, and no HEADERS at all (nghttp2 would not send
 * that, so the frame is written by hand).
 */

#define RAW_STREAMS 8   /* streams a raw peer keeps records for */

#define RAW_NV(n, v) \
	{ (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* What a raw peer saw on one stream. */
struct raw_stream {
	int headers_frames;     /* response HEADERS frames (client) */
	uint8_t headers_flags;  /* flags of the first of them */
	char status[8];
	char content_length[32];
	int data_frames;        /* DATA frames with a payload (client) */
	size_t data_bytes;
	bool reset;             /* RST_STREAM arrived */
	uint32_t reset_code;
	bool closed;
	uint32_t close_code;
	int bar_sent;           /* bytes of "bar" sent (server) */
	char path[64];          /* the request's :path (server) */
};

struct raw_peer {
	int fd;
	nghttp2_session *session;
	struct raw_stream streams[RAW_STREAMS]; /* by (stream id / 2) % RAW_STREAMS */
	int requests;           /* request heads received (server) */
	int32_t last_request;
	int resets;             /* RST_STREAM frames received */
	int closed;             /* streams closed */
	int goaways;            /* GOAWAY frames received */
	uint32_t goaway_code;   /* the last one's error code */
	bool write_failed;      /* a frame written by hand did not go out */
};

static struct raw_stream *
raw_stream(struct raw_peer *rp, int32_t stream_id)
{
	return &rp->streams[(stream_id / 2) % RAW_STREAMS];
}

/* Implements nghttp2_data_source_read_callback. We use it to send "bar"
 * one byte per DATA frame, then end the stream. */
static ssize_t
raw_bar_read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                      size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                      void *user_data)
{
	struct raw_stream *st = raw_stream(user_data, stream_id);

	(void)session;
	(void)length; /* always at least 16 KiB */
	(void)source;
	buf[0] = (uint8_t)"bar"[st->bar_sent++];
	if (st->bar_sent == 3)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return 1;
}

/* Implements nghttp2_on_begin_headers_callback. We use it, as a server,
 * to forget an earlier stream that had the same record. */
static int
raw_on_begin_headers_callback(nghttp2_session *session, const nghttp2_frame *frame,
                              void *user_data)
{
	(void)session;
	if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		memset(raw_stream(user_data, frame->hd.stream_id), 0, sizeof(struct raw_stream));
	return 0;
}

/* Implements nghttp2_on_header_callback. We use it to keep the response
 * status and Content-Length, and a request's :path. */
static int
raw_on_header_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       const uint8_t *name, size_t namelen, const uint8_t *value,
                       size_t valuelen, uint8_t flags, void *user_data)
{
	struct raw_stream *st = raw_stream(user_data, frame->hd.stream_id);

	(void)session;
	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		if (namelen == 5 && memcmp(name, ":path", 5) == 0)
			snprintf(st->path, sizeof st->path, "%.*s", (int)valuelen, value);
		return 0;
	}
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		snprintf(st->status, sizeof st->status, "%.*s", (int)valuelen, value);
	if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
		snprintf(st->content_length, sizeof st->content_length, "%.*s",
		         (int)valuelen, value);
	return 0;
}

/* Writes a DATA frame (RFC 9113 section 6.1) carrying "bar" with
 * END_STREAM straight to the socket, behind the session's back. Our
 * SETTINGS went out before anything was read, so the frame may follow. */
static void
raw_write_data_frame(struct raw_peer *rp, int32_t stream_id)
{
	uint8_t frame[9 + 3] = { 0, 0, 3, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM,
	                         (uint8_t)(stream_id >> 24), (uint8_t)(stream_id >> 16),
	                         (uint8_t)(stream_id >> 8), (uint8_t)stream_id,
	                         'b', 'a', 'r' };

	if (send(rp->fd, frame, sizeof frame, MSG_NOSIGNAL) != (ssize_t)sizeof frame)
		rp->write_failed = true;
}

/* Implements nghttp2_on_frame_recv_callback. We use it to count frames,
 * and as a server to answer each request head with "bar". */
static int
raw_on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                           void *user_data)
{
	struct raw_peer *rp = user_data;
	struct raw_stream *st = raw_stream(rp, frame->hd.stream_id);
	nghttp2_nv nv[] = { RAW_NV(":status", "200"), RAW_NV("content-length", "3") };
	nghttp2_data_provider bar = { .read_callback = raw_bar_read_callback };

	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		rp->requests++;
		rp->last_request = frame->hd.stream_id;
		if (strcmp(st->path, "/data-first") == 0)
			raw_write_data_frame(rp, frame->hd.stream_id);
		else
			nghttp2_submit_response(session, frame->hd.stream_id, nv, 2, &bar);
	} else if (frame->hd.type == NGHTTP2_HEADERS) {
		if (st->headers_frames++ == 0)
			st->headers_flags = frame->hd.flags;
	} else if (frame->hd.type == NGHTTP2_DATA && frame->hd.length > 0) {
		st->data_frames++;
	} else if (frame->hd.type == NGHTTP2_RST_STREAM) {
		rp->resets++;
		st->reset = true;
		st->reset_code = frame->rst_stream.error_code;
	} else if (frame->hd.type == NGHTTP2_GOAWAY) {
		rp->goaways++;
		rp->goaway_code = frame->goaway.error_code;
	}
	return 0;
}

/* Implements nghttp2_on_data_chunk_recv_callback. We use it to count
 * body bytes. */
static int
raw_on_data_chunk_recv_callback(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                const uint8_t *data, size_t len, void *user_data)
{
	(void)session;
	(void)flags;
	(void)data;
	raw_stream(user_data, stream_id)->data_bytes += len;
	return 0;
}

/* Implements nghttp2_on_stream_close_callback. We use it to record the
 * end of each stream and its code. */
static int
raw_on_stream_close_callback(nghttp2_session *session, int32_t stream_id,
                             uint32_t error_code, void *user_data)
{
	struct raw_peer *rp = user_data;
	struct raw_stream *st = raw_stream(rp, stream_id);

	(void)session;
	rp->closed++;
	st->closed = true;
	st->close_code = error_code;
	return 0;
}

/* A raw peer on fd (taken over, closed by raw_peer_free) with its
 * SETTINGS queued: a client session, or a server one.
 * Returns NULL on failure (fd is closed then). */
static struct raw_peer *
raw_peer_new(int fd, bool server)
{
	struct raw_peer *rp = calloc(1, sizeof *rp);
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	int rc = -1;

	if (rp == NULL || nghttp2_session_callbacks_new(&cbs) != 0 ||
	    nghttp2_option_new(&opt) != 0)
		goto out;
	rp->fd = fd;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
	                                                        raw_on_begin_headers_callback);
	nghttp2_session_callbacks_set_on_header_callback(cbs, raw_on_header_callback);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, raw_on_frame_recv_callback);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	                                                          raw_on_data_chunk_recv_callback);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_on_stream_close_callback);
	nghttp2_option_set_no_http_messaging(opt, 1);
	rc = server ? nghttp2_session_server_new2(&rp->session, cbs, rp, opt)
	            : nghttp2_session_client_new2(&rp->session, cbs, rp, opt);
	if (rc == 0)
		rc = nghttp2_submit_settings(rp->session, NGHTTP2_FLAG_NONE, NULL, 0);
out:
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rc != 0) {
		if (rp != NULL && rp->session != NULL)
			nghttp2_session_del(rp->session);
		free(rp);
		close(fd);
		return NULL;
	}
	return rp;
}

static void
raw_peer_free(struct raw_peer *rp)
{
	if (rp == NULL)
		return;
	close(rp->fd);
	nghttp2_session_del(rp->session);
	free(rp);
}

/* Writes whatever the session has to send. Returns 0 or -1. */
static int
raw_peer_flush(struct raw_peer *rp)
{
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(rp->session, &data)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(rp->fd, data + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (w <= 0)
				return -1;
			off += w;
		}
	}
	return n < 0 ? -1 : 0;
}

/* Sends and receives until *counter (a field of rp) reaches n.
 * Returns 0, -ETIMEDOUT when nothing arrives for WAIT_MS, or -EPIPE
 * when the other end closed or broke the session. A write that fails
 * because the other end closed does not end the pump at once: what it
 * sent before closing (a GOAWAY) is still there to read. */
static int
raw_peer_pump_until(struct raw_peer *rp, const int *counter, int n)
{
	uint8_t buf[16384];
	bool closed = false;

	for (;;) {
		struct pollfd p = { .fd = rp->fd, .events = POLLIN };
		ssize_t got;

		if (!closed && (raw_peer_flush(rp) < 0 || rp->write_failed))
			closed = true;
		if (*counter >= n)
			return 0;
		if (poll(&p, 1, WAIT_MS) == 0)
			return -ETIMEDOUT;
		got = read(rp->fd, buf, sizeof buf);
		if (got <= 0 || nghttp2_session_mem_recv(rp->session, buf, (size_t)got) < 0)
			return -EPIPE;
	}
}

/* Client: sends a request with no body. Returns its stream id. */
static int32_t
raw_peer_request(struct raw_peer *rp, const char *method, const char *path)
{
	nghttp2_nv nv[] = { RAW_NV(":method", method), RAW_NV(":scheme", "http"),
	                    RAW_NV(":authority", "tunnel.test"), RAW_NV(":path", path) };
	int32_t id = nghttp2_submit_request(rp->session, NULL, nv, 4, NULL, NULL);

	assert_true(id > 0);
	memset(raw_stream(rp, id), 0, sizeof(struct raw_stream));
	return id;
}

/* The backend on one end of a socketpair, a raw client on the other:
 * the test plays the router. */
static int
raw_router_setup(void **state)
{
	struct fixture *f;
	int sv[2];

	if (fixture_new(state) < 0)
		return -1;
	f = *state;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	f->peer = raw_peer_new(sv[0], false);
	if (f->peer == NULL) {
		close(sv[1]);
		return -1;
	}
	return backend_start_fd(f->b, sv[1]);
}

/* A router tunnel on one end of a socketpair, a raw server on the other:
 * the test plays a rogue backend (and the router's user). */
static int
raw_backend_setup(void **state)
{
	struct fixture *f;
	int sv[2];

	if (fixture_new(state) < 0)
		return -1;
	f = *state;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	f->peer = raw_peer_new(sv[1], true);
	if (f->peer == NULL) {
		close(sv[0]);
		return -1;
	}
	if (tunnel_start(f->r, sv[0]) < 0)
		return -1;
	/* The raw server's SETTINGS: the router picks and counts a tunnel
	 * only once they arrived. */
	if (raw_peer_flush(f->peer) < 0)
		return -1;
	return ptth_router_wait_tunnels(f->r, 1, WAIT_MS);
}

/* The router's count of connection and tunnel threads still running. */
static int
router_threads(struct ptth_router *r)
{
	int n;

	mutex_lock(&r->mu);
	n = r->threads;
	mutex_unlock(&r->mu);
	return n;
}

/* Waits until every counted router thread has ended, or WAIT_MS.
 * Returns 0 or -ETIMEDOUT. */
static int
router_wait_threads_gone(struct ptth_router *r)
{
	struct timespec deadline = deadline_after_ms(WAIT_MS);
	int rc = 0;

	mutex_lock(&r->mu);
	while (r->threads > 0 && rc == 0)
		rc = cond_timedwait(&r->threads_done, &r->mu, &deadline);
	rc = r->threads == 0 ? 0 : -ETIMEDOUT;
	mutex_unlock(&r->mu);
	return rc;
}

/* Waits until the pool is empty, or WAIT_MS. Returns 0 or -ETIMEDOUT. */
static int
pool_wait_empty(struct pool *p)
{
	struct timespec deadline = deadline_after_ms(WAIT_MS);
	int rc = 0;

	mutex_lock(&p->mu);
	while (p->count > 0 && rc == 0)
		rc = cond_timedwait(&p->changed, &p->mu, &deadline);
	rc = p->count == 0 ? 0 : -ETIMEDOUT;
	mutex_unlock(&p->mu);
	return rc;
}

/* Frees the backend, whose closing socket ends the tunnel thread, then
 * the router, whose stop waits for that thread (it still uses the
 * router's pool and thread count) although the router was never started.
 * test_tunnel_router_stop_ends_tunnels_of_unstarted_router checks that
 * promise on its own, so a regression shows up there by name. */
static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	raw_peer_free(f->peer); /* its closing socket ends the thread at the other end */
	ptth_backend_free(f->b);
	ptth_router_free(f->r);
	cond_destroy(&f->bs.changed);
	mutex_destroy(&f->bs.mu);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------------
 * Playing the user connection.
 */

/* One request in progress: the exchange and the tunnel carrying it, each
 * with the reference user_conn.c would hold. */
struct request {
	struct exchange *ex;
	struct tunnel *t;
};

static void
add_field(struct header_list *l, const char *name, const char *value)
{
	assert_int_equal(header_list_add(l, name, strlen(name), value, strlen(value)), 0);
}

/* Picks a tunnel and queues a request on it, as user_conn_submit does.
 * Returns 0 or the code tunnel_submit() returned (nothing is held then). */
static int
request_try_start(struct fixture *f, const char *method, const char *path, bool has_body,
                  struct request *rq)
{
	int rc;

	rq->t = pool_pick(&f->r->pool, NULL);
	assert_non_null(rq->t);
	rq->ex = exchange_new(ROUTER_STREAM_WINDOW);
	assert_non_null(rq->ex);
	add_field(&rq->ex->out_head, ":method", method);
	add_field(&rq->ex->out_head, ":scheme", "http");
	add_field(&rq->ex->out_head, ":authority", "tunnel.test");
	add_field(&rq->ex->out_head, ":path", path);
	rq->ex->inbox = &rq->t->inbox;
	rq->ex->out_has_body = has_body;
	snprintf(rq->ex->peer, sizeof rq->ex->peer, "test");
	rc = tunnel_submit(rq->t, rq->ex); /* on success the tunnel holds its own reference */
	if (rc == 0)
		atomic_fetch_add(&rq->t->in_flight, 1);
	if (rc < 0) {
		exchange_unref(rq->ex);
		tunnel_unref(rq->t);
		rq->ex = NULL;
		rq->t = NULL;
	}
	return rc;
}

static void
request_start(struct fixture *f, const char *method, const char *path, bool has_body,
              struct request *rq)
{
	assert_int_equal(request_try_start(f, method, path, has_body, rq), 0);
}

/* Lets go of the request as user_conn_drop_exchange does: a stream that
 * is not over yet is reset. */
static void
request_end(struct request *rq)
{
	exchange_release(rq->ex, false);
	atomic_fetch_sub(&rq->t->in_flight, 1);
	tunnel_unref(rq->t);
	rq->ex = NULL;
	rq->t = NULL;
}

/* Reads the whole response body into buf (at most cap bytes; more is an
 * error). Returns the last exchange_read_in() result: 0 at a clean end,
 * else the negative code; *len is what was read. */
static ssize_t
read_body(struct exchange *ex, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	for (;;) {
		char scratch[1];
		char *dst = *len < cap ? buf + *len : scratch;
		size_t room = *len < cap ? cap - *len : sizeof scratch;
		n = exchange_read_in(ex, dst, room, true);
		if (n <= 0)
			return n;
		if (dst == scratch)
			return -EOVERFLOW;
		*len += (size_t)n;
	}
}

/* Reads the whole response body, checking it against pattern_byte().
 * Returns like read_body(); *len is the bytes read, *bad the first
 * offset that did not match or SIZE_MAX. */
static ssize_t
read_pattern_body(struct exchange *ex, size_t *len, size_t *bad)
{
	char buf[32 * 1024];
	ssize_t n;

	*len = 0;
	*bad = SIZE_MAX;
	while ((n = exchange_read_in(ex, buf, sizeof buf, true)) > 0) {
		for (size_t i = 0; i < (size_t)n && *bad == SIZE_MAX; i++)
			if ((unsigned char)buf[i] != pattern_byte(*len + i))
				*bad = *len + i;
		*len += (size_t)n;
	}
	return n;
}

/* Sends a GET for path and checks a 200 with exactly body. */
static void
get_expect(struct fixture *f, const char *path, const char *body)
{
	struct request rq;
	char buf[256];
	size_t len;

	request_start(f, "GET", path, false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(rq.ex->in_status, 200);
	assert_int_equal(read_body(rq.ex, buf, sizeof buf, &len), 0);
	assert_int_equal(len, strlen(body));
	assert_memory_equal(buf, body, len);
	request_end(&rq);
}

/* Sends GET /bytes?n=size and checks every byte. */
static void
get_bytes_expect(struct fixture *f, size_t size)
{
	struct request rq;
	char path[64];
	size_t len, bad;

	snprintf(path, sizeof path, "/bytes?n=%zu", size);
	request_start(f, "GET", path, false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(rq.ex->in_status, 200);
	assert_int_equal(read_pattern_body(rq.ex, &len, &bad), 0);
	assert_int_equal(len, size);
	assert_int_equal(bad, SIZE_MAX);
	request_end(&rq);
}

/* Waits until the exchange's in pipe holds at least n bytes or the
 * stream is over. Returns the bytes waiting, or -ETIMEDOUT. */
static ssize_t
wait_in_pipe(struct exchange *ex, size_t n)
{
	struct timespec deadline = deadline_after_ms(WAIT_MS);
	ssize_t rc = 0;

	mutex_lock(&ex->mu);
	while (ex->in.len < n && !ex->closed && rc == 0)
		rc = cond_timedwait(&ex->changed, &ex->mu, &deadline);
	rc = (ex->in.len >= n || ex->closed) ? (ssize_t)ex->in.len : -ETIMEDOUT;
	mutex_unlock(&ex->mu);
	return rc;
}

/* Raw-backend fixture: a GET for path through the tunnel gets 200 and
 * body, with no reset: the tunnel still serves. */
static void
get_expect_raw(struct fixture *f, const char *path, const char *body)
{
	struct raw_peer *rp = f->peer;
	int resets = rp->resets, closed = rp->closed;
	struct request rq;
	char buf[256];
	size_t len;

	request_start(f, "GET", path, false, &rq);
	assert_int_equal(raw_peer_pump_until(rp, &rp->closed, closed + 1), 0);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(rq.ex->in_status, 200);
	assert_int_equal(read_body(rq.ex, buf, sizeof buf, &len), 0);
	assert_int_equal(len, strlen(body));
	assert_memory_equal(buf, body, len);
	request_end(&rq);
	assert_int_equal(rp->resets, resets);
	assert_int_equal(ptth_router_tunnel_count(f->r), 1);
}

/* ---------------------------------------------------------------------
 * The library's log, which goes to stderr, caught in a file for a while.
 */

struct log_capture {
	FILE *file;
	int saved_stderr;
};

static void
log_capture_begin(struct log_capture *lc)
{
	lc->file = tmpfile();
	assert_non_null(lc->file);
	fflush(stderr);
	lc->saved_stderr = dup(STDERR_FILENO);
	assert_true(lc->saved_stderr >= 0);
	assert_true(dup2(fileno(lc->file), STDERR_FILENO) >= 0);
}

/* Puts stderr back and returns how many captured lines contain needle. */
static int
log_capture_end(struct log_capture *lc, const char *needle)
{
	char line[2048];
	int count = 0;

	fflush(stderr);
	assert_true(dup2(lc->saved_stderr, STDERR_FILENO) >= 0);
	close(lc->saved_stderr);
	rewind(lc->file);
	while (fgets(line, sizeof line, lc->file) != NULL) {
		fputs(line, stderr); /* still shown, after the fact */
		count += strstr(line, needle) != NULL;
	}
	fclose(lc->file);
	return count;
}

/* ---------------------------------------------------------------------
 * The tests.
 */

static void
test_tunnel_get_returns_status_and_body(void **state)
{
	struct fixture *f = *state;

	get_expect(f, "/foo", "bar");
	assert_int_equal(ptth_router_tunnel_count(f->r), 1);
}

/* Waits (bounded) until the test thread holds the only reference to ex:
 * the tunnel thread drops the stream's and its wake-up batch's right
 * after the last change it reports. A reference count offers nothing to
 * wait on, so this looks every millisecond. Returns true once alone. */
static bool
wait_sole_owner(struct exchange *ex)
{
	for (int ms = 0; ms < WAIT_MS; ms++) {
		if (atomic_load(&ex->refs) == 1)
			return true;
		usleep(1000);
	}
	return false;
}

/* A user connection keeps its exchange for the next request
 * (exchange_recycle): emptied of the last request, holding on to its
 * storage, and as good as new on the tunnel. */
static void
test_tunnel_recycled_exchange_serves_the_next_request(void **state)
{
	struct fixture *f = *state;
	struct request rq;
	struct exchange *ex;
	char buf[256];
	size_t len;

	request_start(f, "GET", "/foo", false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(read_body(rq.ex, buf, sizeof buf, &len), 0);
	assert_true(wait_sole_owner(rq.ex));
	ex = exchange_recycle(rq.ex);
	assert_ptr_equal(ex, rq.ex);
	assert_int_equal(atomic_load(&ex->refs), 1);
	assert_int_equal(ex->out_head.count, 0);
	assert_non_null(ex->out_head.items);  /* storage kept */
	assert_int_equal(ex->in_head.count, 0);
	assert_non_null(ex->in.buf);          /* the ring kept, empty */
	assert_int_equal(ex->in.len, 0);
	assert_false(ex->in.finished);
	assert_false(ex->in_head_done);
	assert_false(ex->closed);
	assert_false(ex->released);
	assert_int_equal(ex->error, 0);
	assert_int_equal(ex->in_status, 0);
	assert_int_equal(ex->stream_id, 0);
	assert_null(ex->batch);
	atomic_fetch_sub(&rq.t->in_flight, 1);
	tunnel_unref(rq.t);

	/* The next request on it, as user_conn_on_head() sends it. */
	rq.t = pool_pick(&f->r->pool, NULL);
	rq.ex = ex;
	add_field(&ex->out_head, ":method", "GET");
	add_field(&ex->out_head, ":scheme", "http");
	add_field(&ex->out_head, ":authority", "tunnel.test");
	add_field(&ex->out_head, ":path", "/foo");
	ex->inbox = &rq.t->inbox;
	assert_int_equal(tunnel_submit(rq.t, ex), 0);
	atomic_fetch_add(&rq.t->in_flight, 1);
	assert_int_equal(exchange_wait(ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(ex->in_status, 200);
	assert_int_equal(read_body(ex, buf, sizeof buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "bar", 3);
	request_end(&rq);
}

/* An exchange another thread still holds is released, not recycled. */
static void
test_tunnel_exchange_held_elsewhere_is_not_recycled(void **state)
{
	struct exchange *ex = exchange_new(ROUTER_STREAM_WINDOW);

	(void)state;
	assert_non_null(ex);
	exchange_ref(ex); /* the tunnel thread's, say, on a stream now over */
	exchange_close(ex, NULL, 0);
	assert_null(exchange_recycle(ex));
	assert_int_equal(atomic_load(&ex->refs), 1);
	assert_true(ex->released);
	exchange_unref(ex);
}

static void
test_tunnel_response_fields_reach_the_exchange(void **state)
{
	struct fixture *f = *state;
	struct request rq;
	char buf[64];
	size_t len;

	request_start(f, "GET", "/field", false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_true(exchange_in_head_done(rq.ex));
	assert_int_equal(rq.ex->in_status, 201);
	assert_string_equal(header_list_get(&rq.ex->in_head, ":status"), "201");
	assert_non_null(header_list_get(&rq.ex->in_head, "x-test-field"));
	assert_string_equal(header_list_get(&rq.ex->in_head, "x-test-field"), "hello");
	assert_string_equal(header_list_get(&rq.ex->in_head, "content-type"), "text/plain");
	assert_string_equal(header_list_get(&rq.ex->in_head, "content-length"), "4");
	assert_int_equal(read_body(rq.ex, buf, sizeof buf, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "made", 4);
	request_end(&rq);
}

/* What the reader thread of an echo saw. */
struct echo_reader {
	struct exchange *ex;
	char *buf;
	size_t cap;
	int head_rc;
	int status;
	size_t len;
	ssize_t end_rc;
};

static void *
echo_reader_thread_main(void *arg)
{
	struct echo_reader *er = arg;

	er->head_rc = exchange_wait(er->ex, EX_WAIT_IN_HEAD);
	if (er->head_rc < 0)
		return NULL;
	er->status = er->ex->in_status;
	er->end_rc = read_body(er->ex, er->buf, er->cap, &er->len);
	return NULL;
}

/* 1 MiB is four stream windows: the echo can only finish if the response
 * is read while the request is still being written. */
static void
test_tunnel_post_body_is_echoed_byte_identical(void **state)
{
	struct fixture *f = *state;
	char *body = malloc(MIB);
	struct echo_reader er = { .cap = MIB, .head_rc = -1, .end_rc = -1 };
	struct request rq;
	pthread_t reader;
	int write_rc;

	assert_non_null(body);
	er.buf = malloc(MIB);
	assert_non_null(er.buf);
	for (size_t i = 0; i < MIB; i++)
		body[i] = (char)pattern_byte(i);
	request_start(f, "POST", "/echo", true, &rq);
	er.ex = rq.ex;
	assert_int_equal(pthread_create(&reader, NULL, echo_reader_thread_main, &er), 0);
	write_rc = exchange_write_out_all(rq.ex, body, MIB);
	exchange_finish_out(rq.ex);
	assert_int_equal(pthread_join(reader, NULL), 0);
	assert_int_equal(write_rc, 0);
	assert_int_equal(er.head_rc, 0);
	assert_int_equal(er.status, 200);
	assert_int_equal(er.end_rc, 0);
	assert_int_equal(er.len, MIB);
	assert_memory_equal(er.buf, body, MIB);
	request_end(&rq);
	assert_int_equal(f->bs.failures, 0);
	free(er.buf);
	free(body);
}

/* CONCURRENT streams on one tunnel, all open at the same time: no
 * handler answers until every one of them has started. Each takes a
 * stream slot, and gives it back when its stream closes. */
static void
test_tunnel_carries_100_concurrent_exchanges(void **state)
{
	struct fixture *f = *state;
	struct request rq[CONCURRENT];
	struct tunnel *t;
	int completed = 0;

	for (int i = 0; i < CONCURRENT; i++) {
		char path[32];
		snprintf(path, sizeof path, "/gate?i=%d", i);
		request_start(f, "GET", path, false, &rq[i]);
	}
	t = rq[0].t;
	tunnel_ref(t);
	for (int i = 1; i < CONCURRENT; i++)
		assert_ptr_equal(rq[i].t, t); /* one tunnel carries them all */
	assert_int_equal(atomic_load(&t->in_flight), CONCURRENT);
	/* The pick sees the backend's limit and a slot per request. */
	assert_int_equal(atomic_load(&t->peer_max_streams), BACKEND_MAX_STREAMS);
	assert_int_equal(atomic_load(&t->streams_used), CONCURRENT);
	for (int i = 0; i < CONCURRENT; i++) {
		char expect[32], buf[64];
		size_t len;

		snprintf(expect, sizeof expect, "i=%d", i);
		assert_int_equal(exchange_wait(rq[i].ex, EX_WAIT_IN_HEAD), 0);
		assert_int_equal(rq[i].ex->in_status, 200);
		assert_int_equal(read_body(rq[i].ex, buf, sizeof buf, &len), 0);
		assert_int_equal(len, strlen(expect));
		assert_memory_equal(buf, expect, len);
		request_end(&rq[i]);
		completed++;
	}
	assert_int_equal(completed, CONCURRENT);
	assert_int_equal(atomic_load(&t->in_flight), 0);
	/* Each stream gave its slot back as it closed, before its user woke. */
	assert_int_equal(atomic_load(&t->streams_used), 0);
	tunnel_unref(t);
	mutex_lock(&f->bs.mu);
	assert_int_equal(f->bs.gate_entered, CONCURRENT);
	assert_int_equal(f->bs.gate_timeouts, 0);
	mutex_unlock(&f->bs.mu);
}

/* A 4 MiB response nobody reads fills its stream window and stops; a
 * second request on the same tunnel still completes meanwhile, and the
 * first then finishes intact. */
static void
test_tunnel_slow_reader_does_not_stall_other_exchanges(void **state)
{
	struct fixture *f = *state;
	struct request slow;
	size_t len, bad;

	request_start(f, "GET", "/bytes?n=4194304", false, &slow);
	assert_int_equal(exchange_wait(slow.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(slow.ex->in_status, 200);
	/* The whole window arrived and nothing was read: the backend is
	 * blocked on flow control for this stream. */
	assert_int_equal(wait_in_pipe(slow.ex, ROUTER_STREAM_WINDOW), ROUTER_STREAM_WINDOW);

	get_expect(f, "/foo", "bar");
	get_bytes_expect(f, 300 * 1024); /* more than one window, on the same tunnel */

	mutex_lock(&slow.ex->mu);
	assert_false(slow.ex->in.finished);
	assert_false(slow.ex->closed);
	assert_int_equal(slow.ex->in.len, ROUTER_STREAM_WINDOW);
	mutex_unlock(&slow.ex->mu);
	assert_int_equal(read_pattern_body(slow.ex, &len, &bad), 0);
	assert_int_equal(len, 4 * MIB);
	assert_int_equal(bad, SIZE_MAX);
	request_end(&slow);
}

/* Requests given up at every stage leave the tunnel serving. */
static void
test_tunnel_cancelled_exchange_leaves_tunnel_usable(void **state)
{
	struct fixture *f = *state;
	struct request rq;
	char buf[1000];

	/* Before the tunnel thread has even seen it. */
	request_start(f, "GET", "/bytes?n=1048576", false, &rq);
	request_end(&rq);
	get_expect(f, "/foo", "bar");
	/* With the head in and part of the body read. */
	request_start(f, "GET", "/bytes?n=1048576", false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_true(exchange_read_in(rq.ex, buf, sizeof buf, true) > 0);
	request_end(&rq);
	get_expect(f, "/foo", "bar");
	/* In the middle of sending a request body. */
	request_start(f, "POST", "/echo", true, &rq);
	memset(buf, 'x', sizeof buf);
	assert_int_equal(exchange_write_out_all(rq.ex, buf, sizeof buf), 0);
	request_end(&rq);
	get_expect(f, "/foo", "bar");
	assert_int_equal(ptth_router_tunnel_count(f->r), 1);
}

/* Each cancelled stream had a full window of bytes delivered and never
 * read; they must all be handed back to the connection window, or the
 * tunnel would eventually stop carrying anything. Limit: the router opens
 * its connection window to 1 GiB (tunnel_session_new), so the 5 MiB that
 * 20 cancels could leak would not stall the last request. This test shows
 * the tunnel keeps serving after many cancels of full streams; a small
 * leak of the connection window would go unnoticed here. */
static void
test_tunnel_cancelled_exchanges_do_not_leak_connection_window(void **state)
{
	enum { CANCELS = 20 };
	struct fixture *f = *state;

	for (int i = 0; i < CANCELS; i++) {
		struct request rq;

		request_start(f, "GET", "/bytes?n=1048576", false, &rq);
		assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
		assert_int_equal(wait_in_pipe(rq.ex, ROUTER_STREAM_WINDOW), ROUTER_STREAM_WINDOW);
		request_end(&rq);
	}
	get_bytes_expect(f, MIB);
	assert_int_equal(ptth_router_tunnel_count(f->r), 1);
}

static void
test_tunnel_handler_reset_fails_the_exchange(void **state)
{
	struct fixture *f = *state;
	struct request rq;
	char buf[16];

	request_start(f, "GET", "/reset", false, &rq);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), PTTH_ERESET);
	assert_false(exchange_in_head_done(rq.ex));
	assert_int_equal(exchange_read_in(rq.ex, buf, sizeof buf, true), PTTH_ERESET);
	request_end(&rq);
	/* Only that stream was reset. */
	get_expect(f, "/foo", "bar");
}

/* The backend stops while two requests are in flight, one still waiting
 * for its head and one in the middle of its body, and neither finishes
 * within the backend's drain window: both end with an error instead of
 * hanging, and the tunnel leaves the pool. */
static void
test_tunnel_backend_stop_fails_in_flight_exchanges(void **state)
{
	struct fixture *f = *state;
	struct request no_head, mid_body, late;
	char buf[64];
	int head_rc, body_rc;
	ssize_t n;

	request_start(f, "POST", "/hold", true, &no_head);
	request_start(f, "POST", "/hold-body", true, &mid_body);
	assert_int_equal(backend_state_wait(&f->bs, &f->bs.held, 2), 0);
	assert_int_equal(exchange_wait(mid_body.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(mid_body.ex->in_status, 200);
	n = exchange_read_in(mid_body.ex, buf, sizeof buf, true);
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "partial", 7);

	ptth_backend_stop(f->b);

	head_rc = exchange_wait(no_head.ex, EX_WAIT_IN_HEAD);
	body_rc = (int)exchange_read_in(mid_body.ex, buf, sizeof buf, true);
	assert_true(head_rc < 0);
	assert_true(body_rc < 0); /* not 0: the body must not look complete */
	print_message("in-flight exchanges ended with: %s / %s\n", ptth_strerror(head_rc),
	              ptth_strerror(body_rc));
	assert_false(exchange_in_head_done(no_head.ex));
	/* Both stream slots came back before their users woke. */
	assert_int_equal(atomic_load(&no_head.t->streams_used), 0);
	/* Writing the request body now fails too. */
	assert_true(exchange_write_out_all(mid_body.ex, "x", 1) < 0);
	assert_int_equal(pool_wait_empty(&f->r->pool), 0);
	assert_int_equal(ptth_router_tunnel_count(f->r), 0);
	assert_null(pool_pick(&f->r->pool, NULL));
	/* The dead tunnel refuses new work instead of queueing it forever. */
	late.t = no_head.t;
	late.ex = exchange_new(ROUTER_STREAM_WINDOW);
	assert_non_null(late.ex);
	late.ex->inbox = &late.t->inbox;
	atomic_fetch_add(&late.t->streams_used, 1); /* the slot a pick would take */
	assert_int_equal(tunnel_submit(late.t, late.ex), -EPIPE);
	assert_int_equal(atomic_load(&late.t->streams_used), 0); /* given back */
	exchange_unref(late.ex);
	request_end(&no_head);
	request_end(&mid_body);
	assert_int_equal(router_wait_threads_gone(f->r), 0);
	assert_int_equal(f->bs.failures, 0);
}

/* RFC 9110 section 9.3.2: a HEAD response is the GET response without
 * its content. Whatever the handler writes, the backend sends one
 * HEADERS frame with END_STREAM, keeps the Content-Length the handler
 * set, sends no DATA, and every ptth_response_ call still succeeds. A
 * GET for the same paths, on the same tunnel, still gets its body. */
static void
test_tunnel_backend_answers_head_with_one_headers_frame(void **state)
{
	struct fixture *f = *state;
	struct raw_peer *rp = f->peer;
	int32_t head_foo = raw_peer_request(rp, "HEAD", "/foo");
	int32_t head_write3 = raw_peer_request(rp, "HEAD", "/write3");
	int32_t get_write3 = raw_peer_request(rp, "GET", "/write3");
	const struct { int32_t id; const char *length; size_t body; } expect[] = {
		{ head_foo, "3", 0 }, { head_write3, "9", 0 }, { get_write3, "9", 9 },
	};

	assert_int_equal(raw_peer_pump_until(rp, &rp->closed, 3), 0);
	for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
		struct raw_stream *st = raw_stream(rp, expect[i].id);
		bool head = expect[i].body == 0;

		print_message("stream %d: %d HEADERS (flags 0x%x), %d DATA, %zu bytes\n",
		              expect[i].id, st->headers_frames, st->headers_flags,
		              st->data_frames, st->data_bytes);
		assert_true(st->closed);
		assert_int_equal(st->close_code, NGHTTP2_NO_ERROR);
		assert_false(st->reset);
		assert_string_equal(st->status, "200");
		assert_string_equal(st->content_length, expect[i].length);
		assert_int_equal(st->data_bytes, expect[i].body);
		if (head) {
			assert_int_equal(st->headers_frames, 1);
			assert_true(st->headers_flags & NGHTTP2_FLAG_END_STREAM);
			assert_int_equal(st->data_frames, 0);
		}
	}
	assert_int_equal(backend_state_wait(&f->bs, &f->bs.writes_done, 2), 0);
	assert_int_equal(f->bs.failures, 0);
}

/* RFC 9113 section 8.1.1: DATA on a HEAD stream is a malformed response.
 * The router resets that stream with PROTOCOL_ERROR and logs it once
 * (the body came in three DATA frames); its user has the head, and
 * nothing else (a HEAD response has no body anyway); the tunnel carries
 * on. */
static void
test_tunnel_data_on_head_stream_is_reset_with_protocol_error(void **state)
{
	struct fixture *f = *state;
	struct raw_peer *rp = f->peer;
	struct log_capture lc;
	struct raw_stream *st;
	struct request rq;
	char buf[64];
	int rc, logged;

	log_capture_begin(&lc);
	request_start(f, "HEAD", "/foo", false, &rq);
	rc = raw_peer_pump_until(rp, &rp->resets, 1);
	logged = log_capture_end(&lc, "DATA on a HEAD request");
	assert_int_equal(rc, 0);
	assert_int_equal(logged, 1);
	st = raw_stream(rp, rp->last_request);
	assert_true(st->reset);
	assert_int_equal(st->reset_code, NGHTTP2_PROTOCOL_ERROR);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), 0);
	assert_int_equal(rq.ex->in_status, 200);
	assert_string_equal(header_list_get(&rq.ex->in_head, "content-length"), "3");
	assert_int_equal(exchange_read_in(rq.ex, buf, sizeof buf, true), PTTH_ERESET);
	request_end(&rq);

	get_expect_raw(f, "/foo", "bar");
}

/* DATA before any head is worse: the stream has not opened on the
 * router's side, so it is a connection error (RFC 9113 section 5.4.1).
 * The tunnel ends with GOAWAY PROTOCOL_ERROR and leaves the pool, and
 * the request fails without a head (its user gets a 502). */
static void
test_tunnel_data_before_the_head_on_head_stream_ends_the_tunnel(void **state)
{
	struct fixture *f = *state;
	struct raw_peer *rp = f->peer;
	struct request rq;

	request_start(f, "HEAD", "/data-first", false, &rq);
	assert_int_equal(raw_peer_pump_until(rp, &rp->goaways, 1), 0);
	assert_int_equal(rp->goaway_code, NGHTTP2_PROTOCOL_ERROR);
	assert_int_equal(exchange_wait(rq.ex, EX_WAIT_IN_HEAD), PTTH_ECLOSED);
	assert_false(exchange_in_head_done(rq.ex));
	request_end(&rq);
	assert_int_equal(pool_wait_empty(&f->r->pool), 0);
}

/* ptth_router_stop() promises to close every tunnel and wait for every
 * thread the router counted, and tunnel_start() counts the tunnel thread
 * even when the router was never started. If stop returned early for such
 * a router (as it did before the stop rework), the tunnel thread would go
 * on running, and the ptth_router_free() that follows would free the pool
 * and the lock that thread still uses. */
static void
test_tunnel_router_stop_ends_tunnels_of_unstarted_router(void **state)
{
	struct fixture *f = *state;
	int count, threads, backend_rc = -1;

	/* One round trip first: the preface exchange is over, so the backend
	 * has nothing left to write when the tunnel closes under it. */
	get_expect(f, "/foo", "bar");
	ptth_router_stop(f->r);
	count = ptth_router_tunnel_count(f->r);
	threads = router_threads(f->r);
	if (count == 0 && threads == 0) {
		/* The router closed the tunnel: the backend sees a clean end. */
		backend_rc = ptth_backend_wait(f->b);
	} else {
		print_message("BUG: ptth_router_stop() on a router never started left %d "
		              "tunnel(s) listed and %d thread(s) running\n", count, threads);
		/* Let the teardown free the router safely all the same: end the
		 * tunnel from the backend side and wait for its thread. */
		ptth_backend_stop(f->b);
		router_wait_threads_gone(f->r);
	}
	assert_int_equal(count, 0);
	assert_int_equal(threads, 0);
	assert_int_equal(backend_rc, 0);
	/* Safe to call twice. */
	ptth_router_stop(f->r);
	assert_int_equal(router_threads(f->r), 0);
}

#define TUNNEL_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)
#define RAW_ROUTER_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, raw_router_setup, fixture_teardown)
#define RAW_BACKEND_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, raw_backend_setup, fixture_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TUNNEL_TEST(test_tunnel_get_returns_status_and_body),
		TUNNEL_TEST(test_tunnel_response_fields_reach_the_exchange),
		TUNNEL_TEST(test_tunnel_recycled_exchange_serves_the_next_request),
		cmocka_unit_test(test_tunnel_exchange_held_elsewhere_is_not_recycled),
		TUNNEL_TEST(test_tunnel_post_body_is_echoed_byte_identical),
		TUNNEL_TEST(test_tunnel_carries_100_concurrent_exchanges),
		TUNNEL_TEST(test_tunnel_slow_reader_does_not_stall_other_exchanges),
		TUNNEL_TEST(test_tunnel_cancelled_exchange_leaves_tunnel_usable),
		TUNNEL_TEST(test_tunnel_cancelled_exchanges_do_not_leak_connection_window),
		TUNNEL_TEST(test_tunnel_handler_reset_fails_the_exchange),
		TUNNEL_TEST(test_tunnel_backend_stop_fails_in_flight_exchanges),
		TUNNEL_TEST(test_tunnel_router_stop_ends_tunnels_of_unstarted_router),
		RAW_ROUTER_TEST(test_tunnel_backend_answers_head_with_one_headers_frame),
		RAW_BACKEND_TEST(test_tunnel_data_on_head_stream_is_reset_with_protocol_error),
		RAW_BACKEND_TEST(test_tunnel_data_before_the_head_on_head_stream_ends_the_tunnel),
	};

	ptth_log_set_verbose(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
