/* Retention policies (cairn forget): which snapshots of one VM to keep.
 *
 * The rules are those admins know from restic and Proxmox Backup Server:
 * keep-last N keeps the N newest; keep-hourly/daily/weekly/monthly/yearly N
 * keep the newest snapshot of each of the N newest hours/days/ISO weeks/
 * months/years that have one (all in UTC); keep-within keeps everything
 * taken within a calendar duration before the newest snapshot; keep-tag
 * keeps snapshots carrying a tag; protected snapshots are always kept. A
 * snapshot kept by any rule is kept, and every rule that keeps it is
 * reported.
 *
 * Pure: no repository access, so the rules are testable with fixed dates. */
#ifndef CAIRN_RETENTION_H
#define CAIRN_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A calendar duration: "1y6m", "14d", "36h", "2w" (w = 7 days). */
struct cairn_duration {
	int years, months, days, hours;
};

struct cairn_keep_policy {
	unsigned last, hourly, daily, weekly, monthly, yearly;
	bool has_within;
	struct cairn_duration within;
	const char *const *tags;
	size_t ntags;
};

enum cairn_keep_reason {
	CAIRN_KEEP_LAST = 1u << 0,
	CAIRN_KEEP_HOURLY = 1u << 1,
	CAIRN_KEEP_DAILY = 1u << 2,
	CAIRN_KEEP_WEEKLY = 1u << 3,
	CAIRN_KEEP_MONTHLY = 1u << 4,
	CAIRN_KEEP_YEARLY = 1u << 5,
	CAIRN_KEEP_WITHIN = 1u << 6,
	CAIRN_KEEP_TAG = 1u << 7,
	CAIRN_KEEP_PROTECTED = 1u << 8,
};

struct cairn_retention_item {
	int64_t time_ns;
	char *const *tags;
	size_t ntags;
	bool protect;
	unsigned reasons; /* out: why it is kept; 0 = remove */
};

/* 0, or -EINVAL for text that is not a duration. */
int cairn_duration_parse(const char *text, struct cairn_duration *out);
/* True when the policy has no rule at all (forget refuses that). */
bool cairn_keep_policy_empty(const struct cairn_keep_policy *p);
/* Sets reasons of every item of one group (one VM); items in any order.
 * Returns 0 or -ENOMEM. */
int cairn_retention_apply(const struct cairn_keep_policy *p,
			  struct cairn_retention_item *items, size_t n);
/* "last,daily" — the rule names in reasons, or "" */
void cairn_keep_reasons(unsigned reasons, char *out, size_t len);

#endif
