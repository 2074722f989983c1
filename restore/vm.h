/* Putting a restored domain on a libvirt host: checking that the host can
 * take it (the name is free, its networks and bridges exist), defining it
 * and starting it. Functions return 0 or a negative errno with a one-line
 * reason in err: -EEXIST the name is taken, -ENOENT a network or bridge is
 * missing, -EIO libvirt refused. */
#ifndef CAIRN_VM_H
#define CAIRN_VM_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>

#include "domxml.h"
#include "base/util.h"

struct cairn_vm_host;

int cairn_vm_host_open(const char *uri, struct cairn_vm_host **out, char *err,
		       size_t errlen);
void cairn_vm_host_close(struct cairn_vm_host *h);
DEFINE_CLEANUP(struct cairn_vm_host *, cairn_vm_host_close);

/* Before any data is written: the domain name is free, every network of
 * the rewritten definition is defined (and active when start), every bridge
 * or direct device exists. */
int cairn_vm_host_preflight(struct cairn_vm_host *h, const struct cairn_domxml_result *x,
			    bool start, char *err, size_t errlen);
/* Defines the domain persistently and starts it when start; a domain that
 * fails to start stays defined (its disks are restored), and err says so. */
int cairn_vm_host_define(struct cairn_vm_host *h, const char *xml, bool start,
			 char *err, size_t errlen);

/* Starts the defined domain name. */
int cairn_vm_host_start(struct cairn_vm_host *h, const char *name, char *err, size_t errlen);

/* A throwaway domain: started from xml without a persistent definition,
 * so destroying it leaves nothing in libvirt. */
int cairn_vm_host_create_transient(struct cairn_vm_host *h, const char *xml, char *err,
				   size_t errlen);
/* Stops a domain now (no guest shutdown) and, when persistent, undefines it.
 * A domain that is already gone is not an error. */
int cairn_vm_host_destroy(struct cairn_vm_host *h, const char *name, char *err,
			  size_t errlen);
/* For the rest of restore/ (boot checks); the host keeps ownership. */
virConnectPtr cairn_vm_host_conn(const struct cairn_vm_host *h);

#endif
