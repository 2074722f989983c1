/* Backing up a shut-off domain from its images.
 *
 * libvirt cannot create a checkpoint on a shut-off domain, and starting the
 * guest paused just for that would run its firmware and touch its devices.
 * cairn keeps the chain itself, the way libvirt would have: it adds a
 * persistent bitmap named after the new checkpoint to every qcow2 disk
 * (qemu-img bitmap), reads what changed since the previous checkpoint's
 * bitmap through qemu-nbd -B, and REDEFINEs the checkpoint in libvirt so the
 * next backup, running or not, continues from it. libvirt cannot delete a
 * checkpoint of an inactive domain, so the old one is dropped as metadata
 * and its bitmap removed with qemu-img. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>

#include "base/proc.h"
#include "domain.h"

/* QEMU locks bytes 100.. (permissions held) and 200.. (permissions not
 * shared) of every image it opens (block/file-posix.c). */
#define QEMU_LOCK_START 100
#define QEMU_LOCK_LEN 200

/* True when another process (a QEMU, qemu-img, qemu-nbd) has the image
 * open. */
static bool image_in_use(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = QEMU_LOCK_START, .l_len = QEMU_LOCK_LEN };
	return fd >= 0 && fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

struct image_info {
	uint64_t size;
	json_t *bitmaps; /* [{name, flags}], or NULL */
	json_t *root;
};

static int image_info(const char *path, struct image_info *ii, char *err, size_t errlen)
{
	char *argv[] = { "qemu-img", "info", "--output=json", "--", (char *)path, NULL };
	struct buf out = { 0 };
	int rc = run_command(argv, &out, err, errlen);
	if (rc == 0) {
		ii->root = json_loadb((const char *)out.p, out.len, 0, NULL);
		json_int_t size = -1;
		if (!ii->root || json_unpack(ii->root, "{s:I}", "virtual-size", &size) < 0 || size < 0)
			rc = set_err(err, errlen, -EIO, "%s: cannot parse qemu-img info output", path);
		ii->size = (uint64_t)size;
		json_t *fs = json_object_get(ii->root, "format-specific");
		ii->bitmaps = json_object_get(json_object_get(fs, "data"), "bitmaps");
	}
	buf_free(&out);
	return rc;
}

/* True when the image has the bitmap, enabled and not marked in-use (which
 * QEMU leaves when it died with the image open: its contents are lost). */
static bool usable_bitmap(const struct image_info *ii, const char *name)
{
	size_t i;
	json_t *b;
	json_array_foreach(ii->bitmaps, i, b) {
		if (strcmp(json_string_value(json_object_get(b, "name")) ?: "", name))
			continue;
		bool enabled = false, in_use = false;
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(b, "flags"), k, f) {
			enabled |= !strcmp(json_string_value(f) ?: "", "auto");
			in_use |= !strcmp(json_string_value(f) ?: "", "in-use");
		}
		return enabled && !in_use;
	}
	return false;
}

static int bitmap_cmd(const char *op, const char *path, const char *name, char *err,
		      size_t errlen)
{
	char *argv[] = { "qemu-img", "bitmap", (char *)op, "--", (char *)path, (char *)name, NULL };
	return run_command(argv, NULL, err, errlen);
}

struct offline {
	struct domain_job *j;
	struct cairn_snapshot *base; /* with a checkpoint libvirt still has */
	bool added[MAX_DISKS]; /* bitmap j->checkpoint added to disk i */
	bool chained; /* every selected qcow2 disk has the new bitmap */
	bool redefined;
};

static struct cairn_snapshot *offline_base(struct domain_job *j, struct cairn_snapshot *prev)
{
	return prev && domain_checkpoint_usable(j, prev) ? prev : NULL;
}

/* Opens disk d, through the base checkpoint's bitmap when that is sound,
 * after adding the new checkpoint's bitmap (the domain is off, so nothing
 * writes between the two). */
static int open_disk(struct offline *f, size_t i, struct cairn_source **src,
		     const struct cairn_disk **prev)
{
	struct domain_job *j = f->j;
	struct domain_disk *d = &j->disks[i];
	char err2[256];
	*prev = NULL;
	if (d->network)
		return set_err(j->err, j->errlen, -ENOTSUP,
			       "domain %s disk %s: network disks of a shut-off domain cannot be read",
			       j->o->domain, d->target);
	if (image_in_use(d->path))
		/* not -EBUSY: the CLI reports that as a locked repository */
		return set_err(j->err, j->errlen, -ETXTBSY,
			       "domain %s disk %s: %s is in use by another process; not touching it",
			       j->o->domain, d->target, d->path);
	if (!domain_bitmap_capable(d))
		return cairn_source_open(d->path, src, j->err, j->errlen);

	struct image_info ii = { 0 };
	int rc = image_info(d->path, &ii, j->err, j->errlen);
	const struct cairn_disk *pd = f->base ? cairn_snapshot_disk(f->base, d->target) : NULL;
	const char *why = NULL;
	if (rc == 0 && f->base) {
		if (!pd)
			why = "new disk";
		else if (pd->size != ii.size)
			why = "disk resized";
		else if (!usable_bitmap(&ii, f->base->checkpoint))
			why = "its bitmap is missing or inconsistent";
	}
	json_decref(ii.root);
	if (rc < 0)
		return rc;
	if (why)
		domain_notice(j, "domain %s disk %s: full read (%s)", j->o->domain, d->target, why);
	bool incremental = f->base && !why;
	if (bitmap_cmd("--add", d->path, j->checkpoint, err2, sizeof(err2)) == 0)
		f->added[i] = true;
	else if (f->chained) {
		/* the backup still works; the next one is a full read */
		domain_notice(j, "domain %s disk %s: cannot add a bitmap (%s); no checkpoint this time",
			      j->o->domain, d->target, err2);
		f->chained = false;
	}
	if (incremental && (rc = cairn_snapshot_load_map(j->r, (struct cairn_disk *)pd)) < 0)
		return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->r));
	*prev = incremental ? pd : NULL;
	return cairn_source_open_bitmap(d->path, incremental ? f->base->checkpoint : NULL, src,
					j->err, j->errlen);
}

/* Tells libvirt about the checkpoint whose bitmaps were just added. */
static int redefine_checkpoint(struct offline *f, int64_t time_ns)
{
	struct domain_job *j = f->j;
	struct buf b = { 0 };
	char line[512];
	snprintf(line, sizeof(line), "<domaincheckpoint><name>%s</name><creationTime>%lld</creationTime><disks>",
		 j->checkpoint, (long long)(time_ns / 1000000000));
	int rc = buf_append(&b, line, strlen(line));
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		snprintf(line, sizeof(line), "<disk name='%s' checkpoint='%s'/>", j->disks[i].target,
			 f->added[i] ? "bitmap" : "no");
		rc = buf_append(&b, line, strlen(line));
	}
	if (rc == 0)
		rc = buf_append(&b, "</disks></domaincheckpoint>", strlen("</disks></domaincheckpoint>") + 1);
	virDomainCheckpointPtr cp = rc == 0 ? virDomainCheckpointCreateXML(
		j->dom, (const char *)b.p, VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE) : NULL;
	buf_free(&b);
	if (rc < 0)
		return rc;
	if (!cp)
		return set_err(j->err, j->errlen, -EIO, "domain %s: cannot define checkpoint %s: %s",
			       j->o->domain, j->checkpoint, domain_virt_msg());
	virDomainCheckpointFree(cp);
	f->redefined = true;
	return 0;
}

/* Removes this repository's bitmaps other than keep (NULL: all) from the
 * qcow2 disks; other tools' bitmaps are left alone. */
static void remove_own_bitmaps(struct offline *f, const char *keep)
{
	struct domain_job *j = f->j;
	char **in_use = NULL;
	size_t nin = 0;
	if (domain_in_use_checkpoints(j, &in_use, &nin) < 0)
		return;
	for (size_t i = 0; i < j->ndisks; i++) {
		struct domain_disk *d = &j->disks[i];
		struct image_info ii = { 0 };
		char err2[256];
		if (!d->selected || !domain_bitmap_capable(d) ||
		    image_info(d->path, &ii, err2, sizeof(err2)) < 0) {
			json_decref(ii.root);
			continue;
		}
		size_t k;
		json_t *b;
		json_array_foreach(ii.bitmaps, k, b) {
			const char *name = json_string_value(json_object_get(b, "name"));
			if (!name || strncmp(name, j->prefix, strlen(j->prefix)) ||
			    (keep && !strcmp(name, keep)) ||
			    domain_checkpoint_in_use(in_use, nin, name))
				continue;
			if (bitmap_cmd("--remove", d->path, name, err2, sizeof(err2)) < 0)
				domain_notice(j, "domain %s disk %s: cannot remove bitmap %s: %s",
					      j->o->domain, d->target, name, err2);
		}
		json_decref(ii.root);
	}
	domain_free_names(in_use, nin);
}

void domain_remove_bitmaps(struct domain_job *j, const char *name)
{
	for (size_t i = 0; i < j->ndisks; i++)
		if (j->disks[i].selected && !j->disks[i].network &&
		    domain_bitmap_capable(&j->disks[i]))
			bitmap_cmd("--remove", j->disks[i].path, name, NULL, 0);
}

int domain_backup_offline(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res)
{
	struct cairn_source *srcs[MAX_DISKS] = { 0 };
	const struct cairn_disk *prev[MAX_DISKS] = { 0 };
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *last = domain_previous(j);
	struct offline f = { .j = j, .base = offline_base(j, last), .chained = true };
	snprintf(j->checkpoint, sizeof(j->checkpoint), "%s-%lld", j->prefix,
		 (long long)(s->time_ns / 1000000));
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		if (!j->disks[i].selected)
			continue;
		size_t k = s->ndisks;
		rc = open_disk(&f, i, &srcs[k], &prev[k]);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, j->r, j->disks[i].target,
							     j->disks[i].path,
							     cairn_source_format(srcs[k]),
							     cairn_source_size(srcs[k]))) < 0)
			set_err(j->err, j->errlen, rc, "out of memory");
	}
	if (rc == 0 && last) {
		s->has_parent = true;
		s->parent = last->id;
	}
	if (rc == 0 && f.chained) {
		if (redefine_checkpoint(&f, s->time_ns) < 0) {
			domain_notice(j, "%s; the next backup is a full read", j->err);
			f.chained = false;
		} else if (!(s->checkpoint = strdup(j->checkpoint))) {
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && !(s->consistency = strdup("offline")))
		rc = -ENOMEM;
	if (rc == 0)
		rc = cairn_backup_run(j->r, s, srcs, prev, &j->backup, res, j->err, j->errlen);
	for (size_t i = 0; i < MAX_DISKS; i++)
		if (srcs[i])
			cairn_source_close(srcs[i]);
	/* libvirt cannot delete checkpoints of an inactive domain: drop the
	 * metadata here and the bitmaps with qemu-img */
	if (rc == 0) {
		const char *keep = f.chained ? j->checkpoint : NULL;
		domain_delete_own_checkpoints(j, keep, false, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
		remove_own_bitmaps(&f, keep);
		return 0;
	}
	/* failed: the previous chain stays as it was */
	virDomainCheckpointPtr cp = f.redefined
					    ? virDomainCheckpointLookupByName(j->dom, j->checkpoint, 0)
					    : NULL;
	if (cp) {
		virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
		virDomainCheckpointFree(cp);
	}
	for (size_t i = 0; i < j->ndisks; i++)
		if (f.added[i])
			bitmap_cmd("--remove", j->disks[i].path, j->checkpoint, NULL, 0);
	return rc;
}
