/* cairn key list|add|remove REPO [ID] [--new-password-file F]
 * cairn key add-host REPO NAME --out FILE | remove-host REPO NAME */
#include <errno.h>
#include <stdio.h>

#include "cli.h"

#define USAGE                                                                   \
	"key list|add|remove REPO [ID] [--new-password-file F] | "               \
	"key add-host REPO NAME --out FILE | key remove-host REPO NAME"

struct key_args {
	const char *new_password_file, *out;
};

static int key_option(void *ctx, int opt, const char *arg)
{
	struct key_args *a = ctx;
	if (opt == 'N')
		a->new_password_file = arg;
	else if (opt == 'o')
		a->out = arg;
	else
		return cli_usage("key: unexpected option");
	return 0;
}

static char *read_first_line(const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	if (!f) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (getline(&line, &cap, f) <= 0) {
		free(line);
		line = NULL;
		cli_error("%s is empty", path);
	} else {
		line[strcspn(line, "\r\n")] = '\0';
	}
	fclose(f);
	return line;
}

/* Host keys after the password keys: in JSON as objects with "host_key". */
static int host_list(struct cairn_repo *r, json_t *arr)
{
	struct cairn_hostkey_info *v;
	size_t n;
	int rc = cairn_hostkey_list(r, &v, &n);
	if (rc < 0) {
		json_decref(arr);
		return cli_fail(rc, cairn_repo_error(r));
	}
	if (!arr && n)
		printf("host keys (can only add):\n");
	for (size_t i = 0; i < n; i++) {
		if (arr)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "host_key",
							     v[i].name, "id", v[i].host_id, "created",
							     v[i].created, "host", v[i].host, "user",
							     v[i].user));
		else
			printf("  %-20s  %.12s  %-20s  %s\n", v[i].name, v[i].host_id, v[i].created,
			       v[i].host);
	}
	if (arr)
		json_print(arr);
	free(v);
	return 0;
}

static int key_list(const struct cli *c, struct cairn_repo *r)
{
	struct cairn_key_info *keys;
	size_t n;
	int rc = cairn_key_list(r, &keys, &n);
	if (rc < 0)
		return cli_fail(rc, cairn_repo_error(r));
	json_t *arr = c->json ? json_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		if (arr)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b}", "id",
							     keys[i].id, "created", keys[i].created,
							     "host", keys[i].host, "current",
							     keys[i].current));
		else
			printf("%c %.12s  %-20s  %s\n", keys[i].current ? '*' : ' ', keys[i].id,
			       keys[i].created, keys[i].host);
	}
	free(keys);
	if (cairn_repo_has_host_keys(r))
		return host_list(r, arr);
	if (arr)
		json_print(arr);
	return 0;
}

static int add_host(const struct cli *c, struct cairn_repo *r, const char *name, const char *out)
{
	if (!out)
		return cli_usage("key add-host: give the key file to write with --out FILE");
	int rc = cairn_repo_lock(r, false);
	if (rc == 0)
		rc = cairn_hostkey_add(r, name, out);
	if (rc < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (c->json)
		json_print(json_pack("{s:s, s:s}", "host_key", name, "file", out));
	else if (!c->quiet)
		printf("added host key %s: %s (it can only add backups; copy it to the host, mode 0600)\n",
		       name, out);
	return 0;
}

static int remove_host(const struct cli *c, struct cairn_repo *r, const char *name)
{
	int rc = cairn_repo_lock(r, false);
	if (rc == 0)
		rc = cairn_hostkey_remove(r, name);
	if (rc < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (!c->quiet && !c->json)
		printf("revoked host key %s: it can no longer add backups\n", name);
	return 0;
}

static int add_password(const struct cli *c, struct cairn_repo *r, const char *newfile)
{
	_cleanup_free_ char *pw = newfile ? read_first_line(newfile) : cli_new_password();
	if (!pw)
		return -EIO;
	char id[65];
	int rc = cairn_key_add(r, pw, id);
	if (rc < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (c->json)
		json_print(json_pack("{s:s}", "id", id));
	else if (!c->quiet)
		printf("added key %.12s\n", id);
	return 0;
}

static int key_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "new-password-file", required_argument, NULL, 'N' },
		{ "out", required_argument, NULL, 'o' },
		{ 0 },
	};
	struct cli c = { 0 };
	struct key_args a = { 0 };
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", key_option, &a, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs < 2)
		return cli_usage("usage: cairn %s", USAGE);
	const char *verb = argv[1];
	bool list = !strcmp(verb, "list"), add = !strcmp(verb, "add"),
	     rm = !strcmp(verb, "remove"), add_h = !strcmp(verb, "add-host"),
	     rm_h = !strcmp(verb, "remove-host");
	if ((!list && !add && !rm && !add_h && !rm_h) || nargs != (rm || add_h || rm_h ? 3 : 2))
		return cli_usage("usage: cairn %s", USAGE);
	if (a.out && !add_h)
		return cli_usage("--out is for key add-host");
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[2], &r)) < 0)
		return rc;
	if (!cairn_repo_encrypted(r))
		return cli_error("%s is not encrypted: it has no keys", argv[2]);
	if ((rc = cairn_repo_need_full(r)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (list)
		return key_list(&c, r);
	if (add_h)
		return add_host(&c, r, argv[3], a.out);
	if (rm_h)
		return remove_host(&c, r, argv[3]);
	if (rm) {
		if ((rc = cairn_repo_lock(r, true)) < 0 || (rc = cairn_key_remove(r, argv[3])) < 0)
			return cli_fail(rc, cairn_repo_error(r));
		if (!c.quiet && !c.json)
			printf("removed key %s\n", argv[3]);
		return 0;
	}
	return add_password(&c, r, a.new_password_file);
}

int cmd_key(int argc, char **argv)
{
	return cli_exit(key_main(argc, argv));
}
