/* Blob encoding (docs/design.md section 5): zstd, then AES-256-GCM with the
 * blob's id, type and flags as associated data. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "internal.h"

const cairn_id cairn_zero_id;

void cairn_repo_chunk_id(const struct cairn_repo *r, const void *data,
			 size_t len, cairn_id *out)
{
	if (r->encrypted) {
		unsigned int n = CAIRN_ID_LEN;
		HMAC(EVP_sha256(), r->k_id, KEY_LEN, data, len, out->b, &n);
	} else {
		sha256(data, len, out->b);
	}
}

size_t blob_encode_bound(size_t len)
{
	return ZSTD_compressBound(len) + NONCE_LEN + TAG_LEN;
}

static void blob_aad(uint8_t aad[CAIRN_ID_LEN + 2], const cairn_id *id,
		     uint8_t type, uint8_t flags)
{
	memcpy(aad, id->b, CAIRN_ID_LEN);
	aad[CAIRN_ID_LEN] = type;
	aad[CAIRN_ID_LEN + 1] = flags;
}

int blob_encode(const struct cairn_repo *r, ZSTD_CCtx *zc,
		enum cairn_blob_type type, const cairn_id *id, const void *in,
		size_t len, uint8_t *out, size_t *outlen, uint8_t *flags)
{
	uint8_t f = 0;
	/* compress straight into place when there is no encryption */
	uint8_t *dst = r->encrypted ? out + NONCE_LEN : out;
	size_t plen = len;
	const void *plain = in;
	_cleanup_free_ uint8_t *tmp = NULL;

	if (r->level > 0) {
		size_t bound = ZSTD_compressBound(len);
		uint8_t *cbuf = dst;
		if (r->encrypted) {
			tmp = malloc(bound);
			if (!tmp)
				return -ENOMEM;
			cbuf = tmp;
		}
		size_t c = ZSTD_compressCCtx(zc, cbuf, bound, in, len, r->level);
		if (ZSTD_isError(c))
			return -EIO;
		if (c < len) {
			f |= BLOB_F_ZSTD;
			plain = cbuf;
			plen = c;
		}
	}
	if (!r->encrypted) {
		if (plain != dst)
			memcpy(dst, plain, plen);
		*outlen = plen;
		*flags = f;
		return 0;
	}
	f |= BLOB_F_AES;
	uint8_t aad[CAIRN_ID_LEN + 2];
	blob_aad(aad, id, type, f);
	int rc = aead_seal(r->k_enc, aad, sizeof(aad), plain, plen, out);
	if (rc < 0)
		return rc;
	*outlen = plen + NONCE_LEN + TAG_LEN;
	*flags = f;
	return 0;
}

int blob_decode(const struct cairn_repo *r, const struct idx_entry *e,
		const uint8_t *in, uint8_t *out)
{
	const uint8_t *p = in;
	size_t plen = e->stored_len;
	_cleanup_free_ uint8_t *tmp = NULL;

	if (e->flags & BLOB_F_AES) {
		if (!r->encrypted)
			return -EBADMSG;
		if (plen < NONCE_LEN + TAG_LEN)
			return -EBADMSG;
		plen -= NONCE_LEN + TAG_LEN;
		/* decrypt into out when the result needs no decompression */
		uint8_t *dst = out;
		if (e->flags & BLOB_F_ZSTD) {
			tmp = malloc(plen ? plen : 1);
			if (!tmp)
				return -ENOMEM;
			dst = tmp;
		} else if (plen != e->raw_len) {
			return -EBADMSG;
		}
		uint8_t aad[CAIRN_ID_LEN + 2];
		blob_aad(aad, &e->id, e->type, e->flags);
		int rc = aead_open(r->k_enc, aad, sizeof(aad), in, e->stored_len, dst);
		if (rc < 0)
			return rc;
		p = dst;
	} else if (r->encrypted) {
		/* an unencrypted blob in an encrypted repository is forged */
		return -EBADMSG;
	}
	if (e->flags & BLOB_F_ZSTD) {
		size_t n = ZSTD_decompress(out, e->raw_len, p, plen);
		if (ZSTD_isError(n) || n != e->raw_len)
			return -EBADMSG;
	} else if (p != out) {
		if (plen != e->raw_len)
			return -EBADMSG;
		memcpy(out, p, plen);
	}
	cairn_id got;
	cairn_repo_chunk_id(r, out, e->raw_len, &got);
	return memcmp(&got, &e->id, sizeof(got)) ? -EBADMSG : 0;
}
