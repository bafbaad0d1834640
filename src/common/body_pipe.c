/*
 * body_pipe.c -- a bounded ring of bytes carrying one direction of one
 * body between two threads (for example, response DATA from a tunnel
 * thread to the user connection that writes it out).
 *
 * Owns:    its ring buffer, which starts small and grows up to cap, so a
 *          thousand idle streams cost little memory.
 * Threads: a writer and a reader, on different threads.
 * Locks:   none of its own. A pipe lives inside a struct exchange and is
 *          guarded by that exchange's mutex; both pipes of an exchange share
 *          it, so one thread can wait for "space in one or data in the
 *          other" on a single condition variable (see exchange.c).
 * Interface:
 *   - body_pipe_write() takes what fits and says how much; it never blocks;
 *   - body_pipe_read() hands out what is there and counts it as
 *     "unreported" until body_pipe_take_unreported() collects the count
 *     for HTTP/2 flow control (nghttp2_session_consume or a DATA frame);
 *   - body_pipe_finish() marks the end; body_pipe_at_end() is true once the
 *     reader has seen every byte after the end was marked;
 *   - body_pipe_empty() makes it as new for another stream, keeping a
 *     small ring.
 * Tutorial: "Bodies stream, they are never stored".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "body_pipe.h"

/* The smallest first allocation; the ring doubles from here as needed.
 * Most bodies are small (a 3-byte "bar", a short JSON answer) and a
 * router holds one in pipe per request in flight: with 10 000 users, 4 KiB
 * each would be 40 MB for nothing. A large body reaches the size of its
 * first write at once (a 16 KiB DATA frame: 16 KiB), so streams do not
 * grow in small steps. */
#define BODY_PIPE_MIN_SIZE 256

/* Prepares an empty pipe that will never hold more than cap bytes.
 * Nothing is allocated until the first write. */
void
body_pipe_init(struct body_pipe *p, size_t cap)
{
	memset(p, 0, sizeof *p);
	p->cap = cap;
}

void
body_pipe_destroy(struct body_pipe *p)
{
	free(p->buf);
	p->buf = NULL;
	p->size = 0;
}

/* Returns how many more bytes the pipe accepts now. */
size_t
body_pipe_space(const struct body_pipe *p)
{
	return p->cap - p->len;
}

/* Grows the ring so that it can hold need bytes, keeping the unread bytes
 * in order at the start of the new buffer. Returns 0 or -ENOMEM. */
static int
body_pipe_grow(struct body_pipe *p, size_t need)
{
	size_t size = p->size ? p->size : BODY_PIPE_MIN_SIZE;
	char *buf;

	while (size < need)
		size *= 2;
	if (size > p->cap)
		size = p->cap;
	buf = malloc(size);
	if (buf == NULL)
		return -ENOMEM;
	/* Copy out in two parts when the unread bytes wrap around the end. */
	size_t first = p->len;
	if (p->head + first > p->size)
		first = p->size - p->head;
	if (p->len > 0) {
		memcpy(buf, p->buf + p->head, first);
		memcpy(buf + first, p->buf, p->len - first);
	}
	free(p->buf);
	p->buf = buf;
	p->size = size;
	p->head = 0;
	return 0;
}

/* Appends up to len bytes; never blocks and never goes beyond cap.
 * Returns the number of bytes taken (possibly 0 when full), or -ENOMEM. */
ssize_t
body_pipe_write(struct body_pipe *p, const void *data, size_t len)
{
	const char *src = data;
	size_t n = len, done = 0;

	if (n > body_pipe_space(p))
		n = body_pipe_space(p);
	if (n == 0)
		return 0;
	if (p->len + n > p->size && body_pipe_grow(p, p->len + n) < 0)
		return -ENOMEM;
	while (done < n) {
		size_t tail = (p->head + p->len) % p->size;
		size_t chunk = n - done;
		if (chunk > p->size - tail)
			chunk = p->size - tail;
		memcpy(p->buf + tail, src + done, chunk);
		p->len += chunk;
		done += chunk;
	}
	return (ssize_t)n;
}

/* Moves up to len unread bytes into buf and counts them as unreported.
 * Returns the number of bytes moved; 0 means empty (see body_pipe_at_end). */
size_t
body_pipe_read(struct body_pipe *p, void *buf, size_t len)
{
	char *dst = buf;
	size_t n = len < p->len ? len : p->len, done = 0;

	while (done < n) {
		size_t chunk = n - done;
		if (chunk > p->size - p->head)
			chunk = p->size - p->head;
		memcpy(dst + done, p->buf + p->head, chunk);
		p->head = (p->head + chunk) % p->size;
		p->len -= chunk;
		done += chunk;
	}
	p->unreported += n;
	return n;
}

/* Marks that the writer has written its last byte. */
void
body_pipe_finish(struct body_pipe *p)
{
	p->finished = true;
}

/* True once the end was marked and every byte was read. */
bool
body_pipe_at_end(const struct body_pipe *p)
{
	return p->finished && p->len == 0;
}

/* Returns the bytes read since the last call and resets the count. */
size_t
body_pipe_take_unreported(struct body_pipe *p)
{
	size_t n = p->unreported;

	p->unreported = 0;
	return n;
}

/* Drops the unread bytes as if they had been read (they still count as
 * unreported, so flow control gets them back). */
void
body_pipe_discard(struct body_pipe *p)
{
	p->unreported += p->len;
	p->head = 0;
	p->len = 0;
}

/* Makes the pipe as new (empty, not finished, nothing unreported) for
 * another stream, keeping its ring when that is at most keep bytes: a
 * connection reusing its pipes request after request allocates nothing,
 * yet one large body does not pin a large ring for good. */
void
body_pipe_empty(struct body_pipe *p, size_t keep)
{
	char *buf = p->size <= keep ? p->buf : NULL;
	size_t size = buf != NULL ? p->size : 0;

	if (buf == NULL)
		free(p->buf);
	body_pipe_init(p, p->cap);
	p->buf = buf;
	p->size = size;
}
