/* What check learns, kept for later runs (docs/design.md section 18):
 * checks/<r> lists packs read in full without a problem (so that
 * `--read-data-subset` reads the longest-unread packs next) and damaged/<r>
 * lists damaged blobs and packs (so that writers store those blobs again
 * instead of reusing them). Both are plain JSON; pack and blob ids are not
 * secret (they name the objects under data/). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define MAX_CHECK_RECORDS 16

static int put_record(struct cairn_repo *r, const char *dir, json_t *j)
{
	uint8_t rnd[16];
	char hex[40], path[64];
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return repo_err(r, -ENOMEM, "out of memory");
	int rc = random_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	hex_encode(rnd, sizeof(rnd), hex);
	snprintf(path, sizeof(path), "%s/%s", dir, hex);
	rc = r->be->ops->put(r->be, path, text, strlen(text));
	return rc < 0 ? repo_err(r, rc, "cannot write %s: %s", path, strerror(-rc)) : 0;
}

static json_t *get_record(struct cairn_repo *r, const char *dir, const char *name)
{
	char path[160];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_t *j = r->be->ops->get(r->be, path, &b) == 0
			    ? json_loadb((const char *)b.p, b.len, 0, NULL)
			    : NULL;
	buf_free(&b);
	return j;
}

static json_t *hex_string(const cairn_id *id)
{
	char hex[65];
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	return json_string(hex);
}

static bool id_from(json_t *s, cairn_id *out)
{
	return json_is_string(s) && hex_decode(json_string_value(s), out->b, CAIRN_ID_LEN) == 0;
}

/* ---- damage ---- */

int damage_add(struct damage_list *l, const cairn_id *pack, const cairn_id *blob)
{
	if (array_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = (struct damage_item){ .pack = *pack, .blob = blob ? *blob : cairn_zero_id,
					     .whole = !blob };
	return 0;
}

void damage_list_free(struct damage_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int damage_record(struct cairn_repo *r, const struct damage_list *l)
{
	if (!l->n)
		return 0;
	char when[40];
	format_time_utc(now_ns(), when, sizeof(when));
	json_t *packs = json_array(), *blobs = json_array();
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].whole)
			json_array_append_new(packs, hex_string(&l->v[i].pack));
		else
			json_array_append_new(blobs, json_pack("{s:o, s:o}", "pack",
							       hex_string(&l->v[i].pack), "id",
							       hex_string(&l->v[i].blob)));
	}
	return put_record(r, "damaged", json_pack("{s:i, s:s, s:o, s:o}", "version", 1, "time",
						  when, "packs", packs, "blobs", blobs));
}

static int load_damage_record(struct cairn_repo *r, const char *name)
{
	json_t *j = get_record(r, "damaged", name);
	json_t *packs = json_object_get(j, "packs"), *blobs = json_object_get(j, "blobs");
	size_t i;
	json_t *v;
	int rc = json_is_object(j) ? 0 : -EBADMSG;
	json_array_foreach(packs, i, v) {
		cairn_id p;
		if (rc == 0 && id_from(v, &p))
			rc = damage_add(&r->damage, &p, NULL);
	}
	json_array_foreach(blobs, i, v) {
		cairn_id p, b;
		if (rc == 0 && id_from(json_object_get(v, "pack"), &p) &&
		    id_from(json_object_get(v, "id"), &b))
			rc = damage_add(&r->damage, &p, &b);
	}
	json_decref(j);
	return rc;
}

int damage_load(struct cairn_repo *r)
{
	struct name_list names;
	damage_list_free(&r->damage);
	int rc = list_names(r, "damaged", &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		int lrc = load_damage_record(r, names.v[i]);
		if (lrc == -ENOMEM)
			rc = lrc;
		else if (lrc < 0)
			repo_warn(r, "damage record %s is unreadable; skipped", names.v[i]);
	}
	name_list_free(&names);
	if (r->damage.n)
		qsort(r->damage.v, r->damage.n, sizeof(*r->damage.v), damage_item_cmp);
	return rc;
}

/* Records whose packs are all gone (gc deleted them) say nothing any more. */
int damage_prune(struct cairn_repo *r)
{
	struct name_list names;
	int rc = list_names(r, "damaged", &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		struct damage_list saved = r->damage;
		memset(&r->damage, 0, sizeof(r->damage));
		int lrc = load_damage_record(r, names.v[i]);
		bool any = false;
		for (size_t k = 0; lrc == 0 && k < r->damage.n && !any; k++) {
			char hex[65], path[128];
			uint64_t size;
			hex_encode(r->damage.v[k].pack.b, CAIRN_ID_LEN, hex);
			snprintf(path, sizeof(path), "data/%.2s/%s", hex, hex);
			any = r->be->ops->stat(r->be, path, &size) == 0;
		}
		damage_list_free(&r->damage);
		r->damage = saved;
		if (lrc == 0 && !any) {
			char path[160];
			snprintf(path, sizeof(path), "damaged/%s", names.v[i]);
			r->be->ops->remove(r->be, path);
		}
	}
	name_list_free(&names);
	return rc;
}

static bool id_among(const cairn_id *v, size_t n, json_t *s)
{
	cairn_id id;
	if (!id_from(s, &id))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!memcmp(&v[i], &id, sizeof(id)))
			return true;
	return false;
}

/* A record without the given packs; *dropped when it named any. */
static json_t *record_without(json_t *j, const cairn_id *packs, size_t n, bool *dropped)
{
	json_t *kp = json_array(), *kb = json_array(), *v;
	size_t i;
	*dropped = false;
	json_array_foreach(json_object_get(j, "packs"), i, v) {
		if (id_among(packs, n, v))
			*dropped = true;
		else
			json_array_append(kp, v);
	}
	json_array_foreach(json_object_get(j, "blobs"), i, v) {
		if (id_among(packs, n, json_object_get(v, "pack")))
			*dropped = true;
		else
			json_array_append(kb, v);
	}
	json_t *out = json_copy(j);
	json_object_set_new(out, "packs", kp);
	json_object_set_new(out, "blobs", kb);
	return out;
}

int damage_forget_packs(struct cairn_repo *r, const cairn_id *packs, size_t n)
{
	struct name_list names;
	int rc = list_names(r, "damaged", &names);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		json_t *j = get_record(r, "damaged", names.v[i]);
		bool dropped = false;
		json_t *kept = json_is_object(j) ? record_without(j, packs, n, &dropped) : NULL;
		json_decref(j);
		if (!dropped) {
			json_decref(kept);
			continue;
		}
		/* the new record first: a crash in between leaves both, never neither */
		if (json_array_size(json_object_get(kept, "packs")) ||
		    json_array_size(json_object_get(kept, "blobs")))
			rc = put_record(r, "damaged", kept);
		else
			json_decref(kept);
		char path[160];
		snprintf(path, sizeof(path), "damaged/%s", names.v[i]);
		int drc = rc == 0 ? r->be->ops->remove(r->be, path) : 0;
		if (drc < 0 && drc != -ENOENT)
			rc = repo_err(r, drc, "cannot remove %s: %s", path, strerror(-drc));
	}
	name_list_free(&names);
	return rc;
}

/* ---- data checks ---- */

struct pack_time {
	cairn_id pack;
	int64_t time_ns;
};

static int cmp_pack_time(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}

/* Every record's packs with their check time, newest per pack. */
static int load_check_times(struct cairn_repo *r, struct pack_time **out, size_t *n,
			    struct name_list *names)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	int rc = list_names(r, "checks", names);
	for (size_t i = 0; rc == 0 && i < names->n; i++) {
		json_t *j = get_record(r, "checks", names->v[i]);
		int64_t t = json_integer_value(json_object_get(j, "time_ns"));
		size_t k;
		json_t *v;
		json_array_foreach(json_object_get(j, "packs"), k, v) {
			cairn_id p;
			if (rc == 0 && id_from(v, &p) &&
			    (rc = array_grow(out, &cap, *n, sizeof(**out))) == 0)
				(*out)[(*n)++] = (struct pack_time){ p, t };
		}
		json_decref(j);
	}
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_pack_time);
	/* newest per pack: keep the last of each run of equal packs */
	size_t w = 0;
	for (size_t i = 0; i < *n; i++) {
		if (w && !memcmp(&(*out)[w - 1].pack, &(*out)[i].pack, sizeof(cairn_id))) {
			if ((*out)[i].time_ns > (*out)[w - 1].time_ns)
				(*out)[w - 1].time_ns = (*out)[i].time_ns;
			continue;
		}
		(*out)[w++] = (*out)[i];
	}
	*n = w;
	return rc;
}

static int cmp_age(const void *a, const void *b)
{
	const struct check_age *x = a, *y = b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int check_ages(struct cairn_repo *r, const void *packs, size_t n, size_t stride,
	       struct check_age **out)
{
	struct pack_time *times;
	size_t nt;
	struct name_list names;
	int rc = load_check_times(r, &times, &nt, &names);
	name_list_free(&names);
	struct check_age *ages = rc == 0 ? calloc(n + 1, sizeof(*ages)) : NULL;
	if (rc == 0 && !ages)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const cairn_id *id = (const cairn_id *)((const uint8_t *)packs + i * stride);
		struct pack_time key = { .pack = *id }, *hit =
			nt ? bsearch(&key, times, nt, sizeof(key), cmp_pack_time) : NULL;
		ages[i] = (struct check_age){ .pos = i, .time_ns = hit ? hit->time_ns : 0 };
	}
	free(times);
	if (rc < 0) {
		free(ages);
		return rc;
	}
	qsort(ages, n, sizeof(*ages), cmp_age);
	*out = ages;
	return 0;
}

/* Merges many small records into one, so the directory stays short. */
static int consolidate_checks(struct cairn_repo *r)
{
	struct pack_time *times;
	size_t nt;
	struct name_list names;
	int rc = load_check_times(r, &times, &nt, &names);
	if (rc == 0 && names.n > MAX_CHECK_RECORDS) {
		/* one record per distinct time keeps each pack's own date */
		json_t *by_time = json_object();
		for (size_t i = 0; i < nt; i++) {
			char key[32];
			snprintf(key, sizeof(key), "%lld", (long long)times[i].time_ns);
			json_t *a = json_object_get(by_time, key);
			if (!a)
				json_object_set_new(by_time, key, a = json_array());
			json_array_append_new(a, hex_string(&times[i].pack));
		}
		const char *key;
		json_t *a;
		json_object_foreach(by_time, key, a) {
			if (rc == 0)
				rc = put_record(r, "checks",
						json_pack("{s:i, s:I, s:O}", "version", 1, "time_ns",
							  (json_int_t)strtoll(key, NULL, 10),
							  "packs", a));
		}
		json_decref(by_time);
		for (size_t i = 0; rc == 0 && i < names.n; i++) {
			char path[160];
			snprintf(path, sizeof(path), "checks/%s", names.v[i]);
			r->be->ops->remove(r->be, path);
		}
	}
	free(times);
	name_list_free(&names);
	return rc;
}

int check_record(struct cairn_repo *r, const cairn_id *packs, size_t n)
{
	if (!n)
		return 0;
	char when[40];
	int64_t now = now_ns();
	format_time_utc(now, when, sizeof(when));
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, hex_string(&packs[i]));
	int rc = put_record(r, "checks", json_pack("{s:i, s:s, s:I, s:o}", "version", 1, "time",
						   when, "time_ns", (json_int_t)now, "packs", a));
	return rc == 0 ? consolidate_checks(r) : rc;
}
