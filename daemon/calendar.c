/* systemd-style calendar schedules, UTC (see calendar.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "calendar.h"
#include "base/util.h"

#define NYEARS (CAIRN_CALENDAR_YEAR_MAX - CAIRN_CALENDAR_YEAR_MIN + 1)
/* enough days to reach the last year from any time before it */
#define SEARCH_DAYS ((int64_t)(NYEARS + 1) * 366)

struct field {
	const char *name;
	int lo, hi;
	bool year; /* two-digit values are 19xx/20xx, as in systemd */
};

static const struct field F_YEAR = { "year", CAIRN_CALENDAR_YEAR_MIN, CAIRN_CALENDAR_YEAR_MAX, true };
static const struct field F_MONTH = { "month", 1, 12, false };
static const struct field F_DAY = { "day", 1, 31, false };
static const struct field F_HOUR = { "hour", 0, 23, false };
static const struct field F_MINUTE = { "minute", 0, 59, false };
static const struct field F_SECOND = { "second", 0, 59, false };

static void set_bit(uint64_t *bits, int i)
{
	bits[i / 64] |= 1ull << (i % 64);
}

static bool get_bit(const uint64_t *bits, int i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

static int parse_int(const char **p, int *out)
{
	if (!isdigit((unsigned char)**p))
		return -EINVAL;
	long v = strtol(*p, (char **)p, 10);
	*out = v > 1000000000 ? 1000000000 : (int)v; /* then refused as out of range */
	return 0;
}

static int fix_year(const struct field *f, int v)
{
	if (!f->year || v >= 100)
		return v;
	return v < 70 ? 2000 + v : 1900 + v;
}

/* One comma item of a field: *, v, a..b, a/step, a..b/step. Messages quote
 * the whole field (`text`), which is what the admin wrote. */
static int parse_item(const char **p, const char *text, const struct field *f, uint64_t *bits,
		      char *err, size_t errlen)
{
	int a = f->lo, b = f->hi, step = 0;
	if (**p == '*') {
		(*p)++;
		if (**p == '/')
			return set_err(err, errlen, -EINVAL, "%s '%s': write %d/STEP (systemd has no */STEP)",
				       f->name, text, f->lo);
	} else {
		if (parse_int(p, &a) < 0)
			return set_err(err, errlen, -EINVAL, "%s '%s': not a number, range or repetition",
				       f->name, text);
		a = fix_year(f, a);
		b = a;
		if ((*p)[0] == '.' && (*p)[1] == '.') {
			*p += 2;
			if (parse_int(p, &b) < 0)
				return set_err(err, errlen, -EINVAL, "%s '%s': a range needs an end (a..b)",
					       f->name, text);
			b = fix_year(f, b);
		}
	}
	if (**p == '/') {
		(*p)++;
		if (parse_int(p, &step) < 0 || step < 1)
			return set_err(err, errlen, -EINVAL, "%s '%s': a repetition needs a step of 1 or more",
				       f->name, text);
		if (a == b)
			b = f->hi; /* "5/10": 5, 15, 25, ... to the field's end */
	}
	if (**p && **p != ',')
		return set_err(err, errlen, -EINVAL, "%s '%s': unexpected '%c'", f->name, text,
			       **p);
	int bad = a < f->lo || a > f->hi ? a : b < f->lo || b > f->hi ? b : -1;
	if (bad >= 0)
		return set_err(err, errlen, -EINVAL, "%s '%s': %d is outside %d..%d", f->name,
			       text, bad, f->lo, f->hi);
	if (a > b)
		return set_err(err, errlen, -EINVAL, "%s '%s': the range runs backwards", f->name,
			       text);
	/* systemd refuses a repetition that cannot repeat ("*:50/10") */
	if (step && a + step > b)
		return set_err(err, errlen, -EINVAL, "%s '%s': the repetition never repeats within %d..%d",
			       f->name, text, a, b);
	for (int v = a; v <= b; v += step ? step : 1)
		set_bit(bits, v - f->lo);
	return 0;
}

/* A whole field of len bytes at s: items separated by commas. */
static int parse_field(const char *s, size_t len, const struct field *f, uint64_t *bits,
		       char *err, size_t errlen)
{
	char buf[128];
	if (!len)
		return set_err(err, errlen, -EINVAL, "the %s is missing", f->name);
	if (len >= sizeof(buf))
		return set_err(err, errlen, -EINVAL, "the %s is too long", f->name);
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (const char *p = buf;; p++) {
		int rc = parse_item(&p, buf, f, bits, err, errlen);
		if (rc < 0)
			return rc;
		if (*p == '\0')
			return 0;
	}
}

static const char *const weekday_names[] = { "monday", "tuesday", "wednesday", "thursday",
					      "friday", "saturday", "sunday" };

/* Monday = 0, or -1; "Mon" or "Monday" in any case. */
static int weekday(const char *s, size_t len)
{
	for (int i = 0; i < 7; i++)
		if ((len == 3 || len == strlen(weekday_names[i])) &&
		    !strncasecmp(s, weekday_names[i], len))
			return i;
	return -1;
}

/* systemd does not wrap a range past Sunday; the hint spells out the
 * two ranges that were probably meant ("Fri..Mon" -> "Fri..Sun,Mon"). */
static int backwards_weekdays(const char *tok, int a, int b, char *err, size_t errlen)
{
	static const char *const abbr[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
	char first[16], second[16];
	snprintf(first, sizeof(first), a == 6 ? "Sun" : "%s..Sun", abbr[a]);
	snprintf(second, sizeof(second), b == 0 ? "Mon" : "Mon..%s", abbr[b]);
	return set_err(err, errlen, -EINVAL,
		       "weekdays '%s': a range runs forwards from Monday to Sunday (write %s,%s)", tok,
		       first, second);
}

/* "Mon..Fri,Sun", "Sat,Sun", "Mon-Wed" (systemd still reads '-' ranges). */
static int parse_weekdays(const char *tok, uint8_t *mask, char *err, size_t errlen)
{
	*mask = 0;
	for (const char *s = tok; *s;) {
		size_t n = strcspn(s, ",.-");
		int a = weekday(s, n), b = a;
		s += n;
		if (s[0] == '-' || (s[0] == '.' && s[1] == '.')) {
			s += s[0] == '-' ? 1 : 2;
			n = strcspn(s, ",");
			b = weekday(s, n);
			s += n;
		}
		if (a < 0 || b < 0 || (*s && *s != ','))
			return set_err(err, errlen, -EINVAL,
				       "'%s' is not a weekday list (names such as Mon..Fri or Sat,Sun)", tok);
		if (a > b)
			return backwards_weekdays(tok, a, b, err, errlen);
		for (int d = a; d <= b; d++)
			*mask |= (uint8_t)(1u << d);
		if (*s == ',')
			s++; /* a trailing comma is allowed, as in systemd */
	}
	return 0;
}

/* [YEAR-]MONTH-DAY */
static int parse_date(const char *tok, struct cairn_calendar *c, char *err, size_t errlen)
{
	if (tok[0] == '@')
		return set_err(err, errlen, -EINVAL, "'%s': @TIMESTAMP is not supported", tok);
	if (strchr(tok, '~'))
		return set_err(err, errlen, -EINVAL,
			       "'%s': '~' (days before the end of the month) is not supported", tok);
	const char *d1 = strchr(tok, '-');
	if (!d1) /* '@' inside a token also brings it here */
		return set_err(err, errlen, -EINVAL, "'%s' is not a date ([YEAR-]MONTH-DAY)", tok);
	const char *d2 = strchr(d1 + 1, '-');
	const char *m = tok, *d = d1 + 1;
	uint64_t bits[1] = { 0 };
	int rc;
	if (d2) {
		memset(c->years, 0, sizeof(c->years));
		if ((rc = parse_field(tok, (size_t)(d1 - tok), &F_YEAR, c->years, err, errlen)) < 0)
			return rc;
		m = d1 + 1;
		d = d2 + 1;
	}
	if ((rc = parse_field(m, (size_t)(d - 1 - m), &F_MONTH, bits, err, errlen)) < 0)
		return rc;
	c->months = (uint16_t)(bits[0] << 1);
	bits[0] = 0;
	if ((rc = parse_field(d, strlen(d), &F_DAY, bits, err, errlen)) < 0)
		return rc;
	c->days = (uint32_t)(bits[0] << 1);
	return 0;
}

/* HOUR:MINUTE[:SECOND] */
static int parse_time(const char *tok, struct cairn_calendar *c, char *err, size_t errlen)
{
	const char *c1 = strchr(tok, ':'), *c2 = strchr(c1 + 1, ':');
	uint64_t bits[1] = { 0 };
	int rc;
	if ((rc = parse_field(tok, (size_t)(c1 - tok), &F_HOUR, bits, err, errlen)) < 0)
		return rc;
	c->hours = (uint32_t)bits[0];
	size_t mlen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
	c->minutes = 0;
	if ((rc = parse_field(c1 + 1, mlen, &F_MINUTE, &c->minutes, err, errlen)) < 0)
		return rc;
	c->seconds = 1; /* :00 unless given */
	if (!c2)
		return 0;
	c->seconds = 0;
	return parse_field(c2 + 1, strlen(c2 + 1), &F_SECOND, &c->seconds, err, errlen);
}

/* *-*-* 00:00:00 on any weekday */
static void every_day(struct cairn_calendar *c)
{
	memset(c, 0, sizeof(*c));
	c->weekdays = 0x7f;
	for (int y = 0; y < NYEARS; y++)
		set_bit(c->years, y);
	c->months = 0x1ffe;
	c->days = 0xfffffffe;
	c->hours = 1;
	c->minutes = 1;
	c->seconds = 1;
}

static const struct {
	const char *name, *expansion;
} shorthands[] = {
	{ "minutely", "*-*-* *:*:00" },
	{ "hourly", "*-*-* *:00:00" },
	{ "daily", "*-*-* 00:00:00" },
	{ "weekly", "Mon *-*-* 00:00:00" },
	{ "monthly", "*-*-01 00:00:00" },
	{ "quarterly", "*-01,04,07,10-01 00:00:00" },
	{ "semiannually", "*-01,07-01 00:00:00" },
	{ "semi-annually", "*-01,07-01 00:00:00" },
	{ "biannually", "*-01,07-01 00:00:00" },
	{ "yearly", "*-01-01 00:00:00" },
	{ "annually", "*-01-01 00:00:00" },
};

/* The space-separated tokens of buf in order: [weekdays] [date] [time]. */
static int parse_tokens(char *buf, struct cairn_calendar *c, char *err, size_t errlen)
{
	enum { WEEKDAYS, DATE, TIME, END } next = WEEKDAYS;
	char *save = NULL;
	int rc = 0;
	for (char *tok = strtok_r(buf, " \t", &save); tok && rc == 0;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (next == WEEKDAYS && isalpha((unsigned char)tok[0])) {
			rc = parse_weekdays(tok, &c->weekdays, err, errlen);
			next = DATE;
		} else if (next <= DATE && !strchr(tok, ':') && strpbrk(tok, "-~@")) {
			rc = parse_date(tok, c, err, errlen);
			next = TIME;
		} else if (next <= TIME && strchr(tok, ':')) {
			rc = parse_time(tok, c, err, errlen);
			next = END;
		} else {
			rc = set_err(err, errlen, -EINVAL,
				     "'%s' does not fit here (the order is [WEEKDAYS] [DATE] [TIME] [UTC]; "
				     "UTC is the only time zone)",
				     tok);
		}
	}
	return rc;
}

int cairn_calendar_parse(const char *text, struct cairn_calendar *out, char *err, size_t errlen)
{
	char buf[256], why[200] = "";
	if (!text || strlen(text) >= sizeof(buf))
		return set_err(err, errlen, -EINVAL, "calendar: empty or longer than %zu characters",
			       sizeof(buf) - 1);
	snprintf(buf, sizeof(buf), "%s", text);
	/* a trailing UTC says what is true anyway */
	size_t n = strlen(buf);
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	if (n > 3 && !strcasecmp(buf + n - 3, "UTC") && isspace((unsigned char)buf[n - 4]))
		buf[n - 4] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(shorthands); i++)
		if (!strcasecmp(buf + strspn(buf, " \t"), shorthands[i].name))
			snprintf(buf, sizeof(buf), "%s", shorthands[i].expansion);
	struct cairn_calendar c;
	every_day(&c);
	int rc = 0;
	if (!buf[strspn(buf, " \t")])
		rc = set_err(why, sizeof(why), -EINVAL, "empty calendar expression");
	else
		rc = parse_tokens(buf, &c, why, sizeof(why));
	if (rc < 0)
		return set_err(err, errlen, rc, "calendar '%s': %s", text, why);
	*out = c;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : d[m - 1];
}

static bool date_matches(const struct cairn_calendar *c, const struct tm *tm)
{
	int y = tm->tm_year + 1900;
	int wd = (tm->tm_wday + 6) % 7; /* Monday = 0 */
	return y >= CAIRN_CALENDAR_YEAR_MIN && y <= CAIRN_CALENDAR_YEAR_MAX &&
	       get_bit(c->years, y - CAIRN_CALENDAR_YEAR_MIN) && (c->months >> (tm->tm_mon + 1) & 1) &&
	       (c->days >> tm->tm_mday & 1) && tm->tm_mday <= days_in_month(y, tm->tm_mon + 1) &&
	       (c->weekdays >> wd & 1);
}

/* The first second of a day at or after from_sec (seconds since midnight)
 * that matches the time fields, or -1. */
static int first_time(const struct cairn_calendar *c, int from_sec)
{
	for (int h = from_sec / 3600; h < 24; h++) {
		if (!(c->hours >> h & 1))
			continue;
		for (int m = 0; m < 60; m++) {
			if (!(c->minutes >> m & 1) || h * 3600 + m * 60 + 59 < from_sec)
				continue;
			for (int s = 0; s < 60; s++)
				if (h * 3600 + m * 60 + s >= from_sec && (c->seconds >> s & 1))
					return h * 3600 + m * 60 + s;
		}
	}
	return -1;
}

/* Day by day: the date fields decide whether a day matches at all, the
 * time fields where in it. UTC days are exactly 86400 s long. */
int cairn_calendar_next(const struct cairn_calendar *c, int64_t after, int64_t *next)
{
	int64_t t = after + 1;
	int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int from = (int)(t - day * 86400);
	for (int64_t i = 0; i < SEARCH_DAYS; i++, day++, from = 0) {
		time_t midnight = (time_t)(day * 86400);
		struct tm tm;
		if (!gmtime_r(&midnight, &tm))
			return -ENOENT;
		if (tm.tm_year + 1900 > CAIRN_CALENDAR_YEAR_MAX)
			return -ENOENT;
		if (!date_matches(c, &tm))
			continue;
		int s = first_time(c, from);
		if (s >= 0) {
			*next = day * 86400 + s;
			return 0;
		}
	}
	return -ENOENT;
}

bool cairn_calendar_due(const struct cairn_calendar *c, int64_t last_run, int64_t now,
			int64_t *due_at)
{
	int64_t next;
	if (last_run <= 0 || cairn_calendar_next(c, last_run, &next) < 0 || next > now)
		return false;
	*due_at = next;
	return true;
}

int64_t cairn_calendar_delay(int64_t max_s, uint64_t random)
{
	return max_s > 0 ? (int64_t)(random % ((uint64_t)max_s + 1)) : 0;
}

int cairn_calendar_plan(const struct cairn_calendar *c, int64_t last_run, int64_t now,
			int64_t max_delay_s, uint64_t random, int64_t *at, int64_t *missed)
{
	int64_t when;
	*missed = 0;
	if (cairn_calendar_due(c, last_run, now, missed)) {
		when = now;
	} else {
		int rc = cairn_calendar_next(c, now, &when);
		if (rc < 0)
			return rc;
	}
	*at = when + cairn_calendar_delay(max_delay_s, random);
	return 0;
}
