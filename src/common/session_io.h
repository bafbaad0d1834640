/* session_io.h -- socket <-> nghttp2 session plumbing for the owning thread. See session_io.c. */
#ifndef PTTH_SESSION_IO_H
#define PTTH_SESSION_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>

struct session_io {
	int fd;                 /* the tunnel socket, owned by the caller */
	char *out;              /* bytes taken from mem_send, not yet written */
	size_t out_off, out_len, out_alloc;
	uint64_t bytes_in, bytes_out;
};

enum {
	SESSION_IO_READABLE = 1 << 0,
	SESSION_IO_WOKEN = 1 << 1,
};

void session_io_init(struct session_io *io, int fd);
void session_io_destroy(struct session_io *io);
int session_io_flush(struct session_io *io, nghttp2_session *session);
int session_io_recv(struct session_io *io, nghttp2_session *session);
int session_io_wait(struct session_io *io, int wake_fd, int timeout_ms);
bool session_io_done(const struct session_io *io, nghttp2_session *session);
int session_io_send_settings(nghttp2_session *session, const nghttp2_settings_entry *settings,
                             size_t n);

#endif
