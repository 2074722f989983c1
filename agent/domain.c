/* Backing up libvirt domains: what the running and shut-off paths share.
 *
 * Checkpoints are named "cairn-<repo id>-<ms>", so each repository keeps
 * its own chain on a domain and other tools' checkpoints are left alone.
 * A running (or paused) domain is read through a pull-mode backup
 * (domain_live.c); a shut-off one from its images (domain_offline.c). */
#include <errno.h>
#include <fnmatch.h>
#include <libvirt/virterror.h>
#include <stdio.h>

#include "domain.h"
#include "base/xml.h"

/* libvirt prints errors on stderr unless told otherwise; cairn reports
 * them itself. */
static void quiet_libvirt(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

const char *domain_virt_msg(void)
{
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

void domain_notice(const struct domain_job *j, const char *fmt, ...)
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

bool domain_bitmap_capable(const struct domain_disk *d)
{
	return !strcmp(d->format, "qcow2");
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

static bool has_child(xmlNodePtr n, const char *child)
{
	for (xmlNodePtr c = n->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, child))
			return true;
	return false;
}

static bool named(const struct domain_job *j, const char *target)
{
	for (size_t i = 0; i < j->o->ndisks; i++)
		if (!strcmp(j->o->disks[i], target))
			return true;
	return false;
}

/* Names in XML come from the domain definition (targets) or from us:
 * neither holds characters that need escaping, which is checked here. */
static bool xml_safe(const char *s)
{
	return strcspn(s, "<>&'\"") == strlen(s);
}

/* One <disk> of the definition. Backed up by default: device='disk' with a
 * source, neither read-only nor shareable (a shared disk belongs to a
 * cluster, not to this VM); --disk overrides the default. */
static int parse_disk(struct domain_job *j, xmlNodePtr n, struct domain_disk *d)
{
	xmlChar *device = xmlGetProp(n, (const xmlChar *)"device");
	xmlChar *type = xmlGetProp(n, (const xmlChar *)"type");
	bool is_disk = !device || !strcmp((const char *)device, "disk") ||
		       !strcmp((const char *)device, "lun");
	d->network = type && !strcmp((const char *)type, "network");
	xmlFree(device);
	xmlFree(type);
	d->target = xml_attr(n, "target", "dev");
	if (!d->target)
		return set_err(j->err, j->errlen, -EBADMSG, "domain %s: a disk has no target",
			       j->o->domain);
	if (!xml_safe(d->target))
		return set_err(j->err, j->errlen, -EINVAL, "domain %s: odd disk name %s",
			       j->o->domain, d->target);
	if (d->network) {
		char *proto = xml_attr(n, "source", "protocol");
		char *name = xml_attr(n, "source", "name");
		/* informational: where the data lives (an NBD disk may have no name) */
		if (proto && asprintf(&d->path, "%s:%s", proto, name ? name : "") < 0)
			d->path = NULL;
		free(proto);
		free(name);
	} else if (!(d->path = xml_attr(n, "source", "file"))) {
		d->path = xml_attr(n, "source", "dev");
	}
	d->format = xml_attr(n, "driver", "type");
	if (!d->format && !(d->format = strdup("raw")))
		return -ENOMEM;
	bool writable = !has_child(n, "readonly") && !has_child(n, "shareable");
	d->selected = j->o->ndisks ? named(j, d->target) : is_disk && writable && d->path;
	if (d->selected && (!is_disk || !d->path))
		return set_err(j->err, j->errlen, -EINVAL,
			       "domain %s: disk %s is %s and cannot be backed up", j->o->domain,
			       d->target, is_disk ? "empty" : "a cdrom or floppy");
	return 0;
}

static int parse_disks(struct domain_job *j)
{
	xmlDocPtr doc = xml_parse(j->xml, 0);
	if (!doc)
		return set_err(j->err, j->errlen, -EBADMSG, "cannot parse the XML of domain %s",
			       j->o->domain);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr res = ctx ? xmlXPathEvalExpression(
		(const xmlChar *)"/domain/devices/disk", ctx) : NULL;
	int rc = res ? 0 : -ENOMEM;
	size_t selected = 0;
	for (int i = 0; rc == 0 && res->nodesetval && i < res->nodesetval->nodeNr; i++) {
		if (j->ndisks == MAX_DISKS) {
			rc = set_err(j->err, j->errlen, -E2BIG, "domain %s has too many disks",
				     j->o->domain);
			break;
		}
		rc = parse_disk(j, res->nodesetval->nodeTab[i], &j->disks[j->ndisks++]);
		selected += rc == 0 && j->disks[j->ndisks - 1].selected;
	}
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	for (size_t i = 0; rc == 0 && i < j->o->ndisks; i++) {
		bool found = false;
		for (size_t k = 0; k < j->ndisks; k++)
			found |= !strcmp(j->disks[k].target, j->o->disks[i]);
		if (!found)
			rc = set_err(j->err, j->errlen, -ENOENT, "domain %s has no disk %s",
				     j->o->domain, j->o->disks[i]);
	}
	if (rc == 0 && !selected)
		rc = set_err(j->err, j->errlen, -ENOENT, "domain %s has no disk to back up",
			     j->o->domain);
	return rc;
}

/* The newest readable snapshot: a damaged newer one (a repository warning)
 * cannot be built on, and the dirty bitmap since an older checkpoint, where
 * it is still there, holds every change since. */
struct cairn_snapshot *domain_previous(struct domain_job *j)
{
	struct cairn_snapshot *prev = NULL;
	if (cairn_snapshot_find(j->r, "latest-readable", j->o->backup.name, &prev) < 0)
		return NULL;
	return prev;
}

/* libvirt deletes checkpoints (and their bitmaps) of running domains only;
 * for a shut-off one (or one that died under the backup) the metadata goes
 * and the bitmaps are removed from the images. */
static void delete_one(struct domain_job *j, virDomainCheckpointPtr cp, unsigned flags)
{
	const char *name = virDomainCheckpointGetName(cp);
	if (virDomainCheckpointDelete(cp, flags) == 0)
		return;
	if (!(flags & VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) &&
	    virDomainIsActive(j->dom) == 0 &&
	    virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) == 0) {
		domain_remove_bitmaps(j, name);
		return;
	}
	domain_notice(j, "cannot delete checkpoint %s: %s", name, domain_virt_msg());
}

void domain_delete_checkpoint(struct domain_job *j, const char *name)
{
	virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(j->dom, name, 0);
	if (cp) {
		delete_one(j, cp, 0);
		virDomainCheckpointFree(cp);
	}
}

/* Checkpoints this repository still builds on: the one of the latest
 * snapshot of every name (one domain may be backed up under several). */
static int in_use_checkpoints(struct domain_job *j, char ***out, size_t *n)
{
	struct cairn_snapshot **v;
	size_t count;
	*out = NULL;
	*n = 0;
	int rc = cairn_snapshot_list(j->r, &v, &count);
	if (rc < 0)
		return rc;
	char **names = calloc(count + 1, sizeof(*names));
	for (size_t i = 0; names && i < count; i++) {
		bool newer = false; /* sorted oldest first */
		for (size_t k = i + 1; k < count; k++)
			newer |= !strcmp(v[k]->name, v[i]->name);
		if (!newer && v[i]->checkpoint)
			names[(*n)++] = TAKE_PTR(v[i]->checkpoint);
	}
	cairn_snapshot_list_free(v, count);
	*out = names;
	return names ? 0 : -ENOMEM;
}

bool domain_checkpoint_in_use(char *const *in_use, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(in_use[i], name))
			return true;
	return false;
}

int domain_in_use_checkpoints(struct domain_job *j, char ***names, size_t *n)
{
	return in_use_checkpoints(j, names, n);
}

void domain_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void domain_delete_own_checkpoints(struct domain_job *j, const char *keep, bool all,
				   unsigned flags)
{
	char **in_use = NULL;
	size_t nin = 0;
	/* without the list, deleting could break another chain: keep all */
	if (!all && in_use_checkpoints(j, &in_use, &nin) < 0)
		return;
	virDomainCheckpointPtr *cps = NULL;
	int n = virDomainListAllCheckpoints(j->dom, &cps, 0);
	for (int i = 0; i < n; i++) {
		const char *name = virDomainCheckpointGetName(cps[i]);
		if (name && !strncmp(name, j->prefix, strlen(j->prefix)) &&
		    (!keep || strcmp(name, keep)) && !domain_checkpoint_in_use(in_use, nin, name))
			delete_one(j, cps[i], flags);
		virDomainCheckpointFree(cps[i]);
	}
	free(cps);
	domain_free_names(in_use, nin);
}

bool domain_checkpoint_covers(struct domain_job *j, const char *name, const char *target)
{
	virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(j->dom, name, 0);
	char *xml = cp ? virDomainCheckpointGetXMLDesc(cp, 0) : NULL;
	if (cp)
		virDomainCheckpointFree(cp);
	xmlDocPtr doc = xml_parse(xml, 0);
	free(xml);
	if (!doc)
		return false;
	char expr[160];
	snprintf(expr, sizeof(expr),
		 "/domaincheckpoint/disks/disk[@name='%s' and @checkpoint='bitmap']", target);
	bool covered = xml_xpath_any(doc, expr);
	xmlFreeDoc(doc);
	return covered;
}

static void job_free(struct domain_job *j)
{
	for (size_t i = 0; i < j->ndisks; i++) {
		free(j->disks[i].target);
		free(j->disks[i].path);
		free(j->disks[i].format);
	}
	free(j->xml);
	domain_firmware_free(j);
	if (j->dom)
		virDomainFree(j->dom);
	if (j->conn)
		virConnectClose(j->conn);
}

int cairn_backup_domain(struct cairn_repo *r, const struct cairn_domain_opts *o,
			struct cairn_backup_result *res, char *err, size_t errlen)
{
	struct domain_job j = { .r = r, .o = o, .backup = o->backup, .err = err, .errlen = errlen };
	memset(res, 0, sizeof(*res));
	virSetErrorFunc(NULL, quiet_libvirt);
	snprintf(j.prefix, sizeof(j.prefix), "cairn-%.16s", cairn_repo_id(r));
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = calloc(1, sizeof(*s));
	int rc = s ? 0 : -ENOMEM;
	if (rc == 0 && !(j.conn = virConnectOpen(o->uri ? o->uri : "qemu:///system")))
		rc = set_err(err, errlen, -ECONNREFUSED, "cannot connect to libvirt at %s: %s",
			     o->uri ? o->uri : "qemu:///system", domain_virt_msg());
	if (rc == 0 && !(j.dom = virDomainLookupByName(j.conn, o->domain)))
		rc = set_err(err, errlen, -ENOENT, "no domain %s: %s", o->domain,
			     domain_virt_msg());
	int state = VIR_DOMAIN_NOSTATE;
	if (rc == 0 && virDomainGetState(j.dom, &state, NULL, 0) < 0)
		rc = set_err(err, errlen, -EIO, "domain %s: %s", o->domain, domain_virt_msg());
	/* the inactive definition is what a restore defines again; secrets
	 * are left out (no VIR_DOMAIN_XML_SECURE) */
	if (rc == 0 && !(j.xml = virDomainGetXMLDesc(j.dom, VIR_DOMAIN_XML_INACTIVE)))
		rc = set_err(err, errlen, -EIO, "domain %s: %s", o->domain, domain_virt_msg());
	if (rc == 0)
		rc = parse_disks(&j);
	size_t nsel = 0;
	for (size_t i = 0; rc == 0 && i < j.ndisks; i++)
		nsel += j.disks[i].selected;
	if (rc == 0 && (rc = cairn_snapshot_begin(s, o->backup.name, "domain", o->backup.tags,
						     o->backup.ntags, nsel)) < 0)
		set_err(err, errlen, rc, "out of memory");
	if (rc == 0 && !(s->domain_xml = strdup(j.xml)))
		rc = -ENOMEM;
	bool live = state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_PAUSED;
	if (rc == 0)
		rc = domain_firmware_find(&j, live);
	/* shut off, nothing writes the firmware state: read it now; a running
	 * domain's is read at the checkpoint instant (domain_live.c) */
	if (rc == 0 && !live)
		rc = domain_firmware_capture(&j);
	if (rc == 0)
		rc = live ? domain_backup_running(&j, s, res) : domain_backup_offline(&j, s, res);
	if (rc == 0)
		domain_firmware_warn(&j);
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
			       uri ? uri : "qemu:///system", domain_virt_msg());
	virDomainPtr *doms = NULL;
	int count = virConnectListAllDomains(conn, &doms, 0);
	int rc = count < 0 ? set_err(err, errlen, -EIO, "cannot list domains: %s",
				     domain_virt_msg())
			   : 0;
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

bool domain_checkpoint_usable(struct domain_job *j, const struct cairn_snapshot *prev)
{
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
	if (why && !j->o->full)
		domain_notice(j, "domain %s: full read (%s)", j->o->domain, why);
	return !why;
}
