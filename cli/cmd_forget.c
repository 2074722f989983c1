/* cairn forget REPO (--name VM ... | --all) --keep-* ... [--dry-run] [--json]
 * cairn protect|unprotect REPO SNAP [--name VM] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "repo/retention.h"

#define FORGET_USAGE                                                                      \
	"forget REPO (--name VM ... | --all) [--keep-last N] [--keep-hourly N] "          \
	"[--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] "        \
	"[--keep-within DURATION] [--keep-tag T ...] [--dry-run] [--json]"
#define MAX_NAMES 256
#define MAX_TAGS 32

struct forget_args {
	const char *names[MAX_NAMES];
	size_t nnames;
	bool all, dry_run;
	const char *tags[MAX_TAGS];
	struct cairn_keep_policy p;
};

static int parse_count(const char *opt, const char *arg, unsigned *out)
{
	char *end;
	long v = strtol(arg, &end, 10);
	if (*end || end == arg || v < 0 || v > 1000000)
		return cli_usage("--%s %s: give a count (0 or more)", opt, arg);
	*out = (unsigned)v;
	return 0;
}

static int forget_option(void *ctx, int opt, const char *arg)
{
	struct forget_args *a = ctx;
	switch (opt) {
	case 'n':
		if (a->nnames == MAX_NAMES)
			return cli_usage("at most %d --name options", MAX_NAMES);
		a->names[a->nnames++] = arg;
		return 0;
	case 'a': a->all = true; return 0;
	case 'd': a->dry_run = true; return 0;
	case 'l': return parse_count("keep-last", arg, &a->p.last);
	case 'H': return parse_count("keep-hourly", arg, &a->p.hourly);
	case 'D': return parse_count("keep-daily", arg, &a->p.daily);
	case 'W': return parse_count("keep-weekly", arg, &a->p.weekly);
	case 'M': return parse_count("keep-monthly", arg, &a->p.monthly);
	case 'Y': return parse_count("keep-yearly", arg, &a->p.yearly);
	case 'w':
		if (cairn_duration_parse(arg, &a->p.within) < 0)
			return cli_usage("--keep-within %s: use a duration such as 7d, 2w, 6m, 1y6m, 36h",
					 arg);
		a->p.has_within = true;
		return 0;
	case 't':
		if (a->p.ntags == MAX_TAGS)
			return cli_usage("at most %d --keep-tag options", MAX_TAGS);
		a->tags[a->p.ntags++] = arg;
		a->p.tags = a->tags;
		return 0;
	}
	return cli_usage("forget: unexpected option");
}


/* Prints (or collects) the plan group by group: a group ends when the
 * name changes or at the end. */
struct report_ctx {
	const struct cli *c;
	const struct forget_args *a;
	json_t *out, *keep, *remove;
	char name[256];
	size_t nkeep, nremove;
};

static void end_group(struct report_ctx *x)
{
	if (!x->name[0])
		return;
	if (x->c->json) {
		/* "o" takes the arrays over */
		json_array_append_new(x->out, json_pack("{s:s, s:o, s:o}", "name", x->name, "keep",
							x->keep, "remove", x->remove));
	} else {
		json_decref(x->keep);
		json_decref(x->remove);
		if (!x->c->quiet)
			printf("  %zu kept, %zu %s\n", x->nkeep, x->nremove,
			       x->a->dry_run ? "would be removed (dry run)" : "removed");
	}
	x->keep = x->remove = NULL;
	x->nkeep = x->nremove = 0;
	x->name[0] = '\0';
}

static void report(void *opaque, const struct cairn_snapshot *s, unsigned reasons)
{
	struct report_ctx *x = opaque;
	if (strcmp(x->name, s->name)) {
		end_group(x);
		snprintf(x->name, sizeof(x->name), "%s", s->name);
		x->keep = json_array();
		x->remove = json_array();
		if (!x->c->json && !x->c->quiet)
			printf("%s:\n", s->name);
	}
	char id[65], when[40], why[96];
	id_hex(&s->id, id);
	format_time_utc(s->time_ns, when, sizeof(when));
	cairn_keep_reasons(reasons, why, sizeof(why));
	if (x->c->json) {
		json_t *item = json_pack("{s:s, s:s}", "id", id, "time", when);
		if (reasons)
			json_object_set_new(item, "reasons", json_string(why));
		json_array_append_new(reasons ? x->keep : x->remove, item);
	} else if (!x->c->quiet)
		printf("  %-6s  %.12s  %-20s  %s\n",
		       reasons ? "keep" : x->a->dry_run ? "remove" : "removed", id, when, why);
	if (reasons)
		x->nkeep++;
	else
		x->nremove++;
}

static int forget_all(const struct cli *c, const struct forget_args *a, struct cairn_repo *r)
{
	struct report_ctx x = { .c = c, .a = a, .out = json_array() };
	int rc = cairn_forget_by_policy(r, &a->p, a->all ? NULL : a->names, a->all ? 0 : a->nnames,
					a->dry_run, report, &x);
	end_group(&x);
	json_decref(x.keep);
	json_decref(x.remove);
	if (cairn_repo_warning_count(r)) /* a damaged manifest: read by none, kept */
		json_array_append_new(x.out, json_pack("{s:n, s:[], s:[], s:o}", "name", "keep",
						       "remove", "warnings", cli_warnings_json(r)));
	cli_print_warnings(r);
	if (rc == 0 && c->json)
		json_print(json_incref(x.out));
	json_decref(x.out);
	return rc < 0 ? cli_fail(rc, cairn_repo_error(r)) : 0;
}

static int forget_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "keep-last", required_argument, NULL, 'l' },
		{ "keep-hourly", required_argument, NULL, 'H' },
		{ "keep-daily", required_argument, NULL, 'D' },
		{ "keep-weekly", required_argument, NULL, 'W' },
		{ "keep-monthly", required_argument, NULL, 'M' },
		{ "keep-yearly", required_argument, NULL, 'Y' },
		{ "keep-within", required_argument, NULL, 'w' },
		{ "keep-tag", required_argument, NULL, 't' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct forget_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", forget_option, &a, FORGET_USAGE,
				  &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", FORGET_USAGE);
	if (!a.all == !a.nnames)
		return cli_usage("say which snapshots: --name VM (repeatable) or --all");
	if (cairn_keep_policy_empty(&a.p))
		return cli_usage("no --keep-* rule given: forget would remove every snapshot");
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r)) < 0)
		return rc;
	return forget_all(&c, &a, r);
}

static int protect_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'n')
		return cli_usage("unexpected option");
	*(const char **)ctx = arg;
	return 0;
}

static int set_protection(int argc, char **argv, bool on)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ 0 },
	};
	const char *usage = on ? "protect REPO SNAP [--name VM]" : "unprotect REPO SNAP [--name VM]";
	struct cli c = { 0 };
	const char *name = NULL;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", protect_option, &name, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 2)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r)) < 0)
		return rc;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cli_find_snapshot(r, argv[2], name, &s)) < 0)
		return rc;
	cli_print_warnings(r);
	if ((rc = cairn_snapshot_protect(r, &s->id, on)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	char id[65];
	id_hex(&s->id, id);
	if (c.json)
		json_print(json_pack("{s:s, s:b}", "id", id, "protected", on));
	else if (!c.quiet)
		printf("snapshot %.12s of %s is %s\n", id, s->name,
		       on ? "protected" : "no longer protected");
	return 0;
}

static int protect_main(int argc, char **argv)
{
	return set_protection(argc, argv, true);
}

static int unprotect_main(int argc, char **argv)
{
	return set_protection(argc, argv, false);
}

int cmd_forget(int argc, char **argv)
{
	return cli_exit(forget_main(argc, argv));
}

int cmd_protect(int argc, char **argv)
{
	return cli_exit(protect_main(argc, argv));
}

int cmd_unprotect(int argc, char **argv)
{
	return cli_exit(unprotect_main(argc, argv));
}
