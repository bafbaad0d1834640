/*
 * keepalive.c -- notices a dead peer on a quiet tunnel: after interval_ms
 * without incoming bytes it sends an HTTP/2 PING, and when no ACK comes
 * within timeout_ms the tunnel is declared dead. A backend that froze or a
 * connection that a NAT box dropped would otherwise keep taking requests
 * that never come back.
 *
 * Owns:    a few timestamps.
 * Threads: the tunnel thread that owns the session (router or backend);
 *          nghttp2 has no timers, so the thread's poll() timeout drives it.
 * Locks:   none.
 * Interface:
 *   - keepalive_on_rx() whenever bytes arrive; keepalive_on_ack() when a
 *     PING frame with the ACK flag arrives;
 *   - keepalive_step() once per loop: submits a PING when due, returns
 *     -ETIMEDOUT when the ACK is overdue;
 *   - keepalive_poll_timeout() tells poll() how long it may sleep.
 * Tutorial: "Tunnels come and go".
 */
#include <errno.h>

#include "keepalive.h"

void
keepalive_init(struct keepalive *ka, int interval_ms, int timeout_ms, long long now)
{
	ka->interval_ms = interval_ms;
	ka->timeout_ms = timeout_ms;
	ka->last_rx_ms = now;
	ka->ping_sent_ms = 0;
}

/* Any incoming byte proves the peer alive, like an ACK would. */
void
keepalive_on_rx(struct keepalive *ka, long long now)
{
	ka->last_rx_ms = now;
}

void
keepalive_on_ack(struct keepalive *ka)
{
	ka->ping_sent_ms = 0;
}

/* Sends a PING when the tunnel has been quiet for interval_ms.
 * Returns 0, -ETIMEDOUT when the outstanding PING went unanswered (and
 * nothing else arrived) for timeout_ms, or -ENOMEM. */
/* tutorial: keepalive-step */
int
keepalive_step(struct keepalive *ka, nghttp2_session *session, long long now)
{
	if (ka->interval_ms <= 0)
		return 0;
	if (ka->ping_sent_ms != 0) {
		if (ka->last_rx_ms > ka->ping_sent_ms)
			ka->ping_sent_ms = 0; /* traffic came back: as good as an ACK */
		else if (now - ka->ping_sent_ms >= ka->timeout_ms)
			return -ETIMEDOUT;
		else
			return 0;
	}
	if (now - ka->last_rx_ms < ka->interval_ms)
		return 0;
	if (nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, NULL) != 0)
		return -ENOMEM;
	ka->ping_sent_ms = now;
	return 0;
}
/* tutorial: end */

/* Milliseconds until keepalive_step() has something to do, for poll();
 * -1 when pings are off. */
int
keepalive_poll_timeout(const struct keepalive *ka, long long now)
{
	long long due;

	if (ka->interval_ms <= 0)
		return -1;
	if (ka->ping_sent_ms != 0)
		due = ka->ping_sent_ms + ka->timeout_ms;
	else
		due = ka->last_rx_ms + ka->interval_ms;
	if (due <= now)
		return 0;
	return (int)(due - now);
}
