/* Rewriting a libvirt domain definition stored with a snapshot so that it
 * can be defined on another host (or beside the original): the domain gets
 * its name, loses its UUID, its restored disks point at the restored files
 * or devices, the rest of its disks are dropped (cdrom/floppy drives stay,
 * empty), its networks are renamed through a map and its MAC addresses can
 * be left to libvirt. Its UEFI files (<loader>, <nvram>) and UUID can be
 * set (a restored NVRAM and TPM state are found by name and UUID).
 *
 * Pure (libxml2 only): no libvirt calls, no file system access. Returns 0 or
 * a negative errno with a one-line reason in err (-EINVAL: the XML or an
 * option does not fit the domain). */
#ifndef CAIRN_DOMXML_H
#define CAIRN_DOMXML_H

#include <stdbool.h>
#include <stddef.h>

struct cairn_domxml_disk {
	const char *target; /* vda: the disk's <target dev> */
	const char *path; /* absolute path of the restored file or device */
	const char *format; /* raw or qcow2 */
	bool block; /* a block device: <disk type='block'><source dev=...> */
};

struct cairn_domxml_map {
	const char *from, *to;
};

struct cairn_domxml_opts {
	const char *name; /* NULL keeps the stored name */
	const struct cairn_domxml_disk *disks;
	size_t ndisks;
	/* renames interface sources: libvirt networks, bridges, direct devices */
	const struct cairn_domxml_map *net_map;
	size_t nnet_map;
	bool new_macs; /* drop <mac>: libvirt generates new ones */
	bool no_network; /* drop every <interface>: an isolated test boot */
	/* not NULL: the serial console goes to this file (replacing the stored
	 * serial and console devices), for a test that watches it */
	const char *console_log;
	/* firmware (restore/fwstate.h); each NULL keeps what is stored:
	 * the domain's UUID (else dropped, and libvirt assigns one), the
	 * file of its <nvram>, and this host's <loader> and NVRAM template */
	const char *uuid;
	const char *nvram;
	const char *loader;
	const char *nvram_template;
};

struct cairn_domxml_result {
	char *xml;
	char *name;
	/* what the rewritten domain needs from the host, each listed once */
	char **networks; /* libvirt networks */
	size_t nnetworks;
	char **host_ifaces; /* bridges and direct (macvtap) devices */
	size_t nhost_ifaces;
	char **dropped; /* targets of disks left out (not restored) */
	size_t ndropped;
};

int cairn_domxml_rewrite(const char *xml, const struct cairn_domxml_opts *o,
			 struct cairn_domxml_result *out, char *err, size_t errlen);
void cairn_domxml_result_free(struct cairn_domxml_result *res);

#endif
