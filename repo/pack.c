/* Packs: blobs back to back, then a directory so indexes can be rebuilt
 * from packs alone (docs/design.md section 6). */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

#define PACK_MAGIC "CAIRNPK1"
#define PACK_END "CAIRNPKE"
#define TRAILER_LEN 12

void pack_name(const cairn_id *id, char *out, size_t len)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	snprintf(out, len, "data/%.2s/%s", hex, hex);
}

int pack_builder_add(struct pack_builder *pb, struct idx_entry *e,
		     const uint8_t *stored)
{
	if (pb->data.len == 0) {
		/* page-aligned and big enough for a whole pack, so the backend
		 * can write it with O_DIRECT */
		if (!pb->data.p && pb->size_hint) {
			size_t cap = pb->size_hint + CAIRN_MAX_CHUNK + 65536;
			pb->data.p = aligned_alloc(4096, cap);
			pb->data.cap = pb->data.p ? cap : 0;
		}
		int rc = buf_append(&pb->data, PACK_MAGIC, 8);
		if (rc < 0)
			return rc;
	}
	if (array_grow(&pb->entries, &pb->cap, pb->n, sizeof(*pb->entries)) < 0)
		return -ENOMEM;
	e->offset = (uint32_t)pb->data.len;
	int rc = buf_append(&pb->data, stored, e->stored_len);
	if (rc < 0)
		return rc;
	pb->entries[pb->n++] = *e;
	return 0;
}

int pack_builder_write(struct cairn_repo *r, struct pack_builder *pb,
		       cairn_id *id)
{
	struct buf dir = { 0 }, sealed = { 0 };
	uint8_t tmp[ENTRY_LEN];
	put_le32(tmp, (uint32_t)pb->n);
	int rc = buf_append(&dir, tmp, 4);
	for (size_t i = 0; rc == 0 && i < pb->n; i++) {
		entry_pack(tmp, &pb->entries[i]);
		rc = buf_append(&dir, tmp, ENTRY_LEN);
	}
	if (rc == 0)
		rc = envelope_seal(r, ENV_PACKDIR, dir.p, dir.len, &sealed);
	if (rc == 0)
		rc = buf_append(&pb->data, sealed.p, sealed.len);
	put_le32(tmp, (uint32_t)sealed.len);
	memcpy(tmp + 4, PACK_END, 8);
	if (rc == 0)
		rc = buf_append(&pb->data, tmp, TRAILER_LEN);
	buf_free(&dir);
	buf_free(&sealed);
	if (rc < 0)
		return repo_err(r, rc, "cannot assemble pack: %s", strerror(-rc));
	return put_hashed(r, "data", &pb->data, id);
}

void pack_builder_free(struct pack_builder *pb)
{
	buf_free(&pb->data);
	free(pb->entries);
	memset(pb, 0, sizeof(*pb));
}

static int parse_dir_plain(const uint8_t *p, size_t len, uint64_t dir_start,
			   struct idx_entry **entries, size_t *n)
{
	if (len < 4)
		return -EBADMSG;
	uint32_t count = get_le32(p);
	if ((len - 4) / ENTRY_LEN != count || (len - 4) % ENTRY_LEN)
		return -EBADMSG;
	struct idx_entry *v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++) {
		entry_unpack(&v[i], p + 4 + (size_t)i * ENTRY_LEN);
		if (v[i].offset < 8 ||
		    (uint64_t)v[i].offset + v[i].stored_len > dir_start) {
			free(v);
			return -EBADMSG;
		}
	}
	*entries = v;
	*n = count;
	return 0;
}

/* Parses the trailer of a pack whose last `len` bytes are in tail. */
static int trailer_dir_len(const uint8_t *tail, size_t len, uint64_t pack_size,
			   uint32_t *dir_len)
{
	if (len < TRAILER_LEN || memcmp(tail + len - 8, PACK_END, 8))
		return -EBADMSG;
	*dir_len = get_le32(tail + len - TRAILER_LEN);
	if ((uint64_t)*dir_len + TRAILER_LEN + 8 > pack_size)
		return -EBADMSG;
	return 0;
}

int pack_parse_directory(struct cairn_repo *r, const uint8_t *pack, size_t len,
			 struct idx_entry **entries, size_t *n)
{
	uint32_t dlen;
	if (len < 8 + TRAILER_LEN || memcmp(pack, PACK_MAGIC, 8))
		return -EBADMSG;
	int rc = trailer_dir_len(pack, len, len, &dlen);
	if (rc < 0)
		return rc;
	uint64_t dstart = len - TRAILER_LEN - dlen;
	struct buf plain = { 0 };
	rc = envelope_open(r, ENV_PACKDIR, pack + dstart, dlen, &plain);
	if (rc == 0)
		rc = parse_dir_plain(plain.p, plain.len, dstart, entries, n);
	buf_free(&plain);
	return rc;
}

int pack_read_directory(struct cairn_repo *r, const char *hexid,
			uint64_t pack_size, struct idx_entry **entries,
			size_t *n)
{
	char name[128];
	snprintf(name, sizeof(name), "data/%.2s/%s", hexid, hexid);
	if (pack_size < 8 + TRAILER_LEN)
		return -EBADMSG;
	/* most directories fit in the last 64 KiB: one read in the common case */
	size_t want = (size_t)MIN(pack_size, 65536u);
	_cleanup_free_ uint8_t *tail = malloc(want);
	if (!tail)
		return -ENOMEM;
	int rc = r->be->ops->get_range(r->be, name, pack_size - want, want, tail);
	if (rc < 0)
		return rc;
	uint32_t dlen;
	rc = trailer_dir_len(tail, want, pack_size, &dlen);
	if (rc < 0)
		return rc;
	uint64_t dstart = pack_size - TRAILER_LEN - dlen;
	_cleanup_free_ uint8_t *dir = NULL;
	const uint8_t *dp;
	if ((uint64_t)dlen + TRAILER_LEN <= want) {
		dp = tail + want - TRAILER_LEN - dlen;
	} else {
		dir = malloc(dlen);
		if (!dir)
			return -ENOMEM;
		rc = r->be->ops->get_range(r->be, name, dstart, dlen, dir);
		if (rc < 0)
			return rc;
		dp = dir;
	}
	struct buf plain = { 0 };
	rc = envelope_open(r, ENV_PACKDIR, dp, dlen, &plain);
	if (rc == 0)
		rc = parse_dir_plain(plain.p, plain.len, dstart, entries, n);
	buf_free(&plain);
	return rc;
}
