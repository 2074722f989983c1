/* Unit tests for repo/disk_reader.c on a local repository: every slot is
 * delivered once with its own bytes (shared chunks fetched once, zero
 * slots as runs, a short last slot), skipped slots are not, concurrent
 * fetches on one reader, runs of consecutive slots in one call, and
 * damage names the pack and the slot. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/disk.h"
#include "repo/disk_reader.h"
#include "helpers.h"

#define CS (64u * 1024)
#define NSLOTS 300u
#define LAST_LEN 1000u
#define DISTINCT 40u
#define RUN_SLOTS 200u
#define RUN_ZERO 77u

struct fixture {
	char dir[64], repo[96];
	struct cairn_repo *r;
	struct cairn_disk d;
	cairn_id map[NSLOTS];
	uint8_t *content[NSLOTS]; /* NULL: a zero slot */
	_Atomic unsigned got[NSLOTS]; /* deliveries per slot */
	_Atomic unsigned bad;
};

/* Slot content: a zero slot every 7th, else one of DISTINCT chunks
 * (shared by many slots), the last slot short and its own. */
static size_t slot_len(uint64_t seq)
{
	return seq == NSLOTS - 1 ? LAST_LEN : CS;
}

static int chunk_of(uint64_t seq)
{
	if (seq % 7 == 3)
		return -1;
	return seq == NSLOTS - 1 ? (int)DISTINCT : (int)(seq * 13 % DISTINCT);
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&seed);
		memcpy(p + i, &v, MIN(8, len - i));
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-dreader-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	char err[256] = "";
	struct cairn_init_opts o = { .chunk_size = CS, .compression_level = 1, .encrypt = true,
				     .password = "pw" };
	if (cairn_repo_init(f->repo, &o, err, sizeof(err)) ||
	    cairn_repo_open(f->repo, "pw", &f->r, err, sizeof(err)) ||
	    cairn_repo_load_index(f->r))
		return -1;
	struct cairn_writer *w;
	if (cairn_writer_new(f->r, &w))
		return -1;
	uint8_t *chunks[DISTINCT + 1];
	cairn_id ids[DISTINCT + 1];
	for (unsigned k = 0; k <= DISTINCT; k++) {
		size_t len = k == DISTINCT ? LAST_LEN : CS;
		chunks[k] = malloc(CS);
		fill(chunks[k], len, k + 1);
		cairn_repo_chunk_id(f->r, chunks[k], len, &ids[k]);
		if (cairn_writer_put(w, CAIRN_BLOB_DATA, &ids[k], chunks[k], len, NULL, NULL))
			return -1;
	}
	if (cairn_writer_flush(w))
		return -1;
	cairn_writer_free(w);
	for (uint64_t s = 0; s < NSLOTS; s++) {
		int k = chunk_of(s);
		f->content[s] = k < 0 ? NULL : chunks[k];
		f->map[s] = k < 0 ? cairn_zero_id : ids[k];
	}
	f->d = (struct cairn_disk){ .name = "vda", .size = (uint64_t)(NSLOTS - 1) * CS + LAST_LEN,
				    .chunk_size = CS, .nchunks = NSLOTS, .map = f->map };
	/* the reader works from what a fresh open of the repository sees */
	cairn_repo_close(f->r);
	if (cairn_repo_open(f->repo, "pw", &f->r, err, sizeof(err)) || cairn_repo_load_index(f->r))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (unsigned k = 0; k <= DISTINCT; k++)
		for (uint64_t s = 0; s < NSLOTS; s++)
			if (chunk_of(s) == (int)k) {
				free(f->content[s]);
				break;
			}
	cairn_repo_close(f->r);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static int on_data(void *opaque, uint64_t seq, const void *data, size_t len)
{
	struct fixture *f = opaque;
	if (seq >= NSLOTS || !f->content[seq] || len != slot_len(seq) ||
	    memcmp(data, f->content[seq], len))
		atomic_fetch_add(&f->bad, 1);
	else
		atomic_fetch_add(&f->got[seq], 1);
	return 0;
}

static int on_zeros(void *opaque, uint64_t seq, uint64_t count)
{
	struct fixture *f = opaque;
	for (uint64_t s = seq; s < seq + count; s++)
		if (s >= NSLOTS || f->content[s])
			atomic_fetch_add(&f->bad, 1);
		else
			atomic_fetch_add(&f->got[s], 1);
	return 0;
}

static void reset(struct fixture *f)
{
	for (uint64_t s = 0; s < NSLOTS; s++)
		atomic_store(&f->got[s], 0);
	atomic_store(&f->bad, 0);
}

static void test_every_slot_once(void **state)
{
	struct fixture *f = *state;
	reset(f);
	struct cairn_dreader *rd;
	char err[512] = "";
	/* small ranges and budget: many reads, the budget's waits exercised */
	struct cairn_dreader_opts o = { .connections = 3, .max_range = 100000, .budget = 1 << 20 };
	assert_int_equal(cairn_dreader_new(f->r, &f->d, &o, &rd, err, sizeof(err)), 0);
	const struct cairn_dreader_cb cb = { .data = on_data, .zeros = on_zeros, .opaque = f };
	assert_int_equal(cairn_dreader_fetch(rd, 0, UINT64_MAX, NULL, &cb, NULL, err, sizeof(err)), 0);
	assert_int_equal(f->bad, 0);
	for (uint64_t s = 0; s < NSLOTS; s++)
		assert_int_equal(f->got[s], 1);
	/* each distinct chunk was fetched once, not once per slot */
	uint64_t stored = 0;
	for (unsigned k = 0; k <= DISTINCT; k++)
		for (uint64_t s = 0; s < NSLOTS; s++)
			if (chunk_of(s) == (int)k) {
				struct cairn_blob_info bi;
				assert_int_equal(cairn_repo_blob_info(f->r, &f->map[s], &bi), 0);
				stored += bi.stored_len;
				break;
			}
	assert_true(cairn_dreader_fetched_bytes(rd) >= stored);
	assert_true(cairn_dreader_fetched_bytes(rd) < stored + stored / 2);
	cairn_dreader_free(rd);
}

/* A disk of distinct chunks written in disk order, as a full backup
 * writes them: with runs, consecutive slots come in few calls, each
 * holding its slots' bytes back to back; a zero slot and the short last
 * slot end runs. */
struct run_fixture {
	uint8_t *content[RUN_SLOTS]; /* NULL: a zero slot */
	_Atomic unsigned got[RUN_SLOTS], calls, multi, bad;
};

static int on_run(void *opaque, uint64_t seq, const void *data, size_t len)
{
	struct run_fixture *f = opaque;
	const uint8_t *p = data;
	atomic_fetch_add(&f->calls, 1);
	if (len > CS)
		atomic_fetch_add(&f->multi, 1);
	for (size_t done = 0; done < len; seq++) {
		size_t n = seq == RUN_SLOTS - 1 ? LAST_LEN : CS;
		if (seq >= RUN_SLOTS || !f->content[seq] || len - done < n ||
		    memcmp(p + done, f->content[seq], n)) {
			atomic_fetch_add(&f->bad, 1);
			return 0;
		}
		atomic_fetch_add(&f->got[seq], 1);
		done += n;
	}
	return 0;
}

static void test_runs(void **state)
{
	struct fixture *fx = *state;
	struct run_fixture *f = calloc(1, sizeof(*f));
	cairn_id *map = calloc(RUN_SLOTS, sizeof(*map));
	assert_non_null(f);
	assert_non_null(map);
	struct cairn_writer *w;
	assert_int_equal(cairn_writer_new(fx->r, &w), 0);
	for (uint64_t s = 0; s < RUN_SLOTS; s++) {
		size_t len = s == RUN_SLOTS - 1 ? LAST_LEN : CS;
		if (s == RUN_ZERO) {
			map[s] = cairn_zero_id;
			continue;
		}
		f->content[s] = malloc(CS);
		fill(f->content[s], len, 1000 + s);
		cairn_repo_chunk_id(fx->r, f->content[s], len, &map[s]);
		assert_int_equal(cairn_writer_put(w, CAIRN_BLOB_DATA, &map[s], f->content[s], len,
						  NULL, NULL), 0);
	}
	assert_int_equal(cairn_writer_flush(w), 0);
	cairn_writer_free(w);
	struct cairn_disk d = { .name = "vdb", .size = (uint64_t)(RUN_SLOTS - 1) * CS + LAST_LEN,
				.chunk_size = CS, .nchunks = RUN_SLOTS, .map = map };
	struct cairn_dreader *rd;
	char err[512] = "";
	assert_int_equal(cairn_dreader_new(fx->r, &d, NULL, &rd, err, sizeof(err)), 0);
	const struct cairn_dreader_cb cb = { .data = on_run, .opaque = f, .runs = true };
	assert_int_equal(cairn_dreader_fetch(rd, 0, UINT64_MAX, NULL, &cb, NULL, err, sizeof(err)), 0);
	assert_int_equal(f->bad, 0);
	for (uint64_t s = 0; s < RUN_SLOTS; s++)
		assert_int_equal(f->got[s], s == RUN_ZERO ? 0 : 1);
	assert_true(f->multi > 0);
	assert_true(f->calls < RUN_SLOTS / 4);
	cairn_dreader_free(rd);
	for (uint64_t s = 0; s < RUN_SLOTS; s++)
		free(f->content[s]);
	free(map);
	free(f);
}

static void test_range_and_skip(void **state)
{
	struct fixture *f = *state;
	reset(f);
	struct cairn_dreader *rd;
	char err[512] = "";
	assert_int_equal(cairn_dreader_new(f->r, &f->d, NULL, &rd, err, sizeof(err)), 0);
	uint64_t skip[(NSLOTS + 63) / 64] = { 0 };
	for (uint64_t s = 100; s < 150; s += 2)
		skip[s / 64] |= 1ull << (s % 64);
	const struct cairn_dreader_cb cb = { .data = on_data, .zeros = on_zeros, .opaque = f };
	assert_int_equal(cairn_dreader_fetch(rd, 90, 70, skip, &cb, NULL, err, sizeof(err)), 0);
	assert_int_equal(f->bad, 0);
	for (uint64_t s = 0; s < NSLOTS; s++) {
		bool want = s >= 90 && s < 160 && !(s >= 100 && s < 150 && s % 2 == 0);
		assert_int_equal(f->got[s], want);
	}
	/* past the end: clipped */
	reset(f);
	assert_int_equal(cairn_dreader_fetch(rd, NSLOTS - 2, 100, NULL, &cb, NULL, err, sizeof(err)), 0);
	assert_int_equal(f->got[NSLOTS - 1] + f->got[NSLOTS - 2], 2);
	cairn_dreader_free(rd);
}

struct worker {
	struct fixture *f;
	struct cairn_dreader *rd;
	uint64_t first, count;
	int rc;
};

static void *fetch_thread(void *arg)
{
	struct worker *w = arg;
	char err[512];
	const struct cairn_dreader_cb cb = { .data = on_data, .zeros = on_zeros, .opaque = w->f };
	w->rc = cairn_dreader_fetch(w->rd, w->first, w->count, NULL, &cb, NULL, err, sizeof(err));
	return NULL;
}

static void test_concurrent_fetches(void **state)
{
	struct fixture *f = *state;
	reset(f);
	struct cairn_dreader *rd;
	char err[512] = "";
	struct cairn_dreader_opts o = { .connections = 2, .budget = 512 * 1024, .max_range = 200000 };
	assert_int_equal(cairn_dreader_new(f->r, &f->d, &o, &rd, err, sizeof(err)), 0);
	struct worker w[6];
	pthread_t tid[6];
	for (unsigned i = 0; i < 6; i++) {
		w[i] = (struct worker){ f, rd, i * 50, 50, -1 };
		assert_int_equal(pthread_create(&tid[i], NULL, fetch_thread, &w[i]), 0);
	}
	for (unsigned i = 0; i < 6; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(w[i].rc, 0);
	}
	assert_int_equal(f->bad, 0);
	for (uint64_t s = 0; s < NSLOTS; s++)
		assert_int_equal(f->got[s], 1);
	cairn_dreader_free(rd);
}

static int find_pack(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	static char *found;
	if (!path) {
		found = (char *)st;
		return 0;
	}
	if (flag == FTW_F && strstr(path, "/data/") && strrchr(path, '/')[1] != '.' &&
	    st->st_size > 1000) {
		snprintf(found, 512, "%s", path);
		return 1;
	}
	return 0;
}

static void test_damage_names_pack_and_slot(void **state)
{
	struct fixture *f = *state;
	char pack[512] = "", dir[160];
	find_pack(NULL, (const struct stat *)pack, 0, NULL);
	snprintf(dir, sizeof(dir), "%s/data", f->repo);
	assert_int_equal(nftw(dir, find_pack, 8, FTW_PHYS), 1);
	FILE *fp = fopen(pack, "r+b");
	assert_non_null(fp);
	/* the first blob of the pack starts at 0: damage its middle */
	fseek(fp, 200, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, 200, SEEK_SET);
	fputc(c ^ 0xff, fp);
	fclose(fp);
	struct cairn_dreader *rd;
	char err[512] = "";
	assert_int_equal(cairn_dreader_new(f->r, &f->d, NULL, &rd, err, sizeof(err)), 0);
	const struct cairn_dreader_cb cb = { .data = on_data, .zeros = on_zeros, .opaque = f };
	assert_int_equal(cairn_dreader_fetch(rd, 0, NSLOTS, NULL, &cb, NULL, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "damaged"));
	assert_non_null(strstr(err, "slot"));
	assert_non_null(strstr(err, strrchr(pack, '/') + 1));
	assert_null(strchr(err, '\n'));
	cairn_dreader_free(rd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_slot_once),
		cmocka_unit_test(test_range_and_skip),
		cmocka_unit_test(test_concurrent_fetches),
		cmocka_unit_test(test_damage_names_pack_and_slot),
		/* last: it adds a pack, which the damage test must not pick */
		cmocka_unit_test(test_runs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
