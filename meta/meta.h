/* SPDX-License-Identifier: MIT */
/*
 * meta.h - the catalog: an SQLite file (STORE/catalog.db, meta_open) or a
 * PostgreSQL schema shared by several hosts (meta_open_pg).
 *
 * The catalog records every object of the store - volumes, snapshots,
 * backups, images - with its encryption attribute, key id and lineage, and
 * every lineage (the owner of one data key) with its *wrapped* data key.
 * It never sees plaintext key material: fs/ asks kms/ to wrap and hands
 * the opaque blob here.  The encryption attribute (encrypted, key_id,
 * lineage) of an object is immutable: the schema refuses any UPDATE of
 * those columns with a trigger, so no code path can change it.  Every
 * function below behaves the same on either engine.
 *
 * Errors: 0 (or a count) on success, negative errno on failure:
 *   -ENOENT   no such object / lineage
 *   -EEXIST   name already used for that kind in that project
 *   -EPERM    the update would change an immutable attribute (trigger)
 *   -EBUSY    database locked longer than the busy timeout
 *   -EUCLEAN  not an evfs catalog, corrupt file, or schema newer than us
 *   -EINVAL, -ENOMEM, -EIO, -ENOSPC
 * The engine-error-to-errno translation is sqldb's (sqldb/sqldb.h).
 * Thread-safety: one connection per struct meta_db, serialised by an
 * internal mutex; safe to share between threads.
 */
#ifndef EVFS_META_H
#define EVFS_META_H

#include <stddef.h>
#include <stdint.h>

#define META_ID_LEN 36u          /* object ids: UUID text */
#define META_LINEAGE_LEN 32u     /* lineage ids: 16 bytes as hex */
#define META_NAME_MAX 64u
#define META_PROJECT_MAX 64u
#define META_HOST_MAX 64u
#define META_SOURCE_MAX 160u
#define META_KEYID_LEN 36u
#define META_WRAPPED_MAX 128u
#define META_SCHEMA_VERSION 4

#define META_WUR __attribute__((warn_unused_result))

struct meta_db;

enum meta_kind {
	META_ANY = 0,
	META_VOLUME = 1,
	META_SNAPSHOT = 2,
	META_BACKUP = 3,
	META_IMAGE = 4,
};

struct meta_object {
	char id[META_ID_LEN + 1];
	enum meta_kind kind;
	char name[META_NAME_MAX];
	char project[META_PROJECT_MAX];
	uint32_t owner_uid;
	uint64_t size;                     /* bytes (nominal) */
	int encrypted;                     /* immutable */
	char key_id[META_KEYID_LEN + 1];   /* immutable; "" if not encrypted */
	char lineage[META_LINEAGE_LEN + 1];/* immutable; data key owner */
	char source[META_SOURCE_MAX];      /* "", "snapshot:s1", "image:i1", ... */
	char parent_id[META_ID_LEN + 1];   /* volume of a snapshot/backup/image,
					      previous backup of an incremental */
	char vol_type[8];                  /* "data" or "system" (volumes) */
	int64_t created;                   /* unix seconds */
	int attached;                      /* volumes: desired attach state */
	char attached_host[META_HOST_MAX]; /* the host it is attached on; "" = any */
	int64_t attached_at;               /* unix seconds it was, or 0 */
	int incremental;                   /* backups */
	uint64_t stored_bytes;             /* bytes held (backups/pool usage) */
	char location[256];                /* backups: file path; else "" */
};

struct meta_lineage {
	char id[META_LINEAGE_LEN + 1];
	int encrypted;
	char key_id[META_KEYID_LEN + 1];
	uint8_t wrapped[META_WRAPPED_MAX];
	size_t wrapped_len;
	int64_t created;
};

/* Open (creating if `create` and absent) the catalog at path; ":memory:"
 * works.  Sets WAL, foreign keys, secure_delete, busy timeout; creates or
 * migrates the schema (versioned by PRAGMA user_version). File mode 0600.
 * -EUCLEAN if the file is not a catalog or its schema is newer. */
typedef void (*meta_log_fn)(void *ctx, int level, const char *msg);
int meta_open(struct meta_db **out, const char *path, int create, meta_log_fn log, void *log_ctx) META_WUR;
/* Open the catalog kept in PostgreSQL schema `schema` ([a-z_][a-z0-9_]*, at
 * most 48 bytes) of the database libpq's `conninfo` names.  create = 1
 * makes the schema and the catalog's tables if missing (two hosts doing so
 * at once is fine); create = 0 on a missing schema, or one without tables,
 * is -ENOENT.  -ECONNREFUSED (server unreachable), -EPROTONOSUPPORT (built
 * without libpq), -EUCLEAN (the schema holds something else, or a newer
 * catalog), -EINVAL (bad arguments or schema name).  Failures are logged;
 * the conninfo never is (it may hold a password). */
int meta_open_pg(struct meta_db **out, const char *conninfo, const char *schema, int create, meta_log_fn log,
		 void *log_ctx) META_WUR;
void meta_close(struct meta_db *db);      /* NULL is fine */

/* Transactions (nestable by counting; only the outermost commits). */
int meta_begin(struct meta_db *db) META_WUR;
int meta_commit(struct meta_db *db) META_WUR;
void meta_rollback(struct meta_db *db);

/* Lineages: a lineage row must exist before objects reference it. */
int meta_lineage_insert(struct meta_db *db, const struct meta_lineage *l) META_WUR;
int meta_lineage_get(struct meta_db *db, const char *id, struct meta_lineage *out) META_WUR;
/* Replace the wrapped DK (key rotation / rewrap). key_id cannot change. */
int meta_lineage_set_wrapped(struct meta_db *db, const char *id, const uint8_t *wrapped, size_t len) META_WUR;
/* Delete a lineage; -EBUSY if objects still reference it. */
int meta_lineage_delete(struct meta_db *db, const char *id) META_WUR;
typedef int (*meta_lineage_cb)(void *ctx, const struct meta_lineage *l);
/* All lineages, or those under key_id if not NULL. */
int meta_lineage_list(struct meta_db *db, const char *key_id, meta_lineage_cb cb, void *ctx) META_WUR;

/* Objects. insert: id must be set (use meta_id_generate), name unique per
 * (project, kind) -> -EEXIST; lineage must exist (-ENOENT). */
int meta_object_insert(struct meta_db *db, const struct meta_object *o) META_WUR;
int meta_object_get(struct meta_db *db, const char *id, struct meta_object *out) META_WUR;
int meta_object_lookup(struct meta_db *db, enum meta_kind kind, const char *project, const char *name,
		       struct meta_object *out) META_WUR;

struct meta_filter {
	enum meta_kind kind;       /* META_ANY for all */
	const char *project;       /* NULL for all */
	const char *key_id;        /* NULL for all */
	const char *lineage;       /* NULL for all */
	const char *parent_id;     /* NULL for all */
};
typedef int (*meta_object_cb)(void *ctx, const struct meta_object *o);
/* Ordered by kind, then name.  Returns the number of objects listed, or the
 * callback's non-zero value if it stopped early, or a negative errno.
 * The callback must not call back into the same meta_db. */
int meta_object_list(struct meta_db *db, const struct meta_filter *f, meta_object_cb cb, void *ctx) META_WUR;

int meta_object_delete(struct meta_db *db, const char *id) META_WUR;
int meta_object_set_size(struct meta_db *db, const char *id, uint64_t size) META_WUR;
/* Attach state of a volume shared by hosts: attached = 1 claims it for
 * `host`, unless another host holds it (-EBUSY; meta_object_get names the
 * holder); attached = 0 releases it, only if `host` (or nobody in
 * particular) holds it, or whoever does when host is NULL (an operator's
 * forced detach of a dead host).  The test and the change are one SQL
 * statement, so two hosts cannot both win.  0, -ENOENT, -EBUSY, -EINVAL. */
int meta_object_set_attached(struct meta_db *db, const char *id, int attached, const char *host) META_WUR;
int meta_object_set_stored(struct meta_db *db, const char *id, uint64_t bytes) META_WUR;
int meta_object_set_parent(struct meta_db *db, const char *id, const char *parent_id) META_WUR;
/* Attempt to change the encryption attribute.  Exists so that every path
 * (CLI, xattr) goes through the same schema rule: always -EPERM once the
 * object exists (the trigger refuses). */
int meta_object_set_encryption(struct meta_db *db, const char *id, int encrypted, const char *key_id) META_WUR;

/* Small key/value table for store-wide settings (e.g. "store.id"). */
int meta_setting_get(struct meta_db *db, const char *name, char *out, size_t outsz) META_WUR;
int meta_setting_set(struct meta_db *db, const char *name, const char *value) META_WUR;

/* Data-key generations (meta_rekey.c; a rekey, R33).  A lineage's
 * wrapped key in `lineages` is generation `gen` (0 until its first rekey);
 * while a rekey runs, the generation it replaces stays here, wrapped, until
 * meta_rekey_end destroys it. */
struct meta_rekey {
	uint32_t gen;                       /* of lineages.wrapped */
	uint32_t old_gen;
	uint8_t old_wrapped[META_WRAPPED_MAX];
	size_t old_wrapped_len;             /* 0: no rekey under way */
};
/* 0 (a lineage never rekeyed reads gen 0, no old key), -ENOENT (no such
 * lineage), -EUCLEAN (a damaged row). */
int meta_rekey_get(struct meta_db *db, const char *lineage, struct meta_rekey *out) META_WUR;
/* One transaction: the current wrapped key kept as the old generation,
 * `wrapped` (generation gen + 1) put in its place; *gen gets the new
 * generation.  -EALREADY if a rekey is already under way. */
int meta_rekey_begin(struct meta_db *db, const char *lineage, const uint8_t *wrapped, size_t len,
		     uint32_t *gen) META_WUR;
/* Destroy the old generation's wrapped key (SQLite: secure_delete, WAL
 * checkpoint; PostgreSQL: the old row version until VACUUM reclaims it). */
int meta_rekey_end(struct meta_db *db, const char *lineage) META_WUR;

/* The freshness record of a format 2 pool (meta_fresh.c): its generation
 * and header hash as of its last recorded commit.  set moves the record
 * only forward unless force.  A connection that must never wait on the
 * catalog's write lock: meta_set_patient(db, 0) (-EBUSY at once). */
int meta_fresh_get(struct meta_db *db, const char *lineage, uint64_t *gen, uint8_t hash[static 32]) META_WUR;
int meta_fresh_set(struct meta_db *db, const char *lineage, uint64_t gen, const uint8_t hash[static 32],
		   int force) META_WUR;
/* The checksum of a backup file's header as the store last wrote it
 * (meta_fresh.c): a backup file put back from another copy is refused.
 * get: -ENODATA while a rewrite is under way (set with sum NULL), -ENOENT
 * for backups from before schema 3. */
int meta_fresh_backup_get(struct meta_db *db, const char *id, uint8_t sum[static 32]) META_WUR;
int meta_fresh_backup_set(struct meta_db *db, const char *id, const uint8_t *sum) META_WUR;
void meta_set_patient(struct meta_db *db, int patient);

/* Fill out[37] with a random UUID v4 text. Cannot fail. */
void meta_id_generate(char out[static META_ID_LEN + 1]);

/* "volume", "snapshot", "backup", "image". Cannot fail. */
const char *meta_kind_name(enum meta_kind k);

#endif
