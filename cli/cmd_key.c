/* cairn key list|add|remove REPO [ID] [--new-password-file F] */
#include <errno.h>
#include <stdio.h>

#include "cli.h"

#define USAGE "key list|add|remove REPO [ID] [--new-password-file F]"

static int key_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'N')
		return cli_usage("key: unexpected option");
	*(const char **)ctx = arg;
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
	if (arr)
		json_print(arr);
	free(keys);
	return 0;
}

static int key_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "new-password-file", required_argument, NULL, 'N' },
		{ 0 },
	};
	struct cli c = { 0 };
	const char *newfile = NULL;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", key_option, &newfile, USAGE, &nargs);
	if (rc)
		return rc;
	if (nargs < 2)
		return cli_usage("usage: cairn %s", USAGE);
	const char *verb = argv[1];
	bool list = !strcmp(verb, "list"), add = !strcmp(verb, "add"),
	     rm = !strcmp(verb, "remove");
	if ((!list && !add && !rm) || nargs != (rm ? 3 : 2))
		return cli_usage("usage: cairn %s", USAGE);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[2], &r)) < 0)
		return rc;
	if (!cairn_repo_encrypted(r))
		return cli_error("%s is not encrypted: it has no keys", argv[2]);
	if (list)
		return key_list(&c, r);
	if (rm) {
		if ((rc = cairn_repo_lock(r, true)) < 0 || (rc = cairn_key_remove(r, argv[3])) < 0)
			return cli_fail(rc, cairn_repo_error(r));
		if (!c.quiet && !c.json)
			printf("removed key %s\n", argv[3]);
		return 0;
	}
	_cleanup_free_ char *pw = newfile ? read_first_line(newfile) : cli_new_password();
	if (!pw)
		return -EIO;
	char id[65];
	if ((rc = cairn_key_add(r, pw, id)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	if (c.json)
		json_print(json_pack("{s:s}", "id", id));
	else if (!c.quiet)
		printf("added key %.12s\n", id);
	return 0;
}

int cmd_key(int argc, char **argv)
{
	return cli_exit(key_main(argc, argv));
}
