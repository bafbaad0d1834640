/*
 * test_websocket_upgrade.c -- unit tests for
 * src/router/websocket_upgrade.c: which requests are WebSocket opening
 * handshakes, which are refused with 400 or 426, the Sec-WebSocket-Accept
 * value, the extended CONNECT built for the tunnel and the 101 built for
 * the user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket_upgrade.h"

/* RFC 6455 section 1.3's example key and its accept value. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void
add(struct header_list *l, const char *name, const char *value)
{
	assert_int_equal(header_list_add(l, name, strlen(name), value, strlen(value)), 0);
}

/* A valid opening handshake for /chat, as a browser sends it. */
static void
handshake_init(struct http1_head *head)
{
	memset(head, 0, sizeof *head);
	head->method = "GET";
	head->path_and_query = "/chat?room=1";
	head->version_minor = 1;
	header_list_init(&head->fields);
	add(&head->fields, "Host", "server.example.com");
	add(&head->fields, "Upgrade", "websocket");
	add(&head->fields, "Connection", "keep-alive, Upgrade");
	add(&head->fields, "Sec-WebSocket-Key", RFC_KEY);
	add(&head->fields, "Origin", "http://example.com");
	add(&head->fields, "Sec-WebSocket-Protocol", "chat, superchat");
	add(&head->fields, "Sec-WebSocket-Version", "13");
	add(&head->fields, "Cookie", "a=1");
}

/* The same handshake with the field called name replaced by value
 * (NULL: removed). */
static void
handshake_with(struct http1_head *head, const char *name, const char *value)
{
	struct header_list old = head->fields;

	header_list_init(&head->fields);
	for (size_t i = 0; i < old.count; i++)
		if (strcmp(old.items[i].name, name) != 0)
			add(&head->fields, old.items[i].name, old.items[i].value);
	if (value != NULL)
		add(&head->fields, name, value);
	header_list_free(&old);
}

/* Asserts the verdict (and, for a refusal, the status) for head. */
static void
assert_verdict(const struct http1_head *head, bool has_body, enum websocket_verdict want,
               int want_status)
{
	int status = 0;
	const char *text = NULL;

	assert_int_equal(websocket_upgrade_check(head, has_body, &status, &text), want);
	if (want == WEBSOCKET_REFUSE) {
		assert_int_equal(status, want_status);
		assert_non_null(text);
	}
}

static void
test_websocket_upgrade_accepts_a_valid_handshake(void **state)
{
	struct http1_head head;

	(void)state;
	handshake_init(&head);
	assert_verdict(&head, false, WEBSOCKET_VALID, 0);
	handshake_with(&head, "Upgrade", "WebSocket"); /* tokens are case-insensitive */
	assert_verdict(&head, false, WEBSOCKET_VALID, 0);
	header_list_free(&head.fields);
}

static void
test_websocket_upgrade_ignores_requests_without_upgrade_websocket(void **state)
{
	struct http1_head head;

	(void)state;
	handshake_init(&head);
	handshake_with(&head, "Upgrade", NULL);
	assert_verdict(&head, false, WEBSOCKET_NONE, 0);
	handshake_with(&head, "Upgrade", "h2c");
	assert_verdict(&head, false, WEBSOCKET_NONE, 0);
	header_list_free(&head.fields);

	/* Upgrade counts only with the Connection option, and not in
	 * HTTP/1.0 (RFC 9110 section 7.8): an ordinary request then. */
	handshake_init(&head);
	handshake_with(&head, "Connection", "keep-alive");
	assert_verdict(&head, false, WEBSOCKET_NONE, 0);
	handshake_with(&head, "Connection", NULL);
	assert_verdict(&head, false, WEBSOCKET_NONE, 0);
	header_list_free(&head.fields);
	handshake_init(&head);
	head.version_minor = 0;
	assert_verdict(&head, false, WEBSOCKET_NONE, 0);
	header_list_free(&head.fields);
}

static void
test_websocket_upgrade_refuses_malformed_handshakes_with_400(void **state)
{
	static const struct { const char *name, *value; } bad[] = {
		{ "Sec-WebSocket-Key", NULL },
		{ "Sec-WebSocket-Key", "short==" },
		{ "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==" }, /* not canonical */
		{ "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q==" },
		{ "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ" },
		{ "Sec-WebSocket-Version", NULL },
		{ "Sec-WebSocket-Version", "thirteen" },
		{ "Sec-WebSocket-Version", "" },
	};
	struct http1_head head;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		handshake_init(&head);
		handshake_with(&head, bad[i].name, bad[i].value);
		assert_verdict(&head, false, WEBSOCKET_REFUSE, 400);
		header_list_free(&head.fields);
	}
}

static void
test_websocket_upgrade_refuses_two_keys_a_body_and_post(void **state)
{
	struct http1_head head;

	(void)state;
	handshake_init(&head);
	add(&head.fields, "Sec-WebSocket-Key", RFC_KEY);
	assert_verdict(&head, false, WEBSOCKET_REFUSE, 400);
	header_list_free(&head.fields);

	handshake_init(&head);
	assert_verdict(&head, true, WEBSOCKET_REFUSE, 400);
	head.method = "POST";
	assert_verdict(&head, false, WEBSOCKET_REFUSE, 400);
	header_list_free(&head.fields);
}

static void
test_websocket_upgrade_answers_another_version_with_426(void **state)
{
	struct http1_head head;

	(void)state;
	handshake_init(&head);
	handshake_with(&head, "Sec-WebSocket-Version", "8");
	assert_verdict(&head, false, WEBSOCKET_REFUSE, 426);
	header_list_free(&head.fields);
}

static void
test_websocket_upgrade_accept_value_matches_rfc_6455_example(void **state)
{
	char accept[WEBSOCKET_ACCEPT_LEN + 1];

	(void)state;
	assert_int_equal(websocket_accept_value(RFC_KEY, accept), 0);
	assert_string_equal(accept, RFC_ACCEPT);
}

static void
test_websocket_upgrade_request_becomes_extended_connect(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	handshake_init(&head);
	header_list_init(&out);
	assert_int_equal(websocket_request_to_h2(&head, "192.0.2.1", &out), 0);
	/* Pseudo-fields first, :protocol among them (RFC 8441 section 4). */
	assert_string_equal(out.items[0].name, ":method");
	assert_string_equal(out.items[0].value, "CONNECT");
	assert_string_equal(out.items[1].name, ":protocol");
	assert_string_equal(out.items[1].value, "websocket");
	assert_string_equal(header_list_get(&out, ":scheme"), "http");
	assert_string_equal(header_list_get(&out, ":path"), "/chat?room=1");
	assert_string_equal(header_list_get(&out, ":authority"), "server.example.com");
	/* End-to-end fields go on; the key and hop-by-hop fields do not. */
	assert_string_equal(header_list_get(&out, "sec-websocket-version"), "13");
	assert_string_equal(header_list_get(&out, "sec-websocket-protocol"), "chat, superchat");
	assert_string_equal(header_list_get(&out, "origin"), "http://example.com");
	assert_string_equal(header_list_get(&out, "cookie"), "a=1");
	assert_string_equal(header_list_get(&out, "x-forwarded-for"), "192.0.2.1");
	assert_null(header_list_get(&out, "sec-websocket-key"));
	assert_null(header_list_get(&out, "connection"));
	assert_null(header_list_get(&out, "upgrade"));
	assert_null(header_list_get(&out, "host"));
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_websocket_upgrade_response_head_is_101_with_accept(void **state)
{
	struct header_list in;
	char *head, *text;
	size_t len;

	(void)state;
	header_list_init(&in);
	add(&in, ":status", "200");
	add(&in, "sec-websocket-protocol", "chat");
	add(&in, "sec-websocket-accept", "from-the-backend");
	add(&in, "content-length", "0");
	add(&in, "set-cookie", "b=2");
	assert_int_equal(websocket_response_head(&in, RFC_ACCEPT, &head, &len), 0);
	/* The head is len bytes, not a C string. */
	text = strndup(head, len);
	assert_non_null(text);
	free(head);
	assert_true(strncmp(text, "HTTP/1.1 101 Switching Protocols\r\n",
	                    strlen("HTTP/1.1 101 Switching Protocols\r\n")) == 0);
	assert_non_null(strstr(text, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strstr(text, "\r\nConnection: Upgrade\r\n"));
	assert_non_null(strstr(text, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
	assert_non_null(strstr(text, "\r\nSec-Websocket-Protocol: chat\r\n"));
	assert_non_null(strstr(text, "\r\nSet-Cookie: b=2\r\n"));
	assert_null(strstr(text, "from-the-backend"));
	assert_null(strstr(text, "Content-Length"));
	assert_string_equal(text + len - 4, "\r\n\r\n");
	free(text);
	header_list_free(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_websocket_upgrade_accepts_a_valid_handshake),
		cmocka_unit_test(test_websocket_upgrade_ignores_requests_without_upgrade_websocket),
		cmocka_unit_test(test_websocket_upgrade_refuses_malformed_handshakes_with_400),
		cmocka_unit_test(test_websocket_upgrade_refuses_two_keys_a_body_and_post),
		cmocka_unit_test(test_websocket_upgrade_answers_another_version_with_426),
		cmocka_unit_test(test_websocket_upgrade_accept_value_matches_rfc_6455_example),
		cmocka_unit_test(test_websocket_upgrade_request_becomes_extended_connect),
		cmocka_unit_test(test_websocket_upgrade_response_head_is_101_with_accept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
