/* Which snapshots a repository holds, and which one a user means
 * (docs/design.md section 9, "Damaged manifests"): the one place that lists
 * manifests and resolves "latest", "latest-readable", ids and id prefixes,
 * so that every command names a damaged manifest the same way and none
 * resolves "latest" past one in silence.
 *
 * A damaged manifest's bytes cannot be trusted (its name is the hash they
 * fail), so neither its snapshot's name nor its time is known: it is dated
 * by when the store wrote it where the store says (a local directory), and
 * it may be the newest snapshot of any name. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/pipeline.h"
#include "internal.h"

void cairn_snapshot_set_free(struct cairn_snapshot_set *set)
{
	cairn_snapshot_list_free(set->v, set->n);
	free(set->damaged);
	memset(set, 0, sizeof(*set));
}

static int by_time(const void *a, const void *b)
{
	const struct cairn_snapshot *x = *(struct cairn_snapshot *const *)a;
	const struct cairn_snapshot *y = *(struct cairn_snapshot *const *)b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

static int add_damaged(struct cairn_repo *r, struct cairn_snapshot_set *set, size_t *cap,
		       const char *hexid, int why)
{
	if (array_grow(&set->damaged, cap, set->ndamaged, sizeof(*set->damaged)) < 0)
		return -ENOMEM;
	struct cairn_damaged_manifest *d = &set->damaged[set->ndamaged++];
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%.64s", hexid);
	d->error = why;
	char name[96];
	snprintf(name, sizeof(name), "snapshots/%.64s", hexid);
	if (!r->be->ops->mtime || r->be->ops->mtime(r->be, name, &d->mtime_ns) < 0)
		d->mtime_ns = 0;
	return 0;
}

/* The listing's names, those too large to be a manifest apart: such an
 * object is not read at all (docs/design.md section 8, "Limits"). */
struct manifest_names {
	struct name_list fit, too_large;
};

static int collect_manifest(void *opaque, const char *name, uint64_t size)
{
	struct manifest_names *m = opaque;
	return collect_name(size > ENVELOPE_MAX_MANIFEST ? &m->too_large : &m->fit, name, size);
}

static int list_manifests(struct cairn_repo *r, struct manifest_names *m)
{
	memset(m, 0, sizeof(*m));
	int rc = r->be->ops->list(r->be, "snapshots", collect_manifest, m);
	if (rc < 0) {
		name_list_free(&m->fit);
		name_list_free(&m->too_large);
		return repo_err(r, rc, "cannot list snapshots/ in %s: %s", r->be->location,
				strerror(-rc));
	}
	return 0;
}

/* The manifests are read several at once (up to the store's
 * connections): over a WAN a repository of many snapshots would
 * otherwise cost a round trip per snapshot for every "latest". Results
 * are taken in listing order. */
struct manifest_scan {
	struct cairn_repo *r;
	const struct name_list *names;
	struct cairn_snapshot_set *out;
	size_t cap; /* of out->damaged */
	struct cairn_snapshot **snap; /* per slot */
	int *rc; /* per slot */
};

static int scan_work(void *ctx, uint64_t seq, unsigned slot)
{
	struct manifest_scan *x = ctx;
	x->snap[slot] = NULL;
	x->rc[slot] = snapshot_load_manifest(x->r, x->names->v[seq], &x->snap[slot]);
	return x->rc[slot] == -ENOMEM ? -ENOMEM : 0;
}

static int scan_consume(void *ctx, uint64_t seq, unsigned slot)
{
	struct manifest_scan *x = ctx;
	int rc = x->rc[slot];
	if (rc == 0) {
		x->out->v[x->out->n++] = x->snap[slot];
		x->snap[slot] = NULL;
		return 0;
	}
	if (rc == -ENOENT) /* gone since the listing: a forget */
		return 0;
	return rc == -ENOMEM ? rc : add_damaged(x->r, x->out, &x->cap, x->names->v[seq], rc);
}

static int scan_manifests(struct manifest_scan *x)
{
	size_t n = x->names->n;
	unsigned workers = (unsigned)MAX(1, MIN((size_t)cairn_repo_read_workers(x->r), n));
	unsigned slots = workers * 2;
	x->snap = calloc(slots, sizeof(*x->snap));
	x->rc = calloc(slots, sizeof(*x->rc));
	static const struct cairn_pipeline_ops ops = { .work = scan_work,
						       .consume = scan_consume };
	int rc = x->snap && x->rc ? cairn_pipeline_run(&ops, x, n, workers, slots) : -ENOMEM;
	for (unsigned i = 0; x->snap && i < slots; i++)
		if (x->snap[i])
			cairn_snapshot_free(x->snap[i]);
	free(x->snap);
	free(x->rc);
	return rc;
}

int cairn_snapshot_scan(struct cairn_repo *r, struct cairn_snapshot_set *out)
{
	struct manifest_names m;
	memset(out, 0, sizeof(*out));
	int rc = list_manifests(r, &m);
	if (rc < 0)
		return rc;
	struct manifest_scan x = { .r = r, .names = &m.fit, .out = out };
	out->v = calloc(m.fit.n + 1, sizeof(*out->v));
	if (!out->v)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < m.too_large.n; i++)
		rc = add_damaged(r, out, &x.cap, m.too_large.v[i], -EFBIG);
	if (rc == 0 && m.fit.n)
		rc = scan_manifests(&x);
	name_list_free(&m.fit);
	name_list_free(&m.too_large);
	if (rc < 0) {
		cairn_snapshot_set_free(out);
		return repo_err(r, rc, "cannot list snapshots: %s", strerror(-rc));
	}
	qsort(out->v, out->n, sizeof(*out->v), by_time);
	return 0;
}

const char *cairn_damaged_manifest_reason(const struct cairn_damaged_manifest *d)
{
	switch (d->error) {
	case -EBADMSG:
		return "damaged";
	case -EFBIG:
		return "damaged (larger than any manifest)";
	default:
		return strerror(-d->error);
	}
}

void cairn_damaged_manifest_text(const struct cairn_damaged_manifest *d, char *out, size_t len)
{
	char when[40] = "time unknown";
	if (d->mtime_ns)
		format_time_utc(d->mtime_ns, when, sizeof(when));
	snprintf(out, len, "snapshot %.12s (written %s) is %s%s", d->id, when,
		 d->error == -EBADMSG || d->error == -EFBIG ? "" : "unreadable: ",
		 cairn_damaged_manifest_reason(d));
}

static void warn_damaged(struct cairn_repo *r, const struct cairn_damaged_manifest *d)
{
	char text[160];
	cairn_damaged_manifest_text(d, text, sizeof(text));
	repo_warn(r, "%s; skipped (cairn check %s names the damage)", text, r->be->location);
}

int cairn_snapshot_list(struct cairn_repo *r, struct cairn_snapshot ***out, size_t *n)
{
	struct cairn_snapshot_set set;
	int rc = cairn_snapshot_scan(r, &set);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < set.ndamaged; i++)
		warn_damaged(r, &set.damaged[i]);
	*out = TAKE_PTR(set.v);
	*n = set.n;
	set.n = 0;
	cairn_snapshot_set_free(&set);
	return 0;
}

/* The damaged manifest that may be newer than hit (NULL: no readable
 * snapshot of the name), the newest such; NULL when none is. One written
 * before hit's snapshot began cannot be newer; one of unknown date may. */
static const struct cairn_damaged_manifest *blocking(const struct cairn_snapshot_set *set,
						    const struct cairn_snapshot *hit)
{
	const struct cairn_damaged_manifest *worst = NULL;
	for (size_t i = 0; i < set->ndamaged; i++) {
		const struct cairn_damaged_manifest *d = &set->damaged[i];
		if (hit && d->mtime_ns && d->mtime_ns < hit->time_ns)
			continue;
		if (!worst || (worst->mtime_ns && (!d->mtime_ns || d->mtime_ns > worst->mtime_ns)))
			worst = d;
	}
	return worst;
}

static int refuse_latest(struct cairn_repo *r, const struct cairn_damaged_manifest *d,
			 const struct cairn_snapshot *hit, const char *name)
{
	char text[160], id[65], when[40];
	cairn_damaged_manifest_text(d, text, sizeof(text));
	if (!hit)
		return repo_err(r, -EBADMSG,
				"%s and may be the latest snapshot%s%s, and no readable one is: "
				"run cairn check %s", text, name ? " of " : "", name ? name : "",
				r->be->location);
	hex_encode(hit->id.b, CAIRN_ID_LEN, id);
	format_time_utc(hit->time_ns, when, sizeof(when));
	return repo_err(r, -EBADMSG,
			"%s and may be the latest snapshot%s%s: refusing 'latest'; to take the "
			"newest readable one on purpose give its id %.12s (%s) or 'latest-readable'; "
			"cairn check %s names the damage", text, name ? " of " : "", name ? name : "",
			id, when, r->be->location);
}

/* "latest" (strict: refuses when a damaged manifest may be newer) or
 * "latest-readable" (takes the newest readable one, naming the damage). */
static int find_latest(struct cairn_repo *r, const char *name, bool strict,
		       struct cairn_snapshot **out)
{
	struct cairn_snapshot_set set;
	int rc = cairn_snapshot_scan(r, &set);
	if (rc < 0)
		return rc;
	ssize_t hit = -1;
	for (size_t i = 0; i < set.n; i++) /* sorted oldest first */
		if (!name || !strcmp(set.v[i]->name, name))
			hit = (ssize_t)i;
	struct cairn_snapshot *s = hit >= 0 ? set.v[hit] : NULL;
	const struct cairn_damaged_manifest *newer = blocking(&set, s);
	if (strict && newer)
		rc = refuse_latest(r, newer, s, name);
	else if (!s)
		rc = repo_err(r, -ENOENT, "no %ssnapshot%s%s in %s", set.ndamaged ? "readable " : "",
			      name ? " named " : "", name ? name : "", r->be->location);
	for (size_t i = 0; i < set.ndamaged; i++)
		if (rc == 0 || &set.damaged[i] != newer)
			warn_damaged(r, &set.damaged[i]);
	if (rc == 0) {
		*out = s;
		set.v[hit] = NULL;
	}
	cairn_snapshot_set_free(&set);
	return rc;
}

/* The manifest a user named by id, not read when too large to be one. */
static int load_chosen(struct cairn_repo *r, const char *hexid, struct cairn_snapshot **out)
{
	char path[96];
	uint64_t size;
	snprintf(path, sizeof(path), "snapshots/%.64s", hexid);
	if (r->be->ops->stat(r->be, path, &size) == 0 && size > ENVELOPE_MAX_MANIFEST)
		return repo_err(r, -EBADMSG, "snapshot %.12s is damaged (%llu bytes: larger than "
				"any manifest; cairn check %s names the damage)", hexid,
				(unsigned long long)size, r->be->location);
	return snapshot_load_manifest(r, hexid, out);
}

int cairn_snapshot_find(struct cairn_repo *r, const char *spec,
			const char *name, struct cairn_snapshot **out)
{
	if (!strcmp(spec, "latest") || !strcmp(spec, "latest-readable"))
		return find_latest(r, name, !strcmp(spec, "latest"), out);
	/* match ids by name first: only the chosen manifest is read, and a
	 * damaged one is reported as damaged, not as missing */
	struct name_list names;
	int rc = list_names(r, "snapshots", &names);
	if (rc < 0)
		return rc;
	const char *match;
	size_t matches = name_list_match(&names, spec, &match);
	if (!*spec || strspn(spec, "0123456789abcdef") != strlen(spec) || !matches)
		rc = repo_err(r, -ENOENT, "no snapshot %s in %s", spec, r->be->location);
	else if (matches > 1)
		rc = repo_err(r, -EINVAL, "snapshot id %s is ambiguous (%zu matches)", spec,
			      matches);
	else
		rc = load_chosen(r, match, out);
	name_list_free(&names);
	if (rc == 0 && name && strcmp((*out)->name, name)) {
		rc = repo_err(r, -ENOENT, "snapshot %s is not named %s", spec, name);
		cairn_snapshot_free(*out);
		*out = NULL;
	}
	return rc;
}

struct find_job {
	struct cairn_repo *r;
	const char *spec, *name;
	struct cairn_snapshot *s;
	int rc;
	char err[sizeof(((struct cairn_repo *)0)->err)];
};

static void find_run(void *arg)
{
	struct find_job *f = arg;
	f->rc = cairn_snapshot_find(f->r, f->spec, f->name, &f->s);
	if (f->rc < 0)
		snprintf(f->err, sizeof(f->err), "%s", cairn_repo_error(f->r));
}

int cairn_snapshot_find_indexed(struct cairn_repo *r, const char *spec, const char *name,
				struct cairn_snapshot **out)
{
	struct find_job f = { .r = r, .spec = spec, .name = name };
	struct cairn_beside find;
	cairn_beside_start(&find, find_run, &f);
	int rc = cairn_repo_load_index(r);
	char err[sizeof(f.err)];
	snprintf(err, sizeof(err), "%s", rc < 0 ? cairn_repo_error(r) : "");
	cairn_beside_join(&find);
	if (rc < 0 || f.rc < 0) {
		if (f.s)
			cairn_snapshot_free(f.s);
		/* the message as it was first set (the other thread may have
		 * set its own since), with nothing appended */
		pthread_mutex_lock(&r->lock);
		snprintf(r->err, sizeof(r->err), "%s", rc < 0 ? err : f.err);
		pthread_mutex_unlock(&r->lock);
		return rc < 0 ? rc : f.rc;
	}
	*out = f.s;
	return 0;
}
