/* Key files (docs/design.md section 3) and host key files (section "Host
 * keys"), internal to repo/. */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include "internal.h"

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
