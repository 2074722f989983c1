/* What serve, mount, instant-restore and verify-boot share: the
 * repository, snapshot and password resolved from the command line and
 * checked before any server starts, so that their errors are cairn's one
 * line and not nbdkit's. The sessions themselves are serve/session.h. */
#ifndef CAIRN_CLI_SERVE_H
#define CAIRN_CLI_SERVE_H

#include <limits.h>

#include "cli.h"
#include "serve/server.h"

/* --cache-dir DIR and --cache-size SIZE (serve/blob_cache.h): what serve,
 * mount, instant-restore and verify-boot accept on top of their own. */
#define SERVE_OPT_CACHE_DIR 300
#define SERVE_OPT_CACHE_SIZE 301
#define SERVE_CACHE_OPTIONS                                                    \
	{ "cache-dir", required_argument, NULL, SERVE_OPT_CACHE_DIR },         \
	{ "cache-size", required_argument, NULL, SERVE_OPT_CACHE_SIZE }
#define SERVE_CACHE_CASES                                                      \
	case SERVE_OPT_CACHE_DIR:                                              \
	case SERVE_OPT_CACHE_SIZE
#define SERVE_CACHE_USAGE "[--cache-dir DIR] [--cache-size SIZE]"
struct serve_cache_args {
	const char *dir;
	uint64_t size;
	bool size_set;
};
/* Takes opt, one of SERVE_CACHE_OPTIONS' ids (an option callback's
 * SERVE_CACHE_CASES): 0, or a negative errno on bad input (printed). */
int serve_cache_option(struct serve_cache_args *a, int opt, const char *arg);

struct serve_source {
	struct cairn_repo *r;
	struct cairn_snapshot *s;
	char *password; /* for the plugin's environment; NULL: none or a file */
	char repo[PATH_MAX]; /* absolute (nbdkit leaves the cwd), or a URL */
	struct cairn_backend_opts backend; /* the command line's, for the plugin */
	char backend_files[3][PATH_MAX]; /* its files, absolute */
	char password_file[PATH_MAX]; /* absolute, or empty */
	/* the on-disk chunk cache: an absolute directory, or empty for none;
	 * by default one under $XDG_CACHE_HOME (or /var/cache as root) for a
	 * remote repository and none for a local one */
	char cache_dir[PATH_MAX];
	uint64_t cache_size;
	char plugin[PATH_MAX];
	char snap_hex[65];
	/* what opening said on stderr (a damaged manifest, index file), for
	 * the command's --json */
	json_t *warnings;
};

/* Opens REPO, loads the index, finds SNAP (of name), finds the plugin,
 * settles the cache directory (cache may be NULL: the defaults).
 * Returns 0 or a negative errno (the error printed; nothing left open). */
int serve_source_open(const struct cli *c, const char *repo, const char *snap,
		      const char *name, const struct serve_cache_args *cache,
		      struct serve_source *src);
/* The disk to serve, its chunk map loaded (so a damaged map fails here);
 * disk NULL picks the only one. NULL (error printed, *rc its errno). */
struct cairn_disk *serve_source_disk(struct serve_source *src, const char *disk, int *rc);
/* Server options for one disk (socket, pidfile etc. left to the caller);
 * d NULL: for every disk (serve/session.h sets it). */
void serve_source_opts(const struct serve_source *src, const struct cairn_disk *d,
		       struct cairn_server_opts *o);
void serve_source_close(struct serve_source *src);

/* cairn_serve_run_dir() (serve/session.h), its error printed. */
int serve_run_dir(char *out, size_t len);

#endif
