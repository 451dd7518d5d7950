// SPDX-License-Identifier: MIT
/*
 * check_backup.c - backup files (fs/backup.c) against a real engine.
 *
 * Every test builds a store in a fresh temporary directory: an engine with
 * one pool and one volume map, and for encrypted volumes a real KMS key
 * store (key-file root key) that generates the data key wrapped for the
 * lineage.  Backups go to <tmp>/backups.  Expected bytes always come from
 * vol_read of the live volume, so "restores exactly" means byte for byte.
 *
 * TCases: core (full backups, keys, info, self-containment), incremental
 * (chains, dedup, deletion of members), corrupt (tampered, truncated and
 * garbage files: errors, never crashes).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "backup.h"
#include "engine.h"
#include "kms/kms.h"
#include "tc.h"
#include "tc_kms.h"
#include "kms/kms_testhooks.h"

/* The suite keeps data keys as bytes (it also forges wrong ones): each call
 * hands the engine a data-key handle made from them, as the store does. */
static int reader_open(struct backup_reader **r, const char *dir, const char *id, const uint8_t *key)
{
	struct kms_dk *dk = NULL;
	int rc;

	if (key)
		ck_assert_int_eq(kms_test_dk_import(key, &dk), 0);
	rc = backup_reader_open(r, dir, id, dk);
	kms_dk_destroy(dk);              /* the reader holds its own reference */
	return rc;
}

static int verify(const char *dir, const char *id, const uint8_t *key, engine_bad_cb cb, void *ctx)
{
	struct kms_dk *dk = NULL;
	int rc;

	if (key)
		ck_assert_int_eq(kms_test_dk_import(key, &dk), 0);
	rc = backup_verify(dir, id, dk, cb, ctx);
	kms_dk_destroy(dk);
	return rc;
}

#define MIB (1024u * 1024u)

struct env {
	char root[64], pools[128], bdir[128];
	struct engine *e;
	struct tc_kms kx;          /* encrypted volumes: the key store in root (tests/common) */
	struct kms *k;             /* kx.k */
	struct vol *v;
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	char linhex[33];
	uint32_t cs;
	uint64_t size;
	int encrypted;
	uint8_t key[CHUNK_KEY_BYTES];
	char key_id[40];
	uint8_t wrapped[KMS_WRAPPED_MAX];
	size_t wrapped_len;
};

static const struct kms_caller caller = { 0, "root", "p1" };

static void env_init(struct env *t, int encrypted, uint32_t cs, uint64_t size)
{
	memset(t, 0, sizeof(*t));
	ck_assert_int_ge(sodium_init(), 0);
	tc_tmpdir(t->root, sizeof(t->root), NULL, "evfs-bk");
	snprintf(t->pools, sizeof(t->pools), "%s/pools", t->root);
	snprintf(t->bdir, sizeof(t->bdir), "%s/backups", t->root);
	ck_assert_int_eq(mkdir(t->bdir, 0700), 0);
	t->cs = cs;
	t->size = size;
	t->encrypted = encrypted;
	ck_assert_int_eq(engine_create(&t->e, t->pools, NULL, NULL), 0);
	engine_lineage_generate(t->lin);
	engine_lineage_format(t->lin, t->linhex);
	ck_assert_int_eq(engine_pool_create(t->e, t->linhex, cs, encrypted), 0);
	ck_assert_int_eq(engine_map_create(t->e, t->linhex, "vol1", size), 0);
	ck_assert_int_eq(engine_vol_open(&t->v, t->e, t->linhex, "vol1", 1), 0);
	if (!encrypted) {
		ck_assert_int_eq(vol_attach(t->v, NULL), 0);
		return;
	}
	const struct tc_kms_cfg kc = { .region = "r1", .admins = "root" };
	struct kms_dk *dk;

	tc_kms_init(&t->kx, t->root, &kc);
	tc_kms_grant(&t->kx, "p1");
	t->k = t->kx.k;
	snprintf(t->key_id, sizeof(t->key_id), "%s", t->kx.default_key);
	ck_assert_int_eq(kms_dk_generate(t->k, &caller, t->key_id, t->lin, sizeof(t->lin), t->wrapped, &t->wrapped_len,
					 &dk), 0);
	memcpy(t->key, kms_dk_bytes(dk), sizeof(t->key));
	ck_assert_int_eq(vol_attach(t->v, dk), 0);
}

static void env_fini(struct env *t)
{
	engine_vol_close(t->v);
	engine_destroy(t->e);
	tc_kms_fini(&t->kx);
	t->k = NULL;
	(void)tc_rm_rf(t->root);
	sodium_memzero(t->key, sizeof(t->key));
}

static void new_id(char out[BACKUP_ID_LEN + 1])
{
	uint8_t b[16];
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;

	randombytes_buf(b, sizeof(b));
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 15];
	}
	out[j] = 0;
}

/* Deterministic pseudo-random bytes written at off. */
static void put(struct env *t, uint64_t off, size_t len, uint8_t seed)
{
	uint8_t s[randombytes_SEEDBYTES] = { seed, (uint8_t)(off >> 12), (uint8_t)(off >> 20) };
	uint8_t *b = malloc(len);

	randombytes_buf_deterministic(b, len, s);
	ck_assert_int_eq(vol_write(t->v, b, len, off), (ssize_t)len);
	free(b);
}

/* The volume's current bytes. */
static uint8_t *image(struct env *t)
{
	uint8_t *b = malloc(t->size);

	ck_assert_int_eq(vol_read(t->v, b, t->size, 0), (ssize_t)t->size);
	return b;
}

/* Sparse content: chunks here and there, a partial last chunk, a zero write. */
static void fill_sparse(struct env *t)
{
	put(t, 0, t->cs, 1);
	put(t, 5 * (uint64_t)t->cs + 100, 3 * t->cs, 2);   /* unaligned: 4 chunks */
	put(t, t->size / 2, MIB + 5000, 3);
	put(t, t->size - 700, 700, 4);                      /* last, partial chunk */
	{
		uint8_t *z = calloc(1, t->cs);

		ck_assert_int_eq(vol_write(t->v, z, t->cs, 2 * (uint64_t)t->cs), (ssize_t)t->cs);
		free(z);
	}
}

static void mkinfo(struct env *t, struct backup_info *bi, const char *parent)
{
	memset(bi, 0, sizeof(*bi));
	new_id(bi->id);
	if (parent)
		snprintf(bi->parent_id, sizeof(bi->parent_id), "%s", parent);
	bi->encrypted = t->encrypted;
	if (t->encrypted) {
		snprintf(bi->key_id, sizeof(bi->key_id), "%s", t->key_id);
		memcpy(bi->wrapped, t->wrapped, t->wrapped_len);
		bi->wrapped_len = (uint32_t)t->wrapped_len;
	}
	bi->created = 1700000000;
}

static void take(struct env *t, struct backup_info *bi, const char *parent)
{
	mkinfo(t, bi, parent);
	ck_assert_int_eq(backup_create(t->v, t->bdir, bi, NULL, NULL), 0);
}

/* Read the whole backup in odd-sized pieces and compare with want. */
static void expect(struct env *t, const char *id, const uint8_t *key, const uint8_t *want)
{
	struct backup_reader *r;
	uint8_t *b = malloc(t->size + 10);
	uint64_t off = 0;
	size_t step[] = { 3 * MIB + 17, 4096, 1, 70001 };

	ck_assert_int_eq(reader_open(&r, t->bdir, id, key), 0);
	ck_assert_uint_eq(backup_reader_size(r), t->size);
	for (unsigned i = 0; off < t->size; i++) {
		size_t n = step[i % 4];
		ssize_t got = backup_reader_read(r, b + off, n, off);

		ck_assert_int_eq(got, (ssize_t)(n < t->size - off ? n : t->size - off));
		off += (uint64_t)got;
	}
	ck_assert_int_eq(memcmp(b, want, t->size), 0);
	ck_assert_int_eq(backup_reader_read(r, b, 10, t->size), 0);
	ck_assert_int_eq(backup_reader_read(r, b, t->size, 0), (ssize_t)t->size);   /* one big read */
	ck_assert_int_eq(memcmp(b, want, t->size), 0);
	backup_reader_close(r);
	free(b);
}

static const uint8_t *key_of(struct env *t)
{
	return t->encrypted ? t->key : NULL;
}

static void path_of(struct env *t, const char *id, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.evb", t->bdir, id);
}

/* ================================ core ================================= */

static void full_roundtrip(int encrypted, uint32_t cs)
{
	struct env t;
	struct backup_info bi, got;
	struct engine_map_stats st;
	struct stat sb;
	char path[256];
	uint8_t *img;

	env_init(&t, encrypted, cs, 16 * MIB + 3000);
	fill_sparse(&t);
	img = image(&t);
	take(&t, &bi, NULL);
	ck_assert_int_eq(engine_map_stats(t.e, t.linhex, "vol1", &st), 0);
	ck_assert_uint_eq(bi.chunks, st.chunks);
	ck_assert_uint_eq(bi.own_chunks, st.chunks);
	ck_assert_uint_eq(bi.size, t.size);
	ck_assert_uint_eq(bi.chunk_size, cs);
	expect(&t, bi.id, key_of(&t), img);

	path_of(&t, bi.id, path, sizeof(path));
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), 0);
	ck_assert_str_eq(got.id, bi.id);
	ck_assert_str_eq(got.parent_id, "");
	ck_assert_mem_eq(got.lineage, t.lin, CHUNK_LINEAGE_BYTES);
	ck_assert_uint_eq(got.chunk_size, cs);
	ck_assert_uint_eq(got.size, t.size);
	ck_assert_int_eq(got.encrypted, encrypted);
	ck_assert_str_eq(got.key_id, encrypted ? t.key_id : "");
	ck_assert_uint_eq(got.wrapped_len, encrypted ? t.wrapped_len : 0);
	ck_assert_mem_eq(got.wrapped, t.wrapped, got.wrapped_len);
	ck_assert_int_eq(got.created, 1700000000);
	ck_assert_uint_eq(got.chunks, bi.chunks);
	ck_assert_uint_eq(got.own_chunks, bi.own_chunks);
	ck_assert_int_eq(verify(t.bdir, bi.id, key_of(&t), NULL, NULL), 0);
	free(img);
	env_fini(&t);
}

START_TEST(test_full_unencrypted)
{
	full_roundtrip(0, 4096);
}
END_TEST

START_TEST(test_full_encrypted)
{
	full_roundtrip(1, 4096);
}
END_TEST

START_TEST(test_full_encrypted_16k)
{
	full_roundtrip(1, 16384);
}
END_TEST

START_TEST(test_wrong_key)
{
	struct env t;
	struct backup_info bi;
	struct backup_reader *r;
	uint8_t bad[CHUNK_KEY_BYTES], buf[8192];

	env_init(&t, 1, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	memcpy(bad, t.key, sizeof(bad));
	bad[7] ^= 1;
	ck_assert_int_eq(reader_open(&r, t.bdir, bi.id, NULL), -ENOKEY);
	ck_assert_int_eq(reader_open(&r, t.bdir, bi.id, bad), 0);
	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(backup_reader_read(r, buf, sizeof(buf), 0), -EBADMSG);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_int_eq(backup_reader_read(r, buf, 100, 5 * 4096 + 1), -EBADMSG);   /* partial chunk path */
	/* a hole reads as zeros whatever the key */
	ck_assert_int_eq(backup_reader_read(r, buf, 4096, 3 * 4096), 4096);
	backup_reader_close(r);
	ck_assert_int_eq(verify(t.bdir, bi.id, bad, NULL, NULL), (int)bi.chunks);
	env_fini(&t);
}
END_TEST

struct fe_ctx {
	const uint8_t *img;
	uint64_t size, last, n;
	int started;
};

static int fe_cb(void *ctx, uint64_t index, const uint8_t *plain, uint32_t len)
{
	struct fe_ctx *c = ctx;
	uint64_t off = index * len, n = c->size - off < len ? c->size - off : len;

	ck_assert(!c->started || index > c->last);
	ck_assert_int_eq(memcmp(plain, c->img + off, n), 0);
	c->started = 1;
	c->last = index;
	c->n++;
	return 0;
}

static int stop_cb(void *ctx, uint64_t index, const uint8_t *plain, uint32_t len)
{
	(void)ctx;
	(void)index;
	(void)plain;
	(void)len;
	return 42;
}

struct prog {
	uint64_t calls, last, total;
};

static void prog_cb(void *ctx, uint64_t done, uint64_t total)
{
	struct prog *p = ctx;

	ck_assert_uint_ge(done, p->last);
	ck_assert_uint_le(done, total);
	p->last = done;
	p->total = total;
	p->calls++;
}

START_TEST(test_foreach_progress)
{
	struct env t;
	struct backup_info bi;
	struct backup_reader *r;
	struct prog p = { 0 };
	uint8_t *img;

	env_init(&t, 1, 4096, 8 * MIB);
	put(&t, 0, 8 * MIB, 9);                               /* dense */
	ck_assert_int_eq(vol_discard(t.v, 3 * MIB, MIB), 0);
	img = image(&t);
	mkinfo(&t, &bi, NULL);
	ck_assert_int_eq(backup_create(t.v, t.bdir, &bi, prog_cb, &p), 0);
	ck_assert_uint_eq(p.last, t.size);
	ck_assert_uint_eq(p.total, t.size);
	ck_assert_uint_ge(p.calls, 50);
	ck_assert_uint_le(p.calls, 110);
	ck_assert_int_eq(reader_open(&r, t.bdir, bi.id, t.key), 0);
	{
		struct fe_ctx c = { .img = img, .size = t.size };

		ck_assert_int_eq(backup_reader_foreach(r, fe_cb, &c), 0);
		ck_assert_uint_eq(c.n, bi.chunks);
		ck_assert_uint_eq(c.n, 7 * MIB / 4096);
	}
	ck_assert_int_eq(backup_reader_foreach(r, stop_cb, NULL), 42);
	backup_reader_close(r);
	free(img);
	env_fini(&t);
}
END_TEST

START_TEST(test_self_contained)
{
	struct env t;
	struct backup_info bi, got;
	struct kms_dk *dk;
	uint8_t *img;

	env_init(&t, 1, 4096, 8 * MIB);
	fill_sparse(&t);
	img = image(&t);
	take(&t, &bi, NULL);
	engine_vol_close(t.v);
	t.v = NULL;
	ck_assert_int_eq(engine_map_delete(t.e, t.linhex, "vol1"), 0);
	ck_assert_int_eq(engine_pool_delete(t.e, t.linhex), 0);
	/* everything needed comes from the backup header and the KMS */
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), 0);
	ck_assert_int_eq(kms_dk_unwrap(t.k, &caller, got.key_id, got.lineage, sizeof(got.lineage), got.wrapped,
				       got.wrapped_len, &dk), 0);
	expect(&t, bi.id, kms_dk_bytes(dk), img);
	ck_assert_int_eq(verify(t.bdir, bi.id, kms_dk_bytes(dk), NULL, NULL), 0);
	kms_dk_destroy(dk);
	free(img);
	env_fini(&t);
}
END_TEST

START_TEST(test_bad_args)
{
	struct env t;
	struct backup_info bi, b2;
	char tmp[256];

	env_init(&t, 0, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	mkinfo(&t, &b2, NULL);
	snprintf(b2.id, sizeof(b2.id), "%s", bi.id);
	ck_assert_int_eq(backup_create(t.v, t.bdir, &b2, NULL, NULL), -EEXIST);
	mkinfo(&t, &b2, NULL);
	snprintf(b2.id, sizeof(b2.id), "not-a-uuid");
	ck_assert_int_eq(backup_create(t.v, t.bdir, &b2, NULL, NULL), -EINVAL);
	mkinfo(&t, &b2, NULL);
	b2.id[0] = 'A';                                        /* not canonical */
	ck_assert_int_eq(backup_create(t.v, t.bdir, &b2, NULL, NULL), -EINVAL);
	mkinfo(&t, &b2, NULL);
	new_id(b2.parent_id);
	ck_assert_int_eq(backup_create(t.v, t.bdir, &b2, NULL, NULL), -ENOENT);
	mkinfo(&t, &b2, NULL);
	b2.encrypted = 1;                                      /* pool is not */
	b2.wrapped_len = 4;
	ck_assert_int_eq(backup_create(t.v, t.bdir, &b2, NULL, NULL), -EINVAL);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s.evb", t.bdir, b2.id);
	ck_assert_int_eq(access(tmp, F_OK), -1);               /* no partial file left */
	ck_assert_int_eq(backup_info_load(t.bdir, b2.id, &b2), -ENOENT);
	ck_assert_int_eq(backup_delete(t.bdir, b2.id, NULL, 0), -ENOENT);
	ck_assert_int_eq(backup_delete(t.bdir, bi.id, NULL, 0), 0);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &b2), -ENOENT);
	env_fini(&t);
}
END_TEST

START_TEST(test_empty_volume)
{
	struct env t;
	struct backup_info bi;
	uint8_t *img;

	env_init(&t, 1, 4096, 3 * MIB);
	img = image(&t);
	take(&t, &bi, NULL);
	ck_assert_uint_eq(bi.chunks, 0);
	expect(&t, bi.id, t.key, img);
	free(img);
	env_fini(&t);
}
END_TEST

/* ============================ incremental ============================== */

static void incremental(int encrypted)
{
	struct env t;
	struct backup_info b1, b2;
	uint8_t *img1, *img2;

	env_init(&t, encrypted, 4096, 16 * MIB);
	fill_sparse(&t);
	img1 = image(&t);
	take(&t, &b1, NULL);
	put(&t, 0, 10, 7);                                     /* chunk 0 */
	put(&t, 12 * MIB, 4096, 7);                            /* new chunk */
	put(&t, t.size / 2 + 8192, 100, 7);                    /* inside the big run */
	ck_assert_int_eq(vol_discard(t.v, 5 * 4096, 4096), 0); /* a present chunk dropped */
	img2 = image(&t);
	take(&t, &b2, b1.id);
	ck_assert_uint_eq(b2.own_chunks, 3);
	ck_assert_uint_eq(b2.chunks, b1.chunks + 1 - 1);
	expect(&t, b2.id, key_of(&t), img2);
	expect(&t, b1.id, key_of(&t), img1);
	{
		struct backup_info got;

		ck_assert_int_eq(backup_info_load(t.bdir, b2.id, &got), 0);
		ck_assert_str_eq(got.parent_id, b1.id);
		ck_assert_uint_eq(got.own_chunks, 3);
	}
	ck_assert_int_eq(verify(t.bdir, b2.id, key_of(&t), NULL, NULL), 0);
	/* nothing changed: an incremental of no records */
	{
		struct backup_info b3;

		take(&t, &b3, b2.id);
		ck_assert_uint_eq(b3.own_chunks, 0);
		ck_assert_uint_eq(b3.chunks, b2.chunks);
		expect(&t, b3.id, key_of(&t), img2);
	}
	free(img1);
	free(img2);
	env_fini(&t);
}

START_TEST(test_incremental_encrypted)
{
	incremental(1);
}
END_TEST

START_TEST(test_incremental_unencrypted)
{
	incremental(0);
}
END_TEST

START_TEST(test_incremental_other_lineage)
{
	struct env t, u;
	struct backup_info b1, b2;

	env_init(&t, 0, 4096, 4 * MIB);
	env_init(&u, 0, 4096, 4 * MIB);
	fill_sparse(&t);
	fill_sparse(&u);
	take(&t, &b1, NULL);
	mkinfo(&u, &b2, b1.id);
	ck_assert_int_eq(backup_create(u.v, t.bdir, &b2, NULL, NULL), -EINVAL);
	env_fini(&u);
	env_fini(&t);
}
END_TEST

/* full, inc1, inc2 with changes in between; images kept. */
struct chain {
	struct backup_info b[3];
	uint8_t *img[3];
};

static void chain_make(struct env *t, struct chain *c)
{
	fill_sparse(t);
	c->img[0] = image(t);
	take(t, &c->b[0], NULL);
	put(t, 0, 4096, 11);
	put(t, 7 * MIB, 3 * 4096, 11);
	c->img[1] = image(t);
	take(t, &c->b[1], c->b[0].id);
	ck_assert_uint_eq(c->b[1].own_chunks, 4);
	put(t, 4096, 4096, 12);                                /* chunk 1: its record is in b[0] still... */
	put(t, 7 * MIB + 4096, 4096, 12);                      /* replaces one of b[1]'s */
	ck_assert_int_eq(vol_discard(t->v, t->size / 2, 4096), 0);
	c->img[2] = image(t);
	take(t, &c->b[2], c->b[1].id);
	ck_assert_uint_eq(c->b[2].own_chunks, 2);
}

static void chain_free(struct chain *c)
{
	for (int i = 0; i < 3; i++)
		free(c->img[i]);
}

START_TEST(test_chain_delete_middle)
{
	struct env t;
	struct chain c;
	struct backup_info got;
	const char *kids[] = { NULL };

	env_init(&t, _i, 4096, 16 * MIB);
	chain_make(&t, &c);
	kids[0] = c.b[2].id;
	ck_assert_int_eq(backup_delete(t.bdir, c.b[1].id, kids, 1), 0);
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[1].id, &got), -ENOENT);
	expect(&t, c.b[2].id, key_of(&t), c.img[2]);
	expect(&t, c.b[0].id, key_of(&t), c.img[0]);
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[2].id, &got), 0);
	ck_assert_str_eq(got.parent_id, c.b[0].id);
	ck_assert_uint_eq(got.own_chunks, 2 + 3);              /* b[1]'s records still in use */
	ck_assert_int_eq(verify(t.bdir, c.b[2].id, key_of(&t), NULL, NULL), 0);
	/* the chain goes on from the rewritten file */
	{
		struct backup_info b3;
		uint8_t *img;

		put(&t, 8 * 4096, 4096, 13);
		img = image(&t);
		take(&t, &b3, c.b[2].id);
		ck_assert_uint_eq(b3.own_chunks, 1);
		expect(&t, b3.id, key_of(&t), img);
		free(img);
	}
	chain_free(&c);
	env_fini(&t);
}
END_TEST

START_TEST(test_chain_delete_full)
{
	struct env t;
	struct chain c;
	struct backup_info got;
	const char *kids[2];
	char dir_tmp[256];

	env_init(&t, _i, 4096, 16 * MIB);
	chain_make(&t, &c);
	kids[0] = c.b[1].id;
	kids[1] = c.b[2].id;
	ck_assert_int_eq(backup_delete(t.bdir, c.b[0].id, kids, 2), 0);
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[0].id, &got), -ENOENT);
	expect(&t, c.b[1].id, key_of(&t), c.img[1]);
	expect(&t, c.b[2].id, key_of(&t), c.img[2]);
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[1].id, &got), 0);
	ck_assert_str_eq(got.parent_id, "");
	ck_assert_uint_eq(got.own_chunks, got.chunks);         /* now a full backup */
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[2].id, &got), 0);
	ck_assert_str_eq(got.parent_id, c.b[1].id);
	ck_assert_uint_eq(got.own_chunks, 2);
	ck_assert_int_eq(verify(t.bdir, c.b[1].id, key_of(&t), NULL, NULL), 0);
	ck_assert_int_eq(verify(t.bdir, c.b[2].id, key_of(&t), NULL, NULL), 0);
	/* and again: delete the new head */
	kids[0] = c.b[2].id;
	ck_assert_int_eq(backup_delete(t.bdir, c.b[1].id, kids, 1), 0);
	expect(&t, c.b[2].id, key_of(&t), c.img[2]);
	ck_assert_int_eq(backup_info_load(t.bdir, c.b[2].id, &got), 0);
	ck_assert_str_eq(got.parent_id, "");
	ck_assert_uint_eq(got.own_chunks, got.chunks);
	snprintf(dir_tmp, sizeof(dir_tmp), "%s/.tmp-%s.evb", t.bdir, c.b[2].id);
	ck_assert_int_eq(access(dir_tmp, F_OK), -1);
	chain_free(&c);
	env_fini(&t);
}
END_TEST

struct reader_job {
	struct backup_reader *r;
	const uint8_t *want;
	uint64_t size;
	uint64_t seed;             /* tc PRNG state: the run's seed + the thread's number */
	int bad;
};

static void *reader_thread(void *arg)
{
	struct reader_job *j = arg;
	uint8_t *b = malloc(256 * 1024);

	for (int i = 0; i < 400; i++) {
		uint64_t off = tc_rand_below(&j->seed, j->size);
		size_t len = (size_t)tc_rand_below(&j->seed, 256 * 1024) + 1;
		ssize_t got = backup_reader_read(j->r, b, len, off);

		if (got < 0 || memcmp(b, j->want + off, (size_t)got) != 0)
			j->bad++;
	}
	free(b);
	return NULL;
}

/* One reader shared by threads; the holder files get opened concurrently. */
START_TEST(test_concurrent_readers)
{
	struct env t;
	struct chain c;
	struct backup_reader *r;
	struct reader_job job[6];
	pthread_t th[6];

	env_init(&t, 1, 4096, 16 * MIB);
	chain_make(&t, &c);
	ck_assert_int_eq(reader_open(&r, t.bdir, c.b[2].id, t.key), 0);
	for (unsigned i = 0; i < 6; i++) {
		job[i] = (struct reader_job){ .r = r, .want = c.img[2], .size = t.size, .seed = tc_seed() + i + 1 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_thread, &job[i]), 0);
	}
	for (unsigned i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(job[i].bad == 0, "reader %u: %d bad reads (replay with EVFS_TEST_SEED=%llu)", i,
			      job[i].bad, (unsigned long long)tc_seed());
	}
	backup_reader_close(r);
	chain_free(&c);
	env_fini(&t);
}
END_TEST

START_TEST(test_delete_bad_children)
{
	struct env t;
	struct chain c;
	const char *kids[2];

	env_init(&t, 0, 4096, 16 * MIB);
	chain_make(&t, &c);
	kids[0] = c.b[1].id;
	kids[1] = c.b[1].id;
	ck_assert_int_eq(backup_delete(t.bdir, c.b[0].id, kids, 2), -EINVAL);
	kids[1] = c.b[0].id;
	ck_assert_int_eq(backup_delete(t.bdir, c.b[0].id, kids, 2), -EINVAL);
	kids[1] = "00000000-0000-0000-0000-000000000001";
	ck_assert_int_eq(backup_delete(t.bdir, c.b[0].id, kids, 2), -ENOENT);
	/* nothing was touched */
	expect(&t, c.b[0].id, NULL, c.img[0]);
	expect(&t, c.b[2].id, NULL, c.img[2]);
	chain_free(&c);
	env_fini(&t);
}
END_TEST

/* ============================== corrupt ================================ */

static void patch(const char *path, uint64_t off, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static void flip(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat sb;

	ck_assert_int_eq(stat(path, &sb), 0);
	return (uint64_t)sb.st_size;
}

static void expect_unclean(struct env *t, const char *id)
{
	struct backup_reader *r = NULL;
	struct backup_info bi;
	int rc;

	ck_assert_int_eq(reader_open(&r, t->bdir, id, key_of(t)), -EUCLEAN);
	ck_assert_int_eq(verify(t->bdir, id, key_of(t), NULL, NULL), -EUCLEAN);
	rc = backup_info_load(t->bdir, id, &bi);               /* must not crash */
	ck_assert(rc == 0 || rc == -EUCLEAN);
}

struct bad_ctx {
	uint64_t index;
	int n, err;
};

static void bad_cb(void *ctx, uint64_t index, int err)
{
	struct bad_ctx *c = ctx;

	c->index = index;
	c->err = err;
	c->n++;
}

START_TEST(test_verify_flip)
{
	struct env t;
	struct backup_info bi;
	struct backup_reader *r;
	struct bad_ctx bc = { 0 };
	char path[256];
	uint8_t buf[3 * 4096];

	env_init(&t, _i, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	ck_assert_int_eq(verify(t.bdir, bi.id, key_of(&t), bad_cb, &bc), 0);
	ck_assert_int_eq(bc.n, 0);
	path_of(&t, bi.id, path, sizeof(path));
	flip(path, 4096 + 1 * 4096 + 123);                     /* record 1 = chunk 5 */
	ck_assert_int_eq(verify(t.bdir, bi.id, key_of(&t), bad_cb, &bc), 1);
	ck_assert_int_eq(bc.n, 1);
	ck_assert_uint_eq(bc.index, 5);
	ck_assert_int_eq(bc.err, -EBADMSG);
	ck_assert_int_eq(reader_open(&r, t.bdir, bi.id, key_of(&t)), 0);
	memset(buf, 0x55, sizeof(buf));
	ck_assert_int_eq(backup_reader_read(r, buf, sizeof(buf), 4 * 4096), -EBADMSG);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_int_eq(backup_reader_read(r, buf, 10, 5 * 4096 + 7), -EBADMSG);
	ck_assert_int_eq(backup_reader_read(r, buf, 4096, 0), 4096);     /* others fine */
	ck_assert_int_eq(backup_reader_read(r, buf, 4096, 6 * 4096), 4096);
	backup_reader_close(r);
	env_fini(&t);
}
END_TEST

START_TEST(test_truncated)
{
	struct env t;
	struct backup_info bi;
	char path[256];
	uint64_t full, cuts[6];

	env_init(&t, 1, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	path_of(&t, bi.id, path, sizeof(path));
	full = file_size(path);
	cuts[0] = full - 1;
	cuts[1] = full - 72;
	cuts[2] = full / 2;
	cuts[3] = 4096;
	cuts[4] = 100;
	cuts[5] = 0;
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(truncate(path, (off_t)cuts[i]), 0);
		expect_unclean(&t, bi.id);
		ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &bi), -EUCLEAN);
	}
	env_fini(&t);
}
END_TEST

START_TEST(test_garbage_header)
{
	struct env t;
	struct backup_info bi, got;
	char path[256];
	uint8_t junk[4096];

	env_init(&t, 0, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	path_of(&t, bi.id, path, sizeof(path));
	patch(path, 0, "EVFSBAK9", 8);                         /* bad magic */
	expect_unclean(&t, bi.id);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), -EUCLEAN);
	patch(path, 0, "EVFSBAK1", 8);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), 0);
	flip(path, 40);                                        /* a field: checksum */
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), -EUCLEAN);
	randombytes_buf(junk, sizeof(junk));
	patch(path, 0, junk, sizeof(junk));
	expect_unclean(&t, bi.id);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), -EUCLEAN);
	env_fini(&t);
}
END_TEST

/* Headers with a valid checksum but insane counts and offsets. */
START_TEST(test_forged_header)
{
	struct env t;
	struct backup_info bi, got;
	char path[256];
	uint8_t h[352], *img;
	static const struct {
		unsigned off, width;
		uint64_t val;
	} bad[] = {
		{ 256, 8, UINT64_MAX }, { 256, 8, 1u << 30 }, { 264, 8, UINT64_MAX / 4096 + 1 }, { 264, 8, 1 },
		{ 272, 8, 0 }, { 272, 8, UINT64_MAX }, { 280, 8, 0 }, { 280, 8, 8192 }, { 12, 4, 12345 },
		{ 12, 4, 0 }, { 32, 8, UINT64_MAX }, { 32, 8, 0 }, { 44, 4, 1000 }, { 40, 4, 7 }, { 8, 4, 2 },
	};

	env_init(&t, 0, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	path_of(&t, bi.id, path, sizeof(path));
	{
		int fd = open(path, O_RDONLY);

		ck_assert_int_eq(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
		close(fd);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t f[352];
		uint64_t v = bad[i].val;

		memcpy(f, h, sizeof(f));
		for (unsigned b = 0; b < bad[i].width; b++, v >>= 8)
			f[bad[i].off + b] = (uint8_t)v;                /* little-endian */
		crypto_generichash(f + 320, 32, f, 320, NULL, 0);
		patch(path, 0, f, sizeof(f));
		expect_unclean(&t, bi.id);
	}
	patch(path, 0, h, sizeof(h));
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), 0);
	img = image(&t);
	expect(&t, bi.id, NULL, img);
	free(img);
	env_fini(&t);
}
END_TEST

START_TEST(test_bad_index)
{
	struct env t;
	struct backup_info bi, got;
	char path[256];

	env_init(&t, 1, 4096, 4 * MIB);
	fill_sparse(&t);
	take(&t, &bi, NULL);
	path_of(&t, bi.id, path, sizeof(path));
	flip(path, file_size(path) - 30);                      /* a mac in the last entry */
	expect_unclean(&t, bi.id);
	ck_assert_int_eq(backup_info_load(t.bdir, bi.id, &got), 0);   /* header alone is fine */
	flip(path, file_size(path) - 30);
	ck_assert_int_eq(verify(t.bdir, bi.id, t.key, NULL, NULL), 0);
	flip(path, file_size(path) - 72);                      /* a chunk index */
	expect_unclean(&t, bi.id);
	env_fini(&t);
}
END_TEST

START_TEST(test_missing_holder)
{
	struct env t;
	struct chain c;
	struct backup_reader *r;
	char path[256];
	uint8_t buf[4096];
	int bad;

	env_init(&t, 1, 4096, 16 * MIB);
	chain_make(&t, &c);
	path_of(&t, c.b[0].id, path, sizeof(path));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(reader_open(&r, t.bdir, c.b[2].id, t.key), 0);
	ck_assert_int_eq(backup_reader_read(r, buf, sizeof(buf), 4096), 4096);        /* chunk 1: in b[2] */
	ck_assert_int_eq(backup_reader_read(r, buf, sizeof(buf), 5 * 4096), -ENOENT); /* in b[0] */
	ck_assert_int_eq(backup_reader_read(r, buf, sizeof(buf), 0), 4096);           /* in b[1] */
	backup_reader_close(r);
	bad = verify(t.bdir, c.b[2].id, t.key, NULL, NULL);
	ck_assert_int_gt(bad, 0);
	ck_assert_int_lt(bad, (int)c.b[2].chunks);
	/* an incremental on top of a broken chain is refused */
	{
		struct backup_info b3;

		mkinfo(&t, &b3, c.b[2].id);
		ck_assert_int_eq(backup_create(t.v, t.bdir, &b3, NULL, NULL), -ENOENT);
	}
	chain_free(&c);
	env_fini(&t);
}
END_TEST

static Suite *backup_suite(void)
{
	Suite *s = suite_create("backup");
	TCase *core = tcase_create("core"), *inc = tcase_create("incremental"), *bad = tcase_create("corrupt");

	tcase_set_timeout(core, 120);
	tcase_set_timeout(inc, 120);
	tcase_set_timeout(bad, 120);
	tcase_add_test(core, test_full_unencrypted);
	tcase_add_test(core, test_full_encrypted);
	tcase_add_test(core, test_full_encrypted_16k);
	tcase_add_test(core, test_wrong_key);
	tcase_add_test(core, test_foreach_progress);
	tcase_add_test(core, test_self_contained);
	tcase_add_test(core, test_bad_args);
	tcase_add_test(core, test_empty_volume);
	tcase_add_test(inc, test_incremental_encrypted);
	tcase_add_test(inc, test_incremental_unencrypted);
	tcase_add_test(inc, test_incremental_other_lineage);
	tcase_add_loop_test(inc, test_chain_delete_middle, 0, 2);
	tcase_add_loop_test(inc, test_chain_delete_full, 0, 2);
	tcase_add_test(inc, test_delete_bad_children);
	tcase_add_test(inc, test_concurrent_readers);
	tcase_add_loop_test(bad, test_verify_flip, 0, 2);
	tcase_add_test(bad, test_truncated);
	tcase_add_test(bad, test_garbage_header);
	tcase_add_test(bad, test_forged_header);
	tcase_add_test(bad, test_bad_index);
	tcase_add_test(bad, test_missing_holder);
	suite_add_tcase(s, core);
	suite_add_tcase(s, inc);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(backup_suite());
	int failed;

	if (sodium_init() < 0)
		return 1;
	(void)tc_seed();   /* printed once; the forked tests inherit it */
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
