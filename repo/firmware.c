/* Firmware state files of a snapshot (see firmware.h): stored as data
 * blobs, described in the manifest's "firmware" array. */
#include <errno.h>
#include <jansson.h>

#include "firmware.h"
#include "internal.h"

static void file_clear(struct cairn_firmware_file *f)
{
	free(f->kind);
	free(f->path);
	free(f->chunks);
}

void firmware_free(struct cairn_snapshot *s)
{
	for (size_t i = 0; i < s->nfirmware; i++)
		file_clear(&s->firmware[i]);
	free(s->firmware);
	s->firmware = NULL;
	s->nfirmware = 0;
}

static struct cairn_firmware_file *grow(struct cairn_snapshot *s)
{
	struct cairn_firmware_file *v =
		realloc(s->firmware, (s->nfirmware + 1) * sizeof(*s->firmware));
	if (!v)
		return NULL;
	s->firmware = v;
	memset(&v[s->nfirmware], 0, sizeof(*v));
	return &v[s->nfirmware];
}

int cairn_firmware_add(struct cairn_repo *r, struct cairn_writer *w, struct cairn_snapshot *s,
		       const char *kind, const char *path, uint32_t mode, const void *data,
		       size_t len, uint64_t *new_bytes)
{
	struct cairn_firmware_file *f = grow(s);
	if (!f)
		return -ENOMEM;
	uint32_t cs = cairn_repo_chunk_size(r);
	f->kind = strdup(kind);
	f->path = strdup(path);
	f->mode = mode & 07777;
	f->size = len;
	f->chunk_size = cs;
	f->nchunks = (len + cs - 1) / cs;
	f->chunks = calloc(f->nchunks + 1, sizeof(cairn_id));
	if (!f->kind || !f->path || !f->chunks) {
		file_clear(f);
		return -ENOMEM;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < f->nchunks; i++) {
		const uint8_t *p = (const uint8_t *)data + i * cs;
		size_t n = MIN((size_t)cs, len - i * cs);
		if (all_zero(p, n))
			continue; /* the zero id, never stored */
		bool added = false;
		size_t stored = 0;
		cairn_repo_chunk_id(r, p, n, &f->chunks[i]);
		rc = cairn_writer_put(w, CAIRN_BLOB_DATA, &f->chunks[i], p, n, &added, &stored);
		if (rc == 0 && added && new_bytes)
			*new_bytes += stored;
	}
	if (rc < 0) {
		file_clear(f);
		return rc;
	}
	s->nfirmware++;
	return 0;
}

int cairn_firmware_read(struct cairn_repo *r, const struct cairn_firmware_file *f,
			uint8_t **data)
{
	*data = NULL;
	if (f->size > CAIRN_FIRMWARE_MAX_FILE)
		return repo_err(r, -EBADMSG, "firmware file %s is too large", f->path);
	_cleanup_free_ uint8_t *buf = malloc(f->size + 1);
	_cleanup_free_ uint8_t *chunk = malloc(f->chunk_size);
	if (!buf || !chunk)
		return -ENOMEM;
	for (size_t i = 0; i < f->nchunks; i++) {
		size_t want = (size_t)MIN((uint64_t)f->chunk_size, f->size - i * f->chunk_size);
		uint8_t *to = buf + i * f->chunk_size;
		if (!memcmp(&f->chunks[i], &cairn_zero_id, sizeof(cairn_id))) {
			memset(to, 0, want);
			continue;
		}
		int n = cairn_repo_read_blob(r, &f->chunks[i], chunk, f->chunk_size);
		if (n >= 0 && (size_t)n != want)
			n = repo_err(r, -EBADMSG, "firmware file %s: chunk %zu has the wrong size",
				     f->path, i);
		if (n < 0)
			return n;
		memcpy(to, chunk, want);
	}
	*data = TAKE_PTR(buf);
	return 0;
}

size_t cairn_firmware_count(const struct cairn_snapshot *s, const char *kind)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nfirmware; i++)
		n += !strcmp(s->firmware[i].kind, kind);
	return n;
}

json_t *firmware_to_json(const struct cairn_snapshot *s)
{
	json_t *items = json_array();
	for (size_t i = 0; items && i < s->nfirmware; i++) {
		const struct cairn_firmware_file *f = &s->firmware[i];
		json_t *chunks = json_array();
		char hex[65];
		for (size_t c = 0; chunks && c < f->nchunks; c++) {
			hex_encode(f->chunks[c].b, CAIRN_ID_LEN, hex);
			json_array_append_new(chunks, json_string(hex));
		}
		json_t *item = chunks ? json_pack("{s:s, s:s, s:I, s:I, s:I, s:o}", "kind", f->kind,
						  "path", f->path, "mode", (json_int_t)f->mode,
						  "size", (json_int_t)f->size, "chunk_size",
						  (json_int_t)f->chunk_size, "chunks", chunks)
				      : NULL;
		if (!item || json_array_append_new(items, item) < 0) {
			json_decref(items);
			return NULL;
		}
	}
	return items;
}

static int parse_item(json_t *ji, struct cairn_firmware_file *f)
{
	const char *kind, *path;
	json_int_t mode, size, cs;
	json_t *chunks;
	if (json_unpack(ji, "{s:s, s:s, s:I, s:I, s:I, s:o}", "kind", &kind, "path", &path,
			"mode", &mode, "size", &size, "chunk_size", &cs, "chunks", &chunks) < 0 ||
	    !json_is_array(chunks) || size < 0 || size > CAIRN_FIRMWARE_MAX_FILE ||
	    cs < CAIRN_MIN_CHUNK || cs > CAIRN_MAX_CHUNK || mode < 0 || mode > 07777 ||
	    json_array_size(chunks) != (size_t)((size + cs - 1) / cs))
		return -EBADMSG;
	f->kind = strdup(kind);
	f->path = strdup(path);
	f->mode = (uint32_t)mode;
	f->size = (uint64_t)size;
	f->chunk_size = (uint32_t)cs;
	f->nchunks = json_array_size(chunks);
	f->chunks = calloc(f->nchunks + 1, sizeof(cairn_id));
	if (!f->kind || !f->path || !f->chunks)
		return -ENOMEM;
	for (size_t i = 0; i < f->nchunks; i++) {
		const char *h = json_string_value(json_array_get(chunks, i));
		if (!h || hex_decode(h, f->chunks[i].b, CAIRN_ID_LEN) < 0)
			return -EBADMSG;
	}
	return 0;
}

int firmware_parse(json_t *items, struct cairn_snapshot *s)
{
	if (!items)
		return 0;
	if (!json_is_array(items))
		return -EBADMSG;
	s->firmware = calloc(json_array_size(items) + 1, sizeof(*s->firmware));
	if (!s->firmware)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(items); i++) {
		int rc = parse_item(json_array_get(items, i), &s->firmware[s->nfirmware++]);
		if (rc < 0)
			return rc;
	}
	return 0;
}
