/* The read planner of the disk reader (repo/disk_reader.h), internal to
 * repo/: a pure function from a disk's chunk map, a slot range and the
 * index to the ranged reads that fetch it (docs/design.md section 11).
 *
 *   - zero slots and skipped slots are left out (the reader delivers zero
 *     runs itself);
 *   - the distinct chunk ids are looked up once; slots that share an id
 *     share one blob, which lists them all;
 *   - blobs are grouped by pack and sorted by offset; neighbours are
 *     merged into one range when the gap between them is at most
 *     merge_gap, or whatever the gap when most of the pack's span is
 *     needed (dense: read the span whole), as long as the range stays
 *     within max_range (one blob larger than that is a range of its own);
 *   - at most max_slots non-zero slots are planned at once (memory is
 *     bounded whatever the disk's size): plan->next says where the next
 *     batch starts.
 * Ranges come sorted by the lowest slot they serve, so a restore writes
 * roughly front to back. */
#ifndef CAIRN_REPO_READ_PLAN_H
#define CAIRN_REPO_READ_PLAN_H

#include "internal.h"

#define READ_PLAN_MAX_RANGE (18u * 1024 * 1024) /* a default pack, whole */
#define READ_PLAN_MERGE_GAP (512u * 1024)
#define READ_PLAN_MAX_SLOTS (256u * 1024)

struct read_plan_limits {
	size_t max_range, merge_gap; /* 0: the defaults above */
	size_t max_slots;
};

/* The index entry of id (pack, offset, lengths, flags); false: absent. */
typedef bool (*read_plan_lookup_fn)(void *opaque, const cairn_id *id, struct idx_entry *out);

struct plan_blob {
	struct idx_entry e;
	size_t slot_first, nslots; /* into plan->slots */
};

struct plan_range {
	uint32_t pack;
	uint64_t off, len; /* bytes of the pack */
	size_t blob_first, nblobs; /* into plan->blobs, by offset */
	uint64_t min_seq; /* lowest slot served */
};

struct read_plan {
	uint64_t *slots;
	size_t nslots;
	struct plan_blob *blobs;
	size_t nblobs;
	struct plan_range *ranges;
	size_t nranges;
	uint64_t needed; /* stored bytes of the distinct blobs */
	uint64_t next; /* the first slot not planned: end, or where a batch stopped */
	uint64_t missing_seq; /* with -ENOENT: the slot whose chunk is not indexed */
};

/* Plans slots [first, end) of d (map loaded) minus those set in skip
 * (bit seq % 64 of skip[seq / 64]; may be NULL). 0, -ENOENT (a chunk is
 * not in the index: plan->missing_seq) or -ENOMEM. Free with
 * read_plan_free, also after a failure. */
int read_plan_build(const struct cairn_disk *d, uint64_t first, uint64_t end,
		    const uint64_t *skip, const struct read_plan_limits *lim,
		    read_plan_lookup_fn lookup, void *opaque, struct read_plan *plan);
void read_plan_free(struct read_plan *plan);

static inline bool read_plan_skipped(const uint64_t *skip, uint64_t seq)
{
	return skip && (skip[seq / 64] >> (seq % 64) & 1);
}

#endif
