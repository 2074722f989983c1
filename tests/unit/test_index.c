/* Unit tests for the in-memory index (repo/idx_table.c): hash table, pack
 * numbering and the 48-byte entry codec (docs/design.md section 6). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/internal.h"
#include "helpers.h"

/* a random id from the seeded PRNG, so runs are reproducible */
static void rand_id(uint64_t *s, cairn_id *id)
{
	for (int i = 0; i < 4; i++) {
		uint64_t v = rng_next(s);
		memcpy(id->b + 8 * i, &v, 8);
	}
}

static struct idx_entry make_entry(const cairn_id *id, uint32_t n)
{
	struct idx_entry e = {
		.id = *id,
		.pack = n % 1000,
		.offset = 8 + n,
		.stored_len = n * 3 + 1,
		.raw_len = n * 5 + 2,
		.type = (uint8_t)(n & 1),
		.flags = (uint8_t)(n % 4),
	};
	return e;
}

static void assert_entry_equal(const struct idx_entry *a, const struct idx_entry *b)
{
	assert_memory_equal(a->id.b, b->id.b, CAIRN_ID_LEN);
	assert_int_equal(a->pack, b->pack);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->stored_len, b->stored_len);
	assert_int_equal(a->raw_len, b->raw_len);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
}

static void test_init_capacity(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	assert_int_equal(t.cap, 1024);
	assert_int_equal(t.count, 0);
	assert_int_equal(t.npacks, 0);
	assert_non_null(t.slots);
	idx_table_free(&t);
	assert_null(t.slots);
	assert_int_equal(t.cap, 0);

	assert_int_equal(idx_table_init(&t, 100000), 0);
	/* room for expect below the growth threshold, and no more than
	 * 64 bytes of table per expected entry */
	assert_true(t.cap * IDX_MAX_LOAD_PCT > 100000 * 100);
	assert_true(t.cap * sizeof(struct idx_entry) <= 100000 * 64);
	idx_table_free(&t);
}

static void test_lookup_empty(void **state)
{
	(void)state;
	struct idx_table t;
	cairn_id id;
	uint64_t s = 1;
	rand_id(&s, &id);
	/* a zeroed (never initialised) table has no slots */
	memset(&t, 0, sizeof(t));
	assert_null(idx_lookup(&t, &id));
	assert_int_equal(idx_table_init(&t, 10), 0);
	assert_null(idx_lookup(&t, &id));
	idx_table_free(&t);
}

static void test_insert_many(void **state)
{
	(void)state;
	enum { N = 100000 };
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 16), 0);
	size_t cap0 = t.cap;
	cairn_id *ids = malloc(N * sizeof(*ids));
	assert_non_null(ids);
	uint64_t s = 0x5eed;
	for (uint32_t i = 0; i < N; i++) {
		rand_id(&s, &ids[i]);
		struct idx_entry e = make_entry(&ids[i], i), *out = NULL;
		int rc = idx_insert(&t, &e, &out);
		if (rc != 1)
			fail_msg("insert %u returned %d", i, rc);
		assert_non_null(out);
		assert_entry_equal(out, &e);
	}
	assert_int_equal(t.count, N);
	assert_true(t.cap > cap0);
	assert_true(t.count * 100 <= t.cap * IDX_MAX_LOAD_PCT); /* load factor kept */

	for (uint32_t i = 0; i < N; i++) {
		struct idx_entry want = make_entry(&ids[i], i);
		struct idx_entry *e = idx_lookup(&t, &ids[i]);
		if (!e)
			fail_msg("id %u lost after growth", i);
		assert_entry_equal(e, &want);
	}

	/* ids that were never inserted are absent */
	uint64_t other = 0xabcdef;
	for (int i = 0; i < 10000; i++) {
		cairn_id id;
		rand_id(&other, &id);
		assert_null(idx_lookup(&t, &id));
	}
	/* an id differing from a present one in its last byte only */
	cairn_id near = ids[123];
	near.b[31] ^= 1;
	assert_null(idx_lookup(&t, &near));
	/* an id sharing the first 8 bytes (same home slot) but not the rest */
	near = ids[456];
	near.b[20] ^= 0x80;
	assert_null(idx_lookup(&t, &near));

	/* the number of occupied slots equals count */
	size_t used = 0;
	for (size_t i = 0; i < t.cap; i++)
		used += memcmp(&t.slots[i].id, &cairn_zero_id, CAIRN_ID_LEN) != 0;
	assert_int_equal(used, N);

	free(ids);
	idx_table_free(&t);
}

/* Ids that all hash to the same home slot (identical first 8 bytes) must
 * still be found through the probe chain, also across a wrap-around. */
static void test_collisions(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	enum { N = 600 };
	cairn_id ids[N];
	for (int i = 0; i < N; i++) {
		memset(&ids[i], 0, sizeof(ids[i]));
		/* the last slot of the 1024-slot table: the cluster wraps */
		uint64_t home = UINT64_MAX - 5;
		memcpy(ids[i].b, &home, 8);
		ids[i].b[30] = (uint8_t)(i >> 8);
		ids[i].b[31] = (uint8_t)i;
		ids[i].b[29] = 1;
		struct idx_entry e = make_entry(&ids[i], (uint32_t)i);
		assert_int_equal(idx_insert(&t, &e, NULL), 1);
	}
	assert_int_equal(t.cap, 1024);
	for (int i = 0; i < N; i++) {
		struct idx_entry *e = idx_lookup(&t, &ids[i]);
		assert_non_null(e);
		assert_int_equal(e->offset, 8 + i);
	}
	/* growth must rehash the whole cluster correctly */
	uint64_t s = 77;
	for (int i = 0; i < 400; i++) {
		cairn_id id;
		rand_id(&s, &id);
		struct idx_entry e = make_entry(&id, 5000 + (uint32_t)i);
		assert_int_equal(idx_insert(&t, &e, NULL), 1);
	}
	assert_true(t.cap > 1024);
	assert_true(t.count * 100 <= t.cap * IDX_MAX_LOAD_PCT);
	for (int i = 0; i < N; i++) {
		struct idx_entry *e = idx_lookup(&t, &ids[i]);
		assert_non_null(e);
		assert_int_equal(e->offset, 8 + i);
	}
	idx_table_free(&t);
}

/* The contract of issue "fleet scale": at most 64 bytes per chunk once an
 * index is loaded (the table is sized from the index files' total size). */
static void test_memory_per_entry(void **state)
{
	(void)state;
	enum { N = 300000 };
	struct idx_table t;
	assert_int_equal(sizeof(struct idx_entry), 48);
	assert_int_equal(idx_table_init(&t, N), 0);
	uint64_t s = 99;
	for (int i = 0; i < N; i++) {
		cairn_id id;
		rand_id(&s, &id);
		struct idx_entry e = make_entry(&id, (uint32_t)i);
		assert_int_equal(idx_insert(&t, &e, NULL), 1);
	}
	size_t cap_loaded = t.cap;
	assert_true(t.cap * sizeof(struct idx_entry) <= (size_t)N * 64);
	s = 99;
	for (int i = 0; i < N; i++) {
		cairn_id id;
		rand_id(&s, &id);
		struct idx_entry *e = idx_lookup(&t, &id);
		assert_non_null(e);
		assert_int_equal(e->offset, 8 + i);
	}
	/* a backup adding half as much again grows the table, keeps every entry */
	for (int i = 0; i < N / 2; i++) {
		cairn_id id;
		rand_id(&s, &id);
		struct idx_entry e = make_entry(&id, (uint32_t)(N + i));
		assert_int_equal(idx_insert(&t, &e, NULL), 1);
	}
	assert_true(t.cap > cap_loaded);
	assert_int_equal(t.count, N + N / 2);
	idx_table_free(&t);
}

static void test_duplicate_keeps_first(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	cairn_id id;
	uint64_t s = 9;
	rand_id(&s, &id);
	struct idx_entry a = make_entry(&id, 1), b = make_entry(&id, 2), *out = NULL;
	assert_int_equal(idx_insert(&t, &a, &out), 1);
	struct idx_entry *first = out;
	out = NULL;
	assert_int_equal(idx_insert(&t, &b, &out), 0);
	assert_ptr_equal(out, first);
	assert_int_equal(t.count, 1);
	assert_entry_equal(idx_lookup(&t, &id), &a);
	/* NULL out is allowed for duplicates too */
	assert_int_equal(idx_insert(&t, &b, NULL), 0);
	assert_entry_equal(idx_lookup(&t, &id), &a);
	idx_table_free(&t);
}

static void test_committed_replaces_pending(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	cairn_id id;
	uint64_t s = 10;
	rand_id(&s, &id);
	struct idx_entry pending = make_entry(&id, 1);
	pending.pack = PACK_PENDING;
	struct idx_entry committed = make_entry(&id, 2);
	committed.pack = 7;
	struct idx_entry other = make_entry(&id, 3);
	other.pack = 9;

	assert_int_equal(idx_insert(&t, &pending, NULL), 1);
	struct idx_entry *out = NULL;
	/* still a duplicate (returns 0) but the committed copy wins */
	assert_int_equal(idx_insert(&t, &committed, &out), 0);
	assert_non_null(out);
	assert_entry_equal(out, &committed);
	assert_entry_equal(idx_lookup(&t, &id), &committed);
	assert_int_equal(t.count, 1);

	/* a committed entry is never replaced, by pending or committed */
	assert_int_equal(idx_insert(&t, &pending, NULL), 0);
	assert_entry_equal(idx_lookup(&t, &id), &committed);
	assert_int_equal(idx_insert(&t, &other, NULL), 0);
	assert_entry_equal(idx_lookup(&t, &id), &committed);

	/* pending then pending: the first stays */
	cairn_id id2;
	rand_id(&s, &id2);
	struct idx_entry p1 = make_entry(&id2, 11), p2 = make_entry(&id2, 12);
	p1.pack = p2.pack = PACK_PENDING;
	assert_int_equal(idx_insert(&t, &p1, NULL), 1);
	assert_int_equal(idx_insert(&t, &p2, NULL), 0);
	assert_entry_equal(idx_lookup(&t, &id2), &p1);
	idx_table_free(&t);
}

static void test_zero_id_rejected(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	struct idx_entry e = make_entry(&cairn_zero_id, 1), *out = NULL;
	assert_int_equal(idx_insert(&t, &e, &out), -EINVAL);
	assert_null(out);
	assert_int_equal(t.count, 0);
	assert_null(idx_lookup(&t, &cairn_zero_id));
	idx_table_free(&t);
}

static void test_add_pack_numbering(void **state)
{
	(void)state;
	struct idx_table t;
	assert_int_equal(idx_table_init(&t, 0), 0);
	enum { N = 1000 }; /* past the initial array of 64 several times */
	uint64_t s = 42;
	cairn_id packs[N];
	for (uint32_t i = 0; i < N; i++) {
		rand_id(&s, &packs[i]);
		uint32_t num = 0xffff;
		assert_int_equal(idx_add_pack(&t, &packs[i], &num), 0);
		assert_int_equal(num, i);
		assert_int_equal(t.npacks, i + 1);
	}
	assert_true(t.packs_cap >= N);
	for (uint32_t i = 0; i < N; i++)
		assert_memory_equal(t.packs[i].b, packs[i].b, CAIRN_ID_LEN);
	/* the same pack twice gets a second number (no dedupe) */
	uint32_t num;
	assert_int_equal(idx_add_pack(&t, &packs[0], &num), 0);
	assert_int_equal(num, N);
	idx_table_free(&t);
	assert_null(t.packs);
	assert_int_equal(t.npacks, 0);
}

static void test_entry_layout(void **state)
{
	(void)state;
	struct idx_entry e = { .pack = 5, .offset = 0x04030201u,
			       .stored_len = 0x01131211u, .raw_len = 0xa4a3a2a1u,
			       .type = CAIRN_BLOB_PAGE, .flags = 3 };
	for (int i = 0; i < CAIRN_ID_LEN; i++)
		e.id.b[i] = (uint8_t)(0xc0 + i);
	uint8_t out[ENTRY_LEN];
	memset(out, 0xee, sizeof(out));
	entry_pack(out, &e);

	uint8_t want[ENTRY_LEN];
	for (int i = 0; i < 32; i++)
		want[i] = (uint8_t)(0xc0 + i);
	want[32] = 1; /* type */
	want[33] = 3; /* flags */
	want[34] = 0; /* reserved */
	want[35] = 0;
	const uint8_t tail[12] = { 0x01, 0x02, 0x03, 0x04, 0x11, 0x12, 0x13, 0x01,
				   0xa1, 0xa2, 0xa3, 0xa4 };
	memcpy(want + 36, tail, 12);
	assert_int_equal(ENTRY_LEN, 48);
	assert_memory_equal(out, want, ENTRY_LEN);

	struct idx_entry back;
	memset(&back, 0x55, sizeof(back));
	entry_unpack(&back, out);
	assert_memory_equal(back.id.b, e.id.b, CAIRN_ID_LEN);
	assert_int_equal(back.type, 1);
	assert_int_equal(back.flags, 3);
	assert_int_equal(back.offset, 0x04030201u);
	assert_int_equal(back.stored_len, 0x01131211u);
	assert_int_equal(back.raw_len, 0xa4a3a2a1u);
	/* the pack number is not part of the entry */
	assert_int_equal(back.pack, PACK_PENDING);
}

static void test_entry_round_trip(void **state)
{
	(void)state;
	uint64_t s = 1234;
	for (uint32_t i = 0; i < 1000; i++) {
		cairn_id id;
		rand_id(&s, &id);
		struct idx_entry e = make_entry(&id, i * 2654435761u), back;
		e.offset = (uint32_t)rng_next(&s);
		e.stored_len = (uint32_t)rng_next(&s);
		e.raw_len = (uint32_t)rng_next(&s);
		uint8_t buf[ENTRY_LEN];
		entry_pack(buf, &e);
		assert_int_equal(buf[34], 0);
		assert_int_equal(buf[35], 0);
		entry_unpack(&back, buf);
		e.pack = PACK_PENDING;
		assert_entry_equal(&back, &e);
		/* and packing again gives the same bytes */
		uint8_t again[ENTRY_LEN];
		entry_pack(again, &back);
		assert_memory_equal(buf, again, ENTRY_LEN);
	}
}

/* index_encode: section 7 layout. */
static void test_index_encode_layout(void **state)
{
	(void)state;
	cairn_id packs[2];
	memset(packs[0].b, 0xaa, CAIRN_ID_LEN);
	memset(packs[1].b, 0xbb, CAIRN_ID_LEN);
	struct idx_entry p0[2], p1[1];
	uint64_t s = 5;
	for (int i = 0; i < 2; i++) {
		rand_id(&s, &p0[i].id);
		p0[i] = make_entry(&p0[i].id, (uint32_t)i);
	}
	rand_id(&s, &p1[0].id);
	p1[0] = make_entry(&p1[0].id, 99);
	struct idx_entry *ents[2] = { p0, p1 };
	size_t counts[2] = { 2, 1 };
	struct buf out = { 0 };
	assert_int_equal(index_encode(NULL, packs, ents, counts, 2, &out), 0);
	assert_int_equal(out.len, 8 + 4 + 2 * (32 + 4) + 3 * ENTRY_LEN);
	assert_memory_equal(out.p, "CAIRNIX1", 8);
	assert_int_equal(get_le32(out.p + 8), 2);
	size_t off = 12;
	assert_memory_equal(out.p + off, packs[0].b, 32);
	assert_int_equal(get_le32(out.p + off + 32), 2);
	off += 36;
	uint8_t e[ENTRY_LEN];
	entry_pack(e, &p0[0]);
	assert_memory_equal(out.p + off, e, ENTRY_LEN);
	entry_pack(e, &p0[1]);
	assert_memory_equal(out.p + off + ENTRY_LEN, e, ENTRY_LEN);
	off += 2 * ENTRY_LEN;
	assert_memory_equal(out.p + off, packs[1].b, 32);
	assert_int_equal(get_le32(out.p + off + 32), 1);
	entry_pack(e, &p1[0]);
	assert_memory_equal(out.p + off + 36, e, ENTRY_LEN);

	/* an empty index is just the header */
	assert_int_equal(index_encode(NULL, NULL, NULL, NULL, 0, &out), 0);
	assert_int_equal(out.len, 12);
	assert_int_equal(get_le32(out.p + 8), 0);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_capacity),
		cmocka_unit_test(test_lookup_empty),
		cmocka_unit_test(test_insert_many),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_memory_per_entry),
		cmocka_unit_test(test_duplicate_keeps_first),
		cmocka_unit_test(test_committed_replaces_pending),
		cmocka_unit_test(test_zero_id_rejected),
		cmocka_unit_test(test_add_pack_numbering),
		cmocka_unit_test(test_entry_layout),
		cmocka_unit_test(test_entry_round_trip),
		cmocka_unit_test(test_index_encode_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
