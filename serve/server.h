/* Running the cairn nbdkit plugin: one nbdkit process serves one disk of a
 * snapshot read-only, on a unix socket or a TCP port.
 *
 * A server is either in the foreground (a child of the caller, ended with
 * it: nbdkit -f --exit-with-parent) or detached (nbdkit forks into the
 * background; its pid file is the handle to stop it later). Either way it
 * writes its pid file once it accepts connections, and
 * cairn_server_start() returns only then.
 *
 * nbdkit changes to / when it detaches: every path given here must be
 * absolute. Functions return 0 or a negative errno with a one-line reason
 * in err: -ENOENT no plugin or no nbdkit, -EEXIST a live server already
 * owns the pid file, -EIO nbdkit refused to start (its reason in err),
 * -ETIMEDOUT it did not become ready. */
#ifndef CAIRN_SERVE_SERVER_H
#define CAIRN_SERVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "repo/repo.h"

#define CAIRN_PLUGIN_NAME "nbdkit-cairn-plugin.so"

struct cairn_server_opts {
	const char *plugin; /* path of nbdkit-cairn-plugin.so */
	const char *repo;
	const char *snapshot; /* a full id, so that "latest" cannot move */
	const char *disk;
	/* how the plugin gets the password: a file, else this string in
	 * its environment (CAIRN_PASSWORD); both NULL: none */
	const char *password_file;
	const char *password;
	/* a remote repository's transfer options (NULL fields: defaults) */
	const struct cairn_backend_opts *backend;
	/* the on-disk chunk cache (serve/blob_cache.h): an absolute
	 * directory or NULL, and its bound (0: the default) */
	const char *cache_dir;
	uint64_t cache_size;
	const char *socket; /* a unix socket, or */
	const char *port; /* a TCP port on address (default 127.0.0.1) */
	const char *address;
	const char *pidfile; /* required */
	bool foreground;
	bool world_connectable; /* socket mode 0666: QEMU runs as another user */
	unsigned timeout_s; /* for becoming ready; 0: 30 */
};

struct cairn_server;

/* Finds the plugin: $CAIRN_NBDKIT_PLUGIN, beside a cairn binary that runs
 * from a build tree (build/ next to it, or the build dir it is in), then
 * ../lib/cairn relative to the executable. */
int cairn_server_find_plugin(char *out, size_t len, char *err, size_t errlen);

int cairn_server_start(const struct cairn_server_opts *o, struct cairn_server **out,
		       char *err, size_t errlen);
pid_t cairn_server_pid(const struct cairn_server *srv);
/* Foreground servers: relays the server's log lines to report until it
 * exits; when *cancel becomes non-zero it is asked to stop (SIGTERM).
 * 0 when it ended cleanly or on request, -EIO otherwise. */
int cairn_server_wait(struct cairn_server *srv, cairn_report_fn report, void *opaque,
		      const volatile int *cancel, char *err, size_t errlen);
/* Frees the handle. A detached server keeps running; a foreground one is
 * stopped (it would die with its parent anyway). */
void cairn_server_free(struct cairn_server *srv);
DEFINE_CLEANUP(struct cairn_server *, cairn_server_free);

/* Stops the nbdkit whose pid file this is (SIGTERM, then SIGKILL after a
 * few seconds) and removes the pid file and socket (may be NULL). A pid
 * file whose process is gone, or is not nbdkit, only gets removed:
 * returns 0 then too. -ENOENT when there is no pid file. */
int cairn_server_stop(const char *pidfile, const char *socket, char *err, size_t errlen);
/* The pid in a pid file: > 0, 0 when empty or junk, -errno when unreadable. */
pid_t cairn_pidfile_read(const char *pidfile);
/* The pid of a live nbdkit owning pidfile, or 0. */
pid_t cairn_server_running(const char *pidfile);

#endif
