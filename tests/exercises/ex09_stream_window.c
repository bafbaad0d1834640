/*
 * ex09_stream_window.c -- the checker of exercise 9 (docs/EXERCISES.md).
 *
 * Exercise: 9 ★★ Opening the window
 * Checks:   the router's per-stream flow-control window, fixed today at
 *           ROUTER_STREAM_WINDOW (256 KiB), becomes the option
 *           stream_window of struct ptth_router_options and the flag
 *           --stream-window BYTES of bin/router (64 KiB to 16 MiB):
 *           - the router's SETTINGS carry it as INITIAL_WINDOW_SIZE, as
 *             its frame trace shows, and no WINDOW_UPDATE it sends for a
 *             stream gives more than that much;
 *           - a window of 1 MiB in front of a user who reads slowly still
 *             delivers every byte: each exchange's pipes hold a whole
 *             window (the backend may send that much before the router
 *             passes any of it on);
 *           - a value outside 64 KiB..16 MiB is refused (ptth_router_new()
 *             returns NULL), and bin/router --stream-window 65536 --trace
 *             shows INITIAL_WINDOW_SIZE=65536 as soon as a tunnel connects.
 * As shipped: there is no stream_window (make's probe finds none), and
 *           bin/router refuses --stream-window.
 */
#define EXERCISE "9"
#include "exercises/exercise.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"
#include "support/http1_client.h"

/* probe: HAVE_STREAM_WINDOW: struct ptth_router_options o = { .stream_window = 65536 }; (void)o; */

#ifdef HAVE_STREAM_WINDOW
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

/* The largest increment of a WINDOW_UPDATE the trace shows sent for a
 * stream (not the connection), or 0. */
static long
largest_stream_increment(const char *trace)
{
	long most = 0;

	for (const char *p = strstr(trace, "send WINDOW_UPDATE"); p != NULL;
	     p = strstr(p + 1, "send WINDOW_UPDATE")) {
		const char *id = strstr(p, "stream_id="), *inc = strstr(p, "increment=");
		const char *eol = strchr(p, '\n');
		if (id == NULL || inc == NULL || (eol != NULL && inc > eol) || atol(id + 10) == 0)
			continue;
		if (atol(inc + 10) > most)
			most = atol(inc + 10);
	}
	return most;
}

/* The INITIAL_WINDOW_SIZE of the first SETTINGS the trace shows sent. */
static long
settings_window(const char *trace)
{
	const char *p = strstr(trace, "send SETTINGS");
	const char *eol = p != NULL ? strchr(p, '\n') : NULL;
	const char *w = p != NULL ? strstr(p, "INITIAL_WINDOW_SIZE=") : NULL;

	return w != NULL && (eol == NULL || w < eol) ? atol(w + 20) : -1;
}
#endif

static void
test_exercise_window_is_an_option_seen_in_the_trace(void **state)
{
#ifndef HAVE_STREAM_WINDOW
	(void)state;
	exercise_fail("struct ptth_router_options has no stream_window field yet: add it "
	              "(include/ptth.h) and use it where ROUTER_STREAM_WINDOW is used today");
#else
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *hb;
	FILE *trace = tmpfile();
	char url[128], *text;
	struct http_reply reply = { 0 };
	CURL *c = http_client_new();

	(void)state;
	assert_true(trace != NULL && c != NULL);
	ptth_router_options_init(&opts);
	opts.stream_window = 65536;
	opts.trace = trace;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	hb = harness_backend_start(&hr, "exercise-9");
	assert_non_null(hb);
	harness_url(&hr, "/bytes?n=1000000", url, sizeof url);
	assert_int_equal(http_client_get(c, url, &reply), CURLE_OK);
	curl_easy_cleanup(c);
	harness_backend_free(hb);
	harness_router_free(&hr);
	exercise_check(reply.status == 200 && reply.total == 1000000,
	               "GET /bytes?n=1000000 with a 64 KiB window gave %ld and %llu bytes",
	               reply.status, (unsigned long long)reply.total);
	text = file_text(trace);
	assert_non_null(text);
	long window = settings_window(text), most = largest_stream_increment(text);
	free(text);
	fclose(trace);
	exercise_check(window == 65536, "with stream_window 65536, the router's trace shows "
	               "SETTINGS INITIAL_WINDOW_SIZE=%ld (see tunnel_session_new() in "
	               "src/router/tunnel.c)", window);
	exercise_check(most > 0 && most <= 65536, "with stream_window 65536, the router sent a "
	               "stream WINDOW_UPDATE of %ld", most);
#endif
}

#ifdef HAVE_STREAM_WINDOW
/* Reads the whole /bytes answer on c slowly: 16 KiB, then 2 ms, so that
 * the backend fills the router's window long before the user drains it.
 * (The pauses are the point: a slow user, not a condition to wait for.) */
static void
read_slowly(struct conn *c, long long n)
{
	static struct response r;
	long long got = 0;
	struct timespec pause = { 0, 2 * 1000000L };

	assert_int_equal(read_head(c, &r, false), 0);
	exercise_check(r.status == 200, "GET /bytes answered %d", r.status);
	while (got < n) {
		const char *data;
		ssize_t k = conn_take(c, 16384, &data);
		if (k <= 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			exercise_check(data[i] == (char)('a' + (got + i) % 26), "byte %lld of "
			               "GET /bytes is wrong: bytes were lost between the tunnel and "
			               "the user (is each exchange's pipe as large as the window? see "
			               "exchange_new() in src/router/user_conn.c)", got + i);
		got += k;
		nanosleep(&pause, NULL);
	}
	exercise_check(got == n, "a slow user got %lld of %lld bytes with a 1 MiB window: "
	               "bytes were lost (is each exchange's pipe as large as the window? see "
	               "exchange_new() in src/router/user_conn.c)", got, n);
}
#endif

static void
test_exercise_a_large_window_loses_no_byte_for_a_slow_user(void **state)
{
#ifndef HAVE_STREAM_WINDOW
	(void)state;
	exercise_fail("no stream_window field yet (see the first check)");
#else
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *hb;
	struct conn c;
	long long n = 6 * 1024 * 1024;
	char request[128];

	(void)state;
	ptth_router_options_init(&opts);
	opts.stream_window = 16 * 1024 * 1024 + 1;
	exercise_check(ptth_router_new(&opts) == NULL, "ptth_router_new() took a stream_window "
	               "of 16 MiB + 1 byte");
	opts.stream_window = 65535;
	exercise_check(ptth_router_new(&opts) == NULL, "ptth_router_new() took a stream_window "
	               "of 65535 bytes");
	opts.stream_window = 1024 * 1024;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	hb = harness_backend_start(&hr, "exercise-9");
	assert_non_null(hb);
	assert_true((c.fd = dial_loopback_rcvbuf(hr.http_port, 8192)) >= 0);
	c.off = c.len = 0;
	snprintf(request, sizeof request, "GET /bytes?n=%lld HTTP/1.1\r\nHost: x\r\n\r\n", n);
	assert_int_equal(conn_send(&c, request), 0);
	read_slowly(&c, n);
	conn_close(&c);
	harness_backend_free(hb);
	harness_router_free(&hr);
#endif
}

static void
test_exercise_router_flag_shows_in_its_trace(void **state)
{
	const char *args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0",
	                       "--stream-window", "65536", "--trace", "--quiet", NULL };
	struct ptth_backend_options bopts;
	struct ptth_backend *b = NULL;
	struct harness_listening where;
	char addr[160], err[16384] = "";
	int out_fd = -1, err_fd = -1, rc;
	pid_t pid;

	(void)state;
	pid = harness_spawn_piped("router", args, &out_fd, &err_fd);
	assert_true(pid > 0);
	rc = harness_read_listening(out_fd, &where, 5000);
	if (rc == 0) {
		ptth_backend_options_init(&bopts);
		snprintf(addr, sizeof addr, "127.0.0.1:%d", where.tunnel_port);
		bopts.router_addr = addr;
		bopts.handler = ptth_mux_serve;
		bopts.handler_arg = ptth_mux_new();
		b = ptth_backend_new(&bopts);
		assert_non_null(b);
		assert_int_equal(ptth_backend_start(b), 0);
		rc = harness_read_until(err_fd, err, sizeof err, "INITIAL_WINDOW_SIZE=65536", 1,
		                        5000);
		ptth_backend_free(b);
		ptth_mux_free(bopts.handler_arg);
	} else {
		harness_read_until(err_fd, err, sizeof err, NULL, 1, 2000);
	}
	harness_kill(pid, SIGTERM);
	close(out_fd);
	close(err_fd);
	exercise_check(rc == 0, "bin/router --stream-window 65536 --trace showed no "
	               "INITIAL_WINDOW_SIZE=65536 (it wrote %s): add the flag to parse_flags() "
	               "and usage() in examples/router.c", exercise_quote(err));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_window_is_an_option_seen_in_the_trace),
		cmocka_unit_test(test_exercise_a_large_window_loses_no_byte_for_a_slow_user),
		cmocka_unit_test(test_exercise_router_flag_shows_in_its_trace),
	};

	return cmocka_run_group_tests_name("exercise 9", tests, harness_setup, harness_teardown);
}
