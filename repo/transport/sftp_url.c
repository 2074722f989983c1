/* SFTP repository URLs (sftp.h): a pure function of the string, so every
 * malformed form is refused here, before any connection is tried. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sftp.h"
#include "base/util.h"

#define FORMS                                                                  \
	"sftp:[USER@]HOST:/ABSOLUTE/PATH, sftp:[USER@]HOST:RELATIVE/PATH or "  \
	"sftp://[USER@]HOST[:PORT]//ABSOLUTE/PATH"

void sftp_url_free(struct sftp_url *u)
{
	free(u->user);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof(*u));
}

static bool user_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '$';
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '.';
}

/* Characters a quote command or a log line would misread. */
static bool bad_path_char(char c)
{
	return (unsigned char)c < 0x20 || c == 0x7f || c == ' ' || c == '"' || c == '\'' ||
	       c == '\\';
}

/* The URL as a message may show it: a password before '@' becomes ***. */
static void shown(const char *url, char *out, size_t len)
{
	const char *auth = url + 5 + (strncmp(url + 5, "//", 2) ? 0 : 2);
	size_t an = strcspn(auth, "/");
	const char *at = memchr(auth, '@', an);
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (strncmp(url, "sftp:", 5) || !colon)
		snprintf(out, len, "%s", url);
	else
		snprintf(out, len, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

static int fail(char *err, size_t errlen, const char *url, const char *why)
{
	char safe[512];
	shown(url, safe, sizeof(safe));
	return set_err(err, errlen, -EINVAL, "%s: %s (write %s)", safe, why, FORMS);
}

/* [USER@] at s; *end is past the '@' (or s when there is no user). */
static int parse_user(const char *url, const char *s, size_t n, struct sftp_url *u,
		      const char **end, char *err, size_t errlen)
{
	const char *at = memchr(s, '@', n);
	*end = s;
	if (!at)
		return 0;
	if (memchr(s, ':', (size_t)(at - s)))
		return fail(err, errlen, url,
			    "a password in the URL is not accepted (cairn logs in with a key)");
	if (at == s)
		return fail(err, errlen, url, "the user name before '@' is empty");
	for (const char *p = s; p < at; p++)
		if (!user_char(*p))
			return fail(err, errlen, url, "the user name has a character that is not allowed");
	if (!(u->user = strndup(s, (size_t)(at - s))))
		return -ENOMEM;
	*end = at + 1;
	return 0;
}

/* HOST or [V6] at s, up to n bytes; *end is past it. */
static int parse_host(const char *url, const char *s, size_t n, struct sftp_url *u,
		      const char **end, char *err, size_t errlen)
{
	const char *p = s, *stop = s + n;
	if (p < stop && *p == '[') {
		const char *close = memchr(p, ']', (size_t)(stop - p));
		if (!close || close == p + 1)
			return fail(err, errlen, url, "an IPv6 address needs its closing ']'");
		for (const char *q = p + 1; q < close; q++)
			if (!v6_char(*q))
				return fail(err, errlen, url, "not an IPv6 address between '[' and ']'");
		u->host = strndup(p + 1, (size_t)(close - p - 1));
		*end = close + 1;
	} else {
		while (p < stop && host_char(*p))
			p++;
		if (p == s)
			return fail(err, errlen, url, "no host name");
		if (p < stop && *p != ':' && *p != '/')
			return fail(err, errlen, url, "the host name has a character that is not allowed");
		u->host = strndup(s, (size_t)(p - s));
		*end = p;
	}
	return u->host ? 0 : -ENOMEM;
}

/* Copies p, collapsing repeated '/' and dropping trailing ones; refuses
 * empty, '.' and '..' parts and characters a quote command would split. */
static int parse_path(const char *url, const char *p, struct sftp_url *u, char *err,
		      size_t errlen)
{
	if (!*p)
		return fail(err, errlen, url, "no directory");
	bool absolute = *p == '/';
	struct buf b = { 0 };
	int rc = absolute ? buf_append(&b, "/", 1) : 0;
	while (rc == 0 && *p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			buf_free(&b);
			return fail(err, errlen, url, "the path has a '.' or '..' part");
		}
		for (size_t i = 0; i < n; i++)
			if (bad_path_char(p[i])) {
				buf_free(&b);
				return fail(err, errlen, url,
					    "the path has whitespace, a quote, a backslash or a control character");
			}
		if (b.len > (size_t)absolute)
			rc = buf_append(&b, "/", 1);
		if (rc == 0)
			rc = buf_append(&b, p, n);
		p += n;
	}
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	u->path = (char *)b.p;
	return 0;
}

static int parse_port(const char *url, const char *s, size_t n, unsigned *port, char *err,
		      size_t errlen)
{
	unsigned long v = 0;
	if (!n || n > 5)
		return fail(err, errlen, url, "the port is not a number from 1 to 65535");
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return fail(err, errlen, url, "the port is not a number from 1 to 65535");
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return fail(err, errlen, url, "the port is not a number from 1 to 65535");
	*port = (unsigned)v;
	return 0;
}

/* sftp://[USER@]HOST[:PORT]/PATH: one '/' ends the authority; what follows
 * is relative unless it starts with another '/' (restic's rule). */
static int parse_url_form(const char *url, const char *s, struct sftp_url *u, char *err,
			  size_t errlen)
{
	size_t an = strcspn(s, "/");
	const char *p, *auth_end = s + an;
	int rc = parse_user(url, s, an, u, &p, err, errlen);
	if (rc == 0)
		rc = parse_host(url, p, (size_t)(auth_end - p), u, &p, err, errlen);
	if (rc < 0)
		return rc;
	if (p < auth_end && *p == ':')
		rc = parse_port(url, p + 1, (size_t)(auth_end - p - 1), &u->port, err, errlen);
	else if (p != auth_end)
		rc = fail(err, errlen, url, "unexpected text after the host name");
	if (rc < 0)
		return rc;
	if (!*auth_end || !auth_end[1])
		return fail(err, errlen, url, "no directory");
	return parse_path(url, auth_end + 1, u, err, errlen);
}

/* sftp:[USER@]HOST:PATH (scp-like; no port). */
static int parse_scp_form(const char *url, const char *s, struct sftp_url *u, char *err,
			  size_t errlen)
{
	size_t n = strlen(s);
	const char *p;
	int rc = parse_user(url, s, strcspn(s, "/"), u, &p, err, errlen);
	if (rc == 0)
		rc = parse_host(url, p, n - (size_t)(p - s), u, &p, err, errlen);
	if (rc < 0)
		return rc;
	if (*p != ':')
		return fail(err, errlen, url, "no ':' between the host and the path");
	return parse_path(url, p + 1, u, err, errlen);
}

int sftp_url_parse(const char *url, struct sftp_url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	u->port = 22;
	if (strncmp(url, "sftp:", 5))
		return fail(err, errlen, url, "not an SFTP URL");
	const char *s = url + 5;
	int rc = !strncmp(s, "//", 2) ? parse_url_form(url, s + 2, u, err, errlen)
				      : parse_scp_form(url, s, u, err, errlen);
	if (rc < 0) {
		sftp_url_free(u);
		if (rc == -ENOMEM)
			set_err(err, errlen, rc, "out of memory");
	}
	return rc;
}
