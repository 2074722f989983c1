/* agent: reading disks and backing them up into a repository.
 *
 * Sources: raw files and block devices read directly (by extents, so holes
 * cost nothing), every other format QEMU reads through qemu-nbd started by
 * libnbd, and running libvirt guests through pull-mode backups whose dirty
 * bitmaps say what changed (agent/domain.h; several domains at once:
 * agent/fleet.h). What a source yields goes into the repository through
 * the disk writer (repo/disk_writer.h). Functions return 0 or a negative
 * errno and put a one-line reason into err. */
#ifndef CAIRN_AGENT_H
#define CAIRN_AGENT_H

#include "base/pipeline.h"
#include "repo/firmware.h"
#include "repo/repo.h"
#include "repo/snapshot_build.h"

/* A readable disk. Reads of ranges without data return zeros. */
struct cairn_source;

int cairn_source_open(const char *path, struct cairn_source **out, char *err,
		      size_t errlen);
/* A qcow2 image read through qemu-nbd together with its persistent dirty
 * bitmap: only what changed since the bitmap was added counts as changed. */
int cairn_source_open_bitmap(const char *path, const char *bitmap,
			     struct cairn_source **out, char *err, size_t errlen);
void cairn_source_close(struct cairn_source *s);
DEFINE_CLEANUP(struct cairn_source *, cairn_source_close);
uint64_t cairn_source_size(const struct cairn_source *s);
const char *cairn_source_format(const struct cairn_source *s);
/* True when [off, off+len) may hold non-zero data. */
bool cairn_source_has_data(const struct cairn_source *s, uint64_t off,
			   uint64_t len);
/* From off (< size): the length of the next run that is all without
 * data (*data false: reads as zeros) or all possibly with data (*data
 * true), ending where that changes or at the end of the disk. A walk by
 * extents costs what the data costs, not the virtual size. */
uint64_t cairn_source_extent(const struct cairn_source *s, uint64_t off, bool *data);
int cairn_source_read(struct cairn_source *s, void *buf, size_t len,
		      uint64_t off, char *err, size_t errlen);
/* A disk of a running guest: the NBD export of a libvirt pull-mode backup
 * on a unix socket; with bitmap, its dirty bitmap says what changed since
 * the checkpoint the backup is incremental from. label names it in
 * messages. */
int cairn_source_open_export(const char *socket, const char *export,
			     const char *bitmap, const char *label,
			     struct cairn_source **out, char *err, size_t errlen);
bool cairn_source_has_dirty_map(const struct cairn_source *s);
/* True when [off, off+len) changed since the checkpoint (always true
 * without a dirty map). */
bool cairn_source_changed(const struct cairn_source *s, uint64_t off, uint64_t len);
/* From off (< size): the length of the next run that is all changed
 * (*changed) or all unchanged since the checkpoint, as the dirty map says
 * (without one, the whole rest of the disk changed). */
uint64_t cairn_source_changed_extent(const struct cairn_source *s, uint64_t off, bool *changed);
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
	/* one-line notices (why a disk was read in full, ...); may be NULL */
	cairn_report_fn notice;
	void *notice_opaque;
	/* NULL: the backup makes its own. Several backups running at once
	 * share one (their snapshots are saved with cairn_writer_flush, which
	 * waits for every blob any of them put). */
	struct cairn_writer *writer;
	/* the anomaly guard's thresholds (zero fields: defaults) or off
	 * (repo/anomaly.h, agent/guard.h) */
	struct cairn_guard_opts guard;
	/* firmware state stored with the snapshot (repo/firmware.h); set by
	 * domain backups */
	const struct cairn_firmware_state *firmware;
	size_t nfirmware;
};

struct cairn_backup_result {
	cairn_id snapshot;
	bool has_parent;
	cairn_id parent;
	size_t ndisks;
	uint64_t bytes_total; /* sum of disk sizes */
	uint64_t bytes_read;
	uint64_t chunks, zero_chunks, new_chunks;
	uint64_t new_bytes; /* bytes added to packs */
	/* the anomaly guard marked the snapshot suspicious; alarm says why
	 * (disk, change, incompressible share, what was protected) */
	bool suspicious;
	char alarm[400];
	/* the snapshot the guard protected (the last one before the jump) */
	bool has_protected;
	cairn_id protected;
	/* internal: the newest earlier snapshot of the name not suspicious */
	bool has_clean_prev;
	cairn_id clean_prev;
};

/* Building blocks of a backup: start a snapshot and add its disks
 * (repo/snapshot_build.h), then run: every disk is read from its source
 * (unchanged chunks of a source with a dirty map are taken from prev[i],
 * the same disk in the previous snapshot, with its map loaded) and the
 * snapshot is saved. */
int cairn_backup_run(struct cairn_repo *r, struct cairn_snapshot *s,
		     struct cairn_source *const *srcs, const struct cairn_disk *const *prev,
		     const struct cairn_backup_opts *o, struct cairn_backup_result *res,
		     char *err, size_t errlen);

enum cairn_quiesce {
	CAIRN_QUIESCE_NO,
	CAIRN_QUIESCE_YES, /* freeze through the guest agent or fail */
	CAIRN_QUIESCE_AUTO, /* freeze when the agent answers, else crash-consistent */
};

struct cairn_domain_opts {
	const char *uri; /* NULL: qemu:///system */
	const char *domain;
	bool full; /* ignore the previous checkpoint */
	enum cairn_quiesce quiesce;
	/* back up exactly these disks (targets such as vda); NULL: every
	 * writable, unshared disk with a source */
	const char *const *disks;
	size_t ndisks;
	const char *scratch_dir; /* NULL: /var/tmp */
	struct cairn_backup_opts backup; /* backup.name: the snapshot name */
};

/* Backs up a libvirt domain: running or paused through a pull-mode backup
 * with this repository's checkpoints (incremental when the previous
 * snapshot's checkpoint is still valid); shut off by reading its images,
 * incrementally through the persistent qcow2 bitmap of that checkpoint. */
int cairn_backup_domain(struct cairn_repo *r, const struct cairn_domain_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen);

/* Names of every defined domain (running or not) that matches none of the
 * exclude globs, sorted; the caller frees the array and the names. */
int cairn_list_domains(const char *uri, const char *const *exclude, size_t nexclude,
		       char ***names, size_t *n, char *err, size_t errlen);

/* Backs up the disks as one snapshot. The repository must be locked by the
 * caller. */
int cairn_backup_images(struct cairn_repo *r, const struct cairn_backup_disk *disks,
			size_t ndisks, const struct cairn_backup_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen);

#endif
