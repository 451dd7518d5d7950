// SPDX-License-Identifier: MIT
/*
 * meta_rekey.c - data-key generations of rekeyed lineages (R33).
 *
 * `lineages.wrapped` is the key every new chunk of the lineage is sealed
 * under.  A rekey replaces it while the old chunks still need the old key,
 * so for the rekey's duration the catalog holds both: the new one in
 * `lineages`, the old one here with its generation number.  The swap is
 * one transaction (a crash leaves either no rekey or a rekey whose rerun
 * resumes), and the end of the rekey clears the old blob: on SQLite with
 * secure_delete on and a WAL checkpoint, so it leaves the catalog file; on
 * PostgreSQL the old row version stays in the table's pages until VACUUM
 * reclaims it (the server's business, as its WAL is).
 * A lineage never rekeyed has no row and is generation 0: catalogs from
 * before schema 3 read unchanged.
 */
#include <errno.h>
#include <string.h>

#include "meta_int.h"

static int rekey_id_ok(const char *lineage)
{
	return lineage && strnlen(lineage, META_LINEAGE_LEN + 1) == META_LINEAGE_LEN;
}

/* Run st to completion unless binding its parameters failed (bind_err);
 * finalizes st either way. */
static int bound_run(struct meta_db *db, struct sqldb_stmt *st, int bind_err, const char *what)
{
	if (bind_err) {
		sqldb_finalize(st);
		return meta_sql_fail(db, bind_err, "bind");
	}
	return meta_run(db, st, what);
}

/* The row of lineage into out (gen 0, no old key if there is none). */
static int rekey_read(struct meta_db *db, const char *lineage, struct meta_rekey *out)
{
	struct sqldb_stmt *st;
	int rc, err;

	memset(out, 0, sizeof(*out));
	err = meta_prepare(db,
			   "SELECT k.gen, k.old_gen, k.old_wrapped, l.id IS NOT NULL FROM (SELECT ?1 AS id) AS q "
			   "LEFT JOIN lineages AS l ON l.id = q.id LEFT JOIN lineage_keys AS k ON k.lineage = q.id",
			   &st);
	if (err)
		return err;
	rc = sqldb_bind_text(st, 1, lineage, -1);
	if (!rc)
		rc = sqldb_step(st);
	if (rc != 1) {
		err = meta_sql_fail(db, rc, "get data-key generations");
	} else if (!sqldb_column_int64(st, 3)) {
		err = -ENOENT;
	} else if (sqldb_column_type(st, 0) != SQLDB_NULL) {
		int64_t gen = sqldb_column_int64(st, 0), old = sqldb_column_int64(st, 1);
		const void *w = sqldb_column_blob(st, 2);
		int n = sqldb_column_bytes(st, 2);

		if (gen <= 0 || gen > UINT32_MAX || old < 0 || old >= gen || n < 0 || (size_t)n > META_WRAPPED_MAX ||
		    (n > 0 && !w)) {
			err = -EUCLEAN;
		} else {
			out->gen = (uint32_t)gen;
			out->old_gen = (uint32_t)old;
			if (n)
				memcpy(out->old_wrapped, w, (size_t)n);
			out->old_wrapped_len = (size_t)n;
		}
	}
	sqldb_finalize(st);
	return err;
}

/* meta_rekey_get - see meta.h. */
int meta_rekey_get(struct meta_db *db, const char *lineage, struct meta_rekey *out)
{
	int err;

	if (!db || !rekey_id_ok(lineage) || !out)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = rekey_read(db, lineage, out);
	meta_db_leave(db);
	return err;
}

/* meta_rekey_begin - see meta.h. */
int meta_rekey_begin(struct meta_db *db, const char *lineage, const uint8_t *wrapped, size_t len, uint32_t *gen)
{
	static const char save[] =
		"INSERT INTO lineage_keys (lineage, gen, old_gen, old_wrapped) "
		"SELECT id, ?2, ?3, wrapped FROM lineages WHERE id = ?1 "
		"ON CONFLICT (lineage) DO UPDATE SET gen = excluded.gen, old_gen = excluded.old_gen, "
		"old_wrapped = excluded.old_wrapped";
	struct meta_rekey cur;
	struct sqldb_stmt *st;
	int err;

	if (!db || !rekey_id_ok(lineage) || !wrapped || !len || len > META_WRAPPED_MAX || !gen)
		return -EINVAL;
	err = meta_begin(db);
	if (err)
		return err;
	err = meta_db_enter(db);
	if (!err) {
		err = rekey_read(db, lineage, &cur);
		if (!err && cur.old_wrapped_len)
			err = -EALREADY;
		if (!err && cur.gen == UINT32_MAX)
			err = -EOVERFLOW;
		if (!err)
			err = meta_prepare(db, save, &st);
		if (!err) {
			err = sqldb_bind_text(st, 1, lineage, -1);
			if (!err)
				err = sqldb_bind_int64(st, 2, (int64_t)cur.gen + 1);
			if (!err)
				err = sqldb_bind_int64(st, 3, (int64_t)cur.gen);
			err = bound_run(db, st, err, "keep the old data key");
		}
		if (!err)
			err = meta_prepare(db, "UPDATE lineages SET wrapped = ?2 WHERE id = ?1", &st);
		if (!err) {
			err = sqldb_bind_text(st, 1, lineage, -1);
			if (!err)
				err = sqldb_bind_blob(st, 2, wrapped, (int)len);
			err = bound_run(db, st, err, "store the new data key");
		}
		meta_db_leave(db);
	}
	if (err) {
		meta_rollback(db);
		return err;
	}
	err = meta_commit(db);
	if (!err)
		*gen = cur.gen + 1;
	return err;
}

/* meta_rekey_end - see meta.h. */
int meta_rekey_end(struct meta_db *db, const char *lineage)
{
	struct sqldb_stmt *st;
	int err;

	if (!db || !rekey_id_ok(lineage))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "UPDATE lineage_keys SET old_wrapped = NULL, old_gen = 0 WHERE lineage = ?1", &st);
	if (!err) {
		err = bound_run(db, st, sqldb_bind_text(st, 1, lineage, -1), "destroy the old data key");
		if (!err)
			db->checkpoint_due = 1;
	}
	meta_db_leave(db);
	return err;
}
