/* Unit tests for restore/journal.c: what a restore stores is what a
 * resumed one loads; a journal of another disk, a truncated one and a
 * file that is no journal are refused with a one-line reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "restore/journal.h"
#include "helpers.h"

#define NSLOTS 200u

struct fixture {
	char dir[64], target[96];
	cairn_id map[NSLOTS];
	struct cairn_disk d;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-journal-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->target, sizeof(f->target), "%s/out.raw", f->dir);
	for (unsigned i = 0; i < NSLOTS; i++)
		f->map[i].b[0] = (uint8_t)(i % 3), f->map[i].b[1] = (uint8_t)i;
	f->d = (struct cairn_disk){ .name = "vda", .size = NSLOTS * 65536ull - 7,
				    .chunk_size = 65536, .nchunks = NSLOTS, .map = f->map };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void test_store_load(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	struct restore_journal a, b;
	assert_int_equal(journal_init(&a, f->target, &f->d, err, sizeof(err)), 0);
	a.done[0] = 0x8000000000000001ull;
	a.done[3] = 0xff; /* slots 192..199 */
	assert_int_equal(journal_store(&a, err, sizeof(err)), 0);
	assert_int_equal(journal_init(&b, f->target, &f->d, err, sizeof(err)), 0);
	assert_int_equal(journal_load(&b, err, sizeof(err)), 0);
	assert_int_equal(b.nwords, 4);
	assert_memory_equal(a.done, b.done, a.nwords * sizeof(uint64_t));
	journal_remove(&a);
	assert_int_equal(journal_load(&b, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot resume"));
	journal_release(&a);
	journal_release(&b);
}

static void test_other_disk_refused(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	struct restore_journal a, b;
	assert_int_equal(journal_init(&a, f->target, &f->d, err, sizeof(err)), 0);
	assert_int_equal(journal_store(&a, err, sizeof(err)), 0);
	/* one chunk of the map differs: another snapshot */
	f->map[77].b[5] ^= 1;
	assert_int_equal(journal_init(&b, f->target, &f->d, err, sizeof(err)), 0);
	assert_int_equal(journal_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "another snapshot"));
	assert_null(strchr(err, '\n'));
	journal_release(&b);
	f->map[77].b[5] ^= 1;
	/* another chunk size over the same bytes */
	struct cairn_disk d2 = f->d;
	d2.chunk_size = 32768;
	d2.nchunks = NSLOTS / 2;
	assert_int_equal(journal_init(&b, f->target, &d2, err, sizeof(err)), 0);
	assert_int_equal(journal_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "chunk size"));
	journal_release(&b);
	journal_release(&a);
}

static void test_bad_files(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	struct restore_journal a;
	assert_int_equal(journal_init(&a, f->target, &f->d, err, sizeof(err)), 0);
	assert_int_equal(journal_store(&a, err, sizeof(err)), 0);
	assert_int_equal(truncate(a.path, 60), 0);
	assert_int_equal(journal_load(&a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	FILE *fp = fopen(a.path, "w");
	assert_non_null(fp);
	fputs("not a journal at all, but long enough to hold a header......", fp);
	fclose(fp);
	assert_int_equal(journal_load(&a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is not a restore journal"));
	journal_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_disk_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
