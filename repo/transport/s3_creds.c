/* S3 credentials: where they come from, in AWS's order, with the
 * repository's own file first (it was configured for this repository
 * alone). The secret is copied into memory that s3_creds_free() wipes. */
#include <errno.h>
#include <ini.h>
#include <stdio.h>

#include "s3.h"

static void free_secret(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void s3_creds_free(struct s3_creds *c)
{
	free(c->access_key);
	free_secret(&c->secret_key);
	free_secret(&c->session_token);
	free(c->region);
	c->access_key = c->region = NULL;
}

struct ini_ctx {
	const char *profile;
	struct s3_creds *c;
	bool oom;
};

static int set_field(char **field, const char *value, bool secret, struct ini_ctx *x)
{
	if (secret)
		free_secret(field);
	else
		free(*field);
	*field = strdup(value);
	x->oom |= !*field;
	return 1;
}

/* inih calls this per key; keys outside any section count as the profile's
 * (a plain key = value file is the simplest repository credentials file). */
static int on_key(void *opaque, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = opaque;
	if (*section && strcmp(section, x->profile))
		return 1;
	if (!strcmp(name, "aws_access_key_id"))
		return set_field(&x->c->access_key, value, false, x);
	if (!strcmp(name, "aws_secret_access_key"))
		return set_field(&x->c->secret_key, value, true, x);
	if (!strcmp(name, "aws_session_token"))
		return set_field(&x->c->session_token, value, true, x);
	if (!strcmp(name, "region"))
		return set_field(&x->c->region, value, false, x);
	return 1;
}

/* 1 when the file gave a key pair, 0 when it has none (or does not exist
 * and need not), else a negative errno with err set. */
static int from_file(const char *path, bool must_exist, const char *profile,
		     struct s3_creds *c, char *err, size_t errlen)
{
	struct ini_ctx x = { .profile = profile, .c = c };
	int line = ini_parse(path, on_key, &x);
	if (line == -1) {
		if (!must_exist && errno == ENOENT)
			return 0;
		return set_err(err, errlen, -errno ? -errno : -EIO,
			       "cannot read S3 credentials file %s: %s", path, strerror(errno));
	}
	if (x.oom)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	if (line > 0)
		return set_err(err, errlen, -EINVAL, "S3 credentials file %s: line %d is not key = value",
			       path, line);
	if (!c->access_key || !c->secret_key) {
		s3_creds_free(c);
		if (!must_exist)
			return 0;
		return set_err(err, errlen, -ENOKEY,
			       "S3 credentials file %s has no aws_access_key_id and aws_secret_access_key%s%s",
			       path, strcmp(profile, "default") ? " in profile " : "",
			       strcmp(profile, "default") ? profile : "");
	}
	snprintf(c->source, sizeof(c->source), "%s [%s]", path, profile);
	return 1;
}

static int from_env(struct s3_creds *c)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");
	if (!ak || !*ak || !sk || !*sk)
		return 0;
	c->access_key = strdup(ak);
	c->secret_key = strdup(sk);
	c->session_token = tok && *tok ? strdup(tok) : NULL;
	if (!c->access_key || !c->secret_key || (tok && *tok && !c->session_token)) {
		s3_creds_free(c);
		return -ENOMEM;
	}
	snprintf(c->source, sizeof(c->source), "AWS_ACCESS_KEY_ID");
	return 1;
}

int s3_creds_load(const char *file, struct s3_creds *c, char *err, size_t errlen)
{
	const char *profile = getenv("AWS_PROFILE");
	if (!profile || !*profile)
		profile = "default";
	memset(c, 0, sizeof(*c));
	int rc = file ? from_file(file, true, profile, c, err, errlen) : 0;
	if (rc == 0)
		rc = from_env(c);
	if (rc == 0) {
		const char *shared = getenv("AWS_SHARED_CREDENTIALS_FILE");
		const char *home = getenv("HOME");
		char path[4096];
		if (shared && *shared)
			snprintf(path, sizeof(path), "%s", shared);
		else
			snprintf(path, sizeof(path), "%s/.aws/credentials", home ? home : "");
		rc = from_file(path, shared && *shared, profile, c, err, errlen);
	}
	if (rc == 0)
		return set_err(err, errlen, -ENOKEY,
			       "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials");
	if (rc == -ENOMEM)
		return set_err(err, errlen, rc, "out of memory");
	return rc < 0 ? rc : 0;
}
