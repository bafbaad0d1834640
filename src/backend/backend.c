/*
 * backend.c -- the backend's life cycle, the C counterpart of the
 * original's CreateTunnelAndServe(addr, handler): dial the router, serve
 * HTTP/2 on the connection, and (an option the original lacks) redial
 * with backoff when the tunnel ends, holding one or more tunnels at once,
 * to one router or to several (each its own set of tunnels).
 *
 * Owns:    the slot threads ("ptth-backend-N", one per tunnel held), the
 *          worker pool shared by all tunnels, and a copy of the options
 *          (with the service name and token, if any) and of the router
 *          addresses.
 * Threads: the caller's thread runs new/start/wait/stop/free. Each slot
 *          thread dials, serves its tunnel (backend_conn.c), and redials
 *          when reconnect is on.
 * Locks:   b->mu guards stopping, conns[], live, result, slots_ended and
 *          waitable; it is taken alone, never while calling into a session
 *          or another lock.
 *          b->stop mirrors stopping as an atomic for the tunnel loops.
 * Interface:
 *   - ptth_backend_start(): start the slots, opts.tunnels for each
 *     router (slot i dials router i / opts.tunnels, and redials it alone);
 *     with reconnect off, the first dial must succeed (its error is
 *     returned);
 *   - ptth_backend_wait(): until every slot has ended;
 *   - ptth_backend_stop(): graceful (GOAWAY, open streams finish within
 *     drain_timeout_ms), then joins slots and handler threads;
 *   - with a service or a token, every dial is followed by the PTTH
 *     handshake (backend_dial(), backend_handshake.c); a router that
 *     refuses the token (401, 403) will not change its mind on the next
 *     try, so the redial waits the longest backoff at once.
 * Tutorial: "Tunnels come and go".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend_handshake.h"
#include "handshake.h"
#include "lock.h"
#include "log.h"
#include "net.h"

/* What one slot thread needs: the backend and its slot number. The
 * slot's index is its position in b->slots. */
struct slot_arg {
	struct ptth_backend *b;
	int slot;
};

void
ptth_backend_options_init(struct ptth_backend_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->router_addr = "localhost:8887";
	opts->tunnels = 1;
	opts->reconnect = 0;
	opts->backoff_min_ms = 100;
	opts->backoff_max_ms = 10 * 1000;
	opts->ping_interval_ms = 10 * 1000;
	opts->ping_timeout_ms = 5 * 1000;
	opts->drain_timeout_ms = 10 * 1000;
}

/* Copies opts, replacing zeros by defaults. The addresses are copied
 * by backend_copy_routers(). */
static void
backend_conf_set(struct ptth_backend *b, const struct ptth_backend_options *opts)
{
	struct ptth_backend_options def;

	ptth_backend_options_init(&def);
	b->opts = *opts;
#define PICK(field) (opts->field > 0 ? opts->field : def.field)
	b->opts.tunnels = PICK(tunnels) > BACKEND_MAX_TUNNELS ? BACKEND_MAX_TUNNELS : PICK(tunnels);
	b->opts.backoff_min_ms = PICK(backoff_min_ms);
	b->opts.backoff_max_ms = PICK(backoff_max_ms);
	b->opts.ping_interval_ms = opts->ping_interval_ms < 0 ? -1 : PICK(ping_interval_ms);
	b->opts.ping_timeout_ms = PICK(ping_timeout_ms);
	b->opts.drain_timeout_ms = PICK(drain_timeout_ms);
#undef PICK
}

/* Copies and checks the handshake's service name and token. Returns 0,
 * -EINVAL (a malformed one) or -ENOMEM; on failure nothing is kept. */
static int
backend_copy_greeting(struct ptth_backend *b, const struct ptth_backend_options *opts)
{
	const char *service = opts->service ? opts->service : "";
	const char *token = opts->token ? opts->token : "";

	if ((service[0] && !handshake_service_valid(service, strlen(service))) ||
	    (token[0] && !handshake_token_valid(token, strlen(token))))
		return -EINVAL;
	b->handshake = service[0] || token[0];
	b->service = service[0] ? strdup(service) : NULL;
	b->token = token[0] ? strdup(token) : NULL;
	if ((service[0] && b->service == NULL) || (token[0] && b->token == NULL)) {
		free(b->service);
		free(b->token);
		b->service = b->token = NULL;
		return -ENOMEM;
	}
	b->opts.service = b->service;
	b->opts.token = b->token;
	return 0;
}

/* Copies the router addresses: router_addrs when router_count is set,
 * else the single router_addr (which may be NULL: a backend that is only
 * handed sockets, see backend_start_fd()). Returns 0 or -ENOMEM. */
static int
backend_copy_routers(struct ptth_backend *b, const struct ptth_backend_options *opts)
{
	bool many = opts->router_addrs != NULL && opts->router_count > 0;
	int n = many ? opts->router_count : 1;

	if (n > BACKEND_MAX_ROUTERS)
		n = BACKEND_MAX_ROUTERS;
	b->router_addrs = calloc((size_t)n, sizeof *b->router_addrs);
	if (b->router_addrs == NULL)
		return -ENOMEM;
	b->router_count = n;
	for (int i = 0; i < n; i++) {
		const char *addr = many ? opts->router_addrs[i] : opts->router_addr;
		if (addr != NULL && (b->router_addrs[i] = strdup(addr)) == NULL)
			return -ENOMEM;
	}
	b->opts.router_addr = b->router_addrs[0];
	b->opts.router_addrs = NULL; /* the caller's array is not kept */
	b->opts.router_count = n;
	return 0;
}

/* Frees what ptth_backend_new() allocated. */
static void
backend_free_arrays(struct ptth_backend *b)
{
	free(b->service);
	free(b->token);
	for (int i = 0; b->router_addrs != NULL && i < b->router_count; i++)
		free(b->router_addrs[i]);
	free(b->router_addrs);
	free(b->conns);
	free(b->slots);
}

struct ptth_backend *
ptth_backend_new(const struct ptth_backend_options *opts)
{
	struct ptth_backend *b;

	if (opts->handler == NULL)
		return NULL;
	b = calloc(1, sizeof *b);
	if (b == NULL)
		return NULL;
	backend_conf_set(b, opts);
	if (backend_copy_routers(b, opts) < 0 || backend_copy_greeting(b, opts) < 0)
		goto out_free;
	b->slot_total = b->opts.tunnels * b->router_count;
	b->conns = calloc((size_t)b->slot_total, sizeof *b->conns);
	b->slots = calloc((size_t)b->slot_total, sizeof *b->slots);
	if (b->conns == NULL || b->slots == NULL)
		goto out_free;
	b->stop_fd = net_wake_fd_new();
	if (b->stop_fd < 0)
		goto out_free;
	b->first_fd = -1;
	atomic_init(&b->stop, false);
	mutex_init(&b->mu);
	cond_init(&b->changed);
	return b;
out_free:
	backend_free_arrays(b);
	free(b);
	return NULL;
}

/* The address slot dials. */
static const char *
backend_slot_router(const struct ptth_backend *b, int slot)
{
	return b->router_addrs[slot / b->opts.tunnels];
}

/* Sleeps ms, or less if ptth_backend_stop() is called meanwhile.
 * Returns false when stopping. */
static bool
backend_sleep(struct ptth_backend *b, long ms)
{
	struct timespec deadline = deadline_after_ms(ms);
	bool go_on;

	mutex_lock(&b->mu);
	while (!b->stopping && cond_timedwait(&b->changed, &b->mu, &deadline) == 0)
		;
	go_on = !b->stopping;
	mutex_unlock(&b->mu);
	return go_on;
}

/* The next backoff: doubled, capped, and jittered to between half and all
 * of it, so that many backends restarted together do not redial in step. */
static long
backend_backoff_next(struct ptth_backend *b, long *backoff, unsigned int *seed)
{
	long wait = *backoff / 2 + (long)(rand_r(seed) % (unsigned int)(*backoff / 2 + 1));

	*backoff *= 2;
	if (*backoff > b->opts.backoff_max_ms)
		*backoff = b->opts.backoff_max_ms;
	return wait;
}

/* Lists conn as the slot's live tunnel (or unlists it, conn NULL). */
static void
backend_set_conn(struct ptth_backend *b, int slot, struct backend_conn *conn)
{
	mutex_lock(&b->mu);
	b->live += conn ? 1 : -1;
	b->conns[slot] = conn;
	cond_broadcast(&b->changed);
	mutex_unlock(&b->mu);
}

/* Records the first error that ended a slot, for ptth_backend_wait(). */
static void
backend_set_result(struct ptth_backend *b, int rc)
{
	mutex_lock(&b->mu);
	if (b->result == 0)
		b->result = rc;
	mutex_unlock(&b->mu);
}

/* Serves one tunnel on fd and logs how it ended. Returns its result. */
static int
backend_serve_one(struct ptth_backend *b, int slot, int fd)
{
	struct backend_conn *conn = backend_conn_new(b, fd, slot);
	const char *addr = backend_slot_router(b, slot);
	const char *reason;
	int rc;

	if (conn == NULL)
		return -ENOMEM;
	backend_set_conn(b, slot, conn);
	log_info("Tunnel %d up to %s", slot + 1, addr ? addr : "router");
	rc = backend_conn_serve(conn, &reason);
	log_info("Tunnel %d to %s ended: %s", slot + 1, addr ? addr : "router", reason);
	backend_set_conn(b, slot, NULL);
	backend_conn_unref(conn);
	return rc;
}

/* Greets the router on a freshly dialled fd when the options ask for
 * the handshake (nothing to do for a raw tunnel). On failure fd is
 * closed and the reason logged once. Returns fd or a negative code. */
static int
backend_greet(struct ptth_backend *b, int fd, const char *addr)
{
	char msg[512];
	int rc;

	if (fd < 0 || !b->handshake)
		return fd;
	rc = backend_handshake(fd, addr, b->service, b->token,
	                       BACKEND_HANDSHAKE_TIMEOUT_MS, b->stop_fd, msg, sizeof msg);
	if (rc == 0)
		return fd;
	close(fd);
	if (rc != -ESHUTDOWN)
		log_info("Handshake with %s failed: %s", addr, msg);
	return rc;
}

/* Dials the router at addr and greets it. Returns a tunnel-ready fd or
 * a negative code. */
static int
backend_dial(struct ptth_backend *b, const char *addr)
{
	if (addr == NULL)
		return PTTH_EADDR;
	return backend_greet(b, net_dial(addr), addr);
}

/* True for the codes a redial cannot fix: the router refused the token. */
static bool
backend_refused_for_good(int rc)
{
	return rc == PTTH_EAUTH || rc == PTTH_EFORBIDDEN;
}

/* A slot thread: dial, serve, and with reconnect on, dial again after
 * a backoff that starts at backoff_min_ms and doubles to backoff_max_ms
 * (straight to backoff_max_ms after a refused token). */
static void *
backend_slot_thread_main(void *arg)
{
	struct slot_arg sa = *(struct slot_arg *)arg;
	struct ptth_backend *b = sa.b;
	const char *addr = backend_slot_router(b, sa.slot);
	unsigned int seed = (unsigned int)(time(NULL) ^ (sa.slot * 7919));
	long backoff = b->opts.backoff_min_ms;
	char name[32];
	bool fresh;
	int fd, rc;

	free(arg);
	snprintf(name, sizeof name, "ptth-backend-%d", (sa.slot + 1) % 10000);
	pthread_setname_np(pthread_self(), name);
	fd = (sa.slot == 0) ? b->first_fd : -1;
	fresh = fd >= 0;              /* handed over by start: use it first */
	if (fresh && !b->first_fd_greeted)
		fd = backend_greet(b, fd, addr);
	while (!atomic_load(&b->stop)) {
		if (!fresh)
			fd = backend_dial(b, addr);
		fresh = false;
		if (fd >= 0) {
			rc = backend_serve_one(b, sa.slot, fd);
			fd = -1;
			backoff = b->opts.backoff_min_ms;
			if (!b->opts.reconnect) {
				backend_set_result(b, rc);
				break;
			}
			continue;
		}
		if (fd == -ESHUTDOWN)
			break;                    /* stopped in the middle of a handshake */
		if (!b->opts.reconnect) {
			backend_set_result(b, fd);
			break;
		}
		if (backend_refused_for_good(fd))
			backoff = b->opts.backoff_max_ms;
		long wait = backend_backoff_next(b, &backoff, &seed);
		log_info("Dial %s failed: %s; retrying in %ld ms", addr, ptth_strerror(fd), wait);
		fd = -1;
		if (!backend_sleep(b, wait))
			break;
	}
	if (fd >= 0)
		close(fd);
	mutex_lock(&b->mu);
	b->slots_ended++;
	cond_broadcast(&b->changed);
	mutex_unlock(&b->mu);
	return NULL;
}

/* Starts the slot threads. Returns 0 or a negative code. */
static int
backend_start_slots(struct ptth_backend *b)
{
	int rc = workers_init(&b->workers, handler_call_run, BACKEND_MAX_WORKERS,
	                      4 * BACKEND_MAX_STREAMS);

	if (rc < 0)
		return rc;
	for (b->slot_count = 0; b->slot_count < b->slot_total; b->slot_count++) {
		struct slot_arg *sa = malloc(sizeof *sa);
		if (sa == NULL) {
			rc = -ENOMEM;
			break;
		}
		sa->b = b;
		sa->slot = b->slot_count;
		rc = -pthread_create(&b->slots[b->slot_count], NULL, backend_slot_thread_main, sa);
		if (rc < 0) {
			free(sa);
			break;
		}
	}
	b->started = true;
	mutex_lock(&b->mu);
	b->waitable = true;
	mutex_unlock(&b->mu);
	if (rc < 0)
		ptth_backend_stop(b);
	return rc;
}

/* Starts serving with fd, a connection to the router made by the caller
 * (tests pass one end of a socketpair), as slot 0. Takes ownership of fd.
 * Returns 0 or a negative code. */
int
backend_start_fd(struct ptth_backend *b, int fd)
{
	if (b->started) {
		close(fd);
		return PTTH_ESTATE;
	}
	b->first_fd = fd;
	b->first_fd_greeted = false;
	return backend_start_slots(b);
}

/* Without reconnect, the first tunnel is dialled here so that a router
 * that is not there is an error for the caller, as in the original. */
int
ptth_backend_start(struct ptth_backend *b)
{
	int fd = -1;

	if (b->started)
		return PTTH_ESTATE;
	for (int i = 0; i < b->router_count; i++)
		if (b->router_addrs[i] == NULL)
			return PTTH_EADDR;
	if (!b->opts.reconnect) {
		fd = backend_dial(b, b->router_addrs[0]);
		if (fd < 0)
			return fd;
	}
	b->first_fd = fd;
	b->first_fd_greeted = true;
	return backend_start_slots(b);
}

int
ptth_backend_tunnel_count(struct ptth_backend *b)
{
	int live;

	mutex_lock(&b->mu);
	live = b->live;
	mutex_unlock(&b->mu);
	return live;
}

/* Any thread may wait, several at once: this only watches the count of
 * slots that ended. Joining the threads is left to ptth_backend_stop().
 * It reads waitable under b->mu, not started, which belongs to the thread
 * that starts and stops: a waiter may still be on its way in while that
 * thread stops the backend, and then gets the result all the same. */
int
ptth_backend_wait(struct ptth_backend *b)
{
	int rc;

	mutex_lock(&b->mu);
	if (!b->waitable) {
		mutex_unlock(&b->mu);
		return PTTH_ESTATE;
	}
	while (b->slots_ended < b->slot_count)
		cond_wait(&b->changed, &b->mu);
	rc = b->result;
	mutex_unlock(&b->mu);
	return rc;
}

void
ptth_backend_stop(struct ptth_backend *b)
{
	if (!b->started)
		return;
	struct backend_conn **live = calloc((size_t)b->slot_total, sizeof *live);
	int n = 0;

	net_wake(b->stop_fd); /* a slot waiting for a handshake answer gives up */
	mutex_lock(&b->mu);
	b->stopping = true;
	atomic_store(&b->stop, true);
	for (int i = 0; live != NULL && i < b->slot_total; i++) {
		if (b->conns[i] != NULL) {
			backend_conn_ref(b->conns[i]);
			live[n++] = b->conns[i];
		}
	}
	cond_broadcast(&b->changed);
	mutex_unlock(&b->mu);
	/* Woken outside b->mu, which is never held while taking another lock.
	 * Out of memory for the list, each tunnel still sees b->stop at its
	 * next wake-up (PING or traffic), only later. */
	for (int i = 0; i < n; i++) {
		inbox_wake(&live[i]->inbox);
		backend_conn_unref(live[i]);
	}
	free(live);
	for (int i = 0; i < b->slot_count; i++)
		pthread_join(b->slots[i], NULL);
	workers_stop(&b->workers);
	b->started = false;
}

void
ptth_backend_free(struct ptth_backend *b)
{
	if (b == NULL)
		return;
	ptth_backend_stop(b);
	cond_destroy(&b->changed);
	mutex_destroy(&b->mu);
	close(b->stop_fd);
	backend_free_arrays(b);
	free(b);
}

int
ptth_backend_serve(const char *router_addr, ptth_handler_fn handler, void *arg)
{
	struct ptth_backend_options opts;
	struct ptth_backend *b;
	int rc;

	ptth_backend_options_init(&opts);
	opts.router_addr = router_addr;
	opts.handler = handler;
	opts.handler_arg = arg;
	b = ptth_backend_new(&opts);
	if (b == NULL)
		return -ENOMEM;
	rc = ptth_backend_start(b);
	if (rc == 0)
		rc = ptth_backend_wait(b);
	ptth_backend_free(b);
	return rc;
}
