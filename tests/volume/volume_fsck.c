// SPDX-License-Identifier: MIT
/*
 * volume_fsck.c - TCase "fsck": the engine's consistency checks and repairs
 * (fs/engine_fsck.c).  Store files are damaged behind the engine's back and
 * each check must name exactly the fault: the chunk index of a bad chunk,
 * the kind of a broken map entry, leaked slots (and only those) reclaimed,
 * a quarantined chunk reading zeros, and - on a pool the engine has open -
 * a referenced slot the allocator believes free.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_fsck.h"
#include "volume_fx.h"

#define MAXI 64

struct seen {
	int n;
	enum engine_fsck_what what[MAXI];
	uint64_t index[MAXI], slot[MAXI];
	int err[MAXI];
};

static void seen_cb(void *ctx, const struct engine_fsck_issue *is)
{
	struct seen *s = ctx;

	if (s->n < MAXI) {
		s->what[s->n] = is->what;
		s->index[s->n] = is->index;
		s->slot[s->n] = is->slot;
		s->err[s->n] = is->err;
	}
	s->n++;
}

static int seen_count(const struct seen *s, enum engine_fsck_what w)
{
	int n = 0;

	for (int i = 0; i < s->n && i < MAXI; i++)
		n += s->what[i] == w;
	return n;
}

static int pool_check(struct fx *f, struct seen *s, struct engine_pool_report *r)
{
	memset(s, 0, sizeof(*s));
	return engine_pool_check(f->e, f->lhex[0], seen_cb, s, r);
}

static int map_check(struct fx *f, const char *id, struct seen *s)
{
	struct kms_dk *dk = fx_dk(f, 0);
	int rc;

	memset(s, 0, sizeof(*s));
	rc = engine_map_check(f->e, f->lhex[0], id, dk, seen_cb, s);
	kms_dk_destroy(dk);
	return rc;
}

/* vol1 of 1 MiB with chunks 0..7 written (3 a hole); ref gets the bytes. */
static void setup(struct fx *f, int enc, uint8_t *ref)
{
	struct vol *v;
	uint64_t seed = 71;

	fx_init(f, enc);
	fx_create(f, 0, "vol1", MiB);
	v = fx_open(f, "vol1", 1);
	rnd_fill(&seed, ref, 8 * 4096);
	memset(ref + 3 * 4096, 0, 4096);
	xwrite(v, ref, 8 * 4096, 0);
	engine_vol_close(v);
	fx_engine_restart(f);
}

static void entry_store(struct fx *f, const char *id, uint64_t index, uint64_t value)
{
	char path[PATH_MAX + 128];
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	fx_map_path(f, 0, id, path, sizeof(path));
	file_pwrite(path, b, 8, 4096 + 8 * index);
}

START_TEST(test_clean_and_counts)
{
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096];

	setup(&f, _i, ref);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);
	ck_assert_int_eq(s.n, 0);
	ck_assert_uint_eq(r.maps, 2);
	ck_assert_uint_eq(r.referenced, 7);              /* shared by both maps, counted once */
	ck_assert_uint_eq(r.leaked, 0);
	ck_assert_int_eq(r.encrypted, _i);
	ck_assert_int_eq(map_check(&f, "vol1", &s), 0);
	ck_assert_int_eq(map_check(&f, "snap1", &s), 0);
	ck_assert_int_eq(engine_pool_check(f.e, "00000000000000000000000000000000", NULL, NULL, &r), -ENOENT);
	fx_fini(&f);
}
END_TEST

START_TEST(test_bad_chunk_quarantine)
{
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096], got[8 * 4096];
	char data[PATH_MAX + 64];
	struct vol *v;

	setup(&f, _i, ref);
	fx_path(&f, 0, "data", data, sizeof(data));
	file_flip(data, fx_slot(&f, 0, "vol1", 5) * 4096 + 33, 0x10);
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);      /* structure is fine */
	ck_assert_int_eq(map_check(&f, "vol1", &s), 1);
	ck_assert_int_eq(s.what[0], ENGINE_FSCK_CHUNK_BAD);
	ck_assert_uint_eq(s.index[0], 5);
	ck_assert_int_eq(s.err[0], -EBADMSG);
	/* Quarantine while the volume is open and attached. */
	v = fx_open(&f, "vol1", 1);
	ck_assert_int_eq(map_check(&f, "vol1", &s), 1);  /* the open-volume path finds it too */
	ck_assert_uint_eq(s.index[0], 5);
	ck_assert_int_eq(engine_map_quarantine(f.e, f.lhex[0], "vol1", 5), 1);
	ck_assert_int_eq(engine_map_quarantine(f.e, f.lhex[0], "vol1", 5), 0);   /* already a hole */
	ck_assert_int_eq(engine_map_quarantine(f.e, f.lhex[0], "vol1", 1u << 20), -EINVAL);
	memset(ref + 5 * 4096, 0, 4096);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, ref, sizeof(got));
	ck_assert_int_eq(map_check(&f, "vol1", &s), 0);
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);     /* open pool: memory agrees */
	ck_assert(r.open);
	engine_vol_close(v);
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);
	ck_assert_uint_eq(r.referenced, 6);
	fx_fini(&f);
}
END_TEST

START_TEST(test_leak_reclaim)
{
	FX_FORMAT1_ONLY("fsck of format 2 pools is not written yet");
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096], got[8 * 4096];
	char data[PATH_MAX + 64];
	uint64_t slot, n = 0;
	int64_t blocks;
	struct vol *v;

	setup(&f, _i, ref);
	fx_path(&f, 0, "data", data, sizeof(data));
	slot = fx_slot(&f, 0, "vol1", 6);
	entry_store(&f, "vol1", 6, 0);                   /* the reference is lost */
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);     /* a leak is not a problem */
	ck_assert_uint_eq(r.leaked, 1);
	ck_assert_uint_eq(r.leaked_bytes, 4096);
	blocks = file_blocks(data);
	ck_assert_int_eq(engine_pool_reclaim(f.e, f.lhex[0], &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_lt(file_blocks(data), blocks);
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);
	ck_assert_uint_eq(r.leaked, 0);
	/* Only that slot went: every other chunk still reads. */
	v = fx_open(&f, "vol1", 0);
	memset(ref + 6 * 4096, 0, 4096);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, ref, sizeof(got));
	engine_vol_close(v);
	(void)slot;
	fx_fini(&f);
}
END_TEST

START_TEST(test_bad_entries)
{
	FX_FORMAT1_ONLY("fsck of format 2 pools is not written yet");
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096];
	uint64_t s1, s2;
	char data[PATH_MAX + 64];

	setup(&f, _i, ref);
	s1 = fx_slot(&f, 0, "vol1", 1);
	s2 = fx_slot(&f, 0, "vol1", 2);
	entry_store(&f, "vol1", 1, s2 + 1);              /* swapped: moved chunks */
	entry_store(&f, "vol1", 2, s1 + 1);
	entry_store(&f, "vol1", 10, 1000000);            /* beyond the tag table */
	ck_assert_int_eq(pool_check(&f, &s, &r), 3);
	ck_assert_int_eq(seen_count(&s, ENGINE_FSCK_SLOT_INDEX), 2);
	ck_assert_int_eq(seen_count(&s, ENGINE_FSCK_MAP_RANGE), 1);
	ck_assert_int_eq(map_check(&f, "vol1", &s), 3);  /* and none of them decrypts */
	/* A punched slot that a map still names: freed under it. */
	entry_store(&f, "vol1", 1, s1 + 1);
	entry_store(&f, "vol1", 2, s2 + 1);
	entry_store(&f, "vol1", 10, 0);
	fx_path(&f, 0, "data", data, sizeof(data));
	{
		int fd = open(data, O_RDWR);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(s2 * 4096), 4096), 0);
		close(fd);
	}
	ck_assert_int_eq(pool_check(&f, &s, &r), 1);
	ck_assert_int_eq(s.what[0], ENGINE_FSCK_SLOT_EMPTY);
	ck_assert_uint_eq(s.index[0], 2);
	fx_fini(&f);
}
END_TEST

/* On a pool the engine has open, the allocator's counts are compared too. */
START_TEST(test_open_pool_slot_free)
{
	FX_FORMAT1_ONLY("a commit punches the chunks it frees: test_v2_fsck");
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096], buf[4096];
	uint64_t old;
	struct vol *v;

	setup(&f, _i, ref);
	v = fx_open(&f, "vol1", 1);
	old = fx_slot(&f, 0, "vol1", 0);
	memset(buf, 0x5a, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);                  /* old slot of chunk 0 freed... */
	ck_assert_int_eq(vol_sync(v), 0);                /* ...and reusable after the sync */
	ck_assert_int_eq(pool_check(&f, &s, &r), 0);
	ck_assert_uint_eq(r.leaked, 1);
	entry_store(&f, "vol1", 0, old + 1);             /* a map names it behind the engine */
	ck_assert_int_ge(pool_check(&f, &s, &r), 2);
	ck_assert_int_eq(seen_count(&s, ENGINE_FSCK_SLOT_FREE), 1);
	ck_assert_int_eq(seen_count(&s, ENGINE_FSCK_REFCOUNT), 1);   /* the new slot: counted, unnamed */
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

START_TEST(test_files)
{
	FX_FORMAT1_ONLY("fsck of format 2 pools is not written yet");
	struct fx f;
	struct seen s;
	struct engine_pool_report r;
	uint8_t ref[8 * 4096];
	char path[PATH_MAX + 128];
	int fd;

	setup(&f, 1, ref);
	/* An interrupted clone's temporary file: reported, then removed. */
	snprintf(path, sizeof(path), "%s/%s/maps/.tmp-snapX.map", f.pools, f.lhex[0]);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(pool_check(&f, &s, &r), 1);
	ck_assert_int_eq(s.what[0], ENGINE_FSCK_TMP_MAP);
	ck_assert_int_eq(engine_map_tmp_remove(f.e, f.lhex[0], "snapX"), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	/* A damaged map header. */
	fx_map_path(&f, 0, "vol1", path, sizeof(path));
	file_flip(path, 30, 0x01);
	ck_assert_int_eq(pool_check(&f, &s, &r), 1);
	ck_assert_int_eq(s.what[0], ENGINE_FSCK_MAP_HEADER);
	ck_assert_uint_eq(r.maps, 0);
	ck_assert_uint_eq(r.leaked, 7);                  /* nothing readable names the slots */
	ck_assert_int_lt(map_check(&f, "vol1", &s), 0);
	file_flip(path, 30, 0x01);
	/* A damaged tag table header: the pool is unusable. */
	fx_path(&f, 0, "tags", path, sizeof(path));
	file_flip(path, 9, 0x01);
	ck_assert_int_eq(pool_check(&f, &s, &r), 1);
	ck_assert_int_eq(s.what[0], ENGINE_FSCK_POOL_HEADER);
	ck_assert(!r.usable);
	fx_fini(&f);
}
END_TEST

void volume_add_fsck(TCase *tc)
{
	tcase_add_loop_test(tc, test_clean_and_counts, 0, 2);
	tcase_add_loop_test(tc, test_bad_chunk_quarantine, 0, 2);
	tcase_add_loop_test(tc, test_leak_reclaim, 0, 2);
	tcase_add_loop_test(tc, test_bad_entries, 0, 2);
	tcase_add_loop_test(tc, test_open_pool_slot_free, 0, 2);
	tcase_add_test(tc, test_files);
}
