/* Blob encoding (docs/design.md section 5): zstd, then AES-256-GCM with the
 * blob's id, type and flags as associated data; disk data of a host-keys
 * repository sealed to its public key instead (seal.c). */
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

struct scratch *scratch_get(struct cairn_repo *r)
{
	pthread_mutex_lock(&r->lock);
	struct scratch *s = r->scratch_pool;
	if (s)
		r->scratch_pool = s->next;
	pthread_mutex_unlock(&r->lock);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (s && (!(s->zc = ZSTD_createCCtx()) || !(s->zd = ZSTD_createDCtx()))) {
		ZSTD_freeCCtx(s->zc);
		free(s);
		s = NULL;
	}
	return s;
}

void scratch_put(struct cairn_repo *r, struct scratch *s)
{
	pthread_mutex_lock(&r->lock);
	s->next = r->scratch_pool;
	r->scratch_pool = s;
	pthread_mutex_unlock(&r->lock);
}

static void blob_aad(uint8_t aad[CAIRN_ID_LEN + 2], const cairn_id *id,
		     uint8_t type, uint8_t flags)
{
	memcpy(aad, id->b, CAIRN_ID_LEN);
	aad[CAIRN_ID_LEN] = type;
	aad[CAIRN_ID_LEN + 1] = flags;
}

bool blob_sealed(const struct cairn_repo *r, enum cairn_blob_type type)
{
	return r->host_keys && type == CAIRN_BLOB_DATA;
}

int blob_encode(const struct cairn_repo *r, struct scratch *sc,
		enum cairn_blob_type type, const cairn_id *id, const void *in,
		size_t len, const struct seal_key *seal, uint8_t *flags)
{
	uint8_t f = 0;
	size_t bound = ZSTD_compressBound(len);
	bool sealed = blob_sealed(r, type);
	if (sealed && !seal)
		return -EINVAL;
	sc->a.len = sc->b.len = 0;
	if (buf_reserve(&sc->a, bound + SEAL_OVERHEAD) < 0 ||
	    buf_reserve(&sc->b, bound) < 0)
		return -ENOMEM;
	const uint8_t *plain = in;
	size_t plen = len;
	if (r->level > 0) {
		/* compress straight into place when there is no encryption */
		uint8_t *cbuf = r->encrypted ? sc->b.p : sc->a.p;
		size_t c = ZSTD_compressCCtx(sc->zc, cbuf, bound, in, len, r->level);
		if (ZSTD_isError(c))
			return -EIO;
		if (c < len) {
			f |= BLOB_F_ZSTD;
			plain = cbuf;
			plen = c;
		}
	}
	if (!r->encrypted) {
		if (plain != sc->a.p)
			memcpy(sc->a.p, plain, plen);
		sc->a.len = plen;
		*flags = f;
		return 0;
	}
	f |= BLOB_F_AES | (sealed ? BLOB_F_SEALED : 0);
	uint8_t aad[CAIRN_ID_LEN + 2];
	blob_aad(aad, id, type, f);
	int rc = sealed ? seal_blob(seal, aad, sizeof(aad), plain, plen, sc->a.p)
			: aead_seal(r->k_enc, aad, sizeof(aad), plain, plen, sc->a.p);
	if (rc < 0)
		return rc;
	sc->a.len = plen + (sealed ? SEAL_OVERHEAD : NONCE_LEN + TAG_LEN);
	*flags = f;
	return 0;
}

/* Opens the AES layer of a stored blob into dst (plen bytes): K_enc, or
 * for a sealed blob the key its ephemeral public key shares with the
 * repository's (derived once per ephemeral key and thread). */
static int blob_open(const struct cairn_repo *r, struct scratch *sc, const struct idx_entry *e,
		     const uint8_t *in, uint8_t *dst)
{
	uint8_t aad[CAIRN_ID_LEN + 2];
	blob_aad(aad, &e->id, e->type, e->flags);
	if (!(e->flags & BLOB_F_SEALED))
		return aead_open(r->k_enc, aad, sizeof(aad), in, e->stored_len, dst);
	if (!r->has_data_priv)
		return -EPERM;
	const struct seal_key *k;
	int rc = seal_cache_key(&sc->seals, r->data_priv, r->data_pub, in, &k);
	if (rc < 0)
		return rc == -ENOMEM ? rc : -EBADMSG;
	return open_sealed(k, aad, sizeof(aad), in, e->stored_len, dst);
}

int blob_decode(const struct cairn_repo *r, struct scratch *sc,
		const struct idx_entry *e, const uint8_t *in, uint8_t *out, bool rehash)
{
	const uint8_t *p = in;
	size_t plen = e->stored_len;

	if (!!(e->flags & BLOB_F_AES) != r->encrypted)
		return -EBADMSG; /* plaintext in an encrypted repository is forged */
	bool sealed = e->flags & BLOB_F_SEALED;
	/* disk data of a host-keys repository is always sealed, nothing else
	 * ever is: a blob that says otherwise is forged */
	if (sealed != blob_sealed(r, e->type))
		return -EBADMSG;
	if (e->flags & BLOB_F_AES) {
		size_t overhead = sealed ? SEAL_OVERHEAD : NONCE_LEN + TAG_LEN;
		if (plen < overhead)
			return -EBADMSG;
		plen -= overhead;
		/* decrypt into out when the result needs no decompression */
		uint8_t *dst = out;
		if (e->flags & BLOB_F_ZSTD) {
			sc->b.len = 0;
			if (buf_reserve(&sc->b, plen + 1) < 0)
				return -ENOMEM;
			dst = sc->b.p;
		} else if (plen != e->raw_len) {
			return -EBADMSG;
		}
		int rc = blob_open(r, sc, e, in, dst);
		if (rc < 0)
			return rc;
		p = dst;
	}
	if (e->flags & BLOB_F_ZSTD) {
		size_t n = ZSTD_decompressDCtx(sc->zd, out, e->raw_len, p, plen);
		if (ZSTD_isError(n) || n != e->raw_len)
			return -EBADMSG;
	} else if (p != out) {
		if (plen != e->raw_len)
			return -EBADMSG;
		memcpy(out, p, plen);
	}
	if (!rehash && (e->flags & BLOB_F_AES) && !sealed)
		return 0;
	cairn_id got;
	cairn_repo_chunk_id(r, out, e->raw_len, &got);
	return memcmp(&got, &e->id, sizeof(got)) ? -EBADMSG : 0;
}
