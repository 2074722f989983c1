/* cairn agent [--config F] [--foreground] [--once | --run-job NAME | --check-config]
 *
 * Starts the scheduling daemon (daemon/scheduler.h), which runs every job
 * of the configuration at its schedule (catching up a run missed while the
 * host was down), never two runs of a job at once (jobs run one after the
 * other), records each run (state directory, `cairn status`), writes
 * Prometheus metrics, notifies on failure. SIGTERM/SIGINT end a running
 * backup cleanly and stop; SIGHUP reloads the configuration (a bad one is
 * refused, the old one kept). With an [http] section it also serves the
 * console (daemon/http.h) while it runs as a daemon. This file parses,
 * starts it and prints. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon/http.h"
#include "daemon/scheduler.h"

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
	case 'c': a->config = arg; return 0;
	case 'f': a->foreground = true; return 0;
	case 'o': a->once = true; return 0;
	case 'r': a->run_job = arg; return 0;
	case 'k': a->check = true; return 0;
	}
	return cli_usage("agent: unexpected option");
}

/* The agent's log is its stderr. Under systemd (JOURNAL_STREAM set) each
 * line starts with its syslog priority, "<3>", which journald strips and
 * records as the line's priority. */
static void log_line(void *opaque, int priority, const char *line)
{
	const bool *journal = opaque;
	if (*journal)
		fprintf(stderr, "<%d>cairn-agent: %s\n", priority, line);
	else
		fprintf(stderr, "cairn-agent: %s\n", line);
}

static int check_config(const struct cli *cl, const struct cairn_conf *c)
{
	if (cl->quiet)
		return 0;
	printf("%s: %zu repositories, %zu jobs\n", c->path, c->nrepos, c->njobs);
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < c->njobs; i++) {
		char when[40] = "never";
		int64_t n = cairn_scheduler_next_run(&c->jobs[i], now);
		if (n)
			format_time_utc(n * 1000000000LL, when, sizeof(when));
		printf("  job %s: next run %s\n", c->jobs[i].name, when);
	}
	return 0;
}

static int load(const char *path, struct cairn_conf *c)
{
	char err[512] = "";
	int rc = cairn_conf_load(path, c, err, sizeof(err));
	return rc < 0 ? cli_fail(rc, err) : 0;
}

/* The console, when configured; it starts after daemon() (threads do not
 * survive a fork) and a failure to start it stops the agent, so that a
 * console the admin asked for is never silently missing. */
static int start_console(struct cairn_scheduler *s, struct cairn_http **out)
{
	*out = NULL;
	if (!s->conf->http.on)
		return 0;
	char err[512] = "", line[600];
	signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply */
	int rc = cairn_http_start(s->path, s->live, out, err, sizeof(err));
	if (rc < 0)
		return cli_fail(rc, err);
	snprintf(line, sizeof(line), "console listening on %s", cairn_http_url(*out));
	s->log(s->log_opaque, LOG_NOTICE, line);
	return 0;
}

/* In the background (unless --foreground) until SIGTERM/SIGINT; SIGHUP
 * reloads the configuration. */
static int serve_forever(struct cairn_scheduler *s)
{
	signal(SIGHUP, on_hup);
	struct cairn_live live;
	cairn_live_init(&live);
	s->live = &live;
	struct cairn_http *http;
	int rc = start_console(s, &http);
	char err[512] = "";
	if (rc == 0 && (rc = cairn_scheduler_loop(s, err, sizeof(err))) < 0)
		rc = cli_fail(rc, err);
	cairn_http_stop(http);
	/* boot tests started from the console end (their VMs removed) first */
	for (bool stop = true; cairn_live_verify_running(&live, stop); stop = false)
		usleep(200000);
	s->live = NULL;
	cairn_live_destroy(&live);
	return rc;
}

static int run(const struct cli *cl, const struct agent_args *a)
{
	const char *path = a->config ? a->config : CAIRN_CONF_DEFAULT_PATH;
	struct cairn_conf c;
	int rc = load(path, &c);
	if (rc)
		return rc;
	cli_catch_signals();
	bool journal = getenv("JOURNAL_STREAM") != NULL;
	struct cairn_scheduler s = { .conf = &c, .path = path, .stop = &cli_interrupted,
				     .reload = &reload, .log = log_line, .log_opaque = &journal };
	if (a->check)
		rc = check_config(cl, &c);
	else if (a->run_job) {
		const struct cairn_conf_job *j = cairn_conf_job(&c, a->run_job);
		rc = !j ? cli_error("%s has no [job %s]", path, a->run_job)
			: cairn_scheduler_run_job(&s, j) ? 0
							 : -EIO;
	} else if (a->once) {
		rc = cairn_scheduler_run_all(&s) ? 0 : -EIO;
	} else if (!a->foreground && daemon(0, 1) < 0) {
		rc = cli_error("cannot detach: %s", strerror(errno));
	} else {
		rc = serve_forever(&s);
	}
	if (cli_interrupted && rc == 0 && (a->once || a->run_job))
		rc = -EINTR;
	cairn_conf_free(&c);
	return rc;
}

static int agent_main(int argc, char **argv)
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
	if (rc)
		return rc;
	if (nargs != 0 || (a.once + a.check + !!a.run_job) > 1)
		return cli_usage("usage: cairn %s", USAGE);
	return run(&c, &a);
}

int cmd_agent(int argc, char **argv)
{
	return cli_exit(agent_main(argc, argv));
}
