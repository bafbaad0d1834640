/* pool.h -- the set of live tunnels a router picks from. See pool.c. */
#ifndef PTTH_POOL_H
#define PTTH_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct tunnel;

struct pool {
	pthread_mutex_t mu;      /* lock order: taken alone, never nested */
	pthread_cond_t changed;  /* broadcast when a tunnel joins or leaves */
	/* guarded by mu (and so is each listed tunnel's joined flag): */
	struct tunnel **items;   /* every listed tunnel, joined or not yet */
	size_t count, alloc;
	size_t joined;           /* how many of them may be picked */
	unsigned int seed;       /* rand_r() state for the random choice */
	size_t next;             /* where round-robin (and least-busy ties) start */
	int balance;             /* enum ptth_balance; set at init */
};

void pool_init(struct pool *p, int balance);
void pool_destroy(struct pool *p);
int pool_add(struct pool *p, struct tunnel *t);
bool pool_join(struct pool *p, struct tunnel *t);
void pool_remove(struct pool *p, struct tunnel *t);
/* What a request needs of its tunnel, for pool_pick_for() and pool_has(). */
enum pool_need {
	POOL_NEED_NOTHING = 0,
	POOL_NEED_EXTENDED_CONNECT = 1 << 0, /* a WebSocket: RFC 8441 extended CONNECT */
};

struct tunnel *pool_pick(struct pool *p, const struct tunnel *avoid);
struct tunnel *pool_pick_for(struct pool *p, const struct tunnel *avoid, unsigned need);
bool pool_has(struct pool *p, unsigned need);
size_t pool_count(struct pool *p);
int pool_wait_count(struct pool *p, size_t n, int timeout_ms);
int pool_wait_at_most(struct pool *p, size_t n, int timeout_ms);
size_t pool_snapshot(struct pool *p, struct tunnel ***out);

#endif
