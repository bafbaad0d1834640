/* backend.h -- the backend's internals shared by backend.c (life cycle),
 * backend_conn.c (one tunnel connection) and handler.c (requests). */
#ifndef PTTH_BACKEND_H
#define PTTH_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ptth.h"
#include "inbox.h"
#include "workers.h"

#define BACKEND_STREAM_WINDOW (256 * 1024)
#define BACKEND_MAX_STREAMS 256       /* advertised SETTINGS_MAX_CONCURRENT_STREAMS */
#define BACKEND_MAX_WORKERS (BACKEND_MAX_STREAMS + 16)
#define BACKEND_MAX_TUNNELS 64        /* per router */
#define BACKEND_MAX_ROUTERS 1024

struct exchange;
struct backend_conn;

struct ptth_backend {
	/* Set by ptth_backend_new, read-only afterwards: */
	struct ptth_backend_options opts;  /* defaults applied, strings copied */
	char **router_addrs;          /* the routers, router_count of them (at least 1) */
	int router_count;
	int slot_total;               /* opts.tunnels per router, all routers */
	char *service, *token;        /* the handshake's, or NULL (raw tunnels) */
	bool handshake;               /* service or token set: greet before HTTP/2 */

	struct workers workers;       /* handler threads, shared by every tunnel */
	atomic_bool stop;             /* set by ptth_backend_stop; read by tunnel threads */
	int stop_fd;                  /* eventfd ptth_backend_stop writes: ends handshake waits */

	pthread_mutex_t mu;           /* lock order: taken alone, never nested */
	pthread_cond_t changed;       /* stop asked, or a tunnel came or went */
	/* guarded by mu: */
	bool stopping;
	struct backend_conn **conns;  /* live, per slot (slot_total of them) */
	int live;                     /* tunnels up right now */
	int result;                   /* the first error that ended a slot */
	int slots_ended;              /* slot threads that finished */
	bool waitable;                /* the slots were started (stays true after stop) */

	/* Written by start before the slots run, then read-only until stop: */
	pthread_t *slots;             /* slot_total of them; slot i dials router
	                                 i / opts.tunnels */
	int slot_count;               /* started so far */
	int first_fd;                 /* backend_start_fd(): served by slot 0 */
	bool first_fd_greeted;        /* first_fd went through the handshake already */
	bool started;                 /* start/stop/free run on one thread */
};

/* One TCP connection to the router and its server session. */
struct backend_conn {
	atomic_int refs;              /* the slot thread, plus each handler call */
	struct ptth_backend *b;
	int fd;                       /* closed by the slot thread when the tunnel ends */
	int slot;
	struct inbox inbox;           /* kicks from handler threads */
};

void backend_conn_ref(struct backend_conn *conn);
void backend_conn_unref(struct backend_conn *conn);
struct backend_conn *backend_conn_new(struct ptth_backend *b, int fd, int slot);
int backend_conn_serve(struct backend_conn *conn, const char **reason);

void handler_call_run(void *job);
int handler_call_start(struct backend_conn *conn, struct exchange *ex);

int backend_start_fd(struct ptth_backend *b, int fd);

#endif
