/*
 * test_metrics.c -- the admin port of a router in this process, on real
 * sockets: GET /metrics after known traffic, parsed by python3's
 * prometheus_client (tests/scrape_check.py) and checked figure by
 * figure; GET /tunnels parsed as JSON; /healthz through a drain; and
 * what the port answers to anything else (404, 405, 400, 431, 408).
 *
 * Run some tests only with make test TESTS=metrics FILTER=WORD.
 *
 * Counts are read once the router has counted: every user thread counts
 * its request before it unlists its connection, and the tests wait on
 * the router's own condition for that (observe_wait_conns()).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/harness.h"
#include "support/observe.h"

#define WAIT_MS HARNESS_TIMEOUT_MS
#define ADMIN_BIG 5000          /* past the admin port's 4096-byte head limit */

/* A router with an admin port on 127.0.0.1:0 and a short --max-uri. */
struct fixture {
	struct harness_router hr;
	int admin_port;
};

static int
fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct ptth_router_options o;

	ptth_router_options_init(&o);
	o.admin_addr = "127.0.0.1:0";
	o.max_uri = 64;
	if (f == NULL || harness_router_start_opts(&f->hr, &o) < 0) {
		free(f);
		return -1;
	}
	f->admin_port = ptth_router_admin_port(f->hr.router);
	*state = f;
	return f->admin_port > 0 ? 0 : -1;
}

static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;

	harness_router_free(&f->hr);
	free(f);
	return 0;
}

static long
get_status(struct fixture *f, const char *path)
{
	char url[256];
	long status = 0;

	harness_url(&f->hr, path, url, sizeof url);
	return http_get(url, &status, NULL, 0, NULL) == CURLE_OK ? status : -1;
}

/* Sends raw bytes on a new connection and reads the answer until the
 * router closes; returns the status of the answer, or -1. */
static int
raw_status(int port, const char *request)
{
	char answer[4096];
	int fd = harness_dial(port), status = -1;

	if (fd < 0)
		return -1;
	if (harness_send_all(fd, request, strlen(request)) == 0 &&
	    harness_recv_until_close(fd, answer, sizeof answer) > 0)
		sscanf(answer, "HTTP/1.1 %d", &status);
	close(fd);
	return status;
}

static double
metric(const struct scrape *s, const char *key)
{
	double v = scrape_value(s, key);

	if (v < 0)
		print_message("no sample %s in:\n%s", key, s->text);
	return v;
}

/* Known traffic, then every figure it should have moved. */
static void
test_metrics_scrape_counts_known_traffic(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	char body[1000], url[256], reply[2048];
	long status = 0;
	struct scrape s;

	assert_non_null(a);
	memset(body, 'x', sizeof body);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get_status(f, "/foo"), 200);
	assert_int_equal(get_status(f, "/missing"), 404);
	assert_int_equal(get_status(f, "/missing"), 404);
	harness_url(&f->hr, "/echo", url, sizeof url);
	assert_int_equal(http_post(url, body, sizeof body, &status, reply, sizeof reply, NULL),
	                 CURLE_OK);
	assert_int_equal(status, 200);
	assert_int_equal(raw_status(f->hr.http_port, "GET /0123456789012345678901234567890123456789"
	                                             "0123456789012345678901234567890 HTTP/1.1\r\n"
	                                             "Host: x\r\n\r\n"), 414);
	assert_int_equal(raw_status(f->hr.http_port, "NOT HTTP AT ALL\r\n\r\n"), 400);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);

	assert_int_equal(scrape_fetch(f->admin_port, "metrics", &s), 0);
	assert_true(metric(&s, "ptth_tunnels{service=\"\"}") == 1);
	assert_true(metric(&s, "ptth_requests_total{class=\"2xx\",service=\"\"}") == 6);
	assert_true(metric(&s, "ptth_requests_total{class=\"4xx\",service=\"\"}") == 4);
	assert_true(metric(&s, "ptth_requests_total{class=\"5xx\",service=\"\"}") == 0);
	assert_true(metric(&s, "ptth_requests_total{class=\"other\",service=\"\"}") == 0);
	assert_true(metric(&s, "ptth_request_duration_seconds_count{service=\"\"}") == 10);
	assert_true(metric(&s, "ptth_request_duration_seconds_bucket{le=\"+Inf\",service=\"\"}")
	            == 10);
	assert_true(metric(&s, "ptth_request_duration_seconds_sum{service=\"\"}") > 0);
	assert_true(metric(&s, "ptth_request_body_bytes_total{service=\"\"}") == 1000);
	/* Each answer is at least its status line, and the echo its body. */
	assert_true(metric(&s, "ptth_response_bytes_total{service=\"\"}") > 1000 + 10 * 17);
	assert_true(metric(&s, "ptth_refusals_total{status=\"414\"}") == 1);
	assert_true(metric(&s, "ptth_refusals_total{status=\"400\"}") == 1);
	assert_true(metric(&s, "ptth_refusals_total{status=\"503\"}") == 0);
	assert_true(metric(&s, "ptth_retries_total") == 0);
	assert_true(metric(&s, "ptth_tunnels_added_total") == 1);
	assert_true(metric(&s, "ptth_tunnels_removed_total{reason=\"closed\"}") == 0);
	assert_true(metric(&s, "ptth_user_connections") == 0);
	assert_true(metric(&s, "ptth_user_connections_accepted_total") == 10);
	assert_true(metric(&s, "ptth_queue_depth{service=\"\"}") == 0);
	assert_true(metric(&s, "ptth_requests_in_flight{service=\"\"}") == 0);
	assert_true(metric(&s, "ptth_threads{kind=\"tunnel\"}") == 1);
	assert_true(metric(&s, "ptth_threads{kind=\"user\"}") == 0);
	assert_true(metric(&s, "ptth_process_threads") > 4);
	scrape_free(&s);
	harness_backend_free(a);
}

/* A 503 with no tunnel is a refusal, and its own status class. */
static void
test_metrics_no_tunnel_counts_a_503_refusal(void **state)
{
	struct fixture *f = *state;
	struct scrape s;

	assert_int_equal(get_status(f, "/foo"), 503);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);
	assert_int_equal(scrape_fetch(f->admin_port, "metrics", &s), 0);
	assert_true(metric(&s, "ptth_tunnels{service=\"\"}") == 0);
	assert_true(metric(&s, "ptth_refusals_total{status=\"503\"}") == 1);
	assert_true(metric(&s, "ptth_requests_total{class=\"5xx\",service=\"\"}") == 1);
	scrape_free(&s);
}

/* A tunnel that named a service in its handshake is counted under that
 * service, and so are the requests its Host routes there. */
static void
test_metrics_counts_by_service(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	struct harness_backend *api;
	struct scrape s;
	char line[128];
	int rc = 0;

	api = harness_backend_start_greeting(&f->hr, "api", "api", NULL, &rc);
	assert_non_null(a);
	assert_non_null(api);
	assert_int_equal(raw_status(f->hr.http_port, "GET /foo HTTP/1.1\r\nHost: api\r\n"
	                                             "Connection: close\r\n\r\n"), 200);
	assert_int_equal(raw_status(f->hr.http_port, "GET /missing HTTP/1.1\r\nHost: API:80\r\n"
	                                             "Connection: close\r\n\r\n"), 404);
	assert_int_equal(get_status(f, "/foo"), 200); /* Host 127.0.0.1: the default pool */
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);
	assert_int_equal(scrape_fetch(f->admin_port, "metrics", &s), 0);
	assert_true(metric(&s, "ptth_tunnels{service=\"api\"}") == 1);
	assert_true(metric(&s, "ptth_tunnels{service=\"\"}") == 1);
	assert_true(metric(&s, "ptth_requests_total{class=\"2xx\",service=\"api\"}") == 1);
	assert_true(metric(&s, "ptth_requests_total{class=\"4xx\",service=\"api\"}") == 1);
	assert_true(metric(&s, "ptth_requests_total{class=\"2xx\",service=\"\"}") == 1);
	assert_true(metric(&s, "ptth_request_duration_seconds_count{service=\"api\"}") == 2);
	scrape_free(&s);
	assert_int_equal(scrape_fetch(f->admin_port, "tunnels", &s), 0);
	assert_int_equal(scrape_lines(&s), 2);
	snprintf(line, sizeof line, " api ");
	assert_non_null(strstr(s.text, line));
	assert_non_null(strstr(s.text, " - "));
	scrape_free(&s);
	harness_backend_free(api);
	harness_backend_free(a);
}

/* Tunnels leave for a reason: a backend's GOAWAY, a cut connection. */
static void
test_metrics_tunnel_removals_are_counted_by_reason(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	struct harness_backend *b = harness_backend_start_cuttable(&f->hr, "b");
	struct scrape s;

	assert_non_null(a);
	assert_non_null(b);
	harness_backend_free(a);                  /* graceful: GOAWAY */
	assert_int_equal(harness_backend_cut(b), 0); /* the hard way: EOF */
	assert_int_equal(observe_wait_threads(f->hr.router, 0, WAIT_MS), 0);
	assert_int_equal(scrape_fetch(f->admin_port, "metrics", &s), 0);
	assert_true(metric(&s, "ptth_tunnels_added_total") == 2);
	assert_true(metric(&s, "ptth_tunnels_removed_total{reason=\"goaway\"}") == 1);
	assert_true(metric(&s, "ptth_tunnels_removed_total{reason=\"closed\"}") == 1);
	assert_true(metric(&s, "ptth_tunnels{service=\"\"}") == 0);
	scrape_free(&s);
	harness_backend_free(b);
}

/* GET /tunnels: one JSON object per live tunnel, with its figures. */
static void
test_metrics_tunnels_lists_each_tunnel_as_json(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	struct harness_backend *b = harness_backend_start(&f->hr, "b");
	long long requests = 0, bytes_in = 0, bytes_out = 0;
	int ids[2] = { 0, 0 }, n = 0;
	struct scrape s;

	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < 6; i++)
		assert_int_equal(get_status(f, "/foo"), 200);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);
	assert_int_equal(scrape_fetch(f->admin_port, "tunnels", &s), 0);
	assert_int_equal(scrape_lines(&s), 2);
	for (char *line = strtok(s.text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char remote[64], service[64];
		int id, open;
		long long req, in, out;
		double age;
		assert_int_equal(sscanf(line, "%d %63s %63s %d %lld %lld %lld %lf", &id, remote,
		                        service, &open, &req, &in, &out, &age), 8);
		assert_true(strncmp(remote, "127.0.0.1:", 10) == 0);
		assert_string_equal(service, "-");
		assert_int_equal(open, 0);
		assert_true(age >= 0);
		ids[n++] = id;
		requests += req;
		bytes_in += in;
		bytes_out += out;
	}
	assert_true(ids[0] > 0 && ids[1] > 0 && ids[0] != ids[1]);
	assert_int_equal(requests, 6);
	assert_true(bytes_in > 6 * 3 && bytes_out > 0); /* six "bar" bodies at least */
	scrape_free(&s);
	harness_backend_free(a);
	harness_backend_free(b);
}

/* Shuts the router down on a thread of its own. */
static void *
shutdown_thread_main(void *arg)
{
	ptth_router_shutdown(arg);
	return NULL;
}

static long
admin_get(int port, const char *path, char *body, size_t cap)
{
	char url[128];
	long status = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	return http_get(url, &status, body, cap, NULL) == CURLE_OK ? status : -1;
}

struct slow_request {
	struct fixture *f;
	long status;
};

static void *
slow_request_thread_main(void *arg)
{
	struct slow_request *sr = arg;

	sr->status = get_status(sr->f, "/barrier?n=2&ms=2000");
	return NULL;
}

/* /healthz: 503 without a tunnel, 200 with one, 503 while draining. */
static void
test_metrics_healthz_follows_tunnels_and_drain(void **state)
{
	struct fixture *f = *state;
	struct slow_request sr = { .f = f };
	struct harness_backend *a;
	pthread_t slow, stopper;
	char text[64];
	long status = 0;

	assert_int_equal(admin_get(f->admin_port, "/healthz", text, sizeof text), 503);
	assert_string_equal(text, "no tunnel\n");
	a = harness_backend_start(&f->hr, "a");
	assert_non_null(a);
	assert_int_equal(admin_get(f->admin_port, "/healthz", text, sizeof text), 200);
	/* A request in flight keeps the drain going while /healthz is asked. */
	assert_int_equal(pthread_create(&slow, NULL, slow_request_thread_main, &sr), 0);
	assert_int_equal(harness_backend_wait_barrier(a, 1, WAIT_MS), 0);
	assert_int_equal(pthread_create(&stopper, NULL, shutdown_thread_main, f->hr.router), 0);
	/* The drain starts on the other thread; nothing can be waited on
	 * from outside, so ask until the answer changes (bounded). */
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		status = admin_get(f->admin_port, "/healthz", text, sizeof text);
		if (status != 200)
			break;
		usleep(10 * 1000);
	}
	pthread_join(slow, NULL);
	pthread_join(stopper, NULL);
	assert_int_equal(status, 503);
	assert_string_equal(text, "draining\n");
	assert_int_equal(sr.status, 504); /* the barrier's own answer, after 2 s */
	harness_backend_free(a);
}

/* Anything but GET or HEAD on the three paths is refused, with the
 * right status, and the connection closed. */
static void
test_metrics_admin_port_refuses_other_requests(void **state)
{
	struct fixture *f = *state;
	char big[ADMIN_BIG];
	char answer[8192];
	int fd;

	assert_int_equal(raw_status(f->admin_port, "GET /nope HTTP/1.1\r\n\r\n"), 404);
	assert_int_equal(raw_status(f->admin_port, "POST /metrics HTTP/1.1\r\n"
	                                            "Content-Length: 0\r\n\r\n"), 405);
	assert_int_equal(raw_status(f->admin_port, "get /metrics HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(raw_status(f->admin_port, "GET /metrics HTTP/2.0\r\n\r\n"), 400);
	assert_int_equal(raw_status(f->admin_port, "GET metrics HTTP/1.1\r\n\r\n"), 400);
	memset(big, 'a', sizeof big);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	big[sizeof big - 1] = '\0';
	assert_int_equal(raw_status(f->admin_port, big), 431);
	/* Half a head: 408 once the admin timeout passes. */
	assert_int_equal(raw_status(f->admin_port, "GET /metrics HTTP/1.1\r\n"), 408);
	/* HEAD: the fields, no body. */
	fd = harness_dial(f->admin_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, "HEAD /metrics HTTP/1.0\r\n\r\n", 26), 0);
	assert_true(harness_recv_until_close(fd, answer, sizeof answer) > 0);
	close(fd);
	assert_non_null(strstr(answer, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(answer, "\r\n\r\n"));
	assert_string_equal(strstr(answer, "\r\n\r\n"), "\r\n\r\n");
}

/* No admin port unless asked for. */
static void
test_metrics_admin_port_is_off_by_default(void **state)
{
	struct harness_router hr;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	assert_int_equal(ptth_router_admin_port(hr.router), PTTH_ESTATE);
	harness_router_free(&hr);
}

#define METRICS_TEST(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		METRICS_TEST(test_metrics_scrape_counts_known_traffic),
		METRICS_TEST(test_metrics_no_tunnel_counts_a_503_refusal),
		METRICS_TEST(test_metrics_counts_by_service),
		METRICS_TEST(test_metrics_tunnel_removals_are_counted_by_reason),
		METRICS_TEST(test_metrics_tunnels_lists_each_tunnel_as_json),
		METRICS_TEST(test_metrics_healthz_follows_tunnels_and_drain),
		METRICS_TEST(test_metrics_admin_port_refuses_other_requests),
		cmocka_unit_test(test_metrics_admin_port_is_off_by_default),
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
