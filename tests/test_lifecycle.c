/*
 * test_lifecycle.c -- tunnels that come and go under load, against the
 * real router: in-process routers and backends on ephemeral ports, real
 * bin/backend and bin/router processes, users through libcurl.
 *
 * What is proved here, one behaviour per test:
 *   - a bin/backend frozen with SIGSTOP is dropped after the PING
 *     timeout, the other backend takes the traffic, and after SIGCONT the
 *     process redials and serves again;
 *   - backends (a process and an in-process one) redial a router that
 *     was freed and started again on the same tunnel port;
 *   - churn: three bin/backend processes, one SIGKILLed and restarted
 *     every second under load; every answer is 200 "bar" or a 502, none
 *     hangs; and, what that needs from a backend, a whole response
 *     (ptth_response_send) leaves it in one write, head and body together;
 *   - ptth_router_shutdown() lets requests in flight finish, and
 *     ptth_backend_stop() under load costs no request (GOAWAY, retries);
 *   - a backend answering RST_STREAM(REFUSED_STREAM), and one sending
 *     GOAWAY(last_stream_id 0), both small nghttp2 servers written here,
 *     lead to retries that succeed on another tunnel, also when tunnels
 *     are picked at random;
 *   - random, round-robin and least-busy balancing spread load as they say;
 *   - ptth_backend_wait() after ptth_backend_stop() returns how the
 *     tunnels ended, PTTH_ESTATE only before a start;
 *   - bin/router and bin/backend exit 0 on SIGTERM, and a bin/backend
 *     started before its router connects once the router is there.
 *
 * Run some tests only with make test TESTS=NAME FILTER=WORD.
 *
 * Load threads only make requests and count answers; the test thread
 * joins them before asserting (cmocka's assertions may fail only on
 * the test's own thread). Child processes are reaped before any
 * assertion so a failure leaves none behind (they are also killed with
 * the suite, see harness_spawn()). Waits on the router's
 * tunnel count going down, and on another process, poll with short
 * pauses: nothing there can be blocked on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>

#include "support/harness.h"

#define WAIT_MS HARNESS_TIMEOUT_MS  /* bound for waits that should be quick */
#define EXIT_WAIT_MS 15000          /* a process must exit this soon after SIGTERM */
#define LOAD_MAX_THREADS 16
#define BACKOFF_MAX "200"           /* --backoff-max-ms for bin/backend */

/* A request that takes longer than this counts as hung. */
static long
request_timeout_ms(void)
{
	return harness_sanitized() ? 10000 : 5000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The absolute CLOCK_MONOTONIC time ms from now, for timed waits on
 * condition variables made by cond_init_monotonic(). */
static struct timespec
deadline_in(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void
cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* Starts a router on 127.0.0.1:tunnel_port (and any HTTP port) with the
 * given options (NULL: defaults). Returns 0 or a negative code; on
 * failure hr->router is NULL. */
static int
router_start_on(struct harness_router *hr, int tunnel_port,
                const struct ptth_router_options *with)
{
	struct ptth_router_options opts;
	char tunnel_addr[32];
	int rc;

	memset(hr, 0, sizeof *hr);
	if (with != NULL)
		opts = *with;
	else
		ptth_router_options_init(&opts);
	snprintf(tunnel_addr, sizeof tunnel_addr, "127.0.0.1:%d", tunnel_port);
	opts.http_addr = "127.0.0.1:0";
	opts.tunnel_addr = tunnel_addr;
	hr->router = ptth_router_new(&opts);
	if (hr->router == NULL)
		return -ENOMEM;
	rc = ptth_router_start(hr->router);
	if (rc == 0)
		rc = ptth_router_ports(hr->router, &hr->http_port, &hr->tunnel_port);
	if (rc < 0)
		harness_router_free(hr);
	return rc;
}

/* ---------------------------------------------------------------------
 * An in-process backend that counts what it serves:
 *   GET /who         200 and its name
 *   GET /sleep?ms=N  200 "bar" after N ms
 *   anything else    200 "bar"
 * Every request first sleeps delay_ms (a slow backend).
 */
struct counted {
	/* Set before the backend starts, read-only afterwards: */
	struct ptth_backend *backend;
	char name[16];
	int delay_ms;

	pthread_mutex_t mu;          /* taken alone, never while calling ptth */
	pthread_cond_t changed;      /* any field below changed */
	/* guarded by mu: */
	long served;                 /* handlers started */
	int active;                  /* handlers running now */
	int sleeping;                /* of which inside /sleep */
	long long last_end_ms;       /* when a handler last finished */
};

/* Reads ms=N from a query string; 0 when absent. */
static long
query_ms(const char *query)
{
	const char *p = strstr(query, "ms=");

	return p != NULL ? strtol(p + 3, NULL, 10) : 0;
}

static void
counted_serve(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct counted *cb = arg;
	const char *path = ptth_request_path(req);
	bool sleep_route = strcmp(path, "/sleep") == 0;
	const char *body = strcmp(path, "/who") == 0 ? cb->name : "bar";
	long ms = cb->delay_ms + (sleep_route ? query_ms(ptth_request_query(req)) : 0);

	pthread_mutex_lock(&cb->mu);
	cb->served++;
	cb->active++;
	cb->sleeping += sleep_route;
	pthread_cond_broadcast(&cb->changed);
	pthread_mutex_unlock(&cb->mu);
	if (ms > 0)
		sleep_ms(ms);
	ptth_response_send(res, 200, "text/plain", body, strlen(body));
	pthread_mutex_lock(&cb->mu);
	cb->active--;
	cb->sleeping -= sleep_route;
	cb->last_end_ms = harness_now_ms();
	pthread_cond_broadcast(&cb->changed);
	pthread_mutex_unlock(&cb->mu);
}

/* Starts a backend called name that dials 127.0.0.1:tunnel_port; with
 * reconnect it redials with backoff capped at 200 ms. It does not wait
 * for the router to list the tunnel. Returns 0 or a negative code (then
 * nothing is left to free). */
static int
counted_start(struct counted *cb, const char *name, int tunnel_port, int delay_ms,
              bool reconnect)
{
	struct ptth_backend_options opts;
	char addr[32];
	int rc;

	memset(cb, 0, sizeof *cb);
	snprintf(cb->name, sizeof cb->name, "%s", name);
	cb->delay_ms = delay_ms;
	pthread_mutex_init(&cb->mu, NULL);
	cond_init_monotonic(&cb->changed);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tunnel_port);
	ptth_backend_options_init(&opts);
	opts.router_addr = addr;
	opts.handler = counted_serve;
	opts.handler_arg = cb;
	opts.reconnect = reconnect;
	opts.backoff_max_ms = 200;
	cb->backend = ptth_backend_new(&opts);
	rc = cb->backend != NULL ? ptth_backend_start(cb->backend) : -ENOMEM;
	if (rc < 0) {
		ptth_backend_free(cb->backend);
		pthread_cond_destroy(&cb->changed);
		pthread_mutex_destroy(&cb->mu);
	}
	return rc;
}

/* Starts the backend and waits until the router lists one more tunnel. */
static int
counted_start_listed(struct counted *cb, struct harness_router *hr, const char *name,
                     int delay_ms)
{
	int before = ptth_router_tunnel_count(hr->router);
	int rc = counted_start(cb, name, hr->tunnel_port, delay_ms, false);

	if (rc == 0)
		rc = ptth_router_wait_tunnels(hr->router, before + 1, WAIT_MS);
	return rc;
}

static void
counted_free(struct counted *cb)
{
	ptth_backend_free(cb->backend);
	pthread_cond_destroy(&cb->changed);
	pthread_mutex_destroy(&cb->mu);
}

static long
counted_served(struct counted *cb)
{
	long n;

	pthread_mutex_lock(&cb->mu);
	n = cb->served;
	pthread_mutex_unlock(&cb->mu);
	return n;
}

/* Waits until at least n handlers are inside /sleep at once.
 * Returns 0 or -ETIMEDOUT. */
static int
counted_wait_sleeping(struct counted *cb, int n, int timeout_ms)
{
	struct timespec deadline = deadline_in(timeout_ms);
	int rc = 0;
	bool ok;

	pthread_mutex_lock(&cb->mu);
	while (cb->sleeping < n && rc == 0)
		rc = pthread_cond_timedwait(&cb->changed, &cb->mu, &deadline);
	ok = cb->sleeping >= n;
	pthread_mutex_unlock(&cb->mu);
	return ok ? 0 : -ETIMEDOUT;
}

/* ---------------------------------------------------------------------
 * Load: threads that GET their URL in a loop (or once) on a keep-alive
 * libcurl handle, each request bounded by request_timeout_ms(), and
 * classify every answer.
 */
struct load_result {
	long ok;            /* 200 "bar" */
	long s502;          /* the tunnel failed under the request */
	long s503;          /* no tunnel took it although one was listed */
	long s503_excused;  /* 503 while the router listed no tunnel */
	long hung;          /* no complete answer within the request timeout */
	long other;         /* anything else: a wrong body, a cut answer, ... */
	long cut;           /* a 200 head whose body was cut short (curl error 18) */
	long other_status;  /* the last such answer's status */
	CURLcode other_rc;  /* and libcurl's code for it */
	uint64_t other_bytes; /* and the body bytes it brought */
};

struct load;

struct load_worker {
	struct load *l;
	pthread_t thread;
	char url[128];
};

struct load {
	/* Set before the threads start, read-only afterwards: */
	struct ptth_router *router;  /* to tell an excusable 503 */
	struct harness_router *hr;
	struct load_worker workers[LOAD_MAX_THREADS];
	int count;
	int started;
	bool once;                   /* one request per thread */

	pthread_mutex_t mu;          /* taken alone */
	pthread_cond_t changed;      /* a request ended, or stop was asked */
	/* guarded by mu: */
	bool stop;
	struct load_result r;
};

static void
load_init(struct load *l, struct harness_router *hr, bool once)
{
	memset(l, 0, sizeof *l);
	l->router = hr->router;
	l->hr = hr;
	l->once = once;
	pthread_mutex_init(&l->mu, NULL);
	cond_init_monotonic(&l->changed);
}

/* Adds n threads that request path. */
static void
load_add(struct load *l, const char *path, int n)
{
	for (int i = 0; i < n && l->count < LOAD_MAX_THREADS; i++) {
		struct load_worker *w = &l->workers[l->count++];
		w->l = l;
		harness_url(l->hr, path, w->url, sizeof w->url);
	}
}

/* Counts one answer. A 503 is excused only when the router listed no
 * tunnel just before or just after the request: then "no tunnel took
 * it" was the truth at some instant of the request's life. With a
 * tunnel listed throughout, a 503 means a request was lost. */
static void
load_record(struct load *l, CURLcode rc, const struct http_reply *reply, bool no_tunnel)
{
	struct load_result *r = &l->r;

	pthread_mutex_lock(&l->mu);
	if (rc == CURLE_OK && reply->status == 200 && strcmp(reply->body, "bar") == 0) {
		r->ok++;
	} else if (rc == CURLE_OK && reply->status == 502) {
		r->s502++;
	} else if (rc == CURLE_OK && reply->status == 503) {
		if (no_tunnel)
			r->s503_excused++;
		else
			r->s503++;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		r->hung++;
	} else {
		r->other++;
		r->cut += rc == CURLE_PARTIAL_FILE && reply->status == 200;
		r->other_status = reply->status;
		r->other_rc = rc;
		r->other_bytes = reply->total;
	}
	pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->mu);
}

static bool
load_stopping(struct load *l)
{
	bool stop;

	pthread_mutex_lock(&l->mu);
	stop = l->stop;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

static void *
load_thread_main(void *arg)
{
	struct load_worker *w = arg;
	struct load *l = w->l;
	char body[64];
	struct http_reply reply = { .body = body, .cap = sizeof body };
	CURL *c = http_client_new();

	if (c == NULL) {
		load_record(l, CURLE_FAILED_INIT, &reply, false);
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, request_timeout_ms());
	do {
		int before = ptth_router_tunnel_count(l->router);
		CURLcode rc = http_client_get(c, w->url, &reply);
		int after = ptth_router_tunnel_count(l->router);
		load_record(l, rc, &reply, before == 0 || after == 0);
	} while (!l->once && !load_stopping(l));
	curl_easy_cleanup(c);
	return NULL;
}

/* Starts every thread added. Returns 0 or a negative code (the threads
 * started so far run on until load_finish()). */
static int
load_run(struct load *l)
{
	for (; l->started < l->count; l->started++) {
		struct load_worker *w = &l->workers[l->started];
		int rc = pthread_create(&w->thread, NULL, load_thread_main, w);
		if (rc != 0)
			return -rc;
	}
	return 0;
}

/* Waits until at least n answers were 200 "bar". Returns 0 or -ETIMEDOUT. */
static int
load_wait_ok(struct load *l, long n, int timeout_ms)
{
	struct timespec deadline = deadline_in(timeout_ms);
	int rc = 0;
	bool ok;

	pthread_mutex_lock(&l->mu);
	while (l->r.ok < n && rc == 0)
		rc = pthread_cond_timedwait(&l->changed, &l->mu, &deadline);
	ok = l->r.ok >= n;
	pthread_mutex_unlock(&l->mu);
	return ok ? 0 : -ETIMEDOUT;
}

static long
load_ok(struct load *l)
{
	long n;

	pthread_mutex_lock(&l->mu);
	n = l->r.ok;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Stops the threads (each ends after its current request), joins them
 * and returns the counts. */
static struct load_result
load_finish(struct load *l)
{
	struct load_result r;

	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->mu);
	for (int i = 0; i < l->started; i++)
		pthread_join(l->workers[i].thread, NULL);
	r = l->r;
	pthread_cond_destroy(&l->changed);
	pthread_mutex_destroy(&l->mu);
	return r;
}

static long
load_total(const struct load_result *r)
{
	return r->ok + r->s502 + r->s503 + r->s503_excused + r->hung + r->other;
}

static void
load_print(const char *what, const struct load_result *r)
{
	print_message("%s: %ld requests: %ld ok, %ld 502, %ld 503 (+%ld with no tunnel), "
	              "%ld hung, %ld other, of which %ld 200 cut short (last other: status %ld, "
	              "curl %d, %llu body bytes)\n",
	              what, load_total(r), r->ok, r->s502, r->s503, r->s503_excused, r->hung,
	              r->other, r->cut, r->other_status, (int)r->other_rc,
	              (unsigned long long)r->other_bytes);
}

/* ---------------------------------------------------------------------
 * Processes.
 */

/* Starts bin/backend dialling 127.0.0.1:tunnel_port, quiet, redialling
 * with backoff capped at 200 ms; extra is one more flag and its value,
 * or NULL. Returns the pid or a negative code. */
static pid_t
spawn_backend(int tunnel_port, const char *extra, const char *extra_value)
{
	char addr[32];
	const char *args[] = { "--router", addr, "--quiet", "--backoff-max-ms", BACKOFF_MAX,
	                       extra, extra_value, NULL };

	snprintf(addr, sizeof addr, "127.0.0.1:%d", tunnel_port);
	return harness_spawn("backend", args);
}

/* Sends SIGTERM and waits for the exit. Returns true when the process
 * exited with status 0 in time; *what describes the outcome. */
static bool
terminate_cleanly(pid_t pid, char *what, size_t size)
{
	int status = 0;
	int rc;

	if (kill(pid, SIGTERM) < 0) {
		snprintf(what, size, "kill: %s", strerror(errno));
		harness_kill(pid, SIGKILL);
		return false;
	}
	rc = harness_wait_exit(pid, EXIT_WAIT_MS, &status);
	harness_describe_exit(rc, status, what, size);
	return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* True when a request reaches the bin/backend process within tries
 * requests (round-robin visits every tunnel in turn): GET /who, a route
 * only the in-process backends have, answered 404 by bin/backend's mux. */
static bool
process_serves(struct harness_router *hr, int tries)
{
	char url[128];
	long status = 0;

	harness_url(hr, "/who", url, sizeof url);
	for (int i = 0; i < tries; i++)
		if (http_get(url, &status, NULL, 0, NULL) == CURLE_OK && status == 404)
			return true;
	return false;
}

/* GET path through hr; true when the answer is 200 with body want. */
static bool
get_is(struct harness_router *hr, const char *path, const char *want)
{
	char url[128], body[64];
	long status = 0;

	harness_url(hr, path, url, sizeof url);
	return http_get(url, &status, body, sizeof body, NULL) == CURLE_OK && status == 200 &&
	       strcmp(body, want) == 0;
}

/* True when GET /who answers name within tries requests. */
static bool
who_serves(struct harness_router *hr, const char *name, int tries)
{
	for (int i = 0; i < tries; i++)
		if (get_is(hr, "/who", name))
			return true;
	return false;
}

/* ---------------------------------------------------------------------
 * Keepalive: a frozen backend.
 */

static void
test_lifecycle_frozen_backend_is_dropped_then_reconnects(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *a;
	struct load load;
	struct load_result res;
	long long t0, drop_ms = -1, back_ms = -1;
	int two, dropped = -1, back = -1, who_a = 0, count_at_cont = -1;
	bool served_before, served_after = false;

	(void)state;
	ptth_router_options_init(&opts);
	opts.ping_interval_ms = 200;
	opts.ping_timeout_ms = 200;
	opts.balance = PTTH_BALANCE_ROUND_ROBIN;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	a = harness_backend_start(&hr, "a"); /* the survivor: GET /who says "a" */
	assert_non_null(a);
	pid_t pid = spawn_backend(hr.tunnel_port, NULL, NULL);
	assert_true(pid > 0);
	two = ptth_router_wait_tunnels(hr.router, 2, WAIT_MS);
	served_before = two == 0 && process_serves(&hr, 4);

	if (served_before) {
		/* Frozen: the socket stays open, but nothing answers PINGs. */
		kill(pid, SIGSTOP);
		t0 = harness_now_ms();
		dropped = ptth_router_wait_tunnels_at_most(hr.router, 1, WAIT_MS);
		drop_ms = harness_now_ms() - t0;
	}
	/* The load starts after the drop: a request the router wrote to the
	 * frozen tunnel before the PING timeout may have been processed, so
	 * it ends in a 502, not a retry. From the drop on, every request
	 * must succeed, through the reconnect too. */
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 2);
	if (dropped == 0 && load_run(&load) == 0) {
		/* Only the survivor answers now. */
		for (int i = 0; i < 20; i++)
			who_a += get_is(&hr, "/who", "a");
		count_at_cont = ptth_router_tunnel_count(hr.router);
		kill(pid, SIGCONT);
		t0 = harness_now_ms();
		/* The process finds its connection closed (EOF) and redials. */
		back = ptth_router_wait_tunnels(hr.router, 2, WAIT_MS);
		back_ms = harness_now_ms() - t0;
		load_wait_ok(&load, load_ok(&load) + 20, WAIT_MS);
	}
	res = load_finish(&load);
	/* Asked with the load stopped, so that round-robin turns alternate
	 * between the two tunnels for this thread alone. */
	served_after = back == 0 && process_serves(&hr, 4);
	int killed = harness_kill(pid, SIGKILL);
	harness_backend_free(a);
	harness_router_free(&hr);

	print_message("frozen tunnel dropped %lld ms after SIGSTOP; back %lld ms after SIGCONT\n",
	              drop_ms, back_ms);
	load_print("from the drop until the process served again", &res);
	assert_int_equal(two, 0);
	assert_true(served_before);
	assert_int_equal(dropped, 0);
	assert_int_equal(who_a, 20);
	assert_int_equal(count_at_cont, 1);
	assert_int_equal(back, 0);
	assert_true(served_after);
	assert_true(res.ok >= 20);
	assert_int_equal(res.ok, load_total(&res)); /* every request 200 "bar" */
	assert_true(WIFSIGNALED(killed)); /* it was still running */
}

/* ---------------------------------------------------------------------
 * Reconnect: the router restarted on the same port.
 */

static void
test_lifecycle_backends_redial_a_restarted_router(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct counted cb;
	int tunnel_port, two, restarted = -1, back = -1;
	long long t0, back_ms = -1;
	bool before_ok, process_after = false, counted_after = false;
	long limit_ms = harness_sanitized() ? 5000 : 1500;

	(void)state;
	ptth_router_options_init(&opts);
	opts.balance = PTTH_BALANCE_ROUND_ROBIN;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	tunnel_port = hr.tunnel_port;
	pid_t pid = spawn_backend(tunnel_port, NULL, NULL);
	assert_true(pid > 0);
	if (counted_start(&cb, "in-process", tunnel_port, 0, true) < 0) {
		harness_kill(pid, SIGKILL);
		harness_router_free(&hr);
		fail_msg("cannot start the in-process backend");
	}
	two = ptth_router_wait_tunnels(hr.router, 2, WAIT_MS);
	before_ok = two == 0 && process_serves(&hr, 4) && who_serves(&hr, "in-process", 4);
	harness_router_free(&hr);

	/* Down long enough for every redial backoff to reach its 200 ms cap. */
	sleep_ms(500);
	restarted = router_start_on(&hr, tunnel_port, &opts);
	if (restarted == 0) {
		t0 = harness_now_ms();
		back = ptth_router_wait_tunnels(hr.router, 2, WAIT_MS);
		back_ms = harness_now_ms() - t0;
		process_after = back == 0 && process_serves(&hr, 4);
		counted_after = back == 0 && who_serves(&hr, "in-process", 4);
	}
	int killed = harness_kill(pid, SIGKILL);
	counted_free(&cb);
	harness_router_free(&hr);

	print_message("both backends back %lld ms after the router restarted on port %d\n",
	              back_ms, tunnel_port);
	assert_int_equal(two, 0);
	assert_true(before_ok);
	assert_int_equal(restarted, 0);
	assert_int_equal(back, 0);
	assert_true(back_ms < limit_ms);
	assert_true(process_after);
	assert_true(counted_after);
	assert_true(WIFSIGNALED(killed));
}

/* ---------------------------------------------------------------------
 * Churn: backends killed and restarted under load.
 */

static void
test_lifecycle_churn_of_killed_backends_hangs_no_request(void **state)
{
	struct harness_router hr;
	struct load load;
	struct load_result res;
	pid_t pids[3];
	int seconds = harness_sanitized() ? 4 : 10;
	int kills = 0, spawn_failed = 0, up, started;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	for (int i = 0; i < 3; i++)
		pids[i] = spawn_backend(hr.tunnel_port, "--delay-ms", "1");
	up = ptth_router_wait_tunnels(hr.router, 3, WAIT_MS);
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 8);
	started = up == 0 ? load_run(&load) : -1;
	/* One kill at each whole second of the run; the time is the point
	 * here, not a condition. */
	long long start = harness_now_ms();
	for (int k = 1; started == 0 && k <= seconds; k++) {
		long long left = start + k * 1000LL - harness_now_ms();
		if (left > 0)
			sleep_ms((long)left);
		if (k == seconds)
			break;
		int i = k % 3;
		if (pids[i] > 0) {
			harness_kill(pids[i], SIGKILL);
			kills++;
		}
		pids[i] = spawn_backend(hr.tunnel_port, "--delay-ms", "1");
		spawn_failed += pids[i] < 0;
	}
	res = load_finish(&load);
	for (int i = 0; i < 3; i++)
		if (pids[i] > 0)
			harness_kill(pids[i], SIGKILL);
	harness_router_free(&hr);

	print_message("churn for %d s, %d backends killed: %ld requests, %ld got 502 "
	              "(in flight on a killed tunnel)\n", seconds, kills, load_total(&res),
	              res.s502);
	load_print("churn", &res);
	assert_int_equal(up, 0);
	assert_int_equal(started, 0);
	assert_int_equal(spawn_failed, 0);
	assert_int_equal(kills, seconds - 1);
	assert_int_equal(res.hung, 0);
	/* Two backends are up at every instant, so no 503 is excusable
	 * unless the router listed no tunnel at all (see load_record). */
	assert_int_equal(res.s503, 0);
	assert_int_equal(res.other - res.cut, 0);
	assert_true(res.ok > 0);
	/* A 200 head with its body cut short is neither a correct 200 nor
	 * a 502. It happens when a backend is killed between writing the
	 * response HEADERS and its DATA; see
	 * test_lifecycle_whole_response_leaves_the_backend_in_one_write. */
	assert_int_equal(res.cut, 0);
}

/* ---------------------------------------------------------------------
 * A whole response leaves the backend in one write. Here the test plays
 * the router: an nghttp2 client on the connection the backend dialled,
 * sending GET /foo after GET /foo and reading each answer as soon as any
 * byte of it arrives.
 */
struct probe {
	int reads;          /* recv() calls so far */
	int head_read;      /* the recv() that brought the response HEADERS */
	int data_read;      /* the one that brought its body */
	bool ended;         /* END_STREAM seen */
};

/* Implements nghttp2_on_frame_recv_callback. We use it to note which
 * read brought the head and which the body. */
static int
probe_on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                             void *user_data)
{
	struct probe *p = user_data;

	(void)session;
	if (frame->hd.stream_id == 0)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS)
		p->head_read = p->reads;
	if (frame->hd.type == NGHTTP2_DATA && frame->hd.length > 0)
		p->data_read = p->reads;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		p->ended = true;
	return 0;
}

/* Sends one GET /foo on session and reads until its stream ends.
 * Returns 0, or a negative code. */
static int
probe_one(nghttp2_session *session, int fd, struct probe *p)
{
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)"probe", 10, 5, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)"/foo", 5, 4, NGHTTP2_NV_FLAG_NONE },
	};
	uint8_t buf[16384];

	p->head_read = p->data_read = -1;
	p->ended = false;
	if (nghttp2_submit_request(session, NULL, nv, 4, NULL, NULL) < 0)
		return -ENOMEM;
	while (!p->ended) {
		const uint8_t *data;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(session, &data)) > 0)
			if (harness_send_all(fd, data, (size_t)n) < 0)
				return -EPIPE;
		n = recv(fd, buf, sizeof buf, 0); /* bounded by SO_RCVTIMEO */
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p->reads++;
		if (nghttp2_session_mem_recv(session, buf, (size_t)n) < 0)
			return -EPROTO;
	}
	return 0;
}

static void
test_lifecycle_whole_response_leaves_the_backend_in_one_write(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	struct timeval tv = { WAIT_MS / 1000, 0 };
	struct probe p = { 0 };
	struct counted cb;
	nghttp2_session_callbacks *cbs;
	nghttp2_session *session = NULL;
	int lfd, fd = -1, rc = -1, answered = 0, split = 0;
	const int n = 1000;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	/* Without reconnect the dial happens in ptth_backend_start(), so the
	 * connection already waits in the backlog when it returns. */
	assert_int_equal(counted_start(&cb, "whole", ntohs(sa.sin_port), 0, false), 0);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
	    nghttp2_session_callbacks_new(&cbs) == 0) {
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
		                                                     probe_on_frame_recv_callback);
		if (nghttp2_session_client_new(&session, cbs, &p) != 0)
			session = NULL;
		nghttp2_session_callbacks_del(cbs);
	}
	if (session != NULL && nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0) == 0)
		rc = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		rc = probe_one(session, fd, &p);
		answered += rc == 0;
		split += rc == 0 && p.head_read != p.data_read;
	}
	if (session != NULL)
		nghttp2_session_del(session);
	if (fd >= 0)
		close(fd); /* the backend sees EOF and ends */
	counted_free(&cb);
	close(lfd);

	print_message("%d of %d answers to GET /foo (ptth_response_send of 3 bytes) had "
	              "their HEADERS and DATA in different reads\n", split, answered);
	assert_int_equal(rc, 0);
	assert_int_equal(answered, n);
	/* Two writes leave a window in which a killed backend has sent a
	 * 200 head but no body: its user gets a cut answer, not a 502. */
	assert_int_equal(split, 0);
}

/* ---------------------------------------------------------------------
 * Graceful stops.
 */

static void
test_lifecycle_router_shutdown_finishes_requests_in_flight(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct counted cb;
	struct load load;
	struct load_result res;
	char url[128];
	long status = 0;
	long long t0 = 0, t1 = 0, last_end;
	int in_flight, listed;
	const int n = 8;

	(void)state;
	ptth_router_options_init(&opts);
	opts.drain_timeout_ms = 5000;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	listed = counted_start_listed(&cb, &hr, "slow", 0);
	if (listed < 0) {
		harness_router_free(&hr);
		fail_msg("the backend never connected: %s", ptth_strerror(listed));
	}
	load_init(&load, &hr, true);
	load_add(&load, "/sleep?ms=300", n);
	in_flight = load_run(&load);
	if (in_flight == 0)
		in_flight = counted_wait_sleeping(&cb, n, WAIT_MS);
	if (in_flight == 0) {
		t0 = harness_now_ms();
		ptth_router_shutdown(hr.router);
		t1 = harness_now_ms();
	}
	res = load_finish(&load);
	harness_url(&hr, "/foo", url, sizeof url);
	CURLcode after = http_get(url, &status, NULL, 0, NULL);
	pthread_mutex_lock(&cb.mu);
	last_end = cb.last_end_ms;
	pthread_mutex_unlock(&cb.mu);
	counted_free(&cb);
	harness_router_free(&hr);

	print_message("shutdown took %lld ms with %d requests of 300 ms in flight\n", t1 - t0, n);
	load_print("in flight during the shutdown", &res);
	assert_int_equal(in_flight, 0);
	assert_int_equal(res.ok, n);
	assert_int_equal(load_total(&res), n);
	assert_true(t1 >= last_end);           /* returned after they finished */
	assert_true(t1 - t0 < 4000);           /* and did not need the drain timeout */
	assert_int_equal(after, CURLE_COULDNT_CONNECT); /* nothing listens any more */
}

static void
test_lifecycle_backend_stop_under_load_loses_no_request(void **state)
{
	struct harness_router hr;
	struct counted a, b;
	struct load load;
	struct load_result res;
	long long t0 = 0, t1 = 0;
	int ready = -1, gone = -1;
	long a_at_stop = 0;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	assert_int_equal(counted_start_listed(&a, &hr, "a", 0), 0);
	assert_int_equal(counted_start_listed(&b, &hr, "b", 0), 0);
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 6);
	load_add(&load, "/sleep?ms=200", 2);
	if (load_run(&load) == 0 && load_wait_ok(&load, 50, WAIT_MS) == 0)
		ready = counted_wait_sleeping(&a, 1, WAIT_MS); /* a slow stream is open on a */
	if (ready == 0) {
		a_at_stop = counted_served(&a);
		t0 = harness_now_ms();
		ptth_backend_stop(a.backend); /* GOAWAY, streams finish */
		t1 = harness_now_ms();
		gone = ptth_router_wait_tunnels_at_most(hr.router, 1, WAIT_MS);
		load_wait_ok(&load, load_ok(&load) + 50, WAIT_MS); /* load goes on, on b */
	}
	res = load_finish(&load);
	long a_served = counted_served(&a), b_served = counted_served(&b);
	counted_free(&a);
	counted_free(&b);
	harness_router_free(&hr);

	print_message("ptth_backend_stop took %lld ms; a served %ld (%ld before the stop), "
	              "b %ld\n", t1 - t0, a_served, a_at_stop, b_served);
	load_print("while a stopped", &res);
	assert_int_equal(ready, 0);
	assert_int_equal(gone, 0);
	assert_int_equal(res.s502, 0);
	assert_int_equal(res.ok, load_total(&res)); /* every request 200 */
}

/* ---------------------------------------------------------------------
 * A misbehaving backend: an nghttp2 server on a socket dialled to the
 * router's tunnel port, run by a thread of its own. By mode it
 *   ROGUE_REFUSE      refuses every request with RST_STREAM(REFUSED_STREAM);
 *   ROGUE_GOAWAY      sends GOAWAY with last_stream_id 0 as soon as the
 *                     first request arrives;
 *   ROGUE_NO_STREAMS  advertises SETTINGS_MAX_CONCURRENT_STREAMS = 0;
 *   ROGUE_HOLD        advertises 1 stream and never answers; poked
 *                     (rogue_poke), it lowers the limit to 0 by SETTINGS;
 *   ROGUE_SILENT      never sends a byte, not even its SETTINGS, and only
 *                     counts what the router sends.
 * Every mode counts the request heads it receives.
 */
enum rogue_mode { ROGUE_REFUSE, ROGUE_GOAWAY, ROGUE_NO_STREAMS, ROGUE_HOLD, ROGUE_SILENT };

struct rogue {
	/* Set before the thread starts, read-only afterwards: */
	enum rogue_mode mode;
	int fd;                      /* the tunnel; only the rogue thread uses it */
	int stop_fd;                 /* eventfd: the test asks the thread to end */
	int poke_fd;                 /* eventfd: ROGUE_HOLD lowers its limit to 0 */
	pthread_t thread;

	pthread_mutex_t mu;          /* taken alone, never while calling nghttp2 */
	pthread_cond_t changed;
	/* guarded by mu: */
	int requests;                /* request heads received */
	int refused;                 /* RST_STREAM(REFUSED_STREAM) submitted */
	bool goaway;                 /* GOAWAY submitted */
	int bytes_in;                /* bytes received from the router */
	bool ended;                  /* the thread is done with the connection */
	int result;                  /* 0 (EOF or stop) or a negative code */
};

/* Implements nghttp2_on_frame_recv_callback. We use it to misbehave on
 * every request head. */
static int
rogue_on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                             void *user_data)
{
	struct rogue *rg = user_data;
	bool refused = false, goaway = false;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (rg->mode == ROGUE_REFUSE)
		refused = nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
		                                    NGHTTP2_REFUSED_STREAM) == 0;
	pthread_mutex_lock(&rg->mu);
	goaway = rg->mode == ROGUE_GOAWAY && !rg->goaway;
	rg->requests++;
	rg->refused += refused;
	rg->goaway |= goaway;
	pthread_cond_broadcast(&rg->changed);
	pthread_mutex_unlock(&rg->mu);
	if (goaway)
		nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
	return 0;
}

/* Writes everything the session wants to send. Returns 0 or a negative code. */
static int
rogue_flush(struct rogue *rg, nghttp2_session *session)
{
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(session, &data)) > 0) {
		int rc = harness_send_all(rg->fd, data, (size_t)n);
		if (rc < 0)
			return rc;
	}
	return n < 0 ? -EPROTO : 0;
}

/* ROGUE_HOLD was poked: it now allows no stream at all. The router
 * applies the new limit when it reads this SETTINGS frame. */
static int
rogue_on_poke(struct rogue *rg, nghttp2_session *session)
{
	nghttp2_settings_entry none = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0 };
	uint64_t count;

	if (read(rg->poke_fd, &count, sizeof count) < 0)
		return -errno;
	if (session == NULL || rg->mode != ROGUE_HOLD)
		return 0;
	return nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, &none, 1) == 0 ? 0 : -EPROTO;
}

/* Reads what the router sent and, with a session, feeds it in.
 * Returns 1 to go on, 0 when the router closed the tunnel, or a
 * negative code. */
static int
rogue_read(struct rogue *rg, nghttp2_session *session)
{
	uint8_t buf[16384];
	ssize_t n = recv(rg->fd, buf, sizeof buf, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 1 : -errno;
	pthread_mutex_lock(&rg->mu);
	rg->bytes_in += (int)n;
	pthread_cond_broadcast(&rg->changed);
	pthread_mutex_unlock(&rg->mu);
	if (session != NULL && nghttp2_session_mem_recv(session, buf, (size_t)n) < 0)
		return -EPROTO;
	return 1;
}

/* Serves the connection until the router closes it, the session is
 * done, or the test asks to stop. Without a session (ROGUE_SILENT) it
 * only reads. Returns 0 or a negative code. */
static int
rogue_run(struct rogue *rg, nghttp2_session *session)
{
	for (;;) {
		int rc = session != NULL ? rogue_flush(rg, session) : 0;
		if (rc < 0)
			return rc;
		if (session != NULL && !nghttp2_session_want_read(session) &&
		    !nghttp2_session_want_write(session))
			return 0;
		struct pollfd pfd[3] = {
			{ .fd = rg->fd, .events = POLLIN },
			{ .fd = rg->stop_fd, .events = POLLIN },
			{ .fd = rg->poke_fd, .events = POLLIN },
		};
		/* Bounded by the test, which always writes stop_fd in the end. */
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[1].revents)
			return 0;
		if (pfd[2].revents && (rc = rogue_on_poke(rg, session)) < 0)
			return rc;
		if (pfd[0].revents && (rc = rogue_read(rg, session)) <= 0)
			return rc;
	}
}

static void *
rogue_thread_main(void *arg)
{
	struct rogue *rg = arg;
	nghttp2_session_callbacks *cbs;
	nghttp2_session *session = NULL;
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		  rg->mode == ROGUE_NO_STREAMS ? 0 : rg->mode == ROGUE_HOLD ? 1 : 100 },
	};
	int rc = -ENOMEM;

	if (rg->mode == ROGUE_SILENT) {
		rc = rogue_run(rg, NULL);
	} else if (nghttp2_session_callbacks_new(&cbs) == 0) {
		nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
		                                                     rogue_on_frame_recv_callback);
		if (nghttp2_session_server_new(&session, cbs, rg) != 0)
			session = NULL;
		nghttp2_session_callbacks_del(cbs);
	}
	if (session != NULL && nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1) == 0)
		rc = rogue_run(rg, session);
	if (session != NULL)
		nghttp2_session_del(session);
	shutdown(rg->fd, SHUT_RDWR);
	pthread_mutex_lock(&rg->mu);
	rg->ended = true;
	rg->result = rc;
	pthread_cond_broadcast(&rg->changed);
	pthread_mutex_unlock(&rg->mu);
	return NULL;
}

/* Dials the router's tunnel port and starts the rogue thread.
 * Returns 0 or a negative code (then nothing is left to free). */
static int
rogue_start(struct rogue *rg, struct harness_router *hr, enum rogue_mode mode)
{
	int rc;

	memset(rg, 0, sizeof *rg);
	rg->mode = mode;
	rg->fd = -1;
	rg->stop_fd = eventfd(0, EFD_CLOEXEC);
	rg->poke_fd = eventfd(0, EFD_CLOEXEC);
	if (rg->stop_fd < 0 || rg->poke_fd < 0) {
		rc = -errno;
		goto out_close;
	}
	rg->fd = harness_dial(hr->tunnel_port);
	if (rg->fd < 0) {
		rc = rg->fd;
		goto out_close;
	}
	pthread_mutex_init(&rg->mu, NULL);
	cond_init_monotonic(&rg->changed);
	rc = -pthread_create(&rg->thread, NULL, rogue_thread_main, rg);
	if (rc == 0)
		return 0;
	pthread_cond_destroy(&rg->changed);
	pthread_mutex_destroy(&rg->mu);
out_close:
	if (rg->fd >= 0)
		close(rg->fd);
	if (rg->stop_fd >= 0)
		close(rg->stop_fd);
	if (rg->poke_fd >= 0)
		close(rg->poke_fd);
	return rc;
}

/* Waits until the rogue refused n requests (n > 0) or, with n == 0,
 * until its connection ended. Returns 0 or -ETIMEDOUT. */
static int
rogue_wait(struct rogue *rg, int n, int timeout_ms)
{
	struct timespec deadline = deadline_in(timeout_ms);
	int rc = 0;
	bool ok;

	pthread_mutex_lock(&rg->mu);
	while (!(n > 0 ? rg->refused >= n : rg->ended) && rc == 0)
		rc = pthread_cond_timedwait(&rg->changed, &rg->mu, &deadline);
	ok = n > 0 ? rg->refused >= n : rg->ended;
	pthread_mutex_unlock(&rg->mu);
	return ok ? 0 : -ETIMEDOUT;
}

/* Waits until the counter (a field of rg guarded by rg->mu) reaches n.
 * Returns 0 or -ETIMEDOUT. */
static int
rogue_wait_count(struct rogue *rg, const int *counter, int n, int timeout_ms)
{
	struct timespec deadline = deadline_in(timeout_ms);
	int rc = 0;
	bool ok;

	pthread_mutex_lock(&rg->mu);
	while (*counter < n && rc == 0)
		rc = pthread_cond_timedwait(&rg->changed, &rg->mu, &deadline);
	ok = *counter >= n;
	pthread_mutex_unlock(&rg->mu);
	return ok ? 0 : -ETIMEDOUT;
}

static int
rogue_requests(struct rogue *rg)
{
	int n;

	pthread_mutex_lock(&rg->mu);
	n = rg->requests;
	pthread_mutex_unlock(&rg->mu);
	return n;
}

/* ROGUE_HOLD: lower the limit to 0 now. */
static void
rogue_poke(struct rogue *rg)
{
	uint64_t one = 1;

	if (write(rg->poke_fd, &one, sizeof one) != sizeof one)
		abort(); /* an eventfd write only fails on overflow */
}

/* Stops the thread, joins it and closes everything. */
static void
rogue_stop(struct rogue *rg)
{
	uint64_t one = 1;

	if (write(rg->stop_fd, &one, sizeof one) != sizeof one)
		shutdown(rg->fd, SHUT_RDWR); /* poll wakes up on the socket instead */
	pthread_join(rg->thread, NULL);
	close(rg->fd);
	close(rg->stop_fd);
	close(rg->poke_fd);
	pthread_cond_destroy(&rg->changed);
	pthread_mutex_destroy(&rg->mu);
}

/* One user thread sends requests in a row while a refusing backend
 * joins a good one. With the given balancing, every answer must still
 * be 200 from the good backend, retried there after the refusal. */
static void
refused_run(enum ptth_balance balance, int want_refused)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct counted good;
	struct rogue rg;
	struct load load;
	struct load_result res;
	int joined = -1, refused = -1, rogue_started = -1;

	ptth_router_options_init(&opts);
	opts.balance = balance;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	assert_int_equal(counted_start_listed(&good, &hr, "good", 0), 0);
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 1);
	if (load_run(&load) == 0 && load_wait_ok(&load, 20, WAIT_MS) == 0)
		rogue_started = rogue_start(&rg, &hr, ROGUE_REFUSE);
	if (rogue_started == 0) {
		joined = ptth_router_wait_tunnels(hr.router, 2, WAIT_MS);
		refused = rogue_wait(&rg, want_refused, WAIT_MS);
	}
	res = load_finish(&load);
	int tunnels = ptth_router_tunnel_count(hr.router);
	if (rogue_started == 0)
		rogue_stop(&rg);
	long good_served = counted_served(&good);
	counted_free(&good);
	harness_router_free(&hr);

	print_message("the refusing backend saw %d requests and refused %d; the good one "
	              "served %ld\n", rogue_started == 0 ? rg.requests : 0,
	              rogue_started == 0 ? rg.refused : 0, good_served);
	load_print("with a refusing backend", &res);
	assert_int_equal(rogue_started, 0);
	assert_int_equal(joined, 0);
	assert_int_equal(refused, 0);
	assert_int_equal(tunnels, 2); /* a refused stream does not end the tunnel */
	assert_int_equal(res.s503, 0);
	assert_int_equal(res.ok, load_total(&res));
}

static void
test_lifecycle_refused_stream_is_retried_on_another_tunnel(void **state)
{
	(void)state;
	/* Round-robin over two tunnels: every other request meets the
	 * refusing one, and its retry takes the next turn, the good one. */
	refused_run(PTTH_BALANCE_ROUND_ROBIN, 20);
}

static void
test_lifecycle_refused_stream_retry_avoids_the_refusing_tunnel(void **state)
{
	(void)state;
	/* At random, the retry must still go to another tunnel (issue 4:
	 * "sent again on another tunnel, once"), not back to the one that
	 * refused: a retry cannot be retried, so that would be a 503. */
	refused_run(PTTH_BALANCE_RANDOM, 40);
}

static void
test_lifecycle_goaway_mid_load_is_retried_on_another_tunnel(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct counted good;
	struct rogue rg;
	struct load load;
	struct load_result res;
	int ended = -1, rogue_started = -1, gone = -1;

	(void)state;
	ptth_router_options_init(&opts);
	opts.balance = PTTH_BALANCE_ROUND_ROBIN;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	assert_int_equal(counted_start_listed(&good, &hr, "good", 0), 0);
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 4);
	if (load_run(&load) == 0 && load_wait_ok(&load, 20, WAIT_MS) == 0)
		rogue_started = rogue_start(&rg, &hr, ROGUE_GOAWAY);
	if (rogue_started == 0) {
		/* The router leaves the tunnel on GOAWAY and closes it once
		 * its streams are gone (all refused: last_stream_id is 0). */
		ended = rogue_wait(&rg, 0, WAIT_MS);
		gone = ptth_router_wait_tunnels_at_most(hr.router, 1, WAIT_MS);
		load_wait_ok(&load, load_ok(&load) + 20, WAIT_MS);
	}
	res = load_finish(&load);
	if (rogue_started == 0)
		rogue_stop(&rg);
	counted_free(&good);
	harness_router_free(&hr);

	print_message("the GOAWAY backend saw %d requests before it went\n",
	              rogue_started == 0 ? rg.requests : 0);
	load_print("with a backend sending GOAWAY", &res);
	assert_int_equal(rogue_started, 0);
	assert_int_equal(ended, 0);
	assert_true(rg.requests >= 1);
	assert_true(rg.goaway);
	assert_int_equal(rg.result, 0);
	assert_int_equal(gone, 0);
	assert_int_equal(res.ok, load_total(&res)); /* every request 200 from the good one */
}

/* ---------------------------------------------------------------------
 * Balancing.
 */

/* Starts a router with the given strategy and n counted backends
 * ("b0", "b1", ...). */
static void
balance_setup(struct harness_router *hr, enum ptth_balance balance, struct counted *cbs,
              int n, int slow_ms)
{
	struct ptth_router_options opts;
	char name[8];

	ptth_router_options_init(&opts);
	opts.balance = balance;
	assert_int_equal(harness_router_start_opts(hr, &opts), 0);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "b%d", i);
		assert_int_equal(counted_start_listed(&cbs[i], hr, name, i == 0 ? slow_ms : 0), 0);
	}
}

/* Sends n GET /foo in a row on one connection. Returns how many got 200. */
static int
sequential_gets(struct harness_router *hr, int n)
{
	char url[128], body[16];
	struct http_reply reply = { .body = body, .cap = sizeof body };
	CURL *c = http_client_new();
	int ok = 0;

	if (c == NULL)
		return 0;
	harness_url(hr, "/foo", url, sizeof url);
	for (int i = 0; i < n; i++)
		ok += http_client_get(c, url, &reply) == CURLE_OK && reply.status == 200;
	curl_easy_cleanup(c);
	return ok;
}

static void
test_lifecycle_random_balance_gives_each_tunnel_20_to_80_percent(void **state)
{
	struct harness_router hr;
	struct counted cbs[2];

	(void)state;
	balance_setup(&hr, PTTH_BALANCE_RANDOM, cbs, 2, 0);
	int ok = sequential_gets(&hr, 200);
	long n0 = counted_served(&cbs[0]), n1 = counted_served(&cbs[1]);
	for (int i = 0; i < 2; i++)
		counted_free(&cbs[i]);
	harness_router_free(&hr);

	print_message("random: %ld and %ld of 200\n", n0, n1);
	assert_int_equal(ok, 200);
	assert_int_equal(n0 + n1, 200);
	assert_in_range(n0, 40, 160);
	assert_in_range(n1, 40, 160);
}

static void
test_lifecycle_round_robin_balance_is_even_within_one(void **state)
{
	struct harness_router hr;
	struct counted cbs[3];
	long n[3], min, max;

	(void)state;
	balance_setup(&hr, PTTH_BALANCE_ROUND_ROBIN, cbs, 3, 0);
	int ok = sequential_gets(&hr, 200);
	for (int i = 0; i < 3; i++) {
		n[i] = counted_served(&cbs[i]);
		counted_free(&cbs[i]);
	}
	harness_router_free(&hr);
	min = max = n[0];
	for (int i = 1; i < 3; i++) {
		min = n[i] < min ? n[i] : min;
		max = n[i] > max ? n[i] : max;
	}

	print_message("round-robin: %ld, %ld and %ld of 200\n", n[0], n[1], n[2]);
	assert_int_equal(ok, 200);
	assert_int_equal(n[0] + n[1] + n[2], 200);
	assert_true(max - min <= 1);
}

static void
test_lifecycle_least_busy_balance_sends_less_to_a_slow_tunnel(void **state)
{
	struct harness_router hr;
	struct counted cbs[2];  /* cbs[0] sleeps 50 ms per request */
	struct load load;
	struct load_result res;
	int started;

	(void)state;
	balance_setup(&hr, PTTH_BALANCE_LEAST_BUSY, cbs, 2, 50);
	load_init(&load, &hr, false);
	load_add(&load, "/foo", 8);
	started = load_run(&load);
	if (started == 0)
		sleep_ms(2000); /* the load's duration is the point */
	res = load_finish(&load);
	long slow = counted_served(&cbs[0]), fast = counted_served(&cbs[1]);
	for (int i = 0; i < 2; i++)
		counted_free(&cbs[i]);
	harness_router_free(&hr);

	print_message("least-busy: the slow tunnel served %ld, the fast one %ld\n", slow, fast);
	load_print("least-busy", &res);
	assert_int_equal(started, 0);
	assert_int_equal(res.ok, load_total(&res));
	assert_true(slow < fast);
}

/* ---------------------------------------------------------------------
 * Capacity: every strategy picks among the tunnels that can open a
 * stream now, and queues only when none can.
 */

/* A request stuck on a tunnel that cannot open it comes back 504 after
 * this long, so that a router without the rule fails the test quickly. */
#define CAPACITY_TIMEOUT_MS 3000
#define CAPACITY_GETS 10

static const enum ptth_balance every_balance[] = {
	PTTH_BALANCE_RANDOM, PTTH_BALANCE_ROUND_ROBIN, PTTH_BALANCE_LEAST_BUSY,
};

static int
capacity_router_start(struct harness_router *hr, enum ptth_balance balance, int queue_size)
{
	struct ptth_router_options opts;

	ptth_router_options_init(&opts);
	opts.balance = balance;
	opts.backend_timeout_ms = CAPACITY_TIMEOUT_MS;
	opts.queue_size = queue_size; /* 0: the default */
	return harness_router_start_opts(hr, &opts);
}

/* Sends GET /foo with "Connection: close" on a new connection, so that
 * the answer ends with the connection. Returns the socket or a negative
 * code. */
static int
raw_get(struct harness_router *hr)
{
	static const char req[] = "GET /foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int fd = harness_dial(hr->http_port);

	if (fd >= 0 && harness_send_all(fd, req, sizeof req - 1) < 0) {
		close(fd);
		fd = -EPIPE;
	}
	return fd;
}

/* Reads a whole answer (until the router closes) and checks its status
 * line and, when body is not NULL, its body. */
static bool
raw_answer_is(int fd, const char *status_line, const char *body)
{
	char buf[4096];
	ssize_t n = harness_recv_until_close(fd, buf, sizeof buf);
	const char *end = n > 0 ? strstr(buf, "\r\n\r\n") : NULL;

	if (n <= 0)
		return false;
	print_message("answer: %.*s\n", (int)strcspn(buf, "\r"), buf);
	if (strncmp(buf, status_line, strlen(status_line)) != 0)
		return false;
	return body == NULL || (end != NULL && strcmp(end + 4, body) == 0);
}

/* Brings the rogue to where the test needs it: NO_STREAMS joined,
 * HOLD joined with one request held (*held, the user's socket), SILENT
 * connected with the router's preface read (its tunnel thread runs).
 * Returns 0 or a negative code. */
static int
capacity_rogue_ready(struct rogue *rg, struct harness_router *hr, int *held)
{
	int rc;

	if (rg->mode == ROGUE_SILENT) /* the client magic and a SETTINGS frame */
		return rogue_wait_count(rg, &rg->bytes_in, 24 + 9, WAIT_MS);
	rc = ptth_router_wait_tunnels(hr->router, 1, WAIT_MS);
	if (rc < 0 || rg->mode != ROGUE_HOLD)
		return rc;
	*held = raw_get(hr);
	if (*held < 0)
		return *held;
	return rogue_wait_count(rg, &rg->requests, 1, WAIT_MS);
}

/* What one capacity run saw. */
struct capacity_result {
	int setup;            /* 0 when the rogue and the good backend were ready */
	int ok;               /* GETs answered 200 "bar" */
	int rogue_requests;   /* request heads the rogue received */
	long good_served;
	int tunnels;          /* the router's count at the end */
};

/* A rogue backend in mode joins first, then a good one; CAPACITY_GETS
 * GETs in a row must all go to the good one. */
static struct capacity_result
capacity_run(enum ptth_balance balance, enum rogue_mode mode)
{
	struct harness_router hr;
	struct counted good;
	struct rogue rg;
	struct capacity_result res = { .setup = -1 };
	int held = -1;

	assert_int_equal(capacity_router_start(&hr, balance, 0), 0);
	if (rogue_start(&rg, &hr, mode) < 0) {
		harness_router_free(&hr);
		return res;
	}
	res.setup = capacity_rogue_ready(&rg, &hr, &held);
	if (res.setup == 0)
		res.setup = counted_start(&good, "good", hr.tunnel_port, 0, false);
	if (res.setup == 0) {
		/* The silent rogue is never counted: one tunnel, not two. */
		res.setup = ptth_router_wait_tunnels(hr.router, mode == ROGUE_SILENT ? 1 : 2,
		                                     WAIT_MS);
		if (res.setup == 0)
			res.ok = sequential_gets(&hr, CAPACITY_GETS);
		res.tunnels = ptth_router_tunnel_count(hr.router);
		res.good_served = counted_served(&good);
	}
	res.rogue_requests = rogue_requests(&rg);
	if (held >= 0)
		close(held);
	rogue_stop(&rg);
	if (res.setup == 0 || res.good_served > 0)
		counted_free(&good);
	harness_router_free(&hr);
	return res;
}

/* Runs the case under every strategy. */
static void
capacity_check(enum rogue_mode mode, int rogue_requests, int tunnels)
{
	static const char *const names[] = { "random", "round-robin", "least-busy" };

	for (size_t k = 0; k < sizeof every_balance / sizeof every_balance[0]; k++) {
		struct capacity_result r = capacity_run(every_balance[k], mode);

		print_message("%s: %d of %d answered 200, the good backend served %ld, the "
		              "rogue saw %d requests; %d tunnels\n", names[k], r.ok, CAPACITY_GETS,
		              r.good_served, r.rogue_requests, r.tunnels);
		assert_int_equal(r.setup, 0);
		assert_int_equal(r.ok, CAPACITY_GETS);
		assert_int_equal(r.good_served, CAPACITY_GETS);
		assert_int_equal(r.rogue_requests, rogue_requests);
		assert_int_equal(r.tunnels, tunnels);
	}
}

static void
test_lifecycle_tunnel_allowing_no_streams_gets_no_request(void **state)
{
	(void)state;
	/* SETTINGS_MAX_CONCURRENT_STREAMS = 0: a request queued there would
	 * only wait for its 504. */
	capacity_check(ROGUE_NO_STREAMS, 0, 2);
}

static void
test_lifecycle_busy_tunnel_is_passed_over_for_one_with_room(void **state)
{
	(void)state;
	/* One stream allowed and it is held: the next requests go where a
	 * stream is free, not into the busy tunnel's queue. */
	capacity_check(ROGUE_HOLD, 1, 2);
}

static void
test_lifecycle_tunnel_without_settings_gets_no_request(void **state)
{
	(void)state;
	/* Connected but silent: it joins the pool only with its SETTINGS,
	 * so it is neither counted nor picked. */
	capacity_check(ROGUE_SILENT, 0, 1);
}

/* 0 when a is readable first, 1 when b is, -1 when neither is in time. */
static int
first_readable(int a, int b)
{
	struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };

	if (poll(p, 2, WAIT_MS) <= 0)
		return -1;
	return p[0].revents != 0 ? 0 : 1;
}

/* A request queued on a tunnel (every stream was busy) whose backend
 * then allows no stream at all is handed back unsent and moves to a
 * tunnel that can open it, instead of waiting for its 504. */
static void
test_lifecycle_request_queued_on_a_tunnel_dropping_to_no_streams_moves(void **state)
{
	struct harness_router hr;
	struct counted good;
	struct rogue rg;
	int held = -1, b, c, first;
	bool refused_ok, moved_ok;

	(void)state;
	/* A queue of one: of two more requests, one waits and one is refused. */
	assert_int_equal(capacity_router_start(&hr, PTTH_BALANCE_ROUND_ROBIN, 1), 0);
	assert_int_equal(rogue_start(&rg, &hr, ROGUE_HOLD), 0);
	assert_int_equal(capacity_rogue_ready(&rg, &hr, &held), 0);
	b = raw_get(&hr);
	c = raw_get(&hr);
	assert_true(b >= 0 && c >= 0);
	first = first_readable(b, c);
	assert_true(first >= 0);
	refused_ok = raw_answer_is(first == 0 ? b : c, "HTTP/1.1 503", NULL);
	/* The other one waits in the rogue's queue. A good tunnel joins; the
	 * queued request stays put, as it should while the rogue may still
	 * open it, until the rogue allows no stream at all. */
	assert_int_equal(counted_start_listed(&good, &hr, "good", 0), 0);
	rogue_poke(&rg);
	moved_ok = raw_answer_is(first == 0 ? c : b, "HTTP/1.1 200", "bar");
	int rogue_saw = rogue_requests(&rg);
	long good_served = counted_served(&good);
	close(b);
	close(c);
	close(held);
	rogue_stop(&rg);
	counted_free(&good);
	harness_router_free(&hr);

	print_message("the rogue saw %d requests, the good backend served %ld\n", rogue_saw,
	              good_served);
	assert_true(refused_ok);
	assert_true(moved_ok);
	assert_int_equal(rogue_saw, 1);
	assert_int_equal(good_served, 1);
}

/* ---------------------------------------------------------------------
 * The programs: SIGTERM, and a backend that comes before its router.
 */

/* Polls until GET /foo through the router process answers 200 and n
 * backends hold a TCP connection to its tunnel port: another process
 * offers nothing to block on. Returns 0 or -ETIMEDOUT. */
static int
wait_process_router_ready(struct harness_router *hr, int n)
{
	long long deadline = harness_now_ms() + WAIT_MS;

	while (harness_now_ms() < deadline) {
		if (harness_tcp_count(hr->tunnel_port) >= n && get_is(hr, "/foo", "bar"))
			return 0;
		sleep_ms(20);
	}
	return -ETIMEDOUT;
}

/* ptth_backend_wait() after ptth_backend_stop() says how the tunnels
 * ended (a drain: 0), as bin/backend's waiter thread needs when a signal
 * stops the backend first; PTTH_ESTATE is only for a backend never
 * started. */
static void
test_lifecycle_backend_wait_after_stop_returns_the_result(void **state)
{
	struct harness_router hr = { 0 };
	struct counted cb;
	int started, after = 1;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	started = counted_start_listed(&cb, &hr, "b1", 0);
	if (started == 0) {
		ptth_backend_stop(cb.backend);
		after = ptth_backend_wait(cb.backend);
		counted_free(&cb);
	}
	harness_router_free(&hr);

	assert_int_equal(started, 0);
	assert_int_equal(after, 0);
}

static void
test_lifecycle_backend_wait_before_start_is_estate(void **state)
{
	struct ptth_backend_options opts;
	struct ptth_backend *b;

	(void)state;
	ptth_backend_options_init(&opts);
	opts.handler = counted_serve;
	b = ptth_backend_new(&opts);
	assert_non_null(b);
	assert_int_equal(ptth_backend_wait(b), PTTH_ESTATE);
	ptth_backend_free(b);
}

static void
test_lifecycle_router_and_backend_exit_0_on_sigterm(void **state)
{
	const char *router_args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0",
	                              "--quiet", NULL };
	struct harness_router hr = { 0 };
	char b1_end[64] = "not run", router_end[64] = "not run", b2_end[64] = "not run";
	bool b1_ok = false, router_ok = false, b2_ok = false;
	pid_t b1 = -1, b2 = -1;
	int out_fd = -1, ports, ready = -1;

	(void)state;
	struct harness_listening lines = { 0 };
	pid_t router = harness_spawn_piped("router", router_args, &out_fd, NULL);
	assert_true(router > 0);
	ports = harness_read_listening(out_fd, &lines, WAIT_MS);
	hr.http_port = lines.http_port;
	hr.tunnel_port = lines.tunnel_port;
	if (ports == 0) {
		b1 = spawn_backend(hr.tunnel_port, NULL, NULL);
		b2 = spawn_backend(hr.tunnel_port, NULL, NULL);
	}
	if (b1 > 0 && b2 > 0)
		ready = wait_process_router_ready(&hr, 2);
	if (ready == 0) {
		/* A backend with a live tunnel: GOAWAY, drain, exit 0. */
		b1_ok = terminate_cleanly(b1, b1_end, sizeof b1_end);
		b1 = -1;
		/* The router with a live tunnel: drain, GOAWAY, exit 0. */
		router_ok = terminate_cleanly(router, router_end, sizeof router_end);
		router = -1;
		/* A backend redialling a router that is gone. */
		b2_ok = terminate_cleanly(b2, b2_end, sizeof b2_end);
		b2 = -1;
	}
	if (b1 > 0)
		harness_kill(b1, SIGKILL);
	if (b2 > 0)
		harness_kill(b2, SIGKILL);
	if (router > 0)
		harness_kill(router, SIGKILL);
	if (out_fd >= 0)
		close(out_fd);

	print_message("SIGTERM: backend with a tunnel: %s; router: %s; redialling backend: %s\n",
	              b1_end, router_end, b2_end);
	assert_int_equal(ports, 0);
	assert_int_equal(ready, 0);
	assert_true(b1_ok);
	assert_true(router_ok);
	assert_true(b2_ok);
}

static void
test_lifecycle_backend_started_before_router_connects_when_it_appears(void **state)
{
	struct harness_router hr = { 0 };
	char addr[32], needle[64], log[8192], end[64] = "not run";
	const char *args[] = { "--router", addr, "--backoff-max-ms", BACKOFF_MAX, NULL };
	int port = 0, reserved, err_fd = -1, dials, waited = -1, started = -1, connected = -1;
	bool served = false, ended_ok = false;

	(void)state;
	reserved = harness_port_reserve(&port);
	assert_true(reserved >= 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	/* Not quiet: its log on stderr tells when it has dialled in vain. */
	pid_t pid = harness_spawn_piped("backend", args, NULL, &err_fd);
	if (pid < 0)
		close(reserved);
	assert_true(pid > 0);
	snprintf(needle, sizeof needle, "Dial %s failed", addr);
	dials = harness_read_until(err_fd, log, sizeof log, needle, 2, WAIT_MS);
	int status = 0;
	if (dials == 0)
		waited = waitpid(pid, &status, WNOHANG); /* 0: still running, waiting */
	close(reserved);
	if (waited == 0)
		started = router_start_on(&hr, port, NULL);
	if (started == 0) {
		connected = ptth_router_wait_tunnels(hr.router, 1, WAIT_MS);
		served = connected == 0 && process_serves(&hr, 1);
	}
	if (waited == 0)
		ended_ok = terminate_cleanly(pid, end, sizeof end);
	else if (waited < 0)
		harness_kill(pid, SIGKILL);
	close(err_fd);
	harness_router_free(&hr);

	print_message("backend that came first: %s after SIGTERM\n", end);
	assert_int_equal(dials, 0);   /* it dialled in vain, twice */
	assert_int_equal(waited, 0);  /* and is still running */
	assert_int_equal(started, 0);
	assert_int_equal(connected, 0);
	assert_true(served);
	assert_true(ended_ok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_frozen_backend_is_dropped_then_reconnects),
		cmocka_unit_test(test_lifecycle_backends_redial_a_restarted_router),
		cmocka_unit_test(test_lifecycle_churn_of_killed_backends_hangs_no_request),
		cmocka_unit_test(test_lifecycle_whole_response_leaves_the_backend_in_one_write),
		cmocka_unit_test(test_lifecycle_router_shutdown_finishes_requests_in_flight),
		cmocka_unit_test(test_lifecycle_backend_stop_under_load_loses_no_request),
		cmocka_unit_test(test_lifecycle_refused_stream_is_retried_on_another_tunnel),
		cmocka_unit_test(test_lifecycle_refused_stream_retry_avoids_the_refusing_tunnel),
		cmocka_unit_test(test_lifecycle_goaway_mid_load_is_retried_on_another_tunnel),
		cmocka_unit_test(test_lifecycle_tunnel_allowing_no_streams_gets_no_request),
		cmocka_unit_test(test_lifecycle_busy_tunnel_is_passed_over_for_one_with_room),
		cmocka_unit_test(test_lifecycle_tunnel_without_settings_gets_no_request),
		cmocka_unit_test(test_lifecycle_request_queued_on_a_tunnel_dropping_to_no_streams_moves),
		cmocka_unit_test(test_lifecycle_random_balance_gives_each_tunnel_20_to_80_percent),
		cmocka_unit_test(test_lifecycle_round_robin_balance_is_even_within_one),
		cmocka_unit_test(test_lifecycle_least_busy_balance_sends_less_to_a_slow_tunnel),
		cmocka_unit_test(test_lifecycle_backend_wait_after_stop_returns_the_result),
		cmocka_unit_test(test_lifecycle_backend_wait_before_start_is_estate),
		cmocka_unit_test(test_lifecycle_router_and_backend_exit_0_on_sigterm),
		cmocka_unit_test(test_lifecycle_backend_started_before_router_connects_when_it_appears),
	};
	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
