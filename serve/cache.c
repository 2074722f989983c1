/* Chunk cache: a hash table on the chunk number plus an LRU list, under one
 * mutex; decoding happens outside the lock, a condition variable wakes the
 * threads waiting for a load. */
#include <errno.h>
#include <pthread.h>

#include "cache.h"
#include "base/util.h"

enum entry_state { LOADING, READY, FAILED };

struct chunk_entry {
	uint64_t seq;
	enum entry_state state;
	int rc; /* FAILED: why */
	unsigned refs;
	uint8_t *data;
	struct chunk_entry *hnext; /* hash chain */
	struct chunk_entry *prev, *next; /* LRU, most recent first */
};

struct chunk_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	size_t chunk_size;
	size_t cap, count; /* entries in the table */
	size_t nbuckets; /* power of two */
	struct chunk_entry **buckets;
	struct chunk_entry *head, *tail;
};

int chunk_cache_new(size_t chunk_size, size_t max_bytes, struct chunk_cache **out)
{
	struct chunk_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->chunk_size = chunk_size;
	c->cap = MAX(max_bytes / chunk_size, (size_t)4);
	c->nbuckets = 16;
	while (c->nbuckets < 2 * c->cap)
		c->nbuckets *= 2;
	if (!(c->buckets = calloc(c->nbuckets, sizeof(*c->buckets)))) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->loaded, NULL);
	*out = c;
	return 0;
}

static void entry_free(struct chunk_entry *e)
{
	free(e->data);
	free(e);
}

void chunk_cache_free(struct chunk_cache *c)
{
	if (!c)
		return;
	for (struct chunk_entry *e = c->head, *n; e; e = n) {
		n = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->loaded);
	free(c->buckets);
	free(c);
}

static struct chunk_entry **slot(struct chunk_cache *c, uint64_t seq)
{
	uint64_t h = seq * 0x9e3779b97f4a7c15ull;
	return &c->buckets[(h >> 32) & (c->nbuckets - 1)];
}

static void lru_unlink(struct chunk_cache *c, struct chunk_entry *e)
{
	*(e->prev ? &e->prev->next : &c->head) = e->next;
	*(e->next ? &e->next->prev : &c->tail) = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct chunk_cache *c, struct chunk_entry *e)
{
	e->next = c->head;
	e->prev = NULL;
	*(c->head ? &c->head->prev : &c->tail) = e;
	c->head = e;
}

/* Takes e out of the table; it stays alive while someone holds it. */
static void unlink_entry(struct chunk_cache *c, struct chunk_entry *e)
{
	struct chunk_entry **p = slot(c, e->seq);
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	lru_unlink(c, e);
	c->count--;
}

static struct chunk_entry *lookup(struct chunk_cache *c, uint64_t seq)
{
	for (struct chunk_entry *e = *slot(c, seq); e; e = e->hnext)
		if (e->seq == seq)
			return e;
	return NULL;
}

/* The least recently used entry nobody holds, taken out of the table to
 * recycle its buffer; NULL when all are in use. */
static struct chunk_entry *evict_one(struct chunk_cache *c)
{
	for (struct chunk_entry *e = c->tail; e; e = e->prev)
		if (!e->refs && e->state == READY) {
			unlink_entry(c, e);
			return e;
		}
	return NULL;
}

static struct chunk_entry *insert_loading(struct chunk_cache *c, uint64_t seq)
{
	struct chunk_entry *e = c->count >= c->cap ? evict_one(c) : NULL;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (e && !(e->data = aligned_alloc(4096, c->chunk_size))) {
			free(e);
			e = NULL;
		}
		if (!e)
			return NULL;
	}
	e->seq = seq;
	e->state = LOADING;
	e->rc = 0;
	e->refs = 1;
	struct chunk_entry **p = slot(c, seq);
	e->hnext = *p;
	*p = e;
	lru_push_front(c, e);
	c->count++;
	return e;
}

int chunk_cache_acquire(struct chunk_cache *c, uint64_t seq, bool wait,
			struct chunk_ref *ref)
{
	int rc;
	pthread_mutex_lock(&c->lock);
	struct chunk_entry *e = lookup(c, seq);
	if (!e) {
		e = insert_loading(c, seq);
		rc = e ? 1 : -ENOMEM;
	} else if (e->state == LOADING && !wait) {
		rc = -EAGAIN;
	} else {
		e->refs++;
		lru_unlink(c, e);
		lru_push_front(c, e);
		while (e->state == LOADING)
			pthread_cond_wait(&c->loaded, &c->lock);
		rc = e->state == READY ? 0 : e->rc;
		if (rc < 0 && --e->refs == 0)
			entry_free(e);
	}
	pthread_mutex_unlock(&c->lock);
	ref->e = rc >= 0 ? e : NULL;
	ref->data = rc >= 0 ? e->data : NULL;
	return rc;
}

void chunk_cache_publish(struct chunk_cache *c, struct chunk_ref *ref, int rc)
{
	struct chunk_entry *e = ref->e;
	pthread_mutex_lock(&c->lock);
	if (rc < 0) {
		/* out of the table now, freed by the last holder */
		unlink_entry(c, e);
		e->state = FAILED;
		e->rc = rc;
	} else {
		e->state = READY;
	}
	pthread_cond_broadcast(&c->loaded);
	pthread_mutex_unlock(&c->lock);
}

void chunk_cache_release(struct chunk_cache *c, struct chunk_ref *ref)
{
	struct chunk_entry *e = ref->e;
	if (!e)
		return;
	pthread_mutex_lock(&c->lock);
	bool gone = --e->refs == 0 && e->state == FAILED;
	pthread_mutex_unlock(&c->lock);
	if (gone)
		entry_free(e);
	ref->e = NULL;
	ref->data = NULL;
}
