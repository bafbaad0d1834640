/*
 * ex06_cookie_crumbs.c -- the checker of exercise 6 (docs/EXERCISES.md).
 *
 * Exercise: 6 ★★ One cookie per field
 * Checks:   the router sends each cookie of a user's Cookie fields as a
 *           cookie field of its own (RFC 9113 section 8.2.3, which lets
 *           HPACK compress the ones that do not change): "a=1; b=2;c=3"
 *           and a second field "d=4" reach the backend as the four
 *           fields a=1, b=2, c=3 and d=4, in order, with no empty one.
 *           Other fields are untouched.
 * As shipped: each Cookie field is forwarded whole (docs/PROXY-CONTRACT.md,
 *           "Known gaps").
 */
#define EXERCISE "6"
#include "exercises/exercise.h"

#include <string.h>
#include <strings.h>

#include "support/harness.h"
#include "support/http1_client.h"

static struct response r;   /* 64 KiB of body: off the stack */

/* The "cookie: ..." lines of GET /headers's answer, joined by " | ". */
static void
cookie_lines(const char *body, char *out, size_t size)
{
	const char *line = body;

	out[0] = '\0';
	while (line != NULL && *line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (strncasecmp(line, "cookie:", 7) == 0) {
			size_t used = strlen(out);
			snprintf(out + used, size - used, "%s%.*s", used ? " | " : "", (int)len, line);
		}
		line = end ? end + 1 : NULL;
	}
}

static void
test_exercise_each_cookie_travels_in_a_field_of_its_own(void **state)
{
	static const char request[] = "GET /headers HTTP/1.1\r\nHost: x\r\n"
	                              "Cookie: a=1; b=2;c=3\r\nX-Other: p; q\r\n"
	                              "Cookie: d=4;\r\n\r\n";
	static const char want[] = "cookie: a=1 | cookie: b=2 | cookie: c=3 | cookie: d=4";
	struct harness_router hr;
	struct harness_backend *hb;
	struct conn c;
	char got[1024];
	const char *why;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "exercise-6");
	assert_non_null(hb);
	assert_int_equal(conn_open(&c, hr.http_port), 0);
	assert_int_equal(conn_send(&c, request), 0);
	assert_int_equal(read_response(&c, &r, false), 0);
	conn_close(&c);
	why = check_response(&r, 200, NULL);
	exercise_check(why == NULL, "GET /headers: %s", why);
	cookie_lines(r.body, got, sizeof got);
	exercise_check(strcmp(got, want) == 0, "for \"Cookie: a=1; b=2;c=3\" and \"Cookie: "
	               "d=4;\", the backend received %s, expected %s: split them in "
	               "headers_request_to_h2() (src/common/headers.c)", exercise_quote(got),
	               exercise_quote(want));
	exercise_check(strstr(r.body, "\nx-other: p; q\n") != NULL,
	               "another field with \"; \" in it was changed: split Cookie alone (%s)",
	               exercise_quote(r.body));
	harness_backend_free(hb);
	harness_router_free(&hr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_each_cookie_travels_in_a_field_of_its_own),
	};

	return cmocka_run_group_tests_name("exercise 6", tests, harness_setup, harness_teardown);
}
