/* Unit tests for blob coding (docs/design.md section 5), chunk ids
 * (section 4) and envelopes (section 8). */
#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/internal.h"
#include "helpers.h"

/* ---- helpers ------------------------------------------------------------ */

static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rng_next(&seed) >> 56);
}

static void fill_compressible(uint8_t *p, size_t len)
{
	static const char text[] = "cairn compressible test data; ";
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)text[i % (sizeof(text) - 1)];
}

static void hex_to_id(const char *hex, cairn_id *id)
{
	assert_int_equal(hex_decode(hex, id->b, CAIRN_ID_LEN), 0);
}

struct fixture {
	char dir[64];
	struct cairn_repo *plain; /* unencrypted, zstd level 3 */
	struct cairn_repo *enc; /* encrypted, zstd level 3 */
};

static int group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128], err[256] = "";
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-blob-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	struct cairn_init_opts o = { .chunk_size = CAIRN_DEFAULT_CHUNK,
				     .compression_level = 3 };
	snprintf(path, sizeof(path), "%s/plain", f->dir);
	if (cairn_repo_init(path, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(path, NULL, &f->plain, err, sizeof(err)) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	o.encrypt = true;
	o.password = "pw";
	snprintf(path, sizeof(path), "%s/enc", f->dir);
	if (cairn_repo_init(path, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(path, "pw", &f->enc, err, sizeof(err)) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	if (f->plain)
		cairn_repo_close(f->plain);
	if (f->enc)
		cairn_repo_close(f->enc);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Encodes data with r into a fresh allocation and fills the entry a reader
 * would find in the index. */
static uint8_t *encode(struct cairn_repo *r, enum cairn_blob_type type,
		       const void *data, size_t len, struct idx_entry *e)
{
	struct scratch *sc = scratch_get(r);
	assert_non_null(sc);
	memset(e, 0, sizeof(*e));
	cairn_repo_chunk_id(r, data, len, &e->id);
	e->type = (uint8_t)type;
	e->raw_len = (uint32_t)len;
	uint8_t flags = 0xee; /* blob_encode must set every bit it reports */
	assert_int_equal(blob_encode(r, sc, type, &e->id, data, len, NULL, &flags), 0);
	assert_int_equal(flags & ~7u, 0);
	e->flags = flags;
	e->stored_len = (uint32_t)sc->a.len;
	uint8_t *out = malloc(sc->a.len ? sc->a.len : 1);
	assert_non_null(out);
	memcpy(out, sc->a.p, sc->a.len);
	scratch_put(r, sc);
	return out;
}

/* Decodes into a fresh buffer; returns blob_decode's result and, on
 * success, checks the plaintext against want. Decodes twice, hashing the
 * plaintext again and trusting the AES-GCM tag (restores): every damage
 * these tests make must be caught either way. */
static int decode(struct cairn_repo *r, const struct idx_entry *e,
		  const uint8_t *stored, const void *want)
{
	int rcs[2];
	for (int rehash = 0; rehash < 2; rehash++) {
		struct scratch *sc = scratch_get(r);
		assert_non_null(sc);
		uint8_t *out = malloc(e->raw_len ? e->raw_len : 1);
		assert_non_null(out);
		rcs[rehash] = blob_decode(r, sc, e, stored, out, rehash);
		scratch_put(r, sc);
		if (rcs[rehash] == 0 && want)
			assert_memory_equal(out, want, e->raw_len);
		free(out);
	}
	assert_int_equal(rcs[0], rcs[1]);
	return rcs[1];
}

/* ---- chunk ids ---------------------------------------------------------- */

static void test_chunk_id_sha256(void **state)
{
	struct fixture *f = *state;
	cairn_id id, want;
	cairn_repo_chunk_id(f->plain, "abc", 3, &id);
	hex_to_id("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &want);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	cairn_repo_chunk_id(f->plain, "", 0, &id);
	hex_to_id("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &want);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	/* a zero chunk has a real hash (ZERO_ID is a reserved marker only) */
	uint8_t *z = calloc(1, 65536);
	assert_non_null(z);
	cairn_repo_chunk_id(f->plain, z, 65536, &id);
	hex_to_id("de2f256064a0af797747c2b97505dc0b9f3df0de4f489eac731c23ae9ca9cc31", &want);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	free(z);
}

static void test_chunk_id_hmac(void **state)
{
	struct fixture *f = *state;
	cairn_id id, sha, want;
	cairn_repo_chunk_id(f->enc, "abc", 3, &id);
	hex_to_id("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &sha);
	assert_memory_not_equal(id.b, sha.b, CAIRN_ID_LEN);
	/* HMAC-SHA-256 keyed with K_id */
	unsigned int n = CAIRN_ID_LEN;
	HMAC(EVP_sha256(), f->enc->k_id, KEY_LEN, (const uint8_t *)"abc", 3, want.b, &n);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	/* and never keyed with K_enc */
	HMAC(EVP_sha256(), f->enc->k_enc, KEY_LEN, (const uint8_t *)"abc", 3, want.b, &n);
	assert_memory_not_equal(id.b, want.b, CAIRN_ID_LEN);
	/* deterministic */
	cairn_id again;
	cairn_repo_chunk_id(f->enc, "abc", 3, &again);
	assert_memory_equal(id.b, again.b, CAIRN_ID_LEN);
}

/* A hand-built repository with a known K_id against a precomputed vector:
 * HMAC-SHA-256(key = 00 01 .. 1f, "abc"). */
static void test_chunk_id_hmac_vector(void **state)
{
	(void)state;
	struct cairn_repo *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	pthread_mutex_init(&r->lock, NULL);
	r->encrypted = true;
	for (int i = 0; i < KEY_LEN; i++) {
		r->k_id[i] = (uint8_t)i;
		r->k_enc[i] = (uint8_t)(0x80 + i);
	}
	cairn_id id, want;
	cairn_repo_chunk_id(r, "abc", 3, &id);
	hex_to_id("f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47", &want);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	r->encrypted = false;
	cairn_repo_chunk_id(r, "abc", 3, &id);
	hex_to_id("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &want);
	assert_memory_equal(id.b, want.b, CAIRN_ID_LEN);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* ---- blob round trips --------------------------------------------------- */

static void round_trip(struct cairn_repo *r, const uint8_t *data, size_t len,
		       enum cairn_blob_type type, uint8_t want_flags,
		       bool want_shorter)
{
	struct idx_entry e;
	uint8_t *stored = encode(r, type, data, len, &e);
	assert_int_equal(e.flags, want_flags);
	size_t overhead = (want_flags & BLOB_F_AES) ? NONCE_LEN + TAG_LEN : 0;
	if (want_shorter)
		assert_true(e.stored_len < len / 4 + overhead);
	else
		assert_int_equal(e.stored_len, len + overhead);
	if (!(want_flags & BLOB_F_AES) && !(want_flags & BLOB_F_ZSTD))
		assert_memory_equal(stored, data, len); /* stored as is */
	if (want_flags & BLOB_F_AES && len >= 64)
		/* ciphertext does not contain the plaintext */
		assert_null(memmem(stored, e.stored_len, data, 64));
	assert_int_equal(decode(r, &e, stored, data), 0);
	free(stored);
}

static void test_round_trip_compressible(void **state)
{
	struct fixture *f = *state;
	size_t len = 256 * 1024;
	uint8_t *d = malloc(len);
	assert_non_null(d);
	fill_compressible(d, len);
	round_trip(f->plain, d, len, CAIRN_BLOB_DATA, BLOB_F_ZSTD, true);
	round_trip(f->enc, d, len, CAIRN_BLOB_DATA, BLOB_F_ZSTD | BLOB_F_AES, true);
	round_trip(f->plain, d, len, CAIRN_BLOB_PAGE, BLOB_F_ZSTD, true);
	round_trip(f->enc, d, len, CAIRN_BLOB_PAGE, BLOB_F_ZSTD | BLOB_F_AES, true);
	/* the zstd frame is a real zstd frame of the plaintext */
	struct idx_entry e;
	uint8_t *stored = encode(f->plain, CAIRN_BLOB_DATA, d, len, &e);
	assert_int_equal(ZSTD_getFrameContentSize(stored, e.stored_len), len);
	uint8_t *back = malloc(len);
	assert_non_null(back);
	assert_int_equal(ZSTD_decompress(back, len, stored, e.stored_len), len);
	assert_memory_equal(back, d, len);
	free(back);
	free(stored);
	free(d);
}

static void test_round_trip_random(void **state)
{
	struct fixture *f = *state;
	size_t len = 256 * 1024;
	uint8_t *d = malloc(len);
	assert_non_null(d);
	fill_random(d, len, 99);
	/* incompressible: stored without the zstd flag */
	round_trip(f->plain, d, len, CAIRN_BLOB_DATA, 0, false);
	round_trip(f->enc, d, len, CAIRN_BLOB_DATA, BLOB_F_AES, false);
	/* a tiny blob does not compress either */
	round_trip(f->plain, d, 5, CAIRN_BLOB_DATA, 0, false);
	round_trip(f->enc, d, 5, CAIRN_BLOB_DATA, BLOB_F_AES, false);
	round_trip(f->plain, d, 1, CAIRN_BLOB_DATA, 0, false);
	round_trip(f->enc, d, 1, CAIRN_BLOB_DATA, BLOB_F_AES, false);
	free(d);
}

static void test_round_trip_empty(void **state)
{
	struct fixture *f = *state;
	uint8_t none[1] = { 0 };
	round_trip(f->plain, none, 0, CAIRN_BLOB_DATA, 0, false);
	round_trip(f->enc, none, 0, CAIRN_BLOB_DATA, BLOB_F_AES, false);
}

static void test_round_trip_max_chunk(void **state)
{
	struct fixture *f = *state;
	size_t len = CAIRN_MAX_CHUNK;
	uint8_t *d = malloc(len);
	assert_non_null(d);
	fill_random(d, len / 2, 7);
	fill_compressible(d + len / 2, len / 2);
	struct idx_entry e;
	uint8_t *stored = encode(f->enc, CAIRN_BLOB_DATA, d, len, &e);
	assert_int_equal(e.flags, BLOB_F_ZSTD | BLOB_F_AES);
	assert_true(e.stored_len < len / 2 + len / 8);
	assert_int_equal(decode(f->enc, &e, stored, d), 0);
	free(stored);
	free(d);
}

static void test_level_zero(void **state)
{
	struct fixture *f = *state;
	size_t len = 65536;
	uint8_t *d = malloc(len);
	assert_non_null(d);
	fill_compressible(d, len);
	int lp = f->plain->level, le = f->enc->level;
	f->plain->level = 0;
	f->enc->level = 0;
	round_trip(f->plain, d, len, CAIRN_BLOB_DATA, 0, false);
	round_trip(f->enc, d, len, CAIRN_BLOB_DATA, BLOB_F_AES, false);
	f->plain->level = lp;
	f->enc->level = le;
	free(d);
}

/* A repository created with compression level 0 ("none") never sets the
 * zstd flag. */
static void test_level_zero_repo(void **state)
{
	struct fixture *f = *state;
	char path[128], err[256] = "";
	snprintf(path, sizeof(path), "%s/none", f->dir);
	struct cairn_init_opts o = { .chunk_size = CAIRN_MIN_CHUNK, .compression_level = 0 };
	assert_int_equal(cairn_repo_init(path, &o, err, sizeof(err)), 0);
	struct cairn_repo *r = NULL;
	assert_int_equal(cairn_repo_open(path, NULL, &r, err, sizeof(err)), 0);
	assert_int_equal(r->level, 0);
	assert_false(cairn_repo_encrypted(r));
	assert_int_equal(cairn_repo_chunk_size(r), CAIRN_MIN_CHUNK);
	uint8_t d[4096];
	fill_compressible(d, sizeof(d));
	round_trip(r, d, sizeof(d), CAIRN_BLOB_DATA, 0, false);
	cairn_repo_close(r);
}

/* ---- damage ------------------------------------------------------------- */

/* Flips bits 0 and 7 of every stored byte. With strict (authenticated
 * blobs) every flip must fail with -EBADMSG; otherwise a flip may only
 * go unnoticed when it decodes to the very same plaintext (e.g. an unused
 * bit of a zstd frame), which decode() then checks. */
static void flip_every_byte(struct cairn_repo *r, const uint8_t *data, size_t len,
			    bool strict)
{
	struct idx_entry e;
	uint8_t *stored = encode(r, CAIRN_BLOB_DATA, data, len, &e);
	size_t caught = 0, flips = 0;
	assert_int_equal(decode(r, &e, stored, data), 0);
	for (size_t i = 0; i < e.stored_len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			stored[i] ^= (uint8_t)(1u << bit);
			int rc = decode(r, &e, stored, data);
			if (rc != -EBADMSG && (strict || rc != 0))
				fail_msg("flipping bit %d of byte %zu/%u (flags %u) gave %d",
					 bit, i, e.stored_len, e.flags, rc);
			caught += rc == -EBADMSG;
			flips++;
			stored[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_true(caught * 10 >= flips * 9);
	assert_int_equal(decode(r, &e, stored, data), 0);
	free(stored);
}

static void test_tamper_encrypted(void **state)
{
	struct fixture *f = *state;
	uint8_t d[3000];
	fill_compressible(d, sizeof(d)); /* zstd + aes */
	flip_every_byte(f->enc, d, sizeof(d), true);
	fill_random(d, 300, 5); /* aes only */
	flip_every_byte(f->enc, d, 300, true);
}

static void test_tamper_plain(void **state)
{
	struct fixture *f = *state;
	uint8_t d[3000];
	/* unencrypted blobs are protected by the id check */
	fill_compressible(d, sizeof(d));
	flip_every_byte(f->plain, d, sizeof(d), false);
	fill_random(d, 300, 6); /* stored raw: every flip changes the hash */
	flip_every_byte(f->plain, d, 300, true);
}

static void check_entry_damage(struct cairn_repo *r, const uint8_t *data, size_t len)
{
	struct idx_entry e, bad;
	uint8_t *stored = encode(r, CAIRN_BLOB_DATA, data, len, &e);
	assert_int_equal(decode(r, &e, stored, data), 0);

	bad = e; /* compression flag toggled */
	bad.flags ^= BLOB_F_ZSTD;
	assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	bad = e; /* encryption flag toggled */
	bad.flags ^= BLOB_F_AES;
	assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	bad = e; /* wrong id */
	bad.id.b[7] ^= 1;
	assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	bad = e; /* wrong plaintext length */
	bad.raw_len = e.raw_len - 1;
	assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	bad = e; /* truncated stored bytes */
	bad.stored_len = e.stored_len - 1;
	assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	if (r->encrypted) {
		bad = e; /* type is authenticated */
		bad.type = CAIRN_BLOB_PAGE;
		assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
		bad = e; /* unknown flag bits are authenticated */
		bad.flags |= 4;
		assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
		bad = e; /* shorter than nonce + tag */
		bad.stored_len = NONCE_LEN + TAG_LEN - 1;
		assert_int_equal(decode(r, &bad, stored, NULL), -EBADMSG);
	}
	assert_int_equal(decode(r, &e, stored, data), 0);
	free(stored);
}

static void test_wrong_entry(void **state)
{
	struct fixture *f = *state;
	uint8_t d[8192];
	fill_compressible(d, sizeof(d));
	check_entry_damage(f->enc, d, sizeof(d));
	check_entry_damage(f->plain, d, sizeof(d));
	fill_random(d, sizeof(d), 3);
	check_entry_damage(f->enc, d, sizeof(d));
	check_entry_damage(f->plain, d, sizeof(d));
}

/* A blob of one repository is rejected by another (other key / id). */
static void test_cross_repo(void **state)
{
	struct fixture *f = *state;
	uint8_t d[4096];
	fill_random(d, sizeof(d), 11);
	struct idx_entry e;
	uint8_t *stored = encode(f->enc, CAIRN_BLOB_DATA, d, sizeof(d), &e);
	assert_int_equal(decode(f->plain, &e, stored, NULL), -EBADMSG);
	free(stored);
	stored = encode(f->plain, CAIRN_BLOB_DATA, d, sizeof(d), &e);
	/* forged plaintext blob in an encrypted repository */
	assert_int_equal(decode(f->enc, &e, stored, NULL), -EBADMSG);
	free(stored);
}

/* Two encodings of the same blob differ (random nonce) but both decode. */
static void test_nonce_fresh(void **state)
{
	struct fixture *f = *state;
	uint8_t d[1000];
	fill_random(d, sizeof(d), 12);
	struct idx_entry a, b;
	uint8_t *sa = encode(f->enc, CAIRN_BLOB_DATA, d, sizeof(d), &a);
	uint8_t *sb = encode(f->enc, CAIRN_BLOB_DATA, d, sizeof(d), &b);
	assert_int_equal(a.stored_len, b.stored_len);
	assert_memory_not_equal(sa, sb, NONCE_LEN);
	assert_memory_not_equal(sa + NONCE_LEN, sb + NONCE_LEN, a.stored_len - NONCE_LEN);
	assert_int_equal(decode(f->enc, &a, sa, d), 0);
	assert_int_equal(decode(f->enc, &b, sb, d), 0);
	free(sa);
	free(sb);
}

static void test_scratch_pool(void **state)
{
	struct fixture *f = *state;
	struct scratch *a = scratch_get(f->plain), *b = scratch_get(f->plain);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_non_null(a->zc);
	assert_non_null(a->zd);
	scratch_put(f->plain, a);
	assert_ptr_equal(scratch_get(f->plain), a); /* reused, LIFO */
	scratch_put(f->plain, b);
	scratch_put(f->plain, a);
}

/* ---- envelopes ---------------------------------------------------------- */

static void test_envelope_round_trip(void **state)
{
	struct fixture *f = *state;
	size_t len = 100000;
	uint8_t *d = malloc(len);
	assert_non_null(d);
	fill_compressible(d, len);
	fill_random(d + 1000, 500, 4);
	struct cairn_repo *repos[2] = { f->plain, f->enc };
	for (int ri = 0; ri < 2; ri++) {
		struct cairn_repo *r = repos[ri];
		for (int kind = ENV_INDEX; kind <= ENV_PACKDIR; kind++) {
			struct buf sealed = { 0 }, back = { 0 };
			assert_int_equal(envelope_seal(r, kind, d, len, &sealed), 0);
			assert_true(sealed.len > 4);
			assert_true(sealed.len < len / 2);
			assert_int_equal(sealed.p[0], 'C');
			assert_int_equal(sealed.p[1], 1);
			assert_int_equal(sealed.p[2], kind);
			assert_int_equal(sealed.p[3],
					 r->encrypted ? BLOB_F_ZSTD | BLOB_F_AES : BLOB_F_ZSTD);
			if (!r->encrypted)
				/* payload is a plain zstd frame */
				assert_int_equal(ZSTD_getFrameContentSize(sealed.p + 4,
									  sealed.len - 4),
						 len);
			assert_int_equal(envelope_open(r, kind, sealed.p, sealed.len, &back), 0);
			assert_int_equal(back.len, len);
			assert_memory_equal(back.p, d, len);
			/* wrong kind */
			int other = kind == ENV_INDEX ? ENV_SNAPSHOT : ENV_INDEX;
			assert_int_equal(envelope_open(r, other, sealed.p, sealed.len, &back),
					 -EBADMSG);
			buf_free(&sealed);
			buf_free(&back);
		}
	}
	free(d);
}

static void test_envelope_empty(void **state)
{
	struct fixture *f = *state;
	struct cairn_repo *repos[2] = { f->plain, f->enc };
	for (int ri = 0; ri < 2; ri++) {
		struct buf sealed = { 0 }, back = { 0 };
		assert_int_equal(envelope_seal(repos[ri], ENV_SNAPSHOT, "", 0, &sealed), 0);
		assert_int_equal(buf_append(&back, "junk", 4), 0);
		assert_int_equal(envelope_open(repos[ri], ENV_SNAPSHOT, sealed.p,
					       sealed.len, &back),
				 0);
		assert_int_equal(back.len, 0);
		buf_free(&sealed);
		buf_free(&back);
	}
}

static void test_envelope_tamper(void **state)
{
	struct fixture *f = *state;
	const char msg[] = "{\"version\":1,\"name\":\"vm1\",\"disks\":[]}";
	struct buf sealed = { 0 }, back = { 0 };
	assert_int_equal(envelope_seal(f->enc, ENV_SNAPSHOT, msg, sizeof(msg), &sealed), 0);
	assert_int_equal(sealed.p[3], BLOB_F_ZSTD | BLOB_F_AES);
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.p[i] ^= 0x01;
		int rc = envelope_open(f->enc, ENV_SNAPSHOT, sealed.p, sealed.len, &back);
		if (rc != -EBADMSG)
			fail_msg("flipped byte %zu/%zu of an envelope: %d", i, sealed.len, rc);
		sealed.p[i] ^= 0x01;
	}
	/* truncations */
	for (size_t l = 0; l < sealed.len; l++)
		assert_int_equal(envelope_open(f->enc, ENV_SNAPSHOT, sealed.p, l, &back),
				 -EBADMSG);
	assert_int_equal(envelope_open(f->enc, ENV_SNAPSHOT, sealed.p, sealed.len, &back), 0);
	assert_int_equal(back.len, sizeof(msg));
	assert_memory_equal(back.p, msg, sizeof(msg));

	/* an encrypted envelope in a plain repository and vice versa */
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, sealed.p, sealed.len, &back),
			 -EBADMSG);
	struct buf plain = { 0 };
	assert_int_equal(envelope_seal(f->plain, ENV_SNAPSHOT, msg, sizeof(msg), &plain), 0);
	assert_int_equal(envelope_open(f->enc, ENV_SNAPSHOT, plain.p, plain.len, &back),
			 -EBADMSG);
	/* header checks in a plain repository */
	plain.p[0] = 'D';
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, plain.len, &back),
			 -EBADMSG);
	plain.p[0] = 'C';
	plain.p[1] = 2; /* unknown version */
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, plain.len, &back),
			 -EBADMSG);
	plain.p[1] = 1;
	plain.p[3] |= 4; /* unknown flag */
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, plain.len, &back),
			 -EBADMSG);
	plain.p[3] &= (uint8_t)~4;
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, 3, &back), -EBADMSG);
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, 4, &back), -EBADMSG);
	assert_int_equal(envelope_open(f->plain, ENV_SNAPSHOT, plain.p, plain.len, &back), 0);
	assert_memory_equal(back.p, msg, sizeof(msg));
	buf_free(&plain);
	buf_free(&sealed);
	buf_free(&back);
}

/* An envelope sealed by one encrypted repository does not open in another
 * one (different K_enc). */
static void test_envelope_other_key(void **state)
{
	struct fixture *f = *state;
	struct cairn_repo *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	pthread_mutex_init(&r->lock, NULL);
	r->encrypted = true;
	memset(r->k_enc, 0x42, KEY_LEN);
	struct buf sealed = { 0 }, back = { 0 };
	assert_int_equal(envelope_seal(r, ENV_INDEX, "hello", 5, &sealed), 0);
	assert_int_equal(envelope_open(r, ENV_INDEX, sealed.p, sealed.len, &back), 0);
	assert_int_equal(back.len, 5);
	assert_memory_equal(back.p, "hello", 5);
	assert_int_equal(envelope_open(f->enc, ENV_INDEX, sealed.p, sealed.len, &back),
			 -EBADMSG);
	buf_free(&sealed);
	buf_free(&back);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_id_sha256),
		cmocka_unit_test(test_chunk_id_hmac),
		cmocka_unit_test(test_chunk_id_hmac_vector),
		cmocka_unit_test(test_round_trip_compressible),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_round_trip_empty),
		cmocka_unit_test(test_round_trip_max_chunk),
		cmocka_unit_test(test_level_zero),
		cmocka_unit_test(test_level_zero_repo),
		cmocka_unit_test(test_tamper_encrypted),
		cmocka_unit_test(test_tamper_plain),
		cmocka_unit_test(test_wrong_entry),
		cmocka_unit_test(test_cross_repo),
		cmocka_unit_test(test_nonce_fresh),
		cmocka_unit_test(test_scratch_pool),
		cmocka_unit_test(test_envelope_round_trip),
		cmocka_unit_test(test_envelope_empty),
		cmocka_unit_test(test_envelope_tamper),
		cmocka_unit_test(test_envelope_other_key),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
