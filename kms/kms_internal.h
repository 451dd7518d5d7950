/* SPDX-License-Identifier: MIT */
/*
 * kms_internal.h - private to kms/: the layout of struct kms and the helpers
 * the kms*.c files share.  Nothing outside kms/ may include this file.
 *
 * Files of the module, one concept each:
 *   kms.c        store lifecycle (create/open/close), the schema of both
 *                engines, the SQL plumbing over sqldb (SQLite file or
 *                PostgreSQL schema), settings, call entry/exit
 *   kms_root.c   the root key: key file, passphrase + Argon2id, subkeys,
 *                verifier
 *   kms_cmk.c    customer master key material: seal/open under the root
 *                key, rotation, retirement, crypto-shredding of expired keys
 *   kms_keys.c   grants, key records, name resolution, the state machine,
 *                sharing
 *   kms_dk.c     data keys: generate/unwrap/rewrap and the blob format
 *   kms_p11.c    the root key in a PKCS#11 token: module, session, seal
 *   kms_audit.c  the MAC-chained audit log
 *   kms_util.c   pure helpers: validation, UUIDs, big-endian, state names
 *
 * Locking: every public call that touches the database takes k->lock for
 * its whole duration through kms_enter()/kms_leave(); all helpers below
 * assume the lock is held unless they say otherwise.
 */
#ifndef EVFS_KMS_INTERNAL_H
#define EVFS_KMS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <syslog.h>

#include "kms.h"
#include "sqldb/sqldb.h"

/* crypto_kdf subkey ids under the root key, context "evfsroot". */
#define KMS_KDF_CONTEXT "evfsroot"
#define KMS_SUBKEY_VERIFY 1u
#define KMS_SUBKEY_WRAP 2u
#define KMS_SUBKEY_AUDIT 3u

#define KMS_MAC_BYTES 32u
#define KMS_NONCE_BYTES 24u     /* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define KMS_TAG_BYTES 16u       /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
/* A sealed CMK row: nonce | ciphertext | tag. */
#define KMS_CMK_SEALED_BYTES (KMS_NONCE_BYTES + KMS_KEY_BYTES + KMS_TAG_BYTES)
#define KMS_CONTEXT_MAX 1024u   /* DK wrap context (associated data) limit */
#define KMS_USER_MAX 64u        /* user name incl. NUL (kms_audit_entry.user) */
#define KMS_OP_MAX 32u          /* audit op name incl. NUL */
#define KMS_SCHEMA_VERSION 1
#define KMS_APPLICATION_ID 0x65766b73 /* "evks" */

/* Long-lived secrets: one sodium_malloc allocation, noaccess outside calls. */
struct kms_secrets {
	uint8_t root[KMS_KEY_BYTES];
	uint8_t wrap[KMS_KEY_BYTES];    /* seals CMK material rows */
	uint8_t audit[KMS_KEY_BYTES];   /* keys the audit MAC chain */
};

struct kms {
	pthread_mutex_t lock;
	struct sqldb *db;               /* protected by lock */
	struct kms_secrets *sec;        /* protected by lock; noaccess outside
					 * (PKCS11: root and wrap stay zero) */
	struct kms_p11 *p11;            /* PKCS11 backend session, else NULL;
					 * used only under lock */
	uint8_t *scratch;               /* protected by lock; 2 keys of plaintext
					 * scratch, noaccess outside calls */
	int ckpt_pending;               /* protected by lock: the cleanup after
					 * shredding failed (SQLite: the TRUNCATE
					 * checkpoint; PostgreSQL: VACUUM) */
	char *admins;                   /* immutable after open */
	kms_log_fn log;                 /* immutable after open */
	void *log_ctx;
};

#define KMS_SCRATCH_BYTES (2u * KMS_KEY_BYTES)

/* --- kms.c -------------------------------------------------------------- */
void kms_logf(kms_log_fn fn, void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define KMS_LOG(k, lvl, ...) kms_logf((k)->log, (k)->log_ctx, (lvl), __VA_ARGS__)

/* Lock, unprotect secrets, expire due keys.  On error the lock is released
 * again and the error returned. */
int kms_enter(struct kms *k) KMS_WUR;
/* Wipe scratch, protect secrets, unlock. */
void kms_leave(struct kms *k);

/* Prepare sql and bind its parameters as fmt says, one char each:
 *   't' const char *  (text; NULL binds NULL)
 *   'T' const char *, size_t  (text of that many bytes; NULL binds "")
 *   'i' int, 'I' int64_t
 *   'b' const void *, size_t  (blob)                                    */
int kms_sql_prep(struct kms *k, struct sqldb_stmt **st, const char *sql, const char *fmt, ...) KMS_WUR;
/* Step: 1 = a row, 0 = done, negative errno. */
int kms_sql_step(struct kms *k, struct sqldb_stmt *st) KMS_WUR;
/* Prepare, bind, run to completion: changed row count or negative errno. */
int kms_sql_run(struct kms *k, const char *sql, const char *fmt, ...) KMS_WUR;
int kms_tx_begin(struct kms *k) KMS_WUR;       /* sqldb_begin: the write lock at once */
int kms_tx_commit(struct kms *k) KMS_WUR;      /* 0 if no transaction open */
void kms_tx_rollback(struct kms *k);           /* no-op if none open */
/* After destroying key material, outside a transaction: SQLite
 * wal_checkpoint(TRUNCATE), PostgreSQL VACUUM key_versions; on failure
 * remember to retry. */
void kms_checkpoint(struct kms *k);
/* 1 if the store lives in PostgreSQL. */
int kms_is_pg(const struct kms *k);

/* Copy a column of st into dst (size n): -EUCLEAN if NULL-typed when
 * required, or too long. */
int kms_col_text(struct sqldb_stmt *st, int col, char *dst, size_t n) KMS_WUR;

/* Settings (name -> value; an integer, text or blob, see kms.c).
 * put: insert or replace; type 'I' (int64_t), 't' (const char *) or 'b'
 * (const void *, size_t).  get: 'I' into *iv, 'b' exactly n bytes into
 * buf, 't' a string of fewer than n bytes into buf; -ENOENT when there is
 * no such setting, -EUCLEAN when it has another type or size. */
int kms_setting_put(struct kms *k, const char *name, char type, ...) KMS_WUR;
int kms_setting_get(struct kms *k, const char *name, char type, int64_t *iv, void *buf, size_t n) KMS_WUR;

/* Finish a public call.  rc == 0: append the success audit entry and
 * commit the open transaction (if any).  rc != 0, or audit/commit failed:
 * roll back and append a refusal entry in a transaction of its own.
 * Returns rc, or the audit error if recording failed. */
int kms_finish(struct kms *k, const struct kms_caller *c, const char *project, const char *op,
	       const char *key_id, int rc) KMS_WUR;

/* --- kms_util.c --------------------------------------------------------- */
int64_t kms_now(void);
int kms_check_caller(const struct kms_caller *c) KMS_WUR;
int kms_check_project(const char *p) KMS_WUR;
int kms_check_alias(const char *alias) KMS_WUR;
int kms_check_name(const char *name) KMS_WUR;
int kms_is_uuid(const char *s);
void kms_uuid_new(char out[static KMS_ID_LEN + 1]);
void kms_be32_put(uint8_t *p, uint32_t v);
uint32_t kms_be32_get(const uint8_t *p);
void kms_be64_put(uint8_t *p, uint64_t v);

/* --- kms_root.c --------------------------------------------------------- */
int kms_keyfile_load(const char *path, int create, uint8_t root[static KMS_KEY_BYTES],
		     int *created) KMS_WUR;
int kms_passphrase_derive(const char *path, const uint8_t *salt, unsigned long long opslimit,
			  size_t memlimit, size_t min_len, uint8_t root[static KMS_KEY_BYTES]) KMS_WUR;
/* Fill sec->wrap and sec->audit from sec->root. */
int kms_subkeys_derive(struct kms_secrets *sec) KMS_WUR;
int kms_verifier_compute(const uint8_t root[static KMS_KEY_BYTES], uint8_t out[static KMS_MAC_BYTES]) KMS_WUR;

/* --- kms_p11.c ---------------------------------------------------------- */
/* A token seal: IV (12) | ciphertext | GCM tag (16). */
#define KMS_P11_IV_BYTES 12u
#define KMS_P11_TAG_BYTES 16u
#define KMS_P11_OVERHEAD (KMS_P11_IV_BYTES + KMS_P11_TAG_BYTES)
#define KMS_P11_CMK_SEALED_BYTES (KMS_P11_OVERHEAD + KMS_KEY_BYTES)
struct kms_p11;
/* Load the module, find the token, log in, find the key (create: generate
 * it if missing).  Errors as documented in kms.h for kms_create. */
int kms_p11_open(const struct kms_options *opt, int create, struct kms_p11 **out) KMS_WUR;
void kms_p11_close(struct kms_p11 *p);
/* Seal n bytes into out (n + KMS_P11_OVERHEAD bytes) with the token's key,
 * AES-GCM, random IV, ad as associated data. */
int kms_p11_seal(struct kms *k, const uint8_t *plain, size_t n, const uint8_t *ad, size_t adn,
		 uint8_t *out) KMS_WUR;
/* Unseal sn bytes into plain (sn - KMS_P11_OVERHEAD bytes): -EBADMSG if
 * they do not authenticate under the token's key and ad. */
int kms_p11_unseal(struct kms *k, const uint8_t *sealed, size_t sn, const uint8_t *ad, size_t adn,
		   uint8_t *plain) KMS_WUR;
/* Small token objects of our own (CKO_DATA, application "evfs", private,
 * on the token): what the store keeps where a copy of the store's files
 * cannot roll it back (kms_fresh.c). */
#define KMS_P11_NOTE_APP "evfs"
#define KMS_P11_NOTE_MAX 64u
/* cb gets the value of each object so labelled (normally one; two after a
 * crash inside note_set); returns their number, cb's negative return, or a
 * negative errno. */
int kms_p11_note_each(struct kms *k, const char *label, int (*cb)(void *ctx, const uint8_t *val, size_t n),
		      void *ctx) KMS_WUR;
int kms_p11_note_set(struct kms *k, const char *label, const uint8_t *val, size_t n) KMS_WUR;
int kms_p11_note_drop(struct kms *k, const char *label) KMS_WUR;
const char *kms_p11_token(const struct kms *k);
const char *kms_p11_key(const struct kms *k);

/* --- kms_cmk.c ---------------------------------------------------------- */
/* Generate random material for (key_id, version) and insert it sealed. */
int kms_cmk_new(struct kms *k, const char *key_id, uint32_t version) KMS_WUR;
/* Plaintext material of (key_id, version) into cmk: -ENOENT no such
 * version, -ENOKEY destroyed, -EUCLEAN row does not authenticate. */
int kms_cmk_load(struct kms *k, const char *key_id, uint32_t version, uint8_t cmk[static KMS_KEY_BYTES]) KMS_WUR;
/* Destroy all versions but the newest: count destroyed. */
int kms_cmk_retire_old(struct kms *k, const char *key_id) KMS_WUR;
/* Turn due PendingDeletion keys into Deleted, destroying their material. */
int kms_cmk_expire(struct kms *k) KMS_WUR;

/* --- kms_keys.c --------------------------------------------------------- */
int kms_key_info_load(struct kms *k, const char *id, struct kms_key_info *out) KMS_WUR;
int kms_grant_check(struct kms *k, const char *project) KMS_WUR;  /* 0 or -EACCES */
/* Resolve a name for data-key use by c->project: own or shared-in keys
 * only; an existing id that is neither is -EACCES. */
int kms_key_resolve_use(struct kms *k, const struct kms_caller *c, const char *name,
			struct kms_key_info *out) KMS_WUR;

/* --- kms_audit.c -------------------------------------------------------- */
/* Append one entry (in the open transaction, else in one of its own).
 * Strings may be NULL (recorded as "") and are truncated to the entry's
 * field sizes. */
int kms_audit_append(struct kms *k, uint32_t uid, const char *user, const char *project, const char *op,
		     const char *key_id, int result) KMS_WUR;

/* kms_dk.c: a new handle (refcount 1) holding a copy of key. */
int kms_dk_new(const uint8_t key[static KMS_KEY_BYTES], struct kms_dk **out);

#endif
