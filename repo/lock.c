/* Repository locks (docs/design.md section 10). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>

#include "internal.h"

struct lock_info {
	char host[256];
	long long pid;
	char time[40];
	bool exclusive;
	bool gc; /* a garbage collection: excludes other gcs, not backups */
};

static int read_lock(struct cairn_repo *r, const char *name, struct lock_info *li)
{
	char path[128];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), "locks/%s", name);
	int rc = r->be->ops->get(r->be, path, &b);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	json_t *j = json_loadb((const char *)b.p, b.len, 0, NULL);
	buf_free(&b);
	const char *host = "", *time = "";
	int excl = 0;
	json_int_t pid = 0;
	rc = j && json_unpack(j, "{s:s, s:I, s:s, s:b}", "host", &host, "pid", &pid,
			      "time", &time, "exclusive", &excl) == 0 ? 0 : -EBADMSG;
	if (rc == 0) {
		li->gc = json_is_true(json_object_get(j, "gc"));
		snprintf(li->host, sizeof(li->host), "%s", host);
		snprintf(li->time, sizeof(li->time), "%s", time);
		li->pid = pid;
		li->exclusive = excl;
	}
	json_decref(j);
	return rc;
}

static bool lock_is_stale(const struct lock_info *li, const char *myhost)
{
	return !strcmp(li->host, myhost) && li->pid > 0 &&
	       kill((pid_t)li->pid, 0) < 0 && errno == ESRCH;
}

static bool conflicts(bool exclusive, bool gc, const struct lock_info *other)
{
	return exclusive || other->exclusive || (gc && other->gc);
}

static int take_lock(struct cairn_repo *r, bool exclusive, bool gc)
{
	char host[256] = "", when[40], name[80], path[128];
	uint8_t rnd[32];
	if (r->lock_name[0])
		return repo_err(r, -EALREADY, "repository is already locked by this process");
	gethostname(host, sizeof(host) - 1);
	format_time_utc(now_ns(), when, sizeof(when));
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	hex_encode(rnd, sizeof(rnd), name);
	json_t *j = json_pack("{s:s, s:I, s:s, s:b}", "host", host, "pid",
			      (json_int_t)getpid(), "time", when, "exclusive", exclusive);
	if (j && gc)
		json_object_set_new(j, "gc", json_true());
	char *text = j ? json_dumps(j, 0) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "locks/%s", name);
	rc = r->be->ops->put(r->be, path, text, strlen(text));
	free(text);
	if (rc < 0)
		return repo_err(r, rc, "cannot create lock in %s: %s",
				r->be->location, strerror(-rc));
	snprintf(r->lock_name, sizeof(r->lock_name), "%s", name);

	struct name_list locks;
	rc = list_names(r, "locks", &locks);
	for (size_t i = 0; rc == 0 && i < locks.n; i++) {
		struct lock_info li;
		if (!strcmp(locks.v[i], name) || read_lock(r, locks.v[i], &li) < 0)
			continue;
		if (lock_is_stale(&li, host)) {
			char other[128];
			snprintf(other, sizeof(other), "locks/%s", locks.v[i]);
			r->be->ops->remove(r->be, other);
			repo_warn(r, "removed stale lock of pid %lld on %s from %s",
				  li.pid, li.host, li.time);
			continue;
		}
		if (conflicts(exclusive, gc, &li))
			rc = repo_err(r, -EBUSY,
				      "repository %s is locked%s by pid %lld on %s since %s",
				      r->be->location,
				      li.exclusive ? " exclusively" : li.gc ? " for gc" : "", li.pid,
				      li.host, li.time);
	}
	name_list_free(&locks);
	if (rc < 0)
		cairn_repo_unlock(r);
	return rc;
}

int cairn_repo_lock(struct cairn_repo *r, bool exclusive)
{
	return take_lock(r, exclusive, false);
}

int cairn_repo_lock_gc(struct cairn_repo *r)
{
	return take_lock(r, false, true);
}

void cairn_repo_unlock(struct cairn_repo *r)
{
	char path[128];
	if (!r->lock_name[0])
		return;
	snprintf(path, sizeof(path), "locks/%s", r->lock_name);
	r->be->ops->remove(r->be, path);
	r->lock_name[0] = '\0';
}
