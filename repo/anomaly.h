/* The anomaly guard's arithmetic (docs/design.md section 24): per disk of a
 * backup, how much of the disk is new data and how incompressible that new
 * data is, judged against the same VM's own history, and the manifest key
 * `"anomaly"` that records the measure, the baseline, the thresholds and
 * the verdict. Pure: nothing here touches a repository; the backup
 * (agent/guard.c) gathers the history and acts on a verdict.
 *
 * Measures (a guest being encrypted rewrites most of its disk with data
 * that does not compress):
 *   change          raw bytes of the disk's chunks the repository did not
 *                   have before (new chunks) / disk size. New data, not
 *                   bytes read: a full read of an unchanged disk
 *                   deduplicates to nothing and does not count.
 *   incompressible  stored / raw bytes of those new chunks (about 1 for
 *                   random or encrypted data, 0.2-0.6 for what systems
 *                   usually write); 0 when there was no new data.
 * A disk is suspicious when
 *   - it has a history (up to `history` earlier, not suspicious, not first
 *     backups of this disk under this snapshot name): change >= factor x
 *     the median change AND change >= min_change AND incompressible >=
 *     incompressible AND the median incompressible share of the history
 *     (of the samples with new data) < baseline_incompressible;
 *   - it has none but an earlier backup exists: change >= absolute_change
 *     AND incompressible >= absolute_incompressible;
 * and, either way, at least min_new_bytes of new data arrived (a tiny
 * disk or a handful of chunks says nothing). A disk's first backup is
 * never suspicious: all of it is new. */
#ifndef CAIRN_REPO_ANOMALY_H
#define CAIRN_REPO_ANOMALY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_GUARD_FACTOR 5.0
#define CAIRN_GUARD_MIN_CHANGE 0.20
#define CAIRN_GUARD_INCOMPRESSIBLE 0.90
#define CAIRN_GUARD_BASELINE_INCOMPRESSIBLE 0.70
#define CAIRN_GUARD_ABSOLUTE_CHANGE 0.50
#define CAIRN_GUARD_ABSOLUTE_INCOMPRESSIBLE 0.95
#define CAIRN_GUARD_HISTORY 7
#define CAIRN_GUARD_MIN_NEW_BYTES (16ull << 20)

/* Thresholds; a zero field takes its default (cairn_guard_resolve). */
struct cairn_guard_opts {
	bool off; /* no measuring, no record, no verdict */
	double factor, min_change, incompressible, baseline_incompressible;
	double absolute_change, absolute_incompressible;
	unsigned history;
	uint64_t min_new_bytes;
};

/* o with every zero field set to its default. */
struct cairn_guard_opts cairn_guard_resolve(const struct cairn_guard_opts *o);

/* Parses "off", "on", or words "KEY=VALUE" separated by spaces or commas
 * (keys factor, min-change, incompressible, baseline-incompressible,
 * absolute-change, absolute-incompressible, history, min-new; shares as
 * 0.9 or 90%, min-new as a size: 16M) onto *o. 0, or -EINVAL with a
 * one-line reason in err. */
int cairn_guard_parse(const char *spec, struct cairn_guard_opts *o, char *err, size_t errlen);

enum cairn_anomaly_basis {
	CAIRN_ANOMALY_FIRST, /* the disk's first backup under this name */
	CAIRN_ANOMALY_ABSOLUTE, /* no usable history: the absolute rule */
	CAIRN_ANOMALY_HISTORY, /* judged against the history */
};

/* One disk's record: the manifest key "anomaly" of its disk object. */
struct cairn_anomaly {
	bool present; /* recorded (a backup with the guard on) */
	uint64_t new_raw, new_stored; /* bytes of the new chunks, raw and in packs */
	double change, incompressible;
	enum cairn_anomaly_basis basis;
	unsigned samples; /* history entries the baseline is made of */
	double base_change; /* median; 0 without samples */
	double base_incompressible; /* median of the samples with new data; -1: none */
	struct cairn_guard_opts thresholds; /* resolved */
	bool suspicious;
};

/* A backup's measure of one disk, before the verdict. */
void cairn_anomaly_measure(struct cairn_anomaly *a, uint64_t disk_size, uint64_t new_raw,
			   uint64_t new_stored);

/* The verdict on a (measured): history holds the records of the same disk
 * in earlier snapshots of the same name, any order up to the caller but
 * newest first is what `history` counts from; records that are absent,
 * suspicious or first backups are skipped, and at most o->history of the
 * rest count. earlier: an earlier backup of this disk exists (else the
 * basis is FIRST). Sets basis, samples, baselines, thresholds, suspicious. */
void cairn_anomaly_decide(struct cairn_anomaly *a, const struct cairn_anomaly *const *history,
			  size_t nhistory, bool earlier, const struct cairn_guard_opts *o);

/* The manifest object (docs/design.md section 9); NULL when out of memory. */
struct json_t;
struct json_t *cairn_anomaly_to_json(const struct cairn_anomaly *a);
/* Reads a manifest object into *a. A malformed one leaves a->present false
 * (the record is advisory: a snapshot stays readable without it). */
void cairn_anomaly_from_json(struct json_t *j, struct cairn_anomaly *a);

/* "first", "absolute", "history" */
const char *cairn_anomaly_basis_name(enum cairn_anomaly_basis b);

/* One line for people: "83% of the disk new (baseline 1.2%), 100%
 * incompressible (baseline 41%)". */
void cairn_anomaly_describe(const struct cairn_anomaly *a, char *out, size_t len);

#endif
