/* The servers and overlays of an instant run (see instant_run.h). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instant_run.h"
#include "serve/instant.h"

/* dir/name+suffix; false when it does not fit */
__attribute__((noinline)) bool instant_join(char *out, size_t len, const char *dir,
					  const char *name, int namelen, const char *suffix)
{
	int n = snprintf(out, len, "%s/%.*s%s", dir, namelen, name, suffix);
	return n >= 0 && (size_t)n < len;
}

/* QEMU runs as libvirt-qemu: it must reach the sockets and overlays. */
int instant_make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return cli_error("cannot create %s: %s", path, strerror(errno));
	if (chmod(path, mode) < 0)
		return cli_error("chmod %s: %s", path, strerror(errno));
	return -1;
}

int instant_run_dir(const char *name, char *out, size_t len)
{
	char base[PATH_MAX - 256];
	int rc = serve_run_dir(base, sizeof(base));
	if (rc >= 0)
		return rc;
	snprintf(out, len, "%s/instant", base);
	if ((rc = instant_make_dir(out, 0755)) >= 0)
		return rc;
	snprintf(out, len, "%s/instant/%s", base, name);
	return -1;
}

int instant_plan(const char *name, struct serve_source *src, struct instant_run *ir)
{
	int rc;
	if (src->s->ndisks > INSTANT_MAX_DISKS)
		return cli_error("snapshot has %zu disks; at most %d", src->s->ndisks, INSTANT_MAX_DISKS);
	for (size_t i = 0; i < src->s->ndisks; i++) {
		struct instant_disk *x = &ir->disks[ir->n++];
		x->d = &src->s->disks[i];
		char file[512];
		snprintf(file, sizeof(file), "%s-%s.qcow2", name, x->d->name);
		if (!instant_join(x->sock, sizeof(x->sock), ir->run, x->d->name, INT_MAX, ".sock") ||
		    !instant_join(x->pidfile, sizeof(x->pidfile), ir->run, x->d->name, INT_MAX, ".pid") ||
		    !instant_join(x->overlay, sizeof(x->overlay), ir->dir, file, INT_MAX, ""))
			return cli_usage("%s: names too long", name);
		struct stat st;
		if (lstat(x->overlay, &st) == 0)
			return cli_error("%s exists; remove it or choose another --to", x->overlay);
		if ((rc = cairn_snapshot_load_map(src->r, x->d)) < 0)
			return cli_fail(rc, cairn_repo_error(src->r));
	}
	return -1;
}

int instant_start_servers(const struct serve_source *src, struct instant_run *ir)
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

void instant_stop_servers(struct instant_run *ir)
{
	for (size_t i = 0; i < ir->started; i++)
		cairn_server_stop(ir->disks[i].pidfile, ir->disks[i].sock, NULL, 0);
	rmdir(ir->run);
}

/* After a failure: nothing of this run stays behind. */
void instant_undo(struct cairn_vm_host *h, const char *name, struct instant_run *ir)
{
	if (ir->defined)
		cairn_vm_host_destroy(h, name, NULL, 0);
	instant_stop_servers(ir);
	for (size_t i = 0; i < ir->overlays; i++)
		unlink(ir->disks[i].overlay);
	rmdir(ir->dir);
}

