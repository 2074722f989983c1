/* The console's repository endpoints and its view of peers (see api.h). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base/util.h"

int cairn_api_open_repo(const struct cairn_api *a, const char *name, struct cairn_repo **r,
			struct cairn_reply *out)
{
	const struct cairn_conf_repo *c = cairn_conf_repo(a->conf, name);
	if (!c) {
		cairn_reply_error(out, 404, "there is no repository %s", name);
		return -ENOENT;
	}
	char err[512] = "";
	_cleanup_free_ char *pw = NULL;
	int rc = c->password_file ? read_secret_file(c->password_file, &pw, err, sizeof(err)) : 0;
	struct cairn_backend_opts bo = { .connections = c->connections,
					 .limit_download = c->limit_download,
					 .credentials_file = c->s3_credentials_file,
					 .identity_file = c->sftp_identity,
					 .known_hosts_file = c->sftp_known_hosts };
	if (rc == 0)
		rc = cairn_repo_open_with(c->url, pw, &bo, r, err, sizeof(err));
	if (pw)
		explicit_bzero(pw, strlen(pw));
	if (rc < 0)
		cairn_reply_error(out, 502, "repository %s: %s", name, err);
	return rc;
}

static json_t *time_json(int64_t ns)
{
	char when[40];
	format_time_utc(ns, when, sizeof(when));
	return json_string(when);
}

static json_t *verification_json(const struct cairn_verification *v)
{
	return json_pack("{s:o, s:s, s:s, s:f, s:s, s:s}", "time", time_json(v->time_ns), "result",
			 v->ok ? "ok" : "failed", "method", v->method ? v->method : "",
			 "boot_seconds", v->boot_seconds, "detail", v->detail ? v->detail : "",
			 "host", v->host ? v->host : "");
}

/* Every recovery test of s, oldest first. */
static json_t *verifications_of(const struct cairn_snapshot *s,
				const struct cairn_verification *v, size_t nv)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < nv; i++)
		if (!memcmp(&v[i].snapshot, &s->id, sizeof(s->id)))
			json_array_append_new(arr, verification_json(&v[i]));
	return arr;
}

static json_t *snapshot_json(struct cairn_repo *r, const struct cairn_snapshot *s,
			     const struct cairn_verification *v, size_t nv)
{
	char id[65], parent[65];
	hex_encode(s->id.b, sizeof(s->id.b), id);
	if (s->has_parent)
		hex_encode(s->parent.b, sizeof(s->parent.b), parent);
	json_t *tags = json_array();
	for (size_t i = 0; i < s->ntags; i++)
		json_array_append_new(tags, json_string(s->tags[i]));
	uint64_t size = 0;
	bool incremental = false, prot = false;
	for (size_t i = 0; i < s->ndisks; i++) {
		size += s->disks[i].size;
		incremental |= s->disks[i].incremental;
	}
	cairn_snapshot_is_protected(r, &s->id, &prot);
	json_t *tests = verifications_of(s, v, nv);
	json_t *last = json_array_size(tests) ? json_incref(json_array_get(tests, json_array_size(tests) - 1))
					      : json_null();
	return json_pack("{s:s, s:s, s:s, s:o, s:I, s:s?, s:o, s:s, s:s?, s:I, s:I, s:I, s:I, "
			 "s:b, s:o, s:o}",
			 "id", id, "name", s->name, "host", s->host ? s->host : "", "time",
			 time_json(s->time_ns), "time_ns", (json_int_t)s->time_ns, "parent",
			 s->has_parent ? parent : NULL, "tags", tags, "kind",
			 incremental ? "incremental" : "full", "consistency", s->consistency,
			 "size", (json_int_t)size, "bytes_read", (json_int_t)s->bytes_read,
			 "new_chunks", (json_int_t)s->new_chunks, "new_bytes",
			 (json_int_t)s->new_bytes, "protected", prot, "verification", last,
			 "verifications", tests);
}

void cairn_api_snapshots(const struct cairn_api *a, const char *repo, struct cairn_reply *out)
{
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if (cairn_api_open_repo(a, repo, &r, out) < 0)
		return;
	struct cairn_snapshot **v;
	size_t n;
	if (cairn_snapshot_list(r, &v, &n) < 0)
		return cairn_reply_error(out, 502, "repository %s: %s", repo, cairn_repo_error(r));
	struct cairn_verification *ver = NULL;
	size_t nver = 0;
	if (cairn_verification_list(r, &ver, &nver) < 0) {
		cairn_snapshot_list_free(v, n);
		return cairn_reply_error(out, 502, "repository %s: %s", repo, cairn_repo_error(r));
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, snapshot_json(r, v[i], ver, nver));
	cairn_snapshot_list_free(v, n);
	cairn_verification_list_free(ver, nver);
	cairn_reply_json(out, 200, arr);
}

/* Size and dedupe over time, from the snapshots' own accounting: at each
 * snapshot, the disk bytes kept so far against the bytes stored for them
 * (what gc later frees is not subtracted). */
static json_t *history_json(struct cairn_snapshot **v, size_t n)
{
	json_t *arr = json_array();
	uint64_t logical = 0, stored = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t d = 0; d < v[i]->ndisks; d++)
			logical += v[i]->disks[d].size;
		stored += v[i]->new_bytes;
		json_array_append_new(arr, json_pack("{s:o, s:s, s:I, s:I}", "time",
						     time_json(v[i]->time_ns), "vm", v[i]->name,
						     "logical_bytes", (json_int_t)logical,
						     "stored_bytes", (json_int_t)stored));
	}
	return arr;
}

void cairn_api_stats(const struct cairn_api *a, const char *repo, struct cairn_reply *out)
{
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if (cairn_api_open_repo(a, repo, &r, out) < 0)
		return;
	struct cairn_stats st;
	struct cairn_snapshot **v;
	size_t n;
	if (cairn_repo_load_index(r) < 0 || cairn_repo_stats(r, &st) < 0)
		return cairn_reply_error(out, 502, "repository %s: %s", repo, cairn_repo_error(r));
	if (cairn_snapshot_list(r, &v, &n) < 0)
		return cairn_reply_error(out, 502, "repository %s: %s", repo, cairn_repo_error(r));
	double dedupe = st.unique_raw_bytes ? (double)st.referenced_bytes / (double)st.unique_raw_bytes : 0;
	double compression = st.stored_bytes ? (double)st.unique_raw_bytes / (double)st.stored_bytes : 0;
	json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o}",
			      "repository", repo, "snapshots", (json_int_t)st.snapshots,
			      "logical_bytes", (json_int_t)st.logical_bytes, "referenced_bytes",
			      (json_int_t)st.referenced_bytes, "unique_chunks",
			      (json_int_t)st.unique_chunks, "unique_raw_bytes",
			      (json_int_t)st.unique_raw_bytes, "stored_bytes",
			      (json_int_t)st.stored_bytes, "packs", (json_int_t)st.packs,
			      "index_files", (json_int_t)st.index_files, "dedupe_ratio", dedupe,
			      "compression_ratio", compression, "history", history_json(v, n));
	cairn_snapshot_list_free(v, n);
	cairn_reply_json(out, 200, j);
}

void cairn_api_protect(const struct cairn_api *a, const char *repo, const char *snap, bool on,
		       struct cairn_reply *out)
{
	size_t len = strlen(snap);
	if (len < 4 || len > 64 || strspn(snap, "0123456789abcdef") != len)
		return cairn_reply_error(out, 400, "snapshot %s: give an id or a prefix of one", snap);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if (cairn_api_open_repo(a, repo, &r, out) < 0)
		return;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	int rc = cairn_snapshot_find(r, snap, NULL, &s);
	if (rc < 0)
		return cairn_reply_error(out, rc == -ENOENT ? 404 : rc == -EINVAL ? 400 : 502, "%s",
					 cairn_repo_error(r));
	if ((rc = cairn_repo_lock(r, false)) == 0) {
		rc = cairn_snapshot_protect(r, &s->id, on);
		cairn_repo_unlock(r);
	}
	if (rc < 0)
		return cairn_reply_error(out, rc == -EBUSY ? 409 : 502, "%s", cairn_repo_error(r));
	char id[65];
	hex_encode(s->id.b, sizeof(s->id.b), id);
	cairn_reply_json(out, 200, json_pack("{s:s, s:s, s:b}", "id", id, "name", s->name,
					      "protected", on));
}

/* ---- peers ---- */

static size_t collect(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct buf *b = opaque;
	if (b->len > (4u << 20)) /* a peer's status is far smaller */
		return 0;
	return buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* GET URL/api/v1/status with the peer's token; its JSON, or an error. */
static json_t *peer_status(const struct cairn_conf_peer *p, char *err, size_t errlen)
{
	_cleanup_free_ char *token = NULL;
	if (read_secret_file(p->token_file, &token, err, errlen) < 0)
		return NULL;
	char url[2048], auth[600];
	snprintf(url, sizeof(url), "%s/api/v1/status", p->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	explicit_bzero(token, strlen(token));
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, auth);
	explicit_bzero(auth, sizeof(auth));
	struct buf b = { 0 };
	long code = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	json_t *j = NULL;
	if (cc != CURLE_OK)
		set_err(err, errlen, -EIO, "%s", curl_easy_strerror(cc));
	else if (code != 200)
		set_err(err, errlen, -EIO, "HTTP %ld", code);
	else if (buf_append(&b, "", 1) == 0 && !(j = json_loads((char *)b.p, 0, NULL)))
		set_err(err, errlen, -EIO, "not JSON");
	buf_free(&b);
	return j;
}

void cairn_api_peers(const struct cairn_api *a, struct cairn_reply *out)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < a->conf->npeers; i++) {
		const struct cairn_conf_peer *p = &a->conf->peers[i];
		char err[512] = "";
		json_t *st = peer_status(p, err, sizeof(err));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:s?}", "name", p->name, "url",
						     p->url, "status", st ? st : json_null(), "error",
						     st ? NULL : err));
	}
	cairn_reply_json(out, 200, arr);
}
