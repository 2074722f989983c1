/* S3 backend: the repository's objects under BUCKET/PREFIX, same names as
 * in a local directory (docs/design.md section 1).
 *
 * A PUT is atomic on S3 (an object appears whole or not at all), so there
 * are no temporary names; objects from MULTIPART_THRESHOLD up go as a
 * multipart upload, which is just as atomic once completed and is aborted
 * when a part fails, so no parts are left billed. Reads of single blobs
 * are ranged GETs. Settings beyond the URL come from the environment
 * (README "Repositories on S3") and struct cairn_backend_opts. */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "s3.h"

#define DEFAULT_RETRIES 8
#define DEFAULT_THRESHOLD (64u << 20)
#define MIN_PART (5u << 20) /* S3's smallest part but the last */
#define MAX_PARTS 10000u
#define LIST_PAGE 1000u

struct s3_backend {
	struct cairn_backend base;
	struct s3_client *client;
	char *prefix; /* the URL's, "" or "a/b/" */
	size_t threshold, part_size;
	unsigned list_page; /* keys per ListObjectsV2 answer */
	unsigned lock_days; /* immutable repository: COMPLIANCE retention; 0: none */
	bool versioning_known, versioned; /* the bucket keeps versions (asked once) */
	char *bucket, *creds_source; /* for diagnose's message */
};

static struct s3_backend *to_s3(struct cairn_backend *b)
{
	return (struct s3_backend *)b;
}

/* ---- S3 Object Lock (docs/design.md section 20) ---- */

static void format_iso(int64_t t, char *out, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t lock_until(const struct s3_backend *s)
{
	return time(NULL) + (int64_t)s->lock_days * 86400;
}

static int s3_retain(struct cairn_backend *b, const char *name, int64_t until_s);

/* The retention headers of a new object: NULL-terminated in hdr, or NULL
 * when name is not locked. COMPLIANCE, not GOVERNANCE: anyone with
 * s3:BypassGovernanceRetention (often any admin key) may delete a
 * GOVERNANCE object, and stolen credentials are the threat. */
static const char *const *lock_headers(const struct s3_backend *s, const char *name,
				       char until[96], const char *hdr[3])
{
	if (!s->lock_days || !cairn_locked_name(name))
		return NULL;
	char when[40];
	format_iso(lock_until(s), when, sizeof(when));
	snprintf(until, 96, "x-amz-object-lock-retain-until-date: %s", when);
	hdr[0] = "x-amz-object-lock-mode: COMPLIANCE";
	hdr[1] = until;
	hdr[2] = NULL;
	return hdr;
}

static int s3_put_single(struct s3_backend *s, const char *name, const void *data, size_t len)
{
	char until[96];
	const char *hdr[3];
	struct s3_request rq = { .method = "PUT", .key = name, .io.body = data ? data : "",
				 .io.body_len = len, .headers = lock_headers(s, name, until, hdr) };
	struct s3_response rs;
	return s3_request(s->client, &rq, &rs);
}

/* The upload id goes into a query: encode it. */
static char *upload_query(const char *upload_id, unsigned part)
{
	struct buf enc = { 0 };
	char *q = NULL;
	if (s3_uri_encode(upload_id, false, &enc) == 0) {
		int n = part ? asprintf(&q, "partNumber=%u&uploadId=%s", part, (char *)enc.p)
			     : asprintf(&q, "uploadId=%s", (char *)enc.p);
		if (n < 0)
			q = NULL;
	}
	buf_free(&enc);
	return q;
}

static int upload_parts(struct s3_backend *s, const char *name, const char *upload_id,
			const uint8_t *data, size_t len, struct buf *done)
{
	size_t part = s->part_size;
	while ((len + part - 1) / part > MAX_PARTS)
		part *= 2;
	int rc = buf_append(done, "<CompleteMultipartUpload>", 25);
	for (unsigned n = 1; rc == 0 && (size_t)(n - 1) * part < len; n++) {
		size_t off = (size_t)(n - 1) * part;
		_cleanup_free_ char *q = upload_query(upload_id, n);
		if (!q)
			return -ENOMEM;
		struct s3_request rq = { .method = "PUT", .key = name, .query = q,
					 .io.body = data + off, .io.body_len = MIN(part, len - off) };
		struct s3_response rs;
		if ((rc = s3_request(s->client, &rq, &rs)) < 0)
			return rc;
		if (!rs.etag[0])
			return curl_req_fail(s->client, -EIO, "PUT %s part %u: no ETag in the answer",
					      name, n);
		char xml[200];
		int k = snprintf(xml, sizeof(xml), "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
				 n, rs.etag);
		rc = buf_append(done, xml, (size_t)k);
	}
	return rc == 0 ? buf_append(done, "</CompleteMultipartUpload>", 26) : rc;
}

static int s3_put_multipart(struct s3_backend *s, const char *name, const uint8_t *data,
			    size_t len)
{
	struct buf answer = { 0 }, done = { 0 };
	_cleanup_free_ char *upload_id = NULL;
	char until[96];
	const char *hdr[3];
	/* a multipart object takes its retention from the initiation */
	struct s3_request start = { .method = "POST", .key = name, .query = "uploads=",
				    .io.body = "", .io.out_buf = &answer,
				    .headers = lock_headers(s, name, until, hdr) };
	struct s3_response rs;
	int rc = s3_request(s->client, &start, &rs);
	if (rc == 0 && s3_xml_upload_id(answer.p, answer.len, &upload_id) < 0)
		rc = curl_req_fail(s->client, -EIO, "POST %s?uploads: no UploadId in the answer", name);
	if (rc == 0)
		rc = upload_parts(s, name, upload_id, data, len, &done);
	_cleanup_free_ char *q = rc == 0 || upload_id ? upload_query(upload_id, 0) : NULL;
	if (rc == 0 && !q)
		rc = -ENOMEM;
	if (rc == 0) {
		struct s3_request fin = { .method = "POST", .key = name, .query = q,
					  .io.body = done.p, .io.body_len = done.len, .io.out_buf = &answer };
		rc = s3_request(s->client, &fin, &rs);
	}
	/* Ceph RGW 16 ignores the retention headers of the initiation: set
	 * it on the completed object too (the same date is no change) */
	if (rc == 0 && start.headers)
		rc = s3_retain(&s->base, name, lock_until(s));
	if (rc < 0 && q) {
		/* parts of an unfinished upload are stored (and billed) until
		 * aborted; the first failure stays the reported one */
		struct s3_request abort = { .method = "DELETE", .key = name, .query = q };
		s3_request(s->client, &abort, &rs);
	}
	buf_free(&answer);
	buf_free(&done);
	return rc;
}

static int s3_put(struct cairn_backend *b, const char *name, const void *data, size_t len)
{
	struct s3_backend *s = to_s3(b);
	curl_req_clear_error();
	if (len < s->threshold)
		return s3_put_single(s, name, data, len);
	return s3_put_multipart(s, name, data, len);
}

/* A GET of name (a GET's whole answer or a range, as io says). */
static int s3_get_io(struct cairn_backend *b, const char *name, struct curl_io io)
{
	struct s3_request rq = { .method = "GET", .key = name, .io = io };
	struct s3_response rs;
	return s3_request(to_s3(b)->client, &rq, &rs);
}

static int s3_get(struct cairn_backend *b, const char *name, struct buf *out)
{
	curl_req_clear_error();
	return curl_io_whole_done(s3_get_io(b, name, curl_io_whole(out)), out);
}

static int s3_get_range(struct cairn_backend *b, const char *name, uint64_t off, size_t len,
			void *out)
{
	curl_req_clear_error();
	return len ? s3_get_io(b, name, curl_io_range(off, len, out)) : 0;
}

static int s3_stat(struct cairn_backend *b, const char *name, uint64_t *size)
{
	curl_req_clear_error();
	struct s3_request rq = { .method = "HEAD", .key = name };
	struct s3_response rs;
	int rc = s3_request(to_s3(b)->client, &rq, &rs);
	if (rc == 0)
		*size = rs.length;
	return rc;
}

/* The object's headers (HEAD), for its time and its Object Lock date. */
static int s3_head(struct cairn_backend *b, const char *name, struct s3_response *rs)
{
	curl_req_clear_error();
	struct s3_request rq = { .method = "HEAD", .key = name };
	return s3_request(to_s3(b)->client, &rq, rs);
}

/* Last-Modified has whole seconds: the last nanosecond of that second, so
 * that an object written in the second a snapshot began is never taken
 * for one written before it (repo/snapshot_resolve.c). */
static int s3_mtime(struct cairn_backend *b, const char *name, int64_t *ns)
{
	struct s3_response rs;
	int rc = s3_head(b, name, &rs);
	if (rc < 0)
		return rc;
	time_t t = rs.last_modified[0] ? curl_getdate(rs.last_modified, NULL) : -1;
	if (t <= 0)
		return -ENODATA;
	*ns = (int64_t)t * 1000000000 + 999999999;
	return 0;
}

struct list_ctx {
	size_t skip; /* bytes of PREFIX + dir + "/" in every key */
	cairn_list_fn fn;
	void *opaque;
};

static int list_one(void *opaque, const char *key, uint64_t size)
{
	struct list_ctx *x = opaque;
	if (strlen(key) <= x->skip)
		return 0;
	const char *slash = strrchr(key + x->skip, '/');
	const char *name = slash ? slash + 1 : key + x->skip;
	if (!*name || name[0] == '.')
		return 0;
	return x->fn(x->opaque, name, size);
}

/* ListObjectsV2, page by page. "data" lists without a delimiter so the
 * packs of every fan-out directory come back; the other directories are
 * flat. SigV4 wants the query sorted by parameter name. */
static int s3_list(struct cairn_backend *b, const char *dir, cairn_list_fn fn, void *opaque)
{
	struct s3_backend *s = to_s3(b);
	curl_req_clear_error();
	struct buf full = { 0 }, enc = { 0 }, page = { 0 };
	_cleanup_free_ char *token = NULL;
	int rc = buf_append(&full, s->prefix, strlen(s->prefix));
	if (rc == 0)
		rc = buf_append(&full, dir, strlen(dir));
	if (rc == 0)
		rc = buf_append(&full, "/", 2);
	if (rc == 0)
		rc = s3_uri_encode((char *)full.p, false, &enc);
	struct list_ctx x = { .skip = full.len ? full.len - 1 : 0, .fn = fn, .opaque = opaque };
	bool flat = strcmp(dir, "data") != 0;
	do {
		struct buf tok = { 0 };
		_cleanup_free_ char *q = NULL;
		if (rc == 0 && token)
			rc = s3_uri_encode(token, false, &tok);
		if (rc == 0 && asprintf(&q, "%s%s%s%slist-type=2&max-keys=%u&prefix=%s",
				       token ? "continuation-token=" : "", token ? (char *)tok.p : "",
				       token ? "&" : "", flat ? "delimiter=%2F&" : "",
				       s->list_page, (char *)enc.p) < 0) {
			q = NULL;
			rc = -ENOMEM;
		}
		buf_free(&tok);
		free(token);
		token = NULL;
		if (rc < 0)
			break;
		struct s3_request rq = { .method = "GET", .query = q, .io.out_buf = &page };
		struct s3_response rs;
		size_t keys;
		rc = s3_request(s->client, &rq, &rs);
		if (rc == 0 && (rc = s3_xml_list(page.p, page.len, list_one, &x, &token, &keys)) == -EBADMSG)
			rc = curl_req_fail(s->client, -EIO, "listing %s/: the server's answer is not a ListObjectsV2 result",
					    dir);
	} while (rc == 0 && token);
	buf_free(&full);
	buf_free(&enc);
	buf_free(&page);
	return rc;
}

static int s3_remove_plain(struct s3_backend *s, const char *name)
{
	struct s3_request rq = { .method = "DELETE", .key = name };
	struct s3_response rs;
	return s3_request(s->client, &rq, &rs);
}

static int version_query(const char *version_id, const char *extra, char **q)
{
	struct buf enc = { 0 };
	int rc = s3_uri_encode(version_id, false, &enc);
	if (rc == 0 && asprintf(q, "%sversionId=%s", extra, (char *)enc.p) < 0)
		*q = NULL, rc = -ENOMEM;
	buf_free(&enc);
	return rc;
}

/* One version; the store refuses while its retention holds. */
static int delete_version(struct s3_backend *s, const char *name, const char *version_id)
{
	_cleanup_free_ char *q = NULL;
	int rc = version_query(version_id, "", &q);
	if (rc < 0)
		return rc;
	struct s3_request rq = { .method = "DELETE", .key = name, .query = q };
	struct s3_response rs;
	if ((rc = s3_request(s->client, &rq, &rs)) != -EACCES)
		return rc;
	struct s3_request head = { .method = "HEAD", .key = name, .query = q };
	struct s3_response hs;
	int64_t until = s3_request(s->client, &head, &hs) == 0 ? s3_parse_time(hs.retain_until) : -1;
	if (until <= 0)
		return rc;
	char when[40];
	format_iso(until, when, sizeof(when));
	curl_req_clear_error();
	return curl_req_fail(s->client, -EPERM, "%s: locked until %s by S3 Object Lock", name,
			      when);
}

struct versions {
	const char *key; /* PREFIX + name */
	char **ids;
	size_t n, cap;
};

static int collect_version(void *opaque, const struct s3_version *sv)
{
	struct versions *v = opaque;
	if (strcmp(sv->key, v->key))
		return 0; /* another key with the same beginning */
	if (array_grow(&v->ids, &v->cap, v->n, sizeof(*v->ids)) < 0 ||
	    !(v->ids[v->n] = strdup(sv->version_id)))
		return -ENOMEM;
	v->n++;
	return 0;
}

static void versions_free(struct versions *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->ids[i]);
	free(v->ids);
	v->ids = NULL;
	v->n = v->cap = 0;
}

/* The versions of one key (a page's worth), newest first. */
static int list_versions(struct s3_backend *s, const char *name, struct versions *v,
			 bool *more)
{
	_cleanup_free_ char *key = NULL, *q = NULL;
	struct buf enc = { 0 }, page = { 0 };
	int rc = asprintf(&key, "%s%s", s->prefix, name) < 0 ? (key = NULL, -ENOMEM) : 0;
	if (rc == 0)
		rc = s3_uri_encode(key, false, &enc);
	if (rc == 0 && asprintf(&q, "prefix=%s&versions=", (char *)enc.p) < 0)
		q = NULL, rc = -ENOMEM;
	buf_free(&enc);
	struct s3_request rq = { .method = "GET", .query = q, .io.out_buf = &page };
	struct s3_response rs;
	if (rc == 0)
		rc = s3_request(s->client, &rq, &rs);
	v->key = key;
	struct s3_version_page next = { 0 };
	if (rc == 0 && (rc = s3_xml_versions(page.p, page.len, collect_version, v, &next)) == -EBADMSG)
		rc = curl_req_fail(s->client, -EIO, "listing the versions of %s: the server's "
				    "answer is not a ListObjectVersions result", name);
	*more = rc == 0 && next.truncated;
	s3_version_page_free(&next);
	v->key = NULL;
	buf_free(&page);
	return rc;
}

#define MAX_VERSION_PAGES 16

/* In a versioned (Object Lock) bucket a DELETE without a version only
 * adds a delete marker: the bytes stay, hidden from listings, and cairn
 * would think them gone. And deleting only the current version brings the
 * one before back (a lock rewritten by its heartbeat would reappear). So
 * every version of the name goes, newest first, and the first one the
 * store refuses (under retention) stops it: nothing older is touched. */
static int s3_remove_versions(struct s3_backend *s, const char *name)
{
	int rc = 0;
	bool more = true, any = false;
	for (unsigned page = 0; rc == 0 && more && page < MAX_VERSION_PAGES; page++) {
		struct versions v = { 0 };
		rc = list_versions(s, name, &v, &more);
		for (size_t i = 0; rc == 0 && i < v.n; i++)
			rc = delete_version(s, name, v.ids[i]);
		any |= v.n > 0;
		more &= v.n > 0;
		versions_free(&v);
	}
	return rc == 0 && !any ? -ENOENT : rc;
}

static int s3_remove(struct cairn_backend *b, const char *name)
{
	struct s3_backend *s = to_s3(b);
	curl_req_clear_error();
	return s->lock_days ? s3_remove_versions(s, name) : s3_remove_plain(s, name);
}

#define DELETE_BATCH 1000 /* the most keys one DeleteObjects takes */

struct delete_batch {
	struct s3_backend *s;
	const char *const *names;
	bool *done;
	size_t n;
	int rc;
};

static int delete_failed(void *opaque, const char *key, const char *code, const char *message)
{
	struct delete_batch *d = opaque;
	size_t plen = strlen(d->s->prefix);
	for (size_t i = 0; i < d->n; i++)
		if (!strncmp(key, d->s->prefix, plen) && !strcmp(key + plen, d->names[i]))
			d->done[i] = !strcmp(code, "NoSuchKey");
	if (strcmp(code, "NoSuchKey") && d->rc == 0) {
		char url[1200];
		s3_client_url(d->s->client, key + (strncmp(key, d->s->prefix, plen) ? 0 : plen), url,
			      sizeof(url));
		d->rc = curl_req_fail(d->s->client, code[0] == 'A' ? -EACCES : -EIO,
				       "delete %s: %s (%s)", url, code, message);
	}
	return 0;
}

static int append_xml_text(struct buf *b, const char *t)
{
	int rc = 0;
	for (; rc == 0 && *t; t++) {
		const char *e = *t == '&' ? "&amp;" : *t == '<' ? "&lt;" : *t == '>' ? "&gt;" : NULL;
		rc = e ? buf_append(b, e, strlen(e)) : buf_append(b, t, 1);
	}
	return rc;
}

/* One DeleteObjects request for up to DELETE_BATCH names, quiet: the
 * answer lists only the keys that failed. */
static int delete_batch(struct s3_backend *s, const char *const *names, size_t n, bool *done)
{
	struct buf body = { 0 }, answer = { 0 };
	int rc = buf_append(&body, "<Delete><Quiet>true</Quiet>", 27);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = buf_append(&body, "<Object><Key>", 13);
		if (rc == 0)
			rc = append_xml_text(&body, s->prefix);
		if (rc == 0)
			rc = append_xml_text(&body, names[i]);
		if (rc == 0)
			rc = buf_append(&body, "</Key></Object>", 15);
	}
	if (rc == 0)
		rc = buf_append(&body, "</Delete>", 9);
	if (rc < 0) {
		buf_free(&body);
		return rc;
	}
	struct s3_request rq = { .method = "POST", .query = "delete=", .io.body = body.p,
				 .io.body_len = body.len, .io.out_buf = &answer };
	struct s3_response rs;
	rc = s3_request(s->client, &rq, &rs);
	buf_free(&body);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			done[i] = true;
		struct delete_batch d = { .s = s, .names = names, .done = done, .n = n };
		rc = s3_xml_delete_errors(answer.p, answer.len, delete_failed, &d);
		if (rc == -EBADMSG)
			rc = curl_req_fail(s->client, -EIO, "%s: the answer to DeleteObjects "
					    "cannot be read", s->base.location);
		else if (rc == 0)
			rc = d.rc;
	}
	buf_free(&answer);
	return rc;
}

static int s3_remove_many(struct cairn_backend *b, const char *const *names, size_t n, bool *done)
{
	struct s3_backend *s = to_s3(b);
	if (s->lock_days)
		return -ENOTSUP; /* versions are deleted one by one (s3_remove_versions) */
	curl_req_clear_error();
	memset(done, 0, n * sizeof(*done));
	int rc = 0;
	for (size_t at = 0; rc == 0 && at < n; at += DELETE_BATCH)
		rc = delete_batch(s, names + at, n - at < DELETE_BATCH ? n - at : DELETE_BATCH,
				  done + at);
	return rc;
}

static int s3_set_immutable(struct cairn_backend *b, unsigned days, bool check, char *err,
			    size_t errlen)
{
	struct s3_backend *s = to_s3(b);
	if (check) {
		struct buf body = { 0 };
		struct s3_request rq = { .method = "GET", .query = "object-lock=", .io.out_buf = &body };
		struct s3_response rs;
		bool enabled = false;
		curl_req_clear_error();
		int rc = s3_request(s->client, &rq, &rs);
		if (rc == 0 && s3_xml_object_lock(body.p, body.len, &enabled) < 0)
			rc = -EIO;
		buf_free(&body);
		const char *why = curl_req_error(s->client, rc);
		if (rc < 0 && rc != -ENOENT)
			return set_err(err, errlen, rc, "%s: cannot read the bucket's Object Lock "
					"configuration: %s", b->location, why ? why : strerror(-rc));
		if (!enabled)
			return set_err(err, errlen, -ENOTSUP,
				       "%s: the bucket does not have S3 Object Lock enabled, which "
				       "can only be chosen when a bucket is created: create a new one "
				       "with it (aws s3api create-bucket --object-lock-enabled-for-bucket, "
				       "or the header x-amz-bucket-object-lock-enabled: true) and init there",
				       b->location);
	}
	s->lock_days = days;
	return 0;
}

static int s3_retention(struct cairn_backend *b, const char *name, int64_t *until_s)
{
	struct s3_response rs;
	int rc = s3_head(b, name, &rs);
	if (rc < 0)
		return rc;
	int64_t t = rs.retain_until[0] ? s3_parse_time(rs.retain_until) : 0;
	*until_s = t > 0 ? t : 0;
	return 0;
}

/* PutObjectRetention on the current version. A COMPLIANCE date cannot be
 * moved earlier: when the server refuses, one already later is fine. */
static int s3_retain(struct cairn_backend *b, const char *name, int64_t until_s)
{
	struct s3_backend *s = to_s3(b);
	char when[40], xml[256];
	format_iso(until_s, when, sizeof(when));
	int n = snprintf(xml, sizeof(xml),
			 "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<Mode>COMPLIANCE</Mode><RetainUntilDate>%s</RetainUntilDate></Retention>",
			 when);
	curl_req_clear_error();
	struct s3_request rq = { .method = "PUT", .key = name, .query = "retention=",
				 .io.body = xml, .io.body_len = (size_t)n };
	struct s3_response rs;
	int rc = s3_request(s->client, &rq, &rs);
	if (rc == -EACCES) {
		int64_t now;
		if (s3_retention(b, name, &now) == 0 && now >= until_s)
			return 0;
		curl_req_clear_error();
		return curl_req_fail(s->client, -EACCES, "PUT %s?retention: refused (%s)", name,
				      when);
	}
	return rc;
}

/* Only a bucket that keeps versions has any to list; asked once. */
static int s3_list_versions_op(struct cairn_backend *b, const char *dir, cairn_version_fn fn,
			       void *opaque)
{
	struct s3_backend *s = to_s3(b);
	curl_req_clear_error();
	if (!s->versioning_known) {
		int rc = s3_versioning(s->client, &s->versioned);
		if (rc < 0)
			return rc;
		s->versioning_known = true;
	}
	return s->versioned ? s3_list_versions(s->client, s->prefix, dir, fn, opaque) : -ENOTSUP;
}

static int s3_get_version_op(struct cairn_backend *b, const char *name, const char *version_id,
			     struct buf *out)
{
	curl_req_clear_error();
	return s3_get_version(to_s3(b)->client, name, version_id, out);
}

static const char *s3_error(struct cairn_backend *b, int rc)
{
	return curl_req_error(to_s3(b)->client, rc);
}

static void s3_free(struct cairn_backend *b)
{
	struct s3_backend *s = to_s3(b);
	if (s->client)
		s3_client_free(s->client);
	free(s->prefix);
	free(s->bucket);
	free(s->creds_source);
	free(b->location);
	free(s);
}

static int probe(struct s3_backend *s, const char *location, const char *bucket, bool create,
		 const char *creds_source, char *err, size_t errlen);

static int s3_diagnose(struct cairn_backend *b, char *err, size_t errlen)
{
	struct s3_backend *s = to_s3(b);
	return probe(s, b->location, s->bucket, false, s->creds_source, err, errlen);
}

static const struct cairn_backend_ops s3_ops = {
	.put = s3_put,
	.get = s3_get,
	.get_range = s3_get_range,
	.stat = s3_stat,
	.mtime = s3_mtime,
	.list = s3_list,
	.remove = s3_remove,
	.free = s3_free,
	.error = s3_error,
	.diagnose = s3_diagnose,
	.set_immutable = s3_set_immutable,
	.retention = s3_retention,
	.retain = s3_retain,
	.remove_many = s3_remove_many,
	.list_versions = s3_list_versions_op,
	.get_version = s3_get_version_op,
};

static void s3_backend_freep(struct s3_backend **s)
{
	if (*s)
		s3_free(&(*s)->base);
}

/* ---- opening ---- */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);
	return a >= b && !strcmp(s + a - b, tail);
}

/* Path-style (HOST/BUCKET) unless asked otherwise, or AWS itself, which
 * deprecates it; host:port of a gateway rarely has per-bucket DNS names. */
static int addressing(const struct s3_url *u, bool *virtual_host, char *err, size_t errlen)
{
	const char *v = env("CAIRN_S3_VIRTUAL_HOST");
	if (!v) {
		char host[256];
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(u->hostport, ":"), u->hostport);
		*virtual_host = ends_with(host, ".amazonaws.com");
		return 0;
	}
	if (strcmp(v, "0") && strcmp(v, "1"))
		return set_err(err, errlen, -EINVAL, "CAIRN_S3_VIRTUAL_HOST=%s: give 0 or 1", v);
	*virtual_host = !strcmp(v, "1");
	return 0;
}

static int env_uint(const char *name, unsigned lo, unsigned hi, unsigned dflt, unsigned *out,
		    char *err, size_t errlen)
{
	const char *v = env(name);
	*out = dflt;
	if (!v)
		return 0;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (*end || n < lo || n > hi)
		return set_err(err, errlen, -EINVAL, "%s=%s: give %u..%u", name, v, lo, hi);
	*out = (unsigned)n;
	return 0;
}

static int tuning(struct s3_backend *s, unsigned *retries, char *err, size_t errlen)
{
	int rc = env_uint("CAIRN_S3_RETRIES", 0, 100, DEFAULT_RETRIES, retries, err, errlen);
	/* small pages exercise continuation tokens in tests */
	if (rc == 0)
		rc = env_uint("CAIRN_S3_LIST_PAGE", 1, 1000, LIST_PAGE, &s->list_page, err, errlen);
	if (rc < 0)
		return rc;
	const char *v;
	uint64_t t = DEFAULT_THRESHOLD;
	if ((v = env("CAIRN_S3_MULTIPART_THRESHOLD")) &&
	    (parse_size(v, &t) < 0 || t < MIN_PART || t > (5ull << 30)))
		return set_err(err, errlen, -EINVAL,
			       "CAIRN_S3_MULTIPART_THRESHOLD=%s: give a size from 5M to 5G", v);
	s->threshold = (size_t)t;
	/* a quarter of the threshold: 16 MiB parts by default */
	s->part_size = MAX((size_t)MIN_PART, s->threshold / 4);
	return 0;
}

static int probe_key(void *opaque, const char *key, uint64_t size)
{
	(void)size;
	return !strcmp(key, opaque); /* stops the listing: found */
}

/* One listing of PREFIX/config proves the endpoint, the credentials and
 * the bucket, with an S3 error code to name when one is wrong. */
static int probe(struct s3_backend *s, const char *location, const char *bucket, bool create,
		 const char *creds_source, char *err, size_t errlen)
{
	struct buf enc = { 0 }, page = { 0 };
	_cleanup_free_ char *cfg = NULL, *q = NULL;
	int rc = asprintf(&cfg, "%sconfig", s->prefix) < 0 ? -ENOMEM : 0;
	if (rc == 0)
		rc = s3_uri_encode(cfg, false, &enc);
	if (rc == 0 && asprintf(&q, "list-type=2&max-keys=1&prefix=%s", (char *)enc.p) < 0)
		q = NULL, rc = -ENOMEM;
	buf_free(&enc);
	if (rc < 0)
		return set_err(err, errlen, rc, "out of memory");
	curl_req_clear_error();
	struct s3_request rq = { .method = "GET", .query = q, .io.out_buf = &page };
	struct s3_response rs;
	char *token = NULL;
	size_t keys = 0;
	rc = s3_request(s->client, &rq, &rs);
	int found = rc == 0 ? s3_xml_list(page.p, page.len, probe_key, cfg, &token, &keys) : 0;
	free(token);
	buf_free(&page);
	const char *why = curl_req_error(s->client, rc);
	if (rc == -ENXIO)
		return set_err(err, errlen, rc, "%s: bucket %s does not exist (create it first; %s)",
			       location, bucket, why ? why : "NoSuchBucket");
	if (rc == -EACCES)
		return set_err(err, errlen, rc, "%s: %s (credentials from %s)", location,
			       why ? why : "access denied", creds_source);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s: %s", location, why ? why : strerror(-rc));
	if (found < 0)
		return set_err(err, errlen, -EIO, "%s: the server's answer is not a ListObjectsV2 result",
			       location);
	if (create && found == 1)
		return set_err(err, errlen, -EEXIST, "%s already holds a repository", location);
	return 0;
}

int cairn_backend_s3_open(const char *location, const struct s3_url *u, bool create,
			  const struct cairn_backend_opts *o, struct cairn_backend **out,
			  char *err, size_t errlen)
{
	struct s3_creds cr;
	int rc = s3_creds_load(o->credentials_file, &cr, err, errlen);
	if (rc < 0)
		return rc;
	_cleanup_(s3_backend_freep) struct s3_backend *s = calloc(1, sizeof(*s));
	if (!s) {
		s3_creds_free(&cr);
		return -ENOMEM;
	}
	s->base.ops = &s3_ops;
	s->base.location = strdup(location);
	s->prefix = strdup(u->prefix);
	struct s3_client_opts co = {
		.url = u,
		.creds = &cr,
		.region = cr.region ? cr.region
				    : env("AWS_REGION") ? env("AWS_REGION")
				    : env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION")
				    : "us-east-1",
		.ca_bundle = env("CAIRN_S3_CA_BUNDLE") ? env("CAIRN_S3_CA_BUNDLE") : env("AWS_CA_BUNDLE"),
		.connections = o->connections,
		.limit_upload = o->limit_upload,
		.limit_download = o->limit_download,
	};
	rc = s->base.location && s->prefix ? 0 : set_err(err, errlen, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = addressing(u, &co.virtual_host, err, errlen);
	if (rc == 0)
		rc = tuning(s, &co.retries, err, errlen);
	if (rc == 0 && (rc = s3_client_new(&co, &s->client)) < 0)
		set_err(err, errlen, rc, "%s: cannot set up the S3 client: %s", location, strerror(-rc));
	if (rc == 0)
		s->base.connections = s3_client_connections(s->client);
	/* an open reads config at once, and asks diagnose only when that
	 * fails: a round trip less for every command */
	if (rc == 0 && create)
		rc = probe(s, location, u->bucket, create, cr.source, err, errlen);
	if (rc == 0 && !create && (!(s->bucket = strdup(u->bucket)) ||
				   !(s->creds_source = strdup(cr.source))))
		rc = set_err(err, errlen, -ENOMEM, "out of memory");
	s3_creds_free(&cr);
	if (rc < 0)
		return rc;
	*out = &TAKE_PTR(s)->base;
	return 0;
}
