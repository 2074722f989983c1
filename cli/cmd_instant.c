/* cairn instant-restore REPO SNAP --name NEW [--from VM] [--to DIR] [--connect URI]
 * cairn instant-restore --stop NEW
 *
 * Defines and starts a VM from a snapshot within seconds: each disk is a
 * qcow2 overlay backed by a cairn server (NBD on a unix socket in
 * RUN/instant/NEW). With --to the overlays live in DIR and are pulled full
 * (block pull), then the servers stop; without, the overlays live in
 * /var/lib/cairn/instant/NEW and the servers stay until --stop. */
#include <errno.h>
#include <stdio.h>

#include "serve/session.h"
#include "serve_cli.h"

#define USAGE                                                                          \
	"instant-restore REPO SNAP --name NEW [--from VM] [--to DIR] [--connect URI] " \
	SERVE_CACHE_USAGE " | "                                                        \
	"instant-restore --stop NEW [--connect URI]"
#define PULL_TIMEOUT_S 3600

struct instant_args {
	const char *name, *from, *to, *uri, *stop;
	struct serve_cache_args cache;
};

static int instant_option(void *ctx, int opt, const char *arg)
{
	struct instant_args *a = ctx;
	switch (opt) {
	case 'n': a->name = arg; return 0;
	case 'f': a->from = arg; return 0;
	case 'o': a->to = arg; return 0;
	case 'c': a->uri = arg; return 0;
	case 'S': a->stop = arg; return 0;
	SERVE_CACHE_CASES: return serve_cache_option(&a->cache, opt, arg);
	}
	return cli_usage("instant-restore: unexpected option");
}

/* -ENAMETOOLONG: NEW makes the paths too long, a usage error */
static int fail(int rc, const char *err)
{
	return rc == -ENAMETOOLONG ? cli_usage("%s", err) : cli_fail(rc, err);
}

static void print_done(const struct cli *c, const struct instant_args *a,
		       const struct serve_source *src, const struct cairn_session *ss)
{
	if (c->json)
		json_print(json_pack("{s:s, s:s, s:s, s:b, s:s, s:O?}", "domain", ss->domain.name,
				     "snapshot", src->snap_hex, "overlays", ss->dir, "pulled",
				     a->to != NULL, "run_dir", ss->run, "warnings", src->warnings));
	else if (!c->quiet)
		printf(a->to ? "all disks are local now; the repository servers are stopped\n"
			     : "servers run from %s; after a block pull or shutdown: cairn instant-restore --stop %s\n",
		       ss->run, a->name);
}

static int restore_instant(const struct cli *c, const struct instant_args *a, char **argv)
{
	struct serve_source src;
	int rc = serve_source_open(c, argv[1], argv[2], a->from, &a->cache, &src);
	if (rc)
		return rc;
	struct cairn_server_opts server;
	serve_source_opts(&src, NULL, &server);
	struct cairn_session_opts o = { .name = a->name, .r = src.r, .s = src.s,
					.server = &server, .uri = a->uri, .to = a->to };
	struct cairn_session ss;
	char err[512] = "";
	int code = 0;
	if ((rc = cairn_session_prepare_instant(&ss, &o, err, sizeof(err))) < 0)
		code = fail(rc, err);
	cli_catch_signals();
	if (rc == 0 && (rc = cairn_session_launch_instant(&ss, &o, err, sizeof(err))) < 0)
		code = fail(rc, err);
	if (rc == 0 && ss.fw.note[0])
		fprintf(stderr, "cairn: note: %s\n", ss.fw.note);
	if (rc == 0 && !c->quiet && !c->json && cairn_fwstate_what(&ss.fw))
		printf("restored the %s of domain %s\n", cairn_fwstate_what(&ss.fw),
		       ss.domain.name);
	if (rc == 0 && !c->quiet && !c->json)
		printf("domain %s started from snapshot %.12s (%s); disks are overlays in %s\n",
		       ss.domain.name, src.snap_hex, src.s->name, ss.dir);
	if (rc == 0 && a->to) {
		if (!c->quiet && !c->json)
			printf("pulling %zu disk(s) into %s ...\n", ss.n, ss.dir);
		fflush(stdout);
		if ((rc = cairn_session_pull(&ss, PULL_TIMEOUT_S, &cli_interrupted, err,
					     sizeof(err))) < 0)
			code = fail(rc, err);
	}
	if (rc < 0)
		cairn_session_undo(&ss);
	else
		print_done(c, a, &src, &ss);
	cairn_session_free(&ss);
	serve_source_close(&src);
	return code;
}

static int stop(const struct cli *c, const struct instant_args *a)
{
	char err[512] = "";
	int rc = cairn_session_stop_instant(a->stop, a->uri, err, sizeof(err));
	/* busy is not the repository lock of exit code 5 */
	if (rc < 0)
		return rc == -EBUSY ? cli_error("%s", err) : cli_fail(rc, err);
	if (!c->quiet && !c->json)
		printf("stopped the servers of %s\n", a->stop);
	return 0;
}

static int instant_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'o' },
		{ "connect", required_argument, NULL, 'c' },
		{ "stop", required_argument, NULL, 'S' },
		SERVE_CACHE_OPTIONS,
		{ 0 },
	};
	struct cli c = { 0 };
	struct instant_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", instant_option, &a, USAGE, &nargs);
	if (rc)
		return rc;
	if (a.stop)
		return nargs == 0 ? stop(&c, &a) : cli_usage("usage: cairn %s", USAGE);
	if (nargs != 2 || !a.name)
		return cli_usage("usage: cairn %s", USAGE);
	return restore_instant(&c, &a, argv);
}

int cmd_instant(int argc, char **argv)
{
	return cli_exit(instant_main(argc, argv));
}
