/* The v1 digest of an out-of-order restore (restore/v1digest.h). */
#include <errno.h>
#include <pthread.h>
#include <xxhash.h>

#include "repo/disk.h"
#include "v1digest.h"

struct v1digest {
	const struct cairn_disk *d;
	struct sink *sink;
	const _Atomic uint64_t *written;
	pthread_mutex_t lock; /* everything below */
	XXH3_state_t *st;
	uint64_t cursor; /* slots below are hashed */
	uint64_t window; /* slots held ahead of the cursor at most */
	uint8_t **held; /* ring by seq % window; NULL: not held */
	uint8_t *buf; /* one chunk: zeros, or a slot read back */
	uint64_t read_back;
};

int v1digest_new(const struct cairn_disk *d, struct sink *sink, const _Atomic uint64_t *written,
		 struct v1digest **out)
{
	struct v1digest *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->d = d;
	h->sink = sink;
	h->written = written;
	h->window = MAX(1, V1DIGEST_WINDOW_BYTES / d->chunk_size);
	h->held = calloc(h->window, sizeof(*h->held));
	h->buf = malloc(d->chunk_size);
	h->st = XXH3_createState();
	pthread_mutex_init(&h->lock, NULL);
	if (!h->held || !h->buf || !h->st) {
		v1digest_free(h);
		return -ENOMEM;
	}
	XXH3_128bits_reset(h->st);
	*out = h;
	return 0;
}

void v1digest_free(struct v1digest *h)
{
	if (!h)
		return;
	for (uint64_t i = 0; h->held && i < h->window; i++)
		free(h->held[i]);
	free(h->held);
	free(h->buf);
	XXH3_freeState(h->st);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

uint64_t v1digest_read_back(const struct v1digest *h)
{
	return h->read_back;
}

static bool is_written(const struct v1digest *h, uint64_t seq)
{
	return atomic_load(&h->written[seq / 64]) >> (seq % 64) & 1;
}

/* Hashes from the cursor on as far as slots are available. Lock held. */
static int advance(struct v1digest *h)
{
	const struct cairn_disk *d = h->d;
	while (h->cursor < d->nchunks) {
		uint64_t seq = h->cursor;
		size_t len = cairn_disk_chunk_len(d, seq);
		uint8_t **slot = &h->held[seq % h->window];
		if (cairn_id_is_zero(&d->map[seq])) {
			bool zero;
			uint64_t run = cairn_disk_run(d, seq, UINT64_MAX, &zero);
			memset(h->buf, 0, d->chunk_size);
			for (uint64_t s = seq; s < seq + run; s++)
				XXH3_128bits_update(h->st, h->buf, cairn_disk_chunk_len(d, s));
			h->cursor += run;
			continue;
		}
		if (*slot) {
			XXH3_128bits_update(h->st, *slot, len);
			free(*slot);
			*slot = NULL;
		} else if (is_written(h, seq)) {
			int rc = h->sink->read(h->sink, h->buf, len, seq * d->chunk_size);
			if (rc < 0)
				return rc;
			XXH3_128bits_update(h->st, h->buf, len);
			h->read_back++;
		} else {
			break;
		}
		h->cursor++;
	}
	return 0;
}

int v1digest_data(struct v1digest *h, uint64_t seq, const void *data, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&h->lock);
	if (seq == h->cursor) {
		XXH3_128bits_update(h->st, data, len);
		h->cursor++;
		rc = advance(h);
	} else if (seq > h->cursor && seq - h->cursor < h->window && !h->held[seq % h->window]) {
		/* a copy failing is no error: the slot is read back instead */
		uint8_t *copy = malloc(len);
		if (copy)
			memcpy(copy, data, len);
		h->held[seq % h->window] = copy;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int v1digest_final(struct v1digest *h, uint8_t out[16])
{
	pthread_mutex_lock(&h->lock);
	int rc = advance(h);
	if (rc == 0 && h->cursor < h->d->nchunks)
		rc = -EIO; /* a slot was never written: cannot happen after a fetch */
	if (rc == 0) {
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h->st));
		memcpy(out, c.digest, 16);
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}
