/*
 * backend.c -- the backend side of a tunnel, the C counterpart of the
 * original's CreateTunnelAndServe(addr, handler): dial the router, then
 * serve HTTP/2 (as the server, with prior knowledge) on that connection.
 *
 * Owns:    the tunnel socket, the server session (through its tunnel
 *          thread), the worker pool that runs handlers, and one reference
 *          on each exchange from its first HEADERS frame to stream close.
 * Threads: backend_thread_main() ("ptth-backend") is the only thread that
 *          calls into the session. Handlers run on "ptth-handler" worker
 *          threads and reach the session only through exchanges and the
 *          inbox (kicks). The caller's thread runs new/start/wait/stop/free.
 * Locks:   none of its own besides those of the inbox, the worker pool
 *          and each exchange; the tunnel thread holds none of them while
 *          calling nghttp2.
 * Interface:
 *   - ptth_backend_start(): dial and start the tunnel thread;
 *   - a request's HEADERS start a handler on a worker; its body arrives
 *     through the exchange's in pipe (ptth_request_read), its response
 *     leaves through the out pipe (ptth_response_write);
 *   - ptth_backend_wait() returns when the tunnel ends; ptth_backend_stop()
 *     ends it (GOAWAY), lets handlers finish and joins every thread.
 * Tutorial: "The backend answers".
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>

#include "ptth.h"
#include "exchange.h"
#include "inbox.h"
#include "lock.h"
#include "log.h"
#include "net.h"
#include "backend.h"
#include "session_io.h"
#include "workers.h"

#define BACKEND_STREAM_WINDOW (256 * 1024)
#define BACKEND_MAX_STREAMS 256       /* advertised SETTINGS_MAX_CONCURRENT_STREAMS */
#define BACKEND_MAX_WORKERS (BACKEND_MAX_STREAMS + 16)

struct ptth_backend {
	/* Set by ptth_backend_new, read-only afterwards: */
	char *router_addr;
	ptth_handler_fn handler;
	void *handler_arg;

	/* Set by start before the threads exist; closed by the tunnel thread: */
	int fd;
	struct inbox inbox;           /* kicks from handler threads */
	struct workers workers;       /* handler threads */
	pthread_t thread;
	atomic_bool stop;             /* set by ptth_backend_stop */

	/* caller's thread only: */
	bool started, joined;
	int result;                   /* written by the tunnel thread, read after join */
};

/* What a handler sees: one request and its response, over one exchange. */
struct handler_call {
	struct ptth_request { struct handler_call *call; } req;
	struct ptth_response { struct handler_call *call; } res;
	struct exchange *ex;
	struct ptth_backend *b;
	char *path;                   /* :path up to '?' */
	const char *query;            /* inside path's allocation, after '?' */
	size_t first_field;           /* index of the first regular field */
	bool head_sent, ended, reset;
};

/* Everything the tunnel thread keeps for itself, on its own stack. */
struct backend_thread {
	struct ptth_backend *b;
	nghttp2_session *session;
	struct session_io io;
	struct exchange *open;
	struct exchange **kicked;
	size_t kicked_alloc;
};

/* ---------------------------------------------------------------------
 * The handler's side: ptth_request_* and ptth_response_*.
 */

static const char *
call_pseudo(const struct handler_call *call, const char *name)
{
	const char *v = header_list_get(&call->ex->in_head, name);

	return v ? v : "";
}

const char *
ptth_request_method(const struct ptth_request *req)
{
	return call_pseudo(req->call, ":method");
}

const char *
ptth_request_path(const struct ptth_request *req)
{
	return req->call->path;
}

const char *
ptth_request_query(const struct ptth_request *req)
{
	return req->call->query;
}

const char *
ptth_request_authority(const struct ptth_request *req)
{
	return call_pseudo(req->call, ":authority");
}

const char *
ptth_request_header(const struct ptth_request *req, const char *name)
{
	if (name[0] == ':')
		return NULL;
	return header_list_get(&req->call->ex->in_head, name);
}

size_t
ptth_request_header_count(const struct ptth_request *req)
{
	return req->call->ex->in_head.count - req->call->first_field;
}

int
ptth_request_header_at(const struct ptth_request *req, size_t i, const char **name,
                       const char **value)
{
	const struct header_list *l = &req->call->ex->in_head;

	i += req->call->first_field;
	if (i >= l->count)
		return -EINVAL;
	*name = l->items[i].name;
	*value = l->items[i].value;
	return 0;
}

ssize_t
ptth_request_read(struct ptth_request *req, void *buf, size_t len)
{
	return exchange_read_in(req->call->ex, buf, len, true);
}

int
ptth_response_set_status(struct ptth_response *res, int status)
{
	if (res->call->head_sent || status < 100 || status > 999)
		return PTTH_ESTATE;
	res->call->ex->out_status = status;
	return 0;
}

/* Adds a field with its name in lower case, as HTTP/2 requires.
 * Returns 0, -EINVAL for an empty or oversized name, or -ENOMEM. */
static int
call_add_field(struct header_list *l, const char *name, const char *value)
{
	char lower[256];
	size_t len = strlen(name);

	if (len == 0 || len >= sizeof lower)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	return header_list_add(l, lower, len, value, strlen(value));
}

int
ptth_response_add_header(struct ptth_response *res, const char *name, const char *value)
{
	if (res->call->head_sent)
		return PTTH_ESTATE;
	return call_add_field(&res->call->ex->out_head, name, value);
}

int
ptth_response_add_trailer(struct ptth_response *res, const char *name, const char *value)
{
	if (res->call->ended)
		return PTTH_ESTATE;
	return call_add_field(&res->call->ex->out_trailers, name, value);
}

/* Publishes the response head (once). */
static void
call_send_head(struct handler_call *call)
{
	if (call->head_sent)
		return;
	call->head_sent = true;
	exchange_commit_head(call->ex);
}

int
ptth_response_write(struct ptth_response *res, const void *data, size_t len)
{
	struct handler_call *call = res->call;

	if (call->ended || call->reset)
		return PTTH_ESTATE;
	call_send_head(call);
	return exchange_write_out_all(call->ex, data, len);
}

int
ptth_response_end(struct ptth_response *res)
{
	struct handler_call *call = res->call;

	if (call->ended || call->reset)
		return 0;
	call->ended = true;
	/* Finish first: a head committed with an empty, finished body goes
	 * out as one HEADERS frame with END_STREAM. */
	exchange_finish_out(call->ex);
	call_send_head(call);
	return 0;
}

void
ptth_response_reset(struct ptth_response *res)
{
	res->call->reset = true;
	exchange_cancel(res->call->ex);
}

int
ptth_response_send(struct ptth_response *res, int status, const char *content_type,
                   const void *body, size_t len)
{
	char length[32];
	int rc;

	snprintf(length, sizeof length, "%zu", len);
	rc = ptth_response_set_status(res, status);
	if (rc == 0 && content_type != NULL)
		rc = ptth_response_add_header(res, "content-type", content_type);
	if (rc == 0)
		rc = ptth_response_add_header(res, "content-length", length);
	if (rc == 0 && len > 0)
		rc = ptth_response_write(res, body, len);
	if (rc == 0)
		rc = ptth_response_end(res);
	return rc;
}

/* Runs on a worker thread: the handler, then whatever it left undone. */
static void
call_run(void *job)
{
	struct handler_call *call = job;
	struct ptth_backend *b = call->b;

	b->handler(&call->req, &call->res, b->handler_arg);
	if (!call->reset)
		ptth_response_end(&call->res);
	exchange_release(call->ex, true);
	free(call->path);
	free(call);
}

/* Tunnel thread: builds the handler's view of a complete request head
 * and hands it to a worker. Returns 0 or a negative code (the caller
 * resets the stream). */
static int
call_start(struct ptth_backend *b, struct exchange *ex)
{
	struct handler_call *call = calloc(1, sizeof *call);
	const struct header_list *l = &ex->in_head;
	char *q;
	int rc;

	if (call == NULL)
		return -ENOMEM;
	call->req.call = call->res.call = call;
	call->ex = ex;
	call->b = b;
	call->path = strdup(header_list_get(l, ":path") ? header_list_get(l, ":path") : "/");
	if (call->path == NULL) {
		free(call);
		return -ENOMEM;
	}
	q = strchr(call->path, '?');
	call->query = q ? q + 1 : "";
	if (q != NULL)
		*q = '\0';
	while (call->first_field < l->count && l->items[call->first_field].name[0] == ':')
		call->first_field++;
	exchange_ref(ex); /* the handler's reference, dropped by exchange_release */
	rc = workers_submit(&b->workers, call);
	if (rc < 0) {
		exchange_unref(ex);
		free(call->path);
		free(call);
	}
	return rc;
}

/* ---------------------------------------------------------------------
 * The tunnel thread's side: session callbacks and the loop.
 */

static void
open_link(struct backend_thread *bt, struct exchange *ex)
{
	ex->open_prev = NULL;
	ex->open_next = bt->open;
	if (bt->open != NULL)
		bt->open->open_prev = ex;
	bt->open = ex;
}

static void
open_unlink(struct backend_thread *bt, struct exchange *ex)
{
	if (ex->open_prev != NULL)
		ex->open_prev->open_next = ex->open_next;
	else
		bt->open = ex->open_next;
	if (ex->open_next != NULL)
		ex->open_next->open_prev = ex->open_prev;
	ex->open_prev = ex->open_next = NULL;
}

/* Implements nghttp2_on_begin_headers_callback. We use it to create the
 * exchange of each new request stream. */
static int
on_begin_headers_callback(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data)
{
	struct backend_thread *bt = user_data;
	struct exchange *ex;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	ex = exchange_new(BACKEND_STREAM_WINDOW);
	if (ex == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	ex->inbox = &bt->b->inbox;
	ex->stream_id = frame->hd.stream_id;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, ex);
	open_link(bt, ex);
	return 0;
}

/* Implements nghttp2_on_header_callback. We use it to collect request
 * fields; trailers are ignored. */
static int
on_header_callback(nghttp2_session *session, const nghttp2_frame *frame,
                   const uint8_t *name, size_t namelen, const uint8_t *value,
                   size_t valuelen, uint8_t flags, void *user_data)
{
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

	(void)flags;
	(void)user_data;
	if (ex == NULL || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (exchange_add_in_header(ex, name, namelen, value, valuelen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

/* Implements nghttp2_on_frame_recv_callback. We use it to start the
 * handler once a request head is complete and to mark the end of a
 * request body. */
static int
on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data)
{
	struct backend_thread *bt = user_data;
	struct exchange *ex;

	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex == NULL)
		return 0;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		exchange_finish_in(ex);
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		exchange_end_in_head(ex);
		if (call_start(bt->b, ex) < 0)
			nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
			                          NGHTTP2_REFUSED_STREAM);
	}
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
	struct backend_thread *bt = user_data;
	struct exchange *ex = nghttp2_session_get_stream_user_data(session, stream_id);

	if (ex == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	open_unlink(bt, ex);
	exchange_close(ex, session, error_code == NGHTTP2_NO_ERROR ? 0 : PTTH_ERESET);
	exchange_unref(ex);
	return 0;
}

/* Creates the server session and queues our SETTINGS.
 * Returns 0 or a negative code. */
static int
backend_session_new(struct backend_thread *bt)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, BACKEND_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, BACKEND_STREAM_WINDOW },
	};
	int rc = -ENOMEM;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0)
		goto out_cbs;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers_callback);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_callback);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_callback);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv_callback);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close_callback);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	if (nghttp2_session_server_new2(&bt->session, cbs, bt, opt) != 0)
		goto out_opt;
	rc = PTTH_EPROTO;
	if (nghttp2_submit_settings(bt->session, NGHTTP2_FLAG_NONE, settings,
	                            sizeof settings / sizeof settings[0]) != 0 ||
	    nghttp2_session_set_local_window_size(bt->session, NGHTTP2_FLAG_NONE, 0,
	                                          1 << 30) != 0) {
		nghttp2_session_del(bt->session);
		bt->session = NULL;
		goto out_opt;
	}
	rc = 0;
out_opt:
	nghttp2_option_del(opt);
out_cbs:
	nghttp2_session_callbacks_del(cbs);
	return rc;
}

/* Submits the response HEADERS a handler committed: :status first, then
 * its fields; a body already known to be empty needs no DATA provider. */
static void
backend_submit_response(struct backend_thread *bt, struct exchange *ex)
{
	nghttp2_data_provider body = {
		.source.ptr = ex,
		.read_callback = exchange_data_source_read_callback,
	};
	struct header_list head;
	char status[8];
	nghttp2_nv *nv;
	bool empty;

	ex->head_submitted = true;
	mutex_lock(&ex->mu);
	empty = body_pipe_at_end(&ex->out);
	mutex_unlock(&ex->mu);
	header_list_init(&head);
	snprintf(status, sizeof status, "%d", ex->out_status);
	int rc = header_list_add(&head, ":status", 7, status, strlen(status));
	for (size_t i = 0; rc == 0 && i < ex->out_head.count; i++)
		rc = header_list_add(&head, ex->out_head.items[i].name, ex->out_head.items[i].name_len,
		                     ex->out_head.items[i].value, ex->out_head.items[i].value_len);
	nv = rc == 0 ? headers_to_nv(&head) : NULL;
	if (nv == NULL || nghttp2_submit_response(bt->session, ex->stream_id, nv, head.count,
	                                          empty ? NULL : &body) != 0)
		nghttp2_submit_rst_stream(bt->session, NGHTTP2_FLAG_NONE, ex->stream_id,
		                          NGHTTP2_INTERNAL_ERROR);
	free(nv);
	header_list_free(&head);
}

/* Takes kicks from handler threads. */
static void
backend_take_work(struct backend_thread *bt)
{
	struct inbox *ib = &bt->b->inbox;
	size_t n;

	inbox_drain_wake(ib);
	n = inbox_take_kicked(ib, &bt->kicked, &bt->kicked_alloc);
	for (size_t i = 0; i < n; i++) {
		if (exchange_service(bt->kicked[i], bt->session))
			backend_submit_response(bt, bt->kicked[i]);
		exchange_unref(bt->kicked[i]);
	}
}

/* The loop, as on the router side (see tunnel.c). Returns 0 when the
 * router ended the tunnel or stop was asked, else a negative code. */
static int
backend_run(struct backend_thread *bt)
{
	int rc;

	for (;;) {
		if (atomic_load(&bt->b->stop))
			nghttp2_session_terminate_session(bt->session, NGHTTP2_NO_ERROR);
		rc = session_io_flush(&bt->io, bt->session);
		if (rc < 0)
			return rc;
		if (session_io_done(&bt->io, bt->session))
			return 0;
		rc = session_io_wait(&bt->io, bt->b->inbox.wake_fd, -1);
		if (rc < 0)
			return rc;
		if (rc & SESSION_IO_WOKEN)
			backend_take_work(bt);
		if (rc & SESSION_IO_READABLE) {
			rc = session_io_recv(&bt->io, bt->session);
			if (rc == PTTH_ECLOSED)
				return 0;
			if (rc < 0)
				return rc;
		}
	}
}

/* Ends every stream still open, so every handler blocked on one wakes. */
static void
backend_fail_all(struct backend_thread *bt)
{
	struct exchange *ex;
	size_t n;

	n = inbox_take_kicked(&bt->b->inbox, &bt->kicked, &bt->kicked_alloc);
	for (size_t i = 0; i < n; i++)
		exchange_unref(bt->kicked[i]);
	while ((ex = bt->open) != NULL) {
		open_unlink(bt, ex);
		exchange_close(ex, NULL, PTTH_ECLOSED);
		exchange_unref(ex);
	}
}

static void *
backend_thread_main(void *arg)
{
	struct backend_thread bt = { .b = arg };
	struct ptth_backend *b = bt.b;

	pthread_setname_np(pthread_self(), "ptth-backend");
	session_io_init(&bt.io, b->fd);
	b->result = backend_session_new(&bt);
	if (b->result == 0)
		b->result = backend_run(&bt);
	inbox_close(&b->inbox);
	backend_fail_all(&bt);
	if (bt.session != NULL)
		nghttp2_session_del(bt.session);
	close(b->fd);
	b->fd = -1;
	session_io_destroy(&bt.io);
	free(bt.kicked);
	return NULL;
}

/* ---------------------------------------------------------------------
 * The public life cycle.
 */

struct ptth_backend *
ptth_backend_new(const struct ptth_backend_options *opts)
{
	struct ptth_backend *b;

	if (opts->handler == NULL || opts->router_addr == NULL)
		return NULL;
	b = calloc(1, sizeof *b);
	if (b == NULL)
		return NULL;
	b->router_addr = strdup(opts->router_addr);
	if (b->router_addr == NULL) {
		free(b);
		return NULL;
	}
	b->handler = opts->handler;
	b->handler_arg = opts->handler_arg;
	b->fd = -1;
	atomic_init(&b->stop, false);
	return b;
}

/* Starts serving on fd, a connection to the router made by the caller
 * (ptth_backend_start dials; tests pass one end of a socketpair). Takes
 * ownership of fd, closing it on failure. Returns 0 or a negative code. */
int
backend_start_fd(struct ptth_backend *b, int fd)
{
	int rc;

	if (b->started) {
		close(fd);
		return PTTH_ESTATE;
	}
	b->fd = fd;
	net_set_nodelay(b->fd);
	rc = inbox_init(&b->inbox, 1); /* kicks only: the queue stays empty */
	if (rc < 0)
		goto out_close;
	rc = workers_init(&b->workers, call_run, BACKEND_MAX_WORKERS, 4 * BACKEND_MAX_STREAMS);
	if (rc < 0)
		goto out_inbox;
	rc = -pthread_create(&b->thread, NULL, backend_thread_main, b);
	if (rc < 0)
		goto out_workers;
	b->started = true;
	b->joined = false;
	return 0;
out_workers:
	workers_stop(&b->workers);
out_inbox:
	inbox_destroy(&b->inbox);
out_close:
	close(b->fd);
	b->fd = -1;
	return rc;
}

int
ptth_backend_start(struct ptth_backend *b)
{
	int fd;

	if (b->started)
		return PTTH_ESTATE;
	fd = net_dial(b->router_addr);
	if (fd < 0)
		return fd;
	return backend_start_fd(b, fd);
}

int
ptth_backend_wait(struct ptth_backend *b)
{
	if (!b->started)
		return PTTH_ESTATE;
	if (!b->joined) {
		pthread_join(b->thread, NULL);
		b->joined = true;
	}
	return b->result;
}

void
ptth_backend_stop(struct ptth_backend *b)
{
	if (!b->started)
		return;
	atomic_store(&b->stop, true);
	inbox_wake(&b->inbox);
	ptth_backend_wait(b);
	workers_stop(&b->workers);
	inbox_destroy(&b->inbox);
	b->started = false;
}

void
ptth_backend_free(struct ptth_backend *b)
{
	if (b == NULL)
		return;
	ptth_backend_stop(b);
	free(b->router_addr);
	free(b);
}

int
ptth_backend_serve(const char *router_addr, ptth_handler_fn handler, void *arg)
{
	struct ptth_backend_options opts = {
		.router_addr = router_addr,
		.handler = handler,
		.handler_arg = arg,
	};
	struct ptth_backend *b = ptth_backend_new(&opts);
	int rc;

	if (b == NULL)
		return -ENOMEM;
	rc = ptth_backend_start(b);
	if (rc == 0)
		rc = ptth_backend_wait(b);
	ptth_backend_free(b);
	return rc;
}
