/* SPDX-License-Identifier: MIT */
/*
 * kms_audit.c - the tamper-evident audit log.
 *
 * Every mutation of the key store, every data-key operation and every
 * refused attempt at one appends a row to audit(seq, time, uid, user,
 * project, op, key, result, mac).  Rows form a MAC chain:
 *
 *   mac[n] = BLAKE2b-256_keyed(audit subkey,
 *              "evfs-audit-v1" | mac[n-1] | seq (8 BE) | time (8 BE) |
 *              uid (4 BE) | result (4 BE, two's complement) |
 *              len(user) (4 BE) | user | len(project) | project |
 *              len(op) | op | len(key) | key)
 *
 * with mac[0] = 32 zero bytes, seq = 1, 2, 3, ... without gaps.  Strings are
 * length-prefixed, so no two different entries serialise alike.  The audit
 * subkey is derived from the root key (kms_root.c): whoever can edit the
 * store (kms.db, or the tables of its PostgreSQL schema) but does not hold
 * the root key cannot rewrite, insert, delete or reorder an entry without
 * kms_audit_verify() noticing.  To notice truncation (the
 * newest rows deleted) the store also keeps settings.audit_head =
 * seq (8 BE) | BLAKE2b_keyed("evfs-audit-head" | seq | mac[seq]); dropping
 * rows then also needs an old copy of that record.  Restoring an entire
 * older copy of kms.db (rollback), or of the schema, is not detected; that
 * is outside what the store itself can prove.
 *
 * Appends run inside the caller's transaction when one is open (so a
 * mutation and its entry commit together or not at all), otherwise in a
 * write transaction of their own (kms_tx_begin: the write lock at once),
 * which also serialises appenders on the chain head: several processes on
 * one SQLite file, or several hosts on one PostgreSQL schema, where the
 * chain is one chain whichever host wrote an entry.  The column "user" is
 * quoted: PostgreSQL reserves the word.
 *
 * kms_audit_list() reads in batches and runs the callback without the lock,
 * so a long log never blocks other threads and callbacks may call back into
 * the KMS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kms_internal.h"

#define HEAD_BYTES (8u + KMS_MAC_BYTES)
#define LIST_BATCH 256

static const uint8_t zero_mac[KMS_MAC_BYTES];

static void mac_str(crypto_generichash_state *h, const char *s, size_t n)
{
	uint8_t len[4];

	kms_be32_put(len, (uint32_t)n);
	crypto_generichash_update(h, len, sizeof(len));
	if (n)
		crypto_generichash_update(h, (const unsigned char *)s, n);
}

/* Raw fields of one entry as stored (strings with explicit lengths). */
struct raw_entry {
	int64_t seq, time;
	uint32_t uid;
	int32_t result;
	const char *s[4]; /* user, project, op, key */
	size_t n[4];
};

static void entry_mac(const uint8_t key[static KMS_KEY_BYTES], const uint8_t prev[static KMS_MAC_BYTES],
		      const struct raw_entry *e, uint8_t out[static KMS_MAC_BYTES])
{
	crypto_generichash_state h;
	uint8_t fix[24];
	int i;

	kms_be64_put(fix, (uint64_t)e->seq);
	kms_be64_put(fix + 8, (uint64_t)e->time);
	kms_be32_put(fix + 16, e->uid);
	kms_be32_put(fix + 20, (uint32_t)e->result);
	crypto_generichash_init(&h, key, KMS_KEY_BYTES, KMS_MAC_BYTES);
	crypto_generichash_update(&h, (const unsigned char *)"evfs-audit-v1", 13);
	crypto_generichash_update(&h, prev, KMS_MAC_BYTES);
	crypto_generichash_update(&h, fix, sizeof(fix));
	for (i = 0; i < 4; i++)
		mac_str(&h, e->s[i], e->n[i]);
	crypto_generichash_final(&h, out, KMS_MAC_BYTES);
	sodium_memzero(&h, sizeof(h));
}

static void head_make(const uint8_t key[static KMS_KEY_BYTES], int64_t seq, const uint8_t mac[static KMS_MAC_BYTES],
		      uint8_t out[static HEAD_BYTES])
{
	crypto_generichash_state h;

	kms_be64_put(out, (uint64_t)seq);
	crypto_generichash_init(&h, key, KMS_KEY_BYTES, KMS_MAC_BYTES);
	crypto_generichash_update(&h, (const unsigned char *)"evfs-audit-head", 15);
	crypto_generichash_update(&h, out, 8);
	crypto_generichash_update(&h, mac, KMS_MAC_BYTES);
	crypto_generichash_final(&h, out + 8, KMS_MAC_BYTES);
	sodium_memzero(&h, sizeof(h));
}

/* Bounded length of an optional string (NULL -> 0), cut to fit max-1. */
static size_t field_len(const char *s, size_t max)
{
	return s ? strnlen(s, max - 1) : 0;
}

static int append_locked(struct kms *k, const struct raw_entry *in)
{
	uint8_t prev[KMS_MAC_BYTES], mac[KMS_MAC_BYTES], head[HEAD_BYTES];
	struct raw_entry e = *in;
	struct sqldb_stmt *st = NULL;
	int rc;

	memcpy(prev, zero_mac, sizeof(prev));
	e.seq = 1;
	rc = kms_sql_prep(k, &st, "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1", NULL);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1) {
		e.seq = sqldb_column_int64(st, 0) + 1;
		if (sqldb_column_bytes(st, 1) == (int)KMS_MAC_BYTES) {
			memcpy(prev, sqldb_column_blob(st, 1), KMS_MAC_BYTES);
			rc = 0;
		} else {
			rc = -EUCLEAN;
		}
	}
	sqldb_finalize(st);
	if (rc < 0)
		return rc;
	entry_mac(k->sec->audit, prev, &e, mac);
	rc = kms_sql_run(k, "INSERT INTO audit(seq, time, uid, \"user\", project, op, \"key\", result, mac)"
			    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			 "IIITTTTib", e.seq, e.time, (int64_t)e.uid, e.s[0], e.n[0], e.s[1], e.n[1], e.s[2], e.n[2],
			 e.s[3], e.n[3], (int)e.result, (const void *)mac, sizeof(mac));
	if (rc < 0)
		return rc;
	head_make(k->sec->audit, e.seq, mac, head);
	return kms_setting_put(k, "audit_head", 'b', (const void *)head, sizeof(head));
}

int kms_audit_append(struct kms *k, uint32_t uid, const char *user, const char *project, const char *op,
		     const char *key_id, int result)
{
	struct raw_entry e;
	int rc, own_tx;

	memset(&e, 0, sizeof(e));
	e.time = kms_now();
	e.uid = uid;
	e.result = result;
	e.s[0] = user;
	e.n[0] = field_len(user, KMS_USER_MAX);
	e.s[1] = project;
	e.n[1] = field_len(project, KMS_PROJECT_MAX);
	e.s[2] = op;
	e.n[2] = field_len(op, KMS_OP_MAX);
	e.s[3] = key_id;
	e.n[3] = field_len(key_id, KMS_ID_LEN + 1);
	if (!op || e.n[2] != strlen(op))
		return -EINVAL;   /* ops are our own constants */

	own_tx = !sqldb_in_tx(k->db);
	if (own_tx && (rc = kms_tx_begin(k)) < 0)
		goto fail;
	rc = append_locked(k, &e);
	if (rc == 0 && own_tx)
		rc = kms_tx_commit(k);
	if (rc == 0)
		return 0;
	if (own_tx)
		kms_tx_rollback(k);
fail:
	KMS_LOG(k, LOG_ERR, "kms: cannot append audit entry %s (error %d)", op, rc);
	return rc;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

static void col_copy(struct sqldb_stmt *st, int col, char *dst, size_t n)
{
	const char *s = sqldb_column_text(st, col);
	size_t len = s ? strnlen(s, (size_t)sqldb_column_bytes(st, col)) : 0;

	if (len >= n)
		len = n - 1;
	if (len)
		memcpy(dst, s, len);
	dst[len] = '\0';
}

int kms_audit_list(struct kms *k, const char *key_id, kms_audit_cb cb, void *ctx)
{
	struct kms_audit_entry *v;
	struct sqldb_stmt *st = NULL;
	int64_t after = 0;
	int rc = 0, i, n;

	if (!k || !cb || (key_id && strnlen(key_id, KMS_ID_LEN + 1) > KMS_ID_LEN))
		return -EINVAL;
	v = calloc(LIST_BATCH, sizeof(*v));
	if (!v)
		return -ENOMEM;
	do {
		n = 0;
		if ((rc = kms_enter(k)) < 0)
			break;
		/* CAST: PostgreSQL cannot type a NULL parameter that is only
		 * tested with IS NULL */
		rc = kms_sql_prep(k, &st,
				  "SELECT seq, time, uid, \"user\", project, op, \"key\", result FROM audit"
				  " WHERE seq > ? AND (CAST(?2 AS TEXT) IS NULL OR \"key\" = ?2) ORDER BY seq LIMIT ?",
				  "Iti", after, key_id, LIST_BATCH);
		while (rc == 0 && (rc = kms_sql_step(k, st)) == 1) {
			struct kms_audit_entry *e = &v[n++];

			memset(e, 0, sizeof(*e));
			e->seq = sqldb_column_int64(st, 0);
			e->time = sqldb_column_int64(st, 1);
			e->uid = (uint32_t)sqldb_column_int64(st, 2);
			col_copy(st, 3, e->user, sizeof(e->user));
			col_copy(st, 4, e->project, sizeof(e->project));
			col_copy(st, 5, e->op, sizeof(e->op));
			col_copy(st, 6, e->key, sizeof(e->key));
			e->result = (int)sqldb_column_int64(st, 7);
			after = e->seq;
			rc = 0;
		}
		sqldb_finalize(st);
		st = NULL;
		kms_leave(k);
		for (i = 0; rc == 0 && i < n; i++)
			rc = cb(ctx, &v[i]);
	} while (rc == 0 && n == LIST_BATCH);
	free(v);
	return rc;
}

static int row_verify(struct sqldb_stmt *st, const uint8_t key[static KMS_KEY_BYTES],
		      uint8_t prev[static KMS_MAC_BYTES])
{
	uint8_t mac[KMS_MAC_BYTES];
	struct raw_entry e;
	int i, ok;

	for (i = 0; i < 8; i++)
		if (sqldb_column_type(st, i) != (i >= 3 && i <= 6 ? SQLDB_TEXT : SQLDB_INT))
			return 0;
	if (sqldb_column_type(st, 8) != SQLDB_BLOB || sqldb_column_bytes(st, 8) != (int)KMS_MAC_BYTES ||
	    sqldb_column_int64(st, 2) < 0 || sqldb_column_int64(st, 2) > UINT32_MAX ||
	    sqldb_column_int64(st, 7) < INT32_MIN || sqldb_column_int64(st, 7) > INT32_MAX)
		return 0;
	memset(&e, 0, sizeof(e));
	e.seq = sqldb_column_int64(st, 0);
	e.time = sqldb_column_int64(st, 1);
	e.uid = (uint32_t)sqldb_column_int64(st, 2);
	e.result = (int32_t)sqldb_column_int64(st, 7);
	for (i = 0; i < 4; i++) {
		e.s[i] = sqldb_column_text(st, 3 + i);
		e.n[i] = e.s[i] ? (size_t)sqldb_column_bytes(st, 3 + i) : 0;
	}
	entry_mac(key, prev, &e, mac);
	ok = sodium_memcmp(mac, sqldb_column_blob(st, 8), KMS_MAC_BYTES) == 0;
	memcpy(prev, mac, KMS_MAC_BYTES);
	return ok;
}

/* Check settings.audit_head against the last entry (seq, mac). */
static int head_check(struct kms *k, int64_t seq, const uint8_t mac[static KMS_MAC_BYTES])
{
	uint8_t want[HEAD_BYTES], got[HEAD_BYTES];
	int rc = kms_setting_get(k, "audit_head", 'b', NULL, got, sizeof(got));

	if (rc == 0) {
		head_make(k->sec->audit, seq, mac, want);
		rc = sodium_memcmp(want, got, HEAD_BYTES) == 0 ? 0 : -EBADMSG;
	} else if (rc == -ENOENT) {
		rc = seq == 0 ? 0 : -EBADMSG;     /* no head: only an empty log */
	} else if (rc == -EUCLEAN) {
		rc = -EBADMSG;                    /* not a head record */
	}
	return rc;
}

int kms_audit_verify(struct kms *k, int64_t *bad_seq)
{
	uint8_t prev[KMS_MAC_BYTES];
	struct sqldb_stmt *st = NULL;
	int64_t expect = 1;
	int rc;

	if (!k)
		return -EINVAL;
	if (bad_seq)
		*bad_seq = 0;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	memcpy(prev, zero_mac, sizeof(prev));
	rc = kms_sql_prep(k, &st,
			  "SELECT seq, time, uid, \"user\", project, op, \"key\", result, mac FROM audit ORDER BY seq",
			  NULL);
	while (rc == 0 && (rc = kms_sql_step(k, st)) == 1) {
		rc = 0;
		if (sqldb_column_int64(st, 0) != expect || !row_verify(st, k->sec->audit, prev)) {
			rc = -EBADMSG;
			break;
		}
		expect++;
	}
	sqldb_finalize(st);
	if (rc == 0 && (rc = head_check(k, expect - 1, prev)) == -EBADMSG)
		KMS_LOG(k, LOG_ERR, "kms: audit log truncated or its head record altered after entry %lld",
			(long long)(expect - 1));
	else if (rc == -EBADMSG)
		KMS_LOG(k, LOG_ERR, "kms: audit entry %lld does not verify", (long long)expect);
	kms_leave(k);
	if (rc == -EBADMSG && bad_seq)
		*bad_seq = expect;
	sodium_memzero(prev, sizeof(prev));
	return rc;
}
