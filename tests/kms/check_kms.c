/* SPDX-License-Identifier: MIT */
/*
 * check_kms.c - Check suite for kms/: the key store against real SQLite
 * files in a fresh mkdtemp directory per test.
 *
 * TCases: core (store lifecycle, root keys, DK round trips, threads, two
 * handles on one store as two hosts), states (the key state machine,
 * aliases, expiry and crypto-shredding), grants, sharing, audit, rotation,
 * tamper (flipped blobs, swapped rows, edited settings).  The clock is
 * never hooked: expiry is simulated by moving a deletion_date into the past
 * with a separate connection, exactly what the passing of time looks like
 * to the store.
 *
 * With EVFS_PG_CONNINFO set (ctest kms_pg: tests/cluster/pg.sh starts a
 * throwaway PostgreSQL) every store lives in PostgreSQL instead, in a fresh
 * schema k_<pid>_<n> per test, dropped at teardown; the separate connection
 * is an sqldb one to that schema, and the SQL that edits the store is
 * PostgreSQL's where SQLite's differs.  What only an SQLite file has is
 * left out there: the file's mode and header, probing its bytes for
 * destroyed material, a foreign or garbage file (test_open_errors).  The
 * "pg" TCase (test_pg_open_errors) runs only there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, mkdtemp */
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "kms/kms.h"
#include "sqldb/sqldb.h"
#include "tc.h"
#include "tc_kms.h"

/* base: one mkdtemp directory per run, made and removed by main() (a
 * failed assertion _exits the forked test before its teardown); dir: the
 * current test's directory inside it. */
static char base[64], dir[128], dbp[192], keyp[192], passp[192];
static struct tc_kms kx;   /* setup_store: creates and opens; K takes the handle */
static struct kms *K;
static int log_count;
static char logbuf[8192];  /* every message of the current test, one a line */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* EVFS_PG_CONNINFO: every store in PostgreSQL, schema `schema` (setup_dir). */
static const char *pg_conninfo;
static char schema[64];
static unsigned schema_n;
#define PG (pg_conninfo != NULL)

#define ADMINS "root, secadm\tops"

static const struct kms_caller admin = {0, "root", "alpha"};
static const struct kms_caller alice = {1000, "alice", "alpha"};
static const struct kms_caller bob = {1001, "bob", "beta"};
static const struct kms_caller carol = {1002, "carol", "gamma"};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void test_log(void *ctx, int level, const char *msg)
{
	size_t n;

	(void)ctx;
	(void)level;
	ck_assert_ptr_nonnull(msg);
	pthread_mutex_lock(&log_lock);
	log_count++;
	n = strlen(logbuf);
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
	pthread_mutex_unlock(&log_lock);
}

static struct kms_options opts(enum kms_root_kind kind, const char *secret)
{
	struct kms_options o = {
		.root_kind = kind,
		.secret_path = secret,
		.region = "region-1",
		.security_admins = ADMINS,
		.log = test_log,
		.log_ctx = NULL,
		.pg_conninfo = pg_conninfo,
		.pg_schema = PG ? schema : NULL,
	};
	return o;
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static uint8_t *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	*n = 0;
	if (!f)
		return NULL;
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	buf = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(buf);
	*n = fread(buf, 1, (size_t)len, f);
	fclose(f);
	return buf;
}

/* Does the byte string occur in the db, its -wal or its -shm file? */
static int store_contains(const void *needle, size_t len)
{
	const char *sfx[] = {"", "-wal", "-shm"};
	char path[256];
	int found = 0;

	for (size_t i = 0; i < 3; i++) {
		size_t n;
		uint8_t *buf;

		snprintf(path, sizeof(path), "%s%s", dbp, sfx[i]);
		buf = read_all(path, &n);
		if (buf && memmem(buf, n, needle, len))
			found = 1;
		free(buf);
	}
	return found;
}

/* PostgreSQL: a connection of the test's own to the store's schema (or to
 * another existing one). */
static struct sqldb *pg_conn(const char *in_schema)
{
	struct sqldb *db = NULL;
	char msg[256] = "";
	int rc = sqldb_open_pg(&db, pg_conninfo, in_schema, 0, msg, sizeof(msg));

	ck_assert_msg(rc == 0, "sqldb_open_pg(%s): %d %s", in_schema, rc, msg);
	return db;
}

static void pg_exec_in(const char *in_schema, const char *q)
{
	struct sqldb *db = pg_conn(in_schema);

	if (sqldb_exec(db, q) != 0)
		ck_abort_msg("sql %s: %s", q, sqldb_errmsg(db));
	sqldb_close(db);
}

/* A prepared PostgreSQL query's first row: 1, or 0 when there is none. */
static int pg_first_row(struct sqldb *db, const char *q, struct sqldb_stmt **st)
{
	int rc;

	if (sqldb_prepare(db, q, st) != 0)
		ck_abort_msg("sql %s: %s", q, sqldb_errmsg(db));
	rc = sqldb_step(*st);
	ck_assert_msg(rc >= 0, "sql %s: %s", q, sqldb_errmsg(db));
	return rc;
}

/* Is there a store: the file, or the schema? */
static int store_exists(void)
{
	struct sqldb *db = NULL;
	int rc;

	if (!PG)
		return access(dbp, F_OK) == 0;
	rc = sqldb_open_pg(&db, pg_conninfo, schema, 0, NULL, 0);
	sqldb_close(db);
	ck_assert_msg(rc == 0 || rc == -ENOENT, "sqldb_open_pg: %d", rc);
	return rc == 0;
}

static void sql(const char *q)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	if (PG) {
		pg_exec_in(schema, q);
		return;
	}
	ck_assert_int_eq(sqlite3_open(dbp, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK)
		ck_abort_msg("sql %s: %s", q, err);
	sqlite3_close(db);
}

/* First column of the first row as a blob; returns its length or -1. */
static int sql_blob(const char *q, uint8_t *out, size_t max)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (PG) {
		struct sqldb *pg = pg_conn(schema);
		struct sqldb_stmt *ps = NULL;

		if (pg_first_row(pg, q, &ps) == 1 && sqldb_column_type(ps, 0) != SQLDB_NULL) {
			n = sqldb_column_bytes(ps, 0);
			ck_assert_int_le(n, (int)max);
			memcpy(out, sqldb_column_blob(ps, 0), (size_t)n);
		}
		sqldb_finalize(ps);
		sqldb_close(pg);
		return n;
	}
	ck_assert_int_eq(sqlite3_open(dbp, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		n = sqlite3_column_bytes(st, 0);
		ck_assert_int_le(n, (int)max);
		memcpy(out, sqlite3_column_blob(st, 0), (size_t)n);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static int64_t sql_int(const char *q)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (PG) {
		struct sqldb *pg = pg_conn(schema);
		struct sqldb_stmt *ps = NULL;

		if (pg_first_row(pg, q, &ps) == 1)
			v = sqldb_column_int64(ps, 0);
		sqldb_finalize(ps);
		sqldb_close(pg);
		return v;
	}
	ck_assert_int_eq(sqlite3_open(dbp, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void setup_dir(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	tc_tmpdir(dir, sizeof(dir), base, "t");
	snprintf(dbp, sizeof(dbp), "%s/kms.db", dir);
	snprintf(keyp, sizeof(keyp), "%s/root.key", dir);
	snprintf(passp, sizeof(passp), "%s/pass", dir);
	if (PG)
		snprintf(schema, sizeof(schema), "k_%ld_%u", (long)getpid(), schema_n++);
	K = NULL;
	log_count = 0;
	logbuf[0] = '\0';
}

static void teardown(void)
{
	char q[128];

	kms_close(K);
	K = NULL;
	ck_assert_int_eq(tc_rm_rf(dir), 0);
	if (PG) {
		snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
		pg_exec_in("public", q);
	}
}

/* Close and open again, with the fixture's root key (file or token). */
static void reopen(void)
{
	kms_close(K);
	K = NULL;
	ck_assert_int_eq(kms_open(&K, dbp, &kx.opt), 0);
}

static void setup_store(void)
{
	const struct tc_kms_cfg cfg = { .region = "region-1", .admins = ADMINS, .log = test_log, .no_open = PG };

	setup_dir();
	tc_kms_init(&kx, dir, &cfg);     /* dir/kms.db (dbp), key file dir/root.key (keyp) */
	if (PG) {
		/* the fixture's root key (file or token) for a store in
		 * PostgreSQL; its SQLite file goes */
		ck_assert_int_eq(unlink(dbp), 0);
		kx.opt.pg_conninfo = pg_conninfo;
		kx.opt.pg_schema = schema;
		ck_assert_int_eq(kms_create(NULL, &kx.opt), 0);
		ck_assert_int_eq(kms_open(&kx.k, NULL, &kx.opt), 0);
	}
	K = kx.k;                        /* the tests own K from here: reopen(), teardown() */
	kx.k = NULL;
}

static void setup_granted(void)
{
	setup_store();
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);
}

static void new_key(const struct kms_caller *c, const char *alias, struct kms_key_info *ki)
{
	ck_assert_int_eq(kms_key_create(K, c, alias, "test key", ki), 0);
	ck_assert_int_eq(ki->state, KMS_KEY_ENABLED);
}

struct blob {
	uint8_t b[KMS_WRAPPED_MAX];
	size_t n;
};

static struct kms_dk *gen(const struct kms_caller *c, const char *key, const char *ctx, struct blob *bl)
{
	struct kms_dk *dk = NULL;

	ck_assert_int_eq(kms_dk_generate(K, c, key, ctx, strlen(ctx), bl->b, &bl->n, &dk), 0);
	ck_assert_ptr_nonnull(dk);
	ck_assert_uint_eq(bl->n, 77);
	return dk;
}

static int unwrap_eq(const struct kms_caller *c, const char *key, const char *ctx, const struct blob *bl,
		     const struct kms_dk *want)
{
	struct kms_dk *dk = NULL;
	int rc = kms_dk_unwrap(K, c, key, ctx, strlen(ctx), bl->b, bl->n, &dk);

	if (rc == 0) {
		ck_assert_ptr_nonnull(dk);
		if (want)
			ck_assert_mem_eq(kms_dk_bytes(dk), kms_dk_bytes(want), KMS_KEY_BYTES);
	} else {
		ck_assert_ptr_null(dk);
	}
	kms_dk_destroy(dk);
	return rc;
}

/* ------------------------------------------------------------------------
 * core
 * ------------------------------------------------------------------------ */

START_TEST(test_create_open_keyfile)
{
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);
	struct stat st;

	setup_dir();
	ck_assert_int_eq(access(keyp, F_OK), -1);
	ck_assert_int_eq(kms_create(dbp, &o), 0);
	ck_assert_int_eq(stat(keyp, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0400);
	ck_assert_int_eq(st.st_size, 32);
	if (!PG) {
		ck_assert_int_eq(stat(dbp, &st), 0);
		ck_assert_int_eq(st.st_mode & 07777, 0600);
	}
	ck_assert_int_eq(kms_create(dbp, &o), -EEXIST);
	if (PG)
		ck_assert_ptr_nonnull(strstr(logbuf, "a key store already exists in schema k_"));
	ck_assert_int_eq(kms_open(&K, dbp, &o), 0);
	ck_assert_ptr_nonnull(K);
	{       /* freshness notes live only on a PKCS#11 token (check_hsm) */
		uint8_t h[32] = { 0 };
		uint64_t g;

		ck_assert_int_eq(kms_fresh_get(K, "0123456789abcdef0123456789abcdef", &g, h), -EOPNOTSUPP);
		ck_assert_int_eq(kms_fresh_set(K, "0123456789abcdef0123456789abcdef", 1, h, 0), -EOPNOTSUPP);
	}
	if (!PG) {
		size_t n;
		uint8_t *hdr = read_all(dbp, &n);   /* header bytes 18/19 = 2: WAL */

		ck_assert_uint_ge(n, 100);
		ck_assert_int_eq(hdr[18], 2);
		ck_assert_int_eq(hdr[19], 2);
		free(hdr);
	}
	ck_assert_int_eq(kms_is_admin(K, "root"), 1);
	ck_assert_int_eq(kms_is_admin(K, "secadm"), 1);
	ck_assert_int_eq(kms_is_admin(K, "ops"), 1);
	ck_assert_int_eq(kms_is_admin(K, "roo"), 0);
	ck_assert_int_eq(kms_is_admin(K, "alice"), 0);
	ck_assert_int_eq(kms_is_admin(K, ""), 0);
	ck_assert_int_eq(kms_is_admin(K, NULL), 0);
	kms_close(K);
	K = NULL;
	kms_close(NULL);
	ck_assert_int_eq(kms_open(&K, dbp, &o), 0);
	if (PG) {       /* typed settings columns; the PRAGMAs became settings */
		ck_assert_int_eq(sql_int("SELECT count(*) FROM settings WHERE name = 'region'"
					 " AND text_value = 'region-1'"), 1);
		ck_assert_int_eq(sql_int("SELECT int_value FROM settings WHERE name = 'root_kind'"), KMS_ROOT_KEYFILE);
		ck_assert_int_eq(sql_int("SELECT count(*) FROM settings WHERE name = 'created' AND int_value > 0"), 1);
		ck_assert_int_eq(sql_int("SELECT int_value FROM settings WHERE name = 'kms.application_id'"),
				 0x65766b73);
		ck_assert_int_eq(sql_int("SELECT int_value FROM settings WHERE name = 'kms.schema_version'"), 1);
		ck_assert_int_eq(sql_int("SELECT length(blob_value) FROM settings WHERE name = 'verifier'"), 32);
	} else {
		ck_assert_int_eq(sql_int("SELECT count(*) FROM settings WHERE name = 'region' AND value = 'region-1'"),
				 1);
		ck_assert_int_eq(sql_int("SELECT value FROM settings WHERE name = 'root_kind'"), KMS_ROOT_KEYFILE);
		ck_assert_int_eq(sql_int("SELECT count(*) FROM settings WHERE name = 'created' AND value > 0"), 1);
	}
	teardown();
}
END_TEST

START_TEST(test_existing_keyfile)
{
	uint8_t key[32];
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);
	size_t n;
	uint8_t *after;

	setup_dir();
	randombytes_buf(key, sizeof(key));
	write_file(keyp, key, sizeof(key), 0600);
	ck_assert_int_eq(kms_create(dbp, &o), 0);
	after = read_all(keyp, &n);            /* used, not replaced */
	ck_assert_uint_eq(n, 32);
	ck_assert_mem_eq(after, key, 32);
	free(after);
	ck_assert_int_eq(kms_open(&K, dbp, &o), 0);
	teardown();
}
END_TEST

START_TEST(test_keyfile_bad_size)
{
	uint8_t key[33] = {0};
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);

	setup_dir();
	write_file(keyp, key, 31, 0600);
	ck_assert_int_eq(kms_create(dbp, &o), -EINVAL);
	ck_assert(!store_exists());                       /* nothing left behind */
	unlink(keyp);
	ck_assert_int_eq(kms_create(dbp, &o), 0);
	unlink(keyp);
	write_file(keyp, key, 33, 0600);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EINVAL);
	ck_assert_ptr_null(K);
	unlink(keyp);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -ENOENT);
	teardown();
}
END_TEST

START_TEST(test_wrong_keyfile)
{
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);
	uint8_t other[32];
	char other_path[256];

	setup_dir();
	ck_assert_int_eq(kms_create(dbp, &o), 0);
	randombytes_buf(other, sizeof(other));
	snprintf(other_path, sizeof(other_path), "%s/other.key", dir);
	write_file(other_path, other, sizeof(other), 0400);
	o.secret_path = other_path;
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EKEYREJECTED);
	ck_assert_ptr_null(K);
	ck_assert_int_gt(log_count, 0);
	teardown();
}
END_TEST

START_TEST(test_passphrase)
{
	struct kms_options o = opts(KMS_ROOT_PASSPHRASE, passp);
	struct kms_key_info ki;
	struct kms_dk *dk;
	struct blob bl;

	setup_dir();
	write_file(passp, "", 0, 0600);
	ck_assert_int_eq(kms_create(dbp, &o), -EINVAL);    /* empty passphrase */
	write_file(passp, "\nsecond line", 12, 0600);
	ck_assert_int_eq(kms_create(dbp, &o), -EINVAL);    /* empty first line */
	write_file(passp, "ab\n", 3, 0600);
	ck_assert_int_eq(kms_create(dbp, &o), -EINVAL);    /* shorter than KMS_PASSPHRASE_MIN */
	ck_assert(!store_exists());
	write_file(passp, "correct horse battery\nignored", 29, 0600);
	ck_assert_int_eq(kms_create(dbp, &o), 0);
	ck_assert_int_eq(sql_int(PG ? "SELECT length(blob_value) FROM settings WHERE name = 'pwhash_salt'"
				    : "SELECT length(value) FROM settings WHERE name = 'pwhash_salt'"), 16);
	/* same first line, CRLF and no trailing newline: same key */
	write_file(passp, "correct horse battery\r\n", 23, 0600);
	ck_assert_int_eq(kms_open(&K, dbp, &o), 0);
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);
	new_key(&alice, "pp", &ki);
	dk = gen(&alice, ki.id, "ctx", &bl);
	kms_close(K);
	K = NULL;
	write_file(passp, "correct horse battery", 21, 0600);
	ck_assert_int_eq(kms_open(&K, dbp, &o), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "ctx", &bl, dk), 0);
	kms_close(K);
	K = NULL;
	write_file(passp, "correct horse battery staple\n", 29, 0600);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EKEYREJECTED);
	/* a passphrase store opened as a key file store */
	o = opts(KMS_ROOT_KEYFILE, passp);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EKEYREJECTED);
	unlink(passp);
	o = opts(KMS_ROOT_PASSPHRASE, passp);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -ENOENT);
	kms_dk_destroy(dk);
	teardown();
}
END_TEST

START_TEST(test_open_errors)
{
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);
	char junk[4096];

	setup_dir();
	ck_assert_int_eq(kms_open(&K, dbp, &o), -ENOENT);
	ck_assert_int_eq(kms_open(&K, NULL, &o), -EINVAL);
	ck_assert_int_eq(kms_open(&K, dbp, NULL), -EINVAL);
	o.root_kind = (enum kms_root_kind)7;
	ck_assert_int_eq(kms_create(dbp, &o), -EINVAL);
	o = opts(KMS_ROOT_KEYFILE, keyp);
	/* some other SQLite database */
	sql("CREATE TABLE t(x)");
	ck_assert_int_eq(kms_create(dbp, &o), -EEXIST);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EUCLEAN);
	/* not a database at all */
	memset(junk, 'x', sizeof(junk));
	write_file(dbp, junk, sizeof(junk), 0600);
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EUCLEAN);
	ck_assert_ptr_null(K);
	teardown();
}
END_TEST

START_TEST(test_dk_roundtrip)
{
	struct kms_key_info ki;
	struct kms_dk *dk, *dk2 = NULL;
	struct blob bl, bl2;
	uint8_t zero[KMS_KEY_BYTES] = {0};

	setup_granted();
	new_key(&alice, "app/data", &ki);
	ck_assert_uint_eq(ki.version, 1);
	ck_assert_uint_eq(ki.versions_in_use, 1);
	dk = gen(&alice, ki.id, "lineage-1", &bl);
	ck_assert_mem_ne(kms_dk_bytes(dk), zero, KMS_KEY_BYTES);
	ck_assert_uint_eq(kms_dk_blob_version(bl.b, bl.n), 1);
	ck_assert_uint_eq(kms_dk_blob_version(bl.b, bl.n - 1), 0);
	ck_assert_uint_eq(kms_dk_blob_version(NULL, 77), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lineage-1", &bl, dk), 0);
	ck_assert_int_eq(unwrap_eq(&alice, "app/data", "lineage-1", &bl, dk), 0);   /* by alias */
	/* a second DK differs, and generate works without *dk */
	ck_assert_int_eq(kms_dk_generate(K, &alice, ki.id, "lineage-2", 9, bl2.b, &bl2.n, NULL), 0);
	ck_assert_int_eq(kms_dk_unwrap(K, &alice, ki.id, "lineage-2", 9, bl2.b, bl2.n, &dk2), 0);
	ck_assert_mem_ne(kms_dk_bytes(dk2), kms_dk_bytes(dk), KMS_KEY_BYTES);
	kms_dk_destroy(dk2);
	/* empty context is a context too */
	ck_assert_int_eq(kms_dk_generate(K, &alice, ki.id, NULL, 0, bl2.b, &bl2.n, &dk2), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "", &bl2, dk2), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "x", &bl2, NULL), -EBADMSG);
	kms_dk_destroy(dk2);
	/* wrong context */
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lineage-2", &bl, NULL), -EBADMSG);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lineage-", &bl, NULL), -EBADMSG);
	/* persists across reopen */
	reopen();
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lineage-1", &bl, dk), 0);
	kms_dk_destroy(dk);
	kms_dk_destroy(NULL);
	ck_assert_ptr_null(kms_dk_bytes(NULL));
	teardown();
}
END_TEST

START_TEST(test_bad_args)
{
	struct kms_caller c = alice;
	struct kms_key_info ki;
	struct blob bl;
	char big[300], ctx[1100];
	struct kms_dk *dk = NULL, *dk2 = NULL;

	setup_granted();
	new_key(&alice, "k1", &ki);
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = 0;
	ck_assert_int_eq(kms_key_create(K, NULL, "k2", NULL, NULL), -EINVAL);
	c.user = big;
	ck_assert_int_eq(kms_key_create(K, &c, "k2", NULL, NULL), -EINVAL);
	c.user = NULL;
	ck_assert_int_eq(kms_key_create(K, &c, "k2", NULL, NULL), -EINVAL);
	c = alice;
	c.project = big;
	ck_assert_int_eq(kms_key_create(K, &c, "k2", NULL, NULL), -EINVAL);
	c.project = "";
	ck_assert_int_eq(kms_key_lookup(K, &c, "k1", &ki), -EINVAL);
	c.project = "has space";
	ck_assert_int_eq(kms_key_lookup(K, &c, "k1", &ki), -EINVAL);
	ck_assert_int_eq(kms_key_lookup(K, &alice, big, &ki), -EINVAL);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "", &ki), -EINVAL);
	ck_assert_int_eq(kms_grant(K, &admin, big), -EINVAL);
	ck_assert_int_eq(kms_is_granted(K, big), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "k2", big, NULL), -EINVAL);   /* 299-char description */
	big[KMS_DESC_MAX - 1] = 0;
	ck_assert_int_eq(kms_key_create(K, &alice, "k2", big, &ki), 0);          /* 255 is fine */
	ck_assert_str_eq(ki.description, big);
	memset(ctx, 'c', sizeof(ctx));
	ck_assert_int_eq(kms_dk_generate(K, &alice, "k1", ctx, sizeof(ctx), bl.b, &bl.n, &dk), -EINVAL);
	ck_assert_int_eq(kms_dk_generate(K, &alice, "k1", NULL, 3, bl.b, &bl.n, &dk), -EINVAL);
	ck_assert_ptr_null(dk);
	ck_assert_int_eq(kms_dk_generate(K, &alice, "k1", ctx, 1024, bl.b, &bl.n, &dk), 0);
	ck_assert_int_eq(kms_dk_unwrap(K, &alice, "k1", ctx, 1024, NULL, 77, &dk2), -EINVAL);
	ck_assert_ptr_null(dk2);
	ck_assert_int_eq(kms_dk_unwrap(K, &alice, "k1", ctx, 1024, bl.b, bl.n, &dk2), 0);
	ck_assert_mem_eq(kms_dk_bytes(dk), kms_dk_bytes(dk2), KMS_KEY_BYTES);
	kms_dk_destroy(dk);
	kms_dk_destroy(dk2);
	ck_assert_int_eq(kms_dk_generate(K, &alice, "nope", NULL, 0, bl.b, &bl.n, NULL), -ENOENT);
	teardown();
}
END_TEST

struct thr {
	const char *key;
	int fails;
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	char ctx[32];

	for (int i = 0; i < 20; i++) {
		struct kms_dk *a = NULL, *b = NULL;
		struct blob bl;

		snprintf(ctx, sizeof(ctx), "ctx-%p-%d", (void *)t, i);
		if (kms_dk_generate(K, &alice, t->key, ctx, strlen(ctx), bl.b, &bl.n, &a) != 0 ||
		    kms_dk_unwrap(K, &alice, t->key, ctx, strlen(ctx), bl.b, bl.n, &b) != 0 ||
		    memcmp(kms_dk_bytes(a), kms_dk_bytes(b), KMS_KEY_BYTES) != 0)
			t->fails++;
		kms_dk_destroy(a);
		kms_dk_destroy(b);
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct kms_key_info ki;
	pthread_t th[4];
	struct thr t[4];
	int64_t bad = -1;

	setup_granted();
	new_key(&alice, "threads", &ki);
	for (int i = 0; i < 4; i++) {
		t[i].key = i % 2 ? ki.id : KMS_DEFAULT_ALIAS;
		t[i].fails = 0;
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(t[i].fails, 0);
	}
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * states
 * ------------------------------------------------------------------------ */

START_TEST(test_transitions)
{
	struct kms_key_info ki, out;
	int64_t now = (int64_t)time(NULL);

	setup_granted();
	new_key(&alice, "app/x", &ki);
	ck_assert_int_eq(kms_key_enable(K, &alice, "app/x", NULL), -EALREADY);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, "app/x", NULL), -EALREADY);
	ck_assert_int_eq(kms_key_disable(K, &alice, "app/x", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_DISABLED);
	ck_assert_str_eq(out.id, ki.id);
	ck_assert_int_eq(kms_key_disable(K, &alice, ki.id, NULL), -EALREADY);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, "app/x", NULL), -EALREADY);
	ck_assert_int_eq(kms_key_enable(K, &alice, "app/x", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_ENABLED);
	/* deletion window bounds */
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 6, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 1097, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 0, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", -7, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "app/x", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_ENABLED);
	ck_assert_int_eq(out.deletion_date, 0);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 7, &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_PENDING_DELETION);
	ck_assert_int_ge(out.deletion_date, now + 7 * 86400);
	ck_assert_int_le(out.deletion_date, now + 7 * 86400 + 60);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 7, NULL), -EALREADY);
	ck_assert_int_eq(kms_key_disable(K, &alice, "app/x", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_enable(K, &alice, "app/x", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_rotate(K, &alice, "app/x", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, "app/x", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_DISABLED);          /* back to Disabled, not Enabled */
	ck_assert_int_eq(out.deletion_date, 0);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "app/x", 1096, &out), 0);   /* from Disabled */
	ck_assert_int_ge(out.deletion_date, now + 1096LL * 86400);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, "app/x", NULL), 0);
	ck_assert_int_eq(kms_key_enable(K, &alice, "app/x", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_ENABLED);
	ck_assert_int_eq(kms_key_disable(K, &alice, "nope", NULL), -ENOENT);
	ck_assert_str_eq(kms_state_name(KMS_KEY_ENABLED), "Enabled");
	ck_assert_str_eq(kms_state_name(KMS_KEY_DISABLED), "Disabled");
	ck_assert_str_eq(kms_state_name(KMS_KEY_PENDING_DELETION), "PendingDeletion");
	ck_assert_str_eq(kms_state_name(KMS_KEY_DELETED), "Deleted");
	teardown();
}
END_TEST

START_TEST(test_default_key_protected)
{
	struct kms_key_info ki;

	setup_granted();
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &ki), 0);
	ck_assert_int_eq(ki.is_default, 1);
	ck_assert_int_eq(kms_key_disable(K, &alice, KMS_DEFAULT_ALIAS, NULL), -EPERM);
	ck_assert_int_eq(kms_key_disable(K, &admin, ki.id, NULL), -EPERM);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, KMS_DEFAULT_ALIAS, 30, NULL), -EPERM);
	ck_assert_int_eq(kms_key_enable(K, &alice, KMS_DEFAULT_ALIAS, NULL), -EALREADY);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, KMS_DEFAULT_ALIAS, NULL), -EALREADY);
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &ki), 0);
	ck_assert_int_eq(ki.state, KMS_KEY_ENABLED);
	ck_assert_int_eq(kms_key_create(K, &alice, "evs/mine", NULL, NULL), -EINVAL);
	teardown();
}
END_TEST

START_TEST(test_alias_rules)
{
	struct kms_key_info ki, other;
	char a63[64], a64[65];

	setup_granted();
	memset(a63, 'a', 63);
	a63[63] = 0;
	memset(a64, 'b', 64);
	a64[64] = 0;
	ck_assert_int_eq(kms_key_create(K, &alice, "", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, a64, NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "evs/default", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "evs/x", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "has space", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "star*", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, "caf\xc3\xa9", NULL, NULL), -EINVAL);
	ck_assert_int_eq(kms_key_create(K, &alice, a63, NULL, &ki), 0);
	ck_assert_str_eq(ki.alias, a63);
	ck_assert_int_eq(kms_key_create(K, &alice, "Ok/alias_1.2-3", "desc", &ki), 0);
	ck_assert_str_eq(ki.description, "desc");
	ck_assert_str_eq(ki.project, "alpha");
	ck_assert_int_eq(ki.is_default, 0);
	ck_assert_int_eq(kms_key_create(K, &alice, "Ok/alias_1.2-3", NULL, NULL), -EEXIST);
	ck_assert_int_eq(kms_key_create(K, &alice, "evsx/ok", NULL, NULL), 0);
	/* the same alias in another project is another key */
	ck_assert_int_eq(kms_grant(K, &admin, "beta"), 0);
	ck_assert_int_eq(kms_key_create(K, &bob, "Ok/alias_1.2-3", NULL, &other), 0);
	ck_assert_str_ne(other.id, ki.id);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "Ok/alias_1.2-3", &other), 0);
	ck_assert_str_eq(other.id, ki.id);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "ok/alias_1.2-3", &other), -ENOENT);   /* case-sensitive */
	teardown();
}
END_TEST

/* A CMK version's sealed material as stored: 72 bytes under a key file,
 * 60 as a token's seal (EVFS_TEST_KMS=pkcs11).  Returns its length. */
static size_t capture_material(const char *id, uint32_t version, uint8_t mat[72])
{
	char q[256];
	int n;

	snprintf(q, sizeof(q), "SELECT material FROM key_versions WHERE key_id = '%s' AND version = %u", id, version);
	n = sql_blob(q, mat, 72);
	ck_assert_msg(n == (tc_kms_backend_pkcs11() ? 60 : 72), "material of %s v%u: %d bytes", id, version, n);
	return (size_t)n;
}

static void make_due(const char *id)
{
	char q[256];

	if (PG)
		snprintf(q, sizeof(q), "UPDATE keys SET deletion_date = extract(epoch FROM now())::bigint - 5"
			 " WHERE id = '%s'", id);
	else
		snprintf(q, sizeof(q), "UPDATE keys SET deletion_date = strftime('%%s', 'now') - 5 WHERE id = '%s'",
			 id);
	sql(q);
}

START_TEST(test_expiry_shreds)
{
	struct kms_key_info ki, k2, out;
	struct kms_dk *dk, *dk2;
	struct blob bl, bl2;
	uint8_t mat[72], mat2[72];
	size_t nmat, nmat2;
	char q[256];

	setup_granted();
	new_key(&alice, "doomed", &ki);
	new_key(&alice, "doomed2", &k2);
	dk = gen(&alice, ki.id, "c", &bl);
	dk2 = gen(&alice, k2.id, "c", &bl2);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "doomed", 7, NULL), 0);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "doomed2", 30, NULL), 0);
	kms_close(K);
	K = NULL;

	/* 1. the date passes while no one has the store open: kms_open shreds */
	nmat = capture_material(ki.id, 1, mat);
	nmat2 = capture_material(k2.id, 1, mat2);
	ck_assert(PG || store_contains(mat, nmat));         /* the probe can see it (SQLite) */
	make_due(ki.id);
	reopen();
	ck_assert_int_eq(kms_key_lookup(K, &alice, "doomed", &out), 0);
	ck_assert_int_eq(out.state, KMS_KEY_DELETED);
	ck_assert_str_eq(out.alias, "doomed");           /* still nameable */
	ck_assert_uint_eq(out.versions_in_use, 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "c", &bl, NULL), -ENOKEY);
	ck_assert_int_eq(kms_dk_generate(K, &alice, ki.id, "c", 1, bl.b, &bl.n, NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_enable(K, &alice, "doomed", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_disable(K, &alice, "doomed", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_cancel_deletion(K, &alice, "doomed", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &alice, "doomed", 7, NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_rotate(K, &alice, "doomed", NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_create(K, &alice, "doomed", NULL, NULL), -EEXIST);
	snprintf(q, sizeof(q), "SELECT count(*) FROM key_versions WHERE key_id = '%s' AND material IS NULL", ki.id);
	ck_assert_int_eq(sql_int(q), 1);
	ck_assert(PG || !store_contains(mat, nmat));        /* with the store open */
	ck_assert(PG || store_contains(mat2, nmat2));
	ck_assert_int_eq(unwrap_eq(&alice, k2.id, "c", &bl2, dk2), -ENOKEY);   /* pending: unusable */

	/* 2. the date passes while the store is open: the next call shreds */
	make_due(k2.id);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 1);     /* any call */
	snprintf(q, sizeof(q), "SELECT state FROM keys WHERE id = '%s'", k2.id);
	ck_assert_int_eq(sql_int(q), KMS_KEY_DELETED);
	ck_assert(PG || !store_contains(mat2, nmat2));
	kms_close(K);
	K = NULL;
	ck_assert(PG || !store_contains(mat, nmat));
	ck_assert(PG || !store_contains(mat2, nmat2));
	ck_assert_int_eq(sql_int("SELECT count(*) FROM key_versions WHERE material IS NOT NULL"
				 " AND key_id IN (SELECT id FROM keys WHERE alias LIKE 'doomed%')"), 0);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM audit WHERE op = 'key.expire'"), 2);
	kms_dk_destroy(dk);
	kms_dk_destroy(dk2);
	teardown();
}
END_TEST

START_TEST(test_disabled_key_dk)
{
	struct kms_key_info ki;
	struct kms_dk *dk;
	struct blob bl, tmp;

	setup_granted();
	new_key(&alice, "vol", &ki);
	dk = gen(&alice, "vol", "lin", &bl);
	ck_assert_int_eq(kms_key_disable(K, &alice, "vol", NULL), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lin", &bl, NULL), -ENOKEY);
	ck_assert_int_eq(kms_dk_generate(K, &alice, ki.id, "lin", 3, tmp.b, &tmp.n, NULL), -ENOKEY);
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, ki.id, "lin", 3, bl.b, bl.n, tmp.b, &tmp.n), -ENOKEY);
	ck_assert_uint_eq(tmp.n, 0);
	ck_assert_int_eq(kms_key_enable(K, &alice, "vol", NULL), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "lin", &bl, dk), 0);   /* no data lost */
	kms_dk_destroy(dk);
	teardown();
}
END_TEST

/* kms_key_use_check: the checks of dk.generate without key material; a
 * refusal is audited, a success is not (the real generate will be). */
START_TEST(test_use_check)
{
	struct kms_key_info ki, got;
	struct kms_caller other = alice;
	int64_t bad = -1;
	const char *refused = "SELECT count(*) FROM audit WHERE op = 'dk.generate' AND result <> 0";

	setup_granted();
	new_key(&alice, "vol", &ki);
	ck_assert_int_eq(kms_key_use_check(K, &alice, "vol", &got), 0);
	ck_assert_str_eq(got.id, ki.id);
	ck_assert_int_eq(sql_int(refused), 0);
	ck_assert_int_eq(kms_key_disable(K, &alice, "vol", NULL), 0);
	ck_assert_int_eq(kms_key_use_check(K, &alice, "vol", &got), -ENOKEY);
	ck_assert_int_eq(got.state, KMS_KEY_DISABLED);               /* for the caller's message */
	ck_assert_int_eq(kms_key_use_check(K, &alice, "nosuch", &got), -ENOENT);
	other.project = "ungranted";
	ck_assert_int_eq(kms_key_use_check(K, &other, "vol", &got), -EACCES);
	ck_assert_int_eq(sql_int(refused), 3);
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * grants
 * ------------------------------------------------------------------------ */

START_TEST(test_grant_admin_only)
{
	struct kms_key_info ki, again;
	const struct kms_caller fake = {0, "alice", "alpha"};   /* uid 0 is not what counts */

	setup_store();
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 0);
	ck_assert_int_eq(kms_grant(K, &alice, "alpha"), -EPERM);
	ck_assert_int_eq(kms_grant(K, &fake, "alpha"), -EPERM);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &ki), -ENOENT);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM keys"), 0);
	ck_assert_int_eq(kms_key_create(K, &alice, "mine", NULL, NULL), -EACCES);
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 1);
	ck_assert_int_eq(kms_is_granted(K, "beta"), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &ki), 0);
	ck_assert_int_eq(ki.is_default, 1);
	ck_assert_int_eq(ki.state, KMS_KEY_ENABLED);
	ck_assert_str_eq(ki.project, "alpha");
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);        /* twice is fine */
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &again), 0);
	ck_assert_str_eq(again.id, ki.id);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM keys"), 1);
	ck_assert_int_eq(kms_key_create(K, &alice, "mine", NULL, NULL), 0);
	teardown();
}
END_TEST

START_TEST(test_revoke)
{
	struct kms_key_info ki, again;
	struct kms_dk *dk;
	struct blob bl, tmp;

	setup_granted();
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &ki), 0);
	dk = gen(&alice, KMS_DEFAULT_ALIAS, "v", &bl);
	ck_assert_int_eq(kms_revoke(K, &alice, "alpha"), -EPERM);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 1);
	ck_assert_int_eq(kms_revoke(K, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_revoke(K, &admin, "alpha"), -ENOENT);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 0);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "v", &bl, NULL), -EACCES);
	ck_assert_int_eq(kms_dk_generate(K, &alice, ki.id, "v", 1, tmp.b, &tmp.n, NULL), -EACCES);
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &again), 0);   /* keys stay */
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, KMS_DEFAULT_ALIAS, &again), 0);
	ck_assert_str_eq(again.id, ki.id);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "v", &bl, dk), 0);
	kms_dk_destroy(dk);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * sharing
 * ------------------------------------------------------------------------ */

static int collect_share(void *ctx, const char *project)
{
	char *buf = ctx;

	strcat(buf, project);
	strcat(buf, ";");
	return 0;
}

START_TEST(test_share_use)
{
	struct kms_key_info ki, out;
	struct kms_dk *dk, *dk2;
	struct blob bl, bl2;
	char shares[256] = "";

	setup_granted();
	new_key(&alice, "team", &ki);
	dk = gen(&alice, "team", "L", &bl);
	/* beta: not shared */
	ck_assert_int_eq(kms_grant(K, &admin, "beta"), 0);
	ck_assert_int_eq(kms_key_lookup(K, &bob, ki.id, &out), -ENOENT);
	ck_assert_int_eq(kms_key_lookup(K, &bob, "team", &out), -ENOENT);
	ck_assert_int_eq(kms_dk_generate(K, &bob, ki.id, "L", 1, bl2.b, &bl2.n, NULL), -EACCES);
	ck_assert_int_eq(unwrap_eq(&bob, ki.id, "L", &bl, NULL), -EACCES);
	/* a security admin sees it by id (for messages), but cannot use it */
	ck_assert_int_eq(kms_key_lookup(K, &(struct kms_caller){0, "root", "beta"}, ki.id, &out), 0);
	/* share rules */
	ck_assert_int_eq(kms_key_share(K, &alice, "team", "alpha", NULL), -EINVAL);
	ck_assert_int_eq(kms_key_share(K, &alice, "team", "", NULL), -EINVAL);
	ck_assert_int_eq(kms_key_unshare(K, &alice, "team", "beta", NULL), -ENOENT);
	ck_assert_int_eq(kms_key_share(K, &alice, "team", "beta", &out), 0);
	ck_assert_str_eq(out.id, ki.id);
	ck_assert_int_eq(kms_key_share(K, &alice, "team", "beta", NULL), -EEXIST);
	ck_assert_int_eq(kms_key_share(K, &alice, "team", "gamma", NULL), 0);   /* not granted yet: fine */
	ck_assert_int_eq(kms_key_shares(K, ki.id, collect_share, shares), 0);
	ck_assert_str_eq(shares, "beta;gamma;");
	/* beta may use it, by id or by alias, and unwrap alpha's blob */
	ck_assert_int_eq(kms_key_lookup(K, &bob, "team", &out), 0);
	ck_assert_str_eq(out.project, "alpha");
	dk2 = gen(&bob, ki.id, "M", &bl2);
	ck_assert_int_eq(unwrap_eq(&alice, "team", "M", &bl2, dk2), 0);
	ck_assert_int_eq(unwrap_eq(&bob, "team", "L", &bl, dk), 0);
	/* gamma is shared but not granted */
	ck_assert_int_eq(kms_dk_generate(K, &carol, ki.id, "L", 1, bl2.b, &bl2.n, NULL), -EACCES);
	ck_assert_int_eq(kms_grant(K, &admin, "gamma"), 0);
	ck_assert_int_eq(kms_dk_generate(K, &carol, ki.id, "L", 1, bl2.b, &bl2.n, NULL), 0);
	/* only the owner manages the key */
	ck_assert_int_eq(kms_key_disable(K, &bob, "team", NULL), -EACCES);
	ck_assert_int_eq(kms_key_schedule_deletion(K, &bob, ki.id, 10, NULL), -EACCES);
	ck_assert_int_eq(kms_key_share(K, &bob, "team", "delta", NULL), -EACCES);
	ck_assert_int_eq(kms_key_rotate(K, &bob, "team", NULL), -EACCES);
	ck_assert_int_eq(kms_key_retire_old(K, &bob, ki.id), -EACCES);
	/* disabling by the owner stops the shared use too */
	ck_assert_int_eq(kms_key_disable(K, &alice, "team", NULL), 0);
	ck_assert_int_eq(unwrap_eq(&bob, ki.id, "L", &bl, NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_enable(K, &alice, "team", NULL), 0);
	/* unshare: unavailable like a disabled key */
	ck_assert_int_eq(kms_key_unshare(K, &alice, ki.id, "beta", NULL), 0);
	ck_assert_int_eq(kms_dk_generate(K, &bob, ki.id, "L", 1, bl2.b, &bl2.n, NULL), -EACCES);
	ck_assert_int_eq(unwrap_eq(&bob, ki.id, "L", &bl, NULL), -EACCES);
	ck_assert_int_eq(kms_key_lookup(K, &bob, "team", &out), -ENOENT);
	shares[0] = 0;
	ck_assert_int_eq(kms_key_shares(K, ki.id, collect_share, shares), 0);
	ck_assert_str_eq(shares, "gamma;");
	ck_assert_int_eq(kms_key_shares(K, "00000000-0000-4000-8000-000000000000", collect_share, shares), -ENOENT);
	kms_dk_destroy(dk);
	kms_dk_destroy(dk2);
	teardown();
}
END_TEST

struct list_ctx {
	char names[512];
	int n, stop_at;
};

static int collect_key(void *ctx, const struct kms_key_info *ki)
{
	struct list_ctx *l = ctx;

	strcat(l->names, ki->project);
	strcat(l->names, ":");
	strcat(l->names, ki->alias);
	strcat(l->names, ";");
	return ++l->n == l->stop_at ? 42 : 0;
}

START_TEST(test_share_ambiguous)
{
	struct kms_key_info a, g, own, out;
	struct list_ctx l;

	setup_granted();
	ck_assert_int_eq(kms_grant(K, &admin, "beta"), 0);
	ck_assert_int_eq(kms_grant(K, &admin, "gamma"), 0);
	new_key(&alice, "common", &a);
	new_key(&carol, "common", &g);
	ck_assert_int_eq(kms_key_share(K, &alice, "common", "beta", NULL), 0);
	ck_assert_int_eq(kms_key_lookup(K, &bob, "common", &out), 0);     /* one: resolves */
	ck_assert_str_eq(out.id, a.id);
	ck_assert_int_eq(kms_key_share(K, &carol, "common", "beta", NULL), 0);
	ck_assert_int_eq(kms_key_lookup(K, &bob, "common", &out), -ENOTUNIQ);
	ck_assert_int_eq(kms_dk_generate(K, &bob, "common", "x", 1, (uint8_t[KMS_WRAPPED_MAX]){0},
					 &(size_t){0}, NULL), -ENOTUNIQ);
	ck_assert_int_eq(kms_key_lookup(K, &bob, a.id, &out), 0);         /* ids always work */
	ck_assert_int_eq(kms_key_lookup(K, &bob, g.id, &out), 0);
	ck_assert_str_eq(out.project, "gamma");
	/* the project's own alias wins over shared ones */
	new_key(&bob, "common", &own);
	ck_assert_int_eq(kms_key_lookup(K, &bob, "common", &out), 0);
	ck_assert_str_eq(out.id, own.id);
	/* listing: own and shared-in, by alias */
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(kms_key_list(K, &bob, collect_key, &l), 0);
	ck_assert_str_eq(l.names, "alpha:common;beta:common;gamma:common;beta:evs/default;");
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	ck_assert_int_eq(kms_key_list(K, &bob, collect_key, &l), 42);
	ck_assert_int_eq(l.n, 2);
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(kms_key_list(K, &alice, collect_key, &l), 0);
	ck_assert_str_eq(l.names, "alpha:common;alpha:evs/default;");
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * audit
 * ------------------------------------------------------------------------ */

struct audit_ctx {
	int n, refused_grant, create_ok, other_key;
	int64_t last_seq;
	const char *key;
};

static int collect_audit(void *ctx, const struct kms_audit_entry *e)
{
	struct audit_ctx *a = ctx;

	ck_assert_int_gt(e->seq, a->last_seq);
	a->last_seq = e->seq;
	a->n++;
	if (strcmp(e->op, "grant") == 0 && e->result == -EPERM && strcmp(e->user, "alice") == 0 && e->uid == 1000)
		a->refused_grant++;
	if (strcmp(e->op, "key.create") == 0 && e->result == 0)
		a->create_ok++;
	if (a->key && strcmp(e->key, a->key) != 0)
		a->other_key++;
	return 0;
}

START_TEST(test_audit_chain)
{
	struct kms_key_info ki;
	struct audit_ctx a;
	struct kms_dk *dk;
	struct blob bl;
	int64_t bad = -1, last;
	char q[128];

	setup_granted();
	ck_assert_int_eq(kms_grant(K, &alice, "beta"), -EPERM);
	new_key(&alice, "audited", &ki);
	dk = gen(&alice, ki.id, "c", &bl);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "wrong", &bl, NULL), -EBADMSG);
	ck_assert_int_eq(kms_key_disable(K, &alice, "audited", NULL), 0);
	ck_assert_int_eq(kms_key_disable(K, &alice, "audited", NULL), -EALREADY);
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	ck_assert_int_eq(bad, 0);
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(kms_audit_list(K, NULL, collect_audit, &a), 0);
	/* store.create, grant, refused grant, key.create, generate, refused unwrap, 2 disables */
	ck_assert_int_eq(a.n, 8);
	ck_assert_int_eq(a.refused_grant, 1);
	ck_assert_int_eq(a.create_ok, 1);
	ck_assert_int_eq(sql_int("SELECT count(*) FROM audit WHERE op = 'dk.unwrap' AND result = -74"), 1);
	memset(&a, 0, sizeof(a));
	a.key = ki.id;
	ck_assert_int_eq(kms_audit_list(K, ki.id, collect_audit, &a), 0);
	ck_assert_int_eq(a.n, 5);
	ck_assert_int_eq(a.other_key, 0);
	/* survives reopen */
	reopen();
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	/* tamper with one field of one row */
	sql("UPDATE audit SET result = 0 WHERE seq = 6");
	ck_assert_int_eq(kms_audit_verify(K, &bad), -EBADMSG);
	ck_assert_int_eq(bad, 6);
	sql("UPDATE audit SET result = -74 WHERE seq = 6");
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	sql("UPDATE audit SET \"user\" = 'mallory' WHERE seq = 3");
	ck_assert_int_eq(kms_audit_verify(K, &bad), -EBADMSG);
	ck_assert_int_eq(bad, 3);
	sql("UPDATE audit SET \"user\" = 'alice' WHERE seq = 3");
	/* delete a row in the middle */
	sql("CREATE TABLE saved AS SELECT * FROM audit WHERE seq = 4; DELETE FROM audit WHERE seq = 4");
	ck_assert_int_eq(kms_audit_verify(K, &bad), -EBADMSG);
	ck_assert_int_eq(bad, 4);
	sql("INSERT INTO audit SELECT * FROM saved; DROP TABLE saved");
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	/* truncate the newest entry */
	last = sql_int("SELECT max(seq) FROM audit");
	snprintf(q, sizeof(q), "DELETE FROM audit WHERE seq = %lld", (long long)last);
	sql(q);
	ck_assert_int_eq(kms_audit_verify(K, &bad), -EBADMSG);
	ck_assert_int_eq(bad, last);
	kms_dk_destroy(dk);
	teardown();
}
END_TEST

START_TEST(test_audit_failure_fails_op)
{
	struct kms_key_info ki;
	struct kms_dk *dk = NULL;
	struct blob bl;
	int rc;

	setup_granted();
	if (PG)
		sql("CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS"
		    " $$BEGIN RAISE EXCEPTION 'audit full'; END$$;"
		    " CREATE TRIGGER no_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION no_audit()");
	else
		sql("CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit full'); END");
	rc = kms_key_create(K, &alice, "unaudited", NULL, &ki);
	ck_assert_int_lt(rc, 0);
	rc = kms_dk_generate(K, &alice, KMS_DEFAULT_ALIAS, "c", 1, bl.b, &bl.n, &dk);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_null(dk);
	ck_assert_uint_eq(bl.n, 0);
	sql(PG ? "DROP TRIGGER no_audit ON audit" : "DROP TRIGGER no_audit");
	ck_assert_int_eq(kms_key_lookup(K, &alice, "unaudited", &ki), -ENOENT);   /* rolled back */
	ck_assert_int_eq(kms_key_create(K, &alice, "unaudited", NULL, &ki), 0);
	ck_assert_int_eq(kms_audit_verify(K, NULL), 0);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * rotation
 * ------------------------------------------------------------------------ */

START_TEST(test_rotation)
{
	struct kms_key_info ki, out;
	struct kms_dk *dk1, *dk2;
	struct blob b1, b2, rw;
	uint8_t mat1[72];
	size_t nmat1;

	setup_granted();
	new_key(&alice, "rot", &ki);
	dk1 = gen(&alice, ki.id, "L1", &b1);
	ck_assert_uint_eq(kms_dk_blob_version(b1.b, b1.n), 1);
	ck_assert_int_eq(kms_key_rotate(K, &alice, "rot", &out), 0);
	ck_assert_uint_eq(out.version, 2);
	ck_assert_uint_eq(out.versions_in_use, 2);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "L1", &b1, dk1), 0);     /* v1 still unwraps */
	dk2 = gen(&alice, ki.id, "L2", &b2);
	ck_assert_uint_eq(kms_dk_blob_version(b2.b, b2.n), 2);
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, ki.id, "L1", 2, b1.b, b1.n, rw.b, &rw.n), 0);
	ck_assert_uint_eq(rw.n, 77);
	ck_assert_uint_eq(kms_dk_blob_version(rw.b, rw.n), 2);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "L1", &rw, dk1), 0);     /* same DK, new wrap */
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, ki.id, "L2", 2, b1.b, b1.n, rw.b, &rw.n), -EBADMSG);
	ck_assert_uint_eq(rw.n, 0);
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, ki.id, "L1", 2, b1.b, b1.n, rw.b, &rw.n), 0);
	nmat1 = capture_material(ki.id, 1, mat1);
	ck_assert_int_eq(kms_key_retire_old(K, &alice, ki.id), 1);
	ck_assert_int_eq(kms_key_retire_old(K, &alice, "rot"), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "rot", &out), 0);
	ck_assert_uint_eq(out.version, 2);
	ck_assert_uint_eq(out.versions_in_use, 1);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "L1", &b1, NULL), -ENOKEY);   /* v1 gone */
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, ki.id, "L1", 2, b1.b, b1.n, b2.b, &b2.n), -ENOKEY);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "L1", &rw, dk1), 0);
	ck_assert(PG || !store_contains(mat1, nmat1));
	if (PG)         /* the destroyed version's old row went with VACUUM */
		ck_assert_int_eq(sql_int("SELECT vacuum_count FROM pg_stat_user_tables"
					 " WHERE schemaname = current_schema() AND relname = 'key_versions'"), 1);
	ck_assert_ptr_null(strstr(logbuf, "deferred"));
	ck_assert_ptr_null(strstr(logbuf, "VACUUM"));
	/* three more rotations, retire two... */
	ck_assert_int_eq(kms_key_rotate(K, &alice, ki.id, NULL), 0);
	ck_assert_int_eq(kms_key_rotate(K, &alice, ki.id, &out), 0);
	ck_assert_uint_eq(out.version, 4);
	ck_assert_uint_eq(out.versions_in_use, 3);
	ck_assert_int_eq(kms_key_retire_old(K, &alice, ki.id), 2);
	/* rotation needs an Enabled key */
	ck_assert_int_eq(kms_key_disable(K, &alice, "rot", NULL), 0);
	ck_assert_int_eq(kms_key_rotate(K, &alice, "rot", NULL), -ENOKEY);
	kms_dk_destroy(dk1);
	kms_dk_destroy(dk2);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * tamper
 * ------------------------------------------------------------------------ */

START_TEST(test_blob_flips)
{
	struct kms_key_info ki, other;
	struct kms_dk *dk;
	struct blob bl, t;

	setup_granted();
	new_key(&alice, "t", &ki);
	new_key(&alice, "u", &other);
	dk = gen(&alice, ki.id, "ctx", &bl);
	for (size_t i = 0; i < bl.n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			t = bl;
			t.b[i] ^= (uint8_t)(1u << bit);
			ck_assert_msg(unwrap_eq(&alice, ki.id, "ctx", &t, NULL) == -EBADMSG, "byte %zu bit %d", i,
				      bit);
		}
	}
	t = bl;
	t.n = bl.n - 1;
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "ctx", &t, NULL), -EBADMSG);
	t.n = bl.n + 1;
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "ctx", &t, NULL), -EBADMSG);
	t.n = 0;
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "ctx", &t, NULL), -EBADMSG);
	/* a blob of key t presented as key u */
	ck_assert_int_eq(unwrap_eq(&alice, other.id, "ctx", &bl, NULL), -EBADMSG);
	ck_assert_int_eq(unwrap_eq(&alice, ki.id, "ctx", &bl, dk), 0);
	kms_dk_destroy(dk);
	teardown();
}
END_TEST

START_TEST(test_swapped_material)
{
	struct kms_key_info a, b;
	struct blob bl;
	char q[512];

	setup_granted();
	new_key(&alice, "a", &a);
	new_key(&alice, "b", &b);
	snprintf(q, sizeof(q),
		 "UPDATE key_versions SET material = (SELECT material FROM key_versions WHERE key_id = '%s')"
		 " WHERE key_id = '%s'",
		 b.id, a.id);
	sql(q);
	ck_assert_int_eq(kms_dk_generate(K, &alice, a.id, "c", 1, bl.b, &bl.n, NULL), -EUCLEAN);
	ck_assert_int_eq(kms_dk_generate(K, &alice, b.id, "c", 1, bl.b, &bl.n, NULL), 0);
	/* versions of one key cannot be swapped either */
	ck_assert_int_eq(kms_key_rotate(K, &alice, b.id, NULL), 0);
	snprintf(q, sizeof(q),
		 "UPDATE key_versions SET material = (SELECT material FROM key_versions WHERE key_id = '%s'"
		 " AND version = 1) WHERE key_id = '%s' AND version = 2",
		 b.id, b.id);
	sql(q);
	ck_assert_int_eq(kms_dk_generate(K, &alice, b.id, "c", 1, bl.b, &bl.n, NULL), -EUCLEAN);
	sql(PG ? "UPDATE key_versions SET material = decode('00000000000000000000', 'hex')"
	       : "UPDATE key_versions SET material = zeroblob(10)");
	ck_assert_int_eq(kms_dk_generate(K, &alice, b.id, "c", 1, bl.b, &bl.n, NULL), -EUCLEAN);
	teardown();
}
END_TEST

START_TEST(test_settings_tamper)
{
	struct kms_options o;

	setup_store();
	o = kx.opt;
	kms_close(K);
	K = NULL;
	sql(PG ? "UPDATE settings SET blob_value = decode(repeat('00', length(blob_value)), 'hex')"
		 " WHERE name = 'verifier'"
	       : "UPDATE settings SET value = zeroblob(length(value)) WHERE name = 'verifier'");
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EKEYREJECTED);
	sql("DELETE FROM settings WHERE name = 'verifier'");
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EUCLEAN);
	sql(PG ? "UPDATE settings SET int_value = 99 WHERE name = 'kms.schema_version'" : "PRAGMA user_version = 99");
	ck_assert_int_eq(kms_open(&K, dbp, &o), -EUCLEAN);
	ck_assert_ptr_null(K);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * two hosts: two handles on one store (with EVFS_PG_CONNINFO two
 * connections to one PostgreSQL schema, as two hosts have)
 * ------------------------------------------------------------------------ */

struct host_thr {
	struct kms *k;
	const char *prefix;
	int fails;
};

static void *host_main(void *arg)
{
	struct host_thr *h = arg;
	struct kms_key_info ki;
	uint8_t w[KMS_WRAPPED_MAX];
	size_t wn;
	char alias[32];

	for (int i = 0; i < 10; i++) {
		snprintf(alias, sizeof(alias), "%s-%d", h->prefix, i);
		if (kms_key_create(h->k, &alice, alias, NULL, &ki) != 0 ||
		    kms_dk_generate(h->k, &alice, ki.id, alias, strlen(alias), w, &wn, NULL) != 0 ||
		    kms_key_disable(h->k, &alice, ki.id, NULL) != 0)
			h->fails++;
	}
	return NULL;
}

static int count_key(void *ctx, const struct kms_key_info *ki)
{
	(void)ki;
	++*(int *)ctx;
	return 0;
}

START_TEST(test_two_hosts)
{
	struct kms *K2 = NULL, *K3 = NULL;
	struct kms_key_info a, b, out;
	struct kms_dk *dk, *dk2 = NULL;
	struct kms_options wrong;
	struct host_thr h[2] = { { NULL, "one", 0 }, { NULL, "two", 0 } };
	struct audit_ctx a1, a2;
	struct blob bl, bl2;
	pthread_t th[2];
	char other[256];
	uint8_t key[32];
	int64_t bad = -1;
	int n1 = 0, n2 = 0;

	setup_granted();
	ck_assert_int_eq(kms_open(&K2, dbp, &kx.opt), 0);         /* the second host */
	/* each sees the other's keys */
	new_key(&alice, "from-one", &a);
	ck_assert_int_eq(kms_key_lookup(K2, &alice, "from-one", &out), 0);
	ck_assert_str_eq(out.id, a.id);
	ck_assert_int_eq(kms_key_create(K2, &alice, "from-two", "made on two", &b), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, "from-two", &out), 0);
	ck_assert_str_eq(out.id, b.id);
	ck_assert_str_eq(out.description, "made on two");
	ck_assert_int_eq(kms_key_create(K, &alice, "from-two", NULL, NULL), -EEXIST);
	/* a DK wrapped on one unwraps on the other */
	dk = gen(&alice, a.id, "lineage", &bl);
	ck_assert_int_eq(kms_dk_unwrap(K2, &alice, "from-one", "lineage", 7, bl.b, bl.n, &dk2), 0);
	ck_assert_mem_eq(kms_dk_bytes(dk2), kms_dk_bytes(dk), KMS_KEY_BYTES);
	kms_dk_destroy(dk2);
	dk2 = NULL;
	/* disabled through two: refused through one, at once */
	ck_assert_int_eq(kms_key_disable(K2, &alice, "from-one", NULL), 0);
	ck_assert_int_eq(unwrap_eq(&alice, a.id, "lineage", &bl, NULL), -ENOKEY);
	ck_assert_int_eq(kms_dk_generate(K, &alice, a.id, "x", 1, bl2.b, &bl2.n, NULL), -ENOKEY);
	ck_assert_int_eq(kms_key_use_check(K, &alice, "from-one", &out), -ENOKEY);
	ck_assert_int_eq(out.state, KMS_KEY_DISABLED);
	ck_assert_int_eq(kms_key_disable(K, &alice, "from-one", NULL), -EALREADY);
	/* enabled through one: usable through two */
	ck_assert_int_eq(kms_key_enable(K, &alice, "from-one", NULL), 0);
	ck_assert_int_eq(kms_dk_unwrap(K2, &alice, a.id, "lineage", 7, bl.b, bl.n, &dk2), 0);
	ck_assert_mem_eq(kms_dk_bytes(dk2), kms_dk_bytes(dk), KMS_KEY_BYTES);
	kms_dk_destroy(dk2);
	/* rotation, retirement and revocation travel too */
	ck_assert_int_eq(kms_key_rotate(K2, &alice, a.id, NULL), 0);
	ck_assert_int_eq(kms_key_lookup(K, &alice, a.id, &out), 0);
	ck_assert_uint_eq(out.version, 2);
	ck_assert_int_eq(kms_dk_rewrap(K, &alice, a.id, "lineage", 7, bl.b, bl.n, bl2.b, &bl2.n), 0);
	ck_assert_int_eq(kms_key_retire_old(K, &alice, a.id), 1);
	ck_assert_int_eq(kms_dk_unwrap(K2, &alice, a.id, "lineage", 7, bl.b, bl.n, &dk2), -ENOKEY);
	ck_assert_int_eq(kms_dk_unwrap(K2, &alice, a.id, "lineage", 7, bl2.b, bl2.n, &dk2), 0);
	ck_assert_mem_eq(kms_dk_bytes(dk2), kms_dk_bytes(dk), KMS_KEY_BYTES);
	kms_dk_destroy(dk2);
	ck_assert_int_eq(kms_revoke(K2, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_is_granted(K, "alpha"), 0);
	ck_assert_int_eq(kms_dk_generate(K, &alice, b.id, "x", 1, bl2.b, &bl2.n, NULL), -EACCES);
	ck_assert_int_eq(kms_grant(K, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_is_granted(K2, "alpha"), 1);
	/* both write at once: the writes serialise, the audit chain stays one */
	h[0].k = K;
	h[1].k = K2;
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, host_main, &h[i]), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_msg(h[i].fails == 0, "host %d: %d failures; log:\n%s", i + 1, h[i].fails, logbuf);
	}
	ck_assert_int_eq(kms_key_list(K, &alice, count_key, &n1), 0);
	ck_assert_int_eq(kms_key_list(K2, &alice, count_key, &n2), 0);
	ck_assert_int_eq(n1, 23);          /* evs/default, from-one, from-two, 2 x 10 */
	ck_assert_int_eq(n2, 23);
	ck_assert_int_eq(kms_audit_verify(K, &bad), 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(kms_audit_verify(K2, &bad), 0);
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	ck_assert_int_eq(kms_audit_list(K, NULL, collect_audit, &a1), 0);
	ck_assert_int_eq(kms_audit_list(K2, NULL, collect_audit, &a2), 0);
	ck_assert_int_eq(a1.n, a2.n);
	ck_assert_int_eq(a1.last_seq, a1.n);                  /* no gaps, no doubles */
	ck_assert_int_eq(a1.create_ok, 22);
	/* a third host with the wrong root key is refused */
	randombytes_buf(key, sizeof(key));
	snprintf(other, sizeof(other), "%s/other.key", dir);
	write_file(other, key, sizeof(key), 0400);
	wrong = opts(KMS_ROOT_KEYFILE, other);
	wrong.pg_schema = kx.opt.pg_schema;
	ck_assert_int_eq(kms_open(&K3, dbp, &wrong), -EKEYREJECTED);
	ck_assert_ptr_null(K3);
	ck_assert_int_eq(kms_audit_verify(K2, &bad), 0);
	kms_dk_destroy(dk);
	kms_close(K2);
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------
 * pg: what only a store in PostgreSQL has (EVFS_PG_CONNINFO only)
 * ------------------------------------------------------------------------ */

START_TEST(test_pg_open_errors)
{
	struct kms_options o = opts(KMS_ROOT_KEYFILE, keyp);
	const char *pw = strstr(pg_conninfo, "password=");
	char q[160], password[64] = "";
	char long_name[50];

	setup_dir();
	if (pw)
		sscanf(pw + 9, "%63[^ ]", password);
	/* no such schema */
	ck_assert_int_eq(kms_open(&K, NULL, &o), -ENOENT);
	ck_assert_ptr_nonnull(strstr(logbuf, "does not exist"));
	ck_assert(!store_exists());
	/* bad schema names: refused before connecting */
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	{
		const char *bad[] = { "Upper", "1digit", "semi;colon", "", long_name, NULL };

		for (int i = 0; i < 6; i++) {
			o.pg_schema = bad[i];
			ck_assert_int_eq(kms_create(NULL, &o), -EINVAL);
			ck_assert_int_eq(kms_open(&K, NULL, &o), -EINVAL);
		}
	}
	o = opts(KMS_ROOT_KEYFILE, keyp);
	/* an empty schema holds no store */
	snprintf(q, sizeof(q), "CREATE SCHEMA %s", schema);
	pg_exec_in("public", q);
	ck_assert_int_eq(kms_open(&K, NULL, &o), -ENOENT);
	/* a schema with other tables: not a store, and none is made there */
	sql("CREATE TABLE t(x int)");
	ck_assert_int_eq(kms_create(NULL, &o), -EEXIST);
	ck_assert_ptr_nonnull(strstr(logbuf, "tables that are not a key store"));
	ck_assert_int_eq(access(keyp, F_OK), -1);          /* refused before the key file */
	ck_assert_int_eq(kms_open(&K, NULL, &o), -EUCLEAN);
	sql("DROP TABLE t");
	/* the empty schema that exists is used and kept */
	ck_assert_int_eq(kms_create(NULL, &o), 0);
	ck_assert_int_eq(kms_create("/nonexistent/ignored.db", &o), -EEXIST);
	ck_assert_ptr_nonnull(strstr(logbuf, "a key store already exists in schema"));
	ck_assert_int_eq(kms_open(&K, "/nonexistent/ignored.db", &o), 0);
	kms_close(K);
	K = NULL;
	/* another application's settings table */
	sql("UPDATE settings SET int_value = 1 WHERE name = 'kms.application_id'");
	ck_assert_int_eq(kms_open(&K, NULL, &o), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(logbuf, "not an evfs key store"));
	sql("UPDATE settings SET int_value = 1702259571 WHERE name = 'kms.application_id'");
	ck_assert_int_eq(kms_open(&K, NULL, &o), 0);
	kms_close(K);
	K = NULL;
	/* a failed create of a new schema leaves no schema behind */
	snprintf(schema + strlen(schema), sizeof(schema) - strlen(schema), "_b");
	write_file(passp, "ab\n", 3, 0600);                    /* too short */
	o = opts(KMS_ROOT_PASSPHRASE, passp);
	ck_assert_int_eq(kms_create(NULL, &o), -EINVAL);
	ck_assert(!store_exists());
	schema[strlen(schema) - 2] = '\0';
	/* no server */
	o = opts(KMS_ROOT_KEYFILE, keyp);
	o.pg_conninfo = "host=127.0.0.1 port=1 dbname=evfs user=evfs connect_timeout=5";
	ck_assert_int_eq(kms_open(&K, NULL, &o), -ECONNREFUSED);
	ck_assert_int_eq(kms_create(NULL, &o), -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(logbuf, "kms: cannot connect to PostgreSQL: "));
	ck_assert_ptr_null(K);
	/* the connection string's password is never logged */
	ck_assert(password[0]);
	ck_assert_ptr_null(strstr(logbuf, password));
	teardown();
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *kms_suite(void)
{
	Suite *s = suite_create("kms");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_open_keyfile);
	tcase_add_test(tc, test_existing_keyfile);
	tcase_add_test(tc, test_keyfile_bad_size);
	tcase_add_test(tc, test_wrong_keyfile);
	tcase_add_test(tc, test_passphrase);
	if (!PG)        /* a foreign SQLite file, a garbage file */
		tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_dk_roundtrip);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_two_hosts);
	suite_add_tcase(s, tc);

	tc = tcase_create("states");
	tcase_add_test(tc, test_transitions);
	tcase_add_test(tc, test_default_key_protected);
	tcase_add_test(tc, test_alias_rules);
	tcase_add_test(tc, test_expiry_shreds);
	tcase_add_test(tc, test_disabled_key_dk);
	tcase_add_test(tc, test_use_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("grants");
	tcase_add_test(tc, test_grant_admin_only);
	tcase_add_test(tc, test_revoke);
	suite_add_tcase(s, tc);

	tc = tcase_create("sharing");
	tcase_add_test(tc, test_share_use);
	tcase_add_test(tc, test_share_ambiguous);
	suite_add_tcase(s, tc);

	tc = tcase_create("audit");
	tcase_add_test(tc, test_audit_chain);
	tcase_add_test(tc, test_audit_failure_fails_op);
	suite_add_tcase(s, tc);

	tc = tcase_create("rotation");
	tcase_add_test(tc, test_rotation);
	suite_add_tcase(s, tc);

	tc = tcase_create("tamper");
	tcase_add_test(tc, test_blob_flips);
	tcase_add_test(tc, test_swapped_material);
	tcase_add_test(tc, test_settings_tamper);
	suite_add_tcase(s, tc);

	if (PG) {
		tc = tcase_create("pg");
		tcase_add_test(tc, test_pg_open_errors);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed, rc;

	pg_conninfo = getenv("EVFS_PG_CONNINFO");
	if (pg_conninfo && !*pg_conninfo)
		pg_conninfo = NULL;
	if (PG)
		fprintf(stderr, "check_kms: every key store in PostgreSQL (EVFS_PG_CONNINFO), a schema per test\n");
	rc = tc_tmpdir_new(base, sizeof(base), NULL, "check_kms");
	if (rc < 0) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(-rc));
		return EXIT_FAILURE;
	}
	sr = srunner_create(kms_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (tc_rm_rf(base) != 0)
		failed++;
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
