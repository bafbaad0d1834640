/*
 * test_inbox.c -- unit tests for src/common/inbox.c: the bounded queue of new
 * exchanges (full, closed), the kick list (once per exchange, in order,
 * ignored after close), the batched wake fd, and a stress test that no
 * wake-up is ever lost between producers kicking and a consumer draining.
 *
 * The lost wake-up fixed in inbox_drain_wake() is tested twice: once
 * deterministically, by wrapping net_wake_drain() (inbox.c calls it from
 * inside inbox_drain_wake) so that a kick lands exactly between the two
 * steps of the drain, and once as a stress test with real threads.
 *
 * The exchanges are real ones (exchange_new), so every reference the
 * inbox takes and hands over is checked against the count it should have.
 * Worker threads only call the inbox and record what happened; the test
 * thread joins them before it asserts anything: cmocka's assertions
 * may fail only on the test's own thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "exchange.h"
#include "inbox.h"
#include "lock.h"
#include "net.h"

/* wrap: net_wake_drain */
void __real_net_wake_drain(int fd);
void __wrap_net_wake_drain(int fd);

/* A kick to make from inside the next inbox_drain_wake(), just before or
 * just after it reads the wake fd, as another thread could. Set and used
 * by the test thread only; NULL ib means "pass straight through". */
static struct {
	struct inbox *ib;
	struct exchange *ex;
	bool after_read;
} drain_hook;

void
__wrap_net_wake_drain(int fd)
{
	struct inbox *ib = drain_hook.ib;

	drain_hook.ib = NULL;
	if (ib != NULL && !drain_hook.after_read)
		inbox_kick(ib, drain_hook.ex);
	__real_net_wake_drain(fd);
	if (ib != NULL && drain_hook.after_read)
		inbox_kick(ib, drain_hook.ex);
}

static int
refs_of(struct exchange *ex)
{
	return atomic_load(&ex->refs);
}

/* True when the wake fd would wake a poll() right now. */
static bool
wake_fd_readable(struct inbox *ib)
{
	struct pollfd pfd = { .fd = ib->wake_fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Reads (and so resets) the eventfd counter: how many times the fd was
 * written since the last drain. 0 when it was not written. */
static uint64_t
wake_fd_take_count(struct inbox *ib)
{
	uint64_t count = 0;

	if (read(ib->wake_fd, &count, sizeof count) != (ssize_t)sizeof count)
		return 0;
	return count;
}

static void
test_inbox_push_then_pop_hands_over_the_reference(void **state)
{
	struct inbox ib;
	struct exchange *a = exchange_new(16), *b = exchange_new(16);

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	assert_false(wake_fd_readable(&ib));
	assert_int_equal(inbox_push(&ib, a), 0);
	assert_int_equal(inbox_push(&ib, b), 0);
	assert_int_equal(refs_of(a), 2);
	assert_int_equal(refs_of(b), 2);
	assert_true(wake_fd_readable(&ib));
	inbox_drain_wake(&ib);
	assert_false(wake_fd_readable(&ib));
	assert_ptr_equal(inbox_pop(&ib), a);
	assert_ptr_equal(inbox_pop(&ib), b);
	assert_null(inbox_pop(&ib));
	/* The popper owns the references that came with them. */
	exchange_unref(a);
	exchange_unref(b);
	assert_int_equal(refs_of(a), 1);
	assert_int_equal(refs_of(b), 1);
	inbox_close(&ib);
	inbox_destroy(&ib);
	exchange_unref(a);
	exchange_unref(b);
}

static void
test_inbox_push_on_full_returns_eagain_and_keeps_no_reference(void **state)
{
	struct inbox ib;
	struct exchange *ex[3];

	(void)state;
	assert_int_equal(inbox_init(&ib, 2), 0);
	for (int i = 0; i < 3; i++)
		ex[i] = exchange_new(16);
	assert_int_equal(inbox_push(&ib, ex[0]), 0);
	assert_int_equal(inbox_push(&ib, ex[1]), 0);
	assert_int_equal(inbox_push(&ib, ex[2]), -EAGAIN);
	assert_int_equal(refs_of(ex[2]), 1);
	/* A pop makes room again. */
	assert_ptr_equal(inbox_pop(&ib), ex[0]);
	exchange_unref(ex[0]);
	assert_int_equal(inbox_push(&ib, ex[2]), 0);
	assert_ptr_equal(inbox_pop(&ib), ex[1]);
	exchange_unref(ex[1]);
	assert_ptr_equal(inbox_pop(&ib), ex[2]);
	exchange_unref(ex[2]);
	assert_null(inbox_pop(&ib));
	inbox_close(&ib);
	inbox_destroy(&ib);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(refs_of(ex[i]), 1);
		exchange_unref(ex[i]);
	}
}

static void
test_inbox_push_after_close_returns_epipe_and_keeps_no_reference(void **state)
{
	struct inbox ib;
	struct exchange *queued = exchange_new(16), *late = exchange_new(16);

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	assert_int_equal(inbox_push(&ib, queued), 0);
	inbox_close(&ib);
	assert_int_equal(inbox_push(&ib, late), -EPIPE);
	assert_int_equal(refs_of(late), 1);
	/* What was queued before the close stays for the tunnel to fail. */
	assert_ptr_equal(inbox_pop(&ib), queued);
	exchange_unref(queued);
	assert_null(inbox_pop(&ib));
	inbox_destroy(&ib);
	assert_int_equal(refs_of(queued), 1);
	exchange_unref(queued);
	exchange_unref(late);
}

static void
test_inbox_close_wakes_the_tunnel_thread(void **state)
{
	struct inbox ib;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	assert_false(wake_fd_readable(&ib));
	inbox_close(&ib);
	assert_true(wake_fd_readable(&ib));
	inbox_destroy(&ib);
}

static void
test_inbox_kick_twice_lists_once(void **state)
{
	struct inbox ib;
	struct exchange *ex = exchange_new(16);
	struct exchange **items = NULL;
	size_t alloc = 0;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	inbox_kick(&ib, ex);
	inbox_kick(&ib, ex);
	assert_int_equal(refs_of(ex), 2); /* one for the list, not two */
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
	assert_ptr_equal(items[0], ex);
	assert_false(ex->kicked);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 0);
	exchange_unref(items[0]);
	/* Taken off the list, it can be listed again. */
	inbox_kick(&ib, ex);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
	exchange_unref(items[0]);
	assert_int_equal(refs_of(ex), 1);
	free(items);
	inbox_close(&ib);
	inbox_destroy(&ib);
	exchange_unref(ex);
}

/* More kicks than the first allocation of the taker's array (64): the
 * array grows and the exchanges come out in the order they were kicked. */
static void
test_inbox_take_kicked_returns_every_kick_in_order(void **state)
{
	enum { N = 100 };
	struct inbox ib;
	struct exchange *ex[N];
	struct exchange **items = NULL;
	size_t alloc = 0, n;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	for (int i = 0; i < N; i++) {
		ex[i] = exchange_new(16);
		inbox_kick(&ib, ex[i]);
	}
	n = inbox_take_kicked(&ib, &items, &alloc);
	assert_int_equal(n, N);
	assert_true(alloc >= N);
	for (int i = 0; i < N; i++) {
		assert_ptr_equal(items[i], ex[i]);
		assert_int_equal(refs_of(ex[i]), 2);
		exchange_unref(items[i]);
	}
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 0);
	free(items);
	inbox_close(&ib);
	inbox_destroy(&ib);
	for (int i = 0; i < N; i++) {
		assert_int_equal(refs_of(ex[i]), 1);
		exchange_unref(ex[i]);
	}
}

static void
test_inbox_kick_after_close_is_ignored(void **state)
{
	struct inbox ib;
	struct exchange *ex = exchange_new(16);
	struct exchange **items = NULL;
	size_t alloc = 0;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	inbox_close(&ib);
	inbox_drain_wake(&ib);
	inbox_kick(&ib, ex);
	assert_false(ex->kicked);
	assert_int_equal(refs_of(ex), 1);
	assert_false(wake_fd_readable(&ib));
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 0);
	free(items);
	inbox_destroy(&ib);
	exchange_unref(ex);
}

/* A burst of pushes and kicks before the tunnel looks writes the wake fd
 * once: the eventfd counter says how many writes there were. */
static void
test_inbox_burst_of_work_writes_the_wake_fd_once(void **state)
{
	struct inbox ib;
	struct exchange *a = exchange_new(16), *b = exchange_new(16), *c = exchange_new(16);
	struct exchange **items = NULL;
	size_t alloc = 0;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	inbox_kick(&ib, a);
	inbox_kick(&ib, b);
	assert_int_equal(inbox_push(&ib, c), 0);
	inbox_wake(&ib);
	assert_int_equal(wake_fd_take_count(&ib), 1);
	/* The counter was reset by hand above; drain resets the flag. */
	inbox_drain_wake(&ib);
	assert_ptr_equal(inbox_pop(&ib), c);
	exchange_unref(c);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 2);
	exchange_unref(items[0]);
	exchange_unref(items[1]);
	free(items);
	inbox_close(&ib);
	inbox_destroy(&ib);
	exchange_unref(a);
	exchange_unref(b);
	exchange_unref(c);
}

/* Once the tunnel drained the wake fd, the next kick writes it again:
 * a pending flag left set would silence every later kick. */
static void
test_inbox_kick_after_drain_wakes_again(void **state)
{
	struct inbox ib;
	struct exchange *ex = exchange_new(16);
	struct exchange **items = NULL;
	size_t alloc = 0;

	(void)state;
	assert_int_equal(inbox_init(&ib, 4), 0);
	for (int round = 0; round < 3; round++) {
		inbox_kick(&ib, ex);
		assert_true(wake_fd_readable(&ib));
		inbox_drain_wake(&ib);
		assert_false(wake_fd_readable(&ib));
		assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
		exchange_unref(items[0]);
	}
	/* Work that arrives after the drain but before the take is taken
	 * by that take, and still wakes the next poll (no stale flag). */
	inbox_kick(&ib, ex);
	inbox_drain_wake(&ib);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
	exchange_unref(items[0]);
	inbox_kick(&ib, ex);
	assert_true(wake_fd_readable(&ib));
	inbox_drain_wake(&ib);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
	exchange_unref(items[0]);
	free(items);
	assert_int_equal(refs_of(ex), 1);
	inbox_close(&ib);
	inbox_destroy(&ib);
	exchange_unref(ex);
}

/* One round of the tunnel thread's drain with a kick of b landing inside
 * inbox_drain_wake() (before or after its read of the fd), then checks
 * that nothing was lost: b was taken by this round or is still listed
 * with the fd readable, and a later kick still wakes the tunnel. */
static void
drain_with_kick_inside(bool after_read)
{
	struct inbox ib;
	struct exchange *a = exchange_new(16), *b = exchange_new(16);
	struct exchange **items = NULL;
	size_t alloc = 0, n;
	bool b_taken = false;

	assert_int_equal(inbox_init(&ib, 4), 0);
	inbox_kick(&ib, a);
	assert_true(wake_fd_readable(&ib));
	drain_hook.ib = &ib;
	drain_hook.ex = b;
	drain_hook.after_read = after_read;
	inbox_drain_wake(&ib);
	assert_null(drain_hook.ib); /* the hook ran */
	n = inbox_take_kicked(&ib, &items, &alloc);
	for (size_t k = 0; k < n; k++) {
		b_taken |= items[k] == b;
		exchange_unref(items[k]);
	}
	if (!b_taken) {
		/* Still listed: the next poll() must return for it. */
		assert_true(wake_fd_readable(&ib));
		inbox_drain_wake(&ib);
		assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
		assert_ptr_equal(items[0], b);
		exchange_unref(items[0]);
	}
	/* The tunnel is idle again; the next kick must wake it. A stale
	 * wake_pending with a drained fd would swallow this and every later
	 * kick (the bug fixed in inbox_drain_wake). */
	if (wake_fd_readable(&ib)) {
		inbox_drain_wake(&ib); /* a spare wake-up is harmless */
		assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 0);
	}
	inbox_kick(&ib, a);
	assert_true(wake_fd_readable(&ib));
	inbox_drain_wake(&ib);
	assert_int_equal(inbox_take_kicked(&ib, &items, &alloc), 1);
	exchange_unref(items[0]);
	free(items);
	assert_int_equal(refs_of(a), 1);
	assert_int_equal(refs_of(b), 1);
	inbox_close(&ib);
	inbox_destroy(&ib);
	exchange_unref(a);
	exchange_unref(b);
}

static void
test_inbox_kick_landing_before_the_drain_reads_is_not_lost(void **state)
{
	(void)state;
	drain_with_kick_inside(false);
}

static void
test_inbox_kick_landing_after_the_drain_reads_is_not_lost(void **state)
{
	(void)state;
	drain_with_kick_inside(true);
}

/* ---------------------------------------------------------------------
 * Lost wake-ups under load. A consumer thread does what a tunnel thread
 * does (poll the wake fd, drain it, take the kicks); producer threads
 * each kick their own exchange and wait until the consumer serviced it
 * before kicking again. If a wake-up is ever lost, a producer waits with
 * its exchange listed while the consumer sleeps in poll(): the consumer
 * notices after STRESS_POLL_MS and gives up, so the test ends either way.
 * A waker thread meanwhile calls inbox_wake() over and over, as
 * inbox_push() and tunnel_stop() do: with the old order in
 * inbox_drain_wake() (flag cleared, then fd drained) its write could land
 * in between and be drained unseen, leaving the flag set and the fd
 * empty. Producers alone hit that window only now and then; the waker
 * makes the regression show up on nearly every run.
 */
#define STRESS_PRODUCERS 4
#define STRESS_KICKS 20000          /* in total, split among the producers */
#define STRESS_POLL_MS 5000

struct stress {
	struct inbox ib;
	struct exchange *ex[STRESS_PRODUCERS];

	pthread_mutex_t mu;
	pthread_cond_t serviced_changed;
	/* guarded by mu: */
	long kicks[STRESS_PRODUCERS];    /* kicks made by producer i */
	long serviced[STRESS_PRODUCERS]; /* times the consumer serviced ex[i] */
	bool abort;                      /* the consumer gave up */

	atomic_bool done;                /* the waker may stop */
	long wakes;                      /* waker only, read after the join */

	/* consumer only, read by the test after the join: */
	long total;
	long wakeups;
	int lost_wakeups;                /* poll timed out with work pending */
	int strangers;                   /* taken exchanges that are no producer's */
	int poll_errors;
};

struct producer {
	struct stress *s;
	int index;
	long rounds;
	bool aborted;
};

static int
stress_index_of(struct stress *s, struct exchange *ex)
{
	for (int i = 0; i < STRESS_PRODUCERS; i++)
		if (s->ex[i] == ex)
			return i;
	return -1;
}

/* Kicks not yet serviced. Caller must hold s->mu. */
static long
stress_pending_locked(struct stress *s)
{
	long pending = 0;

	for (int i = 0; i < STRESS_PRODUCERS; i++)
		pending += s->kicks[i] - s->serviced[i];
	return pending;
}

/* Marks what one take brought as serviced and drops the list's references. */
static void
stress_service(struct stress *s, struct exchange **items, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		int i = stress_index_of(s, items[k]);
		mutex_lock(&s->mu);
		if (i < 0)
			s->strangers++;
		else
			s->serviced[i]++;
		cond_broadcast(&s->serviced_changed);
		mutex_unlock(&s->mu);
		s->total++;
		exchange_unref(items[k]);
	}
}

static void *
stress_consumer_thread_main(void *arg)
{
	struct stress *s = arg;
	struct exchange **items = NULL;
	size_t alloc = 0;

	while (s->total < STRESS_KICKS) {
		struct pollfd pfd = { .fd = s->ib.wake_fd, .events = POLLIN };
		int rc = poll(&pfd, 1, STRESS_POLL_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			s->poll_errors++;
			break;
		}
		if (rc == 0) {
			mutex_lock(&s->mu);
			bool stuck = stress_pending_locked(s) > 0;
			mutex_unlock(&s->mu);
			if (!stuck)
				continue;
			s->lost_wakeups++;
			break;
		}
		s->wakeups++;
		inbox_drain_wake(&s->ib);
		stress_service(s, items, inbox_take_kicked(&s->ib, &items, &alloc));
	}
	mutex_lock(&s->mu);
	s->abort = true; /* releases producers still waiting after a give-up */
	cond_broadcast(&s->serviced_changed);
	mutex_unlock(&s->mu);
	free(items);
	return NULL;
}

static void *
stress_producer_thread_main(void *arg)
{
	struct producer *p = arg;
	struct stress *s = p->s;
	int i = p->index;

	for (long r = 0; r < p->rounds; r++) {
		mutex_lock(&s->mu);
		s->kicks[i]++;
		mutex_unlock(&s->mu);
		inbox_kick(&s->ib, s->ex[i]);
		mutex_lock(&s->mu);
		/* Invariant: ex[i] is listed (or being serviced) until
		 * serviced catches up with kicks. */
		while (s->serviced[i] < s->kicks[i] && !s->abort)
			cond_wait(&s->serviced_changed, &s->mu);
		p->aborted = s->serviced[i] < s->kicks[i];
		mutex_unlock(&s->mu);
		if (p->aborted)
			break;
	}
	return NULL;
}

static void *
stress_waker_thread_main(void *arg)
{
	struct stress *s = arg;

	while (!atomic_load(&s->done)) {
		inbox_wake(&s->ib);
		s->wakes++;
		sched_yield();
	}
	return NULL;
}

static void
test_inbox_no_wakeup_is_lost_under_concurrent_kicks(void **state)
{
	struct stress *s = calloc(1, sizeof *s);
	struct producer p[STRESS_PRODUCERS];
	pthread_t consumer, waker, producers[STRESS_PRODUCERS];
	struct exchange **left = NULL;
	size_t left_alloc = 0, left_n;

	(void)state;
	assert_non_null(s);
	assert_int_equal(inbox_init(&s->ib, 4), 0);
	mutex_init(&s->mu);
	cond_init(&s->serviced_changed);
	for (int i = 0; i < STRESS_PRODUCERS; i++)
		s->ex[i] = exchange_new(16);
	atomic_init(&s->done, false);
	assert_int_equal(pthread_create(&consumer, NULL, stress_consumer_thread_main, s), 0);
	assert_int_equal(pthread_create(&waker, NULL, stress_waker_thread_main, s), 0);
	for (int i = 0; i < STRESS_PRODUCERS; i++) {
		p[i] = (struct producer){ .s = s, .index = i,
		                          .rounds = STRESS_KICKS / STRESS_PRODUCERS };
		assert_int_equal(pthread_create(&producers[i], NULL, stress_producer_thread_main,
		                                &p[i]), 0);
	}
	for (int i = 0; i < STRESS_PRODUCERS; i++)
		assert_int_equal(pthread_join(producers[i], NULL), 0);
	assert_int_equal(pthread_join(consumer, NULL), 0);
	atomic_store(&s->done, true);
	assert_int_equal(pthread_join(waker, NULL), 0);

	/* Whatever a give-up left listed is dropped before the asserts. */
	left_n = inbox_take_kicked(&s->ib, &left, &left_alloc);
	for (size_t k = 0; k < left_n; k++)
		exchange_unref(left[k]);
	free(left);
	print_message("%ld kicks serviced in %ld wake-ups (%ld extra wakes)\n", s->total,
	              s->wakeups, s->wakes);
	assert_int_equal(s->poll_errors, 0);
	assert_int_equal(s->lost_wakeups, 0);
	assert_int_equal(s->strangers, 0);
	assert_int_equal(left_n, 0);
	assert_int_equal(s->total, STRESS_KICKS);
	for (int i = 0; i < STRESS_PRODUCERS; i++) {
		assert_false(p[i].aborted);
		assert_int_equal(s->serviced[i], STRESS_KICKS / STRESS_PRODUCERS);
		assert_int_equal(refs_of(s->ex[i]), 1);
		exchange_unref(s->ex[i]);
	}
	inbox_close(&s->ib);
	inbox_destroy(&s->ib);
	cond_destroy(&s->serviced_changed);
	mutex_destroy(&s->mu);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inbox_push_then_pop_hands_over_the_reference),
		cmocka_unit_test(test_inbox_push_on_full_returns_eagain_and_keeps_no_reference),
		cmocka_unit_test(test_inbox_push_after_close_returns_epipe_and_keeps_no_reference),
		cmocka_unit_test(test_inbox_close_wakes_the_tunnel_thread),
		cmocka_unit_test(test_inbox_kick_twice_lists_once),
		cmocka_unit_test(test_inbox_take_kicked_returns_every_kick_in_order),
		cmocka_unit_test(test_inbox_kick_after_close_is_ignored),
		cmocka_unit_test(test_inbox_burst_of_work_writes_the_wake_fd_once),
		cmocka_unit_test(test_inbox_kick_after_drain_wakes_again),
		cmocka_unit_test(test_inbox_kick_landing_before_the_drain_reads_is_not_lost),
		cmocka_unit_test(test_inbox_kick_landing_after_the_drain_reads_is_not_lost),
		cmocka_unit_test(test_inbox_no_wakeup_is_lost_under_concurrent_kicks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
