/*
 * test_http1.c -- unit tests for src/router/http1.c: request heads, bodies by
 * Content-Length and chunked, pipelining, absolute-form targets, the
 * limits that answer 414 and 431, malformed input that answers 400, the
 * RFC 9112 checks (Host, field names, obsolete line folding), and
 * callbacks that refuse.
 *
 * Every HTTP/1.1 request here carries a Host field unless the test is
 * about its absence: without one the parser answers 400.
 *
 * The callbacks copy everything they are given into a struct recorder,
 * since the parser forgets the head once on_head() returns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"
#include "http1.h"

/* What the parser told us, in order. */
struct recorder {
	int heads, bodies, ends;
	char method[16];
	char path[256];
	char url_host[256];
	bool has_url_host;
	int version_minor;
	bool has_body, keep_alive;
	long long content_length;    /* -1 when unknown or chunked */
	struct header_list fields;   /* a copy of the last head's fields */
	char body[4096];
	size_t body_len;
	/* What each callback returns; 0 unless a test wants a refusal. */
	int head_rc, body_rc, end_rc;
};

/* Implements http1_callbacks.on_head. We use it to copy the head. */
static int
on_head(void *arg, const struct http1_head *head, bool has_body,
        long long content_length, bool keep_alive)
{
	struct recorder *r = arg;

	r->heads++;
	snprintf(r->method, sizeof r->method, "%s", head->method);
	snprintf(r->path, sizeof r->path, "%s", head->path_and_query);
	r->has_url_host = head->url_host != NULL;
	snprintf(r->url_host, sizeof r->url_host, "%s",
	         head->url_host ? head->url_host : "");
	r->version_minor = head->version_minor;
	r->has_body = has_body;
	r->content_length = content_length;
	r->keep_alive = keep_alive;
	header_list_free(&r->fields);
	for (size_t i = 0; i < head->fields.count; i++) {
		const struct header *h = &head->fields.items[i];
		if (header_list_add(&r->fields, h->name, h->name_len,
		                    h->value, h->value_len) < 0)
			return -1;
	}
	return r->head_rc;
}

/* Implements http1_callbacks.on_body. We use it to append the piece. */
static int
on_body(void *arg, const char *data, size_t len)
{
	struct recorder *r = arg;

	r->bodies++;
	if (len > sizeof r->body - r->body_len)
		return -1;
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	return r->body_rc;
}

/* Implements http1_callbacks.on_end. We use it to count messages. */
static int
on_end(void *arg)
{
	struct recorder *r = arg;

	r->ends++;
	return r->end_rc;
}

static const struct http1_callbacks callbacks = {
	.on_head = on_head,
	.on_body = on_body,
	.on_end = on_end,
};

static const struct http1_limits roomy = {
	.max_uri = 8192,
	.max_header_bytes = 16384,
	.max_header_fields = 100,
};

/* For the 414 tests: targets of up to 16 bytes. */
static const struct http1_limits short_uri = {
	.max_uri = 16, .max_header_bytes = 1024, .max_header_fields = 10,
};

static void
recorder_init(struct recorder *r)
{
	memset(r, 0, sizeof *r);
	header_list_init(&r->fields);
}

static void
recorder_free(struct recorder *r)
{
	header_list_free(&r->fields);
}

/* A parser with the given limits (roomy when NULL) reporting to r. */
static struct http1_parser *
parser_new(struct recorder *r, const struct http1_limits *limits)
{
	struct http1_parser *p;

	recorder_init(r);
	p = http1_parser_new(&callbacks, r, limits ? limits : &roomy);
	assert_non_null(p);
	return p;
}

static void
parser_free(struct http1_parser *p, struct recorder *r)
{
	http1_parser_free(p);
	recorder_free(r);
}

static ssize_t
feed_str(struct http1_parser *p, const char *s)
{
	return http1_parser_feed(p, s, strlen(s));
}

static void
test_http1_simple_get_reports_head_without_body(void **state)
{
	static const char req[] = "GET /index.html?x=1 HTTP/1.1\r\n"
	                          "Host: example.com\r\n"
	                          "Accept: */*\r\n"
	                          "\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.bodies, 0);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/index.html?x=1");
	assert_false(r.has_url_host);
	assert_int_equal(r.version_minor, 1);
	assert_false(r.has_body);
	assert_true(r.keep_alive);
	assert_int_equal(r.fields.count, 2);
	assert_string_equal(header_list_get(&r.fields, "host"), "example.com");
	assert_string_equal(header_list_get(&r.fields, "accept"), "*/*");
	assert_false(http1_parser_in_message(p));
	parser_free(p, &r);
}

static void
test_http1_http10_request_is_not_keep_alive(void **state)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.version_minor, 0);
	assert_false(r.keep_alive);
	assert_int_equal(r.ends, 1);
	parser_free(p, &r);
}

static void
test_http1_connection_close_turns_off_keep_alive(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n"
	                          "Connection: close\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.version_minor, 1);
	assert_false(r.keep_alive);
	parser_free(p, &r);
}

static void
test_http1_content_length_zero_has_no_body(void **state)
{
	static const char req[] = "POST /x HTTP/1.1\r\nHost: h\r\n"
	                          "Content-Length: 0\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_string_equal(r.method, "POST");
	assert_false(r.has_body);
	assert_int_equal(r.bodies, 0);
	assert_int_equal(r.ends, 1);
	parser_free(p, &r);
}

static void
test_http1_content_length_body_arrives_across_feeds(void **state)
{
	static const char *const parts[] = {
		"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Len",
		"gth: 11\r\n\r\nhel",
		"lo wo",
		"rld",
	};
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, parts[0]), strlen(parts[0]));
	assert_int_equal(r.heads, 0);
	assert_true(http1_parser_in_message(p));
	assert_int_equal(feed_str(p, parts[1]), strlen(parts[1]));
	assert_int_equal(r.heads, 1);
	assert_true(r.has_body);
	assert_int_equal(feed_str(p, parts[2]), strlen(parts[2]));
	assert_int_equal(r.ends, 0);
	assert_int_equal(feed_str(p, parts[3]), strlen(parts[3]));
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.body_len, 11);
	assert_memory_equal(r.body, "hello world", 11);
	assert_string_equal(header_list_get(&r.fields, "content-length"), "11");
	assert_false(http1_parser_in_message(p));
	parser_free(p, &r);
}

static void
test_http1_content_length_body_arrives_byte_by_byte(void **state)
{
	static const char req[] = "PUT /item/7 HTTP/1.1\r\n"
	                          "Host: example.com\r\n"
	                          "Content-Length: 13\r\n"
	                          "\r\n"
	                          "one byte each";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	for (size_t i = 0; i < strlen(req); i++) {
		assert_int_equal(http1_parser_feed(p, req + i, 1), 1);
		assert_int_equal(r.ends, i + 1 == strlen(req) ? 1 : 0);
	}
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.method, "PUT");
	assert_string_equal(r.path, "/item/7");
	assert_true(r.has_body);
	assert_int_equal(r.fields.count, 2);
	assert_string_equal(header_list_get(&r.fields, "Host"), "example.com");
	assert_int_equal(r.body_len, 13);
	assert_memory_equal(r.body, "one byte each", 13);
	parser_free(p, &r);
}

static void
test_http1_chunked_body_is_decoded(void **state)
{
	static const char req[] = "POST /up HTTP/1.1\r\n"
	                          "Host: h\r\n"
	                          "Transfer-Encoding: chunked\r\n"
	                          "\r\n"
	                          "5\r\nhello\r\n"
	                          "6;ext=1\r\n world\r\n"
	                          "a\r\n, chunked!\r\n"
	                          "0\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_true(r.has_body);
	assert_true(r.keep_alive);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.body_len, 21);
	assert_memory_equal(r.body, "hello world, chunked!", 21);
	parser_free(p, &r);
}

static void
test_http1_chunked_body_is_decoded_byte_by_byte(void **state)
{
	static const char req[] = "POST /up HTTP/1.1\r\n"
	                          "Host: h\r\n"
	                          "Transfer-Encoding: chunked\r\n"
	                          "\r\n"
	                          "3\r\nabc\r\n"
	                          "4\r\ndefg\r\n"
	                          "0\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	for (size_t i = 0; i < strlen(req); i++)
		assert_int_equal(http1_parser_feed(p, req + i, 1), 1);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.body_len, 7);
	assert_memory_equal(r.body, "abcdefg", 7);
	parser_free(p, &r);
}

static void
test_http1_pipelined_requests_are_parsed_one_at_a_time(void **state)
{
	static const char first[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char second[] = "POST /two HTTP/1.1\r\nHost: b\r\n"
	                             "Content-Length: 3\r\n\r\nxyz";
	char both[sizeof first + sizeof second];
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);
	size_t len;

	(void)state;
	len = (size_t)snprintf(both, sizeof both, "%s%s", first, second);
	assert_int_equal(http1_parser_feed(p, both, len), strlen(first));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.ends, 1);
	assert_string_equal(r.path, "/one");
	assert_string_equal(header_list_get(&r.fields, "host"), "a");

	assert_int_equal(http1_parser_feed(p, both + strlen(first), len - strlen(first)),
	                 strlen(second));
	assert_int_equal(r.heads, 2);
	assert_int_equal(r.ends, 2);
	assert_string_equal(r.method, "POST");
	assert_string_equal(r.path, "/two");
	assert_int_equal(r.fields.count, 2);
	assert_string_equal(header_list_get(&r.fields, "host"), "b");
	assert_int_equal(r.body_len, 3);
	assert_memory_equal(r.body, "xyz", 3);
	parser_free(p, &r);
}

static void
test_http1_absolute_form_target_gives_path_and_host(void **state)
{
	static const char req[] = "GET http://example.com:8080/a?b=1 HTTP/1.1\r\n"
	                          "Host: example.com:8080\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.path, "/a?b=1");
	assert_true(r.has_url_host);
	assert_string_equal(r.url_host, "example.com:8080");
	parser_free(p, &r);
}

static void
test_http1_absolute_form_without_path_gives_slash(void **state)
{
	static const char req[] = "GET http://example.com HTTP/1.1\r\n"
	                          "Host: example.com\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.path, "/");
	assert_true(r.has_url_host);
	assert_string_equal(r.url_host, "example.com");
	parser_free(p, &r);
}

static void
test_http1_asterisk_target_is_kept(void **state)
{
	static const char req[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_string_equal(r.method, "OPTIONS");
	assert_string_equal(r.path, "*");
	assert_false(r.has_url_host);
	parser_free(p, &r);
}

static void
test_http1_empty_field_value_is_kept_apart_from_next_field(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n"
	                          "X-Empty:\r\nX-Next: 1\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.fields.count, 3);
	assert_string_equal(r.fields.items[1].name, "X-Empty");
	assert_string_equal(r.fields.items[1].value, "");
	assert_string_equal(r.fields.items[2].name, "X-Next");
	assert_string_equal(r.fields.items[2].value, "1");
	parser_free(p, &r);
}

/* A 16-byte target passes a 16-byte limit... */
static void
test_http1_target_of_exactly_max_uri_is_accepted(void **state)
{
	static const char req[] = "GET /0123456789abcde HTTP/1.1\r\nHost: h\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &short_uri);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.path, "/0123456789abcde");
	assert_int_equal(strlen(r.path), short_uri.max_uri);
	parser_free(p, &r);
}

/* ...and one byte more is refused before on_head() is called. */
static void
test_http1_target_over_max_uri_is_414(void **state)
{
	static const char req[] = "GET /0123456789abcdef HTTP/1.1\r\nHost: h\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &short_uri);

	(void)state;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 414);
	assert_non_null(http1_parser_error_text(p));
	assert_int_equal(r.heads, 0);
	assert_int_equal(r.ends, 0);
	parser_free(p, &r);
}

static void
test_http1_fields_up_to_the_limit_are_accepted(void **state)
{
	static const struct http1_limits limits = {
		.max_uri = 1024, .max_header_bytes = 1024, .max_header_fields = 3,
	};
	/* Host is one of the three. */
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &limits);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.fields.count, 3);
	parser_free(p, &r);
}

static void
test_http1_too_many_fields_is_431(void **state)
{
	static const struct http1_limits limits = {
		.max_uri = 1024, .max_header_bytes = 1024, .max_header_fields = 3,
	};
	/* Host and three more: four fields. */
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &limits);

	(void)state;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 431);
	assert_int_equal(r.heads, 0);
	parser_free(p, &r);
}

static void
test_http1_long_field_over_max_header_bytes_is_431(void **state)
{
	static const struct http1_limits limits = {
		.max_uri = 1024, .max_header_bytes = 64, .max_header_fields = 100,
	};
	char req[256];
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &limits);

	(void)state;
	/* "Host" + "abc" (7 bytes), then "X-Big" plus a 53-byte value: 65
	 * bytes of fields, one over the limit. */
	snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: abc\r\nX-Big: %053d\r\n\r\n", 7);
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 431);
	assert_int_equal(r.heads, 0);
	parser_free(p, &r);
}

static void
test_http1_many_small_fields_over_max_header_bytes_are_431(void **state)
{
	static const struct http1_limits limits = {
		.max_uri = 1024, .max_header_bytes = 64, .max_header_fields = 100,
	};
	/* Ten fields of 7 bytes each ("Host" or "X-Nn", + "abc"): 70 bytes. */
	static const char req[] = "GET / HTTP/1.1\r\n"
	                          "Host: abc\r\nX-01: abc\r\nX-02: abc\r\nX-03: abc\r\n"
	                          "X-04: abc\r\nX-05: abc\r\nX-06: abc\r\nX-07: abc\r\n"
	                          "X-08: abc\r\nX-09: abc\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &limits);

	(void)state;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 431);
	assert_int_equal(r.heads, 0);
	parser_free(p, &r);
}

static void
test_http1_header_block_at_max_header_bytes_is_accepted(void **state)
{
	static const struct http1_limits limits = {
		.max_uri = 1024, .max_header_bytes = 63, .max_header_fields = 100,
	};
	/* Nine fields of 7 bytes each, Host among them: exactly 63 bytes. */
	static const char req[] = "GET / HTTP/1.1\r\n"
	                          "Host: abc\r\nX-01: abc\r\nX-02: abc\r\nX-03: abc\r\n"
	                          "X-04: abc\r\nX-05: abc\r\nX-06: abc\r\nX-07: abc\r\n"
	                          "X-08: abc\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &limits);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.fields.count, 9);
	parser_free(p, &r);
}

static void
test_http1_garbage_is_400(void **state)
{
	static const char req[] = "\x01\x02 this is not http\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 400);
	assert_non_null(http1_parser_error_text(p));
	assert_int_equal(r.heads, 0);
	parser_free(p, &r);
}

static void
test_http1_content_length_with_chunked_is_400(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\n"
	                          "Host: h\r\n"
	                          "Content-Length: 5\r\n"
	                          "Transfer-Encoding: chunked\r\n"
	                          "\r\n"
	                          "0\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 400);
	assert_int_equal(r.heads, 0);
	assert_int_equal(r.ends, 0);
	parser_free(p, &r);
}

static void
test_http1_eof_inside_body_is_eproto(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: h\r\n"
	                          "Content-Length: 10\r\n\r\nabcd";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_true(http1_parser_in_message(p));
	assert_int_equal(http1_parser_feed_eof(p), PTTH_EPROTO);
	assert_int_equal(r.ends, 0);
	parser_free(p, &r);
}

static void
test_http1_eof_inside_head_is_eproto(void **state)
{
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, "GET / HT"), 8);
	assert_true(http1_parser_in_message(p));
	assert_int_equal(http1_parser_feed_eof(p), PTTH_EPROTO);
	assert_int_equal(r.heads, 0);
	parser_free(p, &r);
}

static void
test_http1_eof_between_requests_is_clean(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(http1_parser_feed_eof(p), 0);
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_false(http1_parser_in_message(p));
	assert_int_equal(http1_parser_feed_eof(p), 0);
	assert_int_equal(r.ends, 1);
	parser_free(p, &r);
}

static void
test_http1_on_head_failure_makes_feed_fail(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: h\r\n"
	                          "Content-Length: 3\r\n\r\nabc";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	r.head_rc = -12;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.bodies, 0);
	assert_int_equal(r.ends, 0);
	assert_int_equal(http1_parser_error_status(p), 500);
	parser_free(p, &r);
}

static void
test_http1_on_body_failure_makes_feed_fail(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: h\r\n"
	                          "Content-Length: 3\r\n\r\nabc";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	r.body_rc = -1;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(r.bodies, 1);
	assert_int_equal(r.ends, 0);
	assert_int_equal(http1_parser_error_status(p), 500);
	parser_free(p, &r);
}

static void
test_http1_on_end_failure_makes_feed_fail(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	r.end_rc = -1;
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(r.ends, 1);
	assert_int_equal(http1_parser_error_status(p), 500);
	parser_free(p, &r);
}

/* Checks that p refused the request with 400 before calling on_head(),
 * with an error text that mentions what. */
static void
assert_refused_400(struct http1_parser *p, const struct recorder *r, const char *what)
{
	assert_int_equal(http1_parser_error_status(p), 400);
	assert_non_null(strstr(http1_parser_error_text(p), what));
	assert_int_equal(r->heads, 0);
	assert_int_equal(r->ends, 0);
}

/* Feeds req in one piece and checks that it is refused as above. */
static void
assert_request_refused_400(const char *req, const char *what)
{
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_refused_400(p, &r, what);
	parser_free(p, &r);
}

/* HTTP/1.0 predates Host as a requirement (RFC 9112 section 3.2 asks it
 * of HTTP/1.1 only), so its absence is fine there. */
static void
test_http1_http10_request_without_host_is_accepted(void **state)
{
	static const char req[] = "GET /old HTTP/1.0\r\nAccept: */*\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.ends, 1);
	assert_int_equal(r.version_minor, 0);
	assert_string_equal(r.path, "/old");
	assert_null(header_list_get(&r.fields, "host"));
	parser_free(p, &r);
}

static void
test_http1_http11_request_without_host_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
	                           "missing Host");
}

/* Two Host fields, spelled differently, even with the same value. */
static void
test_http1_two_host_fields_are_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
	                           "more than one Host");
}

static void
test_http1_host_disagreeing_with_absolute_target_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET http://example.com/a HTTP/1.1\r\n"
	                           "Host: other.example\r\n\r\n",
	                           "Host disagrees");
}

/* Host names are case-insensitive, so these two agree. */
static void
test_http1_host_matching_absolute_target_in_other_case_is_accepted(void **state)
{
	static const char req[] = "GET http://Example.COM:8080/a HTTP/1.1\r\n"
	                          "Host: example.com:8080\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.url_host, "Example.COM:8080");
	assert_string_equal(r.path, "/a");
	assert_string_equal(header_list_get(&r.fields, "host"), "example.com:8080");
	parser_free(p, &r);
}

/* Host is compared after its trailing whitespace is gone. */
static void
test_http1_host_with_trailing_whitespace_matches_absolute_target(void **state)
{
	static const char req[] = "GET http://example.com/ HTTP/1.1\r\n"
	                          "Host: example.com \t\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(header_list_get(&r.fields, "host"), "example.com");
	parser_free(p, &r);
}

/* "Host : x" reaches the glue as the field name "Host ". */
static void
test_http1_space_before_colon_in_field_name_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost : example.com\r\n\r\n",
	                           "whitespace in a field name");
}

static void
test_http1_space_before_colon_in_other_field_name_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n",
	                           "whitespace in a field name");
}

static void
test_http1_obsolete_line_folding_with_space_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost: h\r\n"
	                           "X-A: a\r\n b\r\n\r\n",
	                           "obsolete line folding");
}

static void
test_http1_obsolete_line_folding_with_tab_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost: h\r\n"
	                           "X-A: a\r\n\tb\r\n\r\n",
	                           "obsolete line folding");
}

/* A fold whose first line has an empty value is still a fold. */
static void
test_http1_obsolete_line_folding_after_empty_value_is_400(void **state)
{
	(void)state;
	assert_request_refused_400("GET / HTTP/1.1\r\nHost: h\r\n"
	                           "X-A:\r\n b\r\n\r\n",
	                           "obsolete line folding");
}

/* The line break ends one feed and the continuation starts the next. */
static void
test_http1_obsolete_line_folding_across_feeds_is_400(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, head), strlen(head));
	assert_int_equal(feed_str(p, "  b\r\n\r\n"), PTTH_EPROTO);
	assert_refused_400(p, &r, "obsolete line folding");
	parser_free(p, &r);
}

/* A read that cuts a value before a space is not a fold: the byte before
 * the second feed is 'o', not a line break. */
static void
test_http1_value_split_across_feeds_before_space_is_accepted(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: hello";
	static const char rest[] = " world\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, head), strlen(head));
	assert_int_equal(feed_str(p, rest), strlen(rest));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.ends, 1);
	assert_string_equal(header_list_get(&r.fields, "x-a"), "hello world");
	parser_free(p, &r);
}

static void
test_http1_trailing_whitespace_of_field_value_is_trimmed(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: x\t \r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(header_list_get(&r.fields, "x-a"), "x");
	parser_free(p, &r);
}

static void
test_http1_absolute_form_ipv6_literal_keeps_brackets(void **state)
{
	static const char req[] = "GET http://[::1]:8080/x HTTP/1.1\r\n"
	                          "Host: [::1]:8080\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_true(r.has_url_host);
	assert_string_equal(r.url_host, "[::1]:8080");
	assert_string_equal(r.path, "/x");
	parser_free(p, &r);
}

static void
test_http1_absolute_form_ipv6_literal_without_port_keeps_brackets(void **state)
{
	static const char req[] = "GET http://[::1]/ HTTP/1.1\r\nHost: [::1]\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.url_host, "[::1]");
	assert_string_equal(r.path, "/");
	parser_free(p, &r);
}

static void
test_http1_absolute_form_with_query_but_no_path_gives_slash_query(void **state)
{
	static const char req[] = "GET http://example.com?x=1 HTTP/1.1\r\n"
	                          "Host: example.com\r\n\r\n";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.url_host, "example.com");
	assert_string_equal(r.path, "/?x=1");
	parser_free(p, &r);
}

/* Many empty lines before a request (allowed by RFC 9112 section 2.2)
 * are skipped in a loop: 64 KiB of them once overflowed a thread stack
 * by recursing per line. The request after them is still checked. */
static void
test_http1_many_empty_lines_before_a_request_are_skipped(void **state)
{
	static const char req[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t blank = 64 * 1024;
	char *buf = malloc(blank + sizeof req);
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_non_null(buf);
	memset(buf, '\n', blank);
	memcpy(buf + blank, req, sizeof req);
	assert_int_equal(http1_parser_feed(p, buf, blank + sizeof req - 1),
	                 (ssize_t)(blank + sizeof req - 1));
	assert_int_equal(r.heads, 1);
	assert_string_equal(r.path, "/x");
	free(buf);
	parser_free(p, &r);
}

/* ---------------------------------------------------------------------
 * A request the router refuses is judged whole before on_head() runs:
 * nothing of it may reach a backend.
 */

/* req made printable for a failure message: CR, LF and others escaped. */
static const char *
printable(const char *req)
{
	static char out[512];
	size_t n = 0;

	for (; *req != '\0' && n + 5 < sizeof out; req++) {
		unsigned char ch = (unsigned char)*req;
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[n++] = (char)ch;
		else
			n += (size_t)snprintf(out + n, sizeof out - n, "\\x%02x", ch);
	}
	out[n] = '\0';
	return out;
}

/* Feeds req whole, then byte by byte on a second parser, and checks that
 * both refuse it with status and an error text containing what, having
 * called on_head() heads times and on_end() never. */
static void
assert_refused_after_heads(const char *req, int heads, int status, const char *what)
{
	for (int bytewise = 0; bytewise <= 1; bytewise++) {
		struct recorder r;
		struct http1_parser *p = parser_new(&r, NULL);
		ssize_t rc = 0;

		if (!bytewise)
			rc = feed_str(p, req);
		for (size_t i = 0; bytewise && req[i] != '\0' && rc >= 0; i++)
			rc = http1_parser_feed(p, req + i, 1);
		if (rc != PTTH_EPROTO || http1_parser_error_status(p) != status ||
		    strstr(http1_parser_error_text(p), what) == NULL || r.heads != heads ||
		    r.ends != 0)
			fail_msg("%s%s: got %zd, %d \"%s\", %d heads, %d ends; expected %d \"%s\"",
			         printable(req), bytewise ? " (byte by byte)" : "", rc,
			         http1_parser_error_status(p), http1_parser_error_text(p), r.heads,
			         r.ends, status, what);
		parser_free(p, &r);
	}
}

/* A request refused as a whole: on_head() never runs. */
static void
assert_refused_both_ways(const char *req, int status, const char *what)
{
	assert_refused_after_heads(req, 0, status, what);
}

/* A request whose body breaks its framing: its head went on, its end never. */
static void
assert_body_refused_both_ways(const char *req, const char *what)
{
	assert_refused_after_heads(req, 1, 400, what);
}

/* Feeds req whole, then byte by byte, and checks that both accept it as
 * one request: its head, its whole body, its end. r holds the second. */
static void
assert_accepted_both_ways(const char *req, struct recorder *r)
{
	for (int bytewise = 0; bytewise <= 1; bytewise++) {
		struct http1_parser *p;
		ssize_t rc = 0;

		if (bytewise)
			recorder_free(r);
		p = parser_new(r, NULL);
		if (!bytewise)
			rc = feed_str(p, req);
		for (size_t i = 0; bytewise && req[i] != '\0' && rc >= 0; i++)
			rc = http1_parser_feed(p, req + i, 1);
		if (rc < 0 || r->heads != 1 || r->ends != 1)
			fail_msg("%s%s: got %zd, %d heads, %d ends (%d \"%s\")", printable(req),
			         bytewise ? " (byte by byte)" : "", rc, r->heads, r->ends,
			         http1_parser_error_status(p), http1_parser_error_text(p));
		http1_parser_free(p);
	}
}

/* http-parser reports a Transfer-Encoding without chunked last only
 * after its head was handed on (RFC 9112 section 6.3: 400). */
static void
test_http1_transfer_encoding_without_chunked_last_is_400_before_on_head(void **state)
{
	(void)state;
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"
	                         "5\r\nhello\r\n0\r\n\r\n", 400, "transfer-encoding");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip"
	                         "\r\n\r\n", 400, "transfer-encoding");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	                         "Transfer-Encoding: identity\r\n\r\n", 400, "transfer-encoding");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400,
	                         "transfer-encoding");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1"
	                         "\r\n\r\n", 400, "transfer-encoding");
	/* Where http-parser and the router read the list differently, the
	 * request is refused too. */
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,"
	                         "\r\n\r\n", 400, "malformed Transfer-Encoding");
}

/* RFC 9112 section 6.1: a coding the router does not implement is 501,
 * not silently de-chunked and forwarded as if it were absent. */
static void
test_http1_unknown_transfer_coding_is_501_before_on_head(void **state)
{
	(void)state;
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked"
	                         "\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "not implemented");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
	                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501,
	                         "not implemented");
}

/* RFC 9112 section 7: chunked is applied once. */
static void
test_http1_chunked_applied_twice_is_400(void **state)
{
	(void)state;
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
	                         "chunked\r\n\r\n0\r\n\r\n", 400, "more than once");
}

/* Codings are case-insensitive, and empty list elements do not count. */
static void
test_http1_chunked_in_any_case_with_empty_elements_is_accepted(void **state)
{
	struct recorder r;

	(void)state;
	assert_accepted_both_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,, CHUNKED "
	                          "\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &r);
	assert_true(r.has_body);
	assert_int_equal(r.body_len, 5);
	recorder_free(&r);
}

/* RFC 9112 section 6.1: a Transfer-Encoding in an HTTP/1.0 request means
 * the connection closes after the answer, keep-alive or not. */
static void
test_http1_transfer_encoding_in_http10_turns_off_keep_alive(void **state)
{
	struct recorder r;

	(void)state;
	assert_accepted_both_ways("POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
	                          "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &r);
	assert_false(r.keep_alive);
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "hello", 5);
	recorder_free(&r);
}

/* Without Transfer-Encoding, HTTP/1.0 keep-alive still works. */
static void
test_http1_http10_keep_alive_without_transfer_encoding_is_kept(void **state)
{
	struct recorder r;

	(void)state;
	assert_accepted_both_ways("POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
	                          "Content-Length: 5\r\n\r\nhello", &r);
	assert_true(r.keep_alive);
	recorder_free(&r);
}

/* 2^63 - 1 is the largest Content-Length a long long holds; 2^63 and
 * above once turned negative and slipped past --max-body. */
static void
test_http1_content_length_of_2_63_or_more_is_400(void **state)
{
	(void)state;
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\n"
	                         "Content-Length: 9223372036854775808\r\n\r\n", 400,
	                         "Content-Length out of range");
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\n"
	                         "Content-Length: 10000000000000000000\r\n\r\n", 400,
	                         "Content-Length out of range");
	/* From about 1.8e19 on, http-parser refuses it by itself. */
	assert_refused_both_ways("POST / HTTP/1.1\r\nHost: h\r\n"
	                         "Content-Length: 99999999999999999999\r\n\r\n", 400, "content");
}

static void
test_http1_content_length_of_2_63_minus_1_is_accepted(void **state)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: h\r\n"
	                          "Content-Length: 9223372036854775807\r\n\r\nabc";
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_int_equal(feed_str(p, req), strlen(req));
	assert_int_equal(r.heads, 1);
	assert_true(r.has_body);
	assert_true(r.content_length == LLONG_MAX);
	assert_int_equal(r.body_len, 3);
	parser_free(p, &r);
}

/* CONNECT, in any form, is refused (and since its body framing is
 * unknown, what follows it is not parsed as another request). */
static void
test_http1_connect_is_400_before_on_head(void **state)
{
	(void)state;
	assert_refused_both_ways("CONNECT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 28\r\n\r\n"
	                         "GET /foo HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CONNECT");
	assert_refused_both_ways("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 400, "CONNECT");
}

/* RFC 9112 section 3.2, RFC 3986: what http-parser lets into a target. */
static void
test_http1_invalid_request_targets_are_400(void **state)
{
	(void)state;
	assert_refused_both_ways("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400, "invalid character");
	assert_refused_both_ways("GET /a\fb HTTP/1.1\r\nHost: h\r\n\r\n", 400, "invalid character");
	assert_refused_both_ways("GET /\x80\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400,
	                         "invalid character");
	assert_refused_both_ways("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400, "fragment");
	assert_refused_both_ways("GET /a?q#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400, "fragment");
	assert_refused_both_ways("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "OPTIONS");
	assert_refused_both_ways("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400, "userinfo");
}

/* Characters browsers send unescaped stay allowed. */
static void
test_http1_target_with_characters_browsers_send_is_accepted(void **state)
{
	struct recorder r;

	(void)state;
	assert_accepted_both_ways("GET /a|b/{c}?x[]=1&y=^%zz HTTP/1.1\r\nHost: h\r\n\r\n", &r);
	assert_string_equal(r.path, "/a|b/{c}?x[]=1&y=^%zz");
	recorder_free(&r);
}

/* RFC 9110 section 7.2: Host is uri-host [":" port]. */
static void
test_http1_invalid_host_values_are_400(void **state)
{
	static const char *const hosts[] = {
		"a b", "a/b", "a@b", "a\tb", "a:b", "a:123456", ":80", "[::1", "[]", "[g::1]",
		"a\"b", "a?b", "a#b", "a\\b", "\x80", "[::1]x",
	};
	char req[128];

	(void)state;
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
		assert_refused_both_ways(req, 400, "invalid Host");
	}
}

static void
test_http1_valid_host_values_are_accepted(void **state)
{
	static const char *const hosts[] = {
		"", "a", "a.example:8080", "a:", "127.0.0.1:80", "[::1]", "[::1]:8888",
		"[::ffff:1.2.3.4]", "xn--bcher-kva.example", "a_b~c!$&'()*+,;=%41",
	};
	char req[128];
	struct recorder r;

	(void)state;
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
		assert_accepted_both_ways(req, &r);
		assert_string_equal(header_list_get(&r.fields, "host"), hosts[i]);
		recorder_free(&r);
	}
}

/* http-parser takes any byte after the head's last CR for its LF. */
static void
test_http1_head_not_ended_by_crlf_is_400(void **state)
{
	(void)state;
	assert_refused_both_ways("GET / HTTP/1.1\r\nHost: h\r\n\rXGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	                         400, "head not ended");
}

/* A bare LF may end head lines (RFC 9112 section 2.2 allows it). */
static void
test_http1_head_with_bare_lf_line_ends_is_accepted(void **state)
{
	struct recorder r;

	(void)state;
	assert_accepted_both_ways("GET /lf HTTP/1.1\nHost: h\n\n", &r);
	assert_string_equal(r.path, "/lf");
	recorder_free(&r);
}

/* A head longer than http-parser's own cap (which --max-header-bytes
 * cannot raise) is a 431 like any head over the limit, not a 400. */
static void
test_http1_head_over_the_parser_cap_is_431(void **state)
{
	static const struct http1_limits capped = {
		.max_uri = 8192,
		.max_header_bytes = PTTH_MAX_HEADER_BYTES_CAP,
		.max_header_fields = 100,
	};
	size_t pad = PTTH_MAX_HEADER_BYTES_CAP - 100;
	char *req = malloc(pad + 256);
	struct recorder r;
	struct http1_parser *p = parser_new(&r, &capped);
	int n;

	(void)state;
	assert_non_null(req);
	n = snprintf(req, 128, "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ");
	memset(req + n, 'p', pad);
	/* Blanks before a value are not part of it, but count for http-parser. */
	memset(req + n, ' ', 200);
	snprintf(req + n + pad, 128, "\r\nX-More: %0100d\r\n\r\n", 0);
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 431);
	assert_int_equal(r.heads, 0);
	free(req);
	parser_free(p, &r);
}

/* ---------------------------------------------------------------------
 * Chunked framing, read strictly (RFC 9112 section 7.1): http-parser
 * takes any byte where these CRs and LFs belong.
 */

static const char chunked_head[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

/* The head above, then body. */
static const char *
chunked_request(const char *body)
{
	static char req[512];

	snprintf(req, sizeof req, "%s%s", chunked_head, body);
	return req;
}

static void
test_http1_loose_chunk_framing_is_400(void **state)
{
	static const struct {
		const char *body, *why;
	} cases[] = {
		{ "5\r\nhelloXY0\r\n\r\n", "chunk data not followed by CR LF" },
		{ "5\r\nhello\n0\r\n\r\n", "chunk data not followed by CR LF" },
		{ "5\r\nhello\r0\r\n\r\n", "chunk data not followed by CR LF" },
		{ "5\rXhello\r\n0\r\n\r\n", "chunk size line not ended by CR LF" },
		{ "5\nhello\r\n0\r\n\r\n", "invalid chunk size" },
		{ "5\r\nhello\r\n0\rX\r\n", "chunk size line not ended by CR LF" },
		{ "5\r\nhello\r\n0\r\n\rX", "trailer line not ended by CR LF" },
		{ "5\r\nhello\r\n0\r\nA: b\r\n\rX", "trailer line not ended by CR LF" },
		{ "5\r\nhello\r\n0\r\nA: b\n\r\n", "trailer line not ended by CR LF" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_body_refused_both_ways(chunked_request(cases[i].body), cases[i].why);
}

/* A bare LF hidden in a chunk extension, which another reader could take
 * for the end of the line, and extensions after a blank that are none. */
static void
test_http1_chunk_extensions_are_checked(void **state)
{
	struct recorder r;

	(void)state;
	assert_body_refused_both_ways(chunked_request("5;a\nb\r\nhello\r\n0\r\n\r\n"),
	                              "invalid chunk extension");
	assert_body_refused_both_ways(chunked_request("5 x\r\nhello\r\n0\r\n\r\n"),
	                              "invalid chunk extension");
	assert_body_refused_both_ways(chunked_request("5x\r\nhello\r\n0\r\n\r\n"),
	                              "invalid chunk size");
	assert_accepted_both_ways(chunked_request("5 ; a=b ;c=\"d e\"\r\nhello\r\n"
	                                          "0;x\r\nA: b\r\nC: d\r\n\r\n"), &r);
	assert_int_equal(r.body_len, 5);
	assert_memory_equal(r.body, "hello", 5);
	recorder_free(&r);
}

/* An endless chunk extension is cut off, not read for ever. */
static void
test_http1_chunk_size_line_over_4_kib_is_400(void **state)
{
	char *req = malloc(sizeof chunked_head + 8192);
	struct recorder r;
	struct http1_parser *p = parser_new(&r, NULL);

	(void)state;
	assert_non_null(req);
	memcpy(req, chunked_head, sizeof chunked_head - 1);
	memcpy(req + sizeof chunked_head - 1, "5;", 2);
	memset(req + sizeof chunked_head + 1, 'x', 5000);
	req[sizeof chunked_head + 1 + 5000] = '\0';
	assert_int_equal(feed_str(p, req), PTTH_EPROTO);
	assert_int_equal(http1_parser_error_status(p), 400);
	assert_non_null(strstr(http1_parser_error_text(p), "too long"));
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.ends, 0);
	free(req);
	parser_free(p, &r);
}

/* The body ends exactly where its framing does, so the request after it
 * is parsed as one, in one buffer or byte by byte. */
static void
test_http1_pipelined_request_after_a_chunked_body_is_parsed(void **state)
{
	static const char two[] = "POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	                          "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n"
	                          "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t first = strstr(two, "GET /2") - two;

	(void)state;
	for (int bytewise = 0; bytewise <= 1; bytewise++) {
		struct recorder r;
		struct http1_parser *p = parser_new(&r, NULL);
		size_t off = 0;

		while (off < first) {
			ssize_t n = http1_parser_feed(p, two + off, bytewise ? 1 : strlen(two) - off);
			assert_true(n > 0);
			off += (size_t)n;
		}
		assert_int_equal(off, first);
		assert_int_equal(r.ends, 1);
		assert_int_equal(r.body_len, 19);
		assert_memory_equal(r.body, "abc0123456789abcdef", 19);
		assert_int_equal(feed_str(p, two + off), strlen(two + off));
		assert_int_equal(r.heads, 2);
		assert_string_equal(r.path, "/2");
		parser_free(p, &r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http1_many_empty_lines_before_a_request_are_skipped),
		cmocka_unit_test(test_http1_simple_get_reports_head_without_body),
		cmocka_unit_test(test_http1_http10_request_is_not_keep_alive),
		cmocka_unit_test(test_http1_connection_close_turns_off_keep_alive),
		cmocka_unit_test(test_http1_content_length_zero_has_no_body),
		cmocka_unit_test(test_http1_content_length_body_arrives_across_feeds),
		cmocka_unit_test(test_http1_content_length_body_arrives_byte_by_byte),
		cmocka_unit_test(test_http1_chunked_body_is_decoded),
		cmocka_unit_test(test_http1_chunked_body_is_decoded_byte_by_byte),
		cmocka_unit_test(test_http1_pipelined_requests_are_parsed_one_at_a_time),
		cmocka_unit_test(test_http1_absolute_form_target_gives_path_and_host),
		cmocka_unit_test(test_http1_absolute_form_without_path_gives_slash),
		cmocka_unit_test(test_http1_asterisk_target_is_kept),
		cmocka_unit_test(test_http1_empty_field_value_is_kept_apart_from_next_field),
		cmocka_unit_test(test_http1_target_of_exactly_max_uri_is_accepted),
		cmocka_unit_test(test_http1_target_over_max_uri_is_414),
		cmocka_unit_test(test_http1_fields_up_to_the_limit_are_accepted),
		cmocka_unit_test(test_http1_too_many_fields_is_431),
		cmocka_unit_test(test_http1_long_field_over_max_header_bytes_is_431),
		cmocka_unit_test(test_http1_many_small_fields_over_max_header_bytes_are_431),
		cmocka_unit_test(test_http1_header_block_at_max_header_bytes_is_accepted),
		cmocka_unit_test(test_http1_garbage_is_400),
		cmocka_unit_test(test_http1_content_length_with_chunked_is_400),
		cmocka_unit_test(test_http1_eof_inside_body_is_eproto),
		cmocka_unit_test(test_http1_eof_inside_head_is_eproto),
		cmocka_unit_test(test_http1_eof_between_requests_is_clean),
		cmocka_unit_test(test_http1_on_head_failure_makes_feed_fail),
		cmocka_unit_test(test_http1_on_body_failure_makes_feed_fail),
		cmocka_unit_test(test_http1_on_end_failure_makes_feed_fail),
		cmocka_unit_test(test_http1_http10_request_without_host_is_accepted),
		cmocka_unit_test(test_http1_http11_request_without_host_is_400),
		cmocka_unit_test(test_http1_two_host_fields_are_400),
		cmocka_unit_test(test_http1_host_disagreeing_with_absolute_target_is_400),
		cmocka_unit_test(test_http1_host_matching_absolute_target_in_other_case_is_accepted),
		cmocka_unit_test(test_http1_host_with_trailing_whitespace_matches_absolute_target),
		cmocka_unit_test(test_http1_space_before_colon_in_field_name_is_400),
		cmocka_unit_test(test_http1_space_before_colon_in_other_field_name_is_400),
		cmocka_unit_test(test_http1_obsolete_line_folding_with_space_is_400),
		cmocka_unit_test(test_http1_obsolete_line_folding_with_tab_is_400),
		cmocka_unit_test(test_http1_obsolete_line_folding_after_empty_value_is_400),
		cmocka_unit_test(test_http1_obsolete_line_folding_across_feeds_is_400),
		cmocka_unit_test(test_http1_value_split_across_feeds_before_space_is_accepted),
		cmocka_unit_test(test_http1_trailing_whitespace_of_field_value_is_trimmed),
		cmocka_unit_test(test_http1_absolute_form_ipv6_literal_keeps_brackets),
		cmocka_unit_test(test_http1_absolute_form_ipv6_literal_without_port_keeps_brackets),
		cmocka_unit_test(test_http1_absolute_form_with_query_but_no_path_gives_slash_query),
		cmocka_unit_test(test_http1_transfer_encoding_without_chunked_last_is_400_before_on_head),
		cmocka_unit_test(test_http1_unknown_transfer_coding_is_501_before_on_head),
		cmocka_unit_test(test_http1_chunked_applied_twice_is_400),
		cmocka_unit_test(test_http1_chunked_in_any_case_with_empty_elements_is_accepted),
		cmocka_unit_test(test_http1_transfer_encoding_in_http10_turns_off_keep_alive),
		cmocka_unit_test(test_http1_http10_keep_alive_without_transfer_encoding_is_kept),
		cmocka_unit_test(test_http1_content_length_of_2_63_or_more_is_400),
		cmocka_unit_test(test_http1_content_length_of_2_63_minus_1_is_accepted),
		cmocka_unit_test(test_http1_connect_is_400_before_on_head),
		cmocka_unit_test(test_http1_invalid_request_targets_are_400),
		cmocka_unit_test(test_http1_target_with_characters_browsers_send_is_accepted),
		cmocka_unit_test(test_http1_invalid_host_values_are_400),
		cmocka_unit_test(test_http1_valid_host_values_are_accepted),
		cmocka_unit_test(test_http1_head_not_ended_by_crlf_is_400),
		cmocka_unit_test(test_http1_head_with_bare_lf_line_ends_is_accepted),
		cmocka_unit_test(test_http1_head_over_the_parser_cap_is_431),
		cmocka_unit_test(test_http1_loose_chunk_framing_is_400),
		cmocka_unit_test(test_http1_chunk_extensions_are_checked),
		cmocka_unit_test(test_http1_chunk_size_line_over_4_kib_is_400),
		cmocka_unit_test(test_http1_pipelined_request_after_a_chunked_body_is_parsed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
