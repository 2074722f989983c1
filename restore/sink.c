/* Restore targets: a sparse raw file or a qcow2 image (restore/qcow2.h).
 * Both are written under a temporary name and renamed into place by
 * commit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "qcow2.h"
#include "sink.h"

/* Aligned writes go through an O_DIRECT descriptor: a restore is written
 * once and not read back, so copying it through the page cache only costs
 * CPU and makes the final fsync long. */
#define DIRECT_ALIGN 4096u

struct raw_sink {
	struct sink base;
	int fd;
	int direct_fd; /* -1 when the filesystem refuses O_DIRECT */
};

struct qcow2_sink {
	struct raw_sink file;
	struct qcow2_writer *qw;
};

char *sink_partial_name(const char *target)
{
	char *name;
	return asprintf(&name, "%s.cairn-partial", target) < 0 ? NULL : name;
}

static int make_tmp_name(struct sink *s, const char *target, bool force,
			 char *err, size_t errlen)
{
	struct stat st;
	if (!force && lstat(target, &st) == 0)
		return set_err(err, errlen, -EEXIST,
			       "%s exists; use --force to replace it", target);
	if (stat(target, &st) == 0 && S_ISDIR(st.st_mode))
		return set_err(err, errlen, -EISDIR, "%s is a directory", target);
	if (stat(target, &st) == 0 && !S_ISREG(st.st_mode))
		return set_err(err, errlen, -EINVAL,
			       "%s is neither a regular file nor a block device", target);
	s->target = strdup(target);
	if (!s->target || !(s->tmp = sink_partial_name(target)))
		return -ENOMEM;
	s->err = err;
	s->errlen = errlen;
	return 0;
}

static int io_err(struct sink *s, int rc, const char *what)
{
	return set_err(s->err, s->errlen, rc, "cannot %s %s: %s", what, s->target,
		       strerror(-rc));
}

static int raw_write(struct sink *s, const void *buf, size_t len, uint64_t off)
{
	struct raw_sink *r = (struct raw_sink *)s;
	bool aligned = !(off % DIRECT_ALIGN) && !(len % DIRECT_ALIGN) &&
		       !((uintptr_t)buf % DIRECT_ALIGN);
	int rc = pwrite_full(aligned && r->direct_fd >= 0 ? r->direct_fd : r->fd, buf,
			     len, off);
	return rc < 0 ? io_err(s, rc, "write") : 0;
}

static int raw_read(struct sink *s, void *buf, size_t len, uint64_t off)
{
	struct raw_sink *r = (struct raw_sink *)s;
	int rc = pread_full(r->fd, buf, len, off);
	return rc < 0 ? io_err(s, rc, "read back") : 0;
}

static int raw_reserve(struct sink *s, uint64_t off, uint64_t len)
{
	struct raw_sink *r = (struct raw_sink *)s;
	if (fallocate(r->fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno == EOPNOTSUPP)
		return 0; /* a filesystem without it: written as it comes */
	if (errno == ENOSPC)
		return set_err(s->err, s->errlen, -ENOSPC,
			       "not enough space for %s: the disk's data needs more than its filesystem has free",
			       s->target);
	return io_err(s, -errno, "allocate space for");
}

static int raw_sync(struct sink *s)
{
	struct raw_sink *r = (struct raw_sink *)s;
	return fdatasync(r->fd) < 0 ? -errno : 0;
}

static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

static int rename_into_place(struct sink *s)
{
	if (rename(s->tmp, s->target) < 0)
		return io_err(s, -errno, "rename into");
	free(s->tmp);
	s->tmp = NULL;
	return fsync_parent(s->target);
}

static int raw_commit(struct sink *s)
{
	struct raw_sink *r = (struct raw_sink *)s;
	if (fsync(r->fd) < 0)
		return io_err(s, -errno, "sync");
	return s->tmp ? rename_into_place(s) : 0;
}

static void sink_base_free(struct sink *s)
{
	if (s->tmp && !s->keep)
		unlink(s->tmp);
	free(s->tmp);
	free(s->target);
}

static void raw_release(struct raw_sink *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->direct_fd >= 0)
		close(r->direct_fd);
	sink_base_free(&r->base);
}

static void raw_free(struct sink *s)
{
	raw_release((struct raw_sink *)s);
	free(s);
}

/* A block device (an LV, a disk) is written in place: it cannot be renamed
 * over, and what it held before must be overwritten, zeros included. */
static int open_device(struct raw_sink *r, const char *target, uint64_t size,
		       bool force, char *err, size_t errlen)
{
	if (!force)
		return set_err(err, errlen, -EEXIST,
			       "%s is a block device; use --force to overwrite it", target);
	if (!(r->base.target = strdup(target)))
		return -ENOMEM;
	r->base.err = err;
	r->base.errlen = errlen;
	r->base.needs_zeros = true;
	/* O_EXCL on a block device fails while it is mounted or in use */
	r->fd = open(target, O_RDWR | O_EXCL | O_CLOEXEC);
	if (r->fd < 0)
		return set_err(err, errlen, -errno, "cannot open %s: %s", target,
			       strerror(errno));
	off_t dev_size = lseek(r->fd, 0, SEEK_END);
	if (dev_size < 0 || (uint64_t)dev_size < size)
		return set_err(err, errlen, -ENOSPC,
			       "%s holds %lld bytes, the disk needs %llu", target,
			       (long long)dev_size, (unsigned long long)size);
	return 0;
}

/* The temporary file, plus an O_DIRECT descriptor when the filesystem
 * allows one. 0666: the target gets the mode of any new file under the
 * caller's umask. A partial file left by an interrupted restore is
 * reopened (resume), replaced (force) or an error. */
static int open_tmp_file(struct raw_sink *r, const char *target, bool force, bool resume,
			 char *err, size_t errlen)
{
	int rc = make_tmp_name(&r->base, target, force, err, errlen);
	if (rc < 0)
		return rc;
	if (resume) {
		r->fd = open(r->base.tmp, O_RDWR | O_CLOEXEC);
		if (r->fd < 0)
			return set_err(err, errlen, -errno, "cannot resume: %s: %s",
				       r->base.tmp, strerror(errno));
	} else {
		if (force)
			unlink(r->base.tmp);
		r->fd = open(r->base.tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	}
	if (r->fd < 0 && errno == EEXIST) {
		r->base.keep = true; /* not ours */
		return set_err(err, errlen, -EEXIST,
			       "%s exists (an interrupted restore?); use --resume to carry on or --force to start over",
			       r->base.tmp);
	}
	if (r->fd < 0)
		return set_err(err, errlen, -errno, "cannot create %s: %s", r->base.tmp,
			       strerror(errno));
	r->direct_fd = open(r->base.tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
	return 0;
}

int sink_raw_open(const char *target, uint64_t size, bool force, bool resume,
		  struct sink **out, char *err, size_t errlen)
{
	struct stat st;
	struct raw_sink *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = r->direct_fd = -1;
	r->base.write = raw_write;
	r->base.read = raw_read;
	r->base.sync = raw_sync;
	r->base.commit = raw_commit;
	r->base.free = raw_free;
	int rc;
	if (stat(target, &st) == 0 && S_ISBLK(st.st_mode)) {
		rc = open_device(r, target, size, force, err, errlen);
	} else {
		r->base.reserve = raw_reserve;
		rc = open_tmp_file(r, target, force, resume, err, errlen);
		/* a sparse file of the full size: zero chunks stay holes */
		if (rc == 0 && ftruncate(r->fd, (off_t)size) < 0)
			rc = io_err(&r->base, -errno, "size");
	}
	if (rc < 0) {
		raw_free(&r->base);
		return rc;
	}
	*out = &r->base;
	return 0;
}

static int qcow2_write(struct sink *s, const void *buf, size_t len, uint64_t off)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	int rc = qcow2_writer_write(q->qw, buf, len, off);
	return rc < 0 ? io_err(s, rc, "write") : 0;
}

static int qcow2_read(struct sink *s, void *buf, size_t len, uint64_t off)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	int rc = qcow2_writer_read(q->qw, buf, len, off);
	return rc < 0 ? io_err(s, rc, "read back") : 0;
}

static int qcow2_commit(struct sink *s)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	int rc = qcow2_writer_finish(q->qw);
	return rc < 0 ? io_err(s, rc, "write") : raw_commit(s);
}

static void qcow2_free(struct sink *s)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	qcow2_writer_free(q->qw);
	raw_release(&q->file);
	free(q);
}

int sink_qcow2_open(const char *target, uint64_t size, bool force,
		    struct sink **out, char *err, size_t errlen)
{
	struct qcow2_sink *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	struct sink *s = &q->file.base;
	q->file.fd = q->file.direct_fd = -1;
	s->write = qcow2_write;
	s->read = qcow2_read;
	s->sync = raw_sync; /* the data; the map is written by commit alone */
	s->commit = qcow2_commit;
	s->free = qcow2_free;
	int rc = open_tmp_file(&q->file, target, force, false, err, errlen);
	if (rc == 0) {
		rc = qcow2_writer_new(q->file.fd, q->file.direct_fd, size, &q->qw);
		if (rc < 0)
			rc = io_err(s, rc, "create");
	}
	if (rc < 0) {
		qcow2_free(s);
		return rc;
	}
	*out = s;
	return 0;
}
