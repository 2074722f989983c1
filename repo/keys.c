/* Passwords that open a repository: scrypt-derived keys wrapping the master
 * key (docs/design.md section 3). */
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>

#include "keys.h"

#define SCRYPT_N 32768
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN KEY_SALT_LEN
/* A key file may ask for at most 64 times the work of the parameters
 * cairn writes (its memory is capped at 1 GiB by scrypt_kdf): a hostile
 * one cannot hold an unlock for minutes (docs/design.md section 3). */
#define SCRYPT_MAX_WORK (64ll * SCRYPT_N * SCRYPT_R * SCRYPT_P)

static size_t master_len(const struct cairn_repo *r)
{
	return r->host_keys ? KEY_MASTER_MAX : KEY_MASTER_LEN;
}

static void key_aad(const struct cairn_repo *r, char *out, size_t len)
{
	snprintf(out, len, "cairn-key-v1:%s", r->id);
}

int cairn_key_add(struct cairn_repo *r, const char *password, char id[65])
{
	uint8_t salt[SALT_LEN], kek[KEY_LEN], master[KEY_MASTER_MAX];
	uint8_t sealed[NONCE_LEN + KEY_MASTER_MAX + TAG_LEN];
	char aad[100], created[40], host[128] = "", salthex[2 * SALT_LEN + 1];
	char noncehex[2 * NONCE_LEN + 1], datahex[2 * (KEY_MASTER_MAX + TAG_LEN) + 1];
	const size_t mlen = master_len(r);
	int rc = cairn_repo_need_full(r);
	if (rc < 0)
		return rc;
	if (!password || !*password)
		return repo_err(r, -EINVAL, "the password must not be empty");
	rc = random_bytes(salt, sizeof(salt));
	if (rc == 0)
		rc = scrypt_kdf(password, salt, sizeof(salt), SCRYPT_N, SCRYPT_R,
				SCRYPT_P, kek);
	if (rc < 0)
		return repo_err(r, rc, "key derivation failed");
	memcpy(master, r->k_enc, KEY_LEN);
	memcpy(master + KEY_LEN, r->k_id, KEY_LEN);
	if (r->host_keys)
		memcpy(master + 2 * KEY_LEN, r->data_priv, X25519_LEN);
	key_aad(r, aad, sizeof(aad));
	rc = aead_seal(kek, aad, strlen(aad), master, mlen, sealed);
	memset(master, 0, sizeof(master));
	memset(kek, 0, sizeof(kek));
	if (rc < 0)
		return repo_err(r, rc, "cannot wrap the key");

	gethostname(host, sizeof(host) - 1);
	struct passwd *pw = getpwuid(getuid());
	format_time_utc(now_ns(), created, sizeof(created));
	hex_encode(salt, sizeof(salt), salthex);
	hex_encode(sealed, NONCE_LEN, noncehex);
	hex_encode(sealed + NONCE_LEN, mlen + TAG_LEN, datahex);
	json_t *k = json_pack("{s:i, s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s}",
			      "version", 1, "kdf", "scrypt", "n", SCRYPT_N, "r", SCRYPT_R,
			      "p", SCRYPT_P, "salt", salthex, "nonce", noncehex,
			      "data", datahex, "created", created, "host", host,
			      "user", pw ? pw->pw_name : "");
	char *text = k ? json_dumps(k, JSON_INDENT(2)) : NULL;
	json_decref(k);
	if (!text)
		return -ENOMEM;
	uint8_t kid[32];
	char name[80];
	rc = random_bytes(kid, sizeof(kid));
	hex_encode(kid, sizeof(kid), id);
	snprintf(name, sizeof(name), "keys/%s", id);
	if (rc == 0)
		rc = r->be->ops->put(r->be, name, text, strlen(text));
	free(text);
	if (rc < 0)
		return repo_err(r, rc, "cannot write %s: %s", name, strerror(-rc));
	if (!r->key_name[0])
		snprintf(r->key_name, sizeof(r->key_name), "%s", id);
	return 0;
}

int key_file_parse(const void *text, size_t len, struct key_file *kf)
{
	json_t *k = json_loadb(text, len, 0, NULL);
	json_int_t n, rr, p;
	const char *kdf, *salthex, *noncehex, *datahex;
	int rc = -EBADMSG;
	if (k && json_unpack(k, "{s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "kdf", &kdf, "n", &n,
			     "r", &rr, "p", &p, "salt", &salthex, "nonce", &noncehex, "data",
			     &datahex) == 0 &&
	    !strcmp(kdf, "scrypt") && n >= 1024 && n <= (1 << 24) && rr >= 1 && rr <= 64 &&
	    p >= 1 && p <= 16 && n * rr * p <= SCRYPT_MAX_WORK &&
	    hex_decode(salthex, kf->salt, KEY_SALT_LEN) == 0 &&
	    hex_decode(noncehex, kf->sealed, NONCE_LEN) == 0 &&
	    (strlen(datahex) == 2 * (KEY_MASTER_LEN + TAG_LEN) ||
	     strlen(datahex) == 2 * (KEY_MASTER_MAX + TAG_LEN)) &&
	    hex_decode(datahex, kf->sealed + NONCE_LEN, strlen(datahex) / 2) == 0) {
		kf->master_len = strlen(datahex) / 2 - TAG_LEN;
		kf->n = (uint64_t)n;
		kf->r = (uint32_t)rr;
		kf->p = (uint32_t)p;
		rc = 0;
	}
	json_decref(k);
	return rc;
}

/* The private key a key file wraps must be the one config's public key
 * belongs to: a key file of another repository would open nothing. */
static int take_data_key(struct cairn_repo *r, const uint8_t priv[X25519_LEN])
{
	uint8_t pub[X25519_LEN];
	int rc = x25519_public(priv, pub);
	if (rc < 0 || memcmp(pub, r->data_pub, X25519_LEN))
		return -EBADMSG;
	memcpy(r->data_priv, priv, X25519_LEN);
	r->has_data_priv = true;
	return 0;
}

/* Tries one key file; 0 and the master key on success, -EKEYREJECTED on a
 * wrong password. */
static int try_key(struct cairn_repo *r, const char *kname, const char *password)
{
	char path[80], aad[100];
	struct buf b = { 0 };
	snprintf(path, sizeof(path), "keys/%s", kname);
	int rc = r->be->ops->get(r->be, path, &b);
	struct key_file kf;
	if (rc == 0)
		rc = key_file_parse(b.p, b.len, &kf);
	buf_free(&b);
	if (rc < 0)
		return rc;
	const size_t mlen = master_len(r);
	if (kf.master_len != mlen)
		return -EBADMSG;
	uint8_t kek[KEY_LEN], master[KEY_MASTER_MAX];
	rc = scrypt_kdf(password, kf.salt, SALT_LEN, kf.n, kf.r, kf.p, kek);
	if (rc < 0)
		return rc;
	key_aad(r, aad, sizeof(aad));
	rc = aead_open(kek, aad, strlen(aad), kf.sealed, NONCE_LEN + mlen + TAG_LEN, master);
	memset(kek, 0, sizeof(kek));
	if (rc < 0)
		return rc == -EBADMSG ? -EKEYREJECTED : rc;
	rc = r->host_keys ? take_data_key(r, master + 2 * KEY_LEN) : 0;
	if (rc == 0) {
		memcpy(r->k_enc, master, KEY_LEN);
		memcpy(r->k_id, master + KEY_LEN, KEY_LEN);
	}
	explicit_bzero(master, sizeof(master));
	if (rc < 0)
		return rc;
	snprintf(r->key_name, sizeof(r->key_name), "%s", kname);
	return 0;
}

int keys_unlock(struct cairn_repo *r, const char *password)
{
	struct name_list keys;
	int rc = list_names(r, "keys", &keys);
	if (rc < 0)
		return rc;
	int damaged = 0;
	char first_damaged[80] = "";
	rc = -EKEYREJECTED;
	for (size_t i = 0; i < keys.n && rc == -EKEYREJECTED; i++) {
		int krc = try_key(r, keys.v[i], password);
		if (krc == -EBADMSG && !damaged++)
			snprintf(first_damaged, sizeof(first_damaged), "%.64s", keys.v[i]);
		else if (krc != -EBADMSG)
			rc = krc;
	}
	size_t nkeys = keys.n;
	name_list_free(&keys);
	if (rc == -EKEYREJECTED && nkeys == 0)
		return repo_err(r, rc, "%s has no key files: the repository cannot be opened",
				r->be->location);
	/* a damaged key file cannot say whether it was this password's: name
	 * it, and the way back (a copy of it, from a replica or a backup of
	 * the repository's keys/, or another key's password) */
	if (rc == -EKEYREJECTED && damaged)
		return repo_err(r, rc,
				"wrong password for %s, or its key file keys/%.12s is damaged (%d of "
				"%zu key files damaged): put back a copy of it (a replica's keys/) "
				"or use another key's password", r->be->location, first_damaged,
				damaged, nkeys);
	if (rc == -EKEYREJECTED)
		return repo_err(r, rc, "wrong password for %s", r->be->location);
	if (rc == 0 && damaged)
		repo_warn(r, "key file keys/%.12s of %s is damaged (%d damaged); another key "
			  "opened the repository; cairn key list shows the keys", first_damaged,
			  r->be->location, damaged);
	if (rc < 0)
		return repo_err(r, rc, "cannot read keys of %s: %s", r->be->location,
				strerror(-rc));
	return 0;
}

int cairn_key_list(struct cairn_repo *r, struct cairn_key_info **out, size_t *n)
{
	struct name_list keys;
	int rc = cairn_repo_need_full(r);
	if (rc == 0)
		rc = list_names(r, "keys", &keys);
	if (rc < 0)
		return rc;
	struct cairn_key_info *v = calloc(keys.n ? keys.n : 1, sizeof(*v));
	if (!v) {
		name_list_free(&keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < keys.n; i++) {
		char path[80];
		struct buf b = { 0 };
		snprintf(v[i].id, sizeof(v[i].id), "%s", keys.v[i]);
		v[i].current = !strcmp(keys.v[i], r->key_name);
		snprintf(path, sizeof(path), "keys/%s", keys.v[i]);
		if (r->be->ops->get(r->be, path, &b) == 0) {
			json_t *k = json_loadb((const char *)b.p, b.len, 0, NULL);
			const char *created = "", *host = "";
			if (k && json_unpack(k, "{s?s, s?s}", "created", &created,
					     "host", &host) == 0) {
				snprintf(v[i].created, sizeof(v[i].created), "%s", created);
				snprintf(v[i].host, sizeof(v[i].host), "%s", host);
			}
			json_decref(k);
		}
		buf_free(&b);
	}
	*n = keys.n;
	*out = v;
	name_list_free(&keys);
	return 0;
}

int cairn_key_remove(struct cairn_repo *r, const char *prefix)
{
	struct name_list keys;
	int rc = cairn_repo_need_full(r);
	if (rc == 0)
		rc = list_names(r, "keys", &keys);
	if (rc < 0)
		return rc;
	const char *match;
	size_t matches = name_list_match(&keys, prefix, &match);
	char name[80];
	if (matches != 1)
		rc = repo_err(r, matches ? -EINVAL : -ENOENT,
			      matches ? "key id %s is ambiguous" : "no key %s", prefix);
	else if (keys.n == 1)
		rc = repo_err(r, -EPERM, "refusing to remove the last key of the repository");
	else if (!strcmp(match, r->key_name))
		rc = repo_err(r, -EPERM,
			      "refusing to remove the key in use; open the repository with another password to remove it");
	else {
		snprintf(name, sizeof(name), "keys/%s", match);
		rc = r->be->ops->remove(r->be, name);
		if (rc < 0)
			rc = repo_err(r, rc, "cannot remove %s: %s", name, strerror(-rc));
	}
	name_list_free(&keys);
	return rc;
}
