/* Internal to agent/: what backing up one libvirt domain shares between the
 * running (pull-mode backup) and shut-off (image + qcow2 bitmap) paths. */
#ifndef CAIRN_AGENT_DOMAIN_H
#define CAIRN_AGENT_DOMAIN_H

#include <libvirt/libvirt.h>

#include "agent.h"

#define MAX_DISKS 64

struct domain_disk {
	char *target; /* vda */
	char *path; /* image file, block device, or protocol:name */
	char *format; /* qcow2, raw, ... */
	bool network;
	bool selected; /* backed up */
	uint64_t capacity; /* running domains: virtual size now */
	/* read in full even though the backup is incremental; why_full says
	 * why when it is worth a notice */
	bool full;
	const char *why_full;
};

#define DOMAIN_MAX_FIRMWARE 32

/* Firmware state files of the domain (domain_firmware.c). */
struct domain_firmware {
	char *nvram; /* the NVRAM file, or NULL */
	char *tpm_dir; /* the emulated TPM's state directory, or NULL */
	struct cairn_firmware_state files[DOMAIN_MAX_FIRMWARE]; /* as read */
	size_t n;
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
	/* o->backup with the firmware state read for this snapshot */
	struct cairn_backup_opts backup;
	struct domain_firmware fw;
	char *err;
	size_t errlen;
};

/* Whether prev (a snapshot of this domain in this repository) can be the
 * base of an incremental: not --full, and libvirt still has the
 * checkpoint of ours it names. Says why not (but for --full) as a notice. */
bool domain_checkpoint_usable(struct domain_job *j, const struct cairn_snapshot *prev);
void domain_notice(const struct domain_job *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
const char *domain_virt_msg(void);
bool domain_bitmap_capable(const struct domain_disk *d);
/* The previous snapshot of this domain in this repository, or NULL. */
struct cairn_snapshot *domain_previous(struct domain_job *j);
/* Deletes one checkpoint, running or not. */
void domain_delete_checkpoint(struct domain_job *j, const char *name);
/* Deletes this repository's checkpoints on the domain except keep and,
 * unless all, except those the latest snapshot of some name builds on. */
void domain_delete_own_checkpoints(struct domain_job *j, const char *keep, bool all,
				   unsigned flags);
/* Those checkpoints, for callers that clean up by themselves. */
int domain_in_use_checkpoints(struct domain_job *j, char ***names, size_t *n);
bool domain_checkpoint_in_use(char *const *in_use, size_t n, const char *name);
void domain_free_names(char **names, size_t n);
/* True when libvirt's checkpoint name covers disk target with a bitmap. */
bool domain_checkpoint_covers(struct domain_job *j, const char *name, const char *target);

/* Removes bitmap name from the selected qcow2 disks of a shut-off domain. */
void domain_remove_bitmaps(struct domain_job *j, const char *name);

/* Finds the firmware state files of the domain (live: from its running
 * definition), reads them (capture; the caller makes sure nothing writes
 * them meanwhile), warns when the TPM state goes into an unencrypted
 * repository, and frees what was read. */
int domain_firmware_find(struct domain_job *j, bool live);
bool domain_firmware_any(const struct domain_job *j);
int domain_firmware_capture(struct domain_job *j);
void domain_firmware_warn(const struct domain_job *j);
void domain_firmware_release(struct domain_job *j);
void domain_firmware_free(struct domain_job *j);

int domain_backup_running(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res);
int domain_backup_offline(struct domain_job *j, struct cairn_snapshot *s,
			  struct cairn_backup_result *res);

#endif
