/* SPDX-License-Identifier: MIT */
/*
 * meta.c - the catalog connection: open and close, locking, transactions,
 * settings, ids.
 *
 * The catalog is written only by this module.  It is either one SQLite
 * file, STORE/catalog.db (the default: one host), or one schema of a
 * PostgreSQL database (meta_open_pg: every host of a shared store sees
 * every change the moment it commits).  Both hold the same tables:
 *
 *   settings  name -> value; the row ('catalog.magic', 'evfs-catalog') marks
 *             the file or schema as ours and a trigger keeps it from being
 *             changed.
 *   lineages  one row per data key (DK): whether it is encrypted, the id of
 *             the customer master key that wraps it and the *wrapped* DK
 *             blob that kms/ produced.  No plaintext key ever reaches us.
 *   objects   volumes, snapshots, backups and images, each naming the
 *             lineage whose DK encrypts its chunks.
 *
 * The encryption attribute (encrypted, key_id, lineage) of an object, and
 * (encrypted, key_id) of a lineage, are immutable.  That rule lives in the
 * schema (meta_schema.c, which also owns versions, migrations and the checks
 * that refuse foreign or damaged catalogs with -EUCLEAN), so it holds for
 * every connection and code path; sqldb turns the trigger's refusal into
 * -EPERM on either engine.  Rows are read and written in meta_object.c.
 *
 * SQL reaches the engine through sqldb/, which also owns the one
 * engine-error-to-errno translation; the SQL text of the rows is written
 * once and runs on both engines ("?" placeholders, nothing SQLite-only).
 * Engine-specific SQL is confined to the connection settings below and to
 * meta_schema.c.
 *
 * SQLite connection settings: WAL journal (not for ":memory:"), foreign keys
 * on, secure_delete on (deleted wrapped keys are overwritten; the WAL is
 * checkpointed after a wrapped key is replaced or deleted), synchronous
 * NORMAL, a 5 s busy timeout; sqldb adds extended result codes, defensive
 * mode and no trusted schema.  A file we create is created mode 0600 by
 * open(2) before SQLite sees it; SQLite gives its -wal and -shm files the
 * same mode.  PostgreSQL: the same 5 s as lock_timeout; the server owns
 * durability and the deletion of old row versions (VACUUM).
 *
 * Threads.  One connection per struct meta_db, serialised by db->lock.  A
 * transaction (meta_begin .. meta_commit/meta_rollback) belongs to the thread
 * that began it: other threads' calls wait on db->idle until it ends, so
 * their statements never land inside someone else's transaction.  Nested
 * meta_begin calls use savepoints, so an inner rollback undoes only the inner
 * work; only the outermost commit is durable.  If the engine abandons a
 * transaction after an error (SQLite on SQLITE_FULL or I/O errors;
 * PostgreSQL when a savepoint command fails, which leaves the transaction
 * unusable), the module marks it aborted: further calls by its thread fail
 * with -EIO until the outermost rollback or commit.  List callbacks run
 * with the lock held; a callback that calls back into the same db gets
 * -EDEADLK instead of hanging.
 *
 * Logging.  The module never prints.  It reports through the optional
 * meta_log_fn given to the open functions, with syslog(3) levels (LOG_ERR,
 * LOG_WARNING, LOG_INFO, LOG_DEBUG), while holding db->lock: the log
 * callback must not call into the same db.  Messages carry the engine's
 * error text, file paths and schema names, never key material (nor the
 * PostgreSQL conninfo, which may hold a password).
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

/* meta_sql_fail - see meta_int.h.  -EINVAL is a constraint's answer (CHECK,
 * NOT NULL) when the engine's text says so - both engines' do, and nothing
 * but the log level depends on it; otherwise it is a misuse (a bad bind,
 * a value too big) and worth an error line. */
int meta_sql_fail(struct meta_db *db, int err, const char *what)
{
	const char *msg = sqldb_errmsg(db->conn);
	int level = LOG_ERR;

	if (err == -EEXIST || err == -ENOENT || err == -EPERM || (err == -EINVAL && strstr(msg, "constraint")))
		level = LOG_DEBUG;
	meta_logf(db, level, "catalog: %s: %s", what, msg);
	return err ? err : -EIO;
}

int meta_prepare(struct meta_db *db, const char *sql, struct sqldb_stmt **st)
{
	int err = sqldb_prepare(db->conn, sql, st);

	if (err) {
		*st = NULL;
		return meta_sql_fail(db, err, "prepare");
	}
	return 0;
}

int meta_run(struct meta_db *db, struct sqldb_stmt *st, const char *what)
{
	int rc, err = 0;

	while ((rc = sqldb_step(st)) == 1)
		;
	if (rc < 0)
		err = meta_sql_fail(db, rc, what);
	sqldb_finalize(st);
	return err;
}

int meta_exec(struct meta_db *db, const char *sql, const char *what)
{
	int err = sqldb_exec(db->conn, sql);

	return err ? meta_sql_fail(db, err, what) : 0;
}

/* A transaction-control statement (SAVEPOINT, RELEASE, ROLLBACK TO) inside
 * the open transaction.  On PostgreSQL a failure there leaves the whole
 * transaction unusable (and a later COMMIT would quietly roll it back), so
 * the transaction is marked aborted as SQLite's own abandonment is. */
static int tx_exec(struct meta_db *db, const char *sql, const char *what)
{
	int err = meta_exec(db, sql, what);

	if (err && db->depth > 0 && !db->aborted && sqldb_kind(db->conn) == SQLDB_POSTGRESQL) {
		db->aborted = 1;
		meta_logf(db, LOG_ERR, "catalog: transaction aborted by PostgreSQL after an error");
	}
	return err;
}

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
	int err;

	if (db->depth > 0 && !db->aborted && !sqldb_in_tx(db->conn)) {
		db->aborted = 1;
		meta_logf(db, LOG_ERR, "catalog: transaction rolled back by %s after an error",
			  sqldb_kind(db->conn) == SQLDB_SQLITE ? "SQLite" : "PostgreSQL");
	}
	if (db->depth == 0 && db->checkpoint_due) {
		db->checkpoint_due = 0;
		err = sqldb_checkpoint(db->conn);
		if (err)
			meta_logf(db, LOG_WARNING, "catalog: WAL checkpoint after key change: %s",
				  sqldb_errmsg(db->conn));
	}
	pthread_mutex_unlock(&db->lock);
}

/* meta_set_patient - 0: a locked catalog answers -EBUSY at once (SQLite) or
 * after a millisecond (PostgreSQL's lock_timeout cannot be "no wait")
 * instead of waiting; for a connection used where waiting could deadlock
 * against a transaction of the same process.  Otherwise the default busy
 * timeout. */
void meta_set_patient(struct meta_db *db, int patient)
{
	if (!db || meta_db_enter(db))
		return;
	sqldb_busy_timeout(db->conn, patient ? META_BUSY_MS : 0);
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

/* A struct meta_db without a connection yet. */
static int db_alloc(struct meta_db **out, meta_log_fn log, void *log_ctx)
{
	struct meta_db *db = calloc(1, sizeof *db);

	*out = NULL;
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
	*out = db;
	return 0;
}

int meta_open(struct meta_db **out, const char *path, int create, meta_log_fn log, void *log_ctx)
{
	struct meta_db *db;
	char msg[512];
	int memory, err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	memory = strcmp(path, ":memory:") == 0;
	err = db_alloc(&db, log, log_ctx);
	if (err)
		return err;
	if (!memory) {
		err = file_prepare(db, path, create);
		if (err)
			goto out;
	}
	msg[0] = '\0';
	err = sqldb_open_sqlite(&db->conn, path, msg, sizeof msg);
	if (err) {
		if (!msg[0])
			snprintf(msg, sizeof msg, "%s", strerror(-err));
		meta_logf(db, LOG_ERR, "catalog: cannot open %s: %s", path, msg);
		goto out;
	}
	err = meta_exec(db, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
			" PRAGMA synchronous=NORMAL;", "connection settings");
	if (!err)
		err = meta_schema_open(db, memory, create);
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

/* meta_open_pg - see meta.h.  The conninfo is never logged (it may carry a
 * password); the schema name is. */
int meta_open_pg(struct meta_db **out, const char *conninfo, const char *schema, int create, meta_log_fn log,
		 void *log_ctx)
{
	struct meta_db *db;
	char msg[512];
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!conninfo || !*conninfo || !schema || !*schema)
		return -EINVAL;
	err = db_alloc(&db, log, log_ctx);
	if (err)
		return err;
	snprintf(db->schema, sizeof db->schema, "%s", schema);
	msg[0] = '\0';
	err = sqldb_open_pg(&db->conn, conninfo, schema, create, msg, sizeof msg);
	/* CREATE SCHEMA IF NOT EXISTS racing another host's: the loser
	 * gets a unique violation, and the schema is there now. */
	if (err == -EEXIST && create)
		err = sqldb_open_pg(&db->conn, conninfo, schema, create, msg, sizeof msg);
	if (err && !msg[0])
		snprintf(msg, sizeof msg, "%s", strerror(-err));
	switch (err) {
	case 0:
		break;
	case -ECONNREFUSED:
		meta_logf(db, LOG_ERR, "catalog: cannot connect to PostgreSQL: %s", msg);
		break;
	case -ENOENT:
		meta_logf(db, LOG_ERR, "catalog: no catalog to open: %s", msg);
		break;
	case -EPROTONOSUPPORT:
	case -EINVAL:
		meta_logf(db, LOG_ERR, "catalog: %s", msg);
		break;
	default:
		meta_logf(db, LOG_ERR, "catalog: cannot open PostgreSQL schema %s: %s", schema, msg);
	}
	if (!err)
		err = meta_schema_open(db, 0, create);
	if (err) {
		if (err == -EUCLEAN)
			meta_logf(db, LOG_ERR, "catalog: refusing PostgreSQL schema %s", schema);
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
	sqldb_close(db->conn);
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

/* End the engine's transaction if it is still open (outermost level). */
static void tx_rollback(struct meta_db *db)
{
	if (sqldb_in_tx(db->conn) && sqldb_exec(db->conn, "ROLLBACK") != 0)
		meta_logf(db, LOG_ERR, "catalog: rollback: %s", sqldb_errmsg(db->conn));
}

/* meta_begin - open a transaction (depth 0: sqldb_begin, which takes the
 * write lock at once) or a nested savepoint.  Until the matching outermost
 * meta_commit/meta_rollback, other threads' calls on db wait.  0, -EBUSY
 * (another process or host holds the write lock past the busy timeout),
 * -EIO (this transaction was aborted), ... */
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
		err = sqldb_begin(db->conn);
		if (err)
			err = meta_sql_fail(db, err, "begin");
		else
			db->owner = pthread_self();
	} else {
		snprintf(sql, sizeof sql, "SAVEPOINT meta_%u", db->depth);
		err = tx_exec(db, sql, "savepoint");
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
		if (db->depth == 1)
			tx_rollback(db);
		tx_level_done(db);
	} else if (db->depth == 1) {
		err = meta_exec(db, "COMMIT", "commit");
		if (err)
			tx_rollback(db);
		tx_level_done(db);
	} else {
		snprintf(sql, sizeof sql, "RELEASE meta_%u", db->depth - 1);
		err = tx_exec(db, sql, "release savepoint");
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
		tx_rollback(db);
		tx_level_done(db);
	} else {
		if (!db->aborted) {
			snprintf(sql, sizeof sql, "ROLLBACK TO meta_%u; RELEASE meta_%u",
				 db->depth - 1, db->depth - 1);
			(void)tx_exec(db, sql, "rollback to savepoint");
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
	struct sqldb_stmt *st;
	const char *t;
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
	rc = sqldb_bind_text(st, 1, name, -1);
	if (!rc)
		rc = sqldb_step(st);
	if (rc == 1) {
		t = sqldb_column_text(st, 0);
		n = sqldb_column_bytes(st, 0);
		if (!t)
			err = sqldb_column_type(st, 0) == SQLDB_NULL ? -EUCLEAN : -ENOMEM;
		else if (n < 0 || (size_t)n >= outsz)
			err = -EINVAL;
		else
			memcpy(out, t, (size_t)n + 1);
	} else {
		err = rc == 0 ? -ENOENT : meta_sql_fail(db, rc, "get setting");
	}
	sqldb_finalize(st);
out:
	meta_db_leave(db);
	return err;
}

/* meta_setting_set - insert or replace a setting.  0, -EINVAL (name empty or
 * longer than 127 bytes, value longer than 4095), -EPERM (catalog.magic, and
 * on PostgreSQL catalog.schema_version). */
int meta_setting_set(struct meta_db *db, const char *name, const char *value)
{
	struct sqldb_stmt *st;
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
		err = sqldb_bind_text(st, 1, name, -1);
		if (!err)
			err = sqldb_bind_text(st, 2, value, -1);
		if (err) {
			err = meta_sql_fail(db, err, "bind");
			sqldb_finalize(st);
		} else {
			err = meta_run(db, st, "set setting");
		}
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

