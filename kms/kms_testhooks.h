/* SPDX-License-Identifier: MIT */
/*
 * kms_testhooks.h - TEST-ONLY access to key material.
 *
 * Built only into the kms_testhooks static library (tests/tools/), which
 * the test tool evfs_keydump links; evfs and evfsctl never link it and it
 * is never installed.  The secrets test uses it to learn the bytes it must
 * then prove absent from every file, log and core dump (R15, R19).
 */
#ifndef EVFS_KMS_TESTHOOKS_H
#define EVFS_KMS_TESTHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "kms.h"

/* The root key and its wrap and audit subkeys (32 bytes each). */
int kms_test_root_keys(struct kms *k, uint8_t root[static KMS_KEY_BYTES], uint8_t wrap[static KMS_KEY_BYTES],
		       uint8_t audit[static KMS_KEY_BYTES]);

/* One call per version of the key, oldest first: plain is the plaintext
 * material (NULL once destroyed), sealed the row as stored in the key
 * store (NULL once destroyed).  Returns the number of versions or a
 * negative errno. */
typedef int (*kms_test_cmk_cb)(void *ctx, uint32_t version, const uint8_t *plain, const uint8_t *sealed,
			       size_t sealed_len);
int kms_test_cmk_versions(struct kms *k, const char *key_id, kms_test_cmk_cb cb, void *ctx);

/* A data-key handle holding `key` (known-answer tests of the chunk cipher). */
int kms_test_dk_import(const uint8_t key[static KMS_KEY_BYTES], struct kms_dk **out);
#endif
