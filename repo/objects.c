/* Objects named by the SHA-256 of their bytes, listings, error plumbing. */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

int repo_err(struct cairn_repo *r, int rc, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&r->lock);
	va_start(ap, fmt);
	int n = vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	/* a remote backend knows more than the errno: which URL, what status */
	const char *why = cairn_backend_error(r->be, rc);
	if (why && n >= 0 && (size_t)n < sizeof(r->err))
		snprintf(r->err + n, sizeof(r->err) - (size_t)n, " (%s)", why);
	one_line(r->err);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int repo_warn(struct cairn_repo *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	one_line(line);
	pthread_mutex_lock(&r->lock);
	/* the same damage met twice (a listing per command step) is said once */
	for (size_t i = 0; i < r->nwarnings; i++)
		if (!strcmp(r->warnings[i], line)) {
			pthread_mutex_unlock(&r->lock);
			return 0;
		}
	char **v = realloc(r->warnings, (r->nwarnings + 1) * sizeof(*v));
	if (v) {
		r->warnings = v;
		if ((v[r->nwarnings] = strdup(line)))
			r->nwarnings++;
	}
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int put_hashed(struct cairn_repo *r, const char *dir, const struct buf *data,
	       cairn_id *id)
{
	char hex[65], name[128];
	sha256(data->p, data->len, id->b);
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	if (!strcmp(dir, "data"))
		snprintf(name, sizeof(name), "data/%.2s/%s", hex, hex);
	else
		snprintf(name, sizeof(name), "%s/%s", dir, hex);
	int rc = r->be->ops->put(r->be, name, data->p, data->len);
	if (rc < 0)
		return repo_err(r, rc, "cannot write %s in %s: %s", name,
				r->be->location, strerror(-rc));
	return 0;
}

int get_hashed(struct cairn_repo *r, const char *dir, const char *hexid,
	       struct buf *out)
{
	char name[128];
	cairn_id want, got;
	if (hex_decode(hexid, want.b, CAIRN_ID_LEN) < 0)
		return -EBADMSG;
	if (!strcmp(dir, "data"))
		snprintf(name, sizeof(name), "data/%.2s/%s", hexid, hexid);
	else
		snprintf(name, sizeof(name), "%s/%s", dir, hexid);
	int rc = r->be->ops->get(r->be, name, out);
	if (rc < 0)
		return rc;
	sha256(out->p, out->len, got.b);
	return memcmp(&got, &want, sizeof(got)) ? -EBADMSG : 0;
}

int collect_name(void *opaque, const char *name, uint64_t size)
{
	(void)size;
	struct name_list *l = opaque;
	if (array_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
		return -ENOMEM;
	if (!(l->v[l->n] = strdup(name)))
		return -ENOMEM;
	l->n++;
	return 0;
}

void name_list_free(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

size_t name_list_match(const struct name_list *l, const char *prefix,
		       const char **match)
{
	size_t matches = 0;
	*match = NULL;
	for (size_t i = 0; i < l->n; i++)
		if (!strncmp(l->v[i], prefix, strlen(prefix))) {
			*match = l->v[i];
			matches++;
		}
	return matches;
}

int list_names(struct cairn_repo *r, const char *dir, struct name_list *out)
{
	memset(out, 0, sizeof(*out));
	int rc = r->be->ops->list(r->be, dir, collect_name, out);
	if (rc < 0) {
		name_list_free(out);
		return repo_err(r, rc, "cannot list %s/ in %s: %s", dir,
				r->be->location, strerror(-rc));
	}
	return 0;
}
