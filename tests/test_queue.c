/*
 * test_queue.c -- unit tests for src/common/queue.c: FIFO order, the full and
 * closed errors, wrap-around of the ring, and the blocking pop woken by a
 * push or a close from another thread.
 *
 * Worker threads only call the queue and record what happened; the test
 * thread joins them before it asserts anything: cmocka's assertions
 * may fail only on the test's own thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>

#include "queue.h"

/* Items are small integers disguised as pointers; 0 is never used, so a
 * NULL from a pop always means "nothing". */
#define ITEM(n) ((void *)(uintptr_t)(n))

static void
test_queue_init_fails_for_zero_capacity(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 0), -EINVAL);
}

static void
test_queue_pop_returns_null_when_empty(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_null(queue_pop(&q));
	assert_int_equal(queue_len(&q), 0);
	queue_destroy(&q);
}

static void
test_queue_pop_returns_items_in_push_order(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_int_equal(queue_push(&q, ITEM(1)), 0);
	assert_int_equal(queue_push(&q, ITEM(2)), 0);
	assert_int_equal(queue_push(&q, ITEM(3)), 0);
	assert_int_equal(queue_len(&q), 3);
	assert_ptr_equal(queue_pop(&q), ITEM(1));
	assert_ptr_equal(queue_pop(&q), ITEM(2));
	assert_ptr_equal(queue_pop(&q), ITEM(3));
	assert_null(queue_pop(&q));
	assert_int_equal(queue_len(&q), 0);
	queue_destroy(&q);
}

static void
test_queue_push_on_full_returns_eagain(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 2), 0);
	assert_int_equal(queue_push(&q, ITEM(1)), 0);
	assert_int_equal(queue_push(&q, ITEM(2)), 0);
	assert_int_equal(queue_push(&q, ITEM(3)), -EAGAIN);
	assert_int_equal(queue_len(&q), 2);
	/* The refused item was not stored, and a pop makes room again. */
	assert_ptr_equal(queue_pop(&q), ITEM(1));
	assert_int_equal(queue_push(&q, ITEM(4)), 0);
	assert_ptr_equal(queue_pop(&q), ITEM(2));
	assert_ptr_equal(queue_pop(&q), ITEM(4));
	assert_null(queue_pop(&q));
	queue_destroy(&q);
}

static void
test_queue_push_after_close_returns_epipe(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	queue_close(&q);
	assert_int_equal(queue_push(&q, ITEM(1)), -EPIPE);
	assert_int_equal(queue_len(&q), 0);
	assert_null(queue_pop(&q));
	queue_destroy(&q);
}

static void
test_queue_close_wins_over_full(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 1), 0);
	assert_int_equal(queue_push(&q, ITEM(1)), 0);
	queue_close(&q);
	assert_int_equal(queue_push(&q, ITEM(2)), -EPIPE);
	assert_ptr_equal(queue_pop(&q), ITEM(1));
	queue_destroy(&q);
}

static void
test_queue_items_stay_poppable_after_close(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_int_equal(queue_push(&q, ITEM(1)), 0);
	assert_int_equal(queue_push(&q, ITEM(2)), 0);
	queue_close(&q);
	assert_int_equal(queue_len(&q), 2);
	assert_ptr_equal(queue_pop(&q), ITEM(1));
	assert_ptr_equal(queue_pop_wait(&q), ITEM(2));
	assert_null(queue_pop(&q));
	queue_destroy(&q);
}

/* Pushes and pops one more than the capacity each round, so head and
 * tail pass the end of the ring many times at every offset. */
static void
test_queue_ring_wraps_around_keeping_order(void **state)
{
	struct queue q;
	uintptr_t next_in = 1, next_out = 1;

	(void)state;
	assert_int_equal(queue_init(&q, 3), 0);
	for (int round = 0; round < 20; round++) {
		int burst = 1 + round % 3;
		for (int i = 0; i < burst; i++)
			assert_int_equal(queue_push(&q, ITEM(next_in++)), 0);
		assert_int_equal(queue_len(&q), (size_t)burst);
		for (int i = 0; i < burst; i++)
			assert_ptr_equal(queue_pop(&q), ITEM(next_out++));
		assert_null(queue_pop(&q));
	}
	/* A full ring whose head is not at slot 0 still refuses a fourth. */
	assert_int_equal(queue_push(&q, ITEM(next_in++)), 0);
	assert_ptr_equal(queue_pop(&q), ITEM(next_out++));
	for (int i = 0; i < 3; i++)
		assert_int_equal(queue_push(&q, ITEM(next_in++)), 0);
	assert_int_equal(queue_push(&q, ITEM(999)), -EAGAIN);
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(queue_pop(&q), ITEM(next_out++));
	assert_int_equal(next_in, next_out);
	queue_destroy(&q);
}

/* What a producer thread did, for the test thread to check after join. */
struct producer {
	struct queue *q;
	int count;
	int failures;      /* pushes that did not return 0 */
};

/* Pushes items 1..count, then returns. */
static void *
producer_thread_main(void *arg)
{
	struct producer *pr = arg;

	for (int i = 1; i <= pr->count; i++)
		if (queue_push(pr->q, ITEM(i)) != 0)
			pr->failures++;
	return NULL;
}

static void *
closer_thread_main(void *arg)
{
	queue_close(arg);
	return NULL;
}

static void
test_queue_pop_wait_blocks_until_push(void **state)
{
	struct queue q;
	struct producer pr = { .q = &q, .count = 1 };
	pthread_t tid;
	void *item;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_int_equal(pthread_create(&tid, NULL, producer_thread_main, &pr), 0);
	/* The queue is empty until the producer runs: a pop that did not
	 * wait would come back with NULL. */
	item = queue_pop_wait(&q);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(pr.failures, 0);
	assert_ptr_equal(item, ITEM(1));
	assert_int_equal(queue_len(&q), 0);
	queue_destroy(&q);
}

/* Many handovers: the consumer keeps catching up with the producer and
 * waiting on an empty queue, and must see every item once, in order. */
static void
test_queue_pop_wait_receives_every_item_in_order(void **state)
{
	enum { N = 10000 };
	struct queue q;
	struct producer pr = { .q = &q, .count = N };
	pthread_t tid;
	int out_of_order = 0;

	(void)state;
	assert_int_equal(queue_init(&q, N), 0);
	assert_int_equal(pthread_create(&tid, NULL, producer_thread_main, &pr), 0);
	for (int i = 1; i <= N; i++)
		if (queue_pop_wait(&q) != ITEM(i))
			out_of_order++;
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(pr.failures, 0);
	assert_int_equal(out_of_order, 0);
	assert_null(queue_pop(&q));
	queue_destroy(&q);
}

static void
test_queue_pop_wait_returns_null_after_close_when_empty(void **state)
{
	struct queue q;
	pthread_t tid;
	void *item;
	int push_rc;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_int_equal(pthread_create(&tid, NULL, closer_thread_main, &q), 0);
	item = queue_pop_wait(&q);
	/* Checked before the join: NULL must mean the close has happened. */
	push_rc = queue_push(&q, ITEM(1));
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_null(item);
	assert_int_equal(push_rc, -EPIPE);
	queue_destroy(&q);
}

static void
test_queue_pop_wait_drains_items_before_reporting_close(void **state)
{
	struct queue q;

	(void)state;
	assert_int_equal(queue_init(&q, 4), 0);
	assert_int_equal(queue_push(&q, ITEM(1)), 0);
	assert_int_equal(queue_push(&q, ITEM(2)), 0);
	queue_close(&q);
	assert_ptr_equal(queue_pop_wait(&q), ITEM(1));
	assert_ptr_equal(queue_pop_wait(&q), ITEM(2));
	assert_null(queue_pop_wait(&q));
	assert_null(queue_pop_wait(&q));
	queue_destroy(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_init_fails_for_zero_capacity),
		cmocka_unit_test(test_queue_pop_returns_null_when_empty),
		cmocka_unit_test(test_queue_pop_returns_items_in_push_order),
		cmocka_unit_test(test_queue_push_on_full_returns_eagain),
		cmocka_unit_test(test_queue_push_after_close_returns_epipe),
		cmocka_unit_test(test_queue_close_wins_over_full),
		cmocka_unit_test(test_queue_items_stay_poppable_after_close),
		cmocka_unit_test(test_queue_ring_wraps_around_keeping_order),
		cmocka_unit_test(test_queue_pop_wait_blocks_until_push),
		cmocka_unit_test(test_queue_pop_wait_receives_every_item_in_order),
		cmocka_unit_test(test_queue_pop_wait_returns_null_after_close_when_empty),
		cmocka_unit_test(test_queue_pop_wait_drains_items_before_reporting_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
