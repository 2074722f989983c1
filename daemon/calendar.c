/* systemd-style calendar schedules, UTC (see calendar.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "calendar.h"
#include "repo/util.h"

#define YEAR0 1970
#define NYEARS 192
#define SEARCH_DAYS (200 * 366)

struct field {
	const char *name;
	int lo, hi;
};

static const struct field F_YEAR = { "year", YEAR0, YEAR0 + NYEARS - 1 };
static const struct field F_MONTH = { "month", 1, 12 };
static const struct field F_DAY = { "day", 1, 31 };
static const struct field F_HOUR = { "hour", 0, 23 };
static const struct field F_MINUTE = { "minute", 0, 59 };
static const struct field F_SECOND = { "second", 0, 59 };

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
	if (v > 100000)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* One comma item: *, v, a..b, v/step, *\/step, a..b/step. */
static int parse_item(const char **p, const struct field *f, uint64_t *bits)
{
	int a = f->lo, b = f->hi, step = 1;
	if (**p == '*') {
		(*p)++;
	} else {
		if (parse_int(p, &a) < 0)
			return -EINVAL;
		b = a;
		if ((*p)[0] == '.' && (*p)[1] == '.') {
			*p += 2;
			if (parse_int(p, &b) < 0)
				return -EINVAL;
		}
	}
	if (**p == '/') {
		(*p)++;
		if (parse_int(p, &step) < 0 || step < 1)
			return -EINVAL;
		if (a == b)
			b = f->hi; /* "5/10": 5, 15, 25, ... */
	}
	if (a < f->lo || b > f->hi || a > b)
		return -ERANGE;
	for (int v = a; v <= b; v += step)
		set_bit(bits, v - f->lo);
	return 0;
}

/* A whole field up to the next separator (or the end of s). */
static int parse_field(const char *s, size_t len, const struct field *f, uint64_t *bits,
		       char *err, size_t errlen)
{
	char buf[128];
	if (!len || len >= sizeof(buf))
		return set_err(err, errlen, -EINVAL, "empty or too long %s field", f->name);
	memcpy(buf, s, len);
	buf[len] = '\0';
	const char *p = buf;
	for (;;) {
		int rc = parse_item(&p, f, bits);
		if (rc < 0)
			return set_err(err, errlen, -EINVAL, "%s '%s': %s", f->name, buf,
				       rc == -ERANGE ? "out of range" : "not a value, range or repetition");
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			return set_err(err, errlen, -EINVAL, "%s '%s': unexpected '%c'", f->name, buf,
				       p[-1]);
	}
}

static const char *const weekday_names[] = { "monday", "tuesday", "wednesday", "thursday",
					      "friday", "saturday", "sunday" };

static int weekday(const char *s, size_t len)
{
	for (int i = 0; i < 7; i++)
		if ((len == 3 || len == strlen(weekday_names[i])) &&
		    !strncasecmp(s, weekday_names[i], len))
			return i;
	return -1;
}

static int parse_weekdays(const char *s, uint8_t *mask, char *err, size_t errlen)
{
	*mask = 0;
	while (*s) {
		size_t n = strcspn(s, ",.");
		int a = weekday(s, n), b = a;
		s += n;
		if (s[0] == '.' && s[1] == '.') {
			s += 2;
			n = strcspn(s, ",");
			b = weekday(s, n);
			s += n;
		}
		if (a < 0 || b < 0)
			return set_err(err, errlen, -EINVAL, "not a weekday list: use names such as Mon..Fri or Sat,Sun");
		for (int d = a;; d = (d + 1) % 7) {
			*mask |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		if (*s == ',')
			s++;
	}
	return 0;
}

static bool is_weekdays(const char *tok)
{
	return isalpha((unsigned char)tok[0]) && !strchr(tok, ':') && !strchr(tok, '-');
}

/* Y-M-D (or M-D) */
static int parse_date(const char *tok, struct cairn_calendar *c, char *err, size_t errlen)
{
	const char *d1 = strchr(tok, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
	uint64_t bits[3] = { 0 };
	int rc;
	if (!d1)
		return set_err(err, errlen, -EINVAL, "'%s' is not a date (YEAR-MONTH-DAY)", tok);
	const char *m = tok, *d = d1 + 1;
	if (d2) {
		memset(c->years, 0, sizeof(c->years));
		if ((rc = parse_field(tok, (size_t)(d1 - tok), &F_YEAR, c->years, err, errlen)) < 0)
			return rc;
		m = d1 + 1;
		d = d2 + 1;
	}
	if ((rc = parse_field(m, (size_t)(strchr(m, '-') - m), &F_MONTH, bits, err, errlen)) < 0)
		return rc;
	c->months = (uint16_t)(bits[0] << 1);
	bits[0] = 0;
	if ((rc = parse_field(d, strlen(d), &F_DAY, bits, err, errlen)) < 0)
		return rc;
	c->days = (uint32_t)(bits[0] << 1);
	return 0;
}

/* H:M[:S] */
static int parse_time(const char *tok, struct cairn_calendar *c, char *err, size_t errlen)
{
	const char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	uint64_t bits[3] = { 0 };
	int rc;
	if (!c1)
		return set_err(err, errlen, -EINVAL, "'%s' is not a time (HOUR:MINUTE[:SECOND])", tok);
	if ((rc = parse_field(tok, (size_t)(c1 - tok), &F_HOUR, bits, err, errlen)) < 0)
		return rc;
	c->hours = (uint32_t)bits[0];
	size_t mlen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
	c->minutes = 0;
	if ((rc = parse_field(c1 + 1, mlen, &F_MINUTE, &c->minutes, err, errlen)) < 0)
		return rc;
	c->seconds = 0;
	if (c2)
		return parse_field(c2 + 1, strlen(c2 + 1), &F_SECOND, &c->seconds, err, errlen);
	c->seconds = 1; /* :00 */
	return 0;
}

static void every(struct cairn_calendar *c)
{
	memset(c, 0, sizeof(*c));
	c->weekdays = 0x7f;
	for (int y = 0; y < NYEARS; y++)
		set_bit(c->years, y);
	c->months = 0x1ffe;
	c->days = 0xfffffffe;
	c->hours = 1; /* 00:00:00 unless a time says otherwise */
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
	{ "yearly", "*-01-01 00:00:00" },
	{ "annually", "*-01-01 00:00:00" },
};

int cairn_calendar_parse(const char *text, struct cairn_calendar *out, char *err, size_t errlen)
{
	char buf[256];
	if (!text || strlen(text) >= sizeof(buf))
		return set_err(err, errlen, -EINVAL, "empty or too long calendar expression");
	snprintf(buf, sizeof(buf), "%s", text);
	for (size_t i = 0; i < sizeof(shorthands) / sizeof(shorthands[0]); i++)
		if (!strcasecmp(buf, shorthands[i].name))
			snprintf(buf, sizeof(buf), "%s", shorthands[i].expansion);
	struct cairn_calendar c;
	every(&c);
	char *save = NULL, *tok = strtok_r(buf, " \t", &save);
	int rc = 0, ntok = 0;
	bool have_date = false, have_time = false, have_week = false;
	for (; tok && rc == 0; tok = strtok_r(NULL, " \t", &save), ntok++) {
		if (!have_week && !have_date && !have_time && is_weekdays(tok)) {
			have_week = true;
			rc = parse_weekdays(tok, &c.weekdays, err, errlen);
		} else if (!have_date && !have_time && strchr(tok, '-') && !strchr(tok, ':')) {
			have_date = true;
			rc = parse_date(tok, &c, err, errlen);
		} else if (!have_time && strchr(tok, ':')) {
			have_time = true;
			rc = parse_time(tok, &c, err, errlen);
		} else {
			rc = set_err(err, errlen, -EINVAL, "'%s' does not fit here", tok);
		}
	}
	if (rc == 0 && !ntok)
		rc = set_err(err, errlen, -EINVAL, "empty calendar expression");
	if (rc < 0) {
		char reason[200];
		snprintf(reason, sizeof(reason), "%s", err);
		return set_err(err, errlen, -EINVAL, "calendar '%s': %s", text, reason);
	}
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
	return y >= YEAR0 && y < YEAR0 + NYEARS && get_bit(c->years, y - YEAR0) &&
	       (c->months >> (tm->tm_mon + 1) & 1) && (c->days >> tm->tm_mday & 1) &&
	       tm->tm_mday <= days_in_month(y, tm->tm_mon + 1) && (c->weekdays >> wd & 1);
}

/* The first second of day >= from_sec (seconds since midnight) that
 * matches, or -1. */
static int first_time(const struct cairn_calendar *c, int from_sec)
{
	for (int h = from_sec / 3600; h < 24; h++) {
		if (!(c->hours >> h & 1))
			continue;
		for (int m = 0; m < 60; m++) {
			if (!(c->minutes >> m & 1))
				continue;
			for (int s = 0; s < 60; s++) {
				int t = h * 3600 + m * 60 + s;
				if (t >= from_sec && (c->seconds >> s & 1))
					return t;
			}
		}
	}
	return -1;
}

int cairn_calendar_next(const struct cairn_calendar *c, int64_t after, int64_t *next)
{
	int64_t t = after + 1;
	int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int from = (int)(t - day * 86400);
	for (int i = 0; i < SEARCH_DAYS; i++, day++, from = 0) {
		time_t midnight = (time_t)(day * 86400);
		struct tm tm;
		gmtime_r(&midnight, &tm);
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
	return max_s > 0 ? (int64_t)(random % (uint64_t)(max_s + 1)) : 0;
}
