/* Unit tests for repo/read_plan.c: the disk reader's planner (grouping by
 * pack, merging near ranges, the whole span of a dense pack, one fetch of
 * a chunk many slots share, skipped and zero slots, bounded batches). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/disk.h"
#include "repo/read_plan.h"
#include "helpers.h"

#define NCHUNKS 64
#define CS 65536u

/* A fake index: chunk k (id byte 0 = k, 1-based) lives in pack loc[k].pack
 * at loc[k].offset, stored_len bytes. */
struct fake_index {
	struct idx_entry e[256];
	bool present[256];
};

static bool fake_lookup(void *opaque, const cairn_id *id, struct idx_entry *out)
{
	struct fake_index *fi = opaque;
	if (!fi->present[id->b[0]])
		return false;
	*out = fi->e[id->b[0]];
	return true;
}

static void put_chunk(struct fake_index *fi, uint8_t k, uint32_t pack, uint32_t off,
		      uint32_t stored)
{
	memset(&fi->e[k], 0, sizeof(fi->e[k]));
	fi->e[k].id.b[0] = k;
	fi->e[k].id.b[1] = 0xcc; /* never the zero id */
	fi->e[k].pack = pack;
	fi->e[k].offset = off;
	fi->e[k].stored_len = stored;
	fi->e[k].raw_len = CS;
	fi->present[k] = true;
}

struct fixture {
	struct fake_index fi;
	cairn_id map[NCHUNKS];
	struct cairn_disk d;
};

static void set_slot(struct fixture *fx, uint64_t seq, uint8_t k)
{
	fx->map[seq] = fx->fi.e[k].id;
}

static void init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	fx->d = (struct cairn_disk){ .name = "vda", .size = (uint64_t)NCHUNKS * CS,
				     .chunk_size = CS, .nchunks = NCHUNKS, .map = fx->map };
}

static void test_group_merge(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	/* pack 1: three chunks back to back, then one 4 MiB further on */
	put_chunk(&fx.fi, 1, 1, 0, 1000);
	put_chunk(&fx.fi, 2, 1, 1000, 1000);
	put_chunk(&fx.fi, 3, 1, 2000, 1000);
	put_chunk(&fx.fi, 4, 1, 4u << 20, 1000);
	/* pack 2: two chunks 100 KiB apart (merged across the gap) */
	put_chunk(&fx.fi, 5, 2, 0, 1000);
	put_chunk(&fx.fi, 6, 2, 100 * 1024, 1000);
	for (uint8_t k = 1; k <= 6; k++)
		set_slot(&fx, k * 2, k); /* odd slots stay zero */
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nslots, 6);
	assert_int_equal(p.nblobs, 6);
	assert_int_equal(p.next, NCHUNKS);
	assert_int_equal(p.nranges, 3);
	/* sorted by the lowest slot served */
	assert_int_equal(p.ranges[0].pack, 1);
	assert_int_equal(p.ranges[0].off, 0);
	assert_int_equal(p.ranges[0].len, 3000);
	assert_int_equal(p.ranges[0].nblobs, 3);
	assert_int_equal(p.ranges[1].pack, 1);
	assert_int_equal(p.ranges[1].off, 4u << 20);
	assert_int_equal(p.ranges[2].pack, 2);
	assert_int_equal(p.ranges[2].len, 100 * 1024 + 1000);
	assert_int_equal(p.ranges[2].nblobs, 2);
	assert_int_equal(p.needed, 6000);
	read_plan_free(&p);
}

static void test_dense_pack_whole_span(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	/* 2 MiB needed of a 3 MiB span, gaps of 1 MiB: larger than the merge
	 * gap, but most of the span is needed, so it is read whole */
	put_chunk(&fx.fi, 1, 7, 0, 1u << 20);
	put_chunk(&fx.fi, 2, 7, 2u << 20, 1u << 20);
	set_slot(&fx, 0, 1);
	set_slot(&fx, 1, 2);
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nranges, 1);
	assert_int_equal(p.ranges[0].len, 3u << 20);
	read_plan_free(&p);
	/* the same with a sparse pack: two ranges */
	put_chunk(&fx.fi, 2, 7, 6u << 20, 1u << 20);
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nranges, 2);
	read_plan_free(&p);
}

static void test_max_range(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	for (uint8_t k = 1; k <= 20; k++) {
		put_chunk(&fx.fi, k, 3, (uint32_t)(k - 1) * 1000, 1000);
		set_slot(&fx, k, k);
	}
	struct read_plan_limits lim = { .max_range = 4500 };
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, &lim, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nranges, 5); /* 4 + 4 + 4 + 4 + 4 blobs */
	for (size_t i = 0; i < p.nranges; i++) {
		assert_true(p.ranges[i].len <= 4500);
		assert_int_equal(p.ranges[i].nblobs, 4);
	}
	read_plan_free(&p);
}

static void test_shared_chunk_once(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	put_chunk(&fx.fi, 9, 4, 5000, 700);
	put_chunk(&fx.fi, 10, 4, 0, 700);
	for (uint64_t s = 0; s < 10; s++)
		set_slot(&fx, 50 - s * 3, 9);
	set_slot(&fx, 60, 10);
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nslots, 11);
	assert_int_equal(p.nblobs, 2);
	const struct plan_blob *b = &p.blobs[1]; /* by offset: chunk 10, then 9 */
	assert_int_equal(b->e.id.b[0], 9);
	assert_int_equal(b->nslots, 10);
	for (size_t i = 1; i < b->nslots; i++) /* its slots in order */
		assert_true(p.slots[b->slot_first + i - 1] < p.slots[b->slot_first + i]);
	assert_int_equal(p.needed, 1400);
	assert_int_equal(p.nranges, 1);
	assert_int_equal(p.ranges[0].min_seq, 23);
	read_plan_free(&p);
}

static void test_skip_zero_and_range(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	for (uint8_t k = 1; k <= 8; k++) {
		put_chunk(&fx.fi, k, 5, (uint32_t)k * 1000, 1000);
		set_slot(&fx, 10 + k, k);
	}
	uint64_t skip[1] = { (1ull << 12) | (1ull << 13) };
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 12, 17, skip, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nslots, 3); /* 14, 15, 16 */
	assert_int_equal(p.slots[0], 14);
	assert_int_equal(p.next, 17);
	read_plan_free(&p);
	/* a range of zero slots plans nothing */
	assert_int_equal(read_plan_build(&fx.d, 30, 40, NULL, NULL, fake_lookup, &fx.fi, &p), 0);
	assert_int_equal(p.nslots, 0);
	assert_int_equal(p.nranges, 0);
	assert_int_equal(p.next, 40);
	read_plan_free(&p);
}

static void test_bounded_batches(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	for (uint8_t k = 1; k <= 30; k++) {
		put_chunk(&fx.fi, k, 6, (uint32_t)k * 1000, 1000);
		set_slot(&fx, k * 2, k);
	}
	struct read_plan_limits lim = { .max_slots = 7 };
	uint64_t first = 0, planned = 0;
	unsigned batches = 0;
	while (first < NCHUNKS) {
		struct read_plan p;
		assert_int_equal(read_plan_build(&fx.d, first, NCHUNKS, NULL, &lim, fake_lookup,
						 &fx.fi, &p), 0);
		assert_true(p.nslots <= 7);
		assert_true(p.next > first);
		for (size_t i = 0; i < p.nslots; i++)
			assert_true(p.slots[i] >= first && p.slots[i] < p.next);
		planned += p.nslots;
		first = p.next;
		batches++;
		read_plan_free(&p);
	}
	assert_int_equal(planned, 30);
	assert_int_equal(batches, 5);
}

static void test_missing(void **state)
{
	(void)state;
	struct fixture fx;
	init(&fx);
	put_chunk(&fx.fi, 1, 1, 0, 10);
	set_slot(&fx, 3, 1);
	fx.map[5].b[0] = 77; /* not indexed */
	struct read_plan p;
	assert_int_equal(read_plan_build(&fx.d, 0, NCHUNKS, NULL, NULL, fake_lookup, &fx.fi, &p),
			 -ENOENT);
	assert_int_equal(p.missing_seq, 5);
	read_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_group_merge),
		cmocka_unit_test(test_dense_pack_whole_span),
		cmocka_unit_test(test_max_range),
		cmocka_unit_test(test_shared_chunk_once),
		cmocka_unit_test(test_skip_zero_and_range),
		cmocka_unit_test(test_bounded_batches),
		cmocka_unit_test(test_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
