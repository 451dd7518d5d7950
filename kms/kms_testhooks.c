// SPDX-License-Identifier: MIT
/*
 * kms_testhooks.c - TEST-ONLY: hands out key material (see kms_testhooks.h).
 * Compiled only with -DKMS_TEST_HOOKS into the kms_testhooks library of
 * tests/tools/; the kms library of the programs does not contain it.
 */
#ifndef KMS_TEST_HOOKS
#error "kms_testhooks.c is test-only: build it only into the kms_testhooks library"
#endif

#include "kms_testhooks.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kms_internal.h"

int kms_test_root_keys(struct kms *k, uint8_t root[static KMS_KEY_BYTES], uint8_t wrap[static KMS_KEY_BYTES],
		       uint8_t audit[static KMS_KEY_BYTES])
{
	int rc = kms_enter(k);

	if (rc < 0)
		return rc;
	memcpy(root, k->sec->root, KMS_KEY_BYTES);
	memcpy(wrap, k->sec->wrap, KMS_KEY_BYTES);
	memcpy(audit, k->sec->audit, KMS_KEY_BYTES);
	kms_leave(k);
	return 0;
}

int kms_test_cmk_versions(struct kms *k, const char *key_id, kms_test_cmk_cb cb, void *ctx)
{
	uint8_t sealed[KMS_CMK_SEALED_BYTES];
	struct sqldb_stmt *st = NULL;
	int rc, n = 0;

	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = kms_sql_prep(k, &st, "SELECT version, material FROM key_versions WHERE key_id = ? ORDER BY version",
			  "t", key_id);
	while (rc >= 0 && (rc = kms_sql_step(k, st)) == 1) {
		uint32_t version = (uint32_t)sqldb_column_int64(st, 0);
		/* A key file's seal or a token's (shorter): whatever is stored. */
		int len = sqldb_column_type(st, 1) == SQLDB_BLOB ? sqldb_column_bytes(st, 1) : 0;
		int have = len > 0 && len <= (int)sizeof(sealed);

		if (have)
			memcpy(sealed, sqldb_column_blob(st, 1), (size_t)len);
		if (have && (rc = kms_cmk_load(k, key_id, version, k->scratch)) < 0)
			break;
		rc = cb(ctx, version, have ? k->scratch : NULL, have ? sealed : NULL, have ? (size_t)len : 0);
		sodium_memzero(k->scratch, KMS_KEY_BYTES);
		if (rc)
			break;
		n++;
	}
	sqldb_finalize(st);
	kms_leave(k);
	return rc < 0 ? rc : n;
}

int kms_test_dk_import(const uint8_t key[static KMS_KEY_BYTES], struct kms_dk **out)
{
	return kms_dk_new(key, out);
}
