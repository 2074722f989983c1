/* cairn backup REPO --image [NAME=]FILE ... [--name NAME] [--tag T ...] */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>

#include "agent/fleet.h"
#include "cli.h"

#define USAGE "backup REPO --image [NAME=]FILE [--image ...] | --domain NAME [--domain ...] [--disk D ...] | --all [--exclude GLOB ...] [--parallel N] [--connect URI] [--full] [--quiesce[=auto]] [--scratch-dir DIR] [--name NAME] [--tag T ...] [--guard off|on|KEY=VALUE,...]"
#define MAX_DISKS 64
#define MAX_TAGS 32

struct backup_args {
	struct cairn_backup_disk disks[MAX_DISKS];
	char *names[MAX_DISKS];
	size_t ndisks;
	const char *tags[MAX_TAGS];
	size_t ntags;
	const char *name;
	unsigned workers;
	const char *domains[MAX_DISKS];
	size_t ndomains;
	const char *uri;
	bool full;
	bool all;
	enum cairn_quiesce quiesce;
	const char *exclude[MAX_TAGS];
	size_t nexclude;
	const char *only[MAX_DISKS]; /* --disk */
	size_t nonly;
	const char *scratch_dir;
	unsigned parallel;
	struct cairn_guard_opts guard; /* the anomaly guard (repo/anomaly.h) */
};

static int backup_option(void *ctx, int opt, const char *arg)
{
	struct backup_args *a = ctx;
	switch (opt) {
	case 'i': {
		if (a->ndisks == MAX_DISKS)
			return cli_usage("at most %d images per snapshot", MAX_DISKS);
		const char *eq = strchr(arg, '=');
		char *name;
		const char *path = arg;
		/* NAME=FILE names the disk, unless the whole argument is a file */
		if (eq && eq != arg && access(arg, F_OK) != 0) {
			name = strndup(arg, (size_t)(eq - arg));
			path = eq + 1;
		} else {
			_cleanup_free_ char *copy = strdup(arg);
			name = copy ? strdup(basename(copy)) : NULL;
		}
		if (!name)
			return cli_error("out of memory");
		a->names[a->ndisks] = name;
		a->disks[a->ndisks++] = (struct cairn_backup_disk){ name, path };
		return 0;
	}
	case 'n':
		a->name = arg;
		return 0;
	case 'D':
		if (a->ndomains == MAX_DISKS)
			return cli_usage("at most %d domains per run", MAX_DISKS);
		a->domains[a->ndomains++] = arg;
		return 0;
	case 'C':
		a->uri = arg;
		return 0;
	case 'F':
		a->full = true;
		return 0;
	case 'A':
		a->all = true;
		return 0;
	case 'Q':
		if (arg && strcmp(arg, "auto"))
			return cli_usage("--quiesce=%s: the only value is auto", arg);
		a->quiesce = arg ? CAIRN_QUIESCE_AUTO : CAIRN_QUIESCE_YES;
		return 0;
	case 'd':
		if (a->nonly == MAX_DISKS)
			return cli_usage("at most %d --disk options", MAX_DISKS);
		a->only[a->nonly++] = arg;
		return 0;
	case 'S':
		a->scratch_dir = arg;
		return 0;
	case 'p': {
		char *end;
		long n = strtol(arg, &end, 10);
		if (n < 1 || n > 64 || *end)
			return cli_usage("--parallel %s: give 1 to 64", arg);
		a->parallel = (unsigned)n;
		return 0;
	}
	case 'x':
		if (a->nexclude == MAX_TAGS)
			return cli_usage("at most %d --exclude patterns", MAX_TAGS);
		a->exclude[a->nexclude++] = arg;
		return 0;
	case 't':
		if (a->ntags == MAX_TAGS)
			return cli_usage("at most %d tags", MAX_TAGS);
		a->tags[a->ntags++] = arg;
		return 0;
	case 'g': {
		char err[300];
		if (cairn_guard_parse(arg, &a->guard, err, sizeof(err)) < 0)
			return cli_usage("--guard %s", err);
		return 0;
	}
	case 'j': {
		char *end;
		long n = strtol(arg, &end, 10);
		if (n < 1 || n > 256 || *end)
			return cli_usage("--threads %s: give 1 to 256", arg);
		a->workers = (unsigned)n;
		return 0;
	}
	}
	return cli_usage("backup: unexpected option");
}

/* The snapshot name defaults to the first image's file name without its
 * extension. */
static char *default_name(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	char *name = copy ? strdup(basename(copy)) : NULL;
	char *dot = name ? strrchr(name, '.') : NULL;
	if (dot && dot != name)
		*dot = '\0';
	return name;
}

static bool unique_disk_names(const struct backup_args *a)
{
	for (size_t i = 0; i < a->ndisks; i++)
		for (size_t j = i + 1; j < a->ndisks; j++)
			if (!strcmp(a->disks[i].name, a->disks[j].name))
				return false;
	return true;
}

static void print_result(const struct cli *c, const char *name,
			 const struct cairn_backup_result *res, double secs)
{
	char id[65], parent[65];
	id_hex(&res->snapshot, id);
	if (res->has_parent)
		id_hex(&res->parent, parent);
	char prot[65];
	if (res->has_protected)
		id_hex(&res->protected, prot);
	/* the alarm goes to stderr whatever the output format: it must not
	 * be lost in a script's parsed stdout */
	if (res->suspicious)
		cli_warn("%s: %s", name, res->alarm);
	if (c->json) {
		json_print(json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:b, s:s?, s:s?}",
				     "snapshot", id, "name", name, "parent",
				     res->has_parent ? parent : NULL, "bytes_total",
				     (json_int_t)res->bytes_total, "bytes_read",
				     (json_int_t)res->bytes_read, "chunks",
				     (json_int_t)res->chunks, "zero_chunks",
				     (json_int_t)res->zero_chunks, "new_chunks",
				     (json_int_t)res->new_chunks, "new_bytes",
				     (json_int_t)res->new_bytes, "seconds", secs, "suspicious",
				     res->suspicious, "alarm", res->suspicious ? res->alarm : NULL,
				     "protected", res->has_protected ? prot : NULL));
		return;
	}
	if (c->quiet) {
		printf("%s\n", id);
		return;
	}
	char total[32], rd[32], added[32];
	format_bytes(res->bytes_total, total, sizeof(total));
	format_bytes(res->bytes_read, rd, sizeof(rd));
	format_bytes(res->new_bytes, added, sizeof(added));
	printf("snapshot %.12s of %s saved: %s in %zu disk(s), %s read, %llu new chunks, %s added, %.1fs\n",
	       id, name, total, res->ndisks, rd, (unsigned long long)res->new_chunks,
	       added, secs);
}

static void print_notice(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "cairn: note: %s\n", line);
}

/* Backups of several domains running at once share the repository lock,
 * one writer and stdout (agent/fleet.h calls done one at a time). */
struct domain_run {
	const struct cli *c;
	struct progress progress[MAX_DISKS]; /* one per domain */
	const char *name[MAX_DISKS]; /* the snapshot's */
	int64_t start_ns[MAX_DISKS];
	int status;
};

static int begin_domain(void *opaque, size_t i, struct cairn_domain_opts *o)
{
	struct domain_run *dr = opaque;
	bool parallel = o->backup.writer != NULL;
	progress_init(&dr->progress[i], parallel ? &(struct cli){ .quiet = true } : dr->c,
		      o->domain);
	o->backup.progress_opaque = &dr->progress[i];
	dr->name[i] = o->backup.name;
	dr->start_ns[i] = mono_ns();
	return 0;
}

static void done_domain(void *opaque, size_t i, int rc, const struct cairn_backup_result *res,
			const char *err)
{
	struct domain_run *dr = opaque;
	double secs = (double)(mono_ns() - dr->start_ns[i]) / 1e9;
	progress_done(&dr->progress[i]);
	if (rc < 0) {
		int code = cli_fail(rc, err);
		if (dr->status == 0)
			dr->status = code;
		return;
	}
	print_result(dr->c, dr->name[i], res, secs);
	fflush(stdout);
}

/* Each domain is its own snapshot; a failing domain does not stop the
 * others, and the exit status is the first failure's. */
static int backup_domains(const struct cli *c, const char *url, struct backup_args *a)
{
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	int rc = cli_open_locked(c, url, CLI_SHARED, &r);
	if (rc < 0)
		return rc;
	cli_catch_signals();
	struct domain_run dr = { .c = c, .status = 0 };
	struct cairn_fleet_opts o = {
		.domains = a->domains, .ndomains = a->ndomains, .parallel = a->parallel,
		.domain = { .uri = a->uri, .full = a->full, .quiesce = a->quiesce,
			    .disks = a->nonly ? a->only : NULL, .ndisks = a->nonly,
			    .scratch_dir = a->scratch_dir,
			    .backup = { .name = a->name, .tags = a->tags, .ntags = a->ntags,
					.workers = a->workers, .guard = a->guard, .progress = progress_update,
					.cancel = &cli_interrupted, .notice = print_notice } },
		.stop = &cli_interrupted,
		.begin = begin_domain, .done = done_domain, .opaque = &dr,
	};
	char err[512] = "";
	if ((rc = cairn_backup_fleet(r, &o, err, sizeof(err))) < 0)
		return cli_fail(rc, err);
	cli_print_warnings(r);
	return dr.status;
}

static int backup_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "image", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "tag", required_argument, NULL, 't' },
		{ "threads", required_argument, NULL, 'j' },
		{ "domain", required_argument, NULL, 'D' },
		{ "connect", required_argument, NULL, 'C' },
		{ "full", no_argument, NULL, 'F' },
		{ "all", no_argument, NULL, 'A' },
		{ "quiesce", optional_argument, NULL, 'Q' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "disk", required_argument, NULL, 'd' },
		{ "scratch-dir", required_argument, NULL, 'S' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "guard", required_argument, NULL, 'g' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct backup_args a = { 0 };
	_cleanup_free_ char *defname = NULL;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", backup_option, &a, USAGE, &nargs);
	if (rc == 0 && nargs != 1)
		rc = cli_usage("usage: cairn %s", USAGE);
	if (rc == 0 && a.all && a.ndomains)
		rc = cli_usage("backup: --all and --domain exclude each other");
	if (rc == 0 && a.nexclude && !a.all)
		rc = cli_usage("backup: --exclude goes with --all");
	if (rc == 0 && a.nonly && a.ndomains != 1)
		rc = cli_usage("backup: --disk goes with a single --domain");
	if (rc == 0 && a.ndisks && (a.nonly || a.quiesce || a.scratch_dir || a.parallel || a.full))
		rc = cli_usage("backup: --disk, --quiesce, --scratch-dir, --parallel and --full are for domains");
	char **listed = NULL;
	size_t nlisted = 0;
	if (rc == 0 && a.all && !a.ndisks) {
		char err[512] = "";
		int lrc = cairn_list_domains(a.uri, a.exclude, a.nexclude, &listed, &nlisted, err,
					     sizeof(err));
		if (lrc < 0)
			rc = cli_fail(lrc, err);
		for (size_t i = 0; rc == 0 && i < nlisted && a.ndomains < MAX_DISKS; i++)
			a.domains[a.ndomains++] = listed[i];
		if (rc == 0 && !a.ndomains) {
			printf("no domains to back up\n");
			rc = 1; /* done */
		}
	}
	if (rc == 0 && !a.ndisks == !a.ndomains)
		rc = cli_usage("backup: give --image FILE, --domain NAME or --all (one kind)");
	if (rc == 0 && a.ndomains > 1 && a.name)
		rc = cli_usage("backup: --name needs a single --domain");
	if (rc == 0 && a.ndomains)
		rc = backup_domains(&c, argv[1], &a);
	for (size_t i = 0; i < nlisted; i++)
		free(listed[i]);
	free(listed);
	if (a.ndomains)
		return rc;
	if (rc == 0 && !unique_disk_names(&a))
		rc = cli_usage("backup: two images have the same disk name; name them with --image NAME=FILE");
	if (rc == 0 && !a.name && !(a.name = defname = default_name(a.disks[0].path)))
		rc = cli_error("out of memory");
	if (rc == 0) {
		_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
		rc = cli_open_locked(&c, argv[1], CLI_SHARED, &r);
		if (rc == 0) {
			struct progress p;
			progress_init(&p, &c, "backup");
			struct cairn_backup_opts o = { .name = a.name, .tags = a.tags,
						       .ntags = a.ntags, .workers = a.workers,
						       .progress = progress_update,
						       .progress_opaque = &p,
						       .cancel = &cli_interrupted,
						       .guard = a.guard };
			cli_catch_signals();
			struct cairn_backup_result res;
			char err[512] = "";
			int64_t t0 = mono_ns();
			int brc = cairn_backup_images(r, a.disks, a.ndisks, &o, &res, err, sizeof(err));
			progress_done(&p);
			cli_print_warnings(r);
			if (brc < 0)
				rc = cli_fail(brc, err);
			else
				print_result(&c, a.name, &res, (double)(mono_ns() - t0) / 1e9);
		}
	}
	for (size_t i = 0; i < a.ndisks; i++)
		free(a.names[i]);
	return rc;
}

int cmd_backup(int argc, char **argv)
{
	return cli_exit(backup_main(argc, argv));
}
