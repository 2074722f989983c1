/* Host keys (docs/design.md "Host keys"): key files that let a backup
 * host add backups to a host-keys repository without the password, their
 * records under hostkeys/ (removing one revokes the key), and the one
 * check every operation a host key may not do makes (cairn_repo_need_full).
 *
 * A host key file holds K_enc, K_id and the repository's public key, not
 * its private key: a host can store, deduplicate and read metadata, but
 * cannot open the sealed disk data. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>

#include "keys.h"

#define KEYFILE_MAX 4096

int cairn_repo_need_full(struct cairn_repo *r)
{
	return r->host_key[0] ? repo_err(r, -EPERM, CAIRN_HOST_KEY_REFUSAL) : 0;
}

const char *cairn_repo_host_key(const struct cairn_repo *r)
{
	return r->host_key[0] ? r->host_key : NULL;
}

bool cairn_repo_has_host_keys(const struct cairn_repo *r) { return r->host_keys; }

static bool valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 64 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-@+", name[i]))
			return false;
	return true;
}

static int read_key_file(const char *path, struct buf *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (buf_reserve(out, KEYFILE_MAX + 1) < 0)
		return -ENOMEM;
	ssize_t n;
	while ((n = read(fd, out->p + out->len, KEYFILE_MAX + 1 - out->len)) > 0)
		out->len += (size_t)n;
	if (n < 0)
		return -errno;
	return out->len > KEYFILE_MAX ? -EFBIG : 0;
}

/* The fields of a host key file that open r; -EBADMSG for a damaged one,
 * -EKEYREJECTED (*other true) for a key of another repository. */
static int parse_key_file(struct cairn_repo *r, const struct buf *b, bool *other)
{
	json_auto_t *k = json_loadb((const char *)b->p, b->len, 0, NULL);
	const char *kind, *rid, *name, *host_id, *kenc, *kid, *pub;
	json_int_t version;
	uint8_t pubkey[X25519_LEN];
	if (!k || json_unpack(k, "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version",
			      &version, "kind", &kind, "repository", &rid, "name", &name,
			      "host_id", &host_id, "k_enc", &kenc, "k_id", &kid,
			      "data_public", &pub) < 0 ||
	    version != 1 || strcmp(kind, "host") || !valid_name(name) || strlen(host_id) != 64)
		return -EBADMSG;
	*other = strcmp(rid, r->id) != 0;
	if (*other)
		return -EKEYREJECTED;
	if (hex_decode(kenc, r->k_enc, KEY_LEN) < 0 || hex_decode(kid, r->k_id, KEY_LEN) < 0 ||
	    hex_decode(pub, pubkey, X25519_LEN) < 0)
		return -EBADMSG;
	if (memcmp(pubkey, r->data_pub, X25519_LEN))
		return -EKEYREJECTED;
	snprintf(r->host_key, sizeof(r->host_key), "%s", name);
	snprintf(r->host_id, sizeof(r->host_id), "%s", host_id);
	return 0;
}

int hostkey_unlock(struct cairn_repo *r, const char *path)
{
	if (!r->host_keys)
		return repo_err(r, -EKEYREJECTED,
				"%s was not made for host keys (cairn init --host-keys): open it with its password",
				r->be->location);
	struct buf b = { 0 };
	int rc = read_key_file(path, &b);
	bool other = false;
	if (rc == 0)
		rc = parse_key_file(r, &b, &other);
	if (b.p)
		explicit_bzero(b.p, b.cap);
	buf_free(&b);
	if (rc == -EKEYREJECTED)
		return repo_err(r, rc, other ? "host key file %s belongs to another repository"
					     : "host key file %s does not match this repository's public key",
				path);
	if (rc == -EBADMSG)
		return repo_err(r, -EKEYREJECTED, "host key file %s is damaged or not a host key",
				path);
	if (rc < 0)
		return repo_err(r, rc, "cannot read host key file %s: %s", path, strerror(-rc));
	return hostkey_check_record(r);
}

int hostkey_check_record(struct cairn_repo *r)
{
	if (!r->host_key[0])
		return 0;
	char path[100];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), "hostkeys/%s", r->host_key);
	int rc = r->be->ops->get(r->be, path, &b);
	const char *id = NULL;
	json_auto_t *rec = rc == 0 ? json_loadb((const char *)b.p, b.len, 0, NULL) : NULL;
	buf_free(&b);
	if (rc < 0 && rc != -ENOENT)
		return repo_err(r, rc, "cannot read %s: %s", path, strerror(-rc));
	if (rc == -ENOENT || !rec || json_unpack(rec, "{s:s}", "host_id", &id) < 0 ||
	    strcmp(id, r->host_id))
		return repo_err(r, -EKEYREJECTED, "host key %s was revoked", r->host_key);
	return 0;
}

static json_t *key_file_json(const struct cairn_repo *r, const char *name, const char *host_id,
			     const char *created)
{
	char kenc[2 * KEY_LEN + 1], kid[2 * KEY_LEN + 1], pub[2 * X25519_LEN + 1];
	hex_encode(r->k_enc, KEY_LEN, kenc);
	hex_encode(r->k_id, KEY_LEN, kid);
	hex_encode(r->data_pub, X25519_LEN, pub);
	json_t *k = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "version", 1,
			      "kind", "host", "repository", r->id, "name", name, "host_id",
			      host_id, "k_enc", kenc, "k_id", kid, "data_public", pub,
			      "created", created);
	explicit_bzero(kenc, sizeof(kenc));
	explicit_bzero(kid, sizeof(kid));
	return k;
}

/* Mode 0600 from the first byte, never over an existing file, durable
 * before the record that makes it valid is written. */
static int write_key_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = pwrite_full(fd, text, strlen(text), 0);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(path);
	return rc;
}

static int write_record(struct cairn_repo *r, const char *name, const char *host_id,
			const char *created)
{
	char host[128] = "", path[100];
	gethostname(host, sizeof(host) - 1);
	struct passwd *pw = getpwuid(getuid());
	json_auto_t *rec = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "version", 1, "name", name,
				     "host_id", host_id, "created", created, "host", host, "user",
				     pw ? pw->pw_name : "");
	_cleanup_free_ char *text = rec ? json_dumps(rec, JSON_INDENT(2)) : NULL;
	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "hostkeys/%s", name);
	int rc = r->be->ops->put(r->be, path, text, strlen(text));
	return rc < 0 ? repo_err(r, rc, "cannot write %s: %s", path, strerror(-rc)) : 0;
}

int cairn_hostkey_add(struct cairn_repo *r, const char *name, const char *path)
{
	int rc = cairn_repo_need_full(r);
	if (rc < 0)
		return rc;
	if (!r->host_keys)
		return repo_err(r, -EINVAL,
				"%s was not made for host keys: create one with cairn init --host-keys",
				r->be->location);
	if (!valid_name(name))
		return repo_err(r, -EINVAL,
				"host key name %s: give 1-64 letters, digits and . _ - @ +", name);
	char rpath[100], created[40], host_id[65];
	uint8_t hid[32];
	snprintf(rpath, sizeof(rpath), "hostkeys/%s", name);
	struct buf old = { 0 };
	rc = r->be->ops->get(r->be, rpath, &old);
	buf_free(&old);
	if (rc == 0)
		return repo_err(r, -EEXIST, "host key %s exists: remove it first (cairn key remove-host)",
				name);
	if (rc != -ENOENT)
		return repo_err(r, rc, "cannot read %s: %s", rpath, strerror(-rc));
	if ((rc = random_bytes(hid, sizeof(hid))) < 0)
		return repo_err(r, rc, "no randomness");
	hex_encode(hid, sizeof(hid), host_id);
	format_time_utc(now_ns(), created, sizeof(created));
	json_auto_t *k = key_file_json(r, name, host_id, created);
	char *text = k ? json_dumps(k, JSON_INDENT(2)) : NULL;
	if (!text)
		return repo_err(r, -ENOMEM, "out of memory");
	rc = write_key_file(path, text);
	explicit_bzero(text, strlen(text));
	free(text);
	if (rc < 0)
		return repo_err(r, rc, "cannot write %s: %s", path, strerror(-rc));
	if ((rc = write_record(r, name, host_id, created)) < 0)
		unlink(path);
	return rc;
}

int cairn_hostkey_remove(struct cairn_repo *r, const char *name)
{
	int rc = cairn_repo_need_full(r);
	if (rc < 0)
		return rc;
	char path[100];
	if (!valid_name(name))
		return repo_err(r, -ENOENT, "no host key %s", name);
	snprintf(path, sizeof(path), "hostkeys/%s", name);
	rc = r->be->ops->remove(r->be, path);
	if (rc == -ENOENT)
		return repo_err(r, rc, "no host key %s", name);
	return rc < 0 ? repo_err(r, rc, "cannot remove %s: %s", path, strerror(-rc)) : 0;
}

static void fill_info(struct cairn_repo *r, const char *name, struct cairn_hostkey_info *v)
{
	char path[100];
	struct buf b = { 0 };
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(path, sizeof(path), "hostkeys/%s", name);
	if (r->be->ops->get(r->be, path, &b) == 0) {
		json_auto_t *rec = json_loadb((const char *)b.p, b.len, 0, NULL);
		const char *hid = "", *created = "", *host = "", *user = "";
		if (rec && json_unpack(rec, "{s?s, s?s, s?s, s?s}", "host_id", &hid, "created",
				       &created, "host", &host, "user", &user) == 0) {
			snprintf(v->host_id, sizeof(v->host_id), "%s", hid);
			snprintf(v->created, sizeof(v->created), "%s", created);
			snprintf(v->host, sizeof(v->host), "%s", host);
			snprintf(v->user, sizeof(v->user), "%s", user);
		}
	}
	buf_free(&b);
}

int cairn_hostkey_list(struct cairn_repo *r, struct cairn_hostkey_info **out, size_t *n)
{
	struct name_list names;
	int rc = cairn_repo_need_full(r);
	if (rc == 0)
		rc = list_names(r, "hostkeys", &names);
	if (rc < 0)
		return rc;
	struct cairn_hostkey_info *v = calloc(names.n ? names.n : 1, sizeof(*v));
	if (!v) {
		name_list_free(&names);
		return -ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < names.n; i++)
		if (names.v[i][0] != '.')
			fill_info(r, names.v[i], &v[k++]);
	name_list_free(&names);
	*out = v;
	*n = k;
	return 0;
}
