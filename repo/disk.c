/* Chunk slots and whole-disk digests (repo/disk.h). */
#include <errno.h>
#include <xxhash.h>

#include "disk.h"

uint64_t cairn_disk_run(const struct cairn_disk *d, uint64_t seq, uint64_t max, bool *zero)
{
	uint64_t end = MIN(d->nchunks, seq + max);
	*zero = cairn_id_is_zero(&d->map[seq]);
	uint64_t i = seq + 1;
	while (i < end && cairn_id_is_zero(&d->map[i]) == *zero)
		i++;
	return i - seq;
}

void cairn_xxh128(const void *data, size_t len, uint8_t out[CAIRN_DIGEST_LEN])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	memcpy(out, c.digest, CAIRN_DIGEST_LEN);
}

struct cairn_chunk_digest {
	uint64_t size, nchunks;
	uint32_t chunk_size;
	uint8_t zero_full[CAIRN_DIGEST_LEN]; /* a whole slot of zeros */
	uint8_t zero_last[CAIRN_DIGEST_LEN]; /* the last slot, which may be shorter */
	uint8_t *slots; /* 16 bytes per slot */
};

static int zero_digest(size_t len, uint8_t out[CAIRN_DIGEST_LEN])
{
	void *z = calloc(1, len ? len : 1);
	if (!z)
		return -ENOMEM;
	cairn_xxh128(z, len, out);
	free(z);
	return 0;
}

int cairn_chunk_digest_new(uint64_t size, uint32_t chunk_size, struct cairn_chunk_digest **out)
{
	_cleanup_(cairn_chunk_digest_freep) struct cairn_chunk_digest *cd = calloc(1, sizeof(*cd));
	if (!cd || !chunk_size)
		return cd ? -EINVAL : -ENOMEM;
	cd->size = size;
	cd->chunk_size = chunk_size;
	cd->nchunks = cairn_disk_chunk_count(size, chunk_size);
	cd->slots = calloc(cd->nchunks ? cd->nchunks : 1, CAIRN_DIGEST_LEN);
	uint64_t last = cd->nchunks ? size - (cd->nchunks - 1) * chunk_size : 0;
	if (!cd->slots || zero_digest(chunk_size, cd->zero_full) < 0 ||
	    zero_digest(last, cd->zero_last) < 0)
		return -ENOMEM;
	*out = TAKE_PTR(cd);
	return 0;
}

void cairn_chunk_digest_free(struct cairn_chunk_digest *cd)
{
	if (!cd)
		return;
	free(cd->slots);
	free(cd);
}

void cairn_chunk_digest_data(struct cairn_chunk_digest *cd, uint64_t seq, const void *data,
			     size_t len)
{
	cairn_xxh128(data, len, cd->slots + seq * CAIRN_DIGEST_LEN);
}

void cairn_chunk_digest_zeros(struct cairn_chunk_digest *cd, uint64_t seq, uint64_t count)
{
	uint64_t end = MIN(seq + count, cd->nchunks);
	for (uint64_t i = seq; i < end; i++)
		memcpy(cd->slots + i * CAIRN_DIGEST_LEN,
		       i + 1 == cd->nchunks ? cd->zero_last : cd->zero_full, CAIRN_DIGEST_LEN);
}

void cairn_chunk_digest_set(struct cairn_chunk_digest *cd, uint64_t seq,
			    const uint8_t digest[CAIRN_DIGEST_LEN])
{
	memcpy(cd->slots + seq * CAIRN_DIGEST_LEN, digest, CAIRN_DIGEST_LEN);
}

void cairn_chunk_digest_get(const struct cairn_chunk_digest *cd, uint64_t seq,
			    uint8_t digest[CAIRN_DIGEST_LEN])
{
	memcpy(digest, cd->slots + seq * CAIRN_DIGEST_LEN, CAIRN_DIGEST_LEN);
}

void cairn_chunk_digest_final(const struct cairn_chunk_digest *cd, uint8_t out[CAIRN_DIGEST_LEN])
{
	cairn_xxh128(cd->slots, cd->nchunks * CAIRN_DIGEST_LEN, out);
}
