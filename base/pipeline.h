/* An ordered worker pipeline: the calling thread produces items in order,
 * a pool of workers processes them concurrently, and the calling thread
 * consumes the results in order. At most `slots` items are in flight, so
 * memory stays bounded whatever the item count.
 *
 * Callbacks return 0 or a negative errno; the first error stops the
 * pipeline and is returned. Slot numbers index caller-owned per-slot state. */
#ifndef CAIRN_PIPELINE_H
#define CAIRN_PIPELINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct cairn_pipeline_ops {
	int (*produce)(void *ctx, uint64_t seq, unsigned slot); /* may be NULL */
	int (*work)(void *ctx, uint64_t seq, unsigned slot);
	int (*consume)(void *ctx, uint64_t seq, unsigned slot); /* may be NULL */
};

int cairn_pipeline_run(const struct cairn_pipeline_ops *ops, void *ctx,
		       uint64_t count, unsigned workers, unsigned slots);

/* One call run beside the caller's own work: on a thread of its own, or
 * at once on the caller's thread when no thread can be made. join waits
 * for it either way. */
struct cairn_beside {
	void (*fn)(void *arg);
	void *arg;
	pthread_t tid;
	bool started;
};
void cairn_beside_start(struct cairn_beside *b, void (*fn)(void *arg), void *arg);
void cairn_beside_join(struct cairn_beside *b);

/* Workers to use by default: one per online CPU. */
unsigned cairn_default_workers(void);

#endif
