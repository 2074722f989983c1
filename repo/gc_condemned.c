/* gc's condemned lists (docs/design.md section 17): gc/<id> names the
 * packs a phase 1 condemned; gc/<id>.wait names every lock that existed
 * once the list was visible, so phase 2 knows when no writer can still
 * reuse a blob from them. Loaded into r->condemned with the index. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gc_internal.h"

#define WAIT_SUFFIX ".wait"

bool gc_is_wait_name(const char *name)
{
	size_t n = strlen(name), w = strlen(WAIT_SUFFIX);
	return n > w && !strcmp(name + n - w, WAIT_SUFFIX);
}

static json_t *get_json(struct cairn_repo *r, const char *name, int *rc)
{
	char path[160];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), GC_DIR "/%s", name);
	*rc = r->be->ops->get(r->be, path, &b);
	json_t *j = *rc == 0 ? json_loadb((const char *)b.p, b.len, 0, NULL) : NULL;
	buf_free(&b);
	if (*rc == 0 && !json_is_object(j))
		*rc = -EBADMSG;
	return j;
}

static int put_json(struct cairn_repo *r, const char *name, json_t *j)
{
	char path[160];
	snprintf(path, sizeof(path), GC_DIR "/%s", name);
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	int rc = r->be->ops->put(r->be, path, text, strlen(text));
	return rc < 0 ? repo_err(r, rc, "cannot write %s: %s", path, strerror(-rc)) : 0;
}

/* Appends the packs of one condemned list to *v. */
int gc_read_condemned(struct cairn_repo *r, const char *name, cairn_id **v, size_t *n,
			  size_t *cap)
{
	int rc;
	json_t *j = get_json(r, name, &rc);
	json_t *packs = json_object_get(j, "packs");
	size_t i;
	json_t *p;
	if (rc == 0 && !json_is_array(packs))
		rc = -EBADMSG;
	json_array_foreach(packs, i, p) {
		if (rc < 0)
			break;
		if ((rc = array_grow(v, cap, *n, sizeof(**v))) < 0)
			break;
		if (!json_is_string(p) || hex_decode(json_string_value(p), (*v)[*n].b, CAIRN_ID_LEN) < 0)
			rc = -EBADMSG;
		else
			(*n)++;
	}
	json_decref(j);
	return rc;
}

int gc_load_condemned(struct cairn_repo *r)
{
	struct name_list names;
	int rc = list_names(r, GC_DIR, &names);
	if (rc < 0)
		return rc;
	free(r->condemned);
	r->condemned = NULL;
	r->ncondemned = 0;
	size_t cap = 0;
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (gc_is_wait_name(names.v[i]))
			continue;
		int lrc = gc_read_condemned(r, names.v[i], &r->condemned, &r->ncondemned, &cap);
		if (lrc == -ENOMEM)
			rc = lrc;
		else if (lrc < 0)
			repo_warn(r, "gc list %s is unreadable (%s); skipped", names.v[i],
				  strerror(-lrc));
	}
	name_list_free(&names);
	if (r->ncondemned)
		qsort(r->condemned, r->ncondemned, sizeof(cairn_id), id_cmp);
	return rc;
}

static json_t *pack_array(const cairn_id *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		char hex[65];
		hex_encode(v[i].b, CAIRN_ID_LEN, hex);
		json_array_append_new(a, json_string(hex));
	}
	return a;
}

/* The locks of everyone else, right now. */
static int add_other_locks(struct cairn_repo *r, json_t *a)
{
	struct name_list locks;
	int rc = list_names(r, "locks", &locks);
	for (size_t i = 0; rc == 0 && i < locks.n; i++) {
		bool seen = false;
		size_t k;
		json_t *v;
		json_array_foreach(a, k, v)
			seen = seen || !strcmp(json_string_value(v), locks.v[i]);
		if (!seen && strcmp(locks.v[i], r->lock_name))
			json_array_append_new(a, json_string(locks.v[i]));
	}
	name_list_free(&locks);
	return rc;
}

/* Every lock but ours. Where a heartbeat's rewrite leaves its lock absent
 * for a moment (SFTP), a second listing a second later catches the lock
 * the first one missed: heartbeats are minutes apart. */
static json_t *other_locks(struct cairn_repo *r, int *rc)
{
	json_t *a = json_array();
	*rc = a ? add_other_locks(r, a) : -ENOMEM;
	if (*rc == 0 && r->be->replace_gap) {
		sleep(1);
		*rc = add_other_locks(r, a);
	}
	return a;
}

/* The list first, then the locks: any backup whose lock is not in the
 * .wait object locked (and so loaded the index and these lists) after the
 * list was visible, and will not reuse what it names. */
static int write_wait(struct cairn_repo *r, const char *base)
{
	int rc;
	json_t *locks = other_locks(r, &rc);
	char name[160];
	snprintf(name, sizeof(name), "%s" WAIT_SUFFIX, base);
	if (rc == 0)
		return put_json(r, name, json_pack("{s:i, s:o}", "version", 1, "locks", locks));
	json_decref(locks);
	return rc;
}

/* True when every lock the list waits for is gone. */
int gc_wait_over(struct cairn_repo *r, const char *base, bool *over)
{
	char name[160];
	snprintf(name, sizeof(name), "%s" WAIT_SUFFIX, base);
	int rc;
	json_t *j = get_json(r, name, &rc);
	if (rc == -ENOENT) /* died between the two writes: wait from now */
		return (*over = false, write_wait(r, base));
	json_t *locks = json_object_get(j, "locks");
	size_t i;
	json_t *l;
	*over = rc == 0 && json_is_array(locks);
	size_t missing = 0;
	json_array_foreach(locks, i, l) {
		bool gone = true;
		if (rc == 0 && json_is_string(l))
			rc = lock_gone(r, json_string_value(l), &gone);
		if (!gone)
			*over = false;
		missing += gone;
	}
	if (rc == 0 && *over && missing && r->be->replace_gap) {
		/* a lock may have been caught in the middle of a heartbeat's
		 * rewrite (SFTP): an absence that lasts a second is real, as
		 * heartbeats are minutes apart */
		sleep(1);
		json_array_foreach(locks, i, l) {
			bool gone = true;
			if (rc == 0 && json_is_string(l))
				rc = lock_gone(r, json_string_value(l), &gone);
			if (!gone)
				*over = false;
		}
	}
	json_decref(j);
	return rc == -EBADMSG ? 0 : rc;
}

/* The list first, then its wait object: see write_wait. */
int gc_write_condemned(struct cairn_repo *r, const cairn_id *packs, size_t n)
{
	uint8_t rnd[16];
	char base[40], when[40];
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	hex_encode(rnd, sizeof(rnd), base);
	format_time_utc(now_ns(), when, sizeof(when));
	rc = put_json(r, base, json_pack("{s:i, s:s, s:o}", "version", 1, "time", when,
					 "packs", pack_array(packs, n)));
	return rc == 0 ? write_wait(r, base) : rc;
}

void gc_remove_list(struct cairn_repo *r, const char *base)
{
	char name[160];
	snprintf(name, sizeof(name), GC_DIR "/%s" WAIT_SUFFIX, base);
	r->be->ops->remove(r->be, name);
	snprintf(name, sizeof(name), GC_DIR "/%s", base);
	r->be->ops->remove(r->be, name);
}
