/*
 * session_io.c -- moves bytes between a tunnel socket and the nghttp2
 * session that speaks on it, for the one thread that owns both.
 *
 * Owns:    its output buffer; not the socket, not the session.
 * Threads: only the owning tunnel thread (router or backend side).
 * Locks:   none; nothing here is shared.
 * Interface:
 *   - session_io_wait(): poll() on {socket, wake fd}; asks for POLLOUT only
 *     while output is waiting;
 *   - session_io_recv(): one read() of what is there, fed whole to
 *     nghttp2_session_mem_recv();
 *   - session_io_flush(): drains nghttp2_session_mem_send() into the
 *     buffer and writes as much as the socket takes now;
 *   - session_io_done(): the session has nothing left to read or write.
 * Why writes never block: both ends of a tunnel write and read. If our
 * thread blocked in write() while the peer blocked writing to us, neither
 * would read again. So the socket stays blocking (as the design says),
 * but this thread writes with MSG_DONTWAIT and keeps the rest for the
 * next POLLOUT. It also stops asking nghttp2 for more frames while the
 * buffer is large, so a slow peer costs bounded memory.
 * Tutorial: "The tunnel thread's loop".
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptth.h"
#include "session_io.h"

/* Stop taking frames from nghttp2 once this much output waits. */
#define SESSION_IO_OUT_HIGH (256 * 1024)
/* Bytes read from the socket per read(). */
#define SESSION_IO_READ_SIZE (64 * 1024)

void
session_io_init(struct session_io *io, int fd)
{
	memset(io, 0, sizeof *io);
	io->fd = fd;
}

void
session_io_destroy(struct session_io *io)
{
	free(io->out);
	io->out = NULL;
}

/* Appends one chunk from mem_send to the output buffer.
 * Returns 0 or -ENOMEM. */
static int
session_io_append(struct session_io *io, const uint8_t *data, size_t len)
{
	if (io->out_off > 0 && io->out_off == io->out_len)
		io->out_off = io->out_len = 0;
	if (io->out_len + len > io->out_alloc) {
		size_t alloc = io->out_alloc ? io->out_alloc : 16384;
		while (alloc < io->out_len + len)
			alloc *= 2;
		char *out = realloc(io->out, alloc);
		if (out == NULL)
			return -ENOMEM;
		io->out = out;
		io->out_alloc = alloc;
	}
	memcpy(io->out + io->out_len, data, len);
	io->out_len += len;
	return 0;
}

/* Writes buffered output without blocking. Returns 0 (some may remain)
 * or a negative code when the socket failed. */
static int
session_io_write_some(struct session_io *io)
{
	while (io->out_off < io->out_len) {
		ssize_t n = send(io->fd, io->out + io->out_off, io->out_len - io->out_off,
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		io->out_off += (size_t)n;
		io->bytes_out += (uint64_t)n;
	}
	io->out_off = io->out_len = 0;
	return 0;
}

/* Collects everything nghttp2 wants to send (up to the high mark) and
 * writes what the socket takes. Everything mem_send returns is copied
 * before the next call, as its contract requires.
 * Returns 0, or a negative code when the socket or the session failed. */
int
session_io_flush(struct session_io *io, nghttp2_session *session)
{
	for (;;) {
		while (io->out_len - io->out_off < SESSION_IO_OUT_HIGH) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(session, &data);
			if (n < 0)
				return PTTH_EPROTO;
			if (n == 0)
				break;
			if (session_io_append(io, data, (size_t)n) < 0)
				return -ENOMEM;
		}
		size_t before = io->out_len - io->out_off;
		int rc = session_io_write_some(io);
		if (rc < 0)
			return rc;
		/* Loop again only if everything went out and more may come. */
		if (io->out_len != 0 || before < SESSION_IO_OUT_HIGH)
			return 0;
	}
}

/* Reads what the socket has and feeds all of it to the session.
 * Returns 0, PTTH_ECLOSED at end of stream, PTTH_EPROTO when nghttp2
 * rejects the bytes, or -errno. */
int
session_io_recv(struct session_io *io, nghttp2_session *session)
{
	uint8_t buf[SESSION_IO_READ_SIZE];
	ssize_t n, used;

	n = recv(io->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
	if (n == 0)
		return PTTH_ECLOSED;
	io->bytes_in += (uint64_t)n;
	used = nghttp2_session_mem_recv(session, buf, (size_t)n);
	if (used < 0)
		return PTTH_EPROTO;
	return 0;
}

/* Waits for the socket or the wake fd, or for timeout_ms (-1: forever).
 * Returns a mask of SESSION_IO_READABLE and SESSION_IO_WOKEN (0 on
 * timeout; writable sockets are simply flushed by the next loop), or a
 * negative code. */
int
session_io_wait(struct session_io *io, int wake_fd, int timeout_ms)
{
	struct pollfd fds[2] = {
		{ .fd = io->fd, .events = POLLIN },
		{ .fd = wake_fd, .events = POLLIN },
	};
	int mask = 0;

	if (io->out_off < io->out_len)
		fds[0].events |= POLLOUT;
	if (poll(fds, 2, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
		mask |= SESSION_IO_READABLE;
	if (fds[1].revents & POLLIN)
		mask |= SESSION_IO_WOKEN;
	return mask;
}

/* Queues our SETTINGS (the application's part of the connection
 * preface, on either side) and opens the connection-level receive window
 * wide: streams are bounded by their own windows, which only reopen as
 * readers drain (see exchange.c), so the shared window need not limit
 * anything. Returns 0 or PTTH_EPROTO. */
int
session_io_send_settings(nghttp2_session *session, const nghttp2_settings_entry *settings,
                         size_t n)
{
	if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, n) != 0 ||
	    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 1 << 30) != 0)
		return PTTH_EPROTO;
	return 0;
}

/* True when the session neither wants to read nor to write and no
 * output is left in the buffer: the connection is finished. */
bool
session_io_done(const struct session_io *io, nghttp2_session *session)
{
	return !nghttp2_session_want_read(session) && !nghttp2_session_want_write(session) &&
	       io->out_off == io->out_len;
}
