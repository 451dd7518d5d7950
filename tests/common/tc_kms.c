// SPDX-License-Identifier: MIT
/* tc_kms.c - the KMS fixture (see tc_kms.h). */
#include "tc_kms.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const softhsm_modules[] = {
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	NULL,
};

const char *tc_softhsm_module(void)
{
	for (int i = 0; softhsm_modules[i]; i++)
		if (access(softhsm_modules[i], R_OK) == 0)
			return softhsm_modules[i];
	return NULL;
}

int tc_kms_backend_pkcs11(void)
{
	const char *b = getenv("EVFS_TEST_KMS");

	if (!b || strcmp(b, "pkcs11") != 0)
		return 0;
	if (!tc_softhsm_module() || system("command -v softhsm2-util >/dev/null 2>&1") != 0) {
		fprintf(stderr, "*** SKIPPED: EVFS_TEST_KMS=pkcs11 needs SoftHSM2 (apt-get install softhsm2) ***\n");
		exit(77);
	}
	return 1;
}

/* A fresh SoftHSM2 token for t (one softhsm2.conf per process: the module
 * reads it once), its PIN in t->dir/pin; t->opt points at them. */
static void softhsm_token(struct tc_kms *t)
{
	static char conf[TC_PATH_MAX + 32];
	static unsigned n;
	char cmd[TC_PATH_MAX * 2], tokens[TC_PATH_MAX + 16];
	FILE *f;

	if (!conf[0]) {
		char dir[TC_PATH_MAX];

		tc_tmpdir(dir, sizeof(dir), NULL, "evfs-softhsm");
		snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
		ck_assert_int_eq(mkdir(tokens, 0700), 0);
		snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
		f = fopen(conf, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_int_eq(setenv("SOFTHSM2_CONF", conf, 1), 0);
	}
	snprintf(t->token, sizeof(t->token), "tc-%ld-%u", (long)getpid(), n++);
	snprintf(t->pinfile, sizeof(t->pinfile), "%s/pin", t->dir);
	f = fopen(t->pinfile, "w");
	ck_assert_ptr_nonnull(f);
	fputs("tc-pin-4271\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(t->pinfile, 0600), 0);
	snprintf(cmd, sizeof(cmd), "softhsm2-util --init-token --free --label %s --pin tc-pin-4271 --so-pin 56781234 "
		 ">/dev/null", t->token);
	ck_assert_msg(system(cmd) == 0, "softhsm2-util --init-token failed");
	t->opt.root_kind = KMS_ROOT_PKCS11;
	t->opt.secret_path = t->pinfile;
	t->opt.pkcs11_module = tc_softhsm_module();
	t->opt.pkcs11_token = t->token;
}

void tc_kms_init(struct tc_kms *t, const char *dir, const struct tc_kms_cfg *cfg)
{
	memset(t, 0, sizeof(*t));
	if (dir) {
		ck_assert_msg(strlen(dir) < sizeof(t->dir), "tc_kms_init: dir %s too long", dir);
		snprintf(t->dir, sizeof(t->dir), "%s", dir);
	} else {
		tc_tmpdir(t->dir, sizeof(t->dir), NULL, "evfs-kms");
		t->own_dir = 1;
	}
	snprintf(t->db, sizeof(t->db), "%s/kms.db", t->dir);
	snprintf(t->keyfile, sizeof(t->keyfile), "%s/root.key", t->dir);
	snprintf(t->region, sizeof(t->region), "%s", cfg && cfg->region ? cfg->region : "region-1");
	snprintf(t->admins, sizeof(t->admins), "%s", cfg && cfg->admins ? cfg->admins : "root");
	t->opt.root_kind = KMS_ROOT_KEYFILE;
	t->opt.secret_path = t->keyfile;
	t->opt.region = t->region;
	t->opt.security_admins = t->admins;
	t->opt.log = cfg ? cfg->log : NULL;
	t->opt.log_ctx = cfg ? cfg->log_ctx : NULL;
	if (tc_kms_backend_pkcs11())
		softhsm_token(t);
	ck_assert_int_eq(kms_create(t->db, &t->opt), 0);
	if (!(cfg && cfg->no_open))
		ck_assert_int_eq(kms_open(&t->k, t->db, &t->opt), 0);
}

void tc_kms_grant(struct tc_kms *t, const char *project)
{
	const struct kms_caller root = { 0, "root", project };
	struct kms_key_info ki;

	ck_assert_ptr_nonnull(t->k);
	ck_assert_int_eq(kms_grant(t->k, &root, project), 0);
	ck_assert_int_eq(kms_key_lookup(t->k, &root, KMS_DEFAULT_ALIAS, &ki), 0);
	snprintf(t->default_key, sizeof(t->default_key), "%s", ki.id);
}

void tc_kms_reopen(struct tc_kms *t)
{
	kms_close(t->k);
	t->k = NULL;
	ck_assert_int_eq(kms_open(&t->k, t->db, &t->opt), 0);
}

void tc_kms_fini(struct tc_kms *t)
{
	kms_close(t->k);
	t->k = NULL;
	if (t->own_dir && t->dir[0])
		(void)tc_rm_rf(t->dir);
	t->own_dir = 0;
}
