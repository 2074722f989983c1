/* A write-once qcow2 v3 image writer, internal to restore/.
 *
 * The image has 64 KiB clusters, 16-bit refcounts, no backing file, no
 * compression, no encryption and no feature bits. Guest data is appended
 * to the file in the order write() is called; the L1/L2 tables, the
 * refcount structures and finally the header are written by finish(), so
 * until then the file is not a valid image (a crash leaves no image that
 * claims to be consistent). Unwritten guest clusters stay unallocated and
 * read as zeros.
 *
 * write() may be called from several threads at once for distinct ranges
 * that start on a cluster boundary. Each guest cluster is written at most
 * once; the part of a cluster past the end of a short range reads as
 * zeros. After a failed write() the image must be abandoned.
 *
 * The writer borrows the file descriptors; the caller closes them and
 * makes the file durable. Functions return 0 or a negative errno. */
#ifndef CAIRN_QCOW2_H
#define CAIRN_QCOW2_H

#include <stdint.h>
#include <stddef.h>

#define QCOW2_CLUSTER_SIZE (64u * 1024)

struct qcow2_writer;

/* fd: an empty file opened for writing; direct_fd: the same file opened
 * with O_DIRECT, or -1. size: the virtual size; qcow2 sizes are counted in
 * 512-byte sectors by QEMU, so it is rounded up to one (the padding reads
 * as zeros). */
int qcow2_writer_new(int fd, int direct_fd, uint64_t size, struct qcow2_writer **out);

/* Allocates host clusters for [off, off + len) and writes buf there. buf
 * should be 4096-byte aligned for the O_DIRECT path. -EINVAL: a range
 * that is unaligned, out of bounds or already written. */
int qcow2_writer_write(struct qcow2_writer *w, const void *buf, size_t len,
		       uint64_t off);

/* Reads guest bytes [off, off + len) back as written so far (unwritten
 * clusters read as zeros). fd must be open for reading too. */
int qcow2_writer_read(struct qcow2_writer *w, void *buf, size_t len, uint64_t off);

/* Writes the metadata and then the header. Not thread-safe: call it once
 * all writes have returned. */
int qcow2_writer_finish(struct qcow2_writer *w);

void qcow2_writer_free(struct qcow2_writer *w);

#endif
