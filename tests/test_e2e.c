/*
 * test_e2e.c -- end-to-end tests: a router and backends in this process
 * (and one bin/backend process) on ephemeral ports, with users speaking
 * real HTTP/1.x over real sockets through libcurl, the curl program and
 * raw sockets.
 *
 * What is proved here, one behaviour per test: answers and errors (200,
 * 404, 503), concurrency on one tunnel, bodies streaming both ways with
 * bounded memory, load spread and failover between backends, HTTP/1.0
 * (with and without Host), keep-alive, HEAD, pipelining, stopping under
 * load, users leaving mid-download (once, and 1500 times in a row)
 * without harming the tunnel, and a request queued on a tunnel that dies
 * with no other tunnel to retry on.
 *
 * Run some tests only with make test TESTS=NAME FILTER=WORD.
 *
 * Worker threads only make requests and record results; the test thread
 * joins them before asserting (cmocka's assertions may fail only on
 * the test's own thread). Sizes shrink under sanitizers
 * (harness_sanitized()), which are many times slower.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <poll.h>

#include "backend.h"           /* BACKEND_MAX_STREAMS, which bin/backend advertises */
#include "support/harness.h"

#define MIB (1024 * 1024)

/* A router with one in-process backend called "a". */
struct fixture {
	struct harness_router hr;
	struct harness_backend *a;
};

static int
fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || harness_router_start(&f->hr) < 0) {
		free(f);
		return -1;
	}
	f->a = harness_backend_start(&f->hr, "a");
	if (f->a == NULL) {
		harness_router_free(&f->hr);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;

	harness_backend_free(f->a);
	harness_router_free(&f->hr);
	free(f);
	return 0;
}

static void
url_for(struct fixture *f, const char *path, char *buf, size_t size)
{
	harness_url(&f->hr, path, buf, size);
}

/* ---------------------------------------------------------------------
 * Raw HTTP/1.1 responses, for tests that bypass libcurl.
 */
struct raw_response {
	int status;
	const char *head;       /* status line and fields, with the blank line */
	size_t head_len;
	const char *body;
	size_t body_len;
};

/* Copies the value of field name from a response head into out ("" when
 * absent). Returns true when the field is present. */
static bool
raw_field(const struct raw_response *r, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);

	out[0] = '\0';
	for (const char *p = r->head; p < r->head + r->head_len;) {
		const char *eol = memmem(p, (size_t)(r->head + r->head_len - p), "\r\n", 2);
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1;
			while (v < eol && *v == ' ')
				v++;
			snprintf(out, size, "%.*s", (int)(eol - v), v);
			return true;
		}
		p = eol + 2;
	}
	return false;
}

/* Parses one response at data. Its body is Content-Length bytes, none
 * when no_body (HEAD), or everything left when close_delimited.
 * Returns the bytes it spans, or 0 when data holds less than a response. */
static size_t
raw_parse(const char *data, size_t len, bool no_body, bool close_delimited,
          struct raw_response *r)
{
	const char *end = memmem(data, len, "\r\n\r\n", 4);
	char value[32];

	memset(r, 0, sizeof *r);
	if (end == NULL || sscanf(data, "HTTP/1.%*d %d", &r->status) != 1)
		return 0;
	r->head = data;
	r->head_len = (size_t)(end + 4 - data);
	r->body = end + 4;
	if (no_body)
		return r->head_len;
	if (close_delimited) {
		r->body_len = len - r->head_len;
		return len;
	}
	if (!raw_field(r, "Content-Length", value, sizeof value))
		return 0;
	r->body_len = strtoul(value, NULL, 10);
	if (r->head_len + r->body_len > len)
		return 0;
	return r->head_len + r->body_len;
}

/* Reads from fd into buf (cap bytes) until it holds n complete responses
 * with Content-Length bodies. Returns the bytes read, or -1. */
static ssize_t
raw_read_responses(int fd, char *buf, size_t cap, int n)
{
	size_t len = 0;

	for (;;) {
		struct raw_response r;
		size_t off = 0, used;
		int got = 0;
		while (got < n && (used = raw_parse(buf + off, len - off, false, false, &r)) > 0) {
			off += used;
			got++;
		}
		if (got == n)
			return (ssize_t)len;
		ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
		if (k <= 0 || len + (size_t)k >= cap - 1)
			return -1;
		len += (size_t)k;
		buf[len] = '\0';
	}
}

/* ---------------------------------------------------------------------
 * Plain requests and errors.
 */

static void
test_e2e_get_foo_returns_bar(void **state)
{
	char url[128], body[64];
	long status;
	size_t len;

	url_for(*state, "/foo", url, sizeof url);
	assert_int_equal(http_get(url, &status, body, sizeof body, &len), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body, "bar");
}

static void
test_e2e_curl_program_gets_bar(void **state)
{
	char url[128], cmd[512], out[256];
	size_t len;
	FILE *p;

	url_for(*state, "/foo", url, sizeof url);
	snprintf(cmd, sizeof cmd,
	         "curl --silent --show-error --noproxy '*' --max-time 30 "
	         "--write-out '\\n%%{http_code}' '%s' 2>&1", url);
	p = popen(cmd, "r");
	assert_non_null(p);
	len = fread(out, 1, sizeof out - 1, p);
	out[len] = '\0';
	int status = pclose(p);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_string_equal(out, "bar\n200");
}

static void
test_e2e_unknown_path_is_404(void **state)
{
	char url[128], body[128];
	long status;

	url_for(*state, "/no/such/path", url, sizeof url);
	assert_int_equal(http_get(url, &status, body, sizeof body, NULL), CURLE_OK);
	assert_int_equal(status, 404);
	assert_string_equal(body, "404 page not found\n");
}

static void
test_e2e_no_tunnel_gives_503_with_short_text(void **state)
{
	struct harness_router hr;
	char url[128], body[1024];
	long status;
	size_t len;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	assert_int_equal(ptth_router_tunnel_count(hr.router), 0);
	harness_url(&hr, "/foo", url, sizeof url);
	CURLcode rc = http_get(url, &status, body, sizeof body, &len);
	harness_router_free(&hr);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(status, 503);
	assert_true(len > 0 && len < 200);
	assert_int_equal(body[len - 1], '\n');
	assert_null(strchr(body, '<')); /* plain text, not a page */
}

/* ---------------------------------------------------------------------
 * Concurrency on one tunnel.
 */

struct client {
	pthread_t thread;
	char url[128];
	CURLcode rc;
	long status;
	char body[64];
};

static void *
client_thread_main(void *arg)
{
	struct client *c = arg;

	c->rc = http_get(c->url, &c->status, c->body, sizeof c->body, NULL);
	return NULL;
}

/* /barrier?n=10 answers only once ten handlers are inside it at once, so
 * ten 200s prove ten requests were in flight together on one tunnel. */
static void
test_e2e_ten_concurrent_requests_share_one_tunnel(void **state)
{
	struct fixture *f = *state;
	struct client clients[10];
	int started = 0;

	for (int i = 0; i < 10; i++) {
		memset(&clients[i], 0, sizeof clients[i]);
		url_for(f, "/barrier?n=10", clients[i].url, sizeof clients[i].url);
		if (pthread_create(&clients[i].thread, NULL, client_thread_main, &clients[i]) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(clients[i].thread, NULL);
	assert_int_equal(started, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(clients[i].rc, CURLE_OK);
		assert_int_equal(clients[i].status, 200);
		assert_string_equal(clients[i].body, "ok");
	}
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 1);
	assert_int_equal(harness_tcp_count(f->hr.tunnel_port), 1);
}

/* ---------------------------------------------------------------------
 * Bodies.
 */

static void
test_e2e_echo_returns_8_mib_unchanged(void **state)
{
	const size_t size = 8 * MIB;
	unsigned char *sent = malloc(size);
	char *got = malloc(size + 1);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char url[128];
	long status;
	size_t len;

	assert_non_null(sent);
	assert_non_null(got);
	for (size_t i = 0; i < size; i++) { /* xorshift64: random, repeatable */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sent[i] = (unsigned char)(x >> 24);
	}
	url_for(*state, "/echo", url, sizeof url);
	assert_int_equal(http_post(url, sent, size, &status, got, size + 1, &len), CURLE_OK);
	assert_int_equal(status, 200);
	assert_int_equal(len, size);
	assert_memory_equal(got, sent, size);
	free(sent);
	free(got);
}

/* What the download test's write callback keeps. */
struct download {
	uint64_t bytes;
	uint64_t next_sample;
	long max_rss_kib;
};

/* Implements curl's CURLOPT_WRITEFUNCTION. We use it to count and drop
 * the body, sampling our RSS every 4 MiB. */
static size_t
download_write_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct download *d = arg;
	long rss;

	(void)data;
	d->bytes += size * nmemb;
	if (d->bytes >= d->next_sample) {
		d->next_sample = d->bytes + 4 * MIB;
		if (harness_memory(&rss, NULL) == 0 && rss > d->max_rss_kib)
			d->max_rss_kib = rss;
	}
	return size * nmemb;
}

static void
test_e2e_big_download_keeps_memory_bounded(void **state)
{
	const uint64_t n = (harness_sanitized() ? 32ull : 256ull) * MIB;
	struct download d = { 0 };
	long before, after, hwm;
	char url[128];
	long status = 0;
	CURL *c;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=%llu",
	         ((struct fixture *)*state)->hr.http_port, (unsigned long long)n);
	bool peak_reset = harness_memory_reset_peak() == 0;
	assert_int_equal(harness_memory(&before, NULL), 0);
	d.max_rss_kib = before;
	c = http_client_new();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, download_write_callback);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	assert_int_equal(harness_memory(&after, &hwm), 0);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(status, 200);
	assert_true(d.bytes == n);
	if (peak_reset && hwm > d.max_rss_kib)
		d.max_rss_kib = hwm;
	print_message("RSS %ld KiB before, peak %ld KiB, %ld KiB after %llu MiB\n", before,
	              d.max_rss_kib, after, (unsigned long long)(n / MIB));
	assert_true(d.max_rss_kib - before < 64 * 1024);
}

/* ---------------------------------------------------------------------
 * Several backends.
 */

static void
test_e2e_two_backends_both_get_traffic(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *b = harness_backend_start(&f->hr, "b");
	struct http_reply reply = { 0 };
	char url[128], body[16];
	int from_a = 0, from_b = 0, other = 0;
	CURL *c = http_client_new();

	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 2);
	assert_int_equal(harness_tcp_count(f->hr.tunnel_port), 2);
	url_for(f, "/who", url, sizeof url);
	reply.body = body;
	reply.cap = sizeof body;
	for (int i = 0; i < 200; i++) {
		if (http_client_get(c, url, &reply) != CURLE_OK || reply.status != 200)
			other++;
		else if (strcmp(body, "a") == 0)
			from_a++;
		else if (strcmp(body, "b") == 0)
			from_b++;
		else
			other++;
	}
	curl_easy_cleanup(c);
	long served_b = harness_backend_requests(b);
	harness_backend_free(b);
	assert_int_equal(other, 0);
	assert_int_equal(from_a + from_b, 200);
	assert_true(from_a > 0);
	assert_true(from_b > 0);
	assert_int_equal(served_b, from_b);
}

/* A thread that asks /who until told to stop. bin/backend has no /who
 * route, so its answers are 404s while the in-process backend says "a". */
struct traffic {
	pthread_t thread;
	char url[128];
	pthread_mutex_t mu;
	pthread_cond_t changed;
	/* guarded by mu: */
	bool stop;
	int from_a, from_process, gateway_errors, other;
	CURLcode last_error;
};

static void
traffic_record(struct traffic *t, CURLcode rc, const struct http_reply *reply)
{
	pthread_mutex_lock(&t->mu);
	if (rc == CURLE_OK && reply->status == 200 && strcmp(reply->body, "a") == 0)
		t->from_a++;
	else if (rc == CURLE_OK && reply->status == 404)
		t->from_process++;
	else if (rc == CURLE_OK && reply->status == 502)
		t->gateway_errors++; /* the tunnel died under this request */
	else if (rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR)
		t->gateway_errors++; /* cut short by the same death */
	else {
		t->other++;
		t->last_error = rc;
	}
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->mu);
}

static void *
traffic_thread_main(void *arg)
{
	struct traffic *t = arg;
	char body[64];
	struct http_reply reply = { .body = body, .cap = sizeof body };
	CURL *c = http_client_new();
	bool stop = c == NULL;

	while (!stop) {
		CURLcode rc = http_client_get(c, t->url, &reply);
		traffic_record(t, rc, &reply);
		pthread_mutex_lock(&t->mu);
		stop = t->stop;
		pthread_mutex_unlock(&t->mu);
	}
	if (c != NULL)
		curl_easy_cleanup(c);
	return NULL;
}

/* Waits until both backends have answered at least n requests each.
 * Returns 0 or ETIMEDOUT. */
static int
traffic_wait_both(struct traffic *t, int n)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += HARNESS_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&t->mu);
	while ((t->from_a < n || t->from_process < n) && rc == 0)
		rc = pthread_cond_timedwait(&t->changed, &t->mu, &deadline);
	rc = (t->from_a >= n && t->from_process >= n) ? 0 : ETIMEDOUT;
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static void
test_e2e_killed_backend_process_is_removed(void **state)
{
	struct fixture *f = *state;
	struct traffic t = { 0 };
	char addr[64], body[16];
	const char *args[] = { "--router", addr, "--quiet", NULL };
	struct http_reply reply = { .body = body, .cap = sizeof body };
	int all_ok = 0;

	snprintf(addr, sizeof addr, "127.0.0.1:%d", f->hr.tunnel_port);
	pid_t pid = harness_spawn("backend", args);
	assert_true(pid > 0);
	int waited = ptth_router_wait_tunnels(f->hr.router, 2, HARNESS_TIMEOUT_MS);
	if (waited < 0)
		harness_kill(pid, SIGKILL);
	assert_int_equal(waited, 0);

	/* Traffic runs on both backends while the process is killed. */
	pthread_mutex_init(&t.mu, NULL);
	pthread_cond_init(&t.changed, NULL);
	url_for(f, "/who", t.url, sizeof t.url);
	assert_int_equal(pthread_create(&t.thread, NULL, traffic_thread_main, &t), 0);
	int both = traffic_wait_both(&t, 3);
	int killed = harness_kill(pid, SIGKILL);
	int dropped = ptth_router_wait_tunnels_at_most(f->hr.router, 1, HARNESS_TIMEOUT_MS);
	pthread_mutex_lock(&t.mu);
	t.stop = true;
	pthread_mutex_unlock(&t.mu);
	pthread_join(t.thread, NULL);
	pthread_cond_destroy(&t.changed);
	pthread_mutex_destroy(&t.mu);

	print_message("during the kill: %d from a, %d from the process, %d gateway errors\n",
	              t.from_a, t.from_process, t.gateway_errors);
	assert_int_equal(both, 0);
	assert_true(WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL);
	assert_int_equal(dropped, 0);
	assert_int_equal(t.other, 0);
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 1);

	CURL *c = http_client_new();
	assert_non_null(c);
	char url[128];
	url_for(f, "/who", url, sizeof url);
	for (int i = 0; i < 50; i++)
		if (http_client_get(c, url, &reply) == CURLE_OK && reply.status == 200 &&
		    strcmp(body, "a") == 0)
			all_ok++;
	curl_easy_cleanup(c);
	assert_int_equal(all_ok, 50);
}

/* ---------------------------------------------------------------------
 * HTTP/1.x details, on raw sockets.
 */

/* Sends one request on a new connection and reads until the router
 * closes it. Returns the length read; the test fails on a timeout. */
static ssize_t
raw_exchange(struct fixture *f, const char *request, char *buf, size_t cap)
{
	int fd = harness_dial(f->hr.http_port);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = harness_send_all(fd, request, strlen(request));
	if (n == 0)
		n = harness_recv_until_close(fd, buf, cap);
	close(fd);
	return n;
}

static void
test_e2e_http10_request_is_answered_then_closed(void **state)
{
	struct fixture *f = *state;
	struct raw_response r;
	char buf[4096], value[64];
	ssize_t n;

	/* A body with a Content-Length keeps it. */
	n = raw_exchange(f, "GET /foo HTTP/1.0\r\nHost: x\r\n\r\n", buf, sizeof buf);
	assert_true(n > 0); /* -ETIMEDOUT would mean the connection stayed open */
	assert_int_equal(raw_parse(buf, (size_t)n, false, false, &r), (size_t)n);
	assert_int_equal(r.status, 200);
	assert_true(raw_field(&r, "Content-Length", value, sizeof value));
	assert_string_equal(value, "3");
	assert_int_equal(r.body_len, 3);
	assert_memory_equal(r.body, "bar", 3);

	/* A body without one is delimited by the close: never chunked. */
	n = raw_exchange(f, "GET /who HTTP/1.0\r\nHost: x\r\n\r\n", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(raw_parse(buf, (size_t)n, false, true, &r), (size_t)n);
	assert_int_equal(r.status, 200);
	assert_false(raw_field(&r, "Content-Length", value, sizeof value));
	assert_false(raw_field(&r, "Transfer-Encoding", value, sizeof value));
	assert_int_equal(r.body_len, 1);
	assert_memory_equal(r.body, "a", 1);
}

/* Host is optional in HTTP/1.0 (RFC 1945). A request without it still
 * has to reach the backend, which (nghttp2) refuses an HTTP/2 request
 * with neither :authority nor host: the router must supply one. */
static void
test_e2e_http10_request_without_host_is_forwarded(void **state)
{
	struct raw_response r;
	char buf[4096];
	ssize_t n;

	n = raw_exchange(*state, "GET /foo HTTP/1.0\r\n\r\n", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(raw_parse(buf, (size_t)n, false, false, &r), (size_t)n);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 3);
	assert_memory_equal(r.body, "bar", 3);
}

static void
test_e2e_keep_alive_reuses_one_connection(void **state)
{
	char url[128], body[64];
	struct http_reply reply = { .body = body, .cap = sizeof body };
	CURL *c = http_client_new();
	CURLcode rc1, rc2, rc3;
	long connects1, connects2, connects3, status2, status3;
	char body2[64];

	assert_non_null(c);
	url_for(*state, "/foo", url, sizeof url);
	rc1 = http_client_get(c, url, &reply);
	connects1 = reply.connects;
	rc2 = http_client_get(c, url, &reply);
	connects2 = reply.connects;
	status2 = reply.status;
	snprintf(body2, sizeof body2, "%s", body);
	/* A chunked answer (/who has no Content-Length) keeps it open too. */
	url_for(*state, "/who", url, sizeof url);
	rc3 = http_client_get(c, url, &reply);
	connects3 = reply.connects;
	status3 = reply.status;
	curl_easy_cleanup(c);
	assert_int_equal(rc1, CURLE_OK);
	assert_int_equal(connects1, 1);
	assert_int_equal(rc2, CURLE_OK);
	assert_int_equal(status2, 200);
	assert_string_equal(body2, "bar");
	assert_int_equal(connects2, 0);
	assert_int_equal(rc3, CURLE_OK);
	assert_int_equal(status3, 200);
	assert_string_equal(body, "a");
	assert_int_equal(connects3, 0);
}

/* Two HEADs then a GET on one connection: had a HEAD answer carried any
 * body bytes, the next response would not start right after its head. */
static void
test_e2e_head_response_has_no_body(void **state)
{
	struct fixture *f = *state;
	struct raw_response r;
	char buf[4096], value[64];
	size_t off = 0, used;
	ssize_t n;

	n = raw_exchange(f,
	                 "HEAD /foo HTTP/1.1\r\nHost: x\r\n\r\n"
	                 "HEAD /who HTTP/1.1\r\nHost: x\r\n\r\n"
	                 "GET /foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	                 buf, sizeof buf);
	assert_true(n > 0);
	used = raw_parse(buf, (size_t)n, true, false, &r);
	assert_true(used > 0);
	assert_int_equal(r.status, 200);
	assert_true(raw_field(&r, "Content-Length", value, sizeof value));
	assert_string_equal(value, "3"); /* what a GET would get */
	off += used;
	used = raw_parse(buf + off, (size_t)n - off, true, false, &r);
	assert_true(used > 0);
	assert_int_equal(r.status, 200);
	off += used;
	used = raw_parse(buf + off, (size_t)n - off, false, false, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(off + used, (size_t)n);
	assert_memory_equal(r.body, "bar", 3);
}

static void
test_e2e_pipelined_requests_are_answered_in_order(void **state)
{
	static const char two_foos[] =
		"GET /foo HTTP/1.1\r\nHost: x\r\n\r\nGET /foo HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char bytes_then_foo[] =
		"GET /bytes?n=7 HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct fixture *f = *state;
	struct raw_response r1, r2;
	char buf[4096];
	size_t used;
	ssize_t n;
	int fd = harness_dial(f->hr.http_port);

	assert_true(fd >= 0);
	int sent1 = harness_send_all(fd, two_foos, sizeof two_foos - 1);
	ssize_t n1 = raw_read_responses(fd, buf, sizeof buf, 2);
	assert_int_equal(sent1, 0);
	assert_true(n1 > 0);
	used = raw_parse(buf, (size_t)n1, false, false, &r1);
	raw_parse(buf + used, (size_t)n1 - used, false, false, &r2);
	assert_int_equal(r1.status, 200);
	assert_int_equal(r2.status, 200);
	assert_memory_equal(r1.body, "bar", 3);
	assert_memory_equal(r2.body, "bar", 3);
	assert_int_equal(used + r2.head_len + r2.body_len, (size_t)n1);

	/* Different answers show the order is kept. */
	int sent2 = harness_send_all(fd, bytes_then_foo, sizeof bytes_then_foo - 1);
	n = harness_recv_until_close(fd, buf, sizeof buf);
	close(fd);
	assert_int_equal(sent2, 0);
	assert_true(n > 0);
	used = raw_parse(buf, (size_t)n, false, false, &r1);
	assert_true(used > 0);
	assert_int_equal(raw_parse(buf + used, (size_t)n - used, false, false, &r2),
	                 (size_t)n - used);
	assert_int_equal(r1.body_len, 7);
	assert_memory_equal(r1.body, "abcdefg", 7);
	assert_int_equal(r2.body_len, 3);
	assert_memory_equal(r2.body, "bar", 3);
}

/* ---------------------------------------------------------------------
 * Stopping and leaving.
 */

struct stopper {
	struct ptth_router *router;
	pthread_mutex_t mu;
	pthread_cond_t done_cond;
	bool done;               /* guarded by mu */
};

static void *
stopper_thread_main(void *arg)
{
	struct stopper *s = arg;

	ptth_router_free(s->router);
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Frees r on another thread and waits for it at most timeout_ms.
 * Returns true when ptth_router_free() returned in time. */
static bool
router_free_within(struct ptth_router *r, int timeout_ms)
{
	struct stopper s = { .router = r };
	struct timespec deadline;
	pthread_t thread;
	int rc = 0;

	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.done_cond, NULL);
	if (pthread_create(&thread, NULL, stopper_thread_main, &s) != 0)
		return false;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&s.mu);
	while (!s.done && rc == 0)
		rc = pthread_cond_timedwait(&s.done_cond, &s.mu, &deadline);
	bool done = s.done;
	pthread_mutex_unlock(&s.mu);
	if (!done)
		return false; /* a hang: the thread cannot be joined */
	pthread_join(thread, NULL);
	pthread_cond_destroy(&s.done_cond);
	pthread_mutex_destroy(&s.mu);
	return true;
}

static void
test_e2e_router_stop_ends_requests_in_flight(void **state)
{
	struct harness_router hr;
	struct harness_backend *b;
	struct client clients[4];
	int started = 0;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	b = harness_backend_start(&hr, "b");
	assert_non_null(b);
	/* Five are needed to open the barrier: these four stay in flight. */
	for (int i = 0; i < 4; i++) {
		memset(&clients[i], 0, sizeof clients[i]);
		harness_url(&hr, "/barrier?n=5", clients[i].url, sizeof clients[i].url);
		if (pthread_create(&clients[i].thread, NULL, client_thread_main, &clients[i]) != 0)
			break;
		started++;
	}
	int inside = harness_backend_wait_barrier(b, started, HARNESS_TIMEOUT_MS);
	bool freed = router_free_within(hr.router, HARNESS_TIMEOUT_MS);
	assert_true(freed);
	hr.router = NULL;
	for (int i = 0; i < started; i++)
		pthread_join(clients[i].thread, NULL);
	harness_backend_free(b);
	assert_int_equal(started, 4);
	assert_int_equal(inside, 0);
	for (int i = 0; i < 4; i++) {
		/* A 502, or a connection closed without an answer. */
		if (clients[i].rc == CURLE_OK)
			assert_int_equal(clients[i].status, 502);
		else
			assert_int_not_equal(clients[i].rc, CURLE_OPERATION_TIMEDOUT);
	}
}

/* Starts a huge download on a raw socket, reads some of it and leaves. */
static int
download_and_leave(int port, size_t keep)
{
	static const char request[] = "GET /bytes?n=1099511627776 HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[65536];
	size_t got = 0;
	int fd = harness_dial(port);
	int rc;

	if (fd < 0)
		return fd;
	rc = harness_send_all(fd, request, sizeof request - 1);
	while (rc == 0 && got < keep) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			rc = -EPIPE;
		else
			got += (size_t)n;
	}
	close(fd);
	return rc;
}

/* A user who leaves mid-download must not cost the tunnel anything: the
 * backend's handler is released (its stream reset), the next request on
 * the same tunnel works and another big download finishes. A download
 * stalls at the stream window if the abandoned stream's bytes were kept
 * out of the connection window; the router opens that window to 1 GiB,
 * so a small leak needs many abandoned streams to show (see the next
 * test, which abandons 1500). */
static void
test_e2e_user_leaving_mid_download_keeps_tunnel_working(void **state)
{
	struct fixture *f = *state;
	const uint64_t big = (harness_sanitized() ? 16ull : 64ull) * MIB;
	char url[128], body[16];
	long status;
	struct http_reply reply = { 0 };
	int left = 0;

	for (int i = 0; i < 4; i++)
		if (download_and_leave(f->hr.http_port, 4 * MIB) == 0)
			left++;
	assert_int_equal(left, 4);
	assert_int_equal(harness_backend_wait_idle(f->a, HARNESS_TIMEOUT_MS), 0);
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 1);
	assert_int_equal(harness_tcp_count(f->hr.tunnel_port), 1);

	url_for(f, "/foo", url, sizeof url);
	assert_int_equal(http_get(url, &status, body, sizeof body, NULL), CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body, "bar");

	snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=%llu", f->hr.http_port,
	         (unsigned long long)big);
	CURL *c = http_client_new();
	assert_non_null(c);
	CURLcode rc = http_client_get(c, url, &reply);
	curl_easy_cleanup(c);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(reply.status, 200);
	assert_true(reply.total == big);
	assert_int_equal(harness_tcp_count(f->hr.tunnel_port), 1);
}

/* Each user who leaves mid-response makes the router reset that stream
 * (RST_STREAM CANCEL), which is how it should stop the backend. Users do
 * that all the time, so the tunnel must survive any number of resets in
 * a row: the backend must not treat the router as an attacker. */
static void
test_e2e_many_users_leaving_mid_download_keep_the_tunnel(void **state)
{
	struct fixture *f = *state;
	char url[128], body[16];
	long status = 0;
	int left = 0;

	for (int i = 0; i < 1500; i++)
		if (download_and_leave(f->hr.http_port, 1) == 0)
			left++;
	int idle = harness_backend_wait_idle(f->a, HARNESS_TIMEOUT_MS);
	int tunnels = ptth_router_tunnel_count(f->hr.router);
	url_for(f, "/foo", url, sizeof url);
	CURLcode rc = http_get(url, &status, body, sizeof body, NULL);
	print_message("%d users left; %d tunnel(s) remain; then GET /foo: %ld\n", left,
	              tunnels, status);
	assert_int_equal(left, 1500);
	assert_int_equal(idle, 0);
	assert_int_equal(tunnels, 1);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(status, 200);
	assert_string_equal(body, "bar");
}

/* Sends request on a new connection to port. Returns the socket or -1. */
static int
raw_send(int port, const char *request)
{
	int fd = harness_dial(port);

	if (fd >= 0 && harness_send_all(fd, request, strlen(request)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Waits until want of the sockets in fds have answered, each with a 503;
 * closes those and sets them to -1. Returns how many answered, stopping
 * early at anything other than a 503 or at the deadline. */
static int
collect_busy_answers(int *fds, int count, int want, long long deadline_ms)
{
	struct pollfd *pfds = calloc((size_t)count, sizeof *pfds);
	int got = 0;
	bool bad = false;

	while (pfds != NULL && got < want && !bad && harness_now_ms() < deadline_ms) {
		for (int i = 0; i < count; i++)
			pfds[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (poll(pfds, (nfds_t)count, 1000) < 0)
			break;
		for (int i = 0; i < count; i++) {
			char buf[512];
			if (fds[i] < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = recv(fds[i], buf, sizeof buf - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			bad = bad || strncmp(buf, "HTTP/1.1 503", 12) != 0;
			close(fds[i]);
			fds[i] = -1;
			got++;
		}
	}
	free(pfds);
	return bad ? -1 : got;
}

/* Reads what each socket gets until the router closes it. Counts 502 or
 * 503 answers and silent closes (both fair endings for a request whose
 * tunnel died) and anything else, including a socket left open. */
static void
read_endings(const int *fds, int count, int *answered, int *silent, int *other)
{
	char buf[1024];

	for (int i = 0; i < count; i++) {
		if (fds[i] < 0)
			continue;
		ssize_t n = harness_recv_until_close(fds[i], buf, sizeof buf);
		if (n == 0)
			(*silent)++;
		else if (n > 0 && (strncmp(buf, "HTTP/1.1 502", 12) == 0 ||
		                   strncmp(buf, "HTTP/1.1 503", 12) == 0))
			(*answered)++;
		else
			(*other)++;
	}
}

/* A request still queued in the router when its tunnel dies never
 * reached the backend, so the router retries it on another tunnel (RFC
 * 9113 section 8.7). With no other tunnel the user must still get an
 * answer, 502 or 503, and the router must keep running. */
static void
test_e2e_queued_request_on_cut_tunnel_without_another_gets_an_answer(void **state)
{
	enum { LIMIT = BACKEND_MAX_STREAMS, TOTAL = LIMIT + 2 };
	static const char stuck[] = "GET /barrier?n=100000&ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char quick[] = "GET /foo HTTP/1.1\r\nHost: x\r\n\r\n";
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *b;
	int fds[TOTAL], filled = 0, answered = 0, silent = 0, other = 0;

	(void)state;
	ptth_router_options_init(&opts);
	opts.queue_size = 1;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	b = harness_backend_start_cuttable(&hr, "b");
	assert_non_null(b);
	for (int i = 0; i < TOTAL; i++)
		fds[i] = -1;
	/* Fill every stream the backend allows, one at a time. */
	while (filled < LIMIT) {
		fds[filled] = raw_send(hr.http_port, stuck);
		if (fds[filled] < 0 ||
		    harness_backend_wait_barrier(b, filled + 1, HARNESS_TIMEOUT_MS) < 0)
			break;
		filled++;
	}
	/* Two more: the one-slot queue takes one and the other is answered
	 * 503 at once, which proves that the first one is queued. */
	fds[LIMIT] = raw_send(hr.http_port, quick);
	fds[LIMIT + 1] = raw_send(hr.http_port, quick);
	int busy = collect_busy_answers(fds + LIMIT, 2, 1, harness_now_ms() + HARNESS_TIMEOUT_MS);
	int cut = harness_backend_cut(b);
	read_endings(fds, TOTAL, &answered, &silent, &other);
	for (int i = 0; i < TOTAL; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	harness_backend_free(b);
	harness_router_free(&hr);
	print_message("%d answered 502/503, %d closed silently, %d other\n", answered, silent,
	              other);
	assert_int_equal(filled, LIMIT);
	assert_int_equal(busy, 1);
	assert_int_equal(cut, 0);
	assert_int_equal(other, 0);
	assert_int_equal(answered + silent, LIMIT + 1);
}

int
main(void)
{
#define E2E_TEST(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
	const struct CMUnitTest tests[] = {
		E2E_TEST(test_e2e_get_foo_returns_bar),
		E2E_TEST(test_e2e_curl_program_gets_bar),
		E2E_TEST(test_e2e_unknown_path_is_404),
		cmocka_unit_test(test_e2e_no_tunnel_gives_503_with_short_text),
		E2E_TEST(test_e2e_ten_concurrent_requests_share_one_tunnel),
		E2E_TEST(test_e2e_echo_returns_8_mib_unchanged),
		E2E_TEST(test_e2e_big_download_keeps_memory_bounded),
		E2E_TEST(test_e2e_two_backends_both_get_traffic),
		E2E_TEST(test_e2e_killed_backend_process_is_removed),
		E2E_TEST(test_e2e_http10_request_is_answered_then_closed),
		E2E_TEST(test_e2e_http10_request_without_host_is_forwarded),
		E2E_TEST(test_e2e_keep_alive_reuses_one_connection),
		E2E_TEST(test_e2e_head_response_has_no_body),
		E2E_TEST(test_e2e_pipelined_requests_are_answered_in_order),
		cmocka_unit_test(test_e2e_router_stop_ends_requests_in_flight),
		E2E_TEST(test_e2e_user_leaving_mid_download_keeps_tunnel_working),
		E2E_TEST(test_e2e_many_users_leaving_mid_download_keep_the_tunnel),
		cmocka_unit_test(test_e2e_queued_request_on_cut_tunnel_without_another_gets_an_answer),
	};
#undef E2E_TEST
	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
