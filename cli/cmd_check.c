/* cairn check REPO [--read-data]; cairn repair index REPO; cairn stats REPO */
#include <errno.h>
#include <stdio.h>

#include "cli.h"

struct check_args {
	struct cairn_check_opts o;
	json_t *problems; /* --json */
};

/* "10%" (the packs read longest ago first) or "2/7" (part 2 of 7) */
static int parse_subset(struct cairn_check_opts *o, const char *arg)
{
	unsigned a, b;
	char pct;
	if (sscanf(arg, "%u/%u", &a, &b) == 2 && b > 0 && a >= 1 && a <= b) {
		o->part = a;
		o->nparts = b;
	} else if (sscanf(arg, "%u%c", &a, &pct) == 2 && pct == '%' && a >= 1 && a <= 100) {
		o->subset_pct = a;
	} else {
		return cli_usage("--read-data-subset %s: use N%% (1..100) or i/n", arg);
	}
	o->read_data = true;
	return 0;
}

static int check_option(void *ctx, int opt, const char *arg)
{
	struct check_args *a = ctx;
	if (opt == 'r') {
		a->o.read_data = true;
		return 0;
	}
	if (opt == 's')
		return parse_subset(&a->o, arg);
	return cli_usage("check: unexpected option");
}

static void print_problem(void *opaque, const char *line)
{
	struct check_args *a = opaque;
	if (a->problems)
		json_array_append_new(a->problems, json_string(line));
	else
		printf("%s\n", line);
}

/* an overwritten object put back: said on stderr (it is evidence of a
 * compromised writer), and in --json among the problems */
static void print_repaired(void *opaque, const char *line)
{
	struct check_args *a = opaque;
	if (a->problems)
		json_array_append_new(a->problems, json_string(line));
	else
		cli_warn("%s", line);
}

static void print_line(void *opaque, const char *line);

static int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "read-data", no_argument, NULL, 'r' },
		{ "read-data-subset", required_argument, NULL, 's' },
		{ 0 },
	};
	static const char usage[] =
		"check REPO [--read-data | --read-data-subset N%|i/n] [--json]";
	struct cli c = { 0 };
	struct check_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", check_option, &a, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r)) < 0)
		return rc;
	if (c.json)
		a.problems = json_array();
	int64_t t0 = mono_ns();
	size_t packs_read = 0;
	a.o.report = print_problem;
	a.o.opaque = &a;
	/* putting back bytes that hash to their name can only undo damage */
	a.o.repair = true;
	a.o.repaired = print_repaired;
	a.o.notice = print_line;
	a.o.packs_read = &packs_read;
	bool subset = a.o.subset_pct || a.o.nparts;
	int problems = cairn_repo_check(r, &a.o);
	if (problems < 0) {
		json_decref(a.problems);
		return cli_fail(problems, cairn_repo_error(r));
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (c.json)
		json_print(json_pack("{s:b, s:b, s:I, s:i, s:o, s:f}", "ok", problems == 0,
				     "read_data", a.o.read_data, "packs_read", (json_int_t)packs_read,
				     "problems_found", problems, "problems", a.problems, "seconds",
				     secs));
	else if (problems)
		fprintf(stderr, "cairn: check found %d problem(s) in %s\n", problems, argv[1]);
	else if (!c.quiet)
		printf("no problems found in %s (%s, %.1fs)\n", argv[1],
		       !a.o.read_data ? "structure"
		       : subset       ? "structure and the data of a subset of the packs"
				      : "structure and all data",
		       secs);
	return problems ? -EBADMSG : 0;
}

static void print_line(void *opaque, const char *line)
{
	(void)opaque;
	cli_warn("%s", line);
}

static int repair_main(int argc, char **argv)
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
	static const char usage[] = "repair index REPO";
	struct cli c = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", NULL, NULL, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 2 || strcmp(argv[1], "index"))
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_locked(&c, argv[2], CLI_EXCLUSIVE, &r)) < 0)
		return rc;
	int packs = cairn_repo_repair_index(r, print_line, NULL);
	if (packs < 0)
		return cli_fail(packs, cairn_repo_error(r));
	if (c.json)
		json_print(json_pack("{s:i}", "packs_indexed", packs));
	else if (!c.quiet)
		printf("index rebuilt from %d pack(s)\n", packs);
	return 0;
}

static int stats_main(int argc, char **argv)
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
	static const char usage[] = "stats REPO [--json]";
	struct cli c = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", NULL, NULL, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[1], &r)) < 0)
		return rc;
	struct cairn_stats st;
	if ((rc = cairn_repo_stats(r, &st)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	cli_print_warnings(r);
	double dedupe = st.unique_raw_bytes ? (double)st.referenced_bytes / (double)st.unique_raw_bytes : 1;
	double compress = st.stored_bytes ? (double)st.unique_raw_bytes / (double)st.stored_bytes : 1;
	double total = st.stored_bytes ? (double)st.logical_bytes / (double)st.stored_bytes : 1;
	if (c.json) {
		json_print(json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I}",
				     "snapshots", (json_int_t)st.snapshots, "logical_bytes",
				     (json_int_t)st.logical_bytes, "referenced_bytes",
				     (json_int_t)st.referenced_bytes, "unique_chunks",
				     (json_int_t)st.unique_chunks, "unique_raw_bytes",
				     (json_int_t)st.unique_raw_bytes, "stored_bytes",
				     (json_int_t)st.stored_bytes, "packs", (json_int_t)st.packs,
				     "index_files", (json_int_t)st.index_files, "dedupe_ratio",
				     dedupe, "compression_ratio", compress, "total_ratio", total,
				     "chunk_size", (json_int_t)cairn_repo_chunk_size(r)));
		return 0;
	}
	char lb[32], rb[32], ub[32], sb[32];
	format_bytes(st.logical_bytes, lb, sizeof(lb));
	format_bytes(st.referenced_bytes, rb, sizeof(rb));
	format_bytes(st.unique_raw_bytes, ub, sizeof(ub));
	format_bytes(st.stored_bytes, sb, sizeof(sb));
	printf("snapshots:          %llu\n"
	       "logical size:       %s (disk sizes summed over snapshots)\n"
	       "data referenced:    %s (non-zero chunks)\n"
	       "unique data:        %s in %llu chunks\n"
	       "stored:             %s in %llu packs, %llu index files\n"
	       "dedupe ratio:       %.2fx\n"
	       "compression ratio:  %.2fx\n"
	       "logical / stored:   %.2fx\n",
	       (unsigned long long)st.snapshots, lb, rb, ub,
	       (unsigned long long)st.unique_chunks, sb, (unsigned long long)st.packs,
	       (unsigned long long)st.index_files, dedupe, compress, total);
	return 0;
}

int cmd_check(int argc, char **argv)
{
	return cli_exit(check_main(argc, argv));
}

int cmd_repair(int argc, char **argv)
{
	return cli_exit(repair_main(argc, argv));
}

int cmd_stats(int argc, char **argv)
{
	return cli_exit(stats_main(argc, argv));
}
