/* services.h -- the router's pools, one per named service plus the
 * default pool. See services.c. */
#ifndef PTTH_SERVICES_H
#define PTTH_SERVICES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "handshake.h"
#include "metrics.h"
#include "pool.h"

#define SERVICES_MAX 1024   /* named services a router keeps pools for */

struct tokens;
struct tunnel;

/* One named service: its pool and what makes it known. */
struct service {
	char name[HANDSHAKE_SERVICE_MAX + 1];  /* set at creation, read-only */
	struct pool pool;                      /* its tunnels, with its own lock */
	struct metrics_service metrics;        /* its counters: atomics, no lock */
	/* guarded by the services' mu: */
	bool listed;                           /* named in the tokens file */
	size_t tunnels;                        /* tunnels joined and not yet left */
};

struct services {
	struct pool *fallback;   /* the default pool (the router's), not owned */
	int balance;             /* for new pools; set at init */
	pthread_mutex_t mu;      /* lock order: taken alone; never held while a
	                            pool's mu is taken, except in services_snapshot()
	                            (services mu, then each pool's mu) */
	pthread_cond_t changed;  /* broadcast when a tunnel joins or leaves */
	/* guarded by mu: */
	struct service **items;  /* never shrinks: a service lives as long as the router */
	size_t count, alloc;
	size_t fallback_tunnels; /* tunnels in the default pool */
	size_t total;            /* tunnels in every pool */
};

void services_init(struct services *s, struct pool *fallback, int balance);
void services_destroy(struct services *s);
struct service *services_get(struct services *s, const char *name, bool create);
struct pool *services_route(struct services *s, const char *name);
struct service *services_pool_service(struct pool *p);
void services_set_listed(struct services *s, const struct tokens *t);
void services_joined(struct services *s, struct service *svc);
void services_left(struct services *s, struct service *svc);
size_t services_count(struct services *s, const char *name);
int services_wait(struct services *s, const char *name, size_t n, bool at_least,
                  int timeout_ms);
size_t services_snapshot(struct services *s, struct tunnel ***out);
void services_host_name(const char *host, char *out, size_t cap);

#endif
