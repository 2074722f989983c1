/* The remote backends' request core: see curl_req.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "curl_req.h"

#define ERROR_BODY_MAX (64u * 1024)

/* ---- the calling thread's last failure (like errno) ---- */

static __thread struct {
	const void *owner;
	int rc;
	char msg[640];
} last_err;

void curl_req_clear_error(void)
{
	last_err.owner = NULL;
}

int curl_req_vfail(const void *owner, int rc, const char *fmt, va_list ap)
{
	if (last_err.owner)
		return rc; /* the first failure of an operation is its cause */
	vsnprintf(last_err.msg, sizeof(last_err.msg), fmt, ap);
	last_err.msg[strcspn(last_err.msg, "\r\n")] = '\0';
	last_err.owner = owner;
	last_err.rc = rc;
	return rc;
}

int curl_req_fail(const void *owner, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	curl_req_vfail(owner, rc, fmt, ap);
	va_end(ap);
	return rc;
}

const char *curl_req_error(const void *owner, int rc)
{
	return last_err.owner == owner && last_err.rc == rc ? last_err.msg : NULL;
}

/* ---- one transfer ---- */

static size_t on_read(char *p, size_t size, size_t n, void *opaque)
{
	struct curl_xfer *x = opaque;
	const struct curl_io *io = x->rq->io;
	size_t k = MIN(io->body_len - x->sent, size * n);
	memcpy(p, (const uint8_t *)io->body + x->sent, k);
	x->sent += k;
	return k;
}

/* A retried or redirected upload starts its body again. */
static int on_seek(void *opaque, curl_off_t off, int origin)
{
	struct curl_xfer *x = opaque;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->rq->io->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* A 200 to a ranged GET carries the whole object: keep only the range. */
static size_t write_whole_object(struct curl_xfer *x, char *p, size_t len)
{
	const struct curl_io *io = x->rq->io;
	size_t all = len;
	uint64_t drop = MIN(x->skip, len);
	x->skip -= drop;
	p += drop;
	len -= drop;
	size_t k = MIN(len, io->out_cap - x->received);
	memcpy((uint8_t *)io->out + x->received, p, k);
	x->received += k;
	return all;
}

static size_t on_write(char *p, size_t size, size_t n, void *opaque)
{
	struct curl_xfer *x = opaque;
	const struct curl_io *io = x->rq->io;
	size_t len = size * n;
	if (x->rq->http) {
		long status = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299) {
			size_t k = MIN(len, ERROR_BODY_MAX - MIN(x->err_body.len, ERROR_BODY_MAX));
			return k && buf_append(&x->err_body, p, k) < 0 ? 0 : len;
		}
		if (io->has_range && status == 200)
			return write_whole_object(x, p, len);
	}
	if (io->out) {
		if (len > io->out_cap - x->received) {
			x->overflow = true;
			return 0;
		}
		memcpy((uint8_t *)io->out + x->received, p, len);
	} else if (io->out_buf && buf_append(io->out_buf, p, len) < 0) {
		return 0;
	}
	x->received += len;
	return len;
}

static CURLcode setup(struct curl_pool *pool, struct curl_xfer *x, const char *url)
{
	const struct curl_req *rq = x->rq;
	const struct curl_io *io = rq->io;
	CURL *h = x->h;
	CURLcode e = curl_pool_transport(pool, h, x->errbuf, &x->paced);
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, rq->protocols);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, x);
	if (rq->nobody)
		SET(CURLOPT_NOBODY, 1L);
	if (io->body) {
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
	}
	if (io->body && rq->upload) {
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)io->body_len);
	}
	if (io->has_range) {
		/* SFTP too: libcurl stats the file, seeks to the start and
		 * reads only the range */
		char range[64];
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)io->range_off,
			 (unsigned long long)(io->range_off + io->range_len - 1));
		SET(CURLOPT_RANGE, range); /* curl copies it */
	}
#undef SET
	return e ? e : rq->options ? rq->options(h, rq->opaque) : CURLE_OK;
}

int curl_xfer_run(struct curl_pool *pool, const struct curl_req *rq, const char *url,
		  struct curl_xfer *x)
{
	*x = (struct curl_xfer){ .rq = rq, .skip = rq->io->range_off, .length = -1 };
	if (rq->io->out_buf)
		rq->io->out_buf->len = 0;
	if (!(x->h = curl_pool_get(pool)))
		return -ENOMEM;
	CURLcode e = setup(pool, x, url);
	if (e == CURLE_OK) {
		x->e = curl_easy_perform(x->h);
		if (rq->http)
			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &x->length);
	}
	curl_pool_put(pool, x->h);
	x->h = NULL;
	return e == CURLE_OK ? 0 : e == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

void curl_xfer_free(struct curl_xfer *x)
{
	buf_free(&x->err_body);
}

enum curl_verdict curl_xfer_verdict(const struct curl_xfer *x)
{
	if (x->overflow)
		return CURL_FAIL;
	if (x->e != CURLE_OK)
		return curl_req_transient(x->e) ? CURL_RETRY : CURL_FAIL;
	if (x->rq->http && (x->status < 200 || x->status > 299))
		return curl_req_transient_status(x->status) ? CURL_RETRY : CURL_FAIL;
	if (x->rq->io->has_range && x->received != x->rq->io->range_len)
		return CURL_FAIL; /* a short object: trying again will not help */
	return CURL_DONE;
}

int curl_req_retry(const void *owner, const char *what, const struct curl_retry *p,
		   int (*attempt)(void *opaque), void *opaque, unsigned *tries)
{
	int verdict;
	*tries = 0;
	do {
		if (*tries)
			curl_pool_backoff(*tries, p->first_ms, p->max_ms);
		++*tries;
		verdict = attempt(opaque);
	} while (verdict == CURL_RETRY && *tries <= p->retries);
	if (verdict < 0)
		curl_req_fail(owner, verdict, "%s: cannot set up the request", what);
	return verdict;
}

/* ---- what failures mean ---- */

bool curl_req_transient(CURLcode e)
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
	case CURLE_SSH: /* an SSH session that broke */
	case CURLE_AGAIN:
		return true;
	default:
		return false;
	}
}

bool curl_req_transient_status(long status)
{
	return status >= 500 || status == 429;
}

int curl_req_errno(CURLcode e)
{
	switch (e) {
	case CURLE_OK: return 0;
	case CURLE_REMOTE_FILE_NOT_FOUND: return -ENOENT;
	case CURLE_REMOTE_ACCESS_DENIED:
	case CURLE_LOGIN_DENIED: return -EACCES;
	case CURLE_REMOTE_DISK_FULL: return -ENOSPC;
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE: return -ECONNRESET;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR: return -EPROTO;
	/* SFTP: a range that starts past the end of the file */
	case CURLE_BAD_DOWNLOAD_RESUME: return -EIO;
	case CURLE_SSH:
	case CURLE_AGAIN:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	default: return -EREMOTEIO;
	}
}

int curl_req_status_errno(long status)
{
	switch (status) {
	case 401:
	case 403: return -EACCES;
	case 404: return -ENOENT;
	case 416: return -EIO; /* a range beyond the end: a short object */
	case 400: return -EINVAL;
	default: return -EREMOTEIO;
	}
}

/* ---- building requests ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int curl_req_global_init(void)
{
	pthread_once(&global_once, global_init);
	return global_rc == CURLE_OK ? 0 : -ENOMEM;
}

int curl_req_url_encode(const char *s, bool keep_slash, struct buf *out)
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
	return rc;
}

char *curl_req_printf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}
