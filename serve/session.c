/* Instant-restore and test-boot sessions (see session.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instant.h"
#include "session.h"

int cairn_serve_run_dir(char *out, size_t len, char *err, size_t errlen)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		snprintf(out, len, "/run/cairn");
	else if (xdg && *xdg)
		snprintf(out, len, "%s/cairn", xdg);
	else
		snprintf(out, len, "/tmp/cairn-%u", (unsigned)geteuid());
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "cannot create %s: %s", out, strerror(errno));
	return 0;
}

/* dir/name+suffix (namelen bytes of name); false when it does not fit */
__attribute__((noinline)) static bool join(char *out, size_t len, const char *dir,
					   const char *name, int namelen, const char *suffix)
{
	int n = snprintf(out, len, "%s/%.*s%s", dir, namelen, name, suffix);
	return n >= 0 && (size_t)n < len;
}

/* QEMU runs as libvirt-qemu: it must reach the sockets and overlays. */
static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "cannot create %s: %s", path, strerror(errno));
	if (chmod(path, mode) < 0)
		return set_err(err, errlen, -errno, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* RUN/instant/NAME (RUN/instant created) */
static int instant_run_dir(const char *name, char *out, size_t len, char *err, size_t errlen)
{
	char base[PATH_MAX - 256];
	int rc = cairn_serve_run_dir(base, sizeof(base), err, errlen);
	if (rc < 0)
		return rc;
	snprintf(out, len, "%s/instant", base);
	if ((rc = make_dir(out, 0755, err, errlen)) < 0)
		return rc;
	snprintf(out, len, "%s/instant/%s", base, name);
	return 0;
}

/* Every disk of the snapshot: sockets in ss->run, overlays NAME-DISK.qcow2
 * in ss->dir (both set), chunk maps loaded; existing overlays refused. */
static int plan_disks(struct cairn_session *ss, const struct cairn_session_opts *o, char *err,
		      size_t errlen)
{
	const struct cairn_snapshot *s = o->s;
	if (s->ndisks > CAIRN_SESSION_MAX_DISKS)
		return set_err(err, errlen, -E2BIG, "snapshot has %zu disks; at most %d", s->ndisks,
			       CAIRN_SESSION_MAX_DISKS);
	for (size_t i = 0; i < s->ndisks; i++) {
		struct cairn_session_disk *x = &ss->disks[ss->n++];
		x->d = &s->disks[i];
		char file[512];
		snprintf(file, sizeof(file), "%s-%s.qcow2", ss->name, x->d->name);
		if (!join(x->sock, sizeof(x->sock), ss->run, x->d->name, INT_MAX, ".sock") ||
		    !join(x->pidfile, sizeof(x->pidfile), ss->run, x->d->name, INT_MAX, ".pid") ||
		    !join(x->overlay, sizeof(x->overlay), ss->dir, file, INT_MAX, ""))
			return set_err(err, errlen, -ENAMETOOLONG, "%s: names too long", ss->name);
		struct stat st;
		if (lstat(x->overlay, &st) == 0)
			return set_err(err, errlen, -EEXIST, "%s exists; remove it or choose another --to",
				       x->overlay);
		int rc = cairn_snapshot_load_map(o->r, x->d);
		if (rc < 0)
			return set_err(err, errlen, rc, "%s", cairn_repo_error(o->r));
	}
	return 0;
}

/* The stored domain on the overlays; a test boot gets no network and its
 * console in a file. */
static int rewrite(struct cairn_session *ss, const struct cairn_session_opts *o,
		   const char *console, char *err, size_t errlen)
{
	struct cairn_domxml_disk disks[CAIRN_SESSION_MAX_DISKS];
	for (size_t i = 0; i < ss->n; i++)
		disks[i] = (struct cairn_domxml_disk){ .target = ss->disks[i].d->name,
						       .path = ss->disks[i].overlay,
						       .format = "qcow2" };
	struct cairn_domxml_opts x = { .name = ss->name, .disks = disks, .ndisks = ss->n,
				       .new_macs = true, .no_network = console != NULL,
				       .console_log = console };
	int rc = cairn_fwstate_plan(o->s, ss->name, &ss->fw, &x, err, errlen);
	return rc < 0 ? rc : cairn_domxml_rewrite(o->s->domain_xml, &x, &ss->domain, err, errlen);
}

static int open_host(struct cairn_session *ss, const struct cairn_session_opts *o, char *err,
		     size_t errlen)
{
	int rc = cairn_vm_host_open(o->uri, &ss->host, err, errlen);
	return rc < 0 ? rc : cairn_vm_host_preflight(ss->host, &ss->domain, true, err, errlen);
}

/* Starts the servers, then creates the overlays (ss->dir and ss->run exist). */
static int start_servers(struct cairn_session *ss, const struct cairn_session_opts *o,
			 char *err, size_t errlen)
{
	int rc;
	for (; ss->started < ss->n; ss->started++) {
		struct cairn_session_disk *x = &ss->disks[ss->started];
		struct cairn_server_opts so = *o->server;
		so.disk = x->d->name;
		so.socket = x->sock;
		so.pidfile = x->pidfile;
		so.world_connectable = true;
		struct cairn_server *srv = NULL;
		if ((rc = cairn_server_start(&so, &srv, err, errlen)) < 0)
			return rc;
		cairn_server_free(srv); /* detached: it keeps running */
	}
	for (; ss->overlays < ss->n; ss->overlays++) {
		struct cairn_session_disk *x = &ss->disks[ss->overlays];
		if ((rc = cairn_instant_overlay(x->overlay, x->sock, x->d->size, err, errlen)) < 0)
			return rc;
	}
	return 0;
}

static void stop_servers(struct cairn_session *ss)
{
	for (size_t i = 0; i < ss->started; i++)
		cairn_server_stop(ss->disks[i].pidfile, ss->disks[i].sock, NULL, 0);
	rmdir(ss->run);
}

/* Where the sockets (run) and overlays (dir) of an instant restore go. */
static int plan_instant_dirs(struct cairn_session *ss, const struct cairn_session_opts *o,
			     char *err, size_t errlen)
{
	int rc = instant_run_dir(o->name, ss->run, sizeof(ss->run), err, errlen);
	if (rc < 0)
		return rc;
	if (o->to) {
		if ((rc = make_dir(o->to, 0755, err, errlen)) < 0)
			return rc;
		if (!realpath(o->to, ss->dir))
			return set_err(err, errlen, -errno, "cannot resolve %s: %s", o->to,
				       strerror(errno));
		return 0;
	}
	if ((rc = make_dir("/var/lib/cairn", 0755, err, errlen)) < 0 ||
	    (rc = make_dir("/var/lib/cairn/instant", 0755, err, errlen)) < 0)
		return rc;
	snprintf(ss->dir, sizeof(ss->dir), "/var/lib/cairn/instant/%s", o->name);
	return 0;
}

int cairn_session_prepare_instant(struct cairn_session *ss, const struct cairn_session_opts *o,
				  char *err, size_t errlen)
{
	memset(ss, 0, sizeof(*ss));
	snprintf(ss->name, sizeof(ss->name), "%s", o->name);
	if (!o->s->domain_xml)
		return set_err(err, errlen, -ENOENT,
			       "snapshot of %s holds disk images, not a libvirt domain", o->s->name);
	int rc = plan_instant_dirs(ss, o, err, errlen);
	if (rc == 0)
		rc = plan_disks(ss, o, err, errlen);
	if (rc == 0)
		rc = rewrite(ss, o, NULL, err, errlen);
	return rc < 0 ? rc : open_host(ss, o, err, errlen);
}

/* The directories QEMU must reach (a test boot has one), the servers and
 * the overlays. */
static int serve_disks(struct cairn_session *ss, const struct cairn_session_opts *o,
		       char *err, size_t errlen)
{
	int rc = make_dir(ss->run, 0777, err, errlen);
	if (rc == 0 && strcmp(ss->dir, ss->run))
		rc = make_dir(ss->dir, 0777, err, errlen);
	return rc < 0 ? rc : start_servers(ss, o, err, errlen);
}

int cairn_session_launch_instant(struct cairn_session *ss, const struct cairn_session_opts *o,
				 char *err, size_t errlen)
{
	int rc = serve_disks(ss, o, err, errlen);
	if (rc == 0)
		rc = cairn_fwstate_write(o->r, o->s, &ss->fw, err, errlen);
	if (rc < 0)
		return rc;
	rc = cairn_vm_host_define(ss->host, ss->domain.xml, true, err, errlen);
	/* a domain that did not start stays defined: undo removes it */
	ss->defined = rc == 0 || rc != -EEXIST;
	return rc;
}

int cairn_session_pull(struct cairn_session *ss, unsigned timeout_s,
		       const volatile int *cancel, char *err, size_t errlen)
{
	const char *targets[CAIRN_SESSION_MAX_DISKS];
	for (size_t i = 0; i < ss->n; i++)
		targets[i] = ss->disks[i].d->name;
	int rc = cairn_instant_pull(ss->host, ss->domain.name, targets, ss->n, timeout_s, cancel,
				    err, errlen);
	if (rc == 0)
		stop_servers(ss);
	return rc;
}

void cairn_session_undo(struct cairn_session *ss)
{
	if (!ss->host)
		return; /* nothing was started yet */
	if (ss->defined)
		cairn_vm_host_destroy(ss->host, ss->name, NULL, 0);
	stop_servers(ss);
	for (size_t i = 0; i < ss->overlays; i++)
		unlink(ss->disks[i].overlay);
	rmdir(ss->dir);
	cairn_fwstate_remove(&ss->fw);
}

void cairn_session_free(struct cairn_session *ss)
{
	cairn_domxml_result_free(&ss->domain);
	cairn_fwstate_free(&ss->fw);
	cairn_vm_host_close(ss->host);
	ss->host = NULL;
}

/* The servers of a stopped instant restore: one pid file (and socket) per
 * disk in its run directory. */
static void stop_run_servers(const char *run)
{
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
}

int cairn_session_stop_instant(const char *name, const char *uri, char *err, size_t errlen)
{
	char run[PATH_MAX];
	int rc = instant_run_dir(name, run, sizeof(run), err, errlen);
	if (rc < 0)
		return rc;
	struct stat st;
	if (stat(run, &st) < 0)
		return set_err(err, errlen, -ENOENT, "no instant restore named %s (%s does not exist)",
			       name, run);
	_cleanup_(cairn_vm_host_closep) struct cairn_vm_host *h = NULL;
	if ((rc = cairn_vm_host_open(uri, &h, err, errlen)) < 0)
		return rc;
	rc = cairn_instant_uses(h, name, run, err, errlen);
	if (rc == 1)
		return set_err(err, errlen, -EBUSY,
			       "domain %s still reads from the repository: shut it down or "
			       "pull its disks (virsh blockpull %s DISK --wait) first",
			       name, name);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	stop_run_servers(run);
	if (rmdir(run) < 0)
		return set_err(err, errlen, -errno, "cannot remove %s: %s", run, strerror(errno));
	return 0;
}

/* Servers, overlays and the transient VM of a test boot. */
static int boot_setup(struct cairn_session *ss, const struct cairn_session_opts *o,
		      const char *console, struct cairn_boot_outcome *out, char *err,
		      size_t errlen)
{
	int rc = plan_disks(ss, o, err, errlen);
	if (rc == 0)
		rc = rewrite(ss, o, console, err, errlen);
	if (rc == 0)
		rc = open_host(ss, o, err, errlen);
	if (rc == 0)
		rc = serve_disks(ss, o, err, errlen);
	/* a copy of the original's state under the throwaway's own name and
	 * UUID, removed with it */
	if (rc == 0)
		rc = cairn_fwstate_write(o->r, o->s, &ss->fw, err, errlen);
	snprintf(out->note, sizeof(out->note), "%s", ss->fw.note);
	if (rc < 0)
		return rc;
	/* a VM that does not start is a failed test, not a local error */
	char verr[512] = "";
	int vrc = cairn_vm_host_create_transient(ss->host, ss->domain.xml, verr, sizeof(verr));
	ss->defined = vrc == 0;
	if (vrc < 0) {
		out->rc = vrc;
		snprintf(out->detail, sizeof(out->detail), "%s", verr);
	}
	return 0;
}

/* The console log's tail into keep (best effort: evidence, not the test). */
static void keep_console_tail(const char *console, const char *keep)
{
	FILE *in = fopen(console, "re");
	if (!in)
		return;
	if (fseeko(in, 0, SEEK_END) == 0 && ftello(in) > (off_t)CAIRN_BOOT_CONSOLE_TAIL)
		fseeko(in, -(off_t)CAIRN_BOOT_CONSOLE_TAIL, SEEK_END);
	else
		rewind(in);
	char tmp[PATH_MAX + 16], buf[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", keep);
	FILE *out = fopen(tmp, "we");
	size_t n;
	while (out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	if (out && fclose(out) == 0)
		rename(tmp, keep);
	else
		unlink(tmp);
}

int cairn_session_boot_test(const struct cairn_session_opts *o,
			    const struct cairn_boot_check *check, struct cairn_boot_outcome *out,
			    char *err, size_t errlen)
{
	struct cairn_session ss = { 0 };
	char console[PATH_MAX] = "";
	snprintf(ss.name, sizeof(ss.name), "%s", o->name);
	int rc = instant_run_dir(o->name, ss.run, sizeof(ss.run), err, errlen);
	if (rc == 0) {
		/* the overlays only take the guest's writes during a test boot */
		snprintf(ss.dir, sizeof(ss.dir), "%s", ss.run);
		snprintf(console, sizeof(console), "%s/console.log", ss.run);
		rc = boot_setup(&ss, o, console, out, err, errlen);
	}
	struct cairn_boot_check c = *check;
	c.console_log = console;
	if (rc == 0 && ss.defined)
		out->rc = cairn_boot_wait(ss.host, ss.domain.name, &c, &out->seconds, out->detail,
					  sizeof(out->detail));
	if (ss.host)
		cairn_session_undo(&ss);
	else
		stop_servers(&ss);
	if (check->keep_console && console[0])
		keep_console_tail(console, check->keep_console);
	unlink(console);
	rmdir(ss.run);
	cairn_session_free(&ss);
	return rc;
}
