/* inbox.h -- how other threads hand work to one tunnel thread. See inbox.c. */
#ifndef PTTH_INBOX_H
#define PTTH_INBOX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

struct exchange;

struct inbox {
	struct queue fresh;       /* new exchanges; has its own lock */
	int wake_fd;              /* eventfd the tunnel thread polls */

	pthread_mutex_t mu;       /* lock order: taken alone, never nested */
	/* guarded by mu: */
	struct exchange *kicked_head, *kicked_tail;
	bool wake_pending;        /* wake_fd was written and not yet drained */
	bool closed;              /* the tunnel thread stopped taking work */
};

int inbox_init(struct inbox *ib, size_t queue_size);
void inbox_destroy(struct inbox *ib);
int inbox_push(struct inbox *ib, struct exchange *ex);
void inbox_kick(struct inbox *ib, struct exchange *ex);
void inbox_wake(struct inbox *ib);
void inbox_drain_wake(struct inbox *ib);
struct exchange *inbox_pop(struct inbox *ib);
size_t inbox_take_kicked(struct inbox *ib, struct exchange ***items, size_t *alloc);
void inbox_close(struct inbox *ib);

#endif
