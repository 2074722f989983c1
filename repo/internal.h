/* Internal to repo/: the repository context and the pieces shared by the
 * files of this module. Not part of the public contract.
 *
 * The files of repo/ stand in layers; a file calls only into its own
 * layer or those below it, and no two files call each other in a circle
 * (tests/repo_layers.sh checks the built objects):
 *   1. ground: crypto, objects (errors, hashed objects, listings), idx_table
 *      (the in-memory index), envelope, seal, blob, pack, index (index
 *      files), hostkey, keys, lock, verify, disk, anomaly (the anomaly
 *      guard's arithmetic); the backends and transports.
 *   2. records as plain data in struct cairn_repo: gc_condemned (gc/
 *      lists), damage (damaged/ and checks/), and reuse, the lookups in
 *      them that say which stored copies writers must not reuse.
 *   3. open and load: repo (config, blob reads), load (index files into
 *      r->idx, after the records of layer 2).
 *   4. writing: writer, snapshot; snapshot_resolve (which snapshots
 *      there are, damaged manifests, which one a spec means).
 *   5. maintenance: check, overwrite (objects overwritten in a versioned
 *      store, put back by check), forget, retention, replica, gc and its
 *      gc_* files (gc_internal.h), gc_immutable. */
#ifndef CAIRN_REPO_INTERNAL_H
#define CAIRN_REPO_INTERNAL_H

#include <pthread.h>
#include <zstd.h>

#include "backend.h"
#include "repo.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define BLOB_F_ZSTD 1u
#define BLOB_F_AES 2u
#define BLOB_F_SEALED 4u /* disk data sealed to the repository's public key (seal.c) */
#define X25519_LEN 32
#define ENTRY_LEN 48 /* pack directory and index entry */
#define PAGE_IDS 4096

enum envelope_kind { ENV_INDEX = 1, ENV_SNAPSHOT = 2, ENV_PACKDIR = 3, ENV_VERIFY = 4 };
/* Limits on what a stored object may make a reader allocate (docs/design.md
 * section 8, "Limits"). */
#define ENVELOPE_MAX_MANIFEST (64u << 20)
#define ENVELOPE_MAX_VERIFY (1u << 20)

/* One indexed blob. pack == PACK_PENDING while a writer still holds it. */
#define PACK_PENDING UINT32_MAX
/* 48 bytes: the index of 10 million chunks must fit in well under 1 GiB
 * (docs/design.md section 7). A stored blob is at most a chunk (8 MiB)
 * plus compression and AEAD overhead, well below 2^25. */
struct idx_entry {
	cairn_id id;
	uint32_t pack;
	uint32_t offset;
	uint32_t stored_len : 25;
	uint32_t type : 3;
	uint32_t flags : 3;
	uint32_t condemned : 1; /* in a pack gc will delete: readable, never reused */
	uint32_t raw_len;
};
_Static_assert(sizeof(struct idx_entry) == 48, "idx_entry grew");
#define IDX_MAX_STORED ((1u << 25) - 1)

/* Open-addressing hash table keyed by blob id; the zero id marks a free slot
 * (it is never stored). Any capacity (not only powers of two): a table
 * sized for what is loaded stays at most IDX_MAX_LOAD full. */
#define IDX_MAX_LOAD_PCT 85
struct idx_table {
	struct idx_entry *slots;
	size_t cap, count;
	cairn_id *packs; /* pack number -> pack id */
	size_t npacks, packs_cap;
};

int idx_table_init(struct idx_table *t, size_t expect);
void idx_table_free(struct idx_table *t);
struct idx_entry *idx_lookup(const struct idx_table *t, const cairn_id *id);
/* Inserts (or returns the existing entry for) e->id. */
int idx_insert(struct idx_table *t, const struct idx_entry *e,
	       struct idx_entry **out);
int idx_add_pack(struct idx_table *t, const cairn_id *pack, uint32_t *num);
/* memcmp order of cairn_ids, for qsort and bsearch */
int id_cmp(const void *a, const void *b);

/* damage.c: blobs (or whole packs, blob = zero id) check found damaged. */
struct damage_item {
	cairn_id pack, blob;
	bool whole;
};
struct damage_list {
	struct damage_item *v;
	size_t n, cap;
};

struct cairn_repo {
	struct cairn_backend *be;
	char id[65];
	uint32_t chunk_size;
	uint32_t pack_size;
	int level;
	bool encrypted;
	unsigned immutable_days; /* S3 Object Lock retention; 0: none */
	uint8_t k_enc[KEY_LEN];
	uint8_t k_id[KEY_LEN];
	char key_name[65]; /* key file that opened the repository */
	/* host keys (docs/design.md "Host keys"): the config feature, the
	 * repository's X25519 key pair (the private half only when a password
	 * opened it) and, when a host key opened it, the key's name and id:
	 * then the repository can only add (repo_need_full) */
	bool host_keys;
	bool has_data_priv;
	uint8_t data_pub[X25519_LEN];
	uint8_t data_priv[X25519_LEN];
	char host_key[65];
	char host_id[65];
	struct idx_table idx;
	bool index_loaded;
	cairn_id *condemned; /* sorted pack ids */
	size_t ncondemned;
	struct damage_list damage; /* sorted; loaded with the index */
	char **warnings;
	size_t nwarnings;
	char lock_name[80];
	char lock_time[40]; /* when it was taken */
	bool lock_exclusive, lock_gc;
	/* the heartbeat thread (lock.c); lock_stop and lock_cond under lock */
	pthread_t lock_thread;
	pthread_cond_t lock_cond;
	bool lock_beating, lock_stop;
	struct scratch *scratch_pool;
	pthread_mutex_t lock; /* err, warnings, scratch_pool */
	/* idx: shared by readers, exclusive for writers' changes (several
	 * backups may share one writer while others read chunk maps) */
	pthread_rwlock_t idx_lock;
	char err[512];
};

/* firmware.c: the manifest's "firmware" array (docs/design.md section 9);
 * parse takes NULL (no key) as none. */
struct json_t;
struct json_t *firmware_to_json(const struct cairn_snapshot *s);
int firmware_parse(struct json_t *items, struct cairn_snapshot *s);
void firmware_free(struct cairn_snapshot *s);

/* Records the reason for rc and returns rc. Thread-safe. */
int repo_err(struct cairn_repo *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int repo_warn(struct cairn_repo *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* crypto.c */
void sha256(const void *data, size_t len, uint8_t out[32]);
int random_bytes(void *buf, size_t len);
int aead_seal(const uint8_t key[KEY_LEN], const void *aad, size_t aadlen,
	      const void *in, size_t len, uint8_t *out); /* out: len+28 */
int aead_open(const uint8_t key[KEY_LEN], const void *aad, size_t aadlen,
	      const uint8_t *in, size_t len, uint8_t *out); /* out: len-28 */
int scrypt_kdf(const char *password, const uint8_t *salt, size_t saltlen,
	       uint64_t n, uint32_t r, uint32_t p, uint8_t out[KEY_LEN]);
int hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
		const char *info, uint8_t out[KEY_LEN]);
int x25519_public(const uint8_t priv[X25519_LEN], uint8_t pub[X25519_LEN]);
int x25519_keypair(uint8_t priv[X25519_LEN], uint8_t pub[X25519_LEN]);
/* -EBADMSG for a peer key that gives no secret (a low-order point) */
int x25519_shared(const uint8_t priv[X25519_LEN], const uint8_t peer[X25519_LEN],
		  uint8_t out[X25519_LEN]);

/* seal.c: disk data sealed to the repository's X25519 public key
 * (docs/design.md section "Host keys"). A sealed blob's stored bytes are
 * eph_pub(32) || nonce(12) || AES-256-GCM ciphertext || tag(16) under
 * HKDF-SHA256(X25519(eph, repo), salt = eph_pub || repo_pub,
 * info "cairn-seal-v1"). A writer makes one seal key per pack; a reader
 * derives each ephemeral key's AES key once (seal_cache). */
#define SEAL_OVERHEAD (X25519_LEN + NONCE_LEN + TAG_LEN)
struct seal_key {
	uint8_t eph_pub[X25519_LEN];
	uint8_t key[KEY_LEN];
};
/* A new ephemeral key and the AES key it shares with repo_pub. */
int seal_key_new(const uint8_t repo_pub[X25519_LEN], struct seal_key *out);
/* The AES key of a sealed blob whose bytes start with eph_pub. */
int seal_key_derive(const uint8_t repo_priv[X25519_LEN], const uint8_t repo_pub[X25519_LEN],
		    const uint8_t eph_pub[X25519_LEN], struct seal_key *out);
/* out: len + SEAL_OVERHEAD bytes */
int seal_blob(const struct seal_key *k, const void *aad, size_t aadlen, const void *in,
	      size_t len, uint8_t *out);
/* in: a sealed blob of len bytes whose key k was derived from its first
 * 32 bytes; out: len - SEAL_OVERHEAD bytes. -EBADMSG when it fails. */
int open_sealed(const struct seal_key *k, const void *aad, size_t aadlen, const uint8_t *in,
		size_t len, uint8_t *out);
/* The derived keys of the last ephemeral keys a thread met. */
#define SEAL_CACHE 4
struct seal_cache {
	struct seal_key v[SEAL_CACHE];
	unsigned n, next;
};
int seal_cache_key(struct seal_cache *c, const uint8_t repo_priv[X25519_LEN],
		   const uint8_t repo_pub[X25519_LEN], const uint8_t eph_pub[X25519_LEN],
		   const struct seal_key **out);

/* Working memory of one thread for encoding and decoding blobs, pooled in
 * the repository so the hot paths do not allocate per chunk. */
struct scratch {
	ZSTD_CCtx *zc;
	ZSTD_DCtx *zd;
	struct buf a, b;
	struct seal_cache seals;
	struct scratch *next;
};
struct scratch *scratch_get(struct cairn_repo *r); /* NULL: out of memory */
void scratch_put(struct cairn_repo *r, struct scratch *s);

/* blob.c: section 5 of docs/design.md. The encoded bytes are left in
 * sc->a (valid until the scratch is reused). In a host-keys repository
 * disk data is sealed with seal (the writer's key of the current pack),
 * which may be NULL otherwise. */
int blob_encode(const struct cairn_repo *r, struct scratch *sc,
		enum cairn_blob_type type, const cairn_id *id, const void *in,
		size_t len, const struct seal_key *seal, uint8_t *flags);
/* True when blobs of this type are sealed in r (host-keys disk data). */
bool blob_sealed(const struct cairn_repo *r, enum cairn_blob_type type);
/* Decodes stored bytes to plaintext of exactly raw_len bytes and checks
 * the id: by hashing the plaintext again, or, with rehash false in an
 * encrypted repository, by the AES-GCM tag alone (its AAD holds the id, so
 * only a holder of the key can have sealed these bytes for this id). A
 * sealed blob is always hashed again: any host key can seal any bytes
 * under any id. -EPERM for a sealed blob when r has no private key (a
 * host key opened it). Uses sc->b. */
int blob_decode(const struct cairn_repo *r, struct scratch *sc,
		const struct idx_entry *e, const uint8_t *in, uint8_t *out, bool rehash);

/* repo.c: the read path's pieces, shared with the disk reader.
 * The entry of a stored (not pending) blob and its pack's id (pack may be
 * NULL); false when the index does not hold it. Thread-safe. */
bool repo_lookup_entry(const struct cairn_repo *r, const cairn_id *id, struct idx_entry *out,
		       cairn_id *pack);
/* The id of pack number num (an idx_entry's pack). Thread-safe. */
void repo_pack_id(const struct cairn_repo *r, uint32_t num, cairn_id *pack);
/* Decodes a blob's stored bytes, already fetched by the caller, into out
 * (e->raw_len bytes) and verifies them like the read path: rehash false
 * is cairn_repo_read_chunk's check (the AES-GCM tag alone when
 * encrypted), true cairn_repo_read_blob's. 0, -EBADMSG or -ENOMEM.
 * Thread-safe. */
int repo_decode_stored(struct cairn_repo *r, const struct idx_entry *e, const uint8_t *stored,
		       void *out, bool rehash);

/* envelope.c: section 8. */
int envelope_seal(const struct cairn_repo *r, enum envelope_kind kind,
		  const void *in, size_t len, struct buf *out);
int envelope_open(const struct cairn_repo *r, enum envelope_kind kind,
		  const uint8_t *in, size_t len, struct buf *out);

/* entry codec shared by packs and index files */
void entry_pack(uint8_t out[ENTRY_LEN], const struct idx_entry *e);
void entry_unpack(struct idx_entry *e, const uint8_t in[ENTRY_LEN]);

/* pack.c */
void pack_name(const cairn_id *id, char *out, size_t len); /* data/xx/hex */
/* Reads and decodes a pack's directory (tail of the pack). */
int pack_read_directory(struct cairn_repo *r, const char *hexid,
			uint64_t pack_size, struct idx_entry **entries,
			size_t *n);
int pack_parse_directory(struct cairn_repo *r, const uint8_t *pack,
			 size_t len, struct idx_entry **entries, size_t *n);

/* index.c: index files */
int index_encode(const struct cairn_repo *r, const cairn_id *packs,
		 struct idx_entry **entries, const size_t *counts,
		 size_t npacks, struct buf *out);
int index_write(struct cairn_repo *r, const struct buf *plain, cairn_id *id);
/* Calls fn for each pack of a decoded index file with its entries (pack
 * field unset); a non-zero return stops the walk. */
typedef int (*index_pack_fn)(void *opaque, const cairn_id *pack, struct idx_entry *e,
			     size_t n);
int index_walk(const uint8_t *p, size_t len, index_pack_fn fn, void *opaque);

/* damage.c (docs/design.md section 18) */
int damage_add(struct damage_list *l, const cairn_id *pack, const cairn_id *blob);
void damage_list_free(struct damage_list *l);
int damage_record(struct cairn_repo *r, const struct damage_list *l);
/* Loads every damage record into r->damage, sorted by damage_item_cmp. */
int damage_load(struct cairn_repo *r);
int damage_prune(struct cairn_repo *r);
/* Drops the n packs from every damage record (they were put back whole). */
int damage_forget_packs(struct cairn_repo *r, const cairn_id *packs, size_t n);
struct check_age {
	size_t pos; /* in the caller's pack array */
	int64_t time_ns; /* last full read, 0 = never */
};
/* packs: n pack ids, stride bytes apart; *out sorted oldest check first. */
int check_ages(struct cairn_repo *r, const void *packs, size_t n, size_t stride,
	       struct check_age **out);
int check_record(struct cairn_repo *r, const cairn_id *packs, size_t n);

/* lock.c: true when the lock is gone or stale (a stale one is removed). */
int lock_gone(struct cairn_repo *r, const char *name, bool *gone);

/* gc_condemned.c: loads into r->condemned the packs a garbage collection
 * condemned (docs/design.md section 17), so that writers never reuse
 * their blobs. */
int gc_load_condemned(struct cairn_repo *r);

/* reuse.c: lookups in r->condemned and r->damage. */
bool pack_condemned(const struct cairn_repo *r, const cairn_id *pack);
bool damage_known(const struct cairn_repo *r, const cairn_id *pack, const cairn_id *blob);
int damage_item_cmp(const void *a, const void *b);

/* gc_immutable.c: gc's work in an immutable repository (docs/design.md
 * section 20); now in Unix seconds. Deletes the forgotten manifests whose
 * retention has ended; extends the retention of every needed object when
 * less than half of it is left. */
int immutable_forget_due(struct cairn_repo *r, int64_t now, struct cairn_gc_result *res);
int immutable_extend(struct cairn_repo *r, int64_t now, struct cairn_gc_result *res);

/* objects named by the hash of their content */
int put_hashed(struct cairn_repo *r, const char *dir, const struct buf *data,
	       cairn_id *id);
int get_hashed(struct cairn_repo *r, const char *dir, const char *hexid,
	       struct buf *out);

/* snapshot.c: reads and checks one manifest (errors name it). */
int snapshot_load_manifest(struct cairn_repo *r, const char *hexid,
			   struct cairn_snapshot **out);

/* Collects the names of a backend listing. */
struct name_list {
	char **v;
	size_t n, cap;
};
int collect_name(void *opaque, const char *name, uint64_t size);
void name_list_free(struct name_list *l);
int list_names(struct cairn_repo *r, const char *dir, struct name_list *out);
/* The names starting with prefix: how many, and (the last) one of them. */
size_t name_list_match(const struct name_list *l, const char *prefix,
		       const char **match);

/* One formatted line to a caller's report callback (FN may be NULL). */
void reportf(cairn_report_fn fn, void *opaque, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A pack being assembled in memory (docs/design.md section 6). */
struct pack_builder {
	size_t size_hint; /* expected pack size; 0 = unknown */
	struct buf data;
	struct idx_entry *entries;
	size_t n, cap;
};
int pack_builder_add(struct pack_builder *pb, struct idx_entry *e,
		     const uint8_t *stored);
/* Appends the directory and trailer, writes the pack, sets *id. */
int pack_builder_write(struct cairn_repo *r, struct pack_builder *pb,
		       cairn_id *id);
void pack_builder_free(struct pack_builder *pb);
#endif
