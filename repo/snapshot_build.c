/* Building a snapshot to save (repo/snapshot_build.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "snapshot_build.h"

int cairn_snapshot_begin(struct cairn_snapshot *s, const char *name, const char *source,
			 const char *const *tags, size_t ntags, size_t ndisks)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	s->name = strdup(name);
	s->source = strdup(source);
	s->host = strdup(host);
	s->time_ns = now_ns();
	s->tags = calloc(ntags + 1, sizeof(char *));
	s->disks = calloc(ndisks + 1, sizeof(*s->disks));
	if (!s->name || !s->source || !s->host || !s->tags || !s->disks)
		return -ENOMEM;
	for (size_t i = 0; i < ntags; i++)
		if (!(s->tags[s->ntags++] = strdup(tags[i])))
			return -ENOMEM;
	return 0;
}

int cairn_snapshot_add_disk(struct cairn_snapshot *s, struct cairn_repo *r, const char *name,
			    const char *path, const char *format, uint64_t size)
{
	struct cairn_disk *d = &s->disks[s->ndisks++];
	d->name = strdup(name);
	d->format = strdup(format);
	d->path = realpath(path, NULL);
	if (!d->path)
		d->path = strdup(path);
	d->size = size;
	d->chunk_size = cairn_repo_chunk_size(r);
	return d->name && d->format && d->path ? 0 : -ENOMEM;
}
