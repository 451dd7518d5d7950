// SPDX-License-Identifier: MIT
/* tc_kms.c - the KMS fixture (see tc_kms.h). */
#include "tc_kms.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
