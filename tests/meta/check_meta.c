/* SPDX-License-Identifier: MIT */
/*
 * check_meta.c - Check suite for meta/, the catalog (an SQLite file or a
 * PostgreSQL schema).
 *
 * TCases:
 *   core          rows in and out: objects, lineages, filters, settings,
 *                 transactions, ids, threads sharing one struct meta_db
 *   immutability  the encryption attribute cannot change, neither through
 *                 the API (-EPERM) nor through raw SQL on the catalog
 *                 (trigger)
 *   migration     file creation (mode 0600, WAL), version 0 -> 1, and
 *                 refusal (-EUCLEAN) of newer, foreign, garbage and
 *                 truncated files; on PostgreSQL the same for schemas
 *   errors        argument checks, missing rows, the SQLite-to-errno table
 *                 (sqldb's, provoked for real), callback re-entry, the log
 *                 callback
 *
 * Two modes.  By default catalogs are SQLite: most tests use ":memory:";
 * file-level ones work in a fresh mkdtemp(3) directory that they remove.
 * With EVFS_PG_CONNINFO set (tests/cluster/pg.sh does; ctest meta_pg), every
 * test that does not inspect or damage SQLite files opens its catalog with
 * meta_open_pg() in a fresh schema of that database instead (dropped when
 * the test's process exits), the SQLite-file tests are left out, and the
 * PostgreSQL-only tests (raw SQL, refusal of foreign schemas, two hosts
 * creating one catalog) are added.  Threads never call ck_assert (it is
 * not thread-safe): they record failures for the main thread to check.
 */
#include "meta/meta.h"
#include "sqldb/sqldb.h"     /* raw connections: the errno table, PostgreSQL schemas */
#include "tc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------- */

#define KEY_A "11111111-1111-4111-8111-111111111111"
#define KEY_B "22222222-2222-4222-8222-222222222222"
#define LIN_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LIN_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define LIN_P "00000000000000000000000000000000"   /* plain (unencrypted) */

/* The PostgreSQL database of this run, or NULL: SQLite mode. */
static const char *pg_conninfo(void)
{
	const char *c = getenv("EVFS_PG_CONNINFO");

	return c && *c ? c : NULL;
}

/* Schemas made by the running test, dropped by its teardown (not by
 * atexit(): libpq's OpenSSL is torn down by then).  A failed test leaves
 * its schemas to the throwaway server. */
#define PG_MADE_MAX 64
static char pg_made[PG_MADE_MAX][48];
static int pg_nmade;

static void pg_drop_made(void)
{
	struct sqldb *s;
	char sql[96];
	int i, rc;

	for (i = 0; i < pg_nmade; i++) {
		if (sqldb_open_pg(&s, pg_conninfo(), pg_made[i], 0, NULL, 0) != 0)
			continue;
		snprintf(sql, sizeof sql, "DROP SCHEMA %.47s CASCADE", pg_made[i]);
		rc = sqldb_exec(s, sql);     /* best effort */
		(void)rc;
		sqldb_close(s);
	}
	pg_nmade = 0;
}

/* A schema name no run has used: t_<pid>_<counter>_<random>. */
static void pg_schema_name(char *out, size_t sz)
{
	static int counter;
	char id[META_ID_LEN + 1];

	meta_id_generate(id);
	snprintf(out, sz, "t_%d_%d_%.8s", (int)getpid(), ++counter, id);
	if (pg_nmade < PG_MADE_MAX)
		snprintf(pg_made[pg_nmade++], sizeof pg_made[0], "%s", out);
}

/* Prepare and step sql once; the step's answer (1 row, 0 done) or the
 * first error. */
static int sql_once(struct sqldb *s, const char *sql)
{
	struct sqldb_stmt *st;
	int rc = sqldb_prepare(s, sql, &st);

	if (rc)
		return rc;
	rc = sqldb_step(st);
	sqldb_finalize(st);
	return rc;
}

/* A raw connection to a schema (made if missing), for SQL behind meta's
 * back. */
static struct sqldb *pg_raw(const char *schema)
{
	struct sqldb *s = NULL;
	char msg[256] = "";

	ck_assert_msg(sqldb_open_pg(&s, pg_conninfo(), schema, 1, msg, sizeof msg) == 0, "raw connection: %s", msg);
	return s;
}

/* A private, empty catalog: ":memory:", or a fresh PostgreSQL schema. */
static struct meta_db *mem_open(void)
{
	struct meta_db *db = NULL;
	char schema[48];

	if (pg_conninfo()) {
		pg_schema_name(schema, sizeof schema);
		ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 1, NULL, NULL), 0);
	} else {
		ck_assert_int_eq(meta_open(&db, ":memory:", 1, NULL, NULL), 0);
	}
	ck_assert_ptr_nonnull(db);
	return db;
}

static void add_lineage(struct meta_db *db, const char *id, int enc, const char *key)
{
	struct meta_lineage l;

	memset(&l, 0, sizeof l);
	snprintf(l.id, sizeof l.id, "%s", id);
	l.encrypted = enc;
	snprintf(l.key_id, sizeof l.key_id, "%s", key);
	if (enc) {
		memset(l.wrapped, 0x5a, 72);
		l.wrapped_len = 72;
	}
	l.created = 1700000000;
	ck_assert_int_eq(meta_lineage_insert(db, &l), 0);
}

static void obj_init(struct meta_object *o, enum meta_kind kind, const char *project,
		     const char *name, const char *lineage, const char *key)
{
	memset(o, 0, sizeof *o);
	meta_id_generate(o->id);
	o->kind = kind;
	snprintf(o->name, sizeof o->name, "%s", name);
	snprintf(o->project, sizeof o->project, "%s", project);
	snprintf(o->lineage, sizeof o->lineage, "%s", lineage);
	o->encrypted = key[0] != '\0';
	snprintf(o->key_id, sizeof o->key_id, "%s", key);
	o->owner_uid = 1000;
	o->size = 1u << 30;
	o->created = 1700000001;
	if (kind == META_VOLUME)
		snprintf(o->vol_type, sizeof o->vol_type, "data");
}

/* Standard fixture: two encrypted lineages and one plain one. */
static struct meta_db *mem_open_lineages(void)
{
	struct meta_db *db = mem_open();

	add_lineage(db, LIN_A, 1, KEY_A);
	add_lineage(db, LIN_B, 1, KEY_B);
	add_lineage(db, LIN_P, 0, "");
	return db;
}

static void tmpdir_make(char *dir, size_t sz)
{
	tc_tmpdir(dir, sz, NULL, "check_meta");
}

static void tmpdir_remove(const char *dir)
{
	ck_assert_int_eq(tc_rm_rf(dir), 0);
}

/* A catalog that outlives its connections: a file in a fresh directory, or
 * a fresh PostgreSQL schema. */
struct cat {
	char dir[64];
	char path[96];
	char schema[48];
};

static void cat_make(struct cat *c)
{
	memset(c, 0, sizeof *c);
	if (pg_conninfo()) {
		pg_schema_name(c->schema, sizeof c->schema);
	} else {
		tmpdir_make(c->dir, sizeof c->dir);
		snprintf(c->path, sizeof c->path, "%s/catalog.db", c->dir);
	}
}

static int cat_open(const struct cat *c, struct meta_db **db, int create, meta_log_fn log, void *ctx)
{
	if (pg_conninfo())
		return meta_open_pg(db, pg_conninfo(), c->schema, create, log, ctx);
	return meta_open(db, c->path, create, log, ctx);
}

static void cat_remove(const struct cat *c)
{
	if (!pg_conninfo())
		tmpdir_remove(c->dir);
}

/* Run SQL on a file with a raw connection; returns the extended code. */
static int raw_exec(const char *path, const char *sql, char *errbuf, size_t errsz)
{
	sqlite3 *c = NULL;
	int rc;

	ck_assert_int_eq(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
			 SQLITE_OK);
	sqlite3_extended_result_codes(c, 1);
	rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
	if (errbuf)
		snprintf(errbuf, errsz, "%s", sqlite3_errmsg(c));
	sqlite3_close(c);
	return rc;
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *c = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	ck_assert_int_eq(sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(c);
	return v;
}

/* Collects names in listing order. */
struct names {
	char buf[32][META_NAME_MAX];
	int n;
	int stop_at;        /* return 7 when n reaches this (0: never) */
};

static int collect(void *ctx, const struct meta_object *o)
{
	struct names *nm = ctx;

	if (nm->n < 32)
		snprintf(nm->buf[nm->n], META_NAME_MAX, "%s", o->name);
	nm->n++;
	return nm->stop_at && nm->n == nm->stop_at ? 7 : 0;
}

static int list_count(struct meta_db *db, enum meta_kind kind, const char *project,
		      const char *key_id, const char *lineage, const char *parent_id)
{
	struct meta_filter f = { kind, project, key_id, lineage, parent_id };

	return meta_object_list(db, &f, NULL, NULL);
}

/* ---- core -------------------------------------------------------------- */

START_TEST(test_open_memory)
{
	struct meta_db *db = mem_open();
	char v[64];

	ck_assert_int_eq(meta_setting_get(db, "catalog.magic", v, sizeof v), 0);
	ck_assert_str_eq(v, "evfs-catalog");
	meta_close(db);
	meta_close(NULL);
}
END_TEST

START_TEST(test_object_roundtrip)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o, g;

	obj_init(&o, META_BACKUP, "proj", "bk1", LIN_A, KEY_A);
	o.owner_uid = 4294967295u;
	o.size = (uint64_t)INT64_MAX;
	snprintf(o.source, sizeof o.source, "snapshot:s1");
	snprintf(o.parent_id, sizeof o.parent_id, "%s", "0b9f7e02-8c4e-4a0c-9b1e-2f4c5e6d7a8b");
	o.created = -5;
	o.attached = 0;
	o.incremental = 1;
	o.stored_bytes = 12345;
	snprintf(o.location, sizeof o.location, "/var/backups/bk1.evb");
	ck_assert_int_eq(meta_object_insert(db, &o), 0);

	memset(&g, 0xff, sizeof g);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_str_eq(g.id, o.id);
	ck_assert_int_eq(g.kind, META_BACKUP);
	ck_assert_str_eq(g.name, "bk1");
	ck_assert_str_eq(g.project, "proj");
	ck_assert_uint_eq(g.owner_uid, 4294967295u);
	ck_assert_uint_eq(g.size, (uint64_t)INT64_MAX);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);
	ck_assert_str_eq(g.lineage, LIN_A);
	ck_assert_str_eq(g.source, "snapshot:s1");
	ck_assert_str_eq(g.parent_id, o.parent_id);
	ck_assert_str_eq(g.vol_type, "");
	ck_assert_int_eq(g.created, -5);
	ck_assert_int_eq(g.attached, 0);
	ck_assert_int_eq(g.incremental, 1);
	ck_assert_uint_eq(g.stored_bytes, 12345);
	ck_assert_str_eq(g.location, "/var/backups/bk1.evb");
	ck_assert_int_eq(memcmp(&g, &o, sizeof g), 0);   /* both zero-padded */

	memset(&g, 0, sizeof g);
	ck_assert_int_eq(meta_object_lookup(db, META_BACKUP, "proj", "bk1", &g), 0);
	ck_assert_str_eq(g.id, o.id);
	ck_assert_int_eq(meta_object_lookup(db, META_BACKUP, "proj", "bk1", NULL), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, NULL), 0);
	ck_assert_int_eq(meta_object_lookup(db, META_VOLUME, "proj", "bk1", &g), -ENOENT);
	ck_assert_int_eq(meta_object_lookup(db, META_BACKUP, "other", "bk1", &g), -ENOENT);
	ck_assert_int_eq(meta_object_lookup(db, META_BACKUP, "proj", "bk2", &g), -ENOENT);
	meta_close(db);
}
END_TEST

START_TEST(test_object_unique)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o, dup;

	obj_init(&o, META_VOLUME, "p1", "data1", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&dup, META_VOLUME, "p1", "data1", LIN_B, KEY_B);
	ck_assert_int_eq(meta_object_insert(db, &dup), -EEXIST);
	obj_init(&dup, META_VOLUME, "p2", "data1", LIN_B, KEY_B);     /* other project */
	ck_assert_int_eq(meta_object_insert(db, &dup), 0);
	obj_init(&dup, META_SNAPSHOT, "p1", "data1", LIN_A, KEY_A);   /* other kind */
	ck_assert_int_eq(meta_object_insert(db, &dup), 0);
	dup = o;                                                        /* same id */
	snprintf(dup.name, sizeof dup.name, "data2");
	ck_assert_int_eq(meta_object_insert(db, &dup), -EEXIST);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, NULL, NULL), 3);
	meta_close(db);
}
END_TEST

START_TEST(test_object_lineage_must_exist)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o, g;

	obj_init(&o, META_VOLUME, "p", "v", "cccccccccccccccccccccccccccccccc", KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), -ENOENT);
	ck_assert_int_eq(meta_object_get(db, o.id, NULL), -ENOENT);
	obj_init(&o, META_VOLUME, "p", "v", "", "");    /* no lineage at all */
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_str_eq(g.lineage, "");
	ck_assert_int_eq(g.encrypted, 0);
	ck_assert_str_eq(g.key_id, "");
	meta_close(db);
}
END_TEST

START_TEST(test_object_delete)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o;

	obj_init(&o, META_IMAGE, "p", "img", LIN_P, "");
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	ck_assert_int_eq(meta_object_delete(db, o.id), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, NULL), -ENOENT);
	ck_assert_int_eq(meta_object_delete(db, o.id), -ENOENT);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);   /* the name is free again */
	meta_close(db);
}
END_TEST

START_TEST(test_object_setters)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o, g;
	const char *missing = "00000000-0000-4000-8000-000000000000";

	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);

	ck_assert_int_eq(meta_object_set_size(db, o.id, 5ull << 30), 0);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 2, "host-a"), 0);
	ck_assert_int_eq(meta_object_set_stored(db, o.id, 4096), 0);
	ck_assert_int_eq(meta_object_set_parent(db, o.id, missing), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_uint_eq(g.size, 5ull << 30);
	ck_assert_int_eq(g.attached, 1);
	ck_assert_str_eq(g.attached_host, "host-a");
	ck_assert(g.attached_at > 1700000000);
	ck_assert_uint_eq(g.stored_bytes, 4096);
	ck_assert_str_eq(g.parent_id, missing);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);

	/* One host at a time: host-b can neither claim nor release host-a's. */
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 1, "host-a"), 0);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 1, "host-b"), -EBUSY);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 0, "host-b"), -EBUSY);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 1, NULL), -EINVAL);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 0, "host-a"), 0);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 1, "host-b"), 0);
	ck_assert_int_eq(meta_object_set_attached(db, o.id, 0, NULL), 0);   /* forced */
	ck_assert_int_eq(meta_object_set_parent(db, o.id, NULL), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_int_eq(g.attached, 0);
	ck_assert_str_eq(g.attached_host, "");
	ck_assert_str_eq(g.parent_id, "");
	ck_assert_int_eq(meta_object_set_parent(db, o.id, o.id), 0);
	ck_assert_int_eq(meta_object_set_parent(db, o.id, ""), 0);

	ck_assert_int_eq(meta_object_set_size(db, missing, 1), -ENOENT);
	ck_assert_int_eq(meta_object_set_attached(db, missing, 1, "host-a"), -ENOENT);
	ck_assert_int_eq(meta_object_set_attached(db, missing, 0, NULL), -ENOENT);
	ck_assert_int_eq(meta_object_set_stored(db, missing, 1), -ENOENT);
	ck_assert_int_eq(meta_object_set_parent(db, missing, ""), -ENOENT);
	ck_assert_int_eq(meta_object_set_size(db, o.id, UINT64_MAX), -EINVAL);
	ck_assert_int_eq(meta_object_set_stored(db, o.id, (uint64_t)INT64_MAX + 1), -EINVAL);
	meta_close(db);
}
END_TEST

START_TEST(test_object_list_filters)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o, vol;
	struct meta_filter f;
	struct names nm;

	obj_init(&vol, META_VOLUME, "p1", "vb", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &vol), 0);
	obj_init(&o, META_VOLUME, "p1", "va", LIN_B, KEY_B);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&o, META_VOLUME, "p2", "vc", LIN_P, "");
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&o, META_SNAPSHOT, "p1", "s2", LIN_A, KEY_A);
	snprintf(o.parent_id, sizeof o.parent_id, "%s", vol.id);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&o, META_SNAPSHOT, "p1", "s1", LIN_A, KEY_A);
	snprintf(o.parent_id, sizeof o.parent_id, "%s", vol.id);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&o, META_BACKUP, "p2", "b1", LIN_A, KEY_A);
	snprintf(o.parent_id, sizeof o.parent_id, "%s", vol.id);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	obj_init(&o, META_IMAGE, "p2", "i1", "", "");
	ck_assert_int_eq(meta_object_insert(db, &o), 0);

	/* everything, ordered by kind then name */
	memset(&nm, 0, sizeof nm);
	ck_assert_int_eq(meta_object_list(db, NULL, collect, &nm), 7);
	ck_assert_int_eq(nm.n, 7);
	ck_assert_str_eq(nm.buf[0], "va");
	ck_assert_str_eq(nm.buf[1], "vb");
	ck_assert_str_eq(nm.buf[2], "vc");
	ck_assert_str_eq(nm.buf[3], "s1");
	ck_assert_str_eq(nm.buf[4], "s2");
	ck_assert_str_eq(nm.buf[5], "b1");
	ck_assert_str_eq(nm.buf[6], "i1");

	/* each field alone */
	ck_assert_int_eq(list_count(db, META_VOLUME, NULL, NULL, NULL, NULL), 3);
	ck_assert_int_eq(list_count(db, META_SNAPSHOT, NULL, NULL, NULL, NULL), 2);
	ck_assert_int_eq(list_count(db, META_BACKUP, NULL, NULL, NULL, NULL), 1);
	ck_assert_int_eq(list_count(db, META_IMAGE, NULL, NULL, NULL, NULL), 1);
	ck_assert_int_eq(list_count(db, META_ANY, "p1", NULL, NULL, NULL), 4);
	ck_assert_int_eq(list_count(db, META_ANY, "p2", NULL, NULL, NULL), 3);
	ck_assert_int_eq(list_count(db, META_ANY, "p3", NULL, NULL, NULL), 0);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, KEY_A, NULL, NULL), 4);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, KEY_B, NULL, NULL), 1);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, "", NULL, NULL), 2);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, LIN_A, NULL), 4);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, LIN_P, NULL), 1);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, "", NULL), 1);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, NULL, vol.id), 3);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, NULL, ""), 4);

	/* combined */
	ck_assert_int_eq(list_count(db, META_SNAPSHOT, "p1", KEY_A, LIN_A, vol.id), 2);
	ck_assert_int_eq(list_count(db, META_BACKUP, "p1", KEY_A, NULL, vol.id), 0);
	ck_assert_int_eq(list_count(db, META_VOLUME, "p1", KEY_A, NULL, NULL), 1);

	/* a value that looks like SQL is just a value */
	ck_assert_int_eq(list_count(db, META_ANY, "p1' OR '1'='1", NULL, NULL, NULL), 0);

	/* the callback stops the listing with its value */
	memset(&nm, 0, sizeof nm);
	nm.stop_at = 2;
	memset(&f, 0, sizeof f);
	f.project = "p1";
	ck_assert_int_eq(meta_object_list(db, &f, collect, &nm), 7);
	ck_assert_int_eq(nm.n, 2);
	ck_assert_str_eq(nm.buf[0], "va");
	ck_assert_str_eq(nm.buf[1], "vb");
	meta_close(db);
}
END_TEST

struct lcollect {
	int n;
	char ids[8][META_LINEAGE_LEN + 1];
};

static int lineage_collect(void *ctx, const struct meta_lineage *l)
{
	struct lcollect *c = ctx;

	if (c->n < 8)
		snprintf(c->ids[c->n], sizeof c->ids[0], "%s", l->id);
	c->n++;
	return 0;
}

static int lineage_stop(void *ctx, const struct meta_lineage *l)
{
	(void)ctx;
	(void)l;
	return 3;
}

START_TEST(test_lineage_roundtrip)
{
	struct meta_db *db = mem_open();
	struct meta_lineage l, g;
	struct lcollect c;
	uint8_t blob[48];
	size_t i;

	memset(&l, 0, sizeof l);
	snprintf(l.id, sizeof l.id, LIN_A);
	l.encrypted = 1;
	snprintf(l.key_id, sizeof l.key_id, KEY_A);
	for (i = 0; i < META_WRAPPED_MAX; i++)
		l.wrapped[i] = (uint8_t)(i * 7 + 1);
	l.wrapped_len = META_WRAPPED_MAX;
	l.created = 42;
	ck_assert_int_eq(meta_lineage_insert(db, &l), 0);
	ck_assert_int_eq(meta_lineage_insert(db, &l), -EEXIST);

	memset(&g, 0xee, sizeof g);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &g), 0);
	ck_assert_str_eq(g.id, LIN_A);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);
	ck_assert_uint_eq(g.wrapped_len, META_WRAPPED_MAX);
	ck_assert_mem_eq(g.wrapped, l.wrapped, META_WRAPPED_MAX);
	ck_assert_int_eq(g.created, 42);

	for (i = 0; i < sizeof blob; i++)
		blob[i] = (uint8_t)(0xf0 ^ i);
	ck_assert_int_eq(meta_lineage_set_wrapped(db, LIN_A, blob, sizeof blob), 0);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &g), 0);
	ck_assert_uint_eq(g.wrapped_len, sizeof blob);
	ck_assert_mem_eq(g.wrapped, blob, sizeof blob);
	ck_assert_str_eq(g.key_id, KEY_A);
	for (i = sizeof blob; i < META_WRAPPED_MAX; i++)
		ck_assert_uint_eq(g.wrapped[i], 0);
	ck_assert_int_eq(meta_lineage_set_wrapped(db, LIN_B, blob, sizeof blob), -ENOENT);
	ck_assert_int_eq(meta_lineage_set_wrapped(db, LIN_A, blob, 0), -EINVAL);
	ck_assert_int_eq(meta_lineage_set_wrapped(db, LIN_A, blob, META_WRAPPED_MAX + 1), -EINVAL);
	ck_assert_int_eq(meta_lineage_set_wrapped(db, LIN_A, NULL, 4), -EINVAL);

	add_lineage(db, LIN_P, 0, "");
	ck_assert_int_eq(meta_lineage_get(db, LIN_P, &g), 0);
	ck_assert_int_eq(g.encrypted, 0);
	ck_assert_str_eq(g.key_id, "");
	ck_assert_uint_eq(g.wrapped_len, 0);
	add_lineage(db, LIN_B, 1, KEY_B);

	memset(&c, 0, sizeof c);
	ck_assert_int_eq(meta_lineage_list(db, NULL, lineage_collect, &c), 3);
	ck_assert_int_eq(c.n, 3);
	ck_assert_str_eq(c.ids[0], LIN_A);   /* created 42, then 1700000000 by id */
	ck_assert_str_eq(c.ids[1], LIN_P);
	ck_assert_str_eq(c.ids[2], LIN_B);
	ck_assert_int_eq(meta_lineage_list(db, KEY_B, NULL, NULL), 1);
	ck_assert_int_eq(meta_lineage_list(db, "", NULL, NULL), 1);
	ck_assert_int_eq(meta_lineage_list(db, "nope", NULL, NULL), 0);
	ck_assert_int_eq(meta_lineage_list(db, NULL, lineage_stop, NULL), 3);
	ck_assert_int_eq(meta_lineage_get(db, "cccccccccccccccccccccccccccccccc", &g), -ENOENT);
	meta_close(db);
}
END_TEST

START_TEST(test_lineage_delete)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object v, s;

	obj_init(&v, META_VOLUME, "p", "v", LIN_A, KEY_A);
	obj_init(&s, META_SNAPSHOT, "p", "s", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &v), 0);
	ck_assert_int_eq(meta_object_insert(db, &s), 0);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), -EBUSY);
	ck_assert_int_eq(meta_object_delete(db, v.id), 0);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), -EBUSY);
	ck_assert_int_eq(meta_object_delete(db, s.id), 0);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), 0);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, NULL), -ENOENT);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), -ENOENT);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_B), 0);
	meta_close(db);
}
END_TEST

START_TEST(test_settings)
{
	struct meta_db *db = mem_open();
	char v[16], small[4];

	ck_assert_int_eq(meta_setting_get(db, "store.id", v, sizeof v), -ENOENT);
	ck_assert_int_eq(meta_setting_set(db, "store.id", "abc"), 0);
	ck_assert_int_eq(meta_setting_get(db, "store.id", v, sizeof v), 0);
	ck_assert_str_eq(v, "abc");
	ck_assert_int_eq(meta_setting_set(db, "store.id", "defg"), 0);
	ck_assert_int_eq(meta_setting_get(db, "store.id", v, sizeof v), 0);
	ck_assert_str_eq(v, "defg");
	ck_assert_int_eq(meta_setting_get(db, "store.id", small, sizeof small), -EINVAL);
	ck_assert_int_eq(meta_setting_set(db, "empty", ""), 0);
	ck_assert_int_eq(meta_setting_get(db, "empty", small, sizeof small), 0);
	ck_assert_str_eq(small, "");
	ck_assert_int_eq(meta_setting_set(db, "catalog.magic", "mine"), -EPERM);
	ck_assert_int_eq(meta_setting_get(db, "catalog.magic", v, sizeof v), 0);
	ck_assert_str_eq(v, "evfs-catalog");
	meta_close(db);
}
END_TEST

START_TEST(test_transactions)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object a, b, c;

	obj_init(&a, META_VOLUME, "p", "a", LIN_A, KEY_A);
	obj_init(&b, META_VOLUME, "p", "b", LIN_A, KEY_A);
	obj_init(&c, META_VOLUME, "p", "c", LIN_A, KEY_A);

	/* inner rollback undoes only the inner work */
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_insert(db, &a), 0);
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_insert(db, &b), 0);
	ck_assert_int_eq(meta_object_get(db, b.id, NULL), 0);
	meta_rollback(db);
	ck_assert_int_eq(meta_object_get(db, b.id, NULL), -ENOENT);
	ck_assert_int_eq(meta_commit(db), 0);
	ck_assert_int_eq(meta_object_get(db, a.id, NULL), 0);
	ck_assert_int_eq(meta_object_get(db, b.id, NULL), -ENOENT);

	/* an inner commit is undone by the outer rollback */
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_insert(db, &c), 0);
	ck_assert_int_eq(meta_commit(db), 0);
	ck_assert_int_eq(meta_commit(db), 0);
	ck_assert_int_eq(meta_object_get(db, c.id, NULL), 0);
	meta_rollback(db);
	ck_assert_int_eq(meta_object_get(db, c.id, NULL), -ENOENT);

	/* a failed statement inside a transaction leaves it usable */
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_insert(db, &a), -EEXIST);
	ck_assert_int_eq(meta_object_insert(db, &c), 0);
	ck_assert_int_eq(meta_commit(db), 0);
	ck_assert_int_eq(meta_object_get(db, c.id, NULL), 0);

	/* unbalanced calls */
	ck_assert_int_eq(meta_commit(db), -EINVAL);
	meta_rollback(db);
	ck_assert_int_eq(meta_object_get(db, a.id, NULL), 0);

	/* close with a transaction open rolls it back (file-less: just no leak) */
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_delete(db, a.id), 0);
	meta_close(db);
}
END_TEST

START_TEST(test_reopen_persists)
{
	struct cat c;
	struct meta_db *db = NULL;
	struct meta_object o, g;

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &db, 1, NULL, NULL), 0);
	add_lineage(db, LIN_A, 1, KEY_A);
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	ck_assert_int_eq(meta_begin(db), 0);              /* uncommitted at close */
	ck_assert_int_eq(meta_object_set_size(db, o.id, 7), 0);
	meta_close(db);

	ck_assert_int_eq(cat_open(&c, &db, 0, NULL, NULL), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_int_eq(memcmp(&g, &o, sizeof g), 0);
	meta_close(db);
	cat_remove(&c);
}
END_TEST

START_TEST(test_id_generate)
{
	char a[META_ID_LEN + 1], b[META_ID_LEN + 1];
	int i, k;

	for (k = 0; k < 200; k++) {
		meta_id_generate(a);
		ck_assert_uint_eq(strlen(a), META_ID_LEN);
		for (i = 0; i < (int)META_ID_LEN; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				ck_assert_int_eq(a[i], '-');
			else
				ck_assert_ptr_nonnull(strchr("0123456789abcdef", a[i]));
		}
		ck_assert_int_eq(a[14], '4');
		ck_assert_ptr_nonnull(strchr("89ab", a[19]));
		meta_id_generate(b);
		ck_assert_str_ne(a, b);
	}
}
END_TEST

START_TEST(test_kind_name)
{
	ck_assert_str_eq(meta_kind_name(META_VOLUME), "volume");
	ck_assert_str_eq(meta_kind_name(META_SNAPSHOT), "snapshot");
	ck_assert_str_eq(meta_kind_name(META_BACKUP), "backup");
	ck_assert_str_eq(meta_kind_name(META_IMAGE), "image");
	ck_assert_ptr_nonnull(meta_kind_name(META_ANY));
	ck_assert_ptr_nonnull(meta_kind_name((enum meta_kind)77));
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 40

struct worker {
	struct meta_db *db;
	pthread_t tid;
	int n;
	int failures;
	int first_err;
	int line;
};

#define WCHECK(w, cond, err)                                \
	do {                                                \
		if (!(cond)) {                              \
			if (!(w)->failures++) {             \
				(w)->first_err = (err);     \
				(w)->line = __LINE__;       \
			}                                   \
		}                                           \
	} while (0)

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct meta_object o;
	struct meta_filter f;
	char project[16], name[32];
	int i, rc;

	snprintf(project, sizeof project, "p%d", w->n);
	memset(&f, 0, sizeof f);
	f.project = project;
	for (i = 0; i < PER_THREAD; i++) {
		snprintf(name, sizeof name, "v%03d", i);
		obj_init(&o, META_VOLUME, project, name, (i & 1) ? LIN_A : LIN_P,
			 (i & 1) ? KEY_A : "");
		if (i % 2 == 0) {
			/* committed inside a transaction */
			rc = meta_begin(w->db);
			WCHECK(w, rc == 0, rc);
			rc = meta_object_insert(w->db, &o);
			WCHECK(w, rc == 0, rc);
			rc = meta_object_list(w->db, &f, NULL, NULL);
			WCHECK(w, rc == i + 1, rc);
			rc = meta_commit(w->db);
			WCHECK(w, rc == 0, rc);
		} else {
			rc = meta_object_insert(w->db, &o);
			WCHECK(w, rc == 0, rc);
		}
		if (i % 3 == 0) {
			/* rolled back: must take nobody else's rows with it */
			snprintf(o.name, sizeof o.name, "rb%03d", i);
			meta_id_generate(o.id);
			rc = meta_begin(w->db);
			WCHECK(w, rc == 0, rc);
			rc = meta_object_insert(w->db, &o);
			WCHECK(w, rc == 0, rc);
			rc = meta_object_list(w->db, &f, NULL, NULL);
			WCHECK(w, rc == i + 2, rc);
			rc = meta_object_get(w->db, o.id, NULL);
			WCHECK(w, rc == 0, rc);
			meta_rollback(w->db);
		}
		rc = meta_object_list(w->db, &f, NULL, NULL);
		WCHECK(w, rc == i + 1, rc);
		rc = meta_object_lookup(w->db, META_VOLUME, project, name, NULL);
		WCHECK(w, rc == 0, rc);
	}
	return NULL;
}

static void run_workers(struct meta_db *db)
{
	struct worker w[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].db = db;
		w[i].n = i;
		ck_assert_int_eq(pthread_create(&w[i].tid, NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
	for (i = 0; i < THREADS; i++)
		ck_assert_msg(w[i].failures == 0, "thread %d: %d failures, first %d at line %d", i,
			      w[i].failures, w[i].first_err, w[i].line);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, NULL, NULL), THREADS * PER_THREAD);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, KEY_A, LIN_A, NULL), THREADS * PER_THREAD / 2);
}

START_TEST(test_threads_memory)
{
	struct meta_db *db = mem_open_lineages();

	run_workers(db);
	meta_close(db);
}
END_TEST

START_TEST(test_threads_file)
{
	struct cat c;
	struct meta_db *db = NULL;

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &db, 1, NULL, NULL), 0);
	add_lineage(db, LIN_A, 1, KEY_A);
	add_lineage(db, LIN_P, 0, "");
	run_workers(db);
	meta_close(db);
	cat_remove(&c);
}
END_TEST

/* ---- immutability ------------------------------------------------------ */

START_TEST(test_set_encryption_eperm)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object e, p, g;

	obj_init(&e, META_VOLUME, "p", "enc", LIN_A, KEY_A);
	obj_init(&p, META_VOLUME, "p", "plain", LIN_P, "");
	ck_assert_int_eq(meta_object_insert(db, &e), 0);
	ck_assert_int_eq(meta_object_insert(db, &p), 0);

	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 0, ""), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 0, NULL), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 1, KEY_B), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 1, KEY_A), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, p.id, 1, KEY_A), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, p.id, 0, ""), -EPERM);
	ck_assert_int_eq(meta_object_set_encryption(db, "00000000-0000-4000-8000-000000000000", 1,
						    KEY_A), -ENOENT);
	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 2, KEY_A), -EINVAL);

	/* inside a transaction too, and the transaction survives */
	ck_assert_int_eq(meta_begin(db), 0);
	ck_assert_int_eq(meta_object_set_encryption(db, e.id, 0, ""), -EPERM);
	ck_assert_int_eq(meta_object_set_size(db, e.id, 99), 0);
	ck_assert_int_eq(meta_commit(db), 0);

	ck_assert_int_eq(meta_object_get(db, e.id, &g), 0);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);
	ck_assert_str_eq(g.lineage, LIN_A);
	ck_assert_uint_eq(g.size, 99);
	ck_assert_int_eq(meta_object_get(db, p.id, &g), 0);
	ck_assert_int_eq(g.encrypted, 0);
	ck_assert_str_eq(g.key_id, "");
	ck_assert_str_eq(g.lineage, LIN_P);
	meta_close(db);
}
END_TEST

START_TEST(test_encryption_consistency)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o;
	struct meta_lineage l;

	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	o.key_id[0] = '\0';                 /* encrypted without a key */
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "v", LIN_P, "");
	snprintf(o.key_id, sizeof o.key_id, KEY_A);   /* a key but not encrypted */
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	o.encrypted = 2;
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);

	memset(&l, 0, sizeof l);
	snprintf(l.id, sizeof l.id, "dddddddddddddddddddddddddddddddd");
	l.encrypted = 1;
	ck_assert_int_eq(meta_lineage_insert(db, &l), -EINVAL);
	l.encrypted = 0;
	snprintf(l.key_id, sizeof l.key_id, KEY_A);
	ck_assert_int_eq(meta_lineage_insert(db, &l), -EINVAL);
	meta_close(db);
}
END_TEST

START_TEST(test_raw_sql_refused)
{
	char dir[64], path[96], err[256], sql[256];
	struct meta_db *db = NULL;
	struct meta_object o, g;
	struct meta_lineage lg;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	add_lineage(db, LIN_A, 1, KEY_A);
	add_lineage(db, LIN_P, 0, "");
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	meta_close(db);

	snprintf(sql, sizeof sql, "UPDATE objects SET encrypted = 0, key_id = '' WHERE id = '%s'", o.id);
	ck_assert_int_eq(raw_exec(path, sql, err, sizeof err), SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_ptr_nonnull(strstr(err, "immutable"));
	ck_assert_int_eq(raw_exec(path, "UPDATE objects SET key_id = '" KEY_B "'", err, sizeof err),
			 SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "UPDATE objects SET lineage = '" LIN_P "'", err, sizeof err),
			 SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "UPDATE objects SET lineage = NULL", err, sizeof err),
			 SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "UPDATE lineages SET key_id = '" KEY_B "'", err, sizeof err),
			 SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "UPDATE lineages SET encrypted = 0, key_id = ''", err,
				  sizeof err), SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "UPDATE settings SET value = 'x' WHERE name = 'catalog.magic'",
				  err, sizeof err), SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "DELETE FROM settings", err, sizeof err),
			 SQLITE_CONSTRAINT_TRIGGER);
	ck_assert_int_eq(raw_exec(path, "INSERT INTO objects (id, kind, name, project, encrypted, key_id)"
				  " VALUES ('x', 1, 'n', 'p', 0, 'k')", err, sizeof err),
			 SQLITE_CONSTRAINT_CHECK);
	/* the mutable columns stay mutable, and same-value updates pass */
	ck_assert_int_eq(raw_exec(path, "UPDATE objects SET size = 5, encrypted = encrypted", NULL, 0),
			 SQLITE_OK);
	ck_assert_int_eq(raw_exec(path, "UPDATE lineages SET wrapped = x'0102'", NULL, 0), SQLITE_OK);

	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);
	ck_assert_str_eq(g.lineage, LIN_A);
	ck_assert_uint_eq(g.size, 5);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &lg), 0);
	ck_assert_int_eq(lg.encrypted, 1);
	ck_assert_str_eq(lg.key_id, KEY_A);
	ck_assert_uint_eq(lg.wrapped_len, 2);
	meta_close(db);
	tmpdir_remove(dir);
}
END_TEST

/* ---- migration --------------------------------------------------------- */

START_TEST(test_create_file_mode)
{
	char dir[64], path[96], wal[112];
	struct meta_db *db = NULL;
	struct stat stb;
	mode_t old = umask(0);

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	snprintf(wal, sizeof wal, "%s-wal", path);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	umask(old);
	ck_assert_int_eq(stat(path, &stb), 0);
	ck_assert_int_eq(stb.st_mode & 07777, 0600);
	ck_assert_int_eq(meta_setting_set(db, "x", "y"), 0);
	ck_assert_int_eq(stat(wal, &stb), 0);           /* WAL journal in use */
	ck_assert_int_eq(stb.st_mode & 07777, 0600);
	ck_assert_int_eq(raw_int(path, "PRAGMA user_version"), META_SCHEMA_VERSION);
	meta_close(db);

	/* reopening with create=1 keeps the existing catalog */
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	ck_assert_int_eq(meta_setting_get(db, "x", wal, sizeof wal), 0);
	ck_assert_str_eq(wal, "y");
	meta_close(db);
	tmpdir_remove(dir);
}
END_TEST

START_TEST(test_missing_nocreate)
{
	char dir[64], path[96];
	struct meta_db *db = (struct meta_db *)1;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), -ENOENT);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(access(path, F_OK), -1);
	snprintf(path, sizeof path, "%s/nodir/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), -ENOENT);
	tmpdir_remove(dir);
}
END_TEST

START_TEST(test_migrate_from_v0)
{
	char dir[64], path[96], v[32];
	struct meta_db *db = NULL;
	int fd;

	tmpdir_make(dir, sizeof dir);
	/* a hand-written version 0: a valid SQLite file with no schema */
	snprintf(path, sizeof path, "%s/v0.db", dir);
	ck_assert_int_eq(raw_exec(path, "PRAGMA user_version = 0; CREATE TABLE t (x);"
				  " DROP TABLE t; VACUUM;", NULL, 0), SQLITE_OK);
	ck_assert_int_eq(raw_int(path, "PRAGMA user_version"), 0);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), 0);
	ck_assert_int_eq(meta_setting_get(db, "catalog.magic", v, sizeof v), 0);
	ck_assert_str_eq(v, "evfs-catalog");
	meta_close(db);
	ck_assert_int_eq(raw_int(path, "PRAGMA user_version"), META_SCHEMA_VERSION);
	ck_assert_int_eq(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
				 " ('settings', 'lineages', 'objects', 'pool_fresh')"), 4);

	/* an empty (0-byte) file is version 0 too */
	snprintf(path, sizeof path, "%s/empty.db", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), 0);
	meta_close(db);
	ck_assert_int_eq(raw_int(path, "PRAGMA user_version"), META_SCHEMA_VERSION);
	tmpdir_remove(dir);
}
END_TEST

struct logrec {
	int calls;
	int max_level_seen;    /* lowest number = most severe */
	char last[256];
	char all[2048];
};

static void log_cb(void *ctx, int level, const char *msg)
{
	struct logrec *r = ctx;
	size_t used = strlen(r->all);

	if (!r->calls || level < r->max_level_seen)
		r->max_level_seen = level;
	r->calls++;
	snprintf(r->last, sizeof r->last, "%s", msg);
	snprintf(r->all + used, sizeof r->all - used, "%s\n", msg);
}

START_TEST(test_newer_version)
{
	char dir[64], path[96];
	struct meta_db *db = NULL;
	struct logrec lr;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	meta_close(db);
	ck_assert_int_eq(raw_exec(path, "PRAGMA user_version = 99", NULL, 0), SQLITE_OK);
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open(&db, path, 0, log_cb, &lr), -EUCLEAN);
	ck_assert_ptr_null(db);
	ck_assert_int_gt(lr.calls, 0);
	ck_assert_int_eq(lr.max_level_seen, LOG_ERR);
	ck_assert_ptr_nonnull(strstr(lr.all, "99"));
	ck_assert_int_eq(raw_int(path, "PRAGMA user_version"), 99);   /* untouched */
	tmpdir_remove(dir);
}
END_TEST

static int file_byte(const char *path, off_t at)
{
	unsigned char c = 0;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, at), 1);
	close(fd);
	return c;
}

START_TEST(test_foreign_sqlite)
{
	char dir[64], path[96];
	struct meta_db *db = NULL;

	tmpdir_make(dir, sizeof dir);
	/* tables but no version */
	snprintf(path, sizeof path, "%s/a.db", dir);
	ck_assert_int_eq(raw_exec(path, "CREATE TABLE foo (x)", NULL, 0), SQLITE_OK);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), -EUCLEAN);
	ck_assert_int_eq(file_byte(path, 18), 1);       /* not switched to WAL */
	/* our version number but none of our tables */
	snprintf(path, sizeof path, "%s/b.db", dir);
	ck_assert_int_eq(raw_exec(path, "CREATE TABLE foo (x); PRAGMA user_version = 1", NULL, 0),
			 SQLITE_OK);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), -EUCLEAN);
	/* a settings table with the wrong magic */
	snprintf(path, sizeof path, "%s/c.db", dir);
	ck_assert_int_eq(raw_exec(path, "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT);"
				  " INSERT INTO settings VALUES ('catalog.magic', 'other');"
				  " PRAGMA user_version = 1", NULL, 0), SQLITE_OK);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), -EUCLEAN);
	/* a catalog whose immutability trigger was dropped */
	snprintf(path, sizeof path, "%s/d.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	meta_close(db);
	ck_assert_int_eq(raw_exec(path, "DROP TRIGGER objects_encryption_immutable", NULL, 0),
			 SQLITE_OK);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), -EUCLEAN);
	ck_assert_ptr_null(db);
	tmpdir_remove(dir);
}
END_TEST

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

START_TEST(test_garbage_file)
{
	char dir[64], path[96];
	struct meta_db *db = NULL;
	unsigned char junk[8192];
	size_t i;
	unsigned x = 12345;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	for (i = 0; i < sizeof junk; i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (unsigned char)(x >> 16);
	}
	write_file(path, junk, sizeof junk);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), -EUCLEAN);
	ck_assert_ptr_null(db);
	write_file(path, "hello, world\n", 13);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), -EUCLEAN);
	/* the SQLite header followed by garbage */
	memcpy(junk, "SQLite format 3", 16);
	write_file(path, junk, sizeof junk);
	ck_assert_int_lt(meta_open(&db, path, 0, NULL, NULL), 0);
	ck_assert_ptr_null(db);
	tmpdir_remove(dir);
}
END_TEST

START_TEST(test_truncated_file)
{
	static const off_t cuts[] = { 50, 100, 1000, 4096, 8192, 3 * 4096 + 7 };
	char dir[64], path[96], name[32];
	struct meta_db *db = NULL;
	struct meta_object o;
	struct stat stb;
	char *full;
	size_t i;
	int rc, fd;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	add_lineage(db, LIN_A, 1, KEY_A);
	ck_assert_int_eq(meta_begin(db), 0);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "volume-with-a-long-name-%03zu", i);
		obj_init(&o, META_VOLUME, "p", name, LIN_A, KEY_A);
		ck_assert_int_eq(meta_object_insert(db, &o), 0);
	}
	ck_assert_int_eq(meta_commit(db), 0);
	meta_close(db);                      /* last close checkpoints the WAL */
	ck_assert_int_eq(stat(path, &stb), 0);
	ck_assert_int_gt(stb.st_size, 8 * 4096);

	full = malloc((size_t)stb.st_size);
	ck_assert_ptr_nonnull(full);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, full, (size_t)stb.st_size), stb.st_size);
	close(fd);
	for (i = 0; i <= sizeof cuts / sizeof cuts[0]; i++) {
		off_t len = i < sizeof cuts / sizeof cuts[0] ? cuts[i] : stb.st_size / 2;

		write_file(path, full, (size_t)len);
		db = NULL;
		rc = meta_open(&db, path, 0, NULL, NULL);
		ck_assert_msg(rc == -EUCLEAN, "truncated to %lld bytes: open gave %d", (long long)len, rc);
		ck_assert_ptr_null(db);
	}
	free(full);
	tmpdir_remove(dir);
}
END_TEST

START_TEST(test_two_connections)
{
	struct cat c;
	struct meta_db *a = NULL, *b = NULL;
	struct meta_object o, g;

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &a, 1, NULL, NULL), 0);
	ck_assert_int_eq(cat_open(&c, &b, 1, NULL, NULL), 0);
	add_lineage(a, LIN_A, 1, KEY_A);
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(a, &o), 0);
	ck_assert_int_eq(meta_object_get(b, o.id, &g), 0);
	ck_assert_str_eq(g.name, "v");
	ck_assert_int_eq(meta_object_set_encryption(b, o.id, 0, ""), -EPERM);
	ck_assert_int_eq(meta_lineage_delete(b, LIN_A), -EBUSY);
	ck_assert_int_eq(meta_object_delete(b, o.id), 0);
	ck_assert_int_eq(meta_lineage_delete(b, LIN_A), 0);
	ck_assert_int_eq(meta_lineage_get(a, LIN_A, NULL), -ENOENT);
	meta_close(a);
	meta_close(b);
	cat_remove(&c);
}
END_TEST

/* A catalog of version 1 (before the freshness records) keeps its rows and
 * gains the table; the records move only forward unless forced, need their
 * lineage, and go with it. */
/*
 * Two connections of one process on the catalog (the store's: one patient,
 * one for freshness records), then another process that opens and closes
 * it (an operator's sqlite3, evfsctl): the WAL must stay, and what the
 * first connection writes afterwards must be seen by a new process.  The
 * second meta_open used to open(2) and close(2) the file, which dropped the
 * first connection's POSIX locks: the other process then found itself the
 * last user, deleted the WAL, and every later commit went to an unlinked
 * file (invisible, and lost at the next crash).
 */
START_TEST(test_second_connection_keeps_locks)
{
	char dir[64], path[96], wal[100];
	struct meta_db *a = NULL, *b = NULL;
	struct stat st;

	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	snprintf(wal, sizeof wal, "%s-wal", path);
	ck_assert_int_eq(meta_open(&a, path, 1, NULL, NULL), 0);
	add_lineage(a, LIN_A, 1, KEY_A);
	ck_assert_int_eq(meta_open(&b, path, 0, NULL, NULL), 0);
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIPPED: test_second_connection_keeps_locks needs the sqlite3 program\n");
	} else {
		char cmd[256];

		/* Another process: the sqlite3 program opens and closes it. */
		snprintf(cmd, sizeof cmd, "sqlite3 %s 'SELECT count(*) FROM lineages' >/dev/null", path);
		ck_assert_int_eq(system(cmd), 0);
		ck_assert_msg(stat(wal, &st) == 0, "another process's close deleted the WAL of an open catalog");
		add_lineage(a, LIN_B, 1, KEY_A);
		snprintf(cmd, sizeof cmd, "test \"$(sqlite3 %s 'SELECT count(*) FROM lineages')\" = 2", path);
		ck_assert_msg(system(cmd) == 0, "a commit after another process's close is not visible to others");
	}
	meta_close(b);
	meta_close(a);
	tmpdir_remove(dir);
}
END_TEST

/* Data-key generations: begin keeps the old wrapped key beside the new,
 * a second begin is refused until end destroys the old one. */
START_TEST(test_rekey_records)
{
	struct meta_db *db = NULL;
	struct meta_lineage l;
	struct meta_rekey r;
	uint8_t w1[40], w2[40];
	uint32_t gen = 0;

	memset(w1, 1, sizeof w1);
	memset(w2, 2, sizeof w2);
	db = mem_open();
	add_lineage(db, LIN_A, 1, KEY_A);
	ck_assert_int_eq(meta_rekey_get(db, LIN_B, &r), -ENOENT);
	ck_assert_int_eq(meta_rekey_get(db, LIN_A, &r), 0);
	ck_assert_uint_eq(r.gen, 0);
	ck_assert_uint_eq(r.old_wrapped_len, 0);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &l), 0);
	ck_assert_int_eq(meta_rekey_begin(db, LIN_A, w1, sizeof w1, &gen), 0);
	ck_assert_uint_eq(gen, 1);
	ck_assert_int_eq(meta_rekey_get(db, LIN_A, &r), 0);
	ck_assert_uint_eq(r.gen, 1);
	ck_assert_uint_eq(r.old_gen, 0);
	ck_assert_uint_eq(r.old_wrapped_len, l.wrapped_len);
	ck_assert_mem_eq(r.old_wrapped, l.wrapped, l.wrapped_len);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &l), 0);
	ck_assert_mem_eq(l.wrapped, w1, sizeof w1);
	ck_assert_int_eq(meta_rekey_begin(db, LIN_A, w2, sizeof w2, &gen), -EALREADY);
	ck_assert_int_eq(meta_rekey_end(db, LIN_A), 0);
	ck_assert_int_eq(meta_rekey_get(db, LIN_A, &r), 0);
	ck_assert_uint_eq(r.gen, 1);
	ck_assert_uint_eq(r.old_wrapped_len, 0);
	ck_assert_int_eq(meta_rekey_begin(db, LIN_A, w2, sizeof w2, &gen), 0);
	ck_assert_uint_eq(gen, 2);
	ck_assert_int_eq(meta_rekey_get(db, LIN_A, &r), 0);
	ck_assert_uint_eq(r.old_gen, 1);
	ck_assert_mem_eq(r.old_wrapped, w1, sizeof w1);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), 0);          /* the rows go with it */
	ck_assert_int_eq(meta_rekey_get(db, LIN_A, &r), -ENOENT);
	meta_close(db);
}
END_TEST

START_TEST(test_fresh_records)
{
	struct cat c;
	struct meta_db *a = NULL, *b = NULL;
	uint8_t h[32], got[32];
	uint64_t gen = 0;

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &a, 1, NULL, NULL), 0);
	add_lineage(a, LIN_A, 1, KEY_A);
	meta_close(a);
	if (!pg_conninfo())     /* SQLite: a catalog of version 1 gains the tables */
		ck_assert_int_eq(raw_exec(c.path, "DROP TABLE pool_fresh; DROP TABLE lineage_keys;"
					  " DROP TABLE backup_fresh; ALTER TABLE objects DROP COLUMN attached_host;"
					  " ALTER TABLE objects DROP COLUMN attached_at;"
					  " PRAGMA user_version = 1", NULL, 0), SQLITE_OK);
	ck_assert_int_eq(cat_open(&c, &a, 0, NULL, NULL), 0);
	if (!pg_conninfo())
		ck_assert_int_eq(raw_int(c.path, "PRAGMA user_version"), META_SCHEMA_VERSION);
	ck_assert_int_eq(meta_lineage_get(a, LIN_A, NULL), 0);

	ck_assert_int_eq(cat_open(&c, &b, 0, NULL, NULL), 0);
	meta_set_patient(b, 0);
	memset(h, 7, sizeof h);
	ck_assert_int_eq(meta_fresh_get(a, LIN_A, &gen, got), -ENOENT);
	ck_assert_int_eq(meta_fresh_set(b, LIN_A, 5, h, 0), 0);
	ck_assert_int_eq(meta_fresh_get(a, LIN_A, &gen, got), 0);
	ck_assert_uint_eq(gen, 5);
	ck_assert_mem_eq(got, h, 32);
	h[0] = 9;
	ck_assert_int_eq(meta_fresh_set(b, LIN_A, 4, h, 0), 0);    /* backwards: ignored */
	ck_assert_int_eq(meta_fresh_get(a, LIN_A, &gen, got), 0);
	ck_assert_uint_eq(gen, 5);
	ck_assert_uint_eq(got[0], 7);
	ck_assert_int_eq(meta_fresh_set(a, LIN_A, 4, h, 1), 0);    /* forced */
	ck_assert_int_eq(meta_fresh_get(b, LIN_A, &gen, got), 0);
	ck_assert_uint_eq(gen, 4);
	ck_assert_uint_eq(got[0], 9);
	/* the impatient connection gives up at once on a held write lock */
	ck_assert_int_eq(meta_begin(a), 0);
	ck_assert_int_eq(meta_fresh_set(a, LIN_A, 6, h, 0), 0);
	ck_assert_int_eq(meta_fresh_set(b, LIN_A, 7, h, 0), -EBUSY);
	ck_assert_int_eq(meta_commit(a), 0);
	ck_assert_int_eq(meta_fresh_get(b, LIN_A, &gen, got), 0);
	ck_assert_uint_eq(gen, 6);
	/* only for a lineage the catalog has; gone with it */
	ck_assert_int_eq(meta_fresh_set(b, LIN_B, 1, h, 0), -ENOENT);
	ck_assert_int_eq(meta_fresh_set(b, "short", 1, h, 0), -EINVAL);
	ck_assert_int_eq(meta_lineage_delete(a, LIN_A), 0);
	ck_assert_int_eq(meta_fresh_get(b, LIN_A, &gen, got), -ENOENT);
	meta_close(a);
	meta_close(b);
	cat_remove(&c);
}
END_TEST

/* One writer at a time across connections (processes, hosts): an
 * impatient second connection's meta_begin is -EBUSY while the first holds
 * a transaction, and reads still go through. */
START_TEST(test_write_lock)
{
	struct cat c;
	struct meta_db *a = NULL, *b = NULL;
	struct meta_object o;

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &a, 1, NULL, NULL), 0);
	ck_assert_int_eq(cat_open(&c, &b, 0, NULL, NULL), 0);
	add_lineage(a, LIN_A, 1, KEY_A);
	meta_set_patient(b, 0);
	ck_assert_int_eq(meta_begin(a), 0);
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(a, &o), 0);
	ck_assert_int_eq(meta_begin(b), -EBUSY);
	ck_assert_int_eq(meta_lineage_get(b, LIN_A, NULL), 0);
	ck_assert_int_eq(meta_object_get(b, o.id, NULL), -ENOENT);   /* not committed yet */
	ck_assert_int_eq(meta_commit(a), 0);
	ck_assert_int_eq(meta_begin(b), 0);
	ck_assert_int_eq(meta_object_get(b, o.id, NULL), 0);
	ck_assert_int_eq(meta_object_delete(b, o.id), 0);
	ck_assert_int_eq(meta_commit(b), 0);
	ck_assert_int_eq(meta_object_get(a, o.id, NULL), -ENOENT);
	meta_close(a);
	meta_close(b);
	cat_remove(&c);
}
END_TEST

/* The checksum of each backup file's header: NULL while a rewrite is under
 * way, 32 bytes otherwise, only for an object the catalog has, gone with
 * it. */
START_TEST(test_fresh_backup_records)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o;
	uint8_t sum[32], got[32];

	obj_init(&o, META_BACKUP, "p", "b", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	ck_assert_int_eq(meta_fresh_backup_get(db, o.id, got), -ENOENT);
	memset(sum, 0x3c, sizeof sum);
	ck_assert_int_eq(meta_fresh_backup_set(db, o.id, sum), 0);
	ck_assert_int_eq(meta_fresh_backup_get(db, o.id, got), 0);
	ck_assert_mem_eq(got, sum, 32);
	ck_assert_int_eq(meta_fresh_backup_set(db, o.id, NULL), 0);
	ck_assert_int_eq(meta_fresh_backup_get(db, o.id, got), -ENODATA);
	sum[31] = 1;
	ck_assert_int_eq(meta_fresh_backup_set(db, o.id, sum), 0);
	ck_assert_int_eq(meta_fresh_backup_get(db, o.id, got), 0);
	ck_assert_uint_eq(got[31], 1);
	ck_assert_int_eq(meta_fresh_backup_set(db, "00000000-0000-4000-8000-000000000000", sum), -ENOENT);
	ck_assert_int_eq(meta_object_delete(db, o.id), 0);
	ck_assert_int_eq(meta_fresh_backup_get(db, o.id, got), -ENOENT);
	meta_close(db);
}
END_TEST

/* ---- PostgreSQL only --------------------------------------------------- */

/* Raw SQL on the schema, behind meta's back: the triggers and constraints
 * bind every connection (SQLSTATE EVP01 -> -EPERM, CHECK -> -EINVAL). */
START_TEST(test_pg_raw_sql_refused)
{
	struct cat c;
	struct meta_db *db = NULL;
	struct meta_object o, g;
	struct meta_lineage lg;
	struct sqldb *raw;
	char sql[256];

	cat_make(&c);
	ck_assert_int_eq(cat_open(&c, &db, 1, NULL, NULL), 0);
	add_lineage(db, LIN_A, 1, KEY_A);
	add_lineage(db, LIN_P, 0, "");
	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	meta_close(db);

	raw = pg_raw(c.schema);
	snprintf(sql, sizeof sql, "UPDATE objects SET encrypted = 0, key_id = '' WHERE id = '%s'", o.id);
	ck_assert_int_eq(sqldb_exec(raw, sql), -EPERM);
	ck_assert_ptr_nonnull(strstr(sqldb_errmsg(raw), "immutable"));
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE objects SET key_id = '" KEY_B "'"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE objects SET lineage = '" LIN_P "'"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE objects SET lineage = NULL"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE lineages SET key_id = '" KEY_B "'"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE lineages SET encrypted = 0, key_id = ''"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE settings SET value = 'x' WHERE name = 'catalog.magic'"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE settings SET value = '9' WHERE name = 'catalog.schema_version'"),
			 -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "DELETE FROM settings"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "TRUNCATE settings"), -EPERM);
	ck_assert_int_eq(sqldb_exec(raw, "INSERT INTO objects (id, kind, name, project, encrypted, key_id)"
				    " VALUES ('x', 1, 'n', 'p', 0, 'k')"), -EINVAL);
	ck_assert_int_eq(sqldb_exec(raw, "INSERT INTO pool_fresh (lineage, gen, hash)"
				    " VALUES ('" LIN_A "', 1, '\\x010203')"), -EINVAL);
	ck_assert_int_eq(sqldb_exec(raw, "INSERT INTO objects (id, kind, name, project, encrypted, key_id, lineage)"
				    " VALUES ('y', 1, 'n', 'p', 0, '', 'cccc')"), -ENOENT);
	/* the mutable columns stay mutable, and same-value updates pass */
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE objects SET size = 5, encrypted = encrypted"), 0);
	ck_assert_int_eq(sqldb_exec(raw, "UPDATE lineages SET wrapped = '\\x0102'"), 0);
	sqldb_close(raw);

	ck_assert_int_eq(cat_open(&c, &db, 0, NULL, NULL), 0);
	ck_assert_int_eq(meta_object_get(db, o.id, &g), 0);
	ck_assert_int_eq(g.encrypted, 1);
	ck_assert_str_eq(g.key_id, KEY_A);
	ck_assert_str_eq(g.lineage, LIN_A);
	ck_assert_uint_eq(g.size, 5);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &lg), 0);
	ck_assert_int_eq(lg.encrypted, 1);
	ck_assert_str_eq(lg.key_id, KEY_A);
	ck_assert_uint_eq(lg.wrapped_len, 2);
	ck_assert_int_eq(meta_setting_set(db, "catalog.schema_version", "4"), -EPERM);
	meta_close(db);
}
END_TEST

/* A fresh schema given `damage` (raw SQL; after a catalog was made there
 * first when it starts with '@'), then opened: -EUCLEAN, an error logged
 * that mentions `want`, and `check` (a query) still finds its row. */
static void pg_refused(const char *damage, int create, const char *want, const char *check)
{
	struct meta_db *db = NULL;
	struct logrec lr;
	char schema[48];
	struct sqldb *raw;

	pg_schema_name(schema, sizeof schema);
	if (damage[0] == '@') {
		ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 1, NULL, NULL), 0);
		meta_close(db);
		damage++;
	}
	raw = pg_raw(schema);
	ck_assert_msg(sqldb_exec(raw, damage) == 0, "%s: %s", damage, sqldb_errmsg(raw));
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, create, log_cb, &lr), -EUCLEAN);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(lr.max_level_seen, LOG_ERR);
	ck_assert_msg(strstr(lr.all, want), "want '%s' in the log: %s", want, lr.all);
	ck_assert_msg(strstr(lr.all, schema), "the log does not name the schema: %s", lr.all);
	if (check)
		ck_assert_msg(sql_once(raw, check) == 1, "%s: %s", check, sqldb_errmsg(raw));
	sqldb_close(raw);
}

/* Opening: missing and empty schemas, unreachable servers, bad names. */
START_TEST(test_pg_open)
{
	struct meta_db *db = (struct meta_db *)1;
	struct logrec lr;
	char schema[48], v[16];
	struct sqldb *raw;

	ck_assert_int_eq(meta_open_pg(NULL, pg_conninfo(), "x", 1, NULL, NULL), -EINVAL);
	ck_assert_int_eq(meta_open_pg(&db, NULL, "x", 1, NULL, NULL), -EINVAL);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), NULL, 1, NULL, NULL), -EINVAL);
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), "Bad-Name", 1, log_cb, &lr), -EINVAL);
	ck_assert_ptr_null(db);
	ck_assert_ptr_nonnull(strstr(lr.all, "Bad-Name"));

	/* nobody listens on port 1 */
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open_pg(&db, "host=127.0.0.1 port=1 dbname=evfs user=evfs connect_timeout=5",
				      "x", 1, log_cb, &lr), -ECONNREFUSED);
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(lr.all, "catalog: cannot connect to PostgreSQL: "), "log: %s", lr.all);
	ck_assert_int_eq(lr.max_level_seen, LOG_ERR);

	/* a missing schema is not made without create */
	pg_schema_name(schema, sizeof schema);
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 0, log_cb, &lr), -ENOENT);
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(lr.all, schema), "log: %s", lr.all);
	/* nor is an empty one given a catalog */
	raw = pg_raw(schema);
	sqldb_close(raw);
	memset(&lr, 0, sizeof lr);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 0, log_cb, &lr), -ENOENT);
	ck_assert_msg(strstr(lr.all, "holds no catalog"), "log: %s", lr.all);
	/* create makes it, and keeps it when opened again */
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 1, NULL, NULL), 0);
	ck_assert_int_eq(meta_setting_get(db, "catalog.magic", v, sizeof v), 0);
	ck_assert_str_eq(v, "evfs-catalog");
	ck_assert_int_eq(meta_setting_get(db, "catalog.schema_version", v, sizeof v), 0);
	ck_assert_int_eq(atoi(v), META_SCHEMA_VERSION);
	ck_assert_int_eq(meta_setting_set(db, "x", "y"), 0);
	meta_close(db);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 1, NULL, NULL), 0);
	ck_assert_int_eq(meta_setting_get(db, "x", v, sizeof v), 0);
	ck_assert_str_eq(v, "y");
	meta_close(db);
}
END_TEST

/* Foreign, damaged and newer catalogs are refused and left alone. */
START_TEST(test_pg_foreign_schema)
{
	/* tables, but not ours */
	pg_refused("CREATE TABLE foo (x INT); INSERT INTO foo VALUES (1)", 1, "holds no evfs catalog",
		   "SELECT x FROM foo");
	/* a settings table with the wrong magic */
	pg_refused("CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT);"
		   " INSERT INTO settings VALUES ('catalog.magic', 'other')", 1, "bad magic",
		   "SELECT 1 FROM settings WHERE value = 'other'");
	/* a newer catalog */
	pg_refused("@ALTER TABLE settings DISABLE TRIGGER settings_magic_update;"
		   " UPDATE settings SET value = '99' WHERE name = 'catalog.schema_version';"
		   " ALTER TABLE settings ENABLE TRIGGER settings_magic_update", 0, "99",
		   "SELECT 1 FROM settings WHERE name = 'catalog.schema_version' AND value = '99'");
	/* a catalog whose immutability trigger was dropped, or disabled */
	pg_refused("@DROP TRIGGER objects_encryption_immutable ON objects", 0,
		   "trigger objects_encryption_immutable is missing", NULL);
	pg_refused("@ALTER TABLE lineages DISABLE TRIGGER lineages_encryption_immutable", 0,
		   "trigger lineages_encryption_immutable is missing", NULL);
	pg_refused("@DROP TABLE backup_fresh", 1, "table backup_fresh is missing", NULL);
}
END_TEST

/* Several hosts (here: connections) creating one catalog at once. */
#define CREATORS 4

struct creator {
	pthread_t tid;
	const char *schema;
	pthread_barrier_t *go;
	int rc;
	int created;     /* "created in PostgreSQL schema" logged */
	int other_logs;
};

static void creator_log(void *ctx, int level, const char *msg)
{
	struct creator *c = ctx;

	if (strstr(msg, "catalog: created in PostgreSQL schema"))
		c->created++;
	else if (level <= LOG_WARNING)
		c->other_logs++;
}

static void *creator_run(void *arg)
{
	struct creator *c = arg;
	struct meta_db *db = NULL;

	pthread_barrier_wait(c->go);
	c->rc = meta_open_pg(&db, pg_conninfo(), c->schema, 1, creator_log, c);
	if (!c->rc)
		c->rc = meta_setting_set(db, c->schema, "seen");
	meta_close(db);
	return NULL;
}

START_TEST(test_pg_concurrent_create)
{
	struct creator cr[CREATORS];
	pthread_barrier_t go;
	struct meta_db *db;
	char schema[48], v[16];
	int i, created = 0;

	pg_schema_name(schema, sizeof schema);
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, CREATORS), 0);
	for (i = 0; i < CREATORS; i++) {
		memset(&cr[i], 0, sizeof cr[i]);
		cr[i].schema = schema;
		cr[i].go = &go;
		ck_assert_int_eq(pthread_create(&cr[i].tid, NULL, creator_run, &cr[i]), 0);
	}
	for (i = 0; i < CREATORS; i++)
		ck_assert_int_eq(pthread_join(cr[i].tid, NULL), 0);
	pthread_barrier_destroy(&go);
	for (i = 0; i < CREATORS; i++) {
		ck_assert_msg(cr[i].rc == 0, "creator %d: %d", i, cr[i].rc);
		ck_assert_int_eq(cr[i].other_logs, 0);
		created += cr[i].created;
	}
	ck_assert_int_eq(created, 1);
	ck_assert_int_eq(meta_open_pg(&db, pg_conninfo(), schema, 0, NULL, NULL), 0);
	ck_assert_int_eq(meta_setting_get(db, schema, v, sizeof v), 0);
	ck_assert_str_eq(v, "seen");
	meta_close(db);
}
END_TEST

/* ---- errors ------------------------------------------------------------ */

/* The SQLite-to-errno table, once meta_errno() and now sqldb_sqlite.c's:
 * every entry that a real connection can be made to produce, provoked
 * through sqldb (the table itself is private to sqldb/). */
START_TEST(test_errno_map)
{
	static const struct {
		const char *sql;
		int err;
	} map[] = {
		{ "SELECT 1", 1 },                                          /* SQLITE_ROW */
		{ "UPDATE p SET c = 2", 0 },                                /* SQLITE_DONE */
		{ "INSERT INTO p (u, c) VALUES ('a', 1)", -EEXIST },        /* CONSTRAINT_UNIQUE */
		{ "INSERT INTO q (k, pid) VALUES ('k', 1)", -EEXIST },      /* CONSTRAINT_PRIMARYKEY */
		{ "INSERT INTO p (id, u, c) VALUES (1, 'b', 1)", -EEXIST }, /* the rowid */
		{ "INSERT INTO q (k, pid) VALUES ('x', 99)", -ENOENT },     /* CONSTRAINT_FOREIGNKEY */
		{ "UPDATE p SET u = 'z'", -EPERM },                         /* CONSTRAINT_TRIGGER */
		{ "INSERT INTO p (u, c) VALUES ('b', 0)", -EINVAL },        /* CONSTRAINT_CHECK */
		{ "INSERT INTO p (u, c, n) VALUES ('b', 1, NULL)", -EINVAL }, /* CONSTRAINT_NOTNULL */
		{ "SELECT zeroblob(2000000000)", -EINVAL },                 /* SQLITE_TOOBIG */
		{ "SELECT x FROM no_such_table", -EUCLEAN },                /* SQLITE_ERROR */
	};
	char dir[64], path[96], msg[256];
	struct sqldb *s = NULL, *t = NULL;
	unsigned char junk[4096];
	size_t i;
	int fd, rc;

	ck_assert_int_eq(sqldb_open_sqlite(&s, ":memory:", NULL, 0), 0);
	ck_assert_int_eq(sqldb_exec(s, "PRAGMA foreign_keys=ON;"
				    " CREATE TABLE p (id INTEGER PRIMARY KEY, u TEXT UNIQUE, c INT CHECK (c > 0),"
				    "   n TEXT NOT NULL DEFAULT '');"
				    " CREATE TABLE q (k TEXT PRIMARY KEY, pid INT REFERENCES p(id));"
				    " CREATE TRIGGER p_frozen BEFORE UPDATE OF u ON p"
				    "   BEGIN SELECT RAISE(ABORT, 'frozen'); END;"
				    " INSERT INTO p (id, u, c) VALUES (1, 'a', 1); INSERT INTO q VALUES ('k', 1);"), 0);
	for (i = 0; i < sizeof map / sizeof map[0]; i++) {
		rc = sql_once(s, map[i].sql);
		ck_assert_msg(rc == map[i].err, "%s -> %d, want %d (%s)", map[i].sql, rc, map[i].err,
			      sqldb_errmsg(s));
	}
	/* SQLITE_READONLY, SQLITE_FULL */
	ck_assert_int_eq(sqldb_exec(s, "PRAGMA query_only=1"), 0);
	ck_assert_int_eq(sql_once(s, "INSERT INTO p (u, c) VALUES ('r', 1)"), -EROFS);
	ck_assert_int_eq(sqldb_exec(s, "PRAGMA query_only=0; PRAGMA max_page_count=8"), 0);
	ck_assert_int_eq(sql_once(s, "INSERT INTO p (u, c) VALUES (randomblob(100000), 1)"), -ENOSPC);
	sqldb_close(s);

	tmpdir_make(dir, sizeof dir);
	/* SQLITE_BUSY: the write lock held by another connection */
	snprintf(path, sizeof path, "%s/busy.db", dir);
	ck_assert_int_eq(raw_exec(path, "CREATE TABLE t (x)", NULL, 0), SQLITE_OK);
	ck_assert_int_eq(sqldb_open_sqlite(&s, path, NULL, 0), 0);
	ck_assert_int_eq(sqldb_open_sqlite(&t, path, NULL, 0), 0);
	sqldb_busy_timeout(t, 0);
	ck_assert_int_eq(sqldb_begin(s), 0);
	ck_assert_int_eq(sqldb_begin(t), -EBUSY);
	sqldb_close(t);
	sqldb_close(s);
	/* SQLITE_NOTADB */
	snprintf(path, sizeof path, "%s/junk.db", dir);
	memset(junk, 0xa5, sizeof junk);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	ck_assert_int_eq(sqldb_open_sqlite(&s, path, NULL, 0), 0);
	ck_assert_int_eq(sql_once(s, "SELECT count(*) FROM sqlite_master"), -EUCLEAN);
	sqldb_close(s);
	/* SQLITE_CANTOPEN */
	snprintf(path, sizeof path, "%s/nodir/x.db", dir);
	ck_assert_int_eq(sqldb_open_sqlite(&s, path, msg, sizeof msg), -EIO);
	ck_assert_ptr_null(s);
	tmpdir_remove(dir);
}
END_TEST

START_TEST(test_bad_args)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_object o;
	struct meta_lineage l;
	struct meta_filter f;
	char longs[300], buf[8];

	memset(longs, 'x', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';

	ck_assert_int_eq(meta_open(NULL, ":memory:", 1, NULL, NULL), -EINVAL);
	{
		struct meta_db *x = NULL;

		ck_assert_int_eq(meta_open(&x, NULL, 1, NULL, NULL), -EINVAL);
		ck_assert_int_eq(meta_open(&x, "", 1, NULL, NULL), -EINVAL);
		ck_assert_int_eq(meta_open(&x, "/tmp", 0, NULL, NULL), -EISDIR);
		ck_assert_ptr_null(x);
	}
	ck_assert_int_eq(meta_begin(NULL), -EINVAL);
	ck_assert_int_eq(meta_commit(NULL), -EINVAL);
	meta_rollback(NULL);
	ck_assert_int_eq(meta_object_insert(NULL, &o), -EINVAL);
	ck_assert_int_eq(meta_object_insert(db, NULL), -EINVAL);
	ck_assert_int_eq(meta_object_get(db, NULL, &o), -EINVAL);
	ck_assert_int_eq(meta_object_get(db, longs, &o), -EINVAL);
	ck_assert_int_eq(meta_object_delete(db, longs), -EINVAL);
	ck_assert_int_eq(meta_object_set_size(db, NULL, 1), -EINVAL);
	ck_assert_int_eq(meta_object_set_parent(db, "x", longs), -EINVAL);
	ck_assert_int_eq(meta_object_set_encryption(db, "x", 1, longs), -EINVAL);
	ck_assert_int_eq(meta_object_lookup(db, META_ANY, "p", "n", &o), -EINVAL);
	ck_assert_int_eq(meta_object_lookup(db, (enum meta_kind)5, "p", "n", &o), -EINVAL);
	ck_assert_int_eq(meta_object_lookup(db, META_VOLUME, NULL, "n", &o), -EINVAL);
	ck_assert_int_eq(meta_object_lookup(db, META_VOLUME, "p", longs, &o), -EINVAL);
	ck_assert_int_eq(meta_object_lookup(db, META_VOLUME, longs, "n", &o), -EINVAL);

	/* object fields */
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	o.kind = META_ANY;
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	o.id[0] = '\0';
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	memset(o.name, 'n', sizeof o.name);               /* unterminated */
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	memset(o.location, 'l', sizeof o.location);
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	o.size = UINT64_MAX;
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	obj_init(&o, META_VOLUME, "p", "n", LIN_A, KEY_A);
	o.stored_bytes = (uint64_t)INT64_MAX + 1;
	ck_assert_int_eq(meta_object_insert(db, &o), -EINVAL);
	ck_assert_int_eq(list_count(db, META_ANY, NULL, NULL, NULL, NULL), 0);

	/* lineage fields */
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(meta_lineage_insert(db, &l), -EINVAL);   /* empty id */
	snprintf(l.id, sizeof l.id, "eeee");
	l.wrapped_len = META_WRAPPED_MAX + 1;
	ck_assert_int_eq(meta_lineage_insert(db, &l), -EINVAL);
	ck_assert_int_eq(meta_lineage_get(db, longs, &l), -EINVAL);
	ck_assert_int_eq(meta_lineage_delete(db, NULL), -EINVAL);
	ck_assert_int_eq(meta_lineage_list(db, longs, NULL, NULL), -EINVAL);

	/* filters */
	memset(&f, 0, sizeof f);
	f.kind = (enum meta_kind)9;
	ck_assert_int_eq(meta_object_list(db, &f, NULL, NULL), -EINVAL);
	memset(&f, 0, sizeof f);
	f.project = longs;
	ck_assert_int_eq(meta_object_list(db, &f, NULL, NULL), -EINVAL);
	memset(&f, 0, sizeof f);
	f.parent_id = longs;
	ck_assert_int_eq(meta_object_list(db, &f, NULL, NULL), -EINVAL);

	/* settings */
	ck_assert_int_eq(meta_setting_set(db, "", "v"), -EINVAL);
	ck_assert_int_eq(meta_setting_set(db, longs, "v"), -EINVAL);
	ck_assert_int_eq(meta_setting_set(db, "n", NULL), -EINVAL);
	ck_assert_int_eq(meta_setting_get(db, "n", NULL, 8), -EINVAL);
	ck_assert_int_eq(meta_setting_get(db, "n", buf, 0), -EINVAL);
	meta_close(db);
}
END_TEST

START_TEST(test_missing_rows)
{
	struct meta_db *db = mem_open();
	const char *id = "00000000-0000-4000-8000-000000000000";
	struct meta_object o;
	struct meta_lineage l;
	char buf[8];

	ck_assert_int_eq(meta_object_get(db, id, &o), -ENOENT);
	ck_assert_int_eq(meta_object_lookup(db, META_IMAGE, "p", "n", &o), -ENOENT);
	ck_assert_int_eq(meta_object_delete(db, id), -ENOENT);
	ck_assert_int_eq(meta_object_set_size(db, id, 1), -ENOENT);
	ck_assert_int_eq(meta_object_set_encryption(db, id, 0, ""), -ENOENT);
	ck_assert_int_eq(meta_lineage_get(db, LIN_A, &l), -ENOENT);
	ck_assert_int_eq(meta_lineage_delete(db, LIN_A), -ENOENT);
	ck_assert_int_eq(meta_setting_get(db, "nope", buf, sizeof buf), -ENOENT);
	ck_assert_int_eq(meta_object_list(db, NULL, NULL, NULL), 0);
	ck_assert_int_eq(meta_lineage_list(db, NULL, NULL, NULL), 0);
	meta_close(db);
}
END_TEST

struct reenter {
	struct meta_db *db;
	int inner;
	int calls;
};

static int reenter_cb(void *ctx, const struct meta_object *o)
{
	struct reenter *r = ctx;

	r->calls++;
	r->inner = meta_object_get(r->db, o->id, NULL);
	return 0;
}

static int stop_negative(void *ctx, const struct meta_object *o)
{
	(void)ctx;
	(void)o;
	return -5;
}

START_TEST(test_callback_reentry)
{
	struct meta_db *db = mem_open_lineages();
	struct meta_db *other = mem_open();
	struct meta_object o;
	struct reenter r = { db, 0, 0 };

	obj_init(&o, META_VOLUME, "p", "v", LIN_A, KEY_A);
	ck_assert_int_eq(meta_object_insert(db, &o), 0);
	ck_assert_int_eq(meta_object_list(db, NULL, reenter_cb, &r), 1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.inner, -EDEADLK);
	/* another db may be used from the callback */
	r.db = other;
	ck_assert_int_eq(meta_object_list(db, NULL, reenter_cb, &r), 1);
	ck_assert_int_eq(r.inner, -ENOENT);
	/* and the guard is gone after the listing */
	ck_assert_int_eq(meta_object_get(db, o.id, NULL), 0);
	ck_assert_int_eq(meta_object_list(db, NULL, stop_negative, NULL), -5);
	meta_close(other);
	meta_close(db);
}
END_TEST

START_TEST(test_readonly_file)
{
	char dir[64], path[96];
	struct meta_db *db = NULL;

	if (geteuid() == 0)
		return;     /* root ignores file modes */
	tmpdir_make(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	ck_assert_int_eq(meta_open(&db, path, 1, NULL, NULL), 0);
	meta_close(db);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(meta_open(&db, path, 0, NULL, NULL), -EACCES);
	tmpdir_remove(dir);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *meta_suite(void)
{
	Suite *s = suite_create("meta");
	int lite = !pg_conninfo();      /* SQLite-file tests only without PostgreSQL */
	TCase *tc;

	tc = tcase_create("core");
	tcase_add_test(tc, test_open_memory);
	tcase_add_test(tc, test_object_roundtrip);
	tcase_add_test(tc, test_object_unique);
	tcase_add_test(tc, test_object_lineage_must_exist);
	tcase_add_test(tc, test_object_delete);
	tcase_add_test(tc, test_object_setters);
	tcase_add_test(tc, test_object_list_filters);
	tcase_add_test(tc, test_lineage_roundtrip);
	tcase_add_test(tc, test_lineage_delete);
	tcase_add_test(tc, test_settings);
	tcase_add_test(tc, test_transactions);
	tcase_add_test(tc, test_reopen_persists);
	tcase_add_test(tc, test_id_generate);
	tcase_add_test(tc, test_kind_name);
	tcase_add_test(tc, test_threads_memory);
	tcase_add_test(tc, test_threads_file);
	if (!lite)
		tcase_add_checked_fixture(tc, NULL, pg_drop_made);
	suite_add_tcase(s, tc);

	tc = tcase_create("immutability");
	tcase_add_test(tc, test_set_encryption_eperm);
	tcase_add_test(tc, test_encryption_consistency);
	if (lite)
		tcase_add_test(tc, test_raw_sql_refused);
	else
		tcase_add_test(tc, test_pg_raw_sql_refused);
	if (!lite)
		tcase_add_checked_fixture(tc, NULL, pg_drop_made);
	suite_add_tcase(s, tc);

	tc = tcase_create("migration");
	if (lite) {
		tcase_add_test(tc, test_create_file_mode);
		tcase_add_test(tc, test_missing_nocreate);
		tcase_add_test(tc, test_migrate_from_v0);
		tcase_add_test(tc, test_newer_version);
		tcase_add_test(tc, test_foreign_sqlite);
		tcase_add_test(tc, test_garbage_file);
		tcase_add_test(tc, test_truncated_file);
	} else {
		tcase_add_test(tc, test_pg_open);
		tcase_add_test(tc, test_pg_foreign_schema);
		tcase_add_test(tc, test_pg_concurrent_create);
	}
	tcase_add_test(tc, test_two_connections);
	tcase_add_test(tc, test_write_lock);
	tcase_add_test(tc, test_fresh_records);
	tcase_add_test(tc, test_fresh_backup_records);
	if (lite)
		tcase_add_test(tc, test_second_connection_keeps_locks);
	tcase_add_test(tc, test_rekey_records);
	if (!lite)
		tcase_add_checked_fixture(tc, NULL, pg_drop_made);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	if (lite)
		tcase_add_test(tc, test_errno_map);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_missing_rows);
	tcase_add_test(tc, test_callback_reentry);
	if (lite)
		tcase_add_test(tc, test_readonly_file);
	if (!lite)
		tcase_add_checked_fixture(tc, NULL, pg_drop_made);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (pg_conninfo())
		fprintf(stderr, "check_meta: catalogs in PostgreSQL schemas (EVFS_PG_CONNINFO is set);"
			" the SQLite-file tests are left out\n");
	sr = srunner_create(meta_suite());

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
