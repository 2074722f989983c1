/* The anomaly guard's arithmetic and its manifest record (repo/anomaly.h). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anomaly.h"
#include "base/util.h"

struct cairn_guard_opts cairn_guard_resolve(const struct cairn_guard_opts *o)
{
	struct cairn_guard_opts r = o ? *o : (struct cairn_guard_opts){ 0 };
	if (r.factor <= 0)
		r.factor = CAIRN_GUARD_FACTOR;
	if (r.min_change <= 0)
		r.min_change = CAIRN_GUARD_MIN_CHANGE;
	if (r.incompressible <= 0)
		r.incompressible = CAIRN_GUARD_INCOMPRESSIBLE;
	if (r.baseline_incompressible <= 0)
		r.baseline_incompressible = CAIRN_GUARD_BASELINE_INCOMPRESSIBLE;
	if (r.absolute_change <= 0)
		r.absolute_change = CAIRN_GUARD_ABSOLUTE_CHANGE;
	if (r.absolute_incompressible <= 0)
		r.absolute_incompressible = CAIRN_GUARD_ABSOLUTE_INCOMPRESSIBLE;
	if (!r.history)
		r.history = CAIRN_GUARD_HISTORY;
	if (!r.min_new_bytes)
		r.min_new_bytes = CAIRN_GUARD_MIN_NEW_BYTES;
	return r;
}

/* "0.9" or "90%", in (0, max]. */
static int parse_share(const char *v, double max, double *out)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v)
		return -EINVAL;
	if (*end == '%') {
		d /= 100;
		end++;
	}
	if (*end || !(d > 0) || d > max)
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_word(const char *key, const char *v, struct cairn_guard_opts *o)
{
	double *share = !strcmp(key, "min-change") ? &o->min_change
			: !strcmp(key, "incompressible") ? &o->incompressible
			: !strcmp(key, "baseline-incompressible") ? &o->baseline_incompressible
			: !strcmp(key, "absolute-change") ? &o->absolute_change
			: !strcmp(key, "absolute-incompressible") ? &o->absolute_incompressible
			: NULL;
	if (share)
		return parse_share(v, 1.0, share);
	if (!strcmp(key, "factor")) {
		char *end;
		double d = strtod(v, &end);
		if (end != v && *end == 'x')
			end++;
		if (end == v || *end || !(d >= 1) || d > 1e6)
			return -EINVAL;
		o->factor = d;
		return 0;
	}
	char *end;
	if (!strcmp(key, "history")) {
		unsigned long n = strtoul(v, &end, 10);
		if (end == v || *end || n < 1 || n > 1000)
			return -EINVAL;
		o->history = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "min-new")) {
		uint64_t n;
		if (parse_size(v, &n) < 0 || !n)
			return -EINVAL;
		o->min_new_bytes = n;
		return 0;
	}
	return -ENOENT;
}

int cairn_guard_parse(const char *spec, struct cairn_guard_opts *o, char *err, size_t errlen)
{
	_cleanup_free_ char *copy = strdup(spec);
	if (!copy)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	if (!strcmp(spec, "off") || !strcmp(spec, "no")) {
		o->off = true;
		return 0;
	}
	o->off = false;
	if (!strcmp(spec, "on") || !strcmp(spec, "yes"))
		return 0;
	char *save = NULL;
	for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
		char *eq = strchr(w, '=');
		if (!eq)
			return set_err(err, errlen, -EINVAL,
				       "guard: '%s' is not KEY=VALUE (or give on or off)", w);
		*eq = '\0';
		int rc = parse_word(w, eq + 1, o);
		if (rc == -ENOENT)
			return set_err(err, errlen, -EINVAL,
				       "guard: unknown key %s (factor, min-change, incompressible, "
				       "baseline-incompressible, absolute-change, "
				       "absolute-incompressible, history, min-new)", w);
		if (rc < 0)
			return set_err(err, errlen, -EINVAL, "guard: bad value for %s: %s (%s)", w,
				       eq + 1,
				       !strcmp(w, "factor") ? "a number >= 1, e.g. 5"
				       : !strcmp(w, "history") ? "a count 1..1000"
				       : !strcmp(w, "min-new") ? "a size, e.g. 16M"
							       : "a share in (0, 1], e.g. 0.9 or 90%");
	}
	return 0;
}

void cairn_anomaly_measure(struct cairn_anomaly *a, uint64_t disk_size, uint64_t new_raw,
			   uint64_t new_stored)
{
	*a = (struct cairn_anomaly){ .present = true, .new_raw = new_raw, .new_stored = new_stored };
	a->change = disk_size ? (double)new_raw / (double)disk_size : 0;
	a->incompressible = new_raw ? (double)new_stored / (double)new_raw : 0;
	a->base_incompressible = -1;
}

static int by_value(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

/* Median change and pooled incompressible share (stored over raw bytes of
 * all samples: a sample with a few new chunks weighs what it holds) of the
 * usable history; returns how many samples there were. */
static unsigned baseline(struct cairn_anomaly *a, const struct cairn_anomaly *const *h, size_t n,
			 unsigned max)
{
	double changes[max];
	unsigned used = 0;
	uint64_t raw = 0, stored = 0;
	for (size_t i = 0; i < n && used < max; i++) {
		if (!h[i] || !h[i]->present || h[i]->suspicious || h[i]->basis == CAIRN_ANOMALY_FIRST)
			continue;
		changes[used++] = h[i]->change;
		raw += h[i]->new_raw;
		stored += h[i]->new_stored;
	}
	qsort(changes, used, sizeof(double), by_value);
	a->base_change = !used ? 0
			 : used % 2 ? changes[used / 2]
				    : (changes[used / 2 - 1] + changes[used / 2]) / 2;
	a->base_incompressible = raw ? (double)stored / (double)raw : -1;
	return used;
}

void cairn_anomaly_decide(struct cairn_anomaly *a, const struct cairn_anomaly *const *history,
			  size_t nhistory, bool earlier, const struct cairn_guard_opts *o)
{
	const struct cairn_guard_opts t = cairn_guard_resolve(o);
	a->thresholds = t;
	a->samples = baseline(a, history, nhistory, t.history);
	a->suspicious = false;
	if (!earlier) {
		a->basis = CAIRN_ANOMALY_FIRST;
		return;
	}
	if (a->new_raw < t.min_new_bytes) {
		a->basis = a->samples ? CAIRN_ANOMALY_HISTORY : CAIRN_ANOMALY_ABSOLUTE;
		return;
	}
	if (!a->samples) {
		a->basis = CAIRN_ANOMALY_ABSOLUTE;
		a->suspicious = a->change >= t.absolute_change &&
				a->incompressible >= t.absolute_incompressible;
		return;
	}
	a->basis = CAIRN_ANOMALY_HISTORY;
	/* a history of writing incompressible data (media, already encrypted
	 * guests) cannot tell encryption by compression: no verdict */
	bool usually_compressible = a->base_incompressible < t.baseline_incompressible;
	a->suspicious = a->change >= t.factor * a->base_change && a->change >= t.min_change &&
			a->incompressible >= t.incompressible && usually_compressible;
}

const char *cairn_anomaly_basis_name(enum cairn_anomaly_basis b)
{
	return b == CAIRN_ANOMALY_FIRST ? "first" : b == CAIRN_ANOMALY_ABSOLUTE ? "absolute" : "history";
}

void cairn_anomaly_describe(const struct cairn_anomaly *a, char *out, size_t len)
{
	char base_change[48] = "", base_inc[48] = "";
	if (a->basis == CAIRN_ANOMALY_HISTORY) {
		snprintf(base_change, sizeof(base_change), " (baseline %.1f%%)", a->base_change * 100);
		if (a->base_incompressible >= 0)
			snprintf(base_inc, sizeof(base_inc), " (baseline %.0f%%)",
				 a->base_incompressible * 100);
	} else if (a->basis == CAIRN_ANOMALY_ABSOLUTE) {
		snprintf(base_change, sizeof(base_change), " (no history)");
	}
	snprintf(out, len, "%.1f%% of the disk new%s, %.0f%% incompressible%s",
		 a->change * 100, base_change, a->incompressible * 100, base_inc);
}

json_t *cairn_anomaly_to_json(const struct cairn_anomaly *a)
{
	const struct cairn_guard_opts *t = &a->thresholds;
	json_t *base_inc = a->base_incompressible >= 0 ? json_real(a->base_incompressible)
						       : json_null();
	return json_pack("{s:f, s:f, s:I, s:I, s:s, s:I, s:{s:f, s:o}, "
			 "s:{s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}, s:b}",
			 "change", a->change, "incompressible", a->incompressible, "new_raw",
			 (json_int_t)a->new_raw, "new_stored", (json_int_t)a->new_stored, "basis",
			 cairn_anomaly_basis_name(a->basis), "samples", (json_int_t)a->samples,
			 "baseline", "change", a->base_change, "incompressible", base_inc,
			 "thresholds", "factor", t->factor, "min_change", t->min_change,
			 "incompressible", t->incompressible, "baseline_incompressible",
			 t->baseline_incompressible, "absolute_change", t->absolute_change,
			 "absolute_incompressible", t->absolute_incompressible, "history",
			 (json_int_t)t->history, "min_new_bytes", (json_int_t)t->min_new_bytes,
			 "suspicious", a->suspicious);
}

static double number(json_t *j, double dflt)
{
	return json_is_number(j) ? json_number_value(j) : dflt;
}

void cairn_anomaly_from_json(json_t *j, struct cairn_anomaly *a)
{
	*a = (struct cairn_anomaly){ .base_incompressible = -1 };
	json_t *base = json_object_get(j, "baseline"), *t = json_object_get(j, "thresholds");
	const char *basis = json_string_value(json_object_get(j, "basis"));
	json_t *suspicious = json_object_get(j, "suspicious");
	if (!json_is_object(j) || !basis || !json_is_boolean(suspicious) ||
	    !json_is_number(json_object_get(j, "change")) ||
	    !json_is_number(json_object_get(j, "incompressible")))
		return;
	a->present = true;
	a->suspicious = json_is_true(suspicious);
	a->basis = !strcmp(basis, "first") ? CAIRN_ANOMALY_FIRST
		   : !strcmp(basis, "absolute") ? CAIRN_ANOMALY_ABSOLUTE
						: CAIRN_ANOMALY_HISTORY;
	a->change = number(json_object_get(j, "change"), 0);
	a->incompressible = number(json_object_get(j, "incompressible"), 0);
	a->new_raw = (uint64_t)number(json_object_get(j, "new_raw"), 0);
	a->new_stored = (uint64_t)number(json_object_get(j, "new_stored"), 0);
	a->samples = (unsigned)number(json_object_get(j, "samples"), 0);
	a->base_change = number(json_object_get(base, "change"), 0);
	a->base_incompressible = number(json_object_get(base, "incompressible"), -1);
	a->thresholds = (struct cairn_guard_opts){
		.factor = number(json_object_get(t, "factor"), 0),
		.min_change = number(json_object_get(t, "min_change"), 0),
		.incompressible = number(json_object_get(t, "incompressible"), 0),
		.baseline_incompressible = number(json_object_get(t, "baseline_incompressible"), 0),
		.absolute_change = number(json_object_get(t, "absolute_change"), 0),
		.absolute_incompressible = number(json_object_get(t, "absolute_incompressible"), 0),
		.history = (unsigned)number(json_object_get(t, "history"), 0),
		.min_new_bytes = (uint64_t)number(json_object_get(t, "min_new_bytes"), 0),
	};
}
