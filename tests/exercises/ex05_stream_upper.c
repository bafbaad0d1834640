/*
 * ex05_stream_upper.c -- the checker of exercise 5 (docs/EXERCISES.md).
 *
 * Exercise: 5 ★★ Stream it back
 * Checks:   POST /upper, a route of examples/backend/routes.c, answers 200 with
 *           the request body in upper case (ASCII letters), written as it
 *           is read: the user sees "HELLO" while its body is still open.
 *           The answer has no Content-Length (so an HTTP/1.1 user gets it
 *           chunked) and ends with the trailer "x-bytes: N", the number
 *           of body bytes, announced by "Trailer: x-bytes".
 * As shipped: there is no /upper, so the mux answers 404.
 */
#define EXERCISE "5"
#include "exercises/exercise.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "support/harness.h"
#include "support/http1_client.h"

#define WAIT_MS 5000

static struct response r;   /* 64 KiB of body: off the stack */

/* Reads chunks until at least want body bytes are in out (NUL-ended),
 * or the last chunk came (*ended). */
static void
read_chunks(struct conn *c, char *out, size_t cap, size_t want, bool *ended)
{
	size_t len = strlen(out);
	char line[256];

	*ended = false;
	while (len < want) {
		exercise_check(conn_wait_readable(c, WAIT_MS), "no more of the answer within "
		               "%d ms after %s", WAIT_MS, exercise_quote(out));
		exercise_check(conn_read_line(c, line, sizeof line) >= 0, "the answer was cut");
		size_t size = strtoul(line, NULL, 16);
		if (size == 0) {
			*ended = true;
			return;
		}
		while (size > 0) {
			const char *data;
			ssize_t n = conn_take(c, size, &data);
			exercise_check(n > 0, "the answer was cut in the middle of a chunk");
			exercise_check(len + (size_t)n < cap, "more answer than was asked for");
			memcpy(out + len, data, (size_t)n);
			len += (size_t)n;
			out[len] = '\0';
			size -= (size_t)n;
		}
		exercise_check(conn_read_line(c, line, sizeof line) == 0, "a chunk without CR LF");
	}
}

static void
test_exercise_upper_streams_while_the_body_arrives(void **state)
{
	struct harness_router hr;
	struct harness_backend *hb;
	struct conn c;
	char body[256] = "", line[256], trailer[256] = "";
	bool ended;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "exercise-5");
	assert_non_null(hb);
	assert_int_equal(conn_open(&c, hr.http_port), 0);
	assert_int_equal(conn_send(&c, "POST /upper HTTP/1.1\r\nHost: x\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), 0);
	exercise_check(conn_wait_readable(&c, WAIT_MS), "POST /upper: no answer within %d ms "
	               "while the request body is still open: write each piece back as soon "
	               "as ptth_request_read() returns it", WAIT_MS);
	exercise_check(read_head(&c, &r, false) == 0, "POST /upper: no response head");
	exercise_check(r.status == 200, "POST /upper answered %d, expected 200%s", r.status,
	               r.status == 404 ? ": register /upper in routes_register() "
	                                 "(examples/backend/routes.c)" : "");
	exercise_check(r.framing == FRAMING_CHUNKED, "POST /upper is not chunked: set no "
	               "Content-Length, since the length is not known in advance");
	read_chunks(&c, body, sizeof body, 5, &ended);
	exercise_check(strcmp(body, "HELLO") == 0, "while the body was open, POST /upper "
	               "answered %s, expected \"HELLO\"", exercise_quote(body));
	assert_int_equal(conn_send(&c, "6\r\n world\r\n0\r\n\r\n"), 0);
	read_chunks(&c, body, sizeof body, sizeof body, &ended);
	exercise_check(ended && strcmp(body, "HELLO WORLD") == 0, "POST /upper answered %s, "
	               "expected \"HELLO WORLD\"", exercise_quote(body));
	while (conn_read_line(&c, line, sizeof line) > 0)
		if (strncasecmp(line, "x-bytes:", 8) == 0)
			snprintf(trailer, sizeof trailer, "%s", line);
	exercise_check(strcasecmp(trailer, "x-bytes: 11") == 0, "the answer's trailers have "
	               "no \"x-bytes: 11\" (found %s): use ptth_response_add_trailer()",
	               exercise_quote(trailer));
	const char *announced = resp_field(&r, "trailer");
	exercise_check(announced != NULL && strcasecmp(announced, "x-bytes") == 0,
	               "the head does not announce the trailer (\"Trailer: x-bytes\")");
	conn_close(&c);
	harness_backend_free(hb);
	harness_router_free(&hr);
}

/* A large body of every byte value: letters change, nothing else. */
static void
test_exercise_upper_changes_letters_alone(void **state)
{
	struct harness_router hr;
	struct harness_backend *hb;
	size_t size = 300 * 1000;
	char *data = malloc(size), *want = malloc(size), *got = malloc(size + 1);
	char url[128];
	long status = 0;
	size_t len = 0;

	(void)state;
	assert_true(data != NULL && want != NULL && got != NULL);
	for (size_t i = 0; i < size; i++) {
		data[i] = (char)(i * 7 % 256);
		want[i] = (unsigned char)data[i] >= 'a' && (unsigned char)data[i] <= 'z'
		                  ? (char)(data[i] - 'a' + 'A') : data[i];
	}
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "exercise-5");
	assert_non_null(hb);
	harness_url(&hr, "/upper", url, sizeof url);
	assert_int_equal(http_post(url, data, size, &status, got, size + 1, &len), CURLE_OK);
	exercise_check(status == 200, "POST /upper of %zu bytes answered %ld", size, status);
	exercise_check(len == size && memcmp(got, want, size) == 0, "POST /upper of %zu bytes "
	               "(every byte value) did not come back with a-z made A-Z and every "
	               "other byte as it was (%zu bytes came back)", size, len);
	harness_backend_free(hb);
	harness_router_free(&hr);
	free(data);
	free(want);
	free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_upper_streams_while_the_body_arrives),
		cmocka_unit_test(test_exercise_upper_changes_letters_alone),
	};

	return cmocka_run_group_tests_name("exercise 5", tests, harness_setup, harness_teardown);
}
