/*
 * backend_conn.c -- one tunnel on the backend side: a TCP connection to
 * the router and the HTTP/2 server session spoken on it.
 *
 * Owns:    the socket (closed when the tunnel ends), the nghttp2 server
 *          session, and one reference on each exchange from its first
 *          HEADERS frame to the stream's close.
 * Threads: backend_conn_serve() runs on the slot thread that dialled
 *          ("ptth-backend-N"), the only thread that calls into the session.
 *          Handlers on worker threads reach it only through exchanges and
 *          this connection's inbox (kicks); the connection is reference
 *          counted so that a late kick never lands in freed memory.
 * Locks:   none of its own; the inbox and each exchange have theirs, and
 *          none is held while calling nghttp2.
 * Interface:
 *   - backend_conn_new() + backend_conn_serve(): serve until the router
 *     closes the tunnel, the tunnel breaks, a PING goes unanswered, or
 *     ptth_backend_stop() asks for a graceful end (GOAWAY, then the open
 *     streams finish, bounded by drain_timeout_ms);
 *   - request HEADERS start a handler (handler_call_start); its response
 *     head arrives as a kick and is submitted here;
 *   - our SETTINGS announce extended CONNECT (RFC 8441): a WebSocket
 *     arrives as a CONNECT stream whose two bodies the handler uses as a
 *     byte pipe each way;
 *   - with the trace option, the callbacks print every frame (trace.c).
 * Tutorial: "HTTP/2 in ten minutes", "The backend answers".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>

#include "backend.h"
#include "exchange.h"
#include "keepalive.h"
#include "lock.h"
#include "net.h"
#include "session_io.h"
#include "trace.h"

/* Everything the tunnel thread keeps for itself, on its own stack. */
struct conn_thread {
	struct backend_conn *conn;
	nghttp2_session *session;
	struct session_io io;
	struct keepalive ka;
	struct exchange *open;
	size_t open_count;
	struct exchange **kicked;
	size_t kicked_alloc;
	long long drain_deadline_ms;  /* set once GOAWAY was sent; else 0 */
	struct exchange_batch batch;  /* handlers to wake after this pass */
	struct trace trace;           /* opts.trace: this tunnel's frames */
};

void
backend_conn_ref(struct backend_conn *conn)
{
	atomic_fetch_add(&conn->refs, 1);
}

void
backend_conn_unref(struct backend_conn *conn)
{
	if (atomic_fetch_sub(&conn->refs, 1) != 1)
		return;
	inbox_destroy(&conn->inbox);
	free(conn);
}

/* Wraps a connected socket. Takes ownership of fd (closed on failure).
 * Returns NULL when out of memory. */
struct backend_conn *
backend_conn_new(struct ptth_backend *b, int fd, int slot)
{
	struct backend_conn *conn = calloc(1, sizeof *conn);

	if (conn == NULL || inbox_init(&conn->inbox, 1) < 0) {
		free(conn);
		close(fd);
		return NULL;
	}
	atomic_init(&conn->refs, 1);
	conn->b = b;
	conn->fd = fd;
	conn->slot = slot;
	net_set_nodelay(fd);
	net_set_keepalive(fd);
	return conn;
}

static void
open_link(struct conn_thread *ct, struct exchange *ex)
{
	exchange_open_link(&ct->open, ex);
	ct->open_count++;
}

static void
open_unlink(struct conn_thread *ct, struct exchange *ex)
{
	exchange_open_unlink(&ct->open, ex);
	ct->open_count--;
}

/* Implements nghttp2_on_begin_headers_callback. We use it to create the
 * exchange of each new request stream, and to start tracing its fields. */
static int
on_begin_headers_callback(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data)
{
	struct conn_thread *ct = user_data;
	struct exchange *ex;

	trace_begin_headers(&ct->trace);
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	ex = exchange_new(BACKEND_STREAM_WINDOW);
	if (ex == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	ex->inbox = &ct->conn->inbox;
	ex->stream_id = frame->hd.stream_id;
	ex->batch = &ct->batch;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, ex);
	open_link(ct, ex);
	return 0;
}

/* Implements nghttp2_on_header_callback. We use it to collect request
 * fields (and trailers, which handlers do not see yet), and to trace. */
static int
on_header_callback(nghttp2_session *session, const nghttp2_frame *frame,
                   const uint8_t *name, size_t namelen, const uint8_t *value,
                   size_t valuelen, uint8_t flags, void *user_data)
{
	struct conn_thread *ct = user_data;
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

	(void)flags;
	trace_header(&ct->trace, name, namelen, value, valuelen);
	if (ex == NULL || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (exchange_add_in_header(ex, name, namelen, value, valuelen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

/* Implements nghttp2_on_frame_recv_callback. We use it to start the
 * handler once a request head is complete, to mark the end of a request
 * body, to see PING acknowledgements, and to trace. */
static int
on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data)
{
	struct conn_thread *ct = user_data;
	struct exchange *ex;

	trace_frame(&ct->trace, TRACE_RECV, frame);
	if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
		keepalive_on_ack(&ct->ka);
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex == NULL)
		return 0;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		exchange_finish_in(ex);
	/* tutorial: handler-dispatch */
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		exchange_end_in_head(ex);
		/* No worker for it: REFUSED_STREAM says it was not processed,
		 * so the router may send it elsewhere. */
		if (handler_call_start(ct->conn, ex) < 0)
			nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
			                          NGHTTP2_REFUSED_STREAM);
	}
	/* tutorial: end */
	return 0;
}

/* Implements nghttp2_on_frame_send_callback. We use it to trace. */
static int
on_frame_send_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data)
{
	struct conn_thread *ct = user_data;

	(void)session;
	trace_frame(&ct->trace, TRACE_SEND, frame);
	return 0;
}

/* Implements nghttp2_on_data_chunk_recv_callback. We use it to pass
 * request body bytes to the handler; they are consumed once it read them. */
static int
on_data_chunk_recv_callback(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                            const uint8_t *data, size_t len, void *user_data)
{
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, stream_id);

	(void)flags;
	(void)user_data;
	if (ex == NULL) {
		nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	exchange_deliver_in(ex, session, data, len);
	return 0;
}

/* Implements nghttp2_on_stream_close_callback. We use it to end the
 * exchange (waking a handler blocked on it) and drop our reference. */
static int
on_stream_close_callback(nghttp2_session *session, int32_t stream_id,
                         uint32_t error_code, void *user_data)
{
	struct conn_thread *ct = user_data;
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, stream_id);

	if (ex == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	open_unlink(ct, ex);
	exchange_close(ex, session, error_code == NGHTTP2_NO_ERROR ? 0 : PTTH_ERESET);
	exchange_unref(ex);
	return 0;
}

/* Creates the server session and queues our SETTINGS.
 * Returns 0 or a negative code. */
static int
conn_session_new(struct conn_thread *ct)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	/* tutorial: server-session */
	/* ENABLE_CONNECT_PROTOCOL: we take extended CONNECT (RFC 8441 section
	 * 3), so the router may send WebSockets here. nghttp2's server then
	 * accepts :protocol (it checks the setting it was asked to send). */
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, BACKEND_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, BACKEND_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1 },
	};
	/* tutorial: end */
	int rc = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0)
		goto out_cbs;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_callback);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_callback);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_callback);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send_callback);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_callback);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_callback);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* The router resets a stream each time a user leaves mid-response.
	 * nghttp2's guard against "rapid reset" floods (1000 at once, then 33
	 * per second) would end the tunnel under such churn; our peer is the
	 * router we dialled, so allow it far more. */
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000000, 100000);
	/* tutorial: server-session */
	if (nghttp2_session_server_new2(&ct->session, cbs, ct, opt) != 0)
		goto out_opt;
	/* tutorial: end */
	rc = session_io_send_settings(ct->session, settings,
	                              sizeof settings / sizeof settings[0]);
	if (rc < 0) {
		nghttp2_session_del(ct->session);
		ct->session = NULL;
	}
out_opt:
	nghttp2_option_del(opt);
out_cbs:
	nghttp2_session_callbacks_del(cbs);
	return rc;
}

/* Submits the response HEADERS a handler committed: :status first, then
 * its fields. A body already known to be empty, or the answer to HEAD
 * (RFC 9110 section 9.3.2, RFC 9113 section 8.1.1), needs no DATA
 * provider: the HEADERS frame then carries END_STREAM. */
static void
conn_submit_response(struct conn_thread *ct, struct exchange *ex)
{
	nghttp2_data_provider body = {
		.source.ptr = ex,
		.read_callback = exchange_data_source_read_callback,
	};
	struct header_list head;
	char status[8];
	nghttp2_nv *nv = NULL;
	bool empty;

	ex->head_submitted = true;
	mutex_lock(&ex->mu);
	empty = ex->out_no_body ||
	        (body_pipe_at_end(&ex->out) && ex->out_trailers.count == 0);
	mutex_unlock(&ex->mu);
	header_list_init(&head);
	snprintf(status, sizeof status, "%d", ex->out_status);
	if (header_list_add(&head, ":status", 7, status, strlen(status)) == 0 &&
	    header_list_copy(&head, &ex->out_head) == 0)
		nv = headers_to_nv(&head);
	if (nv == NULL || nghttp2_submit_response(ct->session, ex->stream_id, nv, head.count,
	                                          empty ? NULL : &body) != 0)
		nghttp2_submit_rst_stream(ct->session, NGHTTP2_FLAG_NONE, ex->stream_id,
		                          NGHTTP2_INTERNAL_ERROR);
	free(nv);
	header_list_free(&head);
}

/* Takes kicks from handler threads. */
/* tutorial: take-kicks */
static void
conn_take_work(struct conn_thread *ct)
{
	struct inbox *ib = &ct->conn->inbox;
	size_t n;

	inbox_drain_wake(ib);
	n = inbox_take_kicked(ib, &ct->kicked, &ct->kicked_alloc);
	for (size_t i = 0; i < n; i++) {
		if (exchange_service(ct->kicked[i], ct->session))
			conn_submit_response(ct, ct->kicked[i]);
		exchange_unref(ct->kicked[i]);
	}
}
/* tutorial: end */

/* Starts a graceful end: GOAWAY naming the last stream we took, so the
 * router sends nothing new here and retries anything newer elsewhere;
 * the streams we took go on until they finish or the drain time is up. */
static void
conn_begin_drain(struct conn_thread *ct)
{
	if (ct->drain_deadline_ms != 0)
		return;
	nghttp2_submit_goaway(ct->session, NGHTTP2_FLAG_NONE,
	                      nghttp2_session_get_last_proc_stream_id(ct->session),
	                      NGHTTP2_NO_ERROR, NULL, 0);
	ct->drain_deadline_ms = now_ms() + ct->conn->b->opts.drain_timeout_ms;
}

/* How long poll() may sleep: until the next keepalive or drain deadline. */
static int
conn_poll_timeout(const struct conn_thread *ct, long long now)
{
	int timeout = keepalive_poll_timeout(&ct->ka, now);

	if (ct->drain_deadline_ms != 0) {
		int left = ct->drain_deadline_ms > now ? (int)(ct->drain_deadline_ms - now) : 0;
		if (timeout < 0 || left < timeout)
			timeout = left;
	}
	return timeout;
}

/* The loop, as on the router side (see tunnel.c). Returns 0 when the
 * tunnel ended cleanly (the router closed it, or a drain finished), or
 * a negative code; *reason says why in words. */
static int
conn_run(struct conn_thread *ct, const char **reason)
{
	int rc;

	for (;;) {
		long long now = now_ms();
		if (atomic_load(&ct->conn->b->stop))
			conn_begin_drain(ct);
		if (ct->drain_deadline_ms != 0 &&
		    (ct->open_count == 0 || now >= ct->drain_deadline_ms)) {
			session_io_flush(&ct->io, ct->session);
			*reason = ct->open_count == 0 ? "drained" : "drain timeout";
			return 0;
		}
		rc = keepalive_step(&ct->ka, ct->session, now);
		if (rc == -ETIMEDOUT) {
			*reason = "PING timeout";
			return rc;
		}
		rc = rc < 0 ? rc : session_io_flush(&ct->io, ct->session);
		if (rc < 0)
			break;
		if (session_io_done(&ct->io, ct->session)) {
			*reason = "session finished";
			return 0;
		}
		exchange_batch_flush(&ct->batch); /* wake handlers once, before sleeping */
		rc = session_io_wait(&ct->io, ct->conn->inbox.wake_fd, conn_poll_timeout(ct, now));
		if (rc < 0)
			break;
		if (rc & SESSION_IO_WOKEN)
			conn_take_work(ct);
		if (rc & SESSION_IO_READABLE) {
			rc = session_io_recv(&ct->io, ct->session);
			if (rc < 0)
				break;
			keepalive_on_rx(&ct->ka, now_ms());
		}
	}
	*reason = rc == PTTH_ECLOSED ? "closed by the router" : ptth_strerror(rc);
	return rc == PTTH_ECLOSED ? 0 : rc;
}

/* Ends every stream still open, so every handler blocked on one wakes. */
static void
conn_fail_all(struct conn_thread *ct)
{
	struct exchange *ex;
	size_t n;

	n = inbox_take_kicked(&ct->conn->inbox, &ct->kicked, &ct->kicked_alloc);
	for (size_t i = 0; i < n; i++)
		exchange_unref(ct->kicked[i]);
	while ((ex = ct->open) != NULL) {
		open_unlink(ct, ex);
		exchange_close(ex, NULL, PTTH_ECLOSED);
		exchange_unref(ex);
	}
}

/* Serves the tunnel until it ends, then closes the socket. Runs on the
 * slot thread. Returns 0 for a clean end or the code that ended it;
 * *reason names it for the log. */
int
backend_conn_serve(struct backend_conn *conn, const char **reason)
{
	struct conn_thread ct = { .conn = conn };
	const struct ptth_backend_options *o = &conn->b->opts;
	char name[64];
	int rc;

	session_io_init(&ct.io, conn->fd);
	net_local_name(conn->fd, name, sizeof name); /* what the router calls this tunnel */
	trace_init(&ct.trace, o->trace, name);
	keepalive_init(&ct.ka, o->ping_interval_ms, o->ping_timeout_ms, now_ms());
	rc = conn_session_new(&ct);
	*reason = "cannot create a session";
	if (rc == 0)
		rc = conn_run(&ct, reason);
	inbox_close(&conn->inbox);
	conn_fail_all(&ct);
	exchange_batch_flush(&ct.batch);
	if (ct.session != NULL)
		nghttp2_session_del(ct.session);
	close(conn->fd);
	conn->fd = -1;
	session_io_destroy(&ct.io);
	free(ct.kicked);
	return rc;
}
