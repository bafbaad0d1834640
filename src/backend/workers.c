/*
 * workers.c -- a pool of handler threads that grows on demand: a job
 * never waits for a busy thread while the pool may still grow, so one
 * slow handler cannot hold up the others; an idle thread is reused, so a
 * busy backend does not pay for a new thread per request.
 *
 * Owns:    its threads (joined by workers_stop) and the job queue; jobs
 *          belong to the run function once taken.
 * Threads: the backend's tunnel thread submits; "ptth-handler" threads run
 *          jobs; the thread that stops the backend calls workers_stop().
 * Locks:   w->mu guards the thread list and the counters; the queue has
 *          its own lock. w->mu is never held while pushing or popping.
 * Interface:
 *   - workers_submit(): queue a job; start a thread when no idle one is
 *     left to take it (up to max);
 *   - workers_stop(): close the queue, let running jobs finish, join all.
 * Tutorial: "The backend answers".
 */
#include <errno.h>
#include <stdlib.h>

#include "lock.h"
#include "workers.h"

int
workers_init(struct workers *w, void (*run)(void *job), int max, int queue_size)
{
	int rc = queue_init(&w->jobs, (size_t)queue_size);

	if (rc < 0)
		return rc;
	w->run = run;
	w->max = max;
	mutex_init(&w->mu);
	w->threads = NULL;
	w->count = w->idle = w->pending = 0;
	return 0;
}

/* A handler thread: take a job, run it, repeat until the queue closes. */
static void *
workers_thread_main(void *arg)
{
	struct workers *w = arg;
	void *job;

	pthread_setname_np(pthread_self(), "ptth-handler");
	for (;;) {
		mutex_lock(&w->mu);
		w->idle++;
		mutex_unlock(&w->mu);
		job = queue_pop_wait(&w->jobs);
		mutex_lock(&w->mu);
		w->idle--;
		if (job != NULL)
			w->pending--;
		mutex_unlock(&w->mu);
		if (job == NULL)
			return NULL;
		w->run(job);
	}
}

/* Starts one more thread. Caller must hold w->mu. Returns 0 or -errno. */
static int
workers_grow_locked(struct workers *w)
{
	pthread_t *threads = realloc(w->threads, (size_t)(w->count + 1) * sizeof *threads);
	int rc;

	if (threads == NULL)
		return -ENOMEM;
	w->threads = threads;
	rc = pthread_create(&w->threads[w->count], NULL, workers_thread_main, w);
	if (rc != 0)
		return -rc;
	w->count++;
	return 0;
}

/* Queues job; ownership passes to the run function. A thread is
 * started first when no idle one is left for it. Returns 0, -EAGAIN when
 * the queue is full, -EPIPE after stop, or -errno when no thread exists
 * and none can be started. On failure the caller still owns job. */
int
workers_submit(struct workers *w, void *job)
{
	int rc = 0;

	mutex_lock(&w->mu);
	/* Every pending job needs a thread that is idle or about to be. */
	if (w->pending + 1 > w->idle && w->count < w->max)
		rc = workers_grow_locked(w);
	if (rc < 0 && w->count > 0)
		rc = 0; /* the job waits for a running thread */
	if (rc == 0)
		w->pending++;
	mutex_unlock(&w->mu);
	if (rc < 0)
		return rc;
	rc = queue_push(&w->jobs, job);
	if (rc < 0) {
		mutex_lock(&w->mu);
		w->pending--;
		mutex_unlock(&w->mu);
	}
	return rc;
}

/* Closes the queue; threads finish the jobs they hold and the jobs still
 * queued, then exit; joins them all. The only submitter (the tunnel
 * thread) has ended before this is called. */
void
workers_stop(struct workers *w)
{
	queue_close(&w->jobs);
	for (int i = 0; i < w->count; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	w->threads = NULL;
	w->count = 0;
	queue_destroy(&w->jobs);
	mutex_destroy(&w->mu);
}
