/* Rewriting a stored domain definition for a restore (see domxml.h). */
#include <errno.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domxml.h"
#include "base/util.h"
#include "base/xml.h"

struct rewrite {
	const struct cairn_domxml_opts *o;
	struct cairn_domxml_result *res;
	bool *map_used;
	bool *disk_used;
	char *err;
	size_t errlen;
};

static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static xmlNode *child(xmlNode *parent, const char *name)
{
	for (xmlNode *c = parent->children; c; c = c->next)
		if (is_elem(c, name))
			return c;
	return NULL;
}

static void drop(xmlNode *n)
{
	xmlUnlinkNode(n);
	xmlFreeNode(n);
}

static void remove_children(xmlNode *parent, const char *name)
{
	xmlNode *c = parent->children;
	while (c) {
		xmlNode *next = c->next;
		if (is_elem(c, name))
			drop(c);
		c = next;
	}
}

static xmlNode *child_or_new(xmlNode *parent, const char *name)
{
	xmlNode *c = child(parent, name);
	return c ? c : xmlNewChild(parent, NULL, BAD_CAST name, NULL);
}

/* An attribute's value as a C string owned by libxml2's allocator. */
static char *attr(xmlNode *n, const char *name)
{
	return n ? (char *)xmlGetProp(n, BAD_CAST name) : NULL;
}

static int add_unique(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	char **grown = realloc(*v, (*n + 1) * sizeof(**v));
	if (!grown)
		return -ENOMEM;
	*v = grown;
	if (!(grown[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const struct cairn_domxml_disk *restored_disk(struct rewrite *w, const char *target)
{
	for (size_t i = 0; target && i < w->o->ndisks; i++)
		if (!strcmp(w->o->disks[i].target, target)) {
			w->disk_used[i] = true;
			return &w->o->disks[i];
		}
	return NULL;
}

/* A fresh <source> replaces the stored one: network hosts, auth, slices,
 * reservations and encryption belong to the old storage, not the restored
 * copy. */
static int point_disk_at(xmlNode *disk, const struct cairn_domxml_disk *d)
{
	xmlSetProp(disk, BAD_CAST "type", BAD_CAST(d->block ? "block" : "file"));
	remove_children(disk, "source");
	remove_children(disk, "backingStore");
	remove_children(disk, "mirror");
	remove_children(disk, "auth");
	remove_children(disk, "encryption");
	xmlNode *src = xmlNewNode(NULL, BAD_CAST "source");
	if (!src)
		return -ENOMEM;
	xmlSetProp(src, BAD_CAST(d->block ? "dev" : "file"), BAD_CAST d->path);
	xmlNode *driver = child_or_new(disk, "driver");
	if (!driver) {
		xmlFreeNode(src);
		return -ENOMEM;
	}
	xmlSetProp(driver, BAD_CAST "name", BAD_CAST "qemu");
	xmlSetProp(driver, BAD_CAST "type", BAD_CAST d->format);
	xmlAddNextSibling(driver, src);
	return 0;
}

static int rewrite_disk(struct rewrite *w, xmlNode *disk)
{
	char *device = attr(disk, "device");
	bool removable = device && (!strcmp(device, "cdrom") || !strcmp(device, "floppy"));
	xmlFree(device);
	char *target = attr(child(disk, "target"), "dev");
	const struct cairn_domxml_disk *d = restored_disk(w, target);
	int rc = 0;
	if (d)
		rc = point_disk_at(disk, d);
	else if (removable) {
		/* an ISO of the old host: keep the drive, eject the medium */
		remove_children(disk, "source");
		remove_children(disk, "backingStore");
		xmlSetProp(disk, BAD_CAST "type", BAD_CAST "file");
	} else {
		rc = add_unique(&w->res->dropped, &w->res->ndropped, target ? target : "?");
		drop(disk);
	}
	xmlFree(target);
	return rc;
}

static const char *mapped(struct rewrite *w, const char *from)
{
	for (size_t i = 0; i < w->o->nnet_map; i++)
		if (!strcmp(w->o->net_map[i].from, from)) {
			w->map_used[i] = true;
			return w->o->net_map[i].to;
		}
	return from;
}

/* The interface source attribute that names something on the host. */
static const char *iface_source_key(xmlNode *iface, bool *is_network)
{
	char *type = attr(iface, "type");
	const char *key = NULL;
	*is_network = false;
	if (type && !strcmp(type, "network")) {
		key = "network";
		*is_network = true;
	} else if (type && !strcmp(type, "bridge"))
		key = "bridge";
	else if (type && !strcmp(type, "direct"))
		key = "dev";
	xmlFree(type);
	return key;
}

static int rewrite_interface(struct rewrite *w, xmlNode *iface)
{
	if (w->o->new_macs)
		remove_children(iface, "mac");
	/* a tap name of the old host (vnetN) */
	remove_children(iface, "target");
	bool is_network;
	const char *key = iface_source_key(iface, &is_network);
	xmlNode *src = child(iface, "source");
	char *from = key ? attr(src, key) : NULL;
	if (!from)
		return 0;
	const char *to = mapped(w, from);
	xmlSetProp(src, BAD_CAST key, BAD_CAST to);
	int rc = is_network ? add_unique(&w->res->networks, &w->res->nnetworks, to)
			    : add_unique(&w->res->host_ifaces, &w->res->nhost_ifaces, to);
	xmlFree(from);
	return rc;
}

/* A socket libvirt generated for the old domain (the guest agent's, under
 * .../channel/target/domain-OLD/) would collide with the original's;
 * without a path libvirt generates one for the new domain. */
static void rewrite_channel(xmlNode *channel)
{
	xmlNode *src = child(channel, "source");
	char *path = attr(src, "path");
	if (path && strstr(path, "/channel/target/"))
		xmlUnsetProp(src, BAD_CAST "path");
	xmlFree(path);
}

static int add_console_log(xmlNode *devices, const char *log)
{
	xmlNode *serial = xmlNewChild(devices, NULL, BAD_CAST "serial", NULL);
	xmlNode *console = xmlNewChild(devices, NULL, BAD_CAST "console", NULL);
	if (!serial || !console)
		return -ENOMEM;
	xmlSetProp(serial, BAD_CAST "type", BAD_CAST "file");
	xmlSetProp(console, BAD_CAST "type", BAD_CAST "file");
	xmlNode *s_src = xmlNewChild(serial, NULL, BAD_CAST "source", NULL);
	xmlNode *s_tgt = xmlNewChild(serial, NULL, BAD_CAST "target", NULL);
	xmlNode *c_src = xmlNewChild(console, NULL, BAD_CAST "source", NULL);
	xmlNode *c_tgt = xmlNewChild(console, NULL, BAD_CAST "target", NULL);
	if (!s_src || !s_tgt || !c_src || !c_tgt)
		return -ENOMEM;
	xmlSetProp(s_src, BAD_CAST "path", BAD_CAST log);
	xmlSetProp(s_tgt, BAD_CAST "port", BAD_CAST "0");
	xmlSetProp(c_src, BAD_CAST "path", BAD_CAST log);
	xmlSetProp(c_tgt, BAD_CAST "type", BAD_CAST "serial");
	xmlSetProp(c_tgt, BAD_CAST "port", BAD_CAST "0");
	return 0;
}

static int rewrite_devices(struct rewrite *w, xmlNode *devices)
{
	xmlNode *c = devices->children;
	int rc = 0;
	while (c && rc == 0) {
		xmlNode *next = c->next;
		if (is_elem(c, "disk"))
			rc = rewrite_disk(w, c);
		else if (is_elem(c, "interface") && w->o->no_network)
			drop(c);
		else if (is_elem(c, "interface"))
			rc = rewrite_interface(w, c);
		else if (is_elem(c, "channel"))
			rewrite_channel(c);
		else if (w->o->console_log && (is_elem(c, "serial") || is_elem(c, "console")))
			drop(c);
		c = next;
	}
	if (rc == 0 && w->o->console_log)
		rc = add_console_log(devices, w->o->console_log);
	return rc;
}

static int rename_domain(struct rewrite *w, xmlNode *root)
{
	xmlNode *name = child(root, "name");
	if (!name)
		return set_err(w->err, w->errlen, -EINVAL, "the stored domain XML has no <name>");
	if (w->o->name)
		xmlNodeSetContent(name, BAD_CAST w->o->name);
	char *now = (char *)xmlNodeGetContent(name);
	w->res->name = now ? strdup(now) : NULL;
	xmlFree(now);
	return w->res->name ? 0 : -ENOMEM;
}

/* Options that name something the domain does not have are mistakes the
 * admin wants to hear about, not silently ignore. */
static int check_all_used(struct rewrite *w)
{
	for (size_t i = 0; i < w->o->nnet_map; i++)
		if (!w->map_used[i])
			return set_err(w->err, w->errlen, -EINVAL,
				       "--network-map %s=%s: the domain has no interface on %s",
				       w->o->net_map[i].from, w->o->net_map[i].to,
				       w->o->net_map[i].from);
	for (size_t i = 0; i < w->o->ndisks; i++)
		if (!w->disk_used[i])
			return set_err(w->err, w->errlen, -EINVAL,
				       "the stored domain XML has no disk %s",
				       w->o->disks[i].target);
	return 0;
}

/* <os><loader>/<nvram>: this host's firmware and the restored NVRAM file,
 * never the original domain's. */
static int rewrite_os(struct rewrite *w, xmlNode *root)
{
	const struct cairn_domxml_opts *o = w->o;
	xmlNode *os = child(root, "os");
	if (!os || (!o->nvram && !o->loader && !o->nvram_template))
		return 0;
	xmlNode *loader = child(os, "loader");
	if (loader && o->loader)
		xmlNodeSetContent(loader, BAD_CAST o->loader);
	if (!o->nvram && !o->nvram_template)
		return 0;
	xmlNode *nvram = child_or_new(os, "nvram");
	if (!nvram)
		return -ENOMEM;
	if (o->nvram)
		xmlNodeSetContent(nvram, BAD_CAST o->nvram);
	if (o->nvram_template)
		xmlSetProp(nvram, BAD_CAST "template", BAD_CAST o->nvram_template);
	return 0;
}

static int set_uuid(xmlNode *root, const char *uuid)
{
	xmlNode *name = child(root, "name");
	xmlNode *n = xmlNewNode(NULL, BAD_CAST "uuid");
	if (!n)
		return -ENOMEM;
	xmlNodeSetContent(n, BAD_CAST uuid);
	xmlAddNextSibling(name, n);
	return 0;
}

static int rewrite_doc(struct rewrite *w, xmlDoc *doc)
{
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!root || !is_elem(root, "domain"))
		return set_err(w->err, w->errlen, -EINVAL,
			       "the stored domain XML has no <domain> element");
	int rc = rename_domain(w, root);
	if (rc < 0)
		return rc;
	/* libvirt assigns a new UUID; the running id belongs to the old host */
	remove_children(root, "uuid");
	xmlUnsetProp(root, BAD_CAST "id");
	if (w->o->uuid && (rc = set_uuid(root, w->o->uuid)) < 0)
		return rc;
	if ((rc = rewrite_os(w, root)) < 0)
		return rc;
	xmlNode *devices = child(root, "devices");
	if (devices && (rc = rewrite_devices(w, devices)) < 0)
		return rc;
	return check_all_used(w);
}

static int serialize(xmlDoc *doc, char **out)
{
	xmlChar *buf = NULL;
	int len = 0;
	xmlDocDumpFormatMemory(doc, &buf, &len, 1);
	if (!buf)
		return -ENOMEM;
	*out = strndup((const char *)buf, (size_t)len);
	xmlFree(buf);
	return *out ? 0 : -ENOMEM;
}

int cairn_domxml_rewrite(const char *xml, const struct cairn_domxml_opts *o,
			 struct cairn_domxml_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!xml)
		return set_err(err, errlen, -EINVAL, "the snapshot holds no domain XML");
	_cleanup_free_ bool *map_used = calloc(o->nnet_map + 1, sizeof(bool));
	_cleanup_free_ bool *disk_used = calloc(o->ndisks + 1, sizeof(bool));
	if (!map_used || !disk_used)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	/* NOBLANKS lets the output be re-indented after nodes are removed */
	xmlDoc *doc = xml_parse(xml, XML_PARSE_NOBLANKS);
	if (!doc)
		return set_err(err, errlen, -EINVAL, "the stored domain XML does not parse");
	struct rewrite w = { .o = o, .res = out, .map_used = map_used,
			     .disk_used = disk_used, .err = err, .errlen = errlen };
	int rc = rewrite_doc(&w, doc);
	if (rc == 0)
		rc = serialize(doc, &out->xml);
	xmlFreeDoc(doc);
	if (rc == -ENOMEM)
		set_err(err, errlen, rc, "out of memory");
	if (rc < 0)
		cairn_domxml_result_free(out);
	return rc;
}

void cairn_domxml_result_free(struct cairn_domxml_result *res)
{
	free(res->xml);
	free(res->name);
	free_list(res->networks, res->nnetworks);
	free_list(res->host_ifaces, res->nhost_ifaces);
	free_list(res->dropped, res->ndropped);
	memset(res, 0, sizeof(*res));
}
