/* cairn status [--state-dir DIR] [--json]: the agent daemon's last run of
 * every job and VM, from its state directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "daemon/state.h"

#define USAGE "status [--state-dir DIR] [--json]"
#define DEFAULT_STATE_DIR "/var/lib/cairn/agent"

static int status_option(void *ctx, int opt, const char *arg)
{
	if (opt != 's')
		return cli_usage("status: unexpected option");
	*(const char **)ctx = arg;
	return 0;
}

static void when(int64_t ns, char *out, size_t len)
{
	if (ns)
		format_time_utc(ns, out, len);
	else
		snprintf(out, len, "-");
}

static json_t *run_json(const struct cairn_run_record *r)
{
	char start[40], end[40], next[40];
	when(r->start_ns, start, sizeof(start));
	when(r->end_ns, end, sizeof(end));
	when(r->next_run_ns, next, sizeof(next));
	return json_pack("{s:s, s:s, s:s, s:s, s:f, s:b, s:s, s:s, s:I, s:I, s:s, s:b}", "job", r->job,
			 "vm", r->vm, "start", start, "end", end, "seconds",
			 (double)(r->end_ns - r->start_ns) / 1e9, "ok", r->ok, "message",
			 r->message, "snapshot", r->snapshot, "bytes_read",
			 (json_int_t)r->bytes_read, "bytes_stored", (json_int_t)r->bytes_stored,
			 "next_run", next, "anomaly", r->anomaly);
}

static void print_table(const struct cairn_run_record *v, size_t n)
{
	printf("%-16s  %-20s  %-20s  %-6s  %8s  %10s  %10s  %-20s  %s\n", "JOB", "VM", "LAST RUN",
	       "RESULT", "TOOK", "READ", "STORED", "NEXT RUN", "MESSAGE");
	for (size_t i = 0; i < n; i++) {
		char end[40], next[40], rd[32], st[32];
		when(v[i].end_ns, end, sizeof(end));
		when(v[i].next_run_ns, next, sizeof(next));
		format_bytes(v[i].bytes_read, rd, sizeof(rd));
		format_bytes(v[i].bytes_stored, st, sizeof(st));
		printf("%-16s  %-20s  %-20s  %-6s  %7.1fs  %10s  %10s  %-20s  %s\n", v[i].job,
		       v[i].vm, end, !v[i].ok ? "FAILED" : v[i].anomaly ? "ALARM" : "ok",
		       (double)(v[i].end_ns - v[i].start_ns) / 1e9, rd, st, next, v[i].message);
	}
}

static int status_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "state-dir", required_argument, NULL, 's' },
		{ 0 },
	};
	struct cli c = { 0 };
	const char *dir = DEFAULT_STATE_DIR;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", status_option, &dir, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs != 0)
		return cli_usage("usage: cairn %s", USAGE);
	struct cairn_run_record *v = NULL;
	size_t n = 0;
	char err[512] = "";
	if ((rc = cairn_state_load_runs(dir, &v, &n, err, sizeof(err))) < 0)
		return cli_fail(rc, err);
	bool failed = false;
	for (size_t i = 0; i < n; i++)
		failed |= !v[i].ok;
	if (c.json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, run_json(&v[i]));
		json_print(a);
	} else if (!n) {
		printf("no runs recorded in %s\n", dir);
	} else if (!c.quiet) {
		print_table(v, n);
	}
	free(v);
	/* scripts and monitoring can ask "did the last runs all succeed?" */
	return failed ? -EIO : 0;
}

int cmd_status(int argc, char **argv)
{
	return cli_exit(status_main(argc, argv));
}
