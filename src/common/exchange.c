/*
 * exchange.c -- one HTTP/2 stream shared by two threads: the application
 * thread that speaks for one end (a user connection on the router, a
 * handler on the backend) and the tunnel thread that owns the session.
 *
 * Owns:    its two body pipes, its header lists, its mutex and condition.
 * Threads: exactly one application thread and one tunnel thread. The
 *          exchange_* functions above the "tunnel thread" line below are
 *          for the application thread; those after it only for the tunnel
 *          thread, which is the only thread allowed into the nghttp2 session.
 * Locks:   ex->mu guards the pipes and the stream state (see the struct in
 *          exchange.h). It is never held while calling nghttp2, writing a
 *          socket or taking inbox->mu: kicks happen after unlocking.
 * Lifetime: reference counted. The application thread holds one
 *          reference, the tunnel thread one while the stream is queued or
 *          open, and the inbox one while the exchange is on its kick list.
 *          The last exchange_unref() frees it; or a router user thread
 *          holding the last one keeps it, emptied, for its connection's
 *          next request (exchange_recycle).
 * Interface:
 *   - the app writes the "out" body (router: request body; backend:
 *     response body) and reads the "in" body; neither side ever blocks
 *     the tunnel thread;
 *   - after changing something the tunnel must act on (new out bytes
 *     while its data provider is deferred, bytes read that free flow
 *     control window, a cancel), the app thread "kicks" the exchange onto
 *     the tunnel's inbox, which wakes the tunnel thread;
 *   - the tunnel thread calls exchange_service() for each kicked exchange;
 *   - in the other direction, the tunnel thread's changes (head, body,
 *     end, close) wake the app thread once per pass through nghttp2
 *     (struct exchange_batch, exchange_batch_flush), through the condition
 *     variable and, for a router user thread in poll(), its notify fd.
 *   - an upgraded connection's exchange is duplex: room made in the out
 *     pipe wakes its user thread too, which waits in poll(), not on the
 *     condition variable.
 * Tutorial: "Bodies stream, they are never stored"; the batch in "Fewer
 *          wake-ups".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"
#include "exchange.h"
#include "inbox.h"
#include "lock.h"
#include "net.h"

/* The reader reports consumed bytes to the tunnel in batches of this
 * size. It must stay well under the pipe capacity (the stream window):
 * a sender stuck on a zero window means the pipe plus the unreported
 * count is full, and reading the pipe then always crosses this mark. */
#define EXCHANGE_REPORT_BYTES (16 * 1024)

/* exchange_recycle() keeps a pipe's ring up to this size for the next
 * request: larger ones were for a large body, which is rarer than a
 * small one and not worth pinning on an idle connection. */
#define EXCHANGE_KEEP_PIPE (4 * 1024)

/* Sets up a zeroed exchange: one reference (the caller's), its lock and
 * condition, empty pipes of at most pipe_cap bytes, empty header lists. */
static void
exchange_init(struct exchange *ex, size_t pipe_cap)
{
	atomic_init(&ex->refs, 1);
	mutex_init(&ex->mu);
	cond_init(&ex->changed);
	body_pipe_init(&ex->out, pipe_cap);
	body_pipe_init(&ex->in, pipe_cap);
	header_list_init(&ex->in_head);
	header_list_init(&ex->out_head);
	header_list_init(&ex->in_trailers);
	header_list_init(&ex->out_trailers);
	ex->notify_fd = -1;
	ex->out_status = 200;
}

/* Creates an exchange whose pipes hold at most pipe_cap bytes each,
 * with one reference held by the caller. Returns NULL when out of memory. */
struct exchange *
exchange_new(size_t pipe_cap)
{
	struct exchange *ex = calloc(1, sizeof *ex);

	if (ex != NULL)
		exchange_init(ex, pipe_cap);
	return ex;
}

void
exchange_ref(struct exchange *ex)
{
	atomic_fetch_add(&ex->refs, 1);
}

/* Drops one reference; the last one frees the exchange. */
void
exchange_unref(struct exchange *ex)
{
	if (ex == NULL || atomic_fetch_sub(&ex->refs, 1) != 1)
		return;
	body_pipe_destroy(&ex->out);
	body_pipe_destroy(&ex->in);
	header_list_free(&ex->in_head);
	header_list_free(&ex->out_head);
	header_list_free(&ex->in_trailers);
	header_list_free(&ex->out_trailers);
	cond_destroy(&ex->changed);
	mutex_destroy(&ex->mu);
	free(ex);
}

/* The error an application call returns once the stream cannot go on.
 * Caller must hold ex->mu. */
static int
exchange_error_locked(const struct exchange *ex)
{
	if (ex->error != 0)
		return ex->error;
	return PTTH_ECLOSED;
}

static void
exchange_kick(struct exchange *ex)
{
	inbox_kick(ex->inbox, ex);
}

/* Appends up to len bytes to the out body without blocking.
 * Returns the bytes taken (0 when the pipe is full), or a negative code
 * when the stream is over or cancelled. With out_no_body (a backend
 * answering HEAD) every byte is taken and dropped for as long as the
 * stream has not failed, even once it is over: the head was the whole
 * response (RFC 9110 section 9.3.2). */
ssize_t
exchange_write_out(struct exchange *ex, const void *data, size_t len)
{
	ssize_t n;
	bool kick = false;

	mutex_lock(&ex->mu);
	if (ex->out_no_body && ex->error == 0 && !ex->cancelled) {
		n = (ssize_t)len;
	} else if (ex->closed || ex->cancelled) {
		n = exchange_error_locked(ex);
	} else {
		n = body_pipe_write(&ex->out, data, len);
		if (n > 0 && ex->out_deferred) {
			ex->out_deferred = false;
			kick = true;
		}
	}
	mutex_unlock(&ex->mu);
	if (kick)
		exchange_kick(ex);
	return n;
}

/* Writes all len bytes of out body, blocking while the pipe is full
 * (that is, while the peer's flow-control window is closed).
 * Returns 0 or a negative code when the stream is over. */
int
exchange_write_out_all(struct exchange *ex, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = exchange_write_out(ex, p, len);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			int rc = exchange_wait(ex, EX_WAIT_OUT_SPACE);
			if (rc < 0)
				return rc;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Marks the end of the out body. */
void
exchange_finish_out(struct exchange *ex)
{
	bool kick;

	mutex_lock(&ex->mu);
	body_pipe_finish(&ex->out);
	kick = ex->out_deferred;
	ex->out_deferred = false;
	mutex_unlock(&ex->mu);
	if (kick)
		exchange_kick(ex);
}

/* True when one of the conditions in what holds. Caller must hold ex->mu. */
static bool
exchange_ready_locked(const struct exchange *ex, unsigned what)
{
	if ((what & EX_WAIT_OUT_SPACE) && body_pipe_space(&ex->out) > 0)
		return true;
	if ((what & EX_WAIT_IN_HEAD) && ex->in_head_done)
		return true;
	if ((what & EX_WAIT_IN_DATA) && (ex->in.len > 0 || ex->in.finished))
		return true;
	return false;
}

/* Blocks until one of the conditions in what holds (returns 0) or the
 * stream ends without it (returns the stream's error or PTTH_ECLOSED). */
int
exchange_wait(struct exchange *ex, unsigned what)
{
	return exchange_wait_until(ex, what, -1);
}

/* Like exchange_wait(), but gives up at deadline_ms (on the clock of
 * now_ms(); -1 means never) and then returns -ETIMEDOUT. */
int
exchange_wait_until(struct exchange *ex, unsigned what, long long deadline_ms)
{
	struct timespec deadline;
	int rc = 0;

	if (deadline_ms >= 0) {
		deadline.tv_sec = deadline_ms / 1000;
		deadline.tv_nsec = (deadline_ms % 1000) * 1000000L;
	}
	mutex_lock(&ex->mu);
	/* Invariant on each wake-up: re-check, the broadcast may be for
	 * another condition. */
	while (!exchange_ready_locked(ex, what) && !ex->closed && !ex->cancelled && rc == 0) {
		if (deadline_ms < 0)
			cond_wait(&ex->changed, &ex->mu);
		else
			rc = cond_timedwait(&ex->changed, &ex->mu, &deadline);
	}
	if (exchange_ready_locked(ex, what))
		rc = 0;
	else if (rc == ETIMEDOUT)
		rc = -ETIMEDOUT;
	else
		rc = exchange_error_locked(ex);
	mutex_unlock(&ex->mu);
	return rc;
}

/* Reads up to len bytes of the in body. With block set it waits for
 * bytes; without, an empty pipe returns -EAGAIN.
 * Returns the bytes read, 0 at the end of the body, or a negative code
 * when the stream ended early (reset, tunnel gone). */
ssize_t
exchange_read_in(struct exchange *ex, void *buf, size_t len, bool block)
{
	ssize_t n;
	bool kick = false;

	mutex_lock(&ex->mu);
	for (;;) {
		/* tutorial: read-in-kick */
		n = (ssize_t)body_pipe_read(&ex->in, buf, len);
		if (n > 0) {
			kick = !ex->closed && ex->in.unreported >= EXCHANGE_REPORT_BYTES;
			break;
		}
		/* tutorial: end */
		if (ex->in.finished) {
			n = 0;
			break;
		}
		if (ex->closed || ex->cancelled) {
			n = exchange_error_locked(ex);
			break;
		}
		if (!block) {
			n = -EAGAIN;
			break;
		}
		cond_wait(&ex->changed, &ex->mu);
	}
	mutex_unlock(&ex->mu);
	if (kick)
		exchange_kick(ex);
	return n;
}

/* The application gives up on the stream: the tunnel thread resets it
 * with error_code (CANCEL when a user went away, INTERNAL_ERROR when a
 * handler asked for it) and discards whatever still arrives for it. */
void
exchange_reset(struct exchange *ex, uint32_t error_code)
{
	mutex_lock(&ex->mu);
	if (!ex->cancelled)
		ex->reset_code = error_code;
	ex->cancelled = true;
	cond_broadcast(&ex->changed);
	mutex_unlock(&ex->mu);
	exchange_kick(ex);
}

/* The user went away: reset with CANCEL. */
void
exchange_cancel(struct exchange *ex)
{
	exchange_reset(ex, NGHTTP2_CANCEL);
}

/* True once the in head is complete; the app thread may then read
 * in_head and in_status without the lock, as they no longer change. */
bool
exchange_in_head_done(struct exchange *ex)
{
	bool done;

	mutex_lock(&ex->mu);
	done = ex->in_head_done;
	mutex_unlock(&ex->mu);
	return done;
}

/* The app thread is done with ex (its reference is dropped by the
 * caller). A stream that is over, or whose both bodies are complete, is
 * left alone. Otherwise, with drain_in (a backend whose handler finished
 * its response without reading the whole request) the stream is left to
 * finish while in bytes are discarded and handed back to flow control,
 * so the peer can finish sending; without it (a router whose user went
 * away) the stream is reset. */
static void
exchange_let_go(struct exchange *ex, bool drain_in)
{
	bool kick;

	mutex_lock(&ex->mu);
	ex->released = true;
	if (!ex->closed && !(ex->out.finished && (ex->in.finished || drain_in)) &&
	    !ex->cancelled) {
		ex->cancelled = true;
		ex->reset_code = NGHTTP2_CANCEL;
	}
	body_pipe_discard(&ex->in);
	kick = !ex->closed && (ex->cancelled || ex->in.unreported > 0);
	cond_broadcast(&ex->changed);
	mutex_unlock(&ex->mu);
	if (kick)
		exchange_kick(ex);
}

/* The app thread is done with ex and drops its reference (see
 * exchange_let_go). */
void
exchange_release(struct exchange *ex, bool drain_in)
{
	exchange_let_go(ex, drain_in);
	exchange_unref(ex);
}

/* Makes an exchange that only its caller holds as new, keeping its
 * storage: the header lists' items and blocks, the pipes' rings (up to
 * EXCHANGE_KEEP_PIPE), the lock and condition, and the notify fd, which
 * belongs to the same user connection. Everything else is zeroed, as in
 * exchange_new(), so nothing of one request reaches the next. Caller
 * must hold the only reference (one never shared, or see
 * exchange_recycle). */
void
exchange_empty(struct exchange *ex)
{
	struct body_pipe out = ex->out, in = ex->in;
	struct header_list out_head = ex->out_head, out_trailers = ex->out_trailers;
	struct header_list in_head = ex->in_head, in_trailers = ex->in_trailers;
	int notify_fd = ex->notify_fd;

	cond_destroy(&ex->changed);
	mutex_destroy(&ex->mu);
	memset(ex, 0, sizeof *ex);
	exchange_init(ex, out.cap);
	body_pipe_empty(&out, EXCHANGE_KEEP_PIPE);
	body_pipe_empty(&in, EXCHANGE_KEEP_PIPE);
	header_list_clear(&out_head);
	header_list_clear(&out_trailers);
	header_list_clear(&in_head);
	header_list_clear(&in_trailers);
	ex->out = out;
	ex->in = in;
	ex->out_head = out_head;
	ex->out_trailers = out_trailers;
	ex->in_head = in_head;
	ex->in_trailers = in_trailers;
	ex->notify_fd = notify_fd;
}

/* Router: exchange_release(ex, false) for a user connection that keeps
 * its exchange for its next request. When no other thread holds ex any
 * more (the tunnel thread dropped the stream's reference, nothing is
 * kicked or batched), ex is emptied (exchange_empty) and returned, still
 * with the caller's one reference: the next request allocates no
 * exchange, header storage or ring. Otherwise the caller's reference is
 * dropped, as exchange_release() does, and NULL is returned.
 * References are only ever taken by a thread that already holds one, so
 * a count of 1 held by the caller cannot grow behind its back. */
/* tutorial: exchange-recycle */
struct exchange *
exchange_recycle(struct exchange *ex)
{
	exchange_let_go(ex, false);
	if (atomic_load(&ex->refs) != 1) {
		exchange_unref(ex);
		return NULL;
	}
	exchange_empty(ex);
	return ex;
}
/* tutorial: end */

/* Router, for a retry: moves the out body of src (refused, never sent)
 * into dst, which is not shared yet. Fails when the tunnel already read
 * part of it: those bytes are gone. Returns 0 or PTTH_EREFUSED. */
int
exchange_move_out(struct exchange *dst, struct exchange *src)
{
	int rc = 0;

	mutex_lock(&src->mu);
	if (src->out.unreported > 0) {
		rc = PTTH_EREFUSED;
	} else {
		body_pipe_destroy(&dst->out);
		dst->out = src->out;
		body_pipe_init(&src->out, dst->out.cap);
	}
	mutex_unlock(&src->mu);
	return rc;
}

/* Backend: publishes out_status and out_head; the tunnel thread submits
 * the response HEADERS when it services the kick. */
void
exchange_commit_head(struct exchange *ex)
{
	mutex_lock(&ex->mu);
	ex->out_head_ready = true;
	mutex_unlock(&ex->mu);
	exchange_kick(ex);
}

/* Router: asks to be told through the eventfd fd when anything changes
 * on the in side (head, body bytes, end, close), for a user thread that
 * must also watch its socket. The first call records fd in the exchange
 * for good (a user thread opens its eventfd only once it needs one).
 * *seen is the caller's count of changes already looked at. Returns
 * true, without arming, when there were new changes since: look at them
 * first. */
bool
exchange_arm_notify(struct exchange *ex, int fd, unsigned *seen)
{
	bool changed;

	mutex_lock(&ex->mu);
	if (ex->notify_fd < 0)
		ex->notify_fd = fd;
	changed = ex->in_events != *seen;
	*seen = ex->in_events;
	ex->notify_armed = !changed;
	mutex_unlock(&ex->mu);
	return changed;
}

/* Router: the user thread stopped watching notify_fd. */
void
exchange_disarm_notify(struct exchange *ex)
{
	mutex_lock(&ex->mu);
	ex->notify_armed = false;
	mutex_unlock(&ex->mu);
}

/* ---------------------------------------------------------------------
 * Tunnel thread only below this line.
 */

/* Records a change on the in side for the app thread. Outside a batch
 * the app thread is woken now: the condition variable for a thread
 * blocked in an exchange wait, and (returned as true) the notify fd for
 * one blocked in poll(). Inside a batch (a tunnel thread's pass through
 * nghttp2, where one response may end its head, deliver its body and end
 * its stream in a single read) the wake-up waits for
 * exchange_batch_flush(), so the app thread wakes once, not four times.
 * Caller must hold ex->mu and, when this returns true, write the fd
 * after unlocking. */
static bool
exchange_in_changed_locked(struct exchange *ex)
{
	bool notify = ex->notify_armed;

	ex->in_events++;
	if (ex->batch != NULL) {
		if (!ex->batched) {
			ex->batched = true;
			exchange_ref(ex); /* the batch's reference */
			ex->batch_next = ex->batch->head;
			ex->batch->head = ex;
		}
		return false;
	}
	ex->notify_armed = false;
	cond_broadcast(&ex->changed);
	return notify;
}

/* Tunnel thread: puts ex at the head of its list of open streams, so
 * that a tunnel that dies can end every one of them. */
void
exchange_open_link(struct exchange **head, struct exchange *ex)
{
	ex->open_prev = NULL;
	ex->open_next = *head;
	if (*head != NULL)
		(*head)->open_prev = ex;
	*head = ex;
}

/* Tunnel thread: takes ex off its list of open streams. */
void
exchange_open_unlink(struct exchange **head, struct exchange *ex)
{
	if (ex->open_prev != NULL)
		ex->open_prev->open_next = ex->open_next;
	else
		*head = ex->open_next;
	if (ex->open_next != NULL)
		ex->open_next->open_prev = ex->open_prev;
	ex->open_prev = ex->open_next = NULL;
}

/* Tunnel thread: wakes the app thread of every exchange in the batch,
 * once each, after the locks are released (a thread woken while we still
 * held its mutex would only block again on it). */
/* tutorial: batch-flush */
void
exchange_batch_flush(struct exchange_batch *b)
{
	struct exchange *ex;

	while ((ex = b->head) != NULL) {
		bool notify;

		b->head = ex->batch_next;
		ex->batched = false;
		mutex_lock(&ex->mu);
		notify = ex->notify_armed;
		ex->notify_armed = false;
		mutex_unlock(&ex->mu);
		cond_broadcast(&ex->changed);
		if (notify)
			net_wake(ex->notify_fd);
		exchange_unref(ex);
	}
}
/* tutorial: end */

/* Unlocks ex->mu, then writes the notify fd if notify says so. */
static void
exchange_unlock_and_notify(struct exchange *ex, bool notify)
{
	mutex_unlock(&ex->mu);
	if (notify)
		net_wake(ex->notify_fd);
}

/* Implements nghttp2_data_source_read_callback for both directions: it
 * moves out-pipe bytes into a DATA frame. With nothing buffered yet it
 * returns NGHTTP2_ERR_DEFERRED and remembers that it did, so that the
 * next write kicks the tunnel, which then calls nghttp2_session_resume_data.
 * At the end it sends the out trailers, if any, as a last HEADERS frame.
 * out_trailers is read here without worry: it was published by
 * exchange_finish_out() under ex->mu before the end became visible. */
ssize_t
exchange_data_source_read_callback(nghttp2_session *session, int32_t stream_id,
                                   uint8_t *buf, size_t length,
                                   uint32_t *data_flags,
                                   nghttp2_data_source *source, void *user_data)
{
	struct exchange *ex = source->ptr;
	nghttp2_nv *trailers = NULL;
	bool notify = false;
	ssize_t n;

	(void)user_data;
	/* tutorial: data-provider */
	mutex_lock(&ex->mu);
	n = (ssize_t)body_pipe_read(&ex->out, buf, length);
	if (body_pipe_at_end(&ex->out)) {
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (ex->out_trailers.count > 0)
			trailers = headers_to_nv(&ex->out_trailers);
		if (trailers != NULL)
			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	} else if (n == 0 && ex->cancelled) {
		n = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
	} else if (n == 0) {
		ex->out_deferred = true;
		n = NGHTTP2_ERR_DEFERRED;
	}
	/* An upgraded connection's user thread waits in poll() for room as
	 * for response bytes: tell it like an in-side change. */
	if (n > 0 && ex->duplex)
		notify = exchange_in_changed_locked(ex);
	exchange_unlock_and_notify(ex, notify);
	/* tutorial: end */
	if (n > 0)
		cond_broadcast(&ex->changed); /* room for the writer again */
	if (trailers != NULL) {
		/* Allowed inside this callback; ends the stream with HEADERS. */
		if (nghttp2_submit_trailer(session, stream_id, trailers,
		                           ex->out_trailers.count) != 0)
			n = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		free(trailers);
	}
	return n;
}

/* Puts DATA payload into the in pipe. Flow control guarantees it fits:
 * the peer may only send what our window allows, and the window only
 * reopens as the reader frees pipe space. Bytes for a cancelled stream
 * are discarded and consumed at once so the connection window stays open. */
void
exchange_deliver_in(struct exchange *ex, nghttp2_session *session,
                    const uint8_t *data, size_t len)
{
	ssize_t n = 0;

	bool notify = false;

	mutex_lock(&ex->mu);
	if (!ex->cancelled && !ex->released)
		n = body_pipe_write(&ex->in, data, len);
	if (n > 0)
		notify = exchange_in_changed_locked(ex);
	exchange_unlock_and_notify(ex, notify);
	ex->in_delivered += len;
	if (n < (ssize_t)len) {
		/* Discarded (cancelled, or out of memory): give the window back. */
		size_t dropped = len - (size_t)(n > 0 ? n : 0);
		nghttp2_session_consume(session, ex->stream_id, dropped);
		ex->in_consumed += dropped;
	}
}

/* Stores one received field, in in_head or, once the head is done, in
 * in_trailers; fails with PTTH_ETOOBIG past 64 KiB of fields so that a
 * peer cannot make us hold unbounded memory. */
int
exchange_add_in_header(struct exchange *ex, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen)
{
	int rc;

	struct header_list *l;

	mutex_lock(&ex->mu);
	l = ex->in_head_done ? &ex->in_trailers : &ex->in_head;
	if (l->bytes + namelen + valuelen > 64 * 1024)
		rc = PTTH_ETOOBIG;
	else
		rc = header_list_add(l, (const char *)name, namelen,
		                     (const char *)value, valuelen);
	mutex_unlock(&ex->mu);
	return rc;
}

/* Marks the in head complete. On the router, in_status becomes the
 * response's :status (0 when missing, which the user thread turns into
 * a 502). An interim 1xx head is dropped: a final one follows. */
void
exchange_end_in_head(struct exchange *ex)
{
	const char *status;

	mutex_lock(&ex->mu);
	if (ex->in_head_done) {
		mutex_unlock(&ex->mu); /* trailers, not a second head */
		return;
	}
	status = header_list_get(&ex->in_head, ":status");
	ex->in_status = status ? atoi(status) : 0;
	if (ex->in_status >= 100 && ex->in_status < 200) {
		header_list_free(&ex->in_head);
		mutex_unlock(&ex->mu);
		return;
	}
	ex->in_head_done = true;
	exchange_unlock_and_notify(ex, exchange_in_changed_locked(ex));
}

/* Marks the end of the in body (END_STREAM seen). */
void
exchange_finish_in(struct exchange *ex)
{
	mutex_lock(&ex->mu);
	body_pipe_finish(&ex->in);
	exchange_unlock_and_notify(ex, exchange_in_changed_locked(ex));
}

/* Records that the stream is over, with error 0 or a PTTH_E* code, and
 * wakes the app thread. An in body that never saw its end counts as
 * reset. Every byte delivered but not yet reported is handed back to
 * the connection window now: the app may read it later or never. */
void
exchange_close(struct exchange *ex, nghttp2_session *session, int error)
{
	mutex_lock(&ex->mu);
	if (!ex->in.finished && error == 0)
		error = PTTH_ERESET;
	if (ex->error == 0)
		ex->error = error;
	ex->closed = true;
	exchange_unlock_and_notify(ex, exchange_in_changed_locked(ex));
	if (session != NULL && ex->in_delivered > ex->in_consumed)
		nghttp2_session_consume_connection(session,
		                                   ex->in_delivered - ex->in_consumed);
	ex->in_consumed = ex->in_delivered;
}

/* Acts on a kick: reports bytes the app has read to flow control,
 * resumes a deferred data provider, resets a cancelled stream.
 * Returns true when a backend's response head waits to be submitted. */
bool
exchange_service(struct exchange *ex, nghttp2_session *session)
{
	size_t unreported;
	bool cancelled, closed, head_waiting;
	uint32_t reset_code;

	mutex_lock(&ex->mu);
	unreported = body_pipe_take_unreported(&ex->in);
	cancelled = ex->cancelled;
	reset_code = ex->reset_code;
	closed = ex->closed;
	head_waiting = ex->out_head_ready && !ex->head_submitted;
	mutex_unlock(&ex->mu);
	if (closed || ex->stream_id == 0)
		return false;
	/* tutorial: consume */
	if (unreported > 0 && ex->in_consumed + unreported <= ex->in_delivered) {
		nghttp2_session_consume(session, ex->stream_id, unreported);
		ex->in_consumed += unreported;
	}
	/* tutorial: end */
	if (cancelled) {
		if (!ex->reset_sent)
			nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, ex->stream_id,
			                          reset_code);
		ex->reset_sent = true;
		return false;
	}
	/* tutorial: consume */
	/* Fails harmlessly (NGHTTP2_ERR_INVALID_ARGUMENT) when no data is
	 * deferred or the stream is gone, so the result is ignored. */
	nghttp2_session_resume_data(session, ex->stream_id);
	return head_waiting;
	/* tutorial: end */
}
