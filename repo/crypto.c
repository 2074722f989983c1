/* Thin wrappers over OpenSSL 3: SHA-256, AES-256-GCM, scrypt, HKDF-SHA256,
 * X25519, randomness. */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "internal.h"

void sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int random_bytes(void *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -EIO;
}

typedef EVP_CIPHER_CTX *cipher_ctx;
static inline void cipher_ctx_freep(cipher_ctx *c) { EVP_CIPHER_CTX_free(*c); }

int aead_seal(const uint8_t key[KEY_LEN], const void *aad, size_t aadlen,
	      const void *in, size_t len, uint8_t *out)
{
	_cleanup_(cipher_ctx_freep) cipher_ctx c = EVP_CIPHER_CTX_new();
	int n;
	if (!c || random_bytes(out, NONCE_LEN) < 0)
		return -ENOMEM;
	uint8_t *ct = out + NONCE_LEN;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) != 1 ||
	    (aadlen && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
	    EVP_EncryptUpdate(c, ct, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, ct + len) != 1)
		return -EIO;
	return 0;
}

int aead_open(const uint8_t key[KEY_LEN], const void *aad, size_t aadlen,
	      const uint8_t *in, size_t len, uint8_t *out)
{
	if (len < NONCE_LEN + TAG_LEN)
		return -EBADMSG;
	_cleanup_(cipher_ctx_freep) cipher_ctx c = EVP_CIPHER_CTX_new();
	size_t ctlen = len - NONCE_LEN - TAG_LEN;
	int n;
	if (!c)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
	    (aadlen && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
	    EVP_DecryptUpdate(c, out, &n, in + NONCE_LEN, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
				(void *)(in + NONCE_LEN + ctlen)) != 1)
		return -EIO;
	if (EVP_DecryptFinal_ex(c, out + n, &n) != 1)
		return -EBADMSG;
	return 0;
}

/* A derivation context of OpenSSL's KDF NAME: -ENOSYS when this OpenSSL
 * lacks it. */
static int kdf_ctx_new(const char *name, EVP_KDF_CTX **ctx)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
	if (!kdf)
		return -ENOSYS;
	*ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	return *ctx ? 0 : -ENOMEM;
}

int scrypt_kdf(const char *password, const uint8_t *salt, size_t saltlen,
	       uint64_t n, uint32_t r, uint32_t p, uint8_t out[KEY_LEN])
{
	EVP_KDF_CTX *ctx;
	int rc = kdf_ctx_new(OSSL_KDF_NAME_SCRYPT, &ctx);
	if (rc < 0)
		return rc;
	uint64_t maxmem = 1ull << 30;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						  (void *)password, strlen(password)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						  (void *)salt, saltlen),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(ctx, out, KEY_LEN, params);
	EVP_KDF_CTX_free(ctx);
	return ok == 1 ? 0 : -EINVAL;
}

int hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
		const char *info, uint8_t out[KEY_LEN])
{
	EVP_KDF_CTX *ctx;
	int rc = kdf_ctx_new(OSSL_KDF_NAME_HKDF, &ctx);
	if (rc < 0)
		return rc;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(ctx, out, KEY_LEN, params);
	EVP_KDF_CTX_free(ctx);
	return ok == 1 ? 0 : -EIO;
}

typedef EVP_PKEY *pkey_ptr;
static inline void pkey_freep(pkey_ptr *k) { EVP_PKEY_free(*k); }
typedef EVP_PKEY_CTX *pkey_ctx;
static inline void pkey_ctx_freep(pkey_ctx *c) { EVP_PKEY_CTX_free(*c); }

int x25519_public(const uint8_t priv[X25519_LEN], uint8_t pub[X25519_LEN])
{
	_cleanup_(pkey_freep) pkey_ptr k =
		EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, X25519_LEN);
	size_t n = X25519_LEN;
	if (!k || EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 || n != X25519_LEN)
		return -EIO;
	return 0;
}

int x25519_keypair(uint8_t priv[X25519_LEN], uint8_t pub[X25519_LEN])
{
	int rc = random_bytes(priv, X25519_LEN);
	return rc < 0 ? rc : x25519_public(priv, pub);
}

int x25519_shared(const uint8_t priv[X25519_LEN], const uint8_t peer[X25519_LEN],
		  uint8_t out[X25519_LEN])
{
	_cleanup_(pkey_freep) pkey_ptr mine =
		EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, X25519_LEN);
	_cleanup_(pkey_freep) pkey_ptr theirs =
		EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, X25519_LEN);
	if (!mine || !theirs)
		return -EIO;
	_cleanup_(pkey_ctx_freep) pkey_ctx c = EVP_PKEY_CTX_new(mine, NULL);
	size_t n = X25519_LEN;
	if (!c || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, theirs) != 1)
		return -EIO;
	/* a low-order peer key gives an all-zero secret: OpenSSL refuses it */
	if (EVP_PKEY_derive(c, out, &n) != 1 || n != X25519_LEN)
		return -EBADMSG;
	uint8_t any = 0;
	for (size_t i = 0; i < X25519_LEN; i++)
		any |= out[i];
	return any ? 0 : -EBADMSG;
}
