/* Unit tests for host keys (docs/design.md "Host keys"): X25519 against
 * RFC 7748, sealing and opening disk data (seal.c), sealed blobs in a
 * host-keys repository (blob.c), and host key files: written, opened,
 * refused when damaged, of another repository, or revoked (hostkey.c). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "repo/keys.h"
#include "helpers.h"

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	assert_int_equal(hex_decode(hex, out, len), 0);
}

/* ---- X25519 and sealing --------------------------------------------------- */

static void test_x25519_rfc7748(void **state)
{
	(void)state;
	uint8_t a[X25519_LEN], b[X25519_LEN], apub[X25519_LEN], bpub[X25519_LEN];
	uint8_t want[X25519_LEN], got[X25519_LEN], s1[X25519_LEN], s2[X25519_LEN];
	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, X25519_LEN);
	unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b, X25519_LEN);
	assert_int_equal(x25519_public(a, apub), 0);
	unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want, X25519_LEN);
	assert_memory_equal(apub, want, X25519_LEN);
	assert_int_equal(x25519_public(b, bpub), 0);
	assert_int_equal(x25519_shared(a, bpub, s1), 0);
	assert_int_equal(x25519_shared(b, apub, s2), 0);
	unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", got, X25519_LEN);
	assert_memory_equal(s1, got, X25519_LEN);
	assert_memory_equal(s2, got, X25519_LEN);
	/* a low-order peer key gives no secret: refused, not an all-zero key */
	uint8_t zero[X25519_LEN] = { 0 };
	assert_int_equal(x25519_shared(a, zero, s1), -EBADMSG);
}

struct sealed {
	uint8_t priv[X25519_LEN], pub[X25519_LEN];
	uint8_t plain[1000], out[1000 + SEAL_OVERHEAD], back[1000];
	struct seal_key w;
};

static void seal_one(struct sealed *s)
{
	assert_int_equal(x25519_keypair(s->priv, s->pub), 0);
	for (size_t i = 0; i < sizeof(s->plain); i++)
		s->plain[i] = (uint8_t)(i * 7);
	assert_int_equal(seal_key_new(s->pub, &s->w), 0);
	assert_int_equal(seal_blob(&s->w, "aad", 3, s->plain, sizeof(s->plain), s->out), 0);
	assert_memory_equal(s->out, s->w.eph_pub, X25519_LEN);
}

static int open_with(const struct sealed *s, const uint8_t priv[X25519_LEN], const char *aad,
		     uint8_t *back)
{
	struct seal_key k;
	int rc = seal_key_derive(priv, s->pub, s->out, &k);
	if (rc < 0)
		return rc;
	return open_sealed(&k, aad, strlen(aad), s->out, sizeof(s->out), back);
}

static void test_seal_roundtrip(void **state)
{
	(void)state;
	struct sealed s;
	seal_one(&s);
	struct seal_key r;
	assert_int_equal(seal_key_derive(s.priv, s.pub, s.out, &r), 0);
	assert_memory_equal(r.key, s.w.key, KEY_LEN); /* both sides agree */
	assert_int_equal(open_with(&s, s.priv, "aad", s.back), 0);
	assert_memory_equal(s.back, s.plain, sizeof(s.plain));
	/* two seal keys for one public key differ (one ephemeral key each) */
	struct seal_key w2;
	assert_int_equal(seal_key_new(s.pub, &w2), 0);
	assert_memory_not_equal(w2.eph_pub, s.w.eph_pub, X25519_LEN);
	assert_memory_not_equal(w2.key, s.w.key, KEY_LEN);
}

static void test_seal_refusals(void **state)
{
	(void)state;
	struct sealed s;
	seal_one(&s);
	uint8_t other[X25519_LEN], other_pub[X25519_LEN];
	assert_int_equal(x25519_keypair(other, other_pub), 0);
	assert_int_equal(open_with(&s, other, "aad", s.back), -EBADMSG); /* wrong private key */
	assert_int_equal(open_with(&s, s.priv, "aae", s.back), -EBADMSG); /* other id/type/flags */
	s.out[X25519_LEN + NONCE_LEN + 10] ^= 1; /* ciphertext */
	assert_int_equal(open_with(&s, s.priv, "aad", s.back), -EBADMSG);
	s.out[X25519_LEN + NONCE_LEN + 10] ^= 1;
	s.out[5] ^= 1; /* the ephemeral key: another shared secret */
	int rc = open_with(&s, s.priv, "aad", s.back);
	assert_true(rc == -EBADMSG);
	s.out[5] ^= 1;
	/* a key derived for one ephemeral key opens no blob of another */
	struct seal_key k;
	assert_int_equal(seal_key_derive(s.priv, s.pub, s.out, &k), 0);
	k.eph_pub[0] ^= 1;
	assert_int_equal(open_sealed(&k, "aad", 3, s.out, sizeof(s.out), s.back), -EBADMSG);
	assert_int_equal(open_sealed(&k, "aad", 3, s.out, SEAL_OVERHEAD - 1, s.back), -EBADMSG);
	/* K_enc-style opening of the bytes after the ephemeral key fails too */
	assert_int_equal(aead_open(s.w.eph_pub, "aad", 3, s.out + X25519_LEN,
				   sizeof(s.out) - X25519_LEN, s.back),
			 -EBADMSG);
}

static void test_seal_cache(void **state)
{
	(void)state;
	uint8_t priv[X25519_LEN], pub[X25519_LEN];
	assert_int_equal(x25519_keypair(priv, pub), 0);
	struct seal_cache c = { 0 };
	struct seal_key w[SEAL_CACHE + 1];
	const struct seal_key *k, *again;
	for (int i = 0; i <= SEAL_CACHE; i++) {
		assert_int_equal(seal_key_new(pub, &w[i]), 0);
		assert_int_equal(seal_cache_key(&c, priv, pub, w[i].eph_pub, &k), 0);
		assert_memory_equal(k->key, w[i].key, KEY_LEN);
	}
	assert_int_equal(c.n, SEAL_CACHE);
	assert_int_equal(seal_cache_key(&c, priv, pub, w[SEAL_CACHE].eph_pub, &again), 0);
	assert_ptr_equal(again, k); /* found, not derived again */
	/* the oldest was pushed out and comes back right */
	assert_int_equal(seal_cache_key(&c, priv, pub, w[0].eph_pub, &k), 0);
	assert_memory_equal(k->key, w[0].key, KEY_LEN);
}

/* ---- a host-keys repository ----------------------------------------------- */

struct fixture {
	char dir[64], repo[96], plain[96], keyfile[128];
	struct cairn_repo *r; /* opened with the password */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256] = "";
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-test-hostkeys-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->plain, sizeof(f->plain), "%s/plain", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/h1.key", f->dir);
	struct cairn_init_opts o = { .chunk_size = CAIRN_DEFAULT_CHUNK, .compression_level = 3,
				     .encrypt = true, .password = "pw", .host_keys = true };
	if (cairn_repo_init(f->repo, &o, err, sizeof(err)) < 0 ||
	    cairn_repo_open(f->repo, "pw", &f->r, err, sizeof(err)) < 0 ||
	    cairn_hostkey_add(f->r, "h1", f->keyfile) < 0) {
		fprintf(stderr, "setup: %s %s\n", err, f->r ? cairn_repo_error(f->r) : "");
		return -1;
	}
	o.host_keys = false;
	if (cairn_repo_init(f->plain, &o, err, sizeof(err)) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->r)
		cairn_repo_close(f->r);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static int open_key(const char *url, const char *keyfile, struct cairn_repo **r, char *err,
		    size_t errlen)
{
	struct cairn_backend_opts bo = { .key_file = keyfile };
	*r = NULL;
	return cairn_repo_open_with(url, NULL, &bo, r, err, errlen);
}

/* Encodes a blob of type with r and decodes it with reader. */
static int roundtrip(struct cairn_repo *r, struct cairn_repo *reader, enum cairn_blob_type type,
		     uint8_t *flags_out, bool forge_unsealed)
{
	uint8_t data[4096];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + type);
	struct idx_entry e = { .type = (uint8_t)type, .raw_len = sizeof(data) };
	cairn_repo_chunk_id(r, data, sizeof(data), &e.id);
	struct seal_key w;
	assert_int_equal(seal_key_new(r->data_pub, &w), 0);
	struct scratch *sc = scratch_get(r);
	assert_non_null(sc);
	uint8_t flags;
	assert_int_equal(blob_encode(r, sc, type, &e.id, data, sizeof(data), &w, &flags), 0);
	e.flags = flags;
	if (forge_unsealed)
		e.flags &= (uint8_t)~BLOB_F_SEALED;
	*flags_out = e.flags;
	e.stored_len = (uint32_t)sc->a.len;
	uint8_t *stored = malloc(sc->a.len), out[sizeof(data)];
	assert_non_null(stored);
	memcpy(stored, sc->a.p, sc->a.len);
	scratch_put(r, sc);
	sc = scratch_get(reader);
	int rc = blob_decode(reader, sc, &e, stored, out, false);
	scratch_put(reader, sc);
	free(stored);
	if (rc == 0)
		assert_memory_equal(out, data, sizeof(data));
	return rc;
}

static void test_sealed_blobs(void **state)
{
	struct fixture *f = *state;
	uint8_t flags;
	assert_int_equal(roundtrip(f->r, f->r, CAIRN_BLOB_DATA, &flags, false), 0);
	assert_true(flags & BLOB_F_SEALED);
	assert_int_equal(roundtrip(f->r, f->r, CAIRN_BLOB_PAGE, &flags, false), 0);
	assert_false(flags & BLOB_F_SEALED); /* chunk maps stay under K_enc */
	assert_int_equal(roundtrip(f->r, f->r, CAIRN_BLOB_DATA, &flags, true), -EBADMSG);
	/* a host key reads pages, never disk data */
	char err[256] = "";
	struct cairn_repo *h;
	assert_int_equal(open_key(f->repo, f->keyfile, &h, err, sizeof(err)), 0);
	assert_false(h->has_data_priv);
	assert_int_equal(roundtrip(f->r, h, CAIRN_BLOB_PAGE, &flags, false), 0);
	assert_int_equal(roundtrip(f->r, h, CAIRN_BLOB_DATA, &flags, false), -EPERM);
	cairn_repo_close(h);
}

static void test_key_file_opens(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(stat(f->keyfile, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char err[256] = "";
	struct cairn_repo *h;
	assert_int_equal(open_key(f->repo, f->keyfile, &h, err, sizeof(err)), 0);
	assert_string_equal(cairn_repo_host_key(h), "h1");
	assert_null(cairn_repo_host_key(f->r));
	assert_int_equal(cairn_repo_need_full(f->r), 0);
	assert_int_equal(cairn_repo_need_full(h), -EPERM);
	assert_string_equal(cairn_repo_error(h), CAIRN_HOST_KEY_REFUSAL);
	char id[65];
	assert_int_equal(cairn_key_add(h, "new", id), -EPERM);
	assert_int_equal(cairn_hostkey_add(h, "h2", "/nonexistent/x"), -EPERM);
	assert_int_equal(cairn_hostkey_remove(h, "h1"), -EPERM);
	cairn_repo_close(h);
	/* never over an existing file, never a second key of one name */
	assert_int_equal(cairn_hostkey_add(f->r, "h9", f->keyfile), -EEXIST);
	assert_int_equal(cairn_hostkey_add(f->r, "h1", "/tmp/cairn-never-written"), -EEXIST);
	assert_int_equal(cairn_hostkey_add(f->r, "../x", "/tmp/cairn-never-written"), -EINVAL);
	assert_int_equal(cairn_hostkey_add(f->r, "", "/tmp/cairn-never-written"), -EINVAL);
	/* a host key opens no repository made without host keys */
	assert_int_equal(open_key(f->plain, f->keyfile, &h, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "not made for host keys"));
	assert_null(h);
}

/* The key file with field set to value (a string; NULL: removed), written
 * to path. */
static void edited_key(const struct fixture *f, const char *field, const char *value,
		       const char *path)
{
	json_t *k = json_load_file(f->keyfile, 0, NULL);
	assert_non_null(k);
	if (value)
		json_object_set_new(k, field, json_string(value));
	else
		json_object_del(k, field);
	unlink(path);
	assert_int_equal(json_dump_file(k, path, 0), 0);
	json_decref(k);
}

static void test_key_file_refusals(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *field, *value, *message;
	} cases[] = {
		{ "kind", "password", "damaged or not a host key" },
		{ "k_enc", "zz", "damaged or not a host key" },
		{ "k_id", NULL, "damaged or not a host key" },
		{ "name", "../../etc", "damaged or not a host key" },
		{ "host_id", "abc", "damaged or not a host key" },
		{ "repository", "0000000000000000000000000000000000000000000000000000000000000001",
		  "belongs to another repository" },
		{ "data_public", "0000000000000000000000000000000000000000000000000000000000000009",
		  "does not match this repository's public key" },
		{ "host_id", "1111111111111111111111111111111111111111111111111111111111111111",
		  "host key h1 was revoked" },
	};
	char path[160], err[512];
	snprintf(path, sizeof(path), "%s/edited.key", f->dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cairn_repo *h;
		edited_key(f, cases[i].field, cases[i].value, path);
		err[0] = '\0';
		assert_int_equal(open_key(f->repo, path, &h, err, sizeof(err)), -EKEYREJECTED);
		if (!strstr(err, cases[i].message))
			fail_msg("%s = %s: '%s'", cases[i].field, cases[i].value, err);
		assert_null(h);
	}
	/* not JSON, too long, missing */
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	char big[5000];
	memset(big, ' ', sizeof(big));
	assert_int_equal(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	close(fd);
	struct cairn_repo *h;
	assert_true(open_key(f->repo, path, &h, err, sizeof(err)) < 0);
	unlink(path);
	assert_int_equal(open_key(f->repo, path, &h, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot read host key file"));
}

static void test_revocation(void **state)
{
	struct fixture *f = *state;
	char path[160], err[512] = "";
	snprintf(path, sizeof(path), "%s/h2.key", f->dir);
	assert_int_equal(cairn_hostkey_add(f->r, "h2", path), 0);
	struct cairn_hostkey_info *v;
	size_t n;
	assert_int_equal(cairn_hostkey_list(f->r, &v, &n), 0);
	assert_int_equal(n, 2);
	free(v);
	struct cairn_repo *h;
	assert_int_equal(open_key(f->repo, path, &h, err, sizeof(err)), 0);
	assert_int_equal(cairn_hostkey_remove(f->r, "h2"), 0);
	assert_int_equal(cairn_hostkey_remove(f->r, "h2"), -ENOENT);
	/* an open host key finds out before its snapshot is saved */
	assert_int_equal(hostkey_check_record(h), -EKEYREJECTED);
	cairn_repo_close(h);
	assert_int_equal(open_key(f->repo, path, &h, err, sizeof(err)), -EKEYREJECTED);
	assert_non_null(strstr(err, "host key h2 was revoked"));
	/* a new key of the same name does not bring the old file back */
	char path3[160];
	snprintf(path3, sizeof(path3), "%s/h2-new.key", f->dir);
	assert_int_equal(cairn_hostkey_add(f->r, "h2", path3), 0);
	assert_int_equal(open_key(f->repo, path, &h, err, sizeof(err)), -EKEYREJECTED);
	assert_int_equal(open_key(f->repo, path3, &h, err, sizeof(err)), 0);
	cairn_repo_close(h);
}

int main(void)
{
	const struct CMUnitTest seal[] = {
		cmocka_unit_test(test_x25519_rfc7748),
		cmocka_unit_test(test_seal_roundtrip),
		cmocka_unit_test(test_seal_refusals),
		cmocka_unit_test(test_seal_cache),
	};
	const struct CMUnitTest repo[] = {
		cmocka_unit_test(test_sealed_blobs),
		cmocka_unit_test(test_key_file_opens),
		cmocka_unit_test(test_key_file_refusals),
		cmocka_unit_test(test_revocation),
	};
	int rc = cmocka_run_group_tests_name("seal", seal, NULL, NULL);
	return rc | cmocka_run_group_tests_name("host key files", repo, setup, teardown);
}
