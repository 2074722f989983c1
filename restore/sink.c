/* Restore targets: a sparse raw file or a qcow2 image
 * written through qemu-nbd (libnbd handles are thread-safe). Both are
 * written under a temporary name and renamed into place by commit. */
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <stdio.h>
#include <sys/stat.h>

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
	struct sink base;
	struct nbd_handle *nbd;
};

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
	if (!s->target || asprintf(&s->tmp, "%s.cairn-tmp-%d", target, (int)getpid()) < 0) {
		s->tmp = NULL;
		return -ENOMEM;
	}
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
	if (s->tmp)
		unlink(s->tmp);
	free(s->tmp);
	free(s->target);
}

static void raw_free(struct sink *s)
{
	struct raw_sink *r = (struct raw_sink *)s;
	if (r->fd >= 0)
		close(r->fd);
	if (r->direct_fd >= 0)
		close(r->direct_fd);
	sink_base_free(s);
	free(r);
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
	r->fd = open(target, O_WRONLY | O_EXCL | O_CLOEXEC);
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

int sink_raw_open(const char *target, uint64_t size, bool force, struct sink **out,
		  char *err, size_t errlen)
{
	struct stat st;
	struct raw_sink *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = r->direct_fd = -1;
	r->base.write = raw_write;
	r->base.commit = raw_commit;
	r->base.free = raw_free;
	if (stat(target, &st) == 0 && S_ISBLK(st.st_mode)) {
		int rc = open_device(r, target, size, force, err, errlen);
		if (rc < 0) {
			raw_free(&r->base);
			return rc;
		}
		*out = &r->base;
		return 0;
	}
	int rc = make_tmp_name(&r->base, target, force, err, errlen);
	if (rc == 0) {
		r->fd = open(r->base.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (r->fd < 0)
			rc = set_err(err, errlen, -errno, "cannot create %s: %s",
				     r->base.tmp, strerror(errno));
	}
	/* a sparse file of the full size: zero chunks stay holes */
	if (rc == 0 && ftruncate(r->fd, (off_t)size) < 0)
		rc = io_err(&r->base, -errno, "size");
	if (rc == 0)
		r->direct_fd = open(r->base.tmp, O_WRONLY | O_DIRECT | O_CLOEXEC);
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
	if (nbd_pwrite(q->nbd, buf, len, off, 0) < 0)
		return set_err(s->err, s->errlen, -EIO, "cannot write %s: %s", s->target,
			       nbd_get_error());
	return 0;
}

static int qcow2_commit(struct sink *s)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	if (nbd_flush(q->nbd, 0) < 0 || nbd_shutdown(q->nbd, 0) < 0)
		return set_err(s->err, s->errlen, -EIO, "cannot write %s: %s", s->target,
			       nbd_get_error());
	nbd_close(q->nbd); /* waits for qemu-nbd to exit */
	q->nbd = NULL;
	_cleanup_close_ int fd = open(s->tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return io_err(s, -errno, "sync");
	return rename_into_place(s);
}

static void qcow2_free(struct sink *s)
{
	struct qcow2_sink *q = (struct qcow2_sink *)s;
	if (q->nbd)
		nbd_close(q->nbd);
	sink_base_free(s);
	free(q);
}

int sink_qcow2_open(const char *target, uint64_t size, bool force,
		    struct sink **out, char *err, size_t errlen)
{
	struct qcow2_sink *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->base.write = qcow2_write;
	q->base.commit = qcow2_commit;
	q->base.free = qcow2_free;
	int rc = make_tmp_name(&q->base, target, force, err, errlen);
	char sz[32];
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", "--",
			   q->base.tmp, sz, NULL };
	if (rc == 0)
		rc = run_command(create, NULL, err, errlen);
	char *serve[] = { "qemu-nbd", "-f", "qcow2", "--",
			  q->base.tmp, NULL };
	if (rc == 0 && (!(q->nbd = nbd_create()) ||
			nbd_connect_systemd_socket_activation(q->nbd, serve) < 0))
		rc = set_err(err, errlen, -EIO, "cannot serve %s with qemu-nbd: %s",
			     q->base.tmp, nbd_get_error());
	if (rc < 0) {
		qcow2_free(&q->base);
		return rc;
	}
	*out = &q->base;
	return 0;
}
