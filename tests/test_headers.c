/*
 * test_headers.c -- unit tests for src/common/headers.c: header lists, the
 * HTTP/1.1 request head turned into HTTP/2 fields, nghttp2_nv arrays, and
 * the HTTP/2 response turned back into an HTTP/1.1 head.
 *
 * What a list costs in allocations is part of its contract (every request
 * builds three lists), so malloc and realloc are wrapped (the line below
 * makes the Makefile link with -Wl,--wrap=malloc,--wrap=realloc) and
 * counted while a test asks for it; calls from inside libc are not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

/* wrap: malloc realloc */
void *__real_malloc(size_t size);
void *__real_realloc(void *ptr, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static bool counting;    /* count allocations now (this suite runs on one thread) */
static int allocations;  /* malloc and realloc calls while counting */

void *
__wrap_malloc(size_t size)
{
	allocations += counting;
	return __real_malloc(size);
}

void *
__wrap_realloc(void *ptr, size_t size)
{
	allocations += counting;
	return __real_realloc(ptr, size);
}

/* Appends a field given as two C strings. */
static void
add(struct header_list *l, const char *name, const char *value)
{
	assert_int_equal(header_list_add(l, name, strlen(name), value, strlen(value)), 0);
}

/* Asserts that field i of l is exactly name: value. */
static void
assert_field(const struct header_list *l, size_t i, const char *name, const char *value)
{
	assert_true(i < l->count);
	assert_string_equal(l->items[i].name, name);
	assert_string_equal(l->items[i].value, value);
	assert_int_equal(l->items[i].name_len, strlen(name));
	assert_int_equal(l->items[i].value_len, strlen(value));
}

/* Prepares a GET head for path with no fields yet. */
static void
head_init(struct http1_head *head, const char *path)
{
	memset(head, 0, sizeof *head);
	head->method = "GET";
	head->path_and_query = path;
	head->version_minor = 1;
	header_list_init(&head->fields);
}

/* Converts head, without forwarding fields, and returns the HTTP/2
 * fields in out (caller frees). */
static void
to_h2(const struct http1_head *head, struct header_list *out)
{
	header_list_init(out);
	assert_int_equal(headers_request_to_h2(head, NULL, out), 0);
}

static void
test_headers_list_add_keeps_terminated_copies_in_order(void **state)
{
	struct header_list l;
	char name[] = "Content-TypeXXX", value[] = "text/plainYYY";

	(void)state;
	header_list_init(&l);
	assert_int_equal(header_list_add(&l, name, 12, value, 10), 0);
	add(&l, "Accept", "*/*");
	/* The list holds copies: changing the source changes nothing. */
	name[0] = 'X';
	value[0] = 'X';
	assert_int_equal(l.count, 2);
	assert_field(&l, 0, "Content-Type", "text/plain");
	assert_field(&l, 1, "Accept", "*/*");
	assert_int_equal(l.bytes, 12 + 10 + 6 + 3);
	header_list_free(&l);
	assert_int_equal(l.count, 0);
	assert_null(l.items);
}

static void
test_headers_list_add_accepts_empty_value(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	assert_int_equal(header_list_add(&l, "X-Empty", 7, "", 0), 0);
	assert_field(&l, 0, "X-Empty", "");
	header_list_free(&l);
}

static void
test_headers_list_grows_past_its_first_allocation(void **state)
{
	struct header_list l;
	char name[32], value[32];

	(void)state;
	header_list_init(&l);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "X-Field-%d", i);
		snprintf(value, sizeof value, "value %d", i);
		add(&l, name, value);
	}
	assert_int_equal(l.count, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "X-Field-%d", i);
		snprintf(value, sizeof value, "value %d", i);
		assert_field(&l, (size_t)i, name, value);
	}
	header_list_free(&l);
}

/* Adds the twelve fields of a typical browser request head. */
static void
add_typical_head(struct header_list *l)
{
	add(l, "host", "www.example.com");
	add(l, "user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0");
	add(l, "accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
	add(l, "accept-language", "en-US,en;q=0.5");
	add(l, "accept-encoding", "gzip, deflate, br");
	add(l, "referer", "https://www.example.com/");
	add(l, "connection", "keep-alive");
	add(l, "cookie", "session=0123456789abcdef; theme=dark");
	add(l, "upgrade-insecure-requests", "1");
	add(l, "sec-fetch-dest", "document");
	add(l, "sec-fetch-mode", "navigate");
	add(l, "if-none-match", "\"5f3c-1a2b\"");
}

/* Names and values share a few blocks: a dozen fields (about 470 bytes)
 * cost two blocks and the items array grown once, not one allocation
 * each. */
static void
test_headers_list_of_a_dozen_fields_takes_four_allocations(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	allocations = 0;
	counting = true;
	add_typical_head(&l);
	counting = false;
	assert_int_equal(l.count, 12);
	assert_field(&l, 1, "user-agent",
	             "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0");
	assert_field(&l, 11, "if-none-match", "\"5f3c-1a2b\"");
	assert_int_equal(allocations, 4);
	header_list_free(&l);
}

/* A cleared list is empty and reuses its storage: the next head of the
 * same size allocates nothing. */
static void
test_headers_list_clear_keeps_storage_for_the_next_fields(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	add_typical_head(&l);
	add_typical_head(&l); /* more than one block */
	header_list_clear(&l);
	assert_int_equal(l.count, 0);
	assert_int_equal(l.bytes, 0);
	assert_null(header_list_get(&l, "host"));
	allocations = 0;
	counting = true;
	add_typical_head(&l);
	counting = false;
	assert_int_equal(allocations, 0);
	assert_int_equal(l.count, 12);
	assert_field(&l, 0, "host", "www.example.com");
	assert_field(&l, 11, "if-none-match", "\"5f3c-1a2b\"");
	header_list_free(&l);
}

/* Clearing lets go of storage a large head needed: a connection that
 * once sent one does not keep it. */
static void
test_headers_list_clear_lets_large_storage_go(void **state)
{
	static char big[10000];
	struct header_list l;
	char name[32];

	(void)state;
	memset(big, 'x', sizeof big - 1);
	header_list_init(&l);
	add(&l, "x-big", big);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "x-field-%d", i);
		add(&l, name, "1");
	}
	header_list_clear(&l);
	assert_null(l.blocks);
	assert_null(l.items);
	add_typical_head(&l);
	assert_field(&l, 0, "host", "www.example.com");
	header_list_free(&l);
}

static void
test_headers_list_get_ignores_case(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	add(&l, "Content-Type", "text/html");
	add(&l, "X-Request-ID", "42");
	assert_string_equal(header_list_get(&l, "content-type"), "text/html");
	assert_string_equal(header_list_get(&l, "CONTENT-TYPE"), "text/html");
	assert_string_equal(header_list_get(&l, "x-request-id"), "42");
	header_list_free(&l);
}

static void
test_headers_list_get_returns_first_of_repeated_fields(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	add(&l, "Via", "first");
	add(&l, "via", "second");
	assert_string_equal(header_list_get(&l, "VIA"), "first");
	header_list_free(&l);
}

static void
test_headers_list_get_returns_null_for_missing_field(void **state)
{
	struct header_list l;

	(void)state;
	header_list_init(&l);
	assert_null(header_list_get(&l, "host"));
	add(&l, "Hostname", "x");
	assert_null(header_list_get(&l, "host"));
	header_list_free(&l);
}

static void
test_headers_token_in_list_matches_whole_tokens_in_any_case(void **state)
{
	(void)state;
	assert_true(headers_token_in_list("keep-alive, X-Foo", "x-foo"));
	assert_true(headers_token_in_list("keep-alive, X-Foo", "KEEP-ALIVE"));
	assert_true(headers_token_in_list("close", "close"));
	assert_true(headers_token_in_list(" \tclose\t ,  upgrade ", "upgrade"));
	assert_true(headers_token_in_list("a,,b", "b"));
	assert_false(headers_token_in_list("keep-alive, X-Foo", "keep"));
	assert_false(headers_token_in_list("keep-alive, X-Foo", "alive"));
	assert_false(headers_token_in_list("keep-alive, X-Foo", "x-foobar"));
	assert_false(headers_token_in_list("X-Foobar", "x-foo"));
}

static void
test_headers_token_in_list_is_false_for_empty_or_null_list(void **state)
{
	(void)state;
	assert_false(headers_token_in_list(NULL, "close"));
	assert_false(headers_token_in_list("", "close"));
	assert_false(headers_token_in_list(" , ,", "close"));
}

static void
test_headers_is_hop_by_hop_knows_fixed_set_and_connection_names(void **state)
{
	(void)state;
	assert_true(headers_is_hop_by_hop("Connection", NULL));
	assert_true(headers_is_hop_by_hop("keep-alive", NULL));
	assert_true(headers_is_hop_by_hop("Proxy-Connection", NULL));
	assert_true(headers_is_hop_by_hop("Transfer-Encoding", NULL));
	assert_true(headers_is_hop_by_hop("Upgrade", NULL));
	assert_true(headers_is_hop_by_hop("TE", NULL));
	assert_true(headers_is_hop_by_hop("Host", NULL));
	assert_true(headers_is_hop_by_hop("X-Secret", "close, x-secret"));
	assert_false(headers_is_hop_by_hop("X-Secret", NULL));
	assert_false(headers_is_hop_by_hop("X-Secret", "close"));
	assert_false(headers_is_hop_by_hop("Content-Type", "keep-alive"));
}

static void
test_headers_request_to_h2_puts_pseudo_fields_first_in_order(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/search?q=1");
	head.method = "POST";
	add(&head.fields, "Accept", "*/*");
	add(&head.fields, "Host", "example.com");
	add(&head.fields, "Content-Length", "3");
	to_h2(&head, &out);
	assert_int_equal(out.count, 6);
	assert_field(&out, 0, ":method", "POST");
	assert_field(&out, 1, ":scheme", "http");
	assert_field(&out, 2, ":authority", "example.com");
	assert_field(&out, 3, ":path", "/search?q=1");
	assert_field(&out, 4, "accept", "*/*");
	assert_field(&out, 5, "content-length", "3");
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_turns_host_into_authority(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	add(&head.fields, "HOST", "example.com:8080");
	to_h2(&head, &out);
	assert_string_equal(header_list_get(&out, ":authority"), "example.com:8080");
	assert_null(header_list_get(&out, "host"));
	assert_int_equal(out.count, 4);
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_prefers_absolute_form_host_over_host_field(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/a?b=1");
	head.url_host = "origin.example:8080";
	add(&head.fields, "Host", "other.example");
	to_h2(&head, &out);
	assert_field(&out, 2, ":authority", "origin.example:8080");
	assert_field(&out, 3, ":path", "/a?b=1");
	assert_null(header_list_get(&out, "host"));
	assert_int_equal(out.count, 4);
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_omits_authority_without_any_host(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	head.version_minor = 0;
	to_h2(&head, &out);
	assert_int_equal(out.count, 3);
	assert_field(&out, 0, ":method", "GET");
	assert_field(&out, 1, ":scheme", "http");
	assert_field(&out, 2, ":path", "/");
	header_list_free(&out);
}

static void
test_headers_request_to_h2_drops_hop_by_hop_fields(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	add(&head.fields, "Host", "example.com");
	add(&head.fields, "Connection", "keep-alive, X-Secret");
	add(&head.fields, "X-Secret", "hush");
	add(&head.fields, "Keep-Alive", "timeout=5");
	add(&head.fields, "Proxy-Connection", "keep-alive");
	add(&head.fields, "Transfer-Encoding", "chunked");
	add(&head.fields, "Upgrade", "h2c");
	add(&head.fields, "Accept", "text/html");
	add(&head.fields, "X-Public", "yes");
	to_h2(&head, &out);
	assert_int_equal(out.count, 6);
	assert_field(&out, 4, "accept", "text/html");
	assert_field(&out, 5, "x-public", "yes");
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_keeps_only_trailers_from_te(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	add(&head.fields, "TE", "trailers, deflate");
	to_h2(&head, &out);
	assert_int_equal(out.count, 4);
	assert_field(&out, 3, "te", "trailers");
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_drops_te_without_trailers(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	add(&head.fields, "TE", "gzip");
	to_h2(&head, &out);
	assert_int_equal(out.count, 3);
	assert_null(header_list_get(&out, "te"));
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_request_to_h2_lowercases_names_and_keeps_values(void **state)
{
	struct http1_head head;
	struct header_list out;

	(void)state;
	head_init(&head, "/");
	add(&head.fields, "X-MiXeD-Case", "Value Stays");
	add(&head.fields, "ACCEPT-LANGUAGE", "en-GB");
	to_h2(&head, &out);
	assert_int_equal(out.count, 5);
	assert_field(&out, 3, "x-mixed-case", "Value Stays");
	assert_field(&out, 4, "accept-language", "en-GB");
	header_list_free(&out);
	header_list_free(&head.fields);
}

static void
test_headers_to_nv_points_at_the_list_strings(void **state)
{
	struct header_list l;
	nghttp2_nv *nv;

	(void)state;
	header_list_init(&l);
	add(&l, ":status", "200");
	add(&l, "content-type", "text/plain");
	nv = headers_to_nv(&l);
	assert_non_null(nv);
	for (size_t i = 0; i < l.count; i++) {
		assert_ptr_equal(nv[i].name, l.items[i].name);
		assert_ptr_equal(nv[i].value, l.items[i].value);
		assert_int_equal(nv[i].namelen, l.items[i].name_len);
		assert_int_equal(nv[i].valuelen, l.items[i].value_len);
		assert_int_equal(nv[i].flags, NGHTTP2_NV_FLAG_NONE);
	}
	assert_memory_equal(nv[1].name, "content-type", 12);
	assert_memory_equal(nv[1].value, "text/plain", 10);
	free(nv);
	header_list_free(&l);
}

static void
test_headers_to_nv_of_empty_list_is_not_null(void **state)
{
	struct header_list l;
	nghttp2_nv *nv;

	(void)state;
	header_list_init(&l);
	nv = headers_to_nv(&l);
	assert_non_null(nv);
	free(nv);
}

/* Asserts that the len bytes at got are exactly the string want. */
static void
assert_bytes(const char *got, size_t len, const char *want)
{
	char *copy = strndup(got, len);

	assert_non_null(copy);
	assert_string_equal(copy, want);
	assert_int_equal(len, strlen(want));
	free(copy);
}

static void
test_headers_response_to_http1_writes_status_line_and_canonical_names(void **state)
{
	struct header_list h2;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	header_list_init(&h2);
	add(&h2, ":status", "200");
	add(&h2, "content-type", "text/plain");
	add(&h2, "x-request-id", "abc");
	add(&h2, "etag", "\"v1\"");
	assert_int_equal(headers_response_to_http1(200, &h2, "Transfer-Encoding: chunked",
	                                           &out, &len), 0);
	assert_bytes(out, len,
	             "HTTP/1.1 200 OK\r\n"
	             "Content-Type: text/plain\r\n"
	             "X-Request-Id: abc\r\n"
	             "Etag: \"v1\"\r\n"
	             "Transfer-Encoding: chunked\r\n"
	             "\r\n");
	free(out);
	header_list_free(&h2);
}

static void
test_headers_response_to_http1_drops_pseudo_and_hop_by_hop_fields(void **state)
{
	struct header_list h2;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	header_list_init(&h2);
	add(&h2, ":status", "404");
	add(&h2, "connection", "close");
	add(&h2, "keep-alive", "timeout=5");
	add(&h2, "transfer-encoding", "chunked");
	add(&h2, "server", "backend");
	assert_int_equal(headers_response_to_http1(404, &h2, "Content-Length: 9",
	                                           &out, &len), 0);
	assert_bytes(out, len,
	             "HTTP/1.1 404 Not Found\r\n"
	             "Server: backend\r\n"
	             "Content-Length: 9\r\n"
	             "\r\n");
	free(out);
	header_list_free(&h2);
}

static void
test_headers_response_to_http1_without_framing_ends_after_fields(void **state)
{
	struct header_list h2;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	header_list_init(&h2);
	add(&h2, "location", "/elsewhere");
	assert_int_equal(headers_response_to_http1(304, &h2, NULL, &out, &len), 0);
	assert_bytes(out, len,
	             "HTTP/1.1 304 Not Modified\r\n"
	             "Location: /elsewhere\r\n"
	             "\r\n");
	assert_memory_equal(out + len - 4, "\r\n\r\n", 4);
	free(out);
	header_list_free(&h2);
}

static void
test_headers_response_to_http1_with_no_fields_is_status_line_and_blank_line(void **state)
{
	struct header_list h2;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	header_list_init(&h2);
	assert_int_equal(headers_response_to_http1(599, &h2, NULL, &out, &len), 0);
	assert_bytes(out, len, "HTTP/1.1 599 Unknown\r\n\r\n");
	free(out);
}

static void
test_headers_reason_phrase_names_common_codes(void **state)
{
	(void)state;
	assert_string_equal(headers_reason_phrase(200), "OK");
	assert_string_equal(headers_reason_phrase(204), "No Content");
	assert_string_equal(headers_reason_phrase(404), "Not Found");
	assert_string_equal(headers_reason_phrase(414), "URI Too Long");
	assert_string_equal(headers_reason_phrase(431), "Request Header Fields Too Large");
	assert_string_equal(headers_reason_phrase(502), "Bad Gateway");
	assert_string_equal(headers_reason_phrase(503), "Service Unavailable");
}

static void
test_headers_reason_phrase_of_unknown_code_is_unknown(void **state)
{
	(void)state;
	assert_string_equal(headers_reason_phrase(299), "Unknown");
	assert_string_equal(headers_reason_phrase(0), "Unknown");
	assert_string_equal(headers_reason_phrase(-1), "Unknown");
}

/* With a client address, the router says who asked: X-Forwarded-For is
 * appended to what the user sent, the others are set, and Forwarded
 * quotes an IPv6 address. */
static void
test_headers_request_to_h2_adds_forwarding_fields(void **state)
{
	struct http1_head head = { .method = "GET", .path_and_query = "/" };
	struct header_list out;

	(void)state;
	header_list_init(&head.fields);
	header_list_add(&head.fields, "Host", 4, "example.com", 11);
	header_list_add(&head.fields, "X-Forwarded-For", 15, "10.0.0.1", 8);
	header_list_init(&out);
	assert_int_equal(headers_request_to_h2(&head, "192.0.2.7", &out), 0);
	assert_string_equal(header_list_get(&out, "x-forwarded-for"), "10.0.0.1, 192.0.2.7");
	assert_string_equal(header_list_get(&out, "x-forwarded-proto"), "http");
	assert_string_equal(header_list_get(&out, "x-forwarded-host"), "example.com");
	assert_string_equal(header_list_get(&out, "forwarded"),
	                    "for=192.0.2.7;host=\"example.com\";proto=http");
	header_list_free(&out);
	header_list_init(&out);
	assert_int_equal(headers_request_to_h2(&head, "2001:db8::1", &out), 0);
	assert_string_equal(header_list_get(&out, "forwarded"),
	                    "for=\"[2001:db8::1]\";host=\"example.com\";proto=http");
	header_list_free(&out);
	header_list_free(&head.fields);
}

/* Without a client address (--no-forwarded), user-sent forwarding
 * fields pass through untouched and none are added. */
static void
test_headers_request_to_h2_without_forwarding_adds_nothing(void **state)
{
	struct http1_head head = { .method = "GET", .path_and_query = "/" };
	struct header_list out;

	(void)state;
	header_list_init(&head.fields);
	header_list_add(&head.fields, "X-Forwarded-For", 15, "10.0.0.1", 8);
	header_list_init(&out);
	assert_int_equal(headers_request_to_h2(&head, NULL, &out), 0);
	assert_string_equal(header_list_get(&out, "x-forwarded-for"), "10.0.0.1");
	assert_null(header_list_get(&out, "forwarded"));
	assert_null(header_list_get(&out, "x-forwarded-proto"));
	header_list_free(&out);
	header_list_free(&head.fields);
}

/* A Host of any length yields a whole Forwarded value (no fixed buffer
 * may cut it short, leaving an open quote and no proto). */
static void
test_headers_forwarded_keeps_a_long_host_whole(void **state)
{
	struct http1_head head = { .method = "GET", .path_and_query = "/" };
	struct header_list out;
	char host[2001];
	const char *fwd;

	(void)state;
	memset(host, 'h', sizeof host - 1);
	host[sizeof host - 1] = '\0';
	header_list_init(&head.fields);
	header_list_add(&head.fields, "Host", 4, host, strlen(host));
	header_list_init(&out);
	assert_int_equal(headers_request_to_h2(&head, "192.0.2.7", &out), 0);
	fwd = header_list_get(&out, "forwarded");
	assert_non_null(fwd);
	assert_int_equal(strlen(fwd), strlen("for=192.0.2.7;host=\"\";proto=http") + 2000);
	assert_string_equal(fwd + strlen(fwd) - 12, "\";proto=http");
	header_list_free(&out);
	header_list_free(&head.fields);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_request_to_h2_adds_forwarding_fields),
		cmocka_unit_test(test_headers_forwarded_keeps_a_long_host_whole),
		cmocka_unit_test(test_headers_request_to_h2_without_forwarding_adds_nothing),
		cmocka_unit_test(test_headers_list_add_keeps_terminated_copies_in_order),
		cmocka_unit_test(test_headers_list_add_accepts_empty_value),
		cmocka_unit_test(test_headers_list_grows_past_its_first_allocation),
		cmocka_unit_test(test_headers_list_of_a_dozen_fields_takes_four_allocations),
		cmocka_unit_test(test_headers_list_clear_keeps_storage_for_the_next_fields),
		cmocka_unit_test(test_headers_list_clear_lets_large_storage_go),
		cmocka_unit_test(test_headers_list_get_ignores_case),
		cmocka_unit_test(test_headers_list_get_returns_first_of_repeated_fields),
		cmocka_unit_test(test_headers_list_get_returns_null_for_missing_field),
		cmocka_unit_test(test_headers_token_in_list_matches_whole_tokens_in_any_case),
		cmocka_unit_test(test_headers_token_in_list_is_false_for_empty_or_null_list),
		cmocka_unit_test(test_headers_is_hop_by_hop_knows_fixed_set_and_connection_names),
		cmocka_unit_test(test_headers_request_to_h2_puts_pseudo_fields_first_in_order),
		cmocka_unit_test(test_headers_request_to_h2_turns_host_into_authority),
		cmocka_unit_test(test_headers_request_to_h2_prefers_absolute_form_host_over_host_field),
		cmocka_unit_test(test_headers_request_to_h2_omits_authority_without_any_host),
		cmocka_unit_test(test_headers_request_to_h2_drops_hop_by_hop_fields),
		cmocka_unit_test(test_headers_request_to_h2_keeps_only_trailers_from_te),
		cmocka_unit_test(test_headers_request_to_h2_drops_te_without_trailers),
		cmocka_unit_test(test_headers_request_to_h2_lowercases_names_and_keeps_values),
		cmocka_unit_test(test_headers_to_nv_points_at_the_list_strings),
		cmocka_unit_test(test_headers_to_nv_of_empty_list_is_not_null),
		cmocka_unit_test(test_headers_response_to_http1_writes_status_line_and_canonical_names),
		cmocka_unit_test(test_headers_response_to_http1_drops_pseudo_and_hop_by_hop_fields),
		cmocka_unit_test(test_headers_response_to_http1_without_framing_ends_after_fields),
		cmocka_unit_test(test_headers_response_to_http1_with_no_fields_is_status_line_and_blank_line),
		cmocka_unit_test(test_headers_reason_phrase_names_common_codes),
		cmocka_unit_test(test_headers_reason_phrase_of_unknown_code_is_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
