/* Unit tests for repo/transport/sftp_url.c: restic's SFTP URL forms, and the strict
 * refusal (one line naming the URL and the expected forms) of the rest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repo/transport/sftp.h"

struct want {
	const char *url, *user, *host;
	unsigned port;
	const char *path;
};

static void check_ok(const struct want *w)
{
	struct sftp_url u;
	char err[512] = "";
	int rc = sftp_url_parse(w->url, &u, err, sizeof(err));
	if (rc != 0)
		fail_msg("%s: %d %s", w->url, rc, err);
	if (w->user)
		assert_string_equal(u.user, w->user);
	else
		assert_null(u.user);
	assert_string_equal(u.host, w->host);
	assert_int_equal(u.port, w->port);
	assert_string_equal(u.path, w->path);
	sftp_url_free(&u);
}

static void test_scp_form(void **state)
{
	(void)state;
	static const struct want v[] = {
		{ "sftp:backup@nas:/srv/cairn", "backup", "nas", 22, "/srv/cairn" },
		{ "sftp:nas.example.org:/srv/cairn/", NULL, "nas.example.org", 22, "/srv/cairn" },
		{ "sftp:u@h:repos/cairn", "u", "h", 22, "repos/cairn" },
		{ "sftp:u@h:a//b///", "u", "h", 22, "a/b" },
		{ "sftp:u@[::1]:/r", "u", "::1", 22, "/r" },
		{ "sftp:u@h:/", "u", "h", 22, "/" },
		{ "sftp:u@10.0.0.7:/x", "u", "10.0.0.7", 22, "/x" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check_ok(&v[i]);
}

static void test_url_form(void **state)
{
	(void)state;
	static const struct want v[] = {
		/* restic: one '/' after the authority, then the path; a second
		 * '/' makes it absolute */
		{ "sftp://u@h:2222//srv/cairn", "u", "h", 2222, "/srv/cairn" },
		{ "sftp://u@h:2222/srv/cairn", "u", "h", 2222, "srv/cairn" },
		{ "sftp://h//srv", NULL, "h", 22, "/srv" },
		{ "sftp://u@[fe80::1]:65535//r", "u", "fe80::1", 65535, "/r" },
		{ "sftp://u@h:1/x", "u", "h", 1, "x" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check_ok(&v[i]);
}

static void check_bad(const char *url, const char *why)
{
	struct sftp_url u;
	char err[512] = "";
	int rc = sftp_url_parse(url, &u, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("%s: accepted (rc %d)", url, rc);
	if (!strstr(err, url) || !strstr(err, why) || !strstr(err, "sftp://[USER@]HOST[:PORT]//") ||
	    strchr(err, '\n'))
		fail_msg("%s: message '%s' lacks the URL, '%s' or the forms", url, err, why);
	/* nothing to free after a refusal; a second free is harmless */
	sftp_url_free(&u);
}

/* A password in the URL is refused without being repeated. */
static void check_secret(const char *url, const char *redacted)
{
	struct sftp_url u;
	char err[512] = "";
	assert_int_equal(sftp_url_parse(url, &u, err, sizeof(err)), -EINVAL);
	if (strstr(err, "secret") || !strstr(err, redacted) || !strstr(err, "password"))
		fail_msg("%s: message '%s'", url, err);
}

static void test_refused(void **state)
{
	(void)state;
	check_bad("sftp:", "no host name");
	check_bad("sftp:host", "no ':' between the host and the path");
	check_bad("sftp:host:", "no directory");
	check_bad("sftp:@host:/r", "user name before '@' is empty");
	check_secret("sftp:u:secret@host:/r", "sftp:u:***@host:/r");
	check_secret("sftp://u:secret@host//r", "sftp://u:***@host//r");
	check_bad("sftp://host", "no directory");
	check_bad("sftp://host/", "no directory");
	check_bad("sftp://host:0//r", "port");
	check_bad("sftp://host:65536//r", "port");
	check_bad("sftp://host:22x//r", "port");
	check_bad("sftp://host://r", "port");
	check_bad("sftp://[::1//r", "closing ']'");
	check_bad("sftp://[zz]//r", "IPv6");
	check_bad("sftp://ho st//r", "not allowed");
	check_bad("sftp:h:/a/../b", "'.' or '..'");
	check_bad("sftp:h:./b", "'.' or '..'");
	check_bad("sftp:h:/a b", "whitespace");
	check_bad("sftp:h:/a\"b", "quote");
	check_bad("sftp:h:/a\\b", "backslash");
	check_bad("sftp:h:/a\tb", "control");
	check_bad("sftp:u s@h:/r", "not allowed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scp_form),
		cmocka_unit_test(test_url_form),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
