/*
 * trace.c -- a frame trace: one line per HTTP/2 frame a tunnel sends or
 * receives, much like `nghttp -v` prints, so that a reader can watch the
 * protocol the rest of the code speaks.
 *
 * Owns:    nothing but the header fields of the frame being received;
 *          not the FILE it writes to.
 * Threads: only the tunnel thread that owns the session (the router's
 *          tunnel thread, the backend's slot thread), from its nghttp2
 *          callbacks. Several tunnels may share one FILE: each frame,
 *          with its fields, is written by one fwrite(), under stdio's own
 *          lock, so records of different tunnels never mix.
 * Locks:   none of its own.
 * Interface:
 *   - trace_init() with a FILE (NULL: every call returns at once) and the
 *     tunnel's name, the backend's end of the connection on both sides;
 *   - trace_frame() from on_frame_send_callback and on_frame_recv_callback;
 *   - trace_begin_headers() and trace_header() from the header callbacks:
 *     received fields arrive before their frame's line, so they wait here;
 *   - trace_format_frame() and trace_format_field() are the formatter,
 *     with no I/O, for tests.
 * A line reads
 *   09:14:02.000123 127.0.0.1:40312 send HEADERS stream_id=1 length=31 flags=0x05(END_STREAM|END_HEADERS)
 *       :method: GET
 * and each type adds what matters: SETTINGS its values by name,
 * WINDOW_UPDATE its increment, RST_STREAM and GOAWAY their error code by
 * name (GOAWAY with last_stream_id), PING its opaque data. Bytes outside
 * printable ASCII are shown as \xHH, so a peer cannot forge lines.
 * A HEADERS frame whose header block nghttp2 rejected gets no line (no
 * on_frame_recv_callback); the RST_STREAM or GOAWAY that follows does.
 * Tutorial: "Watching the frames".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "trace.h"

/* Text built piece by piece in a fixed buffer, with snprintf()'s rule:
 * len counts every byte asked for, only the first size - 1 are kept, and
 * the buffer always ends in a NUL. */
struct text {
	char *buf;
	size_t size;
	size_t len;
};

static struct text
text_on(char *buf, size_t size)
{
	struct text t = { buf, size, 0 };

	buf[0] = '\0';
	return t;
}

static void __attribute__((format(printf, 2, 3)))
text_printf(struct text *t, const char *fmt, ...)
{
	size_t room = t->len < t->size ? t->size - t->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room > 0 ? t->buf + t->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
}

/* Appends bytes from the peer, escaping anything but printable ASCII. */
static void
text_escaped(struct text *t, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '\\') {
			text_printf(t, "\\x%02x", p[i]);
			continue;
		}
		if (t->len + 1 < t->size) {
			t->buf[t->len] = (char)p[i];
			t->buf[t->len + 1] = '\0';
		}
		t->len++;
	}
}

static const char *
frame_type_name(uint8_t type)
{
	static const char *const names[] = {
		[NGHTTP2_DATA] = "DATA",
		[NGHTTP2_HEADERS] = "HEADERS",
		[NGHTTP2_PRIORITY] = "PRIORITY",
		[NGHTTP2_RST_STREAM] = "RST_STREAM",
		[NGHTTP2_SETTINGS] = "SETTINGS",
		[NGHTTP2_PUSH_PROMISE] = "PUSH_PROMISE",
		[NGHTTP2_PING] = "PING",
		[NGHTTP2_GOAWAY] = "GOAWAY",
		[NGHTTP2_WINDOW_UPDATE] = "WINDOW_UPDATE",
		[NGHTTP2_CONTINUATION] = "CONTINUATION",
	};

	return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

/* The SETTINGS names of RFC 9113 section 6.5.2, RFC 8441 and RFC 9218,
 * without their SETTINGS_ prefix. */
static const char *
settings_name(int32_t id)
{
	switch (id) {
	case NGHTTP2_SETTINGS_HEADER_TABLE_SIZE:      return "HEADER_TABLE_SIZE";
	case NGHTTP2_SETTINGS_ENABLE_PUSH:            return "ENABLE_PUSH";
	case NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS: return "MAX_CONCURRENT_STREAMS";
	case NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE:    return "INITIAL_WINDOW_SIZE";
	case NGHTTP2_SETTINGS_MAX_FRAME_SIZE:         return "MAX_FRAME_SIZE";
	case NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE:   return "MAX_HEADER_LIST_SIZE";
	case NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL: return "ENABLE_CONNECT_PROTOCOL";
	case NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES:  return "NO_RFC7540_PRIORITIES";
	}
	return NULL;
}

/* Appends "flags=0x05(END_STREAM|END_HEADERS)": the flags this frame
 * type defines by name, any other bit in hex. */
static void
text_flags(struct text *t, uint8_t type, uint8_t flags)
{
	static const struct {
		uint8_t type, flag;
		const char *name;
	} known[] = {
		{ NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, "END_STREAM" },
		{ NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, "PADDED" },
		{ NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, "END_STREAM" },
		{ NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, "END_HEADERS" },
		{ NGHTTP2_HEADERS, NGHTTP2_FLAG_PADDED, "PADDED" },
		{ NGHTTP2_HEADERS, NGHTTP2_FLAG_PRIORITY, "PRIORITY" },
		{ NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, "ACK" },
		{ NGHTTP2_PUSH_PROMISE, NGHTTP2_FLAG_END_HEADERS, "END_HEADERS" },
		{ NGHTTP2_PUSH_PROMISE, NGHTTP2_FLAG_PADDED, "PADDED" },
		{ NGHTTP2_PING, NGHTTP2_FLAG_ACK, "ACK" },
		{ NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, "END_HEADERS" },
	};
	uint8_t rest = flags;
	const char *sep = "(";

	text_printf(t, " flags=0x%02x", flags);
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		if (known[i].type == type && (flags & known[i].flag)) {
			text_printf(t, "%s%s", sep, known[i].name);
			rest &= (uint8_t)~known[i].flag;
			sep = "|";
		}
	}
	if (rest != 0)
		text_printf(t, "%s0x%02x", sep, rest);
	if (flags != 0)
		text_printf(t, ")");
}

/* Appends " error=CANCEL(0x8)"; nghttp2 knows the names of RFC 9113
 * section 7 and says "unknown" for the rest. */
static void
text_error(struct text *t, uint32_t code)
{
	text_printf(t, " error=%s(0x%x)", nghttp2_http2_strerror(code), code);
}

static void
text_settings(struct text *t, const nghttp2_settings *s)
{
	for (size_t i = 0; i < s->niv; i++) {
		const char *name = settings_name(s->iv[i].settings_id);
		if (name != NULL)
			text_printf(t, " %s=%u", name, s->iv[i].value);
		else
			text_printf(t, " 0x%x=%u", (unsigned)s->iv[i].settings_id, s->iv[i].value);
	}
}

static void
text_priority(struct text *t, const nghttp2_priority_spec *pri)
{
	text_printf(t, " dep_stream_id=%d weight=%d exclusive=%u", pri->stream_id, pri->weight,
	            (unsigned)pri->exclusive);
}

/* Appends what matters in a frame of this type, after its header. */
static void
text_frame_fields(struct text *t, const nghttp2_frame *frame)
{
	switch (frame->hd.type) {
	case NGHTTP2_DATA:
		if (frame->hd.flags & NGHTTP2_FLAG_PADDED)
			text_printf(t, " padlen=%zu", frame->data.padlen);
		break;
	case NGHTTP2_HEADERS:
		if (frame->hd.flags & NGHTTP2_FLAG_PRIORITY)
			text_priority(t, &frame->headers.pri_spec);
		break;
	case NGHTTP2_PRIORITY:
		text_priority(t, &frame->priority.pri_spec);
		break;
	case NGHTTP2_RST_STREAM:
		text_error(t, frame->rst_stream.error_code);
		break;
	case NGHTTP2_SETTINGS:
		text_settings(t, &frame->settings);
		break;
	case NGHTTP2_PUSH_PROMISE:
		text_printf(t, " promised_stream_id=%d", frame->push_promise.promised_stream_id);
		break;
	case NGHTTP2_PING:
		text_printf(t, " opaque=");
		for (size_t i = 0; i < sizeof frame->ping.opaque_data; i++)
			text_printf(t, "%02x", frame->ping.opaque_data[i]);
		break;
	case NGHTTP2_GOAWAY:
		text_printf(t, " last_stream_id=%d", frame->goaway.last_stream_id);
		text_error(t, frame->goaway.error_code);
		if (frame->goaway.opaque_data_len > 0) {
			text_printf(t, " debug=\"");
			text_escaped(t, frame->goaway.opaque_data, frame->goaway.opaque_data_len);
			text_printf(t, "\"");
		}
		break;
	case NGHTTP2_WINDOW_UPDATE:
		text_printf(t, " increment=%d", frame->window_update.window_size_increment);
		break;
	}
}

/* Formats frame as one line without time, tunnel or newline, e.g.
 * "recv WINDOW_UPDATE stream_id=0 length=4 flags=0x00 increment=65536".
 * Returns the length the whole line needs; like snprintf(), at most
 * size - 1 bytes and a NUL are written (size must be at least 1). */
size_t
trace_format_frame(char *buf, size_t size, enum trace_dir dir, const nghttp2_frame *frame)
{
	struct text t = text_on(buf, size);
	const char *type = frame_type_name(frame->hd.type);

	text_printf(&t, "%s ", dir == TRACE_SEND ? "send" : "recv");
	if (type != NULL)
		text_printf(&t, "%s", type);
	else
		text_printf(&t, "UNKNOWN(0x%02x)", frame->hd.type);
	text_printf(&t, " stream_id=%d length=%zu", frame->hd.stream_id, frame->hd.length);
	text_flags(&t, frame->hd.type, frame->hd.flags);
	text_frame_fields(&t, frame);
	return t.len;
}

/* Formats one header field as an indented line, "    name: value\n",
 * escaped. Returns the length it needs, as trace_format_frame() does. */
size_t
trace_format_field(char *buf, size_t size, const uint8_t *name, size_t namelen,
                   const uint8_t *value, size_t valuelen)
{
	struct text t = text_on(buf, size);

	text_printf(&t, "    ");
	text_escaped(&t, name, namelen);
	text_printf(&t, ": ");
	text_escaped(&t, value, valuelen);
	text_printf(&t, "\n");
	return t.len;
}

/* Appends one field line at buf + len, if it fits in size and no field
 * before it was hidden (what is shown is always a prefix of the block).
 * Returns the new length. */
static size_t
fields_add(char *buf, size_t size, size_t len, unsigned *hidden, const uint8_t *name,
           size_t namelen, const uint8_t *value, size_t valuelen)
{
	size_t n;

	if (*hidden == 0 && len < size) {
		n = trace_format_field(buf + len, size - len, name, namelen, value, valuelen);
		if (n < size - len)
			return len + n;
	}
	(*hidden)++;
	return len;
}

void
trace_init(struct trace *tr, FILE *out, const char *tunnel)
{
	tr->out = out;
	snprintf(tr->tunnel, sizeof tr->tunnel, "%s", tunnel);
	tr->fields_len = 0;
	tr->fields_hidden = 0;
}

/* A HEADERS or PUSH_PROMISE frame starts arriving: forget the fields of
 * any block nghttp2 rejected before its frame ended. */
void
trace_begin_headers(struct trace *tr)
{
	tr->fields_len = 0;
	tr->fields_hidden = 0;
}

/* Keeps one received field until trace_frame() prints its frame. */
void
trace_header(struct trace *tr, const uint8_t *name, size_t namelen, const uint8_t *value,
             size_t valuelen)
{
	if (tr->out == NULL)
		return;
	tr->fields_len = fields_add(tr->fields, sizeof tr->fields, tr->fields_len,
	                            &tr->fields_hidden, name, namelen, value, valuelen);
}

/* Appends the header fields that belong under a frame's line: those
 * received (then forgotten), or those nghttp2 is sending. */
static size_t
trace_fields(struct trace *tr, enum trace_dir dir, const nghttp2_frame *frame, char *buf,
             size_t size, unsigned *hidden)
{
	const nghttp2_nv *nva;
	size_t nvlen, len = 0;

	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_PUSH_PROMISE)
		return 0;
	if (dir == TRACE_RECV) {
		len = tr->fields_len;
		memcpy(buf, tr->fields, len);
		*hidden = tr->fields_hidden;
		trace_begin_headers(tr);
		return len;
	}
	nva = frame->hd.type == NGHTTP2_HEADERS ? frame->headers.nva : frame->push_promise.nva;
	nvlen = frame->hd.type == NGHTTP2_HEADERS ? frame->headers.nvlen : frame->push_promise.nvlen;
	for (size_t i = 0; i < nvlen; i++)
		len = fields_add(buf, size, len, hidden, nva[i].name, nva[i].namelen, nva[i].value,
		                 nva[i].valuelen);
	return len;
}

/* Writes the record of one frame stamped with when (local time of day):
 * its line, then its header fields, in one fwrite(). */
void
trace_frame_at(struct trace *tr, enum trace_dir dir, const nghttp2_frame *frame,
               const struct timespec *when)
{
	char rec[TRACE_LINE_MAX + TRACE_FIELDS_MAX + 64];
	struct tm tm;
	size_t len, n;
	unsigned hidden = 0;

	if (tr->out == NULL)
		return;
	localtime_r(&when->tv_sec, &tm);
	len = strftime(rec, 16, "%H:%M:%S", &tm);
	len += (size_t)snprintf(rec + len, TRACE_LINE_MAX - len, ".%06ld %s ",
	                        when->tv_nsec / 1000, tr->tunnel);
	n = trace_format_frame(rec + len, TRACE_LINE_MAX - len, dir, frame);
	len += n < TRACE_LINE_MAX - len ? n : TRACE_LINE_MAX - len - 1;
	rec[len++] = '\n';
	len += trace_fields(tr, dir, frame, rec + len, TRACE_FIELDS_MAX, &hidden);
	if (hidden > 0)
		len += (size_t)snprintf(rec + len, 64, "    (%u more fields not shown)\n", hidden);
	fwrite(rec, 1, len, tr->out);
}

/* Writes the record of one frame sent or received, stamped now. */
void
trace_frame(struct trace *tr, enum trace_dir dir, const nghttp2_frame *frame)
{
	struct timespec now;

	if (tr->out == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	trace_frame_at(tr, dir, frame, &now);
}
