/* cairn instant-restore REPO SNAP --name NEW [--from VM] [--to DIR] [--connect URI]
 * cairn instant-restore --stop NEW
 *
 * Defines and starts a VM from a snapshot within seconds: each disk is a
 * qcow2 overlay backed by a cairn server (NBD on a unix socket in
 * RUN/instant/NEW). With --to the overlays live in DIR and are pulled full
 * (block pull), then the servers stop; without, the overlays live in
 * /var/lib/cairn/instant/NEW and the servers stay until --stop. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "restore/domxml.h"
#include "restore/vm.h"
#include "serve/instant.h"
#include "instant_run.h"

#define USAGE                                                                          \
	"instant-restore REPO SNAP --name NEW [--from VM] [--to DIR] [--connect URI] | " \
	"instant-restore --stop NEW [--connect URI]"
#define PULL_TIMEOUT_S 3600

struct instant_args {
	const char *name, *from, *to, *uri, *stop;
};

static int instant_option(void *ctx, int opt, const char *arg)
{
	struct instant_args *a = ctx;
	switch (opt) {
	case 'n': a->name = arg; return -1;
	case 'f': a->from = arg; return -1;
	case 'o': a->to = arg; return -1;
	case 'c': a->uri = arg; return -1;
	case 'S': a->stop = arg; return -1;
	}
	return cli_usage("instant-restore: unexpected option");
}

/* Where the sockets (run) and overlays (dir) of this run go. */
static int plan(const struct instant_args *a, struct serve_source *src, struct instant_run *ir)
{
	int rc = instant_run_dir(a->name, ir->run, sizeof(ir->run));
	if (rc >= 0)
		return rc;
	if (a->to) {
		if ((rc = instant_make_dir(a->to, 0755)) >= 0)
			return rc;
		if (!realpath(a->to, ir->dir))
			return cli_error("cannot resolve %s: %s", a->to, strerror(errno));
	} else {
		if ((rc = instant_make_dir("/var/lib/cairn", 0755)) >= 0 ||
		    (rc = instant_make_dir("/var/lib/cairn/instant", 0755)) >= 0)
			return rc;
		snprintf(ir->dir, sizeof(ir->dir), "/var/lib/cairn/instant/%s", a->name);
	}
	return instant_plan(a->name, src, ir);
}

static int rewrite(const struct instant_args *a, const struct serve_source *src,
		   const struct instant_run *ir, struct cairn_domxml_result *x)
{
	struct cairn_domxml_disk disks[INSTANT_MAX_DISKS];
	for (size_t i = 0; i < ir->n; i++)
		disks[i] = (struct cairn_domxml_disk){ .target = ir->disks[i].d->name,
						       .path = ir->disks[i].overlay,
						       .format = "qcow2" };
	struct cairn_domxml_opts o = { .name = a->name, .disks = disks, .ndisks = ir->n,
				       .new_macs = true };
	char err[512] = "";
	int rc = cairn_domxml_rewrite(src->s->domain_xml, &o, x, err, sizeof(err));
	return rc < 0 ? cli_fail(rc, err) : -1;
}

static int pull(const struct cli *c, struct cairn_vm_host *h, const char *name,
		struct instant_run *ir)
{
	const char *targets[INSTANT_MAX_DISKS];
	for (size_t i = 0; i < ir->n; i++)
		targets[i] = ir->disks[i].d->name;
	if (!c->quiet && !c->json)
		printf("pulling %zu disk(s) into %s ...\n", ir->n, ir->dir);
	fflush(stdout);
	char err[512] = "";
	int rc = cairn_instant_pull(h, name, targets, ir->n, PULL_TIMEOUT_S, &cli_interrupted,
				    err, sizeof(err));
	if (rc < 0)
		return cli_fail(rc, err);
	instant_stop_servers(ir);
	return -1;
}

static int restore_instant(const struct cli *c, const struct instant_args *a, char **argv)
{
	struct serve_source src;
	int rc = serve_source_open(c, argv[1], argv[2], a->from, &src);
	if (rc < 0 && !src.s->domain_xml)
		rc = cli_error("snapshot of %s holds disk images, not a libvirt domain", src.s->name);
	struct instant_run ir = { 0 };
	struct cairn_domxml_result x = { 0 };
	_cleanup_(cairn_vm_host_closep) struct cairn_vm_host *h = NULL;
	char err[512] = "";
	if (rc < 0)
		rc = plan(a, &src, &ir);
	if (rc < 0)
		rc = rewrite(a, &src, &ir, &x);
	if (rc < 0) {
		int vrc = cairn_vm_host_open(a->uri, &h, err, sizeof(err));
		if (vrc == 0)
			vrc = cairn_vm_host_preflight(h, &x, true, err, sizeof(err));
		rc = vrc < 0 ? cli_fail(vrc, err) : -1;
	}
	cli_catch_signals();
	if (rc < 0 && (rc = instant_make_dir(ir.run, 0777)) < 0 && (rc = instant_make_dir(ir.dir, 0777)) < 0)
		rc = instant_start_servers(&src, &ir);
	if (rc < 0) {
		int vrc = cairn_vm_host_define(h, x.xml, true, err, sizeof(err));
		ir.defined = vrc == 0 || vrc != -EEXIST;
		rc = vrc < 0 ? cli_fail(vrc, err) : -1;
	}
	if (rc < 0 && !c->quiet && !c->json)
		printf("domain %s started from snapshot %.12s (%s); disks are overlays in %s\n",
		       x.name, src.snap_hex, src.s->name, ir.dir);
	if (rc < 0 && a->to)
		rc = pull(c, h, x.name, &ir);
	if (rc >= 0 && h)
		instant_undo(h, a->name, &ir);
	else if (c->json)
		json_print(json_pack("{s:s, s:s, s:s, s:b, s:s}", "domain", x.name, "snapshot",
				     src.snap_hex, "overlays", ir.dir, "pulled", a->to != NULL,
				     "run_dir", ir.run));
	else if (!c->quiet)
		printf(a->to ? "all disks are local now; the repository servers are stopped\n"
			     : "servers run from %s; after a block pull or shutdown: cairn instant-restore --stop %s\n",
		       ir.run, a->name);
	cairn_domxml_result_free(&x);
	serve_source_close(&src);
	return rc < 0 ? EXIT_OK : rc;
}

static int stop(const struct cli *c, const struct instant_args *a)
{
	char run[PATH_MAX], err[512] = "";
	int rc = instant_run_dir(a->stop, run, sizeof(run));
	if (rc >= 0)
		return rc;
	struct stat st;
	if (stat(run, &st) < 0)
		return cli_error("no instant restore named %s (%s does not exist)", a->stop, run);
	_cleanup_(cairn_vm_host_closep) struct cairn_vm_host *h = NULL;
	if ((rc = cairn_vm_host_open(a->uri, &h, err, sizeof(err))) < 0)
		return cli_fail(rc, err);
	rc = cairn_instant_uses(h, a->stop, run, err, sizeof(err));
	if (rc == 1)
		return cli_error("domain %s still reads from the repository: shut it down or "
				 "pull its disks (virsh blockpull %s DISK --wait) first",
				 a->stop, a->stop);
	if (rc < 0 && rc != -ENOENT)
		return cli_fail(rc, err);
	DIR *d = opendir(run);
	for (struct dirent *e; d && (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".pid"))
			continue;
		char pid[PATH_MAX], sock[PATH_MAX];
		if (instant_join(pid, sizeof(pid), run, e->d_name, INT_MAX, "") &&
		    instant_join(sock, sizeof(sock), run, e->d_name, (int)(len - 4), ".sock"))
			cairn_server_stop(pid, sock, NULL, 0);
	}
	if (d)
		closedir(d);
	if (rmdir(run) < 0)
		return cli_error("cannot remove %s: %s", run, strerror(errno));
	if (!c->quiet && !c->json)
		printf("stopped the servers of %s\n", a->stop);
	return EXIT_OK;
}

int cmd_instant(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'o' },
		{ "connect", required_argument, NULL, 'c' },
		{ "stop", required_argument, NULL, 'S' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct instant_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", instant_option, &a, USAGE, &nargs);
	if (rc >= 0)
		return rc;
	if (a.stop)
		return nargs == 0 ? stop(&c, &a) : cli_usage("usage: cairn %s", USAGE);
	if (nargs != 2 || !a.name)
		return cli_usage("usage: cairn %s", USAGE);
	return restore_instant(&c, &a, argv);
}
