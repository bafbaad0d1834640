/* queue.h -- a bounded FIFO of pointers guarded by a mutex. See queue.c. */
#ifndef PTTH_QUEUE_H
#define PTTH_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct queue {
	pthread_mutex_t mu;     /* lock order: taken alone, never nested */
	pthread_cond_t nonempty;
	/* guarded by mu: */
	void **items;           /* ring of cap slots */
	size_t cap, head, len;
	bool closed;
};

int queue_init(struct queue *q, size_t cap);
void queue_destroy(struct queue *q);
int queue_push(struct queue *q, void *item);
void *queue_pop(struct queue *q);
void *queue_pop_wait(struct queue *q);
void queue_close(struct queue *q);
size_t queue_len(struct queue *q);

#endif
