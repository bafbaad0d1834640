/*
 * test_trace.c -- the frame trace (src/common/trace.c): the line each frame type
 * gets, header fields under their frame in both directions, escaping of
 * hostile bytes, the bounds on a line and on a header block; then the
 * trace of one GET /foo through a real router and backend, on both sides,
 * and the --trace flag of bin/router and bin/backend.
 *
 * Unit tests build nghttp2_frame values by hand and call the formatter
 * (trace_format_frame(), trace_format_field()) or write whole records
 * with a fixed time (trace_frame_at()) into a memory stream; TZ is UTC so
 * that the time of day is known. The end-to-end tests give the library
 * a memory stream (the trace option) and read it after every thread has
 * ended; the program test reads the programs' stderr through pipes.
 * Assertions on a live trace check the order of the frames that must be
 * ordered and skip anything in between (PING, WINDOW_UPDATE).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"
#include "support/harness.h"

/* 09:14:02.123456 UTC, the time stamped on every unit-test record. */
static const struct timespec fixed_time = { 9 * 3600 + 14 * 60 + 2, 123456789 };

/* Formats frame with trace_format_frame() and compares it with want. */
static void
assert_frame_line(enum trace_dir dir, const nghttp2_frame *frame, const char *want)
{
	char line[TRACE_LINE_MAX];
	size_t n = trace_format_frame(line, sizeof line, dir, frame);

	assert_string_equal(line, want);
	assert_int_equal(n, strlen(want));
}

static nghttp2_frame
frame_of(uint8_t type, int32_t stream_id, size_t length, uint8_t flags)
{
	nghttp2_frame f;

	memset(&f, 0, sizeof f);
	f.hd.type = type;
	f.hd.stream_id = stream_id;
	f.hd.length = length;
	f.hd.flags = flags;
	return f;
}

/* A trace that writes into a memory stream; read it with record_text(). */
struct record {
	struct trace tr;
	FILE *out;
	char *text;
	size_t len;
};

static void
record_open(struct record *rec, const char *tunnel)
{
	rec->text = NULL;
	rec->out = open_memstream(&rec->text, &rec->len);
	assert_non_null(rec->out);
	trace_init(&rec->tr, rec->out, tunnel);
}

/* Everything written so far (the stream stays open). */
static const char *
record_text(struct record *rec)
{
	fflush(rec->out);
	return rec->text;
}

static void
record_close(struct record *rec)
{
	fclose(rec->out);
	free(rec->text);
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0 }

/* ---------------------------------------------------------------------
 * One line per frame type.
 */

static void
test_trace_settings_line_names_each_value(void **state)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 262144 },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ 0x42, 7 },
	};
	nghttp2_frame f = frame_of(NGHTTP2_SETTINGS, 0, 24, NGHTTP2_FLAG_NONE);

	(void)state;
	f.settings.niv = 4;
	f.settings.iv = iv;
	assert_frame_line(TRACE_RECV, &f,
	                  "recv SETTINGS stream_id=0 length=24 flags=0x00 "
	                  "MAX_CONCURRENT_STREAMS=256 INITIAL_WINDOW_SIZE=262144 "
	                  "ENABLE_PUSH=0 0x42=7");
}

static void
test_trace_settings_ack_line_shows_the_flag_by_name(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_SETTINGS, 0, 0, NGHTTP2_FLAG_ACK);

	(void)state;
	assert_frame_line(TRACE_SEND, &f, "send SETTINGS stream_id=0 length=0 flags=0x01(ACK)");
}

static void
test_trace_data_line_shows_length_end_stream_and_padding(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_DATA, 1, 3, NGHTTP2_FLAG_END_STREAM);

	(void)state;
	assert_frame_line(TRACE_SEND, &f, "send DATA stream_id=1 length=3 flags=0x01(END_STREAM)");
	f = frame_of(NGHTTP2_DATA, 3, 20, NGHTTP2_FLAG_PADDED);
	f.data.padlen = 9;
	assert_frame_line(TRACE_RECV, &f, "recv DATA stream_id=3 length=20 flags=0x08(PADDED) padlen=9");
}

static void
test_trace_window_update_line_shows_the_increment(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_WINDOW_UPDATE, 0, 4, NGHTTP2_FLAG_NONE);

	(void)state;
	f.window_update.window_size_increment = 1073676289;
	assert_frame_line(TRACE_SEND, &f,
	                  "send WINDOW_UPDATE stream_id=0 length=4 flags=0x00 increment=1073676289");
}

static void
test_trace_rst_stream_line_names_the_error_code(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_RST_STREAM, 5, 4, NGHTTP2_FLAG_NONE);

	(void)state;
	f.rst_stream.error_code = NGHTTP2_CANCEL;
	assert_frame_line(TRACE_SEND, &f, "send RST_STREAM stream_id=5 length=4 flags=0x00 error=CANCEL(0x8)");
	f.rst_stream.error_code = NGHTTP2_REFUSED_STREAM;
	assert_frame_line(TRACE_RECV, &f,
	                  "recv RST_STREAM stream_id=5 length=4 flags=0x00 error=REFUSED_STREAM(0x7)");
	f.rst_stream.error_code = 0x1234;
	assert_frame_line(TRACE_RECV, &f,
	                  "recv RST_STREAM stream_id=5 length=4 flags=0x00 error=unknown(0x1234)");
}

static void
test_trace_goaway_line_shows_last_stream_id_error_and_debug_data(void **state)
{
	uint8_t debug[] = { 'b', 'y', 'e', '\n' };
	nghttp2_frame f = frame_of(NGHTTP2_GOAWAY, 0, 8, NGHTTP2_FLAG_NONE);

	(void)state;
	f.goaway.last_stream_id = 19;
	f.goaway.error_code = NGHTTP2_NO_ERROR;
	assert_frame_line(TRACE_RECV, &f,
	                  "recv GOAWAY stream_id=0 length=8 flags=0x00 last_stream_id=19 error=NO_ERROR(0x0)");
	f.hd.length = 12;
	f.goaway.error_code = NGHTTP2_PROTOCOL_ERROR;
	f.goaway.opaque_data = debug;
	f.goaway.opaque_data_len = sizeof debug;
	assert_frame_line(TRACE_SEND, &f,
	                  "send GOAWAY stream_id=0 length=12 flags=0x00 last_stream_id=19 "
	                  "error=PROTOCOL_ERROR(0x1) debug=\"bye\\x0a\"");
}

static void
test_trace_ping_line_shows_opaque_data_and_ack(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_PING, 0, 8, NGHTTP2_FLAG_NONE);

	(void)state;
	assert_frame_line(TRACE_SEND, &f, "send PING stream_id=0 length=8 flags=0x00 opaque=0000000000000000");
	f.hd.flags = NGHTTP2_FLAG_ACK;
	memcpy(f.ping.opaque_data, "\x01\x02\x03\x04\xfa\xfb\xfc\xfd", 8);
	assert_frame_line(TRACE_RECV, &f,
	                  "recv PING stream_id=0 length=8 flags=0x01(ACK) opaque=01020304fafbfcfd");
}

static void
test_trace_priority_and_push_promise_lines_show_their_streams(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_PRIORITY, 3, 5, NGHTTP2_FLAG_NONE);

	(void)state;
	nghttp2_priority_spec_init(&f.priority.pri_spec, 1, 32, 1);
	assert_frame_line(TRACE_RECV, &f,
	                  "recv PRIORITY stream_id=3 length=5 flags=0x00 dep_stream_id=1 weight=32 exclusive=1");
	f = frame_of(NGHTTP2_PUSH_PROMISE, 1, 10, NGHTTP2_FLAG_END_HEADERS);
	f.push_promise.promised_stream_id = 2;
	assert_frame_line(TRACE_RECV, &f,
	                  "recv PUSH_PROMISE stream_id=1 length=10 flags=0x04(END_HEADERS) promised_stream_id=2");
	f = frame_of(NGHTTP2_HEADERS, 7, 15, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_PRIORITY);
	nghttp2_priority_spec_init(&f.headers.pri_spec, 0, 16, 0);
	assert_frame_line(TRACE_SEND, &f,
	                  "send HEADERS stream_id=7 length=15 flags=0x24(END_HEADERS|PRIORITY) "
	                  "dep_stream_id=0 weight=16 exclusive=0");
}

static void
test_trace_unknown_types_and_flags_are_shown_in_hex(void **state)
{
	nghttp2_frame f = frame_of(0x0a, 0, 6, 0x80);

	(void)state;
	assert_frame_line(TRACE_RECV, &f, "recv UNKNOWN(0x0a) stream_id=0 length=6 flags=0x80(0x80)");
	f = frame_of(NGHTTP2_DATA, 1, 0, NGHTTP2_FLAG_END_STREAM | 0x40);
	assert_frame_line(TRACE_RECV, &f, "recv DATA stream_id=1 length=0 flags=0x41(END_STREAM|0x40)");
	/* The same bit has another name, or none, in another frame type. */
	f = frame_of(NGHTTP2_WINDOW_UPDATE, 0, 4, 0x01);
	assert_frame_line(TRACE_RECV, &f,
	                  "recv WINDOW_UPDATE stream_id=0 length=4 flags=0x01(0x01) increment=0");
}

/* ---------------------------------------------------------------------
 * Whole records: time, tunnel, line, fields.
 */

static void
test_trace_record_starts_with_time_of_day_and_tunnel(void **state)
{
	struct record rec;
	nghttp2_frame f = frame_of(NGHTTP2_SETTINGS, 0, 0, NGHTTP2_FLAG_ACK);

	(void)state;
	record_open(&rec, "127.0.0.1:40312");
	trace_frame_at(&rec.tr, TRACE_RECV, &f, &fixed_time);
	assert_string_equal(record_text(&rec),
	                    "09:14:02.123456 127.0.0.1:40312 recv SETTINGS stream_id=0 length=0 flags=0x01(ACK)\n");
	record_close(&rec);
}

static void
test_trace_headers_sent_list_each_field_indented_under_the_frame(void **state)
{
	nghttp2_nv nva[] = { NV(":method", "GET"), NV(":path", "/foo"), NV("accept", "*/*") };
	nghttp2_frame f = frame_of(NGHTTP2_HEADERS, 1, 20, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS);
	struct record rec;

	(void)state;
	f.headers.nva = nva;
	f.headers.nvlen = 3;
	record_open(&rec, "t");
	trace_frame_at(&rec.tr, TRACE_SEND, &f, &fixed_time);
	assert_string_equal(record_text(&rec),
	                    "09:14:02.123456 t send HEADERS stream_id=1 length=20 flags=0x05(END_STREAM|END_HEADERS)\n"
	                    "    :method: GET\n"
	                    "    :path: /foo\n"
	                    "    accept: */*\n");
	record_close(&rec);
}

/* Received fields arrive one by one before their frame is complete; they
 * are printed under the frame's line, once, and then forgotten. */
static void
test_trace_headers_received_print_their_fields_after_the_frame_line(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_HEADERS, 1, 25, NGHTTP2_FLAG_END_HEADERS);
	nghttp2_frame data = frame_of(NGHTTP2_DATA, 1, 3, NGHTTP2_FLAG_END_STREAM);
	struct record rec;

	(void)state;
	record_open(&rec, "t");
	trace_begin_headers(&rec.tr);
	trace_header(&rec.tr, (const uint8_t *)":status", 7, (const uint8_t *)"200", 3);
	trace_header(&rec.tr, (const uint8_t *)"content-length", 14, (const uint8_t *)"3", 1);
	assert_string_equal(record_text(&rec), "");
	trace_frame_at(&rec.tr, TRACE_RECV, &f, &fixed_time);
	trace_frame_at(&rec.tr, TRACE_RECV, &data, &fixed_time);
	assert_string_equal(record_text(&rec),
	                    "09:14:02.123456 t recv HEADERS stream_id=1 length=25 flags=0x04(END_HEADERS)\n"
	                    "    :status: 200\n"
	                    "    content-length: 3\n"
	                    "09:14:02.123456 t recv DATA stream_id=1 length=3 flags=0x01(END_STREAM)\n");
	record_close(&rec);
}

/* A block nghttp2 rejected part-way never gets its frame line; its fields
 * must not show up under the next block's frame. */
static void
test_trace_fields_of_a_rejected_block_are_forgotten(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_HEADERS, 3, 9, NGHTTP2_FLAG_END_HEADERS);
	struct record rec;

	(void)state;
	record_open(&rec, "t");
	trace_begin_headers(&rec.tr);
	trace_header(&rec.tr, (const uint8_t *)"x-rejected", 10, (const uint8_t *)"1", 1);
	trace_begin_headers(&rec.tr);
	trace_header(&rec.tr, (const uint8_t *)":status", 7, (const uint8_t *)"204", 3);
	trace_frame_at(&rec.tr, TRACE_RECV, &f, &fixed_time);
	assert_string_equal(record_text(&rec),
	                    "09:14:02.123456 t recv HEADERS stream_id=3 length=9 flags=0x04(END_HEADERS)\n"
	                    "    :status: 204\n");
	record_close(&rec);
}

/* A peer's bytes cannot start a line of their own or fake a field. */
static void
test_trace_field_bytes_outside_printable_ascii_are_escaped(void **state)
{
	static const uint8_t value[] = "a\r\n09:14:02.000000 t send GOAWAY\\\x7f\xc3\xa9";
	char line[256];
	size_t n;

	(void)state;
	n = trace_format_field(line, sizeof line, (const uint8_t *)"x-evil", 6, value,
	                       sizeof value - 1);
	assert_string_equal(line, "    x-evil: a\\x0d\\x0a09:14:02.000000 t send GOAWAY"
	                          "\\x5c\\x7f\\xc3\\xa9\n");
	assert_int_equal(n, strlen(line));
	/* Too small a buffer: cut, terminated, and the full length reported. */
	n = trace_format_field(line, 12, (const uint8_t *)"x-evil", 6, value, sizeof value - 1);
	assert_string_equal(line, "    x-evil:");
	assert_true(n > 12);
}

/* A header block larger than TRACE_FIELDS_MAX shows its first fields and
 * counts the others; the record still ends in a newline. */
static void
test_trace_huge_header_block_shows_a_prefix_and_counts_the_rest(void **state)
{
	static char value[1000];
	nghttp2_frame f = frame_of(NGHTTP2_HEADERS, 1, 16384, NGHTTP2_FLAG_END_HEADERS);
	struct record rec;
	const char *text, *note;
	size_t shown = 0;

	(void)state;
	memset(value, 'v', sizeof value);
	record_open(&rec, "t");
	trace_begin_headers(&rec.tr);
	for (int i = 0; i < 40; i++)
		trace_header(&rec.tr, (const uint8_t *)"x-big", 5, (const uint8_t *)value, sizeof value);
	trace_frame_at(&rec.tr, TRACE_RECV, &f, &fixed_time);
	text = record_text(&rec);
	for (const char *p = text; (p = strstr(p, "    x-big: ")) != NULL; p++)
		shown++;
	assert_true(shown > 0 && shown < 40);
	note = strstr(text, "    (");
	assert_non_null(note);
	assert_int_equal(atoi(note + 5), 40 - (int)shown);
	assert_true(strlen(text) < TRACE_LINE_MAX + TRACE_FIELDS_MAX);
	assert_int_equal(text[strlen(text) - 1], '\n');
	record_close(&rec);
}

/* A SETTINGS frame of 2000 entries (the most a 16 KiB frame holds) is cut
 * to one bounded line. */
static void
test_trace_overlong_line_is_cut_to_one_bounded_line(void **state)
{
	static nghttp2_settings_entry iv[2000];
	nghttp2_frame f = frame_of(NGHTTP2_SETTINGS, 0, sizeof iv / sizeof iv[0] * 6, 0);
	struct record rec;
	const char *text;

	(void)state;
	for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++)
		iv[i] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 16384 };
	f.settings.niv = sizeof iv / sizeof iv[0];
	f.settings.iv = iv;
	record_open(&rec, "t");
	trace_frame_at(&rec.tr, TRACE_RECV, &f, &fixed_time);
	text = record_text(&rec);
	assert_int_equal(strlen(text), TRACE_LINE_MAX);
	assert_ptr_equal(strchr(text, '\n'), text + TRACE_LINE_MAX - 1);
	record_close(&rec);
}

/* Without a FILE nothing is kept and nothing is written. */
static void
test_trace_off_does_nothing(void **state)
{
	nghttp2_frame f = frame_of(NGHTTP2_HEADERS, 1, 1, NGHTTP2_FLAG_END_HEADERS);
	struct trace tr;

	(void)state;
	trace_init(&tr, NULL, "t");
	trace_begin_headers(&tr);
	trace_header(&tr, (const uint8_t *)"a", 1, (const uint8_t *)"b", 1);
	assert_int_equal(tr.fields_len, 0);
	trace_frame(&tr, TRACE_RECV, &f);  /* would crash on a NULL FILE */
}

/* ---------------------------------------------------------------------
 * A live trace: GET /foo through an in-process router and backend.
 */

/* The line that starts at line, without its newline, for messages. */
static int
line_len(const char *line)
{
	const char *nl = strchr(line, '\n');

	return nl ? (int)(nl - line) : (int)strlen(line);
}

/* Finds the first frame line at or after from that contains what (for
 * example " recv HEADERS stream_id=1 ") and, if also is not NULL, also.
 * Field lines (indented) never match. Returns the line or NULL. */
static const char *
frame_find(const char *from, const char *what, const char *also)
{
	for (const char *p = from; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *hit = p[0] != ' ' ? memmem(p, len, what, strlen(what)) : NULL;
		if (hit != NULL && (also == NULL || memmem(p, len, also, strlen(also)) != NULL))
			return p;
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* Like frame_find(), but fails the test, naming what is missing. */
static const char *
frame_expect(const char *trace, const char *from, const char *what, const char *also)
{
	const char *line = frame_find(from, what, also);

	if (line == NULL)
		fail_msg("no frame \"%s\"%s%s after offset %td in this trace:\n%s", what,
		         also ? " with " : "", also ? also : "", from - trace, trace);
	return line;
}

/* True when the frame at line has the field line "    field\n". */
static bool
frame_has_field(const char *line, const char *field)
{
	const char *p = strchr(line, '\n');
	size_t flen = strlen(field);

	while (p != NULL && strncmp(p + 1, "    ", 4) == 0) {
		if (strncmp(p + 5, field, flen) == 0 && p[5 + flen] == '\n')
			return true;
		p = strchr(p + 1, '\n');
	}
	return false;
}

static void
assert_field(const char *line, const char *field)
{
	if (!frame_has_field(line, field))
		fail_msg("frame \"%.*s\" lacks the field \"%s\"", line_len(line), line, field);
}

/* Every record line starts "HH:MM:SS.uuuuuu TUNNEL " with the same
 * tunnel; field lines are indented. Copies the tunnel into tunnel. */
static void
assert_well_formed(const char *trace, char *tunnel, size_t size)
{
	int h, m, s, us, used = 0;

	assert_true(sscanf(trace, "%2d:%2d:%2d.%6d %n", &h, &m, &s, &us, &used) == 4 && used == 16);
	snprintf(tunnel, size, "%.*s", (int)strcspn(trace + 16, " "), trace + 16);
	for (const char *p = trace; *p != '\0'; p = strchr(p, '\n') + 1) {
		assert_non_null(strchr(p, '\n'));
		if (p[0] == ' ')
			continue;
		if (sscanf(p, "%2d:%2d:%2d.%6d %n", &h, &m, &s, &us, &used) != 4 || used != 16 ||
		    strncmp(p + 16, tunnel, strlen(tunnel)) != 0)
			fail_msg("malformed trace line \"%.*s\"", line_len(p), p);
	}
}

/* The router's side: its preface, the request it sent, the response. */
static void
assert_router_trace(const char *t)
{
	const char *settings, *peer, *ack, *req, *head, *body;

	settings = frame_expect(t, t, " send SETTINGS stream_id=0 ", " flags=0x00 ");
	assert_non_null(strstr(settings, " ENABLE_PUSH=0 INITIAL_WINDOW_SIZE=262144\n"));
	peer = frame_expect(t, t, " recv SETTINGS stream_id=0 ", " flags=0x00 ");
	assert_non_null(strstr(peer, " MAX_CONCURRENT_STREAMS=256 "));
	ack = frame_expect(t, peer, " send SETTINGS stream_id=0 length=0 flags=0x01(ACK)", NULL);
	frame_expect(t, settings, " recv SETTINGS stream_id=0 length=0 flags=0x01(ACK)", NULL);
	req = frame_expect(t, settings, " send HEADERS stream_id=1 ",
	                   " flags=0x05(END_STREAM|END_HEADERS)");
	assert_field(req, ":method: GET");
	assert_field(req, ":path: /foo");
	assert_field(req, ":scheme: http");
	head = frame_expect(t, req, " recv HEADERS stream_id=1 ", " flags=0x04(END_HEADERS)");
	assert_field(head, ":status: 200");
	assert_field(head, "content-length: 3");
	body = frame_expect(t, head, " recv DATA stream_id=1 length=3 flags=0x01(END_STREAM)", NULL);
	(void)ack;
	(void)body;
}

/* The backend's side: the same frames, the other way round, and the
 * GOAWAY of its graceful stop naming the one stream it took. */
static void
assert_backend_trace(const char *t)
{
	const char *settings, *peer, *req, *head, *body;

	settings = frame_expect(t, t, " send SETTINGS stream_id=0 ", " flags=0x00 ");
	assert_non_null(strstr(settings, " MAX_CONCURRENT_STREAMS=256 INITIAL_WINDOW_SIZE=262144"
	                                 " ENABLE_CONNECT_PROTOCOL=1\n"));
	peer = frame_expect(t, t, " recv SETTINGS stream_id=0 ", " flags=0x00 ");
	frame_expect(t, peer, " send SETTINGS stream_id=0 length=0 flags=0x01(ACK)", NULL);
	frame_expect(t, settings, " recv SETTINGS stream_id=0 length=0 flags=0x01(ACK)", NULL);
	req = frame_expect(t, peer, " recv HEADERS stream_id=1 ", " flags=0x05(END_STREAM|END_HEADERS)");
	assert_field(req, ":method: GET");
	assert_field(req, ":path: /foo");
	head = frame_expect(t, req, " send HEADERS stream_id=1 ", " flags=0x04(END_HEADERS)");
	assert_field(head, ":status: 200");
	body = frame_expect(t, head, " send DATA stream_id=1 length=3 flags=0x01(END_STREAM)", NULL);
	frame_expect(t, body, " send GOAWAY stream_id=0 ", " last_stream_id=1 error=NO_ERROR(0x0)");
}

/* The test's only route: GET /foo answers "bar", anything else 404. */
static void
foo_handler(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	if (strcmp(ptth_request_path(req), "/foo") == 0)
		ptth_response_send(res, 200, "text/plain", "bar", 3);
	else
		ptth_response_send(res, 404, "text/plain", "no\n", 3);
}

static void
test_trace_get_foo_shows_each_frame_on_router_and_backend(void **state)
{
	struct ptth_router_options ropts;
	struct ptth_backend_options bopts;
	struct harness_router hr;
	struct ptth_backend *b;
	char *rtext = NULL, *btext = NULL, url[128], tunnel_addr[64], body[16];
	char rtunnel[64], btunnel[64];
	size_t rlen, blen, len = 0;
	FILE *rout = open_memstream(&rtext, &rlen), *bout = open_memstream(&btext, &blen);
	long status = 0;

	(void)state;
	assert_non_null(rout);
	assert_non_null(bout);
	ptth_router_options_init(&ropts);
	ropts.trace = rout;
	assert_int_equal(harness_router_start_opts(&hr, &ropts), 0);
	ptth_backend_options_init(&bopts);
	snprintf(tunnel_addr, sizeof tunnel_addr, "127.0.0.1:%d", hr.tunnel_port);
	bopts.router_addr = tunnel_addr;
	bopts.handler = foo_handler;
	bopts.trace = bout;
	b = ptth_backend_new(&bopts);
	assert_non_null(b);
	assert_int_equal(ptth_backend_start(b), 0);
	assert_int_equal(ptth_router_wait_tunnels(hr.router, 1, HARNESS_TIMEOUT_MS), 0);
	harness_url(&hr, "/foo", url, sizeof url);
	assert_int_equal(http_get(url, &status, body, sizeof body, &len), CURLE_OK);
	/* Every thread that writes a trace has ended before it is read. */
	ptth_backend_free(b);
	harness_router_free(&hr);
	fclose(rout);
	fclose(bout);

	assert_int_equal(status, 200);
	assert_string_equal(body, "bar");
	assert_well_formed(rtext, rtunnel, sizeof rtunnel);
	assert_well_formed(btext, btunnel, sizeof btunnel);
	/* Both sides name the tunnel after the backend's end of it. */
	assert_string_equal(rtunnel, btunnel);
	assert_true(strncmp(rtunnel, "127.0.0.1:", 10) == 0);
	assert_router_trace(rtext);
	assert_backend_trace(btext);
	free(rtext);
	free(btext);
}

/* ---------------------------------------------------------------------
 * The programs: bin/router --trace and bin/backend --trace.
 */

/* Appends what fd has to buf (at most cap - 1 bytes, NUL-terminated)
 * until buf holds a whole line containing want (NULL: until end of file),
 * or HARNESS_TIMEOUT_MS pass. Returns true when want was found (or, for
 * NULL, the end of file reached). */
static bool
read_until(int fd, char *buf, size_t cap, size_t *len, const char *want)
{
	long long deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
	const char *hit;

	for (;;) {
		buf[*len] = '\0';
		if (want != NULL && (hit = strstr(buf, want)) != NULL && strchr(hit, '\n') != NULL)
			return true;
		long long left = deadline - harness_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return false;
		ssize_t n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			return want == NULL && n == 0;
		*len += (size_t)n;
	}
}

static void
test_trace_flag_of_both_programs_prints_the_frames(void **state)
{
	static char rerr[65536], berr[65536];
	struct harness_listening lines = { 0 };
	char tunnels[64], url[128], body[16];
	const char *rargs[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0", "--trace",
		                "--quiet", NULL };
	size_t rerr_len = 0, berr_len = 0, len = 0;
	int rout_fd, rerr_fd, bout_fd, berr_fd, http_port = 0, tunnel_port = 0;
	pid_t router, backend;
	long status = 0;

	(void)state;
	router = harness_spawn_piped("router", rargs, &rout_fd, &rerr_fd);
	assert_true(router > 0);
	assert_int_equal(harness_read_listening(rout_fd, &lines, HARNESS_TIMEOUT_MS), 0);
	tunnel_port = lines.tunnel_port;
	http_port = lines.http_port;
	snprintf(tunnels, sizeof tunnels, "127.0.0.1:%d", tunnel_port);
	const char *bargs[] = { "--router", tunnels, "--no-reconnect", "--trace", "--quiet", NULL };
	backend = harness_spawn_piped("backend", bargs, &bout_fd, &berr_fd);
	assert_true(backend > 0);
	/* The router has the tunnel once it received the backend's SETTINGS. */
	assert_true(read_until(rerr_fd, rerr, sizeof rerr, &rerr_len, " recv SETTINGS "));
	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", http_port);
	assert_int_equal(http_get(url, &status, body, sizeof body, &len), CURLE_OK);
	assert_int_equal(status, 200);
	assert_true(harness_kill(backend, SIGTERM) >= 0);
	assert_true(read_until(berr_fd, berr, sizeof berr, &berr_len, NULL));
	assert_true(harness_kill(router, SIGTERM) >= 0);
	assert_true(read_until(rerr_fd, rerr, sizeof rerr, &rerr_len, NULL));
	close(rout_fd);
	close(rerr_fd);
	close(bout_fd);
	close(berr_fd);

	assert_field(frame_expect(rerr, rerr, " send HEADERS stream_id=1 ", NULL), ":path: /foo");
	frame_expect(rerr, rerr, " recv DATA stream_id=1 length=3 flags=0x01(END_STREAM)", NULL);
	assert_field(frame_expect(berr, berr, " recv HEADERS stream_id=1 ", NULL), ":path: /foo");
	frame_expect(berr, berr, " send DATA stream_id=1 length=3 flags=0x01(END_STREAM)", NULL);
}

static int
group_setup(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	return harness_setup(state);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_settings_line_names_each_value),
		cmocka_unit_test(test_trace_settings_ack_line_shows_the_flag_by_name),
		cmocka_unit_test(test_trace_data_line_shows_length_end_stream_and_padding),
		cmocka_unit_test(test_trace_window_update_line_shows_the_increment),
		cmocka_unit_test(test_trace_rst_stream_line_names_the_error_code),
		cmocka_unit_test(test_trace_goaway_line_shows_last_stream_id_error_and_debug_data),
		cmocka_unit_test(test_trace_ping_line_shows_opaque_data_and_ack),
		cmocka_unit_test(test_trace_priority_and_push_promise_lines_show_their_streams),
		cmocka_unit_test(test_trace_unknown_types_and_flags_are_shown_in_hex),
		cmocka_unit_test(test_trace_record_starts_with_time_of_day_and_tunnel),
		cmocka_unit_test(test_trace_headers_sent_list_each_field_indented_under_the_frame),
		cmocka_unit_test(test_trace_headers_received_print_their_fields_after_the_frame_line),
		cmocka_unit_test(test_trace_fields_of_a_rejected_block_are_forgotten),
		cmocka_unit_test(test_trace_field_bytes_outside_printable_ascii_are_escaped),
		cmocka_unit_test(test_trace_huge_header_block_shows_a_prefix_and_counts_the_rest),
		cmocka_unit_test(test_trace_overlong_line_is_cut_to_one_bounded_line),
		cmocka_unit_test(test_trace_off_does_nothing),
		cmocka_unit_test(test_trace_get_foo_shows_each_frame_on_router_and_backend),
		cmocka_unit_test(test_trace_flag_of_both_programs_prints_the_frames),
	};

	return cmocka_run_group_tests(tests, group_setup, harness_teardown);
}
