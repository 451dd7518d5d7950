/* SPDX-License-Identifier: MIT */
/*
 * meta_int.h - private to meta/: the connection object and the helpers
 * shared by meta.c (connection, transactions, settings), meta_schema.c
 * (schema and migrations) and meta_object.c (objects and lineages).  Nothing outside meta/ (except the
 * module's own test) may include this file.
 */
#ifndef EVFS_META_INT_H
#define EVFS_META_INT_H

#include "meta/meta.h"

#include <pthread.h>
#include <sqlite3.h>

struct meta_db {
	pthread_mutex_t lock;    /* serialises every use of conn */
	pthread_cond_t idle;     /* broadcast when depth drops to 0 */
	sqlite3 *conn;           /* protected by lock */
	unsigned depth;          /* protected by lock: meta_begin nesting */
	pthread_t owner;         /* protected by lock: valid while depth > 0 */
	int aborted;             /* protected by lock: SQLite ended the open
				    transaction on its own after an error */
	int checkpoint_due;      /* protected by lock: wrapped keys replaced
				    or deleted; checkpoint the WAL when no
				    transaction is open */
	meta_log_fn log;         /* immutable after open; may be NULL */
	void *log_ctx;
};

/* The db whose list callback is running on this thread (re-entry guard). */
extern _Thread_local const struct meta_db *meta_cb_db;

/* The only SQLite result code to negative errno translation. */
int meta_errno(int rc);

/* Lock the connection and wait until no other thread's transaction is
 * open.  -EDEADLK when called from a list callback of the same db, -EIO
 * when this thread's transaction was aborted by SQLite. */
int meta_db_enter(struct meta_db *db) META_WUR;
/* Unlock; notices a transaction that SQLite rolled back on its own and runs
 * a due WAL checkpoint when no transaction is open. */
void meta_db_leave(struct meta_db *db);

void meta_logf(struct meta_db *db, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Log the connection's error message (at debug level for constraint
 * failures, which are ordinary answers) and return meta_errno(rc). */
int meta_sql_fail(struct meta_db *db, int rc, const char *what);

/* Prepare one statement; 0 or negative errno (logged). */
int meta_prepare(struct meta_db *db, const char *sql, sqlite3_stmt **st) META_WUR;
/* Step a statement that returns no rows to completion and finalize it. */
int meta_run(struct meta_db *db, sqlite3_stmt *st, const char *what) META_WUR;
/* sqlite3_exec() of constant SQL; 0 or negative errno (logged). */
int meta_exec(struct meta_db *db, const char *sql, const char *what) META_WUR;

/* meta_schema.c: check foreign key support, identify the file as a catalog
 * (or an empty one), run quick_check and switch to WAL (files only), apply
 * migrations, verify the schema.  Called once by meta_open() before db is
 * shared.  0, -EUCLEAN (not a catalog, corrupt, newer schema), or another
 * negative errno. */
int meta_schema_open(struct meta_db *db, int memory) META_WUR;

#endif
