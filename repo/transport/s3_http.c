/* Signed, retried S3 requests over libcurl from any number of threads.
 *
 * A pool of at most `connections` easy handles: a thread takes one for a
 * request (waiting while all are busy) and gives it back, so connections
 * stay open between requests and --connections bounds the parallelism.
 * The handles share DNS and TLS sessions. curl signs every request
 * (CURLOPT_AWS_SIGV4) with the payload hash we compute and send as
 * x-amz-content-sha256; PUT and POST bodies also carry Content-MD5, so the
 * server refuses (BadDigest) what arrived damaged and we send it again. */
#include <curl/curl.h>
#include <errno.h>
#include <libxml/parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "curl_pool.h"
#include "s3.h"

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 15000
#define ERROR_BODY_MAX (64u * 1024)

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
	unsigned retries;
	struct curl_pool pool; /* connections and rate limits */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* ---- the calling thread's last failure (like errno) ---- */

static __thread struct {
	const struct s3_client *owner;
	int rc;
	char msg[448];
} last_err;

const char *s3_client_error(const struct s3_client *c, int rc)
{
	return last_err.owner == c && last_err.rc == rc ? last_err.msg : NULL;
}

void s3_client_clear_error(void)
{
	last_err.owner = NULL;
}

int s3_client_fail(const struct s3_client *c, int rc, const char *fmt, ...)
{
	if (last_err.owner)
		return rc; /* the first failure of an operation is its cause */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err.msg, sizeof(last_err.msg), fmt, ap);
	va_end(ap);
	last_err.msg[strcspn(last_err.msg, "\r\n")] = '\0';
	last_err.owner = c;
	last_err.rc = rc;
	return rc;
}

/* ---- set-up ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	xmlInitParser();
}

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
	static const char hexd[] = "0123456789ABCDEF";
	int rc = 0;
	for (; rc == 0 && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || strchr("-._~", ch) ||
			     (keep_slash && ch == '/');
		char esc[3] = { '%', hexd[ch >> 4], hexd[ch & 15] };
		rc = plain ? buf_append(out, s, 1) : buf_append(out, esc, 3);
	}
	return rc < 0 ? rc : buf_append(out, "", 1);
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
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
		c->bucket_url = str_printf("%s://%s.%s/", u->scheme, u->bucket, u->hostport);
		c->base = str_printf("%s://%s.%s/%s", u->scheme, u->bucket, u->hostport,
				     (char *)prefix.p);
	} else {
		c->bucket_url = str_printf("%s://%s/%s", u->scheme, u->hostport, u->bucket);
		c->base = str_printf("%s://%s/%s/%s", u->scheme, u->hostport, u->bucket,
				     (char *)prefix.p);
	}
	buf_free(&prefix);
	return c->base && c->bucket_url ? 0 : -ENOMEM;
}

int s3_client_new(const struct s3_client_opts *o, struct s3_client **out)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return -ENOMEM;
	struct s3_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	int pool_rc = curl_pool_init(&c->pool, o->connections, o->limit_upload, o->limit_download);
	c->retries = o->retries;
	snprintf(c->cred_source_buf, sizeof(c->cred_source_buf), "%s", o->creds->source);
	c->cred_source = c->cred_source_buf;
	c->bucket = strdup(o->url->bucket);
	c->sigv4 = str_printf("aws:amz:%s:s3", o->region);
	c->access_key = strdup(o->creds->access_key);
	c->secret_key = strdup(o->creds->secret_key);
	if (o->creds->session_token)
		c->token_header = str_printf("x-amz-security-token: %s", o->creds->session_token);
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

/* ---- one transfer ---- */

struct xfer {
	struct s3_client *c;
	CURL *h;
	struct curl_paced paced;
	const struct s3_request *rq;
	size_t sent;
	uint64_t skip; /* leading bytes to drop: a server that ignored Range */
	struct s3_response *rs;
	struct buf err_body;
	bool overflow;
};

static size_t on_read(char *p, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t left = x->rq->body_len - x->sent, k = MIN(left, size * n);
	memcpy(p, (const uint8_t *)x->rq->body + x->sent, k);
	x->sent += k;
	return k;
}

static int on_seek(void *opaque, curl_off_t off, int origin)
{
	struct xfer *x = opaque;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->rq->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *p, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		size_t k = MIN(len, ERROR_BODY_MAX - MIN(x->err_body.len, ERROR_BODY_MAX));
		return k && buf_append(&x->err_body, p, k) < 0 ? 0 : len;
	}
	const struct s3_request *rq = x->rq;
	if (rq->has_range && status == 200) {
		/* the whole object came: keep only the range */
		uint64_t drop = MIN(x->skip, len);
		x->skip -= drop;
		p += drop;
		len -= drop;
		size_t room = rq->out_cap - x->rs->received;
		size_t k = MIN(len, room);
		memcpy((uint8_t *)rq->out + x->rs->received, p, k);
		x->rs->received += k;
		return size * n;
	}
	if (rq->out) {
		if (len > rq->out_cap - x->rs->received) {
			x->overflow = true;
			return 0;
		}
		memcpy((uint8_t *)rq->out + x->rs->received, p, len);
		x->rs->received += len;
		return len;
	}
	if (rq->out_buf && buf_append(rq->out_buf, p, len) < 0)
		return 0;
	x->rs->received += len;
	return len;
}

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
	struct xfer *x = opaque;
	size_t len = size * n;
	header_value(p, len, "etag:", x->rs->etag, sizeof(x->rs->etag));
	header_value(p, len, "x-amz-version-id:", x->rs->version_id, sizeof(x->rs->version_id));
	header_value(p, len, "x-amz-object-lock-retain-until-date:", x->rs->retain_until,
		     sizeof(x->rs->retain_until));
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
	const void *body = rq->body ? rq->body : "";
	if (!EVP_Digest(body, rq->body_len, sha, NULL, EVP_sha256(), NULL))
		return -ENOMEM;
	hex_encode(sha, sizeof(sha), hex);
	snprintf(sha_hdr, 100, "x-amz-content-sha256: %s", hex);
	md5_hdr[0] = '\0';
	if (rq->body) {
		char b64[32];
		if (!EVP_Digest(body, rq->body_len, md5, NULL, EVP_md5(), NULL))
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

static int setup(struct s3_client *c, struct xfer *x, const char *url,
		 struct curl_slist *headers, char *errbuf)
{
	const struct s3_request *rq = x->rq;
	CURL *h = x->h;
	CURLcode e = CURLE_OK;
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_URL, url);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_AWS_SIGV4, c->sigv4);
	SET(CURLOPT_USERNAME, c->access_key);
	SET(CURLOPT_PASSWORD, c->secret_key);
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	if (c->ca_bundle)
		SET(CURLOPT_CAINFO, c->ca_bundle);
	e = e ? e : curl_pool_transport(&c->pool, h, errbuf, &x->paced);
	if (!strcmp(rq->method, "HEAD")) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (!strcmp(rq->method, "PUT")) {
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (!strcmp(rq->method, "POST")) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (strcmp(rq->method, "GET")) {
		SET(CURLOPT_CUSTOMREQUEST, rq->method);
	}
	if (rq->body) {
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
	}
#undef SET
	return e == CURLE_OK ? 0 : e == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

/* ---- outcomes ---- */

enum outcome { DONE, RETRY, FAIL };

static bool transient_curl(CURLcode e)
{
	switch (e) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static int curl_errno(CURLcode e)
{
	switch (e) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING: return -ECONNRESET;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR: return -EPROTO;
	default: return -EIO;
	}
}

static bool transient_code(long status, const char *code)
{
	return status >= 500 || status == 429 || !strcmp(code, "SlowDown") ||
	       !strcmp(code, "RequestTimeout") || !strcmp(code, "BadDigest") ||
	       !strcmp(code, "XAmzContentSHA256Mismatch") || !strcmp(code, "InternalError");
}

/* What a non-2xx status means to cairn, with the words to say it. */
static int status_errno(const struct s3_client *c, long status, const char *code,
			const char **hint)
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
	(void)c;
	switch (status) {
	case 401:
	case 403:
		*hint = *code ? "the credentials may not do this" : "access denied";
		return -EACCES;
	case 404: return -ENOENT;
	case 416: return -EIO; /* a range beyond the end: a short object */
	case 400: return -EINVAL;
	default: return -EIO;
	}
}

static void backoff(unsigned attempt)
{
	curl_pool_backoff(attempt, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
}

struct attempt {
	enum outcome outcome;
	int rc;
	char why[300]; /* for the message when it is the last one */
};

static void judge(const struct s3_client *c, struct xfer *x, CURLcode e, const char *errbuf,
		  struct attempt *a)
{
	const struct s3_request *rq = x->rq;
	long status = x->rs->status;
	char code[64] = "", msg[160] = "";
	if (e != CURLE_OK) {
		a->outcome = transient_curl(e) ? RETRY : FAIL;
		a->rc = x->overflow ? -EIO : curl_errno(e);
		snprintf(a->why, sizeof(a->why), "%s", x->overflow ? "the server sent more than asked for"
						     : *errbuf ? errbuf : curl_easy_strerror(e));
		return;
	}
	bool ok = status >= 200 && status <= 299;
	/* CompleteMultipartUpload may answer 200 with an error document */
	if (ok && !strcmp(rq->method, "POST") && rq->out_buf &&
	    s3_xml_error(rq->out_buf->p, rq->out_buf->len, code, sizeof(code), msg, sizeof(msg)) == 0)
		ok = false, status = 500;
	if (ok && rq->has_range && x->rs->received != rq->range_len) {
		a->outcome = FAIL;
		a->rc = -EIO; /* short read: the object ends before the range */
		snprintf(a->why, sizeof(a->why), "short read (%zu of %zu bytes)", x->rs->received,
			 rq->range_len);
		return;
	}
	if (ok) {
		a->outcome = DONE;
		a->rc = 0;
		return;
	}
	if (!*code)
		s3_xml_error(x->err_body.p, x->err_body.len, code, sizeof(code), msg, sizeof(msg));
	const char *hint;
	a->rc = status_errno(c, status, code, &hint);
	a->outcome = transient_code(status, code) ? RETRY : FAIL;
	snprintf(a->why, sizeof(a->why), "HTTP %ld%s%s%s%s%s%s", status, *code ? " " : "", code,
		 *hint ? ": " : "", hint, *msg && !*hint ? ": " : "", *hint ? "" : msg);
}

static int perform(struct s3_client *c, const struct s3_request *rq, struct s3_response *rs,
		   const char *url, struct curl_slist *headers, struct attempt *a)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *h = curl_pool_get(&c->pool);
	if (!h)
		return -ENOMEM;
	struct xfer x = { .c = c, .h = h, .rq = rq, .rs = rs, .skip = rq->range_off };
	memset(rs, 0, sizeof(*rs));
	if (rq->out_buf)
		rq->out_buf->len = 0;
	int rc = setup(c, &x, url, headers, errbuf);
	if (rc == 0 && rq->has_range) {
		char range[64];
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)rq->range_off,
			 (unsigned long long)(rq->range_off + rq->range_len - 1));
		rc = curl_easy_setopt(h, CURLOPT_RANGE, range) ? -ENOMEM : 0;
	}
	if (rc == 0) {
		CURLcode e = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
		curl_off_t cl = -1;
		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		rs->length = cl > 0 ? (uint64_t)cl : 0;
		judge(c, &x, e, errbuf, a);
	}
	/* the easy handle keeps pointers to these until the next reset */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_pool_put(&c->pool, h);
	buf_free(&x.err_body);
	return rc;
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
		url = str_printf("%s%s%s%s", rq->key ? c->base : c->bucket_url,
				 rq->key ? (char *)key.p : "", rq->query ? "?" : "",
				 rq->query ? rq->query : "");
		rc = url ? 0 : -ENOMEM;
	}
	buf_free(&key);
	const char *extra[] = { sha_hdr, md5_hdr, c->token_header,
				rq->body ? (strcmp(rq->method, "POST") ? "Content-Type: application/octet-stream"
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
		return s3_client_fail(c, rc, "%s %s: out of memory", rq->method, rq->key ? rq->key : "");

	char where[600];
	s3_client_url(c, rq->key, where, sizeof(where)); /* no query: it may hold an upload id */
	struct attempt a = { 0 };
	unsigned tries = 0;
	do {
		if (tries)
			backoff(tries);
		tries++;
		if ((rc = perform(c, rq, rs, url, headers, &a)) < 0)
			return s3_client_fail(c, rc, "%s %s: cannot set up the request", rq->method,
					      where);
	} while (a.outcome == RETRY && tries <= c->retries);
	if (a.outcome == DONE)
		return 0;
	if (a.rc == -ENOENT && rs->status == 404 && strcmp(rq->method, "POST"))
		return -ENOENT; /* a missing object is an answer, not a failure */
	char after[48] = "";
	if (tries > 1)
		snprintf(after, sizeof(after), " (%u attempts)", tries);
	return s3_client_fail(c, a.rc, "%s %s: %s%s", rq->method, where, a.why, after);
}
