/*
 * test_websocket.c -- WebSockets through the router, with clients and
 * servers nobody here wrote: python3-websockets as the user (the script
 * tests/websocket/ws_client.py), bin/backend's /ws and /ws/clock (wslay)
 * behind the tunnel, and hypercorn (tests/websocket/asgi_echo.py) as an
 * independent RFC 8441 server, joined to the tunnel port by socat. The
 * error paths (a malformed handshake, another version, a refused upgrade,
 * a backend without extended CONNECT, an idle WebSocket) use raw sockets
 * and a python3-h2 backend (tests/websocket/h2_backend.py).
 *
 * Each test gets an in-process router on ephemeral ports and the child
 * processes it needs; the teardown ends every child (SIGTERM, then
 * SIGKILL after a bounded wait), reaps it, and frees the router, joining
 * its threads. Children die with the suite (PR_SET_PDEATHSIG).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "ptth.h"
#include "support/harness.h"

/* Debian's interpreter, which has python3-websockets, -hypercorn and -h2
 * (a python3 found first on PATH may be another one). */
#define PYTHON "/usr/bin/python3"
#define CLIENT "tests/websocket/ws_client.py"
#define RUN_TIMEOUT_MS 240000          /* a client finishing (TSan is slow) */
#define TERM_TIMEOUT_MS 3000           /* SIGTERM to SIGKILL */
#define MAX_PROCS 4
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* One child process; its stdout, and its stderr when asked, come back
 * through pipes. */
struct proc {
	pid_t pid;                /* 0 once reaped */
	int out, err;             /* read ends, or -1 */
	char text[16384];         /* what was read from out (or err) so far */
	size_t len;
};

/* What one test starts; the teardown undoes whatever is set. */
struct fixture {
	struct harness_router hr;
	struct proc procs[MAX_PROCS];
	size_t nprocs;
	struct proc *backend;     /* bin/backend, stderr piped, or NULL */
};

/* ---------------------------------------------------------------------
 * Child processes.
 */

/* Starts argv[0] (a path) with stdout, and stderr when pipe_err, in
 * pipes. Everything is prepared before fork(). Returns the process. */
static struct proc *
proc_start(struct fixture *f, const char *const argv[], bool pipe_err)
{
	struct proc *p;
	int out[2], err[2] = { -1, -1 };
	pid_t parent = getpid();

	assert_true(f->nprocs < MAX_PROCS);
	p = &f->procs[f->nprocs];
	memset(p, 0, sizeof *p);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	if (pipe_err)
		assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		dup2(out[1], 1);
		if (pipe_err)
			dup2(err[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	p->out = out[0];
	if (pipe_err)
		close(err[1]);
	p->err = err[0];
	f->nprocs++;
	return p;
}

/* Reads from fd into p->text until it holds want (NULL: until EOF) or
 * timeout_ms pass. Returns true when found (or EOF reached). */
static bool
proc_read_until(struct proc *p, int fd, const char *want, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	for (;;) {
		p->text[p->len] = '\0';
		if (want != NULL && strstr(p->text, want) != NULL)
			return true;
		long long left = deadline - harness_now_ms();
		if (left <= 0 || p->len >= sizeof p->text - 1)
			return false;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(fd, p->text + p->len, sizeof p->text - 1 - p->len);
		if (n <= 0)
			return want == NULL;
		p->len += (size_t)n;
	}
}

/* Ends p if it still runs (SIGTERM, then SIGKILL) and reaps it. Returns
 * its wait status. */
static int
proc_end(struct proc *p, int sig)
{
	int status = 0;

	if (p->pid != 0) {
		kill(p->pid, sig);
		for (int waited = 0; waitpid(p->pid, &status, WNOHANG) == 0; waited += 10) {
			if (waited >= TERM_TIMEOUT_MS) {
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &status, 0);
				break;
			}
			usleep(10 * 1000); /* a child that ignores SIGTERM; bounded */
		}
		p->pid = 0;
	}
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	p->out = p->err = -1;
	return status;
}

/* Waits for p to close its stdout (it exited), then reaps it. Returns
 * its wait status; a child still running after timeout_ms is killed and
 * the test fails with what it printed. */
static int
proc_wait(struct proc *p, int timeout_ms)
{
	int status;

	if (!proc_read_until(p, p->out, NULL, timeout_ms)) {
		proc_end(p, SIGKILL);
		fail_msg("child did not finish in %d ms; it printed: %s", timeout_ms, p->text);
	}
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	return status;
}

/* Runs ws_client.py MODE ws://router/PATH [ARG] and asserts it printed OK. */
static void
run_client(struct fixture *f, const char *mode, const char *path, long long arg)
{
	char url[256], number[32];
	const char *argv[] = { PYTHON, CLIENT, mode, url, arg ? number : NULL, NULL };
	struct proc *p;
	int status;

	snprintf(url, sizeof url, "ws://127.0.0.1:%d%s", f->hr.http_port, path);
	snprintf(number, sizeof number, "%lld", arg);
	p = proc_start(f, argv, false);
	status = proc_wait(p, RUN_TIMEOUT_MS);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(p->text, "OK ", 3) != 0)
		fail_msg("ws_client.py %s %s: status %d: %s", mode, url, status, p->text);
	print_message("ws_client.py %s: %s", mode, p->text);
}

/* ---------------------------------------------------------------------
 * Fixtures.
 */

/* A router only, with websocket_idle_timeout_ms when not 0. */
static struct fixture *
fixture_router(int idle_ms)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct ptth_router_options opts;

	assert_non_null(f);
	for (size_t i = 0; i < MAX_PROCS; i++)
		f->procs[i].out = f->procs[i].err = -1;
	ptth_router_options_init(&opts);
	opts.websocket_idle_timeout_ms = idle_ms;
	assert_int_equal(harness_router_start_opts(&f->hr, &opts), 0);
	return f;
}

/* Waits for a tunnel, then for one request through it: its backend's
 * SETTINGS came before its answer, so the router knows by then whether
 * the backend takes WebSockets. */
static void
fixture_wait_tunnel(struct fixture *f, const char *path, long want_status)
{
	char url[128];
	long status = 0;

	assert_int_equal(ptth_router_wait_tunnels(f->hr.router, 1, HARNESS_TIMEOUT_MS), 0);
	harness_url(&f->hr, path, url, sizeof url);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	assert_int_equal(status, want_status);
}

/* A router (websocket_idle_timeout_ms idle_ms, 0: the default) with
 * bin/backend, its stderr piped, dialled into it. */
static struct fixture *
fixture_backend(int idle_ms)
{
	struct fixture *f = fixture_router(idle_ms);
	const char *dir = getenv("PTTH_BIN_DIR");
	char router[64], path[4096];

	snprintf(path, sizeof path, "%s/backend", dir != NULL && dir[0] ? dir : "bin");
	snprintf(router, sizeof router, "127.0.0.1:%d", f->hr.tunnel_port);
	const char *argv[] = { path, "--router", router, "--no-reconnect", NULL };
	f->backend = proc_start(f, argv, true);
	fixture_wait_tunnel(f, "/foo", 200);
	return f;
}

static int
setup_backend(void **state)
{
	*state = fixture_backend(0);
	return 0;
}

/* The same with a router that closes WebSockets idle for 300 ms. */
static int
setup_backend_idle(void **state)
{
	*state = fixture_backend(300);
	return 0;
}

/* A router without a backend; the test brings its own. */
static int
setup_router_only(void **state)
{
	*state = fixture_router(0);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	for (size_t i = 0; i < f->nprocs; i++)
		proc_end(&f->procs[i], SIGTERM);
	harness_router_free(&f->hr);
	free(f);
	return 0;
}

/* Sends an opening handshake for path on a raw socket and returns the
 * socket; reply gets what comes back up to the end of the head. */
static int
raw_handshake(struct fixture *f, const char *path, const char *key, const char *version,
              char *reply, size_t cap)
{
	char request[512];
	size_t len = 0;
	int fd = harness_dial(f->hr.http_port);

	assert_true(fd >= 0);
	snprintf(request, sizeof request,
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
	         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	         "Sec-WebSocket-Version: %s\r\n\r\n", path, key, version);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	while (len < cap - 1 && strstr(reply, "\r\n\r\n") == NULL) {
		reply[len] = '\0';
		ssize_t n = recv(fd, reply + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		reply[len] = '\0';
	}
	reply[len] = '\0';
	return fd;
}

/* ---------------------------------------------------------------------
 * Through bin/backend, with python3-websockets as the user.
 */

static void
test_websocket_echoes_text_and_binary(void **state)
{
	run_client(*state, "echo", "/ws", 0);
}

static void
test_websocket_echoes_a_16_mib_message(void **state)
{
	run_client(*state, "big", "/ws", 16 << 20);
}

static void
test_websocket_carries_100_at_once_over_one_tunnel(void **state)
{
	struct fixture *f = *state;

	run_client(f, "many", "/ws", 100);
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 1);
}

static void
test_websocket_answers_ping_with_pong(void **state)
{
	run_client(*state, "ping", "/ws", 0);
}

static void
test_websocket_user_starts_the_close_handshake(void **state)
{
	struct fixture *f = *state;

	run_client(f, "close", "/ws", 0);
	assert_true(proc_read_until(f->backend, f->backend->err,
	                            "ws: /ws ended: close handshake done", HARNESS_TIMEOUT_MS));
}

static void
test_websocket_backend_starts_the_close_handshake(void **state)
{
	struct fixture *f = *state;

	run_client(f, "clock", "/ws/clock?n=2", 2);
	assert_true(proc_read_until(f->backend, f->backend->err,
	                            "ws: /ws/clock ended: close handshake done",
	                            HARNESS_TIMEOUT_MS));
}

/* The user dies with bytes unread: its kernel resets the connection, the
 * router resets the stream, and the clock handler's read sees it. */
static void
test_websocket_vanishing_user_resets_the_stream(void **state)
{
	struct fixture *f = *state;
	char url[256];
	const char *argv[] = { PYTHON, CLIENT, "vanish", url, NULL };
	int status;

	snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws/clock", f->hr.http_port);
	status = proc_wait(proc_start(f, argv, false), RUN_TIMEOUT_MS);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	if (!proc_read_until(f->backend, f->backend->err,
	                     "ws: /ws/clock ended: the stream was reset", HARNESS_TIMEOUT_MS))
		fail_msg("the handler did not see a reset; backend said: %s", f->backend->text);
}

/* Bytes stream through one WebSocket in both directions at once, and the
 * router's memory stays bounded: pipes and windows, never whole messages.
 * The router runs in this process, so this process's peak RSS bounds
 * it. 1 GiB by hand: see docs/PERFORMANCE.md. */
static void
test_websocket_streams_with_bounded_router_memory(void **state)
{
	long long total = harness_sanitized() ? 16LL << 20 : 128LL << 20;
	long hwm_kib = 0;
	bool peak_reset = harness_memory_reset_peak() == 0;

	run_client(*state, "stream", "/ws", total);
	assert_int_equal(harness_memory(NULL, &hwm_kib), 0);
	print_message("peak RSS %ld KiB after %lld bytes each way\n", hwm_kib, total);
	if (peak_reset && !harness_sanitized())
		assert_true(hwm_kib < 64 * 1024);
}

/* ---------------------------------------------------------------------
 * Error paths.
 */

/* Nothing of a refused handshake reaches the backend: the next request's
 * handler is the first the backend logs. */
static void
test_websocket_malformed_handshake_gets_400_and_reaches_no_backend(void **state)
{
	struct fixture *f = *state;
	char reply[2048] = "", url[128];
	long status = 0;
	int fd = raw_handshake(f, "/ws", "not-a-key", "13", reply, sizeof reply);

	assert_true(strncmp(reply, "HTTP/1.1 400 ", 13) == 0);
	assert_non_null(strstr(reply, "Sec-WebSocket-Key"));
	close(fd);
	harness_url(&f->hr, "/headers", url, sizeof url);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	assert_true(proc_read_until(f->backend, f->backend->err, "handling: /headers",
	                            HARNESS_TIMEOUT_MS));
	assert_null(strstr(f->backend->text, "handling: /ws"));
}

static void
test_websocket_other_version_gets_426_naming_version_13(void **state)
{
	char reply[2048] = "";
	int fd = raw_handshake(*state, "/ws", RFC_KEY, "8", reply, sizeof reply);

	assert_true(strncmp(reply, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
	assert_non_null(strstr(reply, "\r\nSec-WebSocket-Version: 13\r\n"));
	close(fd);
}

/* A backend answer other than 2xx is passed on as an ordinary response
 * (here the mux's 404), and the connection closes after it. */
static void
test_websocket_refused_upgrade_is_an_ordinary_response(void **state)
{
	char reply[4096] = "";
	int fd = raw_handshake(*state, "/no-such-socket", RFC_KEY, "13", reply, sizeof reply);

	assert_true(strncmp(reply, "HTTP/1.1 404 ", 13) == 0);
	assert_non_null(strstr(reply, "Connection: close"));
	assert_true(harness_recv_until_close(fd, reply, sizeof reply) >= 0);
	close(fd);
}

/* The accepted handshake's 101 carries the accept value RFC 6455 gives
 * for its example key; then a WebSocket on which nothing moves is closed
 * after websocket_idle_timeout_ms, and its stream reset. */
static void
test_websocket_idle_connection_is_closed_and_reset(void **state)
{
	struct fixture *f = *state;
	char reply[4096] = "";
	int fd = raw_handshake(f, "/ws", RFC_KEY, "13", reply, sizeof reply);

	assert_true(strncmp(reply, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
	assert_non_null(strstr(reply, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	assert_non_null(strstr(reply, "\r\nUpgrade: websocket\r\n"));
	assert_true(harness_recv_until_close(fd, reply, sizeof reply) >= 0);
	close(fd);
	assert_true(proc_read_until(f->backend, f->backend->err,
	                            "ws: /ws ended: the stream was reset", HARNESS_TIMEOUT_MS));
}

/* A backend whose SETTINGS do not enable extended CONNECT never gets a
 * WebSocket: the user gets 501, while ordinary requests still go there. */
static void
test_websocket_without_a_capable_backend_gets_501(void **state)
{
	struct fixture *f = *state;
	char port[16], reply[2048] = "";
	const char *argv[] = { PYTHON, "tests/websocket/h2_backend.py", port, NULL };
	struct proc *backend;
	int fd;

	snprintf(port, sizeof port, "%d", f->hr.tunnel_port);
	backend = proc_start(f, argv, true);
	fixture_wait_tunnel(f, "/anything", 200);
	fd = raw_handshake(f, "/ws", RFC_KEY, "13", reply, sizeof reply);
	assert_true(strncmp(reply, "HTTP/1.1 501 Not Implemented\r\n", 30) == 0);
	assert_non_null(strstr(reply, "WebSockets"));
	close(fd);
	fixture_wait_tunnel(f, "/still-there", 200);
	proc_end(backend, SIGTERM);
	assert_null(strstr(backend->text, "extended CONNECT"));
}

/* ---------------------------------------------------------------------
 * An independent RFC 8441 server: hypercorn, over h2c, through socat.
 */

static void
test_websocket_echoes_through_hypercorn(void **state)
{
	struct fixture *f = *state;
	const char *server[] = { PYTHON, "tests/websocket/asgi_echo.py", NULL };
	char tunnel[64], target[64];
	const char *socat[] = { "/usr/bin/socat", tunnel, target, NULL };
	struct proc *hc = proc_start(f, server, false);
	int port = 0;

	if (!proc_read_until(hc, hc->out, "\n", HARNESS_TIMEOUT_MS) ||
	    sscanf(hc->text, "PORT %d", &port) != 1)
		fail_msg("asgi_echo.py did not say its port: %s", hc->text);
	snprintf(tunnel, sizeof tunnel, "TCP:127.0.0.1:%d,nodelay", f->hr.tunnel_port);
	snprintf(target, sizeof target, "TCP:127.0.0.1:%d,nodelay", port);
	proc_start(f, socat, false);
	fixture_wait_tunnel(f, "/plain", 200);
	run_client(f, "hypercorn", "/ws", 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define WITH_BACKEND(t) cmocka_unit_test_setup_teardown(t, setup_backend, teardown)
		WITH_BACKEND(test_websocket_echoes_text_and_binary),
		WITH_BACKEND(test_websocket_echoes_a_16_mib_message),
		WITH_BACKEND(test_websocket_carries_100_at_once_over_one_tunnel),
		WITH_BACKEND(test_websocket_answers_ping_with_pong),
		WITH_BACKEND(test_websocket_user_starts_the_close_handshake),
		WITH_BACKEND(test_websocket_backend_starts_the_close_handshake),
		WITH_BACKEND(test_websocket_vanishing_user_resets_the_stream),
		WITH_BACKEND(test_websocket_streams_with_bounded_router_memory),
		WITH_BACKEND(test_websocket_malformed_handshake_gets_400_and_reaches_no_backend),
		WITH_BACKEND(test_websocket_other_version_gets_426_naming_version_13),
		WITH_BACKEND(test_websocket_refused_upgrade_is_an_ordinary_response),
		cmocka_unit_test_setup_teardown(test_websocket_idle_connection_is_closed_and_reset,
		                                setup_backend_idle, teardown),
		cmocka_unit_test_setup_teardown(test_websocket_without_a_capable_backend_gets_501,
		                                setup_router_only, teardown),
		cmocka_unit_test_setup_teardown(test_websocket_echoes_through_hypercorn,
		                                setup_router_only, teardown),
#undef WITH_BACKEND
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
