/* Sessions that run a snapshot as a VM before any restore: instant restore
 * (cairn instant-restore) and the throwaway test boot of a recovery test
 * (cairn verify-boot). Each disk is served from the repository by a
 * detached cairn server on a unix socket under RUN/instant/NAME, behind a
 * local qcow2 overlay (serve/instant.h); the stored domain is rewritten to
 * use the overlays (restore/domxml.h) and run through libvirt
 * (restore/vm.h); a test boot is watched by restore/bootcheck.h.
 *
 * Whatever a failed or finished session started (domain, servers,
 * overlays, directories, the domain's NVRAM and TPM state, written
 * for it under its own name and UUID) is undone. Functions return 0 or a negative
 * errno with a one-line reason in err; -ENAMETOOLONG means the session's
 * name makes paths too long (a usage error). */
#ifndef CAIRN_SERVE_SESSION_H
#define CAIRN_SERVE_SESSION_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "restore/bootcheck.h"
#include "restore/domxml.h"
#include "restore/fwstate.h"
#include "restore/vm.h"
#include "server.h"

#define CAIRN_SESSION_MAX_DISKS 32

/* Where cairn keeps sockets and pid files of its detached servers:
 * /run/cairn as root, else $XDG_RUNTIME_DIR/cairn or /tmp/cairn-UID;
 * created (mode 0755) when missing. */
int cairn_serve_run_dir(char *out, size_t len, char *err, size_t errlen);

struct cairn_session_opts {
	const char *name; /* of the domain, and of RUN/instant/NAME */
	struct cairn_repo *r; /* index loaded */
	const struct cairn_snapshot *s; /* a libvirt domain's snapshot */
	/* every server's options but disk, socket and pidfile (set per disk) */
	const struct cairn_server_opts *server;
	const char *uri; /* libvirt; NULL: qemu:///system */
	/* instant restore: the overlays' directory (created); NULL:
	 * /var/lib/cairn/instant/NAME */
	const char *to;
};

struct cairn_session_disk {
	struct cairn_disk *d;
	char sock[PATH_MAX], pidfile[PATH_MAX], overlay[PATH_MAX];
};

struct cairn_session {
	char name[256];
	char run[PATH_MAX - 128], dir[PATH_MAX - 128]; /* sockets; overlays */
	struct cairn_session_disk disks[CAIRN_SESSION_MAX_DISKS];
	size_t n, started, overlays;
	bool defined;
	struct cairn_vm_host *host;
	struct cairn_domxml_result domain; /* as defined */
	struct cairn_fwstate fw; /* its own NVRAM and TPM state, put back */
};

/* Instant restore, in two steps so that the caller can catch signals in
 * between: prepare checks everything (directories, overlays free, the
 * rewritten domain fits the host) and starts nothing; launch starts the
 * servers, creates the overlays, defines and starts the domain. */
int cairn_session_prepare_instant(struct cairn_session *ss, const struct cairn_session_opts *o,
				  char *err, size_t errlen);
int cairn_session_launch_instant(struct cairn_session *ss, const struct cairn_session_opts *o,
				 char *err, size_t errlen);
/* Pulls every disk into its overlay (block pull), then stops the servers. */
int cairn_session_pull(struct cairn_session *ss, unsigned timeout_s,
		       const volatile int *cancel, char *err, size_t errlen);
/* After a failure: the domain (if defined), servers, overlays and their
 * directory go. */
void cairn_session_undo(struct cairn_session *ss);
void cairn_session_free(struct cairn_session *ss);

/* Stops the servers of the instant restore NAME once its domain no longer
 * reads from them: -ENOENT no such instant restore, -EBUSY the domain still
 * reads from the repository. */
int cairn_session_stop_instant(const char *name, const char *uri, char *err, size_t errlen);

struct cairn_boot_outcome {
	int rc; /* of cairn_boot_wait, or why the VM did not start */
	double seconds;
	char detail[600];
	char note[256]; /* what the snapshot lacked (fwstate.h), or "" */
};

/* A test boot: the snapshot runs as a transient domain without network,
 * its serial console to a file, until check passes or fails (out); then
 * everything is removed. A negative return is a local error (no test took
 * place); a failed test is out->rc. */
int cairn_session_boot_test(const struct cairn_session_opts *o,
			    const struct cairn_boot_check *check, struct cairn_boot_outcome *out,
			    char *err, size_t errlen);

#endif
