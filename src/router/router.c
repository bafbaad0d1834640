/*
 * router.c -- the router: two listening sockets, an accept thread for
 * each, and the bookkeeping that lets ptth_router_stop() end every thread.
 *
 * Owns:    both listening sockets, both accept threads, the default pool
 *          and the services' pools, the tokens file's contents, the stop
 *          eventfd, and the list of live user connections (not the
 *          connections themselves, which free themselves).
 * Threads: the caller's thread runs new/start/stop/free. The accept
 *          threads ("ptth-accept-http", "ptth-accept-tun") start one
 *          thread per accepted connection. Connection and tunnel threads
 *          are detached and counted in r->threads; stop waits for zero.
 * Locks:   r->mu guards threads, stopping, conns, conn_count,
 *          next_tunnel_id and the tokens pointer. Lock order: r->mu is never held while taking
 *          another lock, except that user_conn_shutdown() (a bare
 *          shutdown(2)) runs under it.
 * Interface:
 *   - ptth_router_new() + ptth_router_start(); ptth_router_ports() for port 0;
 *   - ptth_router_stop(): shut the listeners, join the accept threads,
 *     stop every tunnel, shut every user socket, wait for the count to
 *     drop to zero;
 *   - router_thread_begin/end() bracket every detached thread;
 *   - ptth_router_reload_tokens() swaps the tokens file's contents in
 *     (SIGHUP in bin/router); router_tokens_get() lends a tunnel thread
 *     the current ones for its handshake.
 * Tutorial: "Two ports".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"
#include "net.h"
#include "router.h"
#include "tokens.h"
#include "tunnel.h"
#include "user_conn.h"

void
ptth_router_options_init(struct ptth_router_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->http_addr = "localhost:8888";
	opts->tunnel_addr = "localhost:8887";
	opts->max_conns = 1024;
	opts->queue_size = 256;
	opts->max_uri = 8 * 1024;
	opts->max_header_bytes = 64 * 1024;
	opts->max_header_fields = 100;
	opts->max_body = 0;
	opts->header_timeout_ms = 10 * 1000;
	opts->idle_timeout_ms = 60 * 1000;
	opts->body_timeout_ms = 30 * 1000;
	opts->send_timeout_ms = 60 * 1000;
	opts->backend_timeout_ms = 60 * 1000;
	opts->websocket_idle_timeout_ms = 300 * 1000;
	opts->no_forwarded = 0;
	opts->ping_interval_ms = 10 * 1000;
	opts->ping_timeout_ms = 5 * 1000;
	opts->drain_timeout_ms = 10 * 1000;
	opts->balance = PTTH_BALANCE_RANDOM;
	opts->tunnel_tokens_file = NULL;
	opts->allow_raw_tunnels = 0;
	opts->raw_wait_ms = 200;
}

/* Copies opts into r->conf, replacing zeros with defaults. */
static void
router_conf_set(struct ptth_router *r, const struct ptth_router_options *opts)
{
	struct ptth_router_options def;
	struct router_conf *c = &r->conf;

	ptth_router_options_init(&def);
#define PICK(field) (opts->field > 0 ? opts->field : def.field)
	c->max_conns = PICK(max_conns);
	c->queue_size = PICK(queue_size);
	c->limits.max_uri = PICK(max_uri);
	c->limits.max_header_bytes = PICK(max_header_bytes);
	c->limits.max_header_fields = (size_t)PICK(max_header_fields);
	c->max_body = opts->max_body > 0 ? opts->max_body : 0;
	c->header_timeout_ms = PICK(header_timeout_ms);
	c->idle_timeout_ms = PICK(idle_timeout_ms);
	c->body_timeout_ms = PICK(body_timeout_ms);
	c->send_timeout_ms = PICK(send_timeout_ms);
	c->backend_timeout_ms = PICK(backend_timeout_ms);
	c->websocket_idle_timeout_ms = PICK(websocket_idle_timeout_ms);
	c->forwarded = !opts->no_forwarded;
	c->ping_interval_ms = opts->ping_interval_ms < 0 ? -1 : PICK(ping_interval_ms);
	c->ping_timeout_ms = PICK(ping_timeout_ms);
	c->drain_timeout_ms = PICK(drain_timeout_ms);
	c->balance = opts->balance;
	c->trace = opts->trace;
	c->allow_raw = opts->allow_raw_tunnels != 0;
	c->raw_wait_ms = PICK(raw_wait_ms);
#undef PICK
}

/* strdup(), keeping NULL. Returns false when out of memory. */
static bool
router_copy(char **dst, const char *src)
{
	*dst = src != NULL ? strdup(src) : NULL;
	return src == NULL || *dst != NULL;
}

struct ptth_router *
ptth_router_new(const struct ptth_router_options *opts)
{
	struct ptth_router *r;

	if (opts->max_header_bytes > PTTH_MAX_HEADER_BYTES_CAP) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->stop_fd = net_wake_fd_new();
	if (!router_copy(&r->http_addr, opts->http_addr ? opts->http_addr : "localhost:8888") ||
	    !router_copy(&r->tunnel_addr,
	                 opts->tunnel_addr ? opts->tunnel_addr : "localhost:8887") ||
	    !router_copy(&r->tokens_path, opts->tunnel_tokens_file) ||
	    !router_copy(&r->admin_addr, opts->admin_addr) ||
	    !router_copy(&r->access_log_path, opts->access_log) || r->stop_fd < 0) {
		if (r->stop_fd >= 0)
			close(r->stop_fd);
		free(r->tokens_path);
		free(r->http_addr);
		free(r->tunnel_addr);
		free(r->admin_addr);
		free(r->access_log_path);
		free(r);
		return NULL;
	}
	router_conf_set(r, opts);
	atomic_init(&r->draining, false);
	r->http_fd = r->tunnel_fd = -1;
	pool_init(&r->pool, r->conf.balance);
	services_init(&r->services, &r->pool, r->conf.balance);
	metrics_init(&r->metrics);
	access_log_init(&r->access_log);
	admin_init(&r->admin);
	mutex_init(&r->mu);
	cond_init(&r->threads_done);
	return r;
}

/* Counts a new detached thread. Returns false once the router is
 * stopping: the caller must not start the thread. */
bool
router_is_stopping(struct ptth_router *r)
{
	bool stopping;

	mutex_lock(&r->mu);
	stopping = r->stopping;
	mutex_unlock(&r->mu);
	return stopping;
}

bool
router_thread_begin(struct ptth_router *r)
{
	bool ok;

	mutex_lock(&r->mu);
	ok = !r->stopping;
	if (ok)
		r->threads++;
	mutex_unlock(&r->mu);
	return ok;
}

/* The last thing a counted thread does before it returns. It must not
 * touch r afterwards: stop may free the router as soon as this wakes it. */
void
router_thread_end(struct ptth_router *r)
{
	mutex_lock(&r->mu);
	r->threads--;
	cond_broadcast(&r->threads_done); /* stop waits for 0, fuzz targets for others */
	mutex_unlock(&r->mu);
}

/* Lists a user connection and counts its thread-to-be.
 * Returns 0, -ESHUTDOWN when stopping, or -EMFILE past max_conns. */
int
router_conn_add(struct ptth_router *r, struct user_conn *c)
{
	int rc = 0;

	mutex_lock(&r->mu);
	if (r->stopping) {
		rc = -ESHUTDOWN;
	} else if (r->conn_count >= r->conf.max_conns) {
		rc = -EMFILE;
	} else {
		user_conn_link(&r->conns, c);
		r->conn_count++;
		r->threads++;
		metrics_count_connection(&r->metrics);
	}
	mutex_unlock(&r->mu);
	return rc;
}

void
router_conn_remove(struct ptth_router *r, struct user_conn *c)
{
	mutex_lock(&r->mu);
	user_conn_unlink(&r->conns, c);
	r->conn_count--;
	cond_broadcast(&r->threads_done); /* ptth_router_shutdown counts these */
	mutex_unlock(&r->mu);
}

/* A user thread between requests asks whether to wait for another one.
 * Marks c idle so that ptth_router_shutdown() can wake it, and returns
 * false once the router is draining: close instead. */
/* tutorial: idle-flag */
bool
router_conn_idle(struct ptth_router *r, struct user_conn *c, bool idle)
{
	/* No lock on this path, taken twice per request by every user thread:
	 * the flags are sequentially consistent atomics. The user thread stores
	 * idle, then loads draining; ptth_router_shutdown() stores draining,
	 * then loads idle. Of two such pairs at least one sees the other's
	 * store, so an idle connection either closes by itself or is woken. */
	user_conn_set_idle(c, idle);
	return !atomic_load(&r->draining);
}
/* tutorial: end */

/* The current tokens, with a reference the caller drops (tokens_unref),
 * or NULL when the router has no tokens file. */
struct tokens *
router_tokens_get(struct ptth_router *r)
{
	struct tokens *t;

	mutex_lock(&r->mu);
	t = r->tokens;
	if (t != NULL)
		tokens_ref(t);
	mutex_unlock(&r->mu);
	return t;
}

/* True when tunnels must show a token: a tokens file was given. */
bool
router_tokens_required(struct ptth_router *r)
{
	return r->tokens_path != NULL;
}

/* Reads the tokens file and puts it in force: handshakes from now on are
 * checked against it, and the services it names become known (their
 * users get "no tunnel for service" rather than the default pool).
 * Returns 0 or a negative code; on error the old tokens stay. */
int
ptth_router_reload_tokens(struct ptth_router *r)
{
	struct tokens *t, *old;
	char err[512];
	int rc;

	if (r->tokens_path == NULL)
		return PTTH_ESTATE;
	rc = tokens_load(r->tokens_path, &t, err, sizeof err);
	if (rc < 0) {
		log_info("Tunnel tokens not loaded: %s", err);
		return rc;
	}
	mutex_lock(&r->mu);
	old = r->tokens;
	r->tokens = t;
	mutex_unlock(&r->mu);
	tokens_unref(old);
	services_set_listed(&r->services, t);
	log_info("Tunnel tokens loaded from %s: %zu tokens, %zu services named", r->tokens_path,
	         tokens_count(t), tokens_service_count(t));
	return 0;
}

/* The accept loop for one listening socket: start is user_conn_start or
 * tunnel_start. It ends when ptth_router_stop() shuts the socket down. */
/* tutorial: accept-loop */
static void
router_accept_loop(struct ptth_router *r, int lfd, int (*start)(struct ptth_router *, int),
                   const char *what)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_info("accept %s: %s", what, strerror(errno));
				usleep(10000); /* out of fds: let connections end */
				continue;
			}
			return; /* EINVAL: shut down by ptth_router_stop() */
		}
		int rc = start(r, fd);
		/* -ECONNREFUSED: user_conn_start() answered 503 and logged it. */
		if (rc < 0 && rc != -ESHUTDOWN && rc != -ECONNREFUSED)
			log_info("cannot serve %s connection: %s", what, ptth_strerror(rc));
	}
}
/* tutorial: end */

static void *
router_http_accept_thread_main(void *arg)
{
	struct ptth_router *r = arg;

	pthread_setname_np(pthread_self(), "ptth-accept-http");
	router_accept_loop(r, r->http_fd, user_conn_start, "HTTP");
	return NULL;
}

static void *
router_tunnel_accept_thread_main(void *arg)
{
	struct ptth_router *r = arg;

	pthread_setname_np(pthread_self(), "ptth-accept-tun");
	router_accept_loop(r, r->tunnel_fd, tunnel_start, "tunnel");
	return NULL;
}

/* Opens the access log and starts the admin port, when asked for.
 * Returns 0 or a negative code; on failure neither is left open. */
static int
router_start_extras(struct ptth_router *r)
{
	int rc;

	if (r->access_log_path != NULL) {
		rc = access_log_open(&r->access_log, r->access_log_path);
		if (rc < 0) {
			log_info("cannot open access log %s: %s", r->access_log_path,
			         ptth_strerror(rc));
			return rc;
		}
	}
	if (r->admin_addr != NULL) {
		rc = admin_start(r, r->admin_addr);
		if (rc < 0) {
			access_log_close(&r->access_log);
			return rc;
		}
	}
	return 0;
}

/* Binds both addresses (and the admin port), opens the access log, and
 * starts the accept threads.
 * Returns 0 or a negative code; on failure nothing is left open. */
int
ptth_router_start(struct ptth_router *r)
{
	int rc;

	if (r->started)
		return PTTH_ESTATE;
	if (r->tokens_path != NULL && r->tokens == NULL) {
		rc = ptth_router_reload_tokens(r);
		if (rc < 0)
			return rc;
	}
	r->tunnel_fd = net_listen(r->tunnel_addr, &r->tunnel_port);
	if (r->tunnel_fd < 0)
		return r->tunnel_fd;
	r->http_fd = net_listen(r->http_addr, &r->http_port);
	if (r->http_fd < 0) {
		rc = r->http_fd;
		goto out_close_tunnel;
	}
	rc = router_start_extras(r);
	if (rc < 0)
		goto out_close_http;
	rc = -pthread_create(&r->tunnel_accept_thread, NULL,
	                     router_tunnel_accept_thread_main, r);
	if (rc < 0)
		goto out_stop_extras;
	rc = -pthread_create(&r->http_accept_thread, NULL, router_http_accept_thread_main, r);
	if (rc < 0) {
		shutdown(r->tunnel_fd, SHUT_RDWR);
		pthread_join(r->tunnel_accept_thread, NULL);
		goto out_stop_extras;
	}
	r->started = true;
	return 0;
out_stop_extras:
	admin_stop(r);
	access_log_close(&r->access_log);
out_close_http:
	close(r->http_fd);
	r->http_fd = -1;
out_close_tunnel:
	close(r->tunnel_fd);
	r->tunnel_fd = -1;
	return rc;
}

int
ptth_router_admin_port(const struct ptth_router *r)
{
	return r->admin.started ? r->admin.port : PTTH_ESTATE;
}

int
ptth_router_reopen_access_log(struct ptth_router *r)
{
	return access_log_reopen(&r->access_log);
}

int
ptth_router_ports(const struct ptth_router *r, int *http_port, int *tunnel_port)
{
	if (!r->started)
		return PTTH_ESTATE;
	if (http_port != NULL)
		*http_port = r->http_port;
	if (tunnel_port != NULL)
		*tunnel_port = r->tunnel_port;
	return 0;
}

/* Every count below is kept by the services module, which hears of each
 * tunnel joining or leaving a pool, the default pool included. */
int
ptth_router_tunnel_count(struct ptth_router *r)
{
	return (int)services_count(&r->services, NULL);
}

int
ptth_router_wait_tunnels(struct ptth_router *r, int n, int timeout_ms)
{
	return services_wait(&r->services, NULL, n < 0 ? 0 : (size_t)n, true, timeout_ms);
}

int
ptth_router_wait_tunnels_at_most(struct ptth_router *r, int n, int timeout_ms)
{
	return services_wait(&r->services, NULL, n < 0 ? 0 : (size_t)n, false, timeout_ms);
}

int
ptth_router_service_tunnel_count(struct ptth_router *r, const char *service)
{
	return (int)services_count(&r->services, service ? service : "");
}

int
ptth_router_wait_service_tunnels(struct ptth_router *r, const char *service, int n,
                                 int timeout_ms)
{
	return services_wait(&r->services, service ? service : "", n < 0 ? 0 : (size_t)n, true,
	                     timeout_ms);
}

/* Stops every tunnel listed in any pool. */
static void
router_stop_tunnels(struct ptth_router *r)
{
	struct tunnel **ts;
	size_t n = services_snapshot(&r->services, &ts);

	for (size_t i = 0; i < n; i++) {
		tunnel_stop(ts[i]);
		tunnel_unref(ts[i]);
	}
	free(ts);
}

/* Closes both listeners and joins the accept threads (only after start). */
static void
router_stop_accepting(struct ptth_router *r)
{
	if (!r->started)
		return;
	/* accept() fails with EINVAL once its socket is shut down. */
	shutdown(r->http_fd, SHUT_RDWR);
	shutdown(r->tunnel_fd, SHUT_RDWR);
	pthread_join(r->http_accept_thread, NULL);
	pthread_join(r->tunnel_accept_thread, NULL);
	close(r->http_fd);
	close(r->tunnel_fd);
	r->http_fd = r->tunnel_fd = -1;
	r->started = false;
}

void
ptth_router_stop(struct ptth_router *r)
{
	/* 1. No new threads from now on (router_thread_begin refuses). */
	mutex_lock(&r->mu);
	r->stopping = true;
	mutex_unlock(&r->mu);
	net_wake(r->stop_fd); /* tunnels still in their handshake give up */
	router_stop_accepting(r);
	admin_stop(r);
	/* 2. End every tunnel (their requests fail with 502) and unblock
	 *    every user thread, then wait until each counted thread is gone.
	 *    A tunnel that joins the pool after the snapshot sees stopping
	 *    and ends by itself (see tunnel_thread_main). */
	router_stop_tunnels(r);
	mutex_lock(&r->mu);
	for (struct user_conn *c = r->conns; c != NULL; c = user_conn_next(c))
		user_conn_shutdown(c);
	while (r->threads > 0)
		cond_wait(&r->threads_done, &r->mu);
	mutex_unlock(&r->mu);
}

/* Graceful stop (see ptth.h). Idle keep-alive connections are woken and
 * close; busy ones finish their request, then close; after
 * drain_timeout_ms whatever is left is stopped the hard way. */
void
ptth_router_shutdown(struct ptth_router *r)
{
	struct timespec deadline = deadline_after_ms(r->conf.drain_timeout_ms);
	int rc = 0;

	atomic_store(&r->draining, true);
	router_stop_accepting(r);
	mutex_lock(&r->mu);
	for (struct user_conn *c = r->conns; c != NULL; c = user_conn_next(c))
		if (user_conn_is_idle(c))
			user_conn_shutdown(c);
	while (r->conn_count > 0 && rc == 0)
		rc = cond_timedwait(&r->threads_done, &r->mu, &deadline);
	if (r->conn_count > 0)
		log_info("drain timeout: %d user connections still busy", r->conn_count);
	mutex_unlock(&r->mu);
	ptth_router_stop(r);
}

void
ptth_router_free(struct ptth_router *r)
{
	if (r == NULL)
		return;
	ptth_router_stop(r);
	services_destroy(&r->services);
	pool_destroy(&r->pool);
	tokens_unref(r->tokens);
	close(r->stop_fd);
	free(r->tokens_path);
	access_log_close(&r->access_log);
	admin_destroy(&r->admin);
	cond_destroy(&r->threads_done);
	mutex_destroy(&r->mu);
	free(r->http_addr);
	free(r->tunnel_addr);
	free(r->admin_addr);
	free(r->access_log_path);
	free(r);
}
