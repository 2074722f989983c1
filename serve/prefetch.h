/* A small pool of threads that loads slot ranges handed to it, ahead of
 * the reads that will want them. Best effort: a full queue drops new
 * work, and a failed load is the loader's business (a real read of those
 * slots will try again and report it). */
#ifndef CAIRN_SERVE_PREFETCH_H
#define CAIRN_SERVE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

/* Loads slots [first, first+count); stop becomes non-zero when the pool
 * is being freed (a long load should give up then). */
typedef void (*prefetch_fn)(void *opaque, uint64_t first, uint64_t count,
			    const volatile int *stop);

struct prefetcher;

/* workers threads (started by prefetcher_start), up to queue_len pending
 * ranges. 0 or -ENOMEM. */
int prefetcher_new(unsigned workers, size_t queue_len, prefetch_fn fn, void *opaque,
		   struct prefetcher **out);
/* Starts the threads: separate from _new because a server that forks into
 * the background must start them in the child. 0 or a negative errno. */
int prefetcher_start(struct prefetcher *p);
/* Queues a range unless one starting at first is already pending or the
 * queue is full. */
void prefetcher_queue(struct prefetcher *p, uint64_t first, uint64_t count);
/* Stops and joins the threads (pending work is dropped, running loads are
 * told to stop), then frees. */
void prefetcher_free(struct prefetcher *p);

#endif
