/* Removing snapshot manifests (cairn forget) and protecting snapshots from
 * that (docs/design.md section 16). Removing a manifest frees nothing by
 * itself: its chunks stay until gc finds them unreferenced. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

static void object_name(const char *dir, const cairn_id *id, char *out, size_t len)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	snprintf(out, len, "%s/%s", dir, hex);
}

int cairn_snapshot_forget(struct cairn_repo *r, const cairn_id *id)
{
	char name[128];
	bool protect;
	int rc = cairn_snapshot_is_protected(r, id, &protect);
	if (rc < 0)
		return rc;
	object_name("snapshots", id, name, sizeof(name));
	if (protect)
		return repo_err(r, -EPERM, "snapshot %.12s is protected; unprotect it first",
				name + strlen("snapshots/"));
	rc = r->be->ops->remove(r->be, name);
	/* two forgets racing for the same snapshot both succeed */
	if (rc < 0 && rc != -ENOENT)
		return repo_err(r, rc, "cannot remove %s: %s", name, strerror(-rc));
	return 0;
}

/* A marker object, named after the snapshot, so protecting never rewrites
 * the (content-addressed) manifest. */
int cairn_snapshot_protect(struct cairn_repo *r, const cairn_id *id, bool on)
{
	char name[128], when[40], host[256] = "";
	object_name("protected", id, name, sizeof(name));
	if (!on) {
		int rc = r->be->ops->remove(r->be, name);
		return rc < 0 && rc != -ENOENT
			       ? repo_err(r, rc, "cannot remove %s: %s", name, strerror(-rc))
			       : 0;
	}
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
