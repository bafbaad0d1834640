/*
 * test_services.c -- tunnels that introduce themselves: the PTTH
 * handshake end to end, named services routed by Host, tokens, raw and
 * handshake tunnels side by side, and an independent dialler written
 * with python3-h2 (tests/peers/ptth_dialler.py).
 *
 * Owns:    per test, a router on 127.0.0.1:0 (tests/support/harness.c),
 *          its backends, a tokens file under /tmp, and at most one child
 *          process (the Python dialler), all ended by the test itself.
 * Threads: the test thread runs every assertion; backends run on the
 *          library's threads, joined when they are freed.
 * Locks:   none of its own.
 * Interface: users are raw sockets speaking HTTP/1.0 (so that a /who
 *          answer is close-delimited and easy to read), diallers are
 *          in-process backends with a service and a token, raw sockets
 *          for the refusals, and a fake router for the redial backoff.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptth.h"
#include "pool.h"
#include "services.h"
#include "support/harness.h"

extern char **environ;

#define WAIT_MS 20000
/* Debian's interpreter, where the python3-h2 package installs h2 (a
 * python3 earlier on PATH, from a virtualenv or pyenv, may lack it). */
#define PYTHON3 "/usr/bin/python3"

/* A user's answer: status and body (after the blank line). */
struct answer {
	int status;
	char text[4096];
	const char *body;
};

/* Sends "GET path HTTP/1.0" with Host host (NULL: none) to the router's
 * user port and reads the whole answer. */
static void
ask(const struct harness_router *hr, const char *host, const char *path, struct answer *a)
{
	char req[512];
	int fd = harness_dial(hr->http_port);
	ssize_t n;

	assert_true(fd >= 0);
	snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n%s%s%s\r\n", path, host ? "Host: " : "",
	         host ? host : "", host ? "\r\n" : "");
	assert_int_equal(harness_send_all(fd, req, strlen(req)), 0);
	n = harness_recv_until_close(fd, a->text, sizeof a->text);
	close(fd);
	assert_true(n > 12);
	a->status = atoi(a->text + 9);
	a->body = strstr(a->text, "\r\n\r\n");
	a->body = a->body ? a->body + 4 : "";
}

/* Writes text to a new file under /tmp; path (at least 32 bytes) gets its name. */
static void
write_tokens(char *path, const char *text)
{
	int fd;

	strcpy(path, "/tmp/ptth-tokens-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Starts a router with round-robin balancing (so that every backend of a
 * pool is seen), tokens_path (NULL: none) and allow_raw. */
static void
start_router(struct harness_router *hr, const char *tokens_path, int allow_raw)
{
	struct ptth_router_options opts;

	ptth_router_options_init(&opts);
	opts.balance = PTTH_BALANCE_ROUND_ROBIN;
	opts.tunnel_tokens_file = tokens_path;
	opts.allow_raw_tunnels = allow_raw;
	assert_int_equal(harness_router_start_opts(hr, &opts), 0);
}

static struct harness_backend *
greeting_backend(struct harness_router *hr, const char *name, const char *service,
                 const char *token)
{
	int rc = -1;
	struct harness_backend *hb = harness_backend_start_greeting(hr, name, service, token, &rc);

	if (hb == NULL)
		fail_msg("backend %s for %s: %s", name, service ? service : "default",
		         ptth_strerror(rc));
	return hb;
}

/* Asks /who n times with host, and says whether both names answered and
 * nothing else did. */
static void
assert_pool_is(const struct harness_router *hr, const char *host, const char *one,
               const char *two)
{
	bool saw_one = false, saw_two = false;
	struct answer a;

	for (int i = 0; i < 8; i++) {
		ask(hr, host, "/who", &a);
		assert_int_equal(a.status, 200);
		if (strcmp(a.body, one) == 0)
			saw_one = true;
		else if (two != NULL && strcmp(a.body, two) == 0)
			saw_two = true;
		else
			fail_msg("Host %s reached \"%s\"", host, a.body);
	}
	assert_true(saw_one);
	assert_true(two == NULL || saw_two);
}

/* ---------------------------------------------------------------------
 * Routing.
 */

/* services.c alone: a Host becomes a name, and only known services
 * (listed, or with a tunnel) get their pool. */
static void
test_services_host_names_and_known_services(void **state)
{
	struct services s;
	struct pool fallback;
	struct service *svc;
	char name[300], long_host[300];

	(void)state;
	services_host_name("API.Example:8080", name, sizeof name);
	assert_string_equal(name, "api.example");
	services_host_name("[::1]:80", name, sizeof name);
	assert_string_equal(name, "");
	services_host_name(NULL, name, sizeof name);
	assert_string_equal(name, "");
	memset(long_host, 'a', 260);
	long_host[260] = '\0';
	services_host_name(long_host, name, sizeof name);
	assert_string_equal(name, "");
	pool_init(&fallback, PTTH_BALANCE_RANDOM);
	services_init(&s, &fallback, PTTH_BALANCE_RANDOM);
	svc = services_get(&s, "api", true);
	assert_non_null(svc);
	assert_ptr_equal(services_get(&s, "api", false), svc);
	assert_null(services_route(&s, "api"));     /* no tunnel, not listed */
	services_joined(&s, svc);
	assert_ptr_equal(services_route(&s, "api"), &svc->pool);
	assert_int_equal(services_count(&s, "api"), 1);
	assert_int_equal(services_count(&s, NULL), 1);
	services_left(&s, svc);
	assert_null(services_route(&s, "api"));
	assert_null(services_route(&s, ""));
	assert_int_equal(services_wait(&s, NULL, 0, false, 10), 0);
	assert_int_equal(services_wait(&s, NULL, 1, true, 10), -ETIMEDOUT);
	/* At most SERVICES_MAX pools, however many names diallers make up. */
	for (int i = 1; i < SERVICES_MAX; i++) {
		snprintf(name, sizeof name, "s%d", i);
		assert_non_null(services_get(&s, name, true));
	}
	assert_null(services_get(&s, "one-too-many", true));
	assert_non_null(services_get(&s, "api", true));
	services_destroy(&s);
	pool_destroy(&fallback);
}

static void
test_services_two_services_with_two_backends_each_are_routed_by_host(void **state)
{
	struct harness_router hr;
	struct harness_backend *b[4];
	struct answer a;

	(void)state;
	start_router(&hr, NULL, 0);
	b[0] = greeting_backend(&hr, "api-1", "api", NULL);
	b[1] = greeting_backend(&hr, "api-2", "api", NULL);
	b[2] = greeting_backend(&hr, "web-1", "web.example", NULL);
	b[3] = greeting_backend(&hr, "web-2", "web.example", NULL);
	assert_int_equal(ptth_router_service_tunnel_count(hr.router, "api"), 2);
	assert_int_equal(ptth_router_service_tunnel_count(hr.router, "web.example"), 2);
	assert_int_equal(ptth_router_service_tunnel_count(hr.router, ""), 0);
	assert_pool_is(&hr, "api", "api-1", "api-2");
	assert_pool_is(&hr, "web.example", "web-1", "web-2");
	/* Without port, lower-cased. */
	assert_pool_is(&hr, "API:8888", "api-1", "api-2");
	assert_pool_is(&hr, "Web.Example", "web-1", "web-2");
	/* Any other host goes to the default pool, empty here. */
	ask(&hr, "other", "/who", &a);
	assert_int_equal(a.status, 503);
	assert_string_equal(a.body, "503 Service Unavailable: Server at capacity\n");
	for (int i = 0; i < 4; i++)
		harness_backend_free(b[i]);
	harness_router_free(&hr);
}

static void
test_services_raw_and_handshake_tunnels_share_one_router(void **state)
{
	struct harness_router hr;
	struct harness_backend *raw, *api, *plain;

	(void)state;
	start_router(&hr, NULL, 0);
	raw = harness_backend_start(&hr, "raw");
	api = greeting_backend(&hr, "api", "api", NULL);
	plain = greeting_backend(&hr, "plain-handshake", NULL, "some-token");
	assert_non_null(raw);
	assert_int_equal(ptth_router_service_tunnel_count(hr.router, ""), 2);
	assert_pool_is(&hr, "api", "api", NULL);
	assert_pool_is(&hr, "anything.else", "raw", "plain-handshake");
	assert_pool_is(&hr, NULL, "raw", "plain-handshake");
	harness_backend_free(api);
	/* With its last tunnel gone, and no tokens file naming it, "api" is
	 * unknown again: its users go to the default pool. */
	assert_int_equal(ptth_router_wait_tunnels_at_most(hr.router, 2, WAIT_MS), 0);
	assert_pool_is(&hr, "api", "raw", "plain-handshake");
	harness_backend_free(raw);
	harness_backend_free(plain);
	harness_router_free(&hr);
}

static void
test_services_listed_service_without_tunnel_is_503_naming_it(void **state)
{
	struct harness_router hr;
	struct answer a;
	char path[32];

	(void)state;
	write_tokens(path, "t1 api,web\n");
	start_router(&hr, path, 0);
	ask(&hr, "web:80", "/who", &a);
	assert_int_equal(a.status, 503);
	assert_string_equal(a.body, "503 Service Unavailable: no tunnel for service web\n");
	assert_non_null(strstr(a.text, "Retry-After: 1\r\n"));
	ask(&hr, "elsewhere", "/who", &a);
	assert_int_equal(a.status, 503);
	assert_string_equal(a.body, "503 Service Unavailable: Server at capacity\n");
	harness_router_free(&hr);
	unlink(path);
}

/* ---------------------------------------------------------------------
 * Tokens.
 */

static void
test_services_tokens_missing_wrong_for_another_service_and_right(void **state)
{
	struct harness_router hr;
	struct harness_backend *hb;
	char path[32];
	int rc;

	(void)state;
	write_tokens(path, "# tokens\napi-token api\nweb-token web\n");
	start_router(&hr, path, 0);
	hb = harness_backend_start_greeting(&hr, "x", "api", NULL, &rc);
	assert_null(hb);
	assert_int_equal(rc, PTTH_EAUTH);
	hb = harness_backend_start_greeting(&hr, "x", "api", "not-a-token", &rc);
	assert_null(hb);
	assert_int_equal(rc, PTTH_EAUTH);
	hb = harness_backend_start_greeting(&hr, "x", "api", "web-token", &rc);
	assert_null(hb);
	assert_int_equal(rc, PTTH_EFORBIDDEN);
	hb = harness_backend_start_greeting(&hr, "x", NULL, "api-token", &rc);
	assert_null(hb);
	assert_int_equal(rc, PTTH_EFORBIDDEN); /* the default pool needs "*" */
	assert_int_equal(ptth_router_tunnel_count(hr.router), 0);
	hb = greeting_backend(&hr, "api-1", "api", "api-token");
	assert_pool_is(&hr, "api", "api-1", NULL);
	harness_backend_free(hb);
	harness_router_free(&hr);
	unlink(path);
}

static void
test_services_tokens_refuse_raw_tunnels_unless_allowed(void **state)
{
	static const char settings[] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };
	struct harness_router hr;
	struct harness_backend *hb;
	char path[32], buf[256];
	int fd;

	(void)state;
	write_tokens(path, "any *\n");
	start_router(&hr, path, 0);
	/* A raw dialler's SETTINGS: the router closes without a word. */
	fd = harness_dial(hr.tunnel_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, settings, sizeof settings), 0);
	assert_int_equal(harness_recv_until_close(fd, buf, sizeof buf), 0);
	close(fd);
	assert_int_equal(ptth_router_tunnel_count(hr.router), 0);
	hb = greeting_backend(&hr, "star", NULL, "any");
	assert_pool_is(&hr, "whatever", "star", NULL);
	harness_backend_free(hb);
	harness_router_free(&hr);
	start_router(&hr, path, 1);
	hb = harness_backend_start(&hr, "raw");
	assert_non_null(hb);
	assert_pool_is(&hr, "whatever", "raw", NULL);
	harness_backend_free(hb);
	harness_router_free(&hr);
	unlink(path);
}

static void
test_services_reload_takes_new_tokens_and_keeps_live_tunnels(void **state)
{
	struct harness_router hr;
	struct harness_backend *old, *hb;
	char path[32];
	int rc;

	(void)state;
	write_tokens(path, "first api\n");
	start_router(&hr, path, 0);
	old = greeting_backend(&hr, "old", "api", "first");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("second api\n", f);
	fclose(f);
	assert_int_equal(ptth_router_reload_tokens(hr.router), 0);
	hb = harness_backend_start_greeting(&hr, "x", "api", "first", &rc);
	assert_null(hb);
	assert_int_equal(rc, PTTH_EAUTH);
	hb = greeting_backend(&hr, "new", "api", "second");
	assert_pool_is(&hr, "api", "old", "new");
	/* A broken file leaves the tokens in force. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("broken line with three words\n", f);
	fclose(f);
	assert_int_equal(ptth_router_reload_tokens(hr.router), -EINVAL);
	harness_backend_free(hb);
	/* The harness counts tunnels before it dials: wait for "new" to be
	 * gone first, or its late removal would hide "newer"'s arrival. */
	assert_int_equal(ptth_router_wait_tunnels_at_most(hr.router, 1, HARNESS_TIMEOUT_MS), 0);
	hb = greeting_backend(&hr, "newer", "api", "second");
	harness_backend_free(hb);
	harness_backend_free(old);
	harness_router_free(&hr);
	unlink(path);
}

/* ---------------------------------------------------------------------
 * Refusals on the wire.
 */

/* Sends a handshake to the tunnel port, then EOF, and reads the
 * router's answer until it closes. */
static void
dial_and_say(const struct harness_router *hr, const char *hello, struct answer *a)
{
	int fd = harness_dial(hr->tunnel_port);
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, hello, strlen(hello)), 0);
	shutdown(fd, SHUT_WR); /* after a 101, the EOF ends the tunnel */
	n = harness_recv_until_close(fd, a->text, sizeof a->text);
	close(fd);
	assert_true(n > 12);
	a->status = atoi(a->text + 9);
	a->body = strstr(a->text, "\r\n\r\n");
	a->body = a->body ? a->body + 4 : "";
}

static void
test_services_refusals_are_one_line_http11_answers_then_close(void **state)
{
	struct harness_router hr;
	struct answer a;
	char path[32];

	(void)state;
	write_tokens(path, "good api\n");
	start_router(&hr, path, 0);
	dial_and_say(&hr, "GET /ptth/api HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	                  "Upgrade: ptth\r\nALPN: http%2F1.1\r\nAuthorization: Bearer good\r\n\r\n", &a);
	assert_int_equal(a.status, 400);
	assert_string_equal(a.body, "400 Bad Request: ALPN does not offer h2\n");
	assert_non_null(strstr(a.text, "Connection: close\r\n"));
	dial_and_say(&hr, "GET /ptth/api HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	                  "Upgrade: ptth\r\nALPN: h2\r\n\r\n", &a);
	assert_int_equal(a.status, 401);
	assert_non_null(strstr(a.text, "\r\nWWW-Authenticate: Bearer\r\n"));
	assert_string_equal(a.body, "401 Unauthorized: a bearer token is needed\n");
	dial_and_say(&hr, "GET /ptth/web HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	                  "Upgrade: ptth\r\nALPN: h2\r\nAuthorization: Bearer good\r\n\r\n", &a);
	assert_int_equal(a.status, 403);
	assert_string_equal(a.body, "403 Forbidden: this token may not serve service web\n");
	dial_and_say(&hr, "GET /ptth/api HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	                  "Upgrade: ptth\r\nALPN: h2\r\nAuthorization: Bearer good\r\n\r\n", &a);
	assert_int_equal(a.status, 101);
	assert_non_null(strstr(a.text, "\r\nALPN: h2\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
	harness_router_free(&hr);
	unlink(path);
}

/* A dialler that sends half a handshake holds up only its own thread: a
 * backend dialling after it is taken at once, and stopping the router
 * does not wait for the handshake timeout. */
static void
test_services_slow_dialler_holds_up_no_one(void **state)
{
	struct ptth_router_options opts;
	struct harness_router hr;
	struct harness_backend *hb;
	long long start;
	int fd;

	(void)state;
	ptth_router_options_init(&opts);
	opts.header_timeout_ms = 60000;
	assert_int_equal(harness_router_start_opts(&hr, &opts), 0);
	fd = harness_dial(hr.tunnel_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, "GET /ptth/sl", 12), 0);
	start = harness_now_ms();
	hb = greeting_backend(&hr, "quick", "quick", NULL);
	assert_true(harness_now_ms() - start < 10000);
	harness_backend_free(hb);
	start = harness_now_ms();
	harness_router_free(&hr);
	assert_true(harness_now_ms() - start < 10000);
	close(fd);
}

/* A listening socket on 127.0.0.1:0 playing the router; addr gets
 * "127.0.0.1:PORT". Returns the socket. */
static int
fake_router_listen(char *addr, size_t cap)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof sin;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, cap, "127.0.0.1:%d", ntohs(sin.sin_port));
	return lfd;
}

/* Accepts one dialler on lfd and reads its handshake. Returns the socket. */
static int
fake_router_accept(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	char buf[2048];
	int fd;

	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(recv(fd, buf, sizeof buf, 0) > 0);
	return fd;
}

/* A backend for api with token "wrong", redialling addr. */
static struct ptth_backend *
redialling_backend(const char *addr, int backoff_max_ms)
{
	struct ptth_backend_options opts;
	struct ptth_backend *b;

	ptth_backend_options_init(&opts);
	opts.router_addr = addr;
	opts.handler = ptth_mux_serve;
	opts.reconnect = 1;
	opts.backoff_min_ms = 10;
	opts.backoff_max_ms = backoff_max_ms;
	opts.service = "api";
	opts.token = "wrong";
	b = ptth_backend_new(&opts);
	assert_non_null(b);
	assert_int_equal(ptth_backend_start(b), 0);
	return b;
}

/* A fake router that refuses every handshake with 401: the backend,
 * redialling, waits at least half its maximum backoff at once rather
 * than starting from backoff_min_ms. */
static void
test_services_refused_token_backs_off_to_the_maximum(void **state)
{
	static const char refusal[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
	                              "Connection: close\r\n\r\n";
	struct ptth_backend *b;
	long long accepted[2];
	char addr[64];
	int lfd, fd;

	(void)state;
	lfd = fake_router_listen(addr, sizeof addr);
	b = redialling_backend(addr, 1600);
	for (int i = 0; i < 2; i++) {
		fd = fake_router_accept(lfd);
		accepted[i] = harness_now_ms();
		assert_int_equal(harness_send_all(fd, refusal, sizeof refusal - 1), 0);
		close(fd);
	}
	ptth_backend_free(b);
	close(lfd);
	/* Without the jump, the second dial comes after 5 to 10 ms. */
	assert_true(accepted[1] - accepted[0] >= 800 - 50);
}

/* A router that never answers the handshake: stopping the backend ends
 * the wait at once, not after the handshake timeout (10 s). */
static void
test_services_backend_stop_ends_a_handshake_wait(void **state)
{
	struct ptth_backend *b;
	long long start;
	char addr[64];
	int lfd, fd;

	(void)state;
	lfd = fake_router_listen(addr, sizeof addr);
	b = redialling_backend(addr, 1000);
	fd = fake_router_accept(lfd);
	start = harness_now_ms();
	ptth_backend_free(b);
	assert_true(harness_now_ms() - start < 5000);
	close(fd);
	close(lfd);
}

/* ---------------------------------------------------------------------
 * An independent dialler: python3-h2 (tests/peers/ptth_dialler.py)
 * performs the handshake by hand, then serves HTTP/2.
 */

static void
test_services_python_h2_dialler_serves_through_the_router(void **state)
{
	struct harness_router hr;
	struct answer a;
	char path[32], port[16];
	pid_t pid;
	int status;

	(void)state;
	write_tokens(path, "py-token pyservice\n");
	start_router(&hr, path, 0);
	snprintf(port, sizeof port, "%d", hr.tunnel_port);
	char *const argv[] = { PYTHON3, "tests/peers/ptth_dialler.py", "127.0.0.1", port,
	                       "pyservice", path, NULL };
	/* The token file holds "TOKEN SERVICE": the script takes the first word. */
	assert_int_equal(posix_spawn(&pid, PYTHON3, NULL, NULL, argv, environ), 0);
	if (ptth_router_wait_service_tunnels(hr.router, "pyservice", 1, WAIT_MS) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the python3-h2 dialler never joined (is python3-h2 installed?)");
	}
	for (int i = 0; i < 3; i++) {
		ask(&hr, "pyservice", "/hello?x=1", &a);
		assert_int_equal(a.status, 200);
		assert_string_equal(a.body, "python-h2 pyservice GET /hello?x=1\n");
	}
	ask(&hr, "other", "/hello", &a);
	assert_int_equal(a.status, 503);
	harness_router_free(&hr);            /* GOAWAY, then the dialler exits */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_services_host_names_and_known_services),
		cmocka_unit_test(test_services_two_services_with_two_backends_each_are_routed_by_host),
		cmocka_unit_test(test_services_raw_and_handshake_tunnels_share_one_router),
		cmocka_unit_test(test_services_listed_service_without_tunnel_is_503_naming_it),
		cmocka_unit_test(test_services_tokens_missing_wrong_for_another_service_and_right),
		cmocka_unit_test(test_services_tokens_refuse_raw_tunnels_unless_allowed),
		cmocka_unit_test(test_services_reload_takes_new_tokens_and_keeps_live_tunnels),
		cmocka_unit_test(test_services_refusals_are_one_line_http11_answers_then_close),
		cmocka_unit_test(test_services_slow_dialler_holds_up_no_one),
		cmocka_unit_test(test_services_refused_token_backs_off_to_the_maximum),
		cmocka_unit_test(test_services_backend_stop_ends_a_handshake_wait),
		cmocka_unit_test(test_services_python_h2_dialler_serves_through_the_router),
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
