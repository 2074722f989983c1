/* Cache ledger: a chained hash table on the chunk id (ids are hashes
 * already: their first bytes are the bucket), grown at load 1. Victims
 * are chosen by sorting a copy of the entries by stamp: eviction runs
 * rarely (the cache evicts down to a low-water mark), so an LRU list
 * kept on every use would cost more than it saves. */
#include <errno.h>
#include <stdlib.h>

#include "cache_ledger.h"

struct ledger_entry {
	cairn_id id;
	uint64_t bytes;
	int64_t stamp;
	struct ledger_entry *next;
};

struct cache_ledger {
	struct ledger_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t bytes;
};

static size_t bucket_of(const struct cache_ledger *l, const cairn_id *id)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h));
	return (size_t)(h & (l->nbuckets - 1));
}

int cache_ledger_new(struct cache_ledger **out)
{
	struct cache_ledger *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->nbuckets = 256;
	if (!(l->buckets = calloc(l->nbuckets, sizeof(*l->buckets)))) {
		free(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

void cache_ledger_clear(struct cache_ledger *l)
{
	for (size_t i = 0; i < l->nbuckets; i++) {
		for (struct ledger_entry *e = l->buckets[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
		l->buckets[i] = NULL;
	}
	l->count = 0;
	l->bytes = 0;
}

void cache_ledger_free(struct cache_ledger *l)
{
	if (!l)
		return;
	cache_ledger_clear(l);
	free(l->buckets);
	free(l);
}

static struct ledger_entry **find(const struct cache_ledger *l, const cairn_id *id)
{
	struct ledger_entry **p = &l->buckets[bucket_of(l, id)];
	while (*p && memcmp(&(*p)->id, id, sizeof(*id)))
		p = &(*p)->next;
	return p;
}

/* Doubles the table; staying at the old size only costs longer chains. */
static void grow(struct cache_ledger *l)
{
	size_t n = l->nbuckets * 2;
	struct ledger_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	struct ledger_entry **old = l->buckets;
	size_t oldn = l->nbuckets;
	l->buckets = b;
	l->nbuckets = n;
	for (size_t i = 0; i < oldn; i++)
		for (struct ledger_entry *e = old[i], *next; e; e = next) {
			next = e->next;
			size_t k = bucket_of(l, &e->id);
			e->next = b[k];
			b[k] = e;
		}
	free(old);
}

int cache_ledger_set(struct cache_ledger *l, const cairn_id *id, uint64_t bytes, int64_t stamp)
{
	struct ledger_entry **p = find(l, id);
	if (*p) {
		l->bytes = l->bytes - (*p)->bytes + bytes;
		(*p)->bytes = bytes;
		(*p)->stamp = stamp;
		return 0;
	}
	struct ledger_entry *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	*e = (struct ledger_entry){ .id = *id, .bytes = bytes, .stamp = stamp, .next = NULL };
	*p = e;
	l->count++;
	l->bytes += bytes;
	if (l->count > l->nbuckets)
		grow(l);
	return 0;
}

void cache_ledger_touch(struct cache_ledger *l, const cairn_id *id, int64_t stamp)
{
	struct ledger_entry *e = *find(l, id);
	if (e && e->stamp < stamp)
		e->stamp = stamp;
}

void cache_ledger_remove(struct cache_ledger *l, const cairn_id *id)
{
	struct ledger_entry **p = find(l, id), *e = *p;
	if (!e)
		return;
	*p = e->next;
	l->count--;
	l->bytes -= e->bytes;
	free(e);
}

uint64_t cache_ledger_bytes(const struct cache_ledger *l)
{
	return l->bytes;
}

size_t cache_ledger_count(const struct cache_ledger *l)
{
	return l->count;
}

static int by_stamp(const void *a, const void *b)
{
	const struct ledger_entry *x = *(const struct ledger_entry *const *)a;
	const struct ledger_entry *y = *(const struct ledger_entry *const *)b;
	if (x->stamp != y->stamp)
		return x->stamp < y->stamp ? -1 : 1;
	return memcmp(&x->id, &y->id, sizeof(x->id)); /* a stable order for ties */
}

long cache_ledger_victims(const struct cache_ledger *l, uint64_t target, cairn_id **out)
{
	*out = NULL;
	if (l->bytes <= target)
		return 0;
	struct ledger_entry **all = malloc(l->count * sizeof(*all));
	if (!all)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < l->nbuckets; i++)
		for (struct ledger_entry *e = l->buckets[i]; e; e = e->next)
			all[n++] = e;
	qsort(all, n, sizeof(*all), by_stamp);
	size_t k = 0;
	for (uint64_t left = l->bytes; k < n && left > target; k++)
		left -= all[k]->bytes;
	cairn_id *ids = malloc(k * sizeof(*ids));
	if (!ids) {
		free(all);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++)
		ids[i] = all[i]->id;
	free(all);
	*out = ids;
	return (long)k;
}
