/*
 * test_pool.c -- unit tests for src/router/pool.c: add, join, remove, pick,
 * count and snapshot, the references the pool takes and gives back, the
 * three strategies (random reaching every tunnel, round-robin in turn,
 * least-busy by in_flight), the capacity rules of the pick (a free
 * stream first, a queue only when every tunnel is full, never a tunnel
 * that allows no stream, one stream slot per pick even under
 * concurrency), and pool_wait_count() timing out or being woken by
 * another thread.
 *
 * The tunnels are real struct tunnel objects made cheaply: no socket and
 * no thread, just a reference count and an inbox, so that tunnel_unref()
 * frees them exactly as it frees a live tunnel. Each test checks that
 * every reference count is back to its baseline (1, the test's own) when
 * it ends, then drops it.
 *
 * Worker threads only call the pool and record what happened; the test
 * thread joins them before it asserts anything: cmocka's assertions
 * may fail only on the test's own thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "ptth.h"
#include "lock.h"
#include "pool.h"
#include "tunnel.h"

/* A tunnel with one reference (the caller's) and an inbox, as
 * tunnel_start() makes one, minus the socket and the thread. */
static struct tunnel *
fake_tunnel_new(int id)
{
	struct tunnel *t = calloc(1, sizeof *t);

	assert_non_null(t);
	atomic_init(&t->refs, 1);
	atomic_init(&t->stop, false);
	atomic_init(&t->in_flight, 0);
	atomic_init(&t->peer_max_streams, UINT_MAX); /* as with no limit in SETTINGS */
	atomic_init(&t->streams_used, 0);
	t->id = id;
	t->fd = -1;
	assert_int_equal(inbox_init(&t->inbox, 4), 0);
	return t;
}

/* Lists t and makes it pickable at once, as a tunnel thread does in two
 * steps (pool_add, then pool_join when the backend's SETTINGS arrive). */
static int
pool_add_joined(struct pool *p, struct tunnel *t)
{
	int rc = pool_add(p, t);

	if (rc == 0 && !pool_join(p, t))
		rc = -EINVAL;
	return rc;
}

static int
refs_of(struct tunnel *t)
{
	return atomic_load(&t->refs);
}

static void
test_pool_pick_on_empty_returns_null(void **state)
{
	struct pool p;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_null(pool_pick(&p, NULL));
	assert_int_equal(pool_count(&p), 0);
	pool_destroy(&p);
}

static void
test_pool_add_takes_a_reference_and_remove_drops_it(void **state)
{
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1);

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, t), 0);
	assert_int_equal(pool_count(&p), 1);
	assert_int_equal(refs_of(t), 2);
	pool_remove(&p, t);
	assert_int_equal(pool_count(&p), 0);
	assert_int_equal(refs_of(t), 1);
	pool_destroy(&p);
	tunnel_unref(t);
}

static void
test_pool_remove_is_idempotent(void **state)
{
	struct pool p;
	struct tunnel *a = fake_tunnel_new(1), *b = fake_tunnel_new(2);

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, a), 0);
	assert_int_equal(pool_add_joined(&p, b), 0);
	pool_remove(&p, a);
	/* The second remove neither drops another reference nor unlists b. */
	pool_remove(&p, a);
	assert_int_equal(refs_of(a), 1);
	assert_int_equal(refs_of(b), 2);
	assert_int_equal(pool_count(&p), 1);
	pool_remove(&p, b);
	pool_remove(&p, b);
	assert_int_equal(refs_of(b), 1);
	assert_int_equal(pool_count(&p), 0);
	pool_destroy(&p);
	tunnel_unref(a);
	tunnel_unref(b);
}

static void
test_pool_remove_of_unlisted_tunnel_changes_nothing(void **state)
{
	struct pool p;
	struct tunnel *listed = fake_tunnel_new(1), *other = fake_tunnel_new(2);

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, listed), 0);
	pool_remove(&p, other);
	assert_int_equal(pool_count(&p), 1);
	assert_int_equal(refs_of(listed), 2);
	assert_int_equal(refs_of(other), 1);
	pool_remove(&p, listed);
	pool_destroy(&p);
	tunnel_unref(listed);
	tunnel_unref(other);
}

static void
test_pool_pick_returns_the_tunnel_with_a_reference(void **state)
{
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1);
	struct tunnel *picked;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, t), 0);
	picked = pool_pick(&p, NULL);
	assert_ptr_equal(picked, t);
	assert_int_equal(refs_of(t), 3); /* the test's, the pool's, the pick's */
	/* A picked tunnel stays valid after it leaves the pool. */
	pool_remove(&p, t);
	assert_int_equal(refs_of(t), 2);
	assert_null(pool_pick(&p, NULL));
	tunnel_unref(picked);
	assert_int_equal(refs_of(t), 1);
	pool_destroy(&p);
	tunnel_unref(t);
}

/* Many random picks reach every tunnel, each about as often as the
 * others: 5 tunnels, 5000 picks, so each expects 1000 with a standard
 * deviation near 28; fewer than 500 would be a broken choice. */
static void
test_pool_pick_covers_every_tunnel(void **state)
{
	enum { N = 5, PICKS = 5000 };
	struct pool p;
	struct tunnel *t[N];
	int hits[N] = { 0 }, strangers = 0;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	for (int k = 0; k < PICKS; k++) {
		struct tunnel *picked = pool_pick(&p, NULL);
		int i = picked ? picked->id - 1 : -1;

		if (i >= 0 && i < N && picked == t[i])
			hits[i]++;
		else
			strangers++;
		if (picked != NULL)
			tunnel_unref(picked);
	}
	assert_int_equal(strangers, 0);
	for (int i = 0; i < N; i++) {
		assert_true(hits[i] >= PICKS / N / 2);
		assert_int_equal(refs_of(t[i]), 2);
		pool_remove(&p, t[i]);
		assert_int_equal(refs_of(t[i]), 1);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

/* More tunnels than the first allocation (8) holds: the array grows,
 * and removing from the middle keeps every other tunnel listed. */
static void
test_pool_count_follows_add_and_remove_past_growth(void **state)
{
	enum { N = 20 };
	struct pool p;
	struct tunnel *t[N];

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
		assert_int_equal(pool_count(&p), (size_t)i + 1);
	}
	for (int i = 0; i < N; i += 2)
		pool_remove(&p, t[i]);
	assert_int_equal(pool_count(&p), N / 2);
	for (int i = 0; i < N; i++)
		assert_int_equal(refs_of(t[i]), i % 2 ? 2 : 1);
	/* Only the odd ones can be picked now. */
	for (int k = 0; k < 200; k++) {
		struct tunnel *picked = pool_pick(&p, NULL);
		assert_non_null(picked);
		assert_int_equal(picked->id % 2, 0); /* ids are i + 1 */
		tunnel_unref(picked);
	}
	for (int i = 1; i < N; i += 2)
		pool_remove(&p, t[i]);
	assert_int_equal(pool_count(&p), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(refs_of(t[i]), 1);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

static void
test_pool_snapshot_of_empty_pool_is_null(void **state)
{
	struct pool p;
	struct tunnel **ts = (struct tunnel **)&p; /* must be overwritten */

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_snapshot(&p, &ts), 0);
	assert_null(ts);
	pool_destroy(&p);
}

static void
test_pool_snapshot_lists_each_tunnel_with_a_reference(void **state)
{
	enum { N = 3 };
	struct pool p;
	struct tunnel *t[N], **ts;
	size_t n;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	n = pool_snapshot(&p, &ts);
	assert_int_equal(n, N);
	assert_non_null(ts);
	for (int i = 0; i < N; i++) {
		int seen = 0;
		for (size_t k = 0; k < n; k++)
			seen += ts[k] == t[i];
		assert_int_equal(seen, 1);
		assert_int_equal(refs_of(t[i]), 3);
	}
	/* The snapshot is a copy: emptying the pool leaves it intact. */
	for (int i = 0; i < N; i++)
		pool_remove(&p, t[i]);
	assert_int_equal(pool_count(&p), 0);
	for (size_t k = 0; k < n; k++)
		tunnel_unref(ts[k]);
	free(ts);
	for (int i = 0; i < N; i++) {
		assert_int_equal(refs_of(t[i]), 1);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

static void
test_pool_wait_count_returns_at_once_when_enough_are_listed(void **state)
{
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1);

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_wait_count(&p, 0, 0), 0);
	assert_int_equal(pool_add_joined(&p, t), 0);
	assert_int_equal(pool_wait_count(&p, 1, 0), 0);
	pool_remove(&p, t);
	pool_destroy(&p);
	tunnel_unref(t);
}

static void
test_pool_wait_count_times_out(void **state)
{
	enum { TIMEOUT_MS = 50 };
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1);
	long long start, elapsed;
	int rc;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, t), 0);
	start = now_ms();
	rc = pool_wait_count(&p, 2, TIMEOUT_MS);
	elapsed = now_ms() - start;
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(elapsed >= TIMEOUT_MS - 1); /* now_ms() truncates */
	assert_true(elapsed < 5000);
	assert_int_equal(refs_of(t), 2);
	pool_remove(&p, t);
	pool_destroy(&p);
	tunnel_unref(t);
}

/* ---------------------------------------------------------------------
 * Joining and capacity.
 */

static const int all_strategies[] = { PTTH_BALANCE_RANDOM, PTTH_BALANCE_ROUND_ROBIN,
                                      PTTH_BALANCE_LEAST_BUSY };
#define STRATEGIES (sizeof all_strategies / sizeof all_strategies[0])

/* Sets what the tunnel thread would publish: the backend's limit and
 * the stream slots in use. */
static void
set_capacity(struct tunnel *t, unsigned int max, unsigned int used)
{
	atomic_store(&t->peer_max_streams, max);
	atomic_store(&t->streams_used, used);
}

/* A listed tunnel whose backend has not sent SETTINGS yet is never
 * picked nor counted, but the router's snapshot (to stop it) sees it. */
static void
test_pool_tunnel_is_neither_picked_nor_counted_before_it_joins(void **state)
{
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1), **ts;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	set_capacity(t, 0, 0); /* what tunnel_start() leaves before SETTINGS */
	assert_int_equal(pool_add(&p, t), 0);
	assert_null(pool_pick(&p, NULL));
	assert_int_equal(pool_count(&p), 0);
	assert_int_equal(pool_wait_count(&p, 1, 0), -ETIMEDOUT);
	assert_int_equal(pool_snapshot(&p, &ts), 1);
	assert_ptr_equal(ts[0], t);
	tunnel_unref(ts[0]);
	free(ts);
	/* SETTINGS arrive: the limit is published, then the tunnel joins. */
	set_capacity(t, 100, 0);
	assert_true(pool_join(&p, t));
	assert_false(pool_join(&p, t));
	assert_int_equal(pool_count(&p), 1);
	struct tunnel *picked = pool_pick(&p, NULL);
	assert_ptr_equal(picked, t);
	tunnel_unref(picked);
	/* A tunnel that left cannot join again. */
	pool_remove(&p, t);
	assert_false(pool_join(&p, t));
	assert_int_equal(pool_count(&p), 0);
	assert_int_equal(refs_of(t), 1);
	pool_destroy(&p);
	tunnel_unref(t);
}

/* Under every strategy, a tunnel whose streams are all in use is passed
 * over while another has a free stream; each pick takes a slot. */
static void
test_pool_pick_prefers_a_tunnel_with_a_free_stream(void **state)
{
	(void)state;
	for (size_t k = 0; k < STRATEGIES; k++) {
		struct pool p;
		struct tunnel *full = fake_tunnel_new(1), *room = fake_tunnel_new(2);

		pool_init(&p, all_strategies[k]);
		set_capacity(full, 2, 2);
		set_capacity(room, 100, 0);
		/* The busy one looks idle to least-busy: in_flight does not
		 * count streams, the slots do. */
		atomic_store(&room->in_flight, 5);
		assert_int_equal(pool_add_joined(&p, full), 0);
		assert_int_equal(pool_add_joined(&p, room), 0);
		for (int i = 0; i < 50; i++) {
			struct tunnel *t = pool_pick(&p, NULL);
			assert_ptr_equal(t, room);
			tunnel_unref(t);
		}
		assert_int_equal(atomic_load(&room->streams_used), 50);
		assert_int_equal(atomic_load(&full->streams_used), 2);
		pool_remove(&p, full);
		pool_remove(&p, room);
		pool_destroy(&p);
		tunnel_unref(full);
		tunnel_unref(room);
	}
}

/* When no tunnel has a free stream, the request is queued on one that
 * allows streams at all; a backend allowing none (SETTINGS_MAX_CONCURRENT_
 * STREAMS = 0) is never picked, and alone it means no tunnel. */
static void
test_pool_pick_queues_only_when_every_tunnel_is_full(void **state)
{
	(void)state;
	for (size_t k = 0; k < STRATEGIES; k++) {
		struct pool p;
		struct tunnel *none = fake_tunnel_new(1), *full = fake_tunnel_new(2);

		pool_init(&p, all_strategies[k]);
		set_capacity(none, 0, 0);
		set_capacity(full, 1, 1);
		assert_int_equal(pool_add_joined(&p, none), 0);
		assert_null(pool_pick(&p, NULL));
		assert_int_equal(pool_add_joined(&p, full), 0);
		for (int i = 0; i < 20; i++) {
			struct tunnel *t = pool_pick(&p, NULL);
			assert_ptr_equal(t, full);
			tunnel_unref(t);
		}
		assert_int_equal(atomic_load(&full->streams_used), 21);
		assert_int_equal(atomic_load(&none->streams_used), 0);
		/* The queue goes to a tunnel to avoid only if there is no other. */
		assert_null(pool_pick(&p, full));
		pool_remove(&p, none);
		pool_remove(&p, full);
		pool_destroy(&p);
		tunnel_unref(none);
		tunnel_unref(full);
	}
}

/* What a one-pick thread is given and what it got. */
struct one_pick {
	struct pool *p;
	pthread_barrier_t *start;
	struct tunnel *t;
};

static void *
one_pick_thread_main(void *arg)
{
	struct one_pick *op = arg;

	pthread_barrier_wait(op->start);
	op->t = pool_pick(op->p, NULL);
	return NULL;
}

/* N tunnels with one free stream each and N users picking at the same
 * moment: the slot is taken inside the pool's lock, so no two users get
 * the same last stream while another tunnel still had one. */
static void
test_pool_concurrent_picks_never_share_the_last_free_stream(void **state)
{
	enum { N = 4, ROUNDS = 200 };
	struct pool p;
	struct tunnel *t[N];
	struct one_pick op[N];
	pthread_t tid[N];
	pthread_barrier_t start;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		set_capacity(t[i], 1, 0);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	for (int round = 0; round < ROUNDS; round++) {
		int per_tunnel[N] = { 0 };
		assert_int_equal(pthread_barrier_init(&start, NULL, N), 0);
		for (int k = 0; k < N; k++) {
			op[k] = (struct one_pick){ .p = &p, .start = &start };
			assert_int_equal(pthread_create(&tid[k], NULL, one_pick_thread_main, &op[k]), 0);
		}
		for (int k = 0; k < N; k++)
			assert_int_equal(pthread_join(tid[k], NULL), 0);
		pthread_barrier_destroy(&start);
		for (int k = 0; k < N; k++) {
			assert_non_null(op[k].t);
			per_tunnel[op[k].t->id - 1]++;
			tunnel_unref(op[k].t);
		}
		for (int i = 0; i < N; i++) {
			assert_int_equal(per_tunnel[i], 1);
			set_capacity(t[i], 1, 0); /* the requests ended */
		}
	}
	for (int i = 0; i < N; i++) {
		pool_remove(&p, t[i]);
		assert_int_equal(refs_of(t[i]), 1);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

/* ---------------------------------------------------------------------
 * Wake-ups. A test of a wake-up must fail without it, and must not pass
 * by luck when the change lands before the waiter sleeps. So the changing
 * thread waits until the waiter is inside pthread_cond_timedwait(): the
 * wrapper below posts a semaphore as each timed wait begins, and the
 * change takes p->mu, which the waiter releases only inside the wait.
 * The wait's timeout is long (WAKE_TIMEOUT_MS); without the broadcast
 * the waiter would sleep all of it, so returning in less than half of
 * it proves the wake-up.
 */
/* wrap: pthread_cond_timedwait */
#define WAKE_TIMEOUT_MS 30000

int __real_pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mu,
                                  const struct timespec *deadline);

static sem_t *_Atomic timedwait_entered; /* posted when set; NULL otherwise */

int
__wrap_pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mu,
                              const struct timespec *deadline)
{
	sem_t *entered = atomic_load(&timedwait_entered);

	if (entered != NULL)
		sem_post(entered);
	return __real_pthread_cond_timedwait(cond, mu, deadline);
}

/* What a changer thread is given and what it did. */
struct adder {
	struct pool *p;
	struct tunnel *t;
	sem_t *waiting;  /* posted once the test thread sleeps on p->changed */
	int rc;
};

static void *
adder_thread_main(void *arg)
{
	struct adder *a = arg;

	while (sem_wait(a->waiting) < 0 && errno == EINTR)
		;
	a->rc = pool_add_joined(a->p, a->t);
	return NULL;
}

static void
test_pool_wait_count_returns_when_another_thread_adds(void **state)
{
	struct pool p;
	sem_t waiting;
	struct adder a = { .p = &p, .waiting = &waiting, .rc = -1 };
	pthread_t tid;
	long long start, elapsed;
	int rc;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	a.t = fake_tunnel_new(1);
	assert_int_equal(sem_init(&waiting, 0, 0), 0);
	atomic_store(&timedwait_entered, &waiting);
	assert_int_equal(pthread_create(&tid, NULL, adder_thread_main, &a), 0);
	start = now_ms();
	rc = pool_wait_count(&p, 1, WAKE_TIMEOUT_MS);
	elapsed = now_ms() - start;
	assert_int_equal(pthread_join(tid, NULL), 0);
	atomic_store(&timedwait_entered, NULL);
	sem_destroy(&waiting);
	print_message("woken after %lld ms\n", elapsed);
	assert_int_equal(a.rc, 0);
	assert_int_equal(rc, 0);
	assert_true(elapsed < WAKE_TIMEOUT_MS / 2);
	assert_int_equal(pool_count(&p), 1);
	assert_int_equal(refs_of(a.t), 2);
	pool_remove(&p, a.t);
	assert_int_equal(refs_of(a.t), 1);
	pool_destroy(&p);
	tunnel_unref(a.t);
}

static void
test_pool_round_robin_takes_each_tunnel_in_turn(void **state)
{
	enum { N = 3, CYCLES = 4 };
	struct pool p;
	struct tunnel *t[N], *seq[N * CYCLES];

	(void)state;
	pool_init(&p, PTTH_BALANCE_ROUND_ROBIN);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	for (int k = 0; k < N * CYCLES; k++) {
		seq[k] = pool_pick(&p, NULL);
		assert_non_null(seq[k]);
		tunnel_unref(seq[k]);
	}
	/* Every window of N consecutive picks holds each tunnel once, so the
	 * order repeats with period N. */
	for (int k = 0; k < N; k++)
		for (int j = k + 1; j < N; j++)
			assert_ptr_not_equal(seq[k], seq[j]);
	for (int k = N; k < N * CYCLES; k++)
		assert_ptr_equal(seq[k], seq[k - N]);
	for (int i = 0; i < N; i++) {
		assert_int_equal(refs_of(t[i]), 2);
		pool_remove(&p, t[i]);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

static void
test_pool_least_busy_picks_the_tunnel_with_fewest_in_flight(void **state)
{
	enum { N = 3 };
	struct pool p;
	struct tunnel *t[N];
	const int load[N] = { 5, 1, 3 };
	bool seen[N] = { false };

	(void)state;
	pool_init(&p, PTTH_BALANCE_LEAST_BUSY);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		atomic_store(&t[i]->in_flight, load[i]);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	for (int k = 0; k < 10; k++) {
		struct tunnel *picked = pool_pick(&p, NULL);
		assert_ptr_equal(picked, t[1]);
		tunnel_unref(picked);
	}
	/* All equally idle: ties rotate, so N picks reach every tunnel. */
	for (int i = 0; i < N; i++)
		atomic_store(&t[i]->in_flight, 0);
	for (int k = 0; k < N; k++) {
		struct tunnel *picked = pool_pick(&p, NULL);
		assert_non_null(picked);
		seen[picked->id - 1] = true;
		tunnel_unref(picked);
	}
	for (int i = 0; i < N; i++) {
		assert_true(seen[i]);
		assert_int_equal(refs_of(t[i]), 2);
		pool_remove(&p, t[i]);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

/* What a picker thread is given and what it saw. */
struct picker {
	struct pool *p;
	int rounds;
	int picked, empty;
};

static void *
picker_thread_main(void *arg)
{
	struct picker *pk = arg;

	for (int i = 0; i < pk->rounds; i++) {
		struct tunnel *t = pool_pick(pk->p, NULL);
		if (t == NULL) {
			pk->empty++;
			continue;
		}
		pk->picked++;
		tunnel_unref(t);
	}
	return NULL;
}

/* Pickers take and drop references while the test thread adds and
 * removes tunnels: no reference is lost or left behind. */
static void
test_pool_refcounts_return_to_baseline_after_concurrent_use(void **state)
{
	enum { N = 4, PICKERS = 4, ROUNDS = 20000, CHURN = 2000 };
	struct pool p;
	struct tunnel *t[N];
	struct picker pk[PICKERS];
	pthread_t tid[PICKERS];
	int picked = 0;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	for (int i = 0; i < N; i++) {
		t[i] = fake_tunnel_new(i + 1);
		assert_int_equal(pool_add_joined(&p, t[i]), 0);
	}
	for (int k = 0; k < PICKERS; k++) {
		pk[k] = (struct picker){ .p = &p, .rounds = ROUNDS };
		assert_int_equal(pthread_create(&tid[k], NULL, picker_thread_main, &pk[k]), 0);
	}
	/* Keep at least one tunnel listed, so that most picks succeed. */
	for (int c = 0; c < CHURN; c++) {
		struct tunnel *x = t[1 + c % (N - 1)];
		pool_remove(&p, x);
		assert_int_equal(pool_add_joined(&p, x), 0);
	}
	for (int k = 0; k < PICKERS; k++) {
		assert_int_equal(pthread_join(tid[k], NULL), 0);
		assert_int_equal(pk[k].empty, 0);
		picked += pk[k].picked;
	}
	assert_int_equal(picked, PICKERS * ROUNDS);
	assert_int_equal(pool_count(&p), N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(refs_of(t[i]), 2);
		pool_remove(&p, t[i]);
		assert_int_equal(refs_of(t[i]), 1);
		tunnel_unref(t[i]);
	}
	pool_destroy(&p);
}

/* A retry must go elsewhere: pool_pick never returns the tunnel to avoid
 * while another is listed, whatever the strategy, and returns NULL when
 * it is the only one. */
static void
test_pool_pick_avoids_the_given_tunnel(void **state)
{
	int strategies[] = { PTTH_BALANCE_RANDOM, PTTH_BALANCE_ROUND_ROBIN,
	                     PTTH_BALANCE_LEAST_BUSY };

	(void)state;
	for (size_t k = 0; k < sizeof strategies / sizeof strategies[0]; k++) {
		struct pool p;
		struct tunnel *a = fake_tunnel_new(1), *b = fake_tunnel_new(2);

		pool_init(&p, strategies[k]);
		assert_int_equal(pool_add_joined(&p, a), 0);
		assert_null(pool_pick(&p, a));
		assert_int_equal(pool_add_joined(&p, b), 0);
		for (int i = 0; i < 100; i++) {
			struct tunnel *t = pool_pick(&p, a);
			assert_ptr_equal(t, b);
			tunnel_unref(t);
		}
		pool_remove(&p, a);
		pool_remove(&p, b);
		pool_destroy(&p);
		tunnel_unref(a);
		tunnel_unref(b);
	}
}

static void *
remover_thread_main(void *arg)
{
	struct adder *a = arg;

	while (sem_wait(a->waiting) < 0 && errno == EINTR)
		;
	pool_remove(a->p, a->t);
	return NULL;
}

/* pool_wait_at_most() times out while too many are listed, and returns
 * once another thread removes one (no polling: it sleeps on p->changed,
 * and the removal must wake it, see WAKE_TIMEOUT_MS). */
static void
test_pool_wait_at_most_returns_when_another_thread_removes(void **state)
{
	struct pool p;
	struct tunnel *t = fake_tunnel_new(1);
	sem_t waiting;
	struct adder a = { .p = &p, .t = t, .waiting = &waiting };
	pthread_t thread;
	long long start, elapsed;

	(void)state;
	pool_init(&p, PTTH_BALANCE_RANDOM);
	assert_int_equal(pool_add_joined(&p, t), 0);
	assert_int_equal(pool_wait_at_most(&p, 1, 0), 0);
	assert_int_equal(pool_wait_at_most(&p, 0, 50), -ETIMEDOUT);
	assert_int_equal(sem_init(&waiting, 0, 0), 0);
	atomic_store(&timedwait_entered, &waiting);
	assert_int_equal(pthread_create(&thread, NULL, remover_thread_main, &a), 0);
	start = now_ms();
	int rc = pool_wait_at_most(&p, 0, WAKE_TIMEOUT_MS);
	elapsed = now_ms() - start;
	pthread_join(thread, NULL);
	atomic_store(&timedwait_entered, NULL);
	sem_destroy(&waiting);
	print_message("woken after %lld ms\n", elapsed);
	assert_int_equal(rc, 0);
	assert_true(elapsed < WAKE_TIMEOUT_MS / 2);
	assert_int_equal(pool_count(&p), 0);
	pool_destroy(&p);
	tunnel_unref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_wait_at_most_returns_when_another_thread_removes),
		cmocka_unit_test(test_pool_pick_avoids_the_given_tunnel),
		cmocka_unit_test(test_pool_pick_on_empty_returns_null),
		cmocka_unit_test(test_pool_add_takes_a_reference_and_remove_drops_it),
		cmocka_unit_test(test_pool_remove_is_idempotent),
		cmocka_unit_test(test_pool_remove_of_unlisted_tunnel_changes_nothing),
		cmocka_unit_test(test_pool_pick_returns_the_tunnel_with_a_reference),
		cmocka_unit_test(test_pool_pick_covers_every_tunnel),
		cmocka_unit_test(test_pool_count_follows_add_and_remove_past_growth),
		cmocka_unit_test(test_pool_snapshot_of_empty_pool_is_null),
		cmocka_unit_test(test_pool_snapshot_lists_each_tunnel_with_a_reference),
		cmocka_unit_test(test_pool_wait_count_returns_at_once_when_enough_are_listed),
		cmocka_unit_test(test_pool_wait_count_times_out),
		cmocka_unit_test(test_pool_wait_count_returns_when_another_thread_adds),
		cmocka_unit_test(test_pool_round_robin_takes_each_tunnel_in_turn),
		cmocka_unit_test(test_pool_least_busy_picks_the_tunnel_with_fewest_in_flight),
		cmocka_unit_test(test_pool_refcounts_return_to_baseline_after_concurrent_use),
		cmocka_unit_test(test_pool_tunnel_is_neither_picked_nor_counted_before_it_joins),
		cmocka_unit_test(test_pool_pick_prefers_a_tunnel_with_a_free_stream),
		cmocka_unit_test(test_pool_pick_queues_only_when_every_tunnel_is_full),
		cmocka_unit_test(test_pool_concurrent_picks_never_share_the_last_free_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
