/*
 * ex08_full_queue.c -- the checker of exercise 8 (docs/EXERCISES.md).
 *
 * Exercise: 8 ★★ A full queue
 * Checks:   struct ptth_backend_options has a max_streams field, which the
 *           backend advertises as SETTINGS_MAX_CONCURRENT_STREAMS (its
 *           --trace shows it). Behind a router with --queue-size 1, a
 *           backend with max_streams 1 holding one request makes the
 *           router keep the second in the tunnel's queue and answer the
 *           third 503 "every tunnel is busy" with Retry-After at once;
 *           once the first ends, the queued one is served.
 * As shipped: there is no max_streams (make's probe finds none); every
 *           backend allows 256 streams (BACKEND_MAX_STREAMS).
 */
#define EXERCISE "8"
#include "exercises/exercise.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/harness.h"
#include "support/http1_client.h"

/* probe: HAVE_MAX_STREAMS: struct ptth_backend_options o = { .max_streams = 1 }; (void)o; */

#define WAIT_MS 5000

#ifdef HAVE_MAX_STREAMS
/* The handler's state: how many are inside, and whether they may go. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_changed = PTHREAD_COND_INITIALIZER;
static int hold_inside;       /* guarded by hold_mu */
static bool hold_released;    /* guarded by hold_mu */

/* GET anything: waits inside until the checker releases it, then "done". */
static void
handle_hold(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)req;
	(void)arg;
	pthread_mutex_lock(&hold_mu);
	hold_inside++;
	pthread_cond_broadcast(&hold_changed);
	while (!hold_released)
		pthread_cond_wait(&hold_changed, &hold_mu);
	pthread_mutex_unlock(&hold_mu);
	ptth_response_send(res, 200, "text/plain", "done", 4);
}

/* Waits until n handlers are inside (or WAIT_MS); returns how many are. */
static int
hold_wait_inside(int n)
{
	long long deadline = harness_now_ms() + WAIT_MS;
	int inside;

	pthread_mutex_lock(&hold_mu);
	while (hold_inside < n && harness_now_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&hold_changed, &hold_mu, &ts);
	}
	inside = hold_inside;
	pthread_mutex_unlock(&hold_mu);
	return inside;
}

static void
hold_release(void)
{
	pthread_mutex_lock(&hold_mu);
	hold_released = true;
	pthread_cond_broadcast(&hold_changed);
	pthread_mutex_unlock(&hold_mu);
}

static struct response r;   /* 64 KiB of body: off the stack */

/* Which of a and b has something to read first: 0, 1, or -1 for neither
 * within WAIT_MS. */
static int
first_readable(struct conn *a, struct conn *b)
{
	struct pollfd p[2] = { { .fd = a->fd, .events = POLLIN }, { .fd = b->fd, .events = POLLIN } };

	if (poll(p, 2, WAIT_MS) <= 0)
		return -1;
	return p[0].revents != 0 ? 0 : 1;
}

/* The text a FILE holds, from its start; the caller frees it. */
static char *
file_text(FILE *f)
{
	long size;
	char *text;

	fflush(f);
	size = ftell(f);
	text = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
	if (text != NULL && size > 0) {
		rewind(f);
		if (fread(text, 1, (size_t)size, f) != (size_t)size)
			text[0] = '\0';
	}
	return text;
}
#endif

static void
test_exercise_a_full_queue_answers_503_and_the_queued_request_waits(void **state)
{
#ifndef HAVE_MAX_STREAMS
	(void)state;
	exercise_fail("struct ptth_backend_options has no max_streams field yet: add it "
	              "(include/ptth.h), give it a default in ptth_backend_options_init() and "
	              "send it in the backend's SETTINGS (src/backend/backend_conn.c)");
#else
	static const char request[] = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
	struct ptth_router_options ropts;
	struct ptth_backend_options bopts;
	struct harness_router hr;
	struct harness_backend *hb;
	struct conn c[3];
	FILE *trace = tmpfile();
	char *text;
	int refused, queued, inside;

	(void)state;
	assert_non_null(trace);
	ptth_router_options_init(&ropts);
	ropts.queue_size = 1;
	assert_int_equal(harness_router_start_opts(&hr, &ropts), 0);
	ptth_backend_options_init(&bopts);
	bopts.max_streams = 1;
	bopts.handler = handle_hold;
	bopts.trace = trace;
	hb = harness_backend_start_opts(&hr, "exercise-8", &bopts);
	assert_non_null(hb);

	assert_int_equal(conn_open(&c[0], hr.http_port), 0);
	assert_int_equal(conn_send(&c[0], request), 0);
	exercise_check(hold_wait_inside(1) == 1, "the first request never reached the handler");
	assert_int_equal(conn_open(&c[1], hr.http_port), 0);
	assert_int_equal(conn_open(&c[2], hr.http_port), 0);
	assert_int_equal(conn_send(&c[1], request), 0);
	assert_int_equal(conn_send(&c[2], request), 0);
	refused = first_readable(&c[1], &c[2]);
	inside = hold_wait_inside(3);
	if (refused < 0) {
		hold_release();
		exercise_fail("with max_streams 1 and --queue-size 1, neither the second nor the "
		              "third request got an answer while the first was held (%d handlers "
		              "ran at once): is max_streams sent as MAX_CONCURRENT_STREAMS in the "
		              "backend's SETTINGS?", inside);
	}
	queued = 1 - refused;
	assert_int_equal(read_response(&c[1 + refused], &r, false), 0);
	exercise_check(r.status == 503 && resp_field(&r, "retry-after") != NULL &&
	               strstr(r.body, "busy") != NULL, "the request that found the queue full "
	               "got %d %s, expected 503 \"every tunnel is busy\" with Retry-After",
	               r.status, exercise_quote(r.body));
	exercise_check(inside == 1, "%d handlers ran at once, but the backend allows 1", inside);

	hold_release();
	assert_int_equal(read_response(&c[0], &r, false), 0);
	exercise_check(r.status == 200, "the held request got %d once released", r.status);
	assert_int_equal(read_response(&c[1 + queued], &r, false), 0);
	exercise_check(r.status == 200 && strcmp(r.body, "done") == 0, "the queued request got "
	               "%d %s once the first ended, expected 200 \"done\"", r.status,
	               exercise_quote(r.body));
	for (int i = 0; i < 3; i++)
		conn_close(&c[i]);
	harness_backend_free(hb);
	harness_router_free(&hr);

	text = file_text(trace);
	assert_non_null(text);
	const char *value = strstr(text, "send SETTINGS");
	value = value != NULL ? strstr(value, "MAX_CONCURRENT_STREAMS=") : NULL;
	exercise_check(value != NULL && strtol(value + 23, NULL, 10) == 1,
	               "the backend's trace shows no SETTINGS with MAX_CONCURRENT_STREAMS=1");
	free(text);
	fclose(trace);
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_a_full_queue_answers_503_and_the_queued_request_waits),
	};

	return cmocka_run_group_tests_name("exercise 8", tests, harness_setup, harness_teardown);
}
