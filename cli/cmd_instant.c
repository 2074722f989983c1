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
#include "serve_cli.h"

#define USAGE                                                                          \
	"instant-restore REPO SNAP --name NEW [--from VM] [--to DIR] [--connect URI] | " \
	"instant-restore --stop NEW [--connect URI]"
#define MAX_DISKS 32
#define PULL_TIMEOUT_S 3600

struct instant_args {
	const char *name, *from, *to, *uri, *stop;
};

struct instant_disk {
	struct cairn_disk *d;
	char sock[PATH_MAX], pidfile[PATH_MAX], overlay[PATH_MAX];
};

struct instant_run {
	char run[PATH_MAX - 128], dir[PATH_MAX - 128];
	struct instant_disk disks[MAX_DISKS];
	size_t n, started, overlays;
	bool defined;
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

/* dir/name+suffix; false when it does not fit */
static __attribute__((noinline)) bool join(char *out, size_t len, const char *dir,
					   const char *name, int namelen, const char *suffix)
{
	int n = snprintf(out, len, "%s/%.*s%s", dir, namelen, name, suffix);
	return n >= 0 && (size_t)n < len;
}

/* QEMU runs as libvirt-qemu: it must reach the sockets and overlays. */
static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return cli_error("cannot create %s: %s", path, strerror(errno));
	if (chmod(path, mode) < 0)
		return cli_error("chmod %s: %s", path, strerror(errno));
	return -1;
}

static int run_dir_for(const char *name, char *out, size_t len)
{
	char base[PATH_MAX - 256];
	int rc = serve_run_dir(base, sizeof(base));
	if (rc >= 0)
		return rc;
	snprintf(out, len, "%s/instant", base);
	if ((rc = make_dir(out, 0755)) >= 0)
		return rc;
	snprintf(out, len, "%s/instant/%s", base, name);
	return -1;
}

static int plan(const struct instant_args *a, struct serve_source *src, struct instant_run *ir)
{
	int rc = run_dir_for(a->name, ir->run, sizeof(ir->run));
	if (rc >= 0)
		return rc;
	if (a->to) {
		if ((rc = make_dir(a->to, 0755)) >= 0)
			return rc;
		if (!realpath(a->to, ir->dir))
			return cli_error("cannot resolve %s: %s", a->to, strerror(errno));
	} else {
		if ((rc = make_dir("/var/lib/cairn", 0755)) >= 0 ||
		    (rc = make_dir("/var/lib/cairn/instant", 0755)) >= 0)
			return rc;
		snprintf(ir->dir, sizeof(ir->dir), "/var/lib/cairn/instant/%s", a->name);
	}
	if (src->s->ndisks > MAX_DISKS)
		return cli_error("snapshot has %zu disks; at most %d", src->s->ndisks, MAX_DISKS);
	for (size_t i = 0; i < src->s->ndisks; i++) {
		struct instant_disk *x = &ir->disks[ir->n++];
		x->d = &src->s->disks[i];
		char file[512];
		snprintf(file, sizeof(file), "%s-%s.qcow2", a->name, x->d->name);
		if (!join(x->sock, sizeof(x->sock), ir->run, x->d->name, INT_MAX, ".sock") ||
		    !join(x->pidfile, sizeof(x->pidfile), ir->run, x->d->name, INT_MAX, ".pid") ||
		    !join(x->overlay, sizeof(x->overlay), ir->dir, file, INT_MAX, ""))
			return cli_usage("%s: names too long", a->name);
		struct stat st;
		if (lstat(x->overlay, &st) == 0)
			return cli_error("%s exists; remove it or choose another --to", x->overlay);
		if ((rc = cairn_snapshot_load_map(src->r, x->d)) < 0)
			return cli_fail(rc, cairn_repo_error(src->r));
	}
	return -1;
}

static int rewrite(const struct instant_args *a, const struct serve_source *src,
		   const struct instant_run *ir, struct cairn_domxml_result *x)
{
	struct cairn_domxml_disk disks[MAX_DISKS];
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

static int start_servers(const struct serve_source *src, struct instant_run *ir)
{
	char err[512] = "";
	int rc;
	for (; ir->started < ir->n; ir->started++) {
		struct instant_disk *x = &ir->disks[ir->started];
		struct cairn_server_opts o;
		serve_source_opts(src, x->d, &o);
		o.socket = x->sock;
		o.pidfile = x->pidfile;
		o.world_connectable = true;
		struct cairn_server *srv = NULL;
		if ((rc = cairn_server_start(&o, &srv, err, sizeof(err))) < 0)
			return cli_fail(rc, err);
		cairn_server_free(srv); /* detached: it keeps running */
	}
	for (; ir->overlays < ir->n; ir->overlays++) {
		struct instant_disk *x = &ir->disks[ir->overlays];
		if ((rc = cairn_instant_overlay(x->overlay, x->sock, x->d->size, err,
						sizeof(err))) < 0)
			return cli_fail(rc, err);
	}
	return -1;
}

static void stop_servers(struct instant_run *ir)
{
	for (size_t i = 0; i < ir->started; i++)
		cairn_server_stop(ir->disks[i].pidfile, ir->disks[i].sock, NULL, 0);
	rmdir(ir->run);
}

/* After a failure: nothing of this run stays behind. */
static void undo(struct cairn_vm_host *h, const char *name, struct instant_run *ir)
{
	if (ir->defined)
		cairn_vm_host_destroy(h, name, NULL, 0);
	stop_servers(ir);
	for (size_t i = 0; i < ir->overlays; i++)
		unlink(ir->disks[i].overlay);
	rmdir(ir->dir);
}

static int pull(const struct cli *c, struct cairn_vm_host *h, const char *name,
		struct instant_run *ir)
{
	const char *targets[MAX_DISKS];
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
	stop_servers(ir);
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
	if (rc < 0 && (rc = make_dir(ir.run, 0777)) < 0 && (rc = make_dir(ir.dir, 0777)) < 0)
		rc = start_servers(&src, &ir);
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
		undo(h, a->name, &ir);
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
	int rc = run_dir_for(a->stop, run, sizeof(run));
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
		if (join(pid, sizeof(pid), run, e->d_name, INT_MAX, "") &&
		    join(sock, sizeof(sock), run, e->d_name, (int)(len - 4), ".sock"))
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
