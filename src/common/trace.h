/* trace.h -- one line per HTTP/2 frame, for the thread that owns the session. See trace.c. */
#ifndef PTTH_TRACE_H
#define PTTH_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <nghttp2/nghttp2.h>

/* Header fields of one frame shown at most, in bytes of formatted lines;
 * the rest are counted, not shown. */
#define TRACE_FIELDS_MAX (16 * 1024)
/* The longest frame line (without its fields). */
#define TRACE_LINE_MAX 1024

enum trace_dir {
	TRACE_RECV,
	TRACE_SEND,
};

/* A tunnel's trace. It lives with the tunnel thread's other private
 * state; only that thread touches it, so it has no lock. */
struct trace {
	FILE *out;                     /* NULL: tracing is off */
	char tunnel[64];               /* printed on every line */
	/* the header block being received, until its frame's line: */
	char fields[TRACE_FIELDS_MAX];
	size_t fields_len;
	unsigned fields_hidden;        /* fields that did not fit */
};

void trace_init(struct trace *tr, FILE *out, const char *tunnel);
void trace_begin_headers(struct trace *tr);
void trace_header(struct trace *tr, const uint8_t *name, size_t namelen,
                  const uint8_t *value, size_t valuelen);
void trace_frame(struct trace *tr, enum trace_dir dir, const nghttp2_frame *frame);
void trace_frame_at(struct trace *tr, enum trace_dir dir, const nghttp2_frame *frame,
                    const struct timespec *when);

size_t trace_format_frame(char *buf, size_t size, enum trace_dir dir,
                          const nghttp2_frame *frame);
size_t trace_format_field(char *buf, size_t size, const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen);

#endif
