/* tunnel.h -- one reverse tunnel on the router side and its thread. See tunnel.c. */
#ifndef PTTH_TUNNEL_H
#define PTTH_TUNNEL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "inbox.h"
#include "metrics.h"

struct ptth_router;
struct exchange;
struct pool;
struct service;

struct tunnel {
	atomic_int refs;          /* pool, tunnel thread, each user mid-request */
	atomic_bool stop;         /* set by the router to end the thread */
	atomic_int in_flight;     /* requests handed over and not yet finished
	                             by their user thread (least-busy balancing) */
	atomic_bool extended_connect; /* the backend's SETTINGS said
	                             ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441): it
	                             takes WebSockets. Stored by the tunnel
	                             thread, read by pool_pick_for() */

	/* The capacity pool_pick() reads, atomics outside every lock: */
	atomic_uint peer_max_streams; /* the backend's SETTINGS_MAX_CONCURRENT_STREAMS,
	                             stored by the tunnel thread; 0 until it joins */
	atomic_uint streams_used; /* stream slots taken: one per request picked
	                             for this tunnel, queued or open; taken by
	                             pool_pick() under the pool's mu, given back
	                             by tunnel_submit() on failure or by the
	                             tunnel thread when the request leaves it */

	/* guarded by the mu of the pool it is listed in (pool->mu): */
	bool joined;              /* pickable: the backend's SETTINGS arrived */

	/* Set before the thread starts, read-only afterwards: */
	struct ptth_router *router;
	int fd;                   /* closed by the tunnel thread when it ends */
	char name[64];            /* the backend's address, for logs */
	int id;                   /* 1, 2, ... in order of arrival */
	struct inbox inbox;       /* new requests and kicks for this tunnel */
	struct tunnel_stats stats;/* atomics: written by the tunnel thread, read by
	                             the admin thread (GET /tunnels) */

	/* Set by the tunnel thread after its handshake, before the tunnel is
	 * listed in a pool (whose lock publishes them), read-only afterwards: */
	struct pool *pool;        /* the pool it serves: its service's, or the default */
	struct service *service;  /* NULL for the default pool */
	const char *service_name; /* "" for the default pool, for logs */
};

int tunnel_start(struct ptth_router *r, int fd);
void tunnel_ref(struct tunnel *t);
void tunnel_unref(struct tunnel *t);
void tunnel_stop(struct tunnel *t);
int tunnel_submit(struct tunnel *t, struct exchange *ex);

#endif
