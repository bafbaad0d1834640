/* upgrade_relay.h -- an upgraded user connection (a WebSocket after its
 * 101) carried both ways over its HTTP/2 stream. See upgrade_relay.c. */
#ifndef PTTH_UPGRADE_RELAY_H
#define PTTH_UPGRADE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router.h"

struct exchange;

struct upgrade_relay {
	/* Set by the caller: */
	int fd;                     /* the user's socket (blocking, SO_SNDTIMEO set) */
	int notify_fd;              /* the user connection's eventfd */
	struct exchange *ex;        /* the stream; ex->duplex was set before it was shared */
	int idle_timeout_ms;        /* nothing moved either way for this long: end */

	/* Filled in by upgrade_relay_run(): */
	uint64_t bytes_up, bytes_down; /* user to backend, backend to user */

	/* upgrade_relay_run() only: */
	bool user_eof;              /* the user ended its side: END_STREAM asked for */
	bool backend_eof;           /* the stream's in side ended: the user's side shut */
	unsigned seen;              /* changes of ex already looked at */
	long long moved_ms;         /* when a byte last moved either way */
	size_t up_off, up_len;      /* user bytes in up not yet in the out pipe */
	char up[ROUTER_READ_BUF];
	char down[32 * 1024];
};

int upgrade_relay_run(struct upgrade_relay *u, const char *early, size_t early_len);

#endif
