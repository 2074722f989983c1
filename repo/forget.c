/* Removing snapshot manifests (cairn forget) and protecting snapshots from
 * that (docs/design.md section 16). Removing a manifest frees nothing by
 * itself: its chunks stay until gc finds them unreferenced. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"
#include "retention.h"

static void object_name(const char *dir, const cairn_id *id, char *out, size_t len)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	snprintf(out, len, "%s/%s", dir, hex);
}

static int put_marker(struct cairn_repo *r, const char *name)
{
	char when[40], host[256] = "";
	format_time_utc(now_ns(), when, sizeof(when));
	gethostname(host, sizeof(host) - 1);
	json_t *j = json_pack("{s:i, s:s, s:s}", "version", 1, "time", when, "host", host);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return repo_err(r, -ENOMEM, "out of memory");
	int rc = r->be->ops->put(r->be, name, text, strlen(text));
	return rc < 0 ? repo_err(r, rc, "cannot write %s: %s", name, strerror(-rc)) : 0;
}

/* An immutable repository refuses to delete a manifest still under
 * retention. Nothing irreversible happens: forgotten/<id> tells gc not to
 * extend the manifest's retention and to delete it once that ends; until
 * then the snapshot stays listed and restorable. */
static int forget_later(struct cairn_repo *r, const cairn_id *id, const char *manifest, int why)
{
	char name[128];
	const char *reason = cairn_backend_error(r->be, why);
	object_name("forgotten", id, name, sizeof(name));
	int rc = put_marker(r, name);
	if (rc == 0)
		repo_warn(r, "%s; gc removes it when the lock ends", reason ? reason : manifest);
	return rc;
}

int cairn_snapshot_forget(struct cairn_repo *r, const cairn_id *id)
{
	char name[128];
	bool protect;
	int rc = cairn_repo_need_full(r);
	if (rc == 0)
		rc = cairn_snapshot_is_protected(r, id, &protect);
	if (rc < 0)
		return rc;
	object_name("snapshots", id, name, sizeof(name));
	if (protect)
		return repo_err(r, -EPERM, "snapshot %.12s is protected; unprotect it first",
				name + strlen("snapshots/"));
	rc = r->be->ops->remove(r->be, name);
	if (rc == -EPERM)
		return forget_later(r, id, name, rc);
	/* two forgets racing for the same snapshot both succeed */
	if (rc < 0 && rc != -ENOENT)
		return repo_err(r, rc, "cannot remove %s: %s", name, strerror(-rc));
	return 0;
}

/* A marker object, named after the snapshot, so protecting never rewrites
 * the (content-addressed) manifest. */
int cairn_snapshot_protect(struct cairn_repo *r, const cairn_id *id, bool on)
{
	char name[128];
	object_name("protected", id, name, sizeof(name));
	if (!on) {
		int rc = cairn_repo_need_full(r);
		if (rc < 0)
			return rc;
		rc = r->be->ops->remove(r->be, name);
		return rc < 0 && rc != -ENOENT
			       ? repo_err(r, rc, "cannot remove %s: %s", name, strerror(-rc))
			       : 0;
	}
	return put_marker(r, name);
}

int cairn_snapshot_is_protected(struct cairn_repo *r, const cairn_id *id, bool *out)
{
	char name[128];
	uint64_t size;
	object_name("protected", id, name, sizeof(name));
	int rc = r->be->ops->stat(r->be, name, &size);
	*out = rc == 0;
	if (rc < 0 && rc != -ENOENT)
		return repo_err(r, rc, "cannot read %s: %s", name, strerror(-rc));
	return 0;
}

/* One name's snapshots through the policy; newest first to the callback. */
static int forget_group(struct cairn_repo *r, const struct cairn_keep_policy *p,
			struct cairn_snapshot **v, size_t n, const char *name, bool dry_run,
			cairn_forget_fn fn, void *opaque)
{
	_cleanup_free_ struct cairn_retention_item *items = calloc(n + 1, sizeof(*items));
	_cleanup_free_ struct cairn_snapshot **mine = calloc(n + 1, sizeof(*mine));
	if (!items || !mine)
		return repo_err(r, -ENOMEM, "out of memory");
	size_t m = 0;
	int rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i]->name, name))
			continue;
		mine[m] = v[i];
		items[m] = (struct cairn_retention_item){ .time_ns = v[i]->time_ns,
							  .tags = v[i]->tags,
							  .ntags = v[i]->ntags };
		if ((rc = cairn_snapshot_is_protected(r, &v[i]->id, &items[m].protect)) < 0)
			return rc;
		m++;
	}
	if ((rc = cairn_retention_apply(p, items, m)) < 0)
		return repo_err(r, rc, "out of memory");
	for (size_t i = m; i-- > 0;) {
		if (!items[i].reasons && !dry_run && (rc = cairn_snapshot_forget(r, &mine[i]->id)) < 0)
			return rc;
		if (fn)
			fn(opaque, mine[i], items[i].reasons);
	}
	return 0;
}

static bool name_wanted(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return !n;
}

int cairn_forget_by_policy(struct cairn_repo *r, const struct cairn_keep_policy *p,
			   const char *const *names, size_t nnames, bool dry_run,
			   cairn_forget_fn fn, void *opaque)
{
	if (cairn_keep_policy_empty(p))
		return repo_err(r, -EINVAL, "no keep rule: forget would remove every snapshot");
	if (!dry_run && cairn_repo_need_full(r) < 0)
		return -EPERM;
	struct cairn_snapshot **v;
	size_t n;
	int rc = cairn_snapshot_list(r, &v, &n);
	if (rc < 0)
		return rc;
	/* each name once, in the order of its oldest snapshot */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(v[j]->name, v[i]->name);
		if (!seen && name_wanted(names, nnames, v[i]->name))
			rc = forget_group(r, p, v, n, v[i]->name, dry_run, fn, opaque);
	}
	cairn_snapshot_list_free(v, n);
	return rc;
}
