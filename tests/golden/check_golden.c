// SPDX-License-Identifier: MIT
/*
 * check_golden.c - the Check suite "golden": the committed version-1 store
 * (tests/data/v1, made by its make.sh) must open and read exactly as its
 * manifest says, with every later evfs.  Format version 1 is frozen: when
 * this fails, the new code broke the reading of existing stores -- fix the
 * code, never the golden files.
 *
 * Each test copies tests/data/v1/store into a fresh temp dir (EVFS_TEST_TMPDIR,
 * else TMPDIR, else /tmp) and fixes what a copy out of git loses or changes:
 *   - modes: git keeps none of them; the store is a 0700 directory of
 *     0600 files, the root key file 0400;
 *   - absolute paths a v1 store records: evfs.ini [kms] key_path (the key
 *     file, copied beside the store) and the catalog's objects.location of
 *     each backup (the backup directory when it was taken; rewritten with
 *     SQLite, as v1 defines that column).
 * Then it opens the copy with the store API as uid 0 (owner checks pass
 * whoever runs the test; no root, no FUSE needed).  The golden directory is
 * the compile definition EVFS_GOLDEN_DIR, or the environment variable of the
 * same name.
 *
 * TCases:
 *   objects   one loop test per manifest line: size and SHA-256 of the
 *             whole plaintext (volumes attached first), encryption and key
 *             attributes; an encrypted image must refuse to open (R9).
 *   store     the committed files hold no SQLite -wal/-shm/-journal, .tmp- or
 *             lock file; the catalog lists exactly the manifest's objects; a
 *             whole-store fsck finds no problem.
 *
 * The store API is used directly and sparingly; its error text is read in
 * one place, why() (the error reporting of fs/ may change).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include <sqlite3.h>

#include "store.h"

#ifndef EVFS_GOLDEN_DIR
#error "EVFS_GOLDEN_DIR (the tests/data/v1 directory) must be defined"
#endif

#define MAX_OBJECTS 64
#define READ_BLOCK (64 * 1024)

struct golden_obj {
	char kind[16];
	char name[META_NAME_MAX];
	uint64_t size;
	char sha[65];
	int encrypted;
	char key[64];                 /* key alias, "-" if unencrypted */
};

static struct golden_obj g_obj[MAX_OBJECTS];
static int g_nobj;
static char g_golden[PATH_MAX];

/* One test's world: the copy and the open store. */
static struct {
	char tmp[PATH_MAX], store[PATH_MAX + 8];
	struct store *s;
	struct store_caller c;
	struct evfs_err err;        /* the caller's error object (t.c.err) */
	int upgraded;               /* setup_upgraded: the copy is format 2 */
} t;

/* ============================ store adapter ============================ */

/* The last message the store logged (a file that cannot be opened says why
 * only there). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_log[1024];

static void on_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	snprintf(last_log, sizeof last_log, "%s", msg);
	pthread_mutex_unlock(&log_lock);
	if (getenv("EVFS_TEST_LOG"))
		fprintf(stderr, "evfs log <%d>: %s\n", level, msg);
}

/* Everything the store says about a failed call rc: the only place that
 * reads its error text. */
static const char *why(struct store *s, int rc)
{
	static char buf[2400];

	pthread_mutex_lock(&log_lock);
	snprintf(buf, sizeof buf, "%s; store: %s; last log: %s", strerror(rc < 0 ? -rc : rc),
		 s ? evfs_err_msg(&t.err) : "", last_log);
	pthread_mutex_unlock(&log_lock);
	return buf;
}

/* store_open of the copy, as a mount would (store_attach wants a mounted
 * store; the "mount point" only names the lock holder). */
static void golden_open(void)
{
	char err[2048] = "";
	int rc = store_open(&t.s, t.store, t.tmp, on_log, NULL, err, sizeof err);

	ck_assert_msg(rc == 0, "store_open %s: %s (%s)", t.store, strerror(-rc), err);
	store_caller_init(t.s, &t.c, 0, 0, NULL);
	t.c.err = &t.err;
}

/* ============================== manifest =============================== */

static const char *golden_dir(void)
{
	const char *e = getenv("EVFS_GOLDEN_DIR");

	return e && *e ? e : EVFS_GOLDEN_DIR;
}

/* Lines "kind name size sha256 yes|no key"; '#' starts a comment line. */
static int manifest_load(void)
{
	char path[PATH_MAX + 32], line[512], enc[8];
	FILE *f;

	snprintf(g_golden, sizeof g_golden, "%s", golden_dir());
	snprintf(path, sizeof path, "%s/manifest.txt", g_golden);
	if (!(f = fopen(path, "re"))) {
		fprintf(stderr, "check_golden: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		struct golden_obj *o = &g_obj[g_nobj];
		unsigned long long size;

		if (line[0] == '#' || line[strspn(line, " \t\n")] == '\0')
			continue;
		if (g_nobj == MAX_OBJECTS || sscanf(line, "%15s %63s %llu %64s %7s %63s", o->kind, o->name, &size,
						    o->sha, enc, o->key) != 6 || strlen(o->sha) != 64 ||
		    (strcmp(enc, "yes") && strcmp(enc, "no"))) {
			fprintf(stderr, "check_golden: %s: bad line: %s", path, line);
			fclose(f);
			return -1;
		}
		o->size = size;
		o->encrypted = !strcmp(enc, "yes");
		g_nobj++;
	}
	fclose(f);
	if (g_nobj == 0)
		fprintf(stderr, "check_golden: %s lists no object\n", path);
	return g_nobj ? 0 : -1;
}

static enum meta_kind kind_of(const char *k)
{
	return !strcmp(k, "volume") ? META_VOLUME : !strcmp(k, "snapshot") ? META_SNAPSHOT
		: !strcmp(k, "backup") ? META_BACKUP : !strcmp(k, "image") ? META_IMAGE : META_ANY;
}

/* ============================ the temp copy ============================ */

static char copy_from[PATH_MAX + 8], copy_to[PATH_MAX + 8];

static void copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[READ_BLOCK];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	ck_assert_msg(in >= 0, "open %s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	ck_assert_msg(out >= 0, "create %s: %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0)
		ck_assert_msg(write(out, buf, (size_t)n) == n, "write %s: %s", to, strerror(errno));
	ck_assert_msg(n == 0, "read %s: %s", from, strerror(errno));
	ck_assert_int_eq(fchmod(out, mode), 0); /* whatever the umask */
	close(in);
	ck_assert_int_eq(close(out), 0);
}

static int copy_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char to[PATH_MAX * 3];

	(void)ftw;
	snprintf(to, sizeof to, "%s%s", copy_to, path + strlen(copy_from));
	if (flag == FTW_D) {
		ck_assert_msg(mkdir(to, 0700) == 0 || (errno == EEXIST && !strcmp(path, copy_from)), "mkdir %s: %s",
			      to, strerror(errno));
		ck_assert_int_eq(chmod(to, 0700), 0);
	} else {
		ck_assert_msg(flag == FTW_F && S_ISREG(st->st_mode), "%s: not a file or directory", path);
		copy_file(path, to, 0600);
	}
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

/* evfs.ini with key_path pointing at the key file beside the copy. */
static void rewrite_key_path(const char *keyfile)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 48], line[4608];
	FILE *in, *out;
	int seen = 0;

	snprintf(path, sizeof path, "%s/evfs.ini", t.store);
	snprintf(tmp, sizeof tmp, "%s/evfs.ini.new", t.store);
	ck_assert_ptr_nonnull(in = fopen(path, "re"));
	ck_assert_ptr_nonnull(out = fopen(tmp, "we"));
	while (fgets(line, sizeof line, in)) {
		if (!strncmp(line, "key_path", 8) && line[8 + strspn(line + 8, " \t")] == '=') {
			fprintf(out, "key_path = %s\n", keyfile);
			seen++;
		} else {
			fputs(line, out);
		}
	}
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_msg(seen == 1, "%s: %d key_path lines", path, seen);
	ck_assert_int_eq(chmod(tmp, 0600), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

/* A v1 catalog records each backup's directory as an absolute path (the
 * store's backup_dir when it was taken): point them at the copy's. */
static void rewrite_backup_location(void)
{
	char db_path[PATH_MAX + 32], dir[PATH_MAX + 32];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = 0, want = 0;

	for (int i = 0; i < g_nobj; i++)
		want += kind_of(g_obj[i].kind) == META_BACKUP;
	snprintf(db_path, sizeof db_path, "%s/catalog.db", t.store);
	snprintf(dir, sizeof dir, "%s/backups", t.store);
	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, "UPDATE objects SET location = ?1 WHERE kind = 3", -1, &st, NULL) ==
		      SQLITE_OK, "%s: %s", db_path, sqlite3_errmsg(db));
	ck_assert_int_eq(sqlite3_bind_text(st, 1, dir, -1, SQLITE_TRANSIENT), SQLITE_OK);
	ck_assert_msg(sqlite3_step(st) == SQLITE_DONE, "%s: %s", db_path, sqlite3_errmsg(db));
	n = sqlite3_changes(db);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	ck_assert_msg(n == want, "catalog has %d backups, manifest %d", n, want);
}

static void setup(void)
{
	const char *base = getenv("EVFS_TEST_TMPDIR");
	char real[PATH_MAX], key_from[PATH_MAX + 16], key_to[PATH_MAX + 16];

	ck_assert_int_ge(sodium_init(), 0);
	t.upgraded = 0;
	if (!base || !*base)
		base = getenv("TMPDIR");
	snprintf(t.tmp, sizeof t.tmp, "%s/evfs-golden-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_msg(mkdtemp(t.tmp), "mkdtemp %s: %s", t.tmp, strerror(errno));
	ck_assert_ptr_nonnull(realpath(t.tmp, real)); /* the store resolves its directory */
	snprintf(t.tmp, sizeof t.tmp, "%s", real);
	snprintf(t.store, sizeof t.store, "%s/store", t.tmp);
	snprintf(copy_from, sizeof copy_from, "%s/store", g_golden);
	snprintf(copy_to, sizeof copy_to, "%s", t.store);
	ck_assert_msg(nftw(copy_from, copy_cb, 16, FTW_PHYS) == 0, "copy %s: %s", copy_from, strerror(errno));
	snprintf(key_from, sizeof key_from, "%s/root.key", g_golden);
	snprintf(key_to, sizeof key_to, "%s/root.key", t.tmp);
	copy_file(key_from, key_to, 0400);
	rewrite_key_path(key_to);
	rewrite_backup_location();
	golden_open();
}

static int upgraded_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	ck_assert_msg(strcmp(path + ftw->base, "tags") && strcmp(path + ftw->base, "maps"), "%s: format 1 file left "
		      "after the upgrade", path);
	return 0;
}

/* The same copy, first converted to format 2 (evfsctl upgrade) on the
 * unmounted store: every object must read exactly as before. */
static void setup_upgraded(void)
{
	char err[2048] = "", *out = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	setup();
	store_close(t.s);
	rc = store_open(&t.s, t.store, NULL, on_log, NULL, err, sizeof err);
	ck_assert_msg(rc == 0, "store_open %s: %s (%s)", t.store, strerror(-rc), err);
	store_caller_init(t.s, &t.c, 0, 0, NULL);
	t.c.err = &t.err;
	ck_assert_ptr_nonnull(f = open_memstream(&out, &len));
	rc = store_upgrade(t.s, &t.c, f);
	fclose(f);
	ck_assert_msg(rc == 0, "upgrade: %s", why(t.s, rc));
	ck_assert_msg(strstr(out, "upgraded to format 2") && !strstr(out, " 0 pool(s) upgraded"), "upgrade said: %s",
		      out);
	free(out);
	store_close(t.s);
	golden_open();
	t.upgraded = 1;
	{
		char roots[PATH_MAX + 64];
		struct stat st;

		/* Every pool is format 2 now: a roots file, no maps/. */
		snprintf(roots, sizeof roots, "%s/pools", t.store);
		ck_assert_int_eq(nftw(roots, upgraded_cb, 16, FTW_PHYS), 0);
		(void)st;
	}
}

static void teardown(void)
{
	store_close(t.s);
	t.s = NULL;
	(void)nftw(t.tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* =============================== objects =============================== */

static void xattr(const struct golden_obj *o, const char *attr, char *out, size_t outsz)
{
	int n = store_xattr_get(t.s, kind_of(o->kind), o->name, attr, out, outsz - 1);

	ck_assert_msg(n >= 0, "%s %s: %s: %s", o->kind, o->name, attr, why(t.s, n));
	out[n] = '\0';
}

/* Key ids of the other objects under the same alias are the same, under
 * another alias different. */
static void check_key(const struct golden_obj *o)
{
	char enc[16], id[128], state[64], oid[128];

	xattr(o, "user.evfs.encrypted", enc, sizeof enc);
	xattr(o, "user.evfs.key", id, sizeof id);
	ck_assert_msg(!strcmp(enc, o->encrypted ? "1" : "0"), "%s %s: encrypted is %s", o->kind, o->name, enc);
	if (!o->encrypted) {
		ck_assert_msg(!id[0], "%s %s: unencrypted with key %s", o->kind, o->name, id);
		return;
	}
	xattr(o, "user.evfs.key_state", state, sizeof state);
	ck_assert_msg(!strcmp(state, "Enabled"), "%s %s: key %s is %s", o->kind, o->name, id, state);
	for (int i = 0; i < g_nobj; i++) {
		if (!g_obj[i].encrypted)
			continue;
		xattr(&g_obj[i], "user.evfs.key", oid, sizeof oid);
		ck_assert_msg(!strcmp(g_obj[i].key, o->key) == !strcmp(oid, id),
			      "%s %s (key %s = %s) and %s %s (key %s = %s)", o->kind, o->name, o->key, id,
			      g_obj[i].kind, g_obj[i].name, g_obj[i].key, oid);
	}
}

START_TEST(test_object)
{
	const struct golden_obj *o = &g_obj[_i];
	enum meta_kind kind = kind_of(o->kind);
	struct store_file *f = NULL;
	crypto_hash_sha256_state h;
	uint8_t digest[crypto_hash_sha256_BYTES];
	char hex[sizeof digest * 2 + 1];
	uint8_t *buf;
	int rc;

	ck_assert_msg(kind != META_ANY, "manifest: unknown kind %s", o->kind);
	check_key(o);
	if (kind == META_VOLUME) {
		rc = store_attach(t.s, &t.c, o->name);
		ck_assert_msg(rc == 0, "attach %s: %s", o->name, why(t.s, rc));
	}
	rc = store_file_open(t.s, &t.c, kind, o->name, 0, &f);
	if (kind == META_IMAGE && o->encrypted) {
		ck_assert_msg(rc == -EACCES, "encrypted image %s: open gave %d, not -EACCES (R9)", o->name, rc);
		return;
	}
	ck_assert_msg(rc == 0, "open %s %s: %s", o->kind, o->name, why(t.s, rc));
	ck_assert_msg(store_file_size(f) == o->size, "%s %s: size %llu, manifest %llu", o->kind, o->name,
		      (unsigned long long)store_file_size(f), (unsigned long long)o->size);
	ck_assert_ptr_nonnull(buf = malloc(READ_BLOCK));
	crypto_hash_sha256_init(&h);
	for (uint64_t off = 0; off < o->size;) {
		size_t want = o->size - off < READ_BLOCK ? (size_t)(o->size - off) : READ_BLOCK;
		ssize_t n = store_file_read(f, buf, want, off);

		if (n <= 0) {
			free(buf);
			store_file_close(f);
		}
		ck_assert_msg(n > 0, "%s %s: read at %llu: %s", o->kind, o->name, (unsigned long long)off,
			      n < 0 ? why(t.s, (int)n) : "end of file before the manifest's size");
		crypto_hash_sha256_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	store_file_close(f);
	crypto_hash_sha256_final(&h, digest);
	sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
	ck_assert_msg(!strcmp(hex, o->sha), "%s %s: SHA-256 %s, manifest %s", o->kind, o->name, hex, o->sha);
}
END_TEST

/* ================================ store ================================ */

struct listed {
	int n;
	char missing[256];
};

static int list_cb(void *ctx, const struct store_entry *e)
{
	struct listed *l = ctx;
	int i;

	for (i = 0; i < g_nobj && (kind_of(g_obj[i].kind) != e->kind || strcmp(g_obj[i].name, e->name)); i++)
		;
	if (i == g_nobj)
		snprintf(l->missing, sizeof l->missing, "%s %s", meta_kind_name(e->kind), e->name);
	l->n++;
	return 0;
}

START_TEST(test_catalog_matches_manifest)
{
	static const enum meta_kind kinds[] = { META_VOLUME, META_SNAPSHOT, META_BACKUP, META_IMAGE };
	struct listed l = { 0, "" };

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		int rc = store_dir_list(t.s, kinds[k], list_cb, &l);

		ck_assert_msg(rc == 0, "list %s: %s", meta_kind_name(kinds[k]), why(t.s, rc));
	}
	ck_assert_msg(!l.missing[0], "the store has %s, which the manifest does not list", l.missing);
	ck_assert_msg(l.n == g_nobj, "the store lists %d objects, the manifest %d", l.n, g_nobj);
}
END_TEST

/* The committed files are what a closed store leaves: no SQLite -wal, -shm
 * or -journal (running sqlite3 on them, even -readonly, leaves some), no
 * .tmp- file of an interrupted write, no lock file. */
static int clean_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	static const char *const bad[] = { "-wal", "-shm", "-journal" };
	const char *base = path + ftw->base;
	size_t len = strlen(base);

	(void)st;
	ck_assert_msg(flag == FTW_D || flag == FTW_F, "%s: not a file or directory", path);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(len < strlen(bad[i]) || strcmp(base + len - strlen(bad[i]), bad[i]), "%s: left by "
			      "SQLite; remove it (checkpointed files need none)", path);
	ck_assert_msg(strncmp(base, ".tmp-", 5) && strcmp(base, "evfs.lock"), "%s: not part of a closed store", path);
	return 0;
}

START_TEST(test_golden_files_clean)
{
	char dir[PATH_MAX + 8];

	snprintf(dir, sizeof dir, "%s/store", g_golden);
	ck_assert_int_eq(nftw(dir, clean_cb, 16, FTW_PHYS), 0);
}
END_TEST

START_TEST(test_fsck_clean)
{
	struct store_fsck_opts opts = { 0 };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	int rc;

	ck_assert_ptr_nonnull(f);
	rc = store_fsck_run(t.s, &t.c, &opts, f);
	fclose(f);
	if (rc != 0)
		fprintf(stderr, "fsck of the golden store:\n%s", out);
	/* Format 1 pools are named as lacking rollback protection, until
	 * upgraded. */
	ck_assert_msg((strstr(out, "no protection against rollback") == NULL) == t.upgraded, "fsck (%s) said:\n%s",
		      t.upgraded ? "upgraded" : "format 1", out);
	free(out);
	ck_assert_msg(rc == 0, "fsck: %d: %s", rc, rc < 0 ? why(t.s, rc) : "problems (printed above)");
}
END_TEST

static Suite *golden_suite(void)
{
	Suite *s = suite_create("golden");
	TCase *tc = tcase_create("objects");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_object, 0, g_nobj);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_golden_files_clean);
	tcase_add_test(tc, test_catalog_matches_manifest);
	tcase_add_test(tc, test_fsck_clean);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("upgraded");
	tcase_add_checked_fixture(tc, setup_upgraded, teardown);
	tcase_add_loop_test(tc, test_object, 0, g_nobj);
	tcase_add_test(tc, test_catalog_matches_manifest);
	tcase_add_test(tc, test_fsck_clean);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (manifest_load() < 0)
		return EXIT_FAILURE;
	sr = srunner_create(golden_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
