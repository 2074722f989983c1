/* Schedules in systemd's calendar syntax (systemd.time(7), OnCalendar=), the
 * subset admins write for backups, evaluated in UTC only:
 *
 *   minutely hourly daily weekly monthly quarterly semiannually yearly
 *   [WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [UTC]
 *
 * with systemd's meaning:
 *   - WEEKDAYS: English names (Mon or Monday, any case), comma lists and
 *     ranges Mon..Fri (or Mon-Fri); a range must run forwards.
 *   - every other field: `*`, a value, a range a..b, a repetition a/step or
 *     a..b/step (a, a+step, ... up to b or the field's end), or a comma
 *     list of those. A repetition must repeat at least once inside its
 *     bounds (systemd's rule), so *:50/10 is refused.
 *   - two-digit years are 20xx below 70 and 19xx from 70; years run from
 *     1970 to 2199.
 *   - a missing date is *-*-*, a missing time 00:00:00, a missing second 00.
 *   - a trailing "UTC" is accepted (it changes nothing); any other time
 *     zone is refused, because all times here are Unix seconds in UTC and
 *     there is no daylight saving time to skip or repeat.
 * Not supported (refused with a reason): `~` (days before the end of a
 * month), @TIMESTAMP, fractional seconds, `*\/step` (write 0/step), time
 * zones other than UTC.
 *
 * Examples: "*-*-* 02:30", "Mon..Fri 22:00", "Sat,Sun 03:00",
 * "*-*-01 04:00", "*-*-1,15 04:00", "2027-01-01 00:00", "*:0/15",
 * "*-*-* *:00/15:00", "*-*-* 0/6:00", "hourly".
 *
 * Pure: no clock, no I/O, no allocation. Functions return 0 or a negative
 * errno; parsing fails with -EINVAL and one line in err naming the part
 * that is wrong ("calendar '...': hour '25': 25 is outside 0..23"). */
#ifndef CAIRN_DAEMON_CALENDAR_H
#define CAIRN_DAEMON_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_CALENDAR_YEAR_MIN 1970
#define CAIRN_CALENDAR_YEAR_MAX 2199

/* Which values match, one bit per value; a plain value type (copy freely). */
struct cairn_calendar {
	uint8_t weekdays; /* bit 0 = Monday ... bit 6 = Sunday */
	uint64_t years[4]; /* bit y - 1970 */
	uint16_t months; /* bits 1..12 */
	uint32_t days; /* bits 1..31 */
	uint32_t hours; /* bits 0..23 */
	uint64_t minutes, seconds; /* bits 0..59 */
};

int cairn_calendar_parse(const char *text, struct cairn_calendar *out, char *err,
			 size_t errlen);

/* The first elapse strictly after `after` (Unix seconds, UTC); -ENOENT when
 * there is none before 2200 (a date in the past, or "*-02-30"). */
int cairn_calendar_next(const struct cairn_calendar *c, int64_t after, int64_t *next);

/* Catch-up of a run missed while the host was down (systemd's
 * Persistent=true): true when an elapse fell in (last_run, now]; *due_at is
 * the first such elapse (however many were missed, one run makes up for
 * them). A job that never ran (last_run <= 0) is not due: like systemd
 * without a stamp file, it waits for its next elapse. */
bool cairn_calendar_due(const struct cairn_calendar *c, int64_t last_run, int64_t now,
			int64_t *due_at);

/* RandomizedDelaySec: a delay in [0, max_s] from a random value the caller
 * draws (getrandom() in the daemon, a constant in tests). */
int64_t cairn_calendar_delay(int64_t max_s, uint64_t random);

/* The whole scheduling decision for one job, seen at `now`:
 *   - a run was missed since last_run (cairn_calendar_due): *at = now +
 *     delay and *missed = the missed elapse;
 *   - else *at = the next elapse after now + delay and *missed = 0.
 * The randomized delay applies to catch-up runs too, so that hosts coming
 * back together after an outage do not all start at once. Returns 0, or
 * -ENOENT when the schedule never elapses again (and nothing was missed). */
int cairn_calendar_plan(const struct cairn_calendar *c, int64_t last_run, int64_t now,
			int64_t max_delay_s, uint64_t random, int64_t *at, int64_t *missed);

#endif
