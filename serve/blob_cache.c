/* On-disk chunk cache: entry files under a directory descriptor, a
 * ledger (serve/cache_ledger.h) of their sizes and last uses under a
 * mutex, and eviction passes under flock(2) on the lock file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob_cache.h"
#include "cache_ledger.h"

#define MAGIC "cairncc1"
#define LOW_WATER_PCT 90
#define STALE_TMP_S 3600 /* a writer that crashed mid-entry left it */

struct blob_cache {
	int dirfd, lockfd;
	uint64_t max_bytes;
	pthread_mutex_t lock; /* ledger, evicting */
	struct cache_ledger *ledger;
	bool evicting;
	_Atomic uint64_t tmp_seq;
};

static uint64_t disk_bytes(uint64_t file_size)
{
	return (file_size + 4095) / 4096 * 4096;
}

static void entry_path(const cairn_id *id, char out[80])
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	snprintf(out, 80, "blobs/%.2s/%s", hex, hex);
}

static int64_t stat_mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Adds the entries of one blobs/xx directory to l. */
static int scan_subdir(int blobsfd, const char *sub, struct cache_ledger *l)
{
	int fd = openat(blobsfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	int rc = 0;
	for (struct dirent *de; rc == 0 && (de = readdir(dir));) {
		cairn_id id;
		struct stat st;
		if (strlen(de->d_name) != 2 * CAIRN_ID_LEN ||
		    hex_decode(de->d_name, id.b, CAIRN_ID_LEN) < 0 ||
		    fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		rc = cache_ledger_set(l, &id, disk_bytes((uint64_t)st.st_size), stat_mtime_ns(&st));
	}
	closedir(dir);
	return rc;
}

/* Takes stock of every entry on disk (any process's). */
static int scan(struct blob_cache *c)
{
	cache_ledger_clear(c->ledger);
	int blobsfd = openat(c->dirfd, "blobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (blobsfd < 0)
		return -errno;
	int rc = 0;
	for (unsigned i = 0; i < 256 && rc == 0; i++) {
		char sub[3];
		snprintf(sub, sizeof(sub), "%02x", i);
		rc = scan_subdir(blobsfd, sub, c->ledger);
	}
	close(blobsfd);
	return rc;
}

/* Under c->lock: brings the cache to its low-water mark, with every
 * process's entries counted (the lock file keeps two passes apart). */
static void evict(struct blob_cache *c)
{
	if (c->evicting || cache_ledger_bytes(c->ledger) <= c->max_bytes)
		return;
	c->evicting = true;
	flock(c->lockfd, LOCK_EX);
	cairn_id *victims = NULL;
	long n = scan(c) < 0 ? 0
			     : cache_ledger_victims(c->ledger, c->max_bytes / 100 * LOW_WATER_PCT,
						    &victims);
	for (long i = 0; i < n; i++) {
		char path[80];
		entry_path(&victims[i], path);
		unlinkat(c->dirfd, path, 0);
		cache_ledger_remove(c->ledger, &victims[i]);
	}
	free(victims);
	flock(c->lockfd, LOCK_UN);
	c->evicting = false;
}

/* Temporary files older than STALE_TMP_S are left by writers that died. */
static void remove_stale_tmp(struct blob_cache *c)
{
	int fd = openat(c->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	int64_t now = now_ns();
	for (struct dirent *de; (de = readdir(dir));) {
		struct stat st;
		if (de->d_name[0] != '.' && fstatat(dirfd(dir), de->d_name, &st, 0) == 0 &&
		    now - stat_mtime_ns(&st) > (int64_t)STALE_TMP_S * 1000000000)
			unlinkat(dirfd(dir), de->d_name, 0);
	}
	closedir(dir);
}

/* mkdir -p: the default directory's parents (~/.cache) may not exist. */
static int make_dirs(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1;; p++) {
		bool last = !*p;
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (last)
			return 0;
		*p = '/';
	}
}

static int make_layout(const char *dir, int *dirfd, int *lockfd)
{
	int rc = make_dirs(dir);
	if (rc < 0)
		return rc;
	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	if ((mkdirat(*dirfd, "blobs", 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(*dirfd, "tmp", 0700) < 0 && errno != EEXIST))
		return -errno;
	*lockfd = openat(*dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return *lockfd < 0 ? -errno : 0;
}

int blob_cache_open(const char *dir, uint64_t max_bytes, struct blob_cache **out,
		    char *err, size_t errlen)
{
	struct blob_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	c->dirfd = c->lockfd = -1;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->lock, NULL);
	int rc = make_layout(dir, &c->dirfd, &c->lockfd);
	if (rc == 0)
		rc = cache_ledger_new(&c->ledger);
	if (rc == 0)
		rc = scan(c);
	if (rc < 0) {
		blob_cache_close(c);
		return set_err(err, errlen, rc, "cache directory %s: %s", dir, strerror(-rc));
	}
	remove_stale_tmp(c);
	pthread_mutex_lock(&c->lock);
	evict(c);
	pthread_mutex_unlock(&c->lock);
	*out = c;
	return 0;
}

void blob_cache_close(struct blob_cache *c)
{
	if (!c)
		return;
	if (c->dirfd >= 0)
		close(c->dirfd);
	if (c->lockfd >= 0)
		close(c->lockfd);
	cache_ledger_free(c->ledger);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

uint64_t blob_cache_bytes(struct blob_cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t n = cache_ledger_bytes(c->ledger);
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Reads a whole entry file: its header into sb, its stored bytes into
 * *stored (malloc'd). -EBADMSG when it is not a complete entry. */
static int read_entry(int fd, struct cairn_stored_blob *sb, uint8_t **stored)
{
	struct stat st;
	uint8_t h[BLOB_CACHE_ENTRY_HEADER];
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < BLOB_CACHE_ENTRY_HEADER || pread_full(fd, h, sizeof(h), 0) < 0 ||
	    memcmp(h, MAGIC, 8) || h[10] || h[11])
		return -EBADMSG;
	*sb = (struct cairn_stored_blob){ .type = h[8], .flags = h[9], .raw_len = get_le32(h + 12),
					  .len = get_le32(h + 16) };
	if ((uint64_t)st.st_size != BLOB_CACHE_ENTRY_HEADER + (uint64_t)sb->len ||
	    sb->len > CAIRN_MAX_CHUNK * 2)
		return -EBADMSG;
	if (!(*stored = malloc(sb->len ? sb->len : 1)))
		return -ENOMEM;
	int rc = pread_full(fd, *stored, sb->len, BLOB_CACHE_ENTRY_HEADER);
	sb->bytes = *stored;
	return rc < 0 ? -EBADMSG : 0;
}

static void drop_entry(struct blob_cache *c, const cairn_id *id, const char *path)
{
	unlinkat(c->dirfd, path, 0);
	pthread_mutex_lock(&c->lock);
	cache_ledger_remove(c->ledger, id);
	pthread_mutex_unlock(&c->lock);
}

int blob_cache_get(struct blob_cache *c, struct cairn_repo *r, const cairn_id *id, void *buf,
		   size_t cap, size_t *len)
{
	char path[80];
	entry_path(id, path);
	_cleanup_close_ int fd = openat(c->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct cairn_stored_blob sb;
	_cleanup_free_ uint8_t *stored = NULL;
	int rc = read_entry(fd, &sb, &stored);
	if (rc == 0)
		rc = cairn_repo_decode_stored(r, id, &sb, buf, cap);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		drop_entry(c, id, path);
		return 0;
	}
	*len = (size_t)rc;
	futimens(fd, NULL); /* its last use, for every process's eviction */
	pthread_mutex_lock(&c->lock);
	/* out of memory leaves it unrecorded: the next scan finds it */
	(void)cache_ledger_set(c->ledger, id, disk_bytes(BLOB_CACHE_ENTRY_HEADER + sb.len),
			       now_ns());
	pthread_mutex_unlock(&c->lock);
	return 1;
}

static int write_tmp(struct blob_cache *c, const struct cairn_stored_blob *b, char tmp[64])
{
	snprintf(tmp, 64, "tmp/%ld.%llu", (long)getpid(),
		 (unsigned long long)atomic_fetch_add(&c->tmp_seq, 1));
	int fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	uint8_t h[BLOB_CACHE_ENTRY_HEADER] = { 0 };
	memcpy(h, MAGIC, 8);
	h[8] = b->type;
	h[9] = b->flags;
	put_le32(h + 12, b->raw_len);
	put_le32(h + 16, b->len);
	int rc = pwrite_full(fd, h, sizeof(h), 0);
	if (rc == 0)
		rc = pwrite_full(fd, b->bytes, b->len, sizeof(h));
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(c->dirfd, tmp, 0);
	return rc;
}

int blob_cache_put(struct blob_cache *c, const cairn_id *id, const struct cairn_stored_blob *b)
{
	char path[80], tmp[64];
	entry_path(id, path);
	int rc = write_tmp(c, b, tmp);
	if (rc < 0)
		return rc;
	path[8] = '\0'; /* blobs/xx */
	if (mkdirat(c->dirfd, path, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	path[8] = '/';
	if (rc == 0 && renameat(c->dirfd, tmp, c->dirfd, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(c->dirfd, tmp, 0);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	rc = cache_ledger_set(c->ledger, id, disk_bytes(BLOB_CACHE_ENTRY_HEADER + b->len),
			      now_ns());
	evict(c);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
