/* The console's REST API (docs/api.md): one request (method, path, body)
 * to one reply (status, JSON or text). No sockets here: daemon/http.c
 * authenticates, reads the body and sends the reply.
 *
 * It runs on the HTTP server's threads, never on the scheduler's: a job
 * asked for is queued in the shared live state (daemon/live.h) for the
 * scheduler to run; a boot test runs as a child `cairn verify-boot` watched
 * by a thread of its own. Repositories are opened per request, read-only
 * except protect/unprotect (under the repository's shared lock, as the
 * CLI does). The configuration is the API's own copy, loaded when the
 * server starts (a SIGHUP reload does not change it).
 *
 * Errors are JSON {"error": "one line"} with a 4xx status for the client's
 * mistakes (400 bad input, 404 unknown name, 405 method, 409 busy) and 5xx
 * for the host's (502 a repository or peer that cannot be read). */
#ifndef CAIRN_DAEMON_API_H
#define CAIRN_DAEMON_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "repo/repo.h"
#include "live.h"

struct cairn_api {
	const struct cairn_conf *conf;
	struct cairn_live *live;
	char exe[4096]; /* this program, for verify-boot children */
};

struct cairn_reply {
	unsigned status;
	char *body; /* owned; freed by cairn_reply_free */
	const char *type; /* a static MIME type */
};

void cairn_api_handle(const struct cairn_api *a, const char *method, const char *path,
		      const char *body, size_t len, struct cairn_reply *out);
void cairn_reply_free(struct cairn_reply *r);

/* Shared by the API's files. */
void cairn_reply_json(struct cairn_reply *out, unsigned status, json_t *j); /* takes j */
void cairn_reply_error(struct cairn_reply *out, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int cairn_api_open_repo(const struct cairn_api *a, const char *name, struct cairn_repo **r,
			struct cairn_reply *out);
void cairn_api_snapshots(const struct cairn_api *a, const char *repo, struct cairn_reply *out);
void cairn_api_stats(const struct cairn_api *a, const char *repo, struct cairn_reply *out);
void cairn_api_protect(const struct cairn_api *a, const char *repo, const char *snap, bool on,
		       struct cairn_reply *out);
void cairn_api_peers(const struct cairn_api *a, struct cairn_reply *out);
void cairn_api_verify(const struct cairn_api *a, const char *body, size_t len,
		      struct cairn_reply *out);

#endif
