/* The anomaly guard in a backup (agent/guard.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "guard.h"

static void notice(const struct cairn_backup_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(const struct cairn_backup_opts *o, const char *fmt, ...)
{
	if (!o->notice)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->notice(o->notice_opaque, line);
}

/* The records of disk `name` in the earlier snapshots same[0..n) (newest
 * first) into hist; returns how many snapshots hold the disk at all. */
static size_t disk_history(struct cairn_snapshot *const *same, size_t n, const char *name,
			   const struct cairn_anomaly **hist)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		const struct cairn_disk *d = cairn_snapshot_disk(same[i], name);
		if (d)
			hist[count++] = &d->anomaly;
	}
	return count;
}

static void judge_disks(struct cairn_snapshot *s, struct cairn_snapshot *const *same, size_t n,
			const struct cairn_guard_opts *o)
{
	_cleanup_free_ const struct cairn_anomaly **hist = calloc(n + 1, sizeof(*hist));
	for (size_t i = 0; i < s->ndisks; i++) {
		struct cairn_disk *d = &s->disks[i];
		size_t count = hist ? disk_history(same, n, d->name, hist) : 0;
		cairn_anomaly_decide(&d->anomaly, hist, count, count > 0, o);
	}
}

void guard_judge(struct cairn_repo *r, struct cairn_snapshot *s, const struct cairn_backup_opts *o,
		 struct cairn_backup_result *res)
{
	if (o->guard.off)
		return;
	struct cairn_snapshot **all = NULL;
	size_t n = 0;
	int rc = cairn_snapshot_list(r, &all, &n);
	_cleanup_free_ struct cairn_snapshot **same = rc == 0 ? calloc(n + 1, sizeof(*same)) : NULL;
	if (rc < 0 || !same) {
		/* without a history there is no verdict: record nothing rather
		 * than judge a disk as if it were new */
		for (size_t i = 0; i < s->ndisks; i++)
			s->disks[i].anomaly.present = false;
		notice(o, "anomaly guard skipped: %s",
		       rc < 0 ? cairn_repo_error(r) : "out of memory");
		if (rc == 0)
			cairn_snapshot_list_free(all, n);
		return;
	}
	size_t nsame = 0;
	for (size_t i = n; i-- > 0;) /* the list is oldest first */
		if (!strcmp(all[i]->name, s->name))
			same[nsame++] = all[i];
	for (size_t i = 0; i < nsame && !res->has_clean_prev; i++)
		if (!cairn_snapshot_suspicious(same[i])) {
			res->has_clean_prev = true;
			res->clean_prev = same[i]->id;
		}
	judge_disks(s, same, nsame, &o->guard);
	cairn_snapshot_list_free(all, n);
}

/* "disk vda: 83.0% of the disk new (baseline 1.2%), ..." for every
 * suspicious disk, "; "-separated. */
static void describe(const struct cairn_snapshot *s, char *out, size_t len)
{
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->ndisks && at + 1 < len; i++) {
		const struct cairn_anomaly *a = &s->disks[i].anomaly;
		if (!a->present || !a->suspicious)
			continue;
		char line[200];
		cairn_anomaly_describe(a, line, sizeof(line));
		at += (size_t)snprintf(out + at, len - at, "%sdisk %s: %s", at ? "; " : "",
				       s->disks[i].name, line);
	}
}

void guard_act(struct cairn_repo *r, const struct cairn_snapshot *s,
	       const struct cairn_backup_opts *o, struct cairn_backup_result *res)
{
	if (o->guard.off || !cairn_snapshot_suspicious(s))
		return;
	char why[300], hex[65];
	describe(s, why, sizeof(why));
	res->suspicious = true;
	if (!res->has_clean_prev) {
		snprintf(res->alarm, sizeof(res->alarm), "suspicious change: %s; no earlier clean snapshot to protect", why);
	} else if (cairn_snapshot_protect(r, &res->clean_prev, true) < 0) {
		hex_encode(res->clean_prev.b, CAIRN_ID_LEN, hex);
		snprintf(res->alarm, sizeof(res->alarm),
			 "suspicious change: %s; protecting snapshot %.12s failed: %s", why, hex,
			 cairn_repo_error(r));
	} else {
		hex_encode(res->clean_prev.b, CAIRN_ID_LEN, hex);
		res->has_protected = true;
		res->protected = res->clean_prev;
		snprintf(res->alarm, sizeof(res->alarm),
			 "suspicious change: %s; snapshot %.12s protected", why, hex);
	}
}
