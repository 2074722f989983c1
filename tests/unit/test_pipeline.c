/* Unit tests for the ordered worker pipeline (base/pipeline.c). Callbacks
 * run on worker threads, so they record problems in the context and the
 * test thread asserts afterwards. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "base/pipeline.h"
#include "base/util.h"

#define MAX_SLOTS 16
#define NO_ERR UINT64_MAX

struct ctx {
	uint64_t count;
	unsigned slots;
	/* per-item call counts */
	atomic_int *produced, *worked, *consumed;
	/* per-slot state owned by the caller */
	uint64_t slot_seq[MAX_SLOTS];
	uint64_t slot_val[MAX_SLOTS];
	atomic_bool slot_busy[MAX_SLOTS];
	uint64_t next_consume;
	atomic_ullong max_produced, max_worked, max_consumed; /* seq + 1 */
	/* failure injection */
	uint64_t fail_produce, fail_work, fail_consume;
	int fail_rc;
	/* concurrency */
	atomic_int running, max_running;
	unsigned work_sleep_us;
	/* problems seen inside callbacks */
	atomic_int problems;
	char problem[256];
	pthread_mutex_t lock;
};

static void problem(struct ctx *c, const char *what, uint64_t seq, unsigned slot)
{
	pthread_mutex_lock(&c->lock);
	if (!c->problems)
		snprintf(c->problem, sizeof(c->problem), "%s (seq %llu slot %u)", what,
			 (unsigned long long)seq, slot);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->problems, 1);
}

static void bump_max(atomic_ullong *m, uint64_t v)
{
	unsigned long long cur = atomic_load(m);
	while (cur < v && !atomic_compare_exchange_weak(m, &cur, v))
		;
}

static uint64_t mix(uint64_t v)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdull;
	return v ^ (v >> 33);
}

static int produce(void *opaque, uint64_t seq, unsigned slot)
{
	struct ctx *c = opaque;
	if (seq >= c->count || slot >= c->slots) {
		problem(c, "produce out of range", seq, slot);
		return 0;
	}
	atomic_fetch_add(&c->produced[seq], 1);
	bump_max(&c->max_produced, seq + 1);
	if (seq == c->fail_produce)
		return c->fail_rc;
	if (atomic_exchange(&c->slot_busy[slot], true))
		problem(c, "produce into a busy slot", seq, slot);
	c->slot_seq[slot] = seq;
	c->slot_val[slot] = seq;
	return 0;
}

static int work(void *opaque, uint64_t seq, unsigned slot)
{
	struct ctx *c = opaque;
	if (seq >= c->count || slot >= c->slots) {
		problem(c, "work out of range", seq, slot);
		return 0;
	}
	int now = atomic_fetch_add(&c->running, 1) + 1;
	int m = atomic_load(&c->max_running);
	while (m < now && !atomic_compare_exchange_weak(&c->max_running, &m, now))
		;
	atomic_fetch_add(&c->worked[seq], 1);
	bump_max(&c->max_worked, seq + 1);
	if (atomic_load(&c->produced[seq]) != 1)
		problem(c, "work before produce", seq, slot);
	if (!atomic_load(&c->slot_busy[slot]) || c->slot_seq[slot] != seq)
		problem(c, "work on a slot holding another item", seq, slot);
	c->slot_val[slot] = mix(c->slot_val[slot]);
	if (c->work_sleep_us)
		usleep(c->work_sleep_us);
	atomic_fetch_sub(&c->running, 1);
	return seq == c->fail_work ? c->fail_rc : 0;
}

static int consume(void *opaque, uint64_t seq, unsigned slot)
{
	struct ctx *c = opaque;
	if (seq >= c->count || slot >= c->slots) {
		problem(c, "consume out of range", seq, slot);
		return 0;
	}
	atomic_fetch_add(&c->consumed[seq], 1);
	bump_max(&c->max_consumed, seq + 1);
	if (seq != c->next_consume)
		problem(c, "consume out of order", seq, slot);
	c->next_consume = seq + 1;
	if (atomic_load(&c->worked[seq]) != 1)
		problem(c, "consume before work", seq, slot);
	if (c->slot_seq[slot] != seq || c->slot_val[slot] != mix(seq))
		problem(c, "consume sees another item's result", seq, slot);
	atomic_store(&c->slot_busy[slot], false);
	return seq == c->fail_consume ? c->fail_rc : 0;
}

static const struct cairn_pipeline_ops ops = { produce, work, consume };

static void ctx_init(struct ctx *c, uint64_t count, unsigned slots)
{
	memset(c, 0, sizeof(*c));
	c->count = count;
	c->slots = slots ? slots : 1;
	c->produced = calloc(count + 1, sizeof(atomic_int));
	c->worked = calloc(count + 1, sizeof(atomic_int));
	c->consumed = calloc(count + 1, sizeof(atomic_int));
	assert_non_null(c->produced);
	assert_non_null(c->worked);
	assert_non_null(c->consumed);
	c->fail_produce = c->fail_work = c->fail_consume = NO_ERR;
	c->fail_rc = -EIO;
	pthread_mutex_init(&c->lock, NULL);
}

static void ctx_free(struct ctx *c)
{
	free(c->produced);
	free(c->worked);
	free(c->consumed);
	pthread_mutex_destroy(&c->lock);
}

static void assert_no_problems(struct ctx *c)
{
	if (atomic_load(&c->problems))
		fail_msg("%d problem(s), first: %s", atomic_load(&c->problems), c->problem);
}

/* Every item produced, worked and consumed exactly once, in order. */
static void test_matrix(void **state)
{
	(void)state;
	const uint64_t counts[] = { 0, 1, 2, 1000 };
	for (size_t ci = 0; ci < ARRAY_SIZE(counts); ci++)
		for (unsigned workers = 1; workers <= 4; workers++)
			for (unsigned slots = 1; slots <= 8; slots++) {
				struct ctx c;
				uint64_t n = counts[ci];
				ctx_init(&c, n, slots);
				int rc = cairn_pipeline_run(&ops, &c, n, workers, slots);
				if (rc != 0)
					fail_msg("count %llu workers %u slots %u: rc %d",
						 (unsigned long long)n, workers, slots, rc);
				assert_no_problems(&c);
				for (uint64_t i = 0; i < n; i++)
					if (c.produced[i] != 1 || c.worked[i] != 1 ||
					    c.consumed[i] != 1)
						fail_msg("count %llu workers %u slots %u: item %llu "
							 "produced %d worked %d consumed %d",
							 (unsigned long long)n, workers, slots,
							 (unsigned long long)i, c.produced[i],
							 c.worked[i], c.consumed[i]);
				assert_int_equal(c.next_consume, n);
				assert_int_equal(c.max_produced, n);
				assert_int_equal(c.max_consumed, n);
				ctx_free(&c);
			}
}

/* workers = 0 and slots = 0 mean one of each. */
static void test_zero_workers_slots(void **state)
{
	(void)state;
	struct ctx c;
	ctx_init(&c, 50, 1);
	assert_int_equal(cairn_pipeline_run(&ops, &c, 50, 0, 0), 0);
	assert_no_problems(&c);
	assert_int_equal(c.next_consume, 50);
	for (int i = 0; i < 50; i++)
		assert_int_equal(c.worked[i], 1);
	ctx_free(&c);
}

/* With no consume callback, every item is still produced and worked. */
static int work_only(void *opaque, uint64_t seq, unsigned slot)
{
	struct ctx *c = opaque;
	(void)slot;
	atomic_fetch_add(&c->worked[seq], 1);
	return 0;
}

static int produce_only(void *opaque, uint64_t seq, unsigned slot)
{
	struct ctx *c = opaque;
	(void)slot;
	atomic_fetch_add(&c->produced[seq], 1);
	return 0;
}

static void test_no_consume(void **state)
{
	(void)state;
	const struct cairn_pipeline_ops o = { produce_only, work_only, NULL };
	struct ctx c;
	ctx_init(&c, 500, 4);
	assert_int_equal(cairn_pipeline_run(&o, &c, 500, 3, 4), 0);
	for (int i = 0; i < 500; i++) {
		assert_int_equal(c.produced[i], 1);
		assert_int_equal(c.worked[i], 1);
	}
	ctx_free(&c);
}

/* Several workers really run at the same time, and never more than the
 * number of workers. */
static void test_concurrent(void **state)
{
	(void)state;
	struct ctx c;
	ctx_init(&c, 64, 8);
	c.work_sleep_us = 2000;
	assert_int_equal(cairn_pipeline_run(&ops, &c, 64, 4, 8), 0);
	assert_no_problems(&c);
	assert_true(c.max_running >= 2);
	assert_true(c.max_running <= 4);
	ctx_free(&c);

	ctx_init(&c, 20, 8);
	c.work_sleep_us = 1000;
	assert_int_equal(cairn_pipeline_run(&ops, &c, 20, 1, 8), 0);
	assert_int_equal(c.max_running, 1);
	ctx_free(&c);
}

/* After an error at err_seq no item at or beyond err_seq + slots was
 * produced or worked, and nothing ran twice. */
static void check_stopped(struct ctx *c, uint64_t err_seq, unsigned slots,
			  const char *where)
{
	uint64_t limit = err_seq + slots; /* at most `slots` items in flight */
	if (c->max_produced > limit || c->max_worked > limit)
		fail_msg("%s error at %llu with %u slots: produced up to %llu, worked up to %llu",
			 where, (unsigned long long)err_seq, slots,
			 (unsigned long long)c->max_produced,
			 (unsigned long long)c->max_worked);
	for (uint64_t i = 0; i < c->count; i++) {
		if (c->produced[i] > 1 || c->worked[i] > 1 || c->consumed[i] > 1)
			fail_msg("%s: item %llu ran twice", where, (unsigned long long)i);
		if (c->worked[i] && !c->produced[i])
			fail_msg("%s: item %llu worked, never produced", where,
				 (unsigned long long)i);
	}
}

static void test_work_error(void **state)
{
	(void)state;
	for (unsigned workers = 1; workers <= 4; workers++)
		for (unsigned slots = 1; slots <= 8; slots++) {
			struct ctx c;
			ctx_init(&c, 1000, slots);
			c.fail_work = 37;
			c.fail_rc = -ENOSPC;
			int rc = cairn_pipeline_run(&ops, &c, 1000, workers, slots);
			assert_int_equal(rc, -ENOSPC);
			assert_no_problems(&c);
			/* everything before the failing item was consumed, in
			 * order, and nothing from it on */
			assert_int_equal(c.next_consume, 37);
			for (uint64_t i = 0; i < 37; i++)
				assert_int_equal(c.consumed[i], 1);
			for (uint64_t i = 37; i < 1000; i++)
				assert_int_equal(c.consumed[i], 0);
			assert_int_equal(c.worked[37], 1);
			check_stopped(&c, 37, slots, "work");
			ctx_free(&c);
		}
}

static void test_produce_error(void **state)
{
	(void)state;
	for (unsigned workers = 1; workers <= 4; workers++)
		for (unsigned slots = 1; slots <= 8; slots++) {
			struct ctx c;
			ctx_init(&c, 1000, slots);
			c.fail_produce = 37;
			c.fail_rc = -EIO;
			int rc = cairn_pipeline_run(&ops, &c, 1000, workers, slots);
			assert_int_equal(rc, -EIO);
			assert_no_problems(&c);
			assert_int_equal(c.max_produced, 38); /* 37 was the last call */
			assert_int_equal(c.worked[37], 0);
			for (uint64_t i = 37; i < 1000; i++)
				assert_int_equal(c.consumed[i], 0);
			assert_true(c.next_consume <= 37);
			assert_true(c.next_consume + slots >= 37);
			check_stopped(&c, 37, slots, "produce");
			ctx_free(&c);
		}
	/* an error at the very first item */
	struct ctx c;
	ctx_init(&c, 10, 4);
	c.fail_produce = 0;
	c.fail_rc = -EPIPE;
	assert_int_equal(cairn_pipeline_run(&ops, &c, 10, 2, 4), -EPIPE);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(c.worked[i], 0);
		assert_int_equal(c.consumed[i], 0);
	}
	ctx_free(&c);
}

static void test_consume_error(void **state)
{
	(void)state;
	for (unsigned workers = 1; workers <= 4; workers++)
		for (unsigned slots = 1; slots <= 8; slots++) {
			struct ctx c;
			ctx_init(&c, 1000, slots);
			c.fail_consume = 37;
			c.fail_rc = -EBADMSG;
			int rc = cairn_pipeline_run(&ops, &c, 1000, workers, slots);
			assert_int_equal(rc, -EBADMSG);
			assert_no_problems(&c);
			assert_int_equal(c.next_consume, 38);
			assert_int_equal(c.max_consumed, 38);
			for (uint64_t i = 38; i < 1000; i++)
				assert_int_equal(c.consumed[i], 0);
			check_stopped(&c, 37, slots, "consume");
			ctx_free(&c);
		}
}

/* The last item failing is reported too. */
static void test_error_last_item(void **state)
{
	(void)state;
	struct ctx c;
	ctx_init(&c, 100, 8);
	c.fail_work = 99;
	assert_int_equal(cairn_pipeline_run(&ops, &c, 100, 4, 8), -EIO);
	assert_int_equal(c.next_consume, 99);
	ctx_free(&c);
	ctx_init(&c, 1, 1);
	c.fail_consume = 0;
	assert_int_equal(cairn_pipeline_run(&ops, &c, 1, 1, 1), -EIO);
	ctx_free(&c);
}

/* With slow workers the in-flight window is bounded by slots: the
 * producer never runs more than `slots` items ahead of the consumer. */
struct window_ctx {
	uint64_t produced_ahead_max;
	atomic_ullong consumed;
	unsigned slots;
	atomic_int bad;
};

static int w_produce(void *opaque, uint64_t seq, unsigned slot)
{
	struct window_ctx *w = opaque;
	(void)slot;
	uint64_t ahead = seq - atomic_load(&w->consumed);
	if (ahead > w->produced_ahead_max)
		w->produced_ahead_max = ahead;
	if (ahead >= w->slots)
		atomic_fetch_add(&w->bad, 1);
	return 0;
}

static int w_work(void *opaque, uint64_t seq, unsigned slot)
{
	(void)opaque;
	(void)slot;
	if (seq % 7 == 0)
		usleep(200);
	return 0;
}

static int w_consume(void *opaque, uint64_t seq, unsigned slot)
{
	struct window_ctx *w = opaque;
	(void)slot;
	atomic_store(&w->consumed, seq + 1);
	return 0;
}

static void test_window_bounded(void **state)
{
	(void)state;
	const struct cairn_pipeline_ops o = { w_produce, w_work, w_consume };
	for (unsigned slots = 1; slots <= 8; slots++) {
		struct window_ctx w = { .slots = slots };
		assert_int_equal(cairn_pipeline_run(&o, &w, 300, 4, slots), 0);
		assert_int_equal(w.bad, 0);
		assert_int_equal(w.produced_ahead_max, slots - 1);
		assert_int_equal(w.consumed, 300);
	}
}

static void test_default_workers(void **state)
{
	(void)state;
	unsigned n = cairn_default_workers();
	assert_true(n >= 1);
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	if (online > 0)
		assert_int_equal(n, (unsigned)online);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_zero_workers_slots),
		cmocka_unit_test(test_no_consume),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_work_error),
		cmocka_unit_test(test_produce_error),
		cmocka_unit_test(test_consume_error),
		cmocka_unit_test(test_error_last_item),
		cmocka_unit_test(test_window_bounded),
		cmocka_unit_test(test_default_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
