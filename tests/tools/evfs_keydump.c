// SPDX-License-Identifier: MIT
/*
 * evfs_keydump - TEST-ONLY tool: print key material of a store in hex.
 *
 *     evfs_keydump STORE root               root key, wrap and audit subkeys
 *     evfs_keydump STORE dk KIND NAME [P]   plaintext DK of an object
 *     evfs_keydump STORE cmk KEY [P]        every version of a CMK: plaintext
 *                                           and the sealed row of kms.db
 *
 * KIND is volume, snapshot, backup or image; P the project (default: the
 * store's).  The store lock must be free (no mount, no evfsctl running).
 * Built from tests/ only, never installed, never part of evfs or evfsctl:
 * the secrets test (tests/e2e/e2e_secrets.sh) records these bytes and then
 * proves that none of them appears in any file, log or core dump.
 * Output lines:  root HEX / wrap HEX / audit HEX / dk LINEAGE HEX /
 *                cmk ID vN HEX SEALED_HEX  or  cmk ID vN destroyed
 * Exit 0, 1 on failure (message on stderr), 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "kms/kms_testhooks.h"
#include "store_int.h"

static void hex_line(const char *label, const uint8_t *b, size_t n)
{
	char hex[2 * KMS_WRAPPED_MAX + 1];

	sodium_bin2hex(hex, sizeof(hex), b, n);
	printf("%s %s\n", label, hex);
	sodium_memzero(hex, sizeof(hex));
}

static int cmk_cb(void *ctx, uint32_t version, const uint8_t *plain, const uint8_t *sealed, size_t sealed_len)
{
	const char *id = ctx;
	char hp[2 * KMS_KEY_BYTES + 1], hs[2 * KMS_WRAPPED_MAX + 1];

	if (!plain) {
		printf("cmk %s v%u destroyed\n", id, (unsigned)version);
		return 0;
	}
	sodium_bin2hex(hp, sizeof(hp), plain, KMS_KEY_BYTES);
	sodium_bin2hex(hs, sizeof(hs), sealed, sealed_len);
	printf("cmk %s v%u %s %s\n", id, (unsigned)version, hp, hs);
	sodium_memzero(hp, sizeof(hp));
	return 0;
}

static int usage(void)
{
	fputs("usage: evfs_keydump STORE root | dk volume|snapshot|backup|image NAME [PROJECT] | cmk KEY [PROJECT]\n",
	      stderr);
	return 2;
}

int main(int argc, char **argv)
{
	static const char *kinds[] = { "volume", "snapshot", "backup", "image" };
	static const enum meta_kind kindv[] = { META_VOLUME, META_SNAPSHOT, META_BACKUP, META_IMAGE };
	struct store *s;
	struct store_caller c;
	struct evfs_err why = { "" };
	char err[1024] = "";
	int rc = 1;

	if (argc < 3 || sodium_init() < 0)
		return usage();
	if (store_open(&s, argv[1], NULL, NULL, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "evfs_keydump: %s\n", err);
		return 1;
	}
	if (strcmp(argv[2], "root") == 0 && argc == 3) {
		uint8_t *k = sodium_malloc(3 * KMS_KEY_BYTES);

		if (k && kms_test_root_keys(s->kms, k, k + KMS_KEY_BYTES, k + 2 * KMS_KEY_BYTES) == 0) {
			hex_line("root", k, KMS_KEY_BYTES);
			hex_line("wrap", k + KMS_KEY_BYTES, KMS_KEY_BYTES);
			hex_line("audit", k + 2 * KMS_KEY_BYTES, KMS_KEY_BYTES);
			rc = 0;
		}
		sodium_free(k);
	} else if (strcmp(argv[2], "dk") == 0 && (argc == 5 || argc == 6)) {
		struct meta_object o;
		struct kms_dk *dk = NULL;
		size_t i;

		for (i = 0; i < 4 && strcmp(argv[3], kinds[i]) != 0; i++)
			;
		if (i == 4) {
			store_close(s);
			return usage();
		}
		store_caller_init(s, &c, 0, 0, argc == 6 ? argv[5] : NULL);
		c.err = &why;
		if (store_object_find(s, &c, kindv[i], argv[4], &o) == 0 &&
		    store_lineage_unwrap(s, &c, o.project, o.lineage, &dk) == 0) {
			if (dk) {
				hex_line("dk", kms_dk_bytes(dk), KMS_KEY_BYTES);
				rc = 0;
			} else {
				store_seterr(s, &c, "%s %s is not encrypted: it has no data key", argv[3], argv[4]);
			}
		}
		kms_dk_destroy(dk);
	} else if (strcmp(argv[2], "cmk") == 0 && (argc == 4 || argc == 5)) {
		struct kms_key_info ki;
		struct kms_caller kc;

		store_caller_init(s, &c, 0, 0, argc == 5 ? argv[4] : NULL);
		c.err = &why;
		store_kcaller(&c, &kc, NULL);
		rc = kms_key_lookup(s->kms, &kc, argv[3], &ki);
		if (rc == 0)
			rc = kms_test_cmk_versions(s->kms, ki.id, cmk_cb, ki.id);
		if (rc < 0)
			store_seterr(s, &c, "key %s: %s", argv[3], strerror(-rc));
		rc = rc < 0;
	} else {
		store_close(s);
		return usage();
	}
	if (rc)
		fprintf(stderr, "evfs_keydump: %s\n", why.msg[0] ? why.msg : "failed");
	fflush(stdout);
	store_close(s);
	return rc;
}
