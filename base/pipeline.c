#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_DONE };

struct pipeline {
	const struct cairn_pipeline_ops *ops;
	void *ctx;
	unsigned nslots;
	pthread_mutex_t lock;
	pthread_cond_t work_ready, work_done;
	enum slot_state *state;
	int *rc;
	uint64_t next_work; /* next sequence number a worker takes */
	uint64_t queued; /* sequence numbers below this are queued */
	bool stop;
};

static void *worker_main(void *arg)
{
	struct pipeline *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && p->next_work == p->queued)
			pthread_cond_wait(&p->work_ready, &p->lock);
		if (p->stop)
			break;
		uint64_t seq = p->next_work++;
		unsigned slot = (unsigned)(seq % p->nslots);
		pthread_mutex_unlock(&p->lock);
		int rc = p->ops->work(p->ctx, seq, slot);
		pthread_mutex_lock(&p->lock);
		p->rc[slot] = rc;
		p->state[slot] = SLOT_DONE;
		pthread_cond_broadcast(&p->work_done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int run_loop(struct pipeline *p, uint64_t count)
{
	uint64_t produced = 0, consumed = 0;
	while (consumed < count) {
		while (produced < count && produced - consumed < p->nslots) {
			unsigned slot = (unsigned)(produced % p->nslots);
			int rc = p->ops->produce ? p->ops->produce(p->ctx, produced, slot) : 0;
			if (rc < 0)
				return rc;
			pthread_mutex_lock(&p->lock);
			p->state[slot] = SLOT_QUEUED;
			p->queued = ++produced;
			pthread_cond_signal(&p->work_ready);
			pthread_mutex_unlock(&p->lock);
		}
		unsigned slot = (unsigned)(consumed % p->nslots);
		pthread_mutex_lock(&p->lock);
		while (p->state[slot] != SLOT_DONE)
			pthread_cond_wait(&p->work_done, &p->lock);
		int rc = p->rc[slot];
		pthread_mutex_unlock(&p->lock);
		if (rc == 0 && p->ops->consume)
			rc = p->ops->consume(p->ctx, consumed, slot);
		if (rc < 0)
			return rc;
		pthread_mutex_lock(&p->lock);
		p->state[slot] = SLOT_FREE;
		pthread_mutex_unlock(&p->lock);
		consumed++;
	}
	return 0;
}

int cairn_pipeline_run(const struct cairn_pipeline_ops *ops, void *ctx,
		       uint64_t count, unsigned workers, unsigned slots)
{
	struct pipeline p = { .ops = ops, .ctx = ctx, .nslots = slots ? slots : 1 };
	pthread_t *threads = calloc(workers ? workers : 1, sizeof(*threads));
	p.state = calloc(p.nslots, sizeof(*p.state));
	p.rc = calloc(p.nslots, sizeof(*p.rc));
	int rc = threads && p.state && p.rc ? 0 : -ENOMEM;
	unsigned started = 0;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.work_ready, NULL);
	pthread_cond_init(&p.work_done, NULL);
	for (; rc == 0 && started < (workers ? workers : 1); started++)
		if (pthread_create(&threads[started], NULL, worker_main, &p))
			rc = -EAGAIN;
	if (rc == 0)
		rc = run_loop(&p, count);
	/* workers finish the item they hold (slots are caller state), then
	 * see stop and take no more */
	pthread_mutex_lock(&p.lock);
	p.stop = true;
	pthread_cond_broadcast(&p.work_ready);
	pthread_mutex_unlock(&p.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.work_ready);
	pthread_cond_destroy(&p.work_done);
	free(threads);
	free(p.state);
	free(p.rc);
	return rc;
}

unsigned cairn_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void *beside_run(void *opaque)
{
	struct cairn_beside *b = opaque;
	b->fn(b->arg);
	return NULL;
}

void cairn_beside_start(struct cairn_beside *b, void (*fn)(void *arg), void *arg)
{
	b->fn = fn;
	b->arg = arg;
	b->started = !pthread_create(&b->tid, NULL, beside_run, b);
	if (!b->started)
		fn(arg);
}

void cairn_beside_join(struct cairn_beside *b)
{
	if (b->started)
		pthread_join(b->tid, NULL);
	b->started = false;
}
