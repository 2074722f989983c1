/* cairn restore REPO SNAP --to FILE|DIR [--disk D[=PATH] ...] [--format raw|qcow2]
 *               [--define [--as NEW] [--start] [--connect URI]
 *                [--network-map OLD=NEW ...] [--new-macs]] [--force]
 *
 * One disk to a file, or every (chosen) disk of the snapshot into a
 * directory, optionally defined and started as a libvirt domain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli.h"
#include "restore/restore.h"
#include "restore/vm.h"

#define USAGE                                                                          \
	"restore REPO SNAP [--name VM] --to FILE|DIR [--disk D[=PATH] ...] "            \
	"[--format raw|qcow2] [--force] [--define [--as NEW] [--start] [--connect URI] " \
	"[--network-map OLD=NEW ...] [--new-macs]]"
#define MAX_PICKS 64
#define MAX_MAPS 32

struct pick {
	char *disk;
	char *path; /* NULL: a file in --to */
};

struct restore_args {
	const char *to, *name, *as, *uri;
	bool define, start, new_macs, format_given;
	struct pick picks[MAX_PICKS];
	size_t npicks;
	struct cairn_domxml_map maps[MAX_MAPS];
	char *map_text[MAX_MAPS];
	size_t nmaps;
	struct cairn_restore_opts o;
};

/* One disk to restore, where, and how libvirt will see it. */
struct target {
	struct cairn_disk *d;
	char *path; /* absolute */
	enum cairn_image_format format;
	bool block;
};

static int split_pair(const char *arg, char **left, char **right)
{
	const char *eq = strchr(arg, '=');
	*left = eq ? strndup(arg, (size_t)(eq - arg)) : strdup(arg);
	*right = eq ? strdup(eq + 1) : NULL;
	return *left && (!eq || *right) ? 0 : -ENOMEM;
}

static int add_pick(struct restore_args *a, const char *arg)
{
	if (a->npicks == MAX_PICKS)
		return cli_usage("at most %d --disk options", MAX_PICKS);
	struct pick *p = &a->picks[a->npicks++];
	if (split_pair(arg, &p->disk, &p->path) < 0)
		return cli_error("out of memory");
	if (!*p->disk || (p->path && !*p->path))
		return cli_usage("--disk %s: use --disk NAME or --disk NAME=PATH", arg);
	return -1;
}

static int add_map(struct restore_args *a, const char *arg)
{
	if (a->nmaps == MAX_MAPS)
		return cli_usage("at most %d --network-map options", MAX_MAPS);
	char *from, *to;
	if (split_pair(arg, &from, &to) < 0)
		return cli_error("out of memory");
	a->map_text[a->nmaps] = from;
	a->maps[a->nmaps++] = (struct cairn_domxml_map){ from, to };
	if (!to || !*from || !*to)
		return cli_usage("--network-map %s: use --network-map OLD=NEW", arg);
	return -1;
}

static void free_args(struct restore_args *a)
{
	for (size_t i = 0; i < a->npicks; i++) {
		free(a->picks[i].disk);
		free(a->picks[i].path);
	}
	for (size_t i = 0; i < a->nmaps; i++) {
		free(a->map_text[i]);
		free((char *)a->maps[i].to);
	}
}

static int restore_option(void *ctx, int opt, const char *arg)
{
	struct restore_args *a = ctx;
	switch (opt) {
	case 'd': return add_pick(a, arg);
	case 'o': a->to = arg; return -1;
	case 'n': a->name = arg; return -1;
	case 'f': a->o.force = true; return -1;
	case 'D': a->define = true; return -1;
	case 'S': a->start = a->define = true; return -1;
	case 'A': a->as = arg; return -1;
	case 'c': a->uri = arg; return -1;
	case 'm': return add_map(a, arg);
	case 'M': a->new_macs = true; return -1;
	case 'F':
		a->format_given = true;
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

static void disk_names(const struct cairn_snapshot *s, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < s->ndisks; i++) {
		size_t at = strlen(out);
		snprintf(out + at, len - at, "%s%s", i ? ", " : "", s->disks[i].name);
	}
}

static bool is_dir(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_block(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* libvirt needs absolute paths; the file itself does not exist yet. */
static char *absolute(const char *path)
{
	char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
	char real[PATH_MAX];
	if (!dir || !realpath(dir, real))
		return NULL;
	char *out;
	return asprintf(&out, "%s/%s", real, slash ? slash + 1 : path) < 0 ? NULL : out;
}

static const char *ext(enum cairn_image_format f)
{
	return f == CAIRN_FMT_QCOW2 ? "qcow2" : "raw";
}

static int plan_target(struct restore_args *a, const struct cairn_snapshot *s,
		       struct cairn_disk *d, const char *explicit_path, bool dir_mode,
		       struct target *t)
{
	t->d = d;
	t->format = a->o.format;
	_cleanup_free_ char *path = NULL;
	if (explicit_path)
		path = strdup(explicit_path);
	else if (!dir_mode)
		path = strdup(a->to);
	else if (asprintf(&path, "%s/%s-%s.%s", a->to, a->as ? a->as : s->name, d->name,
			  ext(t->format)) < 0)
		path = NULL;
	if (!path)
		return cli_error("out of memory");
	t->block = is_block(path);
	if (t->block && a->format_given && t->format == CAIRN_FMT_QCOW2)
		return cli_usage("%s is a block device: disks are written to devices as raw",
				 path);
	if (t->block)
		t->format = CAIRN_FMT_RAW;
	if (t->block && !a->o.force)
		return cli_error("%s is a block device; use --force to overwrite it", path);
	struct stat st;
	if (!t->block && !a->o.force && lstat(path, &st) == 0)
		return cli_error("%s exists; use --force to replace it", path);
	if (!(t->path = t->block ? strdup(path) : absolute(path)))
		return cli_error("cannot resolve %s: %s", path, strerror(errno ? errno : ENOMEM));
	return -1;
}

/* Every disk of the snapshot, or the ones --disk names. */
static int plan(struct restore_args *a, struct cairn_snapshot *s, struct target *t,
		size_t *nt)
{
	char names[512];
	disk_names(s, names, sizeof(names));
	size_t n = a->npicks ? a->npicks : s->ndisks;
	size_t tolen = a->to ? strlen(a->to) : 0;
	bool dir_mode = a->define || is_dir(a->to) || (tolen && a->to[tolen - 1] == '/');
	if (n > 1 && !dir_mode && a->to)
		return cli_usage("snapshot has %zu disks (%s): restore them into a directory "
				 "(--to DIR/) or choose one with --disk",
				 n, names);
	bool need_to = false;
	for (size_t i = 0; i < a->npicks; i++)
		need_to |= !a->picks[i].path;
	if ((need_to || !a->npicks) && !a->to)
		return cli_usage("say where to restore with --to FILE|DIR (or --disk D=PATH)");
	if (dir_mode && a->to && !is_dir(a->to) && mkdir(a->to, 0755) < 0)
		return cli_error("cannot create directory %s: %s", a->to, strerror(errno));
	*nt = 0;
	for (size_t i = 0; i < n; i++) {
		const char *want = a->npicks ? a->picks[i].disk : s->disks[i].name;
		struct cairn_disk *d = (struct cairn_disk *)cairn_snapshot_disk(s, want);
		if (!d)
			return cli_error("snapshot has no disk %s (disks: %s)", want, names);
		int rc = plan_target(a, s, d, a->npicks ? a->picks[i].path : NULL, dir_mode,
				     &t[(*nt)++]);
		if (rc >= 0)
			return rc;
	}
	return -1;
}

static void free_targets(struct target *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].path);
}

static int rewrite_xml(const struct restore_args *a, const struct cairn_snapshot *s,
		       const struct target *t, size_t nt, struct cairn_domxml_result *x)
{
	struct cairn_domxml_disk disks[MAX_PICKS];
	for (size_t i = 0; i < nt; i++)
		disks[i] = (struct cairn_domxml_disk){ .target = t[i].d->name,
						       .path = t[i].path,
						       .format = ext(t[i].format),
						       .block = t[i].block };
	struct cairn_domxml_opts o = { .name = a->as, .disks = disks, .ndisks = nt,
				       .net_map = a->maps, .nnet_map = a->nmaps,
				       .new_macs = a->new_macs };
	char err[512] = "";
	int rc = cairn_domxml_rewrite(s->domain_xml, &o, x, err, sizeof(err));
	return rc < 0 ? cli_fail(rc, err) : -1;
}

static int restore_one(const struct cli *c, struct cairn_repo *r,
		       struct restore_args *a, struct target *t, json_t *jdisks)
{
	struct progress p;
	progress_init(&p, c, "restore");
	struct cairn_restore_opts o = a->o;
	o.target = t->path;
	o.format = t->format;
	o.progress = progress_update;
	o.progress_opaque = &p;
	o.cancel = &cli_interrupted;
	struct cairn_restore_result res;
	char err[512] = "";
	int64_t t0 = mono_ns();
	int rc = cairn_restore_disk(r, t->d, &o, &res, err, sizeof(err));
	progress_done(&p);
	if (rc < 0)
		return cli_fail(rc, err);
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (c->json)
		json_array_append_new(jdisks, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:f}",
							"disk", t->d->name, "to", t->path,
							"format", ext(t->format), "size",
							(json_int_t)res.bytes, "bytes_written",
							(json_int_t)res.bytes_written, "digest_ok",
							t->d->has_digest, "seconds", secs));
	else if (!c->quiet) {
		char size[32];
		format_bytes(res.bytes, size, sizeof(size));
		printf("restored disk %s (%s) to %s, %s verified, %.1fs\n", t->d->name, size,
		       t->path, t->d->has_digest ? "whole-disk digest and chunks" : "chunks",
		       secs);
	}
	return -1;
}

static int check_option_mix(const struct restore_args *a)
{
	if (!a->define && (a->as || a->uri || a->nmaps || a->new_macs))
		return cli_usage("--as, --connect, --network-map and --new-macs go with --define");
	return -1;
}

struct vm_step {
	struct cairn_vm_host *host;
	struct cairn_domxml_result x;
};

static int prepare_define(const struct restore_args *a, const struct cairn_snapshot *s,
			  const struct target *t, size_t nt, struct vm_step *v)
{
	int rc = rewrite_xml(a, s, t, nt, &v->x);
	if (rc >= 0)
		return rc;
	char err[512] = "";
	if ((rc = cairn_vm_host_open(a->uri, &v->host, err, sizeof(err))) < 0 ||
	    (rc = cairn_vm_host_preflight(v->host, &v->x, a->start, err, sizeof(err))) < 0)
		return cli_fail(rc, err);
	return -1;
}

static int finish_define(const struct cli *c, const struct restore_args *a,
			 struct vm_step *v, json_t *out)
{
	char err[512] = "";
	int rc = cairn_vm_host_define(v->host, v->x.xml, a->start, err, sizeof(err));
	if (rc < 0)
		return cli_fail(rc, err);
	if (c->json) {
		json_t *dropped = json_array();
		for (size_t i = 0; i < v->x.ndropped; i++)
			json_array_append_new(dropped, json_string(v->x.dropped[i]));
		json_object_set_new(out, "domain", json_string(v->x.name));
		json_object_set_new(out, "started", json_boolean(a->start));
		json_object_set_new(out, "dropped_disks", dropped);
		return -1;
	}
	for (size_t i = 0; i < v->x.ndropped; i++)
		cli_warn("disk %s was not restored and is left out of domain %s",
			 v->x.dropped[i], v->x.name);
	if (!c->quiet)
		printf("defined domain %s%s\n", v->x.name, a->start ? " and started it" : "");
	return -1;
}

static int run(const struct cli *c, struct restore_args *a, char **argv)
{
	int rc = check_option_mix(a);
	if (rc >= 0)
		return rc;
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(c, argv[1], &r)) != EXIT_OK)
		return rc;
	if ((rc = cairn_repo_load_index(r)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	cli_print_warnings(r);
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cairn_snapshot_find(r, argv[2], a->name, &s)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (a->define && !s->domain_xml)
		return cli_error("snapshot of %s holds a disk image, not a libvirt domain: "
				 "there is nothing to --define",
				 s->name);
	struct target t[MAX_PICKS] = { 0 };
	size_t nt = 0;
	struct vm_step v = { 0 };
	json_t *out = json_object(), *jdisks = json_array();
	json_object_set_new(out, "disks", jdisks);
	rc = plan(a, s, t, &nt);
	if (rc < 0 && a->define)
		rc = prepare_define(a, s, t, nt, &v);
	cli_catch_signals();
	for (size_t i = 0; rc < 0 && i < nt; i++)
		rc = restore_one(c, r, a, &t[i], jdisks);
	if (rc < 0 && a->define)
		rc = finish_define(c, a, &v, out);
	if (rc < 0 && c->json)
		json_print(json_incref(nt == 1 && !a->define ? json_array_get(jdisks, 0) : out));
	json_decref(out);
	cairn_domxml_result_free(&v.x);
	cairn_vm_host_close(v.host);
	free_targets(t, nt);
	return rc < 0 ? EXIT_OK : rc;
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
		{ "define", no_argument, NULL, 'D' },
		{ "start", no_argument, NULL, 'S' },
		{ "as", required_argument, NULL, 'A' },
		{ "connect", required_argument, NULL, 'c' },
		{ "network-map", required_argument, NULL, 'm' },
		{ "new-macs", no_argument, NULL, 'M' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct restore_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", restore_option, &a, USAGE, &nargs);
	if (rc < 0)
		rc = nargs == 2 ? run(&c, &a, argv) : cli_usage("usage: cairn %s", USAGE);
	free_args(&a);
	return rc;
}
