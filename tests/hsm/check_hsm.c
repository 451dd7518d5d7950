/* SPDX-License-Identifier: MIT */
/*
 * check_hsm.c - the PKCS#11 KMS backend (R34) against a real token: SoftHSM2.
 *
 * main() makes a throwaway SoftHSM2 setup in a temp dir (softhsm2.conf with
 * its own tokendir, SOFTHSM2_CONF pointing at it) and initialises two tokens
 * with softhsm2-util: T1 and T2, user PIN 1234.  Each test (Check fork mode:
 * its own process, so its own C_Initialize) makes its key store in a fresh
 * directory.  Without softhsm2 the suite says SKIPPED and exits 77.
 *
 * Covered: create + open + grant + key create + DK generate/unwrap, reopen
 * and unwrap again, audit chain intact; the token key is an AES key that is
 * sensitive and not extractable (asked of the token); wrong PIN, missing
 * token (labels listed), missing module, not a module, missing key; a copy
 * of kms.db opened with another token is refused, and even with the other
 * token's verifier and audit key spliced in it unwraps nothing; no tokens at
 * all; two handles on one token at once; threads sharing one handle.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "kms/kms.h"
#include "tc_kms.h"

#define T1 "evfs-t1"
#define T2 "evfs-t2"

static char base[200], pin_ok[320], pin_bad[320], empty_conf[320], main_conf[320];
static const char *module_path;
static char logbuf[8192];

static const struct kms_caller admin = { 0, "root", "alpha" };
static const struct kms_caller alice = { 1000, "alice", "alpha" };

static void test_log(void *ctx, int level, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)ctx;
	(void)level;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static int log_has(const char *needle)
{
	return strstr(logbuf, needle) != NULL;
}

static struct kms_options p11opts(const char *token, const char *key, const char *pin)
{
	struct kms_options o = {
		.root_kind = KMS_ROOT_PKCS11,
		.secret_path = pin,
		.pkcs11_module = module_path,
		.pkcs11_token = token,
		.pkcs11_key = key,
		.region = "region-1",
		.security_admins = "root",
		.log = test_log,
	};
	return o;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* A fresh directory for one test's key store; db path into out. */
static void store_dir(char *out, size_t n, const char *name)
{
	char d[300];

	snprintf(d, sizeof(d), "%s/%.32s", base, name);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	snprintf(out, n, "%s/kms.db", d);
}

struct blob {
	uint8_t b[KMS_WRAPPED_MAX];
	size_t n;
	uint8_t key[KMS_KEY_BYTES];
	char id[KMS_ID_LEN + 1];
};

/* Grant alpha, create a key, generate a DK under it. */
static void make_dk(struct kms *k, struct blob *bl)
{
	struct kms_key_info ki;
	struct kms_dk *dk = NULL;

	ck_assert_int_eq(kms_grant(k, &admin, "alpha"), 0);
	ck_assert_int_eq(kms_key_create(k, &alice, "vol-key", "hsm test", &ki), 0);
	snprintf(bl->id, sizeof(bl->id), "%s", ki.id);
	ck_assert_int_eq(kms_dk_generate(k, &alice, ki.id, "lineage-1", 9, bl->b, &bl->n, &dk), 0);
	memcpy(bl->key, kms_dk_bytes(dk), KMS_KEY_BYTES);
	kms_dk_destroy(dk);
}

static int unwrap(struct kms *k, const struct blob *bl)
{
	struct kms_dk *dk = NULL;
	int rc = kms_dk_unwrap(k, &alice, bl->id, "lineage-1", 9, bl->b, bl->n, &dk);

	if (rc == 0) {
		rc = memcmp(kms_dk_bytes(dk), bl->key, KMS_KEY_BYTES) == 0 ? 0 : -EBADMSG;
		kms_dk_destroy(dk);
	}
	return rc;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t r;
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);

	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(out, 0);
	while ((r = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)r), r);
	ck_assert_int_eq(r, 0);
	close(in);
	close(out);
}

/* ------------------------------------------------------------------------ */

START_TEST(roundtrip_and_reopen)
{
	struct kms_options o = p11opts(T1, "evfs-rt", pin_ok);
	char db[400];
	struct kms *k = NULL;
	struct blob bl;
	sqlite3 *sq;
	sqlite3_stmt *st;
	int64_t bad = 0;

	store_dir(db, sizeof(db), "rt");
	ck_assert_int_eq(kms_create(db, &o), 0);
	ck_assert(log_has("generated AES-256 key \"evfs-rt\" on token \"" T1 "\""));
	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	make_dk(k, &bl);
	ck_assert_int_eq(unwrap(k, &bl), 0);
	ck_assert_int_eq(kms_audit_verify(k, &bad), 0);
	kms_close(k);

	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	ck_assert_int_eq(unwrap(k, &bl), 0);
	ck_assert_int_eq(kms_audit_verify(k, &bad), 0);
	kms_close(k);

	/* A second create on the same token reuses the key (no new one). */
	logbuf[0] = '\0';
	store_dir(db, sizeof(db), "rt2");
	ck_assert_int_eq(kms_create(db, &o), 0);
	ck_assert(!log_has("generated"));
	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	kms_close(k);

	/* CMK rows are token seals (IV | ct | tag = 60 bytes), no root key
	 * settings of the local backends. */
	snprintf(db, sizeof(db), "%s/rt/kms.db", base);
	ck_assert_int_eq(sqlite3_open_v2(db, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(sq, "SELECT count(*), min(length(material)), max(length(material))"
					    " FROM key_versions", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_ge(sqlite3_column_int(st, 0), 2);  /* evs/default + vol-key */
	ck_assert_int_eq(sqlite3_column_int(st, 1), 60);
	ck_assert_int_eq(sqlite3_column_int(st, 2), 60);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(sq, "SELECT count(*) FROM settings WHERE name LIKE 'pwhash%'", -1, &st,
					    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(sq);
}
END_TEST

/* Ask the token itself about the key evfs made. */
START_TEST(token_key_not_extractable)
{
	struct kms_options o = p11opts(T1, "evfs-attr", pin_ok);
	CK_FUNCTION_LIST_PTR f;
	CK_C_GetFunctionList getfl;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i, found = 0;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL ext = CK_TRUE, sens = CK_FALSE, tok = CK_FALSE, aext = CK_TRUE, enc = CK_FALSE, dec = CK_FALSE;
	CK_KEY_TYPE kt = 0;
	CK_ULONG vlen = 0;
	uint8_t value[64];
	CK_ATTRIBUTE find[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, "evfs-attr", 9 } };
	CK_ATTRIBUTE a[] = {
		{ CKA_EXTRACTABLE, &ext, sizeof(ext) }, { CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_TOKEN, &tok, sizeof(tok) },       { CKA_ALWAYS_SENSITIVE, &aext, sizeof(aext) },
		{ CKA_ENCRYPT, &enc, sizeof(enc) },     { CKA_DECRYPT, &dec, sizeof(dec) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },      { CKA_VALUE_LEN, &vlen, sizeof(vlen) },
	};
	CK_ATTRIBUTE val = { CKA_VALUE, value, sizeof(value) };
	char db[400], label[33];
	void *dl;

	store_dir(db, sizeof(db), "attr");
	ck_assert_int_eq(kms_create(db, &o), 0);

	dl = dlopen(module_path, RTLD_NOW);
	ck_assert_ptr_nonnull(dl);
	*(void **)&getfl = dlsym(dl, "C_GetFunctionList");
	ck_assert_ptr_nonnull(getfl);
	ck_assert_uint_eq(getfl(&f), CKR_OK);
	ck_assert_uint_eq(f->C_Initialize(NULL), CKR_OK);
	ck_assert_uint_eq(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n && !found; i++) {
		CK_TOKEN_INFO ti;

		ck_assert_uint_eq(f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		memcpy(label, ti.label, 32);
		label[32] = '\0';
		if (strncmp(label, T1 " ", strlen(T1) + 1) == 0)
			found = slots[i] + 1;
	}
	ck_assert_uint_ne(found, 0);
	ck_assert_uint_eq(f->C_OpenSession(found - 1, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
	ck_assert_uint_eq(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), CKR_OK);
	ck_assert_uint_eq(f->C_FindObjectsInit(s, find, 2), CKR_OK);
	n = 0;
	ck_assert_uint_eq(f->C_FindObjects(s, &h, 1, &n), CKR_OK);
	ck_assert_uint_eq(f->C_FindObjectsFinal(s), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(f->C_GetAttributeValue(s, h, a, sizeof(a) / sizeof(a[0])), CKR_OK);
	ck_assert_uint_eq(ext, CK_FALSE);
	ck_assert_uint_eq(sens, CK_TRUE);
	ck_assert_uint_eq(tok, CK_TRUE);
	ck_assert_uint_eq(aext, CK_TRUE);
	ck_assert_uint_eq(enc, CK_TRUE);
	ck_assert_uint_eq(dec, CK_TRUE);
	ck_assert_uint_eq(kt, CKK_AES);
	ck_assert_uint_eq(vlen, 32);
	/* And the token refuses to hand out the value. */
	ck_assert_uint_eq(f->C_GetAttributeValue(s, h, &val, 1), CKR_ATTRIBUTE_SENSITIVE);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	dlclose(dl);
}
END_TEST

START_TEST(wrong_pin)
{
	struct kms_options o = p11opts(T1, "evfs-pin", pin_ok);
	struct kms_options bad = p11opts(T1, "evfs-pin", pin_bad);
	char db[400];
	struct kms *k = NULL;

	store_dir(db, sizeof(db), "wpin");
	ck_assert_int_eq(kms_create(db, &o), 0);
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_open(&k, db, &bad), -EACCES);
	ck_assert_ptr_null(k);
	ck_assert_msg(log_has("wrong PIN for token \"" T1 "\": check pkcs11_pin_file"), "log: %s", logbuf);
	/* A new store with a wrong PIN is refused too, and leaves nothing. */
	store_dir(db, sizeof(db), "wpin2");
	ck_assert_int_eq(kms_create(db, &bad), -EACCES);
	ck_assert_int_eq(access(db, F_OK), -1);
	/* Missing PIN file. */
	bad.secret_path = "/nonexistent/pin";
	ck_assert_int_eq(kms_create(db, &bad), -ENOENT);
	ck_assert(log_has("PIN file /nonexistent/pin"));
}
END_TEST

START_TEST(missing_token_and_module)
{
	struct kms_options o = p11opts("no-such-token", NULL, pin_ok);
	char db[400], notmod[400];
	struct kms *k = NULL;

	store_dir(db, sizeof(db), "tok");
	ck_assert_int_eq(kms_create(db, &o), -ENODEV);
	ck_assert_msg(log_has("no token labelled \"no-such-token\""), "log: %s", logbuf);
	ck_assert(log_has("\"" T1 "\"") && log_has("\"" T2 "\""));  /* labels present listed */
	ck_assert_int_eq(access(db, F_OK), -1);

	o = p11opts(T1, NULL, pin_ok);
	o.pkcs11_module = "/nonexistent/libnothing.so";
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_create(db, &o), -ENOENT);
	ck_assert(log_has("PKCS#11 module /nonexistent/libnothing.so: cannot be found"));

	snprintf(notmod, sizeof(notmod), "%s/notmod.so", base);
	write_text(notmod, "not an ELF file\n");
	o.pkcs11_module = notmod;
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_create(db, &o), -ELIBBAD);
	ck_assert(log_has("cannot be loaded"));
	/* A real shared object that is not a PKCS#11 module. */
	o.pkcs11_module = "libsqlite3.so.0";
	{
		Dl_info di;

		ck_assert_int_ne(dladdr((void *)sqlite3_libversion, &di), 0);
		o.pkcs11_module = di.dli_fname;
	}
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_create(db, &o), -ELIBBAD);
	ck_assert_msg(log_has("is not a PKCS#11 module"), "log: %s", logbuf);

	/* Key label absent at open. */
	o = p11opts(T1, "evfs-tok", pin_ok);
	ck_assert_int_eq(kms_create(db, &o), 0);
	o.pkcs11_key = "evfs-nokey";
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_open(&k, db, &o), -ENOKEY);
	ck_assert(log_has("no AES key labelled \"evfs-nokey\" on token \"" T1 "\""));
	/* A key store of another backend. */
	o = p11opts(T1, "evfs-tok", pin_ok);
	o.root_kind = KMS_ROOT_KEYFILE;
	ck_assert_int_eq(kms_open(&k, db, &o), -EKEYREJECTED);
	ck_assert(log_has("uses a PKCS#11 token, not a key file"));
}
END_TEST

/* The store's kms.db copied somewhere without its token. */
START_TEST(copy_without_token)
{
	struct kms_options o1 = p11opts(T1, "evfs-copy", pin_ok);
	struct kms_options o2 = p11opts(T2, "evfs-copy", pin_ok);
	char dbA[400], dbB[400], dbC[400], sql[1024];
	struct kms *k = NULL;
	struct blob bl;
	sqlite3 *sq;

	store_dir(dbA, sizeof(dbA), "copyA");
	ck_assert_int_eq(kms_create(dbA, &o1), 0);
	ck_assert_int_eq(kms_open(&k, dbA, &o1), 0);
	make_dk(k, &bl);
	kms_close(k);               /* last connection: WAL folded into the file */
	store_dir(dbC, sizeof(dbC), "copyC");
	copy_file(dbA, dbC);

	/* Another token with a key of the same label: not the store's key. */
	store_dir(dbB, sizeof(dbB), "copyB");
	ck_assert_int_eq(kms_create(dbB, &o2), 0);
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_open(&k, dbC, &o2), -EKEYREJECTED);
	ck_assert_msg(log_has("key \"evfs-copy\" on token \"" T2 "\" is not this key store's root key"), "log: %s",
		      logbuf);

	/* Even with T2's verifier and audit key spliced in (so the open
	 * passes), no CMK unseals: the material is sealed by T1's key. */
	ck_assert_int_eq(sqlite3_open(dbC, &sq), SQLITE_OK);
	snprintf(sql, sizeof(sql), "ATTACH '%s' AS b; UPDATE main.settings SET value = (SELECT value FROM"
		 " b.settings WHERE name = main.settings.name) WHERE name IN ('verifier', 'audit_key');", dbB);
	ck_assert_int_eq(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	ck_assert_int_eq(kms_open(&k, dbC, &o2), 0);
	logbuf[0] = '\0';
	ck_assert_int_lt(unwrap(k, &bl), 0);
	ck_assert(log_has("does not authenticate under key \"evfs-copy\" of token \"" T2 "\""));
	kms_close(k);

	/* The original still works with its token. */
	ck_assert_int_eq(kms_open(&k, dbA, &o1), 0);
	ck_assert_int_eq(unwrap(k, &bl), 0);
	kms_close(k);

	/* No token at all (a module configuration without tokens). */
	ck_assert_int_eq(setenv("SOFTHSM2_CONF", empty_conf, 1), 0);
	logbuf[0] = '\0';
	ck_assert_int_eq(kms_open(&k, dbA, &o1), -ENODEV);
	ck_assert_msg(log_has("no token labelled \"" T1 "\"") && log_has("tokens present: none"), "log: %s", logbuf);
	ck_assert_int_eq(setenv("SOFTHSM2_CONF", main_conf, 1), 0);   /* CK_FORK=no runs on */
}
END_TEST

/* Two handles on one token (one C_Initialize, refcounted); closing one
 * leaves the other working. */
START_TEST(two_handles)
{
	struct kms_options o = p11opts(T1, "evfs-two", pin_ok);
	char db1[400], db2[400];
	struct kms *a = NULL, *b = NULL;
	struct blob bl;

	store_dir(db1, sizeof(db1), "two1");
	store_dir(db2, sizeof(db2), "two2");
	ck_assert_int_eq(kms_create(db1, &o), 0);
	ck_assert_int_eq(kms_create(db2, &o), 0);
	ck_assert_int_eq(kms_open(&a, db1, &o), 0);
	ck_assert_int_eq(kms_open(&b, db1, &o), 0);
	make_dk(a, &bl);
	ck_assert_int_eq(unwrap(b, &bl), 0);
	kms_close(a);
	ck_assert_int_eq(unwrap(b, &bl), 0);
	ck_assert_int_eq(kms_open(&a, db2, &o), 0);  /* create while b is open */
	ck_assert_int_eq(unwrap(b, &bl), 0);
	kms_close(b);
	kms_close(a);
}
END_TEST

struct th {
	struct kms *k;
	const struct blob *bl;
	int fails;
};

static void *th_main(void *arg)
{
	struct th *t = arg;
	int i;

	for (i = 0; i < 40; i++) {
		struct blob mine;
		struct kms_dk *dk = NULL;

		if (unwrap(t->k, t->bl) != 0)
			t->fails++;
		snprintf(mine.id, sizeof(mine.id), "%s", t->bl->id);
		if (kms_dk_generate(t->k, &alice, mine.id, "lineage-1", 9, mine.b, &mine.n, &dk) != 0) {
			t->fails++;
			continue;
		}
		memcpy(mine.key, kms_dk_bytes(dk), KMS_KEY_BYTES);
		kms_dk_destroy(dk);
		if (unwrap(t->k, &mine) != 0)
			t->fails++;
	}
	return NULL;
}

START_TEST(threads_share_handle)
{
	struct kms_options o = p11opts(T1, "evfs-thr", pin_ok);
	pthread_t th[4];
	struct th t[4];
	char db[400];
	struct kms *k = NULL;
	struct blob bl;
	int64_t bad = 0;
	int i;

	store_dir(db, sizeof(db), "thr");
	ck_assert_int_eq(kms_create(db, &o), 0);
	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	make_dk(k, &bl);
	for (i = 0; i < 4; i++) {
		t[i] = (struct th){ k, &bl, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, th_main, &t[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(t[i].fails, 0);
	}
	ck_assert_int_eq(kms_audit_verify(k, &bad), 0);
	kms_close(k);
}
END_TEST

/* A pool's freshness kept on the token (kms_fresh.c): forward only unless
 * forced, survives a reopen (it is a token object, not in kms.db), dropped
 * on request, and a key store with a local root key keeps none. */
START_TEST(fresh_notes)
{
	static const char lin[] = "0123456789abcdef0123456789abcdef";
	struct kms_options o = p11opts(T1, "evfs-fresh", pin_ok);
	char db[400];
	struct kms *k = NULL;
	uint8_t h[32], got[32];
	uint64_t gen = 0;

	store_dir(db, sizeof(db), "fresh");
	ck_assert_int_eq(kms_create(db, &o), 0);
	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	memset(h, 0x11, sizeof(h));
	ck_assert_int_eq(kms_fresh_get(k, lin, &gen, got), -ENOENT);
	ck_assert_int_eq(kms_fresh_set(k, lin, 7, h, 0), 0);
	h[0] = 0x22;
	ck_assert_int_eq(kms_fresh_set(k, lin, 5, h, 0), 0);     /* backwards: kept at 7 */
	ck_assert_int_eq(kms_fresh_get(k, lin, &gen, got), 0);
	ck_assert_uint_eq(gen, 7);
	ck_assert_uint_eq(got[0], 0x11);
	ck_assert_int_eq(kms_fresh_set(k, lin, 9, h, 0), 0);
	kms_close(k);
	unlink(db);                                              /* the token keeps it, not kms.db */
	ck_assert_int_eq(kms_create(db, &o), 0);
	ck_assert_int_eq(kms_open(&k, db, &o), 0);
	ck_assert_int_eq(kms_fresh_get(k, lin, &gen, got), 0);
	ck_assert_uint_eq(gen, 9);
	ck_assert_uint_eq(got[0], 0x22);
	ck_assert_int_eq(kms_fresh_set(k, lin, 4, h, 1), 0);     /* forced */
	ck_assert_int_eq(kms_fresh_get(k, lin, &gen, got), 0);
	ck_assert_uint_eq(gen, 4);
	ck_assert_int_eq(kms_fresh_set(k, "not-a-lineage", 1, h, 0), -EINVAL);
	ck_assert_int_eq(kms_fresh_drop(k, lin), 0);
	ck_assert_int_eq(kms_fresh_get(k, lin, &gen, got), -ENOENT);
	kms_close(k);
}
END_TEST

static Suite *hsm_suite(void)
{
	Suite *s = suite_create("hsm");
	TCase *tc = tcase_create("pkcs11");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, roundtrip_and_reopen);
	tcase_add_test(tc, token_key_not_extractable);
	tcase_add_test(tc, wrong_pin);
	tcase_add_test(tc, missing_token_and_module);
	tcase_add_test(tc, copy_without_token);
	tcase_add_test(tc, two_handles);
	tcase_add_test(tc, threads_share_handle);
	tcase_add_test(tc, fresh_notes);
	suite_add_tcase(s, tc);
	return s;
}

static int run(const char *cmd)
{
	int rc = system(cmd);

	return rc == 0 ? 0 : -1;
}

int main(void)
{
	char conf[320], tokdir[320], cmd[1024], emptydir[320];
	const char *tmp = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	module_path = tc_softhsm_module();
	if (getenv("EVFS_SOFTHSM_MODULE"))
		module_path = getenv("EVFS_SOFTHSM_MODULE");
	if (!module_path || run("command -v softhsm2-util >/dev/null 2>&1") != 0) {
		fprintf(stderr, "\n*** SKIPPED: hsm suite needs SoftHSM2 (apt-get install softhsm2): no "
				"libsofthsm2.so or softhsm2-util found ***\n\n");
		return 77;
	}
	snprintf(base, sizeof(base), "%s/evfs-hsm-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", base);
	snprintf(emptydir, sizeof(emptydir), "%s/notokens", base);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", base);
	snprintf(empty_conf, sizeof(empty_conf), "%s/empty.conf", base);
	snprintf(pin_ok, sizeof(pin_ok), "%s/pin", base);
	snprintf(pin_bad, sizeof(pin_bad), "%s/badpin", base);
	if (mkdir(tokdir, 0700) < 0 || mkdir(emptydir, 0700) < 0) {
		perror("mkdir");
		return 1;
	}
	{
		FILE *f = fopen(conf, "w"), *g = fopen(empty_conf, "w"), *p = fopen(pin_ok, "w"),
		     *q = fopen(pin_bad, "w");

		if (!f || !g || !p || !q)
			return 1;
		fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokdir);
		fprintf(g, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", emptydir);
		fputs("1234\n", p);
		fputs("9999\n", q);
		fclose(f);
		fclose(g);
		fclose(p);
		fclose(q);
	}
	snprintf(main_conf, sizeof(main_conf), "%s", conf);
	setenv("SOFTHSM2_CONF", conf, 1);
	snprintf(cmd, sizeof(cmd), "softhsm2-util --init-token --free --label %s --pin 1234 --so-pin 5678 "
		 ">/dev/null && softhsm2-util --init-token --free --label %s --pin 1234 --so-pin 5678 >/dev/null",
		 T1, T2);
	if (run(cmd) != 0) {
		fprintf(stderr, "softhsm2-util --init-token failed\n");
		return 1;
	}
	sr = srunner_create(hsm_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (failed == 0)
		(void)run(cmd);
	else
		fprintf(stderr, "kept %s for inspection\n", base);
	return failed ? 1 : 0;
}
