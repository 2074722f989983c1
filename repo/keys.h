/* Key files (docs/design.md section 3), internal to repo/. */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include "internal.h"

/* Unwraps the master key with password from any key file. */
int keys_unlock(struct cairn_repo *r, const char *password);

#endif
