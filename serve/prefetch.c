/* Prefetch pool: a ring of pending slot ranges under a mutex. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "prefetch.h"
#include "base/util.h"

struct range {
	uint64_t first, count;
};

struct prefetcher {
	pthread_mutex_t lock;
	pthread_cond_t work;
	prefetch_fn fn;
	void *opaque;
	struct range *ring;
	size_t cap, head, len;
	bool stop;
	volatile int stopping; /* stop, as the loads see it */
	unsigned workers, started;
	pthread_t *threads;
};

int prefetcher_new(unsigned workers, size_t queue_len, prefetch_fn fn, void *opaque,
		   struct prefetcher **out)
{
	struct prefetcher *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ring = calloc(queue_len ? queue_len : 1, sizeof(*p->ring));
	p->threads = calloc(workers ? workers : 1, sizeof(*p->threads));
	if (!p->ring || !p->threads) {
		free(p->ring);
		free(p->threads);
		free(p);
		return -ENOMEM;
	}
	p->cap = queue_len ? queue_len : 1;
	p->workers = workers;
	p->fn = fn;
	p->opaque = opaque;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	*out = p;
	return 0;
}

static void *worker(void *arg)
{
	struct prefetcher *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && !p->len)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		struct range job = p->ring[p->head];
		p->head = (p->head + 1) % p->cap;
		p->len--;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->opaque, job.first, job.count, &p->stopping);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int prefetcher_start(struct prefetcher *p)
{
	for (; p->started < p->workers; p->started++) {
		int rc = pthread_create(&p->threads[p->started], NULL, worker, p);
		if (rc)
			return -rc;
	}
	return 0;
}

void prefetcher_queue(struct prefetcher *p, uint64_t first, uint64_t count)
{
	pthread_mutex_lock(&p->lock);
	bool pending = false;
	for (size_t i = 0; i < p->len && !pending; i++)
		pending = p->ring[(p->head + i) % p->cap].first == first;
	if (!pending && p->len < p->cap && p->started) {
		p->ring[(p->head + p->len) % p->cap] = (struct range){ first, count };
		p->len++;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
}

void prefetcher_free(struct prefetcher *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	free(p->ring);
	free(p->threads);
	free(p);
}
