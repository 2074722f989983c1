/* Unit tests for serve's on-disk chunk cache: the ledger's bookkeeping and
 * choice of victims (serve/cache_ledger.c), and the cache directory
 * itself (serve/blob_cache.c) on a real encrypted repository: entries read
 * back verified, altered or torn entries refused and removed, the bound
 * kept with the least recently used going first, and a second instance on
 * the same directory (another process) seeing and counting the first's
 * entries; and the write-behind in front of it (serve/cache_writer.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "repo/internal.h"
#include "serve/blob_cache.h"
#include "serve/cache_ledger.h"
#include "serve/cache_writer.h"
#include "helpers.h"

static cairn_id id_of(unsigned n)
{
	cairn_id id = { { 0 } };
	uint64_t s = n + 1;
	for (size_t i = 0; i < sizeof(id.b); i += 8) {
		uint64_t v = rng_next(&s);
		memcpy(id.b + i, &v, 8);
	}
	return id;
}

static void test_ledger_bookkeeping(void **state)
{
	(void)state;
	struct cache_ledger *l;
	assert_int_equal(cache_ledger_new(&l), 0);
	for (unsigned i = 0; i < 1000; i++) { /* grows the table on the way */
		cairn_id id = id_of(i);
		assert_int_equal(cache_ledger_set(l, &id, 4096, i), 0);
	}
	assert_int_equal(cache_ledger_count(l), 1000);
	assert_int_equal(cache_ledger_bytes(l), 1000 * 4096);
	cairn_id id = id_of(7);
	assert_int_equal(cache_ledger_set(l, &id, 8192, 7), 0); /* replaces */
	assert_int_equal(cache_ledger_count(l), 1000);
	assert_int_equal(cache_ledger_bytes(l), 1001 * 4096);
	cache_ledger_remove(l, &id);
	cache_ledger_remove(l, &id); /* gone already: nothing */
	assert_int_equal(cache_ledger_count(l), 999);
	assert_int_equal(cache_ledger_bytes(l), 999 * 4096);
	cache_ledger_clear(l);
	assert_int_equal(cache_ledger_count(l), 0);
	assert_int_equal(cache_ledger_bytes(l), 0);
	cache_ledger_free(l);
}

static void test_ledger_victims_lru(void **state)
{
	(void)state;
	struct cache_ledger *l;
	assert_int_equal(cache_ledger_new(&l), 0);
	for (unsigned i = 0; i < 10; i++) {
		cairn_id id = id_of(i);
		assert_int_equal(cache_ledger_set(l, &id, 100, 1000 + i), 0);
	}
	/* 0 and 1 are used again: 2, 3, 4 are now the oldest */
	cairn_id a = id_of(0), b = id_of(1), unknown = id_of(99);
	cache_ledger_touch(l, &a, 5000);
	cache_ledger_touch(l, &b, 5001);
	cache_ledger_touch(l, &unknown, 6000); /* not recorded: nothing */
	cache_ledger_touch(l, &b, 10); /* older than known: kept newer */
	assert_int_equal(cache_ledger_count(l), 10);

	cairn_id *v;
	assert_int_equal(cache_ledger_victims(l, 1000, &v), 0); /* under: none */
	assert_null(v);
	long n = cache_ledger_victims(l, 700, &v);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < 3; i++) {
		cairn_id want = id_of(2 + i);
		assert_memory_equal(&v[i], &want, sizeof(want));
	}
	free(v);
	/* not removed by asking: the caller removes what it deleted */
	assert_int_equal(cache_ledger_bytes(l), 1000);
	n = cache_ledger_victims(l, 0, &v);
	assert_int_equal(n, 10);
	assert_memory_equal(&v[8], &a, sizeof(a)); /* the most recent last */
	assert_memory_equal(&v[9], &b, sizeof(b));
	free(v);
	cache_ledger_free(l);
}

/* ---- the cache directory on a real repository ---------------------------- */

struct fixture {
	char dir[64], repo[96], cache[96];
	struct cairn_repo *r;
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-cache-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->cache, sizeof(f->cache), "%s/cache", f->dir);
	char err[256] = "";
	struct cairn_init_opts o = { .chunk_size = CAIRN_MIN_CHUNK, .compression_level = 3,
				     .encrypt = true, .password = "pw" };
	if (cairn_repo_init(f->repo, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(f->repo, "pw", &f->r, err, sizeof(err)) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	cairn_repo_close(f->r);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* A chunk of n's incompressible data, its id, and its stored (encoded)
 * bytes in *stored (malloc'd) described by sb. */
static void make_blob(struct cairn_repo *r, unsigned n, uint8_t *data, cairn_id *id,
		      uint8_t **stored, struct cairn_stored_blob *sb)
{
	uint64_t s = n * 7919 + 1;
	for (size_t i = 0; i < CAIRN_MIN_CHUNK; i += 8) {
		uint64_t v = rng_next(&s);
		memcpy(data + i, &v, 8);
	}
	cairn_repo_chunk_id(r, data, CAIRN_MIN_CHUNK, id);
	struct scratch *sc = scratch_get(r);
	assert_non_null(sc);
	uint8_t flags = 0;
	assert_int_equal(blob_encode(r, sc, CAIRN_BLOB_DATA, id, data, CAIRN_MIN_CHUNK, NULL, &flags), 0);
	*stored = malloc(sc->a.len);
	assert_non_null(*stored);
	memcpy(*stored, sc->a.p, sc->a.len);
	*sb = (struct cairn_stored_blob){ .bytes = *stored, .len = (uint32_t)sc->a.len,
					  .raw_len = CAIRN_MIN_CHUNK, .type = CAIRN_BLOB_DATA,
					  .flags = flags };
	scratch_put(r, sc);
}

static void put_blob(struct fixture *f, struct blob_cache *c, unsigned n, cairn_id *id)
{
	uint8_t *data = malloc(CAIRN_MIN_CHUNK), *stored;
	struct cairn_stored_blob sb;
	make_blob(f->r, n, data, id, &stored, &sb);
	assert_int_equal(blob_cache_put(c, id, &sb), 0);
	free(stored);
	free(data);
	usleep(10000); /* file times are as coarse as the kernel's tick */
}

static void entry_file(const struct fixture *f, const cairn_id *id, char *out, size_t len)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	snprintf(out, len, "%s/blobs/%.2s/%s", f->cache, hex, hex);
}

static int get_blob(struct fixture *f, struct blob_cache *c, const cairn_id *id, uint8_t *buf)
{
	size_t len = 0;
	int rc = blob_cache_get(c, f->r, id, buf, CAIRN_MIN_CHUNK, &len);
	if (rc == 1)
		assert_int_equal(len, CAIRN_MIN_CHUNK);
	return rc;
}

static void test_cache_roundtrip_and_damage(void **state)
{
	struct fixture *f = *state;
	struct blob_cache *c;
	char err[256] = "", path[256];
	assert_int_equal(blob_cache_open(f->cache, 1 << 20, &c, err, sizeof(err)), 0);
	uint8_t *data = malloc(CAIRN_MIN_CHUNK), *buf = malloc(CAIRN_MIN_CHUNK), *stored;
	cairn_id id[4];
	struct cairn_stored_blob sb;
	for (unsigned i = 0; i < 4; i++) {
		make_blob(f->r, i, data, &id[i], &stored, &sb);
		assert_int_equal(blob_cache_put(c, &id[i], &sb), 0);
		free(stored);
	}
	assert_int_equal(get_blob(f, c, &id[3], buf), 1);
	assert_memory_equal(buf, data, CAIRN_MIN_CHUNK);
	cairn_id absent = id_of(1234);
	assert_int_equal(get_blob(f, c, &absent, buf), 0);

	/* the entry holds no plaintext: the stored bytes are encrypted */
	entry_file(f, &id[3], path, sizeof(path));
	FILE *fp = fopen(path, "rb");
	uint8_t *file = malloc(CAIRN_MIN_CHUNK + 1024);
	size_t n = fread(file, 1, CAIRN_MIN_CHUNK + 1024, fp);
	fclose(fp);
	assert_true(n > CAIRN_MIN_CHUNK);
	assert_null(memmem(file, n, data, 64));
	free(file);

	/* altered: one byte of the ciphertext */
	entry_file(f, &id[0], path, sizeof(path));
	int fd = open(path, O_RDWR);
	uint8_t byte;
	assert_int_equal(pread(fd, &byte, 1, 500), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, 500), 1);
	close(fd);
	assert_int_equal(get_blob(f, c, &id[0], buf), 0);
	assert_int_equal(access(path, F_OK), -1); /* removed */
	/* torn: cut short */
	entry_file(f, &id[1], path, sizeof(path));
	assert_int_equal(truncate(path, 5000), 0);
	assert_int_equal(get_blob(f, c, &id[1], buf), 0);
	assert_int_equal(access(path, F_OK), -1);
	/* another chunk's entry under this id: the tag binds the id */
	char other[256];
	entry_file(f, &id[3], other, sizeof(other));
	entry_file(f, &id[2], path, sizeof(path));
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(get_blob(f, c, &id[2], buf), 0);
	blob_cache_close(c);
	free(data);
	free(buf);
}

static void test_cache_bound_lru_and_sharing(void **state)
{
	struct fixture *f = *state;
	struct blob_cache *c, *c2;
	char err[256] = "", path[256];
	/* an entry takes 68 KiB on disk (64 KiB of data, the header and the
	 * AEAD's bytes, in 4 KiB blocks): 10 fit in 700 KiB */
	uint64_t max = 700 * 1024;
	assert_int_equal(blob_cache_open(f->cache, max, &c, err, sizeof(err)), 0);
	cairn_id id[40];
	uint8_t *buf = malloc(CAIRN_MIN_CHUNK);
	for (unsigned i = 0; i < 10; i++)
		put_blob(f, c, i, &id[i]);
	assert_true(blob_cache_bytes(c) <= max);
	assert_int_equal(get_blob(f, c, &id[0], buf), 1); /* 0 is used again */
	usleep(10000);
	/* 8 more: each pass evicts 2 down to 90%, the oldest first, which
	 * leaves 9 and 0 of the first ten */
	for (unsigned i = 10; i < 18; i++) {
		put_blob(f, c, i, &id[i]);
		assert_true(blob_cache_bytes(c) <= max);
	}
	assert_int_equal(get_blob(f, c, &id[0], buf), 1); /* kept: recently used */
	assert_int_equal(get_blob(f, c, &id[9], buf), 1);
	for (unsigned i = 1; i < 9; i++)
		assert_int_equal(get_blob(f, c, &id[i], buf), 0); /* went first */
	assert_int_equal(get_blob(f, c, &id[17], buf), 1);

	/* a second instance (another process) sees the first's entries, and
	 * its eviction counts them */
	assert_int_equal(blob_cache_open(f->cache, max, &c2, err, sizeof(err)), 0);
	uint64_t shared = blob_cache_bytes(c2);
	assert_true(shared > 0 && shared <= max);
	assert_int_equal(get_blob(f, c2, &id[17], buf), 1);
	for (unsigned i = 20; i < 40; i++)
		put_blob(f, i % 2 ? c : c2, i, &id[i]);
	/* on disk (a view with no bound): each instance misses at most what
	 * the other added since its last pass */
	struct blob_cache *all;
	assert_int_equal(blob_cache_open(f->cache, UINT64_MAX / 2, &all, err, sizeof(err)), 0);
	assert_true(blob_cache_bytes(all) <= max + 10 * 68 * 1024);
	blob_cache_close(all);
	blob_cache_close(c);
	blob_cache_close(c2);
	/* an instance that opens an overfull cache brings it back under */
	assert_int_equal(blob_cache_open(f->cache, max, &c, err, sizeof(err)), 0);
	assert_true(blob_cache_bytes(c) <= max);
	assert_int_equal(get_blob(f, c, &id[39], buf), 1);
	blob_cache_close(c);
	snprintf(path, sizeof(path), "%s/tmp", f->cache);
	assert_int_equal(rmdir(path), 0); /* empty: no temporary file left */
	free(buf);
}

/* Write-behind: inline before its thread starts; queued chunks are all
 * written by the time it is freed; a chunk that does not fit the queue is
 * dropped and counted, never half written. */
static void test_cache_writer(void **state)
{
	struct fixture *f = *state;
	struct blob_cache *c;
	struct cache_writer *w;
	char err[256] = "", path[256];
	assert_int_equal(blob_cache_open(f->cache, 64 << 20, &c, err, sizeof(err)), 0);
	uint8_t *data = malloc(CAIRN_MIN_CHUNK), *buf = malloc(CAIRN_MIN_CHUNK), *stored;
	struct cairn_stored_blob sb;
	cairn_id id[33];

	assert_int_equal(cache_writer_new(c, 8 << 20, &w), 0);
	make_blob(f->r, 0, data, &id[0], &stored, &sb);
	assert_int_equal(cache_writer_queue(w, &id[0], &sb), 0);
	free(stored);
	entry_file(f, &id[0], path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0); /* not started: written at once */
	assert_int_equal(cache_writer_start(w), 0);
	for (unsigned i = 1; i < 33; i++) {
		make_blob(f->r, i, data, &id[i], &stored, &sb);
		assert_int_equal(cache_writer_queue(w, &id[i], &sb), 0);
		memset(stored, 0, sb.len); /* the queue holds its own copy */
		free(stored);
	}
	cache_writer_free(w);
	for (unsigned i = 0; i < 33; i++)
		assert_int_equal(get_blob(f, c, &id[i], buf), 1);

	assert_int_equal(cache_writer_new(c, CAIRN_MIN_CHUNK / 2, &w), 0);
	assert_int_equal(cache_writer_start(w), 0);
	cairn_id big;
	make_blob(f->r, 100, data, &big, &stored, &sb);
	assert_true(sb.len > CAIRN_MIN_CHUNK / 2);
	assert_int_equal(cache_writer_queue(w, &big, &sb), -ENOBUFS);
	assert_int_equal(cache_writer_dropped(w), 1);
	free(stored);
	cache_writer_free(w);
	assert_int_equal(get_blob(f, c, &big, buf), 0);
	blob_cache_close(c);
	free(data);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ledger_bookkeeping),
		cmocka_unit_test(test_ledger_victims_lru),
		cmocka_unit_test_setup_teardown(test_cache_roundtrip_and_damage, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cache_bound_lru_and_sharing, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cache_writer, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
