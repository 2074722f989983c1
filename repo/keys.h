/* Key files (docs/design.md section 3) and host key files (section "Host
 * keys"), internal to repo/. */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include "internal.h"

#define KEY_SALT_LEN 32
#define KEY_MASTER_LEN (2 * KEY_LEN)
/* K_enc || K_id || the X25519 private key of a host-keys repository */
#define KEY_MASTER_MAX (KEY_MASTER_LEN + X25519_LEN)

/* What a key file holds: the scrypt parameters and the sealed master key
 * (master_len bytes: KEY_MASTER_LEN, or KEY_MASTER_MAX in a host-keys
 * repository). */
struct key_file {
	uint64_t n;
	uint32_t r, p;
	uint8_t salt[KEY_SALT_LEN];
	size_t master_len;
	uint8_t sealed[NONCE_LEN + KEY_MASTER_MAX + TAG_LEN];
};

/* Parses a key file's bytes (JSON) without running the KDF: 0 or -EBADMSG
 * when a field is missing, malformed or out of range. */
int key_file_parse(const void *text, size_t len, struct key_file *kf);

/* Unwraps the master key with password from any key file. */
int keys_unlock(struct cairn_repo *r, const char *password);
/* Opens r with the host key file at path: K_enc and K_id, no private
 * key; refuses a key of another repository or a revoked one. */
int hostkey_unlock(struct cairn_repo *r, const char *path);
/* 0 when r was opened with the password or its host key's record still
 * exists with the key's id; -EKEYREJECTED ("host key NAME was revoked")
 * otherwise. */
int hostkey_check_record(struct cairn_repo *r);

#endif
