/*
 * ex01_hello_route.c -- the checker of exercise 1 (docs/EXERCISES.md).
 *
 * Exercise: 1 ★ A route of your own
 * Checks:   through an in-process router and a backend serving
 *           examples/backend/routes.c (as bin/backend does), GET /hello answers
 *           200 "hello, world\n" and GET /hello?name=class answers
 *           200 "hello, class\n", as text/plain.
 * As shipped: /hello is not registered, so the mux answers 404.
 */
#define EXERCISE "1"
#include "exercises/exercise.h"

#include <string.h>

#include "support/harness.h"

/* GET path; fails the check unless the answer is 200 with body want. */
static void
expect_text(struct harness_router *hr, const char *path, const char *want)
{
	struct http_reply reply = { .body = (char[256]){ 0 }, .cap = 256 };
	char url[256];
	CURL *c = http_client_new();
	CURLcode rc;
	char *type = NULL;

	assert_non_null(c);
	harness_url(hr, path, url, sizeof url);
	rc = http_client_get(c, url, &reply);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
	if (rc != CURLE_OK) {
		curl_easy_cleanup(c);
		exercise_fail("GET %s failed: %s", path, curl_easy_strerror(rc));
	}
	if (reply.status != 200 || strcmp(reply.body, want) != 0) {
		curl_easy_cleanup(c);
		exercise_fail("GET %s answered %ld %s, expected 200 %s%s", path, reply.status,
		              exercise_quote(reply.body), exercise_quote(want),
		              reply.status == 404 ? ": register /hello in routes_register() "
		                                    "(examples/backend/routes.c)" : "");
	}
	if (type == NULL || strncmp(type, "text/plain", 10) != 0) {
		curl_easy_cleanup(c);
		exercise_fail("GET %s answered with Content-Type \"%s\", expected text/plain", path,
		              type ? type : "(none)");
	}
	curl_easy_cleanup(c);
}

static void
test_exercise_hello_route_greets_by_name(void **state)
{
	struct harness_router hr;
	struct harness_backend *hb;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "exercise-1");
	assert_non_null(hb);
	expect_text(&hr, "/hello?name=class", "hello, class\n");
	expect_text(&hr, "/hello", "hello, world\n");
	expect_text(&hr, "/hello?x=1&name=you", "hello, you\n");
	harness_backend_free(hb);
	harness_router_free(&hr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_hello_route_greets_by_name),
	};

	return cmocka_run_group_tests_name("exercise 1", tests, harness_setup, harness_teardown);
}
