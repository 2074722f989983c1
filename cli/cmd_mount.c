/* cairn mount REPO SNAP [--name VM] [--disk D] DIR
 * cairn umount DIR
 *
 * A snapshot disk as the read-only file DIR/<disk> (nbdfuse over a private
 * cairn server), for file-level restore with a loop device or debugfs. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "serve/mount.h"
#include "serve_cli.h"

#define USAGE_MOUNT "mount REPO SNAP [--name VM] [--disk D] " SERVE_CACHE_USAGE " DIR"
#define USAGE_UMOUNT "umount DIR"

/* One state directory per mount point, found again from the path alone. */
static int state_dir_for(const char *dir, char *out, size_t len)
{
	char run[PATH_MAX - 64];
	int rc = serve_run_dir(run, sizeof(run));
	if (rc)
		return rc;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const char *c = dir; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	snprintf(out, len, "%s/mount-%016llx", run, (unsigned long long)h);
	return 0;
}

struct mount_args {
	const char *name, *disk;
	struct serve_cache_args cache;
};

static int mount_option(void *ctx, int opt, const char *arg)
{
	struct mount_args *a = ctx;
	switch (opt) {
	case 'n': a->name = arg; return 0;
	case 'd': a->disk = arg; return 0;
	SERVE_CACHE_CASES: return serve_cache_option(&a->cache, opt, arg);
	}
	return cli_usage("mount: unexpected option");
}

static int do_mount(const struct cli *c, const struct mount_args *a, char **argv)
{
	char dir[PATH_MAX], state[PATH_MAX], err[512] = "";
	struct stat st;
	if (!realpath(argv[3], dir) || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_error("%s is not a directory", argv[3]);
	int rc = state_dir_for(dir, state, sizeof(state));
	if (rc)
		return rc;
	struct serve_source src;
	if ((rc = serve_source_open(c, argv[1], argv[2], a->name, &a->cache, &src)) < 0)
		return rc;
	struct cairn_disk *d = serve_source_disk(&src, a->disk, &rc);
	if (d) {
		struct cairn_mount_opts o = { .dir = dir, .file = d->name, .state_dir = state };
		serve_source_opts(&src, d, &o.server);
		int mrc = cairn_mount(&o, err, sizeof(err));
		rc = mrc < 0 ? cli_fail(mrc, err) : 0;
	}
	if (rc == 0 && c->json)
		json_print(json_pack("{s:s, s:s, s:s, s:s, s:O?}", "dir", dir, "disk", d->name,
				     "snapshot", src.snap_hex, "state_dir", state, "warnings",
				     src.warnings));
	else if (rc == 0 && !c->quiet)
		printf("mounted disk %s of snapshot %.12s (%s) read-only at %s/%s; undo with: cairn umount %s\n",
		       d->name, src.snap_hex, src.s->name, dir, d->name, dir);
	serve_source_close(&src);
	return rc;
}

static int mount_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "disk", required_argument, NULL, 'd' },
		SERVE_CACHE_OPTIONS,
		{ 0 },
	};
	struct cli c = { 0 };
	struct mount_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", mount_option, &a, USAGE_MOUNT,
				  &nargs);
	if (rc == 0)
		rc = nargs == 3 ? do_mount(&c, &a, argv) : cli_usage("usage: cairn %s", USAGE_MOUNT);
	return rc;
}

static int umount_main(int argc, char **argv)
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
	struct cli c = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", NULL, NULL, USAGE_UMOUNT, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", USAGE_UMOUNT);
	char dir[PATH_MAX], state[PATH_MAX], err[512] = "";
	/* a dead FUSE mount cannot be resolved: then take the path as given */
	if (!realpath(argv[1], dir))
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	if ((rc = state_dir_for(dir, state, sizeof(state))) < 0)
		return rc;
	/* busy is not the repository lock of exit code 5 */
	if ((rc = cairn_umount(dir, state, err, sizeof(err))) < 0)
		return rc == -EBUSY ? cli_error("%s", err) : cli_fail(rc, err);
	if (!c.quiet && !c.json)
		printf("unmounted %s\n", dir);
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	return cli_exit(mount_main(argc, argv));
}

int cmd_umount(int argc, char **argv)
{
	return cli_exit(umount_main(argc, argv));
}
