/* Verifying a transcoded copy: see copy_verify.h. The v1 digest needs the
 * disk's bytes in order while the reader delivers them out of order, so
 * the disk is read window by window into one buffer and hashed when the
 * window is complete: memory is one window whatever the disk's size. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "copy_verify.h"
#include "repo/disk.h"
#include "repo/disk_reader.h"

#define VERIFY_WINDOW (64u * 1024 * 1024)

struct verify_run {
	const struct cairn_disk *d;
	struct cairn_chunk_digest *cd; /* NULL: no digest2 recorded */
	uint8_t *buf; /* the window's bytes */
	uint64_t first; /* the window's first slot */
};

static int on_data(void *opaque, uint64_t seq, const void *data, size_t len)
{
	struct verify_run *v = opaque;
	memcpy(v->buf + (seq - v->first) * v->d->chunk_size, data, len);
	if (v->cd)
		cairn_chunk_digest_data(v->cd, seq, data, len);
	return 0;
}

static int on_zeros(void *opaque, uint64_t seq, uint64_t count)
{
	struct verify_run *v = opaque;
	uint64_t end = MIN(v->d->size, (seq + count) * v->d->chunk_size);
	memset(v->buf + (seq - v->first) * v->d->chunk_size, 0, end - seq * v->d->chunk_size);
	if (v->cd)
		cairn_chunk_digest_zeros(v->cd, seq, count);
	return 0;
}

static bool digests_match(const struct cairn_disk *d, struct cairn_chunk_digest *cd,
			  XXH3_state_t *h)
{
	if (d->has_digest) {
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
		if (memcmp(c.digest, d->digest, sizeof(d->digest)))
			return false;
	}
	if (cd) {
		uint8_t got[CAIRN_DIGEST_LEN];
		cairn_chunk_digest_final(cd, got);
		if (memcmp(got, d->digest2, sizeof(got)))
			return false;
	}
	return true;
}

static int verify_windows(struct cairn_dreader *rd, struct verify_run *v, XXH3_state_t *h,
			  const volatile int *cancel, char *err, size_t errlen)
{
	const struct cairn_disk *d = v->d;
	uint64_t per_window = MAX(1, VERIFY_WINDOW / d->chunk_size);
	static const struct cairn_dreader_cb cb0 = { .data = on_data, .zeros = on_zeros };
	struct cairn_dreader_cb cb = cb0;
	cb.opaque = v;
	for (v->first = 0; v->first < d->nchunks; v->first += per_window) {
		uint64_t count = MIN(per_window, d->nchunks - v->first);
		int rc = cairn_dreader_fetch(rd, v->first, count, NULL, &cb, cancel, err, errlen);
		if (rc < 0)
			return rc;
		uint64_t end = MIN(d->size, (v->first + count) * d->chunk_size);
		if (d->has_digest)
			XXH3_128bits_update(h, v->buf, end - v->first * d->chunk_size);
	}
	return 0;
}

int copy_verify_disk(struct cairn_repo *dst, const struct cairn_disk *d,
		     const volatile int *cancel, char *err, size_t errlen)
{
	_cleanup_(cairn_chunk_digest_freep) struct cairn_chunk_digest *cd = NULL;
	_cleanup_(cairn_dreader_freep) struct cairn_dreader *rd = NULL;
	struct verify_run v = { .d = d };
	uint64_t per_window = MAX(1, VERIFY_WINDOW / d->chunk_size);
	_cleanup_free_ uint8_t *buf = malloc(MIN(per_window, MAX(d->nchunks, 1)) * d->chunk_size);
	XXH3_state_t *h = XXH3_createState();
	int rc = buf && h ? 0 : set_err(err, errlen, -ENOMEM, "out of memory");
	if (rc == 0 && d->has_digest2 && (rc = cairn_chunk_digest_new(d->size, d->chunk_size, &cd)) < 0)
		set_err(err, errlen, rc, "out of memory");
	if (rc == 0)
		rc = cairn_dreader_new(dst, d, NULL, &rd, err, errlen);
	v.cd = cd;
	v.buf = buf;
	if (rc == 0) {
		XXH3_128bits_reset(h);
		rc = verify_windows(rd, &v, h, cancel, err, errlen);
	}
	if (rc == 0 && !digests_match(d, cd, h))
		rc = set_err(err, errlen, -EBADMSG, "disk %s: the copy's digest does not match the source's",
			     d->name);
	XXH3_freeState(h);
	return rc;
}
