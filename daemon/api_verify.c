/* The console's boot tests (POST /api/v1/verify, see api.h): each runs as
 * a child `cairn verify-boot ... --json --keep-console STATE_DIR/verify`,
 * watched by a detached thread that records its end in the live state.
 * The child's output goes to files (STATE_DIR/verify/slot-N.out, .err), so
 * that the thread only waits; the agent stops children through the live
 * state (cairn_live_verify_running) and waits for their threads. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "base/util.h"

extern char **environ;

struct verify_child {
	struct cairn_live *live;
	int slot;
	char *argv[16];
	char out[4300], err[4300]; /* the child's stdout and stderr */
};

static void free_child(struct verify_child *v)
{
	for (size_t i = 0; v->argv[i]; i++)
		free(v->argv[i]);
	free(v);
}

/* The child's one-line story: its JSON "detail", else its first error line. */
static void outcome(const struct verify_child *v, char *msg, size_t len)
{
	json_t *j = json_load_file(v->out, 0, NULL);
	const char *detail = json_string_value(json_object_get(j, "detail"));
	if (detail) {
		snprintf(msg, len, "%s", detail);
	} else {
		FILE *f = fopen(v->err, "re");
		if (!f || !fgets(msg, (int)len, f))
			snprintf(msg, len, "verify-boot said nothing");
		msg[strcspn(msg, "\n")] = '\0';
		if (f)
			fclose(f);
	}
	json_decref(j);
}

static int spawn(struct verify_child *v, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, v->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, v->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawn(pid, v->argv[0], &fa, NULL, v->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return -rc;
}

static void *verify_thread(void *opaque)
{
	struct verify_child *v = opaque;
	pid_t pid;
	int status = 0, rc = spawn(v, &pid);
	char msg[512];
	if (rc == 0) {
		cairn_live_verify_started(v->live, v->slot, pid);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		outcome(v, msg, sizeof(msg));
	} else {
		snprintf(msg, sizeof(msg), "cannot run %s: %s", v->argv[0], strerror(-rc));
	}
	bool ok = rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cairn_live_verify_end(v->live, v->slot, ok ? 0 : 1, msg);
	free_child(v);
	return NULL;
}

/* argv of `cairn verify-boot URL SNAP --json ...`; false on no memory */
static bool verify_argv(const struct cairn_api *a, const struct cairn_conf_repo *r,
			const char *snap, const char *expect, int timeout, const char *keep,
			char **argv)
{
	char t[16];
	snprintf(t, sizeof(t), "%d", timeout);
	const char *words[16] = { a->exe, "verify-boot", r->url, snap, "--json", "--timeout", t,
				  "--keep-console", keep };
	size_t n = 9;
	if (expect) {
		words[n++] = "--expect-console";
		words[n++] = expect;
	}
	if (r->password_file) {
		words[n++] = "--password-file";
		words[n++] = r->password_file;
	}
	if (a->conf->connect) {
		words[n++] = "--connect";
		words[n++] = a->conf->connect;
	}
	bool ok = true;
	for (size_t i = 0; i < n; i++)
		ok &= (argv[i] = strdup(words[i])) != NULL;
	return ok;
}

static void start_verify(const struct cairn_api *a, const struct cairn_conf_repo *r,
			 const char *snap, const char *expect, int timeout,
			 struct cairn_reply *out)
{
	char keep[4200];
	snprintf(keep, sizeof(keep), "%s/verify", a->conf->state_dir);
	if (mkdir(keep, 0700) < 0 && errno != EEXIST)
		return cairn_reply_error(out, 500, "cannot create %s: %s", keep, strerror(errno));
	struct verify_child *v = calloc(1, sizeof(*v));
	if (!v || !verify_argv(a, r, snap, expect, timeout, keep, v->argv)) {
		if (v)
			free_child(v);
		return cairn_reply_error(out, 500, "out of memory");
	}
	v->live = a->live;
	v->slot = cairn_live_verify_begin(a->live, r->name, snap);
	if (v->slot < 0) {
		free_child(v);
		return cairn_reply_error(out, 409, "too many boot tests running");
	}
	snprintf(v->out, sizeof(v->out), "%s/slot-%d.out", keep, v->slot);
	snprintf(v->err, sizeof(v->err), "%s/slot-%d.err", keep, v->slot);
	int slot = v->slot;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, verify_thread, v);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		cairn_live_verify_end(a->live, slot, 1, "could not start");
		free_child(v);
		return cairn_reply_error(out, 500, "cannot start a thread");
	}
	cairn_reply_json(out, 202, json_pack("{s:i, s:s, s:s}", "id", slot, "repository", r->name,
					      "snapshot", snap));
}

/* Same characters as snapshot ids and prefixes, or "latest". */
static bool valid_snapshot(const char *s)
{
	if (!strcmp(s, "latest"))
		return true;
	size_t n = strlen(s);
	return n >= 4 && n <= 64 && strspn(s, "0123456789abcdef") == n;
}

/* {"repository": NAME, "snapshot": ID|"latest", "expect_console": REGEX?,
 *  "timeout": SECONDS?} */
void cairn_api_verify(const struct cairn_api *a, const char *body, size_t len,
		      struct cairn_reply *out)
{
	json_error_t jerr;
	json_t *j = json_loadb(body ? body : "", len, 0, &jerr);
	const char *repo = NULL, *snap = NULL, *expect = NULL;
	int timeout = 300;
	if (!j || json_unpack_ex(j, &jerr, JSON_STRICT, "{s:s, s:s, s?:s, s?:i}", "repository",
				 &repo, "snapshot", &snap, "expect_console", &expect, "timeout",
				 &timeout) < 0) {
		cairn_reply_error(out, 400, "body: %s (give {\"repository\": NAME, \"snapshot\": ID})",
				  jerr.text);
	} else if (!cairn_conf_repo(a->conf, repo)) {
		cairn_reply_error(out, 404, "there is no repository %s", repo);
	} else if (!valid_snapshot(snap)) {
		cairn_reply_error(out, 400, "snapshot %s: give an id, a prefix of one, or latest", snap);
	} else if (timeout < 1 || timeout > 86400) {
		cairn_reply_error(out, 400, "timeout %d: give seconds (1..86400)", timeout);
	} else {
		start_verify(a, cairn_conf_repo(a->conf, repo), snap, expect, timeout, out);
	}
	json_decref(j);
}
