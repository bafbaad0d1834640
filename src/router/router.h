/* router.h -- the router's internals shared by its modules. See router.c. */
#ifndef PTTH_ROUTER_H
#define PTTH_ROUTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ptth.h"
#include "access_log.h"
#include "admin.h"
#include "http1.h"
#include "metrics.h"
#include "pool.h"
#include "services.h"

struct tokens;

struct user_conn;

/* Sizes that decide memory and throughput; fixed for now. */
#define ROUTER_STREAM_WINDOW (256 * 1024)  /* per-stream window = pipe capacity */
#define ROUTER_READ_BUF (64 * 1024)        /* a user connection's input buffer */

/* The router's settings, after defaults were applied. */
struct router_conf {
	int max_conns;
	int queue_size;
	struct http1_limits limits;
	long long max_body;       /* 0: no limit */
	int header_timeout_ms;
	int idle_timeout_ms;
	int body_timeout_ms;      /* between request body bytes */
	int send_timeout_ms;      /* SO_SNDTIMEO on user sockets */
	int backend_timeout_ms;
	int websocket_idle_timeout_ms; /* an upgraded connection with no byte moving */
	bool forwarded;           /* add X-Forwarded-* and Forwarded */
	int ping_interval_ms;     /* -1: no pings */
	int ping_timeout_ms;
	int drain_timeout_ms;
	enum ptth_balance balance;
	FILE *trace;              /* NULL: no frame trace */
	bool allow_raw;           /* raw tunnels taken although tokens are required */
	int raw_wait_ms;
};

struct ptth_router {
	/* Set by ptth_router_new/start, read-only while running: */
	char *http_addr, *tunnel_addr;
	char *tokens_path;        /* --tunnel-tokens, or NULL */
	char *admin_addr;         /* NULL: no admin port */
	char *access_log_path;    /* NULL: no access log; "-": stdout */
	struct router_conf conf;
	int http_fd, tunnel_fd;
	int http_port, tunnel_port;
	pthread_t http_accept_thread, tunnel_accept_thread;
	bool started;             /* only touched by the thread that calls start/stop */

	struct pool pool;         /* the default pool: raw tunnels and handshakes
	                             naming no service; its own lock */
	struct services services; /* a pool per named service; its own lock */
	int stop_fd;              /* eventfd, written once by stop: wakes handshakes */
	struct metrics metrics;   /* atomics, no lock (metrics.c) */
	struct access_log access_log; /* opened by start, no lock (access_log.c) */
	struct admin admin;       /* the admin port and its thread (admin.c) */

	pthread_mutex_t mu;       /* lock order: taken alone, never nested */
	pthread_cond_t threads_done;
	/* guarded by mu: */
	int threads;              /* connection and tunnel threads still running */
	bool stopping;
	atomic_bool draining;     /* shutting down: finish requests, then close;
	                             atomic, read without mu (router_conn_idle) */
	struct user_conn *conns;  /* live user connections, for stop */
	int conn_count;
	int next_tunnel_id;
	struct tokens *tokens;    /* the tokens file's contents (a reference), or NULL */
};

bool router_is_stopping(struct ptth_router *r);
bool router_thread_begin(struct ptth_router *r);
void router_thread_end(struct ptth_router *r);
int router_conn_add(struct ptth_router *r, struct user_conn *c);
void router_conn_remove(struct ptth_router *r, struct user_conn *c);
bool router_conn_idle(struct ptth_router *r, struct user_conn *c, bool idle);
struct tokens *router_tokens_get(struct ptth_router *r);
bool router_tokens_required(struct ptth_router *r);

#endif
