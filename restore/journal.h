/* The journal of a resumable restore, internal to restore/: next to the
 * partial target (TARGET.cairn-partial), TARGET.cairn-journal records
 * which data slots are written and durable, so that `restore --resume`
 * fetches only the rest (docs/design.md section 12).
 *
 * The file is replaced whole (temporary name, fsync, rename) each time it
 * is stored, and the caller syncs the target before storing: a slot it
 * lists is on disk whatever moment the restore was killed at. It names
 * the disk it belongs to by an identity (XXH3-128 of the disk's name,
 * size, chunk size and chunk map), so a journal is never applied to a
 * restore of other data. Functions return 0 or a negative errno with a
 * one-line reason in err. Not thread-safe: the caller serializes. */
#ifndef CAIRN_RESTORE_JOURNAL_H
#define CAIRN_RESTORE_JOURNAL_H

#include <stdint.h>

#include "repo/repo.h"

struct restore_journal {
	char *path;
	uint8_t identity[16];
	uint64_t size, nchunks;
	uint32_t chunk_size;
	uint64_t *done; /* bit seq: slot seq is written and durable */
	size_t nwords;
};

/* A journal for d (chunk map loaded) restored to target; done all clear. */
int journal_init(struct restore_journal *j, const char *target, const struct cairn_disk *d,
		 char *err, size_t errlen);
void journal_release(struct restore_journal *j);
/* Reads the journal an interrupted restore of the same disk left. */
int journal_load(struct restore_journal *j, char *err, size_t errlen);
/* Replaces the journal on disk with done. */
int journal_store(const struct restore_journal *j, char *err, size_t errlen);
/* Removes it (the restore completed or starts over). */
void journal_remove(const struct restore_journal *j);

#endif
