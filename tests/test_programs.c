/*
 * test_programs.c -- bin/router, bin/backend and bin/user as a shell or a
 * service manager sees them: what they print, and their exit statuses.
 *
 * What is proved here, one behaviour per test:
 *   - bin/router's "Listening" lines name the address it bound, with the
 *     port the kernel chose for port 0; it exits 0 after a SIGINT drain,
 *     and 2 with one line on stderr for a bad flag or a port in use;
 *   - bin/backend --no-reconnect exits 0 when the router ends the tunnel
 *     and after SIGTERM, 1 when the router cannot be reached or the tunnel
 *     fails; redialling, it exits 0 on SIGINT; a bad flag is 2 and one line;
 *   - bin/user exits 0 when every request was answered (any status), 1
 *     when there is no router to answer, 2 and one line for a bad flag.
 *
 * The programs come from PTTH_BIN_DIR (harness_spawn_piped()) and are
 * killed with the suite if it dies. Each test reaps its children before
 * asserting, so a failure leaves none behind. Routers and the fake router
 * bind 127.0.0.1 port 0; "no router" is a port bound but not listening
 * (harness_port_reserve()), so every dial to it is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/harness.h"

#define WAIT_MS HARNESS_TIMEOUT_MS  /* bound for waits that should be quick */
#define OUTPUT_CAP 8192

/* One run of a program: its output and how it ended. */
struct run {
	int wait_rc;             /* harness_wait_exit()'s result */
	int status;              /* the wait status when wait_rc is 0 */
	char out[OUTPUT_CAP];    /* stdout */
	char err[OUTPUT_CAP];    /* stderr */
	char how[64];            /* "exit status 1" and so on, for messages */
};

/* Reads what is left on fd (until end of file, at most WAIT_MS) into buf,
 * after what it holds already, and closes fd. */
static void
drain_into(int fd, char *buf, size_t cap)
{
	size_t len = strlen(buf);

	if (fd < 0)
		return;
	harness_read_until(fd, buf + len, cap - len, NULL, 0, WAIT_MS);
	close(fd);
}

/* Waits for pid to exit, reads the rest of both pipes and describes the
 * end in run. Closes both fds. */
static void
run_finish(struct run *run, pid_t pid, int out_fd, int err_fd)
{
	drain_into(out_fd, run->out, sizeof run->out);
	drain_into(err_fd, run->err, sizeof run->err);
	run->wait_rc = harness_wait_exit(pid, WAIT_MS, &run->status);
	harness_describe_exit(run->wait_rc, run->status, run->how, sizeof run->how);
}

/* Runs prog with args until it exits by itself. Returns 0, or the
 * negative code of a failed start. */
static int
run_program(const char *prog, const char *const args[], struct run *run)
{
	int out_fd = -1, err_fd = -1;
	pid_t pid;

	memset(run, 0, sizeof *run);
	pid = harness_spawn_piped(prog, args, &out_fd, &err_fd);
	if (pid < 0)
		return (int)pid;
	run_finish(run, pid, out_fd, err_fd);
	return 0;
}

/* Sends sig to a running program, then finishes the run. */
static void
run_signal(struct run *run, pid_t pid, int sig, int out_fd, int err_fd)
{
	kill(pid, sig);
	run_finish(run, pid, out_fd, err_fd);
}

/* The program's exit status, or -1 when it did not exit normally. */
static int
exit_status(const struct run *run)
{
	if (run->wait_rc < 0 || !WIFEXITED(run->status))
		return -1;
	return WEXITSTATUS(run->status);
}

/* True when text is exactly one line and it starts with prefix. */
static bool
is_one_line(const char *text, const char *prefix)
{
	const char *nl = strchr(text, '\n');

	return strncmp(text, prefix, strlen(prefix)) == 0 && nl != NULL && nl[1] == '\0';
}

/* True when the last line of text starts with prefix. */
static bool
last_line_starts(const char *text, const char *prefix)
{
	size_t len = strlen(text);
	const char *line;

	if (len == 0 || text[len - 1] != '\n')
		return false;
	for (line = text + len - 1; line > text && line[-1] != '\n'; line--)
		;
	return strncmp(line, prefix, strlen(prefix)) == 0;
}

static void
print_run(const char *what, const struct run *run)
{
	print_message("%s: %s\n--- stdout:\n%s--- stderr:\n%s---\n", what, run->how, run->out,
	              run->err);
}

/* ---------------------------------------------------------------------
 * bin/router
 */

/* Starts bin/router with args and reads its two "Listening" lines.
 * Returns the pid, or a negative code (the child is then reaped). */
static pid_t
router_spawn(const char *const args[], struct harness_listening *lines, int *out_fd,
             int *err_fd)
{
	pid_t pid = harness_spawn_piped("router", args, out_fd, err_fd);
	int rc;

	if (pid < 0)
		return pid;
	rc = harness_read_listening(*out_fd, lines, WAIT_MS);
	if (rc < 0) {
		harness_kill(pid, SIGKILL);
		close(*out_fd);
		close(*err_fd);
		return rc;
	}
	return pid;
}

/* True when something accepts a TCP connection on 127.0.0.1:port. */
static bool
port_accepts(int port)
{
	int fd = harness_dial(port);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static void
test_programs_router_prints_the_addresses_it_bound(void **state)
{
	const char *args[] = { "--http", "127.0.0.1:0", "--tunnels", "localhost:0", "--quiet",
	                       NULL };
	struct harness_listening lines = { 0 };
	struct run run = { 0 };
	int out_fd = -1, err_fd = -1;
	bool http_ok = false, tunnel_ok = false;

	(void)state;
	pid_t pid = router_spawn(args, &lines, &out_fd, &err_fd);
	assert_true(pid > 0);
	/* The ports printed are the ones bound: something answers there. */
	http_ok = port_accepts(lines.http_port);
	tunnel_ok = port_accepts(lines.tunnel_port);
	run_signal(&run, pid, SIGTERM, out_fd, err_fd);

	print_message("printed tcp://%s and http://%s\n", lines.tunnel_addr, lines.http_addr);
	/* The host as the flag names it: a name stays a name, as with the
	 * defaults ("localhost:8887"); an address is printed as bound. */
	assert_int_equal(strncmp(lines.tunnel_addr, "localhost:", 10), 0);
	assert_int_equal(strncmp(lines.http_addr, "127.0.0.1:", 10), 0);
	assert_true(http_ok);
	assert_true(tunnel_ok);
	assert_int_equal(exit_status(&run), 0);
}

static void
test_programs_router_exits_0_after_sigint_with_an_idle_user(void **state)
{
	const char *args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0", "--quiet",
	                       NULL };
	struct harness_listening lines = { 0 };
	struct run run = { 0 };
	int out_fd = -1, err_fd = -1;

	(void)state;
	pid_t pid = router_spawn(args, &lines, &out_fd, &err_fd);
	assert_true(pid > 0);
	/* A keep-alive user that sent nothing: the drain closes it. */
	int user = harness_dial(lines.http_port);
	run_signal(&run, pid, SIGINT, out_fd, err_fd);
	if (user >= 0)
		close(user);

	print_run("router after SIGINT", &run);
	assert_true(user >= 0);
	assert_int_equal(exit_status(&run), 0);
	assert_true(is_one_line(run.err, "router: Interrupt"));
}

static void
test_programs_router_bad_flag_is_status_2_and_one_line(void **state)
{
	const char *unknown[] = { "--no-such-flag", NULL };
	const char *bad_value[] = { "--max-conns", "many", NULL };
	struct run a, b;

	(void)state;
	assert_int_equal(run_program("router", unknown, &a), 0);
	assert_int_equal(run_program("router", bad_value, &b), 0);

	print_run("router --no-such-flag", &a);
	print_run("router --max-conns many", &b);
	assert_int_equal(exit_status(&a), 2);
	assert_true(is_one_line(a.err, "router: "));
	assert_int_equal(exit_status(&b), 2);
	assert_true(is_one_line(b.err, "router: "));
	assert_string_equal(a.out, "");
}

static void
test_programs_router_port_in_use_is_status_2_and_one_line(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	char addr[32];
	const char *args[] = { "--http", addr, "--tunnels", "127.0.0.1:0", NULL };
	struct run run;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)state;
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	int started = run_program("router", args, &run);
	close(fd);

	print_run("router on a port in use", &run);
	assert_int_equal(started, 0);
	assert_int_equal(exit_status(&run), 2);
	assert_true(is_one_line(run.err, "router: cannot listen"));
	assert_string_equal(run.out, "");
}

/* ---------------------------------------------------------------------
 * bin/backend
 */

/* Starts bin/backend dialling 127.0.0.1:port; no_reconnect adds
 * --no-reconnect. Returns the pid or a negative code. */
static pid_t
backend_spawn(int port, bool no_reconnect, int *out_fd, int *err_fd)
{
	char addr[32];
	const char *args[] = { "--router", addr, "--backoff-max-ms", "200",
	                       no_reconnect ? "--no-reconnect" : NULL, NULL };

	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	return harness_spawn_piped("backend", args, out_fd, err_fd);
}

/* Starts a router in this process and a bin/backend --no-reconnect
 * that dials it, and waits for the tunnel. Returns the backend's pid or
 * a negative code (the backend is then reaped, the router left to the
 * caller to free). */
static pid_t
backend_spawn_connected(struct harness_router *hr, int *out_fd, int *err_fd)
{
	pid_t pid;
	int rc = harness_router_start(hr);

	if (rc < 0)
		return rc;
	pid = backend_spawn(hr->tunnel_port, true, out_fd, err_fd);
	if (pid < 0)
		return pid;
	rc = ptth_router_wait_tunnels(hr->router, 1, WAIT_MS);
	if (rc < 0) {
		harness_kill(pid, SIGKILL);
		close(*out_fd);
		close(*err_fd);
		return rc;
	}
	return pid;
}

/* True when GET /foo through hr answers 200. */
static bool
get_foo(struct harness_router *hr)
{
	char url[128];
	long status = 0;

	harness_url(hr, "/foo", url, sizeof url);
	return http_get(url, &status, NULL, 0, NULL) == CURLE_OK && status == 200;
}

static void
test_programs_backend_without_reconnect_exits_0_when_the_router_stops(void **state)
{
	struct harness_router hr = { 0 };
	struct run run = { 0 };
	int out_fd = -1, err_fd = -1;

	(void)state;
	pid_t pid = backend_spawn_connected(&hr, &out_fd, &err_fd);
	if (pid < 0)
		harness_router_free(&hr);
	assert_true(pid > 0);
	/* One request first, so that every frame of the handshake has been
	 * read: the router then ends an idle tunnel with GOAWAY and a close,
	 * for the backend a clean end of its one tunnel. */
	bool served = get_foo(&hr);
	ptth_router_shutdown(hr.router);
	harness_router_free(&hr);
	run_finish(&run, pid, out_fd, err_fd);

	print_run("backend --no-reconnect after the router stopped", &run);
	assert_true(served);
	assert_int_equal(exit_status(&run), 0);
}

static void
test_programs_backend_without_reconnect_exits_0_after_sigterm(void **state)
{
	struct harness_router hr = { 0 };
	struct run run = { 0 };
	int out_fd = -1, err_fd = -1;

	(void)state;
	pid_t pid = backend_spawn_connected(&hr, &out_fd, &err_fd);
	if (pid > 0)
		run_signal(&run, pid, SIGTERM, out_fd, err_fd);
	harness_router_free(&hr);

	print_run("backend --no-reconnect after SIGTERM", &run);
	assert_true(pid > 0);
	assert_int_equal(exit_status(&run), 0);
	assert_non_null(strstr(run.err, "backend: Terminated, draining\n"));
	assert_null(strstr(run.err, "backend: tunnel to"));
}

static void
test_programs_backend_redialling_exits_0_after_sigint(void **state)
{
	char log[OUTPUT_CAP];
	struct run run = { 0 };
	int port = 0, out_fd = -1, err_fd = -1;
	int reserved = harness_port_reserve(&port);

	(void)state;
	assert_true(reserved >= 0);
	pid_t pid = backend_spawn(port, false, &out_fd, &err_fd);
	int dialled = -1;
	if (pid > 0) {
		/* Once it has dialled in vain it is waiting to redial. */
		dialled = harness_read_until(err_fd, log, sizeof log, "failed", 1, WAIT_MS);
		run_signal(&run, pid, SIGINT, out_fd, err_fd);
	}
	close(reserved);

	print_run("redialling backend after SIGINT", &run);
	assert_true(pid > 0);
	assert_int_equal(dialled, 0);
	assert_int_equal(exit_status(&run), 0);
}

static void
test_programs_backend_without_reconnect_and_router_exits_1(void **state)
{
	char addr[32];
	const char *args[] = { "--router", addr, "--no-reconnect", NULL };
	struct run run;
	int port = 0;
	int reserved = harness_port_reserve(&port);

	(void)state;
	assert_true(reserved >= 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	int started = run_program("backend", args, &run);
	close(reserved);

	print_run("backend --no-reconnect with no router", &run);
	assert_int_equal(started, 0);
	assert_int_equal(exit_status(&run), 1);
	assert_true(last_line_starts(run.err, "backend: cannot reach the router"));
}

/* Accepts one connection on lfd within WAIT_MS. Returns it or -1. */
static int
accept_within(int lfd)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	if (poll(&pfd, 1, WAIT_MS) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void
test_programs_backend_without_reconnect_exits_1_when_the_tunnel_fails(void **state)
{
	static const char garbage[] = "HTTP/1.1 400 Not a router\r\n\r\n";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	struct run run = { 0 };
	int out_fd = -1, err_fd = -1, conn = -1, sent = -1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)state;
	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	/* A fake router that answers the tunnel with HTTP/1.1 instead of the
	 * HTTP/2 client preface: the backend's session fails. */
	pid_t pid = backend_spawn(ntohs(sa.sin_port), true, &out_fd, &err_fd);
	if (pid > 0)
		conn = accept_within(lfd);
	if (conn >= 0)
		sent = harness_send_all(conn, garbage, sizeof garbage - 1);
	if (pid > 0)
		run_finish(&run, pid, out_fd, err_fd);
	if (conn >= 0)
		close(conn);
	close(lfd);

	print_run("backend --no-reconnect whose tunnel failed", &run);
	assert_true(pid > 0);
	assert_true(conn >= 0);
	assert_int_equal(sent, 0);
	assert_int_equal(exit_status(&run), 1);
	assert_true(last_line_starts(run.err, "backend: tunnel to "));
}

static void
test_programs_backend_bad_flag_is_status_2_and_one_line(void **state)
{
	const char *unknown[] = { "--no-such-flag", NULL };
	const char *bad_value[] = { "--tunnels", "-3", NULL };
	struct run a, b;

	(void)state;
	assert_int_equal(run_program("backend", unknown, &a), 0);
	assert_int_equal(run_program("backend", bad_value, &b), 0);

	print_run("backend --no-such-flag", &a);
	print_run("backend --tunnels -3", &b);
	assert_int_equal(exit_status(&a), 2);
	assert_true(is_one_line(a.err, "backend: "));
	assert_int_equal(exit_status(&b), 2);
	assert_true(is_one_line(b.err, "backend: "));
}

/* ---------------------------------------------------------------------
 * bin/user
 */

static void
test_programs_user_exits_0_when_every_request_is_answered(void **state)
{
	char url[128];
	const char *args[] = { "--url", url, "-n", "3", NULL };
	struct harness_router hr = { 0 };
	struct harness_backend *hb = NULL;
	struct run run;
	int started = -1;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	hb = harness_backend_start(&hr, "b1");
	harness_url(&hr, "/foo", url, sizeof url);
	if (hb != NULL)
		started = run_program("user", args, &run);
	harness_backend_free(hb);
	harness_router_free(&hr);

	print_run("user -n 3 through a router", &run);
	assert_non_null(hb);
	assert_int_equal(started, 0);
	assert_int_equal(exit_status(&run), 0);
	assert_non_null(strstr(run.out, "< 200 OK \"bar\"\n"));
}

static void
test_programs_user_exits_1_without_a_router(void **state)
{
	char url[128];
	const char *args[] = { "--url", url, "-n", "2", NULL };
	struct run run;
	int port = 0;
	int reserved = harness_port_reserve(&port);

	(void)state;
	assert_true(reserved >= 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", port);
	int started = run_program("user", args, &run);
	close(reserved);

	print_run("user with no router", &run);
	assert_int_equal(started, 0);
	assert_int_equal(exit_status(&run), 1);
	assert_non_null(strstr(run.out, "< error: "));
}

static void
test_programs_user_bad_flag_is_status_2_and_one_line(void **state)
{
	const char *unknown[] = { "--no-such-flag", NULL };
	const char *bad_value[] = { "-n", "0", NULL };
	struct run a, b;

	(void)state;
	assert_int_equal(run_program("user", unknown, &a), 0);
	assert_int_equal(run_program("user", bad_value, &b), 0);

	print_run("user --no-such-flag", &a);
	print_run("user -n 0", &b);
	assert_int_equal(exit_status(&a), 2);
	assert_true(is_one_line(a.err, "user: "));
	assert_int_equal(exit_status(&b), 2);
	assert_true(is_one_line(b.err, "user: "));
	assert_string_equal(a.out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_programs_router_prints_the_addresses_it_bound),
		cmocka_unit_test(test_programs_router_exits_0_after_sigint_with_an_idle_user),
		cmocka_unit_test(test_programs_router_bad_flag_is_status_2_and_one_line),
		cmocka_unit_test(test_programs_router_port_in_use_is_status_2_and_one_line),
		cmocka_unit_test(test_programs_backend_without_reconnect_exits_0_when_the_router_stops),
		cmocka_unit_test(test_programs_backend_without_reconnect_exits_0_after_sigterm),
		cmocka_unit_test(test_programs_backend_redialling_exits_0_after_sigint),
		cmocka_unit_test(test_programs_backend_without_reconnect_and_router_exits_1),
		cmocka_unit_test(test_programs_backend_without_reconnect_exits_1_when_the_tunnel_fails),
		cmocka_unit_test(test_programs_backend_bad_flag_is_status_2_and_one_line),
		cmocka_unit_test(test_programs_user_exits_0_when_every_request_is_answered),
		cmocka_unit_test(test_programs_user_exits_1_without_a_router),
		cmocka_unit_test(test_programs_user_bad_flag_is_status_2_and_one_line),
	};
	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
