/* SPDX-License-Identifier: MIT */
/*
 * kms_fresh.c - a pool's freshness kept where the store's files are not.
 *
 * The catalog records each format 2 pool's generation (meta_fresh.c), so a
 * pool directory put back from an older copy is refused.  A copy of the
 * whole store (catalog, key store and pools together) is self-consistent
 * and carries its own older records: nothing inside the store can tell.
 * With the root key in a PKCS#11 token, the token is outside the copy: the
 * store writes each pool's recorded (generation, header hash) into a small
 * private data object on the token when a volume is detached and when the
 * store closes, and opening a pool checks it as well.  A store rolled back
 * behind the last detach is then refused like a rolled-back pool.
 *
 * Token writes are slow (SoftHSM rewrites a file per object), hence at
 * detach and close, not at every commit: the window is what was written
 * since the last detach.  Like the catalog's record, the token's may lag,
 * never lead: what it is given was already durable in the pool.
 *
 * Other root-key backends (key file, passphrase) keep nothing outside the
 * store: -EOPNOTSUPP.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kms_internal.h"

#define NOTE_BYTES (8u + 32u)

static void note_label(char out[static 64], const char *lineage)
{
	snprintf(out, 64, "evfs-fresh-%s", lineage);
}

static int lineage_ok(const char *lineage)
{
	size_t n = lineage ? strnlen(lineage, 33) : 0;

	if (n != 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((lineage[i] >= '0' && lineage[i] <= '9') || (lineage[i] >= 'a' && lineage[i] <= 'f')))
			return 0;
	return 1;
}

struct pick {
	struct kms *k;
	const char *label;
	int found;
	uint64_t gen;
	uint8_t hash[32];
};

/* The newest of the objects (two only after a crash inside note_set). */
static int pick_cb(void *ctx, const uint8_t *v, size_t n)
{
	struct pick *pk = ctx;
	uint64_t le;

	if (n != NOTE_BYTES) {
		KMS_LOG(pk->k, LOG_ERR, "kms: token \"%s\": the object \"%s\" is %zu bytes, not %u; delete it",
			kms_p11_token(pk->k), pk->label, n, NOTE_BYTES);
		return -EUCLEAN;
	}
	memcpy(&le, v, 8);
	if (!pk->found || le64toh(le) > pk->gen) {
		pk->found = 1;
		pk->gen = le64toh(le);
		memcpy(pk->hash, v + 8, 32);
	}
	return 0;
}

static int get_locked(struct kms *k, const char *label, uint64_t *gen, uint8_t hash[static 32])
{
	struct pick pk = { .k = k, .label = label };
	int rc = kms_p11_note_each(k, label, pick_cb, &pk);

	if (rc < 0)
		return rc;
	if (!pk.found)
		return -ENOENT;
	*gen = pk.gen;
	memcpy(hash, pk.hash, 32);
	return 0;
}

int kms_fresh_get(struct kms *k, const char *lineage, uint64_t *gen, uint8_t hash[static 32])
{
	char label[64];
	int rc;

	if (!k || !lineage_ok(lineage) || !gen || !hash)
		return -EINVAL;
	if (!k->p11)
		return -EOPNOTSUPP;
	note_label(label, lineage);
	pthread_mutex_lock(&k->lock);
	rc = get_locked(k, label, gen, hash);
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int kms_fresh_set(struct kms *k, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force)
{
	char label[64];
	uint8_t v[NOTE_BYTES], old_hash[32];
	uint64_t old, le = htole64(gen);
	int rc;

	if (!k || !lineage_ok(lineage) || !hash)
		return -EINVAL;
	if (!k->p11)
		return -EOPNOTSUPP;
	note_label(label, lineage);
	memcpy(v, &le, 8);
	memcpy(v + 8, hash, 32);
	pthread_mutex_lock(&k->lock);
	rc = force ? -ENOENT : get_locked(k, label, &old, old_hash);
	if (rc == 0 && old >= gen)
		;                             /* only forward */
	else if (rc == 0 || rc == -ENOENT || rc == -EUCLEAN)    /* (a damaged one is replaced) */
		rc = kms_p11_note_set(k, label, v, sizeof(v));
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int kms_fresh_drop(struct kms *k, const char *lineage)
{
	char label[64];
	int rc;

	if (!k || !lineage_ok(lineage))
		return -EINVAL;
	if (!k->p11)
		return -EOPNOTSUPP;
	note_label(label, lineage);
	pthread_mutex_lock(&k->lock);
	rc = kms_p11_note_drop(k, label);
	pthread_mutex_unlock(&k->lock);
	return rc;
}
