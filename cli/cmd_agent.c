/* cairn agent [--config F] [--foreground] [--once | --run-job NAME | --check-config]
 *
 * The scheduling daemon: runs every job of the configuration at its
 * schedule (catching up a run missed while the host was down), never two
 * runs of a job at once (jobs run one after the other), records each run
 * (state directory, `cairn status`), writes Prometheus metrics, notifies on
 * failure. SIGTERM/SIGINT end a running backup cleanly and stop; SIGHUP
 * reloads the configuration (a bad one is refused, the old one kept). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon/config.h"
#include "daemon/job.h"
#include "daemon/metrics.h"
#include "daemon/notify.h"
#include "daemon/state.h"

#define USAGE "agent [--config F] [--foreground] [--once | --run-job NAME | --check-config]"

struct agent_args {
	const char *config, *run_job;
	bool foreground, once, check;
};

static volatile sig_atomic_t reload;

static void on_hup(int sig)
{
	(void)sig;
	reload = 1;
}

static int agent_option(void *ctx, int opt, const char *arg)
{
	struct agent_args *a = ctx;
	switch (opt) {
	case 'c': a->config = arg; return -1;
	case 'f': a->foreground = true; return -1;
	case 'o': a->once = true; return -1;
	case 'r': a->run_job = arg; return -1;
	case 'k': a->check = true; return -1;
	}
	return cli_usage("agent: unexpected option");
}

/* The agent's log is its stderr, which the process has one of: the level
 * (log-level, reloaded with the configuration) is process state. Under
 * systemd (JOURNAL_STREAM set) each line starts with its syslog priority,
 * "<3>", which journald strips and records as the line's priority. */
static struct {
	enum cairn_log_level level;
	bool journal;
} agent_log_state = { CAIRN_LOG_INFO, false };

static void agent_log_setup(enum cairn_log_level level)
{
	agent_log_state.level = level;
	agent_log_state.journal = getenv("JOURNAL_STREAM") != NULL;
}

static enum cairn_log_level level_of(int priority)
{
	return priority <= LOG_ERR ? CAIRN_LOG_ERROR
	       : priority == LOG_WARNING ? CAIRN_LOG_WARNING
	       : priority <= LOG_INFO ? CAIRN_LOG_INFO
				      : CAIRN_LOG_DEBUG;
}

static void log_line(void *opaque, int priority, const char *line)
{
	(void)opaque;
	if (level_of(priority) > agent_log_state.level)
		return;
	if (agent_log_state.journal)
		fprintf(stderr, "<%d>cairn-agent: %s\n", priority, line);
	else
		fprintf(stderr, "cairn-agent: %s\n", line);
}

static void agent_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void agent_log(int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_line(NULL, priority, line);
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
					    .known_hosts_file = r->sftp_known_hosts };
}

static int build_spec(const struct cairn_conf *c, const struct cairn_conf_job *j,
		      struct job_inputs *in, char *err, size_t errlen)
{
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
		.has_keep = j->has_keep, .keep = j->keep, .targets = in->targets,
		.ntargets = j->replicate_to.n, .pre_hook = j->pre_hook, .post_hook = j->post_hook,
		.run_dir = c->run_dir, .cancel = &cli_interrupted, .log = log_line };
	return 0;
}

static json_t *summary_json(const struct cairn_conf_job *j, const struct cairn_run_record *runs,
			    size_t n, bool ok, const char *job_error)
{
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:b, s:s, s:s, s:I, s:I, s:f}", "vm",
						   runs[i].vm, "ok", runs[i].ok, "message",
						   runs[i].message, "snapshot", runs[i].snapshot,
						   "bytes_read", (json_int_t)runs[i].bytes_read,
						   "bytes_stored", (json_int_t)runs[i].bytes_stored,
						   "seconds",
						   (double)(runs[i].end_ns - runs[i].start_ns) / 1e9));
	return json_pack("{s:s, s:s, s:b, s:s?, s:o}", "job", j->name, "host", host, "ok", ok,
			 "error", job_error, "runs", a);
}

static void notify(const struct cairn_conf_job *j, const struct cairn_run_record *runs,
		   size_t n, bool ok, const char *job_error)
{
	if ((ok && !j->notify_success) || (!j->webhook && !j->email_command))
		return;
	json_t *s = summary_json(j, runs, n, ok, job_error);
	_cleanup_free_ char *text = json_dumps(s, JSON_INDENT(2));
	json_decref(s);
	char err[512];
	if (text && j->webhook && cairn_notify_webhook(j->webhook, text, NULL, err, sizeof(err)) < 0)
		agent_log(LOG_ERR, "%s", err);
	if (text && j->email_command && cairn_notify_command(j->email_command, text, err, sizeof(err)) < 0)
		agent_log(LOG_ERR, "%s", err);
}

static void write_metrics(const struct cairn_conf *c)
{
	if (!c->metrics_dir)
		return;
	struct cairn_run_record *v;
	size_t n;
	char err[512];
	if (cairn_state_load_runs(c->state_dir, &v, &n, err, sizeof(err)) < 0 ||
	    cairn_metrics_write(c->metrics_dir, v, n, err, sizeof(err)) < 0)
		agent_log(LOG_ERR, "%s", err);
	else
		free(v);
}

static int64_t next_run(const struct cairn_conf_job *j, int64_t after_s)
{
	int64_t next;
	return cairn_calendar_next(&j->calendar, after_s, &next) == 0 ? next : 0;
}

/* Runs one job now; true when every VM succeeded. */
static bool run_job(const struct cairn_conf *c, const struct cairn_conf_job *j)
{
	struct job_inputs in;
	struct cairn_run_record *runs = NULL;
	size_t n = 0;
	char err[512] = "";
	int64_t start = now_ns();
	int rc = build_spec(c, j, &in, err, sizeof(err));
	if (rc == 0)
		rc = cairn_job_run(&in.spec, &runs, &n, err, sizeof(err));
	free_inputs(&in);
	char serr[512];
	if (cairn_state_mark_job(c->state_dir, j->name, start, serr, sizeof(serr)) < 0)
		agent_log(LOG_ERR, "%s", serr);
	bool ok = rc == 0;
	int64_t next = next_run(j, (int64_t)time(NULL));
	for (size_t i = 0; i < n; i++) {
		ok &= runs[i].ok;
		runs[i].next_run_ns = next * 1000000000LL;
		if (cairn_state_record_run(c->state_dir, &runs[i], serr, sizeof(serr)) < 0)
			agent_log(LOG_ERR, "%s", serr);
	}
	if (rc < 0) {
		agent_log(LOG_ERR, "job %s: %s", j->name, err);
		/* a job that could not start is a run record too: status shows it */
		struct cairn_run_record r = { .start_ns = start, .end_ns = now_ns(),
					      .next_run_ns = next * 1000000000LL };
		snprintf(r.job, sizeof(r.job), "%s", j->name);
		snprintf(r.vm, sizeof(r.vm), "*");
		snprintf(r.message, sizeof(r.message), "%s", err);
		cairn_state_record_run(c->state_dir, &r, serr, sizeof(serr));
	}
	write_metrics(c);
	notify(j, runs, n, ok, rc < 0 ? err : NULL);
	free(runs);
	return ok;
}

static void run_gc(const struct cairn_conf *c, const struct cairn_conf_job *j)
{
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
			agent_log(LOG_INFO, "job %s: gc deleted %zu packs", j->name,
				res.packs_deleted);
	}
	if (rc < 0)
		agent_log(LOG_ERR, "job %s: gc: %s", j->name, r ? cairn_repo_error(r) : err);
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

static void plan(const struct cairn_conf *c, struct schedule *s)
{
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < c->njobs; i++) {
		const struct cairn_conf_job *j = &c->jobs[i];
		int64_t last_ns = 0, at, missed;
		char err[512], when[40];
		if (cairn_state_job_last(c->state_dir, j->name, &last_ns, err, sizeof(err)) < 0)
			agent_log(LOG_ERR, "%s", err);
		s[i].job_at = 0;
		if (cairn_calendar_plan(&j->calendar, last_ns / 1000000000LL, now,
					j->randomized_delay_s, random_u64(), &at, &missed) == 0) {
			s[i].job_at = at;
			format_time_utc(at * 1000000000LL, when, sizeof(when));
			if (missed) {
				char was[40];
				format_time_utc(missed * 1000000000LL, was, sizeof(was));
				agent_log(LOG_NOTICE, "job %s: missed its run at %s, running at %s", j->name,
					  was, when);
			} else {
				agent_log(LOG_DEBUG, "job %s: next run at %s", j->name, when);
			}
		}
		int64_t g;
		s[i].gc_at = j->gc_schedule && cairn_calendar_next(&j->gc_calendar, now, &g) == 0 ? g : 0;
	}
}

static int check_config(const struct cli *cl, const struct cairn_conf *c)
{
	if (cl->quiet)
		return EXIT_OK;
	printf("%s: %zu repositories, %zu jobs\n", c->path, c->nrepos, c->njobs);
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < c->njobs; i++) {
		char when[40] = "never";
		int64_t n = next_run(&c->jobs[i], now);
		if (n)
			format_time_utc(n * 1000000000LL, when, sizeof(when));
		printf("  job %s: next run %s\n", c->jobs[i].name, when);
	}
	return EXIT_OK;
}

static int load(const char *path, struct cairn_conf *c)
{
	char err[512] = "";
	int rc = cairn_conf_load(path, c, err, sizeof(err));
	return rc < 0 ? cli_fail(rc, err) : -1;
}

/* The daemon loop: sleeps until the next due job or gc, a second at a time
 * so that signals are seen at once. */
static int serve_forever(struct cairn_conf *c, const char *path)
{
	struct schedule s[256] = { 0 };
	if (c->njobs > 256)
		return cli_error("at most 256 jobs");
	signal(SIGHUP, on_hup);
	plan(c, s);
	agent_log(LOG_INFO, "running %zu job(s) from %s", c->njobs, path);
	while (!cli_interrupted) {
		if (reload) {
			reload = 0;
			struct cairn_conf fresh;
			char err[512] = "";
			if (cairn_conf_load(path, &fresh, err, sizeof(err)) < 0) {
				agent_log(LOG_ERR, "reload refused, old configuration kept: %s", err);
			} else {
				cairn_conf_free(c);
				*c = fresh;
				memset(s, 0, sizeof(s));
				plan(c, s);
				agent_log_setup(c->log_level);
				agent_log(LOG_INFO, "configuration reloaded (%zu jobs)", c->njobs);
			}
		}
		int64_t now = (int64_t)time(NULL);
		for (size_t i = 0; i < c->njobs && !cli_interrupted && !reload; i++) {
			if (s[i].job_at && s[i].job_at <= now) {
				run_job(c, &c->jobs[i]);
				int64_t n = next_run(&c->jobs[i], (int64_t)time(NULL));
				s[i].job_at = n ? n + cairn_calendar_delay(c->jobs[i].randomized_delay_s,
									   random_u64())
						: 0;
			}
			if (s[i].gc_at && s[i].gc_at <= now && !cli_interrupted) {
				run_gc(c, &c->jobs[i]);
				int64_t g;
				s[i].gc_at = cairn_calendar_next(&c->jobs[i].gc_calendar, (int64_t)time(NULL), &g) == 0 ? g : 0;
			}
		}
		sleep(1);
	}
	agent_log(LOG_INFO, "stopped");
	return EXIT_OK;
}

static int run(const struct cli *cl, const struct agent_args *a)
{
	const char *path = a->config ? a->config : CAIRN_CONF_DEFAULT_PATH;
	struct cairn_conf c;
	int rc = load(path, &c);
	if (rc >= 0)
		return rc;
	cli_catch_signals();
	agent_log_setup(c.log_level);
	if (a->check)
		rc = check_config(cl, &c);
	else if (a->run_job) {
		const struct cairn_conf_job *j = cairn_conf_job(&c, a->run_job);
		rc = !j ? cli_error("%s has no [job %s]", path, a->run_job)
			: run_job(&c, j) ? EXIT_OK
					 : EXIT_ERROR;
	} else if (a->once) {
		bool ok = true;
		for (size_t i = 0; i < c.njobs && !cli_interrupted; i++)
			ok &= run_job(&c, &c.jobs[i]);
		rc = ok ? EXIT_OK : EXIT_ERROR;
	} else {
		if (!a->foreground && daemon(0, 1) < 0)
			rc = cli_error("cannot detach: %s", strerror(errno));
		else
			rc = serve_forever(&c, path);
	}
	if (cli_interrupted && rc == EXIT_OK && (a->once || a->run_job))
		rc = EXIT_INTERRUPTED;
	cairn_conf_free(&c);
	return rc;
}

int cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "once", no_argument, NULL, 'o' },
		{ "run-job", required_argument, NULL, 'r' },
		{ "check-config", no_argument, NULL, 'k' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct agent_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", agent_option, &a, USAGE, &nargs);
	if (rc >= 0)
		return rc;
	if (nargs != 0 || (a.once + a.check + !!a.run_job) > 1)
		return cli_usage("usage: cairn %s", USAGE);
	return run(&c, &a);
}
