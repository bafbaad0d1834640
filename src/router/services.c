/*
 * services.c -- the router's pools by service: one pool per named
 * service (tunnels that named it in their handshake) besides the default
 * pool (raw tunnels, and handshakes that named none), and the rule that
 * sends a user request to one of them by its Host.
 *
 * Owns:    every struct service and its pool; not the default pool,
 *          which is the router's own (r->pool).
 * Threads: tunnel threads look up or create their service after the
 *          handshake and report joining and leaving; user threads route
 *          each request; the router's caller lists the tokens file's
 *          services (start, SIGHUP) and takes snapshots to stop tunnels.
 * Locks:   s->mu guards the list and every service's listed flag and
 *          tunnel count, and the totals; s->changed is broadcast on every
 *          join and leave. Lock order: s->mu, then a pool's mu, and only
 *          in services_snapshot(); pool functions are otherwise called
 *          with s->mu released. Services are never freed before the
 *          router, so a pointer taken under s->mu stays valid without it.
 * Interface:
 *   - services_get(): the service called name, created on demand for a
 *     tunnel that names it (at most SERVICES_MAX, so a stream of made-up
 *     names cannot grow memory without bound);
 *   - services_route(): the pool of a known service (listed in the tokens
 *     file, or with a tunnel now), else NULL: the default pool's turn;
 *   - services_host_name(): a Host without port, lower-cased;
 *   - services_count() / services_wait(): tunnels of one service ("" is
 *     the default pool, NULL all of them), for tests and scripts.
 * Tutorial: "A backend introduces itself".
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "services.h"
#include "tokens.h"
#include "tunnel.h"

void
services_init(struct services *s, struct pool *fallback, int balance)
{
	memset(s, 0, sizeof *s);
	s->fallback = fallback;
	s->balance = balance;
	mutex_init(&s->mu);
	cond_init(&s->changed);
}

/* Frees every service. Every tunnel has left by now. */
void
services_destroy(struct services *s)
{
	for (size_t i = 0; i < s->count; i++) {
		pool_destroy(&s->items[i]->pool);
		free(s->items[i]);
	}
	free(s->items);
	cond_destroy(&s->changed);
	mutex_destroy(&s->mu);
}

/* The service called name, or NULL. Caller must hold s->mu. */
static struct service *
services_find_locked(struct services *s, const char *name)
{
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i]->name, name) == 0)
			return s->items[i];
	return NULL;
}

/* Adds a service called name (valid, not listed yet). Returns it, or
 * NULL past SERVICES_MAX or out of memory. Caller must hold s->mu. */
static struct service *
services_add_locked(struct services *s, const char *name)
{
	struct service *svc;

	if (s->count == SERVICES_MAX)
		return NULL;
	if (s->count == s->alloc) {
		size_t alloc = s->alloc ? s->alloc * 2 : 8;
		struct service **items = realloc(s->items, alloc * sizeof *items);
		if (items == NULL)
			return NULL;
		s->items = items;
		s->alloc = alloc;
	}
	svc = calloc(1, sizeof *svc);
	if (svc == NULL)
		return NULL;
	strncpy(svc->name, name, sizeof svc->name - 1);
	pool_init(&svc->pool, s->balance);
	metrics_service_init(&svc->metrics, svc->name);
	s->items[s->count++] = svc;
	return svc;
}

/* The service whose pool p is: p must be a named service's pool, as
 * services_route() returns (never the default pool). */
struct service *
services_pool_service(struct pool *p)
{
	return (struct service *)(void *)((char *)p - offsetof(struct service, pool));
}

/* The service called name (a valid service name), created when create
 * is set and it does not exist yet. Returns NULL when it does not exist
 * and cannot be created. */
struct service *
services_get(struct services *s, const char *name, bool create)
{
	struct service *svc;

	mutex_lock(&s->mu);
	svc = services_find_locked(s, name);
	if (svc == NULL && create)
		svc = services_add_locked(s, name);
	mutex_unlock(&s->mu);
	return svc;
}

/* Where a request for host name goes: the pool of a known service (one
 * the tokens file lists, or one with a live tunnel), or NULL when name
 * names no known service and the default pool takes it. */
struct pool *
services_route(struct services *s, const char *name)
{
	struct pool *p = NULL;
	struct service *svc;

	if (name[0] == '\0')
		return NULL;
	mutex_lock(&s->mu);
	svc = services_find_locked(s, name);
	if (svc != NULL && (svc->listed || svc->tunnels > 0))
		p = &svc->pool;
	mutex_unlock(&s->mu);
	return p;
}

/* Marks exactly the services t names as listed (t NULL: none), creating
 * those that do not exist yet. */
void
services_set_listed(struct services *s, const struct tokens *t)
{
	size_t n = t ? tokens_service_count(t) : 0;

	mutex_lock(&s->mu);
	for (size_t i = 0; i < s->count; i++)
		s->items[i]->listed = false;
	for (size_t i = 0; i < n; i++) {
		const char *name = tokens_service_at(t, i);
		struct service *svc = services_find_locked(s, name);
		if (svc == NULL)
			svc = services_add_locked(s, name);
		if (svc != NULL)
			svc->listed = true;
	}
	mutex_unlock(&s->mu);
}

/* A tunnel joined svc's pool (NULL: the default pool). */
void
services_joined(struct services *s, struct service *svc)
{
	mutex_lock(&s->mu);
	if (svc != NULL)
		svc->tunnels++;
	else
		s->fallback_tunnels++;
	s->total++;
	cond_broadcast(&s->changed);
	mutex_unlock(&s->mu);
}

/* A tunnel left svc's pool (NULL: the default pool). */
void
services_left(struct services *s, struct service *svc)
{
	mutex_lock(&s->mu);
	if (svc != NULL)
		svc->tunnels--;
	else
		s->fallback_tunnels--;
	s->total--;
	cond_broadcast(&s->changed);
	mutex_unlock(&s->mu);
}

/* Tunnels of service name, "" for the default pool, NULL for all.
 * Caller must hold s->mu. */
static size_t
services_count_locked(struct services *s, const char *name)
{
	struct service *svc;

	if (name == NULL)
		return s->total;
	if (name[0] == '\0')
		return s->fallback_tunnels;
	svc = services_find_locked(s, name);
	return svc ? svc->tunnels : 0;
}

size_t
services_count(struct services *s, const char *name)
{
	size_t n;

	mutex_lock(&s->mu);
	n = services_count_locked(s, name);
	mutex_unlock(&s->mu);
	return n;
}

/* Waits until the tunnels of name (as services_count() reads it) are at
 * least (at_least) or at most n. Returns 0 or -ETIMEDOUT. */
int
services_wait(struct services *s, const char *name, size_t n, bool at_least, int timeout_ms)
{
	struct timespec deadline = deadline_after_ms(timeout_ms);
	size_t have;
	int rc = 0;

	mutex_lock(&s->mu);
	for (;;) {
		have = services_count_locked(s, name);
		if ((at_least ? have >= n : have <= n) || rc != 0)
			break;
		rc = cond_timedwait(&s->changed, &s->mu, &deadline);
	}
	mutex_unlock(&s->mu);
	return (at_least ? have >= n : have <= n) ? 0 : -ETIMEDOUT;
}

/* Every tunnel in every pool, the default one included, each with a
 * reference the caller drops before freeing the array (as
 * pool_snapshot()). Returns the count; *out is NULL when it is 0. */
size_t
services_snapshot(struct services *s, struct tunnel ***out)
{
	struct tunnel **all = NULL, **some;
	size_t n = pool_snapshot(s->fallback, &all);

	mutex_lock(&s->mu);
	for (size_t i = 0; i < s->count; i++) {
		size_t k = pool_snapshot(&s->items[i]->pool, &some);
		struct tunnel **bigger = k ? realloc(all, (n + k) * sizeof *bigger) : all;
		if (bigger == NULL) {
			for (size_t j = 0; j < k; j++)
				tunnel_unref(some[j]);
			k = 0;
		} else {
			all = bigger;
			memcpy(all + n, some, k * sizeof *some);
		}
		free(some);
		n += k;
	}
	mutex_unlock(&s->mu);
	*out = all;
	return n;
}

/* Writes the name a Host value asks for into out: without its port,
 * lower-cased; "" when it cannot be a service name (an IPv6 literal,
 * longer than HANDSHAKE_SERVICE_MAX bytes, or NULL). */
void
services_host_name(const char *host, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	if (host == NULL || host[0] == '[')
		return;
	while (host[len] != '\0' && host[len] != ':')
		len++;
	if (len == 0 || len > HANDSHAKE_SERVICE_MAX || len >= cap)
		return;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)host[i]);
	out[len] = '\0';
}
