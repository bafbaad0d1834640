/*
 * ex04_prefix_routes.c -- the checker of exercise 4 (docs/EXERCISES.md).
 *
 * Exercise: 4 ★★ Prefix routes
 * Checks:   ptth_mux_handle() takes patterns that end in '/' as prefixes,
 *           as Go's http.ServeMux does: "/static/" serves every path
 *           under it, the longest matching prefix wins, an exact path
 *           wins over any prefix, and the order of registration does not
 *           matter. Exact paths behave as before ("/foo" does not serve
 *           "/foo/bar"), and anything else is still 404.
 * As shipped: patterns are exact paths only, so GET /static/a.css is 404.
 */
#define EXERCISE "4"
#include "exercises/exercise.h"

#include <string.h>

#include "support/harness.h"

/* Every route answers its own name, so the checker sees which one ran. */
static void
handle_named(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	const char *name = arg;

	(void)req;
	ptth_response_send(res, 200, "text/plain", name, strlen(name));
}

/* GET path through hr: want is the route's name, or NULL for a 404. */
static void
expect_route(struct harness_router *hr, const char *path, const char *want)
{
	char url[256], body[256] = "";
	long status = 0;
	CURLcode rc;

	harness_url(hr, path, url, sizeof url);
	rc = http_get(url, &status, body, sizeof body, NULL);
	exercise_check(rc == CURLE_OK, "GET %s failed: %s", path, curl_easy_strerror(rc));
	if (want == NULL)
		exercise_check(status == 404, "GET %s answered %ld %s, expected 404: no pattern "
		               "matches it", path, status, exercise_quote(body));
	else
		exercise_check(status == 200 && strcmp(body, want) == 0,
		               "GET %s answered %ld %s, expected the route registered as \"%s\" "
		               "(see ptth_mux_serve() in src/backend/mux.c)", path, status,
		               exercise_quote(body), want);
}

/* Serves a mux with the patterns in the order given, then asks. */
static void
check_mux(const char *const patterns[], size_t n)
{
	struct ptth_backend_options opts;
	struct harness_router hr;
	struct harness_backend *hb;
	struct ptth_mux *mux = ptth_mux_new();

	assert_non_null(mux);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ptth_mux_handle(mux, patterns[i], handle_named, (void *)patterns[i]),
		                 0);
	ptth_backend_options_init(&opts);
	opts.handler = ptth_mux_serve;
	opts.handler_arg = mux;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start_opts(&hr, "exercise-4", &opts);
	assert_non_null(hb);
	expect_route(&hr, "/static/a.css", "/static/");
	expect_route(&hr, "/static/", "/static/");
	expect_route(&hr, "/static/img/logo.png", "/static/img/");
	expect_route(&hr, "/static/img/", "/static/img/");
	expect_route(&hr, "/static/about", "/static/about");
	expect_route(&hr, "/static/about/more", "/static/");
	expect_route(&hr, "/foo", "/foo");
	expect_route(&hr, "/foo/bar", NULL);
	expect_route(&hr, "/static", NULL);
	expect_route(&hr, "/other", NULL);
	harness_backend_free(hb);
	harness_router_free(&hr);
	ptth_mux_free(mux);
}

static void
test_exercise_prefix_patterns_serve_their_subtree(void **state)
{
	static const char *const shortest_first[] = {
		"/static/", "/static/img/", "/static/about", "/foo",
	};
	static const char *const longest_first[] = {
		"/foo", "/static/about", "/static/img/", "/static/",
	};

	(void)state;
	check_mux(shortest_first, 4);
	check_mux(longest_first, 4);
}

/* "/" is a prefix of every path: a catch-all that exact paths beat. */
static void
test_exercise_root_pattern_catches_everything_else(void **state)
{
	static const char *const patterns[] = { "/", "/foo" };
	struct ptth_backend_options opts;
	struct harness_router hr;
	struct harness_backend *hb;
	struct ptth_mux *mux = ptth_mux_new();

	(void)state;
	assert_non_null(mux);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(ptth_mux_handle(mux, patterns[i], handle_named, (void *)patterns[i]),
		                 0);
	ptth_backend_options_init(&opts);
	opts.handler = ptth_mux_serve;
	opts.handler_arg = mux;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start_opts(&hr, "exercise-4", &opts);
	assert_non_null(hb);
	expect_route(&hr, "/anything/at/all", "/");
	expect_route(&hr, "/foo", "/foo");
	expect_route(&hr, "/foo/bar", "/");
	harness_backend_free(hb);
	harness_router_free(&hr);
	ptth_mux_free(mux);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_prefix_patterns_serve_their_subtree),
		cmocka_unit_test(test_exercise_root_pattern_catches_everything_else),
	};

	return cmocka_run_group_tests_name("exercise 4", tests, harness_setup, harness_teardown);
}
