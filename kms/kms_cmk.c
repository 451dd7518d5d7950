/* SPDX-License-Identifier: MIT */
/*
 * kms_cmk.c - customer master key material: sealing, rotation, shredding.
 *
 * A CMK version is 32 random bytes that exist in plaintext only inside one
 * call, in the handle's sodium_malloc scratch (k->scratch, PROT_NONE between
 * calls and wiped at kms_leave()).  On disk each version is one row of
 * key_versions whose `material` column holds
 *
 *     nonce (24) | XChaCha20-Poly1305 ciphertext (32) | tag (16)  = 72 bytes
 *
 * under the root-derived wrap subkey, with associated data
 *
 *     "evfs-cmk" (8 bytes) | key id (36 chars) | version (4 bytes BE)
 *
 * so a row copied onto another key or version does not authenticate.  A row
 * that fails authentication is store damage or tampering: -EUCLEAN.
 *
 * PKCS11 stores (R34) have no wrap subkey: the token seals the material
 * itself (kms_p11_seal: AES-GCM under the token's key, never in our memory)
 * with the same associated data, and the row is
 *
 *     IV (12) | AES-GCM ciphertext (32) | tag (16)  = 60 bytes
 *
 * Without the token (or with another token's key) no row unseals.
 *
 * Destroying material ("crypto-shredding", R12/R19) sets the column to NULL.
 * With secure_delete=ON SQLite zeroes the freed cell bytes; because WAL
 * still holds the previous page images, every destruction is followed, after
 * commit, by PRAGMA wal_checkpoint(TRUNCATE) (kms_checkpoint()).  In
 * PostgreSQL the old row version stays as a dead tuple: kms_checkpoint()
 * runs VACUUM key_versions instead, and what the server's WAL and backups
 * still hold is only ever sealed material (kms.c's essay).  Two paths
 * destroy material: kms_key_retire_old() (all versions but the newest) and
 * expiry - a PendingDeletion key whose deletion_date has passed becomes
 * Deleted with every version NULL.  Expiry runs at kms_open() and at the
 * start of every public call (kms_enter()), so the first call that sees the
 * date passed destroys the key, whatever the call is.  Each expiry appends a
 * "key.expire" audit entry.
 *
 * Not here: who may use or change a key (kms_keys.c, kms_dk.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "kms_internal.h"

#define CMK_AD_BYTES (8u + KMS_ID_LEN + 4u)

static void cmk_ad(uint8_t ad[static CMK_AD_BYTES], const char *key_id, uint32_t version)
{
	memcpy(ad, "evfs-cmk", 8);
	memcpy(ad + 8, key_id, KMS_ID_LEN);
	kms_be32_put(ad + 8 + KMS_ID_LEN, version);
}

int kms_cmk_new(struct kms *k, const char *key_id, uint32_t version)
{
	uint8_t sealed[KMS_CMK_SEALED_BYTES], ad[CMK_AD_BYTES];
	uint8_t *cmk = k->scratch;
	size_t len = KMS_CMK_SEALED_BYTES;
	int rc;

	if (!kms_is_uuid(key_id) || version == 0 || version > INT32_MAX)
		return -EINVAL;
	cmk_ad(ad, key_id, version);
	randombytes_buf(cmk, KMS_KEY_BYTES);
	if (k->p11) {
		rc = kms_p11_seal(k, cmk, KMS_KEY_BYTES, ad, sizeof(ad), sealed);
		sodium_memzero(cmk, KMS_KEY_BYTES);
		if (rc < 0)
			return rc;
		len = KMS_P11_CMK_SEALED_BYTES;
	} else {
		randombytes_buf(sealed, KMS_NONCE_BYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + KMS_NONCE_BYTES, NULL, cmk, KMS_KEY_BYTES, ad,
							   sizeof(ad), NULL, sealed, k->sec->wrap);
		sodium_memzero(cmk, KMS_KEY_BYTES);
	}
	rc = kms_sql_run(k, "INSERT INTO key_versions(key_id, version, created, material) VALUES (?, ?, ?, ?)",
			 "tIIb", key_id, (int64_t)version, kms_now(), (const void *)sealed, len);
	return rc < 0 ? rc : 0;
}

int kms_cmk_load(struct kms *k, const char *key_id, uint32_t version, uint8_t cmk[static KMS_KEY_BYTES])
{
	uint8_t sealed[KMS_CMK_SEALED_BYTES], ad[CMK_AD_BYTES];
	unsigned long long n = 0;
	struct sqldb_stmt *st = NULL;
	size_t want = k->p11 ? KMS_P11_CMK_SEALED_BYTES : KMS_CMK_SEALED_BYTES;
	int rc;

	if (!kms_is_uuid(key_id) || version == 0)
		return -ENOENT;
	rc = kms_sql_prep(k, &st, "SELECT material FROM key_versions WHERE key_id = ? AND version = ?", "tI",
			  key_id, (int64_t)version);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 0) {
		rc = -ENOENT;
	} else if (rc == 1) {
		if (sqldb_column_type(st, 0) == SQLDB_NULL) {
			rc = -ENOKEY;
		} else if (sqldb_column_type(st, 0) != SQLDB_BLOB || sqldb_column_bytes(st, 0) != (int)want) {
			rc = -EUCLEAN;
		} else {
			memcpy(sealed, sqldb_column_blob(st, 0), want);
			rc = 0;
		}
	}
	sqldb_finalize(st);
	if (rc < 0)
		return rc;
	cmk_ad(ad, key_id, version);
	if (k->p11) {
		rc = kms_p11_unseal(k, sealed, want, ad, sizeof(ad), cmk);
		if (rc == -EBADMSG) {
			KMS_LOG(k, LOG_ERR, "kms: material of key %s version %u does not authenticate under key "
				"\"%s\" of token \"%s\"", key_id, (unsigned)version, kms_p11_key(k), kms_p11_token(k));
			rc = -EUCLEAN;
		}
		if (rc < 0)
			sodium_memzero(cmk, KMS_KEY_BYTES);
		return rc;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(cmk, &n, NULL, sealed + KMS_NONCE_BYTES,
						       KMS_KEY_BYTES + KMS_TAG_BYTES, ad, sizeof(ad), sealed,
						       k->sec->wrap) != 0 ||
	    n != KMS_KEY_BYTES) {
		sodium_memzero(cmk, KMS_KEY_BYTES);
		KMS_LOG(k, LOG_ERR, "kms: material of key %s version %u does not authenticate", key_id,
			(unsigned)version);
		return -EUCLEAN;
	}
	return 0;
}

int kms_cmk_retire_old(struct kms *k, const char *key_id)
{
	return kms_sql_run(k, "UPDATE key_versions SET material = NULL WHERE key_id = ?1 AND material IS NOT NULL"
			      " AND version < (SELECT max(version) FROM key_versions WHERE key_id = ?1)",
			   "t", key_id);
}

struct expired {
	char id[KMS_ID_LEN + 1];
	char project[KMS_PROJECT_MAX];
	char alias[KMS_ALIAS_MAX];
};

/* Collect due keys (inside the transaction). */
static int expired_collect(struct kms *k, int64_t now, struct expired **out, size_t *count)
{
	struct expired *v = NULL, *nv;
	size_t n = 0, cap = 0;
	struct sqldb_stmt *st = NULL;
	int rc;

	rc = kms_sql_prep(k, &st, "SELECT id, project, alias FROM keys WHERE state = ? AND deletion_date <= ?"
			  " ORDER BY id", "iI", (int)KMS_KEY_PENDING_DELETION, now);
	if (rc < 0)
		return rc;
	while ((rc = kms_sql_step(k, st)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		if ((rc = kms_col_text(st, 0, v[n].id, sizeof(v[n].id))) < 0 ||
		    (rc = kms_col_text(st, 1, v[n].project, sizeof(v[n].project))) < 0 ||
		    (rc = kms_col_text(st, 2, v[n].alias, sizeof(v[n].alias))) < 0)
			break;
		n++;
	}
	sqldb_finalize(st);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*count = n;
	return 0;
}

int kms_cmk_expire(struct kms *k)
{
	struct expired *v = NULL;
	int64_t now = kms_now(), due = 0;
	struct sqldb_stmt *st = NULL;
	size_t i, n = 0;
	int rc;

	/* Cheap read first: the common case takes no write lock. */
	rc = kms_sql_prep(k, &st, "SELECT count(*) FROM keys WHERE state = ? AND deletion_date <= ?", "iI",
			  (int)KMS_KEY_PENDING_DELETION, now);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1)
		due = sqldb_column_int64(st, 0);
	sqldb_finalize(st);
	if (rc < 0 || due == 0)
		return rc < 0 ? rc : 0;

	if ((rc = kms_tx_begin(k)) < 0)
		return rc;
	if ((rc = expired_collect(k, now, &v, &n)) < 0)
		goto out;
	for (i = 0; i < n && rc >= 0; i++) {
		rc = kms_sql_run(k, "UPDATE key_versions SET material = NULL WHERE key_id = ?", "t", v[i].id);
		if (rc >= 0)
			rc = kms_sql_run(k, "UPDATE keys SET state = ? WHERE id = ?", "it", (int)KMS_KEY_DELETED,
					 v[i].id);
		if (rc >= 0)
			rc = kms_audit_append(k, (uint32_t)geteuid(), "kms", v[i].project, "key.expire", v[i].id, 0);
	}
	if (rc >= 0)
		rc = kms_tx_commit(k);
	if (rc < 0)
		goto out;
	kms_checkpoint(k);
	for (i = 0; i < n; i++)
		KMS_LOG(k, LOG_NOTICE, "kms: key %s (%s/%s) reached its deletion date: material destroyed",
			v[i].id, v[i].project, v[i].alias);
out:
	kms_tx_rollback(k);
	free(v);
	return rc < 0 ? rc : 0;
}
