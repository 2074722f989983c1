/* cairn replicate SRC DST [--name VM ...] [--snapshot ID ...] [--connections N]
 *                         [--verify] [--dry-run] [--to-password-file F] [--json] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "replicate/replicate.h"

#define USAGE                                                                       \
	"replicate SRC DST [--name VM ...] [--snapshot ID ...] [--connections N] "   \
	"[--verify] [--dry-run] [--to-password-file F] [--json]"
#define MAX_FILTERS 256

struct replicate_args {
	const char *names[MAX_FILTERS], *snaps[MAX_FILTERS];
	const char *to_password_file;
	struct cairn_replicate_opts o;
};

static int replicate_option(void *ctx, int opt, const char *arg)
{
	struct replicate_args *a = ctx;
	switch (opt) {
	case 'n':
		if (a->o.nnames == MAX_FILTERS)
			return cli_usage("at most %d --name options", MAX_FILTERS);
		a->names[a->o.nnames++] = arg;
		return 0;
	case 's':
		if (a->o.nsnapshots == MAX_FILTERS)
			return cli_usage("at most %d --snapshot options", MAX_FILTERS);
		a->snaps[a->o.nsnapshots++] = arg;
		return 0;
	case 'v': a->o.verify = true; return 0;
	case 'd': a->o.dry_run = true; return 0;
	case 'T': a->to_password_file = arg; return 0;
	}
	return cli_usage("replicate: unexpected option");
}

static void print_summary(const struct cli *c, const struct replicate_args *a,
			  const struct cairn_replicate_result *r, double secs, json_t *warnings)
{
	char copied[32], rate[32];
	format_bytes(r->bytes_copied, copied, sizeof(copied));
	format_bytes(secs > 0 ? (uint64_t)((double)r->bytes_copied / secs) : 0, rate, sizeof(rate));
	if (c->json) {
		json_print(json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:O}", "dry_run",
				     a->o.dry_run, "snapshots_to_copy", (json_int_t)r->snapshots_to_copy,
				     "snapshots_copied", (json_int_t)r->snapshots_copied,
				     "snapshots_present", (json_int_t)r->snapshots_present,
				     "packs_copied", (json_int_t)r->packs_copied, "packs_present",
				     (json_int_t)r->packs_present, "packs_verified",
				     (json_int_t)r->packs_verified, "bytes_copied",
				     (json_int_t)r->bytes_copied, "bytes_to_copy",
				     (json_int_t)r->bytes_to_copy, "seconds", secs, "warnings", warnings));
		return;
	}
	if (c->quiet)
		return;
	if (a->o.dry_run) {
		char need[32];
		format_bytes(r->bytes_to_copy, need, sizeof(need));
		printf("would copy %zu snapshots (%zu already there) and %s of packs\n",
		       r->snapshots_to_copy, r->snapshots_present, need);
		return;
	}
	char resumed[64] = "";
	if (r->packs_present) /* an interrupted run sent them; only indexed now */
		snprintf(resumed, sizeof(resumed), " (%zu more were already there)", r->packs_present);
	printf("copied %zu snapshots (%zu already there), %zu packs%s, %s in %.1fs (%s/s)%s\n",
	       r->snapshots_copied, r->snapshots_present, r->packs_copied, resumed, copied, secs,
	       rate, a->o.verify ? ", every copy read back and verified" : "");
}

static int run(const struct cli *c, struct replicate_args *a, char **argv)
{
	_cleanup_(cairn_repo_closep) struct cairn_repo *src = NULL, *dst = NULL;
	struct cli to = *c;
	if (a->to_password_file)
		to.password_file = a->to_password_file;
	int rc = cli_open_locked(c, argv[1], CLI_SHARED, &src);
	if (rc < 0 || (rc = cli_need_full(src)) < 0)
		return rc;
	if ((rc = cli_open_locked(&to, argv[2], CLI_SHARED, &dst)) < 0)
		return rc;
	a->o.names = a->names;
	a->o.snapshots = a->snaps;
	struct progress p;
	progress_init(&p, c, "replicate");
	a->o.progress = progress_update;
	a->o.progress_opaque = &p;
	a->o.cancel = &cli_interrupted;
	cli_catch_signals();
	struct cairn_replicate_result res;
	char err[512] = "";
	int64_t t0 = mono_ns();
	rc = cairn_replicate(src, dst, &a->o, &res, err, sizeof(err));
	progress_done(&p);
	if (rc < 0) {
		cli_print_warnings(src);
		return cli_fail(rc, err);
	}
	json_t *warnings = cli_warnings_json(src);
	cli_print_warnings(src);
	print_summary(c, a, &res, (double)(mono_ns() - t0) / 1e9, warnings);
	json_decref(warnings);
	return 0;
}

static int replicate_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "snapshot", required_argument, NULL, 's' },
		{ "verify", no_argument, NULL, 'v' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "to-password-file", required_argument, NULL, 'T' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct replicate_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", replicate_option, &a, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs != 2)
		return cli_usage("usage: cairn %s", USAGE);
	a.o.connections = c.backend.connections; /* the common option */
	return run(&c, &a, argv);
}

int cmd_replicate(int argc, char **argv)
{
	return cli_exit(replicate_main(argc, argv));
}
