/* SPDX-License-Identifier: MIT */
/*
 * kms.c - the key store: its database, its schema, its lifecycle.
 *
 * The KMS models a separate service, so it keeps its own database that no
 * other module opens: an SQLite file (normally STORE/kms.db), or, for
 * several hosts sharing one store, a schema of a PostgreSQL database
 * (kms_options.pg_conninfo, pg_schema), so that every host sees every key,
 * state change and audit entry the moment it commits.  Both are reached
 * through sqldb (sqldb/sqldb.h), which carries our SQL to the engine and
 * owns the one translation of engine errors into negative errno values.
 * This file owns the connection: creating and opening the store, the schema
 * of each engine, the settings, the SQL helpers the other files use
 * (kms_sql_prep/step/run, transactions), and the entry/exit protocol of
 * every public call.
 *
 * SQLite layout (PRAGMA application_id 'evks', user_version 1):
 *
 *   settings(name, value)      root_kind, region, created, verifier
 *                              (BLAKE2b MAC of a fixed string under a root
 *                              subkey - never the key), pwhash_salt/opslimit/
 *                              memlimit/alg for passphrase stores, audit_head;
 *                              PKCS#11 stores (R34): verifier = a fixed
 *                              string sealed by the token, audit_key = the
 *                              random audit MAC key sealed by the token,
 *                              p11_token/p11_key = labels (for messages).
 *                              value is untyped: integers, text and blobs
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
 * PostgreSQL layout: the same tables in the schema pg_schema (the
 * connection's search_path), integers BIGINT, blobs BYTEA, text TEXT
 * COLLATE "C" (so aliases compare and sort bytewise, as in SQLite), the
 * audit column "user" quoted (a reserved word there; the SQL quotes it on
 * both engines).  Two differences:
 *
 *   settings(name, int_value BIGINT, text_value TEXT, blob_value BYTEA)
 *                              exactly one of the three set: PostgreSQL has
 *                              no untyped column, and a setting keeps the
 *                              type it has in SQLite (kms_setting_get checks
 *                              it as there)
 *   settings 'kms.application_id', 'kms.schema_version'
 *                              what the PRAGMAs application_id and
 *                              user_version say in the SQLite file
 *
 * kms_create makes the schema when it does not exist (and drops it again
 * if the create fails) and refuses a schema that holds any table (-EEXIST);
 * kms_open refuses a missing or empty schema (-ENOENT) and one that is not
 * a key store (-EUCLEAN).  The PRAGMAs are SQLite's alone; foreign keys are
 * always enforced by PostgreSQL.  A write transaction (kms_tx_begin,
 * sqldb_begin) takes an advisory lock named after the schema at once, so
 * writers on every host run one at a time, as BEGIN IMMEDIATE makes them on
 * one file, and the audit chain has one head.  PostgreSQL keeps a deleted
 * or overwritten row as a dead tuple until VACUUM: destroyed key material
 * (sealed under the root key or the token, never plaintext) would linger
 * there, so where SQLite checkpoints, kms_checkpoint runs VACUUM
 * key_versions after the commit (cheap: a few rows per key).  VACUUM frees
 * the tuples but does not scrub the page bytes, and the server's WAL
 * segments, WAL archive and base backups keep the sealed rows until they
 * are recycled; with a PostgreSQL store, shredding rests on the root key
 * staying secret rather than on the bytes being gone.  Text goes in as
 * the database's encoding: a user name that is not valid UTF-8 cannot be
 * audited there, and the call fails.
 *
 * Call protocol.  Every public call that touches the store runs between
 * kms_enter() and kms_leave(): take k->lock, make the secrets readable (they
 * are PROT_NONE otherwise), and first expire PendingDeletion keys whose date
 * has passed (R12: the first call that sees the date destroys the
 * material).  Mutations run in one write transaction together with their
 * audit entry, so a change without its audit record cannot be committed;
 * kms_finish() commits, or rolls back and records the refusal.
 *
 * Logging: the module never prints.  Messages go to the optional callback
 * with syslog levels (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO), carry
 * negative errno values as numbers (fs/ owns turning codes into words) and
 * never contain key bytes or the PostgreSQL connection string (it may hold
 * a password).  The callback runs with k->lock held: it must not call back
 * into the KMS.
 *
 * Deliberately not here: root key handling (kms_root.c), key material
 * (kms_cmk.c), key records and policy (kms_keys.c), data keys (kms_dk.c),
 * the audit chain (kms_audit.c), validation and other pure helpers
 * (kms_util.c), engine error codes (sqldb).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* The same tables in PostgreSQL (see the essay). */
static const char kms_schema_pg[] =
	"CREATE TABLE settings(name TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
	" int_value BIGINT, text_value TEXT COLLATE \"C\", blob_value BYTEA,"
	" CHECK(num_nonnulls(int_value, text_value, blob_value) = 1));"
	"CREATE TABLE grants(project TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
	" granted_by BIGINT NOT NULL, granted_user TEXT COLLATE \"C\" NOT NULL, time BIGINT NOT NULL);"
	"CREATE TABLE keys(id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL CHECK(length(id) = 36),"
	" alias TEXT COLLATE \"C\" NOT NULL, project TEXT COLLATE \"C\" NOT NULL,"
	" description TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	" state BIGINT NOT NULL CHECK(state BETWEEN 1 AND 4),"
	" is_default BIGINT NOT NULL DEFAULT 0 CHECK(is_default IN (0, 1)),"
	" created BIGINT NOT NULL, deletion_date BIGINT NOT NULL DEFAULT 0,"
	" UNIQUE(project, alias));"
	"CREATE TABLE key_versions(key_id TEXT COLLATE \"C\" NOT NULL REFERENCES keys(id),"
	" version BIGINT NOT NULL CHECK(version >= 1), created BIGINT NOT NULL,"
	" material BYTEA, PRIMARY KEY(key_id, version));"
	"CREATE TABLE shares(key_id TEXT COLLATE \"C\" NOT NULL REFERENCES keys(id),"
	" project TEXT COLLATE \"C\" NOT NULL, time BIGINT NOT NULL, PRIMARY KEY(key_id, project));"
	"CREATE INDEX shares_by_project ON shares(project);"
	"CREATE TABLE audit(seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, uid BIGINT NOT NULL,"
	" \"user\" TEXT COLLATE \"C\" NOT NULL, project TEXT COLLATE \"C\" NOT NULL,"
	" op TEXT COLLATE \"C\" NOT NULL, \"key\" TEXT COLLATE \"C\" NOT NULL,"
	" result BIGINT NOT NULL, mac BYTEA NOT NULL);"
	"CREATE INDEX audit_by_key ON audit(\"key\");";

/* ------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------ */

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

/* rc: sqldb's negative errno; the engine's words go to the log. */
static int sql_fail(struct kms *k, int rc, const char *what)
{
	KMS_LOG(k, LOG_ERR, "kms: %s: %s", what, sqldb_errmsg(k->db));
	return rc;
}

int kms_is_pg(const struct kms *k)
{
	return k->db && sqldb_kind(k->db) == SQLDB_POSTGRESQL;
}

/* ------------------------------------------------------------------------
 * SQL helpers
 * ------------------------------------------------------------------------ */

static int sql_vprep(struct kms *k, struct sqldb_stmt **out, const char *sql, const char *fmt, va_list ap)
{
	struct sqldb_stmt *st = NULL;
	int rc, i;

	rc = sqldb_prepare(k->db, sql, &st);
	if (rc < 0)
		return sql_fail(k, rc, "prepare");
	for (i = 0; fmt && fmt[i] && rc == 0; i++) {
		const char *s;
		const void *b;
		size_t n;

		switch (fmt[i]) {
		case 't':
			s = va_arg(ap, const char *);
			rc = sqldb_bind_text(st, i + 1, s, -1);         /* NULL binds NULL */
			break;
		case 'T':
			s = va_arg(ap, const char *);
			n = va_arg(ap, size_t);
			rc = n > INT_MAX ? -EINVAL : sqldb_bind_text(st, i + 1, s ? s : "", (int)n);
			break;
		case 'i':
			rc = sqldb_bind_int64(st, i + 1, va_arg(ap, int));
			break;
		case 'I':
			rc = sqldb_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'b':
			b = va_arg(ap, const void *);
			n = va_arg(ap, size_t);
			rc = n > INT_MAX ? -EINVAL : sqldb_bind_blob(st, i + 1, b, (int)n);
			break;
		default:
			rc = -EINVAL;
		}
	}
	if (rc < 0) {
		sqldb_finalize(st);
		return sql_fail(k, rc, "bind");
	}
	*out = st;
	return 0;
}

int kms_sql_prep(struct kms *k, struct sqldb_stmt **st, const char *sql, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = sql_vprep(k, st, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int kms_sql_step(struct kms *k, struct sqldb_stmt *st)
{
	int rc = sqldb_step(st);

	return rc >= 0 ? rc : sql_fail(k, rc, "step");
}

int kms_sql_run(struct kms *k, const char *sql, const char *fmt, ...)
{
	struct sqldb_stmt *st = NULL;
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
		rc = (int)sqldb_changes(k->db);
	sqldb_finalize(st);
	return rc;
}

static int sql_exec(struct kms *k, const char *sql)
{
	int rc = sqldb_exec(k->db, sql);

	return rc == 0 ? 0 : sql_fail(k, rc, sql);
}

int kms_tx_begin(struct kms *k)
{
	int rc = sqldb_begin(k->db);

	return rc == 0 ? 0 : sql_fail(k, rc, "begin a write transaction");
}

int kms_tx_commit(struct kms *k)
{
	if (!sqldb_in_tx(k->db))
		return 0;
	return sql_exec(k, "COMMIT");
}

void kms_tx_rollback(struct kms *k)
{
	/* a failed ROLLBACK leaves nothing to do: the engine ends the
	 * transaction with the connection */
	if (sqldb_in_tx(k->db) && sqldb_exec(k->db, "ROLLBACK") < 0)
		KMS_LOG(k, LOG_WARNING, "kms: ROLLBACK: %s", sqldb_errmsg(k->db));
}

void kms_checkpoint(struct kms *k)
{
	int rc;

	if (!kms_is_pg(k)) {
		rc = sqldb_checkpoint(k->db);
		k->ckpt_pending = rc < 0;
		if (rc < 0)
			KMS_LOG(k, LOG_WARNING, "kms: WAL checkpoint after key destruction deferred: %s",
				sqldb_errmsg(k->db));
		return;
	}
	/* The destroyed material's old row versions are dead tuples until
	 * VACUUM (the essay); a lock held elsewhere defers it to a later
	 * call, anything else is left to autovacuum. */
	rc = sqldb_exec(k->db, "VACUUM key_versions");
	k->ckpt_pending = rc == -EBUSY;
	if (rc < 0)
		KMS_LOG(k, LOG_WARNING, "kms: VACUUM key_versions after key destruction %s: %s",
			rc == -EBUSY ? "deferred" : "failed (left to autovacuum)", sqldb_errmsg(k->db));
}

int kms_col_text(struct sqldb_stmt *st, int col, char *dst, size_t n)
{
	const char *s = sqldb_column_text(st, col);
	int len = sqldb_column_bytes(st, col);

	if (!s || len < 0 || (size_t)len >= n || memchr(s, 0, (size_t)len)) {
		dst[0] = '\0';
		return -EUCLEAN;
	}
	memcpy(dst, s, (size_t)len);
	dst[len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------------ */

int kms_setting_put(struct kms *k, const char *name, char type, ...)
{
	static const char *const pg_cols[] = { "int_value", "text_value", "blob_value" };
	char sql[320];
	const void *b;
	const char *t;
	int64_t v;
	size_t n;
	va_list ap;
	int rc, col;

	col = type == 'I' ? 0 : type == 't' ? 1 : type == 'b' ? 2 : -1;
	if (col < 0)
		return -EINVAL;
	if (kms_is_pg(k))
		snprintf(sql, sizeof(sql), "INSERT INTO settings(name, %s) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
			 " SET int_value = excluded.int_value, text_value = excluded.text_value,"
			 " blob_value = excluded.blob_value", pg_cols[col]);
	else
		snprintf(sql, sizeof(sql), "INSERT INTO settings(name, value) VALUES (?, ?)"
			 " ON CONFLICT (name) DO UPDATE SET value = excluded.value");
	va_start(ap, type);
	switch (type) {
	case 'I':
		v = va_arg(ap, int64_t);
		rc = kms_sql_run(k, sql, "tI", name, v);
		break;
	case 't':
		t = va_arg(ap, const char *);
		rc = kms_sql_run(k, sql, "tt", name, t);
		break;
	default:
		b = va_arg(ap, const void *);
		n = va_arg(ap, size_t);
		rc = kms_sql_run(k, sql, "tb", name, b, n);
	}
	va_end(ap);
	return rc < 0 ? rc : 0;
}

int kms_setting_get(struct kms *k, const char *name, char type, int64_t *iv, void *buf, size_t n)
{
	struct sqldb_stmt *st = NULL;
	enum sqldb_type t;
	int rc, col = 0;

	rc = kms_sql_prep(k, &st, kms_is_pg(k) ? "SELECT int_value, text_value, blob_value FROM settings WHERE name = ?"
						: "SELECT value FROM settings WHERE name = ?",
			  "t", name);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 0) {
		rc = -ENOENT;
	} else if (rc == 1) {
		while (kms_is_pg(k) && col < 2 && sqldb_column_type(st, col) == SQLDB_NULL)
			col++;
		t = sqldb_column_type(st, col);
		rc = 0;
		if (type == 'I') {
			if (t != SQLDB_INT)
				rc = -EUCLEAN;
			*iv = sqldb_column_int64(st, col);
		} else if (type == 't') {
			rc = t == SQLDB_NULL ? -EUCLEAN : kms_col_text(st, col, buf, n);
		} else if (t != SQLDB_BLOB || (size_t)sqldb_column_bytes(st, col) != n) {
			rc = -EUCLEAN;
		} else {
			memcpy(buf, sqldb_column_blob(st, col), n);
		}
	}
	sqldb_finalize(st);
	return rc;
}

/* A setting the store cannot be without: missing is -EUCLEAN too.  iv
 * NULL: a blob of exactly n bytes into buf. */
static int setting_need(struct kms *k, const char *name, int64_t *iv, void *buf, size_t n)
{
	int rc = kms_setting_get(k, name, iv ? 'I' : 'b', iv, buf, n);

	if (rc == -ENOENT)
		rc = -EUCLEAN;
	if (rc == -EUCLEAN)
		KMS_LOG(k, LOG_ERR, "kms: setting %s missing or malformed", name);
	return rc;
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

/* [a-z_][a-z0-9_]*, at most 48 bytes (sqldb's limit). */
static int schema_name_ok(const char *s)
{
	size_t i, n = s ? strnlen(s, 49) : 0;

	if (n == 0 || n > 48 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

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
	if (opt->pg_conninfo && !schema_name_ok(opt->pg_schema)) {
		kms_logf(opt->log, opt->log_ctx, LOG_ERR, "kms: bad PostgreSQL schema name for the key store"
			 " (want [a-z_][a-z0-9_]*, at most 48 bytes)");
		return -EINVAL;
	}
	return 0;
}

/* The store's name in messages: its file, or its schema (never the
 * connection string: it may hold a password). */
static void store_name(const struct kms_options *opt, const char *db_path, char *out, size_t n)
{
	if (opt->pg_conninfo)
		snprintf(out, n, "in PostgreSQL schema %s", opt->pg_schema);
	else
		snprintf(out, n, "%s", db_path);
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
		sqldb_close(k->db);
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
	char msg[512] = "";
	int rc = sqldb_open_sqlite(&k->db, path, msg, sizeof(msg));

	if (rc < 0)
		KMS_LOG(k, LOG_ERR, "kms: cannot open %s: %s", path, msg);
	return rc;
}

/* Connect to the store's schema.  create: make the schema when it does
 * not exist yet, and say so in *made (kms_create drops it on failure). */
static int pg_connect(struct kms *k, const struct kms_options *opt, int create, int *made)
{
	char msg[512] = "";
	int rc = sqldb_open_pg(&k->db, opt->pg_conninfo, opt->pg_schema, 0, msg, sizeof(msg));

	if (rc == -ENOENT && create) {
		rc = sqldb_open_pg(&k->db, opt->pg_conninfo, opt->pg_schema, 1, msg, sizeof(msg));
		if (rc == 0)
			*made = 1;
	}
	if (rc == -ECONNREFUSED)
		KMS_LOG(k, LOG_ERR, "kms: cannot connect to PostgreSQL: %s", msg);
	else if (rc == -ENOENT)
		KMS_LOG(k, LOG_ERR, "kms: no key store in PostgreSQL: schema %s does not exist", opt->pg_schema);
	else if (rc == -EPROTONOSUPPORT)
		KMS_LOG(k, LOG_ERR, "kms: cannot use a key store in PostgreSQL: %s", msg);
	else if (rc < 0)
		KMS_LOG(k, LOG_ERR, "kms: cannot open PostgreSQL schema %s for the key store: %s", opt->pg_schema, msg);
	return rc;
}

/* PostgreSQL: the number of tables in the schema, and whether one of them
 * is called settings. */
static int pg_tables(struct kms *k, int64_t *n, int64_t *settings)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT count(*), count(*) FILTER (WHERE tablename = 'settings')"
			      " FROM pg_catalog.pg_tables WHERE schemaname = current_schema()", NULL);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1) {
		*n = sqldb_column_int64(st, 0);
		*settings = sqldb_column_int64(st, 1);
		rc = 0;
	} else if (rc == 0) {
		rc = -EIO;
	}
	sqldb_finalize(st);
	return rc;
}

/* kms_create on PostgreSQL: the schema must hold no table at all. */
static int pg_schema_free(struct kms *k, const char *schema)
{
	int64_t n = 0, settings = 0;
	int rc = pg_tables(k, &n, &settings);

	if (rc < 0)
		return rc;
	if (settings) {
		KMS_LOG(k, LOG_ERR, "kms: a key store already exists in schema %s", schema);
		return -EEXIST;
	}
	if (n) {
		KMS_LOG(k, LOG_ERR, "kms: schema %s already holds %lld tables that are not a key store", schema,
			(long long)n);
		return -EEXIST;
	}
	return 0;
}

/* Undo what a failed kms_create made in PostgreSQL: its tables went with
 * the rolled-back transaction; the schema goes if it was ours and is empty
 * (DROP SCHEMA without CASCADE refuses otherwise). */
static void pg_schema_drop(struct kms *k, const char *schema)
{
	char sql[96];

	kms_tx_rollback(k);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s", schema);
	if (sqldb_exec(k->db, sql) < 0)
		KMS_LOG(k, LOG_WARNING, "kms: could not drop schema %s again: %s", schema, sqldb_errmsg(k->db));
}

static int db_pragmas(struct kms *k)
{
	struct sqldb_stmt *st = NULL;
	const char *mode;
	int rc;

	rc = kms_sql_prep(k, &st, "PRAGMA journal_mode=WAL", NULL);
	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1) {
		mode = sqldb_column_text(st, 0);
		rc = mode && strcasecmp(mode, "wal") == 0 ? 0 : -EIO;
	} else if (rc == 0) {
		rc = -EIO;
	}
	sqldb_finalize(st);
	if (rc < 0)
		return rc;
	return sql_exec(k, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
			   " PRAGMA trusted_schema=OFF; PRAGMA busy_timeout=5000;");
}

static int pragma_int(struct kms *k, const char *sql, int64_t *v)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, sql, NULL);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	if (rc == 1) {
		*v = sqldb_column_int64(st, 0);
		rc = 0;
	} else if (rc == 0) {
		rc = -EUCLEAN;
	}
	sqldb_finalize(st);
	return rc;
}

/* The store's application id and schema version: SQLite PRAGMAs, or the
 * settings rows that stand for them in PostgreSQL. */
static int store_ident(struct kms *k, const char *schema, int64_t *appid, int64_t *ver)
{
	int64_t n = 0, settings = 0;
	int rc;

	if (!kms_is_pg(k)) {
		if ((rc = pragma_int(k, "PRAGMA application_id", appid)) < 0)
			return rc;
		return pragma_int(k, "PRAGMA user_version", ver);
	}
	if ((rc = pg_tables(k, &n, &settings)) < 0)
		return rc;
	if (n == 0) {
		KMS_LOG(k, LOG_ERR, "kms: no key store in PostgreSQL: schema %s is empty", schema);
		return -ENOENT;
	}
	if (!settings)
		return 0;          /* 0, 0: not ours */
	rc = kms_setting_get(k, "kms.application_id", 'I', appid, NULL, 0);
	if (rc == 0)
		rc = kms_setting_get(k, "kms.schema_version", 'I', ver, NULL, 0);
	return rc == -ENOENT || rc == -EUCLEAN ? 0 : rc;
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
	int rc;

	if ((rc = setting_need(k, "verifier", NULL, sealed_v, sizeof(sealed_v))) < 0 ||
	    (rc = setting_need(k, "audit_key", NULL, sealed_a, sizeof(sealed_a))) < 0)
		return rc;
	/* labels are for messages only */
	if (kms_setting_get(k, "p11_token", 't', NULL, token, sizeof(token)) < 0 ||
	    kms_setting_get(k, "p11_key", 't', NULL, key, sizeof(key)) < 0)
		key[0] = '\0';
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
	char pragma[96], where[96];
	struct kms *k = NULL;
	int rc, fd, pg, key_created = 0, db_created = 0, schema_made = 0;
	const unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	const size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;

	if (opt_check(opt) < 0 || (!opt->pg_conninfo && (!db_path || !*db_path)))
		return -EINVAL;
	pg = opt->pg_conninfo != NULL;
	store_name(opt, db_path, where, sizeof(where));
	rc = handle_new(&k, opt);
	if (rc < 0)
		return rc;
	if (pg) {
		/* a quick refusal before the root key is touched; checked
		 * again under the write lock below */
		if ((rc = pg_connect(k, opt, 1, &schema_made)) < 0 || (rc = pg_schema_free(k, opt->pg_schema)) < 0)
			goto out;
	} else {
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
	}

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

	if (!pg && ((rc = db_open(k, db_path)) < 0 || (rc = db_pragmas(k)) < 0))
		goto out;
	if ((rc = kms_tx_begin(k)) < 0)
		goto out;
	if (pg && (rc = pg_schema_free(k, opt->pg_schema)) < 0)
		goto out;
	if ((rc = sql_exec(k, pg ? kms_schema_pg : kms_schema)) < 0)
		goto out;
	if ((rc = kms_setting_put(k, "root_kind", 'I', (int64_t)opt->root_kind)) < 0 ||
	    (rc = kms_setting_put(k, "region", 't', opt->region ? opt->region : "")) < 0 ||
	    (rc = kms_setting_put(k, "created", 'I', kms_now())) < 0)
		goto out;
	if (opt->root_kind == KMS_ROOT_PKCS11) {
		if ((rc = kms_setting_put(k, "verifier", 'b', (const void *)p11_verifier, sizeof(p11_verifier))) < 0 ||
		    (rc = kms_setting_put(k, "audit_key", 'b', (const void *)p11_audit_sealed,
					  sizeof(p11_audit_sealed))) < 0 ||
		    (rc = kms_setting_put(k, "p11_token", 't', kms_p11_token(k))) < 0 ||
		    (rc = kms_setting_put(k, "p11_key", 't', kms_p11_key(k))) < 0)
			goto out;
	} else if ((rc = kms_setting_put(k, "verifier", 'b', (const void *)verifier, sizeof(verifier))) < 0) {
		goto out;
	}
	if (opt->root_kind == KMS_ROOT_PASSPHRASE &&
	    ((rc = kms_setting_put(k, "pwhash_salt", 'b', (const void *)salt, sizeof(salt))) < 0 ||
	     (rc = kms_setting_put(k, "pwhash_opslimit", 'I', (int64_t)ops)) < 0 ||
	     (rc = kms_setting_put(k, "pwhash_memlimit", 'I', (int64_t)mem)) < 0 ||
	     (rc = kms_setting_put(k, "pwhash_alg", 'I', (int64_t)crypto_pwhash_ALG_ARGON2ID13)) < 0))
		goto out;
	if (pg) {
		if ((rc = kms_setting_put(k, "kms.application_id", 'I', (int64_t)KMS_APPLICATION_ID)) < 0 ||
		    (rc = kms_setting_put(k, "kms.schema_version", 'I', (int64_t)KMS_SCHEMA_VERSION)) < 0)
			goto out;
	} else {
		snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
			 KMS_APPLICATION_ID, KMS_SCHEMA_VERSION);
		if ((rc = sql_exec(k, pragma)) < 0)
			goto out;
	}
	rc = kms_audit_append(k, (uint32_t)geteuid(), "kms", "", "store.create", NULL, 0);
	if (rc == 0)
		rc = kms_tx_commit(k);
out:
	sodium_memzero(verifier, sizeof(verifier));
	if (rc < 0 && schema_made && k->db)
		pg_schema_drop(k, opt->pg_schema);
	kms_close(k);            /* closes the token session too */
	if (rc < 0) {
		if (db_created)
			db_files_unlink(db_path);
		if (key_created)
			(void)unlink(opt->secret_path);
		kms_logf(opt->log, opt->log_ctx, LOG_ERR, "kms: cannot create key store %s (error %d)", where, rc);
	}
	return rc < 0 ? rc : 0;
}

/* Check the store is ours and load + verify the root key into k->sec. */
static int open_root(struct kms *k, const struct kms_options *opt)
{
	uint8_t salt[crypto_pwhash_SALTBYTES], want[KMS_MAC_BYTES], got[KMS_MAC_BYTES];
	int64_t appid = 0, ver = 0, kind = 0, ops = 0, mem = 0, alg = 0;
	int rc;

	if ((rc = store_ident(k, opt->pg_schema, &appid, &ver)) < 0)
		goto out;
	if (appid != KMS_APPLICATION_ID || ver < 1 || ver > KMS_SCHEMA_VERSION) {
		KMS_LOG(k, LOG_ERR, "kms: not an evfs key store (or a newer schema, version %lld)",
			(long long)ver);
		rc = -EUCLEAN;
		goto out;
	}
	if ((!kms_is_pg(k) && (rc = db_pragmas(k)) < 0) || (rc = setting_need(k, "root_kind", &kind, NULL, 0)) < 0)
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
	if ((rc = setting_need(k, "verifier", NULL, want, sizeof(want))) < 0)
		goto out;
	if (kind == KMS_ROOT_KEYFILE) {
		rc = kms_keyfile_load(opt->secret_path, 0, k->sec->root, NULL);
	} else {
		if ((rc = setting_need(k, "pwhash_salt", NULL, salt, sizeof(salt))) < 0 ||
		    (rc = setting_need(k, "pwhash_opslimit", &ops, NULL, 0)) < 0 ||
		    (rc = setting_need(k, "pwhash_memlimit", &mem, NULL, 0)) < 0 ||
		    (rc = setting_need(k, "pwhash_alg", &alg, NULL, 0)) < 0)
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

	if (!out || opt_check(opt) < 0 || (!opt->pg_conninfo && !db_path))
		return -EINVAL;
	*out = NULL;
	if (!opt->pg_conninfo) {
		if (stat(db_path, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode))
			return -EUCLEAN;
	}
	rc = handle_new(&k, opt);
	if (rc < 0)
		return rc;
	if (opt->pg_conninfo)
		rc = pg_connect(k, opt, 0, NULL);
	else
		rc = db_open(k, db_path);
	if (rc < 0 || (rc = open_root(k, opt)) < 0) {
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
