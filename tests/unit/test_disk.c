/* Unit tests for repo/disk.c: slot arithmetic, runs, and the chunk-digest
 * form of the whole-disk digest (order-free, zero slots as a constant). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/disk.h"
#include "helpers.h"

static void test_chunk_len(void **state)
{
	(void)state;
	struct cairn_disk d = { .size = 1000, .chunk_size = 256 };
	d.nchunks = cairn_disk_chunk_count(d.size, d.chunk_size);
	assert_int_equal(d.nchunks, 4);
	assert_int_equal(cairn_disk_chunk_len(&d, 0), 256);
	assert_int_equal(cairn_disk_chunk_len(&d, 3), 1000 - 768);
	assert_int_equal(cairn_disk_chunk_count(0, 256), 0);
	assert_int_equal(cairn_disk_chunk_count(512, 256), 2);
}

static void test_runs(void **state)
{
	(void)state;
	cairn_id map[6] = { 0 };
	map[2].b[0] = 1;
	map[3].b[5] = 7;
	struct cairn_disk d = { .size = 6 * 64, .chunk_size = 64, .nchunks = 6, .map = map };
	bool zero;
	assert_int_equal(cairn_disk_run(&d, 0, 100, &zero), 2);
	assert_true(zero);
	assert_int_equal(cairn_disk_run(&d, 2, 100, &zero), 2);
	assert_false(zero);
	assert_int_equal(cairn_disk_run(&d, 4, 100, &zero), 2);
	assert_true(zero);
	assert_int_equal(cairn_disk_run(&d, 0, 1, &zero), 1);
}

/* The digest does not depend on the order chunks arrive in, and a zero
 * run fed as a run equals zero chunks fed as data. */
static void test_digest_order_and_zeros(void **state)
{
	(void)state;
	const uint32_t cs = 4096;
	const uint64_t size = 5 * cs + 100;
	uint8_t *disk = calloc(1, size);
	uint64_t seed = 42;
	for (uint64_t i = cs; i < 2 * cs; i++)
		disk[i] = (uint8_t)rng_next(&seed);
	for (uint64_t i = 5 * cs; i < size; i++)
		disk[i] = (uint8_t)rng_next(&seed);
	struct cairn_chunk_digest *a, *b;
	assert_int_equal(cairn_chunk_digest_new(size, cs, &a), 0);
	assert_int_equal(cairn_chunk_digest_new(size, cs, &b), 0);
	for (uint64_t s = 0; s < 6; s++) {
		size_t len = s == 5 ? 100 : cs;
		cairn_chunk_digest_data(a, s, disk + s * cs, len);
	}
	cairn_chunk_digest_data(b, 5, disk + 5 * cs, 100);
	cairn_chunk_digest_data(b, 1, disk + cs, cs);
	cairn_chunk_digest_zeros(b, 2, 3);
	cairn_chunk_digest_zeros(b, 0, 1);
	uint8_t da[16], db[16];
	cairn_chunk_digest_final(a, da);
	cairn_chunk_digest_final(b, db);
	assert_memory_equal(da, db, 16);
	/* one changed byte changes it */
	disk[cs + 7] ^= 1;
	cairn_chunk_digest_data(b, 1, disk + cs, cs);
	cairn_chunk_digest_final(b, db);
	assert_memory_not_equal(da, db, 16);
	cairn_chunk_digest_free(a);
	cairn_chunk_digest_free(b);
	free(disk);
}

/* A known value pins the definition: the format is a contract. */
static void test_digest_known_value(void **state)
{
	(void)state;
	struct cairn_chunk_digest *cd;
	assert_int_equal(cairn_chunk_digest_new(3 * 65536, 65536, &cd), 0);
	cairn_chunk_digest_zeros(cd, 0, 3);
	uint8_t got[16], z[16], want[16];
	cairn_chunk_digest_final(cd, got);
	uint8_t *zeros = calloc(1, 65536), cat[48];
	cairn_xxh128(zeros, 65536, z);
	for (int i = 0; i < 3; i++)
		memcpy(cat + 16 * i, z, 16);
	cairn_xxh128(cat, sizeof(cat), want);
	assert_memory_equal(got, want, 16);
	free(zeros);
	cairn_chunk_digest_free(cd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_len),
		cmocka_unit_test(test_runs),
		cmocka_unit_test(test_digest_order_and_zeros),
		cmocka_unit_test(test_digest_known_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
