/* The request core the remote backends share: S3 (s3_http.c) and SFTP
 * (backend_sftp.c) make every request through it, on top of curl_pool.h.
 *
 *   curl_xfer_run   one attempt on a pooled handle: the URL, the common
 *                   transport options, a body to upload, a byte range and
 *                   where the answer goes; the backend adds its protocol's
 *                   options (signing and headers, SSH keys and quote
 *                   commands) through a callback
 *   curl_req_retry  attempts until one is done or fails for good, with the
 *                   pool's jittered backoff between them
 *   curl_req_*errno what curl's codes and HTTP statuses mean as errno, and
 *                   which of them may pass when tried again
 *   curl_req_fail   the calling thread's last failure, like errno: why a
 *                   backend's operation failed, for its error() op
 *   and the small pieces of building a request: libcurl's process-wide
 *   set-up, percent-encoding, formatted strings
 *
 * Ranged reads (get_range): -ENOENT is a missing object, -EIO an object
 * that ends before the range (a short object) and nothing else; a server
 * that kept failing through every retry is -EREMOTEIO, a connection that
 * could not be made or kept -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT. */
#ifndef CAIRN_CURL_REQ_H
#define CAIRN_CURL_REQ_H

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "curl_pool.h"
#include "base/util.h"

/* What a request sends and where its answer goes; the backends' own
 * request structs hold one. */
struct curl_io {
	const void *body; /* to upload (or POST); NULL: none */
	size_t body_len;
	bool has_range;
	uint64_t range_off;
	size_t range_len; /* > 0 */
	/* the answer: a fixed buffer (ranged reads), else a growable one,
	 * else dropped */
	void *out;
	size_t out_cap;
	struct buf *out_buf;
};

/* A ranged read's io: len bytes of the object from off into out. */
static inline struct curl_io curl_io_range(uint64_t off, size_t len, void *out)
{
	return (struct curl_io){ .has_range = true, .range_off = off, .range_len = len,
				 .out = out, .out_cap = len };
}

/* A whole object's io: into out, emptied first. curl_io_whole_done()
 * then leaves room for a NUL after it, as the local backend does. */
static inline struct curl_io curl_io_whole(struct buf *out)
{
	out->len = 0;
	return (struct curl_io){ .out_buf = out };
}

static inline int curl_io_whole_done(int rc, struct buf *out)
{
	return rc < 0 ? rc : buf_reserve(out, 1);
}

/* One request as the core runs it. */
struct curl_req {
	const char *protocols; /* "http,https", "sftp" */
	/* statuses count: the body of a non-2xx answer is kept apart
	 * (err_body), and a 200 to a ranged GET (a server that ignored Range)
	 * is cut down to the range */
	bool http;
	bool nobody; /* HEAD, a stat, quote commands only */
	bool upload; /* io->body is a file to store (PUT, an SFTP upload) */
	const struct curl_io *io;
	/* the protocol's options for handle h; opaque is the backend's own
	 * state for this attempt. CURLE_OK or curl's error. */
	CURLcode (*options)(CURL *h, void *opaque);
	void *opaque;
};

/* One attempt and what came of it. */
struct curl_xfer {
	const struct curl_req *rq;
	CURL *h;
	struct curl_paced paced;
	size_t sent;
	uint64_t skip; /* leading bytes to drop: a server that ignored Range */
	CURLcode e;
	char errbuf[CURL_ERROR_SIZE];
	long status; /* HTTP status; 0 for SFTP */
	curl_off_t length; /* the size curl was told (Content-Length, the SFTP range or file); -1: none */
	size_t received; /* bytes into out or out_buf */
	bool overflow; /* more came than out holds */
	struct buf err_body; /* http: the first 64 KiB of a non-2xx answer */
};

/* Takes a handle of pool (waiting while all are busy), sets rq's options
 * and performs it once. 0 with the outcome in x, or a negative errno when
 * the request could not be set up. curl_xfer_free(x) after either. */
int curl_xfer_run(struct curl_pool *pool, const struct curl_req *rq, const char *url,
		  struct curl_xfer *x);
void curl_xfer_free(struct curl_xfer *x);

enum curl_verdict { CURL_DONE = 0, CURL_RETRY, CURL_FAIL }; /* done is 0, like success */
/* What the common rules say of x: a failed transfer is retried when
 * curl_req_transient() says so, an HTTP status when
 * curl_req_transient_status() does; a ranged read that got fewer bytes
 * than asked for (a short object) fails. */
enum curl_verdict curl_xfer_verdict(const struct curl_xfer *x);

/* How often and how patiently a backend tries a request again. */
struct curl_retry {
	unsigned retries; /* after the first attempt */
	unsigned first_ms, max_ms; /* curl_pool_backoff() */
};

/* Calls attempt(opaque) until it returns CURL_DONE or CURL_FAIL, or
 * p->retries more attempts have returned CURL_RETRY, sleeping
 * curl_pool_backoff() before each retry. The last verdict; *tries counts
 * the attempts made. An attempt that returns a negative errno (the
 * request could not be set up) ends it: that errno is returned, with the
 * reason "WHAT: cannot set up the request" kept for owner. */
int curl_req_retry(const void *owner, const char *what, const struct curl_retry *p,
		   int (*attempt)(void *opaque), void *opaque, unsigned *tries);

/* Failures that may pass when tried again: connections refused, reset
 * or timed out, a transfer cut short, TLS or SSH sessions that broke. */
bool curl_req_transient(CURLcode e);
/* 5xx and 429 Too Many Requests. */
bool curl_req_transient_status(long status);
/* curl's code as a negative errno (CURLE_OK: 0); what has no errno of
 * its own is -EREMOTEIO, so -EIO stays the short object's. */
int curl_req_errno(CURLcode e);
/* A non-2xx HTTP status as a negative errno: 401/403 -EACCES, 404
 * -ENOENT, 416 (a range beyond the end) -EIO, 400 -EINVAL, any other
 * (5xx, 429 after every retry) -EREMOTEIO. */
int curl_req_status_errno(long status);

/* The calling thread's last failure, one for every remote backend. owner
 * is the backend (or client) that failed, so that another one's reason
 * is never reported. clear starts a new operation; the first failure of
 * an operation is the one kept (fail returns rc either way); error is the
 * kept reason when it is owner's and for rc, else NULL. */
void curl_req_clear_error(void);
int curl_req_fail(const void *owner, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int curl_req_vfail(const void *owner, int rc, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
const char *curl_req_error(const void *owner, int rc);

/* libcurl's process-wide set-up, done once whoever asks first: 0, or
 * -ENOMEM when it failed. */
int curl_req_global_init(void);
/* Appends s percent-encoded (RFC 3986 unreserved characters stay) for a
 * URL path (keep_slash) or a query value; no NUL. */
int curl_req_url_encode(const char *s, bool keep_slash, struct buf *out);
/* A malloc'ed formatted string (a URL, a header, a quote command); NULL
 * when out of memory. */
char *curl_req_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
