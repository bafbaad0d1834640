/* workers.h -- a pool of threads that grows on demand, for handlers. See workers.c. */
#ifndef PTTH_WORKERS_H
#define PTTH_WORKERS_H

#include <pthread.h>
#include <stdbool.h>

#include "queue.h"

struct workers {
	struct queue jobs;          /* has its own lock */
	void (*run)(void *job);     /* set at init, read-only */
	int max;                    /* most threads ever started */

	pthread_mutex_t mu;         /* lock order: taken alone, never nested */
	/* guarded by mu: */
	pthread_t *threads;
	int count;                  /* threads started */
	int idle;                   /* threads waiting for a job */
	int pending;                /* jobs pushed and not yet taken */
};

int workers_init(struct workers *w, void (*run)(void *job), int max, int queue_size);
int workers_submit(struct workers *w, void *job);
void workers_stop(struct workers *w);

#endif
