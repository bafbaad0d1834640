/*
 * ex03_ping_flags.c -- the checker of exercise 3 (docs/EXERCISES.md).
 *
 * Exercise: 3 ★ Keep the tunnel alive
 * Checks:   bin/backend takes --ping-interval-ms and --ping-timeout-ms:
 *           - with --ping-interval-ms 200 and --trace, in front of a
 *             router that never PINGs itself, the backend's trace shows
 *             it sending PINGs and receiving their ACKs within seconds
 *             (its default is one PING after 10 s of quiet);
 *           - with --ping-interval-ms 200 --ping-timeout-ms 300, in front
 *             of a "router" that accepts the tunnel and never answers,
 *             bin/backend --no-reconnect gives up and exits 1 within a
 *             few seconds (by default it would take 15 s).
 * As shipped: bin/backend answers "bad flag" and exits 2.
 */
#define EXERCISE "3"
#include "exercises/exercise.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/harness.h"

#define LOOK_MS 6000   /* pings every 200 ms: plenty; the default's first is at 10 s */

/* Fails with a message fit for a missing flag when pid exited 2. */
static void
check_not_refused(pid_t pid, const char *log)
{
	int status;

	if (harness_wait_exit(pid, 200, &status) == 0 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 2)
		exercise_fail("bin/backend refused its flags (%s): add --ping-interval-ms and "
		              "--ping-timeout-ms to parse_flags() and usage() in "
		              "examples/backend.c", exercise_quote(log));
}

static void
test_exercise_backend_pings_at_the_interval_asked(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	char addr[64], log[64 * 1024];
	const char *args[] = { "--router", addr, "--no-reconnect", "--quiet", "--trace",
	                       "--ping-interval-ms", "200", "--ping-timeout-ms", "2000", NULL };
	int err_fd = -1, rc;
	pid_t pid;

	(void)state;
	ptth_router_options_init(&opts);
	opts.ping_interval_ms = -1; /* the router never PINGs: only the backend will */
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", hr.tunnel_port);
	pid = harness_spawn_piped("backend", args, NULL, &err_fd);
	assert_true(pid > 0);
	rc = harness_read_until(err_fd, log, sizeof log, "flags=0x01(ACK) opaque=", 2, LOOK_MS);
	if (rc < 0) {
		check_not_refused(pid, log);
		harness_kill(pid, SIGKILL);
		exercise_fail("in %d ms, bin/backend --ping-interval-ms 200 --trace showed no "
		              "two PING ACKs received (its trace: %s): does the flag reach "
		              "opts->ping_interval_ms?", LOOK_MS, exercise_quote(log));
	}
	exercise_check(strstr(log, "send PING") != NULL,
	               "the trace shows PING ACKs but no PING sent by the backend");
	harness_kill(pid, SIGTERM);
	close(err_fd);
	harness_router_free(&hr);
}

/* A "router" that takes the tunnel and never says a word. */
static void
test_exercise_backend_gives_up_on_a_silent_router(void **state)
{
	char addr[64], log[16 * 1024], how[64];
	const char *args[] = { "--router", addr, "--no-reconnect", "--ping-interval-ms", "200",
	                       "--ping-timeout-ms", "300", NULL };
	int port, err_fd = -1, status, rc;
	int lfd = harness_port_reserve(&port);
	long long start;
	pid_t pid;

	(void)state;
	assert_true(lfd >= 0);
	assert_int_equal(listen(lfd, 1), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	start = harness_now_ms();
	pid = harness_spawn_piped("backend", args, NULL, &err_fd);
	assert_true(pid > 0);
	struct pollfd dialled = { .fd = lfd, .events = POLLIN };
	int tunnel = -1;
	if (poll(&dialled, 1, 5000) == 1)
		tunnel = accept(lfd, NULL, NULL); /* held, never read, never answered */
	rc = harness_wait_exit(pid, 5000, &status);
	harness_describe_exit(rc, status, how, sizeof how);
	harness_read_until(err_fd, log, sizeof log, NULL, 1, 1000);
	if (tunnel >= 0)
		close(tunnel);
	close(lfd);
	close(err_fd);
	exercise_check(!(rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2),
	               "bin/backend refused its flags: %s", exercise_quote(log));
	exercise_check(rc == 0, "bin/backend --ping-interval-ms 200 --ping-timeout-ms 300 "
	               "was still waiting on a silent router after 5 s: does "
	               "--ping-timeout-ms reach opts->ping_timeout_ms?");
	exercise_check(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	               "bin/backend ended with %s, expected exit status 1 (%s)", how,
	               exercise_quote(log));
	print_message("a silent router was given up after %lld ms\n", harness_now_ms() - start);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_backend_pings_at_the_interval_asked),
		cmocka_unit_test(test_exercise_backend_gives_up_on_a_silent_router),
	};

	return cmocka_run_group_tests_name("exercise 3", tests, harness_setup, harness_teardown);
}
