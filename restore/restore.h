/* restore: writing a snapshot's disk back out as a sparse raw file or a
 * qcow2 image. The target appears only when the whole disk was written and
 * its whole-disk digest matched (digest2, else the v1 digest); until then
 * it is TARGET.cairn-partial. A raw file restore that fails or is killed
 * leaves that partial file and TARGET.cairn-journal, which --resume
 * (resume) carries on from; otherwise nothing is left behind.
 * Functions return 0 or a negative errno (-EBADMSG: damaged data) and put
 * a one-line reason into err. */
#ifndef CAIRN_RESTORE_H
#define CAIRN_RESTORE_H

#include "base/pipeline.h"
#include "repo/repo.h"

enum cairn_image_format { CAIRN_FMT_RAW, CAIRN_FMT_QCOW2 };

struct cairn_restore_opts {
	const char *target;
	enum cairn_image_format format;
	bool force; /* replace an existing target (or a stale partial one) */
	bool resume; /* carry on from TARGET.cairn-partial and its journal */
	unsigned workers; /* ranged reads in flight; 0: the backend's connections */
	cairn_progress_fn progress;
	void *progress_opaque;
	const volatile int *cancel; /* non-zero: stop with -EINTR */
};

struct cairn_restore_result {
	uint64_t bytes; /* disk size */
	uint64_t bytes_written; /* non-zero data written */
	uint64_t chunks, zero_chunks;
};

int cairn_restore_disk(struct cairn_repo *r, struct cairn_disk *d,
		       const struct cairn_restore_opts *o,
		       struct cairn_restore_result *res, char *err, size_t errlen);

#endif
