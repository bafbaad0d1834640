/*
 * inbox.c -- the one way other threads hand work to a tunnel thread:
 * a bounded queue of new exchanges, a list of exchanges that need
 * attention ("kicked"), and an eventfd that wakes the tunnel's poll().
 *
 * Owns:    the queue, the wake fd, and one reference on every exchange
 *          waiting in the queue or on the kick list.
 * Threads: any thread pushes and kicks; only the owning tunnel thread
 *          pops, takes the kick list and drains the wake fd.
 * Locks:   the queue's own mutex guards the queue; ib->mu guards the kick
 *          list and the flags. Neither is held while the other is taken,
 *          nor while an exchange's mutex is held.
 * Interface:
 *   - inbox_push(): a user connection hands over a new request (fails
 *     when the queue is full or the tunnel closed: the caller answers);
 *   - inbox_kick(): an app thread asks for exchange_service() on an
 *     exchange; kicking twice before the tunnel looks costs nothing;
 *   - the tunnel thread polls wake_fd, then calls inbox_drain_wake(),
 *     inbox_pop() until NULL and inbox_take_kicked();
 *   - inbox_close(): nothing new gets in; the tunnel then drains what is left.
 * Wake-ups are batched: wake_fd is written only when no wake-up is already
 * pending, so a burst of kicks costs the tunnel one poll() return.
 * Tutorial: "A request waits in the queue"; the batching in "Fewer
 *          wake-ups".
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "exchange.h"
#include "inbox.h"
#include "lock.h"
#include "net.h"

/* Returns 0, or a negative code. */
int
inbox_init(struct inbox *ib, size_t queue_size)
{
	int rc = queue_init(&ib->fresh, queue_size);

	if (rc < 0)
		return rc;
	ib->wake_fd = net_wake_fd_new();
	if (ib->wake_fd < 0) {
		rc = ib->wake_fd;
		queue_destroy(&ib->fresh);
		return rc;
	}
	mutex_init(&ib->mu);
	ib->kicked_head = ib->kicked_tail = NULL;
	ib->wake_pending = false;
	ib->closed = false;
	return 0;
}

/* Frees the inbox. The owner has closed it and drained it. */
void
inbox_destroy(struct inbox *ib)
{
	close(ib->wake_fd);
	mutex_destroy(&ib->mu);
	queue_destroy(&ib->fresh);
}

/* Writes the wake fd unless a wake-up is already pending. */
/* tutorial: inbox-wake */
void
inbox_wake(struct inbox *ib)
{
	bool write_it;

	mutex_lock(&ib->mu);
	write_it = !ib->wake_pending;
	ib->wake_pending = true;
	mutex_unlock(&ib->mu);
	if (write_it)
		net_wake(ib->wake_fd);
}
/* tutorial: end */

/* Hands a new exchange to the tunnel thread. On success the inbox holds
 * one new reference, which passes to the tunnel thread when it pops.
 * Returns 0, -EAGAIN when the queue is full, or -EPIPE when closed. */
/* tutorial: inbox-push */
int
inbox_push(struct inbox *ib, struct exchange *ex)
{
	int rc;

	exchange_ref(ex);
	rc = queue_push(&ib->fresh, ex);
	if (rc < 0) {
		exchange_unref(ex);
		return rc;
	}
	inbox_wake(ib);
	return 0;
}
/* tutorial: end */

/* Puts ex on the kick list (once) and wakes the tunnel thread. After the
 * inbox closed, kicks are ignored: the tunnel has closed every stream. */
void
inbox_kick(struct inbox *ib, struct exchange *ex)
{
	bool write_it = false;

	mutex_lock(&ib->mu);
	if (!ib->closed && !ex->kicked) {
		exchange_ref(ex); /* the list's reference */
		ex->kicked = true;
		ex->kick_next = NULL;
		if (ib->kicked_tail != NULL)
			ib->kicked_tail->kick_next = ex;
		else
			ib->kicked_head = ex;
		ib->kicked_tail = ex;
		write_it = !ib->wake_pending;
		ib->wake_pending = true;
	}
	mutex_unlock(&ib->mu);
	if (write_it)
		net_wake(ib->wake_fd);
}

/* Tunnel thread: resets the wake fd before taking work. The order
 * matters: the fd is drained first, then wake_pending cleared. Work that
 * arrives in between finds wake_pending still set and does not write,
 * but it is already listed, and the caller takes the lists next. The
 * other order could leave wake_pending set with the fd drained, and
 * every later kick would be lost. */
void
inbox_drain_wake(struct inbox *ib)
{
	net_wake_drain(ib->wake_fd);
	mutex_lock(&ib->mu);
	ib->wake_pending = false;
	mutex_unlock(&ib->mu);
}

/* Tunnel thread: the next new exchange, or NULL. The caller owns the
 * reference that came with it. */
struct exchange *
inbox_pop(struct inbox *ib)
{
	return queue_pop(&ib->fresh);
}

/* Tunnel thread: moves the kick list into *items (grown as needed,
 * *alloc slots, owned by the caller) and returns how many there are.
 * The caller owns one reference per item. */
size_t
inbox_take_kicked(struct inbox *ib, struct exchange ***items, size_t *alloc)
{
	size_t n = 0;

	mutex_lock(&ib->mu);
	for (struct exchange *ex = ib->kicked_head; ex != NULL; ex = ex->kick_next) {
		if (n == *alloc) {
			size_t grown = *alloc ? *alloc * 2 : 64;
			struct exchange **bigger = realloc(*items, grown * sizeof *bigger);
			if (bigger == NULL)
				break; /* the rest stays listed for the next round */
			*items = bigger;
			*alloc = grown;
		}
		(*items)[n++] = ex;
		ex->kicked = false;
	}
	/* Keep whatever did not fit (only after an allocation failure). */
	ib->kicked_head = (n > 0) ? (*items)[n - 1]->kick_next : ib->kicked_head;
	if (ib->kicked_head == NULL)
		ib->kicked_tail = NULL;
	mutex_unlock(&ib->mu);
	return n;
}

/* Refuses new work from now on and wakes the tunnel thread. */
void
inbox_close(struct inbox *ib)
{
	mutex_lock(&ib->mu);
	ib->closed = true;
	mutex_unlock(&ib->mu);
	queue_close(&ib->fresh);
	net_wake(ib->wake_fd);
}
