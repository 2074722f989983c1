/* Unit tests for the anomaly guard's arithmetic (repo/anomaly.c): the
 * measure of one disk, the verdict against a history (median change,
 * pooled incompressible share, which records count), the absolute rule
 * without a history, the minimum of new data, the manifest record both
 * ways, and the threshold spec of cairn.conf and --guard. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repo/anomaly.h"

#define MiB (1024ull * 1024)
#define DISK (1024 * MiB)
/* shares go through byte counts: equal to a few parts in a billion */
#define near(a, b) ((a) - (b) < 1e-6 && (b) - (a) < 1e-6)

/* A past record that counts: judged against something, not suspicious. */
static struct cairn_anomaly past(double change, double incompressible)
{
	struct cairn_anomaly a;
	uint64_t raw = (uint64_t)(change * DISK);
	cairn_anomaly_measure(&a, DISK, raw, (uint64_t)((double)raw * incompressible));
	a.basis = CAIRN_ANOMALY_HISTORY;
	return a;
}

/* The verdict on a backup that wrote `change` of the disk anew, stored
 * at `incompressible` of its size, against hist[0..n). */
static struct cairn_anomaly judge(double change, double incompressible,
				  const struct cairn_anomaly *hist, size_t n,
				  const struct cairn_guard_opts *o)
{
	const struct cairn_anomaly *h[16];
	for (size_t i = 0; i < n; i++)
		h[i] = &hist[i];
	struct cairn_anomaly a;
	uint64_t raw = (uint64_t)(change * DISK);
	cairn_anomaly_measure(&a, DISK, raw, (uint64_t)((double)raw * incompressible));
	cairn_anomaly_decide(&a, h, n, true, o);
	return a;
}

static void test_measure(void **state)
{
	(void)state;
	struct cairn_anomaly a;
	cairn_anomaly_measure(&a, 1000, 250, 200);
	assert_true(a.present);
	assert_true(a.change == 0.25);
	assert_true(a.incompressible == 0.8);
	/* nothing new: nothing to say about compression, and no division by 0 */
	cairn_anomaly_measure(&a, 1000, 0, 0);
	assert_true(a.change == 0 && a.incompressible == 0);
	cairn_anomaly_measure(&a, 0, 0, 0);
	assert_true(a.change == 0);
}

static void test_first_backup_never_alarms(void **state)
{
	(void)state;
	struct cairn_anomaly a;
	cairn_anomaly_measure(&a, DISK, DISK, DISK); /* all new, all random */
	cairn_anomaly_decide(&a, NULL, 0, false, NULL);
	assert_int_equal(a.basis, CAIRN_ANOMALY_FIRST);
	assert_false(a.suspicious);
}

static void test_jump_against_history(void **state)
{
	(void)state;
	struct cairn_anomaly h[3] = { past(0.01, 0.35), past(0.02, 0.40), past(0.015, 0.30) };
	/* a guest encrypting its disk: most of it new, nothing compresses */
	struct cairn_anomaly a = judge(0.80, 1.0, h, 3, NULL);
	assert_int_equal(a.basis, CAIRN_ANOMALY_HISTORY);
	assert_int_equal(a.samples, 3);
	assert_true(near(a.base_change, 0.015)); /* the median */
	assert_true(a.base_incompressible > 0.30 && a.base_incompressible < 0.40);
	assert_true(a.suspicious);
	/* the next night, an ordinary 1 % of compressible data */
	a = judge(0.01, 0.35, h, 3, NULL);
	assert_false(a.suspicious);
	/* much change, but it compresses as usual: an upgrade, not encryption */
	a = judge(0.80, 0.45, h, 3, NULL);
	assert_false(a.suspicious);
	/* incompressible, but no more than factor x the usual change */
	a = judge(0.07, 1.0, h, 3, NULL);
	assert_false(a.suspicious);
}

static void test_change_thresholds(void **state)
{
	(void)state;
	/* a VM that usually changes 10 %: 45 % is 4.5x, under factor 5 */
	struct cairn_anomaly h[2] = { past(0.10, 0.3), past(0.10, 0.3) };
	assert_false(judge(0.45, 1.0, h, 2, NULL).suspicious);
	assert_true(judge(0.55, 1.0, h, 2, NULL).suspicious);
	/* a VM that barely changes: 5x of almost nothing is still under
	 * min-change (20 %) */
	struct cairn_anomaly quiet[1] = { past(0.001, 0.3) };
	assert_false(judge(0.15, 1.0, quiet, 1, NULL).suspicious);
	assert_true(judge(0.25, 1.0, quiet, 1, NULL).suspicious);
	/* thresholds from the configuration */
	struct cairn_guard_opts o = { .factor = 3, .min_change = 0.1 };
	assert_true(judge(0.35, 1.0, h, 2, &o).suspicious);
	assert_true(judge(0.35, 1.0, h, 2, &o).thresholds.factor == 3);
}

static void test_incompressible_history_gives_no_verdict(void **state)
{
	(void)state;
	/* a media server, or a guest already encrypted inside: new data never
	 * compresses, so compression cannot tell encryption */
	struct cairn_anomaly h[2] = { past(0.02, 0.98), past(0.02, 0.99) };
	assert_false(judge(0.90, 1.0, h, 2, NULL).suspicious);
}

static void test_history_records_that_count(void **state)
{
	(void)state;
	struct cairn_anomaly h[5] = { past(0.80, 1.0), past(0.01, 0.3), past(0.01, 0.3),
				      past(0.01, 0.3), past(0.01, 0.3) };
	h[0].suspicious = true; /* an earlier alarm must not become the norm */
	struct cairn_anomaly a = judge(0.80, 1.0, h, 5, NULL);
	assert_int_equal(a.samples, 4);
	assert_true(near(a.base_change, 0.01));
	assert_true(a.suspicious);
	/* first backups and snapshots without a record do not count */
	h[0].suspicious = false;
	h[0].basis = CAIRN_ANOMALY_FIRST;
	h[1].present = false;
	a = judge(0.80, 1.0, h, 5, NULL);
	assert_int_equal(a.samples, 3);
	/* at most `history` records, the first ones given (newest first) */
	struct cairn_guard_opts o = { .history = 2 };
	struct cairn_anomaly busy[3] = { past(0.30, 0.3), past(0.40, 0.3), past(0.01, 0.3) };
	a = judge(0.90, 1.0, busy, 3, &o);
	assert_int_equal(a.samples, 2);
	assert_true(near(a.base_change, 0.35)); /* median of two: their mean */
	assert_false(a.suspicious);
}

static void test_absolute_rule_and_minimum(void **state)
{
	(void)state;
	/* an earlier backup, but no record to compare with (it was the first,
	 * or made before the guard) */
	struct cairn_anomaly a = judge(0.60, 0.97, NULL, 0, NULL);
	assert_int_equal(a.basis, CAIRN_ANOMALY_ABSOLUTE);
	assert_true(a.suspicious);
	assert_false(judge(0.40, 1.0, NULL, 0, NULL).suspicious);
	assert_false(judge(0.60, 0.90, NULL, 0, NULL).suspicious);
	/* under min-new nothing alarms, whatever the shares */
	struct cairn_anomaly small;
	cairn_anomaly_measure(&small, 8 * MiB, 8 * MiB, 8 * MiB);
	cairn_anomaly_decide(&small, NULL, 0, true, NULL);
	assert_false(small.suspicious);
	struct cairn_guard_opts o = { .min_new_bytes = 4 * MiB };
	cairn_anomaly_decide(&small, NULL, 0, true, &o);
	assert_true(small.suspicious);
}

static void test_record_round_trip(void **state)
{
	(void)state;
	struct cairn_anomaly h[1] = { past(0.01, 0.3) };
	struct cairn_anomaly a = judge(0.80, 1.0, h, 1, NULL), b;
	json_t *j = cairn_anomaly_to_json(&a);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "suspicious")));
	assert_true(json_real_value(json_object_get(json_object_get(j, "thresholds"), "factor")) ==
		    CAIRN_GUARD_FACTOR);
	cairn_anomaly_from_json(j, &b);
	assert_true(b.present && b.suspicious);
	assert_int_equal(b.basis, CAIRN_ANOMALY_HISTORY);
	assert_int_equal(b.new_raw, a.new_raw);
	assert_true(b.change == a.change && b.base_change == a.base_change);
	assert_int_equal(b.thresholds.min_new_bytes, CAIRN_GUARD_MIN_NEW_BYTES);
	json_decref(j);
	/* a malformed record is ignored, never fatal */
	j = json_pack("{s:s}", "change", "lots");
	cairn_anomaly_from_json(j, &b);
	assert_false(b.present);
	json_decref(j);
	cairn_anomaly_from_json(NULL, &b);
	assert_false(b.present);
}

static void test_spec(void **state)
{
	(void)state;
	struct cairn_guard_opts o = { 0 };
	char err[300];
	assert_int_equal(cairn_guard_parse("off", &o, err, sizeof(err)), 0);
	assert_true(o.off);
	assert_int_equal(cairn_guard_parse("on", &o, err, sizeof(err)), 0);
	assert_false(o.off);
	assert_int_equal(cairn_guard_parse("factor=8x, incompressible=85% history=14 min-new=64M",
					   &o, err, sizeof(err)), 0);
	assert_true(o.factor == 8 && o.incompressible == 0.85);
	assert_int_equal(o.history, 14);
	assert_int_equal(o.min_new_bytes, 64 * MiB);
	struct cairn_guard_opts r = cairn_guard_resolve(&o);
	assert_true(r.min_change == CAIRN_GUARD_MIN_CHANGE);
	assert_true(r.factor == 8);
	assert_int_equal(cairn_guard_parse("min-change=150%", &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad value for min-change"));
	assert_int_equal(cairn_guard_parse("history=0", &o, err, sizeof(err)), -EINVAL);
	assert_int_equal(cairn_guard_parse("factor", &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not KEY=VALUE"));
	assert_int_equal(cairn_guard_parse("speed=2", &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown key speed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_measure),
		cmocka_unit_test(test_first_backup_never_alarms),
		cmocka_unit_test(test_jump_against_history),
		cmocka_unit_test(test_change_thresholds),
		cmocka_unit_test(test_incompressible_history_gives_no_verdict),
		cmocka_unit_test(test_history_records_that_count),
		cmocka_unit_test(test_absolute_rule_and_minimum),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
