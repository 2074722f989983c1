/* nbdkit-cairn-plugin: one disk of a snapshot as a read-only NBD export,
 * served straight from the repository.
 *
 *   nbdkit -r build/nbdkit-cairn-plugin.so repo=DIR|URL snapshot=SNAP \
 *          [name=VM] [disk=vda] [password-file=F] [cache=64M] \
 *          [s3-credentials-file=F] [sftp-identity=F] [sftp-known-hosts=F] \
 *          [connections=N] [cache-dir=DIR [cache-size=1G]]
 *
 * The password comes from password-file= or CAIRN_PASSWORD. nbdkit has one
 * plugin instance per process, so its state is this file's one global.
 * The repository is opened in .get_ready, before nbdkit forks into the
 * background, so a wrong password or snapshot fails the start; the
 * prefetch threads start in .after_fork, in the process that serves. */
#define NBDKIT_API_VERSION 2
#include <errno.h>
#include <nbdkit-plugin.h>
#include <stdio.h>

#include "reader.h"
#include "repo/repo.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct {
	const char *repo, *snapshot, *name, *disk, *password_file, *cache_dir;
	struct cairn_backend_opts backend;
	uint64_t cache_bytes, cache_dir_bytes;
	struct cairn_repo *r;
	struct cairn_snapshot *s;
	struct cairn_disk *d;
	struct cairn_serve_reader *rd;
} st;

static int config_size(const char *key, const char *value, uint64_t *out)
{
	if (parse_size(value, out) < 0 || *out == 0) {
		nbdkit_error("%s=%s: not a size", key, value);
		return -1;
	}
	return 0;
}

static int cairn_config(const char *key, const char *value)
{
	if (!strcmp(key, "repo"))
		st.repo = value;
	else if (!strcmp(key, "snapshot"))
		st.snapshot = value;
	else if (!strcmp(key, "name"))
		st.name = value;
	else if (!strcmp(key, "disk"))
		st.disk = value;
	else if (!strcmp(key, "password-file"))
		st.password_file = value;
	else if (!strcmp(key, "s3-credentials-file"))
		st.backend.credentials_file = value;
	else if (!strcmp(key, "sftp-identity"))
		st.backend.identity_file = value;
	else if (!strcmp(key, "sftp-known-hosts"))
		st.backend.known_hosts_file = value;
	else if (!strcmp(key, "connections")) {
		char *end;
		unsigned long n = strtoul(value, &end, 10);
		if (*end || n < 1 || n > 64) {
			nbdkit_error("connections=%s: give 1..64", value);
			return -1;
		}
		st.backend.connections = (unsigned)n;
	}
	else if (!strcmp(key, "cache"))
		return config_size(key, value, &st.cache_bytes);
	else if (!strcmp(key, "cache-dir"))
		st.cache_dir = value;
	else if (!strcmp(key, "cache-size"))
		return config_size(key, value, &st.cache_dir_bytes);
	else {
		nbdkit_error("unknown parameter '%s'", key);
		return -1;
	}
	return 0;
}

static int cairn_config_complete(void)
{
	if (!st.repo || !st.snapshot) {
		nbdkit_error("repo= and snapshot= are required");
		return -1;
	}
	return 0;
}

#define cairn_config_help                                                      \
	"repo=DIR|URL         (required) repository (a path, s3:, sftp:)\n"    \
	"snapshot=SNAP        (required) snapshot id, unique prefix or latest\n" \
	"name=VM              which VM's snapshots 'latest' picks from\n"       \
	"disk=D               disk to serve (required when there are several)\n" \
	"password-file=F      password (else CAIRN_PASSWORD)\n"                  \
	"cache=SIZE           decoded chunks in memory (default 128M)\n"        \
	"cache-dir=DIR        keep fetched chunks in DIR (as stored: encrypted\n" \
	"                     when the repository is); none by default\n"       \
	"cache-size=SIZE      bound of cache-dir (default 1G)\n"                \
	"s3-credentials-file=F, sftp-identity=F, sftp-known-hosts=F,\n"         \
	"connections=N        a remote repository's options, as in cairn(1)"

static char *read_password(void)
{
	if (!st.password_file) {
		const char *env = getenv("CAIRN_PASSWORD");
		return env ? strdup(env) : NULL;
	}
	char *pw = NULL, err[512];
	if (read_secret_file(st.password_file, &pw, err, sizeof(err)) < 0)
		nbdkit_error("%s", err);
	return pw;
}

static int pick_disk(void)
{
	if (st.disk) {
		st.d = (struct cairn_disk *)cairn_snapshot_disk(st.s, st.disk);
		if (!st.d)
			nbdkit_error("snapshot has no disk %s", st.disk);
	} else if (st.s->ndisks == 1) {
		st.d = &st.s->disks[0];
	} else {
		nbdkit_error("snapshot has %zu disks: choose one with disk=", st.s->ndisks);
	}
	return st.d ? 0 : -1;
}

static int cairn_get_ready(void)
{
	char err[512] = "";
	_cleanup_free_ char *pw = read_password();
	if (st.password_file && !pw)
		return -1;
	int rc = cairn_repo_open_with(st.repo, pw, &st.backend, &st.r, err, sizeof(err));
	if (pw)
		explicit_bzero(pw, strlen(pw));
	if (rc < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	if ((rc = cairn_snapshot_find_indexed(st.r, st.snapshot, st.name, &st.s)) < 0) {
		nbdkit_error("%s", cairn_repo_error(st.r));
		return -1;
	}
	if (pick_disk() < 0)
		return -1;
	if ((rc = cairn_snapshot_load_map(st.r, st.d)) < 0) {
		nbdkit_error("%s", cairn_repo_error(st.r));
		return -1;
	}
	struct cairn_serve_reader_opts o = { .cache_bytes = st.cache_bytes,
					     .cache_dir = st.cache_dir,
					     .cache_dir_bytes = st.cache_dir_bytes };
	if (cairn_serve_reader_new(st.r, st.d, &o, &st.rd, err, sizeof(err)) < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	return 0;
}

static int cairn_after_fork(void)
{
	char err[256] = "";
	if (cairn_serve_reader_start(st.rd, err, sizeof(err)) < 0) {
		nbdkit_error("%s", err);
		return -1;
	}
	return 0;
}

static void cairn_unload(void)
{
	cairn_serve_reader_free(st.rd);
	cairn_snapshot_free(st.s);
	cairn_repo_close(st.r);
}

/* Per connection: where its last read ended, for read-ahead. */
static void *cairn_open(int readonly)
{
	(void)readonly;
	struct cairn_read_cursor *cur = calloc(1, sizeof(*cur));
	if (!cur)
		nbdkit_error("out of memory");
	return cur;
}

static void cairn_close(void *handle)
{
	free(handle);
}

static int64_t cairn_get_size(void *handle)
{
	(void)handle;
	return (int64_t)cairn_serve_reader_size(st.rd);
}

static int cairn_can_write(void *handle)
{
	(void)handle;
	return 0;
}

/* Every connection sees the same immutable data. */
static int cairn_can_multi_conn(void *handle)
{
	(void)handle;
	return 1;
}

static int cairn_can_extents(void *handle)
{
	(void)handle;
	return 1;
}

static int cairn_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
		       uint32_t flags)
{
	(void)flags;
	char err[512] = "";
	int rc = cairn_serve_reader_pread(st.rd, handle, buf, count, offset, err, sizeof(err));
	if (rc < 0) {
		nbdkit_error("%s", err);
		nbdkit_set_error(rc == -EBADMSG ? EIO : -rc);
		return -1;
	}
	return 0;
}

/* base:allocation from the chunk map: zero chunks were never stored. */
static int cairn_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
			 struct nbdkit_extents *extents)
{
	(void)handle;
	uint64_t end = offset + count;
	while (offset < end) {
		uint64_t len;
		bool zero;
		cairn_serve_reader_extent(st.rd, offset, end, &len, &zero);
		if (nbdkit_add_extent(extents, offset, len,
				      zero ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0) < 0)
			return -1;
		offset += len;
		if (flags & NBDKIT_FLAG_REQ_ONE)
			break;
	}
	return 0;
}

static struct nbdkit_plugin plugin = {
	.name = "cairn",
	.longname = "cairn snapshot disk (read-only)",
	.version = "0.1",
	.config = cairn_config,
	.config_complete = cairn_config_complete,
	.config_help = cairn_config_help,
	.get_ready = cairn_get_ready,
	.after_fork = cairn_after_fork,
	.unload = cairn_unload,
	.open = cairn_open,
	.close = cairn_close,
	.get_size = cairn_get_size,
	.can_write = cairn_can_write,
	.can_multi_conn = cairn_can_multi_conn,
	.can_extents = cairn_can_extents,
	.pread = cairn_pread,
	.extents = cairn_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
