/* cairn verify-boot REPO SNAP [--name VM] [--timeout S] [--expect-console REGEX]
 *                   [--script CMD] [--connect URI] [--keep-console DIR]
 *
 * A recovery test: the snapshot boots as a throwaway VM (instant recovery:
 * overlays over cairn servers, no network, serial console to a file) until
 * it proves it is alive, the result is recorded in the repository, and the
 * VM, its overlays and servers are removed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/session.h"
#include "serve_cli.h"

#define USAGE                                                                      \
	"verify-boot REPO SNAP [--name VM] [--timeout S] [--expect-console REGEX] " \
	"[--script CMD] [--connect URI] [--keep-console DIR] " SERVE_CACHE_USAGE
#define DEFAULT_TIMEOUT_S 300

struct verify_args {
	const char *name, *uri;
	const char *keep_dir; /* the console's tail goes to DIR/SNAPSHOT-ID.console */
	struct serve_cache_args cache;
	struct cairn_boot_check check;
};

static int verify_option(void *ctx, int opt, const char *arg)
{
	struct verify_args *a = ctx;
	char *end;
	long v;
	switch (opt) {
	case 'n': a->name = arg; return 0;
	case 'c': a->uri = arg; return 0;
	case 'e': a->check.console_regex = arg; return 0;
	case 's': a->check.script = arg; return 0;
	case 'k': a->keep_dir = arg; return 0;
	SERVE_CACHE_CASES: return serve_cache_option(&a->cache, opt, arg);
	case 't':
		v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 1 || v > 86400)
			return cli_usage("--timeout %s: give seconds (1..86400)", arg);
		a->check.timeout_s = (unsigned)v;
		return 0;
	}
	return cli_usage("verify-boot: unexpected option");
}

/* With no check asked for, the guest agent is the signal, if there is one. */
static int choose_checks(struct verify_args *a, const struct cairn_snapshot *s)
{
	if (!s->domain_xml)
		return cli_error("snapshot of %s holds disk images, not a libvirt domain: "
				 "there is nothing to boot",
				 s->name);
	if (!a->check.console_regex && !a->check.script) {
		if (!strstr(s->domain_xml, "org.qemu.guest_agent.0"))
			return cli_usage("nothing would prove that %s booted: it has no QEMU guest "
					 "agent channel; give --expect-console REGEX or --script CMD",
					 s->name);
		a->check.agent = true;
	}
	return 0;
}

/* Servers, overlays, the transient VM, the wait; everything is undone. */
static int boot_and_wait(const struct verify_args *a, struct serve_source *src,
			 const char *name, struct cairn_boot_outcome *out)
{
	struct cairn_server_opts server;
	serve_source_opts(src, NULL, &server);
	struct cairn_session_opts o = { .name = name, .r = src->r, .s = src->s,
					.server = &server, .uri = a->uri };
	struct cairn_boot_check check = a->check;
	check.cancel = &cli_interrupted;
	char keep[4200];
	if (a->keep_dir) {
		snprintf(keep, sizeof(keep), "%s/%s.console", a->keep_dir, src->snap_hex);
		check.keep_console = keep;
	}
	char err[512] = "";
	int rc = cairn_session_boot_test(&o, &check, out, err, sizeof(err));
	if (out->note[0])
		fprintf(stderr, "cairn: note: %s\n", out->note);
	if (rc < 0)
		return rc == -ENAMETOOLONG ? cli_usage("%s", err) : cli_fail(rc, err);
	return 0;
}

static int record(struct cairn_repo *r, const struct serve_source *src,
		  const struct verify_args *a, const struct cairn_boot_outcome *out, int64_t started)
{
	char host[256] = "", method[32];
	gethostname(host, sizeof(host) - 1);
	cairn_boot_check_method(&a->check, method, sizeof(method));
	struct cairn_verification v = { .snapshot = src->s->id, .time_ns = started,
					.host = host, .ok = out->rc == 0, .method = method,
					.boot_seconds = out->seconds,
					.detail = (char *)out->detail };
	int rc = cairn_repo_lock(r, false);
	if (rc == 0) {
		rc = cairn_verification_save(r, &v);
		cairn_repo_unlock(r);
	}
	return rc < 0 ? cli_fail(rc, cairn_repo_error(r)) : 0;
}

static int report(const struct cli *c, const struct serve_source *src, const char *name,
		  const struct cairn_boot_outcome *out)
{
	if (c->json)
		json_print(json_pack("{s:s, s:s, s:b, s:f, s:s, s:O?}", "snapshot", src->snap_hex,
				     "name", src->s->name, "ok", out->rc == 0, "boot_seconds",
				     out->seconds, "detail", out->detail, "warnings", src->warnings));
	if (out->rc == 0) {
		if (!c->json && !c->quiet)
			printf("snapshot %.12s of %s booted as %s in %.1fs: %s\n", src->snap_hex,
			       src->s->name, name, out->seconds, out->detail);
		return 0;
	}
	return cli_error("snapshot %.12s of %s did not pass its boot test: %s", src->snap_hex,
			 src->s->name, out->detail);
}

static int verify(const struct cli *c, struct verify_args *a, char **argv)
{
	struct serve_source src;
	int rc = serve_source_open(c, argv[1], argv[2], a->name, &a->cache, &src);
	if (rc == 0)
		rc = choose_checks(a, src.s);
	char name[96];
	snprintf(name, sizeof(name), "cairn-verify-%.12s-%d", src.snap_hex, (int)getpid());
	struct cairn_boot_outcome out = { .rc = -EIO };
	int64_t started = now_ns();
	cli_catch_signals();
	if (rc == 0)
		rc = boot_and_wait(a, &src, name, &out);
	/* an interrupted test proves nothing either way: not recorded */
	if (rc == 0 && out.rc != -EINTR)
		rc = record(src.r, &src, a, &out, started);
	if (rc == 0)
		rc = out.rc == -EINTR ? cli_fail(out.rc, "interrupted; nothing recorded")
				      : report(c, &src, name, &out);
	serve_source_close(&src);
	return rc;
}

static int verify_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "expect-console", required_argument, NULL, 'e' },
		{ "script", required_argument, NULL, 's' },
		{ "connect", required_argument, NULL, 'c' },
		{ "keep-console", required_argument, NULL, 'k' },
		SERVE_CACHE_OPTIONS,
		{ 0 },
	};
	struct cli c = { 0 };
	struct verify_args a = { .check = { .timeout_s = DEFAULT_TIMEOUT_S } };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", verify_option, &a, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs != 2)
		return cli_usage("usage: cairn %s", USAGE);
	return verify(&c, &a, argv);
}

int cmd_verify(int argc, char **argv)
{
	return cli_exit(verify_main(argc, argv));
}
