/*
 * ex10_too_many_requests.c -- the checker of exercise 10 (docs/EXERCISES.md).
 *
 * Exercise: 10 ★★★ Too many requests
 * Checks:   a backend that resets a stream with ENHANCE_YOUR_CALM (RFC 9113
 *           section 7, error code 0xb: "you are generating excessive
 *           load") before its response head makes the router answer
 *           429 Too Many Requests, with Retry-After and a one-line text,
 *           instead of 502; any other reset is still a 502, and the
 *           router goes on serving. The failure crosses every layer: the
 *           RST_STREAM's code (src/router/tunnel.c), a new PTTH_E* code
 *           (include/ptth.h, ptth_strerror()), the answer the user thread
 *           writes (src/router/user_conn.c). The new code is PTTH_ECALM.
 * As shipped: every reset before the head is 502 "stream reset by peer".
 * The router's frame trace is kept; on failure its RST_STREAM line is
 * shown, as --trace would show it.
 */
#define EXERCISE "10"
#include "exercises/exercise.h"

#include <stdlib.h>
#include <string.h>

#include "support/fake_backend.h"
#include "support/harness.h"
#include "support/http1_client.h"

/* probe: HAVE_ECALM: int code = PTTH_ECALM; (void)code; */

static struct response r;   /* 64 KiB of body: off the stack */

/* GET path on a connection of its own; the answer lands in r. */
static void
ask(int port, const char *path)
{
	char request[256];
	struct conn c;
	int rc;

	snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	assert_int_equal(conn_open(&c, port), 0);
	rc = conn_send(&c, request);
	if (rc == 0)
		rc = read_response(&c, &r, false);
	conn_close(&c);
	exercise_check(rc == 0, "GET %s: no answer: %s", path, strerror(-rc));
}

/* The first line of the trace (a FILE) that holds needle, or "". */
static const char *
trace_line(FILE *trace, const char *needle)
{
	static char line[512];

	fflush(trace);
	rewind(trace);
	while (fgets(line, sizeof line, trace) != NULL)
		if (strstr(line, needle) != NULL)
			return line;
	fseek(trace, 0, SEEK_END);
	return "";
}

static void
test_exercise_enhance_your_calm_becomes_429(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct fake *f;
	FILE *trace = tmpfile();
	const char *retry;

	(void)state;
	assert_non_null(trace);
	ptth_router_options_init(&opts);
	opts.trace = trace;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	f = fake_start(hr.tunnel_port, 100);
	assert_non_null(f);
	assert_int_equal(ptth_router_wait_tunnels(hr.router, 1, HARNESS_TIMEOUT_MS), 0);
	assert_int_equal(fake_wait(f, FAKE_SETTINGS_ACKED, 1), 0);

	ask(hr.http_port, "/rst?code=11");
	retry = resp_field(&r, "retry-after");
	exercise_check(r.status == 429, "a reset with ENHANCE_YOUR_CALM before the head was "
	               "answered %d %s, expected 429; the router's trace says: %s", r.status,
	               exercise_quote(r.body), exercise_quote(trace_line(trace, "RST_STREAM")));
	exercise_check(retry != NULL && atoi(retry) >= 1, "the 429 has no Retry-After");
	exercise_check(strncmp(r.body, "429 Too Many Requests", 21) == 0 && r.body_len > 0 &&
	               r.body[r.body_len - 1] == '\n' && strchr(r.body, '\n') == r.body +
	               r.body_len - 1, "the 429's body is %s, expected one line \"429 Too Many "
	               "Requests: ...\" (user_conn_send_simple() writes it)",
	               exercise_quote(r.body));

	ask(hr.http_port, "/rst?code=8");
	exercise_check(r.status == 502, "a reset with CANCEL before the head was answered %d, "
	               "expected 502 as before", r.status);
	ask(hr.http_port, "/foo");
	exercise_check(r.status == 200 && strcmp(r.body, "bar") == 0,
	               "afterwards GET /foo got %d %s", r.status, exercise_quote(r.body));
	fake_free(f);
	harness_router_free(&hr);
	fclose(trace);
}

static void
test_exercise_the_new_code_has_a_text(void **state)
{
	(void)state;
#ifndef HAVE_ECALM
	exercise_fail("include/ptth.h has no PTTH_ECALM yet: the code the tunnel thread gives "
	              "an exchange reset with ENHANCE_YOUR_CALM, below -1000 like the others");
#else
	const char *text = ptth_strerror(PTTH_ECALM);

	exercise_check(PTTH_ECALM < -1000 && strstr(text, "nknown") == NULL,
	               "PTTH_ECALM is %d and ptth_strerror() says %s for it: a PTTH_E* code is "
	               "below -1000, with a text of its own in ptth_strerror() "
	               "(src/common/log.c)", PTTH_ECALM, exercise_quote(text));
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_enhance_your_calm_becomes_429),
		cmocka_unit_test(test_exercise_the_new_code_has_a_text),
	};

	return cmocka_run_group_tests_name("exercise 10", tests, harness_setup, harness_teardown);
}
