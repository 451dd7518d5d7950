/* SPDX-License-Identifier: MIT */
/*
 * meta_int.h - private to meta/: the connection object and the helpers
 * shared by meta.c (connection, transactions, settings), meta_schema.c
 * (schema and migrations), meta_object.c (objects and lineages),
 * meta_fresh.c and meta_rekey.c.  The connection is an sqldb one (an
 * SQLite file or a PostgreSQL schema); sqldb's types stay behind this
 * file and never reach meta.h.  Nothing outside meta/ (except the module's
 * own test) may include this file.
 */
#ifndef EVFS_META_INT_H
#define EVFS_META_INT_H

#include "meta/meta.h"
#include "sqldb/sqldb.h"

#include <pthread.h>

struct meta_db {
	pthread_mutex_t lock;    /* serialises every use of conn */
	pthread_cond_t idle;     /* broadcast when depth drops to 0 */
	struct sqldb *conn;      /* protected by lock */
	unsigned depth;          /* protected by lock: meta_begin nesting */
	pthread_t owner;         /* protected by lock: valid while depth > 0 */
	int aborted;             /* protected by lock: the engine ended (SQLite)
				    or poisoned (PostgreSQL) the open
				    transaction on its own after an error */
	int checkpoint_due;      /* protected by lock: wrapped keys replaced
				    or deleted; checkpoint the WAL when no
				    transaction is open */
	meta_log_fn log;         /* immutable after open; may be NULL */
	void *log_ctx;
	char schema[64];         /* immutable: the PostgreSQL schema, or "" */
};

/* The db whose list callback is running on this thread (re-entry guard). */
extern _Thread_local const struct meta_db *meta_cb_db;

/* Lock the connection and wait until no other thread's transaction is
 * open.  -EDEADLK when called from a list callback of the same db, -EIO
 * when this thread's transaction was aborted by the engine. */
int meta_db_enter(struct meta_db *db) META_WUR;
/* Unlock; notices a transaction that SQLite rolled back on its own and runs
 * a due WAL checkpoint when no transaction is open. */
void meta_db_leave(struct meta_db *db);

void meta_logf(struct meta_db *db, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log the connection's error text (sqldb_errmsg) for the failed step
 * `what` - at debug level for the constraint answers (-EEXIST, -ENOENT,
 * -EPERM, and -EINVAL from a CHECK or NOT NULL), which are ordinary - and
 * return err (-EIO for 0). */
int meta_sql_fail(struct meta_db *db, int err, const char *what);

/* Prepare one statement; 0 or negative errno (logged). */
int meta_prepare(struct meta_db *db, const char *sql, struct sqldb_stmt **st) META_WUR;
/* Step a statement that returns no rows to completion and finalize it. */
int meta_run(struct meta_db *db, struct sqldb_stmt *st, const char *what) META_WUR;
/* sqldb_exec() of constant SQL; 0 or negative errno (logged). */
int meta_exec(struct meta_db *db, const char *sql, const char *what) META_WUR;

/* meta_schema.c: identify the catalog (or an empty file or schema), create
 * or migrate it, verify the schema; on SQLite also check foreign key
 * support, run quick_check and switch to WAL (files only).  `create`
 * matters for PostgreSQL only: an empty schema is given the catalog only
 * if it is set (-ENOENT otherwise); an empty SQLite file always is, since
 * meta_open() created the file only when allowed.  Called once by the open
 * functions before db is shared.  0, -EUCLEAN (not a catalog, corrupt,
 * newer schema), or another negative errno. */
int meta_schema_open(struct meta_db *db, int memory, int create) META_WUR;

#endif
