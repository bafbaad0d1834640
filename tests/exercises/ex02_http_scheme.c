/*
 * ex02_http_scheme.c -- the checker of exercise 2 (docs/EXERCISES.md).
 *
 * Exercise: 2 ★ Only http:// targets
 * Checks:   an absolute-form request target whose scheme is not http
 *           ("ftp://", "https://") is answered 400 with Connection:
 *           close, then the connection closes, and nothing of it reaches
 *           the backend; "http://" and "HTTP://" (RFC 3986 section 3.1:
 *           any case) still reach it.
 * As shipped: the scheme is not looked at (docs/PROXY-CONTRACT.md,
 *           "Known gaps"), so "ftp://example.com/foo" gets 200 "bar".
 */
#define EXERCISE "2"
#include "exercises/exercise.h"

#include <string.h>
#include <strings.h>

#include "support/harness.h"
#include "support/http1_client.h"

static struct response r;   /* 64 KiB of body: off the stack */

/* Sends one request on a connection of its own and reads the answer
 * into r; leaves the connection open in c. */
static void
ask(struct conn *c, int port, const char *request)
{
	int rc = conn_open(c, port);

	exercise_check(rc == 0, "cannot connect to the router: %s", strerror(-rc));
	rc = conn_send(c, request);
	if (rc == 0)
		rc = read_response(c, &r, false);
	exercise_check(rc == 0, "%s: no answer from the router: %s", exercise_quote(request),
	               strerror(-rc));
}

static void
expect_refused(struct harness_router *hr, struct harness_backend *hb, const char *target)
{
	char request[256];
	struct conn c;
	long before = harness_backend_requests(hb);
	const char *why, *connection;

	snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", target);
	ask(&c, hr->http_port, request);
	connection = resp_field(&r, "connection");
	if (r.status != 400) {
		conn_close(&c);
		exercise_fail("GET %s answered %d %s, expected 400: check the scheme in "
		              "http1_head_fill_target() (src/router/http1.c)", target, r.status,
		              exercise_quote(r.body));
	}
	why = conn_expect_close(&c);
	conn_close(&c);
	exercise_check(connection != NULL && strcasecmp(connection, "close") == 0,
	               "GET %s: the 400 has no \"Connection: close\": answer it with "
	               "http1_fail(), as the other target errors are", target);
	exercise_check(why == NULL, "GET %s: after the 400, %s", target, why);
	exercise_check(harness_backend_requests(hb) == before,
	               "GET %s reached the backend although it was refused", target);
}

static void
expect_served(struct harness_router *hr, const char *target)
{
	char request[256];
	struct conn c;
	const char *why;

	snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", target);
	ask(&c, hr->http_port, request);
	why = check_response(&r, 200, "bar");
	conn_close(&c);
	exercise_check(why == NULL, "GET %s should still be served: %s", target, why);
}

static void
test_exercise_only_http_targets_are_served(void **state)
{
	struct harness_router hr;
	struct harness_backend *hb;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "exercise-2");
	assert_non_null(hb);
	expect_refused(&hr, hb, "ftp://example.com/foo");
	expect_refused(&hr, hb, "https://example.com/foo");
	expect_refused(&hr, hb, "httpx://example.com/foo");
	expect_served(&hr, "http://example.com/foo");
	expect_served(&hr, "HTTP://example.com/foo");
	expect_served(&hr, "/foo");
	harness_backend_free(hb);
	harness_router_free(&hr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_only_http_targets_are_served),
	};

	return cmocka_run_group_tests_name("exercise 2", tests, harness_setup, harness_teardown);
}
