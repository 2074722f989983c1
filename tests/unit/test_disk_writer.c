/* Unit tests for repo/disk_writer.c against a local directory repository:
 * slots given in any order from several threads (puts, zero runs, reused
 * runs) give the map and digest2 of a straight pass; a previous slot whose
 * blob is not reusable is handed back; misuse is refused. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/disk.h"
#include "repo/disk_writer.h"
#include "helpers.h"

#define CS CAIRN_MIN_CHUNK
#define NSLOTS 40
#define SIZE ((uint64_t)(NSLOTS - 1) * CS + 1234) /* the last slot is short */
#define THREADS 4

struct fixture {
	char dir[64];
	struct cairn_repo *r;
	struct cairn_writer *w;
	uint8_t *disk; /* SIZE bytes */
	bool *zero; /* per slot: all zero */
};

static size_t slot_len(uint64_t seq)
{
	return (size_t)MIN((uint64_t)CS, SIZE - seq * CS);
}

/* Slots 3-9 and 20-21 are zero, 30 repeats slot 1, 12 is allocated zeros
 * (as data): the others hold random bytes. */
static void fill_disk(struct fixture *f)
{
	uint64_t seed = 7;
	for (uint64_t s = 0; s < NSLOTS; s++) {
		uint8_t *at = f->disk + s * CS;
		f->zero[s] = (s >= 3 && s <= 9) || s == 20 || s == 21 || s == 12;
		if (f->zero[s])
			continue;
		if (s == 30) {
			memcpy(at, f->disk + CS, CS);
			continue;
		}
		for (size_t i = 0; i < slot_len(s); i++)
			at[i] = (uint8_t)rng_next(&seed);
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[96], err[256] = "";
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-dw-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/repo", f->dir);
	struct cairn_init_opts o = { .chunk_size = CS, .compression_level = 1 };
	if (cairn_repo_init(path, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(path, NULL, &f->r, err, sizeof(err)) < 0 ||
	    cairn_repo_load_index(f->r) < 0 || cairn_writer_new(f->r, &f->w) < 0)
		return -1;
	f->disk = calloc(1, SIZE);
	f->zero = calloc(NSLOTS, sizeof(bool));
	fill_disk(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cairn_writer_free(f->w);
	cairn_repo_close(f->r);
	rm_rf(f->dir);
	free(f->disk);
	free(f->zero);
	free(f);
	return 0;
}

static void new_disk(struct cairn_disk *d)
{
	*d = (struct cairn_disk){ .name = "vda", .size = SIZE, .chunk_size = CS };
}

/* Every slot put in order: the reference. */
static void straight_pass(struct fixture *f, struct cairn_disk *d)
{
	struct cairn_disk_writer *dw;
	new_disk(d);
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, d, NULL, &dw), 0);
	assert_int_equal(d->nchunks, NSLOTS);
	for (uint64_t s = 0; s < NSLOTS; s++)
		assert_int_equal(cairn_disk_writer_put(dw, s, f->disk + s * CS, slot_len(s)), 0);
	assert_int_equal(cairn_disk_writer_finish(dw), 0);
	struct cairn_disk_writer_stats st;
	cairn_disk_writer_stats(dw, &st);
	assert_int_equal(st.zero_chunks, 10);
	assert_int_equal(st.data_chunks, NSLOTS - 10);
	assert_int_equal(st.bytes_put, SIZE);
	cairn_disk_writer_free(dw);
	assert_true(d->has_digest2);
	assert_false(d->has_digest);
}

/* The writer's digest2 is the chunk-digest form of the disk's bytes. */
static void assert_digest2_of_disk(struct fixture *f, const struct cairn_disk *d)
{
	struct cairn_chunk_digest *cd;
	uint8_t want[CAIRN_DIGEST_LEN];
	assert_int_equal(cairn_chunk_digest_new(SIZE, CS, &cd), 0);
	for (uint64_t s = 0; s < NSLOTS; s++)
		cairn_chunk_digest_data(cd, s, f->disk + s * CS, slot_len(s));
	cairn_chunk_digest_final(cd, want);
	cairn_chunk_digest_free(cd);
	assert_memory_equal(d->digest2, want, CAIRN_DIGEST_LEN);
}

struct worker {
	struct fixture *f;
	struct cairn_disk_writer *dw;
	unsigned index;
	const struct cairn_disk *prev; /* NULL: no slot is reused */
	const bool *changed; /* with prev: slots put, the others reused */
};

/* Thread i gives slots i, i+THREADS, ... from the top down: zero slots
 * as runs of one (without prev, thread 0 gives 3-9 as one run), unchanged
 * slots by reuse. */
static void *give_slots(void *arg)
{
	struct worker *x = arg;
	struct fixture *f = x->f;
	for (int64_t s = NSLOTS - 1 - x->index; s >= 0; s -= THREADS) {
		int rc;
		if (x->prev && !x->changed[s])
			rc = cairn_disk_writer_reuse(x->dw, (uint64_t)s, 1) == 1 ? 0 : -1;
		else if (f->zero[s] && !x->prev && s >= 3 && s <= 9)
			rc = 0; /* the run goes in one call below */
		else if (f->zero[s])
			rc = cairn_disk_writer_zeros(x->dw, (uint64_t)s, 1);
		else
			rc = cairn_disk_writer_put(x->dw, (uint64_t)s, f->disk + s * CS,
						   slot_len((uint64_t)s));
		if (rc < 0)
			return (void *)1;
	}
	if (x->index == 0 && !x->prev)
		return cairn_disk_writer_zeros(x->dw, 3, 7) < 0 ? (void *)1 : NULL;
	return NULL;
}

static void scattered_pass(struct fixture *f, struct cairn_disk *d, const struct cairn_disk *prev,
			   const bool *changed)
{
	struct cairn_disk_writer *dw;
	new_disk(d);
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, d, prev, &dw), 0);
	pthread_t t[THREADS];
	struct worker x[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		x[i] = (struct worker){ f, dw, i, prev, changed };
		assert_int_equal(pthread_create(&t[i], NULL, give_slots, &x[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(cairn_disk_writer_finish(dw), 0);
	cairn_disk_writer_free(dw);
}

static void test_any_order_same_map(void **state)
{
	struct fixture *f = *state;
	struct cairn_disk a, b;
	straight_pass(f, &a);
	assert_digest2_of_disk(f, &a);
	for (uint64_t s = 0; s < NSLOTS; s++)
		assert_int_equal(cairn_id_is_zero(&a.map[s]), f->zero[s]);
	assert_memory_equal(&a.map[1], &a.map[30], sizeof(cairn_id));
	scattered_pass(f, &b, NULL, NULL);
	assert_memory_equal(a.map, b.map, NSLOTS * sizeof(cairn_id));
	assert_true(b.has_digest2);
	assert_memory_equal(a.digest2, b.digest2, CAIRN_DIGEST_LEN);
	/* what was stored reads back */
	assert_int_equal(cairn_writer_flush(f->w), 0);
	uint8_t *buf = malloc(CS);
	assert_int_equal(cairn_repo_read_blob(f->r, &a.map[2], buf, CS), CS);
	assert_memory_equal(buf, f->disk + 2 * CS, CS);
	assert_int_equal(cairn_repo_read_blob(f->r, &a.map[NSLOTS - 1], buf, CS), 1234);
	free(buf);
	free(a.map);
	free(b.map);
}

/* An incremental: unchanged slots reused (any order, several threads),
 * changed ones put; the map is the new disk's, and there is no digest2. */
static void test_reuse(void **state)
{
	struct fixture *f = *state;
	struct cairn_disk a, b, c;
	straight_pass(f, &a);
	bool changed[NSLOTS] = { 0 };
	for (uint64_t s = 0; s < NSLOTS; s += 5)
		changed[s] = true;
	changed[3] = false; /* the zero run is reused whole... */
	f->disk[10 * CS + 17] ^= 0x5a; /* ...and slot 10 now differs */
	scattered_pass(f, &b, &a, changed);
	assert_false(b.has_digest2);
	assert_false(b.has_digest);
	straight_pass(f, &c);
	assert_memory_equal(b.map, c.map, NSLOTS * sizeof(cairn_id));
	assert_memory_not_equal(&a.map[10], &c.map[10], sizeof(cairn_id));
	f->disk[10 * CS + 17] ^= 0x5a;
	free(a.map);
	free(b.map);
	free(c.map);
}

/* A previous slot whose blob is not in the repository is handed back; the
 * caller puts it and goes on. */
static void test_not_reusable(void **state)
{
	struct fixture *f = *state;
	struct cairn_disk a, b;
	straight_pass(f, &a);
	memset(&a.map[15], 0xab, sizeof(cairn_id)); /* a blob nobody stored */
	struct cairn_disk_writer *dw;
	new_disk(&b);
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, &b, &a, &dw), 0);
	assert_int_equal(cairn_disk_writer_reuse(dw, 0, NSLOTS), 15);
	assert_int_equal(cairn_disk_writer_put(dw, 15, f->disk + 15 * CS, CS), 0);
	assert_int_equal(cairn_disk_writer_reuse(dw, 16, NSLOTS - 16), NSLOTS - 16);
	assert_int_equal(cairn_disk_writer_finish(dw), 0);
	struct cairn_disk_writer_stats st;
	cairn_disk_writer_stats(dw, &st);
	assert_int_equal(st.reused_chunks, NSLOTS - 1);
	assert_int_equal(st.data_chunks, 1);
	cairn_disk_writer_free(dw);
	assert_false(b.has_digest2);
	assert_memory_not_equal(&b.map[15], &a.map[15], sizeof(cairn_id));
	assert_true(cairn_repo_blob_reusable(f->r, &b.map[15]));
	free(a.map);
	free(b.map);
}

static void test_misuse(void **state)
{
	struct fixture *f = *state;
	struct cairn_disk a, b, other;
	straight_pass(f, &a);
	struct cairn_disk_writer *dw;
	new_disk(&b);
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, &b, NULL, &dw), 0);
	/* a slot of the wrong length, slots beyond the disk, reuse without a
	 * previous map */
	assert_int_equal(cairn_disk_writer_put(dw, NSLOTS - 1, f->disk, CS), -EINVAL);
	assert_non_null(strstr(cairn_disk_writer_error(dw), "chunk 39"));
	assert_int_equal(cairn_disk_writer_put(dw, NSLOTS, f->disk, CS), -EINVAL);
	assert_int_equal(cairn_disk_writer_zeros(dw, NSLOTS - 2, 3), -EINVAL);
	assert_int_equal(cairn_disk_writer_reuse(dw, 0, 1), -EINVAL);
	/* slots missing: no digest */
	assert_int_equal(cairn_disk_writer_zeros(dw, 0, NSLOTS - 1), 0);
	assert_int_equal(cairn_disk_writer_finish(dw), -EINVAL);
	assert_false(b.has_digest2);
	cairn_disk_writer_free(dw);
	free(b.map);
	/* a previous disk of another size */
	other = a;
	other.size = SIZE + CS;
	other.nchunks = NSLOTS + 1;
	new_disk(&b);
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, &b, &other, &dw), -EINVAL);
	free(b.map);
	free(a.map);
}

/* A disk of zeros given as one run has the digest2 of its bytes, and
 * hashes nothing: a large virtual size costs no time. */
static void test_zero_run(void **state)
{
	struct fixture *f = *state;
	struct cairn_disk d = { .name = "big", .size = (1ull << 30) + 4096, .chunk_size = CS };
	struct cairn_disk_writer *dw;
	assert_int_equal(cairn_disk_writer_new(f->r, f->w, &d, NULL, &dw), 0);
	assert_int_equal(cairn_disk_writer_zeros(dw, 0, d.nchunks), 0);
	assert_int_equal(cairn_disk_writer_finish(dw), 0);
	cairn_disk_writer_free(dw);
	assert_true(d.has_digest2);
	struct cairn_chunk_digest *cd;
	assert_int_equal(cairn_chunk_digest_new(d.size, CS, &cd), 0);
	uint8_t *zeros = calloc(1, CS), want[CAIRN_DIGEST_LEN];
	for (uint64_t s = 0; s < d.nchunks; s++)
		cairn_chunk_digest_data(cd, s, zeros, cairn_disk_chunk_len(&d, s));
	cairn_chunk_digest_final(cd, want);
	cairn_chunk_digest_free(cd);
	free(zeros);
	assert_memory_equal(d.digest2, want, CAIRN_DIGEST_LEN);
	for (uint64_t s = 0; s < d.nchunks; s++)
		assert_true(cairn_id_is_zero(&d.map[s]));
	free(d.map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_any_order_same_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_reusable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_run, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
