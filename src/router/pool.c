/*
 * pool.c -- the set of live tunnels, and the random choice among them
 * that the original router made for each request.
 *
 * Owns:    one reference on each tunnel it lists.
 * Strategy: random (the original's), round-robin, or least-busy (fewest
 *          requests in flight, counted by tunnel->in_flight), chosen at init.
 * Threads: user connection threads pick; tunnel threads add themselves
 *          when they start and remove themselves when they end; the router
 *          takes snapshots to stop every tunnel.
 * Locks:   p->mu guards every field. No other lock is taken while it is
 *          held; references are taken inside it so a picked tunnel cannot
 *          be freed before the caller uses it.
 * Interface:
 *   - pool_pick() returns a referenced tunnel or NULL when none is live
 *     (the router answers 503);
 *   - pool_remove() is idempotent: a tunnel may remove itself on error
 *     and again on the way out;
 *   - pool_wait_count() and pool_wait_at_most() let tests and scripts
 *     wait for tunnels to come or go.
 * Tutorial: "Picking a tunnel".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "ptth.h"
#include "lock.h"
#include "pool.h"
#include "tunnel.h"

void
pool_init(struct pool *p, int balance)
{
	mutex_init(&p->mu);
	cond_init(&p->changed);
	p->items = NULL;
	p->count = p->alloc = 0;
	p->seed = (unsigned int)time(NULL);
	p->next = 0;
	p->balance = balance;
}

/* Frees the pool. Every tunnel has removed itself by now. */
void
pool_destroy(struct pool *p)
{
	free(p->items);
	cond_destroy(&p->changed);
	mutex_destroy(&p->mu);
}

/* Lists t, taking a reference. Returns 0 or -ENOMEM. */
int
pool_add(struct pool *p, struct tunnel *t)
{
	int rc = 0;

	mutex_lock(&p->mu);
	if (p->count == p->alloc) {
		size_t alloc = p->alloc ? p->alloc * 2 : 8;
		struct tunnel **items = realloc(p->items, alloc * sizeof *items);
		if (items == NULL) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		p->items = items;
		p->alloc = alloc;
	}
	tunnel_ref(t);
	p->items[p->count++] = t;
	cond_broadcast(&p->changed);
out_unlock:
	mutex_unlock(&p->mu);
	return rc;
}

/* Unlists t if listed and drops the pool's reference. */
void
pool_remove(struct pool *p, struct tunnel *t)
{
	bool found = false;

	mutex_lock(&p->mu);
	for (size_t i = 0; i < p->count; i++) {
		if (p->items[i] == t) {
			p->items[i] = p->items[--p->count];
			found = true;
			break;
		}
	}
	if (found)
		cond_broadcast(&p->changed);
	mutex_unlock(&p->mu);
	if (found)
		tunnel_unref(t);
}

/* The index of the tunnel with the fewest requests in flight; ties go
 * to the first one found from the round-robin position, so that idle
 * tunnels share the load. Caller must hold p->mu; p->count > 0. */
static size_t
pool_least_busy_locked(struct pool *p)
{
	size_t best = p->next % p->count;
	int best_load = atomic_load(&p->items[best]->in_flight);

	for (size_t k = 1; k < p->count; k++) {
		size_t i = (p->next + k) % p->count;
		int load = atomic_load(&p->items[i]->in_flight);
		if (load < best_load) {
			best = i;
			best_load = load;
		}
	}
	p->next++;
	return best;
}

/* Picks a live tunnel by the pool's strategy: at random like the
 * original, in turn, or the least busy, never avoid (may be NULL) while
 * another is listed. Returns it with a reference the caller must drop,
 * or NULL when no tunnel is left to pick. */
struct tunnel *
pool_pick(struct pool *p, const struct tunnel *avoid)
{
	struct tunnel *t = NULL;
	size_t i = 0;

	mutex_lock(&p->mu);
	if (p->count > 0) {
		switch (p->balance) {
		case PTTH_BALANCE_ROUND_ROBIN:
			i = p->next++ % p->count;
			break;
		case PTTH_BALANCE_LEAST_BUSY:
			i = pool_least_busy_locked(p);
			break;
		default:
			i = (size_t)rand_r(&p->seed) % p->count;
			break;
		}
		if (p->items[i] == avoid)
			i = (i + 1) % p->count; /* the next one, when there is one */
		if (p->items[i] != avoid) {
			t = p->items[i];
			tunnel_ref(t);
		}
	}
	mutex_unlock(&p->mu);
	return t;
}

size_t
pool_count(struct pool *p)
{
	size_t n;

	mutex_lock(&p->mu);
	n = p->count;
	mutex_unlock(&p->mu);
	return n;
}

/* True when the count is on the side of n that the caller waits for.
 * Caller must hold p->mu. */
static bool
pool_count_reached_locked(const struct pool *p, size_t n, bool at_least)
{
	return at_least ? p->count >= n : p->count <= n;
}

/* Waits until at least (at_least) or at most (!at_least) n tunnels are
 * listed: every add and remove broadcasts p->changed.
 * Returns 0 or -ETIMEDOUT. */
static int
pool_wait(struct pool *p, size_t n, bool at_least, int timeout_ms)
{
	struct timespec deadline = deadline_after_ms(timeout_ms);
	int rc = 0;

	mutex_lock(&p->mu);
	while (!pool_count_reached_locked(p, n, at_least) && rc == 0)
		rc = cond_timedwait(&p->changed, &p->mu, &deadline);
	rc = pool_count_reached_locked(p, n, at_least) ? 0 : -ETIMEDOUT;
	mutex_unlock(&p->mu);
	return rc;
}

/* Waits until at least n tunnels are listed. Returns 0 or -ETIMEDOUT. */
int
pool_wait_count(struct pool *p, size_t n, int timeout_ms)
{
	return pool_wait(p, n, true, timeout_ms);
}

/* Waits until at most n tunnels are listed. Returns 0 or -ETIMEDOUT. */
int
pool_wait_at_most(struct pool *p, size_t n, int timeout_ms)
{
	return pool_wait(p, n, false, timeout_ms);
}

/* Copies the listed tunnels into a new array, each with a reference the
 * caller drops (tunnel_unref) before freeing the array. Returns the count;
 * *out is NULL when it is 0 or memory ran out. */
size_t
pool_snapshot(struct pool *p, struct tunnel ***out)
{
	size_t n;

	mutex_lock(&p->mu);
	n = p->count;
	*out = n ? malloc(n * sizeof **out) : NULL;
	if (*out == NULL)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		(*out)[i] = p->items[i];
		tunnel_ref(p->items[i]);
	}
	mutex_unlock(&p->mu);
	return n;
}
