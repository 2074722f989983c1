/* cairn snapshots REPO [--name N]; cairn ls REPO SNAP */
#include <errno.h>
#include <stdio.h>

#include "cli.h"

static int name_option(void *ctx, int opt, const char *arg)
{
	if (opt != 'n')
		return cli_usage("unexpected option");
	*(const char **)ctx = arg;
	return 0;
}

/* "incremental" when any disk was read only where it changed. */
static const char *snapshot_kind(const struct cairn_snapshot *s)
{
	for (size_t i = 0; i < s->ndisks; i++)
		if (s->disks[i].incremental)
			return "incremental";
	return "full";
}

/* The newest recovery test of s, or NULL. */
static const struct cairn_verification *last_verification(const struct cairn_snapshot *s,
							 const struct cairn_verification *v,
							 size_t nv)
{
	for (size_t i = nv; i-- > 0;)
		if (!memcmp(&v[i].snapshot, &s->id, sizeof(s->id)))
			return &v[i];
	return NULL;
}

static json_t *verification_json(const struct cairn_verification *v)
{
	if (!v)
		return json_null();
	char when[40];
	format_time_utc(v->time_ns, when, sizeof(when));
	return json_pack("{s:s, s:s, s:s, s:f, s:s, s:s}", "time", when, "result",
			 v->ok ? "ok" : "failed", "method", v->method, "boot_seconds",
			 v->boot_seconds, "detail", v->detail, "host", v->host);
}

static void verification_text(const struct cairn_verification *v, char *out, size_t len)
{
	if (!v)
		snprintf(out, len, "-");
	else if (v->ok)
		snprintf(out, len, "ok %.0fs", v->boot_seconds);
	else
		snprintf(out, len, "FAILED");
}

/* A disk object, with the anomaly guard's record when it has one. */
static json_t *disk_json(const struct cairn_disk *d)
{
	char digest[33];
	hex_encode(d->digest, sizeof(d->digest), digest);
	json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s?, s:s}", "name", d->name, "size",
			      (json_int_t)d->size, "format", d->format, "path", d->path,
			      "chunk_size", (json_int_t)d->chunk_size, "digest",
			      d->has_digest ? digest : NULL, "read",
			      d->incremental ? "incremental" : "full");
	if (j && d->anomaly.present)
		json_object_set_new(j, "anomaly", cairn_anomaly_to_json(&d->anomaly));
	return j;
}

/* "suspicious" (the anomaly guard marked it), "protected", both, or "-". */
static void flags_text(bool suspicious, bool protect, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", suspicious ? "SUSPICIOUS" : "",
		 suspicious && protect ? "," : "", protect ? "protected" : "");
	if (!*out)
		snprintf(out, len, "-");
}

static json_t *snapshot_json(const struct cairn_snapshot *s, const struct cairn_verification *ver,
			     bool protect)
{
	char id[65], parent[65], when[40];
	id_hex(&s->id, id);
	if (s->has_parent)
		id_hex(&s->parent, parent);
	format_time_utc(s->time_ns, when, sizeof(when));
	json_t *tags = json_array(), *disks = json_array();
	uint64_t size = 0;
	for (size_t i = 0; i < s->ntags; i++)
		json_array_append_new(tags, json_string(s->tags[i]));
	for (size_t i = 0; i < s->ndisks; i++) {
		size += s->disks[i].size;
		json_array_append_new(disks, disk_json(&s->disks[i]));
	}
	json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:s?, s:o, s:o, s:I, s:s, s:s?, s:s?, s:I, s:I, s:I, s:o, s:b, s:b}",
			 "id", id, "damaged", false, "name", s->name, "source", s->source, "host", s->host, "time",
			 when, "time_ns", (json_int_t)s->time_ns, "parent",
			 s->has_parent ? parent : NULL, "tags", tags, "disks", disks, "size",
			 (json_int_t)size, "kind", snapshot_kind(s), "consistency",
			 s->consistency, "checkpoint", s->checkpoint, "bytes_read",
			 (json_int_t)s->bytes_read, "new_chunks", (json_int_t)s->new_chunks,
			 "new_bytes", (json_int_t)s->new_bytes, "verification",
			 verification_json(ver), "suspicious", cairn_snapshot_suspicious(s),
			 "protected", protect);
	if (j && s->host_key)
		json_object_set_new(j, "host_key", json_string(s->host_key));
	return j;
}

/* A damaged manifest: its name and time are unknown, so it shows under
 * any --name, dated by when the store wrote it. */
static json_t *damaged_json(const struct cairn_damaged_manifest *d)
{
	char when[40];
	if (d->mtime_ns)
		format_time_utc(d->mtime_ns, when, sizeof(when));
	return json_pack("{s:s, s:b, s:n, s:s?, s:s}", "id", d->id, "damaged", true, "name", "written",
			 d->mtime_ns ? when : NULL, "error", cairn_damaged_manifest_reason(d));
}

static void damaged_row(const struct cairn_damaged_manifest *d)
{
	char when[40] = "?";
	if (d->mtime_ns)
		format_time_utc(d->mtime_ns, when, sizeof(when));
	printf("%.12s  %-20s  %-20s  %-11s  %-8s  %10s  %10s  %10s  %-8s  %-10s  %s\n", d->id, when,
	       "?", "DAMAGED", "-", "-", "-", "-", "-", "-", "run cairn check");
}

/* Damaged manifests written before t (all that remain when t is
 * INT64_MAX), each once: *next walks set->damaged sorted by date. */
static void damaged_before(const struct cairn_snapshot_set *set, size_t *next, int64_t t,
			   json_t *arr)
{
	for (; *next < set->ndamaged; (*next)++) {
		const struct cairn_damaged_manifest *d = &set->damaged[*next];
		if (t != INT64_MAX && (!d->mtime_ns || d->mtime_ns >= t))
			return;
		if (arr)
			json_array_append_new(arr, damaged_json(d));
		else
			damaged_row(d);
	}
}

static int by_written(const void *a, const void *b)
{
	const struct cairn_damaged_manifest *x = a, *y = b;
	int64_t tx = x->mtime_ns ? x->mtime_ns : INT64_MAX, ty = y->mtime_ns ? y->mtime_ns : INT64_MAX;
	return tx < ty ? -1 : tx > ty;
}

static int snapshots_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ 0 },
	};
	static const char usage[] = "snapshots REPO [--name N] [--json]";
	struct cli c = { 0 };
	const char *name = NULL;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", name_option, &name, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 1)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[1], &r)) < 0)
		return rc;
	struct cairn_snapshot_set set;
	if ((rc = cairn_snapshot_scan(r, &set)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	struct cairn_snapshot **v = set.v;
	size_t n = set.n, next_damaged = 0;
	if (set.ndamaged)
		qsort(set.damaged, set.ndamaged, sizeof(*set.damaged), by_written);
	struct cairn_verification *ver = NULL;
	size_t nver = 0;
	if ((rc = cairn_verification_list(r, &ver, &nver)) < 0) {
		cairn_snapshot_set_free(&set);
		return cli_fail(rc, cairn_repo_error(r));
	}
	cli_print_warnings(r);
	for (size_t i = 0; i < set.ndamaged; i++) {
		char text[160];
		cairn_damaged_manifest_text(&set.damaged[i], text, sizeof(text));
		cli_warn("%s: its snapshot cannot be restored; cairn check %s names the damage",
			 text, argv[1]);
	}
	json_t *arr = c.json ? json_array() : NULL;
	if (!c.json)
		printf("%-12s  %-20s  %-20s  %-11s  %-8s  %10s  %10s  %10s  %-8s  %-10s  %s\n",
		       "ID", "TIME", "NAME", "KIND", "CONSIST", "SIZE", "READ", "STORED",
		       "VERIFIED", "FLAGS", "TAGS");
	for (size_t i = 0; i < n; i++) {
		const struct cairn_snapshot *s = v[i];
		damaged_before(&set, &next_damaged, s->time_ns, arr);
		if (name && strcmp(s->name, name))
			continue;
		const struct cairn_verification *last = last_verification(s, ver, nver);
		bool protect = false;
		if ((rc = cairn_snapshot_is_protected(r, &s->id, &protect)) < 0)
			break;
		if (arr) {
			json_array_append_new(arr, snapshot_json(s, last, protect));
			continue;
		}
		char id[65], when[40], size[32], added[32], rd[32], tags[256] = "", verified[32];
		char flags[32];
		flags_text(cairn_snapshot_suspicious(s), protect, flags, sizeof(flags));
		verification_text(last, verified, sizeof(verified));
		uint64_t total = 0;
		for (size_t d = 0; d < s->ndisks; d++)
			total += s->disks[d].size;
		for (size_t t = 0; t < s->ntags; t++) {
			size_t at = strlen(tags);
			snprintf(tags + at, sizeof(tags) - at, "%s%s", t ? "," : "", s->tags[t]);
		}
		id_hex(&s->id, id);
		format_time_utc(s->time_ns, when, sizeof(when));
		format_bytes(total, size, sizeof(size));
		format_bytes(s->new_bytes, added, sizeof(added));
		format_bytes(s->bytes_read, rd, sizeof(rd));
		printf("%.12s  %-20s  %-20s  %-11s  %-8s  %10s  %10s  %10s  %-8s  %-10s  %s\n", id,
		       when, s->name, snapshot_kind(s), s->consistency ? s->consistency : "-", size,
		       rd, added, verified, flags, tags);
	}
	if (rc == 0)
		damaged_before(&set, &next_damaged, INT64_MAX, arr);
	if (arr && rc == 0)
		json_print(arr);
	else
		json_decref(arr);
	cairn_snapshot_set_free(&set);
	cairn_verification_list_free(ver, nver);
	return rc < 0 ? cli_fail(rc, cairn_repo_error(r)) : 0;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(cairn_id));
}

/* Data bytes of a disk, and the stored bytes of the distinct blobs its
 * chunk map uses (what the disk costs when nothing else shares them). */
static int disk_usage(struct cairn_repo *r, struct cairn_disk *d, uint64_t *nonzero,
		      uint64_t *zero_chunks, uint64_t *stored)
{
	int rc = cairn_snapshot_load_map(r, d);
	if (rc < 0)
		return rc;
	*nonzero = *zero_chunks = *stored = 0;
	cairn_id *ids = malloc((d->nchunks + 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	memcpy(ids, d->map, d->nchunks * sizeof(*ids));
	qsort(ids, d->nchunks, sizeof(*ids), cmp_id);
	for (uint64_t i = 0; i < d->nchunks; i++) {
		if (!memcmp(&d->map[i], &cairn_zero_id, sizeof(cairn_id)))
			(*zero_chunks)++;
		else
			*nonzero += MIN((uint64_t)d->chunk_size, d->size - i * d->chunk_size);
		struct cairn_blob_info info;
		if ((i == 0 || memcmp(&ids[i], &ids[i - 1], sizeof(cairn_id))) &&
		    cairn_repo_blob_info(r, &ids[i], &info) == 0)
			*stored += info.stored_len;
	}
	free(ids);
	return 0;
}

/* What the snapshot holds besides disks: the domain's NVRAM and TPM
 * state files (repo/firmware.h). */
static void print_firmware(const struct cairn_snapshot *s, json_t *j)
{
	json_t *items = j ? json_array() : NULL;
	if (!j && s->nfirmware)
		printf("%-16s %-6s %12s  %s\n", "FIRMWARE", "MODE", "SIZE", "PATH");
	for (size_t i = 0; i < s->nfirmware; i++) {
		const struct cairn_firmware_file *f = &s->firmware[i];
		if (items) {
			json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:I}", "kind", f->kind,
							       "path", f->path, "size",
							       (json_int_t)f->size, "mode",
							       (json_int_t)f->mode));
			continue;
		}
		char size[32];
		format_bytes(f->size, size, sizeof(size));
		printf("%-16s %04o   %12s  %s\n", f->kind, (unsigned)f->mode, size, f->path);
	}
	if (items)
		json_object_set_new(j, "firmware", items);
}

static int ls_main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ 0 },
	};
	static const char usage[] = "ls REPO SNAP [--json]";
	struct cli c = { 0 };
	const char *name = NULL;
	int nargs, rc = cli_parse(&c, argc, argv, opts, "", name_option, &name, usage, &nargs);
	if (rc)
		return rc;
	if (nargs != 2)
		return cli_usage("usage: cairn %s", usage);
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = NULL;
	if ((rc = cli_open_repo(&c, argv[1], &r)) < 0)
		return rc;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	if ((rc = cli_find_snapshot(r, argv[2], name, &s)) < 0)
		return rc;
	cli_print_warnings(r);
	bool protect = false;
	if (c.json && (rc = cairn_snapshot_is_protected(r, &s->id, &protect)) < 0)
		return cli_fail(rc, cairn_repo_error(r));
	json_t *j = c.json ? snapshot_json(s, NULL, protect) : NULL;
	json_t *disks = j ? json_object_get(j, "disks") : NULL;
	if (!c.json) {
		char id[65], when[40];
		id_hex(&s->id, id);
		format_time_utc(s->time_ns, when, sizeof(when));
		printf("snapshot %s\nname %s, host %s%s%s, %s\n%-16s %-6s %12s %12s %12s %12s\n",
		       id, s->name, s->host, s->host_key ? " with host key " : "",
		       s->host_key ? s->host_key : "", when, "DISK", "FORMAT", "SIZE", "DATA", "STORED",
		       "ZERO CHUNKS");
	}
	for (size_t i = 0; i < s->ndisks; i++) {
		struct cairn_disk *d = &s->disks[i];
		uint64_t nonzero, zeros, stored;
		if ((rc = disk_usage(r, d, &nonzero, &zeros, &stored)) < 0) {
			json_decref(j);
			return cli_fail(rc, cairn_repo_error(r));
		}
		if (disks) {
			json_t *jd = json_array_get(disks, i);
			json_object_set_new(jd, "data_bytes", json_integer((json_int_t)nonzero));
			json_object_set_new(jd, "zero_chunks", json_integer((json_int_t)zeros));
			json_object_set_new(jd, "chunks", json_integer((json_int_t)d->nchunks));
			json_object_set_new(jd, "stored_bytes", json_integer((json_int_t)stored));
			continue;
		}
		char size[32], data[32], st[32];
		format_bytes(d->size, size, sizeof(size));
		format_bytes(nonzero, data, sizeof(data));
		format_bytes(stored, st, sizeof(st));
		printf("%-16s %-6s %12s %12s %12s %12llu\n", d->name, d->format, size, data, st,
		       (unsigned long long)zeros);
	}
	print_firmware(s, j);
	if (j)
		json_print(j);
	return 0;
}

int cmd_snapshots(int argc, char **argv)
{
	return cli_exit(snapshots_main(argc, argv));
}

int cmd_ls(int argc, char **argv)
{
	return cli_exit(ls_main(argc, argv));
}
