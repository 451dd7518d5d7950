// SPDX-License-Identifier: MIT
/*
 * meta_fresh.c - the catalog's freshness record of each format 2 pool.
 *
 * A format 2 pool authenticates itself from the inside: every page is
 * checked against its parent's hash, every root record against the
 * header.  What it cannot see from the inside is a whole pool directory
 * put back from an older, self-consistent copy.  The catalog can: after
 * every commit the engine hands the store the pool's generation and the
 * hash of its header block, and they are kept here, one row per lineage.
 * Opening a pool whose files are older than this row is refused.
 *
 * The row is written after the pool's commit is durable and never before,
 * so the catalog can lag the pool (a crash between the two, or a write
 * that found the catalog busy) but never lead it; a pool ahead of its row
 * is the normal after-crash case and simply moves the row forward.  That
 * is why these writes need no fsync of their own (SQLite's
 * synchronous=NORMAL, or a PostgreSQL server's own settings): a row lost to
 * a power cut is a lag, never a false alarm.
 *
 * The rows hang off `lineages` (ON DELETE CASCADE), so a lineage's record
 * goes when the lineage does.
 */
#include <errno.h>
#include <string.h>

#include "meta_int.h"

static int fresh_id_ok(const char *lineage)
{
	return lineage && strnlen(lineage, META_LINEAGE_LEN + 1) == META_LINEAGE_LEN;
}

/* meta_fresh_get - 0 and *gen, hash filled; -ENOENT (no record yet),
 * -EUCLEAN (a damaged row), -EINVAL. */
int meta_fresh_get(struct meta_db *db, const char *lineage, uint64_t *gen, uint8_t hash[static 32])
{
	struct sqldb_stmt *st;
	int rc, err;

	if (!db || !fresh_id_ok(lineage))
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "SELECT gen, hash FROM pool_fresh WHERE lineage = ?1", &st);
	if (!err) {
		rc = sqldb_bind_text(st, 1, lineage, -1);
		if (!rc)
			rc = sqldb_step(st);
		if (rc == 1) {
			const void *h = sqldb_column_blob(st, 1);

			if (sqldb_column_bytes(st, 1) != 32 || !h || sqldb_column_int64(st, 0) < 0) {
				err = -EUCLEAN;
			} else {
				*gen = (uint64_t)sqldb_column_int64(st, 0);
				memcpy(hash, h, 32);
			}
		} else {
			err = rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "get pool freshness");
		}
		sqldb_finalize(st);
	}
	meta_db_leave(db);
	return err;
}

/* meta_fresh_set - record (gen, hash) for lineage: only forward (a lower
 * or equal generation leaves the row as it is) unless `force`.  0,
 * -ENOENT (no such lineage), -EBUSY (the catalog is locked and the
 * connection does not wait), -EINVAL. */
int meta_fresh_set(struct meta_db *db, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force)
{
	static const char fwd[] =
		"INSERT INTO pool_fresh (lineage, gen, hash) VALUES (?1, ?2, ?3) ON CONFLICT (lineage) DO UPDATE "
		"SET gen = excluded.gen, hash = excluded.hash WHERE excluded.gen > pool_fresh.gen";
	static const char any[] =
		"INSERT INTO pool_fresh (lineage, gen, hash) VALUES (?1, ?2, ?3) ON CONFLICT (lineage) DO UPDATE "
		"SET gen = excluded.gen, hash = excluded.hash";
	struct sqldb_stmt *st;
	int err;

	if (!db || !fresh_id_ok(lineage) || gen > INT64_MAX)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, force ? any : fwd, &st);
	if (!err) {
		err = sqldb_bind_text(st, 1, lineage, -1);
		if (!err)
			err = sqldb_bind_int64(st, 2, (int64_t)gen);
		if (!err)
			err = sqldb_bind_blob(st, 3, hash, 32);
		if (err) {
			err = meta_sql_fail(db, err, "bind");
			sqldb_finalize(st);
		} else {
			err = meta_run(db, st, "record pool freshness");
		}
	}
	meta_db_leave(db);
	return err;
}

/* Backups.  A backup file never changes but when its key copy is
 * re-wrapped or a deleted parent's records are merged into it; the catalog
 * keeps the checksum of its header (which binds its index, which binds its
 * records) as of the last such change, so a backup file put back from an
 * older copy, or replaced by another backup's file with the id edited in,
 * is refused.  Around a rewrite the sum is NULL (unknown until the file is
 * written; a crash there must not make the file look tampered with), and
 * the next reader records what it finds.  The row goes with the object
 * (ON DELETE CASCADE). */

/* meta_fresh_backup_get - 0 and sum filled; -ENODATA (the sum is being
 * rewritten), -ENOENT (no record: a backup from before schema 3),
 * -EUCLEAN, -EINVAL. */
int meta_fresh_backup_get(struct meta_db *db, const char *id, uint8_t sum[static 32])
{
	struct sqldb_stmt *st;
	int rc, err;

	if (!db || !id || strnlen(id, META_ID_LEN + 1) > META_ID_LEN)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "SELECT sum FROM backup_fresh WHERE id = ?1", &st);
	if (!err) {
		rc = sqldb_bind_text(st, 1, id, -1);
		if (!rc)
			rc = sqldb_step(st);
		if (rc == 1) {
			const void *h = sqldb_column_blob(st, 0);

			if (sqldb_column_type(st, 0) == SQLDB_NULL)
				err = -ENODATA;
			else if (sqldb_column_bytes(st, 0) != 32 || !h)
				err = -EUCLEAN;
			else
				memcpy(sum, h, 32);
		} else {
			err = rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "get backup freshness");
		}
		sqldb_finalize(st);
	}
	meta_db_leave(db);
	return err;
}

/* meta_fresh_backup_set - record sum (NULL: being rewritten) for backup
 * object id.  0, -ENOENT (no such object), -EINVAL. */
int meta_fresh_backup_set(struct meta_db *db, const char *id, const uint8_t *sum)
{
	struct sqldb_stmt *st;
	int err;

	if (!db || !id || strnlen(id, META_ID_LEN + 1) > META_ID_LEN)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "INSERT INTO backup_fresh (id, sum) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET sum = "
			       "excluded.sum", &st);
	if (!err) {
		err = sqldb_bind_text(st, 1, id, -1);
		if (!err)
			err = sum ? sqldb_bind_blob(st, 2, sum, 32) : sqldb_bind_null(st, 2);
		if (err) {
			err = meta_sql_fail(db, err, "bind");
			sqldb_finalize(st);
		} else {
			err = meta_run(db, st, "record backup freshness");
		}
	}
	meta_db_leave(db);
	return err;
}
