/* Storage backends: a flat namespace of immutable objects.
 *
 * Names are relative paths such as "config", "index/<hex>" or
 * "data/ab/<hex>". put() is atomic: readers see the whole object or nothing.
 * Local directories in v1; S3 and SFTP implement the same operations. */
#ifndef CAIRN_BACKEND_H
#define CAIRN_BACKEND_H

#include <stdint.h>

#include "util.h"

struct cairn_backend;

/* Called for every object under a top-level directory; name is the last
 * path component. A non-zero return stops the listing and is returned. */
typedef int (*cairn_list_fn)(void *opaque, const char *name, uint64_t size);

struct cairn_backend_ops {
	int (*put)(struct cairn_backend *b, const char *name, const void *data,
		   size_t len);
	int (*get)(struct cairn_backend *b, const char *name, struct buf *out);
	int (*get_range)(struct cairn_backend *b, const char *name,
			 uint64_t off, size_t len, void *out);
	int (*stat)(struct cairn_backend *b, const char *name, uint64_t *size);
	/* dir is "data", "index", "snapshots", "keys" or "locks"; "data"
	 * lists the objects of every fan-out subdirectory. */
	int (*list)(struct cairn_backend *b, const char *dir, cairn_list_fn fn,
		    void *opaque);
	int (*remove)(struct cairn_backend *b, const char *name);
	void (*free)(struct cairn_backend *b);
};

struct cairn_backend {
	const struct cairn_backend_ops *ops;
	char *location; /* for messages */
};

/* Opens the backend named by url (v1: a local path). create makes the
 * directory structure (and fails if a config already exists there). */
int cairn_backend_open(const char *url, bool create, struct cairn_backend **out,
		       char *err, size_t errlen);
int cairn_backend_local_open(const char *path, bool create,
			     struct cairn_backend **out, char *err,
			     size_t errlen);

static inline void cairn_backend_free(struct cairn_backend *b)
{
	b->ops->free(b);
}
DEFINE_CLEANUP(struct cairn_backend *, cairn_backend_free);

#endif
