/* The read planner (repo/read_plan.h): slots -> distinct blobs -> ranged
 * reads, grouped by pack and merged. */
#include <errno.h>

#include "disk.h"
#include "read_plan.h"

struct plan_item {
	uint64_t seq;
	struct idx_entry e;
};

static int item_cmp(const void *a, const void *b)
{
	const struct plan_item *x = a, *y = b;
	if (x->e.pack != y->e.pack)
		return x->e.pack < y->e.pack ? -1 : 1;
	if (x->e.offset != y->e.offset)
		return x->e.offset < y->e.offset ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int range_cmp(const void *a, const void *b)
{
	const struct plan_range *x = a, *y = b;
	return x->min_seq < y->min_seq ? -1 : x->min_seq > y->min_seq;
}

/* The non-zero, non-skipped slots from first on, looked up, at most max. */
static int collect(const struct cairn_disk *d, uint64_t first, uint64_t end,
		   const uint64_t *skip, size_t max, read_plan_lookup_fn lookup,
		   void *opaque, struct read_plan *p, struct plan_item **out, size_t *n)
{
	struct plan_item *v = malloc(MIN((uint64_t)max, MAX(end - first, 1)) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*out = v;
	*n = 0;
	uint64_t seq = first;
	while (seq < end && *n < max) {
		bool zero;
		uint64_t run = cairn_disk_run(d, seq, end - seq, &zero);
		if (zero) {
			seq += run;
			continue;
		}
		for (uint64_t e = seq + run; seq < e && *n < max; seq++) {
			if (read_plan_skipped(skip, seq))
				continue;
			v[*n].seq = seq;
			if (!lookup(opaque, &d->map[seq], &v[*n].e)) {
				p->missing_seq = seq;
				return -ENOENT;
			}
			(*n)++;
		}
	}
	/* a batch ends at a slot boundary: zero slots right after it belong
	 * to this batch so the next starts on data (or the end) */
	while (seq < end && cairn_id_is_zero(&d->map[seq]))
		seq++;
	p->next = seq;
	return 0;
}

/* Items sorted by (pack, offset, seq) -> one blob per distinct chunk. */
static int make_blobs(struct read_plan *p, const struct plan_item *v, size_t n)
{
	p->slots = malloc(MAX(n, 1) * sizeof(*p->slots));
	p->blobs = malloc(MAX(n, 1) * sizeof(*p->blobs));
	if (!p->slots || !p->blobs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		p->slots[i] = v[i].seq;
		struct plan_blob *last = p->nblobs ? &p->blobs[p->nblobs - 1] : NULL;
		if (last && !memcmp(&last->e.id, &v[i].e.id, sizeof(cairn_id))) {
			last->nslots++;
			continue;
		}
		p->blobs[p->nblobs++] = (struct plan_blob){ .e = v[i].e, .slot_first = i,
							    .nslots = 1 };
		p->needed += v[i].e.stored_len;
	}
	p->nslots = n;
	return 0;
}

static uint64_t blob_end(const struct plan_blob *b)
{
	return (uint64_t)b->e.offset + b->e.stored_len;
}

/* Ranges of the blobs [a, b) of one pack. */
static void pack_ranges(struct read_plan *p, size_t a, size_t b, size_t max_range,
			size_t merge_gap)
{
	uint64_t needed = 0;
	for (size_t i = a; i < b; i++)
		needed += p->blobs[i].e.stored_len;
	uint64_t span = blob_end(&p->blobs[b - 1]) - p->blobs[a].e.offset;
	uint64_t gap = needed * 2 >= span ? UINT64_MAX : merge_gap;
	struct plan_range *r = NULL;
	for (size_t i = a; i < b; i++) {
		const struct plan_blob *bl = &p->blobs[i];
		uint64_t seq = p->slots[bl->slot_first];
		if (r && bl->e.offset >= r->off + r->len &&
		    bl->e.offset - (r->off + r->len) <= gap &&
		    blob_end(bl) - r->off <= max_range) {
			r->len = blob_end(bl) - r->off;
			r->nblobs++;
			r->min_seq = MIN(r->min_seq, seq);
			continue;
		}
		r = &p->ranges[p->nranges++];
		*r = (struct plan_range){ .pack = bl->e.pack, .off = bl->e.offset,
					  .len = bl->e.stored_len, .blob_first = i,
					  .nblobs = 1, .min_seq = seq };
	}
}

static int make_ranges(struct read_plan *p, size_t max_range, size_t merge_gap)
{
	p->ranges = malloc(MAX(p->nblobs, 1) * sizeof(*p->ranges));
	if (!p->ranges)
		return -ENOMEM;
	for (size_t a = 0, b; a < p->nblobs; a = b) {
		for (b = a + 1; b < p->nblobs && p->blobs[b].e.pack == p->blobs[a].e.pack; b++)
			;
		pack_ranges(p, a, b, max_range, merge_gap);
	}
	qsort(p->ranges, p->nranges, sizeof(*p->ranges), range_cmp);
	return 0;
}

int read_plan_build(const struct cairn_disk *d, uint64_t first, uint64_t end,
		    const uint64_t *skip, const struct read_plan_limits *lim,
		    read_plan_lookup_fn lookup, void *opaque, struct read_plan *p)
{
	memset(p, 0, sizeof(*p));
	end = MIN(end, d->nchunks);
	p->next = first = MIN(first, end);
	size_t max_range = lim && lim->max_range ? lim->max_range : READ_PLAN_MAX_RANGE;
	size_t merge_gap = lim && lim->merge_gap ? lim->merge_gap : READ_PLAN_MERGE_GAP;
	size_t max_slots = lim && lim->max_slots ? lim->max_slots : READ_PLAN_MAX_SLOTS;
	_cleanup_free_ struct plan_item *v = NULL;
	size_t n;
	int rc = collect(d, first, end, skip, max_slots, lookup, opaque, p, &v, &n);
	if (rc < 0)
		return rc;
	qsort(v, n, sizeof(*v), item_cmp);
	rc = make_blobs(p, v, n);
	return rc < 0 ? rc : make_ranges(p, max_range, merge_gap);
}

void read_plan_free(struct read_plan *p)
{
	free(p->slots);
	free(p->blobs);
	free(p->ranges);
	memset(p, 0, sizeof(*p));
}
