/* What instant-restore and verify-boot share: a run that serves each disk
 * of a snapshot from the repository (a detached cairn server per disk on a
 * unix socket under RUN/instant/NAME) behind a local qcow2 overlay, and
 * the cleanup of all of it. Functions return -1 to go on or an exit code
 * (the error printed), like the rest of cli/. */
#ifndef CAIRN_CLI_INSTANT_RUN_H
#define CAIRN_CLI_INSTANT_RUN_H

#include <limits.h>
#include <sys/types.h>

#include "restore/vm.h"
#include "serve_cli.h"

#define INSTANT_MAX_DISKS 32

struct instant_disk {
	struct cairn_disk *d;
	char sock[PATH_MAX], pidfile[PATH_MAX], overlay[PATH_MAX];
};

struct instant_run {
	char run[PATH_MAX - 128], dir[PATH_MAX - 128];
	struct instant_disk disks[INSTANT_MAX_DISKS];
	size_t n, started, overlays;
	bool defined;
};

/* dir/name+suffix (namelen bytes of name); false when it does not fit */
bool instant_join(char *out, size_t len, const char *dir, const char *name, int namelen,
		  const char *suffix);
/* mkdir + chmod mode: QEMU runs as libvirt-qemu and must reach the files */
int instant_make_dir(const char *path, mode_t mode);
/* RUN/instant/NAME (RUN/instant created) */
int instant_run_dir(const char *name, char *out, size_t len);
/* Fills ir for every disk of the snapshot: sockets in ir->run, overlays
 * NAME-DISK.qcow2 in ir->dir (both set by the caller), chunk maps loaded;
 * refuses existing overlays. */
int instant_plan(const char *name, struct serve_source *src, struct instant_run *ir);
/* Starts the servers, then creates the overlays (ir->dir and ir->run exist). */
int instant_start_servers(const struct serve_source *src, struct instant_run *ir);
void instant_stop_servers(struct instant_run *ir);
/* After a failure or a finished test: domain (if defined), servers,
 * overlays and their directory go. */
void instant_undo(struct cairn_vm_host *h, const char *name, struct instant_run *ir);

#endif
