/* The agent's HTTP console server (see http.h). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "base/util.h"
#include "http.h"

#define COOKIE "cairn_session"
#define CSRF_HEADER "X-Cairn-Request"

struct cairn_http {
	struct MHD_Daemon *d;
	struct cairn_conf conf;
	struct cairn_api api;
	char *token;
	char session[65]; /* hex HMAC-SHA256(token, "cairn console session") */
	char *tls_cert, *tls_key; /* PEM text, alive while d runs */
	bool tls;
	char url[300];
};

/* One request's body, gathered across the handler's calls. */
struct request {
	struct buf body;
	bool too_big;
};

static void hmac_hex(const char *key, const char *msg, char out[65])
{
	unsigned char mac[32];
	unsigned int len = sizeof(mac);
	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac,
	     &len);
	hex_encode(mac, sizeof(mac), out);
}

/* Compares digests, so neither the time nor the length says anything. */
static bool same_secret(const struct cairn_http *h, const char *given)
{
	char a[65], b[65];
	hmac_hex("cairn compare", given, a);
	hmac_hex("cairn compare", h->token, b);
	return CRYPTO_memcmp(a, b, 64) == 0;
}

static void add_common_headers(struct MHD_Response *r, const char *type)
{
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
}

/* Sends reply and frees its body; extra is one more "Name: value" or NULL. */
static enum MHD_Result send_reply(struct MHD_Connection *con, struct cairn_reply *reply,
				  const char *extra_name, const char *extra_value)
{
	const char *body = reply->body ? reply->body : "";
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_MUST_COPY);
	if (!r) {
		cairn_reply_free(reply);
		return MHD_NO;
	}
	add_common_headers(r, reply->type ? reply->type : "application/json");
	if (extra_name)
		MHD_add_response_header(r, extra_name, extra_value);
	enum MHD_Result ok = MHD_queue_response(con, reply->status, r);
	MHD_destroy_response(r);
	cairn_reply_free(reply);
	return ok;
}

static bool has_csrf_header(struct MHD_Connection *con);

static enum MHD_Result send_error(struct MHD_Connection *con, unsigned status, const char *msg)
{
	struct cairn_reply reply = { 0 };
	cairn_reply_error(&reply, status, "%s", msg);
	/* not to the page's own requests: a browser driven over its debugging
	 * protocol holds a request with an authentication challenge */
	if (status == 401 && !has_csrf_header(con))
		return send_reply(con, &reply, "WWW-Authenticate", "Bearer realm=\"cairn\"");
	return send_reply(con, &reply, NULL, NULL);
}

/* ---- the page's files ---- */

static enum MHD_Result send_file(const struct cairn_http *h, struct MHD_Connection *con,
				 const char *url)
{
	static const struct {
		const char *url, *file, *type;
	} files[] = {
		{ "/", "index.html", "text/html; charset=utf-8" },
		{ "/index.html", "index.html", "text/html; charset=utf-8" },
		{ "/app.js", "app.js", "text/javascript; charset=utf-8" },
		{ "/style.css", "style.css", "text/css; charset=utf-8" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (strcmp(url, files[i].url))
			continue;
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", h->conf.http.www_dir, files[i].file);
		FILE *f = fopen(path, "re");
		struct buf b = { 0 };
		char chunk[16384];
		size_t got;
		while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (buf_append(&b, chunk, got) < 0)
				break;
		if (f)
			fclose(f);
		if (!f || buf_append(&b, "", 1) < 0) {
			buf_free(&b);
			return send_error(con, 500, "the console's page is not installed (www-dir)");
		}
		struct cairn_reply reply = { .status = 200, .body = (char *)b.p,
					     .type = files[i].type };
		return send_reply(con, &reply, NULL, NULL);
	}
	return send_error(con, 404, "not found");
}

/* ---- access ---- */

enum auth { AUTH_NONE, AUTH_BEARER, AUTH_COOKIE };

static enum auth authenticate(const struct cairn_http *h, struct MHD_Connection *con)
{
	const char *a = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
	if (a && !strncasecmp(a, "Bearer ", 7))
		return same_secret(h, a + 7) ? AUTH_BEARER : AUTH_NONE;
	const char *c = MHD_lookup_connection_value(con, MHD_COOKIE_KIND, COOKIE);
	if (c && strlen(c) == 64 && CRYPTO_memcmp(c, h->session, 64) == 0)
		return AUTH_COOKIE;
	return AUTH_NONE;
}

/* An Origin, when the browser sends one, must be this server. */
static bool same_origin(const struct cairn_http *h, struct MHD_Connection *con)
{
	const char *origin = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Host");
	if (!origin)
		return true;
	char want[600];
	snprintf(want, sizeof(want), "%s://%s", h->tls ? "https" : "http", host ? host : "");
	return host && !strcmp(origin, want);
}

static bool has_csrf_header(struct MHD_Connection *con)
{
	const char *v = MHD_lookup_connection_value(con, MHD_HEADER_KIND, CSRF_HEADER);
	return v && *v;
}

/* POST /api/v1/login {"token": T}: the session cookie. */
static enum MHD_Result login(const struct cairn_http *h, struct MHD_Connection *con,
			     const struct request *req)
{
	json_t *j = json_loadb((const char *)req->body.p, req->body.len, 0, NULL);
	const char *token = json_string_value(json_object_get(j, "token"));
	bool ok = token && same_secret(h, token);
	json_decref(j);
	if (!ok)
		return send_error(con, 401, "wrong token");
	char cookie[200];
	snprintf(cookie, sizeof(cookie), COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s",
		 h->session, h->tls ? "; Secure" : "");
	struct cairn_reply reply = { 0 };
	cairn_reply_json(&reply, 200, json_pack("{s:b}", "ok", 1));
	return send_reply(con, &reply, "Set-Cookie", cookie);
}

static enum MHD_Result logout(struct MHD_Connection *con)
{
	struct cairn_reply reply = { 0 };
	cairn_reply_json(&reply, 200, json_pack("{s:b}", "ok", 1));
	return send_reply(con, &reply, "Set-Cookie",
			  COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}

static enum MHD_Result dispatch(struct cairn_http *h, struct MHD_Connection *con,
				const char *url, const char *method, struct request *req)
{
	bool api = !strncmp(url, "/api/", 5) || !strcmp(url, "/metrics");
	bool post = !strcmp(method, "POST");
	if (!api)
		return strcmp(method, "GET") && strcmp(method, "HEAD")
			       ? send_error(con, 405, "use GET")
			       : send_file(h, con, url);
	if (req->too_big)
		return send_error(con, 413, "request body too large");
	if (post && !same_origin(h, con))
		return send_error(con, 403, "cross-site request refused (Origin is not this server)");
	if (post && !strcmp(url, "/api/v1/login"))
		return has_csrf_header(con) ? login(h, con, req)
					    : send_error(con, 403, "missing header " CSRF_HEADER);
	enum auth how = authenticate(h, con);
	if (how == AUTH_NONE)
		return send_error(con, 401, "give Authorization: Bearer TOKEN (the [http] token-file)");
	if (post && how == AUTH_COOKIE && !has_csrf_header(con))
		return send_error(con, 403, "missing header " CSRF_HEADER);
	if (post && !strcmp(url, "/api/v1/logout"))
		return logout(con);
	struct cairn_reply reply;
	cairn_api_handle(&h->api, method, url, (const char *)req->body.p, req->body.len, &reply);
	return send_reply(con, &reply, NULL, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)version;
	struct request *req = *con_cls;
	if (!req) { /* headers only so far */
		if (!(req = calloc(1, sizeof(*req))))
			return MHD_NO;
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_size) {
		if (req->body.len + *upload_size > CAIRN_HTTP_MAX_BODY)
			req->too_big = true;
		else if (buf_append(&req->body, upload_data, *upload_size) < 0)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	return dispatch(cls, con, url, method, req);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)con, (void)toe;
	struct request *req = *con_cls;
	if (req) {
		buf_free(&req->body);
		free(req);
	}
	*con_cls = NULL;
}

/* ---- start and stop ---- */

/* "ADDRESS:PORT" or "[V6ADDRESS]:PORT" to a socket address. */
static int resolve(const char *listen, struct sockaddr_storage *ss, bool *v6, char *err,
		   size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	size_t hl = (size_t)(colon - listen);
	if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), listen + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)hl, listen);
	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0)
		return set_err(err, errlen, -EINVAL, "[http] listen = %s: %s", listen,
			       gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}

static int read_text(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return set_err(err, errlen, -errno, "cannot read %s: %s", path, strerror(errno));
	struct buf b = { 0 };
	char chunk[8192];
	size_t got;
	int rc = 0;
	while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(&b, chunk, got);
	fclose(f);
	if (rc == 0)
		rc = buf_append(&b, "", 1);
	if (rc < 0) {
		buf_free(&b);
		return set_err(err, errlen, rc, "cannot read %s", path);
	}
	*out = (char *)b.p;
	return 0;
}

static int start_daemon(struct cairn_http *h, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	bool v6 = false;
	int rc = resolve(h->conf.http.listen, &ss, &v6, err, errlen);
	if (rc < 0)
		return rc;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 (v6 ? MHD_USE_IPv6 : 0) | (h->tls ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)CAIRN_HTTP_MAX_CONNECTIONS,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED,
				on_completed, h, MHD_OPTION_ARRAY,
				h->tls ? tls_opts : &tls_opts[2], MHD_OPTION_END);
	if (!h->d)
		return set_err(err, errlen, -EADDRINUSE,
			       "[http] cannot listen on %s (in use, or not an address of this host%s)",
			       h->conf.http.listen, h->tls ? ", or a bad TLS certificate or key" : "");
	snprintf(h->url, sizeof(h->url), "%s://%s", h->tls ? "https" : "http", h->conf.http.listen);
	return 0;
}

static int setup(struct cairn_http *h, const char *config_path, struct cairn_live *live,
		 char *err, size_t errlen)
{
	int rc = cairn_conf_load(config_path, &h->conf, err, errlen);
	if (rc < 0)
		return rc;
	if (!h->conf.http.on)
		return set_err(err, errlen, -ENOENT, "%s has no [http] section", config_path);
	if ((rc = read_secret_file(h->conf.http.token_file, &h->token, err, errlen)) < 0)
		return rc;
	if (strlen(h->token) < 16)
		return set_err(err, errlen, -EINVAL,
			       "[http] token-file %s: the token is shorter than 16 characters",
			       h->conf.http.token_file);
	hmac_hex(h->token, "cairn console session", h->session);
	h->tls = h->conf.http.tls_cert != NULL;
	if (h->tls && ((rc = read_text(h->conf.http.tls_cert, &h->tls_cert, err, errlen)) < 0 ||
		       (rc = read_text(h->conf.http.tls_key, &h->tls_key, err, errlen)) < 0))
		return rc;
	/* before any thread of ours uses libcurl (peers) */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return set_err(err, errlen, -ENOMEM, "cannot initialise libcurl");
	h->api.conf = &h->conf;
	h->api.live = live;
	ssize_t n = readlink("/proc/self/exe", h->api.exe, sizeof(h->api.exe) - 1);
	if (n <= 0)
		return set_err(err, errlen, -errno, "cannot find this program: %s", strerror(errno));
	h->api.exe[n] = '\0';
	return start_daemon(h, err, errlen);
}

int cairn_http_start(const char *config_path, struct cairn_live *live, struct cairn_http **out,
		     char *err, size_t errlen)
{
	struct cairn_http *h = calloc(1, sizeof(*h));
	if (!h)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	int rc = setup(h, config_path, live, err, errlen);
	if (rc < 0) {
		cairn_http_stop(h);
		return rc;
	}
	*out = h;
	return 0;
}

const char *cairn_http_url(const struct cairn_http *h)
{
	return h->url;
}

void cairn_http_stop(struct cairn_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->token) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	explicit_bzero(h->session, sizeof(h->session));
	if (h->tls_key)
		explicit_bzero(h->tls_key, strlen(h->tls_key));
	free(h->tls_key);
	free(h->tls_cert);
	cairn_conf_free(&h->conf);
	free(h);
}
