/* Unit tests for daemon/calendar.c: next elapses of every supported form
 * across minute, hour, day, month and year boundaries (UTC), leap days,
 * refusals with their messages, catch-up, delays and the plan. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

static struct cairn_calendar parsed(const char *expr)
{
	struct cairn_calendar c;
	char err[256] = "";
	if (cairn_calendar_parse(expr, &c, err, sizeof(err)) < 0)
		fail_msg("'%s' refused: %s", expr, err);
	return c;
}

static void expect_next(const char *expr, const char *after, const char *want)
{
	struct cairn_calendar c = parsed(expr);
	char got[32];
	int64_t next;
	if (cairn_calendar_next(&c, at(after), &next) < 0)
		fail_msg("'%s' after %s: no next elapse, want %s", expr, after, want);
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
	expect_next("minutely", "2026-11-24 10:59:00", "2026-11-24 11:00:00");
	expect_next("minutely", "2026-12-31 23:59:30", "2027-01-01 00:00:00");
	expect_next("hourly", "2026-03-01 10:00:00", "2026-03-01 11:00:00");
	expect_next("hourly", "2026-12-31 23:00:00", "2027-01-01 00:00:00");
	expect_next("daily", "2026-02-28 00:00:00", "2026-03-01 00:00:00");
	expect_next("daily", "2028-02-28 12:00:00", "2028-02-29 00:00:00");
	expect_next("weekly", "2026-11-24 10:00:00", "2026-11-30 00:00:00"); /* a Tuesday */
	expect_next("weekly", "2026-12-28 00:00:00", "2027-01-04 00:00:00"); /* over new year */
	expect_next("monthly", "2026-01-31 00:00:00", "2026-02-01 00:00:00");
	expect_next("monthly", "2026-12-15 00:00:00", "2027-01-01 00:00:00");
	expect_next("quarterly", "2026-04-01 00:00:00", "2026-07-01 00:00:00");
	expect_next("quarterly", "2026-10-01 00:00:00", "2027-01-01 00:00:00");
	expect_next("semiannually", "2026-01-01 00:00:00", "2026-07-01 00:00:00");
	expect_next("yearly", "2026-01-01 00:00:00", "2027-01-01 00:00:00");
	expect_next("annually", "2026-12-31 23:59:59", "2027-01-01 00:00:00");
	expect_next("DAILY", "2026-01-01 00:00:00", "2026-01-02 00:00:00");
	expect_next("daily UTC", "2026-01-01 00:00:00", "2026-01-02 00:00:00");
}

static void test_times_and_dates(void **state)
{
	(void)state;
	expect_next("*-*-* 02:30", "2026-11-24 02:29:59", "2026-11-24 02:30:00");
	expect_next("*-*-* 02:30", "2026-11-24 02:30:00", "2026-11-25 02:30:00"); /* strictly after */
	expect_next("*-*-* 02:30", "2026-11-30 03:00:00", "2026-12-01 02:30:00");
	expect_next("*-*-* 02:30", "2026-12-31 03:00:00", "2027-01-01 02:30:00");
	expect_next("*-*-* 02:30 UTC", "2026-12-31 03:00:00", "2027-01-01 02:30:00");
	expect_next("02:30", "2026-11-24 23:00:00", "2026-11-25 02:30:00");
	expect_next("*-*-* 02:30:15", "2026-11-24 02:30:00", "2026-11-24 02:30:15");
	expect_next("*-*-* 23:59:59", "2026-12-31 23:59:58", "2026-12-31 23:59:59");
	expect_next("*-*-01 04:00", "2026-01-31 05:00:00", "2026-02-01 04:00:00");
	expect_next("*-*-01 04:00", "2026-12-01 04:00:00", "2027-01-01 04:00:00");
	expect_next("*-*-1,15 04:00", "2026-11-02 00:00:00", "2026-11-15 04:00:00");
	expect_next("*-*-1,15 04:00", "2026-12-15 05:00:00", "2027-01-01 04:00:00");
	expect_next("*-*-31 00:00", "2026-04-01 00:00:00", "2026-05-31 00:00:00");
	expect_next("12-25", "2026-12-25 00:00:00", "2027-12-25 00:00:00"); /* MONTH-DAY */
	expect_next("2027-01-01 00:00", "2026-06-01 00:00:00", "2027-01-01 00:00:00");
	expect_next("27-01-01 00:00", "2026-06-01 00:00:00", "2027-01-01 00:00:00"); /* 20xx */
	expect_next("2026,2028-06-15", "2026-06-16 00:00:00", "2028-06-15 00:00:00");
	expect_next("*-1..3-10 12:00", "2026-03-11 00:00:00", "2027-01-10 12:00:00");
	expect_next("2199-12-31 23:59:59", "2199-12-31 00:00:00", "2199-12-31 23:59:59");
}

static void test_leap_days(void **state)
{
	(void)state;
	expect_next("*-02-29 00:00", "2026-03-01 00:00:00", "2028-02-29 00:00:00");
	/* 2100 is not a leap year: 2096, then 2104 */
	expect_next("*-02-29 12:00", "2096-02-29 12:00:00", "2104-02-29 12:00:00");
	expect_next("daily", "2100-02-28 00:00:00", "2100-03-01 00:00:00");
	/* 2000 was one (divisible by 400) */
	expect_next("*-02-29", "1999-01-01 00:00:00", "2000-02-29 00:00:00");
	/* the 29th skips a short February */
	expect_next("*-*-29 06:00", "2027-01-29 06:00:00", "2027-03-29 06:00:00");
	expect_next("*-*-29 06:00", "2028-01-29 06:00:00", "2028-02-29 06:00:00");
}

static void test_weekdays(void **state)
{
	(void)state;
	/* 2026-11-27 is a Friday */
	expect_next("Mon..Fri 22:00", "2026-11-27 22:00:00", "2026-11-30 22:00:00");
	expect_next("Mon..Fri 22:00", "2026-11-27 21:59:00", "2026-11-27 22:00:00");
	expect_next("Mon-Fri 22:00", "2026-11-28 00:00:00", "2026-11-30 22:00:00"); /* old systemd form */
	expect_next("Sat,Sun 03:00", "2026-11-27 12:00:00", "2026-11-28 03:00:00");
	expect_next("Sat,Sun 03:00", "2026-11-29 04:00:00", "2026-12-05 03:00:00");
	expect_next("Mon..Wed,Fri 01:00", "2026-11-26 12:00:00", "2026-11-27 01:00:00");
	expect_next("friday *-*-* 23:00", "2026-11-27 23:30:00", "2026-12-04 23:00:00");
	expect_next("Fri..Sun,Mon 01:00", "2026-11-24 12:00:00", "2026-11-27 01:00:00");
	expect_next("Mon", "2026-11-24 12:00:00", "2026-11-30 00:00:00");
	/* weekday and date together: a Friday the 13th */
	expect_next("Fri *-*-13 00:00", "2026-11-14 00:00:00", "2027-08-13 00:00:00");
	/* over the year boundary: 2027-01-01 is a Friday */
	expect_next("Fri 09:00", "2026-12-26 00:00:00", "2027-01-01 09:00:00");
}

static void test_repetitions(void **state)
{
	(void)state;
	expect_next("*:0/15", "2026-11-24 10:07:00", "2026-11-24 10:15:00");
	expect_next("*:0/15", "2026-11-24 10:45:00", "2026-11-24 11:00:00");
	expect_next("*:0/15", "2026-12-31 23:50:00", "2027-01-01 00:00:00");
	expect_next("*-*-* *:00/15:00", "2026-11-24 10:40:00", "2026-11-24 10:45:00");
	expect_next("*-*-* *:00/20:00", "2026-11-24 10:40:00", "2026-11-24 11:00:00");
	expect_next("*-*-* 0/6:00", "2026-11-24 13:00:00", "2026-11-24 18:00:00");
	expect_next("*-*-* 0/6:00", "2026-11-24 18:00:00", "2026-11-25 00:00:00");
	expect_next("*-*-* 8..18/2:30", "2026-11-24 18:31:00", "2026-11-25 08:30:00");
	expect_next("*:5/10", "2026-11-24 10:06:00", "2026-11-24 10:15:00");
	expect_next("*:*:0/30", "2026-11-24 10:06:40", "2026-11-24 10:07:00");
	expect_next("*-1/3-01 00:00", "2026-04-02 00:00:00", "2026-07-01 00:00:00");
	/* days 1, 11, 21, 31: November has no 31st */
	expect_next("*-*-1/10 00:00", "2026-11-21 00:00:00", "2026-12-01 00:00:00");
}

/* The message must be "calendar 'EXPR': " followed by want. */
static void expect_refused(const char *expr, const char *want)
{
	struct cairn_calendar c;
	char err[300] = "", full[300];
	assert_int_equal(cairn_calendar_parse(expr, &c, err, sizeof(err)), -EINVAL);
	snprintf(full, sizeof(full), "calendar '%s': %s", expr, want);
	if (strcmp(err, full))
		fail_msg("'%s':\n got '%s'\nwant '%s'", expr, err, full);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refused("", "empty calendar expression");
	expect_refused("  UTC", "empty calendar expression");
	expect_refused("UTC", "'UTC' is not a weekday list (names such as Mon..Fri or Sat,Sun)");
	expect_refused("tomorrow", "'tomorrow' is not a weekday list (names such as Mon..Fri or Sat,Sun)");
	expect_refused("Mon.Fri", "'Mon.Fri' is not a weekday list (names such as Mon..Fri or Sat,Sun)");
	expect_refused("Fri..Mon 01:00",
		       "weekdays 'Fri..Mon': a range runs forwards from Monday to Sunday (write Fri..Sun,Mon)");
	expect_refused("*-*-* 25:00", "hour '25': 25 is outside 0..23");
	expect_refused("*-*-* 10:61", "minute '61': 61 is outside 0..59");
	expect_refused("*-*-* 10:00:60", "second '60': 60 is outside 0..59");
	expect_refused("*-13-01", "month '13': 13 is outside 1..12");
	expect_refused("*-*-32", "day '32': 32 is outside 1..31");
	expect_refused("*-*-0", "day '0': 0 is outside 1..31");
	expect_refused("1969-01-01", "year '1969': 1969 is outside 1970..2199");
	expect_refused("2200-01-01", "year '2200': 2200 is outside 1970..2199");
	expect_refused("Mon..Fri 22:00 extra",
		       "'extra' does not fit here (the order is [WEEKDAYS] [DATE] [TIME] [UTC]; UTC is the only time zone)");
	expect_refused("*-*-* 02:30 Europe/Berlin",
		       "'Europe/Berlin' does not fit here (the order is [WEEKDAYS] [DATE] [TIME] [UTC]; UTC is the only time zone)");
	expect_refused("10:00 *-*-*",
		       "'*-*-*' does not fit here (the order is [WEEKDAYS] [DATE] [TIME] [UTC]; UTC is the only time zone)");
	expect_refused("*-*-* 10:x0", "minute 'x0': not a number, range or repetition");
	expect_refused("*-*-* 10:00/0", "minute '00/0': a repetition needs a step of 1 or more");
	expect_refused("*-*-* 5..2:00", "hour '5..2': the range runs backwards");
	expect_refused("*-*-* 5..:00", "hour '5..': a range needs an end (a..b)");
	expect_refused("*:50/10", "minute '50/10': the repetition never repeats within 50..59");
	expect_refused("*:0/60", "minute '0/60': the repetition never repeats within 0..59");
	expect_refused("8..9/2:00", "hour '8..9/2': the repetition never repeats within 8..9");
	expect_refused("*/15:00", "hour '*/15': write 0/STEP (systemd has no */STEP)");
	expect_refused("*-*-* 10:", "the minute is missing");
	expect_refused("*-*-* :30", "the hour is missing");
	expect_refused("*-*-* 10:00:00.5", "second '00.5': unexpected '.'");
	expect_refused("*-02~01", "'*-02~01': '~' (days before the end of the month) is not supported");
	expect_refused("@1700000000", "'@1700000000': @TIMESTAMP is not supported");
	expect_refused("Sun 1@2", "'1@2' is not a date ([YEAR-]MONTH-DAY)");
	expect_refused("*-*-1,,2", "day '1,,2': not a number, range or repetition");
}

static void test_utc_only(void **state)
{
	(void)state;
	/* the process's time zone must not move an elapse */
	setenv("TZ", "America/New_York", 1);
	tzset();
	expect_next("*-*-* 02:30", "2026-03-08 00:00:00", "2026-03-08 02:30:00"); /* a DST gap there */
	expect_next("*-*-* 01:30", "2026-11-01 01:30:00", "2026-11-02 01:30:00"); /* a DST repeat */
	unsetenv("TZ");
	tzset();
}

static void test_nothing_ahead(void **state)
{
	(void)state;
	int64_t next;
	struct cairn_calendar c = parsed("2020-01-01 00:00");
	assert_int_equal(cairn_calendar_next(&c, at("2026-01-01 00:00:00"), &next), -ENOENT);
	c = parsed("*-02-30");
	assert_int_equal(cairn_calendar_next(&c, at("2026-01-01 00:00:00"), &next), -ENOENT);
	c = parsed("2199-12-31 23:59:59");
	assert_int_equal(cairn_calendar_next(&c, at("2199-12-31 23:59:59"), &next), -ENOENT);
	c = parsed("daily");
	assert_int_equal(cairn_calendar_next(&c, at("2199-12-31 00:00:00"), &next), -ENOENT);
}

static void test_catch_up(void **state)
{
	(void)state;
	int64_t due = 0;
	struct cairn_calendar c = parsed("*-*-* 02:30");
	/* ran at 02:30 on the 23rd, host down from 01:00 to 09:00 on the 24th */
	assert_true(cairn_calendar_due(&c, at("2026-11-23 02:30:00"), at("2026-11-24 09:00:00"), &due));
	assert_int_equal(due, at("2026-11-24 02:30:00"));
	/* nothing missed: the last run was the latest elapse */
	assert_false(cairn_calendar_due(&c, at("2026-11-24 02:30:00"), at("2026-11-24 09:00:00"), &due));
	/* a run that started late (randomized delay) is not missed again */
	assert_false(cairn_calendar_due(&c, at("2026-11-24 02:41:00"), at("2026-11-25 02:29:59"), &due));
	/* now exactly at the elapse counts */
	assert_true(cairn_calendar_due(&c, at("2026-11-24 02:30:00"), at("2026-11-25 02:30:00"), &due));
	/* a job that never ran is not caught up */
	assert_false(cairn_calendar_due(&c, 0, at("2026-11-24 09:00:00"), &due));
	/* the clock went back below the last run */
	assert_false(cairn_calendar_due(&c, at("2026-11-24 02:30:00"), at("2026-11-20 09:00:00"), &due));
	/* down for a week: one catch-up run, for the first missed elapse */
	assert_true(cairn_calendar_due(&c, at("2026-11-01 02:30:00"), at("2026-11-08 12:00:00"), &due));
	assert_int_equal(due, at("2026-11-02 02:30:00"));
	/* a weekday schedule down over the weekend misses nothing */
	c = parsed("Mon..Fri 22:00");
	assert_false(cairn_calendar_due(&c, at("2026-11-27 22:00:00"), at("2026-11-30 21:00:00"), &due));
	assert_true(cairn_calendar_due(&c, at("2026-11-27 22:00:00"), at("2026-11-30 23:00:00"), &due));
	assert_int_equal(due, at("2026-11-30 22:00:00"));
	/* monthly, down over new year */
	c = parsed("monthly");
	assert_true(cairn_calendar_due(&c, at("2026-12-01 00:00:05"), at("2027-01-03 08:00:00"), &due));
	assert_int_equal(due, at("2027-01-01 00:00:00"));
}

static void test_delay(void **state)
{
	(void)state;
	assert_int_equal(cairn_calendar_delay(0, 12345), 0);
	assert_int_equal(cairn_calendar_delay(-5, 12345), 0);
	assert_int_equal(cairn_calendar_delay(600, 0), 0);
	assert_int_equal(cairn_calendar_delay(600, 600), 600);
	assert_int_equal(cairn_calendar_delay(600, 601), 0);
	assert_int_equal(cairn_calendar_delay(600, UINT64_MAX), (int64_t)(UINT64_MAX % 601));
	int64_t lo = 3600, hi = 0;
	for (uint64_t r = 0; r < 100000; r++) {
		int64_t d = cairn_calendar_delay(3600, r * 0x9e3779b97f4a7c15ull);
		assert_true(d >= 0 && d <= 3600);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	/* the whole range is used, not just part of it */
	assert_true(lo < 10 && hi > 3590);
}

static void test_plan(void **state)
{
	(void)state;
	int64_t when, missed;
	struct cairn_calendar c = parsed("*-*-* 02:30");
	/* missed while down: now, plus the delay */
	assert_int_equal(cairn_calendar_plan(&c, at("2026-11-23 02:30:00"), at("2026-11-24 09:00:00"),
					     600, 42, &when, &missed),
			 0);
	assert_int_equal(when, at("2026-11-24 09:00:42"));
	assert_int_equal(missed, at("2026-11-24 02:30:00"));
	/* nothing missed: the next elapse, plus the delay */
	assert_int_equal(cairn_calendar_plan(&c, at("2026-11-24 02:30:00"), at("2026-11-24 09:00:00"),
					     600, 601 + 5, &when, &missed),
			 0);
	assert_int_equal(when, at("2026-11-25 02:30:05"));
	assert_int_equal(missed, 0);
	/* never ran: no catch-up */
	assert_int_equal(cairn_calendar_plan(&c, 0, at("2026-11-24 09:00:00"), 0, 0, &when, &missed), 0);
	assert_int_equal(when, at("2026-11-25 02:30:00"));
	/* a date in the past never comes again */
	c = parsed("2020-01-01");
	assert_int_equal(cairn_calendar_plan(&c, 0, at("2026-11-24 09:00:00"), 0, 0, &when, &missed),
			 -ENOENT);
	/* ... unless its one elapse was missed */
	assert_int_equal(cairn_calendar_plan(&c, at("2019-12-31 00:00:00"), at("2026-11-24 09:00:00"), 0,
					     0, &when, &missed),
			 0);
	assert_int_equal(when, at("2026-11-24 09:00:00"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shorthands),
		cmocka_unit_test(test_times_and_dates),
		cmocka_unit_test(test_leap_days),
		cmocka_unit_test(test_weekdays),
		cmocka_unit_test(test_repetitions),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_utc_only),
		cmocka_unit_test(test_nothing_ahead),
		cmocka_unit_test(test_catch_up),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_plan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
