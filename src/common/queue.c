/*
 * queue.c -- a bounded FIFO of pointers, guarded by a mutex, with a
 * condition variable for consumers that want to block.
 *
 * Owns:    the ring of slots; never the items, which belong to whoever
 *          pushed them until someone pops them.
 * Threads: any number of producers and consumers.
 * Locks:   q->mu guards every field; it is never held while calling out,
 *          so it nests under nothing and nothing nests under it.
 * Interface:
 *   - queue_push() never blocks: a full or closed queue is an error the
 *     producer must answer (the router answers 503);
 *   - queue_pop() never blocks (a tunnel thread drains it after a wake-up);
 *   - queue_pop_wait() blocks until an item arrives or the queue closes
 *     (backend worker threads);
 *   - queue_close() wakes every waiter; items still queued stay poppable.
 * Tutorial: "A request waits in the queue".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "queue.h"
#include "lock.h"

/* Prepares an empty queue holding at most cap items.
 * Returns 0, -EINVAL for cap 0, or -ENOMEM. */
int
queue_init(struct queue *q, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	q->items = calloc(cap, sizeof *q->items);
	if (q->items == NULL)
		return -ENOMEM;
	q->cap = cap;
	q->head = 0;
	q->len = 0;
	q->closed = false;
	mutex_init(&q->mu);
	cond_init(&q->nonempty);
	return 0;
}

/* Frees the ring. The queue must be empty of waiters; items left in it
 * are not freed (the owner drains it first). */
void
queue_destroy(struct queue *q)
{
	free(q->items);
	q->items = NULL;
	cond_destroy(&q->nonempty);
	mutex_destroy(&q->mu);
}

/* Appends item. Ownership of item passes to whoever pops it.
 * Returns 0, -EAGAIN when full, or -EPIPE when closed. */
int
queue_push(struct queue *q, void *item)
{
	int rc = 0;

	mutex_lock(&q->mu);
	if (q->closed) {
		rc = -EPIPE;
	} else if (q->len == q->cap) {
		rc = -EAGAIN;
	} else {
		q->items[(q->head + q->len) % q->cap] = item;
		q->len++;
	}
	mutex_unlock(&q->mu);
	/* Signalled after unlocking: a consumer woken while we still held
	 * q->mu would only block on it again. */
	if (rc == 0)
		cond_signal(&q->nonempty);
	return rc;
}

/* Caller must hold q->mu and q->len must be > 0. */
static void *
queue_take_locked(struct queue *q)
{
	void *item = q->items[q->head];

	q->head = (q->head + 1) % q->cap;
	q->len--;
	return item;
}

/* Removes and returns the oldest item, or NULL when the queue is empty.
 * The caller now owns the item. */
void *
queue_pop(struct queue *q)
{
	void *item = NULL;

	mutex_lock(&q->mu);
	if (q->len > 0)
		item = queue_take_locked(q);
	mutex_unlock(&q->mu);
	return item;
}

/* Like queue_pop(), but blocks while the queue is empty and open.
 * Returns NULL only once the queue is closed and empty. */
void *
queue_pop_wait(struct queue *q)
{
	void *item = NULL;

	mutex_lock(&q->mu);
	/* Invariant on wake-up: either an item is there or we are closing. */
	while (q->len == 0 && !q->closed)
		cond_wait(&q->nonempty, &q->mu);
	if (q->len > 0)
		item = queue_take_locked(q);
	mutex_unlock(&q->mu);
	return item;
}

/* Refuses further pushes and wakes every blocked consumer. */
void
queue_close(struct queue *q)
{
	mutex_lock(&q->mu);
	q->closed = true;
	cond_broadcast(&q->nonempty);
	mutex_unlock(&q->mu);
}

/* Returns the number of queued items (a snapshot). */
size_t
queue_len(struct queue *q)
{
	size_t len;

	mutex_lock(&q->mu);
	len = q->len;
	mutex_unlock(&q->mu);
	return len;
}
