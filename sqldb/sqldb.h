/* SPDX-License-Identifier: MIT */
/*
 * sqldb.h - one SQL connection, to an SQLite file or to a PostgreSQL
 * schema, behind one small statement API.
 *
 * The catalog (meta/) and the key store (kms/) each keep their own tables
 * and their own SQL; this layer only carries that SQL to an engine.  The
 * embedded default is an SQLite file per module in the store directory.
 * For several hosts sharing one store, the same tables live in a
 * PostgreSQL database, one schema per module, so every host sees every
 * change the moment it commits.
 *
 * The API follows SQLite's, because the modules were written against it:
 * prepare, bind (1-based), step, read columns (0-based), finalize.  What
 * differs between the engines is settled here, once:
 *
 *   placeholders  "?" and "?N" in the SQL; the PostgreSQL driver rewrites
 *                 them to "$N".
 *   statement atomicity  a failing statement inside a transaction undoes
 *                 only itself, as in SQLite: the PostgreSQL driver runs each
 *                 statement of a transaction under a savepoint.
 *   write transactions  sqldb_begin() takes the database's write lock at
 *                 once (SQLite BEGIN IMMEDIATE; PostgreSQL: an advisory
 *                 transaction lock named after the schema), so the
 *                 read-then-write logic of the modules sees no other writer.
 *   errors        every call returns 0, 1 (a row) or a negative errno;
 *                 sqldb_errmsg() holds the engine's own text.  Both drivers
 *                 map: unique key -EEXIST, missing referenced row -ENOENT,
 *                 other constraint -EINVAL, a schema trigger's refusal
 *                 -EPERM, lock timeout -EBUSY, full disk -ENOSPC, damaged
 *                 or foreign database -EUCLEAN, everything else -EIO.
 *
 * Values travel in binary; nothing here logs, and bound values are copied
 * and wiped when the statement is finalized (they may be wrapped keys).
 *
 * Threads: a connection is used by one thread at a time (the modules hold
 * their own lock around it).
 */
#ifndef EVFS_SQLDB_H
#define EVFS_SQLDB_H

#include <stddef.h>
#include <stdint.h>

#define SQLDB_WUR __attribute__((warn_unused_result))

enum sqldb_kind { SQLDB_SQLITE = 1, SQLDB_POSTGRESQL = 2 };
enum sqldb_type { SQLDB_NULL = 0, SQLDB_INT, SQLDB_TEXT, SQLDB_BLOB, SQLDB_OTHER };

struct sqldb;
struct sqldb_stmt;

/* sqldb_open_sqlite - open the SQLite file `path` (":memory:" for a private
 * in-memory database), read-write, never creating it: the caller creates
 * the file with the mode it wants first.  0, or a negative errno with the
 * reason in *msg (msgsz bytes) when msg is not NULL. */
int sqldb_open_sqlite(struct sqldb **out, const char *path, char *msg, size_t msgsz) SQLDB_WUR;

/* sqldb_open_pg - connect with libpq's `conninfo` (keyword=value pairs or a
 * postgresql:// URI) and work inside `schema` ([a-z0-9_], at most 48
 * bytes), creating the schema when `create` is set.  -EPROTONOSUPPORT when
 * evfs was built without libpq; -ECONNREFUSED when the server cannot be
 * reached; -ENOENT when the schema does not exist and create is 0. */
int sqldb_open_pg(struct sqldb **out, const char *conninfo, const char *schema, int create,
		  char *msg, size_t msgsz) SQLDB_WUR;

/* sqldb_close - roll back an open transaction, close, free.  NULL is fine. */
void sqldb_close(struct sqldb *db);

enum sqldb_kind sqldb_kind(const struct sqldb *db);
/* The engine's text for the last failure on db (never NULL). */
const char *sqldb_errmsg(const struct sqldb *db);
/* Wait up to ms milliseconds for a lock before -EBUSY (0: do not wait). */
void sqldb_busy_timeout(struct sqldb *db, int ms);

int sqldb_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **st) SQLDB_WUR;
/* len -1: s is NUL-terminated.  s NULL binds NULL. */
int sqldb_bind_text(struct sqldb_stmt *st, int i, const char *s, int len);
int sqldb_bind_int64(struct sqldb_stmt *st, int i, int64_t v);
int sqldb_bind_blob(struct sqldb_stmt *st, int i, const void *p, int len);
int sqldb_bind_null(struct sqldb_stmt *st, int i);
/* 1: a row is ready; 0: done; negative errno. */
int sqldb_step(struct sqldb_stmt *st) SQLDB_WUR;
/* Ready the statement to run again; bindings stay. */
void sqldb_reset(struct sqldb_stmt *st);
void sqldb_finalize(struct sqldb_stmt *st);

enum sqldb_type sqldb_column_type(struct sqldb_stmt *st, int col);
int64_t sqldb_column_int64(struct sqldb_stmt *st, int col);
/* NUL-terminated; NULL for SQL NULL.  Valid until the next step. */
const char *sqldb_column_text(struct sqldb_stmt *st, int col);
const void *sqldb_column_blob(struct sqldb_stmt *st, int col);
int sqldb_column_bytes(struct sqldb_stmt *st, int col);

/* Run one or more statements without parameters or results. */
int sqldb_exec(struct sqldb *db, const char *sql) SQLDB_WUR;
/* Rows changed by the last INSERT, UPDATE or DELETE. */
int64_t sqldb_changes(struct sqldb *db);

/* Write transactions (see above); savepoints through sqldb_exec. */
int sqldb_begin(struct sqldb *db) SQLDB_WUR;
int sqldb_in_tx(struct sqldb *db);

/* SQLite: PRAGMA wal_checkpoint(TRUNCATE), so that deleted rows leave the
 * WAL.  PostgreSQL: nothing to do here (0). */
int sqldb_checkpoint(struct sqldb *db);

#endif
