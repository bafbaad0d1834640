/* keepalive.h -- HTTP/2 PING scheduling for a tunnel thread. See keepalive.c. */
#ifndef PTTH_KEEPALIVE_H
#define PTTH_KEEPALIVE_H

#include <stdbool.h>
#include <nghttp2/nghttp2.h>

struct keepalive {
	int interval_ms;        /* ping after this much silence; 0 turns pings off */
	int timeout_ms;         /* drop the tunnel when no ACK came in this time */
	long long last_rx_ms;   /* when bytes last arrived */
	long long ping_sent_ms; /* when the outstanding PING left, or 0 */
};

void keepalive_init(struct keepalive *ka, int interval_ms, int timeout_ms, long long now);
void keepalive_on_rx(struct keepalive *ka, long long now);
void keepalive_on_ack(struct keepalive *ka);
int keepalive_step(struct keepalive *ka, nghttp2_session *session, long long now);
int keepalive_poll_timeout(const struct keepalive *ka, long long now);

#endif
