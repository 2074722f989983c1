/* Opening, creating and reading a repository: config (section 2) and blob
 * reads. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "internal.h"
#include "base/pipeline.h"
#include "keys.h"

static bool valid_chunk_size(uint64_t s)
{
	return s >= CAIRN_MIN_CHUNK && s <= CAIRN_MAX_CHUNK && !(s & (s - 1));
}

/* A remote backend's own reason (status, S3 error code) beats strerror. */
static const char *backend_reason(struct cairn_backend *be, int rc)
{
	const char *why = cairn_backend_error(be, rc);
	return why ? why : strerror(-rc);
}

static struct cairn_repo *repo_alloc(void)
{
	struct cairn_repo *r = calloc(1, sizeof(*r));
	if (r) {
		pthread_mutex_init(&r->lock, NULL);
		pthread_rwlock_init(&r->idx_lock, NULL);
		pthread_cond_init(&r->lock_cond, NULL);
	}
	return r;
}

/* A host-keys repository's X25519 key pair: new, or a replica's source's. */
static int init_data_key(struct cairn_repo *r, const struct cairn_repo *src, bool host_keys)
{
	r->host_keys = host_keys;
	if (!host_keys)
		return 0;
	r->has_data_priv = true;
	if (!src)
		return x25519_keypair(r->data_priv, r->data_pub);
	memcpy(r->data_priv, src->data_priv, X25519_LEN);
	memcpy(r->data_pub, src->data_pub, X25519_LEN);
	return 0;
}

static void config_host_keys(const struct cairn_repo *r, json_t *cfg)
{
	char pub[2 * X25519_LEN + 1];
	hex_encode(r->data_pub, X25519_LEN, pub);
	json_object_set_new(cfg, "features", json_pack("[s]", "host-keys"));
	json_object_set_new(cfg, "data_key", json_pack("{s:s, s:s}", "alg", "x25519", "public", pub));
}

int cairn_repo_init(const char *url, const struct cairn_init_opts *o,
		    char *err, size_t errlen)
{
	if (!valid_chunk_size(o->chunk_size))
		return set_err(err, errlen, -EINVAL,
			       "chunk size %u is not a power of two between 64 KiB and 8 MiB",
			       o->chunk_size);
	if (o->compression_level < 0 || o->compression_level > ZSTD_maxCLevel())
		return set_err(err, errlen, -EINVAL, "zstd level %d out of range 1..%d",
			       o->compression_level, ZSTD_maxCLevel());
	const struct cairn_repo *src = o->replica_of;
	bool encrypt = src ? src->encrypted : o->encrypt;
	bool host_keys = src ? src->host_keys : o->host_keys;
	if (encrypt && (!o->password || !*o->password))
		return set_err(err, errlen, -EINVAL, "an encrypted repository needs a non-empty password");
	if (host_keys && !encrypt)
		return set_err(err, errlen, -EINVAL, "host keys need an encrypted repository");
	if (src && src->host_keys && !src->has_data_priv)
		return set_err(err, errlen, -EPERM, CAIRN_HOST_KEY_REFUSAL);

	_cleanup_(cairn_repo_closep) struct cairn_repo *r = repo_alloc();
	if (!r)
		return -ENOMEM;
	int rc = cairn_backend_open(url, true, o->backend, &r->be, err, errlen);
	if (rc < 0)
		return rc;
	if (o->immutable_days && !r->be->ops->set_immutable)
		return set_err(err, errlen, -ENOTSUP,
			       "%s: --immutable needs a repository on S3 with Object Lock; this "
			       "backend cannot lock objects", url);
	/* before the first object: keys and config are locked too */
	if (o->immutable_days &&
	    (rc = r->be->ops->set_immutable(r->be, o->immutable_days, true, err, errlen)) < 0)
		return rc;
	r->immutable_days = o->immutable_days;
	uint8_t rid[32];
	if ((rc = random_bytes(rid, sizeof(rid))) < 0)
		return set_err(err, errlen, rc, "no randomness");
	hex_encode(rid, sizeof(rid), r->id);
	r->encrypted = encrypt;
	r->chunk_size = src ? src->chunk_size : o->chunk_size;
	r->level = src ? src->level : o->compression_level;
	r->pack_size = src ? src->pack_size : CAIRN_DEFAULT_PACK;

	if ((rc = init_data_key(r, src, host_keys)) < 0)
		return set_err(err, errlen, rc, "cannot make the repository's key pair");
	/* keys first: a config without keys would be an unopenable repository */
	if (encrypt) {
		uint8_t master[2 * KEY_LEN];
		if (src) {
			memcpy(master, src->k_enc, KEY_LEN);
			memcpy(master + KEY_LEN, src->k_id, KEY_LEN);
		} else if ((rc = random_bytes(master, sizeof(master))) < 0)
			return set_err(err, errlen, rc, "no randomness");
		memcpy(r->k_enc, master, KEY_LEN);
		memcpy(r->k_id, master + KEY_LEN, KEY_LEN);
		explicit_bzero(master, sizeof(master));
		char kid[65];
		rc = cairn_key_add(r, o->password, kid);
		if (rc < 0)
			return set_err(err, errlen, rc, "%s", r->err);
	}
	json_auto_t *cfg = json_pack(
		"{s:i, s:s, s:i, s:s, s:i, s:s, s:i}", "version", 1, "id", r->id,
		"chunk_size", (json_int_t)r->chunk_size, "compression",
		r->level ? "zstd" : "none", "compression_level", r->level,
		"encryption", encrypt ? "aes-256-gcm" : "none", "pack_size",
		(json_int_t)r->pack_size);
	if (cfg && src)
		json_object_set_new(cfg, "replica_of", json_string(src->id));
	if (cfg && r->immutable_days)
		json_object_set_new(cfg, "immutable",
				    json_pack("{s:i, s:s}", "days", (json_int_t)r->immutable_days,
					      "mode", "COMPLIANCE"));
	if (cfg && host_keys)
		config_host_keys(r, cfg);
	_cleanup_free_ char *text = cfg ? json_dumps(cfg, JSON_INDENT(2)) : NULL;
	if (!text)
		return -ENOMEM;
	rc = r->be->ops->put(r->be, "config", text, strlen(text));
	if (rc < 0)
		return set_err(err, errlen, rc, "cannot write %s/config: %s", url,
			       backend_reason(r->be, rc));
	return 0;
}

/* "data_key" of a host-keys repository: its X25519 public key. */
static int parse_data_key(struct cairn_repo *r, const json_t *cfg, bool encrypted, char *err,
			  size_t errlen)
{
	const char *alg = NULL, *pub = NULL;
	json_t *dk = json_object_get(cfg, "data_key");
	if (!encrypted || !dk ||
	    json_unpack(dk, "{s:s, s:s}", "alg", &alg, "public", &pub) < 0 ||
	    strcmp(alg, "x25519") || hex_decode(pub, r->data_pub, X25519_LEN) < 0)
		return set_err(err, errlen, -EBADMSG,
			       "%s/config: host keys need encryption and a valid \"data_key\"",
			       r->be->location);
	return 0;
}

/* Additions that older readers must refuse rather than ignore are named in
 * config's "features" (docs/design.md section 0); this reader knows
 * "host-keys". */
static int check_features(struct cairn_repo *r, const json_t *features, char *err,
			  size_t errlen)
{
	if (!features)
		return 0;
	if (!json_is_array(features))
		return set_err(err, errlen, -EBADMSG, "%s/config: invalid \"features\" value",
			       r->be->location);
	size_t i;
	const json_t *f;
	json_array_foreach(features, i, f) {
		const char *name = json_string_value(f);
		if (name && !strcmp(name, "host-keys")) {
			r->host_keys = true;
			continue;
		}
		return set_err(err, errlen, -EPROTONOSUPPORT,
			       "%s: the repository uses a format feature this cairn does not know (%s); use a newer cairn",
			       r->be->location, name ? name : "?");
	}
	return 0;
}

static int parse_config(struct cairn_repo *r, const struct buf *b, char *err,
			size_t errlen)
{
	json_error_t jerr;
	json_auto_t *cfg = json_loadb((const char *)b->p, b->len, 0, &jerr);
	json_int_t version = 0, chunk = 0, level = 0, pack = CAIRN_DEFAULT_PACK;
	const char *id = NULL, *comp = NULL, *enc = NULL;
	if (!cfg || json_unpack_ex(cfg, &jerr, 0, "{s:I, s:s, s:I, s:s, s?I, s:s, s?I}",
				   "version", &version, "id", &id, "chunk_size", &chunk,
				   "compression", &comp, "compression_level", &level,
				   "encryption", &enc, "pack_size", &pack) < 0)
		return set_err(err, errlen, -EBADMSG, "%s/config is damaged: %s",
			       r->be->location, jerr.text);
	if (version != 1)
		return set_err(err, errlen, -EPROTONOSUPPORT,
			       "%s: repository format version %lld is not supported (this cairn reads version 1)",
			       r->be->location, (long long)version);
	if (strlen(id) != 64 || !valid_chunk_size((uint64_t)chunk) ||
	    (strcmp(comp, "zstd") && strcmp(comp, "none")) ||
	    (strcmp(enc, "aes-256-gcm") && strcmp(enc, "none")) ||
	    pack < 1 << 20 || pack > 1 << 30 || level < 0 || level > 22)
		return set_err(err, errlen, -EBADMSG, "%s/config has invalid values",
			       r->be->location);
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->chunk_size = (uint32_t)chunk;
	r->level = strcmp(comp, "zstd") ? 0 : (int)level;
	r->encrypted = !strcmp(enc, "aes-256-gcm");
	r->pack_size = (uint32_t)pack;
	json_t *imm = json_object_get(cfg, "immutable");
	json_int_t days = 0;
	const char *mode = NULL;
	if (imm && (json_unpack(imm, "{s:I, s:s}", "days", &days, "mode", &mode) < 0 ||
		    days < 1 || days > 36500 || strcmp(mode, "COMPLIANCE")))
		return set_err(err, errlen, -EBADMSG, "%s/config: invalid \"immutable\" value",
			       r->be->location);
	r->immutable_days = (unsigned)days;
	int rc = check_features(r, json_object_get(cfg, "features"), err, errlen);
	if (rc == 0 && r->host_keys)
		rc = parse_data_key(r, cfg, r->encrypted, err, errlen);
	return rc;
}

int cairn_repo_open(const char *url, const char *password,
		    struct cairn_repo **out, char *err, size_t errlen)
{
	return cairn_repo_open_with(url, password, NULL, out, err, errlen);
}

int cairn_repo_open_with(const char *url, const char *password,
			 const struct cairn_backend_opts *bo, struct cairn_repo **out,
			 char *err, size_t errlen)
{
	_cleanup_(cairn_repo_closep) struct cairn_repo *r = repo_alloc();
	if (!r)
		return -ENOMEM;
	int rc = cairn_backend_open(url, false, bo, &r->be, err, errlen);
	if (rc < 0)
		return rc;
	struct buf cfg = { 0 };
	rc = r->be->ops->get(r->be, "config", &cfg);
	if (rc < 0) {
		buf_free(&cfg);
		int drc = r->be->ops->diagnose ? r->be->ops->diagnose(r->be, err, errlen) : 0;
		if (drc < 0)
			return drc;
		if (rc == -ENOENT)
			return set_err(err, errlen, rc,
				       "%s is not a cairn repository (no config)", url);
		return set_err(err, errlen, rc, "cannot read %s/config: %s", url,
			       backend_reason(r->be, rc));
	}
	rc = parse_config(r, &cfg, err, errlen);
	buf_free(&cfg);
	if (rc < 0)
		return rc;
	/* every object written from here on is locked like the ones before */
	if (r->immutable_days && r->be->ops->set_immutable &&
	    (rc = r->be->ops->set_immutable(r->be, r->immutable_days, false, err, errlen)) < 0)
		return rc;
	if (bo && bo->key_file) {
		rc = hostkey_unlock(r, bo->key_file);
		if (rc < 0)
			return set_err(err, errlen, rc, "%s", r->err);
	} else if (r->encrypted) {
		if (!password)
			return set_err(err, errlen, -EKEYREJECTED,
				       "%s is encrypted: a password is needed", url);
		rc = keys_unlock(r, password);
		if (rc < 0)
			return set_err(err, errlen, rc, "%s", r->err);
	}
	*out = TAKE_PTR(r);
	return 0;
}

void cairn_repo_close(struct cairn_repo *r)
{
	if (r->lock_name[0])
		cairn_repo_unlock(r);
	if (r->be)
		cairn_backend_free(r->be);
	idx_table_free(&r->idx);
	free(r->condemned);
	damage_list_free(&r->damage);
	for (size_t i = 0; i < r->nwarnings; i++)
		free(r->warnings[i]);
	free(r->warnings);
	while (r->scratch_pool) {
		struct scratch *s = r->scratch_pool;
		r->scratch_pool = s->next;
		ZSTD_freeCCtx(s->zc);
		ZSTD_freeDCtx(s->zd);
		explicit_bzero(&s->seals, sizeof(s->seals));
		buf_free(&s->a);
		buf_free(&s->b);
		free(s);
	}
	explicit_bzero(r->k_enc, sizeof(r->k_enc));
	explicit_bzero(r->k_id, sizeof(r->k_id));
	explicit_bzero(r->data_priv, sizeof(r->data_priv));
	pthread_mutex_destroy(&r->lock);
	pthread_rwlock_destroy(&r->idx_lock);
	pthread_cond_destroy(&r->lock_cond);
	free(r);
}

/* Worker threads ask while others may be recording a failure: the message
 * is copied under the lock into a buffer of the calling thread, the way
 * strerror_r keeps errno's text per thread. */
const char *cairn_repo_error(const struct cairn_repo *r)
{
	static _Thread_local char line[sizeof(r->err)];
	struct cairn_repo *m = (struct cairn_repo *)r; /* the lock, not the contents */
	pthread_mutex_lock(&m->lock);
	memcpy(line, r->err, sizeof(line));
	pthread_mutex_unlock(&m->lock);
	return line;
}
bool cairn_repo_encrypted(const struct cairn_repo *r) { return r->encrypted; }
uint32_t cairn_repo_chunk_size(const struct cairn_repo *r) { return r->chunk_size; }

unsigned cairn_repo_read_workers(const struct cairn_repo *r)
{
	unsigned cpus = cairn_default_workers();
	return r->be->connections > cpus ? r->be->connections : cpus;
}
const char *cairn_repo_id(const struct cairn_repo *r) { return r->id; }
unsigned cairn_repo_immutable_days(const struct cairn_repo *r) { return r->immutable_days; }
size_t cairn_repo_warning_count(const struct cairn_repo *r) { return r->nwarnings; }

void cairn_repo_clear_warnings(struct cairn_repo *r)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nwarnings; i++)
		free(r->warnings[i]);
	free(r->warnings);
	r->warnings = NULL;
	r->nwarnings = 0;
	pthread_mutex_unlock(&r->lock);
}
const char *cairn_repo_warning(const struct cairn_repo *r, size_t i)
{
	return i < r->nwarnings ? r->warnings[i] : NULL;
}

/* Copies the entry of a stored blob (and its pack's id) out of the table
 * under the lock: writers may be growing the table meanwhile. */
bool repo_lookup_entry(const struct cairn_repo *r, const cairn_id *id, struct idx_entry *out,
		       cairn_id *pack)
{
	struct cairn_repo *m = (struct cairn_repo *)r; /* the lock only */
	pthread_rwlock_rdlock(&m->idx_lock);
	const struct idx_entry *e = idx_lookup(&r->idx, id);
	bool found = e && e->pack != PACK_PENDING;
	if (found) {
		*out = *e;
		if (pack)
			*pack = r->idx.packs[e->pack];
	}
	pthread_rwlock_unlock(&m->idx_lock);
	return found;
}

int cairn_repo_blob_info(const struct cairn_repo *r, const cairn_id *id,
			 struct cairn_blob_info *out)
{
	struct idx_entry e;
	if (!repo_lookup_entry(r, id, &e, NULL))
		return -ENOENT;
	out->raw_len = e.raw_len;
	out->stored_len = e.stored_len;
	return 0;
}

void repo_pack_id(const struct cairn_repo *r, uint32_t num, cairn_id *pack)
{
	struct cairn_repo *m = (struct cairn_repo *)r; /* the lock only */
	pthread_rwlock_rdlock(&m->idx_lock);
	*pack = r->idx.packs[num];
	pthread_rwlock_unlock(&m->idx_lock);
}

int repo_decode_stored(struct cairn_repo *r, const struct idx_entry *e, const uint8_t *stored,
		       void *out, bool rehash)
{
	struct scratch *sc = scratch_get(r);
	if (!sc)
		return -ENOMEM;
	int rc = blob_decode(r, sc, e, stored, out, rehash);
	scratch_put(r, sc);
	return rc == -ENOMEM ? rc : rc < 0 ? -EBADMSG : 0;
}

int cairn_repo_decode_stored(struct cairn_repo *r, const cairn_id *id,
			     const struct cairn_stored_blob *b, void *buf, size_t cap)
{
	if (b->type == CAIRN_BLOB_DATA && cairn_repo_need_full(r) < 0)
		return -EPERM;
	if (b->raw_len > cap || b->len > IDX_MAX_STORED || b->type > CAIRN_BLOB_PAGE)
		return -EBADMSG;
	struct idx_entry e = { .id = *id, .stored_len = b->len, .type = b->type,
			       .flags = b->flags, .raw_len = b->raw_len };
	int rc = repo_decode_stored(r, &e, b->bytes, buf, false);
	return rc < 0 ? rc : (int)b->raw_len;
}

static int read_blob(struct cairn_repo *r, const cairn_id *id, void *buf, size_t cap,
		     bool rehash)
{
	char hex[65], name[128];
	struct idx_entry ent;
	cairn_id pack;
	const struct idx_entry *e = repo_lookup_entry(r, id, &ent, &pack) ? &ent : NULL;
	hex_encode(id->b, CAIRN_ID_LEN, hex);
	if (!e)
		/* manifests only reference indexed blobs (write order), so
		 * a missing one means damage */
		return repo_err(r, -EBADMSG,
				"blob %.16s is missing from the index (repository damaged; try 'cairn repair index')",
				hex);
	if (e->raw_len > cap)
		return repo_err(r, -EBADMSG, "blob %.16s: size %u exceeds %zu", hex,
				e->raw_len, cap);
	/* disk data is sealed; a host key only holds what reads metadata */
	if (e->type == CAIRN_BLOB_DATA && cairn_repo_need_full(r) < 0)
		return -EPERM;
	pack_name(&pack, name, sizeof(name));
	struct scratch *sc = scratch_get(r);
	if (!sc || buf_reserve(&sc->a, e->stored_len + 1) < 0) {
		if (sc)
			scratch_put(r, sc);
		return repo_err(r, -ENOMEM, "out of memory");
	}
	int rc = r->be->ops->get_range(r->be, name, e->offset, e->stored_len, sc->a.p);
	int drc = rc == 0 ? blob_decode(r, sc, e, sc->a.p, buf, rehash) : 0;
	scratch_put(r, sc);
	if (rc == -EIO) /* short read */
		return repo_err(r, -EBADMSG, "pack %s is truncated (blob %.16s)", name, hex);
	if (rc == -ENOENT) /* indexed packs are never removed in v1 */
		return repo_err(r, -EBADMSG, "pack %s is missing (blob %.16s)", name, hex);
	if (rc < 0)
		return repo_err(r, rc, "cannot read %s: %s", name, strerror(-rc));
	if (drc == -ENOMEM)
		return repo_err(r, drc, "out of memory");
	if (drc < 0)
		return repo_err(r, -EBADMSG,
				"blob %.16s in %s is damaged (authentication or hash mismatch)",
				hex, name);
	return (int)e->raw_len;
}

int cairn_repo_read_blob(struct cairn_repo *r, const cairn_id *id, void *buf, size_t cap)
{
	return read_blob(r, id, buf, cap, true);
}

int cairn_repo_read_chunk(struct cairn_repo *r, const cairn_id *id, void *buf, size_t cap)
{
	return read_blob(r, id, buf, cap, false);
}

void reportf(cairn_report_fn fn, void *opaque, const char *fmt, ...)
{
	if (!fn)
		return;
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(opaque, line);
}
