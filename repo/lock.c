/* Repository locks (docs/design.md section 10).
 *
 * A lock object names its holder and carries a heartbeat that a thread of
 * the holder rewrites every LOCK_REFRESH_S seconds, so that a lock whose
 * holder died on another host (where its pid cannot be checked) is known to
 * be stale once the heartbeat is LOCK_STALE_S old. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"

#define LOCK_REFRESH_S 300
#define LOCK_STALE_S 1800

struct lock_info {
	char host[256];
	long long pid;
	char time[40];
	int64_t heartbeat_ns; /* the time itself for locks without one */
	bool exclusive;
	bool gc; /* a garbage collection: excludes other gcs, not backups */
};

/* RFC 3339 UTC ("2026-11-24T15:44:46Z", fractions ignored) to Unix ns;
 * 0 (never stale by age) when it does not parse or is outside what ns
 * since 1970 can hold (1970..2262). */
static int64_t parse_utc(const char *s)
{
	struct tm tm = { 0 };
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	time_t t = end ? timegm(&tm) : 0;
	return t > 0 && t < INT64_MAX / 1000000000LL ? (int64_t)t * 1000000000LL : 0;
}

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
		const char *hb = json_string_value(json_object_get(j, "heartbeat"));
		li->heartbeat_ns = parse_utc(hb ? hb : time);
	}
	json_decref(j);
	return rc;
}

static bool lock_is_stale(const struct lock_info *li, const char *myhost)
{
	if (!strcmp(li->host, myhost) && li->pid > 0)
		return kill((pid_t)li->pid, 0) < 0 && errno == ESRCH;
	return li->heartbeat_ns && now_ns() - li->heartbeat_ns > LOCK_STALE_S * 1000000000LL;
}

static void remove_stale(struct cairn_repo *r, const char *name, const struct lock_info *li)
{
	char path[128];
	snprintf(path, sizeof(path), "locks/%s", name);
	r->be->ops->remove(r->be, path);
	repo_warn(r, "removed stale lock of pid %lld on %s from %s", li->pid, li->host, li->time);
}

int lock_gone(struct cairn_repo *r, const char *name, bool *gone)
{
	char host[256] = "";
	struct lock_info li;
	gethostname(host, sizeof(host) - 1);
	int rc = read_lock(r, name, &li);
	*gone = rc == -ENOENT;
	if (rc == 0 && lock_is_stale(&li, host)) {
		remove_stale(r, name, &li);
		*gone = true;
	}
	return rc == -ENOENT || rc == -EBADMSG ? 0 : rc;
}

static bool conflicts(bool exclusive, bool gc, const struct lock_info *other)
{
	return exclusive || other->exclusive || (gc && other->gc);
}

static char *lock_text(const struct cairn_repo *r)
{
	char host[256] = "", beat[40];
	gethostname(host, sizeof(host) - 1);
	format_time_utc(now_ns(), beat, sizeof(beat));
	json_t *j = json_pack("{s:s, s:I, s:s, s:b, s:s}", "host", host, "pid",
			      (json_int_t)getpid(), "time", r->lock_time, "exclusive",
			      r->lock_exclusive, "heartbeat", beat);
	if (j && r->lock_gc)
		json_object_set_new(j, "gc", json_true());
	char *text = j ? json_dumps(j, 0) : NULL;
	json_decref(j);
	return text;
}

static int write_lock(struct cairn_repo *r)
{
	char path[128];
	_cleanup_free_ char *text = lock_text(r);
	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "locks/%s", r->lock_name);
	return r->be->ops->put(r->be, path, text, strlen(text));
}

/* Rewrites the lock (same name: gc tracks locks by name) until unlock. */
static void *heartbeat_main(void *arg)
{
	struct cairn_repo *r = arg;
	pthread_mutex_lock(&r->lock);
	while (!r->lock_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += LOCK_REFRESH_S;
		if (pthread_cond_timedwait(&r->lock_cond, &r->lock, &until) == ETIMEDOUT &&
		    !r->lock_stop) {
			pthread_mutex_unlock(&r->lock);
			write_lock(r); /* a failed refresh is retried at the next beat */
			pthread_mutex_lock(&r->lock);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int check_others(struct cairn_repo *r, const char *host)
{
	struct name_list locks;
	int rc = list_names(r, "locks", &locks);
	for (size_t i = 0; rc == 0 && i < locks.n; i++) {
		struct lock_info li;
		if (!strcmp(locks.v[i], r->lock_name) || read_lock(r, locks.v[i], &li) < 0)
			continue;
		if (lock_is_stale(&li, host)) {
			remove_stale(r, locks.v[i], &li);
			continue;
		}
		if (conflicts(r->lock_exclusive, r->lock_gc, &li))
			rc = repo_err(r, -EBUSY,
				      "repository %s is locked%s by pid %lld on %s since %s",
				      r->be->location,
				      li.exclusive ? " exclusively" : li.gc ? " for gc" : "", li.pid,
				      li.host, li.time);
	}
	name_list_free(&locks);
	return rc;
}

static int take_lock(struct cairn_repo *r, bool exclusive, bool gc)
{
	char host[256] = "";
	uint8_t rnd[32];
	if (r->lock_name[0])
		return repo_err(r, -EALREADY, "repository is already locked by this process");
	gethostname(host, sizeof(host) - 1);
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	hex_encode(rnd, sizeof(rnd), r->lock_name);
	format_time_utc(now_ns(), r->lock_time, sizeof(r->lock_time));
	r->lock_exclusive = exclusive;
	r->lock_gc = gc;
	if ((rc = write_lock(r)) < 0) {
		r->lock_name[0] = '\0';
		return repo_err(r, rc, "cannot create lock in %s: %s", r->be->location,
				strerror(-rc));
	}
	if ((rc = check_others(r, host)) < 0) {
		cairn_repo_unlock(r);
		return rc;
	}
	r->lock_stop = false;
	if (pthread_create(&r->lock_thread, NULL, heartbeat_main, r) == 0)
		r->lock_beating = true;
	return 0;
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
	if (r->lock_beating) {
		pthread_mutex_lock(&r->lock);
		r->lock_stop = true;
		pthread_cond_broadcast(&r->lock_cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->lock_thread, NULL);
		r->lock_beating = false;
	}
	snprintf(path, sizeof(path), "locks/%s", r->lock_name);
	r->be->ops->remove(r->be, path);
	r->lock_name[0] = '\0';
}
