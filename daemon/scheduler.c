/* The agent's scheduler (see scheduler.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "history.h"
#include "metrics.h"
#include "notify.h"
#include "scheduler.h"
#include "state.h"

static enum cairn_log_level level_of(int priority)
{
	return priority <= LOG_ERR ? CAIRN_LOG_ERROR
	       : priority == LOG_WARNING ? CAIRN_LOG_WARNING
	       : priority <= LOG_INFO ? CAIRN_LOG_INFO
				      : CAIRN_LOG_DEBUG;
}

/* Every line, the jobs' too, passes the configuration's log-level here, so
 * that a reload changes it at once. */
static void log_line(void *opaque, int priority, const char *line)
{
	const struct cairn_scheduler *s = opaque;
	if (s->live && priority <= LOG_INFO)
		cairn_live_progress(s->live, line);
	if (s->log && level_of(priority) <= s->conf->log_level)
		s->log(s->log_opaque, priority, line);
}

static void sched_log(const struct cairn_scheduler *s, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sched_log(const struct cairn_scheduler *s, int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line((void *)s, priority, line);
}

/* NULL with err set when the file cannot be read. */
static char *read_secret(const char *path, char *err, size_t errlen)
{
	char *s = NULL;
	return path && read_secret_file(path, &s, err, errlen) == 0 ? s : NULL;
}

/* Everything a job spec points to, owned here. */
struct job_inputs {
	struct cairn_job_spec spec;
	char *password;
	struct cairn_job_target targets[16];
	char *target_passwords[16];
};

static void free_inputs(struct job_inputs *in)
{
	if (in->password)
		explicit_bzero(in->password, strlen(in->password));
	free(in->password);
	for (size_t i = 0; i < 16; i++)
		free(in->target_passwords[i]);
}

/* A [repository]'s s3-credentials-file, sftp-*, connections and limit-* keys. */
static struct cairn_backend_opts backend_of(const struct cairn_conf_repo *r)
{
	return (struct cairn_backend_opts){ .connections = r->connections,
					    .limit_upload = r->limit_upload,
					    .limit_download = r->limit_download,
					    .credentials_file = r->s3_credentials_file,
					    .identity_file = r->sftp_identity,
					    .known_hosts_file = r->sftp_known_hosts,
					    .key_file = r->key_file };
}

static int build_spec(const struct cairn_scheduler *s, const struct cairn_conf_job *j,
		      struct job_inputs *in, char *err, size_t errlen)
{
	const struct cairn_conf *c = s->conf;
	memset(in, 0, sizeof(*in));
	const struct cairn_conf_repo *repo = cairn_conf_repo(c, j->repository);
	if (repo->password_file && !(in->password = read_secret(repo->password_file, err, errlen)))
		return -EACCES;
	if (j->replicate_to.n > 16)
		return set_err(err, errlen, -EINVAL, "job %s: at most 16 replication targets", j->name);
	for (size_t i = 0; i < j->replicate_to.n; i++) {
		const struct cairn_conf_repo *t = cairn_conf_repo(c, j->replicate_to.v[i]);
		if (t->password_file &&
		    !(in->target_passwords[i] = read_secret(t->password_file, err, errlen)))
			return -EACCES;
		in->targets[i] = (struct cairn_job_target){ .url = t->url,
							    .password = in->target_passwords[i],
							    .backend = backend_of(t),
							    .has_keep = t->has_keep,
							    .keep = t->keep };
	}
	in->spec = (struct cairn_job_spec){
		.name = j->name, .repo_url = repo->url, .password = in->password,
		.backend = backend_of(repo),
		.uri = c->connect, .domains = (const char *const *)j->domains.v,
		.ndomains = j->domains.n, .all = j->all,
		.exclude = (const char *const *)j->exclude.v, .nexclude = j->exclude.n,
		.quiesce = j->quiesce, .parallel = j->parallel, .scratch_dir = j->scratch_dir,
		.has_keep = j->has_keep, .keep = j->keep, .guard = j->guard, .targets = in->targets,
		.ntargets = j->replicate_to.n, .pre_hook = j->pre_hook, .post_hook = j->post_hook,
		.run_dir = c->run_dir, .cancel = s->stop, .log = log_line,
		.log_opaque = (void *)s };
	return 0;
}

static bool any_anomaly(const struct cairn_run_record *runs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (runs[i].anomaly)
			return true;
	return false;
}

static json_t *summary_json(const struct cairn_conf_job *j, const struct cairn_run_record *runs,
			    size_t n, bool ok, const char *job_error)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:b, s:s, s:s, s:I, s:I, s:f, s:b}", "vm",
						   runs[i].vm, "ok", runs[i].ok, "message",
						   runs[i].message, "snapshot", runs[i].snapshot,
						   "bytes_read", (json_int_t)runs[i].bytes_read,
						   "bytes_stored", (json_int_t)runs[i].bytes_stored,
						   "seconds",
						   (double)(runs[i].end_ns - runs[i].start_ns) / 1e9,
						   "anomaly", runs[i].anomaly));
	return json_pack("{s:s, s:s, s:b, s:b, s:s?, s:o}", "job", j->name, "host", host, "ok", ok,
			 "anomaly", any_anomaly(runs, n), "error", job_error, "runs", a);
}

static void notify(const struct cairn_scheduler *s, const struct cairn_conf_job *j,
		   const struct cairn_run_record *runs, size_t n, bool ok, const char *job_error)
{
	/* a suspicious backup succeeded, but it is what the admin must hear */
	if ((ok && !j->notify_success && !any_anomaly(runs, n)) ||
	    (!j->webhook && !j->email_command))
		return;
	json_t *summary = summary_json(j, runs, n, ok, job_error);
	_cleanup_free_ char *text = json_dumps(summary, JSON_INDENT(2));
	json_decref(summary);
	char err[512];
	if (text && j->webhook && cairn_notify_webhook(j->webhook, text, NULL, err, sizeof(err)) < 0)
		sched_log(s, LOG_ERR, "%s", err);
	if (text && j->email_command && cairn_notify_command(j->email_command, text, err, sizeof(err)) < 0)
		sched_log(s, LOG_ERR, "%s", err);
}

static void write_metrics(const struct cairn_scheduler *s)
{
	const struct cairn_conf *c = s->conf;
	if (!c->metrics_dir)
		return;
	struct cairn_run_record *v;
	size_t n;
	char err[512];
	if (cairn_state_load_runs(c->state_dir, &v, &n, err, sizeof(err)) < 0 ||
	    cairn_metrics_write(c->metrics_dir, v, n, err, sizeof(err)) < 0)
		sched_log(s, LOG_ERR, "%s", err);
	else
		free(v);
}

int64_t cairn_scheduler_next_run(const struct cairn_conf_job *j, int64_t after_s)
{
	int64_t next;
	return cairn_calendar_next(&j->calendar, after_s, &next) == 0 ? next : 0;
}

bool cairn_scheduler_run_job(const struct cairn_scheduler *s, const struct cairn_conf_job *j)
{
	const struct cairn_conf *c = s->conf;
	struct job_inputs in;
	struct cairn_run_record *runs = NULL;
	size_t n = 0;
	char err[512] = "";
	int64_t start = now_ns();
	if (s->live)
		cairn_live_begin(s->live, j->name);
	int rc = build_spec(s, j, &in, err, sizeof(err));
	if (rc == 0)
		rc = cairn_job_run(&in.spec, &runs, &n, err, sizeof(err));
	free_inputs(&in);
	char serr[512];
	if (cairn_state_mark_job(c->state_dir, j->name, start, serr, sizeof(serr)) < 0)
		sched_log(s, LOG_ERR, "%s", serr);
	bool ok = rc == 0;
	int64_t next = cairn_scheduler_next_run(j, (int64_t)time(NULL));
	for (size_t i = 0; i < n; i++) {
		ok &= runs[i].ok;
		runs[i].next_run_ns = next * 1000000000LL;
		if (cairn_state_record_run(c->state_dir, &runs[i], serr, sizeof(serr)) < 0 ||
		    cairn_history_append(c->state_dir, &runs[i], serr, sizeof(serr)) < 0)
			sched_log(s, LOG_ERR, "%s", serr);
	}
	if (rc < 0) {
		sched_log(s, LOG_ERR, "job %s: %s", j->name, err);
		/* a job that could not start is a run record too: status shows it */
		struct cairn_run_record r = { .start_ns = start, .end_ns = now_ns(),
					      .next_run_ns = next * 1000000000LL };
		snprintf(r.job, sizeof(r.job), "%s", j->name);
		snprintf(r.vm, sizeof(r.vm), "*");
		snprintf(r.message, sizeof(r.message), "%s", err);
		cairn_state_record_run(c->state_dir, &r, serr, sizeof(serr));
		cairn_history_append(c->state_dir, &r, serr, sizeof(serr));
	}
	if (s->live)
		cairn_live_end(s->live);
	write_metrics(s);
	notify(s, j, runs, n, ok, rc < 0 ? err : NULL);
	free(runs);
	return ok;
}

static void run_gc(const struct cairn_scheduler *s, const struct cairn_conf_job *j)
{
	const struct cairn_conf *c = s->conf;
	const struct cairn_conf_repo *repo = cairn_conf_repo(c, j->repository);
	char err[512] = "";
	_cleanup_free_ char *pw = repo->password_file ? read_secret(repo->password_file, err, sizeof(err)) : NULL;
	struct cairn_repo *r = NULL;
	struct cairn_backend_opts bo = backend_of(repo);
	int rc = cairn_repo_open_with(repo->url, pw, &bo, &r, err, sizeof(err));
	if (rc == 0 && (rc = cairn_repo_lock_gc(r)) == 0) {
		struct cairn_gc_opts o = { .max_unused_pct = 5 };
		struct cairn_gc_result res;
		if ((rc = cairn_gc(r, &o, &res)) == 0)
			sched_log(s, LOG_INFO, "job %s: gc deleted %zu packs", j->name,
				res.packs_deleted);
	}
	if (rc < 0)
		sched_log(s, LOG_ERR, "job %s: gc: %s", j->name, r ? cairn_repo_error(r) : err);
	if (r)
		cairn_repo_close(r);
}

struct schedule {
	int64_t job_at, gc_at; /* Unix seconds; 0 = none */
};

static uint64_t random_u64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = (uint64_t)time(NULL);
	return v;
}

static void plan(const struct cairn_scheduler *s, struct schedule *sched)
{
	const struct cairn_conf *c = s->conf;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < c->njobs; i++) {
		const struct cairn_conf_job *j = &c->jobs[i];
		int64_t last_ns = 0, at, missed;
		char err[512], when[40];
		if (cairn_state_job_last(c->state_dir, j->name, &last_ns, err, sizeof(err)) < 0)
			sched_log(s, LOG_ERR, "%s", err);
		sched[i].job_at = 0;
		if (cairn_calendar_plan(&j->calendar, last_ns / 1000000000LL, now,
					j->randomized_delay_s, random_u64(), &at, &missed) == 0) {
			sched[i].job_at = at;
			format_time_utc(at * 1000000000LL, when, sizeof(when));
			if (missed) {
				char was[40];
				format_time_utc(missed * 1000000000LL, was, sizeof(was));
				sched_log(s, LOG_NOTICE, "job %s: missed its run at %s, running at %s", j->name,
					  was, when);
			} else {
				sched_log(s, LOG_DEBUG, "job %s: next run at %s", j->name, when);
			}
		}
		int64_t g;
		sched[i].gc_at = j->gc_schedule && cairn_calendar_next(&j->gc_calendar, now, &g) == 0 ? g : 0;
	}
}

bool cairn_scheduler_run_all(const struct cairn_scheduler *s)
{
	bool ok = true;
	for (size_t i = 0; i < s->conf->njobs && !*s->stop; i++)
		ok &= cairn_scheduler_run_job(s, &s->conf->jobs[i]);
	return ok;
}

/* A bad configuration is refused, the running one kept. */
static void reload_conf(struct cairn_scheduler *s, struct schedule *sched)
{
	struct cairn_conf fresh;
	char err[512] = "";
	if (cairn_conf_load(s->path, &fresh, err, sizeof(err)) < 0) {
		sched_log(s, LOG_ERR, "reload refused, old configuration kept: %s", err);
		return;
	}
	cairn_conf_free(s->conf);
	*s->conf = fresh;
	memset(sched, 0, CAIRN_SCHEDULER_MAX_JOBS * sizeof(*sched));
	plan(s, sched);
	sched_log(s, LOG_INFO, "configuration reloaded (%zu jobs)", s->conf->njobs);
}

/* Runs job i and its gc when they are due, and plans their next runs. */
static void run_due(const struct cairn_scheduler *s, size_t i, struct schedule *at, int64_t now)
{
	const struct cairn_conf_job *j = &s->conf->jobs[i];
	if (at->job_at && at->job_at <= now) {
		cairn_scheduler_run_job(s, j);
		int64_t n = cairn_scheduler_next_run(j, (int64_t)time(NULL));
		at->job_at = n ? n + cairn_calendar_delay(j->randomized_delay_s, random_u64()) : 0;
	}
	if (at->gc_at && at->gc_at <= now && !*s->stop) {
		run_gc(s, j);
		int64_t g;
		at->gc_at = cairn_calendar_next(&j->gc_calendar, (int64_t)time(NULL), &g) == 0 ? g : 0;
	}
}

/* Jobs asked for through s->live run now, one after the other; a name
 * the configuration no longer has (a reload since) is dropped. */
static void run_requested(const struct cairn_scheduler *s)
{
	char name[128];
	while (s->live && !*s->stop && cairn_live_next_request(s->live, name, sizeof(name))) {
		const struct cairn_conf_job *j = cairn_conf_job(s->conf, name);
		if (!j) {
			sched_log(s, LOG_WARNING, "job %s was asked for but is no longer configured", name);
			continue;
		}
		sched_log(s, LOG_NOTICE, "job %s: running now, as asked", name);
		cairn_scheduler_run_job(s, j);
	}
}

/* Sleeps until the next due job or gc a second at a time, so that the
 * flags are seen at once. */
int cairn_scheduler_loop(struct cairn_scheduler *s, char *err, size_t errlen)
{
	struct schedule sched[CAIRN_SCHEDULER_MAX_JOBS] = { 0 };
	if (s->conf->njobs > CAIRN_SCHEDULER_MAX_JOBS)
		return set_err(err, errlen, -E2BIG, "at most %d jobs", CAIRN_SCHEDULER_MAX_JOBS);
	plan(s, sched);
	sched_log(s, LOG_INFO, "running %zu job(s) from %s", s->conf->njobs, s->path);
	while (!*s->stop) {
		if (s->reload && *s->reload) {
			*s->reload = 0;
			reload_conf(s, sched);
		}
		int64_t now = (int64_t)time(NULL);
		for (size_t i = 0; i < s->conf->njobs && !*s->stop && !(s->reload && *s->reload); i++)
			run_due(s, i, &sched[i], now);
		run_requested(s);
		sleep(1);
	}
	sched_log(s, LOG_INFO, "stopped");
	return 0;
}
