/* The agent daemon's configuration file (see config.h). */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "repo/util.h"

enum section { SEC_NONE, SEC_GLOBAL, SEC_REPO, SEC_JOB };

struct loader {
	struct cairn_conf *c;
	FILE *f;
	int line;
	enum section sec;
	struct cairn_conf_repo *repo;
	struct cairn_conf_job *job;
	char section[300]; /* the one keys go to */
	int header_line; /* of the last [section] line */
	char *err;
	size_t errlen;
	int rc;
};

static const char *const global_keys[] = { "state-dir", "metrics-dir", "run-dir", "connect", NULL };
static const char *const repo_keys[] = { "url", "password-file", "s3-credentials-file",
					 "connections", "limit-upload", "limit-download",
					 "keep-last", "keep-hourly", "keep-daily", "keep-weekly",
					 "keep-monthly", "keep-yearly", "keep-within", "keep-tag",
					 NULL };
static const char *const job_keys[] = { "domains", "exclude", "schedule", "randomized-delay",
					"repository", "keep-last", "keep-hourly", "keep-daily",
					"keep-weekly", "keep-monthly", "keep-yearly", "keep-within",
					"keep-tag", "gc-schedule", "replicate-to", "quiesce",
					"parallel", "scratch-dir", "pre-hook", "post-hook", "webhook",
					"notify-success", "email-command", NULL };

static int fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct loader *l, const char *fmt, ...)
{
	if (l->rc == 0) {
		char msg[400];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		l->rc = set_err(l->err, l->errlen, -EINVAL, "%s:%d: %s", l->c->path, l->line, msg);
	}
	return 0; /* tells inih to stop */
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
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

static int unknown_key(struct loader *l, const char *key, const char *const *known,
		       const char *where)
{
	const char *best = NULL;
	size_t bestd = 4;
	for (size_t i = 0; known[i]; i++) {
		size_t d = edit_distance(key, known[i]);
		if (d < bestd) {
			bestd = d;
			best = known[i];
		}
	}
	if (best)
		return fail(l, "unknown key '%s' in %s (did you mean '%s'?)", key, where, best);
	return fail(l, "unknown key '%s' in %s (see cairn.conf(5))", key, where);
}

static int set_str(struct loader *l, char **dst, const char *value)
{
	free(*dst);
	if (!(*dst = strdup(value)))
		return fail(l, "out of memory");
	return 1;
}

static int add_words(struct loader *l, struct cairn_conf_list *list, const char *value)
{
	char *copy = strdup(value), *save = NULL;
	if (!copy)
		return fail(l, "out of memory");
	for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		char **grown = realloc(list->v, (list->n + 2) * sizeof(*grown));
		if (!grown || !(grown[list->n] = strdup(w))) {
			free(copy);
			if (grown)
				list->v = grown;
			return fail(l, "out of memory");
		}
		list->v = grown;
		list->n++;
		list->v[list->n] = NULL;
	}
	free(copy);
	return 1;
}

static int parse_uint(struct loader *l, const char *key, const char *value, unsigned max,
		      unsigned *out)
{
	char *end;
	long v = strtol(value, &end, 10);
	if (*end || end == value || v < 0 || v > (long)max)
		return fail(l, "%s = %s: give a whole number from 0 to %u", key, value, max);
	*out = (unsigned)v;
	return 1;
}

static int parse_bool(struct loader *l, const char *key, const char *value, bool *out)
{
	if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
		*out = true;
	else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
		*out = false;
	else
		return fail(l, "%s = %s: use yes or no", key, value);
	return 1;
}

/* Seconds, or a duration with s/min/h/d suffix ("30min", "2h"). */
static int parse_seconds(struct loader *l, const char *key, const char *value, int64_t *out)
{
	char *end;
	long long v = strtoll(value, &end, 10);
	long long mul = !*end || !strcmp(end, "s") ? 1
			: !strcmp(end, "min") || !strcmp(end, "m") ? 60
			: !strcmp(end, "h") ? 3600
			: !strcmp(end, "d") ? 86400
					    : 0;
	if (end == value || v < 0 || !mul || v > 7 * 86400)
		return fail(l, "%s = %s: give a duration such as 600, 30min, 2h", key, value);
	*out = v * mul;
	return 1;
}

static int parse_calendar(struct loader *l, const char *key, const char *value, char **text,
			  struct cairn_calendar *cal)
{
	char why[300] = "";
	if (cairn_calendar_parse(value, cal, why, sizeof(why)) < 0)
		return fail(l, "%s: %s (forms: daily, hourly, *-*-* 02:30, Mon..Fri 22:00)", key, why);
	return set_str(l, text, value);
}

/* keep-* keys, shared by jobs and repositories (as replication targets). */
static int keep_key(struct loader *l, const char *key, const char *value,
		    struct cairn_keep_policy *p, struct cairn_conf_list *tags, bool *has)
{
	static const char *const names[] = { "keep-last", "keep-hourly", "keep-daily",
					     "keep-weekly", "keep-monthly", "keep-yearly" };
	unsigned *fields[] = { &p->last, &p->hourly, &p->daily, &p->weekly, &p->monthly,
			       &p->yearly };
	*has = true;
	for (size_t i = 0; i < 6; i++)
		if (!strcmp(key, names[i]))
			return parse_uint(l, key, value, 1000000, fields[i]);
	if (!strcmp(key, "keep-within")) {
		if (cairn_duration_parse(value, &p->within) < 0)
			return fail(l, "keep-within = %s: use a duration such as 7d, 2w, 6m, 1y6m, 36h",
				    value);
		p->has_within = true;
		return 1;
	}
	if (!strcmp(key, "keep-tag")) {
		int rc = add_words(l, tags, value);
		p->tags = (const char *const *)tags->v;
		p->ntags = tags->n;
		return rc;
	}
	return -1;
}

static int global_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf *c = l->c;
	if (!strcmp(key, "state-dir"))
		return set_str(l, &c->state_dir, value);
	if (!strcmp(key, "metrics-dir"))
		return set_str(l, &c->metrics_dir, value);
	if (!strcmp(key, "run-dir"))
		return set_str(l, &c->run_dir, value);
	if (!strcmp(key, "connect"))
		return set_str(l, &c->connect, value);
	return unknown_key(l, key, global_keys, "[global]");
}

static int repo_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_repo *r = l->repo;
	if (!strcmp(key, "url"))
		return set_str(l, &r->url, value);
	if (!strcmp(key, "password-file"))
		return set_str(l, &r->password_file, value);
	if (!strcmp(key, "s3-credentials-file"))
		return set_str(l, &r->s3_credentials_file, value);
	if (!strcmp(key, "connections"))
		return parse_uint(l, key, value, 64, &r->connections);
	if (!strcmp(key, "limit-upload"))
		return set_str(l, &r->limit_upload, value);
	if (!strcmp(key, "limit-download"))
		return set_str(l, &r->limit_download, value);
	int rc = keep_key(l, key, value, &r->keep, &r->keep_tags, &r->has_keep);
	return rc >= 0 ? rc : unknown_key(l, key, repo_keys, "a [repository] section");
}

static int quiesce_value(struct loader *l, const char *value, enum cairn_quiesce *q)
{
	if (!strcmp(value, "yes"))
		*q = CAIRN_QUIESCE_YES;
	else if (!strcmp(value, "no"))
		*q = CAIRN_QUIESCE_NO;
	else if (!strcmp(value, "auto"))
		*q = CAIRN_QUIESCE_AUTO;
	else
		return fail(l, "quiesce = %s: use yes, no or auto", value);
	return 1;
}

static int job_key(struct loader *l, const char *key, const char *value)
{
	struct cairn_conf_job *j = l->job;
	if (!strcmp(key, "domains")) {
		int rc = add_words(l, &j->domains, value);
		for (size_t i = 0; i < j->domains.n; i++)
			j->all |= !strcmp(j->domains.v[i], "all");
		return rc;
	}
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
		return quiesce_value(l, value, &j->quiesce);
	if (!strcmp(key, "parallel")) {
		int rc = parse_uint(l, key, value, 64, &j->parallel);
		return rc && j->parallel == 0 ? fail(l, "parallel = 0: give 1 to 64") : rc;
	}
	if (!strcmp(key, "scratch-dir"))
		return set_str(l, &j->scratch_dir, value);
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
	int rc = keep_key(l, key, value, &j->keep, &j->keep_tags, &j->has_keep);
	return rc >= 0 ? rc : unknown_key(l, key, job_keys, "a [job] section");
}

static int new_section(struct loader *l, const char *section)
{
	struct cairn_conf *c = l->c;
	const char *sp = strchr(section, ' ');
	const char *name = sp ? sp + 1 : NULL;
	size_t kind = sp ? (size_t)(sp - section) : strlen(section);
	if (!strcmp(section, "global")) {
		l->sec = SEC_GLOBAL;
		return 1;
	}
	bool repo = kind == 10 && !strncmp(section, "repository", 10);
	bool job = kind == 3 && !strncmp(section, "job", 3);
	if (!repo && !job)
		return fail(l, "unknown section [%s] (use [global], [repository NAME], [job NAME])",
			    section);
	if (!name || !*name || strchr(name, ' '))
		return fail(l, "[%s] needs one name: [%s NAME]", section, repo ? "repository" : "job");
	if ((repo && cairn_conf_repo(c, name)) || (job && cairn_conf_job(c, name)))
		return fail(l, "a second [%s]", section);
	if (repo) {
		struct cairn_conf_repo *v = realloc(c->repos, (c->nrepos + 1) * sizeof(*v));
		if (!v)
			return fail(l, "out of memory");
		c->repos = v;
		l->repo = &c->repos[c->nrepos++];
		memset(l->repo, 0, sizeof(*l->repo));
		l->repo->line = l->header_line;
		l->sec = SEC_REPO;
		return set_str(l, &l->repo->name, name);
	}
	struct cairn_conf_job *v = realloc(c->jobs, (c->njobs + 1) * sizeof(*v));
	if (!v)
		return fail(l, "out of memory");
	c->jobs = v;
	l->job = &c->jobs[c->njobs++];
	memset(l->job, 0, sizeof(*l->job));
	l->job->line = l->header_line;
	l->job->parallel = 1;
	l->job->quiesce = CAIRN_QUIESCE_AUTO;
	l->sec = SEC_JOB;
	return set_str(l, &l->job->name, name);
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct loader *l = user;
	if (l->rc)
		return 0;
	if (!*section)
		return fail(l, "'%s' comes before any [section]", key ? key : "");
	/* inih gives each key with its section: a section starts where the
	 * section text changes */
	if (strcmp(section, l->section)) {
		snprintf(l->section, sizeof(l->section), "%s", section);
		int line = l->line;
		l->line = l->header_line; /* errors about a section name its header */
		int ok = new_section(l, section);
		l->line = line;
		if (!ok)
			return 0;
	}
	if (!key)
		return 1;
	if (!*value)
		return fail(l, "%s has no value", key);
	switch (l->sec) {
	case SEC_GLOBAL: return global_key(l, key, value);
	case SEC_REPO: return repo_key(l, key, value);
	case SEC_JOB: return job_key(l, key, value);
	default: return fail(l, "'%s' outside a section", key);
	}
}

/* A section with no keys never reaches the handler: its header is checked
 * here, as the line goes by. */
static void check_header(struct loader *l, const char *line)
{
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line != '[')
		return;
	char name[300];
	size_t n = strcspn(line + 1, "]");
	if (n >= sizeof(name) || line[1 + n] != ']')
		return; /* inih reports the malformed line */
	memcpy(name, line + 1, n);
	name[n] = '\0';
	l->header_line = l->line;
	if (!strcmp(name, "repository") || !strcmp(name, "job"))
		fail(l, "[%s] needs one name: [%s NAME]", name, name);
	else if (strcmp(name, "global") && strncmp(name, "repository ", 11) &&
		 strncmp(name, "job ", 4))
		fail(l, "unknown section [%s] (use [global], [repository NAME], [job NAME])", name);
}

/* inih reads through this so that the loader knows the line it is on. */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *l = stream;
	char *s = fgets(str, num, l->f);
	if (s) {
		l->line++;
		if (!l->rc)
			check_header(l, s);
	}
	return l->rc ? NULL : s;
}

static int check_job(struct loader *l, const struct cairn_conf_job *j)
{
	l->line = j->line;
	if (!j->domains.n)
		return fail(l, "[job %s] has no domains (give names, globs or all)", j->name);
	if (!j->schedule)
		return fail(l, "[job %s] has no schedule", j->name);
	if (!j->repository)
		return fail(l, "[job %s] has no repository", j->name);
	if (!cairn_conf_repo(l->c, j->repository))
		return fail(l, "[job %s]: no [repository %s] in this file", j->name, j->repository);
	for (size_t i = 0; i < j->replicate_to.n; i++) {
		if (!cairn_conf_repo(l->c, j->replicate_to.v[i]))
			return fail(l, "[job %s] replicate-to %s: no such [repository]", j->name,
				    j->replicate_to.v[i]);
		if (!strcmp(j->replicate_to.v[i], j->repository))
			return fail(l, "[job %s] replicates to its own repository", j->name);
	}
	return 1;
}

static int check_all(struct loader *l)
{
	for (size_t i = 0; i < l->c->nrepos; i++)
		if (!l->c->repos[i].url) {
			l->line = l->c->repos[i].line;
			return fail(l, "[repository %s] has no url", l->c->repos[i].name);
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
	return 1;
}

int cairn_conf_load(const char *path, struct cairn_conf *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct loader l = { .c = out, .err = err, .errlen = errlen };
	if (!(out->path = strdup(path)))
		return set_err(err, errlen, -ENOMEM, "out of memory");
	if (!(l.f = fopen(path, "r"))) {
		int rc = set_err(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
		cairn_conf_free(out);
		return rc;
	}
	int bad = ini_parse_stream(read_line, &l, handler, &l);
	fclose(l.f);
	if (bad > 0 && l.rc == 0) {
		l.line = bad;
		fail(&l, "not a 'key = value' line or a [section]");
	}
	if (l.rc == 0)
		check_all(&l);
	if (l.rc == 0)
		set_defaults(&l);
	if (l.rc < 0)
		cairn_conf_free(out);
	return l.rc;
}

static void free_list(struct cairn_conf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

void cairn_conf_free(struct cairn_conf *c)
{
	for (size_t i = 0; i < c->nrepos; i++) {
		struct cairn_conf_repo *r = &c->repos[i];
		free(r->name);
		free(r->url);
		free(r->password_file);
		free(r->s3_credentials_file);
		free(r->limit_upload);
		free(r->limit_download);
		free_list(&r->keep_tags);
	}
	for (size_t i = 0; i < c->njobs; i++) {
		struct cairn_conf_job *j = &c->jobs[i];
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
	free(c->repos);
	free(c->jobs);
	free(c->path);
	free(c->state_dir);
	free(c->metrics_dir);
	free(c->run_dir);
	free(c->connect);
	memset(c, 0, sizeof(*c));
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
