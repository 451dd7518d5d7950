// SPDX-License-Identifier: MIT
/*
 * check_chunk.c - unit tests of the chunk cipher (fs/chunk.c) and of the
 * chunk offset arithmetic (fs/chunk_math.c).
 *
 * TCases:
 *   core    known-answer vectors (tests/data/chunk_kat.txt, cross-checked
 *           here against libsodium called directly with a hand-built AD),
 *           round trips, in-place operation, fresh nonces
 *   limits  size limits, truncated / extended lengths, overflow edges
 *   tamper  every byte of ciphertext, nonce and tag flipped; wrong index,
 *           lineage and key; the same for the unencrypted checksum mode
 *   math    chunk_range / chunk_piece against a byte-by-byte model,
 *           chunk_count, chunk_size_valid, chunk_is_zero
 *
 * The KAT file path comes from EVFS_TEST_DATA (compile definition, or the
 * environment variable of the same name, which wins).
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "chunk.h"
#include "kms/kms_testhooks.h"

/* The suite's keys are byte arrays (known answers, flips, swaps): each call
 * wraps its key in a data-key handle, as the engine passes them, and a
 * NULL key selects the unencrypted functions, as an unencrypted pool does. */
static int seal_nonce(const uint8_t *key, const uint8_t lin[static CHUNK_LINEAGE_BYTES], uint64_t index,
		     const uint8_t nonce[static CHUNK_NONCE_BYTES], const uint8_t *plain, uint8_t *cipher, size_t len,
		     struct chunk_tag *tag)
{
	struct kms_dk *dk;
	int rc;

	if (!key)
		return chunk_plain_seal(lin, index, plain, cipher, len, tag);
	ck_assert_int_eq(kms_test_dk_import(key, &dk), 0);
	rc = chunk_encrypt_nonce(dk, lin, index, nonce, plain, cipher, len, tag);
	kms_dk_destroy(dk);
	return rc;
}

static int seal(const uint8_t *key, const uint8_t lin[static CHUNK_LINEAGE_BYTES], uint64_t index,
	       const uint8_t *plain, uint8_t *cipher, size_t len, struct chunk_tag *tag)
{
	struct kms_dk *dk;
	int rc;

	if (!key)
		return chunk_plain_seal(lin, index, plain, cipher, len, tag);
	ck_assert_int_eq(kms_test_dk_import(key, &dk), 0);
	rc = chunk_encrypt(dk, lin, index, plain, cipher, len, tag);
	kms_dk_destroy(dk);
	return rc;
}

static int unseal(const uint8_t *key, const uint8_t lin[static CHUNK_LINEAGE_BYTES], uint64_t index,
	       const uint8_t *cipher, uint8_t *plain, size_t len, const struct chunk_tag *tag)
{
	struct kms_dk *dk;
	int rc;

	if (!key)
		return chunk_plain_open(lin, index, cipher, plain, len, tag);
	ck_assert_int_eq(kms_test_dk_import(key, &dk), 0);
	rc = chunk_decrypt(dk, lin, index, cipher, plain, len, tag);
	kms_dk_destroy(dk);
	return rc;
}

#ifndef EVFS_TEST_DATA
#define EVFS_TEST_DATA "tests/data"
#endif

#define KAT_INDEX 7u

/* ============================== helpers =============================== */

static uint8_t kat_key[CHUNK_KEY_BYTES], kat_nonce[CHUNK_NONCE_BYTES], kat_lin[CHUNK_LINEAGE_BYTES];

static void kat_inputs(void)
{
	for (unsigned i = 0; i < CHUNK_KEY_BYTES; i++)
		kat_key[i] = (uint8_t)i;
	for (unsigned i = 0; i < CHUNK_NONCE_BYTES; i++)
		kat_nonce[i] = (uint8_t)(0x40 + i);
	for (unsigned i = 0; i < CHUNK_LINEAGE_BYTES; i++)
		kat_lin[i] = (uint8_t)(0xa0 + i);
}

static void kat_plain(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 31 + 7) & 0xff);
}

static const char *data_dir(void)
{
	const char *d = getenv("EVFS_TEST_DATA");

	return d && *d ? d : EVFS_TEST_DATA;
}

/* Look `name` up in chunk_kat.txt and decode its hex value (exactly n bytes). */
static void kat_get(const char *name, uint8_t *out, size_t n)
{
	char path[4096], line[512];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "%s/chunk_kat.txt", data_dir());
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (!found && fgets(line, sizeof(line), f)) {
		char *eq, *k = line, *v, *end;
		size_t bin_len = 0;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		eq = strstr(line, " = ");
		if (!eq)
			continue;
		*eq = '\0';
		if (strcmp(k, name) != 0)
			continue;
		v = eq + 3;
		end = v + strcspn(v, "\r\n");
		*end = '\0';
		ck_assert_msg(strlen(v) == 2 * n, "%s: %zu hex digits, want %zu", name, strlen(v), 2 * n);
		ck_assert_int_eq(sodium_hex2bin(out, n, v, strlen(v), NULL, &bin_len, NULL), 0);
		ck_assert_uint_eq(bin_len, n);
		found = 1;
	}
	fclose(f);
	ck_assert_msg(found, "%s missing from %s", name, path);
}

/* The associated data built by hand from the documentation in chunk.c. */
static void hand_ad(uint8_t ad[CHUNK_AD_BYTES], const uint8_t *lin, uint64_t index)
{
	memcpy(ad, "evfs", 4);
	ad[4] = 0;
	ad[5] = 0;
	ad[6] = 0;
	ad[7] = 1;                                 /* format version 1, BE */
	memcpy(ad + 8, lin, CHUNK_LINEAGE_BYTES);
	for (int i = 0; i < 8; i++)
		ad[24 + i] = (uint8_t)(index >> (56 - 8 * i));
}

/* Assertion for hot loops: Check's ck_assert records the location on every
 * call (a write to its fork-mode channel), which is far too slow here. */
#define REQUIRE(cond, ...)                      \
	do {                                    \
		if (!(cond))                    \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static uint64_t le64(uint64_t v)
{
	uint8_t b[8];
	uint64_t r = 0;

	memcpy(b, &v, 8);
	for (int i = 7; i >= 0; i--)
		r = r << 8 | b[i];
	return r;
}

/* ============================== core ================================== */

static void kat_encrypted(size_t n)
{
	uint8_t *pt = malloc(n), *ct = malloc(n), *ct2 = malloc(n), *back = malloc(n);
	uint8_t ad[CHUNK_AD_BYTES], ad_file[CHUNK_AD_BYTES], h[32], want_h[32], want_tag[16], want_head[16];
	uint8_t mac2[16];
	struct chunk_tag t;
	char name[64];

	ck_assert(pt && ct && ct2 && back);
	kat_inputs();
	kat_plain(pt, n);
	kat_get("key", ad_file, 32);
	ck_assert_mem_eq(ad_file, kat_key, 32);
	kat_get("ad", ad_file, sizeof(ad_file));
	hand_ad(ad, kat_lin, KAT_INDEX);
	ck_assert_mem_eq(ad, ad_file, sizeof(ad));

	ck_assert_int_eq(seal_nonce(kat_key, kat_lin, KAT_INDEX, kat_nonce, pt, ct, n, &t), 0);
	/* Against the vector file. */
	snprintf(name, sizeof(name), "ct_sha256_%zu", n);
	kat_get(name, want_h, sizeof(want_h));
	snprintf(name, sizeof(name), "tag_%zu", n);
	kat_get(name, want_tag, sizeof(want_tag));
	snprintf(name, sizeof(name), "ct_head_%zu", n);
	kat_get(name, want_head, sizeof(want_head));
	crypto_hash_sha256(h, ct, n);
	ck_assert_mem_eq(h, want_h, 32);
	ck_assert_mem_eq(t.mac, want_tag, 16);
	ck_assert_mem_eq(ct, want_head, 16);
	/* Tag entry layout. */
	ck_assert_mem_eq(t.nonce, kat_nonce, CHUNK_NONCE_BYTES);
	ck_assert_uint_eq(le64(t.index_le), KAT_INDEX);
	ck_assert_uint_eq(t.seq_le, 0);
	ck_assert(all_zero(t.reserved, sizeof(t.reserved)));

	/* Independently: libsodium directly, AD built by hand. */
	ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct2, mac2, NULL, pt, n, ad, sizeof(ad),
									      NULL, kat_nonce, kat_key),
			 0);
	ck_assert_mem_eq(ct2, ct, n);
	ck_assert_mem_eq(mac2, t.mac, 16);
	ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(back, NULL, ct, n, t.mac, ad, sizeof(ad),
									      t.nonce, kat_key),
			 0);
	ck_assert_mem_eq(back, pt, n);

	memset(back, 0xaa, n);
	ck_assert_int_eq(unseal(kat_key, kat_lin, KAT_INDEX, ct, back, n, &t), 0);
	ck_assert_mem_eq(back, pt, n);
	free(pt);
	free(ct);
	free(ct2);
	free(back);
}

START_TEST(test_kat_encrypted_4096)
{
	kat_encrypted(4096);
}
END_TEST

START_TEST(test_kat_encrypted_65536)
{
	kat_encrypted(65536);
}
END_TEST

START_TEST(test_kat_unencrypted)
{
	static uint8_t pt[4096], ct[4096], back[4096];
	uint8_t ad[CHUNK_AD_BYTES], h[32], want_h[32], want_sum[16], sum[16];
	crypto_generichash_state st;
	struct chunk_tag t;

	kat_inputs();
	kat_plain(pt, sizeof(pt));
	ck_assert_int_eq(seal_nonce(NULL, kat_lin, KAT_INDEX, kat_nonce, pt, ct, sizeof(pt), &t), 0);
	kat_get("plain_ct_sha256_4096", want_h, sizeof(want_h));
	kat_get("plain_sum_4096", want_sum, sizeof(want_sum));
	crypto_hash_sha256(h, ct, sizeof(ct));
	ck_assert_mem_eq(h, want_h, 32);
	ck_assert_mem_eq(ct, pt, sizeof(pt));                   /* stored as is */
	ck_assert_mem_eq(t.mac, want_sum, 16);
	ck_assert(all_zero(t.nonce, sizeof(t.nonce)));          /* zero nonce */
	ck_assert_uint_eq(le64(t.index_le), KAT_INDEX);

	/* Independently: BLAKE2b-128 over hand-built AD | data. */
	hand_ad(ad, kat_lin, KAT_INDEX);
	crypto_generichash_init(&st, NULL, 0, sizeof(sum));
	crypto_generichash_update(&st, ad, sizeof(ad));
	crypto_generichash_update(&st, pt, sizeof(pt));
	crypto_generichash_final(&st, sum, sizeof(sum));
	ck_assert_mem_eq(sum, t.mac, 16);

	/* chunk_encrypt (random-nonce API) is deterministic without a key. */
	{
		struct chunk_tag t2;
		uint8_t ct2[4096];

		ck_assert_int_eq(seal(NULL, kat_lin, KAT_INDEX, pt, ct2, sizeof(pt), &t2), 0);
		ck_assert_mem_eq(&t2, &t, sizeof(t));
		ck_assert_mem_eq(ct2, ct, sizeof(ct));
	}
	ck_assert_int_eq(unseal(NULL, kat_lin, KAT_INDEX, ct, back, sizeof(back), &t), 0);
	ck_assert_mem_eq(back, pt, sizeof(pt));
}
END_TEST

static const size_t rt_sizes[] = { 0, 1, CHUNK_PLAIN_BYTES - 1, CHUNK_PLAIN_BYTES, CHUNK_MAX_BYTES };
#define N_RT (sizeof(rt_sizes) / sizeof(rt_sizes[0]))

/* _i: size index * 2 + (encrypted ? 1 : 0) */
START_TEST(test_roundtrip)
{
	size_t n = rt_sizes[_i / 2];
	int enc = _i & 1;
	uint8_t key[CHUNK_KEY_BYTES], lin[CHUNK_LINEAGE_BYTES];
	/* +1 so zero-length buffers are still valid pointers */
	uint8_t *pt = malloc(n + 1), *ct = malloc(n + 1), *back = malloc(n + 1), *io = malloc(n + 1);
	struct chunk_tag t, t2;

	ck_assert(pt && ct && back && io);
	randombytes_buf(key, sizeof(key));
	randombytes_buf(lin, sizeof(lin));
	randombytes_buf(pt, n + 1);
	ck_assert_int_eq(seal(enc ? key : NULL, lin, 12345, pt, ct, n, &t), 0);
	if (enc && n >= 16)
		ck_assert_int_ne(memcmp(ct, pt, n), 0);
	if (!enc)
		ck_assert_mem_eq(ct, pt, n);
	memset(back, 0x5a, n + 1);
	ck_assert_int_eq(unseal(enc ? key : NULL, lin, 12345, ct, back, n, &t), 0);
	if (n)
		ck_assert_mem_eq(back, pt, n);
	ck_assert_uint_eq(back[n], 0x5a);                 /* no write past len */

	/* In place: encrypt then decrypt the same buffer. */
	memcpy(io, pt, n + 1);
	ck_assert_int_eq(seal(enc ? key : NULL, lin, 12345, io, io, n, &t2), 0);
	if (enc && n >= 16)
		ck_assert_int_ne(memcmp(io, pt, n), 0);
	ck_assert_int_eq(unseal(enc ? key : NULL, lin, 12345, io, io, n, &t2), 0);
	if (n)
		ck_assert_mem_eq(io, pt, n);
	/* In-place decrypt of the out-of-place ciphertext too. */
	memcpy(io, ct, n);
	ck_assert_int_eq(unseal(enc ? key : NULL, lin, 12345, io, io, n, &t), 0);
	if (n)
		ck_assert_mem_eq(io, pt, n);
	free(pt);
	free(ct);
	free(back);
	free(io);
}
END_TEST

START_TEST(test_fresh_nonce)
{
	static uint8_t pt[4096], c1[4096], c2[4096], back[4096];
	uint8_t key[CHUNK_KEY_BYTES], lin[CHUNK_LINEAGE_BYTES];
	struct chunk_tag t1, t2;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(lin, sizeof(lin));
	kat_plain(pt, sizeof(pt));
	ck_assert_int_eq(seal(key, lin, 1, pt, c1, sizeof(pt), &t1), 0);
	ck_assert_int_eq(seal(key, lin, 1, pt, c2, sizeof(pt), &t2), 0);
	ck_assert_int_ne(memcmp(t1.nonce, t2.nonce, CHUNK_NONCE_BYTES), 0);
	ck_assert(!all_zero(t1.nonce, CHUNK_NONCE_BYTES));
	ck_assert_int_ne(memcmp(c1, c2, sizeof(c1)), 0);
	ck_assert_int_ne(memcmp(t1.mac, t2.mac, CHUNK_TAG_BYTES), 0);
	ck_assert_int_eq(unseal(key, lin, 1, c1, back, sizeof(back), &t1), 0);
	ck_assert_mem_eq(back, pt, sizeof(pt));
	ck_assert_int_eq(unseal(key, lin, 1, c2, back, sizeof(back), &t2), 0);
	ck_assert_mem_eq(back, pt, sizeof(pt));
	/* A tag does not open the other ciphertext. */
	ck_assert_int_eq(unseal(key, lin, 1, c1, back, sizeof(back), &t2), -EBADMSG);
	ck_assert(all_zero(back, sizeof(back)));
}
END_TEST

START_TEST(test_overhead)
{
	ck_assert_uint_eq(chunk_overhead(), 64);
	ck_assert_uint_eq(sizeof(struct chunk_tag), 64);
	ck_assert_uint_eq(CHUNK_AD_BYTES, 32);
}
END_TEST

/* ============================== limits ================================ */

START_TEST(test_len_limit)
{
	static uint8_t buf[CHUNK_MAX_BYTES + 16], out[CHUNK_MAX_BYTES + 16];
	uint8_t key[CHUNK_KEY_BYTES] = { 1 }, lin[CHUNK_LINEAGE_BYTES] = { 2 };
	struct chunk_tag t;

	for (int enc = 0; enc < 2; enc++) {
		memset(&t, 0, sizeof(t));
		ck_assert_int_eq(seal(enc ? key : NULL, lin, 0, buf, out, CHUNK_MAX_BYTES + 1, &t), -EINVAL);
		ck_assert_int_eq(seal_nonce(enc ? key : NULL, lin, 0, kat_nonce, buf, out,
						     CHUNK_MAX_BYTES + 1, &t),
				 -EINVAL);
		ck_assert_int_eq(unseal(enc ? key : NULL, lin, 0, buf, out, CHUNK_MAX_BYTES + 1, &t), -EINVAL);
		ck_assert_int_eq(unseal(enc ? key : NULL, lin, 0, buf, out, SIZE_MAX, &t), -EINVAL);
		ck_assert_int_eq(seal(enc ? key : NULL, lin, 0, buf, out, CHUNK_MAX_BYTES, &t), 0);
	}
}
END_TEST

/* A chunk opened with a shorter or longer length than it was sealed with
 * must fail (and leave zeros), for both modes and both sizes. */
START_TEST(test_truncated)
{
	static uint8_t pt[CHUNK_MAX_BYTES + 1], ct[CHUNK_MAX_BYTES + 1], out[CHUNK_MAX_BYTES + 1];
	static const size_t cuts[] = { 0, 1, 15, 16, 17, 4095, 4097, 65535 };
	uint8_t key[CHUNK_KEY_BYTES], lin[CHUNK_LINEAGE_BYTES];
	struct chunk_tag t;
	int enc = _i & 1;
	size_t n = (_i >> 1) ? CHUNK_MAX_BYTES : CHUNK_PLAIN_BYTES;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(lin, sizeof(lin));
	randombytes_buf(pt, sizeof(pt));
	ck_assert_int_eq(seal(enc ? key : NULL, lin, 3, pt, ct, n, &t), 0);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t m = cuts[i];

		if (m == n || m > CHUNK_MAX_BYTES)
			continue;
		memset(out, 0xaa, sizeof(out));
		ck_assert_msg(unseal(enc ? key : NULL, lin, 3, ct, out, m, &t) == -EBADMSG,
			      "len %zu of a %zu chunk accepted", m, n);
		ck_assert_msg(all_zero(out, m), "len %zu: output not wiped", m);
	}
	if (n < CHUNK_MAX_BYTES) {
		memset(out, 0xaa, sizeof(out));
		ck_assert_int_eq(unseal(enc ? key : NULL, lin, 3, ct, out, n + 1, &t), -EBADMSG);
		ck_assert(all_zero(out, n + 1));
	}
}
END_TEST

/* chunk_count must not wrap for sizes near UINT64_MAX: the volume engine
 * sizes map files with it and engine_map_create accepts any uint64 size. */
/* Regression (found by this suite, since fixed): fs/chunk_math.c
 * chunk_count() computed (size + chunk_size - 1) >> shift, which wraps for
 * size > UINT64_MAX - chunk_size + 1: chunk_count(UINT64_MAX, 4096) was 0
 * instead of 2^52, and a volume of such a size got a 0-entry map. */
START_TEST(test_chunk_count_overflow)
{
	static const uint32_t css[] = { 4096, 8192, 65536 };

	for (unsigned c = 0; c < 3; c++) {
		uint32_t cs = css[c];
		uint64_t per = UINT64_MAX / cs + 1;         /* ceil(UINT64_MAX / cs) */

		/* UINT64_MAX - cs + 1 is exactly (per - 1) chunks: the last size
		 * that does not wrap. */
		ck_assert_uint_eq(chunk_count(UINT64_MAX - cs + 1, cs), per - 1);
		ck_assert_msg(chunk_count(UINT64_MAX, cs) == per, "chunk_count(UINT64_MAX, %u) = %llu, want %llu", cs,
			      (unsigned long long)chunk_count(UINT64_MAX, cs), (unsigned long long)per);
		ck_assert_uint_eq(chunk_count(UINT64_MAX - cs + 2, cs), per);
	}
}
END_TEST

/* Offsets far beyond 32 bits. */
START_TEST(test_math_large)
{
	uint64_t first, count, in_buf;
	uint32_t in_chunk, n;
	uint64_t off = (1ull << 50) + 4095, len = 2;

	chunk_range(off, len, 4096, &first, &count);
	ck_assert_uint_eq(first, (1ull << 38));
	ck_assert_uint_eq(count, 2);
	chunk_piece(off, len, 4096, first, &in_chunk, &n, &in_buf);
	ck_assert_uint_eq(in_chunk, 4095);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(in_buf, 0);
	chunk_piece(off, len, 4096, first + 1, &in_chunk, &n, &in_buf);
	ck_assert_uint_eq(in_chunk, 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(in_buf, 1);
	/* The last chunk of the address space. */
	chunk_range(UINT64_MAX - 4095, 4096, 4096, &first, &count);
	ck_assert_uint_eq(first, (1ull << 52) - 1);
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(chunk_count(1ull << 62, 4096), 1ull << 50);
	ck_assert_uint_eq(chunk_count((1ull << 62) + 1, 65536), (1ull << 46) + 1);
}
END_TEST

/* ============================== tamper ================================ */

struct tamper_fx {
	uint8_t key[CHUNK_KEY_BYTES], lin[CHUNK_LINEAGE_BYTES];
	uint8_t pt[CHUNK_PLAIN_BYTES], ct[CHUNK_PLAIN_BYTES], bad[CHUNK_PLAIN_BYTES], out[CHUNK_PLAIN_BYTES];
	struct chunk_tag t;
};

static struct tamper_fx *tamper_setup(int enc)
{
	struct tamper_fx *f = calloc(1, sizeof(*f));

	ck_assert(f != NULL);
	randombytes_buf(f->key, sizeof(f->key));
	randombytes_buf(f->lin, sizeof(f->lin));
	randombytes_buf(f->pt, sizeof(f->pt));
	ck_assert_int_eq(seal(enc ? f->key : NULL, f->lin, 42, f->pt, f->ct, sizeof(f->pt), &f->t), 0);
	return f;
}

/* Expect -EBADMSG and a fully wiped output (out of place and in place). */
static void expect_bad(struct tamper_fx *f, const uint8_t *key, const uint8_t *lin, uint64_t index,
		       const uint8_t *ct, const struct chunk_tag *t, const char *what, size_t pos)
{
	int r;

	memset(f->out, 0xaa, sizeof(f->out));
	r = unseal(key, lin, index, ct, f->out, CHUNK_PLAIN_BYTES, t);
	REQUIRE(r == -EBADMSG, "%s %zu: got %d, want -EBADMSG", what, pos, r);
	REQUIRE(all_zero(f->out, sizeof(f->out)), "%s %zu: output not all zeros", what, pos);
	memcpy(f->bad, ct, sizeof(f->bad));
	r = unseal(key, lin, index, f->bad, f->bad, CHUNK_PLAIN_BYTES, t);
	REQUIRE(r == -EBADMSG, "%s %zu (in place): got %d", what, pos, r);
	REQUIRE(all_zero(f->bad, sizeof(f->bad)), "%s %zu (in place): buffer not all zeros", what, pos);
}

/* _i: 0 unencrypted (checksum), 1 encrypted */
START_TEST(test_flip_cipher)
{
	struct tamper_fx *f = tamper_setup(_i);
	const uint8_t *key = _i ? f->key : NULL;

	for (size_t pos = 0; pos < CHUNK_PLAIN_BYTES; pos++) {
		uint8_t mask = (uint8_t)(1u << (pos % 8));

		f->ct[pos] ^= mask;
		expect_bad(f, key, f->lin, 42, f->ct, &f->t, "ciphertext byte", pos);
		f->ct[pos] ^= mask;
	}
	/* A few whole-byte changes too. */
	for (size_t pos = 0; pos < CHUNK_PLAIN_BYTES; pos += 511) {
		f->ct[pos] ^= 0xff;
		expect_bad(f, key, f->lin, 42, f->ct, &f->t, "ciphertext byte (0xff)", pos);
		f->ct[pos] ^= 0xff;
	}
	/* Untouched: still opens. */
	ck_assert_int_eq(unseal(key, f->lin, 42, f->ct, f->out, CHUNK_PLAIN_BYTES, &f->t), 0);
	ck_assert_mem_eq(f->out, f->pt, CHUNK_PLAIN_BYTES);
	free(f);
}
END_TEST

START_TEST(test_flip_tag)
{
	struct tamper_fx *f = tamper_setup(_i);
	const uint8_t *key = _i ? f->key : NULL;
	struct chunk_tag t;

	for (size_t pos = 0; pos < CHUNK_TAG_BYTES; pos++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			t = f->t;
			t.mac[pos] ^= (uint8_t)(1u << bit);
			expect_bad(f, key, f->lin, 42, f->ct, &t, "mac byte", pos * 8 + bit);
		}
	}
	/* With a key the nonce is authenticated; without one it must be zero. */
	for (size_t pos = 0; pos < CHUNK_NONCE_BYTES; pos++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			t = f->t;
			t.nonce[pos] ^= (uint8_t)(1u << bit);
			expect_bad(f, key, f->lin, 42, f->ct, &t, "nonce byte", pos * 8 + bit);
		}
	}
	free(f);
}
END_TEST

START_TEST(test_wrong_identity)
{
	struct tamper_fx *f = tamper_setup(_i);
	const uint8_t *key = _i ? f->key : NULL;
	static const uint64_t idx[] = { 0, 41, 43, 42ull | (1ull << 63), 42ull << 32, 42ull << 8, UINT64_MAX };
	uint8_t lin[CHUNK_LINEAGE_BYTES], k2[CHUNK_KEY_BYTES];

	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		expect_bad(f, key, f->lin, idx[i], f->ct, &f->t, "wrong index", (size_t)i);
	for (size_t pos = 0; pos < CHUNK_LINEAGE_BYTES; pos++) {
		memcpy(lin, f->lin, sizeof(lin));
		lin[pos] ^= 0x01;
		expect_bad(f, key, lin, 42, f->ct, &f->t, "wrong lineage byte", pos);
	}
	if (_i) {
		for (size_t pos = 0; pos < CHUNK_KEY_BYTES; pos++) {
			memcpy(k2, f->key, sizeof(k2));
			k2[pos] ^= 0x80;
			expect_bad(f, k2, f->lin, 42, f->ct, &f->t, "wrong key byte", pos);
		}
		/* An encrypted chunk read as unencrypted, and vice versa. */
		expect_bad(f, NULL, f->lin, 42, f->ct, &f->t, "no key for an encrypted chunk", 0);
	} else {
		expect_bad(f, f->key, f->lin, 42, f->ct, &f->t, "a key for an unencrypted chunk", 0);
	}
	/* Another chunk's ciphertext under this tag (a swap). */
	{
		uint8_t pt2[CHUNK_PLAIN_BYTES], ct2[CHUNK_PLAIN_BYTES];
		struct chunk_tag t2;

		randombytes_buf(pt2, sizeof(pt2));
		ck_assert_int_eq(seal(key, f->lin, 43, pt2, ct2, sizeof(pt2), &t2), 0);
		expect_bad(f, key, f->lin, 42, ct2, &t2, "chunk 43 swapped into 42", 0);
		expect_bad(f, key, f->lin, 42, ct2, &f->t, "ciphertext of 43 with tag of 42", 0);
		expect_bad(f, key, f->lin, 43, f->ct, &f->t, "chunk 42 swapped into 43", 0);
	}
	free(f);
}
END_TEST

/* =============================== math ================================= */

/* Byte-by-byte model of chunk_range/chunk_piece for [off, off+len). */
struct piece_model {
	uint64_t first;
	uint64_t count;
	uint64_t lo[16], hi[16];          /* first/last byte per chunk, relative to first */
	uint64_t buf0[16];                /* buffer offset of lo */
};

static void model(uint64_t off, uint64_t len, uint32_t cs, struct piece_model *m)
{
	memset(m, 0, sizeof(*m));
	if (!len)
		return;
	m->first = off / cs;
	/* Walk the bytes, counting positions inside the chunk by hand. */
	uint64_t c = 0, pos = off % cs;

	for (uint64_t b = off; b < off + len; b++, pos++) {
		if (pos == cs) {
			pos = 0;
			c++;
		}
		REQUIRE(c < 16, "model: range too long");
		if (c + 1 > m->count) {
			m->count = c + 1;
			m->lo[c] = b;
			m->buf0[c] = b - off;
		}
		m->hi[c] = b;
	}
}

static void check_pair(uint64_t off, uint64_t len, uint32_t cs, uint64_t shift_chunks)
{
	struct piece_model m;
	uint64_t first, count, total = 0, base = shift_chunks * cs;

	model(off, len, cs, &m);
	chunk_range(base + off, len, cs, &first, &count);
	if (len == 0) {
		REQUIRE(count == 0, "chunk_range(%llu, 0, %u): count %llu", (unsigned long long)off, cs,
			      (unsigned long long)count);
		return;
	}
	if (first != m.first + shift_chunks || count != m.count)
		ck_abort_msg("chunk_range(%llu+%llu, %llu, %u) = (%llu, %llu), want (%llu, %llu)",
			     (unsigned long long)base, (unsigned long long)off, (unsigned long long)len, cs,
			     (unsigned long long)first, (unsigned long long)count,
			     (unsigned long long)(m.first + shift_chunks), (unsigned long long)m.count);
	for (uint64_t k = 0; k < count; k++) {
		uint32_t in_chunk, n;
		uint64_t in_buf, c = m.first + k;

		chunk_piece(base + off, len, cs, first + k, &in_chunk, &n, &in_buf);
		if (in_chunk != m.lo[k] - c * cs || n != m.hi[k] - m.lo[k] + 1 || in_buf != m.buf0[k])
			ck_abort_msg("chunk_piece(%llu+%llu, %llu, %u, chunk +%llu) = (%u, %u, %llu), want "
				     "(%llu, %llu, %llu)",
				     (unsigned long long)base, (unsigned long long)off, (unsigned long long)len, cs,
				     (unsigned long long)k, in_chunk, n, (unsigned long long)in_buf,
				     (unsigned long long)(m.lo[k] - c * cs),
				     (unsigned long long)(m.hi[k] - m.lo[k] + 1), (unsigned long long)m.buf0[k]);
		total += n;
	}
	REQUIRE(total == len, "pieces of (%llu, %llu) cover %llu bytes", (unsigned long long)off,
		(unsigned long long)len, (unsigned long long)total);
}

/* Values of [0, 3cs]: a stride plus every boundary +-3. */
static size_t math_values(uint32_t cs, uint64_t *v, size_t cap, uint64_t stride)
{
	size_t n = 0;

	for (uint64_t x = 0; x <= 3ull * cs; x += stride)
		v[n++] = x;
	for (uint64_t k = 0; k <= 3; k++)
		for (int d = -3; d <= 3; d++)
			if ((int64_t)(k * cs) + d >= 0)
				v[n++] = k * cs + (uint64_t)(int64_t)d;
	v[n++] = cs / 2 - 1;
	v[n++] = cs / 2;
	v[n++] = cs / 2 + 1;
	v[n++] = 3ull * cs / 2;
	v[n++] = 5ull * cs / 2;
	ck_assert(n <= cap);
	return n;
}

/* _i: 0 -> chunk size 4096, 1 -> 8192 */
START_TEST(test_range_piece)
{
	uint32_t cs = _i ? 8192 : 4096;
	uint64_t v[512];
	size_t nv = math_values(cs, v, 512, 509);

	/* Strided grid with all boundaries. */
	for (size_t i = 0; i < nv; i++)
		for (size_t j = 0; j < nv; j++)
			check_pair(v[i], v[j], cs, 0);
	/* Stepping 1 around each boundary, small lengths. */
	for (uint64_t k = 0; k <= 3; k++)
		for (uint64_t off = k * cs > 40 ? k * cs - 40 : 0; off <= k * cs + 40; off++)
			for (uint64_t len = 0; len <= 96; len++)
				check_pair(off, len, cs, 0);
	/* Every offset of [0, 3cs], tiny lengths. */
	for (uint64_t off = 0; off <= 3ull * cs; off++)
		for (uint64_t len = 0; len <= 2; len++)
			check_pair(off, len, cs, 0);
	/* Every length of [0, 3cs] from a few offsets. */
	for (uint64_t len = 0; len <= 3ull * cs; len++) {
		check_pair(0, len, cs, 0);
		check_pair(cs - 1, len, cs, 0);
	}
	/* The same far from zero (no 32-bit truncation). */
	for (size_t i = 0; i < nv; i += 3)
		for (size_t j = 0; j < nv; j += 3) {
			check_pair(v[i], v[j], cs, 1ull << 32);
			check_pair(v[i], v[j], cs, (1ull << 50) / cs * 3);
		}
}
END_TEST

START_TEST(test_count)
{
	static const uint32_t css[] = { 4096, 8192, 16384, 32768, 65536 };

	for (unsigned c = 0; c < sizeof(css) / sizeof(css[0]); c++) {
		uint32_t cs = css[c];
		uint64_t v[512];
		size_t nv = math_values(cs, v, 512, 3ull * cs / 256 + 1);

		for (size_t i = 0; i < nv; i++) {
			uint64_t want = v[i] / cs + (v[i] % cs != 0);

			ck_assert_msg(chunk_count(v[i], cs) == want, "chunk_count(%llu, %u)", (unsigned long long)v[i],
				      cs);
		}
		/* Large sizes (below the overflow edge, see limits). */
		for (uint64_t k = 1; k < 64; k++) {
			uint64_t s = (1ull << k) + 1;

			if (s > UINT64_MAX - cs)
				break;
			ck_assert_uint_eq(chunk_count(s, cs), s / cs + (s % cs != 0));
			ck_assert_uint_eq(chunk_count(s - 1, cs), (s - 1) / cs + ((s - 1) % cs != 0));
		}
	}
	ck_assert_uint_eq(chunk_count(0, 4096), 0);
	ck_assert_uint_eq(chunk_count(1, 4096), 1);
	ck_assert_uint_eq(chunk_count(100ull << 30, 4096), 26214400ull);
}
END_TEST

START_TEST(test_size_valid)
{
	ck_assert_int_eq(chunk_size_valid(0), 0);
	for (unsigned k = 0; k < 64; k++) {
		uint64_t p = 1ull << k;
		int want = p >= 4096 && p <= 65536;

		ck_assert_msg(chunk_size_valid(p) == want, "chunk_size_valid(2^%u)", k);
		if (p > 2)
			ck_assert_msg(chunk_size_valid(p - 1) == 0, "chunk_size_valid(2^%u - 1)", k);
		if (k < 63 && k > 0)
			ck_assert_msg(chunk_size_valid(p + 1) == 0, "chunk_size_valid(2^%u + 1)", k);
		if (k < 63)
			ck_assert_msg(chunk_size_valid(p | (1ull << 63)) == 0, "chunk_size_valid(2^%u | 2^63)", k);
	}
	ck_assert_int_eq(chunk_size_valid(4096 + 4096 / 2), 0);
	ck_assert_int_eq(chunk_size_valid(12288), 0);
	ck_assert_int_eq(chunk_size_valid(UINT64_MAX), 0);
	ck_assert_int_eq(chunk_size_valid(65536ull << 32), 0);     /* would truncate to 0 in 32 bits */
	ck_assert_int_eq(chunk_size_valid(4096ull | (1ull << 32)), 0);
}
END_TEST

START_TEST(test_is_zero)
{
	static uint8_t buf[4096 + 16];
	static const uint8_t vals[] = { 0x01, 0x80, 0xff };

	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(chunk_is_zero(buf, 4096), 1);
	ck_assert_int_eq(chunk_is_zero(buf, 0), 1);
	for (size_t pos = 0; pos < 4096; pos++) {
		for (unsigned v = 0; v < 3; v++) {
			buf[pos] = vals[v];
			REQUIRE(chunk_is_zero(buf, 4096) == 0, "non-zero byte at %zu missed", pos);
			buf[pos] = 0;
		}
	}
	ck_assert_int_eq(chunk_is_zero(buf, 4096), 1);
	/* Short and unaligned buffers: every length 0..80, every position,
	 * every start alignment 0..7; bytes outside the range are ignored. */
	for (size_t a = 0; a < 8; a++) {
		for (size_t len = 0; len <= 80; len++) {
			REQUIRE(chunk_is_zero(buf + a, len) == 1, "align %zu len %zu: zeros not seen", a, len);
			for (size_t pos = 0; pos < len; pos++) {
				buf[a + pos] = 0x10;
				REQUIRE(chunk_is_zero(buf + a, len) == 0, "align %zu len %zu pos %zu", a, len,
					      pos);
				buf[a + pos] = 0;
			}
			buf[a + len] = 0xff;              /* just past the end */
			REQUIRE(chunk_is_zero(buf + a, len) == 1, "align %zu len %zu: read past end", a, len);
			buf[a + len] = 0;
		}
	}
	/* Only the last byte of a full chunk. */
	buf[4095] = 1;
	ck_assert_int_eq(chunk_is_zero(buf, 4096), 0);
	ck_assert_int_eq(chunk_is_zero(buf, 4095), 1);
}
END_TEST

/* =============================== suite ================================ */

static Suite *chunk_suite(void)
{
	Suite *s = suite_create("chunk");
	TCase *tc;

	tc = tcase_create("core");
	tcase_add_test(tc, test_kat_encrypted_4096);
	tcase_add_test(tc, test_kat_encrypted_65536);
	tcase_add_test(tc, test_kat_unencrypted);
	tcase_add_loop_test(tc, test_roundtrip, 0, (int)(2 * N_RT));
	tcase_add_test(tc, test_fresh_nonce);
	tcase_add_test(tc, test_overhead);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_len_limit);
	tcase_add_loop_test(tc, test_truncated, 0, 4);
	tcase_add_test(tc, test_chunk_count_overflow);
	tcase_add_test(tc, test_math_large);
	suite_add_tcase(s, tc);

	tc = tcase_create("tamper");
	tcase_add_loop_test(tc, test_flip_cipher, 0, 2);
	tcase_add_loop_test(tc, test_flip_tag, 0, 2);
	tcase_add_loop_test(tc, test_wrong_identity, 0, 2);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("math");
	tcase_add_loop_test(tc, test_range_piece, 0, 2);
	tcase_add_test(tc, test_count);
	tcase_add_test(tc, test_size_valid);
	tcase_add_test(tc, test_is_zero);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return EXIT_FAILURE;
	}
	kat_inputs();
	sr = srunner_create(chunk_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
