/* Backing up libvirt domains.
 *
 * A running (or paused) domain is read through a libvirt pull-mode backup:
 * one virDomainBackupBegin call creates a checkpoint and exports every disk
 * over NBD as it was at that instant (crash-consistent across disks). The
 * export's dirty bitmap tells an incremental backup which chunks changed
 * since this repository's previous checkpoint; the others keep their ids
 * from the previous snapshot. Checkpoints are named "cairn-<repo id>-..."
 * so each repository keeps its own chain and other tools' checkpoints are
 * left alone.
 *
 * A shut-off domain's disk images are read directly (full read, deduped). */
#include <errno.h>
#include <fnmatch.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <sys/stat.h>

#include "agent.h"

#define MAX_DISKS 64

struct domain_disk {
	char *target; /* vda */
	char *path; /* image file or block device */
	char *format; /* qcow2, raw, ... */
};

struct domain_job {
	struct cairn_repo *r;
	const struct cairn_domain_opts *o;
	virConnectPtr conn;
	virDomainPtr dom;
	char *xml;
	struct domain_disk disks[MAX_DISKS];
	size_t ndisks;
	char prefix[64]; /* checkpoint names of this repository */
	char checkpoint[128]; /* the one this backup creates */
	bool job_started, checkpoint_created;
	char scratch_dir[64];
	char *err;
	size_t errlen;
};

/* libvirt prints errors on stderr unless told otherwise; cairn reports
 * them itself. */
static void quiet_libvirt(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static const char *virt_msg(void)
{
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

static void notice(const struct domain_job *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(const struct domain_job *j, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	if (!j->o->backup.notice)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	j->o->backup.notice(j->o->backup.notice_opaque, line);
}

static char *xml_attr(xmlNodePtr n, const char *child, const char *attr)
{
	for (xmlNodePtr c = n->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, child))
			continue;
		xmlChar *v = xmlGetProp(c, (const xmlChar *)attr);
		if (!v)
			continue;
		char *s = strdup((const char *)v);
		xmlFree(v);
		return s;
	}
	return NULL;
}

/* The disks (device='disk') of the domain definition, in order. */
static int parse_disks(struct domain_job *j)
{
	xmlDocPtr doc = xmlReadMemory(j->xml, (int)strlen(j->xml), "domain.xml", NULL,
				      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return set_err(j->err, j->errlen, -EBADMSG, "cannot parse the XML of domain %s",
			       j->o->domain);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr res = ctx ? xmlXPathEvalExpression(
		(const xmlChar *)"/domain/devices/disk[@device='disk']", ctx) : NULL;
	int rc = 0;
	for (int i = 0; res && res->nodesetval && i < res->nodesetval->nodeNr; i++) {
		xmlNodePtr n = res->nodesetval->nodeTab[i];
		if (j->ndisks == MAX_DISKS) {
			rc = set_err(j->err, j->errlen, -E2BIG, "domain %s has too many disks",
				     j->o->domain);
			break;
		}
		struct domain_disk *d = &j->disks[j->ndisks];
		d->target = xml_attr(n, "target", "dev");
		d->path = xml_attr(n, "source", "file");
		if (!d->path)
			d->path = xml_attr(n, "source", "dev");
		d->format = xml_attr(n, "driver", "type");
		if (!d->target || !d->path) {
			rc = set_err(j->err, j->errlen, -ENOTSUP,
				     "domain %s: disk %s has no local file or device source (network disks are not supported)",
				     j->o->domain, d->target ? d->target : "?");
			j->ndisks++;
			break;
		}
		if (!d->format && !(d->format = strdup("raw")))
			rc = -ENOMEM;
		j->ndisks++;
	}
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	if (rc == 0 && !j->ndisks)
		rc = set_err(j->err, j->errlen, -ENOENT, "domain %s has no disks", j->o->domain);
	return rc;
}

static bool bitmap_capable(const struct domain_disk *d)
{
	return !strcmp(d->format, "qcow2");
}

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

/* Names in XML come from the domain definition (targets) or from us:
 * neither holds characters that need escaping, which is checked here. */
static bool xml_safe(const char *s)
{
	return strcspn(s, "<>&'\"") == strlen(s);
}

static int backup_xml(struct domain_job *j, const char *incremental, const char *sock,
		      struct buf *b)
{
	int rc = xml_append(b, "<domainbackup mode='pull'>");
	if (rc == 0 && incremental)
		rc = xml_append(b, "<incremental>%s</incremental>", incremental);
	if (rc == 0)
		rc = xml_append(b, "<server transport='unix' socket='%s'/><disks>", sock);
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		const struct domain_disk *d = &j->disks[i];
		rc = xml_append(b, "<disk name='%s' backup='yes' type='file'%s>"
				   "<scratch file='%s/%s.scratch'/></disk>",
				d->target,
				incremental && !bitmap_capable(d) ? " backupmode='full'" : "",
				j->scratch_dir, d->target);
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
				bitmap_capable(&j->disks[i]) ? "bitmap" : "no");
	if (rc == 0)
		rc = xml_append(b, "</disks></domaincheckpoint>");
	return rc == 0 ? buf_append(b, "", 1) : rc;
}

static void delete_checkpoint(struct domain_job *j, const char *name, unsigned flags)
{
	virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(j->dom, name, 0);
	if (!cp)
		return;
	if (virDomainCheckpointDelete(cp, flags) < 0)
		notice(j, "cannot delete checkpoint %s: %s", name, virt_msg());
	virDomainCheckpointFree(cp);
}

/* Deletes this repository's checkpoints except keep (NULL: all). */
static void delete_own_checkpoints(struct domain_job *j, const char *keep, unsigned flags)
{
	virDomainCheckpointPtr *cps = NULL;
	int n = virDomainListAllCheckpoints(j->dom, &cps, 0);
	for (int i = 0; i < n; i++) {
		const char *name = virDomainCheckpointGetName(cps[i]);
		if (name && !strncmp(name, j->prefix, strlen(j->prefix)) &&
		    (!keep || strcmp(name, keep)))
			if (virDomainCheckpointDelete(cps[i], flags) < 0)
				notice(j, "cannot delete checkpoint %s: %s", name, virt_msg());
		virDomainCheckpointFree(cps[i]);
	}
	free(cps);
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
			notice(j, "domain %s: ending a backup job left by an earlier run", j->o->domain);
			virDomainAbortJob(j->dom);
		}
		free(jobxml);
	}
}

/* libvirt 9.0's backup API has no quiesce flag: freeze through the guest
 * agent for the instant of the checkpoint. Without a usable agent the
 * backup goes on crash-consistent, with a note (a nightly must not fail). */
static bool freeze(struct domain_job *j)
{
	int state = VIR_DOMAIN_NOSTATE;
	if (!j->o->quiesce || virDomainGetState(j->dom, &state, NULL, 0) < 0 ||
	    state == VIR_DOMAIN_PAUSED)
		return false;
	if (virDomainFSFreeze(j->dom, NULL, 0, 0) < 0) {
		notice(j, "domain %s: cannot quiesce (%s); the backup is crash-consistent",
		       j->o->domain, virt_msg());
		return false;
	}
	return true;
}

static int start_job(struct domain_job *j, const char *incremental, const char *sock)
{
	struct buf bx = { 0 }, cx = { 0 };
	int rc = backup_xml(j, incremental, sock, &bx);
	if (rc == 0)
		rc = checkpoint_xml(j, &cx);
	bool frozen = rc == 0 && freeze(j);
	int begun = rc == 0 ? virDomainBackupBegin(j->dom, (const char *)bx.p, (const char *)cx.p, 0) : 0;
	if (frozen && virDomainFSThaw(j->dom, NULL, 0, 0) < 0)
		notice(j, "domain %s: cannot thaw the guest filesystems: %s", j->o->domain, virt_msg());
	if (rc == 0 && begun < 0) {
		virErrorPtr e = virGetLastError();
		rc = e && e->code == VIR_ERR_CHECKPOINT_INCONSISTENT ? -ESTALE : -EIO;
		set_err(j->err, j->errlen, rc, "domain %s: cannot start the backup: %s",
			j->o->domain, virt_msg());
	} else if (rc == 0) {
		j->job_started = j->checkpoint_created = true;
	}
	buf_free(&bx);
	buf_free(&cx);
	return rc;
}

/* The previous snapshot of this domain in this repository whose
 * checkpoint libvirt still has: the base of an incremental. Checkpoints of
 * ours other than the previous snapshot's were left by runs that failed
 * before cleaning up: they are deleted (which merges their bitmaps into
 * their parent, so no change is lost). */
static struct cairn_snapshot *incremental_base(struct domain_job *j)
{
	struct cairn_snapshot *prev = NULL;
	if (cairn_snapshot_find(j->r, "latest", j->o->backup.name, &prev) < 0) {
		delete_own_checkpoints(j, NULL, 0);
		return NULL;
	}
	delete_own_checkpoints(j, prev->checkpoint, 0);
	const char *why = NULL;
	virDomainCheckpointPtr cp = NULL;
	if (j->o->full)
		why = "--full given";
	else if (!prev->checkpoint || strncmp(prev->checkpoint, j->prefix, strlen(j->prefix)))
		why = "the previous snapshot has no checkpoint";
	else if (!(cp = virDomainCheckpointLookupByName(j->dom, prev->checkpoint, 0)))
		why = "its checkpoint is gone from libvirt";
	if (cp)
		virDomainCheckpointFree(cp);
	if (why) {
		if (!j->o->full)
			notice(j, "domain %s: full read (%s)", j->o->domain, why);
		cairn_snapshot_free(prev);
		return NULL;
	}
	return prev;
}

static void job_cleanup(struct domain_job *j, bool ok)
{
	if (j->job_started)
		virDomainAbortJob(j->dom);
	if (!ok && j->checkpoint_created)
		delete_checkpoint(j, j->checkpoint, 0);
	for (size_t i = 0; i < j->ndisks && j->scratch_dir[0]; i++) {
		char p[128];
		snprintf(p, sizeof(p), "%s/%s.scratch", j->scratch_dir, j->disks[i].target);
		unlink(p);
	}
	if (j->scratch_dir[0]) {
		char p[128];
		snprintf(p, sizeof(p), "%s/nbd.sock", j->scratch_dir);
		unlink(p);
		rmdir(j->scratch_dir);
	}
}

static int backup_running(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res)
{
	struct cairn_source *srcs[MAX_DISKS] = { 0 };
	const struct cairn_disk *prev_disks[MAX_DISKS] = { 0 };
	char sock[128];
	/* QEMU (user libvirt-qemu) creates the socket and scratch files */
	snprintf(j->scratch_dir, sizeof(j->scratch_dir), "%s/cairn-XXXXXX",
		 j->o->scratch_dir ? j->o->scratch_dir : "/var/tmp");
	if (!mkdtemp(j->scratch_dir)) {
		j->scratch_dir[0] = '\0';
		return set_err(j->err, j->errlen, -errno, "cannot create a scratch directory: %s",
			       strerror(errno));
	}
	chmod(j->scratch_dir, 0777);
	snprintf(sock, sizeof(sock), "%s/nbd.sock", j->scratch_dir);
	snprintf(j->checkpoint, sizeof(j->checkpoint), "%s-%lld", j->prefix,
		 (long long)(s->time_ns / 1000000));

	end_stale_job(j);
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *base = incremental_base(j);
	int rc = start_job(j, base ? base->checkpoint : NULL, sock);
	if (rc == -ESTALE) {
		/* bitmaps lost (QEMU crashed): libvirt still lists the
		 * checkpoints; drop their metadata and start a new chain */
		notice(j, "domain %s: checkpoint bitmaps are inconsistent; full read, new chain",
		       j->o->domain);
		delete_own_checkpoints(j, NULL, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY);
		cairn_snapshot_free(TAKE_PTR(base));
		rc = start_job(j, NULL, sock);
	}
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		const struct domain_disk *d = &j->disks[i];
		const struct cairn_disk *pd = base ? cairn_snapshot_disk(base, d->target) : NULL;
		char bitmap[80], label[160];
		bool incremental = pd && bitmap_capable(d);
		if (incremental && (rc = cairn_snapshot_load_map(j->r, (struct cairn_disk *)pd)) < 0) {
			set_err(j->err, j->errlen, rc, "%s", cairn_repo_error(j->r));
			break;
		}
		snprintf(bitmap, sizeof(bitmap), "backup-%s", d->target);
		snprintf(label, sizeof(label), "%s disk %s", j->o->domain, d->target);
		rc = cairn_source_open_export(sock, d->target, incremental ? bitmap : NULL, label,
					      &srcs[i], j->err, j->errlen);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, j->r, d->target, d->path, srcs[i])) < 0)
			set_err(j->err, j->errlen, rc, "out of memory");
		if (rc == 0) {
			free(s->disks[i].format);
			s->disks[i].format = strdup(d->format);
			prev_disks[i] = incremental ? pd : NULL;
		}
	}
	if (rc == 0 && base) {
		s->has_parent = true;
		s->parent = base->id;
	}
	if (rc == 0 && !(s->checkpoint = strdup(j->checkpoint)))
		rc = -ENOMEM;
	if (rc == 0)
		rc = cairn_backup_run(j->r, s, srcs, prev_disks, &j->o->backup, res, j->err, j->errlen);
	for (size_t i = 0; i < j->ndisks; i++)
		if (srcs[i])
			cairn_source_close(srcs[i]);
	job_cleanup(j, rc == 0);
	if (rc == 0) /* the new checkpoint is the base of the next run */
		delete_own_checkpoints(j, j->checkpoint, 0);
	return rc;
}

static int backup_offline(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res)
{
	struct cairn_source *srcs[MAX_DISKS] = { 0 };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < j->ndisks; i++) {
		rc = cairn_source_open(j->disks[i].path, &srcs[i], j->err, j->errlen);
		if (rc == 0 && (rc = cairn_snapshot_add_disk(s, j->r, j->disks[i].target,
							     j->disks[i].path, srcs[i])) < 0)
			set_err(j->err, j->errlen, rc, "out of memory");
	}
	struct cairn_snapshot *prev = NULL;
	if (rc == 0 && cairn_snapshot_find(j->r, "latest", j->o->backup.name, &prev) == 0) {
		s->has_parent = true;
		s->parent = prev->id;
		cairn_snapshot_free(prev);
	}
	if (rc == 0)
		rc = cairn_backup_run(j->r, s, srcs, NULL, &j->o->backup, res, j->err, j->errlen);
	for (size_t i = 0; i < j->ndisks; i++)
		if (srcs[i])
			cairn_source_close(srcs[i]);
	return rc;
}

static void job_free(struct domain_job *j)
{
	for (size_t i = 0; i < j->ndisks; i++) {
		free(j->disks[i].target);
		free(j->disks[i].path);
		free(j->disks[i].format);
	}
	free(j->xml);
	if (j->dom)
		virDomainFree(j->dom);
	if (j->conn)
		virConnectClose(j->conn);
}

int cairn_backup_domain(struct cairn_repo *r, const struct cairn_domain_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen)
{
	struct domain_job j = { .r = r, .o = o, .err = err, .errlen = errlen };
	memset(res, 0, sizeof(*res));
	virSetErrorFunc(NULL, quiet_libvirt);
	snprintf(j.prefix, sizeof(j.prefix), "cairn-%.16s", cairn_repo_id(r));
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = calloc(1, sizeof(*s));
	int rc = s ? 0 : -ENOMEM;
	if (rc == 0 && !(j.conn = virConnectOpen(o->uri ? o->uri : "qemu:///system")))
		rc = set_err(err, errlen, -ECONNREFUSED, "cannot connect to libvirt at %s: %s",
			     o->uri ? o->uri : "qemu:///system", virt_msg());
	if (rc == 0 && !(j.dom = virDomainLookupByName(j.conn, o->domain)))
		rc = set_err(err, errlen, -ENOENT, "no domain %s: %s", o->domain, virt_msg());
	int state = VIR_DOMAIN_NOSTATE;
	if (rc == 0 && virDomainGetState(j.dom, &state, NULL, 0) < 0)
		rc = set_err(err, errlen, -EIO, "domain %s: %s", o->domain, virt_msg());
	/* the inactive definition is what a restore defines again */
	if (rc == 0 && !(j.xml = virDomainGetXMLDesc(j.dom, VIR_DOMAIN_XML_INACTIVE)))
		rc = set_err(err, errlen, -EIO, "domain %s: %s", o->domain, virt_msg());
	if (rc == 0)
		rc = parse_disks(&j);
	for (size_t i = 0; rc == 0 && i < j.ndisks; i++)
		if (!xml_safe(j.disks[i].target))
			rc = set_err(err, errlen, -EINVAL, "domain %s: odd disk name %s", o->domain,
				     j.disks[i].target);
	if (rc == 0 && (rc = cairn_snapshot_begin(s, "domain", &o->backup, j.ndisks)) < 0)
		set_err(err, errlen, rc, "out of memory");
	if (rc == 0 && !(s->domain_xml = strdup(j.xml)))
		rc = -ENOMEM;
	if (rc == 0) {
		bool live = state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED;
		rc = live ? backup_running(&j, s, res) : backup_offline(&j, s, res);
	}
	job_free(&j);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool excluded(const char *name, const char *const *exclude, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!fnmatch(exclude[i], name, 0))
			return true;
	return false;
}

int cairn_list_domains(const char *uri, const char *const *exclude, size_t nexclude,
		       char ***names, size_t *n, char *err, size_t errlen)
{
	virSetErrorFunc(NULL, quiet_libvirt);
	virConnectPtr conn = virConnectOpen(uri ? uri : "qemu:///system");
	if (!conn)
		return set_err(err, errlen, -ECONNREFUSED, "cannot connect to libvirt at %s: %s",
			       uri ? uri : "qemu:///system", virt_msg());
	virDomainPtr *doms = NULL;
	int count = virConnectListAllDomains(conn, &doms, 0);
	int rc = count < 0 ? set_err(err, errlen, -EIO, "cannot list domains: %s", virt_msg()) : 0;
	char **v = calloc((size_t)(count > 0 ? count : 0) + 1, sizeof(*v));
	size_t k = 0;
	if (rc == 0 && !v)
		rc = -ENOMEM;
	for (int i = 0; i < count; i++) {
		const char *name = virDomainGetName(doms[i]);
		if (rc == 0 && name && !excluded(name, exclude, nexclude) && !(v[k++] = strdup(name)))
			rc = -ENOMEM;
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(conn);
	if (rc < 0) {
		for (size_t i = 0; v && i < k; i++)
			free(v[i]);
		free(v);
		return rc;
	}
	qsort(v, k, sizeof(*v), cmp_str);
	*names = v;
	*n = k;
	return 0;
}
