/* SPDX-License-Identifier: MIT */
/*
 * meta.c - the catalog connection: open and close, locking, transactions,
 * settings, ids, and the one SQLite-to-errno translation.
 *
 * The catalog is one SQLite file, STORE/catalog.db, written only by this
 * module.  It holds three tables:
 *
 *   settings  name -> value; the row ('catalog.magic', 'evfs-catalog') marks
 *             the file as ours and a trigger keeps it from being changed.
 *   lineages  one row per data key (DK): whether it is encrypted, the id of
 *             the customer master key that wraps it and the *wrapped* DK
 *             blob that kms/ produced.  No plaintext key ever reaches us.
 *   objects   volumes, snapshots, backups and images, each naming the
 *             lineage whose DK encrypts its chunks.
 *
 * The encryption attribute (encrypted, key_id, lineage) of an object, and
 * (encrypted, key_id) of a lineage, are immutable.  That rule lives in the
 * schema (meta_schema.c, which also owns versions, migrations and the checks
 * that refuse foreign or damaged files with -EUCLEAN), so it holds for every
 * connection and code path; meta_errno() turns the trigger failure into
 * -EPERM.  Rows are read and written in meta_object.c.
 *
 * Connection settings: WAL journal (not for ":memory:"), foreign keys on,
 * secure_delete on (deleted wrapped keys are overwritten; the WAL is
 * checkpointed after a wrapped key is replaced or deleted), synchronous
 * NORMAL, a 5 s busy timeout, extended result codes, defensive mode and no
 * trusted schema.  A file we create is created mode 0600 by open(2) before
 * SQLite sees it; SQLite gives its -wal and -shm files the same mode.
 *
 * Threads.  One connection per struct meta_db, serialised by db->lock.  A
 * transaction (meta_begin .. meta_commit/meta_rollback) belongs to the thread
 * that began it: other threads' calls wait on db->idle until it ends, so
 * their statements never land inside someone else's transaction.  Nested
 * meta_begin calls use savepoints, so an inner rollback undoes only the inner
 * work; only the outermost commit is durable.  If SQLite abandons a
 * transaction after an error (SQLITE_FULL, I/O errors), the module marks it
 * aborted: further calls by its thread fail with -EIO until the outermost
 * rollback or commit.  List callbacks run with the lock held; a callback
 * that calls back into the same db gets -EDEADLK instead of hanging.
 *
 * Logging.  The module never prints.  It reports through the optional
 * meta_log_fn given to meta_open, with syslog(3) levels (LOG_ERR,
 * LOG_WARNING, LOG_INFO, LOG_DEBUG), while holding db->lock: the log
 * callback must not call into the same db.  Messages carry SQLite's error
 * text and file paths, never key material.
 *
 * Deliberately not here: anything about keys beyond storing opaque blobs
 * (kms/), any policy about which object may derive from which (fs/).
 */
#include "meta/meta_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define META_BUSY_MS 5000
#define SETTING_NAME_MAX 128u    /* buffer sizes, including the NUL */
#define SETTING_VALUE_MAX 4096u

_Thread_local const struct meta_db *meta_cb_db;

/* ---- errors and logging ------------------------------------------------ */

/* meta_errno - translate an SQLite (extended) result code to 0 or a negative
 * errno.  The only such translation in evfs.  Cannot fail. */
int meta_errno(int rc)
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
		return -EPERM;      /* an immutability trigger refused */
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

void meta_logf(struct meta_db *db, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!db->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	db->log(db->log_ctx, level, msg);
}

int meta_sql_fail(struct meta_db *db, int rc, const char *what)
{
	int err = meta_errno(rc);
	int level = (rc & 0xff) == SQLITE_CONSTRAINT ? LOG_DEBUG : LOG_ERR;

	meta_logf(db, level, "catalog: %s: %s (sqlite %d)", what,
		  db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc), rc);
	return err ? err : -EIO;
}

int meta_prepare(struct meta_db *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db->conn, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		*st = NULL;
		return meta_sql_fail(db, rc, "prepare");
	}
	return 0;
}

int meta_run(struct meta_db *db, sqlite3_stmt *st, const char *what)
{
	int rc, err = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		err = meta_sql_fail(db, rc, what);
	sqlite3_finalize(st);
	return err;
}

int meta_exec(struct meta_db *db, const char *sql, const char *what)
{
	int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : meta_sql_fail(db, rc, what);
}

/* One integer from a one-row query. */
/* ---- locking ----------------------------------------------------------- */

static int db_wait(struct meta_db *db)
{
	if (meta_cb_db == db)
		return -EDEADLK;
	pthread_mutex_lock(&db->lock);
	while (db->depth > 0 && !pthread_equal(db->owner, pthread_self()))
		pthread_cond_wait(&db->idle, &db->lock);
	return 0;
}

int meta_db_enter(struct meta_db *db)
{
	int err = db_wait(db);

	if (err)
		return err;
	if (db->aborted) {
		pthread_mutex_unlock(&db->lock);
		return -EIO;
	}
	return 0;
}

void meta_db_leave(struct meta_db *db)
{
	int rc;

	if (db->depth > 0 && !db->aborted && sqlite3_get_autocommit(db->conn)) {
		db->aborted = 1;
		meta_logf(db, LOG_ERR, "catalog: transaction rolled back by SQLite after an error");
	}
	if (db->depth == 0 && db->checkpoint_due) {
		db->checkpoint_due = 0;
		rc = sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		if (rc != SQLITE_OK)
			meta_logf(db, LOG_WARNING, "catalog: WAL checkpoint after key change: %s",
				  sqlite3_errmsg(db->conn));
	}
	pthread_mutex_unlock(&db->lock);
}

/* meta_set_patient - 0: SQLite errors out at once on a locked catalog
 * (-EBUSY) instead of waiting; for a connection used where waiting could
 * deadlock against a transaction of the same process.  Otherwise the
 * default busy timeout. */
void meta_set_patient(struct meta_db *db, int patient)
{
	if (!db || meta_db_enter(db))
		return;
	sqlite3_busy_timeout(db->conn, patient ? META_BUSY_MS : 0);
	meta_db_leave(db);
}

/* ---- open / close ------------------------------------------------------ */

/* Make sure the file exists (creating it 0600 if allowed) and is a regular
 * file we can open read-write, so that SQLite never creates it itself. */
static int file_prepare(struct meta_db *db, const char *path, int create)
{
	struct stat stb;
	int fd, err = 0;

	if (create) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			if (fchmod(fd, 0600) < 0)
				err = -errno;
			close(fd);
			if (!err)
				meta_logf(db, LOG_INFO, "catalog: created %s", path);
			return err;
		}
		err = -errno;
		if (err != -EEXIST)
			return err;
	}
	/* stat and access, not open: closing any descriptor of the file
	 * would drop every POSIX lock this process holds on it, the shared
	 * lock of a connection already open among them (the store opens a
	 * second one), and another process closing the catalog would then
	 * think itself the last user and delete the WAL under us. */
	if (stat(path, &stb) < 0)
		return -errno;
	if (S_ISDIR(stb.st_mode))
		return -EISDIR;
	if (!S_ISREG(stb.st_mode))
		return -EUCLEAN;
	return access(path, R_OK | W_OK) < 0 ? -errno : 0;
}

static int conn_setup(struct meta_db *db, int memory)
{
	int err;

	sqlite3_extended_result_codes(db->conn, 1);
	sqlite3_busy_timeout(db->conn, META_BUSY_MS);
	sqlite3_db_config(db->conn, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db->conn, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	err = meta_exec(db, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
			" PRAGMA synchronous=NORMAL;", "connection settings");
	if (!err)
		err = meta_schema_open(db, memory);
	return err;
}

int meta_open(struct meta_db **out, const char *path, int create, meta_log_fn log, void *log_ctx)
{
	struct meta_db *db;
	int memory, flags, rc, err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	memory = strcmp(path, ":memory:") == 0;
	db = calloc(1, sizeof *db);
	if (!db)
		return -ENOMEM;
	db->log = log;
	db->log_ctx = log_ctx;
	if (pthread_mutex_init(&db->lock, NULL) != 0) {
		free(db);
		return -ENOMEM;
	}
	if (pthread_cond_init(&db->idle, NULL) != 0) {
		pthread_mutex_destroy(&db->lock);
		free(db);
		return -ENOMEM;
	}
	if (!memory) {
		err = file_prepare(db, path, create);
		if (err)
			goto out;
	}
	flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (memory ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(path, &db->conn, flags, NULL);
	if (rc != SQLITE_OK) {
		err = meta_sql_fail(db, rc, path);
		goto out;
	}
	err = conn_setup(db, memory);
out:
	if (err) {
		if (err == -EUCLEAN)
			meta_logf(db, LOG_ERR, "catalog: refusing %s", path);
		meta_close(db);
		return err;
	}
	*out = db;
	return 0;
}

/* meta_close - roll back any open transaction, close the connection and free
 * db.  NULL is fine.  No other thread may be using db. */
void meta_close(struct meta_db *db)
{
	if (!db)
		return;
	if (db->conn) {
		if (!sqlite3_get_autocommit(db->conn))
			sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(db->conn);
	}
	pthread_cond_destroy(&db->idle);
	pthread_mutex_destroy(&db->lock);
	free(db);
}

/* ---- transactions ------------------------------------------------------ */

/* Called with the lock held when a transaction level ends. */
static void tx_level_done(struct meta_db *db)
{
	db->depth--;
	if (db->depth == 0) {
		db->aborted = 0;
		pthread_cond_broadcast(&db->idle);
	}
}

/* meta_begin - open a transaction (depth 0: BEGIN IMMEDIATE) or a nested
 * savepoint.  Until the matching outermost meta_commit/meta_rollback, other
 * threads' calls on db wait.  0, -EBUSY (another process holds the write
 * lock past the busy timeout), -EIO (this transaction was aborted), ... */
int meta_begin(struct meta_db *db)
{
	char sql[40];
	int err;

	if (!db)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	if (db->depth == UINT_MAX) {
		err = -EINVAL;
	} else if (db->depth == 0) {
		err = meta_exec(db, "BEGIN IMMEDIATE", "begin");
		if (!err)
			db->owner = pthread_self();
	} else {
		snprintf(sql, sizeof sql, "SAVEPOINT meta_%u", db->depth);
		err = meta_exec(db, sql, "savepoint");
	}
	if (!err)
		db->depth++;
	meta_db_leave(db);
	return err;
}

/* meta_commit - end the innermost level: release its savepoint, or COMMIT
 * at the outermost level.  A failed COMMIT rolls the transaction back.
 * -EINVAL if no transaction is open on this thread; -EIO if it had been
 * aborted (the level is closed anyway). */
int meta_commit(struct meta_db *db)
{
	char sql[40];
	int err = 0;

	if (!db)
		return -EINVAL;
	err = db_wait(db);
	if (err)
		return err;
	if (db->depth == 0) {
		err = -EINVAL;
	} else if (db->aborted) {
		err = -EIO;
		tx_level_done(db);
	} else if (db->depth == 1) {
		err = meta_exec(db, "COMMIT", "commit");
		if (err && !sqlite3_get_autocommit(db->conn))
			sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
		tx_level_done(db);
	} else {
		snprintf(sql, sizeof sql, "RELEASE meta_%u", db->depth - 1);
		err = meta_exec(db, sql, "release savepoint");
		tx_level_done(db);
	}
	meta_db_leave(db);
	return err;
}

/* meta_rollback - undo the innermost level (the whole transaction at the
 * outermost).  No-op when no transaction is open.  Cannot fail. */
void meta_rollback(struct meta_db *db)
{
	char sql[80];

	if (!db || db_wait(db) != 0)
		return;
	if (db->depth == 0) {
		meta_logf(db, LOG_DEBUG, "catalog: rollback without a transaction");
	} else if (db->depth == 1) {
		if (!sqlite3_get_autocommit(db->conn) &&
		    sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
			meta_logf(db, LOG_ERR, "catalog: rollback: %s", sqlite3_errmsg(db->conn));
		tx_level_done(db);
	} else {
		if (!db->aborted) {
			snprintf(sql, sizeof sql, "ROLLBACK TO meta_%u; RELEASE meta_%u",
				 db->depth - 1, db->depth - 1);
			if (sqlite3_exec(db->conn, sql, NULL, NULL, NULL) != SQLITE_OK)
				meta_logf(db, LOG_ERR, "catalog: rollback to savepoint: %s",
					  sqlite3_errmsg(db->conn));
		}
		tx_level_done(db);
	}
	meta_db_leave(db);
}

/* ---- settings ---------------------------------------------------------- */

/* meta_setting_get - copy the value of setting `name` into out (outsz bytes
 * including the NUL).  0, -ENOENT (no such setting), -EINVAL (bad argument,
 * or the value does not fit in out). */
int meta_setting_get(struct meta_db *db, const char *name, char *out, size_t outsz)
{
	sqlite3_stmt *st;
	const unsigned char *t;
	int rc, n, err;

	if (!db || !name || !*name || strnlen(name, SETTING_NAME_MAX) >= SETTING_NAME_MAX ||
	    !out || outsz == 0)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "SELECT value FROM settings WHERE name = ?1", &st);
	if (err)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		n = sqlite3_column_bytes(st, 0);
		if (!t)
			err = sqlite3_column_type(st, 0) == SQLITE_NULL ? -EUCLEAN : -ENOMEM;
		else if (n < 0 || (size_t)n >= outsz)
			err = -EINVAL;
		else
			memcpy(out, t, (size_t)n + 1);
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : meta_sql_fail(db, rc, "get setting");
	}
	sqlite3_finalize(st);
out:
	meta_db_leave(db);
	return err;
}

/* meta_setting_set - insert or replace a setting.  0, -EINVAL (name empty or
 * longer than 127 bytes, value longer than 4095), -EPERM (catalog.magic). */
int meta_setting_set(struct meta_db *db, const char *name, const char *value)
{
	sqlite3_stmt *st;
	int err;

	if (!db || !name || !*name || strnlen(name, SETTING_NAME_MAX) >= SETTING_NAME_MAX ||
	    !value || strnlen(value, SETTING_VALUE_MAX) >= SETTING_VALUE_MAX)
		return -EINVAL;
	err = meta_db_enter(db);
	if (err)
		return err;
	err = meta_prepare(db, "INSERT INTO settings (name, value) VALUES (?1, ?2)"
			   " ON CONFLICT (name) DO UPDATE SET value = excluded.value", &st);
	if (!err) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
		err = meta_run(db, st, "set setting");
	}
	meta_db_leave(db);
	return err;
}

/* ---- ids and names ----------------------------------------------------- */

static void fill_random(uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t r;
	int fd;

	while (got < len) {
		r = getrandom(buf + got, len - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (r < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (got == len)
		return;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && got < len) {
		r = read(fd, buf + got, len - got);
		if (r > 0)
			got += (size_t)r;
		else if (!(r < 0 && errno == EINTR))
			break;
	}
	if (fd >= 0)
		close(fd);
	if (got != len)
		abort();    /* no randomness at all: nothing sane to return */
}

/* meta_id_generate - a random (version 4) UUID in lowercase text.  Thread-
 * safe.  Cannot fail (aborts if the kernel gives no random bytes at all). */
void meta_id_generate(char out[static META_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t i, j = 0;

	fill_random(b, sizeof b);
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);   /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	for (i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 0x0f];
	}
	out[j] = '\0';
}

/* meta_kind_name - "volume", "snapshot", "backup", "image"; "any" for
 * META_ANY and "unknown" otherwise.  Static strings.  Cannot fail. */
const char *meta_kind_name(enum meta_kind k)
{
	switch (k) {
	case META_ANY:
		return "any";
	case META_VOLUME:
		return "volume";
	case META_SNAPSHOT:
		return "snapshot";
	case META_BACKUP:
		return "backup";
	case META_IMAGE:
		return "image";
	}
	return "unknown";
}

