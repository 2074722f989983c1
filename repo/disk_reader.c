/* The disk reader (repo/disk_reader.h): plans a slot range by pack
 * (read_plan.c), then runs the ranged reads on a few threads that each
 * fetch a range, decode its chunks and deliver them. Connections in
 * flight and bytes held are counted in the reader, so concurrent fetches
 * share both bounds. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "disk.h"
#include "disk_reader.h"
#include "read_plan.h"
#include "base/pipeline.h"

#define OUT_ALIGN 4096u /* decoded chunks may be written with O_DIRECT */
/* A run of consecutive slots delivered at once, at most (callbacks that
 * take runs): large writes cost a target fewer and cheaper I/Os. */
#define RUN_BYTES (4u * 1024 * 1024)

struct cairn_dreader {
	struct cairn_repo *r;
	const struct cairn_disk *d;
	unsigned connections; /* ranged reads in flight at most */
	unsigned threads; /* per fetch at most */
	size_t budget;
	struct read_plan_limits lim;
	pthread_mutex_t lock; /* in_flight, held */
	pthread_cond_t cond;
	unsigned in_flight;
	size_t held;
	_Atomic uint64_t fetched;
	cairn_dreader_stored_fn stored; /* and its opaque: the options' */
	void *stored_opaque;
};

/* One fetch call: its plan, callbacks and first error. */
struct fetch {
	struct cairn_dreader *rd;
	const struct read_plan *plan;
	const struct cairn_dreader_cb *cb;
	const volatile int *cancel;
	pthread_mutex_t lock; /* next, rc, err */
	size_t next;
	int rc;
	char *err;
	size_t errlen;
};

/* The run buffer of one fetch thread. */
static size_t run_capacity(const struct cairn_disk *d, bool runs)
{
	size_t cap = runs ? MAX(RUN_BYTES / d->chunk_size, 1) * d->chunk_size : d->chunk_size;
	return (cap + OUT_ALIGN - 1) / OUT_ALIGN * OUT_ALIGN;
}

int cairn_dreader_new(struct cairn_repo *r, const struct cairn_disk *d,
		      const struct cairn_dreader_opts *o, struct cairn_dreader **out,
		      char *err, size_t errlen)
{
	if (!d->map && d->nchunks)
		return set_err(err, errlen, -EINVAL, "disk %s: chunk map not loaded", d->name);
	if (cairn_repo_need_full(r) < 0)
		return set_err(err, errlen, -EPERM, CAIRN_HOST_KEY_REFUSAL);
	struct cairn_dreader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	rd->r = r;
	rd->d = d;
	unsigned cpus = cairn_default_workers();
	rd->connections = o && o->connections ? o->connections
			  : r->be->connections ? r->be->connections : cpus;
	rd->budget = o && o->budget ? o->budget : CAIRN_DREADER_DEFAULT_BUDGET;
	rd->stored = o ? o->stored : NULL;
	rd->stored_opaque = o ? o->stored_opaque : NULL;
	/* a whole pack in one read (the last blob may overshoot the pack
	 * size): fewer round trips matter more than smaller buffers */
	size_t whole_pack = MIN(MAX((size_t)r->pack_size + r->pack_size / 8, READ_PLAN_MAX_RANGE / 2),
				(size_t)64 << 20);
	rd->lim.max_range = o && o->max_range ? o->max_range : whole_pack;
	rd->lim.merge_gap = o && o->merge_gap ? o->merge_gap : READ_PLAN_MERGE_GAP;
	/* a thread holds one range and one decoded chunk, and fetches, then
	 * decodes and delivers it: one thread per connection and one per core
	 * more, so that while some decode (or wait on the target's writes)
	 * the connections they released are already fetching the next
	 * ranges; no more than the budget holds */
	size_t per_thread = rd->lim.max_range + MAX(run_capacity(d, true), d->chunk_size);
	rd->threads = rd->connections + cpus;
	rd->threads = (unsigned)MAX(1, MIN((size_t)rd->threads, rd->budget / per_thread));
	pthread_mutex_init(&rd->lock, NULL);
	pthread_cond_init(&rd->cond, NULL);
	*out = rd;
	return 0;
}

void cairn_dreader_free(struct cairn_dreader *rd)
{
	if (!rd)
		return;
	pthread_mutex_destroy(&rd->lock);
	pthread_cond_destroy(&rd->cond);
	free(rd);
}

uint64_t cairn_dreader_fetched_bytes(const struct cairn_dreader *rd)
{
	return atomic_load(&((struct cairn_dreader *)rd)->fetched);
}

/* Waits for n bytes of the budget (one holder always proceeds). */
static void budget_take(struct cairn_dreader *rd, size_t n)
{
	pthread_mutex_lock(&rd->lock);
	while (rd->held && rd->held + n > rd->budget)
		pthread_cond_wait(&rd->cond, &rd->lock);
	rd->held += n;
	pthread_mutex_unlock(&rd->lock);
}

static void budget_give(struct cairn_dreader *rd, size_t n)
{
	pthread_mutex_lock(&rd->lock);
	rd->held -= n;
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
}

static int ranged_read(struct cairn_dreader *rd, const char *pack, uint64_t off, size_t len,
		       void *buf)
{
	pthread_mutex_lock(&rd->lock);
	while (rd->in_flight >= rd->connections)
		pthread_cond_wait(&rd->cond, &rd->lock);
	rd->in_flight++;
	pthread_mutex_unlock(&rd->lock);
	struct cairn_backend *be = rd->r->be;
	int rc = be->ops->get_range(be, pack, off, len, buf);
	pthread_mutex_lock(&rd->lock);
	rd->in_flight--;
	pthread_cond_broadcast(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	if (rc == 0)
		atomic_fetch_add(&rd->fetched, len);
	return rc;
}

/* Records the fetch's first error; returns rc. */
static int fetch_fail(struct fetch *f, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fetch_fail(struct fetch *f, int rc, const char *fmt, ...)
{
	pthread_mutex_lock(&f->lock);
	if (f->rc == 0) {
		f->rc = rc;
		if (fmt && f->err && f->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(f->err, f->errlen, fmt, ap);
			va_end(ap);
		}
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static bool fetch_stopped(struct fetch *f)
{
	pthread_mutex_lock(&f->lock);
	bool stop = f->rc != 0;
	pthread_mutex_unlock(&f->lock);
	if (!stop && f->cancel && *f->cancel)
		fetch_fail(f, -EINTR, "interrupted");
	return stop || (f->cancel && *f->cancel);
}

static int range_error(struct fetch *f, const struct plan_range *rg, const char *pack, int rc)
{
	const struct cairn_disk *d = f->rd->d;
	const struct plan_blob *b = &f->plan->blobs[rg->blob_first];
	uint64_t seq = f->plan->slots[b->slot_first];
	char hex[65];
	hex_encode(b->e.id.b, CAIRN_ID_LEN, hex);
	const char *why = rc == -ENOENT ? "is missing"
			  : rc == -EIO	 ? "is truncated"
					 : cairn_backend_error(f->rd->r->be, rc);
	if (!why)
		why = strerror(-rc);
	if (rc == -ENOENT || rc == -EIO)
		return fetch_fail(f, -EBADMSG,
				  "disk %s: pack %s %s (chunk %.16s of slot %llu at offset %llu)",
				  d->name, pack, why, hex, (unsigned long long)seq,
				  (unsigned long long)(seq * d->chunk_size));
	return fetch_fail(f, rc, "disk %s: cannot read pack %s (chunk %.16s of slot %llu at offset %llu): %s",
			  d->name, pack, hex, (unsigned long long)seq,
			  (unsigned long long)(seq * d->chunk_size), why);
}

/* A fetch thread's buffers, kept from one range to the next: the fetched
 * range, and the decoded chunks of a run of consecutive slots not yet
 * delivered (a callback that takes runs gets a pack's run of slots in
 * one call; otherwise the run is one chunk). */
struct worker {
	struct fetch *f;
	uint8_t *range;
	size_t range_cap;
	uint8_t *run; /* OUT_ALIGN aligned, run_cap bytes */
	size_t run_cap;
	uint64_t run_seq; /* first slot of the run */
	size_t run_slots, run_len;
};

static int flush_run(struct worker *w)
{
	struct fetch *f = w->f;
	int rc = w->run_slots ? f->cb->data(f->cb->opaque, w->run_seq, w->run, w->run_len) : 0;
	w->run_slots = w->run_len = 0;
	return rc ? fetch_fail(f, rc < 0 ? rc : -EIO, NULL) : 0;
}

/* Decodes one blob of a fetched range into the run and delivers it: a
 * blob of one slot that follows the run joins it; any other blob ends
 * the run and is delivered to each of its slots. */
static int deliver_blob(struct worker *w, const struct plan_blob *b, const uint8_t *stored,
			const char *pack)
{
	struct fetch *f = w->f;
	const struct cairn_disk *d = f->rd->d;
	uint64_t seq = f->plan->slots[b->slot_first];
	char hex[65];
	hex_encode(b->e.id.b, CAIRN_ID_LEN, hex);
	if (b->e.raw_len > d->chunk_size)
		return fetch_fail(f, -EBADMSG, "disk %s: chunk %.16s of slot %llu is %u bytes, larger than a chunk",
				  d->name, hex, (unsigned long long)seq, b->e.raw_len);
	bool joins = f->cb->runs && b->nslots == 1 && seq == w->run_seq + w->run_slots &&
		     w->run_len + d->chunk_size <= w->run_cap;
	int rc = joins || !w->run_slots ? 0 : flush_run(w);
	if (rc)
		return rc;
	uint8_t *out = w->run + w->run_len;
	rc = repo_decode_stored(f->rd->r, &b->e, stored, out, false);
	if (rc == -ENOMEM)
		return fetch_fail(f, rc, "out of memory");
	if (rc < 0)
		return fetch_fail(f, -EBADMSG,
				  "disk %s: chunk %.16s of slot %llu (offset %llu) in pack %s is damaged (authentication or hash mismatch)",
				  d->name, hex, (unsigned long long)seq,
				  (unsigned long long)(seq * d->chunk_size), pack);
	if (f->rd->stored) {
		struct cairn_stored_blob sb = { .bytes = stored, .len = b->e.stored_len,
						.raw_len = b->e.raw_len, .type = b->e.type,
						.flags = b->e.flags };
		rc = f->rd->stored(f->rd->stored_opaque, &b->e.id, &sb);
		if (rc)
			return fetch_fail(f, rc < 0 ? rc : -EIO, NULL);
	}
	for (size_t i = 0; i < b->nslots; i++) {
		seq = f->plan->slots[b->slot_first + i];
		size_t len = cairn_disk_chunk_len(d, seq);
		if (len != b->e.raw_len)
			return fetch_fail(f, -EBADMSG, "disk %s: chunk %.16s of slot %llu has %u bytes, expected %zu",
					  d->name, hex, (unsigned long long)seq, b->e.raw_len, len);
	}
	if (f->cb->runs && b->nslots == 1) {
		if (!w->run_slots)
			w->run_seq = seq;
		w->run_slots++;
		w->run_len += b->e.raw_len;
		return 0;
	}
	for (size_t i = 0; i < b->nslots; i++) {
		seq = f->plan->slots[b->slot_first + i];
		rc = f->cb->data(f->cb->opaque, seq, out, b->e.raw_len);
		if (rc)
			return fetch_fail(f, rc < 0 ? rc : -EIO, NULL);
	}
	return 0;
}

static int do_range(struct worker *w, const struct plan_range *rg)
{
	struct fetch *f = w->f;
	cairn_id pack_id;
	char pack[128];
	repo_pack_id(f->rd->r, rg->pack, &pack_id);
	pack_name(&pack_id, pack, sizeof(pack));
	if (rg->len + 1 > w->range_cap) {
		free(w->range);
		w->range_cap = rg->len + 1;
		if (!(w->range = malloc(w->range_cap))) {
			w->range_cap = 0;
			return fetch_fail(f, -ENOMEM, "out of memory");
		}
	}
	int rc = ranged_read(f->rd, pack, rg->off, rg->len, w->range);
	if (rc < 0)
		rc = range_error(f, rg, pack, rc);
	for (size_t i = 0; rc == 0 && i < rg->nblobs && !fetch_stopped(f); i++) {
		const struct plan_blob *b = &f->plan->blobs[rg->blob_first + i];
		rc = deliver_blob(w, b, w->range + (b->e.offset - rg->off), pack);
	}
	if (rc == 0)
		rc = flush_run(w);
	w->run_slots = w->run_len = 0;
	return rc;
}

static void *fetch_worker(void *arg)
{
	struct worker w = { .f = arg };
	struct fetch *f = w.f;
	struct cairn_dreader *rd = f->rd;
	w.run_cap = run_capacity(rd->d, f->cb->runs);
	if (!(w.run = aligned_alloc(OUT_ALIGN, w.run_cap))) {
		fetch_fail(f, -ENOMEM, "out of memory");
		return NULL;
	}
	while (!fetch_stopped(f)) {
		pthread_mutex_lock(&f->lock);
		size_t i = f->next++;
		pthread_mutex_unlock(&f->lock);
		if (i >= f->plan->nranges)
			break;
		const struct plan_range *rg = &f->plan->ranges[i];
		size_t hold = rg->len + w.run_cap;
		budget_take(rd, hold);
		do_range(&w, rg);
		budget_give(rd, hold);
	}
	free(w.run);
	free(w.range);
	return NULL;
}

/* Runs the plan's ranges on up to rd->threads threads, the caller's one
 * of them. */
static void run_ranges(struct fetch *f)
{
	size_t n = MIN((size_t)f->rd->threads, f->plan->nranges);
	pthread_t *tids = n > 1 ? calloc(n - 1, sizeof(*tids)) : NULL;
	size_t started = 0;
	for (; tids && started < n - 1; started++)
		if (pthread_create(&tids[started], NULL, fetch_worker, f))
			break;
	fetch_worker(f);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
}

/* The zero slots of [first, end), as runs, minus skipped ones. */
static int deliver_zeros(struct fetch *f, uint64_t first, uint64_t end, const uint64_t *skip)
{
	const struct cairn_disk *d = f->rd->d;
	for (uint64_t seq = first; seq < end;) {
		bool zero;
		uint64_t run = cairn_disk_run(d, seq, end - seq, &zero);
		for (uint64_t e = seq + run; zero && seq < e;) {
			uint64_t a = seq;
			while (a < e && read_plan_skipped(skip, a))
				a++;
			uint64_t b = a;
			while (b < e && !read_plan_skipped(skip, b))
				b++;
			int rc = a < b ? f->cb->zeros(f->cb->opaque, a, b - a) : 0;
			if (rc)
				return fetch_fail(f, rc < 0 ? rc : -EIO, NULL);
			seq = b;
		}
		seq += zero ? 0 : run;
	}
	return 0;
}

static bool lookup(void *opaque, const cairn_id *id, struct idx_entry *out)
{
	return repo_lookup_entry(opaque, id, out, NULL);
}

static int plan_error(struct fetch *f, const struct read_plan *p, int rc)
{
	const struct cairn_disk *d = f->rd->d;
	if (rc != -ENOENT)
		return fetch_fail(f, rc, "out of memory");
	char hex[65];
	hex_encode(d->map[p->missing_seq].b, CAIRN_ID_LEN, hex);
	return fetch_fail(f, -EBADMSG,
			  "disk %s: chunk %.16s of slot %llu (offset %llu) is missing from the index (repository damaged; try 'cairn repair index')",
			  d->name, hex, (unsigned long long)p->missing_seq,
			  (unsigned long long)(p->missing_seq * d->chunk_size));
}

int cairn_dreader_fetch(struct cairn_dreader *rd, uint64_t first, uint64_t count,
			const uint64_t *skip, const struct cairn_dreader_cb *cb,
			const volatile int *cancel, char *err, size_t errlen)
{
	struct fetch f = { .rd = rd, .cb = cb, .cancel = cancel, .err = err, .errlen = errlen };
	if (err && errlen)
		err[0] = '\0'; /* a callback that fails may leave its reason here */
	pthread_mutex_init(&f.lock, NULL);
	uint64_t end = first + MIN(count, rd->d->nchunks - MIN(first, rd->d->nchunks));
	while (first < end && !fetch_stopped(&f)) {
		struct read_plan p;
		int rc = read_plan_build(rd->d, first, end, skip, &rd->lim, lookup, rd->r, &p);
		if (rc < 0)
			plan_error(&f, &p, rc);
		else if (cb->zeros)
			rc = deliver_zeros(&f, first, p.next, skip);
		if (rc == 0) {
			f.plan = &p;
			f.next = 0;
			run_ranges(&f);
		}
		first = p.next;
		read_plan_free(&p);
	}
	pthread_mutex_destroy(&f.lock);
	if (f.rc && err && errlen && !err[0])
		snprintf(err, errlen, "disk %s: %s", rd->d->name, strerror(-f.rc));
	return f.rc;
}
