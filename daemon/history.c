/* The agent's job history (see history.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "history.h"

#define HISTORY_FILE "history.jsonl"

/* false for a line that is not a record (a torn last line) */
static bool record_parse(const char *line, struct cairn_run_record *r)
{
	json_t *j = json_loads(line, 0, NULL);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "job"))) {
		json_decref(j);
		return false;
	}
	cairn_run_record_from_json(j, r);
	json_decref(j);
	return true;
}

static int read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	struct buf b = { 0 };
	char chunk[65536];
	size_t got;
	int rc = 0;
	while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(&b, chunk, got);
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	fclose(f);
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	*out = (char *)b.p;
	*len = b.len - 1;
	return 0;
}

/* Past the bound, the newer half (from a line start) replaces the file. */
static int trim(const char *state_dir, const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0 || (uint64_t)st.st_size <= CAIRN_HISTORY_MAX_BYTES)
		return 0;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int rc = read_all(path, &text, &len);
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot read %s: %s", path, strerror(-rc));
	const char *keep = strchr(text + len / 2, '\n');
	return cairn_write_file_atomic(state_dir, HISTORY_FILE, keep ? keep + 1 : "", err, errlen);
}

int cairn_history_append(const char *state_dir, const struct cairn_run_record *r, char *err,
			 size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", state_dir, HISTORY_FILE);
	json_t *j = cairn_run_record_to_json(r);
	_cleanup_free_ char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!line)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	_cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return set_err(err, errlen, -errno, "cannot write %s: %s", path, strerror(errno));
	size_t n = strlen(line);
	line[n] = '\n'; /* replaces the terminator: written by length */
	if (write(fd, line, n + 1) != (ssize_t)(n + 1))
		return set_err(err, errlen, -EIO, "cannot write %s", path);
	line[n] = '\0';
	return trim(state_dir, path, err, errlen);
}

int cairn_history_load(const char *state_dir, size_t max, struct cairn_run_record **out,
		       size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", state_dir, HISTORY_FILE);
	_cleanup_free_ char *text = NULL;
	size_t len;
	int rc = read_all(path, &text, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot read %s: %s", path, strerror(-rc));
	struct cairn_run_record *v = calloc(max ? max : 1, sizeof(*v));
	if (!v)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	/* from the end backwards: the newest first */
	char *end = text + len;
	while (*n < max && end > text) {
		while (end > text && end[-1] == '\n')
			*--end = '\0';
		char *start = end;
		while (start > text && start[-1] != '\n')
			start--;
		if (start < end && record_parse(start, &v[*n]))
			(*n)++;
		end = start;
	}
	*out = v;
	return 0;
}
