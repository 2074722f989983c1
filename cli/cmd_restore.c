/* cairn restore REPO SNAP --to FILE|DIR [--disk D[=PATH] ...] [--format raw|qcow2]
 *               [--define [--as NEW] [--start] [--connect URI]
 *                [--network-map OLD=NEW ...] [--new-macs]] [--force] [--resume]
 *
 * One disk to a file, or every (chosen) disk of the snapshot into a
 * directory, optionally defined and started as a libvirt domain
 * (restore/vm_restore.h does it; this file parses and prints). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli.h"
#include "restore/vm_restore.h"

#define USAGE                                                                          \
	"restore REPO SNAP [--name VM] --to FILE|DIR [--disk D[=PATH] ...] "            \
	"[--format raw|qcow2] [--force] [--resume] [--define [--as NEW] [--start] [--connect URI] " \
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
	enum cairn_image_format format;
	bool force, resume;
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
	return 0;
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
	return 0;
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
	case 'o': a->to = arg; return 0;
	case 'n': a->name = arg; return 0;
	case 'f': a->force = true; return 0;
	case 'R': a->resume = true; return 0;
	case 'D': a->define = true; return 0;
	case 'S': a->start = a->define = true; return 0;
	case 'A': a->as = arg; return 0;
	case 'c': a->uri = arg; return 0;
	case 'm': return add_map(a, arg);
	case 'M': a->new_macs = true; return 0;
	case 'F':
		a->format_given = true;
		if (!strcmp(arg, "raw"))
			a->format = CAIRN_FMT_RAW;
		else if (!strcmp(arg, "qcow2"))
			a->format = CAIRN_FMT_QCOW2;
		else
			return cli_usage("--format %s: use raw or qcow2", arg);
		return 0;
	}
	return cli_usage("restore: unexpected option");
}

/* Each disk gets a progress line while it is written and its line (or JSON
 * object) when done. */
struct disk_output {
	const struct cli *c;
	struct progress p;
	json_t *jdisks;
};

static void disk_begin(void *opaque, const struct cairn_vm_restore_target *t,
		       struct cairn_restore_opts *o)
{
	(void)t;
	struct disk_output *out = opaque;
	progress_init(&out->p, out->c, "restore");
	o->progress = progress_update;
	o->progress_opaque = &out->p;
}

static void disk_done(void *opaque, const struct cairn_vm_restore_target *t, int rc,
		      const struct cairn_restore_result *res, double secs)
{
	struct disk_output *out = opaque;
	progress_done(&out->p);
	if (rc < 0)
		return;
	if (out->c->json)
		json_array_append_new(out->jdisks,
				      json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:f}", "disk",
						t->d->name, "to", t->path, "format",
						cairn_image_format_name(t->format), "size",
						(json_int_t)res->bytes, "bytes_written",
						(json_int_t)res->bytes_written, "digest_ok",
						t->d->has_digest || t->d->has_digest2,
						"seconds", secs));
	else if (!out->c->quiet) {
		char size[32];
		format_bytes(res->bytes, size, sizeof(size));
		printf("restored disk %s (%s) to %s, %s verified, %.1fs\n", t->d->name, size,
		       t->path,
		       t->d->has_digest || t->d->has_digest2 ? "whole-disk digest and chunks"
							     : "chunks",
		       secs);
	}
}

static int check_option_mix(const struct restore_args *a)
{
	if (!a->define && (a->as || a->uri || a->nmaps || a->new_macs))
		return cli_usage("--as, --connect, --network-map and --new-macs go with --define");
	return 0;
}

static void print_defined(const struct cli *c, const struct restore_args *a,
			  const struct cairn_vm_restore *v, json_t *out)
{
	const struct cairn_domxml_result *x = &v->domain;
	const char *fw = cairn_fwstate_what(&v->fw);
	if (v->fw.note[0])
		fprintf(stderr, "cairn: note: %s\n", v->fw.note);
	if (c->json) {
		json_object_set_new(out, "firmware_state", fw ? json_string(fw) : json_null());
		json_t *dropped = json_array();
		for (size_t i = 0; i < x->ndropped; i++)
			json_array_append_new(dropped, json_string(x->dropped[i]));
		json_object_set_new(out, "domain", json_string(x->name));
		json_object_set_new(out, "started", json_boolean(a->start));
		json_object_set_new(out, "dropped_disks", dropped);
		return;
	}
	for (size_t i = 0; i < x->ndropped; i++)
		cli_warn("disk %s was not restored and is left out of domain %s", x->dropped[i],
			 x->name);
	if (!c->quiet && fw)
		printf("restored the %s of domain %s\n", fw, x->name);
	if (!c->quiet)
		printf("defined domain %s%s\n", x->name, a->start ? " and started it" : "");
}

static struct cairn_vm_restore_opts vm_opts(const struct restore_args *a,
					    struct cairn_vm_restore_pick *picks,
					    struct disk_output *out)
{
	for (size_t i = 0; i < a->npicks; i++)
		picks[i] = (struct cairn_vm_restore_pick){ a->picks[i].disk, a->picks[i].path };
	return (struct cairn_vm_restore_opts){
		.to = a->to, .picks = picks, .npicks = a->npicks, .format = a->format,
		.format_given = a->format_given, .force = a->force, .resume = a->resume,
		.define = a->define,
		.start = a->start, .as = a->as, .uri = a->uri, .net_map = a->maps,
		.nnet_map = a->nmaps, .new_macs = a->new_macs, .cancel = &cli_interrupted,
		.disk_begin = disk_begin, .disk_done = disk_done, .opaque = out };
}

static int run(const struct cli *c, struct restore_args *a, char **argv)
{
	int rc = check_option_mix(a);
	if (rc)
		return rc;
	cli_catch_signals(); /* also while the repository opens (scrypt) */
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(c, argv[1], &r)) < 0 || (rc = cli_need_full(r)) < 0)
		return rc;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cli_find_snapshot_indexed(r, argv[2], a->name, &s)) < 0)
		return rc;
	if (!s->ndisks) { /* no writer stores one: restoring nothing is no success */
		char id[65], msg[160];
		id_hex(&s->id, id);
		snprintf(msg, sizeof(msg), "snapshot %.12s holds no disk: it is damaged", id);
		cli_print_warnings(r);
		return cli_fail(-EBADMSG, msg);
	}
	json_t *out = json_object(), *jdisks = json_array();
	json_object_set_new(out, "disks", jdisks);
	json_object_set_new(out, "warnings", cli_warnings_json(r));
	cli_print_warnings(r);
	struct disk_output dout = { .c = c, .jdisks = jdisks };
	struct cairn_vm_restore_pick picks[MAX_PICKS];
	struct cairn_vm_restore_opts o = vm_opts(a, picks, &dout);
	struct cairn_vm_restore v;
	char err[512] = "";
	int code = 0;
	/* -EINVAL from the plan: the request does not fit the snapshot */
	rc = cairn_vm_restore_plan(s, &o, &v, err, sizeof(err));
	if (rc < 0)
		code = rc == -EINVAL ? cli_usage("%s", err) : cli_fail(rc, err);
	if (rc == 0) {
		rc = cairn_vm_restore_run(r, s, &o, &v, err, sizeof(err));
		code = rc < 0 ? cli_fail(rc, err) : 0;
	}
	if (rc == 0 && a->define)
		print_defined(c, a, &v, out);
	if (rc == 0 && c->json) {
		json_t *shown = v.ntargets == 1 && !a->define ? json_array_get(jdisks, 0) : out;
		json_object_set(shown, "warnings", json_object_get(out, "warnings"));
		json_print(json_incref(shown));
	}
	json_decref(out);
	cairn_vm_restore_free(&v);
	return code;
}

static int restore_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "disk", required_argument, NULL, 'd' },
		{ "to", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'F' },
		{ "force", no_argument, NULL, 'f' },
		{ "resume", no_argument, NULL, 'R' },
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
	if (rc == 0)
		rc = nargs == 2 ? run(&c, &a, argv) : cli_usage("usage: cairn %s", USAGE);
	free_args(&a);
	return rc;
}

int cmd_restore(int argc, char **argv)
{
	return cli_exit(restore_main(argc, argv));
}
