/* SPDX-License-Identifier: MIT */
/*
 * kms.c - the key store: its file, its schema, its lifecycle.
 *
 * The KMS models a separate service, so it keeps its own SQLite database
 * (normally STORE/kms.db) that no other module opens.  This file owns that
 * database connection: creating and opening the store, the schema, the
 * PRAGMAs, the one function that turns SQLite result codes into negative
 * errno values (kms_errno), and the entry/exit protocol of every public call.
 *
 * On-disk layout (PRAGMA application_id 'evks', user_version 1):
 *
 *   settings(name, value)      root_kind, region, created, verifier
 *                              (BLAKE2b MAC of a fixed string under a root
 *                              subkey - never the key), pwhash_salt/opslimit/
 *                              memlimit/alg for passphrase stores, audit_head;
 *                              PKCS#11 stores (R34): verifier = a fixed
 *                              string sealed by the token, audit_key = the
 *                              random audit MAC key sealed by the token,
 *                              p11_token/p11_key = labels (for messages)
 *   grants(project, granted_by, granted_user, time)
 *   keys(id, alias, project, description, state, is_default, created,
 *        deletion_date)        UNIQUE(project, alias); Deleted keys stay so
 *                              that messages can still name them
 *   key_versions(key_id, version, created, material)
 *                              material = XChaCha20-Poly1305 sealed CMK
 *                              (see kms_cmk.c), NULL once destroyed
 *   shares(key_id, project, time)
 *   audit(seq, time, uid, user, project, op, key, result, mac)
 *                              MAC-chained, see kms_audit.c
 *
 * The file is created 0600 with O_EXCL before SQLite touches it; SQLite gives
 * its -wal and -shm files the same mode.  PRAGMAs on every connection:
 * journal_mode=WAL, foreign_keys=ON, secure_delete=ON (freed cells and pages
 * are zeroed, which is what makes crypto-shredding real), busy_timeout=5000,
 * plus SQLITE_DBCONFIG_DEFENSIVE and trusted_schema=OFF.  Because WAL keeps
 * old page images until a checkpoint, every operation that destroys key
 * material runs PRAGMA wal_checkpoint(TRUNCATE) after committing; if another
 * process blocks it, the checkpoint is retried at the start of later calls.
 *
 * Call protocol.  Every public call that touches the store runs between
 * kms_enter() and kms_leave(): take k->lock, make the secrets readable (they
 * are PROT_NONE otherwise), and first expire PendingDeletion keys whose date
 * has passed (R12: the first call that sees the date destroys the
 * material).  Mutations run in one BEGIN IMMEDIATE transaction together with
 * their audit entry, so a change without its audit record cannot be
 * committed; kms_finish() commits, or rolls back and records the refusal.
 *
 * Logging: the module never prints.  Messages go to the optional callback
 * with syslog levels (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO), carry
 * negative errno values as numbers (fs/ owns turning codes into words) and
 * never contain key bytes.  The callback runs with k->lock held: it must
 * not call back into the KMS.
 *
 * Deliberately not here: root key handling (kms_root.c), key material
 * (kms_cmk.c), key records and policy (kms_keys.c), data keys (kms_dk.c),
 * the audit chain (kms_audit.c), validation and other pure helpers
 * (kms_util.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "kms_internal.h"

static const char kms_schema[] =
	"CREATE TABLE settings(name TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
	"CREATE TABLE grants(project TEXT PRIMARY KEY NOT NULL,"
	" granted_by INTEGER NOT NULL, granted_user TEXT NOT NULL, time INTEGER NOT NULL);"
	"CREATE TABLE keys(id TEXT PRIMARY KEY NOT NULL CHECK(length(id) = 36),"
	" alias TEXT NOT NULL, project TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',"
	" state INTEGER NOT NULL CHECK(state BETWEEN 1 AND 4),"
	" is_default INTEGER NOT NULL DEFAULT 0 CHECK(is_default IN (0, 1)),"
	" created INTEGER NOT NULL, deletion_date INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(project, alias));"
	"CREATE TABLE key_versions(key_id TEXT NOT NULL REFERENCES keys(id),"
	" version INTEGER NOT NULL CHECK(version >= 1), created INTEGER NOT NULL,"
	" material BLOB, PRIMARY KEY(key_id, version));"
	"CREATE TABLE shares(key_id TEXT NOT NULL REFERENCES keys(id), project TEXT NOT NULL,"
	" time INTEGER NOT NULL, PRIMARY KEY(key_id, project));"
	"CREATE INDEX shares_by_project ON shares(project);"
	"CREATE TABLE audit(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" user TEXT NOT NULL, project TEXT NOT NULL, op TEXT NOT NULL, \"key\" TEXT NOT NULL,"
	" result INTEGER NOT NULL, mac BLOB NOT NULL);"
	"CREATE INDEX audit_by_key ON audit(\"key\");";

/* ------------------------------------------------------------------------
 * Errors and logging
 * ------------------------------------------------------------------------ */

/* The only SQLite-to-errno translation of the module. */
int kms_errno(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

void kms_logf(kms_log_fn fn, void *ctx, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(ctx, level, msg);
}

static int sql_fail(struct kms *k, int rc, const char *what)
{
	KMS_LOG(k, LOG_ERR, "kms: %s: %s", what, sqlite3_errmsg(k->db));
	return kms_errno(rc);
}

/* ------------------------------------------------------------------------
 * SQL helpers
 * ------------------------------------------------------------------------ */

static int sql_vprep(struct kms *k, sqlite3_stmt **out, const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = NULL;
	int rc, i;

	rc = sqlite3_prepare_v2(k->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(k, rc, "prepare");
	for (i = 0; fmt && fmt[i] && rc == SQLITE_OK; i++) {
		const char *s;
		const void *b;
		size_t n;

		switch (fmt[i]) {
		case 't':
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i + 1);
			break;
		case 'T':
			s = va_arg(ap, const char *);
			n = va_arg(ap, size_t);
			rc = sqlite3_bind_text(st, i + 1, s ? s : "", (int)n, SQLITE_STATIC);
			break;
		case 'i':
			rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
			break;
		case 'I':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			b = va_arg(ap, const void *);
			n = va_arg(ap, size_t);
			rc = sqlite3_bind_blob(st, i + 1, b, (int)n, SQLITE_STATIC);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
	}
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return sql_fail(k, rc, "bind");
	}
	*out = st;
	return 0;
}

int kms_sql_prep(struct kms *k, sqlite3_stmt **st, const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sql_vprep(k, st, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int kms_sql_step(struct kms *k, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sql_fail(k, rc, "step");
}

int kms_sql_run(struct kms *k, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sql_vprep(k, &st, sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	do
		rc = kms_sql_step(k, st);
	while (rc == 1);
	if (rc == 0)
		rc = sqlite3_changes(k->db);
	sqlite3_finalize(st);
	return rc;
}

static int sql_exec(struct kms *k, const char *sql)
{
	int rc = sqlite3_exec(k->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_fail(k, rc, sql);
}

int kms_tx_begin(struct kms *k)
{
	return sql_exec(k, "BEGIN IMMEDIATE");
}

int kms_tx_commit(struct kms *k)
{
	if (sqlite3_get_autocommit(k->db))
		return 0;
	return sql_exec(k, "COMMIT");
}

void kms_tx_rollback(struct kms *k)
{
	if (!sqlite3_get_autocommit(k->db))
		(void)sqlite3_exec(k->db, "ROLLBACK", NULL, NULL, NULL);
}

void kms_checkpoint(struct kms *k)
{
	int rc, nlog = 0, nckpt = 0;

	rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &nlog, &nckpt);
	k->ckpt_pending = rc != SQLITE_OK;
	if (rc != SQLITE_OK)
		KMS_LOG(k, LOG_WARNING, "kms: WAL checkpoint after key destruction deferred: %s",
			sqlite3_errmsg(k->db));
}

int kms_col_text(sqlite3_stmt *st, int col, char *dst, size_t n)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	int len = sqlite3_column_bytes(st, col);

	if (!s || len < 0 || (size_t)len >= n || memchr(s, 0, (size_t)len)) {
		dst[0] = '\0';
		return -EUCLEAN;
	}
	memcpy(dst, s, (size_t)len);
	dst[len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------
 * Call protocol
 * ------------------------------------------------------------------------ */

int kms_enter(struct kms *k)
{
	int rc;

	pthread_mutex_lock(&k->lock);
	sodium_mprotect_readonly(k->sec);
	sodium_mprotect_readwrite(k->scratch);
	if (k->ckpt_pending)
		kms_checkpoint(k);
	rc = kms_cmk_expire(k);
	if (rc < 0)
		kms_leave(k);
	return rc;
}

void kms_leave(struct kms *k)
{
	kms_tx_rollback(k);     /* never leave a transaction open */
	sodium_memzero(k->scratch, KMS_SCRATCH_BYTES);
	sodium_mprotect_noaccess(k->scratch);
	sodium_mprotect_noaccess(k->sec);
	pthread_mutex_unlock(&k->lock);
}

int kms_finish(struct kms *k, const struct kms_caller *c, const char *project, const char *op,
	       const char *key_id, int rc)
{
	uint32_t uid = c ? c->uid : 0;
	const char *user = c ? c->user : NULL;
	int arc;

	if (!project && c)
		project = c->project;
	if (rc == 0) {
		rc = kms_audit_append(k, uid, user, project, op, key_id, 0);
		if (rc == 0)
			rc = kms_tx_commit(k);
		if (rc == 0)
			return 0;
	}
	kms_tx_rollback(k);
	arc = kms_audit_append(k, uid, user, project, op, key_id, rc);
	return arc < 0 ? arc : rc;
}

int kms_is_admin(const struct kms *k, const char *user)
{
	const char *p;
	size_t n;

	if (!k || !k->admins || !user || !*user)
		return 0;
	n = strlen(user);
	for (p = k->admins; *p;) {
		size_t len = strcspn(p, ", \t\r\n");

		if (len == n && memcmp(p, user, n) == 0)
			return 1;
		p += len;
		p += strspn(p, ", \t\r\n");
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Store lifecycle
 * ------------------------------------------------------------------------ */

static int opt_check(const struct kms_options *opt)
{
	if (!opt || !opt->secret_path || !*opt->secret_path)
		return -EINVAL;
	if (opt->root_kind != KMS_ROOT_KEYFILE && opt->root_kind != KMS_ROOT_PASSPHRASE &&
	    opt->root_kind != KMS_ROOT_PKCS11)
		return -EINVAL;
	if (opt->root_kind == KMS_ROOT_PKCS11 &&
	    (!opt->pkcs11_module || !*opt->pkcs11_module || !opt->pkcs11_token || !*opt->pkcs11_token ||
	     strlen(opt->pkcs11_token) > 32 || (opt->pkcs11_key && strlen(opt->pkcs11_key) >= KMS_ALIAS_MAX)))
		return -EINVAL;
	if (opt->region && strnlen(opt->region, 64) >= 64)
		return -EINVAL;
	if (opt->security_admins && strnlen(opt->security_admins, 4096) >= 4096)
		return -EINVAL;
	return 0;
}

/* Allocate the handle and its guarded memory (secrets left read-write). */
static int handle_new(struct kms **out, const struct kms_options *opt)
{
	struct kms *k;

	if (sodium_init() < 0)
		return -EIO;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->log = opt->log;
	k->log_ctx = opt->log_ctx;
	k->sec = sodium_malloc(sizeof(*k->sec));
	k->scratch = sodium_malloc(KMS_SCRATCH_BYTES);
	k->admins = strdup(opt->security_admins ? opt->security_admins : "");
	if (!k->sec || !k->scratch || !k->admins || pthread_mutex_init(&k->lock, NULL) != 0) {
		sodium_free(k->sec);
		sodium_free(k->scratch);
		free(k->admins);
		free(k);
		return -ENOMEM;
	}
	sodium_memzero(k->sec, sizeof(*k->sec));
	sodium_memzero(k->scratch, KMS_SCRATCH_BYTES);
	*out = k;
	return 0;
}

void kms_close(struct kms *k)
{
	if (!k)
		return;
	if (k->db) {
		if (k->ckpt_pending)
			kms_checkpoint(k);
		sqlite3_close_v2(k->db);
	}
	kms_p11_close(k->p11);
	sodium_free(k->sec);          /* wipes */
	sodium_free(k->scratch);
	free(k->admins);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static int db_open(struct kms *k, const char *path)
{
	int rc = sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		if (k->db)
			KMS_LOG(k, LOG_ERR, "kms: cannot open %s: %s", path, sqlite3_errmsg(k->db));
		return kms_errno(rc);
	}
	sqlite3_extended_result_codes(k->db, 1);
	sqlite3_db_config(k->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_busy_timeout(k->db, 5000);
	return 0;
}

static int db_pragmas(struct kms *k)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = kms_sql_prep(k, &st, "PRAGMA journal_mode=WAL", NULL);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1)
		rc = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0 ? 0 : -EIO;
	else if (rc == 0)
		rc = -EIO;
	sqlite3_finalize(st);
	if (rc < 0)
		return rc;
	return sql_exec(k, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
			   " PRAGMA trusted_schema=OFF; PRAGMA busy_timeout=5000;");
}

static int pragma_int(struct kms *k, const char *sql, int64_t *v)
{
	sqlite3_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, sql, NULL);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1) {
		*v = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = -EUCLEAN;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Read a setting: integer into *iv, or blob of exactly n bytes into buf. */
static int setting_get(struct kms *k, const char *name, int64_t *iv, void *buf, size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT value FROM settings WHERE name = ?", "t", name);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 0) {
		rc = -EUCLEAN;
	} else if (rc == 1) {
		rc = 0;
		if (iv) {
			if (sqlite3_column_type(st, 0) != SQLITE_INTEGER)
				rc = -EUCLEAN;
			*iv = sqlite3_column_int64(st, 0);
		} else if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
			   (size_t)sqlite3_column_bytes(st, 0) != n) {
			rc = -EUCLEAN;
		} else {
			memcpy(buf, sqlite3_column_blob(st, 0), n);
		}
	}
	sqlite3_finalize(st);
	if (rc == -EUCLEAN)
		KMS_LOG(k, LOG_ERR, "kms: setting %s missing or malformed", name);
	return rc;
}

static void db_files_unlink(const char *path)
{
	char side[4096];

	(void)unlink(path);
	if (snprintf(side, sizeof(side), "%s-wal", path) < (int)sizeof(side))
		(void)unlink(side);
	if (snprintf(side, sizeof(side), "%s-shm", path) < (int)sizeof(side))
		(void)unlink(side);
}

/* PKCS#11 stores: the verifier is a fixed string sealed by the token (only
 * the token's key unseals it, so a successful unseal at open proves the
 * token's key is the store's key); the audit MAC key is random, sealed by
 * the token, and unsealed into k->sec->audit at open. */
static const char p11_verifier_msg[] = "evfs kms pkcs11 root key verifier v1";
static const char p11_verifier_ad[] = "evfs-verifier";
static const char p11_audit_ad[] = "evfs-audit-key";
#define P11_VERIFIER_SEALED (KMS_P11_OVERHEAD + sizeof(p11_verifier_msg) - 1)
#define P11_AUDIT_SEALED (KMS_P11_OVERHEAD + KMS_KEY_BYTES)

static int p11_seal_settings(struct kms *k, uint8_t verifier[static P11_VERIFIER_SEALED],
			     uint8_t audit[static P11_AUDIT_SEALED])
{
	int rc = kms_p11_seal(k, (const uint8_t *)p11_verifier_msg, sizeof(p11_verifier_msg) - 1,
			      (const uint8_t *)p11_verifier_ad, sizeof(p11_verifier_ad) - 1, verifier);

	if (rc == 0)
		rc = kms_p11_seal(k, k->sec->audit, KMS_KEY_BYTES, (const uint8_t *)p11_audit_ad,
				  sizeof(p11_audit_ad) - 1, audit);
	return rc;
}

/* Open: check the verifier with the token and unseal the audit key. */
static int p11_open_root(struct kms *k, const struct kms_options *opt)
{
	uint8_t sealed_v[P11_VERIFIER_SEALED], sealed_a[P11_AUDIT_SEALED];
	uint8_t plain[sizeof(p11_verifier_msg)];
	char token[40] = "", key[KMS_ALIAS_MAX] = "";
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = setting_get(k, "verifier", NULL, sealed_v, sizeof(sealed_v))) < 0 ||
	    (rc = setting_get(k, "audit_key", NULL, sealed_a, sizeof(sealed_a))) < 0)
		return rc;
	if (kms_sql_prep(k, &st, "SELECT (SELECT value FROM settings WHERE name = 'p11_token'),"
			 " (SELECT value FROM settings WHERE name = 'p11_key')", NULL) == 0) {
		if (kms_sql_step(k, st) == 1 && kms_col_text(st, 0, token, sizeof(token)) == 0 &&
		    kms_col_text(st, 1, key, sizeof(key)) < 0)
			key[0] = '\0';      /* labels are for messages only */
		sqlite3_finalize(st);
	}
	if ((rc = kms_p11_open(opt, 0, &k->p11)) < 0)
		return rc;
	rc = kms_p11_unseal(k, sealed_v, sizeof(sealed_v), (const uint8_t *)p11_verifier_ad,
			    sizeof(p11_verifier_ad) - 1, plain);
	if (rc == 0 && memcmp(plain, p11_verifier_msg, sizeof(p11_verifier_msg) - 1) != 0)
		rc = -EBADMSG;
	if (rc == -EBADMSG) {
		KMS_LOG(k, LOG_ERR, "kms: key \"%s\" on token \"%s\" is not this key store's root key (the store "
			"was created with key \"%s\" on token \"%s\"); use that token", kms_p11_key(k),
			kms_p11_token(k), key, token);
		return -EKEYREJECTED;
	}
	if (rc < 0)
		return rc;
	rc = kms_p11_unseal(k, sealed_a, sizeof(sealed_a), (const uint8_t *)p11_audit_ad, sizeof(p11_audit_ad) - 1,
			    k->sec->audit);
	if (rc == -EBADMSG) {
		KMS_LOG(k, LOG_ERR, "kms: the sealed audit key does not authenticate under the token's key");
		rc = -EUCLEAN;
	}
	return rc;
}

static const char *kind_name(int64_t kind)
{
	return kind == KMS_ROOT_KEYFILE ? "key file" : kind == KMS_ROOT_PASSPHRASE ? "passphrase" :
	       kind == KMS_ROOT_PKCS11 ? "PKCS#11 token" : "unknown root key source";
}

int kms_create(const char *db_path, const struct kms_options *opt)
{
	uint8_t salt[crypto_pwhash_SALTBYTES], verifier[KMS_MAC_BYTES];
	uint8_t p11_verifier[P11_VERIFIER_SEALED], p11_audit_sealed[P11_AUDIT_SEALED];
	char pragma[96];
	struct kms *k = NULL;
	int rc, fd, key_created = 0, db_created = 0;
	const unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	const size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;

	if (!db_path || !*db_path || opt_check(opt) < 0)
		return -EINVAL;
	rc = handle_new(&k, opt);
	if (rc < 0)
		return rc;
	fd = open(db_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	db_created = 1;
	rc = fchmod(fd, 0600) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		goto out;

	randombytes_buf(salt, sizeof(salt));
	if (opt->root_kind == KMS_ROOT_PKCS11) {
		/* The token makes (or already holds) the root key; the audit
		 * key is random and kept only sealed by the token. */
		if ((rc = kms_p11_open(opt, 1, &k->p11)) < 0)
			goto out;
		randombytes_buf(k->sec->audit, KMS_KEY_BYTES);
		if ((rc = p11_seal_settings(k, p11_verifier, p11_audit_sealed)) < 0)
			goto out;
	} else {
		if (opt->root_kind == KMS_ROOT_KEYFILE)
			rc = kms_keyfile_load(opt->secret_path, 1, k->sec->root, &key_created);
		else
			rc = kms_passphrase_derive(opt->secret_path, salt, ops, mem, KMS_PASSPHRASE_MIN,
						   k->sec->root);
		if (rc < 0)
			goto out;
		if ((rc = kms_subkeys_derive(k->sec)) < 0 ||
		    (rc = kms_verifier_compute(k->sec->root, verifier)) < 0)
			goto out;
	}

	if ((rc = db_open(k, db_path)) < 0 || (rc = db_pragmas(k)) < 0 || (rc = kms_tx_begin(k)) < 0)
		goto out;
	if ((rc = sql_exec(k, kms_schema)) < 0)
		goto out;
	if (opt->root_kind == KMS_ROOT_PKCS11)
		rc = kms_sql_run(k, "INSERT INTO settings(name, value) VALUES ('root_kind', ?), ('region', ?),"
				 " ('created', ?), ('verifier', ?), ('audit_key', ?), ('p11_token', ?), ('p11_key', ?)",
				 "itIbbtt", (int)opt->root_kind, opt->region ? opt->region : "", kms_now(),
				 (const void *)p11_verifier, sizeof(p11_verifier), (const void *)p11_audit_sealed,
				 sizeof(p11_audit_sealed), kms_p11_token(k), kms_p11_key(k));
	else
		rc = kms_sql_run(k, "INSERT INTO settings(name, value) VALUES ('root_kind', ?), ('region', ?),"
				 " ('created', ?), ('verifier', ?)",
				 "itIb", (int)opt->root_kind, opt->region ? opt->region : "", kms_now(),
				 (const void *)verifier, sizeof(verifier));
	if (rc >= 0 && opt->root_kind == KMS_ROOT_PASSPHRASE)
		rc = kms_sql_run(k, "INSERT INTO settings(name, value) VALUES ('pwhash_salt', ?),"
				 " ('pwhash_opslimit', ?), ('pwhash_memlimit', ?), ('pwhash_alg', ?)",
				 "bIIi", (const void *)salt, sizeof(salt), (int64_t)ops, (int64_t)mem,
				 crypto_pwhash_ALG_ARGON2ID13);
	if (rc < 0)
		goto out;
	snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
		 KMS_APPLICATION_ID, KMS_SCHEMA_VERSION);
	rc = sql_exec(k, pragma);
	if (rc == 0)
		rc = kms_audit_append(k, (uint32_t)geteuid(), "kms", "", "store.create", NULL, 0);
	if (rc == 0)
		rc = kms_tx_commit(k);
out:
	sodium_memzero(verifier, sizeof(verifier));
	kms_close(k);            /* closes the token session too */
	if (rc < 0) {
		if (db_created)
			db_files_unlink(db_path);
		if (key_created)
			(void)unlink(opt->secret_path);
		kms_logf(opt->log, opt->log_ctx, LOG_ERR, "kms: cannot create key store %s (error %d)", db_path,
			 rc);
	}
	return rc < 0 ? rc : 0;
}

/* Check the store is ours and load + verify the root key into k->sec. */
static int open_root(struct kms *k, const struct kms_options *opt)
{
	uint8_t salt[crypto_pwhash_SALTBYTES], want[KMS_MAC_BYTES], got[KMS_MAC_BYTES];
	int64_t appid = 0, ver = 0, kind = 0, ops = 0, mem = 0, alg = 0;
	int rc;

	if ((rc = pragma_int(k, "PRAGMA application_id", &appid)) < 0 ||
	    (rc = pragma_int(k, "PRAGMA user_version", &ver)) < 0)
		goto out;
	if (appid != KMS_APPLICATION_ID || ver < 1 || ver > KMS_SCHEMA_VERSION) {
		KMS_LOG(k, LOG_ERR, "kms: not an evfs key store (or a newer schema, version %lld)",
			(long long)ver);
		rc = -EUCLEAN;
		goto out;
	}
	if ((rc = db_pragmas(k)) < 0 || (rc = setting_get(k, "root_kind", &kind, NULL, 0)) < 0)
		goto out;
	if (kind != opt->root_kind) {
		KMS_LOG(k, LOG_ERR, "kms: the key store uses a %s, not a %s", kind_name(kind),
			kind_name(opt->root_kind));
		rc = -EKEYREJECTED;
		goto out;
	}
	if (kind == KMS_ROOT_PKCS11) {
		rc = p11_open_root(k, opt);
		goto out;
	}
	if ((rc = setting_get(k, "verifier", NULL, want, sizeof(want))) < 0)
		goto out;
	if (kind == KMS_ROOT_KEYFILE) {
		rc = kms_keyfile_load(opt->secret_path, 0, k->sec->root, NULL);
	} else {
		if ((rc = setting_get(k, "pwhash_salt", NULL, salt, sizeof(salt))) < 0 ||
		    (rc = setting_get(k, "pwhash_opslimit", &ops, NULL, 0)) < 0 ||
		    (rc = setting_get(k, "pwhash_memlimit", &mem, NULL, 0)) < 0 ||
		    (rc = setting_get(k, "pwhash_alg", &alg, NULL, 0)) < 0)
			goto out;
		if (alg != crypto_pwhash_ALG_ARGON2ID13 || ops < (int64_t)crypto_pwhash_OPSLIMIT_MIN ||
		    ops > (int64_t)crypto_pwhash_OPSLIMIT_SENSITIVE * 4 ||
		    mem < (int64_t)crypto_pwhash_MEMLIMIT_MIN ||
		    mem > (int64_t)crypto_pwhash_MEMLIMIT_SENSITIVE * 4) {
			rc = -EUCLEAN;
			goto out;
		}
		rc = kms_passphrase_derive(opt->secret_path, salt, (unsigned long long)ops, (size_t)mem, 1,
					   k->sec->root);
	}
	if (rc < 0)
		goto out;
	if ((rc = kms_verifier_compute(k->sec->root, got)) < 0)
		goto out;
	if (sodium_memcmp(got, want, sizeof(got)) != 0) {
		KMS_LOG(k, LOG_ERR, "kms: the root key does not match this key store");
		rc = -EKEYREJECTED;
		goto out;
	}
	rc = kms_subkeys_derive(k->sec);
out:
	sodium_memzero(got, sizeof(got));
	sodium_memzero(want, sizeof(want));
	return rc;
}

int kms_open(struct kms **out, const char *db_path, const struct kms_options *opt)
{
	struct kms *k = NULL;
	struct stat st;
	int rc;

	if (!out || !db_path || opt_check(opt) < 0)
		return -EINVAL;
	*out = NULL;
	if (stat(db_path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EUCLEAN;
	rc = handle_new(&k, opt);
	if (rc < 0)
		return rc;
	if ((rc = db_open(k, db_path)) < 0 || (rc = open_root(k, opt)) < 0) {
		kms_close(k);
		return rc;
	}
	sodium_mprotect_noaccess(k->sec);
	sodium_mprotect_noaccess(k->scratch);
	rc = kms_enter(k);          /* expires due keys */
	if (rc < 0) {
		kms_close(k);
		return rc;
	}
	kms_leave(k);
	*out = k;
	return 0;
}
