/* Recovery-test records: `verifications/<id>` (docs/design.md section 15).
 * Each verify-boot run adds one; nothing is ever rewritten, so concurrent
 * runs and backups need no coordination beyond the shared lock. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "internal.h"

static char *record_json(const struct cairn_verification *v)
{
	char when[40], snap[65];
	format_time_utc(v->time_ns, when, sizeof(when));
	hex_encode(v->snapshot.b, CAIRN_ID_LEN, snap);
	json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:s, s:s, s:s, s:f, s:s}", "version", 1,
			      "snapshot", snap, "time", when, "time_ns", (json_int_t)v->time_ns,
			      "host", v->host ? v->host : "", "result", v->ok ? "ok" : "failed",
			      "method", v->method ? v->method : "", "boot_seconds",
			      v->boot_seconds, "detail", v->detail ? v->detail : "");
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}

int cairn_verification_save(struct cairn_repo *r, const struct cairn_verification *v)
{
	_cleanup_free_ char *text = record_json(v);
	if (!text)
		return repo_err(r, -ENOMEM, "out of memory");
	struct buf sealed = { 0 };
	cairn_id id;
	int rc = envelope_seal(r, ENV_VERIFY, text, strlen(text), &sealed);
	if (rc == 0)
		rc = put_hashed(r, "verifications", &sealed, &id);
	buf_free(&sealed);
	return rc;
}

static char *dup_str(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	return strdup(s ? s : "");
}

static int parse_record(const struct buf *plain, struct cairn_verification *v)
{
	json_t *j = json_loadb((const char *)plain->p, plain->len, 0, NULL);
	const char *snap = json_string_value(json_object_get(j, "snapshot"));
	const char *result = json_string_value(json_object_get(j, "result"));
	int rc = -EBADMSG;
	if (json_is_object(j) && json_integer_value(json_object_get(j, "version")) == 1 &&
	    snap && result && hex_decode(snap, v->snapshot.b, CAIRN_ID_LEN) == 0) {
		v->time_ns = json_integer_value(json_object_get(j, "time_ns"));
		v->ok = !strcmp(result, "ok");
		v->boot_seconds = json_number_value(json_object_get(j, "boot_seconds"));
		v->host = dup_str(j, "host");
		v->method = dup_str(j, "method");
		v->detail = dup_str(j, "detail");
		rc = v->host && v->method && v->detail ? 0 : -ENOMEM;
	}
	json_decref(j);
	return rc;
}

static int load_record(struct cairn_repo *r, const char *hexid, struct cairn_verification *v)
{
	struct buf raw = { 0 }, plain = { 0 };
	int rc = get_hashed(r, "verifications", hexid, &raw);
	if (rc == 0)
		rc = envelope_open(r, ENV_VERIFY, raw.p, raw.len, &plain);
	if (rc == 0)
		rc = parse_record(&plain, v);
	buf_free(&raw);
	buf_free(&plain);
	return rc;
}

static int by_time(const void *a, const void *b)
{
	const struct cairn_verification *x = a, *y = b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

int cairn_verification_list(struct cairn_repo *r, struct cairn_verification **out,
			    size_t *n)
{
	struct name_list names;
	int rc = list_names(r, "verifications", &names);
	if (rc < 0)
		return rc;
	struct cairn_verification *v = calloc(names.n + 1, sizeof(*v));
	size_t count = 0;
	if (!v)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		int lrc = load_record(r, names.v[i], &v[count]);
		if (lrc == 0)
			count++;
		else if (lrc == -ENOMEM)
			rc = lrc;
		else {
			cairn_verification_free(&v[count]);
			repo_warn(r, "verification record %.12s is damaged; skipped", names.v[i]);
		}
	}
	name_list_free(&names);
	if (rc < 0) {
		cairn_verification_list_free(v, count);
		return repo_err(r, rc, "out of memory");
	}
	qsort(v, count, sizeof(*v), by_time);
	*out = v;
	*n = count;
	return 0;
}

void cairn_verification_free(struct cairn_verification *v)
{
	free(v->host);
	free(v->method);
	free(v->detail);
	memset(v, 0, sizeof(*v));
}

void cairn_verification_list_free(struct cairn_verification *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		cairn_verification_free(&v[i]);
	free(v);
}
