/* Restore targets, internal to restore/. write() is called from several
 * threads at once, for distinct ranges, in any order. A regular file
 * target is written under a temporary name, created like any new file
 * (mode 0666 under the caller's umask), and renamed over the target only
 * by commit. */
#ifndef CAIRN_SINK_H
#define CAIRN_SINK_H

#include "restore.h"

struct sink {
	int (*write)(struct sink *s, const void *buf, size_t len, uint64_t off);
	/* Makes the data durable and moves the target into place. */
	int (*commit)(struct sink *s);
	/* Removes an uncommitted target and frees the sink. */
	void (*free)(struct sink *s);
	bool needs_zeros; /* a device: zero chunks must be written, not skipped */
	char *target;
	char *tmp; /* temporary name, renamed to target by commit; NULL in place */
	char *err;
	size_t errlen;
};

int sink_raw_open(const char *target, uint64_t size, bool force, struct sink **out,
		  char *err, size_t errlen);
/* A qcow2 v3 image written natively (qcow2.h); write() ranges must start
 * on a 64 KiB boundary, and zero chunks are skipped: they stay
 * unallocated. */
int sink_qcow2_open(const char *target, uint64_t size, bool force,
		    struct sink **out, char *err, size_t errlen);

#endif
