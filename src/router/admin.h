/* admin.h -- the router's admin port: /metrics, /tunnels, /healthz. See admin.c. */
#ifndef PTTH_ADMIN_H
#define PTTH_ADMIN_H

#include <pthread.h>
#include <stdbool.h>

struct ptth_router;

#define ADMIN_HEAD_MAX 4096        /* request head bytes, 431 beyond */
#define ADMIN_TIMEOUT_MS 2000      /* to send the head, and to take the answer */

struct admin {
	/* Set by admin_start(), read-only until admin_stop(): */
	int fd;                    /* listening socket, -1 when off */
	int port;
	pthread_t thread;
	bool started;              /* only the thread that starts and stops touches it */

	pthread_mutex_t mu;        /* lock order: taken alone, never nested */
	/* guarded by mu: */
	int client_fd;             /* the connection being answered, or -1 */
	bool stopping;
};

void admin_init(struct admin *a);
void admin_destroy(struct admin *a);
int admin_start(struct ptth_router *r, const char *addr);
void admin_stop(struct ptth_router *r);

#endif
