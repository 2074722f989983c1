/* Unit tests for serve's disk reader (serve/reader.c) on a real encrypted
 * repository in a temporary directory: sequential reads (with read-ahead)
 * and random reads from several threads return the disk's bytes; a second
 * reader on the same cache directory fetches nothing; a damaged pack is an
 * error, never wrong data. Run under ASan by `make asan`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "repo/disk.h"
#include "repo/repo.h"
#include "serve/reader.h"
#include "helpers.h"

#define CS CAIRN_MIN_CHUNK
#define NSLOTS 300
#define DISK_SIZE ((uint64_t)NSLOTS * CS - 1000) /* a short last slot */

struct fixture {
	char dir[64], repo[96], cache[96];
	struct cairn_repo *r;
	struct cairn_disk d;
	uint8_t *image;
};

/* Slot contents: every 7th slot zero, every 5th a copy of slot 0's data
 * (shared chunk), the rest random. */
static void fill_image(uint8_t *img)
{
	uint64_t s = 42;
	for (uint64_t seq = 0; seq < NSLOTS; seq++) {
		uint8_t *p = img + seq * CS;
		size_t len = (size_t)MIN((uint64_t)CS, DISK_SIZE - seq * CS);
		if (seq % 7 == 3)
			memset(p, 0, len);
		else if (seq % 5 == 4 && len == CS)
			memcpy(p, img, CS);
		else
			for (size_t i = 0; i < len; i += 8) {
				uint64_t v = rng_next(&s);
				memcpy(p + i, &v, MIN((size_t)8, len - i));
			}
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-sreader-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->cache, sizeof(f->cache), "%s/cache", f->dir);
	char err[256] = "";
	struct cairn_init_opts o = { .chunk_size = CS, .compression_level = 3, .encrypt = true,
				     .password = "pw" };
	if (cairn_repo_init(f->repo, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(f->repo, "pw", &f->r, err, sizeof(err)) < 0 ||
	    cairn_repo_load_index(f->r) < 0)
		return -1;
	f->image = calloc(1, (size_t)NSLOTS * CS);
	fill_image(f->image);
	f->d = (struct cairn_disk){ .name = "vda", .size = DISK_SIZE, .chunk_size = CS,
				    .nchunks = NSLOTS, .map = calloc(NSLOTS, sizeof(cairn_id)) };
	struct cairn_writer *w;
	if (cairn_writer_new(f->r, &w) < 0)
		return -1;
	for (uint64_t seq = 0; seq < NSLOTS; seq++) {
		size_t len = cairn_disk_chunk_len(&f->d, seq);
		const uint8_t *p = f->image + seq * CS;
		if (all_zero(p, len))
			continue;
		cairn_repo_chunk_id(f->r, p, len, &f->d.map[seq]);
		if (cairn_writer_put(w, CAIRN_BLOB_DATA, &f->d.map[seq], p, len, NULL, NULL) < 0)
			return -1;
	}
	int rc = cairn_writer_flush(w);
	cairn_writer_free(w);
	*state = f;
	return rc;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cairn_repo_close(f->r);
	rm_rf(f->dir);
	free(f->d.map);
	free(f->image);
	free(f);
	return 0;
}

static struct cairn_serve_reader *new_reader(struct fixture *f, const char *cache_dir)
{
	char err[256] = "";
	/* a small window: read-ahead runs several steps on this disk */
	struct cairn_serve_reader_opts o = { .readahead_bytes = 2u << 20, .cache_dir = cache_dir };
	struct cairn_serve_reader *rd;
	assert_int_equal(cairn_serve_reader_new(f->r, &f->d, &o, &rd, err, sizeof(err)), 0);
	assert_int_equal(cairn_serve_reader_start(rd, err, sizeof(err)), 0);
	assert_int_equal(cairn_serve_reader_size(rd), DISK_SIZE);
	return rd;
}

static void read_sequentially(struct fixture *f, struct cairn_serve_reader *rd, size_t req)
{
	struct cairn_read_cursor cur = { 0 };
	uint8_t *buf = malloc(req);
	char err[256] = "";
	for (uint64_t off = 0; off < DISK_SIZE; off += req) {
		size_t n = (size_t)MIN((uint64_t)req, DISK_SIZE - off);
		assert_int_equal(cairn_serve_reader_pread(rd, &cur, buf, n, off, err, sizeof(err)), 0);
		assert_memory_equal(buf, f->image + off, n);
	}
	free(buf);
}

static void test_sequential_then_warm_cache(void **state)
{
	struct fixture *f = *state;
	struct cairn_serve_reader *rd = new_reader(f, f->cache);
	read_sequentially(f, rd, 1u << 20);
	assert_true(cairn_serve_reader_fetched_bytes(rd) > 0);
	cairn_serve_reader_free(rd);
	/* a new reader (a later serve): everything from the cache directory */
	rd = new_reader(f, f->cache);
	read_sequentially(f, rd, 300000);
	assert_int_equal(cairn_serve_reader_fetched_bytes(rd), 0);
	cairn_serve_reader_free(rd);
}

struct worker {
	struct fixture *f;
	struct cairn_serve_reader *rd;
	uint64_t seed;
	int failures;
};

static void *random_reads(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = malloc(3 * CS);
	char err[256] = "";
	struct cairn_read_cursor cur = { 0 };
	for (int i = 0; i < 200; i++) {
		uint64_t off = rng_next(&w->seed) % DISK_SIZE;
		uint64_t want = rng_next(&w->seed) % (3 * CS) + 1; /* MIN evaluates twice */
		size_t n = (size_t)MIN(want, DISK_SIZE - off);
		int rc = cairn_serve_reader_pread(w->rd, &cur, buf, n, off, err, sizeof(err));
		if (rc < 0 || memcmp(buf, w->f->image + off, n)) {
			fprintf(stderr, "read %zu at %llu: %s\n", n, (unsigned long long)off,
				rc < 0 ? err : "wrong data");
			w->failures++;
		}
	}
	free(buf);
	return NULL;
}

static void test_random_reads_in_parallel(void **state)
{
	struct fixture *f = *state;
	struct cairn_serve_reader *rd = new_reader(f, NULL);
	struct worker w[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .f = f, .rd = rd, .seed = 1000 + (uint64_t)i };
		assert_int_equal(pthread_create(&t[i], NULL, random_reads, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	/* zero slots are holes, the rest data */
	uint64_t len;
	bool zero;
	cairn_serve_reader_extent(rd, 3 * CS, DISK_SIZE, &len, &zero);
	assert_true(zero);
	assert_int_equal(len, CS);
	cairn_serve_reader_extent(rd, 0, 2 * CS, &len, &zero);
	assert_false(zero);
	assert_int_equal(len, 2 * CS);
	cairn_serve_reader_free(rd);
}

/* Flips a byte in the middle of every pack. */
static void damage_packs(const char *repo)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/data", repo);
	DIR *top = opendir(path);
	assert_non_null(top);
	for (struct dirent *de; (de = readdir(top));) {
		if (de->d_name[0] == '.')
			continue;
		char sub[600];
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		DIR *d = opendir(sub);
		for (struct dirent *pe; d && (pe = readdir(d));) {
			if (pe->d_name[0] == '.')
				continue;
			char pack[900];
			snprintf(pack, sizeof(pack), "%s/%s", sub, pe->d_name);
			int fd = open(pack, O_RDWR);
			struct stat st;
			assert_int_equal(fstat(fd, &st), 0);
			uint8_t b;
			assert_int_equal(pread(fd, &b, 1, st.st_size / 2), 1);
			b ^= 1;
			assert_int_equal(pwrite(fd, &b, 1, st.st_size / 2), 1);
			close(fd);
		}
		if (d)
			closedir(d);
	}
	closedir(top);
}

static void test_damage_is_an_error(void **state)
{
	struct fixture *f = *state;
	damage_packs(f->repo);
	struct cairn_serve_reader *rd = new_reader(f, f->cache);
	uint8_t *buf = malloc(DISK_SIZE);
	char err[512] = "";
	int rc = cairn_serve_reader_pread(rd, NULL, buf, DISK_SIZE, 0, err, sizeof(err));
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(err, "damaged"));
	cairn_serve_reader_free(rd);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sequential_then_warm_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_reads_in_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_is_an_error, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
