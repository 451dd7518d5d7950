/* SPDX-License-Identifier: MIT */
/*
 * sqldb_sqlite.c - the SQLite driver: the embedded default, one file per
 * module in the store directory.
 *
 * A thin skin: statements are SQLite's own, values are bound as copies
 * (SQLITE_TRANSIENT) so the caller's buffers may go at once, and the one
 * SQLite-result-code-to-errno translation of evfs lives here.  Every
 * connection gets extended result codes, defensive mode, no trusted schema
 * and a 5 s busy timeout; the modules add their own PRAGMAs.
 */
#include "sqldb/internal/sqldb_int.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_MS 5000

struct lite {
	struct sqldb base;
	sqlite3 *conn;
};

struct lite_stmt {
	struct sqldb_stmt base;
	sqlite3_stmt *st;
};

static struct lite *lite(struct sqldb *db)
{
	return (struct lite *)db;
}

static sqlite3_stmt *lst(struct sqldb_stmt *st)
{
	return ((struct lite_stmt *)st)->st;
}

/* The only SQLite result code to negative errno translation. */
static int lite_errno(int rc)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_ROWID:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT;     /* a referenced row does not exist */
	case SQLITE_CONSTRAINT_TRIGGER:
		return -EPERM;      /* a schema trigger refused */
	case SQLITE_IOERR_NOMEM:
		return -ENOMEM;
	}
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:     /* CHECK, NOT NULL, DATATYPE */
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
	case SQLITE_MISUSE:
		return -EINVAL;
	case SQLITE_ERROR:          /* our SQL is fixed: the schema is not ours */
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_FORMAT:
		return -EUCLEAN;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_ABORT:
		return -ECANCELED;
	default:                    /* IOERR, CANTOPEN, PROTOCOL, ... */
		return -EIO;
	}
}

static int lite_fail(struct lite *l, int rc)
{
	int err = lite_errno(rc);

	sqldb_fail(&l->base, 0, "%s (sqlite %d)", l->conn ? sqlite3_errmsg(l->conn) : sqlite3_errstr(rc), rc);
	return err ? err : -EIO;
}

static void lite_close(struct sqldb *db)
{
	struct lite *l = lite(db);

	if (l->conn) {
		if (!sqlite3_get_autocommit(l->conn))
			sqlite3_exec(l->conn, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(l->conn);
	}
	free(l);
}

static void lite_busy(struct sqldb *db, int ms)
{
	sqlite3_busy_timeout(lite(db)->conn, ms);
}

static int lite_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **out)
{
	struct lite *l = lite(db);
	struct lite_stmt *s = calloc(1, sizeof *s);
	int rc;

	if (!s)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(l->conn, sql, -1, &s->st, NULL);
	if (rc != SQLITE_OK) {
		free(s);
		return lite_fail(l, rc);
	}
	s->base.db = db;
	*out = &s->base;
	return 0;
}

static int lite_bind(struct sqldb_stmt *st, int i, enum sqldb_type type, const void *p, int len, int64_t v)
{
	sqlite3_stmt *s = lst(st);
	int rc;

	switch (type) {
	case SQLDB_INT:
		rc = sqlite3_bind_int64(s, i, v);
		break;
	case SQLDB_TEXT:
		rc = sqlite3_bind_text(s, i, p, len, SQLITE_TRANSIENT);
		break;
	case SQLDB_BLOB:
		rc = sqlite3_bind_blob(s, i, p, len, SQLITE_TRANSIENT);
		break;
	default:
		rc = sqlite3_bind_null(s, i);
	}
	return rc == SQLITE_OK ? 0 : lite_fail(lite(st->db), rc);
}

static int lite_step(struct sqldb_stmt *st)
{
	struct lite *l = lite(st->db);
	int rc = sqlite3_step(lst(st));

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE) {
		l->base.changes = sqlite3_changes(l->conn);
		return 0;
	}
	return lite_fail(l, rc);
}

static void lite_reset(struct sqldb_stmt *st)
{
	sqlite3_reset(lst(st));
}

static void lite_finalize(struct sqldb_stmt *st)
{
	sqlite3_finalize(lst(st));
	free(st);
}

static enum sqldb_type lite_col_type(struct sqldb_stmt *st, int col)
{
	switch (sqlite3_column_type(lst(st), col)) {
	case SQLITE_NULL:
		return SQLDB_NULL;
	case SQLITE_INTEGER:
		return SQLDB_INT;
	case SQLITE_TEXT:
		return SQLDB_TEXT;
	case SQLITE_BLOB:
		return SQLDB_BLOB;
	default:
		return SQLDB_OTHER;
	}
}

static int64_t lite_col_int64(struct sqldb_stmt *st, int col)
{
	return sqlite3_column_int64(lst(st), col);
}

static const void *lite_col_value(struct sqldb_stmt *st, int col, int *len)
{
	sqlite3_stmt *s = lst(st);
	const void *p;

	if (sqlite3_column_type(s, col) == SQLITE_BLOB)
		p = sqlite3_column_blob(s, col);
	else
		p = sqlite3_column_text(s, col);
	*len = sqlite3_column_bytes(s, col);
	return p;
}

static int lite_exec(struct sqldb *db, const char *sql)
{
	struct lite *l = lite(db);
	int rc = sqlite3_exec(l->conn, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return lite_fail(l, rc);
	l->base.changes = sqlite3_changes(l->conn);
	return 0;
}

static int lite_begin(struct sqldb *db)
{
	return lite_exec(db, "BEGIN IMMEDIATE");
}

static int lite_in_tx(struct sqldb *db)
{
	return !sqlite3_get_autocommit(lite(db)->conn);
}

static int lite_checkpoint(struct sqldb *db)
{
	struct lite *l = lite(db);
	int rc = sqlite3_wal_checkpoint_v2(l->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);

	return rc == SQLITE_OK ? 0 : lite_fail(l, rc);
}

static const struct sqldb_ops lite_ops = {
	.close = lite_close,
	.busy_timeout = lite_busy,
	.prepare = lite_prepare,
	.bind = lite_bind,
	.step = lite_step,
	.reset = lite_reset,
	.finalize = lite_finalize,
	.col_type = lite_col_type,
	.col_int64 = lite_col_int64,
	.col_value = lite_col_value,
	.exec = lite_exec,
	.begin = lite_begin,
	.in_tx = lite_in_tx,
	.checkpoint = lite_checkpoint,
};

int sqldb_open_sqlite(struct sqldb **out, const char *path, char *msg, size_t msgsz)
{
	struct lite *l;
	int memory, rc, err;

	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	memory = strcmp(path, ":memory:") == 0;
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->base.kind = SQLDB_SQLITE;
	l->base.ops = &lite_ops;
	rc = sqlite3_open_v2(path, &l->conn,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (memory ? SQLITE_OPEN_CREATE : 0), NULL);
	if (rc != SQLITE_OK) {
		err = lite_fail(l, rc);
		if (msg)
			snprintf(msg, msgsz, "%s", l->base.msg);
		lite_close(&l->base);
		return err;
	}
	sqlite3_extended_result_codes(l->conn, 1);
	sqlite3_busy_timeout(l->conn, BUSY_MS);
	sqlite3_db_config(l->conn, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(l->conn, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	*out = &l->base;
	return 0;
}
