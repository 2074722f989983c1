/* agent: reading disks and backing them up into a repository.
 *
 * v1 reads disk images: raw files and block devices directly (sparse-aware),
 * every other format QEMU reads through qemu-nbd started by libnbd. Running
 * libvirt guests (checkpoints, dirty bitmaps) come next behind the same
 * source interface. Functions return 0 or a negative errno and put a
 * one-line reason into err. */
#ifndef CAIRN_AGENT_H
#define CAIRN_AGENT_H

#include "repo/pipeline.h"
#include "repo/repo.h"

/* A readable disk. Reads of ranges without data return zeros. */
struct cairn_source;

int cairn_source_open(const char *path, struct cairn_source **out, char *err,
		      size_t errlen);
void cairn_source_close(struct cairn_source *s);
DEFINE_CLEANUP(struct cairn_source *, cairn_source_close);
uint64_t cairn_source_size(const struct cairn_source *s);
const char *cairn_source_format(const struct cairn_source *s);
/* True when [off, off+len) may hold non-zero data. */
bool cairn_source_has_data(const struct cairn_source *s, uint64_t off,
			   uint64_t len);
int cairn_source_read(struct cairn_source *s, void *buf, size_t len,
		      uint64_t off, char *err, size_t errlen);
/* Fails with -ESTALE when the disk changed size since it was opened. */
int cairn_source_recheck(struct cairn_source *s, char *err, size_t errlen);

struct cairn_backup_disk {
	const char *name; /* disk name in the snapshot */
	const char *path;
};

struct cairn_backup_opts {
	const char *name; /* snapshot name */
	const char *const *tags;
	size_t ntags;
	unsigned workers; /* 0 = one per CPU */
	cairn_progress_fn progress;
	void *progress_opaque;
	/* when it becomes non-zero (a signal handler), the backup stops with
	 * -EINTR, writing no snapshot */
	const volatile int *cancel;
};

struct cairn_backup_result {
	cairn_id snapshot;
	bool has_parent;
	cairn_id parent;
	uint64_t bytes_total; /* sum of disk sizes */
	uint64_t bytes_read;
	uint64_t chunks, zero_chunks, new_chunks;
	uint64_t new_bytes; /* bytes added to packs */
};

/* Backs up the disks as one snapshot. The repository must be locked by the
 * caller. */
int cairn_backup_images(struct cairn_repo *r, const struct cairn_backup_disk *disks,
			size_t ndisks, const struct cairn_backup_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen);

#endif
