/* Unit tests for daemon/calendar.c: next elapses of every supported form
 * across minute, day, month and year boundaries (UTC), catch-up, delays. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "daemon/calendar.h"

static int64_t at(const char *when)
{
	struct tm tm = { 0 };
	const char *end = strptime(when, "%Y-%m-%d %H:%M:%S", &tm);
	assert_non_null(end);
	return (int64_t)timegm(&tm);
}

static void expect_next(const char *expr, const char *after, const char *want)
{
	struct cairn_calendar c;
	char err[256] = "", got[32];
	if (cairn_calendar_parse(expr, &c, err, sizeof(err)) < 0)
		fail_msg("'%s' refused: %s", expr, err);
	int64_t next;
	assert_int_equal(cairn_calendar_next(&c, at(after), &next), 0);
	time_t t = (time_t)next;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(got, sizeof(got), "%Y-%m-%d %H:%M:%S", &tm);
	if (strcmp(got, want))
		fail_msg("'%s' after %s: got %s, want %s", expr, after, got, want);
}

static void test_shorthands(void **state)
{
	(void)state;
	expect_next("minutely", "2026-12-31 23:59:30", "2027-01-01 00:00:00");
	expect_next("hourly", "2026-03-01 10:00:00", "2026-03-01 11:00:00");
	expect_next("daily", "2026-02-28 00:00:00", "2026-03-01 00:00:00");
	expect_next("daily", "2028-02-28 12:00:00", "2028-02-29 00:00:00");
	expect_next("weekly", "2026-11-24 10:00:00", "2026-11-30 00:00:00"); /* a Tuesday */
	expect_next("monthly", "2026-12-15 00:00:00", "2027-01-01 00:00:00");
	expect_next("quarterly", "2026-04-01 00:00:00", "2026-07-01 00:00:00");
	expect_next("yearly", "2026-01-01 00:00:00", "2027-01-01 00:00:00");
	expect_next("DAILY", "2026-01-01 00:00:00", "2026-01-02 00:00:00");
}

static void test_times_and_dates(void **state)
{
	(void)state;
	expect_next("*-*-* 02:30", "2026-11-24 02:29:59", "2026-11-24 02:30:00");
	expect_next("*-*-* 02:30", "2026-11-24 02:30:00", "2026-11-25 02:30:00"); /* strictly after */
	expect_next("*-*-* 02:30", "2026-12-31 03:00:00", "2027-01-01 02:30:00");
	expect_next("02:30", "2026-11-24 23:00:00", "2026-11-25 02:30:00");
	expect_next("*-*-* 02:30:15", "2026-11-24 02:30:00", "2026-11-24 02:30:15");
	expect_next("*-*-01 04:00", "2026-01-31 05:00:00", "2026-02-01 04:00:00");
	expect_next("*-02-29 00:00", "2026-03-01 00:00:00", "2028-02-29 00:00:00");
	expect_next("*-*-31 00:00", "2026-04-01 00:00:00", "2026-05-31 00:00:00");
	expect_next("2027-01-01 00:00", "2026-06-01 00:00:00", "2027-01-01 00:00:00");
	expect_next("2026,2028-06-15", "2026-06-16 00:00:00", "2028-06-15 00:00:00");
	expect_next("*-1..3-10 12:00", "2026-03-11 00:00:00", "2027-01-10 12:00:00");
}

static void test_weekdays(void **state)
{
	(void)state;
	/* 2026-11-27 is a Friday */
	expect_next("Mon..Fri 22:00", "2026-11-27 22:00:00", "2026-11-30 22:00:00");
	expect_next("Mon..Fri 22:00", "2026-11-27 21:59:00", "2026-11-27 22:00:00");
	expect_next("Sat,Sun 03:00", "2026-11-27 12:00:00", "2026-11-28 03:00:00");
	expect_next("Sat,Sun 03:00", "2026-11-29 04:00:00", "2026-12-05 03:00:00");
	expect_next("friday *-*-* 23:00", "2026-11-27 23:30:00", "2026-12-04 23:00:00");
	expect_next("Fri..Mon 01:00", "2026-11-24 12:00:00", "2026-11-27 01:00:00"); /* wraps */
	expect_next("Mon", "2026-11-24 12:00:00", "2026-11-30 00:00:00");
}

static void test_repetitions(void **state)
{
	(void)state;
	expect_next("*:0/15", "2026-11-24 10:07:00", "2026-11-24 10:15:00");
	expect_next("*:0/15", "2026-11-24 23:50:00", "2026-11-25 00:00:00");
	expect_next("*-*-* *:00/20:00", "2026-11-24 10:40:00", "2026-11-24 11:00:00");
	expect_next("*-*-* 0/6:00", "2026-11-24 13:00:00", "2026-11-24 18:00:00");
	expect_next("*-*-* 8..18/2:30", "2026-11-24 18:31:00", "2026-11-25 08:30:00");
	expect_next("*:5/10", "2026-11-24 10:06:00", "2026-11-24 10:15:00");
}

static void expect_refused(const char *expr, const char *part)
{
	struct cairn_calendar c;
	char err[256] = "";
	assert_int_equal(cairn_calendar_parse(expr, &c, err, sizeof(err)), -EINVAL);
	if (!strstr(err, part))
		fail_msg("'%s': message '%s' lacks '%s'", expr, err, part);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refused("", "empty");
	expect_refused("tomorrow", "weekday");
	expect_refused("*-*-* 25:00", "hour");
	expect_refused("*-*-* 10:61", "minute");
	expect_refused("*-13-01", "month");
	expect_refused("*-*-32", "day");
	expect_refused("Mon..Fri 22:00 extra", "does not fit");
	expect_refused("*-*-* 10:x0", "minute");
	expect_refused("*-*-* 10:00/0", "minute");
	expect_refused("*-*-* 5..2:00", "hour");
}

static void test_nothing_ahead(void **state)
{
	(void)state;
	struct cairn_calendar c;
	char err[256];
	int64_t next;
	assert_int_equal(cairn_calendar_parse("2020-01-01 00:00", &c, err, sizeof(err)), 0);
	assert_int_equal(cairn_calendar_next(&c, at("2026-01-01 00:00:00"), &next), -ENOENT);
	assert_int_equal(cairn_calendar_parse("*-02-30", &c, err, sizeof(err)), 0);
	assert_int_equal(cairn_calendar_next(&c, at("2026-01-01 00:00:00"), &next), -ENOENT);
}

static void test_catch_up(void **state)
{
	(void)state;
	struct cairn_calendar c;
	char err[256];
	int64_t due;
	assert_int_equal(cairn_calendar_parse("*-*-* 02:30", &c, err, sizeof(err)), 0);
	/* ran at 02:30 on the 23rd, host down until 09:00 on the 24th */
	assert_true(cairn_calendar_due(&c, at("2026-11-23 02:30:00"), at("2026-11-24 09:00:00"), &due));
	assert_int_equal(due, at("2026-11-24 02:30:00"));
	/* nothing missed */
	assert_false(cairn_calendar_due(&c, at("2026-11-24 02:30:00"), at("2026-11-24 09:00:00"), &due));
	/* a job that never ran is not caught up */
	assert_false(cairn_calendar_due(&c, 0, at("2026-11-24 09:00:00"), &due));
	/* down for a week: one catch-up run, at the first missed elapse */
	assert_true(cairn_calendar_due(&c, at("2026-11-01 02:30:00"), at("2026-11-08 12:00:00"), &due));
	assert_int_equal(due, at("2026-11-02 02:30:00"));
}

static void test_delay(void **state)
{
	(void)state;
	assert_int_equal(cairn_calendar_delay(0, 12345), 0);
	assert_int_equal(cairn_calendar_delay(-5, 12345), 0);
	assert_int_equal(cairn_calendar_delay(600, 0), 0);
	assert_int_equal(cairn_calendar_delay(600, 600), 600);
	assert_int_equal(cairn_calendar_delay(600, 601), 0);
	for (uint64_t r = 0; r < 5000; r += 7)
		assert_true(cairn_calendar_delay(3600, r * 2654435761u) <= 3600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shorthands),
		cmocka_unit_test(test_times_and_dates),
		cmocka_unit_test(test_weekdays),
		cmocka_unit_test(test_repetitions),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_nothing_ahead),
		cmocka_unit_test(test_catch_up),
		cmocka_unit_test(test_delay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
