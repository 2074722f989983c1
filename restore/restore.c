/* Restoring a disk through the disk reader (repo/disk_reader.h): chunks
 * arrive out of order and are written at their offsets, zero runs stay
 * holes (or become zeros on a block device), and the whole-disk digest is
 * checked: digest2 fed as chunks arrive, or, for a snapshot that has only
 * the v1 digest, in disk order through a window (restore/v1digest.h). A raw
 * file restore keeps a journal (restore/journal.h) so that a killed or
 * failed restore can be resumed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "journal.h"
#include "repo/disk.h"
#include "repo/disk_reader.h"
#include "restore.h"
#include "sink.h"
#include "v1digest.h"

/* How often the journal is brought up to date: a resumed restore fetches
 * again at most what was written in this time (plus the ranges in
 * flight). */
#define JOURNAL_EVERY_S 2

struct restore_run {
	struct cairn_repo *r;
	struct cairn_disk *d;
	struct sink *sink;
	const struct cairn_restore_opts *o;
	struct cairn_chunk_digest *cd; /* NULL: digest2 not checked */
	struct v1digest *v1; /* the v1 digest when there is no digest2, or NULL */
	uint8_t *zeros; /* one chunk, for block devices */
	_Atomic uint64_t *written; /* data slots written (or resumed) */
	struct restore_journal *j; /* NULL: not resumable */
	const uint64_t *resumed; /* slots a resumed restore skips, or NULL */
	_Atomic uint64_t done_bytes, bytes_written, chunks, zero_chunks;
	pthread_mutex_t progress_lock;
	pthread_mutex_t lock; /* journal stores, stop */
	pthread_cond_t wake; /* the journal thread: stop */
	bool stop;
	char *err;
	size_t errlen;
};

static void report(struct restore_run *x, uint64_t bytes)
{
	uint64_t done = atomic_fetch_add(&x->done_bytes, bytes) + bytes;
	if (!x->o->progress)
		return;
	pthread_mutex_lock(&x->progress_lock);
	x->o->progress(x->o->progress_opaque, MIN(done, x->d->size), x->d->size);
	pthread_mutex_unlock(&x->progress_lock);
}

/* Syncs the target, then records every slot written before the sync.
 * Called with x->lock held. */
static int store_journal(struct restore_run *x, char *err, size_t errlen)
{
	for (size_t i = 0; i < x->j->nwords; i++)
		x->j->done[i] = atomic_load(&x->written[i]);
	int rc = x->sink->sync(x->sink);
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot sync %s: %s", x->sink->tmp, strerror(-rc));
	return journal_store(x->j, err, errlen);
}

/* The journal thread: stores the journal every few seconds while the
 * fetch runs (its errors are the final store's to report). */
static void *journal_thread(void *opaque)
{
	struct restore_run *x = opaque;
	pthread_mutex_lock(&x->lock);
	while (!x->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += JOURNAL_EVERY_S;
		char ignored[256]; /* the final store reports */
		if (pthread_cond_timedwait(&x->wake, &x->lock, &until) == ETIMEDOUT && !x->stop)
			store_journal(x, ignored, sizeof(ignored));
	}
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

/* data holds the consecutive slots from seq (the reader delivers runs):
 * one write for all of them. */
static int on_data(void *opaque, uint64_t seq, const void *data, size_t len)
{
	struct restore_run *x = opaque;
	const struct cairn_disk *d = x->d;
	int rc = x->sink->write(x->sink, data, len, seq * d->chunk_size);
	if (rc < 0)
		return rc;
	const uint8_t *p = data;
	for (size_t done = 0; done < len; seq++) {
		size_t n = cairn_disk_chunk_len(d, seq);
		if (x->cd)
			cairn_chunk_digest_data(x->cd, seq, p + done, n);
		/* before the slot counts as written: held, not read back */
		if (x->v1 && (rc = v1digest_data(x->v1, seq, p + done, n)) < 0)
			return set_err(x->err, x->errlen, rc, "cannot read back %s: %s",
				       x->sink->tmp, strerror(-rc));
		atomic_fetch_or(&x->written[seq / 64], 1ull << (seq % 64));
		atomic_fetch_add(&x->chunks, 1);
		done += n;
	}
	atomic_fetch_add(&x->bytes_written, len);
	report(x, len);
	return 0;
}

static int on_zeros(void *opaque, uint64_t seq, uint64_t count)
{
	struct restore_run *x = opaque;
	const struct cairn_disk *d = x->d;
	for (uint64_t s = seq; x->sink->needs_zeros && s < seq + count; s++) {
		int rc = x->sink->write(x->sink, x->zeros, cairn_disk_chunk_len(d, s),
					s * d->chunk_size);
		if (rc < 0)
			return rc;
	}
	if (x->cd)
		cairn_chunk_digest_zeros(x->cd, seq, count);
	atomic_fetch_add(&x->chunks, count);
	atomic_fetch_add(&x->zero_chunks, count);
	uint64_t end = MIN(d->size, (seq + count) * d->chunk_size);
	report(x, end - seq * d->chunk_size);
	return 0;
}

/* Slots a resumed restore does not fetch still count in the digest: read
 * them back from the partial target. */
static int feed_resumed(struct restore_run *x)
{
	const struct cairn_disk *d = x->d;
	_cleanup_free_ uint8_t *buf = malloc(d->chunk_size);
	if (!buf)
		return set_err(x->err, x->errlen, -ENOMEM, "out of memory");
	for (uint64_t seq = 0; seq < d->nchunks; seq++) {
		if (!(x->resumed[seq / 64] >> (seq % 64) & 1))
			continue;
		size_t len = cairn_disk_chunk_len(d, seq);
		/* without digest2 the v1 read-back covers these slots */
		int rc = x->cd ? x->sink->read(x->sink, buf, len, seq * d->chunk_size) : 0;
		if (rc < 0)
			return rc;
		if (x->cd)
			cairn_chunk_digest_data(x->cd, seq, buf, len);
		atomic_fetch_add(&x->bytes_written, len);
		atomic_fetch_add(&x->chunks, 1);
		report(x, len);
	}
	return 0;
}

static int check_digest(struct restore_run *x)
{
	const struct cairn_disk *d = x->d;
	uint8_t got[16];
	const uint8_t *want = NULL;
	if (x->cd) {
		cairn_chunk_digest_final(x->cd, got);
		want = d->digest2;
	} else if (x->v1) {
		int rc = v1digest_final(x->v1, got);
		if (rc < 0)
			return set_err(x->err, x->errlen, rc, "cannot read back %s: %s",
				       x->sink->tmp ? x->sink->tmp : x->sink->target, strerror(-rc));
		want = d->digest;
	}
	if (want && memcmp(got, want, 16))
		return set_err(x->err, x->errlen, -EBADMSG,
			       "disk %s: restored data does not match the digest recorded at backup",
			       d->name);
	return 0;
}

static int fetch_all(struct restore_run *x)
{
	struct cairn_dreader_opts ro = { .connections = x->o->workers };
	_cleanup_(cairn_dreader_freep) struct cairn_dreader *rd = NULL;
	int rc = cairn_dreader_new(x->r, x->d, &ro, &rd, x->err, x->errlen);
	if (rc < 0)
		return rc;
	const struct cairn_dreader_cb cb = { .data = on_data, .runs = true, .zeros = on_zeros,
					     .opaque = x };
	x->err[0] = '\0';
	rc = cairn_dreader_fetch(rd, 0, x->d->nchunks, x->resumed, &cb, x->o->cancel, x->err,
				 x->errlen);
	if (rc == -EINTR)
		set_err(x->err, x->errlen, rc, "interrupted; %s not written", x->o->target);
	return rc;
}

/* The fetch, with the journal kept up to date beside it. */
static int fetch_journaled(struct restore_run *x)
{
	pthread_t tid;
	bool journaling = x->j && !pthread_create(&tid, NULL, journal_thread, x);
	int rc = fetch_all(x);
	if (journaling) {
		pthread_mutex_lock(&x->lock);
		x->stop = true;
		pthread_cond_signal(&x->wake);
		pthread_mutex_unlock(&x->lock);
		pthread_join(tid, NULL);
	}
	return rc;
}

static int open_sink(struct restore_run *x)
{
	const struct cairn_restore_opts *o = x->o;
	if (o->format == CAIRN_FMT_QCOW2)
		return sink_qcow2_open(o->target, x->d->size, o->force, &x->sink, x->err,
				       x->errlen);
	return sink_raw_open(o->target, x->d->size, o->force, o->resume, &x->sink, x->err,
			     x->errlen);
}

static bool is_block_device(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* A raw file restore is resumable: its journal, checked before anything
 * is opened when resuming (a journal of another disk leaves its partial
 * file as it is). */
static int load_journal(struct restore_run *x, struct restore_journal *j)
{
	const struct cairn_restore_opts *o = x->o;
	if (o->format != CAIRN_FMT_RAW || is_block_device(o->target)) {
		if (o->resume)
			return set_err(x->err, x->errlen, -EINVAL,
				       "--resume needs a raw file target (not a qcow2 image or a device)");
		return 0;
	}
	int rc = journal_init(j, o->target, x->d, x->err, x->errlen);
	if (rc == 0 && o->resume)
		rc = journal_load(j, x->err, x->errlen);
	if (rc == 0)
		x->j = j;
	return rc;
}

/* Once the partial file is open: a new restore stores its journal at
 * once, so one killed at any moment can be resumed; a resumed one skips
 * what its journal lists. */
static int start_journal(struct restore_run *x)
{
	struct restore_journal *j = x->j;
	if (!j)
		return 0;
	if (!x->o->resume)
		return journal_store(j, x->err, x->errlen);
	/* the journal's bits change as the fetch goes on: skip a copy */
	uint64_t *resumed = malloc(MAX(j->nwords, 1) * sizeof(*resumed));
	if (!resumed)
		return set_err(x->err, x->errlen, -ENOMEM, "out of memory");
	memcpy(resumed, j->done, j->nwords * sizeof(*resumed));
	for (size_t i = 0; i < j->nwords; i++)
		atomic_store(&x->written[i], resumed[i]);
	x->resumed = resumed;
	return 0;
}

/* After a failure the transport may recover from (a store that went
 * away, a full filesystem), a raw file keeps what it holds, with its
 * journal, for --resume. Damaged data, an interruption the user asked
 * for and a digest mismatch leave nothing behind. */
static void keep_partial(struct restore_run *x, int rc)
{
	if (!x->j || rc == -EBADMSG || rc == -EINTR || rc == -ENOMEM)
		return;
	if (rc == -ENOSPC && !x->resumed && !atomic_load(&x->bytes_written))
		return; /* the space could not be claimed: nothing to carry on from */
	char ignored[256], why[512];
	pthread_mutex_lock(&x->lock);
	int src = store_journal(x, ignored, sizeof(ignored));
	pthread_mutex_unlock(&x->lock);
	if (src < 0)
		return;
	x->sink->keep = true;
	snprintf(why, sizeof(why), "%s", x->err);
	snprintf(x->err, x->errlen, "%s; partial restore kept in %s: run again with --resume",
		 why, x->sink->tmp);
}

/* Claims the space of the disk's data runs in the target, before
 * anything is fetched; zero runs stay holes. */
static int reserve_data(struct restore_run *x)
{
	const struct cairn_disk *d = x->d;
	for (uint64_t seq = 0; x->sink->reserve && seq < d->nchunks;) {
		bool zero;
		uint64_t run = cairn_disk_run(d, seq, d->nchunks - seq, &zero);
		uint64_t off = seq * d->chunk_size;
		uint64_t end = MIN(d->size, (seq + run) * d->chunk_size);
		int rc = zero ? 0 : x->sink->reserve(x->sink, off, end - off);
		if (rc < 0)
			return rc;
		seq += run;
	}
	return 0;
}

static int restore_run(struct restore_run *x)
{
	struct restore_journal j = { 0 };
	int rc = load_journal(x, &j);
	if (rc == 0)
		rc = open_sink(x);
	if (rc == 0)
		rc = start_journal(x);
	if (rc == 0)
		rc = reserve_data(x);
	const struct cairn_disk *d = x->d;
	if (rc == 0 && d->has_digest2)
		rc = cairn_chunk_digest_new(d->size, d->chunk_size, &x->cd);
	else if (rc == 0 && d->has_digest)
		rc = v1digest_new(d, x->sink, x->written, &x->v1);
	if (rc == -ENOMEM)
		set_err(x->err, x->errlen, rc, "out of memory");
	if (rc == 0 && x->resumed)
		rc = feed_resumed(x);
	if (rc == 0)
		rc = fetch_journaled(x);
	if (rc == 0)
		rc = check_digest(x);
	if (rc == 0)
		rc = x->sink->commit(x->sink);
	if (rc == 0 && x->j)
		journal_remove(x->j);
	if (rc < 0 && x->sink && x->sink->tmp)
		keep_partial(x, rc);
	if (rc < 0 && x->j && x->sink && !x->sink->keep)
		journal_remove(x->j);
	if (x->sink)
		x->sink->free(x->sink);
	journal_release(&j);
	free((void *)x->resumed);
	cairn_chunk_digest_free(x->cd);
	v1digest_free(x->v1);
	return rc;
}

int cairn_restore_disk(struct cairn_repo *r, struct cairn_disk *d,
		       const struct cairn_restore_opts *o,
		       struct cairn_restore_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	res->bytes = d->size;
	int rc = cairn_snapshot_load_map(r, d);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	struct restore_run x = { .r = r, .d = d, .o = o, .err = err, .errlen = errlen };
	pthread_mutex_init(&x.lock, NULL);
	pthread_mutex_init(&x.progress_lock, NULL);
	pthread_cond_init(&x.wake, NULL);
	/* page-aligned: the sink writes it with O_DIRECT */
	x.zeros = aligned_alloc(4096, (d->chunk_size + 4095) / 4096 * 4096);
	x.written = calloc(MAX((d->nchunks + 63) / 64, 1), sizeof(*x.written));
	if (x.zeros && x.written) {
		memset(x.zeros, 0, d->chunk_size);
		rc = restore_run(&x);
	} else {
		rc = set_err(err, errlen, -ENOMEM, "out of memory");
	}
	res->bytes_written = x.bytes_written;
	res->chunks = x.chunks;
	res->zero_chunks = x.zero_chunks;
	free(x.zeros);
	free((void *)x.written);
	pthread_mutex_destroy(&x.lock);
	pthread_mutex_destroy(&x.progress_lock);
	pthread_cond_destroy(&x.wake);
	return rc;
}
