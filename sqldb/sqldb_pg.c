/* SPDX-License-Identifier: MIT */
/*
 * sqldb_pg.c - the PostgreSQL driver: the shared catalog and key store of
 * several hosts.
 *
 * Each module works inside its own schema of one database (search_path is
 * set to it on connect), so the catalog and the KMS stay as separate as
 * their SQLite files are, and several evfs stores can share a database.
 *
 * What SQLite gives and PostgreSQL does not, rebuilt here:
 *   - placeholders: "?" / "?N" become "$N" (outside quotes);
 *   - statement-level atomicity inside a transaction: PostgreSQL aborts a
 *     whole transaction on the first error, SQLite only the statement; a
 *     statement run inside a transaction is wrapped in SAVEPOINT
 *     sqldb_stmt, rolled back to on failure, so "INSERT, got -EEXIST, carry
 *     on" works on both;
 *   - BEGIN IMMEDIATE: a write transaction first takes an advisory
 *     transaction lock keyed by the schema, so writers of one module's
 *     tables run one at a time across every host, as on one SQLite file;
 *     lock_timeout (5 s by default) turns a long wait into -EBUSY.
 *
 * Parameters are sent typed (int8, text, bytea) and results are read in
 * binary, so no value is ever escaped or parsed as text except integers
 * that the SQL itself produced as text.
 *
 * A connection the server dropped is re-established before the next
 * statement outside a transaction; inside one, the transaction fails with
 * -EIO and the caller's rollback ends it.
 */
#include "sqldb/internal/sqldb_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef EVFS_HAVE_LIBPQ
#include <libpq-fe.h>

#define MAX_PARAMS 32
#define LOCK_CLASS 0x65766673   /* "evfs": first key of the advisory lock */

/* type OIDs from PostgreSQL's catalog (pg_type.dat); stable */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_NAME 19
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_OID 26
#define OID_UNKNOWN 705
#define OID_BPCHAR 1042
#define OID_VARCHAR 1043

struct pg {
	struct sqldb base;
	PGconn *conn;
	char *conninfo;
	char schema[64];
	int lock_ms;
};

struct pg_stmt {
	struct sqldb_stmt base;
	char *sql;
	int nparams;
	char *val[MAX_PARAMS];
	int len[MAX_PARAMS];
	int fmt[MAX_PARAMS];
	Oid type[MAX_PARAMS];
	int64_t be[MAX_PARAMS];   /* int8 parameters, big-endian */
	PGresult *res;
	int ran, next, row;
	char num[32];             /* an integer column read as text */
};

static struct pg *pgc(struct sqldb *db)
{
	return (struct pg *)db;
}

static struct pg_stmt *pst(struct sqldb_stmt *st)
{
	return (struct pg_stmt *)st;
}

/* SQLSTATE (five characters) to negative errno. */
static int state_errno(const char *s)
{
	if (!s || strlen(s) != 5)
		return -EIO;
	if (!strcmp(s, "23505"))
		return -EEXIST;
	if (!strcmp(s, "23503"))
		return -ENOENT;
	if (!strcmp(s, "EVP01"))            /* our triggers' refusal */
		return -EPERM;
	if (!strncmp(s, "23", 2) || !strncmp(s, "22", 2))
		return -EINVAL;
	if (!strcmp(s, "55P03") || !strcmp(s, "40001") || !strcmp(s, "40P01"))
		return -EBUSY;
	if (!strcmp(s, "53100"))
		return -ENOSPC;
	if (!strcmp(s, "53200"))
		return -ENOMEM;
	if (!strncmp(s, "28", 2) || !strcmp(s, "42501"))
		return -EACCES;
	if (!strncmp(s, "42", 2))           /* our SQL is fixed: not our schema */
		return -EUCLEAN;
	if (!strcmp(s, "57014"))
		return -EINTR;
	if (!strcmp(s, "25006"))
		return -EROFS;
	return -EIO;
}

static void copy_msg(struct pg *p, const char *m)
{
	size_t n;

	sqldb_fail(&p->base, 0, "%s", m && *m ? m : "PostgreSQL error without a message");
	n = strlen(p->base.msg);
	while (n > 0 && (p->base.msg[n - 1] == '\n' || p->base.msg[n - 1] == ' '))
		p->base.msg[--n] = '\0';
}

static int res_fail(struct pg *p, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	copy_msg(p, r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
	if (PQstatus(p->conn) == CONNECTION_BAD)
		return -EIO;
	return state_errno(state);
}

/* Run SQL without parameters; 0 or negative errno. */
static int simple(struct pg *p, const char *sql)
{
	PGresult *r = PQexec(p->conn, sql);
	int err = 0;
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		err = res_fail(p, r);
	else if (*PQcmdTuples(r))
		p->base.changes = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return err;
}

static int pg_in_tx(struct sqldb *db)
{
	return PQtransactionStatus(pgc(db)->conn) != PQTRANS_IDLE;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int session_setup(struct pg *p, int create)
{
	char sql[256];
	int err;

	PQsetNoticeProcessor(p->conn, quiet, NULL);
	err = simple(p, "SET client_min_messages = warning");
	if (!err && create) {
		snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", p->schema);
		err = simple(p, sql);
	}
	if (!err) {
		const char *v[1] = { p->schema };
		PGresult *r = PQexecParams(p->conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, NULL, v,
					   NULL, NULL, 0);

		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
			err = res_fail(p, r);
		else if (PQntuples(r) == 0)
			err = sqldb_fail(&p->base, -ENOENT, "schema %s does not exist in this database", p->schema);
		PQclear(r);
	}
	if (!err) {
		snprintf(sql, sizeof sql, "SET search_path = %s; SET lock_timeout = %d", p->schema, p->lock_ms);
		err = simple(p, sql);
	}
	return err;
}

/* Outside a transaction, bring a dropped connection back. */
static int alive(struct pg *p)
{
	if (PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		copy_msg(p, PQerrorMessage(p->conn));
		return -EIO;
	}
	return session_setup(p, 0);
}

static void pg_close(struct sqldb *db)
{
	struct pg *p = pgc(db);

	if (p->conn) {
		if (PQstatus(p->conn) == CONNECTION_OK && pg_in_tx(db))
			(void)simple(p, "ROLLBACK");
		PQfinish(p->conn);
	}
	free(p->conninfo);
	free(p);
}

static void pg_busy(struct sqldb *db, int ms)
{
	struct pg *p = pgc(db);
	char sql[64];

	p->lock_ms = ms > 0 ? ms : 1;   /* 0 would mean "wait forever" */
	snprintf(sql, sizeof sql, "SET lock_timeout = %d", p->lock_ms);
	if (!pg_in_tx(db))
		(void)simple(p, sql);
}

/* "?" and "?N" outside quotes become "$N"; returns the highest N. */
static char *translate(const char *sql, int *nparams)
{
	size_t n = strlen(sql);
	char *out = malloc(n * 3 + 1), *o = out;
	const char *s = sql;
	char quote = 0;
	int next = 0, max = 0;

	if (!out)
		return NULL;
	while (*s) {
		char c = *s++;

		if (quote) {
			if (c == quote)
				quote = 0;
			*o++ = c;
		} else if (c == '\'' || c == '"') {
			quote = c;
			*o++ = c;
		} else if (c == '?') {
			int k;

			if (isdigit((unsigned char)*s)) {
				k = (int)strtol(s, (char **)&s, 10);
			} else {
				k = ++next;
			}
			if (k > next)
				next = k;
			if (k > max)
				max = k;
			o += sprintf(o, "$%d", k);
		} else {
			*o++ = c;
		}
	}
	*o = '\0';
	*nparams = max;
	return out;
}

static int pg_prepare(struct sqldb *db, const char *sql, struct sqldb_stmt **out)
{
	struct pg_stmt *s = calloc(1, sizeof *s);

	if (!s)
		return -ENOMEM;
	s->sql = translate(sql, &s->nparams);
	if (!s->sql) {
		free(s);
		return -ENOMEM;
	}
	if (s->nparams > MAX_PARAMS) {
		free(s->sql);
		free(s);
		return sqldb_fail(db, -EINVAL, "statement has more than %d parameters", MAX_PARAMS);
	}
	s->base.db = db;
	*out = &s->base;
	return 0;
}

static void clear_param(struct pg_stmt *s, int k)
{
	if (s->val[k] && s->val[k] != (char *)&s->be[k]) {
		explicit_bzero(s->val[k], (size_t)s->len[k]);
		free(s->val[k]);
	}
	s->val[k] = NULL;
	s->len[k] = 0;
}

static int pg_bind(struct sqldb_stmt *st, int i, enum sqldb_type type, const void *p, int len, int64_t v)
{
	struct pg_stmt *s = pst(st);
	int k = i - 1;
	uint64_t u = (uint64_t)v;
	int b;

	if (k < 0 || k >= s->nparams)
		return sqldb_fail(st->db, -EINVAL, "parameter %d out of range", i);
	clear_param(s, k);
	s->fmt[k] = 1;
	switch (type) {
	case SQLDB_INT:
		for (b = 0; b < 8; b++)
			((unsigned char *)&s->be[k])[b] = (unsigned char)(u >> (56 - 8 * b));
		s->val[k] = (char *)&s->be[k];
		s->len[k] = 8;
		s->type[k] = OID_INT8;
		break;
	case SQLDB_TEXT:
	case SQLDB_BLOB:
		s->val[k] = malloc((size_t)len + 1);
		if (!s->val[k])
			return -ENOMEM;
		memcpy(s->val[k], p, (size_t)len);
		s->val[k][len] = '\0';
		s->len[k] = len;
		s->type[k] = type == SQLDB_TEXT ? OID_TEXT : OID_BYTEA;
		break;
	default:
		s->type[k] = 0;
	}
	return 0;
}

static void pg_reset(struct sqldb_stmt *st)
{
	struct pg_stmt *s = pst(st);

	PQclear(s->res);
	s->res = NULL;
	s->ran = 0;
	s->next = 0;
}

static int run(struct pg_stmt *s)
{
	struct pg *p = pgc(s->base.db);
	int tx = pg_in_tx(&p->base), err;
	ExecStatusType rs;

	if (!tx && (err = alive(p)) != 0)
		return err;
	if (tx && (err = simple(p, "SAVEPOINT sqldb_stmt")) != 0)
		return err;
	s->res = PQexecParams(p->conn, s->sql, s->nparams, s->type, (const char *const *)s->val, s->len,
			      s->fmt, 1);
	rs = s->res ? PQresultStatus(s->res) : PGRES_FATAL_ERROR;
	if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK) {
		err = res_fail(p, s->res);
		PQclear(s->res);
		s->res = NULL;
		if (tx && PQstatus(p->conn) == CONNECTION_OK) {
			char keep[sizeof p->base.msg];

			memcpy(keep, p->base.msg, sizeof keep);
			(void)simple(p, "ROLLBACK TO SAVEPOINT sqldb_stmt; RELEASE SAVEPOINT sqldb_stmt");
			memcpy(p->base.msg, keep, sizeof keep);
		}
		return err;
	}
	p->base.changes = *PQcmdTuples(s->res) ? strtoll(PQcmdTuples(s->res), NULL, 10) : 0;
	return tx ? simple(p, "RELEASE SAVEPOINT sqldb_stmt") : 0;
}

static int pg_step(struct sqldb_stmt *st)
{
	struct pg_stmt *s = pst(st);
	int err;

	if (!s->ran) {
		s->ran = 1;
		err = run(s);
		if (err)
			return err;
	}
	if (!s->res || s->next >= PQntuples(s->res))
		return 0;
	s->row = s->next++;
	return 1;
}

static void pg_finalize(struct sqldb_stmt *st)
{
	struct pg_stmt *s = pst(st);
	int k;

	pg_reset(st);
	for (k = 0; k < s->nparams; k++)
		clear_param(s, k);
	free(s->sql);
	free(s);
}

static int valid(struct pg_stmt *s, int col)
{
	return s->res && s->row < PQntuples(s->res) && col >= 0 && col < PQnfields(s->res);
}

static enum sqldb_type pg_col_type(struct sqldb_stmt *st, int col)
{
	struct pg_stmt *s = pst(st);

	if (!valid(s, col) || PQgetisnull(s->res, s->row, col))
		return SQLDB_NULL;
	switch (PQftype(s->res, col)) {
	case OID_BOOL:
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		return SQLDB_INT;
	case OID_BYTEA:
		return SQLDB_BLOB;
	case OID_TEXT:
	case OID_VARCHAR:
	case OID_BPCHAR:
	case OID_NAME:
	case OID_UNKNOWN:
		return SQLDB_TEXT;
	default:
		return SQLDB_OTHER;
	}
}

static int64_t pg_col_int64(struct sqldb_stmt *st, int col)
{
	struct pg_stmt *s = pst(st);
	const unsigned char *v;
	uint64_t u = 0;
	int n, i;

	if (pg_col_type(st, col) == SQLDB_NULL)
		return 0;
	v = (const unsigned char *)PQgetvalue(s->res, s->row, col);
	n = PQgetlength(s->res, s->row, col);
	switch (PQftype(s->res, col)) {
	case OID_BOOL:
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		for (i = 0; i < n && i < 8; i++)
			u = u << 8 | v[i];
		if (n == 2)
			return (int16_t)u;
		if (n == 4 && PQftype(s->res, col) != OID_OID)
			return (int32_t)u;
		return (int64_t)u;
	case OID_TEXT:
	case OID_VARCHAR:
	case OID_UNKNOWN:
		return strtoll((const char *)v, NULL, 10);
	default:
		return 0;
	}
}

static const void *pg_col_value(struct sqldb_stmt *st, int col, int *len)
{
	struct pg_stmt *s = pst(st);

	*len = 0;
	if (pg_col_type(st, col) == SQLDB_NULL)
		return NULL;
	if (pg_col_type(st, col) == SQLDB_INT) {
		*len = snprintf(s->num, sizeof s->num, "%lld", (long long)pg_col_int64(st, col));
		return s->num;
	}
	*len = PQgetlength(s->res, s->row, col);
	return PQgetvalue(s->res, s->row, col);   /* libpq NUL-terminates */
}

static int pg_exec(struct sqldb *db, const char *sql)
{
	struct pg *p = pgc(db);
	int err;

	if (!pg_in_tx(db) && (err = alive(p)) != 0)
		return err;
	return simple(p, sql);
}

static int pg_begin(struct sqldb *db)
{
	struct pg *p = pgc(db);
	char sql[96];
	int err = pg_exec(db, "BEGIN");

	if (err)
		return err;
	snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%d, hashtext(current_schema()))", LOCK_CLASS);
	err = simple(p, sql);
	if (err) {
		char keep[sizeof p->base.msg];

		memcpy(keep, p->base.msg, sizeof keep);
		(void)simple(p, "ROLLBACK");
		memcpy(p->base.msg, keep, sizeof keep);
	}
	return err;
}

static int pg_checkpoint(struct sqldb *db)
{
	(void)db;
	return 0;
}

static const struct sqldb_ops pg_ops = {
	.close = pg_close,
	.busy_timeout = pg_busy,
	.prepare = pg_prepare,
	.bind = pg_bind,
	.step = pg_step,
	.reset = pg_reset,
	.finalize = pg_finalize,
	.col_type = pg_col_type,
	.col_int64 = pg_col_int64,
	.col_value = pg_col_value,
	.exec = pg_exec,
	.begin = pg_begin,
	.in_tx = pg_in_tx,
	.checkpoint = pg_checkpoint,
};

static int schema_ok(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > 48 || isdigit((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

int sqldb_open_pg(struct sqldb **out, const char *conninfo, const char *schema, int create, char *msg,
		  size_t msgsz)
{
	struct pg *p;
	int err;

	*out = NULL;
	if (!conninfo || !schema_ok(schema)) {
		if (msg)
			snprintf(msg, msgsz, "bad schema name '%s' (want [a-z_][a-z0-9_]*, at most 48 bytes)",
				 schema ? schema : "");
		return -EINVAL;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->base.kind = SQLDB_POSTGRESQL;
	p->base.ops = &pg_ops;
	p->lock_ms = 5000;
	snprintf(p->schema, sizeof p->schema, "%s", schema);
	p->conninfo = strdup(conninfo);
	p->conn = p->conninfo ? PQconnectdb(conninfo) : NULL;
	if (!p->conn) {
		err = -ENOMEM;
	} else if (PQstatus(p->conn) != CONNECTION_OK) {
		copy_msg(p, PQerrorMessage(p->conn));
		err = -ECONNREFUSED;
	} else {
		err = session_setup(p, create);
	}
	if (err) {
		if (msg)
			snprintf(msg, msgsz, "%s", p->base.msg);
		pg_close(&p->base);
		return err;
	}
	*out = &p->base;
	return 0;
}

#else /* !EVFS_HAVE_LIBPQ */

int sqldb_open_pg(struct sqldb **out, const char *conninfo, const char *schema, int create, char *msg,
		  size_t msgsz)
{
	(void)conninfo;
	(void)schema;
	(void)create;
	*out = NULL;
	if (msg)
		snprintf(msg, msgsz, "this evfs was built without PostgreSQL support (libpq-dev)");
	return -EPROTONOSUPPORT;
}

#endif
