/* Write-behind for the blob cache: a FIFO of copied chunks under a mutex,
 * drained by one thread. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cache_writer.h"

struct entry {
	struct entry *next;
	cairn_id id;
	struct cairn_stored_blob sb; /* .bytes: bytes[] */
	uint8_t bytes[];
};

struct cache_writer {
	struct blob_cache *bc;
	size_t max_bytes, queued_bytes;
	struct entry *head, *tail;
	uint64_t dropped;
	bool stop, started;
	pthread_mutex_t lock;
	pthread_cond_t work;
	pthread_t thread;
};

int cache_writer_new(struct blob_cache *bc, size_t max_bytes, struct cache_writer **out)
{
	struct cache_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->bc = bc;
	w->max_bytes = max_bytes;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	*out = w;
	return 0;
}

/* Takes the queue's first entry, waiting for one; NULL once stopped with
 * nothing left. */
static struct entry *next_entry(struct cache_writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->head && !w->stop)
		pthread_cond_wait(&w->work, &w->lock);
	struct entry *e = w->head;
	if (e) {
		w->head = e->next;
		if (!w->head)
			w->tail = NULL;
		w->queued_bytes -= e->sb.len;
	}
	pthread_mutex_unlock(&w->lock);
	return e;
}

static void *writer(void *arg)
{
	struct cache_writer *w = arg;
	struct entry *e;
	while ((e = next_entry(w))) {
		blob_cache_put(w->bc, &e->id, &e->sb); /* best effort */
		free(e);
	}
	return NULL;
}

int cache_writer_start(struct cache_writer *w)
{
	if (w->started)
		return 0;
	int rc = pthread_create(&w->thread, NULL, writer, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

int cache_writer_queue(struct cache_writer *w, const cairn_id *id,
		       const struct cairn_stored_blob *b)
{
	if (!w->started)
		return blob_cache_put(w->bc, id, b);
	/* copied before the lock: the readers queue side by side */
	struct entry *e = malloc(sizeof(*e) + b->len);
	if (!e)
		return -ENOMEM;
	e->next = NULL;
	e->id = *id;
	e->sb = *b;
	e->sb.bytes = e->bytes;
	memcpy(e->bytes, b->bytes, b->len);
	pthread_mutex_lock(&w->lock);
	bool room = w->queued_bytes + b->len <= w->max_bytes;
	if (room) {
		w->queued_bytes += b->len;
		if (w->tail)
			w->tail->next = e;
		else
			w->head = e;
		w->tail = e;
		pthread_cond_signal(&w->work);
	} else {
		w->dropped++;
	}
	pthread_mutex_unlock(&w->lock);
	if (!room)
		free(e);
	return room ? 0 : -ENOBUFS;
}

uint64_t cache_writer_dropped(struct cache_writer *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t n = w->dropped;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void cache_writer_free(struct cache_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL); /* it drains the queue first */
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->work);
	free(w);
}
