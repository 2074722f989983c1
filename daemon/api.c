/* The console's REST API: routing, the agent's own state, jobs and boot
 * tests (see api.h); the repositories' endpoints are in api_repo.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "base/util.h"
#include "history.h"
#include "metrics.h"
#include "restore/bootcheck.h"
#include "scheduler.h"
#include "state.h"

#define HISTORY_MAX 200

void cairn_reply_free(struct cairn_reply *r)
{
	free(r->body);
	r->body = NULL;
}

void cairn_reply_json(struct cairn_reply *out, unsigned status, json_t *j)
{
	out->status = status;
	out->type = "application/json";
	out->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!out->body) {
		out->status = 500;
		out->body = strdup("{\"error\":\"out of memory\"}");
	}
}

void cairn_reply_error(struct cairn_reply *out, unsigned status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cairn_reply_json(out, status, json_pack("{s:s}", "error", msg));
}

static json_t *time_json(int64_t ns)
{
	if (!ns)
		return json_null();
	char when[40];
	format_time_utc(ns, when, sizeof(when));
	return json_string(when);
}

static json_t *run_json(const struct cairn_run_record *r)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:f, s:b, s:s, s:s, s:I, s:I, s:o}", "job", r->job,
			 "vm", r->vm, "start", time_json(r->start_ns), "end", time_json(r->end_ns),
			 "seconds", (double)(r->end_ns - r->start_ns) / 1e9, "ok", r->ok, "message",
			 r->message, "snapshot", r->snapshot, "bytes_read",
			 (json_int_t)r->bytes_read, "bytes_stored", (json_int_t)r->bytes_stored,
			 "next_run", time_json(r->next_run_ns));
}

/* How far apart the job's runs are: what its VMs' recovery point is
 * measured against. */
static int64_t interval_s(const struct cairn_conf_job *j, int64_t now)
{
	int64_t a = cairn_scheduler_next_run(j, now), b = a ? cairn_scheduler_next_run(j, a) : 0;
	return b > a ? b - a : 0;
}

/* ok: the last success is within 1.5 intervals; late: within 3; missed:
 * older, or none. */
static const char *rpo_state(int64_t last_ok_s, int64_t interval, int64_t now)
{
	if (!last_ok_s || !interval)
		return last_ok_s ? "ok" : "missed";
	int64_t age = now - last_ok_s;
	return age * 2 <= interval * 3 ? "ok" : age <= interval * 3 ? "late" : "missed";
}

/* The VMs of job j, from its run records (and the history for the last
 * success of a VM whose last run failed). */
static json_t *job_vms(const struct cairn_conf_job *j, const struct cairn_run_record *runs,
		       size_t n, const struct cairn_run_record *hist, size_t nhist, int64_t now)
{
	json_t *vms = json_array();
	int64_t iv = interval_s(j, now);
	for (size_t i = 0; i < n; i++) {
		const struct cairn_run_record *r = &runs[i];
		if (strcmp(r->job, j->name) || !strcmp(r->vm, "*"))
			continue;
		int64_t last_ok = r->ok ? r->end_ns : 0;
		for (size_t k = 0; !last_ok && k < nhist; k++)
			if (hist[k].ok && !strcmp(hist[k].job, j->name) && !strcmp(hist[k].vm, r->vm))
				last_ok = hist[k].end_ns;
		json_t *v = run_json(r);
		json_object_set_new(v, "last_success", time_json(last_ok));
		json_object_set_new(v, "rpo", json_string(rpo_state(last_ok / 1000000000LL, iv, now)));
		json_array_append_new(vms, v);
	}
	return vms;
}

/* Why the job's last run could not start at all, or NULL. */
static const char *job_error(const char *job, int64_t last_ns, const struct cairn_run_record *runs,
			     size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(runs[i].job, job) && !strcmp(runs[i].vm, "*") &&
		    runs[i].start_ns >= last_ns)
			return runs[i].message;
	return NULL;
}

static json_t *jobs_json(const struct cairn_api *a, const struct cairn_run_record *runs, size_t n,
			 const struct cairn_run_record *hist, size_t nhist)
{
	const struct cairn_conf *c = a->conf;
	int64_t now = (int64_t)time(NULL);
	json_t *jobs = json_array();
	for (size_t i = 0; i < c->njobs; i++) {
		const struct cairn_conf_job *j = &c->jobs[i];
		int64_t last = 0;
		cairn_state_job_last(c->state_dir, j->name, &last, NULL, 0);
		int64_t next = cairn_scheduler_next_run(j, now);
		json_t *domains = json_array();
		for (size_t d = 0; d < j->domains.n; d++)
			json_array_append_new(domains, json_string(j->domains.v[d]));
		json_array_append_new(
			jobs, json_pack("{s:s, s:s, s:s, s:o, s:I, s:o, s:o, s:s?, s:o}", "name",
					j->name, "schedule", j->schedule, "repository",
					j->repository, "domains", domains, "interval_seconds",
					(json_int_t)interval_s(j, now), "last_run", time_json(last),
					"next_run", time_json(next * 1000000000LL), "error",
					last ? job_error(j->name, last, runs, n) : NULL, "vms",
					job_vms(j, runs, n, hist, nhist, now)));
	}
	return jobs;
}

static json_t *live_json(struct cairn_live *l)
{
	struct cairn_live *now = malloc(sizeof(*now));
	if (!now)
		return json_null();
	cairn_live_snapshot(l, now);
	json_t *queue = json_array(), *verify = json_array();
	for (size_t i = 0; i < now->nqueue; i++)
		json_array_append_new(queue, json_string(now->queue[i]));
	for (size_t i = 0; i < now->nverify; i++) {
		const struct cairn_live_verify *v = &now->verify[i];
		json_array_append_new(
			verify, json_pack("{s:i, s:s, s:s, s:o, s:o, s:s, s:s}", "id", (int)i,
					  "repository", v->repository, "snapshot", v->snapshot,
					  "start", time_json(v->start_ns), "end", time_json(v->end_ns),
					  "state",
					  !v->end_ns ? "running" : v->exit_code == 0 ? "ok" : "failed",
					  "message", v->message));
	}
	json_t *running = now->running[0]
				  ? json_pack("{s:s, s:o, s:s}", "job", now->running, "since",
					      time_json(now->running_since_ns), "progress",
					      now->progress)
				  : json_null();
	free(now);
	return json_pack("{s:o, s:o, s:o}", "running", running, "queue", queue, "verify_tests",
			 verify);
}

static void get_status(const struct cairn_api *a, struct cairn_reply *out)
{
	struct cairn_run_record *runs = NULL, *hist = NULL;
	size_t n = 0, nhist = 0;
	char err[512] = "", host[256] = "";
	if (cairn_state_load_runs(a->conf->state_dir, &runs, &n, err, sizeof(err)) < 0 ||
	    cairn_history_load(a->conf->state_dir, HISTORY_MAX, &hist, &nhist, err, sizeof(err)) < 0) {
		free(runs);
		return cairn_reply_error(out, 500, "%s", err);
	}
	gethostname(host, sizeof(host) - 1);
	json_t *j = live_json(a->live);
	json_object_set_new(j, "host", json_string(host));
	json_object_set_new(j, "time", time_json(now_ns()));
	json_object_set_new(j, "jobs", jobs_json(a, runs, n, hist, nhist));
	free(runs);
	free(hist);
	cairn_reply_json(out, 200, j);
}

static void get_history(const struct cairn_api *a, struct cairn_reply *out)
{
	struct cairn_run_record *hist = NULL;
	size_t n = 0;
	char err[512] = "";
	if (cairn_history_load(a->conf->state_dir, HISTORY_MAX, &hist, &n, err, sizeof(err)) < 0)
		return cairn_reply_error(out, 500, "%s", err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, run_json(&hist[i]));
	free(hist);
	cairn_reply_json(out, 200, arr);
}

static void get_repositories(const struct cairn_api *a, struct cairn_reply *out)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < a->conf->nrepos; i++) {
		const struct cairn_conf_repo *r = &a->conf->repos[i];
		json_t *jobs = json_array();
		for (size_t k = 0; k < a->conf->njobs; k++)
			if (!strcmp(a->conf->jobs[k].repository, r->name))
				json_array_append_new(jobs, json_string(a->conf->jobs[k].name));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:o}", "name", r->name, "url",
						     r->url, "encrypted", r->password_file != NULL,
						     "jobs", jobs));
	}
	cairn_reply_json(out, 200, arr);
}

static void get_metrics(const struct cairn_api *a, struct cairn_reply *out)
{
	struct cairn_run_record *runs = NULL;
	size_t n = 0;
	char err[512] = "";
	if (cairn_state_load_runs(a->conf->state_dir, &runs, &n, err, sizeof(err)) < 0)
		return cairn_reply_error(out, 500, "%s", err);
	int rc = cairn_metrics_render(runs, n, &out->body);
	free(runs);
	if (rc < 0)
		return cairn_reply_error(out, 500, "cannot render metrics: %s", strerror(-rc));
	out->status = 200;
	out->type = "text/plain; version=0.0.4; charset=utf-8";
}

static void post_run(const struct cairn_api *a, const char *job, struct cairn_reply *out)
{
	if (!cairn_conf_job(a->conf, job))
		return cairn_reply_error(out, 404, "there is no job %s", job);
	int rc = cairn_live_request(a->live, job);
	if (rc == -EALREADY)
		return cairn_reply_error(out, 409, "job %s is already queued or running", job);
	if (rc < 0)
		return cairn_reply_error(out, 503, "too many jobs queued; try again later");
	cairn_reply_json(out, 202, json_pack("{s:s, s:b}", "job", job, "queued", 1));
}

/* What the snapshot's latest boot test on this host showed on its serial
 * console (kept by verify-boot --keep-console). */
static void get_console(const struct cairn_api *a, const char *repo, const char *snap,
			struct cairn_reply *out)
{
	if (!cairn_conf_repo(a->conf, repo))
		return cairn_reply_error(out, 404, "there is no repository %s", repo);
	if (strlen(snap) != 64 || strspn(snap, "0123456789abcdef") != 64)
		return cairn_reply_error(out, 400, "snapshot %s: give its full id", snap);
	char path[4200];
	snprintf(path, sizeof(path), "%s/verify/%s.console", a->conf->state_dir, snap);
	FILE *f = fopen(path, "re");
	if (!f)
		return cairn_reply_error(out, 404, "no boot test of %.12s has run on this host", snap);
	struct buf b = { 0 };
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < 4 * CAIRN_BOOT_CONSOLE_TAIL)
		if (buf_append(&b, chunk, got) < 0)
			break;
	fclose(f);
	if (buf_append(&b, "", 1) < 0) {
		buf_free(&b);
		return cairn_reply_error(out, 500, "out of memory");
	}
	out->status = 200;
	out->body = (char *)b.p;
	out->type = "text/plain; charset=utf-8";
}

/* ---- routing ---- */

/* The path's words after prefix, split at '/' into w (at most max);
 * their count, or -1 when there are more. */
static int split(char *path, char **w, int max)
{
	int n = 0;
	for (char *save = NULL, *s = strtok_r(path, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return -1;
		w[n++] = s;
	}
	return n;
}

static void route_get(const struct cairn_api *a, char **w, int n, struct cairn_reply *out)
{
	if (n == 1 && !strcmp(w[0], "status"))
		return get_status(a, out);
	if (n == 1 && !strcmp(w[0], "history"))
		return get_history(a, out);
	if (n == 1 && !strcmp(w[0], "peers"))
		return cairn_api_peers(a, out);
	if (n == 1 && !strcmp(w[0], "repositories"))
		return get_repositories(a, out);
	if (n == 3 && !strcmp(w[0], "repositories") && !strcmp(w[2], "snapshots"))
		return cairn_api_snapshots(a, w[1], out);
	if (n == 3 && !strcmp(w[0], "repositories") && !strcmp(w[2], "stats"))
		return cairn_api_stats(a, w[1], out);
	if (n == 5 && !strcmp(w[0], "repositories") && !strcmp(w[2], "snapshots") &&
	    !strcmp(w[4], "console"))
		return get_console(a, w[1], w[3], out);
	cairn_reply_error(out, 404, "no such endpoint (see docs/api.md)");
}

static void route_post(const struct cairn_api *a, char **w, int n, const char *body,
		       size_t len, struct cairn_reply *out)
{
	if (n == 3 && !strcmp(w[0], "jobs") && !strcmp(w[2], "run"))
		return post_run(a, w[1], out);
	if (n == 1 && !strcmp(w[0], "verify"))
		return cairn_api_verify(a, body, len, out);
	if (n == 5 && !strcmp(w[0], "repositories") && !strcmp(w[2], "snapshots") &&
	    (!strcmp(w[4], "protect") || !strcmp(w[4], "unprotect")))
		return cairn_api_protect(a, w[1], w[3], !strcmp(w[4], "protect"), out);
	cairn_reply_error(out, 404, "no such endpoint (see docs/api.md)");
}

void cairn_api_handle(const struct cairn_api *a, const char *method, const char *path,
		      const char *body, size_t len, struct cairn_reply *out)
{
	memset(out, 0, sizeof(*out));
	if (!strcmp(path, "/metrics")) {
		if (strcmp(method, "GET"))
			return cairn_reply_error(out, 405, "%s: use GET", path);
		return get_metrics(a, out);
	}
	static const char prefix[] = "/api/v1/";
	char copy[1024], *w[8];
	if (strncmp(path, prefix, sizeof(prefix) - 1) || strlen(path) >= sizeof(copy))
		return cairn_reply_error(out, 404, "no such endpoint (see docs/api.md)");
	snprintf(copy, sizeof(copy), "%s", path + sizeof(prefix) - 1);
	int n = split(copy, w, 8);
	if (n < 0)
		return cairn_reply_error(out, 404, "no such endpoint (see docs/api.md)");
	if (!strcmp(method, "GET"))
		return route_get(a, w, n, out);
	if (!strcmp(method, "POST"))
		return route_post(a, w, n, body, len, out);
	cairn_reply_error(out, 405, "%s: use GET or POST", method);
}
