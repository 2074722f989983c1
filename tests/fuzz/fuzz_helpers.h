/* Shared by the fuzz targets (one file per parser of untrusted bytes, each
 * with LLVMFuzzerTestOneInput): reading the input field by field, and a
 * repository context whose objects live in memory, plain or encrypted
 * under a fixed test key.
 *
 * Encrypted contexts: the fuzzer cannot forge an AES-GCM tag, so an input
 * holds envelopes in their plain form (flags without the AES bit) and
 * fuzz_envelope() seals them with the test key; the parsers behind the
 * decryption then see every mutation. */
#ifndef CAIRN_FUZZ_HELPERS_H
#define CAIRN_FUZZ_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/internal.h"

/* The input, consumed from the front. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};
uint8_t fuzz_u8(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
/* Up to len bytes (fewer when the input ends). */
const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t len, size_t *got);

/* Input mode byte of the repository targets: bit 0 an encrypted
 * repository, bit 1 (encrypted only) the bytes as they are, unsealed. */
#define FUZZ_ENCRYPTED 1u
#define FUZZ_RAW 2u

/* A repository with no objects, chunk size 64 KiB, zstd level 3; the
 * caller closes it with cairn_repo_close(). Aborts when out of memory. */
struct cairn_repo *fuzz_repo(bool encrypted);
/* Stores an object under name (replacing one there). */
void fuzz_put(struct cairn_repo *r, const char *name, const void *data, size_t len);
/* Stores data under dir/<sha256 of data> (data/xx/<hex> for "data"). */
void fuzz_put_hashed(struct cairn_repo *r, const char *dir, const void *data, size_t len);
/* The stored form of envelope in: sealed with the test key when r is
 * encrypted and raw is false, else the bytes as they are. */
void fuzz_envelope(const struct cairn_repo *r, const uint8_t *in, size_t len, bool raw,
		   struct buf *out);
/* The common input of the envelope targets (index, manifest, verification):
 * a mode byte, then an envelope stored under dir/<its hash> in a new
 * repository (encrypted when the mode says so), which is returned. */
struct cairn_repo *fuzz_repo_with_envelope(const uint8_t *data, size_t size, const char *dir);
/* A NUL-terminated copy of the input (the text parsers take strings). */
char *fuzz_strdup(const uint8_t *data, size_t len);

#endif
