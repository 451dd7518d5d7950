/* SPDX-License-Identifier: MIT */
/* par.c - see par.h.  One mutex guards a small stack of queued parts; each
 * par_for() call waits on its own condition variable (on its stack: the
 * helpers signal it under the mutex, and the caller leaves only once its
 * count is zero, so the signal never outlives it). */
#include "par.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define PAR_QUEUE 64u

struct par_task {
	unsigned pending;            /* parts queued or running; under par.lock */
	pthread_cond_t done;
};

struct par_job {
	par_fn fn;
	void *arg;
	size_t from, to;
	struct par_task *task;
};

struct par {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct par_job q[PAR_QUEUE];
	unsigned len;                /* queued jobs */
	int stop;
	unsigned nthreads;
	pthread_t th[];
};

/* Under p->lock. */
static void job_finished(struct par_task *t)
{
	if (--t->pending == 0)
		pthread_cond_signal(&t->done);
}

static void *helper_main(void *arg)
{
	struct par *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct par_job j;

		while (!p->stop && p->len == 0)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		j = p->q[--p->len];
		pthread_mutex_unlock(&p->lock);
		j.fn(j.arg, j.from, j.to);
		pthread_mutex_lock(&p->lock);
		job_finished(j.task);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int par_create(struct par **out, unsigned helpers)
{
	struct par *p = calloc(1, sizeof(*p) + helpers * sizeof(pthread_t));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	for (; p->nthreads < helpers; p->nthreads++)
		if (pthread_create(&p->th[p->nthreads], NULL, helper_main, p) != 0)
			break;     /* fewer helpers is still correct */
	*out = p;
	return 0;
}

void par_destroy(struct par *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void par_for(struct par *p, size_t n, size_t min_part, par_fn fn, void *arg)
{
	struct par_task t = { 0 };
	size_t parts = min_part ? n / min_part : n, step, queued;

	if (p && parts > p->nthreads + 1)
		parts = p->nthreads + 1;
	if (!p || parts < 2) {
		fn(arg, 0, n);
		return;
	}
	step = (n + parts - 1) / parts;
	pthread_cond_init(&t.done, NULL);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 1; i < parts && p->len < PAR_QUEUE; i++) {
		size_t to = (i + 1) * step < n ? (i + 1) * step : n;

		p->q[p->len++] = (struct par_job){ fn, arg, i * step, to, &t };
		t.pending++;
	}
	queued = t.pending;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	fn(arg, 0, step);
	/* Parts the queue had no room for (rare: many concurrent callers). */
	for (size_t i = 1 + queued; i < parts; i++)
		fn(arg, i * step, (i + 1) * step < n ? (i + 1) * step : n);
	pthread_mutex_lock(&p->lock);
	while (t.pending) {
		unsigned k;

		for (k = 0; k < p->len && p->q[k].task != &t; k++)
			;
		if (k == p->len) {
			pthread_cond_wait(&t.done, &p->lock);
			continue;
		}
		struct par_job j = p->q[k];      /* not picked up yet: do it here */

		p->q[k] = p->q[--p->len];
		pthread_mutex_unlock(&p->lock);
		j.fn(j.arg, j.from, j.to);
		pthread_mutex_lock(&p->lock);
		job_finished(&t);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_cond_destroy(&t.done);
}
