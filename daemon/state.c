/* The agent daemon's state files (see state.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "state.h"

/* Letters, digits, '.', '-' and '_' stay; anything else becomes %XX, so a
 * name is one safe path component (and "." or ".." cannot happen). */
static void escape_name(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < len; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			     (*p == '.' && p != (const unsigned char *)in);
		o += (size_t)snprintf(out + o, len - o, plain ? "%c" : "%%%02X", *p);
	}
	out[o] = '\0';
}

/* dir/name; false when it does not fit (the caller reports it) */
static bool join(char *out, size_t len, const char *dir, const char *name, const char *suffix)
{
	int n = snprintf(out, len, "%s/%s%s", dir, name, suffix);
	return n >= 0 && (size_t)n < len;
}

static int make_dirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return set_err(err, errlen, -errno, "cannot create %s: %s", buf,
				       strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "cannot create %s: %s", buf, strerror(errno));
	return 0;
}

int cairn_write_file_atomic(const char *dir, const char *name, const char *text, char *err,
			    size_t errlen)
{
	char path[4096], tmp[4096], tname[512];
	snprintf(tname, sizeof(tname), ".%.400s.tmp-%d", name, (int)getpid());
	if (!join(path, sizeof(path), dir, name, "") || !join(tmp, sizeof(tmp), dir, tname, ""))
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return set_err(err, errlen, -errno, "cannot write %s: %s", tmp, strerror(errno));
	int rc = pwrite_full(fd, text, strlen(text), 0);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return set_err(err, errlen, rc, "cannot write %s: %s", path, strerror(-rc));
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	return 0;
}

static int write_atomic(const char *dir, const char *name, const char *text, char *err,
			size_t errlen)
{
	int rc = make_dirs(dir, err, errlen);
	return rc < 0 ? rc : cairn_write_file_atomic(dir, name, text, err, errlen);
}

static int write_json(const char *dir, const char *name, json_t *j, char *err, size_t errlen)
{
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (!text)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	return write_atomic(dir, name, text, err, errlen);
}

static void iso(int64_t ns, char *out, size_t len)
{
	if (ns)
		format_time_utc(ns, out, len);
	else
		snprintf(out, len, "never");
}

json_t *cairn_run_record_to_json(const struct cairn_run_record *r)
{
	char start[40], end[40];
	iso(r->start_ns, start, sizeof(start));
	iso(r->end_ns, end, sizeof(end));
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:I, s:b, s:s, s:s, s:I, s:I, s:I, s:b}",
			 "version", 1, "job", r->job, "vm", r->vm, "start", start, "start_ns",
			 (json_int_t)r->start_ns, "end", end, "end_ns", (json_int_t)r->end_ns,
			 "ok", r->ok, "message", r->message, "snapshot", r->snapshot,
			 "bytes_read", (json_int_t)r->bytes_read, "bytes_stored",
			 (json_int_t)r->bytes_stored, "next_run_ns", (json_int_t)r->next_run_ns,
			 "anomaly", r->anomaly);
}

int cairn_state_record_run(const char *state_dir, const struct cairn_run_record *r,
			   char *err, size_t errlen)
{
	char dir[4096], job[400], vm[800], file[820];
	escape_name(r->job, job, sizeof(job));
	escape_name(r->vm, vm, sizeof(vm));
	if (!join(dir, sizeof(dir), state_dir, "runs/", job))
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", state_dir);
	snprintf(file, sizeof(file), "%s.json", vm);
	return write_json(dir, file, cairn_run_record_to_json(r), err, errlen);
}

static void copy_str(char *dst, size_t len, json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));
	snprintf(dst, len, "%s", s ? s : "");
}

void cairn_run_record_from_json(json_t *j, struct cairn_run_record *r)
{
	memset(r, 0, sizeof(*r));
	copy_str(r->job, sizeof(r->job), j, "job");
	copy_str(r->vm, sizeof(r->vm), j, "vm");
	copy_str(r->message, sizeof(r->message), j, "message");
	copy_str(r->snapshot, sizeof(r->snapshot), j, "snapshot");
	r->start_ns = json_integer_value(json_object_get(j, "start_ns"));
	r->end_ns = json_integer_value(json_object_get(j, "end_ns"));
	r->ok = json_is_true(json_object_get(j, "ok"));
	r->bytes_read = (uint64_t)json_integer_value(json_object_get(j, "bytes_read"));
	r->bytes_stored = (uint64_t)json_integer_value(json_object_get(j, "bytes_stored"));
	r->next_run_ns = json_integer_value(json_object_get(j, "next_run_ns"));
	r->anomaly = json_is_true(json_object_get(j, "anomaly")); /* absent in older records */
}

static int parse_run(const char *path, struct cairn_run_record *r)
{
	json_t *j = json_load_file(path, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	cairn_run_record_from_json(j, r);
	json_decref(j);
	return 0;
}

static bool is_record(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 5 && !strcmp(name + n - 5, ".json");
}

static int load_job_dir(const char *dir, struct cairn_run_record **v, size_t *n, size_t *cap)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		if (!is_record(e->d_name))
			continue;
		char path[4096];
		if (!join(path, sizeof(path), dir, e->d_name, ""))
			continue;
		if ((rc = array_grow(v, cap, *n, sizeof(**v))) < 0)
			break;
		if (parse_run(path, &(*v)[*n]) == 0)
			(*n)++;
	}
	closedir(d);
	return rc;
}

static int by_job_vm(const void *a, const void *b)
{
	const struct cairn_run_record *x = a, *y = b;
	int c = strcmp(x->job, y->job);
	return c ? c : strcmp(x->vm, y->vm);
}

int cairn_state_load_runs(const char *state_dir, struct cairn_run_record **out, size_t *n,
			  char *err, size_t errlen)
{
	char runs[4096];
	if (!join(runs, sizeof(runs), state_dir, "runs", ""))
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", state_dir);
	struct cairn_run_record *v = NULL;
	size_t count = 0, cap = 0;
	int rc = 0;
	DIR *d = opendir(runs);
	for (struct dirent *e; d && rc == 0 && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char dir[4096];
		if (join(dir, sizeof(dir), runs, e->d_name, ""))
			rc = load_job_dir(dir, &v, &count, &cap);
	}
	if (d)
		closedir(d);
	if (rc < 0) {
		free(v);
		return set_err(err, errlen, rc, "out of memory");
	}
	if (count)
		qsort(v, count, sizeof(*v), by_job_vm);
	*out = v;
	*n = count;
	return 0;
}

int cairn_state_mark_job(const char *state_dir, const char *job, int64_t run_ns, char *err,
			 size_t errlen)
{
	char dir[4096], name[420], when[40];
	escape_name(job, name, sizeof(name) - 6);
	strcat(name, ".json");
	if (!join(dir, sizeof(dir), state_dir, "jobs", ""))
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", state_dir);
	iso(run_ns, when, sizeof(when));
	return write_json(dir, name,
			  json_pack("{s:i, s:s, s:s, s:I}", "version", 1, "job", job, "last_run",
				    when, "last_run_ns", (json_int_t)run_ns),
			  err, errlen);
}

int cairn_state_job_last(const char *state_dir, const char *job, int64_t *run_ns, char *err,
			 size_t errlen)
{
	char path[4096], name[420];
	escape_name(job, name, sizeof(name));
	if (!join(path, sizeof(path), state_dir, "jobs/", name) || strlen(path) + 6 > sizeof(path))
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", state_dir);
	strcat(path, ".json");
	*run_ns = 0;
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	if (!j) {
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return 0;
		return set_err(err, errlen, -EBADMSG, "%s is damaged: %s", path, jerr.text);
	}
	*run_ns = json_integer_value(json_object_get(j, "last_run_ns"));
	json_decref(j);
	return 0;
}
