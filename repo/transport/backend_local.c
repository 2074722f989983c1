/* Local directory backend: temp file + fsync + rename + directory fsync. */
#include "repo/backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

struct local_backend {
	struct cairn_backend base;
	int dirfd;
};

static struct local_backend *to_local(struct cairn_backend *b)
{
	return (struct local_backend *)b;
}

static int fsync_dir_at(int dirfd, const char *dir)
{
	_cleanup_close_ int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

static int mkdir_parent(int dirfd, const char *name)
{
	char parent[256];
	const char *slash = strrchr(name, '/');
	if (!slash)
		return 0;
	size_t n = (size_t)(slash - name);
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, name, n);
	parent[n] = '\0';
	if (mkdirat(dirfd, parent, 0755) == 0) {
		/* a new fan-out directory must survive a crash too */
		const char *up = strrchr(parent, '/');
		if (up) {
			char grand[256];
			memcpy(grand, parent, (size_t)(up - parent));
			grand[up - parent] = '\0';
			return fsync_dir_at(dirfd, grand);
		}
		return fsync_dir_at(dirfd, ".");
	}
	return errno == EEXIST ? 0 : -errno;
}

/* Large page-aligned objects (packs) bypass the page cache: they are
 * written once and rarely read soon, and copying them into the cache costs
 * more CPU than compressing them does on some hosts. */
#define DIRECT_MIN (1u << 20)
#define DIRECT_ALIGN 4096u

static int write_object(int fd, const void *data, size_t len)
{
	size_t direct = len & ~(size_t)(DIRECT_ALIGN - 1);
	int flags = fcntl(fd, F_GETFL);
	if (len < DIRECT_MIN || (uintptr_t)data % DIRECT_ALIGN || flags < 0 ||
	    fcntl(fd, F_SETFL, flags | O_DIRECT) < 0)
		return pwrite_full(fd, data, len, 0);
	int rc = pwrite_full(fd, data, direct, 0);
	if (rc == -EINVAL) /* the filesystem refused O_DIRECT after all */
		direct = 0;
	else if (rc < 0)
		return rc;
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return pwrite_full(fd, (const uint8_t *)data + direct, len - direct, direct);
}

static int local_put(struct cairn_backend *b, const char *name,
		     const void *data, size_t len)
{
	struct local_backend *l = to_local(b);
	char tmp[300], dir[256] = ".";
	uint8_t rnd[8];
	char rhex[17];
	int rc = mkdir_parent(l->dirfd, name);
	if (rc < 0)
		return rc;
	const char *slash = strrchr(name, '/');
	if (slash) {
		memcpy(dir, name, (size_t)(slash - name));
		dir[slash - name] = '\0';
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	hex_encode(rnd, sizeof(rnd), rhex);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, rhex);

	int fd = openat(l->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = write_object(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(l->dirfd, tmp, l->dirfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(l->dirfd, tmp, 0);
		return rc;
	}
	return fsync_dir_at(l->dirfd, dir);
}

static int local_get(struct cairn_backend *b, const char *name, struct buf *out)
{
	struct local_backend *l = to_local(b);
	_cleanup_close_ int fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	out->len = 0;
	int rc = buf_reserve(out, (size_t)st.st_size + 1);
	if (rc < 0)
		return rc;
	rc = pread_full(fd, out->p, (size_t)st.st_size, 0);
	if (rc < 0)
		return rc;
	out->len = (size_t)st.st_size;
	return 0;
}

static int local_get_range(struct cairn_backend *b, const char *name,
			   uint64_t off, size_t len, void *out)
{
	struct local_backend *l = to_local(b);
	_cleanup_close_ int fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return pread_full(fd, out, len, off);
}

static int local_stat(struct cairn_backend *b, const char *name, uint64_t *size)
{
	struct stat st;
	if (fstatat(to_local(b)->dirfd, name, &st, 0) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int local_mtime(struct cairn_backend *b, const char *name, int64_t *ns)
{
	struct stat st;
	if (fstatat(to_local(b)->dirfd, name, &st, 0) < 0)
		return -errno;
	*ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

/* *out NULL (and 0) when dir does not exist: like an empty one. */
static int open_dir_at(int dirfd, const char *dir, DIR **out)
{
	*out = NULL;
	int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!(*out = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	return 0;
}

static int list_dir(int dirfd, const char *dir, bool fanout, cairn_list_fn fn,
		    void *opaque)
{
	DIR *d;
	int orc = open_dir_at(dirfd, dir, &d);
	if (!d)
		return orc;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		struct stat st;
		if (fstatat(dirfd, path, &st, 0) < 0) {
			if (errno == ENOENT)
				continue;
			rc = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (fanout)
				rc = list_dir(dirfd, path, false, fn, opaque);
			continue;
		}
		rc = fn(opaque, de->d_name, (uint64_t)st.st_size);
	}
	closedir(d);
	return rc;
}

static int local_list(struct cairn_backend *b, const char *dir,
		      cairn_list_fn fn, void *opaque)
{
	return list_dir(to_local(b)->dirfd, dir, !strcmp(dir, "data"), fn, opaque);
}

static int local_remove(struct cairn_backend *b, const char *name)
{
	struct local_backend *l = to_local(b);
	if (unlinkat(l->dirfd, name, 0) < 0)
		return -errno;
	const char *slash = strrchr(name, '/');
	if (!slash)
		return fsync_dir_at(l->dirfd, ".");
	char dir[256];
	memcpy(dir, name, (size_t)(slash - name));
	dir[slash - name] = '\0';
	return fsync_dir_at(l->dirfd, dir);
}

static bool stale_temp(int dirfd, const char *name, int64_t before_s)
{
	struct stat st;
	return !strncmp(name, ".tmp-", 5) && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && st.st_mtime < before_s;
}

/* Removes the stale temp files of one directory, and with depth > 0 of its
 * subdirectories (data/ fans out into 256). */
static int sweep_dir(int parent, const char *dir, int depth, int64_t before_s, size_t *removed)
{
	DIR *d;
	int orc = open_dir_at(parent, dir, &d);
	if (!d)
		return orc;
	int fd = dirfd(d);
	int rc = 0;
	bool gone = false;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.' && stale_temp(fd, de->d_name, before_s)) {
			if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
				rc = -errno;
			else
				gone = true, (*removed)++;
		} else if (depth > 0 && de->d_type == DT_DIR && de->d_name[0] != '.') {
			rc = sweep_dir(fd, de->d_name, depth - 1, before_s, removed);
		}
	}
	if (rc == 0 && gone && fsync(fd) < 0)
		rc = -errno;
	closedir(d);
	return rc;
}

static int local_sweep(struct cairn_backend *b, int64_t max_age_s, size_t *removed)
{
	*removed = 0;
	return sweep_dir(to_local(b)->dirfd, ".", 2, (int64_t)time(NULL) - max_age_s, removed);
}

static void local_free(struct cairn_backend *b)
{
	struct local_backend *l = to_local(b);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(b->location);
	free(l);
}

static const struct cairn_backend_ops local_ops = {
	.put = local_put,
	.get = local_get,
	.get_range = local_get_range,
	.stat = local_stat,
	.mtime = local_mtime,
	.list = local_list,
	.remove = local_remove,
	.free = local_free,
	.sweep = local_sweep,
};

static const char *const top_dirs[] = { "data", "index", "snapshots", "keys", "locks" };

int cairn_backend_local_open(const char *path, bool create,
			     struct cairn_backend **out, char *err,
			     size_t errlen)
{
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "cannot create %s: %s", path,
			       strerror(errno));
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return set_err(err, errlen, -errno, "cannot open repository %s: %s",
			       path, strerror(errno));
	if (create) {
		if (faccessat(dirfd, "config", F_OK, 0) == 0) {
			close(dirfd);
			return set_err(err, errlen, -EEXIST,
				       "%s already holds a repository", path);
		}
		for (size_t i = 0; i < ARRAY_SIZE(top_dirs); i++) {
			if (mkdirat(dirfd, top_dirs[i], 0700) < 0 && errno != EEXIST) {
				int rc = -errno;
				close(dirfd);
				return set_err(err, errlen, rc, "cannot create %s/%s: %s",
					       path, top_dirs[i], strerror(-rc));
			}
		}
	}
	struct local_backend *l = calloc(1, sizeof(*l));
	if (!l || !(l->base.location = strdup(path))) {
		free(l);
		close(dirfd);
		return -ENOMEM;
	}
	l->base.ops = &local_ops;
	l->dirfd = dirfd;
	*out = &l->base;
	return 0;
}
