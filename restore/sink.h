/* Restore targets, internal to restore/. write() is called from several
 * threads at once, for distinct ranges, in any order. */
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
int sink_qcow2_open(const char *target, uint64_t size, bool force,
		    struct sink **out, char *err, size_t errlen);

#endif
