/*
 * pool.c -- the set of live tunnels, and the choice among them for each
 * request: at random like the original router, but only among tunnels
 * that can open a stream now.
 *
 * Owns:    one reference on each tunnel it lists.
 * Strategy: random (the original's), round-robin, or least-busy (fewest
 *          requests in flight, counted by tunnel->in_flight), chosen at
 *          init, applied to the tunnels with a free stream; only when
 *          none has one is the request queued, on a tunnel chosen the
 *          same way among the others. A tunnel whose backend allows no
 *          stream at all is never picked.
 * Threads: user connection threads pick; tunnel threads add themselves
 *          when they start, join once their backend's SETTINGS arrived
 *          and remove themselves when they end; the router takes
 *          snapshots to stop every tunnel, joined or not.
 * Locks:   p->mu guards every field and each listed tunnel's joined
 *          flag. No other lock is taken while it is held; references are
 *          taken inside it so a picked tunnel cannot be freed before the
 *          caller uses it. The capacity the pick reads, a tunnel's
 *          peer_max_streams and streams_used, are atomics: the tunnel
 *          thread stores them without p->mu, but streams_used only grows
 *          inside p->mu (the pick's slot), so a free stream seen there
 *          cannot be taken by another pick before this one takes it.
 * Interface:
 *   - pool_pick() returns a referenced tunnel, with a stream slot taken,
 *     or NULL when no tunnel can take the request (the router answers 503);
 *     pool_pick_for() picks only among tunnels that fit a need (a
 *     WebSocket needs a backend that announced extended CONNECT,
 *     tunnel->extended_connect), and pool_has() says whether any joined
 *     tunnel fits at all;
 *   - pool_add() lists a tunnel, pool_join() makes it pickable and
 *     counted; pool_remove() is idempotent: a tunnel may remove itself
 *     on error and again on the way out;
 *   - pool_wait_count() and pool_wait_at_most() let tests and scripts
 *     wait for joined tunnels to come or go.
 * Tutorial: "Picking a tunnel"; the strategies in "Spreading the load
 *          over tunnels".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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
	p->count = p->alloc = p->joined = 0;
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

/* Lists t, taking a reference, as soon as its thread runs: the router
 * can stop it from then on (pool_snapshot), but nobody picks it or
 * counts it before pool_join(). Returns 0 or -ENOMEM. */
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
	t->joined = false;
	p->items[p->count++] = t;
out_unlock:
	mutex_unlock(&p->mu);
	return rc;
}

/* The index of t in the pool, or SIZE_MAX. Caller must hold p->mu. */
static size_t
pool_find_locked(const struct pool *p, const struct tunnel *t)
{
	for (size_t i = 0; i < p->count; i++)
		if (p->items[i] == t)
			return i;
	return SIZE_MAX;
}

/* Makes a listed tunnel pickable and counted: its backend's SETTINGS
 * arrived, so the tunnel knows how many streams it may open. Returns
 * false when t is not listed (it left already) or joined before. */
bool
pool_join(struct pool *p, struct tunnel *t)
{
	bool join;

	mutex_lock(&p->mu);
	join = !t->joined && pool_find_locked(p, t) != SIZE_MAX;
	if (join) {
		t->joined = true;
		p->joined++;
		cond_broadcast(&p->changed);
	}
	mutex_unlock(&p->mu);
	return join;
}

/* Unlists t if listed and drops the pool's reference. */
void
pool_remove(struct pool *p, struct tunnel *t)
{
	size_t i;

	mutex_lock(&p->mu);
	i = pool_find_locked(p, t);
	if (i != SIZE_MAX) {
		p->items[i] = p->items[--p->count];
		if (t->joined)
			p->joined--;
		t->joined = false;
		cond_broadcast(&p->changed);
	}
	mutex_unlock(&p->mu);
	if (i != SIZE_MAX)
		tunnel_unref(t);
}

/* True when t may be picked: it joined, it is not avoid, its backend
 * allows streams at all, it has what the request needs (enum pool_need:
 * a WebSocket needs a backend that announced extended CONNECT), and,
 * with need_room, it can open one more stream now (fewer slots taken
 * than the backend's SETTINGS_MAX_CONCURRENT_STREAMS). A tunnel that
 * allows none is never picked, not even to queue: the request could only
 * wait there. Caller must hold p->mu. */
static bool
pool_eligible_locked(struct tunnel *t, const struct tunnel *avoid, bool need_room,
                     unsigned need)
{
	unsigned int max = atomic_load(&t->peer_max_streams);

	if (!t->joined || t == avoid || max == 0)
		return false;
	if ((need & POOL_NEED_EXTENDED_CONNECT) && !atomic_load(&t->extended_connect))
		return false;
	return !need_room || atomic_load(&t->streams_used) < max;
}

/* The index of the first eligible tunnel at or after p->next, in turn,
 * or SIZE_MAX. Caller must hold p->mu; p->count > 0. */
static size_t
pool_round_robin_locked(struct pool *p, const struct tunnel *avoid, bool need_room,
                        unsigned need)
{
	for (size_t k = 0; k < p->count; k++) {
		size_t i = (p->next + k) % p->count;
		if (pool_eligible_locked(p->items[i], avoid, need_room, need)) {
			p->next = i + 1;
			return i;
		}
	}
	return SIZE_MAX;
}

/* The index of the eligible tunnel with the fewest requests in flight,
 * or SIZE_MAX; ties go to the first one found from the round-robin
 * position, so that idle tunnels share the load. Caller must hold p->mu;
 * p->count > 0. */
static size_t
pool_least_busy_locked(struct pool *p, const struct tunnel *avoid, bool need_room,
                       unsigned need)
{
	size_t best = SIZE_MAX;
	int best_load = 0;

	for (size_t k = 0; k < p->count; k++) {
		size_t i = (p->next + k) % p->count;
		if (!pool_eligible_locked(p->items[i], avoid, need_room, need))
			continue;
		int load = atomic_load(&p->items[i]->in_flight);
		if (best == SIZE_MAX || load < best_load) {
			best = i;
			best_load = load;
		}
	}
	p->next++;
	return best;
}

/* The index of the tunnel to pick among the eligible ones, by the
 * pool's strategy: at random like the original, in turn, or the least
 * busy. Returns SIZE_MAX when none is eligible. Every loop is bounded by
 * p->count: a tunnel thread may lower its limit between two looks (never
 * take a slot: that happens only under p->mu). Caller must hold p->mu. */
/* tutorial: pool-pick */
static size_t
pool_choose_locked(struct pool *p, const struct tunnel *avoid, bool need_room,
                   unsigned need)
{
	size_t n = 0, nth;

	for (size_t i = 0; i < p->count; i++)
		n += pool_eligible_locked(p->items[i], avoid, need_room, need);
	if (n == 0)
		return SIZE_MAX;
	if (p->balance == PTTH_BALANCE_ROUND_ROBIN)
		return pool_round_robin_locked(p, avoid, need_room, need);
	if (p->balance == PTTH_BALANCE_LEAST_BUSY)
		return pool_least_busy_locked(p, avoid, need_room, need);
	nth = (size_t)rand_r(&p->seed) % n;
	for (size_t i = 0; i < p->count; i++)
		if (pool_eligible_locked(p->items[i], avoid, need_room, need) && nth-- == 0)
			return i;
	return SIZE_MAX;
}
/* tutorial: end */

/* Picks a joined tunnel for one request, never avoid (may be NULL).
 * It picks among the tunnels that can open a stream now, and only when
 * none can, among the others, where the request will wait in the queue.
 * The pick takes one stream slot on the tunnel (streams_used), inside
 * the lock, so that two users cannot both take the last free stream;
 * tunnel_submit() gives it back if the hand-over fails, the tunnel thread
 * when it is done with the request. Only tunnels that fit need (enum
 * pool_need) count. Returns the tunnel with a reference the caller must
 * drop, or NULL when no tunnel can take the request. */
struct tunnel *
pool_pick_for(struct pool *p, const struct tunnel *avoid, unsigned need)
{
	struct tunnel *t = NULL;
	size_t i;

	mutex_lock(&p->mu);
	i = pool_choose_locked(p, avoid, true, need);
	if (i == SIZE_MAX)
		i = pool_choose_locked(p, avoid, false, need); /* all busy: queue */
	if (i != SIZE_MAX) {
		t = p->items[i];
		tunnel_ref(t);
		atomic_fetch_add(&t->streams_used, 1);
	}
	mutex_unlock(&p->mu);
	return t;
}

/* Picks a tunnel for a request that needs nothing special; see
 * pool_pick_for(). */
struct tunnel *
pool_pick(struct pool *p, const struct tunnel *avoid)
{
	return pool_pick_for(p, avoid, POOL_NEED_NOTHING);
}

/* True when some joined tunnel fits need, busy or not: a request no
 * tunnel could ever carry (a WebSocket, and no backend takes one) is
 * told so, not told to come back later. */
bool
pool_has(struct pool *p, unsigned need)
{
	bool found = false;

	mutex_lock(&p->mu);
	for (size_t i = 0; i < p->count && !found; i++)
		found = pool_eligible_locked(p->items[i], NULL, false, need);
	mutex_unlock(&p->mu);
	return found;
}

size_t
pool_count(struct pool *p)
{
	size_t n;

	mutex_lock(&p->mu);
	n = p->joined;
	mutex_unlock(&p->mu);
	return n;
}

/* True when the count of joined tunnels is on the side of n that the caller waits for.
 * Caller must hold p->mu. */
static bool
pool_count_reached_locked(const struct pool *p, size_t n, bool at_least)
{
	return at_least ? p->joined >= n : p->joined <= n;
}

/* Waits until at least (at_least) or at most (!at_least) n tunnels have
 * joined: every join and remove broadcasts p->changed.
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

/* Waits until at least n tunnels have joined. Returns 0 or -ETIMEDOUT. */
int
pool_wait_count(struct pool *p, size_t n, int timeout_ms)
{
	return pool_wait(p, n, true, timeout_ms);
}

/* Waits until at most n tunnels have joined. Returns 0 or -ETIMEDOUT. */
int
pool_wait_at_most(struct pool *p, size_t n, int timeout_ms)
{
	return pool_wait(p, n, false, timeout_ms);
}

/* Copies the listed tunnels, joined or not, into a new array, each with a reference the
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
