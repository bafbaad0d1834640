/*
 * fuzz_http1.c -- libFuzzer target: the HTTP/1.1 request parser
 * (src/router/http1.c) and the request mapping to HTTP/2 (headers.c) driven
 * directly, with no sockets or threads, so it runs thousands of inputs a
 * second where fuzz_user runs hundreds.
 *
 * Owns:    per input, one parser and the header lists its callbacks build.
 * Threads: libFuzzer's thread only.
 * Locks:   none.
 * Interface: the first input byte says where the rest is split in two
 *   reads (so requests that straddle reads are tried); each read is fed
 *   as user_conn_parse() feeds it, then the parser sees end of input. Each request head is mapped with
 *   headers_request_to_h2() (forwarding fields on) and headers_to_nv(),
 *   as user_conn.c does. A parse error stops the input, as it ends a
 *   user connection.
 * Seeds: fuzz/corpus/fuzz_user/ serves here too; dictionary fuzz/http1.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "headers.h"
#include "http1.h"

/* What the callbacks saw, so the input's outcome touches every byte. */
struct seen {
	size_t heads, body_bytes, ends, fields;
};

static int
on_head(void *arg, const struct http1_head *head, bool has_body,
        long long content_length, bool keep_alive)
{
	struct seen *s = arg;
	struct header_list out;
	nghttp2_nv *nv;
	int rc;

	(void)has_body;
	(void)content_length;
	(void)keep_alive;
	s->heads++;
	header_list_init(&out);
	rc = headers_request_to_h2(head, "127.0.0.1", &out);
	if (rc == 0) {
		nv = headers_to_nv(&out);
		for (size_t i = 0; nv != NULL && i < out.count; i++)
			s->fields += nv[i].namelen + nv[i].valuelen;
		free(nv);
	}
	header_list_free(&out);
	return rc < 0 ? rc : 0;
}

static int
on_body(void *arg, const char *data, size_t len)
{
	struct seen *s = arg;

	(void)data;
	s->body_bytes += len;
	return 0;
}

static int
on_end(void *arg)
{
	struct seen *s = arg;

	s->ends++;
	return 0;
}

/* Feeds data[0..len) as user_conn_parse() does: the parser stops after
 * each complete request, and the rest is fed again. A feed that uses
 * nothing and reports nothing would spin a user connection thread
 * forever: abort. Returns 0, or PTTH_EPROTO as the parser does. */
static int
feed_all(struct http1_parser *p, const char *data, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t used = http1_parser_feed(p, data + off, len - off);

		if (used < 0)
			return (int)used;
		if (used == 0)
			abort();
		off += (size_t)used;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http1_callbacks cbs = {
		.on_head = on_head, .on_body = on_body, .on_end = on_end,
	};
	const struct http1_limits limits = { 8192, 65536, 100 };
	struct seen seen = { 0 };
	struct http1_parser *p;
	size_t split;

	if (size == 0)
		return 0;
	split = data[0];
	data++;
	size--;
	if (split > size)
		split = size;
	p = http1_parser_new(&cbs, &seen, &limits);
	if (p == NULL)
		abort();
	if (feed_all(p, (const char *)data, split) == 0 &&
	    feed_all(p, (const char *)data + split, size - split) == 0) {
		http1_parser_feed_eof(p);
	} else {
		(void)http1_parser_error_status(p);
		(void)http1_parser_error_text(p);
	}
	http1_parser_free(p);
	return 0;
}
