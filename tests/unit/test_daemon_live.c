/* Unit tests for daemon/live.c (the queue the console hands jobs to the
 * scheduler through) and daemon/history.c (the job history). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/history.h"
#include "daemon/live.h"

static void test_queue(void **state)
{
	(void)state;
	struct cairn_live l;
	cairn_live_init(&l);
	char name[128];
	assert_false(cairn_live_next_request(&l, name, sizeof(name)));
	assert_int_equal(cairn_live_request(&l, "a"), 0);
	assert_int_equal(cairn_live_request(&l, "b"), 0);
	assert_int_equal(cairn_live_request(&l, "a"), -EALREADY);
	assert_true(cairn_live_next_request(&l, name, sizeof(name)));
	assert_string_equal(name, "a");
	cairn_live_begin(&l, "a");
	assert_int_equal(cairn_live_request(&l, "a"), -EALREADY); /* running */
	cairn_live_progress(&l, "job a vm x: 50%");
	struct cairn_live copy;
	cairn_live_snapshot(&l, &copy);
	assert_string_equal(copy.running, "a");
	assert_string_equal(copy.progress, "job a vm x: 50%");
	assert_int_equal(copy.nqueue, 1);
	cairn_live_end(&l);
	assert_int_equal(cairn_live_request(&l, "a"), 0);
	for (int i = 0; i < CAIRN_LIVE_QUEUE - 2; i++) {
		snprintf(name, sizeof(name), "j%d", i);
		assert_int_equal(cairn_live_request(&l, name), 0);
	}
	assert_int_equal(cairn_live_request(&l, "one-too-many"), -ENOSPC);
	assert_true(cairn_live_next_request(&l, name, sizeof(name)));
	assert_string_equal(name, "b");
	cairn_live_destroy(&l);
}

static void test_verify_slots(void **state)
{
	(void)state;
	struct cairn_live l;
	cairn_live_init(&l);
	for (int i = 0; i < CAIRN_LIVE_VERIFY; i++)
		assert_int_equal(cairn_live_verify_begin(&l, "r", "latest"), i);
	assert_int_equal(cairn_live_verify_begin(&l, "r", "latest"), -EBUSY);
	cairn_live_verify_end(&l, 3, 0, "ok");
	assert_int_equal(cairn_live_verify_begin(&l, "r", "abcd"), 3); /* the ended slot */
	assert_string_equal(l.verify[3].snapshot, "abcd");
	assert_int_equal(l.verify[3].end_ns, 0);
	cairn_live_destroy(&l);
}

static void test_history(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-history-XXXXXX", err[512] = "", path[600];
	assert_non_null(mkdtemp(dir));
	struct cairn_run_record *v;
	size_t n;
	assert_int_equal(cairn_history_load(dir, 10, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(v);
	for (int i = 0; i < 5; i++) {
		struct cairn_run_record r = { .ok = i != 3, .start_ns = i, .end_ns = i + 1 };
		snprintf(r.job, sizeof(r.job), "nightly");
		snprintf(r.vm, sizeof(r.vm), "vm%d", i);
		snprintf(r.message, sizeof(r.message), "run \"%d\"\n", i);
		assert_int_equal(cairn_history_append(dir, &r, err, sizeof(err)), 0);
	}
	/* a torn last line, as a crash mid-append leaves it */
	snprintf(path, sizeof(path), "%s/history.jsonl", dir);
	FILE *f = fopen(path, "a");
	fputs("{\"job\":\"nigh", f);
	fclose(f);
	assert_int_equal(cairn_history_load(dir, 3, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].vm, "vm4"); /* newest first */
	assert_string_equal(v[1].vm, "vm3");
	assert_false(v[1].ok);
	assert_string_equal(v[1].message, "run \"3\"\n");
	assert_int_equal(v[2].end_ns, 3);
	free(v);
	unlink(path);
	rmdir(dir);
}

static void test_history_bounded(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-history-XXXXXX", err[512] = "", path[600];
	assert_non_null(mkdtemp(dir));
	struct cairn_run_record r = { .ok = true };
	snprintf(r.job, sizeof(r.job), "j");
	memset(r.message, 'x', sizeof(r.message) - 1);
	for (int i = 0; i < 4000; i++) {
		snprintf(r.vm, sizeof(r.vm), "vm%d", i);
		assert_int_equal(cairn_history_append(dir, &r, err, sizeof(err)), 0);
	}
	snprintf(path, sizeof(path), "%s/history.jsonl", dir);
	FILE *f = fopen(path, "r");
	fseek(f, 0, SEEK_END);
	assert_true(ftell(f) <= (long)CAIRN_HISTORY_MAX_BYTES);
	fclose(f);
	struct cairn_run_record *v;
	size_t n;
	assert_int_equal(cairn_history_load(dir, 1, &v, &n, err, sizeof(err)), 0);
	assert_string_equal(v[0].vm, "vm3999");
	free(v);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_verify_slots),
		cmocka_unit_test(test_history),
		cmocka_unit_test(test_history_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
