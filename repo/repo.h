/* cairn repository (format v1 and its additions, docs/design.md): public contract.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; on failure a one-line reason is available from cairn_repo_error()
 * (or the err buffer a function takes). Nothing here prints or exits.
 *
 * Error codes with a meaning callers rely on:
 *   -EBADMSG       damaged data (bad hash, failed authentication, bad format)
 *   -EKEYREJECTED  wrong password / no key opens the repository
 *   -EBUSY         the repository is locked by someone else
 *   -ENOENT        object, snapshot or disk not found
 *   -EPERM         a host key opened the repository and the operation
 *                  needs the password (CAIRN_HOST_KEY_REFUSAL)
 */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "anomaly.h"

#define CAIRN_ID_LEN 32
#define CAIRN_MIN_CHUNK (64u * 1024)
#define CAIRN_MAX_CHUNK (8u * 1024 * 1024)
#define CAIRN_DEFAULT_CHUNK (256u * 1024)
#define CAIRN_DEFAULT_LEVEL 3
#define CAIRN_DEFAULT_PACK (16u * 1024 * 1024)

enum cairn_blob_type { CAIRN_BLOB_DATA = 0, CAIRN_BLOB_PAGE = 1 };

typedef struct { uint8_t b[CAIRN_ID_LEN]; } cairn_id;

extern const cairn_id cairn_zero_id;

struct cairn_repo;

/* How a repository's backend transfers (S3; a local directory ignores
 * them). Zero fields take the defaults. */
struct cairn_backend_opts {
	unsigned connections; /* requests in flight at most; 0: 4 */
	uint64_t limit_upload, limit_download; /* bytes/s in all; 0: no limit */
	/* AWS-style credentials file of this repository (its [AWS_PROFILE or
	 * default] section, or key = value lines); NULL: the environment and
	 * ~/.aws/credentials */
	const char *credentials_file;
	/* SFTP: the private key (NULL: CAIRN_SFTP_IDENTITY, else the first of
	 * ~/.ssh/id_ed25519, id_ecdsa, id_rsa) and the known_hosts file (NULL:
	 * CAIRN_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts) */
	const char *identity_file;
	const char *known_hosts_file;
	/* not NULL: open with this host key file instead of a password
	 * (docs/design.md "Host keys"): the repository can then only add */
	const char *key_file;
};

/* The one line every operation a host key may not do fails with. */
#define CAIRN_HOST_KEY_REFUSAL                                                      \
	"this is a host key: it can only add backups; restores, forget, gc and key " \
	"changes need the repository password or a full key"

struct cairn_init_opts {
	uint32_t chunk_size;
	int compression_level; /* 0 = no compression */
	bool encrypt;
	const char *password; /* required when encrypt */
	/* not NULL: the new repository takes this one's chunk size,
	 * compression, encryption and master key (replication copies objects
	 * as they are); the fields above except password are ignored */
	const struct cairn_repo *replica_of;
	const struct cairn_backend_opts *backend; /* may be NULL */
	/* > 0: an immutable repository (S3 Object Lock, COMPLIANCE mode):
	 * every data and metadata object is locked for this many days from
	 * its write (docs/design.md section 20) */
	unsigned immutable_days;
	/* encrypted only: a repository for host keys (config feature
	 * "host-keys"): disk data sealed to a repository public key */
	bool host_keys;
};

int cairn_repo_init(const char *url, const struct cairn_init_opts *opts,
		    char *err, size_t errlen);

/* Opens a repository; password may be NULL for unencrypted ones.
 * Does not load the index: call cairn_repo_load_index() when needed. */
int cairn_repo_open(const char *url, const char *password,
		    struct cairn_repo **out, char *err, size_t errlen);
/* The same with transfer options for the backend (bo may be NULL). */
int cairn_repo_open_with(const char *url, const char *password,
			 const struct cairn_backend_opts *bo, struct cairn_repo **out,
			 char *err, size_t errlen);
void cairn_repo_close(struct cairn_repo *r);
DEFINE_CLEANUP(struct cairn_repo *, cairn_repo_close);

/* The repository's last failure, one line. Safe from any thread: the text
 * is the calling thread's copy, valid until its next call. */
const char *cairn_repo_error(const struct cairn_repo *r);
bool cairn_repo_encrypted(const struct cairn_repo *r);
uint32_t cairn_repo_chunk_size(const struct cairn_repo *r);
/* Workers for reading many blobs (restore, check --read-data): one per CPU,
 * or as many as the backend runs requests at once when that is more (a
 * remote store's round trips, not the CPUs, are then what limits). */
unsigned cairn_repo_read_workers(const struct cairn_repo *r);
const char *cairn_repo_id(const struct cairn_repo *r);
/* True for a repository made with host keys (config feature "host-keys"). */
bool cairn_repo_has_host_keys(const struct cairn_repo *r);
/* The name of the host key that opened r, or NULL when a password did. */
const char *cairn_repo_host_key(const struct cairn_repo *r);
/* 0 when r was opened with the password; -EPERM with
 * CAIRN_HOST_KEY_REFUSAL as its error when a host key opened it. */
int cairn_repo_need_full(struct cairn_repo *r);
/* The retention of an immutable repository in days; 0 when it is not. */
unsigned cairn_repo_immutable_days(const struct cairn_repo *r);
/* Warnings collected while loading (e.g. a damaged index file skipped). */
size_t cairn_repo_warning_count(const struct cairn_repo *r);
const char *cairn_repo_warning(const struct cairn_repo *r, size_t i);
/* Forgets the warnings once they have been shown. */
void cairn_repo_clear_warnings(struct cairn_repo *r);

int cairn_repo_load_index(struct cairn_repo *r);

/* Locks (section 10 of docs/design.md). */
int cairn_repo_lock(struct cairn_repo *r, bool exclusive);
/* The lock of a garbage collection: no other gc or exclusive holder, but
 * backups (shared) may run beside it. */
int cairn_repo_lock_gc(struct cairn_repo *r);
void cairn_repo_unlock(struct cairn_repo *r);

/* Chunk ids and blobs. */
void cairn_repo_chunk_id(const struct cairn_repo *r, const void *data,
			 size_t len, cairn_id *out);
/* Reads, decodes and verifies one blob into buf (cap >= raw_len). Returns
 * the plaintext length. Thread-safe once the index is loaded. */
int cairn_repo_read_blob(struct cairn_repo *r, const cairn_id *id, void *buf,
			 size_t cap);
/* The same for restores, which check the whole-disk digest on top: in an
 * encrypted repository the AES-GCM tag, whose AAD binds the id, is the
 * check, and the plaintext is not hashed again (a fifth of a restore's
 * CPU). check --read-data hashes everything (cairn_repo_read_blob). */
int cairn_repo_read_chunk(struct cairn_repo *r, const cairn_id *id, void *buf, size_t cap);
/* Finds a blob in the loaded index; 0 or -ENOENT. */
struct cairn_blob_info {
	uint32_t raw_len, stored_len;
};
int cairn_repo_blob_info(const struct cairn_repo *r, const cairn_id *id,
			 struct cairn_blob_info *out);
/* A blob as its pack stores it (compressed, then encrypted when the
 * repository is): what a cache outside the repository may keep without
 * holding plaintext (the disk reader hands it out, repo/disk_reader.h). */
struct cairn_stored_blob {
	const void *bytes;
	uint32_t len, raw_len;
	uint8_t type, flags;
};
/* Decodes the stored bytes of blob id into buf (cap >= raw_len) and checks
 * them as cairn_repo_read_chunk does (the AES-GCM tag, whose AAD binds the
 * id, type and flags, in an encrypted repository; the hash otherwise).
 * Returns raw_len, -EBADMSG (damaged or forged) or -ENOMEM. Thread-safe. */
int cairn_repo_decode_stored(struct cairn_repo *r, const cairn_id *id,
			     const struct cairn_stored_blob *b, void *buf, size_t cap);

/* Writer: thread-safe storage of blobs into packs + index files. */
struct cairn_writer;
int cairn_writer_new(struct cairn_repo *r, struct cairn_writer **out);
/* Stores the blob unless the repository (or this writer) already has it.
 * *added (may be NULL) tells whether it was new; *stored_bytes the bytes it
 * will occupy in the pack. */
int cairn_writer_put(struct cairn_writer *w, enum cairn_blob_type type,
		     const cairn_id *id, const void *data, size_t len,
		     bool *added, size_t *stored_bytes);
/* Writes the last pack and the remaining index entries. */
int cairn_writer_flush(struct cairn_writer *w);
void cairn_writer_free(struct cairn_writer *w);
DEFINE_CLEANUP(struct cairn_writer *, cairn_writer_free);

/* Snapshots. */
struct cairn_disk {
	char *name;
	char *format;
	char *path;
	uint64_t size;
	uint32_t chunk_size;
	uint64_t nchunks;
	cairn_id *map; /* nchunks ids; loaded by cairn_snapshot_load_map */
	size_t npages;
	cairn_id *pages;
	bool has_digest; /* false when an incremental read only changed chunks */
	bool incremental; /* only what changed since the parent was read */
	uint8_t digest[16]; /* XXH3-128, high 64 bits first */
	/* the chunk-digest form (repo/disk.h), whose cost follows the data:
	 * what writers record from format revision 2 on */
	bool has_digest2;
	uint8_t digest2[16];
	/* the anomaly guard's record (repo/anomaly.h); present only when the
	 * backup ran with the guard on */
	struct cairn_anomaly anomaly;
};

/* A firmware state file stored with a snapshot (repo/firmware.h). */
struct cairn_firmware_file {
	char *kind; /* "nvram" or "tpm" */
	char *path; /* where it was on the host backed up */
	uint32_t mode; /* permission bits */
	uint64_t size;
	uint32_t chunk_size;
	size_t nchunks;
	cairn_id *chunks; /* data blobs; the zero id for an all-zero chunk */
};

struct cairn_snapshot {
	cairn_id id;
	char *name;
	char *source;
	char *host;
	int64_t time_ns;
	char **tags;
	size_t ntags;
	bool has_parent;
	cairn_id parent;
	struct cairn_disk *disks;
	size_t ndisks;
	char *domain_xml; /* libvirt domain definition, or NULL */
	char *checkpoint; /* libvirt checkpoint taken with this snapshot, or NULL */
	/* "crash", "quiesced" (guest filesystems frozen) or "offline" (the
	 * domain was shut off); NULL for images */
	char *consistency;
	char *host_key; /* the host key that wrote it (design.md section 26), or NULL */
	/* the domain's NVRAM and TPM state (none in older snapshots) */
	struct cairn_firmware_file *firmware;
	size_t nfirmware;
	/* informational */
	uint64_t bytes_read, new_chunks, new_bytes;
};

/* True when the anomaly guard marked any disk of s suspicious. */
bool cairn_snapshot_suspicious(const struct cairn_snapshot *s);
void cairn_snapshot_free(struct cairn_snapshot *s);
DEFINE_CLEANUP(struct cairn_snapshot *, cairn_snapshot_free);

/* A manifest that cannot be read or fails its check: its bytes are not
 * trusted, so its snapshot's name and time are unknown (docs/design.md
 * section 9, "Damaged manifests"). */
struct cairn_damaged_manifest {
	char id[65]; /* the object's name under snapshots/ */
	int64_t mtime_ns; /* when the store wrote it; 0: the store does not say */
	int error; /* -EBADMSG: damaged; else why it could not be read */
};
/* Every manifest: the readable ones (chunk maps not loaded) sorted by
 * time, oldest first, and the damaged ones. */
struct cairn_snapshot_set {
	struct cairn_snapshot **v;
	size_t n;
	struct cairn_damaged_manifest *damaged;
	size_t ndamaged;
};
int cairn_snapshot_scan(struct cairn_repo *r, struct cairn_snapshot_set *out);
void cairn_snapshot_set_free(struct cairn_snapshot_set *set);
/* "damaged", or why it could not be read. */
const char *cairn_damaged_manifest_reason(const struct cairn_damaged_manifest *d);
/* "snapshot ID (written TIME) is damaged": how every command names one. */
void cairn_damaged_manifest_text(const struct cairn_damaged_manifest *d, char *out,
				 size_t len);
/* The readable snapshots of cairn_snapshot_scan; each damaged manifest
 * becomes a warning (cairn_repo_warning). */
int cairn_snapshot_list(struct cairn_repo *r, struct cairn_snapshot ***out,
			size_t *n);
void cairn_snapshot_list_free(struct cairn_snapshot **v, size_t n);
/* Resolves a snapshot spec; name may be NULL. "latest": the newest of the
 * name, refused (-EBADMSG, one line naming the damaged manifest and how to
 * choose) when a damaged manifest may be newer; "latest-readable": the
 * newest readable one on purpose, damaged ones named as warnings; else a
 * full id or a unique prefix. */
int cairn_snapshot_find(struct cairn_repo *r, const char *spec,
			const char *name, struct cairn_snapshot **out);
/* cairn_repo_load_index and cairn_snapshot_find at once: the manifests
 * are listed and read while the index is (over a WAN, round trips saved
 * before a restore or a serve can start). On failure, the index's error
 * first. */
int cairn_snapshot_find_indexed(struct cairn_repo *r, const char *spec, const char *name,
				struct cairn_snapshot **out);
int cairn_snapshot_load_map(struct cairn_repo *r, struct cairn_disk *d);
/* Stores the disks' chunk maps as pages through w, flushes w, then writes
 * the manifest. Sets s->id. */
int cairn_snapshot_save(struct cairn_repo *r, struct cairn_writer *w,
			struct cairn_snapshot *s);
/* Removes a snapshot's manifest (its data stays until gc); -EPERM when it
 * is protected. A snapshot that is already gone is not an error. */
int cairn_snapshot_forget(struct cairn_repo *r, const cairn_id *id);
/* Applies a keep policy (repo/retention.h) to the snapshots of each name
 * (names NULL/0: every name); removes what no rule keeps unless dry_run.
 * fn (may be NULL) sees every snapshot of a name, newest first, names in
 * the order of their oldest snapshot, with the rules that keep it (0:
 * removed). */
struct cairn_keep_policy;
typedef void (*cairn_forget_fn)(void *opaque, const struct cairn_snapshot *s, unsigned reasons);
int cairn_forget_by_policy(struct cairn_repo *r, const struct cairn_keep_policy *p,
			   const char *const *names, size_t nnames, bool dry_run,
			   cairn_forget_fn fn, void *opaque);
/* Protected snapshots are never forgotten (docs/design.md section 16). */
int cairn_snapshot_protect(struct cairn_repo *r, const cairn_id *id, bool on);
int cairn_snapshot_is_protected(struct cairn_repo *r, const cairn_id *id, bool *out);

/* Garbage collection (docs/design.md section 17). The caller holds the gc
 * lock (cairn_repo_lock_gc); backups may run meanwhile. */
struct cairn_gc_opts {
	/* unused bytes left in partly used packs, as a share of the used
	 * bytes; packs with the most garbage are rewritten until it holds */
	unsigned max_unused_pct;
	bool dry_run;
	/* Unix seconds gc takes as now for retention decisions (tests); 0:
	 * the clock */
	int64_t now_s;
};
struct cairn_gc_result {
	size_t snapshots, packs, packs_unused, packs_repacked, packs_orphaned;
	size_t packs_written, packs_deleted, packs_kept, lists_waiting;
	uint64_t bytes, live_bytes, unused_bytes, repacked_bytes, bytes_freed;
	uint64_t unused_left; /* garbage left in partly used packs */
	/* immutable repositories: condemned packs (and forgotten manifests)
	 * still under retention, kept for a later gc, and until when (the
	 * latest, Unix seconds); objects whose retention was extended */
	size_t packs_locked, manifests_locked, manifests_removed;
	int64_t locked_until;
	size_t retention_extended;
	int64_t retention_floor; /* every needed object is locked until at least this */
	size_t temps_removed; /* leftovers of writers that crashed mid-put */
};
int cairn_gc(struct cairn_repo *r, const struct cairn_gc_opts *o, struct cairn_gc_result *res);

/* Replication (docs/design.md section 19). */
/* True when objects of one can be copied into the other unchanged: same
 * chunk size, encryption and master key (cairn init --replica-of). */
bool cairn_repo_is_replica_of(const struct cairn_repo *a, const struct cairn_repo *b);
/* 1 when dir/<id> exists (*size set when size is not NULL), 0 when not. */
int cairn_repo_has_object(struct cairn_repo *r, const char *dir, const cairn_id *id,
			  uint64_t *size);
/* Copies data/, index/ or snapshots/ object id from src to dst after
 * checking it against its name; *bytes (may be NULL) its size. Errors are
 * reported through src's error. Thread-safe. */
int cairn_repo_copy_object(struct cairn_repo *src, struct cairn_repo *dst, const char *dir,
			   const cairn_id *id, uint64_t *bytes);
/* Reads dir/<id> back and checks it against its name (-EBADMSG if not). */
int cairn_repo_verify_object(struct cairn_repo *r, const char *dir, const cairn_id *id);
/* The pack holding a blob in the loaded index; -ENOENT when none. */
int cairn_repo_blob_pack(struct cairn_repo *r, const cairn_id *blob, cairn_id *pack);
bool cairn_repo_has_blob(struct cairn_repo *r, const cairn_id *blob);
/* Writes one index file for packs already in r (from their directories)
 * and adds them to the loaded index. */
int cairn_repo_index_packs(struct cairn_repo *r, const cairn_id *packs, size_t n);

/* Recovery tests (cairn verify-boot), kept as records beside the
 * snapshots (docs/design.md section 15). */
struct cairn_verification {
	cairn_id snapshot;
	int64_t time_ns;
	char *host;
	bool ok;
	char *method; /* what proved the boot: "agent", "console", "script" */
	double boot_seconds; /* start to success signal (or to giving up) */
	char *detail; /* one line */
};
int cairn_verification_save(struct cairn_repo *r, const struct cairn_verification *v);
/* Every record, oldest first; damaged ones are skipped with a warning. */
int cairn_verification_list(struct cairn_repo *r, struct cairn_verification **out,
			    size_t *n);
void cairn_verification_free(struct cairn_verification *v);
void cairn_verification_list_free(struct cairn_verification *v, size_t n);

const struct cairn_disk *cairn_snapshot_disk(const struct cairn_snapshot *s,
					     const char *name);
/* The snapshot's disk names, ", "-separated, for messages (truncated to len). */
void cairn_snapshot_disk_names(const struct cairn_snapshot *s, char *out, size_t len);

/* Statistics over the whole repository (index loaded). */
struct cairn_stats {
	uint64_t snapshots;
	uint64_t logical_bytes; /* sum of disk sizes over all snapshots */
	uint64_t referenced_bytes; /* non-zero chunk bytes over all snapshots */
	uint64_t unique_chunks;
	uint64_t unique_raw_bytes;
	uint64_t stored_bytes; /* bytes of all packs */
	uint64_t packs;
	uint64_t index_files;
};
int cairn_repo_stats(struct cairn_repo *r, struct cairn_stats *st);

typedef void (*cairn_report_fn)(void *opaque, const char *line);

/* Objects named by their hash whose current version was overwritten, in
 * a store that keeps older versions (a versioned S3 bucket;
 * docs/design.md section 23): each is reported on one line through
 * report, and with repair its newest older version that matches its name
 * is put back (reported through repaired). Other stores: nothing to do. */
struct cairn_overwrite_opts {
	bool repair;
	cairn_report_fn report, repaired; /* may be NULL */
	/* why the scan could not run (credentials that may not list versions,
	 * such as a backup host's); not a problem. May be NULL. */
	cairn_report_fn notice;
	void *opaque;
};
struct cairn_overwrite_result {
	bool versioned; /* the store keeps versions: the scan ran */
	size_t found; /* overwritten objects */
	size_t restored; /* of those, put back */
	size_t unrepairable; /* of those, with no older version matching */
};
int cairn_repo_overwrite_scan(struct cairn_repo *r, const struct cairn_overwrite_opts *o,
			      struct cairn_overwrite_result *res);

/* check: structure always, blob data when read_data. Problems are reported
 * through the callback (one line each) and counted in the return value
 * (>= 0 problems; < 0 on an error that stopped the check). */
struct cairn_check_opts {
	bool read_data;
	/* with read_data: 0 reads every pack; else this share of the packs,
	 * those read longest ago (or never) first */
	unsigned subset_pct;
	unsigned part, nparts; /* else part i of n (1 <= i <= n), by pack id */
	int threads; /* 0: one per CPU */
	bool dry_records; /* do not record what was read or found damaged */
	size_t *packs_read; /* optional out: packs read in full */
	/* first, overwritten objects (cairn_repo_overwrite_scan): reported as
	 * problems (put back too with repair, and reported through repaired) */
	bool repair;
	cairn_report_fn repaired;
	cairn_report_fn notice; /* the scan could not run (not a problem) */
	size_t *restored; /* optional out: objects put back */
	cairn_report_fn report;
	void *opaque;
};
/* Besides reporting, records the packs read in full without a problem
 * (checks/) and the damaged blobs and packs (damaged/): writers store a
 * damaged blob again rather than reuse it, so the next backup of a source
 * that still holds the data heals it (docs/design.md section 18). */
int cairn_repo_check(struct cairn_repo *r, const struct cairn_check_opts *o);
/* False when a blob must not be reused by id alone: it is missing, damaged
 * or condemned; a backup then reads and stores the data again. */
bool cairn_repo_blob_reusable(struct cairn_repo *r, const cairn_id *id);

/* repair index: writes one new index file covering every pack found, then
 * removes the old index files. Returns the number of packs indexed. */
int cairn_repo_repair_index(struct cairn_repo *r, cairn_report_fn report,
			    void *opaque);

/* Keys. */
struct cairn_key_info {
	char id[65];
	char created[40];
	char host[128];
	bool current;
};
int cairn_key_list(struct cairn_repo *r, struct cairn_key_info **out,
		   size_t *n);
int cairn_key_add(struct cairn_repo *r, const char *password, char id[65]);
int cairn_key_remove(struct cairn_repo *r, const char *id_prefix);

/* Host keys (docs/design.md "Host keys"): key files kept on a backup host
 * that can add backups but not read disk data; each has a record
 * hostkeys/<name> in the repository, and removing the record revokes it. */
struct cairn_hostkey_info {
	char name[65];
	char host_id[65];
	char created[40];
	char host[128];
	char user[64];
};
/* Writes the key file at path (mode 0600, never over an existing file)
 * and the record. Names: 1-64 of letters, digits and . _ - @ +. */
int cairn_hostkey_add(struct cairn_repo *r, const char *name, const char *path);
int cairn_hostkey_remove(struct cairn_repo *r, const char *name);
int cairn_hostkey_list(struct cairn_repo *r, struct cairn_hostkey_info **out, size_t *n);

#endif
