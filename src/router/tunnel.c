/*
 * tunnel.c -- one reverse tunnel on the router side: the thread that owns
 * the HTTP/2 client session spoken over a connection a backend dialled in.
 *
 * Owns:    the tunnel socket, the nghttp2 session, the session_io buffer,
 *          and the tunnel thread's reference on every exchange it submitted.
 * Threads: tunnel_thread_main() runs on the tunnel's own thread
 *          ("ptth-tunnel-N"), the only thread that ever calls into the
 *          session. User connection threads call tunnel_submit() and kick
 *          exchanges through the inbox; the router calls tunnel_stop().
 * Locks:   none of its own; the inbox and each exchange have theirs, and
 *          this thread never holds one while calling nghttp2. What the
 *          pick reads, t->peer_max_streams and t->streams_used, are
 *          atomics written without a lock (see pool.c for why that is
 *          enough); t->joined is guarded by its pool's mu.
 * Interface:
 *   - tunnel_start(): takes a freshly accepted socket, starts the thread,
 *     which first tells a raw dialler from a PTTH handshake and answers
 *     the handshake (tunnel_greet(), tunnel_handshake.c), so that a slow
 *     dialler holds up only its own thread, then lists the tunnel in its
 *     service's pool (or the default pool) once its session exists (so
 *     the router can stop it), and joins that pool, to be picked and
 *     counted, only when the backend's SETTINGS arrive: a backend that
 *     never speaks gets no request;
 *   - tunnel_submit(): hand a request over (fails when the queue is full
 *     or the tunnel is closing);
 *   - tunnel_stop(): ask the thread to close the tunnel and end.
 * Capacity: the thread publishes the backend's SETTINGS_MAX_CONCURRENT_
 * STREAMS (peer_max_streams) and gives each request's stream slot back
 * (streams_used) when the request leaves it: stream closed, or refused
 * unsent. pool_pick() takes the slots, and picks a tunnel with one free;
 * queued requests wait only when no tunnel had one. A backend that later
 * allows no stream at all gets its queued requests handed back unsent.
 * A request head nghttp2 will not send (over 64 KiB as HTTP/2) fails
 * its stream with PTTH_ETOOBIG, the user's 431, and is not retried.
 * When the tunnel ends for any reason, every request on it ends too:
 * queued ones are refused (PTTH_EREFUSED: the user thread retries them on
 * another tunnel), open ones fail with PTTH_ECLOSED, so each user thread
 * gets its 502 (or a truncated body) and nobody waits forever.
 * The thread also PINGs a quiet backend (keepalive.c), and on GOAWAY it
 * leaves the pool, lets open streams finish and ends. It wakes the user
 * threads whose streams changed once per pass, just before it sleeps
 * (exchange_batch_flush). With the trace option its callbacks print
 * every frame (trace.c).
 * The backend's SETTINGS say whether it takes WebSockets (extended
 * CONNECT); the thread publishes that in t->extended_connect.
 * Tutorial: "HTTP/2 in ten minutes", "The tunnel thread's loop",
 *          "A connection that stays open".
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>

#include "exchange.h"
#include "keepalive.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "router.h"
#include "session_io.h"
#include "trace.h"
#include "tokens.h"
#include "tunnel.h"
#include "tunnel_handshake.h"

/* Everything the tunnel thread keeps for itself. It lives on that
 * thread's stack: no other thread can even see it. */
struct tunnel_thread {
	struct tunnel *t;
	nghttp2_session *session;
	struct session_io io;
	struct exchange *open;       /* submitted streams not yet closed */
	uint32_t open_count;
	bool joined;                 /* the backend's SETTINGS arrived: picked from its
	                                pool (pool_join) and counted by the services */
	bool goaway;                 /* the backend sent GOAWAY: no new streams */
	struct exchange_batch batch; /* users to wake after this pass */
	struct keepalive ka;
	bool listed;                 /* in its pool (pool_add), so the router can stop it */
	bool handshake;              /* it came through the PTTH handshake */
	struct exchange **kicked;    /* scratch array for inbox_take_kicked() */
	size_t kicked_alloc;
	uint64_t requests;
	long long started_ms;
	struct trace trace;          /* --trace: this tunnel's frames */
};

void
tunnel_ref(struct tunnel *t)
{
	atomic_fetch_add(&t->refs, 1);
}

/* Drops a reference; the last one frees the tunnel. The thread has ended
 * and closed the socket by then, since the thread holds a reference. */
void
tunnel_unref(struct tunnel *t)
{
	if (atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	inbox_destroy(&t->inbox);
	free(t);
}

/* Asks the tunnel thread to close the tunnel. Any thread. */
void
tunnel_stop(struct tunnel *t)
{
	atomic_store(&t->stop, true);
	inbox_wake(&t->inbox);
}

/* Hands ex to the tunnel thread; t came from pool_pick(), which took a
 * stream slot for ex. Ownership of one new reference passes to the
 * tunnel thread, and so does the slot. Returns 0, or -EAGAIN (queue
 * full) or -EPIPE (the tunnel is closing) after giving the slot back. */
int
tunnel_submit(struct tunnel *t, struct exchange *ex)
{
	int rc = inbox_push(&t->inbox, ex);

	if (rc < 0)
		atomic_fetch_sub(&t->streams_used, 1);
	return rc;
}

/* The tunnel thread is done with ex, a request it took from its queue
 * (opened, refused or failed): gives its stream slot back to the pick
 * and drops the tunnel's reference. */
static void
tunnel_release(struct tunnel_thread *tt, struct exchange *ex)
{
	atomic_fetch_sub(&tt->t->streams_used, 1);
	exchange_unref(ex);
}

/* Implements nghttp2_on_begin_headers_callback. We use it to start the
 * trace of a header block. */
static int
on_begin_headers_callback(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data)
{
	struct tunnel_thread *tt = user_data;

	(void)session;
	(void)frame;
	trace_begin_headers(&tt->trace);
	return 0;
}

/* Implements nghttp2_on_header_callback. We use it to collect the
 * response fields of each stream into its exchange (and the trace). */
static int
on_header_callback(nghttp2_session *session, const nghttp2_frame *frame,
                   const uint8_t *name, size_t namelen, const uint8_t *value,
                   size_t valuelen, uint8_t flags, void *user_data)
{
	struct tunnel_thread *tt = user_data;
	struct exchange *ex;

	(void)flags;
	trace_header(&tt->trace, name, namelen, value, valuelen);
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex == NULL)
		return 0;
	if (exchange_add_in_header(ex, name, namelen, value, valuelen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream */
	return 0;
}

/* Lists the tunnel in its pool, where the router's stop finds it; it
 * is neither picked nor counted before tunnel_join_pool(). Returns 0 or
 * -ENOMEM. */
static int
tunnel_list_in_pool(struct tunnel_thread *tt)
{
	int rc = pool_add(tt->t->pool, tt->t);

	tt->listed = rc == 0;
	return rc;
}

/* The backend's first SETTINGS arrived: the tunnel joins its pool, to be
 * picked, and is counted by the services. Not after a GOAWAY. */
static void
tunnel_join_pool(struct tunnel_thread *tt, uint32_t max_streams)
{
	struct tunnel *t = tt->t;
	char streams[16] = "any number of";

	if (tt->joined || !tt->listed || !pool_join(t->pool, t))
		return;
	tt->joined = true;
	services_joined(&t->router->services, t->service);
	if (max_streams != UINT32_MAX) /* nghttp2's value when the backend sets no limit */
		snprintf(streams, sizeof streams, "%" PRIu32, max_streams);
	log_info("Tunnel added: %s (%s%s, %s, %s streams at once)", t->name,
	         t->service_name[0] ? "service " : "default pool", t->service_name,
	         tt->handshake ? "handshake" : "raw", streams);
	metrics_tunnel_added(&t->router->metrics, &t->stats, now_ms());
}

/* Unlists the tunnel, once: no user picks it from now on. */
static void
tunnel_leave_pool(struct tunnel_thread *tt)
{
	if (!tt->listed)
		return;
	tt->listed = false;
	pool_remove(tt->t->pool, tt->t);
	if (tt->joined)
		services_left(&tt->t->router->services, tt->t->service);
	tt->joined = false;
}

/* The backend will take no new streams (it is stopping): leave the pool
 * at once so no user picks this tunnel, and let open streams finish.
 * nghttp2 itself closes streams above last_stream_id with REFUSED_STREAM,
 * and their users retry elsewhere. */
static void
tunnel_on_goaway(struct tunnel_thread *tt, const nghttp2_frame *frame)
{
	if (tt->goaway)
		return;
	tt->goaway = true;
	tunnel_leave_pool(tt);
	log_info("Tunnel draining: %s%s%s%s: GOAWAY (last stream %d, error %u)", tt->t->name,
	         tt->t->service ? " (service " : "", tt->t->service_name,
	         tt->t->service ? ")" : "", frame->goaway.last_stream_id,
	         frame->goaway.error_code);
}

/* The backend's SETTINGS arrived: publish how many streams it allows
 * (nghttp2 has applied them by now) and whether it takes extended
 * CONNECT, that is WebSockets (RFC 8441 section 3), for the pick to
 * read, and, the first time, join the pool. nghttp2 itself would send
 * :protocol to any backend; once enabled, the setting cannot be
 * withdrawn (nghttp2 ends the session of a peer that tries). Until then the tunnel is listed (the router can
 * stop it) but never picked: a backend that never speaks gets no request.
 * After a GOAWAY the tunnel has left its pool and does not come back. */
static void
tunnel_on_settings(struct tunnel_thread *tt, nghttp2_session *session)
{
	uint32_t max = nghttp2_session_get_remote_settings(
		session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	atomic_store(&tt->t->peer_max_streams, max);
	atomic_store(&tt->t->extended_connect,
	             nghttp2_session_get_remote_settings(
	                     session, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1);
	tunnel_join_pool(tt, max);
}

/* Implements nghttp2_on_frame_recv_callback. We use it to notice the end
 * of a response head (the user thread may now write the status line), the
 * end of a response body, the backend's SETTINGS, PING acknowledgements
 * and GOAWAY, and to trace. */
static int
on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data)
{
	struct tunnel_thread *tt = user_data;
	struct exchange *ex;

	trace_frame(&tt->trace, TRACE_RECV, frame);
	if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
		keepalive_on_ack(&tt->ka);
	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
		tunnel_on_settings(tt, session);
	if (frame->hd.type == NGHTTP2_GOAWAY)
		tunnel_on_goaway(tt, frame);
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	/* tutorial: response-head */
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex == NULL)
		return 0;
	/* A final head after a 1xx one arrives as NGHTTP2_HCAT_HEADERS;
	 * exchange_end_in_head() ignores trailers, which do too. */
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat != NGHTTP2_HCAT_PUSH_RESPONSE)
		exchange_end_in_head(ex);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		exchange_finish_in(ex);
	/* tutorial: end */
	return 0;
}

/* Implements nghttp2_on_frame_send_callback. We use it to trace. */
static int
on_frame_send_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data)
{
	struct tunnel_thread *tt = user_data;

	(void)session;
	trace_frame(&tt->trace, TRACE_SEND, frame);
	return 0;
}

/* Implements nghttp2_on_data_chunk_recv_callback. We use it to pass
 * response body bytes to the user thread; they are consumed (window
 * reopened) only once the user thread has read them. */
/* tutorial: data-received */
static int
on_data_chunk_recv_callback(nghttp2_session *session, uint8_t flags,
                            int32_t stream_id, const uint8_t *data, size_t len,
                            void *user_data)
{
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, stream_id);

	(void)flags;
	(void)user_data;
	if (ex == NULL) {
		/* No owner (cannot happen for our own streams): consume anyway,
		 * or the connection window would shrink for good. */
		nghttp2_session_consume(session, stream_id, len);
		return 0;
	}
	exchange_deliver_in(ex, session, data, len);
	return 0;
}
/* tutorial: end */

/* Implements nghttp2_on_begin_frame_callback. We use it to log, once per
 * stream, a DATA frame with a payload on the stream of a HEAD request: a
 * HEAD response has no content (RFC 9110 section 9.3.2), so the backend
 * sent a malformed response (RFC 9113 section 8.1.1). nghttp2's HTTP
 * messaging checks act on it: they reset the stream with PROTOCOL_ERROR,
 * give the bytes back to the connection window and never pass them to
 * on_data_chunk_recv_callback. The head came first (DATA before any head
 * ends the whole session before this callback runs), so the user has
 * the whole HEAD response already. A frame of padding alone would be
 * logged too, though nghttp2 lets it pass; the flag bounds the noise. */
static int
on_begin_frame_callback(nghttp2_session *session, const nghttp2_frame_hd *hd,
                        void *user_data)
{
	struct tunnel_thread *tt = user_data;
	struct exchange *ex;
	const char *method;

	if (hd->type != NGHTTP2_DATA || hd->length == 0)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, hd->stream_id);
	if (ex == NULL || ex->malformed_logged)
		return 0;
	method = header_list_get(&ex->out_head, ":method"); /* read-only once queued */
	if (method == NULL || strcmp(method, "HEAD") != 0)
		return 0;
	ex->malformed_logged = true;
	log_info("Tunnel %s: stream %d: DATA on a HEAD request (user %s): malformed "
	         "response, stream reset with PROTOCOL_ERROR", tt->t->name, hd->stream_id,
	         ex->peer);
	return 0;
}

/* Maps an RST_STREAM or close code to ours. REFUSED_STREAM means the
 * backend never processed the request (RFC 9113 section 8.7): the user
 * thread may send it again on another tunnel. */
/* tutorial: refused */
static int
tunnel_stream_error(uint32_t error_code)
{
	if (error_code == NGHTTP2_NO_ERROR)
		return 0;
	return error_code == NGHTTP2_REFUSED_STREAM ? PTTH_EREFUSED : PTTH_ERESET;
}
/* tutorial: end */

/* Implements nghttp2_on_frame_not_send_callback. We use it to tell a
 * request head that is too large for HTTP/2 from a refusal that is the
 * tunnel's. nghttp2 will not send a header block over 64 KiB
 * (NGHTTP2_ERR_FRAME_SIZE_ERROR) or one it cannot pack
 * (NGHTTP2_ERR_HEADER_COMP), and then closes the stream with
 * REFUSED_STREAM, as it does after a GOAWAY; but another tunnel would
 * fail the same way. The user's request is too large: its user thread
 * answers 431 and retries nothing. */
static int
on_frame_not_send_callback(nghttp2_session *session, const nghttp2_frame *frame,
                           int lib_error_code, void *user_data)
{
	struct exchange *ex;

	(void)user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (lib_error_code != NGHTTP2_ERR_FRAME_SIZE_ERROR &&
	    lib_error_code != NGHTTP2_ERR_HEADER_COMP)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex != NULL)
		ex->send_error = PTTH_ETOOBIG;
	return 0;
}

/* Implements nghttp2_on_stream_close_callback. We use it to end the
 * exchange (waking its user thread) and give back its stream slot. */
/* tutorial: stream-close */
static int
on_stream_close_callback(nghttp2_session *session, int32_t stream_id,
                         uint32_t error_code, void *user_data)
{
	struct tunnel_thread *tt = user_data;
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, stream_id);

	if (ex == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	exchange_open_unlink(&tt->open, ex);
	tt->open_count--;
	exchange_close(ex, session, ex->send_error != 0 ? ex->send_error
	                                                : tunnel_stream_error(error_code));
	tunnel_release(tt, ex);
	return 0;
}
/* tutorial: end */

/* Creates the client session with our callbacks and queues the client
 * preface SETTINGS. Returns 0 or PTTH_EPROTO / -ENOMEM. */
static int
tunnel_session_new(struct tunnel_thread *tt)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	/* tutorial: client-session */
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ROUTER_STREAM_WINDOW },
	};
	/* tutorial: end */
	int rc = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0)
		goto out_cbs;
	/* tutorial: client-session */
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_callback);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_callback);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_callback);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send_callback);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_callback);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_callback);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame_callback);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send_callback);
	/* Flow control is our backpressure: consume only what users took. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_client_new2(&tt->session, cbs, tt, opt) != 0)
		goto out_opt;
	/* tutorial: end */
	rc = session_io_send_settings(tt->session, settings,
	                              sizeof settings / sizeof settings[0]);
	if (rc < 0) {
		nghttp2_session_del(tt->session);
		tt->session = NULL;
	}
out_opt:
	nghttp2_option_del(opt);
out_cbs:
	nghttp2_session_callbacks_del(cbs);
	return rc;
}

/* Ends a request taken from the queue without opening a stream for it:
 * PTTH_EREFUSED when it was never sent (its user sends it elsewhere). */
static void
tunnel_end_unopened(struct tunnel_thread *tt, struct exchange *ex, int error)
{
	exchange_close(ex, NULL, error);
	tunnel_release(tt, ex);
}

/* Submits one queued request as a new stream. The tunnel's reference on
 * ex, and its stream slot, now belong to the stream and are given back
 * in on_stream_close_callback. */
static void
tunnel_submit_stream(struct tunnel_thread *tt, struct exchange *ex)
{
	/* tutorial: submit-request */
	nghttp2_data_provider body = {
		.source.ptr = ex,
		.read_callback = exchange_data_source_read_callback,
	};
	/* tutorial: end */
	nghttp2_nv *nv;
	int32_t id;
	bool cancelled;

	mutex_lock(&ex->mu);
	cancelled = ex->cancelled;
	mutex_unlock(&ex->mu);
	/* An extended CONNECT only to a backend that said it takes one:
	 * pool_pick_for() already checked the flag this session published. */
	if (tt->goaway || !nghttp2_session_check_request_allowed(tt->session) ||
	    (ex->extended_connect && !atomic_load(&tt->t->extended_connect))) {
		tunnel_end_unopened(tt, ex, PTTH_EREFUSED); /* never sent: retry elsewhere */
		return;
	}
	nv = cancelled ? NULL : headers_to_nv(&ex->out_head);
	if (nv == NULL) {
		tunnel_end_unopened(tt, ex, cancelled ? PTTH_ECLOSED : -ENOMEM);
		return;
	}
	/* tutorial: submit-request */
	id = nghttp2_submit_request(tt->session, NULL, nv, ex->out_head.count,
	                            ex->out_has_body ? &body : NULL, ex);
	free(nv);
	if (id < 0) {
		tunnel_end_unopened(tt, ex, PTTH_EPROTO);
		return;
	}
	ex->stream_id = id;
	ex->batch = &tt->batch;
	exchange_open_link(&tt->open, ex);
	tt->open_count++;
	tt->requests++;
	/* tutorial: end */
}

/* Submits queued requests while the backend allows more concurrent
 * streams (its SETTINGS_MAX_CONCURRENT_STREAMS). The rest wait in the
 * bounded queue, where a full queue turns into a 503 for the user,
 * instead of piling up inside nghttp2 without bound. The pick queues a
 * request here only when no tunnel had a free stream. A backend that
 * now allows no stream at all (a later SETTINGS lowered it to 0) gets
 * no more picks, and what waits here is handed back unsent, so that
 * each user thread sends its request to a tunnel that can open it.
 * Returns true when it submitted any. */
static bool
tunnel_take_fresh(struct tunnel_thread *tt)
{
	uint32_t limit = nghttp2_session_get_remote_settings(
		tt->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	bool refuse = tt->goaway || limit == 0;
	struct exchange *ex;
	bool took = false;

	while ((refuse || tt->open_count < limit) && (ex = inbox_pop(&tt->t->inbox)) != NULL) {
		if (refuse) {
			tunnel_end_unopened(tt, ex, PTTH_EREFUSED); /* never sent */
		} else {
			tunnel_submit_stream(tt, ex);
			took = true;
		}
	}
	return took;
}

/* Takes everything other threads left in the inbox: new requests first,
 * then kicked exchanges. */
/* tutorial: take-work */
static void
tunnel_take_work(struct tunnel_thread *tt)
{
	struct inbox *ib = &tt->t->inbox;
	size_t n;

	inbox_drain_wake(ib);
	tunnel_take_fresh(tt);
	n = inbox_take_kicked(ib, &tt->kicked, &tt->kicked_alloc);
	for (size_t i = 0; i < n; i++) {
		exchange_service(tt->kicked[i], tt->session);
		exchange_unref(tt->kicked[i]);
	}
}
/* tutorial: end */

/* After tunnel_stop(): tell the backend with GOAWAY and write it out
 * (best effort, the socket is closed right after). */
static void
tunnel_say_goodbye(struct tunnel_thread *tt)
{
	nghttp2_session_terminate_session(tt->session, NGHTTP2_NO_ERROR);
	session_io_flush(&tt->io, tt->session);
}

/* The tunnel thread's loop: write what the session wants to send, wait
 * for the socket, a wake-up or a keepalive deadline, take new work, read.
 * Returns why it ended. */
static const char *
tunnel_run(struct tunnel_thread *tt)
{
	int rc;

	for (;;) {
		uint32_t open_before = tt->open_count;
		rc = keepalive_step(&tt->ka, tt->session, now_ms());
		if (rc == -ETIMEDOUT)
			return "PING timeout";
		/* tutorial: tunnel-loop */
		if (rc == 0)
			rc = session_io_flush(&tt->io, tt->session);
		/* A stream we reset closes only once its RST_STREAM is sent,
		 * inside the flush: a queued request may take its place now,
		 * not at the backend's next frame. */
		if (rc == 0 && tt->open_count < open_before && tunnel_take_fresh(tt))
			rc = session_io_flush(&tt->io, tt->session);
		if (rc < 0)
			break;
		/* tutorial: end */
		if (session_io_done(&tt->io, tt->session))
			return "session finished";
		if (tt->goaway && tt->open_count == 0)
			return "GOAWAY";
		exchange_batch_flush(&tt->batch); /* wake users once, before sleeping */
		metrics_tunnel_publish(&tt->t->stats, tt->requests, tt->io.bytes_in,
		                       tt->io.bytes_out, tt->open_count);
		/* tutorial: tunnel-loop */
		rc = session_io_wait(&tt->io, tt->t->inbox.wake_fd,
		                     keepalive_poll_timeout(&tt->ka, now_ms()));
		if (rc < 0)
			break;
		if (atomic_load(&tt->t->stop)) {
			tunnel_say_goodbye(tt);
			return "router stopping";
		}
		if (rc & SESSION_IO_WOKEN)
			tunnel_take_work(tt);
		if (rc & SESSION_IO_READABLE) {
			rc = session_io_recv(&tt->io, tt->session);
			if (rc < 0)
				break;
			keepalive_on_rx(&tt->ka, now_ms());
			tunnel_take_fresh(tt); /* streams may have closed */
		}
		/* tutorial: end */
	}
	if (rc == PTTH_ECLOSED)
		return "EOF";
	return ptth_strerror(rc);
}

/* Ends every request that is still on this tunnel. Called after the
 * inbox closed, so nothing new can arrive while we sweep. Requests that
 * never left the queue are refused (their users retry elsewhere); those
 * already sent may have been processed, so they fail. */
static void
tunnel_fail_all(struct tunnel_thread *tt)
{
	struct inbox *ib = &tt->t->inbox;
	struct exchange *ex;
	size_t n;

	while ((ex = inbox_pop(ib)) != NULL)
		tunnel_end_unopened(tt, ex, PTTH_EREFUSED); /* never sent: retry elsewhere */
	n = inbox_take_kicked(ib, &tt->kicked, &tt->kicked_alloc);
	for (size_t i = 0; i < n; i++)
		exchange_unref(tt->kicked[i]);
	while ((ex = tt->open) != NULL) {
		exchange_open_unlink(&tt->open, ex);
		exchange_close(ex, NULL, PTTH_ECLOSED);
		tunnel_release(tt, ex);
	}
}

/* After a refusal: the answer is written, so stop writing and read what
 * the dialler still sends for up to a second (at most 64 KiB), so that
 * closing with unread input does not reset the connection and destroy
 * the answer before the dialler read it (RFC 9112 section 9.6). */
static void
tunnel_linger(int fd, int stop_fd)
{
	struct pollfd fds[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	long long deadline = now_ms() + 1000;
	size_t drained = 0;
	char buf[4096];

	shutdown(fd, SHUT_WR);
	while (drained < 64 * 1024 && now_ms() < deadline &&
	       poll(fds, 2, (int)(deadline - now_ms())) > 0 && !(fds[1].revents & POLLIN)) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EAGAIN))
			break;
		drained += n > 0 ? (size_t)n : 0;
	}
}

/* Places a tunnel whose handshake passed: the pool of the service it
 * named (created on first use) or the default pool. Returns 0, or 503
 * recorded in hello when no more services can be kept. */
static int
tunnel_place(struct tunnel *t, struct tunnel_hello *hello)
{
	struct ptth_router *r = t->router;

	t->pool = &r->pool;
	t->service = NULL;
	t->service_name = "";
	if (hello->service[0] == '\0')
		return 0;
	t->service = services_get(&r->services, hello->service, true);
	if (t->service == NULL) {
		hello->status = 503;
		hello->why = "the router keeps no more services";
		return 503;
	}
	t->pool = &t->service->pool;
	t->service_name = t->service->name;
	return 0;
}

/* The first thing a tunnel thread does: tell a raw dialler from a PTTH
 * handshake (tunnel_handshake_read()), check the handshake and its token,
 * place the tunnel (t->pool) and answer 101, or refuse. With a tokens
 * file, raw tunnels are refused unless --allow-raw-tunnels. Returns NULL
 * when the tunnel goes on, else why it ends (already logged, once). */
static const char *
tunnel_greet(struct tunnel_thread *tt)
{
	struct tunnel *t = tt->t;
	struct ptth_router *r = t->router;
	struct tunnel_handshake_conf conf = {
		.raw_wait_ms = r->conf.raw_wait_ms,
		.timeout_ms = r->conf.header_timeout_ms,
		.stop_fd = r->stop_fd,
	};
	struct tunnel_hello hello;
	struct tokens *tokens;
	int rc = tunnel_handshake_read(t->fd, &conf, &hello);

	if (rc < 0) {
		if (rc != -ESHUTDOWN)
			log_info("Tunnel refused: %s: %s before the handshake ended", t->name,
			         rc == PTTH_ECLOSED ? "EOF" : ptth_strerror(rc));
		return rc == -ESHUTDOWN ? "router stopping" : "gone during the handshake";
	}
	if (!hello.handshake) {
		if (router_tokens_required(r) && !r->conf.allow_raw) {
			log_info("Tunnel refused: %s: a raw tunnel, and --tunnel-tokens asks for "
			         "the handshake (--allow-raw-tunnels takes raw ones)", t->name);
			tunnel_linger(t->fd, r->stop_fd); /* an EOF, not a reset */
			return "raw tunnel refused";
		}
		return tunnel_place(t, &hello) == 0 ? NULL : "no pool";
	}
	if (hello.status == 0) {
		tokens = router_tokens_get(r);
		tunnel_handshake_authorize(&hello, tokens);
		tokens_unref(tokens);
	}
	if (hello.status == 0)
		tunnel_place(t, &hello);
	rc = tunnel_handshake_answer(t->fd, &hello);
	if (hello.status != 0) {
		log_info("Tunnel refused: %s%s%s%s: %d %s", t->name, hello.service[0] ? " (service " : "",
		         hello.service, hello.service[0] ? ")" : "", hello.status, hello.why);
		tunnel_linger(t->fd, r->stop_fd);
		return "handshake refused";
	}
	if (rc < 0) {
		log_info("Tunnel refused: %s: cannot send the 101: %s", t->name, ptth_strerror(rc));
		return "gone during the handshake";
	}
	tt->handshake = true;
	return NULL;
}

/* The tunnel thread. It owns the session from creation to deletion. */
static void *
tunnel_thread_main(void *arg)
{
	struct tunnel_thread tt = { .t = arg };
	struct tunnel *t = tt.t;
	struct ptth_router *r = t->router;
	const char *reason;
	bool greeted;
	char thread_name[16];

	snprintf(thread_name, sizeof thread_name, "ptth-tunnel-%d", t->id);
	pthread_setname_np(pthread_self(), thread_name);
	tt.started_ms = now_ms();
	session_io_init(&tt.io, t->fd);
	trace_init(&tt.trace, r->conf.trace, t->name);
	keepalive_init(&tt.ka, r->conf.ping_interval_ms, r->conf.ping_timeout_ms, tt.started_ms);
	/* tutorial: tunnel-thread */
	reason = tunnel_greet(&tt);
	greeted = reason == NULL;
	if (!greeted) {
		/* Refused, or gone before the handshake ended: logged already. */
	} else if (tunnel_session_new(&tt) < 0) {
		reason = "cannot create session";
	} else if (tunnel_list_in_pool(&tt) < 0) {
		reason = "out of memory";
	} else if (router_is_stopping(r)) {
		/* Added after ptth_router_stop() took its snapshot of the pool. */
		reason = "router stopping";
	} else {
		/* Listed, so that the router can stop it; picked only once the
		 * backend's SETTINGS arrive (tunnel_on_settings). */
		reason = tunnel_run(&tt);
		metrics_tunnel_removed(&r->metrics, &t->stats, reason, tt.goaway);
	}
	tunnel_leave_pool(&tt);
	inbox_close(&t->inbox);
	tunnel_fail_all(&tt);
	/* tutorial: end */
	exchange_batch_flush(&tt.batch);
	if (tt.session != NULL)
		nghttp2_session_del(tt.session);
	close(t->fd);
	if (greeted)
		log_info("Tunnel removed: %s%s%s%s: %s (%" PRIu64 " requests, %" PRIu64
		         " bytes in, %" PRIu64 " bytes out, %lld ms)", t->name,
		         t->service ? " (service " : "", t->service_name, t->service ? ")" : "",
		         reason, tt.requests, tt.io.bytes_in, tt.io.bytes_out,
		         now_ms() - tt.started_ms);
	session_io_destroy(&tt.io);
	free(tt.kicked);
	tunnel_unref(t);
	router_thread_end(r);
	return NULL;
}

/* Takes ownership of fd (a connection accepted on the tunnel port) and
 * starts its thread. On failure fd is closed. Returns 0 or a negative code. */
int
tunnel_start(struct ptth_router *r, int fd)
{
	struct tunnel *t = calloc(1, sizeof *t);
	pthread_t thread;
	int rc;

	if (t == NULL) {
		close(fd);
		return -ENOMEM;
	}
	atomic_init(&t->refs, 1); /* the thread's reference */
	atomic_init(&t->stop, false);
	t->router = r;
	t->fd = fd;
	atomic_init(&t->in_flight, 0);
	atomic_init(&t->peer_max_streams, 0);
	atomic_init(&t->streams_used, 0);
	atomic_init(&t->extended_connect, false);
	net_peer_name(fd, t->name, sizeof t->name);
	net_set_nodelay(fd);
	net_set_keepalive(fd);
	rc = inbox_init(&t->inbox, (size_t)r->conf.queue_size);
	if (rc < 0)
		goto out_free;
	if (!router_thread_begin(r)) {
		rc = -ESHUTDOWN;
		goto out_inbox;
	}
	mutex_lock(&r->mu);
	t->id = ++r->next_tunnel_id;
	mutex_unlock(&r->mu);
	rc = -pthread_create(&thread, NULL, tunnel_thread_main, t);
	if (rc < 0) {
		router_thread_end(r);
		goto out_inbox;
	}
	pthread_detach(thread);
	return 0;
out_inbox:
	inbox_destroy(&t->inbox);
out_free:
	free(t);
	close(fd);
	return rc;
}
