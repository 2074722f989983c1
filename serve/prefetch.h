/* A small pool of threads that runs a load function on chunk numbers handed
 * to it, ahead of the reads that will want them. Best effort: a full queue
 * drops new work, and a failed load is the loader's business (a real read
 * of that chunk will try again and report it). */
#ifndef CAIRN_SERVE_PREFETCH_H
#define CAIRN_SERVE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

typedef void (*prefetch_fn)(void *opaque, uint64_t seq);

struct prefetcher;

/* workers threads (started by prefetcher_start), up to queue_len pending
 * chunk numbers. 0 or -ENOMEM. */
int prefetcher_new(unsigned workers, size_t queue_len, prefetch_fn fn, void *opaque,
		   struct prefetcher **out);
/* Starts the threads: separate from _new because a server that forks into
 * the background must start them in the child. 0 or a negative errno. */
int prefetcher_start(struct prefetcher *p);
/* Queues seq unless it is already pending or the queue is full. */
void prefetcher_queue(struct prefetcher *p, uint64_t seq);
/* Stops and joins the threads (pending work is dropped), then frees. */
void prefetcher_free(struct prefetcher *p);

#endif
