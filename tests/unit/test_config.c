/* Unit tests for daemon/config.c: every key with its value in the model,
 * the defaults, INI details (continuations, comments, BOM), and every
 * refusal as its own test, with its exact "FILE:LINE: message". */
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

static void load_ok(const char *text, struct cairn_conf *c)
{
	char err[700] = "";
	if (load(text, c, err, sizeof(err)) < 0)
		fail_msg("refused: %s\n%s", err, text);
}

static const char *full =
	"; every key\n"
	"[global]\n"
	"state-dir = /srv/state\n"
	"metrics-dir = /var/lib/node_exporter\n"
	"run-dir = /run/x\n"
	"connect = qemu+ssh://h/system\n"
	"log-level = debug\n"
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
	"limit-download = 512K\n"
	"keep-daily = 30\n"
	"keep-monthly = 12\n"
	"keep-tag = legal\n"
	"\n"
	"[repository cold]\n"
	"url = sftp:backup@vault.example.com:/srv/cairn\n"
	"sftp-identity = /etc/cairn/id_ed25519\n"
	"sftp-known-hosts = /etc/cairn/known_hosts\n"
	"keep-within = 1y\n"
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
	"replicate-to = offsite cold\n"
	"quiesce = yes\n"
	"parallel = 2\n"
	"scratch-dir = /var/tmp/scratch\n"
	"pre-hook = /usr/local/bin/pre --job nightly\n"
	"post-hook = logger done\n"
	"webhook = https://hooks.example.com/cairn?x=1\n"
	"notify-success = yes\n"
	"email-command = mail -s cairn root\n"
	"anomaly-guard = factor=4 min-change=30% min-new=8M\n"
	"\n"
	"[job all-vms]\n"
	"domains = all\n"
	"exclude = scratch-*\n"
	"schedule = weekly\n"
	"repository = local\n";

static void test_every_key(void **state)
{
	(void)state;
	struct cairn_conf c;
	load_ok(full, &c);
	assert_string_equal(c.path, path);
	assert_string_equal(c.state_dir, "/srv/state");
	assert_string_equal(c.metrics_dir, "/var/lib/node_exporter");
	assert_string_equal(c.run_dir, "/run/x");
	assert_string_equal(c.connect, "qemu+ssh://h/system");
	assert_int_equal(c.log_level, CAIRN_LOG_DEBUG);
	assert_int_equal(c.nrepos, 3);
	assert_string_equal(c.repos[0].name, "local");
	assert_int_equal(c.repos[0].line, 9);
	const struct cairn_conf_repo *l = cairn_conf_repo(&c, "local");
	assert_string_equal(l->password_file, "/etc/cairn/local.pw");
	assert_null(l->s3_credentials_file);
	assert_int_equal(l->connections, 0);
	assert_int_equal(l->limit_upload, 0);
	assert_false(l->has_keep);
	const struct cairn_conf_repo *o = cairn_conf_repo(&c, "offsite");
	assert_non_null(o);
	assert_string_equal(o->url, "s3:https://s3.example.com/bucket/cairn");
	assert_string_equal(o->s3_credentials_file, "/etc/cairn/s3.cred");
	assert_int_equal(o->connections, 8);
	assert_int_equal(o->limit_upload, 20u << 20);
	assert_int_equal(o->limit_download, 512u << 10);
	assert_true(o->has_keep);
	assert_int_equal(o->keep.daily, 30);
	assert_int_equal(o->keep.monthly, 12);
	assert_int_equal(o->keep.ntags, 1);
	assert_string_equal(o->keep.tags[0], "legal");
	const struct cairn_conf_repo *cold = cairn_conf_repo(&c, "cold");
	assert_string_equal(cold->url, "sftp:backup@vault.example.com:/srv/cairn");
	assert_string_equal(cold->sftp_identity, "/etc/cairn/id_ed25519");
	assert_string_equal(cold->sftp_known_hosts, "/etc/cairn/known_hosts");
	assert_null(o->sftp_identity);
	assert_true(cold->keep.has_within);
	assert_int_equal(cold->keep.within.years, 1);
	assert_null(cairn_conf_repo(&c, "nope"));

	assert_int_equal(c.njobs, 2);
	const struct cairn_conf_job *j = cairn_conf_job(&c, "nightly");
	assert_ptr_equal(j, &c.jobs[0]);
	assert_int_equal(j->line, 30);
	assert_int_equal(j->domains.n, 3);
	assert_string_equal(j->domains.v[0], "web*");
	assert_string_equal(j->domains.v[2], "app02");
	assert_null(j->domains.v[3]);
	assert_false(j->all);
	assert_int_equal(j->exclude.n, 1);
	assert_string_equal(j->exclude.v[0], "*-test");
	assert_string_equal(j->schedule, "*-*-* 02:30");
	assert_int_equal(j->randomized_delay_s, 1800);
	assert_string_equal(j->repository, "local");
	assert_true(j->has_keep);
	assert_int_equal(j->keep.last, 3);
	assert_int_equal(j->keep.hourly, 0);
	assert_int_equal(j->keep.daily, 7);
	assert_int_equal(j->keep.weekly, 4);
	assert_int_equal(j->keep.monthly, 6);
	assert_int_equal(j->keep.yearly, 2);
	assert_true(j->keep.has_within);
	assert_int_equal(j->keep.within.days, 2);
	assert_int_equal(j->keep.ntags, 2);
	assert_string_equal(j->keep.tags[0], "month-end");
	assert_string_equal(j->keep.tags[1], "audit");
	assert_string_equal(j->gc_schedule, "Sun 04:00");
	assert_int_equal(j->replicate_to.n, 2);
	assert_string_equal(j->replicate_to.v[0], "offsite");
	assert_string_equal(j->replicate_to.v[1], "cold");
	assert_int_equal(j->quiesce, CAIRN_QUIESCE_YES);
	assert_int_equal(j->parallel, 2);
	assert_string_equal(j->scratch_dir, "/var/tmp/scratch");
	assert_string_equal(j->pre_hook, "/usr/local/bin/pre --job nightly");
	assert_string_equal(j->post_hook, "logger done");
	assert_string_equal(j->webhook, "https://hooks.example.com/cairn?x=1");
	assert_true(j->notify_success);
	assert_string_equal(j->email_command, "mail -s cairn root");
	assert_false(j->guard.off);
	assert_true(j->guard.factor == 4.0);
	assert_true(j->guard.min_change == 0.30);
	assert_int_equal(j->guard.min_new_bytes, 8u << 20);
	/* the parsed schedules are usable as they are */
	int64_t next;
	assert_int_equal(cairn_calendar_next(&j->calendar, 0, &next), 0);
	assert_int_equal(next, 2 * 3600 + 30 * 60); /* 1970-01-01 02:30 */
	assert_int_equal(cairn_calendar_next(&j->gc_calendar, 0, &next), 0);
	assert_int_equal(next, 3 * 86400 + 4 * 3600); /* Sunday 1970-01-04 04:00 */

	const struct cairn_conf_job *a = &c.jobs[1];
	assert_string_equal(a->name, "all-vms");
	assert_true(a->all);
	assert_string_equal(a->exclude.v[0], "scratch-*");
	/* job defaults */
	assert_int_equal(a->parallel, 1);
	assert_int_equal(a->quiesce, CAIRN_QUIESCE_AUTO);
	assert_int_equal(a->randomized_delay_s, 0);
	assert_false(a->has_keep);
	assert_null(a->gc_schedule);
	assert_int_equal(a->replicate_to.n, 0);
	assert_null(a->scratch_dir);
	assert_null(a->pre_hook);
	assert_null(a->post_hook);
	assert_null(a->webhook);
	assert_null(a->email_command);
	assert_false(a->notify_success);
	assert_false(a->guard.off);
	assert_true(a->guard.factor == 0); /* 0: the default, resolved at use */
	cairn_conf_free(&c);
	assert_null(c.jobs);
	cairn_conf_free(&c); /* a freed (zeroed) config frees again harmlessly */
}

static void test_defaults(void **state)
{
	(void)state;
	struct cairn_conf c;
	load_ok("[repository r]\nurl = /r\n[job j]\ndomains = vm1\nschedule = daily\nrepository = r\n",
		&c);
	assert_string_equal(c.state_dir, "/var/lib/cairn/agent");
	assert_string_equal(c.run_dir, "/run/cairn");
	assert_null(c.metrics_dir);
	assert_null(c.connect);
	assert_int_equal(c.log_level, CAIRN_LOG_INFO);
	assert_string_equal(cairn_log_level_name(c.log_level), "info");
	assert_null(c.repos[0].password_file);
	assert_null(c.repos[0].key_file);
	cairn_conf_free(&c);
	/* a host key instead of the password: a job that only backs up */
	load_ok("[repository r]\nurl = /r\nkey-file = /etc/cairn/host.key\n"
		"[job j]\ndomains = vm1\nschedule = daily\nrepository = r\n", &c);
	assert_string_equal(c.repos[0].key_file, "/etc/cairn/host.key");
	assert_null(c.repos[0].password_file);
	cairn_conf_free(&c);
	/* a file with nothing in it is a valid, empty configuration */
	load_ok("; nothing yet\n", &c);
	assert_int_equal(c.njobs, 0);
	assert_string_equal(c.state_dir, "/var/lib/cairn/agent");
	cairn_conf_free(&c);
}

static void test_ini_syntax(void **state)
{
	(void)state;
	struct cairn_conf c;
	load_ok("\xEF\xBB\xBF[repository r]\n"    /* a BOM before the first line */
		"# a comment\n"
		"url = /r ; an inline comment\n"
		"[job j]\n"
		"domains = a b\n"
		"    c\n" /* indented: continues the key above */
		"\n"
		"  d,e\n" /* even after a blank line, as in inih */
		"domains = f\n" /* list keys add up */
		"schedule = Mon..Fri 22:00 UTC\n"
		"repository = r\n"
		"quiesce = No\n"
		"notify-success = TRUE\n"
		"randomized-delay = 90\n"
		"webhook = http://h/x;y\n", /* ';' without a space before it stays */
		&c);
	assert_string_equal(c.repos[0].url, "/r");
	const struct cairn_conf_job *j = &c.jobs[0];
	assert_int_equal(j->domains.n, 6);
	assert_string_equal(j->domains.v[2], "c");
	assert_string_equal(j->domains.v[4], "e");
	assert_string_equal(j->domains.v[5], "f");
	assert_int_equal(j->quiesce, CAIRN_QUIESCE_NO);
	assert_true(j->notify_success);
	assert_int_equal(j->randomized_delay_s, 90);
	assert_string_equal(j->webhook, "http://h/x;y");
	cairn_conf_free(&c);
	/* a line of exactly the longest length inih reads whole */
	char text[400];
	int n = snprintf(text, sizeof(text), "[repository r]\nurl = /");
	memset(text + n, 'x', CAIRN_CONF_MAX_LINE - 7);
	strcpy(text + n + CAIRN_CONF_MAX_LINE - 7, "\n");
	load_ok(text, &c);
	assert_int_equal(strlen(c.repos[0].url), CAIRN_CONF_MAX_LINE - 6);
	cairn_conf_free(&c);
}

static void test_durations_and_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t seconds;
	} delays[] = { { "0", 0 },	   { "45s", 45 },     { "45sec", 45 },	{ "10m", 600 },
		       { "10min", 600 }, { "2h", 7200 },    { "1hour", 3600 }, { "1d", 86400 },
		       { "7d", 604800 }, { "604800", 604800 } };
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		char text[300];
		snprintf(text, sizeof(text),
			 "[repository r]\nurl = /r\nlimit-upload = 1G\n[job j]\ndomains = a\n"
			 "schedule = daily\nrepository = r\nrandomized-delay = %s\n",
			 delays[i].text);
		struct cairn_conf c;
		load_ok(text, &c);
		assert_int_equal(c.jobs[0].randomized_delay_s, delays[i].seconds);
		assert_int_equal(c.repos[0].limit_upload, 1ull << 30);
		cairn_conf_free(&c);
	}
}

static void test_missing_file(void **state)
{
	(void)state;
	struct cairn_conf c;
	char err[512] = "";
	assert_int_equal(cairn_conf_load("/nonexistent/cairn.conf", &c, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot read /nonexistent/cairn.conf: No such file or directory");
	assert_null(c.path);
}

/* ---- refusals: one test each ---- */

struct refusal {
	const char *name;
	const char *text;
	int line;
	const char *message; /* after "PATH:LINE: " */
};

#define R "[repository r]\nurl = /r\n"			     /* lines 1-2 */
#define J "[job j]\ndomains = vm1\nschedule = daily\nrepository = r\n" /* 4 lines */
#define LONG40 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define CAL_HINT " (see systemd.time(7); e.g. daily, *-*-* 02:30, Mon..Fri 22:00)"

static const struct refusal refusals[] = {
	/* sections */
	{ "unknown section", "[jobs j]\n", 1,
	  "unknown section [jobs j] (use [global], [repository NAME], [job NAME], [http] or [peer NAME])" },
	{ "empty unknown section", R "[schedule]\n", 3,
	  "unknown section [schedule] (use [global], [repository NAME], [job NAME], [http] or [peer NAME])" },
	{ "section without a name", "[job]\nx = y\n", 1, "[job] needs a name: [job NAME]" },
	{ "name with a space", "[repository a b]\n", 1,
	  "[repository a b]: a repository name is letters, digits and . _ - @ + (no spaces)" },
	{ "name with a slash", "[job a/b]\n", 1,
	  "[job a/b]: a job name is letters, digits and . _ - @ + (no spaces)" },
	{ "second repository", R J "[repository r]\nurl = /s\n", 7,
	  "a second [repository r] (names must be unique)" },
	{ "second job right after the first", R J J, 7, "a second [job j] (names must be unique)" },
	{ "second global", "[global]\nlog-level = info\n[global]\n", 3,
	  "a second [global] (the first is on line 1)" },
	{ "key before any section", "url = /r\n", 1, "'url' comes before any [section]" },
	{ "not ini", R "this is not ini\n", 3, "neither 'key = value' nor a [section]" },
	{ "unclosed header", R "[job j\n", 3, "neither 'key = value' nor a [section]" },
	{ "indented header", R "[job j]\ndomains = a\n\n  [job k]\n", 6,
	  "an indented [section] continues the key above (start it at the line's beginning)" },
	{ "line too long", R "[job j]\npre-hook = " LONG40 LONG40 LONG40 LONG40 LONG40 "\n", 4,
	  "longer than 198 characters (put a long command into a script)" },
	/* keys */
	{ "unknown key, a typo", R "[job j]\ndomains = a\nschedlue = daily\n", 5,
	  "unknown key 'schedlue' in a [job] section (did you mean 'schedule'?)" },
	{ "unknown key, underscore", "[global]\nstate_dir = /x\n", 2,
	  "unknown key 'state_dir' in [global] (did you mean 'state-dir'?)" },
	{ "unknown key, nothing close", R "frobnicate = 1\n", 3,
	  "unknown key 'frobnicate' in a [repository] section (see cairn.conf(5))" },
	{ "key of another section", R "[job j]\nurl = /x\n", 4,
	  "unknown key 'url' in a [job] section (it belongs in a [repository] section)" },
	{ "global key in a job", R "[job j]\nstate-dir = /x\n", 4,
	  "unknown key 'state-dir' in a [job] section (it belongs in [global])" },
	{ "key given twice", R "[job j]\nschedule = daily\nschedule = weekly\n", 5,
	  "schedule is given twice in [job j] (first on line 4)" },
	{ "scalar continued on an indented line", R "[job j]\npre-hook = a\n  b\n", 5,
	  "pre-hook is given twice in [job j] (first on line 4)" },
	{ "empty value", R "[job j]\ndomains =\n", 4, "domains has no value" },
	/* values */
	{ "bad schedule", R "[job j]\nschedule = every tuesday\n", 4,
	  "schedule: calendar 'every tuesday': 'every' is not a weekday list (names such as "
	  "Mon..Fri or Sat,Sun)" CAL_HINT },
	{ "schedule out of range", R "[job j]\nschedule = *-*-* 25:00\n", 4,
	  "schedule: calendar '*-*-* 25:00': hour '25': 25 is outside 0..23" CAL_HINT },
	{ "bad gc-schedule", R "[job j]\ngc-schedule = Fri..Mon\n", 4,
	  "gc-schedule: calendar 'Fri..Mon': weekdays 'Fri..Mon': a range runs forwards from "
	  "Monday to Sunday (write Fri..Sun,Mon)" CAL_HINT },
	{ "parallel not a number", R "[job j]\nparallel = lots\n", 4,
	  "parallel = lots: give a whole number from 1 to 64" },
	{ "parallel 0", R "[job j]\nparallel = 0\n", 4, "parallel = 0: give a whole number from 1 to 64" },
	{ "connections too many", R "connections = 100\n", 3,
	  "connections = 100: give a whole number from 1 to 64" },
	{ "negative keep", R "[job j]\nkeep-daily = -1\n", 4,
	  "keep-daily = -1: give a whole number from 0 to 1000000" },
	{ "bad keep-within", R "[job j]\nkeep-within = forever\n", 4,
	  "keep-within = forever: give a duration such as 7d, 2w, 6m, 1y6m, 36h" },
	{ "bad quiesce", R "[job j]\nquiesce = maybe\n", 4, "quiesce = maybe: use yes, no or auto" },
	{ "bad notify-success", R "[job j]\nnotify-success = perhaps\n", 4,
	  "notify-success = perhaps: use yes or no" },
	{ "bad randomized-delay", R "[job j]\nrandomized-delay = soon\n", 4,
	  "randomized-delay = soon: give a duration up to a week, such as 600, 30min, 2h" },
	{ "randomized-delay over a week", R "[job j]\nrandomized-delay = 8d\n", 4,
	  "randomized-delay = 8d: give a duration up to a week, such as 600, 30min, 2h" },
	{ "bad limit", R "limit-upload = fast\n", 3,
	  "limit-upload = fast: give bytes per second, such as 20M or 512K" },
	{ "bad limit-download", R "limit-download = -5\n", 3,
	  "limit-download = -5: give bytes per second, such as 20M or 512K" },
	{ "bad anomaly-guard", R "[job j]\nanomaly-guard = factor=0.5\n", 4,
	  "anomaly-guard = factor=0.5: guard: bad value for factor: 0.5 (a number >= 1, e.g. 5)" },
	{ "unknown anomaly-guard key", R "[job j]\nanomaly-guard = speed=3\n", 4,
	  "anomaly-guard = speed=3: guard: unknown key speed (factor, min-change, incompressible, "
	  "baseline-incompressible, absolute-change, absolute-incompressible, history, min-new)" },
	{ "bad webhook", R "[job j]\nwebhook = ftp://x\n", 4,
	  "webhook = ftp://x: give an http:// or https:// URL" },
	{ "bad log-level", "[global]\nlog-level = loud\n", 2,
	  "log-level = loud: use error, warning, info or debug" },
	{ "relative state-dir", "[global]\nstate-dir = var/state\n", 2,
	  "state-dir = var/state: give an absolute path" },
	{ "relative url", "[repository r]\nurl = backups\n", 2,
	  "url = backups: give an absolute path or a URL" },
	{ "relative password-file", R "password-file = pw\n", 3,
	  "password-file = pw: give an absolute path" },
	{ "relative scratch-dir", R "[job j]\nscratch-dir = tmp\n", 4,
	  "scratch-dir = tmp: give an absolute path" },
	{ "all with names", R "[job j]\ndomains = all web1\n", 4,
	  "domains = all web1: 'all' stands alone (leave VMs out with exclude)" },
	/* whole sections, reported at their header */
	{ "job without domains", R "[job j]\nschedule = daily\nrepository = r\n", 3,
	  "[job j] has no domains (give names, globs or all)" },
	{ "empty job", R "[job j]\n", 3, "[job j] has no domains (give names, globs or all)" },
	{ "job without schedule", R "[job j]\ndomains = a\nrepository = r\n", 3,
	  "[job j] has no schedule (e.g. schedule = daily)" },
	{ "job without repository", R "[job j]\ndomains = a\nschedule = daily\n", 3,
	  "[job j] has no repository (the name of a [repository] section)" },
	{ "unknown repository", R "[job j]\ndomains = a\nschedule = daily\nrepository = nope\n", 3,
	  "[job j]: repository nope: there is no [repository nope]" },
	{ "unknown replication target", R J "replicate-to = elsewhere\n", 3,
	  "[job j]: replicate-to elsewhere: there is no [repository elsewhere]" },
	{ "replication to itself", R J "replicate-to = r\n", 3,
	  "[job j]: replicate-to r: that is the job's own repository" },
	{ "replication target twice", R "[repository s]\nurl = /s\n" J "replicate-to = s s\n", 5,
	  "[job j]: replicate-to names s twice" },
	{ "repository without url", "[repository r]\npassword-file = /x\n", 1,
	  "[repository r] has no url" },
	{ "empty repository", "[repository r]\n", 1, "[repository r] has no url" },
	{ "job keeps nothing", R J "keep-last = 0\n", 3,
	  "[job j]: the keep-* rules keep nothing (give a count above 0, or none)" },
	{ "relative key-file", R "key-file = host.key\n", 3,
	  "key-file = host.key: give an absolute path" },
	{ "password-file and key-file", R "password-file = /p\nkey-file = /k\n", 1,
	  "[repository r]: give password-file or key-file, not both" },
	{ "retention with a host key", R "key-file = /k\n" J "keep-last = 3\n", 4,
	  "[job j]: keep-* needs the password of [repository r]: its key-file is a host key, which can only add (run forget on a trusted node)" },
	{ "gc with a host key", R "key-file = /k\n" J "gc-schedule = weekly\n", 4,
	  "[job j]: gc-schedule needs the password of [repository r]: its key-file is a host key, which can only add (run gc on a trusted node)" },
	{ "replication target with a host key", R "[repository s]\nurl = /s\nkey-file = /k\n" J "replicate-to = s\n", 6,
	  "[job j]: replicate-to s: a replication target needs its password, not a host key-file" },
	{ "replication target keeps nothing", R "keep-daily = 0\nkeep-weekly = 0\n", 1,
	  "[repository r]: the keep-* rules keep nothing (give a count above 0, or none)" },
	/* the console */
	{ "http without token", "[http]\nlisten = 127.0.0.1:8440\n", 1,
	  "[http] has no token-file (every request must carry its token)" },
	{ "http tls half", "[http]\ntoken-file = /t\ntls-cert = /c\n", 1,
	  "[http]: give both tls-cert and tls-key, or neither" },
	{ "http bad listen", "[http]\nlisten = 8440\n", 2,
	  "listen = 8440: give ADDRESS:PORT, e.g. 127.0.0.1:8440" },
	{ "http bad port", "[http]\nlisten = 127.0.0.1:99999\n", 2,
	  "listen = 99999: give a whole number from 1 to 65535" },
	{ "two http", "[http]\ntoken-file = /t\n[http]\n", 3,
	  "a second [http] (the first is on line 1)" },
	{ "peer without token", "[peer b]\nurl = http://b:8440\n", 1,
	  "[peer b] needs url and token-file" },
	{ "peer bad url", "[peer b]\nurl = b:8440\n", 2,
	  "url = b:8440: give an http:// or https:// URL" },
};

static void test_http(void **state)
{
	(void)state;
	struct cairn_conf c;
	load_ok("[global]\n", &c);
	assert_false(c.http.on);
	cairn_conf_free(&c);
	load_ok("[http]\ntoken-file = /etc/cairn/t\n[peer hv2]\nurl = https://hv2:8440\n"
		"token-file = /etc/cairn/hv2\n", &c);
	assert_true(c.http.on);
	assert_string_equal(c.http.listen, "127.0.0.1:8440");
	assert_string_equal(c.http.token_file, "/etc/cairn/t");
	assert_string_equal(c.http.www_dir, CAIRN_WWW_DIR);
	assert_null(c.http.tls_cert);
	assert_int_equal(c.npeers, 1);
	assert_string_equal(c.peers[0].name, "hv2");
	assert_string_equal(c.peers[0].url, "https://hv2:8440");
	cairn_conf_free(&c);
	load_ok("[http]\nlisten = [::1]:9000\ntoken-file = /t\ntls-cert = /c\ntls-key = /k\n"
		"www-dir = /w\n", &c);
	assert_string_equal(c.http.listen, "[::1]:9000");
	assert_string_equal(c.http.tls_key, "/k");
	assert_string_equal(c.http.www_dir, "/w");
	cairn_conf_free(&c);
}

static void test_refusal(void **state)
{
	const struct refusal *r = *state;
	struct cairn_conf c;
	char err[700] = "", want[700];
	int rc = load(r->text, &c, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("%s: got %d (%s), want -EINVAL:\n%s", r->name, rc, err, r->text);
	snprintf(want, sizeof(want), "%s:%d: %s", path, r->line, r->message);
	if (strcmp(err, want))
		fail_msg("%s:\n got '%s'\nwant '%s'", r->name, err, want);
	assert_null(c.path); /* nothing left to free */
	assert_int_equal(c.njobs, 0);
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

#define NREFUSALS (sizeof(refusals) / sizeof(refusals[0]))

int main(void)
{
	struct CMUnitTest tests[6 + NREFUSALS] = {
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_ini_syntax),
		cmocka_unit_test(test_durations_and_sizes),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_http),
	};
	for (size_t i = 0; i < NREFUSALS; i++)
		tests[6 + i] = (struct CMUnitTest){ .name = refusals[i].name,
						    .test_func = test_refusal,
						    .initial_state = (void *)&refusals[i] };
	return cmocka_run_group_tests(tests, setup, teardown);
}
