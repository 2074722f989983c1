/* qcow2 v3 writer (docs/interop/qcow2.txt in QEMU): guest data is
 * appended cluster by cluster under a lock and written outside it; the
 * guest->host map is kept in memory and turned into L1/L2 tables and
 * refcounts once everything is written, which keeps the hot path free of
 * metadata updates. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>

#include "qcow2.h"
#include "base/util.h"

#define CLUSTER ((uint64_t)QCOW2_CLUSTER_SIZE)
#define CLUSTER_BITS 16
#define L2_ENTRIES (CLUSTER / 8) /* one L2 table maps 512 MiB */
#define REFCOUNT_ORDER 4 /* 16-bit refcounts */
#define RB_ENTRIES (CLUSTER / 2) /* one refcount block covers 2 GiB */
#define MAX_L1_ENTRIES (32u * 1024 * 1024 / 8) /* QEMU refuses larger L1 tables */
/* refcount exactly 1: QEMU may write the cluster in place (qemu-img check
 * reports a missing flag as an error) */
#define OFLAG_COPIED (1ull << 63)
#define HEADER_LEN 104
#define DIRECT_ALIGN 4096u

struct qcow2_writer {
	int fd, direct_fd;
	uint64_t size; /* virtual size, whole sectors */
	uint64_t nclusters; /* guest clusters */
	pthread_mutex_t lock; /* guards map and end */
	uint64_t *map; /* guest cluster -> host offset; 0: unallocated */
	uint64_t end; /* next free host offset, a cluster boundary */
};

/* Where finish() puts the metadata: everything after the data, in this
 * order, so no cluster is ever written twice. */
struct layout {
	uint64_t l1_entries, l1_off, l1_clusters;
	uint64_t l2_off, l2_tables; /* used L2 tables, contiguous */
	uint64_t rb_off, rb_count; /* refcount blocks */
	uint64_t rt_off, rt_clusters; /* refcount table */
	uint64_t file_clusters; /* every cluster of the file */
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

/* Page-aligned, zeroed, whole clusters: writable with O_DIRECT. */
static uint8_t *alloc_clusters(uint64_t n)
{
	uint8_t *p = aligned_alloc(DIRECT_ALIGN, n * CLUSTER);
	if (p)
		memset(p, 0, n * CLUSTER);
	return p;
}

void qcow2_writer_free(struct qcow2_writer *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->lock);
	free(w->map);
	free(w);
}

int qcow2_writer_new(int fd, int direct_fd, uint64_t size, struct qcow2_writer **out)
{
	if (size > (uint64_t)MAX_L1_ENTRIES * L2_ENTRIES * CLUSTER)
		return -EFBIG;
	struct qcow2_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->direct_fd = direct_fd;
	w->size = div_up(size, 512) * 512;
	w->nclusters = div_up(w->size, CLUSTER);
	w->end = CLUSTER; /* cluster 0 holds the header, written last */
	pthread_mutex_init(&w->lock, NULL);
	/* calloc: untouched parts of a large map cost no memory */
	w->map = calloc(MAX(w->nclusters, 1), sizeof(*w->map));
	if (!w->map) {
		qcow2_writer_free(w);
		return -ENOMEM;
	}
	/* Data can never need more room than header + virtual size. Sizing
	 * the (sparse) file to that now means data writes do not extend it:
	 * extending O_DIRECT writes are serialized and journaled by the
	 * filesystem. finish() cuts the file to its real end. Past the
	 * filesystem's file size limit (EFBIG) the writes extend the file:
	 * slower, but a sparse disk may still fit. */
	if (ftruncate(fd, (off_t)(w->end + w->nclusters * CLUSTER)) < 0 &&
	    errno != EFBIG) {
		int rc = -errno;
		qcow2_writer_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

/* Page-aligned parts go through O_DIRECT, a short tail through the page
 * cache. */
static int put(const struct qcow2_writer *w, const void *buf, size_t len, uint64_t off)
{
	size_t direct = 0;
	if (w->direct_fd >= 0 && !((uintptr_t)buf % DIRECT_ALIGN) && !(off % DIRECT_ALIGN))
		direct = len / DIRECT_ALIGN * DIRECT_ALIGN;
	int rc = direct ? pwrite_full(w->direct_fd, buf, direct, off) : 0;
	if (rc == 0 && direct < len)
		rc = pwrite_full(w->fd, (const uint8_t *)buf + direct, len - direct,
				 off + direct);
	return rc;
}

/* Called with the lock held. */
static int reserve(struct qcow2_writer *w, uint64_t first, uint64_t n, uint64_t *host)
{
	for (uint64_t i = first; i < first + n; i++)
		if (w->map[i])
			return -EINVAL;
	*host = w->end;
	for (uint64_t i = 0; i < n; i++)
		w->map[first + i] = w->end + i * CLUSTER;
	w->end += n * CLUSTER;
	return 0;
}

int qcow2_writer_write(struct qcow2_writer *w, const void *buf, size_t len,
		       uint64_t off)
{
	if (!len || off % CLUSTER || off > w->size || len > w->size - off)
		return -EINVAL;
	uint64_t host;
	pthread_mutex_lock(&w->lock);
	int rc = reserve(w, off / CLUSTER, div_up(len, CLUSTER), &host);
	pthread_mutex_unlock(&w->lock);
	/* The rest of a short last cluster is never written: it stays a
	 * hole in the file and reads as zeros. */
	return rc < 0 ? rc : put(w, buf, len, host);
}

int qcow2_writer_read(struct qcow2_writer *w, void *buf, size_t len, uint64_t off)
{
	if (off > w->size || len > w->size - off)
		return -EINVAL;
	uint8_t *p = buf;
	while (len) {
		size_t in = CLUSTER - off % CLUSTER, n = MIN(len, in);
		pthread_mutex_lock(&w->lock);
		uint64_t host = w->map[off / CLUSTER];
		pthread_mutex_unlock(&w->lock);
		int rc = host ? pread_full(w->fd, p, n, host + off % CLUSTER) : 0;
		if (rc == -EIO) /* the hole past a short last write */
			rc = 0, memset(p, 0, n);
		if (rc < 0)
			return rc;
		if (!host)
			memset(p, 0, n);
		p += n, off += n, len -= n;
	}
	return 0;
}

static bool l2_used(const struct qcow2_writer *w, uint64_t l1_index)
{
	uint64_t first = l1_index * L2_ENTRIES;
	uint64_t last = MIN(first + L2_ENTRIES, w->nclusters);
	for (uint64_t i = first; i < last; i++)
		if (w->map[i])
			return true;
	return false;
}

static void plan_layout(const struct qcow2_writer *w, struct layout *l)
{
	memset(l, 0, sizeof(*l));
	l->l1_entries = div_up(w->nclusters, L2_ENTRIES);
	for (uint64_t i = 0; i < l->l1_entries; i++)
		l->l2_tables += l2_used(w, i);
	uint64_t c = w->end / CLUSTER;
	l->l2_off = c * CLUSTER;
	c += l->l2_tables;
	l->l1_off = c * CLUSTER;
	l->l1_clusters = div_up(l->l1_entries * 8, CLUSTER);
	c += l->l1_clusters;
	/* the refcount structures count themselves too: grow them until
	 * they cover the whole file including their own clusters */
	for (;;) {
		uint64_t total = c + l->rb_count + l->rt_clusters;
		uint64_t rb = div_up(total, RB_ENTRIES);
		uint64_t rt = div_up(rb * 8, CLUSTER);
		if (rb == l->rb_count && rt == l->rt_clusters)
			break;
		l->rb_count = rb;
		l->rt_clusters = rt;
	}
	l->rb_off = c * CLUSTER;
	l->rt_off = l->rb_off + l->rb_count * CLUSTER;
	l->file_clusters = c + l->rb_count + l->rt_clusters;
}

static void fill_l2(const struct qcow2_writer *w, uint64_t l1_index, uint8_t *table)
{
	uint64_t first = l1_index * L2_ENTRIES;
	uint64_t n = MIN(L2_ENTRIES, w->nclusters - first);
	memset(table, 0, CLUSTER);
	for (uint64_t i = 0; i < n; i++)
		if (w->map[first + i])
			put_be64(table + i * 8, w->map[first + i] | OFLAG_COPIED);
}

static int write_tables(const struct qcow2_writer *w, const struct layout *l)
{
	if (!l->l1_entries)
		return 0;
	_cleanup_free_ uint8_t *l1 = alloc_clusters(l->l1_clusters);
	_cleanup_free_ uint8_t *l2 = alloc_clusters(1);
	if (!l1 || !l2)
		return -ENOMEM;
	uint64_t off = l->l2_off;
	for (uint64_t i = 0; i < l->l1_entries; i++) {
		if (!l2_used(w, i))
			continue;
		fill_l2(w, i, l2);
		int rc = put(w, l2, CLUSTER, off);
		if (rc < 0)
			return rc;
		put_be64(l1 + i * 8, off | OFLAG_COPIED);
		off += CLUSTER;
	}
	return put(w, l1, l->l1_clusters * CLUSTER, l->l1_off);
}

/* Every cluster of the file is in use exactly once: refcount 1 up to the
 * end of the file, 0 beyond. */
static int write_refcounts(const struct qcow2_writer *w, const struct layout *l)
{
	_cleanup_free_ uint8_t *rt = alloc_clusters(l->rt_clusters);
	_cleanup_free_ uint8_t *rb = alloc_clusters(1);
	if (!rt || !rb)
		return -ENOMEM;
	for (uint64_t b = 0; b < l->rb_count; b++) {
		uint64_t first = b * RB_ENTRIES;
		uint64_t n = MIN(RB_ENTRIES, l->file_clusters - first);
		memset(rb, 0, CLUSTER);
		for (uint64_t i = 0; i < n; i++)
			put_be16(rb + i * 2, 1);
		uint64_t off = l->rb_off + b * CLUSTER;
		int rc = put(w, rb, CLUSTER, off);
		if (rc < 0)
			return rc;
		put_be64(rt + b * 8, off);
	}
	return put(w, rt, l->rt_clusters * CLUSTER, l->rt_off);
}

static int write_header(const struct qcow2_writer *w, const struct layout *l)
{
	_cleanup_free_ uint8_t *h = alloc_clusters(1);
	if (!h)
		return -ENOMEM;
	memcpy(h, "QFI\xfb", 4);
	put_be32(h + 4, 3); /* version */
	/* 8: no backing file, 32: no encryption */
	put_be32(h + 20, CLUSTER_BITS);
	put_be64(h + 24, w->size);
	put_be32(h + 36, (uint32_t)l->l1_entries);
	put_be64(h + 40, l->l1_entries ? l->l1_off : 0);
	put_be64(h + 48, l->rt_off);
	put_be32(h + 56, (uint32_t)l->rt_clusters);
	/* 60: no snapshots; 72, 80, 88: no incompatible (dirty bit clear),
	 * compatible or autoclear features */
	put_be32(h + 96, REFCOUNT_ORDER);
	put_be32(h + 100, HEADER_LEN);
	/* the zeros after the header are the end-of-extensions marker */
	return put(w, h, CLUSTER, 0);
}

int qcow2_writer_finish(struct qcow2_writer *w)
{
	struct layout l;
	plan_layout(w, &l);
	int rc = write_tables(w, &l);
	if (rc == 0)
		rc = write_refcounts(w, &l);
	if (rc == 0 && ftruncate(w->fd, (off_t)(l.file_clusters * CLUSTER)) < 0)
		rc = -errno;
	/* the header last: until here the file does not parse as qcow2 */
	return rc < 0 ? rc : write_header(w, &l);
}
