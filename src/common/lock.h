/*
 * lock.h -- checked wrappers around pthread mutexes and condition
 * variables. A failing lock or unlock is a bug in our code (a lock used
 * after destroy, unlocked twice), never an I/O condition, so it aborts
 * with the name of the call: a broken invariant, the third failure
 * tier of docs/ARCHITECTURE.md ("Failures").
 */
#ifndef PTTH_LOCK_H
#define PTTH_LOCK_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

static inline void
lock_check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "ptth: %s failed: %s\n", what, strerror(rc));
		abort();
	}
}

#define mutex_init(m)        lock_check(pthread_mutex_init((m), NULL), "pthread_mutex_init")
#define mutex_destroy(m)     lock_check(pthread_mutex_destroy(m), "pthread_mutex_destroy")
#define mutex_lock(m)        lock_check(pthread_mutex_lock(m), "pthread_mutex_lock")
#define mutex_unlock(m)      lock_check(pthread_mutex_unlock(m), "pthread_mutex_unlock")
#define cond_destroy(c)      lock_check(pthread_cond_destroy(c), "pthread_cond_destroy")
#define cond_wait(c, m)      lock_check(pthread_cond_wait((c), (m)), "pthread_cond_wait")
#define cond_signal(c)       lock_check(pthread_cond_signal(c), "pthread_cond_signal")
#define cond_broadcast(c)    lock_check(pthread_cond_broadcast(c), "pthread_cond_broadcast")

/* Condition variables use CLOCK_MONOTONIC so that timed waits do not
 * jump when the wall clock is set. */
static inline void
cond_init(pthread_cond_t *c)
{
	pthread_condattr_t attr;

	lock_check(pthread_condattr_init(&attr), "pthread_condattr_init");
	lock_check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC),
	           "pthread_condattr_setclock");
	lock_check(pthread_cond_init(c, &attr), "pthread_cond_init");
	pthread_condattr_destroy(&attr);
}

/* Waits on c until the absolute CLOCK_MONOTONIC time deadline.
 * Returns 0 when signalled, ETIMEDOUT when the deadline passed. */
static inline int
cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *deadline)
{
	int rc = pthread_cond_timedwait(c, m, deadline);

	if (rc != 0 && rc != ETIMEDOUT)
		lock_check(rc, "pthread_cond_timedwait");
	return rc;
}

/* Returns now + ms on CLOCK_MONOTONIC. */
static inline struct timespec
deadline_after_ms(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Milliseconds on CLOCK_MONOTONIC, for poll() timeouts. */
static inline long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
