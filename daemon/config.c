/* The agent daemon's configuration file (see config.h).
 *
 * inih drives the parse and calls handler() for each key; it reads lines
 * through read_line(), which is where sections are opened: inih does not
 * report a section without keys, nor a second [job x] right after the
 * first, and both must be refused. read_line() also counts lines, because
 * inih's handler does not get the line number. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "base/util.h"

enum section { SEC_NONE, SEC_GLOBAL, SEC_REPO, SEC_JOB, SEC_HTTP, SEC_PEER };

/* The keys of each section; the LIST ones may be repeated and add up. */
#define LIST "+"
static const char *const global_keys[] = { "state-dir", "metrics-dir", "run-dir", "connect",
					    "log-level", NULL };
static const char *const repo_keys[] = { "url", "password-file", "key-file", "s3-credentials-file",
					 "sftp-identity", "sftp-known-hosts",
					 "connections", "limit-upload", "limit-download",
					 "keep-last", "keep-hourly", "keep-daily", "keep-weekly",
					 "keep-monthly", "keep-yearly", "keep-within",
					 "keep-tag" LIST, NULL };
static const char *const job_keys[] = { "domains" LIST, "exclude" LIST, "schedule",
					"randomized-delay", "repository", "keep-last",
					"keep-hourly", "keep-daily", "keep-weekly", "keep-monthly",
					"keep-yearly", "keep-within", "keep-tag" LIST,
					"gc-schedule", "replicate-to" LIST, "quiesce", "parallel",
					"scratch-dir", "pre-hook", "post-hook", "webhook",
					"notify-success", "email-command", "anomaly-guard", NULL };
static const char *const http_keys[] = { "listen", "token-file", "tls-cert", "tls-key",
					 "www-dir", NULL };
static const char *const peer_keys[] = { "url", "token-file", NULL };
#define MAX_KEYS 32 /* more than any table above holds */

struct loader {
	struct cairn_conf *c;
	FILE *f;
	int line; /* of the line inih is on */
	bool had_key; /* since the last header: an indented line continues it */
	enum section sec;
	struct cairn_conf_repo *repo; /* the section being read */
	struct cairn_conf_job *job;
	struct cairn_conf_peer *peer;
	char section[256]; /* its header text, as inih passes it */
	int seen[MAX_KEYS]; /* line of each key of the section so far, or 0 */
	int global_line; /* of the [global] header, or 0 */
	int http_line; /* of the [http] header, or 0 */
	char *err;
	size_t errlen;
	int rc;
};

static int vfail(struct loader *l, int rc, const char *fmt, va_list ap)
{
	if (l->rc == 0) {
		char msg[600];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		l->rc = set_err(l->err, l->errlen, rc, "%s:%d: %s", l->c->path, l->line, msg);
	}
	return 0; /* tells inih to stop */
}

/* Records the first error at the current line; returns 0 for inih. */
static int fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct loader *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(l, -EINVAL, fmt, ap);
	va_end(ap);
	return 0;
}

static int oom(struct loader *l)
{
	if (l->rc == 0)
		l->rc = set_err(l->err, l->errlen, -ENOMEM, "%s:%d: out of memory", l->c->path, l->line);
	return 0;
}

/* ---- key tables ---- */

static const char *const *section_keys(enum section s)
{
	return s == SEC_GLOBAL ? global_keys : s == SEC_REPO ? repo_keys
	       : s == SEC_HTTP	 ? http_keys
	       : s == SEC_PEER	 ? peer_keys
				 : job_keys;
}

static const char *section_label(enum section s)
{
	return s == SEC_GLOBAL ? "[global]" : s == SEC_REPO ? "a [repository] section"
	       : s == SEC_HTTP	 ? "[http]"
	       : s == SEC_PEER	 ? "a [peer] section"
				 : "a [job] section";
}

/* Index of key in keys (ignoring the LIST mark), or -1. */
static int key_index(const char *const *keys, const char *key, bool *list)
{
	size_t n = strlen(key);
	for (int i = 0; keys[i]; i++)
		if (!strncmp(keys[i], key, n) && (!keys[i][n] || !strcmp(keys[i] + n, LIST))) {
			*list = keys[i][n] != '\0';
			return i;
		}
	return -1;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = MIN(sub, MIN(del, ins));
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

/* The hint says where the key belongs, or which known key is closest
 * (at most 3 edits away, so that the hint is a likely typo). */
static int unknown_key(struct loader *l, const char *key)
{
	const enum section all[] = { SEC_GLOBAL, SEC_REPO, SEC_JOB, SEC_HTTP, SEC_PEER };
	bool list;
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (all[i] != l->sec && key_index(section_keys(all[i]), key, &list) >= 0)
			return fail(l, "unknown key '%s' in %s (it belongs in %s)", key,
				    section_label(l->sec), section_label(all[i]));
	const char *const *keys = section_keys(l->sec);
	char best[64] = "";
	size_t bestd = 4;
	for (size_t i = 0; keys[i]; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(keys[i], LIST), keys[i]);
		size_t d = edit_distance(key, name);
		if (d < bestd) {
			bestd = d;
			snprintf(best, sizeof(best), "%s", name);
		}
	}
	if (*best)
		return fail(l, "unknown key '%s' in %s (did you mean '%s'?)", key, section_label(l->sec),
			    best);
	return fail(l, "unknown key '%s' in %s (see cairn.conf(5))", key, section_label(l->sec));
}

/* ---- values ---- */

static int set_str(struct loader *l, char **dst, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return oom(l);
	free(*dst);
	*dst = copy;
	return 1;
}

/* Daemons run from /, so a relative path would be relative to nothing the
 * admin had in mind. */
static int set_path(struct loader *l, const char *key, char **dst, const char *value)
{
	if (value[0] != '/')
		return fail(l, "%s = %s: give an absolute path", key, value);
	return set_str(l, dst, value);
}

static int add_words(struct loader *l, struct cairn_conf_list *list, const char *value)
{
	_cleanup_free_ char *copy = strdup(value);
	char *save = NULL;
	if (!copy)
		return oom(l);
	for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		char **grown = realloc(list->v, (list->n + 2) * sizeof(*grown));
		if (!grown)
			return oom(l);
		list->v = grown;
		if (!(list->v[list->n] = strdup(w)))
			return oom(l);
		list->v[++list->n] = NULL;
	}
	return 1;
}

static int parse_uint(struct loader *l, const char *key, const char *value, unsigned lo,
		      unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	long v = strtol(value, &end, 10);
	if (errno || *end || end == value || !isdigit((unsigned char)value[0]) || v < lo || v > hi)
		return fail(l, "%s = %s: give a whole number from %u to %u", key, value, lo, hi);
	*out = (unsigned)v;
	return 1;
}

static int parse_bool(struct loader *l, const char *key, const char *value, bool *out)
{
	if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
		*out = true;
	else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
		*out = false;
	else
		return fail(l, "%s = %s: use yes or no", key, value);
	return 1;
}

/* A span like systemd's RandomizedDelaySec: seconds, or one number with
 * s/sec, m/min, h, d ("30min", "2h"); at most a week. */
static int parse_seconds(struct loader *l, const char *key, const char *value, int64_t *out)
{
	static const struct {
		const char *unit;
		int64_t mul;
	} units[] = { { "", 1 },	 { "s", 1 },	  { "sec", 1 },	   { "m", 60 },
		      { "min", 60 }, { "h", 3600 }, { "hour", 3600 }, { "d", 86400 } };
	char *end;
	errno = 0;
	long long v = strtoll(value, &end, 10);
	if (!errno && end != value && isdigit((unsigned char)value[0]) && v <= 7 * 86400)
		for (size_t i = 0; i < ARRAY_SIZE(units); i++)
			if (!strcmp(end, units[i].unit) && v * units[i].mul <= 7 * 86400) {
				*out = v * units[i].mul;
				return 1;
			}
	return fail(l, "%s = %s: give a duration up to a week, such as 600, 30min, 2h", key, value);
}

/* Bytes per second: "20M", "512K", "1G" (parse_size's units). */
static int parse_rate(struct loader *l, const char *key, const char *value, uint64_t *out)
{
	if (parse_size(value, out) < 0)
		return fail(l, "%s = %s: give bytes per second, such as 20M or 512K", key, value);
	return 1;
}

static int parse_calendar(struct loader *l, const char *key, const char *value, char **text,
			  struct cairn_calendar *cal)
{
	char why[400] = "";
	if (cairn_calendar_parse(value, cal, why, sizeof(why)) < 0)
		return fail(l, "%s: %s (see systemd.time(7); e.g. daily, *-*-* 02:30, Mon..Fri 22:00)",
			    key, why);
	return set_str(l, text, value);
}

static int parse_quiesce(struct loader *l, const char *value, enum cairn_quiesce *q)
{
	if (!strcasecmp(value, "yes"))
		*q = CAIRN_QUIESCE_YES;
	else if (!strcasecmp(value, "no"))
		*q = CAIRN_QUIESCE_NO;
	else if (!strcasecmp(value, "auto"))
		*q = CAIRN_QUIESCE_AUTO;
	else
		return fail(l, "quiesce = %s: use yes, no or auto", value);
	return 1;
}

static const char *const log_levels[] = { "error", "warning", "info", "debug" };

const char *cairn_log_level_name(enum cairn_log_level level)
{
	return (size_t)level < ARRAY_SIZE(log_levels) ? log_levels[level] : "info";
}

static int parse_log_level(struct loader *l, const char *value, enum cairn_log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(log_levels); i++)
		if (!strcasecmp(value, log_levels[i])) {
			*out = (enum cairn_log_level)i;
			return 1;
		}
	return fail(l, "log-level = %s: use error, warning, info or debug", value);
}

/* keep-* keys, shared by jobs and repositories (as replication targets);
 * -1 when key is not one of them. */
static int keep_key(struct loader *l, const char *key, const char *value,
		    struct cairn_keep_policy *p, struct cairn_conf_list *tags, bool *has)
{
	static const char *const names[] = { "keep-last", "keep-hourly", "keep-daily",
					     "keep-weekly", "keep-monthly", "keep-yearly" };
	unsigned *counts[] = { &p->last, &p->hourly, &p->daily, &p->weekly, &p->monthly,
			       &p->yearly };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(key, names[i])) {
			*has = true;
			return parse_uint(l, key, value, 0, 1000000, counts[i]);
		}
	if (!strcmp(key, "keep-within")) {
		*has = true;
		if (cairn_duration_parse(value, &p->within) < 0)
			return fail(l, "keep-within = %s: give a duration such as 7d, 2w, 6m, 1y6m, 36h",
				    value);
		p->has_within = true;
		return 1;
	}
	if (!strcmp(key, "keep-tag")) {
		*has = true;
		int ok = add_words(l, tags, value);
		p->tags = (const char *const *)tags->v;
		p->ntags = tags->n;
		return ok;
	}
	return -1;
}

/* ---- sections ---- */

static int global_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf *c = l->c;
	if (!strcmp(key, "state-dir"))
		return set_path(l, key, &c->state_dir, value);
	if (!strcmp(key, "metrics-dir"))
		return set_path(l, key, &c->metrics_dir, value);
	if (!strcmp(key, "run-dir"))
		return set_path(l, key, &c->run_dir, value);
	if (!strcmp(key, "connect"))
		return set_str(l, &c->connect, value);
	if (!strcmp(key, "log-level"))
		return parse_log_level(l, value, &c->log_level);
	return -1;
}

static int repo_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_repo *r = l->repo;
	if (!strcmp(key, "url")) {
		if (value[0] != '/' && !strstr(value, "://") && strncmp(value, "s3:", 3) &&
		    strncmp(value, "sftp:", 5))
			return fail(l, "url = %s: give an absolute path or a URL", value);
		return set_str(l, &r->url, value);
	}
	if (!strcmp(key, "password-file"))
		return set_path(l, key, &r->password_file, value);
	if (!strcmp(key, "key-file"))
		return set_path(l, key, &r->key_file, value);
	if (!strcmp(key, "s3-credentials-file"))
		return set_path(l, key, &r->s3_credentials_file, value);
	if (!strcmp(key, "sftp-identity"))
		return set_path(l, key, &r->sftp_identity, value);
	if (!strcmp(key, "sftp-known-hosts"))
		return set_path(l, key, &r->sftp_known_hosts, value);
	if (!strcmp(key, "connections"))
		return parse_uint(l, key, value, 1, 64, &r->connections);
	if (!strcmp(key, "limit-upload"))
		return parse_rate(l, key, value, &r->limit_upload);
	if (!strcmp(key, "limit-download"))
		return parse_rate(l, key, value, &r->limit_download);
	return keep_key(l, key, value, &r->keep, &r->keep_tags, &r->has_keep);
}

static int job_domains(struct loader *l, struct cairn_conf_job *j, const char *value)
{
	if (!add_words(l, &j->domains, value))
		return 0;
	for (size_t i = 0; i < j->domains.n; i++)
		j->all |= !strcmp(j->domains.v[i], "all");
	if (j->all && j->domains.n > 1)
		return fail(l, "domains = %s: 'all' stands alone (leave VMs out with exclude)", value);
	return 1;
}

static int job_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_job *j = l->job;
	if (!strcmp(key, "domains"))
		return job_domains(l, j, value);
	if (!strcmp(key, "exclude"))
		return add_words(l, &j->exclude, value);
	if (!strcmp(key, "schedule"))
		return parse_calendar(l, key, value, &j->schedule, &j->calendar);
	if (!strcmp(key, "gc-schedule"))
		return parse_calendar(l, key, value, &j->gc_schedule, &j->gc_calendar);
	if (!strcmp(key, "randomized-delay"))
		return parse_seconds(l, key, value, &j->randomized_delay_s);
	if (!strcmp(key, "repository"))
		return set_str(l, &j->repository, value);
	if (!strcmp(key, "replicate-to"))
		return add_words(l, &j->replicate_to, value);
	if (!strcmp(key, "quiesce"))
		return parse_quiesce(l, value, &j->quiesce);
	if (!strcmp(key, "parallel"))
		return parse_uint(l, key, value, 1, 64, &j->parallel);
	if (!strcmp(key, "scratch-dir"))
		return set_path(l, key, &j->scratch_dir, value);
	if (!strcmp(key, "pre-hook"))
		return set_str(l, &j->pre_hook, value);
	if (!strcmp(key, "post-hook"))
		return set_str(l, &j->post_hook, value);
	if (!strcmp(key, "webhook")) {
		if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
			return fail(l, "webhook = %s: give an http:// or https:// URL", value);
		return set_str(l, &j->webhook, value);
	}
	if (!strcmp(key, "email-command"))
		return set_str(l, &j->email_command, value);
	if (!strcmp(key, "notify-success"))
		return parse_bool(l, key, value, &j->notify_success);
	if (!strcmp(key, "anomaly-guard")) {
		char why[300];
		if (cairn_guard_parse(value, &j->guard, why, sizeof(why)) < 0)
			return fail(l, "anomaly-guard = %s: %s", value, why);
		return 1;
	}
	return keep_key(l, key, value, &j->keep, &j->keep_tags, &j->has_keep);
}

/* [http]: the console (daemon/http.h). */
static int http_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_http *h = &l->c->http;
	if (!strcmp(key, "listen")) {
		const char *colon = strrchr(value, ':');
		unsigned port;
		if (!colon || colon == value || !parse_uint(l, key, colon + 1, 1, 65535, &port))
			return l->rc ? 0 : fail(l, "listen = %s: give ADDRESS:PORT, e.g. 127.0.0.1:8440", value);
		return set_str(l, &h->listen, value);
	}
	if (!strcmp(key, "token-file"))
		return set_path(l, key, &h->token_file, value);
	if (!strcmp(key, "tls-cert"))
		return set_path(l, key, &h->tls_cert, value);
	if (!strcmp(key, "tls-key"))
		return set_path(l, key, &h->tls_key, value);
	if (!strcmp(key, "www-dir"))
		return set_path(l, key, &h->www_dir, value);
	return -1;
}

static int peer_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_peer *p = l->peer;
	if (!strcmp(key, "url")) {
		if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
			return fail(l, "url = %s: give an http:// or https:// URL", value);
		return set_str(l, &p->url, value);
	}
	if (!strcmp(key, "token-file"))
		return set_path(l, key, &p->token_file, value);
	return -1;
}

/* Names end up in file names, log lines and metrics labels. */
static bool valid_name(const char *s)
{
	if (!*s || *s == '.' || strlen(s) > 100)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-@+", *s))
			return false;
	return true;
}

static int open_repo(struct loader *l, const char *name)
{
	struct cairn_conf *c = l->c;
	if (cairn_conf_repo(c, name))
		return fail(l, "a second [repository %s] (names must be unique)", name);
	struct cairn_conf_repo *v = realloc(c->repos, (c->nrepos + 1) * sizeof(*v));
	if (!v)
		return oom(l);
	c->repos = v;
	l->repo = &c->repos[c->nrepos];
	*l->repo = (struct cairn_conf_repo){ .line = l->line };
	if (!(l->repo->name = strdup(name)))
		return oom(l);
	c->nrepos++;
	l->sec = SEC_REPO;
	return 1;
}

static int open_job(struct loader *l, const char *name)
{
	struct cairn_conf *c = l->c;
	if (cairn_conf_job(c, name))
		return fail(l, "a second [job %s] (names must be unique)", name);
	struct cairn_conf_job *v = realloc(c->jobs, (c->njobs + 1) * sizeof(*v));
	if (!v)
		return oom(l);
	c->jobs = v;
	l->job = &c->jobs[c->njobs];
	*l->job = (struct cairn_conf_job){ .line = l->line, .parallel = 1,
					   .quiesce = CAIRN_QUIESCE_AUTO };
	if (!(l->job->name = strdup(name)))
		return oom(l);
	c->njobs++;
	l->sec = SEC_JOB;
	return 1;
}

static int open_peer(struct loader *l, const char *name)
{
	struct cairn_conf *c = l->c;
	for (size_t i = 0; i < c->npeers; i++)
		if (!strcmp(c->peers[i].name, name))
			return fail(l, "a second [peer %s] (names must be unique)", name);
	struct cairn_conf_peer *v = realloc(c->peers, (c->npeers + 1) * sizeof(*v));
	if (!v)
		return oom(l);
	c->peers = v;
	l->peer = &c->peers[c->npeers];
	*l->peer = (struct cairn_conf_peer){ .line = l->line };
	if (!(l->peer->name = strdup(name)))
		return oom(l);
	c->npeers++;
	l->sec = SEC_PEER;
	return 1;
}

static int open_http(struct loader *l)
{
	if (l->http_line)
		return fail(l, "a second [http] (the first is on line %d)", l->http_line);
	l->http_line = l->line;
	l->c->http.on = true;
	l->c->http.line = l->line;
	l->sec = SEC_HTTP;
	return 1;
}

/* A [header] line; text is what is between the brackets. */
static int open_section(struct loader *l, const char *text)
{
	snprintf(l->section, sizeof(l->section), "%s", text);
	memset(l->seen, 0, sizeof(l->seen));
	l->had_key = false;
	const char *sp = strchr(text, ' ');
	size_t kind = sp ? (size_t)(sp - text) : strlen(text);
	bool repo = kind == 10 && !strncmp(text, "repository", 10);
	bool job = kind == 3 && !strncmp(text, "job", 3);
	bool peer = kind == 4 && !strncmp(text, "peer", 4);
	if (!strcmp(text, "http"))
		return open_http(l);
	if (!strcmp(text, "global")) {
		if (l->global_line)
			return fail(l, "a second [global] (the first is on line %d)", l->global_line);
		l->global_line = l->line;
		l->sec = SEC_GLOBAL;
		return 1;
	}
	if (!repo && !job && !peer)
		return fail(l, "unknown section [%s] (use [global], [repository NAME], [job NAME], "
			    "[http] or [peer NAME])", text);
	const char *what = repo ? "repository" : job ? "job" : "peer";
	if (!sp || !sp[1])
		return fail(l, "[%s] needs a name: [%s NAME]", text, what);
	if (!valid_name(sp + 1))
		return fail(l, "[%s]: a %s name is letters, digits and . _ - @ + (no spaces)", text, what);
	return repo ? open_repo(l, sp + 1) : job ? open_job(l, sp + 1) : open_peer(l, sp + 1);
}

/* Mirrors inih's reading of a line, so that a header is seen exactly when
 * inih sees one: not in a comment, not in an indented continuation line. */
static void check_header(struct loader *l, const char *line)
{
	if (l->line == 1 && !strncmp(line, "\xEF\xBB\xBF", 3))
		line += 3; /* inih skips a UTF-8 BOM */
	const char *s = line + strspn(line, " \t\r");
	if (*s != '[')
		return;
	/* inih would take it as more words for the key above */
	if (s > line && l->had_key) {
		fail(l, "an indented [section] continues the key above (start it at the line's beginning)");
		return;
	}
	size_t n = strcspn(s + 1, "]\n");
	if (s[1 + n] != ']' || n >= sizeof(l->section))
		return; /* inih reports the malformed line */
	char text[sizeof(l->section)];
	memcpy(text, s + 1, n);
	text[n] = '\0';
	open_section(l, text);
}

/* inih reads through this: it counts lines, opens sections and refuses
 * lines inih would silently cut in two. */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *l = stream;
	if (l->rc || !fgets(str, num, l->f))
		return NULL;
	l->line++;
	size_t len = strlen(str);
	if (len && str[len - 1] != '\n') {
		int ch = getc(l->f);
		if (ch != EOF) {
			fail(l, "longer than %d characters (put a long command into a script)", num - 2);
			return NULL;
		}
	}
	check_header(l, str);
	return l->rc ? NULL : str;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *l = user;
	if (l->rc)
		return 0;
	if (l->sec == SEC_NONE)
		return fail(l, "'%s' comes before any [section]", key);
	if (strcmp(section, l->section)) /* read_line and inih disagree: a bug */
		return fail(l, "cannot tell which section '%s' is in", key);
	l->had_key = true;
	bool list = false;
	int idx = key_index(section_keys(l->sec), key, &list);
	if (idx < 0)
		return unknown_key(l, key);
	if (!*value)
		return fail(l, "%s has no value", key);
	if (l->seen[idx] && !list)
		return fail(l, "%s is given twice in [%s] (first on line %d)", key, l->section,
			    l->seen[idx]);
	if (!l->seen[idx])
		l->seen[idx] = l->line;
	int rc = l->sec == SEC_GLOBAL ? global_key(l, key, value)
		 : l->sec == SEC_REPO ? repo_key(l, key, value)
		 : l->sec == SEC_HTTP ? http_key(l, key, value)
		 : l->sec == SEC_PEER ? peer_key(l, key, value)
				      : job_key(l, key, value);
	return rc < 0 ? fail(l, "'%s' has no handler (a bug)", key) : rc;
}

/* ---- whole-file checks ---- */

static int check_keep(struct loader *l, const char *what, const char *name, bool has,
		      const struct cairn_keep_policy *p)
{
	if (has && cairn_keep_policy_empty(p))
		return fail(l, "[%s %s]: the keep-* rules keep nothing (give a count above 0, or none)",
			    what, name);
	return 1;
}

/* A host key can only add (docs/design.md "Host keys"): retention, gc
 * and replication belong to a node that holds the password. */
static int check_host_key(struct loader *l, const struct cairn_conf_job *j)
{
	const struct cairn_conf_repo *r = cairn_conf_repo(l->c, j->repository);
	const char *what = j->has_keep ? "keep-*" : j->gc_schedule ? "gc-schedule"
					: j->replicate_to.n ? "replicate-to" : NULL;
	if (r->key_file && what)
		return fail(l, "[job %s]: %s needs the password of [repository %s]: its key-file is a host key, which can only add (run %s on a trusted node)",
			    j->name, what, r->name, j->has_keep ? "forget" : j->gc_schedule ? "gc" : "replicate");
	for (size_t i = 0; i < j->replicate_to.n; i++)
		if (cairn_conf_repo(l->c, j->replicate_to.v[i])->key_file)
			return fail(l, "[job %s]: replicate-to %s: a replication target needs its password, not a host key-file",
				    j->name, j->replicate_to.v[i]);
	return 1;
}

static int check_job(struct loader *l, const struct cairn_conf_job *j)
{
	l->line = j->line;
	if (!j->domains.n)
		return fail(l, "[job %s] has no domains (give names, globs or all)", j->name);
	if (!j->schedule)
		return fail(l, "[job %s] has no schedule (e.g. schedule = daily)", j->name);
	if (!j->repository)
		return fail(l, "[job %s] has no repository (the name of a [repository] section)",
			    j->name);
	if (!cairn_conf_repo(l->c, j->repository))
		return fail(l, "[job %s]: repository %s: there is no [repository %s]", j->name,
			    j->repository, j->repository);
	for (size_t i = 0; i < j->replicate_to.n; i++) {
		const char *to = j->replicate_to.v[i];
		if (!cairn_conf_repo(l->c, to))
			return fail(l, "[job %s]: replicate-to %s: there is no [repository %s]", j->name,
				    to, to);
		if (!strcmp(to, j->repository))
			return fail(l, "[job %s]: replicate-to %s: that is the job's own repository",
				    j->name, to);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(to, j->replicate_to.v[k]))
				return fail(l, "[job %s]: replicate-to names %s twice", j->name, to);
	}
	return check_host_key(l, j) && check_keep(l, "job", j->name, j->has_keep, &j->keep);
}

/* The console never runs open: without a token there is no server. */
static int check_http(struct loader *l)
{
	const struct cairn_conf_http *h = &l->c->http;
	l->line = h->line;
	if (h->on && !h->token_file)
		return fail(l, "[http] has no token-file (every request must carry its token)");
	if (h->on && !h->tls_cert != !h->tls_key)
		return fail(l, "[http]: give both tls-cert and tls-key, or neither");
	for (size_t i = 0; i < l->c->npeers; i++) {
		const struct cairn_conf_peer *p = &l->c->peers[i];
		l->line = p->line;
		if (!p->url || !p->token_file)
			return fail(l, "[peer %s] needs url and token-file", p->name);
	}
	return 1;
}

static int check_all(struct loader *l)
{
	if (!check_http(l))
		return 0;
	for (size_t i = 0; i < l->c->nrepos; i++) {
		const struct cairn_conf_repo *r = &l->c->repos[i];
		l->line = r->line;
		if (!r->url)
			return fail(l, "[repository %s] has no url", r->name);
		if (r->key_file && r->password_file)
			return fail(l, "[repository %s]: give password-file or key-file, not both", r->name);
		if (!check_keep(l, "repository", r->name, r->has_keep, &r->keep))
			return 0;
	}
	for (size_t i = 0; i < l->c->njobs; i++)
		if (!check_job(l, &l->c->jobs[i]))
			return 0;
	return 1;
}

static int set_defaults(struct loader *l)
{
	struct cairn_conf *c = l->c;
	if (!c->state_dir && !set_str(l, &c->state_dir, "/var/lib/cairn/agent"))
		return 0;
	if (!c->run_dir && !set_str(l, &c->run_dir, "/run/cairn"))
		return 0;
	if (c->http.on && !c->http.listen && !set_str(l, &c->http.listen, "127.0.0.1:8440"))
		return 0;
	if (c->http.on && !c->http.www_dir && !set_str(l, &c->http.www_dir, CAIRN_WWW_DIR))
		return 0;
	return 1;
}

int cairn_conf_read(FILE *f, const char *path, struct cairn_conf *out, char *err, size_t errlen)
{
	*out = (struct cairn_conf){ .log_level = CAIRN_LOG_INFO };
	if (!(out->path = strdup(path)))
		return set_err(err, errlen, -ENOMEM, "out of memory");
	struct loader l = { .c = out, .err = err, .errlen = errlen, .f = f };
	int bad = ini_parse_stream(read_line, &l, handler, &l);
	if (bad > 0 && l.rc == 0) {
		l.line = bad;
		fail(&l, "neither 'key = value' nor a [section]");
	} else if (bad < 0 && l.rc == 0) {
		oom(&l);
	}
	if (l.rc == 0)
		check_all(&l);
	if (l.rc == 0)
		set_defaults(&l);
	if (l.rc < 0)
		cairn_conf_free(out);
	return l.rc;
}

int cairn_conf_load(const char *path, struct cairn_conf *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		*out = (struct cairn_conf){ .log_level = CAIRN_LOG_INFO };
		return set_err(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
	}
	int rc = cairn_conf_read(f, path, out, err, errlen);
	fclose(f);
	return rc;
}

static void free_list(struct cairn_conf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void free_repo(struct cairn_conf_repo *r)
{
	free(r->name);
	free(r->url);
	free(r->password_file);
	free(r->key_file);
	free(r->s3_credentials_file);
	free(r->sftp_identity);
	free(r->sftp_known_hosts);
	free_list(&r->keep_tags);
}

static void free_job(struct cairn_conf_job *j)
{
	free(j->name);
	free_list(&j->domains);
	free_list(&j->exclude);
	free(j->schedule);
	free(j->repository);
	free_list(&j->keep_tags);
	free(j->gc_schedule);
	free_list(&j->replicate_to);
	free(j->scratch_dir);
	free(j->pre_hook);
	free(j->post_hook);
	free(j->webhook);
	free(j->email_command);
}

static void free_http(struct cairn_conf_http *h)
{
	free(h->listen);
	free(h->token_file);
	free(h->tls_cert);
	free(h->tls_key);
	free(h->www_dir);
}

void cairn_conf_free(struct cairn_conf *c)
{
	free_http(&c->http);
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		free(c->peers[i].url);
		free(c->peers[i].token_file);
	}
	free(c->peers);
	for (size_t i = 0; i < c->nrepos; i++)
		free_repo(&c->repos[i]);
	for (size_t i = 0; i < c->njobs; i++)
		free_job(&c->jobs[i]);
	free(c->repos);
	free(c->jobs);
	free(c->path);
	free(c->state_dir);
	free(c->metrics_dir);
	free(c->run_dir);
	free(c->connect);
	*c = (struct cairn_conf){ 0 };
}

const struct cairn_conf_repo *cairn_conf_repo(const struct cairn_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nrepos; i++)
		if (!strcmp(c->repos[i].name, name))
			return &c->repos[i];
	return NULL;
}

const struct cairn_conf_job *cairn_conf_job(const struct cairn_conf *c, const char *name)
{
	for (size_t i = 0; i < c->njobs; i++)
		if (!strcmp(c->jobs[i].name, name))
			return &c->jobs[i];
	return NULL;
}
