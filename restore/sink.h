/* Restore targets, internal to restore/. write() is called from several
 * threads at once, for distinct ranges, in any order. A regular file
 * target is written under a temporary name, TARGET.cairn-partial, created
 * like any new file (mode 0666 under the caller's umask), and renamed over
 * the target only by commit. A partial raw file may be kept (keep) and
 * reopened by a resumed restore (restore/journal.h). */
#ifndef CAIRN_SINK_H
#define CAIRN_SINK_H

#include "restore.h"

struct sink {
	int (*write)(struct sink *s, const void *buf, size_t len, uint64_t off);
	/* Reads back what was written (zeros where nothing was). */
	int (*read)(struct sink *s, void *buf, size_t len, uint64_t off);
	/* Allocates [off, off+len) before it is written, or NULL: the disk
	 * space is claimed before anything is fetched (a target that cannot
	 * hold the disk fails at once), and O_DIRECT writes into allocated
	 * space run side by side (into a hole they take the file's lock). */
	int (*reserve)(struct sink *s, uint64_t off, uint64_t len);
	/* Makes what was written so far durable; 0 or -errno, no message
	 * (called beside writes). */
	int (*sync)(struct sink *s);
	/* Makes the data durable and moves the target into place. */
	int (*commit)(struct sink *s);
	/* Removes an uncommitted target and frees the sink. */
	void (*free)(struct sink *s);
	bool needs_zeros; /* a device: zero chunks must be written, not skipped */
	bool keep; /* free() leaves the temporary file (a restore to resume) */
	char *target;
	char *tmp; /* temporary name, renamed to target by commit; NULL in place */
	char *err;
	size_t errlen;
};

/* resume: reopen the TARGET.cairn-partial a killed restore left (a file
 * target only). Without it an existing partial file is an error unless
 * force (then it is started over). */
int sink_raw_open(const char *target, uint64_t size, bool force, bool resume,
		  struct sink **out, char *err, size_t errlen);
/* The temporary name of target's partial restore (the caller frees it). */
char *sink_partial_name(const char *target);
/* A qcow2 v3 image written natively (qcow2.h); write() ranges must start
 * on a 64 KiB boundary, and zero chunks are skipped: they stay
 * unallocated. */
int sink_qcow2_open(const char *target, uint64_t size, bool force,
		    struct sink **out, char *err, size_t errlen);

#endif
