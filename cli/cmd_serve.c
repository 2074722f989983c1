/* cairn serve REPO SNAP [--name VM] [--disk D] (--socket PATH | --port P
 *             [--address A]) [--pidfile F] [--foreground]
 *
 * One disk of a snapshot as a read-only NBD export (nbdkit and the cairn
 * plugin), served straight from the repository. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "serve/session.h"
#include "serve_cli.h"
#include "serve/blob_cache.h"

#define USAGE                                                                  \
	"serve REPO SNAP [--name VM] [--disk D] (--socket PATH | --port P [--address A]) " \
	"[--pidfile F] [--foreground] " SERVE_CACHE_USAGE " | serve --stop (--socket PATH | --port P | --pidfile F)"

static int open_with_password(const struct cli *c, const char *url, struct serve_source *src)
{
	_cleanup_free_ char *pw = NULL;
	int rc = cli_open_repo_keep(c, url, &src->r, &pw);
	if (rc < 0 || (rc = cli_need_full(src->r)) < 0)
		return rc;
	if (c->password_file && !realpath(c->password_file, src->password_file))
		return cli_error("cannot resolve %s: %s", c->password_file, strerror(errno));
	if (cairn_repo_encrypted(src->r) && !c->password_file)
		src->password = TAKE_PTR(pw);
	return 0;
}

int serve_cache_option(struct serve_cache_args *a, int opt, const char *arg)
{
	if (opt == SERVE_OPT_CACHE_DIR) {
		a->dir = arg;
		return 0;
	}
	if (parse_size(arg, &a->size) < 0)
		return cli_usage("--cache-size %s: give a size, e.g. 2G (0: no cache)", arg);
	a->size_set = true;
	return 0;
}

/* The default cache directory: $XDG_CACHE_HOME/cairn, else
 * /var/cache/cairn as root, else ~/.cache/cairn. */
static int default_cache_dir(char *out, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n = xdg && *xdg	 ? snprintf(out, len, "%s/cairn", xdg)
		: geteuid() == 0 ? snprintf(out, len, "/var/cache/cairn")
		: home && *home	 ? snprintf(out, len, "%s/.cache/cairn", home)
				 : -1;
	return n > 0 && (size_t)n < len ? 0 : cli_error("no cache directory: set --cache-dir");
}

/* On for a remote repository (or when asked for), off for a local one
 * and with --cache-size 0. nbdkit leaves the working directory: the
 * directory goes absolute. */
static int settle_cache(const struct serve_cache_args *a, bool remote, struct serve_source *src)
{
	src->cache_size = a && a->size_set ? a->size : BLOB_CACHE_DEFAULT_SIZE;
	if ((a && a->size_set && a->size == 0) || (!remote && !(a && (a->dir || a->size_set))))
		return 0;
	if (!(a && a->dir))
		return default_cache_dir(src->cache_dir, sizeof(src->cache_dir));
	char cwd[PATH_MAX] = "";
	if (a->dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return cli_error("getcwd: %s", strerror(errno));
	int n = snprintf(src->cache_dir, sizeof(src->cache_dir), "%s%s%s", cwd, *cwd ? "/" : "",
			 a->dir);
	return n > 0 && (size_t)n < sizeof(src->cache_dir) ? 0
		: cli_usage("%s: path too long", a->dir);
}

static int open_source(const struct cli *c, const char *repo, const char *snap,
		       const char *name, const struct serve_cache_args *cache,
		       struct serve_source *src)
{
	memset(src, 0, sizeof(*src));
	int rc = open_with_password(c, repo, src);
	if (rc)
		return rc;
	/* nbdkit leaves the working directory: a local path goes absolute */
	bool remote = !strncmp(repo, "s3:", 3) || !strncmp(repo, "sftp:", 5);
	if (remote ? snprintf(src->repo, sizeof(src->repo), "%s", repo) >= (int)sizeof(src->repo)
		   : !realpath(repo, src->repo))
		return cli_error("cannot resolve %s: %s", repo, strerror(remote ? ENAMETOOLONG : errno));
	if ((rc = settle_cache(cache, remote, src)) < 0)
		return rc;
	src->backend = c->backend;
	const char **files[] = { &src->backend.credentials_file, &src->backend.identity_file,
				 &src->backend.known_hosts_file };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (!*files[i])
			continue;
		if (!realpath(*files[i], src->backend_files[i]))
			return cli_error("cannot resolve %s: %s", *files[i], strerror(errno));
		*files[i] = src->backend_files[i];
	}
	if ((rc = cli_find_snapshot_indexed(src->r, snap, name, &src->s)) < 0)
		return rc;
	src->warnings = cli_warnings_json(src->r);
	cli_print_warnings(src->r);
	id_hex(&src->s->id, src->snap_hex);
	char err[512] = "";
	if ((rc = cairn_server_find_plugin(src->plugin, sizeof(src->plugin), err, sizeof(err))) < 0)
		return cli_fail(rc, err);
	return 0;
}

int serve_source_open(const struct cli *c, const char *repo, const char *snap,
		      const char *name, const struct serve_cache_args *cache,
		      struct serve_source *src)
{
	int rc = open_source(c, repo, snap, name, cache, src);
	if (rc < 0)
		serve_source_close(src);
	return rc;
}

struct cairn_disk *serve_source_disk(struct serve_source *src, const char *disk, int *rc)
{
	char names[512];
	cairn_snapshot_disk_names(src->s, names, sizeof(names));
	struct cairn_disk *d = NULL;
	if (disk && !(d = (struct cairn_disk *)cairn_snapshot_disk(src->s, disk)))
		*rc = cli_error("snapshot has no disk %s (disks: %s)", disk, names);
	else if (!disk && src->s->ndisks != 1)
		*rc = cli_usage("snapshot has %zu disks (%s): choose one with --disk",
				src->s->ndisks, names);
	else if (!disk)
		d = &src->s->disks[0];
	int lrc = d ? cairn_snapshot_load_map(src->r, d) : 0;
	if (lrc < 0) {
		*rc = cli_fail(lrc, cairn_repo_error(src->r));
		d = NULL;
	}
	return d;
}

void serve_source_opts(const struct serve_source *src, const struct cairn_disk *d,
		       struct cairn_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->plugin = src->plugin;
	o->repo = src->repo;
	o->snapshot = src->snap_hex;
	o->disk = d ? d->name : NULL;
	o->password_file = src->password_file[0] ? src->password_file : NULL;
	o->password = src->password;
	o->backend = &src->backend;
	o->cache_dir = src->cache_dir[0] ? src->cache_dir : NULL;
	o->cache_size = src->cache_size;
}

void serve_source_close(struct serve_source *src)
{
	json_decref(src->warnings);
	src->warnings = NULL;
	if (src->password) {
		explicit_bzero(src->password, strlen(src->password));
		free(src->password);
	}
	if (src->s)
		cairn_snapshot_free(src->s);
	if (src->r)
		cairn_repo_close(src->r);
	memset(src, 0, sizeof(*src));
}

int serve_run_dir(char *out, size_t len)
{
	char err[512] = "";
	int rc = cairn_serve_run_dir(out, len, err, sizeof(err));
	return rc < 0 ? cli_error("%s", err) : 0;
}

struct serve_args {
	const char *name, *disk, *socket, *port, *address, *pidfile;
	bool foreground, stop;
	struct serve_cache_args cache;
};

static int serve_option(void *ctx, int opt, const char *arg)
{
	struct serve_args *a = ctx;
	switch (opt) {
	case 'n': a->name = arg; return 0;
	case 'd': a->disk = arg; return 0;
	case 's': a->socket = arg; return 0;
	case 'p': a->port = arg; return 0;
	case 'a': a->address = arg; return 0;
	case 'F': a->pidfile = arg; return 0;
	case 'f': a->foreground = true; return 0;
	case 'S': a->stop = true; return 0;
	SERVE_CACHE_CASES: return serve_cache_option(&a->cache, opt, arg);
	}
	return cli_usage("serve: unexpected option");
}

/* nbdkit leaves the working directory when it detaches: absolute paths. */
static int absolute_path(const char *path, char *out, size_t len)
{
	char cwd[PATH_MAX] = "";
	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return cli_error("getcwd: %s", strerror(errno));
	int n = snprintf(out, len, "%s%s%s", cwd, *cwd ? "/" : "", path);
	return n >= 0 && (size_t)n < len ? 0 : cli_usage("%s: path too long", path);
}

static int plan_endpoint(const struct serve_args *a, char *sock, char *pidfile, size_t len)
{
	if (a->stop && a->pidfile && !a->socket && !a->port)
		return absolute_path(a->pidfile, pidfile, len);
	if (!a->socket == !a->port)
		return cli_usage("say where to serve: --socket PATH or --port P (usage: cairn %s)",
				 USAGE);
	if (a->address && !a->port)
		return cli_usage("--address goes with --port");
	int rc;
	if (a->socket && (rc = absolute_path(a->socket, sock, len)) < 0)
		return rc;
	if (a->pidfile)
		return absolute_path(a->pidfile, pidfile, len);
	if (a->socket)
		return snprintf(pidfile, len, "%s.pid", sock) < (int)len
			       ? 0
			       : cli_usage("--socket %s: path too long", a->socket);
	char dir[PATH_MAX - 32];
	if ((rc = serve_run_dir(dir, sizeof(dir))) < 0)
		return rc;
	snprintf(pidfile, len, "%s/serve-%s.pid", dir, a->port);
	return 0;
}

static void relay(void *opaque, const char *line)
{
	(void)opaque;
	fprintf(stderr, "%s\n", line);
}

static void print_started(const struct cli *c, const struct serve_args *a,
			  const struct serve_source *src, const struct cairn_disk *d,
			  const char *uri, const char *pidfile, pid_t pid)
{
	if (c->json) {
		json_print(json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:b, s:O?}", "uri", uri,
				     "snapshot", src->snap_hex, "disk", d->name, "name",
				     src->s->name, "size", (json_int_t)d->size, "pidfile",
				     pidfile, "pid", (int)pid, "foreground", a->foreground,
				     "warnings", src->warnings));
		fflush(stdout);
		return;
	}
	if (c->quiet)
		return;
	char size[32];
	format_bytes(d->size, size, sizeof(size));
	printf("serving disk %s (%s) of snapshot %.12s (%s) read-only at %s\n", d->name, size,
	       src->snap_hex, src->s->name, uri);
	if (a->foreground)
		printf("pid %d; stop it with ^C or SIGTERM\n", (int)pid);
	else
		printf("pid file %s; stop it with: cairn serve --stop --pidfile %s\n", pidfile,
		       pidfile);
	fflush(stdout);
}

static int run(const struct cli *c, struct serve_args *a, char **argv)
{
	char sock[PATH_MAX] = "", pidfile[PATH_MAX] = "", err[512] = "", uri[PATH_MAX + 64];
	int rc = plan_endpoint(a, sock, pidfile, sizeof(sock));
	if (rc)
		return rc;
	struct serve_source src;
	if ((rc = serve_source_open(c, argv[1], argv[2], a->name, &a->cache, &src)) < 0)
		return rc;
	struct cairn_disk *d = serve_source_disk(&src, a->disk, &rc);
	struct cairn_server_opts o;
	_cleanup_(cairn_server_freep) struct cairn_server *srv = NULL;
	if (d) {
		serve_source_opts(&src, d, &o);
		o.socket = a->socket ? sock : NULL;
		o.port = a->port;
		o.address = a->address;
		o.pidfile = pidfile;
		o.foreground = a->foreground;
		cli_catch_signals();
		int src_rc = cairn_server_start(&o, &srv, err, sizeof(err));
		rc = src_rc < 0 ? cli_fail(src_rc, err) : 0;
	}
	if (rc == 0) {
		if (a->socket)
			snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
		else
			snprintf(uri, sizeof(uri), "nbd://%s:%s",
				 a->address ? a->address : "127.0.0.1", a->port);
		print_started(c, a, &src, d, uri, pidfile, cairn_server_pid(srv));
	}
	/* the server has its own copy of the repository; ours can go */
	serve_source_close(&src);
	if (rc == 0 && a->foreground) {
		int wrc = cairn_server_wait(srv, relay, NULL, &cli_interrupted, err, sizeof(err));
		unlink(pidfile);
		rc = wrc < 0 ? cli_fail(wrc, err) : 0;
	}
	return rc;
}

/* A detached server: nbdkit leaves its pid file and socket behind when
 * killed, this removes them too. */
static int stop(const struct cli *c, const struct serve_args *a)
{
	char sock[PATH_MAX] = "", pidfile[PATH_MAX] = "", err[512] = "";
	int rc = plan_endpoint(a, sock, pidfile, sizeof(sock));
	if (rc)
		return rc;
	pid_t pid = cairn_server_running(pidfile);
	if ((rc = cairn_server_stop(pidfile, *sock ? sock : NULL, err, sizeof(err))) < 0)
		return rc == -ENOENT ? cli_error("no server: %s does not exist", pidfile)
				     : cli_fail(rc, err);
	if (c->quiet || c->json)
		return 0;
	if (pid)
		printf("stopped server %d\n", (int)pid);
	else
		printf("no server was running; removed %s\n", pidfile);
	return 0;
}

static int serve_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "disk", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "port", required_argument, NULL, 'p' },
		{ "address", required_argument, NULL, 'a' },
		{ "pidfile", required_argument, NULL, 'F' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "stop", no_argument, NULL, 'S' },
		SERVE_CACHE_OPTIONS,
		{ 0 },
	};
	struct cli c = { 0 };
	struct serve_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", serve_option, &a, USAGE, &nargs);
	if (rc == 0 && a.stop)
		return nargs == 0 ? stop(&c, &a) : cli_usage("usage: cairn %s", USAGE);
	if (rc == 0)
		rc = nargs == 2 ? run(&c, &a, argv) : cli_usage("usage: cairn %s", USAGE);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	return cli_exit(serve_main(argc, argv));
}
