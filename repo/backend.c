/* Repository URLs (restic's convention) to backends:
 *
 *   /path, path                          a local directory
 *   s3:https://HOST[:PORT]/BUCKET[/PREFIX]   S3-compatible object storage
 *   s3:http://HOST[:PORT]/BUCKET[/PREFIX]    (a gateway on a trusted network)
 *   sftp:[USER@]HOST:/ABS/PATH  sftp:[USER@]HOST:REL/PATH   an SSH server
 *   sftp://[USER@]HOST[:PORT]//ABS/PATH  (REL/PATH after one '/': relative
 *                                        to the login directory) */
#include <errno.h>
#include <stdio.h>

#include "backend.h"
#include "transport/s3.h"

void s3_url_free(struct s3_url *u)
{
	free(u->scheme);
	free(u->hostport);
	free(u->bucket);
	free(u->prefix);
	memset(u, 0, sizeof(*u));
}

/* Prefix components that would name something else than they seem. */
static bool bad_component(const char *s, size_t n)
{
	return n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

static int parse_prefix(const char *p, char **out)
{
	struct buf b = { 0 };
	int rc = 0;
	while (*p == '/')
		p++;
	while (rc == 0 && *p) {
		size_t n = strcspn(p, "/");
		if (bad_component(p, n)) {
			if (n == 0 && !p[strspn(p, "/")])
				break; /* trailing slashes */
			rc = -EINVAL;
			break;
		}
		rc = buf_append(&b, p, n);
		if (rc == 0)
			rc = buf_append(&b, "/", 1);
		p += n;
		if (*p == '/')
			p++;
	}
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	*out = (char *)b.p;
	return 0;
}

static int parse_s3(const char *url, struct s3_url *u, char *err, size_t errlen)
{
	const char *p = url + 3, *scheme = "https";
	if (!strncmp(p, "//", 2))
		return set_err(err, errlen, -EINVAL,
			       "%s: write S3 repositories as s3:https://HOST[:PORT]/BUCKET[/PREFIX]",
			       url);
	if (!strncmp(p, "https://", 8))
		p += 8;
	else if (!strncmp(p, "http://", 7)) {
		scheme = "http";
		p += 7;
	}
	size_t hn = strcspn(p, "/");
	const char *b = p + hn + (p[hn] == '/');
	size_t bn = strcspn(b, "/");
	if (!hn || !bn || strpbrk(p, " \t\r\n?#@"))
		return set_err(err, errlen, -EINVAL,
			       "%s: not an S3 repository URL (s3:https://HOST[:PORT]/BUCKET[/PREFIX])",
			       url);
	u->scheme = strdup(scheme);
	u->hostport = strndup(p, hn);
	u->bucket = strndup(b, bn);
	int rc = u->scheme && u->hostport && u->bucket ? 0 : -ENOMEM;
	if (rc == 0)
		rc = parse_prefix(b + bn, &u->prefix);
	if (rc == -EINVAL)
		return set_err(err, errlen, rc, "%s: the prefix has an empty, '.' or '..' part",
			       url);
	return rc;
}

int cairn_backend_open(const char *url, bool create, const struct cairn_backend_opts *o,
		       struct cairn_backend **out, char *err, size_t errlen)
{
	static const struct cairn_backend_opts defaults = { 0 };
	if (!o)
		o = &defaults;
	if (!strncmp(url, "sftp:", 5))
		return cairn_backend_sftp_open(url, create, o, out, err, errlen);
	if (strncmp(url, "s3:", 3))
		return cairn_backend_local_open(url, create, out, err, errlen);
	struct s3_url u = { 0 };
	int rc = parse_s3(url, &u, err, errlen);
	if (rc == 0)
		rc = cairn_backend_s3_open(url, &u, create, o, out, err, errlen);
	else if (rc == -ENOMEM)
		set_err(err, errlen, rc, "out of memory");
	s3_url_free(&u);
	return rc;
}
