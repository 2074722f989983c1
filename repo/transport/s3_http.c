/* Signed, retried S3 requests over libcurl from any number of threads.
 *
 * A pool of at most `connections` easy handles: a thread takes one for a
 * request (waiting while all are busy) and gives it back, so connections
 * stay open between requests and --connections bounds the parallelism.
 * The handles share DNS and TLS sessions. curl signs every request
 * (CURLOPT_AWS_SIGV4) with the payload hash we compute and send as
 * x-amz-content-sha256; PUT and POST bodies also carry Content-MD5, so the
 * server refuses (BadDigest) what arrived damaged and we send it again.
 * The transfer, its retries and errno come from the request core
 * (curl_req.h); this file adds S3's options and reads S3's answers. */
#include <curl/curl.h>
#include <errno.h>
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "curl_req.h"
#include "s3.h"

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 15000

struct s3_client {
	char *base; /* URL of the prefix, ends with '/' */
	char *bucket_url; /* URL of the bucket (listings) */
	char *bucket;
	char *sigv4; /* "aws:amz:REGION:s3" */
	char *access_key, *secret_key;
	char *token_header; /* "x-amz-security-token: ..." or NULL; secret */
	char *ca_bundle;
	const char *cred_source; /* for messages */
	char cred_source_buf[300];
	struct curl_retry retry;
	struct curl_pool pool; /* connections and rate limits */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* ---- set-up ---- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *opaque)
{
	(void)h;
	(void)a;
	struct s3_client *c = opaque;
	pthread_mutex_lock(&c->share_locks[d < CURL_LOCK_DATA_LAST ? d : 0]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *opaque)
{
	(void)h;
	struct s3_client *c = opaque;
	pthread_mutex_unlock(&c->share_locks[d < CURL_LOCK_DATA_LAST ? d : 0]);
}

int s3_uri_encode(const char *s, bool keep_slash, struct buf *out)
{
	int rc = curl_req_url_encode(s, keep_slash, out);
	return rc < 0 ? rc : buf_append(out, "", 1);
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3_client_free(struct s3_client *c)
{
	curl_pool_destroy(&c->pool);
	if (c->share)
		curl_share_cleanup(c->share);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	free(c->base);
	free(c->bucket_url);
	free(c->bucket);
	free(c->sigv4);
	free(c->access_key);
	free_secret(c->secret_key);
	free_secret(c->token_header);
	free(c->ca_bundle);
	free(c);
}

static int make_urls(struct s3_client *c, const struct s3_url *u, bool virtual_host)
{
	struct buf prefix = { 0 };
	int rc = s3_uri_encode(u->prefix, true, &prefix);
	if (rc < 0)
		return rc;
	if (virtual_host) {
		c->bucket_url = curl_req_printf("%s://%s.%s/", u->scheme, u->bucket, u->hostport);
		c->base = curl_req_printf("%s://%s.%s/%s", u->scheme, u->bucket, u->hostport,
				     (char *)prefix.p);
	} else {
		c->bucket_url = curl_req_printf("%s://%s/%s", u->scheme, u->hostport, u->bucket);
		c->base = curl_req_printf("%s://%s/%s/%s", u->scheme, u->hostport, u->bucket,
				     (char *)prefix.p);
	}
	buf_free(&prefix);
	return c->base && c->bucket_url ? 0 : -ENOMEM;
}

int s3_client_new(const struct s3_client_opts *o, struct s3_client **out)
{
	pthread_once(&xml_once, xmlInitParser);
	if (curl_req_global_init() < 0)
		return -ENOMEM;
	struct s3_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	int pool_rc = curl_pool_init(&c->pool, o->connections, o->limit_upload, o->limit_download);
	c->retry = (struct curl_retry){ o->retries, BACKOFF_FIRST_MS, BACKOFF_MAX_MS };
	snprintf(c->cred_source_buf, sizeof(c->cred_source_buf), "%s", o->creds->source);
	c->cred_source = c->cred_source_buf;
	c->bucket = strdup(o->url->bucket);
	c->sigv4 = curl_req_printf("aws:amz:%s:s3", o->region);
	c->access_key = strdup(o->creds->access_key);
	c->secret_key = strdup(o->creds->secret_key);
	if (o->creds->session_token)
		c->token_header = curl_req_printf("x-amz-security-token: %s", o->creds->session_token);
	if (o->ca_bundle)
		c->ca_bundle = strdup(o->ca_bundle);
	c->share = curl_share_init();
	int rc = pool_rc == 0 && c->bucket && c->sigv4 && c->access_key && c->secret_key &&
				 (c->token_header || !o->creds->session_token) &&
				 (c->ca_bundle || !o->ca_bundle) && c->share
			 ? make_urls(c, o->url, o->virtual_host)
			 : -ENOMEM;
	if (rc == 0 &&
	    (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	     curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	     curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	     curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	     curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)))
		rc = -ENOMEM;
	if (rc < 0) {
		s3_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

unsigned s3_client_connections(const struct s3_client *c)
{
	return c->pool.max;
}

void s3_client_url(const struct s3_client *c, const char *key, char *out, size_t len)
{
	snprintf(out, len, "%s%s", key ? c->base : c->bucket_url, key ? key : "");
}

/* ---- one request ---- */

/* One attempt as S3 sees it: the options the core leaves to us and what
 * the answer means. */
struct s3_attempt {
	struct s3_client *c;
	const struct s3_request *rq;
	struct s3_response *rs;
	const char *url;
	struct curl_slist *headers;
	struct curl_xfer x;
	int rc;
	char why[300]; /* for the message when it is the last one */
};

/* Copies the value of header `name` (with its colon) when line is it. */
static void header_value(const char *line, size_t len, const char *name, char *out,
			 size_t outlen)
{
	size_t k = strlen(name);
	if (len <= k || strncasecmp(line, name, k))
		return;
	const char *v = line + k;
	size_t vn = len - k;
	while (vn && (*v == ' ' || *v == '\t'))
		v++, vn--;
	while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
		vn--;
	snprintf(out, outlen, "%.*s", (int)vn, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
	struct s3_response *rs = opaque;
	size_t len = size * n;
	header_value(p, len, "etag:", rs->etag, sizeof(rs->etag));
	header_value(p, len, "x-amz-version-id:", rs->version_id, sizeof(rs->version_id));
	header_value(p, len, "x-amz-object-lock-retain-until-date:", rs->retain_until,
		     sizeof(rs->retain_until));
	header_value(p, len, "last-modified:", rs->last_modified, sizeof(rs->last_modified));
	return len;
}

int64_t s3_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	return end ? (int64_t)timegm(&tm) : -1;
}

/* Hashes for the signature and the integrity check. */
static int body_headers(const struct s3_request *rq, char sha_hdr[100], char md5_hdr[64])
{
	uint8_t sha[32], md5[16];
	char hex[65];
	const void *body = rq->io.body ? rq->io.body : "";
	if (!EVP_Digest(body, rq->io.body_len, sha, NULL, EVP_sha256(), NULL))
		return -ENOMEM;
	hex_encode(sha, sizeof(sha), hex);
	snprintf(sha_hdr, 100, "x-amz-content-sha256: %s", hex);
	md5_hdr[0] = '\0';
	if (rq->io.body) {
		char b64[32];
		if (!EVP_Digest(body, rq->io.body_len, md5, NULL, EVP_md5(), NULL))
			return -ENOMEM;
		EVP_EncodeBlock((unsigned char *)b64, md5, sizeof(md5));
		snprintf(md5_hdr, 64, "Content-MD5: %s", b64);
	}
	return 0;
}

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

/* What the core leaves to S3: signing, the share, headers, the method. */
static CURLcode s3_options(CURL *h, void *opaque)
{
	struct s3_attempt *a = opaque;
	const struct s3_client *c = a->c;
	const char *method = a->rq->method;
	CURLcode e = CURLE_OK;
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_AWS_SIGV4, c->sigv4);
	SET(CURLOPT_USERNAME, c->access_key);
	SET(CURLOPT_PASSWORD, c->secret_key);
	SET(CURLOPT_HTTPHEADER, a->headers);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a->rs);
	if (c->ca_bundle)
		SET(CURLOPT_CAINFO, c->ca_bundle);
	if (!strcmp(method, "POST")) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->rq->io.body_len);
	} else if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "PUT")) {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SET
	return e;
}

/* ---- outcomes ---- */

/* S3's error codes that pass when tried again, whatever the status. */
static bool transient_code(const char *code)
{
	return !strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
	       !strcmp(code, "BadDigest") || !strcmp(code, "XAmzContentSHA256Mismatch") ||
	       !strcmp(code, "InternalError");
}

/* What a non-2xx status means to cairn, with the words to say it. */
static int status_errno(long status, const char *code, const char **hint)
{
	*hint = "";
	if (!strcmp(code, "NoSuchBucket")) {
		*hint = "the bucket does not exist";
		return -ENXIO;
	}
	if (!strcmp(code, "SignatureDoesNotMatch")) {
		*hint = "the secret key does not match the access key";
		return -EACCES;
	}
	if (!strcmp(code, "InvalidAccessKeyId")) {
		*hint = "the server does not know the access key";
		return -EACCES;
	}
	if (!strcmp(code, "RequestTimeTooSkewed")) {
		*hint = "this host's clock is off";
		return -EACCES;
	}
	if (status == 401 || status == 403)
		*hint = *code ? "the credentials may not do this" : "access denied";
	return curl_req_status_errno(status);
}

/* The verdict on the attempt in a->x, with a->rc and a->why. */
static int judge(struct s3_attempt *a)
{
	struct curl_xfer *x = &a->x;
	const struct s3_request *rq = a->rq;
	const struct buf *out = rq->io.out_buf;
	char code[64] = "", msg[160] = "";
	a->rs->status = x->status;
	a->rs->received = x->received;
	a->rs->length = x->length > 0 ? (uint64_t)x->length : 0;
	a->rc = 0;
	if (x->e != CURLE_OK || x->overflow) {
		a->rc = x->overflow ? -EREMOTEIO : curl_req_errno(x->e);
		snprintf(a->why, sizeof(a->why), "%s", x->overflow ? "the server sent more than asked for"
						     : *x->errbuf ? x->errbuf : curl_easy_strerror(x->e));
		return (int)curl_xfer_verdict(x);
	}
	/* CompleteMultipartUpload may answer 200 with an error document */
	if (x->status >= 200 && x->status <= 299 && !strcmp(rq->method, "POST") && out &&
	    s3_xml_error(out->p, out->len, code, sizeof(code), msg, sizeof(msg)) == 0)
		x->status = 500;
	int verdict = (int)curl_xfer_verdict(x);
	if (verdict == CURL_DONE)
		return verdict;
	if (x->status >= 200 && x->status <= 299) {
		a->rc = -EIO; /* a short object: it ends before the range */
		snprintf(a->why, sizeof(a->why), "short read (%zu of %zu bytes)", x->received,
			 rq->io.range_len);
		return verdict;
	}
	if (!*code)
		s3_xml_error(x->err_body.p, x->err_body.len, code, sizeof(code), msg, sizeof(msg));
	const char *hint;
	a->rc = status_errno(x->status, code, &hint);
	snprintf(a->why, sizeof(a->why), "HTTP %ld%s%s%s%s%s%s", x->status, *code ? " " : "", code,
		 *hint ? ": " : "", hint, *msg && !*hint ? ": " : "", *hint ? "" : msg);
	return transient_code(code) ? (int)CURL_RETRY : verdict;
}

static int attempt(void *opaque)
{
	struct s3_attempt *a = opaque;
	const char *method = a->rq->method;
	struct curl_req cr = { .protocols = "http,https", .http = true,
			       .nobody = !strcmp(method, "HEAD"), .upload = !strcmp(method, "PUT"),
			       .io = &a->rq->io, .options = s3_options, .opaque = a };
	memset(a->rs, 0, sizeof(*a->rs));
	int rc = curl_xfer_run(&a->c->pool, &cr, a->url, &a->x);
	int verdict = rc < 0 ? rc : judge(a);
	curl_xfer_free(&a->x);
	return verdict;
}

int s3_request(struct s3_client *c, const struct s3_request *rq, struct s3_response *rs)
{
	struct buf key = { 0 };
	_cleanup_free_ char *url = NULL;
	_cleanup_(slist_freep) struct curl_slist *headers = NULL;
	char sha_hdr[100], md5_hdr[64];
	int rc = rq->key ? s3_uri_encode(rq->key, true, &key) : 0;
	if (rc == 0)
		rc = body_headers(rq, sha_hdr, md5_hdr);
	if (rc == 0) {
		url = curl_req_printf("%s%s%s%s", rq->key ? c->base : c->bucket_url,
				 rq->key ? (char *)key.p : "", rq->query ? "?" : "",
				 rq->query ? rq->query : "");
		rc = url ? 0 : -ENOMEM;
	}
	buf_free(&key);
	const char *extra[] = { sha_hdr, md5_hdr, c->token_header,
				rq->io.body ? (strcmp(rq->method, "POST") ? "Content-Type: application/octet-stream"
								       : "Content-Type: application/xml")
					 : NULL };
	for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(extra); i++) {
		if (!extra[i] || !*extra[i])
			continue;
		struct curl_slist *l = curl_slist_append(headers, extra[i]);
		if (!l)
			rc = -ENOMEM;
		else
			headers = l;
	}
	for (size_t i = 0; rc == 0 && rq->headers && rq->headers[i]; i++) {
		struct curl_slist *l = curl_slist_append(headers, rq->headers[i]);
		if (!l)
			rc = -ENOMEM;
		else
			headers = l;
	}
	if (rc < 0)
		return curl_req_fail(c, rc, "%s %s: out of memory", rq->method, rq->key ? rq->key : "");

	char where[600], what[620];
	s3_client_url(c, rq->key, where, sizeof(where)); /* no query: it may hold an upload id */
	snprintf(what, sizeof(what), "%s %s", rq->method, where);
	struct s3_attempt a = { .c = c, .rq = rq, .rs = rs, .url = url, .headers = headers };
	unsigned tries;
	int verdict = curl_req_retry(c, what, &c->retry, attempt, &a, &tries);
	if (verdict <= 0) /* CURL_DONE, or it could not be set up */
		return verdict;
	if (a.rc == -ENOENT && rs->status == 404 && strcmp(rq->method, "POST"))
		return -ENOENT; /* a missing object is an answer, not a failure */
	char after[48] = "";
	if (tries > 1)
		snprintf(after, sizeof(after), " (%u attempts)", tries);
	return curl_req_fail(c, a.rc, "%s: %s%s", what, a.why, after);
}
