/* Firmware state stored with a snapshot (docs/design.md section 9, manifest
 * key "firmware"): the UEFI variable store (NVRAM) of a domain and the
 * state files of its emulated TPM, each kept as one item with the path it
 * had, its mode and size, and its bytes cut into chunks of the repository's
 * chunk size that are stored as ordinary data blobs (type 0): deduplicated,
 * compressed and encrypted like disk data. Older readers ignore the key.
 *
 * Functions return 0 or a negative errno; repository failures leave their
 * reason in cairn_repo_error(). */
#ifndef CAIRN_REPO_FIRMWARE_H
#define CAIRN_REPO_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

#define CAIRN_FIRMWARE_NVRAM "nvram"
#define CAIRN_FIRMWARE_TPM "tpm"
/* a state file larger than this is not firmware state */
#define CAIRN_FIRMWARE_MAX_FILE (64u << 20)

/* A file to store, as a backup read it. */
struct cairn_firmware_state {
	const char *kind; /* CAIRN_FIRMWARE_NVRAM or CAIRN_FIRMWARE_TPM */
	char *path;
	uint32_t mode;
	uint8_t *data;
	size_t len;
};

/* Adds one file to s->firmware: its chunks go through w (all-zero chunks
 * are not stored, as on disks). *new_bytes (may be NULL) grows by the
 * bytes the new blobs take in packs. kind: CAIRN_FIRMWARE_NVRAM or _TPM. */
int cairn_firmware_add(struct cairn_repo *r, struct cairn_writer *w, struct cairn_snapshot *s,
		       const char *kind, const char *path, uint32_t mode, const void *data,
		       size_t len, uint64_t *new_bytes);
/* The bytes of item f (every chunk read and checked against its id); the
 * caller frees *data. -EBADMSG when a chunk is damaged. Index loaded. */
int cairn_firmware_read(struct cairn_repo *r, const struct cairn_firmware_file *f,
			uint8_t **data);
/* How many items of this kind the snapshot holds. */
size_t cairn_firmware_count(const struct cairn_snapshot *s, const char *kind);

#endif
