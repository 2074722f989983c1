/* Unit tests for repo/retention.c with fixed dates (all UTC). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "repo/retention.h"

/* Unix nanoseconds of a UTC "YYYY-MM-DD HH:MM" */
static int64_t at(const char *when)
{
	struct tm tm = { 0 };
	assert_non_null(strptime(when, "%Y-%m-%d %H:%M", &tm));
	return (int64_t)timegm(&tm) * 1000000000LL;
}

static void fill(struct cairn_retention_item *items, const char *const *when, size_t n)
{
	memset(items, 0, n * sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i].time_ns = at(when[i]);
}

/* "1010..." — which items are kept, in input order */
static void assert_kept(const struct cairn_retention_item *items, size_t n, const char *want)
{
	char got[64];
	for (size_t i = 0; i < n; i++)
		got[i] = items[i].reasons ? '1' : '0';
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void test_keep_last_unsorted_input(void **state)
{
	(void)state;
	const char *when[] = { "2024-01-03 10:00", "2024-01-01 10:00", "2024-01-05 10:00",
			       "2024-01-02 10:00", "2024-01-04 10:00" };
	struct cairn_retention_item it[5];
	fill(it, when, 5);
	struct cairn_keep_policy p = { .last = 2 };
	assert_int_equal(cairn_retention_apply(&p, it, 5), 0);
	assert_kept(it, 5, "00101");
	assert_int_equal(it[2].reasons, CAIRN_KEEP_LAST);
}

static void test_daily_same_day_and_gaps(void **state)
{
	(void)state;
	/* three on the 10th, none on the 9th, two on the 8th, one on the 7th */
	const char *when[] = { "2024-05-10 01:00", "2024-05-10 13:00", "2024-05-10 23:59",
			       "2024-05-08 00:00", "2024-05-08 12:00", "2024-05-07 12:00" };
	struct cairn_retention_item it[6];
	fill(it, when, 6);
	struct cairn_keep_policy p = { .daily = 2 };
	assert_int_equal(cairn_retention_apply(&p, it, 6), 0);
	/* the newest of the 10th and of the 8th; days without a snapshot
	 * do not use up the count */
	assert_kept(it, 6, "001010");
}

static void test_day_boundary_is_utc(void **state)
{
	(void)state;
	/* a local time zone must not move 23:30 and 00:30 UTC into one day */
	setenv("TZ", "America/New_York", 1);
	tzset();
	const char *when[] = { "2024-05-10 23:30", "2024-05-11 00:30" };
	struct cairn_retention_item it[2];
	fill(it, when, 2);
	struct cairn_keep_policy p = { .daily = 2 };
	assert_int_equal(cairn_retention_apply(&p, it, 2), 0);
	assert_kept(it, 2, "11");
	p.daily = 1;
	assert_int_equal(cairn_retention_apply(&p, it, 2), 0);
	assert_kept(it, 2, "01");
	unsetenv("TZ");
	tzset();
}

static void test_weekly_iso_weeks_over_new_year(void **state)
{
	(void)state;
	/* 2020-12-31 (Thu) and 2021-01-03 (Sun) are both ISO week 2020-W53;
	 * 2021-01-04 (Mon) starts 2021-W01 */
	const char *when[] = { "2020-12-28 08:00", "2020-12-31 08:00", "2021-01-03 08:00",
			       "2021-01-04 08:00", "2021-01-05 08:00" };
	struct cairn_retention_item it[5];
	fill(it, when, 5);
	struct cairn_keep_policy p = { .weekly = 2 };
	assert_int_equal(cairn_retention_apply(&p, it, 5), 0);
	assert_kept(it, 5, "00101");
	p.weekly = 3; /* only two weeks have snapshots */
	assert_int_equal(cairn_retention_apply(&p, it, 5), 0);
	assert_kept(it, 5, "00101");
}

static void test_monthly_yearly(void **state)
{
	(void)state;
	const char *when[] = { "2022-12-31 23:00", "2023-01-01 00:00", "2023-01-31 10:00",
			       "2023-02-01 10:00", "2023-02-15 10:00" };
	struct cairn_retention_item it[5];
	fill(it, when, 5);
	struct cairn_keep_policy p = { .monthly = 2 };
	assert_int_equal(cairn_retention_apply(&p, it, 5), 0);
	assert_kept(it, 5, "00101");
	struct cairn_keep_policy y = { .yearly = 5 };
	assert_int_equal(cairn_retention_apply(&y, it, 5), 0);
	assert_kept(it, 5, "10001");
}

static void test_within_is_calendar_and_relative_to_newest(void **state)
{
	(void)state;
	const char *when[] = { "2024-03-31 12:00", "2024-03-02 12:00", "2024-03-02 11:59",
			       "2024-02-29 12:00" };
	struct cairn_retention_item it[4];
	fill(it, when, 4);
	struct cairn_keep_policy p = { .has_within = true };
	assert_int_equal(cairn_duration_parse("1m", &p.within), 0);
	assert_int_equal(cairn_retention_apply(&p, it, 4), 0);
	/* a month before 31 March is "31 February" = 2 March */
	assert_kept(it, 4, "1100");
	assert_int_equal(cairn_duration_parse("30d", &p.within), 0);
	assert_int_equal(cairn_retention_apply(&p, it, 4), 0);
	assert_kept(it, 4, "1110");
}

static void test_tags_protected_and_union(void **state)
{
	(void)state;
	const char *when[] = { "2024-01-01 00:00", "2024-01-02 00:00", "2024-01-03 00:00",
			       "2024-01-04 00:00" };
	struct cairn_retention_item it[4];
	fill(it, when, 4);
	char *monthly[] = { "month-end" };
	it[0].tags = monthly;
	it[0].ntags = 1;
	it[1].protect = true;
	const char *keep_tags[] = { "month-end" };
	struct cairn_keep_policy p = { .last = 1, .daily = 1, .tags = keep_tags, .ntags = 1 };
	assert_int_equal(cairn_retention_apply(&p, it, 4), 0);
	assert_kept(it, 4, "1101");
	assert_int_equal(it[0].reasons, CAIRN_KEEP_TAG);
	assert_int_equal(it[1].reasons, CAIRN_KEEP_PROTECTED);
	assert_int_equal(it[3].reasons, CAIRN_KEEP_LAST | CAIRN_KEEP_DAILY);
	char why[64];
	cairn_keep_reasons(it[3].reasons, why, sizeof(why));
	assert_string_equal(why, "last,daily");
	cairn_keep_reasons(0, why, sizeof(why));
	assert_string_equal(why, "");
}

static void test_empty_policy_and_group(void **state)
{
	(void)state;
	struct cairn_keep_policy p = { 0 };
	assert_true(cairn_keep_policy_empty(&p));
	p.has_within = true;
	assert_false(cairn_keep_policy_empty(&p));
	struct cairn_keep_policy q = { .last = 3 };
	assert_int_equal(cairn_retention_apply(&q, NULL, 0), 0);
}

static void test_duration_parse(void **state)
{
	(void)state;
	struct cairn_duration d;
	assert_int_equal(cairn_duration_parse("1y2m3d4h", &d), 0);
	assert_int_equal(d.years, 1);
	assert_int_equal(d.months, 2);
	assert_int_equal(d.days, 3);
	assert_int_equal(d.hours, 4);
	assert_int_equal(cairn_duration_parse("2w1d", &d), 0);
	assert_int_equal(d.days, 15);
	assert_int_equal(cairn_duration_parse("", &d), -EINVAL);
	assert_int_equal(cairn_duration_parse("d", &d), -EINVAL);
	assert_int_equal(cairn_duration_parse("5x", &d), -EINVAL);
	assert_int_equal(cairn_duration_parse("7", &d), -EINVAL);
	assert_int_equal(cairn_duration_parse("-1d", &d), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_last_unsorted_input),
		cmocka_unit_test(test_daily_same_day_and_gaps),
		cmocka_unit_test(test_day_boundary_is_utc),
		cmocka_unit_test(test_weekly_iso_weeks_over_new_year),
		cmocka_unit_test(test_monthly_yearly),
		cmocka_unit_test(test_within_is_calendar_and_relative_to_newest),
		cmocka_unit_test(test_tags_protected_and_union),
		cmocka_unit_test(test_empty_policy_and_group),
		cmocka_unit_test(test_duration_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
