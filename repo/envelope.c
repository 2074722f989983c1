/* Envelopes for index files, pack directories and manifests
 * (docs/design.md section 8). */
#include <errno.h>

#include "internal.h"

#define ENV_HDR 4
#define ENV_LEVEL 3
#define ENV_MAX_RATIO (128 * 1024 / 4)

int envelope_seal(const struct cairn_repo *r, enum envelope_kind kind,
		  const void *in, size_t len, struct buf *out)
{
	size_t bound = ZSTD_compressBound(len);
	_cleanup_free_ uint8_t *z = malloc(bound);
	if (!z)
		return -ENOMEM;
	size_t zlen = ZSTD_compress(z, bound, in, len, ENV_LEVEL);
	if (ZSTD_isError(zlen))
		return -EIO;
	uint8_t hdr[ENV_HDR] = { 'C', 1, (uint8_t)kind,
				 BLOB_F_ZSTD | (r->encrypted ? BLOB_F_AES : 0) };
	out->len = 0;
	int rc = buf_reserve(out, ENV_HDR + zlen + NONCE_LEN + TAG_LEN);
	if (rc < 0)
		return rc;
	memcpy(out->p, hdr, ENV_HDR);
	if (!r->encrypted) {
		memcpy(out->p + ENV_HDR, z, zlen);
		out->len = ENV_HDR + zlen;
		return 0;
	}
	rc = aead_seal(r->k_enc, hdr, ENV_HDR, z, zlen, out->p + ENV_HDR);
	if (rc < 0)
		return rc;
	out->len = ENV_HDR + zlen + NONCE_LEN + TAG_LEN;
	return 0;
}

/* What an envelope may decode to, checked before the allocation, so that a
 * small hostile object cannot claim gigabytes (docs/design.md section 8,
 * "Limits"): index entries and pack directories are mostly random ids and
 * barely compress (a cap relative to the stored size, far above what zstd
 * gets from them); a manifest (a thin disk's repeated page ids compress
 * without bound) and a verification record have absolute caps. */
static unsigned long long envelope_max_plain(enum envelope_kind kind, size_t stored)
{
	switch (kind) {
	case ENV_SNAPSHOT:
		return ENVELOPE_MAX_MANIFEST;
	case ENV_VERIFY:
		return ENVELOPE_MAX_VERIFY;
	default:
		return 16ull * stored + (1u << 20);
	}
}

int envelope_open(const struct cairn_repo *r, enum envelope_kind kind,
		  const uint8_t *in, size_t len, struct buf *out)
{
	if (len < ENV_HDR || in[0] != 'C' || in[1] != 1 || in[2] != kind ||
	    (in[3] & ~(BLOB_F_ZSTD | BLOB_F_AES)))
		return -EBADMSG;
	if (!!(in[3] & BLOB_F_AES) != r->encrypted)
		return -EBADMSG;
	const uint8_t *p = in + ENV_HDR;
	size_t plen = len - ENV_HDR;
	_cleanup_free_ uint8_t *plain = NULL;
	if (r->encrypted) {
		if (plen < NONCE_LEN + TAG_LEN)
			return -EBADMSG;
		plain = malloc(plen);
		if (!plain)
			return -ENOMEM;
		int rc = aead_open(r->k_enc, in, ENV_HDR, p, plen, plain);
		if (rc < 0)
			return rc;
		p = plain;
		plen -= NONCE_LEN + TAG_LEN;
	}
	out->len = 0;
	if (!(in[3] & BLOB_F_ZSTD))
		return buf_append(out, p, plen);
	/* the frame's claimed size is allocated before a byte is checked:
	 * believe no more than its blocks can hold (each block takes at
	 * least 4 bytes and yields at most 128 KiB) */
	unsigned long long n = ZSTD_getFrameContentSize(p, plen);
	if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
	    n > (unsigned long long)plen * ENV_MAX_RATIO || n > envelope_max_plain(kind, plen))
		return -EBADMSG;
	int rc = buf_reserve(out, (size_t)n + 1);
	if (rc < 0)
		return rc;
	size_t got = ZSTD_decompress(out->p, (size_t)n, p, plen);
	if (ZSTD_isError(got) || got != n)
		return -EBADMSG;
	out->len = got;
	return 0;
}
