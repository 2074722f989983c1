/* Versions in a versioned S3 bucket (docs/design.md section 23): whether
 * the bucket keeps them, every version under one directory of the
 * repository, and the bytes of one version. A backup host whose storage
 * user may not delete versions can still PUT over a name; these are what
 * check needs to find such an overwrite and undo it. */
#include <errno.h>
#include <stdio.h>

#include "s3.h"

int s3_versioning(struct s3_client *c, bool *on)
{
	struct buf body = { 0 };
	struct s3_request rq = { .method = "GET", .query = "versioning=", .io.out_buf = &body };
	struct s3_response rs;
	char status[32] = "";
	int rc = s3_request(c, &rq, &rs);
	if (rc == 0 && s3_xml_versioning(body.p, body.len, status, sizeof(status)) < 0)
		rc = curl_req_fail(c, -EIO, "GET ?versioning: the server's answer is not a "
				   "VersioningConfiguration");
	buf_free(&body);
	/* a suspended bucket still holds the versions made before */
	*on = rc == 0 && (!strcmp(status, "Enabled") || !strcmp(status, "Suspended"));
	return rc;
}

struct version_walk {
	size_t skip; /* the prefix's length */
	cairn_version_fn fn;
	void *opaque;
};

static int walk_one(void *opaque, const struct s3_version *v)
{
	struct version_walk *w = opaque;
	if (strlen(v->key) <= w->skip)
		return 0;
	const char *name = v->key + w->skip;
	const char *slash = strrchr(name, '/');
	const char *last = slash ? slash + 1 : name;
	if (!*last || *last == '.')
		return 0;
	return w->fn(w->opaque, name, v->version_id, v->latest, v->marker);
}

/* The query of one ListObjectVersions page, its parameters sorted by
 * name as SigV4 wants them. */
static int page_query(const char *enc_prefix, const struct s3_version_page *at, char **q)
{
	struct buf key = { 0 }, vid = { 0 };
	int rc = at->next_key ? s3_uri_encode(at->next_key, false, &key) : 0;
	if (rc == 0 && at->next_version)
		rc = s3_uri_encode(at->next_version, false, &vid);
	if (rc == 0 && asprintf(q, "%s%s%sprefix=%s%s%s&versions=", key.p ? "key-marker=" : "",
				key.p ? (char *)key.p : "", key.p ? "&" : "", enc_prefix,
				vid.p ? "&version-id-marker=" : "", vid.p ? (char *)vid.p : "") < 0)
		*q = NULL, rc = -ENOMEM;
	buf_free(&key);
	buf_free(&vid);
	return rc;
}

int s3_list_versions(struct s3_client *c, const char *prefix, const char *dir,
		     cairn_version_fn fn, void *opaque)
{
	_cleanup_free_ char *full = NULL;
	if (asprintf(&full, "%s%s/", prefix, dir) < 0)
		return -ENOMEM;
	struct buf enc = { 0 };
	int rc = s3_uri_encode(full, false, &enc);
	struct version_walk w = { .skip = strlen(prefix), .fn = fn, .opaque = opaque };
	struct s3_version_page at = { 0 };
	do {
		_cleanup_free_ char *q = NULL;
		struct buf page = { 0 };
		if (rc == 0)
			rc = page_query((char *)enc.p, &at, &q);
		s3_version_page_free(&at);
		struct s3_request rq = { .method = "GET", .query = q, .io.out_buf = &page };
		struct s3_response rs;
		if (rc == 0)
			rc = s3_request(c, &rq, &rs);
		if (rc == 0 && (rc = s3_xml_versions(page.p, page.len, walk_one, &w, &at)) == -EBADMSG)
			rc = curl_req_fail(c, -EIO, "listing the versions under %s/: the server's answer "
					   "is not a ListObjectVersions result", dir);
		/* truncated with no way on: never loop */
		if (rc == 0 && at.truncated && !at.next_key)
			rc = curl_req_fail(c, -EIO, "listing the versions under %s/: truncated without "
					   "a NextKeyMarker", dir);
		buf_free(&page);
	} while (rc == 0 && at.truncated);
	s3_version_page_free(&at);
	buf_free(&enc);
	return rc;
}

int s3_get_version(struct s3_client *c, const char *name, const char *version_id,
		   struct buf *out)
{
	struct buf enc = { 0 };
	_cleanup_free_ char *q = NULL;
	int rc = s3_uri_encode(version_id, false, &enc);
	if (rc == 0 && asprintf(&q, "versionId=%s", (char *)enc.p) < 0)
		q = NULL, rc = -ENOMEM;
	buf_free(&enc);
	if (rc < 0)
		return rc;
	struct s3_request rq = { .method = "GET", .key = name, .query = q,
				 .io = curl_io_whole(out) };
	struct s3_response rs;
	return curl_io_whole_done(s3_request(c, &rq, &rs), out);
}
