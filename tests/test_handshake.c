/*
 * test_handshake.c -- unit tests for the PTTH handshake on both sides:
 * src/common/handshake.c (reading a head, strict parsing, service names, ALPN),
 * src/router/tunnel_handshake.c (raw or handshake, each refusal, the answers;
 * tokens.c has its own suite)
 * and src/backend/backend_handshake.c (the request it writes, the answers it
 * accepts or refuses). Sockets are socketpairs; the only threads are the
 * tests' own, so the peer's bytes are written before the reader runs or
 * in pieces between two reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptth.h"
#include "backend_handshake.h"
#include "handshake.h"
#include "lock.h"
#include "tokens.h"
#include "tunnel_handshake.h"

#define GOOD_HEAD "GET /ptth/api.example HTTP/1.1\r\nHost: router:8887\r\n" \
	"Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2, http%2F1.1\r\n" \
	"Authorization: Bearer s3cret\r\n\r\n"

/* A connected socketpair: sv[0] the router's end, sv[1] the dialler's. */
static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void
send_str(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Checks a head given as text; returns the status, hello filled in. */
static int
check_text(const char *text, struct tunnel_hello *hello)
{
	char buf[4096];

	memset(hello, 0, sizeof *hello);
	snprintf(buf, sizeof buf, "%s", text);
	return tunnel_handshake_check(buf, strlen(buf), hello);
}

static const struct tunnel_handshake_conf quick = {
	.raw_wait_ms = 100, .timeout_ms = 300, .stop_fd = -1,
};

/* ---------------------------------------------------------------------
 * Service names and ALPN.
 */

static void
test_handshake_service_names_are_dns_style(void **state)
{
	char long_name[300];

	(void)state;
	assert_true(handshake_service_valid("api", 3));
	assert_true(handshake_service_valid("api-2.example.org", 17));
	assert_false(handshake_service_valid("", 0));
	assert_false(handshake_service_valid("API", 3));
	assert_false(handshake_service_valid("a_b", 3));
	assert_false(handshake_service_valid(".a", 2));
	assert_false(handshake_service_valid("a..b", 4));
	assert_false(handshake_service_valid("a.", 2));
	assert_false(handshake_service_valid("-a", 2));
	assert_false(handshake_service_valid("a/b", 3));
	memset(long_name, 'a', sizeof long_name);
	for (int i = 60; i < 300; i += 61)
		long_name[i] = '.';
	assert_true(handshake_service_valid(long_name, 253));
	assert_false(handshake_service_valid(long_name, 254));
	memset(long_name, 'a', 64);
	assert_false(handshake_service_valid(long_name, 64)); /* a 64-byte label */
}

static void
test_handshake_alpn_finds_h2_percent_encoded_or_not(void **state)
{
	(void)state;
	assert_int_equal(handshake_alpn_find_h2("h2"), 1);
	assert_int_equal(handshake_alpn_find_h2("http%2F1.1, h2"), 1);
	assert_int_equal(handshake_alpn_find_h2("h%32"), 1);
	assert_int_equal(handshake_alpn_find_h2("http%2F1.1"), 0);
	assert_int_equal(handshake_alpn_find_h2("h2c"), 0);
	assert_int_equal(handshake_alpn_find_h2("h%3"), -1);
	assert_int_equal(handshake_alpn_find_h2("h%zz"), -1);
	assert_int_equal(handshake_alpn_find_h2("h 2"), -1);
	assert_int_equal(handshake_alpn_find_h2(""), -1);
}

/* ---------------------------------------------------------------------
 * The router's check of a handshake request.
 */

static void
test_handshake_well_formed_request_names_service_and_token(void **state)
{
	struct tunnel_hello hello;

	(void)state;
	assert_int_equal(check_text(GOOD_HEAD, &hello), 0);
	assert_true(hello.handshake);
	assert_string_equal(hello.service, "api.example");
	assert_true(hello.has_token);
	assert_string_equal(hello.token, "s3cret");
}

static void
test_handshake_slash_and_ptth_targets_join_the_default_pool(void **state)
{
	struct tunnel_hello hello;

	(void)state;
	assert_int_equal(check_text("GET / HTTP/1.1\r\nHost: r\r\nConnection: Upgrade\r\n"
	                            "Upgrade: PTTH\r\nALPN: h2\r\n\r\n", &hello), 0);
	assert_string_equal(hello.service, "");
	assert_false(hello.has_token);
	assert_int_equal(check_text("GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	                            "Upgrade: ptth\r\nALPN: h2\r\n\r\n", &hello), 0);
	assert_string_equal(hello.service, "");
}

/* Each malformed request, with the words its refusal must contain. */
static void
test_handshake_malformed_requests_are_400(void **state)
{
	static const char *const cases[][2] = {
		{ "POST /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "GET" },
		{ "GET /ptth HTTP/1.0\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "HTTP/1.1" },
		{ "GET /other HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "target" },
		{ "GET /ptth/Bad_Name HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "DNS-style" },
		{ "GET /ptth HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "Host" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nHost: s\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "Host" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "Connection" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: websocket\r\nALPN: h2\r\n\r\n", "Upgrade" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\n\r\n", "no ALPN" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: http%2F1.1\r\n\r\n", "h2" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h%2\r\n\r\n", "malformed ALPN" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\nAuthorization: Basic dTpw\r\n\r\n", "Bearer" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", "Authorization" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\nContent-Length: 0\r\n\r\n", "body" },
		{ "GET /ptth HTTP/1.1\nHost: r\nConnection: upgrade\nUpgrade: ptth\nALPN: h2\n\n", "CRLF" },
		{ "GET /ptth HTTP/1.1\r\nHost : r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "token" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\r\n folded\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "folding" },
		{ "GET /ptth HTTP/1.1\r\nHost: r\x01\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "control" },
		{ "GET  HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n", "start line" },
	};
	struct tunnel_hello hello;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int status = check_text(cases[i][0], &hello);
		if (status != 400 || strstr(hello.why, cases[i][1]) == NULL)
			fail_msg("case %zu: status %d, \"%s\" (wanted 400 naming \"%s\")", i,
			         status, hello.why ? hello.why : "", cases[i][1]);
	}
}

static struct tokens *
parse_tokens(const char *text)
{
	struct tokens *t;
	char err[256];

	if (tokens_parse(text, strlen(text), &t, err, sizeof err) < 0)
		fail_msg("tokens_parse: %s", err);
	return t;
}

static void
test_handshake_authorize_gives_401_and_403(void **state)
{
	struct tokens *t = parse_tokens("good api\nany *\n");
	struct tunnel_hello hello;

	(void)state;
	check_text("GET /ptth/api HTTP/1.1\r\nHost: r\r\nConnection: upgrade\r\n"
	           "Upgrade: ptth\r\nALPN: h2\r\n\r\n", &hello);
	assert_int_equal(tunnel_handshake_authorize(&hello, NULL), 0);
	assert_int_equal(tunnel_handshake_authorize(&hello, t), 401);
	hello.has_token = true;
	strcpy(hello.token, "wrong");
	assert_int_equal(tunnel_handshake_authorize(&hello, t), 401);
	strcpy(hello.token, "good");
	assert_int_equal(tunnel_handshake_authorize(&hello, t), 0);
	strcpy(hello.service, "web");
	assert_int_equal(tunnel_handshake_authorize(&hello, t), 403);
	assert_non_null(strstr(hello.why, "service web"));
	hello.status = 0;
	strcpy(hello.token, "any");
	assert_int_equal(tunnel_handshake_authorize(&hello, t), 0);
	tokens_unref(t);
}

/* ---------------------------------------------------------------------
 * Reading from a socket: raw or handshake, split reads, limits.
 */

static void
test_handshake_silent_dialler_is_raw_after_the_wait(void **state)
{
	struct tunnel_hello hello;
	long long start = now_ms();
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), 0);
	assert_false(hello.handshake);
	assert_true(now_ms() - start >= quick.raw_wait_ms);
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_settings_first_is_raw_and_leaves_the_bytes(void **state)
{
	static const char settings[] = { 0, 0, 0, 4, 0, 0, 0, 0, 0 };
	struct tunnel_hello hello;
	char back[16];
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(write(sv[1], settings, sizeof settings), (ssize_t)sizeof settings);
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), 0);
	assert_false(hello.handshake);
	assert_int_equal(read(sv[0], back, sizeof back), (ssize_t)sizeof settings);
	assert_memory_equal(back, settings, sizeof settings);
	close(sv[0]);
	close(sv[1]);
}

/* The head comes in pieces, the HTTP/2 bytes right behind it: the read
 * takes the head and not one byte more. */
static void
test_handshake_split_head_is_read_whole_and_nothing_after_it(void **state)
{
	static const char *const pieces[] = { "G", "ET /ptth/api HTTP/1.1\r", "\nHost: r\r\n",
		"Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r", "\nPRI-AFTER" };
	struct tunnel_handshake_conf conf = { .raw_wait_ms = 2000, .timeout_ms = 5000,
	                                      .stop_fd = -1 };
	char head[256], back[16];
	size_t len = 0;
	int sv[2];

	(void)state;
	pair(sv);
	send_str(sv[1], pieces[0]);
	send_str(sv[1], pieces[1]);
	/* The reader takes the first pieces, then finds no end and waits. */
	assert_int_equal(handshake_read_head(sv[0], head, sizeof head, now_ms() + 50, -1, &len),
	                 -ETIMEDOUT);
	send_str(sv[1], pieces[2]);
	send_str(sv[1], pieces[3]);
	send_str(sv[1], pieces[4]);
	(void)conf;
	size_t more = 0;
	assert_int_equal(handshake_read_head(sv[0], head + len, sizeof head - len,
	                                     now_ms() + 5000, -1, &more), 0);
	len += more;
	head[len] = '\0';
	assert_non_null(strstr(head, "ALPN: h2\r\n\r\n"));
	assert_int_equal(read(sv[0], back, sizeof back), 9);
	assert_memory_equal(back, "PRI-AFTER", 9);
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_read_classifies_and_checks_a_real_request(void **state)
{
	struct tunnel_hello hello;
	int sv[2];

	(void)state;
	pair(sv);
	send_str(sv[1], GOOD_HEAD);
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), 0);
	assert_true(hello.handshake);
	assert_int_equal(hello.status, 0);
	assert_string_equal(hello.service, "api.example");
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_slow_head_is_408(void **state)
{
	struct tunnel_hello hello;
	int sv[2];

	(void)state;
	pair(sv);
	send_str(sv[1], "GET /ptth HTTP/1.1\r\nHost: r\r\n");
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), 0);
	assert_int_equal(hello.status, 408);
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_oversized_head_is_431(void **state)
{
	struct tunnel_hello hello;
	char big[TUNNEL_HANDSHAKE_MAX_BYTES + 100];
	int sv[2];

	(void)state;
	pair(sv);
	memset(big, 'x', sizeof big);
	memcpy(big, "GET /ptth HTTP/1.1\r\nX: ", 23);
	assert_int_equal(write(sv[1], big, sizeof big), (ssize_t)sizeof big);
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), 0);
	assert_int_equal(hello.status, 431);
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_eof_and_stop_end_the_read(void **state)
{
	struct tunnel_handshake_conf conf = quick;
	struct tunnel_hello hello;
	int sv[2], stop[2];

	(void)state;
	pair(sv);
	close(sv[1]);
	assert_int_equal(tunnel_handshake_read(sv[0], &quick, &hello), PTTH_ECLOSED);
	close(sv[0]);
	pair(sv);
	assert_int_equal(pipe(stop), 0);
	send_str(stop[1], "x");
	conf.stop_fd = stop[0];
	conf.raw_wait_ms = 5000;
	assert_int_equal(tunnel_handshake_read(sv[0], &conf, &hello), -ESHUTDOWN);
	close(stop[0]);
	close(stop[1]);
	close(sv[0]);
	close(sv[1]);
}

static void
test_handshake_answers_are_101_or_one_line_refusals(void **state)
{
	struct tunnel_hello hello = { .handshake = true };
	char buf[1024];
	int n;

	(void)state;
	n = tunnel_handshake_format(&hello, buf, sizeof buf);
	assert_true(n > 0);
	assert_string_equal(buf, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
	                         "Upgrade: ptth\r\nALPN: h2\r\n\r\n");
	hello.status = 401;
	hello.why = "unknown token";
	n = tunnel_handshake_format(&hello, buf, sizeof buf);
	assert_true(n > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(buf, "WWW-Authenticate: Bearer\r\n"));
	assert_non_null(strstr(buf, "Connection: close\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n401 Unauthorized: unknown token\n"));
	hello.status = 403;
	hello.why = "no";
	tunnel_handshake_format(&hello, buf, sizeof buf);
	assert_null(strstr(buf, "WWW-Authenticate"));
	assert_int_equal(tunnel_handshake_format(&hello, buf, 20), -ENOBUFS);
}

/* ---------------------------------------------------------------------
 * The backend's side.
 */

static void
test_handshake_backend_request_names_service_and_token(void **state)
{
	char buf[1024];
	struct tunnel_hello hello;

	(void)state;
	assert_true(backend_handshake_format("r:8887", "api", "tok", buf, sizeof buf) > 0);
	assert_string_equal(buf, "GET /ptth/api HTTP/1.1\r\nHost: r:8887\r\n"
	                         "Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n"
	                         "Authorization: Bearer tok\r\n\r\n");
	/* What the backend writes, the router accepts. */
	assert_int_equal(check_text(buf, &hello), 0);
	assert_int_equal(backend_handshake_format("r", NULL, NULL, buf, sizeof buf) > 0, 1);
	assert_non_null(strstr(buf, "GET /ptth HTTP/1.1\r\n"));
	assert_null(strstr(buf, "Authorization"));
	assert_int_equal(backend_handshake_format("r", "api", "tok", buf, 30), -ENOBUFS);
}

/* Runs backend_handshake() against answer, written in advance by the
 * "router" end, and returns its result; msg gets the message. */
static int
backend_against(const char *answer, char *msg, size_t msg_len, char *after, size_t cap)
{
	char req[1024];
	int sv[2], rc;

	pair(sv);
	send_str(sv[0], answer);
	rc = backend_handshake(sv[1], "r", "api", "tok", 2000, -1, msg, msg_len);
	assert_true(read(sv[0], req, sizeof req) > 0); /* the request went out */
	if (after != NULL) {
		ssize_t n = recv(sv[1], after, cap - 1, MSG_DONTWAIT);
		after[n > 0 ? n : 0] = '\0';
	}
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void
test_handshake_backend_accepts_101_and_keeps_the_preface(void **state)
{
	char msg[256], after[64];

	(void)state;
	assert_int_equal(backend_against("HTTP/1.1 101 Switching Protocols\r\n"
	                                 "Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n"
	                                 "\r\nPRI * HTTP/2.0", msg, sizeof msg,
	                                 after, sizeof after), 0);
	assert_string_equal(after, "PRI * HTTP/2.0");
}

static void
test_handshake_backend_refuses_bad_101_and_names_refusals(void **state)
{
	char msg[512];

	(void)state;
	assert_int_equal(backend_against("HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth\r\n"
	                                 "ALPN: http%2F1.1\r\n\r\n", msg, sizeof msg, NULL, 0),
	                 PTTH_EPROTO);
	assert_non_null(strstr(msg, "ALPN"));
	assert_int_equal(backend_against("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
	                                 "ALPN: h2\r\n\r\n", msg, sizeof msg, NULL, 0),
	                 PTTH_EPROTO);
	assert_int_equal(backend_against("HTTP/1.1 401 Unauthorized\r\nContent-Length: 31\r\n"
	                                 "WWW-Authenticate: Bearer\r\n\r\n"
	                                 "401 Unauthorized: unknown token\n", msg, sizeof msg,
	                                 NULL, 0), PTTH_EAUTH);
	assert_non_null(strstr(msg, "401 Unauthorized: unknown token"));
	assert_int_equal(backend_against("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
	                                 msg, sizeof msg, NULL, 0), PTTH_EFORBIDDEN);
	assert_int_equal(backend_against("HTTP/1.1 400 Bad Request\r\n\r\n", msg, sizeof msg,
	                                 NULL, 0), PTTH_EPROTO);
	assert_int_equal(backend_against("\0\0\0\4\0\0\0\0\0", msg, sizeof msg, NULL, 0) < 0, 1);
}

static void
test_handshake_backend_gives_up_on_a_silent_router(void **state)
{
	char msg[256], req[1024];
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(backend_handshake(sv[1], "r", NULL, NULL, 100, -1, msg, sizeof msg),
	                 -ETIMEDOUT);
	assert_true(read(sv[0], req, sizeof req) > 0);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_service_names_are_dns_style),
		cmocka_unit_test(test_handshake_alpn_finds_h2_percent_encoded_or_not),
		cmocka_unit_test(test_handshake_well_formed_request_names_service_and_token),
		cmocka_unit_test(test_handshake_slash_and_ptth_targets_join_the_default_pool),
		cmocka_unit_test(test_handshake_malformed_requests_are_400),
		cmocka_unit_test(test_handshake_authorize_gives_401_and_403),
		cmocka_unit_test(test_handshake_silent_dialler_is_raw_after_the_wait),
		cmocka_unit_test(test_handshake_settings_first_is_raw_and_leaves_the_bytes),
		cmocka_unit_test(test_handshake_split_head_is_read_whole_and_nothing_after_it),
		cmocka_unit_test(test_handshake_read_classifies_and_checks_a_real_request),
		cmocka_unit_test(test_handshake_slow_head_is_408),
		cmocka_unit_test(test_handshake_oversized_head_is_431),
		cmocka_unit_test(test_handshake_eof_and_stop_end_the_read),
		cmocka_unit_test(test_handshake_answers_are_101_or_one_line_refusals),
		cmocka_unit_test(test_handshake_backend_request_names_service_and_token),
		cmocka_unit_test(test_handshake_backend_accepts_101_and_keeps_the_preface),
		cmocka_unit_test(test_handshake_backend_refuses_bad_101_and_names_refusals),
		cmocka_unit_test(test_handshake_backend_gives_up_on_a_silent_router),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
