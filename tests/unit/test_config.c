/* Unit tests for daemon/config.c: every key, and every refusal with its
 * FILE:LINE. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/config.h"

static char path[] = "/tmp/cairn-test-conf-XXXXXX";

static int load(const char *text, struct cairn_conf *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return cairn_conf_load(path, c, err, errlen);
}

static const char *full =
	"; every key\n"
	"[global]\n"
	"state-dir = /srv/state\n"
	"metrics-dir = /var/lib/node_exporter\n"
	"run-dir = /run/x\n"
	"connect = qemu+ssh://h/system\n"
	"\n"
	"[repository local]\n"
	"url = /srv/backup/repo\n"
	"password-file = /etc/cairn/local.pw\n"
	"\n"
	"[repository offsite]\n"
	"url = s3:https://s3.example.com/bucket/cairn\n"
	"password-file = /etc/cairn/offsite.pw\n"
	"s3-credentials-file = /etc/cairn/s3.cred\n"
	"connections = 8\n"
	"limit-upload = 20M\n"
	"limit-download = 50M\n"
	"keep-daily = 30\n"
	"keep-monthly = 12\n"
	"\n"
	"[job nightly]\n"
	"domains = web* db01 app02\n"
	"exclude = *-test\n"
	"schedule = *-*-* 02:30\n"
	"randomized-delay = 30min\n"
	"repository = local\n"
	"keep-last = 3\n"
	"keep-hourly = 0\n"
	"keep-daily = 7\n"
	"keep-weekly = 4\n"
	"keep-monthly = 6\n"
	"keep-yearly = 2\n"
	"keep-within = 2d\n"
	"keep-tag = month-end, audit\n"
	"gc-schedule = Sun 04:00\n"
	"replicate-to = offsite\n"
	"quiesce = yes\n"
	"parallel = 2\n"
	"scratch-dir = /var/tmp/scratch\n"
	"pre-hook = /usr/local/bin/pre\n"
	"post-hook = logger done\n"
	"webhook = https://hooks.example.com/cairn\n"
	"notify-success = yes\n"
	"email-command = mail -s cairn root\n"
	"\n"
	"[job all-vms]\n"
	"domains = all\n"
	"schedule = weekly\n"
	"repository = local\n";

static void test_every_key(void **state)
{
	(void)state;
	struct cairn_conf c;
	char err[512] = "";
	if (load(full, &c, err, sizeof(err)) < 0)
		fail_msg("refused: %s", err);
	assert_string_equal(c.state_dir, "/srv/state");
	assert_string_equal(c.metrics_dir, "/var/lib/node_exporter");
	assert_string_equal(c.run_dir, "/run/x");
	assert_string_equal(c.connect, "qemu+ssh://h/system");
	assert_int_equal(c.nrepos, 2);
	const struct cairn_conf_repo *o = cairn_conf_repo(&c, "offsite");
	assert_non_null(o);
	assert_string_equal(o->url, "s3:https://s3.example.com/bucket/cairn");
	assert_string_equal(o->s3_credentials_file, "/etc/cairn/s3.cred");
	assert_int_equal(o->connections, 8);
	assert_string_equal(o->limit_upload, "20M");
	assert_string_equal(o->limit_download, "50M");
	assert_true(o->has_keep);
	assert_int_equal(o->keep.daily, 30);
	assert_int_equal(o->keep.monthly, 12);
	assert_false(cairn_conf_repo(&c, "local")->has_keep);
	const struct cairn_conf_job *j = cairn_conf_job(&c, "nightly");
	assert_non_null(j);
	assert_int_equal(j->domains.n, 3);
	assert_string_equal(j->domains.v[0], "web*");
	assert_false(j->all);
	assert_string_equal(j->exclude.v[0], "*-test");
	assert_string_equal(j->schedule, "*-*-* 02:30");
	assert_int_equal(j->randomized_delay_s, 1800);
	assert_string_equal(j->repository, "local");
	assert_int_equal(j->keep.last, 3);
	assert_int_equal(j->keep.daily, 7);
	assert_int_equal(j->keep.weekly, 4);
	assert_int_equal(j->keep.monthly, 6);
	assert_int_equal(j->keep.yearly, 2);
	assert_true(j->keep.has_within);
	assert_int_equal(j->keep.within.days, 2);
	assert_int_equal(j->keep.ntags, 2);
	assert_string_equal(j->keep.tags[1], "audit");
	assert_string_equal(j->gc_schedule, "Sun 04:00");
	assert_string_equal(j->replicate_to.v[0], "offsite");
	assert_int_equal(j->quiesce, CAIRN_QUIESCE_YES);
	assert_int_equal(j->parallel, 2);
	assert_string_equal(j->scratch_dir, "/var/tmp/scratch");
	assert_string_equal(j->pre_hook, "/usr/local/bin/pre");
	assert_string_equal(j->post_hook, "logger done");
	assert_string_equal(j->webhook, "https://hooks.example.com/cairn");
	assert_true(j->notify_success);
	assert_string_equal(j->email_command, "mail -s cairn root");
	/* the parsed schedule is usable */
	int64_t next;
	assert_int_equal(cairn_calendar_next(&j->calendar, 0, &next), 0);
	assert_int_equal(next, 2 * 3600 + 30 * 60);
	const struct cairn_conf_job *a = cairn_conf_job(&c, "all-vms");
	assert_true(a->all);
	assert_int_equal(a->parallel, 1);
	assert_int_equal(a->quiesce, CAIRN_QUIESCE_AUTO);
	assert_false(a->has_keep);
	cairn_conf_free(&c);
}

static void test_defaults(void **state)
{
	(void)state;
	struct cairn_conf c;
	char err[512] = "";
	assert_int_equal(load("[repository r]\nurl = /r\n[job j]\ndomains = vm1\nschedule = daily\n"
			      "repository = r\n",
			      &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.state_dir, "/var/lib/cairn/agent");
	assert_string_equal(c.run_dir, "/run/cairn");
	assert_null(c.metrics_dir);
	assert_null(c.connect);
	cairn_conf_free(&c);
}

/* The error must be exactly "PATH:LINE: " followed by want. */
static void refused(const char *text, int line, const char *want)
{
	struct cairn_conf c;
	char err[512] = "", head[128];
	int rc = load(text, &c, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("accepted (%d) although it should say '%s':\n%s", rc, want, text);
	snprintf(head, sizeof(head), "%s:%d: ", path, line);
	if (strncmp(err, head, strlen(head)) || !strstr(err, want))
		fail_msg("got '%s', want '%s%s...'", err, head, want);
}

#define BASE "[repository r]\nurl = /r\n"
#define JOB "[job j]\ndomains = vm1\nschedule = daily\nrepository = r\n"

static void test_refusals(void **state)
{
	(void)state;
	refused(BASE "[job j]\ndomains = a\nschedlue = daily\n", 5,
		"unknown key 'schedlue' in a [job] section (did you mean 'schedule'?)");
	refused(BASE "frobnicate = 1\n", 3,
		"unknown key 'frobnicate' in a [repository] section (see cairn.conf(5))");
	refused("[global]\nstate_dir = /x\n", 2, "did you mean 'state-dir'?");
	refused("[jobs j]\n", 1, "unknown section [jobs j]");
	refused("[job]\nx = y\n", 1, "[job] needs one name");
	refused("url = /r\n", 1, "comes before any [section]");
	refused(BASE JOB "[repository r]\nurl = /s\n", 7, "a second [repository r]");
	refused(BASE "[job j]\ndomains = a\nschedule = every tuesday\n", 5, "schedule: calendar");
	refused(BASE "[job j]\ndomains = a\nschedule = *-*-* 25:00\n", 5, "hour");
	refused(BASE "[job j]\nparallel = lots\n", 4, "parallel = lots: give a whole number");
	refused(BASE "[job j]\nparallel = 0\n", 4, "parallel = 0: give 1 to 64");
	refused(BASE "[job j]\nquiesce = maybe\n", 4, "quiesce = maybe: use yes, no or auto");
	refused(BASE "[job j]\nnotify-success = perhaps\n", 4, "use yes or no");
	refused(BASE "[job j]\nkeep-within = forever\n", 4, "keep-within = forever");
	refused(BASE "[job j]\nkeep-daily = -1\n", 4, "keep-daily = -1");
	refused(BASE "[job j]\nrandomized-delay = soon\n", 4, "randomized-delay = soon");
	refused(BASE "[job j]\nwebhook = ftp://x\n", 4, "give an http:// or https:// URL");
	refused(BASE "[job j]\ndomains =\n", 4, "domains has no value");
	refused(BASE "[job j]\nschedule = daily\nrepository = r\n", 3, "[job j] has no domains");
	refused(BASE "[job j]\ndomains = a\nrepository = r\n", 3, "[job j] has no schedule");
	refused(BASE "[job j]\ndomains = a\nschedule = daily\n", 3, "[job j] has no repository");
	refused(BASE "[job j]\ndomains = a\nschedule = daily\nrepository = nope\n", 3,
		"no [repository nope]");
	refused(BASE JOB "replicate-to = elsewhere\n", 3, "replicate-to elsewhere: no such [repository]");
	refused(BASE JOB "replicate-to = r\n", 3, "replicates to its own repository");
	refused("[repository r]\npassword-file = /x\n", 1, "[repository r] has no url");
	refused(BASE "this is not ini\n", 3, "not a 'key = value' line");
}

static void test_missing_file(void **state)
{
	(void)state;
	struct cairn_conf c;
	char err[512] = "";
	assert_int_equal(cairn_conf_load("/nonexistent/cairn.conf", &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/cairn.conf"));
}

static int setup(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_missing_file),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
