/* Disk sources: raw files/devices read directly, other formats through
 * qemu-nbd (started by libnbd over socket activation). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libnbd.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/proc.h"
#include "agent.h"

#define NBD_MAX_STATUS (1ull << 30)

struct extent {
	uint64_t start, end;
};

/* Sorted, merged ranges. */
struct extent_list {
	struct extent *v;
	size_t n, cap;
};

/* A read issued ahead of the backup asking for it. */
struct ahead {
	uint64_t off;
	size_t len;
	uint8_t *buf;
	size_t cap;
	int64_t cookie; /* 0: idle */
};

#define AHEAD 4 /* chunks read ahead, besides the one asked for */

struct cairn_source {
	char *path;
	char *format;
	uint64_t size;
	int fd; /* raw */
	struct nbd_handle *nbd; /* everything else */
	struct extent_list data; /* ranges that may hold non-zero bytes */
	bool has_dirty;
	struct extent_list dirty; /* ranges changed since the checkpoint */
	char *dirty_context; /* NBD meta context of the dirty bitmap */
	struct ahead ahead[AHEAD];
	uint64_t ahead_next; /* where the next read-ahead starts looking */
};

uint64_t cairn_source_size(const struct cairn_source *s) { return s->size; }
const char *cairn_source_format(const struct cairn_source *s) { return s->format; }

static int add_extent(struct extent_list *l, uint64_t start, uint64_t end)
{
	/* a walk may describe again what it already covered: keep the list
	 * sorted and without overlaps */
	if (l->n)
		start = MAX(start, l->v[l->n - 1].end);
	if (start >= end)
		return 0;
	if (l->n && l->v[l->n - 1].end == start) {
		l->v[l->n - 1].end = end;
		return 0;
	}
	if (array_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = (struct extent){ start, end };
	return 0;
}

/* The first extent ending after off (l->n when none). */
static size_t extent_after(const struct extent_list *l, uint64_t off)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->v[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool overlaps(const struct extent_list *l, uint64_t off, uint64_t len)
{
	size_t i = extent_after(l, off);
	return i < l->n && l->v[i].start < off + len;
}

/* From off: the length of the run that is all inside extents of l (*in)
 * or all outside them, up to size. */
static uint64_t run_at(const struct extent_list *l, uint64_t size, uint64_t off, bool *in)
{
	size_t i = extent_after(l, off);
	*in = i < l->n && l->v[i].start <= off;
	uint64_t end = i == l->n ? size : *in ? l->v[i].end : l->v[i].start;
	return MIN(end, size) - off;
}

uint64_t cairn_source_extent(const struct cairn_source *s, uint64_t off, bool *data)
{
	return run_at(&s->data, s->size, off, data);
}

uint64_t cairn_source_changed_extent(const struct cairn_source *s, uint64_t off, bool *changed)
{
	if (!s->has_dirty) {
		*changed = true;
		return s->size - off;
	}
	return run_at(&s->dirty, s->size, off, changed);
}

bool cairn_source_has_data(const struct cairn_source *s, uint64_t off, uint64_t len)
{
	return overlaps(&s->data, off, len);
}

bool cairn_source_has_dirty_map(const struct cairn_source *s) { return s->has_dirty; }

bool cairn_source_changed(const struct cairn_source *s, uint64_t off, uint64_t len)
{
	return !s->has_dirty || overlaps(&s->dirty, off, len);
}

/* Probes the image format with qemu-img, which knows every format QEMU
 * reads; also refuses images locked by a running QEMU. */
static int probe_format(const char *path, char **format, char *err, size_t errlen)
{
	char *argv[] = { "qemu-img", "info", "--output=json", "--", (char *)path, NULL };
	struct buf out = { 0 };
	int rc = run_command(argv, &out, err, errlen);
	if (rc < 0) {
		buf_free(&out);
		return rc;
	}
	json_t *j = json_loadb((const char *)out.p, out.len, 0, NULL);
	buf_free(&out);
	const char *fmt = NULL;
	if (!j || json_unpack(j, "{s:s}", "format", &fmt) < 0) {
		json_decref(j);
		return set_err(err, errlen, -EIO, "%s: cannot parse qemu-img info output", path);
	}
	*format = strdup(fmt);
	json_decref(j);
	return *format ? 0 : -ENOMEM;
}

static int open_raw(struct cairn_source *s, char *err, size_t errlen)
{
	s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return set_err(err, errlen, -errno, "cannot open %s: %s", s->path,
			       strerror(errno));
	off_t end = lseek(s->fd, 0, SEEK_END);
	if (end < 0)
		return set_err(err, errlen, -errno, "%s: %s", s->path, strerror(errno));
	s->size = (uint64_t)end;
	/* map data with SEEK_DATA/SEEK_HOLE; devices without it are all data */
	uint64_t off = 0;
	while (off < s->size) {
		off_t data = lseek(s->fd, (off_t)off, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			return add_extent(&s->data, off, s->size);
		}
		off_t hole = lseek(s->fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)s->size;
		int rc = add_extent(&s->data, (uint64_t)data, MIN((uint64_t)hole, s->size));
		if (rc < 0)
			return rc;
		off = (uint64_t)hole;
	}
	return 0;
}

struct status_walk {
	struct cairn_source *s;
	uint64_t reached; /* end of the last allocation extent described */
	uint64_t dirty_reached;
};

static int extent_cb(void *opaque, const char *metacontext, uint64_t offset,
		     uint32_t *entries, size_t nr_entries, int *error)
{
	struct status_walk *w = opaque;
	bool alloc = !strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION);
	bool dirty = w->s->dirty_context && !strcmp(metacontext, w->s->dirty_context);
	(void)error;
	if (!alloc && !dirty)
		return 0;
	for (size_t i = 0; i + 1 < nr_entries; i += 2) {
		uint64_t end = MIN(offset + entries[i], w->s->size);
		/* allocation: only the zero bit promises zeros (a hole may read
		 * from a backing file); dirty bitmap: bit 0 means changed */
		bool take = alloc ? !(entries[i + 1] & LIBNBD_STATE_ZERO) : (entries[i + 1] & 1);
		if (take && add_extent(alloc ? &w->s->data : &w->s->dirty, offset, end) < 0)
			return -1;
		offset = end;
	}
	if (alloc)
		w->reached = MAX(w->reached, offset);
	else
		w->dirty_reached = MAX(w->dirty_reached, offset);
	return 0;
}

/* Maps data (and dirty) extents of an NBD export. */
static int map_nbd(struct cairn_source *s, char *err, size_t errlen)
{
	int64_t size = nbd_get_size(s->nbd);
	if (size < 0)
		return set_err(err, errlen, -EIO, "%s: %s", s->path, nbd_get_error());
	s->size = (uint64_t)size;
	bool alloc = nbd_can_meta_context(s->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	if (s->dirty_context) {
		if (nbd_can_meta_context(s->nbd, s->dirty_context) != 1)
			return set_err(err, errlen, -ENOENT, "%s: the export offers no %s",
				       s->path, s->dirty_context);
		s->has_dirty = true;
	}
	if (!alloc && add_extent(&s->data, 0, s->size) < 0)
		return -ENOMEM;
	if (!alloc && !s->has_dirty)
		return 0;
	/* servers may answer one context for less than the other: walk until
	 * both have covered the disk */
	struct status_walk w = { .s = s, .reached = alloc ? 0 : s->size,
				 .dirty_reached = s->has_dirty ? 0 : s->size };
	while (w.reached < s->size || w.dirty_reached < s->size) {
		uint64_t from = MIN(w.reached, w.dirty_reached);
		uint64_t before = w.reached + w.dirty_reached;
		if (nbd_block_status(s->nbd, MIN(s->size - from, NBD_MAX_STATUS), from,
				     (nbd_extent_callback){ .callback = extent_cb,
							    .user_data = &w },
				     0) < 0)
			return set_err(err, errlen, -EIO, "%s: block status: %s", s->path,
				       nbd_get_error());
		if (w.reached + w.dirty_reached <= before)
			return set_err(err, errlen, -EIO,
				       "%s: the NBD server made no progress in block status", s->path);
	}
	return 0;
}

static int open_nbd(struct cairn_source *s, char *err, size_t errlen)
{
	s->nbd = nbd_create();
	if (!s->nbd)
		return set_err(err, errlen, -ENOMEM, "libnbd: %s", nbd_get_error());
	/* with a bitmap, qemu-nbd exports it as qemu:dirty-bitmap:NAME */
	const char *bitmap = s->dirty_context ? s->dirty_context + strlen("qemu:dirty-bitmap:") : NULL;
	char *argv[] = { "qemu-nbd", "-r", "-f", s->format, "--", s->path, NULL, NULL, NULL };
	if (bitmap) {
		argv[4] = "-B";
		argv[5] = (char *)bitmap;
		argv[6] = "--";
		argv[7] = s->path;
	}
	if (nbd_add_meta_context(s->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    (s->dirty_context && nbd_add_meta_context(s->nbd, s->dirty_context) < 0) ||
	    nbd_connect_systemd_socket_activation(s->nbd, argv) < 0)
		return set_err(err, errlen, -EIO, "cannot serve %s with qemu-nbd: %s",
			       s->path, nbd_get_error());
	return map_nbd(s, err, errlen);
}

int cairn_source_open_export(const char *socket, const char *export,
			     const char *bitmap, const char *label,
			     struct cairn_source **out, char *err, size_t errlen)
{
	_cleanup_(cairn_source_closep) struct cairn_source *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(label)) || !(s->format = strdup("nbd")))
		return -ENOMEM;
	s->fd = -1;
	if (bitmap && asprintf(&s->dirty_context, "qemu:dirty-bitmap:%s", bitmap) < 0) {
		s->dirty_context = NULL;
		return -ENOMEM;
	}
	if (!(s->nbd = nbd_create()))
		return set_err(err, errlen, -ENOMEM, "libnbd: %s", nbd_get_error());
	if (nbd_set_export_name(s->nbd, export) < 0 ||
	    nbd_add_meta_context(s->nbd, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    (s->dirty_context && nbd_add_meta_context(s->nbd, s->dirty_context) < 0) ||
	    nbd_connect_unix(s->nbd, socket) < 0)
		return set_err(err, errlen, -EIO, "cannot connect to the backup export %s: %s",
			       label, nbd_get_error());
	int rc = map_nbd(s, err, errlen);
	if (rc < 0)
		return rc;
	*out = TAKE_PTR(s);
	return 0;
}

int cairn_source_open(const char *path, struct cairn_source **out, char *err,
		      size_t errlen)
{
	return cairn_source_open_bitmap(path, NULL, out, err, errlen);
}

int cairn_source_open_bitmap(const char *path, const char *bitmap,
			     struct cairn_source **out, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return set_err(err, errlen, -errno, "cannot open image %s: %s", path,
			       strerror(errno));
	if (S_ISDIR(st.st_mode))
		return set_err(err, errlen, -EISDIR, "image %s is a directory", path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return set_err(err, errlen, -EINVAL,
			       "image %s is neither a file nor a block device", path);
	if (access(path, R_OK) < 0)
		return set_err(err, errlen, -errno, "cannot read image %s: %s", path,
			       strerror(errno));
	_cleanup_(cairn_source_closep) struct cairn_source *s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path)))
		return -ENOMEM;
	s->fd = -1;
	if (bitmap && asprintf(&s->dirty_context, "qemu:dirty-bitmap:%s", bitmap) < 0) {
		s->dirty_context = NULL;
		return -ENOMEM;
	}
	int rc = probe_format(path, &s->format, err, errlen);
	if (rc < 0)
		return rc;
	if (bitmap && !strcmp(s->format, "raw"))
		return set_err(err, errlen, -EINVAL, "%s: raw images carry no bitmaps", path);
	rc = !strcmp(s->format, "raw") ? open_raw(s, err, errlen)
				       : open_nbd(s, err, errlen);
	if (rc < 0)
		return rc;
	*out = TAKE_PTR(s);
	return 0;
}

/* NBD servers (QEMU, qemu-nbd) answer requests concurrently: a chunk is
 * read as several requests in flight rather than one at a time. */
#define NBD_SPLIT (64u << 10)
#define NBD_INFLIGHT 16

static int nbd_read_parallel(struct nbd_handle *nbd, void *buf, size_t len, uint64_t off)
{
	int64_t cookies[NBD_INFLIGHT];
	size_t n = 0;
	int rc = 0;
	for (size_t at = 0; at < len; at += NBD_SPLIT) {
		size_t part = MIN((size_t)NBD_SPLIT, len - at);
		if (n == NBD_INFLIGHT || (cookies[n] = nbd_aio_pread(nbd, (uint8_t *)buf + at, part,
								     off + at, NBD_NULL_COMPLETION,
								     0)) < 0) {
			/* too many parts, or the queue refused: read the rest plainly */
			rc = nbd_pread(nbd, (uint8_t *)buf + at, len - at, off + at, 0);
			break;
		}
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		int done;
		while ((done = nbd_aio_command_completed(nbd, cookies[i])) == 0)
			if (nbd_poll(nbd, -1) < 0)
				return -1;
		if (done < 0)
			rc = -1;
	}
	return rc;
}

/* Waits for a read-ahead to finish; the slot is idle afterwards. */
static int ahead_wait(struct nbd_handle *nbd, struct ahead *a)
{
	int done;
	while ((done = nbd_aio_command_completed(nbd, a->cookie)) == 0)
		if (nbd_poll(nbd, -1) < 0)
			break;
	a->cookie = 0;
	return done == 1 ? 0 : -1;
}

/* The next chunk from off (chunk-aligned) on that holds data and (with a
 * dirty map) changed, skipping holes and unchanged ranges run by run;
 * s->size when none. */
static uint64_t next_wanted(const struct cairn_source *s, uint64_t off, size_t chunk)
{
	while (off < s->size) {
		uint64_t len = MIN((uint64_t)chunk, s->size - off), run;
		bool in;
		if (!cairn_source_has_data(s, off, len))
			run = run_at(&s->data, s->size, off, &in);
		else if (!cairn_source_changed(s, off, len))
			run = run_at(&s->dirty, s->size, off, &in);
		else
			return off;
		off += MAX(run / chunk, 1) * chunk;
	}
	return s->size;
}

/* Keeps AHEAD chunks in flight past `after`: the ones a backup reads next,
 * which hold data and (with a dirty map) changed. */
static void ahead_fill(struct cairn_source *s, uint64_t after, size_t chunk)
{
	s->ahead_next = MAX(s->ahead_next, after);
	for (struct ahead *a = s->ahead; a < s->ahead + AHEAD; a++) {
		if (a->cookie)
			continue;
		uint64_t off = next_wanted(s, s->ahead_next, chunk);
		s->ahead_next = off + chunk;
		if (off >= s->size)
			return;
		size_t len = (size_t)MIN((uint64_t)chunk, s->size - off);
		if (a->cap < len) {
			uint8_t *b = realloc(a->buf, len);
			if (!b)
				return;
			a->buf = b;
			a->cap = len;
		}
		int64_t cookie = nbd_aio_pread(s->nbd, a->buf, len, off, NBD_NULL_COMPLETION, 0);
		if (cookie < 0)
			return; /* the reads themselves will report the failure */
		a->cookie = cookie;
		a->off = off;
		a->len = len;
	}
}

/* Serves a chunk from its read-ahead when there is one, else reads it;
 * read-aheads behind it are dropped. */
static int nbd_read(struct cairn_source *s, void *buf, size_t len, uint64_t off)
{
	bool served = false;
	for (struct ahead *a = s->ahead; a < s->ahead + AHEAD; a++) {
		if (!a->cookie || a->off > off)
			continue;
		bool mine = a->off == off && a->len == len;
		if (ahead_wait(s->nbd, a) == 0 && mine) {
			memcpy(buf, a->buf, len);
			served = true;
		}
	}
	if (!served && nbd_read_parallel(s->nbd, buf, len, off) < 0)
		return -1;
	ahead_fill(s, off + len, len);
	return 0;
}

int cairn_source_read(struct cairn_source *s, void *buf, size_t len,
		      uint64_t off, char *err, size_t errlen)
{
	if (s->fd >= 0) {
		int rc = pread_full(s->fd, buf, len, off);
		if (rc == -EIO)
			return set_err(err, errlen, -ESTALE,
				       "image %s shrank while it was read", s->path);
		if (rc < 0)
			return set_err(err, errlen, rc, "cannot read %s at %llu: %s",
				       s->path, (unsigned long long)off, strerror(-rc));
		return 0;
	}
	if (nbd_read(s, buf, len, off) < 0)
		return set_err(err, errlen, -EIO, "cannot read %s at %llu: %s", s->path,
			       (unsigned long long)off, nbd_get_error());
	return 0;
}

int cairn_source_recheck(struct cairn_source *s, char *err, size_t errlen)
{
	uint64_t size;
	if (s->fd >= 0) {
		off_t end = lseek(s->fd, 0, SEEK_END);
		if (end < 0)
			return set_err(err, errlen, -errno, "%s: %s", s->path, strerror(errno));
		size = (uint64_t)end;
	} else {
		/* qemu-nbd fixed the size at open; a change shows as errors */
		return 0;
	}
	if (size != s->size)
		return set_err(err, errlen, -ESTALE,
			       "image %s changed size during the backup (%llu -> %llu bytes)",
			       s->path, (unsigned long long)s->size, (unsigned long long)size);
	return 0;
}

void cairn_source_close(struct cairn_source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->nbd) {
		nbd_shutdown(s->nbd, 0);
		nbd_close(s->nbd); /* read-aheads still in flight die with it */
	}
	for (size_t i = 0; i < AHEAD; i++)
		free(s->ahead[i].buf);
	free(s->data.v);
	free(s->dirty.v);
	free(s->dirty_context);
	free(s->path);
	free(s->format);
	free(s);
}
