/*
 * upgrade_relay.c -- an upgraded user connection (a WebSocket after the
 * router's 101) carried as bytes both ways over its HTTP/2 stream, the
 * way RFC 8441 section 4 describes: the user's bytes become DATA on the
 * stream, the stream's DATA goes back to the user, a TCP FIN is
 * END_STREAM and a reset stream is a TCP reset.
 *
 * Owns:    nothing: the socket, the notify eventfd and the exchange stay
 *          the user connection's (user_conn.c), which ends them.
 * Threads: the user connection's own "ptth-user" thread, which stays the
 *          owner of its connection; the tunnel thread stays the only one
 *          in the session, reached through the exchange as for any body.
 * Locks:   none of its own; exchange calls take ex->mu briefly.
 * Interface:
 *   - upgrade_relay_run(): relays until both sides ended, either failed,
 *     or nothing moved for idle_timeout_ms; bytes that came after the
 *     head (early) go first;
 *   - it waits in poll() on {user socket, notify_fd}; the tunnel writes
 *     notify_fd when stream bytes arrive, the stream ends, or (ex->duplex)
 *     its data provider took bytes and made room in the out pipe;
 *   - memory is bounded: one buffer each way here, the exchange's two
 *     pipes, and flow control holds back whichever side is faster.
 * Tutorial: "A connection that stays open".
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptth.h"
#include "exchange.h"
#include "lock.h"
#include "net.h"
#include "upgrade_relay.h"

/* Moves whatever the backend sent to the user: a blocking send() whose
 * SO_SNDTIMEO (the send timeout) bounds a user who does not read. At the
 * end of the stream's in side, shuts the user's receiving side (the TCP
 * FIN that END_STREAM stands for). Returns 0, or a negative code: the
 * stream was reset or its tunnel closed, or the user is gone. */
static int
relay_move_down(struct upgrade_relay *u)
{
	for (;;) {
		ssize_t n = exchange_read_in(u->ex, u->down, sizeof u->down, false);
		if (n == -EAGAIN)
			return 0;
		if (n == 0) {
			if (!u->backend_eof)
				shutdown(u->fd, SHUT_WR);
			u->backend_eof = true;
			return 0;
		}
		if (n < 0)
			return (int)n;
		int rc = net_write_all(u->fd, u->down, (size_t)n);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK)
			return -ETIMEDOUT; /* the user took nothing for the send timeout */
		if (rc < 0)
			return rc;
		u->bytes_down += (uint64_t)n;
		u->moved_ms = now_ms();
	}
}

/* Puts pending user bytes into the out pipe, as far as it has room; the
 * rest waits for the tunnel to make room (flow control). Returns 0 or
 * the stream's error. A backend that ended its side and then closed the
 * stream (RST_STREAM NO_ERROR: "stop sending") ends the relay cleanly. */
static int
relay_move_up(struct upgrade_relay *u)
{
	while (u->up_len > 0) {
		ssize_t n = exchange_write_out(u->ex, u->up + u->up_off, u->up_len);
		if (n < 0 && u->backend_eof) {
			u->up_len = 0; /* nobody will read them */
			u->user_eof = true;
			return 0;
		}
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		u->up_off += (size_t)n;
		u->up_len -= (size_t)n;
	}
	return 0;
}

/* Reads what the user sent into the up buffer (empty by now). At EOF
 * the stream's out side ends (END_STREAM). Returns 0 or -errno. */
static int
relay_read_user(struct upgrade_relay *u)
{
	ssize_t n = recv(u->fd, u->up, sizeof u->up, 0);

	if (n < 0)
		return (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	if (n == 0) {
		u->user_eof = true;
		exchange_finish_out(u->ex);
		return 0;
	}
	u->up_off = 0;
	u->up_len = (size_t)n;
	u->bytes_up += (uint64_t)n;
	u->moved_ms = now_ms();
	return 0;
}

/* Sleeps until the user sent something (while there is room to take
 * it), the stream changed, or the idle time ran out. The exchange is
 * armed first: a change that came since we last looked returns at once.
 * Returns 0, -ETIMEDOUT (idle) or -errno. */
static int
relay_wait(struct upgrade_relay *u)
{
	struct pollfd pfd[2] = {
		{ .fd = u->notify_fd, .events = POLLIN },
		{ .fd = u->fd, .events = POLLIN },
	};
	bool want_user = !u->user_eof && u->up_len == 0;
	long long left = u->moved_ms + u->idle_timeout_ms - now_ms();
	int rc;

	if (exchange_arm_notify(u->ex, u->notify_fd, &u->seen))
		return 0;
	if (left <= 0) {
		exchange_disarm_notify(u->ex);
		return -ETIMEDOUT;
	}
	rc = poll(pfd, want_user ? 2 : 1, (int)left);
	exchange_disarm_notify(u->ex);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[0].revents & POLLIN)
		net_wake_drain(u->notify_fd);
	if (want_user && pfd[1].revents != 0)
		return relay_read_user(u);
	return 0;
}

/* A stream that ended badly ends the user's connection with a reset,
 * not a FIN (RFC 8441 section 4: RST_STREAM is the TCP RST). */
static void
relay_abort_user(struct upgrade_relay *u)
{
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(u->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
}

/* Relays between the user's socket and the stream until both sides have
 * ended (0), or the stream failed (PTTH_ERESET, PTTH_ECLOSED: the user's
 * connection is then set to close with a reset), the user failed
 * (-errno), or nothing moved for idle_timeout_ms (-ETIMEDOUT). early
 * holds bytes the user sent after the head, at most ROUTER_READ_BUF.
 * The caller then releases the exchange (which resets a stream not yet
 * over) and closes the socket. */
int
upgrade_relay_run(struct upgrade_relay *u, const char *early, size_t early_len)
{
	int rc = 0;

	u->user_eof = u->backend_eof = false;
	u->bytes_up = u->bytes_down = 0;
	u->seen = 0;
	u->moved_ms = now_ms();
	u->up_off = 0;
	u->up_len = early_len < sizeof u->up ? early_len : sizeof u->up;
	memcpy(u->up, early, u->up_len);
	while (rc == 0 && !(u->user_eof && u->backend_eof && u->up_len == 0)) {
		rc = relay_move_down(u);
		if (rc == 0)
			rc = relay_move_up(u);
		if (rc == 0 && !(u->user_eof && u->backend_eof && u->up_len == 0))
			rc = relay_wait(u);
	}
	if (rc == PTTH_ERESET || rc == PTTH_ECLOSED)
		relay_abort_user(u);
	return rc;
}
