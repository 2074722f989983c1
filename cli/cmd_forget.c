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
	return -1;
}

static int forget_option(void *ctx, int opt, const char *arg)
{
	struct forget_args *a = ctx;
	switch (opt) {
	case 'n':
		if (a->nnames == MAX_NAMES)
			return cli_usage("at most %d --name options", MAX_NAMES);
		a->names[a->nnames++] = arg;
		return -1;
	case 'a': a->all = true; return -1;
	case 'd': a->dry_run = true; return -1;
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
		return -1;
	case 't':
		if (a->p.ntags == MAX_TAGS)
			return cli_usage("at most %d --keep-tag options", MAX_TAGS);
		a->tags[a->p.ntags++] = arg;
		a->p.tags = a->tags;
		return -1;
	}
	return cli_usage("forget: unexpected option");
}

static bool wanted(const struct forget_args *a, const char *name)
{
	if (a->all)
		return true;
	for (size_t i = 0; i < a->nnames; i++)
		if (!strcmp(a->names[i], name))
			return true;
	return false;
}

struct group_out {
	json_t *keep, *remove;
	size_t nkeep, nremove;
};

static void report(const struct cli *c, const struct forget_args *a,
		   const struct cairn_snapshot *s, unsigned reasons, struct group_out *g)
{
	char id[65], when[40], why[96];
	id_hex(&s->id, id);
	format_time_utc(s->time_ns, when, sizeof(when));
	cairn_keep_reasons(reasons, why, sizeof(why));
	if (c->json) {
		json_t *item = json_pack("{s:s, s:s}", "id", id, "time", when);
		if (reasons)
			json_object_set_new(item, "reasons", json_string(why));
		json_array_append_new(reasons ? g->keep : g->remove, item);
	} else if (!c->quiet)
		printf("  %-6s  %.12s  %-20s  %s\n",
		       reasons ? "keep" : a->dry_run ? "remove" : "removed", id, when, why);
	if (reasons)
		g->nkeep++;
	else
		g->nremove++;
}

/* Applies the policy to the snapshots of one name; removes unless dry-run. */
static int forget_group(const struct cli *c, const struct forget_args *a, struct cairn_repo *r,
			struct cairn_snapshot **v, size_t n, const char *name, json_t *out)
{
	_cleanup_free_ struct cairn_retention_item *items = calloc(n + 1, sizeof(*items));
	_cleanup_free_ struct cairn_snapshot **mine = calloc(n + 1, sizeof(*mine));
	if (!items || !mine)
		return cli_error("out of memory");
	size_t m = 0;
	int rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i]->name, name))
			continue;
		mine[m] = v[i];
		items[m] = (struct cairn_retention_item){ .time_ns = v[i]->time_ns,
							  .tags = v[i]->tags,
							  .ntags = v[i]->ntags };
		if ((rc = cairn_snapshot_is_protected(r, &v[i]->id, &items[m].protect)) < 0)
			return cli_fail(rc, cairn_repo_error(r));
		m++;
	}
	if ((rc = cairn_retention_apply(&a->p, items, m)) < 0)
		return cli_fail(rc, "out of memory");
	struct group_out g = { json_array(), json_array(), 0, 0 };
	if (!c->json && !c->quiet)
		printf("%s:\n", name);
	for (size_t i = m; i-- > 0;) {
		if (!items[i].reasons && !a->dry_run &&
		    (rc = cairn_snapshot_forget(r, &mine[i]->id)) < 0) {
			json_decref(g.keep);
			json_decref(g.remove);
			return cli_fail(rc, cairn_repo_error(r));
		}
		report(c, a, mine[i], items[i].reasons, &g);
	}
	if (c->json)
		json_array_append_new(out, json_pack("{s:s, s:o, s:o}", "name", name, "keep", g.keep,
						     "remove", g.remove));
	else {
		json_decref(g.keep);
		json_decref(g.remove);
		if (!c->quiet)
			printf("  %zu kept, %zu %s\n", g.nkeep, g.nremove,
			       a->dry_run ? "would be removed (dry run)" : "removed");
	}
	return -1;
}

static int forget_all(const struct cli *c, const struct forget_args *a, struct cairn_repo *r)
{
	struct cairn_snapshot **v;
	size_t n;
	int rc = cairn_snapshot_list(r, &v, &n);
	if (rc < 0)
		return cli_fail(rc, cairn_repo_error(r));
	cli_print_warnings(r);
	json_t *out = json_array();
	rc = -1;
	/* each name once, in the order of its newest-last listing */
	for (size_t i = 0; rc < 0 && i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(v[j]->name, v[i]->name);
		if (!seen && wanted(a, v[i]->name))
			rc = forget_group(c, a, r, v, n, v[i]->name, out);
	}
	if (rc < 0 && c->json)
		json_print(json_incref(out));
	json_decref(out);
	cairn_snapshot_list_free(v, n);
	return rc < 0 ? EXIT_OK : rc;
}

int cmd_forget(int argc, char **argv)
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
	if (rc >= 0)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", FORGET_USAGE);
	if (!a.all == !a.nnames)
		return cli_usage("say which snapshots: --name VM (repeatable) or --all");
	if (cairn_keep_policy_empty(&a.p))
		return cli_usage("no --keep-* rule given: forget would remove every snapshot");
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r)) != EXIT_OK)
		return rc;
	return forget_all(&c, &a, r);
}

static int protect_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'n')
		return cli_usage("unexpected option");
	*(const char **)ctx = arg;
	return -1;
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
	if (rc >= 0)
		return rc;
	if (nargs != 2)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r)) != EXIT_OK)
		return rc;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cairn_snapshot_find(r, argv[2], name, &s)) < 0 ||
	    (rc = cairn_snapshot_protect(r, &s->id, on)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	char id[65];
	id_hex(&s->id, id);
	if (c.json)
		json_print(json_pack("{s:s, s:b}", "id", id, "protected", on));
	else if (!c.quiet)
		printf("snapshot %.12s of %s is %s\n", id, s->name,
		       on ? "protected" : "no longer protected");
	return EXIT_OK;
}

int cmd_protect(int argc, char **argv)
{
	return set_protection(argc, argv, true);
}

int cmd_unprotect(int argc, char **argv)
{
	return set_protection(argc, argv, false);
}
