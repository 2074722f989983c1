/* Index files (docs/design.md section 7): encoding, writing and walking
 * them. What a loaded index makes of them is load.c's. */
#include <errno.h>

#include "internal.h"

#define INDEX_MAGIC "CAIRNIX1"

int index_encode(const struct cairn_repo *r, const cairn_id *packs,
		 struct idx_entry **entries, const size_t *counts,
		 size_t npacks, struct buf *out)
{
	(void)r;
	uint8_t tmp[ENTRY_LEN];
	out->len = 0;
	int rc = buf_append(out, INDEX_MAGIC, 8);
	put_le32(tmp, (uint32_t)npacks);
	if (rc == 0)
		rc = buf_append(out, tmp, 4);
	for (size_t i = 0; rc == 0 && i < npacks; i++) {
		rc = buf_append(out, packs[i].b, CAIRN_ID_LEN);
		put_le32(tmp, (uint32_t)counts[i]);
		if (rc == 0)
			rc = buf_append(out, tmp, 4);
		for (size_t j = 0; rc == 0 && j < counts[i]; j++) {
			entry_pack(tmp, &entries[i][j]);
			rc = buf_append(out, tmp, ENTRY_LEN);
		}
	}
	return rc;
}

int index_write(struct cairn_repo *r, const struct buf *plain, cairn_id *id)
{
	struct buf sealed = { 0 };
	int rc = envelope_seal(r, ENV_INDEX, plain->p, plain->len, &sealed);
	if (rc == 0)
		rc = put_hashed(r, "index", &sealed, id);
	buf_free(&sealed);
	return rc;
}

int index_walk(const uint8_t *p, size_t len, index_pack_fn fn, void *opaque)
{
	if (len < 12 || memcmp(p, INDEX_MAGIC, 8))
		return -EBADMSG;
	uint32_t npacks = get_le32(p + 8);
	size_t off = 12;
	struct idx_entry *entries = NULL;
	size_t cap = 0;
	int rc = 0;
	for (uint32_t i = 0; rc == 0 && i < npacks; i++) {
		if (len - off < CAIRN_ID_LEN + 4) {
			rc = -EBADMSG;
			break;
		}
		cairn_id pack;
		memcpy(pack.b, p + off, CAIRN_ID_LEN);
		uint32_t n = get_le32(p + off + CAIRN_ID_LEN);
		off += CAIRN_ID_LEN + 4;
		if ((len - off) / ENTRY_LEN < n) {
			rc = -EBADMSG;
			break;
		}
		if (n > cap) {
			free(entries);
			cap = n;
			if (!(entries = malloc(cap * sizeof(*entries)))) {
				rc = -ENOMEM;
				break;
			}
		}
		for (uint32_t j = 0; j < n; j++, off += ENTRY_LEN)
			entry_unpack(&entries[j], p + off);
		rc = fn(opaque, &pack, entries, n);
	}
	free(entries);
	if (rc == 0 && off != len)
		rc = -EBADMSG;
	return rc;
}
