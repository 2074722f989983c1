/* cairn restore REPO SNAP [--disk D] --to FILE [--format raw|qcow2] [--force] */
#include <errno.h>
#include <stdio.h>

#include "cli.h"
#include "restore/restore.h"

#define USAGE "restore REPO SNAP [--name N] [--disk D] --to FILE [--format raw|qcow2] [--force]"

struct restore_args {
	const char *disk, *to, *name;
	struct cairn_restore_opts o;
};

static int restore_option(void *ctx, int opt, const char *arg)
{
	struct restore_args *a = ctx;
	switch (opt) {
	case 'd': a->disk = arg; return -1;
	case 'o': a->to = arg; return -1;
	case 'n': a->name = arg; return -1;
	case 'f': a->o.force = true; return -1;
	case 'F':
		if (!strcmp(arg, "raw"))
			a->o.format = CAIRN_FMT_RAW;
		else if (!strcmp(arg, "qcow2"))
			a->o.format = CAIRN_FMT_QCOW2;
		else
			return cli_usage("--format %s: use raw or qcow2", arg);
		return -1;
	}
	return cli_usage("restore: unexpected option");
}

static struct cairn_disk *pick_disk(struct cairn_snapshot *s, const char *name)
{
	if (name)
		return (struct cairn_disk *)cairn_snapshot_disk(s, name);
	return s->ndisks == 1 ? &s->disks[0] : NULL;
}

static void disk_names(const struct cairn_snapshot *s, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < s->ndisks; i++) {
		size_t at = strlen(out);
		snprintf(out + at, len - at, "%s%s", i ? ", " : "", s->disks[i].name);
	}
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "disk", required_argument, NULL, 'd' },
		{ "to", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'F' },
		{ "force", no_argument, NULL, 'f' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct restore_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", restore_option, &a, USAGE, &nargs);
	if (rc >= 0)
		return rc;
	if (nargs != 2 || !a.to)
		return cli_usage("usage: cairn %s", USAGE);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[1], &r)) != EXIT_OK)
		return rc;
	if ((rc = cairn_repo_load_index(r)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	cli_print_warnings(r);
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cairn_snapshot_find(r, argv[2], a.name, &s)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	struct cairn_disk *d = pick_disk(s, a.disk);
	if (!d) {
		char names[512];
		disk_names(s, names, sizeof(names));
		if (a.disk)
			return cli_error("snapshot has no disk %s (disks: %s)", a.disk, names);
		return cli_usage("snapshot has %zu disks (%s): choose one with --disk", s->ndisks,
				 names);
	}
	struct progress p;
	progress_init(&p, &c, "restore");
	a.o.target = a.to;
	a.o.progress = progress_update;
	a.o.progress_opaque = &p;
	a.o.cancel = &cli_interrupted;
	cli_catch_signals();
	struct cairn_restore_result res;
	char err[512] = "";
	int64_t t0 = mono_ns();
	rc = cairn_restore_disk(r, d, &a.o, &res, err, sizeof(err));
	progress_done(&p);
	if (rc < 0)
		return cli_fail(rc, err);
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (c.json)
		json_print(json_pack("{s:s, s:s, s:I, s:I, s:b, s:f}", "disk", d->name, "to",
				     a.to, "size", (json_int_t)res.bytes, "bytes_written",
				     (json_int_t)res.bytes_written, "digest_ok", d->has_digest, "seconds",
				     secs));
	else if (!c.quiet) {
		char size[32];
		format_bytes(res.bytes, size, sizeof(size));
		printf("restored disk %s (%s) to %s, %s verified, %.1fs\n", d->name, size,
		       a.to, d->has_digest ? "whole-disk digest and chunk ids" : "chunk ids", secs);
	}
	return EXIT_OK;
}
