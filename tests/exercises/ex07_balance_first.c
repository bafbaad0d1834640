/*
 * ex07_balance_first.c -- the checker of exercise 7 (docs/EXERCISES.md).
 *
 * Exercise: 7 ★★ Primary and backup
 * Checks:   a fourth balancing strategy, PTTH_BALANCE_FIRST in
 *           include/ptth.h and --balance first for bin/router: every
 *           request goes to the oldest tunnel of the pool (the primary),
 *           and only when it is gone to the next oldest (a backup). A
 *           tunnel that joins later never takes traffic from an older
 *           one.
 * As shipped: there is no PTTH_BALANCE_FIRST (make's probe finds none),
 *           and bin/router refuses --balance first.
 */
#define EXERCISE "7"
#include "exercises/exercise.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/harness.h"

/* probe: HAVE_BALANCE_FIRST: enum ptth_balance b = PTTH_BALANCE_FIRST; (void)b; */

#define ASKS 20

#ifdef HAVE_BALANCE_FIRST
/* How many of ASKS GET /who were answered by name. */
static int
answered_by(struct harness_router *hr, const char *name, char *other, size_t size)
{
	char url[128], body[64];
	long status;
	int n = 0;

	harness_url(hr, "/who", url, sizeof url);
	other[0] = '\0';
	for (int i = 0; i < ASKS; i++) {
		body[0] = '\0';
		if (http_get(url, &status, body, sizeof body, NULL) == CURLE_OK && status == 200 &&
		    strcmp(body, name) == 0)
			n++;
		else
			snprintf(other, size, "%ld %s", status, body);
	}
	return n;
}
#endif

static void
test_exercise_first_sends_everything_to_the_oldest_tunnel(void **state)
{
#ifndef HAVE_BALANCE_FIRST
	(void)state;
	exercise_fail("include/ptth.h has no PTTH_BALANCE_FIRST yet: add it to enum "
	              "ptth_balance, then pick by it in pool_pick() (src/router/pool.c)");
#else
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *a, *b, *c;
	char other[128];
	int n;

	(void)state;
	ptth_router_options_init(&opts);
	opts.balance = PTTH_BALANCE_FIRST;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	a = harness_backend_start(&hr, "a");
	b = harness_backend_start(&hr, "b");
	c = harness_backend_start(&hr, "c");
	assert_true(a != NULL && b != NULL && c != NULL);
	n = answered_by(&hr, "a", other, sizeof other);
	exercise_check(n == ASKS, "with backends a, b and c joined in that order, %d of %d "
	               "requests went to a, the oldest (another answered %s)", n, ASKS, other);
	harness_backend_free(a);
	assert_int_equal(ptth_router_wait_tunnels_at_most(hr.router, 2, HARNESS_TIMEOUT_MS), 0);
	a = harness_backend_start(&hr, "a-again");
	assert_non_null(a);
	n = answered_by(&hr, "b", other, sizeof other);
	exercise_check(n == ASKS, "once a left (and came back as the newest tunnel), %d of %d "
	               "requests went to b, the oldest left (another answered %s)", n, ASKS,
	               other);
	harness_backend_free(a);
	harness_backend_free(b);
	harness_backend_free(c);
	harness_router_free(&hr);
#endif
}

static void
test_exercise_router_takes_balance_first(void **state)
{
	const char *args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0", "--balance",
	                       "first", "--quiet", NULL };
	struct harness_listening where;
	char err[1024] = "";
	int out_fd = -1, err_fd = -1, status, rc;
	pid_t pid;

	(void)state;
	pid = harness_spawn_piped("router", args, &out_fd, &err_fd);
	assert_true(pid > 0);
	rc = harness_read_listening(out_fd, &where, 5000);
	if (rc < 0) {
		harness_wait_exit(pid, 2000, &status);
		harness_read_until(err_fd, err, sizeof err, NULL, 1, 1000);
		close(out_fd);
		close(err_fd);
		exercise_fail("bin/router --balance first did not start: %s (see parse_balance() "
		              "and usage() in examples/router.c)", exercise_quote(err));
	}
	rc = harness_kill(pid, SIGTERM);
	close(out_fd);
	close(err_fd);
	exercise_check(rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0,
	               "bin/router --balance first did not end cleanly on SIGTERM");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exercise_first_sends_everything_to_the_oldest_tunnel),
		cmocka_unit_test(test_exercise_router_takes_balance_first),
	};

	return cmocka_run_group_tests_name("exercise 7", tests, harness_setup, harness_teardown);
}
