/* SPDX-License-Identifier: MIT */
/*
 * tc_kms.h - a KMS fixture: a key store (kms.db) with a key-file root key
 * (root.key, created by kms_create) in a directory, opened.
 *
 *   struct tc_kms kx;
 *   tc_kms_init(&kx, NULL, NULL);      a fresh temp dir, region-1, admins "root"
 *   tc_kms_grant(&kx, "p1");           root grants p1; kx.default_key = its evs/default
 *   ... kx.k ...
 *   tc_kms_fini(&kx);                  close; remove the temp dir if init made it
 *
 * kx.opt points into kx itself: do not copy a struct tc_kms.
 */
#ifndef EVFS_TESTS_TC_KMS_H
#define EVFS_TESTS_TC_KMS_H

#include "kms/kms.h"
#include "tc.h"

struct tc_kms_cfg {
	const char *region;        /* NULL: "region-1" */
	const char *admins;        /* security_admins; NULL: "root" */
	kms_log_fn log;            /* may be NULL */
	void *log_ctx;
	int no_open;               /* create the key store but leave it closed (k NULL) */
};

struct tc_kms {
	char dir[TC_PATH_MAX];             /* holds kms.db and root.key */
	char db[TC_PATH_MAX + 16];         /* dir/kms.db */
	char keyfile[TC_PATH_MAX + 16];    /* dir/root.key (key-file backend) */
	char pinfile[TC_PATH_MAX + 16];    /* dir/pin (EVFS_TEST_KMS=pkcs11) */
	char token[33];                    /* the token's label (EVFS_TEST_KMS=pkcs11) */
	char region[64];
	char admins[256];
	struct kms_options opt;            /* key file root key, region, admins, log */
	struct kms *k;                     /* open key store (NULL with no_open) */
	char default_key[KMS_ID_LEN + 1];  /* evs/default of the project last granted */
	int own_dir;                       /* dir made by tc_kms_init: fini removes it */
};

/* Create and open a key store in dir (NULL: a fresh temp dir under
 * tc_tmp_root(), removed by tc_kms_fini).  cfg may be NULL.  Aborts the
 * test on failure. */
void tc_kms_init(struct tc_kms *t, const char *dir, const struct tc_kms_cfg *cfg);
/* "root" (uid 0; must be one of the admins) grants project; fills
 * t->default_key with the project's evs/default id. */
void tc_kms_grant(struct tc_kms *t, const char *project);
/* 1 if this run keeps root keys in SoftHSM2 (EVFS_TEST_KMS=pkcs11); exits
 * 77 (SKIPPED) if it should but SoftHSM2 is missing. */
int tc_kms_backend_pkcs11(void);
/* The SoftHSM2 module's path, or NULL. */
const char *tc_softhsm_module(void);
/* Close and open again with the same options. */
void tc_kms_reopen(struct tc_kms *t);
/* Close (NULL-safe fields) and remove the directory if init made it. */
void tc_kms_fini(struct tc_kms *t);

#endif
