/* SPDX-License-Identifier: MIT */
/*
 * kms_dk.c - data keys: generate, unwrap, rewrap (envelope encryption).
 *
 * A data key (DK) is 32 random bytes that encrypt one volume lineage.  The
 * KMS hands it out only wrapped under a CMK version, as an opaque blob that
 * the caller stores (meta/ keeps it in the catalog), and as a struct kms_dk
 * handle whose bytes live in their own sodium_malloc allocation (guard
 * pages, mlock'd, MADV_DONTDUMP), made read-only once filled.  Handles are
 * reference counted (kms_dk_ref); the last kms_dk_destroy() wipes the
 * bytes.  Only the chunk cipher reads them (kms_dk_bytes).
 *
 * Wrapped DK blob, format 1 (KMS_WRAPPED_MAX = 128 bounds it; today 77 B):
 *
 *   offset  size  field
 *        0     1  format = 1
 *        1     4  CMK version, big-endian (kms_dk_blob_version())
 *        5    24  XChaCha20-Poly1305 nonce, random per wrap
 *       29    32  ciphertext of the DK
 *       61    16  Poly1305 tag
 *
 *   associated data = "evfs-dk\0" (8 bytes) | CMK id (36 chars of UUID
 *                     text) | version (4 bytes BE) | caller context bytes
 *
 * The key id and version bind the blob to the CMK version that wrapped it;
 * the caller's context (e.g. the lineage id) binds it to its owner, so a
 * blob moved to another lineage or key does not unwrap.  Any change to the
 * blob, the context or the key id is -EBADMSG; a wrong length or format
 * byte, or a version the key never had, is also -EBADMSG (malformed).  A
 * version whose material was destroyed (retired, or the key Deleted) is
 * -ENOKEY.
 *
 * Checks, in order, for every operation (R14): the caller's project is
 * granted (-EACCES); KEY resolves to a key the project owns or that is
 * shared with it (-ENOENT unknown, -EACCES not shared, -ENOTUNIQ ambiguous
 * alias); the key is Enabled (-ENOKEY); the version has material (-ENOKEY).
 * Every attempt, granted or refused, is audited ("dk.generate",
 * "dk.unwrap", "dk.rewrap"); if the audit record cannot be written the call
 * fails with that error and hands out nothing.
 *
 * Plaintext CMK and DK exist only in k->scratch (sodium_malloc, PROT_NONE
 * outside calls) and are wiped before the call returns, on every path.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kms_internal.h"

#define DK_FORMAT 1u
#define DK_BLOB_BYTES (1u + 4u + KMS_NONCE_BYTES + KMS_KEY_BYTES + KMS_TAG_BYTES)
#define DK_AD_FIXED (8u + KMS_ID_LEN + 4u)

_Static_assert(DK_BLOB_BYTES == 77, "DK blob format 1 is 77 bytes");
_Static_assert(DK_BLOB_BYTES <= KMS_WRAPPED_MAX, "DK blob exceeds KMS_WRAPPED_MAX");

struct kms_dk {
	atomic_uint refs;                 /* handles held; the last drop wipes */
	uint8_t *key;                     /* KMS_KEY_BYTES, sodium_malloc'd, read-only */
	uint32_t gen;                     /* data-key generation (kms_dk_chain) */
	struct kms_dk *older;             /* the generation a rekey replaces; owned */
};

static size_t dk_ad(uint8_t ad[static DK_AD_FIXED + KMS_CONTEXT_MAX], const char *key_id, uint32_t version,
		    const void *context, size_t context_len)
{
	memcpy(ad, "evfs-dk\0", 8);
	memcpy(ad + 8, key_id, KMS_ID_LEN);
	kms_be32_put(ad + 8 + KMS_ID_LEN, version);
	if (context_len)
		memcpy(ad + DK_AD_FIXED, context, context_len);
	return DK_AD_FIXED + context_len;
}

static void dk_seal(const char *key_id, uint32_t version, const uint8_t cmk[static KMS_KEY_BYTES],
		    const uint8_t dk[static KMS_KEY_BYTES], const void *context, size_t context_len,
		    uint8_t blob[static DK_BLOB_BYTES])
{
	uint8_t ad[DK_AD_FIXED + KMS_CONTEXT_MAX];
	size_t adlen = dk_ad(ad, key_id, version, context, context_len);

	blob[0] = DK_FORMAT;
	kms_be32_put(blob + 1, version);
	randombytes_buf(blob + 5, KMS_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + 5 + KMS_NONCE_BYTES, NULL, dk, KMS_KEY_BYTES, ad, adlen,
						   NULL, blob + 5, cmk);
}

/* Verify-then-decrypt; dk is zeroed on failure. -EBADMSG on any mismatch. */
static int dk_open(const char *key_id, const uint8_t cmk[static KMS_KEY_BYTES], const uint8_t *blob,
		   const void *context, size_t context_len, uint8_t dk[static KMS_KEY_BYTES])
{
	uint8_t ad[DK_AD_FIXED + KMS_CONTEXT_MAX];
	unsigned long long n = 0;
	size_t adlen = dk_ad(ad, key_id, kms_be32_get(blob + 1), context, context_len);

	if (crypto_aead_xchacha20poly1305_ietf_decrypt(dk, &n, NULL, blob + 5 + KMS_NONCE_BYTES,
						       KMS_KEY_BYTES + KMS_TAG_BYTES, ad, adlen, blob + 5, cmk) != 0 ||
	    n != KMS_KEY_BYTES) {
		sodium_memzero(dk, KMS_KEY_BYTES);
		return -EBADMSG;
	}
	return 0;
}

static void bad_blob_log(struct kms *k, int rc, const struct kms_key_info *ki)
{
	if (rc == -EBADMSG)
		KMS_LOG(k, LOG_WARNING, "kms: wrapped data key for key %s (%s) failed authentication", ki->id,
			ki->alias);
}

uint32_t kms_dk_blob_version(const uint8_t *wrapped, size_t wrapped_len)
{
	if (!wrapped || wrapped_len != DK_BLOB_BYTES || wrapped[0] != DK_FORMAT)
		return 0;
	return kms_be32_get(wrapped + 1);
}

const uint8_t *kms_dk_bytes(const struct kms_dk *dk)
{
	return dk ? dk->key : NULL;
}

struct kms_dk *kms_dk_ref(const struct kms_dk *dk)
{
	struct kms_dk *d = (struct kms_dk *)dk;   /* only the count changes */

	if (d)
		atomic_fetch_add(&d->refs, 1);
	return d;
}

void kms_dk_destroy(struct kms_dk *dk)
{
	if (!dk || atomic_fetch_sub(&dk->refs, 1) != 1)
		return;
	kms_dk_destroy(dk->older);
	sodium_free(dk->key);      /* unprotects, wipes, frees */
	free(dk);
}

void kms_dk_chain(struct kms_dk *dk, uint32_t gen, struct kms_dk *older)
{
	dk->gen = gen;
	kms_dk_destroy(dk->older);
	dk->older = older;
}

uint32_t kms_dk_gen(const struct kms_dk *dk)
{
	return dk ? dk->gen : 0;
}

const struct kms_dk *kms_dk_for_gen(const struct kms_dk *dk, uint32_t gen)
{
	for (; dk; dk = dk->older)
		if (dk->gen == gen)
			return dk;
	return NULL;
}

int kms_dk_new(const uint8_t key[static KMS_KEY_BYTES], struct kms_dk **out)
{
	struct kms_dk *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->key = sodium_malloc(KMS_KEY_BYTES);
	if (!d->key) {
		free(d);
		return -ENOMEM;
	}
	memcpy(d->key, key, KMS_KEY_BYTES);
	sodium_mprotect_readonly(d->key);
	atomic_init(&d->refs, 1);
	*out = d;
	return 0;
}

static int args_check(const struct kms_caller *c, const char *key_id, const void *context, size_t context_len)
{
	if (kms_check_caller(c) < 0 || kms_check_name(key_id) < 0 || context_len > KMS_CONTEXT_MAX ||
	    (context_len && !context))
		return -EINVAL;
	return 0;
}

/* Grant, resolution and state checks shared by the three operations. */
static int use_check(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *ki)
{
	int rc;

	if ((rc = kms_grant_check(k, c->project)) < 0) {
		KMS_LOG(k, LOG_INFO, "kms: project %s has no KMS grant", c->project);
		return rc;
	}
	if ((rc = kms_key_resolve_use(k, c, name, ki)) < 0)
		return rc;
	if (ki->state != KMS_KEY_ENABLED) {
		KMS_LOG(k, LOG_INFO, "kms: key %s (%s) is %s", ki->id, ki->alias, kms_state_name(ki->state));
		return -ENOKEY;
	}
	return 0;
}

/* Load the CMK version a blob names.  A version the key never had means the
 * blob is malformed (-EBADMSG). */
static int blob_cmk_load(struct kms *k, const struct kms_key_info *ki, const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t cmk[static KMS_KEY_BYTES])
{
	uint32_t version = kms_dk_blob_version(wrapped, wrapped_len);
	int rc;

	if (version == 0 || version > ki->version)
		return -EBADMSG;
	rc = kms_cmk_load(k, ki->id, version, cmk);
	if (rc == -ENOKEY)
		KMS_LOG(k, LOG_INFO, "kms: version %u of key %s (%s) was destroyed", (unsigned)version, ki->id,
			ki->alias);
	return rc == -ENOENT ? -EBADMSG : rc;
}

/* The newest version's CMK (it always exists for a live key). */
static int newest_cmk_load(struct kms *k, const struct kms_key_info *ki, uint8_t cmk[static KMS_KEY_BYTES])
{
	int rc = kms_cmk_load(k, ki->id, ki->version, cmk);

	return rc == -ENOENT ? -EUCLEAN : rc;
}

/* The use checks for c, entered; audit: a refusal is recorded as a refused
 * attempt to encrypt. */
static int use_question(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *ki,
			int audit)
{
	int rc;

	memset(ki, 0, sizeof(*ki));
	if (!k)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = kms_check_caller(c) < 0 || kms_check_name(name) < 0 ? -EINVAL : use_check(k, c, name, ki);
	if (rc < 0 && audit)
		rc = kms_finish(k, c, NULL, "dk.generate", ki->id[0] ? ki->id : NULL, rc);
	kms_leave(k);
	return rc;
}

int kms_key_use_check(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *ki)
{
	return use_question(k, c, name, ki, 1);
}

int kms_key_usable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *ki)
{
	return use_question(k, c, name, ki, 0);
}

int kms_dk_generate(struct kms *k, const struct kms_caller *c, const char *key_id, const void *context,
		    size_t context_len, uint8_t wrapped[static KMS_WRAPPED_MAX], size_t *wrapped_len,
		    struct kms_dk **dk)
{
	struct kms_key_info ki;
	struct kms_dk *d = NULL;
	uint8_t *cmk, *plain;
	int rc;

	memset(&ki, 0, sizeof(ki));
	if (dk)
		*dk = NULL;
	if (!k || !wrapped_len)
		return -EINVAL;
	*wrapped_len = 0;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	cmk = k->scratch;
	plain = k->scratch + KMS_KEY_BYTES;
	rc = args_check(c, key_id, context, context_len);
	if (rc == 0)
		rc = use_check(k, c, key_id, &ki);
	if (rc == 0)
		rc = newest_cmk_load(k, &ki, cmk);
	if (rc == 0) {
		randombytes_buf(plain, KMS_KEY_BYTES);
		dk_seal(ki.id, ki.version, cmk, plain, context, context_len, wrapped);
		if (dk)
			rc = kms_dk_new(plain, &d);
	}
	sodium_memzero(k->scratch, KMS_SCRATCH_BYTES);
	rc = kms_finish(k, c, NULL, "dk.generate", ki.id[0] ? ki.id : NULL, rc);
	kms_leave(k);
	if (rc < 0) {
		kms_dk_destroy(d);
		sodium_memzero(wrapped, KMS_WRAPPED_MAX);
		return rc;
	}
	*wrapped_len = DK_BLOB_BYTES;
	if (dk)
		*dk = d;
	return 0;
}

int kms_dk_unwrap(struct kms *k, const struct kms_caller *c, const char *key_id, const void *context,
		  size_t context_len, const uint8_t *wrapped, size_t wrapped_len, struct kms_dk **dk)
{
	struct kms_key_info ki;
	struct kms_dk *d = NULL;
	uint8_t *cmk, *plain;
	int rc;

	memset(&ki, 0, sizeof(ki));
	if (!k || !dk)
		return -EINVAL;
	*dk = NULL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	cmk = k->scratch;
	plain = k->scratch + KMS_KEY_BYTES;
	rc = args_check(c, key_id, context, context_len);
	if (rc == 0 && !wrapped)
		rc = -EINVAL;
	if (rc == 0)
		rc = use_check(k, c, key_id, &ki);
	if (rc == 0)
		rc = blob_cmk_load(k, &ki, wrapped, wrapped_len, cmk);
	if (rc == 0)
		rc = dk_open(ki.id, cmk, wrapped, context, context_len, plain);
	bad_blob_log(k, rc, &ki);
	if (rc == 0)
		rc = kms_dk_new(plain, &d);
	sodium_memzero(k->scratch, KMS_SCRATCH_BYTES);
	rc = kms_finish(k, c, NULL, "dk.unwrap", ki.id[0] ? ki.id : NULL, rc);
	kms_leave(k);
	if (rc < 0) {
		kms_dk_destroy(d);
		return rc;
	}
	*dk = d;
	return 0;
}

int kms_dk_rewrap(struct kms *k, const struct kms_caller *c, const char *key_id, const void *context,
		  size_t context_len, const uint8_t *wrapped, size_t wrapped_len, uint8_t out[static KMS_WRAPPED_MAX],
		  size_t *out_len)
{
	struct kms_key_info ki;
	uint8_t *cmk, *plain;
	int rc;

	memset(&ki, 0, sizeof(ki));
	if (!k || !out_len)
		return -EINVAL;
	*out_len = 0;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	cmk = k->scratch;
	plain = k->scratch + KMS_KEY_BYTES;
	rc = args_check(c, key_id, context, context_len);
	if (rc == 0 && !wrapped)
		rc = -EINVAL;
	if (rc == 0)
		rc = use_check(k, c, key_id, &ki);
	if (rc == 0)
		rc = blob_cmk_load(k, &ki, wrapped, wrapped_len, cmk);
	if (rc == 0)
		rc = dk_open(ki.id, cmk, wrapped, context, context_len, plain);
	bad_blob_log(k, rc, &ki);
	if (rc == 0)
		rc = newest_cmk_load(k, &ki, cmk);
	if (rc == 0)
		dk_seal(ki.id, ki.version, cmk, plain, context, context_len, out);
	sodium_memzero(k->scratch, KMS_SCRATCH_BYTES);
	rc = kms_finish(k, c, NULL, "dk.rewrap", ki.id[0] ? ki.id : NULL, rc);
	kms_leave(k);
	if (rc < 0) {
		sodium_memzero(out, KMS_WRAPPED_MAX);
		return rc;
	}
	*out_len = DK_BLOB_BYTES;
	return 0;
}
