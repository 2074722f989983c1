/* The restore journal (restore/journal.h): a 48-byte header, then one bit
 * per slot, little-endian 64-bit words. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "journal.h"

#define MAGIC "CAIRNRJ1"
#define HEADER_LEN 48

static void identity(const struct cairn_disk *d, uint8_t out[16])
{
	XXH3_state_t *st = XXH3_createState();
	if (!st) { /* cannot happen in practice; an identity nobody matches */
		memset(out, 0xff, 16);
		return;
	}
	XXH3_128bits_reset(st);
	uint64_t v[2] = { htole64(d->size), htole64(d->chunk_size) };
	XXH3_128bits_update(st, d->name, strlen(d->name) + 1);
	XXH3_128bits_update(st, v, sizeof(v));
	XXH3_128bits_update(st, d->map, d->nchunks * sizeof(*d->map));
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
	XXH3_freeState(st);
}

int journal_init(struct restore_journal *j, const char *target, const struct cairn_disk *d,
		 char *err, size_t errlen)
{
	memset(j, 0, sizeof(*j));
	j->size = d->size;
	j->nchunks = d->nchunks;
	j->chunk_size = d->chunk_size;
	j->nwords = (d->nchunks + 63) / 64;
	identity(d, j->identity);
	if (asprintf(&j->path, "%s.cairn-journal", target) < 0)
		j->path = NULL;
	j->done = calloc(MAX(j->nwords, 1), sizeof(*j->done));
	if (!j->path || !j->done)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

void journal_release(struct restore_journal *j)
{
	free(j->path);
	free(j->done);
	memset(j, 0, sizeof(*j));
}

static void encode_header(const struct restore_journal *j, uint8_t h[HEADER_LEN])
{
	memset(h, 0, HEADER_LEN);
	memcpy(h, MAGIC, 8);
	memcpy(h + 8, j->identity, 16);
	uint64_t size = htole64(j->size), n = htole64(j->nchunks);
	uint32_t cs = htole32(j->chunk_size);
	memcpy(h + 24, &size, 8);
	memcpy(h + 32, &cs, 4);
	memcpy(h + 40, &n, 8);
}

int journal_load(struct restore_journal *j, char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(j->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return set_err(err, errlen, -errno, "cannot resume: %s: %s", j->path,
			       strerror(errno));
	uint8_t want[HEADER_LEN], got[HEADER_LEN];
	encode_header(j, want);
	struct stat st;
	if (fstat(fd, &st) < 0 || pread_full(fd, got, HEADER_LEN, 0) < 0 || memcmp(got, MAGIC, 8))
		return set_err(err, errlen, -EINVAL, "cannot resume: %s is not a restore journal",
			       j->path);
	if (memcmp(got, want, HEADER_LEN))
		return set_err(err, errlen, -EINVAL,
			       "cannot resume: %s belongs to a restore of another snapshot, disk or chunk size; remove it or restore without --resume",
			       j->path);
	if ((uint64_t)st.st_size != HEADER_LEN + j->nwords * sizeof(uint64_t))
		return set_err(err, errlen, -EINVAL, "cannot resume: %s is truncated", j->path);
	int rc = pread_full(fd, j->done, j->nwords * sizeof(uint64_t), HEADER_LEN);
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot read %s: %s", j->path, strerror(-rc));
	for (size_t i = 0; i < j->nwords; i++)
		j->done[i] = le64toh(j->done[i]);
	if (j->nchunks % 64) /* no bits past the last slot */
		j->done[j->nwords - 1] &= (1ull << (j->nchunks % 64)) - 1;
	return 0;
}

static int write_journal(const struct restore_journal *j, int fd)
{
	uint8_t h[HEADER_LEN];
	encode_header(j, h);
	int rc = pwrite_full(fd, h, HEADER_LEN, 0);
	/* in pieces: the bitmap of a large disk is not copied whole */
	uint64_t words[512];
	for (size_t i = 0; rc == 0 && i < j->nwords; i += ARRAY_SIZE(words)) {
		size_t n = MIN(ARRAY_SIZE(words), j->nwords - i);
		for (size_t k = 0; k < n; k++)
			words[k] = htole64(j->done[i + k]);
		rc = pwrite_full(fd, words, n * sizeof(uint64_t), HEADER_LEN + i * sizeof(uint64_t));
	}
	return rc == 0 && fsync(fd) < 0 ? -errno : rc;
}

int journal_store(const struct restore_journal *j, char *err, size_t errlen)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", j->path) < 0)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return set_err(err, errlen, -errno, "cannot create %s: %s", tmp, strerror(errno));
	int rc = write_journal(j, fd);
	close(fd);
	if (rc == 0 && rename(tmp, j->path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return set_err(err, errlen, rc, "cannot write %s: %s", j->path, strerror(-rc));
	}
	return 0;
}

void journal_remove(const struct restore_journal *j)
{
	if (j->path)
		unlink(j->path);
}
