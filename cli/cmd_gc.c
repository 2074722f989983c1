/* cairn gc REPO [--max-unused PERCENT] [--dry-run] [--json] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

#define USAGE "gc REPO [--max-unused PERCENT] [--dry-run] [--json]"
#define DEFAULT_MAX_UNUSED 5

static int gc_option(void *ctx, int opt, const char *arg)
{
	struct cairn_gc_opts *o = ctx;
	char *end;
	long v;
	switch (opt) {
	case 'd': o->dry_run = true; return 0;
	case 'u':
		v = strtol(arg, &end, 10);
		if (end == arg || (*end && strcmp(end, "%")) || v < 0 || v > 100)
			return cli_usage("--max-unused %s: give a percentage 0..100", arg);
		o->max_unused_pct = (unsigned)v;
		return 0;
	}
	return cli_usage("gc: unexpected option");
}

static void print_immutable(const struct cairn_gc_result *r)
{
	char until[40], floor[40];
	format_time_utc(r->locked_until * 1000000000LL, until, sizeof(until));
	format_time_utc(r->retention_floor * 1000000000LL, floor, sizeof(floor));
	if (r->manifests_removed)
		printf("removed %zu forgotten snapshot manifests whose lock had ended\n",
		       r->manifests_removed);
	if (r->packs_locked || r->manifests_locked)
		printf("kept %zu condemned packs and %zu forgotten manifests locked by S3 Object "
		       "Lock%s%s; a later gc deletes them\n",
		       r->packs_locked, r->manifests_locked, r->locked_until ? " until " : "",
		       r->locked_until ? until : "");
	if (r->retention_extended)
		printf("extended the retention of %zu objects to %s\n", r->retention_extended,
		       floor);
	else if (r->retention_floor)
		printf("every object in use is locked until at least %s\n", floor);
}

/* CAIRN_TEST_NOW (Unix seconds or RFC 3339 UTC) shifts gc's idea of now,
 * so tests can reach the end of a retention period; never set it in
 * production. */
static int test_now(int64_t *out)
{
	const char *v = getenv("CAIRN_TEST_NOW");
	*out = 0;
	if (!v || !*v)
		return 0;
	char *end;
	long long n = strtoll(v, &end, 10);
	struct tm tm = { 0 };
	if (end != v && !*end && n > 0) {
		*out = n;
		return 0;
	}
	end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return cli_usage("CAIRN_TEST_NOW=%s: give Unix seconds or YYYY-MM-DDTHH:MM:SSZ", v);
	*out = (int64_t)timegm(&tm);
	return 0;
}

static void print_text(const struct cairn_gc_opts *o, const struct cairn_gc_result *r)
{
	char total[32], live[32], unused[32], repacked[32], freed[32];
	format_bytes(r->bytes, total, sizeof(total));
	format_bytes(r->live_bytes, live, sizeof(live));
	format_bytes(r->unused_bytes, unused, sizeof(unused));
	format_bytes(r->repacked_bytes, repacked, sizeof(repacked));
	format_bytes(r->bytes_freed, freed, sizeof(freed));
	printf("%zu snapshots; %zu packs hold %s, %s of it in use\n", r->snapshots, r->packs,
	       total, live);
	printf("%s: %zu packs unused, %zu to repack (%s to copy), %zu unindexed; %s reclaimable\n",
	       o->dry_run ? "would condemn" : "condemned", r->packs_unused, r->packs_repacked,
	       repacked, r->packs_orphaned, unused);
	if (o->dry_run)
		return;
	printf("deleted %zu packs (%s freed)", r->packs_deleted, freed);
	if (r->packs_kept)
		printf(", kept %zu that a backup reused meanwhile", r->packs_kept);
	if (r->lists_waiting)
		printf("; %zu condemned lists wait for backups that were running, next gc "
		       "deletes them",
		       r->lists_waiting);
	if (r->temps_removed)
		printf("; removed %zu temporary objects left by crashed writers", r->temps_removed);
	printf("\n");
	print_immutable(r);
}

static int gc_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "max-unused", required_argument, NULL, 'u' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct cairn_gc_opts o = { .max_unused_pct = DEFAULT_MAX_UNUSED };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", gc_option, &o, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", USAGE);
	if ((rc = test_now(&o.now_s)) != 0)
		return rc;
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[1], &r)) < 0 || (rc = cli_need_full(r)) < 0)
		return rc;
	if ((rc = cairn_repo_lock_gc(r)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	struct cairn_gc_result res;
	cli_catch_signals();
	if ((rc = cairn_gc(r, &o, &res)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	cli_print_warnings(r);
	if (c.json) {
		json_t *j = json_pack(
			"{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"dry_run", o.dry_run, "snapshots", (json_int_t)res.snapshots, "packs",
			(json_int_t)res.packs, "bytes", (json_int_t)res.bytes, "live_bytes",
			(json_int_t)res.live_bytes, "packs_unused", (json_int_t)res.packs_unused,
			"packs_repacked", (json_int_t)res.packs_repacked, "packs_orphaned",
			(json_int_t)res.packs_orphaned, "unused_bytes", (json_int_t)res.unused_bytes,
			"packs_written", (json_int_t)res.packs_written, "packs_deleted",
			(json_int_t)res.packs_deleted, "packs_kept", (json_int_t)res.packs_kept,
			"bytes_freed", (json_int_t)res.bytes_freed, "lists_waiting",
			(json_int_t)res.lists_waiting, "repacked_bytes",
			(json_int_t)res.repacked_bytes);
		if (j)
			json_object_set_new(j, "temps_removed", json_integer((json_int_t)res.temps_removed));
		if (j && cairn_repo_immutable_days(r))
			json_object_update_new(j, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "packs_locked",
				     (json_int_t)res.packs_locked, "manifests_locked",
				     (json_int_t)res.manifests_locked, "manifests_removed",
				     (json_int_t)res.manifests_removed, "locked_until",
				     (json_int_t)res.locked_until, "retention_extended",
				     (json_int_t)res.retention_extended, "retention_floor",
				     (json_int_t)res.retention_floor));
		json_print(j);
	} else if (!c.quiet)
		print_text(&o, &res);
	return 0;
}

int cmd_gc(int argc, char **argv)
{
	return cli_exit(gc_main(argc, argv));
}
