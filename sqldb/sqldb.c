/* SPDX-License-Identifier: MIT */
/*
 * sqldb.c - the public statement API, dispatched to the connection's
 * driver (sqldb_sqlite.c, sqldb_pg.c).  Argument checks and the error text
 * live here so that both drivers behave alike on misuse.
 */
#include "sqldb/internal/sqldb_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int sqldb_fail(struct sqldb *db, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->msg, sizeof db->msg, fmt, ap);
	va_end(ap);
	return err;
}

void sqldb_close(struct sqldb *db)
{
	if (db)
		db->ops->close(db);
}

enum sqldb_kind sqldb_kind(const struct sqldb *db)
{
	return db->kind;
}

const char *sqldb_errmsg(const struct sqldb *db)
{
	return db && db->msg[0] ? db->msg : "no error text";
}

void sqldb_busy_timeout(struct sqldb *db, int ms)
{
	db->ops->busy_timeout(db, ms < 0 ? 0 : ms);
}

int sqldb_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **st)
{
	*st = NULL;
	if (!sql)
		return -EINVAL;
	return db->ops->prepare(db, sql, st);
}

int sqldb_bind_text(struct sqldb_stmt *st, int i, const char *s, int len)
{
	if (!s)
		return st->db->ops->bind(st, i, SQLDB_NULL, NULL, 0, 0);
	return st->db->ops->bind(st, i, SQLDB_TEXT, s, len < 0 ? (int)strlen(s) : len, 0);
}

int sqldb_bind_int64(struct sqldb_stmt *st, int i, int64_t v)
{
	return st->db->ops->bind(st, i, SQLDB_INT, NULL, 0, v);
}

int sqldb_bind_blob(struct sqldb_stmt *st, int i, const void *p, int len)
{
	if (len < 0 || (!p && len > 0))
		return -EINVAL;
	return st->db->ops->bind(st, i, SQLDB_BLOB, p ? p : "", len, 0);
}

int sqldb_bind_null(struct sqldb_stmt *st, int i)
{
	return st->db->ops->bind(st, i, SQLDB_NULL, NULL, 0, 0);
}

int sqldb_step(struct sqldb_stmt *st)
{
	return st->db->ops->step(st);
}

void sqldb_reset(struct sqldb_stmt *st)
{
	if (st)
		st->db->ops->reset(st);
}

void sqldb_finalize(struct sqldb_stmt *st)
{
	if (st)
		st->db->ops->finalize(st);
}

enum sqldb_type sqldb_column_type(struct sqldb_stmt *st, int col)
{
	return st->db->ops->col_type(st, col);
}

int64_t sqldb_column_int64(struct sqldb_stmt *st, int col)
{
	return st->db->ops->col_int64(st, col);
}

const char *sqldb_column_text(struct sqldb_stmt *st, int col)
{
	int len;

	if (st->db->ops->col_type(st, col) == SQLDB_NULL)
		return NULL;
	return st->db->ops->col_value(st, col, &len);
}

const void *sqldb_column_blob(struct sqldb_stmt *st, int col)
{
	int len;

	if (st->db->ops->col_type(st, col) == SQLDB_NULL)
		return NULL;
	return st->db->ops->col_value(st, col, &len);
}

int sqldb_column_bytes(struct sqldb_stmt *st, int col)
{
	int len = 0;

	if (st->db->ops->col_type(st, col) == SQLDB_NULL)
		return 0;
	st->db->ops->col_value(st, col, &len);
	return len;
}

int sqldb_exec(struct sqldb *db, const char *sql)
{
	return db->ops->exec(db, sql);
}

int64_t sqldb_changes(struct sqldb *db)
{
	return db->changes;
}

int sqldb_begin(struct sqldb *db)
{
	return db->ops->begin(db);
}

int sqldb_in_tx(struct sqldb *db)
{
	return db->ops->in_tx(db);
}

int sqldb_checkpoint(struct sqldb *db)
{
	return db->ops->checkpoint(db);
}
