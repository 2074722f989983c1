/* SFTP backend: the repository's objects under a directory of an SSH
 * server, with the same names as in a local directory (docs/design.md
 * section 1), through libcurl's SFTP (libssh2).
 *
 * A pool of at most `connections` curl easy handles: each keeps its SSH
 * session open between operations (a login costs several round trips and
 * a key exchange), and a thread takes one handle per operation. Only key
 * authentication is offered, and the server's host key must be in
 * known_hosts: anything else is refused with the key's fingerprint.
 *
 * put() uploads to DIR/.tmp-<random> (making missing directories) and
 * renames that over the final name in the same request. SFTP's rename
 * (libcurl's quote command; OpenSSH's sftp-server links, then unlinks)
 * refuses an existing target, so a name that exists already is handled
 * after the fact: a content-addressed one holds the same bytes, the
 * temporary file is dropped; any other (a lock's heartbeat) is removed,
 * then renamed over. See docs/design.md "Atomic writes (SFTP)". */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "repo/backend.h"
#include "curl_pool.h"
#include "sftp.h"

#define DEFAULT_RETRIES 4
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 8000
struct sftp_backend {
	struct cairn_backend base;
	char *url_base; /* "sftp://HOST:PORT/abs/dir/" or ".../~/rel/dir/" */
	char *home_url; /* "sftp://HOST:PORT/~/": quote-only requests */
	char *path_base; /* the same directory for quote commands, ends with '/' */
	char *hostport; /* "host:port" for messages */
	char *host;
	unsigned port;
	char *user;
	char *identity, *public_key; /* public_key may be NULL */
	char *known_hosts;
	unsigned retries;
	struct curl_pool pool; /* connections (SSH sessions) and rate limits */
};

static struct sftp_backend *to_sftp(struct cairn_backend *b)
{
	return (struct sftp_backend *)b;
}

/* ---- the calling thread's last failure (like errno) ---- */

static __thread struct {
	const struct sftp_backend *owner;
	int rc;
	char msg[640];
} last_err;

static void clear_error(void)
{
	last_err.owner = NULL;
}

static int fail(const struct sftp_backend *s, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(const struct sftp_backend *s, int rc, const char *fmt, ...)
{
	if (last_err.owner)
		return rc; /* the first failure of an operation is its cause */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err.msg, sizeof(last_err.msg), fmt, ap);
	va_end(ap);
	last_err.msg[strcspn(last_err.msg, "\r\n")] = '\0';
	last_err.owner = s;
	last_err.rc = rc;
	return rc;
}

static const char *sftp_error(struct cairn_backend *b, int rc)
{
	return last_err.owner == to_sftp(b) && last_err.rc == rc ? last_err.msg : NULL;
}

/* ---- one request ---- */

struct request {
	const char *verb; /* for messages */
	const char *name; /* below the repository; NULL: none (quote only) */
	bool dir; /* a directory listing of name */
	bool nobody; /* stat, or quote commands only */
	const void *body; /* upload */
	size_t body_len;
	bool create_dirs;
	struct curl_slist *quote, *postquote;
	bool has_range;
	uint64_t range_off;
	size_t range_len; /* > 0 */
	/* where a download goes: a fixed buffer, else a growable one */
	void *out;
	size_t out_cap;
	struct buf *out_buf;
};

struct hostkey {
	enum curl_khmatch match;
	enum curl_khtype type;
	char fingerprint[64]; /* "SHA256:..." as ssh prints it */
	bool seen;
};

struct xfer {
	struct sftp_backend *s;
	const struct request *rq;
	struct curl_paced paced;
	size_t sent, received;
	bool overflow;
	struct hostkey hk;
};

struct outcome {
	CURLcode e;
	char errbuf[CURL_ERROR_SIZE];
	struct hostkey hk;
	size_t received;
	curl_off_t length;
	bool overflow;
};

static size_t on_read(char *p, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t k = MIN(x->rq->body_len - x->sent, size * n);
	memcpy(p, (const uint8_t *)x->rq->body + x->sent, k);
	x->sent += k;
	return k;
}

static size_t on_write(char *p, size_t size, size_t n, void *opaque)
{
	struct xfer *x = opaque;
	size_t len = size * n;
	const struct request *rq = x->rq;
	if (rq->out) {
		if (len > rq->out_cap - x->received) {
			x->overflow = true;
			return 0;
		}
		memcpy((uint8_t *)rq->out + x->received, p, len);
	} else if (rq->out_buf && buf_append(rq->out_buf, p, len) < 0)
		return 0;
	x->received += len;
	return len;
}

static const char *key_type_name(enum curl_khtype t)
{
	switch (t) {
	case CURLKHTYPE_RSA1:
	case CURLKHTYPE_RSA: return "RSA";
	case CURLKHTYPE_DSS: return "DSA";
	case CURLKHTYPE_ECDSA: return "ECDSA";
	case CURLKHTYPE_ED25519: return "ED25519";
	default: return "unknown";
	}
}

/* OpenSSH's fingerprint: SHA-256 of the key blob, unpadded base64. */
static void fingerprint(const void *key, size_t len, char *out, size_t outlen)
{
	uint8_t md[32];
	unsigned char b64[48];
	if (!EVP_Digest(key, len, md, NULL, EVP_sha256(), NULL)) {
		snprintf(out, outlen, "(no fingerprint)");
		return;
	}
	int n = EVP_EncodeBlock(b64, md, sizeof(md));
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(out, outlen, "SHA256:%.*s", n, (const char *)b64);
}

/* Only a key known_hosts lists for this host passes; what was offered is
 * kept for the refusal's message. */
static int on_hostkey(CURL *h, const struct curl_khkey *known, const struct curl_khkey *found,
		      enum curl_khmatch match, void *opaque)
{
	(void)h;
	(void)known;
	struct xfer *x = opaque;
	x->hk.seen = true;
	x->hk.match = match;
	x->hk.type = found->keytype;
	if (found->len)
		fingerprint(found->key, found->len, x->hk.fingerprint, sizeof(x->hk.fingerprint));
	else
		snprintf(x->hk.fingerprint, sizeof(x->hk.fingerprint), "(no fingerprint)");
	return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
}

static int url_encode(const char *s, struct buf *out)
{
	static const char hexd[] = "0123456789ABCDEF";
	int rc = 0;
	for (; rc == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || strchr("-._~/", c);
		char esc[3] = { '%', hexd[c >> 4], hexd[c & 15] };
		rc = plain ? buf_append(out, s, 1) : buf_append(out, esc, 3);
	}
	return rc;
}

/* base + encoded name [+ '/'], NUL-terminated. */
static char *request_url(const struct sftp_backend *s, const struct request *rq)
{
	struct buf b = { 0 };
	const char *base = rq->name ? s->url_base : s->home_url;
	int rc = buf_append(&b, base, strlen(base));
	if (rc == 0 && rq->name)
		rc = url_encode(rq->name, &b);
	if (rc == 0 && rq->dir)
		rc = buf_append(&b, "/", 1);
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	if (rc < 0) {
		buf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

static int setup(struct sftp_backend *s, CURL *h, struct xfer *x, const char *url, char *errbuf)
{
	const struct request *rq = x->rq;
	CURLcode e = CURLE_OK;
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "sftp");
	SET(CURLOPT_USERNAME, s->user);
	SET(CURLOPT_SSH_AUTH_TYPES, (long)CURLSSH_AUTH_PUBLICKEY);
	SET(CURLOPT_SSH_PRIVATE_KEYFILE, s->identity);
	if (s->public_key)
		SET(CURLOPT_SSH_PUBLIC_KEYFILE, s->public_key);
	SET(CURLOPT_SSH_KNOWNHOSTS, s->known_hosts);
	SET(CURLOPT_SSH_KEYFUNCTION, on_hostkey);
	SET(CURLOPT_SSH_KEYDATA, x);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, x);
	e = e ? e : curl_pool_transport(&s->pool, h, errbuf, &x->paced);
	if (rq->nobody)
		SET(CURLOPT_NOBODY, 1L);
	if (rq->quote)
		SET(CURLOPT_QUOTE, rq->quote);
	if (rq->postquote)
		SET(CURLOPT_POSTQUOTE, rq->postquote);
	if (rq->body) {
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
	}
	if (rq->create_dirs)
		SET(CURLOPT_FTP_CREATE_MISSING_DIRS, (long)CURLFTP_CREATE_DIR);
	if (rq->has_range) {
		char range[64];
		snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)rq->range_off,
			 (unsigned long long)(rq->range_off + rq->range_len - 1));
		SET(CURLOPT_RANGE, range); /* curl copies it */
	}
#undef SET
	return e == CURLE_OK ? 0 : e == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

static int perform(struct sftp_backend *s, const struct request *rq, const char *url,
		   struct outcome *o)
{
	CURL *h = curl_pool_get(&s->pool);
	if (!h)
		return -ENOMEM;
	struct xfer x = { .s = s, .rq = rq };
	memset(o, 0, sizeof(*o));
	if (rq->out_buf)
		rq->out_buf->len = 0;
	int rc = setup(s, h, &x, url, o->errbuf);
	if (rc == 0) {
		o->e = curl_easy_perform(h);
		curl_off_t cl = -1;
		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		o->length = cl;
		o->received = x.received;
		o->overflow = x.overflow;
		o->hk = x.hk;
	}
	/* the handle keeps pointers to these until the next reset */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_QUOTE, NULL);
	curl_easy_setopt(h, CURLOPT_POSTQUOTE, NULL);
	curl_easy_setopt(h, CURLOPT_SSH_KEYDATA, NULL);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, NULL);
	curl_pool_put(&s->pool, h);
	return rc;
}

/* ---- outcomes ---- */

static bool transient(CURLcode e)
{
	switch (e) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSH:
	case CURLE_AGAIN:
		return true;
	default:
		return false;
	}
}

static int curl_errno(CURLcode e)
{
	switch (e) {
	case CURLE_REMOTE_FILE_NOT_FOUND: return -ENOENT;
	case CURLE_REMOTE_ACCESS_DENIED:
	case CURLE_LOGIN_DENIED:
	case CURLE_PEER_FAILED_VERIFICATION: return -EACCES;
	case CURLE_REMOTE_DISK_FULL: return -ENOSPC;
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING: return -ECONNRESET;
	default: return -EIO;
	}
}

static void backoff(unsigned attempt)
{
	curl_pool_backoff(attempt, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
}

/* The words for a refused host key: what was offered and how to accept
 * it after checking it. */
static int hostkey_fail(const struct sftp_backend *s, const char *where, const struct hostkey *hk)
{
	char scan[160], forget[200];
	if (s->port == 22) {
		snprintf(scan, sizeof(scan), "ssh-keyscan %s >> %s", s->host, s->known_hosts);
		snprintf(forget, sizeof(forget), "ssh-keygen -R %s -f %s", s->host, s->known_hosts);
	} else {
		snprintf(scan, sizeof(scan), "ssh-keyscan -p %u %s >> %s", s->port, s->host,
			 s->known_hosts);
		snprintf(forget, sizeof(forget), "ssh-keygen -R '[%s]:%u' -f %s", s->host, s->port,
			 s->known_hosts);
	}
	if (hk->match == CURLKHMATCH_MISMATCH)
		return fail(s, -EACCES,
			    "%s: refused: the host key of %s does not match %s (it now offers %s key %s); if the server's key was really changed, remove the old entry (%s) and add the new one (%s, or ssh to it once)",
			    where, s->hostport, s->known_hosts, key_type_name(hk->type),
			    hk->fingerprint, forget, scan);
	return fail(s, -EACCES,
		    "%s: refused: host %s is not in %s (it offers %s key %s); check that fingerprint, then add the key (%s, or ssh to it once)",
		    where, s->hostport, s->known_hosts, key_type_name(hk->type), hk->fingerprint,
		    scan);
}

static int describe(const struct sftp_backend *s, const struct request *rq, const char *where,
		    const struct outcome *o, unsigned tries)
{
	char after[48] = "";
	if (tries > 1)
		snprintf(after, sizeof(after), " (%u attempts)", tries);
	if (o->e == CURLE_PEER_FAILED_VERIFICATION && o->hk.seen && o->hk.match != CURLKHMATCH_OK)
		return hostkey_fail(s, where, &o->hk);
	if (o->e == CURLE_LOGIN_DENIED)
		return fail(s, -EACCES,
			    "%s: the server refused the key %s for user %s (is %s.pub in its authorized_keys? a passphrase-protected key is not supported)",
			    where, s->identity, s->user, s->identity);
	if (o->overflow)
		return fail(s, -EIO, "%s %s: the server sent more than asked for", rq->verb, where);
	return fail(s, curl_errno(o->e), "%s %s: %s%s", rq->verb, where,
		    *o->errbuf ? o->errbuf : curl_easy_strerror(o->e), after);
}

static void object_where(const struct sftp_backend *s, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", s->base.location, name ? "/" : "", name ? name : "");
}

/* Performs rq, retrying dropped connections with backoff. 0; -ENOENT
 * with no reason kept when the object or directory does not exist (an
 * ordinary answer); else a negative errno with the reason kept. */
static int run(struct sftp_backend *s, const struct request *rq, struct outcome *o)
{
	_cleanup_free_ char *url = request_url(s, rq);
	if (!url)
		return fail(s, -ENOMEM, "%s: out of memory", rq->verb);
	/* messages name the object in the repository URL's own words */
	char where[600];
	object_where(s, rq->name, where, sizeof(where));
	unsigned tries = 0;
	int rc;
	for (;;) {
		if (tries)
			backoff(tries);
		tries++;
		if ((rc = perform(s, rq, url, o)) < 0)
			return fail(s, rc, "%s %s: cannot set up the request", rq->verb, where);
		if (o->e == CURLE_OK && !o->overflow)
			return 0;
		if (!transient(o->e) || tries > s->retries)
			break;
	}
	if (o->e == CURLE_REMOTE_FILE_NOT_FOUND)
		return -ENOENT;
	return describe(s, rq, where, o, tries);
}

/* ---- quote commands ---- */

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

/* Appends "CMD PATH_BASE+a [PATH_BASE+b]"; a leading '*' in cmd lets the
 * command fail without failing the request. Repository paths hold no
 * whitespace (sftp_url.c), and "/~/" is curl's login directory. */
static int quote_add(const struct sftp_backend *s, struct curl_slist **l, const char *cmd,
		     const char *a, const char *b)
{
	_cleanup_free_ char *line = NULL;
	int n = b ? asprintf(&line, "%s %s%s %s%s", cmd, s->path_base, a, s->path_base, b)
		  : asprintf(&line, "%s %s%s", cmd, s->path_base, a);
	if (n < 0)
		return -ENOMEM;
	struct curl_slist *nl = curl_slist_append(*l, line);
	if (!nl)
		return -ENOMEM;
	*l = nl;
	return 0;
}

/* Runs quote commands alone (no transfer), in the login directory. */
static int run_quotes(struct sftp_backend *s, const char *verb, struct curl_slist *quote,
		      struct outcome *o)
{
	struct request rq = { .verb = verb, .nobody = true, .quote = quote };
	return run(s, &rq, o);
}

/* ---- operations ---- */

static int sftp_stat_name(struct sftp_backend *s, const char *name, uint64_t *size)
{
	struct request rq = { .verb = "stat", .name = name, .nobody = true };
	struct outcome o;
	int rc = run(s, &rq, &o);
	if (rc == 0)
		*size = o.length > 0 ? (uint64_t)o.length : 0;
	return rc;
}

static int sftp_stat(struct cairn_backend *b, const char *name, uint64_t *size)
{
	clear_error();
	return sftp_stat_name(to_sftp(b), name, size);
}

/* Names whose bytes are fixed by the name (docs/design.md section 1):
 * an existing one already holds what a put would write. */
static bool content_addressed(const char *name)
{
	static const char *const dirs[] = { "data/", "index/", "snapshots/", "verifications/" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (!strncmp(name, dirs[i], strlen(dirs[i])))
			return true;
	return false;
}

/* The rename of a finished upload failed: most often because the name
 * exists already. tmp is removed whatever happens. */
static int put_existing(struct sftp_backend *s, const char *name, const char *tmp)
{
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	struct outcome o;
	uint64_t size;
	int rc;
	clear_error();
	if (content_addressed(name) && sftp_stat_name(s, name, &size) == 0) {
		/* a leftover temporary file is harmless: readers skip it */
		if (quote_add(s, &q, "*rm", tmp, NULL) == 0)
			run_quotes(s, "remove", q, &o);
		clear_error();
		return 0;
	}
	clear_error();
	/* the old object vanishes for one round trip: SFTP v3 has no
	 * replacing rename (see the top of this file) */
	rc = quote_add(s, &q, "*rm", name, NULL);
	if (rc == 0)
		rc = quote_add(s, &q, "rename", tmp, name);
	if (rc == 0)
		rc = run_quotes(s, "rename", q, &o);
	if (rc == 0)
		return 0;
	if (rc == -ENOENT)
		rc = fail(s, -EIO, "rename %s/%s: %s", s->base.location, tmp, o.errbuf);
	curl_slist_free_all(q);
	q = NULL;
	if (quote_add(s, &q, "*rm", tmp, NULL) == 0) {
		struct outcome ignored;
		run_quotes(s, "remove", q, &ignored);
	}
	return rc;
}

static int sftp_put(struct cairn_backend *b, const char *name, const void *data, size_t len)
{
	struct sftp_backend *s = to_sftp(b);
	clear_error();
	uint8_t rnd[8];
	char rhex[17], tmp[300];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return fail(s, -EIO, "no randomness for a temporary name");
	hex_encode(rnd, sizeof(rnd), rhex);
	const char *slash = strrchr(name, '/');
	int dn = slash ? (int)(slash - name + 1) : 0;
	if (snprintf(tmp, sizeof(tmp), "%.*s.tmp-%s", dn, name, rhex) >= (int)sizeof(tmp))
		return fail(s, -ENAMETOOLONG, "%s: name too long", name);
	_cleanup_(slist_freep) struct curl_slist *post = NULL;
	int rc = quote_add(s, &post, "rename", tmp, name);
	if (rc < 0)
		return fail(s, rc, "out of memory");
	struct request rq = { .verb = "upload", .name = tmp, .body = data ? data : "",
			      .body_len = len, .create_dirs = true, .postquote = post };
	struct outcome o;
	rc = run(s, &rq, &o);
	if (rc == 0)
		return 0;
	if (o.e == CURLE_QUOTE_ERROR)
		return put_existing(s, name, tmp);
	if (rc == -ENOENT) { /* a directory that could not be made */
		char where[600];
		object_where(s, tmp, where, sizeof(where));
		rc = fail(s, -EIO, "upload %s: %s", where, *o.errbuf ? o.errbuf : "no such directory");
	}
	/* a half-written temporary file is ignored by readers; try to drop it */
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	if (quote_add(s, &q, "*rm", tmp, NULL) == 0) {
		struct outcome ignored; /* the upload's failure stays the reported one */
		run_quotes(s, "remove", q, &ignored);
	}
	return rc;
}

static int sftp_get(struct cairn_backend *b, const char *name, struct buf *out)
{
	clear_error();
	struct request rq = { .verb = "download", .name = name, .out_buf = out };
	struct outcome o;
	out->len = 0;
	int rc = run(to_sftp(b), &rq, &o);
	/* room for a terminating NUL, as the local backend leaves */
	return rc < 0 ? rc : buf_reserve(out, 1);
}

static int sftp_get_range(struct cairn_backend *b, const char *name, uint64_t off, size_t len,
			  void *out)
{
	struct sftp_backend *s = to_sftp(b);
	clear_error();
	if (!len)
		return 0;
	struct request rq = { .verb = "download", .name = name, .has_range = true,
			      .range_off = off, .range_len = len, .out = out, .out_cap = len };
	struct outcome o;
	int rc = run(s, &rq, &o);
	if (rc == 0 && o.received != len) {
		char where[600];
		object_where(s, name, where, sizeof(where));
		return fail(s, -EIO, "download %s: short read (%zu of %zu bytes at %llu)", where,
			    o.received, len, (unsigned long long)off);
	}
	return rc;
}

/* The modification time of an ls -l line, from its MONTH DAY TIME|YEAR
 * fields (sftp-server's strftime "%b %e %H:%M", or "%b %e  %Y" past six
 * months), read as UTC: the server's time zone is unknown, so callers
 * allow a day of slack. A TIME without a year is in the last twelve
 * months. 0 when the fields do not parse. */
static int64_t entry_time(const char *mon, const char *day, const char *t, int64_t now)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	const char *m = strlen(mon) == 3 ? strstr(months, mon) : NULL;
	struct tm tm = { .tm_mday = atoi(day) };
	if (!m || (m - months) % 3 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return 0;
	tm.tm_mon = (int)((m - months) / 3);
	if (strchr(t, ':')) {
		struct tm today;
		time_t nt = (time_t)now;
		gmtime_r(&nt, &today);
		tm.tm_year = today.tm_year;
		if (sscanf(t, "%d:%d", &tm.tm_hour, &tm.tm_min) != 2)
			return 0;
		int64_t at = (int64_t)timegm(&tm);
		if (at > now + 86400) { /* that date this year is ahead: last year's */
			tm.tm_year--;
			at = (int64_t)timegm(&tm);
		}
		return at;
	}
	tm.tm_year = atoi(t) - 1900;
	return tm.tm_year > 70 ? (int64_t)timegm(&tm) : 0;
}

/* One line of a listing as OpenSSH's sftp-server writes it (ls -l):
 * MODE LINKS OWNER GROUP SIZE MONTH DAY TIME|YEAR NAME. *mtime (may be
 * NULL) from entry_time(). */
static bool parse_entry(char *line, char *type, uint64_t *size, const char **name,
			int64_t *mtime)
{
	char *f[8], *p = line;
	for (int i = 0; i < 8; i++) {
		p += strspn(p, " \t");
		if (!*p)
			return false;
		f[i] = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
	}
	p += strspn(p, " \t");
	if (!*p)
		return false;
	char *end;
	unsigned long long v = strtoull(f[4], &end, 10);
	if (*end || end == f[4])
		return false;
	*type = f[0][0];
	*size = v;
	*name = p;
	if (mtime)
		*mtime = entry_time(f[5], f[6], f[7], (int64_t)time(NULL));
	return true;
}

static int list_raw(struct sftp_backend *s, const char *dir, struct buf *out)
{
	struct request rq = { .verb = "list", .name = dir, .dir = true, .out_buf = out };
	struct outcome o;
	int rc = run(s, &rq, &o);
	if (rc == 0)
		rc = buf_append(out, "", 1);
	return rc;
}

static int list_dir(struct sftp_backend *s, const char *dir, bool fanout, cairn_list_fn fn,
		    void *opaque)
{
	struct buf text = { 0 };
	int rc = list_raw(s, dir, &text);
	if (rc == -ENOENT) {
		buf_free(&text);
		return 0; /* like a local directory that was never made */
	}
	char *save = NULL;
	for (char *line = rc == 0 ? strtok_r((char *)text.p, "\r\n", &save) : NULL;
	     rc == 0 && line; line = strtok_r(NULL, "\r\n", &save)) {
		char type;
		uint64_t size;
		const char *name;
		if (!parse_entry(line, &type, &size, &name, NULL)) {
			rc = fail(s, -EIO, "list %s/%s/: cannot read the listing line '%.80s'",
				  s->base.location, dir, line);
			break;
		}
		if (name[0] == '.')
			continue;
		if (type == 'd') {
			if (fanout) {
				char sub[300];
				snprintf(sub, sizeof(sub), "%s/%s", dir, name);
				rc = list_dir(s, sub, false, fn, opaque);
			}
		} else if (type == '-')
			rc = fn(opaque, name, size);
	}
	buf_free(&text);
	return rc;
}

static int sftp_list(struct cairn_backend *b, const char *dir, cairn_list_fn fn, void *opaque)
{
	clear_error();
	return list_dir(to_sftp(b), dir, !strcmp(dir, "data"), fn, opaque);
}

static int sftp_remove(struct cairn_backend *b, const char *name)
{
	struct sftp_backend *s = to_sftp(b);
	clear_error();
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	struct outcome o;
	uint64_t size;
	int rc = quote_add(s, &q, "rm", name, NULL);
	if (rc < 0)
		return fail(s, rc, "out of memory");
	rc = run_quotes(s, "remove", q, &o);
	if (rc == 0 || o.e != CURLE_QUOTE_ERROR)
		return rc;
	/* the server's words for a failed rm are generic: look */
	clear_error();
	int st = sftp_stat_name(s, name, &size);
	if (st == -ENOENT)
		return -ENOENT;
	char where[600];
	object_where(s, name, where, sizeof(where));
	return fail(s, rc, "remove %s: %s", where, o.errbuf);
}

static void sftp_free(struct cairn_backend *b)
{
	struct sftp_backend *s = to_sftp(b);
	curl_pool_destroy(&s->pool);
	free(s->url_base);
	free(s->home_url);
	free(s->path_base);
	free(s->hostport);
	free(s->host);
	free(s->user);
	free(s->identity);
	free(s->public_key);
	free(s->known_hosts);
	free(b->location);
	free(s);
}

/* Removes the stale ".tmp-" uploads of one directory and, with depth > 0,
 * of its subdirectories. */
static int sweep_dir(struct cairn_backend *b, const char *dir, int depth, int64_t before_s,
		     size_t *removed)
{
	struct sftp_backend *s = to_sftp(b);
	struct buf text = { 0 };
	int rc = list_raw(s, dir, &text);
	if (rc == -ENOENT) {
		buf_free(&text);
		return 0;
	}
	char *save = NULL;
	for (char *line = rc == 0 ? strtok_r((char *)text.p, "\r\n", &save) : NULL;
	     rc == 0 && line; line = strtok_r(NULL, "\r\n", &save)) {
		char type, path[600];
		uint64_t size;
		int64_t mtime;
		const char *name;
		if (!parse_entry(line, &type, &size, &name, &mtime) ||
		    (name[0] == '.' && strncmp(name, ".tmp-", 5)))
			continue;
		if (snprintf(path, sizeof(path), "%s%s%s", strcmp(dir, ".") ? dir : "",
			     strcmp(dir, ".") ? "/" : "", name) >= (int)sizeof(path))
			continue;
		if (type == '-' && name[0] == '.' && mtime && mtime < before_s) {
			if ((rc = sftp_remove(b, path)) == 0 || rc == -ENOENT)
				rc = 0, (*removed)++;
		} else if (type == 'd' && depth > 0 && name[0] != '.') {
			rc = sweep_dir(b, path, depth - 1, before_s, removed);
		}
	}
	buf_free(&text);
	return rc;
}

/* A day more than asked: listing times are read as UTC (entry_time). */
static int sftp_sweep(struct cairn_backend *b, int64_t max_age_s, size_t *removed)
{
	clear_error();
	*removed = 0;
	return sweep_dir(b, ".", 2, (int64_t)time(NULL) - max_age_s - 86400, removed);
}

static const struct cairn_backend_ops sftp_ops = {
	.put = sftp_put,
	.get = sftp_get,
	.get_range = sftp_get_range,
	.stat = sftp_stat,
	.list = sftp_list,
	.remove = sftp_remove,
	.free = sftp_free,
	.error = sftp_error,
	.sweep = sftp_sweep,
};

static void sftp_backend_freep(struct sftp_backend **s)
{
	if (*s)
		sftp_free(&(*s)->base);
}

/* ---- opening ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static const char *home_dir(void)
{
	const char *h = env("HOME");
	if (h)
		return h;
	struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_dir : NULL;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	char *p = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : p;
}

/* The private key: the option, CAIRN_SFTP_IDENTITY, else the first of
 * ssh's usual ones that exists. Its ".pub" goes along when present
 * (libssh2 derives it otherwise). */
static int find_identity(struct sftp_backend *s, const struct cairn_backend_opts *o,
			 const char *location, char *err, size_t errlen)
{
	const char *given = o->identity_file ? o->identity_file : env("CAIRN_SFTP_IDENTITY");
	const char *home = home_dir();
	if (given) {
		if (access(given, R_OK) < 0)
			return set_err(err, errlen, -errno, "%s: cannot read the SSH key %s: %s",
				       location, given, strerror(errno));
		s->identity = strdup(given);
	} else {
		static const char *const names[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
		for (size_t i = 0; home && !s->identity && i < ARRAY_SIZE(names); i++) {
			_cleanup_free_ char *p = str_printf("%s/.ssh/%s", home, names[i]);
			if (!p)
				return -ENOMEM;
			if (access(p, R_OK) == 0)
				s->identity = TAKE_PTR(p);
		}
		if (!s->identity)
			return set_err(err, errlen, -ENOKEY,
				       "%s: no SSH key: none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa can be read; give one with --sftp-identity FILE or CAIRN_SFTP_IDENTITY",
				       location);
	}
	if (!s->identity)
		return -ENOMEM;
	_cleanup_free_ char *pub = str_printf("%s.pub", s->identity);
	if (!pub)
		return -ENOMEM;
	if (access(pub, R_OK) == 0)
		s->public_key = TAKE_PTR(pub);
	const char *kh = o->known_hosts_file ? o->known_hosts_file : env("CAIRN_SFTP_KNOWN_HOSTS");
	s->known_hosts = kh ? strdup(kh) : home ? str_printf("%s/.ssh/known_hosts", home) : NULL;
	if (!s->known_hosts)
		return set_err(err, errlen, -ENOENT,
			       "%s: no known_hosts file (no HOME): set CAIRN_SFTP_KNOWN_HOSTS", location);
	return 0;
}

static int login_name(const struct sftp_url *u, struct sftp_backend *s)
{
	if (u->user)
		s->user = strdup(u->user);
	else {
		struct passwd *pw = getpwuid(geteuid());
		s->user = strdup(pw ? pw->pw_name : "root");
	}
	return s->user ? 0 : -ENOMEM;
}

/* URL and quote-command forms of the repository directory. */
static int make_bases(struct sftp_backend *s, const struct sftp_url *u)
{
	bool v6 = strchr(u->host, ':') != NULL;
	bool absolute = u->path[0] == '/';
	s->hostport = v6 ? str_printf("[%s]:%u", u->host, u->port) : str_printf("%s:%u", u->host, u->port);
	s->host = strdup(u->host);
	s->port = u->port;
	const char *slash = !strcmp(u->path, "/") ? "" : "/";
	s->path_base = absolute ? str_printf("%s%s", u->path, slash) : str_printf("/~/%s/", u->path);
	s->home_url = str_printf("sftp://%s/~/", s->hostport);
	if (!s->hostport || !s->host || !s->path_base || !s->home_url)
		return -ENOMEM;
	struct buf b = { 0 };
	int rc = buf_append(&b, "sftp://", 7);
	if (rc == 0)
		rc = buf_append(&b, s->hostport, strlen(s->hostport));
	if (rc == 0)
		rc = url_encode(s->path_base, &b);
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	s->url_base = (char *)b.p;
	return 0;
}

static int env_retries(unsigned *out, char *err, size_t errlen)
{
	const char *v = env("CAIRN_SFTP_RETRIES");
	*out = DEFAULT_RETRIES;
	if (!v)
		return 0;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	if (*end || n > 100)
		return set_err(err, errlen, -EINVAL, "CAIRN_SFTP_RETRIES=%s: give 0..100", v);
	*out = (unsigned)n;
	return 0;
}

/* The first request logs in: its failure (host key, key, path) is the
 * message of the open, before anything is written. */
static int probe(struct sftp_backend *s, bool create, char *err, size_t errlen)
{
	uint64_t size;
	clear_error();
	int rc = sftp_stat_name(s, "config", &size);
	if (rc == 0 && create)
		return set_err(err, errlen, -EEXIST, "%s already holds a repository",
			       s->base.location);
	if (rc < 0 && rc != -ENOENT) {
		const char *why = sftp_error(&s->base, rc);
		return set_err(err, errlen, rc, "%s", why ? why : strerror(-rc));
	}
	return 0;
}

static const char *const top_dirs[] = { "data", "index", "snapshots", "keys", "locks" };

/* mkdir of every missing level of the repository directory and of the
 * top directories; "*": existing ones are fine. The listing that follows
 * proves the directory is there. */
static int make_dirs(struct sftp_backend *s, char *err, size_t errlen)
{
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	int rc = 0;
	/* path_base is "/a/b/" or "/~/a/b/": every prefix ending in '/' */
	size_t skip = !strncmp(s->path_base, "/~/", 3) ? 3 : 1;
	for (const char *p = s->path_base + skip; rc == 0 && (p = strchr(p, '/')); p++) {
		_cleanup_free_ char *line = str_printf("*mkdir %.*s", (int)(p - s->path_base),
						       s->path_base);
		struct curl_slist *nl = line ? curl_slist_append(q, line) : NULL;
		if (!nl)
			rc = -ENOMEM;
		else
			q = nl;
	}
	for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(top_dirs); i++)
		rc = quote_add(s, &q, "*mkdir", top_dirs[i], NULL);
	if (rc < 0)
		return set_err(err, errlen, rc, "out of memory");
	struct outcome o;
	clear_error();
	rc = run_quotes(s, "mkdir", q, &o);
	struct buf text = { 0 };
	if (rc == 0)
		rc = list_raw(s, "data", &text);
	buf_free(&text);
	if (rc == -ENOENT)
		return set_err(err, errlen, -ENOENT, "cannot create %s: %s (does the parent exist and may %s write there?)",
			       s->base.location, "the directory is still missing after mkdir", s->user);
	if (rc < 0) {
		const char *why = sftp_error(&s->base, rc);
		return set_err(err, errlen, rc, "cannot create %s: %s", s->base.location,
			       why ? why : strerror(-rc));
	}
	return 0;
}

int cairn_backend_sftp_open(const char *url, bool create, const struct cairn_backend_opts *o,
			    struct cairn_backend **out, char *err, size_t errlen)
{
	struct sftp_url u;
	int rc = sftp_url_parse(url, &u, err, errlen);
	if (rc < 0)
		return rc;
	pthread_once(&global_once, global_init);
	_cleanup_(sftp_backend_freep) struct sftp_backend *s = calloc(1, sizeof(*s));
	if (global_rc != CURLE_OK || !s) {
		sftp_url_free(&u);
		return set_err(err, errlen, -ENOMEM, "out of memory");
	}
	rc = curl_pool_init(&s->pool, o->connections, o->limit_upload, o->limit_download);
	s->base.ops = &sftp_ops;
	s->base.replace_gap = true;
	s->base.connections = s->pool.max;
	s->base.location = strdup(url);
	rc = rc == 0 && s->base.location ? 0 : -ENOMEM;
	if (rc == 0)
		rc = login_name(&u, s);
	if (rc == 0)
		rc = make_bases(s, &u);
	sftp_url_free(&u);
	if (rc < 0)
		return set_err(err, errlen, rc, "out of memory");
	if ((rc = env_retries(&s->retries, err, errlen)) < 0 ||
	    (rc = find_identity(s, o, url, err, errlen)) < 0 || (rc = probe(s, create, err, errlen)) < 0)
		return rc;
	if (create && (rc = make_dirs(s, err, errlen)) < 0)
		return rc;
	*out = &TAKE_PTR(s)->base;
	return 0;
}
