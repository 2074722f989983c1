/* Sealing disk data to the repository's X25519 public key (docs/design.md
 * section "Host keys"): ECIES with an ephemeral key per pack, HKDF-SHA256
 * and AES-256-GCM. Whoever holds only the public key (a host key) can
 * seal but not open; the private key is wrapped by the password key
 * files. */
#include <errno.h>

#include "internal.h"

#define SEAL_INFO "cairn-seal-v1"

static int derive(const uint8_t secret[X25519_LEN], const uint8_t eph_pub[X25519_LEN],
		  const uint8_t repo_pub[X25519_LEN], uint8_t key[KEY_LEN])
{
	uint8_t salt[2 * X25519_LEN];
	memcpy(salt, eph_pub, X25519_LEN);
	memcpy(salt + X25519_LEN, repo_pub, X25519_LEN);
	return hkdf_sha256(secret, X25519_LEN, salt, sizeof(salt), SEAL_INFO, key);
}

int seal_key_new(const uint8_t repo_pub[X25519_LEN], struct seal_key *out)
{
	uint8_t eph_priv[X25519_LEN], secret[X25519_LEN];
	int rc = x25519_keypair(eph_priv, out->eph_pub);
	if (rc == 0)
		rc = x25519_shared(eph_priv, repo_pub, secret);
	if (rc == 0)
		rc = derive(secret, out->eph_pub, repo_pub, out->key);
	/* the ephemeral private key is forgotten at once: not even the
	 * writer can open what it sealed */
	explicit_bzero(eph_priv, sizeof(eph_priv));
	explicit_bzero(secret, sizeof(secret));
	return rc;
}

int seal_key_derive(const uint8_t repo_priv[X25519_LEN], const uint8_t repo_pub[X25519_LEN],
		    const uint8_t eph_pub[X25519_LEN], struct seal_key *out)
{
	uint8_t secret[X25519_LEN];
	int rc = x25519_shared(repo_priv, eph_pub, secret);
	if (rc == 0)
		rc = derive(secret, eph_pub, repo_pub, out->key);
	explicit_bzero(secret, sizeof(secret));
	if (rc == 0)
		memcpy(out->eph_pub, eph_pub, X25519_LEN);
	return rc;
}

int seal_blob(const struct seal_key *k, const void *aad, size_t aadlen, const void *in,
	      size_t len, uint8_t *out)
{
	memcpy(out, k->eph_pub, X25519_LEN);
	return aead_seal(k->key, aad, aadlen, in, len, out + X25519_LEN);
}

int open_sealed(const struct seal_key *k, const void *aad, size_t aadlen, const uint8_t *in,
		size_t len, uint8_t *out)
{
	if (len < SEAL_OVERHEAD || memcmp(in, k->eph_pub, X25519_LEN))
		return -EBADMSG;
	return aead_open(k->key, aad, aadlen, in + X25519_LEN, len - X25519_LEN, out);
}

int seal_cache_key(struct seal_cache *c, const uint8_t repo_priv[X25519_LEN],
		   const uint8_t repo_pub[X25519_LEN], const uint8_t eph_pub[X25519_LEN],
		   const struct seal_key **out)
{
	for (unsigned i = 0; i < c->n; i++)
		if (!memcmp(c->v[i].eph_pub, eph_pub, X25519_LEN)) {
			*out = &c->v[i];
			return 0;
		}
	struct seal_key fresh;
	int rc = seal_key_derive(repo_priv, repo_pub, eph_pub, &fresh);
	if (rc < 0)
		return rc;
	struct seal_key *k = &c->v[c->next];
	*k = fresh;
	explicit_bzero(&fresh, sizeof(fresh));
	c->next = (c->next + 1) % SEAL_CACHE;
	if (c->n < SEAL_CACHE)
		c->n++;
	*out = k;
	return 0;
}
