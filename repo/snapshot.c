/* Snapshot manifests and chunk-map pages (docs/design.md section 9). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "keys.h"

void cairn_snapshot_free(struct cairn_snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndisks; i++) {
		struct cairn_disk *d = &s->disks[i];
		free(d->name);
		free(d->format);
		free(d->path);
		free(d->map);
		free(d->pages);
	}
	free(s->disks);
	free(s->domain_xml);
	free(s->checkpoint);
	free(s->consistency);
	free(s->host_key);
	firmware_free(s);
	for (size_t i = 0; i < s->ntags; i++)
		free(s->tags[i]);
	free(s->tags);
	free(s->name);
	free(s->source);
	free(s->host);
	free(s);
}

void cairn_snapshot_list_free(struct cairn_snapshot **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cairn_snapshot_free(v[i]);
	free(v);
}

const struct cairn_disk *cairn_snapshot_disk(const struct cairn_snapshot *s,
					     const char *name)
{
	for (size_t i = 0; i < s->ndisks; i++)
		if (!strcmp(s->disks[i].name, name))
			return &s->disks[i];
	return NULL;
}

void cairn_snapshot_disk_names(const struct cairn_snapshot *s, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < s->ndisks; i++) {
		size_t at = strlen(out);
		snprintf(out + at, len - at, "%s%s", i ? ", " : "", s->disks[i].name);
	}
}

bool cairn_snapshot_suspicious(const struct cairn_snapshot *s)
{
	for (size_t i = 0; i < s->ndisks; i++)
		if (s->disks[i].anomaly.present && s->disks[i].anomaly.suspicious)
			return true;
	return false;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static int parse_disk(json_t *jd, struct cairn_disk *d)
{
	const char *name, *format = NULL, *path = NULL, *digest = NULL, *digest2 = NULL,
			  *read = NULL;
	json_int_t size, cs, chunks;
	json_t *pages;
	if (json_unpack(jd, "{s:s, s?s, s?s, s:I, s:I, s:I, s:o, s?s, s?s, s?s}", "name", &name,
			"format", &format, "path", &path, "size", &size, "chunk_size",
			&cs, "chunks", &chunks, "pages", &pages, "digest", &digest,
			"digest2", &digest2, "read", &read) < 0 ||
	    !json_is_array(pages) || size < 0 || cs < CAIRN_MIN_CHUNK ||
	    cs > CAIRN_MAX_CHUNK || chunks != (size + cs - 1) / cs ||
	    (digest && hex_decode(digest, d->digest, 16) < 0) ||
	    (digest2 && hex_decode(digest2, d->digest2, 16) < 0))
		return -EBADMSG;
	cairn_anomaly_from_json(json_object_get(jd, "anomaly"), &d->anomaly);
	d->has_digest = digest != NULL;
	d->has_digest2 = digest2 != NULL;
	d->incremental = read && !strcmp(read, "incremental");
	d->name = strdup(name);
	d->format = dup_or_empty(format);
	d->path = dup_or_empty(path);
	d->size = (uint64_t)size;
	d->chunk_size = (uint32_t)cs;
	d->nchunks = (uint64_t)chunks;
	d->npages = json_array_size(pages);
	/* one page per PAGE_IDS chunks, as every writer stored them: the map
	 * a reader allocates (nchunks ids) is then bounded by the page ids the
	 * manifest spells out, not by a number it claims */
	if ((uint64_t)d->npages != (d->nchunks + PAGE_IDS - 1) / PAGE_IDS)
		return -EBADMSG;
	d->pages = calloc(d->npages ? d->npages : 1, sizeof(cairn_id));
	if (!d->name || !d->format || !d->path || !d->pages)
		return -ENOMEM;
	for (size_t i = 0; i < d->npages; i++) {
		const char *h = json_string_value(json_array_get(pages, i));
		if (!h || hex_decode(h, d->pages[i].b, CAIRN_ID_LEN) < 0)
			return -EBADMSG;
	}
	return 0;
}

static int parse_manifest(const struct buf *b, struct cairn_snapshot *s)
{
	json_t *j = json_loadb((const char *)b->p, b->len, 0, NULL);
	json_int_t version, time_ns;
	const char *name, *source = NULL, *host = NULL, *dxml = NULL, *ckpt = NULL,
		   *consistency = NULL;
	json_t *tags = NULL, *disks, *stats = NULL, *parent = NULL, *firmware = NULL;
	int rc = -EBADMSG;
	if (!j || json_unpack(j, "{s:I, s:s, s?s, s?s, s:I, s?o, s?o, s:o, s?o, s?s, s?s, s?s, s?o}",
			      "version", &version, "name", &name, "source", &source,
			      "host", &host, "time_ns", &time_ns, "tags", &tags,
			      "parent", &parent, "disks", &disks, "stats", &stats,
			      "domain_xml", &dxml, "checkpoint", &ckpt, "consistency",
			      &consistency, "firmware", &firmware) < 0 ||
	    version != 1 || !json_is_array(disks))
		goto out;
	s->name = strdup(name);
	s->source = dup_or_empty(source);
	s->host = dup_or_empty(host);
	s->time_ns = time_ns;
	if ((dxml && !(s->domain_xml = strdup(dxml))) || (ckpt && !(s->checkpoint = strdup(ckpt))) ||
	    (consistency && !(s->consistency = strdup(consistency)))) {
		rc = -ENOMEM;
		goto out;
	}
	const char *host_key = json_string_value(json_object_get(j, "host_key"));
	if (host_key && !(s->host_key = strdup(host_key))) {
		rc = -ENOMEM;
		goto out;
	}
	if (parent && !json_is_null(parent)) {
		if (!json_is_string(parent) ||
		    hex_decode(json_string_value(parent), s->parent.b, CAIRN_ID_LEN) < 0)
			goto out;
		s->has_parent = true;
	}
	s->ntags = json_array_size(tags);
	s->tags = calloc(s->ntags + 1, sizeof(char *));
	for (size_t i = 0; s->tags && i < s->ntags; i++)
		s->tags[i] = dup_or_empty(json_string_value(json_array_get(tags, i)));
	s->ndisks = json_array_size(disks);
	s->disks = calloc(s->ndisks + 1, sizeof(*s->disks));
	if (!s->name || !s->source || !s->host || !s->tags || !s->disks) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s->ndisks; i++) {
		rc = parse_disk(json_array_get(disks, i), &s->disks[i]);
		if (rc < 0)
			goto out;
	}
	if ((rc = firmware_parse(firmware, s)) < 0)
		goto out;
	json_int_t br = 0, nc = 0, nb = 0;
	if (stats)
		json_unpack(stats, "{s?I, s?I, s?I}", "bytes_read", &br,
			    "new_chunks", &nc, "new_bytes", &nb);
	s->bytes_read = (uint64_t)br;
	s->new_chunks = (uint64_t)nc;
	s->new_bytes = (uint64_t)nb;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int snapshot_load_manifest(struct cairn_repo *r, const char *hexid,
			   struct cairn_snapshot **out)
{
	struct buf raw = { 0 }, plain = { 0 };
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = calloc(1, sizeof(*s));
	int rc = s ? get_hashed(r, "snapshots", hexid, &raw) : -ENOMEM;
	if (rc == 0)
		rc = envelope_open(r, ENV_SNAPSHOT, raw.p, raw.len, &plain);
	if (rc == 0)
		rc = parse_manifest(&plain, s);
	buf_free(&raw);
	buf_free(&plain);
	if (rc < 0)
		return repo_err(r, rc, "snapshot %.12s is %s (cairn check %s names the damage)",
				hexid, rc == -EBADMSG ? "damaged" : strerror(-rc),
				r->be->location);
	hex_decode(hexid, s->id.b, CAIRN_ID_LEN);
	*out = TAKE_PTR(s);
	return 0;
}

/* One line naming the page and the way to heal: a page missing from the
 * index may be in a pack the index lost (repair index); a damaged one is
 * named with every snapshot it hurts by check --read-data. Other errors
 * (a store that does not answer) keep the reader's own line. */
static int page_error(struct cairn_repo *r, const struct cairn_disk *d, size_t i, int why,
		      bool in_index)
{
	char id[65];
	hex_encode(d->pages[i].b, CAIRN_ID_LEN, id);
	if (why != -EBADMSG && (in_index || why != -ENOENT))
		return why;
	if (why == -ENOENT)
		return repo_err(r, -EBADMSG,
				"chunk map page %zu (blob %.16s) of disk %s is missing from the index "
				"(cairn repair index %s rebuilds it from the packs)", i, id, d->name,
				r->be->location);
	return repo_err(r, -EBADMSG,
			"chunk map page %zu (blob %.16s) of disk %s is damaged (cairn check %s "
			"--read-data names every snapshot it hurts)", i, id, d->name, r->be->location);
}

int cairn_snapshot_load_map(struct cairn_repo *r, struct cairn_disk *d)
{
	if (d->map)
		return 0;
	if (!r->index_loaded) {
		int rc = cairn_repo_load_index(r);
		if (rc < 0)
			return rc;
	}
	/* the map is as large as the manifest says: believe it only when
	 * its page count agrees (as written), which bounds it by the
	 * manifest's own size */
	if (d->npages != (d->nchunks + PAGE_IDS - 1) / PAGE_IDS)
		return repo_err(r, -EBADMSG, "chunk map of disk %s is damaged (%zu pages for %llu chunks)",
				d->name, d->npages, (unsigned long long)d->nchunks);
	d->map = calloc(d->nchunks ? d->nchunks : 1, sizeof(cairn_id));
	_cleanup_free_ uint8_t *page = malloc(PAGE_IDS * CAIRN_ID_LEN);
	if (!d->map || !page)
		return -ENOMEM;
	uint64_t at = 0, last = 0; /* ids in the page before */
	for (size_t i = 0; i < d->npages; i++) {
		/* a page equal to the one before (zeros of a thin disk) is read once */
		if (i && !memcmp(&d->pages[i], &d->pages[i - 1], sizeof(cairn_id)) &&
		    at + last <= d->nchunks) {
			memcpy(d->map + at, d->map + at - last, last * CAIRN_ID_LEN);
			at += last;
			continue;
		}
		struct cairn_blob_info info;
		int len = cairn_repo_blob_info(r, &d->pages[i], &info);
		if (len == 0 && info.raw_len > PAGE_IDS * CAIRN_ID_LEN)
			len = -EBADMSG;
		bool in_index = len != -ENOENT;
		if (len >= 0)
			len = cairn_repo_read_blob(r, &d->pages[i], page,
						   PAGE_IDS * CAIRN_ID_LEN);
		if (len < 0)
			return page_error(r, d, i, len, in_index);
		if (len % CAIRN_ID_LEN || at + (uint64_t)len / CAIRN_ID_LEN > d->nchunks)
			return page_error(r, d, i, -EBADMSG, true);
		memcpy(d->map + at, page, (size_t)len);
		last = (uint64_t)len / CAIRN_ID_LEN;
		at += last;
	}
	if (at != d->nchunks)
		return repo_err(r, -EBADMSG, "chunk map of disk %s is incomplete", d->name);
	return 0;
}

static int save_pages(struct cairn_repo *r, struct cairn_writer *w,
		      struct cairn_disk *d)
{
	d->npages = (size_t)((d->nchunks + PAGE_IDS - 1) / PAGE_IDS);
	free(d->pages);
	d->pages = calloc(d->npages ? d->npages : 1, sizeof(cairn_id));
	if (!d->pages)
		return -ENOMEM;
	for (size_t i = 0; i < d->npages; i++) {
		uint64_t first = (uint64_t)i * PAGE_IDS;
		size_t len = (size_t)MIN((uint64_t)PAGE_IDS, d->nchunks - first) * CAIRN_ID_LEN;
		/* a page equal to the one before (zeros of a thin disk) is hashed once */
		if (i && len == PAGE_IDS * CAIRN_ID_LEN &&
		    !memcmp(d->map + first, d->map + first - PAGE_IDS, len)) {
			d->pages[i] = d->pages[i - 1];
			continue;
		}
		cairn_repo_chunk_id(r, d->map + first, len, &d->pages[i]);
		int rc = cairn_writer_put(w, CAIRN_BLOB_PAGE, &d->pages[i],
					  d->map + first, len, NULL, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static json_t *disk_json(const struct cairn_disk *d)
{
	char hex[65], digest[33], digest2[33];
	json_t *pages = json_array();
	for (size_t i = 0; pages && i < d->npages; i++) {
		hex_encode(d->pages[i].b, CAIRN_ID_LEN, hex);
		json_array_append_new(pages, json_string(hex));
	}
	hex_encode(d->digest, 16, digest);
	hex_encode(d->digest2, 16, digest2);
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:s*, s:s*, s:s}", "name", d->name,
			 "format", d->format ? d->format : "", "path",
			 d->path ? d->path : "", "size", (json_int_t)d->size,
			 "chunk_size", (json_int_t)d->chunk_size, "chunks",
			 (json_int_t)d->nchunks, "pages", pages, "digest",
			 d->has_digest ? digest : NULL, "digest2",
			 d->has_digest2 ? digest2 : NULL, "read",
			 d->incremental ? "incremental" : "full");
	if (j && d->anomaly.present)
		json_object_set_new(j, "anomaly", cairn_anomaly_to_json(&d->anomaly));
	return j;
}

int cairn_snapshot_save(struct cairn_repo *r, struct cairn_writer *w,
			struct cairn_snapshot *s)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < s->ndisks; i++)
		rc = save_pages(r, w, &s->disks[i]);
	if (rc == 0)
		rc = cairn_writer_flush(w);
	if (rc < 0)
		return rc;

	char when[40], parent[65];
	format_time_utc(s->time_ns, when, sizeof(when));
	json_t *tags = json_array(), *disks = json_array();
	for (size_t i = 0; tags && i < s->ntags; i++)
		json_array_append_new(tags, json_string(s->tags[i]));
	for (size_t i = 0; disks && i < s->ndisks; i++)
		json_array_append_new(disks, disk_json(&s->disks[i]));
	if (s->has_parent)
		hex_encode(s->parent.b, CAIRN_ID_LEN, parent);
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:o, s:s?, s:o, s:{s:I, s:I, s:I}}",
			      "version", 1, "name", s->name, "source", s->source,
			      "host", s->host, "time", when, "time_ns", (json_int_t)s->time_ns,
			      "tags", tags, "parent", s->has_parent ? parent : NULL,
			      "disks", disks, "stats", "bytes_read", (json_int_t)s->bytes_read,
			      "new_chunks", (json_int_t)s->new_chunks, "new_bytes",
			      (json_int_t)s->new_bytes);
	if (j && s->domain_xml)
		json_object_set_new(j, "domain_xml", json_string(s->domain_xml));
	if (j && s->checkpoint)
		json_object_set_new(j, "checkpoint", json_string(s->checkpoint));
	if (j && s->consistency)
		json_object_set_new(j, "consistency", json_string(s->consistency));
	if (j && r->host_key[0]) /* docs/design.md "Host keys" */
		json_object_set_new(j, "host_key", json_string(r->host_key));
	if (j && s->nfirmware) {
		json_t *fw = firmware_to_json(s);
		if (!fw || json_object_set_new(j, "firmware", fw) < 0) {
			json_decref(j);
			j = NULL;
		}
	}
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	/* a key revoked while this backup ran adds no snapshot */
	if ((rc = hostkey_check_record(r)) < 0) {
		free(text);
		return rc;
	}
	struct buf sealed = { 0 };
	rc = envelope_seal(r, ENV_SNAPSHOT, text, strlen(text), &sealed);
	free(text);
	if (rc == 0)
		rc = put_hashed(r, "snapshots", &sealed, &s->id);
	buf_free(&sealed);
	return rc;
}
