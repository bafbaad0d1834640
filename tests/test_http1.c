/*
 * test_http1.c -- unit tests for src/http1.c: request heads, bodies by
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

#include <stdio.h>
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
