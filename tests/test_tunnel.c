/*
 * test_tunnel.c -- unit tests for the tunnel thread pair: a router-side
 * tunnel (src/tunnel.c) talking HTTP/2 to a backend (src/backend.c) over a
 * socketpair, with no HTTP/1 and no listening socket.
 *
 * Each test gets a router that is created but never started, and a live
 * tunnel: tunnel_start() on one end of the socketpair, backend_start_fd()
 * on the other, serving test_handler(). The test thread then plays the
 * user connection through the internal API, as src/user_conn.c does:
 * pool_pick(), exchange_new(), tunnel_submit(), exchange_write_out_all(),
 * exchange_wait(), exchange_read_in(), exchange_release(), tunnel_unref().
 *
 * Covered: status, body and fields of a response; a 1 MiB POST echoed
 * while it is being sent; 100 streams open at once on one tunnel; a slow
 * reader stalling only its own stream; cancelled streams giving their
 * flow-control window back; a handler's reset; a backend going away with
 * requests in flight; and ptth_router_stop() of a router never started.
 *
 * Handlers and reader threads only record what happened; the test thread
 * joins every thread it starts and asserts afterwards, as STYLE.md asks.
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
#include <sys/socket.h>
#include <unistd.h>

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

struct fixture {
	struct ptth_router *r;
	struct ptth_backend *b;
	struct backend_state bs;
};

static int
fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct ptth_router_options ropts;
	struct ptth_backend_options bopts;
	int sv[2];

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
	*state = f;
	if (f->r == NULL || f->b == NULL)
		return -1;
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
 * handler answers until every one of them has started. */
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
	assert_int_equal(tunnel_submit(late.t, late.ex), -EPIPE);
	exchange_unref(late.ex);
	request_end(&no_head);
	request_end(&mid_body);
	assert_int_equal(router_wait_threads_gone(f->r), 0);
	assert_int_equal(f->bs.failures, 0);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TUNNEL_TEST(test_tunnel_get_returns_status_and_body),
		TUNNEL_TEST(test_tunnel_response_fields_reach_the_exchange),
		TUNNEL_TEST(test_tunnel_post_body_is_echoed_byte_identical),
		TUNNEL_TEST(test_tunnel_carries_100_concurrent_exchanges),
		TUNNEL_TEST(test_tunnel_slow_reader_does_not_stall_other_exchanges),
		TUNNEL_TEST(test_tunnel_cancelled_exchange_leaves_tunnel_usable),
		TUNNEL_TEST(test_tunnel_cancelled_exchanges_do_not_leak_connection_window),
		TUNNEL_TEST(test_tunnel_handler_reset_fails_the_exchange),
		TUNNEL_TEST(test_tunnel_backend_stop_fails_in_flight_exchanges),
		TUNNEL_TEST(test_tunnel_router_stop_ends_tunnels_of_unstarted_router),
	};

	ptth_log_set_verbose(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
