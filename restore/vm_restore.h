/* Whole-VM restore: every (chosen) disk of a snapshot written out with
 * cairn_restore_disk (restore.h) into files, a directory or block devices,
 * and, for a libvirt domain, its stored definition rewritten for the
 * restored disks (domxml.h), checked against the host before any data is
 * written, defined and started (vm.h).
 *
 * Two steps: cairn_vm_restore_plan() decides where every disk goes without
 * writing anything (but the --to directory), cairn_vm_restore_run() does
 * it. Both return 0 or a negative errno with a one-line reason in err;
 * the plan returns -EINVAL only when the request does not fit the snapshot
 * (a usage error: several disks to one file, no destination, qcow2 onto a
 * block device). */
#ifndef CAIRN_VM_RESTORE_H
#define CAIRN_VM_RESTORE_H

#include "domxml.h"
#include "fwstate.h"
#include "restore.h"

#define CAIRN_VM_RESTORE_MAX_DISKS 64

struct cairn_vm_restore_pick {
	const char *disk;
	const char *path; /* NULL: a file in the destination directory */
};

/* One disk to restore, where, and how libvirt will see it. */
struct cairn_vm_restore_target {
	struct cairn_disk *d;
	char *path; /* absolute */
	enum cairn_image_format format;
	bool block;
};

struct cairn_vm_restore_opts {
	const char *to; /* a file, or a directory (existing, or ending in /) */
	const struct cairn_vm_restore_pick *picks; /* none: every disk */
	size_t npicks;
	enum cairn_image_format format;
	bool format_given; /* else block devices get raw silently */
	bool force; /* replace existing files, write block devices */
	bool resume; /* carry on from each disk's partial file (restore.h) */
	bool define, start; /* define (and start) the domain */
	const char *as; /* its new name; NULL keeps the stored one */
	const char *uri; /* libvirt; NULL: qemu:///system */
	const struct cairn_domxml_map *net_map;
	size_t nnet_map;
	bool new_macs;
	const volatile int *cancel;
	/* around each disk, for progress and output: begin sets the progress
	 * callback of the disk's restore; done gets its outcome (rc) */
	void (*disk_begin)(void *opaque, const struct cairn_vm_restore_target *t,
			   struct cairn_restore_opts *o);
	void (*disk_done)(void *opaque, const struct cairn_vm_restore_target *t, int rc,
			  const struct cairn_restore_result *res, double seconds);
	void *opaque;
};

struct cairn_vm_restore {
	struct cairn_vm_restore_target targets[CAIRN_VM_RESTORE_MAX_DISKS];
	size_t ntargets;
	struct cairn_domxml_result domain; /* with define: what was defined */
	struct cairn_fwstate fw; /* with define: its NVRAM and TPM state */
};

int cairn_vm_restore_plan(struct cairn_snapshot *s, const struct cairn_vm_restore_opts *o,
			  struct cairn_vm_restore *out, char *err, size_t errlen);
int cairn_vm_restore_run(struct cairn_repo *r, const struct cairn_snapshot *s,
			 const struct cairn_vm_restore_opts *o, struct cairn_vm_restore *v,
			 char *err, size_t errlen);
void cairn_vm_restore_free(struct cairn_vm_restore *v);

/* "raw" or "qcow2": file extensions and libvirt's driver types */
const char *cairn_image_format_name(enum cairn_image_format f);

#endif
