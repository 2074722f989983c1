/* Storage backends: a flat namespace of immutable objects.
 *
 * Names are relative paths such as "config", "index/<hex>" or
 * "data/ab/<hex>". put() is atomic: readers see the whole object or nothing.
 * Local directories, S3 and SFTP, each in repo/transport/. Every
 * operation may be called from several threads. */
#ifndef CAIRN_BACKEND_H
#define CAIRN_BACKEND_H

#include <stdint.h>
#include <string.h>

#include "repo.h"
#include "base/util.h"

struct cairn_backend;

/* Called for every object under a top-level directory; name is the last
 * path component. A non-zero return stops the listing and is returned. */
typedef int (*cairn_list_fn)(void *opaque, const char *name, uint64_t size);

/* Called for every version of an object (newest first for each name) and
 * every delete marker; name is the path below the repository ("data/ab/<hex>"),
 * latest says it is the name's current one, deleted that it is a marker. */
typedef int (*cairn_version_fn)(void *opaque, const char *name, const char *version_id,
				bool latest, bool deleted);

struct cairn_backend_ops {
	int (*put)(struct cairn_backend *b, const char *name, const void *data,
		   size_t len);
	int (*get)(struct cairn_backend *b, const char *name, struct buf *out);
	/* len bytes of name from off into out, in one request on a remote
	 * store, its transient failures (5xx, resets, timeouts) retried with
	 * backoff. -ENOENT: no such object; -EIO: the object ends before
	 * off + len (a remote store means nothing else by it); any other
	 * negative errno: the store failed (cairn_backend_error() says how). */
	int (*get_range)(struct cairn_backend *b, const char *name,
			 uint64_t off, size_t len, void *out);
	int (*stat)(struct cairn_backend *b, const char *name, uint64_t *size);
	/* Optional: when name was last written (ns since the epoch), to date
	 * an object whose own bytes cannot be trusted (a damaged manifest).
	 * NULL where the store does not say cheaply. */
	int (*mtime)(struct cairn_backend *b, const char *name, int64_t *ns);
	/* dir is "data", "index", "snapshots", "keys" or "locks"; "data"
	 * lists the objects of every fan-out subdirectory. */
	int (*list)(struct cairn_backend *b, const char *dir, cairn_list_fn fn,
		    void *opaque);
	int (*remove)(struct cairn_backend *b, const char *name);
	void (*free)(struct cairn_backend *b);
	/* Optional: like errno, why the calling thread's last operation
	 * failed with rc (a remote backend's status and error code, naming
	 * the URL; never a secret), or NULL. */
	const char *(*error)(struct cairn_backend *b, int rc);
	/* Optional: after the first read of a store opened without create
	 * failed, says in one line what is wrong with the store itself
	 * (endpoint, bucket, credentials) and returns its negative errno,
	 * or returns 0 when it finds nothing wrong there. */
	int (*diagnose)(struct cairn_backend *b, char *err, size_t errlen);
	/* Optional, S3 Object Lock (docs/design.md section 20); NULL where
	 * objects cannot be locked. */
	/* From now on every object written under a locked directory
	 * (cairn_locked_name) is PUT with a COMPLIANCE retention of days, and
	 * remove() deletes versions. With check, first makes sure the store
	 * can lock objects: -ENOTSUP with a message in err if not. */
	int (*set_immutable)(struct cairn_backend *b, unsigned days, bool check, char *err,
			     size_t errlen);
	/* When name's retention ends (Unix seconds; 0: it is not locked). */
	int (*retention)(struct cairn_backend *b, const char *name, int64_t *until_s);
	/* Extends name's retention to until_s; a longer one stays. */
	int (*retain)(struct cairn_backend *b, const char *name, int64_t until_s);
	/* Optional: removes what put()s that never finished left behind
	 * (temporary names of a writer that crashed) when it is older than
	 * max_age_s, so that no put still running can own it; *removed counts
	 * what went. NULL where a failed put leaves nothing. */
	int (*sweep)(struct cairn_backend *b, int64_t max_age_s, size_t *removed);
	/* Optional: removes the n objects in as few requests as the store
	 * takes (S3 DeleteObjects, 1000 names a request); done[i] is set for
	 * each one that is gone (or was absent). 0, or the first error (and
	 * some done[] stay false). NULL or -ENOTSUP: use remove() per name. */
	int (*remove_many)(struct cairn_backend *b, const char *const *names, size_t n, bool *done);
	/* Optional, a store that keeps older versions of an object (a
	 * versioned S3 bucket, docs/design.md section 23): every version of
	 * every object under dir/; -ENOTSUP when this store keeps none. */
	int (*list_versions)(struct cairn_backend *b, const char *dir, cairn_version_fn fn,
			     void *opaque);
	/* The bytes of one version of name. */
	int (*get_version)(struct cairn_backend *b, const char *name, const char *version_id,
			   struct buf *out);
};

/* The objects an immutable repository locks: backup data and metadata.
 * Locks, gc lists, check and damage records, protection and forget
 * markers stay deletable (docs/design.md section 20). */
static inline bool cairn_locked_name(const char *name)
{
	static const char *const dirs[] = { "data/", "index/", "snapshots/", "keys/",
					    "verifications/" };
	if (!strcmp(name, "config"))
		return true;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (!strncmp(name, dirs[i], strlen(dirs[i])))
			return true;
	return false;
}

struct cairn_backend {
	const struct cairn_backend_ops *ops;
	char *location; /* for messages */
	/* put() over an existing name leaves a moment in which the name is
	 * absent (SFTP cannot rename over a file): a lock that a heartbeat
	 * is rewriting may look gone for that moment */
	bool replace_gap;
	/* requests it runs at once (remote stores: the --connections pool);
	 * 0 for a local directory */
	unsigned connections;
};

/* Opens the backend named by url (backend.c: a local path,
 * s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] or an sftp: URL); o may be NULL
 * (defaults).
 * create makes the directory structure (and fails if a config already
 * exists there). */
int cairn_backend_open(const char *url, bool create, const struct cairn_backend_opts *o,
		       struct cairn_backend **out, char *err, size_t errlen);
int cairn_backend_local_open(const char *path, bool create,
			     struct cairn_backend **out, char *err,
			     size_t errlen);
/* url: sftp:[USER@]HOST:PATH or sftp://[USER@]HOST[:PORT]/PATH (repo/transport/sftp.h).
 * Logs in once (host key and user key checked) before returning. */
int cairn_backend_sftp_open(const char *url, bool create, const struct cairn_backend_opts *o,
			    struct cairn_backend **out, char *err, size_t errlen);

/* The backend's reason for rc on this thread, or NULL. */
static inline const char *cairn_backend_error(struct cairn_backend *b, int rc)
{
	return b && b->ops->error && rc < 0 ? b->ops->error(b, rc) : NULL;
}

static inline void cairn_backend_free(struct cairn_backend *b)
{
	b->ops->free(b);
}
DEFINE_CLEANUP(struct cairn_backend *, cairn_backend_free);

#endif
