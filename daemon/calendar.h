/* Schedules in systemd's calendar syntax (systemd.time(7), OnCalendar=), the
 * forms admins write for backups, evaluated in UTC only:
 *
 *   minutely hourly daily weekly monthly quarterly semiannually yearly
 *   [WEEKDAYS] [YEAR-MONTH-DAY] [HOUR:MINUTE[:SECOND]]
 *
 * WEEKDAYS is a comma list of names or ranges (Mon..Fri, Sat,Sun; English
 * names, three letters or full). Every date and time field is `*` or a
 * comma list of values, ranges a..b and repetitions a/step or *\/step
 * ("*:0/15" is every quarter hour). A missing date is *-*-*, a missing time
 * 00:00:00, a missing second 00. "*-*-* 02:30", "Mon..Fri 22:00",
 * "*-*-01 04:00", "2027-01-01 00:00" and "*:0/15" are all accepted.
 *
 * Functions return 0 or a negative errno (-EINVAL: a one-line reason in
 * err naming the part that is wrong). */
#ifndef CAIRN_DAEMON_CALENDAR_H
#define CAIRN_DAEMON_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cairn_calendar {
	uint8_t weekdays; /* bit 0 = Monday ... bit 6 = Sunday */
	uint64_t years[3]; /* bit y - 1970, 1970..2161 */
	uint16_t months; /* bit 1..12 */
	uint32_t days; /* bit 1..31 */
	uint32_t hours; /* bit 0..23 */
	uint64_t minutes, seconds; /* bit 0..59 */
};

int cairn_calendar_parse(const char *text, struct cairn_calendar *out, char *err,
			 size_t errlen);
/* The first elapse strictly after `after` (Unix seconds, UTC); -ENOENT when
 * there is none within 200 years (e.g. a date in the past). */
int cairn_calendar_next(const struct cairn_calendar *c, int64_t after, int64_t *next);
/* Catch-up of a run missed while the host was down (systemd's
 * Persistent=true): true when an elapse fell in (last_run, now]; *due_at is
 * the first such elapse. A job that never ran (last_run 0) is not due. */
bool cairn_calendar_due(const struct cairn_calendar *c, int64_t last_run, int64_t now,
			int64_t *due_at);
/* RandomizedDelaySec: a delay in [0, max_s] from a random value the caller
 * draws (so that tests can pass a fixed one). */
int64_t cairn_calendar_delay(int64_t max_s, uint64_t random);

#endif
