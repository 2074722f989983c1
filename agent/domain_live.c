/* Backing up a running (or paused) domain.
 *
 * One virDomainBackupBegin call creates a checkpoint and exports every disk
 * over NBD as it was at that instant (crash-consistent across disks, or
 * application-consistent with the guest agent's freeze around it). The
 * export's dirty bitmap tells an incremental backup which chunks changed
 * since this repository's previous checkpoint; the others keep their ids
 * from the previous snapshot. Whatever goes wrong, the job is ended, the
 * new checkpoint deleted (libvirt merges its bitmap into the parent, so no
 * change is lost) and the scratch files removed. */
#include <errno.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "domain.h"

/* Copy-before-write scratch grows with what the guest overwrites while the
 * backup runs; refuse to start without this share of the disks' size (and
 * at least SCRATCH_MIN) free, rather than fail the guest's writes later. */
#define SCRATCH_SHARE 20 /* 1/20 = 5% */
#define SCRATCH_MIN (64ull << 20)

struct live {
	struct domain_job *j;
	char scratch_dir[256];
	char sock[300];
	bool job_started, checkpoint_created, quiesced;
};

static int xml_append(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int xml_append(struct buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -E2BIG;
	return buf_append(b, tmp, (size_t)n);
}

/* Every disk is listed, so libvirt's defaults never pick one up. */
static int backup_xml(struct live *l, const char *incremental, struct buf *b)
{
	struct domain_job *j = l->j;
	int rc = xml_append(b, "<domainbackup mode='pull'>");
	if (rc == 0 && incremental)
		rc = xml_append(b, "<incremental>%s</incremental>", incremental);
	if (rc == 0)
		rc = xml_append(b, "<server transport='unix' socket='%s'/><disks>", l->sock);
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		const struct domain_disk *d = &j->disks[i];
		if (!d->selected)
			rc = xml_append(b, "<disk name='%s' backup='no'/>", d->target);
		else
			rc = xml_append(b, "<disk name='%s' backup='yes' type='file'%s>"
					   "<scratch file='%s/%s.scratch'/></disk>",
					d->target,
					incremental && d->full ? " backupmode='full'" : "",
					l->scratch_dir, d->target);
	}
	if (rc == 0)
		rc = xml_append(b, "</disks></domainbackup>");
	return rc == 0 ? buf_append(b, "", 1) : rc;
}

static int checkpoint_xml(struct domain_job *j, struct buf *b)
{
	int rc = xml_append(b, "<domaincheckpoint><name>%s</name><disks>", j->checkpoint);
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++)
		rc = xml_append(b, "<disk name='%s' checkpoint='%s'/>", j->disks[i].target,
				j->disks[i].selected && domain_bitmap_capable(&j->disks[i])
					? "bitmap"
					: "no");
	if (rc == 0)
		rc = xml_append(b, "</disks></domaincheckpoint>");
	return rc == 0 ? buf_append(b, "", 1) : rc;
}

/* A pull-mode job left by a cairn that died is still running in libvirt:
 * it blocks every new backup until aborted. */
static void end_stale_job(struct domain_job *j)
{
	virDomainJobInfo info;
	if (virDomainGetJobInfo(j->dom, &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE) {
		char *jobxml = virDomainBackupGetXMLDesc(j->dom, 0);
		/* ours exports on a socket in a cairn scratch directory */
		if (jobxml && strstr(jobxml, "mode='pull'") && strstr(jobxml, "/cairn-")) {
			domain_notice(j, "domain %s: ending a backup job left by an earlier run",
				      j->o->domain);
			virDomainAbortJob(j->dom);
		}
		free(jobxml);
	}
}

/* libvirt 9.0's backup API has no quiesce flag: freeze through the guest
 * agent for the instant of the checkpoint. Returns 1 when frozen. */
static int freeze(struct live *l)
{
	struct domain_job *j = l->j;
	int state = VIR_DOMAIN_NOSTATE;
	if (j->o->quiesce == CAIRN_QUIESCE_NO)
		return 0;
	const char *why = NULL;
	if (virDomainGetState(j->dom, &state, NULL, 0) == 0 && state == VIR_DOMAIN_PAUSED)
		why = "the domain is paused";
	else if (virDomainFSFreeze(j->dom, NULL, 0, 0) < 0)
		why = domain_virt_msg();
	if (!why)
		return 1;
	if (j->o->quiesce == CAIRN_QUIESCE_AUTO) {
		domain_notice(j, "domain %s: cannot quiesce (%s); the backup is crash-consistent",
			      j->o->domain, why);
		return 0;
	}
	return set_err(j->err, j->errlen, -EIO,
		       "domain %s: cannot quiesce: %s (--quiesce=auto falls back to a crash-consistent backup)",
		       j->o->domain, why);
}

/* A domain with firmware state is paused around the checkpoint: QEMU
 * drains and flushes its block devices (the NVRAM pflash among them) when
 * it stops the vCPUs, and no vCPU can send swtpm a command, so the files
 * read meanwhile are those of the checkpoint instant. Returns 1 when this
 * paused it (an already paused domain is left as it is). */
static int pause_for_firmware(struct live *l)
{
	struct domain_job *j = l->j;
	int state = VIR_DOMAIN_NOSTATE;
	if (!domain_firmware_any(j))
		return 0;
	if (virDomainGetState(j->dom, &state, NULL, 0) == 0 && state == VIR_DOMAIN_PAUSED)
		return 0;
	if (virDomainSuspend(j->dom) < 0)
		return set_err(j->err, j->errlen, -EIO,
			       "domain %s: cannot pause it to read its firmware state: %s",
			       j->o->domain, domain_virt_msg());
	return 1;
}

static int start_job(struct live *l, const char *incremental)
{
	struct domain_job *j = l->j;
	struct buf bx = { 0 }, cx = { 0 };
	int rc = backup_xml(l, incremental, &bx);
	if (rc == 0)
		rc = checkpoint_xml(j, &cx);
	int frozen = rc == 0 ? freeze(l) : 0;
	if (frozen < 0)
		rc = frozen;
	int paused = rc == 0 ? pause_for_firmware(l) : 0;
	if (paused < 0)
		rc = paused;
	int begun = rc == 0 ? virDomainBackupBegin(j->dom, (const char *)bx.p, (const char *)cx.p, 0) : 0;
	/* the firmware state of the checkpoint instant: the vCPUs that write
	 * it are still stopped */
	int captured = rc == 0 && begun >= 0 ? domain_firmware_capture(j) : 0;
	if (paused > 0 && virDomainResume(j->dom) < 0)
		domain_notice(j, "domain %s: cannot resume it after the checkpoint: %s",
			      j->o->domain, domain_virt_msg());
	if (frozen > 0 && virDomainFSThaw(j->dom, NULL, 0, 0) < 0)
		domain_notice(j, "domain %s: cannot thaw the guest filesystems: %s", j->o->domain,
			      domain_virt_msg());
	if (rc == 0 && begun >= 0 && captured < 0) {
		l->job_started = l->checkpoint_created = true;
		rc = captured;
	} else if (rc == 0 && begun < 0) {
		virErrorPtr e = virGetLastError();
		rc = e && e->code == VIR_ERR_CHECKPOINT_INCONSISTENT ? -ESTALE : -EIO;
		set_err(j->err, j->errlen, rc, "domain %s: cannot start the backup: %s",
			j->o->domain, domain_virt_msg());
		/* a guest dying during the call can leave the checkpoint behind */
		domain_delete_checkpoint(j, j->checkpoint);
	} else if (rc == 0) {
		l->job_started = l->checkpoint_created = true;
		l->quiesced = frozen > 0;
	}
	buf_free(&bx);
	buf_free(&cx);
	return rc;
}

/* Which disks can be read incrementally from base's checkpoint: the ones
 * that carry its bitmap and kept their size; the others are read in full
 * (deduplicated) and say why. */
static void plan_disks(struct domain_job *j, const struct cairn_snapshot *base)
{
	for (size_t i = 0; i < j->ndisks; i++) {
		struct domain_disk *d = &j->disks[i];
		const struct cairn_disk *pd = base ? cairn_snapshot_disk(base, d->target) : NULL;
		d->full = true;
		d->why_full = NULL;
		if (!d->selected || !base || !domain_bitmap_capable(d))
			continue;
		if (!pd)
			d->why_full = "new disk";
		else if (pd->size != d->capacity)
			d->why_full = "disk resized";
		else if (!domain_checkpoint_covers(j, base->checkpoint, d->target))
			d->why_full = "no bitmap in the previous checkpoint";
		else
			d->full = false;
		if (d->why_full)
			domain_notice(j, "domain %s disk %s: full read (%s)", j->o->domain, d->target,
				      d->why_full);
	}
}

/* Whether the previous snapshot of this domain in this repository can be
 * the base of an incremental: libvirt must still have its checkpoint.
 * Checkpoints of ours other than that one were left by runs that failed
 * before cleaning up: they are deleted (which merges their bitmaps into
 * their parent). */
static bool usable_base(struct domain_job *j, const struct cairn_snapshot *prev)
{
	domain_delete_own_checkpoints(j, NULL, false, 0);
	return prev && domain_checkpoint_usable(j, prev);
}

static int measure_disks(struct domain_job *j, uint64_t *total)
{
	*total = 0;
	for (size_t i = 0; i < j->ndisks; i++) {
		virDomainBlockInfo info;
		if (!j->disks[i].selected)
			continue;
		if (virDomainGetBlockInfo(j->dom, j->disks[i].target, &info, 0) < 0)
			return set_err(j->err, j->errlen, -EIO, "domain %s disk %s: %s",
				       j->o->domain, j->disks[i].target, domain_virt_msg());
		j->disks[i].capacity = info.capacity;
		*total += info.capacity;
	}
	return 0;
}

/* QEMU (user libvirt-qemu) creates the socket and scratch files in a
 * private directory of ours. */
static int make_scratch(struct live *l, uint64_t disk_bytes)
{
	struct domain_job *j = l->j;
	const char *dir = j->o->scratch_dir ? j->o->scratch_dir : "/var/tmp";
	struct statvfs vfs;
	if (statvfs(dir, &vfs) < 0)
		return set_err(j->err, j->errlen, -errno, "scratch directory %s: %s", dir,
			       strerror(errno));
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	uint64_t need = MAX(SCRATCH_MIN, disk_bytes / SCRATCH_SHARE);
	if (avail < need)
		return set_err(j->err, j->errlen, -ENOSPC,
			       "scratch directory %s has %llu MiB free; the backup of %s needs %llu MiB (--scratch-dir)",
			       dir, (unsigned long long)(avail >> 20), j->o->domain,
			       (unsigned long long)(need >> 20));
	if ((size_t)snprintf(l->scratch_dir, sizeof(l->scratch_dir), "%s/cairn-XXXXXX", dir) >=
	    sizeof(l->scratch_dir) - 16)
		return set_err(j->err, j->errlen, -ENAMETOOLONG, "scratch directory path too long");
	if (!mkdtemp(l->scratch_dir)) {
		l->scratch_dir[0] = '\0';
		return set_err(j->err, j->errlen, -errno, "cannot create a scratch directory in %s: %s",
			       dir, strerror(errno));
	}
	chmod(l->scratch_dir, 0777);
	snprintf(l->sock, sizeof(l->sock), "%s/nbd.sock", l->scratch_dir);
	return 0;
}

static void live_cleanup(struct live *l, bool ok)
{
	struct domain_job *j = l->j;
	if (l->job_started)
		virDomainAbortJob(j->dom);
	if (!ok && l->checkpoint_created)
		domain_delete_checkpoint(j, j->checkpoint);
	if (!l->scratch_dir[0])
		return;
	for (size_t i = 0; i < j->ndisks; i++) {
		char p[300];
		snprintf(p, sizeof(p), "%s/%s.scratch", l->scratch_dir, j->disks[i].target);
		unlink(p);
	}
	unlink(l->sock);
	rmdir(l->scratch_dir);
}

/* Opens every selected disk's export and adds it to the snapshot. */
static int open_exports(struct live *l, struct cairn_snapshot *s, const struct cairn_snapshot *base,
			struct cairn_source **srcs, const struct cairn_disk **prev)
{
	struct domain_job *j = l->j;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		const struct domain_disk *d = &j->disks[i];
		if (!d->selected)
			continue;
		size_t k = s->ndisks;
		struct cairn_disk *pd = base && !d->full
						? (struct cairn_disk *)cairn_snapshot_disk(base, d->target)
						: NULL;
		if (pd && (rc = cairn_snapshot_load_map(j->r, pd)) < 0)
			return set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->r));
		char bitmap[80], label[160];
		snprintf(bitmap, sizeof(bitmap), "backup-%s", d->target);
		snprintf(label, sizeof(label), "%s disk %s", j->o->domain, d->target);
		rc = cairn_source_open_export(l->sock, d->target, pd ? bitmap : NULL, label,
					      &srcs[k], j->err, j->errlen);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, j->r, d->target, d->path, d->format,
							     cairn_source_size(srcs[k]))) < 0)
			set_err(j->err, j->errlen, rc, "out of memory");
		if (rc == 0)
			prev[k] = pd;
	}
	return rc;
}

int domain_backup_running(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res)
{
	struct cairn_source *srcs[MAX_DISKS] = { 0 };
	const struct cairn_disk *prev[MAX_DISKS] = { 0 };
	struct live l = { .j = j };
	uint64_t disk_bytes;
	snprintf(j->checkpoint, sizeof(j->checkpoint), "%s-%lld", j->prefix,
		 (long long)(s->time_ns / 1000000));
	int rc = measure_disks(j, &disk_bytes);
	if (rc == 0)
		rc = make_scratch(&l, disk_bytes);
	if (rc < 0)
		return rc;

	end_stale_job(j);
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *last = domain_previous(j);
	const struct cairn_snapshot *base = usable_base(j, last) ? last : NULL;
	plan_disks(j, base);
	rc = start_job(&l, base ? base->checkpoint : NULL);
	if (rc == -ESTALE) {
		/* bitmaps lost (QEMU crashed): libvirt still lists the
		 * checkpoints; drop their metadata and start a new chain */
		domain_notice(j, "domain %s: checkpoint bitmaps are inconsistent; full read, new chain",
			      j->o->domain);
		domain_delete_own_checkpoints(j, NULL, true, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
		base = NULL;
		plan_disks(j, NULL);
		rc = start_job(&l, NULL);
	}
	if (rc == 0)
		rc = open_exports(&l, s, base, srcs, prev);
	if (rc == 0 && last) {
		s->has_parent = true;
		s->parent = last->id;
	}
	if (rc == 0 && (!(s->checkpoint = strdup(j->checkpoint)) ||
			!(s->consistency = strdup(l.quiesced ? "quiesced" : "crash"))))
		rc = -ENOMEM;
	if (rc == 0)
		rc = cairn_backup_run(j->r, s, srcs, prev, &j->backup, res, j->err, j->errlen);
	for (size_t i = 0; i < MAX_DISKS; i++)
		if (srcs[i])
			cairn_source_close(srcs[i]);
	live_cleanup(&l, rc == 0);
	if (rc == 0) /* the new checkpoint is the base of the next run */
		domain_delete_own_checkpoints(j, j->checkpoint, false, 0);
	return rc;
}
