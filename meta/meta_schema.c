/* SPDX-License-Identifier: MIT */
/*
 * meta_schema.c - the catalog schema, its versions and the checks that a
 * file or a PostgreSQL schema really is an evfs catalog.
 *
 * SQLite.  PRAGMA user_version is the schema version.  migrations[] holds
 * one SQL script per version: script i takes version i to i + 1, so a new
 * schema version is one appended script (and META_SCHEMA_VERSION bumped in
 * meta.h); released scripts are never edited.  meta_schema_open() applies
 * the missing scripts and the new user_version in one IMMEDIATE
 * transaction, re-reading the version inside it so that two processes
 * opening a new store at once do not both migrate.
 *
 * What is accepted:
 *   - version 0 with no schema at all (an empty or brand-new file): the
 *     whole schema is created;
 *   - versions 1 .. META_SCHEMA_VERSION whose settings table holds
 *     ('catalog.magic', 'evfs-catalog'): migrated to the current version.
 * Everything else is -EUCLEAN and the file is left untouched: a newer
 * version, tables without a version, no magic row, a file SQLite does not
 * recognise, or one that fails PRAGMA quick_check (e.g. truncated).  A file
 * is identified before it is switched to WAL, so a foreign SQLite file keeps
 * its journal mode.  After migrating, the tables and the immutability
 * triggers must be present, so no catalog is ever used without them.
 *
 * PostgreSQL.  There are no old catalogs there, so one script (schema_pg)
 * creates the current version directly: the same tables, columns and
 * CHECK, UNIQUE and FOREIGN KEY constraints, with BIGINT for integers,
 * BYTEA for blobs and text in the "C" collation (bytewise, so listings sort
 * as on SQLite whatever the database's locale).  The version and the magic
 * are rows of settings ('catalog.schema_version', 'catalog.magic'), both
 * kept unchangeable by a trigger.  A schema is identified as empty (no
 * tables, functions or types: created when the caller allows it, -ENOENT
 * otherwise), as a catalog (magic row present: the version must be ours),
 * or as anything else (-EUCLEAN, left untouched).  Creation runs inside one
 * sqldb_begin() transaction - whose advisory lock is the schema's write
 * lock - and identifies the schema again under it, so two hosts creating
 * the catalog at once do not both create it.  A later schema version
 * brings a PostgreSQL upgrade script too, run like migrations[] here (it
 * rewrites the version row with the settings trigger disabled inside its
 * transaction).
 * The required tables and triggers are verified on PostgreSQL too, from
 * pg_class and pg_trigger; a disabled trigger counts as missing.
 *
 * The immutability rule lives here, in the schema: on SQLite as BEFORE
 * UPDATE triggers that RAISE(ABORT), on PostgreSQL as BEFORE UPDATE
 * triggers whose plpgsql function raises SQLSTATE EVP01.  It then binds
 * every connection, including a hand-typed sqlite3 or psql session, and
 * sqldb maps the refusal to -EPERM on both.  CHECK constraints tie
 * encrypted to key_id; the foreign key from objects.lineage keeps lineages
 * that are in use.  STRICT tables keep SQLite's column types honest.
 */
#include "meta/meta_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define META_MAGIC_NAME "catalog.magic"
#define META_MAGIC_VALUE "evfs-catalog"

/* Version 0 -> 1: the initial schema. */
static const char schema_v1[] =
	"CREATE TABLE settings ("
	"  name  TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	") STRICT;"
	"CREATE TABLE lineages ("
	"  id        TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),"
	"  encrypted INT NOT NULL CHECK (encrypted IN (0, 1)),"
	"  key_id    TEXT NOT NULL,"
	"  wrapped   BLOB,"
	"  created   INT NOT NULL DEFAULT 0,"
	"  CHECK ((encrypted = 0 AND key_id = '') OR (encrypted = 1 AND key_id <> ''))"
	") STRICT;"
	"CREATE TABLE objects ("
	"  id           TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),"
	"  kind         INT NOT NULL CHECK (kind BETWEEN 1 AND 4),"
	"  name         TEXT NOT NULL CHECK (name <> ''),"
	"  project      TEXT NOT NULL,"
	"  owner_uid    INT NOT NULL DEFAULT 0 CHECK (owner_uid BETWEEN 0 AND 4294967295),"
	"  size         INT NOT NULL DEFAULT 0 CHECK (size >= 0),"
	"  encrypted    INT NOT NULL CHECK (encrypted IN (0, 1)),"
	"  key_id       TEXT NOT NULL,"
	"  lineage      TEXT REFERENCES lineages(id) ON DELETE RESTRICT,"
	"  source       TEXT NOT NULL DEFAULT '',"
	"  parent_id    TEXT NOT NULL DEFAULT '',"
	"  vol_type     TEXT NOT NULL DEFAULT '',"
	"  created      INT NOT NULL DEFAULT 0,"
	"  attached     INT NOT NULL DEFAULT 0 CHECK (attached IN (0, 1)),"
	"  incremental  INT NOT NULL DEFAULT 0 CHECK (incremental IN (0, 1)),"
	"  stored_bytes INT NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),"
	"  location     TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (project, kind, name),"
	"  CHECK ((encrypted = 0 AND key_id = '') OR (encrypted = 1 AND key_id <> ''))"
	") STRICT;"
	"CREATE INDEX objects_lineage ON objects(lineage);"
	"CREATE INDEX objects_key ON objects(key_id);"
	"CREATE INDEX objects_parent ON objects(parent_id);"
	"CREATE INDEX lineages_key ON lineages(key_id);"
	"CREATE TRIGGER objects_encryption_immutable"
	"  BEFORE UPDATE OF encrypted, key_id, lineage ON objects"
	"  WHEN NEW.encrypted IS NOT OLD.encrypted OR NEW.key_id IS NOT OLD.key_id"
	"    OR NEW.lineage IS NOT OLD.lineage "
	"BEGIN SELECT RAISE(ABORT, 'encryption attribute is immutable'); END;"
	"CREATE TRIGGER lineages_encryption_immutable"
	"  BEFORE UPDATE OF encrypted, key_id ON lineages"
	"  WHEN NEW.encrypted IS NOT OLD.encrypted OR NEW.key_id IS NOT OLD.key_id "
	"BEGIN SELECT RAISE(ABORT, 'encryption attribute is immutable'); END;"
	"INSERT INTO settings (name, value) VALUES ('" META_MAGIC_NAME "', '" META_MAGIC_VALUE "');"
	"CREATE TRIGGER settings_magic_update BEFORE UPDATE ON settings"
	"  WHEN OLD.name = '" META_MAGIC_NAME "' "
	"BEGIN SELECT RAISE(ABORT, 'catalog.magic is immutable'); END;"
	"CREATE TRIGGER settings_magic_delete BEFORE DELETE ON settings"
	"  WHEN OLD.name = '" META_MAGIC_NAME "' "
	"BEGIN SELECT RAISE(ABORT, 'catalog.magic is immutable'); END;";

/* Version 1 -> 2: the freshness record of format 2 pools (meta_fresh.c). */
static const char schema_v2[] =
	"CREATE TABLE pool_fresh ("
	"  lineage TEXT PRIMARY KEY NOT NULL REFERENCES lineages(id) ON DELETE CASCADE,"
	"  gen     INT NOT NULL CHECK (gen >= 0),"
	"  hash    BLOB NOT NULL CHECK (length(hash) = 32)"
	") STRICT;";

/* Version 2 -> 3: data-key generations of rekeyed lineages (meta_rekey.c)
 * and the freshness record of each backup file (meta_fresh.c). */
static const char schema_v3[] =
	"CREATE TABLE lineage_keys ("
	"  lineage     TEXT PRIMARY KEY NOT NULL REFERENCES lineages(id) ON DELETE CASCADE,"
	"  gen         INT NOT NULL CHECK (gen > 0),"
	"  old_gen     INT NOT NULL DEFAULT 0 CHECK (old_gen >= 0 AND old_gen < gen),"
	"  old_wrapped BLOB"
	") STRICT;"
	"CREATE TABLE backup_fresh ("
	"  id  TEXT PRIMARY KEY NOT NULL REFERENCES objects(id) ON DELETE CASCADE,"
	"  sum BLOB CHECK (sum IS NULL OR length(sum) = 32)"
	") STRICT;";

/* Version 3 -> 4: the host a volume is attached on, and since when, for a
 * store shared by several hosts ('' on a catalog of one host: attached
 * wherever it mounts). */
static const char schema_v4[] =
	"ALTER TABLE objects ADD COLUMN attached_host TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE objects ADD COLUMN attached_at INT NOT NULL DEFAULT 0;";

/* migrations[i] takes user_version i to i + 1. */
static const char *const migrations[] = {
	schema_v1,
	schema_v2,
	schema_v3,
	schema_v4,
};
_Static_assert(sizeof migrations / sizeof migrations[0] == META_SCHEMA_VERSION,
	       "one migration step per schema version");

#define META_VERSION_NAME "catalog.schema_version"
#define STR_(x) #x
#define STR(x) STR_(x)

/* PostgreSQL: the current version (META_SCHEMA_VERSION) in one script.
 * Every table of the SQLite catalog with the same columns and constraints;
 * the triggers call one function that refuses with SQLSTATE EVP01, which
 * sqldb maps to -EPERM. */
_Static_assert(META_SCHEMA_VERSION == 4, "schema_pg creates version 4: give PostgreSQL the new version too");
static const char schema_pg[] =
	"CREATE TABLE settings ("
	"  name  TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
	"  value TEXT COLLATE \"C\" NOT NULL"
	");"
	"CREATE TABLE lineages ("
	"  id        TEXT COLLATE \"C\" PRIMARY KEY NOT NULL CHECK (id <> ''),"
	"  encrypted BIGINT NOT NULL CHECK (encrypted IN (0, 1)),"
	"  key_id    TEXT COLLATE \"C\" NOT NULL,"
	"  wrapped   BYTEA,"
	"  created   BIGINT NOT NULL DEFAULT 0,"
	"  CHECK ((encrypted = 0 AND key_id = '') OR (encrypted = 1 AND key_id <> ''))"
	");"
	"CREATE TABLE objects ("
	"  id           TEXT COLLATE \"C\" PRIMARY KEY NOT NULL CHECK (id <> ''),"
	"  kind         BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 4),"
	"  name         TEXT COLLATE \"C\" NOT NULL CHECK (name <> ''),"
	"  project      TEXT COLLATE \"C\" NOT NULL,"
	"  owner_uid    BIGINT NOT NULL DEFAULT 0 CHECK (owner_uid BETWEEN 0 AND 4294967295),"
	"  size         BIGINT NOT NULL DEFAULT 0 CHECK (size >= 0),"
	"  encrypted    BIGINT NOT NULL CHECK (encrypted IN (0, 1)),"
	"  key_id       TEXT COLLATE \"C\" NOT NULL,"
	"  lineage      TEXT COLLATE \"C\" REFERENCES lineages(id) ON DELETE RESTRICT,"
	"  source       TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	"  parent_id    TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	"  vol_type     TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	"  created      BIGINT NOT NULL DEFAULT 0,"
	"  attached     BIGINT NOT NULL DEFAULT 0 CHECK (attached IN (0, 1)),"
	"  incremental  BIGINT NOT NULL DEFAULT 0 CHECK (incremental IN (0, 1)),"
	"  stored_bytes BIGINT NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),"
	"  location     TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	"  attached_host TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	"  attached_at  BIGINT NOT NULL DEFAULT 0,"
	"  UNIQUE (project, kind, name),"
	"  CHECK ((encrypted = 0 AND key_id = '') OR (encrypted = 1 AND key_id <> ''))"
	");"
	"CREATE INDEX objects_lineage ON objects(lineage);"
	"CREATE INDEX objects_key ON objects(key_id);"
	"CREATE INDEX objects_parent ON objects(parent_id);"
	"CREATE INDEX lineages_key ON lineages(key_id);"
	"CREATE TABLE pool_fresh ("
	"  lineage TEXT COLLATE \"C\" PRIMARY KEY NOT NULL REFERENCES lineages(id) ON DELETE CASCADE,"
	"  gen     BIGINT NOT NULL CHECK (gen >= 0),"
	"  hash    BYTEA NOT NULL CHECK (octet_length(hash) = 32)"
	");"
	"CREATE TABLE lineage_keys ("
	"  lineage     TEXT COLLATE \"C\" PRIMARY KEY NOT NULL REFERENCES lineages(id) ON DELETE CASCADE,"
	"  gen         BIGINT NOT NULL CHECK (gen > 0),"
	"  old_gen     BIGINT NOT NULL DEFAULT 0 CHECK (old_gen >= 0 AND old_gen < gen),"
	"  old_wrapped BYTEA"
	");"
	"CREATE TABLE backup_fresh ("
	"  id  TEXT COLLATE \"C\" PRIMARY KEY NOT NULL REFERENCES objects(id) ON DELETE CASCADE,"
	"  sum BYTEA CHECK (sum IS NULL OR octet_length(sum) = 32)"
	");"
	"CREATE FUNCTION evfs_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'EVP01'; END $$;"
	"CREATE TRIGGER objects_encryption_immutable"
	"  BEFORE UPDATE OF encrypted, key_id, lineage ON objects FOR EACH ROW"
	"  WHEN (NEW.encrypted IS DISTINCT FROM OLD.encrypted OR NEW.key_id IS DISTINCT FROM OLD.key_id"
	"    OR NEW.lineage IS DISTINCT FROM OLD.lineage)"
	"  EXECUTE FUNCTION evfs_refuse('encryption attribute is immutable');"
	"CREATE TRIGGER lineages_encryption_immutable"
	"  BEFORE UPDATE OF encrypted, key_id ON lineages FOR EACH ROW"
	"  WHEN (NEW.encrypted IS DISTINCT FROM OLD.encrypted OR NEW.key_id IS DISTINCT FROM OLD.key_id)"
	"  EXECUTE FUNCTION evfs_refuse('encryption attribute is immutable');"
	"INSERT INTO settings (name, value) VALUES ('" META_MAGIC_NAME "', '" META_MAGIC_VALUE "'),"
	"  ('" META_VERSION_NAME "', '" STR(META_SCHEMA_VERSION) "');"
	"CREATE TRIGGER settings_magic_update BEFORE UPDATE ON settings FOR EACH ROW"
	"  WHEN (OLD.name IN ('" META_MAGIC_NAME "', '" META_VERSION_NAME "'))"
	"  EXECUTE FUNCTION evfs_refuse('catalog.magic and catalog.schema_version are immutable');"
	"CREATE TRIGGER settings_magic_delete BEFORE DELETE ON settings FOR EACH ROW"
	"  WHEN (OLD.name IN ('" META_MAGIC_NAME "', '" META_VERSION_NAME "'))"
	"  EXECUTE FUNCTION evfs_refuse('catalog.magic and catalog.schema_version are immutable');"
	"CREATE TRIGGER settings_magic_truncate BEFORE TRUNCATE ON settings FOR EACH STATEMENT"
	"  EXECUTE FUNCTION evfs_refuse('catalog.magic and catalog.schema_version are immutable');";

/* What every current catalog must contain. */
static const struct {
	const char *type, *name;
} required[] = {
	{ "table", "settings" },
	{ "table", "lineages" },
	{ "table", "objects" },
	{ "table", "pool_fresh" },
	{ "table", "lineage_keys" },
	{ "table", "backup_fresh" },
	{ "trigger", "objects_encryption_immutable" },
	{ "trigger", "lineages_encryption_immutable" },
	{ "trigger", "settings_magic_update" },
	{ "trigger", "settings_magic_delete" },
};

/* ---- queries ----------------------------------------------------------- */

/* One integer from a one-row query; -EUCLEAN if there is no row. */
static int query_int(struct meta_db *db, const char *sql, int64_t *out)
{
	struct sqldb_stmt *st;
	int rc, err = meta_prepare(db, sql, &st);

	if (err)
		return err;
	rc = sqldb_step(st);
	if (rc == 1)
		*out = sqldb_column_int64(st, 0);
	else
		err = rc == 0 ? -EUCLEAN : meta_sql_fail(db, rc, sql);
	sqldb_finalize(st);
	return err;
}

/* One text value from a one-row query; -EUCLEAN if there is no row. */
static int query_text(struct meta_db *db, const char *sql, char *out, size_t outsz)
{
	struct sqldb_stmt *st;
	int rc, err = meta_prepare(db, sql, &st);
	const char *t;

	if (err)
		return err;
	rc = sqldb_step(st);
	if (rc == 1) {
		t = sqldb_column_text(st, 0);
		snprintf(out, outsz, "%s", t ? t : "");
	} else {
		err = rc == 0 ? -EUCLEAN : meta_sql_fail(db, rc, sql);
	}
	sqldb_finalize(st);
	return err;
}

/* Roll back the schema transaction if it is still open. */
static void schema_rollback(struct meta_db *db)
{
	if (sqldb_in_tx(db->conn) && sqldb_exec(db->conn, "ROLLBACK") != 0)
		meta_logf(db, LOG_ERR, "catalog: rollback: %s", sqldb_errmsg(db->conn));
}

/* ---- SQLite: identify, migrate ----------------------------------------- */

/* Read the schema version and make sure the file is ours (or empty). */
static int catalog_identify(struct meta_db *db, int64_t *version)
{
	char magic[sizeof META_MAGIC_VALUE + 1];
	int64_t v, n;
	int err;

	err = query_int(db, "PRAGMA user_version", &v);
	if (err)
		goto bad;
	if (v < 0 || v > META_SCHEMA_VERSION) {
		meta_logf(db, LOG_ERR, "catalog: schema version %lld is not supported (this build: %d)",
			  (long long)v, META_SCHEMA_VERSION);
		return -EUCLEAN;
	}
	if (v == 0) {
		err = query_int(db, "SELECT count(*) FROM sqlite_master", &n);
		if (err)
			goto bad;
		if (n != 0) {
			meta_logf(db, LOG_ERR, "catalog: not an evfs catalog (unversioned schema)");
			return -EUCLEAN;
		}
	} else {
		err = query_text(db, "SELECT value FROM settings WHERE name = '" META_MAGIC_NAME "'",
				 magic, sizeof magic);
		if (err)
			goto bad;
		if (strcmp(magic, META_MAGIC_VALUE) != 0) {
			meta_logf(db, LOG_ERR, "catalog: not an evfs catalog (bad magic)");
			return -EUCLEAN;
		}
	}
	*version = v;
	return 0;
bad:
	if (err == -EUCLEAN)
		meta_logf(db, LOG_ERR, "catalog: not an evfs catalog or corrupt");
	return err;
}

static int catalog_quick_check(struct meta_db *db)
{
	char res[160];
	int err = query_text(db, "PRAGMA quick_check(1)", res, sizeof res);

	if (!err && strcmp(res, "ok") != 0) {
		meta_logf(db, LOG_ERR, "catalog: integrity check failed: %s", res);
		err = -EUCLEAN;
	}
	return err;
}

static void set_wal(struct meta_db *db)
{
	char mode[16];
	int err = query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);

	if (err || strcmp(mode, "wal") != 0)
		meta_logf(db, LOG_WARNING, "catalog: WAL journal unavailable, using %s",
			  err ? "the default" : mode);
}

/* Bring the schema to META_SCHEMA_VERSION in one IMMEDIATE transaction. */
static int catalog_migrate(struct meta_db *db)
{
	char sql[48];
	int64_t v;
	int err;

	err = sqldb_begin(db->conn);
	if (err)
		return meta_sql_fail(db, err, "begin migration");
	err = catalog_identify(db, &v);     /* again, now that we hold the lock */
	for (; !err && v < META_SCHEMA_VERSION; v++) {
		err = meta_exec(db, migrations[v], "migration");
		if (!err)
			meta_logf(db, LOG_INFO, "catalog: schema migrated to version %lld",
				  (long long)v + 1);
	}
	if (!err) {
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", META_SCHEMA_VERSION);
		err = meta_exec(db, sql, "set schema version");
	}
	if (!err)
		err = meta_exec(db, "COMMIT", "commit migration");
	if (err)
		schema_rollback(db);
	return err;
}

/* ---- PostgreSQL: identify, create -------------------------------------- */

/* *version: 0 for an empty schema, else the catalog's version.  -EUCLEAN
 * (logged) when the schema holds anything else or a version not ours. */
static int pg_identify(struct meta_db *db, int64_t *version)
{
	char magic[sizeof META_MAGIC_VALUE + 1], ver[24], *end;
	int64_t n, v;
	int err;

	err = query_int(db, "SELECT (SELECT count(*) FROM pg_class"
			"   WHERE relnamespace = current_schema()::regnamespace)"
			" + (SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace)"
			" + (SELECT count(*) FROM pg_type WHERE typnamespace = current_schema()::regnamespace)",
			&n);
	if (err)
		return err;
	if (n == 0) {
		*version = 0;
		return 0;
	}
	err = query_int(db, "SELECT to_regclass('settings') IS NOT NULL", &n);
	if (err)
		return err;
	if (n == 0) {
		meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s is not empty and holds no evfs catalog",
			  db->schema);
		return -EUCLEAN;
	}
	err = query_text(db, "SELECT value FROM settings WHERE name = '" META_MAGIC_NAME "'", magic,
			 sizeof magic);
	if (!err && strcmp(magic, META_MAGIC_VALUE) != 0)
		err = -EUCLEAN;
	if (err) {
		if (err == -EUCLEAN)
			meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s: not an evfs catalog (bad magic)",
				  db->schema);
		return err;
	}
	err = query_text(db, "SELECT value FROM settings WHERE name = '" META_VERSION_NAME "'", ver, sizeof ver);
	if (err) {
		if (err == -EUCLEAN)
			meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s: no schema version", db->schema);
		return err;
	}
	errno = 0;
	v = strtoll(ver, &end, 10);
	if (errno || end == ver || *end || v <= 0) {
		meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s: bad schema version '%s'", db->schema, ver);
		return -EUCLEAN;
	}
	if (v > META_SCHEMA_VERSION) {
		meta_logf(db, LOG_ERR, "catalog: schema version %lld is not supported (this build: %d)",
			  (long long)v, META_SCHEMA_VERSION);
		return -EUCLEAN;
	}
	if (v < META_SCHEMA_VERSION) {
		meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s: schema version %lld has no upgrade"
			  " (this build: %d)", db->schema, (long long)v, META_SCHEMA_VERSION);
		return -EUCLEAN;
	}
	*version = v;
	return 0;
}

/* Create the catalog in the empty schema under the schema's write lock,
 * unless another host did it first. */
static int pg_create(struct meta_db *db)
{
	int64_t v;
	int err;

	err = sqldb_begin(db->conn);
	if (err)
		return meta_sql_fail(db, err, "begin catalog creation");
	err = pg_identify(db, &v);          /* again, now that we hold the lock */
	if (!err && v == 0) {
		err = meta_exec(db, schema_pg, "create the catalog");
		if (!err)
			meta_logf(db, LOG_INFO, "catalog: created in PostgreSQL schema %s (version %d)", db->schema,
				  META_SCHEMA_VERSION);
	}
	if (!err)
		err = meta_exec(db, "COMMIT", "commit catalog creation");
	if (err)
		schema_rollback(db);
	return err;
}

/* ---- verify, open ------------------------------------------------------ */

static int catalog_verify(struct meta_db *db)
{
	static const char lite[] = "SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2";
	static const char pg[] =
		"SELECT 1 FROM pg_class AS c WHERE c.relnamespace = current_schema()::regnamespace"
		" AND ((?1 = 'table' AND c.relkind = 'r' AND c.relname::text = ?2)"
		"   OR (?1 = 'trigger' AND EXISTS (SELECT 1 FROM pg_trigger AS t WHERE t.tgrelid = c.oid"
		"     AND t.tgname::text = ?2 AND t.tgenabled <> 'D')))";
	struct sqldb_stmt *st;
	size_t i;
	int rc, err = meta_prepare(db, sqldb_kind(db->conn) == SQLDB_SQLITE ? lite : pg, &st);

	for (i = 0; !err && i < sizeof required / sizeof required[0]; i++) {
		sqldb_reset(st);
		rc = sqldb_bind_text(st, 1, required[i].type, -1);
		if (!rc)
			rc = sqldb_bind_text(st, 2, required[i].name, -1);
		if (!rc)
			rc = sqldb_step(st);
		if (rc == 0) {
			meta_logf(db, LOG_ERR, "catalog: %s %s is missing", required[i].type,
				  required[i].name);
			err = -EUCLEAN;
		} else if (rc < 0) {
			err = meta_sql_fail(db, rc, "verify schema");
		}
	}
	sqldb_finalize(st);
	return err;
}

static int schema_open_sqlite(struct meta_db *db, int memory)
{
	int64_t fk = 0, v = 0;
	int err;

	err = query_int(db, "PRAGMA foreign_keys", &fk);
	if (!err && fk != 1) {
		meta_logf(db, LOG_ERR, "catalog: SQLite without foreign key support");
		err = -EIO;
	}
	/* Identify the file before changing anything in it. */
	if (!err)
		err = catalog_identify(db, &v);
	if (!err && !memory)
		err = catalog_quick_check(db);
	if (!err && !memory)
		set_wal(db);
	if (!err && v < META_SCHEMA_VERSION)
		err = catalog_migrate(db);
	return err;
}

static int schema_open_pg(struct meta_db *db, int create)
{
	int64_t v = 0;
	int err;

	err = pg_identify(db, &v);
	if (!err && v == 0) {
		if (create) {
			err = pg_create(db);
		} else {
			meta_logf(db, LOG_ERR, "catalog: PostgreSQL schema %s holds no catalog", db->schema);
			err = -ENOENT;
		}
	}
	return err;
}

/* meta_schema_open - see meta_int.h. */
int meta_schema_open(struct meta_db *db, int memory, int create)
{
	int err;

	if (sqldb_kind(db->conn) == SQLDB_SQLITE)
		err = schema_open_sqlite(db, memory);
	else
		err = schema_open_pg(db, create);
	if (!err)
		err = catalog_verify(db);
	return err;
}
