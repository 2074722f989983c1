/* Retention policies (see retention.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "retention.h"

#define NS_PER_S 1000000000LL

int cairn_duration_parse(const char *text, struct cairn_duration *out)
{
	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return -EINVAL;
	const char *p = text;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 0 || v > 100000)
			return -EINVAL;
		switch (*end) {
		case 'y': out->years += (int)v; break;
		case 'm': out->months += (int)v; break;
		case 'w': out->days += (int)v * 7; break;
		case 'd': out->days += (int)v; break;
		case 'h': out->hours += (int)v; break;
		default: return -EINVAL;
		}
		p = end + 1;
	}
	return 0;
}

bool cairn_keep_policy_empty(const struct cairn_keep_policy *p)
{
	return !p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly &&
	       !p->yearly && !p->has_within && !p->ntags;
}

static struct tm utc(int64_t ns)
{
	time_t t = (time_t)(ns / NS_PER_S - (ns % NS_PER_S < 0));
	struct tm tm;
	gmtime_r(&t, &tm);
	return tm;
}

/* The instant `d` before `ns`, in calendar terms (a month back from
 * 31 March is 3 March after normalisation, as with restic's AddDate). */
static int64_t minus_duration(int64_t ns, const struct cairn_duration *d)
{
	struct tm tm = utc(ns);
	tm.tm_year -= d->years;
	tm.tm_mon -= d->months;
	tm.tm_mday -= d->days;
	tm.tm_hour -= d->hours;
	return (int64_t)timegm(&tm) * NS_PER_S + ((ns % NS_PER_S) + NS_PER_S) % NS_PER_S;
}

/* The period a snapshot falls in, as one number per rule. */
static int64_t bucket(int64_t ns, enum cairn_keep_reason rule)
{
	struct tm tm = utc(ns);
	int64_t secs = ns / NS_PER_S - (ns % NS_PER_S < 0);
	char week[16];
	switch (rule) {
	case CAIRN_KEEP_HOURLY: return secs >= 0 ? secs / 3600 : (secs - 3599) / 3600;
	case CAIRN_KEEP_DAILY: return secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	case CAIRN_KEEP_WEEKLY:
		strftime(week, sizeof(week), "%G%V", &tm); /* ISO 8601 year and week */
		return strtoll(week, NULL, 10);
	case CAIRN_KEEP_MONTHLY: return (int64_t)tm.tm_year * 12 + tm.tm_mon;
	case CAIRN_KEEP_YEARLY: return tm.tm_year;
	default: return 0;
	}
}

struct by_time {
	int64_t time_ns;
	size_t item;
};

static int newest_first(const void *a, const void *b)
{
	const struct by_time *x = a, *y = b;
	return x->time_ns > y->time_ns ? -1 : x->time_ns < y->time_ns;
}

/* Keeps the newest snapshot of each of the `count` newest periods. */
static void keep_periods(struct cairn_retention_item *items, const struct by_time *order, size_t n,
			 unsigned count, enum cairn_keep_reason rule)
{
	unsigned used = 0;
	int64_t last = 0;
	for (size_t i = 0; i < n && used < count; i++) {
		struct cairn_retention_item *it = &items[order[i].item];
		int64_t b = bucket(it->time_ns, rule);
		if (i > 0 && b == last)
			continue;
		it->reasons |= rule;
		used++;
		last = b;
	}
}

static bool has_tag(const struct cairn_retention_item *it, const struct cairn_keep_policy *p)
{
	for (size_t i = 0; i < it->ntags; i++)
		for (size_t j = 0; j < p->ntags; j++)
			if (!strcmp(it->tags[i], p->tags[j]))
				return true;
	return false;
}

int cairn_retention_apply(const struct cairn_keep_policy *p,
			  struct cairn_retention_item *items, size_t n)
{
	struct by_time *order = calloc(n + 1, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		order[i] = (struct by_time){ items[i].time_ns, i };
		items[i].reasons = 0;
	}
	qsort(order, n, sizeof(*order), newest_first);
	for (size_t i = 0; i < n && i < p->last; i++)
		items[order[i].item].reasons |= CAIRN_KEEP_LAST;
	keep_periods(items, order, n, p->hourly, CAIRN_KEEP_HOURLY);
	keep_periods(items, order, n, p->daily, CAIRN_KEEP_DAILY);
	keep_periods(items, order, n, p->weekly, CAIRN_KEEP_WEEKLY);
	keep_periods(items, order, n, p->monthly, CAIRN_KEEP_MONTHLY);
	keep_periods(items, order, n, p->yearly, CAIRN_KEEP_YEARLY);
	int64_t since = n && p->has_within ? minus_duration(order[0].time_ns, &p->within)
					   : 0;
	for (size_t i = 0; i < n; i++) {
		struct cairn_retention_item *it = &items[i];
		if (p->has_within && it->time_ns >= since)
			it->reasons |= CAIRN_KEEP_WITHIN;
		if (has_tag(it, p))
			it->reasons |= CAIRN_KEEP_TAG;
		if (it->protect)
			it->reasons |= CAIRN_KEEP_PROTECTED;
	}
	free(order);
	return 0;
}

void cairn_keep_reasons(unsigned reasons, char *out, size_t len)
{
	static const char *const names[] = { "last", "hourly", "daily", "weekly", "monthly",
					     "yearly", "within", "tag", "protected" };
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(reasons & (1u << i)))
			continue;
		size_t at = strlen(out);
		snprintf(out + at, len - at, "%s%s", at ? "," : "", names[i]);
	}
}
