/* S3-compatible object storage: the pieces behind repo/transport/backend_s3.c.
 * Internal to repo/; not part of the public contract.
 *
 *   s3_url    where the repository lives (backend.c parses the URL)
 *   s3_creds  who we are (s3_creds.c: environment, profiles, a file)
 *   s3_client one signed, retried HTTP request at a time per connection,
 *             from any thread (s3_http.c)
 *   s3_xml_*  the few response bodies we read (s3_xml.c)
 *
 * Secrets (the secret key, the session token) live only in s3_creds and
 * the curl handles; no message ever contains them. */
#ifndef CAIRN_S3_H
#define CAIRN_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "curl_req.h"
#include "repo/backend.h"

/* s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] */
struct s3_url {
	char *scheme; /* "http" or "https" */
	char *hostport; /* "host" or "host:port" */
	char *bucket;
	char *prefix; /* "" or "a/b/" (always ends with '/') */
};
void s3_url_free(struct s3_url *u);

int cairn_backend_s3_open(const char *location, const struct s3_url *u,
			  bool create, const struct cairn_backend_opts *o,
			  struct cairn_backend **out, char *err, size_t errlen);

struct s3_creds {
	char *access_key, *secret_key, *session_token; /* token may be NULL */
	char *region; /* from a credentials file; NULL: environment/default */
	char source[300]; /* where they came from, for messages */
};
/* In this order: file (the repository's own credentials file, may be
 * NULL), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN],
 * the AWS_PROFILE (else "default") section of AWS_SHARED_CREDENTIALS_FILE
 * (else ~/.aws/credentials). -ENOKEY when none has a key pair. */
int s3_creds_load(const char *file, struct s3_creds *c, char *err, size_t errlen);
void s3_creds_free(struct s3_creds *c);

struct s3_client_opts {
	const struct s3_url *url;
	const struct s3_creds *creds;
	const char *region;
	const char *ca_bundle; /* NULL: the system's */
	bool virtual_host; /* BUCKET.HOST instead of HOST/BUCKET */
	unsigned connections; /* requests in flight at most */
	unsigned retries; /* after the first attempt */
	uint64_t limit_upload, limit_download; /* bytes/s over all connections */
};

struct s3_client;
int s3_client_new(const struct s3_client_opts *o, struct s3_client **out);
void s3_client_free(struct s3_client *c);
/* Requests the client runs at once. */
unsigned s3_client_connections(const struct s3_client *c);
DEFINE_CLEANUP(struct s3_client *, s3_client_free);

struct s3_request {
	const char *method; /* GET, HEAD, PUT, POST, DELETE */
	const char *key; /* below the prefix; NULL: the bucket itself */
	const char *query; /* encoded and sorted by name (SigV4); may be NULL */
	struct curl_io io; /* a PUT/POST payload, a range, where the answer goes */
	/* more headers ("Name: value"), NULL-terminated; may be NULL */
	const char *const *headers;
};
struct s3_response {
	long status;
	uint64_t length; /* Content-Length (HEAD) */
	size_t received; /* bytes into out */
	char etag[80];
	char version_id[160]; /* x-amz-version-id, "" when none */
	char retain_until[48]; /* x-amz-object-lock-retain-until-date, "" when none */
	char last_modified[48]; /* Last-Modified (an RFC 7231 date), "" when none */
};

/* Performs the request, retrying timeouts, resets, 5xx, 429/SlowDown and
 * failed integrity checks with jittered exponential backoff. 0 on 2xx;
 * else a negative errno (curl_req.h), and the reason (URL, status, S3
 * error code) is kept for curl_req_error(c, rc). A 404 NoSuchKey is
 * -ENOENT with no reason kept: callers treat a missing object as an
 * ordinary answer. A ranged GET that gets fewer bytes than asked for
 * (the object is shorter) is -EIO. */
int s3_request(struct s3_client *c, const struct s3_request *rq, struct s3_response *rs);

/* Why the calling thread's last request failed: curl_req_error(c, rc),
 * kept with curl_req_fail(c, ...) (curl_req.h). */

/* The URL of key (NULL: the bucket), for messages. */
void s3_client_url(const struct s3_client *c, const char *key, char *out, size_t len);

/* Percent-encodes s for a URL path (keep_slash) or a query value. */
int s3_uri_encode(const char *s, bool keep_slash, struct buf *out);

/* s3_xml.c. Every function returns 0, -EBADMSG on a body it cannot read. */
/* <Error><Code>..</Code><Message>..</Message></Error>; 0 when the body is
 * one (code set), -ENOENT when it is not an error document. */
int s3_xml_error(const void *body, size_t len, char *code, size_t codelen, char *msg,
		 size_t msglen);
/* ListObjectsV2: fn(opaque, key, size) per object; *token is the
 * NextContinuationToken (malloc'ed) when truncated, else NULL. */
typedef int (*s3_key_fn)(void *opaque, const char *key, uint64_t size);
int s3_xml_list(const void *body, size_t len, s3_key_fn fn, void *opaque, char **token,
		size_t *keys);
/* InitiateMultipartUploadResult: the UploadId (malloc'ed). */
int s3_xml_upload_id(const void *body, size_t len, char **id);
/* ListObjectVersions: fn(opaque, v) per version and per delete marker,
 * newest first for each key; when the answer is truncated, the page says
 * where the next one starts (NextKeyMarker, NextVersionIdMarker). */
struct s3_version {
	const char *key, *version_id;
	bool latest; /* IsLatest: the current version (or marker) of key */
	bool marker; /* a delete marker, not a version */
};
typedef int (*s3_version_fn)(void *opaque, const struct s3_version *v);
struct s3_version_page {
	bool truncated;
	char *next_key, *next_version; /* malloc'ed; NULL when absent */
};
void s3_version_page_free(struct s3_version_page *p);
/* A DeleteObjects answer (quiet mode: only the keys that failed). */
typedef int (*s3_delete_error_fn)(void *opaque, const char *key, const char *code,
				  const char *message);
int s3_xml_delete_errors(const void *body, size_t len, s3_delete_error_fn fn, void *opaque);
int s3_xml_versions(const void *body, size_t len, s3_version_fn fn, void *opaque,
		    struct s3_version_page *page);
/* VersioningConfiguration: its Status ("Enabled", "Suspended", or "" for
 * a bucket that never had versioning). */
int s3_xml_versioning(const void *body, size_t len, char *status, size_t statuslen);
/* ObjectLockConfiguration: *enabled when ObjectLockEnabled is "Enabled". */
int s3_xml_object_lock(const void *body, size_t len, bool *enabled);

/* s3_versions.c: a versioned bucket (docs/design.md section 23). */
/* *on when the bucket keeps versions (Enabled or Suspended). */
int s3_versioning(struct s3_client *c, bool *on);
/* Every version and delete marker under PREFIX + dir + "/", page after
 * page: fn(opaque, name below PREFIX, version id, latest, marker), newest
 * first for each name; names whose last part starts with '.' skipped. */
int s3_list_versions(struct s3_client *c, const char *prefix, const char *dir,
		     cairn_version_fn fn, void *opaque);
/* The bytes of one version of name (below the prefix). */
int s3_get_version(struct s3_client *c, const char *name, const char *version_id,
		   struct buf *out);

/* ISO 8601 UTC as S3 writes it ("2026-12-01T11:30:47.000Z" and the like)
 * to Unix seconds; -1 when it is not one. */
int64_t s3_parse_time(const char *s);
#endif
