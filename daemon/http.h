/* The agent's HTTP console: the REST API (daemon/api.h) and the web page
 * (the files of www-dir), served by libmicrohttpd from its own threads
 * (one per connection, at most CAIRN_HTTP_MAX_CONNECTIONS), so that a
 * client never blocks the scheduler; jobs reach the scheduler only through
 * the shared live state's queue.
 *
 * Access (docs/api.md): every /api/ and /metrics request carries
 * "Authorization: Bearer TOKEN" (the first line of [http] token-file) or
 * the session cookie a browser gets from POST /api/v1/login with that
 * token (HttpOnly, SameSite=Strict, Secure over TLS; its value is an HMAC
 * of the token, so it is not the token and dies when the token changes).
 * A POST authenticated by the cookie must carry the header
 * "X-Cairn-Request: 1", which a cross-site form cannot send and a
 * cross-site script cannot send without a CORS grant this server never
 * gives; a POST whose Origin is not this server is refused either way.
 * The page's files need no token (they hold no data).
 *
 * The server owns its copy of the configuration (loaded from the file
 * again at start). */
#ifndef CAIRN_DAEMON_HTTP_H
#define CAIRN_DAEMON_HTTP_H

#include <stddef.h>

#include "live.h"

#define CAIRN_HTTP_MAX_CONNECTIONS 128
#define CAIRN_HTTP_MAX_BODY (64u * 1024)

struct cairn_http;

/* Starts serving as the [http] section of config_path says; -ENOENT when
 * there is none. 0 or a negative errno with a one-line reason in err (the
 * token or TLS files unreadable, the address taken). */
int cairn_http_start(const char *config_path, struct cairn_live *live, struct cairn_http **out,
		     char *err, size_t errlen);
/* Where it listens, "http://127.0.0.1:8440", for the log. */
const char *cairn_http_url(const struct cairn_http *h);
/* Stops the server (waits for its threads) and frees it; NULL is fine. */
void cairn_http_stop(struct cairn_http *h);

#endif
