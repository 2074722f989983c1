/* The writer: thread-safe deduplicating storage of blobs into packs.
 *
 * Callers encode blobs on their own threads and append them to the current
 * pack; full packs go to IO_THREADS I/O threads, which write them and then
 * the index files that describe them (docs/design.md section 1, write
 * order: an index file names only packs already written), so compression
 * never waits for storage. Several threads because a remote backend takes
 * a round trip or more per pack: one PUT at a time would leave the
 * connections of an S3 bucket idle while compression waits; a local disk
 * keeps up with one thread, and the others then stay idle. */
#include <errno.h>

#include "internal.h"

#define INDEX_FLUSH_PACKS 64
#define INDEX_FLUSH_NS (10ll * 1000000000)
#define QUEUED_PACKS 2 /* full packs waiting for an I/O thread */
#define IO_THREADS 4 /* packs written at once: the default --connections */
#define SPARE_PACKS 4 /* buffers of written packs kept for the next ones */

struct written_pack {
	cairn_id id;
	struct idx_entry *entries;
	size_t n;
};

struct cairn_writer {
	struct cairn_repo *r;
	pthread_mutex_t lock; /* everything below; r->idx changes also take r->idx_lock */
	pthread_cond_t changed;
	struct pack_builder cur;
	struct pack_builder queue[QUEUED_PACKS];
	size_t queued;
	unsigned writing; /* I/O threads busy with a pack (and its index) */
	bool stop;
	/* blobs in r->idx as pending but not yet in cur: a flush waits for
	 * them, since another thread's snapshot may already reference them */
	size_t encoding;
	bool clean; /* every entry this writer put in r->idx is in a written pack */
	int io_err;
	pthread_t io[IO_THREADS];
	unsigned nio;
	/* packs written but not yet in an index file */
	struct written_pack *pending;
	size_t npending, pending_cap;
	int64_t last_index_ns;
	struct buf spare[SPARE_PACKS];
	size_t nspare;
	/* host-keys repositories: the ephemeral key disk data is sealed with,
	 * a new one for each pack (a blob encoded just before a pack was
	 * queued may land in the next: each sealed blob names its key) */
	struct seal_key seal;
};

/* Keeps a written pack's buffer for a next pack: a new buffer of pack size
 * comes fresh from mmap, and the kernel zeroes every page of it on first
 * touch (about a CPU-second per 2 GiB stored). Called with w->lock held. */
static void recycle_locked(struct cairn_writer *w, struct pack_builder *pb)
{
	if (pb->data.p && w->nspare < SPARE_PACKS) {
		w->spare[w->nspare] = pb->data;
		w->spare[w->nspare++].len = 0;
		pb->data = (struct buf){ 0 };
	}
	pack_builder_free(pb);
}

/* Writes one index file for every pending pack. Called on an I/O thread
 * with w->lock held; drops it while writing (another thread may then write
 * another index file for packs registered meanwhile). */
static int flush_index_locked(struct cairn_writer *w)
{
	if (!w->npending)
		return 0;
	struct written_pack *packs = TAKE_PTR(w->pending);
	size_t n = w->npending;
	w->npending = w->pending_cap = 0;
	w->last_index_ns = mono_ns();
	pthread_mutex_unlock(&w->lock);

	cairn_id *ids = calloc(n, sizeof(*ids));
	struct idx_entry **ents = calloc(n, sizeof(*ents));
	size_t *counts = calloc(n, sizeof(*counts));
	struct buf plain = { 0 };
	int rc = ids && ents && counts ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		ids[i] = packs[i].id;
		ents[i] = packs[i].entries;
		counts[i] = packs[i].n;
	}
	if (rc == 0)
		rc = index_encode(w->r, ids, ents, counts, n, &plain);
	cairn_id id;
	if (rc == 0)
		rc = index_write(w->r, &plain, &id);
	for (size_t i = 0; i < n; i++)
		free(packs[i].entries);
	free(packs);
	free(ids);
	free(ents);
	free(counts);
	buf_free(&plain);
	pthread_mutex_lock(&w->lock);
	return rc;
}

/* Records a written pack in the index table and the pending list. Called
 * with w->lock held. */
static int register_pack(struct cairn_writer *w, const cairn_id *id,
			 struct pack_builder *pb)
{
	uint32_t num;
	pthread_rwlock_wrlock(&w->r->idx_lock);
	int rc = idx_add_pack(&w->r->idx, id, &num);
	for (size_t i = 0; rc == 0 && i < pb->n; i++) {
		struct idx_entry *e = idx_lookup(&w->r->idx, &pb->entries[i].id);
		if (e && e->pack == PACK_PENDING) {
			*e = pb->entries[i];
			e->pack = num;
		}
	}
	pthread_rwlock_unlock(&w->r->idx_lock);
	if (rc < 0)
		return rc;
	if (array_grow(&w->pending, &w->pending_cap, w->npending, sizeof(*w->pending)) < 0)
		return -ENOMEM;
	w->pending[w->npending++] = (struct written_pack){
		.id = *id, .entries = TAKE_PTR(pb->entries), .n = pb->n };
	pb->n = pb->cap = 0;
	return 0;
}

static void *io_main(void *arg)
{
	struct cairn_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queued && !w->stop)
			pthread_cond_wait(&w->changed, &w->lock);
		if (!w->queued)
			break;
		struct pack_builder pb = w->queue[0];
		memmove(&w->queue[0], &w->queue[1], (w->queued - 1) * sizeof(pb));
		w->queued--;
		w->writing++;
		/* a thread waiting for room in the queue may go on */
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);

		cairn_id id;
		int rc = w->io_err ? w->io_err : pack_builder_write(w->r, &pb, &id);
		pthread_mutex_lock(&w->lock);
		if (rc == 0)
			rc = register_pack(w, &id, &pb);
		if (rc == 0 && (w->npending >= INDEX_FLUSH_PACKS ||
				mono_ns() - w->last_index_ns >= INDEX_FLUSH_NS))
			rc = flush_index_locked(w);
		if (rc < 0 && !w->io_err)
			w->io_err = rc;
		recycle_locked(w, &pb);
		w->writing--;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int cairn_writer_new(struct cairn_repo *r, struct cairn_writer **out)
{
	if (!r->index_loaded) {
		int rc = cairn_repo_load_index(r);
		if (rc < 0)
			return rc;
	}
	struct cairn_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->r = r;
	w->clean = true;
	int src = r->host_keys ? seal_key_new(r->data_pub, &w->seal) : 0;
	if (src < 0) {
		free(w);
		return repo_err(r, src, "cannot make a sealing key: %s", strerror(-src));
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	w->last_index_ns = mono_ns();
	for (; w->nio < IO_THREADS; w->nio++)
		if (pthread_create(&w->io[w->nio], NULL, io_main, w))
			break;
	if (!w->nio) {
		pthread_cond_destroy(&w->changed);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return repo_err(r, -EAGAIN, "cannot start the writer thread");
	}
	*out = w;
	return 0;
}

/* Hands the current pack to the I/O threads, waiting for room; only_full:
 * unless it is under the pack size. Called with w->lock held. */
static int queue_current_locked(struct cairn_writer *w, bool only_full)
{
	while (w->queued == QUEUED_PACKS && !w->io_err)
		pthread_cond_wait(&w->changed, &w->lock);
	if (w->io_err)
		return w->io_err;
	/* another thread may have queued it while this one waited, and others
	 * begun a new one: that one is not full yet, and queueing it would
	 * make a small pack (one more PUT on S3 for little data) */
	if (w->cur.n == 0 || (only_full && w->cur.data.len < w->r->pack_size))
		return 0;
	w->queue[w->queued++] = w->cur;
	memset(&w->cur, 0, sizeof(w->cur));
	pthread_cond_broadcast(&w->changed);
	int rc = w->r->host_keys ? seal_key_new(w->r->data_pub, &w->seal) : 0;
	return rc < 0 ? repo_err(w->r, rc, "cannot make a sealing key: %s", strerror(-rc)) : 0;
}

int cairn_writer_put(struct cairn_writer *w, enum cairn_blob_type type,
		     const cairn_id *id, const void *data, size_t len,
		     bool *added, size_t *stored_bytes)
{
	struct cairn_repo *r = w->r;
	struct idx_entry e = { .id = *id, .pack = PACK_PENDING,
			       .raw_len = (uint32_t)len, .type = (uint8_t)type };
	if (added)
		*added = false;
	if (stored_bytes)
		*stored_bytes = 0;

	struct seal_key seal = { 0 };
	pthread_mutex_lock(&w->lock);
	int rc = w->io_err;
	if (blob_sealed(r, type))
		seal = w->seal;
	if (rc == 0) {
		pthread_rwlock_wrlock(&r->idx_lock);
		rc = idx_insert(&r->idx, &e, NULL);
		pthread_rwlock_unlock(&r->idx_lock);
	}
	if (rc > 0) {
		w->clean = false;
		w->encoding++;
	}
	pthread_mutex_unlock(&w->lock);
	if (rc == 0)
		return 0; /* already stored */
	if (rc < 0) /* an I/O error was recorded in r->err by whoever hit it */
		return rc == w->io_err ? rc : repo_err(r, rc, "index: %s", strerror(-rc));

	struct scratch *sc = scratch_get(r);
	if (!sc)
		return repo_err(r, -ENOMEM, "out of memory");
	uint8_t flags = 0;
	rc = blob_encode(r, sc, type, id, data, len, blob_sealed(r, type) ? &seal : NULL, &flags);
	explicit_bzero(&seal, sizeof(seal));
	e.flags = flags & 7u;
	size_t outlen = sc->a.len;
	e.stored_len = (uint32_t)outlen;
	if (rc < 0) {
		scratch_put(r, sc);
		pthread_mutex_lock(&w->lock);
		if (!w->io_err)
			w->io_err = rc; /* the table now holds an entry never stored */
		w->encoding--;
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		return repo_err(r, rc, "cannot encode blob: %s", strerror(-rc));
	}

	pthread_mutex_lock(&w->lock);
	w->cur.size_hint = r->pack_size;
	if (!w->cur.data.p && w->nspare)
		w->cur.data = w->spare[--w->nspare];
	rc = pack_builder_add(&w->cur, &e, sc->a.p);
	scratch_put(r, sc);
	if (--w->encoding == 0)
		pthread_cond_broadcast(&w->changed);
	if (rc == 0 && w->cur.data.len >= r->pack_size)
		rc = queue_current_locked(w, true);
	pthread_mutex_unlock(&w->lock);
	if (rc < 0)
		return rc;
	if (added)
		*added = true;
	if (stored_bytes)
		*stored_bytes = outlen;
	return 0;
}

int cairn_writer_flush(struct cairn_writer *w)
{
	int rc = 0;
	pthread_mutex_lock(&w->lock);
	while (w->encoding && !w->io_err)
		pthread_cond_wait(&w->changed, &w->lock);
	if (w->cur.n)
		rc = queue_current_locked(w, false);
	while (rc == 0 && (w->queued || w->writing) && !w->io_err)
		pthread_cond_wait(&w->changed, &w->lock);
	if (rc == 0)
		rc = w->io_err;
	if (rc == 0)
		rc = flush_index_locked(w);
	if (rc == 0)
		w->clean = true;
	else if (!w->io_err)
		w->io_err = rc;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void cairn_writer_free(struct cairn_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	/* an unflushed writer is being abandoned: do not write its packs */
	if (!w->io_err)
		w->io_err = -ECANCELED;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nio; i++)
		pthread_join(w->io[i], NULL);
	if (!w->clean) {
		/* the table holds ids of blobs that were never written: drop
		 * it so the next reader loads the truth from disk */
		pthread_rwlock_wrlock(&w->r->idx_lock);
		idx_table_free(&w->r->idx);
		w->r->index_loaded = false;
		pthread_rwlock_unlock(&w->r->idx_lock);
	}
	pack_builder_free(&w->cur);
	for (size_t i = 0; i < w->queued; i++)
		pack_builder_free(&w->queue[i]);
	for (size_t i = 0; i < w->npending; i++)
		free(w->pending[i].entries);
	free(w->pending);
	for (size_t i = 0; i < w->nspare; i++)
		buf_free(&w->spare[i]);
	explicit_bzero(&w->seal, sizeof(w->seal));
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
