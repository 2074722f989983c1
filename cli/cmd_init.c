/* cairn init REPO [--chunk-size S] [--compression zstd:N|none]
 *                 [--encryption aes-256-gcm|none] [--immutable DAYS]
 *                 [--host-keys]
 * cairn init REPO --replica-of SRC [--from-password-file F] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define USAGE                                                                          \
	"init REPO [--chunk-size S] [--compression zstd:N|none] "                       \
	"[--encryption aes-256-gcm|none] [--immutable DAYS] [--host-keys] | "           \
	"init REPO --replica-of SRC [--from-password-file F] [--immutable DAYS]"

struct init_args {
	struct cairn_init_opts o;
	const char *replica_of, *from_password_file;
	bool params_given;
};

static int init_option(void *ctx, int opt, const char *arg)
{
	struct init_args *a = ctx;
	uint64_t v;
	a->params_given |= opt == 'c' || opt == 'z' || opt == 'e' || opt == 'H';
	switch (opt) {
	case 'H': a->o.host_keys = true; return 0;
	case 'R': a->replica_of = arg; return 0;
	case 'F': a->from_password_file = arg; return 0;
	case 'I': {
		char *end;
		long d = strtol(arg, &end, 10);
		if (end == arg || *end || d < 1 || d > 36500)
			return cli_usage("--immutable %s: give the retention in days (1..36500)", arg);
		a->o.immutable_days = (unsigned)d;
		return 0;
	}
	case 'c':
		if (parse_size(arg, &v) < 0 || v < CAIRN_MIN_CHUNK || v > CAIRN_MAX_CHUNK ||
		    (v & (v - 1)))
			return cli_usage("--chunk-size %s: give a power of two from 64K to 8M", arg);
		a->o.chunk_size = (uint32_t)v;
		return 0;
	case 'z':
		if (!strcmp(arg, "none")) {
			a->o.compression_level = 0;
			return 0;
		}
		if (!strcmp(arg, "zstd")) {
			a->o.compression_level = CAIRN_DEFAULT_LEVEL;
			return 0;
		}
		char *end;
		long lvl;
		if (strncmp(arg, "zstd:", 5) || (lvl = strtol(arg + 5, &end, 10)) < 1 ||
		    lvl > 19 || *end)
			return cli_usage("--compression %s: use zstd, zstd:N (1-19) or none", arg);
		a->o.compression_level = (int)lvl;
		return 0;
	case 'e':
		if (!strcmp(arg, "none"))
			a->o.encrypt = false;
		else if (!strcmp(arg, "aes-256-gcm"))
			a->o.encrypt = true;
		else
			return cli_usage("--encryption %s: use aes-256-gcm or none", arg);
		return 0;
	}
	return cli_usage("init: unexpected option");
}

static int init_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "compression", required_argument, NULL, 'z' },
		{ "encryption", required_argument, NULL, 'e' },
		{ "replica-of", required_argument, NULL, 'R' },
		{ "from-password-file", required_argument, NULL, 'F' },
		{ "immutable", required_argument, NULL, 'I' },
		{ "host-keys", no_argument, NULL, 'H' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct init_args a = { .o = { .chunk_size = CAIRN_DEFAULT_CHUNK,
				      .compression_level = CAIRN_DEFAULT_LEVEL,
				      .encrypt = true } };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", init_option, &a, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", USAGE);
	/* a replica takes the source's parameters and master key */
	_cleanup_(cairn_repo_closep) struct cairn_repo *src = NULL;
	if (a.replica_of) {
		if (a.params_given)
			return cli_usage("--replica-of takes chunk size, compression, "
					 "encryption and host keys from the source");
		struct cli from = c;
		if (a.from_password_file)
			from.password_file = a.from_password_file;
		if ((rc = cli_open_repo(&from, a.replica_of, &src)) < 0)
			return rc;
		a.o.replica_of = src;
		a.o.encrypt = cairn_repo_encrypted(src);
		a.o.host_keys = cairn_repo_has_host_keys(src);
		a.o.chunk_size = cairn_repo_chunk_size(src);
	}
	if (a.o.host_keys && !a.o.encrypt)
		return cli_usage("--host-keys needs encryption: host keys seal disk data to a key only the password opens");
	_cleanup_free_ char *pw = NULL;
	if (a.o.encrypt) {
		pw = cli_password(&c, true);
		if (!pw)
			return -EIO;
		a.o.password = pw;
	}
	char err[512] = "";
	a.o.backend = &c.backend;
	rc = cairn_repo_init(argv[1], &a.o, err, sizeof(err));
	if (rc < 0)
		return cli_fail(rc, err);
	if (c.json) {
		json_print(json_pack("{s:s, s:i, s:b, s:i, s:b}", "repository", argv[1],
				     "chunk_size", (int)a.o.chunk_size, "encrypted", a.o.encrypt,
				     "immutable_days", (int)a.o.immutable_days, "host_keys",
				     a.o.host_keys));
	} else if (!c.quiet) {
		char cs[32];
		format_bytes(a.o.chunk_size, cs, sizeof(cs));
		printf("created repository %s (chunk size %s, %s, %s)\n", argv[1], cs,
		       a.o.compression_level ? "zstd" : "no compression",
		       a.o.encrypt ? "encrypted with AES-256-GCM" : "NOT encrypted");
		if (a.o.host_keys)
			printf("host keys: disk data is sealed to the repository's public key; give "
			       "each backup host a key that can only add (cairn key add-host)\n");
		else if (a.o.encrypt)
			printf("no host keys: every backup host needs the repository password "
			       "(cairn init --host-keys makes a repository for write-only host keys)\n");
		if (a.o.immutable_days)
			printf("immutable: every backup object is locked for %u days (S3 Object "
			       "Lock, COMPLIANCE mode)\n", a.o.immutable_days);
	}
	return 0;
}

int cmd_init(int argc, char **argv)
{
	return cli_exit(init_main(argc, argv));
}
