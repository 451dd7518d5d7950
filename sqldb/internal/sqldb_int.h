/* SPDX-License-Identifier: MIT */
/*
 * sqldb_int.h - private to sqldb/: the driver table each engine fills in,
 * and the parts of a connection and a statement every driver shares.
 */
#ifndef EVFS_SQLDB_INT_H
#define EVFS_SQLDB_INT_H

#include "sqldb/sqldb.h"

#include <stdarg.h>

struct sqldb_ops {
	void (*close)(struct sqldb *db);
	void (*busy_timeout)(struct sqldb *db, int ms);
	int (*prepare)(struct sqldb *db, const char *sql, struct sqldb_stmt **st);
	/* type SQLDB_NULL/INT/TEXT/BLOB; p/len the value (copied) */
	int (*bind)(struct sqldb_stmt *st, int i, enum sqldb_type type, const void *p, int len, int64_t v);
	int (*step)(struct sqldb_stmt *st);
	void (*reset)(struct sqldb_stmt *st);
	void (*finalize)(struct sqldb_stmt *st);
	enum sqldb_type (*col_type)(struct sqldb_stmt *st, int col);
	int64_t (*col_int64)(struct sqldb_stmt *st, int col);
	const void *(*col_value)(struct sqldb_stmt *st, int col, int *len);
	int (*exec)(struct sqldb *db, const char *sql);
	int (*begin)(struct sqldb *db);
	int (*in_tx)(struct sqldb *db);
	int (*checkpoint)(struct sqldb *db);
};

struct sqldb {
	enum sqldb_kind kind;
	const struct sqldb_ops *ops;
	int64_t changes;        /* rows changed by the last statement */
	char msg[512];          /* the engine's text for the last failure */
};

struct sqldb_stmt {
	struct sqldb *db;
};

/* Record the engine's message for the last failure; returns err. */
int sqldb_fail(struct sqldb *db, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
