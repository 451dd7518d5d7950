/* SPDX-License-Identifier: MIT */
/*
 * meta_object.c - catalog rows: lineages and objects.
 *
 * A lineage is the owner of one data key.  Its row holds the encryption
 * attribute, the id of the master key that wraps the DK, and the wrapped DK
 * blob as kms/ returned it (at most META_WRAPPED_MAX bytes, never
 * plaintext).  Objects - volumes, snapshots, backups, images - name their
 * lineage; copy-on-write relatives share one, which is why chunks are bound
 * to the lineage and not to one volume.  An object with an empty lineage is
 * stored with lineage NULL (no data key, no reference).
 *
 * Invariants, all enforced by the schema (meta.c) rather than by this code,
 * so that they also bind other connections:
 *   - name is unique per (project, kind): a duplicate gives -EEXIST;
 *   - a referenced lineage exists (foreign key): -ENOENT on insert, and a
 *     lineage still referenced cannot be deleted: -EBUSY;
 *   - encrypted = 0 goes with key_id = '' and encrypted = 1 with a key id;
 *   - encrypted, key_id and lineage never change after insert (trigger):
 *     -EPERM.
 * This file validates arguments first (so that bad input is -EINVAL, not a
 * CHECK failure), binds every value as a parameter - SQL text is only ever
 * assembled from constant fragments - and copies text columns back with
 * bounds checks: a row whose text does not fit the struct field, or whose
 * numbers are out of range, is -EUCLEAN (someone else wrote it).
 *
 * Struct text fields must be NUL-terminated within their arrays; string
 * arguments must fit the matching field.  Out-parameters are written only on
 * success, and may be NULL where only existence matters.
 *
 * Every function takes db->lock through meta_db_enter() and so is safe to call
 * from any thread; list callbacks run with the lock held and must not call
 * into the same db (they would get -EDEADLK).
 */
#include "meta/meta_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define OBJ_COLS "id, kind, name, project, owner_uid, size, encrypted, key_id, lineage," \
	" source, parent_id, vol_type, created, attached, incremental, stored_bytes, location, attached_host, attached_at"
#define LIN_COLS "id, encrypted, key_id, wrapped, created"

/* ---- helpers ----------------------------------------------------------- */

/* s is a string of fewer than cap bytes (cap counts the NUL). */
static int text_fits(const char *s, size_t cap)
{
	return s && strnlen(s, cap) < cap;
}

#define FIELD_OK(f) text_fits((f), sizeof(f))

/* Binds parameters in order; after the first failure it does nothing.
 * sqldb copies every value, so the arguments may go at once. */
struct binder {
	struct sqldb_stmt *st;
	int idx;
	int err;
};

static void bind_text(struct binder *b, const char *s)
{
	if (!b->err)
		b->err = sqldb_bind_text(b->st, ++b->idx, s, -1);
}

static void bind_text_or_null(struct binder *b, const char *s)
{
	if (!b->err)
		b->err = *s ? sqldb_bind_text(b->st, ++b->idx, s, -1) : sqldb_bind_null(b->st, ++b->idx);
}

static void bind_int(struct binder *b, int64_t v)
{
	if (!b->err)
		b->err = sqldb_bind_int64(b->st, ++b->idx, v);
}

static void bind_blob(struct binder *b, const uint8_t *p, size_t len)
{
	if (!b->err)
		b->err = len ? sqldb_bind_blob(b->st, ++b->idx, p, (int)len) : sqldb_bind_null(b->st, ++b->idx);
}

/* Copy a text column into dst[cap]; NULL reads as "". */
static int col_text(struct sqldb_stmt *st, int i, char *dst, size_t cap)
{
	const char *t = sqldb_column_text(st, i);
	int n = sqldb_column_bytes(st, i);

	if (!t) {
		if (sqldb_column_type(st, i) != SQLDB_NULL)
			return -ENOMEM;
		dst[0] = '\0';
		return 0;
	}
	if (n < 0 || (size_t)n >= cap || memchr(t, '\0', (size_t)n))
		return -EUCLEAN;
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return 0;
}

#define COL_TEXT(st, i, f) col_text((st), (i), (f), sizeof(f))

static int col_u64(struct sqldb_stmt *st, int i, uint64_t *v)
{
	int64_t x = sqldb_column_int64(st, i);

	if (x < 0)
		return -EUCLEAN;
	*v = (uint64_t)x;
	return 0;
}

static int col_bool(struct sqldb_stmt *st, int i, int *v)
{
	int64_t x = sqldb_column_int64(st, i);

	if (x != 0 && x != 1)
		return -EUCLEAN;
	*v = (int)x;
	return 0;
}

/* Prepare sql and bind the one text parameter id. */
static int prepare_id(struct meta_db *db, const char *sql, const char *id, struct sqldb_stmt **st)
{
	int err = meta_prepare(db, sql, st);

	if (err)
		return err;
	err = sqldb_bind_text(*st, 1, id, -1);
	if (err) {
		sqldb_finalize(*st);
		*st = NULL;
		return meta_sql_fail(db, err, "bind");
	}
	return 0;
}

/* Run a one-row UPDATE/DELETE whose last parameter is the id; -ENOENT if it
 * touched nothing. */
static int run_one(struct meta_db *db, struct sqldb_stmt *st, struct binder *b, const char *what)
{
	int err;

	if (b->err) {
		err = meta_sql_fail(db, b->err, "bind");
		sqldb_finalize(st);
		return err;
	}
	err = meta_run(db, st, what);
	if (!err && sqldb_changes(db->conn) == 0)
		err = -ENOENT;
	return err;
}

/* ---- lineages ---------------------------------------------------------- */

static int lineage_read(struct sqldb_stmt *st, struct meta_lineage *l)
{
	const void *p;
	int n, err;

	memset(l, 0, sizeof *l);
	err = COL_TEXT(st, 0, l->id);
	if (!err)
		err = col_bool(st, 1, &l->encrypted);
	if (!err)
		err = COL_TEXT(st, 2, l->key_id);
	if (err)
		return err;
	p = sqldb_column_blob(st, 3);
	n = sqldb_column_bytes(st, 3);
	if (n < 0 || (size_t)n > META_WRAPPED_MAX)
		return -EUCLEAN;
	if (n > 0) {
		if (!p)
			return -ENOMEM;
		memcpy(l->wrapped, p, (size_t)n);
	}
	l->wrapped_len = (size_t)n;
	l->created = sqldb_column_int64(st, 4);
	return 0;
}

/* meta_lineage_insert - add a lineage.  0, -EEXIST (id taken), -EINVAL (empty
 * or over-long id or key id, key id inconsistent with encrypted, wrapped_len
 * over META_WRAPPED_MAX). */
int meta_lineage_insert(struct meta_db *db, const struct meta_lineage *l)
{
	struct binder b = { 0 };
	int err;

	if (!db || !l || !FIELD_OK(l->id) || !l->id[0] || !FIELD_OK(l->key_id) ||
	    (l->encrypted != 0 && l->encrypted != 1) || (l->encrypted != 0) != (l->key_id[0] != 0) ||
	    l->wrapped_len > META_WRAPPED_MAX)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "INSERT INTO lineages (" LIN_COLS ") VALUES (?, ?, ?, ?, ?)", &b.st);
	if (!err) {
		bind_text(&b, l->id);
		bind_int(&b, l->encrypted);
		bind_text(&b, l->key_id);
		bind_blob(&b, l->wrapped, l->wrapped_len);
		bind_int(&b, l->created);
		if (b.err) {
			err = meta_sql_fail(db, b.err, "bind");
			sqldb_finalize(b.st);
		} else {
			err = meta_run(db, b.st, "insert lineage");
		}
	}
	meta_db_leave(db);
	return err;
}

/* meta_lineage_get - 0 and *out filled (out may be NULL), -ENOENT, -EINVAL. */
int meta_lineage_get(struct meta_db *db, const char *id, struct meta_lineage *out)
{
	struct meta_lineage l;
	struct sqldb_stmt *st;
	int rc, err;

	if (!db || !text_fits(id, META_LINEAGE_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = prepare_id(db, "SELECT " LIN_COLS " FROM lineages WHERE id = ?1", id, &st);
	if (!err) {
		rc = sqldb_step(st);
		if (rc == 1)
			err = lineage_read(st, &l);
		else
			err = rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "get lineage");
		sqldb_finalize(st);
	}
	meta_db_leave(db);
	if (!err && out)
		*out = l;
	return err;
}

/* meta_lineage_set_wrapped - replace the wrapped DK (1..META_WRAPPED_MAX
 * bytes).  0, -ENOENT, -EINVAL.  The WAL is checkpointed afterwards (at the
 * outermost commit inside a transaction) so the old blob leaves the log. */
int meta_lineage_set_wrapped(struct meta_db *db, const char *id, const uint8_t *wrapped, size_t len)
{
	struct binder b = { 0 };
	int err;

	if (!db || !text_fits(id, META_LINEAGE_LEN + 1) || !wrapped || len == 0 ||
	    len > META_WRAPPED_MAX)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "UPDATE lineages SET wrapped = ?1 WHERE id = ?2", &b.st);
	if (!err) {
		bind_blob(&b, wrapped, len);
		bind_text(&b, id);
		err = run_one(db, b.st, &b, "set wrapped key");
		if (!err)
			db->checkpoint_due = 1;
	}
	meta_db_leave(db);
	return err;
}

/* meta_lineage_delete - 0, -ENOENT, -EBUSY (objects still reference it). */
int meta_lineage_delete(struct meta_db *db, const char *id)
{
	struct sqldb_stmt *st;
	int rc, err;

	if (!db || !text_fits(id, META_LINEAGE_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = prepare_id(db, "SELECT 1 FROM objects WHERE lineage = ?1 LIMIT 1", id, &st);
	if (err)
		goto out;
	rc = sqldb_step(st);
	sqldb_finalize(st);
	if (rc == 1) {
		err = -EBUSY;
		goto out;
	}
	if (rc < 0) {
		err = meta_sql_fail(db, rc, "check lineage use");
		goto out;
	}
	err = prepare_id(db, "DELETE FROM lineages WHERE id = ?1", id, &st);
	if (err)
		goto out;
	/* A DELETE fails with -ENOENT only on the foreign key: another
	 * process or host added a reference meanwhile. */
	err = meta_run(db, st, "delete lineage");
	if (err == -ENOENT)
		err = -EBUSY;
	else if (!err && sqldb_changes(db->conn) == 0)
		err = -ENOENT;
	if (!err)
		db->checkpoint_due = 1;
out:
	meta_db_leave(db);
	return err;
}

/* meta_lineage_list - call cb for every lineage (or those of key_id), ordered
 * by creation time then id.  Returns the count, cb's first non-zero return,
 * or a negative errno.  cb may be NULL (count only). */
int meta_lineage_list(struct meta_db *db, const char *key_id, meta_lineage_cb cb, void *ctx)
{
	const struct meta_db *saved;
	struct meta_lineage l;
	struct sqldb_stmt *st;
	int rc, err, count = 0;

	if (!db || (key_id && !text_fits(key_id, META_KEYID_LEN + 1)))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	if (key_id)
		err = prepare_id(db, "SELECT " LIN_COLS " FROM lineages WHERE key_id = ?1"
				 " ORDER BY created, id", key_id, &st);
	else
		err = meta_prepare(db, "SELECT " LIN_COLS " FROM lineages ORDER BY created, id", &st);
	if (err)
		goto out;
	while ((rc = sqldb_step(st)) == 1) {
		err = lineage_read(st, &l);
		if (err)
			break;
		count++;
		if (!cb)
			continue;
		saved = meta_cb_db;
		meta_cb_db = db;
		err = cb(ctx, &l);
		meta_cb_db = saved;
		if (err)
			break;
	}
	if (!err && rc < 0)
		err = meta_sql_fail(db, rc, "list lineages");
	sqldb_finalize(st);
out:
	meta_db_leave(db);
	return err ? err : count;
}

/* ---- objects ----------------------------------------------------------- */

static int object_read(struct sqldb_stmt *st, struct meta_object *o)
{
	uint64_t uid;
	int64_t kind;
	int err;

	memset(o, 0, sizeof *o);
	kind = sqldb_column_int64(st, 1);
	if (kind < META_VOLUME || kind > META_IMAGE)
		return -EUCLEAN;
	o->kind = (enum meta_kind)kind;
	err = COL_TEXT(st, 0, o->id);
	if (!err)
		err = COL_TEXT(st, 2, o->name);
	if (!err)
		err = COL_TEXT(st, 3, o->project);
	if (!err)
		err = col_u64(st, 4, &uid);
	if (!err && uid > UINT32_MAX)
		err = -EUCLEAN;
	if (!err)
		err = col_u64(st, 5, &o->size);
	if (!err)
		err = col_bool(st, 6, &o->encrypted);
	if (!err)
		err = COL_TEXT(st, 7, o->key_id);
	if (!err)
		err = COL_TEXT(st, 8, o->lineage);
	if (!err)
		err = COL_TEXT(st, 9, o->source);
	if (!err)
		err = COL_TEXT(st, 10, o->parent_id);
	if (!err)
		err = COL_TEXT(st, 11, o->vol_type);
	if (!err)
		err = col_bool(st, 13, &o->attached);
	if (!err)
		err = col_bool(st, 14, &o->incremental);
	if (!err)
		err = col_u64(st, 15, &o->stored_bytes);
	if (!err)
		err = COL_TEXT(st, 16, o->location);
	if (!err)
		err = COL_TEXT(st, 17, o->attached_host);
	if (!err)
		o->attached_at = sqldb_column_int64(st, 18);
	if (err)
		return err;
	o->owner_uid = (uint32_t)uid;
	o->created = sqldb_column_int64(st, 12);
	return 0;
}

static int object_valid(const struct meta_object *o)
{
	return FIELD_OK(o->id) && o->id[0] && (int)o->kind >= META_VOLUME && (int)o->kind <= META_IMAGE &&
	       FIELD_OK(o->name) && o->name[0] && FIELD_OK(o->project) &&
	       o->size <= INT64_MAX && (o->encrypted == 0 || o->encrypted == 1) &&
	       FIELD_OK(o->key_id) && (o->encrypted != 0) == (o->key_id[0] != 0) &&
	       FIELD_OK(o->lineage) && FIELD_OK(o->source) && FIELD_OK(o->parent_id) &&
	       FIELD_OK(o->vol_type) && o->stored_bytes <= INT64_MAX && FIELD_OK(o->location) &&
	       FIELD_OK(o->attached_host);
}

/* meta_object_insert - add an object.  0, -EEXIST (id taken, or name taken
 * for that kind in that project), -ENOENT (lineage missing), -EINVAL (empty
 * id or name, bad kind, unterminated field, key id inconsistent with
 * encrypted, size or stored_bytes over INT64_MAX).  attached and
 * incremental are stored as 0/1. */
int meta_object_insert(struct meta_db *db, const struct meta_object *o)
{
	struct binder b = { 0 };
	int err;

	if (!db || !o || !object_valid(o))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "INSERT INTO objects (" OBJ_COLS ") VALUES"
			   " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &b.st);
	if (!err) {
		bind_text(&b, o->id);
		bind_int(&b, o->kind);
		bind_text(&b, o->name);
		bind_text(&b, o->project);
		bind_int(&b, o->owner_uid);
		bind_int(&b, (int64_t)o->size);
		bind_int(&b, o->encrypted);
		bind_text(&b, o->key_id);
		bind_text_or_null(&b, o->lineage);
		bind_text(&b, o->source);
		bind_text(&b, o->parent_id);
		bind_text(&b, o->vol_type);
		bind_int(&b, o->created);
		bind_int(&b, o->attached != 0);
		bind_int(&b, o->incremental != 0);
		bind_int(&b, (int64_t)o->stored_bytes);
		bind_text(&b, o->location);
		bind_text(&b, o->attached ? o->attached_host : "");
		bind_int(&b, o->attached ? o->attached_at : 0);
		if (b.err) {
			err = meta_sql_fail(db, b.err, "bind");
			sqldb_finalize(b.st);
		} else {
			err = meta_run(db, b.st, "insert object");
		}
	}
	meta_db_leave(db);
	return err;
}

/* Step a prepared single-row SELECT of OBJ_COLS; finalizes st. */
static int object_fetch(struct meta_db *db, struct sqldb_stmt *st, struct binder *b,
			struct meta_object *out)
{
	struct meta_object o;
	int rc, err;

	if (b->err) {
		err = meta_sql_fail(db, b->err, "bind");
	} else {
		rc = sqldb_step(st);
		if (rc == 1)
			err = object_read(st, &o);
		else
			err = rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "get object");
	}
	sqldb_finalize(st);
	if (!err && out)
		*out = o;
	return err;
}

/* meta_object_get - 0 and *out filled (out may be NULL), -ENOENT, -EINVAL. */
int meta_object_get(struct meta_db *db, const char *id, struct meta_object *out)
{
	struct binder b = { 0 };
	int err;

	if (!db || !text_fits(id, META_ID_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "SELECT " OBJ_COLS " FROM objects WHERE id = ?", &b.st);
	if (!err) {
		bind_text(&b, id);
		err = object_fetch(db, b.st, &b, out);
	}
	meta_db_leave(db);
	return err;
}

/* meta_object_lookup - find by (kind, project, name); kind must not be
 * META_ANY.  0 and *out filled (out may be NULL), -ENOENT, -EINVAL. */
int meta_object_lookup(struct meta_db *db, enum meta_kind kind, const char *project, const char *name,
		       struct meta_object *out)
{
	struct binder b = { 0 };
	int err;

	if (!db || (int)kind < META_VOLUME || (int)kind > META_IMAGE ||
	    !text_fits(project, META_PROJECT_MAX) || !text_fits(name, META_NAME_MAX))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "SELECT " OBJ_COLS " FROM objects"
			   " WHERE project = ? AND kind = ? AND name = ?", &b.st);
	if (!err) {
		bind_text(&b, project);
		bind_int(&b, kind);
		bind_text(&b, name);
		err = object_fetch(db, b.st, &b, out);
	}
	meta_db_leave(db);
	return err;
}

/* meta_object_list - see meta.h.  f may be NULL (everything), cb may be NULL
 * (count only).  An empty f->lineage selects objects without a lineage.
 * -EINVAL for a bad kind or an over-long filter string. */
int meta_object_list(struct meta_db *db, const struct meta_filter *f, meta_object_cb cb, void *ctx)
{
	static const struct meta_filter none = { META_ANY, NULL, NULL, NULL, NULL };
	const struct meta_db *saved;
	struct binder b = { 0 };
	struct meta_object o;
	char sql[sizeof("SELECT " OBJ_COLS " FROM objects WHERE 1 = 1") + 200];
	int rc, n, err, count = 0;

	if (!f)
		f = &none;
	if (!db || (int)f->kind < META_ANY || (int)f->kind > META_IMAGE ||
	    (f->project && !text_fits(f->project, META_PROJECT_MAX)) ||
	    (f->key_id && !text_fits(f->key_id, META_KEYID_LEN + 1)) ||
	    (f->lineage && !text_fits(f->lineage, META_LINEAGE_LEN + 1)) ||
	    (f->parent_id && !text_fits(f->parent_id, META_ID_LEN + 1)))
		return -EINVAL;
	/* Constant fragments only; every value is a bound parameter. */
	n = snprintf(sql, sizeof sql, "SELECT " OBJ_COLS " FROM objects WHERE 1 = 1%s%s%s%s%s"
		     " ORDER BY kind, name, project",
		     f->kind != META_ANY ? " AND kind = ?" : "",
		     f->project ? " AND project = ?" : "",
		     f->key_id ? " AND key_id = ?" : "",
		     !f->lineage ? "" : f->lineage[0] ? " AND lineage = ?" : " AND lineage IS NULL",
		     f->parent_id ? " AND parent_id = ?" : "");
	if (n < 0 || (size_t)n >= sizeof sql)
		return -EINVAL;     /* cannot happen: sql is sized for all fragments */
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, sql, &b.st);
	if (err)
		goto out;
	if (f->kind != META_ANY)
		bind_int(&b, f->kind);
	if (f->project)
		bind_text(&b, f->project);
	if (f->key_id)
		bind_text(&b, f->key_id);
	if (f->lineage && f->lineage[0])
		bind_text(&b, f->lineage);
	if (f->parent_id)
		bind_text(&b, f->parent_id);
	if (b.err) {
		err = meta_sql_fail(db, b.err, "bind");
		sqldb_finalize(b.st);
		goto out;
	}
	while ((rc = sqldb_step(b.st)) == 1) {
		err = object_read(b.st, &o);
		if (err)
			break;
		count++;
		if (!cb)
			continue;
		saved = meta_cb_db;
		meta_cb_db = db;
		err = cb(ctx, &o);
		meta_cb_db = saved;
		if (err)
			break;
	}
	if (!err && rc < 0)
		err = meta_sql_fail(db, rc, "list objects");
	sqldb_finalize(b.st);
out:
	meta_db_leave(db);
	return err ? err : count;
}

/* meta_object_delete - 0, -ENOENT, -EINVAL. */
int meta_object_delete(struct meta_db *db, const char *id)
{
	struct binder b = { 0 };
	int err;

	if (!db || !text_fits(id, META_ID_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "DELETE FROM objects WHERE id = ?", &b.st);
	if (!err) {
		bind_text(&b, id);
		err = run_one(db, b.st, &b, "delete object");
	}
	meta_db_leave(db);
	return err;
}

/* UPDATE objects SET <column> = value WHERE id = ?; text if text != NULL,
 * else num.  0, -ENOENT, -EINVAL. */
static int object_update(struct meta_db *db, const char *sql, const char *id, const char *text,
			 int64_t num)
{
	struct binder b = { 0 };
	int err;

	if (!db || !text_fits(id, META_ID_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, sql, &b.st);
	if (!err) {
		if (text)
			bind_text(&b, text);
		else
			bind_int(&b, num);
		bind_text(&b, id);
		err = run_one(db, b.st, &b, "update object");
	}
	meta_db_leave(db);
	return err;
}

/* meta_object_set_size - 0, -ENOENT, -EINVAL (size over INT64_MAX). */
int meta_object_set_size(struct meta_db *db, const char *id, uint64_t size)
{
	if (size > INT64_MAX)
		return -EINVAL;
	return object_update(db, "UPDATE objects SET size = ? WHERE id = ?", id, NULL, (int64_t)size);
}

/* meta_object_set_attached - see meta.h.  When no row changed, the
 * object's existence tells -ENOENT from -EBUSY. */
int meta_object_set_attached(struct meta_db *db, const char *id, int attached, const char *host)
{
	static const char claim[] = "UPDATE objects SET attached = 1, attached_host = ?1, attached_at = CASE"
				    " WHEN attached = 1 AND attached_host = ?1 THEN attached_at ELSE ?3 END WHERE id = ?2"
				    " AND (attached = 0 OR attached_host = '' OR attached_host = ?1)";
	static const char release[] = "UPDATE objects SET attached = 0, attached_host = '', attached_at = 0 WHERE id = ?2"
				      " AND (CAST(?1 AS TEXT) IS NULL OR attached = 0 OR attached_host = '' OR attached_host = ?1)";
	struct binder b = { 0 };
	int err;

	if (!db || !text_fits(id, META_ID_LEN + 1) || (host && !text_fits(host, META_HOST_MAX)) ||
	    (attached && !host))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, attached ? claim : release, &b.st);
	if (!err) {
		if (host)
			bind_text(&b, host);
		else if (!b.err)
			b.err = sqldb_bind_null(b.st, ++b.idx);
		bind_text(&b, id);
		if (attached)
			bind_int(&b, (int64_t)time(NULL));
		err = run_one(db, b.st, &b, attached ? "claim volume" : "release volume");
	}
	if (err == -ENOENT) {
		struct sqldb_stmt *st;

		err = meta_prepare(db, "SELECT 1 FROM objects WHERE id = ?1", &st);
		if (!err) {
			int rc = sqldb_bind_text(st, 1, id, -1);

			if (!rc)
				rc = sqldb_step(st);
			err = rc == 1 ? -EBUSY : rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "find volume");
			sqldb_finalize(st);
		}
	}
	meta_db_leave(db);
	return err;
}

/* meta_object_set_stored - 0, -ENOENT, -EINVAL (bytes over INT64_MAX). */
int meta_object_set_stored(struct meta_db *db, const char *id, uint64_t bytes)
{
	if (bytes > INT64_MAX)
		return -EINVAL;
	return object_update(db, "UPDATE objects SET stored_bytes = ? WHERE id = ?", id, NULL,
			     (int64_t)bytes);
}

/* meta_object_set_parent - parent_id NULL or "" clears it.  0, -ENOENT,
 * -EINVAL. */
int meta_object_set_parent(struct meta_db *db, const char *id, const char *parent_id)
{
	if (!parent_id)
		parent_id = "";
	if (!text_fits(parent_id, META_ID_LEN + 1))
		return -EINVAL;
	return object_update(db, "UPDATE objects SET parent_id = ? WHERE id = ?", id, parent_id, 0);
}

/* meta_object_set_encryption - see meta.h: the UPDATE goes to the schema,
 * whose trigger refuses any change (-EPERM); an "update" to the values the
 * object already has changes nothing and is refused with -EPERM as well, so
 * the answer for an existing object is always -EPERM.  -ENOENT if there is
 * no such object, -EINVAL for bad arguments (key_id NULL means ""). */
int meta_object_set_encryption(struct meta_db *db, const char *id, int encrypted, const char *key_id)
{
	struct binder b = { 0 };
	int err;

	if (!key_id)
		key_id = "";
	if (!db || !text_fits(id, META_ID_LEN + 1) || (encrypted != 0 && encrypted != 1) ||
	    !text_fits(key_id, META_KEYID_LEN + 1))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "UPDATE objects SET encrypted = ?, key_id = ? WHERE id = ?", &b.st);
	if (!err) {
		bind_int(&b, encrypted);
		bind_text(&b, key_id);
		bind_text(&b, id);
		err = run_one(db, b.st, &b, "set encryption");
		if (!err) {
			meta_logf(db, LOG_DEBUG, "catalog: encryption attribute of %s is immutable", id);
			err = -EPERM;
		}
	}
	meta_db_leave(db);
	return err;
}
