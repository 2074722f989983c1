/* SFTP backend: the repository's objects under a directory of an SSH
 * server, with the same names as in a local directory (docs/design.md
 * section 1), through libcurl's SFTP (libssh2).
 *
 * A pool of at most `connections` curl easy handles: each keeps its SSH
 * session open between operations (a login costs several round trips and
 * a key exchange), and a thread takes one handle per operation. Requests
 * and their retries go through the request core (curl_req.h); a ranged
 * read is one request, pipelined by libssh2 (read_buffer()). Only key
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
#include <pwd.h>
#include <stdio.h>
#include <time.h>

#include "repo/backend.h"
#include "curl_req.h"
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
	struct curl_retry retry;
	struct curl_pool pool; /* connections (SSH sessions) and rate limits */
};

static struct sftp_backend *to_sftp(struct cairn_backend *b)
{
	return (struct sftp_backend *)b;
}

static const char *sftp_error(struct cairn_backend *b, int rc)
{
	return curl_req_error(to_sftp(b), rc);
}

/* ---- one request ---- */

struct request {
	const char *verb; /* for messages */
	const char *name; /* below the repository; NULL: none (quote only) */
	bool dir; /* a directory listing of name */
	bool nobody; /* stat, or quote commands only */
	bool create_dirs;
	struct curl_slist *quote, *postquote;
	struct curl_io io; /* an upload, a range, where a download goes */
};

struct hostkey {
	enum curl_khmatch match;
	enum curl_khtype type;
	char fingerprint[64]; /* "SHA256:..." as ssh prints it */
	bool seen;
};

/* One attempt as SFTP sees it. */
struct attempt {
	struct sftp_backend *s;
	const struct request *rq;
	const char *url;
	struct hostkey hk;
	struct curl_xfer x;
};

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
	struct hostkey *hk = opaque;
	hk->seen = true;
	hk->match = match;
	hk->type = found->keytype;
	if (found->len)
		fingerprint(found->key, found->len, hk->fingerprint, sizeof(hk->fingerprint));
	else
		snprintf(hk->fingerprint, sizeof(hk->fingerprint), "(no fingerprint)");
	return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
}

/* base + encoded name [+ '/'], NUL-terminated. */
static char *request_url(const struct sftp_backend *s, const struct request *rq)
{
	struct buf b = { 0 };
	const char *base = rq->name ? s->url_base : s->home_url;
	int rc = buf_append(&b, base, strlen(base));
	if (rc == 0 && rq->name)
		rc = curl_req_url_encode(rq->name, true, &b);
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

/* libssh2 (1.10) keeps four of curl's buffers of reads in flight and
 * asks for up to three buffers past the end of a range (the answers are
 * dropped): a buffer of a sixteenth of a range reads it in about four
 * round trips and wastes under a fifth of it. A whole file ends where the
 * reads do: the largest buffer. Measured through a 25 ms (one way) delay:
 * an 8 MiB range took 0.45 s, 8.2 s with curl's 16 KiB default. */
#define READ_BUFFER_MIN 16384L
#define READ_BUFFER_MAX (512L * 1024)

static long read_buffer(const struct curl_io *io)
{
	long b = io->has_range ? (long)MIN(io->range_len / 16, (size_t)READ_BUFFER_MAX)
			       : READ_BUFFER_MAX;
	return MAX(b, READ_BUFFER_MIN);
}

/* What the core leaves to SFTP: the login, the host key, quote commands. */
static CURLcode sftp_options(CURL *h, void *opaque)
{
	struct attempt *a = opaque;
	const struct sftp_backend *s = a->s;
	const struct request *rq = a->rq;
	CURLcode e = CURLE_OK;
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_USERNAME, s->user);
	SET(CURLOPT_SSH_AUTH_TYPES, (long)CURLSSH_AUTH_PUBLICKEY);
	SET(CURLOPT_SSH_PRIVATE_KEYFILE, s->identity);
	if (s->public_key)
		SET(CURLOPT_SSH_PUBLIC_KEYFILE, s->public_key);
	SET(CURLOPT_SSH_KNOWNHOSTS, s->known_hosts);
	SET(CURLOPT_SSH_KEYFUNCTION, on_hostkey);
	SET(CURLOPT_SSH_KEYDATA, &a->hk);
	if (rq->quote)
		SET(CURLOPT_QUOTE, rq->quote);
	if (rq->postquote)
		SET(CURLOPT_POSTQUOTE, rq->postquote);
	if (rq->create_dirs)
		SET(CURLOPT_FTP_CREATE_MISSING_DIRS, (long)CURLFTP_CREATE_DIR);
	if (!rq->io.body && !rq->nobody)
		SET(CURLOPT_BUFFERSIZE, read_buffer(&rq->io));
#undef SET
	return e;
}

/* A ranged read that came whole: curl gave the range's length as the
 * download's size, which it does only once it has stat'ed the file and
 * seeked to the range (a server that gives no size would be read from its
 * first byte). */
static bool range_read(const struct curl_xfer *x)
{
	const struct curl_io *io = x->rq->io;
	return !io->has_range || x->length == (curl_off_t)io->range_len;
}

static int attempt(void *opaque)
{
	struct attempt *a = opaque;
	const struct request *rq = a->rq;
	struct curl_req cr = { .protocols = "sftp", .nobody = rq->nobody, .upload = true,
			       .io = &rq->io, .options = sftp_options, .opaque = a };
	a->hk = (struct hostkey){ 0 };
	int rc = curl_xfer_run(&a->s->pool, &cr, a->url, &a->x);
	int verdict = rc < 0 ? rc : (int)curl_xfer_verdict(&a->x);
	if (verdict == CURL_DONE && !range_read(&a->x))
		verdict = CURL_FAIL;
	a->x.rq = NULL; /* cr ends here */
	curl_xfer_free(&a->x);
	return verdict;
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
		return curl_req_fail(s, -EACCES,
			    "%s: refused: the host key of %s does not match %s (it now offers %s key %s); if the server's key was really changed, remove the old entry (%s) and add the new one (%s, or ssh to it once)",
			    where, s->hostport, s->known_hosts, key_type_name(hk->type),
			    hk->fingerprint, forget, scan);
	return curl_req_fail(s, -EACCES,
		    "%s: refused: host %s is not in %s (it offers %s key %s); check that fingerprint, then add the key (%s, or ssh to it once)",
		    where, s->hostport, s->known_hosts, key_type_name(hk->type), hk->fingerprint,
		    scan);
}

static int describe(const struct sftp_backend *s, const struct attempt *a, const char *where,
		    unsigned tries)
{
	const struct request *rq = a->rq;
	const struct curl_xfer *o = &a->x;
	char after[48] = "";
	if (tries > 1)
		snprintf(after, sizeof(after), " (%u attempts)", tries);
	if (o->e == CURLE_PEER_FAILED_VERIFICATION && a->hk.seen && a->hk.match != CURLKHMATCH_OK)
		return hostkey_fail(s, where, &a->hk);
	if (o->e == CURLE_LOGIN_DENIED)
		return curl_req_fail(s, -EACCES,
			    "%s: the server refused the key %s for user %s (is %s.pub in its authorized_keys? a passphrase-protected key is not supported)",
			    where, s->identity, s->user, s->identity);
	if (o->overflow)
		return curl_req_fail(s, -EREMOTEIO, "%s %s: the server sent more than asked for", rq->verb, where);
	if (o->e == CURLE_OK && o->received != rq->io.range_len)
		return curl_req_fail(s, -EIO, "%s %s: short object (%zu of %zu bytes at %llu)", rq->verb,
				     where, o->received, rq->io.range_len,
				     (unsigned long long)rq->io.range_off);
	if (o->e == CURLE_OK)
		return curl_req_fail(s, -EREMOTEIO,
				     "%s %s: the server did not give the file's size, so the range %llu+%zu cannot be read",
				     rq->verb, where, (unsigned long long)rq->io.range_off, rq->io.range_len);
	return curl_req_fail(s, curl_req_errno(o->e), "%s %s: %s%s", rq->verb, where,
		    *o->errbuf ? o->errbuf : curl_easy_strerror(o->e), after);
}

static void object_where(const struct sftp_backend *s, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", s->base.location, name ? "/" : "", name ? name : "");
}

/* Performs rq, retrying dropped connections with backoff; *o is what
 * came of the last attempt. 0; -ENOENT with no reason kept when the
 * object or directory does not exist (an ordinary answer); else a
 * negative errno (curl_req.h) with the reason kept. */
static int run(struct sftp_backend *s, const struct request *rq, struct curl_xfer *o)
{
	_cleanup_free_ char *url = request_url(s, rq);
	if (!url)
		return curl_req_fail(s, -ENOMEM, "%s: out of memory", rq->verb);
	/* messages name the object in the repository URL's own words */
	char where[600];
	object_where(s, rq->name, where, sizeof(where));
	char what[620];
	snprintf(what, sizeof(what), "%s %s", rq->verb, where);
	struct attempt a = { .s = s, .rq = rq, .url = url };
	unsigned tries;
	int verdict = curl_req_retry(s, what, &s->retry, attempt, &a, &tries);
	*o = a.x;
	if (verdict <= 0) /* CURL_DONE, or it could not be set up */
		return verdict;
	if (a.x.e == CURLE_REMOTE_FILE_NOT_FOUND)
		return -ENOENT;
	return describe(s, &a, where, tries);
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
		      struct curl_xfer *o)
{
	struct request rq = { .verb = verb, .nobody = true, .quote = quote };
	return run(s, &rq, o);
}

/* ---- operations ---- */

static int sftp_stat_name(struct sftp_backend *s, const char *name, uint64_t *size)
{
	struct request rq = { .verb = "stat", .name = name, .nobody = true };
	struct curl_xfer o;
	int rc = run(s, &rq, &o);
	if (rc == 0)
		*size = o.length > 0 ? (uint64_t)o.length : 0;
	return rc;
}

static int sftp_stat(struct cairn_backend *b, const char *name, uint64_t *size)
{
	curl_req_clear_error();
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
	struct curl_xfer o;
	uint64_t size;
	int rc;
	curl_req_clear_error();
	if (content_addressed(name) && sftp_stat_name(s, name, &size) == 0) {
		/* a leftover temporary file is harmless: readers skip it */
		if (quote_add(s, &q, "*rm", tmp, NULL) == 0)
			run_quotes(s, "remove", q, &o);
		curl_req_clear_error();
		return 0;
	}
	curl_req_clear_error();
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
		rc = curl_req_fail(s, -EIO, "rename %s/%s: %s", s->base.location, tmp, o.errbuf);
	curl_slist_free_all(q);
	q = NULL;
	if (quote_add(s, &q, "*rm", tmp, NULL) == 0) {
		struct curl_xfer ignored;
		run_quotes(s, "remove", q, &ignored);
	}
	return rc;
}

static int sftp_put(struct cairn_backend *b, const char *name, const void *data, size_t len)
{
	struct sftp_backend *s = to_sftp(b);
	curl_req_clear_error();
	uint8_t rnd[8];
	char rhex[17], tmp[300];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return curl_req_fail(s, -EIO, "no randomness for a temporary name");
	hex_encode(rnd, sizeof(rnd), rhex);
	const char *slash = strrchr(name, '/');
	int dn = slash ? (int)(slash - name + 1) : 0;
	if (snprintf(tmp, sizeof(tmp), "%.*s.tmp-%s", dn, name, rhex) >= (int)sizeof(tmp))
		return curl_req_fail(s, -ENAMETOOLONG, "%s: name too long", name);
	_cleanup_(slist_freep) struct curl_slist *post = NULL;
	int rc = quote_add(s, &post, "rename", tmp, name);
	if (rc < 0)
		return curl_req_fail(s, rc, "out of memory");
	struct request rq = { .verb = "upload", .name = tmp, .io.body = data ? data : "",
			      .io.body_len = len, .create_dirs = true, .postquote = post };
	struct curl_xfer o;
	rc = run(s, &rq, &o);
	if (rc == 0)
		return 0;
	if (o.e == CURLE_QUOTE_ERROR)
		return put_existing(s, name, tmp);
	if (rc == -ENOENT) { /* a directory that could not be made */
		char where[600];
		object_where(s, tmp, where, sizeof(where));
		rc = curl_req_fail(s, -EIO, "upload %s: %s", where, *o.errbuf ? o.errbuf : "no such directory");
	}
	/* a half-written temporary file is ignored by readers; try to drop it */
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	if (quote_add(s, &q, "*rm", tmp, NULL) == 0) {
		struct curl_xfer ignored; /* the upload's failure stays the reported one */
		run_quotes(s, "remove", q, &ignored);
	}
	return rc;
}

/* A download of name (the whole file or a range, as io says). */
static int sftp_download(struct cairn_backend *b, const char *name, struct curl_io io)
{
	struct request rq = { .verb = "download", .name = name, .io = io };
	struct curl_xfer o;
	return run(to_sftp(b), &rq, &o);
}

static int sftp_get(struct cairn_backend *b, const char *name, struct buf *out)
{
	curl_req_clear_error();
	return curl_io_whole_done(sftp_download(b, name, curl_io_whole(out)), out);
}

static int sftp_get_range(struct cairn_backend *b, const char *name, uint64_t off, size_t len,
			  void *out)
{
	curl_req_clear_error();
	return len ? sftp_download(b, name, curl_io_range(off, len, out)) : 0;
}

/* The modification time of an ls -l line, from its MONTH DAY TIME|YEAR
 * fields (sftp-server's strftime "%b %e %H:%M", or "%b %e  %Y" past six
 * months), read as UTC: the server's time zone is unknown, so callers
 * allow a day of slack. A TIME without a year is in the last twelve
 * months. 0 when the fields do not parse. */
int64_t sftp_entry_time(const char *mon, const char *day, const char *t, int64_t now)
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
 * NULL) from sftp_entry_time(). */
bool sftp_parse_entry(char *line, char *type, uint64_t *size, const char **name,
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
		*mtime = sftp_entry_time(f[5], f[6], f[7], (int64_t)time(NULL));
	return true;
}

static int list_raw(struct sftp_backend *s, const char *dir, struct buf *out)
{
	struct request rq = { .verb = "list", .name = dir, .dir = true, .io.out_buf = out };
	struct curl_xfer o;
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
		if (!sftp_parse_entry(line, &type, &size, &name, NULL)) {
			rc = curl_req_fail(s, -EIO, "list %s/%s/: cannot read the listing line '%.80s'",
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
	curl_req_clear_error();
	return list_dir(to_sftp(b), dir, !strcmp(dir, "data"), fn, opaque);
}

static int sftp_remove(struct cairn_backend *b, const char *name)
{
	struct sftp_backend *s = to_sftp(b);
	curl_req_clear_error();
	_cleanup_(slist_freep) struct curl_slist *q = NULL;
	struct curl_xfer o;
	uint64_t size;
	int rc = quote_add(s, &q, "rm", name, NULL);
	if (rc < 0)
		return curl_req_fail(s, rc, "out of memory");
	rc = run_quotes(s, "remove", q, &o);
	if (rc == 0 || o.e != CURLE_QUOTE_ERROR)
		return rc;
	/* the server's words for a failed rm are generic: look */
	curl_req_clear_error();
	int st = sftp_stat_name(s, name, &size);
	if (st == -ENOENT)
		return -ENOENT;
	char where[600];
	object_where(s, name, where, sizeof(where));
	return curl_req_fail(s, rc, "remove %s: %s", where, o.errbuf);
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
		if (!sftp_parse_entry(line, &type, &size, &name, &mtime) ||
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

/* A day more than asked: listing times are read as UTC (sftp_entry_time). */
static int sftp_sweep(struct cairn_backend *b, int64_t max_age_s, size_t *removed)
{
	curl_req_clear_error();
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
			_cleanup_free_ char *p = curl_req_printf("%s/.ssh/%s", home, names[i]);
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
	_cleanup_free_ char *pub = curl_req_printf("%s.pub", s->identity);
	if (!pub)
		return -ENOMEM;
	if (access(pub, R_OK) == 0)
		s->public_key = TAKE_PTR(pub);
	const char *kh = o->known_hosts_file ? o->known_hosts_file : env("CAIRN_SFTP_KNOWN_HOSTS");
	s->known_hosts = kh ? strdup(kh) : home ? curl_req_printf("%s/.ssh/known_hosts", home) : NULL;
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
	s->hostport = v6 ? curl_req_printf("[%s]:%u", u->host, u->port) : curl_req_printf("%s:%u", u->host, u->port);
	s->host = strdup(u->host);
	s->port = u->port;
	const char *slash = !strcmp(u->path, "/") ? "" : "/";
	s->path_base = absolute ? curl_req_printf("%s%s", u->path, slash) : curl_req_printf("/~/%s/", u->path);
	s->home_url = curl_req_printf("sftp://%s/~/", s->hostport);
	if (!s->hostport || !s->host || !s->path_base || !s->home_url)
		return -ENOMEM;
	struct buf b = { 0 };
	int rc = buf_append(&b, "sftp://", 7);
	if (rc == 0)
		rc = buf_append(&b, s->hostport, strlen(s->hostport));
	if (rc == 0)
		rc = curl_req_url_encode(s->path_base, true, &b);
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
	curl_req_clear_error();
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
		_cleanup_free_ char *line = curl_req_printf("*mkdir %.*s", (int)(p - s->path_base),
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
	struct curl_xfer o;
	curl_req_clear_error();
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
	_cleanup_(sftp_backend_freep) struct sftp_backend *s = calloc(1, sizeof(*s));
	if (curl_req_global_init() < 0 || !s) {
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
	s->retry = (struct curl_retry){ 0, BACKOFF_FIRST_MS, BACKOFF_MAX_MS };
	if ((rc = env_retries(&s->retry.retries, err, errlen)) < 0 ||
	    (rc = find_identity(s, o, url, err, errlen)) < 0 || (rc = probe(s, create, err, errlen)) < 0)
		return rc;
	if (create && (rc = make_dirs(s, err, errlen)) < 0)
		return rc;
	*out = &TAKE_PTR(s)->base;
	return 0;
}
