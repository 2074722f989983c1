/* Key files (docs/design.md section 3), internal to repo/. */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include "internal.h"

#define KEY_SALT_LEN 32
#define KEY_MASTER_LEN (2 * KEY_LEN)

/* What a key file holds: the scrypt parameters and the sealed master key. */
struct key_file {
	uint64_t n;
	uint32_t r, p;
	uint8_t salt[KEY_SALT_LEN];
	uint8_t sealed[NONCE_LEN + KEY_MASTER_LEN + TAG_LEN];
};

/* Parses a key file's bytes (JSON) without running the KDF: 0 or -EBADMSG
 * when a field is missing, malformed or out of range. */
int key_file_parse(const void *text, size_t len, struct key_file *kf);

/* Unwraps the master key with password from any key file. */
int keys_unlock(struct cairn_repo *r, const char *password);

#endif
