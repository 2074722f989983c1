/* Objects overwritten in a store that keeps versions (docs/design.md
 * section 23). A backup host's storage credentials may put objects but
 * not delete versions; a policy cannot stop a PUT over an existing name,
 * so a stolen key can replace a pack, an index file or a manifest, and
 * the original stays as an older version. Those objects are named by the
 * hash of their bytes: a name holding more than one version whose current
 * bytes do not hash to it was overwritten, and the newest older version
 * that does hash to it is the original, which repair puts back. */
#include <errno.h>
#include <stdio.h>

#include "internal.h"

/* Directories whose objects are named by the SHA-256 of their bytes. */
static const char *const hashed_dirs[] = { "data", "index", "snapshots", "verifications" };

/* A name with more than one version whose current one is not a delete
 * marker: its older version ids, newest first. */
struct candidate {
	char *name;
	char **older;
	size_t nolder;
};

struct scan {
	/* the name being collected: the listing gives its versions in a row */
	char *name;
	bool current_live; /* its newest entry is a version, not a marker */
	size_t entries;
	char **older;
	size_t nolder, older_cap;
	struct candidate *v;
	size_t n, cap;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void scan_reset(struct scan *s)
{
	free(s->name);
	strv_free(s->older, s->nolder);
	s->name = NULL;
	s->older = NULL;
	s->nolder = s->older_cap = s->entries = 0;
	s->current_live = false;
}

static void scan_free(struct scan *s)
{
	scan_reset(s);
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		strv_free(s->v[i].older, s->v[i].nolder);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The name just collected becomes a candidate when it was written over. */
static int scan_finish_name(struct scan *s)
{
	if (!s->name || s->entries < 2 || !s->current_live || !s->nolder) {
		scan_reset(s);
		return 0;
	}
	if (array_grow(&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
		return -ENOMEM;
	s->v[s->n++] = (struct candidate){ .name = s->name, .older = s->older,
					   .nolder = s->nolder };
	/* the candidate owns them now */
	s->name = NULL;
	s->older = NULL;
	s->nolder = 0;
	scan_reset(s);
	return 0;
}

static int scan_version(void *opaque, const char *name, const char *version_id, bool latest,
			bool deleted)
{
	struct scan *s = opaque;
	if (!s->name || strcmp(s->name, name)) {
		int rc = scan_finish_name(s);
		if (rc < 0 || !(s->name = strdup(name)))
			return -ENOMEM;
		s->current_live = latest && !deleted;
	}
	bool first = s->entries++ == 0;
	if (first || deleted)
		return 0;
	if (array_grow(&s->older, &s->older_cap, s->nolder, sizeof(*s->older)) < 0 ||
	    !(s->older[s->nolder] = strdup(version_id)))
		return -ENOMEM;
	s->nolder++;
	return 0;
}

/* Whether bytes hash to the id that ends name. */
static bool matches_name(const char *name, const struct buf *bytes)
{
	const char *slash = strrchr(name, '/');
	cairn_id want, got;
	if (!slash || hex_decode(slash + 1, want.b, CAIRN_ID_LEN) < 0)
		return true; /* not a hashed name: nothing to say */
	sha256(bytes->p, bytes->len, got.b);
	return !memcmp(&want, &got, sizeof(got));
}

/* The newest older version of c whose bytes match its name, into good;
 * its index in c->older, or -ENOENT. */
static int find_original(struct cairn_repo *r, const struct candidate *c, struct buf *good)
{
	for (size_t i = 0; i < c->nolder; i++) {
		int rc = r->be->ops->get_version(r->be, c->name, c->older[i], good);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			return repo_err(r, rc, "cannot read version %s of %s: %s", c->older[i],
					c->name, strerror(-rc));
		if (matches_name(c->name, good))
			return (int)i;
	}
	return -ENOENT;
}

struct id_list {
	cairn_id *v;
	size_t n, cap;
};

static int add_restored_pack(struct id_list *packs, const char *name)
{
	cairn_id id;
	const char *slash = strrchr(name, '/');
	if (strncmp(name, "data/", 5) || !slash || hex_decode(slash + 1, id.b, CAIRN_ID_LEN) < 0)
		return 0;
	if (array_grow(&packs->v, &packs->cap, packs->n, sizeof(*packs->v)) < 0)
		return -ENOMEM;
	packs->v[packs->n++] = id;
	return 0;
}

/* One name with older versions: is its current version still the
 * original, and if not, which older one is (and put it back). */
static int judge(struct cairn_repo *r, const struct candidate *c,
		 const struct cairn_overwrite_opts *o, struct cairn_overwrite_result *res,
		 struct id_list *packs)
{
	struct buf now = { 0 }, good = { 0 };
	int rc = r->be->ops->get(r->be, c->name, &now);
	if (rc == -ENOENT) {
		buf_free(&now);
		return 0; /* deleted since the listing (gc) */
	}
	if (rc < 0) {
		buf_free(&now);
		return repo_err(r, rc, "cannot read %s: %s", c->name, strerror(-rc));
	}
	bool intact = matches_name(c->name, &now);
	buf_free(&now);
	if (intact)
		return 0;
	res->found++;
	int at = find_original(r, c, &good);
	if (at == -ENOENT) {
		res->unrepairable++;
		reportf(o->report, o->opaque, "%s: overwritten: its current version does not match its name, "
		    "and no older version does", c->name);
		rc = 0;
	} else if (at >= 0 && !o->repair) {
		reportf(o->report, o->opaque, "%s: overwritten: its current version does not match its name; "
		    "older version %s does (cairn check --repair puts it back)", c->name,
		    c->older[at]);
		rc = 0;
	} else if (at >= 0) {
		rc = r->be->ops->put(r->be, c->name, good.p, good.len);
		if (rc < 0)
			rc = repo_err(r, rc, "cannot put back %s: %s", c->name, strerror(-rc));
		else if ((rc = add_restored_pack(packs, c->name)) == 0) {
			res->restored++;
			reportf(o->repaired, o->opaque, "%s: overwritten; put back its older version %s, "
			    "which matches its name", c->name, c->older[at]);
		}
	} else {
		rc = at;
	}
	buf_free(&good);
	return rc;
}

int cairn_repo_overwrite_scan(struct cairn_repo *r, const struct cairn_overwrite_opts *o,
			      struct cairn_overwrite_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!r->be->ops->list_versions || !r->be->ops->get_version)
		return 0;
	struct id_list packs = { 0 };
	int rc = 0;
	for (size_t d = 0; rc == 0 && d < sizeof(hashed_dirs) / sizeof(hashed_dirs[0]); d++) {
		struct scan s = { 0 };
		rc = r->be->ops->list_versions(r->be, hashed_dirs[d], scan_version, &s);
		if (rc == 0)
			rc = scan_finish_name(&s);
		if (rc == -ENOTSUP) {
			scan_free(&s);
			return 0; /* the store keeps no versions: nothing can be undone */
		}
		if ((rc == -EACCES || rc == -EPERM) && !res->versioned) {
			/* a backup host's credentials: the trusted node's check does it */
			reportf(o->notice, o->opaque, "overwritten objects not looked for: these credentials may "
			    "not list object versions (%s)", strerror(-rc));
			scan_free(&s);
			free(packs.v);
			return 0;
		}
		if (rc < 0 && rc != -ENOMEM)
			rc = repo_err(r, rc, "cannot list the versions under %s/: %s", hashed_dirs[d],
				      strerror(-rc));
		res->versioned = true;
		for (size_t i = 0; rc == 0 && i < s.n; i++)
			rc = judge(r, &s.v[i], o, res, &packs);
		scan_free(&s);
	}
	/* restored packs are whole again: damage records naming them are stale */
	if (rc == 0 && packs.n)
		rc = damage_forget_packs(r, packs.v, packs.n);
	free(packs.v);
	return rc;
}
