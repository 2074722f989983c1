/* The disk writer (repo/disk_writer.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "disk.h"
#include "disk_writer.h"

struct cairn_disk_writer {
	struct cairn_repo *r;
	struct cairn_writer *w;
	struct cairn_disk *d;
	const struct cairn_disk *prev;
	struct cairn_chunk_digest *cd;
	uint64_t given; /* slots put or zeroed */
	struct cairn_disk_writer_stats st; /* updated atomically */
	pthread_mutex_t lock; /* err */
	char err[400];
};

static void count(uint64_t *v, uint64_t n)
{
	__atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static int fail(struct cairn_disk_writer *dw, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct cairn_disk_writer *dw, int rc, const char *fmt, ...)
{
	pthread_mutex_lock(&dw->lock);
	if (!dw->err[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(dw->err, sizeof(dw->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&dw->lock);
	return rc;
}

static bool prev_matches(const struct cairn_disk *prev, const struct cairn_disk *d)
{
	return prev->map && prev->size == d->size && prev->chunk_size == d->chunk_size &&
	       prev->nchunks == d->nchunks;
}

int cairn_disk_writer_new(struct cairn_repo *r, struct cairn_writer *w, struct cairn_disk *d,
			  const struct cairn_disk *prev, struct cairn_disk_writer **out)
{
	if (!d->chunk_size || d->map)
		return -EINVAL;
	d->nchunks = cairn_disk_chunk_count(d->size, d->chunk_size);
	if (prev && !prev_matches(prev, d))
		return -EINVAL;
	_cleanup_(cairn_disk_writer_freep) struct cairn_disk_writer *dw = calloc(1, sizeof(*dw));
	if (!dw)
		return -ENOMEM;
	pthread_mutex_init(&dw->lock, NULL);
	dw->r = r;
	dw->w = w;
	dw->d = d;
	dw->prev = prev;
	dw->st.chunks = d->nchunks;
	/* zeroed: a slot's id is ZERO_ID until it is given otherwise */
	d->map = calloc(d->nchunks ? d->nchunks : 1, sizeof(cairn_id));
	if (!d->map)
		return -ENOMEM;
	int rc = cairn_chunk_digest_new(d->size, d->chunk_size, &dw->cd);
	if (rc < 0)
		return rc;
	*out = TAKE_PTR(dw);
	return 0;
}

void cairn_disk_writer_free(struct cairn_disk_writer *dw)
{
	if (!dw)
		return;
	cairn_chunk_digest_free(dw->cd);
	pthread_mutex_destroy(&dw->lock);
	free(dw);
}

static int check_slots(struct cairn_disk_writer *dw, uint64_t seq, uint64_t n)
{
	if (seq > dw->d->nchunks || n > dw->d->nchunks - seq)
		return fail(dw, -EINVAL, "disk %s: slots %llu+%llu beyond its %llu", dw->d->name,
			    (unsigned long long)seq, (unsigned long long)n,
			    (unsigned long long)dw->d->nchunks);
	return 0;
}

int cairn_disk_writer_put(struct cairn_disk_writer *dw, uint64_t seq, const void *data,
			  size_t len)
{
	int rc = check_slots(dw, seq, 1);
	if (rc < 0)
		return rc;
	if (len != cairn_disk_chunk_len(dw->d, seq))
		return fail(dw, -EINVAL, "disk %s: chunk %llu given %zu bytes", dw->d->name,
			    (unsigned long long)seq, len);
	count(&dw->st.bytes_put, len);
	if (all_zero(data, len))
		return cairn_disk_writer_zeros(dw, seq, 1);
	cairn_id id;
	cairn_repo_chunk_id(dw->r, data, len, &id);
	bool added = false;
	size_t stored = 0;
	rc = cairn_writer_put(dw->w, CAIRN_BLOB_DATA, &id, data, len, &added, &stored);
	if (rc < 0)
		return fail(dw, rc, "%s", cairn_repo_error(dw->r));
	cairn_chunk_digest_data(dw->cd, seq, data, len);
	dw->d->map[seq] = id;
	count(&dw->st.data_chunks, 1);
	if (added) {
		count(&dw->st.new_chunks, 1);
		count(&dw->st.new_bytes, stored);
		count(&dw->st.new_raw_bytes, len);
	}
	count(&dw->given, 1);
	return 0;
}

int cairn_disk_writer_zeros(struct cairn_disk_writer *dw, uint64_t seq, uint64_t n)
{
	int rc = check_slots(dw, seq, n);
	if (rc < 0)
		return rc;
	/* the map already holds ZERO_ID there (each slot is given once) */
	cairn_chunk_digest_zeros(dw->cd, seq, n);
	count(&dw->st.zero_chunks, n);
	count(&dw->given, n);
	return 0;
}

int64_t cairn_disk_writer_reuse(struct cairn_disk_writer *dw, uint64_t seq, uint64_t n)
{
	int rc = check_slots(dw, seq, n);
	if (rc < 0)
		return rc;
	if (!dw->prev)
		return fail(dw, -EINVAL, "disk %s: no previous map to reuse", dw->d->name);
	uint64_t i = 0;
	/* a damaged or condemned blob is read again: the source heals it */
	for (; i < n && cairn_repo_blob_reusable(dw->r, &dw->prev->map[seq + i]); i++)
		dw->d->map[seq + i] = dw->prev->map[seq + i];
	count(&dw->st.reused_chunks, i);
	return (int64_t)i;
}

int cairn_disk_writer_finish(struct cairn_disk_writer *dw)
{
	struct cairn_disk *d = dw->d;
	uint64_t given = __atomic_load_n(&dw->given, __ATOMIC_ACQUIRE);
	uint64_t reused = __atomic_load_n(&dw->st.reused_chunks, __ATOMIC_ACQUIRE);
	if (given + reused != d->nchunks)
		return fail(dw, -EINVAL, "disk %s: %llu of %llu chunks given", d->name,
			    (unsigned long long)(given + reused), (unsigned long long)d->nchunks);
	d->has_digest = false;
	d->has_digest2 = reused == 0;
	if (d->has_digest2)
		cairn_chunk_digest_final(dw->cd, d->digest2);
	return 0;
}

void cairn_disk_writer_stats(const struct cairn_disk_writer *dw,
			     struct cairn_disk_writer_stats *out)
{
	const struct cairn_disk_writer_stats *s = &dw->st;
	*out = (struct cairn_disk_writer_stats){
		.chunks = s->chunks,
		.zero_chunks = __atomic_load_n(&s->zero_chunks, __ATOMIC_RELAXED),
		.reused_chunks = __atomic_load_n(&s->reused_chunks, __ATOMIC_RELAXED),
		.data_chunks = __atomic_load_n(&s->data_chunks, __ATOMIC_RELAXED),
		.bytes_put = __atomic_load_n(&s->bytes_put, __ATOMIC_RELAXED),
		.new_chunks = __atomic_load_n(&s->new_chunks, __ATOMIC_RELAXED),
		.new_bytes = __atomic_load_n(&s->new_bytes, __ATOMIC_RELAXED),
		.new_raw_bytes = __atomic_load_n(&s->new_raw_bytes, __ATOMIC_RELAXED),
	};
}

/* Worker threads ask while others may be recording a failure: the text is
 * copied under the lock into the calling thread's buffer, as
 * cairn_repo_error does. */
const char *cairn_disk_writer_error(const struct cairn_disk_writer *dw)
{
	static _Thread_local char line[sizeof(dw->err)];
	struct cairn_disk_writer *m = (struct cairn_disk_writer *)dw; /* the lock only */
	pthread_mutex_lock(&m->lock);
	memcpy(line, dw->err, sizeof(line));
	pthread_mutex_unlock(&m->lock);
	return line;
}
