// SPDX-License-Identifier: MIT
/*
 * volume_persistence.c - TCase "persistence": content, sizes and holes
 * survive an engine restart; reference counts are rebuilt from the maps so
 * writes never reuse a snapshot's slots; interrupted clones are cleaned up;
 * chunks far into the tag table; freed slots wait for vol_sync.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "volume_fx.h"

/* ============================ persistence ============================= */

START_TEST(test_reopen)
{
	struct fx f;
	const uint64_t size = 4 * MiB + 99, big = 5 * MiB;
	uint8_t *ref = xcalloc(big), *buf = xmalloc(256 * KiB);
	struct engine_map_stats st0, st1;
	struct vol *v;
	uint64_t seed = 71 + (uint64_t)_i;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	for (int i = 0; i < 200; i++) {
		uint64_t off = rnd(&seed, size), len = 1 + rnd(&seed, 256 * KiB), want;

		want = len < size - off ? len : size - off;
		if (i % 7 == 6) {
			ck_assert_int_eq(vol_discard(v, off, len), 0);
			memset(ref + off, 0, want);
		} else {
			rnd_fill(&seed, buf, len);
			ck_assert_int_eq(vol_write(v, buf, len, off), (ssize_t)want);
			memcpy(ref + off, buf, want);
		}
	}
	ck_assert_int_eq(vol_extend(v, big), 0);
	rnd_fill(&seed, buf, 1000);
	xwrite(v, buf, 1000, big - 1000);
	memcpy(ref + big - 1000, buf, 1000);
	ck_assert_int_eq(vol_sync(v), 0);
	st0 = fx_stats(&f, 0, "vol1");
	engine_vol_close(v);
	fx_engine_stop(&f);
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 1);
	ck_assert_uint_eq(vol_size(v), big);
	ref_compare(v, ref, big, "after reopen");
	st1 = fx_stats(&f, 0, "vol1");
	ck_assert_uint_eq(st1.chunks, st0.chunks);
	ck_assert_uint_eq(st1.exclusive, st0.exclusive);
	ck_assert_uint_eq(st1.size, big);
	ck_assert_uint_eq(st1.chunks, ref_nonzero_chunks(ref, big, 4096));
	{
		struct kms_dk *dk = fx_dk(&f, 0);

		ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", dk, NULL, NULL), 0);
		kms_dk_destroy(dk);
	}
	engine_vol_close(v);
	/* The same after closing without an explicit vol_sync. */
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, 256 * KiB);
	xwrite(v, buf, 256 * KiB, 12345);
	memcpy(ref + 12345, buf, 256 * KiB);
	engine_vol_close(v);
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 0);
	ref_compare(v, ref, big, "after reopen without sync");
	engine_vol_close(v);
	free(ref);
	free(buf);
	fx_fini(&f);
}
END_TEST

/* Reference counts come back from the maps: after a restart, writes to
 * the volume never reuse the slots its snapshot still needs. */
START_TEST(test_refcounts_rebuilt)
{
	struct fx f;
	const uint64_t size = 2 * MiB;
	uint8_t *a = xmalloc(size), *b = xmalloc(size);
	char data[PATH_MAX + 64];
	struct vol *v, *s;
	uint64_t seed = 81;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, size);
	xwrite(v, a, size, 0);
	/* Some free slots before the snapshot, so the allocator has holes to
	 * fill after the restart. */
	ck_assert_int_eq(vol_discard(v, 0, 64 * 4096), 0);
	memset(a, 0, 64 * 4096);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	fx_engine_restart(&f);
	ck_assert_uint_eq(fx_stats(&f, 0, "snap1").exclusive, 0);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").exclusive, 0);
	v = fx_open(&f, "vol1", 1);
	for (int round = 0; round < 3; round++) {
		rnd_fill(&seed, b, size);
		xwrite(v, b, size, 0);
		ck_assert_int_eq(vol_sync(v), 0);          /* freed slots reusable */
	}
	s = fx_open(&f, "snap1", 0);
	ref_compare(s, a, size, "snap1 after restart and overwrites");
	ref_compare(v, b, size, "vol1");
	ck_assert_uint_eq(fx_stats(&f, 0, "snap1").exclusive, fx_stats(&f, 0, "snap1").chunks);
	engine_vol_close(s);
	engine_vol_close(v);
	/* And once more across a restart with both maps. */
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, b, size);
	xwrite(v, b, size, 0);
	engine_vol_close(v);
	fx_engine_restart(&f);
	s = fx_open(&f, "snap1", 0);
	ref_compare(s, a, size, "snap1 after a second restart");
	engine_vol_close(s);
	v = fx_open(&f, "vol1", 0);
	ref_compare(v, b, size, "vol1 after a second restart");
	engine_vol_close(v);
	ck_assert_msg(file_size(data) <= (int64_t)(3 * size + 256 * KiB), "data file %lld bytes",
		      (long long)file_size(data));
	free(a);
	free(b);
	fx_fini(&f);
}
END_TEST

/* A chunk stored in the second 64 MiB segment of the tag table (slot
 * 2^20 + 7), placed there by hand: the pool opens with a sparse, large tag
 * table, the chunk reads back, and rewriting it frees that slot. */
START_TEST(test_far_slot)
{
	FX_FORMAT1_ONLY("no tags file");
	struct fx f;
	const uint64_t slot = (1ull << 20) + 7;
	uint8_t p0[4096], p3[4096], c3[4096], q[4096], got[4096];
	char data[PATH_MAX + 64], tags[PATH_MAX + 64], map[PATH_MAX + 128];
	struct chunk_tag tag;
	struct kms_dk *dk;
	struct vol *v;
	uint64_t seed = 95;
	uint8_t ent[8];

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_path(&f, 0, "tags", tags, sizeof(tags));
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, p0, sizeof(p0));
	xwrite(v, p0, sizeof(p0), 0);
	engine_vol_close(v);
	fx_engine_stop(&f);
	rnd_fill(&seed, p3, sizeof(p3));
	dk = fx_dk(&f, 0);
	ck_assert_int_eq((dk ? chunk_encrypt(dk, f.lin[0], 3, p3, c3, sizeof(c3), &tag) : chunk_plain_seal(f.lin[0], 3, p3, c3, sizeof(c3), &tag)), 0);
	kms_dk_destroy(dk);
	file_pwrite(data, c3, sizeof(c3), slot * 4096);
	file_pwrite(tags, &tag, sizeof(tag), 4096 + 64 * slot);
	for (int i = 0; i < 8; i++)
		ent[i] = (uint8_t)((slot + 1) >> (8 * i));
	file_pwrite(map, ent, sizeof(ent), 4096 + 8 * 3);
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 1);
	xread(v, got, sizeof(got), 3 * 4096);
	ck_assert_mem_eq(got, p3, sizeof(got));
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, p0, sizeof(got));
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 2);
	dk = fx_dk(&f, 0);
	ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", dk, NULL, NULL), 0);
	kms_dk_destroy(dk);
	/* Rewrite it and write more: all goes to free low slots. */
	rnd_fill(&seed, q, sizeof(q));
	xwrite(v, q, sizeof(q), 3 * 4096 + 0);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_uint_lt(fx_map_entry(&f, 0, "vol1", 3), slot);
	for (uint64_t c = 4; c < 12; c++)
		xwrite(v, q, sizeof(q), c * 4096);
	engine_vol_close(v);
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 0);
	for (uint64_t c = 3; c < 12; c++) {
		xread(v, got, sizeof(got), c * 4096);
		REQUIRE(memcmp(got, q, sizeof(q)) == 0, "chunk %llu", (unsigned long long)c);
		REQUIRE(fx_map_entry(&f, 0, "vol1", c) < slot, "chunk %llu in slot %llu", (unsigned long long)c,
			(unsigned long long)fx_map_entry(&f, 0, "vol1", c) - 1);
	}
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* A slot freed by a write or a discard is reused only after vol_sync made
 * the map that dropped it durable (pool.c's ordering rule). */
START_TEST(test_no_reuse_before_sync)
{
	struct fx f;
	uint8_t a[4096], b[4096];
	struct vol *v;
	uint64_t s0, s2;

	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	xwrite(v, a, sizeof(a), 0);
	s0 = fx_map_entry(&f, 0, "vol1", 0);
	xwrite(v, b, sizeof(b), 0);                  /* frees s0 (pending) */
	ck_assert_uint_ne(fx_map_entry(&f, 0, "vol1", 0), s0);
	xwrite(v, a, sizeof(a), 4096);
	s2 = fx_map_entry(&f, 0, "vol1", 1);
	ck_assert_uint_ne(s2, s0);
	ck_assert_int_eq(vol_discard(v, 4096, 4096), 0);   /* frees s2 (pending) */
	for (uint64_t c = 2; c < 10; c++) {
		uint64_t e;

		xwrite(v, a, sizeof(a), c * 4096);
		e = fx_map_entry(&f, 0, "vol1", c);
		REQUIRE(e != s0 && e != s2, "chunk %llu reuses slot %llu before vol_sync", (unsigned long long)c,
			(unsigned long long)e - 1);
	}
	ck_assert_int_eq(vol_sync(v), 0);
	/* Now they are free: the next writes fill them instead of growing. */
	for (uint64_t c = 10; c < 12; c++) {
		uint64_t e;

		xwrite(v, b, sizeof(b), c * 4096);
		e = fx_map_entry(&f, 0, "vol1", c);
		REQUIRE(e == s0 || e == s2, "chunk %llu got slot %llu, not a freed one", (unsigned long long)c,
			(unsigned long long)e - 1);
	}
	for (uint64_t c = 0; c < 12; c++) {
		uint8_t got[4096];
		const uint8_t *want = c == 0 || c >= 10 ? b : a;

		xread(v, got, sizeof(got), c * 4096);
		if (c == 1)
			ck_assert(all_zero(got, sizeof(got)));
		else
			REQUIRE(memcmp(got, want, sizeof(got)) == 0, "chunk %llu", (unsigned long long)c);
	}
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* A clone interrupted before its rename leaves .tmp-<id>.map: the next
 * open removes it and nothing else changes. */
START_TEST(test_stray_temporary)
{
	FX_FORMAT1_ONLY("no temporary map files");
	struct fx f;
	uint8_t buf[4096], got[4096];
	char tmp[PATH_MAX + 128], path[PATH_MAX + 128];
	struct vol *v;
	struct stat st;
	uint64_t seed = 91;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	engine_vol_close(v);
	fx_engine_stop(&f);
	fx_map_path(&f, 0, "vol1", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/%s/maps/.tmp-snapX.map", f.pools, f.lhex[0]);
	{
		int fd = open(tmp, O_CREAT | O_WRONLY, 0600);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "garbage", 7), 7);
		close(fd);
	}
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 0);
	ck_assert_int_eq(stat(tmp, &st), -1);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, buf, sizeof(got));
	engine_vol_close(v);
	ck_assert_int_eq(stat(path, &st), 0);
	fx_fini(&f);
}
END_TEST

void volume_add_persistence(TCase *tc)
{
	tcase_add_loop_test(tc, test_reopen, 0, 2);
	tcase_add_loop_test(tc, test_refcounts_rebuilt, 0, 2);
	tcase_add_loop_test(tc, test_stray_temporary, 0, 2);
	tcase_add_loop_test(tc, test_far_slot, 0, 2);
	tcase_add_loop_test(tc, test_no_reuse_before_sync, 0, 2);
}
