/* A snapshot disk as a read-only file: a detached cairn server on a private
 * unix socket, and nbdfuse exposing it as DIR/<disk>. Both are found again
 * through a per-mount state directory (socket and pid files), which the
 * caller names (one per mount point).
 *
 * Returns 0 or a negative errno with a one-line reason in err: -EEXIST the
 * state directory belongs to a live mount, -ENOENT nothing is mounted
 * there, -EBUSY the file is still in use (a loop device, an open file). */
#ifndef CAIRN_SERVE_MOUNT_H
#define CAIRN_SERVE_MOUNT_H

#include "server.h"

struct cairn_mount_opts {
	/* what to serve; its socket and pid file are set by cairn_mount() */
	struct cairn_server_opts server;
	const char *dir; /* absolute mount point, an existing directory */
	const char *file; /* the file's name in dir (the disk name) */
	const char *state_dir; /* absolute; created mode 0700 */
	unsigned timeout_s; /* for nbdfuse to mount; 0: 30 */
};

int cairn_mount(const struct cairn_mount_opts *o, char *err, size_t errlen);
/* Unmounts dir, waits for nbdfuse to end, stops the server and removes the
 * state directory. Whatever of it is left is cleaned up, so a crashed
 * mount can be undone too. */
int cairn_umount(const char *dir, const char *state_dir, char *err, size_t errlen);

#endif
