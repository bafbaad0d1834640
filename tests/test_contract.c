/*
 * test_contract.c -- the router's reverse-proxy contract, driven over real
 * sockets: every status it makes itself (400, 408, 413, 414, 417, 431,
 * 502, 503, 504), every connection it closes, and every rule it applies
 * when it forwards a request (RFC 9110 section 7.6, RFC 9112, RFC 9113
 * section 8.2).
 *
 * Owns:    per test, one struct env: a router on 127.0.0.1:0 with the
 *          options the test is about, and as the case needs an in-process
 *          backend (bin/backend's routes, examples/backend/routes.c), a hand-made HTTP/2
 *          backend (struct fake) or a bin/backend child process.
 * Threads: the test thread runs every assertion. The fake backend's
 *          thread owns its nghttp2 session and only records what it saw
 *          under fake->mu; backend handlers run on the library's workers.
 *          Teardown joins every thread and reaps every child process.
 * Locks:   env->mu guards env->closing (sleeping handlers wake on it)
 *          and the /block route's counters; fake->mu guards the fake's counters and commands. Each is taken
 *          alone and never held across I/O or an nghttp2 call.
 * Interface:
 *   - users are raw sockets with a bounded receive timeout (malformed,
 *     slow and byte-by-byte input, pipelining), libcurl, and the curl
 *     program where a well-behaved client is the point;
 *   - real faults: the bin/backend process is killed with SIGKILL while a
 *     request waits for its head or while its body streams; the fake
 *     backend advertises MAX_CONCURRENT_STREAMS=1, holds streams, and
 *     hangs up in the middle of a body;
 *   - every test ends by checking that the router still answers
 *     GET /foo with 200 "bar".
 * Tutorial: none; the contract itself is listed in bin/router --help.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <nghttp2/nghttp2.h>

#include "ptth.h"
#include "backend/routes.h"
#include "support/fake_backend.h"
#include "support/harness.h"
#include "support/http1_client.h"

#define IO_TIMEOUT_MS 10000      /* the longest any read or wait here blocks */
#define SHORT_MS 300             /* the short timeouts the timing tests set */
#define STREAM_WAIT_MS 3000      /* how long a streamed echo may take to come back */

/* Fails the test with a message when a helper reported a problem. */
#define assert_ok(expr)                                   \
	do {                                                  \
		const char *why_ = (expr);                        \
		if (why_ != NULL)                                 \
			fail_msg("%s", why_);                         \
	} while (0)

static char problem_text[2048];

/* Formats what went wrong into a static buffer (test thread only) and
 * returns it, for assert_ok(). */
static const char *
problem(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem_text, sizeof problem_text, fmt, ap);
	va_end(ap);
	return problem_text;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* True under a sanitizer build, which is many times slower. */
static bool
sanitized(void)
{
	const char *san = getenv("PTTH_SAN");

	return san != NULL && san[0] != '\0';
}

/* A short printable form of a request for messages: its first line. */
static const char *
first_line(const char *request, char *buf, size_t size)
{
	size_t n = strcspn(request, "\r\n");

	if (n > 60)
		n = 60;
	snprintf(buf, size, "\"%.*s\"", (int)n, request);
	return buf;
}

/* ---------------------------------------------------------------------
 * The test environment: a router and whatever backs it.
 */

struct env {
	struct ptth_router *router;
	int http_port, tunnel_port;
	struct ptth_mux *mux;
	struct ptth_backend *backend;
	struct fake *fake;
	struct routes_conf routes;   /* examples/backend/routes.c's settings */
	pid_t child;                 /* a bin/backend process, or 0 */
	int child_err;               /* the read end of its stderr, or -1 */
	char child_log[4096];        /* what it wrote there so far */
	size_t child_log_len;

	pthread_mutex_t mu;          /* taken alone */
	pthread_cond_t changed;      /* CLOCK_MONOTONIC */
	/* guarded by mu: */
	bool closing;                /* teardown began: sleeping handlers return */
	int blocked;                 /* /block handlers waiting now */
	bool unblocked;              /* /block handlers may answer */
};

static int child_kill(struct env *e);

/* Fills o with the defaults, both ports on 127.0.0.1:0. */
static void
env_options(struct ptth_router_options *o)
{
	ptth_router_options_init(o);
	o->http_addr = "127.0.0.1:0";
	o->tunnel_addr = "127.0.0.1:0";
}

static int
env_setup(void **state)
{
	struct env *e = calloc(1, sizeof *e);

	if (e == NULL)
		return -1;
	e->child_err = -1;
	pthread_mutex_init(&e->mu, NULL);
	harness_cond_init_monotonic(&e->changed);
	*state = e;
	return 0;
}

/* Wakes sleeping handlers, ends the fake and the child, then frees the
 * router and the backend, joining every thread they started. */
static int
env_teardown(void **state)
{
	struct env *e = *state;

	pthread_mutex_lock(&e->mu);
	e->closing = true;
	pthread_cond_broadcast(&e->changed);
	pthread_mutex_unlock(&e->mu);
	child_kill(e);
	fake_free(e->fake);
	/* The router first: it ends every tunnel and user connection, so no
	 * backend stream is left waiting for a user that is gone. */
	ptth_router_free(e->router);
	ptth_backend_free(e->backend);
	ptth_mux_free(e->mux);
	pthread_cond_destroy(&e->changed);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return 0;
}

/* Creates and starts the router. Returns 0 or a negative code. */
static int
env_start_router(struct env *e, const struct ptth_router_options *o)
{
	int rc;

	e->router = ptth_router_new(o);
	if (e->router == NULL)
		return -ENOMEM;
	rc = ptth_router_start(e->router);
	if (rc == 0)
		rc = ptth_router_ports(e->router, &e->http_port, &e->tunnel_port);
	return rc;
}

/* ---------------------------------------------------------------------
 * The in-process backend: bin/backend's own routes (examples/backend/routes.c),
 * whose /sleep ends at teardown here, and a few test routes.
 */

/* Implements the routes' sleep hook: waits ms, or until teardown begins. */
static void
env_sleep(long ms, void *arg)
{
	struct env *e = arg;
	struct timespec deadline = harness_deadline(ms);
	int rc = 0;

	pthread_mutex_lock(&e->mu);
	while (!e->closing && rc == 0)
		rc = pthread_cond_timedwait(&e->changed, &e->mu, &deadline);
	pthread_mutex_unlock(&e->mu);
}

/* GET /stall: a head promising 10 bytes, 3 of them, then nothing until
 * the test lets go (or tears down): a backend stuck in mid-body. */
static void
route_stall(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct env *e = arg;

	(void)req;
	ptth_response_add_header(res, "content-length", "10");
	ptth_response_write(res, "abc", 3);
	pthread_mutex_lock(&e->mu);
	while (!e->unblocked && !e->closing)
		pthread_cond_wait(&e->changed, &e->mu);
	pthread_mutex_unlock(&e->mu);
}

/* POST /sink: reads the whole body, then answers how many bytes came,
 * so nothing of the response can start before the body has ended. */
static void
route_sink(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char buf[16384], answer[32];
	long long total = 0;
	ssize_t n;

	(void)arg;
	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0)
		total += n;
	if (n < 0) {
		ptth_response_reset(res);
		return;
	}
	int len = snprintf(answer, sizeof answer, "%lld", total);
	ptth_response_send(res, 200, "text/plain", answer, (size_t)len);
}

/* GET /block (a test route): waits until the test sets e->unblocked
 * (or teardown begins), then 200 "bar". */
static void
route_block(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct env *e = arg;

	(void)req;
	pthread_mutex_lock(&e->mu);
	e->blocked++;
	pthread_cond_broadcast(&e->changed);
	while (!e->unblocked && !e->closing)
		pthread_cond_wait(&e->changed, &e->mu);
	e->blocked--;
	pthread_mutex_unlock(&e->mu);
	ptth_response_send(res, 200, "text/plain; charset=utf-8", "bar", 3);
}

/* Waits until n /block handlers are waiting. Returns 0 or -ETIMEDOUT. */
static int
env_wait_blocked(struct env *e, int n)
{
	struct timespec deadline = harness_deadline(IO_TIMEOUT_MS);
	int rc = 0;

	pthread_mutex_lock(&e->mu);
	while (e->blocked < n && rc == 0)
		rc = pthread_cond_timedwait(&e->changed, &e->mu, &deadline);
	rc = e->blocked >= n ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&e->mu);
	return rc;
}

static void
env_unblock(struct env *e)
{
	pthread_mutex_lock(&e->mu);
	e->unblocked = true;
	pthread_cond_broadcast(&e->changed);
	pthread_mutex_unlock(&e->mu);
}

/* Starts the in-process backend and waits until the router lists its
 * tunnel. Returns 0 or a negative code. */
static int
env_start_backend(struct env *e)
{
	static const struct {
		const char *path;
		ptth_handler_fn fn;
	} routes[] = {
		{ "/block", route_block }, { "/sink", route_sink }, { "/stall", route_stall },
	};
	struct ptth_backend_options bo;
	char addr[64];
	int before = ptth_router_tunnel_count(e->router);
	int rc;

	e->mux = ptth_mux_new();
	if (e->mux == NULL)
		return -ENOMEM;
	e->routes.sleep = env_sleep;
	e->routes.sleep_arg = e;
	if ((rc = routes_register(e->mux, &e->routes)) < 0)
		return rc;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if ((rc = ptth_mux_handle(e->mux, routes[i].path, routes[i].fn, e)) < 0)
			return rc;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", e->tunnel_port);
	ptth_backend_options_init(&bo);
	bo.router_addr = addr;
	bo.drain_timeout_ms = 1000; /* a stuck stream must not hold up teardown */
	bo.handler = ptth_mux_serve;
	bo.handler_arg = e->mux;
	e->backend = ptth_backend_new(&bo);
	if (e->backend == NULL)
		return -ENOMEM;
	rc = ptth_backend_start(e->backend);
	if (rc < 0)
		return rc;
	return ptth_router_wait_tunnels(e->router, before + 1, IO_TIMEOUT_MS);
}

/* The usual start: a router with o (NULL: the defaults) and the
 * in-process backend. */
static void
env_start(struct env *e, const struct ptth_router_options *o)
{
	struct ptth_router_options def;

	if (o == NULL) {
		env_options(&def);
		o = &def;
	}
	assert_int_equal(env_start_router(e, o), 0);
	assert_int_equal(env_start_backend(e), 0);
}

/* Sends request on a new connection and reads the one response to it,
 * leaving the connection open in c. NULL, or what went wrong. */
static const char *
ask_on(struct env *e, struct conn *c, const char *request, bool bytewise,
       struct response *r)
{
	char what[80];
	int rc = conn_open(c, e->http_port);

	first_line(request, what, sizeof what);
	if (rc < 0)
		return problem("%s: connect: %s", what, strerror(-rc));
	rc = conn_send_as(c, request, bytewise);
	if (rc == 0)
		rc = read_response(c, r, strncmp(request, "HEAD ", 5) == 0);
	if (rc < 0)
		return problem("%s%s: no response: %s", what, bytewise ? " byte by byte" : "",
		               strerror(-rc));
	return NULL;
}

/* ask_on() on a connection of its own, closed afterwards. */
static const char *
ask(struct env *e, const char *request, struct response *r)
{
	struct conn c;
	const char *why = ask_on(e, &c, request, false, r);

	conn_close(&c);
	return why;
}

/* Sends request (whole or byte by byte) and expects the router to answer
 * status with "Connection: close" and a one-line text body, then to
 * close the connection. NULL, or what went wrong. */
static const char *
rejected_then_closed(struct env *e, const char *request, bool bytewise, int status)
{
	static struct response r;
	struct conn c;
	char what[80], detail[1024];
	const char *why = ask_on(e, &c, request, bytewise, &r);
	const char *connection = resp_field(&r, "connection");

	if (why != NULL) {
		conn_close(&c);
		return why;
	}
	why = check_response(&r, status, NULL);
	if (why == NULL && (connection == NULL || strcasecmp(connection, "close") != 0))
		why = "no \"Connection: close\" in the answer";
	else if (why == NULL && (r.body_len == 0 || r.body[r.body_len - 1] != '\n'))
		why = "the body is not one line of text";
	else if (why == NULL)
		why = conn_expect_close(&c);
	conn_close(&c);
	if (why == NULL)
		return NULL;
	snprintf(detail, sizeof detail, "%s", why);
	return problem("%s%s, expecting %d then a close: %s",
	               first_line(request, what, sizeof what), bytewise ? " byte by byte" : "",
	               status, detail);
}

/* rejected_then_closed() both ways: one write, then byte by byte. */
static const char *
rejected_both_ways(struct env *e, const char *request, int status)
{
	const char *why = rejected_then_closed(e, request, false, status);

	return why != NULL ? why : rejected_then_closed(e, request, true, status);
}

/* ---------------------------------------------------------------------
 * Well-behaved clients: libcurl and the curl program.
 */

struct sink {
	char *buf;                /* NULL: count only */
	size_t cap, len;
};

/* Implements CURLOPT_WRITEFUNCTION: keeps what fits. */
static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	size_t room = s->buf != NULL && s->cap > s->len + 1 ? s->cap - s->len - 1 : 0;
	size_t keep = n < room ? n : room;

	if (keep > 0) {
		memcpy(s->buf + s->len, data, keep);
		s->buf[s->len + keep] = '\0';
	}
	s->len += keep;
	return n;
}

struct upload {
	const char *data;
	size_t len, off;
};

/* Implements CURLOPT_READFUNCTION: hands out the body in pieces. */
static size_t
upload_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nmemb;

	if (n > u->len - u->off)
		n = u->len - u->off;
	memcpy(buf, u->data + u->off, n);
	u->off += n;
	return n;
}

/* GET (data NULL) or POST (data, len; chunked or with a Content-Length,
 * never with Expect) path through libcurl. Returns its result. */
static CURLcode
curl_request(struct env *e, const char *path, const char *data, size_t len, bool chunked,
             long *status, struct sink *s)
{
	struct upload u = { data, len, 0 };
	struct curl_slist *fields = NULL;
	char url[256];
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (c == NULL)
		return CURLE_FAILED_INIT;
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", e->http_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)IO_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	if (data != NULL) {
		fields = curl_slist_append(fields, "Expect:");
		if (chunked)
			fields = curl_slist_append(fields, "Transfer-Encoding: chunked");
		else
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, fields);
	}
	rc = curl_easy_perform(c);
	*status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(fields);
	return rc;
}

/* The check every test ends with: GET /foo on a fresh connection is
 * answered 200 "bar". NULL, or what happened instead. */
static const char *
still_serves(struct env *e)
{
	char body[64] = "";
	struct sink s = { body, sizeof body, 0 };
	long status;
	CURLcode rc = curl_request(e, "/foo", NULL, 0, false, &status, &s);

	if (rc != CURLE_OK)
		return problem("afterwards, GET /foo failed: %s", curl_easy_strerror(rc));
	if (status != 200 || strcmp(body, "bar") != 0)
		return problem("afterwards, GET /foo gave %ld \"%s\"", status, body);
	return NULL;
}

/* Runs the curl program with args (NULL-terminated, after the options
 * every run gets) and keeps its standard output in out. Returns its exit
 * status, or a negative code. */
static int
run_curl(const char *const args[], char *out, size_t cap)
{
	const char *argv[32] = { "curl", "--silent", "--show-error", "--max-time", "10",
	                         "--noproxy", "*" };
	size_t argc = 7, len = 0;
	int p[2], status;
	pid_t pid;

	for (size_t i = 0; args[i] != NULL && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp("curl", (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		if (poll(&pfd, 1, 2 * IO_TIMEOUT_MS) <= 0)
			break; /* curl's own --max-time ends it first */
		ssize_t n = read(p[0], out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap - 1)
			break;
	}
	out[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

/* ---------------------------------------------------------------------
 * The bin/backend process, for faults only a dying process makes.
 */

/* Starts PTTH_BIN_DIR/backend dialled to the router (not quiet: its
 * "handling: PATH" lines on stderr tell when a request reached it) and
 * waits for its tunnel. Returns 0 or a negative code. */
static int
child_start(struct env *e)
{
	const char *dir = getenv("PTTH_BIN_DIR");
	char path[512], addr[64];
	int before = ptth_router_tunnel_count(e->router);
	int p[2];
	pid_t pid;

	snprintf(path, sizeof path, "%s/backend", dir != NULL && dir[0] ? dir : "bin");
	snprintf(addr, sizeof addr, "127.0.0.1:%d", e->tunnel_port);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		execl(path, path, "--router", addr, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	e->child = pid;
	e->child_err = p[0];
	e->child_log_len = 0;
	return ptth_router_wait_tunnels(e->router, before + 1, IO_TIMEOUT_MS);
}

/* Reads the child's stderr until needle appears in it.
 * Returns 0, -ETIMEDOUT, or -EPIPE when the child closed it first. */
static int
child_wait_log(struct env *e, const char *needle)
{
	long long deadline = now_ms() + IO_TIMEOUT_MS;

	for (;;) {
		e->child_log[e->child_log_len] = '\0';
		if (strstr(e->child_log, needle) != NULL)
			return 0;
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = e->child_err, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return -ETIMEDOUT;
		if (e->child_log_len > sizeof e->child_log / 2) {
			size_t keep = sizeof e->child_log / 4;
			memmove(e->child_log, e->child_log + e->child_log_len - keep, keep);
			e->child_log_len = keep;
		}
		ssize_t n = read(e->child_err, e->child_log + e->child_log_len,
		                 sizeof e->child_log - 1 - e->child_log_len);
		if (n <= 0)
			return -EPIPE;
		e->child_log_len += (size_t)n;
	}
}

/* Kills the child with SIGKILL and reaps it. Returns its wait status,
 * or -1 when there was none. */
static int
child_kill(struct env *e)
{
	int status = -1;

	if (e->child > 0) {
		kill(e->child, SIGKILL);
		while (waitpid(e->child, &status, 0) < 0 && errno == EINTR)
			;
		e->child = 0;
	}
	if (e->child_err >= 0)
		close(e->child_err);
	e->child_err = -1;
	return status;
}

/* Waits for the fake's first RST_STREAM and checks that the router sent
 * it, with CANCEL, for stream_id. NULL, or what happened instead. */
static const char *
fake_saw_cancel(struct fake *f, int32_t stream_id)
{
	if (fake_wait(f, FAKE_RESETS, 1) < 0)
		return problem("the backend saw no RST_STREAM for stream %d", (int)stream_id);
	pthread_mutex_lock(&f->mu);
	int32_t reset = f->last_reset;
	uint32_t code = f->last_reset_code;
	pthread_mutex_unlock(&f->mu);
	if (reset != stream_id || code != NGHTTP2_CANCEL)
		return problem("expected RST_STREAM CANCEL on stream %d, got code %u on %d",
		               (int)stream_id, code, (int)reset);
	return NULL;
}

/* A router with opts (NULL: the defaults) served by a fake backend that
 * allows max_streams streams, once the router has applied its SETTINGS. */
static struct fake *
env_start_with_fake(struct env *e, const struct ptth_router_options *o, uint32_t max_streams)
{
	struct ptth_router_options def;
	struct fake *f;

	if (o == NULL) {
		env_options(&def);
		o = &def;
	}
	assert_int_equal(env_start_router(e, o), 0);
	f = fake_start(e->tunnel_port, max_streams);
	assert_non_null(f);
	e->fake = f;
	assert_int_equal(ptth_router_wait_tunnels(e->router, 1, IO_TIMEOUT_MS), 0);
	/* The router ACKs our SETTINGS only after it applied them. */
	assert_int_equal(fake_wait(f, FAKE_SETTINGS_ACKED, 1), 0);
	return f;
}

/* ---------------------------------------------------------------------
 * Requests the router refuses with 400, then closes the connection.
 */

static void
test_contract_unparsable_request_line_is_400_then_close(void **state)
{
	struct env *e = *state;
	static const char *const requests[] = {
		"HELLO WORLD\r\n\r\n",
		"GET /foo http/1.1\r\nHost: x\r\n\r\n",
		"GET /foo HTTP/1.1 extra\r\nHost: x\r\n\r\n",
		"GET /f oo HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x01\x02\x03 / HTTP/1.1\r\nHost: x\r\n\r\n",
	};

	env_start(e, NULL);
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
		assert_ok(rejected_both_ways(e, requests[i], 400));
	assert_ok(still_serves(e));
}

/* HTTP-name is exactly "HTTP" (RFC 9112 section 2.3); a request line
 * with another name is not HTTP/1.x. */
static void
test_contract_misspelled_http_name_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET /foo HTTX/1.1\r\nHost: x\r\n\r\n", 400));
	assert_ok(rejected_both_ways(e, "GET /foo HXYZ/1.1\r\nHost: x\r\n\r\n", 400));
	assert_ok(still_serves(e));
}

static void
test_contract_content_length_with_transfer_encoding_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	                             "5\r\nhello\r\n0\r\n\r\n", 400));
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
	                             "5\r\nhello\r\n0\r\n\r\n", 400));
	assert_ok(still_serves(e));
}

static void
test_contract_two_different_content_lengths_are_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400));
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5, 6\r\n\r\nhello!", 400));
	assert_ok(still_serves(e));
}

/* RFC 9112 section 5.1: whitespace between a field name and its colon. */
static void
test_contract_space_before_colon_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost : x\r\n\r\n", 400));
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", 400));
	assert_ok(still_serves(e));
}

/* RFC 9112 section 5.2: a field value continued on the next line. */
static void
test_contract_obsolete_line_folding_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
	                             400));
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n",
	                             400));
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nX-A:\r\n  2\r\nHost: x\r\n\r\n",
	                             400));
	assert_ok(still_serves(e));
}

static void
test_contract_two_host_fields_are_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
	                             400));
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n",
	                             400));
	assert_ok(still_serves(e));
}

static void
test_contract_absolute_target_disagreeing_with_host_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET http://a.test/foo HTTP/1.1\r\nHost: b.test\r\n\r\n",
	                             400));
	assert_ok(rejected_both_ways(e, "GET http://a.test:81/foo HTTP/1.1\r\nHost: a.test:82\r\n\r\n",
	                             400));
	assert_ok(still_serves(e));
}

static void
test_contract_http11_without_host_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\n\r\n", 400));
	assert_ok(rejected_both_ways(e, "GET /foo HTTP/1.1\r\nX-Host: x\r\n\r\n", 400));
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Requests judged whole before anything of them is forwarded.
 */

/* Every request the router answers with a 4xx of its own, for its head
 * or its framing, is refused before a stream is opened: the fake backend
 * records every HEADERS frame it receives, and sees only the one request
 * the test makes afterwards. (Streams go out in order on the one tunnel,
 * so once that answer is in, any earlier stream has been counted.) */
static void
test_contract_refused_requests_never_reach_the_backend(void **state)
{
	static const struct {
		const char *request;
		int status;
	} refused[] = {
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
		  "5\r\nhello\r\n0\r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
		  "0\r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		  "5\r\nhello\r\n0\r\n\r\n", 501 },
		{ "CONNECT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\n"
		  "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400 },
		{ "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /a\fb HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /foo#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET http://u@x/foo HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /foo HTTP/1.1\r\nHost: a b\r\n\r\n", 400 },
		{ "GET /foo HTTP/1.1\r\nHost: a/b\r\n\r\n", 400 },
		{ "GET /foo HTTP/1.1\r\nHost: a@b\r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
		  400 },
		{ "GET /foo HTTP/1.1\r\nHost: x\r\n\rXGET /foo HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
	};
	struct env *e = *state;
	struct fake *f = env_start_with_fake(e, NULL, 100);

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		assert_ok(rejected_both_ways(e, refused[i].request, refused[i].status));
	assert_ok(still_serves(e));
	assert_int_equal(fake_requests(f), 1);
}

/* CONNECT is refused in every form, and the connection closes: its body
 * framing is unknown, so the bytes after its head are never parsed as
 * another request (RFC 9113 section 8.5 would not allow forwarding it
 * with :scheme and :path anyway). */
static void
test_contract_connect_is_400_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "CONNECT /foo HTTP/1.1\r\nHost: x\r\nContent-Length: 28"
	                             "\r\n\r\nGET /foo HTTP/1.1\r\nHost: x\r\n\r\n", 400));
	assert_ok(rejected_both_ways(e, "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400));
	assert_ok(still_serves(e));
}

/* RFC 9112 section 3.2 and RFC 3986: what http-parser lets into a
 * request target (TAB, form feed, a fragment, bytes above 0x7E, userinfo)
 * and the asterisk form on anything but OPTIONS. */
static void
test_contract_invalid_request_targets_are_400_then_close(void **state)
{
	static const char *const requests[] = {
		"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a\fb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /foo#frag HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /foo?a#frag HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://u:p@x/foo HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	};
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
		assert_ok(rejected_both_ways(e, requests[i], 400));
	/* OPTIONS * reaches the backend (whose mux has no route for it). */
	assert_ok(ask(e, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &r));
	assert_ok(check_response(&r, 404, NULL));
	assert_ok(still_serves(e));
}

/* RFC 9110 section 7.2: Host is uri-host [":" port]. */
static void
test_contract_invalid_host_values_are_400_then_close(void **state)
{
	static const char *const hosts[] = { "a b", "a/b", "a@b", "a:b", "a?b", "[::1" };
	struct env *e = *state;
	char request[128];

	env_start(e, NULL);
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		snprintf(request, sizeof request, "GET /foo HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
		assert_ok(rejected_both_ways(e, request, 400));
	}
	assert_ok(still_serves(e));
}

/* An empty Host is valid HTTP/1.1 (the target has no authority), but an
 * HTTP/2 request needs one: the backend sees the address the user
 * reached, as for HTTP/1.0 without Host, never an empty :authority. */
static void
test_contract_empty_host_reaches_the_backend_as_the_address_reached(void **state)
{
	struct env *e = *state;
	static struct response r;
	char want[64];

	env_start(e, NULL);
	snprintf(want, sizeof want, ":authority: 127.0.0.1:%d\n", e->http_port);
	assert_ok(ask(e, "GET /headers HTTP/1.1\r\nHost: \r\n\r\n", &r));
	assert_ok(check_response(&r, 200, NULL));
	if (strstr(r.body, want) == NULL)
		fail_msg("no \"%s\" in:\n%s", want, r.body);
	assert_ok(ask(e, "GET /headers HTTP/1.0\r\n\r\n", &r));
	assert_ok(check_response(&r, 200, NULL));
	if (strstr(r.body, want) == NULL)
		fail_msg("no \"%s\" in:\n%s", want, r.body);
	assert_ok(still_serves(e));
}

/* RFC 9112 section 6.1: a transfer coding the router does not implement
 * is a 501, not silently de-chunked. */
static void
test_contract_unknown_transfer_coding_is_501_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "POST /sink HTTP/1.1\r\nHost: x\r\n"
	                             "Transfer-Encoding: gzip, chunked\r\n\r\n"
	                             "5\r\nhello\r\n0\r\n\r\n", 501));
	assert_ok(still_serves(e));
}

/* A Content-Length of 2^63 or more once became negative and slipped past
 * --max-body; now it is a 400 (as http-parser answers for 2^64 - 1). */
static void
test_contract_content_length_of_2_63_is_400_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;

	env_options(&o);
	o.max_body = 1000;
	env_start(e, &o);
	assert_ok(rejected_both_ways(e, "POST /sink HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 9223372036854775808\r\n\r\nhello", 400));
	assert_ok(rejected_both_ways(e, "POST /sink HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 18000000000000000000\r\n\r\nhello", 400));
	assert_ok(still_serves(e));
}

/* RFC 9112 section 7.1: every line of a chunked body ends in CR LF.
 * http-parser takes any two bytes after chunk data, and any byte after
 * the CR of a chunk-size line or of the last line. */
static void
test_contract_loose_chunk_framing_is_400_then_close(void **state)
{
	static const char *const bodies[] = {
		"5\r\nhelloXY0\r\n\r\n",
		"5\rXhello\r\n0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\rX",
		"5;a\nb\r\nhello\r\n0\r\n\r\n",
	};
	struct env *e = *state;
	char request[256];

	env_start(e, NULL);
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		snprintf(request, sizeof request, "POST /sink HTTP/1.1\r\nHost: x\r\n"
		         "Transfer-Encoding: chunked\r\n\r\n%s", bodies[i]);
		assert_ok(rejected_both_ways(e, request, 400));
	}
	assert_ok(still_serves(e));
}

/* RFC 9112 section 6.1: an HTTP/1.0 request with Transfer-Encoding is
 * answered, then the connection closes, keep-alive or not. */
static void
test_contract_transfer_encoding_in_http10_closes_after_the_answer(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;
	const char *connection;

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "POST /sink HTTP/1.0\r\nConnection: keep-alive\r\n"
	                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, "5"));
	connection = resp_field(&r, "connection");
	assert_non_null(connection);
	assert_string_equal(connection, "close");
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	/* Without Transfer-Encoding, HTTP/1.0 keep-alive is kept. */
	assert_ok(ask_on(e, &c, "POST /sink HTTP/1.0\r\nConnection: keep-alive\r\n"
	                 "Content-Length: 5\r\n\r\nhello", false, &r));
	assert_ok(check_response(&r, 200, "5"));
	assert_null(resp_field(&r, "connection"));
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.0\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Limits: 414, 431, 413.
 */

/* "GET " + a target of exactly len bytes under /headers + the rest. */
static char *
request_with_target_of(size_t len)
{
	static const char prefix[] = "/headers?pad=";
	size_t total = len + 64;
	char *req = malloc(total);

	if (req == NULL)
		return NULL;
	memcpy(req, "GET ", 4);
	memcpy(req + 4, prefix, sizeof prefix - 1);
	memset(req + 4 + sizeof prefix - 1, 'u', len - (sizeof prefix - 1));
	snprintf(req + 4 + len, total - 4 - len, " HTTP/1.1\r\nHost: x\r\n\r\n");
	return req;
}

static void
test_contract_target_over_max_uri_is_414_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	char *at_limit = request_with_target_of(256);
	char *over = request_with_target_of(257);
	char *far_over = request_with_target_of(8000);

	env_options(&o);
	o.max_uri = 256;
	env_start(e, &o);
	assert_non_null(at_limit);
	assert_non_null(over);
	assert_non_null(far_over);
	assert_ok(ask(e, at_limit, &r));
	assert_ok(check_response(&r, 200, NULL));
	assert_ok(rejected_both_ways(e, over, 414));
	assert_ok(rejected_then_closed(e, far_over, false, 414));
	free(at_limit);
	free(over);
	free(far_over);
	assert_ok(still_serves(e));
}

/* A GET /headers whose fields are Host plus "X-Big: " + n bytes. */
static char *
request_with_big_field(size_t n)
{
	char *req = malloc(n + 128);
	int len;

	if (req == NULL)
		return NULL;
	len = sprintf(req, "GET /headers HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + len, 'b', n);
	strcpy(req + len + n, "\r\n\r\n");
	return req;
}

static void
test_contract_header_block_over_max_header_bytes_is_431_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	char *under = request_with_big_field(900);
	char *over = request_with_big_field(2000);

	env_options(&o);
	o.max_header_bytes = 1024;
	env_start(e, &o);
	assert_non_null(under);
	assert_non_null(over);
	assert_ok(ask(e, under, &r));
	assert_ok(check_response(&r, 200, NULL));
	assert_ok(rejected_both_ways(e, over, 431));
	free(under);
	free(over);
	assert_ok(still_serves(e));
}

/* At --max-header-bytes' highest value, the head can still outgrow
 * http-parser's own cap (which counts the request line and line ends
 * too): that is a 431 as well, not a 400. */
static void
test_contract_head_over_the_parser_cap_is_431_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	char *over = request_with_big_field(PTTH_MAX_HEADER_BYTES_CAP - 20);

	env_options(&o);
	o.max_header_bytes = PTTH_MAX_HEADER_BYTES_CAP;
	env_start(e, &o);
	assert_non_null(over);
	assert_ok(rejected_then_closed(e, over, false, 431));
	free(over);
	assert_ok(still_serves(e));
}

/* Runs PTTH_BIN_DIR/router with args (NULL-terminated) and keeps what it
 * writes to stderr in err. A router that starts instead of refusing is
 * killed after IO_TIMEOUT_MS. Returns its exit status, or a negative code
 * (-ETIMEDOUT when it had to be killed). */
static int
run_router(const char *const args[], char *err, size_t cap)
{
	const char *dir = getenv("PTTH_BIN_DIR");
	const char *argv[16];
	char path[512];
	size_t argc = 0, len = 0;
	int p[2], status;
	pid_t pid;

	snprintf(path, sizeof path, "%s/router", dir != NULL && dir[0] ? dir : "bin");
	argv[argc++] = path;
	for (size_t i = 0; args[i] != NULL && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -errno;
	}
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0) {
			kill(pid, SIGKILL);
			len = 0;
			break;
		}
		ssize_t n = read(p[0], err + len, cap - 1 - len);
		if (n <= 0 || (len += (size_t)n) == cap - 1)
			break;
	}
	err[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		return -ETIMEDOUT;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

/* --max-header-bytes above http-parser's own cap could never take
 * effect: ptth_router_new() refuses it (EINVAL), and bin/router exits
 * non-zero with one line saying so. The cap itself is accepted. */
static void
test_contract_max_header_bytes_above_the_parser_cap_is_refused_at_start(void **state)
{
	static const char *const args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0",
		                                 "--max-header-bytes", "81921", NULL };
	struct env *e = *state;
	struct ptth_router_options o;
	char err[1024];
	int status;

	env_options(&o);
	o.max_header_bytes = PTTH_MAX_HEADER_BYTES_CAP + 1;
	errno = 0;
	assert_null(ptth_router_new(&o));
	assert_int_equal(errno, EINVAL);
	status = run_router(args, err, sizeof err);
	if (status <= 0 || strstr(err, "--max-header-bytes") == NULL ||
	    strchr(err, '\n') != err + strlen(err) - 1)
		fail_msg("bin/router --max-header-bytes 81921: status %d, stderr \"%s\"", status, err);
	o.max_header_bytes = PTTH_MAX_HEADER_BYTES_CAP;
	env_start(e, &o);
	assert_ok(still_serves(e));
}

/* A GET /foo with n fields "X-Big-I" of size bytes each, after Host. */
static char *
request_with_big_fields(int n, size_t size)
{
	size_t cap = (size_t)n * (size + 32) + 128, len;
	char *req = malloc(cap);

	if (req == NULL)
		return NULL;
	len = (size_t)sprintf(req, "GET /foo HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < n; i++) {
		len += (size_t)sprintf(req + len, "X-Big-%02d: ", i);
		memset(req + len, 'b', size);
		len += size;
		len += (size_t)sprintf(req + len, "\r\n");
	}
	strcpy(req + len, "\r\n");
	return req;
}

/* A head within --max-header-bytes whose HTTP/2 form is larger than
 * nghttp2 will send (a header block over 64 KiB): the user's request is
 * too large, so 431, not a retry on another tunnel and then a 503, and
 * the tunnel, which did nothing wrong, stays in the pool. Nothing
 * reaches the backend. */
static void
test_contract_head_too_large_for_http2_is_431_and_not_retried(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	struct fake *f;
	/* 36 fields of 2000 bytes: 72 KB as HTTP/1.1, under the highest
	 * --max-header-bytes (http-parser's own 80 KiB), over 64 KiB as an
	 * HTTP/2 header block. */
	char *big = request_with_big_fields(36, 2000);

	assert_non_null(big);
	env_options(&o);
	o.max_header_bytes = PTTH_MAX_HEADER_BYTES_CAP;
	f = env_start_with_fake(e, &o, 100);
	assert_ok(rejected_then_closed(e, big, false, 431));
	free(big);
	pthread_mutex_lock(&f->mu);
	int requests = f->requests;
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(requests, 0);
	assert_int_equal(ptth_router_tunnel_count(e->router), 1);
	assert_ok(still_serves(e));
	assert_int_equal(fake_wait(f, FAKE_REQUESTS, 1), 0);
}

/* A GET /headers with Host and n - 1 more fields: n fields in all. */
static void
request_with_fields(char *buf, size_t size, int n)
{
	size_t len = (size_t)snprintf(buf, size, "GET /headers HTTP/1.1\r\nHost: x\r\n");

	for (int i = 1; i < n; i++)
		len += (size_t)snprintf(buf + len, size - len, "X-F%d: %d\r\n", i, i);
	snprintf(buf + len, size - len, "\r\n");
}

static void
test_contract_fields_over_max_header_fields_are_431_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	char at_limit[1024], over[1024];

	env_options(&o);
	o.max_header_fields = 10;
	env_start(e, &o);
	request_with_fields(at_limit, sizeof at_limit, 10);
	request_with_fields(over, sizeof over, 11);
	assert_ok(ask(e, at_limit, &r));
	assert_ok(check_response(&r, 200, NULL));
	assert_true(strstr(r.body, "x-f9: 9\n") != NULL);
	assert_ok(rejected_both_ways(e, over, 431));
	assert_ok(still_serves(e));
}

/* The 413 comes from the head alone: no body byte is ever sent, and no
 * 100 Continue invites one. */
static void
test_contract_content_length_over_max_body_is_413_before_the_body(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	char body[1001], req[1200];

	env_options(&o);
	o.max_body = 1000;
	env_start(e, &o);
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5000\r\n\r\n", 413));
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n", 413));
	/* At the limit the body goes through. */
	memset(body, 'k', 1000);
	body[1000] = '\0';
	snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s",
	         body);
	assert_ok(ask(e, req, &r));
	assert_ok(check_response(&r, 200, body));
	assert_ok(still_serves(e));
}

/* A chunked body has no announced size: the router counts as it reads. */
static void
test_contract_chunked_body_growing_over_max_body_is_413_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	char chunk[601], over[2048], at_limit[2048], expect[1001];

	env_options(&o);
	o.max_body = 1000;
	env_start(e, &o);
	memset(chunk, 'c', 600);
	chunk[600] = '\0';
	/* /sink answers only after the body: /echo could start its 200
	 * before the limit is crossed, and then only a cut is possible. */
	snprintf(over, sizeof over, "POST /sink HTTP/1.1\r\nHost: x\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n258\r\n%s\r\n258\r\n%s\r\n0\r\n\r\n",
	         chunk, chunk);
	assert_ok(rejected_both_ways(e, over, 413));
	/* 600 + 400 = 1000 bytes: at the limit, echoed whole. */
	snprintf(at_limit, sizeof at_limit, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n258\r\n%s\r\n190\r\n%.400s\r\n0\r\n\r\n",
	         chunk, chunk);
	memset(expect, 'c', 1000);
	expect[1000] = '\0';
	assert_ok(ask(e, at_limit, &r));
	assert_ok(check_response(&r, 200, expect));
	assert_ok(still_serves(e));
}

static void
test_contract_unknown_expectation_is_417_then_close(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(rejected_both_ways(e, "POST /echo HTTP/1.1\r\nHost: x\r\n"
	                             "Content-Length: 5\r\nExpect: teapot\r\n\r\nhello", 417));
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Slow and idle users: 408 and quiet closes.
 */

static void
test_contract_half_a_head_is_408_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;

	env_options(&o);
	o.header_timeout_ms = SHORT_MS;
	env_start(e, &o);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHo"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	long long waited = now_ms() - start;
	print_message("408 after %lld ms\n", waited);
	assert_ok(check_response(&r, 408, NULL));
	assert_non_null(resp_field(&r, "connection"));
	assert_string_equal(resp_field(&r, "connection"), "close");
	assert_true(waited >= SHORT_MS - 20);
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* The head timeout runs from the first byte: a client that keeps
 * sending one byte at a time cannot hold the connection forever. */
static void
test_contract_trickled_head_is_408_at_header_timeout(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;
	int sent = 0;

	env_options(&o);
	o.header_timeout_ms = SHORT_MS;
	env_start(e, &o);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\nX-Slow: "), 0);
	/* One byte every 40 ms: the pause is the point here. */
	while (!conn_wait_readable(&c, 40) && now_ms() - start < IO_TIMEOUT_MS) {
		if (send_all(c.fd, "s", 1) < 0)
			break;
		sent++;
	}
	assert_int_equal(read_response(&c, &r, false), 0);
	long long waited = now_ms() - start;
	print_message("408 after %lld ms and %d trickled bytes\n", waited, sent);
	assert_ok(check_response(&r, 408, NULL));
	assert_true(waited >= SHORT_MS - 20);
	assert_true(waited < IO_TIMEOUT_MS / 2);
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* recv() returns 0 with no byte before it: a quiet close. */
static const char *
closed_quietly(struct conn *c)
{
	ssize_t n = conn_fill(c);

	if (n == 0)
		return NULL;
	if (n > 0)
		return problem("the idle connection got bytes: \"%.60s\"", c->buf);
	return problem("the idle connection did not end with a FIN: %s", strerror((int)-n));
}

static void
test_contract_idle_keep_alive_connection_is_closed_quietly(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;

	env_options(&o);
	o.idle_timeout_ms = SHORT_MS;
	env_start(e, &o);
	assert_ok(ask_on(e, &c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, "bar"));
	long long start = now_ms();
	assert_ok(closed_quietly(&c));
	long long waited = now_ms() - start;
	print_message("closed after %lld ms idle\n", waited);
	/* The router's clock started while we were still reading the body. */
	assert_true(waited >= SHORT_MS / 2);
	conn_close(&c);
	assert_ok(still_serves(e));
}

static void
test_contract_silent_new_connection_is_closed_quietly(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	struct conn c;

	env_options(&o);
	o.idle_timeout_ms = SHORT_MS;
	env_start(e, &o);
	long long start = now_ms();
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_ok(closed_quietly(&c));
	long long waited = now_ms() - start;
	print_message("closed after %lld ms of silence\n", waited);
	assert_true(waited >= SHORT_MS - 20);
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* A request body that stops coming, with nothing of the response sent
 * yet, is answered 408 after body_timeout_ms and its stream is reset.
 * The backend here allows one stream, which the stalled upload holds:
 * another user's request waits behind it and is served once it is cut,
 * long before the idle timeout that used to bound the wait. */
static void
test_contract_stalled_request_body_is_408_and_others_are_served(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;
	struct fake *f;

	env_options(&o);
	o.body_timeout_ms = SHORT_MS;
	f = env_start_with_fake(e, &o, 1);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "POST /hold HTTP/1.1\r\nHost: x\r\n"
	                               "Content-Length: 100\r\n\r\nhello"), 0);
	assert_int_equal(fake_wait(f, FAKE_REQUESTS, 1), 0);
	int32_t stalled = fake_last_request(f);
	assert_ok(still_serves(e));
	assert_int_equal(read_response(&c, &r, false), 0);
	long long waited = now_ms() - start;
	print_message("408 after %lld ms: %s", waited, r.body);
	assert_ok(check_response(&r, 408, NULL));
	assert_non_null(resp_field(&r, "connection"));
	assert_string_equal(resp_field(&r, "connection"), "close");
	assert_true(waited >= SHORT_MS - 20);
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	assert_ok(fake_saw_cancel(f, stalled));
}

/* Once the response has begun, a stalled request body can no longer be
 * answered 408: the request is cut (the chunked body the user got has
 * no last chunk), the connection closes and the stream is reset. */
static void
test_contract_stalled_request_body_after_the_answer_began_is_cut(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;
	struct fake *f;

	env_options(&o);
	o.body_timeout_ms = SHORT_MS;
	f = env_start_with_fake(e, &o, 100);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "POST /deaf HTTP/1.1\r\nHost: x\r\n"
	                               "Content-Length: 100\r\n\r\nhello"), 0);
	assert_int_equal(read_head(&c, &r, false), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.framing, FRAMING_CHUNKED);
	int32_t stalled = fake_last_request(f);
	assert_int_equal(read_body(&c, &r), 0);
	long long waited = now_ms() - start;
	print_message("cut after %lld ms\n", waited);
	assert_false(r.complete);
	assert_true(r.eof);
	assert_true(waited >= SHORT_MS - 20);
	conn_close(&c);
	assert_ok(fake_saw_cancel(f, stalled));
	assert_ok(still_serves(e));
}

/* A user that asks for an endless body and never reads (a small
 * receive buffer, so the router's writes block early) is dropped after
 * send_timeout_ms: the backend sees its stream reset, and the one
 * stream it allows serves others again. */
static void
test_contract_user_that_stops_reading_is_dropped_at_the_send_timeout(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static const char request[] = "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n";
	static char buf[64 * 1024];
	struct fake *f;
	ssize_t n;

	env_options(&o);
	o.send_timeout_ms = SHORT_MS;
	f = env_start_with_fake(e, &o, 1);
	int fd = dial_loopback_rcvbuf(e->http_port, 4096);
	assert_true(fd >= 0);
	long long start = now_ms();
	assert_int_equal(send_all(fd, request, sizeof request - 1), 0);
	assert_int_equal(fake_wait(f, FAKE_REQUESTS, 1), 0);
	assert_ok(fake_saw_cancel(f, fake_last_request(f)));
	long long waited = now_ms() - start;
	print_message("stream reset after %lld ms\n", waited);
	assert_true(waited >= SHORT_MS - 20);
	assert_ok(still_serves(e));
	/* The router closed its end: what it had sent ends with a FIN. */
	unsigned long long total = 0;
	while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
		total += (unsigned long long)n;
	print_message("%llu bytes were on their way, then %s\n", total,
	              n == 0 ? "a FIN" : strerror(errno));
	assert_true(n == 0 || errno == ECONNRESET);
	close(fd);
}

/* ---------------------------------------------------------------------
 * No capacity: 503.
 */

static void
test_contract_no_tunnel_is_503_with_a_short_text(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;

	env_options(&o);
	assert_int_equal(env_start_router(e, &o), 0);
	assert_ok(ask(e, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n", &r));
	print_message("503 body: %s", r.body);
	assert_ok(check_response(&r, 503, NULL));
	assert_non_null(resp_field(&r, "content-type"));
	assert_true(strncmp(resp_field(&r, "content-type"), "text/plain", 10) == 0);
	assert_true(r.body_len > 0 && r.body_len < 200);
	assert_true(r.body[r.body_len - 1] == '\n');
	assert_null(memchr(r.body, '\n', r.body_len - 1));
	/* A backend arrives: the router serves. */
	assert_int_equal(env_start_backend(e), 0);
	assert_ok(still_serves(e));
}

/* True when the connection in *a or *b becomes readable first: returns
 * 0 for a, 1 for b, -1 when neither does in IO_TIMEOUT_MS. */
static int
first_readable(struct conn *a, struct conn *b)
{
	struct pollfd p[2] = { { .fd = a->fd, .events = POLLIN }, { .fd = b->fd, .events = POLLIN } };

	if (poll(p, 2, IO_TIMEOUT_MS) <= 0)
		return -1;
	return p[0].revents != 0 ? 0 : 1;
}

/* The router keeps at most MAX_CONCURRENT_STREAMS streams open on a
 * tunnel and queue_size more requests waiting; beyond that, 503 with
 * Retry-After. The fake backend allows one stream, so three requests
 * make the case: one open, one queued, one refused. */
static void
test_contract_full_queue_is_503_with_retry_after(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn a, b, c;
	struct fake *f;

	env_options(&o);
	o.queue_size = 1;
	f = env_start_with_fake(e, &o, 1);
	assert_int_equal(conn_open(&a, e->http_port), 0);
	assert_int_equal(conn_send(&a, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(fake_wait(f, FAKE_REQUESTS, 1), 0);
	/* The one stream is taken: of b and c, one waits in the queue and
	 * the other finds it full, whichever the router reads first. */
	assert_int_equal(conn_open(&b, e->http_port), 0);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&b, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(conn_send(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	int first = first_readable(&b, &c);
	assert_true(first >= 0);
	struct conn *refused = first == 0 ? &b : &c, *queued = first == 0 ? &c : &b;
	assert_int_equal(read_response(refused, &r, false), 0);
	print_message("503 body: %s", r.body);
	assert_ok(check_response(&r, 503, NULL));
	assert_non_null(resp_field(&r, "retry-after"));
	assert_true(strtol(resp_field(&r, "retry-after"), NULL, 10) > 0);
	/* Freed, the stream serves a, then the queued request. */
	fake_release(f);
	assert_int_equal(read_response(&a, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	assert_int_equal(read_response(queued, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	assert_int_equal(fake_wait(f, FAKE_REQUESTS, 2), 0);
	conn_close(&a);
	conn_close(&b);
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* The same with the real backend, which allows BACKEND_STREAMS streams
 * per tunnel: that many blocked handlers, one request queued, and the
 * next is refused. */
#define BACKEND_STREAMS 256

static void
test_contract_full_queue_behind_a_real_backend_is_503_with_retry_after(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	const int n = BACKEND_STREAMS + 2;
	struct conn *conns = calloc((size_t)n, sizeof *conns);
	static const char block[] = "GET /block HTTP/1.1\r\nHost: x\r\n\r\n";
	int served = 0;

	assert_non_null(conns);
	for (int i = 0; i < n; i++)
		conns[i].fd = -1;
	env_options(&o);
	o.queue_size = 1;
	env_start(e, &o);
	/* One at a time: the queue holds one request, so a burst would be
	 * refused before the tunnel thread takes them out of it. */
	for (int i = 0; i < BACKEND_STREAMS; i++) {
		assert_int_equal(conn_open(&conns[i], e->http_port), 0);
		assert_int_equal(conn_send(&conns[i], block), 0);
		assert_int_equal(env_wait_blocked(e, i + 1), 0);
	}
	struct conn *b = &conns[n - 2], *c = &conns[n - 1];
	assert_int_equal(conn_open(b, e->http_port), 0);
	assert_int_equal(conn_open(c, e->http_port), 0);
	assert_int_equal(conn_send(b, block), 0);
	assert_int_equal(conn_send(c, block), 0);
	int first = first_readable(b, c);
	assert_true(first >= 0);
	struct conn *refused = first == 0 ? b : c;
	assert_int_equal(read_response(refused, &r, false), 0);
	assert_ok(check_response(&r, 503, NULL));
	assert_non_null(resp_field(&r, "retry-after"));
	conn_close(refused);
	env_unblock(e);
	for (int i = 0; i < n; i++) {
		if (conns[i].fd < 0)
			continue;
		if (read_response(&conns[i], &r, false) == 0 && r.status == 200 &&
		    strcmp(r.body, "bar") == 0)
			served++;
		conn_close(&conns[i]);
	}
	free(conns);
	assert_int_equal(served, BACKEND_STREAMS + 1);
	assert_ok(still_serves(e));
}

/* Past max_conns a connection gets 503 and is closed at once; the
 * accept loop goes on, and a connection that ends makes room. */
static void
test_contract_over_max_conns_is_503_then_close(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn a, b, c, d;

	env_options(&o);
	o.max_conns = 2;
	env_start(e, &o);
	assert_ok(ask_on(e, &a, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, "bar"));
	assert_ok(ask_on(e, &b, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, "bar"));
	/* The third is refused before it sends anything. */
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 503, NULL));
	assert_non_null(resp_field(&r, "retry-after"));
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	/* a ends (the router closes it after removing it from its count). */
	assert_int_equal(conn_send(&a, "GET /foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 0);
	assert_int_equal(read_response(&a, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	assert_ok(conn_expect_close(&a));
	conn_close(&a);
	assert_ok(ask_on(e, &d, "GET /foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	                 false, &r));
	assert_ok(check_response(&r, 200, "bar"));
	assert_ok(conn_expect_close(&d));
	conn_close(&d);
	assert_ok(still_serves(e));
	conn_close(&b);
}

/* ---------------------------------------------------------------------
 * The backend fails: 504, 502, cut bodies.
 */

static void
test_contract_slow_backend_is_504_and_stream_reset(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;
	struct fake *f;

	env_options(&o);
	o.backend_timeout_ms = SHORT_MS;
	f = env_start_with_fake(e, &o, 100);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	long long waited = now_ms() - start;
	print_message("504 after %lld ms: %s", waited, r.body);
	assert_ok(check_response(&r, 504, NULL));
	assert_true(waited >= SHORT_MS - 20);
	/* The stream the router gave up on is reset, with CANCEL. */
	assert_int_equal(fake_wait(f, FAKE_RESETS, 1), 0);
	pthread_mutex_lock(&f->mu);
	int32_t reset = f->last_reset, request = f->last_request;
	uint32_t code = f->last_reset_code;
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(reset, request);
	assert_int_equal(code, NGHTTP2_CANCEL);
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* A backend that answers HEAD with a body (the fake sends "bar" for
 * every request) breaks HTTP/2's message rules (RFC 9113 section 8.1.1).
 * The router resets that stream with PROTOCOL_ERROR; the user has the
 * head, Content-Length included and no body (a HEAD response has none),
 * and the connection stays open for the next request. */
static void
test_contract_data_on_a_head_stream_is_reset_after_the_head(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;
	struct fake *f;

	f = env_start_with_fake(e, NULL, 100);
	assert_ok(ask_on(e, &c, "HEAD /foo HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, ""));
	assert_non_null(resp_field(&r, "content-length"));
	assert_string_equal(resp_field(&r, "content-length"), "3");
	assert_int_equal(fake_wait(f, FAKE_RESETS, 1), 0);
	pthread_mutex_lock(&f->mu);
	int32_t reset = f->last_reset, request = f->last_request;
	uint32_t code = f->last_reset_code;
	pthread_mutex_unlock(&f->mu);
	assert_int_equal(reset, request);
	assert_int_equal(code, NGHTTP2_PROTOCOL_ERROR);
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* The backend process dies while the request waits for its head. */
static void
test_contract_tunnel_break_before_the_head_is_502(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;

	env_options(&o);
	assert_int_equal(env_start_router(e, &o), 0);
	assert_int_equal(child_start(e), 0);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&c, "GET /sleep?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(child_wait_log(e, "handling: /sleep"), 0);
	int status = child_kill(e);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(read_response(&c, &r, false), 0);
	print_message("502 body: %s", r.body);
	assert_ok(check_response(&r, 502, NULL));
	assert_non_null(strstr(r.body, "tunnel"));
	conn_close(&c);
	/* The dead tunnel is gone; a new backend serves. */
	assert_int_equal(env_start_backend(e), 0);
	assert_ok(still_serves(e));
}

/* The backend resets the stream before it sends a head. */
static void
test_contract_backend_reset_before_the_head_is_502(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	assert_ok(ask(e, "GET /reset HTTP/1.1\r\nHost: x\r\n\r\n", &r));
	print_message("502 body: %s", r.body);
	assert_ok(check_response(&r, 502, NULL));
	assert_true(r.body_len > 0);
	assert_ok(still_serves(e));
}

/* The backend process dies while a body with a Content-Length streams:
 * the user gets fewer bytes than announced, then the close. */
static void
test_contract_tunnel_break_after_the_head_cuts_a_sized_body(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;
	const char *data = NULL;

	env_options(&o);
	assert_int_equal(env_start_router(e, &o), 0);
	assert_int_equal(child_start(e), 0);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&c, "GET /bytes?n=500000000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_head(&c, &r, false), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.framing, FRAMING_LENGTH);
	assert_int_equal(r.length, 500000000LL);
	/* Some body flows; then the backend dies. */
	ssize_t n = conn_take(&c, 1, &data);
	assert_int_equal(n, 1);
	body_keep(&r, data, 1);
	int status = child_kill(e);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(read_body(&c, &r), 0);
	print_message("%llu of %lld bytes before the close\n", r.body_total, r.length);
	assert_false(r.complete);
	assert_true(r.eof);
	assert_true(r.body_total < 500000000ULL);
	conn_close(&c);
	assert_int_equal(env_start_backend(e), 0);
	assert_ok(still_serves(e));
}

/* The backend sends a head and part of the body, then nothing: after
 * backend_timeout_ms without a byte the body is cut (short of its
 * Content-Length) and the connection closes; the router still serves. */
static void
test_contract_backend_stalling_mid_body_is_cut_at_the_backend_timeout(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;

	env_options(&o);
	o.backend_timeout_ms = SHORT_MS;
	env_start(e, &o);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "GET /stall HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_head(&c, &r, false), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.length, 10);
	assert_int_equal(read_body(&c, &r), 0);
	long long waited = now_ms() - start;
	print_message("%llu of %lld bytes, closed after %lld ms\n", r.body_total, r.length,
	              waited);
	assert_false(r.complete);
	assert_true(r.eof);
	assert_int_equal(r.body_total, 3);
	assert_true(waited >= SHORT_MS - 20);
	conn_close(&c);
	pthread_mutex_lock(&e->mu);
	e->unblocked = true;
	pthread_cond_broadcast(&e->changed);
	pthread_mutex_unlock(&e->mu);
	assert_ok(still_serves(e));
}

/* Sends a request body from a thread of its own, for as long as the
 * router takes it. */
struct uploader {
	int fd;
	long long len;            /* body bytes to send */
	int rc;                   /* out: 0, or the code that ended the upload */
};

static void *
uploader_thread_main(void *arg)
{
	static const char zeros[16384];
	struct uploader *u = arg;

	for (long long left = u->len; left > 0 && u->rc == 0;) {
		size_t n = left < (long long)sizeof zeros ? (size_t)left : sizeof zeros;
		u->rc = send_all(u->fd, zeros, n);
		left -= (long long)n;
	}
	return NULL;
}

/* The backend sends a head, then neither a body byte nor room for the
 * request body still uploading: after backend_timeout_ms the response
 * is cut, the connection closes and the stream is reset. */
static void
test_contract_backend_stalling_while_the_body_uploads_is_cut_at_the_backend_timeout(
	void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct uploader u = { .len = 64LL << 20 };
	pthread_t uploader;
	struct conn c;
	struct fake *f;

	env_options(&o);
	o.backend_timeout_ms = SHORT_MS;
	f = env_start_with_fake(e, &o, 100);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "POST /deaf HTTP/1.1\r\nHost: x\r\n"
	                               "Content-Length: 67108864\r\n\r\n"), 0);
	u.fd = c.fd;
	assert_int_equal(pthread_create(&uploader, NULL, uploader_thread_main, &u), 0);
	int rc = read_response(&c, &r, false);
	long long waited = now_ms() - start;
	shutdown(c.fd, SHUT_RDWR); /* ends the upload, whatever happened */
	pthread_join(uploader, NULL);
	print_message("status %d, cut after %lld ms, upload ended with %s\n", r.status, waited,
	              strerror(-u.rc));
	assert_int_equal(rc, 0);
	assert_int_equal(r.status, 200);
	assert_false(r.complete);
	assert_true(r.eof);
	assert_true(waited >= SHORT_MS - 20);
	conn_close(&c);
	assert_ok(fake_saw_cancel(f, fake_last_request(f)));
	assert_ok(still_serves(e));
}

/* The backend clock does not count the user's time: a body uploaded
 * over twice the backend timeout, to a backend that answers once it has
 * read it all, is answered, not 504. */
static void
test_contract_slow_upload_does_not_count_against_the_backend_timeout(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	struct conn c;

	env_options(&o);
	o.backend_timeout_ms = 3 * SHORT_MS;
	env_start(e, &o);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	long long start = now_ms();
	assert_int_equal(conn_send(&c, "POST /sink HTTP/1.1\r\nHost: x\r\n"
	                               "Content-Length: 6\r\n\r\n"), 0);
	/* One byte every SHORT_MS: the pause is the point here. */
	for (int i = 0; i < 6 && !conn_wait_readable(&c, SHORT_MS); i++)
		assert_int_equal(send_all(c.fd, "x", 1), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	long long waited = now_ms() - start;
	print_message("%d after %lld ms: %s\n", r.status, waited, r.body);
	assert_ok(check_response(&r, 200, "6"));
	assert_true(waited >= 6 * SHORT_MS - 20);
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* The backend hangs up while an unsized body streams: the chunked body
 * the user gets has no last chunk, and the connection closes. */
static void
test_contract_tunnel_break_after_the_head_cuts_a_chunked_body(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;

	env_start_with_fake(e, NULL, 100);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&c, "GET /break HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.framing, FRAMING_CHUNKED);
	assert_string_equal(r.body, "hello");
	assert_false(r.complete);
	assert_true(r.eof);
	conn_close(&c);
	assert_int_equal(env_start_backend(e), 0);
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Forwarding: what reaches the backend (GET /headers lists it).
 */

/* True when text has a line that is exactly line. */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p != NULL && *p != '\0';) {
		const char *end = strchr(p, '\n');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len == n && memcmp(p, line, n) == 0)
			return true;
		p = end != NULL ? end + 1 : NULL;
	}
	return false;
}

/* The number of lines of text that start with "name:". */
static int
count_lines_named(const char *text, const char *name)
{
	size_t n = strlen(name);
	int count = 0;

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			count++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return count;
}

/* Sends request (to /headers) and returns in r what the backend saw. */
static void
ask_headers(struct env *e, const char *request, struct response *r)
{
	assert_ok(ask(e, request, r));
	assert_ok(check_response(r, 200, NULL));
	print_message("the backend saw:\n%s", r->body);
}

/* Asserts that none of the NULL-terminated names reached the backend. */
static void
assert_not_forwarded(const struct response *r, const char *const names[])
{
	for (int i = 0; names[i] != NULL; i++)
		if (count_lines_named(r->body, names[i]) != 0)
			fail_msg("\"%s\" was forwarded", names[i]);
}

static void
test_contract_hop_by_hop_fields_are_not_forwarded(void **state)
{
	struct env *e = *state;
	static struct response r;
	static const char *const dropped[] = {
		"connection", "x-private", "x-other", "keep-alive", "proxy-connection",
		"upgrade", "transfer-encoding", "host", NULL,
	};

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: hop.test\r\n"
	            "Connection: keep-alive, x-private,X-Other\r\n"
	            "X-Private: secret\r\nX-Other: other\r\n"
	            "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
	            "Upgrade: websocket\r\nX-End-To-End: kept\r\n\r\n", &r);
	assert_not_forwarded(&r, dropped);
	assert_true(has_line(r.body, "x-end-to-end: kept"));
	/* The body still arrives, but not its HTTP/1.1 framing. */
	ask_headers(e, "POST /headers HTTP/1.1\r\nHost: hop.test\r\n"
	            "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", &r);
	assert_not_forwarded(&r, dropped);
	assert_true(has_line(r.body, ":method: POST"));
	assert_ok(still_serves(e));
}

/* A request may carry several Connection fields; the names in each one
 * are hop-by-hop (RFC 9110 section 7.6.1, list syntax of section 5.3). */
static void
test_contract_fields_named_in_any_connection_field_are_not_forwarded(void **state)
{
	struct env *e = *state;
	static struct response r;
	static const char *const dropped[] = { "connection", "x-first", "x-second", NULL };

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: hop.test\r\n"
	            "Connection: x-first\r\nConnection: x-second\r\n"
	            "X-First: 1\r\nX-Second: 2\r\n\r\n", &r);
	assert_not_forwarded(&r, dropped);
	assert_ok(still_serves(e));
}

/* Only "TE: trailers" may cross into HTTP/2 (RFC 9113 section 8.2.2). */
static void
test_contract_te_is_forwarded_only_as_trailers(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: x\r\nTE: trailers, deflate\r\n\r\n", &r);
	assert_int_equal(count_lines_named(r.body, "te"), 1);
	assert_true(has_line(r.body, "te: trailers"));
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: x\r\nTE: deflate\r\n\r\n", &r);
	assert_int_equal(count_lines_named(r.body, "te"), 0);
	assert_ok(still_serves(e));
}

/* curl --http2 on an http:// URL asks to upgrade to h2c; the router
 * serves the request over HTTP/1.1 and forwards none of it. */
static void
test_contract_h2c_upgrade_request_is_served_over_http11(void **state)
{
	struct env *e = *state;
	static char out[8192];
	char url[128];
	static const char *const dropped[] = { "connection", "upgrade", "http2-settings", NULL };

	env_start(e, NULL);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/headers", e->http_port);
	const char *const args[] = { "--http2", url, NULL };
	assert_int_equal(run_curl(args, out, sizeof out), 0);
	print_message("the backend saw:\n%s", out);
	assert_true(has_line(out, ":method: GET"));
	for (int i = 0; dropped[i] != NULL; i++)
		if (count_lines_named(out, dropped[i]) != 0)
			fail_msg("\"%s\" was forwarded", dropped[i]);
	assert_ok(still_serves(e));
}

static void
test_contract_host_becomes_authority(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: site.test:8080\r\n\r\n", &r);
	assert_true(has_line(r.body, ":authority: site.test:8080"));
	assert_int_equal(count_lines_named(r.body, "host"), 0);
	assert_ok(still_serves(e));
}

/* RFC 9112 section 3.2.2: the absolute form a proxy client sends. */
static void
test_contract_absolute_form_target_is_accepted(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	ask_headers(e, "GET http://abs.test:8080/headers?x=1 HTTP/1.1\r\n"
	            "Host: abs.test:8080\r\n\r\n", &r);
	assert_true(has_line(r.body, ":path: /headers?x=1"));
	assert_true(has_line(r.body, ":authority: abs.test:8080"));
	assert_int_equal(count_lines_named(r.body, "host"), 0);
	/* No path at all means "/", which the backend's mux does not know. */
	assert_ok(ask(e, "GET http://abs.test HTTP/1.1\r\nHost: abs.test\r\n\r\n", &r));
	assert_ok(check_response(&r, 404, "404 page not found\n"));
	assert_ok(still_serves(e));
}

static void
test_contract_field_names_are_lower_cased(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: x\r\nX-MiXeD-CaSe: VaLuE\r\n"
	            "ACCEPT: */*\r\n\r\n", &r);
	assert_true(has_line(r.body, "x-mixed-case: VaLuE"));
	assert_true(has_line(r.body, "accept: */*"));
	assert_ok(still_serves(e));
}

static void
test_contract_forwarding_fields_are_added(void **state)
{
	struct env *e = *state;
	static struct response r;

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: fwd.test\r\n\r\n", &r);
	assert_true(has_line(r.body, "x-forwarded-for: 127.0.0.1"));
	assert_true(has_line(r.body, "x-forwarded-proto: http"));
	assert_true(has_line(r.body, "x-forwarded-host: fwd.test"));
	assert_true(has_line(r.body, "forwarded: for=127.0.0.1;host=\"fwd.test\";proto=http"));
	/* Incoming ones: the lists are extended, the rest is the router's. */
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: fwd.test\r\n"
	            "X-Forwarded-For: 203.0.113.7\r\nForwarded: for=203.0.113.7\r\n"
	            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: spoof.test\r\n\r\n", &r);
	assert_true(has_line(r.body, "x-forwarded-for: 203.0.113.7, 127.0.0.1"));
	assert_true(has_line(r.body,
	                     "forwarded: for=203.0.113.7, for=127.0.0.1;host=\"fwd.test\";proto=http"));
	assert_int_equal(count_lines_named(r.body, "x-forwarded-for"), 1);
	assert_int_equal(count_lines_named(r.body, "x-forwarded-proto"), 1);
	assert_true(has_line(r.body, "x-forwarded-proto: http"));
	assert_int_equal(count_lines_named(r.body, "x-forwarded-host"), 1);
	assert_true(has_line(r.body, "x-forwarded-host: fwd.test"));
	assert_ok(still_serves(e));
}

/* Two X-Forwarded-For (or Forwarded) fields are one list (RFC 9110
 * section 5.3): the router extends all of it, not the first field alone,
 * and forwards no stale copy of either. */
static void
test_contract_forwarding_lists_extend_every_incoming_field(void **state)
{
	struct env *e = *state;
	static struct response r;
	static const char *const want[] = {
		"x-forwarded-for: 198.51.100.1, 203.0.113.7, 127.0.0.1",
		"forwarded: for=198.51.100.1, for=203.0.113.7, for=127.0.0.1;host=\"fwd.test\";"
		"proto=http",
		NULL,
	};

	env_start(e, NULL);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: fwd.test\r\n"
	            "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 203.0.113.7\r\n"
	            "Forwarded: for=198.51.100.1\r\nForwarded: for=203.0.113.7\r\n\r\n", &r);
	char missing[512] = "";
	for (int i = 0; want[i] != NULL; i++)
		if (!has_line(r.body, want[i]))
			snprintf(missing + strlen(missing), sizeof missing - strlen(missing),
			         " \"%s\"", want[i]);
	if (missing[0] != '\0')
		fail_msg("the backend did not get:%s", missing);
	assert_int_equal(count_lines_named(r.body, "x-forwarded-for"), 1);
	assert_int_equal(count_lines_named(r.body, "forwarded"), 1);
	assert_ok(still_serves(e));
}

static void
test_contract_no_forwarded_adds_no_forwarding_fields(void **state)
{
	struct env *e = *state;
	struct ptth_router_options o;
	static struct response r;
	static const char *const none[] = {
		"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", NULL,
	};

	env_options(&o);
	o.no_forwarded = 1;
	env_start(e, &o);
	ask_headers(e, "GET /headers HTTP/1.1\r\nHost: fwd.test\r\n\r\n", &r);
	assert_not_forwarded(&r, none);
	assert_true(has_line(r.body, ":authority: fwd.test"));
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Request bodies.
 */

/* len bytes of a pattern that a shifted or dropped piece would break. */
static char *
pattern_new(size_t len)
{
	char *p = malloc(len + 1);

	for (size_t i = 0; p != NULL && i < len; i++)
		p[i] = (char)('A' + (i * 7 + i / 1000) % 58);
	if (p != NULL)
		p[len] = '\0';
	return p;
}

/* POSTs len pattern bytes to /echo through libcurl and expects them back. */
static const char *
echo_through_curl(struct env *e, size_t len, bool chunked)
{
	char *sent = pattern_new(len);
	char *got = malloc(len + 2);
	struct sink s = { got, len + 2, 0 };
	const char *why = NULL;
	long status;
	CURLcode rc;

	if (sent == NULL || got == NULL) {
		free(sent);
		free(got);
		return "out of memory";
	}
	rc = curl_request(e, "/echo", sent, len, chunked, &status, &s);
	if (rc != CURLE_OK)
		why = problem("POST /echo (%s): %s", chunked ? "chunked" : "Content-Length",
		              curl_easy_strerror(rc));
	else if (status != 200 || s.len != len || memcmp(sent, got, len) != 0)
		why = problem("POST /echo (%s): %ld with %zu of %zu bytes%s", chunked ? "chunked"
		              : "Content-Length", status, s.len, len,
		              s.len == len ? ", different" : "");
	free(sent);
	free(got);
	return why;
}

static void
test_contract_content_length_body_streams_through_echo(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
	                          "hello world";

	env_start(e, NULL);
	for (int bytewise = 0; bytewise <= 1; bytewise++) {
		assert_ok(ask_on(e, &c, req, bytewise, &r));
		conn_close(&c);
		assert_ok(check_response(&r, 200, "hello world"));
	}
	assert_ok(echo_through_curl(e, sanitized() ? 256 * 1024 : 4 * 1024 * 1024, false));
	assert_ok(still_serves(e));
}

static void
test_contract_chunked_body_streams_through_echo(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	                          "\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n";

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, req, false, &r));
	conn_close(&c);
	assert_ok(check_response(&r, 200, "hello world"));
	/* Byte by byte, to the end: the echo's head may come back before the
	 * last chunk is sent, and the request must still be sent whole. */
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send_every_byte(&c, req), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	conn_close(&c);
	assert_ok(check_response(&r, 200, "hello world"));
	assert_ok(echo_through_curl(e, sanitized() ? 256 * 1024 : 4 * 1024 * 1024, true));
	assert_ok(still_serves(e));
}

/* Streaming means the echo of the first half comes back while the
 * second half is not even sent: a client may wait for it. */
static const char *
echo_answers_before_the_end(struct env *e, const char *head, const char *first,
                            const char *second)
{
	static struct response r;
	struct conn c;
	const char *why = NULL;

	if (conn_open(&c, e->http_port) < 0)
		return "cannot connect";
	if (conn_send(&c, head) < 0 || conn_send(&c, first) < 0)
		why = "cannot send";
	else if (!conn_wait_readable(&c, STREAM_WAIT_MS))
		why = problem("nothing came back within %d ms of the first half of the body "
		              "(the response waits for the end of the request)", STREAM_WAIT_MS);
	else if (read_head(&c, &r, false) < 0 || r.status != 200)
		why = problem("no 200 head for the first half (status %d)", r.status);
	if (why == NULL && (conn_send(&c, second) < 0 || read_body(&c, &r) < 0))
		why = "no body after the second half";
	if (why == NULL)
		why = check_response(&r, 200, "hello world");
	conn_close(&c);
	return why;
}

static void
test_contract_echo_answers_before_the_request_body_ends(void **state)
{
	struct env *e = *state;

	env_start(e, NULL);
	assert_ok(echo_answers_before_the_end(
		e, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", "hello", " world"));
	assert_ok(echo_answers_before_the_end(
		e, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"5\r\nhello\r\n", "6\r\n world\r\n0\r\n\r\n"));
	assert_ok(still_serves(e));
}

/* The 100 comes before any body byte is sent; the final answer after. */
static void
test_contract_expect_100_continue_gets_100_then_the_answer(void **state)
{
	struct env *e = *state;
	static struct response r;
	static char out[256];
	struct conn c;
	char url[128];

	env_start(e, NULL);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	                           "Expect: 100-continue\r\n\r\n"), 0);
	assert_int_equal(read_head(&c, &r, false), 0);
	assert_int_equal(r.status, 100);
	assert_int_equal(r.minor, 1);
	assert_int_equal(conn_send(&c, "hello"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "hello"));
	conn_close(&c);
	/* curl waits up to --expect100-timeout for the 100 before it sends;
	 * with that longer than --max-time, it only succeeds if the 100 comes. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", e->http_port);
	const char *const args[] = { "--expect100-timeout", "30", "-H", "Expect: 100-continue",
	                             "--data-binary", "hello", url, NULL };
	assert_int_equal(run_curl(args, out, sizeof out), 0);
	assert_string_equal(out, "hello");
	assert_ok(still_serves(e));
}

/* ---------------------------------------------------------------------
 * Response framing.
 */

/* A HEAD answer has the GET answer's fields and no body: the next
 * response on the connection starts right after the head. */
static void
test_contract_head_gets_no_body(void **state)
{
	struct env *e = *state;
	static struct response r;
	static char out[1024];
	struct conn c;
	char url[128];

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "HEAD /foo HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, ""));
	assert_non_null(resp_field(&r, "content-length"));
	assert_string_equal(resp_field(&r, "content-length"), "3");
	assert_int_equal(conn_send(&c, "HEAD /headers HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, true), 0);
	assert_ok(check_response(&r, 200, ""));
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", e->http_port);
	const char *const args[] = { "--head", url, NULL };
	assert_int_equal(run_curl(args, out, sizeof out), 0);
	assert_true(strncmp(out, "HTTP/1.1 200", 12) == 0);
	assert_ok(still_serves(e));
}

static void
test_contract_204_and_304_carry_no_body(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 204, ""));
	assert_null(resp_field(&r, "transfer-encoding"));
	assert_null(resp_field(&r, "content-length")); /* RFC 9110 section 8.6 */
	assert_int_equal(conn_send(&c, "GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 304, ""));
	assert_null(resp_field(&r, "transfer-encoding"));
	/* Had either carried a byte, this response would not parse. */
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	assert_ok(still_serves(e));
}

static void
test_contract_unsized_response_is_chunked_for_http11(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "GET /headers HTTP/1.1\r\nHost: x\r\n\r\n", false, &r));
	assert_ok(check_response(&r, 200, NULL));
	assert_int_equal(r.framing, FRAMING_CHUNKED);
	assert_null(resp_field(&r, "content-length"));
	assert_true(has_line(r.body, ":method: GET"));
	/* The connection stays usable. */
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	assert_ok(still_serves(e));
}

static void
test_contract_unsized_response_is_close_delimited_for_http10(void **state)
{
	struct env *e = *state;
	static struct response r;
	static char out[4096];
	struct conn c;
	char url[128];

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "GET /headers HTTP/1.0\r\n\r\n", false, &r));
	conn_close(&c);
	assert_ok(check_response(&r, 200, NULL));
	assert_int_equal(r.framing, FRAMING_CLOSE);
	assert_true(r.eof);
	assert_null(resp_field(&r, "transfer-encoding"));
	assert_non_null(resp_field(&r, "connection"));
	assert_string_equal(resp_field(&r, "connection"), "close");
	assert_true(has_line(r.body, ":method: GET"));
	snprintf(url, sizeof url, "http://127.0.0.1:%d/headers", e->http_port);
	const char *const args[] = { "--http1.0", url, NULL };
	assert_int_equal(run_curl(args, out, sizeof out), 0);
	assert_true(has_line(out, ":method: GET"));
	assert_ok(still_serves(e));
}

static void
test_contract_trailers_follow_the_last_chunk(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;

	env_start(e, NULL);
	assert_ok(ask_on(e, &c, "GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
	                 false, &r));
	assert_ok(check_response(&r, 200, "body\n"));
	assert_int_equal(r.framing, FRAMING_CHUNKED);
	assert_int_equal(r.ntrailers, 1);
	assert_non_null(field_get(r.trailers, r.ntrailers, "x-checksum"));
	assert_string_equal(field_get(r.trailers, r.ntrailers, "x-checksum"), "12345");
	assert_int_equal(conn_send(&c, "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 200, "bar"));
	conn_close(&c);
	assert_ok(still_serves(e));
}

/* Three requests in one write (then byte by byte) are answered in order. */
static void
test_contract_pipelined_requests_are_answered_in_order(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;
	static const char three[] =
		"GET /status?code=201 HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		"GET /status?code=202 HTTP/1.1\r\nHost: x\r\n\r\n";

	env_start(e, NULL);
	for (int bytewise = 0; bytewise <= 1; bytewise++) {
		assert_int_equal(conn_open(&c, e->http_port), 0);
		if (bytewise) {
			for (size_t i = 0; three[i] != '\0'; i++)
				assert_int_equal(send_all(c.fd, three + i, 1), 0);
		} else {
			assert_int_equal(conn_send(&c, three), 0);
		}
		assert_int_equal(read_response(&c, &r, false), 0);
		assert_ok(check_response(&r, 201, "status 201\n"));
		assert_int_equal(read_response(&c, &r, false), 0);
		assert_ok(check_response(&r, 200, "hello"));
		assert_int_equal(read_response(&c, &r, false), 0);
		assert_ok(check_response(&r, 202, "status 202\n"));
		conn_close(&c);
	}
	assert_ok(still_serves(e));
}

/* Nothing of one request leaks into the next: after a HEAD request, the
 * router's own 400 for the next one on the same connection still carries
 * the body its Content-Length announces. */
static void
test_contract_error_after_a_head_request_carries_its_body(void **state)
{
	struct env *e = *state;
	static struct response r;
	struct conn c;

	env_start(e, NULL);
	assert_int_equal(conn_open(&c, e->http_port), 0);
	assert_int_equal(conn_send(&c, "HEAD /foo HTTP/1.1\r\nHost: x\r\n\r\n"
	                               "GET /foo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 0);
	assert_int_equal(read_response(&c, &r, true), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(read_response(&c, &r, false), 0);
	assert_ok(check_response(&r, 400, NULL));
	assert_int_equal((long long)r.body_len, r.length);
	assert_non_null(strstr(r.body, "more than one Host field"));
	assert_ok(conn_expect_close(&c));
	conn_close(&c);
	assert_ok(still_serves(e));
}

static int
group_setup(void **state)
{
	const char *verbose = getenv("PTTH_TEST_VERBOSE");

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	ptth_log_set_verbose(verbose != NULL && strcmp(verbose, "1") == 0);
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	return 0;
}

#define CONTRACT_TEST(name) cmocka_unit_test_setup_teardown(name, env_setup, env_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* 400, then close */
		CONTRACT_TEST(test_contract_unparsable_request_line_is_400_then_close),
		CONTRACT_TEST(test_contract_misspelled_http_name_is_400_then_close),
		CONTRACT_TEST(test_contract_content_length_with_transfer_encoding_is_400_then_close),
		CONTRACT_TEST(test_contract_two_different_content_lengths_are_400_then_close),
		CONTRACT_TEST(test_contract_space_before_colon_is_400_then_close),
		CONTRACT_TEST(test_contract_obsolete_line_folding_is_400_then_close),
		CONTRACT_TEST(test_contract_two_host_fields_are_400_then_close),
		CONTRACT_TEST(test_contract_absolute_target_disagreeing_with_host_is_400_then_close),
		CONTRACT_TEST(test_contract_http11_without_host_is_400_then_close),
		/* judged whole before forwarding */
		CONTRACT_TEST(test_contract_refused_requests_never_reach_the_backend),
		CONTRACT_TEST(test_contract_connect_is_400_then_close),
		CONTRACT_TEST(test_contract_invalid_request_targets_are_400_then_close),
		CONTRACT_TEST(test_contract_invalid_host_values_are_400_then_close),
		CONTRACT_TEST(test_contract_empty_host_reaches_the_backend_as_the_address_reached),
		CONTRACT_TEST(test_contract_unknown_transfer_coding_is_501_then_close),
		CONTRACT_TEST(test_contract_content_length_of_2_63_is_400_then_close),
		CONTRACT_TEST(test_contract_loose_chunk_framing_is_400_then_close),
		CONTRACT_TEST(test_contract_transfer_encoding_in_http10_closes_after_the_answer),
		/* limits */
		CONTRACT_TEST(test_contract_target_over_max_uri_is_414_then_close),
		CONTRACT_TEST(test_contract_header_block_over_max_header_bytes_is_431_then_close),
		CONTRACT_TEST(test_contract_head_over_the_parser_cap_is_431_then_close),
		CONTRACT_TEST(test_contract_max_header_bytes_above_the_parser_cap_is_refused_at_start),
		CONTRACT_TEST(test_contract_fields_over_max_header_fields_are_431_then_close),
		CONTRACT_TEST(test_contract_head_too_large_for_http2_is_431_and_not_retried),
		CONTRACT_TEST(test_contract_content_length_over_max_body_is_413_before_the_body),
		CONTRACT_TEST(test_contract_chunked_body_growing_over_max_body_is_413_then_close),
		CONTRACT_TEST(test_contract_unknown_expectation_is_417_then_close),
		/* slow and idle users */
		CONTRACT_TEST(test_contract_half_a_head_is_408_then_close),
		CONTRACT_TEST(test_contract_trickled_head_is_408_at_header_timeout),
		CONTRACT_TEST(test_contract_idle_keep_alive_connection_is_closed_quietly),
		CONTRACT_TEST(test_contract_silent_new_connection_is_closed_quietly),
		CONTRACT_TEST(test_contract_stalled_request_body_is_408_and_others_are_served),
		CONTRACT_TEST(test_contract_stalled_request_body_after_the_answer_began_is_cut),
		CONTRACT_TEST(test_contract_user_that_stops_reading_is_dropped_at_the_send_timeout),
		/* capacity */
		CONTRACT_TEST(test_contract_no_tunnel_is_503_with_a_short_text),
		CONTRACT_TEST(test_contract_full_queue_is_503_with_retry_after),
		CONTRACT_TEST(test_contract_full_queue_behind_a_real_backend_is_503_with_retry_after),
		CONTRACT_TEST(test_contract_over_max_conns_is_503_then_close),
		/* backend failures */
		CONTRACT_TEST(test_contract_slow_backend_is_504_and_stream_reset),
		CONTRACT_TEST(test_contract_data_on_a_head_stream_is_reset_after_the_head),
		CONTRACT_TEST(test_contract_tunnel_break_before_the_head_is_502),
		CONTRACT_TEST(test_contract_backend_reset_before_the_head_is_502),
		CONTRACT_TEST(test_contract_tunnel_break_after_the_head_cuts_a_sized_body),
		CONTRACT_TEST(test_contract_tunnel_break_after_the_head_cuts_a_chunked_body),
		CONTRACT_TEST(test_contract_backend_stalling_mid_body_is_cut_at_the_backend_timeout),
		CONTRACT_TEST(
			test_contract_backend_stalling_while_the_body_uploads_is_cut_at_the_backend_timeout),
		CONTRACT_TEST(test_contract_slow_upload_does_not_count_against_the_backend_timeout),
		/* forwarding */
		CONTRACT_TEST(test_contract_hop_by_hop_fields_are_not_forwarded),
		CONTRACT_TEST(test_contract_fields_named_in_any_connection_field_are_not_forwarded),
		CONTRACT_TEST(test_contract_te_is_forwarded_only_as_trailers),
		CONTRACT_TEST(test_contract_h2c_upgrade_request_is_served_over_http11),
		CONTRACT_TEST(test_contract_host_becomes_authority),
		CONTRACT_TEST(test_contract_absolute_form_target_is_accepted),
		CONTRACT_TEST(test_contract_field_names_are_lower_cased),
		CONTRACT_TEST(test_contract_forwarding_fields_are_added),
		CONTRACT_TEST(test_contract_forwarding_lists_extend_every_incoming_field),
		CONTRACT_TEST(test_contract_no_forwarded_adds_no_forwarding_fields),
		/* request bodies */
		CONTRACT_TEST(test_contract_content_length_body_streams_through_echo),
		CONTRACT_TEST(test_contract_chunked_body_streams_through_echo),
		CONTRACT_TEST(test_contract_echo_answers_before_the_request_body_ends),
		CONTRACT_TEST(test_contract_expect_100_continue_gets_100_then_the_answer),
		/* response framing */
		CONTRACT_TEST(test_contract_head_gets_no_body),
		CONTRACT_TEST(test_contract_204_and_304_carry_no_body),
		CONTRACT_TEST(test_contract_unsized_response_is_chunked_for_http11),
		CONTRACT_TEST(test_contract_unsized_response_is_close_delimited_for_http10),
		CONTRACT_TEST(test_contract_trailers_follow_the_last_chunk),
		CONTRACT_TEST(test_contract_pipelined_requests_are_answered_in_order),
		CONTRACT_TEST(test_contract_error_after_a_head_request_carries_its_body),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
