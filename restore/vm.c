/* Defining and starting a restored domain through libvirt (see vm.h). */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vm.h"

struct cairn_vm_host {
	virConnectPtr conn;
	char *uri;
};

/* libvirt prints errors on stderr unless told otherwise; cairn reports
 * them itself, in one line. */
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

int cairn_vm_host_open(const char *uri, struct cairn_vm_host **out, char *err,
		       size_t errlen)
{
	virSetErrorFunc(NULL, quiet_libvirt);
	struct cairn_vm_host *h = calloc(1, sizeof(*h));
	if (!h || !(h->uri = strdup(uri ? uri : "qemu:///system"))) {
		free(h);
		return set_err(err, errlen, -ENOMEM, "out of memory");
	}
	if (!(h->conn = virConnectOpen(h->uri))) {
		int rc = set_err(err, errlen, -EIO, "cannot connect to libvirt at %s: %s",
				 h->uri, virt_msg());
		cairn_vm_host_close(h);
		return rc;
	}
	*out = h;
	return 0;
}

void cairn_vm_host_close(struct cairn_vm_host *h)
{
	if (!h)
		return;
	if (h->conn)
		virConnectClose(h->conn);
	free(h->uri);
	free(h);
}

static int check_name_free(struct cairn_vm_host *h, const char *name, char *err,
			   size_t errlen)
{
	virDomainPtr dom = virDomainLookupByName(h->conn, name);
	if (!dom)
		return 0;
	virDomainFree(dom);
	return set_err(err, errlen, -EEXIST,
		       "a domain named %s already exists on %s; restore under another name "
		       "with --as NEW",
		       name, h->uri);
}

/* "a, b, c" of the networks this host has, for the hint in an error. */
static void list_networks(struct cairn_vm_host *h, char *out, size_t len)
{
	virNetworkPtr *nets = NULL;
	int n = virConnectListAllNetworks(h->conn, &nets, 0);
	snprintf(out, len, "none");
	for (int i = 0; i < n; i++) {
		size_t at = i ? strlen(out) : 0;
		snprintf(out + at, len - at, "%s%s", i ? ", " : "", virNetworkGetName(nets[i]));
		virNetworkFree(nets[i]);
	}
	free(nets);
}

static int check_network(struct cairn_vm_host *h, const char *name, bool start,
			 char *err, size_t errlen)
{
	virNetworkPtr net = virNetworkLookupByName(h->conn, name);
	if (!net) {
		char have[256];
		list_networks(h, have, sizeof(have));
		return set_err(err, errlen, -ENOENT,
			       "the domain uses network %s, which this host does not have "
			       "(it has: %s); map it with --network-map %s=NETWORK",
			       name, have, name);
	}
	int active = virNetworkIsActive(net);
	virNetworkFree(net);
	if (start && active == 0)
		return set_err(err, errlen, -ENOENT,
			       "network %s is not active; start it (virsh net-start %s) or "
			       "map it with --network-map %s=NETWORK",
			       name, name, name);
	return 0;
}

static int check_host_iface(const char *name, char *err, size_t errlen)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	if (strchr(name, '/') || stat(path, &st) < 0)
		return set_err(err, errlen, -ENOENT,
			       "the domain uses host interface %s, which this host does not have; "
			       "map it with --network-map %s=BRIDGE",
			       name, name);
	return 0;
}

int cairn_vm_host_preflight(struct cairn_vm_host *h, const struct cairn_domxml_result *x,
			    bool start, char *err, size_t errlen)
{
	int rc = check_name_free(h, x->name, err, errlen);
	for (size_t i = 0; rc == 0 && i < x->nnetworks; i++)
		rc = check_network(h, x->networks[i], start, err, errlen);
	for (size_t i = 0; rc == 0 && i < x->nhost_ifaces; i++)
		rc = check_host_iface(x->host_ifaces[i], err, errlen);
	return rc;
}

int cairn_vm_host_define(struct cairn_vm_host *h, const char *xml, bool start,
			 char *err, size_t errlen)
{
	virDomainPtr dom = virDomainDefineXML(h->conn, xml);
	if (!dom)
		return set_err(err, errlen, -EIO, "libvirt refused the domain definition: %s",
			       virt_msg());
	int rc = 0;
	if (start && virDomainCreate(dom) < 0)
		rc = set_err(err, errlen, -EIO, "domain %s is defined but did not start: %s",
			     virDomainGetName(dom), virt_msg());
	virDomainFree(dom);
	return rc;
}

int cairn_vm_host_start(struct cairn_vm_host *h, const char *name, char *err, size_t errlen)
{
	virDomainPtr dom = virDomainLookupByName(h->conn, name);
	int rc = 0;
	if (!dom || virDomainCreate(dom) < 0)
		rc = set_err(err, errlen, -EIO, "domain %s is defined but did not start: %s", name,
			     virt_msg());
	if (dom)
		virDomainFree(dom);
	return rc;
}

int cairn_vm_host_create_transient(struct cairn_vm_host *h, const char *xml, char *err,
				   size_t errlen)
{
	virDomainPtr dom = virDomainCreateXML(h->conn, xml, 0);
	if (!dom)
		return set_err(err, errlen, -EIO, "libvirt did not start the VM: %s", virt_msg());
	virDomainFree(dom);
	return 0;
}

int cairn_vm_host_destroy(struct cairn_vm_host *h, const char *name, char *err,
			  size_t errlen)
{
	virDomainPtr dom = virDomainLookupByName(h->conn, name);
	if (!dom)
		return 0;
	int rc = 0;
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0)
		rc = set_err(err, errlen, -EIO, "cannot stop domain %s: %s", name, virt_msg());
	if (rc == 0 && virDomainIsPersistent(dom) == 1 &&
	    virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
						VIR_DOMAIN_UNDEFINE_NVRAM) < 0)
		rc = set_err(err, errlen, -EIO, "cannot undefine domain %s: %s", name,
			     virt_msg());
	virDomainFree(dom);
	return rc;
}

virConnectPtr cairn_vm_host_conn(const struct cairn_vm_host *h)
{
	return h->conn;
}
